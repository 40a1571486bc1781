/* SPDX-License-Identifier: Apache-2.0 */
/*
 * worker.c - the polled worker loop, qv_worker_serve and qv_worker_lookup.
 *
 * A turn: (1) take control messages from the mailbox, (2) load the routing
 * table (acquire; routes.c), used for every request of the turn, (3)
 * gather the ready descriptors of every owned channel (only as many as
 * each channel's completion ring has room for), serve them together with
 * qv_worker_serve_batch() - requests for the same version on a plain route
 * run as one batch, gathered into the worker's buffer and scattered back
 * to their slots - then push every channel's completions; a mirrored
 * (shadow) request runs after that, (4) poll the external transport
 * (UDP, one request at a time), (5) report a quiescent state (QSBR:
 * nothing of this turn's table is held past here), (6) account the turn's
 * cycles as busy (some work done) or idle, and about once a millisecond
 * refresh the server_heartbeat_ns of every owned channel.
 *
 * Batching never waits: a turn runs what is ready. From two requests up a
 * batch costs less than the same requests one by one (trade-mlp, one row
 * each, best of 7 on a loaded 2-core host: 2 in 2.2-2.6 us vs 5.0-6.7 us;
 * 8 in 6.4-7.4 us vs 25 us), so a version with two ready requests is
 * batched and one alone runs in place in its slot.
 * A route whose fallback triggers only on error or nonfinite output is
 * batched too: the trigger is checked per request after the batch, and
 * only the requests it fires for run again, alone, on the fallback. Routes
 * with a canary, a shadow, a manual or a deadline fallback are served one
 * request at a time (their version picks are per request).
 *
 * Per request: one route record (line 0 of struct qv_route_hot) and, when
 * the route has no canary, shadow or fallback (flags == 0), one predicted
 * branch and no routing work; two TSC reads time it into the version's
 * histogram. Nothing in a turn blocks,
 * locks, allocates, logs or enters the kernel; the clock is read once a
 * millisecond (vDSO) and per request only when the request has a deadline.
 */
#include "worker.h"

#include <errno.h>
#include <math.h>
#include <numa.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "numa_mem.h"
#include "route_pick.h"
#include "sqe_check.h"

uint64_t qv_tsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __rdtsc();
#else
	return qv_now_ns();
#endif
}

uint64_t qv_tsc_calibrate(void)
{
#if defined(__x86_64__) || defined(__i386__)
	struct timespec d = { .tv_nsec = 20 * 1000 * 1000 };
	uint64_t n0 = qv_now_ns(), t0 = qv_tsc(), n1, t1;

	nanosleep(&d, NULL);
	n1 = qv_now_ns();
	t1 = qv_tsc();
	if (n1 <= n0 || t1 <= t0)
		return 1000000000ull;
	return (uint64_t)((double)(t1 - t0) * 1e9 / (double)(n1 - n0));
#else
	return 1000000000ull;
#endif
}

/* Single writer: a plain load and store, no locked read-modify-write. */
static inline void cnt_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static inline void count_status(struct qv_worker *w, uint32_t st)
{
	cnt_add(&w->cnt.requests, 1);
	cnt_add(&w->cnt.status[st < QV_STATUS_COUNT ? st : QV_INTERNAL], 1);
}

/*
 * A version's own stats: counts, the service-time histogram (pick-up to
 * now, the second and last TSC read of the request) and, for answers that
 * ran the model, the EWMA of service time the deadline trigger uses.
 */
static inline void vs_record(struct qv_worker *w, const struct qv_version *v, uint32_t st,
			     uint32_t flags, uint64_t t0)
{
	struct qv_vstats *s = &w->vs[v->slot];
	uint64_t d = qv_tsc() - t0;

	qv_stat_inc(&s->requests);
	qv_stat_inc(&s->status[st]);
	if (flags & QV_FLAG_CANARY)
		qv_stat_inc(&s->canary);
	if (flags & QV_FLAG_FALLBACK)
		qv_stat_inc(&s->fallback);
	qv_stat_inc(&s->hist[qv_hist_bucket(d)]);
	if (st == QV_OK) {
		uint64_t tag = (uint64_t)v->handle << 32 | v->version;
		/* A reused stats slot: the estimate starts over with its new version. */
		if (s->ewma_tag != tag || !s->ewma_cycles) {
			s->ewma_tag = tag;
			s->ewma_cycles = d;
		} else {
			s->ewma_cycles = (uint64_t)((int64_t)s->ewma_cycles +
						    ((int64_t)d - (int64_t)s->ewma_cycles) / 8);
		}
	}
}

