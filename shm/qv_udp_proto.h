/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qv_udp_proto.h - the UDP wire protocol of quiverd, spoken by libquiver's
 * qv_udp_* calls and by both UDP back ends (io_uring, DPDK).
 *
 * One request a datagram, one reply a datagram, every integer little-endian,
 * no padding the compiler chooses (every struct below has only naturally
 * aligned fixed-width fields and explicit reserved words, pinned by
 * _Static_assert). The host is required to be little-endian, so the structs
 * are the wire bytes.
 *
 * Request (client -> quiverd), 48-byte header then payload:
 *
 *   off size field         meaning
 *     0   4  magic         QV_UDP_MAGIC, bytes "QUDP"
 *     4   1  version       QV_UDP_VERSION
 *     5   1  type          QV_UDP_INFER or QV_UDP_LOOKUP
 *     6   2  flags         0 (no request flags are defined yet)
 *     8   4  handle        route handle from a lookup (INFER), 0 (LOOKUP)
 *    12   4  rows          batch rows (INFER, >= 1), 0 (LOOKUP)
 *    16   8  request_id    echoed verbatim in the reply
 *    24   8  budget_ns     deadline as a budget from arrival; 0 = route default
 *                          (a relative time: clocks of two hosts do not agree)
 *    32   8  routing_key   sticky canary key; 0 = none
 *    40   4  payload_bytes bytes after the header; must equal datagram - 48
 *    44   4  reserved      0
 *    48   .  payload       INFER: rows * in_dim float32 (IEEE 754, LE)
 *                          LOOKUP: the model name, 1..63 bytes, no NUL needed
 *
 * Reply (quiverd -> client), 32-byte header then payload:
 *
 *     0   4  magic         QV_UDP_MAGIC
 *     4   1  version       QV_UDP_VERSION
 *     5   1  type          QV_UDP_INFER_REPLY or QV_UDP_LOOKUP_REPLY
 *     6   2  flags         QV_FLAG_* (fallback / canary answered)
 *     8   4  status        enum qv_status
 *    12   4  version_served model version that answered (INFER)
 *    16   8  request_id    the request's request_id
 *    24   4  payload_bytes bytes after the header
 *    28   4  reserved      0
 *    32   .  payload       INFER + QV_OK: rows * out_dim float32
 *                          LOOKUP + QV_OK: struct qv_udp_model (224 bytes)
 *                          any other status: nothing
 *
 * Version 2 (QV_UDP_VERSION_TENSORS) carries models with several typed
 * inputs and outputs. Same headers, version byte 2; the reply's version
 * byte is the request's (a version 1 request gets a version 1 reply, as
 * before). The payloads differ:
 *
 *   INFER request payload (version 2):
 *    48   4  n_tensors     input tensors packed, == the model's n_inputs
 *    52  12  reserved      0
 *    64   .  rows packed input rows: each row is one row of every input
 *            tensor in the model's declared order, back to back, no
 *            padding; a tensor's row is its row_bytes (float32 and int32:
 *            4 bytes an element, int64: 8, little-endian), at its
 *            packed_off in the row. rows * in_dim * 4 bytes in all.
 *   INFER reply payload (version 2, QV_OK):
 *    32   4  n_tensors     output tensors, the model's n_outputs
 *    36  12  reserved      0
 *    48   .  rows packed output rows, the outputs laid out the same way
 *   LOOKUP request (version 2): as version 1.
 *   LOOKUP reply payload (version 2, QV_OK): struct qv_lookup_reply's
 *            first qv_lookup_reply_bytes() bytes (qv_proto.h): the 224-byte
 *            model record of version 1, n_inputs (4), n_outputs (4), then
 *            n_inputs + n_outputs 152-byte tensor records (name[64], dtype,
 *            rank, shape[8] int64, row_bytes, packed_off, index_bound
 *            int64), inputs first, each list in declared order.
 *
 * The 16-byte prefix keeps the packed rows 16-byte aligned in the datagram
 * as version 1's floats are, so the server still runs them in place. A
 * version 2 INFER with n_tensors 0 or over 16, reserved bytes not 0, or
 * rows not dividing what follows the prefix is QV_BAD_REQUEST; with
 * n_tensors not the model's, or a size not rows packed rows, QV_BAD_SHAPE.
 *
 * Rules the server applies (see qv_udp_parse_request):
 *  - shorter than a header, wrong magic, or a reply type: dropped silently
 *    and counted as junk (never answer what might be a reply: two servers
 *    must not ping-pong);
 *  - otherwise any inconsistency (version, unknown type or flags, reserved
 *    not 0, payload_bytes not matching the datagram, truncated datagram,
 *    rows 0 or not dividing the payload, bad name) is answered with
 *    QV_BAD_REQUEST and the request id, so the client learns at once;
 *  - shapes are then checked against the route (QV_BAD_SHAPE, ...).
 * A datagram is at most QV_UDP_MAX_DATAGRAM bytes: larger requests are
 * refused by the client (-EMSGSIZE) and arrive truncated at the server
 * (QV_BAD_REQUEST). Sources outside the allow-list are never answered.
 */
