/* SPDX-License-Identifier: Apache-2.0 */
/*
 * score_io.c - .npy headers and CSV rows for quiver-score. The header is
 * parsed by bench/npy.c's qv_npy_header_read (the one .npy header parser);
 * here the data is then streamed, and float64 ('<f8') is accepted too
 * (converted row by row). CSV is parsed by hand: Debian has no C CSV library worth a
 * dependency for "numbers separated by commas", and the parser must report
 * the exact field that is wrong.
 */
#include "score_io.h"

#include "npy.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t len, const char *fmt, ...)
{
	if (err && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int qv_npy_stream_open(int fd, const char *name, struct qv_npy_stream *ret, char *err,
		       size_t errlen)
{
	struct qv_npy_stream a = { 0 };
	struct qv_npy_header h;
	int r = qv_npy_header_read(fd, name, &h, err, errlen);

	if (r < 0)
		return r;
	if (h.dtype != QV_NPY_F32 && h.dtype != QV_NPY_F64)
		return fail(err, errlen, "%s: dtype %s is not little-endian float32 or float64",
			    name, h.descr);
	if (h.rank == 0)
		return fail(err, errlen, "%s: a 0-d array has no rows", name);
	a.elem = h.elem_size;
	a.rows = (uint64_t)h.shape[0];
	a.width = 1;
	for (uint32_t i = 1; i < h.rank; i++) {
		a.width *= (uint64_t)h.shape[i];
		if (a.width > (1u << 24))
			return fail(err, errlen, "%s: rows of more than 2^24 values", name);
	}
	a.data_off = h.data_off;
	*ret = a;
	return 0;
}

size_t qv_npy_out_header(char buf[QV_NPY_OUT_HDR], uint64_t rows, uint64_t width)
{
	int n;

	memset(buf, ' ', QV_NPY_OUT_HDR);
	memcpy(buf, "\x93NUMPY\x01\x00", 8);
	buf[8] = (char)(QV_NPY_OUT_HDR - 10);
	buf[9] = 0;
	n = snprintf(buf + 10, QV_NPY_OUT_HDR - 10,
		     "{'descr': '<f4', 'fortran_order': False, 'shape': (%" PRIu64 ", %" PRIu64
		     "), }", rows, width);
	buf[10 + n] = ' ';   /* snprintf's NUL becomes padding */
	buf[QV_NPY_OUT_HDR - 1] = '\n';
	return QV_NPY_OUT_HDR;
}

int qv_csv_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

int qv_csv_parse_row(const char *s, size_t n, uint32_t width, float *out, char *why,
		     size_t whylen)
{
	char field[64];
	uint32_t k = 0;
	size_t i = 0;

	if (n && s[n - 1] == '\r')
		n--;
	for (;;) {
		size_t b = i, e;
		while (i < n && s[i] != ',')
			i++;
		e = i;
		while (b < e && (s[b] == ' ' || s[b] == '\t'))
			b++;
		while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
			e--;
		if (k < width) {
			char *end;
			size_t fl = e - b;
			float v;
			if (fl == 0 || fl >= sizeof(field))
				return fail(why, whylen, "field %u '%.*s' is not a number", k + 1,
					    (int)(fl < 24 ? fl : 24), s + b);
			memcpy(field, s + b, fl);
			field[fl] = '\0';
			errno = 0;
			v = strtof(field, &end);
			/* ERANGE for underflow to a subnormal/zero is still a number; overflow is inf. */
			if (end != field + fl || (errno == ERANGE && isinf(v) && !strchr(field, 'i') &&
						  !strchr(field, 'I')))
				return fail(why, whylen, "field %u '%.24s' is not a number", k + 1,
					    field);
			out[k] = v;
		}
		k++;
		if (i >= n)
			break;
		i++;   /* past the comma */
	}
	if (k != width)
		return fail(why, whylen, "%u field%s, the model takes %u", k, k == 1 ? "" : "s",
			    width);
	return 0;
}
