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
	QV_MSG_LOOKUP_OK = 4,   /* payload qv_lookup_reply's first qv_lookup_reply_bytes() */
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

/*
 * ABI 2 added abi_version here: a LOOKUP of the 64-byte ABI 1 layout is
 * refused with -EPROTONOSUPPORT (its sender would misread the longer ABI 2
 * reply), never answered.
 */
struct qv_lookup {
	char name[64];          /* NUL-terminated model name */
	uint32_t abi_version;   /* QV_ABI_VERSION */
	uint32_t reserved;      /* 0 */
};
_Static_assert(sizeof(struct qv_lookup) == 72, "lookup layout");
#define QV_LOOKUP_V1_BYTES 64u

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

/*
 * One named tensor of a model (qv_tensor_info of qv_model.h, fixed for the
 * wire). dtype is numbered as ONNX's TensorProto.DataType: 1 float32,
 * 6 int32, 7 int64. shape[0] == -1 is the batch. row_bytes: bytes of one
 * row of this tensor; packed_off: its byte offset in a packed row (one row
 * of every input, or of every output, in declared order, no padding).
 * index_bound: ids must be in [0, index_bound) (0: not an index input).
 */
#define QV_WIRE_MAX_TENSORS 16u
struct qv_tensor_wire {
	char name[64];
	uint32_t dtype;
	uint32_t rank;
	int64_t shape[8];
	uint32_t row_bytes;
	uint32_t packed_off;
	int64_t index_bound;
};
_Static_assert(sizeof(struct qv_tensor_wire) == 152, "tensor wire layout");
_Static_assert(offsetof(struct qv_tensor_wire, shape) == 72, "tensor wire layout");
_Static_assert(offsetof(struct qv_tensor_wire, index_bound) == 144, "tensor wire layout");

/*
 * LOOKUP_OK payload (ABI 2): the model record, the tensor counts, then
 * n_inputs + n_outputs tensor records (inputs first, each in declared
 * order). Only the first qv_lookup_reply_bytes() bytes travel; the UDP
 * version 2 LOOKUP reply carries the same bytes.
 */
struct qv_lookup_reply {
	struct qv_model_wire m;
	uint32_t n_inputs;
	uint32_t n_outputs;
	struct qv_tensor_wire t[2 * QV_WIRE_MAX_TENSORS];
};
_Static_assert(offsetof(struct qv_lookup_reply, t) == 232, "lookup reply layout");

static inline size_t qv_lookup_reply_bytes(uint32_t n_inputs, uint32_t n_outputs)
{
	return offsetof(struct qv_lookup_reply, t) +
	       (size_t)(n_inputs + n_outputs) * sizeof(struct qv_tensor_wire);
}

#endif /* QV_PROTO_H */
