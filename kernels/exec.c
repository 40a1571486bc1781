/* SPDX-License-Identifier: Apache-2.0 */
/*
 * exec.c - running a plan (qv_run, the hot path) and the unfused reference
 * walk of the graph (qv_run_reference, slow path).
 *
 * qv_run touches only what qv_exec_ctx_create made: the buffer table, the
 * scratch arena and the oneDNN contexts. Non-dense steps are tight loops
 * here, written so the compiler vectorises them; they are deliberately not
 * the qv_ref_* functions, which stay the independent reference.
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

void qv_exec_ctx_free(qv_exec_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->m->ops) {
		ctx->m->ops->ctx_free(ctx->m, ctx->impl);
		free(ctx);
		return;
	}
	qv_ens_ctx_free(ctx->ens, ctx->m->ens);
	if (ctx->dctx)
		for (uint32_t i = 0; i < ctx->m->n_steps; i++)
			qv_dnnl_dense_ctx_free(ctx->dctx[i]);
	free(ctx->dctx);
	free(ctx->bufs);
	free(ctx->arena);
	free(ctx);
}

int qv_exec_ctx_create(const qv_model *m, qv_exec_ctx **ret_ctx)
{
	if (!m || !ret_ctx)
		return -EINVAL;
	if (m->ens)
		return qv_ens_ctx_create(m, ret_ctx);
	qv_thread_init();
	if (m->ops) {
		struct qv_exec_ctx *k = calloc(1, sizeof(*k));
		if (!k)
			return -ENOMEM;
		k->m = m;
		int r = m->ops->ctx_create(m, &k->impl);
		if (r < 0) {
			free(k);
			return r;
		}
		*ret_ctx = k;
		return 0;
	}
	struct qv_exec_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->m = m;
	c->bufs = calloc(m->n_bufs, sizeof(*c->bufs));
	c->dctx = calloc(m->n_steps ? m->n_steps : 1, sizeof(*c->dctx));
	if (m->arena_floats)
		c->arena = aligned_alloc(64, m->arena_floats * sizeof(float));
	if (!c->bufs || !c->dctx || (m->arena_floats && !c->arena)) {
		qv_exec_ctx_free(c);
		return -ENOMEM;
	}
	uint64_t off = 0;
	for (uint32_t i = 2; i < m->n_bufs; i++) {
		if (!m->buf_w[i])
			continue;
		c->bufs[i] = c->arena + off;
		off += (m->buf_w[i] * m->info.max_batch + 15) & ~15ull;
	}
	for (uint32_t i = 0; i < m->n_steps; i++) {
		const struct qv_step *st = &m->steps[i];
		if (st->kind != QV_STEP_DENSE || !st->dnnl)
			continue;
		int r = qv_dnnl_dense_ctx_create(st->dnnl, &c->dctx[i]);
		if (r < 0) {
			qv_exec_ctx_free(c);
			return r;
		}
	}
	*ret_ctx = c;
	return 0;
}

/* ---- non-dense steps ---- */

/* The activations run_act has no loop of its own for. */
static float act1(float v, struct qv_act_desc a)
{
	switch (a.kind) {
	case QV_ACT_SIGMOID:
		return 1.0f / (1.0f + expf(-v));
	case QV_ACT_TANH:
		return tanhf(v);
	case QV_ACT_CLIP:
		/* NaN passes through, as in the reference */
		v = v < a.alpha ? a.alpha : v;
		return v > a.beta ? a.beta : v;
	default:
		return v;
	}
}

static void run_act(const float *restrict x, float *restrict y, size_t n, struct qv_act_desc a)
{
	/* one loop per kind so each vectorises on its own */
	switch (a.kind) {
	case QV_ACT_RELU:
		for (size_t i = 0; i < n; i++)
			y[i] = x[i] > 0.0f ? x[i] : 0.0f;
		break;
	case QV_ACT_LEAKY_RELU:
		for (size_t i = 0; i < n; i++)
			y[i] = x[i] < 0.0f ? a.alpha * x[i] : x[i];
		break;
	default:
		for (size_t i = 0; i < n; i++)
			y[i] = act1(x[i], a);
		break;
	}
}

