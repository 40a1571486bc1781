/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gx_ops_shape.c - graph op builders for shapes and data movement:
 * Constant, Shape, Reshape, Flatten, Squeeze / Unsqueeze, Transpose,
 * Slice, Split, Concat, Gather, Expand, ConstantOfShape, Range. See
 * gx_build.c for how a builder works (shapes, a step, folding).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx_build.h"

int gxb_constant(struct bctx *b)
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
		return gxb_def_const(b, n->out[0], dt, a->t.rank, a->t.shape, d);
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
		return gxb_def_const(b, n->out[0], QV_DT_F32, !strcmp(a->name, "value_float") ? 0 : 1, dims, d);
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
		return gxb_def_const(b, n->out[0], QV_DT_I64, one ? 0 : 1, dims, d);
	}
	BERR(b, "attribute '%s' is not supported", a->name);
	return -ENOTSUP;
}

int gxb_shape(struct bctx *b)
{
	const struct gx_tensor *x = gxb_in_t(b, 0);
	if (x->bpos >= 0 && x->dims[x->bpos] != 1) {
		BERR(b, "the shape of a tensor whose batch axis is merged with %lld elements is not supported",
		     (long long)x->dims[x->bpos]);
		return -ENOTSUP;
	}
	int64_t r = x->rank;
	int64_t st = gxb_attr_i(b->n, "start", 0), en = gxb_attr_i(b->n, "end", r);
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
	return gxb_def_const(b, b->n->out[0], QV_DT_I64, 1, dims, d);
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
	if (gxb_is_const(x)) {
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
		if (gxb_prod(d, 0, k) != x->numel) {
			BERR(b, "target has %llu elements, input %llu", (unsigned long long)gxb_prod(d, 0, k),
			     (unsigned long long)x->numel);
			return -EINVAL;
		}
		return gxb_def_view(b, b->n->out[0], x, k, d, -1);
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
	if (bp < 0 || gxb_prod(d, 0, k) != x->numel) {
		char s1[96];
		gxb_shape_str(x, s1, sizeof(s1));
		BERR(b, "reshaping %s would mix rows of the batch (or sizes differ)", s1);
		return -EINVAL;
	}
	/* Rows stay whole when the elements from the batch axis on (its own
	 * per-row extent included) are as many before and after. */
	if (gxb_prod(d, (uint32_t)bp, k) != gxb_prod(x->dims, (uint32_t)x->bpos, x->rank)) {
		char s1[96];
		gxb_shape_str(x, s1, sizeof(s1));
		BERR(b, "reshaping %s would mix the batch with other dimensions", s1);
		return -EINVAL;
	}
	return gxb_def_view(b, b->n->out[0], x, k, d, bp);
}

int gxb_reshape(struct bctx *b)
{
	int r = gxb_need_in(b, 2, 2);
	if (r < 0)
		return r;
	if (gxb_attr_i(b->n, "allowzero", 0) != 0) {
		BERR(b, "allowzero=1 is not supported");
		return -ENOTSUP;
	}
	int64_t tgt[QV_MAX_RANK];
	uint32_t k;
	if ((r = gxb_const_ints(b, gxb_in_t(b, 1), tgt, QV_MAX_RANK, &k)) < 0)
		return r;
	return view_to(b, gxb_in_t(b, 0), tgt, k, true);
}

int gxb_flatten(struct bctx *b)
{
	const struct gx_tensor *x = gxb_in_t(b, 0);
	uint32_t ax;
	int64_t a = gxb_attr_i(b->n, "axis", 1);
	int r = a == (int64_t)x->rank ? 0 : gxb_norm_axis(b, a, x->rank, &ax);
	if (r < 0)
		return r;
	if (a == (int64_t)x->rank)
		ax = x->rank;
	int64_t t[2] = { (int64_t)gxb_prod(x->dims, 0, ax), (int64_t)gxb_prod(x->dims, ax, x->rank) };
	if (!gxb_is_const(x)) {
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

int gxb_squeeze(struct bctx *b, bool un)
{
	const struct gx_tensor *x = gxb_in_t(b, 0);
	int64_t ax[QV_MAX_RANK];
	uint32_t k;
	bool given;
	int r = gxb_attr_or_input_ints(b, "axes", 1, ax, QV_MAX_RANK, &k, &given);
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
		if ((r = gxb_norm_axis(b, ax[i], orank, &a)) < 0)
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
	return gxb_def_view(b, b->n->out[0], x, o, d, gxb_is_const(x) ? -1 : bp);
}

int gxb_transpose(struct bctx *b)
{
	const struct gx_tensor *x = gxb_in_t(b, 0);
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
		return gxb_def_view(b, b->n->out[0], x, R, d, bp);
	struct gx_step *s;
	int r = gxb_new_step(b, GX_K_MAP, &s);
	if (r < 0)
		return r;
	x = &b->g->t[xid];
	gxb_step_in(s, b->g, xid);
	uint64_t numel = gxb_prod(d, 0, R);
	int64_t xs[QV_MAX_RANK], c[QV_MAX_RANK] = { 0 };
	gxb_strides_of(x->dims, R, xs);
	if (!(s->map[0] = gxb_map_alloc(numel))) {
		gxb_drop_last_step(b->g);
		return -ENOMEM;
	}
	for (uint64_t e = 0; e < numel; e++) {
		int64_t off = 0;
		for (uint32_t i = 0; i < R; i++)
			off += c[i] * xs[perm[i]];
		s->map[0][e] = (int32_t)off;
		gxb_next_coord(c, d, R);
	}
	return gxb_emit(b, s, b->n->out[0], x->dt, R, d, bp);
}

int gxb_slice(struct bctx *b)
{
	const struct gx_tensor *x = gxb_in_t(b, 0);
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
		if ((r = gxb_need_in(b, 3, 5)) < 0)
			return r;
		if ((r = gxb_const_ints(b, gxb_in_t(b, 1), st, QV_MAX_RANK, &ns)) < 0 ||
		    (r = gxb_const_ints(b, gxb_in_t(b, 2), en, QV_MAX_RANK, &ne)) < 0)
			return r;
		if ((r = gxb_attr_or_input_ints(b, "-", 3, ax, QV_MAX_RANK, &na, &given)) < 0 ||
		    (r = gxb_attr_or_input_ints(b, "-", 4, sp, QV_MAX_RANK, &nsp, &given)) < 0)
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
		if ((r = gxb_norm_axis(b, na ? ax[i] : (int64_t)i, R, &a)) < 0)
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
		if (cnt < 1 && !gxb_is_const(x)) {
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
		return gxb_def_view(b, b->n->out[0], x, R, d, x->bpos);
	struct gx_step *s;
	if ((r = gxb_new_step(b, GX_K_MAP, &s)) < 0)
		return r;
	x = &b->g->t[xid];
	gxb_step_in(s, b->g, xid);
	uint64_t numel = gxb_prod(d, 0, R);
	int64_t xs[QV_MAX_RANK], c[QV_MAX_RANK] = { 0 };
	gxb_strides_of(x->dims, R, xs);
	if (!(s->map[0] = gxb_map_alloc(numel))) {
		gxb_drop_last_step(b->g);
		return -ENOMEM;
	}
	for (uint64_t e = 0; e < numel; e++) {
		int64_t off = 0;
		for (uint32_t i = 0; i < R; i++)
			off += (start[i] + c[i] * step[i]) * xs[i];
		s->map[0][e] = (int32_t)off;
		gxb_next_coord(c, d, R);
	}
	return gxb_emit(b, s, b->n->out[0], x->dt, R, d, x->bpos);
}

int gxb_split(struct bctx *b)
{
	const struct gx_tensor *x = gxb_in_t(b, 0);
	int32_t xid = b->n->in[0];
	uint32_t a;
	int r = gxb_norm_axis(b, gxb_attr_i(b->n, "axis", 0), x->rank, &a);
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
	if ((r = gxb_attr_or_input_ints(b, "split", 1, sz, 64, &ns, &given)) < 0)
		return r;
	int64_t dim = x->dims[a];
	if (!ns) {
		int64_t no = gxb_attr_i(b->n, "num_outputs", k);
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
		if ((r = gxb_new_step(b, GX_K_MAP, &s)) < 0)
			return r;
		gxb_step_in(s, b->g, xid);
		uint64_t numel = gxb_prod(d, 0, x->rank);
		gxb_strides_of(x->dims, x->rank, xs);
		if (!(s->map[0] = gxb_map_alloc(numel))) {
			gxb_drop_last_step(b->g);
			return -ENOMEM;
		}
		for (uint64_t e = 0; e < numel; e++) {
			int64_t v = 0;
			for (uint32_t i = 0; i < x->rank; i++)
				v += (c[i] + (i == a ? off : 0)) * xs[i];
			s->map[0][e] = (int32_t)v;
			gxb_next_coord(c, d, x->rank);
		}
		if ((r = gxb_emit(b, s, b->n->out[o], x->dt, x->rank, d, x->bpos)) < 0)
			return r;
		off += sz[o];
	}
	return 0;
}

int gxb_concat(struct bctx *b)
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
	const struct gx_tensor *x0 = gxb_in_t(b, 0);
	if (!x0) {
		BERR(b, "input 0 is missing");
		return -EINVAL;
	}
	uint32_t R = x0->rank, a;
	int r = gxb_norm_axis(b, aa->i, R, &a);
	if (r < 0)
		return r;
	int32_t bp = -1;
	int64_t d[QV_MAX_RANK];
	memcpy(d, x0->dims, sizeof(d));
	d[a] = 0;
	for (uint32_t i = 0; i < n->n_in; i++) {
		const struct gx_tensor *t = gxb_in_t(b, i);
		if (!t || t->rank != R || t->dt != x0->dt) {
			BERR(b, "input %u differs in rank or type from input 0", i);
			return -EINVAL;
		}
		if (!gxb_is_const(t)) {
			if (bp >= 0 && t->bpos != bp) {
				BERR(b, "inputs have their batch on different axes");
				return -EINVAL;
			}
			bp = t->bpos;
		}
		for (uint32_t j = 0; j < R; j++) {
			if (j != a && t->dims[j] != x0->dims[j]) {
				char s1[96], s2[96];
				gxb_shape_str(x0, s1, sizeof(s1));
				gxb_shape_str(t, s2, sizeof(s2));
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
	if ((r = gxb_new_step(b, GX_K_CONCAT, &s)) < 0)
		return r;
	s->part = calloc(n->n_in, sizeof(uint64_t));
	if (!s->part) {
		gxb_drop_last_step(b->g);
		return -ENOMEM;
	}
	s->outer = gxb_prod(d, 0, a);
	for (uint32_t i = 0; i < n->n_in; i++) {
		s->part[i] = gxb_prod(gxb_in_t(b, i)->dims, a, R);
		gxb_step_in(s, b->g, n->in[i]);
	}
	return gxb_emit(b, s, n->out[0], x0->dt, R, d, bp);
}

int gxb_gather(struct bctx *b)
{
	int r = gxb_need_in(b, 2, 2);
	if (r < 0)
		return r;
	const struct gx_tensor *x = gxb_in_t(b, 0), *ix = gxb_in_t(b, 1);
	int32_t xid = b->n->in[0], iid = b->n->in[1];
	uint32_t a;
	if ((r = gxb_norm_axis(b, gxb_attr_i(b->n, "axis", 0), x->rank, &a)) < 0)
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
	if (gxb_is_const(ix)) {
		if ((int32_t)a == x->bpos) {
			BERR(b, "gathers along the batch axis");
			return -ENOTSUP;
		}
		if ((r = gxb_new_step(b, GX_K_MAP, &s)) < 0)
			return r;
		x = &b->g->t[xid];
		ix = &b->g->t[iid];
		gxb_step_in(s, b->g, xid);
		uint64_t numel = gxb_prod(d, 0, R);
		int64_t xs[QV_MAX_RANK], c[QV_MAX_RANK] = { 0 };
		gxb_strides_of(x->dims, x->rank, xs);
		if (!(s->map[0] = gxb_map_alloc(numel))) {
			gxb_drop_last_step(b->g);
			return -ENOMEM;
		}
		const int64_t *iv = ix->data;
		int64_t is_[QV_MAX_RANK];
		gxb_strides_of(ix->dims, ix->rank, is_);
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
				gxb_drop_last_step(b->g);
				BERR(b, "constant index %lld is out of range for %lld", (long long)iv[k],
				     (long long)x->dims[a]);
				return -EINVAL;
			}
			off += id * xs[a];
			for (uint32_t i = a + 1; i < x->rank; i++)
				off += c[i - 1 + ix->rank] * xs[i];
			s->map[0][e] = (int32_t)off;
			gxb_next_coord(c, d, R);
		}
		int32_t bp = x->bpos < 0 ? -1 : (uint32_t)x->bpos < a ? x->bpos : x->bpos - 1 + (int32_t)ix->rank;
		return gxb_emit(b, s, b->n->out[0], x->dt, R, d, bp);
	}
	if (!gxb_is_const(x)) {
		BERR(b, "gathers from a computed tensor with computed indices");
		return -ENOTSUP;
	}
	if (a != 0) {
		BERR(b, "computed indices on axis %u (only 0, an embedding lookup)", a);
		return -ENOTSUP;
	}
	if ((r = gxb_new_step(b, GX_K_GATHER, &s)) < 0)
		return r;
	x = &b->g->t[xid];
	ix = &b->g->t[iid];
	gxb_step_in(s, b->g, xid);
	gxb_step_in(s, b->g, iid);
	s->in_dt = ix->dt;
	s->n_idx = ix->numel;
	s->V = (uint64_t)x->dims[0];
	s->D = x->numel / s->V;
	return gxb_emit(b, s, b->n->out[0], x->dt, R, d, ix->bpos);
}

int gxb_expand(struct bctx *b)
{
	int r = gxb_need_in(b, 2, 2);
	if (r < 0)
		return r;
	const struct gx_tensor *x = gxb_in_t(b, 0);
	int32_t xid = b->n->in[0];
	int64_t sh[QV_MAX_RANK];
	uint32_t k;
	if ((r = gxb_const_ints(b, gxb_in_t(b, 1), sh, QV_MAX_RANK, &k)) < 0)
		return r;
	uint32_t R = k > x->rank ? k : x->rank;
	int32_t sp = -1;
	for (uint32_t i = 0; i < k; i++) {
		if (sh[i] == GX_SYM) {
			sp = (int32_t)(i + R - k);
			sh[i] = 1;
		}
	}
	int32_t bp = gxb_is_const(x) ? -1 : x->bpos + (int32_t)(R - x->rank);
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
	if ((r = gxb_new_step(b, GX_K_MAP, &s)) < 0)
		return r;
	x = &b->g->t[xid];
	gxb_step_in(s, b->g, xid);
	uint64_t numel = gxb_prod(d, 0, R);
	int64_t xs[QV_MAX_RANK], c[QV_MAX_RANK] = { 0 };
	gxb_strides_of(x->dims, x->rank, xs);
	if (!(s->map[0] = gxb_map_alloc(numel))) {
		gxb_drop_last_step(b->g);
		return -ENOMEM;
	}
	for (uint64_t e = 0; e < numel; e++) {
		int64_t off = 0;
		for (uint32_t i = R - x->rank; i < R; i++)
			if (x->dims[i - (R - x->rank)] != 1)
				off += c[i] * xs[i - (R - x->rank)];
		s->map[0][e] = (int32_t)off;
		gxb_next_coord(c, d, R);
	}
	if (gxb_is_const(x) && sp >= 0) {
		/* a constant broadcast over the batch: computed from here on */
		uint64_t numel2;
		if ((r = gxb_check_dims(b, R, d, &numel2)) < 0) {
			gxb_drop_last_step(b->g);
			return r;
		}
		struct gx_tensor *o = &b->g->t[b->n->out[0]];
		s->dt = x->dt;
		s->esz = gx_esz(x->dt);
		s->out = b->n->out[0];
		s->out_w = numel2;
		if ((r = gxb_set_shape(b, o, x->dt, R, d, bp)) < 0 ||
		    (r = gxb_new_store(b->g, numel2 * s->esz, &o->store)) < 0) {
			gxb_drop_last_step(b->g);
			return r;
		}
		return 0;
	}
	return gxb_emit(b, s, b->n->out[0], x->dt, R, d, bp);
}

int gxb_const_of_shape(struct bctx *b)
{
	const struct gx_tensor *st = gxb_in_t(b, 0);
	int64_t sh[QV_MAX_RANK];
	uint32_t k;
	int r = gxb_const_ints(b, st, sh, QV_MAX_RANK, &k);
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
	if ((r = gxb_check_dims(b, k, sh, &numel)) < 0)
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
		return gxb_def_const(b, b->n->out[0], dt, k, sh, d);
	/* a fill over the batch: a constant, expanded by a MAP step */
	int32_t cid;
	char nm[160];
	snprintf(nm, sizeof(nm), "%.100s/fill", b->n->name);
	if ((r = gx_tensor_add(b->g, nm, &cid)) < 0) {
		free(d);
		return r;
	}
	if ((r = gxb_def_const(b, cid, dt, k, sh, d)) < 0)
		return r;
	struct gx_step *s;
	if ((r = gxb_new_step(b, GX_K_MAP, &s)) < 0)
		return r;
	gxb_step_in(s, b->g, cid);
	if (!(s->map[0] = gxb_map_alloc(numel))) {
		gxb_drop_last_step(b->g);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < numel; i++)
		s->map[0][i] = (int32_t)i;
	struct gx_tensor *o = &b->g->t[b->n->out[0]];
	s->dt = dt;
	s->esz = esz;
	s->out = b->n->out[0];
	s->out_w = numel;
	if ((r = gxb_set_shape(b, o, dt, k, sh, bp)) < 0 || (r = gxb_new_store(b->g, numel * esz, &o->store)) < 0) {
		gxb_drop_last_step(b->g);
		return r;
	}
	return 0;
}

int gxb_range(struct bctx *b)
{
	int r = gxb_need_in(b, 3, 3);
	if (r < 0)
		return r;
	const struct gx_tensor *t[3] = { gxb_in_t(b, 0), gxb_in_t(b, 1), gxb_in_t(b, 2) };
	for (int i = 0; i < 3; i++) {
		if (!gxb_is_const(t[i]) || t[i]->numel != 1 || t[i]->has_sym) {
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
	return gxb_def_const(b, b->n->out[0], dt, 1, dims, d);
}
