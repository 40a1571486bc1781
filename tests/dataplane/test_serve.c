/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qv_worker_serve's routing on a fake worker (no thread, no channel) with
 * the echo model (out = in) in four roles: a plain route answers from the
 * primary; a sticky canary answers a share of keys within statistical
 * bounds, the same key always from the same version, flagged CANARY;
 * manual fallback answers everything from the fallback, flagged; the
 * nonfinite trigger reruns exactly the NaN-producing requests on the
 * fallback; the deadline trigger uses the fallback when the primary's
 * estimate exceeds the time left, and a passed deadline is
 * DEADLINE_EXCEEDED while one near UINT64_MAX is never; a shadow runs only at flush, and counts a
 * disagreement only when outputs differ; stats and histograms add up.
 *
 * Usage: test_dp_serve ECHO_MODEL.onnx   (exits 77 when it is missing)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "routes.h"
#include "serve.h"
#include "udp.h"
#include "fake_worker.h"
#include "worker.h"

static int failures;

#define CHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

static struct qv_worker *w;
static float in[16], out[16];

static struct qv_serve_res serve(uint64_t key, uint64_t deadline_ns)
{
	struct qv_serve_req rq = {
		.handle = 0, .rows = 1, .in_bytes = sizeof(in), .out_cap = sizeof(out),
		.deadline_ns = deadline_ns, .routing_key = key, .in = in, .out = out,
	};
	struct qv_serve_res res;

	qv_worker_serve(w, &rq, &res);
	return res;
}

static uint64_t cnt(uint32_t slot, int what)
{
	struct qv_vstats *s = &w->vs[slot];

	switch (what) {
	case 0: return qv_vstats_requests(s);
	case 1: return qv_cnt_get(&s->canary);
	case 2: return qv_cnt_get(&s->fallback);
	case 3: return qv_cnt_get(&s->shadow);
	default: return qv_cnt_get(&s->shadow_disagree);
	}
}

