/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_load_async.c - `quiverctl load` builds on the loader thread, so the
 * control thread keeps serving while a load is in flight. quiverd runs
 * with QUIVERD_TEST_LOAD_GATE=FILE: every build waits until FILE exists,
 * so "in flight" is a state the test holds, not a race it hopes to win.
 *
 * While trade-mlp/2 is held in flight: `stats` and `models` answer (models
 * still without version 2), a new client hand-shakes, looks trade-mlp up
 * and gets version 1's reference outputs, a second load of trade-mlp/2 is
 * refused -EBUSY "already in progress", and the quiverctl that asked is
 * still waiting, and a SIGHUP's reload waits for the build. Once the gate
 * opens, that quiverctl gets "ready" (and the reload runs), and
 * after a swap a new client gets version 2's reference outputs (torch's,
 * written by the generator). A load whose quiverctl is killed before the
 * answer still completes (logged, served). A load in flight when quiverd
 * is told to stop is answered -ESHUTDOWN "cancelled" and quiverd exits 0.
 *
 * Usage: test_load_async QUIVERD REPO CLIENT QUIVERCTL
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "routing.h"

static const char *q;
static char gate[256];

static int log_count(const struct qvt_daemon *d, const char *needle)
{
	FILE *f = fopen(d->log, "r");
	char line[2048];
	int n = 0;

	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return n;
}

static void wait_log(const struct qvt_daemon *d, const char *needle, int count)
{
	uint64_t until = qvt_now_ns() + 60000000000ull;

	while (log_count(d, needle) < count && qvt_now_ns() < until)
		qvt_sleep_ms(20);
	if (log_count(d, needle) < count)
		qvt_die("the log never said '%s' %d times", needle, count);
}

/* `quiverctl --json load NAME V --path DIR` in the background, stdout to out_file. */
static pid_t spawn_load(const char *sock, const char *name, const char *ver, const char *dir,
			const char *out_file)
{
	pid_t pid = fork();

	if (pid < 0)
		qvt_die("fork: %m");
	if (pid == 0) {
		int fd = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, 1) < 0)
			_exit(126);
		execl(q, q, "--socket", sock, "--json", "load", name, ver, "--path", dir,
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Waits for pid (60 s at most); its exit code, or -1. */
static int wait_exit(pid_t pid)
{
	uint64_t until = qvt_now_ns() + 60000000000ull;
	int st;

	while (qvt_now_ns() < until) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		if (r < 0)
			return -1;
		qvt_sleep_ms(20);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static void read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, cap - 1, f) : 0;

	buf[n] = '\0';
	if (f)
		fclose(f);
}

static void gate_open(void)
{
	int fd = open(gate, O_WRONLY | O_CREAT, 0600);

	if (fd < 0)
		qvt_die("%s: %m", gate);
	close(fd);
}

/* The versions of `name` in `models --json`, as a bit set. */
static uint32_t model_versions(const char *sock, const char *name)
{
	cJSON *j = qvt_ctl_json(q, sock, "models", NULL);
	const cJSON *m;
	uint32_t set = 0;

	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(j, "models")) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "name");
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "version");
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(m, "state");
		if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0 && cJSON_IsNumber(v) &&
		    cJSON_IsString(s) && strcmp(s->valuestring, "ready") == 0 && v->valueint < 32)
			set |= 1u << v->valueint;
	}
	cJSON_Delete(j);
	return set;
}

static void link_version(const char *src, const char *repo, const char *model, int v)
{
	char a[4096], real[4096], cmd[16384];

	snprintf(a, sizeof(a), "%s/%s/%d/model.onnx", src, model, v);
	if (!realpath(a, real))
		qvt_die("realpath %s: %m", a);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/%s/%d && ln -s %s %s/%s/%d/model.onnx", repo,
		 model, v, real, repo, model, v);
	if (system(cmd) != 0)
		qvt_die("cannot link %s/%d", model, v);
}

