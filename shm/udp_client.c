/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp_client.c - libquiver's qv_udp_* calls: the request/result API of
 * quiver.h over UDP datagrams (wire format in qv_udp_proto.h). libc only.
 *
 * The socket is connected to the server, so the kernel filters out
 * datagrams from anyone else. Requests in flight live in a fixed table;
 * the wire request id is (sequence << 32 | table index): a reply finds its
 * entry in O(1), and a late reply to an expired request (same index, older
 * sequence) is recognised and dropped instead of being taken for a newer
 * one. Everything is allocated at connect time (and, for a model with
 * several outputs, the table of typed requests' output buffers at its
 * lookup).
 *
 * Versions: lookups and typed requests speak protocol version 2, the plain
 * calls version 1 (byte for byte what they always sent). A server that
 * answers a version 2 LOOKUP with a version 1 BAD_REQUEST speaks version 1
 * only: the lookup is asked again in version 1 and its model served as one
 * float input and one float output.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "quiver.h"
#include "qv_addr.h"
#include "qv_desc.h"
#include "qv_proto.h"
#include "qv_udp_proto.h"

enum pend_state { P_FREE = 0, P_INFLIGHT, P_DONE };

struct pend {
	uint64_t wire_id;
	uint64_t sent_ns;
	float *out;
	size_t out_cap;         /* the plain call: floats; a typed one: bytes of outputs[0] */
	uint32_t out_want;      /* rows * out_dim: what an OK reply carries */
	struct qv_result res;   /* res.request_id: the caller's id */
	uint8_t state;
	bool sync;              /* taken by qv_udp_infer itself, not by poll */
	uint8_t proto;          /* version the request was sent in (the reply's) */
	bool typed;             /* unpack into the caller's tensors (model, rows) */
	uint32_t model;         /* typed: index in models[] */
	uint32_t rows;
};

#define MODELS_MAX 64

struct model {
	uint32_t handle, in_dim, out_dim, max_batch;
	uint8_t proto;          /* 2: the server described it in version 2 */
	struct qv_layout lay;
};

/* A typed request's output buffers, per table entry (qv_udp_submit_tensors). */
struct pend_tens {
	void *out[QV_MAX_TENSORS_WIRE];
	size_t cap[QV_MAX_TENSORS_WIRE];
};

struct qv_udp_client {
	int fd;
	uint32_t nmodels;
	struct model models[MODELS_MAX]; /* looked up through this client */
	uint32_t max_inflight;
	uint32_t timeout_ms;
	uint32_t inflight;
	uint32_t seq;
	uint64_t stray;
	uint64_t last_expiry_ns;
	struct pend *pend;
	struct pend_tens *tens; /* [max_inflight], made at the first lookup with >1 output */
	uint32_t *free_idx;     /* stack of free table indices */
	uint32_t free_n;
	uint64_t *done_q;       /* FIFO of wire ids of finished async requests */
	uint64_t done_head, done_tail; /* free-running (never wrap), capacity max_inflight */
	uint64_t lookup_id;     /* wire id of the lookup waited for, 0 = none */
	bool lookup_done;
	uint32_t lookup_status;
	uint8_t lookup_ver;     /* version of the lookup reply */
	uint32_t lookup_len;    /* its payload bytes */
	struct qv_lookup_reply lookup_rep;
	uint8_t *tx;            /* QV_UDP_MAX_DATAGRAM */
	uint8_t *rx;            /* QV_UDP_MAX_DATAGRAM + 1: a longer reply shows as such */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void qv_udp_close(qv_udp_client *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->pend);
	free(c->tens);
	free(c->free_idx);
	free(c->done_q);
	free(c->tx);
	free(c->rx);
	free(c);
}

