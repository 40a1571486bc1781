/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp_serve.c - parsed datagrams through the worker, into replies: the part
 * every UDP back end (io_uring, DPDK) does the same way. The back ends
 * differ only in where datagrams come from and where replies go.
 *
 * An INFER is served in two halves around the back end's one
 * qv_worker_serve_batch() call a turn: prepare turns the datagram into a
 * batch item (input read in place, output written straight into the reply
 * buffer), finish turns the item's result into the reply header.
 */
#include <string.h>
#include <time.h>

#include "quiver.h"
#include "serve.h"
#include "udp.h"
#include "worker.h"

void qv_udp_serve_prepare(struct qv_batch_item *it, const struct qv_udp_parsed *p,
			  const uint8_t *dgram, uint8_t *out, uint32_t out_cap)
{
	struct qv_serve_req *req = &it->req;

	/* Version 2 replies start with the tensor count: the outputs after it. */
	uint32_t pre = p->n_tensors ? (uint32_t)sizeof(struct qv_udp_tensors_hdr) : 0;

	req->handle = p->handle;
	req->rows = p->rows;
	req->in_bytes = p->in_bytes;
	req->n_inputs = p->n_tensors;
	req->out_cap = out_cap > pre ? out_cap - pre : 0;
	req->deadline_ns = 0;
	if (p->budget_ns) {
		struct timespec ts;

		/* The budget starts now; vDSO, no syscall, and only when asked. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		/* Saturate: a budget near 2^64 means "no hurry", never a deadline
		 * that wrapped into the past. */
		req->deadline_ns = p->budget_ns > UINT64_MAX - now ? UINT64_MAX : now + p->budget_ns;
	}
	req->routing_key = p->routing_key;
	req->request_id = p->request_id;
	/* Aligned by each back end's buffer layout (see their _Static_asserts):
	 * a request alone runs in place, straight from here. */
	req->in = (const float *)(const void *)(dgram + p->in_off);
	req->out = (float *)(void *)(out + sizeof(struct qv_udp_rep_hdr) + pre);
	memset(&it->res, 0, sizeof(it->res));
	it->v = NULL;
	it->h = NULL;
	it->chan = NULL;
	it->done = 0;
}

size_t qv_udp_serve_finish(const struct qv_batch_item *it, uint8_t *out)
{
	uint32_t status = it->res.status, out_bytes = 0, pre = 0;
	/* Only a version 2 request names its tensor count (n_inputs >= 1). */
	uint8_t proto = it->req.n_inputs ? QV_UDP_VERSION_TENSORS : QV_UDP_VERSION;

	if (status == QV_OK) {
		out_bytes = it->res.out_bytes <= it->req.out_cap ? it->res.out_bytes : 0;
		if (out_bytes != it->res.out_bytes)
			status = QV_INTERNAL; /* a serve bug must not leak memory onto the wire */
	}
	if (status == QV_OK && proto == QV_UDP_VERSION_TENSORS) {
		struct qv_udp_tensors_hdr th = { .n_tensors = it->res.n_outputs };

		pre = (uint32_t)sizeof(th);
		memcpy(out + sizeof(struct qv_udp_rep_hdr), &th, sizeof(th));
	}
	return qv_udp_put_reply_hdr(out, proto, QV_UDP_INFER_REPLY, status, it->res.version,
				    it->res.flags, it->req.request_id, pre + out_bytes) +
	       pre + out_bytes;
}

size_t qv_udp_serve_lookup(struct qv_worker *w, const struct qv_udp_parsed *p, uint8_t *out)
{
	const struct qv_lookup_reply *lr;

	return qv_udp_put_lookup_reply(out, p, qv_worker_lookup(w, p->name, &lr) == 0 ? lr : NULL);
}
