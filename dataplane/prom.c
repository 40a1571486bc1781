/* SPDX-License-Identifier: Apache-2.0 */
/*
 * prom.c - the Prometheus text exposition of quiverd's counters.
 *
 * Names follow Prometheus' conventions: a quiver_ prefix, counters end in
 * _total, durations are histograms in seconds (_bucket/_sum/_count). The
 * process_* family uses the names every client library exports, so stock
 * dashboards find them. Every family has HELP and TYPE and its samples
 * together, which `promtool check metrics` checks in the tests.
 *
 * Labels: model names are validated at load (repo.c: letters, digits, '.',
 * '_', '-'), so they need no escaping in a label value.
 *
 * Cost: every version's per-worker stats are summed once a scrape (one
 * pass over each worker's slot), then each family is written from the sums.
 */
#include "prom.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "predlog_cmd.h"
#include "quiverd.h"
#include "stats.h"

static const char *const status_upper[QV_STATUS_COUNT] = {
	"OK", "UNKNOWN_MODEL", "BAD_SHAPE", "BAD_REQUEST",
	"DEADLINE_EXCEEDED", "OVERLOADED", "UNAVAILABLE", "INTERNAL",
};

/* What a scrape shows of one loaded version's stats, summed over the
 * workers: the counters and the histograms folded to power-of-two buckets
 * (a full struct qv_vsum per version would be ~9 KiB, most of it the
 * log-linear buckets the text never shows). */
struct pv_sum {
	uint64_t status[QV_STATUS_COUNT];
	uint64_t canary, fallback, shadow, shadow_disagree;
	uint64_t batches, batch_rows, split_batches;
	uint64_t runs[QV_RUN_HIST];
	uint64_t lat_sum, queue_sum, compute_sum;
	uint64_t lat_hist[QV_LOG2_BUCKETS];
	uint64_t queue_hist[QV_LOG2_BUCKETS];
	uint64_t compute_hist[QV_LOG2_BUCKETS];
};

struct pv {
	const struct qv_route *r;
	const struct qv_version *v;
	struct pv_sum s;
};

