/* SPDX-License-Identifier: Apache-2.0 */
/*
 * worker.c - the polled worker loop, qv_worker_serve and qv_worker_lookup.
 *
 * A turn: (1) take control messages from the mailbox, (2) load the routing
 * table (acquire; routes.c), used for every request of the turn, (3)
 * gather the ready descriptors of every owned channel (only as many as
 * each channel's completion ring has room for, at most QV_WORKER_CHAN_ROWS
 * rows a channel and QV_WORKER_TURN_ROWS a turn, channels visited
 * round-robin from the one after last turn's first; worker.h), pick each request's
 * version, run the requests that picked the same version as one batch -
 * gathered into the worker's buffer and scattered back to their slots -
 * then push every channel's completions; a mirrored (shadow) request runs
 * after that, (4) poll the external transports (UDP: a turn's datagrams
 * are batched the same way), (5) report a quiescent state (QSBR: nothing
 * of this turn's table is held past here), (6) account the turn's cycles
 * as busy (some work done) or idle - at the next turn's start, with that
 * turn's one TSC read - and about once a millisecond refresh the
 * server_heartbeat_ns of every owned channel.
 *
 * Batching does not wait unless a model asks to: a turn runs what is
 * ready. From two requests up a batch costs less than the same requests
 * one by one (trade-mlp, one row each, best of 7 on a loaded 2-core host:
 * 2 in 2.2-2.6 us vs 5.0-6.7 us; 8 in 6.4-7.4 us vs 25 us), so a version
 * with two ready requests is batched and one alone runs in place in its
 * slot. A model whose config.json sets max_queue_delay_us has its channel
 * requests held (in the worker's item array, admitted again every turn
 * against the current table) until they make preferred_batch rows, the
 * oldest has waited the delay, or a deadline comes near (hold_decide()).
 *
 * Routes: the version is picked per request first (canary share, manual
 * fallback, deadline fallback by the version's recent service time), then
 * requests are grouped by the version picked. Error and nonfinite
 * fallbacks are checked per request after the batch and only the requests
 * they fire for run again, alone, on the fallback (the nonfinite check
 * reads float32 outputs only, outcheck.h). A run that finds an id outside
 * its table (-ERANGE) is the request's fault, never a fallback trigger: it
 * is answered BAD_REQUEST, and a batch it was part of runs again request by
 * request so that only the offending requests get it (split_batches). A request drawn for its
 * route's shadow has its input and answer copied into the worker's mirror
 * buffers; after the turn's answers are pushed the shadow runs once on all
 * of them (one shadow version a turn; mirror_add()).
 *
 * Per request: one route record (line 0 of struct qv_route_hot) and, when
 * the route has no canary, shadow or fallback (flags == 0), one predicted
 * branch and no routing work; one TSC read a turn (the pick-up stamp of
 * its requests and the end of the previous turn) and two per model run time
 * requests into their version's histogram. No divide per request: ring
 * indices wrap by mask, the channel walk by a compare, TSC-ns conversions
 * multiply by a precomputed rate, and request totals are the sums of the
 * per-status counters, made when stats are read. Nothing in a turn blocks,
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
#include "outcheck.h"
#include "predlog_hook.h"
#include "qv_prefetch.h"
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
	cnt_add(&w->cnt.status[st < QV_STATUS_COUNT ? st : QV_INTERNAL], 1);
}

/*
 * A version's own stats: counts, the service-time histogram of d (cycles
 * from pick-up to the answer, time held for a batch included) and, for
 * answers that ran the model, the EWMA of svc (cycles of this turn's
 * running, never of waiting) that the deadline trigger and a held batch's
 * deadline check use.
 */
static inline void vs_record(struct qv_worker *w, const struct qv_version *v, uint32_t st,
			     uint32_t flags, uint64_t d, uint64_t svc, uint64_t run, uint64_t ring)
{
	struct qv_vstats *s = &w->vs[v->slot];

	qv_stat_inc(&s->status[st]);
	if (flags & QV_FLAG_CANARY)
		qv_stat_inc(&s->canary);
	if (flags & QV_FLAG_FALLBACK)
		qv_stat_inc(&s->fallback);
	qv_stat_inc(&s->hist[qv_hist_bucket(d)]);
	/* ring: cycles in the submission ring before the pick-up (0: unknown). */
	qv_stat_inc(&s->req_hist[qv_log2_bucket(d + ring)]);
	qv_stat_add(&s->req_sum, d + ring);
	/* run: cycles of the model run that answered (0: none ran); the rest of
	 * d + ring is queueing (in the ring, held for a batch, behind other
	 * runs, routing). */
	if (run) {
		uint64_t q = d + ring > run ? d + ring - run : 0;

		qv_stat_add(&s->compute_sum, run);
		qv_stat_inc(&s->compute_hist[qv_log2_bucket(run)]);
		qv_stat_add(&s->queue_sum, q);
		qv_stat_inc(&s->queue_hist[qv_log2_bucket(q)]);
	}
	if (st == QV_OK) {
		uint64_t tag = (uint64_t)v->handle << 32 | v->version;
		/* A reused stats slot: the estimate starts over with its new version. */
		if (s->ewma_tag != tag || !s->ewma_cycles) {
			s->ewma_tag = tag;
			s->ewma_cycles = svc;
		} else {
			s->ewma_cycles = (uint64_t)((int64_t)s->ewma_cycles +
						    ((int64_t)svc - (int64_t)s->ewma_cycles) / 8);
		}
	}
}

