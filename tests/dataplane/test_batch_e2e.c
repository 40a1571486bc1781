/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_batch_e2e.c - opportunistic batching through a real quiverd with one
 * worker (--cores of one core): four clients, each a thread with its own
 * channel, submit trade-mlp requests of 1..4 random reference rows
 * asynchronously with up to 48 in flight each, so the worker's turns find
 * requests from several channels and run them together. Every output must
 * equal the torch reference (rtol 1e-4, atol 1e-5) and the same request
 * sent again alone (a second pass with one request in flight); the
 * largest batched-vs-alone difference is printed. `quiverctl stats --json`
 * must show batches of more than one request for trade-mlp, so the test
 * cannot pass without batching; Prometheus `metrics` must carry the same
 * batch counters and at least as many model runs of two rows or more.
 *
 * Usage: test_batch_e2e QUIVERD REPO QUIVERCTL
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define NCLIENTS 4
#define NREQ 1500
#define MAX_ROWS 4u
#define INFLIGHT 48u

struct req {
	uint32_t row0, rows;
	float out[MAX_ROWS * 8];   /* trade-mlp: out_dim is checked to fit */
	float alone[MAX_ROWS * 8];
	int done;
};

struct arg {
	const char *sock, *repo;
	int id;
	struct req *reqs;
	double max_diff;
	int bad;
};

static uint64_t xs(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static void check_out(struct arg *a, const struct qvt_model *m, const struct req *r,
		      const float *got, const char *what)
{
	char tag[64];

	snprintf(tag, sizeof(tag), "client %d %s rows %u+%u", a->id, what, r->row0, r->rows);
	if (qvt_compare(got, m->ref.y.data + (size_t)r->row0 * m->ref.out_dim,
			(size_t)r->rows * m->ref.out_dim, QVT_RTOL, QVT_ATOL, tag) != 0)
		a->bad++;
}

static void *client(void *p)
{
	struct arg *a = p;
	char name[32];
	struct qvt_model m;
	struct qv_result res[64];
	uint64_t rng = 0x51ed2701u + (uint64_t)a->id * 7919u;
	uint32_t next = 0, got = 0, od;
	qv_client *c;

	snprintf(name, sizeof(name), "batch-e2e-%d", a->id);
	c = qvt_connect(a->sock, name, 64);
	qvt_model_open(c, a->repo, "trade-mlp", &m);
	od = m.ref.out_dim;
	if (od > 8 || m.desc.max_batch < MAX_ROWS)
		qvt_die("trade-mlp: out_dim %u / max_batch %u do not fit the test", od,
			m.desc.max_batch);
	for (uint32_t i = 0; i < NREQ; i++) {
		a->reqs[i].rows = 1 + (uint32_t)(xs(&rng) % MAX_ROWS);
		a->reqs[i].row0 = (uint32_t)(xs(&rng) % (m.ref.rows - a->reqs[i].rows + 1));
	}
	/* Pass 1: many in flight, bursts of random size, so turns mix channels. */
	while (got < NREQ) {
		uint32_t burst = 1 + (uint32_t)(xs(&rng) % 16);
		int n;

		while (burst-- && next < NREQ && qv_inflight(c) < INFLIGHT) {
			struct req *r = &a->reqs[next];
			struct qv_request rq = {
				.handle = m.desc.handle,
				.rows = r->rows,
				.input = m.ref.x.data + (size_t)r->row0 * m.ref.in_dim,
				.request_id = next,
			};
			int e = qv_submit(c, &rq, r->out, MAX_ROWS * 8);

			if (e == -EAGAIN)
				break;
			if (e != 0)
				qvt_die("client %d: qv_submit: %s", a->id, qv_strerror(e));
			next++;
		}
		n = qv_poll(c, res, 64);
		if (n < 0)
			qvt_die("client %d: qv_poll: %s", a->id, qv_strerror(n));
		for (int k = 0; k < n; k++) {
			struct req *r;

			if (res[k].request_id >= NREQ)
				qvt_die("client %d: unknown request id", a->id);
			r = &a->reqs[res[k].request_id];
			if (res[k].status != QV_OK || res[k].out_floats != r->rows * od || r->done) {
				qvt_fail("client %d: request %llu: status %d, %u floats, done %d",
					 a->id, (unsigned long long)res[k].request_id,
					 (int)res[k].status, res[k].out_floats, r->done);
				a->bad++;
			}
			r->done = 1;
			got++;
		}
	}
	/* Pass 2: the same requests alone, one in flight. */
	for (uint32_t i = 0; i < NREQ; i++) {
		struct req *r = &a->reqs[i];
		struct qv_request rq = {
			.handle = m.desc.handle,
			.rows = r->rows,
			.input = m.ref.x.data + (size_t)r->row0 * m.ref.in_dim,
			.request_id = i,
		};
		struct qv_result rr;

		if (qv_infer(c, &rq, r->alone, MAX_ROWS * 8, 0, &rr) != 0 || rr.status != QV_OK) {
			qvt_fail("client %d: request %u alone failed", a->id, i);
			a->bad++;
			continue;
		}
		check_out(a, &m, r, r->out, "batched");
		check_out(a, &m, r, r->alone, "alone");
		for (uint32_t j = 0; j < r->rows * od; j++) {
			double d = fabs((double)r->out[j] - (double)r->alone[j]);

			if (d > a->max_diff)
				a->max_diff = d;
		}
	}
	qv_close(c);
	qvt_ref_free(&m.ref);
	return NULL;
}

/*
 * Prometheus `metrics`: the sum over trade-mlp's versions of a counter
 * (quiver_<name>_total), and of its model runs of two rows or more.
 */
static double metric_sum(const char *quiverctl, const char *sock, const char *name,
			 double *ret_multi_runs)
{
	static char out[1 << 20];
	static const char runs[] = "quiver_model_runs_total{model=\"trade-mlp\",";
	const char *argv[] = { quiverctl, "--socket", sock, "metrics", NULL };
	char prefix[96];
	double sum = 0, multi = 0;
	int ws;

	if (qvt_run(argv, out, sizeof(out), &ws) != 0 || ws != 0)
		qvt_die("quiverctl metrics failed");
	snprintf(prefix, sizeof(prefix), "quiver_%s_total{model=\"trade-mlp\",", name);
	for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
		const char *sp = strrchr(l, ' ');
		unsigned rows;

		if (!sp)
			continue;
		if (strncmp(l, prefix, strlen(prefix)) == 0)
			sum += strtod(sp + 1, NULL);
		if (strncmp(l, runs, sizeof(runs) - 1) == 0 &&
		    sscanf(strstr(l, "rows=\"") ? strstr(l, "rows=\"") + 6 : "", "%u", &rows) == 1 &&
		    rows >= 2)
			multi += strtod(sp + 1, NULL);
	}
	*ret_multi_runs = multi;
	return sum;
}

