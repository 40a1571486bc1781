/* SPDX-License-Identifier: Apache-2.0 */
/*
 * floor_ring.c - see floor_ring.h. The round trip mirrors qv_infer()'s
 * hot path exactly, minus everything a real server does: client copies 64
 * bytes into the slot, fills a qv_sqe, commits (release); the server spins
 * on the submission ring (acquire), copies the descriptor and the 64-byte
 * payload, writes a qv_cqe, commits; the client spins on the completion
 * ring (acquire) and copies the completion and 64 bytes of output.
 *
 * The payload is addressed as quiverd's is: through the slot index the
 * descriptor carries (server) and the completion carries back (client), in
 * an arena of slots each holding an input and an output region. So the
 * floor pays the same dependent load a real round trip pays - the slot's
 * address is known only once the descriptor (or completion) has arrived -
 * rather than reading a fixed address the core could fetch in parallel.
 * Nothing is prefetched here: this is the protocol's bare cost.
 *
 * Two processes, not two threads, because that is what a client and
 * quiverd are: nothing is shared but the MAP_SHARED mapping.
 */
#include "floor_ring.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qv_ring.h"
#include "qv_shm.h"

#define FLOOR_RING 16u
#define FLOOR_PAYLOAD 64u
/* Slots in the arena, each an input and an output region of FLOOR_PAYLOAD
 * bytes. One request in flight takes the lowest free slot, as libquiver's
 * free stack does. */
#define FLOOR_SLOTS 16u
#define FLOOR_STRIDE (2u * FLOOR_PAYLOAD)
#define FLOOR_STOP 0x1u
/* Client spins between checks that the server process is still there. */
#define FLOOR_ALIVE_CHECK (1u << 22)

struct floor_map {
	struct qv_ring_cons sq_c;
	struct qv_ring_prod sq_p;
	struct qv_ring_cons cq_c;
	struct qv_ring_prod cq_p;
	uint8_t *slots;
};

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static size_t map_bytes(void)
{
	return qv_ring_bytes(FLOOR_RING, sizeof(struct qv_sqe)) +
	       qv_ring_bytes(FLOOR_RING, sizeof(struct qv_cqe)) + FLOOR_SLOTS * FLOOR_STRIDE;
}

static void map_init(struct floor_map *m, uint8_t *base)
{
	uint8_t *cq = base + qv_ring_bytes(FLOOR_RING, sizeof(struct qv_sqe));

	qv_ring_prod_init(&m->sq_p, base, FLOOR_RING, sizeof(struct qv_sqe));
	qv_ring_cons_init(&m->sq_c, base, FLOOR_RING, sizeof(struct qv_sqe));
	qv_ring_prod_init(&m->cq_p, cq, FLOOR_RING, sizeof(struct qv_cqe));
	qv_ring_cons_init(&m->cq_c, cq, FLOOR_RING, sizeof(struct qv_cqe));
	m->slots = cq + qv_ring_bytes(FLOOR_RING, sizeof(struct qv_cqe));
}

