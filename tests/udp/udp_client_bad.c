/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp_client_bad.c - libquiver's qv_udp_* client against a lying server:
 * a plain UDP socket on 127.0.0.1 in a thread that answers with crafted
 * replies. Every impossible reply must give the caller a precise error and
 * never touch memory it should not:
 *  - LOOKUP records with a rank over 8, a zero in/out dim, a zero max_batch
 *    or an error status other than UNKNOWN_MODEL: -EPROTO, and the handle
 *    stays unusable (-ENOENT); a record of the wrong size is not a reply
 *    (counted as stray): -ETIMEDOUT;
 *  - INFER replies with a status >= QV_STATUS_COUNT: 0 with QV_INTERNAL;
 *    shorter than a header, with another request's id, a wrong magic or
 *    type, or a payload_bytes that disagrees with the datagram: stray,
 *    counted, the request times out; an OK reply with more outputs than the
 *    caller's buffer, fewer or more than rows * out_dim, or a size that is
 *    not whole floats: QV_BAD_SHAPE with the caller's buffer untouched;
 *    the same through submit/poll, and the client still serves after.
 *
 * Model "m" (handle 1, 2 floats in, 1 out, max batch 4) is honest; the
 * first input float of a request picks how the server lies (enum lie).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "quiver.h"
#include "udp_test_util.h"

enum lie {
	HONEST = 0,
	STATUS_COUNT,           /* status == QV_STATUS_COUNT */
	STATUS_HUGE,            /* status == UINT32_MAX */
	SHORT,                  /* 20 bytes: less than a reply header */
	OTHER_ID,               /* same table index, another sequence */
	OTHER_INDEX,            /* an index past max_inflight */
	BAD_MAGIC,
	LOOKUP_TYPE,            /* a LOOKUP_REPLY to an INFER */
	REQUEST_TYPE,           /* type INFER: a request, not a reply */
	PAYLOAD_FIELD,          /* payload_bytes says 8, the datagram has 4 */
	HUGE_OUT,               /* 64 floats */
	NO_OUT,                 /* OK with no floats */
	TWO_OUT,                /* 2 floats for one row of out_dim 1 */
	ODD_BYTES,              /* 6 bytes: not whole floats */
};

static int srv_fd;
static atomic_bool stop;

/* Where the server builds its replies (only its thread writes it). */
static _Alignas(8) uint8_t rep_buf[2048];

static void answer_lookup(const struct sockaddr_in *from, const struct qv_udp_req_hdr *h,
			  const char *name)
{
	struct qv_udp_model m;
	uint32_t status = QV_OK, bytes = sizeof(m);

	memset(&m, 0, sizeof(m));
	m.handle = 1;
	m.version = 1;
	m.in_dim = 2;
	m.out_dim = 1;
	m.max_batch = 4;
	m.in_rank = 2;
	m.out_rank = 2;
	m.in_shape[0] = m.out_shape[0] = -1;
	m.in_shape[1] = 2;
	m.out_shape[1] = 1;
	snprintf(m.name, sizeof(m.name), "%s", name);
	if (strcmp(name, "m") != 0)
		m.handle = 9; /* a liar's handle: must never become usable */
	if (!strcmp(name, "in_rank9"))
		m.in_rank = 9;
	else if (!strcmp(name, "out_rank9"))
		m.out_rank = 9;
	else if (!strcmp(name, "rank_huge"))
		m.in_rank = UINT32_MAX;
	else if (!strcmp(name, "in_dim0"))
		m.in_dim = 0;
	else if (!strcmp(name, "out_dim0"))
		m.out_dim = 0;
	else if (!strcmp(name, "batch0"))
		m.max_batch = 0;
	else if (!strcmp(name, "status_internal"))
		status = QV_INTERNAL, bytes = 0;
	else if (!strcmp(name, "status_huge"))
		status = UINT32_MAX, bytes = 0;
	else if (!strcmp(name, "short_record"))
		bytes = sizeof(m) - 8;
	else if (!strcmp(name, "nope"))
		status = QV_UNKNOWN_MODEL, bytes = 0;
	send_dg(srv_fd, rep_buf,
		mk_rep(rep_buf, QV_UDP_LOOKUP_REPLY, status, h->request_id, &m, bytes, bytes), from);
}

