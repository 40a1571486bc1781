/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rawchan.h - a channel opened without libquiver: the HELLO hand-shake and
 * LOOKUP written out from qv_proto.h and qv_shm.h, and the mapping handed
 * to the test as-is, so that it can put what libquiver never would into
 * the rings and slots (bogus handles, lying sizes, impossible indices,
 * random bytes). That also tests the protocol as documented rather than
 * as libquiver happens to speak it.
 */
#ifndef QVT_RAWCHAN_H
#define QVT_RAWCHAN_H

#include <stdbool.h>
#include <stdint.h>

#include "qv_proto.h"
#include "qv_ring.h"
#include "qv_seg.h"
#include "qv_shm.h"

struct qvt_raw {
	int sock;
	uint8_t *base;
	uint64_t map_bytes;
	struct qv_seg_hdr *hdr;
	struct qv_seg_layout l;     /* private copy, read once */
	struct qv_ring_prod sq;
	struct qv_ring_cons cq;
	uint32_t seq;
};

/* Returns 0 or -errno (the hdr.status of a refused HELLO). */
int qvt_raw_open(struct qvt_raw *ch, const char *sock_path, uint32_t slots, uint32_t slot_in,
		 uint32_t slot_out);
void qvt_raw_close(struct qvt_raw *ch);
/* As qvt_raw_open, saying channel ABI `abi` in the HELLO. */
int qvt_raw_open_abi(struct qvt_raw *ch, const char *sock_path, uint32_t abi, uint32_t slots,
		     uint32_t slot_in, uint32_t slot_out);
/* 0, -ENOENT for an unknown model, or another -errno. */
int qvt_raw_lookup(struct qvt_raw *ch, const char *name, struct qv_model_wire *ret);
/* The same, with the tensor records (the whole ABI 2 reply). */
int qvt_raw_lookup_full(struct qvt_raw *ch, const char *name, struct qv_lookup_reply *ret);
/* Sends an ABI 1 LOOKUP (the 64-byte name alone) on socket `sock` with
 * sequence `seq`: returns the status of the ERROR reply quiverd must
 * answer it with, or -EPROTO for any other reply. */
int qvt_raw_lookup_v1(int sock, uint32_t seq, const char *name);
/* Input and output regions of slot i. */
float *qvt_raw_in(struct qvt_raw *ch, uint32_t i);
float *qvt_raw_out(struct qvt_raw *ch, uint32_t i);
/* Pushes one descriptor; 0 or -EAGAIN / -EBADMSG. */
int qvt_raw_push(struct qvt_raw *ch, const struct qv_sqe *e);
/* Waits for one completion up to timeout_ms: 1 and *ret, 0 on timeout,
 * -EPIPE when the channel was closed by the server (state CLOSED or the
 * socket hung up), -EBADMSG when the completion ring is corrupt. */
int qvt_raw_wait(struct qvt_raw *ch, uint32_t timeout_ms, struct qv_cqe *ret);
/* Whether the server retired the channel or closed the socket. */
bool qvt_raw_closed(struct qvt_raw *ch);

/* One control command over a fresh connection: hdr.status into
 * *ret_status and the reply text into buf. Returns 0 or -errno. */
int qvt_ctl_cmd(const char *sock_path, const char *json, int32_t *ret_status, char *buf,
		size_t cap);

#endif /* QVT_RAWCHAN_H */
