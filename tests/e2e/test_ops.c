/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ops.c - quiverd as a service: --metrics-listen, sd_notify and JSON logs.
 *
 *  - bad --metrics-listen / --log-format values are refused with exit 2 and
 *    a message; a port already taken fails the start with exit 1;
 *  - under a fake NOTIFY_SOCKET with WATCHDOG_USEC set, quiverd sends
 *    READY=1 (after "quiverd ready"), WATCHDOG=1 repeatedly while its
 *    worker polls, and STOPPING=1 on SIGTERM, then exits 0;
 *  - GET /healthz and /readyz answer 200, other paths 404, POST 405;
 *  - after 40 requests of trade-mlp (checked against the reference
 *    outputs), a scrape of /metrics counts exactly 40 OK requests for that
 *    version, its three duration histograms have 40 observations, buckets
 *    that never decrease, and queue + compute sums that add up to the
 *    request sum; process_resident_memory_bytes agrees with /proc; the
 *    models gauge matches `quiverctl status`; the scrape passes
 *    `promtool check metrics` (skipped, saying so, when promtool is not
 *    installed); `quiverctl metrics` has the same families;
 *  - with --log-format json every line of the log is one JSON object with
 *    ts, level, event and msg, and the load event names model and version.
 *
 * Usage: test_ops QUIVERD REPO CLIENT QUIVERCTL
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "httpget.h"

#define NREQ 40

/* The value of the sample `series` (name and labels exactly), NAN if absent. */
static double metric(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *p = text;

	while ((p = strstr(p, series)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p += n;
	}
	return NAN;
}

/* Runs a shell command line; returns its exit status (or -1). */
static int sh(const char *cmd)
{
	int st = system(cmd);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int file_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int found = 0;

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

static void refused(const char *quiverd, const char *dir, const char *args, int want_status,
		    const char *want_msg)
{
	char cmd[1024], out[256];

	snprintf(out, sizeof(out), "%s/refused.txt", dir);
	snprintf(cmd, sizeof(cmd), "%s --foreground --repo %s --socket %s/r.sock %s >%s 2>&1",
		 quiverd, dir, dir, args, out);
	int st = sh(cmd);
	if (st != want_status)
		qvt_fail("quiverd %s: exit %d, want %d", args, st, want_status);
	if (!file_has(out, want_msg))
		qvt_fail("quiverd %s: no '%s' in what it printed", args, want_msg);
}

/* Datagrams received on the fake notify socket, appended to log[]. */
struct notes {
	int fd;
	char log[16384];
	size_t len;
	int watchdog;
};

static void notes_read(struct notes *n, int wait_ms)
{
	struct pollfd p = { .fd = n->fd, .events = POLLIN };
	char buf[512];

	while (poll(&p, 1, wait_ms) > 0) {
		ssize_t r = recv(n->fd, buf, sizeof(buf) - 1, 0);
		if (r <= 0)
			break;
		buf[r] = '\0';
		n->watchdog += strcmp(buf, "WATCHDOG=1") == 0;
		if (n->len + (size_t)r + 2 < sizeof(n->log)) {
			memcpy(n->log + n->len, buf, (size_t)r);
			n->len += (size_t)r;
			n->log[n->len++] = '|';
			n->log[n->len] = '\0';
		}
		wait_ms = 0;
	}
}

static void notes_wait(struct notes *n, const char *needle, uint32_t timeout_ms)
{
	uint64_t until = qvt_now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (!strstr(n->log, needle) && qvt_now_ns() < until)
		notes_read(n, 50);
	if (!strstr(n->log, needle))
		qvt_fail("no '%s' on NOTIFY_SOCKET within %u ms (got: %s)", needle, timeout_ms,
			 n->log);
}

static void check_hist(const char *text, const char *name, const char *model, uint32_t version,
		       double *ret_sum, double *ret_count)
{
	char prefix[256], series[256];
	const char *p = text;
	double last = -1;
	int nb = 0;

	snprintf(prefix, sizeof(prefix), "%s_bucket{model=\"%s\",version=\"%u\",le=\"", name,
		 model, version);
	while ((p = strstr(p, prefix)) != NULL) {
		const char *sp = strchr(p, ' ');
		double v = sp ? strtod(sp + 1, NULL) : -1;
		if (v < last)
			qvt_fail("%s: bucket %d has %g, less than the one before (%g)", name, nb, v, last);
		last = v;
		nb++;
		p += strlen(prefix);
	}
	snprintf(series, sizeof(series), "%s_count{model=\"%s\",version=\"%u\"}", name, model,
		 version);
	*ret_count = metric(text, series);
	snprintf(series, sizeof(series), "%s_bucket{model=\"%s\",version=\"%u\",le=\"+Inf\"}", name,
		 model, version);
	if (nb < 10 || metric(text, series) != *ret_count)
		qvt_fail("%s: %d buckets, +Inf %g, count %g", name, nb, metric(text, series),
			 *ret_count);
	snprintf(series, sizeof(series), "%s_sum{model=\"%s\",version=\"%u\"}", name, model,
		 version);
	*ret_sum = metric(text, series);
	if (!(*ret_sum > 0))
		qvt_fail("%s: sum %g, want > 0", name, *ret_sum);
}

/* The "# TYPE name kind" lines of a metrics text, sorted, joined. */
static void type_lines(const char *text, char *out, size_t cap)
{
	out[0] = '\0';
	for (const char *p = text; (p = strstr(p, "# TYPE ")) != NULL; p++) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p), l = strlen(out);
		if (l + n + 2 < cap) {
			memcpy(out + l, p, n);
			out[l + n] = '\n';
			out[l + n + 1] = '\0';
		}
	}
}

