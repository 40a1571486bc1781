/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_views.c - the human views of the control-plane replies: routes (one
 * row a route: primary, previous, canary, shadow, fallback), stats (one row
 * a version), the one-line answers of load/unload/swap/drain, and the
 * Prometheus text of metrics. Like ctl_cmds.c, every field is read
 * defensively: missing or mistyped prints "-".
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ctl.h"

static const cJSON *item(const cJSON *o, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(o, key);
}

static const char *str_or(const cJSON *o, const char *key, const char *dflt)
{
	const cJSON *v = item(o, key);
	return cJSON_IsString(v) ? v->valuestring : dflt;
}

static void num(char *buf, size_t cap, const cJSON *o, const char *key)
{
	const cJSON *v = item(o, key);
	if (cJSON_IsNumber(v))
		snprintf(buf, cap, "%.0f", v->valuedouble);
	else
		snprintf(buf, cap, "-");
}

/* Parts per million as the percentage the operator typed. */
static void pct(char *buf, size_t cap, const cJSON *o)
{
	const cJSON *v = item(o, "ppm");
	if (cJSON_IsNumber(v))
		snprintf(buf, cap, "%g%%", v->valuedouble / 10000.0);
	else
		snprintf(buf, cap, "?%%");
}

static void fmt_canary(char *buf, size_t cap, const cJSON *c)
{
	char v[32], p[32];
	if (!cJSON_IsObject(c)) {
		snprintf(buf, cap, "-");
		return;
	}
	num(v, sizeof(v), c, "version");
	pct(p, sizeof(p), c);
	snprintf(buf, cap, "%s@%s%s", v, p, cJSON_IsTrue(item(c, "sticky")) ? " sticky" : "");
}

static void fmt_shadow(char *buf, size_t cap, const cJSON *s)
{
	char v[32], p[32];
	if (!cJSON_IsObject(s)) {
		snprintf(buf, cap, "-");
		return;
	}
	num(v, sizeof(v), s, "version");
	pct(p, sizeof(p), s);
	snprintf(buf, cap, "%s@%s", v, p);
}

static void fmt_fallback(char *buf, size_t cap, const cJSON *f)
{
	char v[32];
	if (!cJSON_IsObject(f)) {
		snprintf(buf, cap, "-");
		return;
	}
	num(v, sizeof(v), f, "version");
	size_t n = (size_t)snprintf(buf, cap, "%s", v);
	if (cJSON_IsTrue(item(f, "manual")) && n < cap)
		n += (size_t)snprintf(buf + n, cap - n, " manual");
	const cJSON *t, *on = item(f, "on");
	const char *sep = " on ";
	cJSON_ArrayForEach(t, on) {
		if (!cJSON_IsString(t) || n >= cap)
			continue;
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", sep, t->valuestring);
		sep = ",";
	}
}

/* "1:ready,2:ready" */
static void fmt_versions(char *buf, size_t cap, const cJSON *vs)
{
	size_t n = 0;
	const cJSON *v;
	buf[0] = '\0';
	cJSON_ArrayForEach(v, vs) {
		char ver[32];
		if (n >= cap)
			break;
		num(ver, sizeof(ver), v, "version");
		n += (size_t)snprintf(buf + n, cap - n, "%s%s:%s", n ? "," : "", ver,
				      str_or(v, "state", "?"));
	}
	if (!buf[0])
		snprintf(buf, cap, "-");
}

static void route_row(struct ctl_table *t, const cJSON *r)
{
	char handle[32], prim[32], prev[32], can[96], sha[96], fb[128], vers[512];
	num(handle, sizeof(handle), r, "handle");
	num(prim, sizeof(prim), r, "primary");
	num(prev, sizeof(prev), r, "previous");
	fmt_canary(can, sizeof(can), item(r, "canary"));
	fmt_shadow(sha, sizeof(sha), item(r, "shadow"));
	fmt_fallback(fb, sizeof(fb), item(r, "fallback"));
	fmt_versions(vers, sizeof(vers), item(r, "versions"));
	const char *row[] = { str_or(r, "name", "-"), handle, prim, prev, can, sha, fb, vers };
	ctl_table_add(t, row);
}

static struct ctl_table *route_table(void)
{
	static const char *const head[] = { "NAME",   "HANDLE", "PRIMARY",  "PREVIOUS",
					    "CANARY", "SHADOW", "FALLBACK", "VERSIONS" };
	struct ctl_table *t = ctl_table_new(8);
	ctl_table_add(t, head);
	return t;
}

void ctl_render_routes(const cJSON *reply)
{
	const cJSON *routes = item(reply, "routes"), *r;
	if (!cJSON_IsArray(routes) || cJSON_GetArraySize(routes) == 0) {
		puts("no routes");
		return;
	}
	struct ctl_table *t = route_table();
	cJSON_ArrayForEach(r, routes)
		route_row(t, r);
	ctl_table_print(t);
	ctl_table_free(t);
}

