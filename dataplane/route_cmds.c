/* SPDX-License-Identifier: Apache-2.0 */
/*
 * route_cmds.c - the routing commands of the control protocol (load,
 * unload, swap, canary, shadow, promote, rollback, fallback) and the
 * read-only views of routes (routes, stats, metrics). Control thread only.
 *
 * Every mutating command validates first (cmd_args.c, then the routing
 * state), changes the registry, and publishes a new table; when the
 * publication fails the route is restored, so a failed command changes
 * nothing. `load` is checked here and built on the loader thread
 * (loader.h); qv_load_finish publishes and answers it when it comes back.
 */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_args.h"
#include "loader.h"
#include "log.h"
#include "prom.h"
#include "quiverd.h"
#include "predlog_cmd.h"
#include "s3fetch.h"
#include "state.h"

/*
 * Publishes the registry's routes and waits one grace period, so that when
 * the operator's command returns, every worker has finished the loop turn
 * that might still have held the old table: the next request any client
 * sends is routed by the new one ("rollback restores the previous primary
 * instantly"). A worker turn is microseconds; the bound only guards
 * against a stuck worker, and then the change still happens, just later.
 */
static int publish_sync(struct qv_daemon *d)
{
	int rc = qv_reg_publish(&d->reg);

	if (rc < 0)
		return rc;
	if (qv_qsbr_synchronize(&d->reg.qsbr, 1000ull * 1000 * 1000) < 0)
		qv_log(QV_LOG_WARN, "routing table published, but a worker has not passed a quiescent state within 1 s");
	return 0;
}

static const char *const status_upper[QV_STATUS_COUNT] = {
	"OK", "UNKNOWN_MODEL", "BAD_SHAPE", "BAD_REQUEST",
	"DEADLINE_EXCEEDED", "OVERLOADED", "UNAVAILABLE", "INTERNAL",
};

static void add_version_or_null(cJSON *o, const char *key, uint32_t v)
{
	if (v)
		cJSON_AddNumberToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

static cJSON *shape(const int64_t *s, uint32_t rank)
{
	cJSON *a = cJSON_CreateArray();

	for (uint32_t i = 0; a && i < rank && i < QV_MAX_RANK; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber((double)s[i]));
	return a;
}

static cJSON *route_obj(const struct qv_route *r)
{
	cJSON *o = cJSON_CreateObject(), *vs, *x;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "name", r->name);
	cJSON_AddNumberToObject(o, "handle", r->handle);
	add_version_or_null(o, "primary", r->primary);
	add_version_or_null(o, "previous", r->previous);
	if (r->canary && (x = cJSON_AddObjectToObject(o, "canary"))) {
		cJSON_AddNumberToObject(x, "version", r->canary);
		cJSON_AddNumberToObject(x, "ppm", r->canary_ppm);
		cJSON_AddBoolToObject(x, "sticky", r->canary_sticky);
	} else if (!r->canary) {
		cJSON_AddNullToObject(o, "canary");
	}
	if (r->shadow && (x = cJSON_AddObjectToObject(o, "shadow"))) {
		cJSON_AddNumberToObject(x, "version", r->shadow);
		cJSON_AddNumberToObject(x, "ppm", r->shadow_ppm);
	} else if (!r->shadow) {
		cJSON_AddNullToObject(o, "shadow");
	}
	if (r->fallback && (x = cJSON_AddObjectToObject(o, "fallback"))) {
		cJSON *on = cJSON_AddArrayToObject(x, "on");
		cJSON_AddNumberToObject(x, "version", r->fallback);
		if (on) {
			if (r->fb_on & QV_RT_FB_ERROR)
				cJSON_AddItemToArray(on, cJSON_CreateString("error"));
			if (r->fb_on & QV_RT_FB_DEADLINE)
				cJSON_AddItemToArray(on, cJSON_CreateString("deadline"));
			if (r->fb_on & QV_RT_FB_NONFINITE)
				cJSON_AddItemToArray(on, cJSON_CreateString("nonfinite"));
		}
		cJSON_AddBoolToObject(x, "manual", !!(r->fb_on & QV_RT_FB_MANUAL));
	} else if (!r->fallback) {
		cJSON_AddNullToObject(o, "fallback");
	}
	vs = cJSON_AddArrayToObject(o, "versions");
	for (uint32_t i = 0; vs && i < r->nvers; i++) {
		const struct qv_version *v = r->vers[i];
		cJSON *e = cJSON_CreateObject();
		if (!e)
			continue;
		cJSON_AddNumberToObject(e, "version", v->version);
		cJSON_AddStringToObject(e, "state", "ready");
		cJSON_AddItemToObject(e, "in_shape", shape(v->info.in_shape, v->info.in_rank));
		cJSON_AddItemToObject(e, "out_shape", shape(v->info.out_shape, v->info.out_rank));
		cJSON_AddNumberToObject(e, "max_batch", v->max_batch);
		qv_precision_json(e, &v->prec);
		cJSON_AddItemToArray(vs, e);
	}
	return o;
}

