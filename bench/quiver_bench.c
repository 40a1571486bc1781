/* SPDX-License-Identifier: Apache-2.0 */
/*
 * quiver-bench - quiver's trtexec. Loads ONNX models with the runtime and
 * prints per-call latency percentiles and throughput of `inproc` (qv_run
 * through a qv_exec_ctx) side by side with `floor-onednn`, the same dense
 * chain run through direct oneDNN calls (floor_onednn.c), measured in the
 * same run, interleaved chunk by chunk so machine noise hits both alike.
 *
 * With --input X.npy --output Y.npy it runs the model on every row of X
 * instead and writes Y, so quiver's outputs can be checked against numpy;
 * a model of several inputs or outputs takes --input NAME=X.npy and
 * --output NAME=Y.npy once per tensor (bench_io.c).
 *
 * With --shm SOCKET or --udp ADDR:PORT it benchmarks a running quiverd
 * instead (bench_remote.c).
 *
 * Exit codes: 0 ok, 1 a model failed to load or run, 2 bad arguments.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_io.h"
#include "bench_remote.h"
#include "bench_stats.h"
#include "floor_onednn.h"
#include "floor_xgboost.h"
#include "npy.h"
#include "qv_model.h"
#include "qv_ops.h"

#define MAX_BATCHES 32
#define MAX_LAYERS 64
#define MAX_BATCH_ROWS 65536u
/* Calls per path before switching to the other one, during warm-up and as
 * the most for a timed chunk. Timed chunks are shortened so that one lasts
 * about CHUNK_NS: short enough that a burst of noise from a neighbour lands
 * on both paths and that most chunks fit between two preemptions of a busy
 * machine (the throughput column is the median chunk), long enough to hold
 * several calls. */
#define CHUNK 64u
#define CHUNK_MIN 4u
#define CHUNK_NS 500000u

enum path_sel { PATH_INPROC, PATH_FLOOR };

struct bench_opts {
	const char *models[16];
	unsigned n_models;
	uint32_t batches[MAX_BATCHES];
	unsigned n_batches;
	uint32_t iters, warmup;
	int json;
	enum qv_kernel_choice kernels;
	enum qv_precision precision;  /* of the model under test; fp32 is also run beside it */
	int core;  /* -1: the core we start on */
	const char *input, *output;  /* the first given of each */
	struct qv_bench_io io;
	enum path_sel path;
};

static const char *kernels_name(enum qv_kernel_choice k)
{
	switch (k) {
	case QV_KERNEL_ONEDNN:
		return "onednn";
	case QV_KERNEL_HAND:
		return "hand";
	case QV_KERNEL_AUTO:
		break;
	}
	return "auto";
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: quiver-bench MODEL [MODEL...] [options]   (ONNX, or XGBoost .json/.ubj)\n"
		"  --batch LIST      comma-separated batch sizes (default 1,8,64,256)\n"
		"  --iters N         timed calls per path and batch (default 10000)\n"
		"  --warmup N        untimed calls per path and batch first (default 500)\n"
		"  --json            one JSON object a line instead of tables\n"
		"  --kernels K       auto|onednn|hand: the runtime's dense kernels (default auto)\n"
		"  --precision P     fp32|bf16|int8|auto (default fp32); other than fp32, the\n"
		"                    fp32 plan of the same model is timed beside it, and the\n"
		"                    accuracy guard's measured error is printed\n"
		"  --core N          pin to core N (default: the core quiver-bench starts on)\n"
		"  --input X.npy --output Y.npy\n"
		"                    run the model on every row of X and write Y [N, out_dim]\n"
		"  --input NAME=X.npy --output NAME=Y.npy\n"
		"                    the same per named tensor, once for each input (float32,\n"
		"                    int32 or int64 .npy) and for each output wanted\n"
		"  --path P          with --input: inproc (default) or floor-onednn\n"
		"  -h, --help        this text\n"
		"quiver-bench --shm SOCKET | --udp ADDR:PORT --model NAME ... benchmarks a\n"
		"running quiverd instead (quiver-bench --shm X --help for its options).\n"
		"latency is per call, in ns, timed with " QV_BENCH_TIMER_NAME ";\n"
		"throughput is rows (inferences) per second: the median over interleaved\n"
		"chunks (%u..%u calls, ~%u us) of rows / chunk call time; --json adds the\n"
		"whole-run mean.\n", CHUNK_MIN, CHUNK, CHUNK_NS / 1000);
}


