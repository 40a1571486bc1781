/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_models - every good model of tests/models against its reference
 * output (numpy or torch, computed by the generator, never by quiver).
 *
 * usage: test_models MODEL_DIR [NAME_SUBSTRING]
 *
 * Each model is loaded three ways (file + AUTO, buffer + oneDNN only,
 * buffer + hand kernels) and run through qv_run on the whole batch, on
 * prefixes of 1, 3, 5, 7 rows, row by row and in chunks read at an offset;
 * qv_run_reference runs too. Two threads with a context each then run the
 * same model at once. Every output buffer carries a guard zone behind it
 * that must come back untouched.
 */
#include "npy.h"
#include "qv_model.h"
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD 16u
#define MAX_REPORT 3
#define THREAD_ITERS 8

static const float sentinel = -1234.5678f;

struct variant {
	const char *label;
	int from_buffer;
	struct qv_model_opts opts;
	uint32_t want_max_batch;
};

/* tune_iters small: the tests check results, not the tuner's choice. */
static const struct variant variants[] = {
	{ "file/auto", 0, { .max_batch = 0, .kernels = QV_KERNEL_AUTO, .tune_iters = 2 }, QV_DEFAULT_MAX_BATCH },
	{ "buffer/onednn/mb100", 1, { .max_batch = 100, .kernels = QV_KERNEL_ONEDNN, .tune_iters = 0 }, 128 },
	{ "buffer/hand/mb64", 1, { .max_batch = 64, .kernels = QV_KERNEL_HAND, .tune_iters = 0 }, 64 },
};

struct ref {
	const struct tu_entry *e;
	struct qv_npy x, y;
	float *x_copy;
	uint32_t rows;
};

static int verbose;
/* Largest |got - want| / tolerance seen by this thread: how close to failing. */
static _Thread_local double worst;

static int compare(const struct ref *r, const char *what, const float *got, uint32_t row0,
		   uint32_t rows)
{
	const uint32_t od = r->e->out_dim;
	int bad = 0;

	for (uint32_t i = 0; i < rows; i++) {
		for (uint32_t c = 0; c < od; c++) {
			double g = got[(size_t)i * od + c];
			double w = r->y.data[(size_t)(row0 + i) * od + c];
			double tol = r->e->atol + r->e->rtol * fabs(w);
			if (isfinite(g) && fabs(g - w) / tol > worst)
				worst = fabs(g - w) / tol;
			if (isfinite(g) && fabs(g - w) <= tol)
				continue;
			if (bad < MAX_REPORT)
				fprintf(stderr,
					"FAIL %s [%s] row %u col %u: got %.9g want %.9g (|diff| %.3g > tol %.3g)\n",
					r->e->name, what, row0 + i, c, g, w, fabs(g - w), tol);
			bad++;
		}
	}
	for (uint32_t i = 0; i < GUARD; i++) {
		if (memcmp(&got[(size_t)rows * od + i], &sentinel, sizeof(float)) != 0) {
			fprintf(stderr, "FAIL %s [%s] rows %u..%u: wrote past rows*out_dim (guard float %u)\n",
				r->e->name, what, row0, row0 + rows - 1, i);
			bad++;
			break;
		}
	}
	if (bad > MAX_REPORT)
		fprintf(stderr, "FAIL %s [%s] rows %u..%u: %d values out of tolerance\n",
			r->e->name, what, row0, row0 + rows - 1, bad);
	return bad;
}

static void fill_sentinel(float *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = sentinel;
}

/* Runs rows [row0, row0 + rows) with the context (or the reference when ctx
 * is NULL) and compares. Returns the number of failures. */
static int run_check(const struct ref *r, const qv_model *m, qv_exec_ctx *ctx, float *out,
		     const char *label, uint32_t row0, uint32_t rows)
{
	char what[128];
	const float *in = r->x.data + (size_t)row0 * r->e->in_dim;

	fill_sentinel(out, (size_t)rows * r->e->out_dim + GUARD);
	int rc = ctx ? qv_run(ctx, in, rows, out) : qv_run_reference(m, in, rows, out);
	snprintf(what, sizeof(what), "%s %s rows=%u@%u", label, ctx ? "qv_run" : "reference", rows, row0);
	if (rc != 0) {
		fprintf(stderr, "FAIL %s [%s]: returned %d (%s)\n", r->e->name, what, rc, strerror(-rc));
		return 1;
	}
	return compare(r, what, out, row0, rows);
}