/* This worker's recent service time of v in cycles, 0 when it has none yet. */
static inline uint64_t ewma_of(const struct qv_worker *w, const struct qv_version *v)
{
	const struct qv_vstats *s = &w->vs[v->slot];

	return s->ewma_tag == ((uint64_t)v->handle << 32 | v->version) ? s->ewma_cycles : 0;
}

static int has_nonfinite(const float *p, uint64_t n)
{
	int bad = 0;

	for (uint64_t i = 0; i < n; i++)
		bad |= !isfinite(p[i]);
	return bad;
}

/* rtol 1e-3, atol 1e-5; two NaNs agree, any other nonfinite must be equal. */
static int outputs_disagree(const float *a, const float *b, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		float x = a[i], y = b[i];
		if (isfinite(x) && isfinite(y)) {
			if (fabsf(x - y) > 1e-5f + 1e-3f * fabsf(y))
				return 1;
		} else if (!(isnan(x) && isnan(y)) && x != y) {
			return 1;
		}
	}
	return 0;
}

void qv_worker_shadow_flush(struct qv_worker *w)
{
	const struct qv_version *s = w->sh_ver;
	struct qv_vstats *vs;

	if (!s)
		return;
	w->sh_ver = NULL;
	vs = &w->vs[s->slot];
	qv_stat_inc(&vs->shadow);
	if (qv_run(s->ctx[w->id], w->sh_in, w->sh_rows, w->sh_out) != 0 ||
	    outputs_disagree(w->sh_out, w->sh_ref, (uint64_t)w->sh_rows * s->info.out_dim))
		qv_stat_inc(&vs->shadow_disagree);
}

static inline int fb_fits(const struct qv_version *fb, const struct qv_version *v,
			  const struct qv_serve_req *req)
{
	return fb && fb != v && req->rows <= fb->max_batch;
}

/*
 * A request fits its route: 1..max_batch rows, exactly rows * in_dim floats
 * in, room for rows * out_dim floats out. The one shape rule of every path.
 */
static inline int req_fits(const struct qv_route_hot *h, const struct qv_serve_req *req)
{
	return req->rows != 0 && req->rows <= h->max_batch &&
	       (uint64_t)req->in_bytes == (uint64_t)req->rows * h->in_dim * sizeof(float) &&
	       (uint64_t)req->out_cap >= (uint64_t)req->rows * h->out_dim * sizeof(float);
}

/*
 * A route with a canary, shadow or fallback. Returns the status; *ret_v
 * and *ret_flags say which version answered and how.
 */