static int parse_batches(const char *s, struct bench_opts *o)
{
	char buf[512];
	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	o->n_batches = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->n_batches == MAX_BATCHES)
			return -E2BIG;
		if (qv_bench_parse_u32(tok, 1, MAX_BATCH_ROWS, &o->batches[o->n_batches]))
			return -EINVAL;
		o->n_batches++;
	}
	return o->n_batches ? 0 : -EINVAL;
}

/* Returns 0, or the exit code (2) after printing the reason, or -1 for --help. */
static int parse_args(int argc, char **argv, struct bench_opts *o)
{
	*o = (struct bench_opts){
		.batches = {1, 8, 64, 256}, .n_batches = 4,
		.iters = 10000, .warmup = 500, .core = -1, .path = PATH_INPROC,
	};
	int path_given = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			return -1;
		if (a[0] != '-' || !a[1]) {
			if (o->n_models == sizeof(o->models) / sizeof(o->models[0]))
				return qv_bench_bad_arg("too many models (at most %zu)",
					       sizeof(o->models) / sizeof(o->models[0]));
			o->models[o->n_models++] = a;
			continue;
		}
		if (!strcmp(a, "--json")) {
			o->json = 1;
			continue;
		}
		/* Every other option takes a value: "--opt VALUE" or "--opt=VALUE". */
		char name[32];
		const char *eq = strchr(a, '=');
		const char *val = eq ? eq + 1 : NULL;
		size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
		if (name_len >= sizeof(name))
			return qv_bench_bad_arg("unknown option '%s'", a);
		memcpy(name, a, name_len);
		name[name_len] = 0;
		int known = !strcmp(name, "--batch") || !strcmp(name, "--iters") ||
			    !strcmp(name, "--warmup") || !strcmp(name, "--kernels") ||
			    !strcmp(name, "--precision") ||
			    !strcmp(name, "--core") || !strcmp(name, "--input") ||
			    !strcmp(name, "--output") || !strcmp(name, "--path");
		if (!known)
			return qv_bench_bad_arg("unknown option '%s'", a);
		if (!val) {
			if (i + 1 >= argc)
				return qv_bench_bad_arg("%s needs a value", name);
			val = argv[++i];
		}
		uint32_t u;
		if (!strcmp(name, "--batch")) {
			if (parse_batches(val, o))
				return qv_bench_bad_arg("--batch '%s': want a comma-separated list of 1..%u "
					       "(at most %d)", val, MAX_BATCH_ROWS, MAX_BATCHES);
		} else if (!strcmp(name, "--iters")) {
			if (qv_bench_parse_u32(val, 1, 100000000u, &o->iters))
				return qv_bench_bad_arg("--iters '%s': want an integer 1..100000000", val);
		} else if (!strcmp(name, "--warmup")) {
			if (qv_bench_parse_u32(val, 0, 100000000u, &o->warmup))
				return qv_bench_bad_arg("--warmup '%s': want an integer 0..100000000", val);
		} else if (!strcmp(name, "--kernels")) {
			if (!strcmp(val, "auto"))
				o->kernels = QV_KERNEL_AUTO;
			else if (!strcmp(val, "onednn"))
				o->kernels = QV_KERNEL_ONEDNN;
			else if (!strcmp(val, "hand"))
				o->kernels = QV_KERNEL_HAND;
			else
				return qv_bench_bad_arg("--kernels '%s': want auto, onednn or hand", val);
		} else if (!strcmp(name, "--precision")) {
			if (qv_precision_parse(val, &o->precision))
				return qv_bench_bad_arg("--precision '%s': want fp32, bf16, int8 or auto", val);
		} else if (!strcmp(name, "--core")) {
			if (qv_bench_parse_u32(val, 0, CPU_SETSIZE - 1, &u))
				return qv_bench_bad_arg("--core '%s': want a core number", val);
			o->core = (int)u;
		} else if (!strcmp(name, "--input") || !strcmp(name, "--output")) {
			int is_out = !strcmp(name, "--output");
			if (qv_bench_io_add(&o->io, is_out, val))
				return 2;
			if (!*(is_out ? &o->output : &o->input))
				*(is_out ? &o->output : &o->input) = val;
		} else {
			path_given = 1;
			if (!strcmp(val, "inproc"))
				o->path = PATH_INPROC;
			else if (!strcmp(val, "floor-onednn"))
				o->path = PATH_FLOOR;
			else
				return qv_bench_bad_arg("--path '%s': want inproc or floor-onednn", val);
		}
	}
	if (!o->n_models)
		return qv_bench_bad_arg("no model given");
	if (!o->input != !o->output)
		return qv_bench_bad_arg("--input and --output go together");
	if (o->input && o->n_models != 1)
		return qv_bench_bad_arg("--input/--output take exactly one model");
	if (path_given && !o->input)
		return qv_bench_bad_arg("--path only applies with --input/--output");
	return 0;
}

