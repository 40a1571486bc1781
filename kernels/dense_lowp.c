/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dense_lowp.c - bf16 (AVX512_BF16) and int8 (AVX512_VNNI) hand-written
 * dense kernels for small batches, where a dense layer is a stream over
 * its weights and halving (bf16) or quartering (int8) their bytes is what
 * makes it faster.
 *
 * Layout. The same panels as the fp32 kernel (dense_hand.c: up to 64
 * columns, contiguous, zero-padded to whole 16-lane vectors), but a panel
 * row holds one 32-bit group per column: two consecutive k of bf16
 * (vdpbf16ps multiplies pairs) or four consecutive k of int8 (vpdpbusd
 * multiplies quads), low k in the low bits. K is zero-padded to whole
 * groups. So one 64-byte load feeds 16 columns x 2 (or 4) k.
 *
 * Activations. Each block of up to 8 rows is converted first into a
 * buffer on the stack (K <= QV_LOWP_MAX_K keeps it at 64 KB): bf16 with
 * vcvtne2ps2bf16 (round to nearest even); int8 as u8 = q + 128 because
 * vpdpbusd multiplies unsigned by signed bytes; the +128 is taken back out
 * with comp[n] = 128 * sum_k q_w[k][n], computed at create time. The inner
 * loop is then the fp32 kernel's: one 32-bit broadcast of a row's group,
 * one load of weights per vector, one dot-product instruction.
 *
 * Activation quantisation (int8). Per row at run time (scale = the row's
 * max |x| / 127) by default: one extra pass over K floats per row, small
 * next to streaming K x N weights, and exact for any input range. A static
 * scale from a calibration set (x_absmax > 0) skips that pass but clamps
 * rows beyond the calibrated range; README "Reduced precision" has the
 * measurements that made per-row the default.
 *
 * Epilogue: bias, int8 rescale and the activation in fp32, with the fp32
 * kernel's vector activations (hand_act512.h).
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

#define VEC 16u
#define PANEL_VECS 4u
#define PANEL (VEC * PANEL_VECS)
#define NARROW_MAX 4u
#define ROWS_MAX 8u

const char *qv_prec_name(enum qv_prec p)
{
	switch (p) {
	case QV_PREC_FP32:
		return "fp32";
	case QV_PREC_BF16:
		return "bf16";
	case QV_PREC_INT8:
		return "int8";
	}
	return "?";
}

/* Is `name` one of the comma-separated words of list? */
static int listed(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == n && strncmp(p, name, n) == 0)
			return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

int qv_prec_supported(enum qv_prec p)
{
	/* Every thread computes the same bits, so a racing first call is
	 * harmless and relaxed ordering suffices (as qv_hand_isa). */
	static _Atomic int cached = -1;
	int bits = atomic_load_explicit(&cached, memory_order_relaxed);
	if (bits < 0) {
		__builtin_cpu_init();
		const char *mask = getenv("QUIVER_DISABLE_ISA");
		bits = 1;
		if (qv_hand_isa() == QV_ISA_AVX512 && __builtin_cpu_supports("avx512bf16") &&
		    !listed(mask, "avx512_bf16"))
			bits |= 1 << QV_PREC_BF16;
		if (qv_hand_isa() == QV_ISA_AVX512 && __builtin_cpu_supports("avx512vnni") &&
		    __builtin_cpu_supports("avx512bw") && !listed(mask, "avx512_vnni"))
			bits |= 1 << QV_PREC_INT8;
		atomic_store_explicit(&cached, bits, memory_order_relaxed);
	}
	return (unsigned)p < QV_PREC_COUNT && (bits >> p) & 1;
}

static uint32_t bf16_bits(float v)
{
	uint32_t u;
	memcpy(&u, &v, sizeof(u));
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (u >> 16) | 0x40u;  /* NaN: quiet, as the instruction */
	if ((u & 0x7f800000u) == 0)
		return (u >> 16) & 0x8000u; /* denormals read as zero (DAZ) */
	u += 0x7fffu + ((u >> 16) & 1u);
	return u >> 16;
}

/* q = rne(v * inv), clamped to +-127 (ref_ops.c rounds alike, on its own). */
static inline int32_t quant8(float v, float inv)
{
	float q = nearbyintf(v * inv);
	return q > 127.0f ? 127 : q < -127.0f ? -127 : (int32_t)q;
}

