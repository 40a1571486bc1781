/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gx_model.c - loading a general graph into a qv_model (the "graph" kind),
 * its tensors' descriptions, describe and the dense chain for benchmarks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx.h"

static void tensor_info(const struct gx_tensor *t, struct qv_tensor_info *ti)
{
	memset(ti, 0, sizeof(*ti));
	size_t n = strnlen(t->name, sizeof(ti->name) - 1);
	memcpy(ti->name, t->name, n);
	ti->dtype = t->dt;
	ti->rank = t->rank;
	for (uint32_t i = 0; i < t->rank; i++)
		ti->shape[i] = (int32_t)i == t->bpos ? -1 : t->dims[i];
	ti->row_elems = (uint32_t)t->numel;
}

/* Smallest table each index input reaches through views, casts and
 * constant-index gathers: ids below it are in range for every lookup. */
static void index_bounds(const struct gx_model *g, struct qv_model *m)
{
	for (uint32_t i = 0; i < g->n_ref; i++) {
		const struct gx_step *s = &g->ref[i];
		if (s->kind != GX_K_GATHER)
			continue;
		int32_t o = g->t[s->in[1]].origin;
		if (o < 0)
			continue;
		int64_t *b = &m->tin[o].index_bound;
		if (!*b || (int64_t)s->V < *b)
			*b = (int64_t)s->V;
	}
}

int gx_model_load(const void *buf, size_t len, const struct qv_model_opts *o, struct qv_model **ret,
		  char *err, size_t err_len)
{
	struct gx_model *g;
	int r = gx_parse(buf, len, &g, err, err_len);
	if (r < 0)
		return r;
	uint32_t mb = o->max_batch ? o->max_batch : QV_DEFAULT_MAX_BATCH;
	uint32_t p2 = 1;
	while (p2 < mb)
		p2 *= 2;
	g->max_batch = p2;
	g->kernels = o->kernels;
	g->tune_iters = o->tune_iters;
	if ((r = gx_build(g, err, err_len)) < 0)
		goto fail;
	for (uint32_t j = 0; j < g->n_out; j++) {
		const struct gx_tensor *t = &g->t[g->out[j]];
		if (t->bpos < 0) {
			gx_err(err, err_len, NULL, "output '%.100s': does not depend on any input", t->name);
			r = -ENOTSUP;
			goto fail;
		}
		const struct gx_node *pn = t->producer >= 0 ? &g->nodes[t->producer] : NULL;
		if (t->bpos != 0) {
			gx_err(err, err_len, pn, "output '%.100s': its batch is axis %d, not the first "
			       "(transpose it back before the output)", t->name, t->bpos);
			r = -ENOTSUP;
			goto fail;
		}
		if (t->dims[0] != 1) {
			gx_err(err, err_len, pn, "output '%.100s': its batch axis is merged with %lld other "
			       "elements (rows of the batch would mix)", t->name, (long long)t->dims[0]);
			r = -ENOTSUP;
			goto fail;
		}
		if (t->dt == GX_BOOL) {
			gx_err(err, err_len, NULL, "output '%.100s': bool outputs are not supported", t->name);
			r = -ENOTSUP;
			goto fail;
		}
		g->out_store[j] = t->store;
		g->out_direct[j] = true;
		for (uint32_t i = 0; i < g->n_in; i++)
			if (g->in_store[i] == t->store)
				g->out_direct[j] = false;
		for (uint32_t k = 0; k < g->n_out; k++)
			if (k != j && g->t[g->out[k]].store == t->store)
				g->out_direct[j] = false;
	}
	uint64_t total = 0;
	for (uint32_t i = 0; i < g->n_store; i++)
		total += g->store_bytes[i] * p2;
	if (total > (1ull << 32)) {
		gx_err(err, err_len, NULL, "model: buffers for %u rows exceed 4 GiB", p2);
		r = -E2BIG;
		goto fail;
	}
	if ((r = gx_fuse(g, err, err_len)) < 0)
		goto fail;
	for (uint32_t i = 0; i < g->n_steps; i++) {
		struct gx_step *s = &g->steps[i];
		if (s->kind != GX_K_DENSE)
			continue;
		/* a power of two: every oneDNN bucket tuning times exists */
		uint64_t rows = 1;
		while (rows < (uint64_t)p2 * s->rmul)
			rows *= 2;
		enum qv_kernel_choice k = g->kernels;
		if (rows > (1u << 15))
			k = QV_KERNEL_HAND; /* past oneDNN's largest bucket */
		if ((r = qv_dense_step_kernels(&s->ds, (uint32_t)(rows > (1u << 15) ? 1u << 15 : rows), k,
					       g->tune_iters, err, err_len)) < 0)
			goto fail;
		if (rows > (1u << 15) && !s->ds.all_hand) {
			gx_err(err, err_len, NULL, "step '%s': %llu rows a batch need the hand kernel", s->label,
			       (unsigned long long)rows);
			r = -ENOTSUP;
			goto fail;
		}
	}
	struct qv_model *m;
	if ((r = qv_model_new_kind(&gx_ops, g, p2, &m)) < 0)
		return r; /* g freed by qv_model_new_kind */
	m->kernels = o->kernels;
	for (uint32_t i = 0; i < g->n_in; i++)
		tensor_info(&g->t[g->in[i]], &m->tin[i]);
	for (uint32_t j = 0; j < g->n_out; j++)
		tensor_info(&g->t[g->out[j]], &m->tout[j]);
	index_bounds(g, m);
	m->info.n_inputs = g->n_in;
	m->info.n_outputs = g->n_out;
	/* a dense step's in-place tails count as plan steps: the plan is more
	 * than its dense layers even when every tail is fused */
	m->info.n_steps = g->n_steps;
	for (uint32_t i = 0; i < g->n_steps; i++)
		m->info.n_steps += g->steps[i].n_tail;
	if ((r = qv_model_pack_io(m)) < 0) {
		gx_err(err, err_len, NULL, "model: a request row exceeds 1 GiB");
		qv_model_free(m);
		return r;
	}
	*ret = m;
	return 0;
fail:
	gx_free(g);
	return r;
}

