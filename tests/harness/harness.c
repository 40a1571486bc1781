/* SPDX-License-Identifier: Apache-2.0 */
/*
 * harness.c - the op harness: every optimized dense implementation against
 * the plain C reference, on random and edge-case shapes, plus known-answer
 * checks of the reference ops themselves.
 *
 *   op-harness [--seed N] [--verbose]   check; exit 1 on any failure
 *   op-harness --bench [--only CASE]    ns/call per shape and implementation
 *
 * Implementations checked: the hand-written kernel at every ISA this CPU
 * runs (scalar, AVX2, AVX-512) and the oneDNN dense step. While oneDNN's
 * step is not built (create returns -ENOSYS) it prints "SKIP onednn";
 * any other error from it is a failure.
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qv_model.h"
#include "qv_ops.h"

/* ------------------------------------------------------------------ */
/* tolerance                                                           */
/* ------------------------------------------------------------------ */

/*
 * Why rtol 1e-4 / atol 1e-5, and relative to what.
 *
 * The reference accumulates in double, the kernels in float, in a
 * different order. Float summation of K products has a worst-case error of
 * about K * 2^-24 * sum_k |x_k w_k| (K = 512: 3e-5 of that sum), typically
 * sqrt(K) times less. When the terms cancel, |y| is far smaller than that
 * sum, so a tolerance relative to |y| alone would fail correct kernels on
 * random data. We therefore bound the error relative to the magnitude
 * m = |b| + sum_k |x_k| |w_k| (computed by the reference on absolute
 * values), times the activation's Lipschitz constant (1, or |alpha| for a
 * steep leaky relu):   |got - ref| <= atol + rtol * max(|ref|, L m).
 * rtol 1e-4 is 3x the float worst case at K = 512, yet a single dropped or
 * doubled term (about m / K = 2e-3 m) is still 20x over it. atol 1e-5
 * covers outputs that saturate to zero (sigmoid of a large negative input,
 * exp underflow). sigmoid/tanh approximations are checked separately and
 * much tighter (check_transcendental: rel 1e-6).
 */
#define RTOL 1e-4
#define ATOL 1e-5

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
	/* splitmix64: deterministic, seedable, good enough for test data */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double rng_unit(void)  /* [0, 1) */
{
	return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0);
}

/* Mostly uniform [-1, 1); 10% exact zeros, 3% large (|v| up to 100). */
static void fill_random(float *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double u = rng_unit();
		if (u < 0.10)
			v[i] = 0.0f;
		else if (u < 0.13)
			v[i] = (float)((rng_unit() * 2.0 - 1.0) * 100.0);
		else
			v[i] = (float)(rng_unit() * 2.0 - 1.0);
	}
}

static void *xmalloc(size_t bytes)
{
	void *p = malloc(bytes ? bytes : 1);
	if (!p) {
		fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
		exit(2);
	}
	return p;
}

static const char *act_name(enum qv_act a)
{
	static const char *const names[] = { "none", "relu", "leaky", "sigmoid", "tanh", "clip" };
	return (unsigned)a <= QV_ACT_CLIP ? names[a] : "?";
}

static const char *isa_name(int isa)
{
	return isa == QV_ISA_AVX512 ? "avx512" : isa == QV_ISA_AVX2 ? "avx2" : "scalar";
}

static unsigned n_checks, n_fail;

static void expect(int ok, const char *what)
{
	n_checks++;
	if (!ok) {
		n_fail++;
		printf("FAIL %s\n", what);
	}
}

static int close_to(double got, double want, double tol)
{
	return fabs(got - want) <= tol;
}

/* ------------------------------------------------------------------ */
/* known answers for the reference ops                                 */
/* ------------------------------------------------------------------ */

static void check_vec(const char *what, const float *got, const double *want, size_t n,
		      double tol)
{
	int ok = 1;
	for (size_t i = 0; i < n; i++)
		if (!close_to(got[i], want[i], tol + tol * fabs(want[i])))
			ok = 0;
	if (!ok) {
		printf("  %s: got", what);
		for (size_t i = 0; i < n; i++)
			printf(" %.9g", (double)got[i]);
		printf(" want");
		for (size_t i = 0; i < n; i++)
			printf(" %.9g", want[i]);
		printf("\n");
	}
	expect(ok, what);
}

