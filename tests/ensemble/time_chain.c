/* SPDX-License-Identifier: Apache-2.0 */
/*
 * time_chain - batch-1 latency of a chain of two models run as an ensemble,
 * against the two models run on their own. Not a test: it prints numbers.
 *
 * usage: time_chain GEN_DIR [SAMPLES]
 *
 * Each sample times BURST back-to-back calls with one clock read either
 * side, so the clock's own cost is spread thin; the p50 of the samples per
 * call is reported. A, B and the ensemble are interleaved sample by sample
 * so frequency or noise drift hits all three alike.
 */
#include "qv_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BURST 32u

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double p50(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return v[n / 2];
}

static double sample(qv_exec_ctx *c, const float *in, float *out)
{
	uint64_t t0 = now_ns();
	for (uint32_t i = 0; i < BURST; i++)
		qv_run(c, in, 1, out);
	return (double)(now_ns() - t0) / BURST;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s GEN_DIR [SAMPLES]\n", argv[0]);
		return 2;
	}
	size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 20000;
	if (n < 10)
		n = 10;
	char path[512], err[QV_ERR_LEN];
	qv_model *a = NULL, *b = NULL, *e = NULL;
	snprintf(path, sizeof(path), "%s/chain_a.onnx", argv[1]);
	if (qv_model_load_file(path, NULL, &a, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/chain_b.onnx", argv[1]);
	if (qv_model_load_file(path, NULL, &b, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct qv_ensemble_step s[2];
	memset(s, 0, sizeof(s));
	s[0].name = "a";
	s[0].model = a;
	s[1].name = "b";
	s[1].model = b;
	s[1].n_inputs = 1;
	s[1].inputs[0] = "a";
	struct qv_ensemble_desc d = { .name = "chain", .n_steps = 2, .steps = s, .output = NULL };
	if (qv_ensemble_create(&d, &e, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	qv_exec_ctx *ca, *cb, *ce;
	if (qv_exec_ctx_create(a, &ca) < 0 || qv_exec_ctx_create(b, &cb) < 0 ||
	    qv_exec_ctx_create(e, &ce) < 0)
		return 1;
	float in[16], mid[32], out[4];
	for (int i = 0; i < 16; i++)
		in[i] = (float)i * 0.1f - 0.7f;
	double *ta = calloc(n, sizeof(double)), *tb = calloc(n, sizeof(double)),
	       *te = calloc(n, sizeof(double));
	if (!ta || !tb || !te)
		return 1;
	for (size_t i = 0; i < n / 10; i++) {  /* warm caches and branch predictors */
		sample(ca, in, mid);
		sample(cb, mid, out);
		sample(ce, in, out);
	}
	for (size_t i = 0; i < n; i++) {
		ta[i] = sample(ca, in, mid);
		tb[i] = sample(cb, mid, out);
		te[i] = sample(ce, in, out);
	}
	double pa = p50(ta, n), pb = p50(tb, n), pe = p50(te, n);
	printf("batch 1, p50 of %zu samples of %u calls:\n", n, BURST);
	printf("  chain_a (16->32)      %8.1f ns\n", pa);
	printf("  chain_b (32->24->4)   %8.1f ns\n", pb);
	printf("  sum                   %8.1f ns\n", pa + pb);
	printf("  ensemble a->b         %8.1f ns\n", pe);
	printf("  ensemble - sum        %8.1f ns (budget 300 ns): %s\n", pe - (pa + pb),
	       pe - (pa + pb) <= 300.0 ? "within" : "OVER");
	free(ta);
	free(tb);
	free(te);
	qv_exec_ctx_free(ce);
	qv_exec_ctx_free(cb);
	qv_exec_ctx_free(ca);
	qv_model_free(e);
	qv_model_free(b);
	qv_model_free(a);
	return 0;
}
