/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ens_named_e2e.c - ensembles wired by named, typed tensors served by
 * a real quiverd, on the repository gen_ens_named_repo.py writes:
 *
 *  - the lookup (shared memory and UDP) describes ens-named by its named
 *    tensors: inputs dense float32 [8] and user_id int64 (id bound 30),
 *    outputs score float32 [1] and feat float32 [6];
 *  - typed requests (qv_infer_tensors, and qv_udp_infer_tensors over UDP
 *    version 2) of 1, 3, 7 and 64 rows against the torch float64
 *    composition, for ens-named and the gated ens-gated;
 *  - an id out of its table: BAD_REQUEST, and the next request is answered;
 *  - bad wirings (an int64 input bound to a float32 output, an input bound
 *    to nothing) reported failed in `models --json` with the step named.
 *
 * Usage: e2e_ens_named QUIVERD ENSNREPO QUIVERCTL
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cJSON.h>

#include "check.h"
#include "daemon.h"
#include "npy.h"
#include "routing.h"

#define ROWS 64u
#define MAXT QV_MAX_TENSORS_WIRE

static char out[1 << 16];

struct ens {
	const char *name;
	struct qv_model_desc d;
	void *in[MAXT], *ref[MAXT];
};

static void *read_npy(const char *repo, const char *model, const char *prefix,
		      const struct qv_tensor_desc *t)
{
	char path[1024], err[256];
	struct qv_npy a;
	if (snprintf(path, sizeof(path), "%s/%s/1/%s.%s.npy", repo, model, prefix, t->name) >=
	    (int)sizeof(path))
		qvt_die("path too long");
	if (qv_npy_read_typed(path, &a, err, sizeof(err)) < 0)
		qvt_die("%s", err);
	if (a.dtype != t->dtype || a.rank < 1 || a.shape[0] != ROWS ||
	    a.count * a.elem_size != (size_t)ROWS * t->row_bytes)
		qvt_die("%s: does not match the lookup's %s (%u bytes a row)", path, t->name,
			t->row_bytes);
	void *p = a.raw;
	a.raw = NULL;
	qv_npy_free(&a);
	return p;
}

static void tensor_is(const struct qv_tensor_desc *t, const char *name, uint32_t dtype,
		      uint32_t row_bytes, int64_t bound)
{
	if (strcmp(t->name, name) != 0 || t->dtype != dtype || t->row_bytes != row_bytes ||
	    t->index_bound != bound)
		qvt_fail("lookup: tensor '%s' dtype %u, %u bytes, bound %lld; want '%s' %u, %u, %lld",
			 t->name, t->dtype, t->row_bytes, (long long)t->index_bound, name, dtype,
			 row_bytes, (long long)bound);
}

static void open_ens(qv_client *c, const char *repo, struct ens *e)
{
	int r = qv_model_lookup(c, e->name, &e->d);
	if (r < 0)
		qvt_die("lookup %s: %s", e->name, strerror(-r));
	if (e->d.n_inputs != 2)
		qvt_die("%s: %u inputs, want 2", e->name, e->d.n_inputs);
	tensor_is(&e->d.inputs[0], "dense", QV_TENSOR_FLOAT32, 32, 0);
	tensor_is(&e->d.inputs[1], "user_id", QV_TENSOR_INT64, 8, 30);
	for (uint32_t i = 0; i < e->d.n_inputs; i++)
		e->in[i] = read_npy(repo, e->name, "in", &e->d.inputs[i]);
	for (uint32_t j = 0; j < e->d.n_outputs; j++)
		e->ref[j] = read_npy(repo, e->name, "out", &e->d.outputs[j]);
}

