/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plan.c - compile a sorted, shape-inferred graph into a plan of steps, and
 * the public load / describe / info entry points.
 *
 * Design notes
 *
 * Fusion. A Gemm or MatMul (constant B) starts a dense step y = act(xW + b)
 * with W stored K x N (transB and alpha applied, beta applied to C). While
 * the step's output has exactly one consumer and is not the graph output,
 * the consumer is absorbed:
 *   - Identity, Dropout: removed;
 *   - before an activation only: Add/Sub of a per-feature constant (shape
 *     broadcastable to [1, N]) into b; Mul into W's columns and b; Div only
 *     by powers of two, where x / c == x * (1 / c) exactly; a
 *     BatchNormalization into W and b (per-channel scale and shift);
 *   - one activation (Relu, LeakyRelu, Sigmoid, Tanh, Clip with constant
 *     bounds), which ends the step.
 * Folding reorders float rounding (x W c vs (x W) c), which is why tests
 * compare with tolerances against torch/numpy, not bit for bit.
 * Flatten, Reshape, Identity and Dropout elsewhere are aliases: they
 * change the shape, not the data, so they cost nothing. Everything else is
 * one step each (exec.c): binary with an expanded constant row, affine
 * (unfolded BatchNormalization), activation, softmax, concat. A chain of
 * two or more constant Add/Sub/Mul (and power-of-two Div) not after a dense
 * step, typically an input scaler, becomes one affine step
 * y = (x + pre) * s + post; adds before the first Mul stay on x, so a mean
 * subtraction is not turned into a cancelling x*s - mean*s.
 *
 * Buffers. Each step writes a buffer of its own, max_batch rows; the step
 * producing the graph output writes straight into the caller's output and
 * the first step reads the caller's input in place. An MLP's scratch is a
 * few rows of activations, so no lifetime-based reuse is attempted.
 *
 * Buckets. oneDNN primitives exist for 1, 2, 4 ... max_batch rows; other
 * row counts run as power-of-two chunks (onednn_dense.c explains why).
 *
 * Tuning. Under QV_KERNEL_AUTO each dense step times, for every bucket up
 * to 512 rows, its oneDNN primitive and the hand-written kernel (best of a
 * few rounds of tune_iters runs - fewer from 16 rows up, where one run is
 * long - after warm-up, on the loading thread) and keeps the faster per
 * bucket; larger buckets use oneDNN. Row counts below 2^k, where every
 * bucket under 2^k chose hand, run as one hand call instead of
 * power-of-two chunks - which matters for batches gathered by a worker:
 * 25 rows on oneDNN are three primitives (16 + 8 + 1), on the hand kernel
 * one call (trade-mlp: 19.0 us vs 23.4 us; at 63 rows 44.8 us vs 57.3 us). Timing a layer alone keeps its weights
 * hot in cache, so it favours whichever kernel reuses cache better; in a
 * chain whose weights exceed L2 both candidates slow down alike. The choice and
 * both timings are shown by qv_model_describe. QV_KERNEL_ONEDNN and
 * QV_KERNEL_HAND force one (HAND falls back to oneDNN where no hand kernel
 * exists for the shape).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gx.h"
#include "plan.h"
#include "tree.h"

static void step_free(struct qv_step *st)
{
	free(st->W);
	free(st->b);
	free(st->c);
	free(st->shift);
	free(st->pre);
	free(st->srcs);
	free(st->part);
	qv_dnnl_dense_free(st->dnnl);
	if (st->hand)
		qv_hand_dense_free(st->hand);
}

void qv_model_free(qv_model *m)
{
	if (!m)
		return;
	if (m->ops) {
		m->ops->free(m->impl);
		free(m);
		return;
	}
	for (uint32_t i = 0; i < m->n_steps; i++)
		step_free(&m->steps[i]);
	free(m->steps);
	free(m->buf_w);
	qvg_free(m->g);
	qv_ens_free(m->ens);
	free(m);
}

/* ---- plan building ---- */

struct builder {
	struct qv_model *m;
	struct qvg_graph *g;
	int32_t *buf_of;   /* tensor -> buffer, -1 if none yet */
	bool *consumed;    /* node absorbed into an earlier step */
	uint32_t cap_steps, cap_bufs;
	char *err;
	size_t err_len;
};

