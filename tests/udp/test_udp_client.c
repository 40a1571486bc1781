/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_udp_client.c - the qv_udp_* client against a scripted server thread
 * (plain sockets, no io_uring): loss becomes -ETIMEDOUT (sync) or
 * QV_UNAVAILABLE (async), a late reply to an expired request is dropped
 * and counted, not delivered to a newer request, and a reply larger than
 * the caller's buffer is QV_BAD_SHAPE, never an overflow.
 * Models served: "sum" (handle 1, 2 -> 1, out = a + b), "lossy" (handle 2,
 * never answered), "liar" (handle 3, out_dim 1 but answers 100 floats),
 * each described in a version 1 record (as a version 1 server would);
 * "mixed" (handle 11, described and served in version 2: inputs dense
 * f32[3], ids i64[2], k i32[1]; outputs score f32[1] = dense sum, cls
 * i64[1] = ids0 * 1000 + ids1 + k, pair f32[2] = {2 dense0, k}) and
 * "mixed-liar" (handle 12, the same but its replies name 2 outputs).
 * Typed requests are packed by the client and read here from the byte
 * offsets qv_udp_proto.h documents.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "quiver.h"
#include "qv_proto.h"
#include "udp_test_util.h"

static int srv_fd;
static atomic_bool stop;
static _Atomic uint64_t lossy_id;      /* last id of a "lossy" request */
static atomic_bool send_late;          /* answer that id now */
static atomic_int old_v2_refused;      /* version 2 lookups of "old" refused */

static void reply(const struct sockaddr_in *to, uint8_t type, uint32_t status, uint64_t id,
		  const void *payload, uint32_t bytes)
{
	static _Alignas(8) uint8_t buf[2048];

	send_dg(srv_fd, buf, mk_rep(buf, type, status, id, payload, bytes, bytes), to);
}

static void tensor(struct qv_tensor_wire *t, const char *name, uint32_t dtype, uint32_t elems,
		   uint32_t off)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->dtype = dtype;
	t->rank = 2;
	t->shape[0] = -1;
	t->shape[1] = elems;
	t->row_bytes = elems * (dtype == QV_TENSOR_INT64 ? 8u : 4u);
	t->packed_off = off;
}

/* A version 2 reply: the header of mk_rep with version byte 2. */
static void reply2(const struct sockaddr_in *to, uint8_t type, uint32_t status, uint64_t id,
		   const void *payload, uint32_t bytes)
{
	static _Alignas(8) uint8_t buf[QV_UDP_MAX_DATAGRAM];
	size_t n = mk_rep(buf, type, status, id, payload, bytes, bytes);

	buf[4] = QV_UDP_VERSION_TENSORS;
	send_dg(srv_fd, buf, n, to);
}

static void lookup_mixed(const struct sockaddr_in *to, uint64_t id, const char *name)
{
	static struct qv_lookup_reply lr;

	memset(&lr, 0, sizeof(lr));
	lr.m.handle = strcmp(name, "mixed") == 0 ? 11 : 12;
	lr.m.version = 1;
	lr.m.in_dim = 8;
	lr.m.out_dim = 5;
	lr.m.max_batch = 4;
	snprintf(lr.m.name, sizeof(lr.m.name), "%s", name);
	lr.n_inputs = lr.n_outputs = 3;
	tensor(&lr.t[0], "dense", QV_TENSOR_FLOAT32, 3, 0);
	tensor(&lr.t[1], "ids", QV_TENSOR_INT64, 2, 12);
	tensor(&lr.t[2], "k", QV_TENSOR_INT32, 1, 28);
	tensor(&lr.t[3], "score", QV_TENSOR_FLOAT32, 1, 0);
	tensor(&lr.t[4], "cls", QV_TENSOR_INT64, 1, 4);
	tensor(&lr.t[5], "pair", QV_TENSOR_FLOAT32, 2, 12);
	reply2(to, QV_UDP_LOOKUP_REPLY, QV_OK, id, &lr, (uint32_t)qv_lookup_reply_bytes(3, 3));
}

