/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_udp_loopback.c - the io_uring back end on loopback, driven by the
 * real qv_udp_* client, with a fake worker defined here:
 *   "double" (handle 1): in_dim 4, out_dim 4, max_batch 8, out = 2 * in
 *   "big"    (handle 2): in_dim 5000 - does not fit one datagram
 * Checks: lookups, sync and async replies equal the reference, a burst
 * reaped in one turn reaches the worker as one qv_worker_serve_batch()
 * call of several items, junk is dropped or answered BAD_REQUEST and the
 * back end keeps serving, the allow-list holds, and the back end calls no
 * malloc per datagram.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "quiver.h"
#include "serve.h"
#include "udp.h"
#include "udp_test_util.h"
#include "worker.h"

/* ---- fake worker ------------------------------------------------------ */
/* The back end passes the worker through untouched: a zeroed one will do. */

static atomic_uint_fast64_t served;
static atomic_uint_fast32_t batch_max; /* most items one serve_batch call got */
static atomic_uint_fast64_t batch_calls, flushes;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void qv_worker_serve(struct qv_worker *w, const struct qv_serve_req *req,
		     struct qv_serve_res *ret)
{
	(void)w;
	atomic_fetch_add_explicit(&served, 1, memory_order_relaxed);
	memset(ret, 0, sizeof(*ret));
	ret->version = 3;
	if (req->handle != 1) {
		ret->status = QV_UNKNOWN_MODEL;
		return;
	}
	if (req->rows > 8 || req->in_bytes != req->rows * 4 * 4 || req->out_cap < req->rows * 16) {
		ret->status = QV_BAD_SHAPE;
		return;
	}
	if (req->deadline_ns != 0 && mono_ns() > req->deadline_ns) {
		ret->status = QV_DEADLINE_EXCEEDED;
		return;
	}
	CHECK(((uintptr_t)req->in & 3) == 0 && ((uintptr_t)req->out & 3) == 0);
	for (uint32_t i = 0; i < req->rows * 4; i++)
		req->out[i] = 2.0f * req->in[i];
	ret->status = QV_OK;
	ret->flags = req->routing_key == 7 ? QV_FLAG_CANARY : 0;
	ret->out_bytes = req->rows * 16;
}

/* What the real one promises a transport: every item not done gets res. */
void qv_worker_serve_batch(struct qv_worker *w, struct qv_batch_item *items, uint32_t n)
{
	uint32_t todo = 0;

	for (uint32_t i = 0; i < n; i++) {
		CHECK(items[i].chan == NULL);
		if (items[i].done)
			continue;
		qv_worker_serve(w, &items[i].req, &items[i].res);
		todo++;
	}
	CHECK(todo > 0); /* the back end calls only when it has INFERs */
	atomic_fetch_add_explicit(&batch_calls, 1, memory_order_relaxed);
	if (todo > atomic_load_explicit(&batch_max, memory_order_relaxed))
		atomic_store_explicit(&batch_max, todo, memory_order_relaxed);
}

void qv_worker_shadow_flush(struct qv_worker *w)
{
	(void)w;
	atomic_fetch_add_explicit(&flushes, 1, memory_order_relaxed);
}

int qv_worker_lookup(struct qv_worker *w, const char *name, const struct qv_lookup_reply **ret_lr)
{
	static struct qv_lookup_reply lr;
	struct qv_model_wire *ret = &lr.m;

	(void)w;
	lr.n_inputs = lr.n_outputs = 1;
	memset(ret, 0, sizeof(*ret));
	if (strcmp(name, "double") == 0) {
		ret->handle = 1;
		ret->in_dim = ret->out_dim = 4;
	} else if (strcmp(name, "big") == 0) {
		ret->handle = 2;
		ret->in_dim = 5000;
		ret->out_dim = 1;
	} else {
		return -ENOENT;
	}
	ret->version = 3;
	ret->max_batch = 8;
	ret->in_rank = ret->out_rank = 2;
	ret->in_shape[0] = ret->out_shape[0] = -1;
	ret->in_shape[1] = ret->in_dim;
	ret->out_shape[1] = ret->out_dim;
	snprintf(ret->name, sizeof(ret->name), "%s", name);
	/* One float tensor each way, as the daemon describes such a model. */
	for (int k = 0; k < 2; k++) {
		struct qv_tensor_wire *t = &lr.t[k];
		uint32_t dim = k ? ret->out_dim : ret->in_dim;

		memset(t, 0, sizeof(*t));
		snprintf(t->name, sizeof(t->name), "%s", k ? "y" : "x");
		t->dtype = 1;
		t->rank = 2;
		t->shape[0] = -1;
		t->shape[1] = dim;
		t->row_bytes = dim * 4;
	}
	*ret_lr = &lr;
	return 0;
}

