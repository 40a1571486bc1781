/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gx_exec.c - the general graph runtime's kernels and its run paths.
 *
 * gx_kernel runs one step on `rows` batch rows. Every operand comes with a
 * row stride in elements: a computed tensor's row size, or 0 for a constant,
 * which every row reads alike. Kernels never allocate. 8-byte elements are
 * loaded and stored with memcpy: an int64 id inside a packed request row is
 * only 4-byte aligned (qv_model.h), and memcpy of 8 bytes is one move.
 *
 * Packed rows. At rows == 1 each input tensor is read where it sits in the
 * caller's packed row and each output the producer writes straight into its
 * slice of the packed output, so nothing is copied. At rows > 1 a tensor's
 * rows are not contiguous in the packed layout: inputs are de-interleaved
 * into context buffers first and outputs interleaved after - one pass over
 * the request's bytes each, small next to the dense layers' work.
 */
#include <errno.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gx.h"

static inline int64_t ld64(const void *p)
{
	int64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline void st64(void *p, int64_t v)
{
	memcpy(p, &v, 8);
}

/*
 * Copies n bytes, a multiple of 4: the row sizes of embeddings, packed
 * tensors and concat parts are a few words, where a call to memcpy costs
 * more than the copy. The common sizes are fixed-size memcpy (a move or
 * two); others up to 64 bytes go a word at a time.
 */
static inline void copy_small(void *restrict d, const void *restrict src, size_t n)
{
	switch (n) {
	case 4:
		memcpy(d, src, 4);
		return;
	case 8:
		memcpy(d, src, 8);
		return;
	case 16:
		memcpy(d, src, 16);
		return;
	case 24:
		memcpy(d, src, 24);
		return;
	case 32:
		memcpy(d, src, 32);
		return;
	case 64:
		memcpy(d, src, 64);
		return;
	default:
		break;
	}
	if (n > 64 || (n & 3)) {
		memcpy(d, src, n);
		return;
	}
	for (size_t i = 0; i < n; i += 4)
		memcpy((char *)d + i, (const char *)src + i, 4);
}

static void k_map(const struct gx_step *s, const char *x, uint64_t xs, char *y, uint32_t rows)
{
	const int32_t *m = s->map[0];
	uint64_t w = s->out_w;
	for (uint32_t r = 0; r < rows; r++) {
		const char *xr = x + (size_t)r * xs * s->esz;
		char *yr = y + (size_t)r * w * s->esz;
		switch (s->esz) {
		case 4: {
			const float *xf = (const float *)(const void *)xr;
			float *yf = (float *)(void *)yr;
			for (uint64_t i = 0; i < w; i++)
				yf[i] = xf[m[i]];
			break;
		}
		case 8:
			for (uint64_t i = 0; i < w; i++)
				memcpy(yr + i * 8, xr + (size_t)m[i] * 8, 8);
			break;
		default:
			for (uint64_t i = 0; i < w; i++)
				yr[i] = xr[m[i]];
			break;
		}
	}
}

/* operand element for output element i: through its broadcast map, if any */
static inline size_t at(const int32_t *m, uint64_t i)
{
	return m ? (size_t)m[i] : (size_t)i;
}

static inline float fbin(int op, float a, float b)
{
	switch (op) {
	case GX_ADD:
		return a + b;
	case GX_SUB:
		return a - b;
	case GX_MUL:
		return a * b;
	case GX_DIV:
		return a / b;
	case GX_POW:
		return b == 2.0f ? a * a : powf(a, b);
	case GX_MAX:
		return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
	case GX_MIN:
		return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
	default:
		return 0.0f;
	}
}

static inline int fcmp(int op, double a, double b)
{
	switch (op) {
	case GX_EQ:
		return a == b;
	case GX_LT:
		return a < b;
	case GX_GT:
		return a > b;
	case GX_LE:
		return a <= b;
	case GX_GE:
		return a >= b;
	default:
		return 0;
	}
}

/* int64 arithmetic, with the batch-size symbol kept where the op leaves it
 * unchanged and poisoned (GX_SYM + 1, refused by the builder) elsewhere */
static inline int64_t ibin(int op, int64_t a, int64_t b)
{
	if (a == GX_SYM || b == GX_SYM) {
		bool keep = (op == GX_ADD && (a == 0 || b == 0)) || (op == GX_SUB && b == 0) ||
			    (op == GX_MUL && (a == 1 || b == 1)) || (op == GX_DIV && b == 1);
		return keep ? GX_SYM : GX_SYM + 1;
	}
	switch (op) {
	case GX_ADD:
		return (int64_t)((uint64_t)a + (uint64_t)b);
	case GX_SUB:
		return (int64_t)((uint64_t)a - (uint64_t)b);
	case GX_MUL:
		return (int64_t)((uint64_t)a * (uint64_t)b);
	case GX_DIV:
		return b == 0 || (a == INT64_MIN && b == -1) ? 0 : a / b;
	case GX_MAX:
		return a > b ? a : b;
	case GX_MIN:
		return a < b ? a : b;
	case GX_POW: {
		int64_t v = 1;
		for (int64_t i = 0; i < b && i < 64; i++)
			v = (int64_t)((uint64_t)v * (uint64_t)a);
		return v;
	}
	default:
		return 0;
	}
}

/* The broadcast loop with the op chosen once, outside it (fbin inlined
 * with a constant op folds its switch away). */
static inline __attribute__((always_inline)) void bin_map1(int op, float *restrict y, const float *a,
							   const int32_t *ma, const float *b,
							   const int32_t *mb, uint64_t w)
{
	for (uint64_t i = 0; i < w; i++)
		y[i] = fbin(op, a[at(ma, i)], b[at(mb, i)]);
}

static void bin_map(int op, float *restrict y, const float *a, const int32_t *ma, const float *b, const int32_t *mb,
		    uint64_t w)
{
	switch (op) {
	case GX_ADD:
		bin_map1(GX_ADD, y, a, ma, b, mb, w);
		break;
	case GX_SUB:
		bin_map1(GX_SUB, y, a, ma, b, mb, w);
		break;
	case GX_MUL:
		bin_map1(GX_MUL, y, a, ma, b, mb, w);
		break;
	case GX_DIV:
		bin_map1(GX_DIV, y, a, ma, b, mb, w);
		break;
	default:
		bin_map1(op, y, a, ma, b, mb, w);
		break;
	}
}

static void k_bin(const struct gx_step *s, const void *const *in, const uint64_t *st, void *y, uint32_t rows)
{
	const int32_t *ma = s->map[0], *mb = s->map[1];
	uint64_t w = s->out_w;
	bool cmp = s->op >= GX_EQ && s->op <= GX_GE;
	if (s->in_dt == QV_DT_F32 && !cmp && !ma && !mb && st[0] == w && st[1] == w && s->op <= GX_DIV) {
		/* two computed operands of the output's shape: one loop over
		 * every row, not a short loop a row */
		const float *restrict a = in[0], *restrict b = in[1];
		float *restrict yr = y;
		size_t n = (size_t)rows * w;
		switch (s->op) {
		case GX_ADD:
#pragma omp simd
			for (size_t i = 0; i < n; i++)
				yr[i] = a[i] + b[i];
			break;
		case GX_SUB:
#pragma omp simd
			for (size_t i = 0; i < n; i++)
				yr[i] = a[i] - b[i];
			break;
		case GX_MUL:
#pragma omp simd
			for (size_t i = 0; i < n; i++)
				yr[i] = a[i] * b[i];
			break;
		default:
#pragma omp simd
			for (size_t i = 0; i < n; i++)
				yr[i] = a[i] / b[i];
			break;
		}
		return;
	}
	for (uint32_t r = 0; r < rows; r++) {
		if (s->in_dt == QV_DT_F32) {
			const float *a = (const float *)in[0] + (size_t)r * st[0];
			const float *b = (const float *)in[1] + (size_t)r * st[1];
			if (cmp) {
				uint8_t *yr = (uint8_t *)y + (size_t)r * w;
				for (uint64_t i = 0; i < w; i++)
					yr[i] = (uint8_t)fcmp(s->op, a[at(ma, i)], b[at(mb, i)]);
				continue;
			}
			float *restrict yr = (float *)y + (size_t)r * w;
			if (!ma && !mb && s->op == GX_ADD) {
				for (uint64_t i = 0; i < w; i++)
					yr[i] = a[i] + b[i];
			} else if (!ma && !mb && s->op == GX_MUL) {
				for (uint64_t i = 0; i < w; i++)
					yr[i] = a[i] * b[i];
			} else if (!ma && !mb && s->op == GX_SUB) {
				for (uint64_t i = 0; i < w; i++)
					yr[i] = a[i] - b[i];
			} else if (!ma && s->one[1] && s->op <= GX_DIV) {
				/* x op (one value a row): normalisations, scalings */
				float v = b[0];
				switch (s->op) {
				case GX_ADD:
					for (uint64_t i = 0; i < w; i++)
						yr[i] = a[i] + v;
					break;
				case GX_SUB:
					for (uint64_t i = 0; i < w; i++)
						yr[i] = a[i] - v;
					break;
				case GX_MUL:
					for (uint64_t i = 0; i < w; i++)
						yr[i] = a[i] * v;
					break;
				default:
					for (uint64_t i = 0; i < w; i++)
						yr[i] = a[i] / v;
					break;
				}
			} else {
				bin_map(s->op, yr, a, ma, b, mb, w);
			}
		} else if (s->in_dt == QV_DT_I64) {
			const char *a = (const char *)in[0] + (size_t)r * st[0] * 8;
			const char *b = (const char *)in[1] + (size_t)r * st[1] * 8;
			for (uint64_t i = 0; i < w; i++) {
				int64_t va = ld64(a + (size_t)at(ma, i) * 8);
				int64_t vb = ld64(b + (size_t)at(mb, i) * 8);
				if (cmp)
					((uint8_t *)y)[(size_t)r * w + i] = (uint8_t)(s->op == GX_EQ ? va == vb
						: s->op == GX_LT ? va < vb : s->op == GX_GT ? va > vb
						: s->op == GX_LE ? va <= vb : va >= vb);
				else
					st64((char *)y + ((size_t)r * w + i) * 8, ibin(s->op, va, vb));
			}
		} else { /* bool: And / Or */
			const uint8_t *a = (const uint8_t *)in[0] + (size_t)r * st[0];
			const uint8_t *b = (const uint8_t *)in[1] + (size_t)r * st[1];
			uint8_t *yr = (uint8_t *)y + (size_t)r * w;
			for (uint64_t i = 0; i < w; i++) {
				uint8_t va = a[at(ma, i)], vb = b[at(mb, i)];
				yr[i] = s->op == GX_AND ? (va && vb) : (va || vb);
			}
		}
	}
}

static void k_where(const struct gx_step *s, const void *const *in, const uint64_t *st, void *y, uint32_t rows)
{
	uint64_t w = s->out_w;
	uint32_t e = s->esz;
	for (uint32_t r = 0; r < rows; r++) {
		const uint8_t *c = (const uint8_t *)in[0] + (size_t)r * st[0];
		const char *a = (const char *)in[1] + (size_t)r * st[1] * e;
		const char *b = (const char *)in[2] + (size_t)r * st[2] * e;
		char *yr = (char *)y + (size_t)r * w * e;
		for (uint64_t i = 0; i < w; i++) {
			uint64_t ic = s->map[0] ? (uint64_t)s->map[0][i] : i;
			uint64_t ia = s->map[1] ? (uint64_t)s->map[1][i] : i;
			uint64_t ib = s->map[2] ? (uint64_t)s->map[2][i] : i;
			memcpy(yr + i * e, c[ic] ? a + ia * e : b + ib * e, e);
		}
	}
}

/*
 * erf for the fused GELU: a rational approximation x P(x^2) / Q(x^2) on
 * [-4, 4] (erf is +-1 in float beyond), the one Eigen uses for float
 * (generic_fast_erf_float). Absolute error 4.2e-7 against erf in double
 * over [-6, 6] (checked when this was written), no libm call, so the GELU
 * loops vectorise; libm's erff costs ~4 ns a call and dominated residual
 * models at 64 rows. The unfused Erf op (the reference walk) keeps erff.
 */
static inline float erf_fast(float a)
{
	float x = a < -4.0f ? -4.0f : a > 4.0f ? 4.0f : a;
	float x2 = x * x;
	float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
	p = x2 * p + -2.10102402082508e-06f;
	p = x2 * p + -5.69250639462346e-05f;
	p = x2 * p + -7.34990630326855e-04f;
	p = x2 * p + -2.95459980854025e-03f;
	p = x2 * p + -1.60960333262415e-02f;
	float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
	q = x2 * q + -1.68282697438203e-03f;
	q = x2 * q + -7.37332916720468e-03f;
	q = x2 * q + -1.42647390514189e-02f;
	return x * p / q;
}

static inline float gelu(float x)
{
	return 0.5f * x * (1.0f + erf_fast(x * 0.70710678118654752f));
}

/*
 * GELU over n floats, four at a time with SSE (every x86-64 has it): GCC
 * will not if-convert erf_fast's clamps at -O2 with trapping math, so the
 * plain loop stays scalar. Same formula, same order of operations as
 * gelu(); NaN stays NaN (the product with x).
 */
static void gelu_n(float *y, const float *x, size_t n)
{
	const __m128 lo = _mm_set1_ps(-4.0f), hi = _mm_set1_ps(4.0f), r2 = _mm_set1_ps(0.70710678118654752f);
	const __m128 half = _mm_set1_ps(0.5f), one = _mm_set1_ps(1.0f);
	size_t i = 0;
	for (; i + 4 <= n; i += 4) {
		__m128 v = _mm_loadu_ps(x + i);
		__m128 t = _mm_min_ps(_mm_max_ps(_mm_mul_ps(v, r2), lo), hi);
		__m128 t2 = _mm_mul_ps(t, t);
		__m128 p = _mm_add_ps(_mm_mul_ps(t2, _mm_set1_ps(-2.72614225801306e-10f)), _mm_set1_ps(2.77068142495902e-08f));
		p = _mm_add_ps(_mm_mul_ps(t2, p), _mm_set1_ps(-2.10102402082508e-06f));
		p = _mm_add_ps(_mm_mul_ps(t2, p), _mm_set1_ps(-5.69250639462346e-05f));
		p = _mm_add_ps(_mm_mul_ps(t2, p), _mm_set1_ps(-7.34990630326855e-04f));
		p = _mm_add_ps(_mm_mul_ps(t2, p), _mm_set1_ps(-2.95459980854025e-03f));
		p = _mm_add_ps(_mm_mul_ps(t2, p), _mm_set1_ps(-1.60960333262415e-02f));
		__m128 q = _mm_add_ps(_mm_mul_ps(t2, _mm_set1_ps(-1.45660718464996e-05f)), _mm_set1_ps(-2.13374055278905e-04f));
		q = _mm_add_ps(_mm_mul_ps(t2, q), _mm_set1_ps(-1.68282697438203e-03f));
		q = _mm_add_ps(_mm_mul_ps(t2, q), _mm_set1_ps(-7.37332916720468e-03f));
		q = _mm_add_ps(_mm_mul_ps(t2, q), _mm_set1_ps(-1.42647390514189e-02f));
		__m128 e = _mm_div_ps(_mm_mul_ps(t, p), q);
		_mm_storeu_ps(y + i, _mm_mul_ps(_mm_mul_ps(half, v), _mm_add_ps(one, e)));
	}
	for (; i < n; i++)
		y[i] = gelu(x[i]);
}

static inline float gelu_tanh(float x)
{
	return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
}

static void k_unary(const struct gx_step *s, const void *x, void *y, size_t n)
{
	if (s->op == GX_NOT) {
		for (size_t i = 0; i < n; i++)
			((uint8_t *)y)[i] = !((const uint8_t *)x)[i];
		return;
	}
	const float *restrict a = x;
	float *restrict b = y;
	float lo = s->alpha, hi = s->beta;
	/* one loop per op so each vectorises on its own */
	switch (s->op) {
	case GX_RELU:
		for (size_t i = 0; i < n; i++)
			b[i] = a[i] > 0.0f ? a[i] : 0.0f;
		break;
	case GX_LEAKY:
		for (size_t i = 0; i < n; i++)
			b[i] = a[i] < 0.0f ? lo * a[i] : a[i];
		break;
	case GX_SIGMOID:
		for (size_t i = 0; i < n; i++)
			b[i] = 1.0f / (1.0f + expf(-a[i]));
		break;
	case GX_TANH:
		for (size_t i = 0; i < n; i++)
			b[i] = tanhf(a[i]);
		break;
	case GX_CLIP:
		for (size_t i = 0; i < n; i++) {
			float v = a[i] < lo ? lo : a[i];
			b[i] = v > hi ? hi : v;
		}
		break;
	case GX_ERF:
		for (size_t i = 0; i < n; i++)
			b[i] = erff(a[i]);
		break;
	case GX_EXP:
		for (size_t i = 0; i < n; i++)
			b[i] = expf(a[i]);
		break;
	case GX_LOG:
		for (size_t i = 0; i < n; i++)
			b[i] = logf(a[i]);
		break;
	case GX_SQRT:
		for (size_t i = 0; i < n; i++)
			b[i] = sqrtf(a[i]);
		break;
	case GX_RECIP:
		for (size_t i = 0; i < n; i++)
			b[i] = 1.0f / a[i];
		break;
	case GX_NEG:
		for (size_t i = 0; i < n; i++)
			b[i] = -a[i];
		break;
	case GX_ABS:
		for (size_t i = 0; i < n; i++)
			b[i] = fabsf(a[i]);
		break;
	case GX_FLOOR:
		for (size_t i = 0; i < n; i++)
			b[i] = floorf(a[i]);
		break;
	case GX_CEIL:
		for (size_t i = 0; i < n; i++)
			b[i] = ceilf(a[i]);
		break;
	case GX_GELU:
		gelu_n(b, a, n);
		break;
	case GX_GELU_TANH:
		for (size_t i = 0; i < n; i++)
			b[i] = gelu_tanh(a[i]);
		break;
	default:
		if (a != b)
			memmove(b, a, n * sizeof(float));
		break;
	}
}

static void k_cast(const struct gx_step *s, const void *x, void *y, size_t n)
{
	uint32_t ie = gx_esz(s->in_dt);
	for (size_t i = 0; i < n; i++) {
		const char *p = (const char *)x + i * ie;
		double fv = 0;
		int64_t iv = 0;
		bool isf = s->in_dt == QV_DT_F32;
		if (isf) {
			float f;
			memcpy(&f, p, 4);
			fv = f;
		} else if (s->in_dt == QV_DT_I64) {
			iv = ld64(p);
		} else if (s->in_dt == QV_DT_I32) {
			int32_t v;
			memcpy(&v, p, 4);
			iv = v;
		} else {
			iv = *(const uint8_t *)p;
		}
		char *q = (char *)y + i * s->esz;
		switch (s->dt) {
		case QV_DT_F32: {
			float f = isf ? (float)fv : (float)iv;
			memcpy(q, &f, 4);
			break;
		}
		case GX_BOOL:
			*(uint8_t *)q = isf ? fv != 0 : iv != 0;
			break;
		default: {
			/* float -> int truncates. NaN and values the type cannot hold
			 * (undefined in C and in ONNX) become the type's minimum: as
			 * an id that is out of range for every table, so a float id
			 * of 1e30 gets -ERANGE rather than row 0 or garbage. */
			bool i32 = s->dt == QV_DT_I32;
			double lim = i32 ? 2147483648.0 : 9223372036854775808.0;
			if (isf)
				iv = fv > -lim && fv < lim ? (int64_t)fv : i32 ? INT32_MIN : INT64_MIN;
			else if (i32 && (iv < INT32_MIN || iv > INT32_MAX))
				iv = INT32_MIN;
			if (!i32) {
				st64(q, iv);
			} else {
				int32_t v = (int32_t)iv;
				memcpy(q, &v, 4);
			}
			break;
		}
		}
	}
}

static void k_softmax(const struct gx_step *s, const float *x, float *y, uint32_t rows)
{
	uint64_t n = s->n, inner = s->inner;
	for (uint64_t blk = 0; blk < (uint64_t)rows * s->outer; blk++) {
		const float *xb = x + blk * n * inner;
		float *yb = y + blk * n * inner;
		for (uint64_t j = 0; j < inner; j++) {
			float mx = xb[j];
			for (uint64_t i = 1; i < n; i++)
				mx = xb[i * inner + j] > mx ? xb[i * inner + j] : mx;
			float sum = 0.0f;
			for (uint64_t i = 0; i < n; i++) {
				float e = expf(xb[i * inner + j] - mx);
				sum += e;
				if (!s->op)
					yb[i * inner + j] = e;
			}
			if (s->op) {
				float ls = logf(sum);
				for (uint64_t i = 0; i < n; i++)
					yb[i * inner + j] = xb[i * inner + j] - mx - ls;
			} else {
				float inv = 1.0f / sum;
				for (uint64_t i = 0; i < n; i++)
					yb[i * inner + j] *= inv;
			}
		}
	}
}

/* Sum of n floats in 8 partial sums, so the loop vectorises without
 * reassociating beyond what the partials do (no fast-math). */
static inline float sum8(const float *restrict x, uint64_t n)
{
	float p[8] = { 0 };
	uint64_t i = 0;
	for (; i + 8 <= n; i += 8)
#pragma omp simd
		for (int u = 0; u < 8; u++)
			p[u] += x[i + u];
	float s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
	for (; i < n; i++)
		s += x[i];
	return s;
}

static inline float sqdev8(const float *restrict x, uint64_t n, float mean)
{
	float p[8] = { 0 };
	uint64_t i = 0;
	for (; i + 8 <= n; i += 8)
#pragma omp simd
		for (int u = 0; u < 8; u++) {
			float d = x[i + u] - mean;
			p[u] += d * d;
		}
	float s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
	for (; i < n; i++)
		s += (x[i] - mean) * (x[i] - mean);
	return s;
}

/* A reduction over one run of axes: blocks of rn x inner, no scatter. */
static void k_reduce_run(const struct gx_step *s, const float *x, float *y, uint32_t rows)
{
	uint64_t rn = s->rn, inner = s->inner;
	for (uint64_t blk = 0; blk < (uint64_t)rows * s->outer; blk++) {
		const float *xb = x + blk * rn * inner;
		float *restrict yb = y + blk * inner;
		if (inner == 1 && (s->op == GX_RSUM || s->op == GX_RMEAN)) {
			yb[0] = sum8(xb, rn) * (s->op == GX_RMEAN ? s->rnorm : 1.0f);
			continue;
		}
		for (uint64_t j = 0; j < inner; j++)
			yb[j] = xb[j];
		for (uint64_t i = 1; i < rn; i++) {
			const float *restrict xi = xb + i * inner;
			switch (s->op) {
			case GX_RMAX:
				for (uint64_t j = 0; j < inner; j++)
					yb[j] = xi[j] > yb[j] || isnan(xi[j]) ? xi[j] : yb[j];
				break;
			case GX_RMIN:
				for (uint64_t j = 0; j < inner; j++)
					yb[j] = xi[j] < yb[j] || isnan(xi[j]) ? xi[j] : yb[j];
				break;
			default:
				for (uint64_t j = 0; j < inner; j++)
					yb[j] += xi[j];
				break;
			}
		}
		if (s->op == GX_RMEAN)
			for (uint64_t j = 0; j < inner; j++)
				yb[j] *= s->rnorm;
	}
}

static void k_reduce(const struct gx_step *s, const float *x, float *y, uint32_t rows)
{
	if (s->rn) {
		k_reduce_run(s, x, y, rows);
		return;
	}
	const int32_t *m = s->map[0];
	uint64_t w = s->out_w, n = s->n;
	float init = s->op == GX_RMAX ? -INFINITY : s->op == GX_RMIN ? INFINITY : 0.0f;
	for (uint32_t r = 0; r < rows; r++) {
		const float *xr = x + (size_t)r * n;
		float *yr = y + (size_t)r * w;
		for (uint64_t i = 0; i < w; i++)
			yr[i] = init;
		switch (s->op) {
		case GX_RMAX:
			for (uint64_t i = 0; i < n; i++)
				yr[m[i]] = xr[i] > yr[m[i]] || isnan(xr[i]) ? xr[i] : yr[m[i]];
			break;
		case GX_RMIN:
			for (uint64_t i = 0; i < n; i++)
				yr[m[i]] = xr[i] < yr[m[i]] || isnan(xr[i]) ? xr[i] : yr[m[i]];
			break;
		default:
			for (uint64_t i = 0; i < n; i++)
				yr[m[i]] += xr[i];
			if (s->op == GX_RMEAN)
				for (uint64_t i = 0; i < w; i++)
					yr[i] *= s->rnorm;
			break;
		}
	}
}

/* May run in place (x == y: a dense step's tail): no restrict here. */
static void k_layernorm(const struct gx_step *s, const float *x, float *y, uint32_t rows)
{
	uint64_t n = s->n;
	for (uint64_t blk = 0; blk < (uint64_t)rows * s->outer; blk++) {
		const float *xb = x + blk * n;
		float *yb = y + blk * n;
		float mean = sum8(xb, n) / (float)n;
		float var = sqdev8(xb, n, mean) / (float)n;
		float inv = 1.0f / sqrtf(var + s->alpha);
		const float *restrict sc = s->scale, *restrict bi = s->bias;
#pragma omp simd
		for (uint64_t i = 0; i < n; i++)
			yb[i] = (xb[i] - mean) * inv * sc[i] + bi[i];
	}
}

static int k_gather(const struct gx_step *s, const void *table, const void *ids, uint64_t ids_stride, void *y,
		    uint32_t rows)
{
	uint32_t isz = gx_esz(s->in_dt);
	size_t row = (size_t)s->D * s->esz;
	int64_t V = (int64_t)s->V;
	/* straight into a Concat's rows when the plan says so */
	size_t ostride = (s->ostride ? s->ostride : s->n_idx * s->D) * s->esz;
	y = (char *)y + s->ooff * s->esz;
	for (uint32_t r = 0; r < rows; r++) {
		const char *ir = (const char *)ids + (size_t)r * ids_stride * isz;
		char *yr = (char *)y + (size_t)r * ostride;
		for (uint64_t k = 0; k < s->n_idx; k++) {
			int64_t id;
			if (isz == 8) {
				id = ld64(ir + k * 8);
			} else {
				int32_t v;
				memcpy(&v, ir + k * 4, 4);
				id = v;
			}
			if (id < 0)
				id += V;
			if (__builtin_expect(id < 0 || id >= V, 0))
				return -ERANGE;
			copy_small(yr + k * row, (const char *)table + (size_t)id * row, row);
		}
	}
	return 0;
}

/* Dot product of n floats in eight partial sums (vectorises without fast-math). */
static inline float dot8(const float *restrict a, const float *restrict b, uint32_t n)
{
	float p[8] = { 0 };
	uint32_t k = 0;
	for (; k + 8 <= n; k += 8)
#pragma omp simd
		for (int u = 0; u < 8; u++)
			p[u] += a[k + u] * b[k + u];
	float s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
	for (; k < n; k++)
		s += a[k] * b[k];
	return s;
}

/*
 * A product with at most W (4, 8 or 16, a constant once inlined) columns:
 * B padded to W columns in `bt` unless it has exactly W, each row of C
 * accumulated in W lanes that stay in registers.
 */
static inline __attribute__((always_inline)) void bmm_narrow(const float *restrict a, const float *restrict b,
							     float *restrict c, uint32_t M, uint32_t K,
							     uint32_t N, uint32_t W, float *restrict bt)
{
	const float *restrict bb = b;
	if (N != W) {
		for (uint32_t k = 0; k < K; k++)
			for (uint32_t j = 0; j < W; j++)
				bt[(size_t)k * W + j] = j < N ? b[(size_t)k * N + j] : 0.0f;
		bb = bt;
	}
	for (uint32_t i = 0; i < M; i++) {
		float acc[16] = { 0 };
		for (uint32_t k = 0; k < K; k++) {
			float aik = a[(size_t)i * K + k];
#pragma omp simd
			for (uint32_t j = 0; j < W; j++)
				acc[j] += aik * bb[(size_t)k * W + j];
		}
		for (uint32_t j = 0; j < N; j++)
			c[(size_t)i * N + j] = acc[j];
	}
}

/*
 * Small products (DLRM's interactions, 4 x 8 . 8 x 4) are latency-bound in
 * the usual i-k-j order (a chain of dependent adds per output, or stores
 * forwarded to the next k). B is copied transposed into a local buffer
 * and every output is a contiguous dot product instead. Large ones
 * stream B row by row.
 */
static void k_bmm(const struct gx_step *s, const float *A, uint64_t sa, const float *B, uint64_t sb, float *y,
		  uint32_t rows)
{
	uint32_t M = s->M, K = s->K, N = s->N;
	float bt[2048];
	bool small = (size_t)K * N <= sizeof(bt) / sizeof(bt[0]);
	for (uint32_t r = 0; r < rows; r++) {
		for (uint32_t l = 0; l < s->L; l++) {
			const float *restrict a = A + (size_t)r * sa + s->aoff[l];
			const float *restrict b = B + (size_t)r * sb + s->boff[l];
			float *restrict c = y + (size_t)r * s->out_w + (size_t)l * M * N;
			if (N <= 4 && K <= 512) {
				bmm_narrow(a, b, c, M, K, N, 4, bt);
				continue;
			}
			if (N <= 8 && K <= 256) {
				bmm_narrow(a, b, c, M, K, N, 8, bt);
				continue;
			}
			if (N <= 16 && K <= 128) {
				bmm_narrow(a, b, c, M, K, N, 16, bt);
				continue;
			}
			if (small) {
				for (uint32_t k = 0; k < K; k++)
					for (uint32_t j = 0; j < N; j++)
						bt[(size_t)j * K + k] = b[(size_t)k * N + j];
				for (uint32_t i = 0; i < M; i++)
					for (uint32_t j = 0; j < N; j++)
						c[(size_t)i * N + j] = dot8(a + (size_t)i * K, bt + (size_t)j * K, K);
				continue;
			}
			for (uint32_t i = 0; i < M; i++) {
				float *restrict ci = c + (size_t)i * N;
				for (uint32_t j = 0; j < N; j++)
					ci[j] = 0.0f;
				for (uint32_t k = 0; k < K; k++) {
					float aik = a[(size_t)i * K + k];
					const float *restrict bk = b + (size_t)k * N;
					for (uint32_t j = 0; j < N; j++)
						ci[j] += aik * bk[j];
				}
			}
		}
	}
}

int gx_kernel(const struct gx_step *s, const void *const *in, const uint64_t *stride, void *out,
	      uint32_t rows, struct qv_dnnl_dense_ctx *dc)
{
	switch (s->kind) {
	case GX_K_MAP:
		k_map(s, in[0], stride[0], out, rows);
		return 0;
	case GX_K_CONCAT: {
		char *y = out;
		uint32_t e = s->esz;
		for (uint32_t r = 0; r < rows; r++) {
			for (uint64_t o = 0; o < s->outer; o++) {
				for (uint32_t j = 0; j < s->n_in; j++) {
					size_t p = (size_t)s->part[j] * e;
					if (!s->skip || !s->skip[j])
						copy_small(y, (const char *)in[j] + ((size_t)r * stride[j] + o * s->part[j]) * e, p);
					y += p;
				}
			}
		}
		return 0;
	}
	case GX_K_BIN:
		k_bin(s, in, stride, out, rows);
		return 0;
	case GX_K_WHERE:
		k_where(s, in, stride, out, rows);
		return 0;
	case GX_K_UNARY:
		if (stride[0] == 0) { /* a constant operand (folding only) */
			for (uint32_t r = 0; r < rows; r++)
				k_unary(s, in[0], (char *)out + (size_t)r * s->out_w * s->esz, s->out_w);
		} else {
			k_unary(s, in[0], out, (size_t)rows * s->out_w);
		}
		return 0;
	case GX_K_CAST:
		for (uint32_t r = 0; r < rows; r++)
			k_cast(s, (const char *)in[0] + (size_t)r * stride[0] * gx_esz(s->in_dt),
			       (char *)out + (size_t)r * s->out_w * s->esz, s->out_w);
		return 0;
	case GX_K_SOFTMAX:
		if (stride[0] == 0)
			rows = 1;
		k_softmax(s, in[0], out, rows);
		return 0;
	case GX_K_REDUCE:
		if (stride[0] == 0)
			rows = 1;
		k_reduce(s, in[0], out, rows);
		return 0;
	case GX_K_LN:
		if (stride[0] == 0)
			rows = 1;
		k_layernorm(s, in[0], out, rows);
		return 0;
	case GX_K_AFFINE:
		for (uint32_t r = 0; r < rows; r++) {
			const float *restrict x = (const float *)in[0] + (size_t)r * stride[0];
			float *restrict y = (float *)out + (size_t)r * s->out_w;
			for (uint64_t i = 0; i < s->out_w; i++)
				y[i] = x[i] * s->scale[i] + s->bias[i];
		}
		return 0;
	case GX_K_GATHER:
		return k_gather(s, in[0], in[1], stride[1], out, rows);
	case GX_K_BMM:
		k_bmm(s, in[0], stride[0], in[1], stride[1], out, rows);
		return 0;
	case GX_K_DENSE_REF:
		qv_ref_dense(in[0], rows * s->rmul, s->K, s->ds.W, s->N, s->ds.b, s->ds.act, out);
		return 0;
	case GX_K_DENSE: {
		int r = qv_dense_step_run(&s->ds, dc, in[0], rows * s->rmul, out);
		if (r < 0 || !s->n_tail)
			return r;
		/* tails, in place on the rows just written */
		size_t n = (size_t)rows * s->out_w;
		float *restrict y = out;
		for (uint32_t t = 0; t < s->n_tail; t++) {
			switch (s->tail[t].kind) {
			case GX_TAIL_ADD: {
				const float *restrict o = in[s->tail[t].arg];
#pragma omp simd
				for (size_t i = 0; i < n; i++)
					y[i] += o[i];
				break;
			}
			case GX_TAIL_GELU:
				gelu_n(y, y, n);
				break;
			case GX_TAIL_GELU_TANH:
				for (size_t i = 0; i < n; i++)
					y[i] = gelu_tanh(y[i]);
				break;
			default: {
				struct gx_step ln = { .n = s->t_n, .outer = s->out_w / s->t_n, .scale = s->t_scale,
						      .bias = s->t_bias, .alpha = s->t_eps };
				k_layernorm(&ln, y, y, rows);
				break;
			}
			}
		}
		return 0;
	}
	}
	return 0;
}

/* ---- the reference walk ---- */

/* Copies n bytes (a multiple of 4): rows of a few ids or floats are too
 * short for a memcpy call to pay off, so they go a word at a time. */
static inline void copy_row(void *restrict d, const void *restrict src, size_t n)
{
	if (n > 64) {
		memcpy(d, src, n);
		return;
	}
	for (size_t i = 0; i < n; i += 4)
		memcpy((char *)d + i, (const char *)src + i, 4);
}

/* Copies rows of tensor info ti between a packed buffer and a tensor buffer. */
static void unpack(const struct qv_tensor_info *ti, const void *packed, size_t packed_row, uint32_t rows, void *t)
{
	for (uint32_t r = 0; r < rows; r++)
		copy_row((char *)t + (size_t)r * ti->row_bytes, (const char *)packed + r * packed_row + ti->packed_off,
			 ti->row_bytes);
}

static void pack(const struct qv_tensor_info *ti, const void *t, uint32_t rows, void *packed, size_t packed_row)
{
	for (uint32_t r = 0; r < rows; r++)
		copy_row((char *)packed + r * packed_row + ti->packed_off, (const char *)t + (size_t)r * ti->row_bytes,
			 ti->row_bytes);
}

/* Runs `steps` with the stores in `ptr`; dc per step or NULL. */
static int run_steps(const struct gx_model *g, const struct gx_step *steps, uint32_t n, void *const *ptr,
		     struct qv_dnnl_dense_ctx *const *dc, uint32_t rows)
{
	const void *ins[GX_MAX_IN];
	uint64_t st[GX_MAX_IN];
	for (uint32_t i = 0; i < n; i++) {
		const struct gx_step *s = &steps[i];
		for (uint32_t j = 0; j < s->n_in; j++) {
			const struct gx_tensor *t = &g->t[s->in[j]];
			if (t->bpos < 0) {
				ins[j] = t->data;
				st[j] = 0;
			} else {
				ins[j] = ptr[t->store];
				st[j] = t->numel;
			}
		}
		int r = gx_kernel(s, ins, st, ptr[g->t[s->out].store], rows, dc ? dc[i] : NULL);
		if (__builtin_expect(r < 0, 0))
			return r;
	}
	return 0;
}

int gx_run_reference(const struct qv_model *m, const void *in, uint32_t rows, void *out)
{
	const struct gx_model *g = m->impl;
	void **ptr = calloc(g->n_store ? g->n_store : 1, sizeof(*ptr));
	int r = -ENOMEM;
	if (!ptr)
		return r;
	for (uint32_t i = 0; i < g->n_store; i++)
		if (!(ptr[i] = malloc(g->store_bytes[i] * rows + 8)))
			goto out;
	for (uint32_t i = 0; i < g->n_in; i++)
		unpack(&m->tin[i], in, (size_t)m->info.in_dim * 4, rows, ptr[g->in_store[i]]);
	r = run_steps(g, g->ref, g->n_ref, ptr, NULL, rows);
	if (r == 0)
		for (uint32_t j = 0; j < g->n_out; j++)
			pack(&m->tout[j], ptr[g->out_store[j]], rows, out, (size_t)m->info.out_dim * 4);
out:
	for (uint32_t i = 0; i < g->n_store; i++)
		free(ptr[i]);
	free(ptr);
	return r;
}

/* ---- contexts and the hot path ---- */

struct gx_ctx {
	void **ptr;                       /* per store, for this run */
	void **buf;                       /* per store: the context's own rows */
	char *arena;
	struct qv_dnnl_dense_ctx **dc;    /* per fused step */
};

static void ctx_free(const struct qv_model *m, void *impl)
{
	const struct gx_model *g = m->impl;
	struct gx_ctx *c = impl;
	if (!c)
		return;
	if (c->dc)
		for (uint32_t i = 0; i < g->n_steps; i++)
			qv_dnnl_dense_ctx_free(c->dc[i]);
	free(c->dc);
	free(c->ptr);
	free(c->buf);
	free(c->arena);
	free(c);
}

static int ctx_create(const struct qv_model *m, void **ret)
{
	const struct gx_model *g = m->impl;
	struct gx_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	uint32_t ns = g->n_store ? g->n_store : 1;
	c->ptr = calloc(ns, sizeof(void *));
	c->buf = calloc(ns, sizeof(void *));
	c->dc = calloc(g->n_steps ? g->n_steps : 1, sizeof(*c->dc));
	uint64_t total = 0;
	for (uint32_t i = 0; i < g->n_store; i++)
		total += (g->store_bytes[i] * g->max_batch + 63) & ~63ull;
	c->arena = aligned_alloc(64, total ? total : 64);
	if (!c->ptr || !c->buf || !c->dc || !c->arena) {
		ctx_free(m, c);
		return -ENOMEM;
	}
	/* touched here, by the thread that will run it */
	memset(c->arena, 0, total);
	uint64_t off = 0;
	for (uint32_t i = 0; i < g->n_store; i++) {
		c->buf[i] = c->ptr[i] = c->arena + off;
		off += (g->store_bytes[i] * g->max_batch + 63) & ~63ull;
	}
	for (uint32_t i = 0; i < g->n_steps; i++) {
		const struct gx_step *s = &g->steps[i];
		if (s->kind != GX_K_DENSE || !s->ds.dnnl)
			continue;
		int r = qv_dnnl_dense_ctx_create(s->ds.dnnl, &c->dc[i]);
		if (r < 0) {
			ctx_free(m, c);
			return r;
		}
	}
	*ret = c;
	return 0;
}

static int run_packed(const struct qv_model *m, void *impl, const void *in, uint32_t rows, void *out)
{
	const struct gx_model *g = m->impl;
	struct gx_ctx *c = impl;
	/* A thread-local read; set once per thread (see onednn_dense.c). */
	if (__builtin_expect(omp_get_max_threads() != 1, 0))
		qv_thread_init();
	size_t irow = (size_t)m->info.in_dim * 4, orow = (size_t)m->info.out_dim * 4;
	for (uint32_t i = 0; i < g->n_in; i++) {
		int32_t s = g->in_store[i];
		if (rows == 1) {
			c->ptr[s] = (char *)(uintptr_t)in + m->tin[i].packed_off;
		} else {
			c->ptr[s] = c->buf[s];
			unpack(&m->tin[i], in, irow, rows, c->buf[s]);
		}
	}
	for (uint32_t j = 0; j < g->n_out; j++) {
		int32_t s = g->out_store[j];
		if (g->out_direct[j])
			c->ptr[s] = rows == 1 ? (char *)out + m->tout[j].packed_off : c->buf[s];
	}
	int r = run_steps(g, g->steps, g->n_steps, c->ptr, c->dc, rows);
	if (__builtin_expect(r < 0, 0))
		return r;
	for (uint32_t j = 0; j < g->n_out; j++)
		if (rows > 1 || !g->out_direct[j])
			pack(&m->tout[j], c->ptr[g->out_store[j]], rows, out, orow);
	return 0;
}

static int run_tensors(const struct qv_model *m, void *impl, uint32_t rows, const void *const *in,
		       void *const *out)
{
	const struct gx_model *g = m->impl;
	struct gx_ctx *c = impl;
	if (__builtin_expect(omp_get_max_threads() != 1, 0))
		qv_thread_init();
	for (uint32_t i = 0; i < g->n_in; i++)
		c->ptr[g->in_store[i]] = (void *)(uintptr_t)in[i];
	for (uint32_t j = 0; j < g->n_out; j++)
		if (g->out_direct[j])
			c->ptr[g->out_store[j]] = out[j];
	int r = run_steps(g, g->steps, g->n_steps, c->ptr, c->dc, rows);
	if (__builtin_expect(r < 0, 0))
		return r;
	for (uint32_t j = 0; j < g->n_out; j++)
		if (!g->out_direct[j])
			memcpy(out[j], c->ptr[g->out_store[j]], (size_t)rows * m->tout[j].row_bytes);
	return 0;
}

static void gx_ops_free(void *impl)
{
	gx_free(impl);
}

static int run_ref(const struct qv_model *m, const void *in, uint32_t rows, void *out)
{
	return gx_run_reference(m, in, rows, out);
}

const struct qv_model_ops gx_ops = {
	.kind = "graph",
	.free = gx_ops_free,
	.ctx_create = ctx_create,
	.ctx_free = ctx_free,
	.run = run_packed,
	.run_tensors = run_tensors,
	.run_reference = run_ref,
	.describe = gx_describe,
};
