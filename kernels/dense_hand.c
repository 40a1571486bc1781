/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dense_hand.c - hand-written dense kernels for the tiny batches (1..8 rows)
 * of latency-critical traffic, where a oneDNN primitive's fixed overhead is
 * larger than the arithmetic.
 *
 * At batch 1 a dense layer is a stream over its weights: every weight is
 * used once. The kernel therefore is built around one packed weight layout
 * that streams well, and everything else is arranged to keep that stream
 * going:
 *
 *  - W (K x N) is packed once at create time into panels of up to 64
 *    columns (four 16-float "vectors"). Panel p holds K rows of pw = 16 *
 *    vecs floats each, contiguous, so a panel is one sequential read the
 *    hardware prefetcher follows. The N tail is zero-padded to a whole
 *    vector, so the inner loop never branches on it; only the final stores
 *    are masked. Everything is 64-byte aligned, so every load is an aligned
 *    full-line (AVX-512) or half-line (AVX2) load.
 *  - Up to 8 rows (AVX-512) or 4 rows (AVX2) are processed together, so a
 *    weight loaded once feeds that many FMAs.
 *  - When rows x vectors gives fewer than 8 independent accumulators (batch
 *    1), K is split across several accumulator sets that are summed at the
 *    end, so the 4-cycle FMA latency never serializes the loop.
 *  - Bias initializes the accumulators; the activation is applied to the
 *    registers before the one store of each output.
 *  - Outputs at most 4 wide (an MLP's final logit) use a second layout,
 *    W transposed, and dot products over K instead (see "narrow" below).
 *
 * ISA selection is at run time (cpuid), each variant compiled with a
 * target attribute, so the library still runs on any x86-64. The harness
 * forces each variant in turn (the isa argument of create).
 *
 * sigmoid and tanh are vectorized: exp() is the Cephes single-precision
 * polynomial (about 2 ulp) and tanh uses Cephes' odd polynomial below
 * |x| = 0.625, where 1 - 2/(e^2x + 1) would cancel. Both stay within a
 * relative error of 1.5e-7 of the double-precision reference (the harness
 * checks 1e-6 over a sweep).
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <immintrin.h>

#include "hand_act512.h"
#include "hand_dense.h"
#include "qv_ops.h"

#define VEC 16u          /* floats a packed vector */
#define PANEL_VECS 4u    /* vectors a panel */
#define PANEL (VEC * PANEL_VECS)

/* Panel p starts at w + K * PANEL * p: all panels but the last are full. */
static inline const float *panel_ptr(const struct qv_hand_dense *d, uint32_t p)
{
	return d->w + (size_t)d->K * PANEL * p;
}

static inline uint32_t panel_vecs(const struct qv_hand_dense *d, uint32_t p)
{
	uint32_t left = d->nv - p * PANEL_VECS;
	return left < PANEL_VECS ? left : PANEL_VECS;
}

/*
 * Accumulator sets that split K, so at least ~8 FMA chains are in flight
 * (2 FMA pipes x 4 cycles latency). A compile-time constant after inlining.
 */
static inline int ksplit(int chains)
{
	int s = (8 + chains - 1) / chains;
	return s > 4 ? 4 : s;
}

/* ------------------------------------------------------------------ */
/* scalar: the portable fallback; sigmoid and tanh through libm        */
/* ------------------------------------------------------------------ */

static float act_scalar(float v, const struct qv_act_desc *a)
{
	switch (a->kind) {
	case QV_ACT_NONE:
		return v;
	case QV_ACT_RELU:
		return v > 0.0f ? v : 0.0f;
	case QV_ACT_LEAKY_RELU:
		return v < 0.0f ? a->alpha * v : v;
	case QV_ACT_SIGMOID:
		return (float)(1.0 / (1.0 + exp(-(double)v)));
	case QV_ACT_TANH:
		return (float)tanh((double)v);
	case QV_ACT_CLIP:
		if (v < a->alpha)
			v = a->alpha;
		if (v > a->beta)
			v = a->beta;
		return v;
	}
	return v;
}

static void run_scalar(const struct qv_hand_dense *d, const float *x, uint32_t rows, float *y)
{
	const uint32_t K = d->K, N = d->N;
	const uint32_t npanel = (d->nv + PANEL_VECS - 1) / PANEL_VECS;

	for (uint32_t r = 0; r < rows; r++) {
		const float *xr = x + (size_t)r * K;
		float *yr = y + (size_t)r * N;
		for (uint32_t p = 0; p < npanel; p++) {
			const float *w = panel_ptr(d, p);
			const uint32_t pw = panel_vecs(d, p) * VEC;
			const uint32_t c0 = p * PANEL;
			float acc[PANEL];
			memcpy(acc, d->bias + c0, pw * sizeof(float));
			for (uint32_t k = 0; k < K; k++) {
				const float xv = xr[k];
				const float *wk = w + (size_t)k * pw;
				for (uint32_t j = 0; j < pw; j++)
					acc[j] += xv * wk[j];
			}
			for (uint32_t j = 0; j < pw && c0 + j < N; j++)
				yr[c0 + j] = act_scalar(acc[j], &d->act);
		}
	}
}

/* ------------------------------------------------------------------ */
/* AVX-512                                                             */
/* ------------------------------------------------------------------ */

/*
 * R rows x V vectors of one panel. w: first weight of the sub-block, ldw:
 * panel width; y: first output of the sub-block, ldy = N; ncols: valid
 * outputs in the sub-block. R and V are constants after inlining, and the
 * unroll pragmas turn acc[][][] into registers.
 */
INL512 void mk512(const float *restrict w, uint32_t ldw, uint32_t K, const float *restrict x,
		  uint32_t ldx, const float *restrict bias, float *restrict y, uint32_t ldy,
		  uint32_t ncols, const struct qv_act_desc *act, const int R, const int V)
{
	const int S = ksplit(R * V);
	__m512 acc[4][8][4];

#pragma GCC unroll 8
	for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
		for (int v = 0; v < V; v++) {
			acc[0][r][v] = _mm512_load_ps(bias + VEC * v);
#pragma GCC unroll 4
			for (int s = 1; s < S; s++)
				acc[s][r][v] = _mm512_setzero_ps();
		}
	}

	uint32_t k = 0;
	for (; k + (uint32_t)S <= K; k += (uint32_t)S) {
#pragma GCC unroll 4
		for (int s = 0; s < S; s++) {
			const float *wk = w + (size_t)(k + s) * ldw;
#pragma GCC unroll 8
			for (int r = 0; r < R; r++) {
				__m512 xb = _mm512_set1_ps(x[(size_t)r * ldx + k + s]);
#pragma GCC unroll 4
				for (int v = 0; v < V; v++)
					acc[s][r][v] = _mm512_fmadd_ps(xb, _mm512_load_ps(wk + VEC * v),
								       acc[s][r][v]);
			}
		}
	}
	for (; k < K; k++) {
		const float *wk = w + (size_t)k * ldw;
#pragma GCC unroll 8
		for (int r = 0; r < R; r++) {
			__m512 xb = _mm512_set1_ps(x[(size_t)r * ldx + k]);
#pragma GCC unroll 4
			for (int v = 0; v < V; v++)
				acc[0][r][v] = _mm512_fmadd_ps(xb, _mm512_load_ps(wk + VEC * v),
							       acc[0][r][v]);
		}
	}

#pragma GCC unroll 8
	for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
		for (int v = 0; v < V; v++) {
			__m512 t = acc[0][r][v];
#pragma GCC unroll 4
			for (int s = 1; s < S; s++)
				t = _mm512_add_ps(t, acc[s][r][v]);
			act_store512(y + (size_t)r * ldy + VEC * v, t, act, VEC * (uint32_t)v, ncols);
		}
	}
}