static void check_ref_softmax(void)
{
	/* e^0 : e^ln2 = 1 : 2 */
	float x[2] = { 0.0f, (float)M_LN2 }, y[2];
	qv_ref_softmax(x, 1, 2, y);
	check_vec("ref softmax [0, ln2]", y, (const double[]){ 1.0 / 3, 2.0 / 3 }, 2, 1e-6);

	/* two rows; large equal values must not overflow; ln 1, ln 2, ln 3 -> 1:2:3 */
	float x2[6] = { 1000.0f, 1000.0f, 1000.0f, 0.0f, (float)M_LN2, (float)log(3.0) }, y2[6];
	qv_ref_softmax(x2, 2, 3, y2);
	check_vec("ref softmax rows", y2,
		  (const double[]){ 1.0 / 3, 1.0 / 3, 1.0 / 3, 1.0 / 6, 2.0 / 6, 3.0 / 6 }, 6, 1e-6);
}

static void check_ref_binary(void)
{
	const float x[6] = { 1, 2, 3, 4, 5, 6 };
	const int64_t xs[2] = { 2, 3 };
	float y[6];
	int rc;

	/* [3] broadcast over [2,3] */
	const float c3[3] = { 10, 20, 30 };
	const int64_t s3[1] = { 3 };
	rc = qv_ref_binary(QV_BIN_ADD, x, xs, 2, c3, s3, 1, 0, y);
	expect(rc == 0, "ref binary add [3] rc");
	check_vec("ref binary x + c[3]", y, (const double[]){ 11, 22, 33, 14, 25, 36 }, 6, 0);

	/* c - x (c on the left) */
	rc = qv_ref_binary(QV_BIN_SUB, x, xs, 2, c3, s3, 1, 1, y);
	expect(rc == 0, "ref binary sub lhs rc");
	check_vec("ref binary c[3] - x", y, (const double[]){ 9, 18, 27, 6, 15, 24 }, 6, 0);

	/* [2,1] broadcast along the last axis */
	const float c21[2] = { 2, -1 };
	const int64_t s21[2] = { 2, 1 };
	rc = qv_ref_binary(QV_BIN_MUL, x, xs, 2, c21, s21, 2, 0, y);
	expect(rc == 0, "ref binary mul [2,1] rc");
	check_vec("ref binary x * c[2,1]", y, (const double[]){ 2, 4, 6, -4, -5, -6 }, 6, 0);

	/* scalar (rank 0), c / x */
	const float c0[1] = { 12 };
	rc = qv_ref_binary(QV_BIN_DIV, x, xs, 2, c0, NULL, 0, 1, y);
	expect(rc == 0, "ref binary div scalar rc");
	check_vec("ref binary 12 / x", y, (const double[]){ 12, 6, 4, 3, 2.4, 2 }, 6, 1e-7);

	/* x / c with c of rank 3 [1,1,3]: leading ones are allowed */
	const float c113[3] = { 1, 2, 4 };
	const int64_t s113[3] = { 1, 1, 3 };
	rc = qv_ref_binary(QV_BIN_DIV, x, xs, 2, c113, s113, 3, 0, y);
	expect(rc == 0, "ref binary div [1,1,3] rc");
	check_vec("ref binary x / c[1,1,3]", y, (const double[]){ 1, 1, 0.75, 4, 2.5, 1.5 }, 6, 0);

	/* same shape, elementwise */
	rc = qv_ref_binary(QV_BIN_SUB, x, xs, 2, x, xs, 2, 0, y);
	expect(rc == 0, "ref binary sub same rc");
	check_vec("ref binary x - x", y, (const double[]){ 0, 0, 0, 0, 0, 0 }, 6, 0);

	/* not broadcastable: [2] against [2,3], and [2,3] needing growth */
	const int64_t s2[1] = { 2 };
	expect(qv_ref_binary(QV_BIN_ADD, x, xs, 2, c3, s2, 1, 0, y) == -EINVAL,
	       "ref binary rejects [2] vs [2,3]");
	const int64_t s23x[3] = { 2, 2, 3 };
	expect(qv_ref_binary(QV_BIN_ADD, x, xs, 2, x, s23x, 3, 0, y) == -EINVAL,
	       "ref binary rejects [2,2,3] vs [2,3]");
}

static void check_ref_concat(void)
{
	const float a[4] = { 1, 2, 3, 4 };  /* [2,2] */
	const float b[2] = { 5, 6 };        /* [2,1] */
	const int64_t sa[2] = { 2, 2 }, sb[2] = { 2, 1 };
	const float *in[2] = { a, b };
	const int64_t *shapes[2] = { sa, sb };
	float y[6];
	qv_ref_concat(in, shapes, 2, 2, 1, y);
	check_vec("ref concat axis 1", y, (const double[]){ 1, 2, 5, 3, 4, 6 }, 6, 0);

	const int64_t sc[2] = { 1, 2 };
	const float c[2] = { 7, 8 };
	const float *in0[2] = { a, c };
	const int64_t *shapes0[2] = { sa, sc };
	qv_ref_concat(in0, shapes0, 2, 2, 0, y);
	check_vec("ref concat axis 0", y, (const double[]){ 1, 2, 3, 4, 7, 8 }, 6, 0);
}

