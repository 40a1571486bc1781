/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gx_build.c - shape inference with a symbolic batch, constant folding and
 * one unfused step per node (the reference walk; gx_fuse.c makes the fused
 * plan from it): the framework and the op table. The builders of each op
 * are in gx_ops_shape.c and gx_ops_math.c.
 *
 * Every node is built the same way whether its inputs are constant or
 * computed: the op's shape rules give the output's logical shape (the batch
 * axis as 1) and a step working on one row. If every input is a constant
 * the step runs once, here, on one "row" (the whole constant) and its
 * output becomes a constant; so constant subgraphs fold with the very
 * kernels that run computed ones, and no second evaluator exists.
 * Views (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout, and a
 * Transpose that keeps the order of the non-batch axes) make no step: the
 * output shares its input's storage.
 *
 * Shape checks name the node; an op that would mix rows of the batch
 * (reducing, concatenating, slicing or gathering along the batch axis, a
 * Reshape that splits rows or interleaves them with other dimensions, a
 * constant that varies along the batch axis) is refused.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx_build.h"

uint32_t gx_esz(uint32_t dt)
{
	return dt == QV_DT_I64 ? 8u : dt == GX_BOOL ? 1u : 4u;
}

void gx_step_free(struct gx_step *s)
{
	for (uint32_t i = 0; i < GX_MAX_MAPS; i++)
		free(s->map[i]);
	free(s->part);
	free(s->skip);
	free(s->t_scale);
	free(s->t_bias);
	free(s->scale);
	free(s->bias);
	free(s->aoff);
	free(s->boff);
	free(s->ds.W);
	free(s->ds.b);
	qv_dnnl_dense_free(s->ds.dnnl);
	if (s->ds.hand)
		qv_hand_dense_free(s->ds.hand);
	memset(s, 0, sizeof(*s));
}

uint64_t gxb_prod(const int64_t *d, uint32_t from, uint32_t to)
{
	uint64_t p = 1;
	for (uint32_t i = from; i < to; i++)
		p *= (uint64_t)d[i];
	return p;
}

void gxb_shape_str(const struct gx_tensor *t, char *s, size_t len)
{
	size_t k = 0;
	k += (size_t)snprintf(s + k, len - k, "[");
	for (uint32_t i = 0; i < t->rank && k < len; i++) {
		if ((int32_t)i == t->bpos)
			k += (size_t)snprintf(s + k, len - k, "%sB", i ? "," : "");
		else
			k += (size_t)snprintf(s + k, len - k, "%s%lld", i ? "," : "", (long long)t->dims[i]);
	}
	if (k < len)
		snprintf(s + k, len - k, "]");
}

/* ---- building context ---- */


/* An optional input, NULL when absent. */
struct gx_tensor *gxb_opt_t(struct bctx *b, uint32_t i)
{
	if (i >= b->n->n_in || b->n->in[i] < 0)
		return NULL;
	return &b->g->t[b->n->in[i]];
}

/* A required input (need_in / gx_build checked it is there); an absent one
 * reads as an empty constant, which every shape check refuses. */
static char missing_name[] = "(missing)";
static struct gx_tensor missing = { .name = missing_name, .bpos = -1, .producer = -1, .store = -1, .origin = -1 };

__attribute__((returns_nonnull)) struct gx_tensor *gxb_in_t(struct bctx *b, uint32_t i)
{
	struct gx_tensor *t = gxb_opt_t(b, i);
	return t ? t : &missing;
}

bool gxb_is_const(const struct gx_tensor *t)
{
	return t->bpos < 0;
}

int gxb_need_in(struct bctx *b, uint32_t lo, uint32_t hi)
{
	uint32_t k = b->n->n_in;
	while (k > 0 && b->n->in[k - 1] < 0)
		k--;
	if (k < lo || k > hi) {
		BERR(b, "has %u inputs (wants %u..%u)", k, lo, hi);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < lo; i++) {
		if (b->n->in[i] < 0) {
			BERR(b, "input %u is missing", i);
			return -EINVAL;
		}
	}
	return 0;
}

int64_t gxb_attr_i(const struct gx_node *n, const char *name, int64_t def)
{
	const struct gx_attr *a = gx_attr(n, name);
	return a ? a->i : def;
}

float gxb_attr_f(const struct gx_node *n, const char *name, float def)
{
	const struct gx_attr *a = gx_attr(n, name);
	return a ? a->f : def;
}

