/* SPDX-License-Identifier: Apache-2.0 */
/*
 * onnx_tensor.h - decoding an ONNX TensorProto (initializers, Constant
 * values), shared by the MLP loader (onnx_load.c) and the general graph
 * loader (gx_load.c). Internal to kernels/.
 */
#ifndef QV_ONNX_TENSOR_H
#define QV_ONNX_TENSOR_H

#include <stdint.h>

#include "graph.h"
#include "onnx.pb-c.h"

struct qv_onnx_tensor {
	uint32_t dtype;      /* ONNX data type: FLOAT, INT64, or with QV_ONNX_WIDE INT32 / BOOL */
	uint32_t rank;
	int64_t shape[QV_MAX_RANK];
	uint64_t numel;
	uint32_t esz;        /* bytes an element in `data`: 4 float, 8 int64 (int32 widened), 1 bool */
	void *data;          /* malloc'd, the caller owns it */
};

/* Also accept int32 (widened to int64) and bool (one byte 0/1). */
#define QV_ONNX_WIDE 1u

/* Checks and copies tp's data; at most `budget` bytes. `what` names the
 * tensor in errors ("initializer 'W'"). */
int qv_onnx_tensor_decode(const Onnx__TensorProto *tp, unsigned flags, uint64_t budget,
			  const char *what, struct qv_onnx_tensor *ret, char *err, size_t err_len);

#endif /* QV_ONNX_TENSOR_H */
