/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_state.c - routes survive a restart with --state-file: trade-mlp
 * gets its version 1 loaded (only the highest, 2, is at start) and a
 * version from outside the repository (4, --path), is
 * swapped to 1, given a sticky 10% canary of 2 and a fallback to 4 on
 * error and nonfinite; after SIGTERM and a new start with the same file,
 * `routes --json` shows all of it again and a lookup says version 1. The
 * file is replaced atomically (no .tmp left behind). A state file that is
 * not JSON is logged and ignored: the daemon starts on the repository's
 * defaults (primary 2).
 *
 * Usage: test_state QUIVERD REPO CLIENT QUIVERCTL
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"

static char out[65536];

static int ctl(const char *quiverctl, const char *sock, const char *const *args)
{
	const char *argv[16] = { quiverctl, "--socket", sock };
	int n = 3, st;
	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if (qvt_run(argv, out, sizeof(out), &st) < 0)
		qvt_die("cannot run %s", quiverctl);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const cJSON *route(const cJSON *routes, const char *name)
{
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(routes, "routes"))
	{
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "name");
		if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
			return r;
	}
	return NULL;
}

static int num_at(const cJSON *o, const char *k, const char *k2)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (k2)
		v = cJSON_GetObjectItemCaseSensitive(v, k2);
	return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* Every role of trade-mlp as set before the restart. */
static void check_routes(const char *ctlpath, const char *sock, const char *when)
{
	cJSON *j = qvt_ctl_json(ctlpath, sock, "routes", NULL);
	const cJSON *r = route(j, "trade-mlp");
	if (!r) {
		qvt_fail("%s: no trade-mlp route", when);
		cJSON_Delete(j);
		return;
	}
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "canary");
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "fallback");
	const cJSON *on = cJSON_GetObjectItemCaseSensitive(f, "on");
	char *ons = on ? cJSON_PrintUnformatted(on) : NULL;
	if (num_at(r, "primary", NULL) != 1 || num_at(r, "previous", NULL) != 2)
		qvt_fail("%s: primary %d previous %d, want 1 and 2", when, num_at(r, "primary", NULL),
			 num_at(r, "previous", NULL));
	if (num_at(c, "version", NULL) != 2 || num_at(c, "ppm", NULL) != 100000 ||
	    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "sticky")))
		qvt_fail("%s: canary not 2 at 100000 ppm sticky", when);
	if (num_at(f, "version", NULL) != 4 || !ons ||
	    strcmp(ons, "[\"error\",\"nonfinite\"]") != 0)
		qvt_fail("%s: fallback %d on %s, want 4 on error,nonfinite", when,
			 num_at(f, "version", NULL), ons ? ons : "?");
	if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "versions")) != 3)
		qvt_fail("%s: trade-mlp has %d versions loaded, want 3 (1, 2, 4)", when,
			 cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "versions")));
	free(ons);
	cJSON_Delete(j);
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/qv-state-XXXXXX", state[256], tmp[300], v4[4096], real[4096];
	struct qvt_daemon d;
	struct stat st;

	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	snprintf(v4, sizeof(v4), "%s/../versions/trade-mlp/4", argv[2]);
	if (!realpath(v4, real)) {
		printf("SKIP: no %s\n", v4);
		return QVT_SKIP;
	}
	if (!mkdtemp(dir))
		qvt_die("mkdtemp: %m");
	snprintf(state, sizeof(state), "%s/routes.json", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", state);
	const char *extra[] = { "--state-file", state, NULL };

	if (qvt_daemon_start(&d, argv[1], argv[2], extra) < 0)
		qvt_die("quiverd did not start");
	const char *load1[] = { "load", "trade-mlp", "1", NULL };
	const char *load[] = { "load", "trade-mlp", "4", "--path", real, NULL };
	const char *swap[] = { "swap", "trade-mlp", "1", NULL };
	const char *canary[] = { "canary", "trade-mlp", "2", "--percent", "10", "--sticky", NULL };
	const char *fb[] = { "fallback", "trade-mlp", "4", "--on", "error,nonfinite", NULL };
	const char *const *cmds[] = { load1, load, swap, canary, fb };
	for (int i = 0; i < 5; i++)
		if (ctl(argv[4], d.sock, cmds[i]) != 0)
			qvt_fail("quiverctl %s failed: %s", cmds[i][0], out);
	check_routes(argv[4], d.sock, "before the restart");
	if (stat(state, &st) != 0 || st.st_size == 0)
		qvt_fail("no state file written");
	if (stat(tmp, &st) == 0)
		qvt_fail("a .tmp state file was left behind");
	int ws;
	if (qvt_daemon_stop(&d, 10000, &ws) < 0)
		qvt_fail("quiverd did not stop");
	qvt_daemon_cleanup(&d);

	if (qvt_daemon_start(&d, argv[1], argv[2], extra) < 0)
		qvt_die("quiverd did not start again");
	check_routes(argv[4], d.sock, "after the restart");
	qv_client *c = qvt_connect(d.sock, "e2e-state", 4);
	struct qv_model_desc md;
	if (qv_model_lookup(c, "trade-mlp", &md) < 0 || md.version != 1)
		qvt_fail("after the restart a lookup of trade-mlp says version %u, want 1", md.version);
	qv_close(c);
	if (qvt_daemon_stop(&d, 10000, &ws) < 0)
		qvt_fail("quiverd did not stop");
	qvt_daemon_cleanup(&d);

	/* A state file that is not a state: logged, ignored, defaults served. */
	FILE *f = fopen(state, "w");
	if (!f || fputs("{\"routes\": [garbage", f) < 0 || fclose(f) != 0)
		qvt_die("cannot write %s", state);
	if (qvt_daemon_start(&d, argv[1], argv[2], extra) < 0)
		qvt_die("quiverd did not start with a broken state file");
	c = qvt_connect(d.sock, "e2e-state-broken", 4);
	if (qv_model_lookup(c, "trade-mlp", &md) < 0 || md.version != 2)
		qvt_fail("with a broken state file trade-mlp is version %u, want 2", md.version);
	qv_close(c);
	FILE *lf = fopen(d.log, "r");
	char line[1024];
	int said = 0;
	while (lf && fgets(line, sizeof(line), lf))
		said |= strstr(line, "not a quiverd state") != NULL;
	if (lf)
		fclose(lf);
	if (!said)
		qvt_fail("the broken state file was not logged");
	int rc = qvt_finish(&d);
	snprintf(v4, sizeof(v4), "rm -rf %s", dir);
	if (system(v4) != 0)
		rc = 1;
	return rc;
}
