/* SPDX-License-Identifier: Apache-2.0 */
/*
 * routes.c - loading the repository into the routing table. Slow path:
 * allocates and logs freely; nothing here runs after workers start serving.
 */
#include "routes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void load_one(const struct qv_repo_entry *e, uint32_t cap, struct qv_route *r)
{
	struct qv_model_opts opts = { 0 };
	qv_model *m = NULL;
	uint32_t mb;
	int err;

	snprintf(r->name, sizeof(r->name), "%s", e->name);
	r->version = e->version;
	r->state = QV_ROUTE_FAILED;
	if (!e->ok) {
		snprintf(r->error, sizeof(r->error), "%s", e->error);
		return;
	}
	mb = e->cfg.max_batch ? e->cfg.max_batch : QV_DEFAULT_MAX_BATCH;
	if (cap && mb > cap)
		mb = cap;
	opts.max_batch = mb;
	r->default_deadline_ns = e->cfg.default_deadline_us * 1000u;
	err = qv_model_load_file(e->path, &opts, &m, r->error, sizeof(r->error));
	if (err < 0) {
		if (!r->error[0])
			snprintf(r->error, sizeof(r->error), "%s", strerror(-err));
		return;
	}
	err = qv_model_get_info(m, &r->info);
	if (err < 0) {
		snprintf(r->error, sizeof(r->error), "model info: %s", strerror(-err));
		qv_model_free(m);
		return;
	}
	/* The runtime rounds max_batch up to a power of two; we serve what was asked. */
	r->max_batch = mb < r->info.max_batch ? mb : r->info.max_batch;
	r->model = m;
	r->state = QV_ROUTE_READY;
	r->error[0] = '\0';
}

int qv_routes_load(const char *repo_dir, uint32_t max_batch_cap, struct qv_routes *ret)
{
	struct qv_repo_entry *ents = NULL;
	struct qv_routes rt = { 0 };
	size_t n = 0;
	int err;

	err = qv_repo_scan(repo_dir, &ents, &n);
	if (err < 0)
		return err;
	rt.n = (uint32_t)n;
	rt.r = calloc(n ? n : 1, sizeof(*rt.r));
	rt.hot = aligned_alloc(64, ((n ? n : 1) * sizeof(*rt.hot) + 63) / 64 * 64);
	if (!rt.r || !rt.hot) {
		free(rt.r);
		free(rt.hot);
		free(ents);
		return -ENOMEM;
	}
	memset(rt.hot, 0, n * sizeof(*rt.hot));
	for (uint32_t i = 0; i < rt.n; i++) {
		struct qv_route *r = &rt.r[i];
		load_one(&ents[i], max_batch_cap, r);
		r->handle = i;
		rt.hot[i].state = r->state;
		rt.hot[i].version = r->version;
		if (r->state == QV_ROUTE_READY) {
			rt.hot[i].in_dim = r->info.in_dim;
			rt.hot[i].out_dim = r->info.out_dim;
			rt.hot[i].max_batch = r->max_batch;
			rt.nready++;
			qv_log(QV_LOG_INFO, "model %s: version %u loaded (handle %u, in %u, out %u, max_batch %u)",
			       r->name, r->version, i, r->info.in_dim, r->info.out_dim, r->max_batch);
		} else {
			qv_log(QV_LOG_ERROR, "model %s: version %u failed to load: %s", r->name,
			       r->version, r->error);
		}
	}
	free(ents);
	*ret = rt;
	return 0;
}

void qv_routes_free(struct qv_routes *rt)
{
	for (uint32_t i = 0; i < rt->n; i++)
		if (rt->r[i].model)
			qv_model_free(rt->r[i].model);
	free(rt->r);
	free(rt->hot);
	memset(rt, 0, sizeof(*rt));
}

int qv_routes_find(const struct qv_routes *rt, const char *name)
{
	for (uint32_t i = 0; i < rt->n; i++)
		if (strcmp(rt->r[i].name, name) == 0)
			return (int)i;
	return -ENOENT;
}

void qv_route_to_wire(const struct qv_route *r, struct qv_model_wire *ret)
{
	struct qv_model_wire w;

	memset(&w, 0, sizeof(w));
	w.handle = r->handle;
	w.version = r->version;
	w.in_dim = r->info.in_dim;
	w.out_dim = r->info.out_dim;
	w.max_batch = r->max_batch;
	w.in_rank = r->info.in_rank <= 8 ? r->info.in_rank : 8;
	w.out_rank = r->info.out_rank <= 8 ? r->info.out_rank : 8;
	for (uint32_t i = 0; i < w.in_rank; i++)
		w.in_shape[i] = r->info.in_shape[i];
	for (uint32_t i = 0; i < w.out_rank; i++)
		w.out_shape[i] = r->info.out_shape[i];
	snprintf(w.name, sizeof(w.name), "%s", r->name);
	*ret = w;
}

const char *qv_route_state_name(uint32_t state)
{
	return state == QV_ROUTE_READY ? "ready" : "failed";
}
