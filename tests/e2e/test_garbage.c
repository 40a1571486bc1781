/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_garbage.c - a hostile client: it maps its own channel (raw
 * hand-shake, see rawchan.h) and, for a bounded number of seeded random
 * rounds, writes random descriptors, descriptors with one field wrong,
 * random bytes into slots and unused ring entries, random header fields,
 * and impossible submission-ring indices (forward past the ring, and
 * backwards). Every completion it gets must carry a valid status and one
 * of the request ids it sent, valid requests still return the reference
 * outputs, and an impossible index must get the channel closed (server
 * state CLOSED or the socket hung up), after which it opens a new one.
 * Meanwhile a well-behaved libquiver client checks every output, and at
 * the end the daemon still answers `status` and exits 0 on SIGTERM.
 *
 * Usage: test_garbage QUIVERD REPO [CLIENT QUIVERCTL]; QVT_SEED=n
 * replays another seed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rawchan.h"

#define ROUNDS 3000
#define NSLOTS 8
#define SLOT_IN 4096
#define SLOT_OUT 1024

static atomic_bool stop;
static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible from the printed seed. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static void rnd_bytes(void *p, size_t n)
{
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd();
}

struct steady {
	const char *sock, *repo;
	long ok, bad;
};

static void *steady_client(void *p)
{
	struct steady *s = p;
	struct qvt_model m;
	qv_client *c = qvt_connect(s->sock, "e2e-well-behaved", 4);
	qvt_model_open(c, s->repo, "trade-mlp", &m);
	for (uint32_t i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
		uint32_t rows = 1 + i % 3;
		if (qvt_infer_check(c, &m, i % (m.ref.rows - rows), rows, "well-behaved") == 0)
			s->ok++;
		else
			s->bad++;
	}
	qv_close(c);
	qvt_ref_free(&m.ref);
	return NULL;
}

static struct qvt_raw ch;
static struct qvt_model m;
static const char *sock;
static uint64_t next_id = 1;
static long completions, closures, reopened, status_seen[QV_STATUS_COUNT];

static void reopen(void)
{
	struct qv_model_wire w;
	qvt_raw_close(&ch);
	int r = qvt_raw_open(&ch, sock, NSLOTS, SLOT_IN, SLOT_OUT);
	if (r < 0)
		qvt_die("reopening a raw channel: %s", strerror(-r));
	r = qvt_raw_lookup(&ch, "trade-mlp", &w);
	if (r < 0)
		qvt_die("raw lookup: %s", strerror(-r));
	reopened++;
}

/* A request the server must answer OK with the reference rows. */
static struct qv_sqe valid_sqe(uint32_t slot, uint32_t row0, uint32_t rows)
{
	memcpy(qvt_raw_in(&ch, slot), m.ref.x.data + (size_t)row0 * m.desc.in_dim,
	       (size_t)rows * m.desc.in_dim * 4);
	return (struct qv_sqe){
		.slot = slot, .handle = m.desc.handle, .rows = rows,
		.in_bytes = rows * m.desc.in_dim * 4, .out_cap = rows * m.desc.out_dim * 4,
	};
}

static void mutate_one_field(struct qv_sqe *e)
{
	uint32_t v = (uint32_t)rnd();
	switch (rnd() % 9) {
	case 0: e->slot = v % 4 ? v : NSLOTS + v % 4; break;
	case 1: e->handle = v; break;
	case 2: e->rows = v % 2 ? v : v % 600; break;
	case 3: e->in_bytes = v % 2 ? v : v % (2 * SLOT_IN); break;
	case 4: e->out_cap = v % 2 ? v : v % (2 * SLOT_OUT); break;
	case 5: e->flags = v | 1; break;
	case 6: e->deadline_ns = rnd() % 2 ? rnd() : 1; break;
	case 7: rnd_bytes(e->reserved, sizeof(e->reserved)); break;
	default: e->routing_key = rnd(); break;
	}
}

/* Corrupts the submission ring's tail (forward past the ring, or back)
 * and expects the server to retire the channel. */