/* Publishes the changed route r, or restores it from saved. */
static cJSON *commit(struct qv_daemon *d, struct qv_route *r, const struct qv_route *saved,
		     int32_t *ret_status)
{
	int rc = publish_sync(d);

	if (rc < 0) {
		*r = *saved;
		return qv_cmd_fail(ret_status, rc, "%s: publishing the routing table: %s", r->name,
			    strerror(-rc));
	}
	return route_obj(r);
}

static cJSON *load_reply(const char *name, uint32_t version, double ms)
{
	cJSON *o = cJSON_CreateObject();

	if (o) {
		cJSON_AddStringToObject(o, "name", name);
		cJSON_AddNumberToObject(o, "version", version);
		cJSON_AddStringToObject(o, "state", "ready");
		cJSON_AddNumberToObject(o, "load_ms", ms);
	}
	return o;
}

/* A new model's route is usable by every worker once this returns. */
static void load_sync(struct qv_daemon *d, const char *name, uint32_t version)
{
	if (qv_qsbr_synchronize(&d->reg.qsbr, 1000ull * 1000 * 1000) < 0)
		qv_log(QV_LOG_WARN, "load %s/%u: a worker has not passed a quiescent state within 1 s",
		       name, version);
}

/*
 * With the loader thread (d->loader), the command is checked here and
 * handed over: *ret_deferred says the answer comes from qv_load_finish.
 * Without it (tests driving the commands), the whole load runs here.
 */
static cJSON *do_load(struct qv_daemon *d, const struct qv_cmd_args *a, int32_t *ret_status,
		      int *ret_deferred)
{
	char err[1024] = "", local[4096];
	const char *dir = a->path[0] ? a->path : NULL;
	const struct qv_route *r;
	struct qv_load_job *j;
	double ms = 0;
	int rc;

	if (dir && qv_s3_is_url(dir) && !d->s3_cache[0])
		return qv_cmd_fail(ret_status, -EINVAL, "load %s/%u: %.300s: quiverd has no S3 cache "
			    "directory (start it with --s3-cache DIR)", a->name, a->version, a->path);
	if (d->loader) {
		r = qv_reg_find(&d->reg, a->name);
		if (r && qv_route_version(r, a->version))
			return qv_cmd_fail(ret_status, -EEXIST, "load %s/%u: version already loaded", a->name,
				    a->version);
		j = calloc(1, sizeof(*j));
		if (!j)
			return NULL;
		snprintf(j->name, sizeof(j->name), "%s", a->name);
		j->version = a->version;
		j->precision = a->precision;
		snprintf(j->path, sizeof(j->path), "%s", a->path);
		j->conn_id = d->cmd_conn_id;
		j->seq = d->cmd_seq;
		rc = qv_loader_submit(d->loader, j, err, sizeof(err));
		if (rc < 0) {
			free(j);
			return qv_cmd_fail(ret_status, rc, "%s", err);
		}
		*ret_deferred = 1;
		return NULL;
	}
	if (dir && qv_s3_is_url(dir)) {
		/* Fetched into the cache (or found current there), loaded from the copy. */
		rc = qv_load_fetch_s3(a->path, d->s3_cache, d->s3_endpoint, a->name, a->version,
				      local, sizeof(local), err, sizeof(err));
		if (rc < 0)
			return qv_cmd_fail(ret_status, rc, "%s", err);
		dir = local;
	}
	rc = qv_reg_load_prec(&d->reg, a->name, a->version, dir, a->precision, &ms, err, sizeof(err));

	if (rc < 0)
		return qv_cmd_fail(ret_status, rc, "%s", err);
	load_sync(d, a->name, a->version);
	return load_reply(a->name, a->version, ms);
}

