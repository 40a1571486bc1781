/* SPDX-License-Identifier: Apache-2.0 */
/*
 * name_index.h - tensor name -> id, for the two graph loaders (graph.c for
 * the MLP plan, gx_load.c for the general runtime). Open addressing over
 * ids, at most half full, FNV-1a: names come from the model file, and
 * lookups must stay O(1) however many a hostile model declares. The owner
 * keeps the names; the index keeps ids and asks the owner for a name.
 * Internal to kernels/. Written rather than taken from a library: glibc's
 * hsearch allows one table per process (hsearch_r needs a fixed capacity up
 * front and cannot free keys), and nothing else in our dependencies has one.
 */
#ifndef QV_NAME_INDEX_H
#define QV_NAME_INDEX_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct qv_name_index {
	int32_t *slot;   /* cap entries, -1 empty */
	uint32_t cap;    /* a power of two, or 0 */
};

/* The name of id in the owner's table. */
typedef const char *(*qv_name_of)(const void *owner, int32_t id);

static inline uint32_t qv_name_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static inline void qv_name_index_put(struct qv_name_index *ix, const char *name, int32_t id)
{
	uint32_t mask = ix->cap - 1;
	uint32_t i = qv_name_hash(name) & mask;
	while (ix->slot[i] >= 0)
		i = (i + 1) & mask;
	ix->slot[i] = id;
}

/* Room for one more name when ids 0..n-1 are in: grows (doubling from
 * min_cap) and re-inserts them when the index would be over half full. */
static inline int qv_name_index_reserve(struct qv_name_index *ix, uint32_t n, uint32_t min_cap,
					qv_name_of name_of, const void *owner)
{
	if (2 * (n + 1) <= ix->cap)
		return 0;
	uint32_t cap = ix->cap ? 2 * ix->cap : min_cap;
	int32_t *s = malloc(cap * sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (uint32_t i = 0; i < cap; i++)
		s[i] = -1;
	free(ix->slot);
	ix->slot = s;
	ix->cap = cap;
	for (uint32_t i = 0; i < n; i++)
		qv_name_index_put(ix, name_of(owner, (int32_t)i), (int32_t)i);
	return 0;
}

/* The id named `name`, or -1. */
static inline int32_t qv_name_index_find(const struct qv_name_index *ix, const char *name,
					 qv_name_of name_of, const void *owner)
{
	if (!ix->cap)
		return -1;
	uint32_t mask = ix->cap - 1;
	for (uint32_t i = qv_name_hash(name) & mask; ix->slot[i] >= 0; i = (i + 1) & mask)
		if (!strcmp(name_of(owner, ix->slot[i]), name))
			return ix->slot[i];
	return -1;
}

static inline void qv_name_index_free(struct qv_name_index *ix)
{
	free(ix->slot);
	ix->slot = NULL;
	ix->cap = 0;
}

#endif /* QV_NAME_INDEX_H */
