/* SPDX-License-Identifier: Apache-2.0 */
/*
 * serve.h - what a transport (shared-memory channels, UDP over io_uring,
 * UDP over DPDK) asks of the worker that polls it. Every transport turns a
 * request into a qv_serve_req whose fields it has already copied out of
 * untrusted memory, and gets exactly one qv_serve_res back.
 */
#ifndef QV_SERVE_H
#define QV_SERVE_H

#include <stdint.h>

#include "qv_proto.h"

struct qv_worker;

struct qv_serve_req {
	uint32_t handle;
	uint32_t rows;
	uint32_t in_bytes;      /* bytes at `in`, as the transport received them */
	uint32_t out_cap;       /* bytes available at `out` */
	uint64_t deadline_ns;   /* absolute CLOCK_MONOTONIC, 0 = route default */
	uint64_t routing_key;
	uint64_t request_id;
	/* Input tensors the request says it packed (UDP version 2): must be the
	 * route's; 0 when the transport does not say (shared memory, UDP 1). */
	uint32_t n_inputs;
	uint32_t pad;
	const float *in;        /* packed rows, read in place */
	float *out;             /* written in place */
};

struct qv_serve_res {
	uint32_t status;        /* enum qv_status */
	uint32_t version;
	uint32_t flags;         /* QV_FLAG_* */
	uint32_t out_bytes;
	uint32_t n_outputs;     /* QV_OK: output tensors in the packed rows at out */
};

/*
 * Validates the request against the route (handle, rows <= max_batch,
 * in_bytes == rows * in_dim * 4, n_inputs 0 or the route's, out_cap >=
 * rows * out_dim * 4: else QV_BAD_SHAPE), picks the
 * version (canary share, manual / deadline fallback), runs it on the
 * worker's table of this turn (reruns on the fallback on error or
 * nonfinite output when so configured; an id input out of its table's
 * range is QV_BAD_REQUEST) and fills *ret: version answered,
 * QV_FLAG_CANARY / QV_FLAG_FALLBACK. A shadow copy, if drawn, waits in
 * the worker until qv_worker_shadow_flush(), which the transport's poll
 * loop calls after pushing the answer. Hot path: no allocation, lock,
 * syscall or log.
 */
void qv_worker_serve(struct qv_worker *w, const struct qv_serve_req *req,
		     struct qv_serve_res *ret);

/* Name -> route handle, shapes and tensors, for transports' lookup
 * messages: *ret points into this turn's table (valid until the worker's
 * next quiescent state). Returns 0 or -ENOENT. Called from the worker. */
int qv_worker_lookup(struct qv_worker *w, const char *name, const struct qv_lookup_reply **ret);

#endif /* QV_SERVE_H */
