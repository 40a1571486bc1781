/* SPDX-License-Identifier: Apache-2.0 */
/*
 * predlog.c - the prediction log's ring (consumer side) and its logger
 * thread: drains the workers' rings, formats JSON lines, writes and
 * rotates the files. See predlog.h for the whole picture.
 *
 * Rotated files are compressed with zlib's gz* interface (Debian's
 * zlib1g): the format every log shipper and `gzip -d` read, and nothing
 * worth writing by hand. JSON lines are formatted here with snprintf
 * rather than through cJSON: a line is a fixed set of keys plus two
 * arrays of floats, and building a cJSON tree per record would allocate
 * per value for nothing.
 */
#include "predlog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"
#include "numa_mem.h"
#include "quiver.h"
#include "routes.h"
#include "worker.h"

_Static_assert(offsetof(struct qv_version, log_thr) + sizeof(uint64_t) <= 64,
	       "log_thr shares the version's first line with slot and max_batch");

/* ---- the ring ------------------------------------------------------------ */

void qv_plog_ring_init(struct qv_plog_ring *r, uint64_t cap, uint64_t seed, int node)
{
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	atomic_init(&r->pushed, 0);
	atomic_init(&r->dropped, 0);
	r->tail_cache = 0;
	r->head_cache = 0;
	r->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
	r->cap = cap;
	r->mask = cap - 1;
	r->node = node;
}

static void copy_out(const struct qv_plog_ring *r, uint64_t pos, void *dst, size_t n)
{
	uint64_t at = pos & r->mask, first = r->cap - at;

	if (n <= first) {
		memcpy(dst, r->data + at, n);
	} else {
		memcpy(dst, r->data + at, first);
		memcpy((uint8_t *)dst + first, r->data, n - first);
	}
}

int qv_plog_ring_pop(struct qv_plog_ring *r, struct qv_plog_rec *ret_hdr, void *payload,
		     size_t payload_cap)
{
	/* Relaxed: only this thread stores tail. */
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	size_t pay;

	if (r->head_cache == tail) {
		/* Acquire pairs with the producer's release store of head: the
		 * record's bytes are read only after the index covering them. */
		r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
		if (r->head_cache == tail)
			return 0;
	}
	copy_out(r, tail, ret_hdr, sizeof(*ret_hdr));
	pay = (size_t)ret_hdr->in_bytes + ret_hdr->out_bytes;
	if (pay > payload_cap)
		pay = payload_cap; /* cannot happen: a record is at most cap / 2 */
	copy_out(r, tail + sizeof(*ret_hdr), payload, pay);
	/* Release pairs with the producer's acquire load of tail: our reads of
	 * this record are done before it may write over them. */
	atomic_store_explicit(&r->tail, tail + ret_hdr->len, memory_order_release);
	return 1;
}

uint64_t qv_plog_threshold(double p)
{
	if (!(p > 0.0))
		return 0;
	if (p >= 1.0)
		return QV_PLOG_THR_ONE;
	return (uint64_t)ldexp(p, 63);
}

/* ---- the logger ------------------------------------------------------------ */

struct plog_model {
	/* control side, under pl->mu */
	int set;
	char name[QV_REPO_NAME_MAX];
	double sample;
	char *dir;
	uint64_t max_bytes;
	uint32_t keep;
	uint64_t gen;               /* bumped when dir, max_bytes or keep change */

	/* the logger thread's own */
	uint64_t seen_gen;
	char *ldir;                 /* the directory files are written in */
	char lname[QV_REPO_NAME_MAX];
	uint64_t lmax;
	uint32_t lkeep;
	int fd;                     /* -1: closed */
	uint64_t bytes;             /* of the current file, buffered bytes included */
	char *buf;                  /* pending output */
	size_t blen, bcap;
	uint64_t retry_ns;          /* after a failed open: not before */
	int failing;                /* the last open or write failed (logged once) */
};