static void check_ref_batchnorm(void)
{
	/* outer 1, C 2, inner 2; var + eps = 4, so the divisor is 2 */
	const float x[4] = { 1, 2, 3, 4 };
	const float scale[2] = { 2, 1 }, bias[2] = { 0, 1 }, mean[2] = { 1, 3 }, var[2] = { 3, 3 };
	float y[4];
	qv_ref_batchnorm(x, 1, 2, 2, scale, bias, mean, var, 1.0f, y);
	/* ch0: (x - 1) / 2 * 2 + 0; ch1: (x - 3) / 2 * 1 + 1 */
	check_vec("ref batchnorm", y, (const double[]){ 0, 1, 1, 1.5 }, 4, 1e-7);
}

static void check_ref_act_dense(void)
{
	const float x[4] = { -2.0f, 0.0f, (float)log(3.0), (float)M_LN2 };
	float y[4];
	qv_ref_act(x, 4, (struct qv_act_desc){ QV_ACT_RELU, 0, 0 }, y);
	check_vec("ref relu", y, (const double[]){ 0, 0, log(3.0), M_LN2 }, 4, 1e-7);
	qv_ref_act(x, 4, (struct qv_act_desc){ QV_ACT_LEAKY_RELU, 0.1f, 0 }, y);
	check_vec("ref leaky relu", y, (const double[]){ -0.2, 0, log(3.0), M_LN2 }, 4, 1e-7);
	/* sigmoid(ln 3) = 3/4; sigmoid(0) = 1/2 */
	qv_ref_act(x, 4, (struct qv_act_desc){ QV_ACT_SIGMOID, 0, 0 }, y);
	check_vec("ref sigmoid", y, (const double[]){ 1 / (1 + exp(2.0)), 0.5, 0.75, 2.0 / 3 }, 4,
		  1e-7);
	/* tanh(ln 2) = (4 - 1) / (4 + 1) */
	qv_ref_act(x, 4, (struct qv_act_desc){ QV_ACT_TANH, 0, 0 }, y);
	check_vec("ref tanh", y, (const double[]){ -tanh(2.0), 0, 0.8, 0.6 }, 4, 1e-7);
	qv_ref_act(x, 4, (struct qv_act_desc){ QV_ACT_CLIP, -1.0f, 1.0f }, y);
	check_vec("ref clip", y, (const double[]){ -1, 0, 1, M_LN2 }, 4, 1e-7);

	/* [1 2] [[1 2 3] [4 5 6]] + [0.5 0 -1] = [9.5 12 14] */
	const float dx[4] = { 1, 2, -1, 0 };
	const float W[6] = { 1, 2, 3, 4, 5, 6 };
	const float b[3] = { 0.5f, 0, -1 };
	float dy[6];
	qv_ref_dense(dx, 2, 2, W, 3, b, (struct qv_act_desc){ QV_ACT_NONE, 0, 0 }, dy);
	check_vec("ref dense", dy, (const double[]){ 9.5, 12, 14, -0.5, -2, -4 }, 6, 0);
	qv_ref_dense(dx, 2, 2, W, 3, NULL, (struct qv_act_desc){ QV_ACT_RELU, 0, 0 }, dy);
	check_vec("ref dense relu no bias", dy, (const double[]){ 9, 12, 15, 0, 0, 0 }, 6, 0);
}

/* ------------------------------------------------------------------ */
/* optimized dense vs reference                                        */
/* ------------------------------------------------------------------ */

struct impl {
	const char *name;
	int isa;  /* >= 0: hand kernel at that ISA; -1: oneDNN */
};

struct shape {
	uint32_t K, N;
};

static const struct qv_act_desc acts[] = {
	{ QV_ACT_NONE, 0, 0 },     { QV_ACT_RELU, 0, 0 },     { QV_ACT_LEAKY_RELU, 0.1f, 0 },
	{ QV_ACT_SIGMOID, 0, 0 },  { QV_ACT_TANH, 0, 0 },     { QV_ACT_CLIP, -0.5f, 2.0f },
	{ QV_ACT_LEAKY_RELU, 3.0f, 0 },
};
#define N_ACTS (sizeof(acts) / sizeof(acts[0]))

/* The MLP layers, then widths around the 16-float vector and 64-float panel,
 * 1-wide outputs and K = 1. */