static int pin_thread(int core)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(core, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

/* xorshift64*: a fixed, reproducible input in [-1, 1). */
static void fill_random(float *x, size_t n, uint64_t seed)
{
	uint64_t s = seed | 1;
	for (size_t i = 0; i < n; i++) {
		s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
		uint64_t r = s * 0x2545F4914F6CDD1Dull;
		x[i] = (float)((double)(r >> 40) / (double)(1u << 23) - 1.0);
	}
}

/* Integer inputs (embedding ids) of packed rows: drawn inside the bound
 * the model declares (index_bound), 0 where it declares none. */
static void fill_ids(const qv_model *m, float *x, uint32_t rows, uint64_t seed)
{
	struct qv_model_info inf;
	struct qv_tensor_info ti;
	uint64_t s = seed | 1;
	if (qv_model_get_info(m, &inf))
		return;
	for (uint32_t t = 0; qv_model_tensor(m, 0, t, &ti) == 0; t++) {
		if (ti.dtype == QV_DT_F32)
			continue;
		for (uint32_t r = 0; r < rows; r++) {
			char *p = (char *)x + (size_t)r * inf.in_dim * 4 + ti.packed_off;
			for (uint32_t i = 0; i < ti.row_elems; i++) {
				s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
				uint64_t v = ti.index_bound > 0 ? (s * 0x2545F4914F6CDD1Dull >> 11) %
								      (uint64_t)ti.index_bound : 0;
				if (ti.dtype == QV_DT_I64) {
					int64_t w = (int64_t)v;
					memcpy(p + (size_t)i * 8, &w, 8);
				} else {
					int32_t w = (int32_t)v;
					memcpy(p + (size_t)i * 4, &w, 4);
				}
			}
		}
	}
}

static void *xalloc(size_t bytes)
{
	/* 64-byte aligned like the runtime's own buffers; rounded for aligned_alloc. */
	return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

struct model_run {
	const char *path;
	qv_model *m;
	qv_exec_ctx *ctx;
	struct qv_model_info info;
	struct qv_dense_layer layers[MAX_LAYERS];
	uint32_t n_layers;  /* 0: no floor */
	int floor_own_io;   /* the layers do not read the model's input: no output diff */
	int chain_err;
	int xgb;            /* an XGBoost model: the floor is floor-xgboost */
	struct qv_precision_report prec;
};

static int load_model(const struct bench_opts *o, const char *path, uint32_t max_batch,
		      enum qv_precision prec, struct model_run *ret)
{
	char err[QV_ERR_LEN] = "";
	struct qv_model_opts mo = {.max_batch = max_batch, .kernels = o->kernels, .precision = prec};
	memset(ret, 0, sizeof(*ret));
	ret->path = path;
	int r = qv_model_load_file(path, &mo, &ret->m, err, sizeof(err));
	if (r) {
		fprintf(stderr, "quiver-bench: %s: %s\n", path, err[0] ? err : strerror(-r));
		return 1;
	}
	r = qv_model_get_info(ret->m, &ret->info);
	if (!r)
		r = qv_model_precision(ret->m, &ret->prec);
	if (!r)
		r = qv_exec_ctx_create(ret->m, &ret->ctx);
	if (r) {
		fprintf(stderr, "quiver-bench: %s: %s\n", path, strerror(-r));
		qv_model_free(ret->m);
		return 1;
	}
	if (!ret->info.in_dim || !ret->info.out_dim) {
		/* Buffers are sized from these; never hand the runtime a short one. */
		fprintf(stderr, "quiver-bench: %s: model reports in_dim %u, out_dim %u\n", path,
			ret->info.in_dim, ret->info.out_dim);
		goto fail;
	}
	r = qv_model_dense_chain(ret->m, ret->layers, MAX_LAYERS, &ret->n_layers);
	if (r) {
		ret->n_layers = 0;
		ret->chain_err = r;
		ret->xgb = qv_xgb_floor_is_model(path);
	} else if (ret->n_layers && (ret->layers[0].K != ret->info.in_dim ||
				     ret->layers[ret->n_layers - 1].N != ret->info.out_dim ||
				     ret->info.n_inputs != 1 || ret->info.n_outputs != 1 ||
				     ret->info.n_steps != ret->n_layers)) {
		/* A graph's dense layers (embeddings, interactions around them):
		 * the floor runs them back to back on buffers of its own. */
		ret->floor_own_io = 1;
	}
	return 0;
fail:
	qv_exec_ctx_free(ret->ctx);
	qv_model_free(ret->m);
	return 1;
}

static void unload_model(struct model_run *mr)
{
	qv_exec_ctx_free(mr->ctx);
	qv_model_free(mr->m);
}

/* ---- --input / --output ---- */

/* In process, one buffer per named tensor: qv_run_tensors on slices. */
static int run_npy_tensors(const struct bench_opts *o, struct model_run *mr,
			   const struct qv_bench_layout *l)
{
	void *in[QV_BENCH_MAX_TENSORS] = {0}, *out[QV_BENCH_MAX_TENSORS] = {0};
	const void *ip[QV_BENCH_MAX_TENSORS];
	void *op[QV_BENCH_MAX_TENSORS];
	size_t n = 0;
	const uint32_t mb = mr->info.max_batch ? mr->info.max_batch : 1;
	int rc = qv_bench_io_check_out(l, &o->io);
	if (!rc && o->path != PATH_INPROC) {
		fprintf(stderr, "quiver-bench: %s: --path floor-onednn takes a model of one float "
			"input and output\n", mr->path);
		rc = 2;
	}
	if (!rc)
		rc = qv_bench_io_read(l, &o->io, in, &n);
	if (!rc)
		rc = qv_bench_io_alloc_out(l, n, out);
	for (size_t row = 0; !rc && row < n; row += mb) {
		uint32_t rows = (uint32_t)(n - row < mb ? n - row : mb);
		for (uint32_t i = 0; i < l->n_in; i++)
			ip[i] = (const uint8_t *)in[i] + row * l->in[i].row_bytes;
		for (uint32_t j = 0; j < l->n_out; j++)
			op[j] = (uint8_t *)out[j] + row * l->out[j].row_bytes;
		int r = qv_run_tensors(mr->ctx, rows, ip, op);
		if (r) {
			fprintf(stderr, "quiver-bench: %s: run failed at row %zu: %s\n", mr->path, row,
				r == -ERANGE ? "an id is outside its table" : strerror(-r));
			rc = 1;
		}
	}
	if (!rc)
		rc = qv_bench_io_write(l, &o->io, out, n);
	qv_bench_io_free(in, l->n_in);
	qv_bench_io_free(out, l->n_out);
	return rc;
}

static int run_npy(const struct bench_opts *o)
{
	struct model_run mr;
	struct qv_bench_layout lay;
	struct qv_npy x = {0};
	char err[QV_ERR_LEN];
	int rc = 1;
	if (load_model(o, o->models[0], 0, o->precision, &mr))
		return 1;
	if (qv_bench_layout_of_model(mr.m, &lay)) {
		fprintf(stderr, "quiver-bench: %s: cannot read its tensors\n", mr.path);
		unload_model(&mr);
		return 1;
	}
	if (!qv_bench_layout_plain(&lay) || o->io.n_in != 1 || o->io.n_out != 1 ||
	    o->io.in[0].name || o->io.out[0].name) {
		rc = run_npy_tensors(o, &mr, &lay);
		unload_model(&mr);
		return rc;
	}
	const uint32_t in_dim = mr.info.in_dim, out_dim = mr.info.out_dim;
	const uint32_t mb = mr.info.max_batch ? mr.info.max_batch : 1;
	struct qv_floor *fl_full = NULL, *fl_tail = NULL;
	float *y = NULL;
	int r = qv_npy_read(o->input, &x, err, sizeof(err));
	if (r) {
		fprintf(stderr, "quiver-bench: %s\n", err);
		goto out;
	}
	size_t per_row = 1;
	for (uint32_t i = 1; i < x.rank; i++)
		per_row *= (size_t)x.shape[i];
	if (x.rank < 2 || per_row != in_dim || x.shape[0] < 1) {
		fprintf(stderr, "quiver-bench: %s: shape does not give rows of %u floats "
			"(want [N, %u] or [N, ...] multiplying to %u)\n",
			o->input, in_dim, in_dim, in_dim);
		rc = 2;
		goto out;
	}
	const size_t n = (size_t)x.shape[0];
	y = xalloc(n * out_dim * sizeof(float));
	if (!y) {
		fprintf(stderr, "quiver-bench: out of memory\n");
		goto out;
	}
	if (o->path == PATH_FLOOR && mr.floor_own_io) {
		fprintf(stderr, "quiver-bench: %s: floor-onednn: the dense layers do not read the "
			"model's input alone\n", mr.path);
		goto out;
	}
	if (o->path == PATH_FLOOR && !mr.n_layers) {
		fprintf(stderr, "quiver-bench: %s: floor-onednn unavailable: %s\n", mr.path,
			mr.chain_err == -ENOTSUP ? "not a pure dense chain" : strerror(-mr.chain_err));
		goto out;
	}
	for (size_t row = 0; row < n; row += mb) {
		uint32_t rows = (uint32_t)(n - row < mb ? n - row : mb);
		const float *in = x.data + row * in_dim;
		float *out = y + row * out_dim;
		if (o->path == PATH_INPROC) {
			r = qv_run(mr.ctx, in, rows, out);
		} else {
			struct qv_floor **fl = rows == mb ? &fl_full : &fl_tail;
			r = *fl ? qv_floor_set_io(*fl, in, out)
				: qv_floor_create(mr.layers, mr.n_layers, rows, in, out, fl, err,
						  sizeof(err));
			if (r) {
				fprintf(stderr, "quiver-bench: %s: floor-onednn: %s\n", mr.path, err);
				goto out;
			}
			r = qv_floor_run(*fl);
		}
		if (r) {
			fprintf(stderr, "quiver-bench: %s: run failed at row %zu: %s\n", mr.path, row,
				strerror(-r));
			goto out;
		}
	}
	int64_t shape[2] = {(int64_t)n, out_dim};
	r = qv_npy_write(o->output, y, 2, shape);
	if (r) {
		fprintf(stderr, "quiver-bench: %s: %s\n", o->output, strerror(-r));
		goto out;
	}
	rc = 0;
out:
	qv_floor_free(fl_full);
	qv_floor_free(fl_tail);
	free(y);
	qv_npy_free(&x);
	unload_model(&mr);
	return rc;
}

/* ---- benchmark ---- */

struct batch_result {
	struct qv_bench_summary inproc, floor;
	int have_floor;
	uint32_t chunk;       /* calls per timed chunk */
	double max_abs_diff;  /* inproc vs floor outputs on the same input */
};

/* Times `count` calls of one path, one sample each. */
static int time_inproc(qv_exec_ctx *ctx, const float *in, uint32_t rows, float *out,
		       uint64_t *samples, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		uint64_t t0 = qv_bench_now_ns();
		int r = qv_run(ctx, in, rows, out);
		uint64_t t1 = qv_bench_now_ns();
		if (r)
			return r;
		if (samples)
			samples[i] = t1 - t0;
	}
	return 0;
}

static int time_floor(struct qv_floor *fl, uint64_t *samples, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		uint64_t t0 = qv_bench_now_ns();
		int r = qv_floor_run(fl);
		uint64_t t1 = qv_bench_now_ns();
		if (r)
			return r;
		if (samples)
			samples[i] = t1 - t0;
	}
	return 0;
}

