/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The prediction log's ring (predlog.h) and its config.json keys:
 *  - fill: a ring takes exactly as many records as fit (header + payload
 *    rounded up to 8 bytes), the next push is dropped and counted;
 *  - a record larger than half the ring is dropped and counted;
 *  - wrap: records of varying payload sizes (0 .. 1.5 KiB) pushed and
 *    popped over many laps come out in order, byte for byte;
 *  - two threads: a producer pushing as fast as it can and a consumer
 *    popping; every record the consumer sees is intact and in order, and
 *    popped + dropped == pushed attempts;
 *  - sampling thresholds: 0 never, 1 always, 0.25 about a quarter;
 *  - config.json "log": good values parsed, each bad one refused naming
 *    the key.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "predlog.h"
#include "repo.h"

static int failures;

#define CHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

static struct qv_plog_ring *ring_new(uint64_t cap)
{
	struct qv_plog_ring *r = aligned_alloc(64, (qv_plog_ring_size(cap) + 63) & ~(size_t)63);

	memset(r, 0, qv_plog_ring_size(cap));
	qv_plog_ring_init(r, cap, 12345, -1);
	return r;
}

/* Payload bytes of record `seq`: a pattern that differs per record and per byte. */
static uint8_t pat(uint64_t seq, uint32_t i)
{
	return (uint8_t)(seq * 31u + i * 7u + (i >> 8));
}

/* Pushes record seq with in + out payload bytes; returns the push's result. */
static int push_seq(struct qv_plog_ring *r, uint64_t seq, uint32_t in, uint32_t out)
{
	static uint8_t buf[1 << 16];
	struct qv_plog_rec h = {
		.handle = (uint32_t)(seq % 7),
		.version = (uint32_t)seq,
		.status = 0,
		.rows = 1,
		.in_bytes = in,
		.out_bytes = out,
		.request_id = seq,
		.routing_key = ~seq,
		.submit_tsc = seq * 3,
		.start_tsc = seq * 3 + 1,
		.end_tsc = seq * 3 + 2,
	};
	uint8_t *b = in + out <= sizeof(buf) ? buf : malloc(in + out);

	for (uint32_t i = 0; i < in + out; i++)
		b[i] = pat(seq, i);
	int ok = qv_plog_ring_push(r, &h, b, b + in);
	if (b != buf)
		free(b);
	return ok;
}

/* Pops one record and checks it is record seq with in + out payload bytes. */
static int pop_check(struct qv_plog_ring *r, uint64_t seq, uint32_t in, uint32_t out,
		     uint8_t *payload, size_t cap)
{
	struct qv_plog_rec h;
	int bad = 0;

	if (!qv_plog_ring_pop(r, &h, payload, cap))
		return -1;
	if (h.request_id != seq || h.routing_key != ~seq || h.version != (uint32_t)seq ||
	    h.handle != seq % 7 || h.in_bytes != in || h.out_bytes != out ||
	    h.submit_tsc != seq * 3 || h.end_tsc != seq * 3 + 2 ||
	    h.len != ((sizeof(h) + in + out + 7) & ~7ull))
		bad = 1;
	for (uint32_t i = 0; !bad && i < in + out; i++)
		if (payload[i] != pat(seq, i))
			bad = 1;
	return bad;
}

static uint64_t dropped(struct qv_plog_ring *r)
{
	return atomic_load_explicit(&r->dropped, memory_order_relaxed);
}

