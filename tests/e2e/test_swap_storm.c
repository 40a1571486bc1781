/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_swap_storm.c - 4 client threads send trade-mlp requests at full
 * speed (pipelined, 8 in flight each) while the primary flips between
 * versions 1 and 2 a thousand times, every tenth flip through the
 * quiverctl binary and the rest as raw commands. Every request must get
 * exactly one completion, status OK, and an output equal to the reference
 * output of the version the completion names: zero lost, zero misrouted.
 * Only rows where versions 1 and 2 differ clearly are sent, so a request
 * answered by one version but labelled with the other cannot pass.
 *
 * Usage: test_swap_storm QUIVERD REPO CLIENT QUIVERCTL
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "routing.h"

#define NTHREADS 4
#define NSWAPS 1000
#define SWAP_BUDGET_NS (75ull * 1000000000ull)

static struct qvt_refs refs;
static uint32_t rows[256];
static uint32_t nrows;
static const char *sock;
static uint32_t handle;
/* Relaxed is enough: the flag only ends the loops; join orders the rest. */
static atomic_bool stop;

struct worker {
	pthread_t th;
	struct qvt_stream s;
	int err;
};

static void *client(void *arg)
{
	struct worker *w = arg;
	w->s.c = qvt_connect(sock, "swap-storm", 16);
	struct qv_model_desc desc;
	if (qv_model_lookup(w->s.c, "trade-mlp", &desc) < 0 || desc.handle != handle) {
		w->err = -ENOENT;
		return NULL;
	}
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		int r = qvt_stream_step(&w->s, UINT64_MAX);
		if (r < 0) {
			w->err = r;
			return NULL;
		}
	}
	w->err = qvt_stream_drain(&w->s, 30000);
	qv_close(w->s.c);
	return NULL;
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	static char out[1 << 16];
	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	const char *quiverctl = argv[4];
	qvt_refs_load(argv[2], &refs);
	nrows = qvt_refs_distinct(&refs, 1, 2, rows, 256);
	if (nrows < 16)
		qvt_die("only %u rows tell versions 1 and 2 apart", nrows);
	if (qvt_daemon_start(&d, argv[1], argv[2], NULL) < 0)
		qvt_die("quiverd did not start");
	sock = d.sock;
	qvt_need_routing(&d);

	/* Both versions loaded (the repository may have loaded only the
	 * highest), version 2 the primary. */
	int32_t st;
	cJSON *j = qvt_cmd(sock, &st, "{\"cmd\":\"load\",\"name\":\"trade-mlp\",\"version\":1}");
	if (st != 0 && st != -EEXIST)
		qvt_die("load trade-mlp/1: status %d", st);
	cJSON_Delete(j);
	cJSON_Delete(qvt_cmd_ok(sock, "{\"cmd\":\"swap\",\"name\":\"trade-mlp\",\"version\":2}"));
	qv_client *c0 = qvt_connect(sock, "storm-lookup", 4);
	struct qv_model_desc desc;
	if (qv_model_lookup(c0, "trade-mlp", &desc) < 0)
		qvt_die("lookup trade-mlp");
	handle = desc.handle;
	qv_close(c0);

	static struct worker w[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		w[i].s = (struct qvt_stream){ .handle = handle, .depth = 8, .refs = &refs,
					      .rows = rows, .nrows = nrows };
		/* Each thread walks the rows from its own offset. */
		w[i].s.next = (uint64_t)i * 17;
		pthread_create(&w[i].th, NULL, client, &w[i]);
	}

	uint64_t t0 = qvt_now_ns();
	int swaps = 0, via_binary = 0;
	for (; swaps < NSWAPS; swaps++) {
		int v = swaps % 2 == 0 ? 1 : 2;
		char vs[8];
		snprintf(vs, sizeof(vs), "%d", v);
		if (swaps % 10 == 0) {
			int rc = qvt_ctl(quiverctl, sock, out, sizeof(out), "swap", "trade-mlp", vs,
					 NULL);
			via_binary++;
			if (rc != 0) {
				qvt_fail("quiverctl swap trade-mlp %d: exit %d", v, rc);
				break;
			}
		} else {
			cJSON *r = qvt_cmd_ok(sock, "{\"cmd\":\"swap\",\"name\":\"trade-mlp\","
						    "\"version\":%d}", v);
			double p = qvt_num(r, "primary"), prev = qvt_num(r, "previous");
			cJSON_Delete(r);
			if (!r)
				break;
			if (p != v || prev != 3 - v) {
				qvt_fail("swap to %d: reply says primary %.0f previous %.0f", v, p,
					 prev);
				break;
			}
		}
		if (qvt_now_ns() - t0 > SWAP_BUDGET_NS) {
			qvt_fail("only %d swaps in %llu s", swaps + 1, SWAP_BUDGET_NS / 1000000000ull);
			break;
		}
		/* Let a few requests through between flips. */
		qvt_sleep_us(100);
	}
	double secs = (double)(qvt_now_ns() - t0) / 1e9;
	atomic_store_explicit(&stop, true, memory_order_relaxed);

	uint64_t sent = 0, ok = 0, byv[3] = { 0 };
	struct qvt_stream total = { .refs = &refs };
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(w[i].th, NULL);
		char who[32];
		snprintf(who, sizeof(who), "client %d", i);
		if (w[i].err < 0)
			qvt_fail("client %d: %s", i, strerror(-w[i].err));
		if (!qvt_stream_report(&w[i].s, who))
			qvt_fail("client %d: lost, failed or misrouted requests", i);
		sent += w[i].s.sent;
		ok += w[i].s.ok;
		byv[1] += w[i].s.by_version[1];
		byv[2] += w[i].s.by_version[2];
		total.mismatched += w[i].s.mismatched;
		total.unknown_id += w[i].s.unknown_id;
		total.done += w[i].s.done;
	}
	fprintf(stderr, "swap storm: %d swaps (%d through quiverctl) in %.1f s; %llu requests, "
		"%llu completed, %llu ok, %llu misrouted/wrong, %llu unknown ids; v1 %llu, v2 %llu\n",
		swaps, via_binary, secs, (unsigned long long)sent, (unsigned long long)total.done,
		(unsigned long long)ok, (unsigned long long)total.mismatched,
		(unsigned long long)total.unknown_id, (unsigned long long)byv[1],
		(unsigned long long)byv[2]);
	if (swaps != NSWAPS)
		qvt_fail("%d swaps done, want %d", swaps, NSWAPS);
	if (byv[1] == 0 || byv[2] == 0)
		qvt_fail("one version served nothing (v1 %llu, v2 %llu)", (unsigned long long)byv[1],
			 (unsigned long long)byv[2]);

	/* The last flip went to version 2; the route says so. */
	cJSON *routes = qvt_cmd_ok(sock, "{\"cmd\":\"routes\"}");
	const cJSON *r = qvt_route_of(routes, "trade-mlp");
	if (!r || qvt_num(r, "primary") != 2 || qvt_num(r, "previous") != 1)
		qvt_fail("routes after the storm: trade-mlp primary %.0f previous %.0f, want 2, 1",
			 r ? qvt_num(r, "primary") : -1, r ? qvt_num(r, "previous") : -1);
	cJSON_Delete(routes);
	qvt_refs_free(&refs);
	return qvt_finish(&d);
}
