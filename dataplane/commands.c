/* SPDX-License-Identifier: Apache-2.0 */
/*
 * commands.c - JSON commands on the control socket: parsing, credentials,
 * status and models; the routing commands are in route_cmds.c.
 * Control thread only. Worker counters are read with relaxed loads: each
 * counter is exact on its own, the set is a snapshot "at about now".
 */
#include <cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "quiverd.h"
#include "predlog_cmd.h"
#include "udp.h"
#include "udp_dpdk.h"

static const char *const status_names[QV_STATUS_COUNT] = {
	"ok", "unknown_model", "bad_shape", "bad_request",
	"deadline_exceeded", "overloaded", "unavailable", "internal",
};

/* One running back end's counters, as the operator's views show them. */
struct udp_view {
	const char *backend;    /* "io_uring" or "dpdk" */
	const char *key;        /* status --json key */
	struct qv_udp_dpdk_stats s; /* io_uring: only s.udp is filled */
	bool frames;            /* s's frame-level counters are meaningful */
};

/* One table drives the JSON and the Prometheus text so the two cannot
 * disagree on a name or a value. */
struct udp_field {
	const char *json;       /* key in status --json */
	const char *metric;     /* quiver_udp_<metric>_total */
	const char *help;
	bool frame;             /* DPDK frame-level counter */
	size_t off;             /* offset in struct qv_udp_dpdk_stats */
};

#define UF(j, m, h, fr, member) { j, m, h, fr, offsetof(struct qv_udp_dpdk_stats, member) }
static const struct udp_field udp_fields[] = {
	UF("rx", "rx", "UDP datagrams received on the serving port.", false, udp.rx),
	UF("tx", "tx", "UDP replies sent.", false, udp.tx),
	UF("dropped_allow", "dropped_allow", "Datagrams from sources outside the allow-list.",
	   false, udp.dropped_allow),
	UF("bad_request", "bad_request", "Datagrams answered BAD_REQUEST by the parser.", false,
	   udp.bad_request),
	UF("junk", "junk", "Datagrams dropped silently by the parser.", false, udp.junk),
	UF("lookups", "lookups", "LOOKUP requests answered.", false, udp.lookups),
	UF("tx_dropped", "tx_dropped", "Replies not sent (no buffer or send error).", false,
	   udp.tx_dropped),
	UF("rx_frames", "rx_frames", "Ethernet frames taken from the port.", true, rx_frames),
	UF("tx_frames", "tx_frames", "Ethernet frames the port accepted.", true, tx_frames),
	UF("arp_replies", "arp_replies", "ARP requests for the data plane's address answered.",
	   true, arp_replies),
	UF("icmp_replies", "icmp_replies", "ICMP echo requests answered.", true, icmp_replies),
	UF("dropped_fragment", "dropped_fragment", "IPv4 fragments dropped.", true,
	   dropped_fragment),
	UF("dropped_other", "dropped_other",
	   "Frames dropped: not for us, other protocols, malformed or bad-checksum headers.", true,
	   dropped_other),
	UF("dropped_multiseg", "dropped_multiseg", "Frames chained over several mbufs, dropped.",
	   true, dropped_multiseg),
	UF("tx_full", "tx_full", "Replies the port refused (TX queue full).", true, tx_full),
	UF("nomem", "nomem", "Replies lost for want of an mbuf.", true, nomem),
};
#undef UF
#define N_UDP_FIELDS (sizeof(udp_fields) / sizeof(udp_fields[0]))

static uint64_t field_val(const struct qv_udp_dpdk_stats *s, const struct udp_field *f)
{
	uint64_t v;

	memcpy(&v, (const char *)s + f->off, sizeof(v));
	return v;
}

/*
 * Fills views[] with each running back end's counters, summed over
 * workers (each counter written by its worker with relaxed stores, read
 * here with relaxed loads by the accessors). Returns how many run.
 */