static uint32_t serve_routed(struct qv_worker *w, const struct qv_route_hot *h,
			     const struct qv_serve_req *req, uint64_t t0, uint64_t out_need,
			     const struct qv_version **ret_v, uint32_t *ret_flags)
{
	const struct qv_version *v = h->primary, *fb = h->fallback, *sh = NULL;
	enum qv_pick pk = qv_route_pick(h->flags, h->canary_thr, req->routing_key, &w->rng);
	uint32_t flags = 0, st = QV_OK;

	if (pk == QV_PICK_CANARY && req->rows <= h->canary->max_batch) {
		v = h->canary;
		flags = QV_FLAG_CANARY;
	} else if (pk == QV_PICK_FALLBACK && fb_fits(fb, v, req)) {
		v = fb;
		flags = QV_FLAG_FALLBACK;
	}
	if (req->deadline_ns || (v->deadline_cycles && (h->flags & QV_RT_FB_DEADLINE))) {
		double left;
		if (req->deadline_ns) {
			int64_t left_ns = (int64_t)(req->deadline_ns - qv_now_ns());
			if (left_ns <= 0) {
				st = QV_DEADLINE_EXCEEDED;
				goto out;
			}
			left = (double)left_ns / w->ns_per_cycle;
		} else {
			left = (double)v->deadline_cycles - (double)(qv_tsc() - t0);
		}
		if ((h->flags & QV_RT_FB_DEADLINE) && !(flags & QV_FLAG_FALLBACK) &&
		    fb_fits(fb, v, req) && (double)ewma_of(w, v) > left) {
			v = fb;
			flags = QV_FLAG_FALLBACK;
		}
	}
	if ((h->flags & QV_RT_SHADOW) && qv_xorshift64(&w->rng) < h->shadow_thr &&
	    req->in_bytes <= QV_SHADOW_SCRATCH_BYTES && out_need <= QV_SHADOW_SCRATCH_BYTES &&
	    req->rows <= h->shadow->max_batch) {
		sh = h->shadow;
		/* Copied now: once the completion is pushed the slot is the client's again. */
		memcpy(w->sh_in, req->in, req->in_bytes);
	}
	if (qv_run(v->ctx[w->id], req->in, req->rows, req->out) != 0) {
		st = QV_INTERNAL;
		if (!(h->flags & QV_RT_FB_ERROR) || (flags & QV_FLAG_FALLBACK) || !fb_fits(fb, v, req))
			goto out;
	} else if (!(h->flags & QV_RT_FB_NONFINITE) || (flags & QV_FLAG_FALLBACK) ||
		   !fb_fits(fb, v, req) ||
		   !has_nonfinite(req->out, (uint64_t)req->rows * h->out_dim)) {
		goto mirror;
	}
	v = fb;
	flags = QV_FLAG_FALLBACK;
	st = qv_run(v->ctx[w->id], req->in, req->rows, req->out) != 0 ? QV_INTERNAL : QV_OK;
mirror:
	/* A mirror of the version that answered would only compare it with itself. */
	if (sh && sh != v && st == QV_OK) {
		memcpy(w->sh_ref, req->out, out_need);
		w->sh_ver = sh;
		w->sh_rows = req->rows;
	}
out:
	*ret_v = v;
	*ret_flags = flags;
	return st;
}

void qv_worker_serve(struct qv_worker *w, const struct qv_serve_req *req,
		     struct qv_serve_res *ret)
{
	const struct qv_table *tab = w->tab;
	const struct qv_route_hot *h;
	const struct qv_version *v;
	uint64_t t0 = qv_tsc(), out_need;
	uint32_t st, flags = 0;

	ret->version = 0;
	ret->flags = 0;
	ret->out_bytes = 0;
	/* A transport that serves bursts (UDP) runs the previous mirror now. */
	if (w->sh_ver)
		qv_worker_shadow_flush(w);
	if (w->draining) {
		st = QV_UNAVAILABLE;
		goto out;
	}
	if (req->handle >= tab->n) {
		st = QV_UNKNOWN_MODEL;
		goto out;
	}
	h = &tab->hot[req->handle];
	if (h->state != QV_ROUTE_READY) {
		st = QV_UNKNOWN_MODEL;
		goto out;
	}
	v = h->primary;
	out_need = (uint64_t)req->rows * h->out_dim * sizeof(float);
	if (!req_fits(h, req)) {
		st = QV_BAD_SHAPE;
	} else if (__builtin_expect(h->flags != 0, 0)) {
		st = serve_routed(w, h, req, t0, out_need, &v, &flags);
	} else if (req->deadline_ns && qv_now_ns() > req->deadline_ns) {
		/* The only per-request clock read, and only when a deadline was set. */
		st = QV_DEADLINE_EXCEEDED;
	} else if (qv_run(v->ctx[w->id], req->in, req->rows, req->out) != 0) {
		st = QV_INTERNAL;
	} else {
		st = QV_OK;
	}
	if (st == QV_OK)
		ret->out_bytes = (uint32_t)out_need;
	ret->version = v->version;
	ret->flags = flags;
	vs_record(w, v, st, flags, t0);
out:
	ret->status = st;
	count_status(w, st);
}

/* Route flags a batch can serve: the fallback triggers checked after the run. */
#define QV_RT_BATCHABLE (QV_RT_FALLBACK | QV_RT_FB_ERROR | QV_RT_FB_NONFINITE)

/*
 * A plain route's request that can join a batch: returns its version, or
 * NULL after answering it (bad shape, passed deadline) or handing it to
 * qv_worker_serve() (draining, unknown model, routed route).
 */