void qv_load_finish(struct qv_daemon *d, struct qv_load_job *j, int stopping, char **ret_reply,
		    int32_t *ret_status)
{
	char err[1024] = "";
	int32_t status = 0;
	double ms = 0;
	cJSON *o;
	int rc = j->rc;

	if (stopping || rc == -ECANCELED) {
		qv_reg_build_free(&d->reg, j->v);
		j->v = NULL;
		o = qv_cmd_fail(&status, -ESHUTDOWN, "load %s/%u: cancelled: quiverd is draining", j->name,
			 j->version);
	} else if (rc < 0) {
		o = qv_cmd_fail(&status, rc, "%s", j->err);
	} else {
		if (rc == 1)   /* an ensemble: its steps are the registry's */
			rc = qv_reg_load_prec(&d->reg, j->name, j->version, j->dir[0] ? j->dir : NULL,
					      j->precision, &ms, err, sizeof(err));
		else
			rc = qv_reg_attach_built(&d->reg, j->name, j->version, j->v, &ms, err,
						 sizeof(err));
		j->v = NULL;
		if (rc < 0) {
			o = qv_cmd_fail(&status, rc, "%s", err);
		} else {
			load_sync(d, j->name, j->version);
			o = load_reply(j->name, j->version, ms);
			qv_state_save_logged(d, "load");
		}
	}
	*ret_reply = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	*ret_status = status;
}

static const char *busy_role(const struct qv_route *r, uint32_t v)
{
	const char *role = qv_route_role(r, v);

	return role && strcmp(role, "previous") == 0 ? "previous (kept for rollback)" : role;
}

static void set_primary(struct qv_route *r, uint32_t v)
{
	if (v == r->primary)
		return;
	r->previous = r->primary;
	r->primary = v;
	/* A version never plays two roles that would route to itself. */
	if (r->canary == v) {
		r->canary = 0;
		r->canary_ppm = 0;
	}
	if (r->shadow == v) {
		r->shadow = 0;
		r->shadow_ppm = 0;
	}
	if (r->fallback == v) {
		r->fallback = 0;
		r->fb_on = 0;
	}
}