static int pin(int core)
{
	cpu_set_t set;

	if (core < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(core, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

static int core_ok(int core, const cpu_set_t *allowed)
{
	return core < 0 || (core < CPU_SETSIZE && CPU_ISSET(core, allowed));
}

/* The server process: echo until told to stop. Never returns. */
static void serve(struct floor_map *m, int core)
{
	/* A client that dies must not leave us spinning forever. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (pin(core) < 0)
		_exit(3);
	for (;;) {
		struct qv_sqe d;
		int n = qv_ring_cons_avail(&m->sq_c);

		if (n < 0)
			_exit(2);
		if (n == 0) {
			relax();
			continue;
		}
		memcpy(&d, qv_ring_cons_entry(&m->sq_c, 0), sizeof(d));
		qv_ring_cons_release(&m->sq_c, 1);
		if (d.flags & FLOOR_STOP)
			_exit(0);
		if (d.slot >= FLOOR_SLOTS)
			_exit(2);
		/* The slot is known only now: the same dependent load as quiverd's. */
		uint8_t *sl = m->slots + (size_t)d.slot * FLOOR_STRIDE;
		memcpy(sl + FLOOR_PAYLOAD, sl, FLOOR_PAYLOAD);
		while (qv_ring_prod_space(&m->cq_p) <= 0)
			relax();
		struct qv_cqe *e = qv_ring_prod_entry(&m->cq_p, 0);
		*e = (struct qv_cqe){ .request_id = d.request_id, .slot = d.slot,
				      .out_bytes = FLOOR_PAYLOAD };
		qv_ring_prod_commit(&m->cq_p, 1);
	}
}

/* One round trip from the client; returns 0 or -ECHILD / -EBADMSG. */
static int round_trip(struct floor_map *m, pid_t pid, uint64_t id, uint8_t *payload,
		      uint32_t flags)
{
	struct qv_cqe e;
	uint32_t spins = 0;
	int n;

	const uint32_t slot = 0; /* one in flight: the lowest free slot */
	memcpy(m->slots + (size_t)slot * FLOOR_STRIDE, payload, FLOOR_PAYLOAD);
	while (qv_ring_prod_space(&m->sq_p) <= 0)
		relax();
	struct qv_sqe *d = qv_ring_prod_entry(&m->sq_p, 0);
	*d = (struct qv_sqe){ .slot = slot, .rows = 1, .in_bytes = FLOOR_PAYLOAD, .request_id = id,
			      .flags = flags, .out_cap = FLOOR_PAYLOAD };
	qv_ring_prod_commit(&m->sq_p, 1);
	if (flags & FLOOR_STOP)
		return 0;
	while ((n = qv_ring_cons_avail(&m->cq_c)) == 0) {
		if (++spins == FLOOR_ALIVE_CHECK) {
			spins = 0;
			if (waitpid(pid, NULL, WNOHANG) != 0)
				return -ECHILD;
		}
		relax();
	}
	if (n < 0)
		return n;
	memcpy(&e, qv_ring_cons_entry(&m->cq_c, 0), sizeof(e));
	qv_ring_cons_release(&m->cq_c, 1);
	if (e.request_id != id || e.slot >= FLOOR_SLOTS)
		return -EBADMSG;
	/* The output's address comes from the completion, as in qv_infer(). */
	memcpy(payload, m->slots + (size_t)e.slot * FLOOR_STRIDE + FLOOR_PAYLOAD, FLOOR_PAYLOAD);
	return 0;
}

int qv_floor_ring(uint32_t iters, uint32_t warmup, int server_core, int client_core,
		  uint64_t *ret_lat_ns)
{
	uint8_t payload[FLOOR_PAYLOAD];
	struct floor_map m;
	cpu_set_t old;
	uint64_t *lat;
	size_t bytes = map_bytes();
	uint8_t *base;
	int r = 0, status;
	pid_t pid;

	if (iters == 0 || !ret_lat_ns)
		return -EINVAL;
	if (sched_getaffinity(0, sizeof(old), &old) < 0)
		return -errno;
	if (!core_ok(server_core, &old) || !core_ok(client_core, &old))
		return -EINVAL;
	lat = malloc((size_t)iters * sizeof(*lat));
	if (!lat)
		return -ENOMEM;
	base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		free(lat);
		return -errno;
	}
	/* Touch every page before timing anything. */
	memset(base, 0, bytes);
	map_init(&m, base);
	for (uint32_t i = 0; i < FLOOR_PAYLOAD; i++)
		payload[i] = (uint8_t)i;

	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto out;
	}
	if (pid == 0)
		serve(&m, server_core);

	r = pin(client_core);
	for (uint64_t i = 0; r == 0 && i < (uint64_t)warmup + iters; i++) {
		uint64_t t0 = mono_ns();
		r = round_trip(&m, pid, i, payload, 0);
		uint64_t t1 = mono_ns();
		if (i >= warmup)
			lat[i - warmup] = t1 - t0;
	}
	if (r == -ECHILD) {
		waitpid(pid, NULL, 0);
	} else {
		if (r < 0)
			kill(pid, SIGKILL);
		else
			round_trip(&m, pid, 0, payload, FLOOR_STOP);
		if (waitpid(pid, &status, 0) == pid && r == 0 &&
		    (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
			r = WIFEXITED(status) && WEXITSTATUS(status) == 3 ? -EINVAL : -ECHILD;
	}
	/* The caller's own affinity is not ours to keep changed. */
	sched_setaffinity(0, sizeof(old), &old);
	if (r == 0)
		memcpy(ret_lat_ns, lat, (size_t)iters * sizeof(*lat));
out:
	munmap(base, bytes);
	free(lat);
	return r;
}
