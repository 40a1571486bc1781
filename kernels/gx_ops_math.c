/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gx_ops_math.c - graph op builders for arithmetic and everything with
 * numbers in it: binary ops with broadcasting, Where, element-wise ops,
 * Cast, Softmax / LogSoftmax, reductions, LayerNormalization,
 * BatchNormalization, MatMul (dense or batched) and Gemm.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx_build.h"

int gxb_binary(struct bctx *b, int op)
{
	int r = gxb_need_in(b, 2, 2);
	if (r < 0)
		return r;
	const struct gx_tensor *x = gxb_in_t(b, 0), *y = gxb_in_t(b, 1);
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
	if ((r = gxb_new_step(b, GX_K_BIN, &s)) < 0)
		return r;
	s->op = op;
	s->in_dt = dt;
	gxb_step_in(s, b->g, b->n->in[0]);
	gxb_step_in(s, b->g, b->n->in[1]);
	uint32_t R;
	int64_t d[QV_MAX_RANK];
	int32_t bp;
	if ((r = gxb_bcast(b, s, 2, s->in, &R, d, &bp)) < 0) {
		gxb_drop_last_step(b->g);
		return r;
	}
	return gxb_emit(b, s, b->n->out[0], cmp ? GX_BOOL : dt, R, d, bp);
}

int gxb_where(struct bctx *b)
{
	int r = gxb_need_in(b, 3, 3);
	if (r < 0)
		return r;
	const struct gx_tensor *c = gxb_in_t(b, 0), *x = gxb_in_t(b, 1), *y = gxb_in_t(b, 2);
	if (c->dt != GX_BOOL || x->dt != y->dt) {
		BERR(b, "wants a bool condition and two operands of one type");
		return -EINVAL;
	}
	struct gx_step *s;
	if ((r = gxb_new_step(b, GX_K_WHERE, &s)) < 0)
		return r;
	for (uint32_t i = 0; i < 3; i++)
		gxb_step_in(s, b->g, b->n->in[i]);
	uint32_t R;
	int64_t d[QV_MAX_RANK];
	int32_t bp;
	if ((r = gxb_bcast(b, s, 3, s->in, &R, d, &bp)) < 0) {
		gxb_drop_last_step(b->g);
		return r;
	}
	return gxb_emit(b, s, b->n->out[0], b->g->t[b->n->in[1]].dt, R, d, bp);
}

int gxb_unary(struct bctx *b, int op)
{
	const struct gx_tensor *x = gxb_in_t(b, 0);
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
	int r = gxb_new_step(b, GX_K_UNARY, &s);
	if (r < 0)
		return r;
	s->op = op;
	gxb_step_in(s, b->g, b->n->in[0]);
	if (op == GX_LEAKY)
		s->alpha = gxb_attr_f(b->n, "alpha", 0.01f);
	if (op == GX_CLIP) {
		s->alpha = -INFINITY;
		s->beta = INFINITY;
		if (b->g->opset < 11) {
			s->alpha = gxb_attr_f(b->n, "min", -INFINITY);
			s->beta = gxb_attr_f(b->n, "max", INFINITY);
		}
		for (uint32_t i = 1; i < 3; i++) {
			const struct gx_tensor *t = gxb_opt_t(b, i);
			if (!t)
				continue;
			if (!gxb_is_const(t) || t->dt != QV_DT_F32 || t->numel != 1) {
				gxb_drop_last_step(b->g);
				BERR(b, "bound %u must be a constant float scalar", i);
				return -ENOTSUP;
			}
			*(i == 1 ? &s->alpha : &s->beta) = *(const float *)t->data;
		}
	}
	x = gxb_in_t(b, 0);
	return gxb_emit(b, s, b->n->out[0], x->dt, x->rank, x->dims, x->bpos);
}

int gxb_cast(struct bctx *b)
{
	const struct gx_tensor *x = gxb_in_t(b, 0);
	int64_t to = gxb_attr_i(b->n, "to", 0);
	uint32_t dt = to == 1 ? QV_DT_F32 : to == 6 ? QV_DT_I32 : to == 7 ? QV_DT_I64 : to == 9 ? GX_BOOL : 0;
	if (!dt) {
		BERR(b, "cast to type %lld is not supported", (long long)to);
		return -ENOTSUP;
	}
	if (gxb_is_const(x) && dt == QV_DT_I32)
		dt = QV_DT_I64; /* constant integers are held as int64 */
	if (dt == x->dt)
		return gxb_def_view(b, b->n->out[0], x, x->rank, x->dims, x->bpos);
	struct gx_step *s;
	int r = gxb_new_step(b, GX_K_CAST, &s);
	if (r < 0)
		return r;
	s->in_dt = x->dt;
	gxb_step_in(s, b->g, b->n->in[0]);
	x = gxb_in_t(b, 0);
	int32_t oid = b->n->out[0];
	if ((r = gxb_emit(b, s, oid, dt, x->rank, x->dims, x->bpos)) < 0)
		return r;
	if (!gxb_is_const(&b->g->t[oid]))
		b->g->t[oid].origin = b->g->t[b->n->in[0]].origin;
	return 0;
}

