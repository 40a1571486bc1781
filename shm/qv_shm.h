/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qv_shm.h - the layout of a shared-memory channel and its SPSC rings.
 * Shared by libquiver (client side) and quiverd (server side). Everything
 * here lives in a memfd mapped by exactly two processes, so every struct
 * is fixed-width, explicitly padded and pinned by _Static_assert.
 *
 * Segment:  [qv_seg_hdr][sq ring][cq ring][slot 0 in|out][slot 1 in|out]...
 * All offsets are multiples of 64; slot regions are multiples of 64 bytes.
 *
 * The server writes every field of the header, then stores `magic` last
 * with release; a client that loads magic with acquire sees the rest.
 * The client never trusts anything but the two rings' indices and the
 * entries it consumes; the server never trusts any client-written byte
 * twice (it copies a descriptor once, then validates the copy).
 */
#ifndef QV_SHM_H
#define QV_SHM_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define QV_CACHELINE 64
#define QV_SEG_MAGIC 0x4d48535155495651ull /* "QVIUQSHM" little-endian */
/*
 * 2: lookups describe every input and output tensor (qv_proto.h's
 * qv_lookup / qv_lookup_reply); slots carry packed rows of typed tensors.
 * A client of another ABI is refused at HELLO (and LOOKUP) with
 * -EPROTONOSUPPORT.
 */
#define QV_ABI_VERSION 2u

/* Submission descriptor: client -> server. 64 bytes, one cache line. */
struct qv_sqe {
	uint32_t slot;          /* slot index, < nslots */
	uint32_t handle;        /* model route handle */
	uint32_t rows;          /* rows of input, 1..max_batch */
	uint32_t in_bytes;      /* == rows * in_dim * 4, <= slot_in_bytes */
	uint64_t deadline_ns;   /* absolute CLOCK_MONOTONIC, 0 = model default */
	uint64_t routing_key;
	uint64_t request_id;
	uint32_t flags;         /* reserved, must be 0 */
	uint32_t out_cap;       /* bytes the client accepts, <= slot_out_bytes */
	/*
	 * The client's time-stamp counter (CLOCK_MONOTONIC ns where there is
	 * none) when it pushed the descriptor; 0 = not stamped. The server only
	 * measures with it (the time the request waited in the submission ring,
	 * part of its request-duration metric); nothing is decided on it, and
	 * a value it cannot use (0, in the future, over 2^40 cycles old) is
	 * ignored. Was reserved (zero) before: older clients are not measured.
	 */
	uint64_t submit_tsc;
	uint8_t reserved[8];
};
_Static_assert(sizeof(struct qv_sqe) == 64, "sqe is one cache line");
_Static_assert(offsetof(struct qv_sqe, deadline_ns) == 16, "sqe layout");
_Static_assert(offsetof(struct qv_sqe, request_id) == 32, "sqe layout");
_Static_assert(offsetof(struct qv_sqe, submit_tsc) == 48, "sqe layout");

/* Completion: server -> client. 32 bytes. */
struct qv_cqe {
	uint64_t request_id;
	uint32_t slot;
	uint32_t status;        /* enum qv_status */
	uint32_t out_bytes;     /* bytes written to the slot's output region */
	uint32_t version;       /* model version that answered */
	uint32_t flags;         /* QV_FLAG_* */
	uint32_t reserved;
};
_Static_assert(sizeof(struct qv_cqe) == 32, "cqe layout");
_Static_assert(offsetof(struct qv_cqe, status) == 12, "cqe layout");

/*
 * Ring control block. The producer owns `tail`, the consumer owns `head`;
 * each on its own cache line so neither side's stores invalidate the line
 * the other side writes. Cached copies of the other side's index live in
 * each process's private memory (struct qv_ring_prod / qv_ring_cons in
 * qv_ring.h), never here. Entries follow the control block.
 */
struct qv_ring_ctl {
	alignas(QV_CACHELINE) _Atomic uint32_t tail;   /* written by producer */
	uint8_t pad0[QV_CACHELINE - sizeof(uint32_t)];
	alignas(QV_CACHELINE) _Atomic uint32_t head;   /* written by consumer */
	uint8_t pad1[QV_CACHELINE - sizeof(uint32_t)];
};
_Static_assert(sizeof(struct qv_ring_ctl) == 2 * QV_CACHELINE, "ring ctl layout");
_Static_assert(offsetof(struct qv_ring_ctl, head) == QV_CACHELINE, "head on its own line");

/* Server states published in the header. */
enum qv_server_state {
	QV_SRV_RUNNING = 1,
	QV_SRV_DRAINING = 2,   /* new requests are answered UNAVAILABLE */
	QV_SRV_CLOSED = 3,     /* the server retired this channel */
};

struct qv_seg_hdr {
	_Atomic uint64_t magic;       /* QV_SEG_MAGIC, stored last with release */
	uint32_t abi_version;
	uint32_t hdr_bytes;
	uint64_t seg_bytes;
	uint32_t ring_entries;        /* power of two, for both rings */
	uint32_t nslots;
	uint32_t slot_in_bytes;       /* multiple of 64 */
	uint32_t slot_out_bytes;      /* multiple of 64 */
	uint64_t sq_off;              /* struct qv_ring_ctl + ring_entries * qv_sqe */
	uint64_t cq_off;              /* struct qv_ring_ctl + ring_entries * qv_cqe */
	uint64_t slots_off;           /* slot i input at slots_off + i*(in+out) */
	uint32_t channel_id;
	uint32_t worker;              /* worker index serving this channel */
	uint8_t pad0[2 * QV_CACHELINE - 72];
	/* Heartbeats: CLOCK_MONOTONIC ns, each written by one side only. */
	alignas(QV_CACHELINE) _Atomic uint64_t server_heartbeat_ns;
	_Atomic uint32_t server_state;  /* enum qv_server_state */
	uint8_t pad1[QV_CACHELINE - 12];
	alignas(QV_CACHELINE) _Atomic uint64_t client_heartbeat_ns;
	uint8_t pad2[QV_CACHELINE - 8];
};
_Static_assert(sizeof(struct qv_seg_hdr) == 4 * QV_CACHELINE, "hdr layout");
_Static_assert(offsetof(struct qv_seg_hdr, server_heartbeat_ns) == 2 * QV_CACHELINE, "hdr layout");
_Static_assert(offsetof(struct qv_seg_hdr, client_heartbeat_ns) == 3 * QV_CACHELINE, "hdr layout");
_Static_assert(offsetof(struct qv_seg_hdr, worker) == 68, "hdr layout");

#endif /* QV_SHM_H */