struct qv_predlog {
	struct qv_worker **workers;
	uint32_t nworkers;
	struct qv_plog_ring **rings;
	uint64_t ring_bytes;
	double ns_per_cycle;
	uint64_t tsc0;
	int64_t real0_ns;
	pthread_t thread;
	int started;
	_Atomic int stop;
	pthread_mutex_t mu;
	struct plog_model *models;  /* [QV_MAX_ROUTES] */
	uint8_t *payload;           /* [ring_bytes / 2] */
	char *line;
	size_t line_cap;
	_Atomic uint64_t written, write_errors, rotations;
};

static const char *const status_names[QV_STATUS_COUNT] = {
	"OK", "UNKNOWN_MODEL", "BAD_SHAPE", "BAD_REQUEST",
	"DEADLINE_EXCEEDED", "OVERLOADED", "UNAVAILABLE", "INTERNAL",
};

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/*
 * Pairs the TSC with the wall clock: the clock read between two TSC reads,
 * the tightest of a few tries, so that a preemption between the reads
 * cannot shift every timestamp by its length.
 */
static void anchor(struct qv_predlog *pl)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 5; i++) {
		uint64_t t1 = qv_tsc();
		int64_t real = realtime_ns();
		uint64_t t2 = qv_tsc();

		if (t2 - t1 < best) {
			best = t2 - t1;
			pl->tsc0 = t1 + (t2 - t1) / 2;
			pl->real0_ns = real;
		}
	}
}

/* Single writer (the logger thread): relaxed load and store. */
static void tot_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

int qv_predlog_create(struct qv_worker **workers, uint32_t nworkers, uint64_t ring_bytes,
		      uint64_t tsc_hz, struct qv_predlog **ret)
{
	struct qv_predlog *pl;

	if (ring_bytes < 4096 || (ring_bytes & (ring_bytes - 1)))
		return -EINVAL;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return -ENOMEM;
	pl->workers = workers;
	pl->nworkers = nworkers;
	pl->ring_bytes = ring_bytes;
	pl->ns_per_cycle = 1e9 / (double)(tsc_hz ? tsc_hz : 1000000000ull);
	pl->models = calloc(QV_MAX_ROUTES, sizeof(*pl->models));
	pl->rings = calloc(nworkers ? nworkers : 1, sizeof(*pl->rings));
	pl->payload = malloc(ring_bytes / 2);
	if (!pl->models || !pl->rings || !pl->payload)
		goto nomem;
	pthread_mutex_init(&pl->mu, NULL);
	for (uint32_t i = 0; i < QV_MAX_ROUTES; i++)
		pl->models[i].fd = -1;
	for (uint32_t i = 0; i < nworkers; i++) {
		struct qv_plog_ring *r = qv_numa_alloc(qv_plog_ring_size(ring_bytes),
						       workers[i]->node);
		if (!r)
			goto nomem;
		qv_plog_ring_init(r, ring_bytes,
				  qv_splitmix64(qv_tsc() ^ ((uint64_t)i << 40) ^ 0x51u) | 1u,
				  workers[i]->node);
		pl->rings[i] = r;
		workers[i]->plog = r;
	}
	anchor(pl);
	*ret = pl;
	return 0;
nomem:
	for (uint32_t i = 0; pl->rings && i < nworkers; i++) {
		if (pl->rings[i]) {
			workers[i]->plog = NULL;
			qv_numa_free(pl->rings[i], qv_plog_ring_size(ring_bytes), pl->rings[i]->node);
		}
	}
	free(pl->rings);
	free(pl->models);
	free(pl->payload);
	free(pl);
	return -ENOMEM;
}

