/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp_parse.c - the one place a UDP datagram is trusted or not. Pure
 * functions: no state, no allocation, fuzzed by tests/udp/fuzz_udp_parse.c.
 */
#include <string.h>

#include "quiver.h"
#include "udp.h"

enum qv_udp_verdict qv_udp_parse_request(const void *buf, size_t len, bool truncated,
					 struct qv_udp_parsed *ret)
{
	struct qv_udp_req_hdr h;
	struct qv_udp_parsed p;

	/* Without a whole header nothing can be trusted, not even an id to
	 * answer to: drop. */
	if (buf == NULL || len < sizeof(h))
		return QV_UDP_V_JUNK;
	/* Copy once: the buffer may be unaligned, and every later check reads
	 * this copy only. */
	memcpy(&h, buf, sizeof(h));
	if (h.magic != QV_UDP_MAGIC)
		return QV_UDP_V_JUNK;
	/* A reply type is never answered, whatever else it says: two servers
	 * (or a spoofed source) must not be able to ping-pong forever. */
	if (h.type & QV_UDP_TYPE_REPLY_BIT)
		return QV_UDP_V_JUNK;

	memset(&p, 0, sizeof(p));
	p.request_id = h.request_id;
	p.in_off = (uint32_t)sizeof(h);
	p.reply_type = h.type == QV_UDP_LOOKUP ? QV_UDP_LOOKUP_REPLY : QV_UDP_INFER_REPLY;
	/* Answered in the version asked for when we speak it; an unknown
	 * version's BAD_REQUEST goes out as version 1, which every client reads. */
	p.version = h.version == QV_UDP_VERSION_TENSORS ? QV_UDP_VERSION_TENSORS : QV_UDP_VERSION;
	*ret = p;

	if ((h.version != QV_UDP_VERSION && h.version != QV_UDP_VERSION_TENSORS) || h.flags != 0 ||
	    h.reserved != 0 || truncated)
		return QV_UDP_V_BAD;
	if (len > QV_UDP_MAX_DATAGRAM || (size_t)h.payload_bytes != len - sizeof(h))
		return QV_UDP_V_BAD;

	switch (h.type) {
	case QV_UDP_INFER: {
		uint32_t body = h.payload_bytes;

		if (h.version == QV_UDP_VERSION_TENSORS) {
			struct qv_udp_tensors_hdr th;

			if (body < sizeof(th))
				return QV_UDP_V_BAD;
			memcpy(&th, (const uint8_t *)buf + sizeof(h), sizeof(th));
			if (th.n_tensors == 0 || th.n_tensors > QV_WIRE_MAX_TENSORS ||
			    th.reserved[0] != 0 || th.reserved[1] != 0 || th.reserved[2] != 0)
				return QV_UDP_V_BAD;
			body -= (uint32_t)sizeof(th);
			p.in_off += (uint32_t)sizeof(th);
			p.n_tensors = th.n_tensors;
		}
		/* rows must be >= 1 and divide the rows' bytes into whole
		 * 4-byte-word rows; the route then checks rows * in_dim (and
		 * in version 2 the tensor count) exactly. */
		if (h.rows == 0 || body == 0 || body % sizeof(float) != 0)
			return QV_UDP_V_BAD;
		if ((uint64_t)h.rows * sizeof(float) > body ||
		    body % ((uint64_t)h.rows * sizeof(float)) != 0)
			return QV_UDP_V_BAD;
		p.handle = h.handle;
		p.rows = h.rows;
		p.in_bytes = body;
		p.budget_ns = h.budget_ns;
		p.routing_key = h.routing_key;
		*ret = p;
		return QV_UDP_V_INFER;
	}
	case QV_UDP_LOOKUP: {
		const char *name = (const char *)buf + sizeof(h);

		if (h.payload_bytes == 0 || h.payload_bytes >= QV_UDP_NAME_MAX)
			return QV_UDP_V_BAD;
		/* An embedded NUL would make two different datagrams name the
		 * same model; refuse it rather than guess. */
		if (memchr(name, '\0', h.payload_bytes) != NULL)
			return QV_UDP_V_BAD;
		memcpy(p.name, name, h.payload_bytes);
		p.name[h.payload_bytes] = '\0';
		*ret = p;
		return QV_UDP_V_LOOKUP;
	}
	default:
		return QV_UDP_V_BAD;
	}
}

