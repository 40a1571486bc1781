/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ens_named.c - ensembles wired by named, typed tensors (qv_model.h,
 * "Named tensors"). The positional, concatenating form stays in ensemble.c;
 * this form is a model kind of its own (struct qv_model_ops), because its
 * tensors are typed and many, which is what the ops table serves.
 *
 * Create resolves every bind to a source (an ensemble input, or a step's
 * output tensor), checks dtypes and row shapes, orders the steps, and
 * decides where every tensor lives:
 *  - an ensemble input is read where the caller put it;
 *  - a step output that is an ensemble output (the first one naming it) is
 *    written into the caller's output buffer, and later steps read it there;
 *  - every other step output gets its own scratch, read in place by its
 *    consumers.
 * No fan-in concatenation exists in this form (each input tensor is bound
 * on its own), so between steps nothing is ever copied. The copies left are
 * at the edges and counted (qv_ensemble_copy_bytes): the packed-row
 * de/interleave of qv_run at rows > 1 (a tensor's rows are not contiguous
 * in packed rows; every step kernel takes contiguous tensors), and an
 * output given out twice.
 *
 * Scratch is one arena per context, zeroed by the creating thread (first
 * touch puts it on the worker's node, as in ensemble.c).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensemble.h"
#include "plan.h"

#define SRC_INPUT UINT32_MAX  /* source step: the ensemble input `t` */

struct ensn_src {
	uint32_t step;   /* execution index, or SRC_INPUT */
	uint32_t t;      /* output tensor of that step, or ensemble input index */
};

struct ensn_step {
	char name[QV_ENS_NAME_LEN];
	const qv_model *model;
	uint32_t n_in, n_out;
	struct ensn_src in[QV_MAX_TENSORS];   /* per model input, in the model's order */
	int32_t direct[QV_MAX_TENSORS];       /* per output: ensemble output written in place, -1 none */
	enum qv_gate_op gate_op;
	uint32_t gate;                        /* execution index of the gate step */
	float threshold, else_value;
};

struct ensn {
	char name[QV_ENS_NAME_LEN];
	uint32_t n;
	struct ensn_step steps[QV_ENS_MAX_STEPS];
	struct ensn_src out[QV_MAX_TENSORS];  /* per ensemble output */
	bool out_direct[QV_MAX_TENSORS];      /* written in place by its step */
};

struct ensn_ctx {
	qv_exec_ctx *sub[QV_ENS_MAX_STEPS];
	void *own[QV_ENS_MAX_STEPS][QV_MAX_TENSORS];   /* scratch of non-direct outputs */
	void *val[QV_ENS_MAX_STEPS][QV_MAX_TENSORS];   /* where each output was written this run */
	const void *last_in[QV_ENS_MAX_STEPS];         /* first input / output of each step, last run */
	void *istage[QV_MAX_TENSORS], *ostage[QV_MAX_TENSORS];  /* qv_run at rows > 1 */
	char *arena;
	uint64_t copy_bytes;
};

static uint64_t round64(uint64_t n)
{
	return (n + 63) & ~63ull;
}

/* ---- create ---- */

struct ensn_build {
	const struct qv_ensemble_desc *d;
	const char *en;
	char *err;
	size_t err_len;
	/* in desc order */
	struct ensn_src src[QV_ENS_MAX_STEPS][QV_MAX_TENSORS];  /* .step: desc index here */
	uint32_t gate[QV_ENS_MAX_STEPS];
	uint32_t order[QV_ENS_MAX_STEPS], pos[QV_ENS_MAX_STEPS];
	/* ensemble inputs: name and the step / input that typed it first */
	uint32_t n_ein;
	char ein_name[QV_MAX_TENSORS][QV_TENSOR_NAME_LEN];
	uint32_t ein_step[QV_MAX_TENSORS], ein_t[QV_MAX_TENSORS];
	uint32_t n_eout;
	char eout_name[QV_MAX_TENSORS][QV_TENSOR_NAME_LEN];
	struct ensn_src eout[QV_MAX_TENSORS];  /* .step: desc index */
};

static int find_step(const struct qv_ensemble_desc *d, const char *name, size_t len, uint32_t *ret)
{
	for (uint32_t i = 0; i < d->n_steps; i++)
		if (strlen(d->steps[i].name) == len && strncmp(d->steps[i].name, name, len) == 0) {
			*ret = i;
			return 0;
		}
	return -ENOENT;
}

static int find_tensor(const qv_model *m, int is_output, const char *name, uint32_t *ret)
{
	const struct qv_tensor_info *t = is_output ? m->tout : m->tin;
	uint32_t n = is_output ? m->info.n_outputs : m->info.n_inputs;
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(t[i].name, name) == 0) {
			*ret = i;
			return 0;
		}
	return -ENOENT;
}

