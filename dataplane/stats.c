/* SPDX-License-Identifier: Apache-2.0 */
/* stats.c - summing and reading the per-worker histograms (control thread). */
#include "stats.h"

#include <math.h>
#include <string.h>

uint64_t qv_hist_bucket_lo(uint32_t b)
{
	uint32_t e, sub;

	if (b < QV_HIST_SUB)
		return b;
	e = b / QV_HIST_SUB + QV_HIST_SUB_BITS - 1u;
	sub = b % QV_HIST_SUB;
	return (1ull << e) + ((uint64_t)sub << (e - QV_HIST_SUB_BITS));
}

uint64_t qv_hist_bucket_hi(uint32_t b)
{
	if (b + 1u >= QV_HIST_BUCKETS)
		return UINT64_MAX;
	return qv_hist_bucket_lo(b + 1u) - 1u;
}

void qv_vsum_add(struct qv_vsum *s, const struct qv_vstats *v)
{
	/* The total is the statuses' sum, read once each (the worker counts no
	 * separate total): requests and statuses always agree in a snapshot. */
	for (uint32_t i = 0; i < QV_STATUS_COUNT; i++) {
		uint64_t n = atomic_load_explicit(&v->status[i], memory_order_relaxed);
		s->status[i] += n;
		s->requests += n;
	}
	s->canary += atomic_load_explicit(&v->canary, memory_order_relaxed);
	s->fallback += atomic_load_explicit(&v->fallback, memory_order_relaxed);
	s->shadow += atomic_load_explicit(&v->shadow, memory_order_relaxed);
	s->shadow_disagree += atomic_load_explicit(&v->shadow_disagree, memory_order_relaxed);
	uint64_t bits = atomic_load_explicit(&v->shadow_maxdiff, memory_order_relaxed);
	double md;
	memcpy(&md, &bits, sizeof(md));
	if (md > s->shadow_maxdiff)
		s->shadow_maxdiff = md;
	s->shadow_sumdiff_n9 += atomic_load_explicit(&v->shadow_sumdiff_n9, memory_order_relaxed);
	s->shadow_values += atomic_load_explicit(&v->shadow_values, memory_order_relaxed);
	s->batches += atomic_load_explicit(&v->batches, memory_order_relaxed);
	s->batch_rows += atomic_load_explicit(&v->batch_rows, memory_order_relaxed);
	s->split_batches += atomic_load_explicit(&v->split_batches, memory_order_relaxed);
	for (uint32_t i = 0; i < QV_RUN_HIST; i++)
		s->runs[i] += atomic_load_explicit(&v->runs[i], memory_order_relaxed);
	for (uint32_t i = 0; i < QV_HIST_BUCKETS; i++)
		s->hist[i] += atomic_load_explicit(&v->hist[i], memory_order_relaxed);
	s->queue_sum += atomic_load_explicit(&v->queue_sum, memory_order_relaxed);
	s->compute_sum += atomic_load_explicit(&v->compute_sum, memory_order_relaxed);
	s->req_sum += atomic_load_explicit(&v->req_sum, memory_order_relaxed);
	for (uint32_t i = 0; i < QV_LOG2_BUCKETS; i++) {
		s->queue_hist[i] += atomic_load_explicit(&v->queue_hist[i], memory_order_relaxed);
		s->compute_hist[i] += atomic_load_explicit(&v->compute_hist[i],
							   memory_order_relaxed);
		s->req_hist[i] += atomic_load_explicit(&v->req_hist[i], memory_order_relaxed);
	}
}

void qv_vsum_sub(struct qv_vsum *s, const struct qv_vsum *base)
{
	s->requests -= base->requests;
	for (uint32_t i = 0; i < QV_STATUS_COUNT; i++)
		s->status[i] -= base->status[i];
	s->canary -= base->canary;
	s->fallback -= base->fallback;
	s->shadow -= base->shadow;
	s->shadow_disagree -= base->shadow_disagree;
	s->shadow_sumdiff_n9 -= base->shadow_sumdiff_n9;
	s->shadow_values -= base->shadow_values;
	s->batches -= base->batches;
	s->batch_rows -= base->batch_rows;
	s->split_batches -= base->split_batches;
	for (uint32_t i = 0; i < QV_RUN_HIST; i++)
		s->runs[i] -= base->runs[i];
	for (uint32_t i = 0; i < QV_HIST_BUCKETS; i++)
		s->hist[i] -= base->hist[i];
	s->queue_sum -= base->queue_sum;
	s->compute_sum -= base->compute_sum;
	s->req_sum -= base->req_sum;
	for (uint32_t i = 0; i < QV_LOG2_BUCKETS; i++) {
		s->queue_hist[i] -= base->queue_hist[i];
		s->compute_hist[i] -= base->compute_hist[i];
		s->req_hist[i] -= base->req_hist[i];
	}
}

uint64_t qv_hist_quantile(const uint64_t *hist, double q)
{
	uint64_t total = 0, rank, cum = 0;

	for (uint32_t i = 0; i < QV_HIST_BUCKETS; i++)
		total += hist[i];
	if (total == 0)
		return 0;
	rank = (uint64_t)ceil(q * (double)total);
	if (rank < 1)
		rank = 1;
	if (rank > total)
		rank = total;
	for (uint32_t i = 0; i < QV_HIST_BUCKETS; i++) {
		cum += hist[i];
		if (cum >= rank) {
			uint64_t lo = qv_hist_bucket_lo(i), hi = qv_hist_bucket_hi(i);
			return lo + (hi - lo) / 2;
		}
	}
	return qv_hist_bucket_lo(QV_HIST_BUCKETS - 1u);
}
