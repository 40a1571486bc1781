/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_graph_models - every multi-tensor model of tests/graph against its
 * reference outputs (torch in float64, or numpy, computed by the generator;
 * never by quiver), and every bad model refused naming its node.
 *
 * usage: test_graph_models MODEL_DIR [NAME_SUBSTRING]
 *
 * For each good model of manifest.tsv:
 *  - qv_model_tensor: the inputs' and outputs' names, dtypes, per-row
 *    shapes, row sizes and packed offsets in declared order, and the
 *    index_bound of every id input, as the manifest says;
 *  - qv_run_tensors (one buffer per tensor) and qv_run (packed rows, built
 *    from the per-tensor arrays as qv_model.h lays them out, outputs
 *    unpacked the same way) on all rows at once, on each row alone, and on
 *    7 rows read at an offset; qv_run_reference on all rows and on 7;
 *    under AUTO kernels, and all rows and 7 under oneDNN-only and
 *    hand-kernel loads; with max_batch 8, all rows 8 at a time, and 0 and
 *    9 rows refused (-EINVAL);
 *  - two threads with a context each running the model at once;
 *  - every id input: an id equal to the table size, one of -size-1, and
 *    the dtype's extremes (INT64_MIN/MAX, INT32_MIN/MAX; for float ids
 *    +-1e30, inf and NaN) in one row make qv_run_tensors and qv_run answer
 *    -ERANGE (and the reference fail); the next good run is correct;
 *  - the inputs are read in place and never written; no output is written
 *    past its rows (a guard zone behind each buffer).
 * Every bad model fails to load, from its file and from a buffer, with a
 * message naming the node.
 */
#include "npy.h"
#include "qv_model.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SKIP 77
#define GUARD 64u          /* bytes behind every output buffer */
#define ODD_ROWS 7u
#define ODD_ROW0 3u
#define MAX_REPORT 3
#define MAX_MODELS 128
#define MAX_BAD 32

static const unsigned char guard_byte = 0xa5;
static int failures;
static int verbose;
/* Largest |got - want| / tolerance this thread saw: how close to failing. */
static _Thread_local double worst;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			failures++;                                        \
		}                                                          \
	} while (0)

struct tref {
	char name[QV_TENSOR_NAME_LEN];
	uint32_t dtype;                 /* QV_DT_* */
	uint32_t row_rank;              /* dims after the batch */
	int64_t row_shape[QV_MAX_RANK];
	int64_t bound;                  /* inputs: table size of an id input, 0 if none */
	uint32_t row_elems, row_bytes;
	uint32_t packed_off;            /* as qv_model.h lays out a packed row */
	struct qv_npy a;                /* rows of this tensor (input, or reference output) */
};

struct mref {
	char name[96];
	uint32_t rows;
	double rtol, atol;
	uint32_t n_in, n_out;
	struct tref in[QV_MAX_TENSORS], out[QV_MAX_TENSORS];
	uint32_t in_row_bytes, out_row_bytes;
};

struct bref {
	char name[96];
	char errors[256];
};

/* ---- manifest ---------------------------------------------------------- */

static uint32_t parse_dtype(const char *s)
{
	if (!strcmp(s, "float32"))
		return QV_DT_F32;
	if (!strcmp(s, "int32"))
		return QV_DT_I32;
	if (!strcmp(s, "int64"))
		return QV_DT_I64;
	return 0;
}

static int parse_tensor(char **f, int n, int is_in, struct tref *t)
{
	if (n != (is_in ? 5 : 4) || strlen(f[1]) >= sizeof(t->name))
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", f[1]);
	t->dtype = parse_dtype(f[2]);
	if (!t->dtype)
		return -EINVAL;
	t->row_elems = 1;
	if (strcmp(f[3], "-") != 0) {
		char *p = f[3];
		for (;;) {
			char *end;
			long long d = strtoll(p, &end, 10);
			if (end == p || d <= 0 || t->row_rank + 1 >= QV_MAX_RANK)
				return -EINVAL;
			t->row_shape[t->row_rank++] = d;
			t->row_elems *= (uint32_t)d;
			if (*end == '\0')
				break;
			if (*end != 'x')
				return -EINVAL;
			p = end + 1;
		}
	}
	t->row_bytes = t->row_elems * qv_dtype_size(t->dtype);
	t->bound = is_in ? strtoll(f[4], NULL, 10) : 0;
	return 0;
}

/* Reads DIR/manifest.tsv (format: gen_graph_models.py). -ENOENT: not generated. */
static int read_manifest(const char *dir, struct mref **ret_m, uint32_t *ret_nm,
			 struct bref *bad, uint32_t *ret_nb)
{
	char path[4096], line[1024];
	snprintf(path, sizeof(path), "%s/manifest.tsv", dir);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return -errno;
	struct mref *ms = calloc(MAX_MODELS, sizeof(*ms));
	uint32_t nm = 0, nb = 0, want_in = 0, want_out = 0, lineno = 0;
	int rc = ms ? 0 : -ENOMEM;