static int time_xgb(struct qv_xgb_floor *xf, uint64_t *samples, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		uint64_t t0 = qv_bench_now_ns();
		int r = qv_xgb_floor_run(xf);
		uint64_t t1 = qv_bench_now_ns();
		if (r)
			return r;
		if (samples)
			samples[i] = t1 - t0;
	}
	return 0;
}

static const char *floor_name(const struct model_run *mr)
{
	return mr->xgb ? "floor-xgboost" : "floor-onednn";
}

static int bench_batch(const struct bench_opts *o, struct model_run *mr, uint32_t rows,
		       struct batch_result *res)
{
	const uint32_t in_dim = mr->info.in_dim, out_dim = mr->info.out_dim;
	float *in = xalloc((size_t)rows * in_dim * sizeof(float));
	float *out_q = xalloc((size_t)rows * out_dim * sizeof(float));
	float *out_f = xalloc((size_t)rows * out_dim * sizeof(float));
	uint64_t *s_q = malloc((size_t)o->iters * sizeof(uint64_t));
	uint64_t *s_f = malloc((size_t)o->iters * sizeof(uint64_t));
	struct qv_floor *fl = NULL;
	struct qv_xgb_floor *xf = NULL;
	char err[QV_ERR_LEN] = "";
	int r = -ENOMEM;
	memset(res, 0, sizeof(*res));
	if (!in || !out_q || !out_f || !s_q || !s_f)
		goto out;
	fill_random(in, (size_t)rows * in_dim, 0x9E3779B97F4A7C15ull ^ rows);
	fill_ids(mr->m, in, rows, 0x9E3779B97F4A7C15ull ^ rows);
	if (mr->n_layers) {
		r = qv_floor_create(mr->layers, mr->n_layers, rows, mr->floor_own_io ? NULL : in,
				    mr->floor_own_io ? NULL : out_f, &fl, err, sizeof(err));
		if (r) {
			fprintf(stderr, "quiver-bench: %s: floor-onednn batch %u: %s\n", mr->path,
				rows, err);
			goto out;
		}
	}
	if (mr->xgb && qv_xgb_floor_create(mr->path, rows, in_dim, out_dim, in, out_f, &xf, err,
					   sizeof(err)) < 0)
		fprintf(stderr, "quiver-bench: %s: floor-xgboost unavailable: %s\n", mr->path, err);
	res->have_floor = fl != NULL || xf != NULL;

