/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dpdk_frames.c - `dpdk_client frames IFACE PORT_MAC ADDR:PORT REPO`: the
 * DPDK back end fed a known set of datagrams and hand-made Ethernet frames,
 * so that its counters can be checked exactly afterwards (test_dpdk.sh reads
 * them with `quiverctl status --json` and `quiverctl metrics`).
 *
 * Run inside the test's namespace on a fresh daemon whose allow-list admits
 * only this host's address, with a permanent neighbour entry for the daemon
 * (so the kernel sends no ARP of its own). It sends, in order:
 *  - ARP_N ARP requests for the daemon's address (AF_PACKET), each answered;
 *  - one LOOKUP of trade-mlp (one datagram, no resend);
 *  - BURST INFER requests back to back without waiting (1..3 rows each),
 *    then collects every reply and checks each against its torch reference
 *    rows: what a batching back end must get right (scatter by request);
 *  - JUNK_N datagrams with a wrong magic (dropped, counted as junk);
 *  - DENIED_N valid requests from an address outside the allow-list
 *    (AF_PACKET, forged source): dropped and counted, never answered;
 *  - one valid INFER in an IPv4 header with options (IHL 6): udp_dpdk.c
 *    reads the header length from IHL, so it must be answered correctly;
 *  - one valid INFER in an IPv4 header with a wrong checksum: dropped as
 *    "other", never answered, not counted as UDP.
 * Then it prints one line, "expect k=v ...", the counters the daemon must
 * show (a fresh daemon starts from zero), and exits 0 if every reply check
 * held.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "dpdk_frames.h"
#include "quiver.h"
#include "qv_udp_proto.h"

#define ARP_N 2u
#define BURST 32u
#define JUNK_N 5u
#define DENIED_N 3u
#define FRAME_MAX 1514u
#define REPLY_WAIT_MS 5000

struct ctx {
	int ufd;                /* UDP socket connected to the daemon */
	int pfd;                /* AF_PACKET socket on the interface */
	int ifindex;
	uint8_t my_mac[6], port_mac[6];
	uint32_t my_ip, daemon_ip; /* network order */
	uint16_t my_port, daemon_port; /* network order */
	struct qv_model_desc d;
	struct qvt_ref ref;
	uint64_t rx, tx;        /* UDP datagrams the daemon must count */
};

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 255)
			return -EINVAL;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

static uint16_t ip_cksum(const uint8_t *p, size_t len)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Ethernet + IPv4 (with `nopt` bytes of options, a multiple of 4) + UDP
 * around `payload`; the IPv4 checksum is right unless `bad_cksum`. The UDP
 * checksum is 0 (none, allowed over IPv4). Returns the frame's length. */
static size_t build_udp_frame(const struct ctx *c, uint8_t *f, uint32_t src_ip,
			      const uint8_t *opt, size_t nopt, bool bad_cksum,
			      const uint8_t *payload, size_t plen)
{
	size_t ihl = 20 + nopt, ip_len = ihl + 8 + plen;
	uint8_t *ip = f + 14, *udp = ip + ihl;
	uint16_t ck;

	memcpy(f, c->port_mac, 6);
	memcpy(f + 6, c->my_mac, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, ihl);
	ip[0] = (uint8_t)(0x40 | ihl / 4);
	ip[2] = (uint8_t)(ip_len >> 8);
	ip[3] = (uint8_t)ip_len;
	ip[4] = 0x12;
	ip[5] = 0x34;
	ip[6] = 0x40; /* DF */
	ip[8] = 64;
	ip[9] = IPPROTO_UDP;
	memcpy(ip + 12, &src_ip, 4);
	memcpy(ip + 16, &c->daemon_ip, 4);
	if (nopt)
		memcpy(ip + 20, opt, nopt);
	ck = ip_cksum(ip, ihl);
	if (bad_cksum)
		ck ^= 0x0101;
	ip[10] = (uint8_t)(ck >> 8);
	ip[11] = (uint8_t)ck;
	memcpy(udp, &c->my_port, 2);
	memcpy(udp + 2, &c->daemon_port, 2);
	udp[4] = (uint8_t)((8 + plen) >> 8);
	udp[5] = (uint8_t)(8 + plen);
	udp[6] = udp[7] = 0;
	memcpy(udp + 8, payload, plen);
	return 14 + ip_len;
}