static const struct qv_version *batch_admit(struct qv_worker *w, struct qv_batch_item *it,
					    uint64_t t0)
{
	const struct qv_table *tab = w->tab;
	const struct qv_serve_req *req = &it->req;
	const struct qv_route_hot *h;
	uint32_t st;

	if (w->draining || req->handle >= tab->n)
		goto single;
	h = &tab->hot[req->handle];
	if (h->state != QV_ROUTE_READY || (h->flags & ~QV_RT_BATCHABLE) != 0)
		goto single;
	if (!req_fits(h, req)) {
		st = QV_BAD_SHAPE;
	} else if (req->deadline_ns && qv_now_ns() > req->deadline_ns) {
		/* The only per-request clock read, and only when a deadline was set. */
		st = QV_DEADLINE_EXCEEDED;
	} else {
		it->h = h;
		return h->primary;
	}
	it->res.status = st;
	it->res.version = h->primary->version;
	it->res.flags = 0;
	it->res.out_bytes = 0;
	vs_record(w, h->primary, st, 0, t0);
	count_status(w, st);
	return NULL;
single:
	qv_worker_serve(w, req, &it->res);
	return NULL;
}

/* Marks the requests gathered into the batch being built. */
static const struct qv_version batch_member;

/*
 * Answers a request of a batch (or a request alone) that ran with status
 * st, first re-running it alone on the route's fallback when its run
 * failed or its own rows came out nonfinite and the route says so.
 */
static void batch_answer(struct qv_worker *w, struct qv_batch_item *it,
			 const struct qv_version *v, uint32_t st, uint64_t t0)
{
	const struct qv_route_hot *h = it->h;
	uint32_t flags = 0;

	if (__builtin_expect(h->flags != 0, 0) && fb_fits(h->fallback, v, &it->req) &&
	    (st != QV_OK ? (h->flags & QV_RT_FB_ERROR)
			 : ((h->flags & QV_RT_FB_NONFINITE) &&
			    has_nonfinite(it->req.out, (uint64_t)it->req.rows * h->out_dim)))) {
		v = h->fallback;
		flags = QV_FLAG_FALLBACK;
		st = qv_run(v->ctx[w->id], it->req.in, it->req.rows, it->req.out) != 0 ? QV_INTERNAL
										       : QV_OK;
	}
	it->res.status = st;
	it->res.version = v->version;
	it->res.flags = flags;
	it->res.out_bytes = st == QV_OK ? it->req.rows * v->info.out_dim * (uint32_t)sizeof(float)
					: 0;
	vs_record(w, v, st, flags, t0);
	count_status(w, st);
}

/*
 * Runs items[i] and the later pending requests of the same version that
 * fit (max_batch rows, the gather buffers) as one batch.
 */
static void batch_run(struct qv_worker *w, struct qv_batch_item *items, uint32_t i, uint32_t n,
		      uint64_t t0)
{
	const struct qv_version *v = items[i].v;
	uint32_t in_dim = v->info.in_dim, out_dim = v->info.out_dim;
	uint32_t rows = items[i].req.rows, cnt = 1, last = i, st;
	uint64_t cap_rows = QV_BATCH_BUF_FLOATS / (in_dim > out_dim ? in_dim : out_dim);
	float *in = w->bt_in, *out = w->bt_out;

	items[i].v = NULL;
	/* Pick the members first: a request alone keeps the zero-copy path. */
	if (rows <= cap_rows) {
		for (uint32_t j = i + 1; j < n; j++) {
			if (items[j].v != v || rows + items[j].req.rows > v->max_batch ||
			    rows + items[j].req.rows > cap_rows)
				continue;
			if (cnt == 1)
				memcpy(in, items[i].req.in, items[i].req.in_bytes);
			memcpy(in + (uint64_t)rows * in_dim, items[j].req.in, items[j].req.in_bytes);
			rows += items[j].req.rows;
			items[j].v = &batch_member;
			last = j;
			cnt++;
		}
	}
	if (cnt == 1) {
		st = qv_run(v->ctx[w->id], items[i].req.in, rows, items[i].req.out) != 0 ? QV_INTERNAL
											: QV_OK;
		batch_answer(w, &items[i], v, st, t0);
		return;
	}
	st = qv_run(v->ctx[w->id], in, rows, out) != 0 ? QV_INTERNAL : QV_OK;
	qv_stat_inc(&w->vs[v->slot].batches);
	cnt_add(&w->vs[v->slot].batch_rows, rows);
	for (uint32_t j = i, r = 0; j <= last; j++) {
		struct qv_batch_item *it = &items[j];

		if (j != i && it->v != &batch_member)
			continue;
		it->v = NULL;
		if (st == QV_OK)
			memcpy(it->req.out, out + (uint64_t)r * out_dim,
			       (uint64_t)it->req.rows * out_dim * sizeof(float));
		r += it->req.rows;
		batch_answer(w, it, v, st, t0);
	}
}