static uint32_t udp_views(const struct qv_daemon *d, struct udp_view views[2])
{
	struct qv_udp_stats one;
	uint32_t n = 0;
	bool any = false;

	memset(views, 0, 2 * sizeof(views[0]));
	for (uint32_t i = 0; i < d->nworkers && i < QV_MAX_WORKERS; i++) {
		struct qv_udp_stats *sum = &views[0].s.udp;

		if (!d->udp[i])
			continue;
		qv_udp_uring_stats(d->udp[i], &one);
		sum->rx += one.rx;
		sum->tx += one.tx;
		sum->dropped_allow += one.dropped_allow;
		sum->bad_request += one.bad_request;
		sum->junk += one.junk;
		sum->lookups += one.lookups;
		sum->tx_dropped += one.tx_dropped;
		any = true;
	}
	if (any) {
		views[0].backend = "io_uring";
		views[0].key = "udp";
		n = 1;
	}
	if (d->dpdk != NULL && d->dpdk_stats != NULL) {
		views[n].backend = "dpdk";
		views[n].key = "udp_dpdk";
		views[n].frames = true;
		d->dpdk_stats(d->dpdk, &views[n].s);
		n++;
	}
	return n;
}

/* "udp" (io_uring) and "udp_dpdk" objects, present only for a running
 * back end. */
static void add_udp(cJSON *o, const struct qv_daemon *d)
{
	struct udp_view v[2];
	uint32_t n = udp_views(d, v);

	for (uint32_t k = 0; k < n; k++) {
		cJSON *u = cJSON_CreateObject();

		if (!u)
			continue;
		for (size_t i = 0; i < N_UDP_FIELDS; i++)
			if (!udp_fields[i].frame || v[k].frames)
				cJSON_AddNumberToObject(u, udp_fields[i].json,
							(double)field_val(&v[k].s, &udp_fields[i]));
		cJSON_AddItemToObject(o, v[k].key, u);
	}
}

/*
 * Writes the UDP counters, as Prometheus counters labelled by back end, to
 * a metrics text (prom.c). Writes nothing when no back end runs.
 */
void qv_udp_metrics_write(const struct qv_daemon *d, FILE *f)
{
	struct udp_view v[2];
	uint32_t n = udp_views(d, v);

	for (size_t i = 0; i < N_UDP_FIELDS && n > 0; i++) {
		const struct udp_field *fd = &udp_fields[i];
		bool head = false;

		for (uint32_t k = 0; k < n; k++) {
			if (fd->frame && !v[k].frames)
				continue;
			if (!head)
				fprintf(f, "# HELP quiver_udp_%s_total %s\n"
					   "# TYPE quiver_udp_%s_total counter\n",
					fd->metric, fd->help, fd->metric);
			head = true;
			fprintf(f, "quiver_udp_%s_total{backend=\"%s\"} %llu\n", fd->metric,
				v[k].backend, (unsigned long long)field_val(&v[k].s, fd));
		}
	}
}