/* One model run of `rows` rows: the runs-by-rows histogram. */
static inline void run_record(struct qv_worker *w, const struct qv_version *v, uint32_t rows)
{
	qv_stat_inc(&w->vs[v->slot].runs[qv_run_bucket(rows)]);
}

/* This worker's recent service time of v in cycles, 0 when it has none yet. */
static inline uint64_t ewma_of(const struct qv_worker *w, const struct qv_version *v)
{
	const struct qv_vstats *s = &w->vs[v->slot];

	return s->ewma_tag == ((uint64_t)v->handle << 32 | v->version) ? s->ewma_cycles : 0;
}

/*
 * Runs v on this worker's context: 0, or nonzero when the run failed (or
 * the version's failpoint is set: one relaxed load from the version's first
 * line, which the worker reads anyway for its slot and max batch; see
 * struct qv_version). -ERANGE: an id input outside its table.
 */
static inline int run_v(const struct qv_worker *w, const struct qv_version *v, const float *in,
			uint32_t rows, float *out)
{
	if (__builtin_expect(atomic_load_explicit(&v->failpoint, memory_order_relaxed) != 0, 0))
		return -EIO;
	return qv_run(v->ctx[w->id], in, rows, out);
}

/*
 * A run's status: an id out of range is the request's fault (BAD_REQUEST,
 * never a fallback trigger), anything else the model's (INTERNAL).
 */
static inline uint32_t run_status(int r)
{
	return r == 0 ? QV_OK : r == -ERANGE ? QV_BAD_REQUEST : QV_INTERNAL;
}

/*
 * Adds a request answered by `of` to the mirror buffers of shadow `sh`:
 * its input and the answer it got, copied now (once the completion is
 * pushed the slot is the client's again). Skipped - not mirrored - when
 * the shadow would only compare a version with itself, when another
 * shadow's requests are pending, or when the buffers or the shadow's max
 * batch are full.
 */
static void mirror_add(struct qv_worker *w, const struct qv_version *sh,
		       const struct qv_version *of, const struct qv_serve_req *req)
{
	uint64_t in_off = (uint64_t)w->sh_rows * sh->info.in_dim;
	uint64_t out_off = (uint64_t)w->sh_rows * sh->info.out_dim;
	uint64_t out_n = (uint64_t)req->rows * sh->info.out_dim;

	if (sh == of || (w->sh_ver && w->sh_ver != sh) || w->sh_n == QV_WORKER_MAX_PENDING ||
	    w->sh_rows + req->rows > sh->max_batch ||
	    (in_off * sizeof(float) + req->in_bytes) > QV_SHADOW_SCRATCH_BYTES ||
	    (out_off + out_n) * sizeof(float) > QV_SHADOW_SCRATCH_BYTES)
		return;
	memcpy(w->sh_in + in_off, req->in, req->in_bytes);
	memcpy(w->sh_ref + out_off, req->out, out_n * sizeof(float));
	w->sh_req_rows[w->sh_n++] = req->rows;
	w->sh_rows += req->rows;
	w->sh_ver = sh;
}

/*
 * How far the shadow's float outputs are from the answers given (finite
 * pairs only; nonfinite ones count as disagreements above): the running
 * max and sum. Single writer: plain relaxed load and store, as qv_stat_inc.
 */
