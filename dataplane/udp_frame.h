/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp_frame.h - what the DPDK back end (udp_dpdk.c) does with one received
 * Ethernet frame, decided from its bytes alone: an ARP request for our
 * address, an ICMP echo request to us, a UDP datagram to our port, an IPv4
 * fragment, or anything else (dropped and counted). Pure: no DPDK, so it
 * is unit-tested and fuzzed without a NIC.
 */
#ifndef QV_DP_UDP_FRAME_H
#define QV_DP_UDP_FRAME_H

#include <stdint.h>

#define QV_FRAME_L2_LEN 14u         /* Ethernet header, untagged */
#define QV_FRAME_L3_LEN 20u         /* IPv4 header without options */
#define QV_FRAME_L4_LEN 8u          /* UDP header */
#define QV_FRAME_ARP_LEN 28u        /* ARP for IPv4 over Ethernet */
#define QV_FRAME_ICMP_LEN 8u        /* ICMP echo header */
#define QV_FRAME_MTU 1500u
#define QV_FRAME_MAX_UDP_PAYLOAD (QV_FRAME_MTU - QV_FRAME_L3_LEN - QV_FRAME_L4_LEN)

enum qv_frame_kind {
	QV_FRAME_OTHER = 0,         /* not for us, other protocols, malformed, bad checksum */
	QV_FRAME_ARP_REQUEST,       /* ARP request (IPv4 over Ethernet) for our address */
	QV_FRAME_ICMP_ECHO,         /* ICMP echo request (code 0) to our address and MAC */
	QV_FRAME_UDP,               /* UDP to our address, MAC and port, payload <= MTU's */
	QV_FRAME_FRAGMENT,          /* an IPv4 fragment to us (not reassembled) */
};

/* Where the layers of a classified IPv4 frame are (offsets from the frame). */
struct qv_frame_info {
	uint32_t ihl;               /* IPv4 header bytes (20..60) */
	uint32_t ip_len;            /* IPv4 total length (Ethernet may pad past it) */
	uint32_t l4_off;            /* QV_FRAME_L2_LEN + ihl */
	uint32_t udp_len;           /* QV_FRAME_UDP: the UDP length, header included */
};

/* Our side: MAC, and IPv4 address and UDP port in network byte order. */
struct qv_frame_self {
	uint8_t mac[6];
	uint32_t ip_be;
	uint16_t port_be;
};

/*
 * Classifies frame[0, len). Every length and offset is checked against
 * len before it is read; the IPv4 header checksum is verified. *ret is
 * written for QV_FRAME_ICMP_ECHO, QV_FRAME_UDP and QV_FRAME_FRAGMENT.
 */
enum qv_frame_kind qv_frame_classify(const uint8_t *frame, uint32_t len,
				     const struct qv_frame_self *self, struct qv_frame_info *ret);

/* The Internet checksum's ones-complement sum of buf[0, len), folded to 16
 * bits (0xffff over a header whose checksum is right), as rte_raw_cksum. */
uint16_t qv_frame_sum(const void *buf, uint32_t len);

#endif /* QV_DP_UDP_FRAME_H */
