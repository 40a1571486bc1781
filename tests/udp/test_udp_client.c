/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_udp_client.c - the qv_udp_* client against a scripted server thread
 * (plain sockets, no io_uring): loss becomes -ETIMEDOUT (sync) or
 * QV_UNAVAILABLE (async), a late reply to an expired request is dropped
 * and counted, not delivered to a newer request, and a reply larger than
 * the caller's buffer is QV_BAD_SHAPE, never an overflow.
 * Models served: "sum" (handle 1, 2 -> 1, out = a + b), "lossy" (handle 2,
 * never answered), "liar" (handle 3, out_dim 1 but answers 100 floats).
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
#include "udp_test_util.h"

static int srv_fd;
static atomic_bool stop;
static _Atomic uint64_t lossy_id;      /* last id of a "lossy" request */
static atomic_bool send_late;          /* answer that id now */

static void reply(const struct sockaddr_in *to, uint8_t type, uint32_t status, uint64_t id,
		  const void *payload, uint32_t bytes)
{
	static _Alignas(8) uint8_t buf[2048];

	send_dg(srv_fd, buf, mk_rep(buf, type, status, id, payload, bytes, bytes), to);
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
			memset(&m, 0, sizeof(m));
			m.in_dim = 2;
			m.out_dim = 1;
			m.max_batch = 4;
			m.version = 1;
			snprintf(m.name, sizeof(m.name), "%s", name);
			m.handle = !strcmp(name, "sum") ? 1 : !strcmp(name, "lossy") ? 2
							: !strcmp(name, "liar") ? 3 : 0;
			if (m.handle == 0)
				reply(&from, QV_UDP_LOOKUP_REPLY, QV_UNKNOWN_MODEL, h.request_id, NULL, 0);
			else
				reply(&from, QV_UDP_LOOKUP_REPLY, QV_OK, h.request_id, &m, sizeof(m));
			continue;
		}
		CHECK(h.type == QV_UDP_INFER && h.rows >= 1 && h.payload_bytes == h.rows * 8);
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
	CHECK(qv_udp_lookup(c, "lossy", &lossy) == 0 && lossy.handle == 2);
	CHECK(qv_udp_lookup(c, "liar", &liar) == 0 && liar.handle == 3);
	CHECK(qv_udp_lookup(c, "nope", &d) == -ENOENT);
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

	qv_udp_close(c);
	atomic_store(&stop, true);
	pthread_join(th, NULL);
	close(srv_fd);
	printf("udp client: ok\n");
	return 0;
}
