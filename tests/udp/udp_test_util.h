/* SPDX-License-Identifier: Apache-2.0 */
/* udp_test_util.h - small helpers shared by the UDP tests. */
#ifndef QV_UDP_TEST_UTIL_H
#define QV_UDP_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qv_udp_proto.h"

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			exit(1);                                                     \
		}                                                                    \
	} while (0)

/* Builds a request datagram into buf; returns its length. */
static inline size_t mk_req(void *buf, uint8_t type, uint32_t handle, uint32_t rows,
			    uint64_t id, const void *payload, uint32_t payload_bytes)
{
	struct qv_udp_req_hdr h;

	memset(&h, 0, sizeof(h));
	h.magic = QV_UDP_MAGIC;
	h.version = QV_UDP_VERSION;
	h.type = type;
	h.handle = handle;
	h.rows = rows;
	h.request_id = id;
	h.payload_bytes = payload_bytes;
	memcpy(buf, &h, sizeof(h));
	if (payload_bytes)
		memcpy((char *)buf + sizeof(h), payload, payload_bytes);
	return sizeof(h) + payload_bytes;
}

static inline struct qv_udp_req_hdr *req_hdr(void *buf)
{
	return (struct qv_udp_req_hdr *)buf;
}

#endif
