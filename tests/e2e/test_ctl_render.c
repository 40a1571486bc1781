/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ctl_render.c - quiverctl's human views fed replies a broken or
 * hostile daemon could send: missing fields, wrong types, huge and
 * negative numbers, long names, shapes of 1000 dims, many workers, and
 * seeded random byte mutations of good replies. Nothing may crash or read
 * out of bounds (CI runs this under ASan/UBSan); the good replies must
 * still render their key values, checked in the captured output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ctl.h"

static const char good_status[] =
	"{\"state\":\"running\",\"uptime_s\":90061,\"workers\":[{\"id\":0,\"core\":1,"
	"\"numa_node\":0,\"channels\":2,\"requests\":77,\"busy_cycles\":1,\"idle_cycles\":1}],"
	"\"channels\":2,\"requests_served\":77,\"models_loaded\":3,\"models_failed\":1}";
static const char good_models[] =
	"{\"models\":[{\"name\":\"trade-mlp\",\"handle\":0,\"version\":2,\"state\":\"ready\","
	"\"in_shape\":[-1,32],\"out_shape\":[-1,1],\"max_batch\":256,\"error\":null}]}";

static const char good_routes[] =
	"{\"routes\":[{\"name\":\"trade-mlp\",\"handle\":2,\"primary\":2,\"previous\":1,"
	"\"canary\":{\"version\":3,\"ppm\":125000,\"sticky\":true},\"shadow\":{\"version\":4,"
	"\"ppm\":1000000},\"fallback\":{\"version\":1,\"on\":[\"error\",\"deadline\"],"
	"\"manual\":false},\"versions\":[{\"version\":1,\"state\":\"ready\"}]}]}";
static const char good_stats[] =
	"{\"routes\":[{\"name\":\"trade-mlp\",\"versions\":[{\"version\":2,\"requests\":500,"
	"\"ok\":498,\"canary\":0,\"shadow\":3,\"shadow_disagree\":1,\"fallback\":2,"
	"\"p50_ns\":2500,\"p99_ns\":7000,\"p999_ns\":123456}]}]}";
static const char good_swap[] = "{\"name\":\"trade-mlp\",\"primary\":5,\"previous\":4}";

static void (*const renders[])(const cJSON *) = {
	ctl_render_status, ctl_render_models, ctl_render_routes, ctl_render_route,
	ctl_render_load,   ctl_render_swap,   ctl_render_state,  ctl_render_metrics,
	ctl_render_stats,
};
#define NRENDERS (sizeof(renders) / sizeof(renders[0]))

static const char *const hostile[] = {
	"{}",
	"[]",
	"null",
	"{\"workers\":{}}",
	"{\"workers\":[1,2,\"x\",null,[]]}",
	"{\"workers\":[{\"busy_cycles\":-5,\"idle_cycles\":-7}]}",
	"{\"workers\":[{\"busy_cycles\":0,\"idle_cycles\":0}]}",
	"{\"workers\":[{\"busy_cycles\":1e308,\"idle_cycles\":1e308}]}",
	"{\"uptime_s\":1e300,\"state\":7,\"channels\":\"many\"}",
	"{\"uptime_s\":-1,\"requests_served\":-1e300}",
	"{\"models\":null}",
	"{\"models\":{}}",
	"{\"models\":[null,1,\"x\",[],{}]}",
	"{\"models\":[{\"name\":5,\"in_shape\":\"x\",\"out_shape\":{},\"error\":[]}]}",
	"{\"models\":[{\"in_shape\":[null,\"a\",[],1e300,-1e300]}]}",
	"{\"models\":[{\"name\":\"m\",\"plan\":{\"steps\":[null,1,{\"kernels\":[null,"
	"{\"rows\":-1},{\"rows\":1e300,\"kernel\":\"hand\"},{\"rows\":1e300,\"kernel\":\"x\"},"
	"{\"rows\":2,\"kernel\":5}]}],\"text\":[1,null]}}]}",
	"{\"models\":[{\"plan\":{\"steps\":{},\"text\":[\"a\",5,{}]}},{\"plan\":[]},"
	"{\"plan\":{\"steps\":[{\"kind\":[],\"label\":7,\"kernels\":\"x\"}]}}]}",
	"{\"routes\":null}",
	"{\"routes\":[null,1,[],{}]}",
	"{\"routes\":[{\"canary\":1,\"shadow\":[],\"fallback\":\"x\",\"versions\":{}}]}",
	"{\"routes\":[{\"canary\":{\"ppm\":1e300},\"fallback\":{\"on\":[1,null,{}],\"manual\":1}}]}",
	"{\"routes\":[{\"versions\":[null,{\"versions\":[]}]}]}",
	"{\"canary\":{},\"shadow\":{},\"fallback\":{\"on\":{}}}",
	"{\"text\":5}",
	"{\"text\":\"\"}",
	"{\"load_ms\":\"x\",\"state\":[]}",
	"{\"primary\":-1e300,\"previous\":{}}",
	"{\"routes\":[{\"versions\":[{\"requests\":1e300,\"ok\":-1e300,\"p999_ns\":\"x\"}]}]}",
};

