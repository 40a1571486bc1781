/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_hol.c - quiver-hol: head-of-line blocking between two clients of
 * one quiverd worker. A small client sends one-row requests (qv_infer, one
 * in flight) and its latency is measured twice in the same run: alone, and
 * while a second client (another connection, its own thread) floods the
 * same model with large requests (--flood-rows rows each, default 256;
 * --flood-inflight of them, default 32, kept in flight with qv_submit /
 * qv_poll; it sleeps 20 us when a poll finds nothing, so that on a small
 * host it competes for the worker, not for the small client's core). Prints the small
 * client's p50 / p99 / p99.9 both ways, the ratio, and the flood's rows/s.
 *
 *   quiver-hol --shm SOCKET --model NAME [--iters N] [--flood-rows R]
 *              [--flood-inflight K] [--core N] [--flood-core N] [--json]
 *
 * A benchmark, not a test: it asserts nothing about speed. It exits 1 when
 * a request fails (any status but OK), 2 on bad arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_stats.h"
#include "quiver.h"

struct flood {
	const char *sock, *model;
	uint32_t rows, inflight;
	int core;
	_Atomic int stop;     /* main -> flood thread: finish up */
	_Atomic int ready;    /* flood thread -> main: 1 flooding, -errno failed */
	uint64_t done_rows, errors, ns;
};

static int pin(int core)
{
	cpu_set_t set;

	if (core < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(core, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) ? -EINVAL : 0;
}

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	struct qv_connect_opts o = { .client_name = "quiver-hol-flood" };
	struct qv_model_desc d;
	struct qv_result res[64];
	qv_client *c = NULL;
	float *in = NULL, *out = NULL;
	uint64_t t0, id = 0;
	int r;

	pin(f->core);
	r = qv_connect(f->sock, NULL, &c);
	if (r == 0)
		r = qv_model_lookup(c, f->model, &d);
	if (r == 0 && f->rows > d.max_batch)
		r = -EINVAL;
	if (r < 0)
		goto out;
	/* A connection whose slots hold the large requests. */
	qv_close(c);
	o.slots = f->inflight;
	o.slot_in_bytes = f->rows * d.in_dim * 4;
	o.slot_out_bytes = f->rows * d.out_dim * 4;
	r = qv_connect(f->sock, &o, &c);
	if (r == 0)
		r = qv_model_lookup(c, f->model, &d);
	in = calloc((size_t)f->rows * d.in_dim, sizeof(float));
	out = calloc((size_t)f->inflight * f->rows * d.out_dim, sizeof(float));
	if (r == 0 && (!in || !out))
		r = -ENOMEM;
	if (r < 0)
		goto out;
	for (size_t i = 0; i < (size_t)f->rows * d.in_dim; i++)
		in[i] = (float)((i * 7919u) % 1000u) / 1000.0f - 0.5f;
	/* Release: pairs with main's acquire wait for the flood to be on. */
	atomic_store_explicit(&f->ready, 1, memory_order_release);
	t0 = qv_bench_now_ns();
	while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
		while (qv_inflight(c) < f->inflight) {
			struct qv_request q = { .handle = d.handle, .rows = f->rows, .input = in,
						.request_id = id };
			float *o_ = out + (id % f->inflight) * f->rows * d.out_dim;
			if (qv_submit(c, &q, o_, (size_t)f->rows * d.out_dim) < 0)
				break;
			id++;
		}
		int n = qv_poll(c, res, 64);
		if (n < 0) {
			f->errors++;
			break;
		}
		if (n == 0) {
			/* Sleep, not spin: on a 2-core host the flood shares the
			 * small client's core, and it is the worker, not that
			 * core, the two should compete for. */
			struct timespec ts = { .tv_nsec = 20000 };
			nanosleep(&ts, NULL);
		}
		for (int i = 0; i < n; i++) {
			if (res[i].status == QV_OK)
				f->done_rows += f->rows;
			else
				f->errors++;
		}
	}
	f->ns = qv_bench_now_ns() - t0;
	/* Collect what is still in flight before closing. */
	for (uint64_t deadline = qv_bench_now_ns() + 5000000000ull;
	     qv_inflight(c) && qv_bench_now_ns() < deadline;) {
		if (qv_poll(c, res, 64) < 0)
			break;
	}
out:
	if (r < 0)
		atomic_store_explicit(&f->ready, r, memory_order_release);
	free(in);
	free(out);
	qv_close(c);
	return NULL;
}

/* n one-row requests, one in flight; latency of each into lat. */
static int small_run(qv_client *c, const struct qv_model_desc *d, uint32_t n, uint64_t *lat)
{
	float in[4096], out[4096];
	struct qv_result res;

	if (d->in_dim > 4096 || d->out_dim > 4096)
		return -EMSGSIZE;
	for (uint32_t i = 0; i < d->in_dim; i++)
		in[i] = (float)i / (float)d->in_dim - 0.5f;
	for (uint32_t i = 0; i < n; i++) {
		struct qv_request q = { .handle = d->handle, .rows = 1, .input = in, .request_id = i };
		uint64_t t0 = qv_bench_now_ns();
		int r = qv_infer(c, &q, out, d->out_dim, 10000, &res);
		lat[i] = qv_bench_now_ns() - t0;
		if (r < 0)
			return r;
		if (res.status != QV_OK)
			return -EIO;
	}
	return 0;
}

