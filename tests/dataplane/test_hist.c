/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The log-linear histogram: every value lies within its bucket's bounds,
 * buckets are contiguous and ordered, and p50/p99/p99.9 read from the
 * histogram agree with the exact order statistics of the sorted samples to
 * within one bucket width (<= 1/16 of the value), on log-uniform samples
 * spanning 1 to 2^40 and on a tight cluster.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route_pick.h"
#include "stats.h"

static int failures;

#define CHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void check_quantiles(uint64_t *v, size_t n, const char *what)
{
	static const double qs[] = { 0.5, 0.9, 0.99, 0.999, 1.0 };
	uint64_t *hist = calloc(QV_HIST_BUCKETS, sizeof(*hist));

	for (size_t i = 0; i < n; i++)
		hist[qv_hist_bucket(v[i])]++;
	qsort(v, n, sizeof(*v), cmp_u64);
	for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
		size_t rank = (size_t)ceil(qs[k] * (double)n);
		uint64_t exact = v[rank - 1], est = qv_hist_quantile(hist, qs[k]);
		double tol = (double)exact / 16.0 + 1.0;
		fprintf(stderr, "%s q%.3f: exact %llu histogram %llu\n", what, qs[k],
			(unsigned long long)exact, (unsigned long long)est);
		CHECK(fabs((double)est - (double)exact) <= tol);
	}
	free(hist);
}

int main(void)
{
	size_t n = 200000;
	uint64_t *v = malloc(n * sizeof(*v)), rng = 99;
	uint64_t empty[QV_HIST_BUCKETS];

	for (uint32_t b = 0; b + 1 < QV_HIST_BUCKETS; b++) {
		CHECK(qv_hist_bucket_hi(b) + 1 == qv_hist_bucket_lo(b + 1));
		CHECK(qv_hist_bucket(qv_hist_bucket_lo(b)) == b);
		CHECK(qv_hist_bucket(qv_hist_bucket_hi(b)) == b);
	}
	CHECK(qv_hist_bucket(UINT64_MAX) == QV_HIST_BUCKETS - 1);
	for (int i = 0; i < 1000000; i++) {
		uint64_t x = qv_xorshift64(&rng) >> (qv_xorshift64(&rng) % 64);
		uint32_t b = qv_hist_bucket(x);
		CHECK(b < QV_HIST_BUCKETS && qv_hist_bucket_lo(b) <= x && x <= qv_hist_bucket_hi(b));
		if (b >= QV_HIST_SUB)
			CHECK(qv_hist_bucket_hi(b) - qv_hist_bucket_lo(b) <= x / 16);
	}
	for (size_t i = 0; i < n; i++)
		v[i] = (uint64_t)exp2((double)(qv_xorshift64(&rng) >> 11) / 9007199254740992.0 * 40.0);
	check_quantiles(v, n, "log-uniform");
	for (size_t i = 0; i < n; i++)
		v[i] = 3000 + qv_xorshift64(&rng) % 500;
	check_quantiles(v, n, "cluster");
	memset(empty, 0, sizeof(empty));
	CHECK(qv_hist_quantile(empty, 0.5) == 0);
	free(v);
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
