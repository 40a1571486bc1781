/* SPDX-License-Identifier: Apache-2.0 */
/*
 * quiver-score: batch scoring of a file of any size.
 *
 *   quiver-score MODEL --input X.npy|X.csv --output Y.npy|Y.csv [options]
 *   quiver-score --shm SOCKET --model NAME --input ... --output ... [options]
 *
 * A pipeline of a fixed pool of buffers (~64 MiB, at least 2 x threads + 2
 * chunks), so memory does not grow with the file:
 *   reader (main thread)   large read()s of the input into chunks of up to
 *                          --chunk rows (.npy: straight into the chunk's
 *                          float buffer; CSV: whole lines of text)
 *   scorers (--threads)    parse CSV chunks, run them in batches of --batch
 *                          rows: in process, each thread pinned to its own
 *                          core with its own qv_exec_ctx (what quiver-bench
 *                          runs); or through quiverd, each thread a
 *                          libquiver client keeping --inflight requests out
 *   writer                 writes chunks strictly in input order (a chunk
 *                          finished early waits for the ones before it),
 *                          reports bad rows in order, draws the progress bar
 * Chunks are handed over under one mutex: a handover per chunk (thousands
 * of rows), so the lock is nowhere near the per-row cost.
 *
 * Bad rows (CSV: wrong field count, a field that is not a number) are
 * reported as FILE:LINE with why; --on-bad-row stop (default) stops there
 * (the output holds every row before it, exit 3), skip leaves the row out
 * and goes on (exit 0, the count in the summary).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qv_model.h"
#include "quiver.h"
#include "score_io.h"

#define MAX_THREADS 256
#define MAX_MSGS_SHOWN 100    /* bad-row messages printed in all; the rest only counted */
#define MAX_MSGS_CHUNK MAX_MSGS_SHOWN  /* kept a chunk, so the first 100 are all kept */
#define READ_BLOCK (4u << 20)
#define MAX_LINE (1u << 20)

enum fmt { FMT_NPY, FMT_CSV };

struct chunk {
	uint64_t seq;
	uint64_t first_line;      /* CSV: line number of the chunk's first line */
	uint64_t in_end;          /* input bytes consumed up to this chunk's end (progress) */
	uint32_t lines;           /* CSV: lines of text in it (rows for .npy) */
	uint32_t rows;            /* rows to score (after parsing) */
	char *text;               /* CSV text, text_len bytes (NULL: .npy) */
	char *text_buf;           /* CSV: READ_BLOCK bytes owned by the chunk */
	size_t text_len;
	float *in, *out;
	uint32_t bad;             /* bad rows found */
	uint64_t stop_row;        /* stop mode: rows before the first bad one; UINT64_MAX none */
	int error;                /* a scoring error: the run fails */
	char err[256];
	uint32_t n_msgs;
	char msgs[MAX_MSGS_CHUNK][200];
	struct chunk *next;       /* in a queue */
};

struct score {
	/* configuration */
	const char *model_path, *shm_sock, *model_name, *in_path, *out_path;
	enum fmt in_fmt, out_fmt;
	int skip_bad, progress, json, csv_header;
	uint32_t threads, batch, chunk_rows, inflight;
	uint32_t in_dim, out_dim;
	/* in process */
	qv_model *model;
	/* through quiverd */
	struct qv_model_desc desc;

	/* pipeline */
	pthread_mutex_t mu;
	pthread_cond_t cv_free, cv_work, cv_done;
	struct chunk *free_list, *work_head, *work_tail;
	struct chunk **done;      /* by seq % n_chunks */
	uint32_t n_chunks;
	int eof, abort;
	uint64_t n_pushed;         /* chunks the reader pushed (final once eof) */
	uint64_t next_write;

	/* results */
	uint64_t rows_out, bad_rows, total_bytes;
	uint32_t version_served;
	_Atomic uint32_t version_seen;
	int stopped_bad, failed;
	char fail_msg[512];
	double t0;
	int out_fd;
	FILE *out_f;
	int cores[MAX_THREADS];
	uint32_t ncores;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

__attribute__((format(printf, 1, 2)))
static int usage_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "quiver-score: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (--help for usage)\n");
	return 2;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: quiver-score MODEL --input X.npy|X.csv --output Y.npy|Y.csv [options]\n"
		"       quiver-score --shm SOCKET --model NAME --input ... --output ... [options]\n"
		"Scores every row of X (streamed, never loaded whole) and writes the outputs\n"
		"in input order. .npy: float32 or float64, C order, shape (rows, features...).\n"
		"CSV: one row a line, comma-separated numbers.\n"
		"  --threads N        scoring threads (in process: one per core, default all\n"
		"                     allowed cores; --shm: clients, default 1)\n"
		"  --batch N          rows a model run / request (default 256, at most max batch)\n"
		"  --chunk N          rows a pipeline chunk (default 16 x batch)\n"
		"  --inflight N       --shm: requests in flight a client (default 16)\n"
		"  --on-bad-row stop|skip  a bad CSV row stops the run (default; exit 3) or is\n"
		"                     left out (reported with its line number either way)\n"
		"  --csv-header       the CSV input's first line is a header\n"
		"  --progress / --no-progress  progress bar on stderr (default: when a terminal)\n"
		"  --json             print the summary as one JSON line on stdout\n"
		"Exit: 0 done, 1 error, 2 bad arguments, 3 stopped at a bad row.\n");
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a >= b && strcasecmp(s + a - b, suf) == 0;
}

