/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_remote.c - quiver-bench --shm SOCKET | --udp ADDR:PORT: round trips
 * through a running quiverd, printed beside, from the same run:
 *   floor-ring / floor-udp  the bare transport between two processes
 *                           (floor_ring.c, floor_udp.c), no daemon, no model;
 *   echo                    the same loop against the repository's `echo`
 *                           model: a round trip through quiverd doing no math;
 *   inproc                  the same model run in this process with qv_run
 *                           (REPO/NAME/<highest version>/model.onnx, --repo).
 * So `shm` - `inproc` is what serving out of process costs, and `echo` /
 * `floor-ring` is how close quiverd's channel gets to the bare ring.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <omp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_drive.h"
#include "bench_io.h"
#include "bench_remote.h"
#include "bench_stats.h"
#include "floor_ring.h"
#include "floor_udp.h"
#include "npy.h"
#include "qv_model.h"
#include "qv_udp_proto.h"

#define MAX_BATCHES 16
#define ECHO_MODEL "echo"
#define SWEEP_N 4
static const double sweep_fractions[SWEEP_N] = {0.10, 0.50, 0.80, 0.95};

struct ropts {
	struct qv_bench_target target;
	const char *model, *repo, *input, *output;  /* the first given of each */
	struct qv_bench_io io;
	uint32_t batches[MAX_BATCHES];
	unsigned n_batches;
	uint32_t threads, inflight, iters, warmup;
	int json, core, server_core, no_echo;
	double rate;
	int rate_sweep;
};

struct row {
	int have;
	uint64_t n, errors;
	uint64_t min_ns, p50_ns, p99_ns, p999_ns, max_ns;
	double req_per_s, rows_per_s;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: quiver-bench --shm SOCKET --model NAME [options]\n"
		"       quiver-bench --udp ADDR:PORT --model NAME [options]\n"
		"  --threads N       client threads, each with its own connection (default 1)\n"
		"  --inflight N      requests in flight a thread (default 1: synchronous)\n"
		"  --iters N         timed requests a thread and batch (default 10000)\n"
		"  --warmup N        untimed requests first (default 500)\n"
		"  --batch LIST      rows a request, comma-separated (default 1)\n"
		"  --repo DIR        model repository, for the `inproc` row\n"
		"                    (DIR/NAME/<highest>/model.onnx; without it: no inproc)\n"
		"  --core N          first client core (default 0; thread i on N+i)\n"
		"  --server-core N   the floor-ring server's core (default 1: quiverd --cores 1)\n"
		"  --rate R          open loop: R requests/s in total on a fixed schedule,\n"
		"                    latency from each request's due time (up to\n"
		"                    max(--inflight, 64) in flight a thread)\n"
		"  --rate-sweep      measure the max throughput, then the open loop at\n"
		"                    10%%, 50%%, 80%% and 95%% of it\n"
		"  --no-echo         skip the `echo` row\n"
		"  --json            one JSON object a line\n"
		"  --input X.npy --output Y.npy\n"
		"                    run every row of X through the daemon and write Y\n"
		"  --input NAME=X.npy --output NAME=Y.npy\n"
		"                    the same per named tensor (typed requests; float32,\n"
		"                    int32 or int64 .npy), once for each input\n"
		"Latency is per request in ns (" QV_BENCH_TIMER_NAME "); throughput is\n"
		"requests/s and rows/s over all threads.\n");
}


static int parse_batches(const char *s, struct ropts *o)
{
	char buf[256];
	char *save = NULL;
	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	o->n_batches = 0;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->n_batches == MAX_BATCHES ||
		    qv_bench_parse_u32(tok, 1, 65536, &o->batches[o->n_batches]))
			return -EINVAL;
		o->n_batches++;
	}
	return o->n_batches ? 0 : -EINVAL;
}

int qv_bench_is_remote(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], "--shm", 5) || !strncmp(argv[i], "--udp", 5))
			return 1;
	return 0;
}

