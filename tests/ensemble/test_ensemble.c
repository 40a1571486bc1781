/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ensemble - ensembles of generated step models (gen_ensemble.py)
 * against the composition computed by numpy, the no-copy layout of
 * intermediates, and every kind of invalid wiring.
 *
 * usage: test_ensemble GEN_DIR
 *
 * Each ensemble runs through qv_run and qv_run_reference at 1 row (every
 * row on its own), 3 rows (chunks of 3, then the remainder) and 64 rows;
 * every output buffer has a guard zone behind it that must stay untouched.
 */
#include "npy.h"
#include "qv_model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SKIP 77
#define GUARD 16u
#define RTOL 1e-4
#define ATOL 1e-5

static const float sentinel = -1234.5678f;
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

enum { M_CHAIN_A, M_CHAIN_B, M_TOWER_A, M_TOWER_B, M_HEAD, M_GATE, M_EXPERT, M_N };
static const char *const model_names[M_N] = { "chain_a", "chain_b", "tower_a", "tower_b",
					      "head", "gate", "expert" };
static qv_model *models[M_N];
static struct qv_npy x;

static struct qv_ensemble_step step(const char *name, int mi)
{
	struct qv_ensemble_step s;
	memset(&s, 0, sizeof(s));
	s.name = name;
	s.model = mi >= 0 ? models[mi] : NULL;
	return s;
}

static struct qv_ensemble_step step_in(const char *name, int mi, const char *in0, const char *in1)
{
	struct qv_ensemble_step s = step(name, mi);
	s.inputs[0] = in0;
	s.inputs[1] = in1;
	s.n_inputs = in1 ? 2 : 1;
	return s;
}

static struct qv_ensemble_gate gate(enum qv_gate_op op, const char *by)
{
	return (struct qv_ensemble_gate){ op, by, 0.5f, -1.0f };
}

/* ---- the good ensembles ---- */

struct ens {
	const char *name;  /* also the reference file NAME.y.npy */
	struct qv_ensemble_step steps[5];
	uint32_t n;
	uint32_t in_dim, out_dim;
	const char *output;  /* NULL: the last step listed */
};

static void build_good(struct ens *e, uint32_t *ret_n)
{
	uint32_t n = 0;
	e[n] = (struct ens){ .name = "chain", .n = 2, .in_dim = 16, .out_dim = 4 };
	e[n].steps[0] = step("a", M_CHAIN_A);
	e[n].steps[1] = step_in("b", M_CHAIN_B, "a", NULL);
	n++;
	e[n] = (struct ens){ .name = "fanin", .n = 3, .in_dim = 16, .out_dim = 3 };
	e[n].steps[0] = step("ta", M_TOWER_A);
	e[n].steps[1] = step("tb", M_TOWER_B);
	e[n].steps[2] = step_in("head", M_HEAD, "ta", "tb");
	n++;
	e[n] = (struct ens){ .name = "gate_ge", .n = 2, .in_dim = 16, .out_dim = 2 };
	e[n].steps[0] = step("g", M_GATE);
	e[n].steps[1] = step("expert", M_EXPERT);
	e[n].steps[1].gate = gate(QV_GATE_GE, "g");
	n++;
	e[n] = (struct ens){ .name = "gate_lt", .n = 2, .in_dim = 16, .out_dim = 2 };
	e[n].steps[0] = step("g", M_GATE);
	e[n].steps[1] = step_in("expert", M_EXPERT, QV_ENS_INPUT, NULL);
	e[n].steps[1].gate = gate(QV_GATE_LT, "g");
	n++;
	/* listed out of order on purpose: create must sort the steps */
	e[n] = (struct ens){ .name = "fanin_gated", .n = 4, .in_dim = 16, .out_dim = 3,
			     .output = "head" };
	e[n].steps[0] = step_in("head", M_HEAD, "ta", "tb");
	e[n].steps[0].gate = gate(QV_GATE_GE, "g");
	e[n].steps[1] = step("tb", M_TOWER_B);
	e[n].steps[2] = step("g", M_GATE);
	e[n].steps[3] = step("ta", M_TOWER_A);
	n++;
	*ret_n = n;
}

static int create(const struct ens *e, qv_model **ret, char *err, size_t len)
{
	struct qv_ensemble_desc d = { .name = e->name, .n_steps = e->n, .steps = e->steps, .output = e->output };
	return qv_ensemble_create(&d, ret, err, len);
}

