/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_apply.c - `quiverctl apply`'s parser, checks and diff (ctl/apply.h)
 * without a daemon: routes.yaml files written here by hand, in block and
 * flow styles, and each bad one refused with the message (FILE:LINE: key)
 * expected; the checks against a hand-written `routes` reply; the diff's
 * lines and commands against what they must be, and every command it
 * builds parsed by quiverd's own argument parser (dataplane/cmd_args.c),
 * whose result must be the route the file declares.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "apply.h"
#include "cmd_args.h"
#include "route_pick.h"

static int failures;

#define CHECK(cond, ...)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                 \
			fputc('\n', stderr);                                          \
			failures++;                                                   \
		}                                                                     \
	} while (0)

/* Parses text as "r.yaml"; returns rc, messages in *msgs (free it). */
static int parse(const char *text, struct apply_spec *s, char **msgs)
{
	size_t len;
	FILE *f = open_memstream(msgs, &len);
	int rc = apply_parse("r.yaml", text, strlen(text), s, f);
	fclose(f);
	return rc;
}

static void good_files(void)
{
	const char *block =
		"# routes of the fleet\n"
		"models:\n"
		"  trade-mlp:\n"
		"    primary: 2\n"
		"    canary:\n"
		"      version: 3\n"
		"      percent: 12.5\n"
		"      sticky: true\n"
		"    shadow:\n"
		"      version: 4\n"
		"    fallback:\n"
		"      version: 1\n"
		"      on: [error, nonfinite]\n"
		"  ctr-mlp:\n"
		"    canary: {version: 2, per_million: 7}\n"
		"    shadow: {version: 3, percent: 0.0001}\n"
		"    fallback: {version: 1, manual: true}\n"
		"  echo: {}\n"
		"  other:\n"
		"    primary: 4294967295\n"
		"    canary: null\n"
		"    shadow: ~\n";
	struct apply_spec s;
	char *msgs = NULL;
	int rc = parse(block, &s, &msgs);
	CHECK(rc == 0, "rc %d: %s", rc, msgs);
	free(msgs);
	if (rc)
		return;
	CHECK(s.n == 4, "%zu models", s.n);
	const struct apply_model *m = &s.models[0];
	CHECK(strcmp(m->name, "trade-mlp") == 0 && m->line == 3, "%s line %u", m->name, m->line);
	CHECK(m->want.primary == 2 && m->line_primary == 4, "primary %u line %u", m->want.primary,
	      m->line_primary);
	CHECK(m->want.canary == 3 && m->want.canary_ppm == 125000 && m->want.canary_sticky,
	      "canary %u %u %d", m->want.canary, m->want.canary_ppm, m->want.canary_sticky);
	CHECK(m->line_canary == 6, "canary line %u", m->line_canary);
	CHECK(m->want.shadow == 4 && m->want.shadow_ppm == 1000000, "shadow %u %u", m->want.shadow,
	      m->want.shadow_ppm);
	CHECK(m->want.fallback == 1 && m->want.fb_on == (APPLY_FB_ERROR | APPLY_FB_NONFINITE),
	      "fallback %u on %#x", m->want.fallback, m->want.fb_on);
	m = &s.models[1];
	CHECK(strcmp(m->name, "ctr-mlp") == 0 && m->want.primary == 0, "%s primary %u", m->name,
	      m->want.primary);
	CHECK(m->want.canary == 2 && m->want.canary_ppm == 7 && !m->want.canary_sticky,
	      "canary %u %u", m->want.canary, m->want.canary_ppm);
	CHECK(m->want.shadow == 3 && m->want.shadow_ppm == 1, "shadow %u %u", m->want.shadow,
	      m->want.shadow_ppm);
	CHECK(m->want.fallback == 1 && m->want.fb_on == APPLY_FB_MANUAL, "fallback on %#x",
	      m->want.fb_on);
	m = &s.models[2];
	CHECK(strcmp(m->name, "echo") == 0 && !m->want.primary && !m->want.canary &&
	      !m->want.shadow && !m->want.fallback, "echo: all empty");
	m = &s.models[3];
	CHECK(m->want.primary == 4294967295u && !m->want.canary && !m->want.shadow,
	      "other: %u", m->want.primary);
	apply_spec_free(&s);

	/* The same routes in flow style and JSON (YAML 1.2's subset) parse the same. */
	const char *json = "{\"models\": {\"trade-mlp\": {\"primary\": 2, \"canary\": "
			   "{\"version\": 3, \"percent\": 12.5, \"sticky\": true}}}}";
	rc = parse(json, &s, &msgs);
	CHECK(rc == 0 && s.n == 1 && s.models[0].want.canary_ppm == 125000 &&
	      s.models[0].want.canary_sticky, "json: rc %d: %s", rc, msgs);
	free(msgs);
	if (rc == 0)
		apply_spec_free(&s);

	/* `models:` with nothing under it: valid, no model. */
	rc = parse("models:\n", &s, &msgs);
	CHECK(rc == 0 && s.n == 0, "empty models: rc %d: %s", rc, msgs);
	free(msgs);
	if (rc == 0)
		apply_spec_free(&s);
}

