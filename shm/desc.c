/* SPDX-License-Identifier: Apache-2.0 */
/*
 * desc.c - lookup replies into qv_model_desc, and typed requests packed
 * into (and answers unpacked from) packed rows, for both of libquiver's
 * transports.
 *
 * Packing is row-major by request row, tensor by tensor: each row of each
 * tensor is one memcpy of its row_bytes (a multiple of 4). A model with
 * one input (or output) is one memcpy of the whole buffer, which is the
 * common case and the one the plain calls take.
 */
#include "qv_desc.h"

#include <errno.h>
#include <string.h>

#include "qv_proto.h"

static int dtype_ok(uint32_t dt)
{
	return dt == QV_TENSOR_FLOAT32 || dt == QV_TENSOR_INT32 || dt == QV_TENSOR_INT64;
}

/* Checks n tensor records laid out back to back into `words` 4-byte words. */
static int tensors_from_wire(const struct qv_tensor_wire *w, uint32_t n, uint32_t words,
			     struct qv_tensor_desc *ret)
{
	uint64_t off = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct qv_tensor_desc *d = &ret[i];
		uint64_t elems = 1;
		uint32_t esz;

		if (!dtype_ok(w[i].dtype) || w[i].rank == 0 || w[i].rank > QV_MAX_RANK_WIRE ||
		    w[i].row_bytes == 0 || w[i].row_bytes % 4 != 0 || w[i].packed_off != off ||
		    w[i].index_bound < 0)
			return -EPROTO;
		/* The row's bytes must be what its shape and dtype say. */
		for (uint32_t k = 1; k < w[i].rank; k++) {
			if (w[i].shape[k] <= 0 || w[i].shape[k] > (int64_t)UINT32_MAX)
				return -EPROTO;
			elems *= (uint64_t)w[i].shape[k];
			if (elems > UINT32_MAX)
				return -EPROTO;
		}
		esz = w[i].dtype == QV_TENSOR_INT64 ? 8u : 4u;
		if (elems * esz != w[i].row_bytes)
			return -EPROTO;
		memset(d, 0, sizeof(*d));
		memcpy(d->name, w[i].name, sizeof(d->name) - 1);
		d->dtype = w[i].dtype;
		d->rank = w[i].rank;
		memcpy(d->shape, w[i].shape, sizeof(d->shape));
		d->row_bytes = w[i].row_bytes;
		d->packed_off = w[i].packed_off;
		d->index_bound = w[i].index_bound;
		off += w[i].row_bytes;
	}
	return off == (uint64_t)words * 4 ? 0 : -EPROTO;
}

int qv_desc_from_wire(const void *buf, size_t len, struct qv_model_desc *ret_desc)
{
	struct qv_lookup_reply w;
	struct qv_model_desc d;
	uint32_t nin, nout;

	if (len < offsetof(struct qv_lookup_reply, t) || len > sizeof(w))
		return -EPROTO;
	memset(&w, 0, sizeof(w));
	memcpy(&w, buf, len);
	nin = w.n_inputs;
	nout = w.n_outputs;
	if (nin == 0 || nin > QV_WIRE_MAX_TENSORS || nout == 0 || nout > QV_WIRE_MAX_TENSORS ||
	    len != qv_lookup_reply_bytes(nin, nout))
		return -EPROTO;
	/* Dims bounded so rows * dim * 4 cannot overflow 64 bits later. */
	if (w.m.in_rank > QV_MAX_RANK_WIRE || w.m.out_rank > QV_MAX_RANK_WIRE ||
	    w.m.in_dim == 0 || w.m.out_dim == 0 || w.m.max_batch == 0)
		return -EPROTO;

	memset(&d, 0, sizeof(d));
	d.handle = w.m.handle;
	d.version = w.m.version;
	d.in_dim = w.m.in_dim;
	d.out_dim = w.m.out_dim;
	d.max_batch = w.m.max_batch;
	d.in_rank = w.m.in_rank;
	d.out_rank = w.m.out_rank;
	memcpy(d.in_shape, w.m.in_shape, sizeof(d.in_shape));
	memcpy(d.out_shape, w.m.out_shape, sizeof(d.out_shape));
	memcpy(d.name, w.m.name, sizeof(d.name) - 1);
	d.n_inputs = nin;
	d.n_outputs = nout;
	if (tensors_from_wire(w.t, nin, d.in_dim, d.inputs) < 0 ||
	    tensors_from_wire(w.t + nin, nout, d.out_dim, d.outputs) < 0)
		return -EPROTO;
	*ret_desc = d;
	return 0;
}

void qv_layout_of(const struct qv_model_desc *d, struct qv_layout *ret)
{
	struct qv_layout l;

	memset(&l, 0, sizeof(l));
	l.n_in = d->n_inputs;
	l.n_out = d->n_outputs;
	l.in_row = d->in_dim * 4;
	l.out_row = d->out_dim * 4;
	for (uint32_t i = 0; i < l.n_in; i++) {
		l.in_rb[i] = d->inputs[i].row_bytes;
		l.in_off[i] = d->inputs[i].packed_off;
	}
	for (uint32_t j = 0; j < l.n_out; j++) {
		l.out_rb[j] = d->outputs[j].row_bytes;
		l.out_off[j] = d->outputs[j].packed_off;
	}
	*ret = l;
}

int qv_tensors_check(const struct qv_layout *l, const struct qv_tensors *t, uint32_t rows)
{
	if (!t || t->n_inputs != l->n_in || t->n_outputs != l->n_out || !t->inputs ||
	    !t->outputs || !t->out_caps)
		return -EINVAL;
	for (uint32_t i = 0; i < l->n_in; i++)
		if (!t->inputs[i])
			return -EINVAL;
	for (uint32_t j = 0; j < l->n_out; j++)
		if (!t->outputs[j])
			return -EINVAL;
	for (uint32_t j = 0; j < l->n_out; j++)
		if (t->out_caps[j] < (uint64_t)rows * l->out_rb[j])
			return -ENOBUFS;
	return 0;
}

void qv_tensors_pack(const struct qv_layout *l, const void *const *in, uint32_t rows, void *dst)
{
	uint8_t *d = dst;

	if (l->n_in == 1) {
		memcpy(d, in[0], (size_t)rows * l->in_row);
		return;
	}
	for (uint32_t r = 0; r < rows; r++, d += l->in_row)
		for (uint32_t i = 0; i < l->n_in; i++)
			memcpy(d + l->in_off[i], (const uint8_t *)in[i] + (size_t)r * l->in_rb[i],
			       l->in_rb[i]);
}

void qv_tensors_unpack(const struct qv_layout *l, const void *src, uint32_t rows,
		       void *const *out)
{
	const uint8_t *s = src;

	if (l->n_out == 1) {
		memcpy(out[0], s, (size_t)rows * l->out_row);
		return;
	}
	for (uint32_t r = 0; r < rows; r++, s += l->out_row)
		for (uint32_t j = 0; j < l->n_out; j++)
			memcpy((uint8_t *)out[j] + (size_t)r * l->out_rb[j], s + l->out_off[j],
			       l->out_rb[j]);
}
