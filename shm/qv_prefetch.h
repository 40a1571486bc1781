/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qv_prefetch.h - software prefetch of slot regions, for the two places a
 * round trip would otherwise pay a dependent cache miss: the worker learns
 * a request's slot from its descriptor and then misses on the slot's input;
 * the client learns the slot from the completion and then misses on the
 * output. Issuing the prefetch as soon as the address is known (worker: for
 * a whole burst of descriptors before any is validated or run, as DPDK's
 * l3fwd prefetches the packets of a burst; client: while it spins, since a
 * synchronous call knows its slot before the completion arrives) overlaps
 * the miss with other work.
 *
 * A prefetch never faults, so a bad address costs nothing but a useless
 * line; callers still only prefetch slots they have bounds-checked, so no
 * line outside the channel is ever pulled in on a client's word.
 */
#ifndef QV_PREFETCH_H
#define QV_PREFETCH_H

#include <stdint.h>

#include "qv_shm.h"

/* Lines prefetched at most per region: the first rows of a large batch are
 * enough to start on; the hardware prefetcher follows a linear walk. */
#define QV_PREFETCH_MAX_LINES 4u

/* Prefetches for reading the first min(bytes, QV_PREFETCH_MAX_LINES lines) at p. */
static inline void qv_prefetch_rd(const void *p, uint32_t bytes)
{
	const char *c = (const char *)p;
	uint32_t lines = (bytes + QV_CACHELINE - 1) / QV_CACHELINE;

	if (lines > QV_PREFETCH_MAX_LINES)
		lines = QV_PREFETCH_MAX_LINES;
	for (uint32_t i = 0; i < lines; i++)
		__builtin_prefetch(c + (uint64_t)i * QV_CACHELINE, 0, 3);
}

/* The same, with the intent to write (the line comes in exclusive). */
static inline void qv_prefetch_wr(void *p, uint32_t bytes)
{
	char *c = (char *)p;
	uint32_t lines = (bytes + QV_CACHELINE - 1) / QV_CACHELINE;

	if (lines > QV_PREFETCH_MAX_LINES)
		lines = QV_PREFETCH_MAX_LINES;
	for (uint32_t i = 0; i < lines; i++)
		__builtin_prefetch(c + (uint64_t)i * QV_CACHELINE, 1, 3);
}

#endif /* QV_PREFETCH_H */
