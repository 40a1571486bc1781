/* SPDX-License-Identifier: Apache-2.0 */
#include "npy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Parses "'key': value" out of the header dict; returns pointer after "key': ". */
static const char *dict_value(const char *hdr, const char *key)
{
	char pat[32];
	snprintf(pat, sizeof(pat), "'%s':", key);
	const char *p = strstr(hdr, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	return p;
}

static int npy_read(const char *path, int any_dtype, struct qv_npy *ret, char *err,
		    size_t err_len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		fail(err, err_len, "%s: %s", path, strerror(e));
		return -e;
	}
	unsigned char pre[10];
	char *hdr = NULL;
	void *data = NULL;
	int r = -EINVAL;
	if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
		fail(err, err_len, "%s: not a .npy file", path);
		goto out;
	}
	size_t hlen;
	if (pre[6] == 1) {
		hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
	} else if (pre[6] == 2 || pre[6] == 3) {
		unsigned char ext[2];
		if (fread(ext, 1, 2, f) != 2) {
			fail(err, err_len, "%s: truncated header", path);
			goto out;
		}
		hlen = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)ext[0] << 16) |
		       ((size_t)ext[1] << 24);
	} else {
		fail(err, err_len, "%s: unsupported .npy version %u", path, pre[6]);
		goto out;
	}
	if (hlen > (1u << 20)) {
		fail(err, err_len, "%s: header too large", path);
		goto out;
	}
	hdr = calloc(1, hlen + 1);
	if (!hdr) {
		r = -ENOMEM;
		goto out;
	}
	if (fread(hdr, 1, hlen, f) != hlen) {
		fail(err, err_len, "%s: truncated header", path);
		goto out;
	}
	const char *d = dict_value(hdr, "descr");
	uint32_t dtype = 0, esize = 4;
	if (d && strncmp(d, "'<f4'", 5) == 0)
		dtype = QV_NPY_F32;
	else if (any_dtype && d && strncmp(d, "'<i4'", 5) == 0)
		dtype = QV_NPY_I32;
	else if (any_dtype && d && strncmp(d, "'<i8'", 5) == 0)
		dtype = QV_NPY_I64, esize = 8;
	if (!dtype) {
		fail(err, err_len, any_dtype ? "%s: dtype is not little-endian float32, int32 or int64"
			 : "%s: dtype is not little-endian float32 ('<f4')", path);
		r = -ENOTSUP;
		goto out;
	}
	const char *fo = dict_value(hdr, "fortran_order");
	if (!fo || strncmp(fo, "False", 5) != 0) {
		fail(err, err_len, "%s: Fortran order is not supported", path);
		r = -ENOTSUP;
		goto out;
	}
	const char *s = dict_value(hdr, "shape");
	if (!s || *s != '(') {
		fail(err, err_len, "%s: no shape in header", path);
		goto out;
	}
	struct qv_npy a = {0};
	a.dtype = dtype;
	a.elem_size = esize;
	a.count = 1;
	s++;
	while (*s && *s != ')') {
		while (*s == ' ' || *s == ',')
			s++;
		if (*s == ')')
			break;
		char *end;
		long long v = strtoll(s, &end, 10);
		if (end == s || v < 0 || a.rank == QV_NPY_MAX_RANK) {
			fail(err, err_len, "%s: bad shape", path);
			goto out;
		}
		if (v != 0 && a.count > (SIZE_MAX / esize) / (size_t)v) {
			fail(err, err_len, "%s: shape too large", path);
			goto out;
		}
		a.shape[a.rank++] = v;
		a.count *= (size_t)v;
		s = end;
	}
	data = malloc(a.count ? a.count * esize : 1);
	if (!data) {
		r = -ENOMEM;
		goto out;
	}
	if (fread(data, esize, a.count, f) != a.count) {
		fail(err, err_len, "%s: truncated data (%zu elements expected)", path, a.count);
		goto out;
	}
	a.raw = data;
	data = NULL;
	*ret = a;
	r = 0;
out:
	free(data);
	free(hdr);
	fclose(f);
	return r;
}

int qv_npy_read(const char *path, struct qv_npy *ret, char *err, size_t err_len)
{
	return npy_read(path, 0, ret, err, err_len);
}

int qv_npy_read_typed(const char *path, struct qv_npy *ret, char *err, size_t err_len)
{
	return npy_read(path, 1, ret, err, err_len);
}

int qv_npy_write(const char *path, const float *data, uint32_t rank, const int64_t *shape)
{
	return qv_npy_write_typed(path, data, QV_NPY_F32, rank, shape);
}

int qv_npy_write_typed(const char *path, const void *data, uint32_t dtype, uint32_t rank,
		       const int64_t *shape)
{
	const char *descr = dtype == QV_NPY_F32 ? "<f4" : dtype == QV_NPY_I32 ? "<i4" :
			    dtype == QV_NPY_I64 ? "<i8" : NULL;
	size_t esz = dtype == QV_NPY_I64 ? 8 : 4;
	if (rank > QV_NPY_MAX_RANK || !descr)
		return -EINVAL;
	char dict[256];
	int n = snprintf(dict, sizeof(dict), "{'descr': '%s', 'fortran_order': False, 'shape': (",
			 descr);
	size_t count = 1;
	for (uint32_t i = 0; i < rank; i++) {
		n += snprintf(dict + n, sizeof(dict) - (size_t)n, "%lld,%s", (long long)shape[i],
			      i + 1 < rank ? " " : "");
		count *= (size_t)shape[i];
	}
	n += snprintf(dict + n, sizeof(dict) - (size_t)n, "), }");
	/* Pad with spaces so data starts on a 64-byte boundary, newline last. */
	size_t total = 10 + (size_t)n + 1;
	size_t pad = (64 - total % 64) % 64;
	size_t hlen = (size_t)n + pad + 1;
	FILE *f = fopen(path, "wb");
	if (!f)
		return -errno;
	unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
				 (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
	int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(dict, 1, (size_t)n, f) == (size_t)n;
	for (size_t i = 0; ok && i < pad; i++)
		ok = fputc(' ', f) != EOF;
	ok = ok && fputc('\n', f) != EOF;
	ok = ok && fwrite(data, esz, count, f) == count;
	if (fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -EIO;
}

void qv_npy_free(struct qv_npy *a)
{
	free(a->data);
	a->data = NULL;
}
