/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_named - ensembles wired by named, typed tensors (gen_named.py)
 * against the composition torch computed in float64: a float tower feeding
 * a head that also reads the int64 ensemble input $user_id through an
 * embedding and, like the tower, the ensemble input $dense; two named
 * outputs; a gated head. Run per tensor (qv_run_tensors) and in packed
 * rows (qv_run), at 64 rows, in chunks of 3 and one row at a time, and
 * through qv_run_reference; the copies counted; an out-of-range id; and
 * every kind of bad wiring refused with a message naming the step.
 *
 * usage: test_named GEN_DIR
 */
#include "npy.h"
#include "qv_model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SKIP 77
#define ROWS 64u
#define RTOL 1e-4
#define ATOL 1e-5
#define GUARD 16u

static int failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                      \
			fprintf(stderr, "\n");                             \
			failures++;                                        \
		}                                                          \
	} while (0)

static qv_model *tower, *gate, *head;
static struct qv_npy dense, uid, ref_score, ref_feat, ref_gated;
static const float sentinel = -1234.5f;

static int read_npy(const char *dir, const char *name, struct qv_npy *a)
{
	char path[4096], err[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int r = qv_npy_read_typed(path, a, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "%s: %s\n", path, err);
	return r;
}

static qv_model *load(const char *dir, const char *name)
{
	char path[4096], err[QV_ERR_LEN];
	snprintf(path, sizeof(path), "%s/%s.onnx", dir, name);
	struct qv_model_opts o = { .max_batch = ROWS, .tune_iters = 1 };
	qv_model *m = NULL;
	int r = qv_model_load_file(path, &o, &m, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", path, err);
		exit(1);
	}
	return m;
}

static void check_close(const char *what, const float *got, const float *want, size_t n)
{
	size_t bad = 0, first = 0;
	for (size_t i = 0; i < n; i++)
		if (!(fabs((double)got[i] - want[i]) <= ATOL + RTOL * fabs((double)want[i])) && !bad++)
			first = i;
	CHECK(!bad, "%s: %zu of %zu values off, first [%zu] %g want %g", what, bad, n, first,
	      (double)got[first], (double)want[first]);
}

static void check_guard(const char *what, const float *g)
{
	for (uint32_t i = 0; i < GUARD; i++)
		CHECK(g[i] == sentinel, "%s: wrote past the output", what);
}

static float *guarded(size_t n)
{
	float *p = malloc((n + GUARD) * sizeof(float));
	for (size_t i = 0; i < n + GUARD; i++)
		p[i] = sentinel;
	return p;
}

/* The two-output ensemble: tower {x: $dense}; head {dense: tower.h, uid: $user_id, x: $dense}. */
static const struct qv_ensemble_bind tower_b[] = { { "x", "$dense" } };
static const struct qv_ensemble_bind head_b[] = { { "dense", "tower.h" }, { "uid", "$user_id" },
						  { "x", "$dense" } };
static const struct qv_ensemble_output two_out[] = { { "score", "head.prob" }, { "feat", "tower.h" } };

static int make(struct qv_ensemble_step *s, uint32_t n, const struct qv_ensemble_output *o,
		uint32_t no, qv_model **ret, char *err)
{
	struct qv_ensemble_desc d = { .name = "named", .n_steps = n, .steps = s, .n_outputs = no,
				      .outputs = o };
	return qv_ensemble_create(&d, ret, err, QV_ERR_LEN);
}

static void test_info(const qv_model *e)
{
	struct qv_tensor_info t;
	struct qv_model_info inf;
	CHECK(qv_model_get_info(e, &inf) == 0 && inf.n_inputs == 2 && inf.n_outputs == 2,
	      "2 inputs and 2 outputs");
	CHECK(inf.in_dim == 8 + 2 && inf.out_dim == 1 + 6, "packed words %u / %u", inf.in_dim, inf.out_dim);
	CHECK(qv_model_tensor(e, 0, 0, &t) == 0 && strcmp(t.name, "dense") == 0 && t.dtype == QV_DT_F32 &&
	      t.row_elems == 8 && t.packed_off == 0, "input 0 is dense float32 [8]");
	CHECK(qv_model_tensor(e, 0, 1, &t) == 0 && strcmp(t.name, "user_id") == 0 && t.dtype == QV_DT_I64 &&
	      t.row_elems == 1 && t.packed_off == 32 && t.index_bound == 30,
	      "input 1 is user_id int64, bound 30 (got %s %s bound %lld)", t.name, qv_dtype_name(t.dtype),
	      (long long)t.index_bound);
	CHECK(qv_model_tensor(e, 1, 0, &t) == 0 && strcmp(t.name, "score") == 0 && t.row_elems == 1,
	      "output 0 is score");
	CHECK(qv_model_tensor(e, 1, 1, &t) == 0 && strcmp(t.name, "feat") == 0 && t.row_elems == 6 &&
	      t.packed_off == 4, "output 1 is feat");
	CHECK(qv_model_tensor(e, 0, 2, &t) == -ENOENT, "no third input");
	CHECK(qv_model_is_ensemble(e), "is an ensemble");
	char buf[2048];
	CHECK(qv_model_describe(e, buf, sizeof(buf)) == 0 && strstr(buf, "uid<-$user_id") &&
	      strstr(buf, "dense<-tower.h"), "describe: %s", buf);
}

/* Per tensor: 64 rows, chunks of 3, single rows. Nothing copied. */
static void test_tensors(const qv_model *e)
{
	qv_exec_ctx *c;
	CHECK(qv_exec_ctx_create(e, &c) == 0, "ctx");
	float *score = guarded(ROWS), *feat = guarded(ROWS * 6);
	const uint32_t steps[] = { ROWS, 3, 1 };
	for (uint32_t k = 0; k < 3; k++) {
		for (uint32_t r0 = 0; r0 < ROWS; r0 += steps[k]) {
			uint32_t n = ROWS - r0 < steps[k] ? ROWS - r0 : steps[k];
			const void *in[2] = { dense.data + r0 * 8, (const int64_t *)uid.raw + r0 };
			void *out[2] = { score + r0, feat + r0 * 6 };
			int r = qv_run_tensors(c, n, in, out);
			CHECK(r == 0, "run_tensors rows %u: %d", n, r);
		}
		char what[64];
		snprintf(what, sizeof(what), "tensors, %u rows a run: score", steps[k]);
		check_close(what, score, ref_score.data, ROWS);
		snprintf(what, sizeof(what), "tensors, %u rows a run: feat", steps[k]);
		check_close(what, feat, ref_feat.data, ROWS * 6);
		check_guard(what, score + ROWS);
		check_guard(what, feat + ROWS * 6);
		memset(score, 0, ROWS * sizeof(float));
		memset(feat, 0, ROWS * 6 * sizeof(float));
	}
	CHECK(qv_ensemble_copy_bytes(c) == 0, "per tensor, nothing is copied (%llu bytes)",
	      (unsigned long long)qv_ensemble_copy_bytes(c));
	/* the last run was row 63: head read tower.h where tower wrote it, the caller's feat */
	const float *hin, *hout, *tin, *tout;
	CHECK(qv_ensemble_step_io(c, "head", &hin, &hout) == 0 &&
	      qv_ensemble_step_io(c, "tower", &tin, &tout) == 0, "step io");
	CHECK(tout == feat + 63 * 6 && hin == tout, "tower writes feat in place and head reads it there");
	CHECK(hout == score + 63, "head writes score in place");
	CHECK(tin == dense.data + 63 * 8, "tower reads $dense in place");

	/* an id outside the embedding table: -ERANGE from the head propagates */
	int64_t bad_ids[2] = { 3, 30 };
	const void *in[2] = { dense.data, bad_ids };
	void *out[2] = { score, feat };
	CHECK(qv_run_tensors(c, 2, in, out) == -ERANGE, "id 30 of 30: -ERANGE");
	CHECK(qv_run_tensors(c, 0, in, out) == -EINVAL, "0 rows: -EINVAL");
	CHECK(qv_run_tensors(c, ROWS + 1, in, out) == -EINVAL, "too many rows: -EINVAL");
	qv_exec_ctx_free(c);
	free(score);
	free(feat);
}

/* Packed rows: [dense 8 floats | user_id int64] -> [score | feat 6]. */
static void test_packed(const qv_model *e)
{
	const uint32_t iw = 10, ow = 7;
	float *in = calloc(ROWS * iw, sizeof(float)), *out = guarded(ROWS * ow);
	float *score = malloc(ROWS * sizeof(float)), *feat = malloc(ROWS * 6 * sizeof(float));
	for (uint32_t r = 0; r < ROWS; r++) {
		memcpy(in + r * iw, dense.data + r * 8, 32);
		memcpy(in + r * iw + 8, (const int64_t *)uid.raw + r, 8);
	}
	qv_exec_ctx *c;
	CHECK(qv_exec_ctx_create(e, &c) == 0, "ctx");
	const uint32_t steps[] = { ROWS, 3, 1, 0 };
	for (uint32_t k = 0; k < 4; k++) {
		uint64_t before = qv_ensemble_copy_bytes(c), expect = 0;
		if (steps[k]) {
			for (uint32_t r0 = 0; r0 < ROWS; r0 += steps[k]) {
				uint32_t n = ROWS - r0 < steps[k] ? ROWS - r0 : steps[k];
				CHECK(qv_run(c, in + r0 * iw, n, out + r0 * ow) == 0, "run %u rows", n);
				if (n > 1)  /* de-interleave dense + user_id, interleave score + feat */
					expect += (uint64_t)n * (32 + 8 + 4 + 24);
			}
		} else {
			CHECK(qv_run_reference(e, in, ROWS, out) == 0, "reference");
		}
		CHECK(qv_ensemble_copy_bytes(c) - before == expect, "%u rows a run: copied %llu, expected %llu",
		      steps[k], (unsigned long long)(qv_ensemble_copy_bytes(c) - before),
		      (unsigned long long)expect);
		for (uint32_t r = 0; r < ROWS; r++) {
			score[r] = out[r * ow];
			memcpy(feat + r * 6, out + r * ow + 1, 24);
		}
		char what[64];
		snprintf(what, sizeof(what), "packed, %u rows a run (0: reference): score", steps[k]);
		check_close(what, score, ref_score.data, ROWS);
		check_close(what, feat, ref_feat.data, ROWS * 6);
		check_guard(what, out + ROWS * ow);
		memset(out, 0, ROWS * ow * sizeof(float));
	}
	qv_exec_ctx_free(c);
	free(in);
	free(out);
	free(score);
	free(feat);
}

/* No outputs named: the last step's (prob, logit) under their own names. */
static void test_default_outputs(void)
{
	struct qv_ensemble_step s[2] = { { .name = "tower", .model = tower, .n_binds = 1, .binds = tower_b },
					 { .name = "head", .model = head, .n_binds = 3, .binds = head_b } };
	char err[QV_ERR_LEN];
	qv_model *e = NULL;
	int r = make(s, 2, NULL, 0, &e, err);
	CHECK(r == 0, "default outputs: %s", err);
	if (r)
		return;
	struct qv_tensor_info t0, t1;
	CHECK(qv_model_tensor(e, 1, 0, &t0) == 0 && qv_model_tensor(e, 1, 1, &t1) == 0 &&
	      strcmp(t0.name, "prob") == 0 && strcmp(t1.name, "logit") == 0, "outputs prob, logit");
	qv_exec_ctx *c;
	float *prob = guarded(ROWS), *logit = guarded(ROWS);
	CHECK(qv_exec_ctx_create(e, &c) == 0, "ctx");
	const void *in[2] = { dense.data, uid.raw };
	void *out[2] = { prob, logit };
	CHECK(qv_run_tensors(c, ROWS, in, out) == 0, "run");
	check_close("default outputs: prob", prob, ref_score.data, ROWS);
	for (uint32_t i = 0; i < ROWS; i++)  /* sigmoid(logit) is prob: logit is really head's */
		CHECK(fabs(1.0 / (1.0 + exp(-(double)logit[i])) - prob[i]) < 1e-5, "logit row %u", i);
	check_guard("prob", prob + ROWS);
	check_guard("logit", logit + ROWS);
	qv_exec_ctx_free(c);
	qv_model_free(e);
	free(prob);
	free(logit);
}

/* head gated by gate(dense) >= 0.5, else -1; the same output given out twice (one copy). */
static void test_gated(void)
{
	static const struct qv_ensemble_bind gate_b[] = { { "x", "$dense" } };
	static const struct qv_ensemble_output outs[] = { { "score", "head.prob" }, { "again", "head.prob" } };
	struct qv_ensemble_step s[3] = {
		{ .name = "g", .model = gate, .n_binds = 1, .binds = gate_b },
		{ .name = "tower", .model = tower, .n_binds = 1, .binds = tower_b },
		{ .name = "head", .model = head, .n_binds = 3, .binds = head_b,
		  .gate = { .op = QV_GATE_GE, .step = "g", .threshold = 0.5f, .else_value = -1.0f } } };
	char err[QV_ERR_LEN];
	qv_model *e = NULL;
	int r = make(s, 3, outs, 2, &e, err);
	CHECK(r == 0, "gated: %s", err);
	if (r)
		return;
	qv_exec_ctx *c;
	CHECK(qv_exec_ctx_create(e, &c) == 0, "ctx");
	float *score = guarded(ROWS), *again = guarded(ROWS), *packed = guarded(ROWS * 2);
	float *in = calloc(ROWS * 10, sizeof(float));
	for (uint32_t i = 0; i < ROWS; i++) {
		memcpy(in + i * 10, dense.data + i * 8, 32);
		memcpy(in + i * 10 + 8, (const int64_t *)uid.raw + i, 8);
	}
	const uint32_t steps[] = { ROWS, 3, 1 };
	for (uint32_t k = 0; k < 3; k++) {
		uint64_t before = qv_ensemble_copy_bytes(c);
		for (uint32_t r0 = 0; r0 < ROWS; r0 += steps[k]) {
			uint32_t n = ROWS - r0 < steps[k] ? ROWS - r0 : steps[k];
			const void *ti[2] = { dense.data + r0 * 8, (const int64_t *)uid.raw + r0 };
			void *to[2] = { score + r0, again + r0 };
			CHECK(qv_run_tensors(c, n, ti, to) == 0, "gated run %u rows", n);
		}
		CHECK(qv_ensemble_copy_bytes(c) - before == ROWS * 4, "the second name of head.prob is one copy");
		check_close("gated: score", score, ref_gated.data, ROWS);
		check_close("gated: again", again, ref_gated.data, ROWS);
		check_guard("gated score", score + ROWS);
		check_guard("gated again", again + ROWS);
	}
	CHECK(qv_run(c, in, ROWS, packed) == 0, "gated packed");
	for (uint32_t i = 0; i < ROWS; i++) {
		score[i] = packed[2 * i];
		again[i] = packed[2 * i + 1];
	}
	check_close("gated packed: score", score, ref_gated.data, ROWS);
	check_close("gated packed: again", again, ref_gated.data, ROWS);
	CHECK(qv_run_reference(e, in, ROWS, packed) == 0, "gated reference");
	for (uint32_t i = 0; i < ROWS; i++)
		score[i] = packed[2 * i];
	check_close("gated reference", score, ref_gated.data, ROWS);
	check_guard("gated packed", packed + ROWS * 2);
	qv_exec_ctx_free(c);
	qv_model_free(e);
	free(score);
	free(again);
	free(packed);
	free(in);
}

struct bad {
	const char *label;
	struct qv_ensemble_step s[3];
	uint32_t n;
	const struct qv_ensemble_output *out;
	uint32_t n_out;
	const char *want[2];   /* substrings of the message */
};

static void test_bad(void)
{
	static const struct qv_ensemble_bind unk_step[] = { { "dense", "nope.h" }, { "uid", "$user_id" }, { "x", "$dense" } };
	static const struct qv_ensemble_bind unk_t[] = { { "dense", "tower.zz" }, { "uid", "$user_id" }, { "x", "$dense" } };
	static const struct qv_ensemble_bind multi[] = { { "dense", "tower" }, { "uid", "$user_id" }, { "x", "$dense" } };
	static const struct qv_ensemble_bind dtype[] = { { "dense", "tower.h" }, { "uid", "tower.s" }, { "x", "$dense" } };
	static const struct qv_ensemble_bind shape[] = { { "dense", "$dense" }, { "uid", "$user_id" }, { "x", "$dense" } };
	static const struct qv_ensemble_bind missing[] = { { "dense", "tower.h" }, { "x", "$dense" } };
	static const struct qv_ensemble_bind twice[] = { { "dense", "tower.h" }, { "dense", "tower.h" }, { "x", "$dense" } };
	static const struct qv_ensemble_bind unk_in[] = { { "foo", "$dense" } };
	static const struct qv_ensemble_bind gate_b[] = { { "x", "$dense" } };
	static const struct qv_ensemble_output bad_out[] = { { "score", "head.nope" } };
	static const struct qv_ensemble_output dup_out[] = { { "s", "head.prob" }, { "s", "head.logit" } };
#define TOWER { .name = "tower", .model = tower, .n_binds = 1, .binds = tower_b }
#define HEAD(b, n) { .name = "head", .model = head, .n_binds = n, .binds = b }
	const struct bad bads[] = {
		{ "unknown step", { TOWER, HEAD(unk_step, 3) }, 2, NULL, 0, { "step 'head'", "'nope.h' is not a step" } },
		{ "unknown tensor", { TOWER, HEAD(unk_t, 3) }, 2, NULL, 0, { "step 'head'", "no such output tensor" } },
		{ "two outputs, no tensor named", { TOWER, HEAD(multi, 3) }, 2, NULL, 0, { "step 'head'", "has 2 outputs" } },
		{ "dtype mismatch", { TOWER, HEAD(dtype, 3) }, 2, NULL, 0, { "step 'head'", "int64" } },
		{ "ensemble input used as two shapes", { TOWER, HEAD(shape, 3) }, 2, NULL, 0, { "step 'tower'", "step 'head'" } },
		{ "missing binding", { TOWER, HEAD(missing, 2) }, 2, NULL, 0, { "step 'head'", "'uid' is bound to nothing" } },
		{ "bound twice", { TOWER, HEAD(twice, 3) }, 2, NULL, 0, { "step 'head'", "bound twice" } },
		{ "unknown input tensor", { { .name = "tower", .model = tower, .n_binds = 1, .binds = unk_in } }, 1, NULL, 0,
		  { "step 'tower'", "no input tensor 'foo'" } },
		{ "unused step", { { .name = "g", .model = gate, .n_binds = 1, .binds = gate_b }, TOWER, HEAD(head_b, 3) }, 3,
		  NULL, 0, { "step 'g'", "read by no step" } },
		{ "cycle", { { .name = "g1", .model = gate, .n_binds = 1, .binds = gate_b,
				.gate = { .op = QV_GATE_GE, .step = "g2", .threshold = 0.5f } },
			      { .name = "g2", .model = gate, .n_binds = 1, .binds = gate_b,
				.gate = { .op = QV_GATE_GE, .step = "g1", .threshold = 0.5f } } }, 2,
		  NULL, 0, { "step 'g1'", "cycle" } },
		{ "gate of two outputs", { TOWER, { .name = "head", .model = head, .n_binds = 3, .binds = head_b,
						   .gate = { .op = QV_GATE_GE, .step = "tower" } } }, 2, NULL, 0,
		  { "step 'head'", "gate 'tower'" } },
		{ "positional inputs mixed in", { TOWER, { .name = "head", .model = head, .n_binds = 3, .binds = head_b,
							   .n_inputs = 1, .inputs = { "tower" } } }, 2, NULL, 0,
		  { "step 'head'", "positional" } },
		{ "unknown output tensor", { TOWER, HEAD(head_b, 3) }, 2, bad_out, 1, { "output 'score'", "no such output tensor" } },
		{ "output named twice", { TOWER, HEAD(head_b, 3) }, 2, dup_out, 2, { "output 's'", "twice" } },
		{ "gated by itself", { { .name = "g", .model = gate, .n_binds = 1, .binds = gate_b,
					 .gate = { .op = QV_GATE_LT, .step = "g", .threshold = 0.5f } } }, 1,
		  NULL, 0, { "step 'g'", "cycle" } },
	};
#undef TOWER
#undef HEAD
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];
		char err[QV_ERR_LEN] = "";
		qv_model *e = (qv_model *)(uintptr_t)0x1;
		int r = make((struct qv_ensemble_step *)(uintptr_t)b->s, b->n, b->out, b->n_out, &e, err);
		CHECK(r == -EINVAL, "%s: returned %d (%s)", b->label, r, err);
		CHECK(e == (qv_model *)(uintptr_t)0x1, "%s: ret_model written on failure", b->label);
		for (int k = 0; k < 2; k++)
			CHECK(strstr(err, b->want[k]), "%s: message \"%s\" lacks \"%s\"", b->label, err, b->want[k]);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_named GEN_DIR\n");
		return 2;
	}
	const char *dir = argv[1];
	char stamp[4096];
	snprintf(stamp, sizeof(stamp), "%s/named.stamp", dir);
	FILE *f = fopen(stamp, "r");
	if (!f) {
		fprintf(stderr, "no generated models in %s (python3-torch/onnx missing?): skip\n", dir);
		return SKIP;
	}
	fclose(f);
	if (read_npy(dir, "named.in.dense.npy", &dense) || read_npy(dir, "named.in.user_id.npy", &uid) ||
	    read_npy(dir, "named.score.npy", &ref_score) || read_npy(dir, "named.feat.npy", &ref_feat) ||
	    read_npy(dir, "gated.score.npy", &ref_gated))
		return 1;
	if (uid.dtype != QV_NPY_I64 || dense.count != ROWS * 8 || uid.count != ROWS) {
		fprintf(stderr, "unexpected generated inputs\n");
		return 1;
	}
	tower = load(dir, "named_tower");
	gate = load(dir, "named_gate");
	head = load(dir, "named_head");

	struct qv_ensemble_step s[2] = { { .name = "tower", .model = tower, .n_binds = 1, .binds = tower_b },
					 { .name = "head", .model = head, .n_binds = 3, .binds = head_b } };
	char err[QV_ERR_LEN];
	qv_model *e = NULL;
	int r = make(s, 2, two_out, 2, &e, err);
	CHECK(r == 0, "create: %s", err);
	if (r == 0) {
		test_info(e);
		test_tensors(e);
		test_packed(e);
		qv_model_free(e);
	}
	test_default_outputs();
	test_gated();
	test_bad();

	qv_model_free(tower);
	qv_model_free(gate);
	qv_model_free(head);
	qv_npy_free(&dense);
	qv_npy_free(&uid);
	qv_npy_free(&ref_score);
	qv_npy_free(&ref_feat);
	qv_npy_free(&ref_gated);
	if (failures)
		fprintf(stderr, "%d failures\n", failures);
	else
		printf("named ensembles: all checks passed\n");
	return failures ? 1 : 0;
}
