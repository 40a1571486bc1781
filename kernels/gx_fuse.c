/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gx_fuse.c - the fused plan, made from the unfused steps of gx_build.c
 * (which stay as they are: they are the reference walk).
 *
 *  - A dense step (MatMul / Gemm with a constant weight) runs on the hand
 *    or oneDNN kernels, chosen per bucket by timing at load exactly as the
 *    MLP plan does (plan.c's qv_dense_step_kernels). While its output has
 *    one reader, that reader is absorbed: an Add of a per-feature constant
 *    into the bias (before any activation), then one activation (Relu,
 *    LeakyRelu, Sigmoid, Tanh, Clip) as the kernels' post-op.
 *  - GELU written out as x * 0.5 * (1 + erf(x / sqrt 2)) (what
 *    torch.onnx.export emits for nn.GELU) becomes one elementwise step.
 *  - LayerNorm written out as ReduceMean, Sub, Pow 2, ReduceMean, Add eps,
 *    Sqrt, Div (then Mul scale, Add bias) becomes one LN step, as does
 *    LayerNormalization itself.
 * A pattern is only taken when every intermediate tensor has exactly one
 * reader and is not a graph output, so nothing else needs it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx.h"

struct fctx {
	struct gx_model *g;
	uint32_t *readers;   /* per store: step operands and graph outputs reading it */
	int32_t *reader;     /* per store: the (last) ref step reading it */
	bool *gone;          /* ref steps absorbed */
};

static int32_t store_of(const struct gx_model *g, int32_t t)
{
	return g->t[t].bpos < 0 ? -1 : g->t[t].store;
}

/* The one ref step reading tensor t's storage, and reading t itself. */
static int32_t sole_reader(const struct fctx *f, int32_t t)
{
	int32_t s = store_of(f->g, t);
	if (s < 0 || f->readers[s] != 1)
		return -1;
	int32_t k = f->reader[s];
	if (k < 0 || f->gone[k])
		return -1;
	const struct gx_step *c = &f->g->ref[k];
	for (uint32_t j = 0; j < c->n_in; j++)
		if (c->in[j] == t)
			return k;
	return -1;
}

static const struct gx_tensor *const_operand(const struct gx_model *g, const struct gx_step *c, int32_t x,
					     uint32_t *ret_idx)
{
	if (c->n_in != 2)
		return NULL;
	uint32_t ci = c->in[0] == x ? 1 : 0;
	if (c->in[1 - ci] != x || g->t[c->in[ci]].bpos >= 0)
		return NULL;
	*ret_idx = ci;
	return &g->t[c->in[ci]];
}

static bool scalar_is(const struct gx_tensor *t, float v, float tol)
{
	return t && t->dt == QV_DT_F32 && t->numel == 1 && fabsf(*(const float *)t->data - v) <= tol;
}

static bool is_bin(const struct gx_step *s, int op)
{
	return s->kind == GX_K_BIN && s->op == op && s->in_dt == QV_DT_F32;
}

static int push(struct gx_model *g, const struct gx_step *s, bool own, struct gx_step **ret)
{
	struct gx_step *d = &g->steps[g->n_steps++];
	*d = *s;
	d->own = own;
	if (ret)
		*ret = d;
	return 0;
}

static void label_add(struct gx_step *s, const char *what)
{
	size_t k = strlen(s->label), room = sizeof(s->label) - k;
	if (room > 2) {
		s->label[k] = '+';
		size_t n = strnlen(what, room - 2);
		memcpy(s->label + k + 1, what, n);
		s->label[k + 1 + n] = '\0';
	}
}

/* Dense: ref step i becomes a DENSE step with the tail absorbed. */
static int fuse_dense(struct fctx *f, uint32_t i)
{
	struct gx_model *g = f->g;
	const struct gx_step *rs = &g->ref[i];
	struct gx_step d = *rs;
	memset(&d.ds, 0, sizeof(d.ds));
	memset(d.map, 0, sizeof(d.map));
	d.part = NULL;
	d.scale = d.bias = NULL;
	d.aoff = d.boff = NULL;
	d.kind = GX_K_DENSE;
	d.ds.kind = QV_STEP_DENSE;
	d.ds.K = rs->K;
	d.ds.N = rs->N;
	size_t wn = (size_t)rs->K * rs->N;
	d.ds.W = malloc(wn * sizeof(float));
	d.ds.b = calloc(rs->N, sizeof(float));
	if (!d.ds.W || !d.ds.b) {
		free(d.ds.W);
		free(d.ds.b);
		return -ENOMEM;
	}
	memcpy(d.ds.W, rs->ds.W, wn * sizeof(float));
	bool had_bias = rs->ds.b != NULL;
	if (had_bias)
		memcpy(d.ds.b, rs->ds.b, rs->N * sizeof(float));
	uint32_t N = rs->N;
	for (;;) {
		int32_t k = sole_reader(f, d.out);
		if (k < 0)
			break;
		const struct gx_step *c = &g->ref[k];
		if (c->kind == GX_K_UNARY && (c->op == GX_RELU || c->op == GX_LEAKY || c->op == GX_SIGMOID ||
					      c->op == GX_TANH || c->op == GX_CLIP)) {
			d.ds.act.kind = c->op == GX_RELU ? QV_ACT_RELU : c->op == GX_LEAKY ? QV_ACT_LEAKY_RELU
					: c->op == GX_SIGMOID ? QV_ACT_SIGMOID : c->op == GX_TANH ? QV_ACT_TANH
					: QV_ACT_CLIP;
			d.ds.act.alpha = c->alpha;
			d.ds.act.beta = c->beta;
			f->gone[k] = true;
			d.out = c->out;
			d.ds.n_folded++;
			label_add(&d, c->label);
			break;
		}
		uint32_t ci;
		const struct gx_tensor *ct;
		if (is_bin(c, GX_ADD) && (ct = const_operand(g, c, d.out, &ci)) && !c->map[1 - ci] &&
		    (ct->numel == 1 || (ct->numel == N && ct->dims[ct->rank - 1] == N))) {
			const float *cv = ct->data;
			for (uint32_t j = 0; j < N; j++)
				d.ds.b[j] += cv[ct->numel == 1 ? 0 : j];
			had_bias = true;
			f->gone[k] = true;
			d.out = c->out;
			d.ds.n_folded++;
			label_add(&d, c->label);
			continue;
		}
		break;
	}
	if (!had_bias) {
		free(d.ds.b);
		d.ds.b = NULL;
	}
	snprintf(d.ds.label, sizeof(d.ds.label), "%s", d.label);
	return push(g, &d, true, NULL);
}

/* x -> Div(x, sqrt2) | Mul(x, 1/sqrt2) -> Erf -> Add 1 -> Mul x -> Mul 0.5 (or Mul 0.5 first) */
static int fuse_gelu(struct fctx *f, uint32_t i)
{
	struct gx_model *g = f->g;
	const struct gx_step *s0 = &g->ref[i];
	if (s0->kind != GX_K_BIN || s0->n_in != 2)
		return 0;
	uint32_t ci;
	int32_t x = s0->in[0];
	const struct gx_tensor *c = const_operand(g, s0, x, &ci);
	if (!c || ci != 1 || g->t[x].bpos < 0 || g->t[x].dt != QV_DT_F32 || s0->map[0])
		return 0;
	if (!((is_bin(s0, GX_DIV) && scalar_is(c, 1.41421356f, 1e-4f)) ||
	      (is_bin(s0, GX_MUL) && scalar_is(c, 0.70710678f, 1e-5f))))
		return 0;
	int32_t k1 = sole_reader(f, s0->out);
	if (k1 < 0 || g->ref[k1].kind != GX_K_UNARY || g->ref[k1].op != GX_ERF)
		return 0;
	int32_t k2 = sole_reader(f, g->ref[k1].out);
	if (k2 < 0 || !is_bin(&g->ref[k2], GX_ADD) ||
	    !scalar_is(const_operand(g, &g->ref[k2], g->ref[k1].out, &ci), 1.0f, 0.0f))
		return 0;
	int32_t k3 = sole_reader(f, g->ref[k2].out);
	if (k3 < 0 || !is_bin(&g->ref[k3], GX_MUL))
		return 0;
	const struct gx_step *m3 = &g->ref[k3];
	if (!((m3->in[0] == x && m3->in[1] == g->ref[k2].out) || (m3->in[1] == x && m3->in[0] == g->ref[k2].out)) ||
	    m3->map[0] || m3->map[1])
		return 0;
	int32_t k4 = sole_reader(f, m3->out);
	if (k4 < 0 || !is_bin(&g->ref[k4], GX_MUL) ||
	    !scalar_is(const_operand(g, &g->ref[k4], m3->out, &ci), 0.5f, 0.0f))
		return 0;
	/* x itself is read by s0 and m3: allowed (x is the input, not an intermediate) */
	struct gx_step gs = *s0;
	memset(gs.map, 0, sizeof(gs.map));
	gs.kind = GX_K_UNARY;
	gs.op = GX_GELU;
	gs.n_in = 1;
	gs.in[0] = x;
	gs.out = g->ref[k4].out;
	gs.what = "Gelu";
	label_add(&gs, g->ref[k4].label);
	f->gone[i] = f->gone[k1] = f->gone[k2] = f->gone[k3] = f->gone[k4] = true;
	push(g, &gs, false, NULL);
	return 1;
}

/* ReduceMean(x) -> Sub(x, m) -> Pow(d, 2) -> ReduceMean -> Add eps -> Sqrt -> Div(d, s)
 * [-> Mul scale -> Add bias], all over the last axis. */
static int fuse_layernorm(struct fctx *f, uint32_t i)
{
	struct gx_model *g = f->g;
	const struct gx_step *m = &g->ref[i];
	if (m->kind != GX_K_REDUCE || m->op != GX_RMEAN)
		return 0;
	int32_t x = m->in[0];
	const struct gx_tensor *xt = &g->t[x];
	if (xt->bpos < 0 || xt->bpos == (int32_t)xt->rank - 1)
		return 0;
	uint64_t n = (uint64_t)xt->dims[xt->rank - 1];
	/* a mean over exactly the last axis: each output element gathers n consecutive ones */
	if (m->out_w * n != xt->numel)
		return 0;
	for (uint64_t e = 0; e < xt->numel; e++)
		if ((uint64_t)m->map[0][e] != e / n)
			return 0;
	int32_t k1 = sole_reader(f, m->out);
	if (k1 < 0 || !is_bin(&g->ref[k1], GX_SUB) || g->ref[k1].in[0] != x || g->ref[k1].in[1] != m->out)
		return 0;
	int32_t dt = g->ref[k1].out;
	/* d is read twice (Pow, Div) */
	int32_t ds = store_of(g, dt);
	if (ds < 0 || f->readers[ds] != 2)
		return 0;
	int32_t k2 = -1, k6 = -1;
	for (uint32_t j = (uint32_t)k1 + 1; j < g->n_ref; j++) {
		const struct gx_step *c = &g->ref[j];
		for (uint32_t a = 0; a < c->n_in; a++) {
			if (c->in[a] != dt)
				continue;
			if (is_bin(c, GX_POW) && a == 0)
				k2 = (int32_t)j;
			else if (is_bin(c, GX_DIV) && a == 0)
				k6 = (int32_t)j;
		}
	}
	uint32_t ci;
	if (k2 < 0 || k6 < 0 || !scalar_is(const_operand(g, &g->ref[k2], dt, &ci), 2.0f, 0.0f))
		return 0;
	int32_t k3 = sole_reader(f, g->ref[k2].out);
	if (k3 < 0 || g->ref[k3].kind != GX_K_REDUCE || g->ref[k3].op != GX_RMEAN ||
	    g->ref[k3].out_w != m->out_w)
		return 0;
	for (uint64_t e = 0; e < xt->numel; e++)
		if ((uint64_t)g->ref[k3].map[0][e] != e / n)
			return 0;
	int32_t k4 = sole_reader(f, g->ref[k3].out);
	const struct gx_tensor *eps;
	if (k4 < 0 || !is_bin(&g->ref[k4], GX_ADD) ||
	    !(eps = const_operand(g, &g->ref[k4], g->ref[k3].out, &ci)) || eps->numel != 1 ||
	    eps->dt != QV_DT_F32)
		return 0;
	int32_t k5 = sole_reader(f, g->ref[k4].out);
	if (k5 < 0 || g->ref[k5].kind != GX_K_UNARY || g->ref[k5].op != GX_SQRT)
		return 0;
	if (g->ref[k6].in[1] != g->ref[k5].out || sole_reader(f, g->ref[k5].out) != k6)
		return 0;
	struct gx_step ln = *m;
	memset(ln.map, 0, sizeof(ln.map));
	ln.kind = GX_K_LN;
	ln.what = "LayerNorm";
	ln.outer = xt->numel / n;
	ln.n = n;
	ln.out_w = xt->numel;
	ln.alpha = *(const float *)eps->data;
	ln.scale = malloc(n * sizeof(float));
	ln.bias = calloc(n, sizeof(float));
	ln.part = NULL;
	ln.aoff = ln.boff = NULL;
	memset(&ln.ds, 0, sizeof(ln.ds));
	if (!ln.scale || !ln.bias) {
		free(ln.scale);
		free(ln.bias);
		return -ENOMEM;
	}
	for (uint64_t j = 0; j < n; j++)
		ln.scale[j] = 1.0f;
	ln.out = g->ref[k6].out;
	bool *gone = f->gone;
	gone[i] = gone[k1] = gone[k2] = gone[k3] = gone[k4] = gone[k5] = gone[k6] = true;
	/* then Mul(scale), Add(bias) per feature */
	int32_t k7 = sole_reader(f, ln.out);
	const struct gx_tensor *ct;
	if (k7 >= 0 && is_bin(&g->ref[k7], GX_MUL) && (ct = const_operand(g, &g->ref[k7], ln.out, &ci)) &&
	    (ct->numel == n || ct->numel == 1) && !g->ref[k7].map[1 - ci]) {
		for (uint64_t j = 0; j < n; j++)
			ln.scale[j] = ((const float *)ct->data)[ct->numel == 1 ? 0 : j];
		gone[k7] = true;
		ln.out = g->ref[k7].out;
		int32_t k8 = sole_reader(f, ln.out);
		if (k8 >= 0 && is_bin(&g->ref[k8], GX_ADD) && (ct = const_operand(g, &g->ref[k8], ln.out, &ci)) &&
		    (ct->numel == n || ct->numel == 1) && !g->ref[k8].map[1 - ci]) {
			for (uint64_t j = 0; j < n; j++)
				ln.bias[j] = ((const float *)ct->data)[ct->numel == 1 ? 0 : j];
			gone[k8] = true;
			ln.out = g->ref[k8].out;
		}
	}
	snprintf(ln.label, sizeof(ln.label), "%.40s..%.40s", m->label, g->ref[k6].label);
	push(g, &ln, true, NULL);
	return 1;
}

int gx_fuse(struct gx_model *g, char *err, size_t err_len)
{
	struct fctx f = { g, NULL, NULL, NULL };
	int r = -ENOMEM;
	uint32_t ns = g->n_store ? g->n_store : 1;
	f.readers = calloc(ns, sizeof(*f.readers));
	f.reader = malloc(ns * sizeof(*f.reader));
	f.gone = calloc(g->n_ref + 1, sizeof(*f.gone));
	g->steps = calloc(g->n_ref + 1, sizeof(*g->steps));
	if (!f.readers || !f.reader || !f.gone || !g->steps)
		goto out;
	for (uint32_t i = 0; i < ns; i++)
		f.reader[i] = -1;
	for (uint32_t i = 0; i < g->n_ref; i++) {
		const struct gx_step *s = &g->ref[i];
		for (uint32_t j = 0; j < s->n_in; j++) {
			int32_t st = store_of(g, s->in[j]);
			if (st >= 0) {
				f.readers[st]++;
				f.reader[st] = (int32_t)i;
			}
		}
	}
	for (uint32_t j = 0; j < g->n_out; j++) {
		int32_t st = store_of(g, g->out[j]);
		if (st >= 0)
			f.readers[st] += 2; /* never absorbed */
	}
	for (uint32_t j = 0; j < g->n_in; j++)
		f.readers[g->in_store[j]] += 2; /* the caller's buffer */
	for (uint32_t i = 0; i < g->n_ref; i++) {
		if (f.gone[i])
			continue;
		const struct gx_step *s = &g->ref[i];
		if (s->kind == GX_K_DENSE_REF) {
			if ((r = fuse_dense(&f, i)) < 0)
				goto out;
			continue;
		}
		if ((r = fuse_layernorm(&f, i)) < 0)
			goto out;
		if (r)
			continue;
		if ((r = fuse_gelu(&f, i)) < 0)
			goto out;
		if (r)
			continue;
		push(g, s, false, NULL);
	}
	r = 0;
out:
	if (r == -ENOMEM)
		gx_err(err, err_len, NULL, "model: out of memory");
	free(f.readers);
	free(f.reader);
	free(f.gone);
	return r;
}
