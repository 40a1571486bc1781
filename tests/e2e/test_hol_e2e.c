/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_hol_e2e.c - two clients of one quiverd worker, one flooding it:
 * a thread keeps 16 requests of 256 rows (trade-mlp's whole reference set)
 * in flight on its own channel, while a small client sends 300 one-row
 * requests one at a time on another. Every answer of both is checked
 * against the generator's torch reference; every small request must come
 * back, correct, within a generous bound (5 s: correctness, not speed -
 * before the worker bounded the rows it takes from a channel a turn, one
 * turn could hold a whole burst of the flood's requests ahead of it); the
 * flood must have been answered while the small client ran, so that the
 * two really shared the worker.
 *
 * Usage: test_hol_e2e QUIVERD REPO CLIENT QUIVERCTL
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

#define FLOOD_INFLIGHT 16u
#define FLOOD_ROWS 256u
#define SMALL_REQS 300u
#define SMALL_BOUND_NS (5ull * 1000000000ull)

static const char *sock;
static struct qvt_model model;
static _Atomic int stop;            /* main -> flood: finish */
static _Atomic int flood_on;        /* flood -> main: first requests are in */
static _Atomic uint64_t flood_done; /* flood answers checked */
static _Atomic int flood_bad;

static void *flood(void *arg)
{
	(void)arg;
	qv_client *c = qvt_connect(sock, "hol-flood", FLOOD_INFLIGHT);
	struct qv_model_desc d;
	const struct qvt_ref *ref = &model.ref;
	size_t out_n = (size_t)FLOOD_ROWS * ref->out_dim;
	float *outs = malloc(FLOOD_INFLIGHT * out_n * sizeof(float));
	struct qv_result res[FLOOD_INFLIGHT];
	uint32_t free_bufs[FLOOD_INFLIGHT], nfree = FLOOD_INFLIGHT;

	if (!outs || qv_model_lookup(c, "trade-mlp", &d) < 0) {
		atomic_store(&flood_bad, 1);
		atomic_store(&flood_on, 1);
		free(outs);
		qv_close(c);
		return NULL;
	}
	for (uint32_t i = 0; i < FLOOD_INFLIGHT; i++)
		free_bufs[i] = i;
	while (!atomic_load(&stop) || qv_inflight(c)) {
		/* A request's id is its output buffer: reused only once answered. */
		while (!atomic_load(&stop) && nfree) {
			uint32_t b = free_bufs[--nfree];
			struct qv_request q = { .handle = d.handle, .rows = FLOOD_ROWS,
						.input = ref->x.data, .request_id = b };
			memset(outs + b * out_n, 0xff, out_n * sizeof(float));
			if (qv_submit(c, &q, outs + b * out_n, out_n) < 0) {
				nfree++;
				break;
			}
		}
		atomic_store(&flood_on, 1);
		int n = qv_poll(c, res, FLOOD_INFLIGHT);
		if (n < 0) {
			qvt_fail("flood: qv_poll: %s", qv_strerror(n));
			atomic_store(&flood_bad, 1);
			break;
		}
		for (int i = 0; i < n; i++) {
			uint32_t b = (uint32_t)res[i].request_id;
			if (b >= FLOOD_INFLIGHT || res[i].status != QV_OK ||
			    res[i].out_floats != out_n ||
			    qvt_compare(outs + b * out_n, ref->y.data, out_n, QVT_RTOL, QVT_ATOL,
					"flood 256 rows")) {
				qvt_fail("flood: answer %llu: status %s, %u floats",
					 (unsigned long long)res[i].request_id,
					 qv_strerror((int)res[i].status), res[i].out_floats);
				atomic_store(&flood_bad, 1);
			}
			if (b < FLOOD_INFLIGHT)
				free_bufs[nfree++] = b;
			atomic_fetch_add(&flood_done, 1);
		}
		if (n == 0) {
			struct timespec ts = { .tv_nsec = 50000 };
			nanosleep(&ts, NULL);
		}
	}
	free(outs);
	qv_close(c);
	return NULL;
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	pthread_t th;
	uint64_t worst = 0;

	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	if (qvt_daemon_start(&d, argv[1], argv[2], NULL) < 0)
		qvt_die("quiverd did not start");
	sock = d.sock;
	qv_client *small = qvt_connect(sock, "hol-small", 4);
	qvt_model_open(small, argv[2], "trade-mlp", &model);
	if (model.ref.rows < FLOOD_ROWS || model.desc.max_batch < FLOOD_ROWS)
		qvt_die("trade-mlp: %u reference rows, max_batch %u; %u needed", model.ref.rows,
			model.desc.max_batch, FLOOD_ROWS);

	if (pthread_create(&th, NULL, flood, NULL) != 0)
		qvt_die("pthread_create");
	while (!atomic_load(&flood_on))
		qvt_sleep_ms(1);
	uint64_t done0 = atomic_load(&flood_done);
	for (uint32_t i = 0; i < SMALL_REQS; i++) {
		uint64_t t0 = qvt_now_ns();
		if (qvt_infer_check(small, &model, i % model.ref.rows, 1, "small beside flood") < 0)
			break;
		uint64_t t = qvt_now_ns() - t0;
		worst = t > worst ? t : worst;
		if (t > SMALL_BOUND_NS)
			qvt_fail("small request %u took %.3f s beside the flood", i, (double)t / 1e9);
	}
	uint64_t during = atomic_load(&flood_done) - done0;
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	if (during == 0)
		qvt_fail("the flood got no answer while the small client ran: nothing was shared");
	if (atomic_load(&flood_bad))
		qvt_fail("the flood's answers were wrong or missing");
	printf("small: %u requests, slowest %.3f ms; flood: %llu answers of %u rows meanwhile\n",
	       SMALL_REQS, (double)worst / 1e6, (unsigned long long)during, FLOOD_ROWS);
	qv_close(small);
	qvt_ref_free(&model.ref);
	return qvt_finish(&d);
}