int qv_udp_connect(const char *addr_port, const struct qv_udp_opts *opts,
		   qv_udp_client **ret_client)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	qv_udp_client *c;
	int r;

	if (addr_port == NULL || ret_client == NULL)
		return -EINVAL;
	r = qv_addr_parse(addr_port, 0, &ss, &sl);
	if (r < 0)
		return r;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->fd = -1;
	c->max_inflight = opts && opts->max_inflight ? opts->max_inflight : 64;
	c->timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : 1000;
	if (c->max_inflight > (1u << 20)) {
		qv_udp_close(c);
		return -EINVAL;
	}
	c->pend = calloc(c->max_inflight, sizeof(*c->pend));
	c->free_idx = calloc(c->max_inflight, sizeof(*c->free_idx));
	c->done_q = calloc(c->max_inflight, sizeof(*c->done_q));
	c->tx = malloc(QV_UDP_MAX_DATAGRAM);
	c->rx = malloc(QV_UDP_MAX_DATAGRAM + 1);
	if (!c->pend || !c->free_idx || !c->done_q || !c->tx || !c->rx) {
		qv_udp_close(c);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < c->max_inflight; i++)
		c->free_idx[i] = c->max_inflight - 1 - i;
	c->free_n = c->max_inflight;

	c->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&ss, sl) < 0) {
		r = -errno;
		qv_udp_close(c);
		return r;
	}
	*ret_client = c;
	return 0;
}

static uint64_t next_wire_id(qv_udp_client *c, uint32_t idx)
{
	if (++c->seq == 0)
		c->seq = 1; /* wire id 0 never names a request */
	return (uint64_t)c->seq << 32 | idx;
}

/* Receives and dispatches one datagram. Returns 1 if one was read, 0 if the
 * socket is empty. Errors of earlier sends (ICMP port unreachable shows as
 * ECONNREFUSED on a connected socket) are not fatal: requests time out. */
static int recv_one(qv_udp_client *c)
{
	struct qv_udp_rep_hdr h;
	ssize_t n = recv(c->fd, c->rx, QV_UDP_MAX_DATAGRAM + 1, MSG_DONTWAIT);

	if (n < 0)
		return errno == EINTR || errno == ECONNREFUSED ? 1 : 0;
	if ((size_t)n < sizeof(h) || (size_t)n > QV_UDP_MAX_DATAGRAM)
		goto stray;
	memcpy(&h, c->rx, sizeof(h));
	if (h.magic != QV_UDP_MAGIC ||
	    (h.version != QV_UDP_VERSION && h.version != QV_UDP_VERSION_TENSORS) ||
	    h.payload_bytes != (size_t)n - sizeof(h))
		goto stray;

	if (h.type == QV_UDP_LOOKUP_REPLY) {
		if (c->lookup_id == 0 || h.request_id != c->lookup_id || c->lookup_done)
			goto stray;
		if (h.status == QV_OK &&
		    (h.version == QV_UDP_VERSION ? h.payload_bytes != sizeof(struct qv_udp_model)
						 : h.payload_bytes > sizeof(c->lookup_rep)))
			goto stray;
		if (h.status == QV_OK)
			memcpy(&c->lookup_rep, c->rx + sizeof(h), h.payload_bytes);
		c->lookup_len = h.payload_bytes;
		c->lookup_ver = h.version;
		c->lookup_status = h.status;
		c->lookup_done = true;
		return 1;
	}
	if (h.type != QV_UDP_INFER_REPLY)
		goto stray;

	uint32_t idx = (uint32_t)h.request_id;
	if (idx >= c->max_inflight)
		goto stray;
	struct pend *p = &c->pend[idx];
	if (p->state != P_INFLIGHT || p->wire_id != h.request_id || h.version != p->proto)
		goto stray;

	p->res.status = h.status < QV_STATUS_COUNT ? (enum qv_status)h.status : QV_INTERNAL;
	p->res.version = h.version_served;
	p->res.flags = h.flags;
	p->res.out_floats = 0;
	if (h.status == QV_OK && p->proto == QV_UDP_VERSION_TENSORS) {
		const struct qv_layout *l = &c->models[p->model].lay;
		struct qv_udp_tensors_hdr th;

		/* The count of outputs and exactly rows packed rows, or nothing;
		 * and the buffers checked again (a lookup may have come between). */
		bool fit = true;
		for (uint32_t j = 0; j < l->n_out; j++)
			fit &= (l->n_out == 1 ? p->out_cap : c->tens[idx].cap[j]) >=
			       (uint64_t)p->rows * l->out_rb[j];
		if (!fit || h.payload_bytes != sizeof(th) + (uint64_t)p->out_want * sizeof(float)) {
			p->res.status = QV_BAD_SHAPE;
		} else {
			memcpy(&th, c->rx + sizeof(h), sizeof(th));
			if (th.n_tensors != l->n_out || th.reserved[0] || th.reserved[1] ||
			    th.reserved[2]) {
				p->res.status = QV_BAD_SHAPE;
			} else {
				qv_tensors_unpack(l, c->rx + sizeof(h) + sizeof(th), p->rows,
						  l->n_out == 1 ? (void *const *)&p->out :
								  c->tens[idx].out);
				p->res.out_floats = p->out_want;
			}
		}
	} else if (h.status == QV_OK && p->typed) {
		/* A version 1 server's one float output. */
		if (h.payload_bytes != (uint64_t)p->out_want * sizeof(float) ||
		    h.payload_bytes > p->out_cap) {
			p->res.status = QV_BAD_SHAPE;
		} else {
			memcpy(p->out, c->rx + sizeof(h), h.payload_bytes);
			p->res.out_floats = p->out_want;
		}
	} else if (h.status == QV_OK) {
		size_t floats = h.payload_bytes / sizeof(float);

		/* A route's shapes never change (a version with other dims is
		 * refused), so an OK reply carries exactly rows * out_dim
		 * floats; anything else would leave the caller's buffer part
		 * unwritten or overflow it. */
		if (h.payload_bytes % sizeof(float) != 0 || floats != p->out_want ||
		    floats > p->out_cap) {
			p->res.status = QV_BAD_SHAPE;
		} else {
			memcpy(p->out, c->rx + sizeof(h), h.payload_bytes);
			p->res.out_floats = (uint32_t)floats;
		}
	}
	p->state = P_DONE;
	if (!p->sync)
		c->done_q[c->done_tail++ % c->max_inflight] = p->wire_id;
	return 1;
stray:
	c->stray++;
	return 1;
}

