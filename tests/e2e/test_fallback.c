/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_fallback.c - fallback, promote and rollback against a real quiverd
 * (trade-mlp; versions 3 and 4 loaded from versions/ with `load --path`):
 *  - nonfinite: primary 4 answers NaN where x0 == 0; with `fallback 1 --on
 *    nonfinite` exactly those requests are answered by version 1 with
 *    QV_FLAG_FALLBACK (matching version 1's reference), the rest by 4;
 *  - deadline: primary 3 is slow (32, 8 x 1024, 1); a request whose deadline
 *    it cannot meet is answered by version 1 with the flag; one with time
 *    to spare by 3, without it;
 *  - manual: every request answered by the fallback, flagged; --clear ends it;
 *  - error: with `failpoint trade-mlp 2 on` every run of the primary fails:
 *    with `fallback 1 --on error` requests alone and 24 in flight at once
 *    (batched) are answered by version 1, flagged; without the fallback they
 *    get INTERNAL; `failpoint ... off` and version 2 answers again;
 *  - promote: the canary becomes the primary, the old one the previous;
 *  - rollback: the next request after the command returns is served by
 *    the previous primary, 20 times over.
 *
 * Usage: test_fallback QUIVERD REPO CLIENT QUIVERCTL
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routing.h"

static struct qvt_refs refs;
static char out[1 << 16];
static const char *q, *sock;
static qv_client *c;
static uint32_t handle;

/* One synchronous request of reference row `row`. */
static struct qv_result infer(uint32_t row, uint64_t deadline_ns, float *ret_y)
{
	struct qv_request rq = { .handle = handle, .rows = 1,
				 .input = refs.v[1].x.data + (size_t)row * refs.in_dim,
				 .deadline_ns = deadline_ns, .request_id = row };
	struct qv_result res;
	float y[4] = { 0 };
	int r = qv_infer(c, &rq, y, 4, 10000, &res);
	if (r < 0)
		qvt_die("qv_infer row %u: %s", row, qv_strerror(r));
	*ret_y = y[0];
	return res;
}

static void ctl_ok(const char *what, const char *a1, const char *a2, const char *a3,
		   const char *a4, const char *a5)
{
	int rc = qvt_ctl(q, sock, out, sizeof(out), a1, a2, a3, a4, a5, NULL);
	fprintf(stderr, "quiverctl %s (exit %d):\n%s", what, rc, out);
	if (rc != 0)
		qvt_die("quiverctl %s: exit %d", what, rc);
}

static void check(const struct qv_result *res, float y, uint32_t row, uint32_t want_v,
		  uint32_t want_flags, const char *what)
{
	if (res->status != QV_OK || res->version != want_v || res->flags != want_flags ||
	    !qvt_refs_match(&refs, want_v, row, y))
		qvt_fail("%s, row %u: status %s version %u flags %#x output %.9g; want OK, "
			 "version %u, flags %#x, output %.9g", what, row,
			 qv_strerror((int)res->status), res->version, res->flags, (double)y,
			 want_v, want_flags, (double)refs.v[want_v].y.data[row]);
}

static void nonfinite(void)
{
	int n_fb = 0;
	ctl_ok("swap trade-mlp 4", "swap", "trade-mlp", "4", NULL, NULL);
	ctl_ok("fallback trade-mlp 1 --on nonfinite", "fallback", "trade-mlp", "1", "--on",
	       "nonfinite");
	for (int pass = 0; pass < 3; pass++)
		for (uint32_t row = 0; row < refs.rows; row++) {
			float y;
			struct qv_result res = infer(row, 0, &y);
			bool nan_row = row % 4 == 0;   /* x0 == 0, see gen_models.py */
			check(&res, y, row, nan_row ? 1 : 4, nan_row ? QV_FLAG_FALLBACK : 0,
			      "nonfinite");
			n_fb += res.flags == QV_FLAG_FALLBACK;
		}
	fprintf(stderr, "nonfinite: %d of %u requests answered by the fallback\n", n_fb,
		3 * refs.rows);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void deadline(void)
{
	ctl_ok("swap trade-mlp 3", "swap", "trade-mlp", "3", NULL, NULL);
	ctl_ok("fallback trade-mlp 1 --on deadline", "fallback", "trade-mlp", "1", "--on",
	       "deadline");
	/* Without a deadline version 3 answers; that also teaches the daemon
	 * its service time. */
	uint64_t t[31];
	for (int i = 0; i < 31; i++) {
		float y;
		uint32_t row = (uint32_t)i % refs.rows;
		uint64_t t0 = qvt_now_ns();
		struct qv_result res = infer(row, 0, &y);
		t[i] = qvt_now_ns() - t0;
		check(&res, y, row, 3, 0, "slow primary, no deadline");
	}
	qsort(t, 31, sizeof(t[0]), cmp_u64);
	/* The daemon's own service time of version 3 (pick-up to answer),
	 * not the round trip, which a loaded machine inflates. */
	cJSON *sj = qvt_cmd_ok(sock, "{\"cmd\":\"stats\",\"name\":\"trade-mlp\"}");
	double svc = -1;
	const cJSON *v;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(qvt_route_of(sj, "trade-mlp"),
								"versions"))
		if (qvt_num(v, "version") == 3)
			svc = qvt_num(v, "p50_ns");
	cJSON_Delete(sj);
	if (!(svc > 0))
		qvt_die("stats: no p50_ns for trade-mlp/3");
	/* A deadline at half that: the primary cannot make it; the fallback
	 * (~100x faster) can. A request the worker picks up after its
	 * deadline (a descheduled worker on a busy machine) is answered
	 * DEADLINE_EXCEEDED, which is right; so rounds are retried until one
	 * has most requests answered, and none may be answered by 3. */
	uint64_t off = (uint64_t)(svc / 2);
	int n_fb = 0, n_late = 0, n = 40, round = 0;
	for (; round < 5 && n_fb < n / 2; round++) {
		n_fb = n_late = 0;
		for (int i = 0; i < n; i++) {
			float y;
			uint32_t row = (uint32_t)i % refs.rows;
			struct qv_result res = infer(row, qvt_now_ns() + off, &y);
			if (res.status == QV_DEADLINE_EXCEEDED && res.flags == 0) {
				n_late++;
				continue;
			}
			check(&res, y, row, 1, QV_FLAG_FALLBACK, "deadline the primary cannot meet");
			n_fb++;
		}
		fprintf(stderr, "deadline: primary service p50 %.0f us (round trip %.0f us); "
			"deadline %.0f us: %d of %d by the fallback, %d past their deadline at "
			"pick-up\n", svc / 1e3, (double)t[15] / 1e3, (double)off / 1e3, n_fb, n,
			n_late);
	}
	if (n_fb < n / 2)
		qvt_fail("deadline: only %d of %d answered by the fallback after %d rounds", n_fb,
			 n, round);
	/* Time to spare: the primary answers. */
	for (int i = 0; i < 20; i++) {
		float y;
		uint32_t row = (uint32_t)i % refs.rows;
		struct qv_result res = infer(row, qvt_now_ns() + 2000000000ull, &y);
		check(&res, y, row, 3, 0, "deadline with time to spare");
	}
}

static void manual(void)
{
	ctl_ok("swap trade-mlp 2", "swap", "trade-mlp", "2", NULL, NULL);
	ctl_ok("fallback trade-mlp 1 --manual", "fallback", "trade-mlp", "1", "--manual", NULL);
	for (uint32_t row = 1; row < refs.rows; row += 4) {
		float y;
		struct qv_result res = infer(row, 0, &y);
		check(&res, y, row, 1, QV_FLAG_FALLBACK, "manual fallback");
	}
	ctl_ok("fallback trade-mlp --clear", "fallback", "trade-mlp", "--clear", NULL, NULL);
	cJSON *routes = qvt_cmd_ok(sock, "{\"cmd\":\"routes\"}");
	const cJSON *fb = cJSON_GetObjectItemCaseSensitive(qvt_route_of(routes, "trade-mlp"),
							 "fallback");
	if (!cJSON_IsNull(fb))
		qvt_fail("routes: fallback not null after --clear");
	cJSON_Delete(routes);
	for (uint32_t row = 1; row < refs.rows; row += 4) {
		float y;
		struct qv_result res = infer(row, 0, &y);
		check(&res, y, row, 2, 0, "fallback cleared");
	}
}

/* 24 requests in flight at once on a client of their own (so the worker
 * batches them); each must be answered by want_v with want_flags. */
static void burst(uint32_t want_v, uint32_t want_flags, const char *what)
{
	enum { N = 24 };
	qv_client *b = qvt_connect(sock, "fallback-burst", N);
	float y[N];
	struct qv_result res[N];
	struct qv_model_desc desc;
	int got = 0;

	if (qv_model_lookup(b, "trade-mlp", &desc) < 0 || desc.handle != handle)
		qvt_die("%s: lookup trade-mlp", what);
	for (uint32_t i = 0; i < N; i++) {
		struct qv_request rq = { .handle = handle, .rows = 1,
					 .input = refs.v[1].x.data + (size_t)i * refs.in_dim,
					 .request_id = i };
		int r = qv_submit(b, &rq, &y[i], 1);
		if (r < 0)
			qvt_die("%s: qv_submit: %s", what, qv_strerror(r));
	}
	for (uint64_t t0 = qvt_now_ns(); got < N && qvt_now_ns() - t0 < 10000000000ull;) {
		struct qv_result r[N];
		int n = qv_poll(b, r, N);
		if (n < 0)
			qvt_die("%s: qv_poll: %s", what, qv_strerror(n));
		for (int k = 0; k < n; k++)
			res[r[k].request_id] = r[k];
		got += n;
	}
	if (got != N)
		qvt_die("%s: %d of %d answered in 10 s", what, got, N);
	for (uint32_t i = 0; i < N; i++)
		check(&res[i], y[i], i, want_v, want_flags, what);
	qv_close(b);
}

/* stats: `batches` (runs of more than one request) of trade-mlp version v. */
static double batches_of(uint32_t v)
{
	cJSON *sj = qvt_cmd_ok(sock, "{\"cmd\":\"stats\",\"name\":\"trade-mlp\"}");
	const cJSON *e;
	double b = -1;

	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(qvt_route_of(sj, "trade-mlp"),
								"versions"))
		if (qvt_num(e, "version") == v)
			b = qvt_num(e, "batches");
	cJSON_Delete(sj);
	if (b < 0)
		qvt_die("stats: no batches for trade-mlp/%u", v);
	return b;
}

