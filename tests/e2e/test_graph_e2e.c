/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_graph_e2e.c - recommender and trading networks of several typed
 * inputs and outputs through a real quiverd (one worker, shared memory and
 * UDP version 2), against the torch references the generator wrote beside
 * each repository version (REPO/NAME/1/in.TENSOR.npy, out.TENSOR.npy):
 *
 *  - every model family (dlrm, dcn-v2, wide-deep, two-tower, multitask,
 *    resmlp): requests alone (one row, several rows) and bursts of
 *    requests in flight at once, until the worker's stats show it ran
 *    some of them batched; every output equal to the reference (rtol
 *    1e-4, atol 1e-5 for float outputs, exact for integer ones), over
 *    qv_infer_tensors / qv_submit_tensors and their qv_udp_* twins;
 *  - an id out of its table in one request of a burst: that request is
 *    answered BAD_REQUEST and every other one of the burst its reference
 *    outputs, until the stats show a batch was split for it (so the
 *    isolation was tested inside a batch, not only alone);
 *  - a request naming the wrong number of input tensors (UDP version 2)
 *    and requests of the wrong size (UDP versions 1 and 2, a raw
 *    shared-memory descriptor): BAD_SHAPE, and the next good request is
 *    still answered; the typed call refuses a wrong tensor count itself.
 *
 * The daemon serves a copy of the repository whose models each have a
 * config.json of {"max_queue_delay_us": 2000, "preferred_batch": 8}: a
 * worker that polls faster than one client submits would otherwise take a
 * burst's requests one by one, and whether they batch would be a matter of
 * timing. Held, the burst's shared-memory requests batch every time; UDP
 * requests never wait, and a burst of datagrams batches only when two of
 * them reach the worker in one turn: usual, but on a busy 2-core machine
 * some families needed dozens of bursts, so up to TRIES are sent.
 *
 * Usage: test_graph_e2e QUIVERD GRAPH_REPO QUIVERCTL
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "npy.h"
#include "qv_udp_proto.h"
#include "rawchan.h"

#define NFAM 6
#define MAXT QV_MAX_TENSORS_WIRE
#define BURST 12u
#define MAX_ROWS 4u
#define TRIES 300

static const char *const families[NFAM] = { "dlrm", "dcn-v2", "wide-deep", "two-tower",
					    "multitask", "resmlp" };

struct fam {
	const char *name;
	struct qv_model_desc d;      /* from the shared-memory lookup */
	void *in[MAXT], *ref[MAXT];  /* rows rows of each tensor */
	uint32_t rows;
	int id_input;                /* an input with an index bound, -1: none */
};

static struct fam fams[NFAM];
static const char *quiverctl, *sock;

static uint32_t esize(uint32_t dt)
{
	return dt == QV_TENSOR_INT64 ? 8u : 4u;
}

/* Reads REPO/NAME/1/PREFIX.TENSOR.npy into a buffer of rows * row_bytes. */
static void *read_tensor(const char *repo, const char *model, const char *prefix,
			 const struct qv_tensor_desc *t, uint32_t *rows)
{
	char path[512], err[256];
	struct qv_npy a;
	uint64_t per_row = 1;
	void *p;

	snprintf(path, sizeof(path), "%s/%s/1/%s.%s.npy", repo, model, prefix, t->name);
	if (qv_npy_read_typed(path, &a, err, sizeof(err)) < 0)
		qvt_die("%s", err);
	for (uint32_t k = 1; k < a.rank; k++)
		per_row *= (uint64_t)a.shape[k];
	if (a.dtype != t->dtype || per_row * esize(t->dtype) != t->row_bytes || a.rank < 1 ||
	    (*rows && (uint32_t)a.shape[0] != *rows))
		qvt_die("%s: dtype %u, %llu elements a row; the lookup says dtype %u, %u bytes",
			path, a.dtype, (unsigned long long)per_row, t->dtype, t->row_bytes);
	*rows = (uint32_t)a.shape[0];
	p = malloc((size_t)*rows * t->row_bytes);
	if (!p)
		qvt_die("out of memory");
	memcpy(p, a.raw, (size_t)*rows * t->row_bytes);
	qv_npy_free(&a);
	return p;
}

