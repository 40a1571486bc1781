/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp_dpdk.c - the DPDK UDP back end: one Ethernet port, one RX/TX queue
 * pair per worker, everything answered from the worker's own poll loop.
 *
 * Threads. quiverd's workers are its own pthreads, not EAL lcores. The
 * burst functions are safe from any thread as long as one thread owns each
 * queue, which is how queues are handed out (queue i to worker i). The mbuf
 * pool is made without a per-lcore cache: a thread that is not an EAL lcore
 * has no cache slot (rte_mempool_default_cache() returns NULL for it), so a
 * cache would be dead weight, and nothing needs rte_thread_register().
 *
 * One turn. rte_eth_rx_burst takes up to BURST frames; each is classified
 * from its headers (Ethernet, then ARP or IPv4, then ICMP or UDP):
 *  - ARP request for our address: turned into the reply in place;
 *  - ICMP echo request to our address: turned into the echo reply in place;
 *  - UDP to our address and port: allow-list on the source address, the
 *    shared parser; the reply is built in a fresh mbuf (the output must not
 *    overwrite the input it is computed from). LOOKUP and BAD_REQUEST are
 *    answered at once; an INFER becomes an item of the burst's batch;
 *  - anything else: freed and counted by class.
 * Then the burst's INFERs are served by one qv_worker_serve_batch() call
 * (the same model version's requests run as one batched model call, a
 * lone request in place), their replies sealed (lengths, checksums), the
 * request frames freed (the inputs were read from them) and all replies
 * leave with one rte_eth_tx_burst; what the port does not take is freed
 * and counted. No allocation other than mbufs from the pool, no lock, no
 * log.
 *
 * Checksums are computed in software: the port is configured with no
 * offloads, since a vdev such as net_af_packet offers none to rely on. A
 * received frame's checksums are not verified except the IPv4 header's
 * (the UDP checksum of a veth peer's frame is often only partial).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_arp.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_udp.h>

#include "log.h"
#include "quiver.h"
#include "serve.h"
#include "udp.h"
#include "udp_dpdk.h"
#include "udp_frame.h"
#include "worker.h"

#define BURST 32u
#define NB_RXD 512u
#define NB_TXD 512u
#define EAL_MAX_ARGS 64u
/* An IPv4 + UDP reply never exceeds a standard Ethernet MTU: requests
 * that would need more are refused by the route (out_cap below). */
#define MTU 1500u
#define L2_LEN sizeof(struct rte_ether_hdr)
#define L3_LEN sizeof(struct rte_ipv4_hdr)
#define L4_LEN sizeof(struct rte_udp_hdr)
#define REPLY_HDRS (L2_LEN + L3_LEN + L4_LEN + sizeof(struct qv_udp_rep_hdr))
#define MAX_UDP_PAYLOAD (MTU - L3_LEN - L4_LEN)
_Static_assert(MAX_UDP_PAYLOAD == QV_FRAME_MAX_UDP_PAYLOAD && L2_LEN == QV_FRAME_L2_LEN &&
	       L3_LEN == QV_FRAME_L3_LEN && L4_LEN == QV_FRAME_L4_LEN,
	       "udp_frame.c classifies with the same header sizes");

_Static_assert(MAX_UDP_PAYLOAD % 64 == 0 && sizeof(struct qv_udp_req_hdr) % 16 == 0,
	       "every copied input starts 16-byte aligned");

/* Written by the owning worker only (relaxed load + store, no RMW), read by
 * the control thread with relaxed loads. */
struct dpdk_counters {
	_Atomic uint64_t rx, tx, dropped_allow, bad_request, junk, lookups, tx_dropped;
	_Atomic uint64_t rx_frames, arp, icmp, frag, other, multiseg, tx_frames, tx_full, nomem;
};

struct qv_udp_dpdk_queue {
	/* worker's, read every frame */
	const struct qv_udp_dpdk *d;
	uint16_t port;
	uint16_t qid;
	uint32_t n_tx;
	uint32_t n_items;
	struct rte_mbuf *tx[BURST];
	struct rte_mbuf *item_m[BURST];       /* items[i]'s reply, not yet sealed */
	struct qv_batch_item items[BURST];    /* the burst's INFERs */
	alignas(64) struct dpdk_counters cnt;
	/* Inputs land where the PMD put the frame, usually 2 bytes off a
	 * 4-byte boundary (14-byte Ethernet header): they are copied here so
	 * the kernels read aligned floats. One datagram per item. */
	alignas(64) uint8_t in_copy[BURST][MAX_UDP_PAYLOAD];
};

struct qv_udp_dpdk {
	uint16_t port;
	uint16_t udp_port_be;
	uint32_t ip_be;
	struct rte_ether_addr mac;
	struct qv_frame_self self;      /* mac, ip_be, udp_port_be for qv_frame_classify */
	uint32_t nq;
	struct qv_allow_list allow;
	struct rte_mempool *pool;
	bool started;
	struct qv_udp_dpdk_queue *q;    /* [nq], each on its own cache lines */
	char *eal_buf;
	char *eal_argv[EAL_MAX_ARGS + 2];
};

static inline void cnt_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static inline uint64_t cnt_get(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* ---- slow path --------------------------------------------------------- */

/* "a b  c" -> argv {"quiverd", "a", "b", "c"}; the strings live in d->eal_buf
 * for the life of the process (EAL may keep pointers into argv). */
static int split_eal_args(struct qv_udp_dpdk *d, const char *args, int *ret_argc)
{
	char *save = NULL, *tok;
	int argc = 0;

	d->eal_buf = strdup(args ? args : "");
	if (d->eal_buf == NULL)
		return -ENOMEM;
	d->eal_argv[argc++] = (char *)"quiverd";
	for (tok = strtok_r(d->eal_buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (argc > (int)EAL_MAX_ARGS)
			return -E2BIG;
		d->eal_argv[argc++] = tok;
	}
	d->eal_argv[argc] = NULL;
	*ret_argc = argc;
	return 0;
}

static int eal_init(struct qv_udp_dpdk *d, const char *args)
{
	static bool eal_done;
	cpu_set_t saved;
	bool have_saved;
	int argc, r;

	if (eal_done)
		return -EALREADY; /* EAL cannot be initialised twice in a process */
	r = split_eal_args(d, args, &argc);
	if (r < 0)
		return r;
	have_saved = sched_getaffinity(0, sizeof(saved), &saved) == 0;
	r = rte_eal_init(argc, d->eal_argv);
	if (r < 0)
		return rte_errno > 0 ? -rte_errno : -EINVAL;
	eal_done = true;
	/* EAL pinned this (control) thread to the main lcore; the control
	 * thread should run where it ran before, the workers pin themselves. */
	if (have_saved)
		(void)sched_setaffinity(0, sizeof(saved), &saved);
	return 0;
}

static int port_init(struct qv_udp_dpdk *d, const struct qv_udp_dpdk_cfg *cfg)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	uint16_t pid, nb_rxd = NB_RXD, nb_txd = NB_TXD;
	bool found = false;
	unsigned n_mbufs;
	int socket, r;

	RTE_ETH_FOREACH_DEV(pid) {
		found = true;
		break;
	}
	if (!found)
		return -ENODEV;
	d->port = pid;
	r = rte_eth_dev_info_get(pid, &info);
	if (r < 0)
		return r;
	if (info.max_rx_queues < cfg->nqueues || info.max_tx_queues < cfg->nqueues) {
		qv_log(QV_LOG_ERROR, "dpdk: port %u has %u rx / %u tx queues, %u workers need one each",
		       pid, info.max_rx_queues, info.max_tx_queues, cfg->nqueues);
		return -ENODEV;
	}
	socket = rte_eth_dev_socket_id(pid);
	if (socket < 0)
		socket = (int)rte_socket_id();
	/* Every queue's RX ring full plus its TX ring full plus one burst in
	 * each worker's hands, rounded up to 2^n - 1 (the ring's best size). */
	n_mbufs = 4095;
	while (n_mbufs < cfg->nqueues * (NB_RXD + NB_TXD + 2 * BURST) + 512)
		n_mbufs = n_mbufs * 2 + 1;
	d->pool = rte_pktmbuf_pool_create("qv_dpdk_pool", n_mbufs, 0, 0,
					  RTE_MBUF_DEFAULT_BUF_SIZE, socket);
	if (d->pool == NULL)
		return rte_errno > 0 ? -rte_errno : -ENOMEM;

	memset(&conf, 0, sizeof(conf));
	/* No offloads: software checksums work on every PMD (see the top). */
	conf.rxmode.mq_mode = cfg->nqueues > 1 ? RTE_ETH_MQ_RX_RSS : RTE_ETH_MQ_RX_NONE;
	if (cfg->nqueues > 1)
		conf.rx_adv_conf.rss_conf.rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) &
						   info.flow_type_rss_offloads;
	if (conf.rx_adv_conf.rss_conf.rss_hf == 0)
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_NONE;
	r = rte_eth_dev_configure(pid, (uint16_t)cfg->nqueues, (uint16_t)cfg->nqueues, &conf);
	if (r < 0)
		return r;
	r = rte_eth_dev_adjust_nb_rx_tx_desc(pid, &nb_rxd, &nb_txd);
	if (r < 0)
		return r;
	for (uint16_t q = 0; q < cfg->nqueues; q++) {
		r = rte_eth_rx_queue_setup(pid, q, nb_rxd, (unsigned)socket, NULL, d->pool);
		if (r < 0)
			return r;
		r = rte_eth_tx_queue_setup(pid, q, nb_txd, (unsigned)socket, NULL);
		if (r < 0)
			return r;
	}
	r = rte_eth_macaddr_get(pid, &d->mac);
	if (r < 0)
		return r;
	r = rte_eth_dev_start(pid);
	if (r < 0)
		return r;
	d->started = true;
	return 0;
}

int qv_udp_dpdk_open(const struct qv_udp_dpdk_cfg *cfg, struct qv_udp_dpdk **ret)
{
	struct qv_udp_dpdk *d;
	struct in_addr ia;
	int r;

	if (cfg == NULL || ret == NULL || cfg->ip == NULL || cfg->udp_port == 0 ||
	    cfg->nqueues == 0 || cfg->nqueues > UINT16_MAX)
		return -EINVAL;
	if (inet_pton(AF_INET, cfg->ip, &ia) != 1)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->ip_be = ia.s_addr;
	d->udp_port_be = htons(cfg->udp_port);
	d->nq = cfg->nqueues;
	if (cfg->allow != NULL)
		d->allow = *cfg->allow;
	d->q = aligned_alloc(64, sizeof(*d->q) * cfg->nqueues);
	if (d->q == NULL) {
		free(d);
		return -ENOMEM;
	}
	memset(d->q, 0, sizeof(*d->q) * cfg->nqueues);

	r = eal_init(d, cfg->eal_args);
	if (r < 0) {
		qv_log(QV_LOG_ERROR, "dpdk: EAL init with \"%s\": %s", cfg->eal_args ? cfg->eal_args : "",
		       strerror(-r));
		goto fail;
	}
	r = port_init(d, cfg);
	if (r < 0) {
		qv_log(QV_LOG_ERROR, "dpdk: port setup: %s", strerror(-r));
		goto fail;
	}
	memcpy(d->self.mac, d->mac.addr_bytes, sizeof(d->self.mac));
	d->self.ip_be = d->ip_be;
	d->self.port_be = d->udp_port_be;
	for (uint32_t i = 0; i < d->nq; i++) {
		d->q[i].d = d;
		d->q[i].port = d->port;
		d->q[i].qid = (uint16_t)i;
	}
	qv_log(QV_LOG_INFO,
	       "dpdk: port %u (%02x:%02x:%02x:%02x:%02x:%02x) %u queue(s), serving %s udp %u",
	       d->port, d->mac.addr_bytes[0], d->mac.addr_bytes[1], d->mac.addr_bytes[2],
	       d->mac.addr_bytes[3], d->mac.addr_bytes[4], d->mac.addr_bytes[5], d->nq, cfg->ip,
	       (unsigned)cfg->udp_port);
	*ret = d;
	return 0;
fail:
	qv_udp_dpdk_close(d);
	return r;
}

struct qv_udp_dpdk_queue *qv_udp_dpdk_queue(struct qv_udp_dpdk *d, uint32_t i)
{
	return i < d->nq ? &d->q[i] : NULL;
}

void qv_udp_dpdk_stats(const struct qv_udp_dpdk *d, struct qv_udp_dpdk_stats *ret)
{
	struct qv_udp_dpdk_stats s;

	memset(&s, 0, sizeof(s));
	for (uint32_t i = 0; i < d->nq; i++) {
		const struct dpdk_counters *c = &d->q[i].cnt;

		s.udp.rx += cnt_get(&c->rx);
		s.udp.tx += cnt_get(&c->tx);
		s.udp.dropped_allow += cnt_get(&c->dropped_allow);
		s.udp.bad_request += cnt_get(&c->bad_request);
		s.udp.junk += cnt_get(&c->junk);
		s.udp.lookups += cnt_get(&c->lookups);
		s.udp.tx_dropped += cnt_get(&c->tx_dropped);
		s.rx_frames += cnt_get(&c->rx_frames);
		s.arp_replies += cnt_get(&c->arp);
		s.icmp_replies += cnt_get(&c->icmp);
		s.dropped_fragment += cnt_get(&c->frag);
		s.dropped_other += cnt_get(&c->other);
		s.dropped_multiseg += cnt_get(&c->multiseg);
		s.tx_frames += cnt_get(&c->tx_frames);
		s.tx_full += cnt_get(&c->tx_full);
		s.nomem += cnt_get(&c->nomem);
	}
	*ret = s;
}

void qv_udp_dpdk_close(struct qv_udp_dpdk *d)
{
	if (d == NULL)
		return;
	if (d->started) {
		struct qv_udp_dpdk_stats s;

		qv_udp_dpdk_stats(d, &s);
		qv_log(QV_LOG_INFO,
		       "dpdk: counters frames_rx %llu frames_tx %llu arp %llu icmp %llu "
		       "udp_rx %llu udp_tx %llu lookups %llu bad_request %llu junk %llu "
		       "dropped_allow %llu fragment %llu other %llu multiseg %llu tx_full %llu "
		       "nomem %llu",
		       (unsigned long long)s.rx_frames, (unsigned long long)s.tx_frames,
		       (unsigned long long)s.arp_replies, (unsigned long long)s.icmp_replies,
		       (unsigned long long)s.udp.rx, (unsigned long long)s.udp.tx,
		       (unsigned long long)s.udp.lookups, (unsigned long long)s.udp.bad_request,
		       (unsigned long long)s.udp.junk, (unsigned long long)s.udp.dropped_allow,
		       (unsigned long long)s.dropped_fragment, (unsigned long long)s.dropped_other,
		       (unsigned long long)s.dropped_multiseg, (unsigned long long)s.tx_full,
		       (unsigned long long)s.nomem);
		(void)rte_eth_dev_stop(d->port);
		(void)rte_eth_dev_close(d->port);
	}
	/* Freed after the port: the PMD returns its mbufs to the pool on close. */
	if (d->pool != NULL)
		rte_mempool_free(d->pool);
	/* rte_eal_cleanup() is left out on purpose: EAL cannot be initialised
	 * again in this process anyway, and exit releases its memory. */
	free(d->q);
	free(d->eal_buf);
	free(d);
}

/* ---- hot path ---------------------------------------------------------- */

static void queue_tx(struct qv_udp_dpdk_queue *q, struct rte_mbuf *m)
{
	/* At most one reply per received frame and at most BURST frames per
	 * turn, so there is always room. */
	q->tx[q->n_tx++] = m;
}

/* An ARP request for our address (qv_frame_classify checked it). */
static void handle_arp(struct qv_udp_dpdk_queue *q, struct rte_mbuf *m, struct rte_ether_hdr *eth)
{
	const struct qv_udp_dpdk *d = q->d;
	struct rte_arp_hdr *arp = rte_pktmbuf_mtod_offset(m, struct rte_arp_hdr *, L2_LEN);

	/* The request becomes the reply: the asker is the new target. */
	arp->arp_opcode = htons(RTE_ARP_OP_REPLY);
	arp->arp_data.arp_tha = arp->arp_data.arp_sha;
	arp->arp_data.arp_tip = arp->arp_data.arp_sip;
	arp->arp_data.arp_sha = d->mac;
	arp->arp_data.arp_sip = d->ip_be;
	eth->dst_addr = arp->arp_data.arp_tha;
	eth->src_addr = d->mac;
	cnt_add(&q->cnt.arp, 1);
	queue_tx(q, m);
}

static void ip_reply_hdr(struct rte_ipv4_hdr *ip, uint32_t src_be, uint32_t dst_be,
			 uint16_t total_len, uint8_t proto)
{
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0;
	ip->total_length = htons(total_len);
	ip->packet_id = 0;
	ip->fragment_offset = htons(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = 64;
	ip->next_proto_id = proto;
	ip->src_addr = src_be;
	ip->dst_addr = dst_be;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
}

/* An ICMP echo request to us (qv_frame_classify checked it). */
static void handle_icmp(struct qv_udp_dpdk_queue *q, struct rte_mbuf *m, struct rte_ether_hdr *eth,
			struct rte_ipv4_hdr *ip, uint32_t ihl, uint32_t ip_len)
{
	const struct qv_udp_dpdk *d = q->d;
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)(void *)((uint8_t *)ip + ihl);
	uint32_t icmp_len = ip_len - ihl;

	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	icmp->icmp_cksum = 0;
	icmp->icmp_cksum = (uint16_t)~rte_raw_cksum(icmp, icmp_len);
	if (ihl != L3_LEN) {
		/* Options are not echoed: move the ICMP message up. */
		memmove((uint8_t *)ip + L3_LEN, icmp, icmp_len);
		ip_len = (uint32_t)L3_LEN + icmp_len;
	}
	ip_reply_hdr(ip, d->ip_be, ip->src_addr, (uint16_t)ip_len, IPPROTO_ICMP);
	eth->dst_addr = eth->src_addr;
	eth->src_addr = d->mac;
	m->data_len = (uint16_t)(L2_LEN + ip_len);
	m->pkt_len = m->data_len;
	cnt_add(&q->cnt.icmp, 1);
	queue_tx(q, m);
}

/* The reply frame's payload: the qv_udp reply header, then outputs. */
static inline uint8_t *reply_payload(struct rte_mbuf *r)
{
	return rte_pktmbuf_mtod(r, uint8_t *) + L2_LEN + L3_LEN + L4_LEN;
}

/* Lengths and checksums of a reply whose addresses are set and whose
 * payload is `rlen` bytes; queues it. */
static void reply_seal(struct qv_udp_dpdk_queue *q, struct rte_mbuf *r, uint32_t rlen)
{
	uint8_t *frame = rte_pktmbuf_mtod(r, uint8_t *);
	struct rte_ipv4_hdr *rip = (struct rte_ipv4_hdr *)(void *)(frame + L2_LEN);
	struct rte_udp_hdr *rudp = (struct rte_udp_hdr *)(void *)(frame + L2_LEN + L3_LEN);

	/* handle_udp left the asker's address in dst_addr. */
	ip_reply_hdr(rip, q->d->ip_be, rip->dst_addr, (uint16_t)(L3_LEN + L4_LEN + rlen),
		     IPPROTO_UDP);
	rudp->dgram_len = htons((uint16_t)(L4_LEN + rlen));
	rudp->dgram_cksum = 0;
	rudp->dgram_cksum = rte_ipv4_udptcp_cksum(rip, rudp);
	r->data_len = (uint16_t)(L2_LEN + L3_LEN + L4_LEN + rlen);
	r->pkt_len = r->data_len;
	r->l2_len = L2_LEN;
	r->l3_len = L3_LEN;
	cnt_add(&q->cnt.tx, 1);
	queue_tx(q, r);
}

/*
 * A UDP datagram to our address and port; the caller frees the request's
 * mbuf, after the burst's batch ran (an INFER's input may be read from it).
 * The reply, if any, is a new mbuf: sealed and queued now for a LOOKUP or
 * BAD_REQUEST, kept with its batch item for an INFER.
 */
static void handle_udp(struct qv_udp_dpdk_queue *q, struct qv_worker *w,
		       const struct rte_ether_hdr *eth, const struct rte_ipv4_hdr *ip,
		       const struct rte_udp_hdr *udp, uint32_t dgram_len)
{
	const struct qv_udp_dpdk *d = q->d;
	struct sockaddr_in src = { .sin_family = AF_INET };
	const uint8_t *payload = (const uint8_t *)(udp + 1);
	struct qv_udp_parsed p;
	enum qv_udp_verdict v;
	uint32_t plen = dgram_len - (uint32_t)L4_LEN, rlen;

	cnt_add(&q->cnt.rx, 1);
	src.sin_addr.s_addr = ip->src_addr;
	src.sin_port = udp->src_port;
	if (!qv_allow_check(&d->allow, (const struct sockaddr *)&src, sizeof(src))) {
		cnt_add(&q->cnt.dropped_allow, 1);
		return;
	}
	v = qv_udp_parse_request(payload, plen, false, &p);
	if (v == QV_UDP_V_JUNK) {
		cnt_add(&q->cnt.junk, 1);
		return;
	}
	struct rte_mbuf *r = rte_pktmbuf_alloc(d->pool);
	if (r == NULL) {
		cnt_add(&q->cnt.nomem, 1); /* the client times out, as on any loss */
		cnt_add(&q->cnt.tx_dropped, 1);
		return;
	}
	/* Place the reply so its outputs start 16-byte aligned for the kernels. */
	uint8_t *base = (uint8_t *)r->buf_addr + RTE_PKTMBUF_HEADROOM;
	uint16_t shift = (uint16_t)((16u - ((uintptr_t)(base + REPLY_HDRS) & 15u)) & 15u);
	r->data_off = (uint16_t)(RTE_PKTMBUF_HEADROOM + shift);
	uint8_t *frame = rte_pktmbuf_mtod(r, uint8_t *);
	uint8_t *out = reply_payload(r);
	uint32_t room = (uint32_t)(r->buf_len - r->data_off) - (uint32_t)(L2_LEN + L3_LEN + L4_LEN);
	if (room > MAX_UDP_PAYLOAD)
		room = MAX_UDP_PAYLOAD;

	/* Addresses now, while the request's headers are at hand; lengths
	 * and checksums in reply_seal. */
	struct rte_ether_hdr *reth = (struct rte_ether_hdr *)(void *)frame;
	struct rte_ipv4_hdr *rip = (struct rte_ipv4_hdr *)(void *)(frame + L2_LEN);
	struct rte_udp_hdr *rudp = (struct rte_udp_hdr *)(void *)(frame + L2_LEN + L3_LEN);

	reth->dst_addr = eth->src_addr;
	reth->src_addr = d->mac;
	reth->ether_type = htons(RTE_ETHER_TYPE_IPV4);
	rip->dst_addr = ip->src_addr;
	rudp->src_port = d->udp_port_be;
	rudp->dst_port = udp->src_port;

	switch (v) {
	case QV_UDP_V_INFER: {
		/* At most one item per frame and BURST frames a turn: fits. */
		uint32_t k = q->n_items++;

		if (((uintptr_t)(payload + p.in_off) & 15u) != 0) {
			/* plen <= MAX_UDP_PAYLOAD: checked by the caller */
			memcpy(q->in_copy[k], payload, plen);
			payload = q->in_copy[k];
		}
		qv_udp_serve_prepare(&q->items[k], &p, payload, out,
				     room - (uint32_t)sizeof(struct qv_udp_rep_hdr));
		q->item_m[k] = r;
		return; /* sealed after the batch */
	}
	case QV_UDP_V_LOOKUP:
		rlen = (uint32_t)qv_udp_serve_lookup(w, &p, out);
		cnt_add(&q->cnt.lookups, 1);
		break;
	default:
		rlen = (uint32_t)qv_udp_put_reply_hdr(out, (uint8_t)p.version, (uint8_t)p.reply_type, QV_BAD_REQUEST, 0,
						      0, p.request_id, 0);
		cnt_add(&q->cnt.bad_request, 1);
		break;
	}
	reply_seal(q, r, rlen);
}

/* Classifies one frame (udp_frame.c); returns true if it was queued for TX (in place). */
static bool handle_frame(struct qv_udp_dpdk_queue *q, struct qv_worker *w, struct rte_mbuf *m)
{
	const struct qv_udp_dpdk *d = q->d;
	uint32_t len = rte_pktmbuf_data_len(m);
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(void *)(eth + 1);
	struct qv_frame_info fi;

	if (m->nb_segs != 1 || rte_pktmbuf_pkt_len(m) != len) {
		cnt_add(&q->cnt.multiseg, 1);
		return false;
	}
	switch (qv_frame_classify((const uint8_t *)eth, len, &d->self, &fi)) {
	case QV_FRAME_ARP_REQUEST:
		handle_arp(q, m, eth);
		return true;
	case QV_FRAME_ICMP_ECHO:
		handle_icmp(q, m, eth, ip, fi.ihl, fi.ip_len);
		return true;
	case QV_FRAME_UDP:
		handle_udp(q, w, eth, ip,
			   (const struct rte_udp_hdr *)(const void *)((uint8_t *)eth + fi.l4_off),
			   fi.udp_len);
		return false;
	case QV_FRAME_FRAGMENT:
		cnt_add(&q->cnt.frag, 1);
		return false;
	default:
		cnt_add(&q->cnt.other, 1);
		return false;
	}
}

int qv_udp_dpdk_poll(struct qv_udp_dpdk_queue *q, struct qv_worker *w)
{
	struct rte_mbuf *rx[BURST], *drop[BURST];
	uint16_t n, sent;
	uint32_t n_drop = 0;

	n = rte_eth_rx_burst(q->port, q->qid, rx, BURST);
	if (n == 0)
		return 0;
	cnt_add(&q->cnt.rx_frames, n);
	q->n_tx = 0;
	q->n_items = 0;
	for (uint16_t i = 0; i < n; i++) {
		if (i + 1 < n)
			rte_prefetch0(rte_pktmbuf_mtod(rx[i + 1], void *));
		if (!handle_frame(q, w, rx[i]))
			drop[n_drop++] = rx[i];
	}
	if (q->n_items > 0) {
		qv_worker_serve_batch(w, q->items, q->n_items);
		for (uint32_t k = 0; k < q->n_items; k++) {
			struct rte_mbuf *r = q->item_m[k];

			reply_seal(q, r, (uint32_t)qv_udp_serve_finish(&q->items[k],
								       reply_payload(r)));
		}
	}
	/* After the batch: inputs may have been read in place from these. */
	if (n_drop > 0)
		rte_pktmbuf_free_bulk(drop, n_drop);
	if (q->n_tx > 0) {
		sent = rte_eth_tx_burst(q->port, q->qid, q->tx, (uint16_t)q->n_tx);
		cnt_add(&q->cnt.tx_frames, sent);
		if (sent < q->n_tx) {
			cnt_add(&q->cnt.tx_full, q->n_tx - sent);
			rte_pktmbuf_free_bulk(q->tx + sent, q->n_tx - sent);
		}
		q->n_tx = 0;
	}
	/* The answers are out: a mirrored request drawn by the batch may run. */
	if (q->n_items > 0)
		qv_worker_shadow_flush(w);
	return n;
}