/* Returns 0, 2 after printing why, or -1 for --help. */
static int parse_args(int argc, char **argv, struct ropts *o)
{
	static const char *const with_value[] = {
		"--shm", "--udp", "--model", "--threads", "--inflight", "--iters", "--warmup",
		"--batch", "--repo", "--core", "--server-core", "--rate", "--input", "--output",
	};
	memset(o, 0, sizeof(*o));
	o->batches[0] = 1;
	o->n_batches = 1;
	o->threads = 1;
	o->inflight = 1;
	o->iters = 10000;
	o->warmup = 500;
	o->server_core = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			return -1;
		if (!strcmp(a, "--json")) {
			o->json = 1;
			continue;
		}
		if (!strcmp(a, "--rate-sweep")) {
			o->rate_sweep = 1;
			continue;
		}
		if (!strcmp(a, "--no-echo")) {
			o->no_echo = 1;
			continue;
		}
		char name[32];
		const char *eq = strchr(a, '=');
		const char *val = eq ? eq + 1 : NULL;
		size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
		int known = 0;
		if (name_len >= sizeof(name))
			return qv_bench_bad_arg("unknown argument '%s'", a);
		memcpy(name, a, name_len);
		name[name_len] = 0;
		for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
			known |= !strcmp(name, with_value[k]);
		if (!known)
			return qv_bench_bad_arg("unknown argument '%s' (the --shm/--udp mode takes no model files)", a);
		if (!val) {
			if (i + 1 >= argc)
				return qv_bench_bad_arg("%s needs a value", name);
			val = argv[++i];
		}
		uint32_t u;
		if (!strcmp(name, "--shm")) {
			o->target.shm_socket = val;
		} else if (!strcmp(name, "--udp")) {
			o->target.udp_addr = val;
		} else if (!strcmp(name, "--model")) {
			if (!*val || strlen(val) >= QV_NAME_MAX)
				return qv_bench_bad_arg("--model '%s': want a model name", val);
			o->model = val;
		} else if (!strcmp(name, "--threads")) {
			if (qv_bench_parse_u32(val, 1, 256, &o->threads))
				return qv_bench_bad_arg("--threads '%s': want 1..256", val);
		} else if (!strcmp(name, "--inflight")) {
			if (qv_bench_parse_u32(val, 1, 4096, &o->inflight))
				return qv_bench_bad_arg("--inflight '%s': want 1..4096", val);
		} else if (!strcmp(name, "--iters")) {
			if (qv_bench_parse_u32(val, 1, 100000000u, &o->iters))
				return qv_bench_bad_arg("--iters '%s': want an integer 1..100000000", val);
		} else if (!strcmp(name, "--warmup")) {
			if (qv_bench_parse_u32(val, 0, 100000000u, &o->warmup))
				return qv_bench_bad_arg("--warmup '%s': want an integer 0..100000000", val);
		} else if (!strcmp(name, "--batch")) {
			if (parse_batches(val, o))
				return qv_bench_bad_arg("--batch '%s': want a comma-separated list of 1..65536 "
					       "(at most %d)", val, MAX_BATCHES);
		} else if (!strcmp(name, "--repo")) {
			o->repo = val;
		} else if (!strcmp(name, "--core") || !strcmp(name, "--server-core")) {
			if (qv_bench_parse_u32(val, 0, CPU_SETSIZE - 1, &u))
				return qv_bench_bad_arg("%s '%s': want a core number", name, val);
			*(!strcmp(name, "--core") ? &o->core : &o->server_core) = (int)u;
		} else if (!strcmp(name, "--rate")) {
			char *end;
			errno = 0;
			o->rate = strtod(val, &end);
			if (errno || *end || !(o->rate >= 1 && o->rate <= 1e9))
				return qv_bench_bad_arg("--rate '%s': want requests/s, 1..1e9", val);
		} else {
			int is_out = !strcmp(name, "--output");
			if (qv_bench_io_add(&o->io, is_out, val))
				return 2;
			if (!*(is_out ? &o->output : &o->input))
				*(is_out ? &o->output : &o->input) = val;
		}
	}
	if (!o->target.shm_socket == !o->target.udp_addr)
		return qv_bench_bad_arg("give exactly one of --shm SOCKET and --udp ADDR:PORT");
	if (!o->model)
		return qv_bench_bad_arg("--model NAME is required with --shm/--udp");
	if (!o->input != !o->output)
		return qv_bench_bad_arg("--input and --output go together");
	if (o->rate > 0 && o->rate_sweep)
		return qv_bench_bad_arg("--rate and --rate-sweep exclude each other");
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorts samples in place and fills r; wall_ns is the run's wall time. */
static void summarise(uint64_t *s, uint64_t n, uint64_t wall_ns, uint32_t rows, struct row *r)
{
	memset(r, 0, sizeof(*r));
	if (!n)
		return;
	qsort(s, n, sizeof(*s), cmp_u64);
	r->have = 1;
	r->n = n;
	r->min_ns = s[0];
	r->max_ns = s[n - 1];
	r->p50_ns = qv_bench_percentile(s, n, 0.50);
	r->p99_ns = qv_bench_percentile(s, n, 0.99);
	r->p999_ns = qv_bench_percentile(s, n, 0.999);
	r->req_per_s = wall_ns ? (double)n * 1e9 / (double)wall_ns : 0;
	r->rows_per_s = r->req_per_s * rows;
}

