/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_udp_pingpong.c - round-trip latency of the io_uring back end on
 * loopback beside its floor (qv_floor_udp), without quiverd: a child
 * process polls qv_udp_uring_poll with a trivial worker (out = 2 * in,
 * in_dim = out_dim = DIM) and the parent calls qv_udp_infer. The gap
 * between the two lines is what the back end itself costs.
 *   udp_pingpong [iters [dim]]     (defaults 20000, 16)
 *   udp_pingpong --connect ADDR:PORT MODEL [iters]
 *     measures a running quiverd instead, with zero inputs, beside the floor
 * Not a test: it prints numbers and asserts only that replies are right.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floor_udp.h"
#include "quiver.h"
#include "serve.h"
#include "udp.h"
#include "worker.h"

/* The fake worker's model: out = 2 * in, `fake_dim` wide. */
static uint32_t fake_dim;

void qv_worker_serve(struct qv_worker *w, const struct qv_serve_req *req,
		     struct qv_serve_res *ret)
{
	(void)w;
	memset(ret, 0, sizeof(*ret));
	if (req->in_bytes != req->rows * fake_dim * 4 || req->out_cap < req->in_bytes) {
		ret->status = QV_BAD_SHAPE;
		return;
	}
	for (uint32_t i = 0; i < req->rows * fake_dim; i++)
		req->out[i] = 2.0f * req->in[i];
	ret->status = QV_OK;
	ret->version = 1;
	ret->out_bytes = req->in_bytes;
}

void qv_worker_serve_batch(struct qv_worker *w, struct qv_batch_item *items, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (!items[i].done)
			qv_worker_serve(w, &items[i].req, &items[i].res);
}

void qv_worker_shadow_flush(struct qv_worker *w)
{
	(void)w;
}

