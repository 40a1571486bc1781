/* SPDX-License-Identifier: Apache-2.0 */
/*
 * quiver.h - libquiver, the client library of quiverd.
 *
 * A co-located service connects once over quiverd's Unix socket, receives a
 * private shared-memory channel (a sealed memfd), resolves model names to
 * handles once, and then sends requests without a syscall: the input is
 * written straight into a slot of the channel, a descriptor is pushed on the
 * submission ring, and the completion comes back on the completion ring.
 *
 * Contract
 *  - Functions return 0 (or a count) on success and a negative errno on
 *    failure; out-parameters are named ret_* and written only on success.
 *  - Request outcomes are qv_status values (QV_OK ...), never errno.
 *  - One qv_client is used by one thread at a time (its rings are SPSC).
 *    A thread that wants its own stream opens its own client.
 *  - If quiverd dies, every waiting call returns within opts.dead_after_ms
 *    (default 100 ms) with QV_UNAVAILABLE; nothing hangs.
 *  - libquiver depends on libc only.
 */
#ifndef QUIVER_H
#define QUIVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every request gets exactly one completion with one of these. */
enum qv_status {
	QV_OK = 0,
	QV_UNKNOWN_MODEL = 1,
	QV_BAD_SHAPE = 2,
	QV_BAD_REQUEST = 3,
	QV_DEADLINE_EXCEEDED = 4,
	QV_OVERLOADED = 5,
	QV_UNAVAILABLE = 6,
	QV_INTERNAL = 7,
	QV_STATUS_COUNT
};

/* Completion flags: who answered. */
#define QV_FLAG_FALLBACK 0x1u  /* the fallback version answered */
#define QV_FLAG_CANARY   0x2u  /* the canary version answered */

#define QV_DEFAULT_SOCKET "/run/quiver/quiverd.sock"
#define QV_NAME_MAX 64
#define QV_MAX_RANK_WIRE 8

typedef struct qv_client qv_client;

struct qv_connect_opts {
	const char *client_name;  /* shown in quiverctl status; NULL = "pid:<pid>" */
	uint32_t slots;           /* requests in flight at most; 0 = 64 */
	uint32_t slot_in_bytes;   /* input bytes a slot; 0 = 64 KiB */
	uint32_t slot_out_bytes;  /* output bytes a slot; 0 = 16 KiB */
	uint32_t dead_after_ms;   /* server heartbeat silence => UNAVAILABLE; 0 = 100 */
};

struct qv_model_desc {
	uint32_t handle;          /* names a route, survives version swaps */
	uint32_t version;         /* primary version at lookup time */
	uint32_t in_dim, out_dim; /* floats a row */
	uint32_t max_batch;
	uint32_t in_rank, out_rank;
	int64_t in_shape[QV_MAX_RANK_WIRE];   /* [0] == -1: batch */
	int64_t out_shape[QV_MAX_RANK_WIRE];
	char name[QV_NAME_MAX];
};

struct qv_request {
	uint32_t handle;
	uint32_t rows;
	const float *input;       /* rows * in_dim floats, copied into the slot */
	uint64_t deadline_ns;     /* absolute CLOCK_MONOTONIC; 0 = model default */
	uint64_t routing_key;     /* sticky canary key; 0 = none */
	uint64_t request_id;      /* caller's id, echoed in the result */
};

struct qv_result {
	uint64_t request_id;
	enum qv_status status;
	uint32_t version;         /* version that answered */
	uint32_t flags;           /* QV_FLAG_* */
	uint32_t out_floats;      /* floats written to the caller's buffer */
};

int qv_connect(const char *socket_path, const struct qv_connect_opts *opts,
	       qv_client **ret_client);
void qv_close(qv_client *c);

/* Resolve a model name over the socket (slow path; do it once). */
int qv_model_lookup(qv_client *c, const char *name, struct qv_model_desc *ret_desc);

/*
 * Synchronous round trip. `out` receives rows * out_dim floats (out_cap
 * floats at most). Returns 0 and fills *ret_result (whose status may still
 * be an error status), -ETIMEDOUT after timeout_ms (0 = wait until the
 * server is declared dead), or another negative errno for misuse.
 */
int qv_infer(qv_client *c, const struct qv_request *req, float *out, size_t out_cap,
	     uint32_t timeout_ms, struct qv_result *ret_result);

/*
 * Asynchronous: qv_submit returns 0, or -EAGAIN when every slot is in
 * flight (poll first). The output is copied to `out` when the completion
 * is polled; `out` must stay valid until then.
 */
int qv_submit(qv_client *c, const struct qv_request *req, float *out, size_t out_cap);

/*
 * Reap up to max completions without blocking. Returns how many were
 * written to results (0 if none), or -EPIPE once the server is dead (every
 * request still in flight is then reported with QV_UNAVAILABLE first).
 */
int qv_poll(qv_client *c, struct qv_result *results, int max);

/* Requests submitted and not yet polled. */
uint32_t qv_inflight(const qv_client *c);

const char *qv_strerror(int status_or_negerrno);

#ifdef __cplusplus
}
#endif
#endif /* QUIVER_H */
