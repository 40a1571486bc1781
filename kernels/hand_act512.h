/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hand_act512.h - AVX-512 activations shared by the fp32 (dense_hand.c)
 * and reduced-precision (dense_lowp.c) hand kernels, so both apply the very
 * same epilogue. Internal to kernels/.
 *
 * sigmoid and tanh are vectorized: exp() is the Cephes single-precision
 * polynomial (about 2 ulp) and tanh uses Cephes' odd polynomial below
 * |x| = 0.625, where 1 - 2/(e^2x + 1) would cancel.
 */
#ifndef QV_HAND_ACT512_H
#define QV_HAND_ACT512_H

#include <immintrin.h>

#include "qv_ops.h"

#define TGT512 __attribute__((target("avx512f")))
#define INL512 static inline __attribute__((always_inline, target("avx512f")))

/* Cephes expf: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial. */
INL512 __m512 exp512(__m512 x)
{
	x = _mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f));
	x = _mm512_max_ps(x, _mm512_set1_ps(-87.3365447505531f));
	__m512 fx = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f));
	fx = _mm512_roundscale_ps(fx, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
	/* ln2 split in two so n * ln2_hi is exact. */
	x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
	x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
	__m512 z = _mm512_mul_ps(x, x);
	__m512 p = _mm512_set1_ps(1.9875691500e-4f);
	p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(1.3981999507e-3f));
	p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(8.3334519073e-3f));
	p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(4.1665795894e-2f));
	p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(1.6666665459e-1f));
	p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(5.0000001201e-1f));
	p = _mm512_fmadd_ps(p, z, x);
	p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
	/* 2^n by building the exponent field; the clamp keeps n in [-126, 127]. */
	__m512i n = _mm512_cvtps_epi32(fx);
	n = _mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23);
	return _mm512_mul_ps(p, _mm512_castsi512_ps(n));
}

INL512 __m512 sigmoid512(__m512 x)
{
	__m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
	return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

INL512 __m512 tanh512(__m512 x)
{
	const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
	__m512i xi = _mm512_castps_si512(x);
	__m512 a = _mm512_castsi512_ps(_mm512_andnot_si512(sign, xi));
	/* |x| >= 0.625: 1 - 2 / (e^2|x| + 1), sign restored. */
	__m512 e = exp512(_mm512_add_ps(a, a));
	__m512 big = _mm512_sub_ps(_mm512_set1_ps(1.0f),
				   _mm512_div_ps(_mm512_set1_ps(2.0f),
						 _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
	big = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(big),
						  _mm512_and_si512(xi, sign)));
	/* |x| < 0.625: x + x^3 P(x^2), no cancellation. */
	__m512 s = _mm512_mul_ps(x, x);
	__m512 p = _mm512_set1_ps(-5.70498872745e-3f);
	p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(2.06390887954e-2f));
	p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-5.37397155531e-2f));
	p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.33314422036e-1f));
	p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-3.33332819422e-1f));
	__m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, s), x, x);
	__mmask16 m = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
	return _mm512_mask_blend_ps(m, big, small);
}

INL512 __m512 act512(__m512 v, const struct qv_act_desc *a)
{
	switch (a->kind) {
	case QV_ACT_NONE:
		return v;
	case QV_ACT_RELU:
		/* max returns its second operand for NaN: 0, as the reference. */
		return _mm512_max_ps(v, _mm512_setzero_ps());
	case QV_ACT_LEAKY_RELU: {
		__mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
		return _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(a->alpha));
	}
	case QV_ACT_SIGMOID:
		return sigmoid512(v);
	case QV_ACT_TANH:
		return tanh512(v);
	case QV_ACT_CLIP:
		/* bound first, so a NaN input passes through as in the reference */
		v = _mm512_max_ps(_mm512_set1_ps(a->alpha), v);
		return _mm512_min_ps(_mm512_set1_ps(a->beta), v);
	}
	return v;
}

/*
 * Columns c..c+15 of one output row of a tile: the activation, then a
 * store of the columns below ncols (masked at the right edge). The
 * epilogue of every AVX-512 dense micro-kernel (fp32, bf16, int8).
 */
INL512 void act_store512(float *out, __m512 t, const struct qv_act_desc *act, uint32_t c,
			 uint32_t ncols)
{
	t = act512(t, act);
	if (c + 16 <= ncols)
		_mm512_storeu_ps(out, t);
	else if (c < ncols)
		_mm512_mask_storeu_ps(out, (__mmask16)((1u << (ncols - c)) - 1u), t);
}

#endif /* QV_HAND_ACT512_H */