static cJSON *do_route(struct qv_daemon *d, const struct qv_cmd_args *a, struct qv_route *r,
		       int32_t *ret_status)
{
	struct qv_route saved = *r;
	const char *role;
	uint32_t old;
	int rc;
	cJSON *o;

	if (a->version && a->kind != QV_CMD_FALLBACK && !qv_route_version(r, a->version) &&
	    !((a->kind == QV_CMD_CANARY || a->kind == QV_CMD_SHADOW) && a->ppm == 0))
		return qv_cmd_fail(ret_status, -ENOENT, "%s: version %u is not loaded", r->name, a->version);
	switch (a->kind) {
	case QV_CMD_UNLOAD:
		role = busy_role(r, a->version);
		if (role)
			return qv_cmd_fail(ret_status, -EBUSY, "unload %s/%u: version is the %s", r->name,
				    a->version, role);
		rc = qv_reg_unload(&d->reg, r, a->version);
		if (rc < 0)
			return qv_cmd_fail(ret_status, rc, "unload %s/%u: %s", r->name, a->version,
				    strerror(-rc));
		o = cJSON_CreateObject();
		if (o) {
			cJSON_AddStringToObject(o, "name", r->name);
			cJSON_AddNumberToObject(o, "version", a->version);
			cJSON_AddStringToObject(o, "state", "unloaded");
		}
		return o;
	case QV_CMD_SWAP:
		old = r->primary;
		set_primary(r, a->version);
		rc = publish_sync(d);
		if (rc < 0) {
			*r = saved;
			return qv_cmd_fail(ret_status, rc, "swap %s/%u: %s", r->name, a->version,
				    strerror(-rc));
		}
		o = cJSON_CreateObject();
		if (o) {
			cJSON_AddStringToObject(o, "name", r->name);
			cJSON_AddNumberToObject(o, "primary", r->primary);
			add_version_or_null(o, "previous", a->version == old ? r->previous : old);
		}
		return o;
	case QV_CMD_CANARY:
		if (a->version == 0 || a->ppm == 0) {
			r->canary = 0;
			r->canary_ppm = 0;
			r->canary_sticky = 0;
		} else {
			if (a->version == r->primary)
				return qv_cmd_fail(ret_status, -EINVAL, "canary %s/%u: version is the primary",
					    r->name, a->version);
			r->canary = a->version;
			r->canary_ppm = a->ppm;
			r->canary_sticky = a->sticky;
		}
		return commit(d, r, &saved, ret_status);
	case QV_CMD_SHADOW:
		if (a->version == 0 || a->ppm == 0) {
			r->shadow = 0;
			r->shadow_ppm = 0;
		} else {
			if (a->version == r->primary)
				return qv_cmd_fail(ret_status, -EINVAL, "shadow %s/%u: version is the primary",
					    r->name, a->version);
			r->shadow = a->version;
			r->shadow_ppm = a->ppm;
		}
		return commit(d, r, &saved, ret_status);
	case QV_CMD_PROMOTE:
		if (!r->canary)
			return qv_cmd_fail(ret_status, -ENOENT, "promote %s: no canary", r->name);
		set_primary(r, r->canary);
		return commit(d, r, &saved, ret_status);
	case QV_CMD_ROLLBACK:
		if (!r->previous || !qv_route_version(r, r->previous))
			return qv_cmd_fail(ret_status, -ENOENT, "rollback %s: no previous version", r->name);
		set_primary(r, r->previous);
		return commit(d, r, &saved, ret_status);
	case QV_CMD_FALLBACK:
		if (a->clear) {
			r->fallback = 0;
			r->fb_on = 0;
			return commit(d, r, &saved, ret_status);
		}
		if (!qv_route_version(r, a->version))
			return qv_cmd_fail(ret_status, -ENOENT, "fallback %s: version %u is not loaded",
				    r->name, a->version);
		if (a->version == r->primary)
			return qv_cmd_fail(ret_status, -EINVAL, "fallback %s/%u: version is the primary",
				    r->name, a->version);
		r->fallback = a->version;
		r->fb_on = a->on;
		return commit(d, r, &saved, ret_status);
	case QV_CMD_FAILPOINT: {
		struct qv_version *v = qv_route_version(r, a->version);

		/* Relaxed: see struct qv_version. */
		atomic_store_explicit(&v->failpoint, (uint32_t)a->fail, memory_order_relaxed);
		qv_log(QV_LOG_WARN, "failpoint %s/%u: runs %s", r->name, a->version,
		       a->fail ? "fail from now on" : "run again");
		o = cJSON_CreateObject();
		if (o) {
			cJSON_AddStringToObject(o, "name", r->name);
			cJSON_AddNumberToObject(o, "version", a->version);
			cJSON_AddStringToObject(o, "state", a->fail ? "failing" : "running");
		}
		return o;
	}
	default:
		return qv_cmd_fail(ret_status, -EINVAL, "bad command");
	}
}