static const struct shape shapes[] = {
	{ 32, 256 }, { 256, 256 }, { 256, 1 }, { 256, 512 }, { 512, 256 },
	{ 1, 1 },    { 1, 17 },    { 3, 15 },  { 17, 31 },   { 5, 100 },   { 100, 3 },
	{ 64, 64 },  { 7, 65 },    { 33, 129 }, { 2, 200 },  { 15, 16 },   { 31, 1 },
	{ 9, 48 },   { 1, 100 },   { 130, 17 }, { 40, 2 },   { 19, 4 },   { 16, 5 },
};
#define N_SHAPES (sizeof(shapes) / sizeof(shapes[0]))

static const uint32_t batches[] = { 1, 2, 3, 4, 5, 7, 8, 9, 13, 64, 256 };
#define N_BATCHES (sizeof(batches) / sizeof(batches[0]))
#define MAX_BATCH 256u

#define GUARD 32u            /* floats of canary after each output */
#define CANARY 12345.678f

static int verbose;

/* Output buffer misaligned by one float, with canaries after rows x N. */
struct outbuf {
	float *base, *y;
	size_t n;
};

static void outbuf_init(struct outbuf *o, size_t n)
{
	o->base = xmalloc((n + GUARD + 1) * sizeof(float));
	o->y = o->base + 1;
	o->n = n;
	for (size_t i = 0; i < n + GUARD + 1; i++)
		o->base[i] = CANARY;
}

/* Re-arms every canary and sets how many outputs the next run writes. */
static void outbuf_reset(struct outbuf *o, size_t cap, size_t n)
{
	for (size_t i = 0; i < cap + GUARD + 1; i++)
		o->base[i] = CANARY;
	o->n = n;
}

static int outbuf_guard_ok(const struct outbuf *o)
{
	if (o->base[0] != CANARY)
		return 0;
	for (size_t i = 0; i < GUARD; i++)
		if (o->y[o->n + i] != CANARY)
			return 0;
	return 1;
}

/* Compares one result; prints one line when it fails. */
static void compare(const char *impl, struct shape s, uint32_t rows, struct qv_act_desc act,
		    int has_bias, const float *got, const float *ref, const float *mag,
		    const struct outbuf *o)
{
	double lip = act.kind == QV_ACT_LEAKY_RELU && fabs(act.alpha) > 1.0 ? fabs(act.alpha) : 1.0;
	size_t n = (size_t)rows * s.N, bad = 0, first = 0;
	double worst = 0.0;
	for (size_t i = 0; i < n; i++) {
		double want = ref[i], scale = fmax(fabs(want), lip * mag[i]);
		double err = fabs((double)got[i] - want);
		/* NaN never compares as within tolerance */
		if (!(err <= ATOL + RTOL * scale)) {
			if (!bad)
				first = i;
			bad++;
			if (err > worst || isnan(err))
				worst = err;
		}
	}
	int guard = outbuf_guard_ok(o);
	n_checks++;
	if (bad || !guard) {
		n_fail++;
		printf("FAIL %-8s K=%-4u N=%-4u rows=%-3u act=%-7s bias=%d: ", impl, s.K, s.N, rows,
		       act_name(act.kind), has_bias);
		if (!guard)
			printf("wrote outside its output; ");
		if (bad)
			printf("%zu/%zu outside tol, first [%zu][%zu] got %.9g want %.9g (worst err %.3g)",
			       bad, n, first / s.N, first % s.N, (double)got[first], (double)ref[first],
			       worst);
		printf("\n");
	} else if (verbose) {
		printf("ok   %-8s K=%-4u N=%-4u rows=%-3u act=%s\n", impl, s.K, s.N, rows,
		       act_name(act.kind));
	}
}

static int dnnl_skipped;

/*
 * The first rows x K inputs, copied to a buffer misaligned by one float and
 * followed by NaNs: a kernel that reads past its input (even multiplying it
 * by zero padding) produces NaN and fails, without needing ASan.
 */
static const float *input_for(float *buf, const float *x, uint32_t rows, uint32_t K)
{
	size_t n = (size_t)rows * K;
	memcpy(buf + 1, x, n * sizeof(float));
	for (size_t i = 0; i < GUARD; i++)
		buf[1 + n + i] = NAN;
	buf[0] = NAN;
	return buf + 1;
}

