/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_bad_models - every bad model of tests/models must be refused with a
 * negative errno and a message holding one of the substrings the manifest
 * names (the node, op, tensor or reason), through both load APIs, with
 * ret_model left alone and nothing leaked (CI runs this under ASan).
 * Also: errors into a NULL or tiny buffer, a missing file, and qv_run's
 * row bounds (0 and > max_batch give -EINVAL).
 *
 * usage: test_bad_models MODEL_DIR
 */
#include "qv_model.h"
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static int failures;

#define CHECK(cond, ...)                                         \
	do {                                                     \
		if (!(cond)) {                                   \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);            \
			fputc('\n', stderr);                     \
			failures++;                              \
		}                                                \
	} while (0)

/* A pointer no allocator returns: loads must not write ret_model on failure. */
static qv_model *const untouched = (qv_model *)(uintptr_t)0x5a5a5a50u;

static const struct qv_model_opts hand_opts = { .max_batch = 4, .kernels = QV_KERNEL_HAND, .tune_iters = 0 };

static void check_refused(const struct tu_entry *e, const char *api, int rc, qv_model *m,
			  const char *err, size_t err_len)
{
	CHECK(rc < 0, "%s [%s]: loaded (rc %d), want an error containing '%s'", e->name, api, rc,
	      e->errors);
	if (rc >= 0) {
		if (m != untouched)
			qv_model_free(m);
		return;
	}
	CHECK(rc > -4096, "%s [%s]: rc %d is not a negative errno", e->name, api, rc);
	CHECK(m == untouched, "%s [%s]: ret_model written on failure", e->name, api);
	CHECK(memchr(err, '\0', err_len) != NULL, "%s [%s]: error not NUL-terminated", e->name, api);
	CHECK(err[0] != '\0', "%s [%s]: rc %d with an empty error message", e->name, api, rc);
	/* The file API may prefix the path, which holds the model's name: blank
	 * it out so "bad-conv.onnx" does not pass for "Conv". */
	char msg[QV_ERR_LEN + 1], base[128];
	snprintf(msg, sizeof(msg), "%s", err);
	snprintf(base, sizeof(base), "%s.onnx", e->name);
	for (char *p = strstr(msg, base); p; p = strstr(p, base))
		memset(p, ' ', strlen(base));
	CHECK(tu_contains_any(msg, e->errors), "%s [%s]: error \"%s\" contains none of '%s'", e->name,
	      api, err, e->errors);
}

static void test_bad(const char *dir, const struct tu_entry *e)
{
	char path[4096], err[QV_ERR_LEN];
	qv_model *m = untouched;
	void *buf = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/%s.onnx", dir, e->name);

	memset(err, 'x', sizeof(err));
	int rc = qv_model_load_file(path, NULL, &m, err, sizeof(err));
	check_refused(e, "file", rc, m, err, sizeof(err));
	if (rc < 0 && memchr(err, '\0', sizeof(err)))
		printf("%-28s %4d  %s\n", e->name, rc, err);

	rc = tu_read_file(path, &buf, &len);
	CHECK(rc == 0, "%s: cannot read %s: %s", e->name, path, strerror(-rc));
	if (rc < 0)
		return;

	m = untouched;
	memset(err, 'x', sizeof(err));
	rc = qv_model_load_buffer(buf, len, &hand_opts, &m, err, sizeof(err));
	check_refused(e, "buffer", rc, m, err, sizeof(err));

	/* no message buffer at all */
	m = untouched;
	rc = qv_model_load_buffer(buf, len, NULL, &m, NULL, 0);
	CHECK(rc < 0 && m == untouched, "%s [buffer, err=NULL]: rc %d", e->name, rc);
	if (rc >= 0 && m != untouched)
		qv_model_free(m);

	/* a message buffer too small for the message: truncated, terminated */
	char tiny[8];
	memset(tiny, 'x', sizeof(tiny));
	m = untouched;
	rc = qv_model_load_buffer(buf, len, NULL, &m, tiny, 6);
	CHECK(rc < 0 && m == untouched, "%s [buffer, err_len=6]: rc %d", e->name, rc);
	CHECK(memchr(tiny, '\0', 6) != NULL, "%s [err_len=6]: no NUL within 6 bytes", e->name);
	CHECK(tiny[6] == 'x' && tiny[7] == 'x', "%s [err_len=6]: wrote past err_len", e->name);
	if (rc >= 0 && m != untouched)
		qv_model_free(m);
	free(buf);
}