static const struct model *find_model(const qv_udp_client *c, uint32_t handle)
{
	for (uint32_t i = 0; i < c->nmodels; i++)
		if (c->models[i].handle == handle)
			return &c->models[i];
	return NULL;
}

/*
 * Sends a request (t NULL: the plain call, version 1, req->input; else the
 * typed call, version 2 when the server described the model in version 2);
 * on success the entry is INFLIGHT and *ret_idx names it.
 */
static int send_req(qv_udp_client *c, const struct qv_request *req, float *out, size_t out_cap,
		    const struct qv_tensors *t, bool sync, uint32_t *ret_idx)
{
	const struct model *m;
	struct qv_udp_req_hdr h;
	uint64_t in_bytes, out_need, now;
	uint32_t idx, pre = 0;
	uint8_t proto = QV_UDP_VERSION;
	struct pend *p;

	if (c == NULL || req == NULL || (t == NULL && req->input == NULL) ||
	    (out == NULL && out_cap > 0))
		return -EINVAL;
	m = find_model(c, req->handle);
	if (m == NULL)
		return -ENOENT;
	if (req->rows == 0 || req->rows > m->max_batch)
		return -EINVAL;
	if (t && m->proto == QV_UDP_VERSION_TENSORS) {
		proto = QV_UDP_VERSION_TENSORS;
		pre = (uint32_t)sizeof(struct qv_udp_tensors_hdr);
	}
	in_bytes = (uint64_t)req->rows * m->in_dim * sizeof(float);
	out_need = (uint64_t)req->rows * m->out_dim * sizeof(float);
	if (in_bytes + pre > QV_UDP_MAX_IN_BYTES || out_need + pre > QV_UDP_MAX_OUT_BYTES)
		return -EMSGSIZE;
	if (t) {
		int r = qv_tensors_check(&m->lay, t, req->rows);
		if (r < 0)
			return r;
		/* Several outputs need the table made at lookup. */
		if (m->lay.n_out > 1 && c->tens == NULL)
			return -ENOMEM;
	} else if (out_cap * sizeof(float) < out_need) {
		return -ENOBUFS;
	}
	if (c->free_n == 0)
		return -EAGAIN;

	idx = c->free_idx[c->free_n - 1];
	now = now_ns();
	memset(&h, 0, sizeof(h));
	h.magic = QV_UDP_MAGIC;
	h.version = proto;
	h.type = QV_UDP_INFER;
	h.handle = req->handle;
	h.rows = req->rows;
	h.request_id = next_wire_id(c, idx);
	/* The wire carries a budget: absolute clocks of two hosts differ. A
	 * deadline already passed still goes out with 1 ns, so the server
	 * answers DEADLINE_EXCEEDED like it would over shared memory. */
	if (req->deadline_ns != 0)
		h.budget_ns = req->deadline_ns > now ? req->deadline_ns - now : 1;
	h.routing_key = req->routing_key;
	h.payload_bytes = (uint32_t)(pre + in_bytes);
	memcpy(c->tx, &h, sizeof(h));
	if (pre) {
		struct qv_udp_tensors_hdr th = { .n_tensors = m->lay.n_in };
		memcpy(c->tx + sizeof(h), &th, sizeof(th));
	}
	if (t)
		qv_tensors_pack(&m->lay, t->inputs, req->rows, c->tx + sizeof(h) + pre);
	else
		memcpy(c->tx + sizeof(h), req->input, in_bytes);
	if (send(c->fd, c->tx, sizeof(h) + pre + in_bytes, 0) < 0)
		return errno == ECONNREFUSED ? -ECONNREFUSED : -errno;

	c->free_n--;
	p = &c->pend[idx];
	p->wire_id = h.request_id;
	p->sent_ns = now;
	p->out = t ? t->outputs[0] : out;
	p->out_cap = t ? t->out_caps[0] : out_cap; /* typed: bytes, checked at the reply */
	p->proto = proto;
	p->typed = t != NULL;
	p->model = (uint32_t)(m - c->models);
	p->rows = req->rows;
	if (t && m->lay.n_out > 1)
		for (uint32_t j = 0; j < m->lay.n_out; j++) {
			c->tens[idx].out[j] = t->outputs[j];
			c->tens[idx].cap[j] = t->out_caps[j];
		}
	p->out_want = (uint32_t)(out_need / sizeof(float));
	p->sync = sync;
	p->state = P_INFLIGHT;
	memset(&p->res, 0, sizeof(p->res));
	p->res.request_id = req->request_id;
	c->inflight++;
	*ret_idx = idx;
	return 0;
}

