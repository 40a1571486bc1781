/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ensemble.c - ensembles: a qv_model made of other loaded models and the
 * wiring between them (the contract is in qv_model.h, "Ensembles").
 *
 * Create validates the wiring (every error names the step), orders the
 * steps topologically and decides, once, where every intermediate tensor
 * lives. Run then only follows pointers.
 *
 * Fan-in layout. A step reading [a, b] needs rows of a's and b's outputs
 * side by side: [rows, wa + wb]. Each step writes its rows contiguously
 * ([rows, wa] then nothing else), so two outputs placed next to each other
 * are that concatenation only when rows == 1. We take that case for free:
 * at one row the parts of a fan-in write straight into adjacent slices of
 * the consumer's input buffer (QV_ENS_IN_ADJACENT), no copy. Above one row
 * each part writes its own scratch and the rows are gathered into the
 * consumer's buffer; that gather is the one copy an ensemble makes, and
 * every byte of it is counted in qv_ensemble_copy_bytes. (Writing strided
 * rows would need every kernel to take an output stride; calling a part
 * once per row would trade the copy for many more kernel calls.) A part
 * that cannot be placed (it feeds two fan-ins, is the output step, or is
 * the ensemble's input) makes its fan-in a gather at every row count.
 *
 * Gates run the gated model on maximal runs of consecutive passing rows,
 * in place, so gating copies nothing either.
 *
 * Scratch: one arena per context, allocated and zeroed (first touch) by the
 * thread creating the context, which is how a worker gets it on its NUMA
 * node without the runtime depending on libnuma.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensemble.h"
#include "plan.h"

static uint64_t round16(uint64_t n)
{
	return (n + 15) & ~15ull;
}

static bool gate_pass(enum qv_gate_op op, float g, float t)
{
	/* both comparisons are false for NaN: a NaN gate never runs the step */
	return op == QV_GATE_GE ? g >= t : g < t;
}

void qv_ens_free(struct qv_ensemble *e)
{
	if (!e)
		return;
	free(e->steps);
	free(e->cat_w);
	free(e);
}

/* ---- create: validation ---- */

struct ens_build {
	const struct qv_ensemble_desc *d;
	struct qv_model_info info[QV_ENS_MAX_STEPS];
	uint32_t ref[QV_ENS_MAX_STEPS][QV_ENS_MAX_INPUTS];  /* desc index or QV_ENS_REF_INPUT */
	uint32_t gate[QV_ENS_MAX_STEPS];                    /* desc index, UINT32_MAX: none */
	uint32_t order[QV_ENS_MAX_STEPS];                   /* execution index -> desc index */
	uint32_t pos[QV_ENS_MAX_STEPS];                     /* desc index -> execution index */
	uint32_t out;
	uint32_t in_dim;
	uint32_t in_src;                                    /* step whose input shape is the ensemble's */
	char *err;
	size_t err_len;
};

static const char *ens_name(const struct qv_ensemble_desc *d)
{
	return d->name && d->name[0] ? d->name : "ensemble";
}

static int find_step(const struct qv_ensemble_desc *d, const char *name, uint32_t *ret)
{
	for (uint32_t i = 0; i < d->n_steps; i++)
		if (d->steps[i].name && strcmp(d->steps[i].name, name) == 0) {
			*ret = i;
			return 0;
		}
	return -ENOENT;
}

static int check_names(struct ens_build *b)
{
	const struct qv_ensemble_desc *d = b->d;
	for (uint32_t i = 0; i < d->n_steps; i++) {
		const struct qv_ensemble_step *s = &d->steps[i];
		if (!s->name || !s->name[0]) {
			qvg_err(b->err, b->err_len, "%s: step #%u has no name", ens_name(d), i);
			return -EINVAL;
		}
		if (strlen(s->name) >= QV_ENS_NAME_LEN || strcmp(s->name, QV_ENS_INPUT) == 0) {
			qvg_err(b->err, b->err_len, "%s: step '%.64s': name too long or reserved", ens_name(d),
				s->name);
			return -EINVAL;
		}
		for (uint32_t j = 0; j < i; j++)
			if (strcmp(d->steps[j].name, s->name) == 0) {
				qvg_err(b->err, b->err_len, "%s: step '%s': duplicate step name", ens_name(d),
					s->name);
				return -EINVAL;
			}
		if (!s->model) {
			qvg_err(b->err, b->err_len, "%s: step '%s': no model", ens_name(d), s->name);
			return -EINVAL;
		}
		int r = qv_model_get_info(s->model, &b->info[i]);
		if (r < 0)
			return r;
		/* Steps pass one float tensor a row between them; named tensors
		 * between steps are not wired yet. */
		if (b->info[i].n_inputs != 1 || b->info[i].n_outputs != 1 ||
		    s->model->tin[0].dtype != QV_DT_F32 || s->model->tout[0].dtype != QV_DT_F32) {
			qvg_err(b->err, b->err_len, "%s: step '%s': its model has %u inputs and %u outputs (%s in, "
				"%s out); a step wired by position takes one float32 tensor and gives one (bind tensors by name for more)", ens_name(d),
				s->name, b->info[i].n_inputs, b->info[i].n_outputs,
				qv_dtype_name(s->model->tin[0].dtype), qv_dtype_name(s->model->tout[0].dtype));
			return -ENOTSUP;
		}
	}
	return 0;
}

static int resolve_refs(struct ens_build *b)
{
	const struct qv_ensemble_desc *d = b->d;
	for (uint32_t i = 0; i < d->n_steps; i++) {
		const struct qv_ensemble_step *s = &d->steps[i];
		if (s->n_inputs > QV_ENS_MAX_INPUTS) {
			qvg_err(b->err, b->err_len, "%s: step '%s': %u inputs, at most %u", ens_name(d), s->name,
				s->n_inputs, QV_ENS_MAX_INPUTS);
			return -EINVAL;
		}
		for (uint32_t k = 0; k < s->n_inputs; k++) {
			const char *nm = s->inputs[k];
			if (!nm || !nm[0]) {
				qvg_err(b->err, b->err_len, "%s: step '%s': input #%u is missing (names no tensor)",
					ens_name(d), s->name, k);
				return -EINVAL;
			}
			if (strcmp(nm, QV_ENS_INPUT) == 0) {
				b->ref[i][k] = QV_ENS_REF_INPUT;
			} else if (find_step(d, nm, &b->ref[i][k]) < 0) {
				qvg_err(b->err, b->err_len, "%s: step '%s': input '%.64s' is not a step of the ensemble",
					ens_name(d), s->name, nm);
				return -EINVAL;
			}
		}
		b->gate[i] = UINT32_MAX;
		const struct qv_ensemble_gate *g = &s->gate;
		if (g->op == QV_GATE_NONE)
			continue;
		if (g->op != QV_GATE_GE && g->op != QV_GATE_LT) {
			qvg_err(b->err, b->err_len, "%s: step '%s': unknown gate op %d", ens_name(d), s->name,
				(int)g->op);
			return -EINVAL;
		}
		if (!g->step || !g->step[0]) {
			qvg_err(b->err, b->err_len, "%s: step '%s': gate names no step", ens_name(d), s->name);
			return -EINVAL;
		}
		if (find_step(d, g->step, &b->gate[i]) < 0) {
			qvg_err(b->err, b->err_len, "%s: step '%s': gate '%.64s' is not a step of the ensemble",
				ens_name(d), s->name, g->step);
			return -EINVAL;
		}
		if (b->info[b->gate[i]].out_dim != 1) {
			qvg_err(b->err, b->err_len,
				"%s: step '%s': gate '%s' gives %u floats a row, a gate must give 1", ens_name(d),
				s->name, g->step, b->info[b->gate[i]].out_dim);
			return -EINVAL;
		}
	}
	if (!d->output) {
		b->out = d->n_steps - 1;
	} else if (find_step(d, d->output, &b->out) < 0) {
		qvg_err(b->err, b->err_len, "%s: output '%.64s' is not a step of the ensemble", ens_name(d),
			d->output);
		return -EINVAL;
	}
	return 0;
}

int qv_ens_step_order(const struct qv_ensemble_desc *d, const char *en,
		      bool (*ready)(const void *b, uint32_t i, const bool *done), const void *b,
		      uint32_t *order, uint32_t *pos, char *err, size_t err_len)
{
	bool done[QV_ENS_MAX_STEPS] = { false };
	for (uint32_t n = 0; n < d->n_steps; n++) {
		uint32_t pick = UINT32_MAX;
		for (uint32_t i = 0; i < d->n_steps && pick == UINT32_MAX; i++)
			if (!done[i] && ready(b, i, done))
				pick = i;
		if (pick == UINT32_MAX) {
			uint32_t i = 0;
			while (done[i])
				i++;
			qvg_err(err, err_len, "%s: step '%s': its inputs form a cycle", en,
				d->steps[i].name);
			return -EINVAL;
		}
		done[pick] = true;
		order[n] = pick;
		pos[pick] = n;
	}
	return 0;
}

static bool step_ready(const void *vb, uint32_t i, const bool *done)
{
	const struct ens_build *b = vb;
	bool ready = b->gate[i] == UINT32_MAX || done[b->gate[i]];
	for (uint32_t k = 0; k < b->d->steps[i].n_inputs && ready; k++)
		ready = b->ref[i][k] == QV_ENS_REF_INPUT || done[b->ref[i][k]];
	return ready;
}

static bool reads_input_alone(const struct qv_ensemble_step *s, const uint32_t *ref)
{
	return s->n_inputs == 0 || (s->n_inputs == 1 && ref[0] == QV_ENS_REF_INPUT);
}

static int check_widths(struct ens_build *b)
{
	const struct qv_ensemble_desc *d = b->d;
	b->in_src = UINT32_MAX;
	for (uint32_t i = 0; i < d->n_steps && b->in_src == UINT32_MAX; i++)
		if (reads_input_alone(&d->steps[i], b->ref[i]))
			b->in_src = i;
	if (b->in_src == UINT32_MAX) {
		qvg_err(b->err, b->err_len, "%s: no step reads the ensemble's input alone", ens_name(d));
		return -EINVAL;
	}
	b->in_dim = b->info[b->in_src].in_dim;
	for (uint32_t i = 0; i < d->n_steps; i++) {
		const struct qv_ensemble_step *s = &d->steps[i];
		uint64_t w = 0;
		char parts[160];
		size_t k = 0;
		parts[0] = '\0';
		uint32_t n = s->n_inputs ? s->n_inputs : 1;
		for (uint32_t j = 0; j < n; j++) {
			uint32_t ref = s->n_inputs ? b->ref[i][j] : QV_ENS_REF_INPUT;
			uint32_t pw = ref == QV_ENS_REF_INPUT ? b->in_dim : b->info[ref].out_dim;
			w += pw;
			if (k < sizeof(parts)) {
				int m = snprintf(parts + k, sizeof(parts) - k, "%s%s %u", j ? " + " : "",
						 ref == QV_ENS_REF_INPUT ? QV_ENS_INPUT : d->steps[ref].name, pw);
				k += m > 0 ? (size_t)m : 0;
			}
		}
		if (w != b->info[i].in_dim) {
			qvg_err(b->err, b->err_len, "%s: step '%s': input is %llu floats a row (%s) but its model takes %u",
				ens_name(d), s->name, (unsigned long long)w, parts, b->info[i].in_dim);
			return -EINVAL;
		}
	}
	/* a step nobody reads is wiring gone wrong, not something to run for nothing */
	for (uint32_t i = 0; i < d->n_steps; i++) {
		bool used = i == b->out;
		for (uint32_t j = 0; j < d->n_steps && !used; j++) {
			used = b->gate[j] == i;
			for (uint32_t k = 0; k < d->steps[j].n_inputs && !used; k++)
				used = b->ref[j][k] == i;
		}
		if (!used) {
			qvg_err(b->err, b->err_len,
				"%s: step '%s': its output is read by no step and is not the ensemble's output",
				ens_name(d), d->steps[i].name);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- create: layout ---- */

static void layout(struct qv_ensemble *e)
{
	for (uint32_t i = 0; i < e->n; i++) {
		struct qv_ens_step *s = &e->steps[i];
		if (s->n_in == 0 || (s->n_in == 1 && s->in[0] == QV_ENS_REF_INPUT)) {
			s->mode = QV_ENS_IN_ENSEMBLE;
			continue;
		}
		if (s->n_in == 1) {
			s->mode = QV_ENS_IN_STEP;
			continue;
		}
		s->cat = e->n_cat;
		e->cat_w[e->n_cat++] = s->in_w;
		bool adjacent = true;
		for (uint32_t k = 0; k < s->n_in && adjacent; k++) {
			uint32_t p = s->in[k];
			adjacent = p != QV_ENS_REF_INPUT && p != e->out_step && !e->steps[p].placed;
			for (uint32_t j = 0; j < k && adjacent; j++)
				adjacent = s->in[j] != p;
		}
		s->mode = adjacent ? QV_ENS_IN_ADJACENT : QV_ENS_IN_GATHER;
		if (!adjacent)
			continue;
		uint32_t off = 0;
		for (uint32_t k = 0; k < s->n_in; k++) {
			struct qv_ens_step *p = &e->steps[s->in[k]];
			p->placed = 1;
			p->place_cat = s->cat;
			p->place_off = off;
			off += p->out_w;
		}
	}
}

int qv_ensemble_create(const struct qv_ensemble_desc *d, qv_model **ret_model, char *err,
		       size_t err_len)
{
	if (err && err_len)
		err[0] = '\0';
	if (!d || !ret_model)
		return -EINVAL;
	if (d->n_steps == 0 || d->n_steps > QV_ENS_MAX_STEPS || !d->steps) {
		qvg_err(err, err_len, "%s: %u steps, need 1 to %u", ens_name(d), d->n_steps, QV_ENS_MAX_STEPS);
		return -EINVAL;
	}
	if (qv_ens_desc_named(d))
		return qv_ensn_create(d, ens_name(d), ret_model, err, err_len);
	struct ens_build *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->d = d;
	b->err = err;
	b->err_len = err_len;
	int r = check_names(b);
	if (r == 0)
		r = resolve_refs(b);
	if (r == 0)
		r = qv_ens_step_order(b->d, ens_name(b->d), step_ready, b, b->order, b->pos, b->err,
				      b->err_len);
	if (r == 0)
		r = check_widths(b);
	if (r < 0) {
		free(b);
		return r;
	}

	struct qv_model *m = calloc(1, sizeof(*m));
	struct qv_ensemble *e = calloc(1, sizeof(*e));
	if (e) {
		e->steps = calloc(d->n_steps, sizeof(*e->steps));
		e->cat_w = calloc(d->n_steps, sizeof(*e->cat_w));
	}
	if (!m || !e || !e->steps || !e->cat_w) {
		free(m);
		qv_ens_free(e);
		free(b);
		return -ENOMEM;
	}
	snprintf(e->name, sizeof(e->name), "%s", ens_name(d));
	e->n = d->n_steps;
	e->out_step = b->pos[b->out];
	uint32_t mb = UINT32_MAX;
	for (uint32_t x = 0; x < e->n; x++) {
		uint32_t i = b->order[x];
		const struct qv_ensemble_step *ds = &d->steps[i];
		struct qv_ens_step *s = &e->steps[x];
		snprintf(s->name, sizeof(s->name), "%s", ds->name);
		s->model = ds->model;
		s->in_w = b->info[i].in_dim;
		s->out_w = b->info[i].out_dim;
		s->n_in = ds->n_inputs;
		for (uint32_t k = 0; k < s->n_in; k++) {
			uint32_t ref = b->ref[i][k];
			s->in[k] = ref == QV_ENS_REF_INPUT ? QV_ENS_REF_INPUT : b->pos[ref];
			s->in_part_w[k] = ref == QV_ENS_REF_INPUT ? b->in_dim : b->info[ref].out_dim;
		}
		s->gate_op = ds->gate.op;
		if (s->gate_op != QV_GATE_NONE) {
			s->gate = b->pos[b->gate[i]];
			s->threshold = ds->gate.threshold;
			s->else_value = ds->gate.else_value;
		}
		if (b->info[i].max_batch < mb)
			mb = b->info[i].max_batch;
	}
	layout(e);

	const struct qv_model_info *fi = &b->info[b->in_src], *li = &b->info[b->out];
	struct qv_model_info *inf = &m->info;
	inf->in_dim = b->in_dim;
	inf->out_dim = li->out_dim;
	inf->max_batch = mb;
	inf->n_steps = e->n;
	inf->in_rank = fi->in_rank;
	memcpy(inf->in_shape, fi->in_shape, sizeof(inf->in_shape));
	snprintf(inf->in_name, sizeof(inf->in_name), "%s", fi->in_name);
	inf->out_rank = li->out_rank;
	memcpy(inf->out_shape, li->out_shape, sizeof(inf->out_shape));
	snprintf(inf->out_name, sizeof(inf->out_name), "%s", li->out_name);
	qv_model_single_io(m);
	m->kernels = QV_KERNEL_AUTO;
	m->ens = e;
	free(b);
	*ret_model = m;
	return 0;
}

int qv_model_is_ensemble(const qv_model *m)
{
	return m && (m->ens || qv_ensn_is(m));
}

/* ---- describe ---- */

int qv_ens_describe(const qv_model *m, char *buf, size_t len)
{
	static const char *const modes[] = { "input", "by pointer", "adjacent at 1 row, gathered above",
					     "gathered" };
	const struct qv_ensemble *e = m->ens;
	size_t k = 0;
	buf[0] = '\0';
	qv_put(buf, len, &k, "ensemble '%s': in '%s' %u floats, out '%s' %u floats (step '%s'), max_batch %u, %u steps\n",
	    e->name, m->info.in_name, m->info.in_dim, m->info.out_name, m->info.out_dim,
	    e->steps[e->out_step].name, m->info.max_batch, e->n);
	for (uint32_t i = 0; i < e->n; i++) {
		const struct qv_ens_step *s = &e->steps[i];
		qv_put(buf, len, &k, "%2u %-16s %u -> %u floats, input ", i, s->name, s->in_w, s->out_w);
		for (uint32_t j = 0; j < s->n_in; j++)
			qv_put(buf, len, &k, "%s%s", j ? "+" : "",
			    s->in[j] == QV_ENS_REF_INPUT ? QV_ENS_INPUT : e->steps[s->in[j]].name);
		if (!s->n_in)
			qv_put(buf, len, &k, "%s", QV_ENS_INPUT);
		qv_put(buf, len, &k, " (%s)", modes[s->mode]);
		if (s->gate_op != QV_GATE_NONE)
			qv_put(buf, len, &k, ", gate %s %s %g else %g", e->steps[s->gate].name,
			    s->gate_op == QV_GATE_GE ? ">=" : "<", (double)s->threshold, (double)s->else_value);
		if (i == e->out_step)
			qv_put(buf, len, &k, ", writes the output");
		qv_put(buf, len, &k, "\n");
	}
	return k < len ? 0 : -ENOBUFS;
}

/* ---- exec contexts ---- */

void qv_ens_ctx_free(struct qv_ens_ctx *c, const struct qv_ensemble *e)
{
	if (!c)
		return;
	if (c->sub)
		for (uint32_t i = 0; i < e->n; i++)
			qv_exec_ctx_free(c->sub[i]);
	free(c->sub);
	free(c->own);
	free(c->cat);
	free(c->last_in);
	free(c->last_out);
	free(c->arena);
	free(c);
}

int qv_ens_ctx_create(const qv_model *m, qv_exec_ctx **ret_ctx)
{
	const struct qv_ensemble *e = m->ens;
	const uint64_t mb = m->info.max_batch;
	struct qv_exec_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->m = m;
	struct qv_ens_ctx *c = ctx->ens = calloc(1, sizeof(*c));
	if (!c) {
		free(ctx);
		return -ENOMEM;
	}
	c->sub = calloc(e->n, sizeof(*c->sub));
	c->own = calloc(e->n, sizeof(*c->own));
	c->cat = calloc(e->n_cat ? e->n_cat : 1, sizeof(*c->cat));
	c->last_in = calloc(e->n, sizeof(*c->last_in));
	c->last_out = calloc(e->n, sizeof(*c->last_out));
	uint64_t floats = 0;
	for (uint32_t i = 0; i < e->n; i++)
		if (i != e->out_step)
			floats += round16(e->steps[i].out_w * mb);
	for (uint32_t j = 0; j < e->n_cat; j++)
		floats += round16(e->cat_w[j] * mb);
	if (floats)
		c->arena = aligned_alloc(64, floats * sizeof(float));
	if (!c->sub || !c->own || !c->cat || !c->last_in || !c->last_out || (floats && !c->arena)) {
		qv_exec_ctx_free(ctx);
		return -ENOMEM;
	}
	/* first touch from the creating (worker) thread puts the pages on its node */
	if (floats)
		memset(c->arena, 0, floats * sizeof(float));
	uint64_t off = 0;
	for (uint32_t i = 0; i < e->n; i++) {
		if (i == e->out_step)
			continue;
		c->own[i] = c->arena + off;
		off += round16(e->steps[i].out_w * mb);
	}
	for (uint32_t j = 0; j < e->n_cat; j++) {
		c->cat[j] = c->arena + off;
		off += round16(e->cat_w[j] * mb);
	}
	for (uint32_t i = 0; i < e->n; i++) {
		int r = qv_exec_ctx_create(e->steps[i].model, &c->sub[i]);
		if (r < 0) {
			qv_exec_ctx_free(ctx);
			return r;
		}
	}
	*ret_ctx = ctx;
	return 0;
}

uint64_t qv_ensemble_copy_bytes(const qv_exec_ctx *ctx)
{
	if (ctx && qv_ensn_is(ctx->m))
		return qv_ensn_copy_bytes(ctx);
	return ctx && ctx->ens ? ctx->ens->copy_bytes : 0;
}

int qv_ensemble_step_io(const qv_exec_ctx *ctx, const char *name, const float **ret_in,
			const float **ret_out)
{
	if (ctx && name && qv_ensn_is(ctx->m))
		return qv_ensn_step_io(ctx, name, ret_in, ret_out);
	if (!ctx || !ctx->ens || !name)
		return -EINVAL;
	const struct qv_ensemble *e = ctx->m->ens;
	for (uint32_t i = 0; i < e->n; i++)
		if (strcmp(e->steps[i].name, name) == 0) {
			if (ret_in)
				*ret_in = ctx->ens->last_in[i];
			if (ret_out)
				*ret_out = ctx->ens->last_out[i];
			return 0;
		}
	return -ENOENT;
}

/* ---- run (hot path: no allocation, lock, syscall or log) ---- */

static void gather(const struct qv_ens_step *s, const float *in, float *const *out_of, uint32_t rows,
		   float *dst)
{
	for (uint32_t r = 0; r < rows; r++) {
		for (uint32_t k = 0; k < s->n_in; k++) {
			const uint32_t pw = s->in_part_w[k];
			const float *src = s->in[k] == QV_ENS_REF_INPUT ? in : out_of[s->in[k]];
			memcpy(dst, src + (size_t)r * pw, pw * sizeof(float));
			dst += pw;
		}
	}
}

static int run_gated(const struct qv_ens_step *s, qv_exec_ctx *sub, const float *g, const float *x,
		     uint32_t rows, float *y)
{
	uint32_t r = 0;
	while (r < rows) {
		bool pass = gate_pass(s->gate_op, g[r], s->threshold);
		uint32_t r1 = r + 1;
		while (r1 < rows && gate_pass(s->gate_op, g[r1], s->threshold) == pass)
			r1++;
		float *yr = y + (size_t)r * s->out_w;
		if (pass) {
			int rc = qv_run(sub, x + (size_t)r * s->in_w, r1 - r, yr);
			if (__builtin_expect(rc < 0, 0))
				return rc;
		} else {
			for (size_t i = 0; i < (size_t)(r1 - r) * s->out_w; i++)
				yr[i] = s->else_value;
		}
		r = r1;
	}
	return 0;
}

int qv_ens_run(qv_exec_ctx *ctx, const float *in, uint32_t rows, float *out)
{
	const struct qv_ensemble *e = ctx->m->ens;
	struct qv_ens_ctx *c = ctx->ens;
	for (uint32_t i = 0; i < e->n; i++) {
		const struct qv_ens_step *s = &e->steps[i];
		const float *x = in;
		if (s->mode == QV_ENS_IN_STEP) {
			x = c->last_out[s->in[0]];
		} else if (s->mode == QV_ENS_IN_ADJACENT && rows == 1) {
			x = c->cat[s->cat];  /* the parts wrote here: the concatenation is the layout */
		} else if (s->mode != QV_ENS_IN_ENSEMBLE) {
			gather(s, in, c->last_out, rows, c->cat[s->cat]);
			c->copy_bytes += (uint64_t)rows * s->in_w * sizeof(float);
			x = c->cat[s->cat];
		}
		float *y = i == e->out_step ? out
			 : rows == 1 && s->placed ? c->cat[s->place_cat] + s->place_off
			 : c->own[i];
		c->last_in[i] = x;
		c->last_out[i] = y;
		int r = s->gate_op == QV_GATE_NONE ? qv_run(c->sub[i], x, rows, y)
			: run_gated(s, c->sub[i], c->last_out[s->gate], x, rows, y);
		if (__builtin_expect(r < 0, 0))
			return r;
	}
	return 0;
}

/* ---- reference: each step's reference, every tensor in its own buffer ---- */

int qv_ens_run_reference(const qv_model *m, const float *in, uint32_t rows, float *out)
{
	const struct qv_ensemble *e = m->ens;
	float **val = calloc(e->n, sizeof(*val));
	float *cat = NULL;
	if (!val)
		return -ENOMEM;
	int r = 0;
	for (uint32_t i = 0; i < e->n && r == 0; i++) {
		const struct qv_ens_step *s = &e->steps[i];
		val[i] = malloc((size_t)rows * s->out_w * sizeof(float));
		cat = malloc((size_t)rows * s->in_w * sizeof(float));
		if (!val[i] || !cat) {
			r = -ENOMEM;
			break;
		}
		/* build the input row by row, column by column */
		for (uint32_t row = 0; row < rows; row++) {
			size_t col = 0;
			uint32_t n = s->n_in ? s->n_in : 1;
			for (uint32_t k = 0; k < n; k++) {
				uint32_t ref = s->n_in ? s->in[k] : QV_ENS_REF_INPUT;
				uint32_t pw = ref == QV_ENS_REF_INPUT ? m->info.in_dim : e->steps[ref].out_w;
				const float *src = ref == QV_ENS_REF_INPUT ? in : val[ref];
				for (uint32_t j = 0; j < pw; j++)
					cat[(size_t)row * s->in_w + col++] = src[(size_t)row * pw + j];
			}
		}
		r = qv_run_reference(s->model, cat, rows, val[i]);
		if (r == 0 && s->gate_op != QV_GATE_NONE)
			for (uint32_t row = 0; row < rows; row++)
				if (!gate_pass(s->gate_op, val[s->gate][row], s->threshold))
					for (uint32_t j = 0; j < s->out_w; j++)
						val[i][(size_t)row * s->out_w + j] = s->else_value;
		free(cat);
		cat = NULL;
	}
	if (r == 0)
		memcpy(out, val[e->out_step], (size_t)rows * m->info.out_dim * sizeof(float));
	free(cat);
	for (uint32_t i = 0; i < e->n; i++)
		free(val[i]);
	free(val);
	return r;
}