static TGT512 void mk512_dispatch(const float *w, uint32_t ldw, uint32_t K, const float *x,
				  uint32_t ldx, const float *bias, float *y, uint32_t ldy,
				  uint32_t ncols, const struct qv_act_desc *act, uint32_t R,
				  uint32_t V)
{
	switch (R * 8 + V) {
	case 1 * 8 + 1: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 1, 1); break;
	case 1 * 8 + 2: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 1, 2); break;
	case 1 * 8 + 3: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 1, 3); break;
	case 1 * 8 + 4: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 1, 4); break;
	case 2 * 8 + 1: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 2, 1); break;
	case 2 * 8 + 2: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 2, 2); break;
	case 2 * 8 + 3: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 2, 3); break;
	case 2 * 8 + 4: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 2, 4); break;
	case 3 * 8 + 1: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 3, 1); break;
	case 3 * 8 + 2: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 3, 2); break;
	case 3 * 8 + 3: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 3, 3); break;
	case 3 * 8 + 4: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 3, 4); break;
	case 4 * 8 + 1: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 4, 1); break;
	case 4 * 8 + 2: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 4, 2); break;
	case 4 * 8 + 3: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 4, 3); break;
	case 4 * 8 + 4: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 4, 4); break;
	case 5 * 8 + 1: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 5, 1); break;
	case 5 * 8 + 2: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 5, 2); break;
	case 6 * 8 + 1: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 6, 1); break;
	case 6 * 8 + 2: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 6, 2); break;
	case 7 * 8 + 1: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 7, 1); break;
	case 7 * 8 + 2: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 7, 2); break;
	case 8 * 8 + 1: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 8, 1); break;
	case 8 * 8 + 2: mk512(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 8, 2); break;
	default: break;  /* unreachable: run512 picks only the cases above */
	}
}