static void compare(const char *what, const struct qv_npy *y, uint32_t row0, uint32_t rows,
		    const float *got)
{
	const uint32_t od = (uint32_t)(y->count / (size_t)y->shape[0]);
	int bad = 0;
	for (size_t i = 0; i < (size_t)rows * od && bad < 3; i++) {
		double want = y->data[(size_t)row0 * od + i];
		double d = fabs((double)got[i] - want);
		if (!(d <= ATOL + RTOL * fabs(want))) {
			CHECK(0, "%s: row %zu col %zu: got %.7g want %.7g", what, row0 + i / od, i % od,
			      (double)got[i], want);
			bad++;
		}
	}
	for (uint32_t i = 0; i < GUARD; i++)
		CHECK(got[(size_t)rows * od + i] == sentinel, "%s: guard zone written at +%u", what, i);
}

static void run_all(const char *name, qv_model *m, qv_exec_ctx *ctx, const struct qv_npy *y)
{
	static const uint32_t chunks[] = { 1, 3, 64 };
	struct qv_model_info inf;
	qv_model_get_info(m, &inf);
	const uint32_t total = (uint32_t)x.shape[0];
	float *out = malloc(((size_t)total * inf.out_dim + GUARD) * sizeof(float));
	if (!out) {
		failures++;
		return;
	}
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		for (int ref = 0; ref < 2; ref++) {
			for (uint32_t r0 = 0; r0 < total; r0 += chunks[c]) {
				uint32_t rows = total - r0 < chunks[c] ? total - r0 : chunks[c];
				for (size_t i = 0; i < (size_t)rows * inf.out_dim + GUARD; i++)
					out[i] = sentinel;
				const float *in = x.data + (size_t)r0 * inf.in_dim;
				int r = ref ? qv_run_reference(m, in, rows, out) : qv_run(ctx, in, rows, out);
				char what[128];
				snprintf(what, sizeof(what), "%s %s rows %u at %u", name,
					 ref ? "qv_run_reference" : "qv_run", rows, r0);
				CHECK(r == 0, "%s: returned %d", what, r);
				compare(what, y, r0, rows, out);
			}
		}
	}
	free(out);
}

static void test_good(const char *dir)
{
	struct ens e[8];
	uint32_t n;
	build_good(e, &n);
	for (uint32_t i = 0; i < n; i++) {
		char err[QV_ERR_LEN], path[512];
		qv_model *m = NULL;
		int r = create(&e[i], &m, err, sizeof(err));
		CHECK(r == 0, "%s: create: %d %s", e[i].name, r, err);
		if (r < 0)
			continue;
		struct qv_model_info inf;
		CHECK(qv_model_get_info(m, &inf) == 0 && inf.in_dim == e[i].in_dim &&
		      inf.out_dim == e[i].out_dim && inf.max_batch == 256 && inf.n_steps == e[i].n,
		      "%s: info in %u out %u max_batch %u steps %u", e[i].name, inf.in_dim, inf.out_dim,
		      inf.max_batch, inf.n_steps);
		CHECK(qv_model_is_ensemble(m) && !qv_model_is_ensemble(models[0]), "is_ensemble");
		char desc[2048];
		CHECK(qv_model_describe(m, desc, sizeof(desc)) == 0 && strstr(desc, e[i].name),
		      "%s: describe", e[i].name);
		snprintf(path, sizeof(path), "%s/%s.y.npy", dir, e[i].name);
		struct qv_npy y;
		r = qv_npy_read(path, &y, err, sizeof(err));
		CHECK(r == 0, "%s: %s", path, err);
		qv_exec_ctx *ctx = NULL;
		CHECK(qv_exec_ctx_create(m, &ctx) == 0, "%s: ctx", e[i].name);
		if (r == 0 && ctx) {
			run_all(e[i].name, m, ctx, &y);
			float none[4];
			CHECK(qv_run(ctx, x.data, 0, none) == -EINVAL, "%s: 0 rows", e[i].name);
			CHECK(qv_run(ctx, x.data, 257, none) == -EINVAL, "%s: 257 rows", e[i].name);
		}
		if (r == 0)
			qv_npy_free(&y);
		qv_exec_ctx_free(ctx);
		qv_model_free(m);
	}
}