/* ---- stats and metrics -------------------------------------------------- */

static double cycles_to_ns(const struct qv_daemon *d, uint64_t c)
{
	return (double)c * 1e9 / (double)(d->tsc_hz ? d->tsc_hz : 1000000000ull);
}

static cJSON *version_stats(struct qv_daemon *d, const struct qv_version *v, struct qv_vsum *s,
			    int want_hist)
{
	cJSON *e = cJSON_CreateObject(), *st, *rn;

	if (!e)
		return NULL;
	qv_reg_version_stats(&d->reg, v, s);
	cJSON_AddNumberToObject(e, "version", v->version);
	cJSON_AddNumberToObject(e, "requests", (double)s->requests);
	cJSON_AddNumberToObject(e, "ok", (double)s->status[QV_OK]);
	st = cJSON_AddObjectToObject(e, "status");
	for (uint32_t i = 0; st && i < QV_STATUS_COUNT; i++)
		cJSON_AddNumberToObject(st, status_upper[i], (double)s->status[i]);
	cJSON_AddNumberToObject(e, "canary", (double)s->canary);
	cJSON_AddNumberToObject(e, "shadow", (double)s->shadow);
	cJSON_AddNumberToObject(e, "shadow_disagree", (double)s->shadow_disagree);
	cJSON_AddNumberToObject(e, "shadow_max_abs_diff", s->shadow_maxdiff);
	cJSON_AddNumberToObject(e, "shadow_mean_abs_diff",
				s->shadow_values ? (double)s->shadow_sumdiff_n9 * 1e-9 / (double)s->shadow_values : 0.0);
	cJSON_AddNumberToObject(e, "batches", (double)s->batches);
	cJSON_AddNumberToObject(e, "batch_rows", (double)s->batch_rows);
	cJSON_AddNumberToObject(e, "split_batches", (double)s->split_batches);
	/* Model runs by rows, keyed by the bucket's smallest row count. */
	rn = cJSON_AddObjectToObject(e, "runs_by_rows");
	for (uint32_t i = 0; rn && i < QV_RUN_HIST; i++) {
		char k[16];
		snprintf(k, sizeof(k), "%u", 1u << i);
		cJSON_AddNumberToObject(rn, k, (double)s->runs[i]);
	}
	cJSON_AddNumberToObject(e, "fallback", (double)s->fallback);
	cJSON_AddNumberToObject(e, "p50_ns", cycles_to_ns(d, qv_hist_quantile(s->hist, 0.5)));
	cJSON_AddNumberToObject(e, "p99_ns", cycles_to_ns(d, qv_hist_quantile(s->hist, 0.99)));
	cJSON_AddNumberToObject(e, "p999_ns", cycles_to_ns(d, qv_hist_quantile(s->hist, 0.999)));
	/* "hist": true - the non-empty latency buckets as [index, count, midpoint
	 * ns], so a client (quiverctl top) takes percentiles of an interval
	 * from the difference of two replies. */
	if (want_hist) {
		cJSON *h = cJSON_AddArrayToObject(e, "hist");
		for (uint32_t b = 0; h && b < QV_HIST_BUCKETS; b++) {
			uint64_t lo = qv_hist_bucket_lo(b), hi = qv_hist_bucket_hi(b);
			double t[3] = { b, (double)s->hist[b], cycles_to_ns(d, lo + (hi - lo) / 2) };
			if (s->hist[b])
				cJSON_AddItemToArray(h, cJSON_CreateDoubleArray(t, 3));
		}
	}
	return e;
}