int gxb_norm_axis(struct bctx *b, int64_t a, uint32_t rank, uint32_t *ret)
{
	int64_t r = (int64_t)rank;
	if (a < -r || a >= r) {
		BERR(b, "axis %lld is out of range for rank %u", (long long)a, rank);
		return -EINVAL;
	}
	*ret = (uint32_t)(a < 0 ? a + r : a);
	return 0;
}

/* A constant integer vector: an input (opset 13+ forms) or an attribute. */
int gxb_const_ints(struct bctx *b, const struct gx_tensor *t, int64_t *v, uint32_t max, uint32_t *ret_n)
{
	if (!gxb_is_const(t) || (t->dt != QV_DT_I64 && t->dt != QV_DT_I32)) {
		BERR(b, "'%.80s' must be a constant integer tensor", t->name);
		return -ENOTSUP;
	}
	if (t->numel > max) {
		BERR(b, "'%.80s' has %llu values (at most %u)", t->name, (unsigned long long)t->numel, max);
		return -EINVAL;
	}
	memcpy(v, t->data, t->numel * sizeof(int64_t));
	*ret_n = (uint32_t)t->numel;
	return 0;
}

int gxb_attr_or_input_ints(struct bctx *b, const char *aname, uint32_t idx, int64_t *v, uint32_t max,
			      uint32_t *ret_n, bool *ret_given)
{
	const struct gx_attr *a = gx_attr(b->n, aname);
	*ret_given = true;
	if (a) {
		if (a->n_ints > max) {
			BERR(b, "attribute '%s' has too many values", aname);
			return -EINVAL;
		}
		memcpy(v, a->ints, a->n_ints * sizeof(int64_t));
		*ret_n = a->n_ints;
		return 0;
	}
	struct gx_tensor *t = gxb_opt_t(b, idx);
	if (!t) {
		*ret_given = false;
		*ret_n = 0;
		return 0;
	}
	return gxb_const_ints(b, t, v, max, ret_n);
}

/* ---- defining outputs ---- */

int gxb_check_dims(struct bctx *b, uint32_t rank, const int64_t *dims, uint64_t *ret_numel)
{
	if (rank > QV_MAX_RANK) {
		BERR(b, "output rank %u exceeds %d", rank, QV_MAX_RANK);
		return -ENOTSUP;
	}
	uint64_t p = 1;
	for (uint32_t i = 0; i < rank; i++) {
		/* 0: an empty constant (Slice of a shape vector to nothing) */
		if (dims[i] < 0 || dims[i] > QVG_MAX_DIM) {
			BERR(b, "output dimension %u is %lld", i, (long long)dims[i]);
			return -EINVAL;
		}
		p *= (uint64_t)dims[i];
		if (p > GX_MAX_ROW_ELEMS) {
			BERR(b, "output has more than %llu elements a row", (unsigned long long)GX_MAX_ROW_ELEMS);
			return -E2BIG;
		}
	}
	*ret_numel = p;
	return 0;
}

int gxb_set_shape(struct bctx *b, struct gx_tensor *o, uint32_t dt, uint32_t rank, const int64_t *dims,
		     int32_t bpos)
{
	uint64_t numel;
	int r = gxb_check_dims(b, rank, dims, &numel);
	if (r < 0)
		return r;
	if (bpos >= 0 && !numel) {
		BERR(b, "gives an empty tensor");
		return -ENOTSUP;
	}
	o->dt = dt;
	o->rank = rank;
	memset(o->dims, 0, sizeof(o->dims));
	memcpy(o->dims, dims, rank * sizeof(int64_t));
	o->bpos = bpos;
	o->numel = numel;
	o->defined = true;
	return 0;
}

static void scan_sym(struct gx_tensor *t)
{
	t->has_sym = false;
	if (t->dt != QV_DT_I64)
		return;
	const int64_t *v = t->data;
	for (uint64_t i = 0; i < t->numel; i++)
		t->has_sym |= v[i] == GX_SYM;
}

int gxb_def_const(struct bctx *b, int32_t id, uint32_t dt, uint32_t rank, const int64_t *dims, void *data)
{
	struct gx_tensor *o = &b->g->t[id];
	int r = gxb_set_shape(b, o, dt, rank, dims, -1);
	if (r < 0) {
		free(data);
		return r;
	}
	o->data = data;
	scan_sym(o);
	return 0;
}