static cJSON *cmd_status(struct qv_daemon *d)
{
	cJSON *o = cJSON_CreateObject(), *ws = cJSON_CreateArray(), *tot = cJSON_CreateObject();
	uint64_t served = 0, st[QV_STATUS_COUNT] = { 0 };

	if (!o || !ws || !tot) {
		cJSON_Delete(o);
		cJSON_Delete(ws);
		cJSON_Delete(tot);
		return NULL;
	}
	cJSON_AddStringToObject(o, "state", d->draining ? "draining" : "running");
	cJSON_AddNumberToObject(o, "uptime_s", (double)((qv_now_ns() - d->start_ns) / 1000000000ull));
	for (uint32_t i = 0; i < d->nworkers; i++) {
		struct qv_worker *w = d->workers[i];
		cJSON *wo = cJSON_CreateObject();
		uint64_t req = 0, wst[QV_STATUS_COUNT];

		/* Each status read once: the total is their sum (the worker
		 * counts no separate total), so the two always agree. */
		for (int s = 0; s < QV_STATUS_COUNT; s++) {
			wst[s] = qv_cnt_get(&w->cnt.status[s]);
			req += wst[s];
		}
		if (!wo)
			continue;
		cJSON_AddNumberToObject(wo, "id", w->id);
		cJSON_AddNumberToObject(wo, "core", w->core);
		cJSON_AddNumberToObject(wo, "numa_node", w->node < 0 ? 0 : w->node);
		cJSON_AddNumberToObject(wo, "channels", w->nchans_ctl);
		cJSON_AddNumberToObject(wo, "requests", (double)req);
		cJSON_AddNumberToObject(wo, "busy_cycles", (double)qv_cnt_get(&w->cnt.busy_cycles));
		cJSON_AddNumberToObject(wo, "idle_cycles", (double)qv_cnt_get(&w->cnt.idle_cycles));
		cJSON_AddNumberToObject(wo, "corrupt_channels",
					(double)qv_cnt_get(&w->cnt.corrupt_channels));
		cJSON_AddNumberToObject(wo, "busy_turns", (double)qv_cnt_get(&w->cnt.busy_turns));
		cJSON_AddNumberToObject(wo, "idle_turns", (double)qv_cnt_get(&w->cnt.idle_turns));
		if (d->udp[i]) {   /* this worker's io_uring socket (quiverctl top) */
			struct qv_udp_stats us;
			qv_udp_uring_stats(d->udp[i], &us);
			cJSON_AddNumberToObject(wo, "udp_rx", (double)us.rx);
			cJSON_AddNumberToObject(wo, "udp_tx", (double)us.tx);
		}
		cJSON_AddItemToArray(ws, wo);
		served += req;
		for (int s = 0; s < QV_STATUS_COUNT; s++)
			st[s] += wst[s];
	}
	cJSON_AddItemToObject(o, "workers", ws);
	cJSON_AddNumberToObject(o, "channels", d->channels_open);
	cJSON_AddNumberToObject(o, "channels_total", (double)d->channels_total);
	cJSON_AddNumberToObject(o, "requests_served", (double)served);
	for (int s = 0; s < QV_STATUS_COUNT; s++)
		cJSON_AddNumberToObject(tot, status_names[s], (double)st[s]);
	cJSON_AddItemToObject(o, "statuses", tot);
	cJSON_AddNumberToObject(o, "models_loaded", qv_daemon_models_ready(d));
	cJSON_AddNumberToObject(o, "models_failed", d->reg.n - qv_daemon_models_ready(d));
	cJSON_AddNumberToObject(o, "tsc_hz", (double)d->tsc_hz);
	add_udp(o, d);
	return o;
}

static cJSON *shape_array(const int64_t *s, uint32_t rank)
{
	cJSON *a = cJSON_CreateArray();

	for (uint32_t i = 0; a && i < rank && i < QV_MAX_RANK; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber((double)s[i]));
	return a;
}

uint32_t qv_daemon_models_ready(const struct qv_daemon *d)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < d->reg.n; i++)
		n += qv_route_version(&d->reg.routes[i], d->reg.routes[i].primary) != NULL;
	return n;
}

static const char *role_of(const struct qv_route *r, uint32_t v)
{
	const char *role = qv_route_role(r, v);

	return role ? role : "loaded";
}

static void add_failed(cJSON *ms, const struct qv_route *r)
{
	cJSON *m = cJSON_CreateObject();

	if (!m)
		return;
	cJSON_AddStringToObject(m, "name", r->name);
	cJSON_AddNumberToObject(m, "handle", r->handle);
	cJSON_AddNumberToObject(m, "version", 0);
	cJSON_AddStringToObject(m, "state", "failed");
	cJSON_AddNullToObject(m, "role");
	cJSON_AddNullToObject(m, "in_shape");
	cJSON_AddNullToObject(m, "out_shape");
	cJSON_AddNullToObject(m, "max_batch");
	cJSON_AddStringToObject(m, "error", r->error);
	cJSON_AddItemToArray(ms, m);
}

/*
 * A version's precision: what was asked, what it serves and the guard's
 * measured error ("max_abs_error" etc. only when a reduced plan was
 * checked), and why a reduced request serves fp32.
 */
void qv_precision_json(cJSON *e, const struct qv_precision_report *p)
{
	cJSON_AddStringToObject(e, "precision", p->served[0] ? p->served : "fp32");
	cJSON_AddStringToObject(e, "precision_requested", qv_precision_name(p->requested));
	if (p->checked) {
		cJSON_AddNumberToObject(e, "max_abs_error", p->max_abs);
		cJSON_AddNumberToObject(e, "max_rel_error", p->max_rel);
		if (p->top1 >= 0)
			cJSON_AddNumberToObject(e, "top1_agreement", p->top1);
		cJSON_AddNumberToObject(e, "golden_rows", p->golden_rows);
		cJSON_AddStringToObject(e, "golden", p->golden_given ? "golden.npy" : "generated");
		cJSON_AddNumberToObject(e, "tolerance_abs", p->tol_abs);
		cJSON_AddNumberToObject(e, "tolerance_rel", p->tol_rel);
	}
	if (p->reason[0])
		cJSON_AddStringToObject(e, "precision_note", p->reason);
}