/* One typed request of rows rows from row0 over shm (udp NULL) or UDP. */
static void check_rows(qv_client *c, qv_udp_client *u, const struct ens *e, uint32_t row0,
		       uint32_t rows)
{
	const void *in[MAXT];
	void *o[MAXT];
	size_t cap[MAXT];
	char tag[128];
	for (uint32_t i = 0; i < e->d.n_inputs; i++)
		in[i] = (const char *)e->in[i] + (size_t)row0 * e->d.inputs[i].row_bytes;
	for (uint32_t j = 0; j < e->d.n_outputs; j++) {
		cap[j] = (size_t)rows * e->d.outputs[j].row_bytes;
		o[j] = malloc(cap[j]);
	}
	struct qv_tensors t = { e->d.n_inputs, e->d.n_outputs, in, o, cap };
	struct qv_request rq = { .handle = e->d.handle, .rows = rows, .request_id = row0 };
	struct qv_result res;
	int r = u ? qv_udp_infer_tensors(u, &rq, &t, 5000, &res) : qv_infer_tensors(c, &rq, &t, 10000, &res);
	if (r < 0 || res.status != QV_OK || res.out_floats != rows * e->d.out_dim) {
		qvt_fail("%s %s rows %u+%u: %s / %s", u ? "udp" : "shm", e->name, row0, rows,
			 strerror(r < 0 ? -r : 0), r < 0 ? "-" : qv_strerror((int)res.status));
	} else {
		for (uint32_t j = 0; j < e->d.n_outputs; j++) {
			snprintf(tag, sizeof(tag), "%s %s.%s rows %u+%u", u ? "udp" : "shm", e->name,
				 e->d.outputs[j].name, row0, rows);
			const float *want = (const float *)((const char *)e->ref[j] +
							    (size_t)row0 * e->d.outputs[j].row_bytes);
			if (qvt_compare(o[j], want, cap[j] / 4, QVT_RTOL, QVT_ATOL, tag))
				qvt_fail("%s: differs from the torch reference", tag);
		}
	}
	for (uint32_t j = 0; j < e->d.n_outputs; j++)
		free(o[j]);
}

static void check_all(qv_client *c, qv_udp_client *u, const struct ens *e)
{
	static const uint32_t sizes[] = { 1, 3, 7 };
	for (uint32_t row = 0; row < ROWS; row += 5)
		check_rows(c, u, e, row, 1);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		for (uint32_t row = 0; row + sizes[k] <= ROWS; row += sizes[k] * 3)
			check_rows(c, u, e, row, sizes[k]);
	if (!u && e->d.max_batch >= ROWS)
		check_rows(c, u, e, 0, ROWS);
}

/* An id one past the table: BAD_REQUEST. */
static void bad_id(qv_client *c, const struct ens *e)
{
	int64_t ids[2] = { 1, 30 };
	const void *in[2] = { e->in[0], ids };
	float s[2], f[12];
	void *o[2] = { s, f };
	size_t cap[2] = { sizeof(s), sizeof(f) };
	struct qv_tensors t = { 2, 2, in, o, cap };
	struct qv_request rq = { .handle = e->d.handle, .rows = 2, .request_id = 999 };
	struct qv_result res;
	int r = qv_infer_tensors(c, &rq, &t, 10000, &res);
	if (r < 0 || res.status != QV_BAD_REQUEST)
		qvt_fail("id 30 of 30: %d / %s, want BAD_REQUEST", r, r < 0 ? "-" : qv_strerror((int)res.status));
	check_rows(c, NULL, e, 10, 2);
}

static void check_failed(const cJSON *models, const char *name, const char *w1, const char *w2)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, models) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "name");
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "state");
		const cJSON *er = cJSON_GetObjectItemCaseSensitive(m, "error");
		if (!cJSON_IsString(n) || strcmp(n->valuestring, name) != 0)
			continue;
		if (!cJSON_IsString(st) || strcmp(st->valuestring, "failed") != 0 || !cJSON_IsString(er) ||
		    !strstr(er->valuestring, w1) || !strstr(er->valuestring, w2))
			qvt_fail("models: %s should be failed with \"%s\" and \"%s\", is %s (%s)", name, w1,
				 w2, cJSON_IsString(st) ? st->valuestring : "?",
				 cJSON_IsString(er) ? er->valuestring : "no error");
		else
			fprintf(stderr, "%s failed as expected: %s\n", name, er->valuestring);
		return;
	}
	qvt_fail("models: no entry for %s", name);
}

