/* SPDX-License-Identifier: Apache-2.0 */
/*
 * prom.h - quiverd's metrics in the Prometheus text exposition format
 * (version 0.0.4): the one renderer behind both `quiverctl metrics` and
 * GET /metrics, so the two never disagree. Control thread only.
 */
#ifndef QV_DP_PROM_H
#define QV_DP_PROM_H

#include <stddef.h>
#include <stdint.h>

struct qv_daemon;

/*
 * Renders every metric into a malloc'd NUL-terminated text (*ret_text, the
 * caller frees; *ret_len its length when ret_len is not NULL). Returns 0 or
 * -ENOMEM. Reads the workers' counters with relaxed loads: each value is
 * exact on its own, the set a snapshot "at about now".
 */
int qv_prom_render(struct qv_daemon *d, char **ret_text, size_t *ret_len);

/*
 * The `le` bounds of the duration histograms: powers of two of TSC cycles
 * (so they fall on the workers' bucket edges exactly) from about 100 ns to
 * about 10 s at the calibrated rate tsc_hz. Sets *ret_lo, *ret_hi (the
 * exponents, inclusive).
 */
void qv_prom_le_range(uint64_t tsc_hz, uint32_t *ret_lo, uint32_t *ret_hi);

#endif /* QV_DP_PROM_H */