static void check_json_log(const char *path, const char *model, uint32_t version)
{
	FILE *f = fopen(path, "r");
	char line[8192];
	int n = 0, loaded = 0;

	while (f && fgets(line, sizeof(line), f)) {
		cJSON *o = cJSON_Parse(line);
		const char *keys[] = { "ts", "level", "event", "msg" };
		n++;
		if (!cJSON_IsObject(o)) {
			qvt_fail("log line %d is not a JSON object: %s", n, line);
			cJSON_Delete(o);
			continue;
		}
		for (size_t k = 0; k < 4; k++)
			if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, keys[k])))
				qvt_fail("log line %d lacks \"%s\": %s", n, keys[k], line);
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "model");
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "version");
		const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
		if (cJSON_IsString(ev) && strstr(ev->valuestring, "loaded in") && cJSON_IsString(m) &&
		    strcmp(m->valuestring, model) == 0 && cJSON_IsNumber(v) &&
		    (uint32_t)v->valuedouble == version &&
		    cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "fields")))
			loaded++;
		cJSON_Delete(o);
	}
	if (f)
		fclose(f);
	if (n < 3)
		qvt_fail("the JSON log has %d lines", n);
	if (loaded != 1)
		qvt_fail("the JSON log has %d load events of %s/%u, want 1", loaded, model, version);
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/qv-ops-XXXXXX", path[256], series[256], cmd[1024];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct notes notes;
	struct qvt_daemon d;
	char *body = NULL, ctype[128];
	uint16_t port;
	int code, st;

	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	if (access(argv[1], X_OK) != 0)
		return QVT_SKIP;
	if (!mkdtemp(dir))
		qvt_die("mkdtemp: %m");

	/* Refusals, before any model loads. */
	refused(argv[1], dir, "--metrics-listen 127.0.0.1", 2, "bad --metrics-listen");
	refused(argv[1], dir, "--metrics-listen 127.0.0.1:70000", 2, "bad --metrics-listen");
	refused(argv[1], dir, "--metrics-listen ::1:9464", 2, "bad --metrics-listen");
	refused(argv[1], dir, "--metrics-listen 300.1.1.1:9464", 2, "bad --metrics-listen");
	refused(argv[1], dir, "--metrics-listen localhost:9464", 2, "bad --metrics-listen");
	refused(argv[1], dir, "--log-format xml", 2, "bad --log-format");

	/* The fake service manager. */
	memset(&notes, 0, sizeof(notes));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
	notes.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notes.fd < 0 || bind(notes.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		qvt_die("notify socket: %m");
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	/* A ping about every 300 ms. The test drains the socket between steps:
	 * a full queue (10 datagrams by default) would drop STOPPING=1. */
	setenv("WATCHDOG_USEC", "600000", 1);

	const char *extra[] = { "--metrics-listen", "127.0.0.1:0", "--log-format", "json",
				"--udp", "127.0.0.1:0", NULL };
	if (qvt_daemon_start(&d, argv[1], argv[2], extra) < 0)
		qvt_die("quiverd did not start");
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	port = qvt_metrics_port(d.log);
	if (!port)
		qvt_die("no metrics port in the log");

	notes_wait(&notes, "READY=1", 10000);
	if (!strstr(notes.log, "STATUS=serving"))
		qvt_fail("READY=1 without its STATUS: %s", notes.log);
	{
		uint64_t until = qvt_now_ns() + 20000000000ull;
		while (notes.watchdog < 3 && qvt_now_ns() < until)
			notes_read(&notes, 100);
		if (notes.watchdog < 3)
			qvt_fail("%d WATCHDOG=1 in 20 s with a polling worker", notes.watchdog);
	}

	/* A port already taken: the start fails at once, before loading. */
	snprintf(cmd, sizeof(cmd), "--metrics-listen 127.0.0.1:%u", port);
	refused(argv[1], dir, cmd, 1, "cannot listen");

	notes_read(&notes, 0);
	code = qvt_http(port, "GET", "/healthz", &body, NULL, 0);
	if (code != 200 || strcmp(body, "ok\n") != 0)
		qvt_fail("/healthz: %d '%s'", code, body);
	free(body);
	code = qvt_http(port, "GET", "/readyz", &body, NULL, 0);
	if (code != 200 || strcmp(body, "ready\n") != 0)
		qvt_fail("/readyz: %d '%s'", code, body);
	free(body);
	code = qvt_http(port, "GET", "/nothing", NULL, NULL, 0);
	if (code != 404)
		qvt_fail("/nothing: %d, want 404", code);
	code = qvt_http(port, "POST", "/metrics", NULL, NULL, 0);
	if (code != 405)
		qvt_fail("POST /metrics: %d, want 405", code);

	/* Traffic with a known count, answers checked against the references. */
	qv_client *c = qvt_connect(d.sock, "e2e-ops", 4);
	struct qvt_model m;
	qvt_model_open(c, argv[2], "trade-mlp", &m);
	uint64_t client_ns = 0;
	for (uint32_t i = 0; i < NREQ; i++) {
		uint64_t t0 = qvt_now_ns();
		qvt_infer_check(c, &m, i % m.ref.rows, 1, "trade-mlp");
		client_ns += qvt_now_ns() - t0;
	}
	uint32_t ver = m.desc.version;

	notes_read(&notes, 0);
	code = qvt_http(port, "GET", "/metrics", &body, ctype, sizeof(ctype));
	if (code != 200)
		qvt_die("/metrics: %d", code);
	if (strcmp(ctype, "text/plain; version=0.0.4; charset=utf-8") != 0)
		qvt_fail("/metrics Content-Type '%s'", ctype);
	snprintf(series, sizeof(series),
		 "quiver_requests_total{model=\"trade-mlp\",version=\"%u\",status=\"OK\"}", ver);
	if (metric(body, series) != NREQ)
		qvt_fail("%s = %g, want %d", series, metric(body, series), NREQ);
	double rs, rc, qs, qc, cs, cc;
	check_hist(body, "quiver_request_duration_seconds", "trade-mlp", ver, &rs, &rc);
	check_hist(body, "quiver_queue_duration_seconds", "trade-mlp", ver, &qs, &qc);
	check_hist(body, "quiver_compute_duration_seconds", "trade-mlp", ver, &cs, &cc);
	if (rc != NREQ || qc != NREQ || cc != NREQ)
		qvt_fail("histogram counts %g %g %g, want %d each", rc, qc, cc, NREQ);
	if (fabs(qs + cs - rs) > 1e-6 + 1e-3 * rs)
		qvt_fail("queue %g + compute %g != request %g seconds", qs, cs, rs);
	if (!(cs <= rs))
		qvt_fail("compute %g > request %g seconds", cs, rs);
	/* The request time counts from libquiver's push into the ring: it lies
	 * inside the round trips the client measured around each call (5%
	 * for the TSC rate's calibration error). */
	if (!(rs <= 1.05 * (double)client_ns / 1e9))
		qvt_fail("request time %g s > the client's round trips %g s", rs,
			 (double)client_ns / 1e9);
	if (!strstr(body, "\nquiver_worker_busy_turns_total{worker=\"0\"") ||
	    !strstr(body, "\nquiver_worker_idle_seconds_total{worker=\"0\""))
		qvt_fail("no busy/idle series for worker 0");
	if (!strstr(body, "\nquiver_udp_rx_total{backend=\"io_uring\"} 0\n"))
		qvt_fail("no quiver_udp_rx_total for the io_uring back end");
	{
		double rss = metric(body, "process_resident_memory_bytes");
		long kib = qvt_rss_kib(d.pid);
		if (!(rss > 0) || kib <= 0 || rss < 0.5 * (double)kib * 1024 ||
		    rss > 2.0 * (double)kib * 1024)
			qvt_fail("process_resident_memory_bytes %g vs /proc %ld KiB", rss, kib);
	}
	{
		cJSON *j = qvt_ctl_json(argv[4], d.sock, "status", NULL);
		const cJSON *ml = cJSON_GetObjectItemCaseSensitive(j, "models_loaded");
		if (!cJSON_IsNumber(ml) ||
		    metric(body, "quiver_models{state=\"ready\"}") != ml->valuedouble)
			qvt_fail("quiver_models{state=\"ready\"} %g, status says %g",
				 metric(body, "quiver_models{state=\"ready\"}"),
				 cJSON_IsNumber(ml) ? ml->valuedouble : -1);
		cJSON_Delete(j);
	}
	snprintf(series, sizeof(series),
		 "quiver_model_version_info{model=\"trade-mlp\",version=\"%u\",role=\"primary\"}", ver);
	if (metric(body, series) != 1)
		qvt_fail("%s missing", series);

	/* promtool, on exactly this scrape. */
	snprintf(path, sizeof(path), "%s/scrape.txt", dir);
	{
		FILE *f = fopen(path, "w");
		if (!f || fputs(body, f) < 0 || fclose(f) != 0)
			qvt_die("write %s: %m", path);
	}
	if (sh("command -v promtool >/dev/null 2>&1") != 0) {
		fprintf(stderr, "SKIP promtool check: promtool not installed "
				"(Debian package prometheus; scripts/install-deps.sh installs it)\n");
	} else {
		snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
		st = sh(cmd);
		if (st != 0)
			qvt_fail("promtool check metrics: exit %d on the scrape", st);
		else
			fprintf(stderr, "promtool check metrics: passed\n");
	}

	/* quiverctl metrics: the same renderer, the same families. */
	{
		static char out[1 << 20], a[65536], b[65536];
		const char *av[] = { argv[4], "--socket", d.sock, "metrics", NULL };
		if (qvt_run(av, out, sizeof(out), &st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			qvt_fail("quiverctl metrics failed");
		type_lines(out, a, sizeof(a));
		type_lines(body, b, sizeof(b));
		if (strcmp(a, b) != 0 || strlen(a) < 200)
			qvt_fail("quiverctl metrics and /metrics differ in their families");
	}
	free(body);
	qvt_ref_free(&m.ref);
	qv_close(c);
	notes_read(&notes, 0);

	/* SIGTERM: STOPPING=1, then a clean exit. */
	if (qvt_daemon_stop(&d, 30000, &st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		qvt_fail("quiverd did not exit 0 on SIGTERM (status 0x%x)", st);
	notes_wait(&notes, "STOPPING=1", 5000);
	if (strstr(notes.log, "STOPPING=1") < strstr(notes.log, "READY=1"))
		qvt_fail("STOPPING=1 before READY=1: %s", notes.log);
	check_json_log(d.log, "trade-mlp", ver);

	close(notes.fd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	sh(cmd);
	return qvt_finish(&d);
}
