/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_drive.h - the client side of quiver-bench's remote modes: one
 * connection type over both libquiver transports (shared memory and UDP),
 * and the request loops run by each client thread:
 *  - closed loop, one request in flight: qv_infer / qv_udp_infer;
 *  - closed loop, K in flight: qv_submit / qv_poll, a request resubmitted
 *    as soon as one completes; latency from submit to reap;
 *  - open loop at a fixed rate: request i is due at start + i / rate, sent
 *    as soon as it is due and a slot is free, and its latency counted from
 *    when it was due, not from when it went out, so a stall of the server
 *    shows up in every request it delayed (no coordinated omission).
 */
#ifndef QV_BENCH_DRIVE_H
#define QV_BENCH_DRIVE_H

#include <stddef.h>
#include <stdint.h>

#include "quiver.h"

struct qv_bench_conn {
	qv_client *shm;
	qv_udp_client *udp;
	struct qv_model_desc desc;
};

struct qv_bench_target {
	const char *shm_socket;  /* exactly one of shm_socket, udp_addr */
	const char *udp_addr;
	uint32_t slot_in_bytes, slot_out_bytes;  /* shm only; 0 = libquiver's default */
};

/* Connects with room for `inflight` requests and looks `model` up. */
int qv_bench_conn_open(const struct qv_bench_target *t, const char *model, uint32_t inflight,
		       struct qv_bench_conn *ret);
void qv_bench_conn_close(struct qv_bench_conn *c);

/* Synchronous round trip; 0 and *ret_result, or -errno. */
int qv_bench_conn_infer(struct qv_bench_conn *c, const struct qv_request *q, float *out,
			size_t out_cap, struct qv_result *ret_result);

/* The same with one buffer per tensor (qv_infer_tensors / qv_udp_infer_tensors). */
int qv_bench_conn_infer_tensors(struct qv_bench_conn *c, const struct qv_request *q,
				const struct qv_tensors *t, struct qv_result *ret_result);

struct qv_bench_load {
	const struct qv_bench_target *target;
	const char *model;
	uint32_t rows;
	uint32_t inflight;  /* 1 = synchronous */
	uint32_t warmup, iters;
	double rate;        /* requests/s for this thread, 0 = closed loop */
	int core;           /* pin here, < 0: not pinned */
};

struct qv_bench_thread_out {
	uint64_t *lat_ns;   /* iters samples, malloc'ed; the caller frees */
	uint64_t t_start, t_end;
	uint64_t errors;    /* completions with a status other than QV_OK */
	int err;            /* 0 or -errno */
	char what[96];      /* what failed */
};

/* Runs `threads` client threads, each with its own connection, through
 * warm-up, a common start (barrier) and `iters` timed requests. out[] has
 * `threads` entries. Returns 0 if every thread succeeded, else the first
 * thread's error (the others' are in out[]). */
int qv_bench_drive(const struct qv_bench_load *l, uint32_t threads, int core_step,
		   struct qv_bench_thread_out *out);

#endif /* QV_BENCH_DRIVE_H */
