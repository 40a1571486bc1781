/* SPDX-License-Identifier: Apache-2.0 */
/*
 * graph.c - graph bookkeeping, topological order and shape inference.
 *
 * Shape inference is also where every op's inputs are validated, so that
 * plan.c and the reference path can trust shapes, ranks and constant
 * sizes without checking again. The batch dimension (-1) must stay the
 * first dimension of every computed tensor and never mix with the others:
 * an op that would move it (Flatten axis 0, Concat on axis 0, a Reshape
 * that fixes it) is refused.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

void qvg_err(char *err, size_t err_len, const char *fmt, ...)
{
	if (!err || !err_len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

void qvg_node_err(char *err, size_t err_len, const struct qvg_node *n, const char *fmt, ...)
{
	if (!err || !err_len)
		return;
	int k = snprintf(err, err_len, "node '%.100s' (%s): ", n->name, n->op_name);
	if (k < 0 || (size_t)k >= err_len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + k, err_len - (size_t)k, fmt, ap);
	va_end(ap);
}

void qvg_free(struct qvg_graph *g)
{
	if (!g)
		return;
	for (uint32_t i = 0; i < g->n_t; i++) {
		free(g->t[i].name);
		free(g->t[i].data);
		free(g->t[i].i64);
	}
	free(g->t);
	qv_name_index_free(&g->names);
	for (uint32_t i = 0; i < g->n_nodes; i++) {
		free(g->nodes[i].name);
		free(g->nodes[i].in);
		free(g->nodes[i].W);
		free(g->nodes[i].b);
	}
	free(g->nodes);
	free(g);
}

static const char *tensor_name(const void *owner, int32_t id)
{
	return ((const struct qvg_graph *)owner)->t[id].name;
}

int qvg_tensor_add(struct qvg_graph *g, const char *name, int32_t *ret_id)
{
	if (g->n_t >= 4 * QVG_MAX_NODES + 1024)
		return -E2BIG;
	if (g->n_t == g->cap_t) {
		uint32_t cap = g->cap_t ? 2 * g->cap_t : 32;
		struct qvg_tensor *t = realloc(g->t, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		g->t = t;
		g->cap_t = cap;
	}
	int r = qv_name_index_reserve(&g->names, g->n_t, 64, tensor_name, g);
	if (r < 0)
		return r;
	struct qvg_tensor *t = &g->t[g->n_t];
	memset(t, 0, sizeof(*t));
	t->name = strdup(name);
	if (!t->name)
		return -ENOMEM;
	t->producer = -1;
	*ret_id = (int32_t)g->n_t++;
	qv_name_index_put(&g->names, t->name, *ret_id);
	return 0;
}

int32_t qvg_tensor_find(const struct qvg_graph *g, const char *name)
{
	return qv_name_index_find(&g->names, name, tensor_name, g);
}

uint64_t qvg_inner(const struct qvg_tensor *t)
{
	uint64_t n = 1;
	for (uint32_t i = 1; i < t->rank; i++)
		n *= (uint64_t)t->shape[i];
	return n;
}

/* Kahn's algorithm; also checks that every input is defined. */
int qvg_sort(struct qvg_graph *g, char *err, size_t err_len)
{
	uint32_t n = g->n_nodes;
	int r = -ENOMEM;
	uint32_t *indeg = calloc(n + 1, sizeof(*indeg));
	uint32_t *order = calloc(n + 1, sizeof(*order));
	uint32_t *ready = calloc(n + 1, sizeof(*ready));
	int32_t *remap = calloc(n + 1, sizeof(*remap));
	struct qvg_node *sorted = calloc(n + 1, sizeof(*sorted));
	size_t *cstart = NULL;
	uint32_t *cons = NULL;
	if (!indeg || !order || !ready || !remap || !sorted)
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		struct qvg_node *nd = &g->nodes[i];
		for (uint32_t j = 0; j < nd->n_in; j++) {
			int32_t tid = nd->in[j];
			if (tid < 0)
				continue;
			struct qvg_tensor *t = &g->t[tid];
			if (!t->defined) {
				qvg_node_err(err, err_len, nd, "input '%.100s' is undefined (no initializer, "
					     "graph input or node output)", t->name);
				r = -EINVAL;
				goto out;
			}
			t->n_consumers++;
			if (t->producer >= 0)
				indeg[i]++;
		}
	}
	/* consumers of each tensor, CSR: cons[cstart[t] .. cstart[t + 1]) */
	cstart = calloc((size_t)g->n_t + 1, sizeof(*cstart));
	size_t total = 0;
	for (uint32_t i = 0; i < n; i++)
		total += g->nodes[i].n_in;
	cons = calloc(total + 1, sizeof(*cons));
	if (!cstart || !cons) {
		r = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = 0; j < g->nodes[i].n_in; j++)
			if (g->nodes[i].in[j] >= 0)
				cstart[g->nodes[i].in[j] + 1]++;
	for (uint32_t t = 0; t < g->n_t; t++)
		cstart[t + 1] += cstart[t];
	{
		size_t *fill = calloc((size_t)g->n_t + 1, sizeof(*fill));
		if (!fill) {
			r = -ENOMEM;
			goto out;
		}
		for (uint32_t i = 0; i < n; i++)
			for (uint32_t j = 0; j < g->nodes[i].n_in; j++) {
				int32_t t = g->nodes[i].in[j];
				if (t >= 0)
					cons[cstart[t] + fill[t]++] = i;
			}
		free(fill);
	}
	uint32_t n_ready = 0, n_done = 0;
	for (uint32_t i = 0; i < n; i++)
		if (!indeg[i])
			ready[n_ready++] = i;
	while (n_ready) {
		uint32_t i = ready[--n_ready];
		order[n_done++] = i;
		int32_t out = g->nodes[i].out;
		for (size_t k = cstart[out]; k < cstart[out + 1]; k++)
			if (--indeg[cons[k]] == 0)
				ready[n_ready++] = cons[k];
	}
	if (n_done != n) {
		for (uint32_t i = 0; i < n; i++) {
			if (!indeg[i])
				continue;
			struct qvg_node *nd = &g->nodes[i];
			const char *via = "?";
			for (uint32_t j = 0; j < nd->n_in; j++)
				if (nd->in[j] >= 0 && g->t[nd->in[j]].producer >= 0 &&
				    indeg[g->t[nd->in[j]].producer])
					via = g->t[nd->in[j]].name;
			qvg_node_err(err, err_len, nd, "cycle through input '%.100s'", via);
			break;
		}
		r = -ELOOP;
		goto out;
	}
	for (uint32_t k = 0; k < n; k++) {
		sorted[k] = g->nodes[order[k]];
		remap[order[k]] = (int32_t)k;
	}
	for (uint32_t t = 0; t < g->n_t; t++)
		if (g->t[t].producer >= 0)
			g->t[t].producer = remap[g->t[t].producer];
	free(g->nodes);
	g->nodes = sorted;
	sorted = NULL;
	r = 0;