/* canary, shadow, promote, rollback, fallback answer with the new route. */
void ctl_render_route(const cJSON *reply)
{
	struct ctl_table *t = route_table();
	route_row(t, reply);
	ctl_table_print(t);
	ctl_table_free(t);
}

void ctl_render_load(const cJSON *reply)
{
	char v[32];
	num(v, sizeof(v), reply, "version");
	const cJSON *ms = item(reply, "load_ms");
	printf("%s/%s %s", str_or(reply, "name", "-"), v, str_or(reply, "state", "-"));
	if (cJSON_IsNumber(ms))
		printf(" (loaded and warmed in %.1f ms)", ms->valuedouble);
	putchar('\n');
}

void ctl_render_swap(const cJSON *reply)
{
	char p[32], o[32];
	num(p, sizeof(p), reply, "primary");
	num(o, sizeof(o), reply, "previous");
	printf("%s: primary %s (previous %s, kept warm for rollback)\n",
	       str_or(reply, "name", "-"), p, o);
}

void ctl_render_state(const cJSON *reply)
{
	puts(str_or(reply, "state", "-"));
}

void ctl_render_metrics(const cJSON *reply)
{
	const char *text = str_or(reply, "text", "");
	fputs(text, stdout);
	if (text[0] && text[strlen(text) - 1] != '\n')
		putchar('\n');
}

/* Service times arrive in ns; microseconds read best at this scale. */
static void us(char *buf, size_t cap, const cJSON *o, const char *key)
{
	const cJSON *v = item(o, key);
	if (cJSON_IsNumber(v))
		snprintf(buf, cap, "%.1f", v->valuedouble / 1000.0);
	else
		snprintf(buf, cap, "-");
}

void ctl_render_stats(const cJSON *reply)
{
	const cJSON *routes = item(reply, "routes"), *r;
	if (!cJSON_IsArray(routes) || cJSON_GetArraySize(routes) == 0) {
		puts("no routes");
		return;
	}
	static const char *const head[] = { "NAME",     "VERSION",  "REQUESTS", "OK",
					    "ERRORS",   "CANARY",   "SHADOW",   "DISAGREE",
					    "MAX_DIFF", "FALLBACK", "P50_US",   "P99_US",
					    "P99.9_US" };
	struct ctl_table *t = ctl_table_new(13);
	ctl_table_add(t, head);
	cJSON_ArrayForEach(r, routes) {
		const cJSON *v;
		cJSON_ArrayForEach(v, item(r, "versions")) {
			char ver[32], req[32], ok[32], err[32], can[32], sha[32], dis[32], fb[32],
				p50[32], p99[32], p999[32], mdiff[32];
			num(ver, sizeof(ver), v, "version");
			num(req, sizeof(req), v, "requests");
			num(ok, sizeof(ok), v, "ok");
			const cJSON *rq = item(v, "requests"), *k = item(v, "ok");
			if (cJSON_IsNumber(rq) && cJSON_IsNumber(k))
				snprintf(err, sizeof(err), "%.0f", rq->valuedouble - k->valuedouble);
			else
				snprintf(err, sizeof(err), "-");
			num(can, sizeof(can), v, "canary");
			num(sha, sizeof(sha), v, "shadow");
			num(dis, sizeof(dis), v, "shadow_disagree");
			num(fb, sizeof(fb), v, "fallback");
			/* a shadow's largest |difference| from the answers given */
			const cJSON *md = item(v, "shadow_max_abs_diff"), *ns = item(v, "shadow");
			if (cJSON_IsNumber(md) && cJSON_IsNumber(ns) && ns->valuedouble > 0)
				snprintf(mdiff, sizeof(mdiff), "%.2g", md->valuedouble);
			else
				snprintf(mdiff, sizeof(mdiff), "-");
			us(p50, sizeof(p50), v, "p50_ns");
			us(p99, sizeof(p99), v, "p99_ns");
			us(p999, sizeof(p999), v, "p999_ns");
			const char *row[] = { str_or(r, "name", "-"), ver, req, ok, err, can,
					      sha, dis, mdiff, fb, p50, p99, p999 };
			ctl_table_add(t, row);
		}
	}
	ctl_table_print(t);
	ctl_table_free(t);
	/* The prediction log: one line under the table. */
	const cJSON *pl = item(reply, "predlog");
	if (cJSON_IsObject(pl)) {
		char smp[32], drp[32], wr[32], we[32];
		num(smp, sizeof(smp), pl, "sampled");
		num(drp, sizeof(drp), pl, "dropped");
		num(wr, sizeof(wr), pl, "written");
		num(we, sizeof(we), pl, "write_errors");
		printf("predlog: sampled %s, dropped %s, written %s, write errors %s\n", smp, drp, wr,
		       we);
	}
}
