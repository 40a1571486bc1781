/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qv_desc.h - libquiver's one reader of a lookup reply (qv_proto.h's
 * qv_lookup_reply, over the socket or in a UDP version 2 LOOKUP reply) and
 * its one packer / unpacker of typed requests. Internal to libquiver.
 */
#ifndef QV_DESC_H
#define QV_DESC_H

#include <stddef.h>
#include <stdint.h>

#include "quiver.h"

/*
 * Reads `len` bytes of a lookup reply into *ret_desc, after checking every
 * field a request will rely on: 1..16 inputs and outputs, known dtypes,
 * ranks 1..8, each tensor's packed_off the sum of the row_bytes before it,
 * the row_bytes adding up to in_dim / out_dim words, max_batch > 0, and
 * the length exactly that of the tensors announced. -EPROTO otherwise.
 */
int qv_desc_from_wire(const void *buf, size_t len, struct qv_model_desc *ret_desc);

/* The tensor layout a client keeps per model: what packing needs. */
struct qv_layout {
	uint32_t n_in, n_out;
	uint32_t in_row, out_row;            /* bytes of a packed row */
	uint32_t in_rb[QV_MAX_TENSORS_WIRE], in_off[QV_MAX_TENSORS_WIRE];
	uint32_t out_rb[QV_MAX_TENSORS_WIRE], out_off[QV_MAX_TENSORS_WIRE];
};

void qv_layout_of(const struct qv_model_desc *d, struct qv_layout *ret);

/*
 * Checks a typed request's tensors against the layout: -EINVAL (t NULL, a
 * count not the model's, a NULL buffer), -ENOBUFS (an output capacity below
 * rows * row_bytes). Hot path.
 */
int qv_tensors_check(const struct qv_layout *l, const struct qv_tensors *t, uint32_t rows);

/* Packs rows of every input into `dst` (rows * in_row bytes). Hot path. */
void qv_tensors_pack(const struct qv_layout *l, const void *const *in, uint32_t rows, void *dst);

/* Unpacks rows packed output rows at `src` into out[j]. Hot path. */
void qv_tensors_unpack(const struct qv_layout *l, const void *src, uint32_t rows,
		       void *const *out);

#endif /* QV_DESC_H */