static uint16_t free_udp_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &l) < 0)
		qvt_die("udp port: %s", strerror(errno));
	close(fd);
	return ntohs(a.sin_port);
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	char ap[64], p[1024];

	if (argc < 4) {
		fprintf(stderr, "usage: %s QUIVERD ENSNREPO QUIVERCTL\n", argv[0]);
		return 2;
	}
	const char *repo = argv[2], *q = argv[3];
	snprintf(p, sizeof(p), "%s/ens-named/1/config.json", repo);
	if (access(p, R_OK) != 0) {
		fprintf(stderr, "SKIP: no %s (models not generated)\n", p);
		return QVT_SKIP;
	}
	snprintf(ap, sizeof(ap), "127.0.0.1:%u", free_udp_port());
	const char *extra[] = { "--cores", "1", "--udp", ap, NULL };
	if (qvt_daemon_start(&d, argv[1], repo, extra) < 0)
		qvt_die("quiverd did not start");

	/* 1. Bad wiring is a load error naming the step; the rest serves. */
	if (qvt_ctl(q, d.sock, out, sizeof(out), "--json", "models", NULL) != 0)
		qvt_die("quiverctl --json models failed");
	cJSON *root = cJSON_Parse(out);
	const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
	if (!cJSON_IsArray(models))
		qvt_die("models --json: no models array in %s", out);
	check_failed(models, "bad-dtype", "step 'head'", "int64");
	check_failed(models, "bad-missing", "step 'head'", "'uid' is bound to nothing");
	cJSON_Delete(root);

	/* 2. Named tensors in the lookup, typed requests over shm and UDP v2. */
	qv_client *c = qvt_connect(d.sock, "ens-named", 8);
	qv_udp_client *u = NULL;
	int r = qv_udp_connect(ap, &(struct qv_udp_opts){ .max_inflight = 8, .timeout_ms = 5000 }, &u);
	if (r < 0)
		qvt_die("udp connect %s: %s", ap, strerror(-r));
	struct ens named = { .name = "ens-named" }, gated = { .name = "ens-gated" };
	open_ens(c, repo, &named);
	if (named.d.n_outputs != 2)
		qvt_die("ens-named: %u outputs, want 2", named.d.n_outputs);
	tensor_is(&named.d.outputs[0], "score", QV_TENSOR_FLOAT32, 4, 0);
	tensor_is(&named.d.outputs[1], "feat", QV_TENSOR_FLOAT32, 24, 0);
	if (named.d.in_dim != 10 || named.d.out_dim != 7)
		qvt_fail("ens-named: %u / %u words a packed row, want 10 / 7", named.d.in_dim,
			 named.d.out_dim);
	struct qv_model_desc ud;
	r = qv_udp_lookup(u, "ens-named", &ud);
	if (r < 0 || ud.handle != named.d.handle || ud.n_inputs != 2 || ud.n_outputs != 2 ||
	    memcmp(ud.inputs, named.d.inputs, sizeof(ud.inputs)) != 0 ||
	    memcmp(ud.outputs, named.d.outputs, sizeof(ud.outputs)) != 0)
		qvt_fail("ens-named: the UDP lookup (%d) does not describe it as the socket's does", r);
	open_ens(c, repo, &gated);
	if (gated.d.n_outputs != 1)
		qvt_die("ens-gated: %u outputs, want 1", gated.d.n_outputs);
	tensor_is(&gated.d.outputs[0], "score", QV_TENSOR_FLOAT32, 4, 0);
	r = qv_udp_lookup(u, "ens-gated", &ud);  /* a UDP client sends only handles it looked up */
	if (r < 0 || ud.handle != gated.d.handle)
		qvt_fail("ens-gated: the UDP lookup (%d) disagrees", r);

	check_all(c, NULL, &named);
	check_all(c, u, &named);
	check_all(c, NULL, &gated);
	check_all(c, u, &gated);
	bad_id(c, &named);

	for (uint32_t i = 0; i < MAXT; i++) {
		free(named.in[i]);
		free(named.ref[i]);
		free(gated.in[i]);
		free(gated.ref[i]);
	}
	qv_udp_close(u);
	qv_close(c);
	return qvt_finish(&d);
}
