/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QSBR reclamation, deterministically: a fake worker thread, driven step
 * by step through handshakes (no sleeps, no timing), loads the published
 * pointer and holds it across a retire; the object must not be freed
 * until that worker has reported a quiescent state, and must be freed
 * once every worker has. A second reader that never reports blocks
 * reclamation; objects retired later wait for later reports.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "qsbr.h"

static int failures;

#define CHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

struct obj {
	int value;
	int *freed;
};

static struct qv_qsbr q;
static _Atomic(struct obj *) cur;
static _Atomic int step;    /* main -> worker */
static _Atomic int done;    /* worker -> main */
static int seen_value;

static void obj_free(void *arg)
{
	struct obj *o = arg;

	*o->freed = 1;
	o->value = -1; /* poison: a reader that still held it would see this */
	free(o);
}

static void wait_for(_Atomic int *v, int want)
{
	/* Acquire pairs with the other thread's release store of *v. */
	while (atomic_load_explicit(v, memory_order_acquire) != want)
		;
}

static void *worker(void *arg)
{
	struct obj *held;

	(void)arg;
	wait_for(&step, 1);
	/* Acquire pairs with the release store of cur in main. */
	held = atomic_load_explicit(&cur, memory_order_acquire);
	atomic_store_explicit(&done, 1, memory_order_release);
	wait_for(&step, 2);
	seen_value = held->value; /* still valid: we have not reported quiescence */
	qv_qsbr_quiescent(&q, 0);
	atomic_store_explicit(&done, 2, memory_order_release);
	return NULL;
}

int main(void)
{
	int freed1 = 0, freed2 = 0, freed3 = 0;
	struct obj *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *c = malloc(sizeof(*c));
	pthread_t t;

	*a = (struct obj){ 41, &freed1 };
	*b = (struct obj){ 42, &freed2 };
	*c = (struct obj){ 43, &freed3 };
	CHECK(qv_qsbr_init(&q, 2) == 0);
	atomic_store_explicit(&cur, a, memory_order_release);
	pthread_create(&t, NULL, worker, NULL);

	atomic_store_explicit(&step, 1, memory_order_release);
	wait_for(&done, 1);                       /* the worker holds a */
	atomic_store_explicit(&cur, b, memory_order_release);
	CHECK(qv_qsbr_retire(&q, obj_free, a) == 0);
	CHECK(qv_qsbr_reclaim(&q) == 1);
	CHECK(!freed1);                           /* worker 0 has not reported */
	qv_qsbr_quiescent(&q, 1);                 /* reader 1 (this thread acting as it) */
	CHECK(qv_qsbr_reclaim(&q) == 1);
	CHECK(!freed1);                           /* still worker 0 */

	atomic_store_explicit(&step, 2, memory_order_release);
	wait_for(&done, 2);
	CHECK(seen_value == 41);
	CHECK(qv_qsbr_reclaim(&q) == 0);
	CHECK(freed1);                            /* both reported after the retire */
	pthread_join(t, NULL);

	/* A later retire needs later reports: old ones do not count. */
	atomic_store_explicit(&cur, c, memory_order_release);
	CHECK(qv_qsbr_retire(&q, obj_free, b) == 0);
	CHECK(qv_qsbr_reclaim(&q) == 1 && !freed2);
	qv_qsbr_quiescent(&q, 0);
	CHECK(qv_qsbr_reclaim(&q) == 1 && !freed2); /* reader 1 reported before the retire */
	qv_qsbr_quiescent(&q, 1);
	CHECK(qv_qsbr_reclaim(&q) == 0 && freed2);

	/* fini frees what is pending regardless (readers stopped). */
	CHECK(qv_qsbr_retire(&q, obj_free, c) == 0);
	CHECK(!freed3);
	qv_qsbr_fini(&q);
	CHECK(freed3);
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
