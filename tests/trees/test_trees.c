/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_trees - XGBoost models against xgboost's own predict() (references
 * written by gen_trees.py), and bad models refused.
 *
 * Every good model is loaded from NAME.json and NAME.ubj, through the file
 * and the buffer API, and run over its rows (random, exactly on split
 * thresholds and an ulp either side, NaN, +-inf) by every path: the timed
 * choice, one row at a time, blocked, the reference walk, and
 * qv_run_reference; at batch 1 and at full batches. Outputs are compared
 * with the reference as the manifest says: abs (probabilities, <= 1e-6
 * absolute), rel (margins and exp() of them, <= 1e-5 relative, 1e-6
 * absolute near zero), exact (classes).
 *
 * Every bad model must be refused with a negative errno, ret_model left
 * alone, and a message holding the substring the manifest names (the tree
 * and node, or the field).
 *
 * usage: test_trees DIR [large]   (DIR holds manifest.tsv; exit 77 if not)
 */
#include "qv_model.h"
#include "testutil.h"
#include "tree.h"
#include "npy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
			failures++;                                          \
		}                                                            \
	} while (0)

static qv_model *const untouched = (qv_model *)(uintptr_t)0x5a5a5a50u;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int close_enough(const char *check, float got, float want)
{
	if (isnan(want) || isnan(got))
		return isnan(want) && isnan(got);
	if (!strcmp(check, "exact"))
		return got == want;
	if (!strcmp(check, "abs"))
		return fabs((double)got - want) <= 1e-6;
	if (isinf(want))
		return got == want;
	return fabs((double)got - want) <= 1e-5 * fabs((double)want) + 1e-6;
}

/* Runs all rows through ctx in chunks of `chunk` rows; counts mismatches. */
static int compare(const char *what, qv_model *m, int path, uint32_t chunk, const struct qv_npy *x,
		   const struct qv_npy *y, const char *check)
{
	struct qv_model_info info;
	qv_model_get_info(m, &info);
	uint32_t rows = (uint32_t)x->shape[0], nf = info.in_dim, w = info.out_dim;
	float *out = calloc((size_t)rows * w, sizeof(float));
	qv_exec_ctx *ctx = NULL;
	int rc = path >= 0 ? qv_exec_ctx_create(m, &ctx) : 0;
	CHECK(out && rc == 0, "%s: context %d", what, rc);
	if (!out || rc < 0) {
		free(out);
		return 1;
	}
	for (uint32_t r = 0; r < rows; r += chunk) {
		uint32_t n = rows - r < chunk ? rows - r : chunk;
		if (path < 0)
			rc = qv_run_reference(m, x->data + (size_t)r * nf, n, out + (size_t)r * w);
		else
			rc = qv_run(ctx, x->data + (size_t)r * nf, n, out + (size_t)r * w);
		CHECK(rc == 0, "%s: run rows %u..%u: %d", what, r, r + n, rc);
	}
	int bad = 0;
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t k = 0; k < w; k++) {
			float g = out[(size_t)r * w + k], e = y->data[(size_t)r * w + k];
			if (!close_enough(check, g, e)) {
				if (bad < 5)
					fprintf(stderr, "FAIL %s row %u col %u: got %.9g want %.9g (%s)\n", what,
						r, k, (double)g, (double)e, check);
				bad++;
			}
		}
	if (bad) {
		fprintf(stderr, "FAIL %s: %d of %u values differ\n", what, bad, rows * w);
		failures++;
	}
	qv_exec_ctx_free(ctx);
	free(out);
	return bad;
}

