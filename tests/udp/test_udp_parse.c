/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_udp_parse.c - qv_udp_parse_request on every class of datagram: the
 * valid ones, and each way a datagram can be junk (dropped) or bad
 * (answered QV_BAD_REQUEST), in protocol versions 1 and 2; and the LOOKUP
 * reply of each version.
 */
#include <stdint.h>

#include "quiver.h"
#include "udp.h"
#include "udp_test_util.h"

static _Alignas(16) uint8_t buf[QV_UDP_MAX_DATAGRAM + 64];

static enum qv_udp_verdict parse(size_t len, bool trunc, struct qv_udp_parsed *p)
{
	return qv_udp_parse_request(buf, len, trunc, p);
}

/* A version 2 INFER: the 16-byte prefix (n_tensors, reserved) then rows. */
static size_t mk_req2(uint32_t n_tensors, uint32_t res_word, uint32_t rows, uint64_t id,
		      const void *rows_bytes, uint32_t bytes)
{
	uint8_t pl[1024];
	struct qv_udp_tensors_hdr th = { .n_tensors = n_tensors };
	size_t n;

	if (res_word)
		th.reserved[res_word - 1] = 1;
	memcpy(pl, &th, sizeof(th));
	memcpy(pl + sizeof(th), rows_bytes, bytes);
	n = mk_req(buf, QV_UDP_INFER, 7, rows, id, pl, (uint32_t)sizeof(th) + bytes);
	req_hdr(buf)->version = QV_UDP_VERSION_TENSORS;
	return n;
}

static void test_v2(void)
{
	struct qv_udp_parsed p;
	uint32_t words[16];
	size_t n;

	for (uint32_t i = 0; i < 16; i++)
		words[i] = 0x01010101u * i;
	/* valid: 3 tensors, 2 packed rows of 8 words */
	n = mk_req2(3, 0, 2, 42, words, sizeof(words));
	CHECK(parse(n, false, &p) == QV_UDP_V_INFER);
	CHECK(p.version == 2 && p.n_tensors == 3 && p.rows == 2 && p.in_off == 64 &&
	      p.in_bytes == 64 && p.request_id == 42 && p.handle == 7);
	CHECK(memcmp(buf + p.in_off, words, sizeof(words)) == 0);
	CHECK(p.reply_type == QV_UDP_INFER_REPLY);
	/* 16 tensors is the most */
	n = mk_req2(16, 0, 1, 1, words, 4);
	CHECK(parse(n, false, &p) == QV_UDP_V_INFER && p.n_tensors == 16);

	/* bad, answered in version 2 with the request id: */
	n = mk_req2(0, 0, 2, 43, words, sizeof(words)); /* no tensors */
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD && p.request_id == 43 && p.version == 2);
	n = mk_req2(17, 0, 2, 44, words, sizeof(words)); /* too many */
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD && p.request_id == 44);
	for (uint32_t k = 1; k <= 3; k++) { /* a reserved word not 0 */
		n = mk_req2(2, k, 2, 45, words, sizeof(words));
		CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	}
	n = mk_req2(2, 0, 1, 46, words, 0); /* a prefix and no rows */
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	n = mk_req(buf, QV_UDP_INFER, 7, 1, 47, words, 8); /* shorter than the prefix */
	req_hdr(buf)->version = QV_UDP_VERSION_TENSORS;
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD && p.version == 2);
	n = mk_req2(2, 0, 3, 48, words, sizeof(words)); /* 3 rows do not divide 16 words */
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	n = mk_req2(2, 0, 0, 49, words, sizeof(words)); /* zero rows */
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	n = mk_req2(2, 0, 2, 50, words, 30); /* not whole words */
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	n = mk_req2(2, 0, 2, 51, words, sizeof(words)); /* truncated by the kernel */
	CHECK(parse(n, true, &p) == QV_UDP_V_BAD);
	n = mk_req2(2, 0, 2, 52, words, sizeof(words)); /* payload_bytes lying */
	req_hdr(buf)->payload_bytes += 4;
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);

	/* an unknown version is answered in version 1, which every client reads */
	n = mk_req(buf, QV_UDP_INFER, 7, 1, 53, words, 16);
	req_hdr(buf)->version = 3;
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD && p.request_id == 53 && p.version == 1);
	/* version 1 is what it was: no tensor count, rows at 48 */
	n = mk_req(buf, QV_UDP_INFER, 7, 2, 54, words, 32);
	CHECK(parse(n, false, &p) == QV_UDP_V_INFER && p.version == 1 && p.n_tensors == 0 &&
	      p.in_off == 48 && p.in_bytes == 32);

	/* LOOKUP in version 2, and the replies of both versions */
	n = mk_req(buf, QV_UDP_LOOKUP, 0, 0, 55, "ctr", 3);
	req_hdr(buf)->version = QV_UDP_VERSION_TENSORS;
	CHECK(parse(n, false, &p) == QV_UDP_V_LOOKUP && p.version == 2 && strcmp(p.name, "ctr") == 0);
	{
		static struct qv_lookup_reply lr;
		static uint8_t out[QV_UDP_MAX_DATAGRAM];
		struct qv_udp_rep_hdr rh;
		struct qv_lookup_reply back;
		size_t len;

		memset(&lr, 0, sizeof(lr));
		lr.m.handle = 4;
		lr.m.version = 6;
		lr.m.in_dim = 5;
		lr.m.out_dim = 1;
		lr.m.max_batch = 8;
		snprintf(lr.m.name, sizeof(lr.m.name), "ctr");
		lr.n_inputs = 2;
		lr.n_outputs = 1;
		snprintf(lr.t[1].name, sizeof(lr.t[1].name), "ids");
		lr.t[1].dtype = 7;
		lr.t[1].index_bound = 1000;
		len = qv_udp_put_lookup_reply(out, &p, &lr);
		CHECK(len == 32 + 232 + 3 * 152);
		memcpy(&rh, out, sizeof(rh));
		CHECK(rh.version == 2 && rh.type == QV_UDP_LOOKUP_REPLY && rh.status == QV_OK &&
		      rh.payload_bytes == 232 + 3 * 152 && rh.request_id == 55);
		memset(&back, 0, sizeof(back));
		memcpy(&back, out + 32, len - 32);
		CHECK(back.n_inputs == 2 && back.n_outputs == 1 && back.m.handle == 4 &&
		      back.t[1].dtype == 7 && back.t[1].index_bound == 1000 &&
		      strcmp(back.t[1].name, "ids") == 0 && strcmp(back.m.name, "ctr") == 0);
		/* the same model asked in version 1: the 224-byte record */
		n = mk_req(buf, QV_UDP_LOOKUP, 0, 0, 56, "ctr", 3);
		CHECK(parse(n, false, &p) == QV_UDP_V_LOOKUP && p.version == 1);
		len = qv_udp_put_lookup_reply(out, &p, &lr);
		memcpy(&rh, out, sizeof(rh));
		CHECK(len == 32 + 224 && rh.version == 1 && rh.payload_bytes == 224);
		/* unknown model, each version */
		CHECK(qv_udp_put_lookup_reply(out, &p, NULL) == 32);
		memcpy(&rh, out, sizeof(rh));
		CHECK(rh.status == QV_UNKNOWN_MODEL && rh.version == 1);
	}
}