/* Every malloc-family call made by the objects linked with --wrap (the back
 * end and this file); libc's and liburing's own calls are not counted. */
static atomic_uint_fast64_t allocs;
void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n)
{
	atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
	return __real_malloc(n);
}
void *__wrap_calloc(size_t a, size_t b)
{
	atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
	return __real_calloc(a, b);
}
void *__wrap_realloc(void *p, size_t n)
{
	atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
	return __real_realloc(p, n);
}

/* ---- server thread ---------------------------------------------------- */

static struct qv_udp_uring *srv_open, *srv_allow;
static atomic_bool stop;
static atomic_bool hold, held; /* main asks the server to pause polling */

static void *server(void *arg)
{
	static struct qv_worker w;

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (atomic_load(&hold)) {
			atomic_store(&held, true);
			while (atomic_load(&hold))
				sched_yield();
			atomic_store(&held, false);
		}
		int a = qv_udp_uring_poll(srv_open, &w);
		int b = qv_udp_uring_poll(srv_allow, &w);

		CHECK(a >= 0 && b >= 0);
		if (a + b == 0)
			sched_yield(); /* 2 cores shared with the client: be polite */
	}
	return NULL;
}

/* ---- raw-socket helpers ----------------------------------------------- */

static int raw_socket(const char *bind_ip, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	CHECK(fd >= 0);
	if (bind_ip) {
		CHECK(inet_pton(AF_INET, bind_ip, &a.sin_addr) == 1);
		CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	}
	a.sin_port = htons(port);
	CHECK(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr) == 1);
	CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	return fd;
}

/* Waits (up to 10 s: the machine may be loaded) for one datagram. */
static ssize_t raw_recv(int fd, void *buf, size_t cap)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	CHECK(poll(&p, 1, 10000) == 1);
	return recv(fd, buf, cap, 0);
}

static _Alignas(16) uint8_t dg[QV_UDP_MAX_DATAGRAM + 4096];
static _Alignas(16) uint8_t rep[QV_UDP_MAX_DATAGRAM + 16];

static void send_raw(int fd, size_t len)
{
	CHECK(send(fd, dg, len, 0) == (ssize_t)len);
}

/* Sends a valid 1-row request with `id` and returns the first reply: if a
 * junk datagram sent before had been answered, that answer would come
 * first (one socket, one thread: loopback keeps the order). */
static void expect_next_reply(int fd, uint64_t id, uint32_t status)
{
	float in[4] = { 1, 2, 3, 4 };
	struct qv_udp_rep_hdr h;
	ssize_t n;

	send_raw(fd, mk_req(dg, QV_UDP_INFER, 1, 1, id, in, sizeof(in)));
	n = raw_recv(fd, rep, sizeof(rep));
	CHECK(n >= (ssize_t)sizeof(h));
	memcpy(&h, rep, sizeof(h));
	if (h.request_id != id)
		fprintf(stderr, "expected reply %llu, got %llu status %u\n",
			(unsigned long long)id, (unsigned long long)h.request_id, h.status);
	CHECK(h.request_id == id && h.status == status);
}

/* Sends the datagram now in dg[0..len) and expects BAD_REQUEST for `id`. */
static void expect_bad(int fd, size_t len, uint64_t id)
{
	struct qv_udp_rep_hdr h;

	send_raw(fd, len);
	CHECK(raw_recv(fd, rep, sizeof(rep)) == (ssize_t)sizeof(h));
	memcpy(&h, rep, sizeof(h));
	CHECK(h.magic == QV_UDP_MAGIC && h.type == QV_UDP_INFER_REPLY);
	CHECK(h.request_id == id && h.status == QV_BAD_REQUEST && h.payload_bytes == 0);
}

static struct qv_udp_stats stats(struct qv_udp_uring *u)
{
	struct qv_udp_stats s;

	qv_udp_uring_stats(u, &s);
	return s;
}

