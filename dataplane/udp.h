/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp.h - quiverd's UDP transports: the datagram parser and source
 * allow-list shared by every back end, and the io_uring back end.
 *
 * The wire format is in shm/qv_udp_proto.h. A back end takes every
 * datagram that arrived since its last turn, checks each source against
 * the allow-list (outside: dropped, counted, never answered) and parses it
 * with qv_udp_parse_request (a pure function). LOOKUPs and BAD_REQUESTs are
 * answered at once; the turn's INFERs become batch items (input read in
 * place, output written straight into a preallocated reply buffer) that
 * one qv_worker_serve_batch() call serves, so requests for the same model
 * version run as one batched call and a lone one runs in place. Then the
 * replies are sent. Nothing is allocated per datagram.
 */
#ifndef QV_UDP_H
#define QV_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "qv_proto.h"
#include "qv_udp_proto.h"

struct qv_worker;
struct qv_batch_item;

/* ---- source allow-list (udp_allow.c) ---------------------------------- */

#define QV_ALLOW_MAX 32

struct qv_allow_entry {
	uint8_t family;         /* AF_INET or AF_INET6 */
	uint8_t prefix;         /* bits */
	uint8_t addr[16];       /* network order; IPv4 in the first 4 bytes */
};

/* An empty list (n == 0) allows every source. */
struct qv_allow_list {
	uint32_t n;
	struct qv_allow_entry e[QV_ALLOW_MAX];
};

/* Adds "A.B.C.D/N", "A.B.C.D" (= /32), "X::Y/N" or "X::Y" (= /128).
 * Returns 0, -EINVAL (malformed) or -ENOSPC (list full). */
int qv_allow_add(struct qv_allow_list *l, const char *cidr);

/* Hot path. An IPv4-mapped IPv6 source (::ffff:a.b.c.d) matches IPv4
 * entries. NULL or empty list: allowed. */
bool qv_allow_check(const struct qv_allow_list *l, const struct sockaddr *sa,
		    socklen_t salen);

/* "ADDR:PORT" or "[ADDR6]:PORT" -> sockaddr. Returns 0 or -EINVAL. */
int qv_udp_parse_addr(const char *addr_port, struct sockaddr_storage *ret_ss,
		      socklen_t *ret_len);

/* ---- datagram parser (udp_parse.c) ------------------------------------ */

enum qv_udp_verdict {
	QV_UDP_V_JUNK = 0,      /* drop silently, count */
	QV_UDP_V_BAD = 1,       /* answer QV_BAD_REQUEST with request_id */
	QV_UDP_V_INFER = 2,
	QV_UDP_V_LOOKUP = 3,
};

struct qv_udp_parsed {
	uint64_t request_id;
	uint64_t budget_ns;
	uint64_t routing_key;
	uint32_t handle;
	uint32_t rows;
	uint32_t in_bytes;
	uint32_t in_off;        /* input rows' offset in the datagram (48; 64 in version 2) */
	uint32_t reply_type;    /* QV_UDP_*_REPLY to answer with */
	uint32_t version;       /* protocol version to answer in (1 or 2) */
	uint32_t n_tensors;     /* version 2 INFER: input tensors packed; 0 in version 1 */
	char name[QV_UDP_NAME_MAX]; /* LOOKUP: NUL-terminated */
};

/*
 * Classifies one datagram of `len` bytes at `buf` (`truncated`: the kernel
 * cut it, MSG_TRUNC). Pure: reads only buf[0..len), writes only *ret, which
 * is filled for BAD (request_id), INFER and LOOKUP. Every rule is listed in
 * qv_udp_proto.h.
 */
enum qv_udp_verdict qv_udp_parse_request(const void *buf, size_t len, bool truncated,
					 struct qv_udp_parsed *ret);

/* Writes a reply header of protocol version `proto`; returns its size. */
size_t qv_udp_put_reply_hdr(void *buf, uint8_t proto, uint8_t type, uint32_t status,
			    uint32_t version, uint32_t flags, uint64_t request_id,
			    uint32_t payload_bytes);

