/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_tensors.c - the worker with a model of typed tensors, on a fake
 * worker (no thread, no channel): qv_worker_serve and qv_worker_serve_batch
 * on a small model kind made here through the runtime's ops table, so the
 * worker's rules are tested without depending on any graph the runtime
 * loads:
 *
 *   inputs  x  float32 [-1, 2]            packed at bytes 0..7
 *           id int64   [-1, 1], ids in [0, 5)   bytes 8..15
 *   outputs y   float32 [-1, 1] = x0 + x1 + 10 * id + bias   bytes 0..3
 *           tag int64   [-1, 1] = 0x7ff8000000000000 + mult * id  bytes 4..11
 *
 * An id outside [0, 5) makes the run return -ERANGE. tag's high word read
 * as a float is a NaN: the nonfinite fallback trigger and the shadow
 * comparison must not look at it. Expected values are computed here from
 * the inputs.
 *
 * Checked: an id out of range answers that request BAD_REQUEST, and in a
 * batch only that one (the others get their own outputs; the split is
 * counted); it is never a fallback trigger; the nonfinite trigger fires on
 * a NaN in y and not on tag's bits; a shadow whose tag differs does not
 * disagree, one whose y differs does; a UDP-2 request naming the wrong
 * number of input tensors is BAD_SHAPE; n_outputs is reported.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_worker.h"
#include "outcheck.h"
#include "plan.h"
#include "serve.h"
#include "worker.h"

static int failures;

#define CHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

#define NAN_BITS 0x7ff8000000000000ll
#define IN_ROW 16u   /* bytes */
#define OUT_ROW 12u
#define MAX_ROWS 8u
#define GOOD INT64_MIN /* fill(): every id in range */

struct kind {
	float bias;
	int64_t mult;
};

static int ctx_create(const struct qv_model *m, void **ret_impl)
{
	*ret_impl = m->impl;
	return 0;
}

static void ctx_free(const struct qv_model *m, void *ctx_impl)
{
	(void)m;
	(void)ctx_impl;
}

static int run(const struct qv_model *m, void *ctx_impl, const void *in, uint32_t rows, void *out)
{
	const struct kind *k = ctx_impl;
	const uint8_t *i8 = in;
	uint8_t *o8 = out;

	(void)m;
	for (uint32_t r = 0; r < rows; r++) {
		float x[2], y;
		int64_t id, tag;

		memcpy(x, i8 + r * IN_ROW, 8);
		memcpy(&id, i8 + r * IN_ROW + 8, 8);
		if (id < 0 || id >= 5)
			return -ERANGE;
		y = x[0] + x[1] + 10.0f * (float)id + k->bias;
		tag = NAN_BITS + k->mult * id;
		memcpy(o8 + r * OUT_ROW, &y, 4);
		memcpy(o8 + r * OUT_ROW + 4, &tag, 8);
	}
	return 0;
}

static int run_ref(const struct qv_model *m, const void *in, uint32_t rows, void *out)
{
	return run(m, m->impl, in, rows, out);
}

static int describe(const struct qv_model *m, char *buf, size_t len)
{
	(void)m;
	snprintf(buf, len, "test kind\n");
	return 0;
}

static void kind_free(void *impl)
{
	free(impl);
}

static const struct qv_model_ops ops = {
	.kind = "test",
	.free = kind_free,
	.ctx_create = ctx_create,
	.ctx_free = ctx_free,
	.run = run,
	.run_reference = run_ref,
	.describe = describe,
};

static void set_tensor(struct qv_tensor_info *t, const char *name, uint32_t dt, uint32_t elems)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->dtype = dt;
	t->rank = 2;
	t->shape[0] = -1;
	t->shape[1] = elems;
	t->row_elems = elems;
}

static qv_model *make_model(float bias, int64_t mult)
{
	struct kind *k = malloc(sizeof(*k));
	struct qv_model *m;

	if (!k || qv_model_new_kind(&ops, k, MAX_ROWS, &m) < 0) {
		fprintf(stderr, "cannot make the test model\n");
		exit(1);
	}
	k->bias = bias;
	k->mult = mult;
	m->info.n_inputs = 2;
	m->info.n_outputs = 2;
	set_tensor(&m->tin[0], "x", QV_DT_F32, 2);
	set_tensor(&m->tin[1], "id", QV_DT_I64, 1);
	m->tin[1].index_bound = 5;
	set_tensor(&m->tout[0], "y", QV_DT_F32, 1);
	set_tensor(&m->tout[1], "tag", QV_DT_I64, 1);
	if (qv_model_pack_io(m) < 0 || m->info.in_dim != IN_ROW / 4 ||
	    m->info.out_dim != OUT_ROW / 4) {
		fprintf(stderr, "packing the test model's rows failed\n");
		exit(1);
	}
	return m;
}

static struct qv_version *version_of(qv_model *m, uint32_t ver, uint32_t slot)
{
	struct qv_version *v = fake_version(m, ver, slot);

	qv_version_out_spans(v);
	return v;
}