int gxb_softmax(struct bctx *b, bool lg)
{
	const struct gx_tensor *x = gxb_in_t(b, 0);
	if (x->dt != QV_DT_F32) {
		BERR(b, "input is not float32");
		return -ENOTSUP;
	}
	uint32_t a;
	int r = gxb_norm_axis(b, gxb_attr_i(b->n, "axis", b->g->opset >= 13 ? -1 : 1), x->rank, &a);
	if (r < 0)
		return r;
	struct gx_step *s;
	if ((r = gxb_new_step(b, GX_K_SOFTMAX, &s)) < 0)
		return r;
	x = gxb_in_t(b, 0);
	if (b->g->opset < 13) {
		/* coerced to 2-D at axis: one softmax over everything from it */
		if (x->bpos >= (int32_t)a) {
			gxb_drop_last_step(b->g);
			BERR(b, "axis %u would take the softmax over the batch", a);
			return -EINVAL;
		}
		s->outer = gxb_prod(x->dims, 0, a);
		s->n = gxb_prod(x->dims, a, x->rank);
		s->inner = 1;
	} else {
		if ((int32_t)a == x->bpos) {
			gxb_drop_last_step(b->g);
			BERR(b, "axis %u would take the softmax over the batch", a);
			return -EINVAL;
		}
		s->outer = gxb_prod(x->dims, 0, a);
		s->n = (uint64_t)x->dims[a];
		s->inner = gxb_prod(x->dims, a + 1, x->rank);
	}
	s->op = lg;
	gxb_step_in(s, b->g, b->n->in[0]);
	return gxb_emit(b, s, b->n->out[0], QV_DT_F32, x->rank, x->dims, x->bpos);
}