static void shadow_drift(struct qv_vstats *vs, const struct qv_version *s, const float *got,
			 const float *ref, uint32_t rows)
{
	const uint32_t od = s->info.out_dim;
	double mx = 0, sum = 0;
	uint64_t n = 0;

	for (uint32_t r = 0; r < rows; r++) {
		for (uint32_t k = 0; k < (s->out_mixed ? s->n_fspans : 1u); k++) {
			uint32_t off = s->out_mixed ? s->fspans[k].off : 0;
			uint32_t cnt = s->out_mixed ? s->fspans[k].n : od;
			const float *a = got + (uint64_t)r * od + off, *b = ref + (uint64_t)r * od + off;
			for (uint32_t i = 0; i < cnt; i++) {
				double d = fabs((double)a[i] - (double)b[i]);
				if (!isfinite(d))
					continue;
				mx = d > mx ? d : mx;
				sum += d;
				n++;
			}
		}
	}
	uint64_t bits = atomic_load_explicit(&vs->shadow_maxdiff, memory_order_relaxed);
	double cur;
	memcpy(&cur, &bits, sizeof(cur));
	if (mx > cur) {
		memcpy(&bits, &mx, sizeof(bits));
		atomic_store_explicit(&vs->shadow_maxdiff, bits, memory_order_relaxed);
	}
	double add = sum * 1e9;
	atomic_store_explicit(&vs->shadow_sumdiff_n9,
			      atomic_load_explicit(&vs->shadow_sumdiff_n9, memory_order_relaxed) +
				      (add < 1.8e19 ? (uint64_t)add : 0),
			      memory_order_relaxed);
	atomic_store_explicit(&vs->shadow_values,
			      atomic_load_explicit(&vs->shadow_values, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

void qv_worker_shadow_flush(struct qv_worker *w)
{
	const struct qv_version *s = w->sh_ver;
	struct qv_vstats *vs;
	uint64_t od;
	int failed;

	if (!s)
		return;
	w->sh_ver = NULL;
	vs = &w->vs[s->slot];
	od = s->info.out_dim;
	/* One run for every request gathered; each compared with its own answer. */
	failed = run_v(w, s, w->sh_in, w->sh_rows, w->sh_out) != 0;
	for (uint32_t k = 0, r = 0; k < w->sh_n; r += w->sh_req_rows[k], k++) {
		qv_stat_inc(&vs->shadow);
		if (failed || qv_out_disagree(s, w->sh_out + (uint64_t)r * od,
					      w->sh_ref + (uint64_t)r * od, w->sh_req_rows[k]))
			qv_stat_inc(&vs->shadow_disagree);
	}
	if (!failed)
		shadow_drift(vs, s, w->sh_out, w->sh_ref, w->sh_rows);
	w->sh_n = 0;
	w->sh_rows = 0;
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
	       (req->n_inputs == 0 || req->n_inputs == h->n_inputs) &&
	       (uint64_t)req->in_bytes == (uint64_t)req->rows * h->in_dim * sizeof(float) &&
	       (uint64_t)req->out_cap >= (uint64_t)req->rows * h->out_dim * sizeof(float);
}

/* Route flags whose version is picked per request, before the run. */
#define QV_RT_PICKS (QV_RT_CANARY | QV_RT_FB_MANUAL | QV_RT_FB_DEADLINE)

/*
 * The version a request on a route with a canary, a manual or a deadline
 * fallback runs on, and its deadline check. Returns QV_OK or the status to
 * answer with; *ret_v and *ret_flags say which version and how, either way.
 * t0: when the worker took the request.
 */
static uint32_t route_choose(struct qv_worker *w, const struct qv_route_hot *h,
			     const struct qv_serve_req *req, uint64_t t0,
			     const struct qv_version **ret_v, uint32_t *ret_flags)
{
	const struct qv_version *v = h->primary, *fb = h->fallback;
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
			/* Unsigned compare first: a deadline far in the future (up to
			 * UINT64_MAX, "never") must not wrap into the past through a
			 * signed cast. */
			uint64_t now = qv_now_ns();
			if (req->deadline_ns <= now) {
				st = QV_DEADLINE_EXCEEDED;
				goto out;
			}
			left = (double)(req->deadline_ns - now) * w->cycles_per_ns;
		} else {
			left = (double)v->deadline_cycles - (double)(qv_tsc() - t0);
		}
		if ((h->flags & QV_RT_FB_DEADLINE) && !(flags & QV_FLAG_FALLBACK) &&
		    fb_fits(fb, v, req) && (double)ewma_of(w, v) > left) {
			v = fb;
			flags = QV_FLAG_FALLBACK;
		}
	}
out:
	*ret_v = v;
	*ret_flags = flags;
	return st;
}

/*
 * A route with a canary, shadow or fallback, one request alone. Returns
 * the status; *ret_v and *ret_flags say which version answered and how.
 */
static uint32_t serve_routed(struct qv_worker *w, const struct qv_route_hot *h,
			     const struct qv_serve_req *req, uint64_t t0,
			     const struct qv_version **ret_v, uint32_t *ret_flags)
{
	const struct qv_version *v, *fb = h->fallback;
	uint32_t flags, st = route_choose(w, h, req, t0, &v, &flags);
	int mirror;

	if (st != QV_OK)
		goto out;
	mirror = (h->flags & QV_RT_SHADOW) && qv_xorshift64(&w->rng) < h->shadow_thr;
	run_record(w, v, req->rows);
	st = run_status(run_v(w, v, req->in, req->rows, req->out));
	if (st != QV_OK) {
		if (st == QV_BAD_REQUEST || !(h->flags & QV_RT_FB_ERROR) ||
		    (flags & QV_FLAG_FALLBACK) || !fb_fits(fb, v, req))
			goto out;
	} else if (!(h->flags & QV_RT_FB_NONFINITE) || (flags & QV_FLAG_FALLBACK) ||
		   !fb_fits(fb, v, req) || !qv_out_nonfinite(v, req->out, req->rows)) {
		goto mirror;
	}
	v = fb;
	flags = QV_FLAG_FALLBACK;
	run_record(w, v, req->rows);
	st = run_status(run_v(w, v, req->in, req->rows, req->out));
mirror:
	if (mirror && st == QV_OK)
		mirror_add(w, h->shadow, v, req);
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
	ret->n_outputs = 0;
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
		st = serve_routed(w, h, req, t0, &v, &flags);
	} else if (req->deadline_ns && qv_now_ns() > req->deadline_ns) {
		/* The only per-request clock read, and only when a deadline was set. */
		st = QV_DEADLINE_EXCEEDED;
	} else {
		run_record(w, v, req->rows);
		st = run_status(run_v(w, v, req->in, req->rows, req->out));
	}
	if (st == QV_OK) {
		ret->out_bytes = (uint32_t)out_need;
		ret->n_outputs = h->n_outputs;
	}
	ret->version = v->version;
	ret->flags = flags;
	t0 = qv_tsc() - t0;
	vs_record(w, v, st, flags, t0, t0, st == QV_OK || st == QV_INTERNAL ? t0 : 0, 0);
out:
	ret->status = st;
	count_status(w, st);
}

