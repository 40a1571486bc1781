/* SPDX-License-Identifier: Apache-2.0 */
/*
 * testutil.h - what the model tests share: the generated manifest
 * (tests/models/gen_models.py writes manifest.tsv) and whole-file reads.
 */
#ifndef QV_TESTUTIL_H
#define QV_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#define QV_TEST_SKIP 77

enum tu_kind { TU_GOOD, TU_BAD };

struct tu_entry {
	enum tu_kind kind;
	char name[96];
	uint32_t in_dim, out_dim;   /* good */
	double rtol, atol;          /* good */
	uint32_t max_steps;         /* good: plan must fuse to at most this; 0 = any */
	char errors[256];           /* bad: accepted substrings, '|'-separated */
};

struct tu_manifest {
	struct tu_entry *e;
	size_t n;
};

/* Reads DIR/manifest.tsv. Returns 0, -ENOENT when the directory or the
 * manifest is missing (models not generated: the caller skips), -errno. */
int tu_manifest_read(const char *dir, struct tu_manifest *ret);
void tu_manifest_free(struct tu_manifest *m);

/* Reads a whole file into a malloc'ed buffer (a zero-length file gives a
 * non-NULL buffer of length 0). */
int tu_read_file(const char *path, void **ret_buf, size_t *ret_len);

/* Is any '|'-separated alternative of `alts` a case-insensitive substring of s? */
int tu_contains_any(const char *s, const char *alts);

#endif