static void load_family(qv_client *c, const char *repo, struct fam *f)
{
	int r = qv_model_lookup(c, f->name, &f->d);

	if (r < 0)
		qvt_die("lookup %s: %s", f->name, strerror(-r));
	f->id_input = -1;
	for (uint32_t i = 0; i < f->d.n_inputs; i++) {
		f->in[i] = read_tensor(repo, f->name, "in", &f->d.inputs[i], &f->rows);
		if (f->d.inputs[i].index_bound > 0 && f->id_input < 0)
			f->id_input = (int)i;
	}
	for (uint32_t j = 0; j < f->d.n_outputs; j++)
		f->ref[j] = read_tensor(repo, f->name, "out", &f->d.outputs[j], &f->rows);
	fprintf(stderr, "%-10s %u inputs, %u outputs, %u words in, %u out, %u reference rows%s\n",
		f->name, f->d.n_inputs, f->d.n_outputs, f->d.in_dim, f->d.out_dim, f->rows,
		f->id_input >= 0 ? ", ids" : "");
}

/* One request's buffers: slices of the reference inputs (or a private copy
 * when an id is made bad), its own output buffers. */
struct req {
	uint32_t row0, rows;
	int bad;                     /* its first row's id is out of range */
	const void *in[MAXT];
	void *out[MAXT];
	size_t cap[MAXT];
	uint8_t bad_ids[64];         /* the id input's first rows, one id broken */
	uint8_t outbuf[MAXT][MAX_ROWS * 64];
	struct qv_tensors t;
};

static void req_make(const struct fam *f, struct req *q, uint32_t row0, uint32_t rows, int bad)
{
	memset(q, 0, sizeof(*q));
	q->row0 = row0;
	q->rows = rows;
	q->bad = bad;
	for (uint32_t i = 0; i < f->d.n_inputs; i++)
		q->in[i] = (const uint8_t *)f->in[i] + (size_t)row0 * f->d.inputs[i].row_bytes;
	for (uint32_t j = 0; j < f->d.n_outputs; j++) {
		if (f->d.outputs[j].row_bytes * MAX_ROWS > sizeof(q->outbuf[j]))
			qvt_die("%s: output %u too wide for the test", f->name, j);
		q->out[j] = q->outbuf[j];
		q->cap[j] = sizeof(q->outbuf[j]);
	}
	if (bad) {
		const struct qv_tensor_desc *t = &f->d.inputs[f->id_input];
		int64_t id = t->index_bound; /* one past the last row of the table */

		if ((size_t)rows * t->row_bytes > sizeof(q->bad_ids))
			qvt_die("%s: id input too wide for the test", f->name);
		memcpy(q->bad_ids, q->in[f->id_input], (size_t)rows * t->row_bytes);
		if (t->dtype == QV_TENSOR_INT64) {
			memcpy(q->bad_ids, &id, 8);
		} else {
			int32_t v = (int32_t)id;
			memcpy(q->bad_ids, &v, 4);
		}
		q->in[f->id_input] = q->bad_ids;
	}
	q->t = (struct qv_tensors){ f->d.n_inputs, f->d.n_outputs, q->in, q->out, q->cap };
}