int gxb_new_store(struct gx_model *g, uint64_t row_bytes, int32_t *ret)
{
	uint64_t *sb = realloc(g->store_bytes, (g->n_store + 1) * sizeof(*sb));
	if (!sb)
		return -ENOMEM;
	g->store_bytes = sb;
	sb[g->n_store] = row_bytes;
	*ret = (int32_t)g->n_store++;
	return 0;
}

/* out is a view of x with another logical shape: no step, same bytes. */
int gxb_def_view(struct bctx *b, int32_t id, const struct gx_tensor *x, uint32_t rank, const int64_t *dims,
		    int32_t bpos)
{
	struct gx_tensor *o = &b->g->t[id];
	int32_t xid = (int32_t)(x - b->g->t);
	if (gxb_is_const(x)) {
		size_t bytes = x->numel * gx_esz(x->dt);
		void *d = malloc(bytes ? bytes : 1);
		if (!d)
			return -ENOMEM;
		memcpy(d, x->data, bytes);
		return gxb_def_const(b, id, x->dt, rank, dims, d);
	}
	x = &b->g->t[xid];
	int r = gxb_set_shape(b, o, x->dt, rank, dims, bpos);
	if (r < 0)
		return r;
	o->store = x->store;
	o->origin = x->origin;
	return 0;
}

