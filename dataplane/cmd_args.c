/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_args.c - argument validation of the routing commands. */
#include "cmd_args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "route_pick.h"

static const struct {
	const char *name;
	enum qv_cmd_kind kind;
} kinds[] = {
	{ "load", QV_CMD_LOAD }, { "unload", QV_CMD_UNLOAD }, { "swap", QV_CMD_SWAP },
	{ "canary", QV_CMD_CANARY }, { "shadow", QV_CMD_SHADOW }, { "promote", QV_CMD_PROMOTE },
	{ "rollback", QV_CMD_ROLLBACK }, { "fallback", QV_CMD_FALLBACK },
	{ "failpoint", QV_CMD_FAILPOINT },
};

enum qv_cmd_kind qv_cmd_kind_of(const char *cmd)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].name, cmd) == 0)
			return kinds[i].kind;
	return 0;
}

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* An integer-valued JSON number in [lo, hi]. 1 found, 0 absent, -EINVAL bad. */
static int get_uint(const cJSON *o, const char *key, double lo, double hi, uint32_t *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) ||
	    v->valuedouble < lo || v->valuedouble > hi)
		return -EINVAL;
	*ret = (uint32_t)v->valuedouble;
	return 1;
}

/* 1 found (value in *ret), 0 absent, -EINVAL not a boolean. */
static int get_bool(const cJSON *o, const char *key, int *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsBool(v))
		return -EINVAL;
	*ret = cJSON_IsTrue(v);
	return 1;
}

static int parse_triggers(const cJSON *on, uint32_t *ret, char *err, size_t len)
{
	const cJSON *e;
	uint32_t bits = 0;

	if (!cJSON_IsArray(on))
		return fail(err, len, "\"on\" must be an array of triggers");
	cJSON_ArrayForEach(e, on) {
		if (!cJSON_IsString(e))
			return fail(err, len, "fallback trigger is not a string");
		if (strcmp(e->valuestring, "error") == 0)
			bits |= QV_RT_FB_ERROR;
		else if (strcmp(e->valuestring, "deadline") == 0)
			bits |= QV_RT_FB_DEADLINE;
		else if (strcmp(e->valuestring, "nonfinite") == 0)
			bits |= QV_RT_FB_NONFINITE;
		else if (strcmp(e->valuestring, "manual") == 0)
			bits |= QV_RT_FB_MANUAL;
		else
			return fail(err, len,
				    "bad fallback trigger '%.32s' (error, deadline, nonfinite, manual)",
				    e->valuestring);
	}
	*ret = bits;
	return 0;
}

int qv_cmd_args_parse(enum qv_cmd_kind kind, const cJSON *req, struct qv_cmd_args *ret_args,
		      char *err, size_t err_len)
{
	struct qv_cmd_args a;
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "name");
	int need_version = kind == QV_CMD_LOAD || kind == QV_CMD_UNLOAD || kind == QV_CMD_SWAP ||
			   kind == QV_CMD_CANARY || kind == QV_CMD_SHADOW || kind == QV_CMD_FAILPOINT;
	int r;

	memset(&a, 0, sizeof(a));
	a.kind = kind;
	if (!cJSON_IsString(name))
		return fail(err, err_len, "missing \"name\" string");
	if (!qv_repo_name_valid(name->valuestring))
		return fail(err, err_len, "bad model name '%.64s'", name->valuestring);
	snprintf(a.name, sizeof(a.name), "%s", name->valuestring);

	r = get_uint(req, "version", 0, UINT32_MAX, &a.version);
	if (r < 0)
		return fail(err, err_len, "%s: \"version\" must be an integer >= 0", a.name);
	if (need_version && r == 0)
		return fail(err, err_len, "%s: missing \"version\"", a.name);
	if ((kind == QV_CMD_LOAD || kind == QV_CMD_UNLOAD || kind == QV_CMD_SWAP ||
	     kind == QV_CMD_FAILPOINT) && a.version == 0)
		return fail(err, err_len, "%s: version must be >= 1", a.name);

	switch (kind) {
	case QV_CMD_LOAD: {
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "path");
		if (p && !cJSON_IsNull(p)) {
			if (!cJSON_IsString(p) || !p->valuestring[0] ||
			    strlen(p->valuestring) >= sizeof(a.path) - 32)
				return fail(err, err_len, "%s/%u: \"path\" must be a directory name",
					    a.name, a.version);
			snprintf(a.path, sizeof(a.path), "%s", p->valuestring);
		}
		p = cJSON_GetObjectItemCaseSensitive(req, "precision");
		a.precision = -1;
		if (p && !cJSON_IsNull(p)) {
			a.precision = cJSON_IsString(p) ? qv_config_precision(p->valuestring) : -1;
			if (a.precision < 0)
				return fail(err, err_len,
					    "%s/%u: \"precision\" must be \"fp32\", \"bf16\", \"int8\" or \"auto\"",
					    a.name, a.version);
		}
		break;
	}
	case QV_CMD_CANARY:
	case QV_CMD_SHADOW: {
		uint32_t pct = 0;
		int rp = get_uint(req, "ppm", 0, 1000000, &a.ppm);
		int rc = get_uint(req, "percent", 0, 100, &pct);
		if (rp < 0)
			return fail(err, err_len, "%s: \"ppm\" must be an integer in 0..1000000", a.name);
		if (rc < 0)
			return fail(err, err_len, "%s: \"percent\" must be an integer in 0..100", a.name);
		if (rc > 0 && rp == 0)
			a.ppm = pct * 10000u;
		if (rp == 0 && rc == 0) {
			if (a.version != 0 && kind == QV_CMD_CANARY)
				return fail(err, err_len, "%s: missing \"ppm\"", a.name);
			a.ppm = a.version ? 1000000u : 0; /* shadow: mirror everything */
		}
		if (kind == QV_CMD_CANARY && get_bool(req, "sticky", &a.sticky) < 0)
			return fail(err, err_len, "%s: \"sticky\" must be a boolean", a.name);
		break;
	}
	case QV_CMD_FALLBACK: {
		const cJSON *on = cJSON_GetObjectItemCaseSensitive(req, "on");
		if (get_bool(req, "clear", &a.clear) < 0 || get_bool(req, "manual", &a.manual) < 0)
			return fail(err, err_len, "%s: \"clear\" and \"manual\" must be booleans", a.name);
		if (a.clear)
			break;
		if (a.version == 0)
			return fail(err, err_len, "%s: fallback needs \"version\" (or \"clear\":true)",
				    a.name);
		if (on && !cJSON_IsNull(on)) {
			r = parse_triggers(on, &a.on, err, err_len);
			if (r < 0)
				return r;
		}
		if (a.manual)
			a.on |= QV_RT_FB_MANUAL;
		if (!a.on)
			return fail(err, err_len,
				    "%s: fallback needs \"on\":[triggers] or \"manual\":true", a.name);
		break;
	}
	case QV_CMD_FAILPOINT:
		if (get_bool(req, "fail", &a.fail) <= 0)
			return fail(err, err_len, "%s/%u: failpoint needs \"fail\": true or false",
				    a.name, a.version);
		break;
	default:
		break;
	}
	*ret_args = a;
	return 0;
}

cJSON *qv_cmd_fail(int32_t *ret_status, int err, const char *fmt, ...)
{
	cJSON *o = cJSON_CreateObject();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (o)
		cJSON_AddStringToObject(o, "error", msg);
	*ret_status = err;
	return o;
}