/* The most text of one version's qv_model_describe() shown by models --plan. */
#define QV_PLAN_TEXT_MAX (64u * 1024u)

/* One step of an MLP plan: what it computes and, for a dense step, the
 * kernel each batch bucket runs on and its precision. */
static cJSON *plan_step_json(const struct qv_plan_step *p)
{
	cJSON *s = cJSON_CreateObject(), *ks;

	if (!s)
		return NULL;
	cJSON_AddStringToObject(s, "kind", p->kind);
	cJSON_AddStringToObject(s, "label", p->label);
	cJSON_AddNumberToObject(s, "in", p->in_w);
	cJSON_AddNumberToObject(s, "out", p->out_w);
	if (strcmp(p->kind, "dense") != 0)
		return s;
	cJSON_AddStringToObject(s, "activation", p->act[0] ? p->act : "none");
	cJSON_AddStringToObject(s, "precision", p->precision);
	cJSON_AddNumberToObject(s, "folded", p->n_folded);
	ks = cJSON_AddArrayToObject(s, "kernels");
	for (uint32_t b = 0; ks && b < p->n_buckets; b++) {
		cJSON *k = cJSON_CreateObject();
		if (!k)
			break;
		cJSON_AddNumberToObject(k, "rows", (double)(1u << b));
		cJSON_AddStringToObject(k, "kernel", p->hand[b] ? "hand" : "onednn");
		cJSON_AddItemToArray(ks, k);
	}
	return s;
}

/*
 * A version's compiled plan (models --plan): "steps", the MLP plan's steps
 * (null for a model kind without one: trees, graphs, ensembles), and
 * "text", the runtime's own description a line each, for every kind.
 */
static cJSON *plan_json(const qv_model *m)
{
	cJSON *p = cJSON_CreateObject(), *lines;
	struct qv_plan_step *steps = NULL;
	uint32_t n = 0;
	char *text;
	int r;

	if (!p)
		return NULL;
	r = qv_model_plan(m, NULL, 0, &n);
	if (r == -ENOBUFS) {
		steps = calloc(n, sizeof(*steps));
		r = steps ? qv_model_plan(m, steps, n, &n) : -ENOMEM;
	}
	if (r == 0) {
		cJSON *sa = cJSON_AddArrayToObject(p, "steps");
		for (uint32_t i = 0; sa && i < n; i++)
			cJSON_AddItemToArray(sa, plan_step_json(&steps[i]));
	} else {
		cJSON_AddNullToObject(p, "steps");
	}
	free(steps);
	lines = cJSON_AddArrayToObject(p, "text");
	text = malloc(QV_PLAN_TEXT_MAX);
	if (lines && text) {
		/* A description cut at the limit still shows its first lines. */
		qv_model_describe(m, text, QV_PLAN_TEXT_MAX);
		text[QV_PLAN_TEXT_MAX - 1] = '\0';
		for (char *line = text, *nl; *line; line = nl + 1) {
			nl = strchr(line, '\n');
			if (nl)
				*nl = '\0';
			if (*line)
				cJSON_AddItemToArray(lines, cJSON_CreateString(line));
			if (!nl)
				break;
		}
	}
	free(text);
	return p;
}

/* One entry per loaded version (with its role), one per route that has none;
 * with `plan`, each version's compiled plan too. */