static void check_dense_shape(struct shape s, const struct impl *impls, size_t n_impls)
{
	const uint32_t K = s.K, N = s.N;
	float *W = xmalloc((size_t)K * N * sizeof(float));
	float *b = xmalloc((size_t)N * sizeof(float));
	float *x = xmalloc(((size_t)MAX_BATCH * K + 1) * sizeof(float));
	float *xrun = xmalloc(((size_t)MAX_BATCH * K + 1 + GUARD) * sizeof(float));
	float *aW = xmalloc((size_t)K * N * sizeof(float));
	float *ab = xmalloc((size_t)N * sizeof(float));
	float *ax = xmalloc((size_t)MAX_BATCH * K * sizeof(float));
	float *ref = xmalloc((size_t)MAX_BATCH * N * sizeof(float));
	float *mag = xmalloc((size_t)MAX_BATCH * N * sizeof(float));
	const size_t cap = (size_t)MAX_BATCH * N;
	struct outbuf o;
	outbuf_init(&o, cap);

	fill_random(W, (size_t)K * N);
	fill_random(b, N);
	/* x misaligned by one float: kernels must not assume aligned inputs */
	float *xin = x + 1;
	fill_random(xin, (size_t)MAX_BATCH * K);
	for (size_t i = 0; i < (size_t)K * N; i++)
		aW[i] = fabsf(W[i]);
	for (size_t i = 0; i < N; i++)
		ab[i] = fabsf(b[i]);
	for (size_t i = 0; i < (size_t)MAX_BATCH * K; i++)
		ax[i] = fabsf(xin[i]);

	for (int has_bias = 1; has_bias >= 0; has_bias--) {
		const float *bp = has_bias ? b : NULL;
		qv_ref_dense(ax, MAX_BATCH, K, aW, N, has_bias ? ab : NULL,
			     (struct qv_act_desc){ QV_ACT_NONE, 0, 0 }, mag);
		/* Without bias only the first activation: the bias path is the same code. */
		size_t n_acts = has_bias ? N_ACTS : 2;
		for (size_t a = 0; a < n_acts; a++) {
			struct qv_act_desc act = acts[a];
			qv_ref_dense(xin, MAX_BATCH, K, W, N, bp, act, ref);
			for (size_t i = 0; i < n_impls; i++) {
				char what[160];
				if (impls[i].isa >= 0) {
					struct qv_hand_dense *h;
					int rc = qv_hand_dense_create(W, K, N, bp, act, impls[i].isa, &h);
					if (rc < 0) {
						snprintf(what, sizeof(what), "%s create K=%u N=%u: %s",
							 impls[i].name, K, N, strerror(-rc));
						expect(0, what);
						continue;
					}
					for (size_t bi = 0; bi < N_BATCHES; bi++) {
						uint32_t rows = batches[bi];
						outbuf_reset(&o, cap, (size_t)rows * N);
						qv_hand_dense_run(h, input_for(xrun, xin, rows, K), rows,
								  o.y);
						compare(impls[i].name, s, rows, act, has_bias, o.y, ref, mag,
							&o);
					}
					qv_hand_dense_free(h);
				} else {
					if (dnnl_skipped)
						continue;
					struct qv_dnnl_dense *dd;
					struct qv_dnnl_dense_ctx *ctx;
					int rc = qv_dnnl_dense_create(W, K, N, bp, act, MAX_BATCH, &dd);
					if (rc == -ENOSYS) {
						printf("SKIP onednn (qv_dnnl_dense_create: not implemented)\n");
						dnnl_skipped = 1;
						continue;
					}
					if (rc < 0) {
						snprintf(what, sizeof(what), "onednn create K=%u N=%u act=%s: %s",
							 K, N, act_name(act.kind), strerror(-rc));
						expect(0, what);
						continue;
					}
					rc = qv_dnnl_dense_ctx_create(dd, &ctx);
					if (rc < 0) {
						snprintf(what, sizeof(what), "onednn ctx K=%u N=%u: %s", K, N,
							 strerror(-rc));
						expect(0, what);
						qv_dnnl_dense_free(dd);
						continue;
					}
					for (size_t bi = 0; bi < N_BATCHES; bi++) {
						uint32_t rows = batches[bi];
						outbuf_reset(&o, cap, (size_t)rows * N);
						rc = qv_dnnl_dense_run(dd, ctx,
								       input_for(xrun, xin, rows, K),
								       rows, o.y);
						if (rc < 0) {
							snprintf(what, sizeof(what),
								 "onednn run K=%u N=%u rows=%u: %s", K, N,
								 rows, strerror(-rc));
							expect(0, what);
						} else {
							compare("onednn", s, rows, act, has_bias, o.y, ref, mag,
								&o);
						}
					}
					qv_dnnl_dense_ctx_free(ctx);
					qv_dnnl_dense_free(dd);
				}
			}
		}
	}
	free(W);
	free(b);
	free(x);
	free(xrun);
	free(aW);
	free(ab);
	free(ax);
	free(ref);
	free(mag);
	free(o.base);
}

