/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_drain.c - SIGTERM while two clients stream with requests in
 * flight: every request submitted gets exactly one result, either OK with
 * the reference output or UNAVAILABLE (never lost, never wrong), the
 * clients learn of the end (UNAVAILABLE / -EPIPE) instead of hanging, and
 * the daemon exits 0.
 *
 * Usage: test_drain QUIVERD REPO [CLIENT QUIVERCTL]
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"

#define INFLIGHT 16
#define NBUF 1024

static atomic_bool terminated;

struct streamer {
	const char *sock, *repo;
	int id;
	atomic_long completed;
	long submitted, ok, unavailable, other, wrong, after_term_ok;
	int end;                   /* how it ended: the errno that stopped it */
};

static void *streamer(void *p)
{
	struct streamer *s = p;
	struct qvt_model m;
	char name[32];
	static _Thread_local float out[NBUF][4];
	static _Thread_local uint8_t busy[NBUF];
	struct qv_result res[INFLIGHT];
	uint64_t next = 0;
	bool can_submit = true;

	snprintf(name, sizeof(name), "e2e-drain-%d", s->id);
	qv_client *c = qvt_connect(s->sock, name, INFLIGHT);
	qvt_model_open(c, s->repo, "trade-mlp", &m);
	if (m.desc.out_dim > 4)
		qvt_die("trade-mlp has %u outputs a row; this test expects <= 4", m.desc.out_dim);
	uint64_t t_end = 0;
	for (;;) {
		while (can_submit && qv_inflight(c) < INFLIGHT && !busy[next % NBUF]) {
			uint32_t row = (uint32_t)(next % m.ref.rows);
			struct qv_request q = { .handle = m.desc.handle, .rows = 1,
						.input = m.ref.x.data + (size_t)row * m.desc.in_dim,
						.request_id = next };
			int r = qv_submit(c, &q, out[next % NBUF], 4);
			if (r == -EAGAIN)
				break;
			if (r < 0) {
				/* The daemon is going away; stop submitting. */
				can_submit = false;
				s->end = r;
				break;
			}
			busy[next % NBUF] = 1;
			next++;
			s->submitted++;
		}
		int n = qv_poll(c, res, INFLIGHT);
		if (n < 0) {
			s->end = n;
			break;
		}
		bool term = atomic_load_explicit(&terminated, memory_order_relaxed);
		for (int i = 0; i < n; i++) {
			uint64_t id = res[i].request_id;
			if (id >= next || !busy[id % NBUF]) {
				qvt_fail("client %d: result for id %llu, not in flight", s->id,
					 (unsigned long long)id);
				continue;
			}
			busy[id % NBUF] = 0;
			atomic_fetch_add_explicit(&s->completed, 1, memory_order_relaxed);
			if (res[i].status == QV_OK) {
				s->ok++;
				if (term)
					s->after_term_ok++;
				uint32_t row = (uint32_t)(id % m.ref.rows);
				if (qvt_compare(out[id % NBUF],
						m.ref.y.data + (size_t)row * m.desc.out_dim,
						m.desc.out_dim, QVT_RTOL, QVT_ATOL, "drain"))
					s->wrong++;
			} else if (res[i].status == QV_UNAVAILABLE) {
				s->unavailable++;
				can_submit = false;
			} else {
				s->other++;
			}
		}
		if (!can_submit && qv_inflight(c) == 0)
			break;
		if (term) {
			if (!t_end)
				t_end = qvt_now_ns();
			else if (qvt_now_ns() - t_end > 10ull * 1000000000u) {
				qvt_fail("client %d: still %u in flight 10 s after SIGTERM", s->id,
					 qv_inflight(c));
				break;
			}
		}
	}
	if (qv_inflight(c) != 0)
		qvt_fail("client %d: %u requests never got a result", s->id, qv_inflight(c));
	qv_close(c);
	qvt_ref_free(&m.ref);
	return NULL;
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	struct streamer s[2];
	pthread_t th[2];
	int st;

	if (argc < 3) {
		fprintf(stderr, "usage: %s QUIVERD REPO\n", argv[0]);
		return 2;
	}
	if (qvt_daemon_start(&d, argv[1], argv[2], NULL) < 0)
		qvt_die("quiverd did not start");
	for (int i = 0; i < 2; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		s[i].sock = d.sock;
		s[i].repo = argv[2];
		s[i].id = i;
		pthread_create(&th[i], NULL, streamer, &s[i]);
	}
	uint64_t t0 = qvt_now_ns();
	while (atomic_load(&s[0].completed) < 2000 || atomic_load(&s[1].completed) < 2000) {
		if (qvt_now_ns() - t0 > 30ull * 1000000000u)
			qvt_die("clients did not get 2000 completions each in 30 s");
		qvt_sleep_ms(5);
	}
	kill(d.pid, SIGTERM);
	atomic_store_explicit(&terminated, true, memory_order_relaxed);
	uint64_t t_term = qvt_now_ns();
	int r = qvt_daemon_wait(&d, 30000, &st);
	fprintf(stderr, "quiverd exited %.0f ms after SIGTERM (status 0x%x)\n",
		(double)(qvt_now_ns() - t_term) / 1e6, r == 0 ? st : -1);
	if (r < 0)
		qvt_fail("quiverd did not exit within 30 s of SIGTERM");
	else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		qvt_fail("quiverd exit status 0x%x, want exit 0", st);

	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		long got = s[i].ok + s[i].unavailable + s[i].other;
		fprintf(stderr, "client %d: %ld submitted, %ld OK (%ld after SIGTERM), %ld "
				"UNAVAILABLE, %ld other, %ld wrong; ended with %s\n", i,
			s[i].submitted, s[i].ok, s[i].after_term_ok, s[i].unavailable, s[i].other,
			s[i].wrong, s[i].end ? qv_strerror(s[i].end) : "UNAVAILABLE");
		if (got != s[i].submitted)
			qvt_fail("client %d: %ld submitted, %ld results", i, s[i].submitted, got);
		if (s[i].other || s[i].wrong)
			qvt_fail("client %d: %ld results neither OK nor UNAVAILABLE, %ld wrong", i,
				 s[i].other, s[i].wrong);
	}
	return qvt_finish(&d);
}