int qv_predlog_set(struct qv_predlog *pl, uint32_t handle, const char *name,
		   const struct qv_plog_cfg *cfg, uint64_t *ret_thr, char *err, size_t err_len)
{
	struct plog_model *m;
	char *dir = NULL;

	if (handle >= QV_MAX_ROUTES) {
		snprintf(err, err_len, "handle %u out of range", handle);
		return -EINVAL;
	}
	if (!(cfg->sample >= 0.0 && cfg->sample <= 1.0)) {
		snprintf(err, err_len, "sample must be a number in 0..1");
		return -EINVAL;
	}
	if (cfg->dir && (!cfg->dir[0] || strlen(cfg->dir) > 3800)) {
		snprintf(err, err_len, "dir must be a directory name (at most 3800 bytes)");
		return -EINVAL;
	}
	if (cfg->dir) {
		dir = strdup(cfg->dir);
		if (!dir) {
			snprintf(err, err_len, "out of memory");
			return -ENOMEM;
		}
	}
	pthread_mutex_lock(&pl->mu);
	m = &pl->models[handle];
	if (cfg->sample > 0 && !dir && !m->dir) {
		pthread_mutex_unlock(&pl->mu);
		snprintf(err, err_len, "sample %g needs a directory (\"dir\")", cfg->sample);
		return -EINVAL;
	}
	if (!m->set) {
		m->set = 1;
		m->max_bytes = QV_PLOG_DEFAULT_MAX_BYTES;
		m->keep = QV_PLOG_DEFAULT_KEEP;
	}
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->sample = cfg->sample;
	if (dir && (!m->dir || strcmp(dir, m->dir) != 0)) {
		free(m->dir);
		m->dir = dir;
		dir = NULL;
		m->gen++;
	}
	if (cfg->max_bytes && cfg->max_bytes != m->max_bytes) {
		m->max_bytes = cfg->max_bytes;
		m->gen++;
	}
	if (cfg->keep && cfg->keep != m->keep) {
		m->keep = cfg->keep;
		m->gen++;
	}
	pthread_mutex_unlock(&pl->mu);
	free(dir);
	*ret_thr = qv_plog_threshold(cfg->sample);
	return 0;
}

uint64_t qv_predlog_thr(struct qv_predlog *pl, uint32_t handle)
{
	uint64_t thr = 0;

	if (!pl || handle >= QV_MAX_ROUTES)
		return 0;
	pthread_mutex_lock(&pl->mu);
	if (pl->models[handle].set)
		thr = qv_plog_threshold(pl->models[handle].sample);
	pthread_mutex_unlock(&pl->mu);
	return thr;
}

int qv_predlog_get(struct qv_predlog *pl, uint32_t handle, double *ret_sample, char *ret_dir,
		   size_t dir_len, uint64_t *ret_max_bytes, uint32_t *ret_keep)
{
	const struct plog_model *m;
	int r = -ENOENT;

	if (!pl || handle >= QV_MAX_ROUTES)
		return -ENOENT;
	pthread_mutex_lock(&pl->mu);
	m = &pl->models[handle];
	if (m->set) {
		*ret_sample = m->sample;
		snprintf(ret_dir, dir_len, "%s", m->dir ? m->dir : "");
		*ret_max_bytes = m->max_bytes;
		*ret_keep = m->keep;
		r = 0;
	}
	pthread_mutex_unlock(&pl->mu);
	return r;
}

void qv_predlog_totals(struct qv_predlog *pl, struct qv_plog_totals *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!pl)
		return;
	for (uint32_t i = 0; i < pl->nworkers; i++) {
		ret->pushed += atomic_load_explicit(&pl->rings[i]->pushed, memory_order_relaxed);
		ret->dropped += atomic_load_explicit(&pl->rings[i]->dropped, memory_order_relaxed);
	}
	ret->written = atomic_load_explicit(&pl->written, memory_order_relaxed);
	ret->write_errors = atomic_load_explicit(&pl->write_errors, memory_order_relaxed);
	ret->rotations = atomic_load_explicit(&pl->rotations, memory_order_relaxed);
}

/* ---- files (logger thread) ------------------------------------------------ */