static TGT512 void run512(const struct qv_hand_dense *d, const float *x, uint32_t rows, float *y)
{
	const uint32_t K = d->K, N = d->N;
	const uint32_t npanel = (d->nv + PANEL_VECS - 1) / PANEL_VECS;

	for (uint32_t r0 = 0; r0 < rows;) {
		/* Up to 4 rows: whole panels (16 accumulators); 5..8 rows: half
		 * panels (up to 16 accumulators + 8 broadcasts of 32 registers). */
		uint32_t R = rows - r0 < 8 ? rows - r0 : 8;
		uint32_t vmax = R <= 4 ? 4 : 2;
		for (uint32_t p = 0; p < npanel; p++) {
			const float *w = panel_ptr(d, p);
			const uint32_t pv = panel_vecs(d, p);
			for (uint32_t j = 0; j < pv; j += vmax) {
				uint32_t V = pv - j < vmax ? pv - j : vmax;
				uint32_t c0 = p * PANEL + j * VEC;
				uint32_t ncols = N - c0 < V * VEC ? N - c0 : V * VEC;
				mk512_dispatch(w + j * VEC, pv * VEC, K, x + (size_t)r0 * K, K,
					       d->bias + c0, y + (size_t)r0 * N + c0, N, ncols,
					       &d->act, R, V);
			}
		}
		r0 += R;
	}
}

/* ------------------------------------------------------------------ */
/* AVX2 + FMA: a packed vector is two ymm registers                    */
/* ------------------------------------------------------------------ */

#define TGT2 __attribute__((target("avx2,fma")))
#define INL2 static inline __attribute__((always_inline, target("avx2,fma")))

INL2 __m256 exp256(__m256 x)
{
	x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
	x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365447505531f));
	__m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
	fx = _mm256_floor_ps(fx);
	x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
	x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
	__m256 z = _mm256_mul_ps(x, x);
	__m256 p = _mm256_set1_ps(1.9875691500e-4f);
	p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(1.3981999507e-3f));
	p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(8.3334519073e-3f));
	p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(4.1665795894e-2f));
	p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(1.6666665459e-1f));
	p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(5.0000001201e-1f));
	p = _mm256_fmadd_ps(p, z, x);
	p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
	__m256i n = _mm256_cvtps_epi32(fx);
	n = _mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(p, _mm256_castsi256_ps(n));
}

