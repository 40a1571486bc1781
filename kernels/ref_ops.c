/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ref_ops.c - plain C reference implementations of every op the runtime
 * executes. They are the ground truth that tests/harness checks the
 * optimized kernels against, and the fallback the plan uses for ops that
 * have no optimized kernel, so they favour being obviously correct over
 * being fast: straight loops, accumulation in double, libm for
 * transcendental functions, no vector intrinsics.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "qv_model.h"
#include "qv_ops.h"

static float act_one(double v, struct qv_act_desc act)
{
	switch (act.kind) {
	case QV_ACT_NONE:
		return (float)v;
	case QV_ACT_RELU:
		return v > 0.0 ? (float)v : 0.0f;
	case QV_ACT_LEAKY_RELU:
		return v < 0.0 ? (float)((double)act.alpha * v) : (float)v;
	case QV_ACT_SIGMOID:
		return (float)(1.0 / (1.0 + exp(-v)));
	case QV_ACT_TANH:
		return (float)tanh(v);
	case QV_ACT_CLIP:
		/* NaN passes through unchanged, as in onnxruntime's Clip. */
		if (v < (double)act.alpha)
			v = act.alpha;
		if (v > (double)act.beta)
			v = act.beta;
		return (float)v;
	}
	return (float)v;
}

void qv_ref_dense(const float *x, uint32_t rows, uint32_t K, const float *W, uint32_t N,
		  const float *b, struct qv_act_desc act, float *y)
{
	for (uint32_t r = 0; r < rows; r++) {
		const float *xr = x + (size_t)r * K;
		for (uint32_t n = 0; n < N; n++) {
			double acc = b ? (double)b[n] : 0.0;
			for (uint32_t k = 0; k < K; k++)
				acc += (double)xr[k] * (double)W[(size_t)k * N + n];
			y[(size_t)r * N + n] = act_one(acc, act);
		}
	}
}

void qv_ref_act(const float *x, size_t n, struct qv_act_desc act, float *y)
{
	for (size_t i = 0; i < n; i++)
		y[i] = act_one((double)x[i], act);
}

void qv_ref_softmax(const float *x, uint32_t rows, uint32_t cols, float *y)
{
	for (uint32_t r = 0; r < rows; r++) {
		const float *xr = x + (size_t)r * cols;
		float *yr = y + (size_t)r * cols;
		/* Subtracting the row maximum keeps exp() finite for large inputs. */
		double mx = -INFINITY;
		for (uint32_t c = 0; c < cols; c++)
			if ((double)xr[c] > mx)
				mx = xr[c];
		double sum = 0.0;
		for (uint32_t c = 0; c < cols; c++)
			sum += exp((double)xr[c] - mx);
		for (uint32_t c = 0; c < cols; c++)
			yr[c] = (float)(exp((double)xr[c] - mx) / sum);
	}
}

static float binop(enum qv_binop op, float a, float b)
{
	switch (op) {
	case QV_BIN_ADD:
		return a + b;
	case QV_BIN_SUB:
		return a - b;
	case QV_BIN_MUL:
		return a * b;
	case QV_BIN_DIV:
		return a / b;
	}
	return NAN;
}

int qv_ref_binary(enum qv_binop op, const float *x, const int64_t *x_shape, uint32_t x_rank,
		  const float *c, const int64_t *c_shape, uint32_t c_rank, int c_is_lhs, float *y)
{
	if (x_rank > QV_MAX_RANK || (unsigned)op > QV_BIN_DIV)
		return -EINVAL;

	/*
	 * Align c's shape to x's from the right (numpy rules). The output has
	 * x's shape, so every c dimension must be 1 or equal to x's; extra
	 * leading c dimensions are allowed only when they are 1.
	 */
	int64_t cdim[QV_MAX_RANK];
	for (uint32_t i = 0; i < x_rank; i++)
		cdim[i] = 1;
	for (uint32_t j = 0; j < c_rank; j++) {
		uint32_t from_right = c_rank - 1 - j;
		if (from_right >= x_rank) {
			if (c_shape[j] != 1)
				return -EINVAL;
			continue;
		}
		uint32_t i = x_rank - 1 - from_right;
		if (c_shape[j] != 1 && c_shape[j] != x_shape[i])
			return -EINVAL;
		cdim[i] = c_shape[j];
	}

	/* Row-major strides of c in x's index space; a broadcast axis has stride 0. */
	size_t cstride[QV_MAX_RANK];
	size_t total = 1, s = 1;
	for (uint32_t i = x_rank; i-- > 0;) {
		if (x_shape[i] < 0)
			return -EINVAL;
		cstride[i] = cdim[i] == 1 ? 0 : s;
		s *= (size_t)cdim[i];
		total *= (size_t)x_shape[i];
	}

	size_t idx[QV_MAX_RANK] = { 0 };
	size_t coff = 0;
	for (size_t e = 0; e < total; e++) {
		float cv = c[coff];
		y[e] = c_is_lhs ? binop(op, cv, x[e]) : binop(op, x[e], cv);
		/* Odometer increment of the multi-index, carrying c's offset along. */
		for (uint32_t i = x_rank; i-- > 0;) {
			idx[i]++;
			coff += cstride[i];
			if (idx[i] < (size_t)x_shape[i])
				break;
			coff -= cstride[i] * idx[i];
			idx[i] = 0;
		}
	}
	return 0;
}