static void test_fill(void)
{
	struct qv_plog_ring *r = ring_new(4096);
	uint8_t payload[2048];
	/* 72-byte header + 100 bytes -> 176 in the ring: 23 fit in 4096. */
	uint32_t n = 0;

	while (push_seq(r, n, 60, 40))
		n++;
	CHECK(n == 4096 / 176);
	CHECK(dropped(r) == 1);
	CHECK(!push_seq(r, 999, 60, 40));
	CHECK(dropped(r) == 2);
	for (uint32_t i = 0; i < n; i++)
		CHECK(pop_check(r, i, 60, 40, payload, sizeof(payload)) == 0);
	CHECK(pop_check(r, 0, 0, 0, payload, sizeof(payload)) == -1); /* empty */
	/* Room again after the pops. */
	CHECK(push_seq(r, 1000, 60, 40));
	CHECK(pop_check(r, 1000, 60, 40, payload, sizeof(payload)) == 0);
	/* Larger than half the ring: dropped and counted, even when empty. */
	CHECK(!push_seq(r, 1001, 2000, 100));
	CHECK(dropped(r) == 3);
	/* Exactly half fits. */
	CHECK(push_seq(r, 1002, 2048 - 72, 0));
	CHECK(pop_check(r, 1002, 2048 - 72, 0, payload, sizeof(payload)) == 0);
	CHECK(atomic_load(&r->pushed) == n + 2);
	free(r);
}

static uint32_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

static void test_wrap(void)
{
	enum { N = 20000 };
	struct qv_plog_ring *r = ring_new(8192);
	static uint32_t in_sz[N], out_sz[N];
	uint8_t payload[4096];
	uint64_t s = 7, pushed = 0, popped = 0;

	/* Push until full, then pop one; records straddle the end of the buffer. */
	while (pushed < N) {
		uint32_t in = lcg(&s) % 1200, out = lcg(&s) % 300;
		if (push_seq(r, pushed, in, out)) {
			in_sz[pushed] = in;
			out_sz[pushed] = out;
			pushed++;
			continue;
		}
		CHECK(popped < pushed);
		int rc = pop_check(r, popped, in_sz[popped], out_sz[popped], payload, sizeof(payload));
		CHECK(rc == 0);
		if (rc != 0)
			break;
		popped++;
	}
	while (popped < pushed) {
		int rc = pop_check(r, popped, in_sz[popped], out_sz[popped], payload, sizeof(payload));
		CHECK(rc == 0);
		if (rc != 0)
			break;
		popped++;
	}
	CHECK(popped == N);
	CHECK(atomic_load(&r->head) > 100 * r->cap); /* many laps */
	CHECK(atomic_load(&r->pushed) == N);
	free(r);
}

/* Two threads: the consumer checks order and content of whatever arrives. */
#define SPSC_N 200000u
static struct qv_plog_ring *spsc;
static _Atomic int spsc_done;

static uint32_t size_of(uint64_t seq)
{
	return (uint32_t)((seq * 2654435761u) % 700u);
}

static void *producer(void *arg)
{
	uint64_t *attempts = arg;

	for (uint64_t seq = 0; seq < SPSC_N; seq++)
		push_seq(spsc, seq, size_of(seq), size_of(seq + 1) % 64);
	*attempts = SPSC_N;
	/* Release pairs with the consumer's acquire: it drains after this. */
	atomic_store_explicit(&spsc_done, 1, memory_order_release);
	return NULL;
}

static void test_spsc(void)
{
	pthread_t t;
	uint64_t attempts = 0, got = 0, last = 0;
	static uint8_t payload[8192];
	struct qv_plog_rec h;
	int bad = 0, first = 1, done;

	spsc = ring_new(16384);
	pthread_create(&t, NULL, producer, &attempts);
	do {
		done = atomic_load_explicit(&spsc_done, memory_order_acquire);
		while (qv_plog_ring_pop(spsc, &h, payload, sizeof(payload))) {
			uint64_t seq = h.request_id;
			if ((!first && seq <= last) || h.in_bytes != size_of(seq) ||
			    h.out_bytes != size_of(seq + 1) % 64 || h.end_tsc != seq * 3 + 2)
				bad++;
			for (uint32_t i = 0; i < h.in_bytes + h.out_bytes; i++)
				if (payload[i] != pat(seq, i)) {
					bad++;
					break;
				}
			first = 0;
			last = seq;
			got++;
		}
	} while (!done);
	pthread_join(t, NULL);
	CHECK(bad == 0);
	CHECK(got + dropped(spsc) == attempts);
	CHECK(atomic_load(&spsc->pushed) == got);
	free(spsc);
}

