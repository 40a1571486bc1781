/* SPDX-License-Identifier: Apache-2.0 */
/*
 * harness_lowp.c - the bf16 and int8 dense kernels (hand-written, and
 * oneDNN's bf16 matmul) against plain C references that round exactly as
 * the kernels do (ref_ops.c): every batch bucket 1..256 and odd counts
 * between, odd widths around the 16-lane vector and 64-lane panel, every
 * activation, with and without bias.
 *
 *   op-harness-lowp            check; exit 1 on any failure, 77 when the
 *                              CPU has neither AVX512_BF16 nor AVX512_VNNI
 *   op-harness-lowp --masked   run with QUIVER_DISABLE_ISA set: checks the
 *                              kernels refuse (-ENOTSUP), so plans fall back
 *   op-harness-lowp --bench    times fp32 / bf16 / int8 (per-row and static
 *                              activation scales) and int8's errors
 *
 * Tolerances. int8: the integer sums are exact and the rescale is the same
 * single fma in kernel and reference, so outputs agree to the activation's
 * approximation (sigmoid/tanh: 1.5e-7 relative): |d| <= 1e-6 (|ref| + 1e-3).
 * bf16: kernel and reference multiply the same bf16 values, but the kernel
 * sums in fp32 (reference: double), in a different order: bounded as in
 * harness.c relative to m = |b| + sum |x w|, rtol 2e-5. Not rounding x or
 * W to bf16 at all moves an output by about 2^-9 m / sqrt(K), which the
 * known-answer check below catches exactly.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qv_model.h"
#include "qv_ops.h"

static uint64_t rng = 0x243f6a8885a308d3ull;
static unsigned n_checks, n_fail;

static double unit(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

static void fill(float *v, size_t n, float scale)
{
	for (size_t i = 0; i < n; i++)
		v[i] = (float)((unit() * 2.0 - 1.0) * scale);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return p;
}

static void expect(int ok, const char *what)
{
	n_checks++;
	if (!ok) {
		n_fail++;
		printf("FAIL %s\n", what);
	}
}

struct shape {
	uint32_t K, N;
};

static const struct shape shapes[] = {
	{ 32, 256 }, { 256, 256 }, { 256, 512 }, { 512, 256 }, { 1, 17 },  { 3, 15 },
	{ 17, 31 },  { 5, 100 },   { 7, 65 },    { 33, 129 },  { 2, 200 }, { 130, 17 },
	{ 16, 5 },   { 9, 48 },    { 63, 64 },   { 4096, 20 },
};
static const uint32_t batches[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 32, 64, 128, 256 };
static const struct qv_act_desc acts[] = {
	{ QV_ACT_NONE, 0, 0 },    { QV_ACT_RELU, 0, 0 }, { QV_ACT_LEAKY_RELU, 0.1f, 0 },
	{ QV_ACT_SIGMOID, 0, 0 }, { QV_ACT_TANH, 0, 0 }, { QV_ACT_CLIP, -0.5f, 2.0f },
};
#define NS (sizeof(shapes) / sizeof(shapes[0]))
#define NB (sizeof(batches) / sizeof(batches[0]))
#define NA (sizeof(acts) / sizeof(acts[0]))
#define MAXB 256u

/* m = |b| + sum |x_q w_q| per output (bf16-rounded magnitudes). */
static void magnitude(const float *x, uint32_t rows, uint32_t K, const float *W, uint32_t N,
		      const float *b, float *m)
{
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t n = 0; n < N; n++) {
			double s = b ? fabs(b[n]) : 0.0;
			for (uint32_t k = 0; k < K; k++)
				s += fabs((double)qv_bf16_round(x[(size_t)r * K + k]) *
					  qv_bf16_round(W[(size_t)k * N + n]));
			m[(size_t)r * N + n] = (float)s;
		}
}

static void compare(const char *impl, struct shape s, uint32_t rows, const char *act, int bias,
		    const float *got, const float *ref, const float *mag, int int8)
{
	size_t n = (size_t)rows * s.N, bad = 0, first = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - ref[i]);
		double tol = int8 ? 1e-6 * (fabs(ref[i]) + 1e-3) : 1e-6 + 2e-5 * fmax(fabs(ref[i]), mag[i]);
		if (!(d <= tol)) {
			if (!bad)
				first = i;
			bad++;
		}
	}
	n_checks++;
	if (bad) {
		n_fail++;
		printf("FAIL %-12s K=%u N=%u rows=%u act=%s bias=%d: %zu/%zu outside tol, first [%zu][%zu] got %.9g want %.9g\n",
		       impl, s.K, s.N, rows, act, bias, bad, n, first / s.N, first % s.N,
		       (double)got[first], (double)ref[first]);
	}
}