static void test_missing_file(void)
{
	char err[QV_ERR_LEN] = "";
	qv_model *m = untouched;

	int rc = qv_model_load_file("/nonexistent-dir/model.onnx", NULL, &m, err, sizeof(err));
	CHECK(rc == -ENOENT, "missing file: rc %d, want -ENOENT", rc);
	CHECK(m == untouched, "missing file: ret_model written");
	CHECK(strstr(err, "model.onnx") != NULL, "missing file: error \"%s\" does not name the file", err);

	m = untouched;
	rc = qv_model_load_buffer(NULL, 0, NULL, &m, err, sizeof(err));
	CHECK(rc < 0 && m == untouched, "NULL buffer: rc %d", rc);

	/* A FIFO as the model file: refused at once, not a read that waits for a writer. */
	char dir[] = "/tmp/qv-fifo-XXXXXX", fifo[64];
	if (mkdtemp(dir)) {
		snprintf(fifo, sizeof(fifo), "%s/model.onnx", dir);
		if (mkfifo(fifo, 0600) == 0) {
			m = untouched;
			rc = qv_model_load_file(fifo, NULL, &m, err, sizeof(err));
			CHECK(rc == -EINVAL && m == untouched, "FIFO model: rc %d", rc);
			CHECK(strstr(err, "not a regular file") != NULL, "FIFO model: error \"%s\"", err);
			unlink(fifo);
		}
		rmdir(dir);
	}
}

static void test_row_bounds(const char *dir)
{
	char path[4096], err[QV_ERR_LEN] = "";
	struct qv_model_opts opts = { .max_batch = 8, .kernels = QV_KERNEL_AUTO, .tune_iters = 1 };
	struct qv_model_info info;
	qv_model *m = NULL;
	qv_exec_ctx *ctx = NULL;

	snprintf(path, sizeof(path), "%s/gemm-basic.onnx", dir);
	int rc = qv_model_load_file(path, &opts, &m, err, sizeof(err));
	CHECK(rc == 0, "gemm-basic: load %d: %s", rc, err);
	if (rc < 0)
		return;
	rc = qv_model_get_info(m, &info);
	CHECK(rc == 0 && info.max_batch == 8, "gemm-basic: info rc %d max_batch %u, want 8", rc,
	      info.max_batch);
	rc = qv_exec_ctx_create(m, &ctx);
	CHECK(rc == 0, "gemm-basic: ctx create %d", rc);
	if (rc == 0) {
		float in[16 * 8] = { 0 }, out[16 * 6];
		CHECK(qv_run(ctx, in, 0, out) == -EINVAL, "qv_run rows=0 did not give -EINVAL");
		CHECK(qv_run(ctx, in, 9, out) == -EINVAL, "qv_run rows=9 > max_batch 8 did not give -EINVAL");
		CHECK(qv_run(ctx, in, UINT32_MAX, out) == -EINVAL, "qv_run rows=UINT32_MAX did not give -EINVAL");
		CHECK(qv_run(ctx, in, 8, out) == 0, "qv_run rows=8 == max_batch failed");
		CHECK(qv_run_reference(m, in, 0, out) == -EINVAL, "qv_run_reference rows=0 did not give -EINVAL");
		qv_exec_ctx_free(ctx);
	}
	qv_model_free(m);
}

int main(int argc, char **argv)
{
	struct tu_manifest man;

	if (argc != 2) {
		fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
		return 2;
	}
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
	int n = 0;
	for (size_t i = 0; i < man.n; i++) {
		if (man.e[i].kind != TU_BAD)
			continue;
		test_bad(argv[1], &man.e[i]);
		n++;
	}
	tu_manifest_free(&man);
	CHECK(n > 0, "no bad models in the manifest");
	test_missing_file();
	test_row_bounds(argv[1]);
	printf("%d bad models, %d failures\n", n, failures);
	return failures ? 1 : 0;
}