static int new_step(struct builder *b, enum qv_step_kind kind, const struct qvg_node *n,
		    struct qv_step **ret)
{
	struct qv_model *m = b->m;
	if (m->n_steps == b->cap_steps) {
		uint32_t cap = b->cap_steps ? 2 * b->cap_steps : 16;
		struct qv_step *s = realloc(m->steps, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		m->steps = s;
		b->cap_steps = cap;
	}
	struct qv_step *st = &m->steps[m->n_steps++];
	memset(st, 0, sizeof(*st));
	st->kind = kind;
	snprintf(st->label, sizeof(st->label), "%s", n ? n->name : "output");
	*ret = st;
	return 0;
}

static int new_buf(struct builder *b, uint64_t w, uint32_t *ret)
{
	struct qv_model *m = b->m;
	if (m->n_bufs == b->cap_bufs) {
		uint32_t cap = b->cap_bufs ? 2 * b->cap_bufs : 16;
		uint64_t *bw = realloc(m->buf_w, cap * sizeof(*bw));
		if (!bw)
			return -ENOMEM;
		m->buf_w = bw;
		b->cap_bufs = cap;
	}
	m->buf_w[m->n_bufs] = w;
	*ret = m->n_bufs++;
	return 0;
}

/* The step writes tensor `out` into a buffer of its own. */
static int bind_out(struct builder *b, struct qv_step *st, int32_t out)
{
	uint32_t id;
	int r = new_buf(b, b->g->t[out].numel, &id);
	if (r < 0)
		return r;
	st->dst = id;
	st->out_w = (uint32_t)b->g->t[out].numel;
	b->buf_of[out] = (int32_t)id;
	return 0;
}

static int bind_in(struct builder *b, struct qv_step *st, int32_t in)
{
	st->src = (uint32_t)b->buf_of[in];
	st->in_w = (uint32_t)b->g->t[in].numel;
	return 0;
}

static int32_t sole_consumer(const struct qvg_graph *g, int32_t t, uint32_t after)
{
	if (t == g->output || g->t[t].n_consumers != 1)
		return -1;
	for (uint32_t i = after + 1; i < g->n_nodes; i++) {
		const struct qvg_node *n = &g->nodes[i];
		for (uint32_t j = 0; j < n->n_in; j++)
			if (n->in[j] == t)
				return (int32_t)i;
	}
	return -1;
}

/* Constant c broadcasts to [1, N] and nothing bigger. */
static bool per_feature(const struct qvg_tensor *c, uint32_t N)
{
	for (uint32_t i = 0; i + 1 < c->rank; i++)
		if (c->shape[i] != 1)
			return false;
	return c->numel == 1 || (c->numel == N && c->shape[c->rank - 1] == N);
}

static bool pow2_const(const struct qvg_tensor *c)
{
	for (uint64_t i = 0; i < c->numel; i++) {
		int e;
		float v = c->data[i];
		if (!isfinite(v) || v == 0.0f || fabsf(frexpf(v, &e)) != 0.5f)
			return false;
	}
	return true;
}

static int ensure_bias(struct qv_step *st)
{
	if (st->b)
		return 0;
	st->b = calloc(st->N, sizeof(float));
	return st->b ? 0 : -ENOMEM;
}

/* Tries to absorb node c into dense step st. Returns 1 if absorbed. */
static int absorb(struct builder *b, struct qv_step *st, const struct qvg_node *c, bool *has_act)
{
	const struct qvg_graph *g = b->g;
	uint32_t K = st->K, N = st->N;
	int r;
	switch (c->op) {
	case QVG_IDENTITY:
	case QVG_DROPOUT:
		return 1;
	case QVG_RELU:
	case QVG_LEAKY_RELU:
	case QVG_SIGMOID:
	case QVG_TANH:
	case QVG_CLIP:
		if (*has_act)
			return 0;
		st->act.kind = c->op == QVG_RELU ? QV_ACT_RELU : c->op == QVG_LEAKY_RELU ? QV_ACT_LEAKY_RELU
			       : c->op == QVG_SIGMOID ? QV_ACT_SIGMOID : c->op == QVG_TANH ? QV_ACT_TANH
			       : QV_ACT_CLIP;
		st->act.alpha = c->op == QVG_LEAKY_RELU ? c->alpha : c->op == QVG_CLIP ? c->clip_min : 0.0f;
		st->act.beta = c->op == QVG_CLIP ? c->clip_max : 0.0f;
		*has_act = true;
		return 1;
	default:
		break;
	}
	if (*has_act)
		return 0;
	if (c->op == QVG_BATCHNORM) {
		const float *sc = g->t[c->in[1]].data, *bb = g->t[c->in[2]].data;
		const float *mean = g->t[c->in[3]].data, *var = g->t[c->in[4]].data;
		if ((r = ensure_bias(st)) < 0)
			return r;
		for (uint32_t j = 0; j < N; j++) {
			float a = sc[j] / sqrtf(var[j] + c->eps);
			for (uint32_t k = 0; k < K; k++)
				st->W[(size_t)k * N + j] *= a;
			st->b[j] = (st->b[j] - mean[j]) * a + bb[j];
		}
		return 1;
	}
	if (c->op != QVG_ADD && c->op != QVG_SUB && c->op != QVG_MUL && c->op != QVG_DIV)
		return 0;
	const struct qvg_tensor *ct = &g->t[c->c_id];
	if (!per_feature(ct, N))
		return 0;
	const float *cv = ct->data;
	size_t cs = ct->numel == 1 ? 0 : 1;
	switch (c->op) {
	case QVG_ADD:
		if ((r = ensure_bias(st)) < 0)
			return r;
		for (uint32_t j = 0; j < N; j++)
			st->b[j] += cv[j * cs];
		return 1;
	case QVG_SUB:
		if ((r = ensure_bias(st)) < 0)
			return r;
		if (c->c_is_lhs) { /* c - y: negate the step, then add c (negation is exact) */
			for (size_t i = 0; i < (size_t)K * N; i++)
				st->W[i] = -st->W[i];
			for (uint32_t j = 0; j < N; j++)
				st->b[j] = cv[j * cs] - st->b[j];
		} else {
			for (uint32_t j = 0; j < N; j++)
				st->b[j] -= cv[j * cs];
		}
		return 1;
	case QVG_MUL:
	case QVG_DIV:
		if (c->op == QVG_DIV && (c->c_is_lhs || !pow2_const(ct)))
			return 0;
		for (uint32_t j = 0; j < N; j++) {
			float s = c->op == QVG_MUL ? cv[j * cs] : 1.0f / cv[j * cs];
			for (uint32_t k = 0; k < K; k++)
				st->W[(size_t)k * N + j] *= s;
			if (st->b)
				st->b[j] *= s;
		}
		return 1;
	default:
		return 0;
	}
}

static int build_dense(struct builder *b, uint32_t ni)
{
	struct qvg_graph *g = b->g;
	const struct qvg_node *n = &g->nodes[ni];
	struct qv_step *st;
	int r = new_step(b, QV_STEP_DENSE, n, &st);
	if (r < 0)
		return r;
	st->K = n->K;
	st->N = n->N;
	st->W = malloc((size_t)n->K * n->N * sizeof(float));
	if (!st->W)
		return -ENOMEM;
	memcpy(st->W, n->W, (size_t)n->K * n->N * sizeof(float));
	if (n->b) {
		st->b = malloc((size_t)n->N * sizeof(float));
		if (!st->b)
			return -ENOMEM;
		memcpy(st->b, n->b, (size_t)n->N * sizeof(float));
	}
	bind_in(b, st, n->in[0]);
	int32_t cur = n->out;
	bool has_act = false;
	uint32_t at = ni;
	for (;;) {
		int32_t ci = sole_consumer(g, cur, at);
		if (ci < 0)
			break;
		const struct qvg_node *c = &g->nodes[ci];
		/* Only the running value may flow in; constants are the other operands. */
		if (c->in[0] != cur && !(c->c_id >= 0 && c->x_id == cur))
			break;
		r = absorb(b, st, c, &has_act);
		if (r < 0)
			return r;
		if (!r)
			break;
		b->consumed[ci] = true;
		st->n_folded++;
		size_t k = strlen(st->label);
		if (k + 2 < sizeof(st->label))
			snprintf(st->label + k, sizeof(st->label) - k, "+%s", c->name);
		cur = c->out;
		at = (uint32_t)ci;
	}
	return bind_out(b, st, cur);
}

/* A binary op with a constant that x * s + t can express without changing
 * its result beyond rounding: Add, Sub, Mul, and Div by powers of two. */
static bool affine_ok(const struct qvg_graph *g, const struct qvg_node *n)
{
	if (n->op == QVG_ADD || n->op == QVG_SUB || n->op == QVG_MUL)
		return true;
	return n->op == QVG_DIV && !n->c_is_lhs && pow2_const(&g->t[n->c_id]);
}

/* A chain of two or more such ops (an input scaler, typically) becomes one
 * affine step: y = (x + pre[i]) * s[i] + post[i]. */
static int build_scaler(struct builder *b, uint32_t ni)
{
	struct qvg_graph *g = b->g;
	const struct qvg_node *n = &g->nodes[ni];
	struct qv_step *st;
	int r = new_step(b, QV_STEP_AFFINE, n, &st);
	if (r < 0)
		return r;
	uint64_t w = g->t[n->x_id].numel;
	st->c = malloc(w * sizeof(float));
	st->shift = calloc(w, sizeof(float));
	st->pre = calloc(w, sizeof(float));
	if (!st->c || !st->shift || !st->pre)
		return -ENOMEM;
	for (uint64_t i = 0; i < w; i++)
		st->c[i] = 1.0f;
	bind_in(b, st, n->x_id);
	uint32_t at = ni;
	bool muls = false;
	int32_t cur = n->x_id;
	for (;;) {
		const struct qvg_node *c = &g->nodes[at];
		float *e;
		if ((r = qvg_expand_const(g, c->c_id, c->x_id, &e)) < 0)
			return r;
		/* y = (x + pre) * s + post: adds before the first Mul stay adds on x,
		 * so a mean subtraction keeps its rounding (no cancellation). */
		for (uint64_t i = 0; i < w; i++) {
			switch (c->op) {
			case QVG_ADD:
				if (muls)
					st->shift[i] += e[i];
				else
					st->pre[i] += e[i];
				break;
			case QVG_SUB:
				if (c->c_is_lhs) {
					/* c - ((x + pre) * s + post) */
					st->c[i] = -st->c[i];
					st->shift[i] = e[i] - st->shift[i];
					muls = true;
				} else if (muls) {
					st->shift[i] -= e[i];
				} else {
					st->pre[i] -= e[i];
				}
				break;
			case QVG_MUL:
				st->c[i] *= e[i];
				st->shift[i] *= e[i];
				break;
			default: /* Div by a power of two: exact as a product */
				st->c[i] /= e[i];
				st->shift[i] /= e[i];
				break;
			}
		}
		if (c->op == QVG_MUL || c->op == QVG_DIV)
			muls = true;
		free(e);
		if (at != ni) {
			b->consumed[at] = true;
			st->n_folded++;
			size_t k = strlen(st->label);
			if (k + 2 < sizeof(st->label))
				snprintf(st->label + k, sizeof(st->label) - k, "+%s", c->name);
		}
		cur = c->out;
		int32_t ci = sole_consumer(g, cur, at);
		if (ci < 0 || !affine_ok(g, &g->nodes[ci]) || g->nodes[ci].x_id != cur)
			break;
		at = (uint32_t)ci;
	}
	return bind_out(b, st, cur);
}

static int build_node(struct builder *b, uint32_t ni)
{
	struct qvg_graph *g = b->g;
	const struct qvg_node *n = &g->nodes[ni];
	struct qv_step *st;
	int r;
	switch (n->op) {
	case QVG_IDENTITY:
	case QVG_DROPOUT:
	case QVG_FLATTEN:
	case QVG_RESHAPE:
		b->buf_of[n->out] = b->buf_of[n->in[0]];
		return 0;
	case QVG_GEMM:
	case QVG_MATMUL:
		return build_dense(b, ni);
	case QVG_ADD:
	case QVG_SUB:
	case QVG_MUL:
	case QVG_DIV:
		if (affine_ok(g, n)) {
			int32_t ci = sole_consumer(g, n->out, ni);
			if (ci >= 0 && affine_ok(g, &g->nodes[ci]) && g->nodes[ci].x_id == n->out)
				return build_scaler(b, ni);
		}
		if ((r = new_step(b, QV_STEP_BINARY, n, &st)) < 0)
			return r;
		st->op = n->op == QVG_ADD ? QV_BIN_ADD : n->op == QVG_SUB ? QV_BIN_SUB
			 : n->op == QVG_MUL ? QV_BIN_MUL : QV_BIN_DIV;
		st->c_is_lhs = n->c_is_lhs;
		if ((r = qvg_expand_const(g, n->c_id, n->x_id, &st->c)) < 0)
			return r;
		bind_in(b, st, n->x_id);
		return bind_out(b, st, n->out);
	case QVG_BATCHNORM: {
		if ((r = new_step(b, QV_STEP_AFFINE, n, &st)) < 0)
			return r;
		const struct qvg_tensor *x = &g->t[n->in[0]];
		uint64_t C = (uint64_t)x->shape[1], w = x->numel, inner = w / C;
		st->c = malloc(w * sizeof(float));
		st->shift = malloc(w * sizeof(float));
		st->pre = malloc(w * sizeof(float));
		if (!st->c || !st->shift || !st->pre)
			return -ENOMEM;
		const float *sc = g->t[n->in[1]].data, *bb = g->t[n->in[2]].data;
		const float *mean = g->t[n->in[3]].data, *var = g->t[n->in[4]].data;
		for (uint64_t ch = 0; ch < C; ch++) {
			float a = sc[ch] / sqrtf(var[ch] + n->eps);
			for (uint64_t i = 0; i < inner; i++) {
				st->pre[ch * inner + i] = -mean[ch];
				st->c[ch * inner + i] = a;
				st->shift[ch * inner + i] = bb[ch];
			}
		}
		bind_in(b, st, n->in[0]);
		return bind_out(b, st, n->out);
	}
	case QVG_RELU:
	case QVG_LEAKY_RELU:
	case QVG_SIGMOID:
	case QVG_TANH:
	case QVG_CLIP:
		if ((r = new_step(b, QV_STEP_ACT, n, &st)) < 0)
			return r;
		st->act.kind = n->op == QVG_RELU ? QV_ACT_RELU : n->op == QVG_LEAKY_RELU ? QV_ACT_LEAKY_RELU
			       : n->op == QVG_SIGMOID ? QV_ACT_SIGMOID : n->op == QVG_TANH ? QV_ACT_TANH
			       : QV_ACT_CLIP;
		st->act.alpha = n->op == QVG_LEAKY_RELU ? n->alpha : n->op == QVG_CLIP ? n->clip_min : 0.0f;
		st->act.beta = n->op == QVG_CLIP ? n->clip_max : 0.0f;
		bind_in(b, st, n->in[0]);
		return bind_out(b, st, n->out);
	case QVG_SOFTMAX: {
		if ((r = new_step(b, QV_STEP_SOFTMAX, n, &st)) < 0)
			return r;
		const struct qvg_tensor *x = &g->t[n->in[0]];
		uint64_t cols = 1;
		for (uint32_t i = (uint32_t)n->axis; i < x->rank; i++)
			cols *= (uint64_t)x->shape[i];
		st->cols = (uint32_t)cols;
		st->groups = (uint32_t)(x->numel / cols);
		bind_in(b, st, n->in[0]);
		return bind_out(b, st, n->out);
	}
	case QVG_CONCAT: {
		if ((r = new_step(b, QV_STEP_CONCAT, n, &st)) < 0)
			return r;
		const struct qvg_tensor *x = &g->t[n->in[0]];
		uint64_t outer = 1;
		for (uint32_t i = 1; i < (uint32_t)n->axis; i++)
			outer *= (uint64_t)x->shape[i];
		st->outer = (uint32_t)outer;
		st->n_src = n->n_in;
		st->srcs = calloc(n->n_in, sizeof(*st->srcs));
		st->part = calloc(n->n_in, sizeof(*st->part));
		if (!st->srcs || !st->part)
			return -ENOMEM;
		for (uint32_t i = 0; i < n->n_in; i++) {
			st->srcs[i] = (uint32_t)b->buf_of[n->in[i]];
			st->part[i] = (uint32_t)(g->t[n->in[i]].numel / outer);
		}
		st->src = st->srcs[0];
		st->in_w = (uint32_t)x->numel;
		return bind_out(b, st, n->out);
	}
	}
	return -EINVAL;
}

static int build_plan(struct qv_model *m, char *err, size_t err_len)
{
	struct qvg_graph *g = m->g;
	struct builder b = { .m = m, .g = g, .err = err, .err_len = err_len };
	int r = -ENOMEM;
	b.buf_of = malloc(((size_t)g->n_t + 1) * sizeof(*b.buf_of));
	b.consumed = calloc((size_t)g->n_nodes + 1, sizeof(*b.consumed));
	if (!b.buf_of || !b.consumed)
		goto out;
	for (uint32_t i = 0; i < g->n_t; i++)
		b.buf_of[i] = -1;
	uint32_t id;
	/* buffers 0 and 1 are the caller's input and output */
	if ((r = new_buf(&b, g->t[g->input].numel, &id)) < 0 ||
	    (r = new_buf(&b, g->t[g->output].numel, &id)) < 0)
		goto out;
	b.buf_of[g->input] = QV_BUF_IN;
	for (uint32_t i = 0; i < g->n_nodes; i++) {
		if (b.consumed[i])
			continue;
		if ((r = build_node(&b, i)) < 0)
			goto out;
	}
	int32_t ob = b.buf_of[g->output];
	if (ob == (int32_t)QV_BUF_IN) {
		struct qv_step *st;
		if ((r = new_step(&b, QV_STEP_COPY, NULL, &st)) < 0)
			goto out;
		bind_in(&b, st, g->input);
		st->dst = QV_BUF_OUT;
		st->out_w = st->in_w;
	} else {
		/* The producer of the output writes straight to the caller's buffer. */
		for (uint32_t i = 0; i < m->n_steps; i++) {
			struct qv_step *st = &m->steps[i];
			if (st->dst == (uint32_t)ob)
				st->dst = QV_BUF_OUT;
			if (st->src == (uint32_t)ob)
				st->src = QV_BUF_OUT;
			for (uint32_t j = 0; j < st->n_src; j++)
				if (st->srcs[j] == (uint32_t)ob)
					st->srcs[j] = QV_BUF_OUT;
		}
		m->buf_w[ob] = 0;
	}
	r = 0;
out:
	if (r == -ENOMEM)
		qvg_err(err, err_len, "model: out of memory");
	free(b.buf_of);
	free(b.consumed);
	return r;
}

/* ---- kernels: create and tune ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Best-of-rounds ns per run; which = 0 oneDNN, 1 hand. UINT64_MAX when a
 * oneDNN run failed: a timing of a failed primitive must not pick a kernel. */
static uint64_t time_one(const struct qv_step *st, struct qv_dnnl_dense_ctx *dc, int which, uint32_t bi,
			 const float *x, float *y, uint32_t iters)
{
	uint64_t best = UINT64_MAX;
	for (int round = 0; round < 5; round++) {
		uint64_t t0 = now_ns();
		for (uint32_t i = 0; i < iters; i++) {
			if (which)
				qv_hand_dense_run(st->hand, x, 1u << bi, y);
			else if (qv_dnnl_dense_run_bucket(st->dnnl, dc, bi, x, y) != 0)
				return UINT64_MAX;
		}
		uint64_t dt = (now_ns() - t0) / iters;
		if (dt < best)
			best = dt;
	}
	return best;
}

static int tune_step(uint32_t n_buckets, struct qv_step *st, uint32_t iters)
{
	uint32_t nt = n_buckets < QV_TUNED_BUCKETS ? n_buckets : QV_TUNED_BUCKETS;
	uint32_t rows = 1u << (nt - 1);
	float *x = malloc((size_t)rows * st->K * sizeof(float));
	float *y = malloc((size_t)rows * st->N * sizeof(float));
	struct qv_dnnl_dense_ctx *dc = NULL;
	int r = -ENOMEM;
	if (!x || !y)
		goto out;
	for (size_t i = 0; i < (size_t)rows * st->K; i++)
		x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
	if ((r = qv_dnnl_dense_ctx_create(st->dnnl, &dc)) < 0)
		goto out;
	for (uint32_t bi = 0; bi < nt; bi++) {
		/* From 16 rows up a run is long: halve the runs per doubling. */
		uint32_t it = bi <= 3 ? iters : iters >> (bi - 3);
		if (it < 3)
			it = 3;
		/* warm caches and any lazily paged memory first */
		time_one(st, dc, 0, bi, x, y, it < 8 ? it : 8);
		time_one(st, dc, 1, bi, x, y, it < 8 ? it : 8);
		uint64_t a = UINT64_MAX, h = UINT64_MAX;
		/* interleave to spread machine noise over both candidates */
		for (int k = 0; k < 2; k++) {
			uint64_t t = time_one(st, dc, 0, bi, x, y, it);
			if (t < a)
				a = t;
			t = time_one(st, dc, 1, bi, x, y, it);
			if (t < h)
				h = t;
		}
		if (a == UINT64_MAX) {
			r = -EIO; /* oneDNN failed to run its own primitive */
			goto out;
		}
		st->ns_dnnl[bi] = a;
		st->ns_hand[bi] = h;
		st->use_hand[bi] = h < a;
		st->any_hand |= st->use_hand[bi];
	}
	/* Rows below 2^k, where buckets 1..2^(k-1) all chose hand, would run as
	 * hand chunks anyway: one call does them together. */
	uint32_t k = 0;
	while (k < nt && st->use_hand[k])
		k++;
	st->hand_below = k ? 1u << k : 0;
	r = 0;
out:
	qv_dnnl_dense_ctx_free(dc);
	free(x);
	free(y);
	return r;
}

/*
 * With both kernels made: under "auto" times them per batch bucket, then
 * frees the hand kernel if no bucket chose it. Shared by fp32 and reduced
 * steps.
 */
static int tune_and_trim(struct qv_step *st, uint32_t nb, enum qv_kernel_choice kernels,
			 uint32_t iters, char *err, size_t err_len)
{
	if (kernels == QV_KERNEL_AUTO && st->hand) {
		int r = tune_step(nb, st, iters ? iters : 100);
		if (r < 0) {
			qvg_err(err, err_len, "step '%s': tuning: %s", st->label, strerror(-r));
			return r;
		}
	}
	if (!st->any_hand && st->hand) {
		qv_hand_dense_free(st->hand);
		st->hand = NULL;
	}
	return 0;
}

/*
 * bf16 / int8 kernels of a step: the reduced hand kernel (any rows) and,
 * for bf16, oneDNN's bf16 matmul, timed per bucket under AUTO exactly as
 * in fp32. int8 has no oneDNN path here (this oneDNN's int8 matmul takes
 * one source scale for the whole tensor, not one a row): its hand kernel
 * runs every batch.
 */
static int lowp_kernels(struct qv_step *st, uint32_t nb, uint32_t max_rows,
			enum qv_kernel_choice kernels, uint32_t iters, char *err, size_t err_len)
{
	int r = qv_hand_dense_create_lowp(st->W, st->K, st->N, st->b, st->act, st->prec, 0.0f,
					  &st->hand);
	if (r < 0)
		st->hand = NULL;
	if (st->prec == QV_PREC_BF16 && (kernels != QV_KERNEL_HAND || !st->hand)) {
		r = qv_dnnl_dense_create_bf16(st->W, st->K, st->N, st->b, st->act, max_rows, &st->dnnl);
		if (r < 0)
			st->dnnl = NULL;
	}
	if (!st->hand && !st->dnnl) {
		qvg_err(err, err_len, "step '%s' (dense %ux%u): no %s kernel", st->label, st->K, st->N,
			qv_prec_name(st->prec));
		return -ENOTSUP;
	}
	if (!st->dnnl || (kernels == QV_KERNEL_HAND && st->hand)) {
		st->all_hand = st->any_hand = true;
		return 0;
	}
	return tune_and_trim(st, nb, kernels, iters, err, err_len);
}

int qv_dense_step_kernels(struct qv_step *st, uint32_t max_rows, enum qv_kernel_choice kernels,
			  uint32_t iters, char *err, size_t err_len)
{
	uint32_t nb = 1;
	while ((1u << (nb - 1)) < max_rows)
		nb++;
	int r;
	if (st->prec != QV_PREC_FP32)
		return lowp_kernels(st, nb, max_rows, kernels, iters, err, err_len);
	if (kernels != QV_KERNEL_ONEDNN) {
		r = qv_hand_dense_create(st->W, st->K, st->N, st->b, st->act, -1, &st->hand);
		if (r < 0)
			st->hand = NULL; /* no hand kernel for this shape: oneDNN runs it */
	}
	if (kernels == QV_KERNEL_HAND && st->hand) {
		st->all_hand = st->any_hand = true;
		return 0;
	}
	r = qv_dnnl_dense_create(st->W, st->K, st->N, st->b, st->act, max_rows, &st->dnnl);
	if (r < 0) {
		qvg_err(err, err_len, "step '%s' (dense %ux%u): oneDNN primitive: %s", st->label,
			st->K, st->N, strerror(-r));
		return r;
	}
	return tune_and_trim(st, nb, kernels, iters, err, err_len);
}

static int make_kernels(struct qv_model *m, const struct qv_model_opts *o, char *err, size_t err_len)
{
	for (uint32_t i = 0; i < m->n_steps; i++) {
		struct qv_step *st = &m->steps[i];
		if (st->kind != QV_STEP_DENSE)
			continue;
		int r = qv_dense_step_kernels(st, m->info.max_batch, m->kernels, o->tune_iters, err, err_len);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- public entry points ---- */

static void fill_info(struct qv_model *m)
{
	const struct qvg_graph *g = m->g;
	const struct qvg_tensor *in = &g->t[g->input], *out = &g->t[g->output];
	struct qv_model_info *inf = &m->info;
	inf->in_dim = (uint32_t)in->numel;
	inf->out_dim = (uint32_t)out->numel;
	inf->n_steps = m->n_steps;
	inf->in_rank = in->rank;
	inf->out_rank = out->rank;
	memcpy(inf->in_shape, in->shape, sizeof(inf->in_shape));
	memcpy(inf->out_shape, out->shape, sizeof(inf->out_shape));
	snprintf(inf->in_name, sizeof(inf->in_name), "%s", in->name);
	snprintf(inf->out_name, sizeof(inf->out_name), "%s", out->name);
	qv_model_single_io(m);
}

const char *qv_dtype_name(uint32_t dt)
{
	switch (dt) {
	case QV_DT_F32:
		return "float32";
	case QV_DT_I32:
		return "int32";
	case QV_DT_I64:
		return "int64";
	}
	return "?";
}

static void single_tensor(struct qv_tensor_info *t, const char *name, uint32_t rank,
			  const int64_t *shape, uint32_t elems)
{
	memset(t, 0, sizeof(*t));
	size_t n = strnlen(name, sizeof(t->name) - 1);
	memcpy(t->name, name, n);
	t->dtype = QV_DT_F32;
	t->rank = rank;
	memcpy(t->shape, shape, sizeof(t->shape));
	t->row_elems = elems;
	t->row_bytes = elems * 4u;
}

void qv_model_single_io(struct qv_model *m)
{
	struct qv_model_info *inf = &m->info;
	single_tensor(&m->tin[0], inf->in_name, inf->in_rank, inf->in_shape, inf->in_dim);
	single_tensor(&m->tout[0], inf->out_name, inf->out_rank, inf->out_shape, inf->out_dim);
	inf->n_inputs = inf->n_outputs = 1;
}

static int pack_side(struct qv_tensor_info *t, uint32_t n, uint32_t *ret_words)
{
	uint64_t off = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t rb = (uint64_t)t[i].row_elems * qv_dtype_size(t[i].dtype);
		if (!qv_dtype_size(t[i].dtype) || rb > (1ull << 30) || off + rb > (1ull << 30))
			return -E2BIG;
		t[i].row_bytes = (uint32_t)rb;
		t[i].packed_off = (uint32_t)off;
		off += rb;
	}
	*ret_words = (uint32_t)(off / 4);
	return 0;
}

int qv_model_pack_io(struct qv_model *m)
{
	struct qv_model_info *inf = &m->info;
	if (!inf->n_inputs || inf->n_inputs > QV_MAX_TENSORS || !inf->n_outputs ||
	    inf->n_outputs > QV_MAX_TENSORS)
		return -EINVAL;
	int r = pack_side(m->tin, inf->n_inputs, &inf->in_dim);
	if (r == 0)
		r = pack_side(m->tout, inf->n_outputs, &inf->out_dim);
	if (r < 0)
		return r;
	inf->in_rank = m->tin[0].rank;
	inf->out_rank = m->tout[0].rank;
	memcpy(inf->in_shape, m->tin[0].shape, sizeof(inf->in_shape));
	memcpy(inf->out_shape, m->tout[0].shape, sizeof(inf->out_shape));
	_Static_assert(sizeof(inf->in_name) == QV_TENSOR_NAME_LEN, "name sizes");
	memcpy(inf->in_name, m->tin[0].name, sizeof(inf->in_name));
	memcpy(inf->out_name, m->tout[0].name, sizeof(inf->out_name));
	inf->in_name[sizeof(inf->in_name) - 1] = inf->out_name[sizeof(inf->out_name) - 1] = '\0';
	return 0;
}

int qv_model_new_kind(const struct qv_model_ops *ops, void *impl, uint32_t max_batch,
		      struct qv_model **ret_model)
{
	uint32_t mb = max_batch ? max_batch : QV_DEFAULT_MAX_BATCH;
	if (mb > (1u << (QV_MAX_BUCKETS - 1))) {
		ops->free(impl);
		return -EINVAL;
	}
	uint32_t p2 = 1, nb = 1;
	while (p2 < mb) {
		p2 *= 2;
		nb++;
	}
	struct qv_model *m = calloc(1, sizeof(*m));
	if (!m) {
		ops->free(impl);
		return -ENOMEM;
	}
	m->ops = ops;
	m->impl = impl;
	m->n_buckets = nb;
	m->info.max_batch = p2;
	*ret_model = m;
	return 0;
}

int qv_model_tensor(const qv_model *m, int is_output, uint32_t idx, struct qv_tensor_info *ret_info)
{
	if (!m || !ret_info)
		return -EINVAL;
	if (idx >= (is_output ? m->info.n_outputs : m->info.n_inputs))
		return -ENOENT;
	*ret_info = is_output ? m->tout[idx] : m->tin[idx];
	return 0;
}

int qv_model_load_buffer(const void *buf, size_t len, const struct qv_model_opts *opts,
			 qv_model **ret_model, char *err, size_t err_len)
{
	struct qv_model_opts o = { 0 };
	if (opts)
		o = *opts;
	if (err && err_len)
		err[0] = '\0';
	if (!ret_model)
		return -EINVAL;
	if (o.kernels != QV_KERNEL_AUTO && o.kernels != QV_KERNEL_ONEDNN && o.kernels != QV_KERNEL_HAND) {
		qvg_err(err, err_len, "options: unknown kernel choice %d", (int)o.kernels);
		return -EINVAL;
	}
	uint32_t mb = o.max_batch ? o.max_batch : QV_DEFAULT_MAX_BATCH;
	if (mb > (1u << (QV_MAX_BUCKETS - 1))) {
		qvg_err(err, err_len, "options: max_batch %u exceeds %u", mb, 1u << (QV_MAX_BUCKETS - 1));
		return -EINVAL;
	}
	/* XGBoost JSON and UBJSON both start with '{', which no ONNX protobuf
	 * can (0x7b would be field 15 as a group) */
	if (o.precision > QV_PRECISION_AUTO) {
		qvg_err(err, err_len, "options: unknown precision %d", (int)o.precision);
		return -EINVAL;
	}
	if (o.golden && (!o.golden_rows || o.golden_rows > (1u << 20))) {
		qvg_err(err, err_len, "options: golden set of %u rows (1..%u)", o.golden_rows, 1u << 20);
		return -EINVAL;
	}
	if (!(o.tol_abs >= 0.0f) || !(o.tol_rel >= 0.0f) || !(o.tol_top1 >= 0.0f && o.tol_top1 <= 1.0f) ||
	    isinf(o.tol_abs) || isinf(o.tol_rel)) {
		qvg_err(err, err_len, "options: tolerance must be finite and >= 0 (top1 in 0..1)");
		return -EINVAL;
	}
	if (qv_tree_sniff(buf, len)) {
		int tr = qv_tree_load_buffer(buf, len, &o, ret_model, err, err_len);
		if (tr == 0)
			qv_prec_report_fp32(*ret_model, o.precision, "tree models run in fp32 only");
		return tr;
	}
	uint32_t p2 = 1, nb = 1;
	while (p2 < mb) {
		p2 *= 2;
		nb++;
	}
	struct qv_model *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->kernels = o.kernels;
	m->n_buckets = nb;
	m->info.max_batch = p2;
	int r = qvg_from_onnx(buf, len, &m->g, err, err_len);
	if (r == 0)
		r = qvg_sort(m->g, err, err_len);
	if (r == 0)
		r = qvg_infer(m->g, err, err_len);
	if (r == 0) {
		uint64_t w = m->g->t[m->g->output].numel;
		uint64_t wi = m->g->t[m->g->input].numel;
		if ((w > wi ? w : wi) * p2 > (1ull << 30)) {
			qvg_err(err, err_len, "model: a batch of %u rows exceeds 4 GiB", p2);
			r = -E2BIG;
		}
	}
	if (r == 0)
		r = build_plan(m, err, err_len);
	if (r == 0) {
		uint64_t a = 0;
		for (uint32_t i = 2; i < m->n_bufs; i++)
			a += (m->buf_w[i] * p2 + 15) & ~15ull;
		m->arena_floats = a;
		if (a > (1ull << 30)) {
			qvg_err(err, err_len, "model: activations for %u rows exceed 4 GiB", p2);
			r = -E2BIG;
		}
	}
	if (r == 0)
		fill_info(m);
	if (r == 0)
		r = make_kernels(m, &o, err, err_len);
	if (r < 0) {
		qv_model_free(m);
		/* What the MLP plan refuses (several or integer tensors, ops it
		 * lacks) may be a general graph (gx_*.c); if that fails too,
		 * its error - naming the node and op - is the one reported. */
		if (r != -ENOMEM)
			r = gx_model_load(buf, len, &o, ret_model, err, err_len);
		if (r == 0)
			qv_prec_report_fp32(*ret_model, o.precision,
					    "general graph models run in fp32 only");
		return r;
	}
	r = qv_plan_precision(m, &o, err, err_len);
	if (r < 0) {
		qv_model_free(m);
		return r;
	}
	*ret_model = m;
	return 0;
}

int qv_model_load_file(const char *path, const struct qv_model_opts *opts,
		       qv_model **ret_model, char *err, size_t err_len)
{
	if (!path)
		return -EINVAL;
	/* errors name the file, not the directory: the caller knows where it looked */
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		qvg_err(err, err_len, "%s: %s", base, strerror(e));
		return -e;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    (uint64_t)sb.st_size > 2 * QVG_MAX_PARAM_BYTES) {
		qvg_err(err, err_len, "%s: not a regular file of a plausible size", base);
		close(fd);
		return -EINVAL;
	}
	size_t len = (size_t)sb.st_size;
	char *buf = malloc(len);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < len) {
		ssize_t k = read(fd, buf + got, len - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			int e = k < 0 ? errno : EIO;
			qvg_err(err, err_len, "%s: read: %s", base, strerror(e));
			free(buf);
			close(fd);
			return -e;
		}
		got += (size_t)k;
	}
	close(fd);
	char sub[QV_ERR_LEN];
	sub[0] = '\0';
	int r = qv_model_load_buffer(buf, len, opts, ret_model, sub, sizeof(sub));
	free(buf);
	if (r < 0)
		qvg_err(err, err_len, "%s: %s", base, sub);
	return r;
}