/* ---- inproc: the same model in this process ---- */

struct inproc {
	qv_model *m;
	qv_exec_ctx *ctx;
	struct qv_model_info info;
	char path[PATH_MAX];
};

static int find_model_file(const char *repo, const char *model, char *path, size_t cap)
{
	char dir[PATH_MAX];
	long best = -1;
	struct dirent *e;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", repo, model) >= sizeof(dir))
		return -ENAMETOOLONG;
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char *end;
		long v = strtol(e->d_name, &end, 10);
		if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && !*end && v > best)
			best = v;
	}
	closedir(d);
	if (best < 0)
		return -ENOENT;
	if ((size_t)snprintf(path, cap, "%s/%ld/model.onnx", dir, best) >= cap)
		return -ENAMETOOLONG;
	return 0;
}

static int inproc_load(const char *repo, const char *model, uint32_t max_batch,
		       struct inproc *ret, char *why, size_t why_len)
{
	struct qv_model_opts mo = {.max_batch = max_batch};
	char err[QV_ERR_LEN] = "";
	int r;
	memset(ret, 0, sizeof(*ret));
	r = find_model_file(repo, model, ret->path, sizeof(ret->path));
	if (r) {
		snprintf(why, why_len, "%s/%s: no version directory (%s)", repo, model, strerror(-r));
		return r;
	}
	r = qv_model_load_file(ret->path, &mo, &ret->m, err, sizeof(err));
	if (!r)
		r = qv_model_get_info(ret->m, &ret->info);
	if (!r)
		r = qv_exec_ctx_create(ret->m, &ret->ctx);
	if (r) {
		snprintf(why, why_len, "%s: %s", ret->path, err[0] ? err : strerror(-r));
		qv_model_free(ret->m);
		return r;
	}
	return 0;
}

static void inproc_free(struct inproc *ip)
{
	qv_exec_ctx_free(ip->ctx);
	qv_model_free(ip->m);
}

/* One thread, back-to-back qv_run calls on the caller's (pinned) core. */
static int inproc_bench(struct inproc *ip, uint32_t rows, uint32_t warmup, uint32_t iters,
			struct row *ret)
{
	float *in = calloc((size_t)rows * ip->info.in_dim + 1, sizeof(float));
	float *out = calloc((size_t)rows * ip->info.out_dim + 1, sizeof(float));
	uint64_t *s = malloc((size_t)iters * sizeof(uint64_t));
	int r = -ENOMEM;
	if (!in || !out || !s)
		goto out;
	struct qv_bench_layout lay;
	if (qv_bench_layout_of_model(ip->m, &lay) == 0 && !qv_bench_layout_plain(&lay))
		qv_bench_fill_packed(&lay, in, rows, 0x9E3779B97F4A7C15ull);
	else
		for (size_t i = 0; i < (size_t)rows * ip->info.in_dim; i++)
			in[i] = (float)((int)((i * 2654435761u) >> 8 & 255) - 128) / 128.0f;
	for (uint32_t i = 0; i < warmup; i++)
		if ((r = qv_run(ip->ctx, in, rows, out)))
			goto out;
	uint64_t t0 = qv_bench_now_ns();
	for (uint32_t i = 0; i < iters; i++) {
		uint64_t a = qv_bench_now_ns();
		r = qv_run(ip->ctx, in, rows, out);
		s[i] = qv_bench_now_ns() - a;
		if (r)
			goto out;
	}
	summarise(s, iters, qv_bench_now_ns() - t0, rows, ret);
	r = 0;
out:
	free(in);
	free(out);
	free(s);
	return r;
}

/* ---- through the daemon ---- */