static cJSON *do_stats(struct qv_daemon *d, const cJSON *req, int32_t *ret_status)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "name");
	int want_hist = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "hist"));
	cJSON *o, *rs;
	struct qv_vsum *s;

	if (name && !cJSON_IsNull(name)) {
		if (!cJSON_IsString(name))
			return qv_cmd_fail(ret_status, -EINVAL, "stats: \"name\" must be a string");
		if (!qv_reg_find(&d->reg, name->valuestring))
			return qv_cmd_fail(ret_status, -ENOENT, "stats: unknown model '%.64s'",
				    name->valuestring);
	}
	s = malloc(sizeof(*s));
	o = cJSON_CreateObject();
	rs = o ? cJSON_AddArrayToObject(o, "routes") : NULL;
	if (!s || !rs) {
		free(s);
		cJSON_Delete(o);
		return NULL;
	}
	for (uint32_t i = 0; i < d->reg.n; i++) {
		const struct qv_route *r = &d->reg.routes[i];
		cJSON *ro, *vs;
		if (cJSON_IsString(name) && strcmp(name->valuestring, r->name) != 0)
			continue;
		ro = cJSON_CreateObject();
		if (!ro)
			continue;
		cJSON_AddStringToObject(ro, "name", r->name);
		cJSON_AddNumberToObject(ro, "handle", r->handle);
		qv_predlog_json_route(d, ro, r->handle);
		vs = cJSON_AddArrayToObject(ro, "versions");
		for (uint32_t k = 0; vs && k < r->nvers; k++) {
			cJSON *e = version_stats(d, r->vers[k], s, want_hist);
			if (e)
				cJSON_AddItemToArray(vs, e);
		}
		cJSON_AddItemToArray(rs, ro);
	}
	free(s);
	qv_predlog_json_totals(d, o);
	return o;
}

/* The Prometheus text of prom.c (the same as GET /metrics), in a reply. */
static cJSON *do_metrics(struct qv_daemon *d)
{
	char *text = NULL;
	cJSON *o = NULL;

	if (qv_prom_render(d, &text, NULL) == 0) {
		o = cJSON_CreateObject();
		if (o)
			cJSON_AddStringToObject(o, "text", text);
	}
	free(text);
	return o;
}

int qv_route_cmd(struct qv_daemon *d, const char *cmd, const void *reqv, void **ret_reply,
		 int32_t *ret_status)
{
	const cJSON *req = reqv;
	enum qv_cmd_kind kind = qv_cmd_kind_of(cmd);
	struct qv_cmd_args a;
	struct qv_route *r;
	char err[256];
	int32_t status = 0;
	int deferred = 0;
	cJSON *rep;

	if (strcmp(cmd, "routes") == 0) {
		cJSON *rs;
		rep = cJSON_CreateObject();
		rs = rep ? cJSON_AddArrayToObject(rep, "routes") : NULL;
		for (uint32_t i = 0; rs && i < d->reg.n; i++) {
			cJSON *ro = route_obj(&d->reg.routes[i]);
			if (ro)
				cJSON_AddItemToArray(rs, ro);
		}
	} else if (strcmp(cmd, "stats") == 0) {
		rep = do_stats(d, req, &status);
	} else if (strcmp(cmd, "metrics") == 0) {
		rep = do_metrics(d);
	} else if (!kind) {
		return -ENOENT;
	} else if (qv_cmd_args_parse(kind, req, &a, err, sizeof(err)) < 0) {
		rep = qv_cmd_fail(&status, -EINVAL, "%s: %s", cmd, err);
	} else if (kind == QV_CMD_LOAD) {
		rep = do_load(d, &a, &status, &deferred);
		if (deferred)
			return 1;   /* saved by qv_load_finish, once loaded */
	} else if (!(r = qv_reg_find(&d->reg, a.name)) || !r->primary) {
		rep = qv_cmd_fail(&status, -ENOENT, "%s: unknown model '%s'", cmd, a.name);
	} else {
		rep = do_route(d, &a, r, &status);
	}
	/* A change the operator made is kept for the next start (--state-file). */
	if (kind && kind != QV_CMD_FAILPOINT && status == 0 && rep)
		qv_state_save_logged(d, cmd);
	*ret_reply = rep;
	*ret_status = status;
	return 0;
}