void qv_prom_le_range(uint64_t tsc_hz, uint32_t *ret_lo, uint32_t *ret_hi)
{
	double hz = tsc_hz ? (double)tsc_hz : 1e9;
	double lo = ceil(log2(hz * 1e-7)), hi = ceil(log2(hz * 10.0));

	if (lo < 1)
		lo = 1;
	if (hi > 62)
		hi = 62;
	if (hi < lo)
		hi = lo;
	*ret_lo = (uint32_t)lo;
	*ret_hi = (uint32_t)hi;
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/*
 * A histogram of power-of-two buckets of cycles (cnt[b]: values in
 * [2^(b-1), 2^b)). The bucket with le = 2^e / hz counts the values below
 * 2^e cycles; a value of exactly 2^e cycles (a fraction of a nanosecond
 * over) lands in the next one.
 */
static void hist(FILE *f, const char *name, const struct pv *p, const uint64_t *cnt,
		 uint64_t sum_cycles, uint64_t hz, uint32_t e_lo, uint32_t e_hi)
{
	uint64_t cum = 0, total = 0;
	uint32_t b = 0;

	for (uint32_t i = 0; i < QV_LOG2_BUCKETS; i++)
		total += cnt[i];
	for (uint32_t e = e_lo; e <= e_hi; e++) {
		for (; b <= e && b < QV_LOG2_BUCKETS; b++)
			cum += cnt[b];
		fprintf(f, "%s_bucket{model=\"%s\",version=\"%u\",le=\"%.9g\"} %llu\n", name,
			p->r->name, p->v->version, ldexp(1.0, (int)e) / (double)hz,
			(unsigned long long)cum);
	}
	fprintf(f, "%s_bucket{model=\"%s\",version=\"%u\",le=\"+Inf\"} %llu\n", name, p->r->name,
		p->v->version, (unsigned long long)total);
	fprintf(f, "%s_sum{model=\"%s\",version=\"%u\"} %.9f\n", name, p->r->name, p->v->version,
		(double)sum_cycles / (double)hz);
	fprintf(f, "%s_count{model=\"%s\",version=\"%u\"} %llu\n", name, p->r->name,
		p->v->version, (unsigned long long)total);
}

/* The log-linear request histogram folded into power-of-two buckets:
 * every log-linear bucket lies inside one octave. */
static void pv_fill(struct pv_sum *p, const struct qv_vsum *s)
{
	memcpy(p->status, s->status, sizeof(p->status));
	p->canary = s->canary;
	p->fallback = s->fallback;
	p->shadow = s->shadow;
	p->shadow_disagree = s->shadow_disagree;
	p->batches = s->batches;
	p->batch_rows = s->batch_rows;
	p->split_batches = s->split_batches;
	memcpy(p->runs, s->runs, sizeof(p->runs));
	p->queue_sum = s->queue_sum;
	p->compute_sum = s->compute_sum;
	memcpy(p->queue_hist, s->queue_hist, sizeof(p->queue_hist));
	memcpy(p->compute_hist, s->compute_hist, sizeof(p->compute_hist));
	memcpy(p->lat_hist, s->req_hist, sizeof(p->lat_hist));
	p->lat_sum = s->req_sum;
}

static void version_families(FILE *f, struct qv_daemon *d, const struct pv *pv, uint32_t n)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} cnts[] = {
		{ "quiver_fallback_total", "Requests answered by this version as a fallback.",
		  offsetof(struct pv_sum, fallback) },
		{ "quiver_canary_total", "Requests answered by this version as the canary.",
		  offsetof(struct pv_sum, canary) },
		{ "quiver_shadow_total", "Requests mirrored to this version as the shadow.",
		  offsetof(struct pv_sum, shadow) },
		{ "quiver_shadow_disagree_total",
		  "Mirrored requests whose shadow output disagreed with the answer given.",
		  offsetof(struct pv_sum, shadow_disagree) },
		{ "quiver_batches_total", "Model runs of more than one request gathered together.",
		  offsetof(struct pv_sum, batches) },
		{ "quiver_batch_rows_total", "Rows in those runs.",
		  offsetof(struct pv_sum, batch_rows) },
		{ "quiver_split_batches_total",
		  "Batches an id out of range split, every member run again alone.",
		  offsetof(struct pv_sum, split_batches) },
	};
	uint64_t hz = d->tsc_hz ? d->tsc_hz : 1000000000ull;
	uint32_t e_lo, e_hi;

	head(f, "quiver_requests_total", "counter",
	     "Requests answered, by model version and status.");
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t st = 0; st < QV_STATUS_COUNT; st++)
			fprintf(f, "quiver_requests_total{model=\"%s\",version=\"%u\",status=\"%s\"} %llu\n",
				pv[i].r->name, pv[i].v->version, status_upper[st],
				(unsigned long long)pv[i].s.status[st]);
	for (size_t c = 0; c < sizeof(cnts) / sizeof(cnts[0]); c++) {
		head(f, cnts[c].name, "counter", cnts[c].help);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t v;
			memcpy(&v, (const char *)&pv[i].s + cnts[c].off, sizeof(v));
			fprintf(f, "%s{model=\"%s\",version=\"%u\"} %llu\n", cnts[c].name,
				pv[i].r->name, pv[i].v->version, (unsigned long long)v);
		}
	}
	head(f, "quiver_model_runs_total", "counter",
	     "Model runs by rows (batch size); the label is the smallest row count of the "
	     "bucket (1, 2-3, 4-7, ...).");
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t b = 0; b < QV_RUN_HIST; b++)
			fprintf(f, "quiver_model_runs_total{model=\"%s\",version=\"%u\",rows=\"%u\"} %llu\n",
				pv[i].r->name, pv[i].v->version, 1u << b,
				(unsigned long long)pv[i].s.runs[b]);

	qv_prom_le_range(hz, &e_lo, &e_hi);
	head(f, "quiver_request_duration_seconds", "histogram",
	     "Request time to the answer, from the client's push into the submission ring "
	     "(shared memory; from the worker's pick-up for UDP and unstamped descriptors): "
	     "ring wait, queueing, batching and the model run.");
	for (uint32_t i = 0; i < n; i++)
		hist(f, "quiver_request_duration_seconds", &pv[i], pv[i].s.lat_hist,
		     pv[i].s.lat_sum, hz, e_lo, e_hi);
	head(f, "quiver_queue_duration_seconds", "histogram",
	     "Part of the request time not spent in the model run that answered it (in the "
	     "submission ring, held for a batch, behind other runs of the turn, routing); "
	     "requests that ran a model only.");
	for (uint32_t i = 0; i < n; i++)
		hist(f, "quiver_queue_duration_seconds", &pv[i], pv[i].s.queue_hist,
		     pv[i].s.queue_sum, hz, e_lo, e_hi);
	head(f, "quiver_compute_duration_seconds", "histogram",
	     "Duration of the model run (the whole batch) that answered the request.");
	for (uint32_t i = 0; i < n; i++)
		hist(f, "quiver_compute_duration_seconds", &pv[i], pv[i].s.compute_hist,
		     pv[i].s.compute_sum, hz, e_lo, e_hi);

	head(f, "quiver_model_version_info", "gauge",
	     "Loaded model versions and the role each plays in its route (primary, canary, "
	     "shadow, fallback, previous, loaded).");
	for (uint32_t i = 0; i < n; i++) {
		const char *role = qv_route_role(pv[i].r, pv[i].v->version);
		fprintf(f, "quiver_model_version_info{model=\"%s\",version=\"%u\",role=\"%s\"} 1\n",
			pv[i].r->name, pv[i].v->version, role ? role : "loaded");
	}
}

