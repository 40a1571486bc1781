/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_route - what routing costs on the data plane.
 *
 *   bench_route ECHO_MODEL.onnx [ITERS]
 *
 * 1. qv_route_pick() alone: a route with nothing configured against one
 *    with a sticky canary (10%) and fallback triggers, timed per 1000 calls.
 * 2. qv_worker_serve() on a fake worker (no thread, no channel) running
 *    the echo model: the same route as a plain primary, with canary +
 *    fallback (error, nonfinite), and with the deadline trigger too; timed
 *    per chunk of 1000 requests (the TSC of a VM ticks too coarsely for
 *    one request), p50/p99 of the chunks' per-request means, variants
 *    interleaved chunk by chunk so frequency drift hits them alike. The
 *    difference of p50s is the routing overhead per request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route_pick.h"
#include "routes.h"
#include "serve.h"
#include "fake_worker.h"
#include "worker.h"

#define CHUNK 1000u

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double q)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return (double)v[(size_t)(q * (double)(n - 1))];
}

static void bench_pick(uint64_t tsc_hz, size_t chunks)
{
	static const struct {
		const char *name;
		uint32_t flags;
	} cfg[] = {
		{ "plain", 0 },
		{ "canary10%+fallback", QV_RT_CANARY | QV_RT_STICKY | QV_RT_FALLBACK | QV_RT_FB_ERROR |
						QV_RT_FB_NONFINITE },
		{ "canary10% random", QV_RT_CANARY },
	};
	uint64_t *t[3], thr = qv_ppm_threshold(100000), rng = 12345, key = 1;
	volatile uint32_t sink = 0;

	for (int c = 0; c < 3; c++)
		t[c] = malloc(chunks * sizeof(uint64_t));
	for (size_t k = 0; k < chunks; k++) {
		for (int c = 0; c < 3; c++) {
			uint32_t acc = 0, fl = cfg[c].flags;
			uint64_t t0 = qv_tsc();
			for (uint32_t i = 0; i < CHUNK; i++) {
				/* The worker's test: a plain route never calls in. */
				if (fl)
					acc += qv_route_pick(fl, thr, key++, &rng);
				__asm__ volatile("" : "+r"(fl));
			}
			t[c][k] = qv_tsc() - t0;
			sink += acc;
		}
	}
	for (int c = 0; c < 3; c++) {
		double p50 = pct(t[c], chunks, 0.5) * 1e9 / (double)tsc_hz / CHUNK;
		printf("pick   %-22s p50 %6.2f ns/request\n", cfg[c].name, p50);
		free(t[c]);
	}
	(void)sink;
}

int main(int argc, char **argv)
{
	size_t iters = argc > 2 ? strtoul(argv[2], NULL, 0) : 200000;
	size_t chunks = iters / CHUNK ? iters / CHUNK : 1;
	uint64_t tsc_hz = qv_tsc_calibrate();
	struct qv_version *prim, *can, *fb;
	struct qv_route_hot *hot;
	struct qv_table tab[3];
	struct qv_worker *w;
	char err[QV_ERR_LEN];
	qv_model *m;
	uint64_t *t[3];
	float in[16], out[16];
	static const char *const names[] = { "plain", "canary10%+fallback", "+deadline trigger" };

	if (argc < 2) {
		fprintf(stderr, "usage: bench_route ECHO_MODEL.onnx [ITERS]\n");
		return 2;
	}
	printf("tsc %.3f GHz, %zu requests a variant\n", (double)tsc_hz / 1e9, chunks * CHUNK);
	bench_pick(tsc_hz, chunks);

	qv_thread_init();
	if (qv_model_load_file(argv[1], NULL, &m, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_route: %s: %s\n", argv[1], err);
		return 1;
	}
	prim = fake_version(m, 1, 0);
	can = fake_version(m, 2, 1);
	fb = fake_version(m, 3, 2);
	if (prim->info.in_dim > 16 || prim->info.out_dim > 16) {
		fprintf(stderr, "bench_route: want the echo model (16 in, 16 out)\n");
		return 1;
	}
	hot = aligned_alloc(64, 3 * sizeof(*hot));
	memset(hot, 0, 3 * sizeof(*hot));
	for (int c = 0; c < 3; c++) {
		hot[c].state = QV_ROUTE_READY;
		hot[c].in_dim = prim->info.in_dim;
		hot[c].out_dim = prim->info.out_dim;
		hot[c].max_batch = prim->max_batch;
		hot[c].primary = prim;
		if (c > 0) {
			hot[c].canary = can;
			hot[c].canary_thr = qv_ppm_threshold(100000);
			hot[c].fallback = fb;
			hot[c].flags = QV_RT_CANARY | QV_RT_STICKY | QV_RT_FALLBACK | QV_RT_FB_ERROR |
				       QV_RT_FB_NONFINITE;
		}
		tab[c] = (struct qv_table){ .n = 1, .hot = &hot[c] };
	}
	hot[2].flags |= QV_RT_FB_DEADLINE;
	prim->deadline_cycles = tsc_hz / 1000; /* 1 ms default deadline: never missed */

	w = fake_worker_new(&tab[0], 1e9 / (double)tsc_hz, 0x9e3779b97f4a7c15ull);
	for (int c = 0; c < 3; c++)
		t[c] = malloc(chunks * sizeof(uint64_t));
	for (int i = 0; i < 16; i++)
		in[i] = (float)i;

	for (size_t k = 0; k < chunks; k++) {
		for (int c = 0; c < 3; c++) {
			uint64_t t0 = qv_tsc();
			w->tab = &tab[c];
			for (uint32_t i = 0; i < CHUNK; i++) {
				struct qv_serve_req rq = {
					.handle = 0, .rows = 1,
					.in_bytes = prim->info.in_dim * 4, .out_cap = sizeof(out),
					.routing_key = k * CHUNK + i + 1, .in = in, .out = out,
				};
				struct qv_serve_res res;
				qv_worker_serve(w, &rq, &res);
				if (res.status != QV_OK) {
					fprintf(stderr, "bench_route: status %u\n", res.status);
					return 1;
				}
			}
			t[c][k] = qv_tsc() - t0;
		}
	}
	double base = 0;
	for (int c = 0; c < 3; c++) {
		double ns = 1e9 / (double)tsc_hz / CHUNK, p50 = pct(t[c], chunks, 0.5) * ns;
		double p99 = pct(t[c], chunks, 0.99) * ns;
		if (c == 0)
			base = p50;
		printf("serve  %-22s p50 %7.1f ns  p99 %7.1f ns  added p50 %+6.1f ns\n", names[c], p50,
		       p99, p50 - base);
		free(t[c]);
	}
	printf("canary share served: %llu of %zu\n",
	       (unsigned long long)qv_vstats_requests(&w->vs[1]), 2 * chunks * CHUNK);
	return 0;
}
