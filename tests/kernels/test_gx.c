/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_gx.c - the general graph runtime (kernels/gx_*.c) against the
 * numpy / torch references gen_gx.py wrote.
 *
 * For every good model, under each kernel choice (AUTO, ONEDNN, HAND):
 * packed rows as a batch and one row at a time (the rows == 1 path points
 * tensors into the packed row), one buffer per tensor (qv_run_tensors),
 * and the unfused reference walk; each compared with the reference within
 * its rtol / atol. Bad models must be refused with an error naming the
 * node; an embedding id out of range must give -ERANGE and leave the other
 * rows runnable.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qv_model.h"
#include "testutil.h"

static int failures;

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);    \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			failures++;                                             \
		}                                                               \
	} while (0)

static int close_to(const char *what, const char *name, const float *got, const float *want, size_t n,
		    double rtol, double atol)
{
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - (double)want[i]);
		if (!(d <= atol + rtol * fabs((double)want[i]))) {
			CHECK(0, "%s [%s]: element %zu is %.7g, want %.7g", name, what, i, got[i], want[i]);
			return -1;
		}
	}
	return 0;
}

static qv_model *load(const char *dir, const char *name, enum qv_kernel_choice k, char *err, size_t err_len,
		      int *ret_rc)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.onnx", dir, name);
	struct qv_model_opts o = { .max_batch = 8, .kernels = k, .tune_iters = 2 };
	qv_model *m = NULL;
	*ret_rc = qv_model_load_file(path, &o, &m, err, err_len);
	return m;
}

static void check_good(const char *dir, const char *name, uint32_t rows, double rtol, double atol)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.bin", dir, name);
	void *bin;
	size_t len;
	int rc = tu_read_file(path, &bin, &len);
	CHECK(rc == 0, "%s: cannot read %s", name, path);
	if (rc)
		return;
	static const enum qv_kernel_choice kinds[] = { QV_KERNEL_AUTO, QV_KERNEL_ONEDNN, QV_KERNEL_HAND };
	for (size_t ki = 0; ki < 3; ki++) {
		char err[QV_ERR_LEN] = "";
		qv_model *m = load(dir, name, kinds[ki], err, sizeof(err), &rc);
		CHECK(rc == 0, "%s: load: %s", name, err);
		if (rc)
			break;
		struct qv_model_info info;
		qv_model_get_info(m, &info);
		size_t in_b = (size_t)rows * info.in_dim * 4, out_b = (size_t)rows * info.out_dim * 4;
		CHECK(len == in_b + out_b, "%s: %s.bin has %zu bytes, want %zu", name, name, len, in_b + out_b);
		if (len != in_b + out_b) {
			qv_model_free(m);
			break;
		}
		const char *in = bin;
		const float *want = (const float *)(const void *)(in + in_b);
		float *out = calloc(out_b / 4 + 1, 4);
		qv_exec_ctx *ctx = NULL;
		rc = qv_exec_ctx_create(m, &ctx);
		CHECK(rc == 0, "%s: ctx %d", name, rc);
		if (ctx && out) {
			rc = qv_run(ctx, (const float *)(const void *)in, rows, out);
			CHECK(rc == 0, "%s: qv_run %d", name, rc);
			close_to("batch", name, out, want, out_b / 4, rtol, atol);
			memset(out, 0, out_b);
			for (uint32_t r = 0; r < rows; r++) {
				rc = qv_run(ctx, (const float *)(const void *)(in + (size_t)r * info.in_dim * 4), 1,
					    out + (size_t)r * info.out_dim);
				CHECK(rc == 0, "%s: qv_run row %u: %d", name, r, rc);
			}
			close_to("one row at a time", name, out, want, out_b / 4, rtol, atol);
			/* one buffer per tensor */
			void *tin[QV_MAX_TENSORS] = { 0 }, *tout[QV_MAX_TENSORS] = { 0 };
			struct qv_tensor_info ti[QV_MAX_TENSORS], to[QV_MAX_TENSORS];
			for (uint32_t i = 0; i < info.n_inputs; i++) {
				qv_model_tensor(m, 0, i, &ti[i]);
				tin[i] = malloc((size_t)rows * ti[i].row_bytes);
				for (uint32_t r = 0; r < rows && tin[i]; r++)
					memcpy((char *)tin[i] + (size_t)r * ti[i].row_bytes,
					       in + (size_t)r * info.in_dim * 4 + ti[i].packed_off, ti[i].row_bytes);
			}
			for (uint32_t j = 0; j < info.n_outputs; j++) {
				qv_model_tensor(m, 1, j, &to[j]);
				tout[j] = calloc(rows, to[j].row_bytes);
			}
			rc = qv_run_tensors(ctx, rows, (const void *const *)tin, tout);
			CHECK(rc == 0, "%s: qv_run_tensors %d", name, rc);
			for (uint32_t r = 0; r < rows; r++)
				for (uint32_t j = 0; j < info.n_outputs; j++)
					memcpy((char *)out + (size_t)r * info.out_dim * 4 + to[j].packed_off,
					       (char *)tout[j] + (size_t)r * to[j].row_bytes, to[j].row_bytes);
			close_to("tensors", name, out, want, out_b / 4, rtol, atol);
			for (uint32_t i = 0; i < QV_MAX_TENSORS; i++) {
				free(tin[i]);
				free(tout[i]);
			}
			if (ki == 0) {
				memset(out, 0, out_b);
				rc = qv_run_reference(m, (const float *)(const void *)in, rows, out);
				CHECK(rc == 0, "%s: reference %d", name, rc);
				close_to("reference", name, out, want, out_b / 4, rtol, atol);
				char desc[16384];
				CHECK(qv_model_describe(m, desc, sizeof(desc)) == 0, "%s: describe", name);
				/* the fusions these models exist for */
				static const char *const fused[][3] = {
					{ "gx-residual-ln13", "+gelu+residual+layernorm", NULL },
					{ "gx-residual-ln17", "+gelu+residual+layernorm", NULL },
					{ "gx-residual-tanh", "+gelu_tanh+residual+layernorm", NULL },
					{ "gx-dlrm", "written into the concat", "act=1" },
					{ "gx-gelu-alone", " Gelu ", " GeluTanh " },
				};
				for (size_t w = 0; w < sizeof(fused) / sizeof(fused[0]); w++)
					for (int j = 1; j < 3 && !strcmp(fused[w][0], name); j++)
						CHECK(!fused[w][j] || strstr(desc, fused[w][j]), "%s: plan lacks \"%s\":\n%s",
						      name, fused[w][j], desc);
			}
		}
		free(out);
		qv_exec_ctx_free(ctx);
		qv_model_free(m);
	}
	free(bin);
}