out:
	free(indeg);
	free(order);
	free(ready);
	free(remap);
	free(sorted);
	free(cstart);
	free(cons);
	return r;
}

static int set_out(struct qvg_graph *g, struct qvg_node *n, uint32_t rank, const int64_t *shape,
		   char *err, size_t err_len)
{
	struct qvg_tensor *o = &g->t[n->out];
	o->rank = rank;
	uint64_t inner = 1;
	for (uint32_t i = 0; i < rank; i++) {
		o->shape[i] = shape[i];
		if (i == 0)
			continue;
		if (shape[i] <= 0 || shape[i] > QVG_MAX_DIM) {
			qvg_node_err(err, err_len, n, "output dimension %u is %lld", i, (long long)shape[i]);
			return -EINVAL;
		}
		inner *= (uint64_t)shape[i];
		if (inner > QVG_MAX_ROW_FLOATS) {
			qvg_node_err(err, err_len, n, "output row exceeds %llu floats",
				     (unsigned long long)QVG_MAX_ROW_FLOATS);
			return -E2BIG;
		}
	}
	o->shape[0] = -1;
	o->numel = inner;
	return 0;
}

static void shape_str(const struct qvg_tensor *t, char *s, size_t len)
{
	size_t k = 0;
	k += (size_t)snprintf(s + k, len - k, "[");
	for (uint32_t i = 0; i < t->rank && k < len; i++) {
		if (t->shape[i] < 0)
			k += (size_t)snprintf(s + k, len - k, "%sN", i ? "," : "");
		else
			k += (size_t)snprintf(s + k, len - k, "%s%lld", i ? "," : "", (long long)t->shape[i]);
	}
	if (k < len)
		snprintf(s + k, len - k, "]");
}