static int fmt_of(const char *path, enum fmt *ret)
{
	if (ends_with(path, ".npy"))
		*ret = FMT_NPY;
	else if (ends_with(path, ".csv") || ends_with(path, ".txt"))
		*ret = FMT_CSV;
	else
		return -EINVAL;
	return 0;
}

/* ---- pipeline plumbing ---- */

static void fail_run(struct score *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_run(struct score *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->mu);
	if (!s->failed) {
		s->failed = 1;
		va_start(ap, fmt);
		vsnprintf(s->fail_msg, sizeof(s->fail_msg), fmt, ap);
		va_end(ap);
	}
	s->abort = 1;
	pthread_cond_broadcast(&s->cv_free);
	pthread_cond_broadcast(&s->cv_work);
	pthread_cond_broadcast(&s->cv_done);
	pthread_mutex_unlock(&s->mu);
}

static struct chunk *get_free(struct score *s)
{
	struct chunk *c;

	pthread_mutex_lock(&s->mu);
	while (!s->free_list && !s->abort)
		pthread_cond_wait(&s->cv_free, &s->mu);
	c = s->abort ? NULL : s->free_list;
	if (c)
		s->free_list = c->next;
	pthread_mutex_unlock(&s->mu);
	return c;
}

static void push_work(struct score *s, struct chunk *c)
{
	pthread_mutex_lock(&s->mu);
	c->next = NULL;
	if (s->work_tail)
		s->work_tail->next = c;
	else
		s->work_head = c;
	s->work_tail = c;
	pthread_cond_signal(&s->cv_work);
	pthread_mutex_unlock(&s->mu);
}

static struct chunk *pop_work(struct score *s)
{
	struct chunk *c;

	pthread_mutex_lock(&s->mu);
	while (!s->work_head && !s->eof && !s->abort)
		pthread_cond_wait(&s->cv_work, &s->mu);
	c = s->abort ? NULL : s->work_head;
	if (c) {
		s->work_head = c->next;
		if (!s->work_head)
			s->work_tail = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	return c;
}

static void put_done(struct score *s, struct chunk *c)
{
	pthread_mutex_lock(&s->mu);
	s->done[c->seq % s->n_chunks] = c;
	pthread_cond_broadcast(&s->cv_done);
	pthread_mutex_unlock(&s->mu);
}

/* ---- scoring ---- */

struct scorer {
	struct score *s;
	uint32_t idx;
	qv_exec_ctx *ctx;         /* in process */
	qv_client *cl;            /* --shm */
	/* Self-measurement: rows/s of each full-batch model run (in process) or
	 * of each chunk (--shm), and the time the thread waited for work. */
	double *rates;
	size_t n_rates, cap_rates;
	double wait_s, busy_s;
};

/* CSV text -> floats; bad rows counted, reported, skipped or stopping. */
static void parse_chunk(struct score *s, struct chunk *c)
{
	const char *p = c->text, *end = c->text + c->text_len;
	uint64_t line = c->first_line;
	uint32_t rows = 0;

	c->bad = 0;
	c->n_msgs = 0;
	c->stop_row = UINT64_MAX;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char why[160];

		if (!qv_csv_blank(p, n)) {
			if (qv_csv_parse_row(p, n, s->in_dim, c->in + (size_t)rows * s->in_dim, why,
					     sizeof(why)) == 0) {
				rows++;
			} else {
				if (c->n_msgs < MAX_MSGS_CHUNK)
					snprintf(c->msgs[c->n_msgs++], sizeof(c->msgs[0]),
						 "%s:%" PRIu64 ": %s", s->in_path, line, why);
				c->bad++;
				if (!s->skip_bad) {
					c->stop_row = rows;
					break;
				}
			}
		}
		line++;
		p = nl ? nl + 1 : end;
	}
	c->rows = rows;
}

static void record_rate(struct scorer *w, double rate)
{
	if (w->n_rates == w->cap_rates) {
		size_t cap = w->cap_rates ? 2 * w->cap_rates : 4096;
		double *nr = realloc(w->rates, cap * sizeof(*nr));
		if (!nr)
			return;
		w->rates = nr;
		w->cap_rates = cap;
	}
	w->rates[w->n_rates++] = rate;
}