	/* Warm both paths (caches, branch predictors, oneDNN's lazily touched
	 * scratchpads) alternately, then measure in alternating chunks. */
	uint64_t w0 = qv_bench_now_ns();
	for (uint32_t done = 0; done < o->warmup; done += CHUNK) {
		uint32_t c = o->warmup - done < CHUNK ? o->warmup - done : CHUNK;
		r = time_inproc(mr->ctx, in, rows, out_q, NULL, c);
		if (!r && fl)
			r = time_floor(fl, NULL, c);
		else if (!r && xf)
			r = time_xgb(xf, NULL, c);
		if (r)
			goto run_failed;
	}
	/* Chunk length from the warm-up's time a call (both paths): the
	 * longest chunk that still lasts about CHUNK_NS. */
	uint32_t chunk = CHUNK;
	if (o->warmup) {
		uint64_t per_call = (qv_bench_now_ns() - w0) / ((uint64_t)o->warmup * (res->have_floor ? 2 : 1));
		uint64_t want = per_call ? CHUNK_NS / per_call : CHUNK;
		chunk = want < CHUNK_MIN ? CHUNK_MIN : want > CHUNK ? CHUNK : (uint32_t)want;
	}
	res->chunk = chunk;
	for (uint32_t done = 0; done < o->iters; done += chunk) {
		uint32_t c = o->iters - done < chunk ? o->iters - done : chunk;
		r = time_inproc(mr->ctx, in, rows, out_q, s_q + done, c);
		if (!r && fl)
			r = time_floor(fl, s_f + done, c);
		else if (!r && xf)
			r = time_xgb(xf, s_f + done, c);
		if (r)
			goto run_failed;
	}
	r = qv_bench_summarise(s_q, o->iters, rows, chunk, &res->inproc);
	if (!r && res->have_floor)
		r = qv_bench_summarise(s_f, o->iters, rows, chunk, &res->floor);
	if (r)
		goto out;
	if (res->have_floor && !mr->floor_own_io) {
		for (size_t i = 0; i < (size_t)rows * out_dim; i++) {
			double d = fabs((double)out_q[i] - (double)out_f[i]);
			if (!(d <= res->max_abs_diff))  /* also catches NaN */
				res->max_abs_diff = isnan(d) ? INFINITY : d;
		}
	}
	r = 0;
	goto out;
run_failed:
	fprintf(stderr, "quiver-bench: %s: batch %u: run failed: %s\n", mr->path, rows,
		strerror(-r));
out:
	qv_floor_free(fl);
	qv_xgb_floor_free(xf);
	free(in);
	free(out_q);
	free(out_f);
	free(s_q);
	free(s_f);
	return r;
}