static void release(qv_udp_client *c, uint32_t idx)
{
	c->pend[idx].state = P_FREE;
	c->free_idx[c->free_n++] = idx;
	c->inflight--;
}

static int infer(qv_udp_client *c, const struct qv_request *req, float *out, size_t out_cap,
		 const struct qv_tensors *t, uint32_t timeout_ms, struct qv_result *ret_result)
{
	uint64_t limit;
	uint32_t idx = 0; /* silences -O3 maybe-uninitialized; set by send_req */
	int r;

	if (ret_result == NULL)
		return -EINVAL;
	r = send_req(c, req, out, out_cap, t, true, &idx);
	if (r < 0)
		return r;
	limit = c->pend[idx].sent_ns +
		(uint64_t)(timeout_ms ? timeout_ms : c->timeout_ms) * 1000000ull;
	/* Busy poll: a sleeping recv adds a wake-up (microseconds) to every
	 * round trip. The clock is read only when the socket is empty. */
	for (;;) {
		if (recv_one(c) == 0 && c->pend[idx].state != P_DONE && now_ns() > limit)
			break;
		if (c->pend[idx].state == P_DONE) {
			*ret_result = c->pend[idx].res;
			release(c, idx);
			return 0;
		}
	}
	release(c, idx); /* a late reply finds the entry free and is dropped */
	return -ETIMEDOUT;
}

int qv_udp_infer(qv_udp_client *c, const struct qv_request *req, float *out, size_t out_cap,
		 uint32_t timeout_ms, struct qv_result *ret_result)
{
	return infer(c, req, out, out_cap, NULL, timeout_ms, ret_result);
}