/* ------------------------------------------------------------------ */
/* bf16                                                                */
/* ------------------------------------------------------------------ */

#define TGTBF __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define INLBF static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16")))

/*
 * Accumulator sets that split K, as dense_hand.c's ksplit (8 chains).
 * Measured on Zen 4 at batch 1: 16 chains are no faster (256x256 bf16
 * 826 vs 838 ns) - past L1 the stream is bound by L2 bandwidth, about
 * 36 bytes a cycle for every precision, which is why bytes decide speed.
 */
static inline int ksplit(int chains)
{
	int s = (8 + chains - 1) / chains;
	return s > 4 ? 4 : s;
}

INLBF void mkbf(const uint32_t *restrict w, uint32_t ldw, uint32_t kg, const uint32_t *restrict xq,
		uint32_t ldx, const float *restrict bias, float *restrict y, uint32_t ldy,
		uint32_t ncols, const struct qv_act_desc *act, const int R, const int V)
{
	const int S = ksplit(R * V);
	__m512 acc[4][8][4];

#pragma GCC unroll 8
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int v = 0; v < V; v++) {
			acc[0][r][v] = _mm512_load_ps(bias + VEC * v);
#pragma GCC unroll 4
			for (int s = 1; s < S; s++)
				acc[s][r][v] = _mm512_setzero_ps();
		}

	uint32_t g = 0;
	for (; g + (uint32_t)S <= kg; g += (uint32_t)S) {
#pragma GCC unroll 4
		for (int s = 0; s < S; s++) {
			const uint32_t *wk = w + (size_t)(g + s) * ldw;
#pragma GCC unroll 8
			for (int r = 0; r < R; r++) {
				__m512i xb = _mm512_set1_epi32((int)xq[(size_t)r * ldx + g + s]);
#pragma GCC unroll 4
				for (int v = 0; v < V; v++)
					acc[s][r][v] = _mm512_dpbf16_ps(
						acc[s][r][v], (__m512bh)xb,
						(__m512bh)_mm512_load_si512(wk + VEC * v));
			}
		}
	}
	for (; g < kg; g++) {
		const uint32_t *wk = w + (size_t)g * ldw;
#pragma GCC unroll 8
		for (int r = 0; r < R; r++) {
			__m512i xb = _mm512_set1_epi32((int)xq[(size_t)r * ldx + g]);
#pragma GCC unroll 4
			for (int v = 0; v < V; v++)
				acc[0][r][v] = _mm512_dpbf16_ps(acc[0][r][v], (__m512bh)xb,
								(__m512bh)_mm512_load_si512(wk + VEC * v));
		}
	}

#pragma GCC unroll 8
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int v = 0; v < V; v++) {
			__m512 t = acc[0][r][v];
#pragma GCC unroll 4
			for (int s = 1; s < S; s++)
				t = _mm512_add_ps(t, acc[s][r][v]);
			act_store512(y + (size_t)r * ldy + VEC * v, t, act, VEC * (uint32_t)v, ncols);
		}
}

static TGTBF void mkbf_dispatch(const uint32_t *w, uint32_t ldw, uint32_t kg, const uint32_t *xq,
				uint32_t ldx, const float *bias, float *y, uint32_t ldy, uint32_t ncols,
				const struct qv_act_desc *act, uint32_t R, uint32_t V)
{
	switch (R * 8 + V) {
	case 1 * 8 + 1: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 1, 1); break;
	case 1 * 8 + 2: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 1, 2); break;
	case 1 * 8 + 3: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 1, 3); break;
	case 1 * 8 + 4: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 1, 4); break;
	case 2 * 8 + 1: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 2, 1); break;
	case 2 * 8 + 2: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 2, 2); break;
	case 2 * 8 + 3: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 2, 3); break;
	case 2 * 8 + 4: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 2, 4); break;
	case 3 * 8 + 1: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 3, 1); break;
	case 3 * 8 + 2: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 3, 2); break;
	case 3 * 8 + 3: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 3, 3); break;
	case 3 * 8 + 4: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 3, 4); break;
	case 4 * 8 + 1: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 4, 1); break;
	case 4 * 8 + 2: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 4, 2); break;
	case 4 * 8 + 3: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 4, 3); break;
	case 4 * 8 + 4: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 4, 4); break;
	case 5 * 8 + 1: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 5, 1); break;
	case 5 * 8 + 2: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 5, 2); break;
	case 6 * 8 + 1: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 6, 1); break;
	case 6 * 8 + 2: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 6, 2); break;
	case 7 * 8 + 1: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 7, 1); break;
	case 7 * 8 + 2: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 7, 2); break;
	case 8 * 8 + 1: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 8, 1); break;
	case 8 * 8 + 2: mkbf(w, ldw, kg, xq, ldx, bias, y, ldy, ncols, act, 8, 2); break;
	default: break;  /* unreachable: run_panels picks only the cases above */
	}
}