int main(void)
{
	struct qv_udp_parsed p;
	float in[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	size_t n;

	/* valid INFER: 3 rows of 4 floats */
	n = mk_req(buf, QV_UDP_INFER, 7, 3, 42, in, sizeof(in));
	req_hdr(buf)->budget_ns = 5000;
	req_hdr(buf)->routing_key = 99;
	CHECK(parse(n, false, &p) == QV_UDP_V_INFER);
	CHECK(p.handle == 7 && p.rows == 3 && p.request_id == 42 && p.in_bytes == 48);
	CHECK(p.budget_ns == 5000 && p.routing_key == 99 && p.in_off == 48);
	CHECK(memcmp(buf + p.in_off, in, sizeof(in)) == 0);

	/* valid LOOKUP */
	n = mk_req(buf, QV_UDP_LOOKUP, 0, 0, 5, "trade-mlp", 9);
	CHECK(parse(n, false, &p) == QV_UDP_V_LOOKUP);
	CHECK(strcmp(p.name, "trade-mlp") == 0 && p.request_id == 5);
	CHECK(p.reply_type == QV_UDP_LOOKUP_REPLY);

	/* junk: too short for a header (every length below 48), NULL */
	n = mk_req(buf, QV_UDP_INFER, 7, 1, 1, in, 16);
	for (size_t l = 0; l < sizeof(struct qv_udp_req_hdr); l++)
		CHECK(parse(l, false, &p) == QV_UDP_V_JUNK);
	CHECK(qv_udp_parse_request(NULL, 100, false, &p) == QV_UDP_V_JUNK);

	/* junk: wrong magic */
	n = mk_req(buf, QV_UDP_INFER, 7, 1, 1, in, 16);
	req_hdr(buf)->magic ^= 1;
	CHECK(parse(n, false, &p) == QV_UDP_V_JUNK);

	/* junk: a reply (never answered), valid otherwise */
	n = mk_req(buf, QV_UDP_INFER_REPLY, 7, 1, 1, in, 16);
	CHECK(parse(n, false, &p) == QV_UDP_V_JUNK);
	n = mk_req(buf, 0xff, 7, 1, 1, in, 16);
	CHECK(parse(n, false, &p) == QV_UDP_V_JUNK);

	/* bad: wrong version, answered with the request id */
	n = mk_req(buf, QV_UDP_INFER, 7, 1, 77, in, 16);
	req_hdr(buf)->version = 0;
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD && p.request_id == 77);
	CHECK(p.reply_type == QV_UDP_INFER_REPLY);

	/* bad: unknown type, flags, reserved */
	n = mk_req(buf, 9, 7, 1, 1, in, 16);
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	n = mk_req(buf, QV_UDP_INFER, 7, 1, 1, in, 16);
	req_hdr(buf)->flags = 1;
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	n = mk_req(buf, QV_UDP_INFER, 7, 1, 1, in, 16);
	req_hdr(buf)->reserved = 1;
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);

	/* bad: truncated by the kernel (oversize datagram) */
	n = mk_req(buf, QV_UDP_INFER, 7, 1, 1, in, 16);
	CHECK(parse(n, true, &p) == QV_UDP_V_BAD);
	/* bad: longer than the protocol allows */
	n = mk_req(buf, QV_UDP_INFER, 7, 1, 1, in, 16);
	req_hdr(buf)->payload_bytes = QV_UDP_MAX_DATAGRAM; /* consistent with len below */
	CHECK(parse(QV_UDP_MAX_DATAGRAM + sizeof(struct qv_udp_req_hdr), false, &p) ==
	      QV_UDP_V_BAD);

	/* bad: payload_bytes lies (too big, too small), datagram cut short */
	n = mk_req(buf, QV_UDP_INFER, 7, 1, 1, in, 16);
	req_hdr(buf)->payload_bytes = 20;
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	req_hdr(buf)->payload_bytes = 12;
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	n = mk_req(buf, QV_UDP_INFER, 7, 1, 1, in, 16);
	CHECK(parse(n - 4, false, &p) == QV_UDP_V_BAD);

	/* bad: lying row counts */
	n = mk_req(buf, QV_UDP_INFER, 7, 0, 1, in, 16); /* zero rows */
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	n = mk_req(buf, QV_UDP_INFER, 7, 3, 1, in, 16); /* 4 floats in 3 rows */
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	n = mk_req(buf, QV_UDP_INFER, 7, 5, 1, in, 16); /* more rows than floats */
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	n = mk_req(buf, QV_UDP_INFER, 7, 0xffffffffu, 1, in, 16);
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	n = mk_req(buf, QV_UDP_INFER, 7, 1, 1, in, 0); /* no input */
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	n = mk_req(buf, QV_UDP_INFER, 7, 1, 1, in, 15); /* not whole floats */
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);

	/* bad lookups: empty name, too long, embedded NUL */
	n = mk_req(buf, QV_UDP_LOOKUP, 0, 0, 3, "", 0);
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD && p.reply_type == QV_UDP_LOOKUP_REPLY);
	char longname[80];
	memset(longname, 'a', sizeof(longname));
	n = mk_req(buf, QV_UDP_LOOKUP, 0, 0, 3, longname, QV_UDP_NAME_MAX);
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);
	n = mk_req(buf, QV_UDP_LOOKUP, 0, 0, 3, longname, QV_UDP_NAME_MAX - 1);
	CHECK(parse(n, false, &p) == QV_UDP_V_LOOKUP && strlen(p.name) == QV_UDP_NAME_MAX - 1);
	n = mk_req(buf, QV_UDP_LOOKUP, 0, 0, 3, "ab\0cd", 5);
	CHECK(parse(n, false, &p) == QV_UDP_V_BAD);

	/* random bytes: never INFER/LOOKUP unless the header happens to be
	 * valid, which with a random magic it is not. */
	uint64_t s = 88172645463325252ull;
	for (int it = 0; it < 20000; it++) {
		size_t len = 0;

		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		len = s % 200;
		for (size_t i = 0; i < len; i++) {
			s ^= s << 13, s ^= s >> 7, s ^= s << 17;
			buf[i] = (uint8_t)s;
		}
		enum qv_udp_verdict v = parse(len, false, &p);
		uint32_t magic;
		memcpy(&magic, buf, 4);
		CHECK(len < 48 || magic != QV_UDP_MAGIC ? v == QV_UDP_V_JUNK : 1);
	}

	/* the reply header writer */
	CHECK(qv_udp_put_reply_hdr(buf, QV_UDP_VERSION, QV_UDP_INFER_REPLY, 3, 9, 2, 1234, 16) == 32);
	struct qv_udp_rep_hdr rh;
	memcpy(&rh, buf, sizeof(rh));
	CHECK(rh.magic == QV_UDP_MAGIC && rh.version == QV_UDP_VERSION && rh.status == 3);
	CHECK(rh.version_served == 9 && rh.flags == 2 && rh.request_id == 1234);
	CHECK(rh.payload_bytes == 16 && rh.reserved == 0);
	/* bytes on the wire, not just the struct: magic reads "QUDP" */
	CHECK(memcmp(buf, "QUDP", 4) == 0 && buf[4] == 1 && buf[5] == 0x81);
	CHECK(buf[16] == (1234 & 0xff) && buf[17] == (1234 >> 8));

	test_v2();
	printf("udp parse: ok\n");
	return 0;
}
