/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qsbr.h - quiescent-state-based reclamation for the routing table.
 *
 * Our own rather than liburcu's QSBR flavour: the readers are our polled
 * workers, which never sleep and pass a quiescent state every loop turn
 * (microseconds), so the "offline while blocked" machinery of liburcu is
 * not needed, and a per-reader counter on its own cache line is all a
 * turn costs (one load and one store, no fence on x86). The writer is
 * the control thread only, so retire/reclaim need no lock either.
 *
 * Protocol. The writer publishes a new pointer (release), then retires
 * the old object: the retire bumps `epoch` to T with a release store and
 * tags the object with T. A reader, at the end of each turn, loads
 * `epoch` (acquire) and stores it into its own `seen` (release). When
 * every reader's seen >= T (loaded with acquire), each reader has ended a
 * turn after observing T, so its next pointer load (which follows the acquire of epoch T, which follows
 * the writer's publication in the writer's order) returns the new
 * pointer, and every access it made to the old object came before its
 * release of `seen`. The object can then be freed.
 */
#ifndef QV_DP_QSBR_H
#define QV_DP_QSBR_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

struct qv_qsbr_reader {
	alignas(64) _Atomic uint64_t seen;
	char pad[64 - sizeof(uint64_t)];
};

struct qv_qsbr_item {
	struct qv_qsbr_item *next;
	uint64_t token;
	void (*fn)(void *arg);
	void *arg;
};

struct qv_qsbr {
	alignas(64) _Atomic uint64_t epoch;      /* written by the writer only */
	struct qv_qsbr_reader *rd;             /* [nreaders] */
	uint32_t nreaders;
	struct qv_qsbr_item *pending;          /* writer only */
	uint32_t npending;
};

int qv_qsbr_init(struct qv_qsbr *q, uint32_t nreaders);

/* Frees every pending object regardless of readers: only once no reader runs. */
void qv_qsbr_fini(struct qv_qsbr *q);

/* Reader `id`: "I hold no reference to anything retired so far." Every turn. */
static inline void qv_qsbr_quiescent(struct qv_qsbr *q, uint32_t id)
{
	/* Acquire pairs with the release store of epoch in qv_qsbr_retire(). */
	uint64_t e = atomic_load_explicit(&q->epoch, memory_order_acquire);

	/* Release orders this turn's reads of retired objects before the report;
	 * pairs with the acquire load of `seen` in qv_qsbr_reclaim(). */
	atomic_store_explicit(&q->rd[id].seen, e, memory_order_release);
}

/*
 * Writer, after unpublishing: fn(arg) runs once every reader has passed a
 * quiescent state. Returns 0 or -ENOMEM (then nothing was queued).
 */
int qv_qsbr_retire(struct qv_qsbr *q, void (*fn)(void *), void *arg);

/*
 * Writer: waits until every reader has ended a loop turn that began after
 * this call, so that everything published before it is what every reader
 * uses from then on. Sleeps in short steps (the control thread may block);
 * returns 0, or -ETIMEDOUT after timeout_ns (a reader is stuck).
 */
int qv_qsbr_synchronize(struct qv_qsbr *q, uint64_t timeout_ns);

/* Writer: runs what is safe to free. Returns how many stay pending. */
uint32_t qv_qsbr_reclaim(struct qv_qsbr *q);

#endif /* QV_DP_QSBR_H */