int gxb_new_step(struct bctx *b, enum gx_kind kind, struct gx_step **ret)
{
	struct gx_model *g = b->g;
	if (g->n_ref == g->cap_ref) {
		uint32_t cap = g->cap_ref ? 2 * g->cap_ref : 32;
		struct gx_step *s = realloc(g->ref, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		g->ref = s;
		g->cap_ref = cap;
	}
	struct gx_step *s = &g->ref[g->n_ref++];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->own = true;
	s->out = -1;
	snprintf(s->label, sizeof(s->label), "%.94s", b->n ? b->n->name : "?");
	s->what = b->n ? b->n->op : "?";
	*ret = s;
	return 0;
}

void gxb_drop_last_step(struct gx_model *g)
{
	gx_step_free(&g->ref[--g->n_ref]);
}

int gxb_step_in(struct gx_step *s, const struct gx_model *g, int32_t id)
{
	s->in[s->n_in++] = id;
	(void)g;
	return 0;
}

/*
 * Ends the last step: its output tensor `id` gets the shape; with every
 * operand constant the step runs now and is dropped (folding), otherwise
 * the output gets a storage of its own.
 */
int gxb_emit(struct bctx *b, struct gx_step *s, int32_t id, uint32_t dt, uint32_t rank, const int64_t *dims,
		int32_t bpos)
{
	struct gx_model *g = b->g;
	bool all_const = true;
	bool sym = false;
	for (uint32_t i = 0; i < s->n_in; i++) {
		all_const &= gxb_is_const(&g->t[s->in[i]]);
		sym |= g->t[s->in[i]].has_sym;
	}
	s->dt = dt;
	s->esz = gx_esz(dt);
	s->out = id;
	uint64_t numel;
	int r = gxb_check_dims(b, rank, dims, &numel);
	if (r < 0)
		goto fail;
	s->out_w = numel;
	if (all_const) {
		if (sym && s->kind != GX_K_MAP && s->kind != GX_K_CONCAT &&
		    !(s->kind == GX_K_BIN && s->op <= GX_DIV) &&
		    !(s->kind == GX_K_CAST && (dt == QV_DT_I64 || dt == QV_DT_I32))) {
			BERR(b, "computes with the batch size of a shape (only its position can be used)");
			r = -ENOTSUP;
			goto fail;
		}
		void *data = malloc(numel ? numel * s->esz : 1);
		if (!data) {
			r = -ENOMEM;
			goto fail;
		}
		const void *ins[GX_MAX_IN];
		uint64_t stride[GX_MAX_IN] = { 0 };
		for (uint32_t i = 0; i < s->n_in; i++)
			ins[i] = g->t[s->in[i]].data;
		r = gx_kernel(s, ins, stride, data, 1, NULL);
		if (r < 0) {
			free(data);
			BERR(b, "an index is out of range");
			r = -EINVAL;
			goto fail;
		}
		gxb_drop_last_step(g);
		r = gxb_def_const(b, id, dt, rank, dims, data);
		if (r == 0 && dt == QV_DT_I64) {
			const int64_t *v = g->t[id].data;
			for (uint64_t i = 0; i < numel; i++) {
				if (v[i] == GX_SYM + 1) {
					BERR(b, "computes with the batch size of a shape (only its position can be used)");
					return -ENOTSUP;
				}
			}
		}
		return r;
	}
	struct gx_tensor *o = &g->t[id];
	if ((r = gxb_set_shape(b, o, dt, rank, dims, bpos)) < 0)
		goto fail;
	if ((r = gxb_new_store(g, numel * s->esz, &o->store)) < 0)
		goto fail;
	/* ids moved or cast keep the input they came from (for index_bound) */
	if ((s->kind == GX_K_MAP || s->kind == GX_K_CAST) && !gxb_is_const(&g->t[s->in[0]]))
		o->origin = g->t[s->in[0]].origin;
	return 0;
fail:
	gxb_drop_last_step(g);
	return r;
}

/* ---- coordinates ---- */

void gxb_strides_of(const int64_t *dims, uint32_t rank, int64_t *st)
{
	int64_t s = 1;
	for (uint32_t i = rank; i-- > 0;) {
		st[i] = s;
		s *= dims[i];
	}
}

bool gxb_next_coord(int64_t *c, const int64_t *dims, uint32_t rank)
{
	for (uint32_t i = rank; i-- > 0;) {
		if (++c[i] < dims[i])
			return true;
		c[i] = 0;
	}
	return false;
}

int32_t *gxb_map_alloc(uint64_t n)
{
	return malloc((n ? n : 1) * sizeof(int32_t));
}

/* ---- broadcasting ---- */

/*
 * Right-aligned numpy broadcast of operands ids[0..k). Gives the output's
 * rank, dims, batch axis, and for each operand the map from an output
 * element of a row to its element (NULL where the layouts are the same).
 */
int gxb_bcast(struct bctx *b, struct gx_step *s, uint32_t k, const int32_t *ids, uint32_t *ret_rank,
		 int64_t *dims, int32_t *ret_bpos)
{
	struct gx_model *g = b->g;
	uint32_t R = 0;
	for (uint32_t i = 0; i < k; i++)
		R = g->t[ids[i]].rank > R ? g->t[ids[i]].rank : R;
	int32_t bp = -1;
	for (uint32_t i = 0; i < k; i++) {
		const struct gx_tensor *t = &g->t[ids[i]];
		if (gxb_is_const(t))
			continue;
		int32_t ab = t->bpos + (int32_t)(R - t->rank);
		if (bp >= 0 && ab != bp) {
			char s1[96], s2[96];
			gxb_shape_str(&g->t[ids[0]], s1, sizeof(s1));
			gxb_shape_str(t, s2, sizeof(s2));
			BERR(b, "the batch axes of %s and %s do not line up", s1, s2);
			return -EINVAL;
		}
		bp = ab;
	}
	for (uint32_t a = 0; a < R; a++) {
		int64_t d = 1;
		for (uint32_t i = 0; i < k; i++) {
			const struct gx_tensor *t = &g->t[ids[i]];
			if (a + t->rank < R)
				continue;
			int64_t td = t->dims[a + t->rank - R];
			if (td != 1 && d != 1 && td != d) {
				char s1[96], s2[96];
				gxb_shape_str(&g->t[ids[0]], s1, sizeof(s1));
				gxb_shape_str(t, s2, sizeof(s2));
				BERR(b, "shapes %s and %s do not broadcast", s1, s2);
				return -EINVAL;
			}
			if (td != 1)
				d = td;
		}
		if ((int32_t)a == bp && d != 1) {
			BERR(b, "a constant has %lld elements along the batch axis", (long long)d);
			return -EINVAL;
		}
		dims[a] = d;
	}
	uint64_t numel = gxb_prod(dims, 0, R);
	for (uint32_t i = 0; i < k; i++) {
		const struct gx_tensor *t = &g->t[ids[i]];
		bool same = t->rank == R && !memcmp(t->dims, dims, R * sizeof(int64_t));
		if (same)
			continue;
		int64_t st[QV_MAX_RANK], c[QV_MAX_RANK] = { 0 };
		gxb_strides_of(t->dims, t->rank, st);
		int32_t *m = gxb_map_alloc(numel);
		if (!m)
			return -ENOMEM;
		s->map[i] = m;
		for (uint64_t e = 0; e < numel; e++) {
			int64_t off = 0;
			for (uint32_t a = R - t->rank; a < R; a++) {
				uint32_t ta = a + t->rank - R;
				if (t->dims[ta] != 1)
					off += c[a] * st[ta];
			}
			m[e] = (int32_t)off;
			gxb_next_coord(c, dims, R);
		}
		s->one[i] = t->numel == 1;
	}
	*ret_rank = R;
	*ret_bpos = bp;
	return 0;
}
struct op_def {
	const char *name;
	int (*fn)(struct bctx *b);          /* ops without a variant */
	int (*fn_arg)(struct bctx *b, int arg);
	int arg;
};

static int b_ident(struct bctx *b)
{
	const struct gx_tensor *x = gxb_in_t(b, 0);
	return gxb_def_view(b, b->n->out[0], x, x->rank, x->dims, x->bpos);
}

/* Max / Min of any number of inputs: a chain of two-input steps. */
static int b_max_min(struct bctx *b, int op)
{
	const struct gx_node *n = b->n;
	if (n->n_in == 1)
		return b_ident(b);
	if (n->n_in == 2)
		return gxb_binary(b, op);
	if (n->n_in > GX_MAX_IN) {
		BERR(b, "has %u inputs (at most %u)", n->n_in, GX_MAX_IN);
		return -ENOTSUP;
	}
	int32_t acc = n->in[0];
	for (uint32_t i = 1; i < n->n_in; i++) {
		int32_t out = n->out[0];
		if (i + 1 < n->n_in) {
			char nm[160];
			snprintf(nm, sizeof(nm), "%.100s/%u", n->name, i);
			int r = gx_tensor_add(b->g, nm, &out);
			if (r < 0)
				return r;
		}
		int32_t ins[2] = { acc, n->in[i] };
		struct gx_node sub = *n;
		sub.n_in = 2;
		sub.in = ins;
		sub.n_out = 1;
		sub.out = &out;
		struct bctx sb = *b;
		sb.n = &sub;
		int r = gxb_binary(&sb, op);
		if (r < 0)
			return r;
		acc = out;
	}
	return 0;
}

static int b_squeeze_v(struct bctx *b, int un)
{
	return gxb_squeeze(b, un != 0);
}

static int b_softmax_v(struct bctx *b, int lg)
{
	return gxb_softmax(b, lg != 0);
}

static const struct op_def ops[] = {
	{ "Constant", gxb_constant, NULL, 0 }, { "Shape", gxb_shape, NULL, 0 }, { "Reshape", gxb_reshape, NULL, 0 },
	{ "Flatten", gxb_flatten, NULL, 0 }, { "Squeeze", NULL, b_squeeze_v, 0 }, { "Unsqueeze", NULL, b_squeeze_v, 1 },
	{ "Identity", b_ident, NULL, 0 }, { "Dropout", b_ident, NULL, 0 }, { "Transpose", gxb_transpose, NULL, 0 },
	{ "Slice", gxb_slice, NULL, 0 }, { "Split", gxb_split, NULL, 0 }, { "Concat", gxb_concat, NULL, 0 },
	{ "Gather", gxb_gather, NULL, 0 }, { "Expand", gxb_expand, NULL, 0 },
	{ "ConstantOfShape", gxb_const_of_shape, NULL, 0 }, { "Range", gxb_range, NULL, 0 },
	{ "Where", gxb_where, NULL, 0 }, { "Cast", gxb_cast, NULL, 0 },
	{ "Add", NULL, gxb_binary, GX_ADD }, { "Sub", NULL, gxb_binary, GX_SUB }, { "Mul", NULL, gxb_binary, GX_MUL },
	{ "Div", NULL, gxb_binary, GX_DIV }, { "Pow", NULL, gxb_binary, GX_POW }, { "Max", NULL, b_max_min, GX_MAX },
	{ "Min", NULL, b_max_min, GX_MIN }, { "Equal", NULL, gxb_binary, GX_EQ }, { "Less", NULL, gxb_binary, GX_LT },
	{ "Greater", NULL, gxb_binary, GX_GT }, { "LessOrEqual", NULL, gxb_binary, GX_LE },
	{ "GreaterOrEqual", NULL, gxb_binary, GX_GE }, { "And", NULL, gxb_binary, GX_AND },
	{ "Or", NULL, gxb_binary, GX_OR }, { "Not", NULL, gxb_unary, GX_NOT },
	{ "Relu", NULL, gxb_unary, GX_RELU }, { "LeakyRelu", NULL, gxb_unary, GX_LEAKY },
	{ "Sigmoid", NULL, gxb_unary, GX_SIGMOID }, { "Tanh", NULL, gxb_unary, GX_TANH },
	{ "Clip", NULL, gxb_unary, GX_CLIP }, { "Erf", NULL, gxb_unary, GX_ERF }, { "Exp", NULL, gxb_unary, GX_EXP },
	{ "Log", NULL, gxb_unary, GX_LOG }, { "Sqrt", NULL, gxb_unary, GX_SQRT },
	{ "Reciprocal", NULL, gxb_unary, GX_RECIP }, { "Neg", NULL, gxb_unary, GX_NEG },
	{ "Abs", NULL, gxb_unary, GX_ABS }, { "Floor", NULL, gxb_unary, GX_FLOOR }, { "Ceil", NULL, gxb_unary, GX_CEIL },
	{ "Softmax", NULL, b_softmax_v, 0 }, { "LogSoftmax", NULL, b_softmax_v, 1 },
	{ "ReduceSum", NULL, gxb_reduce, GX_RSUM }, { "ReduceMean", NULL, gxb_reduce, GX_RMEAN },
	{ "ReduceMax", NULL, gxb_reduce, GX_RMAX }, { "ReduceMin", NULL, gxb_reduce, GX_RMIN },
	{ "LayerNormalization", gxb_layernorm, NULL, 0 }, { "BatchNormalization", gxb_batchnorm, NULL, 0 },
	{ "MatMul", gxb_matmul, NULL, 0 }, { "Gemm", gxb_gemm, NULL, 0 },
};

int gx_build(struct gx_model *g, char *err, size_t err_len)
{
	for (uint32_t i = 0; i < g->n_nodes; i++)
		for (uint32_t j = 0; j < g->nodes[i].n_in; j++)
			if (g->nodes[i].in[j] >= 0)
				g->t[g->nodes[i].in[j]].n_cons++;
	for (uint32_t i = 0; i < g->n_out; i++)
		g->t[g->out[i]].n_cons++;
	/* graph inputs first: their storage is the caller's buffers */
	for (uint32_t i = 0; i < g->n_in; i++) {
		struct gx_tensor *t = &g->t[g->in[i]];
		int r = gxb_new_store(g, t->numel * gx_esz(t->dt), &t->store);
		if (r < 0)
			return r;
		g->in_store[i] = t->store;
	}
	for (uint32_t k = 0; k < g->n_nodes; k++) {
		const struct gx_node *n = &g->nodes[g->order[k]];
		struct bctx b = { g, n, err, err_len };
		const struct op_def *od = NULL;
		for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
			if (!strcmp(ops[i].name, n->op))
				od = &ops[i];
		if (!od) {
			gx_err(err, err_len, n, "unsupported op");
			return -ENOTSUP;
		}
		if (strcmp(n->op, "Constant") && (n->n_in < 1 || n->in[0] < 0)) {
			gx_err(err, err_len, n, "input 0 is missing");
			return -EINVAL;
		}
		/* A batch axis merged with other elements (a Reshape to [-1]) may
		 * only flow through views, casts and embedding ids. */
		for (uint32_t j = 0; j < n->n_in; j++) {
			const struct gx_tensor *t = n->in[j] >= 0 ? &g->t[n->in[j]] : NULL;
			if (!t || t->bpos < 0 || t->dims[t->bpos] == 1)
				continue;
			bool ok = !strcmp(n->op, "Reshape") || !strcmp(n->op, "Identity") || !strcmp(n->op, "Dropout") ||
				  !strcmp(n->op, "Squeeze") || !strcmp(n->op, "Unsqueeze") || !strcmp(n->op, "Cast") ||
				  (!strcmp(n->op, "Gather") && j == 1);
			if (!ok || j > 1) {
				gx_err(err, err_len, n, "input '%.80s' has its batch merged with %lld other elements "
				       "on axis %d: only Reshape, Squeeze, Unsqueeze, Cast and Gather's indices take that",
				       t->name, (long long)t->dims[t->bpos], t->bpos);
				return -ENOTSUP;
			}
		}
		uint32_t ref0 = g->n_ref;
		int r = od->fn ? od->fn(&b) : od->fn_arg(&b, od->arg);
		if (r < 0) {
			if (r == -ENOMEM)
				gx_err(err, err_len, n, "out of memory");
			return r;
		}
		/* steps made for computed outputs keep the node's name */
		(void)ref0;
		for (uint32_t j = 0; j < n->n_out; j++) {
			int32_t o = n->out[j];
			if (o >= 0 && !g->t[o].defined && g->t[o].n_cons) {
				gx_err(err, err_len, n, "output %u is not supported", j);
				return -ENOTSUP;
			}
		}
	}
	return 0;
}