/* A constant broadcastable to [1, N] (scalar, [N], [1,N], [1], ...). */
static bool per_feature(const struct qvg_tensor *c, uint64_t N)
{
	if (c->rank > 2)
		return false;
	if (c->rank == 2 && c->shape[0] != 1)
		return false;
	return c->numel == 1 || (c->rank >= 1 && (uint64_t)c->shape[c->rank - 1] == N && c->numel == N);
}

static int infer_dense(struct qvg_graph *g, struct qvg_node *n, char *err, size_t err_len)
{
	char s1[64], s2[64];
	uint32_t need = n->op == QVG_GEMM ? 2 : 2;
	if (n->n_in < need || n->n_in > (n->op == QVG_GEMM ? 3u : 2u) || n->in[0] < 0 || n->in[1] < 0) {
		qvg_node_err(err, err_len, n, "wrong number of inputs (%u)", n->n_in);
		return -EINVAL;
	}
	struct qvg_tensor *a = &g->t[n->in[0]], *bt = &g->t[n->in[1]];
	if (a->is_const || !bt->is_const || !bt->data) {
		qvg_node_err(err, err_len, n, "only computed A times a float constant B is supported");
		return -ENOTSUP;
	}
	if (n->trans_a != 0) {
		qvg_node_err(err, err_len, n, "transA=%lld is not supported (the batch must lead A)",
			     (long long)n->trans_a);
		return -ENOTSUP;
	}
	if (n->trans_b != 0 && n->trans_b != 1) {
		qvg_node_err(err, err_len, n, "transB=%lld is not 0 or 1", (long long)n->trans_b);
		return -EINVAL;
	}
	if (a->rank != 2 || bt->rank != 2) {
		shape_str(a, s1, sizeof(s1));
		shape_str(bt, s2, sizeof(s2));
		qvg_node_err(err, err_len, n, "needs rank-2 operands, got A %s and B %s", s1, s2);
		return -ENOTSUP;
	}
	uint64_t K = (uint64_t)a->shape[1];
	uint64_t bk = (uint64_t)(n->trans_b ? bt->shape[1] : bt->shape[0]);
	uint64_t N = (uint64_t)(n->trans_b ? bt->shape[0] : bt->shape[1]);
	if (bk != K) {
		shape_str(a, s1, sizeof(s1));
		shape_str(bt, s2, sizeof(s2));
		qvg_node_err(err, err_len, n, "mismatched shapes: A %s, B %s%s", s1, s2,
			     n->trans_b ? " (transposed)" : "");
		return -EINVAL;
	}
	const struct qvg_tensor *ct = NULL;
	if (n->op == QVG_GEMM && n->n_in == 3 && n->in[2] >= 0) {
		ct = &g->t[n->in[2]];
		if (!ct->is_const || !ct->data || !per_feature(ct, N)) {
			shape_str(ct, s1, sizeof(s1));
			qvg_node_err(err, err_len, n, "C %s must be a float constant broadcastable to [1,%llu]",
				     s1, (unsigned long long)N);
			return -ENOTSUP;
		}
	}
	n->K = (uint32_t)K;
	n->N = (uint32_t)N;
	n->W = malloc(K * N * sizeof(float));
	if (!n->W)
		return -ENOMEM;
	float alpha = n->op == QVG_GEMM ? n->alpha : 1.0f;
	for (uint64_t k = 0; k < K; k++)
		for (uint64_t j = 0; j < N; j++)
			n->W[k * N + j] = alpha * (n->trans_b ? bt->data[j * K + k] : bt->data[k * N + j]);
	if (ct && n->beta != 0.0f) {
		n->b = malloc(N * sizeof(float));
		if (!n->b)
			return -ENOMEM;
		for (uint64_t j = 0; j < N; j++)
			n->b[j] = n->beta * ct->data[ct->numel == 1 ? 0 : j];
	}
	int64_t shape[2] = { -1, (int64_t)N };
	return set_out(g, n, 2, shape, err, err_len);
}

