/* SPDX-License-Identifier: Apache-2.0 */
/*
 * s3fetch_cli URL CACHE [ENDPOINT]: runs qv_s3_fetch once, as quiverd would,
 * and prints "dir=... objects=N fetched=N bytes=N" or the error (exit 1
 * and the negative errno's name on stderr). For the S3 tests.
 */
#include <stdio.h>
#include <string.h>

#include "s3fetch.h"

int main(int argc, char **argv)
{
	char dir[4096], err[1024];
	struct qv_s3_stats st;
	struct qv_s3_opts o = { .endpoint = argc > 3 ? argv[3] : NULL };
	int rc;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: s3fetch_cli URL CACHE [ENDPOINT]\n");
		return 2;
	}
	rc = qv_s3_fetch(argv[1], argv[2], &o, dir, sizeof(dir), &st, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "error (%s): %s\n", strerror(-rc), err);
		return 1;
	}
	printf("dir=%s objects=%u fetched=%u bytes=%llu\n", dir, st.objects, st.fetched, st.bytes);
	return 0;
}