static void test_threshold(void)
{
	struct qv_plog_ring *r = ring_new(4096);
	uint32_t hits = 0, n = 100000;

	CHECK(qv_plog_threshold(0) == 0);
	CHECK(qv_plog_threshold(-1) == 0);
	CHECK(qv_plog_threshold(1.0) == QV_PLOG_THR_ONE);
	for (uint32_t i = 0; i < n; i++)
		hits += (uint32_t)qv_plog_draw(r, QV_PLOG_THR_ONE);
	CHECK(hits == n);
	hits = 0;
	for (uint32_t i = 0; i < n; i++)
		hits += (uint32_t)qv_plog_draw(r, 0);
	CHECK(hits == 0);
	hits = 0;
	for (uint32_t i = 0; i < n; i++)
		hits += (uint32_t)qv_plog_draw(r, qv_plog_threshold(0.25));
	/* A fixed seed: deterministic; 4 sigma is about 550. */
	CHECK(hits > 24000 && hits < 26000);
	free(r);
}

static void cfg_bad(const char *json, const char *want)
{
	struct qv_model_config c;
	char err[256] = "";

	CHECK(qv_config_parse(json, strlen(json), &c, err, sizeof(err)) == -22);
	if (!strstr(err, want)) {
		fprintf(stderr, "config %s: error '%s' does not name '%s'\n", json, err, want);
		failures++;
	}
}

static void test_config(void)
{
	struct qv_model_config c;
	char err[256];
	const char *good = "{\"log\": {\"sample\": 0.01, \"dir\": \"/var/log/q\", "
			   "\"max_bytes\": 1048576, \"keep\": 3}}";

	CHECK(qv_config_parse(good, strlen(good), &c, err, sizeof(err)) == 0);
	CHECK(c.log_set == 1 && c.log_sample == 0.01 && !strcmp(c.log_dir, "/var/log/q") &&
	      c.log_max_bytes == 1048576 && c.log_keep == 3);
	CHECK(qv_config_parse("{}", 2, &c, err, sizeof(err)) == 0 && c.log_set == 0);
	CHECK(qv_config_parse("{\"log\":{\"sample\":0}}", 20, &c, err, sizeof(err)) == 0 &&
	      c.log_set == 1 && c.log_sample == 0);
	cfg_bad("{\"log\": 1}", "log must be an object");
	cfg_bad("{\"log\": {\"sample\": 1.5, \"dir\": \"d\"}}", "log.sample");
	cfg_bad("{\"log\": {\"sample\": -0.1, \"dir\": \"d\"}}", "log.sample");
	cfg_bad("{\"log\": {\"sample\": \"all\", \"dir\": \"d\"}}", "log.sample");
	cfg_bad("{\"log\": {\"sample\": 0.5}}", "needs log.dir");
	cfg_bad("{\"log\": {\"sample\": 0.5, \"dir\": \"\"}}", "log.dir");
	cfg_bad("{\"log\": {\"sample\": 0.5, \"dir\": 3}}", "log.dir");
	cfg_bad("{\"log\": {\"dir\": \"d\", \"max_bytes\": 100}}", "log.max_bytes");
	cfg_bad("{\"log\": {\"dir\": \"d\", \"max_bytes\": 4096.5}}", "log.max_bytes");
	cfg_bad("{\"log\": {\"dir\": \"d\", \"keep\": 0}}", "log.keep");
	cfg_bad("{\"log\": {\"dir\": \"d\", \"keep\": 20000}}", "log.keep");
	cfg_bad("{\"log\": {\"dir\": \"d\", \"smaple\": 0.1}}", "unknown key \"smaple\"");
}

int main(void)
{
	test_fill();
	test_wrap();
	test_spsc();
	test_threshold();
	test_config();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	puts("predlog: ring fill/drop/wrap/spsc, thresholds, config: ok");
	return 0;
}