int main(int argc, char **argv)
{
	char repo[] = "/tmp/qv-loadasync-XXXXXX", dir[4096], out_file[300], out[8192], cmd[8300];
	struct qvt_daemon d;
	int32_t st;
	cJSON *j;

	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	q = argv[4];
	if (!mkdtemp(repo))
		qvt_die("mkdtemp: %m");
	link_version(argv[2], repo, "trade-mlp", 1);
	snprintf(gate, sizeof(gate), "%s/gate", repo);
	snprintf(out_file, sizeof(out_file), "%s/ctl.out", repo);
	setenv("QUIVERD_TEST_LOAD_GATE", gate, 1);
	if (qvt_daemon_start(&d, argv[1], repo, NULL) < 0)
		qvt_die("quiverd did not start");
	qvt_need_routing(&d);

	/* 1. trade-mlp/2 held in flight. */
	snprintf(dir, sizeof(dir), "%s/trade-mlp/2", argv[2]);
	pid_t ctl = spawn_load(d.sock, "trade-mlp", "2", dir, out_file);
	wait_log(&d, "load trade-mlp/2: building on the loader thread", 1);

	j = qvt_ctl_json(q, d.sock, "stats", NULL);   /* dies unless it answers */
	if (!qvt_route_of(j, "trade-mlp"))
		qvt_fail("stats during the load: no trade-mlp route");
	cJSON_Delete(j);
	if (model_versions(d.sock, "trade-mlp") != (1u << 1))
		qvt_fail("models during the load: trade-mlp versions 0x%x, want only 1",
			 model_versions(d.sock, "trade-mlp"));
	{
		qv_client *c = qvt_connect(d.sock, "e2e-load-async", 4);
		struct qvt_model m;
		qvt_model_open(c, argv[2], "trade-mlp", &m);
		if (m.desc.version != 1)
			qvt_fail("lookup during the load: version %u, want 1", m.desc.version);
		qvt_infer_check(c, &m, 0, 8, "a new client during the load");
		qvt_ref_free(&m.ref);
		qv_close(c);
	}
	j = qvt_cmd(d.sock, &st, "{\"cmd\":\"load\",\"name\":\"trade-mlp\",\"version\":2,"
		    "\"path\":\"%s\"}", dir);
	{
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
		if (st != -EBUSY || !cJSON_IsString(e) ||
		    !strstr(e->valuestring, "load trade-mlp/2 already in progress"))
			qvt_fail("a second load of trade-mlp/2 in flight: status %d, error %s", st,
				 cJSON_IsString(e) ? e->valuestring : "(none)");
	}
	cJSON_Delete(j);
	if (waitpid(ctl, &st, WNOHANG) != 0)
		qvt_fail("quiverctl load returned while its build was held");
	/* SIGHUP meanwhile: the reload waits for the build (one build at a time). */
	if (kill(d.pid, SIGHUP) < 0)
		qvt_die("kill: %m");
	wait_log(&d, "SIGHUP: a load is being built; the reload follows it", 1);
	if (log_count(&d, "SIGHUP: repository reloaded") != 0)
		qvt_fail("the reload ran beside a build in flight");

	/* 2. The gate opens: the load completes and serves the right outputs. */
	gate_open();
	if (wait_exit(ctl) != 0)
		qvt_fail("quiverctl load trade-mlp 2 did not exit 0");
	wait_log(&d, "SIGHUP: repository reloaded, 0 new versions loaded", 1);
	read_file(out_file, out, sizeof(out));
	j = cJSON_Parse(out);
	{
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "state");
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
		if (!cJSON_IsString(s) || strcmp(s->valuestring, "ready") != 0 || !cJSON_IsNumber(v) ||
		    v->valueint != 2)
			qvt_fail("load trade-mlp 2 answered: %s", out);
	}
	cJSON_Delete(j);
	if (model_versions(d.sock, "trade-mlp") != ((1u << 1) | (1u << 2)))
		qvt_fail("after the load: trade-mlp versions 0x%x, want 1 and 2",
			 model_versions(d.sock, "trade-mlp"));
	cJSON_Delete(qvt_cmd_ok(d.sock, "{\"cmd\":\"swap\",\"name\":\"trade-mlp\",\"version\":2}"));
	{
		qv_client *c = qvt_connect(d.sock, "e2e-load-async-2", 4);
		struct qvt_model m;
		qvt_model_open(c, argv[2], "trade-mlp", &m);
		if (m.desc.version != 2)
			qvt_fail("after the swap: version %u, want 2", m.desc.version);
		qvt_infer_check(c, &m, 0, 16, "version 2 loaded off the control thread");
		qvt_ref_free(&m.ref);
		qv_close(c);
	}
	/* A load that fails on the loader thread says why, as before. */
	snprintf(cmd, sizeof(cmd), "{\"cmd\":\"load\",\"name\":\"trade-mlp\",\"version\":7,"
		 "\"path\":\"%s/nowhere\"}", repo);
	j = qvt_cmd(d.sock, &st, "%s", cmd);
	{
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
		if (st != -ENOENT || !cJSON_IsString(e) || !strstr(e->valuestring, "no MLmodel, model.onnx"))
			qvt_fail("a load from a missing directory: status %d, error %s", st,
				 cJSON_IsString(e) ? e->valuestring : "(none)");
	}
	cJSON_Delete(j);

	/* 3. The client hangs up before the answer: the load still completes. */
	unlink(gate);
	snprintf(dir, sizeof(dir), "%s/echo/1", argv[2]);
	ctl = spawn_load(d.sock, "echo", "1", dir, out_file);
	wait_log(&d, "load echo/1: building on the loader thread", 1);
	kill(ctl, SIGKILL);
	waitpid(ctl, &st, 0);
	gate_open();
	wait_log(&d, "load echo/1 done; the client that asked hung up before the answer", 1);
	if (model_versions(d.sock, "echo") != (1u << 1))
		qvt_fail("echo/1 is not served after its client hung up");
	qvt_serves(d.sock, argv[2], "echo", 4, "echo loaded for a client that hung up");

	/* 4. quiverd stops with a load in flight: cancelled, answered, exit 0. */
	unlink(gate);
	snprintf(dir, sizeof(dir), "%s/ctr-mlp/1", argv[2]);
	ctl = spawn_load(d.sock, "ctr-mlp", "1", dir, out_file);
	wait_log(&d, "load ctr-mlp/1: building on the loader thread", 1);
	{
		int ws;
		if (qvt_daemon_stop(&d, 30000, &ws) < 0)
			qvt_fail("quiverd did not exit within 30 s of SIGTERM with a load in flight");
		else if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
			qvt_fail("quiverd exit status 0x%x with a load in flight, want exit 0", ws);
	}
	if (wait_exit(ctl) == 0)
		qvt_fail("quiverctl load ctr-mlp 1 exited 0 though quiverd stopped");
	read_file(out_file, out, sizeof(out));
	if (!strstr(out, "load ctr-mlp/1: cancelled: quiverd is draining"))
		qvt_fail("the cancelled load answered: %s", out);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", repo);
	if (system(cmd) != 0)
		qvt_fail("cleanup of %s failed", repo);
	return qvt_finish(&d);
}