static int check_shape(const struct ref *r, const char *label, const char *which, uint32_t rank,
		       const int64_t *shape, const struct qv_npy *a)
{
	int bad = 0;

	if (rank != a->rank) {
		fprintf(stderr, "FAIL %s [%s]: %s rank %u, want %u\n", r->e->name, label, which, rank, a->rank);
		return 1;
	}
	if (shape[0] != -1) {
		fprintf(stderr, "FAIL %s [%s]: %s_shape[0] = %lld, want -1 (dynamic batch)\n",
			r->e->name, label, which, (long long)shape[0]);
		bad++;
	}
	for (uint32_t i = 1; i < rank && i < QV_MAX_RANK; i++) {
		if (shape[i] != a->shape[i]) {
			fprintf(stderr, "FAIL %s [%s]: %s_shape[%u] = %lld, want %lld\n", r->e->name,
				label, which, i, (long long)shape[i], (long long)a->shape[i]);
			bad++;
		}
	}
	return bad;
}

static int check_info(const struct ref *r, const struct variant *v, const qv_model *m)
{
	struct qv_model_info info;
	int bad = 0;

	memset(&info, 0, sizeof(info));
	int rc = qv_model_get_info(m, &info);
	if (rc != 0) {
		fprintf(stderr, "FAIL %s [%s]: qv_model_get_info returned %d\n", r->e->name, v->label, rc);
		return 1;
	}
	if (info.in_dim != r->e->in_dim || info.out_dim != r->e->out_dim) {
		fprintf(stderr, "FAIL %s [%s]: in_dim/out_dim %u/%u, want %u/%u\n", r->e->name,
			v->label, info.in_dim, info.out_dim, r->e->in_dim, r->e->out_dim);
		bad++;
	}
	if (info.max_batch != v->want_max_batch) {
		fprintf(stderr, "FAIL %s [%s]: max_batch %u, want %u\n", r->e->name, v->label,
			info.max_batch, v->want_max_batch);
		bad++;
	}
	bad += check_shape(r, v->label, "in", info.in_rank, info.in_shape, &r->x);
	bad += check_shape(r, v->label, "out", info.out_rank, info.out_shape, &r->y);
	if (r->e->max_steps && info.n_steps > r->e->max_steps) {
		fprintf(stderr, "FAIL %s [%s]: plan has %u steps, want at most %u (not fused/folded)\n",
			r->e->name, v->label, info.n_steps, r->e->max_steps);
		bad++;
	}
	if (memchr(info.in_name, '\0', sizeof(info.in_name)) == NULL ||
	    memchr(info.out_name, '\0', sizeof(info.out_name)) == NULL) {
		fprintf(stderr, "FAIL %s [%s]: in_name/out_name not NUL-terminated\n", r->e->name, v->label);
		bad++;
	}

	char desc[8192];
	rc = qv_model_describe(m, desc, sizeof(desc));
	if (rc < 0) {
		fprintf(stderr, "FAIL %s [%s]: qv_model_describe returned %d\n", r->e->name, v->label, rc);
		bad++;
	} else if (verbose) {
		printf("%s [%s]: %u steps\n%s\n", r->e->name, v->label, info.n_steps, desc);
	}
	return bad;
}

/* Batch sizes off the power-of-two buckets, and across bucket edges. */
static const uint32_t prefixes[] = { 1, 3, 5, 7, 33, 100, 255 };

/* After this many failing runs of one loaded model the rest are skipped:
 * the first few say what is wrong, hundreds more only bury it. */
#define MAX_FAILED_RUNS 3