/*
 * A request that can join a batch: returns the version it runs on (picked
 * per request on a routed route), or NULL after answering it (bad shape,
 * passed deadline) or handing it to qv_worker_serve() (draining, unknown
 * model). A request drawn for its route's shadow is marked `mirror`. `accepted`: taken before a drain began
 * (held over), served even while draining.
 */
static const struct qv_version *batch_admit(struct qv_worker *w, struct qv_batch_item *it,
					    int accepted)
{
	const struct qv_table *tab = w->tab;
	const struct qv_serve_req *req = &it->req;
	const struct qv_route_hot *h;
	const struct qv_version *v;
	uint32_t st, flags = 0;

	if ((w->draining && !accepted) || req->handle >= tab->n)
		goto single;
	h = &tab->hot[req->handle];
	if (h->state != QV_ROUTE_READY)
		goto single;
	v = h->primary;
	if (!req_fits(h, req)) {
		st = QV_BAD_SHAPE;
	} else if (__builtin_expect(h->flags & QV_RT_PICKS, 0)) {
		st = route_choose(w, h, req, it->t0, &v, &flags);
	} else if (req->deadline_ns && qv_now_ns() > req->deadline_ns) {
		/* The only per-request clock read, and only when a deadline was set. */
		st = QV_DEADLINE_EXCEEDED;
	} else {
		st = QV_OK;
	}
	if (st == QV_OK) {
		it->h = h;
		it->flags = flags;
		/* Drawn now, mirrored after its answer (batch_answer). */
		it->mirror = (h->flags & QV_RT_SHADOW) && qv_xorshift64(&w->rng) < h->shadow_thr;
		w->any_delay |= v->queue_delay_cycles != 0;
		return v;
	}
	it->res.status = st;
	it->res.version = v->version;
	it->res.flags = flags;
	it->res.out_bytes = 0;
	it->res.n_outputs = 0;
	vs_record(w, v, st, flags, qv_tsc() - it->t0, 0, 0, it->ring);
	count_status(w, st);
	return NULL;
single:
	qv_worker_serve(w, req, &it->res);
	return NULL;
}

/* Marks the requests gathered into the batch being built. */
static const struct qv_version batch_member;

/*
 * Answers a request of a batch (or a request alone) that ran on v with
 * status st, `now` the TSC after the run; first re-runs it alone on the
 * route's fallback when its run failed or its own rows came out nonfinite
 * and the route says so (and it did not run on the fallback already).
 */
