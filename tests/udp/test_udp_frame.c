/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_udp_frame.c - qv_frame_classify (dataplane/udp_frame.c), the DPDK
 * back end's frame classification, on hand-built frames: ARP requests for
 * our address and another, ARP replies, ICMP echo requests and other ICMP,
 * UDP to our port and another, to another MAC or IP, truncated frames,
 * a bad IHL, a bad header checksum, fragments (first, middle, last), a
 * VLAN-tagged frame, IPv6, IP options, Ethernet padding. The checksums
 * are computed here in big-endian order, independently of qv_frame_sum.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "udp_frame.h"

static int failures;

#define CHECK(c)                                                                                 \
	do {                                                                                     \
		if (!(c)) {                                                                      \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c);   \
			failures++;                                                              \
		}                                                                                \
	} while (0)

static const uint8_t OUR_MAC[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const uint8_t PEER_MAC[6] = { 0x02, 0, 0, 0, 0, 0x02 };
static const uint8_t BCAST[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
#define OUR_IP "10.9.0.1"
#define PEER_IP "10.9.0.2"
#define OUR_PORT 9000

static struct qv_frame_self self;

static uint32_t ip_be(const char *s)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		abort();
	return a.s_addr;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* RFC 1071, big-endian words. */
static uint16_t be_sum(const uint8_t *p, uint32_t n)
{
	uint32_t s = 0;

	for (uint32_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static uint32_t eth(uint8_t *f, const uint8_t *dst, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, PEER_MAC, 6);
	put16(f + 12, type);
	return 14;
}

static uint32_t arp(uint8_t *f, uint16_t op, const char *target)
{
	uint32_t n = eth(f, BCAST, 0x0806);
	uint8_t *a = f + n;
	uint32_t sip = ip_be(PEER_IP), tip = ip_be(target);

	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, PEER_MAC, 6);
	memcpy(a + 14, &sip, 4);
	memset(a + 18, 0, 6);
	memcpy(a + 24, &tip, 4);
	return n + 28;
}

/* Ethernet + IPv4 (ihl bytes, options zero) + l4 bytes of payload area. */
static uint32_t ipv4(uint8_t *f, const uint8_t *dmac, const char *dst, uint8_t proto, uint32_t ihl,
		     uint32_t l4_len, uint16_t frag)
{
	uint32_t n = eth(f, dmac, 0x0800), sip = ip_be(PEER_IP), dip = ip_be(dst);
	uint8_t *ip = f + n;

	memset(ip, 0, ihl);
	ip[0] = (uint8_t)(0x40 | (ihl / 4));
	put16(ip + 2, (uint16_t)(ihl + l4_len));
	put16(ip + 6, frag);
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, &sip, 4);
	memcpy(ip + 16, &dip, 4);
	put16(ip + 10, (uint16_t)~be_sum(ip, ihl));
	return n + ihl + l4_len;
}

static uint32_t udp(uint8_t *f, const uint8_t *dmac, const char *dst, uint16_t port, uint32_t payload)
{
	uint32_t n = ipv4(f, dmac, dst, 17, 20, 8 + payload, 0x4000 /* DF */);
	uint8_t *u = f + 34;

	put16(u, 40000);
	put16(u + 2, port);
	put16(u + 4, (uint16_t)(8 + payload));
	put16(u + 6, 0);
	for (uint32_t i = 0; i < payload; i++)
		u[8 + i] = (uint8_t)i;
	return n;
}

static uint32_t icmp(uint8_t *f, uint8_t type, uint8_t code, uint32_t ihl)
{
	uint32_t n = ipv4(f, OUR_MAC, OUR_IP, 1, ihl, 8 + 16, 0);
	uint8_t *c = f + 14 + ihl;

	c[0] = type;
	c[1] = code;
	return n;
}

static enum qv_frame_kind classify(const uint8_t *f, uint32_t len, struct qv_frame_info *fi)
{
	/* An exact-size heap copy: a read past len is an ASan error. */
	uint8_t *copy = malloc(len ? len : 1);
	enum qv_frame_kind k;

	memcpy(copy, f, len);
	k = qv_frame_classify(copy, len, &self, fi);
	free(copy);
	return k;
}

int main(void)
{
	uint8_t f[2048];
	struct qv_frame_info fi;
	uint32_t n;

	memcpy(self.mac, OUR_MAC, 6);
	self.ip_be = ip_be(OUR_IP);
	self.port_be = htons(OUR_PORT);

	/* ARP */
	n = arp(f, 1, OUR_IP);
	CHECK(classify(f, n, &fi) == QV_FRAME_ARP_REQUEST);
	CHECK(classify(f, n + 18, &fi) == QV_FRAME_ARP_REQUEST);  /* padded to 60 */
	CHECK(classify(f, n - 1, &fi) == QV_FRAME_OTHER);         /* truncated */
	n = arp(f, 1, PEER_IP);
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);             /* someone else's address */
	n = arp(f, 2, OUR_IP);
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);             /* a reply */
	n = arp(f, 1, OUR_IP);
	f[14 + 4] = 8;                                            /* hardware length */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);

	/* ICMP */
	n = icmp(f, 8, 0, 20);
	CHECK(classify(f, n, &fi) == QV_FRAME_ICMP_ECHO);
	CHECK(fi.ihl == 20 && fi.ip_len == 20 + 24 && fi.l4_off == 34);
	n = icmp(f, 8, 0, 28);                                    /* with IP options */
	CHECK(classify(f, n, &fi) == QV_FRAME_ICMP_ECHO);
	CHECK(fi.ihl == 28 && fi.l4_off == 42);
	n = icmp(f, 0, 0, 20);                                    /* an echo reply */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);
	n = icmp(f, 8, 1, 20);                                    /* code 1 */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);
	n = ipv4(f, OUR_MAC, OUR_IP, 1, 20, 4, 0);                /* ICMP shorter than its header */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);

	/* UDP */
	n = udp(f, OUR_MAC, OUR_IP, OUR_PORT, 100);
	CHECK(classify(f, n, &fi) == QV_FRAME_UDP);
	CHECK(fi.udp_len == 108 && fi.l4_off == 34 && fi.ip_len == 128);
	CHECK(classify(f, n + 30, &fi) == QV_FRAME_UDP);          /* trailing padding */
	CHECK(classify(f, n - 1, &fi) == QV_FRAME_OTHER);         /* IP length past the frame */
	n = udp(f, OUR_MAC, OUR_IP, OUR_PORT, 0);                 /* empty payload */
	CHECK(classify(f, n, &fi) == QV_FRAME_UDP && fi.udp_len == 8);
	n = udp(f, OUR_MAC, OUR_IP, OUR_PORT, QV_FRAME_MAX_UDP_PAYLOAD);
	CHECK(classify(f, n, &fi) == QV_FRAME_UDP);
	n = udp(f, OUR_MAC, OUR_IP, OUR_PORT, QV_FRAME_MAX_UDP_PAYLOAD + 1);  /* past the MTU */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);
	n = udp(f, OUR_MAC, OUR_IP, OUR_PORT + 1, 100);           /* another port */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);
	n = udp(f, PEER_MAC, OUR_IP, OUR_PORT, 100);              /* another MAC */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);
	n = udp(f, BCAST, OUR_IP, OUR_PORT, 100);                 /* broadcast MAC */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);
	n = udp(f, OUR_MAC, PEER_IP, OUR_PORT, 100);              /* another IP */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);
	n = udp(f, OUR_MAC, OUR_IP, OUR_PORT, 100);
	put16(f + 34 + 4, 7);                                     /* UDP length under its header */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);
	put16(f + 34 + 4, 109);                                   /* UDP length past IP's */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);
	n = udp(f, OUR_MAC, OUR_IP, OUR_PORT, 100);
	f[14 + 10] ^= 0x01;                                       /* header checksum */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);
	n = udp(f, OUR_MAC, OUR_IP, OUR_PORT, 100);
	f[14] = 0x44;                                             /* IHL 4: 16 bytes */
	put16(f + 24, 0);
	put16(f + 24, (uint16_t)~be_sum(f + 14, 16));
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);
	n = udp(f, OUR_MAC, OUR_IP, OUR_PORT, 100);
	f[14] = 0x4f;                                             /* IHL 60 */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);             /* its checksum covers 20 */
	n = udp(f, OUR_MAC, OUR_IP, OUR_PORT, 100);
	f[14] = 0x65;                                             /* version 6 */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);
	n = ipv4(f, OUR_MAC, OUR_IP, 6, 20, 40, 0);               /* TCP */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);
	n = ipv4(f, OUR_MAC, OUR_IP, 17, 20, 4, 0);               /* UDP shorter than its header */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);

	/* fragments: more-fragments set, or an offset */
	n = ipv4(f, OUR_MAC, OUR_IP, 17, 20, 200, 0x2000);
	CHECK(classify(f, n, &fi) == QV_FRAME_FRAGMENT);
	n = ipv4(f, OUR_MAC, OUR_IP, 17, 20, 200, 0x2000 | 25);
	CHECK(classify(f, n, &fi) == QV_FRAME_FRAGMENT);
	n = ipv4(f, OUR_MAC, OUR_IP, 17, 20, 200, 25);
	CHECK(classify(f, n, &fi) == QV_FRAME_FRAGMENT);
	n = ipv4(f, OUR_MAC, PEER_IP, 17, 20, 200, 0x2000);       /* not ours */
	CHECK(classify(f, n, &fi) == QV_FRAME_OTHER);

	/* VLAN-tagged UDP to us, IPv6, and short frames */
	n = udp(f + 4, OUR_MAC, OUR_IP, OUR_PORT, 100);
	memcpy(f, OUR_MAC, 6);
	memcpy(f + 6, PEER_MAC, 6);
	put16(f + 12, 0x8100);
	put16(f + 14, 5);
	put16(f + 16, 0x0800);
	CHECK(classify(f, n + 4, &fi) == QV_FRAME_OTHER);
	n = eth(f, OUR_MAC, 0x86dd);
	memset(f + n, 0, 60);
	CHECK(classify(f, n + 60, &fi) == QV_FRAME_OTHER);
	for (uint32_t len = 0; len < 34; len++) {
		n = udp(f, OUR_MAC, OUR_IP, OUR_PORT, 100);
		CHECK(classify(f, len, &fi) == QV_FRAME_OTHER);
	}

	/* qv_frame_sum: host-order words, the byte swap of RFC 1071's sum. */
	srand(7);
	for (int t = 0; t < 1000; t++) {
		uint32_t len = 2 * (uint32_t)(rand() % 40);
		for (uint32_t i = 0; i < len; i++)
			f[i] = (uint8_t)rand();
		CHECK(qv_frame_sum(f, len) == htons(be_sum(f, len)));
	}
	if (failures) {
		printf("%d checks failed\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