static void error_trigger(void)
{
	/* primary 2 (from manual()), fallback on error only. */
	ctl_ok("fallback trade-mlp 1 --on error", "fallback", "trade-mlp", "1", "--on", "error");
	for (uint32_t row = 0; row < 20; row++) {
		float y;
		struct qv_result res = infer(row, 0, &y);
		check(&res, y, row, 2, 0, "error fallback set, primary healthy");
	}
	ctl_ok("failpoint trade-mlp 2 on", "failpoint", "trade-mlp", "2", "on", NULL);
	for (uint32_t row = 0; row < 20; row++) {
		float y;
		struct qv_result res = infer(row, 0, &y);
		check(&res, y, row, 1, QV_FLAG_FALLBACK, "primary failing, alone");
	}
	/* Until a burst ran as a batch on the failing primary (the worker takes
	 * what is ready; on a loaded machine a burst may trickle in). */
	double b0 = batches_of(2);
	for (int i = 0; i < 5 && batches_of(2) == b0; i++)
		burst(1, QV_FLAG_FALLBACK, "primary failing, 24 in flight");
	if (batches_of(2) == b0)
		qvt_fail("no burst ran as a batch on the failing primary");
	/* No fallback: the failure is the answer. */
	ctl_ok("fallback trade-mlp --clear", "fallback", "trade-mlp", "--clear", NULL, NULL);
	{
		float y;
		struct qv_result res = infer(3, 0, &y);
		if (res.status != QV_INTERNAL || res.version != 2 || res.flags != 0)
			qvt_fail("failing primary, no fallback: status %s version %u flags %#x; "
				 "want INTERNAL from version 2", qv_strerror((int)res.status),
				 res.version, res.flags);
	}
	ctl_ok("failpoint trade-mlp 2 off", "failpoint", "trade-mlp", "2", "off", NULL);
	burst(2, 0, "failpoint off, 24 in flight");
	/* A failpoint on a version that is not loaded is refused. */
	if (qvt_ctl(q, sock, out, sizeof(out), "failpoint", "trade-mlp", "9", "on", NULL) == 0)
		qvt_fail("failpoint on an unloaded version succeeded");
}