static bool same_row(const struct qv_tensor_info *a, const struct qv_tensor_info *b)
{
	if (a->dtype != b->dtype || a->rank != b->rank || a->row_elems != b->row_elems)
		return false;
	for (uint32_t k = 1; k < a->rank; k++)
		if (a->shape[k] != b->shape[k])
			return false;
	return true;
}

/* "float32 [4, 8]" */
static const char *row_str(const struct qv_tensor_info *t, char *buf, size_t len)
{
	size_t k = 0;
	qv_put(buf, len, &k, "%s [", qv_dtype_name(t->dtype));
	for (uint32_t i = 1; i < t->rank; i++)
		qv_put(buf, len, &k, "%s%lld", i > 1 ? ", " : "", (long long)t->shape[i]);
	qv_put(buf, len, &k, "]");
	return buf;
}

/*
 * Resolves "STEP.TENSOR" or "STEP" (desc indices). Step names may hold
 * dots: a whole-name step match is tried first, then every step whose name
 * is a prefix followed by '.'.
 */
static int resolve_step_ref(struct ensn_build *b, const char *who, const char *src,
			    struct ensn_src *ret)
{
	const struct qv_ensemble_desc *d = b->d;
	uint32_t s;
	if (find_step(d, src, strlen(src), &s) == 0) {
		const qv_model *m = d->steps[s].model;
		if (m->info.n_outputs != 1) {
			qvg_err(b->err, b->err_len, "%s: %s: source '%.64s' has %u outputs; name one as '%s.TENSOR'",
				b->en, who, src, m->info.n_outputs, d->steps[s].name);
			return -EINVAL;
		}
		ret->step = s;
		ret->t = 0;
		return 0;
	}
	bool step_seen = false;
	for (uint32_t i = 0; i < d->n_steps; i++) {
		size_t n = strlen(d->steps[i].name);
		if (strncmp(src, d->steps[i].name, n) != 0 || src[n] != '.')
			continue;
		step_seen = true;
		uint32_t t;
		if (find_tensor(d->steps[i].model, 1, src + n + 1, &t) == 0) {
			ret->step = i;
			ret->t = t;
			return 0;
		}
	}
	if (step_seen)
		qvg_err(b->err, b->err_len, "%s: %s: source '%.64s': the step has no such output tensor",
			b->en, who, src);
	else
		qvg_err(b->err, b->err_len, "%s: %s: source '%.64s' is not a step of the ensemble", b->en,
			who, src);
	return -EINVAL;
}

static int check_steps(struct ensn_build *b)
{
	const struct qv_ensemble_desc *d = b->d;
	for (uint32_t i = 0; i < d->n_steps; i++) {
		const struct qv_ensemble_step *s = &d->steps[i];
		if (!s->name || !s->name[0]) {
			qvg_err(b->err, b->err_len, "%s: step #%u has no name", b->en, i);
			return -EINVAL;
		}
		if (strlen(s->name) >= QV_ENS_NAME_LEN || s->name[0] == '$') {
			qvg_err(b->err, b->err_len, "%s: step '%.64s': name too long or starting with '$'", b->en,
				s->name);
			return -EINVAL;
		}
		for (uint32_t j = 0; j < i; j++)
			if (strcmp(d->steps[j].name, s->name) == 0) {
				qvg_err(b->err, b->err_len, "%s: step '%s': duplicate step name", b->en, s->name);
				return -EINVAL;
			}
		if (!s->model) {
			qvg_err(b->err, b->err_len, "%s: step '%s': no model", b->en, s->name);
			return -EINVAL;
		}
		if (s->n_inputs) {
			qvg_err(b->err, b->err_len,
				"%s: step '%s': positional inputs in an ensemble wired by name; bind each input tensor by name",
				b->en, s->name);
			return -EINVAL;
		}
	}
	if (d->output) {
		qvg_err(b->err, b->err_len, "%s: a single positional output in an ensemble wired by name; name the outputs",
			b->en);
		return -EINVAL;
	}
	return 0;
}

