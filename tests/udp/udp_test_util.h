/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp_test_util.h - small helpers shared by the UDP tests: CHECK, request
 * and reply datagrams built from qv_udp_proto.h, a scripted server's
 * checked receive and send, and a free loopback port.
 */
#ifndef QV_UDP_TEST_UTIL_H
#define QV_UDP_TEST_UTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qv_udp_proto.h"

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			exit(1);                                                     \
		}                                                                    \
	} while (0)

/* A header followed by `bytes` of payload into buf; returns the length. */
static inline size_t put_dg(void *buf, const void *hdr, size_t hdr_bytes, const void *payload,
			    uint32_t bytes)
{
	memcpy(buf, hdr, hdr_bytes);
	if (bytes)
		memcpy((char *)buf + hdr_bytes, payload, bytes);
	return hdr_bytes + bytes;
}

/* Both wire headers are all fixed-width fields with no implicit padding
 * (their sizes are static-asserted), so the designated initialisers below
 * zero every byte not named. */

/* Builds a request datagram into buf; returns its length. */
static inline size_t mk_req(void *buf, uint8_t type, uint32_t handle, uint32_t rows,
			    uint64_t id, const void *payload, uint32_t payload_bytes)
{
	struct qv_udp_req_hdr h = { .magic = QV_UDP_MAGIC, .version = QV_UDP_VERSION,
				    .type = type, .handle = handle, .rows = rows,
				    .request_id = id, .payload_bytes = payload_bytes };

	return put_dg(buf, &h, sizeof(h), payload, payload_bytes);
}

/* Builds a reply datagram (version_served 1) into buf: its header says
 * `claimed` payload bytes and `bytes` of payload follow it (a lying server
 * makes them differ). Returns the length with the `bytes`. */
static inline size_t mk_rep(void *buf, uint8_t type, uint32_t status, uint64_t id,
			    const void *payload, uint32_t bytes, uint32_t claimed)
{
	struct qv_udp_rep_hdr h = { .magic = QV_UDP_MAGIC, .version = QV_UDP_VERSION,
				    .type = type, .status = status, .version_served = 1,
				    .request_id = id, .payload_bytes = claimed };

	return put_dg(buf, &h, sizeof(h), payload, bytes);
}

/* A scripted server's receive: waits up to timeout_ms for one datagram on
 * fd and checks it is a request (a whole header, the magic, payload_bytes
 * equal to what follows the header). Returns its length, with its header
 * in *ret_h and its sender in *ret_from, or 0 if none came. */
static inline size_t recv_req(int fd, void *buf, size_t cap, int timeout_ms,
			      struct qv_udp_req_hdr *ret_h, struct sockaddr_in *ret_from)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	struct qv_udp_req_hdr h;

	if (poll(&p, 1, timeout_ms) != 1)
		return 0;
	ssize_t n = recvfrom(fd, buf, cap, 0, (struct sockaddr *)&from, &fl);
	CHECK(n >= (ssize_t)sizeof(h));
	memcpy(&h, buf, sizeof(h));
	CHECK(h.magic == QV_UDP_MAGIC && h.payload_bytes == (size_t)n - sizeof(h));
	*ret_h = h;
	*ret_from = from;
	return (size_t)n;
}

/* sendto that must send all len bytes in one datagram. */
static inline void send_dg(int fd, const void *buf, size_t len, const struct sockaddr_in *to)
{
	CHECK(sendto(fd, buf, len, 0, (const struct sockaddr *)to, sizeof(*to)) ==
	      (ssize_t)len);
}

static inline struct qv_udp_req_hdr *req_hdr(void *buf)
{
	return (struct qv_udp_req_hdr *)buf;
}

/* A UDP socket bound to 127.0.0.1 on a port the kernel picks, which goes
 * into *ret_port; exits 1 (CHECK) if there is none. */
static inline int udp_bind_loopback(uint16_t *ret_port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr = { .s_addr = htonl(INADDR_LOOPBACK) } };
	socklen_t sl = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &sl) == 0);
	*ret_port = ntohs(a.sin_port);
	return fd;
}

/* A loopback UDP port that was free a moment ago. quiverd binds its --udp
 * port with SO_REUSEPORT on every worker, so it must be the same number
 * for all: not 0. */
static inline uint16_t free_udp_port(void)
{
	uint16_t port = 0;

	close(udp_bind_loopback(&port));
	return port;
}

#endif
