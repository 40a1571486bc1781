/* SPDX-License-Identifier: Apache-2.0 */
/*
 * routes.c - the routing table: versions, routes, publication, reclamation.
 *
 * Table. struct qv_table is an array of struct qv_route_hot, one per
 * handle, each naming the immutable struct qv_version objects that play a
 * role in that route (primary, canary, shadow, fallback) with the route's
 * flags and canary/shadow thresholds; plus the routes' wire descriptions
 * for name lookups. A version holds the compiled model and, for every
 * worker, an exec context created here on the control thread with its
 * memory on that worker's NUMA node, then warmed (every batch bucket) -
 * all before any table that names the version is published. The registry
 * (struct qv_route, control thread only) is what commands change; a table
 * is never changed after publication, a new one is built instead.
 *
 * NUMA. A version holds one compiled model per NUMA node that has workers
 * (qv_numa_plan), each loaded while the control thread's allocations are
 * bound to that node; each worker's context comes from its node's copy.
 * Weights are replicated per node, never read across nodes.
 *
 * Ensembles. A version directory with an ensemble config.json (repo.h)
 * becomes a version whose models (one per node) are qv_ensemble_create()
 * over the same node's copies of its steps' versions, resolved at load
 * time (the step model's primary unless the config pins a version). The
 * ensemble version pins those step versions: unloading one says -EBUSY
 * until every ensemble version using it was reclaimed, so an ensemble is
 * always freed before its steps. Errors name the step.
 *
 * Publication. qv_reg_publish() builds the new table and stores its
 * pointer into reg->cur with memory_order_release; each worker loads
 * reg->cur with memory_order_acquire once at the start of each loop turn
 * (worker_loop), so it sees the table and every version, model and exec
 * context it names fully built. A worker serves every request of a turn
 * from the table it loaded at the start of the turn, so a request is
 * served wholly by one table, and a swap loses or misroutes nothing: the
 * handle names the route in both tables.
 *
 * Reclamation (QSBR, qsbr.h). The old table is retired right after the
 * store; versions taken out of the registry (unload) are retired after
 * the table that no longer names them was published. Retiring bumps the
 * QSBR epoch (release); each worker, at the end of each turn, loads the
 * epoch (acquire) and stores it as its quiescent report (release); the
 * control thread frees an object once every worker's report (acquire) has
 * reached the object's epoch - by then no worker can hold a pointer into
 * it, and every read it made of it happened before the free. Workers poll
 * and never sleep, so a grace period is one loop turn of each worker.
 *
 * Stats slots. Each version gets a slot in every worker's qv_vstats array.
 * A slot is reused only after its previous version was reclaimed (no
 * worker writes it any more); the control thread snapshots the slot's sums
 * then as a baseline, so a new version's counts start at zero although
 * only workers ever write their counters.
 */
#include "routes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "log.h"
#include "npy.h"
#include "mlflow.h"
#include "outcheck.h"
#include "predlog.h"
#include "worker.h"

/* Workers a node plan covers: QV_MAX_WORKERS (quiverd.h); more get copy 0. */
#define QV_MAX_WORKERS_PLAN 256u

/* ---- stats slots -------------------------------------------------------- */

static int slot_alloc(struct qv_registry *reg, uint32_t *ret)
{
	for (uint32_t i = 0; i < QV_MAX_VSLOTS; i++) {
		if (reg->slot_used[i])
			continue;
		memset(&reg->base[i], 0, sizeof(reg->base[i]));
		for (uint32_t k = 0; k < reg->nworkers; k++)
			qv_vsum_add(&reg->base[i], &reg->workers[k]->vs[i]);
		reg->slot_used[i] = 1;
		*ret = i;
		return 0;
	}
	return -ENOSPC;
}

void qv_reg_version_stats(const struct qv_registry *reg, const struct qv_version *v,
			  struct qv_vsum *ret)
{
	memset(ret, 0, sizeof(*ret));
	for (uint32_t k = 0; k < reg->nworkers; k++)
		qv_vsum_add(ret, &reg->workers[k]->vs[v->slot]);
	qv_vsum_sub(ret, &reg->base[v->slot]);
}

/* ---- versions ----------------------------------------------------------- */

struct version_free_arg {
	struct qv_registry *reg;
	struct qv_version *v;
};

static void version_destroy(struct qv_registry *reg, struct qv_version *v)
{
	for (uint32_t i = 0; i < v->nctx; i++)
		if (v->ctx[i])
			qv_exec_ctx_free(v->ctx[i]);
	free(v->ctx);
	/* An ensemble's models first: they point into their steps' models. */
	for (uint32_t k = 0; k < v->nmodels; k++)
		if (v->models[k])
			qv_model_free(v->models[k]);
	for (uint32_t i = 0; i < v->nsteps; i++)
		v->steps[i]->pins--;
	free(v->steps);
	if (v->slot < QV_MAX_VSLOTS)
		reg->slot_used[v->slot] = 0;
	free(v->dir);
	free(v->log_cfg);
	free(v);
}

static void version_free_cb(void *arg)
{
	struct version_free_arg *a = arg;

	qv_log(QV_LOG_DEBUG, "version %u of handle %u reclaimed", a->v->version, a->v->handle);
	version_destroy(a->reg, a->v);
	free(a);
}

static int run_buckets(qv_exec_ctx *ctx, uint32_t max_batch, const float *in, float *out)
{
	for (uint32_t rows = 1;; rows = rows * 2 < max_batch ? rows * 2 : max_batch) {
		int r = qv_run(ctx, in, rows, out);
		if (r < 0)
			return r;
		if (rows == max_batch)
			return 0;
	}
}

/* Which model copy (node) serves each worker: qv_numa_plan over the workers' nodes. */
static int node_plan(const struct qv_registry *reg, int *nodes, uint32_t *copy)
{
	int wn[QV_MAX_WORKERS_PLAN];
	uint32_t n = reg->nworkers < QV_MAX_WORKERS_PLAN ? reg->nworkers : QV_MAX_WORKERS_PLAN;

	for (uint32_t i = 0; i < n; i++)
		wn[i] = reg->workers[i]->node;
	return qv_numa_plan(wn, n, nodes, QV_NUMA_MAX_COPIES, copy);
}

/*
 * Every worker's exec context, allocated on the worker's node from the
 * model copy of that node: the control thread binds its allocations to the
 * node while creating it, then goes back to local.
 */