/* q's outputs against the reference; 0 or -1 after qvt_fail. */
static int req_check(const struct fam *f, const struct req *q, const struct qv_result *res,
		     const char *what)
{
	char tag[160];

	if (q->bad) {
		if (res->status != QV_BAD_REQUEST) {
			qvt_fail("%s %s rows %u+%u, id out of range: %s, want BAD_REQUEST", what,
				 f->name, q->row0, q->rows, qv_strerror((int)res->status));
			return -1;
		}
		return 0;
	}
	if (res->status != QV_OK || res->out_floats != q->rows * f->d.out_dim) {
		qvt_fail("%s %s rows %u+%u: %s, %u words", what, f->name, q->row0, q->rows,
			 qv_strerror((int)res->status), res->out_floats);
		return -1;
	}
	for (uint32_t j = 0; j < f->d.n_outputs; j++) {
		const struct qv_tensor_desc *t = &f->d.outputs[j];
		const uint8_t *want = (const uint8_t *)f->ref[j] + (size_t)q->row0 * t->row_bytes;
		size_t bytes = (size_t)q->rows * t->row_bytes;

		snprintf(tag, sizeof(tag), "%s %s.%s rows %u+%u", what, f->name, t->name, q->row0,
			 q->rows);
		if (t->dtype == QV_TENSOR_FLOAT32) {
			if (qvt_compare((const float *)q->out[j], (const float *)want, bytes / 4,
					QVT_RTOL, QVT_ATOL, tag)) {
				qvt_fail("%s: differs from the torch reference", tag);
				return -1;
			}
		} else if (memcmp(q->out[j], want, bytes) != 0) {
			qvt_fail("%s: differs from the reference", tag);
			return -1;
		}
	}
	return 0;
}

/* Sums one counter of `model`'s versions in `quiverctl stats --json`. */
static double stat_of(const char *model, const char *key)
{
	cJSON *j = qvt_ctl_json(quiverctl, sock, "stats", NULL);
	const cJSON *r, *v;
	double n = 0;

	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "routes")) {
		const cJSON *nm = cJSON_GetObjectItemCaseSensitive(r, "name");

		if (!cJSON_IsString(nm) || strcmp(nm->valuestring, model) != 0)
			continue;
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(r, "versions")) {
			const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, key);
			if (!cJSON_IsNumber(c))
				qvt_die("stats: %s has no %s", model, key);
			n += c->valuedouble;
		}
	}
	cJSON_Delete(j);
	return n;
}

/* ---- one transport, behind two calls ---- */

struct xport {
	const char *name;
	qv_client *shm;
	qv_udp_client *udp;
	uint32_t handle[NFAM];       /* the UDP client's own lookups agree; checked */
};

static int x_infer(struct xport *x, const struct qv_request *rq, const struct qv_tensors *t,
		   struct qv_result *res)
{
	return x->shm ? qv_infer_tensors(x->shm, rq, t, 10000, res)
		      : qv_udp_infer_tensors(x->udp, rq, t, 5000, res);
}

static int x_submit(struct xport *x, const struct qv_request *rq, const struct qv_tensors *t)
{
	return x->shm ? qv_submit_tensors(x->shm, rq, t) : qv_udp_submit_tensors(x->udp, rq, t);
}

static int x_poll(struct xport *x, struct qv_result *res, int max)
{
	return x->shm ? qv_poll(x->shm, res, max) : qv_udp_poll(x->udp, res, max);
}

static void alone(struct xport *x, const struct fam *f)
{
	static const uint32_t starts[][2] = { { 0, 1 }, { 17, 1 }, { 63, 1 }, { 10, 4 }, { 40, 3 } };
	struct req q;
	struct qv_result res;

	for (size_t k = 0; k < sizeof(starts) / sizeof(starts[0]); k++) {
		if (starts[k][0] + starts[k][1] > f->rows)
			continue;
		req_make(f, &q, starts[k][0], starts[k][1], 0);
		struct qv_request rq = { .handle = f->d.handle, .rows = q.rows,
					 .request_id = 100 + k };
		int r = x_infer(x, &rq, &q.t, &res);
		if (r < 0) {
			qvt_fail("%s %s alone: %s", x->name, f->name, strerror(-r));
			continue;
		}
		if (res.request_id != rq.request_id)
			qvt_fail("%s %s alone: request id %llu", x->name, f->name,
				 (unsigned long long)res.request_id);
		req_check(f, &q, &res, x->name);
	}
}

/*
 * One burst: n requests submitted back to back, then every answer reaped
 * and checked; request `bad_at` (if < n) has an id out of range.
 */