static int remote_bench(const struct ropts *o, const char *model, uint32_t rows,
			uint32_t inflight, double rate, struct row *ret)
{
	/* An open loop must be free to have many requests out when the server
	 * stalls; a cap of one would turn it back into a closed loop. */
	if (rate > 0 && inflight < 64)
		inflight = 64;
	struct qv_bench_load l = {
		.target = &o->target, .model = model, .rows = rows, .inflight = inflight,
		.warmup = o->warmup, .iters = o->iters, .rate = rate / o->threads, .core = o->core,
	};
	struct qv_bench_thread_out *out = calloc(o->threads, sizeof(*out));
	uint64_t *all = NULL, n = 0, t0 = UINT64_MAX, t1 = 0, errors = 0;
	int r;
	if (!out)
		return -ENOMEM;
	r = qv_bench_drive(&l, o->threads, 1, out);
	if (r) {
		for (uint32_t i = 0; i < o->threads; i++)
			if (out[i].err)
				fprintf(stderr, "quiver-bench: %s %s batch %u thread %u: %s: %s\n",
					o->target.shm_socket ? "shm" : "udp", model, rows, i,
					out[i].what, strerror(-out[i].err));
		goto done;
	}
	all = malloc((size_t)o->threads * o->iters * sizeof(uint64_t));
	if (!all) {
		r = -ENOMEM;
		goto done;
	}
	for (uint32_t i = 0; i < o->threads; i++) {
		memcpy(all + n, out[i].lat_ns, (size_t)o->iters * sizeof(uint64_t));
		n += o->iters;
		t0 = out[i].t_start < t0 ? out[i].t_start : t0;
		t1 = out[i].t_end > t1 ? out[i].t_end : t1;
		errors += out[i].errors;
	}
	summarise(all, n, t1 - t0, rows, ret);
	ret->errors = errors;
	if (errors)
		fprintf(stderr, "quiver-bench: %s batch %u: %" PRIu64 " of %" PRIu64
			" requests answered with an error status\n", model, rows, errors, n);
done:
	for (uint32_t i = 0; i < o->threads; i++)
		free(out[i].lat_ns);
	free(out);
	free(all);
	return r;
}

/* ---- output ---- */

static const char *mode_path(const struct ropts *o)
{
	return o->target.shm_socket ? "shm" : "udp";
}

static void print_header(const struct ropts *o, const struct qv_model_desc *d)
{
	printf("\n== %s %s: model %s (version %u, in_dim %u, out_dim %u, max_batch %u), "
	       "%u thread%s x %u in flight, client core %d, %u iters/thread\n",
	       mode_path(o), o->target.shm_socket ? o->target.shm_socket : o->target.udp_addr,
	       d->name, d->version, d->in_dim, d->out_dim, d->max_batch, o->threads,
	       o->threads == 1 ? "" : "s", o->inflight, o->core, o->iters);
	printf("latency per request in ns (%s); throughput over all threads\n",
	       QV_BENCH_TIMER_NAME);
	printf("%6s  %-12s %10s %10s %10s %12s %14s\n", "batch", "path", "p50", "p99", "p99.9",
	       "req/s", "rows/s");
}

static void print_row(const struct ropts *o, const char *path, uint32_t rows,
		      const struct row *r, const char *extra)
{
	if (!r->have)
		return;
	if (!o->json) {
		printf("%6u  %-12s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %12.0f %14.0f\n", rows,
		       path, r->p50_ns, r->p99_ns, r->p999_ns, r->req_per_s, r->rows_per_s);
		return;
	}
	printf("{\"model\":\"%s\",\"path\":\"%s\",\"batch\":%u,\"iters\":%" PRIu64
	       ",\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64 ",\"p999_ns\":%" PRIu64
	       ",\"min_ns\":%" PRIu64 ",\"max_ns\":%" PRIu64 ",\"throughput_per_s\":%.1f"
	       ",\"requests_per_s\":%.1f,\"errors\":%" PRIu64 ",\"threads\":%u,\"inflight\":%u%s}\n",
	       o->model, path, rows, r->n, r->p50_ns, r->p99_ns, r->p999_ns, r->min_ns, r->max_ns,
	       r->rows_per_s, r->req_per_s, r->errors, o->threads, o->inflight, extra ? extra : "");
}

/* ---- --input / --output through the daemon ---- */

/* Rows a request: the model's max batch, and for UDP what fits one
 * datagram each way (after version 2's 16-byte prefix). */