	while (rc == 0 && fgets(line, sizeof(line), fp)) {
		char *f[8] = { 0 }, *save = NULL;
		int n = 0;
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		for (char *t = strtok_r(line, "\t", &save); t && n < 8; t = strtok_r(NULL, "\t", &save))
			f[n++] = t;
		if (n == 0)
			continue;
		struct mref *m = nm ? &ms[nm - 1] : NULL;
		if (!strcmp(f[0], "model") && n == 7 && nm < MAX_MODELS && !want_in && !want_out) {
			m = &ms[nm++];
			snprintf(m->name, sizeof(m->name), "%s", f[1]);
			m->rows = (uint32_t)strtoul(f[2], NULL, 10);
			m->rtol = strtod(f[3], NULL);
			m->atol = strtod(f[4], NULL);
			want_in = (uint32_t)strtoul(f[5], NULL, 10);
			want_out = (uint32_t)strtoul(f[6], NULL, 10);
			if (!want_in || !want_out || want_in > QV_MAX_TENSORS || want_out > QV_MAX_TENSORS)
				rc = -EINVAL;
		} else if (!strcmp(f[0], "in") && m && want_in) {
			struct tref *t = &m->in[m->n_in];
			rc = parse_tensor(f, n, 1, t);
			t->packed_off = m->in_row_bytes;
			m->in_row_bytes += t->row_bytes;
			m->n_in++;
			want_in--;
		} else if (!strcmp(f[0], "out") && m && !want_in && want_out) {
			struct tref *t = &m->out[m->n_out];
			rc = parse_tensor(f, n, 0, t);
			t->packed_off = m->out_row_bytes;
			m->out_row_bytes += t->row_bytes;
			m->n_out++;
			want_out--;
		} else if (!strcmp(f[0], "bad") && n == 3 && nb < MAX_BAD && !want_in && !want_out) {
			snprintf(bad[nb].name, sizeof(bad[nb].name), "%s", f[1]);
			snprintf(bad[nb].errors, sizeof(bad[nb].errors), "%s", f[2]);
			nb++;
		} else {
			rc = -EINVAL;
		}
		if (rc < 0)
			fprintf(stderr, "%s: bad line %u\n", path, lineno);
	}
	fclose(fp);
	if (rc == 0 && (want_in || want_out)) {
		fprintf(stderr, "%s: truncated\n", path);
		rc = -EINVAL;
	}
	if (rc < 0) {
		free(ms);
		return rc;
	}
	*ret_m = ms;
	*ret_nm = nm;
	*ret_nb = nb;
	return 0;
}

static int load_arrays(const char *dir, struct mref *m)
{
	char path[4096], err[256];

	for (uint32_t k = 0; k < m->n_in + m->n_out; k++) {
		int is_in = k < m->n_in;
		struct tref *t = is_in ? &m->in[k] : &m->out[k - m->n_in];
		snprintf(path, sizeof(path), "%s/%s.%s.%s.npy", dir, m->name, is_in ? "in" : "out", t->name);
		int rc = qv_npy_read_typed(path, &t->a, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "FAIL %s: %s\n", m->name, err);
			return rc;
		}
		int ok = t->a.dtype == t->dtype && t->a.rank == t->row_rank + 1 &&
			 t->a.shape[0] == (int64_t)m->rows;
		for (uint32_t d = 0; ok && d < t->row_rank; d++)
			ok = t->a.shape[d + 1] == t->row_shape[d];
		if (!ok) {
			fprintf(stderr, "FAIL %s: %s does not match the manifest (dtype/shape)\n", m->name, path);
			return -EINVAL;
		}
	}
	return 0;
}

static void free_arrays(struct mref *m)
{
	for (uint32_t i = 0; i < m->n_in; i++)
		qv_npy_free(&m->in[i].a);
	for (uint32_t i = 0; i < m->n_out; i++)
		qv_npy_free(&m->out[i].a);
}

/* ---- checks --------------------------------------------------------- */