static int make(const struct ens *e, qv_model **ret_m, qv_exec_ctx **ret_ctx)
{
	char err[QV_ERR_LEN];
	int r = create(e, ret_m, err, sizeof(err));
	CHECK(r == 0, "%s: create: %s", e->name, err);
	if (r < 0)
		return 0;
	r = qv_exec_ctx_create(*ret_m, ret_ctx);
	CHECK(r == 0, "%s: ctx: %d", e->name, r);
	if (r < 0) {
		qv_model_free(*ret_m);
		return 0;
	}
	return 1;
}

/* ---- intermediates go by pointer; the only copy is a fan-in above 1 row ---- */

static void io(qv_exec_ctx *ctx, const char *step_name, const float **in, const float **out)
{
	int r = qv_ensemble_step_io(ctx, step_name, in, out);
	CHECK(r == 0, "step_io %s: %d", step_name, r);
}

static void test_no_copy(void)
{
	struct ens e[8];
	uint32_t n;
	build_good(e, &n);
	float out[64 * 4];
	const float *ai, *ao, *bi, *bo, *hi, *ho, *ti, *to, *gi, *go;
	qv_model *m;
	qv_exec_ctx *ctx;
	char err[QV_ERR_LEN];

	/* chain: b reads exactly where a wrote, b writes the caller's buffer */
	if (!make(&e[0], &m, &ctx))
		return;
	for (uint32_t rows = 1; rows <= 64; rows += 63) {
		CHECK(qv_run(ctx, x.data, rows, out) == 0, "chain run");
		io(ctx, "a", &ai, &ao);
		io(ctx, "b", &bi, &bo);
		CHECK(ai == x.data, "chain rows %u: a does not read the caller's input in place", rows);
		CHECK(bi == ao, "chain rows %u: b's input %p is not a's output %p", rows, (const void *)bi,
		      (const void *)ao);
		CHECK(bo == out, "chain rows %u: b does not write the caller's output", rows);
		CHECK(ao != out && ao != x.data, "chain rows %u: a's output is not scratch", rows);
	}
	CHECK(qv_ensemble_copy_bytes(ctx) == 0, "chain copied %llu bytes",
	      (unsigned long long)qv_ensemble_copy_bytes(ctx));
	CHECK(qv_ensemble_step_io(ctx, "zz", &ai, &ao) == -ENOENT, "step_io unknown");
	qv_exec_ctx_free(ctx);
	qv_model_free(m);

	/* fan-in: at 1 row the towers write adjacently into the head's input */
	if (!make(&e[1], &m, &ctx))
		return;
	CHECK(qv_run(ctx, x.data, 1, out) == 0, "fanin run");
	io(ctx, "ta", &ti, &to);
	io(ctx, "tb", &gi, &go);
	io(ctx, "head", &hi, &ho);
	CHECK(hi == to && go == to + 8, "fanin 1 row: head input %p, tower_a out %p, tower_b out %p",
	      (const void *)hi, (const void *)to, (const void *)go);
	CHECK(ti == x.data && gi == x.data && ho == out, "fanin 1 row: towers read in place, head writes out");
	CHECK(qv_ensemble_copy_bytes(ctx) == 0, "fanin 1 row copied %llu bytes",
	      (unsigned long long)qv_ensemble_copy_bytes(ctx));
	/* at 3 rows [3,8] and [3,6] side by side are not [3,14]: one gather, counted */
	CHECK(qv_run(ctx, x.data, 3, out) == 0, "fanin run 3");
	io(ctx, "ta", &ti, &to);
	io(ctx, "head", &hi, &ho);
	CHECK(hi != to, "fanin 3 rows: head reads the gathered buffer");
	CHECK(qv_ensemble_copy_bytes(ctx) == 3 * 14 * sizeof(float), "fanin 3 rows copied %llu bytes, want %zu",
	      (unsigned long long)qv_ensemble_copy_bytes(ctx), 3 * 14 * sizeof(float));
	CHECK(qv_run(ctx, x.data, 1, out) == 0, "fanin run 1 again");
	CHECK(qv_ensemble_copy_bytes(ctx) == 3 * 14 * sizeof(float), "fanin: 1 row after 3 copied more");
	qv_exec_ctx_free(ctx);
	qv_model_free(m);

	/* gate: the expert reads the input in place, nothing is copied */
	if (!make(&e[2], &m, &ctx))
		return;
	CHECK(qv_run(ctx, x.data, 64, out) == 0, "gate run");
	io(ctx, "expert", &ai, &ao);
	CHECK(ai == x.data && ao == out, "gate: expert does not read/write in place");
	CHECK(qv_ensemble_copy_bytes(ctx) == 0, "gate copied");
	qv_exec_ctx_free(ctx);
	qv_model_free(m);

	/* a fan-in of parts that cannot be placed (here the ensemble's input,
	 * twice) is gathered at 1 row too, and the gather is counted */
	struct qv_ensemble_step s[2] = { step("g", M_GATE),
					 step_in("b", M_CHAIN_B, QV_ENS_INPUT, QV_ENS_INPUT) };
	s[1].gate = gate(QV_GATE_GE, "g");
	struct qv_ensemble_desc d = { .name = "gathered", .n_steps = 2, .steps = s, .output = "b" };
	int r = qv_ensemble_create(&d, &m, err, sizeof(err));
	CHECK(r == 0, "gathered: %s", err);
	if (r < 0)
		return;
	CHECK(qv_exec_ctx_create(m, &ctx) == 0, "gathered ctx");
	float want[4], cat[32];
	const float *gate_out;
	uint32_t ran = 0;
	for (uint32_t row = 0; row < 64; row++) {
		const float *xr = x.data + (size_t)row * 16;
		CHECK(qv_run(ctx, xr, 1, out) == 0, "gathered run");
		io(ctx, "g", &gi, &gate_out);
		io(ctx, "b", &bi, &bo);
		CHECK(bi != xr && bo == out, "gathered: b reads the gathered buffer, writes out");
		/* against chain_b run directly on [x, x] */
		memcpy(cat, xr, 16 * sizeof(float));
		memcpy(cat + 16, xr, 16 * sizeof(float));
		CHECK(memcmp(bi, cat, sizeof(cat)) == 0, "gathered: row %u: b's input is not [x, x]", row);
		if (gate_out[0] >= 0.5f) {
			ran++;
			qv_exec_ctx *cb;
			CHECK(qv_exec_ctx_create(models[M_CHAIN_B], &cb) == 0, "chain_b ctx");
			CHECK(qv_run(cb, cat, 1, want) == 0, "chain_b run");
			qv_exec_ctx_free(cb);
			CHECK(memcmp(out, want, sizeof(want)) == 0, "gathered: row %u differs from chain_b", row);
		} else {
			for (int j = 0; j < 4; j++)
				CHECK(out[j] == -1.0f, "gathered: row %u: skipped row is not else_value", row);
		}
	}
	CHECK(ran > 0 && ran < 64, "gathered: gate passed %u of 64 rows", ran);
	CHECK(qv_ensemble_copy_bytes(ctx) == 64 * 32 * sizeof(float), "gathered: copied %llu, want %zu",
	      (unsigned long long)qv_ensemble_copy_bytes(ctx), 64 * 32 * sizeof(float));
	qv_exec_ctx_free(ctx);
	qv_model_free(m);
}

