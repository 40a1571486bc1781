/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stats.h - per-worker, per-version counters and log-linear latency
 * histograms. Each worker owns an array of struct qv_vstats (one per
 * version stats slot) on its NUMA node and is the only writer: a relaxed
 * load and a relaxed store per increment, no read-modify-write, no shared
 * cache line. The control thread sums the workers' arrays on request; each
 * counter is exact on its own, the set is a snapshot "at about now".
 *
 * Histogram: values below 16 have a bucket each; above, every power of two
 * [2^e, 2^(e+1)) is cut into 16 equal sub-buckets, so a bucket's width is
 * at most 1/16 of its values (relative error <= 6.25%) over the whole
 * 64-bit range, in 976 buckets. Values are TSC cycles; the control thread
 * converts to ns with the calibrated rate.
 */
#ifndef QV_DP_STATS_H
#define QV_DP_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "quiver.h"

#define QV_HIST_SUB_BITS 4u
#define QV_HIST_SUB (1u << QV_HIST_SUB_BITS)
#define QV_HIST_BUCKETS ((64u - QV_HIST_SUB_BITS + 1u) * QV_HIST_SUB)

static inline uint32_t qv_hist_bucket(uint64_t v)
{
	uint32_t e;

	if (v < QV_HIST_SUB)
		return (uint32_t)v;
	e = 63u - (uint32_t)__builtin_clzll(v);
	return (e - QV_HIST_SUB_BITS + 1u) * QV_HIST_SUB +
	       (uint32_t)((v >> (e - QV_HIST_SUB_BITS)) & (QV_HIST_SUB - 1u));
}

/* Smallest and largest value of bucket b. */
uint64_t qv_hist_bucket_lo(uint32_t b);
uint64_t qv_hist_bucket_hi(uint32_t b);

/* Model runs by rows: [1], [2,3], [4,7], ... [256,511], [512, ...). */
#define QV_RUN_HIST 10u

static inline uint32_t qv_run_bucket(uint32_t rows)
{
	uint32_t b = rows ? 31u - (uint32_t)__builtin_clz(rows) : 0u;

	return b < QV_RUN_HIST ? b : QV_RUN_HIST - 1u;
}

/*
 * Queue and compute time of a request: power-of-two buckets of TSC cycles,
 * bucket b holding [2^(b-1), 2^b) (b = 0: zero), so the Prometheus
 * histogram's `le` bounds fall exactly on bucket edges.
 */
#define QV_LOG2_BUCKETS 65u

static inline uint32_t qv_log2_bucket(uint64_t v)
{
	return v ? 64u - (uint32_t)__builtin_clzll(v) : 0u;
}

struct qv_vstats {
	/* requests answered, by status; their sum is the requests
	 * (qv_vstats_requests): no separate total is counted per request */
	_Atomic uint64_t status[QV_STATUS_COUNT];
	_Atomic uint64_t canary;
	_Atomic uint64_t fallback;
	_Atomic uint64_t shadow;
	_Atomic uint64_t shadow_disagree;
	/* largest |shadow - answer| over float outputs, as the bits of a
	 * non-negative double (ordered like the values): how far a reduced-
	 * precision primary and its fp32 shadow drift, not only whether */
	_Atomic uint64_t shadow_maxdiff;
	/* sum of |shadow - answer| over compared float outputs, in 1e-9 units,
	 * and how many were compared: the mean drift */
	_Atomic uint64_t shadow_sumdiff_n9;
	_Atomic uint64_t shadow_values;
	_Atomic uint64_t batches;   /* runs of more than one request gathered together */
	_Atomic uint64_t batch_rows;/* rows in those runs */
	/* batches that an id out of range split: each member ran again alone */
	_Atomic uint64_t split_batches;
	_Atomic uint64_t runs[QV_RUN_HIST]; /* every model run (alone or batched) by rows */
	uint64_t ewma_cycles;       /* worker-private: recent service time (OK answers) */
	uint64_t ewma_tag;          /* worker-private: handle << 32 | version it belongs to */
	uint64_t pad;
	_Atomic uint64_t hist[QV_HIST_BUCKETS];
	/* Sums in cycles of the queue and compute parts of requests that ran a
	 * model. */
	_Atomic uint64_t queue_sum;
	_Atomic uint64_t compute_sum;
	_Atomic uint64_t queue_hist[QV_LOG2_BUCKETS];
	_Atomic uint64_t compute_hist[QV_LOG2_BUCKETS];
	/* Request time including the wait in the submission ring when the
	 * client stamped it (hist above: from pick-up only), and its sum. */
	_Atomic uint64_t req_hist[QV_LOG2_BUCKETS];
	_Atomic uint64_t req_sum;
};

/* Requests answered by a version on one worker: the sum of its statuses. */
static inline uint64_t qv_vstats_requests(const struct qv_vstats *v)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < QV_STATUS_COUNT; i++)
		n += atomic_load_explicit(&v->status[i], memory_order_relaxed);
	return n;
}

/* A plain sum of many workers' qv_vstats (control thread). */
struct qv_vsum {
	uint64_t requests;
	uint64_t status[QV_STATUS_COUNT];
	uint64_t canary, fallback, shadow, shadow_disagree;
	double shadow_maxdiff;      /* max over workers, since load (not reset by sub) */
	uint64_t shadow_sumdiff_n9, shadow_values;
	uint64_t batches, batch_rows, split_batches;
	uint64_t runs[QV_RUN_HIST];
	uint64_t hist[QV_HIST_BUCKETS];
	uint64_t queue_sum, compute_sum;
	uint64_t queue_hist[QV_LOG2_BUCKETS];
	uint64_t compute_hist[QV_LOG2_BUCKETS];
	uint64_t req_hist[QV_LOG2_BUCKETS];
	uint64_t req_sum;
};

/* Single writer: plain load and store, no locked read-modify-write. */
static inline void qv_stat_inc(_Atomic uint64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/* Single writer: plain load and store of c + v. */
static inline void qv_stat_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

void qv_vsum_add(struct qv_vsum *s, const struct qv_vstats *v);
/* s -= base, counter by counter (base is an earlier snapshot of the same slot). */
void qv_vsum_sub(struct qv_vsum *s, const struct qv_vsum *base);

/*
 * The q-quantile (0 < q <= 1) of the histogram: the value at rank
 * ceil(q * total) lies in the returned bucket; returns that bucket's
 * midpoint, 0 for an empty histogram.
 */
uint64_t qv_hist_quantile(const uint64_t *hist, double q);

#endif /* QV_DP_STATS_H */