INL2 __m256 sigmoid256(__m256 x)
{
	__m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
	return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

INL2 __m256 tanh256(__m256 x)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 a = _mm256_andnot_ps(sign, x);
	__m256 e = exp256(_mm256_add_ps(a, a));
	__m256 big = _mm256_sub_ps(_mm256_set1_ps(1.0f),
				   _mm256_div_ps(_mm256_set1_ps(2.0f),
						 _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
	big = _mm256_or_ps(big, _mm256_and_ps(x, sign));
	__m256 s = _mm256_mul_ps(x, x);
	__m256 p = _mm256_set1_ps(-5.70498872745e-3f);
	p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(2.06390887954e-2f));
	p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-5.37397155531e-2f));
	p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.33314422036e-1f));
	p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-3.33332819422e-1f));
	__m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), x, x);
	__m256 m = _mm256_cmp_ps(a, _mm256_set1_ps(0.625f), _CMP_LT_OQ);
	return _mm256_blendv_ps(big, small, m);
}

INL2 __m256 act256(__m256 v, const struct qv_act_desc *a)
{
	switch (a->kind) {
	case QV_ACT_NONE:
		return v;
	case QV_ACT_RELU:
		return _mm256_max_ps(v, _mm256_setzero_ps());
	case QV_ACT_LEAKY_RELU: {
		__m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
		return _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(a->alpha)), neg);
	}
	case QV_ACT_SIGMOID:
		return sigmoid256(v);
	case QV_ACT_TANH:
		return tanh256(v);
	case QV_ACT_CLIP:
		v = _mm256_max_ps(_mm256_set1_ps(a->alpha), v);
		return _mm256_min_ps(_mm256_set1_ps(a->beta), v);
	}
	return v;
}

/* lane i of a maskstore writes when its sign bit is set: &mask_tab[8 - n] */
static const int32_t mask_tab[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };

/* As mk512, V counted in 16-float vectors, Y = 2V ymm registers a row. */
INL2 void mk256(const float *restrict w, uint32_t ldw, uint32_t K, const float *restrict x,
		uint32_t ldx, const float *restrict bias, float *restrict y, uint32_t ldy,
		uint32_t ncols, const struct qv_act_desc *act, const int R, const int V)
{
	const int Y = 2 * V;
	const int S = ksplit(R * Y);
	__m256 acc[4][4][8];

#pragma GCC unroll 4
	for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
		for (int v = 0; v < Y; v++) {
			acc[0][r][v] = _mm256_load_ps(bias + 8 * v);
#pragma GCC unroll 4
			for (int s = 1; s < S; s++)
				acc[s][r][v] = _mm256_setzero_ps();
		}
	}

	uint32_t k = 0;
	for (; k + (uint32_t)S <= K; k += (uint32_t)S) {
#pragma GCC unroll 4
		for (int s = 0; s < S; s++) {
			const float *wk = w + (size_t)(k + s) * ldw;
#pragma GCC unroll 4
			for (int r = 0; r < R; r++) {
				__m256 xb = _mm256_broadcast_ss(x + (size_t)r * ldx + k + s);
#pragma GCC unroll 8
				for (int v = 0; v < Y; v++)
					acc[s][r][v] = _mm256_fmadd_ps(xb, _mm256_load_ps(wk + 8 * v),
								       acc[s][r][v]);
			}
		}
	}
	for (; k < K; k++) {
		const float *wk = w + (size_t)k * ldw;
#pragma GCC unroll 4
		for (int r = 0; r < R; r++) {
			__m256 xb = _mm256_broadcast_ss(x + (size_t)r * ldx + k);
#pragma GCC unroll 8
			for (int v = 0; v < Y; v++)
				acc[0][r][v] = _mm256_fmadd_ps(xb, _mm256_load_ps(wk + 8 * v),
							       acc[0][r][v]);
		}
	}

#pragma GCC unroll 4
	for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
		for (int v = 0; v < Y; v++) {
			__m256 t = acc[0][r][v];
#pragma GCC unroll 4
			for (int s = 1; s < S; s++)
				t = _mm256_add_ps(t, acc[s][r][v]);
			t = act256(t, act);
			float *out = y + (size_t)r * ldy + 8 * v;
			uint32_t c = 8 * (uint32_t)v;
			if (c + 8 <= ncols)
				_mm256_storeu_ps(out, t);
			else if (c < ncols)
				_mm256_maskstore_ps(out,
						    _mm256_loadu_si256((const __m256i *)(const void *)
								       (mask_tab + 8 - (ncols - c))),
						    t);
		}
	}
}