static void print_json(const struct bench_opts *o, const struct model_run *mr, int core,
		       const char *path, uint32_t rows, const struct qv_bench_summary *s,
		       const struct batch_result *br, const struct batch_result *b32)
{
	printf("{\"model\":");
	json_str(base_name(mr->path));
	printf(",\"model_path\":");
	json_str(mr->path);
	printf(",\"path\":\"%s\",\"batch\":%" PRIu32 ",\"iters\":%" PRIu64
	       ",\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64 ",\"p999_ns\":%" PRIu64
	       ",\"min_ns\":%" PRIu64 ",\"max_ns\":%" PRIu64 ",\"mean_ns\":%.1f"
	       ",\"throughput_per_s\":%.1f,\"throughput_mean_per_s\":%.1f",
	       path, rows, s->n, s->p50_ns, s->p99_ns, s->p999_ns, s->min_ns, s->max_ns,
	       s->mean_ns, s->rows_per_s, s->rows_per_s_mean);
	if (br->have_floor && s == &br->inproc)
		printf(",\"ratio_p50_vs_floor\":%.3f,\"ratio_throughput_vs_floor\":%.3f"
		       ",\"max_abs_diff_vs_floor\":%.3g",
		       (double)br->inproc.p50_ns / (double)br->floor.p50_ns,
		       br->inproc.rows_per_s / br->floor.rows_per_s, br->max_abs_diff);
	if (s == &br->inproc) {
		printf(",\"precision\":\"%s\",\"served\":\"%s\"", qv_precision_name(mr->prec.requested),
		       mr->prec.served);
		if (mr->prec.checked)
			printf(",\"guard_max_abs\":%.3g,\"guard_max_rel\":%.3g,\"guard_rows\":%u",
			       mr->prec.max_abs, mr->prec.max_rel, mr->prec.golden_rows);
		if (b32)
			printf(",\"ratio_p50_vs_fp32\":%.3f,\"ratio_throughput_vs_fp32\":%.3f",
			       (double)br->inproc.p50_ns / (double)b32->inproc.p50_ns,
			       br->inproc.rows_per_s / b32->inproc.rows_per_s);
	}
	printf(",\"chunk_calls\":%u,\"kernels\":\"%s\",\"core\":%d,\"timer\":\"clock_monotonic\"}\n",
	       br->chunk, kernels_name(o->kernels), core);
}

