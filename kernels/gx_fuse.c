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
	int32_t *writer;     /* per store: the ref step writing it, -1 for inputs */
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
	return t && t->bpos < 0 && t->data && t->dt == QV_DT_F32 && t->numel == 1 && fabsf(*(const float *)t->data - v) <= tol;
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

/* ---- patterns ---- */

/* What a pattern matched: its ref steps, its result, how often it reads x. */
struct match {
	uint32_t k[16];
	uint32_t n;
	int32_t out;
	uint32_t x_reads;
	int op;                    /* GELU: GX_GELU / GX_GELU_TANH */
	float eps;                 /* LN */
	uint64_t feat;             /* LN: features normalised together */
	const float *scale, *bias; /* LN: constants (n floats, or 1) or NULL */
	bool scale1, bias1;        /* ... given as one scalar */
};

static void take(struct match *m, int32_t k)
{
	if (m->n < 16)
		m->k[m->n++] = (uint32_t)k;
}

/* The sole reader of cur: a float binary op `op` whose other operand is x
 * (x >= 0, no broadcast) or a constant scalar near v. */
static int32_t link_bin(const struct fctx *f, int32_t cur, int op, int32_t x, float v, float tol)
{
	int32_t k = sole_reader(f, cur);
	if (k < 0)
		return -1;
	const struct gx_step *c = &f->g->ref[k];
	if (!is_bin(c, op))
		return -1;
	uint32_t ci = c->in[0] == cur ? 0 : 1;
	int32_t other = c->in[1 - ci];
	if (c->in[ci] != cur || c->map[ci])
		return -1;
	if (x >= 0)
		return other == x && !c->map[1 - ci] ? k : -1;
	return scalar_is(&f->g->t[other], v, tol) ? k : -1;
}

static int32_t link_un(const struct fctx *f, int32_t cur, int op)
{
	int32_t k = sole_reader(f, cur);
	if (k < 0 || f->g->ref[k].kind != GX_K_UNARY || f->g->ref[k].op != op || f->g->ref[k].in[0] != cur)
		return -1;
	return k;
}

/*
 * GELU starting at ref step i, on x:
 *  exact: Div(x, sqrt 2) | Mul(x, 1/sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5
 *  tanh:  Mul(x, x) -> Mul x -> Mul 0.044715 -> Add x -> Mul sqrt(2/pi) -> Tanh -> Add 1 -> Mul x -> Mul 0.5
 * (what torch.onnx.export emits for nn.GELU and nn.GELU(approximate='tanh')).
 */
static bool match_gelu(const struct fctx *f, uint32_t i, struct match *m)
{
	const struct gx_model *g = f->g;
	const struct gx_step *s0 = &g->ref[i];
	memset(m, 0, sizeof(*m));
	if (s0->kind != GX_K_BIN || s0->n_in != 2 || s0->in_dt != QV_DT_F32)
		return false;
	int32_t x = s0->in[0];
	if (g->t[x].bpos < 0 || s0->map[0])
		return false;
	int32_t k;
	take(m, (int32_t)i);
	if (s0->in[1] == x && s0->op == GX_MUL && !s0->map[1]) {
		m->op = GX_GELU_TANH;
		m->x_reads = 5;
		int32_t k1 = link_bin(f, s0->out, GX_MUL, x, 0, 0);
		int32_t k2 = k1 < 0 ? -1 : link_bin(f, g->ref[k1].out, GX_MUL, -1, 0.044715f, 1e-6f);
		int32_t k3 = k2 < 0 ? -1 : link_bin(f, g->ref[k2].out, GX_ADD, x, 0, 0);
		int32_t k4 = k3 < 0 ? -1 : link_bin(f, g->ref[k3].out, GX_MUL, -1, 0.7978845608f, 1e-6f);
		int32_t k5 = k4 < 0 ? -1 : link_un(f, g->ref[k4].out, GX_TANH);
		k = k5 < 0 ? -1 : link_bin(f, g->ref[k5].out, GX_ADD, -1, 1.0f, 0.0f);
		if (k < 0)
			return false;
		take(m, k1), take(m, k2), take(m, k3), take(m, k4), take(m, k5);
	} else {
		const struct gx_tensor *c = &g->t[s0->in[1]];
		if (!((s0->op == GX_DIV && scalar_is(c, 1.41421356f, 1e-4f)) ||
		      (s0->op == GX_MUL && scalar_is(c, 0.70710678f, 1e-5f))))
			return false;
		m->op = GX_GELU;
		m->x_reads = 2;
		int32_t k1 = link_un(f, s0->out, GX_ERF);
		k = k1 < 0 ? -1 : link_bin(f, g->ref[k1].out, GX_ADD, -1, 1.0f, 0.0f);
		if (k < 0)
			return false;
		take(m, k1);
	}
	take(m, k);
	int32_t k6 = link_bin(f, g->ref[k].out, GX_MUL, x, 0, 0);
	int32_t k7 = k6 < 0 ? -1 : link_bin(f, g->ref[k6].out, GX_MUL, -1, 0.5f, 0.0f);
	if (k7 < 0)
		return false;
	take(m, k6), take(m, k7);
	m->out = g->ref[k7].out;
	return true;
}