void qv_worker_serve_batch(struct qv_worker *w, struct qv_batch_item *items, uint32_t n)
{
	uint64_t t0 = qv_tsc();

	/* A transport that serves bursts runs the previous mirror now. */
	if (w->sh_ver)
		qv_worker_shadow_flush(w);
	for (uint32_t i = 0; i < n; i++)
		items[i].v = items[i].done ? NULL : batch_admit(w, &items[i], t0);
	for (uint32_t i = 0; i < n; i++)
		if (items[i].v)
			batch_run(w, items, i, n, t0);
}

int qv_worker_lookup(struct qv_worker *w, const char *name, struct qv_model_wire *ret)
{
	const struct qv_table *t = w->tab;

	for (uint32_t i = 0; i < t->n; i++) {
		if (t->hot[i].state == QV_ROUTE_READY && strcmp(t->wire[i].name, name) == 0) {
			*ret = t->wire[i];
			return 0;
		}
	}
	return -ENOENT;
}

/* Stops polling chans[i] and hands it back: the caller never touches it again. */
static void chan_drop(struct qv_worker *w, uint32_t i, uint32_t how)
{
	struct qv_chan *c = w->chans[i];

	w->chans[i] = w->chans[--w->nchans];
	/*
	 * Release orders every access this worker made to the channel (ring
	 * state, slots, header) before the flag; pairs with the control
	 * thread's acquire load of `retired` before it unmaps and frees.
	 */
	atomic_store_explicit(&c->retired, how, memory_order_release);
}

/* A client whose ring indices are impossible loses its channel. */
static void chan_corrupt(struct qv_worker *w, uint32_t i)
{
	atomic_store_explicit(&w->chans[i]->hdr->server_state, QV_SRV_CLOSED,
			      memory_order_relaxed);
	cnt_add(&w->cnt.corrupt_channels, 1);
	chan_drop(w, i, QV_CHAN_DROPPED);
}

/*
 * Takes up to a burst of descriptors of chans[i] (and no more than the
 * turn's item array has room for) into w->items from *nitems on, valid
 * ones as requests, invalid ones answered BAD_REQUEST at once. Returns
 * descriptors taken, or -1 when the channel was dropped (the caller then
 * looks at index i again, which now holds another channel).
 */
static int chan_gather(struct qv_worker *w, uint32_t i, uint32_t *nitems)
{
	struct qv_chan *c = w->chans[i];
	uint32_t n, room = QV_WORKER_MAX_PENDING - *nitems;
	int avail, space;

	avail = qv_ring_cons_avail(&c->sq);
	if (avail == 0)
		return 0;
	if (avail < 0)
		goto corrupt;
	/*
	 * Consume only what we can complete this turn: with the completion
	 * ring full the descriptors stay in the submission ring and are
	 * retried next turn, so nothing is dropped and nothing is held aside.
	 */
	space = qv_ring_prod_space(&c->cq);
	if (space == 0)
		return 0;
	if (space < 0)
		goto corrupt;
	n = (uint32_t)(avail < space ? avail : space);
	if (n > QV_WORKER_BURST)
		n = QV_WORKER_BURST;
	if (n > room)
		n = room;
	for (uint32_t k = 0; k < n; k++) {
		struct qv_batch_item *it = &w->items[*nitems + k];
		struct qv_sqe d;

		/* The one read of this descriptor; everything below uses the copy. */
		memcpy(&d, qv_ring_cons_entry(&c->sq, k), sizeof(d));
		it->chan = c;
		it->slot = d.slot;
		it->req.request_id = d.request_id;
		if (!qv_sqe_valid(&d, &c->lim)) {
			it->done = 1;
			it->res.status = QV_BAD_REQUEST;
			it->res.out_bytes = 0;
			it->res.version = 0;
			it->res.flags = 0;
			count_status(w, QV_BAD_REQUEST);
		} else {
			uint8_t *sl = c->slots + (uint64_t)d.slot * c->slot_stride;

			it->req.handle = d.handle;
			it->req.rows = d.rows;
			it->req.in_bytes = d.in_bytes;
			it->req.out_cap = d.out_cap;
			it->req.deadline_ns = d.deadline_ns;
			it->req.routing_key = d.routing_key;
			it->req.in = (const void *)sl;
			it->req.out = (void *)(sl + c->slot_in_bytes);
			it->done = 0;
		}
	}
	*nitems += n;
	return (int)n;
corrupt:
	chan_corrupt(w, i);
	return -1;
}