/* One request's buffers: rows packed input rows, room for their outputs. */
struct req {
	uint8_t in[MAX_ROWS * IN_ROW];
	uint8_t out[MAX_ROWS * OUT_ROW];
	uint32_t rows;
};

static void fill(struct req *q, uint32_t rows, uint32_t seed, int64_t bad_row_id)
{
	q->rows = rows;
	for (uint32_t r = 0; r < rows; r++) {
		float x[2] = { (float)seed + 0.25f * (float)r, -0.5f * (float)r };
		int64_t id = (int64_t)((seed + r) % 5);

		if (bad_row_id != GOOD && r == rows - 1)
			id = bad_row_id;
		memcpy(q->in + r * IN_ROW, x, 8);
		memcpy(q->in + r * IN_ROW + 8, &id, 8);
	}
	memset(q->out, 0xee, sizeof(q->out));
}

/* Whether q's outputs are the model's (bias, mult) for its inputs. */
static int outputs_ok(const struct req *q, float bias, int64_t mult)
{
	for (uint32_t r = 0; r < q->rows; r++) {
		float x[2], y;
		int64_t id, tag;

		memcpy(x, q->in + r * IN_ROW, 8);
		memcpy(&id, q->in + r * IN_ROW + 8, 8);
		memcpy(&y, q->out + r * OUT_ROW, 4);
		memcpy(&tag, q->out + r * OUT_ROW + 4, 8);
		if (y != x[0] + x[1] + 10.0f * (float)id + bias || tag != NAN_BITS + mult * id)
			return 0;
	}
	return 1;
}

static struct qv_serve_req sreq(struct req *q)
{
	return (struct qv_serve_req){ .handle = 0, .rows = q->rows, .in_bytes = q->rows * IN_ROW,
				      .out_cap = sizeof(q->out), .request_id = q->rows,
				      .in = (const float *)(const void *)q->in,
				      .out = (float *)(void *)q->out };
}

static void serve_batch(struct qv_worker *w, struct req *qs, uint32_t n,
			struct qv_batch_item *items)
{
	memset(items, 0, n * sizeof(*items));
	for (uint32_t i = 0; i < n; i++)
		items[i].req = sreq(&qs[i]);
	qv_worker_serve_batch(w, items, n);
}