static void run_binary(const struct qv_step *st, const float *restrict x, float *restrict y, uint32_t rows)
{
	const float *restrict c = st->c;
	size_t w = st->out_w;
	for (uint32_t r = 0; r < rows; r++, x += w, y += w) {
		switch (st->op) {
		case QV_BIN_ADD:
			for (size_t i = 0; i < w; i++)
				y[i] = x[i] + c[i];
			break;
		case QV_BIN_SUB:
			if (st->c_is_lhs)
				for (size_t i = 0; i < w; i++)
					y[i] = c[i] - x[i];
			else
				for (size_t i = 0; i < w; i++)
					y[i] = x[i] - c[i];
			break;
		case QV_BIN_MUL:
			for (size_t i = 0; i < w; i++)
				y[i] = x[i] * c[i];
			break;
		case QV_BIN_DIV:
			if (st->c_is_lhs)
				for (size_t i = 0; i < w; i++)
					y[i] = c[i] / x[i];
			else
				for (size_t i = 0; i < w; i++)
					y[i] = x[i] / c[i];
			break;
		}
	}
}

static void run_softmax(const float *x, float *y, size_t n, uint32_t cols)
{
	for (size_t g = 0; g < n; g++, x += cols, y += cols) {
		float mx = x[0];
		for (uint32_t i = 1; i < cols; i++)
			mx = x[i] > mx ? x[i] : mx;
		float sum = 0.0f;
		for (uint32_t i = 0; i < cols; i++) {
			y[i] = expf(x[i] - mx);
			sum += y[i];
		}
		float inv = 1.0f / sum;
		for (uint32_t i = 0; i < cols; i++)
			y[i] *= inv;
	}
}

void qv_step_run_other(const struct qv_step *st, float *const *bufs, uint32_t rows)
{
	const float *x = bufs[st->src];
	float *y = bufs[st->dst];
	size_t n = (size_t)rows * st->out_w;
	switch (st->kind) {
	case QV_STEP_BINARY:
		run_binary(st, x, y, rows);
		break;
	case QV_STEP_AFFINE:
		for (uint32_t r = 0; r < rows; r++) {
			const float *restrict xr = x + (size_t)r * st->out_w;
			float *restrict yr = y + (size_t)r * st->out_w;
			const float *restrict pre = st->pre, *restrict sc = st->c, *restrict sh = st->shift;
			for (size_t i = 0; i < st->out_w; i++)
				yr[i] = (xr[i] + pre[i]) * sc[i] + sh[i];
		}
		break;
	case QV_STEP_ACT:
		run_act(x, y, n, st->act);
		break;
	case QV_STEP_SOFTMAX:
		run_softmax(x, y, (size_t)rows * st->groups, st->cols);
		break;
	case QV_STEP_CONCAT: {
		float *o = y;
		for (size_t b = 0; b < (size_t)rows * st->outer; b++) {
			for (uint32_t j = 0; j < st->n_src; j++) {
				memcpy(o, bufs[st->srcs[j]] + b * st->part[j], st->part[j] * sizeof(float));
				o += st->part[j];
			}
		}
		break;
	}
	case QV_STEP_COPY:
		memcpy(y, x, n * sizeof(float));
		break;
	case QV_STEP_DENSE:
		break;
	}
}