/* rows x K floats -> rows x ldx 32-bit pairs of bf16, zero-padded */
static TGTBF void cvt_rows_bf16(const float *x, uint32_t rows, uint32_t K, uint32_t ldx,
				uint32_t *xq)
{
	for (uint32_t r = 0; r < rows; r++) {
		const float *xr = x + (size_t)r * K;
		uint32_t *o = xq + (size_t)r * ldx;
		for (uint32_t k = 0; k < 2 * ldx; k += 32) {
			uint32_t left = k < K ? K - k : 0;
			__mmask16 m0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1u);
			uint32_t l1 = left > 16 ? left - 16 : 0;
			__mmask16 m1 = l1 >= 16 ? 0xffff : (__mmask16)((1u << l1) - 1u);
			__m512 lo = _mm512_maskz_loadu_ps(m0, xr + k);
			__m512 hi = _mm512_maskz_loadu_ps(m1, xr + k + 16);
			_mm512_store_si512(o + k / 2, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
		}
	}
}

static TGTBF void run_bf16(const struct qv_hand_dense *d, const float *x, uint32_t rows, float *y)
{
	const uint32_t K = d->K, N = d->N, kg = d->kg;
	const uint32_t ldx = (kg + 15u) & ~15u;
	const uint32_t npanel = (d->nv + PANEL_VECS - 1) / PANEL_VECS;
	uint32_t xq[ROWS_MAX * (QV_LOWP_MAX_K / 2)] __attribute__((aligned(64)));
	const uint32_t *w = (const uint32_t *)(const void *)d->w;

	for (uint32_t r0 = 0; r0 < rows;) {
		uint32_t R = rows - r0 < ROWS_MAX ? rows - r0 : ROWS_MAX;
		uint32_t vmax = R <= 4 ? 4 : 2;
		cvt_rows_bf16(x + (size_t)r0 * K, R, K, ldx, xq);
		for (uint32_t p = 0; p < npanel; p++) {
			const uint32_t *wp = w + (size_t)kg * PANEL * p;
			uint32_t left = d->nv - p * PANEL_VECS;
			const uint32_t pv = left < PANEL_VECS ? left : PANEL_VECS;
			for (uint32_t j = 0; j < pv; j += vmax) {
				uint32_t V = pv - j < vmax ? pv - j : vmax;
				uint32_t c0 = p * PANEL + j * VEC;
				uint32_t ncols = N - c0 < V * VEC ? N - c0 : V * VEC;
				mkbf_dispatch(wp + j * VEC, pv * VEC, kg, xq, ldx, d->bias + c0,
					      y + (size_t)r0 * N + c0, N, ncols, &d->act, R, V);
			}
		}
		r0 += R;
	}
}

/* ------------------------------------------------------------------ */
/* int8                                                                */
/* ------------------------------------------------------------------ */

#define TGTI8 __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define INLI8 static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vnni")))

