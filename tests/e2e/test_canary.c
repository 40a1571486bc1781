/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_canary.c - canary and shadow routing against a real quiverd, with
 * trade-mlp 1 as the primary and 2 as the canary or shadow:
 *  - canary at 10% (set through quiverctl): over 100k requests the share
 *    answered by version 2 is within 5 sigma of Binomial(100k, 0.1), every
 *    such answer carries QV_FLAG_CANARY and no other does, and every output
 *    matches the reference of the version named;
 *  - sticky canary: 4000 routing keys, each sent 5 times, always land on
 *    the same version, also across a re-publication of the same canary,
 *    and the share of keys on the canary is within 5 sigma;
 *  - clearing it (version 0) sends everything to the primary again;
 *  - shadow at 100%: the shadow's counters in `stats --json` grow, and no
 *    client ever sees its version, a flag, or its output.
 *
 * Usage: test_canary QUIVERD REPO CLIENT QUIVERCTL
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routing.h"

#define NREQ 100000
#define NKEYS 4000
#define PASSES 5

static struct qvt_refs refs;
static uint32_t rows[256], nrows;
static char out[1 << 16];

/* Keys are (i + 1) * K with K odd, so the key gives its index back. */
static const uint64_t K = 0x9E3779B97F4A7C15ull;
static uint64_t kinv;
static uint8_t key_version[NKEYS];
static uint64_t key_moved;

static void on_sticky(void *arg, const struct qv_result *res, uint32_t row, uint64_t key)
{
	(void)arg;
	(void)row;
	uint64_t i = key * kinv - 1;
	if (i >= NKEYS || res->status != QV_OK)
		return;
	if (key_version[i] == 0)
		key_version[i] = (uint8_t)res->version;
	else if (key_version[i] != res->version && key_moved++ < 5)
		fprintf(stderr, "key %llu: version %u, earlier %u\n", (unsigned long long)key,
			res->version, key_version[i]);
}

static void run_stream(struct qvt_stream *s, uint64_t n, const char *who)
{
	while (s->sent < n) {
		int r = qvt_stream_step(s, n - s->sent);
		if (r < 0)
			qvt_die("%s: %s", who, strerror(-r));
	}
	if (qvt_stream_drain(s, 30000) < 0)
		qvt_fail("%s: requests still in flight after 30 s", who);
	if (!qvt_stream_report(s, who))
		qvt_fail("%s: lost, failed or wrong answers", who);
}

/* Sum over trade-mlp's versions of one stats counter. */
static double stat_sum(const char *sock, const char *key)
{
	cJSON *j = qvt_cmd_ok(sock, "{\"cmd\":\"stats\",\"name\":\"trade-mlp\"}");
	double sum = 0;
	const cJSON *v;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(qvt_route_of(j, "trade-mlp"),
								"versions")) {
		double x = qvt_num(v, key);
		if (x < 0)
			qvt_fail("stats: version without a '%s' counter", key);
		else
			sum += x;
	}
	cJSON_Delete(j);
	return sum;
}