static void check_tensor(const struct mref *r, const qv_model *m, int is_out, uint32_t idx,
			 const struct tref *t)
{
	struct qv_tensor_info ti;
	const char *which = is_out ? "output" : "input";

	memset(&ti, 0, sizeof(ti));
	int rc = qv_model_tensor(m, is_out, idx, &ti);
	CHECK(rc == 0, "%s: qv_model_tensor(%s %u) returned %d", r->name, which, idx, rc);
	if (rc != 0)
		return;
	CHECK(memchr(ti.name, '\0', sizeof(ti.name)) && !strcmp(ti.name, t->name),
	      "%s: %s %u is named '%.*s', want '%s'", r->name, which, idx, (int)sizeof(ti.name),
	      ti.name, t->name);
	CHECK(ti.dtype == t->dtype, "%s: %s '%s' dtype %s, want %s", r->name, which, t->name,
	      qv_dtype_name(ti.dtype), qv_dtype_name(t->dtype));
	CHECK(ti.rank == t->row_rank + 1, "%s: %s '%s' rank %u, want %u", r->name, which, t->name,
	      ti.rank, t->row_rank + 1);
	CHECK(ti.shape[0] == -1, "%s: %s '%s' shape[0] %lld, want -1 (the batch)", r->name, which,
	      t->name, (long long)ti.shape[0]);
	for (uint32_t d = 0; d < t->row_rank && d + 1 < ti.rank && d + 1 < QV_MAX_RANK; d++)
		CHECK(ti.shape[d + 1] == t->row_shape[d], "%s: %s '%s' shape[%u] %lld, want %lld",
		      r->name, which, t->name, d + 1, (long long)ti.shape[d + 1],
		      (long long)t->row_shape[d]);
	CHECK(ti.row_elems == t->row_elems && ti.row_bytes == t->row_bytes,
	      "%s: %s '%s' row %u elements / %u bytes, want %u / %u", r->name, which, t->name,
	      ti.row_elems, ti.row_bytes, t->row_elems, t->row_bytes);
	CHECK(ti.packed_off == t->packed_off, "%s: %s '%s' packed_off %u, want %u", r->name, which,
	      t->name, ti.packed_off, t->packed_off);
	if (!is_out)
		CHECK(ti.index_bound == t->bound, "%s: input '%s' index_bound %lld, want %lld", r->name,
		      t->name, (long long)ti.index_bound, (long long)t->bound);
}

static void check_info(const struct mref *r, const qv_model *m)
{
	struct qv_model_info info;
	struct qv_tensor_info ti;

	memset(&info, 0, sizeof(info));
	int rc = qv_model_get_info(m, &info);
	CHECK(rc == 0, "%s: qv_model_get_info returned %d", r->name, rc);
	if (rc != 0)
		return;
	CHECK(info.n_inputs == r->n_in && info.n_outputs == r->n_out,
	      "%s: %u inputs / %u outputs, want %u / %u", r->name, info.n_inputs, info.n_outputs,
	      r->n_in, r->n_out);
	CHECK(info.in_dim * 4 == r->in_row_bytes && info.out_dim * 4 == r->out_row_bytes,
	      "%s: in_dim/out_dim %u/%u words, want %u/%u", r->name, info.in_dim, info.out_dim,
	      r->in_row_bytes / 4, r->out_row_bytes / 4);
	CHECK(info.max_batch >= r->rows, "%s: max_batch %u < %u rows", r->name, info.max_batch, r->rows);
	for (uint32_t i = 0; i < r->n_in; i++)
		check_tensor(r, m, 0, i, &r->in[i]);
	for (uint32_t i = 0; i < r->n_out; i++)
		check_tensor(r, m, 1, i, &r->out[i]);
	CHECK(qv_model_tensor(m, 0, r->n_in, &ti) == -ENOENT, "%s: input %u past the last is not -ENOENT",
	      r->name, r->n_in);
	CHECK(qv_model_tensor(m, 1, r->n_out, &ti) == -ENOENT,
	      "%s: output %u past the last is not -ENOENT", r->name, r->n_out);
	char desc[8192] = "";
	rc = qv_model_describe(m, desc, sizeof(desc));
	CHECK(rc >= 0 && desc[0] && memchr(desc, '\0', sizeof(desc)),
	      "%s: qv_model_describe returned %d or an empty or unterminated text", r->name, rc);
	if (verbose && rc >= 0)
		printf("%s: %u steps\n%s\n", r->name, info.n_steps, desc);
}

