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
};

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
	int failures = 0, rendered = 0;
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
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		rendered += run_one(hostile[i], ctl_render_status);
		rendered += run_one(hostile[i], ctl_render_models);
	}
	for (int k = 0; k < 2; k++) {
		char *b = big_reply(k);
		rendered += run_one(b, ctl_render_status);
		rendered += run_one(b, ctl_render_models);
		free(b);
	}
	/* Seeded byte mutations of the good replies: whatever still parses
	 * must render without harm. */
	srand(42);
	for (int it = 0; it < 20000; it++) {
		const char *src = it & 1 ? good_models : good_status;
		char buf[512];
		size_t n = strlen(src);
		memcpy(buf, src, n + 1);
		for (int m = 0; m < 1 + rand() % 4; m++)
			buf[rand() % n] = (char)(rand() % 2 ? "{}[],:\"0-e.9nul"[rand() % 15]
							    : rand() % 256);
		rendered += run_one(buf, it & 1 ? ctl_render_models : ctl_render_status);
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
					    "trade-mlp", "[-1,32]", "256" };
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