static void burst(struct xport *x, const struct fam *f, struct req *qs, uint32_t n,
		  uint32_t bad_at, uint32_t seed)
{
	struct qv_result res[BURST];
	uint32_t got = 0, tries = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t rows = 1 + (seed + i) % MAX_ROWS;
		uint32_t row0 = (seed * 7 + i * 5) % (f->rows - rows + 1);

		req_make(f, &qs[i], row0, rows, i == bad_at);
		struct qv_request rq = { .handle = f->d.handle, .rows = rows, .request_id = i };
		int r = x_submit(x, &rq, &qs[i].t);
		if (r < 0)
			qvt_die("%s %s: submit %u: %s", x->name, f->name, i, strerror(-r));
	}
	while (got < n) {
		int k = x_poll(x, res + got, (int)(n - got));
		if (k < 0)
			qvt_die("%s %s: poll: %s", x->name, f->name, strerror(-k));
		if (k == 0) {
			if (++tries > 2000000)
				qvt_die("%s %s: %u of %u answers", x->name, f->name, got, n);
			continue;
		}
		got += (uint32_t)k;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t id = res[i].request_id;
		if (id >= n) {
			qvt_fail("%s %s: answer for unknown request %llu", x->name, f->name,
				 (unsigned long long)id);
			continue;
		}
		req_check(f, &qs[id], &res[i], x->name);
	}
}

/* Bursts until the stats show `key` grew for f (batches, or split batches
 * when bad), every answer of every burst checked. */
static void bursts_until(struct xport *x, const struct fam *f, const char *key, int bad)
{
	static struct req qs[BURST];
	double before = stat_of(f->name, key);
	int t;

	for (t = 0; t < TRIES; t++) {
		burst(x, f, qs, BURST, bad ? (uint32_t)t % BURST : BURST, (uint32_t)t);
		if (stat_of(f->name, key) > before)
			break;
	}
	if (t == TRIES)
		qvt_fail("%s %s: %d bursts of %u and `%s` never grew", x->name, f->name, TRIES,
			 BURST, key);
	else
		fprintf(stderr, "%-4s %-10s %s after %d burst(s)%s\n", x->name, f->name, key, t + 1,
			bad ? ": only the request with the bad id got BAD_REQUEST" : "");
}

/* ---- malformed requests ---- */

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

/* Sends one raw INFER (version, tensor count for version 2, `words` 4-byte
 * words of packed rows) and returns the reply's status. */
static uint32_t raw_udp(int fd, uint8_t version, uint32_t handle, uint32_t rows,
			uint32_t n_tensors, const uint8_t *packed, uint32_t words, uint64_t id)
{
	static _Alignas(16) uint8_t dg[QV_UDP_MAX_DATAGRAM];
	struct qv_udp_req_hdr h = { .magic = QV_UDP_MAGIC, .version = version,
				    .type = QV_UDP_INFER, .handle = handle, .rows = rows,
				    .request_id = id };
	struct qv_udp_tensors_hdr th = { .n_tensors = n_tensors };
	struct qv_udp_rep_hdr rh;
	size_t off = sizeof(h);

	if (version == QV_UDP_VERSION_TENSORS) {
		memcpy(dg + off, &th, sizeof(th));
		off += sizeof(th);
	}
	memcpy(dg + off, packed, (size_t)words * 4);
	h.payload_bytes = (uint32_t)(off - sizeof(h) + (size_t)words * 4);
	memcpy(dg, &h, sizeof(h));
	if (send(fd, dg, off + (size_t)words * 4, 0) < 0)
		qvt_die("send: %s", strerror(errno));
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 5000) != 1)
			qvt_die("raw udp request %llu: no reply", (unsigned long long)id);
		ssize_t n = recv(fd, dg, sizeof(dg), 0);
		if (n < (ssize_t)sizeof(rh))
			continue;
		memcpy(&rh, dg, sizeof(rh));
		if (rh.request_id == id && rh.version == version)
			return rh.status;
	}
}