static cJSON *cmd_models(struct qv_daemon *d, bool plan)
{
	cJSON *o = cJSON_CreateObject(), *ms = cJSON_CreateArray();

	if (!o || !ms) {
		cJSON_Delete(o);
		cJSON_Delete(ms);
		return NULL;
	}
	for (uint32_t i = 0; i < d->reg.n; i++) {
		const struct qv_route *r = &d->reg.routes[i];

		if (!r->primary)
			add_failed(ms, r);
		for (uint32_t k = 0; k < r->nvers; k++) {
			const struct qv_version *v = r->vers[k];
			cJSON *m = cJSON_CreateObject();

			if (!m)
				continue;
			cJSON_AddStringToObject(m, "name", r->name);
			cJSON_AddNumberToObject(m, "handle", r->handle);
			cJSON_AddNumberToObject(m, "version", v->version);
			cJSON_AddStringToObject(m, "state", "ready");
			cJSON_AddStringToObject(m, "role", role_of(r, v->version));
			cJSON_AddItemToObject(m, "in_shape", shape_array(v->info.in_shape, v->info.in_rank));
			cJSON_AddItemToObject(m, "out_shape",
					      shape_array(v->info.out_shape, v->info.out_rank));
			cJSON_AddNumberToObject(m, "max_batch", v->max_batch);
			cJSON_AddNullToObject(m, "error");
			cJSON_AddNumberToObject(m, "default_deadline_us",
						(double)(v->default_deadline_ns / 1000u));
			cJSON_AddNumberToObject(m, "max_queue_delay_us", v->queue_delay_us);
			cJSON_AddNumberToObject(m, "preferred_batch", v->preferred_batch);
			cJSON_AddNumberToObject(m, "load_ms", v->load_ms);
			qv_predlog_json_route(d, m, r->handle);
			qv_precision_json(m, &v->prec);
			if (plan)
				cJSON_AddItemToObject(m, "plan", plan_json(v->model));
			cJSON_AddItemToArray(ms, m);
		}
	}
	cJSON_AddItemToObject(o, "models", ms);
	return o;
}

static cJSON *error_obj(const char *msg)
{
	cJSON *o = cJSON_CreateObject();

	if (o)
		cJSON_AddStringToObject(o, "error", msg);
	return o;
}

static int is_mutating(const char *cmd)
{
	static const char *const m[] = { "load", "unload", "swap", "canary", "shadow",
					 "promote", "rollback", "fallback", "failpoint", "drain", "log" };

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (strcmp(cmd, m[i]) == 0)
			return 1;
	return 0;
}

int qv_cmd_handle(struct qv_daemon *d, const char *json, size_t len, int admin,
		  char **ret_reply, int32_t *ret_status)
{
	cJSON *req = cJSON_ParseWithLength(json, len), *rep = NULL;
	const cJSON *cmd = NULL;
	int32_t status = 0;
	char *text;

	if (req && cJSON_IsObject(req))
		cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
	if (!req || !cJSON_IsObject(req)) {
		rep = error_obj("request is not a JSON object");
		status = -EINVAL;
	} else if (!cJSON_IsString(cmd)) {
		rep = error_obj("missing \"cmd\" string");
		status = -EINVAL;
	} else if (is_mutating(cmd->valuestring) && !admin) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%s: needs root, the daemon's uid or an --admin-gid group",
			 cmd->valuestring);
		rep = error_obj(msg);
		status = -EPERM;
	} else if (strcmp(cmd->valuestring, "status") == 0) {
		rep = cmd_status(d);
	} else if (strcmp(cmd->valuestring, "models") == 0) {
		const cJSON *plan = cJSON_GetObjectItemCaseSensitive(req, "plan");
		if (plan && !cJSON_IsBool(plan)) {
			rep = error_obj("models: \"plan\" must be true or false");
			status = -EINVAL;
		} else {
			rep = cmd_models(d, cJSON_IsTrue(plan));
		}
	} else if (strcmp(cmd->valuestring, "log") == 0) {
		rep = qv_predlog_cmd(d, req, &status);
	} else if (strcmp(cmd->valuestring, "drain") == 0) {
		d->drain_requested = 1;
		rep = cJSON_CreateObject();
		if (rep)
			cJSON_AddStringToObject(rep, "state", "draining");
	} else {
		void *r = NULL;
		int rc = qv_route_cmd(d, cmd->valuestring, req, &r, &status);
		if (rc == 1) {
			cJSON_Delete(req);
			return 1;
		}
		if (rc < 0) {
			char msg[128];
			snprintf(msg, sizeof(msg), "unknown command '%.64s'", cmd->valuestring);
			rep = error_obj(msg);
			status = -EINVAL;
		} else {
			rep = r;
		}
	}
	cJSON_Delete(req);
	if (!rep)
		return -ENOMEM;
	text = cJSON_PrintUnformatted(rep);
	cJSON_Delete(rep);
	if (!text)
		return -ENOMEM;
	*ret_reply = text;
	*ret_status = status;
	return 0;
}