static void send_frame(const struct ctx *c, const uint8_t *f, size_t len)
{
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = c->ifindex,
				  .sll_halen = 6 };

	memcpy(to.sll_addr, c->port_mac, 6);
	if (sendto(c->pfd, f, len, 0, (struct sockaddr *)&to, sizeof(to)) != (ssize_t)len)
		qvt_die("frames: AF_PACKET send: %s", strerror(errno));
}

/* An INFER datagram of `rows` reference rows from row0. */
static size_t put_infer(const struct ctx *c, uint8_t *dg, uint32_t row0, uint32_t rows,
			uint64_t id)
{
	struct qv_udp_req_hdr h;
	uint32_t bytes = rows * c->d.in_dim * 4;

	memset(&h, 0, sizeof(h));
	h.magic = QV_UDP_MAGIC;
	h.version = QV_UDP_VERSION;
	h.type = QV_UDP_INFER;
	h.handle = c->d.handle;
	h.rows = rows;
	h.request_id = id;
	h.payload_bytes = bytes;
	memcpy(dg, &h, sizeof(h));
	memcpy(dg + sizeof(h), c->ref.x.data + (size_t)row0 * c->d.in_dim, bytes);
	return sizeof(h) + bytes;
}

/* Waits for one reply datagram on the UDP socket; returns its length or 0. */
static size_t recv_reply(const struct ctx *c, uint8_t *buf, size_t cap, int wait_ms)
{
	struct pollfd p = { .fd = c->ufd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, wait_ms) != 1)
		return 0;
	n = recv(c->ufd, buf, cap, 0);
	return n > 0 ? (size_t)n : 0;
}

/* A reply to `id` carrying reference rows [row0, row0 + rows). */
static void check_reply(const struct ctx *c, const uint8_t *rep, size_t n, uint64_t id,
			uint32_t row0, uint32_t rows, const char *what)
{
	struct qv_udp_rep_hdr h;
	_Alignas(16) float out[QV_UDP_MAX_OUT_BYTES / 4];

	if (n < sizeof(h)) {
		qvt_fail("%s: reply of %zu bytes", what, n);
		return;
	}
	memcpy(&h, rep, sizeof(h));
	if (h.magic != QV_UDP_MAGIC || h.type != QV_UDP_INFER_REPLY || h.request_id != id ||
	    h.status != QV_OK || h.payload_bytes != rows * c->d.out_dim * 4 ||
	    n != sizeof(h) + h.payload_bytes) {
		qvt_fail("%s: reply id %llu type %u status %u bytes %u (datagram %zu), want id %llu "
			 "OK %u bytes", what, (unsigned long long)h.request_id, h.type, h.status,
			 h.payload_bytes, n, (unsigned long long)id, rows * c->d.out_dim * 4);
		return;
	}
	memcpy(out, rep + sizeof(h), h.payload_bytes);
	if (qvt_compare(out, c->ref.y.data + (size_t)row0 * c->d.out_dim,
			(size_t)rows * c->d.out_dim, QVT_RTOL, QVT_ATOL, what))
		qvt_fail("%s: outputs differ from the torch reference", what);
}