/* Row r of f packed as the wire wants it (one row of every input). */
static void pack_row(const struct fam *f, uint32_t r, uint8_t *dst)
{
	for (uint32_t i = 0; i < f->d.n_inputs; i++) {
		const struct qv_tensor_desc *t = &f->d.inputs[i];
		memcpy(dst + t->packed_off, (const uint8_t *)f->in[i] + (size_t)r * t->row_bytes,
		       t->row_bytes);
	}
}

static void expect(uint32_t st, uint32_t want, const char *what)
{
	fprintf(stderr, "%-52s -> %s\n", what, qv_strerror((int)st));
	if (st != want)
		qvt_fail("%s: %s, want %s", what, qv_strerror((int)st), qv_strerror((int)want));
}

static void malformed(uint16_t port, const struct fam *f)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uint8_t row[4096], two[8192];
	char what[128];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		qvt_die("udp socket: %s", strerror(errno));
	if (f->d.in_dim * 8 > sizeof(two))
		qvt_die("%s: rows too wide for the test", f->name);
	pack_row(f, 0, row);
	pack_row(f, 0, two);
	pack_row(f, 1, two + f->d.in_dim * 4);
	snprintf(what, sizeof(what), "udp2 %s: %u tensors (model has %u)", f->name,
		 f->d.n_inputs + 1, f->d.n_inputs);
	expect(raw_udp(fd, 2, f->d.handle, 1, f->d.n_inputs + 1, row, f->d.in_dim, 1), QV_BAD_SHAPE,
	       what);
	if (f->d.n_inputs > 1) {
		snprintf(what, sizeof(what), "udp2 %s: %u tensors", f->name, f->d.n_inputs - 1);
		expect(raw_udp(fd, 2, f->d.handle, 1, f->d.n_inputs - 1, row, f->d.in_dim, 2),
		       QV_BAD_SHAPE, what);
	}
	snprintf(what, sizeof(what), "udp2 %s: a row one word short", f->name);
	expect(raw_udp(fd, 2, f->d.handle, 1, f->d.n_inputs, row, f->d.in_dim - 1, 3),
	       QV_BAD_SHAPE, what);
	snprintf(what, sizeof(what), "udp2 %s: 2 rows of data, 1 row said", f->name);
	expect(raw_udp(fd, 2, f->d.handle, 1, f->d.n_inputs, two, 2 * f->d.in_dim, 4),
	       QV_BAD_SHAPE, what);
	snprintf(what, sizeof(what), "udp1 %s: a row one word short", f->name);
	expect(raw_udp(fd, 1, f->d.handle, 1, 0, row, f->d.in_dim - 1, 5), QV_BAD_SHAPE, what);
	snprintf(what, sizeof(what), "udp2 %s: no tensors", f->name);
	expect(raw_udp(fd, 2, f->d.handle, 1, 0, row, f->d.in_dim, 6), QV_BAD_REQUEST, what);
	/* and the same socket is still answered, in both versions */
	snprintf(what, sizeof(what), "udp2 %s: good, after them", f->name);
	expect(raw_udp(fd, 2, f->d.handle, 2, f->d.n_inputs, two, 2 * f->d.in_dim, 7), QV_OK, what);
	snprintf(what, sizeof(what), "udp1 %s: good packed rows, after them", f->name);
	expect(raw_udp(fd, 1, f->d.handle, 1, 0, row, f->d.in_dim, 8), QV_OK, what);
	close(fd);
}

