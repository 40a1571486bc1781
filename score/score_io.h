/* SPDX-License-Identifier: Apache-2.0 */
/*
 * score_io.h - the streaming side of quiver-score: the header of a .npy
 * file read without its data (the data is then read in pieces, never whole),
 * a .npy header written with room for the row count known only at the end,
 * and one CSV line parsed into floats with a readable reason when it is bad.
 */
#ifndef QV_SCORE_IO_H
#define QV_SCORE_IO_H

#include <stddef.h>
#include <stdint.h>

/* Every error path returns -errno with a message in err. */

struct qv_npy_stream {
	uint32_t elem;          /* 4: '<f4', 8: '<f8' */
	uint64_t rows;          /* shape[0] (1 for a 0-d array is refused) */
	uint64_t width;         /* product of shape[1:] (1 for 1-D) */
	uint64_t data_off;      /* where the data begins */
};

/* Reads and checks the header from fd (at offset 0), leaving fd at data_off. */
int qv_npy_stream_open(int fd, const char *name, struct qv_npy_stream *ret, char *err,
		       size_t errlen);

/*
 * The header of a float32 (rows, width) C-order array, always
 * QV_NPY_OUT_HDR bytes (version 1.0, padded with spaces), so it can be
 * rewritten in place once rows is known. Returns the header length.
 */
#define QV_NPY_OUT_HDR 128u
size_t qv_npy_out_header(char buf[QV_NPY_OUT_HDR], uint64_t rows, uint64_t width);

/*
 * Parses line [s, s + n) (no newline; a trailing '\r' is ignored) of
 * comma-separated numbers into out[0..width). Spaces around fields are
 * allowed; "nan", "inf", "-inf" are numbers. Returns 0, or -EINVAL with a
 * reason in why: "31 fields, the model takes 32" / "field 5 'abc' is not a
 * number".
 */
int qv_csv_parse_row(const char *s, size_t n, uint32_t width, float *out, char *why,
		     size_t whylen);

/* 1 when the line is empty or only spaces ('\r' included). */
int qv_csv_blank(const char *s, size_t n);

#endif /* QV_SCORE_IO_H */