int gxb_reduce(struct bctx *b, int op)
{
	const struct gx_tensor *x = gxb_in_t(b, 0);
	if (x->dt != QV_DT_F32) {
		BERR(b, "input is not float32");
		return -ENOTSUP;
	}
	int64_t ax[QV_MAX_RANK];
	uint32_t k;
	bool given;
	int r = gxb_attr_or_input_ints(b, "axes", 1, ax, QV_MAX_RANK, &k, &given);
	if (r < 0)
		return r;
	bool keep = gxb_attr_i(b->n, "keepdims", 1) != 0;
	bool sel[QV_MAX_RANK] = { false };
	if (!k) {
		if (gxb_attr_i(b->n, "noop_with_empty_axes", 0))
			return gxb_def_view(b, b->n->out[0], x, x->rank, x->dims, x->bpos);
		for (uint32_t i = 0; i < x->rank; i++)
			sel[i] = true;
	}
	for (uint32_t i = 0; i < k; i++) {
		uint32_t a;
		if ((r = gxb_norm_axis(b, ax[i], x->rank, &a)) < 0)
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
	if ((r = gxb_new_step(b, GX_K_REDUCE, &s)) < 0)
		return r;
	x = gxb_in_t(b, 0);
	s->op = op;
	s->rnorm = 1.0f / (float)cnt;
	s->n = x->numel;
	gxb_step_in(s, b->g, b->n->in[0]);
	int64_t ks[QV_MAX_RANK], c[QV_MAX_RANK] = { 0 };
	gxb_strides_of(dk, x->rank, ks);
	if (!(s->map[0] = gxb_map_alloc(x->numel))) {
		gxb_drop_last_step(b->g);
		return -ENOMEM;
	}
	for (uint64_t e = 0; e < x->numel; e++) {
		int64_t off = 0;
		for (uint32_t i = 0; i < x->rank; i++)
			if (!sel[i])
				off += c[i] * ks[i];
		s->map[0][e] = (int32_t)off;
		gxb_next_coord(c, x->dims, x->rank);
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
		s->outer = gxb_prod(x->dims, 0, (uint32_t)a0);
		s->rn = gxb_prod(x->dims, (uint32_t)a0, (uint32_t)a1);
		s->inner = gxb_prod(x->dims, (uint32_t)a1, x->rank);
	}
	return gxb_emit(b, s, b->n->out[0], QV_DT_F32, R, d, bp);
}

int gxb_layernorm(struct bctx *b)
{
	int r = gxb_need_in(b, 2, 3);
	if (r < 0)
		return r;
	/* Mean / InvStdDev outputs: refused by gx_build if anything reads them */
	const struct gx_tensor *x = gxb_in_t(b, 0), *sc = gxb_in_t(b, 1), *bi = gxb_opt_t(b, 2);
	uint32_t a;
	if ((r = gxb_norm_axis(b, gxb_attr_i(b->n, "axis", -1), x->rank, &a)) < 0)
		return r;
	if (x->dt != QV_DT_F32) {
		BERR(b, "input is not float32");
		return -ENOTSUP;
	}
	if (x->bpos >= (int32_t)a) {
		BERR(b, "normalizes over the batch axis");
		return -EINVAL;
	}
	uint64_t n = gxb_prod(x->dims, a, x->rank);
	const struct gx_tensor *pp[2] = { sc, bi };
	for (int i = 0; i < 2; i++) {
		if (!pp[i])
			continue;
		if (!gxb_is_const(pp[i]) || pp[i]->dt != QV_DT_F32 || (pp[i]->numel != n && pp[i]->numel != 1)) {
			BERR(b, "%s must be a constant of %llu floats", i ? "bias" : "scale", (unsigned long long)n);
			return -ENOTSUP;
		}
	}
	struct gx_step *s;
	if ((r = gxb_new_step(b, GX_K_LN, &s)) < 0)
		return r;
	x = gxb_in_t(b, 0);
	s->outer = gxb_prod(x->dims, 0, a);
	s->n = n;
	s->alpha = gxb_attr_f(b->n, "epsilon", 1e-5f);
	s->scale = malloc(n * sizeof(float));
	s->bias = calloc(n, sizeof(float));
	if (!s->scale || !s->bias) {
		gxb_drop_last_step(b->g);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < n; i++) {
		sc = gxb_in_t(b, 1);
		bi = gxb_opt_t(b, 2);
		s->scale[i] = ((const float *)sc->data)[sc->numel == 1 ? 0 : i];
		if (bi)
			s->bias[i] = ((const float *)bi->data)[bi->numel == 1 ? 0 : i];
	}
	gxb_step_in(s, b->g, b->n->in[0]);
	return gxb_emit(b, s, b->n->out[0], QV_DT_F32, x->rank, x->dims, x->bpos);
}

int gxb_batchnorm(struct bctx *b)
{
	int r = gxb_need_in(b, 5, 5);
	if (r < 0)
		return r;
	const struct gx_tensor *x = gxb_in_t(b, 0);
	if (x->rank < 2 || x->bpos == 1 || x->dt != QV_DT_F32) {
		BERR(b, "needs a float input of rank >= 2 with channels on axis 1, not the batch");
		return -EINVAL;
	}
	uint64_t C = (uint64_t)x->dims[1];
	for (uint32_t i = 1; i < 5; i++) {
		const struct gx_tensor *t = gxb_in_t(b, i);
		if (!gxb_is_const(t) || t->dt != QV_DT_F32 || t->numel != C) {
			BERR(b, "parameter %u must be a constant of %llu floats", i, (unsigned long long)C);
			return -EINVAL;
		}
	}
	float eps = gxb_attr_f(b->n, "epsilon", 1e-5f);
	struct gx_step *s;
	if ((r = gxb_new_step(b, GX_K_AFFINE, &s)) < 0)
		return r;
	x = gxb_in_t(b, 0);
	s->scale = malloc(x->numel * sizeof(float));
	s->bias = malloc(x->numel * sizeof(float));
	if (!s->scale || !s->bias) {
		gxb_drop_last_step(b->g);
		return -ENOMEM;
	}
	const float *sc = gxb_in_t(b, 1)->data, *bb = gxb_in_t(b, 2)->data, *mean = gxb_in_t(b, 3)->data,
		    *var = gxb_in_t(b, 4)->data;
	uint64_t inner = gxb_prod(x->dims, 2, x->rank);
	for (uint64_t e = 0; e < x->numel; e++) {
		uint64_t ch = (e / inner) % C;
		float a = sc[ch] / sqrtf(var[ch] + eps);
		s->scale[e] = a;
		s->bias[e] = bb[ch] - mean[ch] * a;
	}
	gxb_step_in(s, b->g, b->n->in[0]);
	return gxb_emit(b, s, b->n->out[0], QV_DT_F32, x->rank, x->dims, x->bpos);
}

/* MatMul / Gemm with a constant 2-D right operand and a computed left one
 * whose batch is not on the K axis: rows of K, one dense layer. */
static int dense_step(struct bctx *b, const struct gx_tensor *x, const float *W, uint32_t K, uint32_t N,
		      const float *bias, const int64_t *d, uint32_t R)
{
	struct gx_step *s;
	int32_t xid = (int32_t)(x - b->g->t);
	int r = gxb_new_step(b, GX_K_DENSE_REF, &s);
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
		gxb_drop_last_step(b->g);
		return -ENOMEM;
	}
	memcpy(s->ds.W, W, (size_t)K * N * sizeof(float));
	if (bias)
		memcpy(s->ds.b, bias, N * sizeof(float));
	snprintf(s->ds.label, sizeof(s->ds.label), "%s", s->label);
	gxb_step_in(s, b->g, xid);
	return gxb_emit(b, s, b->n->out[0], QV_DT_F32, R, d, x->bpos);
}