static void impossible_index(void)
{
	uint32_t tail = ch.sq.tail, size = ch.l.ring_entries;
	uint32_t bad = rnd() % 2 ? tail + size + 1 + (uint32_t)(rnd() % 1000) : tail - 1 - (uint32_t)(rnd() % 5);
	/* Release, as a producer would publish (pairs with the server's acquire
	 * of tail); what it publishes is the lie under test. */
	atomic_store_explicit(&ch.sq.ctl->tail, bad, memory_order_release);
	uint64_t t0 = qvt_now_ns();
	while (!qvt_raw_closed(&ch)) {
		if (qvt_now_ns() - t0 > 10ull * 1000000000u) {
			qvt_fail("sq tail %u with head at %u (ring %u): channel not closed in 10 s",
				 bad, tail, size);
			break;
		}
		qvt_sleep_ms(1);
	}
	closures++;
	reopen();
}

/* One round: 1..4 descriptors, then every completion. */
static void round_trip(void)
{
	struct { uint64_t id; int32_t slot; bool check; uint32_t row0, rows; } sent[4];
	int nsent = 0, want = 1 + (int)(rnd() % 4);
	uint8_t slot_used[NSLOTS] = { 0 };

	for (int i = 0; i < want; i++) {
		struct qv_sqe e;
		bool check = false;
		uint32_t row0 = 0, rows = 0, kind = (uint32_t)(rnd() % 10);
		uint32_t slot = (uint32_t)(rnd() % NSLOTS);
		if (kind < 4 && !slot_used[slot]) {
			rows = 1 + (uint32_t)(rnd() % 4);
			row0 = (uint32_t)(rnd() % (m.ref.rows - rows));
			e = valid_sqe(slot, row0, rows);
			check = true;
		} else if (kind < 7) {
			/* valid_sqe writes this slot's input before the mutation
			 * may move the descriptor elsewhere: count it as used. */
			e = valid_sqe(slot, 0, 1);
			mutate_one_field(&e);
			if (e.slot != slot)
				slot_used[slot]++;
		} else {
			rnd_bytes(&e, sizeof(e));
		}
		e.request_id = next_id++;
		if (e.slot < NSLOTS)
			slot_used[e.slot]++;
		int r = qvt_raw_push(&ch, &e);
		if (r < 0)
			qvt_die("raw push: %s", strerror(-r));
		sent[nsent].id = e.request_id;
		sent[nsent].slot = e.slot < NSLOTS ? (int32_t)e.slot : -1;
		sent[nsent].check = check;
		sent[nsent].row0 = row0;
		sent[nsent].rows = rows;
		nsent++;
	}

	for (int got = 0; got < nsent; got++) {
		struct qv_cqe c;
		int r = qvt_raw_wait(&ch, 10000, &c);
		if (r == -EPIPE) {
			/* Allowed: a hostile channel may be retired. */
			closures++;
			reopen();
			return;
		}
		if (r != 1) {
			qvt_fail("no completion for %d of %d requests (%s)", nsent - got, nsent,
				 r == 0 ? "timeout 10 s" : strerror(-r));
			reopen();
			return;
		}
		completions++;
		if (c.status >= QV_STATUS_COUNT) {
			qvt_fail("completion with status %u", c.status);
			continue;
		}
		status_seen[c.status]++;
		int k = -1;
		for (int i = 0; i < nsent; i++)
			if (sent[i].id == c.request_id)
				k = i;
		if (k < 0) {
			qvt_fail("completion for request id %llu, never sent",
				 (unsigned long long)c.request_id);
			continue;
		}
		if (!sent[k].check)
			continue;
		if (c.status != QV_OK) {
			qvt_fail("valid request %llu: %s", (unsigned long long)c.request_id,
				 qv_strerror((int)c.status));
			continue;
		}
		/* Another descriptor naming the same slot may have overwritten it. */
		if (slot_used[sent[k].slot] == 1 &&
		    qvt_compare(qvt_raw_out(&ch, (uint32_t)sent[k].slot),
				m.ref.y.data + (size_t)sent[k].row0 * m.desc.out_dim,
				(size_t)sent[k].rows * m.desc.out_dim, QVT_RTOL, QVT_ATOL,
				"raw valid request"))
			qvt_fail("valid request %llu: outputs differ",
				 (unsigned long long)c.request_id);
	}
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	struct steady st = { 0 };
	pthread_t th;

	if (argc < 3) {
		fprintf(stderr, "usage: %s QUIVERD REPO\n", argv[0]);
		return 2;
	}
	const char *seed = getenv("QVT_SEED");
	rng_state = seed ? strtoull(seed, NULL, 0) : 0x9e3779b97f4a7c15ull;
	if (!rng_state)
		rng_state = 1;
	fprintf(stderr, "seed 0x%llx\n", (unsigned long long)rng_state);

	if (qvt_daemon_start(&d, argv[1], argv[2], NULL) < 0)
		qvt_die("quiverd did not start");
	sock = d.sock;
	qv_client *c = qvt_connect(d.sock, "e2e-garbage-lookup", 2);
	qvt_model_open(c, argv[2], "trade-mlp", &m);
	qv_close(c);
	st.sock = d.sock;
	st.repo = argv[2];
	pthread_create(&th, NULL, steady_client, &st);
	reopen();
	reopened = 0;

	for (int i = 0; i < ROUNDS; i++) {
		uint32_t act = (uint32_t)(rnd() % 100);
		if (act < 4) {
			/* Random bytes into slots (inputs and outputs) and into
			 * sq entries past the tail, which the server must not read. */
			uint32_t s = (uint32_t)(rnd() % NSLOTS);
			rnd_bytes(qvt_raw_in(&ch, s), SLOT_IN);
			rnd_bytes(qvt_raw_out(&ch, s), SLOT_OUT);
			for (uint32_t k = 1; k < ch.l.ring_entries; k++)
				rnd_bytes(qv_ring_prod_entry(&ch.sq, k), sizeof(struct qv_sqe));
		} else if (act < 6) {
			/* The header's layout fields: the server must go on using
			 * its own copy. */
			uint32_t v = (uint32_t)rnd();
			switch (rnd() % 6) {
			case 0: ch.hdr->nslots = v; break;
			case 1: ch.hdr->ring_entries = v; break;
			case 2: ch.hdr->slot_in_bytes = v; break;
			case 3: ch.hdr->slot_out_bytes = v; break;
			case 4: ch.hdr->slots_off = rnd(); break;
			default:
				atomic_store_explicit(&ch.hdr->client_heartbeat_ns, rnd(),
						      memory_order_relaxed);
			}
		} else if (act < 8) {
			impossible_index();
			continue;
		}
		round_trip();
		if (i % 500 == 499 && !qvt_daemon_alive(&d))
			qvt_die("quiverd died after %d rounds", i + 1);
	}
	fprintf(stderr, "%d rounds: %ld completions, %ld channels closed, %ld reopened\n", ROUNDS,
		completions, closures, reopened);
	for (int s = 0; s < QV_STATUS_COUNT; s++)
		if (status_seen[s])
			fprintf(stderr, "  %-20s %ld\n", qv_strerror(s), status_seen[s]);
	qvt_raw_close(&ch);

	atomic_store_explicit(&stop, true, memory_order_relaxed);
	pthread_join(th, NULL);
	fprintf(stderr, "well-behaved client: %ld correct, %ld wrong\n", st.ok, st.bad);
	if (st.bad || st.ok == 0)
		qvt_fail("well-behaved client: %ld wrong of %ld", st.bad, st.ok + st.bad);

	char reply[65536];
	int32_t status = -1;
	int r = qvt_ctl_cmd(d.sock, "{\"cmd\":\"status\"}", &status, reply, sizeof(reply));
	if (r < 0 || status != 0 || !strstr(reply, "running"))
		qvt_fail("status after the garbage: %d / %d: %s", r, status, r < 0 ? "" : reply);
	qvt_ref_free(&m.ref);
	return qvt_finish(&d);
}