int qv_dense_step_run(const struct qv_step *st, struct qv_dnnl_dense_ctx *dc, const float *x,
		      uint32_t rows, float *y)
{
	if (st->all_hand || rows < st->hand_below) {
		qv_hand_dense_run(st->hand, x, rows, y);
		return 0;
	}
	if (!st->any_hand)
		return qv_dnnl_dense_run(st->dnnl, dc, x, rows, y);
	/* power-of-two chunks, each on the kernel tuned fastest for it; a rest
	 * that the hand kernel takes in one call goes in one call */
	while (rows) {
		if (rows < st->hand_below) {
			qv_hand_dense_run(st->hand, x, rows, y);
			return 0;
		}
		uint32_t bi = 31u - (uint32_t)__builtin_clz(rows);
		uint32_t n = 1u << bi;
		if (st->use_hand[bi]) {
			qv_hand_dense_run(st->hand, x, n, y);
		} else {
			int r = qv_dnnl_dense_run_bucket(st->dnnl, dc, bi, x, y);
			if (r < 0)
				return r;
		}
		x += (size_t)n * st->K;
		y += (size_t)n * st->N;
		rows -= n;
	}
	return 0;
}

int qv_run(qv_exec_ctx *ctx, const float *in, uint32_t rows, float *out)
{
	const struct qv_model *m = ctx->m;
	if (rows == 0 || rows > m->info.max_batch)
		return -EINVAL;
	if (__builtin_expect(m->ops != NULL, 0))
		return m->ops->run(m, ctx->impl, in, rows, out);
	if (__builtin_expect(m->ens != NULL, 0))
		return qv_ens_run(ctx, in, rows, out);
	/* A thread-local read; set once per thread (see onednn_dense.c). */
	if (__builtin_expect(omp_get_max_threads() != 1, 0))
		qv_thread_init();
	float **bufs = ctx->bufs;
	/* the caller's input is only ever read */
	bufs[QV_BUF_IN] = (float *)(uintptr_t)in;
	bufs[QV_BUF_OUT] = out;
	for (uint32_t i = 0; i < m->n_steps; i++) {
		const struct qv_step *st = &m->steps[i];
		if (st->kind == QV_STEP_DENSE) {
			int r = qv_dense_step_run(st, ctx->dctx[i], bufs[st->src], rows, bufs[st->dst]);
			if (__builtin_expect(r < 0, 0))
				return r;
		} else {
			qv_step_run_other(st, bufs, rows);
		}
	}
	return 0;
}

int qv_run_tensors(qv_exec_ctx *ctx, uint32_t rows, const void *const *in, void *const *out)
{
	const struct qv_model *m = ctx->m;
	if (m->ops && m->ops->run_tensors) {
		if (rows == 0 || rows > m->info.max_batch)
			return -EINVAL;
		return m->ops->run_tensors(m, ctx->impl, rows, in, out);
	}
	/* one tensor in and out: the packed row is the tensor's row */
	return qv_run(ctx, in[0], rows, out[0]);
}

/* ---- reference: the unfused graph, op by op, with qv_ref_* ---- */

static void rows_shape(const struct qvg_tensor *t, uint32_t rows, int64_t *shape)
{
	memcpy(shape, t->shape, sizeof(t->shape));
	shape[0] = rows;
}