int gxb_matmul(struct bctx *b)
{
	int r = gxb_need_in(b, 2, 2);
	if (r < 0)
		return r;
	const struct gx_tensor *A = gxb_in_t(b, 0), *B = gxb_in_t(b, 1);
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
		gxb_shape_str(A, s1, sizeof(s1));
		gxb_shape_str(B, s2, sizeof(s2));
		BERR(b, "shapes %s and %s do not multiply (K %lld vs %lld)", s1, s2, (long long)K,
		     (long long)bd[br - 2]);
		return -EINVAL;
	}
	/* dense: constant 2-D right operand, batch of A not on K */
	if (!gxb_is_const(A) && gxb_is_const(B) && br == 2 && !b_vec && abp != (int32_t)ar - 1 && !a_vec) {
		int64_t d[QV_MAX_RANK];
		memcpy(d, A->dims, sizeof(d));
		d[A->rank - 1] = N;
		return dense_step(b, A, B->data, (uint32_t)K, (uint32_t)N, NULL, d, A->rank);
	}
	if ((!gxb_is_const(A) && abp >= (int32_t)ar - 2 && !(abp == (int32_t)ar - 2 && gxb_is_const(B))) ||
	    (!gxb_is_const(B) && bbp >= (int32_t)br - 2)) {
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
	if ((r = gxb_new_step(b, GX_K_BMM, &s)) < 0)
		return r;
	uint64_t nl = gxb_prod(ld, 0, L);
	s->L = (uint32_t)nl;
	s->M = (uint32_t)M;
	s->K = (uint32_t)K;
	s->N = (uint32_t)N;
	s->aoff = malloc(nl * sizeof(uint64_t));
	s->boff = malloc(nl * sizeof(uint64_t));
	if (!s->aoff || !s->boff) {
		gxb_drop_last_step(b->g);
		return -ENOMEM;
	}
	int64_t as[QV_MAX_RANK + 1], bs[QV_MAX_RANK + 1], c[QV_MAX_RANK] = { 0 };
	gxb_strides_of(ad, ar, as);
	gxb_strides_of(bd, br, bs);
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
		gxb_next_coord(c, ld, L);
	}
	gxb_step_in(s, b->g, aid);
	gxb_step_in(s, b->g, bid);
	(void)a_rows;
	return gxb_emit(b, s, b->n->out[0], QV_DT_F32, R, d, bp);
}

int gxb_gemm(struct bctx *b)
{
	int r = gxb_need_in(b, 2, 3);
	if (r < 0)
		return r;
	const struct gx_tensor *A = gxb_in_t(b, 0), *B = gxb_in_t(b, 1), *C = gxb_opt_t(b, 2);
	int64_t ta = gxb_attr_i(b->n, "transA", 0), tb = gxb_attr_i(b->n, "transB", 0);
	float alpha = gxb_attr_f(b->n, "alpha", 1.0f), beta = gxb_attr_f(b->n, "beta", 1.0f);
	if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1)) {
		BERR(b, "transA=%lld transB=%lld (0 or 1)", (long long)ta, (long long)tb);
		return -EINVAL;
	}
	if (A->rank != 2 || B->rank != 2) {
		BERR(b, "operands must be 2-D");
		return -EINVAL;
	}
	if (gxb_is_const(A) || !gxb_is_const(B) || A->dt != QV_DT_F32 || B->dt != QV_DT_F32 || (C && !gxb_is_const(C))) {
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
		gxb_shape_str(A, s1, sizeof(s1));
		gxb_shape_str(B, s2, sizeof(s2));
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