#ifndef QV_UDP_PROTO_H
#define QV_UDP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the quiver UDP protocol is little-endian and these structs are the wire bytes"
#endif

#define QV_UDP_MAGIC 0x50445551u /* "QUDP" in memory order */
#define QV_UDP_VERSION 1u           /* float rows of single-input models */
#define QV_UDP_VERSION_TENSORS 2u   /* packed rows of typed, named tensors */

/*
 * Largest datagram either side sends or accepts, header included. 16 KiB
 * keeps the server's receive buffers small (one buffer a datagram) and
 * still carries 4084 input floats; on a 1500-byte Ethernet MTU anything
 * above 1472 bytes is fragmented by IP, which works but costs latency.
 */
#define QV_UDP_MAX_DATAGRAM 16384u

enum qv_udp_type {
	QV_UDP_INFER = 1,
	QV_UDP_LOOKUP = 2,
	QV_UDP_INFER_REPLY = 0x81,
	QV_UDP_LOOKUP_REPLY = 0x82,
};
#define QV_UDP_TYPE_REPLY_BIT 0x80u

struct qv_udp_req_hdr {
	uint32_t magic;
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint32_t handle;
	uint32_t rows;
	uint64_t request_id;
	uint64_t budget_ns;
	uint64_t routing_key;
	uint32_t payload_bytes;
	uint32_t reserved;
};
_Static_assert(sizeof(struct qv_udp_req_hdr) == 48, "udp request header layout");
_Static_assert(offsetof(struct qv_udp_req_hdr, type) == 5, "udp request type offset");
_Static_assert(offsetof(struct qv_udp_req_hdr, request_id) == 16, "udp request id offset");
_Static_assert(offsetof(struct qv_udp_req_hdr, payload_bytes) == 40, "udp payload_bytes offset");

struct qv_udp_rep_hdr {
	uint32_t magic;
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint32_t status;
	uint32_t version_served;
	uint64_t request_id;
	uint32_t payload_bytes;
	uint32_t reserved;
};
_Static_assert(sizeof(struct qv_udp_rep_hdr) == 32, "udp reply header layout");
_Static_assert(offsetof(struct qv_udp_rep_hdr, request_id) == 16, "udp reply id offset");
_Static_assert(offsetof(struct qv_udp_rep_hdr, payload_bytes) == 24, "udp reply payload offset");

/* LOOKUP_REPLY payload: the same fields and layout as qv_model_wire. */
#define QV_UDP_NAME_MAX 64 /* including the NUL the receiver adds */
struct qv_udp_model {
	uint32_t handle;
	uint32_t version;
	uint32_t in_dim, out_dim;
	uint32_t max_batch;
	uint32_t in_rank, out_rank;
	uint32_t reserved;
	int64_t in_shape[8];    /* [0] == -1: batch dimension */
	int64_t out_shape[8];
	char name[QV_UDP_NAME_MAX];
};
_Static_assert(sizeof(struct qv_udp_model) == 224, "udp model layout");
_Static_assert(offsetof(struct qv_udp_model, in_shape) == 32, "udp model shape offset");
_Static_assert(offsetof(struct qv_udp_model, name) == 160, "udp model name offset");

/* What follows a version 2 INFER header (request) or INFER_REPLY header
 * (reply, QV_OK) before the packed rows. */
struct qv_udp_tensors_hdr {
	uint32_t n_tensors;
	uint32_t reserved[3];
};
_Static_assert(sizeof(struct qv_udp_tensors_hdr) == 16, "udp v2 prefix layout");

#define QV_UDP_MAX_IN_BYTES (QV_UDP_MAX_DATAGRAM - sizeof(struct qv_udp_req_hdr))
#define QV_UDP_MAX_OUT_BYTES (QV_UDP_MAX_DATAGRAM - sizeof(struct qv_udp_rep_hdr))

#endif /* QV_UDP_PROTO_H */
