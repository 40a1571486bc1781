/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_scrape.c - how long a Prometheus scrape of quiverd takes with many
 * models loaded (not a test: it prints numbers and asserts none).
 *
 * Builds a repository of NMODELS models (links to REPO/echo/1, so loading
 * is quick; the metrics text depends on the number of versions, not on
 * their size), starts quiverd with --metrics-listen, sends some requests
 * to every model so that no histogram is empty, then times ITERS GETs of
 * /metrics and, as the floor, ITERS GETs of /healthz over the same HTTP
 * path (connect, request, answer, close): the difference is rendering the
 * text and sending it. Prints p50/p99/p99.9 and the ratio to the floor,
 * and the size of the text.
 *
 * Usage: bench_scrape QUIVERD REPO [NMODELS] [ITERS]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "httpget.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double q)
{
	size_t i = (size_t)(q * (double)(n - 1) + 0.5);
	return (double)v[i < n ? i : n - 1] / 1e3;
}

/* CPU time of quiverd's main (control) thread, in clock ticks. */
static long control_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	/* after "pid (comm)": state is field 3, utime 14, stime 15 */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			 &st) != 2)
		return -1;
	return (long)(ut + st);
}

static void time_get(uint16_t port, const char *path, uint64_t *ns, size_t n, size_t *ret_bytes)
{
	for (size_t i = 0; i < n; i++) {
		char *body = NULL;
		uint64_t t0 = qvt_now_ns();
		int code = qvt_http(port, "GET", path, &body, NULL, 0);
		ns[i] = qvt_now_ns() - t0;
		if (code != 200)
			qvt_die("GET %s: %d", path, code);
		*ret_bytes = strlen(body);
		free(body);
	}
	qsort(ns, n, sizeof(*ns), cmp_u64);
}

int main(int argc, char **argv)
{
	char repo[] = "/tmp/qv-scrape-XXXXXX", src[4096], real[4096], p[8192];
	uint32_t nmodels = argc > 3 ? (uint32_t)atoi(argv[3]) : 50;
	size_t iters = argc > 4 ? (size_t)atoi(argv[4]) : 200, bytes = 0, hb = 0;
	struct qvt_daemon d;
	uint64_t *m, *h;
	uint16_t port;

	if (argc < 3) {
		fprintf(stderr, "usage: %s QUIVERD REPO [NMODELS] [ITERS]\n", argv[0]);
		return 2;
	}
	if (nmodels == 0 || iters == 0 || !mkdtemp(repo))
		qvt_die("bad arguments or mkdtemp: %m");
	snprintf(src, sizeof(src), "%s/echo/1", argv[2]);
	if (!realpath(src, real))
		qvt_die("realpath %s: %m", src);
	for (uint32_t i = 0; i < nmodels; i++) {
		snprintf(p, sizeof(p), "%s/m%03u", repo, i);
		if (mkdir(p, 0755) < 0)
			qvt_die("mkdir %s: %m", p);
		snprintf(p, sizeof(p), "%s/m%03u/1", repo, i);
		if (symlink(real, p) < 0)
			qvt_die("symlink %s: %m", p);
	}
	const char *extra[] = { "--metrics-listen", "127.0.0.1:0", NULL };
	if (qvt_daemon_start(&d, argv[1], repo, extra) < 0)
		qvt_die("quiverd did not start");
	port = qvt_metrics_port(d.log);
	if (!port)
		qvt_die("no metrics port in the log");

	/* Some traffic to every model, so every histogram has buckets. */
	qv_client *c = qvt_connect(d.sock, "bench-scrape", 4);
	for (uint32_t i = 0; i < nmodels; i++) {
		struct qv_model_desc md;
		float in[16] = { 0 }, out[16];
		char name[16];
		snprintf(name, sizeof(name), "m%03u", i);
		if (qv_model_lookup(c, name, &md) < 0)
			qvt_die("lookup %s", name);
		for (int k = 0; k < 20; k++) {
			struct qv_request rq = { .handle = md.handle, .rows = 1, .input = in };
			struct qv_result res;
			if (qv_infer(c, &rq, out, 16, 5000, &res) < 0 || res.status != QV_OK)
				qvt_die("infer %s", name);
		}
	}
	qv_close(c);

	m = calloc(iters, sizeof(*m));
	h = calloc(iters, sizeof(*h));
	if (!m || !h)
		qvt_die("out of memory");
	time_get(port, "/healthz", h, iters, &hb);   /* warm both paths once first */
	long t0 = control_ticks(d.pid);
	time_get(port, "/metrics", m, iters, &bytes);
	long t1 = control_ticks(d.pid);
	time_get(port, "/healthz", h, iters, &hb);
	long t2 = control_ticks(d.pid);
	printf("scrape of %u models (%zu bytes of text), %zu GETs each, us:\n", nmodels, bytes,
	       iters);
	printf("%-22s %10s %10s %10s\n", "", "p50", "p99", "p99.9");
	printf("%-22s %10.1f %10.1f %10.1f\n", "GET /metrics", pct(m, iters, 0.5),
	       pct(m, iters, 0.99), pct(m, iters, 0.999));
	printf("%-22s %10.1f %10.1f %10.1f\n", "floor: GET /healthz", pct(h, iters, 0.5),
	       pct(h, iters, 0.99), pct(h, iters, 0.999));
	printf("%-22s %10.1f %10.1f %10.1f\n", "ratio", pct(m, iters, 0.5) / pct(h, iters, 0.5),
	       pct(m, iters, 0.99) / pct(h, iters, 0.99),
	       pct(m, iters, 0.999) / pct(h, iters, 0.999));
	printf("throughput: %.0f scrapes/s sequential (floor %.0f/s)\n",
	       1e6 / pct(m, iters, 0.5), 1e6 / pct(h, iters, 0.5));
	if (t0 >= 0 && t1 >= 0 && t2 >= 0)
		printf("control thread CPU a GET: /metrics %.2f ms, /healthz %.3f ms "
		       "(clock ticks of %ld Hz, over %zu GETs)\n",
		       (double)(t1 - t0) * 1e3 / (double)sysconf(_SC_CLK_TCK) / (double)iters,
		       (double)(t2 - t1) * 1e3 / (double)sysconf(_SC_CLK_TCK) / (double)iters,
		       sysconf(_SC_CLK_TCK), iters);
	free(m);
	free(h);
	snprintf(p, sizeof(p), "rm -rf %s", repo);
	if (system(p) != 0)
		fprintf(stderr, "could not remove %s\n", repo);
	return qvt_finish(&d);
}
