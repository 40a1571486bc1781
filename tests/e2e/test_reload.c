/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_reload.c - SIGHUP reloads the repository instead of killing the
 * daemon: a repository that starts with trade-mlp/1 gains trade-mlp/2 and
 * a new model echo/1; after SIGHUP echo is served, trade-mlp/2 is loaded
 * but trade-mlp's primary stays 1 (an operator swaps when ready), a
 * client connected before the signal is served throughout, and a second
 * SIGHUP with nothing new loads nothing. A model whose highest version is
 * broken ("fb": version 2 is not a model) is served from version 1 at
 * start, and a broken new version of it at reload changes nothing.
 *
 * Usage: test_reload QUIVERD REPO CLIENT QUIVERCTL
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"

static void link_version(const char *src_repo, const char *repo, const char *model, int v)
{
	char a[4096], b[4096], real[4096];
	snprintf(b, sizeof(b), "%s/%s", repo, model);
	mkdir(b, 0755);
	snprintf(b, sizeof(b), "%s/%s/%d", repo, model, v);
	mkdir(b, 0755);
	snprintf(a, sizeof(a), "%s/%s/%d/model.onnx", src_repo, model, v);
	if (!realpath(a, real))
		qvt_die("realpath %s: %m", a);
	snprintf(b, sizeof(b), "%s/%s/%d/model.onnx", repo, model, v);
	if (symlink(real, b) < 0)
		qvt_die("symlink %s: %m", b);
}

/* trade-mlp's primary and whether version v is loaded, from `routes --json`. */
static void route_of(const char *ctl, const char *sock, const char *model, int *ret_primary,
		     int *ret_nvers)
{
	cJSON *j = qvt_ctl_json(ctl, sock, "routes", NULL);
	const cJSON *r;
	*ret_primary = -1;
	*ret_nvers = 0;
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "routes"))
	{
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "name");
		if (!cJSON_IsString(n) || strcmp(n->valuestring, model) != 0)
			continue;
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "primary");
		*ret_primary = cJSON_IsNumber(p) ? p->valueint : -1;
		*ret_nvers = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "versions"));
	}
	cJSON_Delete(j);
}

static int log_count(const struct qvt_daemon *d, const char *needle)
{
	FILE *f = fopen(d->log, "r");
	char line[1024];
	int n = 0;
	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return n;
}

static void wait_log(const struct qvt_daemon *d, const char *needle, int count)
{
	uint64_t until = qvt_now_ns() + 20000000000ull;
	while (log_count(d, needle) < count && qvt_now_ns() < until)
		qvt_sleep_ms(20);
	if (log_count(d, needle) < count)
		qvt_fail("the log never said '%s' %d times", needle, count);
}

int main(int argc, char **argv)
{
	char repo[] = "/tmp/qv-reload-XXXXXX", cmd[512];
	struct qvt_daemon d;
	int primary, nvers;

	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	if (!mkdtemp(repo))
		qvt_die("mkdtemp: %m");
	link_version(argv[2], repo, "trade-mlp", 1);
	/* fb: trade-mlp's version 1 as its version 1, and a broken version 2 */
	{
		char a[4096], real[4096], b[16384];
		snprintf(a, sizeof(a), "%s/trade-mlp/1/model.onnx", argv[2]);
		if (!realpath(a, real))
			qvt_die("realpath %s: %m", a);
		snprintf(b, sizeof(b), "mkdir -p %s/fb/1 %s/fb/2 && ln -s %s %s/fb/1/model.onnx && "
			 "printf 'not a model' > %s/fb/2/model.onnx", repo, repo, real, repo, repo);
		if (system(b) != 0)
			qvt_die("cannot build fb");
	}
	if (qvt_daemon_start(&d, argv[1], repo, NULL) < 0)
		qvt_die("quiverd did not start");
	qv_client *c = qvt_connect(d.sock, "e2e-reload", 4);
	struct qvt_model m;
	qvt_model_open(c, argv[2], "trade-mlp", &m);   /* references of version 1 */
	qvt_infer_check(c, &m, 0, 2, "before SIGHUP");
	{
		struct qvt_model fb;
		memset(&fb, 0, sizeof(fb));
		if (qv_model_lookup(c, "fb", &fb.desc) < 0 || fb.desc.version != 1) {
			qvt_fail("fb: its broken version 2 left it without version 1 as primary");
		} else {
			if (qvt_ref_load(argv[2], "trade-mlp", 1, &fb.ref) < 0)
				qvt_die("references of trade-mlp/1");
			qvt_infer_check(c, &fb, 0, 2, "fb served from version 1");
			qvt_ref_free(&fb.ref);
		}
		if (log_count(&d, "model fb: version 2 failed to load; serving version 1") != 1)
			qvt_fail("the fallback to fb/1 was not logged");
	}

	link_version(argv[2], repo, "trade-mlp", 2);
	link_version(argv[2], repo, "echo", 1);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/fb/3 && printf 'broken' > %s/fb/3/model.onnx", repo,
		 repo);
	if (system(cmd) != 0)
		qvt_die("cannot add fb/3");
	if (kill(d.pid, SIGHUP) < 0)
		qvt_die("kill: %m");
	wait_log(&d, "SIGHUP: repository reloaded", 1);
	if (log_count(&d, "SIGHUP: repository reloaded, 2 new versions loaded") != 1)
		qvt_fail("the reload did not load exactly 2 versions");
	if (!qvt_daemon_alive(&d))
		qvt_die("SIGHUP killed quiverd");

	route_of(argv[4], d.sock, "trade-mlp", &primary, &nvers);
	if (primary != 1 || nvers != 2)
		qvt_fail("trade-mlp after reload: primary %d, %d versions; want 1 and 2", primary, nvers);
	route_of(argv[4], d.sock, "fb", &primary, &nvers);
	if (primary != 1 || nvers != 1)
		qvt_fail("fb after a reload with a broken version 3: primary %d, %d versions", primary,
			 nvers);
	qvt_infer_check(c, &m, 2, 2, "after SIGHUP, the same client and primary");

	struct qv_model_desc ed;
	if (qv_model_lookup(c, "echo", &ed) < 0) {
		qvt_fail("echo is not served after SIGHUP");
	} else {
		float in[16], out[16];
		struct qv_request rq = { .handle = ed.handle, .rows = 1, .input = in, .request_id = 9 };
		struct qv_result res;
		for (int i = 0; i < 16; i++)
			in[i] = (float)i * 0.5f;
		if (qv_infer(c, &rq, out, 16, 2000, &res) < 0 || res.status != QV_OK ||
		    memcmp(in, out, sizeof(in)) != 0)
			qvt_fail("echo after SIGHUP does not answer its input");
	}

	/* Nothing new: nothing loads, nothing changes. */
	kill(d.pid, SIGHUP);
	wait_log(&d, "SIGHUP: repository reloaded", 2);
	if (log_count(&d, "0 new versions loaded") != 1)
		qvt_fail("a second SIGHUP with nothing new loaded something");
	route_of(argv[4], d.sock, "trade-mlp", &primary, &nvers);
	if (primary != 1 || nvers != 2)
		qvt_fail("trade-mlp after a second reload: primary %d, %d versions", primary, nvers);

	qv_close(c);
	qvt_ref_free(&m.ref);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", repo);
	if (system(cmd) != 0)
		qvt_fail("cleanup of %s failed", repo);
	return qvt_finish(&d);
}