static void model_families(FILE *f, const struct qv_daemon *d)
{
	uint32_t ready = qv_daemon_models_ready(d);

	head(f, "quiver_models", "gauge",
	     "Models of the repository by state: ready (a primary serves) or failed to load.");
	fprintf(f, "quiver_models{state=\"ready\"} %u\n", ready);
	fprintf(f, "quiver_models{state=\"failed\"} %u\n", d->reg.n - ready);
	head(f, "quiver_model_ready", "gauge",
	     "1 when the model has a servable primary version, 0 when it failed to load.");
	for (uint32_t i = 0; i < d->reg.n; i++) {
		const struct qv_route *r = &d->reg.routes[i];
		fprintf(f, "quiver_model_ready{model=\"%s\"} %d\n", r->name,
			qv_route_version(r, r->primary) != NULL);
	}
}

static void worker_families(FILE *f, const struct qv_daemon *d)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} cnts[] = {
		{ "quiver_worker_busy_cycles_total",
		  "TSC cycles of poll-loop turns that found work.",
		  offsetof(struct qv_worker_counters, busy_cycles) },
		{ "quiver_worker_idle_cycles_total",
		  "TSC cycles of poll-loop turns that found nothing.",
		  offsetof(struct qv_worker_counters, idle_cycles) },
		{ "quiver_worker_busy_turns_total", "Poll-loop turns that found work.",
		  offsetof(struct qv_worker_counters, busy_turns) },
		{ "quiver_worker_idle_turns_total", "Poll-loop turns that found nothing.",
		  offsetof(struct qv_worker_counters, idle_turns) },
		{ "quiver_worker_heartbeats_total",
		  "Heartbeat rounds of the worker (about one a millisecond while it polls).",
		  offsetof(struct qv_worker_counters, beats) },
		{ "quiver_worker_corrupt_channels_total",
		  "Channels the worker dropped for corrupt ring indices.",
		  offsetof(struct qv_worker_counters, corrupt_channels) },
	};
	double hz = d->tsc_hz ? (double)d->tsc_hz : 1e9;

	/* The worker counts per status only; the total is their sum. */
	head(f, "quiver_worker_requests_total", "counter",
	     "Requests answered by the worker, any status.");
	for (uint32_t i = 0; i < d->nworkers; i++)
		fprintf(f, "quiver_worker_requests_total{worker=\"%u\",core=\"%d\"} %llu\n", i,
			d->workers[i]->core,
			(unsigned long long)qv_worker_requests(d->workers[i]));
	for (size_t c = 0; c < sizeof(cnts) / sizeof(cnts[0]); c++) {
		head(f, cnts[c].name, "counter", cnts[c].help);
		for (uint32_t i = 0; i < d->nworkers; i++) {
			const _Atomic uint64_t *p = (const _Atomic uint64_t *)(const void *)
				((const char *)&d->workers[i]->cnt + cnts[c].off);
			fprintf(f, "%s{worker=\"%u\",core=\"%d\"} %llu\n", cnts[c].name, i,
				d->workers[i]->core, (unsigned long long)qv_cnt_get(p));
		}
	}
	head(f, "quiver_worker_busy_seconds_total", "counter",
	     "Time in poll-loop turns that found work (busy cycles at the calibrated TSC rate).");
	for (uint32_t i = 0; i < d->nworkers; i++)
		fprintf(f, "quiver_worker_busy_seconds_total{worker=\"%u\",core=\"%d\"} %.9f\n", i,
			d->workers[i]->core,
			(double)qv_cnt_get(&d->workers[i]->cnt.busy_cycles) / hz);
	head(f, "quiver_worker_idle_seconds_total", "counter",
	     "Time in poll-loop turns that found nothing.");
	for (uint32_t i = 0; i < d->nworkers; i++)
		fprintf(f, "quiver_worker_idle_seconds_total{worker=\"%u\",core=\"%d\"} %.9f\n", i,
			d->workers[i]->core,
			(double)qv_cnt_get(&d->workers[i]->cnt.idle_cycles) / hz);
	head(f, "quiver_worker_channels", "gauge", "Shared-memory channels the worker polls.");
	for (uint32_t i = 0; i < d->nworkers; i++)
		fprintf(f, "quiver_worker_channels{worker=\"%u\",core=\"%d\"} %u\n", i,
			d->workers[i]->core, d->workers[i]->nchans_ctl);
}