/* ---- one step (no scratch at all), and an ensemble as a step of another ---- */

static void test_single_and_nested(const char *dir)
{
	char path[512], err[QV_ERR_LEN];
	struct qv_npy y;
	snprintf(path, sizeof(path), "%s/chain.y.npy", dir);
	int r = qv_npy_read(path, &y, err, sizeof(err));
	CHECK(r == 0, "%s: %s", path, err);
	if (r < 0)
		return;
	struct ens e[8];
	uint32_t n;
	build_good(e, &n);
	qv_model *inner = NULL, *outer = NULL;
	CHECK(create(&e[0], &inner, err, sizeof(err)) == 0, "inner: %s", err);
	struct qv_ensemble_step s[1] = { step("inner", -1) };
	s[0].model = inner;
	struct qv_ensemble_desc d = { .name = "outer", .n_steps = 1, .steps = s, .output = NULL };
	r = inner ? qv_ensemble_create(&d, &outer, err, sizeof(err)) : -EINVAL;
	CHECK(r == 0, "outer: %s", err);
	if (r == 0) {
		qv_exec_ctx *ctx = NULL;
		CHECK(qv_exec_ctx_create(outer, &ctx) == 0, "outer ctx");
		if (ctx)
			run_all("nested", outer, ctx, &y);
		qv_exec_ctx_free(ctx);
	}
	qv_model_free(outer);
	qv_model_free(inner);
	qv_npy_free(&y);
}