int qv_model_get_info(const qv_model *m, struct qv_model_info *ret_info)
{
	if (!m || !ret_info)
		return -EINVAL;
	*ret_info = m->info;
	return 0;
}

static const char *act_name(enum qv_act a)
{
	static const char *const names[] = { "", "relu", "leaky_relu", "sigmoid", "tanh", "clip" };
	return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "?";
}

void qv_put(char *buf, size_t len, size_t *k, const char *fmt, ...)
{
	if (*k >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *k, len - *k, fmt, ap);
	va_end(ap);
	if (n > 0)
		*k += (size_t)n;
}

int qv_model_describe(const qv_model *m, char *buf, size_t len)
{
	if (m && m->ops)
		return m->ops->describe(m, buf, len);
	static const char *const kinds[] = { "dense", "binary", "affine", "act", "softmax", "concat", "copy" };
	static const char *const binops[] = { "add", "sub", "mul", "div" };
	if (!m || !buf || !len)
		return -EINVAL;
	if (m->ens)
		return qv_ens_describe(m, buf, len);
	size_t k = 0;
	buf[0] = '\0';
	qv_put(buf, len, &k, "in '%s' %u floats, out '%s' %u floats, max_batch %u, %u steps\n", m->info.in_name,
	    m->info.in_dim, m->info.out_name, m->info.out_dim, m->info.max_batch, m->n_steps);
	for (uint32_t i = 0; i < m->n_steps; i++) {
		const struct qv_step *st = &m->steps[i];
		qv_put(buf, len, &k, "%2u %-7s %-24s", i, kinds[st->kind], st->label);
		switch (st->kind) {
		case QV_STEP_DENSE:
			qv_put(buf, len, &k, " %ux%u%s%s%s folded=%u kernel=%s", st->K, st->N, st->b ? " +bias" : "",
			    st->act.kind ? " " : "", act_name(st->act.kind), st->n_folded,
			    st->all_hand ? "hand" : st->any_hand ? "auto" : "onednn");
			if (st->prec != QV_PREC_FP32)
				qv_put(buf, len, &k, " prec=%s", qv_prec_name(st->prec));
			for (uint32_t bi = 0; bi < QV_TUNED_BUCKETS && !st->all_hand; bi++)
				if (st->ns_dnnl[bi] || st->ns_hand[bi])
					qv_put(buf, len, &k, " b%u:%s(onednn %lluns hand %lluns)", 1u << bi,
					    st->use_hand[bi] ? "hand" : "onednn",
					    (unsigned long long)st->ns_dnnl[bi], (unsigned long long)st->ns_hand[bi]);
			break;
		case QV_STEP_BINARY:
			qv_put(buf, len, &k, " %s %u floats%s", binops[st->op], st->out_w, st->c_is_lhs ? " (const lhs)" : "");
			break;
		case QV_STEP_ACT:
			qv_put(buf, len, &k, " %s %u floats", act_name(st->act.kind), st->out_w);
			break;
		case QV_STEP_SOFTMAX:
			qv_put(buf, len, &k, " %u x %u", st->groups, st->cols);
			break;
		default:
			qv_put(buf, len, &k, " %u -> %u floats", st->in_w, st->out_w);
			break;
		}
		qv_put(buf, len, &k, "\n");
	}
	return k < len ? 0 : -ENOBUFS;
}

