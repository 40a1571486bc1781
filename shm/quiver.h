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

/* Element type of a tensor, numbered as ONNX's TensorProto.DataType. */
enum qv_tensor_dtype {
	QV_TENSOR_FLOAT32 = 1,
	QV_TENSOR_INT32 = 6,
	QV_TENSOR_INT64 = 7,
};
#define QV_MAX_TENSORS_WIRE 16   /* inputs, and outputs, of a model at most */

/* One named input or output of a model. */
struct qv_tensor_desc {
	char name[QV_NAME_MAX];
	uint32_t dtype;           /* enum qv_tensor_dtype */
	uint32_t rank;            /* with the batch dimension */
	int64_t shape[QV_MAX_RANK_WIRE];      /* [0] == -1: batch */
	uint32_t row_bytes;       /* bytes of one row of this tensor */
	uint32_t packed_off;      /* its byte offset in a packed row */
	/* An id input (embedding lookup): every value must be in
	 * [0, index_bound), or the request is answered QV_BAD_REQUEST.
	 * 0: not an id input. */
	int64_t index_bound;
};

/*
 * A model as a lookup reports it. A request is `rows` packed rows: one row
 * of every input tensor, in declared order, back to back, no padding; its
 * answer is packed rows of every output the same way. in_dim / out_dim
 * count the 4-byte words of a packed row: the floats of a row for a model
 * with one float input and one float output, which qv_infer() serves as
 * is. Models with other inputs or outputs are served with the *_tensors
 * calls, which pack and unpack one buffer per tensor.
 */
struct qv_model_desc {
	uint32_t handle;          /* names a route, survives version swaps */
	uint32_t version;         /* primary version at lookup time */
	uint32_t in_dim, out_dim; /* 4-byte words of a packed row (floats for float models) */
	uint32_t max_batch;
	uint32_t in_rank, out_rank;           /* of the first input and output */
	int64_t in_shape[QV_MAX_RANK_WIRE];   /* [0] == -1: batch */
	int64_t out_shape[QV_MAX_RANK_WIRE];
	char name[QV_NAME_MAX];
	/* Every input and output, in declared order. */
	uint32_t n_inputs, n_outputs;
	struct qv_tensor_desc inputs[QV_MAX_TENSORS_WIRE];
	struct qv_tensor_desc outputs[QV_MAX_TENSORS_WIRE];
};

struct qv_request {
	uint32_t handle;
	uint32_t rows;
	const float *input;       /* rows * in_dim floats, copied into the slot */
	/*
	 * Absolute CLOCK_MONOTONIC ns. 0 = the route's default: the model's
	 * config.json deadline counted from when the worker picks the request
	 * up, or no deadline if the route has none. The client never reads the
	 * clock to check it; the server answers QV_DEADLINE_EXCEEDED.
	 */
	uint64_t deadline_ns;
	uint64_t routing_key;     /* sticky canary key; 0 = none */
	uint64_t request_id;      /* caller's id, echoed in the result */
};

/*
 * The tensors of a typed request (qv_infer_tensors, qv_submit_tensors and
 * their qv_udp_* twins): one buffer per input, n_inputs == the model's, in
 * declared order, each rows * row_bytes of that input's dtype; one buffer
 * per output, n_outputs == the model's, each receiving rows * row_bytes and
 * holding out_caps[j] bytes. Inputs are packed straight into the request
 * (slot or datagram) and outputs unpacked straight from the answer: no
 * other copy. The pointer arrays are read during the call only; the output
 * buffers must stay valid until the result is reaped.
 */
struct qv_tensors {
	uint32_t n_inputs;
	uint32_t n_outputs;
	const void *const *inputs;
	void *const *outputs;
	const size_t *out_caps;   /* bytes */
};

struct qv_result {
	uint64_t request_id;
	enum qv_status status;
	uint32_t version;         /* version that answered */
	uint32_t flags;           /* QV_FLAG_* */
	uint32_t out_floats;      /* 4-byte words answered: floats written to the caller's
				   * buffer, or for a typed request the packed output words
				   * spread over its output buffers */
};