static const char *act_name(enum qv_act a)
{
	static const char *const nm[] = { "none", "relu", "leaky", "sigmoid", "tanh", "clip" };
	return nm[a];
}

static void check_shape(struct shape s, int do_bf16, int do_int8, int do_dnnl)
{
	const uint32_t K = s.K, N = s.N;
	float *W = xmalloc((size_t)K * N * 4), *b = xmalloc((size_t)N * 4);
	float *x = xmalloc((size_t)MAXB * K * 4 + 4);
	float *y = xmalloc((size_t)MAXB * N * 4 + 64), *ref = xmalloc((size_t)MAXB * N * 4);
	float *mag = xmalloc((size_t)MAXB * N * 4);
	float *xin = x + 1; /* misaligned by one float */
	fill(W, (size_t)K * N, 1.0f);
	fill(b, N, 0.5f);
	fill(xin, (size_t)MAXB * K, 1.0f);
	/* a zero row: int8 scale 0, the output is the bias */
	memset(xin + (size_t)2 * K, 0, (size_t)K * 4);
	uint32_t maxb = K >= 1024 ? 16 : MAXB;  /* the slow reference at K = 4096 */

	for (size_t ai = 0; ai < NA; ai++) {
		struct qv_act_desc act = acts[ai];
		/* bias on for even activations, off for odd: both paths every shape */
		const float *bp = ai % 2 ? NULL : b;
		for (int prec = QV_PREC_BF16; prec <= QV_PREC_INT8; prec++) {
			if ((prec == QV_PREC_BF16 && !do_bf16) || (prec == QV_PREC_INT8 && !do_int8))
				continue;
			/* int8: per-row scales, then a static max that clamps part of x */
			for (int stat = 0; stat < (prec == QV_PREC_INT8 ? 2 : 1); stat++) {
				float xmax = stat ? 0.5f : 0.0f;
				struct qv_hand_dense *h = NULL;
				int rc = qv_hand_dense_create_lowp(W, K, N, bp, act, (enum qv_prec)prec,
								   xmax, &h);
				if (rc < 0) {
					char m[128];
					snprintf(m, sizeof(m), "create %s K=%u N=%u: %d",
						 qv_prec_name((enum qv_prec)prec), K, N, rc);
					expect(0, m);
					continue;
				}
				if (prec == QV_PREC_BF16)
					qv_ref_dense_bf16(xin, maxb, K, W, N, bp, act, ref);
				else
					qv_ref_dense_int8(xin, maxb, K, W, N, bp, act, xmax, ref);
				if (prec == QV_PREC_BF16)
					magnitude(xin, maxb, K, W, N, bp, mag);
				for (size_t bi = 0; bi < NB && batches[bi] <= maxb; bi++) {
					uint32_t rows = batches[bi];
					/* canaries after the output */
					for (uint32_t i = 0; i < 16; i++)
						y[(size_t)rows * N + i] = 1234.5f;
					qv_hand_dense_run(h, xin, rows, y);
					compare(prec == QV_PREC_BF16 ? "hand-bf16" : stat ? "hand-int8-st" : "hand-int8",
						s, rows, act_name(act.kind), bp != NULL, y, ref, mag,
						prec == QV_PREC_INT8);
					int guard = 1;
					for (uint32_t i = 0; i < 16; i++)
						guard &= y[(size_t)rows * N + i] == 1234.5f;
					expect(guard, "kernel wrote past its output");
				}
				qv_hand_dense_free(h);
			}
		}
		if (do_dnnl && ai < 2) {
			struct qv_dnnl_dense *d = NULL;
			struct qv_dnnl_dense_ctx *c = NULL;
			int rc = qv_dnnl_dense_create_bf16(W, K, N, bp, act, maxb, &d);
			if (rc == -ENOTSUP) {
				printf("SKIP onednn-bf16: not available here\n");
				continue;
			}
			expect(rc == 0 && qv_dnnl_dense_ctx_create(d, &c) == 0, "onednn bf16 create");
			if (rc == 0 && c) {
				qv_ref_dense_bf16(xin, maxb, K, W, N, bp, act, ref);
				magnitude(xin, maxb, K, W, N, bp, mag);
				for (size_t bi = 0; bi < NB && batches[bi] <= maxb; bi++) {
					uint32_t rows = batches[bi];
					expect(qv_dnnl_dense_run(d, c, xin, rows, y) == 0, "onednn bf16 run");
					compare("onednn-bf16", s, rows, act_name(act.kind), bp != NULL, y, ref,
						mag, 0);
				}
			}
			qv_dnnl_dense_ctx_free(c);
			qv_dnnl_dense_free(d);
		}
	}
	free(W), free(b), free(x), free(y), free(ref), free(mag);
}