int qv_model_plan(const qv_model *m, struct qv_plan_step *steps, uint32_t max, uint32_t *ret_n)
{
	static const char *const kinds[] = { "dense", "binary", "affine", "act", "softmax", "concat", "copy" };

	if (!m || !ret_n || (max && !steps))
		return -EINVAL;
	if (m->ops || m->ens)
		return -ENOTSUP;
	*ret_n = m->n_steps;
	if (m->n_steps > max)
		return -ENOBUFS;
	for (uint32_t i = 0; i < m->n_steps; i++) {
		const struct qv_step *st = &m->steps[i];
		struct qv_plan_step *p = &steps[i];

		memset(p, 0, sizeof(*p));
		snprintf(p->kind, sizeof(p->kind), "%s",
			 (unsigned)st->kind < sizeof(kinds) / sizeof(kinds[0]) ? kinds[st->kind] : "?");
		snprintf(p->label, sizeof(p->label), "%s", st->label);
		p->in_w = st->in_w;
		p->out_w = st->out_w;
		if (st->kind != QV_STEP_DENSE)
			continue;
		p->K = st->K;
		p->N = st->N;
		snprintf(p->act, sizeof(p->act), "%s", act_name(st->act.kind));
		snprintf(p->precision, sizeof(p->precision), "%s", qv_prec_name(st->prec));
		p->n_folded = st->n_folded;
		p->n_buckets = m->n_buckets < QV_PLAN_MAX_BUCKETS ? m->n_buckets : QV_PLAN_MAX_BUCKETS;
		/* The choice qv_dense_step_run() makes for exactly 2^b rows. */
		for (uint32_t b = 0; b < p->n_buckets; b++)
			p->hand[b] = st->all_hand || (1u << b) < st->hand_below ||
				     (st->any_hand && st->use_hand[b]);
	}
	return 0;
}

int qv_model_dense_chain(const struct qv_model *m, struct qv_dense_layer *layers,
			 uint32_t max_layers, uint32_t *ret_n)
{
	if (!m || !ret_n)
		return -EINVAL;
	if (m->ops == &gx_ops)
		return gx_dense_chain(m, layers, max_layers, ret_n);
	uint32_t prev = QV_BUF_IN;
	for (uint32_t i = 0; i < m->n_steps; i++) {
		const struct qv_step *st = &m->steps[i];
		if (st->kind != QV_STEP_DENSE || st->src != prev)
			return -ENOTSUP;
		prev = st->dst;
	}
	if (prev != QV_BUF_OUT || !m->n_steps)
		return -ENOTSUP;
	if (m->n_steps > max_layers || !layers)
		return -ENOBUFS;
	for (uint32_t i = 0; i < m->n_steps; i++) {
		const struct qv_step *st = &m->steps[i];
		layers[i] = (struct qv_dense_layer){ st->K, st->N, st->W, st->b, st->act, 1 };
	}
	*ret_n = m->n_steps;
	return 0;
}