static bool within(double k, double n, double p, const char *what)
{
	double mean = n * p, sigma = sqrt(n * p * (1 - p));
	fprintf(stderr, "%s: %.0f of %.0f (%.3f%%), expected %.0f +- %.0f (5 sigma)\n", what, k, n,
		100.0 * k / n, mean, 5 * sigma);
	return fabs(k - mean) <= 5 * sigma;
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	const char *q = argv[4];
	qvt_refs_load(argv[2], &refs);
	nrows = qvt_refs_distinct(&refs, 1, 2, rows, 256);
	if (qvt_daemon_start(&d, argv[1], argv[2], NULL) < 0)
		qvt_die("quiverd did not start");
	qvt_need_routing(&d);
	int32_t st;
	cJSON_Delete(qvt_cmd(d.sock, &st, "{\"cmd\":\"load\",\"name\":\"trade-mlp\",\"version\":1}"));
	if (st != 0 && st != -EEXIST)
		qvt_die("load trade-mlp/1: status %d", st);
	cJSON_Delete(qvt_cmd_ok(d.sock, "{\"cmd\":\"swap\",\"name\":\"trade-mlp\",\"version\":1}"));

	qv_client *c = qvt_connect(d.sock, "canary", 16);
	struct qv_model_desc desc;
	if (qv_model_lookup(c, "trade-mlp", &desc) < 0)
		qvt_die("lookup trade-mlp");

	/* 1. Canary at 10%, not sticky. */
	int rc = qvt_ctl(q, d.sock, out, sizeof(out), "canary", "trade-mlp", "2", "--percent",
			 "10", NULL);
	fprintf(stderr, "quiverctl canary trade-mlp 2 --percent 10 (exit %d):\n%s", rc, out);
	if (rc != 0)
		qvt_die("quiverctl canary: exit %d", rc);
	cJSON *routes = qvt_cmd_ok(d.sock, "{\"cmd\":\"routes\"}");
	const cJSON *can = cJSON_GetObjectItemCaseSensitive(qvt_route_of(routes, "trade-mlp"),
							  "canary");
	if (qvt_num(can, "version") != 2 || qvt_num(can, "ppm") != 100000 ||
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(can, "sticky")))
		qvt_fail("routes: canary is not {version 2, ppm 100000, sticky false}");
	cJSON_Delete(routes);

	struct qvt_stream s = { .c = c, .handle = desc.handle, .depth = 8, .refs = &refs,
				.rows = rows, .nrows = nrows };
	uint64_t t0 = qvt_now_ns();
	run_stream(&s, NREQ, "canary 10%");
	fprintf(stderr, "%d requests in %.1f s\n", NREQ, (double)(qvt_now_ns() - t0) / 1e9);
	if (!within((double)s.by_version[2], NREQ, 0.1, "canary share"))
		qvt_fail("canary share out of bounds");
	if (s.canary_flag != s.by_version[2] || s.by_version[1] + s.by_version[2] != s.sent)
		qvt_fail("canary flag on %llu answers, version 2 gave %llu",
			 (unsigned long long)s.canary_flag, (unsigned long long)s.by_version[2]);

	/* 2. Sticky: a key always lands on the same version. */
	kinv = K;
	for (int i = 0; i < 6; i++)
		kinv *= 2 - K * kinv;   /* Newton: K * kinv == 1 mod 2^64 */
	static uint64_t keys[NKEYS];
	for (uint64_t i = 0; i < NKEYS; i++)
		keys[i] = (i + 1) * K;
	rc = qvt_ctl(q, d.sock, out, sizeof(out), "canary", "trade-mlp", "2", "--percent", "10",
		     "--sticky", NULL);
	if (rc != 0)
		qvt_die("quiverctl canary --sticky: exit %d", rc);
	struct qvt_stream sk = { .c = c, .handle = desc.handle, .depth = 8, .refs = &refs,
				 .rows = rows, .nrows = nrows, .keys = keys, .nkeys = NKEYS,
				 .on_done = on_sticky };
	run_stream(&sk, (uint64_t)NKEYS * 2, "sticky, passes 1-2");
	/* The same canary published again must not move a key. */
	rc = qvt_ctl(q, d.sock, out, sizeof(out), "canary", "trade-mlp", "2", "--percent", "10",
		     "--sticky", NULL);
	if (rc != 0)
		qvt_die("quiverctl canary --sticky (again): exit %d", rc);
	run_stream(&sk, (uint64_t)NKEYS * PASSES, "sticky, passes 3-5");
	uint32_t on_canary = 0, unseen = 0;
	for (int i = 0; i < NKEYS; i++) {
		on_canary += key_version[i] == 2;
		unseen += key_version[i] == 0;
	}
	fprintf(stderr, "sticky: %llu key moves; %u of %d keys on the canary\n",
		(unsigned long long)key_moved, on_canary, NKEYS);
	if (key_moved || unseen)
		qvt_fail("sticky canary: %llu answers moved keys, %u keys never answered",
			 (unsigned long long)key_moved, unseen);
	if (!within(on_canary, NKEYS, 0.1, "sticky keys on the canary"))
		qvt_fail("sticky canary share out of bounds");

	/* 3. Cleared: everything to the primary, no flag. */
	rc = qvt_ctl(q, d.sock, out, sizeof(out), "canary", "trade-mlp", "0", NULL);
	if (rc != 0)
		qvt_fail("quiverctl canary trade-mlp 0: exit %d", rc);
	struct qvt_stream sc = { .c = c, .handle = desc.handle, .depth = 8, .refs = &refs,
				 .rows = rows, .nrows = nrows };
	run_stream(&sc, 2000, "canary cleared");
	if (sc.by_version[1] != sc.sent || sc.canary_flag)
		qvt_fail("after clearing the canary: %llu of %llu from version 1, %llu flagged",
			 (unsigned long long)sc.by_version[1], (unsigned long long)sc.sent,
			 (unsigned long long)sc.canary_flag);

	/* 4. Shadow: runs, is counted, never answers. */
	double sh0 = stat_sum(d.sock, "shadow");
	rc = qvt_ctl(q, d.sock, out, sizeof(out), "shadow", "trade-mlp", "2", NULL);
	fprintf(stderr, "quiverctl shadow trade-mlp 2 (exit %d):\n%s", rc, out);
	if (rc != 0)
		qvt_die("quiverctl shadow: exit %d", rc);
	struct qvt_stream ss = { .c = c, .handle = desc.handle, .depth = 8, .refs = &refs,
				 .rows = rows, .nrows = nrows };
	run_stream(&ss, 5000, "shadow 100%");
	if (ss.by_version[1] != ss.sent || ss.canary_flag || ss.fallback_flag)
		qvt_fail("with a shadow: %llu of %llu answered by version 1, flags %llu/%llu",
			 (unsigned long long)ss.by_version[1], (unsigned long long)ss.sent,
			 (unsigned long long)ss.canary_flag, (unsigned long long)ss.fallback_flag);
	/* Stats are summed on demand from per-worker counters: allow the
	 * worker a moment to finish the last shadow runs. */
	double sh1 = 0;
	for (int i = 0; i < 50 && (sh1 = stat_sum(d.sock, "shadow")) < sh0 + ss.sent; i++)
		qvt_sleep_ms(20);
	double dis = stat_sum(d.sock, "shadow_disagree");
	fprintf(stderr, "shadow runs: %.0f -> %.0f for %llu requests; disagreements %.0f\n", sh0,
		sh1, (unsigned long long)ss.sent, dis);
	if (!(sh1 > sh0))
		qvt_fail("the shadow's counter did not grow");
	rc = qvt_ctl(q, d.sock, out, sizeof(out), "--json", "stats", "trade-mlp", NULL);
	if (rc != 0 || !strstr(out, "\"shadow\""))
		qvt_fail("quiverctl --json stats trade-mlp: exit %d, no shadow counter", rc);
	rc = qvt_ctl(q, d.sock, out, sizeof(out), "shadow", "trade-mlp", "0", NULL);
	if (rc != 0)
		qvt_fail("quiverctl shadow trade-mlp 0: exit %d", rc);

	qv_close(c);
	qvt_refs_free(&refs);
	return qvt_finish(&d);
}