static const char *kind_name(enum gx_kind k)
{
	static const char *const names[] = { "map", "concat", "binary", "where", "unary", "cast", "softmax",
					     "reduce", "layernorm", "affine", "gather", "bmm", "dense", "dense" };
	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

int gx_describe(const struct qv_model *m, char *buf, size_t len)
{
	if (!buf || !len)
		return -EINVAL;
	const struct gx_model *g = m->impl;
	size_t k = 0;
	buf[0] = '\0';
	qv_put(buf, len, &k, "graph: %u inputs (%u words a row), %u outputs (%u words), max_batch %u, %u steps (%u unfused)\n",
	       g->n_in, m->info.in_dim, g->n_out, m->info.out_dim, g->max_batch, g->n_steps, g->n_ref);
	for (uint32_t i = 0; i < g->n_in; i++)
		qv_put(buf, len, &k, "  in  '%s' %s %u a row%s\n", m->tin[i].name, qv_dtype_name(m->tin[i].dtype),
		       m->tin[i].row_elems, m->tin[i].index_bound ? " (ids)" : "");
	for (uint32_t j = 0; j < g->n_out; j++)
		qv_put(buf, len, &k, "  out '%s' %s %u a row\n", m->tout[j].name, qv_dtype_name(m->tout[j].dtype),
		       m->tout[j].row_elems);
	for (uint32_t i = 0; i < g->n_steps; i++) {
		const struct gx_step *s = &g->steps[i];
		qv_put(buf, len, &k, "%2u %-9s %-28.28s %s ->%llu", i, kind_name(s->kind), s->label, s->what,
		       (unsigned long long)s->out_w);
		if (s->kind == GX_K_DENSE) {
			const struct qv_step *d = &s->ds;
			static const char *const tails[] = { "", "+residual", "+gelu", "+gelu_tanh", "+layernorm" };
			qv_put(buf, len, &k, " %ux%u x%u%s act=%d folded=%u", d->K, d->N, s->rmul,
			       d->b ? " +bias" : "", (int)d->act.kind, d->n_folded);
			for (uint32_t t = 0; t < s->n_tail; t++)
				qv_put(buf, len, &k, "%s", tails[s->tail[t].kind < 5 ? s->tail[t].kind : 0]);
			qv_put(buf, len, &k, " kernel=%s", d->all_hand ? "hand" : d->any_hand ? "auto" : "onednn");
			for (uint32_t bi = 0; bi < QV_TUNED_BUCKETS && !d->all_hand; bi++)
				if (d->ns_dnnl[bi] || d->ns_hand[bi])
					qv_put(buf, len, &k, " b%u:%s(%llu/%lluns)", 1u << bi,
					       d->use_hand[bi] ? "hand" : "onednn", (unsigned long long)d->ns_dnnl[bi],
					       (unsigned long long)d->ns_hand[bi]);
		} else if (s->kind == GX_K_GATHER) {
			qv_put(buf, len, &k, " %llu ids x %llu of %llu rows%s", (unsigned long long)s->n_idx,
			       (unsigned long long)s->D, (unsigned long long)s->V,
			       s->ostride ? " (written into the concat's rows)" : "");
		} else if (s->kind == GX_K_BMM) {
			qv_put(buf, len, &k, " %u x (%ux%u . %ux%u)", s->L, s->M, s->K, s->K, s->N);
		}
		qv_put(buf, len, &k, "\n");
	}
	return k < len ? 0 : -ENOBUFS;
}

int gx_dense_chain(const struct qv_model *m, struct qv_dense_layer *layers, uint32_t max_layers, uint32_t *ret_n)
{
	const struct gx_model *g = m->impl;
	uint32_t n = 0;
	for (uint32_t i = 0; i < g->n_steps; i++)
		n += g->steps[i].kind == GX_K_DENSE;
	if (!n)
		return -ENOTSUP;
	if (n > max_layers || !layers)
		return -ENOBUFS;
	n = 0;
	for (uint32_t i = 0; i < g->n_steps; i++) {
		const struct gx_step *s = &g->steps[i];
		if (s->kind == GX_K_DENSE)
			layers[n++] = (struct qv_dense_layer){ s->ds.K, s->ds.N, s->ds.W, s->ds.b, s->ds.act, s->rmul };
	}
	*ret_n = n;
	return 0;
}
