/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qv_proto.h - the control protocol spoken over quiverd's Unix socket, by
 * libquiver (hand-shake, lookups) and quiverctl (commands).
 *
 * The socket is SOCK_SEQPACKET: one message a packet, boundaries kept by
 * the kernel, SCM_RIGHTS for the channel's memfd. A message is a
 * qv_msg_hdr followed by `len` payload bytes (len <= QV_MSG_MAX).
 * Every request gets exactly one reply with the same seq.
 *
 * Commands (QV_MSG_CMD) carry a JSON object {"cmd": "...", ...args} and are
 * answered with QV_MSG_CMD_REPLY carrying a JSON object; on failure hdr.status
 * is a negative errno and the JSON is {"error": "readable message"}.
 * A reply longer than QV_MSG_CHUNK (stats or metrics of many models) comes
 * as QV_MSG_CMD_REPLY_PART packets of QV_MSG_CHUNK bytes, all with the
 * command's seq, then a final QV_MSG_CMD_REPLY with the rest and the status:
 * one packet never exceeds a socket's send buffer, and the whole reply is
 * at most QV_REPLY_MAX bytes.
 */
#ifndef QV_PROTO_H
#define QV_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define QV_PROTO_MAGIC 0x50435651u /* "QVCP" */
#define QV_PROTO_VERSION 1u
#define QV_MSG_MAX (256u * 1024u)
#define QV_MSG_CHUNK (32u * 1024u)
#define QV_REPLY_MAX (64u * 1024u * 1024u)

enum qv_msg_type {
	QV_MSG_HELLO = 1,       /* payload qv_hello; reply HELLO_OK + memfd */
	QV_MSG_HELLO_OK = 2,    /* payload qv_hello_ok, fd in SCM_RIGHTS */
	QV_MSG_LOOKUP = 3,      /* payload qv_lookup */
	QV_MSG_LOOKUP_OK = 4,   /* payload qv_model_wire */
	QV_MSG_CMD = 5,         /* payload JSON text (not NUL-terminated) */
	QV_MSG_CMD_REPLY = 6,   /* payload JSON text */
	QV_MSG_ERROR = 7,       /* payload text; hdr.status = -errno */
	QV_MSG_CMD_REPLY_PART = 8, /* QV_MSG_CHUNK bytes of a long reply; more follow */
};

struct qv_msg_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t version;
	uint32_t len;
	uint32_t seq;
	int32_t status;         /* 0, -errno, or a qv_status for lookups */
	uint32_t reserved;
};
_Static_assert(sizeof(struct qv_msg_hdr) == 24, "msg hdr layout");

struct qv_hello {
	char client_name[32];
	uint32_t abi_version;   /* QV_ABI_VERSION */
	uint32_t slots;
	uint32_t slot_in_bytes;
	uint32_t slot_out_bytes;
};
_Static_assert(sizeof(struct qv_hello) == 48, "hello layout");

struct qv_hello_ok {
	uint64_t seg_bytes;
	uint32_t channel_id;
	uint32_t worker;
};
_Static_assert(sizeof(struct qv_hello_ok) == 16, "hello_ok layout");

struct qv_lookup {
	char name[64];          /* NUL-terminated model name */
};

/* Same fields as struct qv_model_desc in quiver.h, fixed for the wire. */
struct qv_model_wire {
	uint32_t handle;
	uint32_t version;
	uint32_t in_dim, out_dim;
	uint32_t max_batch;
	uint32_t in_rank, out_rank;
	uint32_t reserved;
	int64_t in_shape[8];
	int64_t out_shape[8];
	char name[64];
};
_Static_assert(sizeof(struct qv_model_wire) == 32 + 128 + 64, "model wire layout");

#endif /* QV_PROTO_H */
