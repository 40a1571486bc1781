/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_swap.c - what a hot swap costs, measured against a real quiverd
 * (started here on a private socket, like the e2e tests):
 *
 *  1. swap-to-serve: one client thread sends trade-mlp requests back to
 *     back (one in flight) as load; the main thread flips the primary
 *     between versions 1 and 2 and, on a channel of its own, sends
 *     requests from the moment the swap command returns until one is
 *     served by the new version: that time, p50/p99. Target: p99 < 100 us.
 *     Also the swap command's own round trip, and how often the very
 *     first request after it was still served by the old version.
 *  2. tail latency: the load thread's round-trip p50/p99/p99.9 without
 *     swaps and with swaps back to back, in alternating 250 ms slices.
 *     Target: p99.9 ratio <= 1.5.
 *
 * Usage: bench_swap QUIVERD REPO [SWAPS (200)] [WINDOW_S (3)]
 * Exits 77 when the daemon or the reference data is missing.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rawchan.h"
#include "routing.h"

static struct qvt_refs refs;
static const char *sock;
static qv_client *client;
static uint32_t handle;

static atomic_bool stop;
/* Latency recording: 0 off, 1 quiet slice, 2 storm slice; samples in
 * lat[] as (ns << 1) | storm. */
static atomic_int recording;
static uint64_t *lat;
static size_t nlat, cap_lat;
static atomic_uint_fast64_t served;

static void *load_thread(void *arg)
{
	(void)arg;
	uint32_t row = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		struct qv_request rq = { .handle = handle, .rows = 1,
					 .input = refs.v[1].x.data + (size_t)row * refs.in_dim,
					 .request_id = row };
		struct qv_result res;
		float y[4];
		uint64_t t0 = qvt_now_ns();
		if (qv_infer(client, &rq, y, 4, 10000, &res) < 0 || res.status != QV_OK) {
			fprintf(stderr, "request failed\n");
			exit(1);
		}
		uint64_t t1 = qvt_now_ns();
		atomic_fetch_add_explicit(&served, 1, memory_order_relaxed);
		int rec = atomic_load_explicit(&recording, memory_order_relaxed);
		if (rec && nlat < cap_lat)
			lat[nlat++] = (t1 - t0) << 1 | (uint64_t)(rec == 2);
		row = (row + 1) % refs.rows;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return (double)v[i];
}

static void swap_to(uint32_t v)
{
	char json[128];
	int32_t st;
	static char buf[4096];
	snprintf(json, sizeof(json), "{\"cmd\":\"swap\",\"name\":\"trade-mlp\",\"version\":%u}", v);
	if (qvt_ctl_cmd(sock, json, &st, buf, sizeof(buf)) < 0 || st != 0) {
		fprintf(stderr, "swap to %u failed: %d %s\n", v, st, buf);
		exit(1);
	}
}

/*
 * Round trips without and with swaps, in alternating 250 ms slices, so
 * that whatever else the machine runs meanwhile weighs on both alike.
 */
