/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_npy.c - the .npy header parser (qv_npy_header_read) and the
 * whole-array readers built on it, on files written byte by byte here:
 * every dtype it knows, format version 2, and each malformed header and
 * truncation refused with its errno and message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npy.h"

static int failures;
#define CHECK(c)                                                                  \
	do {                                                                      \
		if (!(c)) {                                                       \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			failures++;                                               \
		}                                                                 \
	} while (0)

static char path[64];

/* Writes a version-1 (or 2) file: magic, header dict, then data bytes. */
static void put(int version, const char *dict, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	size_t dl = strlen(dict);
	unsigned char pre[12] = { 0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)version, 0 };
	size_t pl = version == 1 ? 10 : 12;

	pre[8] = (unsigned char)(dl & 0xff);
	pre[9] = (unsigned char)(dl >> 8);
	pre[10] = pre[11] = 0;
	fwrite(pre, 1, pl, f);
	fwrite(dict, 1, dl, f);
	if (n)
		fwrite(data, 1, n, f);
	fclose(f);
}

static int header(struct qv_npy_header *h, char *err, size_t len)
{
	int fd = open(path, O_RDONLY), r;

	if (fd < 0)
		return -errno;
	r = qv_npy_header_read(fd, path, h, err, len);
	if (r == 0)
		CHECK(lseek(fd, 0, SEEK_CUR) == (off_t)h->data_off);
	close(fd);
	return r;
}

int main(void)
{
	struct qv_npy_header h;
	struct qv_npy a;
	char err[256];
	float f4[6] = { 1, 2, 3, 4, 5, 6 };
	double f8[2] = { 1.5, -2.5 };
	long long i8[3] = { 7, -8, 1LL << 40 };
	int fd;

	snprintf(path, sizeof(path), "/tmp/qv-npy-%d.npy", (int)getpid());

	/* float32 (2, 3), version 1: header, then the whole array. */
	put(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", f4, sizeof(f4));
	CHECK(header(&h, err, sizeof(err)) == 0);
	CHECK(h.dtype == QV_NPY_F32 && h.elem_size == 4 && h.rank == 2 && h.shape[0] == 2 &&
	      h.shape[1] == 3 && h.count == 6 && strcmp(h.descr, "'<f4'") == 0);
	CHECK(qv_npy_read(path, &a, err, sizeof(err)) == 0);
	CHECK(a.rank == 2 && a.count == 6 && memcmp(a.data, f4, sizeof(f4)) == 0);
	qv_npy_free(&a);

	/* Version 2 (4-byte header length). */
	static const char v2[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }\n";
	put(2, v2, f4, sizeof(f4));
	CHECK(header(&h, err, sizeof(err)) == 0 && h.data_off == 12 + strlen(v2) && h.rank == 1);
	CHECK(qv_npy_read(path, &a, err, sizeof(err)) == 0 && a.count == 6 && a.data[5] == 6.0f);
	qv_npy_free(&a);

	/* float64: the header knows it; the whole-array readers refuse it. */
	put(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n", f8, sizeof(f8));
	CHECK(header(&h, err, sizeof(err)) == 0 && h.dtype == QV_NPY_F64 && h.elem_size == 8);
	CHECK(qv_npy_read_typed(path, &a, err, sizeof(err)) == -ENOTSUP);
	CHECK(strstr(err, "dtype is not little-endian float32, int32 or int64"));

	/* int64: typed reader only. */
	put(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }\n", i8, sizeof(i8));
	CHECK(qv_npy_read(path, &a, err, sizeof(err)) == -ENOTSUP);
	CHECK(strstr(err, "('<f4')"));
	CHECK(qv_npy_read_typed(path, &a, err, sizeof(err)) == 0);
	CHECK(a.dtype == QV_NPY_I64 && a.count == 3 && ((long long *)a.raw)[2] == (1LL << 40));
	qv_npy_free(&a);

	/* Another dtype: dtype 0 with its descr, refused by the reader. */
	put(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }\n", "abc", 3);
	CHECK(header(&h, err, sizeof(err)) == 0 && h.dtype == 0 && strcmp(h.descr, "'|u1'") == 0);
	CHECK(qv_npy_read_typed(path, &a, err, sizeof(err)) == -ENOTSUP);

	/* Malformed headers. */
	put(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", f4, sizeof(f4));
	CHECK(header(&h, err, sizeof(err)) == -ENOTSUP && strstr(err, "Fortran order"));
	put(1, "{'descr': '<f4', 'fortran_order': False, }\n", NULL, 0);
	CHECK(header(&h, err, sizeof(err)) == -EINVAL && strstr(err, "no shape"));
	put(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }\n", NULL, 0);
	CHECK(header(&h, err, sizeof(err)) == -EINVAL && strstr(err, "bad shape"));
	put(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n",
	    NULL, 0);
	CHECK(header(&h, err, sizeof(err)) == -EINVAL && strstr(err, "shape too large"));
	put(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }\n", f4, 4);
	CHECK(header(&h, err, sizeof(err)) == -EINVAL && strstr(err, "bad shape"));
	put(7, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", f4, 4);
	CHECK(header(&h, err, sizeof(err)) == -EINVAL && strstr(err, "unsupported .npy version 7"));

	/* Not a .npy file; a header longer than the file; data cut short. */
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(write(fd, "PK\3\4 not numpy", 15) == 15);
	close(fd);
	CHECK(header(&h, err, sizeof(err)) == -EINVAL && strstr(err, "not a .npy file"));
	put(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", f4, sizeof(f4));
	CHECK(truncate(path, 30) == 0);
	CHECK(header(&h, err, sizeof(err)) == -EINVAL && strstr(err, "truncated header"));
	put(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", f4, sizeof(f4) - 4);
	CHECK(qv_npy_read(path, &a, err, sizeof(err)) == -EINVAL && strstr(err, "truncated data"));

	/* A missing file: its errno. */
	unlink(path);
	CHECK(qv_npy_read(path, &a, err, sizeof(err)) == -ENOENT);

	if (failures)
		return 1;
	puts("ok");
	return 0;
}