static int run_all(const struct ref *r, const qv_model *m, qv_exec_ctx *ctx, const char *label,
		   uint32_t max_batch, float *out)
{
	int bad = 0, failed_runs = 0;

	if (r->rows <= max_batch) {
		int b = run_check(r, m, ctx, out, label, 0, r->rows);
		bad += b;
		failed_runs += b != 0;
	}
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]) && failed_runs < MAX_FAILED_RUNS; i++) {
		if (prefixes[i] <= r->rows && prefixes[i] <= max_batch) {
			int b = run_check(r, m, ctx, out, label, 0, prefixes[i]);
			bad += b;
			failed_runs += b != 0;
		}
	}
	/* input read in place at an offset, odd chunk sizes */
	for (uint32_t row0 = 0; row0 + 5 <= r->rows && 5 <= max_batch && failed_runs < MAX_FAILED_RUNS;
	     row0 += 5) {
		int b = run_check(r, m, ctx, out, label, row0, 5);
		bad += b;
		failed_runs += b != 0;
	}
	for (uint32_t row0 = 0; row0 < r->rows && failed_runs < MAX_FAILED_RUNS; row0++) {
		int b = run_check(r, m, ctx, out, label, row0, 1);
		bad += b;
		failed_runs += b != 0;
	}
	return bad;
}

static int load(const struct ref *r, const struct variant *v, const char *path, qv_model **ret)
{
	char err[QV_ERR_LEN] = "";
	int rc;

	if (v->from_buffer) {
		void *buf;
		size_t len;
		rc = tu_read_file(path, &buf, &len);
		if (rc < 0) {
			fprintf(stderr, "FAIL %s: cannot read %s: %s\n", r->e->name, path, strerror(-rc));
			return rc;
		}
		rc = qv_model_load_buffer(buf, len, &v->opts, ret, err, sizeof(err));
		free(buf);
	} else {
		rc = qv_model_load_file(path, &v->opts, ret, err, sizeof(err));
	}
	if (rc < 0)
		fprintf(stderr, "FAIL %s [%s]: load returned %d (%s): %s\n", r->e->name, v->label, rc,
			strerror(-rc), err);
	return rc;
}

struct thread_arg {
	const struct ref *r;
	const qv_model *m;
	int mode;  /* 0: whole batch; 1: row by row and 3-row chunks */
	int bad;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	const struct ref *r = a->r;
	qv_exec_ctx *ctx = NULL;
	float *out = malloc(((size_t)r->rows * r->e->out_dim + GUARD) * sizeof(float));
	int rc = out ? qv_exec_ctx_create(a->m, &ctx) : -ENOMEM;

	if (rc < 0) {
		fprintf(stderr, "FAIL %s [thread %d]: ctx create %d\n", r->e->name, a->mode, rc);
		a->bad++;
		free(out);
		return NULL;
	}
	for (int it = 0; it < THREAD_ITERS && a->bad == 0; it++) {
		if (a->mode == 0) {
			uint32_t rows = r->rows < QV_DEFAULT_MAX_BATCH ? r->rows : QV_DEFAULT_MAX_BATCH;
			a->bad += run_check(r, a->m, ctx, out, "thread0", 0, rows);
		} else {
			for (uint32_t row0 = 0; row0 < r->rows && a->bad == 0; row0++)
				a->bad += run_check(r, a->m, ctx, out, "thread1", row0, 1);
			for (uint32_t row0 = 0; row0 + 3 <= r->rows && a->bad == 0; row0 += 3)
				a->bad += run_check(r, a->m, ctx, out, "thread1", row0, 3);
		}
	}
	qv_exec_ctx_free(ctx);
	free(out);
	return NULL;
}

static int run_threads(const struct ref *r, const qv_model *m)
{
	struct thread_arg a[2] = { { r, m, 0, 0 }, { r, m, 1, 0 } };
	pthread_t t[2];
	int started = 0, bad = 0;

	for (int i = 0; i < 2; i++) {
		if (pthread_create(&t[i], NULL, thread_main, &a[i]) != 0) {
			fprintf(stderr, "FAIL %s: pthread_create\n", r->e->name);
			bad++;
			break;
		}
		started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(t[i], NULL);
		bad += a[i].bad;
	}
	return bad;
}

