/* SPDX-License-Identifier: Apache-2.0 */
/*
 * outcheck.h - what the worker reads in a version's packed output rows: the
 * nonfinite check (the `nonfinite` fallback trigger) and the shadow
 * comparison look at float32 output tensors only; an int32 or int64
 * output's bits are not floats, and reading them as floats would fire the
 * trigger (or a disagreement) on ordinary integers.
 */
#ifndef QV_DP_OUTCHECK_H
#define QV_DP_OUTCHECK_H

#include <math.h>
#include <stdint.h>

#include "routes.h"

/*
 * Fills v->out_mixed and v->fspans from v->model's output tensors (slow
 * path, at load). A version whose outputs are all float32 keeps out_mixed
 * 0: its whole row is checked as before.
 */
void qv_version_out_spans(struct qv_version *v);

/*
 * Whether a and b have the same tensors, in order (dtype, row bytes), so a
 * request packed for one is a request for the other. Versions without a
 * description (n_inputs 0) compare by in_dim / out_dim alone.
 */
int qv_version_same_tensors(const struct qv_version *a, const struct qv_version *b);

static inline int qv_nonfinite_words(const float *p, uint64_t n)
{
	int bad = 0;

	for (uint64_t i = 0; i < n; i++)
		bad |= !isfinite(p[i]);
	return bad;
}

/* Any nonfinite float32 output in rows packed rows of v at out. Hot path. */
static inline int qv_out_nonfinite(const struct qv_version *v, const float *out, uint32_t rows)
{
	uint32_t od = v->info.out_dim;

	if (!v->out_mixed)
		return qv_nonfinite_words(out, (uint64_t)rows * od);
	for (uint32_t r = 0; r < rows; r++, out += od)
		for (uint32_t k = 0; k < v->n_fspans; k++)
			if (qv_nonfinite_words(out + v->fspans[k].off, v->fspans[k].n))
				return 1;
	return 0;
}

/* rtol 1e-3, atol 1e-5; two NaNs agree, any other nonfinite must be equal. */
static inline int qv_words_disagree(const float *a, const float *b, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		float x = a[i], y = b[i];
		if (isfinite(x) && isfinite(y)) {
			if (fabsf(x - y) > 1e-5f + 1e-3f * fabsf(y))
				return 1;
		} else if (!(isnan(x) && isnan(y)) && x != y) {
			return 1;
		}
	}
	return 0;
}

/* Whether the float32 outputs of rows packed rows of v differ (shadow). */
static inline int qv_out_disagree(const struct qv_version *v, const float *a, const float *b,
				  uint32_t rows)
{
	uint32_t od = v->info.out_dim;

	if (!v->out_mixed)
		return qv_words_disagree(a, b, (uint64_t)rows * od);
	for (uint32_t r = 0; r < rows; r++, a += od, b += od)
		for (uint32_t k = 0; k < v->n_fspans; k++)
			if (qv_words_disagree(a + v->fspans[k].off, b + v->fspans[k].off,
					      v->fspans[k].n))
				return 1;
	return 0;
}

#endif /* QV_DP_OUTCHECK_H */
