/* SPDX-License-Identifier: Apache-2.0 */
/*
 * predlog_hook.h - the worker's one call into the prediction log, at a
 * request's completion (worker.c only). Sampling off costs one relaxed
 * load from the version's first line, which the worker reads anyway.
 */
#ifndef QV_DP_PREDLOG_HOOK_H
#define QV_DP_PREDLOG_HOOK_H

#include "predlog.h"
#include "routes.h"
#include "worker.h"

/*
 * it answered by v with status st, its run started at start and the answer
 * was ready at end (TSC). Draws against v->log_thr and, when drawn,
 * copies the request into the worker's ring (full: dropped and counted).
 */
static inline void qv_predlog_hook(struct qv_worker *w, const struct qv_version *v,
				   const struct qv_batch_item *it, uint32_t st, uint64_t start,
				   uint64_t end)
{
	/* Relaxed: a plain setting, no data rides on it (see struct qv_version). */
	uint64_t thr = atomic_load_explicit(&v->log_thr, memory_order_relaxed);

	if (__builtin_expect(thr != 0, 0) && w->plog && qv_plog_draw(w->plog, thr)) {
		struct qv_plog_rec h = {
			.handle = v->handle,
			.version = v->version,
			.flags = it->res.flags | (it->mirror && st == QV_OK ? QV_PLOG_SHADOW : 0),
			.status = st,
			.rows = it->req.rows,
			.in_bytes = it->req.in_bytes,
			.out_bytes = st == QV_OK ? it->res.out_bytes : 0,
			.routing_key = it->req.routing_key,
			.request_id = it->req.request_id,
			.submit_tsc = it->submit_tsc,
			.start_tsc = start,
			.end_tsc = end,
		};
		qv_plog_ring_push(w->plog, &h, it->req.in, it->req.out);
	}
}

#endif /* QV_DP_PREDLOG_HOOK_H */
