/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_apply_e2e.c - `quiverctl apply -f` against a real quiverd serving
 * the generated repository (trade-mlp 2 served, version 1 on disk only):
 *  - a file naming version 1 is refused while it is not loaded (file, line,
 *    key in the message), and nothing changes;
 *  - --dry-run --load prints the changes and changes nothing (routes as
 *    before, version 1 still not loaded);
 *  - --load applies: version 1 loaded, primary 1, a sticky 20% canary on
 *    version 2; models the file does not name are left as they were;
 *  - applying the same file again prints exactly "no changes";
 *  - traffic follows: 4000 routing keys, each sent twice, always land on the
 *    same version, the share of keys on the canary is within 5 sigma of
 *    Binomial(4000, 0.2), every answer matches the torch reference of the
 *    version that gave it and carries the canary flag exactly when it came
 *    from version 2;
 *  - bad files (unknown key, percent out of range, a string for a version,
 *    duplicate model, unknown model, version not loaded) are refused with
 *    FILE:LINE: KEY messages and the routes stay as they were;
 *  - a load that fails stops the run (loads come before any route change)
 *    and lists what was applied; applying the fixed file finishes the job.
 *
 * Usage: test_apply_e2e QUIVERD REPO CLIENT QUIVERCTL
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "routing.h"

#define NKEYS 4000

static struct qvt_refs refs;
static uint32_t rows[256], nrows;
static char out[1 << 16];
static const char *quiverctl;
static struct qvt_daemon d;
static char file[256];

static const uint64_t K = 0x9E3779B97F4A7C15ull;
static uint64_t kinv;
static uint8_t key_version[NKEYS];
static uint64_t key_moved;

static void on_done(void *arg, const struct qv_result *res, uint32_t row, uint64_t key)
{
	(void)arg;
	(void)row;
	uint64_t i = key * kinv - 1;
	if (i >= NKEYS || res->status != QV_OK)
		return;
	if (key_version[i] == 0)
		key_version[i] = (uint8_t)res->version;
	else if (key_version[i] != res->version)
		key_moved++;
}

/* repo/model/v/model.onnx -> src/model/v/model.onnx (test_reload does the same). */
static void link_version(const char *src, const char *repo, const char *model, int v)
{
	char a[4096], b[4096], real[4096];
	snprintf(b, sizeof(b), "%s/%s", repo, model);
	mkdir(b, 0755);
	snprintf(b, sizeof(b), "%s/%s/%d", repo, model, v);
	mkdir(b, 0755);
	snprintf(a, sizeof(a), "%s/%s/%d/model.onnx", src, model, v);
	if (!realpath(a, real))
		qvt_die("realpath %s: %m", a);
	snprintf(b, sizeof(b), "%s/%s/%d/model.onnx", repo, model, v);
	if (symlink(real, b) < 0)
		qvt_die("symlink %s: %m", b);
}

static char repo[] = "/tmp/qv-apply-repo-XXXXXX";

static void remove_repo(void)
{
	char rm[256];
	snprintf(rm, sizeof(rm), "rm -rf '%s'", repo);
	if (system(rm) != 0)
		fprintf(stderr, "could not remove %s\n", repo);
}

static void write_file(const char *text)
{
	FILE *f = fopen(file, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		qvt_die("cannot write %s", file);
}

/* quiverctl --socket S apply -f FILE [args]; stdout and stderr into out. */
static int apply(const char *a1, const char *a2)
{
	const char *argv[] = { "/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", quiverctl, "--socket",
			       d.sock, "apply", "-f", file, a1, a2, NULL };
	int st;
	if (qvt_run(argv, out, sizeof(out), &st) < 0)
		qvt_die("cannot run %s", quiverctl);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A route's fields, from the daemon's own `routes` reply. */
struct seen {
	double primary, canary, canary_ppm, nvers;
	bool sticky, shadow, fallback;
};

static struct seen route(const char *name)
{
	struct seen s = { 0 };
	cJSON *j = qvt_cmd_ok(d.sock, "{\"cmd\":\"routes\"}");
	const cJSON *r = qvt_route_of(j, name);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "canary");
	if (!r)
		qvt_die("routes: no route %s", name);
	s.primary = qvt_num(r, "primary");
	s.canary = cJSON_IsObject(c) ? qvt_num(c, "version") : 0;
	s.canary_ppm = cJSON_IsObject(c) ? qvt_num(c, "ppm") : 0;
	s.sticky = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "sticky"));
	s.shadow = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(r, "shadow"));
	s.fallback = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(r, "fallback"));
	s.nvers = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "versions"));
	cJSON_Delete(j);
	return s;
}