static int infer_binary(struct qvg_graph *g, struct qvg_node *n, char *err, size_t err_len)
{
	if (n->n_in != 2 || n->in[0] < 0 || n->in[1] < 0) {
		qvg_node_err(err, err_len, n, "needs two inputs");
		return -EINVAL;
	}
	struct qvg_tensor *t0 = &g->t[n->in[0]], *t1 = &g->t[n->in[1]];
	if (t0->is_const == t1->is_const) {
		qvg_node_err(err, err_len, n, "exactly one operand must be a constant");
		return -ENOTSUP;
	}
	n->c_is_lhs = t0->is_const;
	n->c_id = n->c_is_lhs ? n->in[0] : n->in[1];
	n->x_id = n->c_is_lhs ? n->in[1] : n->in[0];
	const struct qvg_tensor *c = &g->t[n->c_id], *x = &g->t[n->x_id];
	if (!c->data) {
		qvg_node_err(err, err_len, n, "constant '%.100s' is not float32", c->name);
		return -ENOTSUP;
	}
	bool ok = c->rank <= x->rank;
	for (uint32_t j = 0; ok && j < c->rank; j++) {
		uint32_t i = x->rank - c->rank + j;
		int64_t cd = c->shape[j];
		ok = cd == 1 || (i > 0 && cd == x->shape[i]);
	}
	if (!ok) {
		char s1[64], s2[64];
		shape_str(x, s1, sizeof(s1));
		shape_str(c, s2, sizeof(s2));
		qvg_node_err(err, err_len, n, "mismatched shapes: constant %s does not broadcast to %s", s2, s1);
		return -EINVAL;
	}
	return set_out(g, n, x->rank, x->shape, err, err_len);
}

static int infer_reshape(struct qvg_graph *g, struct qvg_node *n, const struct qvg_tensor *x,
			 char *err, size_t err_len)
{
	if (n->n_in != 2 || n->in[1] < 0 || !g->t[n->in[1]].is_const || !g->t[n->in[1]].i64 ||
	    g->t[n->in[1]].rank != 1) {
		qvg_node_err(err, err_len, n, "shape must be a 1-D int64 initializer");
		return -ENOTSUP;
	}
	const struct qvg_tensor *st = &g->t[n->in[1]];
	if (st->numel < 1 || st->numel > QV_MAX_RANK) {
		qvg_node_err(err, err_len, n, "shape of rank %llu is not supported", (unsigned long long)st->numel);
		return -ENOTSUP;
	}
	uint32_t rank = (uint32_t)st->numel;
	int64_t shape[QV_MAX_RANK];
	int neg = -1;
	uint64_t known = 1, inner = qvg_inner(x);
	for (uint32_t i = 0; i < rank; i++) {
		int64_t v = st->i64[i];
		if (v == 0) {
			if (i >= x->rank) {
				qvg_node_err(err, err_len, n, "0 at position %u has no input dimension", i);
				return -EINVAL;
			}
			v = x->shape[i];
		} else if (v == -1) {
			if (neg >= 0) {
				qvg_node_err(err, err_len, n, "more than one -1 in the shape");
				return -EINVAL;
			}
			neg = (int)i;
		} else if (v < 0 || v > QVG_MAX_DIM) {
			qvg_node_err(err, err_len, n, "bad dimension %lld", (long long)v);
			return -EINVAL;
		}
		shape[i] = v;
		if (i > 0 && v > 0)
			known *= (uint64_t)v;
		if (known > QVG_MAX_ROW_FLOATS) {
			qvg_node_err(err, err_len, n, "shape too large");
			return -E2BIG;
		}
	}
	if (shape[0] != -1) {
		qvg_node_err(err, err_len, n, "would fix the batch dimension to %lld", (long long)shape[0]);
		return -ENOTSUP;
	}
	if (neg > 0) {
		if (inner % known) {
			qvg_node_err(err, err_len, n, "cannot infer -1: %llu floats a row do not divide by %llu",
				     (unsigned long long)inner, (unsigned long long)known);
			return -EINVAL;
		}
		shape[neg] = (int64_t)(inner / known);
		known = inner;
	}
	if (known != inner) {
		qvg_node_err(err, err_len, n, "mismatched shapes: %llu floats a row become %llu "
			     "(the batch must stay the first dimension)",
			     (unsigned long long)inner, (unsigned long long)known);
		return -EINVAL;
	}
	return set_out(g, n, rank, shape, err, err_len);
}