static void arp_requests(struct ctx *c)
{
	int afd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ARP));
	struct sockaddr_ll me = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP),
				  .sll_ifindex = c->ifindex };
	uint8_t f[64], r[128];
	uint32_t got = 0;

	if (afd < 0 || bind(afd, (struct sockaddr *)&me, sizeof(me)) < 0)
		qvt_die("frames: ARP socket: %s", strerror(errno));
	for (uint32_t k = 0; k < ARP_N; k++) {
		memset(f, 0, sizeof(f));
		memset(f, 0xff, 6);
		memcpy(f + 6, c->my_mac, 6);
		f[12] = 0x08;
		f[13] = 0x06;
		f[15] = 1;      /* Ethernet */
		f[16] = 0x08;   /* IPv4 */
		f[18] = 6;
		f[19] = 4;
		f[21] = 1;      /* request */
		memcpy(f + 22, c->my_mac, 6);
		memcpy(f + 28, &c->my_ip, 4);
		memcpy(f + 38, &c->daemon_ip, 4);
		struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = c->ifindex,
					  .sll_halen = 6 };
		memset(to.sll_addr, 0xff, 6);
		if (sendto(afd, f, 42, 0, (struct sockaddr *)&to, sizeof(to)) != 42)
			qvt_die("frames: ARP send: %s", strerror(errno));
		/* Its reply: opcode 2 from the daemon's address with the port's MAC. */
		uint64_t t0 = qvt_now_ns();
		bool ok = false;
		while (!ok && qvt_now_ns() - t0 < (uint64_t)REPLY_WAIT_MS * 1000000ull) {
			struct pollfd p = { .fd = afd, .events = POLLIN };
			struct sockaddr_ll from;
			socklen_t fl = sizeof(from);
			if (poll(&p, 1, 100) != 1)
				continue;
			ssize_t n = recvfrom(afd, r, sizeof(r), 0, (struct sockaddr *)&from, &fl);
			if (n < 42 || from.sll_pkttype == PACKET_OUTGOING)
				continue;
			ok = r[21] == 2 && memcmp(r + 22, c->port_mac, 6) == 0 &&
			     memcmp(r + 28, &c->daemon_ip, 4) == 0 && memcmp(r + 38, &c->my_ip, 4) == 0;
		}
		got += ok;
	}
	if (got != ARP_N)
		qvt_fail("frames: %u of %u ARP requests answered with the port's MAC", got, ARP_N);
	close(afd);
}

static void lookup(struct ctx *c)
{
	uint8_t dg[128], rep[512];
	struct qv_udp_req_hdr h;
	struct qv_udp_rep_hdr rh;
	struct qv_udp_model m;
	static const char name[] = "trade-mlp";

	memset(&h, 0, sizeof(h));
	h.magic = QV_UDP_MAGIC;
	h.version = QV_UDP_VERSION;
	h.type = QV_UDP_LOOKUP;
	h.request_id = 77;
	h.payload_bytes = sizeof(name) - 1;
	memcpy(dg, &h, sizeof(h));
	memcpy(dg + sizeof(h), name, sizeof(name) - 1);
	if (send(c->ufd, dg, sizeof(h) + sizeof(name) - 1, 0) < 0)
		qvt_die("frames: lookup send: %s", strerror(errno));
	c->rx++;
	c->tx++;
	size_t n = recv_reply(c, rep, sizeof(rep), REPLY_WAIT_MS);
	if (n != sizeof(rh) + sizeof(m))
		qvt_die("frames: lookup reply of %zu bytes", n);
	memcpy(&rh, rep, sizeof(rh));
	memcpy(&m, rep + sizeof(rh), sizeof(m));
	if (rh.status != QV_OK || rh.request_id != 77 || m.in_dim == 0 || m.out_dim == 0)
		qvt_die("frames: lookup status %u id %llu", rh.status,
			(unsigned long long)rh.request_id);
	memset(&c->d, 0, sizeof(c->d));
	c->d.handle = m.handle;
	c->d.version = m.version;
	c->d.in_dim = m.in_dim;
	c->d.out_dim = m.out_dim;
	c->d.max_batch = m.max_batch;
}

