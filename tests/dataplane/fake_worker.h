/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fake_worker.h - a worker without a thread, channels or NUMA binding, and
 * versions of a loaded model, for the tests and the benchmark that call
 * qv_worker_serve / qv_worker_serve_batch directly. Allocation failures end
 * the program: these are test fixtures.
 */
#ifndef QV_TEST_FAKE_WORKER_H
#define QV_TEST_FAKE_WORKER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "worker.h"

static inline void *fake_alloc(size_t n)
{
	void *p = calloc(1, n);

	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	return p;
}

/* Version `ver` of m in stats slot `slot`, with one exec context (worker 0). */
static inline struct qv_version *fake_version(qv_model *m, uint32_t ver, uint32_t slot)
{
	struct qv_version *v = fake_alloc(sizeof(*v));

	v->version = ver;
	v->slot = slot;
	v->model = m;
	qv_model_get_info(m, &v->info);
	v->max_batch = v->info.max_batch;
	v->nctx = 1;
	v->ctx = fake_alloc(sizeof(*v->ctx));
	if (qv_exec_ctx_create(m, &v->ctx[0]) < 0) {
		fprintf(stderr, "exec ctx failed\n");
		exit(1);
	}
	return v;
}

static inline void fake_version_free(struct qv_version *v)
{
	qv_exec_ctx_free(v->ctx[0]);
	free(v->ctx);
	free(v);
}

/* Worker 0 serving `tab`, with its stats, mirror and batch buffers. */
static inline struct qv_worker *fake_worker_new(const struct qv_table *tab, double ns_per_cycle,
						uint64_t rng)
{
	struct qv_worker *w = aligned_alloc(64, sizeof(*w));

	if (!w) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	memset(w, 0, sizeof(*w));
	w->vs = fake_alloc(QV_MAX_VSLOTS * sizeof(*w->vs));
	w->sh_in = fake_alloc(QV_SHADOW_SCRATCH_BYTES);
	w->sh_ref = fake_alloc(QV_SHADOW_SCRATCH_BYTES);
	w->sh_out = fake_alloc(QV_SHADOW_SCRATCH_BYTES);
	w->bt_in = fake_alloc(QV_BATCH_BUF_FLOATS * sizeof(float));
	w->bt_out = fake_alloc(QV_BATCH_BUF_FLOATS * sizeof(float));
	w->rng = rng;
	w->ns_per_cycle = ns_per_cycle;
	w->cycles_per_ns = 1.0 / ns_per_cycle;
	w->tab = tab;
	return w;
}

static inline void fake_worker_free(struct qv_worker *w)
{
	free(w->vs);
	free(w->sh_in);
	free(w->sh_ref);
	free(w->sh_out);
	free(w->bt_in);
	free(w->bt_out);
	free(w);
}

#endif /* QV_TEST_FAKE_WORKER_H */