/*
 * One turn of the channels: gather every channel's ready descriptors, serve
 * them together (qv_worker_serve_batch), then push each channel's
 * completions and free its descriptors. Returns requests completed.
 */
static int chans_turn(struct qv_worker *w)
{
	uint32_t nitems = 0, npolled = 0;

	/*
	 * The start rotates: when the turn's items run out, the channels left
	 * over this turn come first the next.
	 */
	if (w->rr >= w->nchans)
		w->rr = 0;
	for (uint32_t seen = 0; seen < w->nchans && nitems < QV_WORKER_MAX_PENDING;) {
		uint32_t i = (w->rr + seen) % w->nchans, first = nitems;
		int r = chan_gather(w, i, &nitems);

		/*
		 * Dropped: index i now holds the last channel, maybe one
		 * gathered already; the rest wait for the next turn.
		 */
		if (r < 0)
			break;
		if (r > 0) {
			w->polled[npolled].c = w->chans[i];
			w->polled[npolled].first = first;
			w->polled[npolled].n = (uint32_t)r;
			npolled++;
		}
		seen++;
	}
	w->rr++;
	if (nitems == 0)
		return 0;
	qv_worker_serve_batch(w, w->items, nitems);
	for (uint32_t p = 0; p < npolled; p++) {
		struct qv_chan *c = w->polled[p].c;

		for (uint32_t k = 0; k < w->polled[p].n; k++) {
			const struct qv_batch_item *it = &w->items[w->polled[p].first + k];
			struct qv_cqe e = {
				.request_id = it->req.request_id,
				.slot = it->slot,
				.status = it->res.status,
				.out_bytes = it->res.out_bytes,
				.version = it->res.version,
				.flags = it->res.flags,
			};

			memcpy(qv_ring_prod_entry(&c->cq, k), &e, sizeof(e));
		}
		/* Release (in commit) publishes the outputs and the completions. */
		qv_ring_prod_commit(&c->cq, w->polled[p].n);
		qv_ring_cons_release(&c->sq, w->polled[p].n);
	}
	/* A mirror runs after the answers are out: it adds nothing to their latency. */
	qv_worker_shadow_flush(w);
	return (int)nitems;
}

/* Returns 1 when told to stop. */
static int mbox_poll(struct qv_worker *w)
{
	int n = qv_ring_cons_avail(&w->mbox_cons);

	if (n <= 0)
		return 0;
	for (int k = 0; k < n; k++) {
		struct qv_mbox_msg m;
		uint32_t i;

		memcpy(&m, qv_ring_cons_entry(&w->mbox_cons, (uint32_t)k), sizeof(m));
		switch (m.op) {
		case QV_MBOX_ADD:
			/* The control thread never assigns more than the array holds. */
			w->chans[w->nchans++] = m.chan;
			atomic_store_explicit(&m.chan->hdr->server_heartbeat_ns, qv_now_ns(),
					      memory_order_relaxed);
			break;
		case QV_MBOX_RETIRE:
			for (i = 0; i < w->nchans && w->chans[i] != m.chan; i++)
				;
			if (i < w->nchans)
				chan_drop(w, i, QV_CHAN_ACKED);
			else /* dropped as corrupt earlier: still acknowledge. Pairs as in chan_drop(). */
				atomic_store_explicit(&m.chan->retired, QV_CHAN_ACKED,
						      memory_order_release);
			break;
		case QV_MBOX_DRAIN:
			w->draining = 1;
			w->drain_ack_due = 1;
			break;
		case QV_MBOX_STOP:
			qv_ring_cons_release(&w->mbox_cons, (uint32_t)k + 1);
			return 1;
		default:
			break;
		}
	}
	qv_ring_cons_release(&w->mbox_cons, (uint32_t)n);
	return 0;
}

static void heartbeat(struct qv_worker *w)
{
	uint64_t now = qv_now_ns();

	for (uint32_t i = 0; i < w->nchans; i++)
		atomic_store_explicit(&w->chans[i]->hdr->server_heartbeat_ns, now,
				      memory_order_relaxed);
}

