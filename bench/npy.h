/* SPDX-License-Identifier: Apache-2.0 */
/*
 * npy.h - read and write NumPy .npy files holding float32 arrays in C order
 * (format versions 1.0-3.0); qv_npy_read_typed also reads int32 and int64
 * arrays (embedding ids). Just enough of the format for model inputs and
 * outputs; anything else ('<f8', Fortran order, object arrays) is refused
 * with -ENOTSUP. Hand-written because Debian ships no C library for
 * .npy and the format is one small header plus raw data.
 */
#ifndef QV_NPY_H
#define QV_NPY_H

#include <stddef.h>
#include <stdint.h>

#define QV_NPY_MAX_RANK 8

/* Element types, numbered as ONNX's TensorProto.DataType (and qv_dtype). */
enum qv_npy_dtype {
	QV_NPY_F32 = 1,   /* '<f4' */
	QV_NPY_I32 = 6,   /* '<i4' */
	QV_NPY_I64 = 7,   /* '<i8' */
	QV_NPY_F64 = 11,  /* '<f8': only qv_npy_header_read knows it (streamed, converted by the reader) */
};

struct qv_npy {
	uint32_t rank;
	int64_t shape[QV_NPY_MAX_RANK];
	size_t count;   /* elements */
	union {
		float *data;  /* malloc'ed, count floats (dtype QV_NPY_F32) */
		void *raw;    /* malloc'ed, count elements of dtype */
	};
	uint32_t dtype;      /* enum qv_npy_dtype */
	uint32_t elem_size;  /* bytes an element */
};

/* A header as read by qv_npy_header_read: the data begins at data_off. */
struct qv_npy_header {
	uint32_t rank;
	int64_t shape[QV_NPY_MAX_RANK];
	size_t count;        /* elements; count * elem_size fits a size_t */
	uint32_t dtype;      /* enum qv_npy_dtype; 0: another descr (elem_size 1) */
	uint32_t elem_size;
	uint64_t data_off;
	char descr[12];      /* the header's descr, quoted, for messages ('<f4') */
};

/*
 * Reads and checks the header of a C-order array from fd (at offset 0), leaving fd at data_off; name is for messages.
 * The one header parser: the whole-array readers below and streaming
 * readers that take the data in pieces both use it; each refuses the
 * dtypes it does not read, in its own words.
 */
int qv_npy_header_read(int fd, const char *name, struct qv_npy_header *ret, char *err,
		       size_t err_len);

/* Returns 0 or -errno; on failure err holds a message. float32 only. */
int qv_npy_read(const char *path, struct qv_npy *ret, char *err, size_t err_len);
/* The same for float32, int32 and int64 arrays: see ret->dtype. */
int qv_npy_read_typed(const char *path, struct qv_npy *ret, char *err, size_t err_len);
/* Writes a float32 C-order array. */
int qv_npy_write(const char *path, const float *data, uint32_t rank, const int64_t *shape);
/* Writes a C-order array of dtype (enum qv_npy_dtype). */
int qv_npy_write_typed(const char *path, const void *data, uint32_t dtype, uint32_t rank,
		       const int64_t *shape);
void qv_npy_free(struct qv_npy *a);

#endif