static void windows(double secs, double quiet[3], double storm[3], size_t *ret_nq,
		    size_t *ret_ns, int *ret_swaps)
{
	int swaps = 0;
	nlat = 0;
	for (double done = 0; done < secs; done += 0.25) {
		for (int storming = 0; storming < 2; storming++) {
			atomic_store_explicit(&recording, 1 + storming, memory_order_relaxed);
			uint64_t end = qvt_now_ns() + 250000000ull;
			while (qvt_now_ns() < end) {
				if (storming)
					swap_to(++swaps % 2 ? 1 : 2);
				else
					qvt_sleep_ms(5);
			}
		}
	}
	atomic_store_explicit(&recording, 0, memory_order_relaxed);
	qvt_sleep_ms(5);   /* the load thread's last sample */
	size_t n = nlat, nq = 0, ns = 0;
	uint64_t *q = malloc((n + 1) * sizeof(*q)), *st = malloc((n + 1) * sizeof(*st));
	if (!q || !st)
		qvt_die("out of memory");
	for (size_t i = 0; i < n; i++) {
		if (lat[i] & 1)
			st[ns++] = lat[i] >> 1;
		else
			q[nq++] = lat[i] >> 1;
	}
	qsort(q, nq, sizeof(*q), cmp_u64);
	qsort(st, ns, sizeof(*st), cmp_u64);
	static const double p[3] = { 0.5, 0.99, 0.999 };
	for (int k = 0; k < 3; k++) {
		quiet[k] = pct(q, nq, p[k]) / 1e3;
		storm[k] = pct(st, ns, p[k]) / 1e3;
	}
	free(q);
	free(st);
	*ret_nq = nq;
	*ret_ns = ns;
	*ret_swaps = swaps;
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	if (argc < 3) {
		fprintf(stderr, "usage: %s QUIVERD REPO [SWAPS] [WINDOW_S]\n", argv[0]);
		return 2;
	}
	int nswaps = argc > 3 ? atoi(argv[3]) : 200;
	double win = argc > 4 ? atof(argv[4]) : 3.0;
	if (nswaps < 1 || !(win > 0))
		return 2;
	qvt_refs_load(argv[2], &refs);
	if (qvt_daemon_start(&d, argv[1], argv[2], NULL) < 0)
		qvt_die("quiverd did not start");
	sock = d.sock;
	qvt_need_routing(&d);
	int32_t st;
	cJSON_Delete(qvt_cmd(sock, &st, "{\"cmd\":\"load\",\"name\":\"trade-mlp\",\"version\":1}"));
	swap_to(2);
	client = qvt_connect(sock, "bench-swap", 4);
	struct qv_model_desc desc;
	if (qv_model_lookup(client, "trade-mlp", &desc) < 0)
		qvt_die("lookup trade-mlp");
	handle = desc.handle;
	cap_lat = 20u * 1000 * 1000;
	lat = malloc(cap_lat * sizeof(lat[0]));
	uint64_t *s2s = malloc((size_t)nswaps * sizeof(uint64_t));
	if (!lat || !s2s)
		qvt_die("out of memory");

	pthread_t th;
	pthread_create(&th, NULL, load_thread, NULL);
	qvt_sleep_ms(500);   /* warm */

	/* 1. swap-to-serve, probed from this thread on its own channel: the
	 * next request after the swap returns, and more until one is served
	 * by the new version. Probing here rather than watching the load
	 * thread keeps the scheduler out of the number: this thread is
	 * running when the reply arrives. */
	qv_client *probe = qvt_connect(sock, "bench-swap-probe", 4);
	if (qv_model_lookup(probe, "trade-mlp", &desc) < 0)
		qvt_die("lookup trade-mlp");
	uint32_t cur = 2;
	int stale = 0;
	uint64_t *cmd_ns = malloc((size_t)nswaps * sizeof(uint64_t));
	if (!cmd_ns)
		qvt_die("out of memory");
	for (int i = 0; i < nswaps; i++) {
		uint32_t v = 3 - cur;
		uint64_t t_cmd = qvt_now_ns();
		swap_to(v);
		uint64_t t_ret = qvt_now_ns(), t_new = 0;
		cmd_ns[i] = t_ret - t_cmd;
		for (int k = 0; t_new == 0; k++) {
			struct qv_request rq = { .handle = handle, .rows = 1,
						 .input = refs.v[1].x.data, .request_id = (uint64_t)k };
			struct qv_result res;
			float y[4];
			if (qv_infer(probe, &rq, y, 4, 10000, &res) < 0 || res.status != QV_OK)
				qvt_die("probe request failed");
			if (res.version == v)
				t_new = qvt_now_ns();
			else if (k == 0)
				stale++;
			if (k > 100000)
				qvt_die("version %u never answered after the swap", v);
		}
		s2s[i] = t_new - t_ret;
		cur = v;
		qvt_sleep_us(200);
	}
	qv_close(probe);
	qsort(cmd_ns, (size_t)nswaps, sizeof(cmd_ns[0]), cmp_u64);
	qsort(s2s, (size_t)nswaps, sizeof(s2s[0]), cmp_u64);

	/* 2. tail latency without and with swaps */
	double quiet[3], storm[3];
	size_t nq, ns;
	int ss;
	windows(win, quiet, storm, &nq, &ns, &ss);
	atomic_store_explicit(&stop, true, memory_order_relaxed);
	pthread_join(th, NULL);

	printf("bench_swap: 1 load thread (1 request in flight), trade-mlp v1 <-> v2\n\n");
	printf("%-34s %10s %10s %10s %10s\n", "measure", "p50_us", "p99_us", "max_us", "n");
	printf("%-34s %10.1f %10.1f %10.1f %10d\n", "swap return -> first new-version",
	       pct(s2s, (size_t)nswaps, 0.5) / 1e3, pct(s2s, (size_t)nswaps, 0.99) / 1e3,
	       (double)s2s[nswaps - 1] / 1e3, nswaps);
	printf("%-34s %10.1f %10.1f %10.1f %10d\n", "swap command round trip",
	       pct(cmd_ns, (size_t)nswaps, 0.5) / 1e3, pct(cmd_ns, (size_t)nswaps, 0.99) / 1e3,
	       (double)cmd_ns[nswaps - 1] / 1e3, nswaps);
	printf("  (%d of %d swaps: the first request after the reply was served by the old "
	       "version)\n\n", stale, nswaps);
	printf("%-34s %10s %10s %10s %10s %8s\n", "round trip", "p50_us", "p99_us", "p99.9_us",
	       "requests", "swaps");
	printf("%-34s %10.1f %10.1f %10.1f %10zu %8d\n", "no swaps", quiet[0], quiet[1], quiet[2],
	       nq, 0);
	printf("%-34s %10.1f %10.1f %10.1f %10zu %8d\n", "swaps back to back", storm[0], storm[1],
	       storm[2], ns, ss);
	printf("\np99.9 ratio (storm / quiet): %.2f (target <= 1.5); swap-to-serve p99 %.1f us "
	       "(target < 100 us)\n", quiet[2] > 0 ? storm[2] / quiet[2] : 0,
	       pct(s2s, (size_t)nswaps, 0.99) / 1e3);
	qv_close(client);
	free(lat);
	free(s2s);
	free(cmd_ns);
	qvt_refs_free(&refs);
	return qvt_finish(&d);
}