static int64_t get_int(const void *p, uint32_t dtype)
{
	if (dtype == QV_DT_I32) {
		int32_t v;
		memcpy(&v, p, sizeof(v));
		return v;
	}
	int64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* An id no table holds, as an integer (int32/int64 inputs) or a float
 * (float inputs the graph casts to ids). */
struct bad_id {
	int64_t i;
	float f;
};

/* The table size, one below minus it, and the dtype's extremes. Returns
 * how many it wrote into v (at most 6). */
static int bad_ids(const struct tref *t, struct bad_id *v)
{
	const int64_t b = t->bound;
	int n = 0;

	v[n++] = (struct bad_id){ b, (float)b };
	v[n++] = (struct bad_id){ -b - 1, (float)(-b - 1) };
	if (t->dtype == QV_DT_I64) {
		v[n++] = (struct bad_id){ INT64_MIN, 0 };
		v[n++] = (struct bad_id){ INT64_MAX, 0 };
	} else if (t->dtype == QV_DT_I32) {
		v[n++] = (struct bad_id){ INT32_MIN, 0 };
		v[n++] = (struct bad_id){ INT32_MAX, 0 };
	} else {
		v[n++] = (struct bad_id){ 0, 1e30f };
		v[n++] = (struct bad_id){ 0, -1e30f };
		v[n++] = (struct bad_id){ 0, INFINITY };
		v[n++] = (struct bad_id){ 0, NAN };
	}
	return n;
}

static void put_id(void *p, uint32_t dtype, const struct bad_id *v)
{
	if (dtype == QV_DT_F32) {
		memcpy(p, &v->f, sizeof(v->f));
	} else if (dtype == QV_DT_I32) {
		int32_t w = (int32_t)v->i;
		memcpy(p, &w, sizeof(w));
	} else {
		memcpy(p, &v->i, sizeof(v->i));
	}
}

/* Compares rows [row0, row0 + rows) of output t, `got` holding them at a
 * stride of `stride` bytes a row (row_bytes per-tensor, or the packed row). */
static int compare(const struct mref *r, const struct tref *t, const char *what,
		   const unsigned char *got, size_t stride, uint32_t row0, uint32_t rows)
{
	const size_t esz = qv_dtype_size(t->dtype);
	int bad = 0;

	for (uint32_t i = 0; i < rows; i++) {
		const unsigned char *g = got + i * stride;
		const unsigned char *w = (const unsigned char *)t->a.raw + (size_t)(row0 + i) * t->row_bytes;
		for (uint32_t c = 0; c < t->row_elems; c++) {
			int ok;
			double gv, wv, tol = 0;
			if (t->dtype == QV_DT_F32) {
				float gf, wf;
				memcpy(&gf, g + c * esz, sizeof(gf));
				memcpy(&wf, w + c * esz, sizeof(wf));
				gv = gf;
				wv = wf;
				tol = r->atol + r->rtol * fabs(wv);
				ok = isfinite(gv) && fabs(gv - wv) <= tol;
				if (ok && fabs(gv - wv) / tol > worst)
					worst = fabs(gv - wv) / tol;
			} else {
				gv = (double)get_int(g + c * esz, t->dtype);
				wv = (double)get_int(w + c * esz, t->dtype);
				ok = gv == wv;
			}
			if (ok)
				continue;
			if (bad < MAX_REPORT)
				fprintf(stderr, "FAIL %s [%s] output '%s' row %u elem %u: got %.9g want %.9g "
					"(tol %.3g)\n", r->name, what, t->name, row0 + i, c, gv, wv, tol);
			bad++;
		}
	}
	if (bad > MAX_REPORT)
		fprintf(stderr, "FAIL %s [%s] output '%s': %d values wrong\n", r->name, what, t->name, bad);
	return bad;
}

static int guard_ok(const unsigned char *p)
{
	for (uint32_t i = 0; i < GUARD; i++)
		if (p[i] != guard_byte)
			return 0;
	return 1;
}

/* Buffers of one run: per-tensor outputs and the packed rows, each with a
 * guard zone behind. Made once per model. */
struct bufs {
	unsigned char *out[QV_MAX_TENSORS];
	unsigned char *pin, *pout;
	void *in_copy[QV_MAX_TENSORS];   /* per-tensor inputs, for the -ERANGE runs */
};

static int bufs_make(const struct mref *r, struct bufs *b)
{
	memset(b, 0, sizeof(*b));
	for (uint32_t i = 0; i < r->n_out; i++)
		if (!(b->out[i] = malloc((size_t)r->rows * r->out[i].row_bytes + GUARD)))
			return -ENOMEM;
	for (uint32_t i = 0; i < r->n_in; i++)
		if (!(b->in_copy[i] = malloc((size_t)r->rows * r->in[i].row_bytes + 1)))
			return -ENOMEM;
	b->pin = malloc((size_t)r->rows * r->in_row_bytes + 1);
	b->pout = malloc((size_t)r->rows * r->out_row_bytes + GUARD);
	return b->pin && b->pout ? 0 : -ENOMEM;
}

static void bufs_free(const struct mref *r, struct bufs *b)
{
	for (uint32_t i = 0; i < r->n_out; i++)
		free(b->out[i]);
	for (uint32_t i = 0; i < r->n_in; i++)
		free(b->in_copy[i]);
	free(b->pin);
	free(b->pout);
}

/* Packs rows [row0, row0 + rows) of the per-tensor inputs `src` into b->pin:
 * one row of every input in declared order, back to back (qv_model.h). */
static void pack_inputs(const struct mref *r, void *const *src, uint32_t row0, uint32_t rows,
			struct bufs *b)
{
	for (uint32_t i = 0; i < rows; i++)
		for (uint32_t k = 0; k < r->n_in; k++)
			memcpy(b->pin + (size_t)i * r->in_row_bytes + r->in[k].packed_off,
			       (const unsigned char *)src[k] + (size_t)(row0 + i) * r->in[k].row_bytes,
			       r->in[k].row_bytes);
}

enum api { API_TENSORS, API_PACKED, API_REFERENCE };
static const char *const api_name[] = { "qv_run_tensors", "qv_run", "qv_run_reference" };

/* One run of rows [row0, row0 + rows) of `src` (per-tensor inputs) through
 * `api`; returns its return code and writes the outputs into b. */
static int run_api(const struct mref *r, const qv_model *m, qv_exec_ctx *ctx, enum api api,
		   void *const *src, uint32_t row0, uint32_t rows, struct bufs *b)
{
	if (api == API_TENSORS) {
		const void *in[QV_MAX_TENSORS];
		void *out[QV_MAX_TENSORS];
		for (uint32_t k = 0; k < r->n_in; k++)
			in[k] = (const unsigned char *)src[k] + (size_t)row0 * r->in[k].row_bytes;
		for (uint32_t k = 0; k < r->n_out; k++) {
			memset(b->out[k], guard_byte, (size_t)rows * r->out[k].row_bytes + GUARD);
			out[k] = b->out[k];
		}
		return qv_run_tensors(ctx, rows, in, out);
	}
	pack_inputs(r, src, row0, rows, b);
	memset(b->pout, guard_byte, (size_t)rows * r->out_row_bytes + GUARD);
	/* qv_run's rows are 4-byte words (float-typed pointers); malloc's
	 * alignment covers them */
	if (api == API_PACKED)
		return qv_run(ctx, (const float *)(const void *)b->pin, rows, (float *)(void *)b->pout);
	return qv_run_reference(m, (const float *)(const void *)b->pin, rows, (float *)(void *)b->pout);
}

static int check_outputs(const struct mref *r, const char *label, enum api api, uint32_t row0,
			 uint32_t rows, const struct bufs *b)
{
	char what[160];
	int bad = 0;

	snprintf(what, sizeof(what), "%s %s rows=%u@%u", label, api_name[api], rows, row0);
	for (uint32_t k = 0; k < r->n_out; k++) {
		const struct tref *t = &r->out[k];
		if (api == API_TENSORS) {
			bad += compare(r, t, what, b->out[k], t->row_bytes, row0, rows);
			if (!guard_ok(b->out[k] + (size_t)rows * t->row_bytes)) {
				fprintf(stderr, "FAIL %s [%s]: wrote past output '%s'\n", r->name, what, t->name);
				bad++;
			}
		} else {
			/* unpack: output k sits at its packed offset of every out row */
			bad += compare(r, t, what, b->pout + t->packed_off, r->out_row_bytes, row0, rows);
		}
	}
	if (api != API_TENSORS && !guard_ok(b->pout + (size_t)rows * r->out_row_bytes)) {
		fprintf(stderr, "FAIL %s [%s]: wrote past the packed output rows\n", r->name, what);
		bad++;
	}
	return bad;
}

static int run_check(const struct mref *r, const qv_model *m, qv_exec_ctx *ctx, enum api api,
		     const char *label, uint32_t row0, uint32_t rows, struct bufs *b)
{
	void *src[QV_MAX_TENSORS];
	for (uint32_t k = 0; k < r->n_in; k++)
		src[k] = r->in[k].a.raw;
	int rc = run_api(r, m, ctx, api, src, row0, rows, b);
	if (rc != 0) {
		fprintf(stderr, "FAIL %s [%s %s rows=%u@%u]: returned %d (%s)\n", r->name, label,
			api_name[api], rows, row0, rc, strerror(-rc));
		return 1;
	}
	return check_outputs(r, label, api, row0, rows, b);
}

/* Ids out of range in one row: -ERANGE from both run APIs (the reference
 * fails too), then a good run of the same context is still right. */
static int check_range(const struct mref *r, const qv_model *m, qv_exec_ctx *ctx, struct bufs *b)
{
	int bad = 0;
	void *src[QV_MAX_TENSORS];
	const uint32_t bad_row = r->rows / 2 + 1;

	for (uint32_t k = 0; k < r->n_in; k++) {
		memcpy(b->in_copy[k], r->in[k].a.raw, (size_t)r->rows * r->in[k].row_bytes);
		src[k] = b->in_copy[k];
	}
	for (uint32_t k = 0; k < r->n_in; k++) {
		const struct tref *t = &r->in[k];
		if (!t->bound)
			continue;
		struct bad_id vals[6];
		const int nv = bad_ids(t, vals);
		const size_t esz = qv_dtype_size(t->dtype);
		/* the last element of the row: for an [n]-ids row not the first one read */
		unsigned char *p = (unsigned char *)b->in_copy[k] +
				   (size_t)bad_row * t->row_bytes + (t->row_elems - 1) * esz;
		unsigned char keep[8];
		memcpy(keep, p, esz);
		for (int v = 0; v < nv; v++) {
			char val[32];
			if (t->dtype == QV_DT_F32)
				snprintf(val, sizeof(val), "%g", (double)vals[v].f);
			else
				snprintf(val, sizeof(val), "%lld", (long long)vals[v].i);
			put_id(p, t->dtype, &vals[v]);
			for (int api = API_TENSORS; api <= API_REFERENCE; api++) {
				/* all rows, and the bad row alone */
				for (int alone = 0; alone < 2; alone++) {
					uint32_t row0 = alone ? bad_row : 0, rows = alone ? 1 : r->rows;
					int rc = run_api(r, m, ctx, (enum api)api, src, row0, rows, b);
					int ok = api == API_REFERENCE ? rc < 0 : rc == -ERANGE;
					if (!ok) {
						fprintf(stderr, "FAIL %s: %s rows=%u@%u with %s = %s in row %u "
							"(table of %lld) returned %d, want %s\n", r->name,
							api_name[api], rows, row0, t->name, val,
							bad_row, (long long)t->bound, rc,
							api == API_REFERENCE ? "an error" : "-ERANGE");
						bad++;
					}
				}
			}
		}
		memcpy(p, keep, esz);
		/* the context serves the next request right */
		bad += run_check(r, m, ctx, API_TENSORS, "after -ERANGE", 0, r->rows, b);
		bad += run_check(r, m, ctx, API_PACKED, "after -ERANGE", bad_row, 1, b);
	}
	return bad;
}

struct variant {
	const char *label;
	struct qv_model_opts opts;
	int full;   /* every row alone, the -ERANGE runs, two threads; else all rows and 7 */
};

/* tune_iters small: the test checks results, not the tuner's choice.
 * max_batch 8: all rows run in chunks of 8, and 9 rows are refused. */
static const struct variant variants[] = {
	{ "auto", { .max_batch = 0, .kernels = QV_KERNEL_AUTO, .tune_iters = 2 }, 1 },
	{ "onednn", { .max_batch = 0, .kernels = QV_KERNEL_ONEDNN, .tune_iters = 0 }, 0 },
	{ "hand", { .max_batch = 0, .kernels = QV_KERNEL_HAND, .tune_iters = 0 }, 0 },
	{ "hand/mb8", { .max_batch = 8, .kernels = QV_KERNEL_HAND, .tune_iters = 0 }, 0 },
};

/* Rows 0 and max_batch + 1 are -EINVAL for both run APIs; max_batch rows
 * at a time cover every row. */
static int check_max_batch(const struct mref *r, const qv_model *m, qv_exec_ctx *ctx,
			   const char *label, struct bufs *b)
{
	struct qv_model_info info;
	const void *in[QV_MAX_TENSORS];
	void *out[QV_MAX_TENSORS];
	int bad = 0;

	if (qv_model_get_info(m, &info) != 0 || info.max_batch >= r->rows) {
		fprintf(stderr, "FAIL %s [%s]: max_batch %u, want fewer than %u rows\n", r->name, label,
			info.max_batch, r->rows);
		return 1;
	}
	for (uint32_t k = 0; k < r->n_in; k++)
		in[k] = r->in[k].a.raw;
	for (uint32_t k = 0; k < r->n_out; k++)
		out[k] = b->out[k];
	const uint32_t bad_rows[2] = { 0, info.max_batch + 1 };
	for (int i = 0; i < 2; i++) {
		int rc = qv_run_tensors(ctx, bad_rows[i], in, out);
		int rc2 = qv_run(ctx, (const float *)(const void *)b->pin, bad_rows[i], (float *)(void *)b->pout);
		if (rc != -EINVAL || rc2 != -EINVAL) {
			fprintf(stderr, "FAIL %s [%s]: %u rows (max_batch %u): qv_run_tensors %d, qv_run %d, "
				"want -EINVAL\n", r->name, label, bad_rows[i], info.max_batch, rc, rc2);
			bad++;
		}
	}
	for (uint32_t row0 = 0; row0 < r->rows && bad < 4; row0 += info.max_batch) {
		uint32_t n = r->rows - row0 < info.max_batch ? r->rows - row0 : info.max_batch;
		bad += run_check(r, m, ctx, API_TENSORS, label, row0, n, b);
		bad += run_check(r, m, ctx, API_PACKED, label, row0, n, b);
	}
	return bad;
}

/* Two threads, a context each, run the same loaded model at once: all
 * rows by qv_run_tensors in one, row by row by qv_run in the other. */
#define THREAD_ITERS 4

struct thread_arg {
	const struct mref *r;
	const qv_model *m;
	int mode;
	int bad;
	double worst;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	qv_exec_ctx *ctx = NULL;
	struct bufs b;
	char label[16];

	snprintf(label, sizeof(label), "thread%d", a->mode);
	if (bufs_make(a->r, &b) < 0 || qv_exec_ctx_create(a->m, &ctx) < 0) {
		fprintf(stderr, "FAIL %s [%s]: no buffers or context\n", a->r->name, label);
		a->bad++;
	}
	for (int it = 0; it < THREAD_ITERS && a->bad == 0; it++) {
		if (a->mode == 0) {
			a->bad += run_check(a->r, a->m, ctx, API_TENSORS, label, 0, a->r->rows, &b);
		} else {
			for (uint32_t i = 0; i < a->r->rows && a->bad == 0; i++)
				a->bad += run_check(a->r, a->m, ctx, API_PACKED, label, i, 1, &b);
		}
	}
	a->worst = worst;
	qv_exec_ctx_free(ctx);
	bufs_free(a->r, &b);
	return NULL;
}

static int run_threads(const struct mref *r, const qv_model *m)
{
	struct thread_arg a[2] = { { r, m, 0, 0, 0 }, { r, m, 1, 0, 0 } };
	pthread_t t[2];
	int started = 0, bad = 0;

	for (int i = 0; i < 2; i++) {
		if (pthread_create(&t[i], NULL, thread_main, &a[i]) != 0) {
			fprintf(stderr, "FAIL %s: pthread_create\n", r->name);
			bad++;
			break;
		}
		started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(t[i], NULL);
		bad += a[i].bad;
		if (a[i].worst > worst)
			worst = a[i].worst;
	}
	return bad;
}

static void test_model(const char *dir, struct mref *r)
{
	char path[4096], err[QV_ERR_LEN] = "";
	const int before = failures;

	worst = 0;

	if (load_arrays(dir, r) < 0) {
		failures++;
		free_arrays(r);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s.onnx", dir, r->name);
	for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
		const struct variant *va = &variants[v];
		qv_model *m = NULL;
		qv_exec_ctx *ctx = NULL;
		struct bufs b;
		memset(&b, 0, sizeof(b));
		int rc = qv_model_load_file(path, &va->opts, &m, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "FAIL %s [%s]: load returned %d (%s): %s\n", r->name, va->label, rc,
				strerror(-rc), err);
			failures++;
			break;   /* the other loads would only say the same */
		}
		if (v == 0)
			check_info(r, m);
		rc = qv_exec_ctx_create(m, &ctx);
		CHECK(rc == 0, "%s [%s]: qv_exec_ctx_create returned %d", r->name, va->label, rc);
		if (rc == 0 && bufs_make(r, &b) == 0) {
			int bad = 0;
			if (va->opts.max_batch && va->opts.max_batch < r->rows) {
				failures += check_max_batch(r, m, ctx, va->label, &b);
				goto next;
			}
			for (int api = API_TENSORS; api <= API_REFERENCE; api++) {
				if (api == API_REFERENCE && v > 0)
					break;   /* the kernel choice does not reach the reference */
				bad += run_check(r, m, ctx, (enum api)api, va->label, 0, r->rows, &b);
				bad += run_check(r, m, ctx, (enum api)api, va->label, ODD_ROW0, ODD_ROWS, &b);
				for (uint32_t i = 0; va->full && api != API_REFERENCE && i < r->rows && bad < 4; i++)
					bad += run_check(r, m, ctx, (enum api)api, va->label, i, 1, &b);
			}
			if (va->full)
				bad += check_range(r, m, ctx, &b);
			if (va->full && !bad)
				bad += run_threads(r, m);
			failures += bad;
		} else if (rc == 0) {
			CHECK(0, "%s: out of memory", r->name);
		}
next:
		bufs_free(r, &b);
		qv_exec_ctx_free(ctx);
		qv_model_free(m);
	}
	/* inputs are read in place, never written: reload and compare */
	for (uint32_t k = 0; k < r->n_in; k++) {
		struct qv_npy fresh;
		char e2[256];
		snprintf(path, sizeof(path), "%s/%s.in.%s.npy", dir, r->name, r->in[k].name);
		if (qv_npy_read_typed(path, &fresh, e2, sizeof(e2)) == 0) {
			CHECK(!memcmp(fresh.raw, r->in[k].a.raw, (size_t)r->rows * r->in[k].row_bytes),
			      "%s: input '%s' was written by a run", r->name, r->in[k].name);
			qv_npy_free(&fresh);
		}
	}
	/* worst: the largest |got - want| / tolerance of the runs that passed */
	printf("%-28s %2u in %2u out  worst %.3f of tol  %s\n", r->name, r->n_in, r->n_out, worst,
	       failures == before ? "ok" : "FAILED");
	free_arrays(r);
}