static int read_ref(const char *dir, const struct tu_entry *e, struct ref *r)
{
	char path[4096], err[256] = "";

	memset(r, 0, sizeof(*r));
	r->e = e;
	snprintf(path, sizeof(path), "%s/%s.x.npy", dir, e->name);
	int rc = qv_npy_read(path, &r->x, err, sizeof(err));
	if (rc == 0) {
		snprintf(path, sizeof(path), "%s/%s.y.npy", dir, e->name);
		rc = qv_npy_read(path, &r->y, err, sizeof(err));
		if (rc < 0)
			qv_npy_free(&r->x);
	}
	if (rc < 0) {
		fprintf(stderr, "FAIL %s: %s: %s\n", e->name, path, err);
		return rc;
	}
	if (r->x.rank < 2 || r->y.rank < 2 || r->x.shape[0] != r->y.shape[0] ||
	    r->x.count != (size_t)r->x.shape[0] * e->in_dim ||
	    r->y.count != (size_t)r->y.shape[0] * e->out_dim) {
		fprintf(stderr, "FAIL %s: x/y .npy shapes do not match the manifest\n", e->name);
		qv_npy_free(&r->x);
		qv_npy_free(&r->y);
		return -EINVAL;
	}
	r->rows = (uint32_t)r->x.shape[0];
	r->x_copy = malloc(r->x.count * sizeof(float));
	if (!r->x_copy) {
		qv_npy_free(&r->x);
		qv_npy_free(&r->y);
		return -ENOMEM;
	}
	memcpy(r->x_copy, r->x.data, r->x.count * sizeof(float));
	return 0;
}

/* Returns the number of failures for this model. */
static int test_model(const char *dir, const struct tu_entry *e)
{
	char path[4096];
	struct ref r;
	int bad = 0;

	if (read_ref(dir, e, &r) < 0)
		return 1;
	snprintf(path, sizeof(path), "%s/%s.onnx", dir, e->name);
	float *out = malloc(((size_t)r.rows * e->out_dim + GUARD) * sizeof(float));
	if (!out) {
		bad++;
		goto out;
	}
	for (size_t vi = 0; vi < sizeof(variants) / sizeof(variants[0]); vi++) {
		const struct variant *v = &variants[vi];
		qv_model *m = NULL;
		qv_exec_ctx *ctx = NULL;

		if (load(&r, v, path, &m) < 0) {
			bad++;
			continue;
		}
		bad += check_info(&r, v, m);
		int rc = qv_exec_ctx_create(m, &ctx);
		if (rc < 0) {
			fprintf(stderr, "FAIL %s [%s]: qv_exec_ctx_create returned %d\n", e->name, v->label, rc);
			bad++;
		} else {
			bad += run_all(&r, m, ctx, v->label, v->want_max_batch, out);
			qv_exec_ctx_free(ctx);
		}
		if (vi == 0) {
			bad += run_all(&r, m, NULL, v->label, r.rows, out);
			bad += run_threads(&r, m);
		}
		qv_model_free(m);
	}
	/* the input is read in place and must never be written */
	if (memcmp(r.x.data, r.x_copy, r.x.count * sizeof(float)) != 0) {
		fprintf(stderr, "FAIL %s: the input buffer was modified\n", e->name);
		bad++;
	}
out:
	free(out);
	free(r.x_copy);
	qv_npy_free(&r.x);
	qv_npy_free(&r.y);
	return bad;
}

int main(int argc, char **argv)
{
	struct tu_manifest man;

	if (argc < 2) {
		fprintf(stderr, "usage: %s MODEL_DIR [NAME_SUBSTRING]\n", argv[0]);
		return 2;
	}
	verbose = getenv("QV_TEST_VERBOSE") != NULL;
	int rc = tu_manifest_read(argv[1], &man);
	if (rc == -ENOENT) {
		printf("SKIP: no %s/manifest.tsv (test models not generated: needs /usr/bin/python3 "
		       "with onnx, numpy and torch)\n", argv[1]);
		return QV_TEST_SKIP;
	}
	if (rc < 0) {
		fprintf(stderr, "cannot read manifest in %s: %s\n", argv[1], strerror(-rc));
		return 1;
	}

	int models = 0, failed = 0;
	for (size_t i = 0; i < man.n; i++) {
		const struct tu_entry *e = &man.e[i];
		if (e->kind != TU_GOOD || (argc > 2 && !strstr(e->name, argv[2])))
			continue;
		models++;
		worst = 0;
		int bad = test_model(argv[1], e);
		printf("%-36s %-4s max |err|/tol %.3f\n", e->name, bad ? "FAIL" : "ok", worst);
		fflush(stdout);
		if (bad)
			failed++;
	}
	tu_manifest_free(&man);
	printf("%d models, %d failed\n", models, failed);
	if (models == 0) {
		fprintf(stderr, "no model matched\n");
		return 1;
	}
	return failed ? 1 : 0;
}