static int add_ens_input(struct ensn_build *b, uint32_t i, uint32_t t, const char *name,
			 struct ensn_src *ret)
{
	const struct qv_ensemble_desc *d = b->d;
	const struct qv_tensor_info *ti = &d->steps[i].model->tin[t];
	char x[64], y[64];
	if (!name[0] || strlen(name) >= QV_TENSOR_NAME_LEN) {
		qvg_err(b->err, b->err_len, "%s: step '%s': input '%s': ensemble input name '$%.64s' empty or too long",
			b->en, d->steps[i].name, ti->name, name);
		return -EINVAL;
	}
	for (uint32_t e = 0; e < b->n_ein; e++) {
		if (strcmp(b->ein_name[e], name) != 0)
			continue;
		const qv_model *fm = d->steps[b->ein_step[e]].model;
		const struct qv_tensor_info *fi = &fm->tin[b->ein_t[e]];
		if (!same_row(fi, ti)) {
			qvg_err(b->err, b->err_len,
				"%s: ensemble input '$%s': step '%s' reads it as '%s' %s but step '%s' as '%s' %s",
				b->en, name, d->steps[b->ein_step[e]].name, fi->name, row_str(fi, x, sizeof(x)),
				d->steps[i].name, ti->name, row_str(ti, y, sizeof(y)));
			return -EINVAL;
		}
		ret->step = SRC_INPUT;
		ret->t = e;
		return 0;
	}
	if (b->n_ein == QV_MAX_TENSORS) {
		qvg_err(b->err, b->err_len, "%s: step '%s': more than %u ensemble inputs", b->en,
			d->steps[i].name, QV_MAX_TENSORS);
		return -EINVAL;
	}
	snprintf(b->ein_name[b->n_ein], QV_TENSOR_NAME_LEN, "%s", name);
	b->ein_step[b->n_ein] = i;
	b->ein_t[b->n_ein] = t;
	ret->step = SRC_INPUT;
	ret->t = b->n_ein++;
	return 0;
}

static int resolve_binds(struct ensn_build *b)
{
	const struct qv_ensemble_desc *d = b->d;
	char who[160], x[64], y[64];
	for (uint32_t i = 0; i < d->n_steps; i++) {
		const struct qv_ensemble_step *s = &d->steps[i];
		const qv_model *m = s->model;
		bool bound[QV_MAX_TENSORS] = { false };
		if (s->n_binds > QV_MAX_TENSORS || (s->n_binds && !s->binds)) {
			qvg_err(b->err, b->err_len, "%s: step '%s': %u binds, at most %u", b->en, s->name,
				s->n_binds, QV_MAX_TENSORS);
			return -EINVAL;
		}
		for (uint32_t k = 0; k < s->n_binds; k++) {
			const struct qv_ensemble_bind *bd = &s->binds[k];
			uint32_t t;
			if (!bd->input || !bd->source || !bd->source[0]) {
				qvg_err(b->err, b->err_len, "%s: step '%s': bind #%u names no input or no source",
					b->en, s->name, k);
				return -EINVAL;
			}
			if (find_tensor(m, 0, bd->input, &t) < 0) {
				qvg_err(b->err, b->err_len, "%s: step '%s': its model has no input tensor '%.64s'",
					b->en, s->name, bd->input);
				return -EINVAL;
			}
			if (bound[t]) {
				qvg_err(b->err, b->err_len, "%s: step '%s': input '%s' is bound twice", b->en,
					s->name, bd->input);
				return -EINVAL;
			}
			bound[t] = true;
			struct ensn_src *src = &b->src[i][t];
			int r;
			if (bd->source[0] == '$') {
				r = add_ens_input(b, i, t, bd->source + 1, src);
			} else {
				snprintf(who, sizeof(who), "step '%s' input '%s'", s->name, bd->input);
				r = resolve_step_ref(b, who, bd->source, src);
				if (r == 0) {
					const struct qv_tensor_info *pt = &d->steps[src->step].model->tout[src->t];
					if (src->step == i) {
						qvg_err(b->err, b->err_len, "%s: step '%s': input '%s' reads the step's own output",
							b->en, s->name, bd->input);
						return -EINVAL;
					}
					if (!same_row(pt, &m->tin[t])) {
						qvg_err(b->err, b->err_len,
							"%s: step '%s': input '%s' is %s but '%s' gives %s", b->en, s->name,
							bd->input, row_str(&m->tin[t], x, sizeof(x)), bd->source,
							row_str(pt, y, sizeof(y)));
						return -EINVAL;
					}
				}
			}
			if (r < 0)
				return r;
		}
		for (uint32_t t = 0; t < m->info.n_inputs; t++)
			if (!bound[t]) {
				qvg_err(b->err, b->err_len, "%s: step '%s': input '%s' is bound to nothing",
					b->en, s->name, m->tin[t].name);
				return -EINVAL;
			}
		b->gate[i] = UINT32_MAX;
		const struct qv_ensemble_gate *g = &s->gate;
		if (g->op == QV_GATE_NONE)
			continue;
		if (g->op != QV_GATE_GE && g->op != QV_GATE_LT) {
			qvg_err(b->err, b->err_len, "%s: step '%s': unknown gate op %d", b->en, s->name, (int)g->op);
			return -EINVAL;
		}
		if (!g->step || find_step(d, g->step, strlen(g->step), &b->gate[i]) < 0) {
			qvg_err(b->err, b->err_len, "%s: step '%s': gate '%.64s' is not a step of the ensemble",
				b->en, s->name, g->step ? g->step : "");
			return -EINVAL;
		}
		const qv_model *gm = d->steps[b->gate[i]].model;
		if (gm->info.n_outputs != 1 || gm->tout[0].dtype != QV_DT_F32 || gm->tout[0].row_elems != 1) {
			qvg_err(b->err, b->err_len, "%s: step '%s': gate '%s' must give one float32 a row",
				b->en, s->name, g->step);
			return -EINVAL;
		}
		for (uint32_t t = 0; t < m->info.n_outputs; t++)
			if (m->tout[t].dtype != QV_DT_F32) {
				qvg_err(b->err, b->err_len, "%s: step '%s': gated, but its output '%s' is %s (else fills float32 only)",
					b->en, s->name, m->tout[t].name, qv_dtype_name(m->tout[t].dtype));
				return -EINVAL;
			}
	}
	return 0;
}