static void usage(FILE *f)
{
	fputs("usage: quiver-hol --shm SOCKET --model NAME [--iters N] [--flood-rows R]\n"
	      "                  [--flood-inflight K] [--core N] [--flood-core N] [--json]\n",
	      f);
}

static void print_row(const char *what, const struct qv_bench_summary *s, int json,
		      const char *model, uint32_t rows, uint32_t inflight)
{
	if (json)
		printf("{\"model\":\"%s\",\"path\":\"%s\",\"batch\":1,\"iters\":%llu,"
		       "\"p50_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu,\"max_ns\":%llu,"
		       "\"flood_rows\":%u,\"flood_inflight\":%u}\n",
		       model, what, (unsigned long long)s->n, (unsigned long long)s->p50_ns,
		       (unsigned long long)s->p99_ns, (unsigned long long)s->p999_ns,
		       (unsigned long long)s->max_ns, rows, inflight);
	else
		printf("%-24s %10llu %10llu %12llu %12llu\n", what, (unsigned long long)s->p50_ns,
		       (unsigned long long)s->p99_ns, (unsigned long long)s->p999_ns,
		       (unsigned long long)s->max_ns);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "shm", required_argument, NULL, 's' },
		{ "model", required_argument, NULL, 'm' },
		{ "iters", required_argument, NULL, 'n' },
		{ "flood-rows", required_argument, NULL, 'r' },
		{ "flood-inflight", required_argument, NULL, 'k' },
		{ "core", required_argument, NULL, 'c' },
		{ "flood-core", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct flood fl = { .rows = 256, .inflight = 32, .core = -1 };
	struct qv_bench_summary alone, flooded;
	const char *sock = NULL, *model = NULL;
	uint32_t iters = 5000;
	int core = -1, json = 0, ch, r;
	struct qv_model_desc d;
	qv_client *c = NULL;
	uint64_t *lat;
	pthread_t th;

	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		char *end = NULL;
		long v = 0;
		if (ch == 'n' || ch == 'r' || ch == 'k' || ch == 'c' || ch == 'f') {
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || !*optarg || *end || v < (ch == 'c' || ch == 'f' ? -1 : 1) ||
			    v > 100000000) {
				fprintf(stderr, "quiver-hol: bad number '%s'\n", optarg);
				return 2;
			}
		}
		switch (ch) {
		case 's': sock = optarg; break;
		case 'm': model = optarg; break;
		case 'n': iters = (uint32_t)v; break;
		case 'r': fl.rows = (uint32_t)v; break;
		case 'k': fl.inflight = (uint32_t)(v > 64 ? 64 : v); break;
		case 'c': core = (int)v; break;
		case 'f': fl.core = (int)v; break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!sock || !model || optind != argc) {
		usage(stderr);
		return 2;
	}
	fl.sock = sock;
	fl.model = model;
	lat = calloc(iters, sizeof(*lat));
	if (!lat)
		return 1;
	pin(core);
	r = qv_connect(sock, NULL, &c);
	if (r == 0)
		r = qv_model_lookup(c, model, &d);
	if (r < 0) {
		fprintf(stderr, "quiver-hol: %s: %s\n", sock, qv_strerror(r));
		return 1;
	}
	/* Alone: a warm-up, then the measured run. */
	r = small_run(c, &d, iters < 1000 ? iters : 1000, lat);
	if (r == 0)
		r = small_run(c, &d, iters, lat);
	if (r < 0)
		goto fail;
	qv_bench_summarise(lat, iters, 1, 1, &alone);

	if (pthread_create(&th, NULL, flood_main, &fl) != 0) {
		r = -EAGAIN;
		goto fail;
	}
	/* Acquire: pairs with the flood thread's release store of ready. */
	while ((r = atomic_load_explicit(&fl.ready, memory_order_acquire)) == 0)
		sched_yield();
	if (r < 0) {
		pthread_join(th, NULL);
		fprintf(stderr, "quiver-hol: flood client: %s\n", qv_strerror(r));
		return 1;
	}
	r = small_run(c, &d, iters, lat);
	atomic_store_explicit(&fl.stop, 1, memory_order_relaxed);
	pthread_join(th, NULL);
	if (r < 0)
		goto fail;
	qv_bench_summarise(lat, iters, 1, 1, &flooded);

	if (!json)
		printf("%s, one-row requests of a small client (ns):\n"
		       "%-24s %10s %10s %12s %12s\n",
		       model, "path", "p50", "p99", "p99.9", "max");
	print_row("alone", &alone, json, model, fl.rows, fl.inflight);
	print_row("beside-flood", &flooded, json, model, fl.rows, fl.inflight);
	if (!json)
		printf("flood: %u rows a request, %u in flight: %.0f rows/s, %llu errors; "
		       "p99 beside the flood / alone: %.1fx\n",
		       fl.rows, fl.inflight, fl.ns ? (double)fl.done_rows * 1e9 / (double)fl.ns : 0.0,
		       (unsigned long long)fl.errors,
		       alone.p99_ns ? (double)flooded.p99_ns / (double)alone.p99_ns : 0.0);
	free(lat);
	qv_close(c);
	return fl.errors ? 1 : 0;
fail:
	fprintf(stderr, "quiver-hol: small client: %s\n", qv_strerror(r));
	return 1;
}