/*
 * The vectorized sigmoid/tanh against double-precision libm, far tighter
 * than the dense tolerance: K = 1, W = 1, no bias, so the pre-activation
 * is x exactly and any difference is the approximation's. Relative error
 * <= 1e-6 where the true value is a normal float, absolute <= 1e-30 where
 * it is subnormal or zero (sigmoid below x = -87).
 */
static void check_transcendental(const struct impl *impls, size_t n_impls)
{
	enum { ROWS = 256, NCOL = 19, NVAL = 4096 + 32 };
	static float xs[NVAL];
	const float special[] = { 0.0f,     -0.0f,   1e-8f,   -1e-8f,  0.6249f, -0.6249f,
				  0.625f,   -0.625f, 0.6251f, -0.6251f, 9.0f,   -9.0f,
				  17.0f,    -17.0f,  44.0f,   -44.0f,  87.0f,   -87.0f,
				  88.5f,    -88.5f,  100.0f,  -100.0f, 1e30f,   -1e30f };
	size_t nx = 0;
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		xs[nx++] = special[i];
	while (nx < NVAL)
		xs[nx++] = (float)((rng_unit() * 2.0 - 1.0) * 30.0);

	float W[NCOL];
	for (size_t i = 0; i < NCOL; i++)
		W[i] = 1.0f;
	static float y[ROWS * NCOL], ref[ROWS];

	for (size_t i = 0; i < n_impls; i++) {
		if (impls[i].isa < 0)
			continue;
		for (int kind = QV_ACT_SIGMOID; kind <= QV_ACT_TANH; kind++) {
			struct qv_act_desc act = { (enum qv_act)kind, 0, 0 };
			struct qv_hand_dense *h;
			char what[160];
			snprintf(what, sizeof(what), "%s %s vs libm (rel 1e-6)", impls[i].name,
				 act_name(act.kind));
			if (qv_hand_dense_create(W, 1, NCOL, NULL, act, impls[i].isa, &h) < 0) {
				expect(0, what);
				continue;
			}
			double worst = 0.0;
			float worst_x = 0.0f;
			int ok = 1;
			for (size_t off = 0; off < NVAL; off += ROWS) {
				uint32_t rows = NVAL - off < ROWS ? (uint32_t)(NVAL - off) : ROWS;
				qv_hand_dense_run(h, xs + off, rows, y);
				qv_ref_act(xs + off, rows, act, ref);
				for (size_t r = 0; r < rows; r++) {
					for (size_t c = 0; c < NCOL; c++) {
						double got = y[r * NCOL + c], want = ref[r];
						double err = fabs(got - want);
						if (fabs(want) < FLT_MIN) {
							/* true value subnormal or 0 */
							if (!(err <= 1e-30))
								ok = 0;
							continue;
						}
						double rel = err / fabs(want);
						if (!(rel <= 1e-6))
							ok = 0;
						if (!(rel <= worst)) {
							worst = rel;
							worst_x = xs[off + r];
						}
					}
				}
			}
			if (!ok || verbose)
				printf("  %s: worst rel err %.3g at x = %.9g\n", what, worst,
				       (double)worst_x);
			expect(ok, what);
			qv_hand_dense_free(h);
		}
	}
}

/* create rejects what it cannot run, and leaves *ret alone when it does */
static void check_hand_create_errors(void)
{
	const float W[4] = { 1, 2, 3, 4 };
	const struct qv_act_desc none = { QV_ACT_NONE, 0, 0 };
	struct qv_hand_dense *sentinel = (struct qv_hand_dense *)(uintptr_t)0x1;
	struct qv_hand_dense *h = sentinel;
	expect(qv_hand_dense_create(W, 0, 2, NULL, none, -1, &h) == -EINVAL && h == sentinel,
	       "hand create rejects K = 0");
	expect(qv_hand_dense_create(W, 2, 0, NULL, none, -1, &h) == -EINVAL && h == sentinel,
	       "hand create rejects N = 0");
	expect(qv_hand_dense_create(NULL, 2, 2, NULL, none, -1, &h) == -EINVAL && h == sentinel,
	       "hand create rejects W = NULL");
	expect(qv_hand_dense_create(W, 2, 2, NULL, (struct qv_act_desc){ (enum qv_act)99, 0, 0 },
				    -1, &h) == -EINVAL && h == sentinel,
	       "hand create rejects an unknown activation");
	expect(qv_hand_dense_create(W, 1u << 20, 1u << 12, NULL, none, -1, &h) == -E2BIG &&
		       h == sentinel,
	       "hand create rejects K x N beyond 32-bit indexing");
	if (qv_hand_isa() < QV_ISA_AVX512)
		expect(qv_hand_dense_create(W, 2, 2, NULL, none, QV_ISA_AVX512, &h) == -ENOTSUP &&
			       h == sentinel,
		       "hand create refuses an ISA this CPU lacks");
}