static int resolve_outputs(struct ensn_build *b)
{
	const struct qv_ensemble_desc *d = b->d;
	char who[96];
	if (d->n_outputs > QV_MAX_TENSORS || (d->n_outputs && !d->outputs)) {
		qvg_err(b->err, b->err_len, "%s: %u outputs, at most %u", b->en, d->n_outputs, QV_MAX_TENSORS);
		return -EINVAL;
	}
	if (!d->n_outputs) {
		uint32_t last = d->n_steps - 1;
		const qv_model *m = d->steps[last].model;
		for (uint32_t t = 0; t < m->info.n_outputs; t++) {
			snprintf(b->eout_name[t], QV_TENSOR_NAME_LEN, "%s", m->tout[t].name);
			b->eout[t].step = last;
			b->eout[t].t = t;
		}
		b->n_eout = m->info.n_outputs;
		return 0;
	}
	for (uint32_t j = 0; j < d->n_outputs; j++) {
		const struct qv_ensemble_output *o = &d->outputs[j];
		if (!o->name || !o->name[0] || strlen(o->name) >= QV_TENSOR_NAME_LEN || !o->source) {
			qvg_err(b->err, b->err_len, "%s: output #%u: needs a name of 1..%u characters and a source",
				b->en, j, QV_TENSOR_NAME_LEN - 1);
			return -EINVAL;
		}
		for (uint32_t k = 0; k < j; k++)
			if (strcmp(b->eout_name[k], o->name) == 0) {
				qvg_err(b->err, b->err_len, "%s: output '%s' named twice", b->en, o->name);
				return -EINVAL;
			}
		snprintf(who, sizeof(who), "output '%s'", o->name);
		int r = resolve_step_ref(b, who, o->source, &b->eout[j]);
		if (r < 0)
			return r;
		snprintf(b->eout_name[j], QV_TENSOR_NAME_LEN, "%s", o->name);
	}
	b->n_eout = d->n_outputs;
	return 0;
}

static bool step_ready(const void *vb, uint32_t i, const bool *done)
{
	const struct ensn_build *b = vb;
	bool ready = b->gate[i] == UINT32_MAX || done[b->gate[i]];
	for (uint32_t t = 0; t < b->d->steps[i].model->info.n_inputs && ready; t++)
		ready = b->src[i][t].step == SRC_INPUT || done[b->src[i][t].step];
	return ready;
}

/* The run order (qv_ens_step_order), then every step must be read by someone. */
static int topo_sort(struct ensn_build *b)
{
	const struct qv_ensemble_desc *d = b->d;
	int r = qv_ens_step_order(d, b->en, step_ready, b, b->order, b->pos, b->err, b->err_len);
	if (r < 0)
		return r;
	/* a step nobody reads is wiring gone wrong, not something to run for nothing */
	for (uint32_t i = 0; i < d->n_steps; i++) {
		bool used = false;
		for (uint32_t j = 0; j < b->n_eout && !used; j++)
			used = b->eout[j].step == i;
		for (uint32_t j = 0; j < d->n_steps && !used; j++) {
			used = b->gate[j] == i;
			for (uint32_t t = 0; t < d->steps[j].model->info.n_inputs && !used; t++)
				used = b->src[j][t].step == i;
		}
		if (!used) {
			qvg_err(b->err, b->err_len,
				"%s: step '%s': its outputs are read by no step and are no output of the ensemble",
				b->en, d->steps[i].name);
			return -EINVAL;
		}
	}
	return 0;
}

static void ensn_free(void *impl)
{
	free(impl);
}

