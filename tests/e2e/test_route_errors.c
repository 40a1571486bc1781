/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_route_errors.c - refused routing commands against a real quiverd:
 * every one exits with the documented code (1 daemon error, 2 usage, 4
 * permission), names what was wrong, answers the documented -errno when
 * sent raw, and leaves `routes --json` exactly as it was. Covered: unknown
 * model or version, percent out of range (refused by quiverctl and, sent
 * raw, by the daemon), swap to a version that is not loaded, unload of the
 * primary, a second load, a load that fails, a bad trigger, rollback with
 * no previous primary, and a mutating command from an allowed client uid
 * that is not an admin (read-only commands still work for it). Then the
 * stats and metrics views, and `quiverctl drain` ending the daemon with
 * exit 0.
 *
 * Usage: test_route_errors QUIVERD REPO CLIENT QUIVERCTL
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "routing.h"

static char out[1 << 16], before[1 << 16];
static const char *q, *sock;

/* quiverctl ARGS must exit `want`; its stderr is the test's (visible in
 * the log); `routes --json` must not change. */
static void refused(int want, const char *what, const char *a1, const char *a2,
		    const char *a3, const char *a4, const char *a5)
{
	int rc = qvt_ctl(q, sock, out, sizeof(out), a1, a2, a3, a4, a5, NULL);
	fprintf(stderr, "  ^ quiverctl %s: exit %d\n", what, rc);
	if (rc != want)
		qvt_fail("quiverctl %s: exit %d, want %d", what, rc, want);
	if (qvt_ctl(q, sock, out, sizeof(out), "--json", "routes", NULL) != 0 ||
	    strcmp(out, before) != 0)
		qvt_fail("quiverctl %s changed the routes:\nbefore %safter  %s", what, before, out);
}

