/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ring.c - the SPSC ring of qv_ring.h between two processes sharing a
 * MAP_SHARED mapping: 10M sequence numbers through rings of 8 and 1024
 * entries with random burst sizes on both sides, checked for order and
 * count; then impossible indices written by a hostile peer (-EBADMSG).
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qv_ring.h"

#define N_SEQ 10000000u

static int failures;

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/*
 * Spinning with an occasional yield: on a loaded 2-core machine both
 * processes may share a core, and a pure spin would then wait out whole
 * time slices per hand-off.
 */
static void backoff(uint32_t *idle)
{
	if (++*idle >= 64) {
		*idle = 0;
		sched_yield();
	}
}

static int producer(void *mem, uint32_t size, uint64_t seed)
{
	struct qv_ring_prod p;
	uint64_t next = 0;
	uint32_t idle = 0;

	qv_ring_prod_init(&p, mem, size, sizeof(uint64_t));
	while (next < N_SEQ) {
		int space = qv_ring_prod_space(&p);
		if (space < 0)
			return 2;
		if (space == 0) {
			backoff(&idle);
			continue;
		}
		uint32_t burst = 1 + (uint32_t)(xorshift(&seed) % size);
		if (burst > (uint32_t)space)
			burst = (uint32_t)space;
		if (burst > N_SEQ - next)
			burst = (uint32_t)(N_SEQ - next);
		for (uint32_t i = 0; i < burst; i++) {
			uint64_t v = next + i;
			memcpy(qv_ring_prod_entry(&p, i), &v, sizeof(v));
		}
		qv_ring_prod_commit(&p, burst);
		next += burst;
	}
	return 0;
}

/* Returns the number of sequence numbers received in order, or -1. */
static int64_t consumer(void *mem, uint32_t size, uint64_t seed)
{
	struct qv_ring_cons c;
	uint64_t expect = 0;
	uint32_t idle = 0;

	qv_ring_cons_init(&c, mem, size, sizeof(uint64_t));
	while (expect < N_SEQ) {
		int avail = qv_ring_cons_avail(&c);
		if (avail < 0) {
			fprintf(stderr, "consumer: ring corrupt at %llu\n", (unsigned long long)expect);
			return -1;
		}
		if (avail == 0) {
			backoff(&idle);
			continue;
		}
		if (avail > (int)size) {
			fprintf(stderr, "consumer: avail %d > size %u\n", avail, size);
			return -1;
		}
		uint32_t burst = 1 + (uint32_t)(xorshift(&seed) % size);
		if (burst > (uint32_t)avail)
			burst = (uint32_t)avail;
		for (uint32_t i = 0; i < burst; i++) {
			uint64_t v;
			memcpy(&v, qv_ring_cons_entry(&c, i), sizeof(v));
			if (v != expect) {
				fprintf(stderr, "consumer: got %llu, expected %llu\n",
					(unsigned long long)v, (unsigned long long)expect);
				return -1;
			}
			expect++;
		}
		qv_ring_cons_release(&c, burst);
	}
	/* Nothing beyond N_SEQ may ever appear. */
	if (qv_ring_cons_avail(&c) != 0)
		return -1;
	return (int64_t)expect;
}

static void two_process_run(uint32_t size)
{
	size_t bytes = qv_ring_bytes(size, sizeof(uint64_t));
	void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int status = 0;
	pid_t pid;

	CHECK(mem != MAP_FAILED);
	if (mem == MAP_FAILED)
		return;
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(producer(mem, size, 0x9e3779b97f4a7c15ull ^ size));
	int64_t got = consumer(mem, size, 0xd1b54a32d192ed03ull ^ size);
	if (got < 0)
		kill(pid, SIGKILL);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(got == (int64_t)N_SEQ);
	printf("ring size %u: %lld sequence numbers in order\n", size, (long long)got);
	munmap(mem, bytes);
}

static void corrupt_indices(void)
{
	enum { SZ = 8 };
	union {
		struct qv_ring_ctl ctl;
		uint8_t bytes[sizeof(struct qv_ring_ctl) + SZ * 8];
	} *ring = aligned_alloc(QV_CACHELINE, sizeof(*ring));
	struct qv_ring_prod p;
	struct qv_ring_cons c;
	uint64_t v = 0;

	CHECK(ring != NULL);
	if (!ring)
		return;
	memset(ring, 0, sizeof(*ring));
	qv_ring_prod_init(&p, ring, SZ, 8);
	qv_ring_cons_init(&c, ring, SZ, 8);

	/* Honest: fill, see full, drain. */
	CHECK(qv_ring_prod_space(&p) == SZ);
	for (int i = 0; i < SZ; i++)
		memcpy(qv_ring_prod_entry(&p, (uint32_t)i), &v, 8);
	qv_ring_prod_commit(&p, SZ);
	CHECK(qv_ring_prod_space(&p) == 0);
	CHECK(qv_ring_cons_avail(&c) == SZ);

	/* A head ahead of the tail (consumer claims entries never produced). */
	atomic_store(&ring->ctl.head, p.tail + 3);
	CHECK(qv_ring_prod_space(&p) == -EBADMSG);
	/* A head that moved backwards. */
	atomic_store(&ring->ctl.head, p.tail - SZ - 1);
	CHECK(qv_ring_prod_space(&p) == -EBADMSG);

	/* The consumer drains what it has, then the producer lies. */
	qv_ring_cons_release(&c, SZ);
	CHECK(qv_ring_cons_avail(&c) == 0);
	/* Each case from a fresh consumer view: corruption is sticky by design. */
	uint32_t h = c.head;
	atomic_store(&ring->ctl.tail, h + SZ + 1);  /* more than size outstanding */
	CHECK(qv_ring_cons_avail(&c) == -EBADMSG);
	atomic_store(&ring->ctl.tail, h - 1);       /* tail moved backwards */
	qv_ring_cons_init(&c, ring, SZ, 8);
	CHECK(qv_ring_cons_avail(&c) == -EBADMSG);
	atomic_store(&ring->ctl.tail, h + SZ);      /* exactly full is fine */
	qv_ring_cons_init(&c, ring, SZ, 8);
	CHECK(qv_ring_cons_avail(&c) == SZ);

	/* Indices wrap: a ring started near UINT32_MAX works across the wrap. */
	memset(ring, 0, sizeof(*ring));
	atomic_store(&ring->ctl.tail, UINT32_MAX - 2);
	atomic_store(&ring->ctl.head, UINT32_MAX - 2);
	qv_ring_prod_init(&p, ring, SZ, 8);
	qv_ring_cons_init(&c, ring, SZ, 8);
	for (uint64_t i = 0; i < 3 * SZ; i++) {
		CHECK(qv_ring_prod_space(&p) >= 1);
		memcpy(qv_ring_prod_entry(&p, 0), &i, 8);
		qv_ring_prod_commit(&p, 1);
		CHECK(qv_ring_cons_avail(&c) == 1);
		memcpy(&v, qv_ring_cons_entry(&c, 0), 8);
		CHECK(v == i);
		qv_ring_cons_release(&c, 1);
	}
	free(ring);
}

int main(void)
{
	corrupt_indices();
	two_process_run(8);
	two_process_run(1024);
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