/* Known answers: a kernel that skipped the rounding would get these wrong. */
static void check_rounding(int do_bf16, int do_int8)
{
	enum { K = 64, N = 16 };
	float W[K * N], x[K], y[N];
	struct qv_act_desc none = { QV_ACT_NONE, 0, 0 };
	/* 1 + 2^-9 is a tie between bf16 1 and 1 + 2^-7: to even, 1 */
	for (int i = 0; i < K * N; i++)
		W[i] = 1.0f + 1.0f / 512.0f;
	for (int i = 0; i < K; i++)
		x[i] = 1.0f + 3.0f / 512.0f;  /* rounds up to 1 + 2^-7 */
	struct qv_hand_dense *h = NULL;
	if (do_bf16 && qv_hand_dense_create_lowp(W, K, N, NULL, none, QV_PREC_BF16, 0, &h) == 0) {
		qv_hand_dense_run(h, x, 1, y);
		int ok = 1;
		for (int n = 0; n < N; n++)
			ok &= y[n] == (float)K * (1.0f + 1.0f / 128.0f);
		expect(ok, "bf16 known answer: x and W rounded to nearest even");
		qv_hand_dense_free(h);
	}
	/* int8: column n holds 127 * n / 15 ... exactly representable steps */
	for (int k = 0; k < K; k++)
		for (int n = 0; n < N; n++)
			W[k * N + n] = (float)((k % 3) - 1) * (float)(n + 1);
	for (int k = 0; k < K; k++)
		x[k] = (float)(k % 5) - 2.0f;  /* max |x| = 2: q = rne(x * 63.5) */
	if (do_int8 && qv_hand_dense_create_lowp(W, K, N, NULL, none, QV_PREC_INT8, 0, &h) == 0) {
		qv_hand_dense_run(h, x, 1, y);
		int ok = 1;
		for (int n = 0; n < N; n++) {
			/* W column = (n+1) * {-1,0,1}: q = 127 * {-1,0,1}, scale (n+1)/127;
			 * x in {-2..2}: q = {-127,-64,0,64,127} (63.5 rounds to even 64) */
			static const int qx[5] = { -127, -64, 0, 64, 127 };
			long s = 0;
			for (int k = 0; k < K; k++)
				s += (long)qx[k % 5] * 127 * ((k % 3) - 1);
			float want = fmaf((float)s, (2.0f / 127.0f) * ((float)(n + 1) / 127.0f), 0.0f);
			ok &= y[n] == want;
		}
		expect(ok, "int8 known answer: per-column and per-row scales");
		qv_hand_dense_free(h);
	}
}