/* ------------------------------------------------------------------ */
/* --bench                                                             */
/* ------------------------------------------------------------------ */

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

#define BENCH_MAX_LAYERS 3
#define BENCH_REPS 101

/* One implementation of a chain of dense layers, ready to run. */
struct chain {
	uint32_t n;
	struct qv_hand_dense *h[BENCH_MAX_LAYERS];
	struct qv_dnnl_dense *d[BENCH_MAX_LAYERS];
	struct qv_dnnl_dense_ctx *c[BENCH_MAX_LAYERS];
};

static int chain_run(struct chain *ch, const float *x, uint32_t rows, float *const *bufs)
{
	const float *in = x;
	for (uint32_t l = 0; l < ch->n; l++) {
		if (ch->h[l]) {
			qv_hand_dense_run(ch->h[l], in, rows, bufs[l]);
		} else {
			int rc = qv_dnnl_dense_run(ch->d[l], ch->c[l], in, rows, bufs[l]);
			if (rc < 0)
				return rc;
		}
		in = bufs[l];
	}
	return 0;
}

static void chain_free(struct chain *ch)
{
	for (uint32_t l = 0; l < ch->n; l++) {
		qv_hand_dense_free(ch->h[l]);
		qv_dnnl_dense_ctx_free(ch->c[l]);
		qv_dnnl_dense_free(ch->d[l]);
	}
	memset(ch, 0, sizeof(*ch));
}

static int chain_create(const struct impl *im, const struct shape *ls,
			const struct qv_act_desc *la, uint32_t n, float *const *Ws,
			float *const *bs, struct chain *ret)
{
	struct chain ch;
	memset(&ch, 0, sizeof(ch));
	ch.n = n;
	for (uint32_t l = 0; l < n; l++) {
		int rc;
		if (im->isa >= 0) {
			rc = qv_hand_dense_create(Ws[l], ls[l].K, ls[l].N, bs[l], la[l], im->isa,
						  &ch.h[l]);
		} else {
			rc = qv_dnnl_dense_create(Ws[l], ls[l].K, ls[l].N, bs[l], la[l], MAX_BATCH,
						  &ch.d[l]);
			if (rc == 0)
				rc = qv_dnnl_dense_ctx_create(ch.d[l], &ch.c[l]);
		}
		if (rc < 0) {
			chain_free(&ch);
			return rc;
		}
	}
	*ret = ch;
	return 0;
}

/*
 * ns/call: the machine is shared and small, so a long timed loop mostly
 * measures other processes. Instead many short bursts (~30 us each, well
 * inside a scheduler time slice) are timed and the fastest burst is
 * reported, with the median beside it as a noise indicator.
 */
static int bench_chain(struct chain *ch, const float *x, uint32_t rows, float *const *bufs,
		       double *ret_min, double *ret_med)
{
	double t[BENCH_REPS];
	double t0 = now_ns();
	unsigned warm = 0;
	do {  /* warm caches and branch predictors for ~2 ms */
		if (chain_run(ch, x, rows, bufs) < 0)
			return -1;
		warm++;
	} while (now_ns() - t0 < 2e6);
	double per = (now_ns() - t0) / warm;
	unsigned iters = per > 30e3 ? 1 : (unsigned)(30e3 / per) + 1;
	for (unsigned r = 0; r < BENCH_REPS; r++) {
		t0 = now_ns();
		for (unsigned i = 0; i < iters; i++)
			chain_run(ch, x, rows, bufs);
		t[r] = (now_ns() - t0) / iters;
	}
	qsort(t, BENCH_REPS, sizeof(t[0]), cmp_double);
	*ret_min = t[0];
	*ret_med = t[BENCH_REPS / 2];
	return 0;
}

struct bench_case {
	const char *name;
	uint32_t n;
	struct shape s[BENCH_MAX_LAYERS];
	struct qv_act_desc a[BENCH_MAX_LAYERS];
};