int main(void)
{
	qv_model *m1 = make_model(0.0f, 1), *m3 = make_model(100.0f, 1), *m4 = make_model(0.0f, 3),
		 *m5 = make_model(1.0f, 1);
	struct qv_version *p, *fb, *sh_same, *sh_diff;
	struct qv_route_hot *h;
	struct qv_table tab;
	struct qv_worker *w;
	struct qv_batch_item items[4];
	struct req qs[4];
	struct qv_serve_res r;
	struct qv_serve_req one;

	p = version_of(m1, 1, 0);
	fb = version_of(m3, 3, 1);
	sh_same = version_of(m4, 4, 2);
	sh_diff = version_of(m5, 5, 3);
	CHECK(p->out_mixed == 1 && p->n_fspans == 1 && p->fspans[0].off == 0 &&
	      p->fspans[0].n == 1);
	CHECK(qv_version_same_tensors(p, fb));

	h = aligned_alloc(64, sizeof(*h));
	memset(h, 0, sizeof(*h));
	h->state = QV_ROUTE_READY;
	h->in_dim = IN_ROW / 4;
	h->out_dim = OUT_ROW / 4;
	h->n_inputs = 2;
	h->n_outputs = 2;
	h->max_batch = MAX_ROWS;
	h->primary = p;
	tab = (struct qv_table){ .n = 1, .hot = h };
	w = fake_worker_new(&tab, 1.0, 0x9e3779b97f4a7c15ull);

	/* Alone: good, then an id out of range (too big, negative). */
	fill(&qs[0], 3, 1, GOOD);
	one = sreq(&qs[0]);
	qv_worker_serve(w, &one, &r);
	CHECK(r.status == QV_OK && r.out_bytes == 3 * OUT_ROW && r.n_outputs == 2);
	CHECK(outputs_ok(&qs[0], 0.0f, 1));
	fill(&qs[0], 2, 1, 5);
	one = sreq(&qs[0]);
	qv_worker_serve(w, &one, &r);
	CHECK(r.status == QV_BAD_REQUEST && r.out_bytes == 0);
	fill(&qs[0], 1, 1, -1000000000000ll);
	one = sreq(&qs[0]);
	qv_worker_serve(w, &one, &r);
	CHECK(r.status == QV_BAD_REQUEST);
	CHECK(qv_cnt_get(&w->vs[0].status[QV_BAD_REQUEST]) == 2);

	/* The tensor count a UDP-2 request names must be the route's. */
	fill(&qs[0], 1, 2, GOOD);
	one = sreq(&qs[0]);
	one.n_inputs = 1;
	qv_worker_serve(w, &one, &r);
	CHECK(r.status == QV_BAD_SHAPE);
	one.n_inputs = 2;
	qv_worker_serve(w, &one, &r);
	CHECK(r.status == QV_OK && outputs_ok(&qs[0], 0.0f, 1));

	/* A batch of four, all good: one run, every output right. */
	for (uint32_t i = 0; i < 4; i++)
		fill(&qs[i], 1 + i % 3, 10 * i, GOOD);
	serve_batch(w, qs, 4, items);
	for (uint32_t i = 0; i < 4; i++) {
		CHECK(items[i].res.status == QV_OK && items[i].res.n_outputs == 2);
		CHECK(items[i].res.out_bytes == qs[i].rows * OUT_ROW);
		CHECK(outputs_ok(&qs[i], 0.0f, 1));
	}
	CHECK(qv_cnt_get(&w->vs[0].batches) == 1);
	CHECK(qv_cnt_get(&w->vs[0].split_batches) == 0);

	/* The same batch with one id out of range in the third request: only
	 * it is BAD_REQUEST, the others are answered right, the split counted. */
	for (uint32_t i = 0; i < 4; i++)
		fill(&qs[i], 1 + i % 3, 10 * i + 1, i == 2 ? 7 : GOOD);
	serve_batch(w, qs, 4, items);
	for (uint32_t i = 0; i < 4; i++) {
		if (i == 2) {
			CHECK(items[i].res.status == QV_BAD_REQUEST && items[i].res.out_bytes == 0);
			continue;
		}
		CHECK(items[i].res.status == QV_OK);
		CHECK(outputs_ok(&qs[i], 0.0f, 1));
	}
	CHECK(qv_cnt_get(&w->vs[0].split_batches) == 1);
	CHECK(qv_cnt_get(&w->vs[0].status[QV_BAD_REQUEST]) == 3);

	/* An error fallback is not for the request's own bad ids. */
	h->fallback = fb;
	h->flags = QV_RT_FALLBACK | QV_RT_FB_ERROR;
	fill(&qs[0], 2, 3, 9);
	one = sreq(&qs[0]);
	qv_worker_serve(w, &one, &r);
	CHECK(r.status == QV_BAD_REQUEST && r.flags == 0);
	for (uint32_t i = 0; i < 3; i++)
		fill(&qs[i], 2, 5 * i, i == 1 ? 6 : GOOD);
	serve_batch(w, qs, 3, items);
	CHECK(items[1].res.status == QV_BAD_REQUEST && items[1].res.flags == 0);
	CHECK(items[0].res.status == QV_OK && items[0].res.flags == 0 && outputs_ok(&qs[0], 0, 1));
	CHECK(items[2].res.status == QV_OK && items[2].res.flags == 0 && outputs_ok(&qs[2], 0, 1));
	CHECK(qv_vstats_requests(&w->vs[1]) == 0);

	/* The nonfinite trigger reads y only: tag's NaN-looking bits never
	 * fire it, a NaN in y does. */
	h->flags = QV_RT_FALLBACK | QV_RT_FB_NONFINITE;
	fill(&qs[0], 3, 4, GOOD);
	one = sreq(&qs[0]);
	qv_worker_serve(w, &one, &r);
	CHECK(r.status == QV_OK && r.flags == 0 && r.version == 1 && outputs_ok(&qs[0], 0, 1));
	for (uint32_t i = 0; i < 3; i++)
		fill(&qs[i], 1, 2 * i, GOOD);
	{
		float nan = NAN;
		memcpy(qs[1].in, &nan, 4);
	}
	serve_batch(w, qs, 3, items);
	CHECK(items[0].res.flags == 0 && outputs_ok(&qs[0], 0, 1));
	CHECK(items[2].res.flags == 0 && outputs_ok(&qs[2], 0, 1));
	CHECK(items[1].res.status == QV_OK && items[1].res.flags == QV_FLAG_FALLBACK &&
	      items[1].res.version == 3);
	h->fallback = NULL;

	/* Shadows compare y only: a shadow whose tag differs agrees, one
	 * whose y differs does not. */
	h->flags = QV_RT_SHADOW;
	h->shadow_thr = UINT64_MAX;
	h->shadow = sh_same;
	fill(&qs[0], 2, 6, GOOD);
	one = sreq(&qs[0]);
	qv_worker_serve(w, &one, &r);
	qv_worker_shadow_flush(w);
	CHECK(r.status == QV_OK);
	CHECK(qv_cnt_get(&w->vs[2].shadow) == 1 && qv_cnt_get(&w->vs[2].shadow_disagree) == 0);
	h->shadow = sh_diff;
	one = sreq(&qs[0]);
	qv_worker_serve(w, &one, &r);
	qv_worker_shadow_flush(w);
	CHECK(qv_cnt_get(&w->vs[3].shadow) == 1 && qv_cnt_get(&w->vs[3].shadow_disagree) == 1);

	fake_worker_free(w);
	free(h);
	fake_version_free(p);
	fake_version_free(fb);
	fake_version_free(sh_same);
	fake_version_free(sh_diff);
	qv_model_free(m1);
	qv_model_free(m3);
	qv_model_free(m4);
	qv_model_free(m5);
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