static void model_fail(struct plog_model *m, const char *what, int err)
{
	if (!m->failing)
		qv_log(QV_LOG_ERROR, "predlog %s: %s %s: %s (records are counted in "
		       "quiver_predlog_write_errors_total until it works)",
		       m->lname, what, m->ldir ? m->ldir : "?", strerror(err));
	m->failing = 1;
}

static void model_close(struct plog_model *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

static int model_open(struct plog_model *m)
{
	char path[4200];
	struct stat st;
	int64_t now = realtime_ns();

	if (m->fd >= 0)
		return 0;
	if ((uint64_t)now < m->retry_ns)
		return -EAGAIN;
	/* One level is made; a missing parent is the operator's to fix. */
	if (mkdir(m->ldir, 0755) < 0 && errno != EEXIST) {
		model_fail(m, "cannot make directory", errno);
		m->retry_ns = (uint64_t)now + 1000000000ull;
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/%s.jsonl", m->ldir, m->lname);
	m->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (m->fd < 0 || fstat(m->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = m->fd < 0 ? errno : EINVAL;
		model_close(m);
		model_fail(m, "cannot open a log file in", e);
		m->retry_ns = (uint64_t)now + 1000000000ull;
		return -e;
	}
	m->bytes = (uint64_t)st.st_size;
	if (m->failing)
		qv_log(QV_LOG_INFO, "predlog %s: writing to %s again", m->lname, m->ldir);
	m->failing = 0;
	return 0;
}

/* Writes the pending lines; on failure they are lost and counted. */
static void model_flush(struct qv_predlog *pl, struct plog_model *m)
{
	size_t off = 0;

	if (!m->blen)
		return;
	if (m->fd < 0 && model_open(m) < 0)
		goto lost;
	while (off < m->blen) {
		ssize_t w = write(m->fd, m->buf + off, m->blen - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			model_fail(m, "cannot write in", w < 0 ? errno : EIO);
			model_close(m);
			goto lost;
		}
		off += (size_t)w;
	}
	m->blen = 0;
	return;
lost:
	/* Count the lines lost: one newline each. */
	for (size_t i = off; i < m->blen; i++)
		if (m->buf[i] == '\n')
			tot_add(&pl->write_errors, 1);
	m->blen = 0;
}

/* "NAME." + 20261205T205445.123456789Z + ".jsonl.gz" */
#define TS_LEN 26u

static int rotated_name(const char *file, const char *name)
{
	size_t nl = strlen(name), fl = strlen(file);
	const char *ts = file + nl + 1;

	if (fl != nl + 1 + TS_LEN + strlen(".jsonl.gz") || strncmp(file, name, nl) != 0 ||
	    file[nl] != '.' || strcmp(file + nl + 1 + TS_LEN, ".jsonl.gz") != 0)
		return 0;
	for (unsigned i = 0; i < TS_LEN; i++) {
		char c = ts[i];
		int ok = i == 8 ? c == 'T' : i == 15 ? c == '.' : i == 25 ? c == 'Z' :
			 (c >= '0' && c <= '9');
		if (!ok)
			return 0;
	}
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Deletes the oldest rotated files of m beyond its keep. */
static void prune(struct plog_model *m)
{
	DIR *dir = opendir(m->ldir);
	char **names = NULL, path[4200];
	size_t n = 0, cap = 0;
	struct dirent *e;

	if (!dir)
		return;
	while ((e = readdir(dir)) != NULL) {
		if (!rotated_name(e->d_name, m->lname))
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap ? cap * 2 : 16) * sizeof(*names));
			if (!nn)
				break;
			names = nn;
			cap = cap ? cap * 2 : 16;
		}
		names[n] = strdup(e->d_name);
		if (names[n])
			n++;
	}
	closedir(dir);
	/* The timestamp sorts as text: oldest first. */
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (i + m->lkeep < n) {
			snprintf(path, sizeof(path), "%s/%s", m->ldir, names[i]);
			if (unlink(path) < 0)
				qv_log(QV_LOG_WARN, "predlog %s: cannot remove %s: %s", m->lname, path,
				       strerror(errno));
		}
		free(names[i]);
	}
	free(names);
}