static TGT2 void mk256_dispatch(const float *w, uint32_t ldw, uint32_t K, const float *x,
				uint32_t ldx, const float *bias, float *y, uint32_t ldy,
				uint32_t ncols, const struct qv_act_desc *act, uint32_t R,
				uint32_t V)
{
	switch (R * 8 + V) {
	case 1 * 8 + 1: mk256(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 1, 1); break;
	case 1 * 8 + 2: mk256(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 1, 2); break;
	case 1 * 8 + 3: mk256(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 1, 3); break;
	case 1 * 8 + 4: mk256(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 1, 4); break;
	case 2 * 8 + 1: mk256(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 2, 1); break;
	case 2 * 8 + 2: mk256(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 2, 2); break;
	case 3 * 8 + 1: mk256(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 3, 1); break;
	case 4 * 8 + 1: mk256(w, ldw, K, x, ldx, bias, y, ldy, ncols, act, 4, 1); break;
	default: break;  /* unreachable: run256 picks only the cases above */
	}
}

static TGT2 void run256(const struct qv_hand_dense *d, const float *x, uint32_t rows, float *y)
{
	const uint32_t K = d->K, N = d->N;
	const uint32_t npanel = (d->nv + PANEL_VECS - 1) / PANEL_VECS;

	for (uint32_t r0 = 0; r0 < rows;) {
		/* 16 ymm registers: 1 row x 8 ymm, 2 rows x 4 ymm or 3..4 rows x 2 ymm of
		 * accumulators, plus one broadcast a row (measured: 3 rows x 4 ymm spills). */
		uint32_t R = rows - r0 < 4 ? rows - r0 : 4;
		uint32_t vmax = R == 1 ? 4 : R == 2 ? 2 : 1;
		for (uint32_t p = 0; p < npanel; p++) {
			const float *w = panel_ptr(d, p);
			const uint32_t pv = panel_vecs(d, p);
			for (uint32_t j = 0; j < pv; j += vmax) {
				uint32_t V = pv - j < vmax ? pv - j : vmax;
				uint32_t c0 = p * PANEL + j * VEC;
				uint32_t ncols = N - c0 < V * VEC ? N - c0 : V * VEC;
				mk256_dispatch(w + j * VEC, pv * VEC, K, x + (size_t)r0 * K, K,
					       d->bias + c0, y + (size_t)r0 * N + c0, N, ncols,
					       &d->act, R, V);
			}
		}
		r0 += R;
	}
}

/* ------------------------------------------------------------------ */
/* narrow outputs (N <= 4): dot products over transposed weights       */
/* ------------------------------------------------------------------ */

/*
 * A 1-wide output (the final logit of an MLP) in the panel layout would be
 * one 16-lane column of which 15 lanes are padding, and one FMA chain K
 * long. Instead, for N <= NARROW_MAX (AVX2 and AVX-512 only), W is stored
 * transposed, one zero-padded K row per output, and each output is a dot
 * product over K with several accumulators, reduced horizontally once.
 */
#define NARROW_MAX 4u