static void batch_answer(struct qv_worker *w, struct qv_batch_item *it,
			 const struct qv_version *v, uint32_t st, uint64_t now)
{
	const struct qv_route_hot *h = it->h;
	uint32_t flags = it->flags;

	if (__builtin_expect(h->flags != 0, 0) && !(flags & QV_FLAG_FALLBACK) &&
	    fb_fits(h->fallback, v, &it->req) &&
	    (st != QV_OK ? st == QV_INTERNAL && (h->flags & QV_RT_FB_ERROR)
			 : ((h->flags & QV_RT_FB_NONFINITE) &&
			    qv_out_nonfinite(v, it->req.out, it->req.rows)))) {
		v = h->fallback;
		flags = QV_FLAG_FALLBACK;
		run_record(w, v, it->req.rows);
		w->run_t0 = qv_tsc();
		st = run_status(run_v(w, v, it->req.in, it->req.rows, it->req.out));
		now = qv_tsc();
	}
	it->res.status = st;
	it->res.version = v->version;
	it->res.flags = flags;
	it->res.out_bytes = st == QV_OK ? it->req.rows * v->info.out_dim * (uint32_t)sizeof(float)
					: 0;
	it->res.n_outputs = st == QV_OK ? h->n_outputs : 0;
	/* The estimate is of running, not of waiting: from this turn's start at most. */
	vs_record(w, v, st, flags, now - it->t0, now - (it->t0 > w->turn_t0 ? it->t0 : w->turn_t0),
		  now - w->run_t0, it->ring);
	count_status(w, st);
	qv_predlog_hook(w, v, it, st, w->run_t0, now);
	if (__builtin_expect(it->mirror, 0) && st == QV_OK)
		mirror_add(w, h->shadow, v, &it->req);
}

/*
 * Runs items[i] and the later pending requests of the same version that
 * fit (max_batch rows, the gather buffers) as one batch.
 */
