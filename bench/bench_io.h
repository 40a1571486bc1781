/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_io.h - quiver-bench's named inputs and outputs: `--input
 * NAME=FILE.npy` / `--output NAME=FILE.npy` (repeatable; a lone FILE.npy
 * names the model's only input or output), read into one buffer per input
 * tensor in its dtype and written from one buffer per output; and the
 * benchmark's own inputs, float tensors in [-1, 1) and id tensors inside
 * the table they index. One description of a model's tensors serves the
 * in-process runtime and a daemon's lookup alike.
 */
#ifndef QV_BENCH_IO_H
#define QV_BENCH_IO_H

#include <stddef.h>
#include <stdint.h>

#include "quiver.h"

#define QV_BENCH_MAX_TENSORS 16u

struct qv_bench_tensor {
	char name[64];
	uint32_t dtype;         /* 1 float32, 6 int32, 7 int64 (ONNX numbering) */
	uint32_t rank;          /* with the batch */
	int64_t shape[8];       /* shape[0] is the batch */
	uint32_t row_bytes, packed_off;
	int64_t index_bound;    /* ids in [0, index_bound); 0: not an id input */
};

struct qv_bench_layout {
	uint32_t n_in, n_out;
	uint32_t in_row, out_row;               /* bytes of a packed row */
	struct qv_bench_tensor in[QV_BENCH_MAX_TENSORS], out[QV_BENCH_MAX_TENSORS];
};

/* From a lookup (the remote modes). */
void qv_bench_layout_of_desc(const struct qv_model_desc *d, struct qv_bench_layout *ret);
/* From a loaded model (in process); -errno if it describes no tensors. */
struct qv_model;
int qv_bench_layout_of_model(const struct qv_model *m, struct qv_bench_layout *ret);

/* Whether the model is one float32 input and one float32 output. */
int qv_bench_layout_plain(const struct qv_bench_layout *l);

/* Fills rows packed input rows at `packed`: float elements in [-1, 1),
 * integer elements in [0, index_bound) (0 when the bound is 0), from a
 * fixed seed. */
void qv_bench_fill_packed(const struct qv_bench_layout *l, void *packed, uint32_t rows,
			  uint64_t seed);

struct qv_bench_io_arg {
	const char *name;       /* NULL: the lone form, FILE.npy */
	const char *path;
};

struct qv_bench_io {
	struct qv_bench_io_arg in[QV_BENCH_MAX_TENSORS], out[QV_BENCH_MAX_TENSORS];
	unsigned n_in, n_out;
};

/* Adds one --input (is_output 0) or --output value, "NAME=FILE" or
 * "FILE". Returns 0, or 2 after printing why (too many, empty name or
 * path, a name given twice, a lone form beside others). */
int qv_bench_io_add(struct qv_bench_io *io, int is_output, const char *val);

/*
 * Reads the inputs io names for the model of layout l: every input tensor
 * exactly once, each file [N, per-row dims...] (or [N] for a row of one
 * element) with the same N, float32 for float tensors, int32 or int64 for
 * integer ones (converted to the tensor's type; a value that does not fit
 * is refused). ret_in[i] (malloc'ed, N * row_bytes) is input i. Returns 0,
 * or 2 after printing why (bad argument or file), 1 out of memory.
 */
int qv_bench_io_read(const struct qv_bench_layout *l, const struct qv_bench_io *io,
		     void **ret_in, size_t *ret_rows);

/* Allocates one buffer per output (rows * row_bytes): 0 or 1. */
int qv_bench_io_alloc_out(const struct qv_bench_layout *l, size_t rows, void **ret_out);

/*
 * Checks io's outputs name outputs of l (once each; the lone form only for
 * a model with one output). Returns 0 or 2 after printing why. Done before
 * running so a typo costs nothing.
 */
int qv_bench_io_check_out(const struct qv_bench_layout *l, const struct qv_bench_io *io);

/* Writes every output io names, [N, per-row dims...] in its dtype: 0 or 1. */
int qv_bench_io_write(const struct qv_bench_layout *l, const struct qv_bench_io *io,
		      void *const *out, size_t rows);

void qv_bench_io_free(void **bufs, uint32_t n);

#endif /* QV_BENCH_IO_H */