/* A version 2 INFER of "mixed": its rows read at the documented offsets. */
static void infer_mixed(const struct sockaddr_in *to, const struct qv_udp_req_hdr *h,
			const uint8_t *payload)
{
	uint8_t out[16 + 4 * 20];
	struct qv_udp_tensors_hdr th;

	memcpy(&th, payload, sizeof(th));
	if (h->version != QV_UDP_VERSION_TENSORS || th.n_tensors != 3 || h->rows == 0 ||
	    h->rows > 4 || h->payload_bytes != 16 + h->rows * 32) {
		reply2(to, QV_UDP_INFER_REPLY, QV_BAD_SHAPE, h->request_id, NULL, 0);
		return;
	}
	memset(&th, 0, sizeof(th));
	th.n_tensors = h->handle == 11 ? 3 : 2;
	memcpy(out, &th, sizeof(th));
	for (uint32_t r = 0; r < h->rows; r++) {
		const uint8_t *in = payload + 16 + r * 32;
		uint8_t *o = out + 16 + r * 20;
		float dense[3], score, pair[2];
		int64_t ids[2], cls;
		int32_t k;

		memcpy(dense, in, 12);
		memcpy(ids, in + 12, 16);
		memcpy(&k, in + 28, 4);
		score = dense[0] + dense[1] + dense[2];
		cls = ids[0] * 1000 + ids[1] + k;
		pair[0] = 2.0f * dense[0];
		pair[1] = (float)k;
		memcpy(o, &score, 4);
		memcpy(o + 4, &cls, 8);
		memcpy(o + 12, pair, 8);
	}
	reply2(to, QV_UDP_INFER_REPLY, QV_OK, h->request_id, out, 16 + h->rows * 20);
}