static void run_bench(const struct impl *impls, size_t n_impls, const char *only)
{
	const struct qv_act_desc relu = { QV_ACT_RELU, 0, 0 }, sig = { QV_ACT_SIGMOID, 0, 0 };
	const struct bench_case cases[] = {
		{ "32x256 relu", 1, { { 32, 256 } }, { relu } },
		{ "256x256 relu", 1, { { 256, 256 } }, { relu } },
		{ "256x1 sigmoid", 1, { { 256, 1 } }, { sig } },
		{ "256x512 relu", 1, { { 256, 512 } }, { relu } },
		{ "512x256 relu", 1, { { 512, 256 } }, { relu } },
		{ "trade-mlp 32-256-256-1", 3, { { 32, 256 }, { 256, 256 }, { 256, 1 } },
		  { relu, relu, sig } },
		{ "ctr-mlp 256-512-256-1", 3, { { 256, 512 }, { 512, 256 }, { 256, 1 } },
		  { relu, relu, sig } },
	};
	const uint32_t brows[] = { 1, 2, 4, 8, 64 };

	printf("%-24s %5s", "ns/call (min/median)", "rows");
	for (size_t i = 0; i < n_impls; i++)
		printf(" %17s", impls[i].name);
	printf("\n");

	for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
		const struct bench_case *bc = &cases[ci];
		if (only && !strstr(bc->name, only))
			continue;
		float *Ws[BENCH_MAX_LAYERS], *bs[BENCH_MAX_LAYERS], *bufs[BENCH_MAX_LAYERS];
		struct chain chains[8];
		int have[8];
		for (uint32_t l = 0; l < bc->n; l++) {
			Ws[l] = xmalloc((size_t)bc->s[l].K * bc->s[l].N * sizeof(float));
			bs[l] = xmalloc(bc->s[l].N * sizeof(float));
			bufs[l] = xmalloc((size_t)MAX_BATCH * bc->s[l].N * sizeof(float));
			/* weights ~ U(-1/sqrt(K), 1/sqrt(K)), like torch's Linear init */
			for (size_t i = 0; i < (size_t)bc->s[l].K * bc->s[l].N; i++)
				Ws[l][i] = (float)((rng_unit() * 2 - 1) / sqrt(bc->s[l].K));
			for (size_t i = 0; i < bc->s[l].N; i++)
				bs[l][i] = (float)(rng_unit() * 0.2 - 0.1);
		}
		float *x = xmalloc((size_t)MAX_BATCH * bc->s[0].K * sizeof(float));
		for (size_t i = 0; i < (size_t)MAX_BATCH * bc->s[0].K; i++)
			x[i] = (float)(rng_unit() * 2 - 1);
		for (size_t i = 0; i < n_impls && i < 8; i++)
			have[i] = chain_create(&impls[i], bc->s, bc->a, bc->n, Ws, bs, &chains[i]) == 0;

		for (size_t ri = 0; ri < sizeof(brows) / sizeof(brows[0]); ri++) {
			uint32_t rows = brows[ri];
			printf("%-24s %5u", bc->name, rows);
			for (size_t i = 0; i < n_impls && i < 8; i++) {
				double mn, med;
				if (have[i] && bench_chain(&chains[i], x, rows, bufs, &mn, &med) == 0)
					printf(" %8.0f/%-8.0f", mn, med);
				else
					printf(" %17s", "-");
			}
			printf("\n");
			fflush(stdout);
		}
		for (size_t i = 0; i < n_impls && i < 8; i++)
			if (have[i])
				chain_free(&chains[i]);
		for (uint32_t l = 0; l < bc->n; l++) {
			free(Ws[l]);
			free(bs[l]);
			free(bufs[l]);
		}
		free(x);
	}
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	int bench = 0;
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--bench")) {
			bench = 1;
		} else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v")) {
			verbose = 1;
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			rng_state = strtoull(argv[++i], NULL, 0);
		} else {
			fprintf(stderr,
				"usage: %s [--seed N] [--verbose] | --bench [--only CASE]\n", argv[0]);
			return 2;
		}
	}

	/* oneDNN primitives run inline on this thread, never in an OpenMP pool. */
	qv_thread_init();

	struct impl impls[4];
	size_t n_impls = 0;
	int best = (int)qv_hand_isa();
	for (int isa = QV_ISA_SCALAR; isa <= best; isa++)
		impls[n_impls++] = (struct impl){ isa_name(isa), isa };
	impls[n_impls++] = (struct impl){ "onednn", -1 };
	printf("op-harness: hand kernel ISAs up to %s\n", isa_name(best));

	if (bench) {
		run_bench(impls, n_impls, only);
		return 0;
	}

	check_ref_softmax();
	check_ref_binary();
	check_ref_concat();
	check_ref_batchnorm();
	check_ref_act_dense();
	check_hand_create_errors();
	check_transcendental(impls, n_impls);
	for (size_t s = 0; s < N_SHAPES; s++)
		check_dense_shape(shapes[s], impls, n_impls);

	printf("op-harness: %u checks, %u failed%s\n", n_checks, n_fail,
	       dnnl_skipped ? " (onednn skipped: not implemented)" : "");
	return n_fail ? 1 : 0;
}