static void worker_loop(struct qv_worker *w)
{
	w->last_tsc = qv_tsc();
	w->last_hb_tsc = w->last_tsc;
	for (;;) {
		uint64_t t;
		int work = 0;

		if (mbox_poll(w))
			break;
		/*
		 * One table for the whole turn. Acquire pairs with the release
		 * store in qv_reg_publish(): the table and the versions, models
		 * and exec contexts it names are fully built.
		 */
		w->tab = atomic_load_explicit(&w->reg->cur, memory_order_acquire);
		work += chans_turn(w);
		for (uint32_t i = 0; i < w->n_ext; i++) {
			int r = w->ext[i].fn(w->ext[i].arg, w);
			if (r > 0)
				work += r;
			qv_worker_shadow_flush(w);
		}
		/* Nothing from this turn's table is held past here. */
		qv_qsbr_quiescent(&w->reg->qsbr, w->id);
		if (w->drain_ack_due) {
			/*
			 * A whole turn ran with draining set: every descriptor
			 * consumed before DRAIN is completed. Release pairs with
			 * the control thread's acquire load of `drained`.
			 */
			atomic_store_explicit(&w->drained, 1, memory_order_release);
			w->drain_ack_due = 0;
		}
		t = qv_tsc();
		cnt_add(work ? &w->cnt.busy_cycles : &w->cnt.idle_cycles, t - w->last_tsc);
		w->last_tsc = t;
		if (t - w->last_hb_tsc >= w->hb_interval_tsc) {
			w->last_hb_tsc = t;
			cnt_add(&w->cnt.beats, 1);
			heartbeat(w);
		}
	}
}

static int worker_init(struct qv_worker *w)
{
	cpu_set_t set;
	int r;

	CPU_ZERO(&set);
	CPU_SET(w->core, &set);
	r = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (r != 0) {
		snprintf(w->init_err, sizeof(w->init_err), "pin to core %d: %s", w->core,
			 strerror(r));
		return -r;
	}
	/* Pinned: from here on, allocations by this thread land on its node. */
	if (w->node >= 0)
		numa_set_localalloc();
	qv_thread_init();
	return 0;
}

static void *worker_main(void *arg)
{
	struct qv_worker *w = arg;
	int r = worker_init(w);

	/*
	 * Release publishes init_err; pairs with the
	 * acquire load in qv_worker_start().
	 */
	atomic_store_explicit(&w->ready, r < 0 ? r : 1, memory_order_release);
	if (r == 0)
		worker_loop(w);
	return NULL;
}

int qv_worker_create(uint32_t id, int core, struct qv_registry *reg, uint64_t tsc_hz,
		     struct qv_worker **ret)
{
	int node = qv_numa_node_of_cpu(core);
	uint64_t mbox_bytes = qv_ring_bytes(QV_MBOX_ENTRIES, sizeof(struct qv_mbox_msg));
	struct qv_worker *w;

	w = qv_numa_alloc(sizeof(*w), node);
	if (!w)
		return -ENOMEM;
	w->id = id;
	w->core = core;
	w->node = node;
	w->reg = reg;
	w->rng = qv_splitmix64(qv_tsc() ^ ((uint64_t)id << 32)) | 1u;
	w->ns_per_cycle = 1e9 / (double)(tsc_hz ? tsc_hz : 1000000000ull);
	w->hb_interval_tsc = tsc_hz / 1000 ? tsc_hz / 1000 : 1;
	w->vs = qv_numa_alloc(QV_MAX_VSLOTS * sizeof(*w->vs), node);
	w->sh_in = qv_numa_alloc(QV_SHADOW_SCRATCH_BYTES, node);
	w->sh_ref = qv_numa_alloc(QV_SHADOW_SCRATCH_BYTES, node);
	w->sh_out = qv_numa_alloc(QV_SHADOW_SCRATCH_BYTES, node);
	w->chans = qv_numa_alloc(QV_WORKER_MAX_CHANS * sizeof(*w->chans), node);
	w->items = qv_numa_alloc(QV_WORKER_MAX_PENDING * sizeof(*w->items), node);
	w->polled = qv_numa_alloc(QV_WORKER_MAX_CHANS * sizeof(*w->polled), node);
	w->bt_in = qv_numa_alloc(QV_BATCH_BUF_FLOATS * sizeof(float), node);
	w->bt_out = qv_numa_alloc(QV_BATCH_BUF_FLOATS * sizeof(float), node);
	w->mbox_mem = qv_numa_alloc(mbox_bytes, node);
	if (!w->vs || !w->sh_in || !w->sh_ref || !w->sh_out || !w->chans || !w->mbox_mem ||
	    !w->items || !w->polled || !w->bt_in || !w->bt_out) {
		qv_worker_destroy(w);
		return -ENOMEM;
	}
	qv_ring_prod_init(&w->mbox_prod, w->mbox_mem, QV_MBOX_ENTRIES, sizeof(struct qv_mbox_msg));
	qv_ring_cons_init(&w->mbox_cons, w->mbox_mem, QV_MBOX_ENTRIES, sizeof(struct qv_mbox_msg));
	*ret = w;
	return 0;
}