static uint32_t npy_chunk(const struct ropts *o, const struct qv_model_desc *d)
{
	uint32_t chunk = d->max_batch ? d->max_batch : 1;
	if (o->target.udp_addr) {
		uint32_t dim = d->in_dim > d->out_dim ? d->in_dim : d->out_dim;
		uint32_t fit = (QV_UDP_MAX_DATAGRAM - 64 - 16) / (dim * (uint32_t)sizeof(float));
		chunk = fit < chunk ? fit : chunk;
	} else {
		/* libquiver's default slot: 64 KiB in, 16 KiB out. */
		uint32_t fit_in = (64u << 10) / (d->in_dim * 4u), fit_out = (16u << 10) / (d->out_dim * 4u);
		chunk = fit_in < chunk ? fit_in : chunk;
		chunk = fit_out < chunk ? fit_out : chunk;
	}
	return chunk;
}

/* Through the daemon with typed requests, one buffer per named tensor. */
static int run_npy_tensors(const struct ropts *o, struct qv_bench_conn *c)
{
	void *in[QV_BENCH_MAX_TENSORS] = {0}, *out[QV_BENCH_MAX_TENSORS] = {0};
	const void *ip[QV_BENCH_MAX_TENSORS];
	void *op[QV_BENCH_MAX_TENSORS];
	size_t caps[QV_BENCH_MAX_TENSORS];
	struct qv_bench_layout l;
	size_t n = 0;
	uint32_t chunk = npy_chunk(o, &c->desc);
	int rc;

	qv_bench_layout_of_desc(&c->desc, &l);
	rc = qv_bench_io_check_out(&l, &o->io);
	if (!rc)
		rc = qv_bench_io_read(&l, &o->io, in, &n);
	if (!rc)
		rc = qv_bench_io_alloc_out(&l, n, out);
	if (!rc && !chunk) {
		fprintf(stderr, "quiver-bench: a row of %s does not fit one request\n", o->model);
		rc = 1;
	}
	for (size_t row = 0; !rc && row < n; row += chunk) {
		uint32_t rows = (uint32_t)(n - row < chunk ? n - row : chunk);
		struct qv_request q = {.handle = c->desc.handle, .rows = rows, .request_id = row};
		struct qv_tensors t = {l.n_in, l.n_out, ip, op, caps};
		struct qv_result res;
		for (uint32_t i = 0; i < l.n_in; i++)
			ip[i] = (const uint8_t *)in[i] + row * l.in[i].row_bytes;
		for (uint32_t j = 0; j < l.n_out; j++) {
			op[j] = (uint8_t *)out[j] + row * l.out[j].row_bytes;
			caps[j] = (size_t)rows * l.out[j].row_bytes;
		}
		int r = qv_bench_conn_infer_tensors(c, &q, &t, &res);
		if (r || res.status != QV_OK) {
			fprintf(stderr, "quiver-bench: %s: rows %zu..%zu: %s\n", o->model, row,
				row + rows - 1, r ? strerror(-r) : qv_strerror((int)res.status));
			rc = 1;
		}
	}
	if (!rc)
		rc = qv_bench_io_write(&l, &o->io, out, n);
	qv_bench_io_free(in, l.n_in);
	qv_bench_io_free(out, l.n_out);
	return rc;
}

