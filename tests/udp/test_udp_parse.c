/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_udp_parse.c - qv_udp_parse_request on every class of datagram: the
 * valid ones, and each way a datagram can be junk (dropped) or bad
 * (answered QV_BAD_REQUEST).
 */
#include <stdint.h>

#include "udp.h"
#include "udp_test_util.h"

static _Alignas(16) uint8_t buf[QV_UDP_MAX_DATAGRAM + 64];

static enum qv_udp_verdict parse(size_t len, bool trunc, struct qv_udp_parsed *p)
{
	return qv_udp_parse_request(buf, len, trunc, p);
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
	req_hdr(buf)->version = 2;
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

	printf("udp parse: ok\n");
	return 0;
}
