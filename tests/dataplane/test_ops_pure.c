/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ops_pure.c - the operator-facing pieces of quiverd that need no
 * daemon: sd_notify datagrams to a path and to an abstract socket, refusals
 * of unusable NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID values, the
 * worker-progress rule behind WATCHDOG=1, and the JSON log line (escaping,
 * typed fields, model and version picked out of the format).
 */
#include <cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

static int failures;

#define CHECK(c)                                                                   \
	do {                                                                       \
		if (!(c)) {                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			failures++;                                                \
		}                                                                  \
	} while (0)

static int bind_dgram(const char *name, int abstract)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (abstract) {
		sa.sun_path[0] = '\0';
		memcpy(sa.sun_path + 1, name, strlen(name));
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	} else {
		if (strlen(name) >= sizeof(sa.sun_path)) {
			close(fd);
			return -1;
		}
		memcpy(sa.sun_path, name, strlen(name) + 1);
		len = sizeof(sa);
	}
	if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void recv_is(int fd, const char *want)
{
	char buf[512];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	CHECK(n == (ssize_t)strlen(want));
	if (n >= 0) {
		buf[n] = '\0';
		CHECK(strcmp(buf, want) == 0);
	}
}

static void test_notify(void)
{
	char dir[] = "/tmp/qv-notify-XXXXXX", path[128], abs_name[64], env[80];
	int fd, afd;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/notify", dir);
	fd = bind_dgram(path, 0);
	CHECK(fd >= 0);

	unsetenv("NOTIFY_SOCKET");
	CHECK(qv_notify_send("READY=1") == 0);     /* not under a service manager */
	setenv("NOTIFY_SOCKET", path, 1);
	CHECK(qv_notify_send("READY=1\nSTATUS=x") == 1);
	recv_is(fd, "READY=1\nSTATUS=x");
	CHECK(qv_notify_send("STOPPING=1") == 1);
	recv_is(fd, "STOPPING=1");

	snprintf(abs_name, sizeof(abs_name), "qv-notify-test-%d", (int)getpid());
	afd = bind_dgram(abs_name, 1);
	CHECK(afd >= 0);
	snprintf(env, sizeof(env), "@%s", abs_name);
	setenv("NOTIFY_SOCKET", env, 1);
	CHECK(qv_notify_send("WATCHDOG=1") == 1);
	recv_is(afd, "WATCHDOG=1");

	/* A receiver that never reads: the sender is told, and never blocks. */
	setenv("NOTIFY_SOCKET", path, 1);
	{
		int r = 1, sent = 0;
		while (sent < 100000 && (r = qv_notify_send("WATCHDOG=1")) == 1)
			sent++;
		CHECK(r == -EAGAIN);
		CHECK(sent < 100000);
	}

	/* Addresses it cannot use: relative, vsock, a lone '@', nobody listening. */
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	CHECK(qv_notify_send("READY=1") == -EINVAL);
	setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
	CHECK(qv_notify_send("READY=1") == -EINVAL);
	setenv("NOTIFY_SOCKET", "@", 1);
	CHECK(qv_notify_send("READY=1") == -EINVAL);
	snprintf(env, sizeof(env), "%s/nobody", dir);
	setenv("NOTIFY_SOCKET", env, 1);
	CHECK(qv_notify_send("READY=1") == -ENOENT);
	unsetenv("NOTIFY_SOCKET");

	close(fd);
	close(afd);
	unlink(path);
	rmdir(dir);
}

