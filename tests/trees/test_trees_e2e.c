/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_trees_e2e.c - a real quiverd serving XGBoost models from a
 * repository (trees-bin/1/model.json, trees-multi/1/model.ubj): lookups
 * report num_feature in and the output width out, and every reference row
 * (random, on thresholds, NaN, +-inf) gives xgboost's predict() output
 * within 1e-6 over shared memory (batch 1, multi-row, asynchronous) and
 * over UDP (each row alone, then all rows in flight).
 *
 * Usage: test_trees_e2e QUIVERD REPO
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "daemon.h"
#include "quiver.h"
#include "udp_test_util.h"
#include "udpcheck.h"

/* probabilities: the tolerance the loader promises, not the e2e default */
#define TREE_ATOL 1e-6

static void shm_model(qv_client *c, const char *repo, const char *name, uint32_t nf, uint32_t w)
{
	struct qvt_model m;
	qvt_model_open(c, repo, name, &m);
	if (m.desc.in_dim != nf || m.desc.out_dim != w || m.desc.in_rank != 2 ||
	    m.desc.in_shape[1] != nf || m.desc.out_shape[1] != w)
		qvt_fail("%s: lookup says %u -> %u floats (rank %u), want %u -> %u", name, m.desc.in_dim,
			 m.desc.out_dim, m.desc.in_rank, nf, w);
	const struct qvt_ref *ref = &m.ref;
	float *out = malloc((size_t)ref->rows * w * sizeof(float));
	if (!out)
		qvt_die("out of memory");
	/* every row alone, then chunks of 7, synchronously */
	for (uint32_t chunk = 1; chunk <= 7; chunk += 6) {
		memset(out, 0xff, (size_t)ref->rows * w * sizeof(float));
		for (uint32_t r0 = 0; r0 < ref->rows; r0 += chunk) {
			uint32_t n = ref->rows - r0 < chunk ? ref->rows - r0 : chunk;
			struct qv_request req = { .handle = m.desc.handle, .rows = n,
						  .input = ref->x.data + (size_t)r0 * nf,
						  .request_id = r0 + 1 };
			struct qv_result res;
			int r = qv_infer(c, &req, out + (size_t)r0 * w, (size_t)n * w, 10000, &res);
			if (r < 0 || res.status != QV_OK || res.request_id != r0 + 1)
				qvt_die("%s: rows %u..%u: %s", name, r0, r0 + n,
					qv_strerror(r < 0 ? r : (int)res.status));
		}
		char what[96];
		snprintf(what, sizeof(what), "shm %s chunk %u", name, chunk);
		if (qvt_compare(out, ref->y.data, (size_t)ref->rows * w, 0, TREE_ATOL, what))
			qvt_fail("%s: outputs differ from xgboost's predict()", what);
	}
	/* asynchronously, all in flight the slots allow */
	memset(out, 0xff, (size_t)ref->rows * w * sizeof(float));
	uint32_t next = 0, done = 0;
	uint64_t t0 = qvt_now_ns();
	while (done < ref->rows) {
		while (next < ref->rows) {
			struct qv_request req = { .handle = m.desc.handle, .rows = 1,
						  .input = ref->x.data + (size_t)next * nf,
						  .request_id = 5000 + next };
			int r = qv_submit(c, &req, out + (size_t)next * w, w);
			if (r == -EAGAIN)
				break;
			if (r < 0)
				qvt_die("qv_submit: %s", qv_strerror(r));
			next++;
		}
		struct qv_result res[16];
		int n = qv_poll(c, res, 16);
		if (n < 0)
			qvt_die("qv_poll: %s", qv_strerror(n));
		for (int i = 0; i < n; i++, done++)
			if (res[i].status != QV_OK)
				qvt_fail("%s async: request %llu: %s", name,
					 (unsigned long long)res[i].request_id, qv_strerror((int)res[i].status));
		if (qvt_now_ns() - t0 > 30ull * 1000000000u)
			qvt_die("%s async: %u of %u in 30 s", name, done, ref->rows);
	}
	if (qvt_compare(out, ref->y.data, (size_t)ref->rows * w, 0, TREE_ATOL, "shm async"))
		qvt_fail("%s async: outputs differ from xgboost's predict()", name);
	free(out);
	qvt_ref_free(&m.ref);
}

static void udp_model(qv_udp_client *c, const char *repo, const char *name, uint32_t nf, uint32_t w)
{
	struct qv_model_desc d;
	struct qvt_ref ref;
	int r = qv_udp_lookup(c, name, &d);
	if (r < 0)
		qvt_die("udp lookup %s: %s", name, strerror(-r));
	if (d.in_dim != nf || d.out_dim != w)
		qvt_fail("udp %s: lookup says %u -> %u, want %u -> %u", name, d.in_dim, d.out_dim, nf, w);
	r = qvt_ref_load(repo, name, d.version, &ref);
	if (r < 0)
		qvt_die("reference %s: %s", name, strerror(-r));
	for (uint32_t i = 0; i < ref.rows; i++)
		qvt_udp_sync_rows(c, &d, &ref, i, 1, i + 1, 10000, name);
	qvt_udp_sync_rows(c, &d, &ref, 0, 16, 99999, 10000, name);
	qvt_udp_async_all(c, &d, &ref, 60, name);
	qvt_ref_free(&ref);
}

int main(int argc, char **argv)
{
	struct qvt_daemon dm;
	if (argc < 3) {
		fprintf(stderr, "usage: %s QUIVERD REPO\n", argv[0]);
		return 2;
	}
	char probe[4096];
	snprintf(probe, sizeof(probe), "%s/trees-bin/1/model.json", argv[2]);
	FILE *f = fopen(probe, "r");
	if (!f) {
		printf("SKIP: %s missing (python3-xgboost not importable at build time)\n", probe);
		return QVT_SKIP;
	}
	fclose(f);
	uint16_t port = free_udp_port();
	char ap[64];
	snprintf(ap, sizeof(ap), "127.0.0.1:%u", port);
	const char *extra[] = { "--udp", ap, NULL };
	if (qvt_daemon_start(&dm, argv[1], argv[2], extra) < 0)
		qvt_die("quiverd did not start");

	qv_client *c = qvt_connect(dm.sock, "e2e-trees", 16);
	shm_model(c, argv[2], "trees-bin", 6, 1);
	shm_model(c, argv[2], "trees-multi", 6, 3);
	qv_close(c);

	qv_udp_client *u;
	int r = qv_udp_connect(ap, &(struct qv_udp_opts){ .max_inflight = 16, .timeout_ms = 5000 }, &u);
	if (r < 0)
		qvt_die("qv_udp_connect %s: %s", ap, strerror(-r));
	udp_model(u, argv[2], "trees-bin", 6, 1);
	udp_model(u, argv[2], "trees-multi", 6, 3);
	qv_udp_close(u);
	return qvt_finish(&dm);
}