static void check_bad(const char *dir, const char *name, const char *want)
{
	char err[QV_ERR_LEN] = "";
	int rc;
	qv_model *m = load(dir, name, QV_KERNEL_AUTO, err, sizeof(err), &rc);
	CHECK(rc < 0 && !m, "%s: loaded, want an error containing \"%s\"", name, want);
	CHECK(strstr(err, want) != NULL, "%s: error \"%s\" does not contain \"%s\"", name, err, want);
	qv_model_free(m);
}

static void check_range(const char *dir, const char *name, uint32_t rows, uint32_t bad_row)
{
	char err[QV_ERR_LEN] = "", path[4096];
	int rc;
	qv_model *m = load(dir, name, QV_KERNEL_AUTO, err, sizeof(err), &rc);
	CHECK(rc == 0, "%s: load: %s", name, err);
	if (rc)
		return;
	snprintf(path, sizeof(path), "%s/%s.bin", dir, name);
	void *bin;
	size_t len;
	struct qv_model_info info;
	qv_model_get_info(m, &info);
	struct qv_tensor_info ti;
	qv_model_tensor(m, 0, 0, &ti);
	CHECK(ti.index_bound > 0, "%s: ids input has no index_bound", name);
	qv_exec_ctx *ctx = NULL;
	if (tu_read_file(path, &bin, &len) == 0 && qv_exec_ctx_create(m, &ctx) == 0) {
		float *out = calloc((size_t)rows * info.out_dim, 4);
		const char *in = bin;
		CHECK(len == (size_t)rows * info.in_dim * 4, "%s: input size", name);
		rc = qv_run(ctx, bin, rows, out);
		CHECK(rc == -ERANGE, "%s: batch with an id out of range gave %d, want -ERANGE", name, rc);
		for (uint32_t r = 0; r < rows; r++) {
			rc = qv_run(ctx, (const float *)(const void *)(in + (size_t)r * info.in_dim * 4), 1, out);
			CHECK(rc == (r == bad_row ? -ERANGE : 0), "%s: row %u gave %d", name, r, rc);
		}
		free(out);
		free(bin);
	}
	qv_exec_ctx_free(ctx);
	qv_model_free(m);
}

/* An ensemble step passes one float tensor: a model of two typed inputs is refused. */
static void check_ensemble_refuses(const char *dir)
{
	char err[QV_ERR_LEN] = "";
	int rc;
	qv_model *m = load(dir, "gx-dlrm", QV_KERNEL_ONEDNN, err, sizeof(err), &rc);
	if (rc)
		return; /* torch models not generated */
	struct qv_ensemble_step st = { .name = "dlrm", .model = m };
	struct qv_ensemble_desc d = { .name = "ens", .n_steps = 1, .steps = &st };
	qv_model *e = NULL;
	err[0] = '\0';
	rc = qv_ensemble_create(&d, &e, err, sizeof(err));
	CHECK(rc == -ENOTSUP && !e, "ensemble of a two-input model: rc %d", rc);
	CHECK(strstr(err, "step 'dlrm'") && strstr(err, "2 inputs"), "ensemble error \"%s\"", err);
	qv_model_free(e);
	qv_model_free(m);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
		return 2;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/gx.tsv", argv[1]);
	FILE *f = fopen(path, "r");
	if (!f) {
		printf("SKIP: no %s (models not generated: needs /usr/bin/python3 with onnx and numpy)\n", path);
		return QV_TEST_SKIP;
	}
	char line[512];
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		char kind[16], name[128], a[128] = "", b[32] = "", c[32] = "";
		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "%15[^\t]\t%127[^\t]\t%127[^\t]\t%31[^\t]\t%31s", kind, name, a, b, c) < 3)
			continue;
		n++;
		if (!strcmp(kind, "good"))
			check_good(argv[1], name, (uint32_t)atoi(a), atof(b), atof(c));
		else if (!strcmp(kind, "bad"))
			check_bad(argv[1], name, a);
		else if (!strcmp(kind, "range"))
			check_range(argv[1], name, (uint32_t)atoi(a), (uint32_t)atoi(b));
	}
	fclose(f);
	check_ensemble_refuses(argv[1]);
	CHECK(n > 0, "no models in %s", path);
	printf("%d graph models, %d failures\n", n, failures);
	return failures ? 1 : 0;
}
