/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_io.c - see bench_io.h. The .npy files are read and written with
 * npy.c; everything here is matching files to tensors by name, checking
 * their shapes and types, and converting int32 <-> int64 ids.
 */
#include "bench_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_stats.h"
#include "npy.h"
#include "qv_model.h"

static uint32_t esize(uint32_t dt)
{
	return dt == QV_TENSOR_INT64 ? 8u : 4u;
}

static const char *dt_name(uint32_t dt)
{
	return dt == QV_TENSOR_FLOAT32 ? "float32" : dt == QV_TENSOR_INT32 ? "int32" :
	       dt == QV_TENSOR_INT64 ? "int64" : "?";
}

static void fill_offsets(struct qv_bench_layout *l)
{
	uint32_t off = 0;

	for (uint32_t i = 0; i < l->n_in; off += l->in[i].row_bytes, i++)
		l->in[i].packed_off = off;
	l->in_row = off;
	off = 0;
	for (uint32_t j = 0; j < l->n_out; off += l->out[j].row_bytes, j++)
		l->out[j].packed_off = off;
	l->out_row = off;
}

static void from_desc(struct qv_bench_tensor *t, const struct qv_tensor_desc *d)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", d->name);
	t->dtype = d->dtype;
	t->rank = d->rank;
	memcpy(t->shape, d->shape, sizeof(t->shape));
	t->row_bytes = d->row_bytes;
	t->index_bound = d->index_bound;
}

void qv_bench_layout_of_desc(const struct qv_model_desc *d, struct qv_bench_layout *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->n_in = d->n_inputs;
	ret->n_out = d->n_outputs;
	for (uint32_t i = 0; i < d->n_inputs; i++)
		from_desc(&ret->in[i], &d->inputs[i]);
	for (uint32_t j = 0; j < d->n_outputs; j++)
		from_desc(&ret->out[j], &d->outputs[j]);
	fill_offsets(ret);
}

static void from_info(struct qv_bench_tensor *t, const struct qv_tensor_info *ti)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", ti->name);
	t->dtype = ti->dtype;
	t->rank = ti->rank <= 8 ? ti->rank : 8;
	memcpy(t->shape, ti->shape, sizeof(t->shape));
	t->row_bytes = ti->row_bytes;
	t->index_bound = ti->index_bound;
}

/* One float tensor of `dim` floats a row. */
static void plain(struct qv_bench_tensor *t, const char *name, uint32_t dim)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->dtype = QV_TENSOR_FLOAT32;
	t->rank = 2;
	t->shape[0] = -1;
	t->shape[1] = dim;
	t->row_bytes = dim * 4;
}

int qv_bench_layout_of_model(const struct qv_model *m, struct qv_bench_layout *ret)
{
	struct qv_model_info info;
	struct qv_tensor_info ti;
	int r = qv_model_get_info(m, &info);

	if (r)
		return r;
	memset(ret, 0, sizeof(*ret));
	if (info.n_inputs == 0 || info.n_outputs == 0) {
		/* A model kind that names no tensors: its one float row each way. */
		ret->n_in = ret->n_out = 1;
		plain(&ret->in[0], info.in_name, info.in_dim);
		plain(&ret->out[0], info.out_name, info.out_dim);
		fill_offsets(ret);
		return 0;
	}
	if (info.n_inputs > QV_BENCH_MAX_TENSORS || info.n_outputs > QV_BENCH_MAX_TENSORS)
		return -E2BIG;
	ret->n_in = info.n_inputs;
	ret->n_out = info.n_outputs;
	for (uint32_t i = 0; i < info.n_inputs; i++) {
		if ((r = qv_model_tensor(m, 0, i, &ti)))
			return r;
		from_info(&ret->in[i], &ti);
	}
	for (uint32_t j = 0; j < info.n_outputs; j++) {
		if ((r = qv_model_tensor(m, 1, j, &ti)))
			return r;
		from_info(&ret->out[j], &ti);
	}
	fill_offsets(ret);
	return 0;
}

int qv_bench_layout_plain(const struct qv_bench_layout *l)
{
	return l->n_in == 1 && l->n_out == 1 && l->in[0].dtype == QV_TENSOR_FLOAT32 &&
	       l->out[0].dtype == QV_TENSOR_FLOAT32;
}

