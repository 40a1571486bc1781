/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_apply.c - libFuzzer target for routes.yaml (ctl/apply.c), the file
 * an operator (or a ConfigMap edit) hands to `quiverctl apply`: parsed,
 * checked against a fixed `routes` reply, diffed. Besides not crashing: a
 * refusal always prints at least one message; an accepted spec has unique,
 * non-empty names, shares in 1..1000000 ppm wherever a role is set, a
 * trigger wherever a fallback is set, and no role on the file's primary;
 * a spec that passes the checks diffs, and every command the diff builds
 * is accepted by quiverd's own argument parser (dataplane/cmd_args.c).
 * Built with -Dfuzz=true (clang -fsanitize=fuzzer); otherwise linked with
 * tests/udp/fuzz_replay.c and run over corpus_apply/ as a unit test.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "apply.h"
#include "cmd_args.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char routes_json[] =
	"{\"routes\":["
	"{\"name\":\"trade-mlp\",\"primary\":2,\"previous\":1,"
	" \"canary\":{\"version\":3,\"ppm\":100000,\"sticky\":false},\"shadow\":null,"
	" \"fallback\":{\"on\":[\"error\"],\"version\":1,\"manual\":false},"
	" \"versions\":[{\"version\":1},{\"version\":2},{\"version\":3},{\"version\":4}]},"
	"{\"name\":\"m\",\"primary\":1,\"canary\":null,\"shadow\":null,\"fallback\":null,"
	" \"versions\":[{\"version\":1},{\"version\":2}]}]}";

static void check_spec(const struct apply_spec *s)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct apply_model *m = &s->models[i];
		const struct apply_route *w = &m->want;
		size_t len = strnlen(m->name, sizeof(m->name));
		if (len == 0 || len == sizeof(m->name))
			abort();
		for (size_t k = 0; k < i; k++)
			if (strcmp(s->models[k].name, m->name) == 0)
				abort();
		if ((w->canary && (w->canary_ppm == 0 || w->canary_ppm > 1000000)) ||
		    (w->shadow && (w->shadow_ppm == 0 || w->shadow_ppm > 1000000)) ||
		    (w->fallback && !w->fb_on))
			abort();
		if (w->primary && (w->canary == w->primary || w->shadow == w->primary ||
				   w->fallback == w->primary))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cJSON *routes;
	struct apply_spec s;
	struct apply_plan p;
	char *msgs = NULL;
	size_t mlen = 0;

	if (!routes)
		routes = cJSON_Parse(routes_json);
	FILE *err = open_memstream(&msgs, &mlen);
	if (!err || !routes)
		abort();
	int rc = apply_parse("f.yaml", (const char *)data, size, &s, err);
	fflush(err);
	if (rc < 0 && mlen == 0)
		abort();        /* refused without saying why */
	if (rc == 0) {
		check_spec(&s);
		for (int allow = 0; allow < 2; allow++) {
			if (apply_check(&s, routes, allow, err))
				continue;
			FILE *out = fopen("/dev/null", "w");
			if (!out || apply_diff(&s, routes, allow, &p, out) < 0)
				abort();
			fclose(out);
			for (size_t i = 0; i < p.n; i++) {
				struct qv_cmd_args a;
				char why[256];
				cJSON *req = cJSON_Parse(p.steps[i].request);
				const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
				if (!cJSON_IsString(cmd) ||
				    qv_cmd_args_parse(qv_cmd_kind_of(cmd->valuestring), req, &a, why,
						      sizeof(why)) < 0)
					abort();
				cJSON_Delete(req);
			}
			apply_plan_free(&p);
		}
		apply_spec_free(&s);
	}
	fclose(err);
	free(msgs);
	return 0;
}