static void batch_run(struct qv_worker *w, struct qv_batch_item *items, uint32_t i, uint32_t n)
{
	const struct qv_version *v = items[i].v;
	uint32_t in_dim = v->info.in_dim, out_dim = v->info.out_dim;
	uint32_t rows = items[i].req.rows, cnt = 1, last = i, st;
	/* Floats a row takes in the gather buffers: compared by multiplying,
	 * no divide per batch. */
	uint64_t row_floats = in_dim > out_dim ? in_dim : out_dim, now;
	float *in = w->bt_in, *out = w->bt_out;

	items[i].v = NULL;
	/* Pick the members first: a request alone keeps the zero-copy path. */
	if ((uint64_t)rows * row_floats <= QV_BATCH_BUF_FLOATS) {
		for (uint32_t j = i + 1; j < n; j++) {
			if (items[j].v != v || rows + items[j].req.rows > v->max_batch ||
			    (uint64_t)(rows + items[j].req.rows) * row_floats > QV_BATCH_BUF_FLOATS)
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
	run_record(w, v, rows);
	w->run_t0 = qv_tsc();
	if (cnt == 1) {
		st = run_status(run_v(w, v, items[i].req.in, rows, items[i].req.out));
		batch_answer(w, &items[i], v, st, qv_tsc());
		return;
	}
	st = run_status(run_v(w, v, in, rows, out));
	if (__builtin_expect(st == QV_BAD_REQUEST, 0)) {
		/* Some member's id is out of range and the batch's outputs are
		 * undefined: each member runs again alone, in place, so only
		 * the offending ones are answered BAD_REQUEST. */
		qv_stat_inc(&w->vs[v->slot].split_batches);
		for (uint32_t j = i; j <= last; j++) {
			struct qv_batch_item *it = &items[j];

			if (j != i && it->v != &batch_member)
				continue;
			it->v = NULL;
			run_record(w, v, it->req.rows);
			w->run_t0 = qv_tsc();
			st = run_status(run_v(w, v, it->req.in, it->req.rows, it->req.out));
			batch_answer(w, it, v, st, qv_tsc());
		}
		return;
	}
	now = qv_tsc();
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
		batch_answer(w, it, v, st, now);
	}
}

/* Runs every admitted request of items[0, n) (those with v set). */
static void batch_run_all(struct qv_worker *w, struct qv_batch_item *items, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (items[i].v)
			batch_run(w, items, i, n);
}

void qv_worker_serve_batch(struct qv_worker *w, struct qv_batch_item *items, uint32_t n)
{
	uint64_t t0 = qv_tsc();

	w->turn_t0 = t0;
	/* A transport that serves bursts runs the previous mirror now. */
	if (w->sh_ver)
		qv_worker_shadow_flush(w);
	for (uint32_t i = 0; i < n; i++) {
		items[i].t0 = t0;
		items[i].ring = 0;
		items[i].submit_tsc = 0;
		items[i].held = 0;
		items[i].v = items[i].done ? NULL : batch_admit(w, &items[i], 0);
	}
	batch_run_all(w, items, n);
}

int qv_worker_lookup(struct qv_worker *w, const char *name, const struct qv_lookup_reply **ret)
{
	const struct qv_table *t = w->tab;

	for (uint32_t i = 0; i < t->n; i++) {
		if (t->hot[i].state == QV_ROUTE_READY && strcmp(t->wire[i].m.name, name) == 0) {
			*ret = &t->wire[i];
			return 0;
		}
	}
	return -ENOENT;
}

/* Stops polling chans[i] and hands it back: the caller never touches it again. */
static void chan_drop(struct qv_worker *w, uint32_t i, uint32_t how)
{
	struct qv_chan *c = w->chans[i];

	/*
	 * Its held requests go with it (their slots are about to be unmapped):
	 * marked answered and channel-less, the turn skips and then forgets them.
	 */
	for (uint32_t k = 0; c->held && k < w->nheld; k++) {
		if (w->items[k].chan == c) {
			w->items[k].chan = NULL;
			w->items[k].done = 1;
			w->items[k].held = 0;
			c->held--;
		}
	}
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
static int chan_gather(struct qv_worker *w, uint32_t i, uint32_t *nitems, uint32_t *turn_rows,
		       uint64_t now)
{
	struct qv_chan *c = w->chans[i];
	uint32_t n, room = QV_WORKER_MAX_PENDING - *nitems, rows = 0;
	int avail, space;

	avail = qv_ring_cons_avail(&c->sq);
	if (avail == 0)
		return 0;
	if (avail < 0)
		goto corrupt;
	/*
	 * Take only what can be completed: a completion entry for each request
	 * taken, besides those of the requests held for a fuller batch. With
	 * the completion ring full the descriptors stay in the submission ring
	 * and are retried next turn, so nothing is dropped.
	 */
	space = qv_ring_prod_space(&c->cq);
	if (space < 0)
		goto corrupt;
	space -= (int)c->held;
	if (space <= 0)
		return 0;
	n = (uint32_t)(avail < space ? avail : space);
	if (n > QV_WORKER_BURST)
		n = QV_WORKER_BURST;
	if (n > room)
		n = room;
	/*
	 * The one read of each descriptor; everything below uses the copies.
	 * Copied as a burst first, each slot's input (and output line, to be
	 * written) prefetched as soon as its index is known and checked, so
	 * the misses on the slots overlap one another and the validation
	 * instead of each following its descriptor's (qv_prefetch.h).
	 *
	 * Fairness: the burst stops before the descriptor that would take the
	 * channel past QV_WORKER_CHAN_ROWS rows or the turn past
	 * QV_WORKER_TURN_ROWS (the first is always taken); the rest stay in the
	 * ring for the next turn, read again then. Rows are only counted here
	 * (clamped: a descriptor claiming absurd rows is refused below at no
	 * cost), never trusted.
	 */
	for (uint32_t k = 0; k < n; k++) {
		struct qv_sqe *d = &w->sqes[k];
		uint32_t r;

		memcpy(d, qv_ring_cons_entry(&c->sq, k), sizeof(*d));
		r = d->rows == 0 ? 1 : d->rows < QV_WORKER_CHAN_ROWS ? d->rows : QV_WORKER_CHAN_ROWS;
		if (k > 0 && (rows + r > QV_WORKER_CHAN_ROWS ||
			      *turn_rows + rows + r > QV_WORKER_TURN_ROWS)) {
			n = k;
			break;
		}
		rows += r;
		if (d->slot < c->lim.nslots) {
			uint8_t *sl = c->slots + (uint64_t)d->slot * c->slot_stride;

			qv_prefetch_rd(sl, d->in_bytes < c->lim.slot_in_bytes ? d->in_bytes :
										 c->lim.slot_in_bytes);
			qv_prefetch_wr(sl + c->slot_in_bytes, QV_CACHELINE);
		}
	}
	for (uint32_t k = 0; k < n; k++) {
		struct qv_batch_item *it = &w->items[*nitems + k];
		const struct qv_sqe d = w->sqes[k];

		it->chan = c;
		it->slot = d.slot;
		it->t0 = now;
		/* A stamp from the future, or absurdly old, is not the same clock. */
		it->ring = d.submit_tsc && d.submit_tsc <= now && now - d.submit_tsc < (1ull << 40) ?
			   now - d.submit_tsc : 0;
		/* Stamped after this turn began is normal (the turn's clock came first);
		 * so is a stamp equal to it (a coarse or emulated TSC). */
		it->submit_tsc = d.submit_tsc && (d.submit_tsc <= now ? now - d.submit_tsc < (1ull << 40)
								: d.submit_tsc - now < (1ull << 32)) ?
				 d.submit_tsc : 0;
		it->held = 0;
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
	/*
	 * Copied: the entries can be reused now (a held request waits in the
	 * item array, not in the ring). Release pairs with the client's
	 * acquire of the head before it writes new descriptors.
	 */
	qv_ring_cons_release(&c->sq, n);
	*nitems += n;
	*turn_rows += rows;
	return (int)n;
corrupt:
	chan_corrupt(w, i);
	return -1;
}

/*
 * max_queue_delay_us: decides, per version that may wait, whether its
 * admitted requests run this turn or are held for a fuller batch. They run
 * once they make preferred_batch rows, once the oldest has waited the
 * delay, when one's own deadline would pass waiting any longer (with the
 * version's recent service time), while draining, or when holding them
 * would fill half the item array. Held requests lose their version (it is
 * only good for this turn's table) and are admitted again next turn.
 */
static void hold_decide(struct qv_worker *w, struct qv_batch_item *items, uint32_t n, uint64_t now)
{
	const struct qv_version *seen[16];
	uint32_t nseen = 0, nheld = 0;

	w->hold_until = UINT64_MAX;
	if (w->draining)
		return;
	for (uint32_t i = 0; i < n; i++) {
		const struct qv_version *v = items[i].v;
		uint64_t oldest = items[i].t0, due_ns = UINT64_MAX;
		uint32_t rows = 0, cnt = 0, k;

		if (!v || !v->queue_delay_cycles)
			continue;
		for (k = 0; k < nseen && seen[k] != v; k++)
			;
		if (k < nseen)
			continue;
		if (nseen == sizeof(seen) / sizeof(seen[0]))
			return; /* more waiting versions than tracked: the rest run now */
		seen[nseen++] = v;
		for (uint32_t j = i; j < n; j++) {
			if (items[j].v != v)
				continue;
			rows += items[j].req.rows;
			cnt++;
			if (items[j].t0 < oldest)
				oldest = items[j].t0;
			if (items[j].req.deadline_ns && items[j].req.deadline_ns < due_ns)
				due_ns = items[j].req.deadline_ns;
		}
		if (rows >= v->preferred_batch || now - oldest >= v->queue_delay_cycles ||
		    nheld + cnt > QV_WORKER_MAX_PENDING / 2)
			continue;
		if (due_ns != UINT64_MAX) {
			/* Leave twice the version's recent running time and 50 us before the deadline. */
			double svc_ns = 2.0 * (double)ewma_of(w, v) * w->ns_per_cycle + 50000.0;
			/* The clock once (vDSO): the slack left, then when it runs out in TSC. */
			double slack_ns = (double)due_ns - (double)qv_now_ns() - svc_ns;
			if (slack_ns <= 0)
				continue;
			uint64_t due_tsc = now + (uint64_t)(slack_ns * w->cycles_per_ns);
			if (due_tsc < w->hold_until)
				w->hold_until = due_tsc;
		}
		if (oldest + v->queue_delay_cycles < w->hold_until)
			w->hold_until = oldest + v->queue_delay_cycles;
		for (uint32_t j = i; j < n; j++) {
			if (items[j].v == v) {
				items[j].v = NULL;
				items[j].held = 1;
			}
		}
		nheld += cnt;
	}
}

/*
 * One turn of the channels: gather every channel's ready descriptors,
 * admit them (and the requests held over from earlier turns), hold what
 * waits for a fuller batch, run the rest in batches, then push each
 * channel's completions. Returns requests completed.
 */
static int chans_turn(struct qv_worker *w, uint64_t now)
{
	uint32_t nitems = w->nheld, held0 = w->nheld, ntouched = 0, nheld = 0, turn_rows = 0;
	uint32_t first = UINT32_MAX;

	w->turn_t0 = now;

	/*
	 * Round-robin: the turn starts at the channel after the one served
	 * first last turn, so when the turn's items or rows run out, the
	 * channels left over come first the next, and no busy channel is
	 * always served before the others.
	 */
	if (w->rr >= w->nchans)
		w->rr = 0;
	for (uint32_t seen = 0, i = w->rr; seen < w->nchans && nitems < QV_WORKER_MAX_PENDING &&
					     turn_rows < QV_WORKER_TURN_ROWS;) {
		int got;

		/* Wrapped by a compare, not a modulo: no divide per channel visited. */
		if (i >= w->nchans)
			i = 0;

		/*
		 * Dropped: index i now holds the last channel, maybe one
		 * gathered already; the rest wait for the next turn.
		 */
		got = chan_gather(w, i, &nitems, &turn_rows, now);
		if (got < 0)
			break;
		if (got > 0 && first == UINT32_MAX)
			first = i;
		seen++;
		i++;
	}
	if (first != UINT32_MAX)
		w->rr = first + 1;
	if (nitems == 0)
		return 0;
	/* Only held requests, none due yet: nothing to do this turn. */
	if (nitems == held0 && now < w->hold_until && !w->draining)
		return 0;
	w->any_delay = 0;
	for (uint32_t i = 0; i < nitems; i++) {
		w->items[i].held = 0; /* decided again below */
		w->items[i].v = w->items[i].done ? NULL : batch_admit(w, &w->items[i], i < held0);
	}
	if (__builtin_expect(w->any_delay, 0))
		hold_decide(w, w->items, nitems, now);
	batch_run_all(w, w->items, nitems);
	for (uint32_t i = 0; i < nitems; i++) {
		struct qv_batch_item *it = &w->items[i];
		struct qv_chan *c = it->chan;

		if (i < held0 && c)
			c->held--;
		if (!c)
			continue; /* its channel was dropped while it was held */
		if (it->held) {
			c->held++;
			w->items[nheld++] = *it; /* held over, in arrival order */
			continue;
		}
		struct qv_cqe e = {
			.request_id = it->req.request_id,
			.slot = it->slot,
			.status = it->res.status,
			.out_bytes = it->res.out_bytes,
			.version = it->res.version,
			.flags = it->res.flags,
		};
		if (c->npush == 0)
			w->touched[ntouched++] = c;
		memcpy(qv_ring_prod_entry(&c->cq, c->npush++), &e, sizeof(e));
	}
	w->nheld = nheld;
	for (uint32_t k = 0; k < ntouched; k++) {
		struct qv_chan *c = w->touched[k];

		/* Release (in commit) publishes the outputs and the completions. */
		qv_ring_prod_commit(&c->cq, c->npush);
		c->npush = 0;
	}
	/* A mirror runs after the answers are out: it adds nothing to their latency. */
	qv_worker_shadow_flush(w);
	return (int)(nitems - nheld);
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
	int work = 0;

	w->last_tsc = qv_tsc();
	w->last_hb_tsc = w->last_tsc;
	for (;;) {
		/*
		 * The turn's one TSC read: the pick-up stamp of every request
		 * gathered this turn, and the end of the previous turn, whose
		 * cycles are accounted here as busy (it did work) or idle.
		 */
		uint64_t t = qv_tsc();

		cnt_add(work ? &w->cnt.busy_cycles : &w->cnt.idle_cycles, t - w->last_tsc);
		cnt_add(work ? &w->cnt.busy_turns : &w->cnt.idle_turns, 1);
		w->last_tsc = t;
		if (t - w->last_hb_tsc >= w->hb_interval_tsc) {
			w->last_hb_tsc = t;
			cnt_add(&w->cnt.beats, 1);
			heartbeat(w);
		}
		work = 0;
		if (mbox_poll(w))
			break;
		/*
		 * One table for the whole turn. Acquire pairs with the release
		 * store in qv_reg_publish(): the table and the versions, models
		 * and exec contexts it names are fully built.
		 */
		w->tab = atomic_load_explicit(&w->reg->cur, memory_order_acquire);
		work += chans_turn(w, t);
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
	w->cycles_per_ns = (double)(tsc_hz ? tsc_hz : 1000000000ull) / 1e9;
	w->hb_interval_tsc = tsc_hz / 1000 ? tsc_hz / 1000 : 1;
	w->vs = qv_numa_alloc(QV_MAX_VSLOTS * sizeof(*w->vs), node);
	w->sh_in = qv_numa_alloc(QV_SHADOW_SCRATCH_BYTES, node);
	w->sh_ref = qv_numa_alloc(QV_SHADOW_SCRATCH_BYTES, node);
	w->sh_out = qv_numa_alloc(QV_SHADOW_SCRATCH_BYTES, node);
	w->chans = qv_numa_alloc(QV_WORKER_MAX_CHANS * sizeof(*w->chans), node);
	w->items = qv_numa_alloc(QV_WORKER_MAX_PENDING * sizeof(*w->items), node);
	w->touched = qv_numa_alloc(QV_WORKER_MAX_CHANS * sizeof(*w->touched), node);
	w->bt_in = qv_numa_alloc(QV_BATCH_BUF_FLOATS * sizeof(float), node);
	w->bt_out = qv_numa_alloc(QV_BATCH_BUF_FLOATS * sizeof(float), node);
	w->mbox_mem = qv_numa_alloc(mbox_bytes, node);
	if (!w->vs || !w->sh_in || !w->sh_ref || !w->sh_out || !w->chans || !w->mbox_mem ||
	    !w->items || !w->touched || !w->bt_in || !w->bt_out) {
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
	numa_free_opt(w->touched, QV_WORKER_MAX_CHANS * sizeof(*w->touched), w->node);
	numa_free_opt(w->bt_in, QV_BATCH_BUF_FLOATS * sizeof(float), w->node);
	numa_free_opt(w->bt_out, QV_BATCH_BUF_FLOATS * sizeof(float), w->node);
	numa_free_opt(w->mbox_mem, qv_ring_bytes(QV_MBOX_ENTRIES, sizeof(struct qv_mbox_msg)),
		      w->node);
	qv_numa_free(w, sizeof(*w), w->node);
}