static uint64_t next(uint64_t *s)
{
	*s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

void qv_bench_fill_packed(const struct qv_bench_layout *l, void *packed, uint32_t rows,
			  uint64_t seed)
{
	uint8_t *p = packed;
	uint64_t s = seed | 1;

	for (uint32_t r = 0; r < rows; r++, p += l->in_row) {
		for (uint32_t i = 0; i < l->n_in; i++) {
			const struct qv_bench_tensor *t = &l->in[i];
			uint32_t n = t->row_bytes / esize(t->dtype);
			uint8_t *q = p + t->packed_off;

			for (uint32_t k = 0; k < n; k++) {
				uint64_t x = next(&s);
				if (t->dtype == QV_TENSOR_FLOAT32) {
					float f = (float)((double)(x >> 40) / (double)(1u << 23) - 1.0);
					memcpy(q + 4 * k, &f, 4);
				} else {
					/* Inside the table the graph declares: never a BAD_REQUEST. */
					int64_t id = t->index_bound > 0 ? (int64_t)((x >> 11) %
										    (uint64_t)t->index_bound)
									: 0;
					if (t->dtype == QV_TENSOR_INT64) {
						memcpy(q + 8 * k, &id, 8);
					} else {
						int32_t v = (int32_t)id;
						memcpy(q + 4 * k, &v, 4);
					}
				}
			}
		}
	}
}

int qv_bench_io_add(struct qv_bench_io *io, int is_output, const char *val)
{
	struct qv_bench_io_arg *list = is_output ? io->out : io->in;
	unsigned *n = is_output ? &io->n_out : &io->n_in;
	const char *opt = is_output ? "--output" : "--input";
	const char *eq = strchr(val, '=');
	struct qv_bench_io_arg a = { NULL, val };

	if (eq) {
		/* NAME=FILE; a path with '=' but no name before it is a file. */
		static char names[2][QV_BENCH_MAX_TENSORS][64];
		size_t len = (size_t)(eq - val);
		if (len == 0 || len >= sizeof(names[0][0]))
			return qv_bench_bad_arg("%s '%s': want NAME=FILE.npy or FILE.npy", opt, val);
		if (*n < QV_BENCH_MAX_TENSORS) {
			memcpy(names[is_output][*n], val, len);
			names[is_output][*n][len] = '\0';
			a.name = names[is_output][*n];
		}
		a.path = eq + 1;
	}
	if (!*a.path)
		return qv_bench_bad_arg("%s '%s': no file", opt, val);
	if (*n == QV_BENCH_MAX_TENSORS)
		return qv_bench_bad_arg("%s: at most %u", opt, QV_BENCH_MAX_TENSORS);
	for (unsigned i = 0; i < *n; i++) {
		if (!a.name || !list[i].name)
			return qv_bench_bad_arg("%s FILE (without NAME=) is for a model's only %s; "
						"name each one when there are several",
						opt, is_output ? "output" : "input");
		if (!strcmp(a.name, list[i].name))
			return qv_bench_bad_arg("%s: '%s' given twice", opt, a.name);
	}
	list[(*n)++] = a;
	return 0;
}

/* The tensor of list[] an argument names, or -1 after printing why. */
static int match(const struct qv_bench_tensor *t, uint32_t n, const struct qv_bench_io_arg *a,
		 const char *opt)
{
	if (!a->name) {
		if (n == 1)
			return 0;
		fprintf(stderr, "quiver-bench: %s %s: the model has %u %ss; name one (", opt,
			a->path, n, !strcmp(opt, "--input") ? "input" : "output");
		for (uint32_t i = 0; i < n; i++)
			fprintf(stderr, "%s%s", i ? ", " : "", t[i].name);
		fprintf(stderr, ")=FILE\n");
		return -1;
	}
	for (uint32_t i = 0; i < n; i++)
		if (!strcmp(t[i].name, a->name))
			return (int)i;
	fprintf(stderr, "quiver-bench: %s %s=...: the model has no such %s (", opt, a->name,
		!strcmp(opt, "--input") ? "input" : "output");
	for (uint32_t i = 0; i < n; i++)
		fprintf(stderr, "%s%s", i ? ", " : "", t[i].name);
	fprintf(stderr, ")\n");
	return -1;
}

void qv_bench_io_free(void **bufs, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		free(bufs[i]);
		bufs[i] = NULL;
	}
}

/* Converts a's elements into t's dtype at dst. 0, or -ERANGE naming nothing. */
static int convert(const struct qv_npy *a, const struct qv_bench_tensor *t, void *dst)
{
	if (a->dtype == t->dtype) {
		memcpy(dst, a->raw, a->count * esize(t->dtype));
		return 0;
	}
	for (size_t k = 0; k < a->count; k++) {
		if (a->dtype == QV_NPY_I32) {      /* int32 file, int64 tensor */
			int32_t v;
			memcpy(&v, (const uint8_t *)a->raw + 4 * k, 4);
			int64_t w = v;
			memcpy((uint8_t *)dst + 8 * k, &w, 8);
		} else {                            /* int64 file, int32 tensor */
			int64_t v;
			memcpy(&v, (const uint8_t *)a->raw + 8 * k, 8);
			if (v < INT32_MIN || v > INT32_MAX)
				return -ERANGE;
			int32_t w = (int32_t)v;
			memcpy((uint8_t *)dst + 4 * k, &w, 4);
		}
	}
	return 0;
}