/* A raw channel: a descriptor whose size is not rows packed rows. */
static void malformed_shm(const struct fam *f)
{
	struct qvt_raw ch;
	struct qv_cqe c;
	uint8_t row[4096];
	int r = qvt_raw_open(&ch, sock, 4, 4096, 4096);

	if (r < 0)
		qvt_die("raw channel: %s", strerror(-r));
	pack_row(f, 0, row);
	memcpy(qvt_raw_in(&ch, 0), row, f->d.in_dim * 4);
	for (int k = 0; k < 3; k++) {
		struct qv_sqe e = { .slot = 0, .handle = f->d.handle, .rows = 1,
				    .in_bytes = f->d.in_dim * 4, .out_cap = f->d.out_dim * 4,
				    .request_id = 50 + (uint64_t)k };
		const char *what = k == 0 ? "shm: a row one word short" :
				   k == 1 ? "shm: a row one word long" : "shm: good, after them";
		e.in_bytes += k == 0 ? -4u : k == 1 ? 4u : 0u;
		if (qvt_raw_push(&ch, &e) < 0 || qvt_raw_wait(&ch, 10000, &c) != 1)
			qvt_die("raw channel: no completion");
		expect(c.status, k < 2 ? QV_BAD_SHAPE : QV_OK, what);
	}
	/* The packed output row's first tensor sits at offset 0. */
	if (f->d.outputs[0].dtype == QV_TENSOR_FLOAT32 &&
	    qvt_compare(qvt_raw_out(&ch, 0), f->ref[0], f->d.outputs[0].row_bytes / 4, QVT_RTOL,
			QVT_ATOL, "shm raw good row"))
		qvt_fail("raw channel: the good row differs from the reference");
	qvt_raw_close(&ch);
}

/* Copies REPO/NAME/1/model.onnx of every family into a new repository
 * under `dir` with the config.json the header describes. */
static void held_repo(const char *repo, const char *dir)
{
	char p[512], q[512];
	static char buf[1 << 16];

	for (int i = 0; i < NFAM; i++) {
		FILE *in, *out;
		size_t n;

		snprintf(q, sizeof(q), "%s/%s", dir, families[i]);
		if (mkdir(q, 0700) < 0)
			qvt_die("mkdir %s: %s", q, strerror(errno));
		snprintf(q, sizeof(q), "%s/%s/config.json", dir, families[i]);
		out = fopen(q, "w");
		if (!out || fputs("{\"max_queue_delay_us\": 2000, \"preferred_batch\": 8}\n", out) < 0 ||
		    fclose(out) != 0)
			qvt_die("%s: %s", q, strerror(errno));
		snprintf(q, sizeof(q), "%s/%s/1", dir, families[i]);
		if (mkdir(q, 0700) < 0)
			qvt_die("mkdir %s: %s", q, strerror(errno));
		snprintf(p, sizeof(p), "%s/%s/1/model.onnx", repo, families[i]);
		snprintf(q, sizeof(q), "%s/%s/1/model.onnx", dir, families[i]);
		in = fopen(p, "rb");
		out = fopen(q, "wb");
		if (!in || !out)
			qvt_die("copy %s: %s", p, strerror(errno));
		while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
			if (fwrite(buf, 1, n, out) != n)
				qvt_die("copy %s: %s", p, strerror(errno));
		fclose(in);
		if (fclose(out) != 0)
			qvt_die("copy %s: %s", p, strerror(errno));
	}
}

static void held_repo_remove(const char *dir)
{
	char q[512];

	for (int i = 0; i < NFAM; i++) {
		snprintf(q, sizeof(q), "%s/%s/1/model.onnx", dir, families[i]);
		unlink(q);
		snprintf(q, sizeof(q), "%s/%s/1", dir, families[i]);
		rmdir(q);
		snprintf(q, sizeof(q), "%s/%s/config.json", dir, families[i]);
		unlink(q);
		snprintf(q, sizeof(q), "%s/%s", dir, families[i]);
		rmdir(q);
	}
	rmdir(dir);
}