int qv_udp_infer_tensors(qv_udp_client *c, const struct qv_request *req,
			 const struct qv_tensors *t, uint32_t timeout_ms,
			 struct qv_result *ret_result)
{
	if (t == NULL)
		return -EINVAL;
	return infer(c, req, NULL, 0, t, timeout_ms, ret_result);
}

int qv_udp_submit(qv_udp_client *c, const struct qv_request *req, float *out, size_t out_cap)
{
	uint32_t idx;

	return send_req(c, req, out, out_cap, NULL, false, &idx);
}

int qv_udp_submit_tensors(qv_udp_client *c, const struct qv_request *req,
			  const struct qv_tensors *t)
{
	uint32_t idx;

	if (t == NULL)
		return -EINVAL;
	return send_req(c, req, NULL, 0, t, false, &idx);
}

/* Declares lost the async requests older than timeout_ms (checked at most
 * once a millisecond: it walks the whole table). */
static void expire(qv_udp_client *c)
{
	uint64_t now = now_ns(), tmo = (uint64_t)c->timeout_ms * 1000000ull;

	if (now - c->last_expiry_ns < 1000000ull)
		return;
	c->last_expiry_ns = now;
	for (uint32_t i = 0; i < c->max_inflight; i++) {
		struct pend *p = &c->pend[i];

		if (p->state != P_INFLIGHT || p->sync || now - p->sent_ns <= tmo)
			continue;
		p->res.status = QV_UNAVAILABLE;
		p->state = P_DONE;
		c->done_q[c->done_tail++ % c->max_inflight] = p->wire_id;
	}
}

int qv_udp_poll(qv_udp_client *c, struct qv_result *results, int max)
{
	int got = 0;

	if (c == NULL || (results == NULL && max > 0))
		return -EINVAL;
	/* Drain what is there, bounded so a flood cannot pin the caller. */
	for (uint32_t i = 0; i < c->max_inflight + 8 && recv_one(c) == 1; i++)
		;
	if (c->done_head == c->done_tail && c->inflight > 0)
		expire(c);
	while (got < max && c->done_head != c->done_tail) {
		uint64_t id = c->done_q[c->done_head++ % c->max_inflight];
		uint32_t idx = (uint32_t)id;
		struct pend *p = &c->pend[idx];

		results[got++] = p->res;
		release(c, idx);
	}
	return got;
}

uint32_t qv_udp_inflight(const qv_udp_client *c)
{
	return c ? c->inflight : 0;
}

uint64_t qv_udp_stray(const qv_udp_client *c)
{
	return c ? c->stray : 0;
}

/* One LOOKUP exchange in protocol version `proto`, resent within the
 * timeout: 0 with the reply in c->lookup_*, or -ETIMEDOUT / -errno. */
static int lookup_once(qv_udp_client *c, const char *name, size_t nlen, uint8_t proto)
{
	struct qv_udp_req_hdr h;
	uint64_t start, resend_ns, next_send;

	memset(&h, 0, sizeof(h));
	h.magic = QV_UDP_MAGIC;
	h.version = proto;
	h.type = QV_UDP_LOOKUP;
	/* Top bit set: never collides with a request id (seq << 32 | idx
	 * where idx < 2^20). */
	h.request_id = (1ull << 63) | (uint64_t)++c->seq << 20;
	h.payload_bytes = (uint32_t)nlen;
	memcpy(c->tx, &h, sizeof(h));
	memcpy(c->tx + sizeof(h), name, nlen);

	c->lookup_id = h.request_id;
	c->lookup_done = false;
	start = now_ns();
	resend_ns = (uint64_t)c->timeout_ms * 1000000ull / 5;
	next_send = start;
	while (!c->lookup_done) {
		uint64_t now = now_ns();

		if (now - start > (uint64_t)c->timeout_ms * 1000000ull)
			break;
		/* Lookups are the slow path: UDP may lose one, so resend a few
		 * times within the timeout, and sleep in poll() between. */
		if (now >= next_send) {
			if (send(c->fd, c->tx, sizeof(h) + nlen, 0) < 0 && errno != ECONNREFUSED) {
				c->lookup_id = 0;
				return -errno;
			}
			next_send = now + resend_ns;
		}
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int wait_ms = (int)((next_send - now) / 1000000ull) + 1;
		if (poll(&pfd, 1, wait_ms) > 0)
			while (!c->lookup_done && recv_one(c) == 1)
				;
	}
	c->lookup_id = 0;
	return c->lookup_done ? 0 : -ETIMEDOUT;
}

