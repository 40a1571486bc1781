/* SPDX-License-Identifier: Apache-2.0 */
/*
 * commands.c - JSON commands on the control socket (status, models).
 * Control thread only. Worker counters are read with relaxed loads: each
 * counter is exact on its own, the set is a snapshot "at about now".
 */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "quiverd.h"

static const char *const status_names[QV_STATUS_COUNT] = {
	"ok", "unknown_model", "bad_shape", "bad_request",
	"deadline_exceeded", "overloaded", "unavailable", "internal",
};

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
		uint64_t req = qv_cnt_get(&w->cnt.requests);

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
		cJSON_AddItemToArray(ws, wo);
		served += req;
		for (int s = 0; s < QV_STATUS_COUNT; s++)
			st[s] += qv_cnt_get(&w->cnt.status[s]);
	}
	cJSON_AddItemToObject(o, "workers", ws);
	cJSON_AddNumberToObject(o, "channels", d->channels_open);
	cJSON_AddNumberToObject(o, "channels_total", (double)d->channels_total);
	cJSON_AddNumberToObject(o, "requests_served", (double)served);
	for (int s = 0; s < QV_STATUS_COUNT; s++)
		cJSON_AddNumberToObject(tot, status_names[s], (double)st[s]);
	cJSON_AddItemToObject(o, "statuses", tot);
	cJSON_AddNumberToObject(o, "models_loaded", d->routes.nready);
	cJSON_AddNumberToObject(o, "models_failed", d->routes.n - d->routes.nready);
	cJSON_AddNumberToObject(o, "tsc_hz", (double)d->tsc_hz);
	return o;
}

static cJSON *shape_array(const int64_t *s, uint32_t rank)
{
	cJSON *a = cJSON_CreateArray();

	for (uint32_t i = 0; a && i < rank && i < QV_MAX_RANK; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber((double)s[i]));
	return a;
}

static cJSON *cmd_models(struct qv_daemon *d)
{
	cJSON *o = cJSON_CreateObject(), *ms = cJSON_CreateArray();

	if (!o || !ms) {
		cJSON_Delete(o);
		cJSON_Delete(ms);
		return NULL;
	}
	for (uint32_t i = 0; i < d->routes.n; i++) {
		const struct qv_route *r = &d->routes.r[i];
		int ready = r->state == QV_ROUTE_READY;
		cJSON *m = cJSON_CreateObject();

		if (!m)
			continue;
		cJSON_AddStringToObject(m, "name", r->name);
		cJSON_AddNumberToObject(m, "handle", r->handle);
		cJSON_AddNumberToObject(m, "version", r->version);
		cJSON_AddStringToObject(m, "state", qv_route_state_name(r->state));
		if (ready) {
			cJSON_AddItemToObject(m, "in_shape", shape_array(r->info.in_shape, r->info.in_rank));
			cJSON_AddItemToObject(m, "out_shape",
					      shape_array(r->info.out_shape, r->info.out_rank));
			cJSON_AddNumberToObject(m, "max_batch", r->max_batch);
			cJSON_AddNullToObject(m, "error");
		} else {
			cJSON_AddNullToObject(m, "in_shape");
			cJSON_AddNullToObject(m, "out_shape");
			cJSON_AddNullToObject(m, "max_batch");
			cJSON_AddStringToObject(m, "error", r->error);
		}
		cJSON_AddNumberToObject(m, "default_deadline_us",
					(double)(r->default_deadline_ns / 1000u));
		cJSON_AddItemToArray(ms, m);
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

int qv_cmd_handle(struct qv_daemon *d, const char *json, size_t len, char **ret_reply,
		  int32_t *ret_status)
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
	} else if (strcmp(cmd->valuestring, "status") == 0) {
		rep = cmd_status(d);
	} else if (strcmp(cmd->valuestring, "models") == 0) {
		rep = cmd_models(d);
	} else {
		char msg[128];
		snprintf(msg, sizeof(msg), "unknown command '%.64s'", cmd->valuestring);
		rep = error_obj(msg);
		status = -EINVAL;
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