static void test_good(const char *dir, const char *name, uint32_t nf, uint32_t w, const char *check)
{
	char path[4096], err[QV_ERR_LEN];
	struct qv_npy x, y;
	snprintf(path, sizeof(path), "%s/%s.x.npy", dir, name);
	int rc = qv_npy_read(path, &x, err, sizeof(err));
	CHECK(rc == 0, "%s: %s", path, err);
	if (rc < 0)
		return;
	snprintf(path, sizeof(path), "%s/%s.y.npy", dir, name);
	rc = qv_npy_read(path, &y, err, sizeof(err));
	CHECK(rc == 0, "%s: %s", path, err);
	if (rc < 0) {
		qv_npy_free(&x);
		return;
	}
	CHECK(x.rank == 2 && x.shape[1] == nf && y.rank == 2 && y.shape[1] == w && y.shape[0] == x.shape[0],
	      "%s: reference shapes", name);
	static const char *const exts[] = { "json", "ubj" };
	for (int e = 0; e < 2; e++) {
		snprintf(path, sizeof(path), "%s/%s.%s", dir, name, exts[e]);
		qv_model *m = NULL;
		double t0 = now_s();
		rc = e == 0 ? qv_model_load_file(path, NULL, &m, err, sizeof(err)) : 0;
		if (e == 1) {
			/* the buffer API for UBJSON: content, not the name, decides */
			void *buf;
			size_t len;
			rc = tu_read_file(path, &buf, &len);
			if (rc == 0) {
				rc = qv_model_load_buffer(buf, len, NULL, &m, err, sizeof(err));
				free(buf);
			}
		}
		double t1 = now_s();
		CHECK(rc == 0, "%s: load: %d %s", path, rc, err);
		if (rc < 0)
			continue;
		struct qv_model_info info;
		qv_model_get_info(m, &info);
		CHECK(info.in_dim == nf && info.out_dim == w && info.n_inputs == 1 && info.n_outputs == 1,
		      "%s: in %u out %u, want %u and %u", path, info.in_dim, info.out_dim, nf, w);
		char desc[4096];
		CHECK(qv_model_describe(m, desc, sizeof(desc)) == 0 && strstr(desc, "xgboost"),
		      "%s: describe", path);
		printf("%-26s %s load %.1f ms: %s", name, exts[e], (t1 - t0) * 1e3, strchr(desc, '\n') + 1);
		char what[4400];
		static const char *const paths[] = { "auto", "row", "block", "walk" };
		for (int p = 0; p < 4; p++) {
			rc = qv_tree_set_path(m, p);
			if (rc == -ENOTSUP)
				continue;   /* gblinear: no trees to lay out */
			CHECK(rc == 0, "%s: set path %d: %d", path, p, rc);
			snprintf(what, sizeof(what), "%s [%s, batch 1]", path, paths[p]);
			compare(what, m, p, 1, &x, &y, check);
			snprintf(what, sizeof(what), "%s [%s, batch %u]", path, paths[p], info.max_batch);
			compare(what, m, p, info.max_batch, &x, &y, check);
			snprintf(what, sizeof(what), "%s [%s, batch 13]", path, paths[p]);
			compare(what, m, p, 13, &x, &y, check);
		}
		qv_tree_set_path(m, 0);
		snprintf(what, sizeof(what), "%s [qv_run_reference]", path);
		compare(what, m, -1, 64, &x, &y, check);
		qv_model_free(m);
	}
	qv_npy_free(&x);
	qv_npy_free(&y);
}

static void test_bad(const char *dir, const char *file, const char *expect)
{
	char path[4096], err[QV_ERR_LEN];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	qv_model *m = untouched;
	memset(err, 'x', sizeof(err));
	int rc = qv_model_load_file(path, NULL, &m, err, sizeof(err));
	CHECK(rc < 0 && rc > -4096, "%s: rc %d, want a negative errno", file, rc);
	CHECK(m == untouched, "%s: ret_model written on failure", file);
	if (rc >= 0) {
		if (m != untouched)
			qv_model_free(m);
		return;
	}
	CHECK(memchr(err, '\0', sizeof(err)) != NULL, "%s: error not terminated", file);
	/* the file API prefixes the file's name: blank it so it cannot match */
	char msg[QV_ERR_LEN + 1];
	snprintf(msg, sizeof(msg), "%s", err);
	for (char *p = strstr(msg, file); p; p = strstr(p, file))
		memset(p, ' ', strlen(file));
	CHECK(tu_contains_any(msg, expect), "%s: error \"%s\" holds none of '%s'", file, err, expect);
	printf("%-28s %4d  %s\n", file, rc, err);

	/* the buffer API, no error buffer, and a tiny one */
	void *buf;
	size_t len;
	if (tu_read_file(path, &buf, &len) == 0) {
		m = untouched;
		rc = qv_model_load_buffer(buf, len, NULL, &m, NULL, 0);
		CHECK(rc < 0 && m == untouched, "%s [buffer, no err]: rc %d", file, rc);
		char tiny[8];
		memset(tiny, 'x', sizeof(tiny));
		rc = qv_model_load_buffer(buf, len, NULL, &m, tiny, 6);
		CHECK(rc < 0 && m == untouched && memchr(tiny, 0, 6) && tiny[6] == 'x',
		      "%s [buffer, err_len 6]: rc %d", file, rc);
		free(buf);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/manifest.tsv", argv[1]);
	FILE *f = fopen(path, "r");
	if (!f) {
		printf("SKIP: %s missing (python3-xgboost not importable at build time)\n", path);
		return QV_TEST_SKIP;
	}
	char line[1024];
	int n_good = 0, n_bad = 0;
	while (fgets(line, sizeof(line), f)) {
		char kind[8], name[256], a[256], b[64], c[64];
		int k = sscanf(line, "%7s\t%255[^\t]\t%255[^\t\n]\t%63[^\t]\t%63[^\t\n]", kind, name, a, b, c);
		if (k == 5 && !strcmp(kind, "good")) {
			test_good(argv[1], name, (uint32_t)atoi(a), (uint32_t)atoi(b), c);
			n_good++;
		} else if (k == 3 && !strcmp(kind, "bad")) {
			test_bad(argv[1], name, a);
			n_bad++;
		} else if (k > 0) {
			CHECK(0, "manifest line: %s", line);
		}
	}
	fclose(f);
	CHECK(n_good > 0 || n_bad > 0, "empty manifest");
	printf("%d good models, %d bad ones, %d failures\n", n_good, n_bad, failures);
	return failures ? 1 : 0;
}