static void print_header(const struct bench_opts *o, const struct model_run *mr, int core)
{
	printf("\n== %s  (in_dim %u, out_dim %u, max_batch %u, %u plan steps, kernels %s, "
	       "core %d, %u iters/path/batch)\n",
	       mr->path, mr->info.in_dim, mr->info.out_dim, mr->info.max_batch, mr->info.n_steps,
	       kernels_name(o->kernels), core, o->iters);
	char plan[4096];
	if (qv_model_describe(mr->m, plan, sizeof(plan)) == 0 && plan[0]) {
		printf("plan:\n");
		for (char *line = plan, *nl; line && *line; line = nl) {
			nl = strchr(line, '\n');
			if (nl)
				*nl++ = 0;
			printf("  %s\n", line);
		}
	}
	if (mr->prec.requested != QV_PRECISION_FP32) {
		printf("precision: %s requested, %s served", qv_precision_name(mr->prec.requested),
		       mr->prec.served);
		if (mr->prec.checked)
			printf("; guard on %u %s rows: max abs %.3g, max rel %.3g", mr->prec.golden_rows,
			       mr->prec.golden_given ? "golden" : "generated", mr->prec.max_abs,
			       mr->prec.max_rel);
		if (mr->prec.top1 >= 0)
			printf(", top-1 agreement %.4f", mr->prec.top1);
		printf("\n");
		if (mr->prec.reason[0])
			printf("precision: %s\n", mr->prec.reason);
		printf("inproc-fp32: the same model's fp32 plan, timed in the same run\n");
	}
	if (mr->xgb)
		printf("floor-xgboost: the same file through XGBoost's C API "
		       "(XGBoosterPredictFromDense, nthread 1)\n");
	else if (!mr->n_layers)
		printf("floor-onednn: unavailable (%s)\n",
		       mr->chain_err == -ENOTSUP ? "the model is not a pure dense chain"
						 : strerror(-mr->chain_err));
	else
		printf("floor-onednn: %u oneDNN matmul primitives, direct C API calls\n",
		       mr->n_layers);
	printf("latency per call in ns (%s); throughput in rows/s (median of ~%u us chunks)\n",
	       QV_BENCH_TIMER_NAME, CHUNK_NS / 1000);
	printf("%6s  %-13s %10s %10s %10s %14s   %-9s %-9s %-9s %s\n", "batch", "path", "p50",
	       "p99", "p99.9", "rows/s", "p50/floor", "thr/floor", "max|diff|",
	       mr->prec.requested != QV_PRECISION_FP32 ? "p50/fp32 thr/fp32" : "");
}

