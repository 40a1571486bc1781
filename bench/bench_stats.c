/* SPDX-License-Identifier: Apache-2.0 */
#include "bench_stats.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

uint64_t qv_bench_percentile(const uint64_t *sorted, size_t n, double q)
{
	double rank = ceil(q * (double)n);
	size_t i = rank < 1.0 ? 0 : (size_t)rank - 1;
	return sorted[i < n ? i : n - 1];
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int qv_bench_summarise(uint64_t *samples, size_t n, uint32_t rows, uint32_t chunk,
		       struct qv_bench_summary *ret)
{
	size_t n_chunks = (n + chunk - 1) / chunk;
	double *rates = malloc(n_chunks * sizeof(*rates));
	if (!rates)
		return -ENOMEM;
	double sum = 0;
	for (size_t c = 0; c < n_chunks; c++) {
		size_t lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
		double t = 0;
		for (size_t i = lo; i < hi; i++)
			t += (double)samples[i];
		sum += t;
		rates[c] = t > 0 ? (double)rows * (double)(hi - lo) * 1e9 / t : 0;
	}
	qsort(rates, n_chunks, sizeof(*rates), cmp_double);
	/* Median: the mean of the two middle chunks when their number is even. */
	double median = n_chunks % 2 ? rates[n_chunks / 2]
				     : (rates[n_chunks / 2 - 1] + rates[n_chunks / 2]) / 2;
	free(rates);

	qsort(samples, n, sizeof(*samples), cmp_u64);
	struct qv_bench_summary s = {
		.n = n,
		.min_ns = samples[0],
		.p50_ns = qv_bench_percentile(samples, n, 0.50),
		.p99_ns = qv_bench_percentile(samples, n, 0.99),
		.p999_ns = qv_bench_percentile(samples, n, 0.999),
		.max_ns = samples[n - 1],
		.mean_ns = sum / (double)n,
		.rows_per_s = median,
		.rows_per_s_mean = sum > 0 ? (double)rows * (double)n * 1e9 / sum : 0,
	};
	*ret = s;
	return 0;
}

int qv_bench_bad_arg(const char *fmt, ...)
{
	va_list ap;
	fputs("quiver-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(see quiver-bench --help)\n", stderr);
	return 2;
}

int qv_bench_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *ret)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}