/* A mean over exactly the last axis of x: each output element gathers n consecutive ones. */
static bool mean_last(const struct gx_model *g, const struct gx_step *s, int32_t x, uint64_t n)
{
	const struct gx_tensor *xt = &g->t[x];
	if (s->kind != GX_K_REDUCE || s->op != GX_RMEAN || s->in[0] != x || s->out_w * n != xt->numel)
		return false;
	for (uint64_t e = 0; e < xt->numel; e++)
		if ((uint64_t)s->map[0][e] != e / n)
			return false;
	return true;
}

static const float *feature_const(const struct gx_model *g, const struct gx_step *c, int32_t cur, uint64_t n,
				  bool *ret_scalar)
{
	uint32_t ci;
	const struct gx_tensor *ct = const_operand(g, c, cur, &ci);
	if (!ct || ct->dt != QV_DT_F32 || (ct->numel != n && ct->numel != 1) || c->map[1 - ci])
		return NULL;
	*ret_scalar = ct->numel == 1;
	return ct->data;
}

/*
 * LayerNorm starting at ref step i, over the last axis of x: either the
 * LayerNormalization op's own step, or
 *   ReduceMean(x) -> Sub(x, m) -> Pow(d, 2) -> ReduceMean -> Add eps -> Sqrt -> Div(d, s)
 * then optionally Mul(scale) and Add(bias) per feature.
 */
