/* SPDX-License-Identifier: Apache-2.0 */
/*
 * floor_onednn.h - the "floor" quiver-bench measures the runtime against:
 * a dense chain executed through direct oneDNN C API calls, written the way
 * a user who reads oneDNN's matmul example would write it, with nothing
 * around it (no plan, no dispatch, no context).
 *
 * One matmul primitive a layer, made for one fixed batch size:
 *  - src and dst memory in plain row-major (format_tag ab), the user's own
 *    buffers for the chain's input and output, one buffer per hidden layer;
 *  - weights described with format_tag any, so oneDNN picks its layout, and
 *    reordered once from the K x N row-major user weights;
 *  - bias {1, N} and the activation fused as an eltwise post-op.
 * run() executes the primitives back to back on one stream and waits once.
 */
#ifndef QV_FLOOR_ONEDNN_H
#define QV_FLOOR_ONEDNN_H

#include <stddef.h>
#include <stdint.h>

#include "qv_ops.h"

struct qv_floor;

/*
 * Builds the primitives for `rows` rows, reading `in` (rows x layers[0].K)
 * and writing `out` (rows x layers[n-1].N). A layer whose K (or matrix
 * rows, rows * rows_mult) differs from the previous layer's output reads a
 * buffer of its own - a graph's dense layers, back to back, need not be a
 * chain; with in and out NULL the floor uses its own buffers throughout. The layers' weights are copied
 * (reordered), so the floor does not depend on the model staying alive.
 * Returns 0 or -errno; on failure err names the layer and the oneDNN call.
 */
int qv_floor_create(const struct qv_dense_layer *layers, uint32_t n_layers, uint32_t rows,
		    const float *in, float *out, struct qv_floor **ret_floor,
		    char *err, size_t err_len);

/* Points the chain at other user buffers (slow path, between runs). */
int qv_floor_set_io(struct qv_floor *f, const float *in, float *out);

/* Hot path: executes every layer once. Returns 0 or -EIO if oneDNN fails. */
int qv_floor_run(struct qv_floor *f);

void qv_floor_free(struct qv_floor *f);

#endif /* QV_FLOOR_ONEDNN_H */