/* sx: the rows' activation scales; comp, wscale, bias: this sub-block's. */
INLI8 void mki8(const uint32_t *restrict w, uint32_t ldw, uint32_t kg, const uint32_t *restrict xq,
		uint32_t ldx, const float *restrict sx, const int32_t *restrict comp,
		const float *restrict wscale, const float *restrict bias, float *restrict y,
		uint32_t ldy, uint32_t ncols, const struct qv_act_desc *act, const int R, const int V)
{
	const int S = ksplit(R * V);
	__m512i acc[4][8][4];

#pragma GCC unroll 4
	for (int s = 0; s < S; s++)
#pragma GCC unroll 8
		for (int r = 0; r < R; r++)
#pragma GCC unroll 4
			for (int v = 0; v < V; v++)
				acc[s][r][v] = _mm512_setzero_si512();

	uint32_t g = 0;
	for (; g + (uint32_t)S <= kg; g += (uint32_t)S) {
#pragma GCC unroll 4
		for (int s = 0; s < S; s++) {
			const uint32_t *wk = w + (size_t)(g + s) * ldw;
#pragma GCC unroll 8
			for (int r = 0; r < R; r++) {
				__m512i xb = _mm512_set1_epi32((int)xq[(size_t)r * ldx + g + s]);
#pragma GCC unroll 4
				for (int v = 0; v < V; v++)
					acc[s][r][v] = _mm512_dpbusd_epi32(acc[s][r][v], xb,
									   _mm512_load_si512(wk + VEC * v));
			}
		}
	}
	for (; g < kg; g++) {
		const uint32_t *wk = w + (size_t)g * ldw;
#pragma GCC unroll 8
		for (int r = 0; r < R; r++) {
			__m512i xb = _mm512_set1_epi32((int)xq[(size_t)r * ldx + g]);
#pragma GCC unroll 4
			for (int v = 0; v < V; v++)
				acc[0][r][v] = _mm512_dpbusd_epi32(acc[0][r][v], xb,
								   _mm512_load_si512(wk + VEC * v));
		}
	}

#pragma GCC unroll 8
	for (int r = 0; r < R; r++) {
		__m512 sr = _mm512_set1_ps(sx[r]);
#pragma GCC unroll 4
		for (int v = 0; v < V; v++) {
			__m512i t = acc[0][r][v];
#pragma GCC unroll 4
			for (int s = 1; s < S; s++)
				t = _mm512_add_epi32(t, acc[s][r][v]);
			t = _mm512_sub_epi32(t, _mm512_load_si512(comp + VEC * v));
			/* the scale product rounds once, as the reference's sx * sw[n] */
			__m512 sc = _mm512_mul_ps(sr, _mm512_load_ps(wscale + VEC * v));
			__m512 f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), sc,
						   _mm512_load_ps(bias + VEC * v));
			act_store512(y + (size_t)r * ldy + VEC * v, f, act, VEC * (uint32_t)v, ncols);
		}
	}
}

static TGTI8 void mki8_dispatch(const uint32_t *w, uint32_t ldw, uint32_t kg, const uint32_t *xq,
				uint32_t ldx, const float *sx, const int32_t *comp,
				const float *wscale, const float *bias, float *y, uint32_t ldy,
				uint32_t ncols, const struct qv_act_desc *act, uint32_t R, uint32_t V)
{
	switch (R * 8 + V) {
	case 1 * 8 + 1: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 1, 1); break;
	case 1 * 8 + 2: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 1, 2); break;
	case 1 * 8 + 3: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 1, 3); break;
	case 1 * 8 + 4: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 1, 4); break;
	case 2 * 8 + 1: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 2, 1); break;
	case 2 * 8 + 2: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 2, 2); break;
	case 2 * 8 + 3: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 2, 3); break;
	case 2 * 8 + 4: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 2, 4); break;
	case 3 * 8 + 1: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 3, 1); break;
	case 3 * 8 + 2: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 3, 2); break;
	case 3 * 8 + 3: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 3, 3); break;
	case 3 * 8 + 4: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 3, 4); break;
	case 4 * 8 + 1: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 4, 1); break;
	case 4 * 8 + 2: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 4, 2); break;
	case 4 * 8 + 3: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 4, 3); break;
	case 4 * 8 + 4: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 4, 4); break;
	case 5 * 8 + 1: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 5, 1); break;
	case 5 * 8 + 2: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 5, 2); break;
	case 6 * 8 + 1: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 6, 1); break;
	case 6 * 8 + 2: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 6, 2); break;
	case 7 * 8 + 1: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 7, 1); break;
	case 7 * 8 + 2: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 7, 2); break;
	case 8 * 8 + 1: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 8, 1); break;
	case 8 * 8 + 2: mki8(w, ldw, kg, xq, ldx, sx, comp, wscale, bias, y, ldy, ncols, act, 8, 2); break;
	default: break;  /* unreachable: run_int8 picks only the cases above */
	}
}

