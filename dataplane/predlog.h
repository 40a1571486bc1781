/* SPDX-License-Identifier: Apache-2.0 */
/*
 * predlog.h - the prediction log: a sampled feed of answered requests
 * (inputs, outputs, model, version, flags, routing key, request id,
 * timestamps, latency) written as newline-delimited JSON for drift
 * monitoring.
 *
 * Two halves:
 *  - workers decide per request (their own xorshift64* against the
 *    version's log_thr, one shift and one compare, no division) and push a
 *    fixed-size header plus copies of the input and output bytes into their
 *    own SPSC byte ring. A full ring drops the record and counts it; the
 *    push never blocks, locks, allocates or makes a syscall.
 *  - a logger thread (quiverd's, never a worker) drains every ring,
 *    formats JSON lines and writes DIR/MODEL.jsonl, rotating it at
 *    max_bytes into MODEL.TIMESTAMP.jsonl.gz (zlib) and keeping the newest
 *    `keep` of those.
 *
 * The ring is written by hand rather than taken from a library: Debian's
 * candidates (liblfds, DPDK's rte_ring) carry fixed-size entries or pull
 * in a runtime the data plane links optionally; records here are of
 * varying size, and a byte ring with two indices is the whole of it.
 */
#ifndef QV_DP_PREDLOG_H
#define QV_DP_PREDLOG_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "route_pick.h"

/* The fixed part of a record; payload (in_bytes, then out_bytes) follows. */
struct qv_plog_rec {
	uint32_t len;           /* bytes this record takes in the ring, a multiple of 8 */
	uint32_t handle;        /* route */
	uint32_t version;
	uint32_t flags;         /* QV_FLAG_* and QV_PLOG_SHADOW */
	uint32_t status;        /* enum qv_status */
	uint32_t rows;
	uint32_t in_bytes;
	uint32_t out_bytes;     /* 0 unless status is OK */
	uint64_t routing_key;
	uint64_t request_id;
	uint64_t submit_tsc;    /* when the client submitted it (0: unknown) */
	uint64_t start_tsc;     /* model run start */
	uint64_t end_tsc;       /* answer ready */
};
_Static_assert(sizeof(struct qv_plog_rec) == 72, "record header is 72 bytes");
_Static_assert(sizeof(struct qv_plog_rec) % 8 == 0, "records stay 8-byte aligned");

/* Record flag beside QV_FLAG_*: the request was mirrored to its route's shadow. */
#define QV_PLOG_SHADOW 0x100u

/* Sampling threshold: a request is taken when (x >> 1) < thr, x a 64-bit draw. */
#define QV_PLOG_THR_ONE (1ull << 63)

/*
 * Per-worker SPSC byte ring. Indices count bytes since creation (never
 * wrap in practice: 2^64 bytes); the buffer position is index & mask.
 */
struct qv_plog_ring {
	/* producer (worker) writes, consumer reads */
	alignas(64) _Atomic uint64_t head;
	/* consumer (logger) writes, producer reads */
	alignas(64) _Atomic uint64_t tail;
	/* the producer's own */
	alignas(64) uint64_t tail_cache;     /* last tail seen: most pushes read no shared line */
	uint64_t rng;                        /* xorshift64* state, non-zero */
	_Atomic uint64_t pushed;             /* single writer, relaxed */
	_Atomic uint64_t dropped;            /* single writer, relaxed: full ring or too large */
	/* the consumer's own */
	alignas(64) uint64_t head_cache;
	/* read-only after init */
	alignas(64) uint64_t cap;            /* bytes, a power of two */
	uint64_t mask;
	int node;                            /* NUMA node the ring lives on */
	alignas(64) uint8_t data[];
};

/* Bytes to allocate for a ring of cap data bytes. */
static inline size_t qv_plog_ring_size(uint64_t cap)
{
	return sizeof(struct qv_plog_ring) + (size_t)cap;
}

/* Initializes zeroed memory of qv_plog_ring_size(cap) bytes; cap a power of two >= 256. */
void qv_plog_ring_init(struct qv_plog_ring *r, uint64_t cap, uint64_t seed, int node);

/* Copies n bytes to ring position pos, wrapping at the end. */
static inline void qv_plog_copy_in(struct qv_plog_ring *r, uint64_t pos, const void *src, size_t n)
{
	uint64_t at = pos & r->mask, first = r->cap - at;

	if (n <= first) {
		memcpy(r->data + at, src, n);
	} else {
		memcpy(r->data + at, src, first);
		memcpy(r->data, (const uint8_t *)src + first, n - first);
	}
}

/*
 * Pushes one record (hdr->len is set here). Returns 1, or 0 when the ring
 * has no room (or the record is larger than half of it): dropped, counted.
 * Producer only; no syscall, lock or allocation.
 */