/* Writes a whole LOOKUP reply for p in p's version: the model record (and
 * in version 2 the tensors) from lr, or UNKNOWN_MODEL when lr is NULL.
 * Returns the reply's size. Shared by every back end so the record is
 * built one way. */
size_t qv_udp_put_lookup_reply(void *buf, const struct qv_udp_parsed *p,
			       const struct qv_lookup_reply *lr);

/* ---- serving parsed datagrams (udp_serve.c) --------------------------- */

/*
 * Fills `it` (worker.h) for the INFER p: its input read in place at
 * dgram + p->in_off (16-byte aligned by the back end's buffer layout), its
 * outputs, at most out_cap bytes (all that follows the reply header),
 * written after the reply header (and version 2's prefix) at `out`;
 * the deadline is now + p->budget_ns. chan = NULL, done = 0. Hot path.
 */
void qv_udp_serve_prepare(struct qv_batch_item *it, const struct qv_udp_parsed *p,
			  const uint8_t *dgram, uint8_t *out, uint32_t out_cap);
/* After qv_worker_serve_batch() filled it->res: writes the reply header
 * at `out` (where prepare put the outputs after it); returns the reply's
 * size. Outputs that would not fit out_cap are never sent (INTERNAL). */
size_t qv_udp_serve_finish(const struct qv_batch_item *it, uint8_t *out);
/* Answers a LOOKUP into `out`; returns the reply's size. */
size_t qv_udp_serve_lookup(struct qv_worker *w, const struct qv_udp_parsed *p, uint8_t *out);

/* ---- io_uring back end (udp_uring.c) ---------------------------------- */

struct qv_udp_uring;

/* Snapshot of a back end's counters (the worker writes them with relaxed
 * stores; any thread may read them). */
struct qv_udp_stats {
	uint64_t rx;            /* datagrams received */
	uint64_t tx;            /* replies sent (completed) */
	uint64_t dropped_allow; /* source outside the allow-list */
	uint64_t bad_request;   /* answered QV_BAD_REQUEST by the parser */
	uint64_t junk;          /* dropped silently by the parser */
	uint64_t lookups;       /* LOOKUP requests answered */
	uint64_t tx_dropped;    /* no free reply buffer or send error */
	uint64_t rx_rearm;      /* multishot receive re-armed */
	uint64_t tx_direct;     /* replies sent with sendto (a turn's only reply) */
};

/*
 * Opens one worker's socket (SO_REUSEPORT, so every worker binds the same
 * ADDR:PORT and the kernel spreads flows), its io_uring, a provided buffer
 * ring of receive buffers and the reply buffers, on `numa_node` (-1: any),
 * and arms a multishot recvmsg. `allow` is copied (NULL: allow all).
 * Slow path: call from the control thread or at worker start.
 */
int qv_udp_uring_open(const char *addr_port, const struct qv_allow_list *allow,
		      int numa_node, struct qv_udp_uring **ret);

/*
 * One non-blocking turn for the worker's poll loop: reaps up to a batch of
 * ready completions, serves the turn's INFERs with one
 * qv_worker_serve_batch() call (LOOKUPs with qv_worker_lookup), sends the
 * replies with at most one io_uring_enter (or one sendto for a lone reply)
 * and then runs a pending mirrored request (qv_worker_shadow_flush).
 * Returns the number of datagrams handled (0: idle).
 * Only the owning worker thread may call it.
 */
int qv_udp_uring_poll(struct qv_udp_uring *u, struct qv_worker *w);

/* Bound port (host order), e.g. after opening "127.0.0.1:0". */
uint16_t qv_udp_uring_port(const struct qv_udp_uring *u);

void qv_udp_uring_stats(const struct qv_udp_uring *u, struct qv_udp_stats *ret);

void qv_udp_uring_close(struct qv_udp_uring *u);

#endif /* QV_UDP_H */
