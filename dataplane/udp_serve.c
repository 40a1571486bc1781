/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp_serve.c - a parsed datagram through the worker, into a reply: the
 * part every UDP back end (io_uring, DPDK) does the same way. The back ends
 * differ only in where datagrams come from and where replies go.
 */
#include <string.h>
#include <time.h>

#include "quiver.h"
#include "serve.h"
#include "udp.h"

size_t qv_udp_serve_infer(struct qv_worker *w, const struct qv_udp_parsed *p,
			  const uint8_t *dgram, uint8_t *out, uint32_t out_cap)
{
	struct qv_serve_req req;
	struct qv_serve_res res;
	uint32_t out_bytes = 0;

	req.handle = p->handle;
	req.rows = p->rows;
	req.in_bytes = p->in_bytes;
	req.out_cap = out_cap;
	req.deadline_ns = 0;
	if (p->budget_ns) {
		struct timespec ts;

		/* The budget starts now; vDSO, no syscall, and only when asked. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		req.deadline_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
				  p->budget_ns;
	}
	req.routing_key = p->routing_key;
	req.request_id = p->request_id;
	/* Aligned by each back end's buffer layout (see their _Static_asserts). */
	req.in = (const float *)(const void *)(dgram + p->in_off);
	req.out = (float *)(void *)(out + sizeof(struct qv_udp_rep_hdr));
	memset(&res, 0, sizeof(res));
	qv_worker_serve(w, &req, &res);
	if (res.status == QV_OK)
		out_bytes = res.out_bytes <= out_cap ? res.out_bytes : 0;
	if (res.status == QV_OK && out_bytes != res.out_bytes)
		res.status = QV_INTERNAL; /* a serve bug must not leak memory onto the wire */
	return qv_udp_put_reply_hdr(out, QV_UDP_INFER_REPLY, res.status, res.version, res.flags,
				    p->request_id, out_bytes) + out_bytes;
}

size_t qv_udp_serve_lookup(struct qv_worker *w, const struct qv_udp_parsed *p, uint8_t *out)
{
	struct qv_model_wire mw;

	return qv_udp_put_lookup_reply(out, p, qv_worker_lookup(w, p->name, &mw) == 0 ? &mw : NULL);
}