/*
 * rows x K floats -> rows x ldx quads of u8 (q + 128) and a scale a row.
 * absmax 0: the row's own max |x|. A zero row gets scale 0 (its products
 * vanish, the output is the bias).
 */
static TGTI8 void quant_rows_int8(const float *x, uint32_t rows, uint32_t K, uint32_t ldx,
				  float absmax, uint32_t *xq, float *sx)
{
	for (uint32_t r = 0; r < rows; r++) {
		const float *xr = x + (size_t)r * K;
		float m = absmax;
		if (m <= 0.0f) {
			__m512 mv = _mm512_setzero_ps();
			for (uint32_t k = 0; k < K; k += 16) {
				uint32_t left = K - k;
				__mmask16 mk = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1u);
				mv = _mm512_max_ps(mv, _mm512_abs_ps(_mm512_maskz_loadu_ps(mk, xr + k)));
			}
			m = _mm512_reduce_max_ps(mv);
		}
		float inv = m > 0.0f ? 127.0f / m : 0.0f;
		sx[r] = m > 0.0f ? m / 127.0f : 0.0f;
		const __m512 iv = _mm512_set1_ps(inv);
		uint8_t *o = (uint8_t *)(xq + (size_t)r * ldx);
		for (uint32_t k = 0; k < 4 * ldx; k += 16) {
			uint32_t left = k < K ? K - k : 0;
			__mmask16 mk = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1u);
			__m512 v = _mm512_maskz_loadu_ps(mk, xr + k);
			/* rounds to nearest even under the default MXCSR, as nearbyintf */
			__m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(v, iv));
			q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(-127)),
					     _mm512_set1_epi32(127));
			q = _mm512_add_epi32(q, _mm512_set1_epi32(128));
			_mm_store_si128((__m128i *)(void *)(o + k), _mm512_cvtepi32_epi8(q));
		}
	}
}

static TGTI8 void run_int8(const struct qv_hand_dense *d, const float *x, uint32_t rows, float *y)
{
	const uint32_t K = d->K, N = d->N, kg = d->kg;
	const uint32_t ldx = (kg + 3u) & ~3u;  /* 16-byte rows */
	const uint32_t npanel = (d->nv + PANEL_VECS - 1) / PANEL_VECS;
	uint32_t xq[ROWS_MAX * (QV_LOWP_MAX_K / 4)] __attribute__((aligned(64)));
	float sx[ROWS_MAX];
	const uint32_t *w = (const uint32_t *)(const void *)d->w;

	for (uint32_t r0 = 0; r0 < rows;) {
		uint32_t R = rows - r0 < ROWS_MAX ? rows - r0 : ROWS_MAX;
		uint32_t vmax = R <= 4 ? 4 : 2;
		quant_rows_int8(x + (size_t)r0 * K, R, K, ldx, d->x_absmax, xq, sx);
		for (uint32_t p = 0; p < npanel; p++) {
			const uint32_t *wp = w + (size_t)kg * PANEL * p;
			uint32_t left = d->nv - p * PANEL_VECS;
			const uint32_t pv = left < PANEL_VECS ? left : PANEL_VECS;
			for (uint32_t j = 0; j < pv; j += vmax) {
				uint32_t V = pv - j < vmax ? pv - j : vmax;
				uint32_t c0 = p * PANEL + j * VEC;
				uint32_t ncols = N - c0 < V * VEC ? N - c0 : V * VEC;
				mki8_dispatch(wp + j * VEC, pv * VEC, kg, xq, ldx, sx, d->comp + c0,
					      d->wscale + c0, d->bias + c0, y + (size_t)r0 * N + c0, N,
					      ncols, &d->act, R, V);
			}
		}
		r0 += R;
	}
}

/* ------------------------------------------------------------------ */
/* create                                                              */
/* ------------------------------------------------------------------ */

