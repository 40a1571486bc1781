/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fake_server.h - a tiny stand-in for quiverd's shared-memory transport,
 * run as a thread inside a test: accepts one client on a SEQPACKET socket,
 * hands it a memfd channel, answers LOOKUP, and serves requests from the
 * submission ring. Knobs let a test make it misbehave.
 *
 * Models: "echo"  (handle 7, 4 -> 4 floats a row, max batch 8): out = in
 *         "double" (handle 9, 3 -> 3 floats a row, max batch 4): out = 2 * in
 *         "fail":  LOOKUP answered with an ERROR (-EIO) and a 2000-byte text
 *         "mixed" (handle 11, max batch 4): three inputs, three outputs,
 *                 packed rows as qv_proto.h documents them (8 words in,
 *                 5 out), computed from the bytes at their packed offsets:
 *                 in  dense f32[3] @0, ids i64[2] @12, k i32[1] @28
 *                 out score f32[1] = dense0 + dense1 + dense2 @0,
 *                     cls i64[1] = ids0 * 1000 + ids1 + k @4,
 *                     pair f32[2] = { 2 * dense0, (float)k } @12
 *         "lie-*": impossible records the client must refuse (-EPROTO)
 */
#ifndef FAKE_SERVER_H
#define FAKE_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>

#include "qv_ring.h"
#include "qv_seg.h"

#define FAKE_ECHO_HANDLE 7u
#define FAKE_DOUBLE_HANDLE 9u
#define FAKE_MIXED_HANDLE 11u
#define FAKE_VERSION 3u
/* A HELLO asking for this many slots is refused with -EBUSY. */
#define FAKE_REFUSED_SLOTS 3u

/* One-shot misbehaviours for the next request served. */
enum fake_corrupt {
	FAKE_OK = 0,
	FAKE_BOGUS_SLOT,     /* a completion for slot nslots + 5 first, then the real one */
	FAKE_IDLE_SLOT,      /* a completion for a slot not in flight first, then the real one */
	FAKE_TOO_BIG,        /* out_bytes larger than the client accepts */
	FAKE_WRONG_ID,       /* request id that is not the slot's */
	FAKE_BAD_STATUS,     /* status 99 */
	FAKE_DUPLICATE,      /* the real completion twice */
	FAKE_BREAK_RING,     /* completion ring tail pushed far past the head */
};

/* Ways the hand-shake can lie; the client must refuse each. */
enum fake_hello_lie {
	LIE_NONE = 0,
	LIE_MAGIC,           /* magic never set */
	LIE_ABI,             /* abi_version 99 */
	LIE_SEG_BYTES,       /* HELLO_OK claims more bytes than the memfd has */
	LIE_RING,            /* ring_entries not a power of two */
	LIE_SLOTS_OFF,       /* slots run past the end of the segment */
	LIE_NO_FD,           /* HELLO_OK without a descriptor */
	LIE_UNSEALED,        /* a memfd the server could still shrink (no F_SEAL_SHRINK) */
	LIE_COUNT
};

struct fake_server {
	char dir[48];
	char path[96];
	int lfd, cfd;
	pthread_t thread;
	bool started;

	/* Knobs, set by the test thread. */
	_Atomic int hold;      /* do not consume the submission ring */
	_Atomic int beat;      /* write the heartbeat */
	_Atomic int hangup;    /* close the client socket (a crash, as the socket sees it) */
	_Atomic int stop;
	_Atomic int ready;     /* 1 once the channel is mapped, -1 if the hand-shake failed */
	_Atomic int corrupt;   /* enum fake_corrupt, consumed by the next request */
	_Atomic int hello_lie; /* enum fake_hello_lie, read at the hand-shake */
	_Atomic int garbage;   /* random completions pushed before each real one */
	uint64_t rng;          /* the thread's, for garbage */

	/* Statistics, read by the test thread after stop. */
	_Atomic uint64_t served;
	_Atomic uint64_t lookups;

	/* Server side of the channel, owned by the thread. */
	void *map;
	struct qv_seg_layout l;
	struct qv_seg_hdr *hdr;
	struct qv_ring_cons sq;
	struct qv_ring_prod cq;
};

/* Binds a socket in a fresh temporary directory and starts the thread. */
int fake_start(struct fake_server *f);
/* Stops the thread and removes everything it made. */
void fake_stop(struct fake_server *f);
/* The state the header publishes (enum qv_server_state). */
void fake_set_state(struct fake_server *f, uint32_t state);
/* Blocks until the channel is mapped (the hand-shake is done). */
void fake_wait_channel(struct fake_server *f);

#endif /* FAKE_SERVER_H */
