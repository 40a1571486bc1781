/* SPDX-License-Identifier: Apache-2.0 */
/*
 * channel.h - the server side of one shared-memory channel.
 *
 * Ownership: the control thread creates a channel (memfd, mapping,
 * header), then hands it to one worker through that worker's mailbox.
 * From then on only the worker touches the ring state (`sq`, `cq`) and
 * polls it; the control thread touches only `hdr->server_state` (drain)
 * and its own bookkeeping fields. The worker hands it back by storing
 * `retired` with release after its last access; only then may the control
 * thread unmap and free it (see quiverd.c for the whole protocol).
 */
#ifndef QV_DP_CHANNEL_H
#define QV_DP_CHANNEL_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "qv_proto.h"
#include "qv_ring.h"
#include "qv_seg.h"
#include "qv_shm.h"
#include "sqe_check.h"

struct qv_chan {
	/* ---- worker-owned after hand-off (one cache line or two) ---- */
	struct qv_ring_cons sq;
	struct qv_ring_prod cq;
	struct qv_chan_limits lim;
	uint32_t slot_in_bytes;
	uint8_t *slots;
	uint64_t slot_stride;
	struct qv_seg_hdr *hdr;
	uint32_t held;            /* requests the worker holds for a fuller batch */
	uint32_t npush;           /* completions written this turn, not yet committed */

	/* ---- control-thread bookkeeping ---- */
	alignas(64) void *base;
	uint64_t bytes;
	uint32_t id;
	uint32_t worker;
	int node;                 /* NUMA node this struct lives on, -1 = heap */
	pid_t pid;
	uid_t uid;
	char client[33];

	/* ---- worker -> control hand-back: enum qv_chan_retired ---- */
	alignas(64) _Atomic uint32_t retired;
};

/*
 * Values of `retired`, each the worker's last store to the channel.
 * DROPPED: the worker stopped polling a corrupt channel on its own; the
 * control thread may free it if it has not posted RETIRE (else it waits for
 * ACKED, since the worker will still read the RETIRE message's channel).
 * ACKED: the worker processed RETIRE; the control thread may free it.
 */
enum qv_chan_retired {
	QV_CHAN_LIVE = 0,
	QV_CHAN_DROPPED = 1,
	QV_CHAN_ACKED = 2,
};

/*
 * Creates a channel for a validated layout: memfd (MFD_CLOEXEC |
 * MFD_ALLOW_SEALING), sized, mapped, header written (magic last, release),
 * sealed against resizing. *ret_memfd is the fd to pass to the client; the
 * caller closes it after sending (the mapping keeps the memory alive).
 * The struct is allocated on NUMA node `node` (-1: anywhere).
 */
int qv_chan_create(const struct qv_seg_layout *l, uint32_t id, uint32_t worker, int node,
		   struct qv_chan **ret_chan, int *ret_memfd);

/* Unmaps and frees. Only once the worker has retired it (or never had it). */
void qv_chan_destroy(struct qv_chan *c);

uint64_t qv_now_ns(void);

#endif /* QV_DP_CHANNEL_H */