/* The reply each lie sends: type, status, payload bytes sent and claimed
 * in the header, the datagram's length if not header + bytes, and a magic
 * flipped by magic_xor. HONEST's size and the two id lies depend on the
 * request and are set in answer_infer. */
struct lie_rep {
	uint8_t type;
	uint32_t status, bytes, claimed, magic_xor;
	size_t send_len;
};

static const struct lie_rep lies[] = {
	[HONEST] = { .type = QV_UDP_INFER_REPLY, .status = QV_OK },
	[STATUS_COUNT] = { .type = QV_UDP_INFER_REPLY, .status = QV_STATUS_COUNT },
	[STATUS_HUGE] = { .type = QV_UDP_INFER_REPLY, .status = UINT32_MAX },
	[SHORT] = { .type = QV_UDP_INFER_REPLY, .status = QV_OK, .send_len = 20 },
	[OTHER_ID] = { .type = QV_UDP_INFER_REPLY, .status = QV_OK, .bytes = 4, .claimed = 4 },
	[OTHER_INDEX] = { .type = QV_UDP_INFER_REPLY, .status = QV_OK, .bytes = 4, .claimed = 4 },
	[BAD_MAGIC] = { .type = QV_UDP_INFER_REPLY, .status = QV_OK, .bytes = 4, .claimed = 4,
			.magic_xor = 1 },
	[LOOKUP_TYPE] = { .type = QV_UDP_LOOKUP_REPLY, .status = QV_OK, .bytes = 4, .claimed = 4 },
	[REQUEST_TYPE] = { .type = QV_UDP_INFER, .status = QV_OK, .bytes = 4, .claimed = 4 },
	[PAYLOAD_FIELD] = { .type = QV_UDP_INFER_REPLY, .status = QV_OK, .bytes = 4, .claimed = 8 },
	[HUGE_OUT] = { .type = QV_UDP_INFER_REPLY, .status = QV_OK, .bytes = 64 * 4,
		       .claimed = 64 * 4 },
	[NO_OUT] = { .type = QV_UDP_INFER_REPLY, .status = QV_OK },
	[TWO_OUT] = { .type = QV_UDP_INFER_REPLY, .status = QV_OK, .bytes = 8, .claimed = 8 },
	[ODD_BYTES] = { .type = QV_UDP_INFER_REPLY, .status = QV_OK, .bytes = 6, .claimed = 6 },
};
_Static_assert(sizeof(lies) / sizeof(lies[0]) == ODD_BYTES + 1, "a reply for every lie");

static void answer_infer(const struct sockaddr_in *from, const struct qv_udp_req_hdr *h,
			 const float *in)
{
	float out[64];
	uint64_t id = h->request_id;
	int lie = (int)in[0];

	CHECK(lie >= 0 && lie <= ODD_BYTES && lies[lie].type != 0); /* a lie it knows */
	struct lie_rep l = lies[lie];
	for (int i = 0; i < 64; i++)
		out[i] = 100.0f + (float)i;
	out[0] = in[0] + in[1];
	if (lie == HONEST)
		l.bytes = l.claimed = 4 * h->rows;
	else if (lie == OTHER_ID)
		id += 1ull << 32;                           /* same table index */
	else if (lie == OTHER_INDEX)
		id = (id & ~0xffffffffull) | 0x7fffffffu;   /* past max_inflight */
	size_t len = mk_rep(rep_buf, l.type, l.status, id, out, l.bytes, l.claimed);
	if (l.magic_xor) {
		uint32_t magic = QV_UDP_MAGIC ^ l.magic_xor;

		memcpy(rep_buf + offsetof(struct qv_udp_rep_hdr, magic), &magic, sizeof(magic));
	}
	send_dg(srv_fd, rep_buf, l.send_len ? l.send_len : len, from);
}