/*
 * socket_path NULL = QV_DEFAULT_SOCKET; opts NULL = all defaults. The server
 * may grant fewer slots than asked. Errors: -EINVAL (ret_client NULL),
 * -ENOENT / -ECONNREFUSED / -EACCES (socket), -ENAMETOOLONG, -E2BIG (more
 * than 65536 slots or 64 MiB a slot region), -EPROTO (malformed reply or
 * segment), -EPROTONOSUPPORT (channel ABI), -ETIMEDOUT (no reply in 10 s),
 * or the server's refusal (-EPERM ...).
 */
int qv_connect(const char *socket_path, const struct qv_connect_opts *opts,
	       qv_client **ret_client);
void qv_close(qv_client *c);

/*
 * Resolve a model name over the socket (slow path; do it once). -ENOENT for
 * an unknown model. A handle is usable for requests on this client only
 * after this client looked it up (the client needs its row sizes).
 */
int qv_model_lookup(qv_client *c, const char *name, struct qv_model_desc *ret_desc);

/*
 * Synchronous round trip. `out` receives rows * out_dim floats (out_cap
 * floats at most). Returns 0 and fills *ret_result (whose status may still
 * be an error status), -ETIMEDOUT after timeout_ms (0 = wait until the
 * server is declared dead), or another negative errno for misuse.
 *
 * Misuse: -EINVAL (NULL arguments, rows 0 or > max_batch), -ENOENT (handle
 * not looked up on this client), -EMSGSIZE (input or output larger than a
 * slot), -ENOBUFS (out_cap < rows * out_dim), -EAGAIN (every slot busy).
 * A dead, closed or draining server gives 0 with QV_UNAVAILABLE, without
 * sending anything; a completion that fails validation gives QV_INTERNAL.
 * The clock is read only every ~1000 spins, so timeout_ms has ~10 us
 * granularity. After -ETIMEDOUT the slot stays taken until the late
 * completion arrives, which is then dropped: `out` is never written after
 * qv_infer returns.
 */
int qv_infer(qv_client *c, const struct qv_request *req, float *out, size_t out_cap,
	     uint32_t timeout_ms, struct qv_result *ret_result);

/*
 * Asynchronous: qv_submit returns 0, or -EAGAIN when every slot is in
 * flight (poll first). The output is copied to `out` when the completion
 * is reaped (by qv_poll, or by a qv_infer on the same client); `out` must
 * stay valid until it is polled. Also -EPIPE (server dead), -ESHUTDOWN
 * (server draining), and the misuse errors of qv_infer.
 */
int qv_submit(qv_client *c, const struct qv_request *req, float *out, size_t out_cap);

/*
 * Typed requests: as qv_infer / qv_submit, with one buffer per tensor
 * (struct qv_tensors) instead of req->input / out (req->input is ignored).
 * For a model with one float input and one float output they are the same
 * request as the plain calls. Misuse, besides qv_infer's: -EINVAL (NULL t,
 * a NULL buffer, n_inputs or n_outputs not the model's), -ENOBUFS (an
 * out_caps[j] below rows * row_bytes of output j). An answer whose size is
 * not rows packed output rows completes with QV_INTERNAL and writes
 * nothing.
 */
int qv_infer_tensors(qv_client *c, const struct qv_request *req, const struct qv_tensors *t,
		     uint32_t timeout_ms, struct qv_result *ret_result);
int qv_submit_tensors(qv_client *c, const struct qv_request *req, const struct qv_tensors *t);

/*
 * Reap up to max completions without blocking. Returns how many were
 * written to results (0 if none), or -EPIPE once the server is dead (every
 * request still in flight is then reported with QV_UNAVAILABLE first).
 *
 * "Dead" is final when the socket hangs up, the server marks the channel
 * CLOSED or breaks a ring: reconnect. A server that is merely silent for
 * dead_after_ms (overloaded host, SIGSTOP) is treated as dead while it is
 * silent, and used again, on the same client, once it beats again; late
 * completions of requests already reported UNAVAILABLE are dropped.
 */