/* The raw command must answer `want` and an error message containing `needle`. */
static void raw(int32_t want, const char *needle, const char *json)
{
	int32_t st;
	cJSON *j = qvt_cmd(sock, &st, "%s", json);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	fprintf(stderr, "raw %s -> %d %s\n", json, st, cJSON_IsString(e) ? e->valuestring : "-");
	if (st != want)
		qvt_fail("%s: status %d, want %d", json, st, want);
	else if (!cJSON_IsString(e) || (needle && !strstr(e->valuestring, needle)))
		qvt_fail("%s: error message does not name '%s'", json, needle ? needle : "");
	cJSON_Delete(j);
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	char dir[640];
	struct qvt_refs refs;
	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	q = argv[4];
	qvt_refs_load(argv[2], &refs);
	const char *extra[] = { "--socket-mode", "0666", "--allow-uid", "65534", NULL };
	if (qvt_daemon_start(&d, argv[1], argv[2], extra) < 0)
		qvt_die("quiverd did not start");
	sock = d.sock;
	qvt_need_routing(&d);
	/* A known state: versions 1 and 2 loaded, 2 the primary, 1 previous. */
	int32_t st;
	cJSON_Delete(qvt_cmd(sock, &st, "{\"cmd\":\"load\",\"name\":\"trade-mlp\",\"version\":1}"));
	cJSON_Delete(qvt_cmd_ok(sock, "{\"cmd\":\"swap\",\"name\":\"trade-mlp\",\"version\":1}"));
	cJSON_Delete(qvt_cmd_ok(sock, "{\"cmd\":\"swap\",\"name\":\"trade-mlp\",\"version\":2}"));
	if (qvt_ctl(q, sock, before, sizeof(before), "--json", "routes", NULL) != 0)
		qvt_die("quiverctl --json routes failed");
	fprintf(stderr, "routes: %s", before);

	refused(1, "swap nosuch 1", "swap", "nosuch", "1", NULL, NULL);
	raw(-ENOENT, "nosuch", "{\"cmd\":\"swap\",\"name\":\"nosuch\",\"version\":1}");
	refused(1, "swap trade-mlp 99", "swap", "trade-mlp", "99", NULL, NULL);
	raw(-ENOENT, "trade-mlp", "{\"cmd\":\"swap\",\"name\":\"trade-mlp\",\"version\":99}");
	/* Version 3 exists on disk (versions/) but is not loaded. */
	refused(1, "swap trade-mlp 3 (not loaded)", "swap", "trade-mlp", "3", NULL, NULL);
	raw(-ENOENT, "trade-mlp", "{\"cmd\":\"swap\",\"name\":\"trade-mlp\",\"version\":3}");
	refused(1, "canary trade-mlp 99", "canary", "trade-mlp", "99", "--percent", "10");
	refused(1, "shadow nosuch 1", "shadow", "nosuch", "1", NULL, NULL);
	refused(1, "fallback trade-mlp 99 --manual", "fallback", "trade-mlp", "99", "--manual", NULL);
	refused(1, "unload trade-mlp 99", "unload", "trade-mlp", "99", NULL, NULL);
	refused(1, "stats nosuch", "stats", "nosuch", NULL, NULL, NULL);

	refused(2, "canary --percent 101", "canary", "trade-mlp", "1", "--percent", "101");
	refused(2, "canary --percent -1", "canary", "trade-mlp", "1", "--percent", "-1");
	refused(2, "shadow --percent 100.5", "shadow", "trade-mlp", "1", "--percent", "100.5");
	raw(-EINVAL, NULL, "{\"cmd\":\"canary\",\"name\":\"trade-mlp\",\"version\":1,"
			   "\"ppm\":1000001,\"sticky\":false}");
	raw(-EINVAL, NULL, "{\"cmd\":\"canary\",\"name\":\"trade-mlp\",\"version\":1,\"ppm\":-5}");
	raw(-EINVAL, NULL, "{\"cmd\":\"shadow\",\"name\":\"trade-mlp\",\"version\":1,"
			   "\"ppm\":2000000}");
	raw(-EINVAL, NULL, "{\"cmd\":\"fallback\",\"name\":\"trade-mlp\",\"version\":1,"
			   "\"on\":[\"sometimes\"]}");
	raw(-EINVAL, NULL, "{\"cmd\":\"swap\",\"name\":\"trade-mlp\"}");
	refused(2, "fallback --on bogus", "fallback", "trade-mlp", "1", "--on", "bogus");

	refused(1, "unload trade-mlp 2 (the primary)", "unload", "trade-mlp", "2", NULL, NULL);
	raw(-EBUSY, "trade-mlp", "{\"cmd\":\"unload\",\"name\":\"trade-mlp\",\"version\":2}");
	refused(1, "unload trade-mlp 1 (the previous)", "unload", "trade-mlp", "1", NULL, NULL);
	refused(1, "load trade-mlp 2 (loaded)", "load", "trade-mlp", "2", NULL, NULL);
	raw(-EEXIST, "trade-mlp", "{\"cmd\":\"load\",\"name\":\"trade-mlp\",\"version\":2}");
	snprintf(dir, sizeof(dir), "%s/no-such-dir", refs.versions_dir);
	refused(1, "load trade-mlp 7 --path (missing)", "load", "trade-mlp", "7", "--path", dir);
	raw(-ENOENT, "trade-mlp", "{\"cmd\":\"load\",\"name\":\"trade-mlp\",\"version\":7,"
				 "\"path\":\"/nonexistent/dir\"}");
	/* A model.onnx that is not a model: -EIO with the loader's chain. */
	char bad[300], json[700];
	snprintf(bad, sizeof(bad), "%s/bad", d.dir);
	snprintf(json, sizeof(json), "%s/model.onnx", bad);
	FILE *f = mkdir(bad, 0755) == 0 ? fopen(json, "w") : NULL;
	if (!f || fputs("this is not a protobuf", f) < 0 || fclose(f) != 0)
		qvt_die("cannot write %s", json);
	refused(1, "load trade-mlp 7 --path (garbage model.onnx)", "load", "trade-mlp", "7",
		"--path", bad);
	snprintf(json, sizeof(json), "{\"cmd\":\"load\",\"name\":\"trade-mlp\",\"version\":7,"
		 "\"path\":\"%s\"}", bad);
	raw(-EIO, "model.onnx", json);
	refused(1, "rollback echo (no previous)", "rollback", "echo", NULL, NULL, NULL);
	raw(-ENOENT, "echo", "{\"cmd\":\"rollback\",\"name\":\"echo\"}");
	refused(1, "promote trade-mlp (no canary)", "promote", "trade-mlp", NULL, NULL, NULL);

	/* An allowed client uid that is not an admin. */
	if (geteuid() != 0) {
		printf("(not root: the uid check is skipped)\n");
	} else if (chmod(d.dir, 0777) < 0 || chmod(d.sock, 0666) < 0) {
		qvt_fail("chmod: %m");
	} else {
		int rc = qvt_ctl_nobody(q, sock, out, sizeof(out), "routes", NULL);
		fprintf(stderr, "quiverctl routes as uid 65534: exit %d\n", rc);
		if (rc == 126 || rc == 127) {
			printf("(uid 65534 cannot run quiverctl here: the uid check is skipped)\n");
		} else {
			if (rc != 0)
				qvt_fail("quiverctl routes as uid 65534 (allowed reader): exit %d",
					 rc);
			static const char *const cmds[][6] = {
				{ "swap", "trade-mlp", "1" },
				{ "canary", "trade-mlp", "1", "--percent", "10" },
				{ "rollback", "trade-mlp" },
				{ "unload", "trade-mlp", "1" },
				{ "drain" },
			};
			for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
				rc = qvt_ctl_nobody(q, sock, out, sizeof(out), cmds[i][0],
						    cmds[i][1], cmds[i][2], cmds[i][3],
						    cmds[i][4], NULL);
				fprintf(stderr, "  ^ quiverctl %s as uid 65534: exit %d\n",
					cmds[i][0], rc);
				if (rc != 4)
					qvt_fail("quiverctl %s as uid 65534: exit %d, want 4",
						 cmds[i][0], rc);
			}
			if (qvt_ctl(q, sock, out, sizeof(out), "--json", "routes", NULL) != 0 ||
			    strcmp(out, before) != 0)
				qvt_fail("refused commands of uid 65534 changed the routes");
		}
	}
	if (!qvt_daemon_alive(&d))
		qvt_fail("quiverd died");

	/* The read-only views render, and drain (admin) ends the daemon
	 * cleanly, as SIGTERM does. */
	int rc = qvt_ctl(q, sock, out, sizeof(out), "stats", NULL);
	if (rc != 0 || !strstr(out, "P99.9_US") || !strstr(out, "trade-mlp"))
		qvt_fail("quiverctl stats: exit %d:\n%s", rc, out);
	rc = qvt_ctl(q, sock, out, sizeof(out), "metrics", NULL);
	if (rc != 0 || !strstr(out, "# TYPE quiver_requests_total") ||
	    !strstr(out, "quiver_requests_total{model=\"trade-mlp\""))
		qvt_fail("quiverctl metrics: exit %d, no quiver_requests_total", rc);
	rc = qvt_ctl(q, sock, out, sizeof(out), "drain", NULL);
	int ws;
	if (rc != 0 || !strstr(out, "draining"))
		qvt_fail("quiverctl drain: exit %d: %s", rc, out);
	else if (qvt_daemon_wait(&d, 30000, &ws) < 0)
		qvt_fail("quiverd still running 30 s after quiverctl drain");
	else if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		qvt_fail("quiverd after drain: wait status 0x%x, want exit 0", ws);
	qvt_refs_free(&refs);
	return qvt_finish(&d);
}