static void *alloc64(size_t bytes)
{
	bytes = (bytes + 63) & ~(size_t)63;
	void *p = aligned_alloc(64, bytes ? bytes : 64);
	if (p)
		memset(p, 0, bytes ? bytes : 64);
	return p;
}

/* Column n's int8 scale: max |W[k][n]| / 127 (1 for an all-zero column,
 * whose q are all 0 anyway); inv is what the weights are multiplied by. */
static void col_scale(const float *W, uint32_t K, uint32_t N, uint32_t n, float *ret_scale,
		      float *ret_inv)
{
	float m = 0.0f;
	for (uint32_t k = 0; k < K; k++) {
		float a = fabsf(W[(size_t)k * N + n]);
		if (a > m)
			m = a;
	}
	*ret_scale = m > 0.0f ? m / 127.0f : 1.0f;
	*ret_inv = m > 0.0f ? 127.0f / m : 0.0f;
}

int qv_hand_dense_create_lowp(const float *W, uint32_t K, uint32_t N, const float *b,
			      struct qv_act_desc act, enum qv_prec prec, float x_absmax,
			      struct qv_hand_dense **ret)
{
	if (!W || !ret || K == 0 || N == 0 || (unsigned)act.kind > QV_ACT_CLIP ||
	    (prec != QV_PREC_BF16 && prec != QV_PREC_INT8) || !(x_absmax >= 0.0f) ||
	    isinf(x_absmax))
		return -EINVAL;
	if (!qv_prec_supported(prec) || N <= NARROW_MAX)
		return -ENOTSUP;
	if (K > QV_LOWP_MAX_K || N > (1u << 20))
		return -E2BIG;
	for (size_t i = 0; i < (size_t)K * N; i++)
		if (!isfinite(W[i]))
			return -EINVAL;  /* a scale of a non-finite column means nothing */

	struct qv_hand_dense *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	const uint32_t per = prec == QV_PREC_BF16 ? 2u : 4u;
	d->K = K;
	d->N = N;
	d->nv = (N + VEC - 1) / VEC;
	d->act = act;
	d->prec = prec;
	d->kg = (K + per - 1) / per;
	d->x_absmax = prec == QV_PREC_INT8 ? x_absmax : 0.0f;
	d->run = prec == QV_PREC_BF16 ? run_bf16 : run_int8;
	const size_t lanes = (size_t)d->nv * VEC;
	d->w = alloc64((size_t)d->kg * lanes * sizeof(uint32_t));
	d->bias = alloc64(lanes * sizeof(float));
	if (prec == QV_PREC_INT8) {
		d->wscale = alloc64(lanes * sizeof(float));
		d->comp = alloc64(lanes * sizeof(int32_t));
	}
	if (!d->w || !d->bias || (prec == QV_PREC_INT8 && (!d->wscale || !d->comp))) {
		qv_hand_dense_free(d);
		return -ENOMEM;
	}
	for (uint32_t c = 0; c < N; c++)
		d->bias[c] = b ? b[c] : 0.0f;

	uint32_t *w = (uint32_t *)(void *)d->w;
	for (uint32_t c = 0; c < N; c++) {
		const uint32_t p = c / PANEL, j = c % PANEL;
		uint32_t left = d->nv - p * PANEL_VECS;
		const uint32_t width = (left < PANEL_VECS ? left : PANEL_VECS) * VEC;
		uint32_t *pw = w + (size_t)d->kg * PANEL * p;
		float inv = 0.0f;
		int32_t qsum = 0;
		if (prec == QV_PREC_INT8)
			col_scale(W, K, N, c, &d->wscale[c], &inv);
		for (uint32_t g = 0; g < d->kg; g++) {
			uint32_t word = 0;
			for (uint32_t i = 0; i < per; i++) {
				uint32_t k = g * per + i;
				if (k >= K)
					break;
				float v = W[(size_t)k * N + c];
				if (prec == QV_PREC_BF16) {
					word |= bf16_bits(v) << (16 * i);
				} else {
					int32_t q = quant8(v, inv);
					qsum += q;
					word |= ((uint32_t)q & 0xffu) << (8 * i);
				}
			}
			pw[(size_t)g * width + j] = word;
		}
		if (prec == QV_PREC_INT8)
			d->comp[c] = 128 * qsum;
	}
	*ret = d;
	return 0;
}