static const struct qv_model_ops ensn_ops;

bool qv_ensn_is(const qv_model *m)
{
	return m && m->ops == &ensn_ops;
}

bool qv_ens_desc_named(const struct qv_ensemble_desc *d)
{
	if (d->n_outputs)
		return true;
	for (uint32_t i = 0; i < d->n_steps; i++)
		if (d->steps[i].n_binds)
			return true;
	return false;
}

int qv_ensn_create(const struct qv_ensemble_desc *d, const char *en, qv_model **ret_model,
		   char *err, size_t err_len)
{
	struct ensn_build *b = calloc(1, sizeof(*b));
	struct ensn *e = calloc(1, sizeof(*e));
	int r = -ENOMEM;
	if (!b || !e)
		goto fail;
	b->d = d;
	b->en = en;
	b->err = err;
	b->err_len = err_len;
	r = check_steps(b);
	if (r == 0)
		r = resolve_binds(b);
	if (r == 0)
		r = resolve_outputs(b);
	if (r == 0)
		r = topo_sort(b);
	if (r < 0)
		goto fail;

	snprintf(e->name, sizeof(e->name), "%s", en);
	e->n = d->n_steps;
	uint32_t mb = UINT32_MAX;
	for (uint32_t x = 0; x < e->n; x++) {
		uint32_t i = b->order[x];
		const struct qv_ensemble_step *ds = &d->steps[i];
		struct ensn_step *s = &e->steps[x];
		snprintf(s->name, sizeof(s->name), "%s", ds->name);
		s->model = ds->model;
		s->n_in = ds->model->info.n_inputs;
		s->n_out = ds->model->info.n_outputs;
		for (uint32_t t = 0; t < s->n_in; t++) {
			s->in[t] = b->src[i][t];
			if (s->in[t].step != SRC_INPUT)
				s->in[t].step = b->pos[s->in[t].step];
		}
		for (uint32_t t = 0; t < s->n_out; t++)
			s->direct[t] = -1;
		s->gate_op = ds->gate.op;
		if (s->gate_op != QV_GATE_NONE) {
			s->gate = b->pos[b->gate[i]];
			s->threshold = ds->gate.threshold;
			s->else_value = ds->gate.else_value;
		}
		if (ds->model->info.max_batch < mb)
			mb = ds->model->info.max_batch;
	}
	for (uint32_t j = 0; j < b->n_eout; j++) {
		struct ensn_src o = { b->pos[b->eout[j].step], b->eout[j].t };
		e->out[j] = o;
		/* the first output naming a step tensor is written in place; a second name copies */
		if (e->steps[o.step].direct[o.t] < 0) {
			e->steps[o.step].direct[o.t] = (int32_t)j;
			e->out_direct[j] = true;
		}
	}

	struct qv_model *m;
	r = qv_model_new_kind(&ensn_ops, e, mb, &m);
	e = NULL;  /* owned by m, or freed by qv_model_new_kind */
	if (r < 0)
		goto fail;
	m->info.n_inputs = b->n_ein;
	m->info.n_outputs = b->n_eout;
	m->info.n_steps = d->n_steps;
	for (uint32_t k = 0; k < b->n_ein; k++) {
		const struct qv_tensor_info *src = &d->steps[b->ein_step[k]].model->tin[b->ein_t[k]];
		struct qv_tensor_info *ti = &m->tin[k];
		*ti = *src;
		snprintf(ti->name, sizeof(ti->name), "%s", b->ein_name[k]);
		/* the tightest index bound of the step inputs it feeds */
		for (uint32_t i = 0; i < d->n_steps; i++)
			for (uint32_t t = 0; t < d->steps[i].model->info.n_inputs; t++) {
				int64_t ib = d->steps[i].model->tin[t].index_bound;
				if (b->src[i][t].step == SRC_INPUT && b->src[i][t].t == k && ib &&
				    (!ti->index_bound || ib < ti->index_bound))
					ti->index_bound = ib;
			}
	}
	for (uint32_t j = 0; j < b->n_eout; j++) {
		m->tout[j] = d->steps[b->eout[j].step].model->tout[b->eout[j].t];
		snprintf(m->tout[j].name, sizeof(m->tout[j].name), "%s", b->eout_name[j]);
		m->tout[j].index_bound = 0;
	}
	r = qv_model_pack_io(m);
	if (r < 0) {
		qvg_err(err, err_len, "%s: packed rows too large", en);
		qv_model_free(m);
		goto fail;
	}
	m->kernels = QV_KERNEL_AUTO;
	free(b);
	*ret_model = m;
	return 0;
fail:
	free(b);
	free(e);
	return r;
}

/* ---- describe ---- */