static int run_inproc(struct scorer *w, const float *in, uint32_t rows, float *out, char *err,
		      size_t errlen)
{
	struct score *s = w->s;

	for (uint32_t r = 0; r < rows; r += s->batch) {
		uint32_t n = rows - r < s->batch ? rows - r : s->batch;
		double t0 = now_s();
		int rc = qv_run(w->ctx, in + (size_t)r * s->in_dim, n, out + (size_t)r * s->out_dim);
		/* Full batches only, as quiver-bench times them: rows / call time. */
		if (n == s->batch)
			record_rate(w, n / (now_s() - t0));
		if (rc < 0) {
			snprintf(err, errlen, "model run of %u rows: %s", n, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* Up to --inflight requests out at once; every answer must be OK. */
static int run_shm(struct scorer *w, const float *in, uint32_t rows, float *out, char *err,
		   size_t errlen)
{
	struct score *s = w->s;
	uint32_t next = 0, out_n = 0, done = 0, nreq = (rows + s->batch - 1) / s->batch;
	struct qv_result res[64];

	while (done < nreq) {
		while (next < nreq && out_n < s->inflight) {
			uint32_t r = next * s->batch, n = rows - r < s->batch ? rows - r : s->batch;
			struct qv_request q = {
				.handle = s->desc.handle, .rows = n,
				.input = in + (size_t)r * s->in_dim, .request_id = next,
			};
			int rc = qv_submit(w->cl, &q, out + (size_t)r * s->out_dim,
					   (size_t)n * s->out_dim);
			if (rc == -EAGAIN)
				break;
			if (rc < 0) {
				snprintf(err, errlen, "submit: %s", qv_strerror(rc));
				return rc;
			}
			next++;
			out_n++;
		}
		int got = qv_poll(w->cl, res, 64);
		if (got < 0) {
			snprintf(err, errlen, "quiverd: %s", qv_strerror(got));
			return got;
		}
		for (int i = 0; i < got; i++) {
			if (res[i].status != QV_OK) {
				snprintf(err, errlen, "rows %" PRIu64 "..: quiverd answered %s",
					 res[i].request_id * s->batch, qv_strerror((int)res[i].status));
				return -EIO;
			}
			/* The version that served, for the summary; relaxed: a report only. */
			atomic_store_explicit(&s->version_seen, res[i].version, memory_order_relaxed);
		}
		out_n -= (uint32_t)got;
		done += (uint32_t)got;
		if (got == 0)
			sched_yield();
	}
	return 0;
}

static void *scorer_main(void *arg)
{
	struct scorer *w = arg;
	struct score *s = w->s;
	struct chunk *c;

	double t_wait = now_s();

	while ((c = pop_work(s))) {
		double t0 = now_s(), t1;
		int rc;

		w->wait_s += t0 - t_wait;
		if (c->text) {
			parse_chunk(s, c);
		}
		rc = c->rows == 0 ? 0 :
		     s->shm_sock ? run_shm(w, c->in, c->rows, c->out, c->err, sizeof(c->err)) :
				   run_inproc(w, c->in, c->rows, c->out, c->err, sizeof(c->err));
		c->error = rc < 0;
		t1 = now_s();
		w->busy_s += t1 - t0;
		if (s->shm_sock && c->rows && t1 > t0)
			record_rate(w, c->rows / (t1 - t0));
		put_done(s, c);
		t_wait = now_s();
	}
	return NULL;
}

/* ---- writing ---- */

static int write_all(int fd, const void *buf, size_t n)
{
	size_t o = 0;

	while (o < n) {
		ssize_t w = write(fd, (const char *)buf + o, n - o);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		o += (size_t)w;
	}
	return 0;
}

static int write_rows(struct score *s, const float *out, uint64_t rows)
{
	if (s->out_fmt == FMT_NPY)
		return write_all(s->out_fd, out, (size_t)rows * s->out_dim * sizeof(float));
	for (uint64_t r = 0; r < rows; r++) {
		for (uint32_t k = 0; k < s->out_dim; k++)
			fprintf(s->out_f, k ? ",%.9g" : "%.9g", (double)out[r * s->out_dim + k]);
		fputc('\n', s->out_f);
	}
	return ferror(s->out_f) ? -EIO : 0;
}

static void progress(struct score *s, uint64_t in_done, int final)
{
	double el = now_s() - s->t0, frac = s->total_bytes ? (double)in_done / (double)s->total_bytes : 0;
	double rate = el > 0 ? (double)s->rows_out / el : 0, eta = frac > 0 ? el * (1 - frac) / frac : 0;
	char bar[31];
	int fill = (int)(frac * 30 + 0.5);

	for (int i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[30] = '\0';
	fprintf(stderr, "\r[%s] %5.1f%% %12" PRIu64 " rows %10.0f rows/s ETA %3d:%02d%s", bar,
		frac * 100, s->rows_out, rate, (int)eta / 60, (int)eta % 60, final ? "\n" : "");
	fflush(stderr);
}

static void *writer_main(void *arg)
{
	struct score *s = arg;
	uint64_t shown = 0;
	double last = 0;

	for (;;) {
		struct chunk *c;
		pthread_mutex_lock(&s->mu);
		for (;;) {
			c = s->done[s->next_write % s->n_chunks];
			if (c && c->seq == s->next_write)
				break;
			c = NULL;
			/* Every chunk read was written: the reader set eof after its last push. */
			if (s->abort || (s->eof && s->next_write == s->n_pushed))
				break;
			pthread_cond_wait(&s->cv_done, &s->mu);
		}
		if (c)
			s->done[s->next_write % s->n_chunks] = NULL;
		pthread_mutex_unlock(&s->mu);
		if (!c)
			break;

		for (uint32_t i = 0; i < c->n_msgs; i++)
			if (shown++ < MAX_MSGS_SHOWN)
				fprintf(stderr, "%sbad row: %s\n", s->progress ? "\r\033[K" : "",
					c->msgs[i]);
		s->bad_rows += c->bad;
		if (c->error) {
			fail_run(s, "%s", c->err);
			break;
		}
		uint64_t rows = c->rows;
		int stop = c->stop_row != UINT64_MAX;
		int rc = write_rows(s, c->out, rows);
		if (rc < 0) {
			fail_run(s, "%s: %s", s->out_path, strerror(-rc));
			break;
		}
		s->rows_out += rows;
		if (stop) {
			s->stopped_bad = 1;
			fail_run(s, "stopped at the first bad row (--on-bad-row skip to go on)");
			break;
		}
		if (s->progress) {
			double t = now_s();
			if (t - last >= 0.2) {
				progress(s, c->in_end, 0);
				last = t;
			}
		}
		pthread_mutex_lock(&s->mu);
		s->next_write++;
		c->next = s->free_list;
		s->free_list = c;
		pthread_cond_signal(&s->cv_free);
		pthread_mutex_unlock(&s->mu);
	}
	if (s->progress && !s->failed)
		progress(s, s->total_bytes, 1);
	else if (s->progress)
		fputc('\n', stderr);
	uint64_t printed = shown < MAX_MSGS_SHOWN ? shown : MAX_MSGS_SHOWN;
	if (s->bad_rows > printed)
		fprintf(stderr, "... %" PRIu64 " more bad rows not shown\n", s->bad_rows - printed);
	return NULL;
}

/* ---- reading ---- */

static int read_some(int fd, void *buf, size_t n, size_t *ret_got)
{
	size_t o = 0;

	while (o < n) {
		ssize_t r = read(fd, (char *)buf + o, n - o);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		o += (size_t)r;
	}
	*ret_got = o;
	return 0;
}

static void finish_reading(struct score *s, uint64_t seq)
{
	pthread_mutex_lock(&s->mu);
	s->n_pushed = seq;
	s->eof = 1;
	pthread_cond_broadcast(&s->cv_work);
	pthread_cond_broadcast(&s->cv_done);
	pthread_mutex_unlock(&s->mu);
}

static void read_npy(struct score *s, int fd, const struct qv_npy_stream *h)
{
	uint64_t left = h->rows, seq = 0, off = h->data_off, row = 0;
	size_t row_bytes = (size_t)s->in_dim * h->elem;
	double *tmp = NULL;

	if (h->elem == 8 && !(tmp = malloc((size_t)s->chunk_rows * s->in_dim * sizeof(double)))) {
		fail_run(s, "out of memory");
		goto out;
	}
	while (left) {
		struct chunk *c = get_free(s);
		uint32_t n = left < s->chunk_rows ? (uint32_t)left : s->chunk_rows;
		size_t got = 0;
		void *dst;
		int rc;

		if (!c)
			break;
		dst = h->elem == 4 ? (void *)c->in : (void *)tmp;
		rc = read_some(fd, dst, (size_t)n * row_bytes, &got);
		if (rc < 0) {
			fail_run(s, "%s: %s", s->in_path, strerror(-rc));
			goto out;
		}
		if (got != (size_t)n * row_bytes) {
			fail_run(s, "%s: truncated: the header says %" PRIu64 " rows, the data ends in "
				 "row %" PRIu64, s->in_path, h->rows, row + got / row_bytes);
			goto out;
		}
		if (tmp)
			for (size_t i = 0; i < (size_t)n * s->in_dim; i++)
				c->in[i] = (float)tmp[i];
		off += got;
		row += n;
		left -= n;
		c->seq = seq++;
		c->rows = c->lines = n;
		c->text = NULL;
		c->in_end = off;
		c->bad = 0;
		c->n_msgs = 0;
		c->stop_row = UINT64_MAX;
		push_work(s, c);
	}
out:
	free(tmp);
	finish_reading(s, seq);
}

static void read_csv(struct score *s, int fd)
{
	char *carry = malloc(READ_BLOCK);
	size_t carry_len = 0;
	uint64_t seq = 0, line = 1, off = 0;
	int eof = 0;

	if (!carry) {
		fail_run(s, "out of memory");
		finish_reading(s, 0);
		return;
	}
	while (!eof || carry_len) {
		struct chunk *c = get_free(s);
		size_t len, cut = 0, got = 0;
		uint32_t lines = 0;
		int rc;

		if (!c)
			break;
		memcpy(c->text_buf, carry, carry_len);
		len = carry_len;
		if (!eof) {
			rc = read_some(fd, c->text_buf + len, READ_BLOCK - len, &got);
			if (rc < 0) {
				fail_run(s, "%s: %s", s->in_path, strerror(-rc));
				break;
			}
			len += got;
			eof = len < READ_BLOCK;
		}
		/* Whole lines, at most chunk_rows of them; at EOF the last line may lack '\n'. */
		while (cut < len && lines < s->chunk_rows) {
			const char *nl = memchr(c->text_buf + cut, '\n', len - cut);
			if (!nl) {
				if (eof) {
					cut = len;
					lines++;
				}
				break;
			}
			cut = (size_t)(nl - c->text_buf) + 1;
			lines++;
		}
		if (lines == 0 && len > 0) {
			fail_run(s, "%s:%" PRIu64 ": a line longer than %u bytes", s->in_path, line,
				 READ_BLOCK);
			break;
		}
		carry_len = len - cut;
		memcpy(carry, c->text_buf + cut, carry_len);
		if (cut == 0) {
			pthread_mutex_lock(&s->mu);
			c->next = s->free_list;
			s->free_list = c;
			pthread_mutex_unlock(&s->mu);
			break;
		}
		off += cut;
		c->seq = seq++;
		c->text = c->text_buf;
		c->text_len = cut;
		c->first_line = line;
		c->lines = lines;
		c->in_end = off;
		line += lines;
		/* The header line is the first line of the first chunk: drop it here. */
		if (c->seq == 0 && s->csv_header) {
			const char *nl = memchr(c->text, '\n', c->text_len);
			size_t skip = nl ? (size_t)(nl - c->text) + 1 : c->text_len;
			c->text += skip;
			c->text_len -= skip;
			c->first_line++;
		}
		push_work(s, c);
	}
	free(carry);
	finish_reading(s, seq);
}

/* ---- setup ---- */

static void *scorer_thread(void *arg)
{
	struct scorer *w = arg;
	struct score *s = w->s;

	if (!s->shm_sock) {
		int rc;
		/* Pinned first, so the context's scratch is touched on this core's node. */
		if (s->ncores) {
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET(s->cores[w->idx % s->ncores], &set);
			(void)sched_setaffinity(0, sizeof(set), &set);
		}
		rc = qv_exec_ctx_create(s->model, &w->ctx);
		if (rc < 0) {
			fail_run(s, "exec context: %s", strerror(-rc));
			return NULL;
		}
	}
	scorer_main(w);
	return NULL;
}

static int open_output(struct score *s)
{
	char hdr[QV_NPY_OUT_HDR];

	s->out_fd = open(s->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (s->out_fd < 0)
		return -errno;
	if (s->out_fmt == FMT_NPY) {
		qv_npy_out_header(hdr, 0, s->out_dim);
		return write_all(s->out_fd, hdr, sizeof(hdr));
	}
	s->out_f = fdopen(s->out_fd, "w");
	if (!s->out_f)
		return -errno;
	setvbuf(s->out_f, NULL, _IOFBF, 1 << 20);
	return 0;
}

/* The .npy header with the final row count; the CSV flushed. */
static int close_output(struct score *s)
{
	char hdr[QV_NPY_OUT_HDR];
	int rc = 0;

	if (s->out_fmt == FMT_NPY) {
		qv_npy_out_header(hdr, s->rows_out, s->out_dim);
		if (pwrite(s->out_fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
			rc = -EIO;
		if (close(s->out_fd) < 0 && rc == 0)
			rc = -errno;
	} else {
		if (fclose(s->out_f) != 0)
			rc = -EIO;
	}
	return rc;
}

static int setup_model(struct score *s, char *err, size_t errlen)
{
	if (s->shm_sock) {
		qv_client *cl;
		int rc = qv_connect(s->shm_sock, NULL, &cl);
		if (rc < 0) {
			snprintf(err, errlen, "%s: %s", s->shm_sock, qv_strerror(rc));
			return rc;
		}
		rc = qv_model_lookup(cl, s->model_name, &s->desc);
		qv_close(cl);
		if (rc < 0) {
			snprintf(err, errlen, "model '%s': %s", s->model_name, qv_strerror(rc));
			return rc;
		}
		if (s->desc.n_inputs != 1 || s->desc.n_outputs != 1 ||
		    s->desc.inputs[0].dtype != QV_TENSOR_FLOAT32 ||
		    s->desc.outputs[0].dtype != QV_TENSOR_FLOAT32) {
			snprintf(err, errlen, "model '%s': %u inputs and %u outputs; quiver-score takes "
				 "models of one float32 input and one float32 output",
				 s->model_name, s->desc.n_inputs, s->desc.n_outputs);
			return -ENOTSUP;
		}
		s->in_dim = s->desc.in_dim;
		s->out_dim = s->desc.out_dim;
		if (s->batch > s->desc.max_batch)
			s->batch = s->desc.max_batch;
		return 0;
	}
	struct qv_model_opts o = { .max_batch = s->batch };
	struct qv_model_info info;
	int rc = qv_model_load_file(s->model_path, &o, &s->model, err, errlen);
	if (rc < 0)
		return rc;
	qv_model_get_info(s->model, &info);
	for (uint32_t k = 0; k < 2; k++) {
		uint32_t n = k ? info.n_outputs : info.n_inputs;
		for (uint32_t i = 0; i < n; i++) {
			struct qv_tensor_info t;
			if (qv_model_tensor(s->model, (int)k, i, &t) == 0 && t.dtype != QV_DT_F32) {
				snprintf(err, errlen, "%s: %s '%s' is %s; quiver-score takes float32 "
					 "tensors only", s->model_path, k ? "output" : "input", t.name,
					 qv_dtype_name(t.dtype));
				return -ENOTSUP;
			}
		}
	}
	s->in_dim = info.in_dim;
	s->out_dim = info.out_dim;
	if (s->batch > info.max_batch)
		s->batch = info.max_batch;
	return 0;
}

static int parse_args(int argc, char **argv, struct score *s)
{
	enum { O_SHM = 256, O_MODEL, O_INPUT, O_OUTPUT, O_THREADS, O_BATCH, O_CHUNK, O_INFLIGHT,
	       O_BAD, O_HEADER, O_PROGRESS, O_NO_PROGRESS, O_JSON, O_HELP };
	static const struct option opts[] = {
		{ "shm", required_argument, NULL, O_SHM },
		{ "model", required_argument, NULL, O_MODEL },
		{ "input", required_argument, NULL, O_INPUT },
		{ "output", required_argument, NULL, O_OUTPUT },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "chunk", required_argument, NULL, O_CHUNK },
		{ "inflight", required_argument, NULL, O_INFLIGHT },
		{ "on-bad-row", required_argument, NULL, O_BAD },
		{ "csv-header", no_argument, NULL, O_HEADER },
		{ "progress", no_argument, NULL, O_PROGRESS },
		{ "no-progress", no_argument, NULL, O_NO_PROGRESS },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 },
	};
	int o;

	s->progress = -1;
	s->batch = 256;
	s->inflight = 16;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (o) {
		case O_SHM: s->shm_sock = optarg; break;
		case O_MODEL: s->model_name = optarg; break;
		case O_INPUT: s->in_path = optarg; break;
		case O_OUTPUT: s->out_path = optarg; break;
		case O_THREADS:
			if (parse_u32(optarg, 1, MAX_THREADS, &s->threads) < 0)
				return usage_err("--threads must be 1..%d", MAX_THREADS);
			break;
		case O_BATCH:
			if (parse_u32(optarg, 1, 32768, &s->batch) < 0)
				return usage_err("--batch must be 1..32768");
			break;
		case O_CHUNK:
			if (parse_u32(optarg, 1, 1u << 20, &s->chunk_rows) < 0)
				return usage_err("--chunk must be 1..1048576");
			break;
		case O_INFLIGHT:
			if (parse_u32(optarg, 1, 1024, &s->inflight) < 0)
				return usage_err("--inflight must be 1..1024");
			break;
		case O_BAD:
			if (strcmp(optarg, "stop") == 0)
				s->skip_bad = 0;
			else if (strcmp(optarg, "skip") == 0)
				s->skip_bad = 1;
			else
				return usage_err("--on-bad-row must be stop or skip, not '%s'", optarg);
			break;
		case O_HEADER: s->csv_header = 1; break;
		case O_PROGRESS: s->progress = 1; break;
		case O_NO_PROGRESS: s->progress = 0; break;
		case O_JSON: s->json = 1; break;
		case O_HELP: usage(stdout); exit(0);
		case ':': return usage_err("%s needs a value", argv[optind - 1]);
		default: return usage_err("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		s->model_path = argv[optind++];
	if (optind < argc)
		return usage_err("unexpected argument '%s'", argv[optind]);
	if (!s->shm_sock == !s->model_path)
		return usage_err("give MODEL (in process) or --shm SOCKET --model NAME, exactly one");
	if (s->shm_sock && !s->model_name)
		return usage_err("--shm needs --model NAME");
	if (!s->shm_sock && s->model_name)
		return usage_err("--model NAME goes with --shm; in process, MODEL is a file");
	if (!s->in_path || !s->out_path)
		return usage_err("--input and --output are required");
	if (fmt_of(s->in_path, &s->in_fmt) < 0)
		return usage_err("--input %s: not .npy or .csv", s->in_path);
	if (fmt_of(s->out_path, &s->out_fmt) < 0)
		return usage_err("--output %s: not .npy or .csv", s->out_path);
	if (s->csv_header && s->in_fmt != FMT_CSV)
		return usage_err("--csv-header needs a .csv input");
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * Noise-robust figures: each thread's median over its full-batch model runs
 * of rows / run time (chunks with --shm), summed over threads, as
 * quiver-bench takes the median over timed chunks; and the share of the
 * scorers' time spent waiting for input (what the pipeline costs them).
 */
static void self_measure(struct scorer *ws, uint32_t n, double *ret_median_sum,
			 double *ret_wait_share)
{
	double sum = 0, wait = 0, busy = 0;

	for (uint32_t i = 0; i < n; i++) {
		wait += ws[i].wait_s;
		busy += ws[i].busy_s;
		if (!ws[i].n_rates)
			continue;
		qsort(ws[i].rates, ws[i].n_rates, sizeof(double), cmp_double);
		sum += ws[i].rates[ws[i].n_rates / 2];
	}
	*ret_median_sum = sum;
	*ret_wait_share = wait + busy > 0 ? wait / (wait + busy) : 0;
}

static void allowed_cores(struct score *s)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return;
	for (int i = 0; i < CPU_SETSIZE && s->ncores < MAX_THREADS; i++)
		if (CPU_ISSET(i, &set))
			s->cores[s->ncores++] = i;
}

int main(int argc, char **argv)
{
	static struct score sc;
	struct score *s = &sc;
	struct qv_npy_stream h = { 0 };
	struct scorer *ws = NULL;
	struct chunk *chunks = NULL;
	pthread_t *tids = NULL, wt;
	char err[512];
	struct stat st;
	int rc, in_fd = -1, ret = 1;
	uint32_t started = 0;

	rc = parse_args(argc, argv, s);
	if (rc)
		return rc;
	signal(SIGPIPE, SIG_IGN);
	if (s->progress < 0)
		s->progress = isatty(2);
	allowed_cores(s);
	if (!s->threads)
		s->threads = s->shm_sock ? 1 : (s->ncores ? s->ncores : 1);

	in_fd = open(s->in_path, O_RDONLY | O_CLOEXEC);
	if (in_fd < 0) {
		fprintf(stderr, "quiver-score: %s: %s\n", s->in_path, strerror(errno));
		return 1;
	}
	(void)posix_fadvise(in_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if (fstat(in_fd, &st) == 0 && S_ISREG(st.st_mode))
		s->total_bytes = (uint64_t)st.st_size;
	if (s->in_fmt == FMT_NPY && qv_npy_stream_open(in_fd, s->in_path, &h, err, sizeof(err)) < 0) {
		fprintf(stderr, "quiver-score: %s\n", err);
		goto out;
	}
	if (setup_model(s, err, sizeof(err)) < 0) {
		fprintf(stderr, "quiver-score: %s\n", err);
		goto out;
	}
	if (s->in_fmt == FMT_NPY && h.width != s->in_dim) {
		fprintf(stderr, "quiver-score: %s: rows of %" PRIu64 " values, the model takes %u\n",
			s->in_path, h.width, s->in_dim);
		goto out;
	}
	if (!s->chunk_rows)
		s->chunk_rows = 16 * s->batch;
	rc = open_output(s);
	if (rc < 0) {
		fprintf(stderr, "quiver-score: %s: %s\n", s->out_path, strerror(-rc));
		goto out;
	}

	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv_free, NULL);
	pthread_cond_init(&s->cv_work, NULL);
	pthread_cond_init(&s->cv_done, NULL);
	/*
	 * Pool depth: at least two chunks a scorer plus two (one being read, one
	 * being written), and as many more as ~64 MiB hold, up to sixteen a
	 * scorer: every handover needs a thread woken, and on a busy machine a
	 * wake-up can take milliseconds, so a deeper pool keeps the scorers fed
	 * through them (quiver-score --json reports how long they waited).
	 */
	size_t per_chunk = (size_t)s->chunk_rows * (s->in_dim + s->out_dim) * sizeof(float) +
			   (s->in_fmt == FMT_CSV ? READ_BLOCK : 0);
	size_t want = ((size_t)64 << 20) / per_chunk;
	s->n_chunks = 2 * s->threads + 2;
	if (want > s->n_chunks)
		s->n_chunks = want < 16 * s->threads + 4 ? (uint32_t)want : 16 * s->threads + 4;
	chunks = calloc(s->n_chunks, sizeof(*chunks));
	s->done = calloc(s->n_chunks, sizeof(*s->done));
	ws = calloc(s->threads, sizeof(*ws));
	tids = calloc(s->threads, sizeof(*tids));
	if (!chunks || !s->done || !ws || !tids) {
		fprintf(stderr, "quiver-score: out of memory\n");
		goto out_close;
	}
	for (uint32_t i = 0; i < s->n_chunks; i++) {
		struct chunk *c = &chunks[i];
		c->in = malloc((size_t)s->chunk_rows * s->in_dim * sizeof(float));
		c->out = malloc((size_t)s->chunk_rows * s->out_dim * sizeof(float));
		if (s->in_fmt == FMT_CSV)
			c->text_buf = malloc(READ_BLOCK);
		if (!c->in || !c->out || (s->in_fmt == FMT_CSV && !c->text_buf)) {
			fprintf(stderr, "quiver-score: out of memory for %u chunks of %u rows\n",
				s->n_chunks, s->chunk_rows);
			goto out_close;
		}
		c->next = s->free_list;
		s->free_list = c;
	}
	for (uint32_t i = 0; i < s->threads; i++) {
		ws[i].s = s;
		ws[i].idx = i;
		if (s->shm_sock) {
			struct qv_connect_opts co = {
				.client_name = "quiver-score",
				.slots = s->inflight,
				.slot_in_bytes = s->batch * s->in_dim * 4,
				.slot_out_bytes = s->batch * s->out_dim * 4,
			};
			struct qv_model_desc d;
			rc = qv_connect(s->shm_sock, &co, &ws[i].cl);
			if (rc == 0)
				rc = qv_model_lookup(ws[i].cl, s->model_name, &d);
			if (rc < 0) {
				fprintf(stderr, "quiver-score: %s: client %u: %s\n", s->shm_sock, i,
					qv_strerror(rc));
				goto out_close;
			}
		}
	}
	s->t0 = now_s();
	if (pthread_create(&wt, NULL, writer_main, s) != 0) {
		fprintf(stderr, "quiver-score: cannot start the writer\n");
		goto out_close;
	}
	for (; started < s->threads; started++)
		if (pthread_create(&tids[started], NULL, scorer_thread, &ws[started]) != 0) {
			fail_run(s, "cannot start scoring thread %u", started);
			break;
		}
	if (s->in_fmt == FMT_NPY)
		read_npy(s, in_fd, &h);
	else
		read_csv(s, in_fd);
	pthread_join(wt, NULL);
	/* The writer is done (all written, or a failure): let the scorers go. */
	pthread_mutex_lock(&s->mu);
	s->abort = 1;
	pthread_cond_broadcast(&s->cv_work);
	pthread_mutex_unlock(&s->mu);
	for (uint32_t i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	double secs = now_s() - s->t0;
	rc = close_output(s);
	s->out_fd = -1;
	if (rc < 0 && !s->failed) {
		s->failed = 1;
		snprintf(s->fail_msg, sizeof(s->fail_msg), "%s: %s", s->out_path, strerror(-rc));
	}
	double rate = secs > 0 ? (double)s->rows_out / secs : 0;
	uint32_t ver = atomic_load_explicit(&s->version_seen, memory_order_relaxed);
	if (s->failed)
		fprintf(stderr, "quiver-score: %s%s\n", s->stopped_bad ? "" : "error: ", s->fail_msg);
	fprintf(stderr, "quiver-score: %" PRIu64 " rows scored in %.3f s (%.0f rows/s), %" PRIu64
		" bad row%s%s, %u thread%s, batch %u, %s\n", s->rows_out, secs, rate, s->bad_rows,
		s->bad_rows == 1 ? "" : "s", s->skip_bad && s->bad_rows ? " skipped" : "",
		s->threads, s->threads == 1 ? "" : "s", s->batch,
		s->shm_sock ? "through quiverd" : "in process");
	if (s->shm_sock && ver)
		fprintf(stderr, "quiver-score: answered by %s version %u\n", s->model_name, ver);
	double med, wait_share;
	self_measure(ws, started, &med, &wait_share);
	if (s->json)
		printf("{\"rows\": %" PRIu64 ", \"seconds\": %.6f, \"rows_per_s\": %.1f, "
		       "\"run_median_rows_per_s\": %.1f, \"scorer_wait_share\": %.4f, "
		       "\"bad_rows\": %" PRIu64 ", \"threads\": %u, \"batch\": %u, \"path\": \"%s\", "
		       "\"version\": %u, \"ok\": %s}\n", s->rows_out, secs, rate, med, wait_share,
		       s->bad_rows, s->threads, s->batch, s->shm_sock ? "shm" : "inproc", ver,
		       s->failed ? "false" : "true");
	ret = s->stopped_bad ? 3 : s->failed ? 1 : 0;
out_close:
	if (s->out_fd >= 0 && s->out_fmt == FMT_NPY)
		close(s->out_fd);
	else if (s->out_fd >= 0 && s->out_f)
		fclose(s->out_f);
	for (uint32_t i = 0; ws && i < s->threads; i++) {
		if (ws[i].ctx)
			qv_exec_ctx_free(ws[i].ctx);
		if (ws[i].cl)
			qv_close(ws[i].cl);
		free(ws[i].rates);
	}
	for (uint32_t i = 0; chunks && i < s->n_chunks; i++) {
		free(chunks[i].in);
		free(chunks[i].out);
		free(chunks[i].text_buf);
	}
	free(chunks);
	free(s->done);
	free(ws);
	free(tids);
	if (s->model)
		qv_model_free(s->model);
out:
	close(in_fd);
	return ret;
}
