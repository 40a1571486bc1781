/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qv_worker_serve_batch on a fake worker (no thread, no channel) with the
 * generated trade-mlp model. Rounds of random interleavings: requests of
 * 1..4 rows from four simulated channels (each request in its own slot,
 * inputs drawn from the model's x.npy), some malformed, some already
 * answered by the transport, some on a routed route (manual fallback), some
 * on a route with a nonfinite fallback serving the echo model (out = in;
 * half of those with a NaN input), all served in one call. Every answered output must match the same request
 * run alone (qv_worker_serve, unbatched) and the torch reference y.npy
 * (rtol 1e-4, atol 1e-5); malformed ones get BAD_SHAPE, the routed ones
 * the FALLBACK flag, the answered ones stay untouched; on the nonfinite
 * route exactly the requests with a NaN run again on the fallback and the
 * others, batched with them, echo their input exactly; batches of more
 * than one request must really have run (the stats say so) and the rows
 * counted in batches add up. The plain route has a shadow (the same model
 * as version 2) mirroring every request: all of a round's plain requests
 * are mirrored when their rows fit the shadow's max batch, none disagrees.
 *
 * Usage: test_dp_batch TRADE_MLP_DIR ECHO_MODEL.onnx  (TRADE_MLP_DIR holds
 *        model.onnx, x.npy, y.npy; exits 77 when they are missing)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "routes.h"
#include "serve.h"
#include "fake_worker.h"
#include "worker.h"

static int failures;
static struct qv_worker *w;

#define CHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

#define ROUNDS 300u
#define MAX_ROWS 4u
#define NCHAN 4u
#define SLOTS 32u               /* a channel's slots: up to 32 requests a round */

/*
 * Reads a float32 .npy of rank 1 or 2 (C order): returns the data (malloc)
 * and its row count and row width, or NULL.
 */
static float *npy_read(const char *path, uint32_t *ret_rows, uint32_t *ret_cols)
{
	unsigned char pre[10];
	char hdr[1024];
	uint32_t hlen, rows = 0, cols = 1;
	const char *sh;
	float *d = NULL;
	FILE *f = fopen(path, "rb");

	if (!f)
		return NULL;
	if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0 || pre[6] != 1)
		goto out;
	hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
	if (hlen >= sizeof(hdr) || fread(hdr, 1, hlen, f) != hlen)
		goto out;
	hdr[hlen] = '\0';
	if (!strstr(hdr, "'<f4'") || strstr(hdr, "'fortran_order': True"))
		goto out;
	sh = strstr(hdr, "'shape': (");
	if (!sh || sscanf(sh + 10, "%u, %u", &rows, &cols) < 1 || rows == 0 || cols == 0)
		goto out;
	d = malloc((size_t)rows * cols * sizeof(float));
	if (d && fread(d, sizeof(float), (size_t)rows * cols, f) != (size_t)rows * cols) {
		free(d);
		d = NULL;
	}
	*ret_rows = rows;
	*ret_cols = cols;
out:
	fclose(f);
	return d;
}

static uint64_t rng_next(uint64_t *s)
{
	return qv_xorshift64(s);
}

/* What a request of a round is, and where its slot's buffers are. */
struct req_plan {
	uint32_t chan, rows, kind;  /* 0 plain, 1 malformed, 2 answered, 3 routed,
				     * 4 echo on a nonfinite route, 5 the same with a NaN */
	uint32_t xrow[MAX_ROWS];    /* rows of x.npy it carries */
	float *in, *out;
};