INL512 void dot512(const float *restrict w, uint32_t kp, uint32_t K, const float *restrict x,
		   const float *restrict bias, float *restrict y, const struct qv_act_desc *act,
		   const int N)
{
	const int S = ksplit(N);
	__m512 acc[4][NARROW_MAX];
#pragma GCC unroll 4
	for (int s = 0; s < S; s++)
#pragma GCC unroll 4
		for (int n = 0; n < N; n++)
			acc[s][n] = _mm512_setzero_ps();

	uint32_t k = 0;
	for (; k + VEC * (uint32_t)S <= K; k += VEC * (uint32_t)S) {
#pragma GCC unroll 4
		for (int s = 0; s < S; s++) {
			__m512 xv = _mm512_loadu_ps(x + k + VEC * s);
#pragma GCC unroll 4
			for (int n = 0; n < N; n++)
				acc[s][n] = _mm512_fmadd_ps(
					xv, _mm512_load_ps(w + (size_t)n * kp + k + VEC * s), acc[s][n]);
		}
	}
	for (; k < K; k += VEC) {
		/* masked: x has exactly K floats a row; the weights are zero-padded */
		__mmask16 m = K - k >= VEC ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1u);
		__m512 xv = _mm512_maskz_loadu_ps(m, x + k);
#pragma GCC unroll 4
		for (int n = 0; n < N; n++)
			acc[0][n] = _mm512_fmadd_ps(xv, _mm512_load_ps(w + (size_t)n * kp + k),
						    acc[0][n]);
	}

	float out[VEC] __attribute__((aligned(64))) = { 0 };
#pragma GCC unroll 4
	for (int n = 0; n < N; n++) {
		__m512 t = acc[0][n];
#pragma GCC unroll 4
		for (int s = 1; s < S; s++)
			t = _mm512_add_ps(t, acc[s][n]);
		out[n] = _mm512_reduce_add_ps(t) + bias[n];
	}
	__m512 v = act512(_mm512_load_ps(out), act);
	_mm512_mask_storeu_ps(y, (__mmask16)((1u << N) - 1u), v);
}

/*
 * Narrow outputs over eight rows at a time. One accumulator a row and
 * output (eight independent FMA chains), the eight rows' sums gathered
 * into one vector by a horizontal-add tree, bias and activation applied
 * once to that vector. Row by row (dot256 / dot512) each output pays a
 * horizontal sum, a vector activation and a masked store of its own,
 * which at K of a few tens costs several times the products (an MLP's
 * final logit at 256 rows). The AVX-512 variant uses it too: every CPU
 * with AVX-512F has AVX2 and FMA.
 */
INL2 __m256 hsum8x256(const __m256 *v)
{
	__m256 t0 = _mm256_hadd_ps(v[0], v[1]), t1 = _mm256_hadd_ps(v[2], v[3]);
	__m256 t2 = _mm256_hadd_ps(v[4], v[5]), t3 = _mm256_hadd_ps(v[6], v[7]);
	__m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
	/* u0: rows 0-3 low halves | rows 0-3 high halves; u1 the same for 4-7 */
	return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

static TGT2 void narrow_rows8(const struct qv_hand_dense *d, const float *x, float *y)
{
	const uint32_t K = d->K, N = d->N;
	const __m256i m = _mm256_loadu_si256((const __m256i *)(const void *)(mask_tab + 8 - (K & 7u)));
	float out[4][8] __attribute__((aligned(32)));
	for (uint32_t n = 0; n < N; n++) {
		const float *w = d->w + (size_t)n * d->kp;
		__m256 acc[8];
#pragma GCC unroll 8
		for (int r = 0; r < 8; r++)
			acc[r] = _mm256_setzero_ps();
		uint32_t k = 0;
		for (; k + 8 <= K; k += 8) {
			__m256 wv = _mm256_load_ps(w + k);
#pragma GCC unroll 8
			for (int r = 0; r < 8; r++)
				acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + (size_t)r * K + k), wv, acc[r]);
		}
		if (k < K) {
			/* w is zero-padded to kp; x is not: masked loads */
			__m256 wv = _mm256_load_ps(w + k);
#pragma GCC unroll 8
			for (int r = 0; r < 8; r++)
				acc[r] = _mm256_fmadd_ps(_mm256_maskload_ps(x + (size_t)r * K + k, m), wv, acc[r]);
		}
		__m256 s = _mm256_add_ps(hsum8x256(acc), _mm256_set1_ps(d->bias[n]));
		s = act256(s, &d->act);
		if (N == 1) {
			_mm256_storeu_ps(y, s);
			return;
		}
		_mm256_store_ps(out[n], s);
	}
	for (uint32_t r = 0; r < 8; r++)
		for (uint32_t n = 0; n < N; n++)
			y[(size_t)r * N + n] = out[n][r];
}

