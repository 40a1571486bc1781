/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_daemon_kill.c - the daemon dies under a client: a client blocked in
 * qv_infer gets QV_UNAVAILABLE within a bound (libquiver's default is
 * 100 ms of heartbeat silence; we assert < 1 s to stay robust on a noisy
 * machine and print what we measured), and an async client's in-flight
 * requests are each reported UNAVAILABLE before qv_poll says -EPIPE.
 *
 * Two phases, each with its own daemon:
 *  - hung: the daemon is stopped (SIGSTOP) with its socket still open, so
 *    only the heartbeat can tell; the blocked qv_infer and the requests
 *    submitted after the stop must all come back UNAVAILABLE, timed from
 *    the SIGSTOP; then it is SIGKILLed.
 *  - killed: SIGKILL straight away while qv_infer is blocked; timed from
 *    the kill. Requests submitted just before may have been answered, so
 *    there OK or UNAVAILABLE are both right, but none may go missing.
 *
 * Usage: test_daemon_kill QUIVERD REPO [CLIENT QUIVERCTL]
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"

#define BOUND_NS 1000000000ull

static atomic_long served;

struct blocked {
	qv_client *c;
	struct qvt_model *m;
	int r;
	enum qv_status status;
	uint64_t returned_ns;
	uint64_t again_ns;          /* how long a call after that took */
	int again_r;
	enum qv_status again_status;
};

static void *blocked_client(void *p)
{
	struct blocked *b = p;
	struct qv_result res;
	float out[16];
	struct qv_request req = { .handle = b->m->desc.handle, .rows = 1,
				  .input = b->m->ref.x.data };
	for (;;) {
		req.request_id++;
		b->r = qv_infer(b->c, &req, out, 16, 0, &res);
		if (b->r < 0 || res.status != QV_OK)
			break;
		atomic_fetch_add_explicit(&served, 1, memory_order_relaxed);
	}
	b->returned_ns = qvt_now_ns();
	b->status = b->r < 0 ? QV_UNAVAILABLE : res.status;
	uint64_t t = qvt_now_ns();
	b->again_r = qv_infer(b->c, &req, out, 16, 0, &res);
	b->again_status = b->again_r < 0 ? QV_STATUS_COUNT : res.status;
	b->again_ns = qvt_now_ns() - t;
	return NULL;
}

