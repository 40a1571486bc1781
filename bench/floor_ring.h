/* SPDX-License-Identifier: Apache-2.0 */
/*
 * floor_ring.h - the physical floor of the shared-memory channel: one SPSC
 * ring pair (qv_ring.h, qv_sqe / qv_cqe entries) between two processes
 * pinned to two cores, each doing nothing but busy-polling, with a 64-byte
 * payload copied each way, addressed through the slot index the descriptor
 * and the completion carry (as quiverd's slots are). Any quiverd round trip
 * that does not prefetch costs at least this.
 */
#ifndef QV_FLOOR_RING_H
#define QV_FLOOR_RING_H

#include <stdint.h>

/*
 * Runs warmup + iters round trips and writes the latency of each of the
 * last iters (CLOCK_MONOTONIC ns, including one clock read) to
 * ret_lat_ns[0 .. iters-1]. A core < 0 is not pinned; server_core and
 * client_core should differ (busy-polling both on one core measures the
 * scheduler). Returns 0, -EINVAL (bad arguments or core), -ECHILD (the
 * server process died) or another negative errno.
 */
int qv_floor_ring(uint32_t iters, uint32_t warmup, int server_core, int client_core,
		  uint64_t *ret_lat_ns);

#endif /* QV_FLOOR_RING_H */