static void check_errors(void)
{
	float W[8 * 8] = { 0 };
	struct qv_act_desc none = { QV_ACT_NONE, 0, 0 };
	struct qv_hand_dense *h = (struct qv_hand_dense *)(uintptr_t)1;
	expect(qv_hand_dense_create_lowp(W, 8, 8, NULL, none, QV_PREC_FP32, 0, &h) == -EINVAL, "fp32 is not a reduced precision");
	expect(qv_hand_dense_create_lowp(NULL, 8, 8, NULL, none, QV_PREC_BF16, 0, &h) == -EINVAL, "NULL W");
	expect(qv_hand_dense_create_lowp(W, 0, 8, NULL, none, QV_PREC_BF16, 0, &h) == -EINVAL, "K 0");
	expect(qv_hand_dense_create_lowp(W, 8, 8, NULL, none, QV_PREC_INT8, -1.0f, &h) == -EINVAL, "negative static max");
	expect(qv_hand_dense_create_lowp(W, 8, 8, NULL, none, QV_PREC_INT8, NAN, &h) == -EINVAL, "NaN static max");
	expect(qv_hand_dense_create_lowp(W, 8, 4, NULL, none, QV_PREC_BF16, 0, &h) == -ENOTSUP, "N <= 4 stays fp32");
	W[5] = INFINITY;
	expect(qv_hand_dense_create_lowp(W, 8, 8, NULL, none, QV_PREC_INT8, 0, &h) == -EINVAL, "non-finite weight");
	float *big = calloc((size_t)(QV_LOWP_MAX_K + 1) * 8, sizeof(float));
	expect(big && qv_hand_dense_create_lowp(big, QV_LOWP_MAX_K + 1, 8, NULL, none, QV_PREC_BF16, 0, &h) == -E2BIG, "K over the limit");
	free(big);
	expect(h == (struct qv_hand_dense *)(uintptr_t)1, "ret untouched on failure");
	expect(strcmp(qv_prec_name(QV_PREC_BF16), "bf16") == 0 && strcmp(qv_prec_name(QV_PREC_INT8), "int8") == 0, "names");
	/* reference rounding itself */
	expect(qv_bf16_round(1.0f + 1.0f / 256.0f) == 1.0f, "bf16 tie to even (down)");
	expect(qv_bf16_round(1.0f + 3.0f / 256.0f) == 1.0f + 1.0f / 64.0f, "bf16 tie to even (up)");
	expect(qv_bf16_round(1.0f + 1.0f / 200.0f) == 1.0f + 1.0f / 128.0f, "bf16 nearest");
	expect(isnan(qv_bf16_round(NAN)) && isinf(qv_bf16_round(INFINITY)), "bf16 NaN and inf");
}

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static double time_run(const struct qv_hand_dense *h, const float *x, uint32_t rows, float *y)
{
	double best = 1e30;
	for (int r = 0; r < 30; r++) {
		double t0 = now_ns();
		for (int i = 0; i < 200; i++)
			qv_hand_dense_run(h, x, rows, y);
		double dt = (now_ns() - t0) / 200;
		best = dt < best ? dt : best;
	}
	return best;
}

/* Gaussian rows (Box-Muller), times `scale`. */
static void fill_normal(float *v, size_t n, float scale)
{
	for (size_t i = 0; i < n; i++) {
		double u1 = unit() + 1e-12, u2 = unit();
		v[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2) * scale);
	}
}

/*
 * --bench: what decided int8's activation quantisation. Per shape, batch-1
 * and batch-8 time of fp32, bf16, int8 with per-row scales and int8 with a
 * static scale (calibrated as the max |x| of 256 other N(0,1) rows), and
 * the max |y - fp32| of both int8 variants on 256 N(0,1) rows and on 256
 * rows of twice the spread (traffic drifting from the calibration set).
 */
