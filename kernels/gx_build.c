/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gx_build.c - shape inference with a symbolic batch, constant folding and
 * one unfused step per node (the reference walk; gx_fuse.c makes the fused
 * plan from it).
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
 * Reshape that merges the batch with other dimensions, a constant that
 * varies along the batch axis) is refused.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx.h"

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

static uint64_t prod(const int64_t *d, uint32_t from, uint32_t to)
{
	uint64_t p = 1;
	for (uint32_t i = from; i < to; i++)
		p *= (uint64_t)d[i];
	return p;
}

static void shape_str(const struct gx_tensor *t, char *s, size_t len)
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

struct bctx {
	struct gx_model *g;
	const struct gx_node *n;
	char *err;
	size_t err_len;
};

#define BERR(b, ...) gx_err((b)->err, (b)->err_len, (b)->n, __VA_ARGS__)

/* An optional input, NULL when absent. */
static struct gx_tensor *opt_t(struct bctx *b, uint32_t i)
{
	if (i >= b->n->n_in || b->n->in[i] < 0)
		return NULL;
	return &b->g->t[b->n->in[i]];
}

/* A required input (need_in / gx_build checked it is there); an absent one
 * reads as an empty constant, which every shape check refuses. */
static char missing_name[] = "(missing)";
static struct gx_tensor missing = { .name = missing_name, .bpos = -1, .producer = -1, .store = -1, .origin = -1 };

__attribute__((returns_nonnull)) static struct gx_tensor *in_t(struct bctx *b, uint32_t i)
{
	struct gx_tensor *t = opt_t(b, i);
	return t ? t : &missing;
}

static bool is_const(const struct gx_tensor *t)
{
	return t->bpos < 0;
}

static int need_in(struct bctx *b, uint32_t lo, uint32_t hi)
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

static int64_t attr_i(const struct gx_node *n, const char *name, int64_t def)
{
	const struct gx_attr *a = gx_attr(n, name);
	return a ? a->i : def;
}

static float attr_f(const struct gx_node *n, const char *name, float def)
{
	const struct gx_attr *a = gx_attr(n, name);
	return a ? a->f : def;
}