/* ---- max_batch is the smallest step's ---- */

static void test_max_batch(const char *dir)
{
	char path[512], err[QV_ERR_LEN];
	struct qv_model_opts o = { .max_batch = 64, .kernels = QV_KERNEL_AUTO, .tune_iters = 2 };
	qv_model *small = NULL, *m = NULL;
	snprintf(path, sizeof(path), "%s/chain_b.onnx", dir);
	CHECK(qv_model_load_file(path, &o, &small, err, sizeof(err)) == 0, "%s", err);
	struct qv_ensemble_step s[2] = { step("a", M_CHAIN_A), step_in("b", -1, "a", NULL) };
	s[1].model = small;
	struct qv_ensemble_desc d = { .name = "mb", .n_steps = 2, .steps = s, .output = NULL };
	CHECK(qv_ensemble_create(&d, &m, err, sizeof(err)) == 0, "mb: %s", err);
	struct qv_model_info inf;
	CHECK(qv_model_get_info(m, &inf) == 0 && inf.max_batch == 64, "max_batch %u, want 64", inf.max_batch);
	qv_exec_ctx *ctx = NULL;
	float out[65 * 4];
	CHECK(qv_exec_ctx_create(m, &ctx) == 0, "mb ctx");
	CHECK(qv_run(ctx, x.data, 64, out) == 0, "64 rows");
	CHECK(qv_run(ctx, x.data, 65, out) == -EINVAL, "65 rows accepted");
	qv_exec_ctx_free(ctx);
	qv_model_free(m);
	qv_model_free(small);
}

/* ---- invalid wiring: each a load error naming the step ---- */

struct bad {
	const char *label;
	struct qv_ensemble_step s[3];
	uint32_t n;
	const char *output;
	const char *want;
};