static void phase(const char *quiverd, const char *repo, bool hang)
{
	struct qvt_daemon d;
	struct qvt_model ma, mb;
	struct blocked b = { 0 };
	pthread_t th;
	const char *what = hang ? "hung" : "killed";

	atomic_store(&served, 0);
	if (qvt_daemon_start(&d, quiverd, repo, NULL) < 0)
		qvt_die("quiverd did not start");
	/* libquiver's default heartbeat bound (100 ms) is what is under test. */
	struct qv_connect_opts oa = { .client_name = "e2e-blocked", .slots = 8 };
	struct qv_connect_opts oc = { .client_name = "e2e-async", .slots = 8 };
	qv_client *a, *c;
	int cr = qv_connect(d.sock, &oa, &a);
	if (cr == 0)
		cr = qv_connect(d.sock, &oc, &c);
	if (cr < 0)
		qvt_die("qv_connect: %s", qv_strerror(cr));
	qvt_model_open(a, repo, "trade-mlp", &ma);
	qvt_model_open(c, repo, "trade-mlp", &mb);
	if (qvt_infer_check(c, &mb, 0, 4, "before the kill") < 0)
		qvt_die("the daemon does not serve correctly to begin with");

	b.c = a;
	b.m = &ma;
	pthread_create(&th, NULL, blocked_client, &b);
	while (atomic_load_explicit(&served, memory_order_relaxed) < 200)
		qvt_sleep_ms(1);

	uint64_t t_silent;
	if (hang) {
		int st;
		kill(d.pid, SIGSTOP);
		t_silent = qvt_now_ns();
		/* As its parent we can wait until every thread has stopped, so
		 * what is submitted next is really never served. */
		if (waitpid(d.pid, &st, WUNTRACED) != d.pid || !WIFSTOPPED(st))
			qvt_die("quiverd did not stop");
	}
	float out[4][16];
	int submitted = 0;
	for (int i = 0; i < 4; i++) {
		struct qv_request q = { .handle = mb.desc.handle, .rows = 1,
					.input = mb.ref.x.data, .request_id = 100 + (uint64_t)i };
		if (qv_submit(c, &q, out[i], 16) == 0)
			submitted++;
	}
	if (!hang) {
		kill(d.pid, SIGKILL);
		t_silent = qvt_now_ns();
	}

	/* The async client: every in-flight request reported, then -EPIPE. */
	struct qv_result res[8];
	int unavailable = 0, ok = 0, other = 0, r;
	uint64_t t0 = qvt_now_ns();
	while ((r = qv_poll(c, res, 8)) >= 0) {
		for (int i = 0; i < r; i++) {
			if (res[i].status == QV_UNAVAILABLE)
				unavailable++;
			else if (res[i].status == QV_OK && !hang)
				ok++;
			else
				other++;
		}
		if (qvt_now_ns() - t0 > 5 * BOUND_NS)
			break;
	}
	uint64_t async_ns = qvt_now_ns() - t_silent;
	fprintf(stderr, "%s: async client: %d submitted, %d UNAVAILABLE, %d OK, %d other, "
			"qv_poll %d after %.1f ms\n", what, submitted, unavailable, ok, other, r,
		(double)async_ns / 1e6);
	if (r != -EPIPE)
		qvt_fail("%s: qv_poll did not report -EPIPE within 5 s (last %d)", what, r);
	if (unavailable + ok != submitted || other)
		qvt_fail("%s: %d requests in flight, %d UNAVAILABLE, %d OK, %d otherwise", what,
			 submitted, unavailable, ok, other);
	if (async_ns > BOUND_NS)
		qvt_fail("%s: async client learnt of it after %.1f ms (> 1 s)", what,
			 (double)async_ns / 1e6);

	/* The blocked client. */
	pthread_join(th, NULL);
	uint64_t blocked_ns = b.returned_ns > t_silent ? b.returned_ns - t_silent : 0;
	fprintf(stderr, "%s: blocked qv_infer returned %s (%d) %.1f ms after the daemon went "
			"silent; the next call took %.3f ms: %s\n", what,
		qv_strerror((int)b.status), b.r, (double)blocked_ns / 1e6,
		(double)b.again_ns / 1e6,
		b.again_r < 0 ? qv_strerror(b.again_r) : qv_strerror((int)b.again_status));
	if (b.r < 0 || b.status != QV_UNAVAILABLE)
		qvt_fail("%s: blocked qv_infer: r=%d status %s, want 0 and UNAVAILABLE", what, b.r,
			 qv_strerror((int)b.status));
	if (blocked_ns > BOUND_NS)
		qvt_fail("%s: blocked qv_infer returned %.1f ms after the daemon went silent (> 1 s)",
			 what, (double)blocked_ns / 1e6);
	if (b.again_ns > BOUND_NS || (b.again_r == 0 && b.again_status == QV_OK))
		qvt_fail("%s: a call after the death took %.1f ms / succeeded", what,
			 (double)b.again_ns / 1e6);

	if (qvt_failures())
		qvt_daemon_dump_log(&d);
	qvt_daemon_cleanup(&d);
	qv_close(a);
	qv_close(c);
	qvt_ref_free(&ma.ref);
	qvt_ref_free(&mb.ref);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s QUIVERD REPO\n", argv[0]);
		return 2;
	}
	phase(argv[1], argv[2], true);
	phase(argv[1], argv[2], false);
	printf("%s\n", qvt_failures() ? "FAILED" : "ok");
	return qvt_failures() ? 1 : 0;
}
