/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp_dpdk.h - quiverd's DPDK UDP back end: kernel bypass on one Ethernet
 * port, one RX/TX queue pair per worker.
 *
 * The data plane owns one IPv4 address on the port. It answers ARP
 * requests for that address and ICMP echo requests to it, serves the UDP
 * protocol of qv_udp_proto.h on one port (allow-list, parser and the
 * batched serve path shared with the io_uring back end, see udp.h), and
 * counts and drops everything else: other protocols, other addresses, IP
 * fragments and datagrams larger than one 1500-byte Ethernet frame (a
 * request must fit one frame: 1472 bytes of UDP payload), multi-segment
 * frames.
 *
 * Shape mirrors the io_uring back end: open once from the control thread,
 * one queue handle per worker whose poll function the worker calls every
 * turn, a counters snapshot, close. DPDK's EAL is initialised once per
 * process, by qv_udp_dpdk_open.
 */
#ifndef QV_UDP_DPDK_H
#define QV_UDP_DPDK_H

#include <stdint.h>

#include "udp.h"

struct qv_worker;
struct qv_udp_dpdk;
struct qv_udp_dpdk_queue;

struct qv_udp_dpdk_cfg {
	const char *eal_args;   /* e.g. "--no-huge -m 256 --vdev=net_af_packet0,iface=eth1" */
	const char *ip;         /* our IPv4 address, dotted quad */
	uint16_t udp_port;      /* host order, not 0 */
	uint32_t nqueues;       /* one per worker, >= 1 */
	const struct qv_allow_list *allow; /* copied; NULL: allow all */
};

/* Counters summed over every queue (each queue's are written by its worker
 * only, relaxed). */
struct qv_udp_dpdk_stats {
	struct qv_udp_stats udp; /* as the io_uring back end counts them */
	uint64_t rx_frames;     /* frames taken from the port */
	uint64_t arp_replies;
	uint64_t icmp_replies;
	uint64_t dropped_fragment; /* IPv4 fragments */
	uint64_t dropped_other; /* not for us, other protocols, malformed headers */
	uint64_t dropped_multiseg; /* frames the PMD chained over several mbufs */
	uint64_t tx_frames;     /* frames the port accepted */
	uint64_t tx_full;       /* replies the port refused (TX queue full) */
	uint64_t nomem;         /* no mbuf for a reply */
};

/*
 * Initialises DPDK's EAL with `cfg->eal_args` (split on spaces, argv[0]
 * "quiverd"; the caller's CPU affinity is restored afterwards so EAL's
 * pinning of the main lcore does not pin the control thread), takes the
 * first available port, configures cfg->nqueues RX/TX queue pairs with no
 * offloads, creates the mbuf pool and starts the port. Slow path, once per
 * process. Returns 0, -EINVAL (bad address, port, args), -ENODEV (no
 * port, or fewer queues than asked) or another -errno from DPDK.
 */
int qv_udp_dpdk_open(const struct qv_udp_dpdk_cfg *cfg, struct qv_udp_dpdk **ret);

/* Queue i (< nqueues): the handle the i-th worker polls. */
struct qv_udp_dpdk_queue *qv_udp_dpdk_queue(struct qv_udp_dpdk *d, uint32_t i);

/*
 * One non-blocking turn for the worker's poll loop: one RX burst, every
 * frame answered or dropped, replies sent with one TX burst. Returns the
 * number of frames handled (0: idle). Only the owning worker may call it.
 */
int qv_udp_dpdk_poll(struct qv_udp_dpdk_queue *q, struct qv_worker *w);

void qv_udp_dpdk_stats(const struct qv_udp_dpdk *d, struct qv_udp_dpdk_stats *ret);

/* Logs the counters, stops and closes the port, frees everything. Call
 * after every worker has stopped polling. NULL is a no-op. */
void qv_udp_dpdk_close(struct qv_udp_dpdk *d);

#endif /* QV_UDP_DPDK_H */