int main(int argc, char **argv)
{
	const char *extra[] = { "--cores", "1", NULL };
	struct qvt_daemon d;
	pthread_t th[NCLIENTS];
	struct arg args[NCLIENTS];
	double max_diff = 0, batches, brows;

	if (argc < 4) {
		fprintf(stderr, "usage: %s QUIVERD REPO QUIVERCTL\n", argv[0]);
		return 2;
	}
	if (qvt_daemon_start(&d, argv[1], argv[2], extra) < 0)
		qvt_die("quiverd did not start");
	for (int i = 0; i < NCLIENTS; i++) {
		args[i] = (struct arg){ .sock = d.sock, .repo = argv[2], .id = i,
					.reqs = calloc(NREQ, sizeof(struct req)) };
		if (!args[i].reqs)
			qvt_die("out of memory");
		pthread_create(&th[i], NULL, client, &args[i]);
	}
	for (int i = 0; i < NCLIENTS; i++) {
		pthread_join(th[i], NULL);
		if (args[i].bad)
			qvt_fail("client %d: %d bad answers", i, args[i].bad);
		if (args[i].max_diff > max_diff)
			max_diff = args[i].max_diff;
		free(args[i].reqs);
	}
	qvt_stats_batches(argv[3], d.sock, "trade-mlp", &batches, &brows);
	fprintf(stderr, "%d requests a client; %.0f batches of %.2f rows on average; "
		"max |batched - alone| %.3g\n", NREQ, batches, batches ? brows / batches : 0.0,
		max_diff);
	if (batches < 1 || brows < 2 * batches)
		qvt_fail("no batch of more than one request ran (batches %.0f, rows %.0f)",
			 batches, brows);
	/* The same counters through Prometheus metrics (nothing runs now). */
	{
		double multi, mb = metric_sum(argv[3], d.sock, "batches", &multi);
		double mr = metric_sum(argv[3], d.sock, "batch_rows", &multi);

		fprintf(stderr, "metrics: %.0f batches, %.0f rows, %.0f runs of 2+ rows\n", mb, mr,
			multi);
		if (mb != batches || mr != brows)
			qvt_fail("metrics: batches %.0f rows %.0f, stats --json: %.0f and %.0f", mb,
				 mr, batches, brows);
		/* A batch may be one request of several rows too: runs of 2+ rows >= batches. */
		if (multi < batches)
			qvt_fail("metrics: %.0f model runs of 2+ rows, fewer than %.0f batches", multi,
				 batches);
	}
	return qvt_finish(&d);
}
