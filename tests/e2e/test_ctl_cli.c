/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ctl_cli.c - quiverctl's argument handling and exit codes, without a
 * real daemon: bad arguments exit 2 with a message, a missing daemon exits
 * 3, and against a fake daemon (a thread in this test answering canned
 * replies on a SOCK_SEQPACKET socket) a good reply exits 0 and renders, an
 * error reply exits 1, a permission error 4, a garbled reply 1 and a
 * silent daemon 3. The request quiverctl sends is checked too.
 *
 * Usage: test_ctl_cli QUIVERCTL
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "qv_proto.h"

static const char *quiverctl;
static int failures;

enum mode { M_STATUS, M_MODELS, M_ERROR, M_EACCES, M_GARBLED, M_SILENT, M_NOTJSON, M_ECHO,
	    M_EPERM, M_ROUTES, M_STATS, M_METRICS, M_PARTS, M_BADPART, M_PARTERR };
static _Atomic int mode;
static _Atomic int requests_ok;   /* requests that were well-formed */
/* Written by the fake daemon's thread, read by main after quiverctl exits:
 * that order goes through another process, which gives no happens-before
 * between the two threads, so the mutex does (ThreadSanitizer checks). */
static pthread_mutex_t last_mu = PTHREAD_MUTEX_INITIALIZER;
static char last_cmd[64];
static char last_req[2048];   /* the request of M_ECHO, answered as is */

static const char routes_json[] =
	"{\"routes\":[{\"name\":\"trade-mlp\",\"handle\":2,\"primary\":2,\"previous\":1,"
	"\"canary\":{\"version\":3,\"ppm\":5000,\"sticky\":true},"
	"\"shadow\":{\"version\":4,\"ppm\":1000000},"
	"\"fallback\":{\"version\":1,\"on\":[\"error\",\"nonfinite\"],\"manual\":false},"
	"\"versions\":[{\"version\":1,\"state\":\"ready\"},{\"version\":2,\"state\":\"ready\"}]},"
	"{\"name\":\"echo\",\"handle\":1,\"primary\":1,\"previous\":null,\"canary\":null,"
	"\"shadow\":null,\"fallback\":null,\"versions\":\"garbage\"}]}";
static const char stats_json[] =
	"{\"routes\":[{\"name\":\"trade-mlp\",\"handle\":2,\"versions\":[{\"version\":2,"
	"\"requests\":1000,\"ok\":990,\"status\":{\"OK\":990,\"BAD_SHAPE\":10},\"canary\":0,"
	"\"shadow\":0,\"shadow_disagree\":0,\"fallback\":7,\"p50_ns\":4200,\"p99_ns\":9100,"
	"\"p999_ns\":15000}]}]}";
static const char metrics_json[] =
	"{\"text\":\"# TYPE quiver_requests_total counter\\nquiver_requests_total{model=\\\"t\\\","
	"version=\\\"2\\\",status=\\\"OK\\\"} 990\"}";

static const char status_json[] =
	"{\"state\":\"running\",\"uptime_s\":3725,\"workers\":[{\"id\":0,\"core\":1,"
	"\"numa_node\":0,\"channels\":2,\"requests\":1234,\"busy_cycles\":1000,"
	"\"idle_cycles\":3000}],\"channels\":2,\"requests_served\":1234,"
	"\"models_loaded\":3,\"models_failed\":0}";
static const char models_json[] =
	"{\"models\":[{\"name\":\"trade-mlp\",\"handle\":0,\"version\":2,\"state\":\"ready\","
	"\"in_shape\":[-1,32],\"out_shape\":[-1,1],\"max_batch\":256,\"error\":null},"
	"{\"name\":\"a-model-with-a-long-name\",\"handle\":1,\"version\":1,\"state\":\"failed\","
	"\"in_shape\":[-1,8],\"out_shape\":[-1,2],\"max_batch\":16,\"error\":\"node 'x': bad\"}]}";

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("FAIL: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	failures++;
}

static void reply(int fd, const struct qv_msg_hdr *req, uint16_t type, int32_t status,
		  const char *json, uint32_t magic)
{
	uint8_t buf[8192];
	size_t n = strlen(json);
	struct qv_msg_hdr h = { .magic = magic, .type = type, .version = QV_PROTO_VERSION,
				.len = (uint32_t)n, .seq = req->seq, .status = status };
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), json, n);
	send(fd, buf, sizeof(h) + n, MSG_NOSIGNAL);
}

