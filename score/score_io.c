/* SPDX-License-Identifier: Apache-2.0 */
/*
 * score_io.c - .npy headers and CSV rows for quiver-score. The .npy reader
 * in bench/npy.c loads a whole array; here only the header is parsed and
 * the data streamed, and float64 ('<f8') is accepted too (converted row by
 * row). CSV is parsed by hand: Debian has no C CSV library worth a
 * dependency for "numbers separated by commas", and the parser must report
 * the exact field that is wrong.
 */
#include "score_io.h"

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

static int read_full(int fd, void *buf, size_t n)
{
	size_t o = 0;

	while (o < n) {
		ssize_t r = read(fd, (char *)buf + o, n - o);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		o += (size_t)r;
	}
	return (int)(o == n);
}

static const char *dict_value(const char *hdr, const char *key)
{
	char pat[32];
	const char *p;

	snprintf(pat, sizeof(pat), "'%s':", key);
	p = strstr(hdr, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	return p;
}

int qv_npy_stream_open(int fd, const char *name, struct qv_npy_stream *ret, char *err,
		       size_t errlen)
{
	unsigned char pre[12];
	size_t hlen, pre_len = 10;
	char *hdr;
	const char *d, *fo, *s;
	struct qv_npy_stream a = { 0 };
	uint32_t rank = 0;
	int r;

	r = read_full(fd, pre, 10);
	if (r <= 0 || memcmp(pre, "\x93NUMPY", 6) != 0)
		return r < 0 ? r : fail(err, errlen, "%s: not a .npy file", name);
	if (pre[6] == 1) {
		hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
	} else if (pre[6] == 2 || pre[6] == 3) {
		if (read_full(fd, pre + 10, 2) != 1)
			return fail(err, errlen, "%s: truncated header", name);
		hlen = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)pre[10] << 16) |
		       ((size_t)pre[11] << 24);
		pre_len = 12;
	} else {
		return fail(err, errlen, "%s: unsupported .npy version %u", name, pre[6]);
	}
	if (hlen > (1u << 20))
		return fail(err, errlen, "%s: header too large", name);
	hdr = calloc(1, hlen + 1);
	if (!hdr)
		return -ENOMEM;
	if (read_full(fd, hdr, hlen) != 1) {
		free(hdr);
		return fail(err, errlen, "%s: truncated header", name);
	}
	d = dict_value(hdr, "descr");
	if (d && strncmp(d, "'<f4'", 5) == 0)
		a.elem = 4;
	else if (d && strncmp(d, "'<f8'", 5) == 0)
		a.elem = 8;
	fo = dict_value(hdr, "fortran_order");
	s = dict_value(hdr, "shape");
	r = 0;
	if (!a.elem)
		r = fail(err, errlen, "%s: dtype %.8s is not little-endian float32 or float64",
			 name, d ? d : "?");
	else if (!fo || strncmp(fo, "False", 5) != 0)
		r = fail(err, errlen, "%s: Fortran order is not supported (save it C-ordered)", name);
	else if (!s || *s != '(')
		r = fail(err, errlen, "%s: no shape in the header", name);
	if (r < 0) {
		free(hdr);
		return r;
	}
	a.width = 1;
	s++;
	while (*s && *s != ')') {
		char *end;
		unsigned long long v;
		while (*s == ' ' || *s == ',')
			s++;
		if (*s == ')')
			break;
		v = strtoull(s, &end, 10);
		if (end == s || *s == '-' || v > (1ull << 48)) {
			free(hdr);
			return fail(err, errlen, "%s: bad shape", name);
		}
		if (rank == 0)
			a.rows = v;
		else
			a.width *= v;
		if (a.width > (1u << 24)) {
			free(hdr);
			return fail(err, errlen, "%s: rows of more than 2^24 values", name);
		}
		rank++;
		s = end;
	}
	free(hdr);
	if (rank == 0)
		return fail(err, errlen, "%s: a 0-d array has no rows", name);
	a.data_off = pre_len + hlen;
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
