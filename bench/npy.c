/* SPDX-License-Identifier: Apache-2.0 */
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
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

/* Reads n bytes: 1 all of them, 0 end of file first, -errno. */
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
	return o == n;
}

static const struct {
	char descr[6];
	uint32_t dtype, elem_size;
} dtypes[] = {
	{ "'<f4'", QV_NPY_F32, 4 },
	{ "'<f8'", QV_NPY_F64, 8 },
	{ "'<i4'", QV_NPY_I32, 4 },
	{ "'<i8'", QV_NPY_I64, 8 },
};

int qv_npy_header_read(int fd, const char *name, struct qv_npy_header *ret, char *err,
		       size_t err_len)
{
	struct qv_npy_header h = { 0 };
	unsigned char pre[12];
	size_t hlen, pre_len = 10;
	char *hdr = NULL;
	int r = read_full(fd, pre, 10);

	if (r < 0)
		return r;
	if (r == 0 || memcmp(pre, "\x93NUMPY", 6) != 0)
		return fail(err, err_len, "%s: not a .npy file", name);
	if (pre[6] == 1) {
		hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
	} else if (pre[6] == 2 || pre[6] == 3) {
		if (read_full(fd, pre + 10, 2) != 1)
			return fail(err, err_len, "%s: truncated header", name);
		hlen = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)pre[10] << 16) |
		       ((size_t)pre[11] << 24);
		pre_len = 12;
	} else {
		return fail(err, err_len, "%s: unsupported .npy version %u", name, pre[6]);
	}
	if (hlen > (1u << 20))
		return fail(err, err_len, "%s: header too large", name);
	hdr = calloc(1, hlen + 1);
	if (!hdr)
		return -ENOMEM;
	r = -EINVAL;
	if (read_full(fd, hdr, hlen) != 1) {
		fail(err, err_len, "%s: truncated header", name);
		goto out;
	}
	const char *d = dict_value(hdr, "descr");
	if (d && (*d == '\'' || *d == '"')) {   /* the quoted string, quotes kept */
		const char *q = strchr(d + 1, *d);
		int n = q ? (int)(q - d) + 1 : 8;
		snprintf(h.descr, sizeof(h.descr), "%.*s", n < 10 ? n : 10, d);
	} else {
		snprintf(h.descr, sizeof(h.descr), "?");
	}
	for (size_t i = 0; d && i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
		if (strncmp(d, dtypes[i].descr, 5) == 0) {
			h.dtype = dtypes[i].dtype;
			h.elem_size = dtypes[i].elem_size;
		}
	if (!h.dtype)
		h.elem_size = 1;   /* another dtype: the caller refuses it, in its own words */
	const char *fo = dict_value(hdr, "fortran_order");
	if (!fo || strncmp(fo, "False", 5) != 0) {
		fail(err, err_len, "%s: Fortran order is not supported (save it C-ordered)", name);
		r = -ENOTSUP;
		goto out;
	}
	const char *s = dict_value(hdr, "shape");
	if (!s || *s != '(') {
		fail(err, err_len, "%s: no shape in the header", name);
		goto out;
	}
	h.count = 1;
	s++;
	while (*s && *s != ')') {
		while (*s == ' ' || *s == ',')
			s++;
		if (*s == ')')
			break;
		char *end;
		long long v = strtoll(s, &end, 10);
		if (end == s || v < 0 || h.rank == QV_NPY_MAX_RANK) {
			fail(err, err_len, "%s: bad shape", name);
			goto out;
		}
		if (v != 0 && h.count > (SIZE_MAX / h.elem_size) / (size_t)v) {
			fail(err, err_len, "%s: shape too large", name);
			goto out;
		}
		h.shape[h.rank++] = v;
		h.count *= (size_t)v;
		s = end;
	}
	h.data_off = pre_len + hlen;
	*ret = h;
	r = 0;
out:
	free(hdr);
	return r;
}

static int npy_read(const char *path, int any_dtype, struct qv_npy *ret, char *err,
		    size_t err_len)
{
	struct qv_npy_header h;
	void *data = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0) {
		int e = errno;
		fail(err, err_len, "%s: %s", path, strerror(e));
		return -e;
	}
	r = qv_npy_header_read(fd, path, &h, err, err_len);
	if (r < 0)
		goto out;
	if (!h.dtype || h.dtype == QV_NPY_F64 || (!any_dtype && h.dtype != QV_NPY_F32)) {
		fail(err, err_len, any_dtype ? "%s: dtype is not little-endian float32, int32 or int64"
			 : "%s: dtype is not little-endian float32 ('<f4')", path);
		r = -ENOTSUP;
		goto out;
	}
	data = malloc(h.count ? h.count * h.elem_size : 1);
	if (!data) {
		r = -ENOMEM;
		goto out;
	}
	r = read_full(fd, data, h.count * h.elem_size);
	if (r <= 0) {
		fail(err, err_len, "%s: truncated data (%zu elements expected)", path, h.count);
		r = r < 0 ? r : -EINVAL;
		goto out;
	}
	*ret = (struct qv_npy){ .rank = h.rank, .count = h.count, .raw = data,
				.dtype = h.dtype, .elem_size = h.elem_size };
	memcpy(ret->shape, h.shape, sizeof(h.shape));
	data = NULL;
	r = 0;
out:
	free(data);
	close(fd);
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