static void *server(void *arg)
{
	static _Alignas(8) uint8_t buf[QV_UDP_MAX_DATAGRAM + 1];

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		struct sockaddr_in from;
		struct qv_udp_req_hdr h;

		if (recv_req(srv_fd, buf, sizeof(buf), 5, &h, &from) == 0)
			continue;
		if (h.type == QV_UDP_LOOKUP) {
			char name[QV_UDP_NAME_MAX] = { 0 };

			memcpy(name, buf + sizeof(h),
			       h.payload_bytes < sizeof(name) - 1 ? h.payload_bytes : sizeof(name) - 1);
			answer_lookup(&from, &h, name);
			continue;
		}
		CHECK(h.type == QV_UDP_INFER && h.handle == 1 && h.payload_bytes == h.rows * 8);
		float in[8];
		memcpy(in, buf + sizeof(h), h.payload_bytes < sizeof(in) ? h.payload_bytes : sizeof(in));
		answer_infer(&from, &h, in);
	}
	return NULL;
}

/* One 1-row request lying `lie`, out_cap floats of room (guarded past). */
static int infer_lie(qv_udp_client *c, enum lie lie, size_t out_cap, uint32_t timeout_ms,
		     struct qv_result *res, float *guard, size_t guard_n)
{
	float in[2] = { (float)lie, 1.0f };
	struct qv_request rq = { .handle = 1, .rows = 1, .input = in, .request_id = 40 + lie };

	for (size_t i = 0; i < guard_n; i++)
		guard[i] = -7.0f;
	memset(res, 0xa5, sizeof(*res));
	return qv_udp_infer(c, &rq, guard, out_cap, timeout_ms, res);
}

static bool untouched(const float *g, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (g[i] != -7.0f)
			return false;
	return true;
}