void qv_ref_concat(const float *const *in, const int64_t *const *shapes, uint32_t n,
		   uint32_t rank, uint32_t axis, float *y)
{
	if (n == 0 || axis >= rank)
		return;
	size_t outer = 1, inner = 1;
	for (uint32_t i = 0; i < axis; i++)
		outer *= (size_t)shapes[0][i];
	for (uint32_t i = axis + 1; i < rank; i++)
		inner *= (size_t)shapes[0][i];

	float *out = y;
	for (size_t o = 0; o < outer; o++) {
		for (uint32_t t = 0; t < n; t++) {
			size_t chunk = (size_t)shapes[t][axis] * inner;
			if (chunk)
				memcpy(out, in[t] + o * chunk, chunk * sizeof(float));
			out += chunk;
		}
	}
}

void qv_ref_batchnorm(const float *x, uint64_t outer, uint32_t C, uint64_t inner,
		      const float *scale, const float *bias, const float *mean, const float *var,
		      float eps, float *y)
{
	for (uint64_t o = 0; o < outer; o++) {
		for (uint32_t ch = 0; ch < C; ch++) {
			double inv = 1.0 / sqrt((double)var[ch] + (double)eps);
			double sc = (double)scale[ch] * inv;
			double sh = (double)bias[ch] - (double)mean[ch] * sc;
			size_t base = ((size_t)o * C + ch) * (size_t)inner;
			for (uint64_t i = 0; i < inner; i++)
				y[base + i] = (float)((double)x[base + i] * sc + sh);
		}
	}
}

/* ---- reduced precision: rounding written out independently of dense_lowp.c ---- */

float qv_bf16_round(float v)
{
	uint32_t u;
	memcpy(&u, &v, sizeof(u));
	if (isnan(v))
		return v;
	if (fabsf(v) < FLT_MIN)
		return signbit(v) ? -0.0f : 0.0f;  /* denormals read as zero */
	/* round to nearest even at bit 16 */
	uint32_t lsb = (u >> 16) & 1u;
	u = (u + 0x7fffu + lsb) & 0xffff0000u;
	memcpy(&v, &u, sizeof(v));
	return v;
}

static int32_t ref_q8(float v, float inv)
{
	float q = nearbyintf(v * inv);
	if (q > 127.0f)
		q = 127.0f;
	if (q < -127.0f)
		q = -127.0f;
	return (int32_t)q;
}

static float ref_act1(float v, struct qv_act_desc a)
{
	float y;
	qv_ref_act(&v, 1, a, &y);
	return y;
}

void qv_ref_dense_bf16(const float *x, uint32_t rows, uint32_t K, const float *W, uint32_t N,
		       const float *b, struct qv_act_desc act, float *y)
{
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t n = 0; n < N; n++) {
			/* products of two bf16 are exact in fp32; summed in double so
			 * the reference has no summation-order error of its own */
			double s = b ? b[n] : 0.0;
			for (uint32_t k = 0; k < K; k++)
				s += (double)qv_bf16_round(x[(size_t)r * K + k]) *
				     (double)qv_bf16_round(W[(size_t)k * N + n]);
			y[(size_t)r * N + n] = ref_act1((float)s, act);
		}
}

void qv_ref_dense_int8(const float *x, uint32_t rows, uint32_t K, const float *W, uint32_t N,
		       const float *b, struct qv_act_desc act, float x_absmax, float *y)
{
	for (uint32_t r = 0; r < rows; r++) {
		const float *xr = x + (size_t)r * K;
		float m = x_absmax;
		if (m <= 0.0f) {
			m = 0.0f;
			for (uint32_t k = 0; k < K; k++)
				m = fabsf(xr[k]) > m ? fabsf(xr[k]) : m;
		}
		float xinv = m > 0.0f ? 127.0f / m : 0.0f, sx = m > 0.0f ? m / 127.0f : 0.0f;
		for (uint32_t n = 0; n < N; n++) {
			float wm = 0.0f;
			for (uint32_t k = 0; k < K; k++)
				wm = fabsf(W[(size_t)k * N + n]) > wm ? fabsf(W[(size_t)k * N + n]) : wm;
			float winv = wm > 0.0f ? 127.0f / wm : 0.0f, sw = wm > 0.0f ? wm / 127.0f : 1.0f;
			int64_t s = 0;
			for (uint32_t k = 0; k < K; k++)
				s += (int64_t)ref_q8(xr[k], xinv) * ref_q8(W[(size_t)k * N + n], winv);
			y[(size_t)r * N + n] = ref_act1(fmaf((float)s, sx * sw, b ? b[n] : 0.0f), act);
		}
	}
}