int qv_worker_lookup(struct qv_worker *w, const char *name, const struct qv_lookup_reply **ret_lr)
{
	static struct qv_lookup_reply lr;
	struct qv_model_wire *ret = &lr.m;

	(void)w;
	lr.n_inputs = lr.n_outputs = 1;
	if (strcmp(name, "double") != 0)
		return -ENOENT;
	memset(ret, 0, sizeof(*ret));
	ret->handle = 1;
	ret->version = 1;
	ret->in_dim = ret->out_dim = fake_dim;
	ret->max_batch = 64;
	/* One float tensor each way, as the daemon describes such a model. */
	for (int k = 0; k < 2; k++) {
		struct qv_tensor_wire *t = &lr.t[k];
		uint32_t dim = k ? ret->out_dim : ret->in_dim;

		memset(t, 0, sizeof(*t));
		snprintf(t->name, sizeof(t->name), "%s", k ? "y" : "x");
		t->dtype = 1;
		t->rank = 2;
		t->shape[0] = -1;
		t->shape[1] = dim;
		t->row_bytes = dim * 4;
	}
	*ret_lr = &lr;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void print_line(const char *name, uint64_t *s, uint32_t n)
{
	qsort(s, n, sizeof(*s), cmp_u64);
	printf("%-10s n=%u p50=%.2f us p90=%.2f us p99=%.2f us min=%.2f us\n", name, n,
	       (double)s[n / 2] / 1e3, (double)s[(uint64_t)n * 9 / 10] / 1e3,
	       (double)s[(uint64_t)n * 99 / 100] / 1e3, (double)s[0] / 1e3);
}

static int against_daemon(const char *ap, const char *model, uint32_t iters)
{
	qv_udp_client *c;
	struct qv_model_desc d;
	uint64_t *lat = calloc(iters, sizeof(*lat));
	int r = qv_udp_connect(ap, NULL, &c);

	if (r < 0 || lat == NULL || (r = qv_udp_lookup(c, model, &d)) < 0) {
		fprintf(stderr, "%s %s: %s\n", ap, model, strerror(r < 0 ? -r : ENOMEM));
		return 1;
	}
	r = qv_floor_udp(iters, iters / 10, (uint32_t)(sizeof(struct qv_udp_req_hdr) + d.in_dim * 4),
			 lat);
	if (r < 0) {
		fprintf(stderr, "floor: %s\n", strerror(-r));
		return 1;
	}
	print_line("floor-udp", lat, iters);
	float *in = calloc(d.in_dim, sizeof(float)), *out = calloc(d.out_dim, sizeof(float));
	struct qv_request rq = { .handle = d.handle, .rows = 1, .input = in };
	for (uint32_t i = 0; i < iters + iters / 10; i++) {
		struct qv_result res;
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = qv_udp_infer(c, &rq, out, d.out_dim, 10000, &res);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (r < 0 || res.status != QV_OK) {
			fprintf(stderr, "round trip %u: %d status %d\n", i, r, r < 0 ? -1 : (int)res.status);
			return 1;
		}
		if (i >= iters / 10)
			lat[i - iters / 10] = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull +
					      (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;
	}
	print_line("udp", lat, iters);
	qv_udp_close(c);
	free(in);
	free(out);
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "--connect") == 0)
		return against_daemon(argv[2], argv[3],
				      argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 20000);

	uint32_t iters = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 20000;
	uint32_t dim = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 16;
	uint64_t *lat = calloc(iters, sizeof(*lat));
	int pfd[2];
	int r;

	if (iters == 0 || dim == 0 || dim > 1024 || lat == NULL || pipe(pfd) < 0)
		return 2;
	r = qv_floor_udp(iters, iters / 10, (uint32_t)(sizeof(struct qv_udp_req_hdr) + dim * 4),
			 lat);
	if (r < 0) {
		fprintf(stderr, "floor: %s\n", strerror(-r));
		return 1;
	}
	print_line("floor-udp", lat, iters);

	pid_t pid = fork();
	if (pid == 0) {
		struct qv_udp_uring *u;
		static struct qv_worker w; /* passed through untouched */
		uint16_t port = 0;

		fake_dim = dim;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		r = qv_udp_uring_open("127.0.0.1:0", NULL, -1, &u);
		if (r == 0)
			port = qv_udp_uring_port(u);
		if (write(pfd[1], &port, sizeof(port)) != sizeof(port) || r < 0)
			_exit(1);
		for (;;)
			qv_udp_uring_poll(u, &w);
	}
	uint16_t port = 0;
	if (read(pfd[0], &port, sizeof(port)) != sizeof(port) || port == 0) {
		fprintf(stderr, "server did not start\n");
		return 1;
	}
	char ap[32];
	qv_udp_client *c;
	struct qv_model_desc d;
	snprintf(ap, sizeof(ap), "127.0.0.1:%u", port);
	if (qv_udp_connect(ap, NULL, &c) < 0 || qv_udp_lookup(c, "double", &d) < 0) {
		fprintf(stderr, "client setup failed\n");
		kill(pid, SIGKILL);
		return 1;
	}
	float *in = calloc(dim, sizeof(float)), *out = calloc(dim, sizeof(float));
	for (uint32_t i = 0; i < dim; i++)
		in[i] = (float)i * 0.5f;
	struct qv_request rq = { .handle = d.handle, .rows = 1, .input = in };
	for (uint32_t i = 0; i < iters + iters / 10; i++) {
		struct qv_result res;
		uint64_t t0, t1;
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		t0 = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		r = qv_udp_infer(c, &rq, out, dim, 10000, &res);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t1 = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		if (r < 0 || res.status != QV_OK || out[dim - 1] != 2.0f * in[dim - 1]) {
			fprintf(stderr, "round trip %u failed: %d status %d\n", i, r,
				r < 0 ? -1 : (int)res.status);
			kill(pid, SIGKILL);
			return 1;
		}
		if (i >= iters / 10)
			lat[i - iters / 10] = t1 - t0;
	}
	print_line("udp-uring", lat, iters);
	qv_udp_close(c);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	free(in);
	free(out);
	free(lat);
	return 0;
}
