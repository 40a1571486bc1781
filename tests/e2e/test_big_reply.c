/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_big_reply.c - replies larger than one control packet: a repository
 * of 250 models (each a link to the echo model) makes `metrics`, `stats
 * --json` and `models --json` replies of several hundred KiB, over
 * QV_MSG_MAX and over a socket's send buffer. quiverctl must print each
 * whole (every model named, the JSON parses) and exit 0, and the daemon
 * must keep serving other clients.
 *
 * Usage: test_big_reply QUIVERD REPO CLIENT QUIVERCTL
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "qv_proto.h"

/* under the daemon-wide limit of 256 loaded versions (QV_MAX_VSLOTS) */
#define NMODELS 250

static char out[32 * 1024 * 1024];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static size_t ctl(const char *quiverctl, const char *sock, const char *a1, const char *a2)
{
	const char *argv[] = { quiverctl, "--socket", sock, a1, a2, NULL };
	int st;
	if (qvt_run(argv, out, sizeof(out), &st) < 0)
		qvt_die("cannot run %s", quiverctl);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		qvt_fail("quiverctl %s %s: exit %d", a1, a2 ? a2 : "",
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return strlen(out);
}

static void every_model_named(const char *what)
{
	char name[64];
	for (int i = 0; i < NMODELS; i++) {
		/* "m007": a JSON string, or a Prometheus label value model="m007" */
		snprintf(name, sizeof(name), "\"m%03d\"", i);
		if (!strstr(out, name)) {
			qvt_fail("%s: model m%03d missing", what, i);
			return;
		}
	}
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	char repo[] = "/tmp/qv-bigreply-XXXXXX", path[512], echo[4096];

	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	snprintf(echo, sizeof(echo), "%s/echo/1/model.onnx", argv[2]);
	if (access(echo, R_OK) != 0) {
		printf("SKIP: no %s\n", echo);
		return QVT_SKIP;
	}
	if (!realpath(echo, path))
		qvt_die("realpath %s: %m", echo);
	snprintf(echo, sizeof(echo), "%s", path);
	if (!mkdtemp(repo))
		qvt_die("mkdtemp: %m");
	for (int i = 0; i < NMODELS; i++) {
		snprintf(path, sizeof(path), "%s/m%03d", repo, i);
		mkdir(path, 0755);
		snprintf(path, sizeof(path), "%s/m%03d/1", repo, i);
		mkdir(path, 0755);
		snprintf(path, sizeof(path), "%s/m%03d/1/model.onnx", repo, i);
		if (symlink(echo, path) < 0)
			qvt_die("symlink: %m");
	}
	const char *extra[] = { "--max-batch", "4", NULL };
	if (qvt_daemon_start(&d, argv[1], repo, extra) < 0)
		qvt_die("quiverd did not start");

	size_t n = ctl(argv[4], d.sock, "metrics", NULL);
	fprintf(stderr, "metrics: %zu bytes\n", n);
	if (n <= QV_MSG_MAX)
		qvt_fail("metrics reply of %zu bytes: the test wants one over QV_MSG_MAX", n);
	every_model_named("metrics");

	const char *cmds[] = { "stats", "models" };
	for (int k = 0; k < 2; k++) {
		n = ctl(argv[4], d.sock, "--json", cmds[k]);
		fprintf(stderr, "%s --json: %zu bytes\n", cmds[k], n);
		if (n <= QV_MSG_CHUNK)
			qvt_fail("%s --json reply of %zu bytes fits one packet", cmds[k], n);
		cJSON *j = cJSON_Parse(out);
		if (!j)
			qvt_fail("%s --json: not JSON", cmds[k]);
		cJSON_Delete(j);
		every_model_named(cmds[k]);
	}

	/* The daemon still serves a client after the long replies. */
	qv_client *c = qvt_connect(d.sock, "e2e-after-big", 4);
	struct qv_model_desc md;
	float in[16], o[16];
	struct qv_request rq = { .rows = 1, .input = in, .request_id = 5 };
	struct qv_result res;
	for (int i = 0; i < 16; i++)
		in[i] = (float)i;
	if (qv_model_lookup(c, "m249", &md) < 0)
		qvt_fail("lookup m249 failed");
	rq.handle = md.handle;
	if (qv_infer(c, &rq, o, 16, 2000, &res) < 0 || res.status != QV_OK ||
	    memcmp(in, o, sizeof(in)) != 0)
		qvt_fail("echo through m249 failed");
	qv_close(c);
	nftw(repo, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return qvt_finish(&d);
}