int qv_worker_start(struct qv_worker *w)
{
	struct timespec d = { .tv_nsec = 1000 * 1000 };
	int32_t st;
	int r;

	r = pthread_create(&w->thread, NULL, worker_main, w);
	if (r != 0) {
		snprintf(w->init_err, sizeof(w->init_err), "pthread_create: %s", strerror(r));
		return -r;
	}
	w->started = 1;
	/* Acquire pairs with the release store of `ready` in worker_main(). */
	while ((st = atomic_load_explicit(&w->ready, memory_order_acquire)) == 0)
		nanosleep(&d, NULL);
	return st < 0 ? st : 0;
}

int qv_worker_add_poller(struct qv_worker *w, qv_worker_poll_fn fn, void *arg)
{
	if (w->n_ext == QV_WORKER_MAX_POLLERS)
		return -ENOSPC;
	w->ext[w->n_ext].fn = fn;
	w->ext[w->n_ext].arg = arg;
	w->n_ext++;
	return 0;
}

void qv_worker_post(struct qv_worker *w, uint32_t op, struct qv_chan *c)
{
	struct timespec d = { .tv_nsec = 100 * 1000 };
	struct qv_mbox_msg m = { .op = op, .chan = c };
	int space;

	/* Full only while the worker runs long requests: wait for it. */
	while ((space = qv_ring_prod_space(&w->mbox_prod)) <= 0)
		nanosleep(&d, NULL);
	memcpy(qv_ring_prod_entry(&w->mbox_prod, 0), &m, sizeof(m));
	/* Release (in commit) publishes the message and everything the
	 * channel holds; pairs with the worker's acquire in mbox_poll(). */
	qv_ring_prod_commit(&w->mbox_prod, 1);
}

static void numa_free_opt(void *p, size_t bytes, int node)
{
	if (p)
		qv_numa_free(p, bytes, node);
}

void qv_worker_destroy(struct qv_worker *w)
{
	if (!w)
		return;
	if (w->started) {
		if (atomic_load_explicit(&w->ready, memory_order_acquire) == 1)
			qv_worker_post(w, QV_MBOX_STOP, NULL);
		pthread_join(w->thread, NULL);
	}
	numa_free_opt(w->vs, QV_MAX_VSLOTS * sizeof(*w->vs), w->node);
	numa_free_opt(w->sh_in, QV_SHADOW_SCRATCH_BYTES, w->node);
	numa_free_opt(w->sh_ref, QV_SHADOW_SCRATCH_BYTES, w->node);
	numa_free_opt(w->sh_out, QV_SHADOW_SCRATCH_BYTES, w->node);
	numa_free_opt(w->chans, QV_WORKER_MAX_CHANS * sizeof(*w->chans), w->node);
	numa_free_opt(w->items, QV_WORKER_MAX_PENDING * sizeof(*w->items), w->node);
	numa_free_opt(w->polled, QV_WORKER_MAX_CHANS * sizeof(*w->polled), w->node);
	numa_free_opt(w->bt_in, QV_BATCH_BUF_FLOATS * sizeof(float), w->node);
	numa_free_opt(w->bt_out, QV_BATCH_BUF_FLOATS * sizeof(float), w->node);
	numa_free_opt(w->mbox_mem, qv_ring_bytes(QV_MBOX_ENTRIES, sizeof(struct qv_mbox_msg)),
		      w->node);
	qv_numa_free(w, sizeof(*w), w->node);
}
