/* SPDX-License-Identifier: Apache-2.0 */
/* qsbr.c - the writer's side of QSBR (control thread only). */
#include "qsbr.h"

#include <time.h>

#include <errno.h>
#include <stdlib.h>

int qv_qsbr_init(struct qv_qsbr *q, uint32_t nreaders)
{
	struct qv_qsbr_reader *rd = aligned_alloc(64, (nreaders ? nreaders : 1) * sizeof(*rd));

	if (!rd)
		return -ENOMEM;
	for (uint32_t i = 0; i < nreaders; i++)
		atomic_init(&rd[i].seen, 0);
	atomic_init(&q->epoch, 0);
	q->rd = rd;
	q->nreaders = nreaders;
	q->pending = NULL;
	q->npending = 0;
	return 0;
}

void qv_qsbr_fini(struct qv_qsbr *q)
{
	while (q->pending) {
		struct qv_qsbr_item *it = q->pending;
		q->pending = it->next;
		it->fn(it->arg);
		free(it);
	}
	q->npending = 0;
	free(q->rd);
	q->rd = NULL;
}

int qv_qsbr_retire(struct qv_qsbr *q, void (*fn)(void *), void *arg)
{
	struct qv_qsbr_item *it = malloc(sizeof(*it));
	uint64_t t;

	if (!it)
		return -ENOMEM;
	t = atomic_load_explicit(&q->epoch, memory_order_relaxed) + 1;
	/*
	 * Release orders the caller's unpublication (its pointer store) before
	 * the new epoch; pairs with the readers' acquire in qv_qsbr_quiescent().
	 */
	atomic_store_explicit(&q->epoch, t, memory_order_release);
	it->token = t;
	it->fn = fn;
	it->arg = arg;
	it->next = q->pending;
	q->pending = it;
	q->npending++;
	return 0;
}

uint32_t qv_qsbr_reclaim(struct qv_qsbr *q)
{
	uint64_t min = UINT64_MAX;
	struct qv_qsbr_item **pp;

	if (!q->pending)
		return 0;
	for (uint32_t i = 0; i < q->nreaders; i++) {
		/* Acquire pairs with the release store in qv_qsbr_quiescent(). */
		uint64_t s = atomic_load_explicit(&q->rd[i].seen, memory_order_acquire);
		if (s < min)
			min = s;
	}
	for (pp = &q->pending; *pp;) {
		struct qv_qsbr_item *it = *pp;
		if (it->token <= min) {
			*pp = it->next;
			it->fn(it->arg);
			free(it);
			q->npending--;
		} else {
			pp = &it->next;
		}
	}
	return q->npending;
}

int qv_qsbr_synchronize(struct qv_qsbr *q, uint64_t timeout_ns)
{
	/* Only the writer stores epoch, so a relaxed read of our own value. */
	uint64_t t = atomic_load_explicit(&q->epoch, memory_order_relaxed) + 1;
	struct timespec start, now, nap = { .tv_nsec = 10 * 1000 };

	/*
	 * Release orders the publication that preceded this call before the
	 * new epoch; pairs with the acquire load of epoch in
	 * qv_qsbr_quiescent(). A reader that reports t has finished the turn in
	 * which it saw t, and its next turn's acquire load of the table pointer
	 * returns what was published before this store.
	 */
	atomic_store_explicit(&q->epoch, t, memory_order_release);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		uint32_t behind = 0;
		for (uint32_t i = 0; i < q->nreaders; i++)
			/* Acquire pairs with the release store of seen in qv_qsbr_quiescent(). */
			if (atomic_load_explicit(&q->rd[i].seen, memory_order_acquire) < t)
				behind++;
		if (!behind)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		uint64_t el = (uint64_t)(now.tv_sec - start.tv_sec) * 1000000000ull +
			      (uint64_t)now.tv_nsec - (uint64_t)start.tv_nsec;
		if (el > timeout_ns)
			return -ETIMEDOUT;
		nanosleep(&nap, NULL);
	}
}