static void test_watchdog_env(void)
{
	uint64_t us = 0;
	char pid[32];

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	CHECK(qv_notify_watchdog_usec(&us) == 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	CHECK(qv_notify_watchdog_usec(&us) == 1 && us == 30000000u);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	us = 0;
	CHECK(qv_notify_watchdog_usec(&us) == 1 && us == 30000000u);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	CHECK(qv_notify_watchdog_usec(&us) == 0);   /* meant for another process */
	setenv("WATCHDOG_PID", "x", 1);
	CHECK(qv_notify_watchdog_usec(&us) == -EINVAL);
	unsetenv("WATCHDOG_PID");
	static const char *const bad[] = { "", "0", "-5", "12abc", "+3", "99999999999999999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("WATCHDOG_USEC", bad[i], 1);
		CHECK(qv_notify_watchdog_usec(&us) == -EINVAL);
	}
	unsetenv("WATCHDOG_USEC");
}

static void test_progress(void)
{
	uint64_t seen[3] = { 0, 0, 0 }, beats[3] = { 1, 1, 1 };

	CHECK(qv_workers_progressed(beats, seen, 3));
	CHECK(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
	beats[0] = 2;
	beats[2] = 5;   /* worker 1 is stuck */
	CHECK(!qv_workers_progressed(beats, seen, 3));
	beats[1] = 2;   /* it moves again; so must the others, since the last check */
	CHECK(!qv_workers_progressed(beats, seen, 3));
	beats[0] = 3;
	beats[1] = 3;
	beats[2] = 6;
	CHECK(qv_workers_progressed(beats, seen, 3));
	CHECK(qv_workers_progressed(beats, seen, 0));   /* no workers: nothing stuck */
}

static size_t line(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static size_t line(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = qv_log_json_line(buf, cap, QV_LOG_WARN, "2026-01-02T03:04:05.006Z", 42, fmt, ap);
	va_end(ap);
	return n;
}

static void test_json_log(void)
{
	char buf[1024];
	cJSON *o;
	const cJSON *f;
	size_t n;

	n = line(buf, sizeof(buf), "model %s: version %u loaded in %.1f ms (handle %u, %llu rows, %zu B, %d%%)",
		 "trade-mlp", 3u, 1.25, 7u, 123456789012ull, (size_t)64, -2);
	CHECK(n == strlen(buf) && n > 0);
	o = cJSON_Parse(buf);
	CHECK(o != NULL);
	CHECK(strcmp(cJSON_GetObjectItem(o, "ts")->valuestring, "2026-01-02T03:04:05.006Z") == 0);
	CHECK(strcmp(cJSON_GetObjectItem(o, "level")->valuestring, "warn") == 0);
	CHECK(cJSON_GetObjectItem(o, "pid")->valuedouble == 42);
	CHECK(strcmp(cJSON_GetObjectItem(o, "event")->valuestring,
		     "model %s: version %u loaded in %.1f ms (handle %u, %llu rows, %zu B, %d%%)") == 0);
	CHECK(strcmp(cJSON_GetObjectItem(o, "msg")->valuestring,
		     "model trade-mlp: version 3 loaded in 1.2 ms (handle 7, 123456789012 rows, 64 B, -2%)") == 0 ||
	      strcmp(cJSON_GetObjectItem(o, "msg")->valuestring,
		     "model trade-mlp: version 3 loaded in 1.3 ms (handle 7, 123456789012 rows, 64 B, -2%)") == 0);
	CHECK(strcmp(cJSON_GetObjectItem(o, "model")->valuestring, "trade-mlp") == 0);
	CHECK(cJSON_GetObjectItem(o, "version")->valuedouble == 3);
	f = cJSON_GetObjectItem(o, "fields");
	CHECK(cJSON_GetArraySize(f) == 7);
	CHECK(strcmp(cJSON_GetArrayItem(f, 0)->valuestring, "trade-mlp") == 0);
	CHECK(cJSON_GetArrayItem(f, 2)->valuedouble == 1.25);
	CHECK(cJSON_GetArrayItem(f, 4)->valuedouble == 123456789012.0);
	CHECK(cJSON_GetArrayItem(f, 6)->valuedouble == -2);
	cJSON_Delete(o);

	/* "%s/%u" names a model version; quotes, backslashes and newlines escape. */
	n = line(buf, sizeof(buf), "load %s/%u: %s", "ctr", 12u, "bad \"node\"\\\n\tend");
	o = cJSON_Parse(buf);
	CHECK(o != NULL && strchr(buf, '\n') == NULL);
	CHECK(strcmp(cJSON_GetObjectItem(o, "model")->valuestring, "ctr") == 0);
	CHECK(cJSON_GetObjectItem(o, "version")->valuedouble == 12);
	CHECK(strcmp(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "fields"), 2)->valuestring,
		     "bad \"node\"\\\n\tend") == 0);
	cJSON_Delete(o);

	/* No model in the event: neither key. */
	line(buf, sizeof(buf), "udp: listening on port %u", 9000u);
	o = cJSON_Parse(buf);
	CHECK(o && !cJSON_GetObjectItem(o, "model") && !cJSON_GetObjectItem(o, "version"));
	cJSON_Delete(o);

	/* A line too long for the buffer is still one JSON object. */
	char big[700];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	n = line(buf, 200, "%s", big);
	CHECK(n < 200);
	o = cJSON_Parse(buf);
	CHECK(o != NULL);
	cJSON_Delete(o);

	enum qv_log_format fmt;
	CHECK(qv_log_parse_format("json", &fmt) == 0 && fmt == QV_LOG_JSON);
	CHECK(qv_log_parse_format("text", &fmt) == 0 && fmt == QV_LOG_TEXT);
	CHECK(qv_log_parse_format("xml", &fmt) == -EINVAL);
	CHECK(qv_log_parse_format("", &fmt) == -EINVAL);
}

int main(void)
{
	test_notify();
	test_watchdog_env();
	test_progress();
	test_json_log();
	if (failures) {
		fprintf(stderr, "%d checks failed\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