static int make_contexts(struct qv_registry *reg, struct qv_version *v, const uint32_t *copy,
			 char *err, size_t len)
{
	v->nctx = reg->nworkers;
	v->ctx = calloc(reg->nworkers ? reg->nworkers : 1, sizeof(*v->ctx));
	if (!v->ctx)
		return -ENOMEM;
	for (uint32_t i = 0; i < reg->nworkers; i++) {
		int node = reg->workers[i]->node, r;
		qv_numa_bind(node);
		r = qv_exec_ctx_create(v->models[copy[i]], &v->ctx[i]);
		qv_numa_unbind(node);
		if (r < 0) {
			snprintf(err, len, "exec context for worker %u: %s", i, strerror(-r));
			return r;
		}
	}
	return 0;
}

/*
 * Runs every batch bucket once on a scratch context (first-touch of the
 * weights and primitives), and one row on each worker's context (its
 * scratchpad pages): every bucket on every context would multiply a big
 * model's load time by the number of workers for no further gain.
 */
static int warm(struct qv_version *v, char *err, size_t len)
{
	size_t nin = (size_t)v->max_batch * v->info.in_dim, nout = (size_t)v->max_batch * v->info.out_dim;
	float *in = calloc(nin ? nin : 1, sizeof(float)), *out = calloc(nout ? nout : 1, sizeof(float));
	qv_exec_ctx *scratch = NULL;
	int r = -ENOMEM;

	if (!in || !out)
		goto out;
	r = 0;
	for (uint32_t k = 0; r == 0 && k < v->nmodels; k++) {
		qv_numa_bind(v->model_node[k]);
		r = qv_exec_ctx_create(v->models[k], &scratch);
		qv_numa_unbind(v->model_node[k]);
		if (r < 0)
			goto out;
		r = run_buckets(scratch, v->max_batch, in, out);
		qv_exec_ctx_free(scratch);
		scratch = NULL;
	}
	for (uint32_t i = 0; r == 0 && i < v->nctx; i++)
		r = qv_run(v->ctx[i], in, 1, out);
out:
	if (r < 0)
		snprintf(err, len, "warm-up run: %s", strerror(-r));
	if (scratch)
		qv_exec_ctx_free(scratch);
	free(in);
	free(out);
	return r;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Resolves an ensemble's steps to loaded versions, pinning them in v. Errors name the step. */
static int ens_resolve(struct qv_registry *reg, const struct qv_ens_config *ec,
		       struct qv_version *v, char *err, size_t len)
{
	v->steps = calloc(ec->n_steps, sizeof(*v->steps));
	if (!v->steps)
		return -ENOMEM;
	for (uint32_t i = 0; i < ec->n_steps; i++) {
		const struct qv_ens_step_cfg *sc = &ec->steps[i];
		struct qv_route *r = qv_reg_find(reg, sc->model);
		uint32_t want = sc->version ? sc->version : (r ? r->primary : 0);
		struct qv_version *sv = r ? qv_route_version(r, want) : NULL;

		if (!sv) {
			if (!r || !r->nvers)
				snprintf(err, len, "step '%s': unknown model '%s' (not loaded)", sc->name,
					 sc->model);
			else
				snprintf(err, len, "step '%s': model '%s' has no version %u loaded",
					 sc->name, sc->model, want);
			return -ENOENT;
		}
		if (sv->nmodels != v->nmodels) {
			snprintf(err, len, "step '%s': model '%s' has %u node copies, need %u",
				 sc->name, sc->model, sv->nmodels, v->nmodels);
			return -EINVAL;
		}
		v->steps[v->nsteps++] = sv;
		sv->pins++;
	}
	return 0;
}

/* The ensemble model of node copy k, over the steps' copies of the same node. */
static int ens_build(const struct qv_ens_config *ec, const struct qv_version *v, uint32_t k,
		     qv_model **ret, char *err, size_t len)
{
	struct qv_ensemble_step *st = calloc(ec->n_steps, sizeof(*st));
	struct qv_ensemble_bind *bd = calloc((size_t)ec->n_steps * QV_REPO_ENS_MAX_BINDS, sizeof(*bd));
	struct qv_ensemble_output outs[QV_REPO_ENS_MAX_BINDS];
	struct qv_ensemble_desc d = { 0 };
	int r;

	if (!st || !bd) {
		free(st);
		free(bd);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < ec->n_steps; i++) {
		const struct qv_ens_step_cfg *sc = &ec->steps[i];
		st[i].name = sc->name;
		st[i].model = v->steps[i]->models[k];
		st[i].n_inputs = sc->n_inputs;
		for (uint32_t j = 0; j < sc->n_inputs; j++)
			st[i].inputs[j] = sc->inputs[j];
		st[i].gate.op = (enum qv_gate_op)sc->gate_op;
		st[i].gate.step = sc->gate_op ? sc->gate_step : NULL;
		st[i].gate.threshold = sc->threshold;
		st[i].gate.else_value = sc->else_value;
		/* named form: the binds point into the config, which outlives create */
		st[i].n_binds = sc->n_binds;
		st[i].binds = bd + (size_t)i * QV_REPO_ENS_MAX_BINDS;
		for (uint32_t j = 0; j < sc->n_binds; j++) {
			bd[(size_t)i * QV_REPO_ENS_MAX_BINDS + j].input = sc->binds[j].name;
			bd[(size_t)i * QV_REPO_ENS_MAX_BINDS + j].source = sc->binds[j].source;
		}
	}
	for (uint32_t j = 0; j < ec->n_outputs; j++) {
		outs[j].name = ec->outputs[j].name;
		outs[j].source = ec->outputs[j].source;
	}
	d.n_outputs = ec->n_outputs;
	d.outputs = outs;
	d.name = NULL;
	d.n_steps = ec->n_steps;
	d.steps = st;
	d.output = ec->output[0] ? ec->output : NULL;
	r = qv_ensemble_create(&d, ret, err, len);
	free(st);
	free(bd);
	return r;
}


/* Is file an ensemble's config.json (by name: model_file() picked it)? */
static int is_ens_file(const char *file)
{
	const char *b = strrchr(file, '/');

	return strcmp(b ? b + 1 : file, "config.json") == 0;
}

/*
 * Loads one model copy per NUMA node with workers (allocations bound to
 * that node) - or, for an ensemble, builds one per node over its steps'
 * copies of the same node.
 */
static int load_copies(struct qv_registry *reg, struct qv_version *v, const char *file,
		       const struct qv_model_opts *opts, uint32_t *copy, char *err, size_t len)
{
	const char *base = strrchr(file, '/');
	struct qv_ens_config *ec = NULL;
	char lerr[QV_ERR_LEN] = "";
	int nodes[QV_NUMA_MAX_COPIES];
	int r = node_plan(reg, nodes, copy);

	if (r < 0) {
		snprintf(err, len, "more than %u NUMA nodes with workers", QV_NUMA_MAX_COPIES);
		return r;
	}
	v->nmodels = (uint32_t)r;
	for (uint32_t k = 0; k < v->nmodels; k++)
		v->model_node[k] = nodes[k];
	if (is_ens_file(file)) {
		char *text = NULL;
		size_t tlen = 0;
		ec = calloc(1, sizeof(*ec));
		if (!ec)
			return -ENOMEM;
		r = qv_read_regular(AT_FDCWD, file, 1u << 20, &text, &tlen);
		if (r < 0) {
			snprintf(err, len, "config.json: %s",
				 r == -EINVAL ? "not a regular file" : strerror(-r));
			goto out;
		}
		r = qv_ens_config_parse(text, tlen, ec, err, len);
		free(text);
		if (r == -ENOENT)
			snprintf(err, len, "config.json: no \"ensemble\" object and no model file");
		if (r < 0) {
			r = -EINVAL;
			goto out;
		}
		r = ens_resolve(reg, ec, v, err, len);
		if (r < 0)
			goto out;
	}
	for (uint32_t k = 0; k < v->nmodels; k++) {
		qv_numa_bind(v->model_node[k]);
		if (ec)
			r = ens_build(ec, v, k, &v->models[k], lerr, sizeof(lerr));
		else
			r = qv_model_load_file(file, opts, &v->models[k], lerr, sizeof(lerr));
		qv_numa_unbind(v->model_node[k]);
		if (r < 0) {
			v->models[k] = NULL;
			if (ec) {
				/* The kernel's "ensemble: step 'x': ..." already names the step. */
				const char *m = strncmp(lerr, "ensemble: ", 10) == 0 ? lerr + 10 : lerr;
				snprintf(err, len, "%.240s", m[0] ? m : strerror(-r));
			} else {
				snprintf(err, len, "%.40s: %.200s", base ? base + 1 : file,
					 lerr[0] ? lerr : strerror(-r));
			}
			r = ec ? -EINVAL : -EIO;
			goto out;
		}
	}
	v->model = v->models[0];
out:
	free(ec);
	return r;
}

/*
 * The precision guard's golden set: golden.npy in the version's directory
 * (beside the model file), else in the model's directory; float32, 2-D
 * [rows, in_dim] (the width is checked by the runtime against the model).
 * None: count 0, and the runtime draws its documented rows.
 */
static int golden_read(const char *file, struct qv_npy *ret, char *err, size_t len)
{
	char path[4400], nerr[160];
	const char *slash = strrchr(file, '/');
	int n = slash ? (int)(slash - file) : 0;
	struct stat st;

	for (int up = 0; up < 2; up++) {
		if (up) {
			/* REPO/name/version/ -> REPO/name/ */
			const char *p = file + n;
			while (p > file && *--p != '/')
				;
			n = (int)(p - file);
		}
		snprintf(path, sizeof(path), "%.*s%sgolden.npy", n, file, n ? "/" : "");
		if (stat(path, &st) != 0)
			continue;
		int r = qv_npy_read(path, ret, nerr, sizeof(nerr));
		if (r == 0 && (ret->rank != 2 || ret->shape[0] < 1 || ret->shape[1] < 1)) {
			qv_npy_free(ret);
			snprintf(nerr, sizeof(nerr), "want a 2-D float32 array [rows, in_dim]");
			r = -EINVAL;
		}
		if (r < 0) {
			snprintf(err, len, "golden.npy: %s", nerr);
			return -EIO;
		}
		return 0;
	}
	return 0;
}

/*
 * Compiles, makes contexts, warms. Returns -EIO (err: loader's chain) or
 * -errno. For a plain model it reads only what never changes after start
 * (the workers' nodes, the caps), so it may run on the loader thread; an
 * ensemble resolves its steps in the registry (control thread only).
 */
static int version_make(struct qv_registry *reg, uint32_t handle, uint32_t version,
			const char *file, const struct qv_model_config *cfg,
			struct qv_version **ret, char *err, size_t len)
{
	struct qv_model_opts opts = { 0 };
	struct qv_npy golden = { 0 };
	struct qv_version *v = calloc(1, sizeof(*v));
	uint32_t *copy = calloc(reg->nworkers ? reg->nworkers : 1, sizeof(*copy));
	struct timespec t0;
	uint32_t mb;
	int r;

	if (!v || !copy) {
		free(v);
		free(copy);
		return -ENOMEM;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	v->slot = UINT32_MAX;
	v->version = version;
	v->handle = handle;
	mb = cfg->max_batch ? cfg->max_batch : QV_DEFAULT_MAX_BATCH;
	if (reg->max_batch_cap && mb > reg->max_batch_cap)
		mb = reg->max_batch_cap;
	opts.max_batch = mb;
	v->default_deadline_ns = cfg->default_deadline_us * 1000u;
	v->deadline_cycles = (uint64_t)((double)v->default_deadline_ns * (double)reg->tsc_hz / 1e9);
	v->queue_delay_us = cfg->max_queue_delay_us;
	v->queue_delay_cycles = (uint64_t)((double)cfg->max_queue_delay_us * 1000.0 *
					   (double)reg->tsc_hz / 1e9);
	opts.precision = (enum qv_precision)cfg->precision;
	opts.tol_abs = cfg->tol_abs;
	opts.tol_rel = cfg->tol_rel;
	opts.tol_top1 = cfg->tol_top1;
	r = opts.precision != QV_PRECISION_FP32 ? golden_read(file, &golden, err, len) : 0;
	if (r < 0)
		goto fail;
	if (golden.count) {
		opts.golden = golden.data;
		opts.golden_rows = (uint32_t)golden.shape[0];
		opts.golden_dim = (uint32_t)(golden.count / golden.shape[0]);
	}
	r = load_copies(reg, v, file, &opts, copy, err, len);
	qv_npy_free(&golden);
	if (r < 0)
		goto fail;
	r = qv_model_get_info(v->model, &v->info);
	if (r < 0) {
		snprintf(err, len, "model info: %s", strerror(-r));
		r = -EIO;
		goto fail;
	}
	qv_version_out_spans(v);
	qv_model_precision(v->model, &v->prec);
	/* The runtime rounds max_batch up to a power of two; we serve what was asked. */
	v->max_batch = mb < v->info.max_batch ? mb : v->info.max_batch;
	v->preferred_batch = cfg->preferred_batch && cfg->preferred_batch < v->max_batch
				     ? cfg->preferred_batch
				     : v->max_batch;
	r = make_contexts(reg, v, copy, err, len);
	if (r < 0)
		goto fail;
	r = warm(v, err, len);
	if (r < 0) {
		r = -EIO;
		goto fail;
	}
	/* The stats slot is taken when the version is attached (qv_reg_attach_built):
	 * the slots are registry state, and this may run on the loader thread. */
	v->load_ms = ms_since(&t0);
	free(copy);
	*ret = v;
	return 0;
fail:
	free(copy);
	version_destroy(reg, v);
	return r;
}

struct qv_version *qv_route_version(const struct qv_route *r, uint32_t version)
{
	if (version == 0)
		return NULL;
	for (uint32_t i = 0; i < r->nvers; i++)
		if (r->vers[i]->version == version)
			return r->vers[i];
	return NULL;
}

const char *qv_route_role(const struct qv_route *r, uint32_t v)
{
	if (v == r->primary)
		return "primary";
	if (v == r->canary)
		return "canary";
	if (v == r->shadow)
		return "shadow";
	if (v == r->fallback)
		return "fallback";
	if (v == r->previous)
		return "previous";
	return NULL;
}

struct qv_route *qv_reg_find(struct qv_registry *reg, const char *name)
{
	for (uint32_t i = 0; i < reg->n; i++)
		if (strcmp(reg->routes[i].name, name) == 0)
			return &reg->routes[i];
	return NULL;
}

static struct qv_route *route_new(struct qv_registry *reg, const char *name)
{
	struct qv_route *r;

	if (reg->n == QV_MAX_ROUTES)
		return NULL;
	r = &reg->routes[reg->n];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->handle = reg->n++;
	return r;
}

/* ---- tables ------------------------------------------------------------- */

static void table_free(void *arg)
{
	struct qv_table *t = arg;

	free(t->hot);
	free(t->wire);
	free(t);
}

/* One tensor of the model for the wire; a model that describes none (a
 * stand-in without a runtime model) is one float tensor of its dims. */
static void tensor_to_wire(const struct qv_version *v, int is_output, uint32_t idx,
			   uint32_t off, struct qv_tensor_wire *ret)
{
	struct qv_tensor_info ti;
	struct qv_tensor_wire t;
	uint32_t rank;

	memset(&t, 0, sizeof(t));
	if (v->model && qv_model_tensor(v->model, is_output, idx, &ti) == 0) {
		snprintf(t.name, sizeof(t.name), "%s", ti.name);
		t.dtype = ti.dtype;
		rank = ti.rank <= 8 ? ti.rank : 8;
		t.rank = rank;
		for (uint32_t k = 0; k < rank; k++)
			t.shape[k] = ti.shape[k];
		t.row_bytes = ti.row_bytes;
		t.packed_off = ti.packed_off;
		t.index_bound = ti.index_bound;
	} else {
		snprintf(t.name, sizeof(t.name), "%s", is_output ? v->info.out_name : v->info.in_name);
		t.dtype = QV_DT_F32;
		t.rank = 2;
		t.shape[0] = -1;
		t.shape[1] = is_output ? v->info.out_dim : v->info.in_dim;
		t.row_bytes = (uint32_t)t.shape[1] * 4;
		t.packed_off = off;
	}
	*ret = t;
}

void qv_version_to_wire(const struct qv_version *v, const char *name, struct qv_lookup_reply *ret)
{
	struct qv_model_wire w;
	uint32_t nin = v->info.n_inputs, nout = v->info.n_outputs;

	if (!v->model || nin == 0 || nin > QV_WIRE_MAX_TENSORS || nout == 0 ||
	    nout > QV_WIRE_MAX_TENSORS)
		nin = nout = 1;
	memset(ret, 0, sizeof(*ret));
	ret->n_inputs = nin;
	ret->n_outputs = nout;
	for (uint32_t i = 0; i < nin; i++)
		tensor_to_wire(v, 0, i, 0, &ret->t[i]);
	for (uint32_t j = 0; j < nout; j++)
		tensor_to_wire(v, 1, j, 0, &ret->t[nin + j]);
	memset(&w, 0, sizeof(w));
	w.handle = v->handle;
	w.version = v->version;
	w.in_dim = v->info.in_dim;
	w.out_dim = v->info.out_dim;
	w.max_batch = v->max_batch;
	w.in_rank = v->info.in_rank <= 8 ? v->info.in_rank : 8;
	w.out_rank = v->info.out_rank <= 8 ? v->info.out_rank : 8;
	for (uint32_t i = 0; i < w.in_rank; i++)
		w.in_shape[i] = v->info.in_shape[i];
	for (uint32_t i = 0; i < w.out_rank; i++)
		w.out_shape[i] = v->info.out_shape[i];
	snprintf(w.name, sizeof(w.name), "%s", name);
	ret->m = w;
}

static void fill_hot(const struct qv_route *r, struct qv_route_hot *h)
{
	const struct qv_version *p = qv_route_version(r, r->primary), *v;

	memset(h, 0, sizeof(*h));
	if (!p) {
		h->state = QV_ROUTE_FAILED;
		return;
	}
	h->state = QV_ROUTE_READY;
	h->in_dim = p->info.in_dim;
	h->out_dim = p->info.out_dim;
	h->n_inputs = p->info.n_inputs ? p->info.n_inputs : 1;
	h->n_outputs = p->info.n_outputs ? p->info.n_outputs : 1;
	h->max_batch = p->max_batch;
	h->primary = p;
	if ((v = qv_route_version(r, r->canary)) && r->canary_ppm) {
		h->canary = v;
		h->canary_thr = qv_ppm_threshold(r->canary_ppm);
		h->flags |= QV_RT_CANARY | (r->canary_sticky ? QV_RT_STICKY : 0);
	}
	if ((v = qv_route_version(r, r->shadow)) && r->shadow_ppm) {
		h->shadow = v;
		h->shadow_thr = qv_ppm_threshold(r->shadow_ppm);
		h->flags |= QV_RT_SHADOW;
	}
	if ((v = qv_route_version(r, r->fallback)) && r->fb_on) {
		h->fallback = v;
		h->flags |= QV_RT_FALLBACK | r->fb_on;
	}
}

int qv_reg_publish(struct qv_registry *reg)
{
	struct qv_table *t = calloc(1, sizeof(*t)), *old;
	uint32_t n = reg->n ? reg->n : 1;

	if (t) {
		t->hot = aligned_alloc(64, n * sizeof(*t->hot));
		t->wire = calloc(n, sizeof(*t->wire));
	}
	if (!t || !t->hot || !t->wire) {
		if (t)
			table_free(t);
		return -ENOMEM;
	}
	t->n = reg->n;
	t->gen = ++reg->gen;
	for (uint32_t i = 0; i < reg->n; i++) {
		const struct qv_route *r = &reg->routes[i];
		fill_hot(r, &t->hot[i]);
		if (t->hot[i].primary)
			qv_version_to_wire(t->hot[i].primary, r->name, &t->wire[i]);
	}
	/* The control thread is the only writer of cur. */
	old = atomic_load_explicit(&reg->cur, memory_order_relaxed);
	/*
	 * Release: the table and every version, model and exec context it
	 * names are fully built before a worker can load the pointer; pairs
	 * with the acquire load at the top of each turn in worker_loop().
	 */
	atomic_store_explicit(&reg->cur, t, memory_order_release);
	if (old && qv_qsbr_retire(&reg->qsbr, table_free, old) < 0)
		qv_log(QV_LOG_WARN, "out of memory retiring table %llu: leaking it",
		       (unsigned long long)old->gen);
	return 0;
}

uint32_t qv_reg_reclaim(struct qv_registry *reg)
{
	return qv_qsbr_reclaim(&reg->qsbr);
}

/* ---- loading ------------------------------------------------------------ */

static int read_config(const char *repo, const char *name, struct qv_model_config *ret, char *err,
		       size_t len)
{
	char path[4200];
	struct qv_model_config cfg = { 0 };
	char *buf = NULL;
	size_t sz;
	int r = 0;

	if (!repo) {
		*ret = cfg;
		return 0;
	}
	snprintf(path, sizeof(path), "%s/%s/config.json", repo, name);
	r = qv_read_regular(AT_FDCWD, path, 1u << 20, &buf, &sz);
	if (r == -ENOENT) {
		*ret = cfg;
		return 0;
	}
	if (r < 0) {
		snprintf(err, len, "config.json: %s",
			 r == -EINVAL ? "not a regular file" : r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
		return -EIO;
	}
	r = qv_config_parse(buf, sz, &cfg, err, len);
	if (r < 0)
		r = -EIO;
	free(buf);
	if (r == 0)
		*ret = cfg;
	return r;
}

/* dir/MLmodel (an MLflow model directory), else dir/model.onnx, else dir/model.json or model.ubj
 * (XGBoost), else dir/config.json (an ensemble). */
static int model_file(const char *dir, char *out, size_t len)
{
	struct stat st;

	snprintf(out, len, "%s/MLmodel", dir);
	if (stat(out, &st) == 0 && S_ISREG(st.st_mode))
		return 0;
	snprintf(out, len, "%s/model.onnx", dir);
	if (stat(out, &st) == 0 && S_ISREG(st.st_mode))
		return 0;
	snprintf(out, len, "%s/model.json", dir);
	if (stat(out, &st) == 0 && S_ISREG(st.st_mode))
		return 0;
	snprintf(out, len, "%s/model.ubj", dir);
	if (stat(out, &st) == 0 && S_ISREG(st.st_mode))
		return 0;
	snprintf(out, len, "%s/config.json", dir);
	if (stat(out, &st) == 0 && S_ISREG(st.st_mode))
		return 0;
	return -ENOENT;
}

static int is_mlmodel(const char *file)
{
	const char *b = strrchr(file, '/');

	return strcmp(b ? b + 1 : file, "MLmodel") == 0;
}

/* An MLflow model's signature against the model as loaded. */
static int mlflow_check(const struct qv_mlflow *ml, const struct qv_version *v, char *err,
			size_t len)
{
	struct qv_tensor_info *ti = calloc(2 * QV_MAX_TENSORS, sizeof(*ti));
	uint32_t ni = 0, no = 0;
	int r;

	if (!ti)
		return -ENOMEM;
	while (ni < QV_MAX_TENSORS && qv_model_tensor(v->model, 0, ni, &ti[ni]) == 0)
		ni++;
	while (no < QV_MAX_TENSORS &&
	       qv_model_tensor(v->model, 1, no, &ti[QV_MAX_TENSORS + no]) == 0)
		no++;
	char why[QV_ERR_LEN] = "";
	r = qv_mlflow_check(ml, ti, ni, ti + QV_MAX_TENSORS, no, why, sizeof(why));
	free(ti);
	if (r < 0)
		snprintf(err, len, "MLmodel: %s", why);
	return r;
}

static int attach(struct qv_registry *reg, const char *name, struct qv_version *v,
		  struct qv_route **ret_route)
{
	struct qv_route *r = qv_reg_find(reg, name);
	int created = 0;

	if (!r) {
		r = route_new(reg, name);
		if (!r)
			return -ENOSPC;
		created = 1;
	}
	if (r->nvers == QV_ROUTE_MAX_VERSIONS) {
		if (created)
			reg->n--;
		return -ENOSPC;
	}
	v->handle = r->handle;
	r->vers[r->nvers++] = v;
	if (!r->primary) {
		r->primary = v->version;
		r->error[0] = '\0';
	}
	*ret_route = r;
	return 0;
}

int qv_reg_load(struct qv_registry *reg, const char *name, uint32_t version, const char *dir,
		double *ret_load_ms, char *err, size_t err_len)
{
	return qv_reg_load_prec(reg, name, version, dir, -1, ret_load_ms, err, err_len);
}

/* Says what precision a version serves, and why not the one asked for. */
static void log_precision(const char *name, const struct qv_version *v)
{
	const struct qv_precision_report *p = &v->prec;
	char top1[48] = "";

	if (p->requested == QV_PRECISION_FP32)
		return;
	if (p->top1 >= 0)
		snprintf(top1, sizeof(top1), ", top-1 agreement %.4f", p->top1);
	if (p->reduced)
		qv_log(QV_LOG_INFO,
		       "model %s: version %u serves %s (%s asked; guard on %u %s rows: max abs error %.3g, max rel %.3g%s)",
		       name, v->version, p->served, qv_precision_name(p->requested), p->golden_rows,
		       p->golden_given ? "golden.npy" : "generated", p->max_abs, p->max_rel, top1);
	if (p->reason[0])
		qv_log(QV_LOG_WARN, "model %s: version %u %s in fp32: %s", name, v->version,
		       p->reduced ? "keeps some layers" : "is served", p->reason);
}

int qv_reg_set_log(struct qv_registry *reg, struct qv_route *r, const struct qv_plog_cfg *pc,
		   char *why, size_t why_len)
{
	uint64_t thr;
	int rc = qv_predlog_set(reg->predlog, r->handle, r->name, pc, &thr, why, why_len);

	if (rc < 0)
		return rc;
	/* Relaxed: see struct qv_version's log_thr; workers see it within a turn or so. */
	for (uint32_t i = 0; i < r->nvers; i++)
		atomic_store_explicit(&r->vers[i]->log_thr, thr, memory_order_relaxed);
	return 0;
}

/*
 * The prediction log of a version being attached to route r: config.json's
 * "log" (read again at every load, like max_batch) sets the model's
 * settings and every loaded version's threshold; v starts with the
 * model's current threshold (a `quiverctl log` change survives a load of
 * a version whose config.json has no "log").
 */
static void predlog_attach(struct qv_registry *reg, struct qv_route *r, struct qv_version *v,
			   const struct qv_model_config *cfg)
{
	char why[160];

	if (!reg->predlog)
		return;
	if (cfg && cfg->log_set) {
		struct qv_plog_cfg pc = {
			.sample = cfg->log_sample,
			.dir = cfg->log_dir[0] ? cfg->log_dir : NULL,
			.max_bytes = cfg->log_max_bytes,
			.keep = cfg->log_keep,
		};
		if (qv_reg_set_log(reg, r, &pc, why, sizeof(why)) < 0)
			qv_log(QV_LOG_WARN, "model %s: config.json log: %s", r->name, why);
	}
	atomic_store_explicit(&v->log_thr, qv_predlog_thr(reg->predlog, r->handle),
			      memory_order_relaxed);
}

/* The directory a load reads (dir, or REPO/NAME/VERSION) and its model file. */
static int locate(const struct qv_registry *reg, const char *name, uint32_t version,
		  const char *dir, char *d, size_t dlen, char *file, size_t flen, char *err,
		  size_t err_len)
{
	if (dir)
		snprintf(d, dlen, "%s", dir);
	else
		snprintf(d, dlen, "%s/%s/%u", reg->repo, name, version);
	if (model_file(d, file, flen) < 0) {
		snprintf(err, err_len,
			 "load %s/%u: no MLmodel, model.onnx, model.json, model.ubj or config.json in %s",
			 name, version, d);
		return -ENOENT;
	}
	return 0;
}

/*
 * What a built version keeps for its attach: where it came from, and
 * config.json's "log" (read by the build, maybe on the loader thread, but
 * applied when the version is attached on the control thread; freed by
 * qv_reg_attach_built or version_destroy). On failure v is destroyed.
 */
static int keep_dir_cfg(struct qv_registry *reg, struct qv_version *v, const char *d,
			const struct qv_model_config *cfg)
{
	v->dir = strdup(d);
	if (v->dir && cfg->log_set) {
		v->log_cfg = malloc(sizeof(*v->log_cfg));
		if (v->log_cfg)
			*v->log_cfg = *cfg;
	}
	if (!v->dir || (cfg->log_set && !v->log_cfg)) {
		version_destroy(reg, v);
		return -ENOMEM;
	}
	return 0;
}

/*
 * The slow part of a load (qv_reg_build in routes.h): find the model file,
 * read config.json and MLmodel, compile, make contexts, warm. A plain
 * model's build reads only registry fields fixed at start (repo, caps,
 * the workers' nodes) and takes no stats slot, so it may run on the loader
 * thread while the control thread serves; an ensemble needs its steps from
 * the registry, so it is left to the control thread (returns 1).
 */
int qv_reg_build(struct qv_registry *reg, const char *name, uint32_t version, const char *dir,
		 int precision, struct qv_version **ret_v, char *err, size_t err_len)
{
	char d[4200], file[4300], why[QV_ERR_LEN] = "";
	struct qv_model_config cfg;
	struct qv_version *v = NULL;
	struct qv_mlflow *ml = NULL;
	int rc;

	rc = locate(reg, name, version, dir, d, sizeof(d), file, sizeof(file), err, err_len);
	if (rc < 0)
		return rc;
	if (is_ens_file(file))
		return 1;
	rc = read_config(reg->repo, name, &cfg, why, sizeof(why));
	if (precision >= 0)
		cfg.precision = (uint32_t)precision;
	if (rc == 0 && is_mlmodel(file)) {
		ml = calloc(1, sizeof(*ml));
		rc = ml ? qv_mlflow_read(d, ml, file, sizeof(file), why, sizeof(why)) : -ENOMEM;
		if (rc == -ENOMEM)
			snprintf(why, sizeof(why), "out of memory");
		else if (rc == -ENOENT)
			snprintf(why, sizeof(why), "MLmodel: %s", strerror(-rc));
	}
	if (rc == 0)
		rc = version_make(reg, 0, version, file, &cfg, &v, why, sizeof(why));
	if (rc == 0 && v && ml) {
		rc = mlflow_check(ml, v, why, sizeof(why));
		if (rc < 0) {
			version_destroy(reg, v);
			v = NULL;
		}
	}
	free(ml);
	if (rc < 0 || !v) {
		snprintf(err, err_len, "load %s/%u: %s", name, version, why);
		return rc < 0 ? rc : -EIO;
	}
	rc = keep_dir_cfg(reg, v, d, &cfg);
	if (rc < 0) {
		snprintf(err, err_len, "load %s/%u: out of memory", name, version);
		return rc;
	}
	*ret_v = v;
	return 0;
}

void qv_reg_build_free(struct qv_registry *reg, struct qv_version *v)
{
	if (v)
		version_destroy(reg, v);
}

/*
 * The control thread's part of a load: the checks that depend on the
 * routes as they are now (the version may have been loaded meanwhile, the
 * primary swapped), a stats slot, the route, and one publication. Takes v
 * in every case: on failure it is destroyed (it was never published).
 */
int qv_reg_attach_built(struct qv_registry *reg, const char *name, uint32_t version,
			struct qv_version *v, double *ret_load_ms, char *err, size_t err_len)
{
	struct qv_route *r = qv_reg_find(reg, name), saved;
	struct qv_version *p;
	uint32_t old_n = reg->n;
	int existed = r != NULL, rc;

	if (r && qv_route_version(r, version)) {
		version_destroy(reg, v);
		snprintf(err, err_len, "load %s/%u: version already loaded", name, version);
		return -EEXIST;
	}
	p = r ? qv_route_version(r, r->primary) : NULL;
	if (p && !qv_version_same_tensors(p, v)) {
		snprintf(err, err_len,
			 "load %s/%u: shapes or tensors differ from the route's (in %u out %u, primary has in %u out %u)",
			 name, version, v->info.in_dim, v->info.out_dim, p->info.in_dim,
			 p->info.out_dim);
		version_destroy(reg, v);
		return -EINVAL;
	}
	rc = slot_alloc(reg, &v->slot);
	if (rc < 0) {
		version_destroy(reg, v);
		snprintf(err, err_len, "load %s/%u: too many versions loaded (%u)", name, version,
			 QV_MAX_VSLOTS);
		return rc;
	}
	if (r)
		saved = *r;
	rc = attach(reg, name, v, &r);
	if (rc == 0) {
		predlog_attach(reg, r, v, v->log_cfg);
		rc = qv_reg_publish(reg);
	}
	free(v->log_cfg);
	v->log_cfg = NULL;
	if (rc < 0) {
		/* Never published: ours to free at once. */
		if (existed)
			*r = saved;
		else
			reg->n = old_n;
		version_destroy(reg, v);
		snprintf(err, err_len, "load %s/%u: %s", name, version, strerror(-rc));
		return rc;
	}
	qv_log(QV_LOG_INFO, "model %s: version %u loaded in %.1f ms (handle %u, in %u, out %u, max_batch %u)",
	       name, version, v->load_ms, v->handle, v->info.in_dim, v->info.out_dim, v->max_batch);
	log_precision(name, v);
	if (ret_load_ms)
		*ret_load_ms = v->load_ms;
	return 0;
}

/* An ensemble version, on the control thread: its steps are resolved and
 * pinned in the registry while it is built. */
static int load_ensemble(struct qv_registry *reg, const char *name, uint32_t version,
			 const char *dir, int precision, double *ret_load_ms, char *err,
			 size_t err_len)
{
	struct qv_route *r = qv_reg_find(reg, name);
	char d[4200], file[4300], why[QV_ERR_LEN] = "";
	struct qv_model_config cfg;
	struct qv_version *v = NULL;
	int rc;

	rc = locate(reg, name, version, dir, d, sizeof(d), file, sizeof(file), err, err_len);
	if (rc < 0)
		return rc;
	rc = read_config(reg->repo, name, &cfg, why, sizeof(why));
	if (precision >= 0)
		cfg.precision = (uint32_t)precision;
	if (rc == 0)
		rc = version_make(reg, r ? r->handle : reg->n, version, file, &cfg, &v, why,
				  sizeof(why));
	if (rc < 0 || !v) {
		snprintf(err, err_len, "load %s/%u: %s", name, version, why);
		return rc < 0 ? rc : -EIO;
	}
	rc = keep_dir_cfg(reg, v, d, &cfg);
	if (rc < 0) {
		snprintf(err, err_len, "load %s/%u: out of memory", name, version);
		return rc;
	}
	return qv_reg_attach_built(reg, name, version, v, ret_load_ms, err, err_len);
}

int qv_reg_load_prec(struct qv_registry *reg, const char *name, uint32_t version, const char *dir,
		     int precision, double *ret_load_ms, char *err, size_t err_len)
{
	struct qv_route *r = qv_reg_find(reg, name);
	struct qv_version *v = NULL;
	int rc;

	if (r && qv_route_version(r, version)) {
		snprintf(err, err_len, "load %s/%u: version already loaded", name, version);
		return -EEXIST;
	}
	rc = qv_reg_build(reg, name, version, dir, precision, &v, err, err_len);
	if (rc == 1)
		return load_ensemble(reg, name, version, dir, precision, ret_load_ms, err, err_len);
	if (rc < 0)
		return rc;
	return qv_reg_attach_built(reg, name, version, v, ret_load_ms, err, err_len);
}

int qv_reg_unload(struct qv_registry *reg, struct qv_route *r, uint32_t version)
{
	struct version_free_arg *a = malloc(sizeof(*a));
	struct qv_route saved = *r;
	struct qv_version *v = NULL;
	int rc;

	if (!a)
		return -ENOMEM;
	for (uint32_t i = 0; i < r->nvers; i++) {
		if (r->vers[i]->version == version) {
			v = r->vers[i];
			r->vers[i] = r->vers[--r->nvers];
			break;
		}
	}
	if (!v) {
		free(a);
		return -ENOENT;
	}
	if (v->pins) {
		/* An ensemble's step: it must outlive every ensemble version using it. */
		*r = saved;
		free(a);
		return -EBUSY;
	}
	rc = qv_reg_publish(reg);
	if (rc == 0) {
		a->reg = reg;
		a->v = v;
		/* After the table that no longer names v: freed after the same grace period. */
		rc = qv_qsbr_retire(&reg->qsbr, version_free_cb, a);
		if (rc < 0)
			qv_log(QV_LOG_WARN, "out of memory retiring %s/%u: leaking it", r->name,
			       version);
		return 0;
	}
	*r = saved;
	free(a);
	return rc;
}

/* Loads a scanned entry's highest version. 0, or <0 with the reason in err. */
static int load_entry(struct qv_registry *reg, const struct qv_repo_entry *e, char *err,
		      size_t len)
{
	char dir[4096], *slash;

	if (!e->ok) {
		snprintf(err, len, "%s", e->error);
		return -EINVAL;
	}
	snprintf(dir, sizeof(dir), "%s", e->path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	return qv_reg_load(reg, e->name, e->version, dir, NULL, err, len);
}

/* A model that cannot be served is listed as failed, with why. */
static void entry_failed(struct qv_registry *reg, const struct qv_repo_entry *e, const char *err)
{
	struct qv_route *rt;

	qv_log(QV_LOG_ERROR, "model %s: version %u failed to load: %s", e->name, e->version, err);
	rt = qv_reg_find(reg, e->name);
	if (!rt)
		rt = route_new(reg, e->name);
	if (rt)
		snprintf(rt->error, sizeof(rt->error), "%s", err);
}

/*
 * The highest version of e did not load: serve the highest older version
 * that does, so a broken new version never leaves the model without a
 * primary. Returns 1 if one loaded. The failure stays in the log.
 */
static uint32_t load_older(struct qv_registry *reg, const struct qv_repo_entry *e)
{
	uint32_t vers[16];
	size_t n = 0;
	char err[QV_REPO_ERR_MAX];

	const struct qv_route *rt = qv_reg_find(reg, e->name);

	/* A model already served (a reload's new version failed) keeps its primary. */
	if (!e->ok || e->ensemble || !reg->repo || (rt && rt->primary) ||
	    qv_repo_versions_below(reg->repo, e->name, e->version, vers, 16, &n) < 0)
		return 0;
	for (size_t k = 0; k < n; k++) {
		err[0] = '\0';
		if (qv_reg_load(reg, e->name, vers[k], NULL, NULL, err, sizeof(err)) == 0) {
			qv_log(QV_LOG_WARN, "model %s: version %u failed to load; serving version %u",
			       e->name, e->version, vers[k]);
			return 1;
		}
		qv_log(QV_LOG_ERROR, "model %s: version %u failed to load too: %s", e->name, vers[k],
		       err);
	}
	return 0;
}

/*
 * Loads the entries whose want[i] is set: plain models (and entries that
 * cannot load at all) first, then ensembles pass after pass while one
 * loads, since an ensemble may name another ensemble in any name order. A
 * pass that loads none leaves only ensembles whose steps cannot load
 * (unknown, failed, or a cycle of ensembles): their last error is
 * reported. Returns how many loaded.
 */
static uint32_t load_entries(struct qv_registry *reg, const struct qv_repo_entry *ents, size_t n,
			     uint8_t *want)
{
	char err[QV_REPO_ERR_MAX];
	size_t left = 0;
	uint32_t loaded = 0;

	for (size_t i = 0; i < n; i++) {
		if (!want[i])
			continue;
		if (ents[i].ok && ents[i].ensemble) {
			left++;
			continue;
		}
		want[i] = 0;
		if (load_entry(reg, &ents[i], err, sizeof(err)) < 0) {
			entry_failed(reg, &ents[i], err);
			loaded += load_older(reg, &ents[i]);
		} else {
			loaded++;
		}
	}
	while (left) {
		size_t before = left;

		for (size_t i = 0; i < n; i++) {
			if (!want[i])
				continue;
			err[0] = '\0';
			if (load_entry(reg, &ents[i], err, sizeof(err)) == 0) {
				want[i] = 0;
				left--;
				loaded++;
			}
		}
		if (left == before) {
			for (size_t i = 0; i < n; i++) {
				if (!want[i])
					continue;
				/* Once more for its message (a step's failure, named). */
				err[0] = '\0';
				(void)load_entry(reg, &ents[i], err, sizeof(err));
				entry_failed(reg, &ents[i], err);
			}
			break;
		}
	}
	return loaded;
}

static int scan_repo(struct qv_registry *reg, struct qv_repo_entry **ret_ents, size_t *ret_n)
{
	size_t skipped = 0;
	int r = qv_repo_scan(reg->repo, ret_ents, ret_n, &skipped);

	if (r < 0)
		return r;
	if (skipped)
		qv_log(QV_LOG_WARN, "repository %s: %zu model directories after '%s' not served "
		       "(at most %u models, the first in name order)", reg->repo, skipped,
		       (*ret_ents)[*ret_n - 1].name, QV_REPO_MAX_MODELS);
	return 0;
}

int qv_reg_load_repo(struct qv_registry *reg)
{
	struct qv_repo_entry *ents = NULL;
	uint8_t *want;
	size_t n = 0;
	int r = scan_repo(reg, &ents, &n);

	if (r < 0)
		return r;
	want = malloc(n ? n : 1);
	if (!want) {
		free(ents);
		return -ENOMEM;
	}
	memset(want, 1, n);
	load_entries(reg, ents, n, want);
	free(want);
	free(ents);
	return qv_reg_publish(reg);
}

int qv_reg_reload_repo(struct qv_registry *reg, uint32_t *ret_loaded)
{
	struct qv_repo_entry *ents = NULL;
	uint8_t *want;
	size_t n = 0;
	uint32_t loaded;
	int r = scan_repo(reg, &ents, &n);

	if (r < 0)
		return r;
	want = calloc(n ? n : 1, 1);
	if (!want) {
		free(ents);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct qv_route *rt = qv_reg_find(reg, ents[i].name);
		uint32_t top = 0;

		if (!rt) {
			want[i] = 1;   /* a new model (or a new broken one, to report) */
			continue;
		}
		for (uint32_t k = 0; k < rt->nvers; k++)
			if (rt->vers[k]->version > top)
				top = rt->vers[k]->version;
		/* Only versions above every one loaded: an unloaded older version
		 * stays unloaded, and a loaded one is never loaded twice. */
		want[i] = ents[i].ok && ents[i].version > top;
	}
	loaded = load_entries(reg, ents, n, want);
	free(want);
	free(ents);
	r = qv_reg_publish(reg);
	if (r == 0 && ret_loaded)
		*ret_loaded = loaded;
	return r;
}

int qv_reg_lookup(struct qv_registry *reg, const char *name, struct qv_lookup_reply *ret)
{
	const struct qv_route *r = qv_reg_find(reg, name);
	const struct qv_version *p = r ? qv_route_version(r, r->primary) : NULL;

	if (!p)
		return -ENOENT;
	qv_version_to_wire(p, r->name, ret);
	return 0;
}

int qv_reg_init(struct qv_registry *reg, const char *repo, uint32_t max_batch_cap,
		uint64_t tsc_hz, struct qv_worker **workers, uint32_t nworkers)
{
	int r;

	memset(reg, 0, sizeof(*reg));
	reg->repo = repo;
	reg->max_batch_cap = max_batch_cap;
	reg->tsc_hz = tsc_hz;
	reg->workers = workers;
	reg->nworkers = nworkers;
	atomic_init(&reg->cur, NULL);
	reg->routes = calloc(QV_MAX_ROUTES, sizeof(*reg->routes));
	reg->base = calloc(QV_MAX_VSLOTS, sizeof(*reg->base));
	if (!reg->routes || !reg->base) {
		free(reg->routes);
		free(reg->base);
		return -ENOMEM;
	}
	r = qv_qsbr_init(&reg->qsbr, nworkers);
	if (r < 0) {
		free(reg->routes);
		free(reg->base);
		return r;
	}
	return 0;
}

void qv_reg_fini(struct qv_registry *reg)
{
	struct qv_table *t;

	if (!reg->routes)
		return;
	qv_qsbr_fini(&reg->qsbr);
	t = atomic_load_explicit(&reg->cur, memory_order_relaxed);
	if (t)
		table_free(t);
	/*
	 * Ensembles before the steps they use, at any depth (an ensemble's
	 * step may be an ensemble): free what nothing pins, until nothing is
	 * left; pins only point down, so every pass frees at least one.
	 */
	for (int left = 1; left;) {
		left = 0;
		for (uint32_t i = 0; i < reg->n; i++) {
			for (uint32_t k = 0; k < reg->routes[i].nvers; k++) {
				struct qv_version *v = reg->routes[i].vers[k];
				if (v && v->pins > 0) {
					left = 1;
				} else if (v) {
					version_destroy(reg, v);
					reg->routes[i].vers[k] = NULL;
				}
			}
		}
	}
	free(reg->routes);
	free(reg->base);
	reg->routes = NULL;
}