int main(void)
{
	struct qv_allow_list only2;
	char ap[64];
	uint16_t port, port2;
	pthread_t th;
	qv_udp_client *c;
	struct qv_model_desc d;
	struct qv_result res;
	float in[32], out[32];
	int r;

	r = qv_udp_uring_open("127.0.0.1:0", NULL, -1, &srv_open);
	if (r == -ENOSYS || r == -EPERM || r == -EACCES) {
		printf("SKIP: io_uring unavailable here (%s)\n", strerror(-r));
		return 77;
	}
	CHECK(r == 0);
	memset(&only2, 0, sizeof(only2));
	CHECK(qv_allow_add(&only2, "127.0.0.2/32") == 0);
	CHECK(qv_udp_uring_open("127.0.0.1:0", &only2, 0, &srv_allow) == 0);
	port = qv_udp_uring_port(srv_open);
	port2 = qv_udp_uring_port(srv_allow);
	CHECK(port != 0 && port2 != 0 && port != port2);
	CHECK(pthread_create(&th, NULL, server, NULL) == 0);

	/* lookups */
	snprintf(ap, sizeof(ap), "127.0.0.1:%u", port);
	CHECK(qv_udp_connect(ap, &(struct qv_udp_opts){ .max_inflight = 32, .timeout_ms = 5000 },
			     &c) == 0);
	CHECK(qv_udp_lookup(c, "nope", &d) == -ENOENT);
	CHECK(qv_udp_lookup(c, "double", &d) == 0);
	CHECK(d.handle == 1 && d.in_dim == 4 && d.out_dim == 4 && d.max_batch == 8);
	CHECK(d.version == 3 && d.in_rank == 2 && d.in_shape[0] == -1 && d.in_shape[1] == 4);
	CHECK(strcmp(d.name, "double") == 0);

	/* sync: every batch size, outputs equal 2 * input exactly */
	for (uint32_t rows = 1; rows <= 8; rows++) {
		for (uint32_t i = 0; i < rows * 4; i++)
			in[i] = (float)(rows * 100 + i) * 0.37f - 5.0f;
		struct qv_request rq = { .handle = 1, .rows = rows, .input = in, .request_id = rows };
		memset(out, 0, sizeof(out));
		CHECK(qv_udp_infer(c, &rq, out, 32, 5000, &res) == 0);
		CHECK(res.status == QV_OK && res.request_id == rows && res.version == 3);
		CHECK(res.out_floats == rows * 4);
		for (uint32_t i = 0; i < rows * 4; i++)
			CHECK(out[i] == 2.0f * in[i]);
	}
	/* flags and deadline travel */
	struct qv_request rk = { .handle = 1, .rows = 1, .input = in, .routing_key = 7 };
	CHECK(qv_udp_infer(c, &rk, out, 32, 5000, &res) == 0 && res.flags == QV_FLAG_CANARY);
	rk.routing_key = 0;
	rk.deadline_ns = 1; /* long past: the server must say so */
	CHECK(qv_udp_infer(c, &rk, out, 32, 5000, &res) == 0);
	CHECK(res.status == QV_DEADLINE_EXCEEDED && res.out_floats == 0);

	/* client-side refusals: unknown handle, too many rows, too big, small out */
	struct qv_request rq = { .handle = 9, .rows = 1, .input = in };
	CHECK(qv_udp_infer(c, &rq, out, 32, 100, &res) == -ENOENT);
	rq.handle = 1;
	rq.rows = 9;
	CHECK(qv_udp_submit(c, &rq, out, 32) == -EINVAL);
	rq.rows = 2;
	CHECK(qv_udp_submit(c, &rq, out, 4) == -ENOBUFS);
	struct qv_model_desc big;
	CHECK(qv_udp_lookup(c, "big", &big) == 0 && big.in_dim == 5000);
	static float bigin[5000];
	struct qv_request rb = { .handle = 2, .rows = 1, .input = bigin };
	CHECK(qv_udp_submit(c, &rb, out, 32) == -EMSGSIZE);
	CHECK(qv_udp_inflight(c) == 0);

	/* async: 32 in flight, then a 33rd is refused, all come back */
	static float ain[32][8], aout[32][8];
	for (int i = 0; i < 32; i++) {
		for (int j = 0; j < 8; j++)
			ain[i][j] = (float)(i * 8 + j) + 0.25f;
		struct qv_request ra = { .handle = 1, .rows = 2, .input = ain[i],
					 .request_id = 1000 + (uint64_t)i };
		CHECK(qv_udp_submit(c, &ra, aout[i], 8) == 0);
	}
	struct qv_request rx = { .handle = 1, .rows = 1, .input = in };
	CHECK(qv_udp_submit(c, &rx, out, 32) == -EAGAIN);
	CHECK(qv_udp_inflight(c) == 32);
	bool seen[32] = { false };
	int got = 0;
	uint64_t t0 = mono_ns();
	while (got < 32) {
		struct qv_result rs[8];
		int n = qv_udp_poll(c, rs, 8);

		CHECK(n >= 0);
		for (int k = 0; k < n; k++) {
			int i = (int)(rs[k].request_id - 1000);

			CHECK(i >= 0 && i < 32 && !seen[i]);
			CHECK(rs[k].status == QV_OK && rs[k].out_floats == 8);
			for (int j = 0; j < 8; j++)
				CHECK(aout[i][j] == 2.0f * ain[i][j]);
			seen[i] = true;
			got++;
		}
		CHECK(mono_ns() - t0 < 20000000000ull);
	}
	CHECK(qv_udp_inflight(c) == 0);

	/* no malloc per datagram: 2000 more round trips, same count */
	uint64_t a0 = atomic_load(&allocs);
	struct qv_request rr = { .handle = 1, .rows = 1, .input = in };
	for (int i = 0; i < 2000; i++)
		CHECK(qv_udp_infer(c, &rr, out, 32, 5000, &res) == 0 && res.status == QV_OK);
	CHECK(atomic_load(&allocs) == a0);

	/* A burst: with the server paused, 8 requests queue up; its next turn
	 * reaps them together and answers through the ring (not one sendto
	 * each). All 8 answers come back right. */
	{
		int bfd = raw_socket(NULL, port);
		struct qv_udp_stats b0 = stats(srv_open), b1;
		float f8[4] = { 0.5f, 1.5f, 2.5f, 3.5f };
		bool got8[8] = { false };

		atomic_store(&hold, true);
		while (!atomic_load(&held))
			sched_yield();
		atomic_store(&batch_max, 0);
		for (uint64_t i = 0; i < 8; i++)
			send_raw(bfd, mk_req(dg, QV_UDP_INFER, 1, 1, 300 + i, f8, sizeof(f8)));
		atomic_store(&hold, false);
		for (int i = 0; i < 8; i++) {
			struct qv_udp_rep_hdr h;
			float o[4];

			CHECK(raw_recv(bfd, rep, sizeof(rep)) == 32 + 16);
			memcpy(&h, rep, sizeof(h));
			memcpy(o, rep + 32, sizeof(o));
			CHECK(h.status == QV_OK && h.request_id >= 300 && h.request_id < 308);
			CHECK(!got8[h.request_id - 300]);
			got8[h.request_id - 300] = true;
			for (int j = 0; j < 4; j++)
				CHECK(o[j] == 2.0f * f8[j]);
		}
		/* Ring sends are counted when their CQE is reaped, a turn
		 * after the datagram left: wait for the count. */
		uint64_t t1 = mono_ns();
		do {
			b1 = stats(srv_open);
			CHECK(mono_ns() - t1 < 10000000000ull);
		} while (b1.tx - b0.tx < 8);
		CHECK(b1.tx - b0.tx == 8);
		CHECK(b1.tx_direct - b0.tx_direct < 8); /* the ring path was taken */
		/* ...and a turn with several replies handed its INFERs to the
		 * worker as one batch. */
		CHECK(atomic_load(&batch_max) >= 2);
		close(bfd);
	}

	/* junk from a raw socket */
	struct qv_udp_stats s0 = stats(srv_open);
	uint64_t served0 = atomic_load(&served);
	int fd = raw_socket(NULL, port);
	float f4[4] = { 1, 2, 3, 4 };
	uint64_t junk_sent = 0;

	/* dropped silently: too short, wrong magic, reply types, random bytes */
	memset(dg, 0xab, 20);
	send_raw(fd, 20);
	send_raw(fd, 1);
	junk_sent += 2;
	size_t n = mk_req(dg, QV_UDP_INFER, 1, 1, 500, f4, 16);
	req_hdr(dg)->magic = 0x12345678;
	send_raw(fd, n);
	n = mk_req(dg, QV_UDP_INFER_REPLY, 1, 1, 501, f4, 16);
	send_raw(fd, n);
	junk_sent += 2;
	uint64_t xs = 0x9e3779b97f4a7c15ull;
	for (int it = 0; it < 300; it++) {
		size_t len = 1 + it % 200;

		for (size_t i = 0; i < len; i++) {
			xs ^= xs << 13, xs ^= xs >> 7, xs ^= xs << 17;
			dg[i] = (uint8_t)xs;
		}
		if (len >= 4 && memcmp(dg, "QUDP", 4) == 0)
			dg[0] = 0;
		send_raw(fd, len);
		junk_sent++;
	}
	expect_next_reply(fd, 600, QV_OK);

	/* answered BAD_REQUEST: wrong version, lying rows, zero rows, lying
	 * length, unknown type, oversize (truncated by the kernel) */
	n = mk_req(dg, QV_UDP_INFER, 1, 1, 701, f4, 16);
	req_hdr(dg)->version = 9;
	expect_bad(fd, n, 701);
	expect_bad(fd, mk_req(dg, QV_UDP_INFER, 1, 3, 702, f4, 16), 702);
	expect_bad(fd, mk_req(dg, QV_UDP_INFER, 1, 0, 703, f4, 16), 703);
	n = mk_req(dg, QV_UDP_INFER, 1, 1, 704, f4, 16);
	req_hdr(dg)->payload_bytes = 32;
	expect_bad(fd, n, 704);
	expect_bad(fd, mk_req(dg, 0x33, 1, 1, 705, f4, 16), 705);
	n = mk_req(dg, QV_UDP_INFER, 1, 1, 706, f4, 16);
	req_hdr(dg)->payload_bytes = QV_UDP_MAX_DATAGRAM + 1000;
	expect_bad(fd, sizeof(struct qv_udp_req_hdr) + QV_UDP_MAX_DATAGRAM + 1000, 706);
	/* parses, but the route refuses it: shapes are the worker's call */
	n = mk_req(dg, QV_UDP_INFER, 1, 1, 707, in, 32); /* 8 floats for 1 row of 4 */
	send_raw(fd, n);
	CHECK(raw_recv(fd, rep, sizeof(rep)) == 32);
	CHECK(((struct qv_udp_rep_hdr *)(void *)rep)->status == QV_BAD_SHAPE);
	n = mk_req(dg, QV_UDP_INFER, 77, 1, 708, f4, 16);
	send_raw(fd, n);
	CHECK(raw_recv(fd, rep, sizeof(rep)) == 32);
	CHECK(((struct qv_udp_rep_hdr *)(void *)rep)->status == QV_UNKNOWN_MODEL);
	expect_next_reply(fd, 800, QV_OK);

	struct qv_udp_stats s1 = stats(srv_open);
	CHECK(s1.junk - s0.junk == junk_sent);
	CHECK(s1.bad_request - s0.bad_request == 6);
	CHECK(s1.dropped_allow == 0);
	/* only the valid ones reached the worker */
	CHECK(atomic_load(&served) - served0 == 4);
	CHECK(s1.tx_direct > 0); /* lone replies went out with sendto */

	/* the client still works after all that */
	CHECK(qv_udp_infer(c, &rr, out, 32, 5000, &res) == 0 && res.status == QV_OK);
	CHECK(out[0] == 2.0f * in[0]);
	close(fd);
	qv_udp_close(c);

	/* allow-list: only 127.0.0.2 may talk to srv_allow */
	int bad_src = raw_socket("127.0.0.1", port2);
	int good_src = raw_socket("127.0.0.2", port2);
	struct qv_udp_stats a_0 = stats(srv_allow);
	for (int i = 0; i < 5; i++)
		send_raw(bad_src, mk_req(dg, QV_UDP_INFER, 1, 1, 900 + (uint64_t)i, f4, 16));
	send_raw(bad_src, mk_req(dg, QV_UDP_LOOKUP, 0, 0, 905, "double", 6));
	send_raw(good_src, mk_req(dg, QV_UDP_LOOKUP, 0, 0, 906, "double", 6));
	CHECK(raw_recv(good_src, rep, sizeof(rep)) == 32 + (ssize_t)sizeof(struct qv_udp_model));
	CHECK(((struct qv_udp_rep_hdr *)(void *)rep)->request_id == 906);
	/* The good datagram was sent last and answered, and one socket is
	 * served in order: the six before it were seen and dropped. */
	struct qv_udp_stats a_1 = stats(srv_allow);
	CHECK(a_1.dropped_allow - a_0.dropped_allow == 6);
	CHECK(a_1.lookups - a_0.lookups == 1);
	struct pollfd pf = { .fd = bad_src, .events = POLLIN };
	CHECK(poll(&pf, 1, 0) == 0); /* nothing ever came back to the outsider */
	close(bad_src);
	close(good_src);

	atomic_store(&stop, true);
	pthread_join(th, NULL);
	struct qv_udp_stats fin = stats(srv_open);
	/* a flush after every turn that served a batch, none without one */
	CHECK(atomic_load(&flushes) == atomic_load(&batch_calls));
	printf("udp loopback: ok (rx %llu tx %llu direct %llu junk %llu bad %llu rearm %llu "
	       "batch calls %llu)\n",
	       (unsigned long long)fin.rx, (unsigned long long)fin.tx,
	       (unsigned long long)fin.tx_direct,
	       (unsigned long long)fin.junk, (unsigned long long)fin.bad_request,
	       (unsigned long long)fin.rx_rearm, (unsigned long long)atomic_load(&batch_calls));
	qv_udp_uring_close(srv_open);
	qv_udp_uring_close(srv_allow);
	return 0;
}