static int const_scalar(const struct qvg_graph *g, const struct qvg_node *n, uint32_t i, float *v,
			char *err, size_t err_len)
{
	if (i >= n->n_in || n->in[i] < 0)
		return 0;
	const struct qvg_tensor *c = &g->t[n->in[i]];
	if (!c->is_const || !c->data || c->numel != 1) {
		qvg_node_err(err, err_len, n, "input %u must be a float scalar constant", i);
		return -ENOTSUP;
	}
	*v = c->data[0];
	return 0;
}

static int infer_node(struct qvg_graph *g, struct qvg_node *n, char *err, size_t err_len)
{
	if (n->n_in < 1 || n->in[0] < 0) {
		qvg_node_err(err, err_len, n, "missing first input");
		return -EINVAL;
	}
	const struct qvg_tensor *x = &g->t[n->in[0]];
	int r;
	switch (n->op) {
	case QVG_GEMM:
	case QVG_MATMUL:
		return infer_dense(g, n, err, err_len);
	case QVG_ADD:
	case QVG_SUB:
	case QVG_MUL:
	case QVG_DIV:
		return infer_binary(g, n, err, err_len);
	default:
		break;
	}
	if (x->is_const) {
		qvg_node_err(err, err_len, n, "a constant first input is not supported");
		return -ENOTSUP;
	}
	switch (n->op) {
	case QVG_RELU:
	case QVG_LEAKY_RELU:
	case QVG_SIGMOID:
	case QVG_TANH:
	case QVG_IDENTITY:
		if (n->n_in != 1) {
			qvg_node_err(err, err_len, n, "needs one input");
			return -EINVAL;
		}
		break;
	case QVG_DROPOUT:
		if (n->n_in > 3) {
			qvg_node_err(err, err_len, n, "too many inputs");
			return -EINVAL;
		}
		if (n->n_in == 3 && n->in[2] >= 0) {
			const struct qvg_tensor *tm = &g->t[n->in[2]];
			bool off = tm->is_const && tm->numel == 1 &&
				   ((tm->i64 && !tm->i64[0]) || (tm->data && tm->data[0] == 0.0f));
			if (!off) {
				qvg_node_err(err, err_len, n, "training_mode must be a constant false");
				return -ENOTSUP;
			}
		}
		break;
	case QVG_CLIP:
		if (n->n_in > 3) {
			qvg_node_err(err, err_len, n, "too many inputs");
			return -EINVAL;
		}
		if ((r = const_scalar(g, n, 1, &n->clip_min, err, err_len)) < 0 ||
		    (r = const_scalar(g, n, 2, &n->clip_max, err, err_len)) < 0)
			return r;
		break;
	case QVG_SOFTMAX: {
		int64_t a = n->axis < 0 ? n->axis + x->rank : n->axis;
		if (a < 0 || a >= (int64_t)x->rank) {
			qvg_node_err(err, err_len, n, "axis %lld out of range", (long long)n->axis);
			return -EINVAL;
		}
		if (g->opset >= 13 ? a != (int64_t)x->rank - 1 : a == 0) {
			qvg_node_err(err, err_len, n, "axis %lld is not supported (%s)", (long long)n->axis,
				     g->opset >= 13 ? "last axis only" : "it would mix the batch");
			return -ENOTSUP;
		}
		n->axis = a;
		break;
	}
	case QVG_FLATTEN: {
		int64_t a = n->axis < 0 ? n->axis + x->rank : n->axis;
		if (a < 0 || a > (int64_t)x->rank) {
			qvg_node_err(err, err_len, n, "axis %lld out of range", (long long)n->axis);
			return -EINVAL;
		}
		bool ok = a >= 1;
		for (int64_t i = 1; ok && i < a; i++)
			ok = x->shape[i] == 1;
		if (!ok) {
			qvg_node_err(err, err_len, n, "axis %lld would mix the batch dimension", (long long)n->axis);
			return -ENOTSUP;
		}
		int64_t shape[2] = { -1, (int64_t)qvg_inner(x) };
		return set_out(g, n, 2, shape, err, err_len);
	}
	case QVG_RESHAPE:
		return infer_reshape(g, n, x, err, err_len);
	case QVG_CONCAT: {
		int64_t a = n->axis < 0 ? n->axis + x->rank : n->axis;
		if (a <= 0 || a >= (int64_t)x->rank) {
			qvg_node_err(err, err_len, n, "axis %lld is not supported (not the batch, in range)",
				     (long long)n->axis);
			return -ENOTSUP;
		}
		n->axis = a;
		int64_t shape[QV_MAX_RANK];
		memcpy(shape, x->shape, sizeof(shape));
		shape[a] = 0;
		for (uint32_t i = 0; i < n->n_in; i++) {
			const struct qvg_tensor *t = n->in[i] >= 0 ? &g->t[n->in[i]] : NULL;
			bool ok = t && !t->is_const && t->rank == x->rank;
			for (uint32_t d = 1; ok && d < x->rank; d++)
				ok = d == a || t->shape[d] == x->shape[d];
			if (!ok) {
				qvg_node_err(err, err_len, n, "input %u: mismatched shapes or a constant", i);
				return -EINVAL;
			}
			shape[a] += t->shape[a];
			if (shape[a] > QVG_MAX_DIM) {
				qvg_node_err(err, err_len, n, "output too large");
				return -E2BIG;
			}
		}
		return set_out(g, n, x->rank, shape, err, err_len);
	}
	case QVG_BATCHNORM: {
		if (n->n_in < 5 || x->rank < 2) {
			qvg_node_err(err, err_len, n, "needs 5 inputs and a rank >= 2 input");
			return -EINVAL;
		}
		for (uint32_t i = 1; i < 5; i++) {
			const struct qvg_tensor *c = n->in[i] >= 0 ? &g->t[n->in[i]] : NULL;
			if (!c || !c->is_const || !c->data || c->numel != (uint64_t)x->shape[1]) {
				qvg_node_err(err, err_len, n, "input %u must be a float constant of %lld values",
					     i, (long long)x->shape[1]);
				return -EINVAL;
			}
		}
		break;
	}
	default:
		break;
	}
	return set_out(g, n, x->rank, x->shape, err, err_len);
}

