/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_udp_parse.c - libFuzzer target for qv_udp_parse_request. Besides not
 * crashing, every verdict must be consistent with the datagram: a request
 * the parser accepts has a payload that lies inside the datagram and whole
 * rows of 4-byte words (after version 2's 16-byte prefix, whose tensor
 * count is 1..16), and a name that is NUL-terminated; every verdict that is
 * answered names a version the server speaks.
 * Built with -Dfuzz=true (clang -fsanitize=fuzzer); otherwise linked with
 * fuzz_replay.c and run over the seed corpus as a unit test.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "udp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qv_udp_parsed p;
	/* The first byte chooses the kernel's MSG_TRUNC flag. */
	bool trunc = size > 0 && (data[0] & 1);
	const uint8_t *d = size > 0 ? data + 1 : data;
	size_t n = size > 0 ? size - 1 : 0;

	switch (qv_udp_parse_request(d, n, trunc, &p)) {
	case QV_UDP_V_INFER:
		if (trunc || p.rows == 0 || p.in_bytes == 0 || p.in_bytes % (p.rows * 4u) != 0 ||
		    (size_t)p.in_off + p.in_bytes != n || n > QV_UDP_MAX_DATAGRAM)
			abort();
		if (p.version == QV_UDP_VERSION_TENSORS
			    ? p.n_tensors == 0 || p.n_tensors > 16 || p.in_off != 64 || d[4] != 2
			    : p.version != QV_UDP_VERSION || p.n_tensors != 0 || p.in_off != 48)
			abort();
		break;
	case QV_UDP_V_LOOKUP:
		if (trunc || strnlen(p.name, sizeof(p.name)) == sizeof(p.name) || p.name[0] == '\0' ||
		    memcmp(p.name, d + p.in_off, strlen(p.name)) != 0)
			abort();
		break;
	case QV_UDP_V_BAD:
		if (n < sizeof(struct qv_udp_req_hdr) || (p.reply_type & 0x80u) == 0 ||
		    (p.version != QV_UDP_VERSION && p.version != QV_UDP_VERSION_TENSORS))
			abort();
		break;
	case QV_UDP_V_JUNK:
		break;
	default:
		abort();
	}
	return 0;
}