static void test_bad(const char *dir, const struct bref *bm)
{
	char path[4096], err[QV_ERR_LEN], msg[QV_ERR_LEN + 1], base[128];
	qv_model *m = NULL;

	snprintf(path, sizeof(path), "%s/%.95s.onnx", dir, bm->name);
	memset(err, 0, sizeof(err));
	int rc = qv_model_load_file(path, NULL, &m, err, sizeof(err));
	CHECK(rc < 0, "%s: loaded (rc %d), want an error naming '%s'", bm->name, rc, bm->errors);
	if (rc >= 0) {
		qv_model_free(m);
		return;
	}
	CHECK(m == NULL, "%s: ret_model written on failure", bm->name);
	/* the file name is blanked out: it must not pass for the node's name */
	snprintf(msg, sizeof(msg), "%s", err);
	snprintf(base, sizeof(base), "%.95s.onnx", bm->name);
	for (char *p = strstr(msg, base); p; p = strstr(p, base))
		memset(p, ' ', strlen(base));
	int named = 0;
	char alts[256];
	snprintf(alts, sizeof(alts), "%s", bm->errors);
	for (char *save = NULL, *a = strtok_r(alts, "|", &save); a; a = strtok_r(NULL, "|", &save))
		named |= strcasestr(msg, a) != NULL;
	CHECK(named, "%s: error \"%s\" names none of '%s'", bm->name, err, bm->errors);
	printf("%-28s refused: %s\n", bm->name, err);

	/* from a buffer: the same refusal, the same node named */
	FILE *fp = fopen(path, "rb");
	unsigned char buf[1 << 16];
	size_t len = fp ? fread(buf, 1, sizeof(buf), fp) : 0;
	CHECK(fp && len > 0 && len < sizeof(buf), "%s: cannot read %s", bm->name, path);
	if (fp)
		fclose(fp);
	if (len == 0 || len == sizeof(buf))
		return;
	memset(err, 0, sizeof(err));
	rc = qv_model_load_buffer(buf, len, NULL, &m, err, sizeof(err));
	CHECK(rc < 0 && m == NULL, "%s: loaded from a buffer (rc %d)", bm->name, rc);
	if (rc >= 0) {
		qv_model_free(m);
		return;
	}
	named = 0;
	snprintf(alts, sizeof(alts), "%s", bm->errors);
	for (char *save = NULL, *a = strtok_r(alts, "|", &save); a; a = strtok_r(NULL, "|", &save))
		named |= strcasestr(err, a) != NULL;
	CHECK(named, "%s [buffer]: error \"%s\" names none of '%s'", bm->name, err, bm->errors);
}