static void *server(void *arg)
{
	static _Alignas(8) uint8_t buf[QV_UDP_MAX_DATAGRAM + 1];
	struct sockaddr_in last_peer;

	(void)arg;
	memset(&last_peer, 0, sizeof(last_peer));
	while (!atomic_load(&stop)) {
		struct sockaddr_in from;
		struct qv_udp_req_hdr h;

		if (atomic_exchange(&send_late, false)) {
			float f = 42.0f;
			reply(&last_peer, QV_UDP_INFER_REPLY, QV_OK, atomic_load(&lossy_id), &f, 4);
		}
		if (recv_req(srv_fd, buf, sizeof(buf), 5, &h, &from) == 0)
			continue;
		last_peer = from;
		if (h.type == QV_UDP_LOOKUP) {
			struct qv_udp_model m;
			char name[64] = { 0 };

			memcpy(name, buf + sizeof(h), h.payload_bytes < 63 ? h.payload_bytes : 63);
			if (strcmp(name, "mixed") == 0 || strcmp(name, "mixed-liar") == 0) {
				lookup_mixed(&from, h.request_id, name);
				continue;
			}
			/* "old": a version 1 server, refusing version 2 as one does. */
			if (strcmp(name, "old") == 0 && h.version != QV_UDP_VERSION) {
				atomic_fetch_add(&old_v2_refused, 1);
				reply(&from, QV_UDP_LOOKUP_REPLY, QV_BAD_REQUEST, h.request_id, NULL, 0);
				continue;
			}
			memset(&m, 0, sizeof(m));
			m.in_dim = 2;
			m.out_dim = 1;
			m.max_batch = 4;
			m.version = 1;
			snprintf(m.name, sizeof(m.name), "%s", name);
			m.handle = !strcmp(name, "sum") || !strcmp(name, "old") ? 1
				   : !strcmp(name, "lossy") ? 2 : !strcmp(name, "liar") ? 3 : 0;
			if (m.handle == 0)
				reply(&from, QV_UDP_LOOKUP_REPLY, QV_UNKNOWN_MODEL, h.request_id, NULL, 0);
			else
				reply(&from, QV_UDP_LOOKUP_REPLY, QV_OK, h.request_id, &m, sizeof(m));
			continue;
		}
		if (h.type == QV_UDP_INFER && (h.handle == 11 || h.handle == 12)) {
			infer_mixed(&from, &h, buf + sizeof(h));
			continue;
		}
		CHECK(h.type == QV_UDP_INFER && h.version == QV_UDP_VERSION && h.rows >= 1 &&
		      h.payload_bytes == h.rows * 8);
		if (h.handle == 2) {
			atomic_store(&lossy_id, h.request_id);
			continue;
		}
		float out[100] = { 0 };
		const float *in = (const float *)(const void *)(buf + sizeof(h));
		for (uint32_t r = 0; r < h.rows; r++)
			out[r] = in[2 * r] + in[2 * r + 1];
		reply(&from, QV_UDP_INFER_REPLY, QV_OK, h.request_id, out,
		      h.handle == 3 ? 400 : h.rows * 4);
	}
	return NULL;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls until one result arrives (10 s at most). */
static struct qv_result poll_one(qv_udp_client *c)
{
	struct qv_result r;
	uint64_t t0 = mono_ms();

	for (;;) {
		int n = qv_udp_poll(c, &r, 1);

		CHECK(n >= 0);
		if (n == 1)
			return r;
		CHECK(mono_ms() - t0 < 10000);
		usleep(1000);
	}
}

static void mixed_inputs(uint32_t rows, float *dense, int64_t *ids, int32_t *k, uint32_t seed)
{
	for (uint32_t r = 0; r < rows; r++) {
		for (uint32_t j = 0; j < 3; j++)
			dense[r * 3 + j] = (float)(seed + r) * 0.25f - (float)j;
		ids[r * 2] = ((int64_t)1 << 40) + seed + r; /* the high word must survive */
		ids[r * 2 + 1] = -5 * (int64_t)r;
		k[r] = (int32_t)(seed * 3 + r);
	}
}

static int mixed_ok(uint32_t rows, const float *dense, const int64_t *ids, const int32_t *k,
		    const float *score, const int64_t *cls, const float *pair)
{
	for (uint32_t r = 0; r < rows; r++)
		if (score[r] != dense[r * 3] + dense[r * 3 + 1] + dense[r * 3 + 2] ||
		    cls[r] != ids[r * 2] * 1000 + ids[r * 2 + 1] + k[r] ||
		    pair[r * 2] != 2.0f * dense[r * 3] || pair[r * 2 + 1] != (float)k[r])
			return 0;
	return 1;
}

/* Typed requests over version 2, sync and async, and their misuse. */
static void test_tensors(qv_udp_client *c)
{
	struct qv_model_desc d, dl;
	struct qv_result res;
	float dense[3][12], score[3][4], pair[3][8];
	int64_t ids[3][8], cls[3][4];
	int32_t k[3][4];

	CHECK(qv_udp_lookup(c, "mixed", &d) == 0);
	CHECK(d.handle == 11 && d.in_dim == 8 && d.out_dim == 5 && d.n_inputs == 3 &&
	      d.n_outputs == 3);
	CHECK(d.inputs[1].dtype == QV_TENSOR_INT64 && d.inputs[1].packed_off == 12 &&
	      strcmp(d.outputs[2].name, "pair") == 0 && d.outputs[1].row_bytes == 8);
	for (uint32_t rows = 1; rows <= 4; rows++) {
		float dn[12], sc[4], pr[8];
		int64_t id[8], cl[4];
		int32_t kk[4];
		const void *in[3] = { dn, id, kk };
		void *out[3] = { sc, cl, pr };
		size_t caps[3] = { rows * 4, rows * 8, rows * 8 };
		struct qv_tensors t = { 3, 3, in, out, caps };
		struct qv_request rq = { .handle = 11, .rows = rows, .request_id = 70 + rows };

		mixed_inputs(rows, dn, id, kk, rows);
		CHECK(qv_udp_infer_tensors(c, &rq, &t, 1000, &res) == 0);
		CHECK(res.status == QV_OK && res.request_id == 70 + rows && res.out_floats == rows * 5);
		CHECK(mixed_ok(rows, dn, id, kk, sc, cl, pr));
	}
	for (uint32_t i = 0; i < 3; i++) {
		const void *in[3] = { dense[i], ids[i], k[i] };
		void *out[3] = { score[i], cls[i], pair[i] };
		size_t caps[3] = { sizeof(score[i]), sizeof(cls[i]), sizeof(pair[i]) };
		struct qv_tensors t = { 3, 3, in, out, caps };
		struct qv_request rq = { .handle = 11, .rows = 1 + i, .request_id = 80 + i };

		mixed_inputs(1 + i, dense[i], ids[i], k[i], 10 + i);
		CHECK(qv_udp_submit_tensors(c, &rq, &t) == 0);
	}
	for (uint32_t n = 0; n < 3; n++) {
		res = poll_one(c);
		uint32_t i = (uint32_t)(res.request_id - 80);
		CHECK(i < 3 && res.status == QV_OK);
		if (i < 3)
			CHECK(mixed_ok(1 + i, dense[i], ids[i], k[i], score[i], cls[i], pair[i]));
	}

	/* misuse: refused before anything is sent */
	{
		const void *in[3] = { dense[0], ids[0], k[0] };
		void *out[3] = { score[0], cls[0], pair[0] };
		size_t caps[3] = { 4, 7, 8 };
		struct qv_tensors t = { 3, 3, in, out, caps };
		struct qv_request rq = { .handle = 11, .rows = 1 };

		CHECK(qv_udp_infer_tensors(c, &rq, &t, 100, &res) == -ENOBUFS);
		caps[1] = 8;
		t.n_inputs = 1;
		CHECK(qv_udp_submit_tensors(c, &rq, &t) == -EINVAL);
		t.n_inputs = 3;
		CHECK(qv_udp_infer_tensors(c, &rq, NULL, 100, &res) == -EINVAL);
		rq.rows = 5;
		CHECK(qv_udp_infer_tensors(c, &rq, &t, 100, &res) == -EINVAL);
		rq.rows = 1;
		rq.handle = 99;
		CHECK(qv_udp_infer_tensors(c, &rq, &t, 100, &res) == -ENOENT);
		CHECK(qv_udp_inflight(c) == 0);

		/* a reply naming another count of outputs: BAD_SHAPE, nothing written */
		CHECK(qv_udp_lookup(c, "mixed-liar", &dl) == 0 && dl.handle == 12);
		rq.handle = 12;
		memset(score[0], 0xee, sizeof(score[0]));
		CHECK(qv_udp_infer_tensors(c, &rq, &t, 1000, &res) == 0);
		CHECK(res.status == QV_BAD_SHAPE && res.out_floats == 0);
		CHECK(((uint32_t *)score[0])[0] == 0xeeeeeeeeu);
	}

	/* a model described in version 1 through the typed call: one float
	 * tensor each way, sent in version 1 */
	{
		float x[4] = { 1, 2, 3, 4 }, y[2] = { 0, 0 };
		const void *in[1] = { x };
		void *out[1] = { y };
		size_t caps[1] = { sizeof(y) };
		struct qv_tensors t = { 1, 1, in, out, caps };
		struct qv_request rq = { .handle = 1, .rows = 2, .request_id = 90 };

		CHECK(qv_udp_infer_tensors(c, &rq, &t, 1000, &res) == 0);
		CHECK(res.status == QV_OK && y[0] == 3 && y[1] == 7);
	}
}

int main(void)
{
	uint16_t port = 0;
	struct qv_model_desc sum, lossy, liar, d;
	struct qv_result res;
	qv_udp_client *c;
	pthread_t th;
	char ap[64];
	float in[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, out[4];

	srv_fd = udp_bind_loopback(&port);
	CHECK(pthread_create(&th, NULL, server, NULL) == 0);
	snprintf(ap, sizeof(ap), "127.0.0.1:%u", port);

	CHECK(qv_udp_connect("127.0.0.1", NULL, &c) == -EINVAL);
	CHECK(qv_udp_connect("::1:80", NULL, &c) == -EINVAL);
	/* A destination needs a port: 0 is only for binding (the server's side). */
	CHECK(qv_udp_connect("127.0.0.1:0", NULL, &c) == -EINVAL);
	CHECK(qv_udp_connect("[::1]:65536", NULL, &c) == -EINVAL);
	CHECK(qv_udp_connect(ap, &(struct qv_udp_opts){ .max_inflight = 4, .timeout_ms = 100 },
			     &c) == 0);
	CHECK(qv_udp_lookup(c, "sum", &sum) == 0 && sum.handle == 1 && sum.in_dim == 2);
	CHECK(sum.n_inputs == 1 && sum.n_outputs == 1 && sum.inputs[0].row_bytes == 8 &&
	      sum.outputs[0].dtype == QV_TENSOR_FLOAT32);
	CHECK(qv_udp_lookup(c, "lossy", &lossy) == 0 && lossy.handle == 2);
	CHECK(qv_udp_lookup(c, "liar", &liar) == 0 && liar.handle == 3);
	CHECK(qv_udp_lookup(c, "nope", &d) == -ENOENT);
	/* A version 1 server: the lookup falls back to version 1. */
	CHECK(qv_udp_lookup(c, "old", &d) == 0 && d.handle == 1 && d.n_inputs == 1 &&
	      d.inputs[0].row_bytes == 8 && atomic_load(&old_v2_refused) >= 1);
	CHECK(qv_udp_lookup(c, "", &d) == -EINVAL);

	/* a normal round trip: out = a + b per row */
	struct qv_request rq = { .handle = 1, .rows = 4, .input = in, .request_id = 5 };
	CHECK(qv_udp_infer(c, &rq, out, 4, 1000, &res) == 0);
	CHECK(res.status == QV_OK && res.request_id == 5 && res.out_floats == 4);
	CHECK(out[0] == 3 && out[1] == 7 && out[2] == 11 && out[3] == 15);

	/* loss, sync: -ETIMEDOUT, nothing left in flight */
	struct qv_request rl = { .handle = 2, .rows = 1, .input = in, .request_id = 6 };
	CHECK(qv_udp_infer(c, &rl, out, 4, 50, &res) == -ETIMEDOUT);
	CHECK(qv_udp_inflight(c) == 0);

	/* loss, async: QV_UNAVAILABLE after timeout_ms; the good one is OK */
	rl.request_id = 7;
	atomic_store(&lossy_id, 0);
	CHECK(qv_udp_submit(c, &rl, out, 4) == 0);
	while (atomic_load(&lossy_id) == 0)
		usleep(1000);
	uint64_t expired_id = atomic_load(&lossy_id);
	struct qv_request r1 = { .handle = 1, .rows = 1, .input = in, .request_id = 8 };
	float o1[1] = { 0 };
	CHECK(qv_udp_submit(c, &r1, o1, 1) == 0);
	CHECK(qv_udp_inflight(c) == 2);
	res = poll_one(c);
	CHECK(res.request_id == 8 && res.status == QV_OK && o1[0] == 3);
	res = poll_one(c);
	CHECK(res.request_id == 7 && res.status == QV_UNAVAILABLE && res.out_floats == 0);
	CHECK(qv_udp_inflight(c) == 0);

	/* a late reply to the expired request, while a new request holds the
	 * same table slot: dropped and counted, the new one unaffected */
	uint64_t stray0 = qv_udp_stray(c);
	float o2[1] = { -1 };
	struct qv_request r2 = { .handle = 1, .rows = 1, .input = in + 2, .request_id = 9 };
	CHECK(qv_udp_submit(c, &r2, o2, 1) == 0);
	atomic_store(&lossy_id, expired_id);
	atomic_store(&send_late, true);
	res = poll_one(c);
	CHECK(res.request_id == 9 && res.status == QV_OK && o2[0] == 7);
	uint64_t t0 = mono_ms();
	while (qv_udp_stray(c) == stray0) {
		CHECK(qv_udp_poll(c, &res, 1) == 0);
		CHECK(mono_ms() - t0 < 10000);
		usleep(1000);
	}
	CHECK(qv_udp_stray(c) == stray0 + 1);

	/* a reply larger than the caller's buffer: BAD_SHAPE, buffer intact */
	float guard[2] = { -5, -5 };
	struct qv_request r3 = { .handle = 3, .rows = 1, .input = in, .request_id = 10 };
	CHECK(qv_udp_infer(c, &r3, guard, 1, 1000, &res) == 0);
	CHECK(res.status == QV_BAD_SHAPE && res.out_floats == 0 && guard[0] == -5 && guard[1] == -5);

	/* max_inflight, then -EAGAIN */
	for (int i = 0; i < 4; i++)
		CHECK(qv_udp_submit(c, &rl, out, 4) == 0);
	CHECK(qv_udp_submit(c, &rl, out, 4) == -EAGAIN);
	for (int i = 0; i < 4; i++)
		CHECK(poll_one(c).status == QV_UNAVAILABLE);
	CHECK(qv_udp_inflight(c) == 0);

	test_tensors(c);

	qv_udp_close(c);
	atomic_store(&stop, true);
	pthread_join(th, NULL);
	close(srv_fd);
	printf("udp client: ok\n");
	return 0;
}