int qv_bench_io_read(const struct qv_bench_layout *l, const struct qv_bench_io *io,
		     void **ret_in, size_t *ret_rows)
{
	void *bufs[QV_BENCH_MAX_TENSORS] = { 0 };
	int seen[QV_BENCH_MAX_TENSORS] = { 0 };
	size_t rows = 0;
	char err[256];
	int rc = 2;

	for (unsigned k = 0; k < io->n_in; k++) {
		const struct qv_bench_io_arg *a = &io->in[k];
		int i = match(l->in, l->n_in, a, "--input");
		struct qv_npy x = { 0 };
		const struct qv_bench_tensor *t;
		uint64_t per_row = 1;

		if (i < 0)
			goto fail;
		t = &l->in[i];
		if (qv_npy_read_typed(a->path, &x, err, sizeof(err))) {
			fprintf(stderr, "quiver-bench: %s\n", err);
			goto fail;
		}
		for (uint32_t d = 1; d < x.rank; d++)
			per_row *= (uint64_t)x.shape[d];
		int int_ok = t->dtype != QV_TENSOR_FLOAT32 &&
			     (x.dtype == QV_NPY_I32 || x.dtype == QV_NPY_I64);
		if (x.dtype != t->dtype && !int_ok) {
			fprintf(stderr, "quiver-bench: %s: %s array for input '%s' of %s\n", a->path,
				dt_name(x.dtype), t->name, dt_name(t->dtype));
			qv_npy_free(&x);
			goto fail;
		}
		if (x.rank < 1 || x.shape[0] < 1 || per_row * esize(t->dtype) != t->row_bytes ||
		    (rows && (size_t)x.shape[0] != rows)) {
			fprintf(stderr, "quiver-bench: %s: shape does not give %s%zu rows of %u "
				"elements for input '%s'\n", a->path, rows ? "the same " : "",
				rows ? rows : (size_t)1, t->row_bytes / esize(t->dtype), t->name);
			qv_npy_free(&x);
			goto fail;
		}
		rows = (size_t)x.shape[0];
		bufs[i] = malloc(rows * t->row_bytes);
		if (!bufs[i]) {
			qv_npy_free(&x);
			rc = 1;
			goto fail;
		}
		if (convert(&x, t, bufs[i])) {
			fprintf(stderr, "quiver-bench: %s: a value does not fit int32 input '%s'\n",
				a->path, t->name);
			qv_npy_free(&x);
			goto fail;
		}
		seen[i] = 1;
		qv_npy_free(&x);
	}
	for (uint32_t i = 0; i < l->n_in; i++) {
		if (!seen[i]) {
			fprintf(stderr, "quiver-bench: no --input for the model's input '%s'\n",
				l->in[i].name);
			goto fail;
		}
	}
	memcpy(ret_in, bufs, l->n_in * sizeof(*bufs));
	*ret_rows = rows;
	return 0;
fail:
	qv_bench_io_free(bufs, l->n_in);
	return rc;
}

int qv_bench_io_alloc_out(const struct qv_bench_layout *l, size_t rows, void **ret_out)
{
	for (uint32_t j = 0; j < l->n_out; j++) {
		ret_out[j] = calloc(rows ? rows : 1, l->out[j].row_bytes);
		if (!ret_out[j]) {
			qv_bench_io_free(ret_out, j);
			fprintf(stderr, "quiver-bench: out of memory\n");
			return 1;
		}
	}
	return 0;
}

int qv_bench_io_check_out(const struct qv_bench_layout *l, const struct qv_bench_io *io)
{
	int seen[QV_BENCH_MAX_TENSORS] = { 0 };

	for (unsigned k = 0; k < io->n_out; k++) {
		int j = match(l->out, l->n_out, &io->out[k], "--output");
		if (j < 0)
			return 2;
		if (seen[j]++) {
			fprintf(stderr, "quiver-bench: --output: '%s' given twice\n", l->out[j].name);
			return 2;
		}
	}
	return 0;
}

int qv_bench_io_write(const struct qv_bench_layout *l, const struct qv_bench_io *io,
		      void *const *out, size_t rows)
{
	for (unsigned k = 0; k < io->n_out; k++) {
		int j = match(l->out, l->n_out, &io->out[k], "--output");
		const struct qv_bench_tensor *t;
		int64_t shape[8];
		uint32_t rank;
		int r;

		if (j < 0)
			return 1;
		t = &l->out[j];
		/* [N, per-row dims...] as the model declares them; a model of one
		 * float output keeps the [N, out_dim] it always wrote. */
		shape[0] = (int64_t)rows;
		if (qv_bench_layout_plain(l) || t->rank == 0 || t->rank > 8) {
			rank = 2;
			shape[1] = t->row_bytes / esize(t->dtype);
		} else {
			rank = t->rank;
			for (uint32_t d = 1; d < rank; d++)
				shape[d] = t->shape[d];
		}
		r = qv_npy_write_typed(io->out[k].path, out[j], t->dtype, rank, shape);
		if (r) {
			fprintf(stderr, "quiver-bench: %s: %s\n", io->out[k].path, strerror(-r));
			return 1;
		}
	}
	return 0;
}