static inline int qv_plog_ring_push(struct qv_plog_ring *r, struct qv_plog_rec *hdr,
				    const void *in, const void *out)
{
	uint64_t len = (sizeof(*hdr) + (uint64_t)hdr->in_bytes + hdr->out_bytes + 7) & ~7ull;
	/* Relaxed: only this thread stores head. */
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);

	if (len > r->cap / 2)
		goto drop;
	if (head + len - r->tail_cache > r->cap) {
		/* Acquire pairs with the consumer's release store of tail: its
		 * reads of the bytes it freed are done before we overwrite them. */
		r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
		if (head + len - r->tail_cache > r->cap)
			goto drop;
	}
	hdr->len = (uint32_t)len;
	qv_plog_copy_in(r, head, hdr, sizeof(*hdr));
	if (hdr->in_bytes)
		qv_plog_copy_in(r, head + sizeof(*hdr), in, hdr->in_bytes);
	if (hdr->out_bytes)
		qv_plog_copy_in(r, head + sizeof(*hdr) + hdr->in_bytes, out, hdr->out_bytes);
	/* Release pairs with the consumer's acquire load of head: the record's
	 * bytes are visible before the index that covers them. */
	atomic_store_explicit(&r->head, head + len, memory_order_release);
	atomic_store_explicit(&r->pushed,
			      atomic_load_explicit(&r->pushed, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	return 1;
drop:
	atomic_store_explicit(&r->dropped,
			      atomic_load_explicit(&r->dropped, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	return 0;
}

/* The worker's draw: 1 with probability thr / 2^63 (thr 0: never, QV_PLOG_THR_ONE: always). */
static inline int qv_plog_draw(struct qv_plog_ring *r, uint64_t thr)
{
	return (qv_xorshift64(&r->rng) >> 1) < thr;
}

/*
 * Consumer: copies the oldest record's header to *ret_hdr and its payload
 * (up to payload_cap bytes; a ring record never exceeds cap / 2) to
 * payload, then frees it. Returns 1, or 0 when the ring is empty.
 */
int qv_plog_ring_pop(struct qv_plog_ring *r, struct qv_plog_rec *ret_hdr, void *payload,
		     size_t payload_cap);

/* P in [0, 1] -> threshold for qv_plog_draw. */
uint64_t qv_plog_threshold(double p);

/* ---- the logger (control side) ------------------------------------------- */

struct qv_predlog;
struct qv_worker;

/* Per-model settings; dir NULL keeps the current one. */
struct qv_plog_cfg {
	double sample;          /* 0..1 */
	const char *dir;
	uint64_t max_bytes;     /* 0: keep current (default 64 MiB) */
	uint32_t keep;          /* 0: keep current (default 8) */
};

struct qv_plog_totals {
	uint64_t pushed;        /* records sampled and queued */
	uint64_t dropped;       /* full ring or record over half the ring */
	uint64_t written;       /* lines written to files */
	uint64_t write_errors;  /* records lost to an unwritable dir or file */
	uint64_t rotations;
};

#define QV_PLOG_DEFAULT_RING (4u << 20)
#define QV_PLOG_DEFAULT_MAX_BYTES (64ull << 20)
#define QV_PLOG_DEFAULT_KEEP 8u

/*
 * Makes a ring of ring_bytes (a power of two) per worker on its NUMA node
 * and points each worker's `plog` at it. Call before the workers start.
 * tsc_hz converts the records' TSC stamps to wall-clock time.
 */
int qv_predlog_create(struct qv_worker **workers, uint32_t nworkers, uint64_t ring_bytes,
		      uint64_t tsc_hz, struct qv_predlog **ret);
/* Starts the logger thread. */
int qv_predlog_start(struct qv_predlog *pl);
/*
 * After every worker was joined (and freed): drains what is left, flushes,
 * closes the files, joins the thread and frees everything, the rings
 * included. NULL is a no-op.
 */
void qv_predlog_destroy(struct qv_predlog *pl);

/*
 * Control thread: sets model `handle`'s (named `name`) settings. A sample
 * above 0 needs a directory (given now or before). Returns the threshold
 * to store in each version's log_thr, or -EINVAL with a message in err.
 */
int qv_predlog_set(struct qv_predlog *pl, uint32_t handle, const char *name,
		   const struct qv_plog_cfg *cfg, uint64_t *ret_thr, char *err, size_t err_len);
/* The threshold a new version of `handle` starts with (0 when never set). */
uint64_t qv_predlog_thr(struct qv_predlog *pl, uint32_t handle);
/* Current settings of handle: 0, or -ENOENT when never set. ret_dir gets a copy. */
int qv_predlog_get(struct qv_predlog *pl, uint32_t handle, double *ret_sample, char *ret_dir,
		   size_t dir_len, uint64_t *ret_max_bytes, uint32_t *ret_keep);
void qv_predlog_totals(struct qv_predlog *pl, struct qv_plog_totals *ret);

#endif /* QV_DP_PREDLOG_H */