int main(int argc, char **argv)
{
	struct qv_version *p, *c, *f, *s;
	struct qv_route_hot *h;
	struct qv_table tab;
	struct qv_serve_res r;
	char err[QV_ERR_LEN];
	uint64_t tsc_hz = 1000000000ull, hits = 0, n = 20000;
	qv_model *m;

	if (argc < 2 || access(argv[1], R_OK) != 0) {
		fprintf(stderr, "SKIP: echo model not found (%s)\n", argc > 1 ? argv[1] : "no argument");
		return 77;
	}
	qv_thread_init();
	if (qv_model_load_file(argv[1], NULL, &m, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", argv[1], err);
		return 1;
	}
	p = fake_version(m, 1, 0);
	c = fake_version(m, 2, 1);
	f = fake_version(m, 3, 2);
	s = fake_version(m, 4, 3);
	if (p->info.in_dim != 16 || p->info.out_dim != 16) {
		fprintf(stderr, "want the echo model (16 in, 16 out)\n");
		return 1;
	}
	h = aligned_alloc(64, sizeof(*h));
	memset(h, 0, sizeof(*h));
	h->state = QV_ROUTE_READY;
	h->in_dim = h->out_dim = 16;
	h->max_batch = p->max_batch;
	h->primary = p;
	tab = (struct qv_table){ .n = 1, .hot = h };
	w = fake_worker_new(&tab, 1e9 / (double)tsc_hz, 0x1234567u);
	for (int i = 0; i < 16; i++)
		in[i] = (float)i + 0.5f;

	/* Plain route. */
	r = serve(1, 0);
	CHECK(r.status == QV_OK && r.version == 1 && r.flags == 0 && r.out_bytes == 64);
	CHECK(memcmp(in, out, sizeof(in)) == 0);
	{
		struct qv_serve_req bad = { .handle = 1, .rows = 1, .in_bytes = 64, .out_cap = 64,
					    .in = in, .out = out };
		qv_worker_serve(w, &bad, &r);
		CHECK(r.status == QV_UNKNOWN_MODEL);
		bad.handle = 0;
		bad.in_bytes = 60;
		qv_worker_serve(w, &bad, &r);
		CHECK(r.status == QV_BAD_SHAPE && r.version == 1);
	}

	/* Sticky canary, 30%. */
	h->canary = c;
	h->canary_thr = qv_ppm_threshold(300000);
	h->flags = QV_RT_CANARY | QV_RT_STICKY;
	for (uint64_t k = 1; k <= n; k++) {
		struct qv_serve_res a = serve(k, 0), b = serve(k, 0);
		CHECK(a.status == QV_OK && a.version == b.version);
		CHECK((a.version == 2) == !!(a.flags & QV_FLAG_CANARY));
		hits += a.version == 2;
	}
	fprintf(stderr, "canary: %llu of %llu keys\n", (unsigned long long)hits,
		(unsigned long long)n);
	CHECK(fabs((double)hits - 0.3 * (double)n) <= 6 * sqrt(n * 0.3 * 0.7));
	CHECK(cnt(1, 1) == 2 * hits && cnt(1, 0) == 2 * hits);

	/* Manual fallback overrides the canary. */
	h->fallback = f;
	h->flags |= QV_RT_FALLBACK | QV_RT_FB_MANUAL;
	for (uint64_t k = 1; k <= 100; k++) {
		r = serve(k, 0);
		CHECK(r.status == QV_OK && r.version == 3 && r.flags == QV_FLAG_FALLBACK);
	}
	CHECK(cnt(2, 2) == 100);

	/* Nonfinite: only NaN-producing requests go to the fallback. */
	h->canary = NULL;
	h->flags = QV_RT_FALLBACK | QV_RT_FB_NONFINITE;
	r = serve(1, 0);
	CHECK(r.status == QV_OK && r.version == 1 && r.flags == 0);
	in[3] = NAN;
	r = serve(1, 0);
	CHECK(r.status == QV_OK && r.version == 3 && r.flags == QV_FLAG_FALLBACK);
	in[3] = 3.5f;

	/* Deadline: passed -> DEADLINE_EXCEEDED; primary too slow -> fallback. */
	h->flags = QV_RT_FALLBACK | QV_RT_FB_DEADLINE;
	r = serve(1, qv_now_ns() - 1);
	CHECK(r.status == QV_DEADLINE_EXCEEDED);
	r = serve(1, qv_now_ns() + 1000000000ull);
	CHECK(r.status == QV_OK && r.version == 1 && r.flags == 0);
	/* Deadlines past INT64_MAX ns are "never", not wrapped into the past. */
	r = serve(1, UINT64_MAX);
	CHECK(r.status == QV_OK && r.version == 1 && r.flags == 0);
	r = serve(1, (uint64_t)INT64_MAX + 1000u);
	CHECK(r.status == QV_OK && r.version == 1 && r.flags == 0);
	{
		/* A UDP budget near 2^64 saturates to "never" instead of wrapping. */
		static uint8_t dgram[128] __attribute__((aligned(64))), rep[128] __attribute__((aligned(64)));
		struct qv_udp_parsed up = { .rows = 1, .in_bytes = 64, .in_off = 48,
					    .budget_ns = UINT64_MAX - 3 };
		struct qv_batch_item it;
		uint64_t t = qv_now_ns();
		qv_udp_serve_prepare(&it, &up, dgram, rep, 64);
		CHECK(it.req.deadline_ns == UINT64_MAX);
		up.budget_ns = 1000000;
		qv_udp_serve_prepare(&it, &up, dgram, rep, 64);
		CHECK(it.req.deadline_ns >= t + 1000000 && it.req.deadline_ns < t + 1000000 + 60000000000ull);
	}
	w->vs[0].ewma_cycles = 10ull * tsc_hz; /* pretend the primary takes 10 s */
	r = serve(1, qv_now_ns() + 1000000000ull);
	CHECK(r.status == QV_OK && r.version == 3 && r.flags == QV_FLAG_FALLBACK);
	w->vs[0].ewma_cycles = 1;

	/* Shadow: runs at flush, never answers; disagreement only on a real difference. */
	h->flags = QV_RT_SHADOW;
	h->shadow = s;
	h->shadow_thr = qv_ppm_threshold(1000000);
	r = serve(1, 0);
	CHECK(r.status == QV_OK && r.version == 1 && r.flags == 0);
	CHECK(cnt(3, 3) == 0 && w->sh_ver == s);
	qv_worker_shadow_flush(w);
	CHECK(cnt(3, 3) == 1 && cnt(3, 4) == 0 && cnt(3, 0) == 0);
	r = serve(1, 0);
	w->sh_ref[5] += 1.0f; /* as if the primary had answered otherwise */
	qv_worker_shadow_flush(w);
	CHECK(cnt(3, 3) == 2 && cnt(3, 4) == 1);
	r = serve(1, 0);
	w->sh_ref[5] *= 1.0f + 1e-4f; /* within rtol 1e-3 */
	qv_worker_shadow_flush(w);
	CHECK(cnt(3, 3) == 3 && cnt(3, 4) == 1);

	/* Every answered request is in its version's histogram. */
	for (uint32_t slot = 0; slot < 4; slot++) {
		uint64_t sum = 0;
		for (uint32_t b = 0; b < QV_HIST_BUCKETS; b++)
			sum += qv_cnt_get(&w->vs[slot].hist[b]);
		CHECK(sum == cnt(slot, 0));
	}
	CHECK(cnt(0, 0) > 0);

	fake_version_free(p);
	fake_version_free(c);
	fake_version_free(f);
	fake_version_free(s);
	qv_model_free(m);
	free(h);
	fake_worker_free(w);
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