size_t qv_udp_put_reply_hdr(void *buf, uint8_t proto, uint8_t type, uint32_t status,
			    uint32_t version, uint32_t flags, uint64_t request_id,
			    uint32_t payload_bytes)
{
	struct qv_udp_rep_hdr h = {
		.magic = QV_UDP_MAGIC,
		.version = proto,
		.type = type,
		.flags = (uint16_t)flags,
		.status = status,
		.version_served = version,
		.request_id = request_id,
		.payload_bytes = payload_bytes,
		.reserved = 0,
	};

	memcpy(buf, &h, sizeof(h));
	return sizeof(h);
}

size_t qv_udp_put_lookup_reply(void *buf, const struct qv_udp_parsed *p,
			       const struct qv_lookup_reply *lr)
{
	const struct qv_model_wire *mw;
	struct qv_udp_model m;
	uint8_t proto = (uint8_t)p->version;

	if (!lr)
		return qv_udp_put_reply_hdr(buf, proto, QV_UDP_LOOKUP_REPLY, QV_UNKNOWN_MODEL, 0, 0,
					    p->request_id, 0);
	mw = &lr->m;
	if (proto == QV_UDP_VERSION_TENSORS) {
		/* The record as the socket sends it, its name the one asked for.
		 * Copied part by part: the tensors' count is the table's, at most
		 * QV_WIRE_MAX_TENSORS each. */
		uint32_t nt = (lr->n_inputs <= QV_WIRE_MAX_TENSORS ? lr->n_inputs : 0) +
			      (lr->n_outputs <= QV_WIRE_MAX_TENSORS ? lr->n_outputs : 0);
		size_t n = offsetof(struct qv_lookup_reply, t) + (size_t)nt * sizeof(lr->t[0]);
		size_t h = qv_udp_put_reply_hdr(buf, proto, QV_UDP_LOOKUP_REPLY, QV_OK, mw->version,
						0, p->request_id, (uint32_t)n);
		uint8_t *d = (uint8_t *)buf + h;

		memcpy(d, mw, sizeof(*mw));
		memcpy(d + offsetof(struct qv_model_wire, name), p->name, sizeof(p->name));
		memcpy(d + offsetof(struct qv_lookup_reply, n_inputs), &lr->n_inputs, 4);
		memcpy(d + offsetof(struct qv_lookup_reply, n_outputs), &lr->n_outputs, 4);
		memcpy(d + offsetof(struct qv_lookup_reply, t), lr->t, (size_t)nt * sizeof(lr->t[0]));
		return h + n;
	}
	memset(&m, 0, sizeof(m));
	m.handle = mw->handle;
	m.version = mw->version;
	m.in_dim = mw->in_dim;
	m.out_dim = mw->out_dim;
	m.max_batch = mw->max_batch;
	m.in_rank = mw->in_rank;
	m.out_rank = mw->out_rank;
	memcpy(m.in_shape, mw->in_shape, sizeof(m.in_shape));
	memcpy(m.out_shape, mw->out_shape, sizeof(m.out_shape));
	memcpy(m.name, p->name, sizeof(m.name));
	size_t h = qv_udp_put_reply_hdr(buf, proto, QV_UDP_LOOKUP_REPLY, QV_OK, mw->version, 0,
					p->request_id, sizeof(m));
	memcpy((uint8_t *)buf + h, &m, sizeof(m));
	return h + sizeof(m);
}
