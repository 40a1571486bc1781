/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_trees_ensemble - ensembles that mix XGBoost and ONNX steps, against
 * references computed from xgboost's predict() and numpy (gen_trees.py):
 *   avg    the mean of a GBDT (binary-logistic) and an MLP (mix-mlp6), both
 *          on the ensemble's input, through an averaging ONNX head
 *   chain  a GBDT's class probabilities (multi-softprob) feeding an MLP
 *          head (mix-head3)
 * at batch 1 and full batches, through qv_run and qv_run_reference.
 *
 * usage: test_trees_ensemble DIR   (77 when the models were not generated)
 */
#include "npy.h"
#include "qv_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static qv_model *load(const char *dir, const char *file)
{
	char path[4096], err[QV_ERR_LEN];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	qv_model *m = NULL;
	if (qv_model_load_file(path, NULL, &m, err, sizeof(err)) < 0) {
		fprintf(stderr, "FAIL load %s: %s\n", path, err);
		failures++;
		return NULL;
	}
	return m;
}

static void check(const char *what, qv_model *ens, const struct qv_npy *x, const struct qv_npy *y)
{
	struct qv_model_info info;
	qv_model_get_info(ens, &info);
	uint32_t rows = (uint32_t)x->shape[0], w = info.out_dim;
	if (info.in_dim != x->shape[1] || w != y->shape[1]) {
		fprintf(stderr, "FAIL %s: %u -> %u floats, reference %lld -> %lld\n", what, info.in_dim, w,
			(long long)x->shape[1], (long long)y->shape[1]);
		failures++;
		return;
	}
	float *out = malloc((size_t)rows * w * sizeof(float));
	qv_exec_ctx *ctx = NULL;
	if (!out || qv_exec_ctx_create(ens, &ctx) < 0) {
		fprintf(stderr, "FAIL %s: context\n", what);
		failures++;
		free(out);
		return;
	}
	for (int mode = 0; mode < 3; mode++) {
		uint32_t chunk = mode == 0 ? 1 : rows < info.max_batch ? rows : info.max_batch;
		memset(out, 0xff, (size_t)rows * w * sizeof(float));
		for (uint32_t r = 0; r < rows; r += chunk) {
			uint32_t n = rows - r < chunk ? rows - r : chunk;
			int rc = mode == 2 ? qv_run_reference(ens, x->data + (size_t)r * info.in_dim, n,
							       out + (size_t)r * w)
					   : qv_run(ctx, x->data + (size_t)r * info.in_dim, n, out + (size_t)r * w);
			if (rc < 0) {
				fprintf(stderr, "FAIL %s: run %d\n", what, rc);
				failures++;
			}
		}
		int bad = 0;
		for (size_t i = 0; i < (size_t)rows * w; i++)
			if (!(fabs((double)out[i] - y->data[i]) <= 1e-5 + 1e-5 * fabs(y->data[i]))) {
				if (bad++ < 3)
					fprintf(stderr, "FAIL %s mode %d: [%zu] got %.9g want %.9g\n", what, mode, i,
						(double)out[i], (double)y->data[i]);
			}
		failures += bad > 0;
		printf("%s mode %d (%s): %d of %u differ\n", what, mode,
		       mode == 0 ? "batch 1" : mode == 1 ? "full batches" : "reference", bad, rows * w);
	}
	qv_exec_ctx_free(ctx);
	free(out);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *dir = argv[1];
	char path[4096], err[QV_ERR_LEN];
	struct qv_npy x, ya, yc;
	snprintf(path, sizeof(path), "%s/mix.x.npy", dir);
	if (qv_npy_read(path, &x, err, sizeof(err)) < 0) {
		printf("SKIP: %s: %s (python3-xgboost/onnx missing at build time)\n", path, err);
		return 77;
	}
	snprintf(path, sizeof(path), "%s/mix-avg.y.npy", dir);
	int r1 = qv_npy_read(path, &ya, err, sizeof(err));
	snprintf(path, sizeof(path), "%s/mix-chain.y.npy", dir);
	int r2 = qv_npy_read(path, &yc, err, sizeof(err));
	if (r1 < 0 || r2 < 0) {
		fprintf(stderr, "FAIL references: %s\n", err);
		return 1;
	}
	qv_model *gb = load(dir, "binary-logistic.json"), *mlp = load(dir, "mix-mlp6.onnx"),
		 *avg = load(dir, "mix-avg2.onnx"), *gm = load(dir, "multi-softprob.ubj"),
		 *head = load(dir, "mix-head3.onnx");
	if (gb && mlp && avg) {
		struct qv_ensemble_step st[3] = {
			{ .name = "gbdt", .model = gb },
			{ .name = "mlp", .model = mlp },
			{ .name = "avg", .model = avg, .n_inputs = 2, .inputs = { "gbdt", "mlp" } },
		};
		struct qv_ensemble_desc d = { .name = "avg", .n_steps = 3, .steps = st, .output = "avg" };
		qv_model *e = NULL;
		if (qv_ensemble_create(&d, &e, err, sizeof(err)) < 0) {
			fprintf(stderr, "FAIL avg ensemble: %s\n", err);
			failures++;
		} else {
			check("avg", e, &x, &ya);
			qv_model_free(e);
		}
	}
	if (gm && head) {
		struct qv_ensemble_step st[2] = {
			{ .name = "gbdt", .model = gm },
			{ .name = "head", .model = head, .n_inputs = 1, .inputs = { "gbdt" } },
		};
		struct qv_ensemble_desc d = { .name = "chain", .n_steps = 2, .steps = st, .output = NULL };
		qv_model *e = NULL;
		if (qv_ensemble_create(&d, &e, err, sizeof(err)) < 0) {
			fprintf(stderr, "FAIL chain ensemble: %s\n", err);
			failures++;
		} else {
			check("chain", e, &x, &yc);
			qv_model_free(e);
		}
	}
	qv_model_free(gb);
	qv_model_free(mlp);
	qv_model_free(avg);
	qv_model_free(gm);
	qv_model_free(head);
	qv_npy_free(&x);
	qv_npy_free(&ya);
	qv_npy_free(&yc);
	printf("%d failures\n", failures);
	return failures ? 1 : 0;
}