static void test_bad(void)
{
	struct bad b[20];
	uint32_t n = 0;
	memset(b, 0, sizeof(b));

	b[n] = (struct bad){ .label = "unknown step", .n = 2,
			     .want = "step 'b': input 'nope' is not a step of the ensemble" };
	b[n].s[0] = step("a", M_CHAIN_A);
	b[n].s[1] = step_in("b", M_CHAIN_B, "nope", NULL);
	n++;
	b[n] = (struct bad){ .label = "cycle", .n = 3, .want = "step 'a': its inputs form a cycle" };
	b[n].s[0] = step_in("a", M_CHAIN_A, "b", NULL);
	b[n].s[1] = step_in("b", M_CHAIN_B, "a", NULL);
	b[n].s[2] = step("g", M_GATE);
	n++;
	b[n] = (struct bad){ .label = "gate cycle", .n = 2, .want = "step 'g': its inputs form a cycle" };
	b[n].s[0] = step("g", M_GATE);
	b[n].s[0].gate = gate(QV_GATE_GE, "g");
	b[n].s[1] = step("e", M_EXPERT);
	n++;
	b[n] = (struct bad){ .label = "shape mismatch", .n = 2,
			     .want = "step 'b': input is 8 floats a row (a 8) but its model takes 32" };
	b[n].s[0] = step("a", M_TOWER_A);
	b[n].s[1] = step_in("b", M_CHAIN_B, "a", NULL);
	n++;
	b[n] = (struct bad){ .label = "input mismatch", .n = 3,
			     .want = "step 'b': input is 16 floats a row ($input 16) but its model takes 32" };
	b[n].s[0] = step("g", M_GATE);
	b[n].s[1] = step("b", M_CHAIN_B);
	b[n].s[2] = step("e", M_EXPERT);
	b[n].s[2].gate = gate(QV_GATE_GE, "g");
	n++;
	b[n] = (struct bad){ .label = "fan-in mismatch", .n = 2,
			     .want = "step 'head': input is 16 floats a row (ta 8 + ta 8) but its model takes 14" };
	b[n].s[0] = step("ta", M_TOWER_A);
	b[n].s[1] = step_in("head", M_HEAD, "ta", "ta");
	n++;
	b[n] = (struct bad){ .label = "missing tensor", .n = 2,
			     .want = "step 'b': input #0 is missing" };
	b[n].s[0] = step("a", M_CHAIN_A);
	b[n].s[1] = step_in("b", M_CHAIN_B, "", NULL);
	n++;
	b[n] = (struct bad){ .label = "no model", .n = 2, .want = "step 'b': no model" };
	b[n].s[0] = step("a", M_CHAIN_A);
	b[n].s[1] = step_in("b", -1, "a", NULL);
	n++;
	b[n] = (struct bad){ .label = "wide gate", .n = 2,
			     .want = "step 'e': gate 'ta' gives 8 floats a row, a gate must give 1" };
	b[n].s[0] = step("ta", M_TOWER_A);
	b[n].s[1] = step("e", M_EXPERT);
	b[n].s[1].gate = gate(QV_GATE_GE, "ta");
	n++;
	b[n] = (struct bad){ .label = "unknown gate", .n = 1,
			     .want = "step 'e': gate 'zz' is not a step of the ensemble" };
	b[n].s[0] = step("e", M_EXPERT);
	b[n].s[0].gate = gate(QV_GATE_LT, "zz");
	n++;
	b[n] = (struct bad){ .label = "bad gate op", .n = 2, .want = "step 'e': unknown gate op 7" };
	b[n].s[0] = step("g", M_GATE);
	b[n].s[1] = step("e", M_EXPERT);
	b[n].s[1].gate = gate((enum qv_gate_op)7, "g");
	n++;
	b[n] = (struct bad){ .label = "duplicate", .n = 2, .want = "step 'a': duplicate step name" };
	b[n].s[0] = step("a", M_CHAIN_A);
	b[n].s[1] = step("a", M_CHAIN_A);
	n++;
	b[n] = (struct bad){ .label = "unused", .n = 2,
			     .want = "step 'g': its output is read by no step and is not the ensemble's output" };
	b[n].s[0] = step("g", M_GATE);
	b[n].s[1] = step("e", M_EXPERT);
	n++;
	b[n] = (struct bad){ .label = "unknown output", .n = 1, .output = "zz",
			     .want = "output 'zz' is not a step of the ensemble" };
	b[n].s[0] = step("e", M_EXPERT);
	n++;
	b[n] = (struct bad){ .label = "no name", .n = 1, .want = "step #0 has no name" };
	b[n].s[0] = step(NULL, M_EXPERT);
	n++;
	b[n] = (struct bad){ .label = "no steps", .n = 0, .want = "0 steps" };
	n++;

	for (uint32_t i = 0; i < n; i++) {
		qv_model *m = (qv_model *)(uintptr_t)0x1;
		char err[QV_ERR_LEN];
		struct qv_ensemble_desc d = { .name = "bad", .n_steps = b[i].n, .steps = b[i].s, .output = b[i].output };
		int r = qv_ensemble_create(&d, &m, err, sizeof(err));
		CHECK(r == -EINVAL, "%s: returned %d", b[i].label, r);
		CHECK(m == (qv_model *)(uintptr_t)0x1, "%s: ret_model written on failure", b[i].label);
		CHECK(strstr(err, b[i].want) != NULL, "%s: error '%s' lacks '%s'", b[i].label, err, b[i].want);
		CHECK(strncmp(err, "bad: ", 5) == 0, "%s: error '%s' does not name the ensemble", b[i].label, err);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s GEN_DIR\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	char path[512], err[QV_ERR_LEN];
	snprintf(path, sizeof(path), "%s/x.npy", dir);
	if (qv_npy_read(path, &x, err, sizeof(err)) < 0) {
		printf("skip: %s (ensemble models not generated: /usr/bin/python3 lacks onnx/numpy?)\n", err);
		return SKIP;
	}
	struct qv_model_opts o = { .max_batch = 0, .kernels = QV_KERNEL_AUTO, .tune_iters = 2 };
	for (int i = 0; i < M_N; i++) {
		snprintf(path, sizeof(path), "%s/%s.onnx", dir, model_names[i]);
		int r = qv_model_load_file(path, &o, &models[i], err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "FAIL load %s: %s\n", path, err);
			return 1;
		}
	}
	test_good(dir);
	test_no_copy();
	test_max_batch(dir);
	test_single_and_nested(dir);
	test_bad();
	for (int i = 0; i < M_N; i++)
		qv_model_free(models[i]);
	qv_npy_free(&x);
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