/* A version 1 record: one float input and one float output. */
static int desc_from_v1(const struct qv_udp_model *m, struct qv_model_desc *ret)
{
	struct qv_model_desc d;

	if (m->in_dim == 0 || m->out_dim == 0 || m->max_batch == 0 || m->in_rank > 8 ||
	    m->out_rank > 8)
		return -EPROTO;
	memset(&d, 0, sizeof(d));
	d.handle = m->handle;
	d.version = m->version;
	d.in_dim = m->in_dim;
	d.out_dim = m->out_dim;
	d.max_batch = m->max_batch;
	d.in_rank = m->in_rank;
	d.out_rank = m->out_rank;
	memcpy(d.in_shape, m->in_shape, sizeof(d.in_shape));
	memcpy(d.out_shape, m->out_shape, sizeof(d.out_shape));
	memcpy(d.name, m->name, sizeof(d.name) < sizeof(m->name) ? sizeof(d.name) : sizeof(m->name));
	d.name[sizeof(d.name) - 1] = '\0';
	d.n_inputs = d.n_outputs = 1;
	for (int k = 0; k < 2; k++) {
		struct qv_tensor_desc *t = k ? &d.outputs[0] : &d.inputs[0];
		uint32_t dim = k ? d.out_dim : d.in_dim;

		snprintf(t->name, sizeof(t->name), "%s", k ? "output" : "input");
		t->dtype = QV_TENSOR_FLOAT32;
		t->rank = 2;
		t->shape[0] = -1;
		t->shape[1] = dim;
		t->row_bytes = dim * 4;
	}
	*ret = d;
	return 0;
}

int qv_udp_lookup(qv_udp_client *c, const char *name, struct qv_model_desc *ret_desc)
{
	struct qv_model_desc d;
	size_t nlen;
	int r;

	if (c == NULL || name == NULL || ret_desc == NULL)
		return -EINVAL;
	nlen = strlen(name);
	if (nlen == 0 || nlen >= QV_UDP_NAME_MAX)
		return -EINVAL;
	r = lookup_once(c, name, nlen, QV_UDP_VERSION_TENSORS);
	/* A version 1 server refuses version 2 in a version 1 BAD_REQUEST. */
	if (r == 0 && c->lookup_status == QV_BAD_REQUEST && c->lookup_ver == QV_UDP_VERSION)
		r = lookup_once(c, name, nlen, QV_UDP_VERSION);
	if (r < 0)
		return r;
	if (c->lookup_status == QV_UNKNOWN_MODEL)
		return -ENOENT;
	if (c->lookup_status != QV_OK)
		return -EPROTO;
	if (c->lookup_ver == QV_UDP_VERSION) {
		struct qv_udp_model m1;

		memcpy(&m1, &c->lookup_rep, sizeof(m1));
		r = desc_from_v1(&m1, &d);
	} else {
		r = qv_desc_from_wire(&c->lookup_rep, c->lookup_len, &d);
	}
	if (r < 0)
		return r;
	if (d.n_outputs > 1 && c->tens == NULL) {
		c->tens = calloc(c->max_inflight, sizeof(*c->tens));
		if (c->tens == NULL)
			return -ENOMEM;
	}

	struct model mm = { d.handle, d.in_dim, d.out_dim, d.max_batch,
			    c->lookup_ver, { 0 } };
	qv_layout_of(&d, &mm.lay);
	uint32_t i;
	for (i = 0; i < c->nmodels && c->models[i].handle != d.handle; i++)
		;
	if (i == c->nmodels) {
		if (c->nmodels == MODELS_MAX)
			return -ENOSPC;
		c->nmodels++;
	}
	c->models[i] = mm;
	*ret_desc = d;
	return 0;
}
