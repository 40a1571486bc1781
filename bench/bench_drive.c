/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_drive.c - client threads and request loops of quiver-bench's
 * --shm / --udp modes (see bench_drive.h for what each loop measures).
 *
 * Every buffer a loop touches is allocated before the timed part; the loops
 * themselves only read the clock and call libquiver.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_drive.h"
#include "bench_io.h"
#include "bench_stats.h"

/* A request id carries the index of its output buffer in the low bits so a
 * completion finds its buffer without a lookup table. */
#define BUF_BITS 16u
#define BUF_MASK ((1u << BUF_BITS) - 1u)
#define MAX_INFLIGHT BUF_MASK
/* No completion for this long while requests are in flight: give up. */
#define STALL_NS 10000000000ull
#define TIMEOUT_MS 2000u

int qv_bench_conn_open(const struct qv_bench_target *t, const char *model, uint32_t inflight,
		       struct qv_bench_conn *ret)
{
	struct qv_bench_conn c;
	int r;

	memset(&c, 0, sizeof(c));
	if (t->udp_addr) {
		struct qv_udp_opts uo = {.max_inflight = inflight < 64 ? 64 : inflight,
					 .timeout_ms = TIMEOUT_MS};
		r = qv_udp_connect(t->udp_addr, &uo, &c.udp);
		if (!r)
			r = qv_udp_lookup(c.udp, model, &c.desc);
	} else {
		/* A generous heartbeat window: on a loaded 2-core host the
		 * server can be descheduled for tens of ms without being dead. */
		struct qv_connect_opts co = {.client_name = "quiver-bench",
					     .slots = inflight < 64 ? 64 : inflight,
					     .slot_in_bytes = t->slot_in_bytes,
					     .slot_out_bytes = t->slot_out_bytes,
					     .dead_after_ms = TIMEOUT_MS};
		r = qv_connect(t->shm_socket, &co, &c.shm);
		if (!r)
			r = qv_model_lookup(c.shm, model, &c.desc);
	}
	if (r) {
		qv_bench_conn_close(&c);
		return r;
	}
	*ret = c;
	return 0;
}

void qv_bench_conn_close(struct qv_bench_conn *c)
{
	if (c->shm)
		qv_close(c->shm);
	if (c->udp)
		qv_udp_close(c->udp);
	c->shm = NULL;
	c->udp = NULL;
}

int qv_bench_conn_infer(struct qv_bench_conn *c, const struct qv_request *q, float *out,
			size_t out_cap, struct qv_result *ret_result)
{
	return c->udp ? qv_udp_infer(c->udp, q, out, out_cap, TIMEOUT_MS, ret_result)
		      : qv_infer(c->shm, q, out, out_cap, TIMEOUT_MS, ret_result);
}

int qv_bench_conn_infer_tensors(struct qv_bench_conn *c, const struct qv_request *q,
				const struct qv_tensors *t, struct qv_result *ret_result)
{
	return c->udp ? qv_udp_infer_tensors(c->udp, q, t, TIMEOUT_MS, ret_result)
		      : qv_infer_tensors(c->shm, q, t, TIMEOUT_MS, ret_result);
}

static int conn_submit(struct qv_bench_conn *c, const struct qv_request *q, float *out,
		       size_t out_cap)
{
	return c->udp ? qv_udp_submit(c->udp, q, out, out_cap) : qv_submit(c->shm, q, out, out_cap);
}

static int conn_poll(struct qv_bench_conn *c, struct qv_result *res, int max)
{
	return c->udp ? qv_udp_poll(c->udp, res, max) : qv_poll(c->shm, res, max);
}

struct loop {
	struct qv_bench_conn *c;
	const float *in;
	float *outs;          /* k buffers of stride floats */
	size_t stride;
	uint32_t rows, k;
	uint32_t *free_bufs;  /* stack of k buffer indices */
	uint64_t *t_due;      /* per request: when it was due (or sent) */
	uint64_t errors;
};