static int ensn_describe(const struct qv_model *m, char *buf, size_t len)
{
	const struct ensn *e = m->impl;
	size_t k = 0;
	buf[0] = '\0';
	qv_put(buf, len, &k, "ensemble '%s' (named tensors): %u inputs, %u outputs, max_batch %u, %u steps\n",
	       e->name, m->info.n_inputs, m->info.n_outputs, m->info.max_batch, e->n);
	for (uint32_t i = 0; i < e->n; i++) {
		const struct ensn_step *s = &e->steps[i];
		qv_put(buf, len, &k, "%2u %-16s", i, s->name);
		for (uint32_t t = 0; t < s->n_in; t++) {
			const struct ensn_src *src = &s->in[t];
			if (src->step == SRC_INPUT)
				qv_put(buf, len, &k, " %s<-$%s", s->model->tin[t].name, m->tin[src->t].name);
			else
				qv_put(buf, len, &k, " %s<-%s.%s", s->model->tin[t].name, e->steps[src->step].name,
				       e->steps[src->step].model->tout[src->t].name);
		}
		if (s->gate_op != QV_GATE_NONE)
			qv_put(buf, len, &k, ", gate %s %s %g else %g", e->steps[s->gate].name,
			       s->gate_op == QV_GATE_GE ? ">=" : "<", (double)s->threshold, (double)s->else_value);
		for (uint32_t t = 0; t < s->n_out; t++)
			if (s->direct[t] >= 0)
				qv_put(buf, len, &k, ", writes output '%s'", m->tout[s->direct[t]].name);
		qv_put(buf, len, &k, "\n");
	}
	return k < len ? 0 : -ENOBUFS;
}

/* ---- exec contexts ---- */

static void ensn_ctx_free(const struct qv_model *m, void *impl)
{
	const struct ensn *e = m->impl;
	struct ensn_ctx *c = impl;
	if (!c)
		return;
	for (uint32_t i = 0; i < e->n; i++)
		qv_exec_ctx_free(c->sub[i]);
	free(c->arena);
	free(c);
}

static int ensn_ctx_create(const struct qv_model *m, void **ret_impl)
{
	const struct ensn *e = m->impl;
	const uint64_t mb = m->info.max_batch;
	struct ensn_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	uint64_t total = 0;
	for (uint32_t i = 0; i < e->n; i++)
		for (uint32_t t = 0; t < e->steps[i].n_out; t++)
			if (e->steps[i].direct[t] < 0)
				total += round64(mb * e->steps[i].model->tout[t].row_bytes);
	/* staging for qv_run at rows > 1, where a side has more than one tensor */
	if (m->info.n_inputs > 1)
		for (uint32_t k = 0; k < m->info.n_inputs; k++)
			total += round64(mb * m->tin[k].row_bytes);
	if (m->info.n_outputs > 1)
		for (uint32_t j = 0; j < m->info.n_outputs; j++)
			total += round64(mb * m->tout[j].row_bytes);
	c->arena = aligned_alloc(64, total ? total : 64);
	if (!c->arena) {
		free(c);
		return -ENOMEM;
	}
	/* first touch from the creating (worker) thread puts the pages on its node */
	memset(c->arena, 0, total ? total : 64);
	uint64_t off = 0;
	for (uint32_t i = 0; i < e->n; i++)
		for (uint32_t t = 0; t < e->steps[i].n_out; t++)
			if (e->steps[i].direct[t] < 0) {
				c->own[i][t] = c->arena + off;
				off += round64(mb * e->steps[i].model->tout[t].row_bytes);
			}
	if (m->info.n_inputs > 1)
		for (uint32_t k = 0; k < m->info.n_inputs; k++) {
			c->istage[k] = c->arena + off;
			off += round64(mb * m->tin[k].row_bytes);
		}
	if (m->info.n_outputs > 1)
		for (uint32_t j = 0; j < m->info.n_outputs; j++) {
			c->ostage[j] = c->arena + off;
			off += round64(mb * m->tout[j].row_bytes);
		}
	for (uint32_t i = 0; i < e->n; i++) {
		int r = qv_exec_ctx_create(e->steps[i].model, &c->sub[i]);
		if (r < 0) {
			ensn_ctx_free(m, c);
			return r;
		}
	}
	*ret_impl = c;
	return 0;
}

uint64_t qv_ensn_copy_bytes(const qv_exec_ctx *ctx)
{
	const struct ensn_ctx *c = ctx->impl;
	return c->copy_bytes;
}