int main(int argc, char **argv)
{
	char held[] = "/tmp/qv-graph-repo-XXXXXX";
	struct qvt_daemon d;
	struct xport shm = { .name = "shm" }, udp = { .name = "udp" };
	char ap[64];
	int r;

	if (argc < 4) {
		fprintf(stderr, "usage: %s QUIVERD GRAPH_REPO QUIVERCTL\n", argv[0]);
		return 2;
	}
	quiverctl = argv[3];
	for (int i = 0; i < NFAM; i++) {
		char p[512];
		snprintf(p, sizeof(p), "%s/%s/1/model.onnx", argv[2], families[i]);
		if (access(p, R_OK) != 0) {
			fprintf(stderr, "SKIP: no %s (graph models not generated)\n", p);
			return QVT_SKIP;
		}
	}
	if (!mkdtemp(held))
		qvt_die("mkdtemp: %s", strerror(errno));
	held_repo(argv[2], held);
	snprintf(ap, sizeof(ap), "127.0.0.1:%u", free_udp_port());
	/* One worker: a burst's requests reach the same worker and batch. */
	const char *extra[] = { "--cores", "1", "--udp", ap, NULL };
	if (qvt_daemon_start(&d, argv[1], held, extra) < 0) {
		held_repo_remove(held);
		qvt_die("quiverd did not start");
	}
	sock = d.sock;
	shm.shm = qvt_connect(d.sock, "e2e-graph", 32);
	r = qv_udp_connect(ap, &(struct qv_udp_opts){ .max_inflight = 32, .timeout_ms = 5000 },
			   &udp.udp);
	if (r < 0)
		qvt_die("udp connect %s: %s", ap, strerror(-r));

	for (int i = 0; i < NFAM; i++) {
		struct qv_model_desc ud;
		struct fam *f = &fams[i];

		f->name = families[i];
		load_family(shm.shm, argv[2], f);
		r = qv_udp_lookup(udp.udp, f->name, &ud);
		if (r < 0 || ud.handle != f->d.handle || ud.n_inputs != f->d.n_inputs ||
		    ud.n_outputs != f->d.n_outputs || ud.in_dim != f->d.in_dim ||
		    memcmp(ud.inputs, f->d.inputs, sizeof(ud.inputs)) != 0 ||
		    memcmp(ud.outputs, f->d.outputs, sizeof(ud.outputs)) != 0)
			qvt_fail("%s: the UDP lookup (%d) does not describe it as the socket's does",
				 f->name, r);
	}

	for (int i = 0; i < NFAM; i++) {
		struct fam *f = &fams[i];

		alone(&shm, f);
		alone(&udp, f);
		bursts_until(&shm, f, "batches", 0);
		bursts_until(&udp, f, "batches", 0);
		if (f->id_input >= 0) {
			bursts_until(&shm, f, "split_batches", 1);
			bursts_until(&udp, f, "split_batches", 1);
		}
	}
	if (fams[0].id_input < 0)
		qvt_fail("dlrm has no id input to break");

	/* Misuse the client refuses itself: the wrong number of tensors. */
	{
		struct req q;
		struct qv_result res;
		struct qv_request rq = { .handle = fams[0].d.handle, .rows = 1 };

		req_make(&fams[0], &q, 0, 1, 0);
		q.t.n_inputs--;
		if ((r = qv_infer_tensors(shm.shm, &rq, &q.t, 1000, &res)) != -EINVAL)
			qvt_fail("shm typed call with a tensor missing: %d, want -EINVAL", r);
		if ((r = qv_udp_infer_tensors(udp.udp, &rq, &q.t, 1000, &res)) != -EINVAL)
			qvt_fail("udp typed call with a tensor missing: %d, want -EINVAL", r);
	}
	malformed((uint16_t)atoi(strrchr(ap, ':') + 1), &fams[0]);
	malformed((uint16_t)atoi(strrchr(ap, ':') + 1), &fams[4]);
	malformed_shm(&fams[0]);
	/* Everything still served after the bad ones. */
	alone(&shm, &fams[4]);
	alone(&udp, &fams[0]);

	qv_close(shm.shm);
	qv_udp_close(udp.udp);
	for (int i = 0; i < NFAM; i++) {
		for (uint32_t k = 0; k < fams[i].d.n_inputs; k++)
			free(fams[i].in[k]);
		for (uint32_t k = 0; k < fams[i].d.n_outputs; k++)
			free(fams[i].ref[k]);
	}
	r = qvt_finish(&d);
	held_repo_remove(held);
	return r;
}