static int ref_node(const struct qvg_graph *g, const struct qvg_node *n, float *const *val,
		    uint32_t rows, float *y)
{
	const struct qvg_tensor *xt = &g->t[n->in[0]];
	const float *x = val[n->in[0]];
	size_t ny = (size_t)rows * g->t[n->out].numel;
	struct qv_act_desc act = { QV_ACT_NONE, 0.0f, 0.0f };
	int64_t xs[QV_MAX_RANK];
	switch (n->op) {
	case QVG_GEMM:
	case QVG_MATMUL:
		qv_ref_dense(x, rows, n->K, n->W, n->N, n->b, act, y);
		return 0;
	case QVG_ADD:
	case QVG_SUB:
	case QVG_MUL:
	case QVG_DIV: {
		const struct qvg_tensor *c = &g->t[n->c_id], *t = &g->t[n->x_id];
		rows_shape(t, rows, xs);
		enum qv_binop op = n->op == QVG_ADD ? QV_BIN_ADD : n->op == QVG_SUB ? QV_BIN_SUB
				   : n->op == QVG_MUL ? QV_BIN_MUL : QV_BIN_DIV;
		return qv_ref_binary(op, val[n->x_id], xs, t->rank, c->data, c->shape, c->rank,
				     n->c_is_lhs, y);
	}
	case QVG_RELU:
		act.kind = QV_ACT_RELU;
		break;
	case QVG_LEAKY_RELU:
		act = (struct qv_act_desc){ QV_ACT_LEAKY_RELU, n->alpha, 0.0f };
		break;
	case QVG_SIGMOID:
		act.kind = QV_ACT_SIGMOID;
		break;
	case QVG_TANH:
		act.kind = QV_ACT_TANH;
		break;
	case QVG_CLIP:
		act = (struct qv_act_desc){ QV_ACT_CLIP, n->clip_min, n->clip_max };
		break;
	case QVG_SOFTMAX: {
		uint64_t cols = 1;
		for (uint32_t i = (uint32_t)n->axis; i < xt->rank; i++)
			cols *= (uint64_t)xt->shape[i];
		qv_ref_softmax(x, (uint32_t)((uint64_t)rows * (xt->numel / cols)), (uint32_t)cols, y);
		return 0;
	}
	case QVG_FLATTEN:
	case QVG_RESHAPE:
	case QVG_IDENTITY:
	case QVG_DROPOUT:
		memcpy(y, x, ny * sizeof(float));
		return 0;
	case QVG_CONCAT: {
		const float **ins = calloc(n->n_in, sizeof(*ins));
		int64_t *shp = calloc((size_t)n->n_in * QV_MAX_RANK, sizeof(*shp));
		const int64_t **sp = calloc(n->n_in, sizeof(*sp));
		int r = -ENOMEM;
		if (ins && shp && sp) {
			for (uint32_t i = 0; i < n->n_in; i++) {
				ins[i] = val[n->in[i]];
				rows_shape(&g->t[n->in[i]], rows, shp + (size_t)i * QV_MAX_RANK);
				sp[i] = shp + (size_t)i * QV_MAX_RANK;
			}
			qv_ref_concat(ins, sp, n->n_in, xt->rank, (uint32_t)n->axis, y);
			r = 0;
		}
		free(ins);
		free(shp);
		free(sp);
		return r;
	}
	case QVG_BATCHNORM: {
		uint32_t C = (uint32_t)xt->shape[1];
		qv_ref_batchnorm(x, rows, C, xt->numel / C, g->t[n->in[1]].data, g->t[n->in[2]].data,
				 g->t[n->in[3]].data, g->t[n->in[4]].data, n->eps, y);
		return 0;
	}
	}
	qv_ref_act(x, ny, act, y);
	return 0;
}

int qv_run_reference(const qv_model *m, const float *in, uint32_t rows, float *out)
{
	if (!m || !in || !out || rows == 0 || rows > m->info.max_batch)
		return -EINVAL;
	if (m->ops)
		return m->ops->run_reference(m, in, rows, out);
	if (m->ens)
		return qv_ens_run_reference(m, in, rows, out);
	const struct qvg_graph *g = m->g;
	float **val = calloc(g->n_t, sizeof(*val));
	if (!val)
		return -ENOMEM;
	int r = 0;
	val[g->input] = (float *)(uintptr_t)in;
	for (uint32_t i = 0; i < g->n_nodes && r == 0; i++) {
		const struct qvg_node *n = &g->nodes[i];
		float *y = malloc(((size_t)rows * g->t[n->out].numel + 1) * sizeof(float));
		if (!y) {
			r = -ENOMEM;
			break;
		}
		val[n->out] = y;
		r = ref_node(g, n, val, rows, y);
	}
	if (r == 0)
		memcpy(out, val[g->output], (size_t)rows * g->t[g->output].numel * sizeof(float));
	for (uint32_t i = 0; i < g->n_t; i++)
		if ((int32_t)i != g->input)
			free(val[i]);
	free(val);
	return r;
}