int qv_ensn_step_io(const qv_exec_ctx *ctx, const char *name, const float **ret_in,
		    const float **ret_out)
{
	const struct ensn *e = ctx->m->impl;
	const struct ensn_ctx *c = ctx->impl;
	for (uint32_t i = 0; i < e->n; i++)
		if (strcmp(e->steps[i].name, name) == 0) {
			if (ret_in)
				*ret_in = c->last_in[i];
			if (ret_out)
				*ret_out = c->val[i][0];
			return 0;
		}
	return -ENOENT;
}

/* ---- run (hot path: no allocation, lock, syscall or log) ---- */

static int run_gated(const struct ensn_step *s, qv_exec_ctx *sub, const float *g, const void **x,
		     uint32_t rows, void **y)
{
	const void *xr[QV_MAX_TENSORS];
	void *yr[QV_MAX_TENSORS];
	const struct qv_tensor_info *ti = s->model->tin, *to = s->model->tout;
	uint32_t r = 0;
	while (r < rows) {
		bool pass = s->gate_op == QV_GATE_GE ? g[r] >= s->threshold : g[r] < s->threshold;
		uint32_t r1 = r + 1;
		/* both comparisons are false for NaN: a NaN gate never runs the step */
		while (r1 < rows && (s->gate_op == QV_GATE_GE ? g[r1] >= s->threshold
							      : g[r1] < s->threshold) == pass)
			r1++;
		for (uint32_t t = 0; t < s->n_out; t++)
			yr[t] = (char *)y[t] + (size_t)r * to[t].row_bytes;
		if (pass) {
			for (uint32_t t = 0; t < s->n_in; t++)
				xr[t] = (const char *)x[t] + (size_t)r * ti[t].row_bytes;
			int rc = qv_run_tensors(sub, r1 - r, xr, yr);
			if (__builtin_expect(rc < 0, 0))
				return rc;
		} else {
			for (uint32_t t = 0; t < s->n_out; t++)
				for (size_t i = 0; i < (size_t)(r1 - r) * to[t].row_elems; i++)
					((float *)yr[t])[i] = s->else_value;
		}
		r = r1;
	}
	return 0;
}

static int run_core(const struct qv_model *m, struct ensn_ctx *c, uint32_t rows,
		    const void *const *in, void *const *out)
{
	const struct ensn *e = m->impl;
	for (uint32_t i = 0; i < e->n; i++) {
		const struct ensn_step *s = &e->steps[i];
		const void *x[QV_MAX_TENSORS];
		for (uint32_t t = 0; t < s->n_in; t++)
			x[t] = s->in[t].step == SRC_INPUT ? in[s->in[t].t] : c->val[s->in[t].step][s->in[t].t];
		for (uint32_t t = 0; t < s->n_out; t++)
			c->val[i][t] = s->direct[t] >= 0 ? out[s->direct[t]] : c->own[i][t];
		c->last_in[i] = x[0];
		int r = s->gate_op == QV_GATE_NONE
			? qv_run_tensors(c->sub[i], rows, x, c->val[i])
			: run_gated(s, c->sub[i], c->val[s->gate][0], x, rows, c->val[i]);
		if (__builtin_expect(r < 0, 0))
			return r;
	}
	for (uint32_t j = 0; j < m->info.n_outputs; j++)
		if (!e->out_direct[j]) {
			size_t n = (size_t)rows * m->tout[j].row_bytes;
			memcpy(out[j], c->val[e->out[j].step][e->out[j].t], n);
			c->copy_bytes += n;
		}
	return 0;
}

static int ensn_run_tensors(const struct qv_model *m, void *impl, uint32_t rows,
			    const void *const *in, void *const *out)
{
	return run_core(m, impl, rows, in, out);
}

/* Rows of tensor ti between packed rows (row bytes prow) and a contiguous tensor buffer. */
static void unpack(const struct qv_tensor_info *ti, const char *packed, size_t prow, uint32_t rows,
		   char *t)
{
	for (uint32_t r = 0; r < rows; r++)
		memcpy(t + (size_t)r * ti->row_bytes, packed + r * prow + ti->packed_off, ti->row_bytes);
}

static void pack(const struct qv_tensor_info *ti, const char *t, uint32_t rows, char *packed, size_t prow)
{
	for (uint32_t r = 0; r < rows; r++)
		memcpy(packed + r * prow + ti->packed_off, t + (size_t)r * ti->row_bytes, ti->row_bytes);
}

/*
 * Packed rows. At one row (or with one tensor on a side) every tensor's
 * rows are contiguous inside the packed buffer: point at them. Otherwise
 * de-interleave the inputs into staging, run, interleave the outputs; the
 * one copy of this form, counted.
 */