static TGT512 void run512_narrow(const struct qv_hand_dense *d, const float *x, uint32_t rows,
				 float *y)
{
	const uint32_t K = d->K, N = d->N;
	uint32_t r = 0;
	for (; r + 8 <= rows; r += 8)
		narrow_rows8(d, x + (size_t)r * K, y + (size_t)r * N);
	for (; r < rows; r++) {
		const float *xr = x + (size_t)r * K;
		float *yr = y + (size_t)r * N;
		switch (N) {
		case 1: dot512(d->w, d->kp, K, xr, d->bias, yr, &d->act, 1); break;
		case 2: dot512(d->w, d->kp, K, xr, d->bias, yr, &d->act, 2); break;
		case 3: dot512(d->w, d->kp, K, xr, d->bias, yr, &d->act, 3); break;
		default: dot512(d->w, d->kp, K, xr, d->bias, yr, &d->act, 4); break;
		}
	}
}

INL2 float hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

INL2 void dot256(const float *restrict w, uint32_t kp, uint32_t K, const float *restrict x,
		 const float *restrict bias, float *restrict y, const struct qv_act_desc *act,
		 const int N)
{
	const int S = ksplit(N);
	__m256 acc[4][NARROW_MAX];
#pragma GCC unroll 4
	for (int s = 0; s < S; s++)
#pragma GCC unroll 4
		for (int n = 0; n < N; n++)
			acc[s][n] = _mm256_setzero_ps();

	uint32_t k = 0;
	for (; k + 8 * (uint32_t)S <= K; k += 8 * (uint32_t)S) {
#pragma GCC unroll 4
		for (int s = 0; s < S; s++) {
			__m256 xv = _mm256_loadu_ps(x + k + 8 * s);
#pragma GCC unroll 4
			for (int n = 0; n < N; n++)
				acc[s][n] = _mm256_fmadd_ps(
					xv, _mm256_load_ps(w + (size_t)n * kp + k + 8 * s), acc[s][n]);
		}
	}
	for (; k < K; k += 8) {
		uint32_t left = K - k < 8 ? K - k : 8;
		__m256i m = _mm256_loadu_si256((const __m256i *)(const void *)(mask_tab + 8 - left));
		__m256 xv = _mm256_maskload_ps(x + k, m);
#pragma GCC unroll 4
		for (int n = 0; n < N; n++)
			acc[0][n] = _mm256_fmadd_ps(xv, _mm256_load_ps(w + (size_t)n * kp + k),
						    acc[0][n]);
	}

	float out[8] __attribute__((aligned(32))) = { 0 };
#pragma GCC unroll 4
	for (int n = 0; n < N; n++) {
		__m256 t = acc[0][n];
#pragma GCC unroll 4
		for (int s = 1; s < S; s++)
			t = _mm256_add_ps(t, acc[s][n]);
		out[n] = hsum256(t) + bias[n];
	}
	__m256 v = act256(_mm256_load_ps(out), act);
	_mm256_maskstore_ps(y, _mm256_loadu_si256((const __m256i *)(const void *)(mask_tab + 8 - N)),
			    v);
}

static TGT2 void run256_narrow(const struct qv_hand_dense *d, const float *x, uint32_t rows,
			       float *y)
{
	const uint32_t K = d->K, N = d->N;
	uint32_t r = 0;
	for (; r + 8 <= rows; r += 8)
		narrow_rows8(d, x + (size_t)r * K, y + (size_t)r * N);
	for (; r < rows; r++) {
		const float *xr = x + (size_t)r * K;
		float *yr = y + (size_t)r * N;
		switch (N) {
		case 1: dot256(d->w, d->kp, K, xr, d->bias, yr, &d->act, 1); break;
		case 2: dot256(d->w, d->kp, K, xr, d->bias, yr, &d->act, 2); break;
		case 3: dot256(d->w, d->kp, K, xr, d->bias, yr, &d->act, 3); break;
		default: dot256(d->w, d->kp, K, xr, d->bias, yr, &d->act, 4); break;
		}
	}
}