/*
 * A long reply as the daemon sends it: QV_MSG_CHUNK-byte PART packets and
 * a final CMD_REPLY; `bad` 1 makes the first part one byte short, 2 ends
 * the parts with an ERROR instead of the final reply.
 */
static void reply_parts(int fd, const struct qv_msg_hdr *req, int bad)
{
	static char json[3 * QV_MSG_CHUNK + 100];
	static uint8_t pkt[sizeof(struct qv_msg_hdr) + QV_MSG_CHUNK];
	size_t n = (size_t)snprintf(json, sizeof(json), "{\"pad\":\"");
	while (n < 2 * QV_MSG_CHUNK + 1000)
		json[n++] = 'x';
	n += (size_t)snprintf(json + n, sizeof(json) - n, "\",%s", status_json + 1);
	for (size_t off = 0; off < n;) {
		size_t left = n - off, take = left <= QV_MSG_CHUNK ? left : QV_MSG_CHUNK;
		uint16_t type = left <= QV_MSG_CHUNK ? QV_MSG_CMD_REPLY : QV_MSG_CMD_REPLY_PART;
		if (bad == 1 && off == 0)
			take--;
		if (bad == 2 && type == QV_MSG_CMD_REPLY)
			type = QV_MSG_ERROR;
		struct qv_msg_hdr h = { .magic = QV_PROTO_MAGIC, .type = type,
					.version = QV_PROTO_VERSION, .len = (uint32_t)take,
					.seq = req->seq };
		memcpy(pkt, &h, sizeof(h));
		memcpy(pkt + sizeof(h), json + off, take);
		if (send(fd, pkt, sizeof(h) + take, MSG_NOSIGNAL) < 0)
			return;
		off += take;
	}
}

/* One request a connection, answered by the current mode. */
static void *fake_daemon(void *arg)
{
	int lfd = *(int *)arg;
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return NULL;
		uint8_t buf[8192];
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
		struct qv_msg_hdr h;
		if (n < (ssize_t)sizeof(h)) {
			close(fd);
			continue;
		}
		memcpy(&h, buf, sizeof(h));
		buf[n] = '\0';
		cJSON *j = cJSON_Parse((const char *)buf + sizeof(h));
		const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(j, "cmd");
		if (h.magic == QV_PROTO_MAGIC && h.type == QV_MSG_CMD &&
		    h.version == QV_PROTO_VERSION && h.len == (size_t)n - sizeof(h) &&
		    cJSON_IsString(cmd)) {
			atomic_fetch_add(&requests_ok, 1);
			pthread_mutex_lock(&last_mu);
			snprintf(last_cmd, sizeof(last_cmd), "%s", cmd->valuestring);
			size_t rn = (size_t)n - sizeof(h) < sizeof(last_req) - 1
					    ? (size_t)n - sizeof(h) : sizeof(last_req) - 1;
			memcpy(last_req, buf + sizeof(h), rn);
			last_req[rn] = '\0';
			pthread_mutex_unlock(&last_mu);
		}
		cJSON_Delete(j);
		switch (atomic_load(&mode)) {
		case M_STATUS:
			reply(fd, &h, QV_MSG_CMD_REPLY, 0, status_json, QV_PROTO_MAGIC);
			break;
		case M_MODELS:
			reply(fd, &h, QV_MSG_CMD_REPLY, 0, models_json, QV_PROTO_MAGIC);
			break;
		case M_ERROR:
			reply(fd, &h, QV_MSG_CMD_REPLY, -EINVAL, "{\"error\":\"boom: no such thing\"}",
			      QV_PROTO_MAGIC);
			break;
		case M_EACCES:
			reply(fd, &h, QV_MSG_CMD_REPLY, -EACCES, "{\"error\":\"not an admin\"}",
			      QV_PROTO_MAGIC);
			break;
		case M_GARBLED:
			reply(fd, &h, QV_MSG_CMD_REPLY, 0, status_json, 0xdeadbeef);
			break;
		case M_NOTJSON:
			reply(fd, &h, QV_MSG_CMD_REPLY, 0, "{\"state\":", QV_PROTO_MAGIC);
			break;
		case M_ECHO:
			reply(fd, &h, QV_MSG_CMD_REPLY, 0, last_req, QV_PROTO_MAGIC);
			break;
		case M_EPERM:
			reply(fd, &h, QV_MSG_CMD_REPLY, -EPERM,
			      "{\"error\":\"swap trade-mlp/2: not an admin (uid 65534)\"}",
			      QV_PROTO_MAGIC);
			break;
		case M_ROUTES:
			reply(fd, &h, QV_MSG_CMD_REPLY, 0, routes_json, QV_PROTO_MAGIC);
			break;
		case M_STATS:
			reply(fd, &h, QV_MSG_CMD_REPLY, 0, stats_json, QV_PROTO_MAGIC);
			break;
		case M_METRICS:
			reply(fd, &h, QV_MSG_CMD_REPLY, 0, metrics_json, QV_PROTO_MAGIC);
			break;
		case M_PARTS:
		case M_BADPART:
		case M_PARTERR:
			reply_parts(fd, &h, atomic_load(&mode) == M_BADPART ? 1
					  : atomic_load(&mode) == M_PARTERR ? 2 : 0);
			break;
		case M_SILENT: {
			/* Hold the connection open without answering until the
			 * client gives up. */
			struct pollfd p = { .fd = fd, .events = POLLIN };
			poll(&p, 1, 5000);
			break;
		}
		}
		close(fd);
	}
}