int qvg_infer(struct qvg_graph *g, char *err, size_t err_len)
{
	for (uint32_t i = 0; i < g->n_nodes; i++) {
		int r = infer_node(g, &g->nodes[i], err, err_len);
		if (r < 0)
			return r;
	}
	if (g->t[g->output].is_const) {
		qvg_err(err, err_len, "output '%.100s': is a constant", g->t[g->output].name);
		return -ENOTSUP;
	}
	return 0;
}

int qvg_expand_const(const struct qvg_graph *g, int32_t c_id, int32_t x_id, float **ret)
{
	const struct qvg_tensor *c = &g->t[c_id], *x = &g->t[x_id];
	uint64_t inner = qvg_inner(x);
	float *e = malloc((inner ? inner : 1) * sizeof(float));
	if (!e)
		return -ENOMEM;
	uint64_t cstride[QV_MAX_RANK];
	uint64_t s = 1;
	for (int j = (int)c->rank - 1; j >= 0; j--) {
		cstride[j] = c->shape[j] == 1 ? 0 : s;
		s *= (uint64_t)c->shape[j];
	}
	uint32_t off = x->rank - c->rank;
	for (uint64_t idx = 0; idx < inner; idx++) {
		uint64_t rem = idx, ci = 0;
		for (int i = (int)x->rank - 1; i >= 1; i--) {
			uint64_t d = (uint64_t)x->shape[i];
			uint64_t xi = rem % d;
			rem /= d;
			if (i >= (int)off)
				ci += xi * cstride[i - off];
		}
		e[idx] = c->data[ci];
	}
	*ret = e;
	return 0;
}