/* The argument parsers of the control-plane commands, edge by edge. */
static int parsers(void)
{
	static const struct {
		const char *s;
		int ok;
		uint32_t ppm;
	} pc[] = {
		{ "0", 1, 0 },       { "100", 1, 1000000 }, { "10", 1, 100000 },
		{ "0.5", 1, 5000 },  { "0.0001", 1, 1 },    { "99.9999", 1, 999999 },
		{ "100.0", 1, 1000000 }, { "007", 1, 70000 },
		{ "100.0001", 0, 0 }, { "101", 0, 0 },      { "1000", 0, 0 },
		{ "-1", 0, 0 },      { "+1", 0, 0 },        { "1e1", 0, 0 },
		{ "0x10", 0, 0 },    { "nan", 0, 0 },       { "inf", 0, 0 },
		{ "", 0, 0 },        { ".", 0, 0 },         { ".5", 0, 0 },
		{ "5.", 0, 0 },      { "1.00001", 0, 0 },   { "1 ", 0, 0 },
		{ "1,5", 0, 0 },
	};
	int failures = 0;
	for (size_t i = 0; i < sizeof(pc) / sizeof(pc[0]); i++) {
		uint32_t ppm = 777;
		int r = ctl_parse_percent(pc[i].s, &ppm);
		if ((r == 0) != pc[i].ok || (pc[i].ok && ppm != pc[i].ppm) ||
		    (!pc[i].ok && ppm != 777)) {
			fprintf(stderr, "FAIL: percent '%s': r %d ppm %u\n", pc[i].s, r, ppm);
			failures++;
		}
	}
	static const struct {
		const char *s;
		bool zero;
		int ok;
		uint32_t v;
	} vc[] = {
		{ "1", false, 1, 1 },  { "4294967295", false, 1, 4294967295u },
		{ "0", false, 0, 0 },  { "0", true, 1, 0 },     { "4294967296", false, 0, 0 },
		{ "-1", true, 0, 0 },  { "1a", false, 0, 0 },   { "", true, 0, 0 },
		{ "99999999999", false, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(vc) / sizeof(vc[0]); i++) {
		uint32_t v = 777;
		int r = ctl_parse_version(vc[i].s, vc[i].zero, &v);
		if ((r == 0) != vc[i].ok || (vc[i].ok && v != vc[i].v)) {
			fprintf(stderr, "FAIL: version '%s': r %d v %u\n", vc[i].s, r, v);
			failures++;
		}
	}
	return failures;
}

static int run_one(const char *json, void (*render)(const cJSON *))
{
	cJSON *j = cJSON_Parse(json);
	if (!j)
		return 0;
	render(j);
	cJSON_Delete(j);
	return 1;
}

static char *big_reply(int kind)
{
	/* 1000-dim shapes, a 5000-char name, 500 workers. */
	size_t cap = 1 << 20, n = 0;
	char *b = malloc(cap);
	if (!b)
		exit(1);
	if (kind == 0) {
		n += (size_t)snprintf(b + n, cap - n, "{\"models\":[{\"name\":\"");
		for (int i = 0; i < 5000; i++)
			b[n++] = 'n';
		n += (size_t)snprintf(b + n, cap - n, "\",\"in_shape\":[");
		for (int i = 0; i < 1000; i++)
			n += (size_t)snprintf(b + n, cap - n, "%s%d", i ? "," : "", -123456789);
		n += (size_t)snprintf(b + n, cap - n, "]}]}");
	} else {
		n += (size_t)snprintf(b + n, cap - n, "{\"workers\":[");
		for (int i = 0; i < 500; i++)
			n += (size_t)snprintf(b + n, cap - n,
					      "%s{\"id\":%d,\"busy_cycles\":%d,\"idle_cycles\":1}",
					      i ? "," : "", i, i);
		n += (size_t)snprintf(b + n, cap - n, "]}");
	}
	return b;
}

int main(void)
{
	int failures = parsers(), rendered = 0;
	char path[] = "/tmp/qv-render-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0) {
		perror("mkstemp");
		return 1;
	}
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	dup2(fd, STDOUT_FILENO);

	rendered += run_one(good_status, ctl_render_status);
	rendered += run_one(good_models, ctl_render_models);
	rendered += run_one(good_routes, ctl_render_routes);
	rendered += run_one(good_stats, ctl_render_stats);
	rendered += run_one(good_swap, ctl_render_swap);
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
		for (size_t k = 0; k < NRENDERS; k++)
			rendered += run_one(hostile[i], renders[k]);
	for (int k = 0; k < 2; k++) {
		char *b = big_reply(k);
		for (size_t r = 0; r < NRENDERS; r++)
			rendered += run_one(b, renders[r]);
		free(b);
	}
	/* Seeded byte mutations of the good replies: whatever still parses
	 * must render without harm. */
	srand(42);
	static const char *const goods[] = { good_status, good_models, good_routes, good_stats,
					      good_swap };
	for (int it = 0; it < 40000; it++) {
		const char *src = goods[it % 5];
		char buf[1024];
		size_t n = strlen(src);
		memcpy(buf, src, n + 1);
		for (int m = 0; m < 1 + rand() % 4; m++)
			buf[rand() % n] = (char)(rand() % 2 ? "{}[],:\"0-e.9nul"[rand() % 15]
							    : rand() % 256);
		rendered += run_one(buf, renders[(size_t)rand() % NRENDERS]);
	}
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);

	/* The good replies' key values are in the output. */
	static char out[1 << 16];
	FILE *f = fopen(path, "r");
	size_t got = f ? fread(out, 1, sizeof(out) - 1, f) : 0;
	out[got] = '\0';
	if (f)
		fclose(f);
	static const char *const want[] = { "running", "1d 1h 1m", "50.0%", "3 loaded, 1 failed",
					    "trade-mlp", "[-1,32]", "256", "3@12.5% sticky", "4@100%",
					    "1 on error,deadline", "123.5", "primary 5 (previous 4" };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(out, want[i])) {
			fprintf(stderr, "FAIL: '%s' not in the rendered output\n", want[i]);
			failures++;
		}
	close(fd);
	unlink(path);
	printf("%d replies rendered\n%s\n", rendered, failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
