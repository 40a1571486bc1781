/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_stats.h - the clock and the summary statistics quiver-bench prints.
 *
 * The clock is clock_gettime(CLOCK_MONOTONIC) through the vDSO (no syscall,
 * ~20 ns a read on this class of machine). Chosen over a calibrated rdtsc
 * because it needs no calibration and cannot drift under frequency changes
 * or VM migration; its fixed cost is paid equally by every path measured.
 */
#ifndef QV_BENCH_STATS_H
#define QV_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define QV_BENCH_TIMER_NAME "clock_gettime(CLOCK_MONOTONIC)"

static inline uint64_t qv_bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct qv_bench_summary {
	uint64_t n;
	uint64_t min_ns, p50_ns, p99_ns, p999_ns, max_ns;
	double mean_ns;
	/*
	 * Throughput, rows (inferences) per second. rows_per_s is the median
	 * over chunks of `chunk` consecutive calls of rows * calls / chunk time:
	 * a sustained rate that one preemption (milliseconds on a busy 2-core
	 * machine) spoils for one chunk instead of for the whole run.
	 * rows_per_s_mean is rows * n / total call time, outliers included.
	 */
	double rows_per_s;
	double rows_per_s_mean;
};

/* Summarises samples[0..n) (n >= 1, in call order, chunk >= 1), then sorts
 * them in place. Returns 0 or -ENOMEM. */
int qv_bench_summarise(uint64_t *samples, size_t n, uint32_t rows, uint32_t chunk,
		       struct qv_bench_summary *ret);

/* Nearest-rank percentile of sorted samples: the smallest value with at
 * least q of the samples at or below it. 0 < q <= 1, n >= 1. */
uint64_t qv_bench_percentile(const uint64_t *sorted, size_t n, double q);

/* Command-line helpers shared by every quiver-bench mode. */
/* Prints "quiver-bench: MESSAGE" and the --help hint to stderr; returns 2,
 * the exit code for bad arguments. */
__attribute__((format(printf, 1, 2)))
int qv_bench_bad_arg(const char *fmt, ...);
/* A decimal in [lo, hi], no sign; 0 or -EINVAL. */
int qv_bench_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *ret);

#endif /* QV_BENCH_STATS_H */