static int bench(void)
{
	static const struct shape bs[] = { { 32, 256 }, { 256, 256 }, { 256, 512 }, { 512, 256 } };
	struct qv_act_desc relu = { QV_ACT_RELU, 0, 0 };
	printf("%-9s %5s %9s %9s %9s %9s   %-22s %-22s\n", "shape", "rows", "fp32_ns", "bf16_ns",
	       "i8row_ns", "i8stat_ns", "err i8row (N / 2N)", "err i8stat (N / 2N)");
	for (size_t si = 0; si < sizeof(bs) / sizeof(bs[0]); si++) {
		uint32_t K = bs[si].K, N = bs[si].N, R = 256;
		float *W = xmalloc((size_t)K * N * 4), *b = xmalloc((size_t)N * 4);
		float *cal = xmalloc((size_t)R * K * 4), *x = xmalloc((size_t)R * K * 4);
		float *x2 = xmalloc((size_t)R * K * 4), *y = xmalloc((size_t)R * N * 4);
		float *ref = xmalloc((size_t)R * N * 4);
		fill_normal(W, (size_t)K * N, 1.0f / sqrtf((float)K));
		fill(b, N, 0.1f);
		fill_normal(cal, (size_t)R * K, 1.0f);
		fill_normal(x, (size_t)R * K, 1.0f);
		fill_normal(x2, (size_t)R * K, 2.0f);
		float cmax = 0;
		for (size_t i = 0; i < (size_t)R * K; i++)
			cmax = fabsf(cal[i]) > cmax ? fabsf(cal[i]) : cmax;
		struct qv_hand_dense *h[4] = { 0 };
		if (qv_hand_dense_create(W, K, N, b, relu, -1, &h[0]) < 0 ||
		    qv_hand_dense_create_lowp(W, K, N, b, relu, QV_PREC_BF16, 0, &h[1]) < 0 ||
		    qv_hand_dense_create_lowp(W, K, N, b, relu, QV_PREC_INT8, 0, &h[2]) < 0 ||
		    qv_hand_dense_create_lowp(W, K, N, b, relu, QV_PREC_INT8, cmax, &h[3]) < 0) {
			printf("create failed\n");
			return 1;
		}
		double err[2][2];
		for (int set = 0; set < 2; set++) {
			const float *xs = set ? x2 : x;
			qv_hand_dense_run(h[0], xs, R, ref);
			for (int v = 0; v < 2; v++) {
				qv_hand_dense_run(h[2 + v], xs, R, y);
				double e = 0;
				for (size_t i = 0; i < (size_t)R * N; i++)
					e = fmax(e, fabs((double)y[i] - ref[i]));
				err[v][set] = e;
			}
		}
		for (uint32_t rows = 1; rows <= 8; rows *= 8) {
			double t[4];
			for (int k = 0; k < 4; k++)
				t[k] = time_run(h[k], x, rows, y);
			char sh[16], e0[32], e1[32];
			snprintf(sh, sizeof(sh), "%ux%u", K, N);
			snprintf(e0, sizeof(e0), "%.2g / %.2g", err[0][0], err[0][1]);
			snprintf(e1, sizeof(e1), "%.2g / %.2g", err[1][0], err[1][1]);
			printf("%-9s %5u %9.0f %9.0f %9.0f %9.0f   %-22s %-22s\n", sh, rows, t[0], t[1],
			       t[2], t[3], e0, e1);
		}
		for (int k = 0; k < 4; k++)
			qv_hand_dense_free(h[k]);
		free(W), free(b), free(cal), free(x), free(x2), free(y), free(ref);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int masked = argc > 1 && strcmp(argv[1], "--masked") == 0;
	if (argc > 1 && strcmp(argv[1], "--bench") == 0)
		return qv_prec_supported(QV_PREC_INT8) && qv_prec_supported(QV_PREC_BF16) ? bench() : 77;
	if (masked) {
		float W[8 * 8] = { 0 };
		struct qv_act_desc none = { QV_ACT_NONE, 0, 0 };
		struct qv_hand_dense *h = NULL;
		expect(!qv_prec_supported(QV_PREC_BF16) && !qv_prec_supported(QV_PREC_INT8),
		       "QUIVER_DISABLE_ISA masks bf16 and int8");
		expect(qv_prec_supported(QV_PREC_FP32), "fp32 is always supported");
		expect(qv_hand_dense_create_lowp(W, 8, 8, NULL, none, QV_PREC_BF16, 0, &h) == -ENOTSUP,
		       "masked bf16 create refuses");
		expect(qv_hand_dense_create_lowp(W, 8, 8, NULL, none, QV_PREC_INT8, 0, &h) == -ENOTSUP,
		       "masked int8 create refuses");
		printf("%u checks, %u failed\n", n_checks, n_fail);
		return n_fail ? 1 : 0;
	}
	int bf = qv_prec_supported(QV_PREC_BF16), i8 = qv_prec_supported(QV_PREC_INT8);
	if (!bf && !i8) {
		printf("SKIP: no AVX512_BF16 or AVX512_VNNI here\n");
		return 77;
	}
	check_errors();
	check_rounding(bf, i8);
	for (size_t i = 0; i < NS; i++)
		check_shape(shapes[i], bf, i8, bf);
	printf("%u checks, %u failed (bf16 %s, int8 %s)\n", n_checks, n_fail, bf ? "on" : "off",
	       i8 ? "on" : "off");
	return n_fail ? 1 : 0;
}