static int loop_sync(struct loop *lp, uint32_t count, uint64_t *lat)
{
	struct qv_request q = {.handle = lp->c->desc.handle, .rows = lp->rows, .input = lp->in};
	for (uint32_t i = 0; i < count; i++) {
		struct qv_result res;
		q.request_id = i;
		uint64_t t0 = qv_bench_now_ns();
		int r = qv_bench_conn_infer(lp->c, &q, lp->outs, lp->stride, &res);
		uint64_t t1 = qv_bench_now_ns();
		if (r)
			return r;
		if (res.status != QV_OK)
			lp->errors++;
		if (lat)
			lat[i] = t1 - t0;
	}
	return 0;
}

/* K in flight; rate > 0: open loop, request i due at start + i / rate. */
static int loop_async(struct loop *lp, uint32_t count, double rate, uint64_t *lat)
{
	struct qv_request q = {.handle = lp->c->desc.handle, .rows = lp->rows, .input = lp->in};
	struct qv_result res[64];
	uint32_t n_free = lp->k, next = 0, done = 0;
	const double period = rate > 0 ? 1e9 / rate : 0;
	const uint64_t start = qv_bench_now_ns();
	uint64_t last_progress = start;

	for (uint32_t b = 0; b < lp->k; b++)
		lp->free_bufs[b] = b;
	while (done < count) {
		uint64_t now = qv_bench_now_ns();
		while (next < count && n_free) {
			uint64_t due = rate > 0 ? start + (uint64_t)(period * next) : now;
			if (due > now)
				break;
			uint32_t b = lp->free_bufs[n_free - 1];
			q.request_id = ((uint64_t)next << BUF_BITS) | b;
			int r = conn_submit(lp->c, &q, lp->outs + (size_t)b * lp->stride, lp->stride);
			if (r == -EAGAIN)
				break;
			if (r)
				return r;
			lp->t_due[next] = due;
			n_free--;
			next++;
		}
		int n = conn_poll(lp->c, res, (int)(sizeof(res) / sizeof(res[0])));
		if (n < 0)
			return n;
		if (n == 0) {
			if (now - last_progress > STALL_NS && n_free < lp->k)
				return -ETIMEDOUT;
			continue;
		}
		uint64_t t = qv_bench_now_ns();
		last_progress = t;
		for (int i = 0; i < n; i++) {
			uint64_t id = res[i].request_id >> BUF_BITS;
			uint32_t b = (uint32_t)(res[i].request_id & BUF_MASK);
			if (id >= next || b >= lp->k || n_free == lp->k)
				return -EPROTO;  /* not a request of ours */
			lp->free_bufs[n_free++] = b;
			if (res[i].status != QV_OK)
				lp->errors++;
			if (lat)
				lat[done] = t - lp->t_due[id];
			done++;
		}
	}
	return 0;
}

struct thread_arg {
	const struct qv_bench_load *l;
	int core;
	pthread_barrier_t *bar;
	struct qv_bench_thread_out *out;
	pthread_t tid;
};

static void fail(struct qv_bench_thread_out *o, int err, const char *what)
{
	if (!o->err) {
		o->err = err;
		snprintf(o->what, sizeof(o->what), "%s", what);
	}
}