static void print_row(uint32_t rows, const char *path, const struct qv_bench_summary *s,
		      const struct batch_result *br, const struct batch_result *b32)
{
	printf("%6u  %-13s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %14.0f", rows, path,
	       s->p50_ns, s->p99_ns, s->p999_ns, s->rows_per_s);
	if (br->have_floor && s == &br->inproc)
		printf("   %-9.3f %-9.3f %-9.2g", (double)br->inproc.p50_ns / (double)br->floor.p50_ns,
		       br->inproc.rows_per_s / br->floor.rows_per_s, br->max_abs_diff);
	if (b32 && s == &br->inproc)
		printf(" %-8.3f %.3f", (double)br->inproc.p50_ns / (double)b32->inproc.p50_ns,
		       br->inproc.rows_per_s / b32->inproc.rows_per_s);
	putchar('\n');
}

static int bench_model(const struct bench_opts *o, const char *path, int core)
{
	uint32_t max_batch = 1;
	for (unsigned i = 0; i < o->n_batches; i++)
		if (o->batches[i] > max_batch)
			max_batch = o->batches[i];
	struct model_run mr, m32;
	int with32 = o->precision != QV_PRECISION_FP32;
	if (load_model(o, path, max_batch, o->precision, &mr))
		return 1;
	if (with32 && load_model(o, path, max_batch, QV_PRECISION_FP32, &m32)) {
		unload_model(&mr);
		return 1;
	}
	int rc = 0;
	if (o->json) {
		if (!mr.n_layers && !mr.xgb) {
			printf("{\"model\":");
			json_str(base_name(path));
			printf(",\"path\":\"floor-onednn\",\"available\":false,\"reason\":\"%s\"}\n",
			       mr.chain_err == -ENOTSUP ? "not a pure dense chain" : "dense chain export failed");
		}
	} else {
		print_header(o, &mr, core);
	}
	for (unsigned i = 0; i < o->n_batches; i++) {
		uint32_t rows = o->batches[i];
		if (rows > mr.info.max_batch) {
			fprintf(stderr, "quiver-bench: %s: batch %u > max_batch %u, skipped\n", path,
				rows, mr.info.max_batch);
			continue;
		}
		/* the fp32 plan first, then the reduced one, each against the floor */
		struct batch_result br, b32;
		if ((with32 && bench_batch(o, &m32, rows, &b32)) || bench_batch(o, &mr, rows, &br)) {
			rc = 1;
			break;
		}
		const struct batch_result *p32 = with32 ? &b32 : NULL;
		if (o->json) {
			print_json(o, &mr, core, "inproc", rows, &br.inproc, &br, p32);
			if (with32)
				print_json(o, &m32, core, "inproc-fp32", rows, &b32.inproc, &b32, NULL);
			if (br.have_floor)
				print_json(o, &mr, core, floor_name(&mr), rows, &br.floor, &br, NULL);
		} else {
			print_row(rows, "inproc", &br.inproc, &br, p32);
			if (with32)
				print_row(rows, "inproc-fp32", &b32.inproc, &b32, NULL);
			if (br.have_floor)
				print_row(rows, floor_name(&mr), &br.floor, &br, NULL);
		}
		fflush(stdout);
	}
	unload_model(&mr);
	if (with32)
		unload_model(&m32);
	return rc;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	if (qv_bench_is_remote(argc, argv))
		return qv_bench_remote_main(argc, argv);
	int r = parse_args(argc, argv, &o);
	if (r < 0) {
		usage(stdout);
		return 0;
	}
	if (r)
		return r;

	int core = o.core >= 0 ? o.core : sched_getcpu();
	int pr = core >= 0 ? pin_thread(core) : 0;
	if (pr) {
		if (o.core >= 0)
			return qv_bench_bad_arg("--core %d: cannot pin to it: %s", o.core, strerror(-pr));
		core = -1;  /* unpinned; reported as core -1 */
	}
	/* Both paths run single-threaded on this core: the runtime through
	 * qv_thread_init, the floor's primitives (made after this point) because
	 * oneDNN's OpenMP runtime sizes them from the calling thread's setting. */
	omp_set_num_threads(1);
	qv_thread_init();

	if (o.input)
		return run_npy(&o);
	int rc = 0;
	for (unsigned i = 0; i < o.n_models && !rc; i++)
		rc = bench_model(&o, o.models[i], core);
	return rc;
}