static bool match_ln(const struct fctx *f, uint32_t i, struct match *m)
{
	const struct gx_model *g = f->g;
	const struct gx_step *s0 = &g->ref[i];
	memset(m, 0, sizeof(*m));
	int32_t x = s0->in[0];
	const struct gx_tensor *xt = &g->t[x];
	if (xt->bpos < 0 || xt->dt != QV_DT_F32)
		return false;
	if (s0->kind == GX_K_LN) {
		take(m, (int32_t)i);
		m->x_reads = 1;
		m->out = s0->out;
		m->eps = s0->alpha;
		m->feat = s0->n;
		m->scale = s0->scale;
		m->bias = s0->bias;
		return true;
	}
	if (xt->bpos == (int32_t)xt->rank - 1)
		return false;
	uint64_t n = (uint64_t)xt->dims[xt->rank - 1];
	if (!mean_last(g, s0, x, n))
		return false;
	int32_t k1 = sole_reader(f, s0->out);
	if (k1 < 0 || !is_bin(&g->ref[k1], GX_SUB) || g->ref[k1].in[0] != x || g->ref[k1].in[1] != s0->out ||
	    g->ref[k1].map[0])
		return false;
	int32_t d = g->ref[k1].out;
	int32_t ds = store_of(g, d);
	if (ds < 0 || f->readers[ds] != 2) /* Pow and Div */
		return false;
	int32_t k2 = -1, k6 = -1;
	for (uint32_t j = (uint32_t)k1 + 1; j < g->n_ref; j++) {
		const struct gx_step *c = &g->ref[j];
		if (c->n_in == 2 && c->in[0] == d && is_bin(c, GX_POW) &&
		    scalar_is(&g->t[c->in[1]], 2.0f, 0.0f))
			k2 = (int32_t)j;
		else if (c->n_in == 2 && c->in[0] == d && is_bin(c, GX_DIV) && !c->map[0])
			k6 = (int32_t)j;
	}
	if (k2 < 0 || k6 < 0)
		return false;
	int32_t k3 = sole_reader(f, g->ref[k2].out);
	if (k3 < 0 || !mean_last(g, &g->ref[k3], g->ref[k2].out, n))
		return false;
	uint32_t ci;
	const struct gx_tensor *eps;
	int32_t k4 = sole_reader(f, g->ref[k3].out);
	if (k4 < 0 || !is_bin(&g->ref[k4], GX_ADD) ||
	    !(eps = const_operand(g, &g->ref[k4], g->ref[k3].out, &ci)) || eps->numel != 1 || eps->dt != QV_DT_F32)
		return false;
	int32_t k5 = link_un(f, g->ref[k4].out, GX_SQRT);
	if (k5 < 0 || g->ref[k6].in[1] != g->ref[k5].out || sole_reader(f, g->ref[k5].out) != k6)
		return false;
	take(m, (int32_t)i), take(m, k1), take(m, k2), take(m, k3), take(m, k4), take(m, k5), take(m, k6);
	m->x_reads = 2;
	m->eps = *(const float *)eps->data;
	m->feat = n;
	m->out = g->ref[k6].out;
	int32_t k7 = sole_reader(f, m->out);
	if (k7 >= 0 && is_bin(&g->ref[k7], GX_MUL) && (m->scale = feature_const(g, &g->ref[k7], m->out, n, &m->scale1))) {
		take(m, k7);
		m->out = g->ref[k7].out;
		int32_t k8 = sole_reader(f, m->out);
		if (k8 >= 0 && is_bin(&g->ref[k8], GX_ADD) &&
		    (m->bias = feature_const(g, &g->ref[k8], m->out, n, &m->bias1))) {
			take(m, k8);
			m->out = g->ref[k8].out;
		}
	}
	return true;
}

static void mark_gone(struct fctx *f, const struct match *m)
{
	for (uint32_t j = 0; j < m->n; j++)
		f->gone[m->k[j]] = true;
}

/* scale and bias arrays of n floats for a matched LayerNorm */
static int ln_params(const struct match *m, float **ret_scale, float **ret_bias)
{
	float *sc = malloc(m->feat * sizeof(float)), *bi = malloc(m->feat * sizeof(float));
	if (!sc || !bi) {
		free(sc);
		free(bi);
		return -ENOMEM;
	}
	for (uint64_t j = 0; j < m->feat; j++) {
		sc[j] = m->scale ? m->scale[m->scale1 ? 0 : j] : 1.0f;
		bi[j] = m->bias ? m->bias[m->bias1 ? 0 : j] : 0.0f;
	}
	*ret_scale = sc;
	*ret_bias = bi;
	return 0;
}

/* A ref step (not yet absorbed) that reads x and starts a pattern reading
 * x as often as x is read at all: x is needed by nothing else. */
static bool tail_pattern(const struct fctx *f, int32_t x, uint32_t from, struct match *m,
			 bool (*fn)(const struct fctx *, uint32_t, struct match *))
{
	int32_t st = store_of(f->g, x);
	if (st < 0)
		return false;
	for (uint32_t j = from; j < f->g->n_ref; j++) {
		if (f->gone[j] || f->g->ref[j].n_in < 1 || f->g->ref[j].in[0] != x)
			continue;
		if (fn(f, j, m) && m->x_reads == f->readers[st])
			return true;
	}
	return false;
}

/* ---- fusions ---- */

/*
 * Dense: ref step i becomes a DENSE step. Absorbed while its output has no
 * other reader: an Add of a per-feature constant into the bias, one
 * activation as the kernels' post-op; then element-wise tails applied in
 * place on the step's output rows while they are hot in cache: a residual
 * Add of another tensor of the same shape, GELU, LayerNorm.
 */