static int run_env_argv(const char *env_socket, const char *const *argv, char *out, size_t ocap,
			char *err, size_t ecap);

/* Runs quiverctl with argv (NULL-terminated, without argv[0]); captures
 * stdout and stderr. Returns the exit code, or -1 if it did not exit. */
static int run(const char *env_socket, char *out, size_t ocap, char *err, size_t ecap, ...)
{
	const char *argv[16];
	int n = 0;
	va_list ap;
	argv[n++] = quiverctl;
	va_start(ap, ecap);
	const char *a;
	while ((a = va_arg(ap, const char *)) && n < 15)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return run_env_argv(env_socket, argv, out, ocap, err, ecap);
}

static int run_argv(const char *const *argv, char *out, size_t ocap, char *err, size_t ecap)
{
	return run_env_argv(NULL, argv, out, ocap, err, ecap);
}

static int run_env_argv(const char *env_socket, const char *const *argv, char *out, size_t ocap,
			char *err, size_t ecap)
{
	int po[2], pe[2];
	if (pipe(po) < 0 || pipe(pe) < 0) {
		perror("pipe");
		exit(1);
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		if (env_socket)
			setenv("QUIVER_SOCKET", env_socket, 1);
		else
			unsetenv("QUIVER_SOCKET");
		execv(quiverctl, (char *const *)argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	/* Outputs are small; read stdout then stderr (pipes hold 64 KiB). */
	size_t on = 0, en = 0;
	ssize_t k;
	while ((k = read(po[0], out + on, ocap - 1 - on)) > 0)
		on += (size_t)k;
	while ((k = read(pe[0], err + en, ecap - 1 - en)) > 0)
		en += (size_t)k;
	out[on] = '\0';
	err[en] = '\0';
	close(po[0]);
	close(pe[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char out[4 * QV_MSG_CHUNK], err[65536];

static void expect(int got, int want, const char *what)
{
	if (got != want)
		fail("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, got, want, out, err);
	else
		printf("ok: %s (exit %d)\n", what, got);
}

static void expect_in(const char *hay, const char *needle, const char *what)
{
	if (!strstr(hay, needle))
		fail("%s: '%s' not in output:\n%s", what, needle, hay);
}

#define RUN(env, ...) run(env, out, sizeof(out), err, sizeof(err), __VA_ARGS__, (char *)NULL)

static void usage_errors(void)
{
	static const char *const bad[][4] = {
		{ "bogus", NULL },
		{ "status", "extra", NULL },
		{ "--timeout", "abc", "status", NULL },
		{ "--timeout", "0", "status", NULL },
		{ "--socket", NULL },
		{ "--socket", "", "status", NULL },
		{ "-x", "status", NULL },
		{ "status", "--bogus", NULL },
		{ "--json", NULL },
	};
	expect(RUN("/nonexistent/s", NULL), 2, "no command at all");
	expect_in(err, "Usage", "no command prints usage");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char what[128];
		snprintf(what, sizeof(what), "usage error: %s %s %s", bad[i][0],
			 bad[i][1] ? bad[i][1] : "", bad[i][1] && bad[i][2] ? bad[i][2] : "");
		int r = run("/nonexistent/s", out, sizeof(out), err, sizeof(err), bad[i][0],
			    bad[i][1], bad[i][1] ? bad[i][2] : NULL, (char *)NULL);
		expect(r, 2, what);
		if (!strstr(err, "quiverctl: ") && !strstr(err, "Usage"))
			fail("%s: no message on stderr", what);
	}
	expect(RUN(NULL, "--help"), 0, "--help");
	expect_in(out, "Exit status", "--help documents exit codes");
	expect_in(out, "status", "--help lists commands");
	expect(RUN(NULL, "status", "--help"), 0, "status --help");
	expect_in(out, "Usage: quiverctl", "status --help");
	expect(RUN(NULL, "help", "models"), 0, "help models");
	expect_in(out, "models", "help models");
}

static void no_daemon(const char *dir)
{
	char path[100];
	snprintf(path, sizeof(path), "%s/absent.sock", dir);
	expect(RUN(NULL, "--socket", path, "status"), 3, "no daemon (--socket)");
	expect_in(err, path, "no daemon names the socket");
	expect(RUN(path, "models"), 3, "no daemon ($QUIVER_SOCKET)");
	expect_in(err, path, "$QUIVER_SOCKET is honoured");
	/* A socket file nobody listens on: ECONNREFUSED. */
	snprintf(path, sizeof(path), "%s/dead.sock", dir);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		expect(RUN(NULL, "--socket", path, "status"), 3, "stale socket, no listener");
	if (fd >= 0)
		close(fd);
	unlink(path);
}

/* The request quiverctl sent for argv equals `want` (compared as JSON). */
static void expect_req(const char *path, const char *want, ...)
{
	const char *argv[16] = { quiverctl, "--socket", path, "--json" };
	int n = 4;
	va_list ap;
	va_start(ap, want);
	for (const char *a; n < 15 && (a = va_arg(ap, const char *));)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	char what[256];
	snprintf(what, sizeof(what), "%s %s", argv[4], n > 5 ? argv[5] : "");
	int r = run_argv(argv, out, sizeof(out), err, sizeof(err));
	expect(r, 0, what);
	cJSON *got = cJSON_Parse(out), *exp = cJSON_Parse(want);
	if (!exp)
		fail("test bug: bad JSON %s", want);
	else if (!got || !cJSON_Compare(got, exp, true))
		fail("%s: sent %s, want %s", what, out, want);
	cJSON_Delete(got);
	cJSON_Delete(exp);
}

/* The control-plane commands: their requests, local refusals, views. */
static void control_cmds(const char *path)
{
	atomic_store(&mode, M_ECHO);
	expect_req(path, "{\"cmd\":\"load\",\"name\":\"m\",\"version\":3}", "load", "m", "3", NULL);
	expect_req(path, "{\"cmd\":\"load\",\"name\":\"m\",\"version\":3,\"path\":\"/x y\"}",
		   "load", "m", "--path", "/x y", "3", NULL);
	expect_req(path, "{\"cmd\":\"load\",\"name\":\"m\",\"version\":3,\"path\":\"/d\"}",
		   "load", "m", "3", "--path=/d", NULL);
	expect_req(path, "{\"cmd\":\"load\",\"name\":\"m\",\"version\":3,\"precision\":\"bf16\"}",
		   "load", "m", "3", "--precision", "bf16", NULL);
	expect_req(path, "{\"cmd\":\"unload\",\"name\":\"m\",\"version\":4294967295}", "unload",
		   "m", "4294967295", NULL);
	expect_req(path, "{\"cmd\":\"swap\",\"name\":\"m\",\"version\":1}", "swap", "m", "1", NULL);
	expect_req(path, "{\"cmd\":\"canary\",\"name\":\"m\",\"version\":2,\"ppm\":100000,"
		   "\"sticky\":false}", "canary", "m", "2", "--percent", "10", NULL);
	expect_req(path, "{\"cmd\":\"canary\",\"name\":\"m\",\"version\":2,\"ppm\":5000,"
		   "\"sticky\":true}", "canary", "--sticky", "m", "2", "--percent=0.5", NULL);
	expect_req(path, "{\"cmd\":\"canary\",\"name\":\"m\",\"version\":2,\"ppm\":1,"
		   "\"sticky\":false}", "canary", "m", "2", "--percent", "0.0001", NULL);
	expect_req(path, "{\"cmd\":\"canary\",\"name\":\"m\",\"version\":2,\"ppm\":1000000,"
		   "\"sticky\":false}", "canary", "m", "2", "--percent", "100", NULL);
	expect_req(path, "{\"cmd\":\"canary\",\"name\":\"m\",\"version\":0,\"ppm\":1000000,"
		   "\"sticky\":false}", "canary", "m", "0", NULL);
	expect_req(path, "{\"cmd\":\"shadow\",\"name\":\"m\",\"version\":2,\"ppm\":1000000}",
		   "shadow", "m", "2", NULL);
	expect_req(path, "{\"cmd\":\"shadow\",\"name\":\"m\",\"version\":2,\"ppm\":250000}",
		   "shadow", "m", "2", "--percent", "25", NULL);
	expect_req(path, "{\"cmd\":\"promote\",\"name\":\"m\"}", "promote", "m", NULL);
	expect_req(path, "{\"cmd\":\"rollback\",\"name\":\"m\"}", "rollback", "m", NULL);
	expect_req(path, "{\"cmd\":\"fallback\",\"name\":\"m\",\"version\":1,"
		   "\"on\":[\"error\",\"deadline\",\"nonfinite\"]}", "fallback", "m", "1", "--on",
		   "error,deadline,nonfinite", NULL);
	expect_req(path, "{\"cmd\":\"fallback\",\"name\":\"m\",\"version\":1,\"manual\":true}",
		   "fallback", "m", "1", "--manual", NULL);
	expect_req(path, "{\"cmd\":\"fallback\",\"name\":\"m\",\"clear\":true}", "fallback", "m",
		   "--clear", NULL);
	expect_req(path, "{\"cmd\":\"stats\"}", "stats", NULL);
	expect_req(path, "{\"cmd\":\"stats\",\"name\":\"m\"}", "stats", "m", NULL);
	expect_req(path, "{\"cmd\":\"routes\"}", "routes", NULL);
	expect_req(path, "{\"cmd\":\"metrics\"}", "metrics", NULL);
	expect_req(path, "{\"cmd\":\"drain\"}", "drain", NULL);
	expect_req(path, "{\"cmd\":\"failpoint\",\"name\":\"m\",\"version\":2,\"fail\":true}",
		   "failpoint", "m", "2", "on", NULL);
	expect_req(path, "{\"cmd\":\"failpoint\",\"name\":\"m\",\"version\":2,\"fail\":false}",
		   "failpoint", "m", "2", "off", NULL);

	/* Refused locally (exit 2) before anything is sent. */
	static const char *const bad[][7] = {
		{ "load", "m", NULL },
		{ "load", "m", "0", NULL },
		{ "load", "m", "x", NULL },
		{ "load", "m", "1", "--path", NULL },
		{ "load", "m", "1", "--precision", "fp16", NULL },
		{ "load", "m", "1", "--precision", NULL },
		{ "load", "m", "1", "2", NULL },
		{ "unload", "m", NULL },
		{ "swap", "m", "-1", NULL },
		{ "swap", "m", "4294967296", NULL },
		{ "swap", "m", "1", "--bogus", NULL },
		{ "canary", "m", "2", NULL },
		{ "canary", "m", "2", "--percent", "101", NULL },
		{ "canary", "m", "2", "--percent", "100.0001", NULL },
		{ "canary", "m", "2", "--percent", "-1", NULL },
		{ "canary", "m", "2", "--percent", "1e1", NULL },
		{ "canary", "m", "2", "--percent", "nan", NULL },
		{ "canary", "m", "2", "--percent", "0.00001", NULL },
		{ "canary", "m", "2", "--percent", ".5", NULL },
		{ "canary", "m", "2", "--percent", "5.", NULL },
		{ "canary", "m", "2", "--percent", "", NULL },
		{ "shadow", "m", "2", "--sticky", NULL },
		{ "shadow", "m", "2", "--percent", "200", NULL },
		{ "promote", NULL },
		{ "promote", "m", "2", NULL },
		{ "rollback", NULL },
		{ "failpoint", "m", "2", NULL },
		{ "failpoint", "m", "2", "yes", NULL },
		{ "failpoint", "m", "0", "on", NULL },
		{ "failpoint", "m", "2", "on", "x", NULL },
		{ "fallback", "m", "1", NULL },
		{ "fallback", "m", "1", "--on", "error,foo", NULL },
		{ "fallback", "m", "1", "--on", "error,error", NULL },
		{ "fallback", "m", "1", "--on", ",", NULL },
		{ "fallback", "m", "1", "--manual", "--clear", NULL },
		{ "fallback", "m", "--on", "error", NULL },
		{ "stats", "a", "b", NULL },
		{ "metrics", "x", NULL },
		{ "drain", "--now", NULL },
	};
	int before = atomic_load(&requests_ok);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *argv[12] = { quiverctl, "--socket", path };
		int n = 3;
		for (int k = 0; bad[i][k]; k++)
			argv[n++] = bad[i][k];
		argv[n] = NULL;
		char what[128];
		snprintf(what, sizeof(what), "bad: %s %s %s %s %s", bad[i][0],
			 bad[i][1] ? bad[i][1] : "", bad[i][1] && bad[i][2] ? bad[i][2] : "",
			 bad[i][1] && bad[i][2] && bad[i][3] ? bad[i][3] : "",
			 bad[i][1] && bad[i][2] && bad[i][3] && bad[i][4] ? bad[i][4] : "");
		expect(run_argv(argv, out, sizeof(out), err, sizeof(err)), 2, what);
		expect_in(err, bad[i][0], what);
	}
	if (atomic_load(&requests_ok) != before)
		fail("locally refused commands reached the daemon (%d requests)",
		     atomic_load(&requests_ok) - before);
	static const char *const cmds[] = { "load", "unload", "swap", "canary", "shadow",
					    "promote", "rollback", "fallback", "routes", "stats",
					    "metrics", "drain" };
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		expect(RUN(NULL, cmds[i], "--help"), 0, cmds[i]);
		expect_in(out, "Usage: quiverctl", cmds[i]);
		expect_in(out, cmds[i], "--help names the command");
	}

	atomic_store(&mode, M_EPERM);
	expect(RUN(NULL, "--socket", path, "swap", "trade-mlp", "2"), 4, "swap refused -EPERM");
	expect_in(err, "not an admin", "-EPERM message is shown");

	atomic_store(&mode, M_ROUTES);
	expect(RUN(NULL, "--socket", path, "routes"), 0, "routes");
	expect_in(out, "3@0.5% sticky", "routes shows the canary share");
	expect_in(out, "4@100%", "routes shows the shadow");
	expect_in(out, "1 on error,nonfinite", "routes shows the fallback triggers");
	expect_in(out, "1:ready,2:ready", "routes shows the versions");
	expect_in(out, "echo", "routes shows a route with nulls");
	atomic_store(&mode, M_STATS);
	expect(RUN(NULL, "--socket", path, "stats"), 0, "stats");
	expect_in(out, "P99.9_US", "stats header");
	expect_in(out, "15.0", "stats shows p99.9 in us");
	expect_in(out, "10 ", "stats shows the errors");
	atomic_store(&mode, M_METRICS);
	expect(RUN(NULL, "--socket", path, "metrics"), 0, "metrics");
	expect_in(out, "quiver_requests_total{model=\"t\",version=\"2\",status=\"OK\"} 990\n",
		  "metrics prints the Prometheus text");
}

static void fake(const char *dir)
{
	char path[100];
	snprintf(path, sizeof(path), "%s/fake.sock", dir);
	int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 8) < 0) {
		perror("fake daemon socket");
		exit(1);
	}
	pthread_t th;
	pthread_create(&th, NULL, fake_daemon, &lfd);

	atomic_store(&mode, M_STATUS);
	expect(RUN(NULL, "--socket", path, "status"), 0, "status");
	expect_in(out, "running", "status shows the state");
	expect_in(out, "1h 2m 5s", "status shows the uptime");
	expect_in(out, "1234", "status shows requests");
	expect_in(out, "25.0%", "status shows utilisation from busy/idle cycles");
	pthread_mutex_lock(&last_mu);
	if (strcmp(last_cmd, "status") != 0)
		fail("quiverctl sent cmd '%s', want 'status'", last_cmd);
	pthread_mutex_unlock(&last_mu);

	expect(RUN(NULL, "--socket", path, "--json", "status"), 0, "--json status");
	if (strncmp(out, status_json, strlen(status_json)) != 0)
		fail("--json does not print the daemon's JSON as is:\n%s", out);
	cJSON *j = cJSON_Parse(out);
	if (!j)
		fail("--json output does not parse");
	cJSON_Delete(j);
	expect(RUN(path, "status", "--json"), 0, "status --json after the command");
	if (strncmp(out, status_json, strlen(status_json)) != 0)
		fail("status --json does not print the daemon's JSON");

	atomic_store(&mode, M_MODELS);
	expect(RUN(NULL, "--socket", path, "models"), 0, "models");
	expect_in(out, "trade-mlp", "models lists the model");
	expect_in(out, "[-1,32]", "models shows the input shape");
	expect_in(out, "node 'x': bad", "models shows a load error");
	pthread_mutex_lock(&last_mu);
	if (strcmp(last_cmd, "models") != 0)
		fail("quiverctl sent cmd '%s', want 'models'", last_cmd);
	pthread_mutex_unlock(&last_mu);
	/* Columns are aligned: "trade-mlp" and the long name start their
	 * HANDLE column at the same offset. */
	const char *l1 = strstr(out, "trade-mlp"), *l2 = strstr(out, "a-model-with");
	if (l1 && l2) {
		const char *h1 = strstr(l1, "  0"), *h2 = strstr(l2, "  1");
		if (!h1 || !h2 || (h1 - l1) != (h2 - l2))
			fail("models: columns are not aligned:\n%s", out);
	}

	atomic_store(&mode, M_ERROR);
	expect(RUN(NULL, "--socket", path, "status"), 1, "daemon error");
	expect_in(err, "boom: no such thing", "daemon error message is shown");

	atomic_store(&mode, M_EACCES);
	expect(RUN(NULL, "--socket", path, "status"), 4, "permission denied");
	expect_in(err, "not an admin", "permission message is shown");

	atomic_store(&mode, M_GARBLED);
	expect(RUN(NULL, "--socket", path, "status"), 1, "garbled reply header");

	atomic_store(&mode, M_NOTJSON);
	expect(RUN(NULL, "--socket", path, "status"), 1, "reply that is not JSON");

	/* A reply in QV_MSG_CHUNK parts is put together whole... */
	atomic_store(&mode, M_PARTS);
	expect(RUN(NULL, "--socket", path, "--json", "status"), 0, "reply in parts");
	expect_in(out, "\"requests_served\":1234", "the end of a reply in parts is printed");
	if (strlen(out) < 2 * QV_MSG_CHUNK + 1000)
		fail("reply in parts: %zu bytes printed, want the whole reply", strlen(out));
	/* ...and a short part, or parts ended by an ERROR, are protocol errors. */
	atomic_store(&mode, M_BADPART);
	expect(RUN(NULL, "--socket", path, "--json", "status"), 1, "short reply part");
	atomic_store(&mode, M_PARTERR);
	expect(RUN(NULL, "--socket", path, "--json", "status"), 1, "parts ended by an error");

	atomic_store(&mode, M_SILENT);
	expect(RUN(NULL, "--socket", path, "--timeout", "200", "status"), 3, "silent daemon");

	control_cmds(path);

	if (atomic_load(&requests_ok) < 9)
		fail("only %d well-formed requests reached the fake daemon",
		     atomic_load(&requests_ok));
	shutdown(lfd, SHUT_RDWR);
	close(lfd);
	pthread_join(th, NULL);
	unlink(path);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s QUIVERCTL\n", argv[0]);
		return 2;
	}
	quiverctl = argv[1];
	char dir[] = "/tmp/qv-ctl-XXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	usage_errors();
	no_daemon(dir);
	fake(dir);
	rmdir(dir);
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