struct bad {
	const char *text;
	const char *msg;        /* a line of the messages must contain it */
};

static void bad_files(void)
{
	static const struct bad cases[] = {
		{ "", "r.yaml:1: models: missing" },
		{ "- a\n- b\n", "r.yaml:1: (top level): must be a mapping, not a list" },
		{ "model:\n  x: {}\n", "r.yaml:1: model: unknown key (known: models)" },
		{ "models: [a, b]\n", "r.yaml:1: models: must be a mapping of model names" },
		{ "models:\n  m:\n    primary: 1\n    canry: {version: 2, percent: 5}\n",
		  "r.yaml:4: m.canry: unknown key (known: primary, canary, shadow, fallback)" },
		{ "models:\n  m:\n    canary: {version: 2, percent: 150}\n",
		  "r.yaml:3: m.canary.percent: '150' is out of range (0 < percent <= 100" },
		{ "models:\n  m:\n    canary: {version: 2, percent: 0}\n",
		  "r.yaml:3: m.canary.percent: '0' is out of range" },
		{ "models:\n  m:\n    canary: {version: 2, percent: -5}\n",
		  "r.yaml:3: m.canary.percent: '-5' is out of range" },
		{ "models:\n  m:\n    canary: {version: 2, percent: 1.23456}\n",
		  "r.yaml:3: m.canary.percent: '1.23456' is out of range (0 < percent <= 100, at most 4 decimals)" },
		{ "models:\n  m:\n    canary: {version: 2, percent: \"10\"}\n",
		  "r.yaml:3: m.canary.percent: must be a number, not a string" },
		{ "models:\n  m:\n    canary: {version: 2, per_million: 1000001}\n",
		  "r.yaml:3: m.canary.per_million: '1000001' is out of range (an integer 1..1000000)" },
		{ "models:\n  m:\n    canary: {version: 2, percent: 1, per_million: 5}\n",
		  "r.yaml:3: m.canary.per_million: give percent or per_million, not both" },
		{ "models:\n  m:\n    canary: {version: 2}\n",
		  "r.yaml:3: m.canary.percent: missing" },
		{ "models:\n  m:\n    canary: {percent: 3}\n",
		  "r.yaml:3: m.canary.version: missing" },
		{ "models:\n  m:\n    canary: 3\n",
		  "r.yaml:3: m.canary: must be a mapping, not a scalar" },
		{ "models:\n  m:\n    primary: \"3\"\n",
		  "r.yaml:3: m.primary: must be a version number (an integer 1..4294967295), not a string" },
		{ "models:\n  m:\n    primary: 1.5\n",
		  "r.yaml:3: m.primary: '1.5' is not a version number" },
		{ "models:\n  m:\n    primary: 0\n", "r.yaml:3: m.primary: 0 is out of range" },
		{ "models:\n  m:\n    primary: 4294967296\n",
		  "r.yaml:3: m.primary: 4294967296 is out of range" },
		{ "models:\n  m:\n    primary: [1]\n",
		  "r.yaml:3: m.primary: must be a version number (an integer 1..4294967295), not a list" },
		{ "models:\n  m:\n    canary: {version: 2, percent: 5, sticky: yes}\n",
		  "r.yaml:3: m.canary.sticky: must be true or false, not 'yes'" },
		{ "models:\n  m:\n    primary: 1\n  n: {}\n  m:\n    primary: 2\n",
		  "r.yaml:5: m: duplicate model (first at line 2)" },
		{ "models:\n  m:\n    primary: 1\n    primary: 2\n",
		  "r.yaml:4: m.primary: duplicate key (first at line 3)" },
		{ "models:\n  m:\n    fallback: {version: 1, on: [error, sometimes]}\n",
		  "r.yaml:3: m.fallback.on: 'sometimes' is not a trigger (error, deadline, nonfinite)" },
		{ "models:\n  m:\n    fallback: {version: 1, on: error}\n",
		  "r.yaml:3: m.fallback.on: must be a list of triggers" },
		{ "models:\n  m:\n    fallback: {version: 1, on: []}\n",
		  "r.yaml:3: m.fallback.on: missing (a non-empty list of triggers, or manual: true)" },
		{ "models:\n  m:\n    fallback: {version: 1, on: [error, error]}\n",
		  "r.yaml:3: m.fallback.on: 'error' is listed twice" },
		{ "models:\n  m:\n    primary: 2\n    canary: {version: 2, percent: 5}\n",
		  "r.yaml:4: m.canary.version: 2 is the primary's version" },
		{ "models:\n  m:\n    primary: 2\n    fallback:\n      version: 2\n      manual: true\n",
		  "r.yaml:5: m.fallback.version: 2 is the primary's version" },
		{ "models:\n  m: {canary: {version: 2, percent: 5}\n",
		  "r.yaml:3:1: YAML: did not find expected ',' or '}' while parsing a flow mapping" },
		{ "models:\n\tm: {}\n", "r.yaml:2:1: YAML: found character that cannot start any token" },
		{ "models:\n  m: {}\n---\nmodels: {}\n", "r.yaml:3: ---: a second document" },
		{ "models:\n  ? [a]\n  : {}\n", "r.yaml:2: models: a model name must be a string" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct apply_spec s;
		char *msgs = NULL;
		int rc = parse(cases[i].text, &s, &msgs);
		CHECK(rc == -EINVAL, "case %zu: rc %d (want -EINVAL)", i, rc);
		CHECK(msgs && strstr(msgs, cases[i].msg), "case %zu: want '%s', got:\n%s", i,
		      cases[i].msg, msgs ? msgs : "(none)");
		if (rc == 0)
			apply_spec_free(&s);
		free(msgs);
	}

	/* Several problems: each reported, not only the first. */
	struct apply_spec s;
	char *msgs = NULL;
	int rc = parse("models:\n  a: {primary: x}\n  b: {canary: {version: 1, percent: 200}}\n"
		       "  c: {bogus: 1}\n", &s, &msgs);
	CHECK(rc == -EINVAL && strstr(msgs, "r.yaml:2: a.primary") &&
	      strstr(msgs, "r.yaml:3: b.canary.percent") && strstr(msgs, "r.yaml:4: c.bogus"),
	      "several: %s", msgs);
	free(msgs);
}

/* A `routes` reply as quiverd writes it (route_cmds.c route_obj). */
static const char routes_json[] =
	"{\"routes\":["
	"{\"name\":\"trade-mlp\",\"handle\":2,\"primary\":2,\"previous\":1,"
	" \"canary\":{\"version\":3,\"ppm\":100000,\"sticky\":false},"
	" \"shadow\":null,"
	" \"fallback\":{\"on\":[\"error\"],\"version\":1,\"manual\":false},"
	" \"versions\":[{\"version\":1},{\"version\":2},{\"version\":3},{\"version\":4}]},"
	"{\"name\":\"ctr-mlp\",\"handle\":0,\"primary\":1,\"previous\":null,\"canary\":null,"
	" \"shadow\":null,\"fallback\":null,\"versions\":[{\"version\":1},{\"version\":2}]},"
	"{\"name\":\"broken\",\"handle\":1,\"primary\":null,\"previous\":null,\"canary\":null,"
	" \"shadow\":null,\"fallback\":null,\"versions\":[]}"
	"]}";

static unsigned check(const char *text, bool allow_load, char **msgs)
{
	struct apply_spec s;
	size_t len;
	cJSON *routes = cJSON_Parse(routes_json);
	FILE *f = open_memstream(msgs, &len);
	unsigned n = 99;

	if (apply_parse("r.yaml", text, strlen(text), &s, f) == 0) {
		n = apply_check(&s, routes, allow_load, f);
		apply_spec_free(&s);
	}
	fclose(f);
	cJSON_Delete(routes);
	return n;
}

static void checks_against_daemon(void)
{
	char *msgs = NULL;
	unsigned n;

	n = check("models:\n  trade-mlp: {primary: 2}\n  ctr-mlp:\n    canary: {version: 2, percent: 1}\n",
		  false, &msgs);
	CHECK(n == 0, "good: %u: %s", n, msgs);
	free(msgs);
	n = check("models:\n  trade-mlp: {}\n  nosuch: {primary: 1}\n", false, &msgs);
	CHECK(n == 1 && strstr(msgs, "r.yaml:3: nosuch: unknown model"), "unknown: %u: %s", n, msgs);
	free(msgs);
	n = check("models:\n  broken: {primary: 1}\n", false, &msgs);
	CHECK(n == 1 && strstr(msgs, "r.yaml:2: broken: unknown model"), "no primary: %u: %s", n,
	      msgs);
	free(msgs);
	n = check("models:\n  ctr-mlp:\n    primary: 1\n    canary: {version: 7, percent: 1}\n",
		  false, &msgs);
	CHECK(n == 1 && strstr(msgs, "r.yaml:4: ctr-mlp.canary.version: version 7 is not loaded "
				     "(loaded: 1, 2;"), "not loaded: %u: %s", n, msgs);
	free(msgs);
	n = check("models:\n  ctr-mlp:\n    primary: 1\n    canary: {version: 7, percent: 1}\n",
		  true, &msgs);
	CHECK(n == 0, "--load: %u: %s", n, msgs);
	free(msgs);
	/* Primary left out: a role may not name the primary quiverd serves. */
	n = check("models:\n  ctr-mlp:\n    shadow: {version: 1}\n", false, &msgs);
	CHECK(n == 1 && strstr(msgs, "r.yaml:3: ctr-mlp.shadow.version: 1 is the primary's version"),
	      "role on primary: %u: %s", n, msgs);
	free(msgs);
	/* ... but may name it when the file moves the primary away. */
	n = check("models:\n  trade-mlp:\n    primary: 3\n    canary: {version: 2, percent: 5}\n",
		  false, &msgs);
	CHECK(n == 0, "old primary as canary: %u: %s", n, msgs);
	free(msgs);
}

/* Runs the diff of text against routes_json; lines in *out. */
static int diff(const char *text, bool allow_load, struct apply_plan *p, char **out)
{
	struct apply_spec s;
	size_t len;
	cJSON *routes = cJSON_Parse(routes_json);
	FILE *f = open_memstream(out, &len);
	char *msgs = NULL;
	int rc = parse(text, &s, &msgs);

	free(msgs);
	if (rc == 0) {
		rc = apply_diff(&s, routes, allow_load, p, f);
		apply_spec_free(&s);
	}
	fclose(f);
	cJSON_Delete(routes);
	return rc;
}

/* The step's request through quiverd's own parser. */
static struct qv_cmd_args daemon_args(const struct apply_step *st)
{
	struct qv_cmd_args a;
	char err[256] = "";
	cJSON *req = cJSON_Parse(st->request);
	const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
	enum qv_cmd_kind k = cJSON_IsString(cmd) ? qv_cmd_kind_of(cmd->valuestring) : 0;

	memset(&a, 0, sizeof(a));
	CHECK(k != 0 && qv_cmd_args_parse(k, req, &a, err, sizeof(err)) == 0,
	      "quiverd refuses '%s': %s", st->request, err);
	cJSON_Delete(req);
	return a;
}

static void diffs(void)
{
	struct apply_plan p;
	char *out = NULL;
	int rc;

	/* The file says exactly what quiverd has: nothing to do. */
	rc = diff("models:\n  trade-mlp:\n    primary: 2\n"
		  "    canary: {version: 3, percent: 10}\n"
		  "    fallback: {version: 1, on: [error]}\n"
		  "  ctr-mlp: {primary: 1}\n", false, &p, &out);
	CHECK(rc == 0 && p.n == 0 && p.changes == 0 && out[0] == 0, "same: rc %d, %zu steps: %s",
	      rc, p.n, out);
	free(out);
	if (rc == 0)
		apply_plan_free(&p);

	/* Swap, a new sticky canary share, a shadow, triggers changed. */
	rc = diff("models:\n  trade-mlp:\n    primary: 3\n"
		  "    canary: {version: 2, percent: 0.5, sticky: true}\n"
		  "    shadow: {version: 4, per_million: 250000}\n"
		  "    fallback: {version: 1, on: [deadline, error], manual: true}\n",
		  false, &p, &out);
	const char *want =
		"trade-mlp: primary 2 -> 3\n"
		"trade-mlp: canary.version 3 -> 2\n"
		"trade-mlp: canary.percent 10 -> 0.5\n"
		"trade-mlp: canary.sticky false -> true\n"
		"trade-mlp: shadow.version - -> 4\n"
		"trade-mlp: shadow.percent - -> 25\n"
		"trade-mlp: fallback.on error -> error,deadline\n"
		"trade-mlp: fallback.manual false -> true\n";
	CHECK(rc == 0 && strcmp(out, want) == 0, "diff: rc %d, got:\n%swant:\n%s", rc, out, want);
	CHECK(rc == 0 && p.changes == 8 && p.n == 4, "changes %u, steps %zu", p.changes, p.n);
	if (rc == 0 && p.n == 4) {
		CHECK(p.steps[0].kind == APPLY_SWAP && strcmp(p.steps[0].what, "swap trade-mlp 3") == 0,
		      "step 0: %s", p.steps[0].what);
		struct qv_cmd_args a = daemon_args(&p.steps[0]);
		CHECK(a.kind == QV_CMD_SWAP && a.version == 3 && !strcmp(a.name, "trade-mlp"),
		      "swap args");
		CHECK(strcmp(p.steps[1].what, "canary trade-mlp 2 --percent 0.5 --sticky") == 0,
		      "step 1: %s", p.steps[1].what);
		a = daemon_args(&p.steps[1]);
		CHECK(a.kind == QV_CMD_CANARY && a.version == 2 && a.ppm == 5000 && a.sticky,
		      "canary args %u %u %d", a.version, a.ppm, a.sticky);
		a = daemon_args(&p.steps[2]);
		CHECK(a.kind == QV_CMD_SHADOW && a.version == 4 && a.ppm == 250000, "shadow args %u %u",
		      a.version, a.ppm);
		CHECK(strcmp(p.steps[3].what, "fallback trade-mlp 1 --on error,deadline --manual") == 0,
		      "step 3: %s", p.steps[3].what);
		a = daemon_args(&p.steps[3]);
		CHECK(a.kind == QV_CMD_FALLBACK && a.version == 1 && !a.clear &&
		      a.on == (QV_RT_FB_ERROR | QV_RT_FB_DEADLINE | QV_RT_FB_MANUAL),
		      "fallback args %u on %#x", a.version, a.on);
	}
	free(out);
	if (rc == 0)
		apply_plan_free(&p);

	/* Roles left out are cleared; the primary left out stays. */
	rc = diff("models:\n  trade-mlp: {}\n", false, &p, &out);
	want = "trade-mlp: canary.version 3 -> -\n"
	       "trade-mlp: canary.percent 10 -> -\n"
	       "trade-mlp: canary.sticky false -> -\n"
	       "trade-mlp: fallback.version 1 -> -\n"
	       "trade-mlp: fallback.on error -> -\n"
	       "trade-mlp: fallback.manual false -> -\n";
	CHECK(rc == 0 && strcmp(out, want) == 0, "clear: got:\n%swant:\n%s", out, want);
	if (rc == 0 && p.n == 2) {
		struct qv_cmd_args a = daemon_args(&p.steps[0]);
		CHECK(a.kind == QV_CMD_CANARY && a.version == 0 && a.ppm == 0, "canary clear %u %u",
		      a.version, a.ppm);
		a = daemon_args(&p.steps[1]);
		CHECK(a.kind == QV_CMD_FALLBACK && a.clear, "fallback clear");
	} else {
		CHECK(0, "clear: %zu steps", rc == 0 ? p.n : 0);
	}
	free(out);
	if (rc == 0)
		apply_plan_free(&p);

	/* --load: versions not loaded are loaded first, before any route change. */
	rc = diff("models:\n  ctr-mlp:\n    primary: 5\n    canary: {version: 6, percent: 1}\n"
		  "  trade-mlp:\n    primary: 2\n    canary: {version: 7, percent: 10}\n"
		  "    fallback: {version: 1, on: [error]}\n",
		  true, &p, &out);
	want = "ctr-mlp: loaded 1, 2 -> 1, 2, 5, 6\n"
	       "trade-mlp: loaded 1, 2, 3, 4 -> 1, 2, 3, 4, 7\n"
	       "ctr-mlp: primary 1 -> 5\n"
	       "ctr-mlp: canary.version - -> 6\n"
	       "ctr-mlp: canary.percent - -> 1\n"
	       "ctr-mlp: canary.sticky - -> false\n"
	       "trade-mlp: canary.version 3 -> 7\n";
	CHECK(rc == 0 && strcmp(out, want) == 0, "load: got:\n%swant:\n%s", out, want);
	if (rc == 0 && p.n == 6) {
		const char *whats[] = { "load ctr-mlp 5", "load ctr-mlp 6", "load trade-mlp 7",
					"swap ctr-mlp 5", "canary ctr-mlp 6 --percent 1",
					"canary trade-mlp 7 --percent 10" };
		for (int i = 0; i < 6; i++)
			CHECK(strcmp(p.steps[i].what, whats[i]) == 0, "step %d: %s, want %s", i,
			      p.steps[i].what, whats[i]);
		struct qv_cmd_args a = daemon_args(&p.steps[0]);
		CHECK(a.kind == QV_CMD_LOAD && a.version == 5 && a.path[0] == 0, "load args");
	} else {
		CHECK(0, "load: %zu steps", rc == 0 ? p.n : 0);
	}
	free(out);
	if (rc == 0)
		apply_plan_free(&p);

	/* A model name that needs JSON escaping reaches the request escaped. */
	static const char weird[] =
		"{\"routes\":[{\"name\":\"a\\\"b\",\"handle\":0,\"primary\":1,\"versions\":[{\"version\":1},{\"version\":2}]}]}";
	struct apply_spec s;
	char *msgs = NULL;
	rc = parse("models:\n  'a\"b': {primary: 2}\n", &s, &msgs);
	free(msgs);
	if (rc == 0) {
		cJSON *r = cJSON_Parse(weird);
		FILE *f = open_memstream(&out, &(size_t){ 0 });
		rc = apply_diff(&s, r, false, &p, f);
		fclose(f);
		CHECK(rc == 0 && p.n == 1 && strstr(p.steps[0].request, "\"name\":\"a\\\"b\""),
		      "escaped: %s", rc == 0 && p.n ? p.steps[0].request : "-");
		if (rc == 0)
			apply_plan_free(&p);
		free(out);
		cJSON_Delete(r);
		apply_spec_free(&s);
	} else {
		CHECK(0, "quoted name refused");
	}
}

static void percents(void)
{
	static const struct { uint32_t ppm; const char *s; } t[] = {
		{ 100000, "10" }, { 5000, "0.5" }, { 1, "0.0001" }, { 1000000, "100" },
		{ 123456, "12.3456" }, { 120000, "12" }, { 10, "0.001" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char b[32];
		apply_fmt_percent(t[i].ppm, b, sizeof(b));
		CHECK(strcmp(b, t[i].s) == 0, "%u ppm: '%s', want '%s'", t[i].ppm, b, t[i].s);
	}
}

int main(void)
{
	good_files();
	bad_files();
	checks_against_daemon();
	diffs();
	percents();
	if (failures)
		fprintf(stderr, "%d failures\n", failures);
	else
		printf("ok\n");
	return failures ? 1 : 0;
}