static bool same(struct seen a, struct seen b)
{
	return a.primary == b.primary && a.canary == b.canary && a.canary_ppm == b.canary_ppm &&
	       a.sticky == b.sticky && a.shadow == b.shadow && a.fallback == b.fallback &&
	       a.nvers == b.nvers;
}

static void expect(int rc, int want_rc, const char *want, const char *what)
{
	fprintf(stderr, "--- %s (exit %d):\n%s", what, rc, out);
	if (rc != want_rc)
		qvt_fail("%s: exit %d, want %d", what, rc, want_rc);
	if (want && !strstr(out, want))
		qvt_fail("%s: output lacks '%s'", what, want);
}

static const char routes_yaml[] =
	"# trade-mlp: version 1 primary, version 2 on a sticky 20% canary\n"
	"models:\n"
	"  trade-mlp:\n"
	"    primary: 1\n"
	"    canary: {version: 2, percent: 20, sticky: true}\n";

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	quiverctl = argv[4];
	qvt_refs_load(argv[2], &refs);
	nrows = qvt_refs_distinct(&refs, 1, 2, rows, 256);
	/* A repository of our own (links to the generated models), so that a
	 * version can appear in it while quiverd runs (step 7). */
	if (!mkdtemp(repo))
		qvt_die("mkdtemp: %m");
	atexit(remove_repo);        /* qvt_die exits too */
	link_version(argv[2], repo, "trade-mlp", 1);
	link_version(argv[2], repo, "trade-mlp", 2);
	link_version(argv[2], repo, "echo", 1);
	if (qvt_daemon_start(&d, argv[1], repo, NULL) < 0)
		qvt_die("quiverd did not start");
	qvt_need_routing(&d);
	snprintf(file, sizeof(file), "%s/routes.yaml", d.dir);
	write_file(routes_yaml);

	/* 0. Bad arguments: refused before anything is read or sent (exit 2). */
	static const struct { const char *args[4], *want; } usage[] = {
		{ { "apply", NULL }, "apply: -f FILE is required" },
		{ { "apply", "-f", NULL }, "apply: -f needs a file" },
		{ { "apply", "-f", "/nonexistent/routes.yaml", NULL },
		  "/nonexistent/routes.yaml: No such file or directory" },
		{ { "apply", "-f", "/", NULL }, "/: Is a directory" },
		{ { "apply", "--force", "-f", NULL }, "apply: unknown argument '--force'" },
	};
	for (size_t i = 0; i < sizeof(usage) / sizeof(usage[0]); i++) {
		const char *argv2[12] = { "/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", quiverctl,
					  "--socket", d.sock };
		for (int k = 0; k < 4 && usage[i].args[k]; k++)
			argv2[6 + k] = usage[i].args[k];
		int st;
		if (qvt_run(argv2, out, sizeof(out), &st) < 0)
			qvt_die("cannot run %s", quiverctl);
		expect(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 2, usage[i].want, "bad arguments");
	}

	struct seen t0 = route("trade-mlp"), c0 = route("echo");
	if (t0.primary != 2 || t0.canary != 0 || t0.nvers != 1)
		qvt_die("trade-mlp at start: primary %.0f, canary %.0f, %.0f versions (want 2, none, 1)",
			t0.primary, t0.canary, t0.nvers);

	/* 1. Version 1 is not loaded: refused, nothing changes. */
	int rc = apply(NULL, NULL);
	expect(rc, 1, "routes.yaml:4: trade-mlp.primary: version 1 is not loaded (loaded: 2;",
	       "apply, version 1 not loaded");
	if (strstr(out, "->"))
		qvt_fail("a refused file printed changes");
	if (!same(route("trade-mlp"), t0))
		qvt_fail("a refused file changed the route");

	/* 2. Dry run: the changes printed, none made. */
	rc = apply("--dry-run", "--load");
	expect(rc, 0, "trade-mlp: loaded 2 -> 2, 1\n", "apply --dry-run --load");
	static const char *const lines[] = {
		"trade-mlp: primary 2 -> 1\n", "trade-mlp: canary.version - -> 2\n",
		"trade-mlp: canary.percent - -> 20\n", "trade-mlp: canary.sticky - -> true\n",
		"dry run: 5 changes, 3 commands not sent\n",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (!strstr(out, lines[i]))
			qvt_fail("dry run: no line '%.*s'", (int)strlen(lines[i]) - 1, lines[i]);
	if (!same(route("trade-mlp"), t0))
		qvt_fail("--dry-run changed the route");

	/* 3. Applied. */
	rc = apply("--load", NULL);
	expect(rc, 0, "applied 3 commands\n", "apply --load");
	for (size_t i = 0; i + 1 < sizeof(lines) / sizeof(lines[0]); i++)
		if (!strstr(out, lines[i]))
			qvt_fail("apply: no line '%.*s'", (int)strlen(lines[i]) - 1, lines[i]);
	struct seen t1 = route("trade-mlp");
	if (t1.primary != 1 || t1.canary != 2 || t1.canary_ppm != 200000 || !t1.sticky ||
	    t1.nvers != 2 || t1.shadow || t1.fallback)
		qvt_fail("after apply: primary %.0f, canary %.0f at %.0f ppm sticky %d, %.0f versions",
			 t1.primary, t1.canary, t1.canary_ppm, t1.sticky, t1.nvers);
	if (!same(route("echo"), c0))
		qvt_fail("apply changed echo, which the file does not name");

	/* 4. Idempotent. */
	rc = apply(NULL, NULL);
	expect(rc, 0, NULL, "apply again");
	if (strcmp(out, "no changes\n") != 0)
		qvt_fail("apply again: printed '%s', want exactly 'no changes'", out);
	if (!same(route("trade-mlp"), t1))
		qvt_fail("re-apply changed the route");

	/* 5. Traffic follows the applied route. */
	kinv = K;
	for (int i = 0; i < 6; i++)
		kinv *= 2 - K * kinv;   /* Newton: K * kinv == 1 mod 2^64 */
	static uint64_t keys[NKEYS];
	for (uint64_t i = 0; i < NKEYS; i++)
		keys[i] = (i + 1) * K;
	qv_client *c = qvt_connect(d.sock, "apply", 16);
	struct qv_model_desc desc;
	if (qv_model_lookup(c, "trade-mlp", &desc) < 0)
		qvt_die("lookup trade-mlp");
	struct qvt_stream s = { .c = c, .handle = desc.handle, .depth = 8, .refs = &refs,
				.rows = rows, .nrows = nrows, .keys = keys, .nkeys = NKEYS,
				.on_done = on_done };
	while (s.sent < 2 * NKEYS) {
		int r = qvt_stream_step(&s, 2 * NKEYS - s.sent);
		if (r < 0)
			qvt_die("stream: %s", strerror(-r));
	}
	if (qvt_stream_drain(&s, 30000) < 0)
		qvt_fail("requests still in flight after 30 s");
	if (!qvt_stream_report(&s, "after apply"))
		qvt_fail("lost, failed or wrong answers");
	uint32_t on_canary = 0, unseen = 0;
	for (int i = 0; i < NKEYS; i++) {
		on_canary += key_version[i] == 2;
		unseen += key_version[i] == 0;
	}
	double mean = NKEYS * 0.2, sigma = sqrt(NKEYS * 0.2 * 0.8);
	fprintf(stderr, "keys on the canary: %u of %d (expected %.0f +- %.0f); %llu moved; "
		"answers: v1 %llu, v2 %llu, canary flag %llu\n", on_canary, NKEYS, mean, 5 * sigma,
		(unsigned long long)key_moved, (unsigned long long)s.by_version[1],
		(unsigned long long)s.by_version[2], (unsigned long long)s.canary_flag);
	if (fabs(on_canary - mean) > 5 * sigma)
		qvt_fail("share of keys on the canary out of bounds");
	if (key_moved || unseen)
		qvt_fail("%llu answers moved a key, %u keys unanswered", (unsigned long long)key_moved,
			 unseen);
	if (s.by_version[1] + s.by_version[2] != s.sent || s.canary_flag != s.by_version[2])
		qvt_fail("answers from versions other than 1 and 2, or the flag disagrees");
	qv_close(c);

	/* 6. Bad files: refused, named, nothing changes. */
	static const struct { const char *text, *want; int rc; } bad[] = {
		{ "models:\n  trade-mlp:\n    primary: 1\n    canry: {version: 2, percent: 5}\n",
		  "routes.yaml:4: trade-mlp.canry: unknown key", 2 },
		{ "models:\n  trade-mlp:\n    canary: {version: 2, percent: 150}\n",
		  "routes.yaml:3: trade-mlp.canary.percent: '150' is out of range", 2 },
		{ "models:\n  trade-mlp:\n    primary: \"2\"\n",
		  "routes.yaml:3: trade-mlp.primary: must be a version number (an integer 1..4294967295), not a string", 2 },
		{ "models:\n  trade-mlp: {primary: 2}\n  echo: {}\n  trade-mlp: {primary: 1}\n",
		  "routes.yaml:4: trade-mlp: duplicate model (first at line 2)", 2 },
		{ "models:\n  trade-mlp: {primary: 2}\n  no-such-model: {primary: 1}\n",
		  "routes.yaml:3: no-such-model: unknown model", 1 },
		{ "models:\n  trade-mlp:\n    primary: 2\n    shadow: {version: 9}\n",
		  "routes.yaml:4: trade-mlp.shadow.version: version 9 is not loaded (loaded: ", 1 },
		{ "models:\n  trade-mlp: {primary: 2\n", "routes.yaml:3:1: YAML: ", 2 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char what[64];
		snprintf(what, sizeof(what), "bad file %zu", i);
		write_file(bad[i].text);
		rc = apply(NULL, NULL);
		expect(rc, bad[i].rc, bad[i].want, what);
		if (!strstr(out, "nothing applied"))
			qvt_fail("%s: does not say nothing was applied", what);
		if (!same(route("trade-mlp"), t1))
			qvt_fail("%s changed the route", what);
	}

	/* 7. Partial failure: echo/2 appears in the repository (a link to
	 * echo/1's model: small, so this is quick under sanitizers too); a
	 * file naming it and echo/9 (absent) loads 2, stops at echo/9 before
	 * any route command, and says what it applied. The file fixed, apply
	 * finishes the job without loading 2 again. */
	char a[4096], b[4096], real[4096];
	snprintf(a, sizeof(a), "%s/echo/1/model.onnx", argv[2]);
	snprintf(b, sizeof(b), "%s/echo/2", repo);
	if (!realpath(a, real) || mkdir(b, 0755) < 0)
		qvt_die("echo/2: %m");
	snprintf(b, sizeof(b), "%s/echo/2/model.onnx", repo);
	if (symlink(real, b) < 0)
		qvt_die("symlink %s: %m", b);
	static const char fixed[] =
		"models:\n"
		"  trade-mlp:\n"
		"    primary: 1\n"
		"    canary: {version: 2, percent: 20, sticky: true}\n"
		"  echo:\n"
		"    shadow: {version: 2, percent: 1}\n";
	char broken[512];
	snprintf(broken, sizeof(broken), "%s    fallback: {version: 9, on: [error]}\n", fixed);
	write_file(broken);
	rc = apply("--load", NULL);
	expect(rc, 1, "stopped at 'load echo 9'; 1 of 4 commands applied before it:\n"
		      "  applied: load echo 2\n", "failed load");
	struct seen e1 = route("echo");
	c0.nvers = 2;
	if (!same(route("trade-mlp"), t1) || !same(e1, c0))
		qvt_fail("after the failed load: echo primary %.0f, shadow %d, %.0f versions (want "
			 "1, none, 2: version 2 loaded, no route changed), or trade-mlp moved",
			 e1.primary, e1.shadow, e1.nvers);
	write_file(fixed);
	rc = apply(NULL, NULL);
	expect(rc, 0, "echo: shadow.version - -> 2\necho: shadow.percent - -> 1\n"
		      "applied 1 command\n", "apply the fixed file");
	if (strstr(out, "loaded") || strstr(out, "trade-mlp"))
		qvt_fail("the fixed file loaded again or touched trade-mlp");
	e1 = route("echo");
	if (!e1.shadow || e1.primary != 1 || !same(route("trade-mlp"), t1))
		qvt_fail("the fixed file: no shadow on echo, or a route moved");

	qvt_refs_free(&refs);
	return qvt_finish(&d);
}