static int norm_axis(struct bctx *b, int64_t a, uint32_t rank, uint32_t *ret)
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
static int const_ints(struct bctx *b, const struct gx_tensor *t, int64_t *v, uint32_t max, uint32_t *ret_n)
{
	if (!is_const(t) || (t->dt != QV_DT_I64 && t->dt != QV_DT_I32)) {
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

static int attr_or_input_ints(struct bctx *b, const char *aname, uint32_t idx, int64_t *v, uint32_t max,
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
	struct gx_tensor *t = opt_t(b, idx);
	if (!t) {
		*ret_given = false;
		*ret_n = 0;
		return 0;
	}
	return const_ints(b, t, v, max, ret_n);
}

/* ---- defining outputs ---- */

static int check_dims(struct bctx *b, uint32_t rank, const int64_t *dims, uint64_t *ret_numel)
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

static int set_shape(struct bctx *b, struct gx_tensor *o, uint32_t dt, uint32_t rank, const int64_t *dims,
		     int32_t bpos)
{
	uint64_t numel;
	int r = check_dims(b, rank, dims, &numel);
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

static int def_const(struct bctx *b, int32_t id, uint32_t dt, uint32_t rank, const int64_t *dims, void *data)
{
	struct gx_tensor *o = &b->g->t[id];
	int r = set_shape(b, o, dt, rank, dims, -1);
	if (r < 0) {
		free(data);
		return r;
	}
	o->data = data;
	scan_sym(o);
	return 0;
}

static int new_store(struct gx_model *g, uint64_t row_bytes, int32_t *ret)
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
static int def_view(struct bctx *b, int32_t id, const struct gx_tensor *x, uint32_t rank, const int64_t *dims,
		    int32_t bpos)
{
	struct gx_tensor *o = &b->g->t[id];
	int32_t xid = (int32_t)(x - b->g->t);
	if (is_const(x)) {
		size_t bytes = x->numel * gx_esz(x->dt);
		void *d = malloc(bytes ? bytes : 1);
		if (!d)
			return -ENOMEM;
		memcpy(d, x->data, bytes);
		return def_const(b, id, x->dt, rank, dims, d);
	}
	x = &b->g->t[xid];
	int r = set_shape(b, o, x->dt, rank, dims, bpos);
	if (r < 0)
		return r;
	o->store = x->store;
	o->origin = x->origin;
	return 0;
}

static int new_step(struct bctx *b, enum gx_kind kind, struct gx_step **ret)
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

static void drop_last_step(struct gx_model *g)
{
	gx_step_free(&g->ref[--g->n_ref]);
}

static int step_in(struct gx_step *s, const struct gx_model *g, int32_t id)
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
static int emit(struct bctx *b, struct gx_step *s, int32_t id, uint32_t dt, uint32_t rank, const int64_t *dims,
		int32_t bpos)
{
	struct gx_model *g = b->g;
	bool all_const = true;
	bool sym = false;
	for (uint32_t i = 0; i < s->n_in; i++) {
		all_const &= is_const(&g->t[s->in[i]]);
		sym |= g->t[s->in[i]].has_sym;
	}
	s->dt = dt;
	s->esz = gx_esz(dt);
	s->out = id;
	uint64_t numel;
	int r = check_dims(b, rank, dims, &numel);
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
		drop_last_step(g);
		r = def_const(b, id, dt, rank, dims, data);
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
	if ((r = set_shape(b, o, dt, rank, dims, bpos)) < 0)
		goto fail;
	if ((r = new_store(g, numel * s->esz, &o->store)) < 0)
		goto fail;
	/* ids moved or cast keep the input they came from (for index_bound) */
	if ((s->kind == GX_K_MAP || s->kind == GX_K_CAST) && !is_const(&g->t[s->in[0]]))
		o->origin = g->t[s->in[0]].origin;
	return 0;
fail:
	drop_last_step(g);
	return r;
}

/* ---- coordinates ---- */

static void strides_of(const int64_t *dims, uint32_t rank, int64_t *st)
{
	int64_t s = 1;
	for (uint32_t i = rank; i-- > 0;) {
		st[i] = s;
		s *= dims[i];
	}
}

static bool next_coord(int64_t *c, const int64_t *dims, uint32_t rank)
{
	for (uint32_t i = rank; i-- > 0;) {
		if (++c[i] < dims[i])
			return true;
		c[i] = 0;
	}
	return false;
}

static int32_t *map_alloc(uint64_t n)
{
	return malloc((n ? n : 1) * sizeof(int32_t));
}

/* ---- broadcasting ---- */

/*
 * Right-aligned numpy broadcast of operands ids[0..k). Gives the output's
 * rank, dims, batch axis, and for each operand the map from an output
 * element of a row to its element (NULL where the layouts are the same).
 */
static int bcast(struct bctx *b, struct gx_step *s, uint32_t k, const int32_t *ids, uint32_t *ret_rank,
		 int64_t *dims, int32_t *ret_bpos)
{
	struct gx_model *g = b->g;
	uint32_t R = 0;
	for (uint32_t i = 0; i < k; i++)
		R = g->t[ids[i]].rank > R ? g->t[ids[i]].rank : R;
	int32_t bp = -1;
	for (uint32_t i = 0; i < k; i++) {
		const struct gx_tensor *t = &g->t[ids[i]];
		if (is_const(t))
			continue;
		int32_t ab = t->bpos + (int32_t)(R - t->rank);
		if (bp >= 0 && ab != bp) {
			char s1[96], s2[96];
			shape_str(&g->t[ids[0]], s1, sizeof(s1));
			shape_str(t, s2, sizeof(s2));
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
				shape_str(&g->t[ids[0]], s1, sizeof(s1));
				shape_str(t, s2, sizeof(s2));
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
	uint64_t numel = prod(dims, 0, R);
	for (uint32_t i = 0; i < k; i++) {
		const struct gx_tensor *t = &g->t[ids[i]];
		bool same = t->rank == R && !memcmp(t->dims, dims, R * sizeof(int64_t));
		if (same)
			continue;
		int64_t st[QV_MAX_RANK], c[QV_MAX_RANK] = { 0 };
		strides_of(t->dims, t->rank, st);
		int32_t *m = map_alloc(numel);
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
			next_coord(c, dims, R);
		}
	}
	*ret_rank = R;
	*ret_bpos = bp;
	return 0;
}

/* ---- op builders ---- */

static int b_constant(struct bctx *b)
{
	const struct gx_node *n = b->n;
	if (n->n_attr != 1) {
		BERR(b, "needs exactly one value attribute");
		return -ENOTSUP;
	}
	const struct gx_attr *a = &n->attr[0];
	int64_t dims[QV_MAX_RANK];
	if (!strcmp(a->name, "value") && a->has_t) {
		size_t bytes = a->t.numel * a->t.esz;
		void *d = malloc(bytes ? bytes : 1);
		if (!d)
			return -ENOMEM;
		memcpy(d, a->t.data, bytes);
		uint32_t dt = a->t.dtype == QV_DT_I32 ? QV_DT_I64 : a->t.dtype;
		return def_const(b, n->out[0], dt, a->t.rank, a->t.shape, d);
	}
	if (!strcmp(a->name, "value_float") || !strcmp(a->name, "value_floats")) {
		uint32_t k = !strcmp(a->name, "value_float") ? 1 : a->n_floats;
		float *d = malloc((k ? k : 1) * sizeof(float));
		if (!d)
			return -ENOMEM;
		if (k == 1 && !a->n_floats)
			d[0] = a->f;
		else
			memcpy(d, a->floats, k * sizeof(float));
		dims[0] = k;
		return def_const(b, n->out[0], QV_DT_F32, !strcmp(a->name, "value_float") ? 0 : 1, dims, d);
	}
	if (!strcmp(a->name, "value_int") || !strcmp(a->name, "value_ints")) {
		bool one = !strcmp(a->name, "value_int");
		uint32_t k = one ? 1 : a->n_ints;
		int64_t *d = malloc((k ? k : 1) * sizeof(int64_t));
		if (!d)
			return -ENOMEM;
		if (one)
			d[0] = a->i;
		else
			memcpy(d, a->ints, k * sizeof(int64_t));
		dims[0] = k;
		return def_const(b, n->out[0], QV_DT_I64, one ? 0 : 1, dims, d);
	}
	BERR(b, "attribute '%s' is not supported", a->name);
	return -ENOTSUP;
}

static int b_shape(struct bctx *b)
{
	const struct gx_tensor *x = in_t(b, 0);
	if (x->bpos >= 0 && x->dims[x->bpos] != 1) {
		BERR(b, "the shape of a tensor whose batch axis is merged with %lld elements is not supported",
		     (long long)x->dims[x->bpos]);
		return -ENOTSUP;
	}
	int64_t r = x->rank;
	int64_t st = attr_i(b->n, "start", 0), en = attr_i(b->n, "end", r);
	st = st < 0 ? st + r : st;
	en = en < 0 ? en + r : en;
	st = st < 0 ? 0 : st > r ? r : st;
	en = en < 0 ? 0 : en > r ? r : en;
	int64_t k = en > st ? en - st : 0;
	int64_t *d = malloc((size_t)(k ? k : 1) * sizeof(int64_t));
	if (!d)
		return -ENOMEM;
	for (int64_t i = 0; i < k; i++)
		d[i] = st + i == x->bpos ? GX_SYM : x->dims[st + i];
	int64_t dims[1] = { k };
	if (!k) {
		free(d);
		BERR(b, "gives an empty shape");
		return -ENOTSUP;
	}
	return def_const(b, b->n->out[0], QV_DT_I64, 1, dims, d);
}

/*
 * Reshape-like views: the target dims may hold GX_SYM (the batch, from a
 * Shape), -1 (inferred; absorbs the batch if nothing else does) and, unless
 * allowzero, 0 (copy the input's dim). The view is exact when the product
 * of the dimensions after the batch axis is unchanged.
 */
static int view_to(struct bctx *b, const struct gx_tensor *x, const int64_t *tgt, uint32_t k, bool zero_copies)
{
	int64_t d[QV_MAX_RANK];
	if (k > QV_MAX_RANK) {
		BERR(b, "target rank %u exceeds %d", k, QV_MAX_RANK);
		return -ENOTSUP;
	}
	int32_t sym = -1, neg = -1;
	for (uint32_t i = 0; i < k; i++) {
		d[i] = tgt[i];
		if (d[i] == 0 && zero_copies) {
			if (i >= x->rank) {
				BERR(b, "target dim %u copies a dimension the input lacks", i);
				return -EINVAL;
			}
			d[i] = (int32_t)i == x->bpos ? GX_SYM : x->dims[i];
		}
		if (d[i] == GX_SYM) {
			if (sym >= 0) {
				BERR(b, "target holds the batch size twice");
				return -EINVAL;
			}
			sym = (int32_t)i;
			d[i] = 1;
		} else if (d[i] == -1) {
			if (neg >= 0) {
				BERR(b, "target has two -1 dimensions");
				return -EINVAL;
			}
			neg = (int32_t)i;
		} else if (d[i] < 1) {
			BERR(b, "target dimension %u is %lld", i, (long long)d[i]);
			return -EINVAL;
		}
	}
	uint64_t known = 1;
	for (uint32_t i = 0; i < k; i++)
		if ((int32_t)i != neg)
			known *= (uint64_t)d[i];
	if (is_const(x)) {
		if (sym >= 0) {
			BERR(b, "gives a constant the batch dimension");
			return -ENOTSUP;
		}
		if (neg >= 0) {
			if (!known || x->numel % known) {
				BERR(b, "cannot infer -1: %llu elements into %llu", (unsigned long long)x->numel,
				     (unsigned long long)known);
				return -EINVAL;
			}
			d[neg] = (int64_t)(x->numel / known);
		}
		if (prod(d, 0, k) != x->numel) {
			BERR(b, "target has %llu elements, input %llu", (unsigned long long)prod(d, 0, k),
			     (unsigned long long)x->numel);
			return -EINVAL;
		}
		return def_view(b, b->n->out[0], x, k, d, -1);
	}
	int32_t bp = sym;
	if (neg >= 0) {
		if (!known || x->numel % known) {
			BERR(b, "cannot infer -1: %llu elements a row into %llu", (unsigned long long)x->numel,
			     (unsigned long long)known);
			return -EINVAL;
		}
		/* without the batch in the target, -1 takes it (times what is left
		 * of a row: the batch then merges with the dimensions after it) */
		d[neg] = (int64_t)(x->numel / known);
		if (sym < 0)
			bp = neg;
	}
	if (bp < 0 || prod(d, 0, k) != x->numel) {
		char s1[96];
		shape_str(x, s1, sizeof(s1));
		BERR(b, "reshaping %s would mix rows of the batch (or sizes differ)", s1);
		return -EINVAL;
	}
	/* Rows stay whole when the elements from the batch axis on (its own
	 * per-row extent included) are as many before and after. */
	if (prod(d, (uint32_t)bp, k) != prod(x->dims, (uint32_t)x->bpos, x->rank)) {
		char s1[96];
		shape_str(x, s1, sizeof(s1));
		BERR(b, "reshaping %s would mix the batch with other dimensions", s1);
		return -EINVAL;
	}
	return def_view(b, b->n->out[0], x, k, d, bp);
}

static int b_reshape(struct bctx *b)
{
	int r = need_in(b, 2, 2);
	if (r < 0)
		return r;
	if (attr_i(b->n, "allowzero", 0) != 0) {
		BERR(b, "allowzero=1 is not supported");
		return -ENOTSUP;
	}
	int64_t tgt[QV_MAX_RANK];
	uint32_t k;
	if ((r = const_ints(b, in_t(b, 1), tgt, QV_MAX_RANK, &k)) < 0)
		return r;
	return view_to(b, in_t(b, 0), tgt, k, true);
}

static int b_flatten(struct bctx *b)
{
	const struct gx_tensor *x = in_t(b, 0);
	uint32_t ax;
	int64_t a = attr_i(b->n, "axis", 1);
	int r = a == (int64_t)x->rank ? 0 : norm_axis(b, a, x->rank, &ax);
	if (r < 0)
		return r;
	if (a == (int64_t)x->rank)
		ax = x->rank;
	int64_t t[2] = { (int64_t)prod(x->dims, 0, ax), (int64_t)prod(x->dims, ax, x->rank) };
	if (!is_const(x)) {
		/* the batch's group becomes the batch, if it holds nothing else */
		if ((uint32_t)x->bpos < ax) {
			if (t[0] != 1) {
				BERR(b, "flattening at axis %u would mix rows of the batch", ax);
				return -EINVAL;
			}
			t[0] = GX_SYM;
		} else {
			if (t[1] != 1) {
				BERR(b, "flattening at axis %u would mix rows of the batch", ax);
				return -EINVAL;
			}
			t[1] = GX_SYM;
		}
	}
	return view_to(b, x, t, 2, false);
}

static int b_squeeze(struct bctx *b, bool un)
{
	const struct gx_tensor *x = in_t(b, 0);
	int64_t ax[QV_MAX_RANK];
	uint32_t k;
	bool given;
	int r = attr_or_input_ints(b, "axes", 1, ax, QV_MAX_RANK, &k, &given);
	if (r < 0)
		return r;
	int64_t d[QV_MAX_RANK];
	int32_t bp = x->bpos;
	uint32_t orank = un ? x->rank + k : x->rank;
	if (orank > QV_MAX_RANK) {
		BERR(b, "rank %u exceeds %d", orank, QV_MAX_RANK);
		return -ENOTSUP;
	}
	bool sel[QV_MAX_RANK] = { false };
	for (uint32_t i = 0; i < k; i++) {
		uint32_t a;
		if ((r = norm_axis(b, ax[i], orank, &a)) < 0)
			return r;
		if (sel[a]) {
			BERR(b, "axis %u given twice", a);
			return -EINVAL;
		}
		sel[a] = true;
	}
	uint32_t o = 0;
	if (un) {
		uint32_t j = 0;
		for (uint32_t i = 0; i < orank; i++) {
			if (sel[i]) {
				d[o++] = 1;
			} else {
				if ((int32_t)j == x->bpos)
					bp = (int32_t)o;
				d[o++] = x->dims[j++];
			}
		}
	} else {
		for (uint32_t i = 0; i < x->rank; i++) {
			bool drop = given ? sel[i] : (x->dims[i] == 1 && (int32_t)i != x->bpos);
			if (drop && (int32_t)i == x->bpos) {
				BERR(b, "cannot squeeze the batch axis");
				return -EINVAL;
			}
			if (drop && x->dims[i] != 1) {
				BERR(b, "axis %u has size %lld, not 1", i, (long long)x->dims[i]);
				return -EINVAL;
			}
			if (drop)
				continue;
			if ((int32_t)i == x->bpos)
				bp = (int32_t)o;
			d[o++] = x->dims[i];
		}
	}
	return def_view(b, b->n->out[0], x, o, d, is_const(x) ? -1 : bp);
}

static int b_transpose(struct bctx *b)
{
	const struct gx_tensor *x = in_t(b, 0);
	int32_t xid = b->n->in[0];
	const struct gx_attr *pa = gx_attr(b->n, "perm");
	int64_t perm[QV_MAX_RANK];
	uint32_t R = x->rank;
	if (pa) {
		if (pa->n_ints != R) {
			BERR(b, "perm has %u entries for rank %u", pa->n_ints, R);
			return -EINVAL;
		}
		memcpy(perm, pa->ints, R * sizeof(int64_t));
	} else {
		for (uint32_t i = 0; i < R; i++)
			perm[i] = R - 1 - i;
	}
	bool seen[QV_MAX_RANK] = { false };
	int64_t d[QV_MAX_RANK];
	int32_t bp = -1;
	for (uint32_t i = 0; i < R; i++) {
		if (perm[i] < 0 || perm[i] >= R || seen[perm[i]]) {
			BERR(b, "perm is not a permutation");
			return -EINVAL;
		}
		seen[perm[i]] = true;
		d[i] = x->dims[perm[i]];
		if (perm[i] == x->bpos)
			bp = (int32_t)i;
	}
	/* The order of the axes of size > 1 decides whether bytes move. */
	int64_t last = -1;
	bool moves = false;
	for (uint32_t i = 0; i < R; i++) {
		if (x->dims[perm[i]] == 1)
			continue;
		moves |= perm[i] < last;
		last = perm[i];
	}
	if (!moves)
		return def_view(b, b->n->out[0], x, R, d, bp);
	struct gx_step *s;
	int r = new_step(b, GX_K_MAP, &s);
	if (r < 0)
		return r;
	x = &b->g->t[xid];
	step_in(s, b->g, xid);
	uint64_t numel = prod(d, 0, R);
	int64_t xs[QV_MAX_RANK], c[QV_MAX_RANK] = { 0 };
	strides_of(x->dims, R, xs);
	if (!(s->map[0] = map_alloc(numel))) {
		drop_last_step(b->g);
		return -ENOMEM;
	}
	for (uint64_t e = 0; e < numel; e++) {
		int64_t off = 0;
		for (uint32_t i = 0; i < R; i++)
			off += c[i] * xs[perm[i]];
		s->map[0][e] = (int32_t)off;
		next_coord(c, d, R);
	}
	return emit(b, s, b->n->out[0], x->dt, R, d, bp);
}

static int b_slice(struct bctx *b)
{
	const struct gx_tensor *x = in_t(b, 0);
	int32_t xid = b->n->in[0];
	uint32_t R = x->rank;
	int64_t st[QV_MAX_RANK], en[QV_MAX_RANK], ax[QV_MAX_RANK], sp[QV_MAX_RANK];
	uint32_t ns, ne, na = 0, nsp = 0;
	int r;
	bool given;
	if (b->g->opset < 10) {
		const struct gx_attr *a1 = gx_attr(b->n, "starts"), *a2 = gx_attr(b->n, "ends");
		const struct gx_attr *a3 = gx_attr(b->n, "axes");
		if (!a1 || !a2 || a1->n_ints > QV_MAX_RANK || a2->n_ints != a1->n_ints) {
			BERR(b, "needs starts and ends");
			return -EINVAL;
		}
		ns = a1->n_ints;
		ne = a2->n_ints;
		memcpy(st, a1->ints, ns * 8);
		memcpy(en, a2->ints, ne * 8);
		if (a3) {
			na = a3->n_ints > QV_MAX_RANK ? QV_MAX_RANK : a3->n_ints;
			memcpy(ax, a3->ints, na * 8);
		}
	} else {
		if ((r = need_in(b, 3, 5)) < 0)
			return r;
		if ((r = const_ints(b, in_t(b, 1), st, QV_MAX_RANK, &ns)) < 0 ||
		    (r = const_ints(b, in_t(b, 2), en, QV_MAX_RANK, &ne)) < 0)
			return r;
		if ((r = attr_or_input_ints(b, "-", 3, ax, QV_MAX_RANK, &na, &given)) < 0 ||
		    (r = attr_or_input_ints(b, "-", 4, sp, QV_MAX_RANK, &nsp, &given)) < 0)
			return r;
	}
	if (ne != ns || (na && na != ns) || (nsp && nsp != ns)) {
		BERR(b, "starts, ends, axes and steps differ in length");
		return -EINVAL;
	}
	int64_t start[QV_MAX_RANK], step[QV_MAX_RANK], d[QV_MAX_RANK];
	for (uint32_t i = 0; i < R; i++) {
		start[i] = 0;
		step[i] = 1;
		d[i] = x->dims[i];
	}
	bool moves = false;
	for (uint32_t i = 0; i < ns; i++) {
		uint32_t a;
		if ((r = norm_axis(b, na ? ax[i] : (int64_t)i, R, &a)) < 0)
			return r;
		int64_t stp = nsp ? sp[i] : 1;
		if (stp == 0) {
			BERR(b, "step 0");
			return -EINVAL;
		}
		int64_t dim = x->dims[a], s0 = st[i], e0 = en[i];
		if ((int32_t)a == x->bpos) {
			/* only the whole batch may be "sliced" */
			if (stp == 1 && (s0 == 0 || s0 <= -dim) && (e0 >= INT32_MAX || e0 == GX_SYM)) {
				continue;
			}
			BERR(b, "slices the batch axis");
			return -ENOTSUP;
		}
		if (e0 == GX_SYM || s0 == GX_SYM) {
			BERR(b, "slice bounds use the batch size");
			return -ENOTSUP;
		}
		/* ONNX clamping */
		if (s0 < 0)
			s0 += dim;
		if (e0 < 0)
			e0 += dim;
		int64_t cnt;
		if (stp > 0) {
			s0 = s0 < 0 ? 0 : s0 > dim ? dim : s0;
			e0 = e0 < 0 ? 0 : e0 > dim ? dim : e0;
			cnt = e0 > s0 ? (e0 - s0 + stp - 1) / stp : 0;
		} else {
			s0 = s0 < 0 ? -1 : s0 > dim - 1 ? dim - 1 : s0;
			e0 = e0 < -1 ? -1 : e0 > dim - 1 ? dim - 1 : e0;
			cnt = s0 > e0 ? (s0 - e0 + (-stp) - 1) / (-stp) : 0;
		}
		if (cnt < 1 && !is_const(x)) {
			BERR(b, "gives an empty tensor along axis %u", a);
			return -ENOTSUP;
		}
		if (cnt < 0)
			cnt = 0;
		start[a] = s0;
		step[a] = stp;
		d[a] = cnt;
		moves |= cnt != dim;
	}
	if (!moves)
		return def_view(b, b->n->out[0], x, R, d, x->bpos);
	struct gx_step *s;
	if ((r = new_step(b, GX_K_MAP, &s)) < 0)
		return r;
	x = &b->g->t[xid];
	step_in(s, b->g, xid);
	uint64_t numel = prod(d, 0, R);
	int64_t xs[QV_MAX_RANK], c[QV_MAX_RANK] = { 0 };
	strides_of(x->dims, R, xs);
	if (!(s->map[0] = map_alloc(numel))) {
		drop_last_step(b->g);
		return -ENOMEM;
	}
	for (uint64_t e = 0; e < numel; e++) {
		int64_t off = 0;
		for (uint32_t i = 0; i < R; i++)
			off += (start[i] + c[i] * step[i]) * xs[i];
		s->map[0][e] = (int32_t)off;
		next_coord(c, d, R);
	}
	return emit(b, s, b->n->out[0], x->dt, R, d, x->bpos);
}

static int b_split(struct bctx *b)
{
	const struct gx_tensor *x = in_t(b, 0);
	int32_t xid = b->n->in[0];
	uint32_t a;
	int r = norm_axis(b, attr_i(b->n, "axis", 0), x->rank, &a);
	if (r < 0)
		return r;
	if ((int32_t)a == x->bpos) {
		BERR(b, "splits along the batch axis");
		return -ENOTSUP;
	}
	uint32_t k = b->n->n_out;
	int64_t sz[64];
	uint32_t ns = 0;
	bool given;
	if ((r = attr_or_input_ints(b, "split", 1, sz, 64, &ns, &given)) < 0)
		return r;
	int64_t dim = x->dims[a];
	if (!ns) {
		int64_t no = attr_i(b->n, "num_outputs", k);
		if (no != k || !k) {
			BERR(b, "num_outputs %lld for %u outputs", (long long)no, k);
			return -EINVAL;
		}
		int64_t each = (dim + k - 1) / k;
		for (uint32_t i = 0; i < k; i++) {
			int64_t left = dim - each * i;
			sz[i] = left < each ? left : each;
		}
		ns = k;
	}
	int64_t tot = 0;
	for (uint32_t i = 0; i < ns; i++) {
		if (sz[i] < 1) {
			BERR(b, "split size %lld", (long long)sz[i]);
			return -ENOTSUP;
		}
		tot += sz[i];
	}
	if (ns != k || tot != dim) {
		BERR(b, "splits %lld along axis %u into %u parts summing to %lld", (long long)dim, a, ns,
		     (long long)tot);
		return -EINVAL;
	}
	int64_t off = 0;
	for (uint32_t o = 0; o < k; o++) {
		x = &b->g->t[xid];
		int64_t d[QV_MAX_RANK], xs[QV_MAX_RANK], c[QV_MAX_RANK] = { 0 };
		memcpy(d, x->dims, sizeof(d));
		d[a] = sz[o];
		if (b->n->out[o] < 0) {
			off += sz[o];
			continue;
		}
		struct gx_step *s;
		if ((r = new_step(b, GX_K_MAP, &s)) < 0)
			return r;
		step_in(s, b->g, xid);
		uint64_t numel = prod(d, 0, x->rank);
		strides_of(x->dims, x->rank, xs);
		if (!(s->map[0] = map_alloc(numel))) {
			drop_last_step(b->g);
			return -ENOMEM;
		}
		for (uint64_t e = 0; e < numel; e++) {
			int64_t v = 0;
			for (uint32_t i = 0; i < x->rank; i++)
				v += (c[i] + (i == a ? off : 0)) * xs[i];
			s->map[0][e] = (int32_t)v;
			next_coord(c, d, x->rank);
		}
		if ((r = emit(b, s, b->n->out[o], x->dt, x->rank, d, x->bpos)) < 0)
			return r;
		off += sz[o];
	}
	return 0;
}

static int b_concat(struct bctx *b)
{
	const struct gx_node *n = b->n;
	if (n->n_in < 1 || n->n_in > GX_MAX_IN) {
		BERR(b, "has %u inputs (1..%u supported)", n->n_in, GX_MAX_IN);
		return -ENOTSUP;
	}
	const struct gx_attr *aa = gx_attr(n, "axis");
	if (!aa) {
		BERR(b, "attribute 'axis' is required");
		return -EINVAL;
	}
	const struct gx_tensor *x0 = in_t(b, 0);
	if (!x0) {
		BERR(b, "input 0 is missing");
		return -EINVAL;
	}
	uint32_t R = x0->rank, a;
	int r = norm_axis(b, aa->i, R, &a);
	if (r < 0)
		return r;
	int32_t bp = -1;
	int64_t d[QV_MAX_RANK];
	memcpy(d, x0->dims, sizeof(d));
	d[a] = 0;
	for (uint32_t i = 0; i < n->n_in; i++) {
		const struct gx_tensor *t = in_t(b, i);
		if (!t || t->rank != R || t->dt != x0->dt) {
			BERR(b, "input %u differs in rank or type from input 0", i);
			return -EINVAL;
		}
		if (!is_const(t)) {
			if (bp >= 0 && t->bpos != bp) {
				BERR(b, "inputs have their batch on different axes");
				return -EINVAL;
			}
			bp = t->bpos;
		}
		for (uint32_t j = 0; j < R; j++) {
			if (j != a && t->dims[j] != x0->dims[j]) {
				char s1[96], s2[96];
				shape_str(x0, s1, sizeof(s1));
				shape_str(t, s2, sizeof(s2));
				BERR(b, "input %u %s does not match input 0 %s off axis %u", i, s2, s1, a);
				return -EINVAL;
			}
		}
		d[a] += t->dims[a];
	}
	if ((int32_t)a == bp) {
		BERR(b, "concatenates along the batch axis");
		return -ENOTSUP;
	}
	struct gx_step *s;
	if ((r = new_step(b, GX_K_CONCAT, &s)) < 0)
		return r;
	s->part = calloc(n->n_in, sizeof(uint64_t));
	if (!s->part) {
		drop_last_step(b->g);
		return -ENOMEM;
	}
	s->outer = prod(d, 0, a);
	for (uint32_t i = 0; i < n->n_in; i++) {
		s->part[i] = prod(in_t(b, i)->dims, a, R);
		step_in(s, b->g, n->in[i]);
	}
	return emit(b, s, n->out[0], x0->dt, R, d, bp);
}

static int b_gather(struct bctx *b)
{
	int r = need_in(b, 2, 2);
	if (r < 0)
		return r;
	const struct gx_tensor *x = in_t(b, 0), *ix = in_t(b, 1);
	int32_t xid = b->n->in[0], iid = b->n->in[1];
	uint32_t a;
	if ((r = norm_axis(b, attr_i(b->n, "axis", 0), x->rank, &a)) < 0)
		return r;
	if (ix->dt != QV_DT_I64 && ix->dt != QV_DT_I32) {
		BERR(b, "indices '%.80s' are %s, not int32/int64", ix->name, qv_dtype_name(ix->dt));
		return -EINVAL;
	}
	uint32_t R = x->rank - 1 + ix->rank;
	if (R > QV_MAX_RANK) {
		BERR(b, "output rank %u exceeds %d", R, QV_MAX_RANK);
		return -ENOTSUP;
	}
	int64_t d[QV_MAX_RANK];
	uint32_t o = 0;
	for (uint32_t i = 0; i < a; i++)
		d[o++] = x->dims[i];
	for (uint32_t i = 0; i < ix->rank; i++)
		d[o++] = ix->dims[i];
	for (uint32_t i = a + 1; i < x->rank; i++)
		d[o++] = x->dims[i];
	struct gx_step *s;
	if (is_const(ix)) {
		if ((int32_t)a == x->bpos) {
			BERR(b, "gathers along the batch axis");
			return -ENOTSUP;
		}
		if ((r = new_step(b, GX_K_MAP, &s)) < 0)
			return r;
		x = &b->g->t[xid];
		ix = &b->g->t[iid];
		step_in(s, b->g, xid);
		uint64_t numel = prod(d, 0, R);
		int64_t xs[QV_MAX_RANK], c[QV_MAX_RANK] = { 0 };
		strides_of(x->dims, x->rank, xs);
		if (!(s->map[0] = map_alloc(numel))) {
			drop_last_step(b->g);
			return -ENOMEM;
		}
		const int64_t *iv = ix->data;
		int64_t is_[QV_MAX_RANK];
		strides_of(ix->dims, ix->rank, is_);
		for (uint64_t e = 0; e < numel; e++) {
			int64_t off = 0, k = 0;
			for (uint32_t i = 0; i < a; i++)
				off += c[i] * xs[i];
			for (uint32_t i = 0; i < ix->rank; i++)
				k += c[a + i] * is_[i];
			int64_t id = iv[k];
			if (id < 0)
				id += x->dims[a];
			if (id < 0 || id >= x->dims[a]) {
				drop_last_step(b->g);
				BERR(b, "constant index %lld is out of range for %lld", (long long)iv[k],
				     (long long)x->dims[a]);
				return -EINVAL;
			}
			off += id * xs[a];
			for (uint32_t i = a + 1; i < x->rank; i++)
				off += c[i - 1 + ix->rank] * xs[i];
			s->map[0][e] = (int32_t)off;
			next_coord(c, d, R);
		}
		int32_t bp = x->bpos < 0 ? -1 : (uint32_t)x->bpos < a ? x->bpos : x->bpos - 1 + (int32_t)ix->rank;
		return emit(b, s, b->n->out[0], x->dt, R, d, bp);
	}
	if (!is_const(x)) {
		BERR(b, "gathers from a computed tensor with computed indices");
		return -ENOTSUP;
	}
	if (a != 0) {
		BERR(b, "computed indices on axis %u (only 0, an embedding lookup)", a);
		return -ENOTSUP;
	}
	if ((r = new_step(b, GX_K_GATHER, &s)) < 0)
		return r;
	x = &b->g->t[xid];
	ix = &b->g->t[iid];
	step_in(s, b->g, xid);
	step_in(s, b->g, iid);
	s->in_dt = ix->dt;
	s->n_idx = ix->numel;
	s->V = (uint64_t)x->dims[0];
	s->D = x->numel / s->V;
	return emit(b, s, b->n->out[0], x->dt, R, d, ix->bpos);
}

static int b_expand(struct bctx *b)
{
	int r = need_in(b, 2, 2);
	if (r < 0)
		return r;
	const struct gx_tensor *x = in_t(b, 0);
	int32_t xid = b->n->in[0];
	int64_t sh[QV_MAX_RANK];
	uint32_t k;
	if ((r = const_ints(b, in_t(b, 1), sh, QV_MAX_RANK, &k)) < 0)
		return r;
	uint32_t R = k > x->rank ? k : x->rank;
	int32_t sp = -1;
	for (uint32_t i = 0; i < k; i++) {
		if (sh[i] == GX_SYM) {
			sp = (int32_t)(i + R - k);
			sh[i] = 1;
		}
	}
	int32_t bp = is_const(x) ? -1 : x->bpos + (int32_t)(R - x->rank);
	if (sp >= 0 && bp >= 0 && sp != bp) {
		BERR(b, "the batch axes of the input and the shape do not line up");
		return -EINVAL;
	}
	if (bp < 0)
		bp = sp;
	int64_t d[QV_MAX_RANK];
	for (uint32_t i = 0; i < R; i++) {
		int64_t a = i + x->rank >= R ? x->dims[i + x->rank - R] : 1;
		int64_t c = i + k >= R ? sh[i + k - R] : 1;
		if (a != 1 && c != 1 && a != c) {
			BERR(b, "cannot expand %lld to %lld on axis %u", (long long)a, (long long)c, i);
			return -EINVAL;
		}
		d[i] = a != 1 ? a : c;
		if ((int32_t)i == bp && d[i] != 1) {
			BERR(b, "expands along the batch axis");
			return -EINVAL;
		}
	}
	struct gx_step *s;
	if ((r = new_step(b, GX_K_MAP, &s)) < 0)
		return r;
	x = &b->g->t[xid];
	step_in(s, b->g, xid);
	uint64_t numel = prod(d, 0, R);
	int64_t xs[QV_MAX_RANK], c[QV_MAX_RANK] = { 0 };
	strides_of(x->dims, x->rank, xs);
	if (!(s->map[0] = map_alloc(numel))) {
		drop_last_step(b->g);
		return -ENOMEM;
	}
	for (uint64_t e = 0; e < numel; e++) {
		int64_t off = 0;
		for (uint32_t i = R - x->rank; i < R; i++)
			if (x->dims[i - (R - x->rank)] != 1)
				off += c[i] * xs[i - (R - x->rank)];
		s->map[0][e] = (int32_t)off;
		next_coord(c, d, R);
	}
	if (is_const(x) && sp >= 0) {
		/* a constant broadcast over the batch: computed from here on */
		uint64_t numel2;
		if ((r = check_dims(b, R, d, &numel2)) < 0) {
			drop_last_step(b->g);
			return r;
		}
		struct gx_tensor *o = &b->g->t[b->n->out[0]];
		s->dt = x->dt;
		s->esz = gx_esz(x->dt);
		s->out = b->n->out[0];
		s->out_w = numel2;
		if ((r = set_shape(b, o, x->dt, R, d, bp)) < 0 ||
		    (r = new_store(b->g, numel2 * s->esz, &o->store)) < 0) {
			drop_last_step(b->g);
			return r;
		}
		return 0;
	}
	return emit(b, s, b->n->out[0], x->dt, R, d, bp);
}

static int b_const_of_shape(struct bctx *b)
{
	const struct gx_tensor *st = in_t(b, 0);
	int64_t sh[QV_MAX_RANK];
	uint32_t k;
	int r = const_ints(b, st, sh, QV_MAX_RANK, &k);
	if (r < 0)
		return r;
	const struct gx_attr *va = gx_attr(b->n, "value");
	uint32_t dt = QV_DT_F32;
	int64_t iv = 0;
	float fv = 0.0f;
	if (va && va->has_t && va->t.numel == 1) {
		dt = va->t.dtype == QV_DT_I32 ? QV_DT_I64 : va->t.dtype;
		if (dt == QV_DT_F32)
			fv = *(const float *)va->t.data;
		else if (dt == GX_BOOL)
			iv = *(const uint8_t *)va->t.data;
		else
			iv = *(const int64_t *)va->t.data;
	}
	int32_t bp = -1;
	for (uint32_t i = 0; i < k; i++) {
		if (sh[i] == GX_SYM) {
			bp = (int32_t)i;
			sh[i] = 1;
		}
	}
	uint64_t numel;
	if ((r = check_dims(b, k, sh, &numel)) < 0)
		return r;
	uint32_t esz = gx_esz(dt);
	void *d = malloc(numel * esz);
	if (!d)
		return -ENOMEM;
	for (uint64_t i = 0; i < numel; i++) {
		if (dt == QV_DT_F32)
			((float *)d)[i] = fv;
		else if (dt == GX_BOOL)
			((uint8_t *)d)[i] = (uint8_t)iv;
		else
			((int64_t *)d)[i] = iv;
	}
	if (bp < 0)
		return def_const(b, b->n->out[0], dt, k, sh, d);
	/* a fill over the batch: a constant, expanded by a MAP step */
	int32_t cid;
	char nm[160];
	snprintf(nm, sizeof(nm), "%.100s/fill", b->n->name);
	if ((r = gx_tensor_add(b->g, nm, &cid)) < 0) {
		free(d);
		return r;
	}
	if ((r = def_const(b, cid, dt, k, sh, d)) < 0)
		return r;
	struct gx_step *s;
	if ((r = new_step(b, GX_K_MAP, &s)) < 0)
		return r;
	step_in(s, b->g, cid);
	if (!(s->map[0] = map_alloc(numel))) {
		drop_last_step(b->g);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < numel; i++)
		s->map[0][i] = (int32_t)i;
	struct gx_tensor *o = &b->g->t[b->n->out[0]];
	s->dt = dt;
	s->esz = esz;
	s->out = b->n->out[0];
	s->out_w = numel;
	if ((r = set_shape(b, o, dt, k, sh, bp)) < 0 || (r = new_store(b->g, numel * esz, &o->store)) < 0) {
		drop_last_step(b->g);
		return r;
	}
	return 0;
}

static int b_range(struct bctx *b)
{
	int r = need_in(b, 3, 3);
	if (r < 0)
		return r;
	const struct gx_tensor *t[3] = { in_t(b, 0), in_t(b, 1), in_t(b, 2) };
	for (int i = 0; i < 3; i++) {
		if (!is_const(t[i]) || t[i]->numel != 1 || t[i]->has_sym) {
			BERR(b, "only constant ranges are supported");
			return -ENOTSUP;
		}
	}
	double v[3];
	for (int i = 0; i < 3; i++)
		v[i] = t[i]->dt == QV_DT_F32 ? *(const float *)t[i]->data : (double)*(const int64_t *)t[i]->data;
	if (v[2] == 0) {
		BERR(b, "delta is 0");
		return -EINVAL;
	}
	double cnt = ceil((v[1] - v[0]) / v[2]);
	if (cnt < 1 || cnt > 1e7) {
		BERR(b, "gives %g elements", cnt);
		return -ENOTSUP;
	}
	int64_t k = (int64_t)cnt;
	uint32_t dt = t[0]->dt;
	void *d = malloc((size_t)k * gx_esz(dt));
	if (!d)
		return -ENOMEM;
	for (int64_t i = 0; i < k; i++) {
		if (dt == QV_DT_F32)
			((float *)d)[i] = (float)(v[0] + (double)i * v[2]);
		else
			((int64_t *)d)[i] = (int64_t)v[0] + i * (int64_t)v[2];
	}
	int64_t dims[1] = { k };
	return def_const(b, b->n->out[0], dt, 1, dims, d);
}

static int b_binary(struct bctx *b, int op)
{
	int r = need_in(b, 2, 2);
	if (r < 0)
		return r;
	const struct gx_tensor *x = in_t(b, 0), *y = in_t(b, 1);
	bool cmp = op >= GX_EQ && op <= GX_GE, logic = op >= GX_AND;
	uint32_t dt = x->dt;
	if (op == GX_POW && y->dt == QV_DT_F32 && dt == QV_DT_F32) {
		/* float ** float */
	} else if (x->dt != y->dt) {
		BERR(b, "operands are %s and %s", qv_dtype_name(x->dt), qv_dtype_name(y->dt));
		return -EINVAL;
	}
	if (logic ? dt != GX_BOOL : (dt != QV_DT_F32 && dt != QV_DT_I64)) {
		BERR(b, "operand '%.80s' is %s: not supported here", x->name,
		     dt == GX_BOOL ? "bool" : qv_dtype_name(dt));
		return -ENOTSUP;
	}
	struct gx_step *s;
	if ((r = new_step(b, GX_K_BIN, &s)) < 0)
		return r;
	s->op = op;
	s->in_dt = dt;
	step_in(s, b->g, b->n->in[0]);
	step_in(s, b->g, b->n->in[1]);
	uint32_t R;
	int64_t d[QV_MAX_RANK];
	int32_t bp;
	if ((r = bcast(b, s, 2, s->in, &R, d, &bp)) < 0) {
		drop_last_step(b->g);
		return r;
	}
	return emit(b, s, b->n->out[0], cmp ? GX_BOOL : dt, R, d, bp);
}

static int b_where(struct bctx *b)
{
	int r = need_in(b, 3, 3);
	if (r < 0)
		return r;
	const struct gx_tensor *c = in_t(b, 0), *x = in_t(b, 1), *y = in_t(b, 2);
	if (c->dt != GX_BOOL || x->dt != y->dt) {
		BERR(b, "wants a bool condition and two operands of one type");
		return -EINVAL;
	}
	struct gx_step *s;
	if ((r = new_step(b, GX_K_WHERE, &s)) < 0)
		return r;
	for (uint32_t i = 0; i < 3; i++)
		step_in(s, b->g, b->n->in[i]);
	uint32_t R;
	int64_t d[QV_MAX_RANK];
	int32_t bp;
	if ((r = bcast(b, s, 3, s->in, &R, d, &bp)) < 0) {
		drop_last_step(b->g);
		return r;
	}
	return emit(b, s, b->n->out[0], b->g->t[b->n->in[1]].dt, R, d, bp);
}

static int b_unary(struct bctx *b, int op)
{
	const struct gx_tensor *x = in_t(b, 0);
	if (!x) {
		BERR(b, "input 0 is missing");
		return -EINVAL;
	}
	if (op == GX_NOT ? x->dt != GX_BOOL : x->dt != QV_DT_F32) {
		BERR(b, "input '%.80s' is %s, not %s", x->name, x->dt == GX_BOOL ? "bool" : qv_dtype_name(x->dt),
		     op == GX_NOT ? "bool" : "float32");
		return -ENOTSUP;
	}
	struct gx_step *s;
	int r = new_step(b, GX_K_UNARY, &s);
	if (r < 0)
		return r;
	s->op = op;
	step_in(s, b->g, b->n->in[0]);
	if (op == GX_LEAKY)
		s->alpha = attr_f(b->n, "alpha", 0.01f);
	if (op == GX_CLIP) {
		s->alpha = -INFINITY;
		s->beta = INFINITY;
		if (b->g->opset < 11) {
			s->alpha = attr_f(b->n, "min", -INFINITY);
			s->beta = attr_f(b->n, "max", INFINITY);
		}
		for (uint32_t i = 1; i < 3; i++) {
			const struct gx_tensor *t = opt_t(b, i);
			if (!t)
				continue;
			if (!is_const(t) || t->dt != QV_DT_F32 || t->numel != 1) {
				drop_last_step(b->g);
				BERR(b, "bound %u must be a constant float scalar", i);
				return -ENOTSUP;
			}
			*(i == 1 ? &s->alpha : &s->beta) = *(const float *)t->data;
		}
	}
	x = in_t(b, 0);
	return emit(b, s, b->n->out[0], x->dt, x->rank, x->dims, x->bpos);
}

static int b_cast(struct bctx *b)
{
	const struct gx_tensor *x = in_t(b, 0);
	int64_t to = attr_i(b->n, "to", 0);
	uint32_t dt = to == 1 ? QV_DT_F32 : to == 6 ? QV_DT_I32 : to == 7 ? QV_DT_I64 : to == 9 ? GX_BOOL : 0;
	if (!dt) {
		BERR(b, "cast to type %lld is not supported", (long long)to);
		return -ENOTSUP;
	}
	if (is_const(x) && dt == QV_DT_I32)
		dt = QV_DT_I64; /* constant integers are held as int64 */
	if (dt == x->dt)
		return def_view(b, b->n->out[0], x, x->rank, x->dims, x->bpos);
	struct gx_step *s;
	int r = new_step(b, GX_K_CAST, &s);
	if (r < 0)
		return r;
	s->in_dt = x->dt;
	step_in(s, b->g, b->n->in[0]);
	x = in_t(b, 0);
	int32_t oid = b->n->out[0];
	if ((r = emit(b, s, oid, dt, x->rank, x->dims, x->bpos)) < 0)
		return r;
	if (!is_const(&b->g->t[oid]))
		b->g->t[oid].origin = b->g->t[b->n->in[0]].origin;
	return 0;
}

static int b_softmax(struct bctx *b, bool lg)
{
	const struct gx_tensor *x = in_t(b, 0);
	if (x->dt != QV_DT_F32) {
		BERR(b, "input is not float32");
		return -ENOTSUP;
	}
	uint32_t a;
	int r = norm_axis(b, attr_i(b->n, "axis", b->g->opset >= 13 ? -1 : 1), x->rank, &a);
	if (r < 0)
		return r;
	struct gx_step *s;
	if ((r = new_step(b, GX_K_SOFTMAX, &s)) < 0)
		return r;
	x = in_t(b, 0);
	if (b->g->opset < 13) {
		/* coerced to 2-D at axis: one softmax over everything from it */
		if (x->bpos >= (int32_t)a) {
			drop_last_step(b->g);
			BERR(b, "axis %u would take the softmax over the batch", a);
			return -EINVAL;
		}
		s->outer = prod(x->dims, 0, a);
		s->n = prod(x->dims, a, x->rank);
		s->inner = 1;
	} else {
		if ((int32_t)a == x->bpos) {
			drop_last_step(b->g);
			BERR(b, "axis %u would take the softmax over the batch", a);
			return -EINVAL;
		}
		s->outer = prod(x->dims, 0, a);
		s->n = (uint64_t)x->dims[a];
		s->inner = prod(x->dims, a + 1, x->rank);
	}
	s->op = lg;
	step_in(s, b->g, b->n->in[0]);
	return emit(b, s, b->n->out[0], QV_DT_F32, x->rank, x->dims, x->bpos);
}

static int b_reduce(struct bctx *b, int op)
{
	const struct gx_tensor *x = in_t(b, 0);
	if (x->dt != QV_DT_F32) {
		BERR(b, "input is not float32");
		return -ENOTSUP;
	}
	int64_t ax[QV_MAX_RANK];
	uint32_t k;
	bool given;
	int r = attr_or_input_ints(b, "axes", 1, ax, QV_MAX_RANK, &k, &given);
	if (r < 0)
		return r;
	bool keep = attr_i(b->n, "keepdims", 1) != 0;
	bool sel[QV_MAX_RANK] = { false };
	if (!k) {
		if (attr_i(b->n, "noop_with_empty_axes", 0))
			return def_view(b, b->n->out[0], x, x->rank, x->dims, x->bpos);
		for (uint32_t i = 0; i < x->rank; i++)
			sel[i] = true;
	}
	for (uint32_t i = 0; i < k; i++) {
		uint32_t a;
		if ((r = norm_axis(b, ax[i], x->rank, &a)) < 0)
			return r;
		sel[a] = true;
	}
	if (x->bpos >= 0 && sel[x->bpos]) {
		BERR(b, "reduces over the batch axis");
		return -EINVAL;
	}
	int64_t d[QV_MAX_RANK], dk[QV_MAX_RANK];
	uint32_t R = 0;
	int32_t bp = -1;
	uint64_t cnt = 1;
	for (uint32_t i = 0; i < x->rank; i++) {
		dk[i] = sel[i] ? 1 : x->dims[i];
		if (sel[i])
			cnt *= (uint64_t)x->dims[i];
		if (sel[i] && !keep)
			continue;
		if ((int32_t)i == x->bpos)
			bp = (int32_t)R;
		d[R++] = dk[i];
	}
	struct gx_step *s;
	if ((r = new_step(b, GX_K_REDUCE, &s)) < 0)
		return r;
	x = in_t(b, 0);
	s->op = op;
	s->rnorm = 1.0f / (float)cnt;
	s->n = x->numel;
	step_in(s, b->g, b->n->in[0]);
	int64_t ks[QV_MAX_RANK], c[QV_MAX_RANK] = { 0 };
	strides_of(dk, x->rank, ks);
	if (!(s->map[0] = map_alloc(x->numel))) {
		drop_last_step(b->g);
		return -ENOMEM;
	}
	for (uint64_t e = 0; e < x->numel; e++) {
		int64_t off = 0;
		for (uint32_t i = 0; i < x->rank; i++)
			if (!sel[i])
				off += c[i] * ks[i];
		s->map[0][e] = (int32_t)off;
		next_coord(c, x->dims, x->rank);
	}
	/* reduced axes (of size > 1) that are one contiguous run: outer x rn x inner */
	int32_t a0 = -1, a1 = -1;
	bool run = true;
	for (uint32_t i = 0; i < x->rank; i++) {
		if (x->dims[i] == 1)
			continue;
		if (sel[i]) {
			if (a0 < 0)
				a0 = (int32_t)i;
			else if (a1 >= 0)
				run = false;
		} else if (a0 >= 0 && a1 < 0) {
			a1 = (int32_t)i;
		}
	}
	if (run && a0 >= 0) {
		if (a1 < 0)
			a1 = (int32_t)x->rank;
		s->outer = prod(x->dims, 0, (uint32_t)a0);
		s->rn = prod(x->dims, (uint32_t)a0, (uint32_t)a1);
		s->inner = prod(x->dims, (uint32_t)a1, x->rank);
	}
	return emit(b, s, b->n->out[0], QV_DT_F32, R, d, bp);
}

static int b_layernorm(struct bctx *b)
{
	int r = need_in(b, 2, 3);
	if (r < 0)
		return r;
	/* Mean / InvStdDev outputs: refused by gx_build if anything reads them */
	const struct gx_tensor *x = in_t(b, 0), *sc = in_t(b, 1), *bi = opt_t(b, 2);
	uint32_t a;
	if ((r = norm_axis(b, attr_i(b->n, "axis", -1), x->rank, &a)) < 0)
		return r;
	if (x->dt != QV_DT_F32) {
		BERR(b, "input is not float32");
		return -ENOTSUP;
	}
	if (x->bpos >= (int32_t)a) {
		BERR(b, "normalizes over the batch axis");
		return -EINVAL;
	}
	uint64_t n = prod(x->dims, a, x->rank);
	const struct gx_tensor *pp[2] = { sc, bi };
	for (int i = 0; i < 2; i++) {
		if (!pp[i])
			continue;
		if (!is_const(pp[i]) || pp[i]->dt != QV_DT_F32 || (pp[i]->numel != n && pp[i]->numel != 1)) {
			BERR(b, "%s must be a constant of %llu floats", i ? "bias" : "scale", (unsigned long long)n);
			return -ENOTSUP;
		}
	}
	struct gx_step *s;
	if ((r = new_step(b, GX_K_LN, &s)) < 0)
		return r;
	x = in_t(b, 0);
	s->outer = prod(x->dims, 0, a);
	s->n = n;
	s->alpha = attr_f(b->n, "epsilon", 1e-5f);
	s->scale = malloc(n * sizeof(float));
	s->bias = calloc(n, sizeof(float));
	if (!s->scale || !s->bias) {
		drop_last_step(b->g);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < n; i++) {
		sc = in_t(b, 1);
		bi = opt_t(b, 2);
		s->scale[i] = ((const float *)sc->data)[sc->numel == 1 ? 0 : i];
		if (bi)
			s->bias[i] = ((const float *)bi->data)[bi->numel == 1 ? 0 : i];
	}
	step_in(s, b->g, b->n->in[0]);
	return emit(b, s, b->n->out[0], QV_DT_F32, x->rank, x->dims, x->bpos);
}

static int b_batchnorm(struct bctx *b)
{
	int r = need_in(b, 5, 5);
	if (r < 0)
		return r;
	const struct gx_tensor *x = in_t(b, 0);
	if (x->rank < 2 || x->bpos == 1 || x->dt != QV_DT_F32) {
		BERR(b, "needs a float input of rank >= 2 with channels on axis 1, not the batch");
		return -EINVAL;
	}
	uint64_t C = (uint64_t)x->dims[1];
	for (uint32_t i = 1; i < 5; i++) {
		const struct gx_tensor *t = in_t(b, i);
		if (!is_const(t) || t->dt != QV_DT_F32 || t->numel != C) {
			BERR(b, "parameter %u must be a constant of %llu floats", i, (unsigned long long)C);
			return -EINVAL;
		}
	}
	float eps = attr_f(b->n, "epsilon", 1e-5f);
	struct gx_step *s;
	if ((r = new_step(b, GX_K_AFFINE, &s)) < 0)
		return r;
	x = in_t(b, 0);
	s->scale = malloc(x->numel * sizeof(float));
	s->bias = malloc(x->numel * sizeof(float));
	if (!s->scale || !s->bias) {
		drop_last_step(b->g);
		return -ENOMEM;
	}
	const float *sc = in_t(b, 1)->data, *bb = in_t(b, 2)->data, *mean = in_t(b, 3)->data,
		    *var = in_t(b, 4)->data;
	uint64_t inner = prod(x->dims, 2, x->rank);
	for (uint64_t e = 0; e < x->numel; e++) {
		uint64_t ch = (e / inner) % C;
		float a = sc[ch] / sqrtf(var[ch] + eps);
		s->scale[e] = a;
		s->bias[e] = bb[ch] - mean[ch] * a;
	}
	step_in(s, b->g, b->n->in[0]);
	return emit(b, s, b->n->out[0], QV_DT_F32, x->rank, x->dims, x->bpos);
}

/* MatMul / Gemm with a constant 2-D right operand and a computed left one
 * whose batch is not on the K axis: rows of K, one dense layer. */
static int dense_step(struct bctx *b, const struct gx_tensor *x, const float *W, uint32_t K, uint32_t N,
		      const float *bias, const int64_t *d, uint32_t R)
{
	struct gx_step *s;
	int32_t xid = (int32_t)(x - b->g->t);
	int r = new_step(b, GX_K_DENSE_REF, &s);
	if (r < 0)
		return r;
	x = &b->g->t[xid];
	s->K = K;
	s->N = N;
	s->rmul = (uint32_t)(x->numel / K);
	s->ds.kind = QV_STEP_DENSE;
	s->ds.K = K;
	s->ds.N = N;
	s->ds.W = malloc((size_t)K * N * sizeof(float));
	if (bias)
		s->ds.b = malloc(N * sizeof(float));
	if (!s->ds.W || (bias && !s->ds.b)) {
		drop_last_step(b->g);
		return -ENOMEM;
	}
	memcpy(s->ds.W, W, (size_t)K * N * sizeof(float));
	if (bias)
		memcpy(s->ds.b, bias, N * sizeof(float));
	snprintf(s->ds.label, sizeof(s->ds.label), "%s", s->label);
	step_in(s, b->g, xid);
	return emit(b, s, b->n->out[0], QV_DT_F32, R, d, x->bpos);
}

static int b_matmul(struct bctx *b)
{
	int r = need_in(b, 2, 2);
	if (r < 0)
		return r;
	const struct gx_tensor *A = in_t(b, 0), *B = in_t(b, 1);
	int32_t aid = b->n->in[0], bid = b->n->in[1];
	if (A->dt != QV_DT_F32 || B->dt != QV_DT_F32) {
		BERR(b, "operands must be float32");
		return -ENOTSUP;
	}
	if (A->rank < 1 || B->rank < 1) {
		BERR(b, "scalar operands");
		return -EINVAL;
	}
	/* rank-1 operands: promoted to matrices (and the axis removed after) */
	int64_t ad[QV_MAX_RANK + 1], bd[QV_MAX_RANK + 1];
	uint32_t ar = A->rank, br = B->rank;
	int32_t abp = A->bpos, bbp = B->bpos;
	memcpy(ad, A->dims, sizeof(A->dims));
	memcpy(bd, B->dims, sizeof(B->dims));
	bool a_vec = ar == 1, b_vec = br == 1;
	if (a_vec) {
		ad[1] = ad[0];
		ad[0] = 1;
		ar = 2;
		abp = abp >= 0 ? 1 : -1;
	}
	if (b_vec) {
		bd[1] = 1;
		br = 2;
	}
	int64_t K = ad[ar - 1], M = ad[ar - 2], N = bd[br - 1];
	if (bd[br - 2] != K) {
		char s1[96], s2[96];
		shape_str(A, s1, sizeof(s1));
		shape_str(B, s2, sizeof(s2));
		BERR(b, "shapes %s and %s do not multiply (K %lld vs %lld)", s1, s2, (long long)K,
		     (long long)bd[br - 2]);
		return -EINVAL;
	}
	/* dense: constant 2-D right operand, batch of A not on K */
	if (!is_const(A) && is_const(B) && br == 2 && !b_vec && abp != (int32_t)ar - 1 && !a_vec) {
		int64_t d[QV_MAX_RANK];
		memcpy(d, A->dims, sizeof(d));
		d[A->rank - 1] = N;
		return dense_step(b, A, B->data, (uint32_t)K, (uint32_t)N, NULL, d, A->rank);
	}
	if ((!is_const(A) && abp >= (int32_t)ar - 2 && !(abp == (int32_t)ar - 2 && is_const(B))) ||
	    (!is_const(B) && bbp >= (int32_t)br - 2)) {
		BERR(b, "the batch axis is a matrix axis of a computed operand");
		return -ENOTSUP;
	}
	/* leading (broadcast) dims */
	uint32_t la = ar - 2, lb = br - 2, L = la > lb ? la : lb;
	int64_t ld[QV_MAX_RANK];
	int32_t bp = -1;
	for (uint32_t i = 0; i < L; i++) {
		int64_t x = i + la >= L ? ad[i + la - L] : 1, y = i + lb >= L ? bd[i + lb - L] : 1;
		if (x != 1 && y != 1 && x != y) {
			BERR(b, "batch dims %lld and %lld do not broadcast", (long long)x, (long long)y);
			return -EINVAL;
		}
		ld[i] = x != 1 ? x : y;
		bool ab = abp >= 0 && i + la >= L && (int32_t)(i + la - L) == abp;
		bool bb = bbp >= 0 && i + lb >= L && (int32_t)(i + lb - L) == bbp;
		if (ab || bb) {
			if ((abp >= 0 && !ab) || (bbp >= 0 && !bb)) {
				BERR(b, "the batch axes of the operands do not line up");
				return -EINVAL;
			}
			if (ld[i] != 1) {
				BERR(b, "a constant varies along the batch axis");
				return -EINVAL;
			}
			bp = (int32_t)i;
		}
	}
	/* A with its batch on M and a constant B: bmm on rows as M */
	bool a_rows = abp == (int32_t)ar - 2;
	int64_t d[QV_MAX_RANK + 2];
	uint32_t R = 0;
	for (uint32_t i = 0; i < L; i++)
		d[R++] = ld[i];
	if (!a_vec)
		d[R++] = M;
	if (!b_vec)
		d[R++] = N;
	if (a_rows)
		bp = (int32_t)(L + 0);
	if (R == 0) {
		d[R++] = 1; /* vector . vector: ONNX gives a scalar; keep it [1] */
	}
	if (R > QV_MAX_RANK) {
		BERR(b, "output rank exceeds %d", QV_MAX_RANK);
		return -ENOTSUP;
	}
	struct gx_step *s;
	if ((r = new_step(b, GX_K_BMM, &s)) < 0)
		return r;
	uint64_t nl = prod(ld, 0, L);
	s->L = (uint32_t)nl;
	s->M = (uint32_t)M;
	s->K = (uint32_t)K;
	s->N = (uint32_t)N;
	s->aoff = malloc(nl * sizeof(uint64_t));
	s->boff = malloc(nl * sizeof(uint64_t));
	if (!s->aoff || !s->boff) {
		drop_last_step(b->g);
		return -ENOMEM;
	}
	int64_t as[QV_MAX_RANK + 1], bs[QV_MAX_RANK + 1], c[QV_MAX_RANK] = { 0 };
	strides_of(ad, ar, as);
	strides_of(bd, br, bs);
	for (uint64_t e = 0; e < nl; e++) {
		int64_t ao = 0, bo = 0;
		for (uint32_t i = 0; i < L; i++) {
			if (i + la >= L && ad[i + la - L] != 1)
				ao += c[i] * as[i + la - L];
			if (i + lb >= L && bd[i + lb - L] != 1)
				bo += c[i] * bs[i + lb - L];
		}
		s->aoff[e] = (uint64_t)ao;
		s->boff[e] = (uint64_t)bo;
		next_coord(c, ld, L);
	}
	step_in(s, b->g, aid);
	step_in(s, b->g, bid);
	(void)a_rows;
	return emit(b, s, b->n->out[0], QV_DT_F32, R, d, bp);
}

static int b_gemm(struct bctx *b)
{
	int r = need_in(b, 2, 3);
	if (r < 0)
		return r;
	const struct gx_tensor *A = in_t(b, 0), *B = in_t(b, 1), *C = opt_t(b, 2);
	int64_t ta = attr_i(b->n, "transA", 0), tb = attr_i(b->n, "transB", 0);
	float alpha = attr_f(b->n, "alpha", 1.0f), beta = attr_f(b->n, "beta", 1.0f);
	if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1)) {
		BERR(b, "transA=%lld transB=%lld (0 or 1)", (long long)ta, (long long)tb);
		return -EINVAL;
	}
	if (A->rank != 2 || B->rank != 2) {
		BERR(b, "operands must be 2-D");
		return -EINVAL;
	}
	if (is_const(A) || !is_const(B) || A->dt != QV_DT_F32 || B->dt != QV_DT_F32 || (C && !is_const(C))) {
		BERR(b, "supported as computed A times constant float B (+ constant C) only");
		return -ENOTSUP;
	}
	if (ta) {
		BERR(b, "transA=1 would put the batch on the reduced axis");
		return -EINVAL;
	}
	int64_t K = A->dims[1], N = tb ? B->dims[0] : B->dims[1], KB = tb ? B->dims[1] : B->dims[0];
	if (K != KB) {
		char s1[96], s2[96];
		shape_str(A, s1, sizeof(s1));
		shape_str(B, s2, sizeof(s2));
		BERR(b, "shapes %s and %s do not multiply", s1, s2);
		return -EINVAL;
	}
	float *W = malloc((size_t)K * N * sizeof(float));
	float *bias = NULL;
	if (!W)
		return -ENOMEM;
	const float *bw = B->data;
	for (int64_t k = 0; k < K; k++)
		for (int64_t j = 0; j < N; j++)
			W[k * N + j] = alpha * (tb ? bw[j * K + k] : bw[k * N + j]);
	if (C) {
		bool ok = C->dt == QV_DT_F32 && (C->numel == 1 || (C->numel == (uint64_t)N && C->dims[C->rank - 1] == N));
		for (uint32_t i = 0; ok && i + 1 < C->rank; i++)
			ok = C->dims[i] == 1;
		if (!ok) {
			free(W);
			BERR(b, "C must broadcast to one row of %lld floats", (long long)N);
			return -ENOTSUP;
		}
		bias = malloc(N * sizeof(float));
		if (!bias) {
			free(W);
			return -ENOMEM;
		}
		for (int64_t j = 0; j < N; j++)
			bias[j] = beta * ((const float *)C->data)[C->numel == 1 ? 0 : j];
	}
	int64_t d[2] = { 1, N };
	r = dense_step(b, A, W, (uint32_t)K, (uint32_t)N, bias, d, 2);
	free(W);
	free(bias);
	return r;
}

struct op_def {
	const char *name;
	int (*fn)(struct bctx *b);          /* ops without a variant */
	int (*fn_arg)(struct bctx *b, int arg);
	int arg;
};

static int b_ident(struct bctx *b)
{
	const struct gx_tensor *x = in_t(b, 0);
	return def_view(b, b->n->out[0], x, x->rank, x->dims, x->bpos);
}

static int b_max_min(struct bctx *b, int op)
{
	if (b->n->n_in == 1)
		return b_ident(b);
	return b_binary(b, op);
}

static int b_squeeze_v(struct bctx *b, int un)
{
	return b_squeeze(b, un != 0);
}

static int b_softmax_v(struct bctx *b, int lg)
{
	return b_softmax(b, lg != 0);
}

static const struct op_def ops[] = {
	{ "Constant", b_constant, NULL, 0 }, { "Shape", b_shape, NULL, 0 }, { "Reshape", b_reshape, NULL, 0 },
	{ "Flatten", b_flatten, NULL, 0 }, { "Squeeze", NULL, b_squeeze_v, 0 }, { "Unsqueeze", NULL, b_squeeze_v, 1 },
	{ "Identity", b_ident, NULL, 0 }, { "Dropout", b_ident, NULL, 0 }, { "Transpose", b_transpose, NULL, 0 },
	{ "Slice", b_slice, NULL, 0 }, { "Split", b_split, NULL, 0 }, { "Concat", b_concat, NULL, 0 },
	{ "Gather", b_gather, NULL, 0 }, { "Expand", b_expand, NULL, 0 },
	{ "ConstantOfShape", b_const_of_shape, NULL, 0 }, { "Range", b_range, NULL, 0 },
	{ "Where", b_where, NULL, 0 }, { "Cast", b_cast, NULL, 0 },
	{ "Add", NULL, b_binary, GX_ADD }, { "Sub", NULL, b_binary, GX_SUB }, { "Mul", NULL, b_binary, GX_MUL },
	{ "Div", NULL, b_binary, GX_DIV }, { "Pow", NULL, b_binary, GX_POW }, { "Max", NULL, b_max_min, GX_MAX },
	{ "Min", NULL, b_max_min, GX_MIN }, { "Equal", NULL, b_binary, GX_EQ }, { "Less", NULL, b_binary, GX_LT },
	{ "Greater", NULL, b_binary, GX_GT }, { "LessOrEqual", NULL, b_binary, GX_LE },
	{ "GreaterOrEqual", NULL, b_binary, GX_GE }, { "And", NULL, b_binary, GX_AND },
	{ "Or", NULL, b_binary, GX_OR }, { "Not", NULL, b_unary, GX_NOT },
	{ "Relu", NULL, b_unary, GX_RELU }, { "LeakyRelu", NULL, b_unary, GX_LEAKY },
	{ "Sigmoid", NULL, b_unary, GX_SIGMOID }, { "Tanh", NULL, b_unary, GX_TANH },
	{ "Clip", NULL, b_unary, GX_CLIP }, { "Erf", NULL, b_unary, GX_ERF }, { "Exp", NULL, b_unary, GX_EXP },
	{ "Log", NULL, b_unary, GX_LOG }, { "Sqrt", NULL, b_unary, GX_SQRT },
	{ "Reciprocal", NULL, b_unary, GX_RECIP }, { "Neg", NULL, b_unary, GX_NEG },
	{ "Abs", NULL, b_unary, GX_ABS }, { "Floor", NULL, b_unary, GX_FLOOR }, { "Ceil", NULL, b_unary, GX_CEIL },
	{ "Softmax", NULL, b_softmax_v, 0 }, { "LogSoftmax", NULL, b_softmax_v, 1 },
	{ "ReduceSum", NULL, b_reduce, GX_RSUM }, { "ReduceMean", NULL, b_reduce, GX_RMEAN },
	{ "ReduceMax", NULL, b_reduce, GX_RMAX }, { "ReduceMin", NULL, b_reduce, GX_RMIN },
	{ "LayerNormalization", b_layernorm, NULL, 0 }, { "BatchNormalization", b_batchnorm, NULL, 0 },
	{ "MatMul", b_matmul, NULL, 0 }, { "Gemm", b_gemm, NULL, 0 },
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
		int r = new_store(g, t->numel * gx_esz(t->dt), &t->store);
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