static long count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!dir)
		return -1;
	while ((e = readdir(dir)) != NULL)
		n += e->d_name[0] != '.';
	closedir(dir);
	return n - 1; /* the directory's own descriptor */
}

static void process_families(FILE *f, const struct qv_daemon *d)
{
	unsigned long long size = 0, rss = 0;
	long page = sysconf(_SC_PAGESIZE), fds = count_fds();
	struct rusage ru;
	struct timespec rt;
	FILE *sm = fopen("/proc/self/statm", "re");

	if (sm) {
		if (fscanf(sm, "%llu %llu", &size, &rss) != 2)
			size = rss = 0;
		fclose(sm);
	}
	head(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	fprintf(f, "process_resident_memory_bytes %llu\n", rss * (unsigned long long)page);
	head(f, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
	fprintf(f, "process_virtual_memory_bytes %llu\n", size * (unsigned long long)page);
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		head(f, "process_cpu_seconds_total", "counter",
		     "User and system CPU time spent in seconds (busy-polling workers included).");
		fprintf(f, "process_cpu_seconds_total %.6f\n",
			(double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
			(double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	}
	if (fds >= 0) {
		head(f, "process_open_fds", "gauge", "Number of open file descriptors.");
		fprintf(f, "process_open_fds %ld\n", fds);
	}
	clock_gettime(CLOCK_REALTIME, &rt);
	head(f, "process_start_time_seconds", "gauge",
	     "Start time of the process since the Unix epoch in seconds.");
	fprintf(f, "process_start_time_seconds %.3f\n",
		(double)rt.tv_sec + (double)rt.tv_nsec / 1e9 -
		(double)(qv_now_ns() - d->start_ns) / 1e9);
}

int qv_prom_render(struct qv_daemon *d, char **ret_text, size_t *ret_len)
{
	struct pv *pv;
	struct qv_vsum *scratch;
	uint32_t n = 0, cap = 0;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	for (uint32_t i = 0; i < d->reg.n; i++)
		cap += d->reg.routes[i].nvers;
	pv = calloc(cap ? cap : 1, sizeof(*pv));
	scratch = malloc(sizeof(*scratch));
	if (!pv || !scratch) {
		free(pv);
		free(scratch);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < d->reg.n; i++) {
		const struct qv_route *r = &d->reg.routes[i];
		for (uint32_t k = 0; k < r->nvers && n < cap; k++) {
			pv[n].r = r;
			pv[n].v = r->vers[k];
			qv_reg_version_stats(&d->reg, r->vers[k], scratch);
			pv_fill(&pv[n].s, scratch);
			n++;
		}
	}
	free(scratch);
	f = open_memstream(&text, &len);
	if (!f) {
		free(pv);
		return -ENOMEM;
	}
	version_families(f, d, pv, n);
	model_families(f, d);
	worker_families(f, d);
	head(f, "quiver_channels_open", "gauge", "Shared-memory channels open now.");
	fprintf(f, "quiver_channels_open %u\n", d->channels_open);
	head(f, "quiver_channels_opened_total", "counter",
	     "Shared-memory channels opened since the start.");
	fprintf(f, "quiver_channels_opened_total %llu\n", (unsigned long long)d->channels_total);
	head(f, "quiver_draining", "gauge", "1 while quiverd drains (stopping), else 0.");
	fprintf(f, "quiver_draining %d\n", d->draining ? 1 : 0);
	qv_udp_metrics_write(d, f);
	qv_predlog_prom(d, f);
	process_families(f, d);
	free(pv);
	if (fclose(f) != 0 || !text) {
		free(text);
		return -ENOMEM;
	}
	*ret_text = text;
	if (ret_len)
		*ret_len = len;
	return 0;
}