int main(int argc, char **argv)
{
	static struct qv_batch_item items[NCHAN * SLOTS];
	static struct req_plan plan[NCHAN * SLOTS];
	char path[4096], err[QV_ERR_LEN];
	struct qv_version *p, *f, *e1, *e2;
	qv_model *em;
	struct qv_route_hot *h;
	struct qv_table tab;
	uint32_t xn, xd, yn, yd, in_dim, out_dim;
	float *x, *y, *slot_in, *slot_out, *alone;
	double max_batched_vs_alone = 0, max_vs_ref = 0;
	uint64_t mirrored = 0;
	uint64_t rng = 0x9e3779b97f4a7c15ull, answered = 0, expect_rows_min = 0, nan_fb = 0;
	qv_model *m;

	if (argc < 3) {
		fprintf(stderr, "usage: test_dp_batch TRADE_MLP_DIR ECHO_MODEL.onnx\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/model.onnx", argv[1]);
	if (access(path, R_OK) != 0 || access(argv[2], R_OK) != 0) {
		fprintf(stderr, "SKIP: trade-mlp model not found (%s)\n", path);
		return 77;
	}
	qv_thread_init();
	if (qv_model_load_file(path, NULL, &m, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", path, err);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/x.npy", argv[1]);
	x = npy_read(path, &xn, &xd);
	snprintf(path, sizeof(path), "%s/y.npy", argv[1]);
	y = npy_read(path, &yn, &yd);
	if (qv_model_load_file(argv[2], NULL, &em, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", argv[2], err);
		return 1;
	}
	p = fake_version(m, 1, 0);
	f = fake_version(m, 2, 1);
	e1 = fake_version(em, 3, 2);
	e2 = fake_version(em, 4, 3);
	in_dim = p->info.in_dim;
	out_dim = p->info.out_dim;
	if (!x || !y || xd != in_dim || yd != out_dim || xn != yn || p->max_batch < MAX_ROWS ||
	    e1->info.in_dim != 16 || e1->info.out_dim != 16 || in_dim < 16 || out_dim > 16 ||
	    e1->max_batch < MAX_ROWS) {
		fprintf(stderr, "x.npy / y.npy do not fit the model\n");
		return 1;
	}
	/*
	 * Handle 0: plain, with a shadow mirroring everything (batched, the
	 * mirrors run together at flush). Handle 1: manual fallback (picked per
	 * request, the picks batched on the fallback). Handle 2: echo with a fallback on nonfinite output (batched,
	 * checked after).
	 */
	h = aligned_alloc(64, 3 * sizeof(*h));
	memset(h, 0, 3 * sizeof(*h));
	for (int k = 0; k < 3; k++) {
		h[k].state = QV_ROUTE_READY;
		h[k].in_dim = in_dim;
		h[k].out_dim = out_dim;
		h[k].max_batch = p->max_batch;
		h[k].primary = p;
	}
	h[1].fallback = f;
	h[1].flags = QV_RT_FALLBACK | QV_RT_FB_MANUAL;
	h[0].shadow = f;
	h[0].shadow_thr = qv_ppm_threshold(1000000);
	h[0].flags = QV_RT_SHADOW;
	h[2].in_dim = h[2].out_dim = 16;
	h[2].max_batch = e1->max_batch;
	h[2].primary = e1;
	h[2].fallback = e2;
	h[2].flags = QV_RT_FALLBACK | QV_RT_FB_NONFINITE;
	tab = (struct qv_table){ .n = 3, .hot = h };
	w = fake_worker_new(&tab, 1.0, 0x1234567u);
	slot_in = malloc((size_t)NCHAN * SLOTS * MAX_ROWS * in_dim * sizeof(float));
	/* An output slot holds MAX_ROWS rows of 16 floats: the echo's, or trade-mlp's. */
	slot_out = malloc((size_t)NCHAN * SLOTS * MAX_ROWS * 16 * sizeof(float));
	alone = malloc((size_t)MAX_ROWS * 16 * sizeof(float));

	for (uint32_t round = 0; round < ROUNDS; round++) {
		/* How many each channel has ready this turn (0..SLOTS, often few). */
		uint32_t per[NCHAN], n = 0, left;

		for (uint32_t c = 0; c < NCHAN; c++)
			per[c] = (uint32_t)(rng_next(&rng) % (round % 3 == 0 ? SLOTS + 1 : 5));
		left = per[0] + per[1] + per[2] + per[3];
		/* Interleave: the next request comes from a random channel with some left. */
		while (left) {
			uint32_t c = (uint32_t)(rng_next(&rng) % NCHAN), k = n;
			struct req_plan *q = &plan[k];
			uint32_t r = (uint32_t)(rng_next(&rng) % 16);

			if (!per[c])
				continue;
			per[c]--;
			left--;
			n++;
			q->chan = c;
			q->rows = 1 + (uint32_t)(rng_next(&rng) % MAX_ROWS);
			q->kind = r == 0 ? 1 : r == 1 ? 2 : r == 2 ? 3 : r < 6 ? 4 : r == 6 ? 5 : 0;
			q->in = slot_in + (size_t)k * MAX_ROWS * in_dim;
			q->out = slot_out + (size_t)k * MAX_ROWS * 16;
			for (uint32_t j = 0; j < q->rows; j++) {
				q->xrow[j] = (uint32_t)(rng_next(&rng) % xn);
				memcpy(q->in + (size_t)j * in_dim, x + (size_t)q->xrow[j] * in_dim,
				       in_dim * sizeof(float));
			}
			/* Echo requests: rows of 16 (the first 16 features), maybe a NaN. */
			if (q->kind >= 4)
				for (uint32_t j = 0; j < q->rows * 16; j++)
					q->in[j] = x[(size_t)q->xrow[j / 16] * in_dim + j % 16];
			if (q->kind == 5)
				q->in[(q->rows - 1) * 16 + 5] = NAN;
			for (uint32_t j = 0; j < MAX_ROWS * 16; j++)
				q->out[j] = -12345.0f;
			memset(&items[k], 0, sizeof(items[k]));
			items[k].slot = k;
			items[k].req = (struct qv_serve_req){
				.handle = q->kind == 3 ? 1 : q->kind >= 4 ? 2 : 0,
				.rows = q->rows,
				.in_bytes = q->rows * (q->kind >= 4 ? 16 : in_dim) *
					    (uint32_t)sizeof(float),
				.out_cap = MAX_ROWS * 16 * (uint32_t)sizeof(float),
				.request_id = k,
				.in = q->in,
				.out = q->out,
			};
			if (q->kind == 1)
				items[k].req.in_bytes -= 4;
			if (q->kind == 2) {
				items[k].done = 1;
				items[k].res.status = QV_BAD_REQUEST;
			}
		}
		{
			/* Handle 0's shadow (version 2, the same model): every plain
			 * request of the round is mirrored when their rows fit the
			 * shadow's max batch, and none disagrees. */
			uint64_t s0 = qv_cnt_get(&w->vs[1].shadow), plain = 0, plain_rows = 0;

			for (uint32_t k = 0; k < n; k++) {
				plain += plan[k].kind == 0;
				plain_rows += plan[k].kind == 0 ? plan[k].rows : 0;
			}
			qv_worker_serve_batch(w, items, n);
			qv_worker_shadow_flush(w);
			mirrored += qv_cnt_get(&w->vs[1].shadow) - s0;
			if (plain_rows <= f->max_batch)
				CHECK(qv_cnt_get(&w->vs[1].shadow) - s0 == plain);
			else
				CHECK(qv_cnt_get(&w->vs[1].shadow) - s0 <= plain);
		}
		CHECK(qv_cnt_get(&w->vs[1].shadow_disagree) == 0);
		for (uint32_t k = 0; k < n; k++) {
			const struct req_plan *q = &plan[k];
			const struct qv_batch_item *it = &items[k];
			struct qv_serve_res ra;

			if (q->kind == 1) {
				CHECK(it->res.status == QV_BAD_SHAPE);
				CHECK(it->res.out_bytes == 0);
				continue;
			}
			if (q->kind == 2) {
				CHECK(it->res.status == QV_BAD_REQUEST);
				CHECK(q->out[0] == -12345.0f);
				continue;
			}
			CHECK(it->res.status == QV_OK);
			if (q->kind >= 4) {
				/* Echo: the NaN request (alone) on the fallback, the rest exact. */
				CHECK(it->res.out_bytes == q->rows * 16 * sizeof(float));
				CHECK(it->res.version == (q->kind == 5 ? 4u : 3u));
				CHECK(it->res.flags == (q->kind == 5 ? QV_FLAG_FALLBACK : 0u));
				for (uint32_t j = 0; j < q->rows * 16; j++)
					CHECK(memcmp(&q->out[j], &q->in[j], sizeof(float)) == 0 ||
					      (isnan(q->out[j]) && isnan(q->in[j])));
				nan_fb += q->kind == 5;
				continue;
			}
			CHECK(it->res.out_bytes == q->rows * out_dim * sizeof(float));
			CHECK(it->res.version == (q->kind == 3 ? 2u : 1u));
			CHECK(it->res.flags == (q->kind == 3 ? QV_FLAG_FALLBACK : 0u));
			answered++;
			/* The same request alone (one qv_run of its own rows). */
			{
				struct qv_serve_req rq = it->req;

				rq.out = alone;
				qv_worker_serve(w, &rq, &ra);
				qv_worker_shadow_flush(w);
			}
			CHECK(ra.status == QV_OK);
			for (uint32_t j = 0; j < q->rows * out_dim; j++) {
				float b = q->out[j], a = alone[j];
				float ref = y[(size_t)q->xrow[j / out_dim] * out_dim + j % out_dim];
				double d = fabs((double)b - (double)a);
				double dr = fabs((double)b - (double)ref);

				if (d > max_batched_vs_alone)
					max_batched_vs_alone = d;
				if (dr > max_vs_ref)
					max_vs_ref = dr;
				if (!(dr <= 1e-5 + 1e-4 * fabs((double)ref))) {
					CHECK(dr <= 1e-5 + 1e-4 * fabs((double)ref));
					fprintf(stderr, "round %u req %u row %u: %g vs reference %g\n",
						round, k, j / out_dim, (double)b, (double)ref);
				}
				if (!(d <= 1e-5 + 1e-4 * fabs((double)a))) {
					CHECK(d <= 1e-5 + 1e-4 * fabs((double)a));
					fprintf(stderr, "round %u req %u row %u: batched %g alone %g\n",
						round, k, j / out_dim, (double)b, (double)a);
				}
			}
			if (q->kind == 0)
				expect_rows_min++;
		}
	}
	{
		uint64_t batches = qv_cnt_get(&w->vs[0].batches);
		uint64_t brows = qv_cnt_get(&w->vs[0].batch_rows);

		fprintf(stderr,
			"%llu requests answered (%llu NaN ones on the fallback), "
			"%llu batches of %.2f rows on average; "
			"max |batched - alone| %.3g, max |batched - torch| %.3g\n",
			(unsigned long long)answered, (unsigned long long)nan_fb,
			(unsigned long long)batches,
			batches ? (double)brows / (double)batches : 0.0, max_batched_vs_alone,
			max_vs_ref);
		CHECK(batches > ROUNDS / 3);             /* every third round has many requests */
		CHECK(mirrored > 0);                     /* a route with a shadow batches too */
		fprintf(stderr, "%llu plain requests mirrored to the shadow in batches\n",
			(unsigned long long)mirrored);
		CHECK(brows >= 2 * batches);             /* a batch has two requests at least */
		/* Picked per request, then batched: the manual fallback's picks ran together. */
		CHECK(qv_cnt_get(&w->vs[1].batches) > 0);
		CHECK(qv_cnt_get(&w->vs[3].batches) == 0);
		CHECK(qv_cnt_get(&w->vs[3].fallback) == nan_fb && nan_fb > 0);
		CHECK(qv_cnt_get(&w->vs[2].batches) > 0);  /* echo requests were batched */
		CHECK(expect_rows_min > 0);
	}

	{
		struct qv_version *vv[] = { p, f, e1, e2 };

		for (int k = 0; k < 4; k++)
			fake_version_free(vv[k]);
	}
	qv_model_free(m);
	qv_model_free(em);
	free(h);
	fake_worker_free(w);
	free(slot_in);
	free(slot_out);
	free(alone);
	free(x);
	free(y);
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