int qv_poll(qv_client *c, struct qv_result *results, int max);

/* Requests submitted with qv_submit and not yet polled. */
uint32_t qv_inflight(const qv_client *c);

const char *qv_strerror(int status_or_negerrno);


/* ======================================================================
 * UDP client (qv_udp_*): the same request/result model over datagrams, for
 * clients on other hosts. Wire format: qv_udp_proto.h. One request a
 * datagram: a request larger than QV_UDP_MAX_DATAGRAM (16 KiB, header
 * included) is refused with -EMSGSIZE before anything is sent. UDP may lose
 * datagrams: a request unanswered after opts.timeout_ms is reported with
 * QV_UNAVAILABLE (qv_udp_poll) or -ETIMEDOUT (qv_udp_infer). Same contract
 * as above otherwise: 0 / count / -errno, ret_* written only on success,
 * one thread at a time per client. A request's handle must have been
 * resolved with qv_udp_lookup on the same client (-ENOENT otherwise): the
 * client needs in_dim/out_dim to size the datagram; rows > max_batch is
 * -EINVAL and an out_cap below rows * out_dim is -ENOBUFS.
 * ====================================================================== */

typedef struct qv_udp_client qv_udp_client;

struct qv_udp_opts {
	uint32_t max_inflight;    /* requests in flight at most; 0 = 64 */
	uint32_t timeout_ms;      /* lookup timeout and async expiry; 0 = 1000 */
};

/* addr_port: "A.B.C.D:PORT" or "[v6]:PORT". opts may be NULL. */
int qv_udp_connect(const char *addr_port, const struct qv_udp_opts *opts,
		   qv_udp_client **ret_client);
void qv_udp_close(qv_udp_client *c);

/* Name -> handle and shapes; retried within opts.timeout_ms.
 * -ENOENT: no such model; -ETIMEDOUT: no answer. */
int qv_udp_lookup(qv_udp_client *c, const char *name, struct qv_model_desc *ret_desc);

/*
 * Synchronous round trip, busy-polling the socket (no sleep) for the
 * lowest latency. Returns 0 and fills *ret_result (its status may be an
 * error status), -ETIMEDOUT after timeout_ms (0 = opts.timeout_ms),
 * -EMSGSIZE if the request does not fit one datagram, -EAGAIN if
 * max_inflight requests are already in flight.
 */
int qv_udp_infer(qv_udp_client *c, const struct qv_request *req, float *out, size_t out_cap,
		 uint32_t timeout_ms, struct qv_result *ret_result);

/* Asynchronous: 0, -EAGAIN (max_inflight reached: poll first), -EMSGSIZE.
 * `out` (out_cap floats) must stay valid until the result is polled. */
int qv_udp_submit(qv_udp_client *c, const struct qv_request *req, float *out, size_t out_cap);

/*
 * Typed requests over UDP (protocol version 2, see qv_udp_proto.h): the
 * datagram carries the packed rows of every input, the reply those of every
 * output, unpacked into t->outputs. Same misuse errors as qv_infer_tensors.
 */
int qv_udp_infer_tensors(qv_udp_client *c, const struct qv_request *req,
			 const struct qv_tensors *t, uint32_t timeout_ms,
			 struct qv_result *ret_result);
int qv_udp_submit_tensors(qv_udp_client *c, const struct qv_request *req,
			  const struct qv_tensors *t);

/* Reap up to max results without blocking; returns how many (0 if none).
 * result.request_id is the caller's qv_request.request_id. */
int qv_udp_poll(qv_udp_client *c, struct qv_result *results, int max);

uint32_t qv_udp_inflight(const qv_udp_client *c);

/* Datagrams received that matched no request in flight (late or foreign). */
uint64_t qv_udp_stray(const qv_udp_client *c);

#ifdef __cplusplus
}
#endif
#endif /* QUIVER_H */