/* ------------------------------------------------------------------ */
/* dispatch, create, free                                              */
/* ------------------------------------------------------------------ */

enum qv_isa qv_hand_isa(void)
{
	/* Every thread computes the same value, so a racing first call is
	 * harmless and relaxed ordering suffices: nothing else is published. */
	static _Atomic int cached = -1;
	int isa = atomic_load_explicit(&cached, memory_order_relaxed);
	if (isa >= 0)
		return (enum qv_isa)isa;
	__builtin_cpu_init();
	/* libgcc's checks include the OS enabling the register state (XCR0). */
	if (__builtin_cpu_supports("avx512f"))
		isa = QV_ISA_AVX512;
	else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		isa = QV_ISA_AVX2;
	else
		isa = QV_ISA_SCALAR;
	atomic_store_explicit(&cached, isa, memory_order_relaxed);
	return (enum qv_isa)isa;
}

static void *alloc64(size_t bytes)
{
	bytes = (bytes + 63) & ~(size_t)63;
	return aligned_alloc(64, bytes ? bytes : 64);
}

int qv_hand_dense_create(const float *W, uint32_t K, uint32_t N, const float *b,
			 struct qv_act_desc act, int isa, struct qv_hand_dense **ret)
{
	if (!W || !ret || K == 0 || N == 0 || (unsigned)act.kind > QV_ACT_CLIP)
		return -EINVAL;
	/* Panel row strides and offsets are 32-bit; keep every index in range. */
	if ((uint64_t)K * ((uint64_t)N + VEC) >= (1ull << 31))
		return -E2BIG;
	enum qv_isa best = qv_hand_isa();
	if (isa < 0)
		isa = (int)best;
	else if (isa > (int)best)
		return -ENOTSUP;

	struct qv_hand_dense *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->K = K;
	d->N = N;
	d->nv = (N + VEC - 1) / VEC;
	d->act = act;
	d->kp = (K + VEC - 1) / VEC * VEC;
	const int narrow = N <= NARROW_MAX && isa != QV_ISA_SCALAR;
	if (narrow)
		d->run = isa == QV_ISA_AVX512 ? run512_narrow : run256_narrow;
	else
		d->run = isa == QV_ISA_AVX512 ? run512 : isa == QV_ISA_AVX2 ? run256 : run_scalar;
	d->w = alloc64((narrow ? (size_t)N * d->kp : (size_t)K * d->nv * VEC) * sizeof(float));
	d->bias = alloc64((size_t)d->nv * VEC * sizeof(float));
	if (!d->w || !d->bias) {
		qv_hand_dense_free(d);
		return -ENOMEM;
	}

	for (uint32_t c = 0; c < d->nv * VEC; c++)
		d->bias[c] = b && c < N ? b[c] : 0.0f;
	if (narrow) {
		for (uint32_t n = 0; n < N; n++)
			for (uint32_t k = 0; k < d->kp; k++)
				d->w[(size_t)n * d->kp + k] = k < K ? W[(size_t)k * N + n] : 0.0f;
		*ret = d;
		return 0;
	}
	const uint32_t npanel = (d->nv + PANEL_VECS - 1) / PANEL_VECS;
	for (uint32_t p = 0; p < npanel; p++) {
		float *pw = d->w + (size_t)K * PANEL * p;
		const uint32_t width = panel_vecs(d, p) * VEC;
		for (uint32_t k = 0; k < K; k++) {
			for (uint32_t j = 0; j < width; j++) {
				uint32_t c = p * PANEL + j;
				pw[(size_t)k * width + j] = c < N ? W[(size_t)k * N + c] : 0.0f;
			}
		}
	}
	*ret = d;
	return 0;
}

void qv_hand_dense_free(struct qv_hand_dense *d)
{
	if (!d)
		return;
	free(d->w);
	free(d->bias);
	free(d->wscale);
	free(d->comp);
	free(d);
}

void qv_hand_dense_run(const struct qv_hand_dense *d, const float *x, uint32_t rows, float *y)
{
	d->run(d, x, rows, y);
}