static void *thread_main(void *arg)
{
	struct thread_arg *ta = arg;
	const struct qv_bench_load *l = ta->l;
	struct qv_bench_thread_out *o = ta->out;
	struct qv_bench_conn c;
	struct loop lp;
	const uint32_t k = l->inflight ? l->inflight : 1;
	const uint32_t n_due = l->iters > l->warmup ? l->iters : l->warmup;
	int connected = 0, r;

	memset(&lp, 0, sizeof(lp));
	if (ta->core >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(ta->core, &set);
		r = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
		if (r)
			fail(o, -r, "pin client thread");
	}
	if (!o->err) {
		r = qv_bench_conn_open(l->target, l->model, k, &c);
		if (r)
			fail(o, r, "connect / model lookup");
		else
			connected = 1;
	}
	if (!o->err && l->rows > c.desc.max_batch)
		fail(o, -EINVAL, "batch larger than the model's max_batch");
	if (!o->err) {
		float *in;
		lp.c = &c;
		lp.rows = l->rows;
		lp.k = k;
		lp.stride = (size_t)l->rows * c.desc.out_dim;
		in = calloc((size_t)l->rows * c.desc.in_dim + 1, sizeof(float));
		lp.outs = calloc((size_t)k * lp.stride + 1, sizeof(float));
		lp.free_bufs = calloc(k, sizeof(uint32_t));
		lp.t_due = calloc(n_due + 1, sizeof(uint64_t));
		o->lat_ns = calloc(l->iters, sizeof(uint64_t));
		struct qv_bench_layout lay;
		qv_bench_layout_of_desc(&c.desc, &lay);
		if (in && !qv_bench_layout_plain(&lay)) {
			/* Packed rows of typed tensors, ids inside their tables. */
			qv_bench_fill_packed(&lay, in, l->rows, 0x9E3779B97F4A7C15ull);
		} else if (in) {
			/* A fixed, non-trivial input: [-1, 1) in a fixed pattern. */
			for (size_t i = 0; i < (size_t)l->rows * c.desc.in_dim; i++)
				in[i] = (float)((int)((i * 2654435761u) >> 8 & 255) - 128) / 128.0f;
		}
		lp.in = in;
		if (!in || !lp.outs || !lp.free_bufs || !lp.t_due || !o->lat_ns)
			fail(o, -ENOMEM, "allocate buffers");
	}
	/* Warm-up: the same loop, untimed (the open loop warms closed: a rate
	 * schedule started before the others would skew their start). */
	if (!o->err && l->warmup) {
		r = k == 1 ? loop_sync(&lp, l->warmup, NULL) : loop_async(&lp, l->warmup, 0, NULL);
		if (r)
			fail(o, r, "warm-up requests");
	}
	/* Every thread waits here, failed or not, so the others can start. */
	pthread_barrier_wait(ta->bar);
	if (!o->err) {
		lp.errors = 0;
		o->t_start = qv_bench_now_ns();
		r = (k == 1 && l->rate <= 0) ? loop_sync(&lp, l->iters, o->lat_ns)
					     : loop_async(&lp, l->iters, l->rate, o->lat_ns);
		o->t_end = qv_bench_now_ns();
		o->errors = lp.errors;
		if (r)
			fail(o, r, "timed requests");
	}
	free((void *)lp.in);
	free(lp.outs);
	free(lp.free_bufs);
	free(lp.t_due);
	if (connected)
		qv_bench_conn_close(&c);
	return NULL;
}

int qv_bench_drive(const struct qv_bench_load *l, uint32_t threads, int core_step,
		   struct qv_bench_thread_out *out)
{
	struct thread_arg *ta;
	pthread_barrier_t bar;
	uint32_t started = 0;
	int ncpu = CPU_SETSIZE, r = 0;

	if (!threads || l->inflight > MAX_INFLIGHT || !l->iters)
		return -EINVAL;
	{
		cpu_set_t set;
		if (sched_getaffinity(0, sizeof(set), &set) == 0)
			ncpu = CPU_COUNT(&set);
	}
	ta = calloc(threads, sizeof(*ta));
	if (!ta)
		return -ENOMEM;
	if (pthread_barrier_init(&bar, NULL, threads)) {
		free(ta);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < threads; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		ta[i].l = l;
		ta[i].core = l->core < 0 ? -1 : (int)((uint32_t)l->core + i * (uint32_t)core_step) % ncpu;
		ta[i].bar = &bar;
		ta[i].out = &out[i];
	}
	for (; started < threads; started++) {
		r = -pthread_create(&ta[started].tid, NULL, thread_main, &ta[started]);
		if (r)
			break;
	}
	if (started < threads) {
		/* The barrier counts every thread: without the missing ones the
		 * started ones would wait forever. Unrecoverable in a benchmark. */
		fprintf(stderr, "quiver-bench: pthread_create: %s\n", strerror(-r));
		exit(1);
	}
	for (uint32_t i = 0; i < threads; i++)
		pthread_join(ta[i].tid, NULL);
	pthread_barrier_destroy(&bar);
	free(ta);
	for (uint32_t i = 0; i < threads; i++)
		if (out[i].err)
			return out[i].err;
	return 0;
}