static void promote_rollback(void)
{
	/* primary 2; canary 1 at 50%, promoted: primary 1, previous 2. */
	ctl_ok("canary trade-mlp 1 --percent 50", "canary", "trade-mlp", "1", "--percent", "50");
	ctl_ok("promote trade-mlp", "promote", "trade-mlp", NULL, NULL, NULL);
	cJSON *routes = qvt_cmd_ok(sock, "{\"cmd\":\"routes\"}");
	const cJSON *r = qvt_route_of(routes, "trade-mlp");
	if (qvt_num(r, "primary") != 1 || qvt_num(r, "previous") != 2 ||
	    !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "canary")))
		qvt_fail("after promote: primary %.0f previous %.0f, want 1, 2, canary null",
			 qvt_num(r, "primary"), qvt_num(r, "previous"));
	cJSON_Delete(routes);
	for (uint32_t row = 1; row < 40; row += 2) {
		float y;
		struct qv_result res = infer(row, 0, &y);
		check(&res, y, row, 1, 0, "after promote (old table still served?)");
	}
	/* Rollback is instant: the very next request is the previous primary's. */
	for (int i = 0; i < 20; i++) {
		uint32_t row = 1 + (uint32_t)i * 4 % (refs.rows - 1);
		uint32_t from = i % 2 ? 2 : 1, to = 3 - from;
		float y;
		struct qv_result res = infer(row, 0, &y);
		check(&res, y, row, from, 0, "before rollback");
		if (i % 5 == 0) {
			ctl_ok("rollback trade-mlp", "rollback", "trade-mlp", NULL, NULL, NULL);
		} else {
			cJSON *j = qvt_cmd_ok(sock, "{\"cmd\":\"rollback\",\"name\":\"trade-mlp\"}");
			if (j && qvt_num(j, "primary") != to)
				qvt_fail("rollback reply: primary %.0f, want %u",
					 qvt_num(j, "primary"), to);
			cJSON_Delete(j);
		}
		/* A stale answer here means the daemon replied before every
		 * worker had left the old table (a grace period must pass
		 * between publishing and replying). */
		res = infer(row, 0, &y);
		check(&res, y, row, to, 0, "first request after rollback (old table still served?)");
	}
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	char dir[640];
	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	q = argv[4];
	qvt_refs_load(argv[2], &refs);
	if (qvt_daemon_start(&d, argv[1], argv[2], NULL) < 0)
		qvt_die("quiverd did not start");
	sock = d.sock;
	qvt_need_routing(&d);
	int32_t st;
	cJSON_Delete(qvt_cmd(sock, &st, "{\"cmd\":\"load\",\"name\":\"trade-mlp\",\"version\":1}"));
	if (st != 0 && st != -EEXIST)
		qvt_die("load trade-mlp/1: status %d", st);
	for (int v = 3; v <= 4; v++) {
		char vs[4];
		snprintf(vs, sizeof(vs), "%d", v);
		snprintf(dir, sizeof(dir), "%s/trade-mlp/%d", refs.versions_dir, v);
		int rc = qvt_ctl(q, sock, out, sizeof(out), "load", "trade-mlp", vs, "--path", dir,
				 NULL);
		fprintf(stderr, "quiverctl load trade-mlp %d --path ... (exit %d): %s", v, rc, out);
		if (rc != 0 || !strstr(out, "ready"))
			qvt_die("load trade-mlp/%d: exit %d", v, rc);
	}
	c = qvt_connect(sock, "fallback", 4);
	struct qv_model_desc desc;
	if (qv_model_lookup(c, "trade-mlp", &desc) < 0)
		qvt_die("lookup trade-mlp");
	handle = desc.handle;

	nonfinite();
	deadline();
	manual();
	error_trigger();
	promote_rollback();

	qv_close(c);
	qvt_refs_free(&refs);
	return qvt_finish(&d);
}
