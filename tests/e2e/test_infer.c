/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_infer.c - outputs through the rings equal the torch references, for
 * trade-mlp and ctr-mlp (and echo equals its input): synchronous qv_infer
 * at batch 1 and multi-row, and asynchronous qv_submit/qv_poll with many
 * requests in flight, single- and multi-row.
 *
 * Usage: test_infer QUIVERD REPO [CLIENT QUIVERCTL]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Every reference row as its own request, then chunks of `chunk` rows, all
 * submitted asynchronously with as many in flight as the client allows. */
static void async_check(qv_client *c, const struct qvt_model *m, uint32_t chunk)
{
	const struct qvt_ref *ref = &m->ref;
	uint32_t nreq = (ref->rows + chunk - 1) / chunk;
	float *out = malloc((size_t)ref->rows * ref->out_dim * sizeof(float));
	uint8_t *seen = calloc(nreq, 1);
	struct qv_result res[16];
	uint32_t next = 0, done = 0, max_inflight = 0;
	char what[128];

	if (!out || !seen)
		qvt_die("out of memory");
	memset(out, 0xff, (size_t)ref->rows * ref->out_dim * sizeof(float));
	uint64_t t0 = qvt_now_ns();
	while (done < nreq) {
		while (next < nreq) {
			uint32_t row0 = next * chunk;
			uint32_t rows = row0 + chunk <= ref->rows ? chunk : ref->rows - row0;
			struct qv_request req = {
				.handle = m->desc.handle,
				.rows = rows,
				.input = ref->x.data + (size_t)row0 * ref->in_dim,
				.request_id = 1000 + next,
			};
			int r = qv_submit(c, &req, out + (size_t)row0 * ref->out_dim,
					  (size_t)rows * ref->out_dim);
			if (r == -EAGAIN)
				break;
			if (r < 0)
				qvt_die("qv_submit: %s", qv_strerror(r));
			next++;
		}
		if (qv_inflight(c) > max_inflight)
			max_inflight = qv_inflight(c);
		int n = qv_poll(c, res, 16);
		if (n < 0)
			qvt_die("qv_poll: %s", qv_strerror(n));
		for (int i = 0; i < n; i++) {
			uint64_t k = res[i].request_id - 1000;
			if (res[i].request_id < 1000 || k >= nreq || seen[k]) {
				qvt_fail("async: unexpected or duplicate request id %llu",
					 (unsigned long long)res[i].request_id);
				continue;
			}
			seen[k] = 1;
			done++;
			if (res[i].status != QV_OK)
				qvt_fail("async %s: request %llu: %s", m->desc.name,
					 (unsigned long long)k, qv_strerror((int)res[i].status));
			if (res[i].version != m->desc.version)
				qvt_fail("async: version %u, want %u", res[i].version,
					 m->desc.version);
		}
		if (qvt_now_ns() - t0 > 30ull * 1000000000u)
			qvt_die("async %s: %u of %u requests completed in 30 s", m->desc.name,
				done, nreq);
	}
	snprintf(what, sizeof(what), "async %s chunk %u", m->desc.name, chunk);
	if (qvt_compare(out, ref->y.data, (size_t)ref->rows * ref->out_dim, QVT_RTOL, QVT_ATOL,
			what))
		qvt_fail("%s: outputs differ from the reference", what);
	if (chunk == 1 && max_inflight < 2)
		qvt_fail("%s: never had more than one request in flight", what);
	fprintf(stderr, "%s: %u requests, up to %u in flight\n", what, nreq, max_inflight);
	if (qv_inflight(c) != 0)
		qvt_fail("%s: %u still in flight", what, qv_inflight(c));
	free(seen);
	free(out);
}

static void check_model(qv_client *c, const char *repo, const char *name)
{
	struct qvt_model m;
	qvt_model_open(c, repo, name, &m);

	for (uint32_t i = 0; i < m.ref.rows; i++)
		qvt_infer_check(c, &m, i, 1, "sync batch 1");
	static const uint32_t sizes[] = { 2, 3, 7, 16, 64 };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint32_t rows = sizes[k] <= m.ref.rows ? sizes[k] : m.ref.rows;
		if (rows <= m.desc.max_batch)
			qvt_infer_check(c, &m, m.ref.rows - rows, rows, "sync multi-row");
	}
	async_check(c, &m, 1);
	async_check(c, &m, 5);
	qvt_ref_free(&m.ref);
}

/* echo's output is its input, bit for bit. */
static void check_echo(qv_client *c)
{
	struct qv_model_desc d;
	int r = qv_model_lookup(c, "echo", &d);
	if (r < 0) {
		qvt_fail("lookup echo: %s", qv_strerror(r));
		return;
	}
	if (d.in_dim != d.out_dim || d.in_dim > 1024) {
		qvt_fail("echo: %u -> %u floats", d.in_dim, d.out_dim);
		return;
	}
	float in[4 * 1024], out[4 * 1024];
	for (uint32_t i = 0; i < 4 * d.in_dim; i++)
		in[i] = (float)i * 0.25f - 7.0f;
	struct qv_request req = { .handle = d.handle, .rows = 4, .input = in, .request_id = 9 };
	struct qv_result res;
	r = qv_infer(c, &req, out, 4 * d.out_dim, 10000, &res);
	if (r < 0 || res.status != QV_OK)
		qvt_fail("echo: %s", qv_strerror(r < 0 ? r : (int)res.status));
	else if (memcmp(in, out, 4 * d.in_dim * sizeof(float)) != 0)
		qvt_fail("echo: output differs from input");
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;

	if (argc < 3) {
		fprintf(stderr, "usage: %s QUIVERD REPO\n", argv[0]);
		return 2;
	}
	if (qvt_daemon_start(&d, argv[1], argv[2], NULL) < 0)
		qvt_die("quiverd did not start");

	qv_client *c = qvt_connect(d.sock, "e2e-infer", 16);
	check_model(c, argv[2], "trade-mlp");
	check_model(c, argv[2], "ctr-mlp");
	check_echo(c);
	qv_close(c);

	return qvt_finish(&d);
}