static int fuse_dense(struct fctx *f, uint32_t i)
{
	struct gx_model *g = f->g;
	const struct gx_step *rs = &g->ref[i];
	struct gx_step d = *rs;
	memset(&d.ds, 0, sizeof(d.ds));
	memset(d.map, 0, sizeof(d.map));
	d.part = NULL;
	d.skip = NULL;
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
	bool act = false;
	for (;;) {
		int32_t k = sole_reader(f, d.out);
		const struct gx_step *c = k >= 0 ? &g->ref[k] : NULL;
		if (c && !act && !d.n_tail && c->kind == GX_K_UNARY &&
		    (c->op == GX_RELU || c->op == GX_LEAKY || c->op == GX_SIGMOID || c->op == GX_TANH ||
		     c->op == GX_CLIP)) {
			d.ds.act.kind = c->op == GX_RELU ? QV_ACT_RELU : c->op == GX_LEAKY ? QV_ACT_LEAKY_RELU
					: c->op == GX_SIGMOID ? QV_ACT_SIGMOID : c->op == GX_TANH ? QV_ACT_TANH
					: QV_ACT_CLIP;
			d.ds.act.alpha = c->alpha;
			d.ds.act.beta = c->beta;
			act = true;
			f->gone[k] = true;
			d.out = c->out;
			d.ds.n_folded++;
			label_add(&d, c->label);
			continue;
		}
		uint32_t ci;
		const struct gx_tensor *ct;
		if (c && !act && !d.n_tail && is_bin(c, GX_ADD) && (ct = const_operand(g, c, d.out, &ci)) &&
		    !c->map[1 - ci] && (ct->numel == 1 || (ct->numel == N && ct->dims[ct->rank - 1] == N))) {
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
		if (d.n_tail == GX_MAX_TAILS)
			break;
		/* residual: y += r, r computed (before this step), same shape */
		int32_t other = c && c->n_in == 2 ? (c->in[0] == d.out ? c->in[1] : c->in[0]) : -1;
		if (c && is_bin(c, GX_ADD) && !c->map[0] && !c->map[1] && d.n_in < GX_MAX_IN &&
		    g->t[c->in[0]].bpos >= 0 && g->t[c->in[1]].bpos >= 0 && c->in[0] != c->in[1] &&
		    f->writer[g->t[other].store] < (int32_t)i) {
			d.tail[d.n_tail++] = (struct gx_tail){ GX_TAIL_ADD, (uint8_t)d.n_in };
			d.in[d.n_in++] = other;
			f->gone[k] = true;
			d.out = c->out;
			label_add(&d, c->label);
			continue;
		}
		struct match m;
		if (tail_pattern(f, d.out, i + 1, &m, match_gelu)) {
			d.tail[d.n_tail++] = (struct gx_tail){ m.op == GX_GELU ? GX_TAIL_GELU : GX_TAIL_GELU_TANH, 0 };
			mark_gone(f, &m);
			d.out = m.out;
			label_add(&d, m.op == GX_GELU ? "gelu" : "gelu_tanh");
			continue;
		}
		if (!d.t_scale && tail_pattern(f, d.out, i + 1, &m, match_ln) && m.feat && d.out_w % m.feat == 0) {
			int r = ln_params(&m, &d.t_scale, &d.t_bias);
			if (r < 0) {
				free(d.ds.W);
				free(d.ds.b);
				return r;
			}
			d.t_n = m.feat;
			d.t_eps = m.eps;
			d.tail[d.n_tail++] = (struct gx_tail){ GX_TAIL_LN, 0 };
			mark_gone(f, &m);
			d.out = m.out;
			label_add(&d, "layernorm");
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

static int fuse_gelu(struct fctx *f, uint32_t i)
{
	struct gx_model *g = f->g;
	struct match m;
	if (!match_gelu(f, i, &m))
		return 0;
	struct gx_step gs = g->ref[i];
	memset(gs.map, 0, sizeof(gs.map));
	gs.kind = GX_K_UNARY;
	gs.op = m.op;
	gs.n_in = 1;
	gs.out = m.out;
	gs.what = m.op == GX_GELU ? "Gelu" : "GeluTanh";
	label_add(&gs, g->ref[m.k[m.n - 1]].label);
	mark_gone(f, &m);
	push(g, &gs, false, NULL);
	return 1;
}

static int fuse_layernorm(struct fctx *f, uint32_t i)
{
	struct gx_model *g = f->g;
	struct match m;
	if (g->ref[i].kind != GX_K_REDUCE || !match_ln(f, i, &m))
		return 0;
	struct gx_step ln = g->ref[i];
	memset(ln.map, 0, sizeof(ln.map));
	ln.part = NULL;
	ln.skip = NULL;
	ln.aoff = ln.boff = NULL;
	memset(&ln.ds, 0, sizeof(ln.ds));
	ln.kind = GX_K_LN;
	ln.what = "LayerNorm";
	ln.outer = g->t[ln.in[0]].numel / m.feat;
	ln.n = m.feat;
	ln.out_w = g->t[ln.in[0]].numel;
	ln.alpha = m.eps;
	ln.out = m.out;
	int r = ln_params(&m, &ln.scale, &ln.bias);
	if (r < 0)
		return r;
	snprintf(ln.label, sizeof(ln.label), "%.40s..%.40s", g->ref[i].label, g->ref[m.k[m.n - 1]].label);
	mark_gone(f, &m);
	push(g, &ln, true, NULL);
	return 1;
}

/*
 * An embedding lookup read only by a Concat (outer 1: each operand one
 * contiguous part of a row) writes its rows straight into the Concat's
 * output; the Concat then copies the other operands only.
 */
static int gather_into_concat(struct fctx *f)
{
	struct gx_model *g = f->g;
	for (uint32_t i = 0; i < g->n_steps; i++) {
		struct gx_step *c = &g->steps[i];
		if (c->kind != GX_K_CONCAT || c->outer != 1 || g->t[c->out].bpos < 0)
			continue;
		uint64_t off = 0;
		for (uint32_t j = 0; j < c->n_in; off += c->part[j], j++) {
			int32_t st = store_of(g, c->in[j]);
			if (st < 0 || f->readers[st] != 1)
				continue;
			struct gx_step *p = NULL;
			for (uint32_t k = 0; k < i; k++)
				if (g->steps[k].kind == GX_K_GATHER && store_of(g, g->steps[k].out) == st)
					p = &g->steps[k];
			if (!p || p->ostride)
				continue;
			if (!c->own) {
				/* the Concat gets arrays of its own (the reference step keeps its) */
				uint64_t *part = malloc(c->n_in * sizeof(*part));
				if (!part)
					return -ENOMEM;
				memcpy(part, c->part, c->n_in * sizeof(*part));
				c->part = part;
				memset(c->map, 0, sizeof(c->map));
				c->scale = c->bias = NULL;
				c->aoff = c->boff = NULL;
				memset(&c->ds, 0, sizeof(c->ds));
				c->own = true;
			}
			if (!c->skip && !(c->skip = calloc(c->n_in, sizeof(bool))))
				return -ENOMEM;
			c->skip[j] = true;
			p->out = c->out;
			p->ostride = c->out_w;
			p->ooff = off;
		}
	}
	return 0;
}

int gx_fuse(struct gx_model *g, char *err, size_t err_len)
{
	struct fctx f = { g, NULL, NULL, NULL, NULL };
	int r = -ENOMEM;
	uint32_t ns = g->n_store ? g->n_store : 1;
	f.readers = calloc(ns, sizeof(*f.readers));
	f.reader = malloc(ns * sizeof(*f.reader));
	f.gone = calloc(g->n_ref + 1, sizeof(*f.gone));
	f.writer = malloc(ns * sizeof(*f.writer));
	g->steps = calloc(g->n_ref + 1, sizeof(*g->steps));
	if (!f.readers || !f.reader || !f.gone || !g->steps || !f.writer)
		goto out;
	for (uint32_t i = 0; i < ns; i++)
		f.reader[i] = f.writer[i] = -1;
	for (uint32_t i = 0; i < g->n_ref; i++)
		f.writer[g->t[g->ref[i].out].store] = (int32_t)i;
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
	if ((r = gather_into_concat(&f)) < 0)
		goto out;
	r = 0;
out:
	if (r == -ENOMEM)
		gx_err(err, err_len, NULL, "model: out of memory");
	free(f.readers);
	free(f.reader);
	free(f.gone);
	free(f.writer);
	return r;
}