int main(void)
{
	uint16_t port = 0;
	struct qv_model_desc d, m;
	struct qv_result res;
	qv_udp_client *c;
	pthread_t th;
	char ap[64];
	float g[8];
	uint64_t s0;

	srv_fd = udp_bind_loopback(&port);
	CHECK(pthread_create(&th, NULL, server, NULL) == 0);
	snprintf(ap, sizeof(ap), "127.0.0.1:%u", port);
	CHECK(qv_udp_connect(ap, &(struct qv_udp_opts){ .max_inflight = 4, .timeout_ms = 200 },
			     &c) == 0);

	/* ---- LOOKUP: impossible records ---- */
	static const char *const eproto[] = { "in_rank9", "out_rank9", "rank_huge", "in_dim0",
					      "out_dim0", "batch0",    "status_internal",
					      "status_huge" };
	for (size_t i = 0; i < sizeof(eproto) / sizeof(eproto[0]); i++) {
		/* An honest answer first, so no earlier record lingers in the
		 * client to make a lie look plausible. */
		CHECK(qv_udp_lookup(c, "m", &m) == 0);
		memset(&d, 0x5a, sizeof(d));
		int r = qv_udp_lookup(c, eproto[i], &d);
		if (r != -EPROTO) {
			fprintf(stderr, "lookup %s: %d, want -EPROTO\n", eproto[i], r);
			exit(1);
		}
		CHECK(d.handle == 0x5a5a5a5au); /* ret_desc untouched on failure */
	}
	CHECK(qv_udp_lookup(c, "nope", &d) == -ENOENT);
	/* None of the liars' records was kept: handle 9 is still unknown. */
	float in[2] = { 0, 1 };
	struct qv_request r9 = { .handle = 9, .rows = 1, .input = in };
	CHECK(qv_udp_infer(c, &r9, g, 8, 100, &res) == -ENOENT);

	/* ---- the honest model, so INFER replies can lie ---- */
	CHECK(qv_udp_lookup(c, "m", &m) == 0 && m.handle == 1 && m.in_dim == 2 && m.out_dim == 1 &&
	      m.max_batch == 4 && m.in_rank == 2);
	CHECK(infer_lie(c, HONEST, 1, 1000, &res, g, 8) == 0);
	CHECK(res.status == QV_OK && res.out_floats == 1 && res.request_id == 40 && g[0] == 1.0f &&
	      untouched(g + 1, 7));

	/* a status the client does not know: QV_INTERNAL, nothing written */
	CHECK(infer_lie(c, STATUS_COUNT, 8, 1000, &res, g, 8) == 0);
	CHECK(res.status == QV_INTERNAL && res.out_floats == 0 && untouched(g, 8));
	CHECK(infer_lie(c, STATUS_HUGE, 8, 1000, &res, g, 8) == 0);
	CHECK(res.status == QV_INTERNAL && res.out_floats == 0 && untouched(g, 8));

	/* not a reply to this request: stray (exactly one), then -ETIMEDOUT */
	static const enum lie strays[] = { SHORT, OTHER_ID, OTHER_INDEX, BAD_MAGIC, LOOKUP_TYPE,
					   REQUEST_TYPE, PAYLOAD_FIELD };
	for (size_t i = 0; i < sizeof(strays) / sizeof(strays[0]); i++) {
		s0 = qv_udp_stray(c);
		int r = infer_lie(c, strays[i], 8, 1000, &res, g, 8);
		if (r != -ETIMEDOUT || qv_udp_stray(c) != s0 + 1 || !untouched(g, 8)) {
			fprintf(stderr, "lie %d: infer %d, stray +%llu, want -ETIMEDOUT, +1\n",
				(int)strays[i], r, (unsigned long long)(qv_udp_stray(c) - s0));
			exit(1);
		}
		CHECK(qv_udp_inflight(c) == 0);
	}

	/* outputs the caller did not ask for: QV_BAD_SHAPE, buffer untouched */
	static const enum lie shapes[] = { HUGE_OUT, NO_OUT, TWO_OUT, ODD_BYTES };
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		int r = infer_lie(c, shapes[i], shapes[i] == HUGE_OUT ? 1 : 8, 1000, &res, g, 8);
		if (r != 0 || res.status != QV_BAD_SHAPE || res.out_floats != 0 || !untouched(g, 8)) {
			fprintf(stderr, "lie %d: infer %d status %d floats %u, want BAD_SHAPE\n",
				(int)shapes[i], r, (int)res.status, res.out_floats);
			exit(1);
		}
	}

	/* the same through submit/poll, and the client still works after */
	float in2[2] = { (float)STATUS_COUNT, 1 }, o[8];
	struct qv_request rq = { .handle = 1, .rows = 1, .input = in2, .request_id = 99 };
	CHECK(qv_udp_submit(c, &rq, o, 8) == 0);
	int got = 0;
	for (int spin = 0; spin < 10000 && got == 0; spin++) {
		got = qv_udp_poll(c, &res, 1);
		CHECK(got >= 0);
		if (got == 0)
			usleep(100);
	}
	CHECK(got == 1 && res.request_id == 99 && res.status == QV_INTERNAL && res.out_floats == 0);
	CHECK(infer_lie(c, HONEST, 1, 1000, &res, g, 8) == 0 && res.status == QV_OK && g[0] == 1.0f);

	/* Last: the lookup is resent within its timeout, so late answers
	 * may still arrive as strays after it returns. */
	s0 = qv_udp_stray(c);
	CHECK(qv_udp_lookup(c, "short_record", &d) == -ETIMEDOUT);
	CHECK(qv_udp_stray(c) > s0);
	CHECK(qv_udp_infer(c, &r9, g, 8, 100, &res) == -ENOENT);

	qv_udp_close(c);
	atomic_store_explicit(&stop, true, memory_order_relaxed);
	pthread_join(th, NULL);
	close(srv_fd);
	printf("udp client against a lying server: ok\n");
	return 0;
}