/* BURST requests in flight at once; replies may come in any order. */
static void burst(struct ctx *c)
{
	static _Alignas(16) uint8_t dg[QV_UDP_MAX_DATAGRAM], rep[QV_UDP_MAX_DATAGRAM];
	uint32_t row0[BURST], rows[BURST], fit, maxr;
	bool seen[BURST] = { false };
	uint32_t got = 0;
	char what[64];

	/* One frame: 1472 bytes of UDP payload. */
	fit = (1472u - (uint32_t)sizeof(struct qv_udp_req_hdr)) / (c->d.in_dim * 4);
	maxr = fit < c->d.max_batch ? fit : c->d.max_batch;
	if (maxr > 3)
		maxr = 3;
	if (maxr == 0 || c->ref.rows < 3)
		qvt_die("frames: trade-mlp does not fit the burst test (fit %u, rows %u)", fit,
			c->ref.rows);
	for (uint32_t i = 0; i < BURST; i++) {
		rows[i] = 1 + i % maxr;
		row0[i] = (i * 7) % (c->ref.rows - rows[i] + 1);
		size_t len = put_infer(c, dg, row0[i], rows[i], 5000 + i);
		if (send(c->ufd, dg, len, 0) != (ssize_t)len)
			qvt_die("frames: burst send %u: %s", i, strerror(errno));
	}
	c->rx += BURST;
	c->tx += BURST;
	while (got < BURST) {
		size_t n = recv_reply(c, rep, sizeof(rep), REPLY_WAIT_MS);
		struct qv_udp_rep_hdr h;

		memset(&h, 0, sizeof(h));
		if (n == 0) {
			qvt_fail("frames: burst: %u of %u replies", got, BURST);
			return;
		}
		memcpy(&h, rep, n < sizeof(h) ? n : sizeof(h));
		uint64_t i = h.request_id - 5000;
		if (n < sizeof(h) || h.request_id < 5000 || i >= BURST || seen[i]) {
			qvt_fail("frames: burst: unexpected reply id %llu",
				 (unsigned long long)h.request_id);
			continue;
		}
		seen[i] = true;
		got++;
		snprintf(what, sizeof(what), "burst request %llu (rows %u+%u)",
			 (unsigned long long)i, row0[i], rows[i]);
		check_reply(c, rep, n, 5000 + i, row0[i], rows[i], what);
	}
	printf("dpdk frames: burst of %u requests (1..%u rows) all answered and checked\n", BURST,
	       maxr);
}

static void junk(struct ctx *c)
{
	uint8_t dg[64];

	for (uint32_t k = 0; k < JUNK_N; k++) {
		memset(dg, (int)('a' + k), sizeof(dg));
		if (send(c->ufd, dg, sizeof(dg), 0) < 0)
			qvt_die("frames: junk send: %s", strerror(errno));
	}
	c->rx += JUNK_N;
}

static void denied(struct ctx *c)
{
	static uint8_t dg[QV_UDP_MAX_DATAGRAM], f[FRAME_MAX];
	uint32_t other_ip = htonl(ntohl(c->my_ip) + 1); /* outside the allow-list */

	for (uint32_t k = 0; k < DENIED_N; k++) {
		size_t len = put_infer(c, dg, k, 1, 6000 + k);
		send_frame(c, f, build_udp_frame(c, f, other_ip, NULL, 0, false, dg, len));
	}
	c->rx += DENIED_N;
}

static void ip_options(struct ctx *c)
{
	static uint8_t dg[QV_UDP_MAX_DATAGRAM], f[FRAME_MAX], rep[QV_UDP_MAX_DATAGRAM];
	static const uint8_t opt[4] = { 1, 1, 1, 0 }; /* NOP, NOP, NOP, end of list */
	size_t len = put_infer(c, dg, 1, 1, 7000);

	send_frame(c, f, build_udp_frame(c, f, c->my_ip, opt, sizeof(opt), false, dg, len));
	c->rx++;
	c->tx++;
	size_t n = recv_reply(c, rep, sizeof(rep), REPLY_WAIT_MS);
	if (n == 0)
		qvt_fail("frames: no reply to a request in an IPv4 header with options");
	else
		check_reply(c, rep, n, 7000, 1, 1, "IPv4 options");
}