int main(int argc, char **argv)
{
	struct mref *ms = NULL;
	struct bref bad[MAX_BAD];
	uint32_t nm = 0, nb = 0;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s MODEL_DIR [NAME_SUBSTRING]\n", argv[0]);
		return 2;
	}
	verbose = getenv("QV_TEST_VERBOSE") != NULL;
	setvbuf(stdout, NULL, _IOLBF, 0);   /* progress lines between the FAIL lines */
	int rc = read_manifest(argv[1], &ms, &nm, bad, &nb);
	if (rc == -ENOENT) {
		printf("SKIP: no %s/manifest.tsv (graph models not generated: needs /usr/bin/python3 "
		       "with onnx, numpy and torch)\n", argv[1]);
		return SKIP;
	}
	if (rc < 0) {
		fprintf(stderr, "cannot read the manifest in %s: %s\n", argv[1], strerror(-rc));
		return 1;
	}
	/* the float-only reader still refuses ids; the typed one reads them */
	for (uint32_t i = 0; i < nm; i++) {
		for (uint32_t k = 0; k < ms[i].n_in; k++) {
			if (ms[i].in[k].dtype == QV_DT_F32)
				continue;
			char path[4096], e[256];
			struct qv_npy a;
			snprintf(path, sizeof(path), "%s/%s.in.%s.npy", argv[1], ms[i].name, ms[i].in[k].name);
			rc = qv_npy_read(path, &a, e, sizeof(e));
			CHECK(rc == -ENOTSUP, "qv_npy_read(%s) of %s ids returned %d, want -ENOTSUP", path,
			      qv_dtype_name(ms[i].in[k].dtype), rc);
			if (rc == 0)
				qv_npy_free(&a);
		}
	}
	uint32_t ran = 0, ran_bad = 0;
	for (uint32_t i = 0; i < nm; i++) {
		if (argc == 3 && !strstr(ms[i].name, argv[2]))
			continue;
		test_model(argv[1], &ms[i]);
		ran++;
	}
	for (uint32_t i = 0; i < nb; i++) {
		if (argc == 3 && !strstr(bad[i].name, argv[2]))
			continue;
		test_bad(argv[1], &bad[i]);
		ran_bad++;
	}
	free(ms);
	CHECK(ran + ran_bad > 0, "no model matched");
	printf("%u models, %u bad models, %d failures\n", ran, ran_bad, failures);
	return failures ? 1 : 0;
}
