/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp_frame.c - classification of received frames (udp_frame.h). Fields
 * are read with memcpy at byte offsets (a frame has no alignment promise)
 * and compared in network byte order, as they sit in the frame. Written
 * by hand: the handful of fixed offsets of Ethernet, ARP, IPv4, ICMP and
 * UDP headers is less code than adapting a packet library (libpcap's
 * decoders or DPDK's own structs, which would bring DPDK back in), and
 * the function is fuzzed.
 */
#include <string.h>

#include "udp_frame.h"

#define ET_IPV4 0x0800u
#define ET_ARP 0x0806u
#define IPPROTO_ICMP_ 1u
#define IPPROTO_UDP_ 17u
#define IP_MF 0x2000u
#define IP_OFFSET_MASK 0x1fffu

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t raw32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint16_t raw16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

uint16_t qv_frame_sum(const void *buf, uint32_t len)
{
	const uint8_t *p = buf;
	uint64_t s = 0;
	uint32_t i;

	/* In host order 16-bit words, as rte_raw_cksum: the folded sum of a
	 * correct header is 0xffff in either byte order. */
	for (i = 0; i + 1 < len; i += 2)
		s += raw16(p + i);
	if (i < len) {
		uint16_t last = 0;
		memcpy(&last, p + i, 1);
		s += last;
	}
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static enum qv_frame_kind arp(const uint8_t *f, uint32_t len, const struct qv_frame_self *self)
{
	const uint8_t *a = f + QV_FRAME_L2_LEN;

	if (len < QV_FRAME_L2_LEN + QV_FRAME_ARP_LEN)
		return QV_FRAME_OTHER;
	/* hardware Ethernet (1), protocol IPv4, lengths 6 and 4, a request (1),
	 * and the target address (at 24) ours */
	if (be16(a) != 1 || be16(a + 2) != ET_IPV4 || a[4] != 6 || a[5] != 4 ||
	    be16(a + 6) != 1 || raw32(a + 24) != self->ip_be)
		return QV_FRAME_OTHER;
	return QV_FRAME_ARP_REQUEST;
}

enum qv_frame_kind qv_frame_classify(const uint8_t *f, uint32_t len,
				     const struct qv_frame_self *self, struct qv_frame_info *ret)
{
	struct qv_frame_info info = { 0 };
	const uint8_t *ip;
	uint16_t et;

	if (len < QV_FRAME_L2_LEN)
		return QV_FRAME_OTHER;
	et = be16(f + 12);
	if (et == ET_ARP)
		return arp(f, len, self);
	/* VLAN tags (0x8100) and everything not IPv4 are not ours. */
	if (et != ET_IPV4 || memcmp(f, self->mac, 6) != 0 ||
	    len < QV_FRAME_L2_LEN + QV_FRAME_L3_LEN)
		return QV_FRAME_OTHER;
	ip = f + QV_FRAME_L2_LEN;
	info.ihl = (uint32_t)(ip[0] & 0x0f) * 4u;
	info.ip_len = be16(ip + 2);
	info.l4_off = QV_FRAME_L2_LEN + info.ihl;
	/* Ethernet pads short frames: the IP length, not the frame's, counts. */
	if ((ip[0] >> 4) != 4 || info.ihl < QV_FRAME_L3_LEN || info.ip_len < info.ihl ||
	    info.ip_len > len - QV_FRAME_L2_LEN || raw32(ip + 16) != self->ip_be ||
	    qv_frame_sum(ip, info.ihl) != 0xffff)
		return QV_FRAME_OTHER;
	if ((be16(ip + 6) & (IP_MF | IP_OFFSET_MASK)) != 0) {
		*ret = info;
		return QV_FRAME_FRAGMENT;
	}
	if (ip[9] == IPPROTO_ICMP_) {
		const uint8_t *icmp = ip + info.ihl;
		/* echo request: type 8, code 0 */
		if (info.ip_len - info.ihl < QV_FRAME_ICMP_LEN || icmp[0] != 8 || icmp[1] != 0)
			return QV_FRAME_OTHER;
		*ret = info;
		return QV_FRAME_ICMP_ECHO;
	}
	if (ip[9] == IPPROTO_UDP_ && info.ip_len >= info.ihl + QV_FRAME_L4_LEN) {
		const uint8_t *udp = ip + info.ihl;
		info.udp_len = be16(udp + 4);
		if (raw16(udp + 2) != self->port_be || info.udp_len < QV_FRAME_L4_LEN ||
		    info.udp_len > info.ip_len - info.ihl ||
		    info.udp_len - QV_FRAME_L4_LEN > QV_FRAME_MAX_UDP_PAYLOAD)
			return QV_FRAME_OTHER;
		*ret = info;
		return QV_FRAME_UDP;
	}
	return QV_FRAME_OTHER;
}