static void bad_checksum(struct ctx *c)
{
	static uint8_t dg[QV_UDP_MAX_DATAGRAM], f[FRAME_MAX], rep[QV_UDP_MAX_DATAGRAM];
	size_t len = put_infer(c, dg, 2, 1, 8000);

	send_frame(c, f, build_udp_frame(c, f, c->my_ip, NULL, 0, true, dg, len));
	size_t n = recv_reply(c, rep, sizeof(rep), 500);
	if (n != 0) {
		struct qv_udp_rep_hdr h;
		memset(&h, 0, sizeof(h));
		memcpy(&h, rep, n < sizeof(h) ? n : sizeof(h));
		qvt_fail("frames: a frame with a bad IPv4 checksum was answered (id %llu)",
			 (unsigned long long)h.request_id);
	}
}

int dpdk_frames(const char *iface, const char *port_mac, const char *ap, const char *repo)
{
	struct ctx c;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	struct ifreq ifr;
	char host[64];
	const char *colon = strrchr(ap, ':');
	int r;

	memset(&c, 0, sizeof(c));
	if (parse_mac(port_mac, c.port_mac) < 0 || colon == NULL ||
	    (size_t)(colon - ap) >= sizeof(host) || strlen(iface) >= IFNAMSIZ)
		qvt_die("frames: bad arguments");
	memcpy(host, ap, (size_t)(colon - ap));
	host[colon - ap] = '\0';
	a.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		qvt_die("frames: bad address %s", ap);
	c.daemon_ip = a.sin_addr.s_addr;
	c.daemon_port = a.sin_port;
	c.ufd = socket(AF_INET, SOCK_DGRAM, 0);
	if (c.ufd < 0 || connect(c.ufd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(c.ufd, (struct sockaddr *)&a, &al) < 0)
		qvt_die("frames: UDP socket: %s", strerror(errno));
	c.my_ip = a.sin_addr.s_addr;
	c.my_port = a.sin_port;

	c.pfd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: sends only */
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, iface, strlen(iface) + 1);
	if (c.pfd < 0 || ioctl(c.pfd, SIOCGIFHWADDR, &ifr) < 0)
		qvt_die("frames: AF_PACKET on %s: %s", iface, strerror(errno));
	memcpy(c.my_mac, ifr.ifr_hwaddr.sa_data, 6);
	c.ifindex = (int)if_nametoindex(iface);
	if (c.ifindex == 0)
		qvt_die("frames: no interface %s", iface);

	arp_requests(&c);
	lookup(&c);
	r = qvt_ref_load(repo, "trade-mlp", c.d.version, &c.ref);
	if (r < 0)
		qvt_die("frames: reference trade-mlp/%u: %s", c.d.version, strerror(-r));
	if (c.ref.in_dim != c.d.in_dim || c.ref.out_dim != c.d.out_dim)
		qvt_die("frames: lookup and reference disagree on trade-mlp's dims");
	burst(&c);
	junk(&c);
	denied(&c);
	ip_options(&c);
	bad_checksum(&c);
	/* Nothing else may come back (no answer to junk or denied frames). */
	uint8_t extra[64];
	if (recv_reply(&c, extra, sizeof(extra), 300) != 0)
		qvt_fail("frames: an unexpected extra reply arrived");

	printf("expect rx=%llu tx=%llu lookups=1 bad_request=0 junk=%u dropped_allow=%u "
	       "tx_dropped=0 arp_replies=%u dropped_other=1 dropped_fragment=0\n",
	       (unsigned long long)c.rx, (unsigned long long)c.tx, JUNK_N, DENIED_N, ARP_N);
	qvt_ref_free(&c.ref);
	close(c.pfd);
	close(c.ufd);
	return qvt_failures() ? 1 : 0;
}