/* Compresses src into dst (through dst.tmp, renamed when complete). */
static int gzip_file(const char *src, const char *dst)
{
	char tmp[4400], buf[65536];
	int in = open(src, O_RDONLY | O_CLOEXEC), r = 0;
	gzFile gz;
	ssize_t n;

	if (in < 0)
		return -errno;
	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	gz = gzopen(tmp, "wb6");
	if (!gz) {
		r = errno ? -errno : -ENOMEM;
		close(in);
		return r;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (gzwrite(gz, buf, (unsigned)n) != (int)n) {
			r = -EIO;
			break;
		}
	}
	if (n < 0)
		r = -errno;
	close(in);
	if (gzclose(gz) != Z_OK && r == 0)
		r = -EIO;
	if (r == 0 && rename(tmp, dst) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/* Closes MODEL.jsonl, compresses it into MODEL.TIMESTAMP.jsonl.gz, prunes. */
static void rotate(struct qv_predlog *pl, struct plog_model *m)
{
	char src[4200], dst[4300], ts[48];
	struct timespec now;
	struct tm tm;
	size_t n;
	int r;

	model_flush(pl, m);
	model_close(m);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y%m%dT%H%M%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%09ldZ", now.tv_nsec);
	snprintf(src, sizeof(src), "%s/%s.jsonl", m->ldir, m->lname);
	snprintf(dst, sizeof(dst), "%s/%s.%s.jsonl.gz", m->ldir, m->lname, ts);
	r = gzip_file(src, dst);
	if (r == 0 && unlink(src) < 0)
		r = -errno;
	if (r < 0) {
		/* The file stays and grows; the next rotation tries again. */
		qv_log(QV_LOG_ERROR, "predlog %s: rotating %s: %s", m->lname, src, strerror(-r));
		m->bytes = 0;
		return;
	}
	tot_add(&pl->rotations, 1);
	prune(m);
}

/* Takes the control side's settings when they changed. */
static void model_sync(struct qv_predlog *pl, struct plog_model *m)
{
	pthread_mutex_lock(&pl->mu);
	if (m->seen_gen != m->gen || !m->ldir) {
		char *d = m->dir ? strdup(m->dir) : NULL;
		if (d || !m->dir) {
			model_flush(pl, m);
			model_close(m);
			free(m->ldir);
			m->ldir = d;
			m->lmax = m->max_bytes;
			m->lkeep = m->keep;
			m->seen_gen = m->gen;
			m->failing = 0;
			m->retry_ns = 0;
		}
	}
	snprintf(m->lname, sizeof(m->lname), "%s", m->name);
	pthread_mutex_unlock(&pl->mu);
}

/* ---- formatting ------------------------------------------------------------ */

struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
	if (b->oom || b->len + more <= b->cap)
		return;
	size_t nc = b->cap ? b->cap : 4096;
	while (nc < b->len + more)
		nc *= 2;
	char *np = realloc(b->p, nc);
	if (!np) {
		b->oom = 1;
		return;
	}
	b->p = np;
	b->cap = nc;
}

__attribute__((format(printf, 2, 3)))
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	sb_reserve(b, 256);
	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		sb_reserve(b, (size_t)n + 1);
		if (b->oom)
			return;
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* float32 words as rows of numbers; %.9g reads back to the same float. */
static void sb_rows(struct sbuf *b, const uint8_t *p, uint32_t bytes, uint32_t rows)
{
	uint32_t words = bytes / 4, per = rows && words % rows == 0 ? words / rows : words;

	/* %.9g of a float is at most 15 characters; a separator each, 3 a row, the brackets. */
	sb_reserve(b, (size_t)words * 24 + 4ull * rows + 16);
	if (b->oom)
		return;
	b->p[b->len++] = '[';
	for (uint32_t i = 0; i < words; i++) {
		float f;

		memcpy(&f, p + 4ull * i, 4);
		if (per && i % per == 0) {
			if (i)
				b->p[b->len++] = ']', b->p[b->len++] = ',';
			b->p[b->len++] = '[';
		} else if (i) {
			b->p[b->len++] = ',';
		}
		if (isfinite(f)) {
			int n = snprintf(b->p + b->len, b->cap - b->len, "%.9g", (double)f);
			if (n < 0 || (size_t)n >= b->cap - b->len) {
				b->oom = 1; /* cannot happen with the reservation above */
				return;
			}
			b->len += (size_t)n;
		} else {
			memcpy(b->p + b->len, "null", 4);
			b->len += 4;
		}
	}
	if (words && per)
		b->p[b->len++] = ']';
	b->p[b->len++] = ']';
}

static int64_t wall_ns(const struct qv_predlog *pl, uint64_t tsc)
{
	return pl->real0_ns + (int64_t)((double)(int64_t)(tsc - pl->tsc0) * pl->ns_per_cycle);
}

/* One JSON line of the record, without its model name check. */
static void format_line(const struct qv_predlog *pl, struct sbuf *b, const char *model,
			const struct qv_plog_rec *h, const uint8_t *payload)
{
	uint64_t from = h->submit_tsc ? h->submit_tsc : h->start_tsc;
	const char *sep = "";

	sb_printf(b, "{\"model\":\"%s\",\"version\":%u,\"request_id\":%llu,\"routing_key\":%llu,"
		  "\"status\":\"%s\",\"flags\":[", model, h->version,
		  (unsigned long long)h->request_id, (unsigned long long)h->routing_key,
		  h->status < QV_STATUS_COUNT ? status_names[h->status] : "INTERNAL");
	if (h->flags & QV_FLAG_CANARY) {
		sb_printf(b, "\"canary\"");
		sep = ",";
	}
	if (h->flags & QV_PLOG_SHADOW) {
		sb_printf(b, "%s\"shadow\"", sep);
		sep = ",";
	}
	if (h->flags & QV_FLAG_FALLBACK)
		sb_printf(b, "%s\"fallback\"", sep);
	sb_printf(b, "],\"submit_ns\":");
	if (h->submit_tsc)
		sb_printf(b, "%lld", (long long)wall_ns(pl, h->submit_tsc));
	else
		sb_printf(b, "null");
	sb_printf(b, ",\"start_ns\":%lld,\"end_ns\":%lld,\"latency_us\":%.9g,\"rows\":%u,\"inputs\":",
		  (long long)wall_ns(pl, h->start_tsc), (long long)wall_ns(pl, h->end_tsc),
		  (double)(int64_t)(h->end_tsc - from) * pl->ns_per_cycle / 1000.0, h->rows);
	sb_rows(b, payload, h->in_bytes, h->rows);
	sb_printf(b, ",\"outputs\":");
	if (h->out_bytes)
		sb_rows(b, payload + h->in_bytes, h->out_bytes, h->rows);
	else
		sb_printf(b, "null");
	sb_printf(b, "}\n");
}

/* Adds one line to m's file (rotating first when it would pass max_bytes). */
static void model_put(struct qv_predlog *pl, struct plog_model *m, const char *line, size_t len)
{
	if (m->fd < 0 && model_open(m) < 0) {
		tot_add(&pl->write_errors, 1);
		return;
	}
	if (m->bytes && m->bytes + len > m->lmax) {
		rotate(pl, m);
		if (model_open(m) < 0) {
			tot_add(&pl->write_errors, 1);
			return;
		}
	}
	if (m->blen + len > m->bcap) {
		model_flush(pl, m);
		if (m->fd < 0) {
			tot_add(&pl->write_errors, 1);
			return;
		}
		if (len > m->bcap) {
			size_t nc = len > 256u * 1024u ? len : 256u * 1024u;
			char *nb = realloc(m->buf, nc);
			if (!nb) {
				tot_add(&pl->write_errors, 1);
				return;
			}
			m->buf = nb;
			m->bcap = nc;
		}
	}
	memcpy(m->buf + m->blen, line, len);
	m->blen += len;
	m->bytes += len;
	tot_add(&pl->written, 1);
}

/* Drains every ring once; returns records taken. */
static uint64_t drain_all(struct qv_predlog *pl)
{
	uint64_t n = 0;
	struct qv_plog_rec h;

	for (uint32_t i = 0; i < pl->nworkers; i++) {
		while (qv_plog_ring_pop(pl->rings[i], &h, pl->payload, pl->ring_bytes / 2)) {
			struct plog_model *m;
			struct sbuf b = { .p = pl->line, .cap = pl->line_cap };

			n++;
			if (h.handle >= QV_MAX_ROUTES) {
				tot_add(&pl->write_errors, 1);
				continue;
			}
			m = &pl->models[h.handle];
			model_sync(pl, m);
			if (!m->ldir) {
				tot_add(&pl->write_errors, 1);
				continue;
			}
			format_line(pl, &b, m->lname, &h, pl->payload);
			pl->line = b.p;
			pl->line_cap = b.cap;
			if (b.oom) {
				tot_add(&pl->write_errors, 1);
				continue;
			}
			model_put(pl, m, b.p, b.len);
		}
	}
	return n;
}

static void flush_all(struct qv_predlog *pl, int close_files)
{
	for (uint32_t i = 0; i < QV_MAX_ROUTES; i++) {
		struct plog_model *m = &pl->models[i];

		if (m->blen)
			model_flush(pl, m);
		if (close_files)
			model_close(m);
	}
}

static void *logger_main(void *arg)
{
	struct qv_predlog *pl = arg;
	struct timespec nap = { .tv_nsec = 2 * 1000 * 1000 };

	/* Acquire pairs with destroy's release store: after it, the workers
	 * are joined and the last drain below sees every record. */
	while (!atomic_load_explicit(&pl->stop, memory_order_acquire)) {
		/* Re-anchor the TSC to wall-clock mapping every second: the
		 * calibrated rate is a little off, and the error must not grow. */
		if ((double)(qv_tsc() - pl->tsc0) * pl->ns_per_cycle > 1e9)
			anchor(pl);
		if (drain_all(pl) == 0) {
			flush_all(pl, 0);
			nanosleep(&nap, NULL);
		}
	}
	drain_all(pl);
	flush_all(pl, 1);
	return NULL;
}

int qv_predlog_start(struct qv_predlog *pl)
{
	int r = pthread_create(&pl->thread, NULL, logger_main, pl);

	if (r)
		return -r;
	pthread_setname_np(pl->thread, "quiverd-predlog");
	pl->started = 1;
	return 0;
}

void qv_predlog_destroy(struct qv_predlog *pl)
{
	if (!pl)
		return;
	if (pl->started) {
		/* Release pairs with the logger's acquire load of stop. */
		atomic_store_explicit(&pl->stop, 1, memory_order_release);
		pthread_join(pl->thread, NULL);
	} else {
		drain_all(pl);
		flush_all(pl, 1);
	}
	for (uint32_t i = 0; i < pl->nworkers; i++)
		qv_numa_free(pl->rings[i], qv_plog_ring_size(pl->ring_bytes), pl->rings[i]->node);
	for (uint32_t i = 0; i < QV_MAX_ROUTES; i++) {
		free(pl->models[i].dir);
		free(pl->models[i].ldir);
		free(pl->models[i].buf);
	}
	pthread_mutex_destroy(&pl->mu);
	free(pl->rings);
	free(pl->models);
	free(pl->payload);
	free(pl->line);
	free(pl);
}