static int run_npy(const struct ropts *o)
{
	struct qv_bench_conn c;
	struct qv_npy x = {0};
	char err[256];
	float *y = NULL;
	int rc = 1, r;
	struct qv_bench_layout lay;
	r = qv_bench_conn_open(&o->target, o->model, 1, &c);
	if (r) {
		fprintf(stderr, "quiver-bench: %s: connect / lookup '%s': %s\n", mode_path(o),
			o->model, strerror(-r));
		return 1;
	}
	qv_bench_layout_of_desc(&c.desc, &lay);
	if (!qv_bench_layout_plain(&lay) || o->io.n_in != 1 || o->io.n_out != 1 ||
	    o->io.in[0].name || o->io.out[0].name) {
		rc = run_npy_tensors(o, &c);
		qv_bench_conn_close(&c);
		return rc;
	}
	qv_bench_conn_close(&c);
	r = qv_npy_read(o->input, &x, err, sizeof(err));
	if (r) {
		fprintf(stderr, "quiver-bench: %s\n", err);
		return 1;
	}
	r = qv_bench_conn_open(&o->target, o->model, 1, &c);
	if (r) {
		fprintf(stderr, "quiver-bench: %s: connect / lookup '%s': %s\n", mode_path(o),
			o->model, strerror(-r));
		qv_npy_free(&x);
		return 1;
	}
	const uint32_t in_dim = c.desc.in_dim, out_dim = c.desc.out_dim;
	size_t per_row = 1;
	for (uint32_t i = 1; i < x.rank; i++)
		per_row *= (size_t)x.shape[i];
	if (x.rank < 2 || per_row != in_dim || x.shape[0] < 1 || !out_dim) {
		fprintf(stderr, "quiver-bench: %s: shape does not give rows of %u floats\n",
			o->input, in_dim);
		rc = 2;
		goto out;
	}
	/* Rows a request: the model's max batch, and for UDP what fits one
	 * datagram each way. */
	uint32_t chunk = c.desc.max_batch ? c.desc.max_batch : 1;
	if (o->target.udp_addr) {
		uint32_t dim = in_dim > out_dim ? in_dim : out_dim;
		uint32_t fit = (QV_UDP_MAX_DATAGRAM - 64) / (dim * (uint32_t)sizeof(float));
		chunk = fit < chunk ? fit : chunk;
	}
	if (!chunk) {
		fprintf(stderr, "quiver-bench: a row of %s does not fit one request\n", o->model);
		goto out;
	}
	const size_t n = (size_t)x.shape[0];
	y = calloc(n * out_dim, sizeof(float));
	if (!y)
		goto out;
	for (size_t row = 0; row < n; row += chunk) {
		uint32_t rows = (uint32_t)(n - row < chunk ? n - row : chunk);
		struct qv_request q = {.handle = c.desc.handle, .rows = rows,
				       .input = x.data + row * in_dim, .request_id = row};
		struct qv_result res;
		r = qv_bench_conn_infer(&c, &q, y + row * out_dim, (size_t)rows * out_dim, &res);
		if (r || res.status != QV_OK) {
			fprintf(stderr, "quiver-bench: %s: rows %zu..%zu: %s\n", o->model, row,
				row + rows - 1, r ? strerror(-r) : qv_strerror((int)res.status));
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
	free(y);
	qv_npy_free(&x);
	qv_bench_conn_close(&c);
	return rc;
}

/* ---- the floors ---- */

/* The affinity we started with: the floors pin their own processes and
 * accept only cores in the caller's mask, so they run from this one. */
static cpu_set_t start_affinity;

static int floor_bench(const struct ropts *o, uint32_t payload, struct row *ret)
{
	uint64_t *s = malloc((size_t)o->iters * sizeof(uint64_t));
	cpu_set_t pinned;
	int r;
	if (!s)
		return -ENOMEM;
	if (sched_getaffinity(0, sizeof(pinned), &pinned) ||
	    sched_setaffinity(0, sizeof(start_affinity), &start_affinity)) {
		free(s);
		return -errno;
	}
	r = o->target.shm_socket ? qv_floor_ring(o->iters, o->warmup, o->server_core, o->core, s)
				 : qv_floor_udp(o->iters, o->warmup, payload, s);
	if (sched_setaffinity(0, sizeof(pinned), &pinned) && !r)
		r = -errno;
	if (!r) {
		/* Rate over the round trips themselves: the wall time would also
		 * count forking and warming the echo process. */
		uint64_t busy = 0;
		for (uint32_t i = 0; i < o->iters; i++)
			busy += s[i];
		summarise(s, o->iters, busy, 1, ret);
	}
	free(s);
	return r;
}

static int bench_batch(const struct ropts *o, const struct qv_model_desc *d, uint32_t rows,
		       struct inproc *ip, int echo_ok)
{
	struct row main_r = {0}, echo_r = {0}, floor_r = {0}, ip_r = {0}, ip64 = {0};
	const char *floor_name = o->target.shm_socket ? "floor-ring" : "floor-udp";
	char extra[256] = "";
	int r;

	if (rows > d->max_batch) {
		fprintf(stderr, "quiver-bench: batch %u > %s's max_batch %u, skipped\n", rows,
			o->model, d->max_batch);
		return 0;
	}
	if (o->rate_sweep) {
		/* Max throughput first: a closed loop with at least 32 in flight. */
		uint32_t k = o->inflight < 32 ? 32 : o->inflight;
		r = remote_bench(o, o->model, rows, k, 0, &main_r);
		if (r)
			return 1;
		snprintf(extra, sizeof(extra), ",\"mode\":\"max\",\"sweep_inflight\":%u", k);
		if (!o->json)
			printf("%6u  %-12s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %12.0f %14.0f"
			       "   max (closed loop, %u in flight)\n", rows, mode_path(o),
			       main_r.p50_ns, main_r.p99_ns, main_r.p999_ns, main_r.req_per_s,
			       main_r.rows_per_s, k);
		else
			print_row(o, mode_path(o), rows, &main_r, extra);
		for (int i = 0; i < SWEEP_N; i++) {
			struct row sr;
			double rate = main_r.req_per_s * sweep_fractions[i];
			r = remote_bench(o, o->model, rows, k, rate, &sr);
			if (r)
				return 1;
			if (o->json) {
				snprintf(extra, sizeof(extra), ",\"mode\":\"open\",\"rate_per_s\":%.1f"
					 ",\"rate_fraction\":%.2f", rate, sweep_fractions[i]);
				print_row(o, mode_path(o), rows, &sr, extra);
			} else {
				printf("%6u  %-12s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %12.0f %14.0f"
				       "   open loop at %.0f%% (%.0f req/s)\n", rows, mode_path(o),
				       sr.p50_ns, sr.p99_ns, sr.p999_ns, sr.req_per_s, sr.rows_per_s,
				       sweep_fractions[i] * 100, rate);
			}
		}
		fflush(stdout);
		return 0;
	}

	r = remote_bench(o, o->model, rows, o->inflight, o->rate, &main_r);
	if (r)
		return 1;
	if (echo_ok && !o->no_echo && remote_bench(o, ECHO_MODEL, rows, o->inflight, o->rate, &echo_r))
		return 1;
	if (rows == o->batches[0] && o->rate <= 0) {
		/* The floors move one message, so they are the same at every batch:
		 * measured once, beside the first. */
		uint64_t payload = sizeof(struct qv_udp_req_hdr) +
				   (uint64_t)rows * d->in_dim * sizeof(float);
		r = floor_bench(o, payload > QV_UDP_MAX_DATAGRAM ? QV_UDP_MAX_DATAGRAM
								: (uint32_t)payload, &floor_r);
		if (r)
			fprintf(stderr, "quiver-bench: %s: %s\n", floor_name, strerror(-r));
	}
	if (ip && o->rate <= 0) {
		if (inproc_bench(ip, rows, o->warmup, o->iters, &ip_r))
			fprintf(stderr, "quiver-bench: inproc batch %u failed\n", rows);
		if (o->inflight > 1 && inproc_bench(ip, 64, o->warmup / 8 + 1, o->iters / 8 + 1, &ip64))
			fprintf(stderr, "quiver-bench: inproc batch 64 failed\n");
	}

	/* Ratios, on the main row. */
	size_t len = 0;
	if (o->rate > 0)
		len += (size_t)snprintf(extra + len, sizeof(extra) - len,
					",\"mode\":\"open\",\"rate_per_s\":%.1f", o->rate);
	if (echo_r.have && floor_r.have && o->target.shm_socket)
		len += (size_t)snprintf(extra + len, sizeof(extra) - len,
					",\"ratio_echo_p50_vs_floor_ring\":%.3f",
					(double)echo_r.p50_ns / (double)floor_r.p50_ns);
	if (ip_r.have && o->target.shm_socket)
		len += (size_t)snprintf(extra + len, sizeof(extra) - len,
					",\"shm_minus_inproc_p50_ns\":%" PRId64,
					(int64_t)main_r.p50_ns - (int64_t)ip_r.p50_ns);
	if (ip_r.have && floor_r.have && o->target.udp_addr)
		len += (size_t)snprintf(extra + len, sizeof(extra) - len,
					",\"udp_overhead_p50_ns\":%" PRId64,
					(int64_t)main_r.p50_ns - (int64_t)floor_r.p50_ns -
					(int64_t)ip_r.p50_ns);
	if (ip64.have && len < sizeof(extra))
		snprintf(extra + len, sizeof(extra) - len,
			 ",\"inproc_b64_rows_per_s\":%.1f,\"ratio_throughput_vs_inproc_b64\":%.3f",
			 ip64.rows_per_s, main_r.rows_per_s / ip64.rows_per_s);

	print_row(o, mode_path(o), rows, &main_r, extra);
	print_row(o, ECHO_MODEL, rows, &echo_r, NULL);
	print_row(o, floor_name, rows, &floor_r, NULL);
	print_row(o, "inproc", rows, &ip_r, NULL);
	if (!o->json) {
		if (echo_r.have && floor_r.have)
			printf("        echo / %s p50: %.2f\n", floor_name,
			       (double)echo_r.p50_ns / (double)floor_r.p50_ns);
		if (ip_r.have && o->target.shm_socket)
			printf("        shm - inproc p50: %" PRId64 " ns\n",
			       (int64_t)main_r.p50_ns - (int64_t)ip_r.p50_ns);
		if (ip_r.have && floor_r.have && o->target.udp_addr)
			printf("        udp - (floor-udp + inproc) p50: %" PRId64 " ns\n",
			       (int64_t)main_r.p50_ns - (int64_t)floor_r.p50_ns - (int64_t)ip_r.p50_ns);
		if (ip64.have)
			printf("        %s rows/s vs inproc batch 64 (%.0f rows/s): %.3f\n",
			       mode_path(o), ip64.rows_per_s, main_r.rows_per_s / ip64.rows_per_s);
	}
	fflush(stdout);
	return 0;
}

int qv_bench_remote_main(int argc, char **argv)
{
	struct ropts o;
	struct qv_bench_conn probe;
	struct qv_model_desc echo_desc;
	struct inproc ip;
	char why[PATH_MAX + QV_ERR_LEN + 64];
	int r = parse_args(argc, argv, &o);
	int have_ip = 0, echo_ok = 0, rc = 0;
	uint32_t max_rows = 1;

	if (r < 0) {
		usage(stdout);
		return 0;
	}
	if (r)
		return r;
	if (o.input)
		return run_npy(&o);

	for (unsigned i = 0; i < o.n_batches; i++)
		max_rows = o.batches[i] > max_rows ? o.batches[i] : max_rows;
	/* Size the slots from the model: one lookup on a throwaway connection. */
	r = qv_bench_conn_open(&o.target, o.model, 1, &probe);
	if (r) {
		fprintf(stderr, "quiver-bench: %s: connect / lookup '%s': %s\n", mode_path(&o),
			o.model, strerror(-r));
		return 1;
	}
	struct qv_model_desc d = probe.desc;
	if (!o.no_echo) {
		echo_ok = o.target.shm_socket
			? qv_model_lookup(probe.shm, ECHO_MODEL, &echo_desc) == 0
			: qv_udp_lookup(probe.udp, ECHO_MODEL, &echo_desc) == 0;
		if (!echo_ok)
			fprintf(stderr, "quiver-bench: no '%s' model served: no echo row\n", ECHO_MODEL);
	}
	qv_bench_conn_close(&probe);
	uint32_t dim_in = d.in_dim, dim_out = d.out_dim;
	if (echo_ok) {
		dim_in = echo_desc.in_dim > dim_in ? echo_desc.in_dim : dim_in;
		dim_out = echo_desc.out_dim > dim_out ? echo_desc.out_dim : dim_out;
	}
	o.target.slot_in_bytes = (uint32_t)(max_rows * dim_in * sizeof(float));
	o.target.slot_out_bytes = (uint32_t)(max_rows * dim_out * sizeof(float));
	if (o.target.slot_in_bytes < 4096)
		o.target.slot_in_bytes = 4096;
	if (o.target.slot_out_bytes < 4096)
		o.target.slot_out_bytes = 4096;

	/* inproc runs on the first client core, single-threaded like a worker. */
	{
		cpu_set_t set;
		if (sched_getaffinity(0, sizeof(start_affinity), &start_affinity))
			return qv_bench_bad_arg("sched_getaffinity: %s", strerror(errno));
		CPU_ZERO(&set);
		CPU_SET(o.core, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			return qv_bench_bad_arg("--core %d: cannot pin to it: %s", o.core, strerror(errno));
	}
	omp_set_num_threads(1);
	qv_thread_init();
	if (o.repo) {
		uint32_t mb = max_rows > 64 ? max_rows : 64;
		have_ip = inproc_load(o.repo, o.model, mb, &ip, why, sizeof(why)) == 0;
		if (!have_ip)
			fprintf(stderr, "quiver-bench: no inproc row: %s\n", why);
	} else if (!o.json) {
		fprintf(stderr, "quiver-bench: no --repo: no inproc row\n");
	}

	if (!o.json)
		print_header(&o, &d);
	for (unsigned i = 0; i < o.n_batches && !rc; i++)
		rc = bench_batch(&o, &d, o.batches[i], have_ip ? &ip : NULL,
				 echo_ok && o.batches[i] <= echo_desc.max_batch);
	if (have_ip)
		inproc_free(&ip);
	return rc;
}