static int ensn_run(const struct qv_model *m, void *impl, const void *in, uint32_t rows, void *out)
{
	struct ensn_ctx *c = impl;
	const void *x[QV_MAX_TENSORS];
	void *y[QV_MAX_TENSORS];
	const size_t irow = (size_t)m->info.in_dim * 4, orow = (size_t)m->info.out_dim * 4;
	const bool ipk = rows > 1 && m->info.n_inputs > 1, opk = rows > 1 && m->info.n_outputs > 1;
	for (uint32_t k = 0; k < m->info.n_inputs; k++) {
		if (ipk) {
			unpack(&m->tin[k], in, irow, rows, c->istage[k]);
			c->copy_bytes += (uint64_t)rows * m->tin[k].row_bytes;
			x[k] = c->istage[k];
		} else {
			x[k] = (const char *)in + m->tin[k].packed_off;
		}
	}
	for (uint32_t j = 0; j < m->info.n_outputs; j++)
		y[j] = opk ? c->ostage[j] : (char *)out + m->tout[j].packed_off;
	int r = run_core(m, c, rows, x, y);
	if (r < 0 || !opk)
		return r;
	for (uint32_t j = 0; j < m->info.n_outputs; j++) {
		pack(&m->tout[j], c->ostage[j], rows, out, orow);
		c->copy_bytes += (uint64_t)rows * m->tout[j].row_bytes;
	}
	return 0;
}

/* ---- reference: each step's reference, every tensor in its own buffer ---- */

static int ensn_run_reference(const struct qv_model *m, const void *in, uint32_t rows, void *out)
{
	const struct ensn *e = m->impl;
	void *val[QV_ENS_MAX_STEPS][QV_MAX_TENSORS] = { { NULL } };
	void *ein[QV_MAX_TENSORS] = { NULL };
	char *pin = NULL, *pout = NULL;
	int r = 0;
	for (uint32_t k = 0; k < m->info.n_inputs && r == 0; k++) {
		ein[k] = malloc((size_t)rows * m->tin[k].row_bytes);
		if (!ein[k])
			r = -ENOMEM;
		else
			unpack(&m->tin[k], in, (size_t)m->info.in_dim * 4, rows, ein[k]);
	}
	for (uint32_t i = 0; i < e->n && r == 0; i++) {
		const struct ensn_step *s = &e->steps[i];
		const struct qv_model_info *si = &s->model->info;
		const size_t irow = (size_t)si->in_dim * 4, orow = (size_t)si->out_dim * 4;
		pin = malloc(rows * irow);
		pout = malloc(rows * orow);
		if (!pin || !pout) {
			r = -ENOMEM;
			break;
		}
		for (uint32_t t = 0; t < s->n_in; t++) {
			const struct ensn_src *src = &s->in[t];
			const void *v = src->step == SRC_INPUT ? ein[src->t] : val[src->step][src->t];
			pack(&s->model->tin[t], v, rows, pin, irow);
		}
		r = qv_run_reference(s->model, (const float *)pin, rows, (float *)pout);
		for (uint32_t t = 0; t < s->n_out && r == 0; t++) {
			const struct qv_tensor_info *to = &s->model->tout[t];
			val[i][t] = malloc((size_t)rows * to->row_bytes);
			if (!val[i][t]) {
				r = -ENOMEM;
				break;
			}
			unpack(to, pout, orow, rows, val[i][t]);
			if (s->gate_op == QV_GATE_NONE)
				continue;
			const float *g = val[s->gate][0];
			for (uint32_t row = 0; row < rows; row++) {
				bool pass = s->gate_op == QV_GATE_GE ? g[row] >= s->threshold : g[row] < s->threshold;
				if (!pass)
					for (uint32_t q = 0; q < to->row_elems; q++)
						((float *)val[i][t])[(size_t)row * to->row_elems + q] = s->else_value;
			}
		}
		free(pin);
		free(pout);
		pin = pout = NULL;
	}
	for (uint32_t j = 0; j < m->info.n_outputs && r == 0; j++)
		pack(&m->tout[j], val[e->out[j].step][e->out[j].t], rows, out, (size_t)m->info.out_dim * 4);
	free(pin);
	free(pout);
	for (uint32_t k = 0; k < QV_MAX_TENSORS; k++)
		free(ein[k]);
	for (uint32_t i = 0; i < e->n; i++)
		for (uint32_t t = 0; t < QV_MAX_TENSORS; t++)
			free(val[i][t]);
	return r;
}

static const struct qv_model_ops ensn_ops = {
	.kind = "ensemble",
	.free = ensn_free,
	.ctx_create = ensn_ctx_create,
	.ctx_free = ensn_ctx_free,
	.run = ensn_run,
	.run_tensors = ensn_run_tensors,
	.run_reference = ensn_run_reference,
	.describe = ensn_describe,
};
