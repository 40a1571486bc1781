/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_top.c - `quiverctl top`: a live view of quiverd, refreshed every
 * interval like top(1).
 *
 * Each refresh asks the daemon three read-only questions over the control
 * socket (status, models, stats with "hist":true) and shows what changed
 * since the previous refresh: per model version requests/s, its share of
 * the route's traffic, canary and fallback shares, errors/s, requests per
 * model run, and p50/p99 of the interval (from the difference of the two
 * replies' latency buckets, not since the start); per worker busy %,
 * channels, requests/s and UDP rx/tx per second. The daemon's control
 * thread sums the workers' counters to answer: the workers are not asked
 * anything and do nothing more while top runs.
 *
 * Plain ANSI escapes (alternate screen, cursor home, clear to end of
 * line) rather than ncurses: the view is one table redrawn whole, which
 * needs four escape sequences, and quiverctl stays free of a terminal
 * library. Keys come from a terminal in non-canonical mode: q quits;
 * Ctrl-C (SIGINT) and SIGTERM quit too, restoring the terminal.
 * `--once` prints one plain frame (no escapes) after one interval and
 * exits: for scripts.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ctl.h"

#define TOP_MAX_WORKERS 256
#define TOP_MAX_VERS 1024

struct top_ver {
	char name[64];
	char role[16];
	uint32_t version;
	double req, err, canary, fallback, runs;
	cJSON *hist;               /* [[index, count, mid_ns], ...] owned by the sample's reply */
};

struct top_worker {
	int id, core;
	double chans, req, busy, idle, urx, utx;
	int has_udp;
};

struct top_sample {
	double t;                  /* CLOCK_MONOTONIC seconds */
	double uptime;
	char state[16];
	int loaded, failed;
	double channels;
	uint32_t nw, nv;
	struct top_worker w[TOP_MAX_WORKERS];
	struct top_ver v[TOP_MAX_VERS];
	cJSON *stats;              /* keeps the hist arrays alive */
};

static volatile sig_atomic_t top_quit;

static void on_signal(int sig)
{
	(void)sig;
	top_quit = 1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double num(const cJSON *o, const char *k, double def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static const char *str(const cJSON *o, const char *k, const char *def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : def;
}

/* One command; returns its parsed reply or NULL after printing why. */
static cJSON *ask(const struct ctl_opts *o, const char *req, int *ret_rc)
{
	struct ctl_reply rep;
	cJSON *j;
	int r = ctl_call(o->socket_path, o->timeout_ms, req, strlen(req), &rep);

	if (r < 0) {
		fprintf(stderr, "quiverctl: top: %s: %s\n", o->socket_path, strerror(-r));
		*ret_rc = r == -EACCES || r == -EPERM ? CTL_EXIT_PERM : CTL_EXIT_CONNECT;
		return NULL;
	}
	j = cJSON_ParseWithLength(rep.json, rep.len);
	if (rep.status != 0 || !j) {
		fprintf(stderr, "quiverctl: top: %s: %s\n", req,
			j ? str(j, "error", "error") : "reply is not JSON");
		cJSON_Delete(j);
		j = NULL;
		*ret_rc = rep.status == -EACCES || rep.status == -EPERM ? CTL_EXIT_PERM
									 : CTL_EXIT_DAEMON;
	}
	ctl_reply_free(&rep);
	return j;
}

static void sample_free(struct top_sample *s)
{
	cJSON_Delete(s->stats);
	s->stats = NULL;
}

static int sample_take(const struct ctl_opts *o, struct top_sample *s)
{
	cJSON *st, *mo, *sa;
	const cJSON *e, *r, *v;
	int rc = CTL_EXIT_OK;

	sample_free(s);
	memset(s, 0, sizeof(*s));
	st = ask(o, "{\"cmd\":\"status\"}", &rc);
	mo = st ? ask(o, "{\"cmd\":\"models\"}", &rc) : NULL;
	sa = mo ? ask(o, "{\"cmd\":\"stats\",\"hist\":true}", &rc) : NULL;
	if (!sa) {
		cJSON_Delete(st);
		cJSON_Delete(mo);
		return rc;
	}
	s->t = now_s();
	s->uptime = num(st, "uptime_s", 0);
	snprintf(s->state, sizeof(s->state), "%s", str(st, "state", "?"));
	s->loaded = (int)num(st, "models_loaded", 0);
	s->failed = (int)num(st, "models_failed", 0);
	s->channels = num(st, "channels", 0);
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(st, "workers")) {
		struct top_worker *w;
		if (s->nw == TOP_MAX_WORKERS)
			break;
		w = &s->w[s->nw++];
		w->id = (int)num(e, "id", -1);
		w->core = (int)num(e, "core", -1);
		w->chans = num(e, "channels", 0);
		w->req = num(e, "requests", 0);
		w->busy = num(e, "busy_cycles", 0);
		w->idle = num(e, "idle_cycles", 0);
		w->has_udp = cJSON_GetObjectItemCaseSensitive(e, "udp_rx") != NULL;
		w->urx = num(e, "udp_rx", 0);
		w->utx = num(e, "udp_tx", 0);
	}
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(sa, "routes")) {
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(r, "versions")) {
			struct top_ver *tv;
			const cJSON *m, *runs, *x;
			if (s->nv == TOP_MAX_VERS)
				break;
			tv = &s->v[s->nv++];
			snprintf(tv->name, sizeof(tv->name), "%s", str(r, "name", "?"));
			tv->version = (uint32_t)num(v, "version", 0);
			tv->req = num(v, "requests", 0);
			tv->err = tv->req - num(v, "ok", 0);
			tv->canary = num(v, "canary", 0);
			tv->fallback = num(v, "fallback", 0);
			runs = cJSON_GetObjectItemCaseSensitive(v, "runs_by_rows");
			cJSON_ArrayForEach(x, runs)
				if (cJSON_IsNumber(x))
					tv->runs += x->valuedouble;
			tv->hist = cJSON_GetObjectItemCaseSensitive(v, "hist");
			snprintf(tv->role, sizeof(tv->role), "-");
			cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(mo, "models")) {
				if (strcmp(str(m, "name", ""), tv->name) == 0 &&
				    (uint32_t)num(m, "version", 0) == tv->version)
					snprintf(tv->role, sizeof(tv->role), "%s", str(m, "role", "-"));
			}
		}
	}
	s->stats = sa;
	cJSON_Delete(st);
	cJSON_Delete(mo);
	return CTL_EXIT_OK;
}

static const struct top_ver *find_ver(const struct top_sample *s, const struct top_ver *v)
{
	for (uint32_t i = 0; i < s->nv; i++)
		if (s->v[i].version == v->version && strcmp(s->v[i].name, v->name) == 0)
			return &s->v[i];
	return NULL;
}

/* Count of bucket `idx` in a hist array, 0 if absent. */
static double hist_count(const cJSON *h, double idx)
{
	const cJSON *b;
	cJSON_ArrayForEach(b, h) {
		const cJSON *i = cJSON_GetArrayItem(b, 0);
		if (cJSON_IsNumber(i) && i->valuedouble == idx)
			return cJSON_GetArrayItem(b, 1)->valuedouble;
	}
	return 0;
}

/* The q-quantile (in us) of cur's buckets minus prev's, NAN when empty.
 * Buckets arrive in ascending order of index. */
static double interval_quantile(const cJSON *cur, const cJSON *prev, double q)
{
	const cJSON *b;
	double total = 0, cum = 0, rank;

	cJSON_ArrayForEach(b, cur)
		total += cJSON_GetArrayItem(b, 1)->valuedouble -
			 hist_count(prev, cJSON_GetArrayItem(b, 0)->valuedouble);
	if (total <= 0)
		return NAN;
	rank = ceil(q * total);
	if (rank < 1)
		rank = 1;
	cJSON_ArrayForEach(b, cur) {
		cum += cJSON_GetArrayItem(b, 1)->valuedouble -
		       hist_count(prev, cJSON_GetArrayItem(b, 0)->valuedouble);
		if (cum >= rank)
			return cJSON_GetArrayItem(b, 2)->valuedouble / 1000.0;
	}
	return NAN;
}

static int hist_valid(const cJSON *h)
{
	const cJSON *b;

	if (!cJSON_IsArray(h))
		return 0;
	cJSON_ArrayForEach(b, h)
		if (cJSON_GetArraySize(b) != 3 || !cJSON_IsNumber(cJSON_GetArrayItem(b, 0)) ||
		    !cJSON_IsNumber(cJSON_GetArrayItem(b, 1)) ||
		    !cJSON_IsNumber(cJSON_GetArrayItem(b, 2)))
			return 0;
	return 1;
}

static void fmt_num(char *buf, size_t cap, double v, int decimals)
{
	if (isnan(v))
		snprintf(buf, cap, "-");
	else
		snprintf(buf, cap, "%.*f", decimals, v);
}

/* A frame: `el` ends every line (clear to its end when live). */
static void render(FILE *f, const struct top_sample *p, const struct top_sample *c,
		   double interval, const char *el)
{
	double dt = c->t - p->t;
	unsigned up = (unsigned)c->uptime;
	struct ctl_table *t;

	if (dt <= 0)
		dt = interval;
	fprintf(f, "quiverd %s  up %uh%02um%02us  models %d loaded, %d failed  channels %.0f  "
		   "(every %.1f s; q quits)%s\n%s\n",
		c->state, up / 3600, up / 60 % 60, up % 60, c->loaded, c->failed, c->channels,
		interval, el, el);
	t = ctl_table_new(11);
	{
		const char *h[] = { "MODEL", "VER", "ROLE", "REQ/S", "SHARE%", "CANARY%",
				    "FALLBACK%", "ERR/S", "P50_US", "P99_US", "REQ/RUN" };
		ctl_table_add(t, h);
	}
	for (uint32_t i = 0; i < c->nv; i++) {
		const struct top_ver *v = &c->v[i], *pv = find_ver(p, v);
		struct top_ver zero = { .hist = NULL };
		double route = 0, dreq, drun;
		char cells[11][32], ver[16];
		const char *row[11];

		if (!pv)
			pv = &zero;
		for (uint32_t k = 0; k < c->nv; k++) {
			const struct top_ver *o = &c->v[k], *po;
			if (strcmp(o->name, v->name) != 0)
				continue;
			po = find_ver(p, o);
			route += o->req - (po ? po->req : 0);
		}
		dreq = v->req - pv->req;
		drun = v->runs - pv->runs;
		snprintf(ver, sizeof(ver), "%u", v->version);
		snprintf(cells[0], 32, "%.31s", v->name);
		snprintf(cells[1], 32, "%s", ver);
		snprintf(cells[2], 32, "%s", v->role);
		fmt_num(cells[3], 32, dreq / dt, 1);
		fmt_num(cells[4], 32, route > 0 ? 100.0 * dreq / route : NAN, 1);
		fmt_num(cells[5], 32, dreq > 0 ? 100.0 * (v->canary - pv->canary) / dreq : NAN,
			1);
		fmt_num(cells[6], 32, dreq > 0 ? 100.0 * (v->fallback - pv->fallback) / dreq : NAN,
			1);
		fmt_num(cells[7], 32, (v->err - pv->err) / dt, 1);
		if (hist_valid(v->hist) && (!pv->hist || hist_valid(pv->hist))) {
			fmt_num(cells[8], 32, interval_quantile(v->hist, pv->hist, 0.5), 1);
			fmt_num(cells[9], 32, interval_quantile(v->hist, pv->hist, 0.99), 1);
		} else {
			snprintf(cells[8], 32, "?");
			snprintf(cells[9], 32, "?");
		}
		fmt_num(cells[10], 32, drun > 0 ? dreq / drun : NAN, 2);
		for (int k = 0; k < 11; k++)
			row[k] = cells[k];
		ctl_table_add(t, row);
	}
	fflush(f);
	ctl_table_print_to(t, f, el);
	ctl_table_free(t);
	fprintf(f, "%s\n", el);
	t = ctl_table_new(7);
	{
		const char *h[] = { "WORKER", "CORE", "BUSY%", "CHANNELS", "REQ/S", "UDP_RX/S",
				    "UDP_TX/S" };
		ctl_table_add(t, h);
	}
	for (uint32_t i = 0; i < c->nw; i++) {
		const struct top_worker *w = &c->w[i], *pw = i < p->nw ? &p->w[i] : NULL;
		double db = w->busy - (pw ? pw->busy : 0), di = w->idle - (pw ? pw->idle : 0);
		char cells[7][32];
		const char *row[7];

		snprintf(cells[0], 32, "%d", w->id);
		snprintf(cells[1], 32, "%d", w->core);
		fmt_num(cells[2], 32, db + di > 0 ? 100.0 * db / (db + di) : NAN, 1);
		snprintf(cells[3], 32, "%.0f", w->chans);
		fmt_num(cells[4], 32, (w->req - (pw ? pw->req : 0)) / dt, 1);
		if (w->has_udp) {
			fmt_num(cells[5], 32, (w->urx - (pw ? pw->urx : 0)) / dt, 1);
			fmt_num(cells[6], 32, (w->utx - (pw ? pw->utx : 0)) / dt, 1);
		} else {
			snprintf(cells[5], 32, "-");
			snprintf(cells[6], 32, "-");
		}
		for (int k = 0; k < 7; k++)
			row[k] = cells[k];
		ctl_table_add(t, row);
	}
	ctl_table_print_to(t, f, el);
	ctl_table_free(t);
}

static void top_usage(FILE *f)
{
	fprintf(f,
		"Usage: quiverctl [--socket PATH] top [--once] [--interval SECONDS]\n\n"
		"A live view of quiverd, redrawn every interval (default 1 s): per model\n"
		"version requests/s, share of the route's traffic, canary and fallback\n"
		"shares, errors/s, p50/p99 latency of the interval (us) and requests per\n"
		"model run; per worker busy %%, channels, requests/s and UDP rx/tx per second.\n"
		"q, Ctrl-C or SIGTERM quits.\n\n"
		"Options:\n"
		"  --once              print one frame (no terminal control) after one\n"
		"                      interval, then exit: for scripts\n"
		"  --interval SECONDS  time between refreshes, 0.1 to 60 (default 1)\n"
		"  -h, --help          this help\n");
}

static int parse_interval(const char *s, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0.1 && v <= 60))
		return -EINVAL;
	*ret = v;
	return 0;
}

/* Waits up to `s` seconds for a key; returns 1 when the user asked to quit. */
static int wait_keys(double s, int tty)
{
	double until = now_s() + s;

	while (!top_quit) {
		double left = until - now_s();
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		int r;

		if (left <= 0)
			return 0;
		r = poll(&p, tty ? 1 : 0, (int)(left * 1000.0) + 1);
		if (r > 0) {
			char ch[16];
			ssize_t n = read(STDIN_FILENO, ch, sizeof(ch));
			if (n <= 0)
				tty = 0; /* EOF: keep refreshing, stop reading */
			for (ssize_t i = 0; i < n; i++)
				if (ch[i] == 'q' || ch[i] == 'Q')
					return 1;
		}
	}
	return 1;
}

int ctl_top(int argc, char **argv, struct ctl_opts *o)
{
	static struct top_sample a, b;
	struct top_sample *prev = &a, *cur = &b, *tmp;
	struct termios saved, raw;
	struct sigaction sa = { .sa_handler = on_signal };
	double interval = 1.0;
	int once = 0, tty, rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--once") == 0) {
			once = 1;
		} else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
			if (parse_interval(argv[++i], &interval) < 0) {
				fprintf(stderr, "quiverctl: top: bad --interval '%s' (seconds, 0.1 to "
						"60)\n", argv[i]);
				return CTL_EXIT_USAGE;
			}
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			top_usage(stdout);
			return CTL_EXIT_OK;
		} else {
			fprintf(stderr, "quiverctl: top: unknown argument '%s'\n"
					"Try 'quiverctl top --help'.\n", argv[i]);
			return CTL_EXIT_USAGE;
		}
	}
	if (o->json) {
		fputs("quiverctl: top has no --json; `quiverctl --json stats` and `status` are "
		      "the machine interface\n", stderr);
		return CTL_EXIT_USAGE;
	}
	rc = sample_take(o, prev);
	if (rc != CTL_EXIT_OK)
		return rc;
	if (once) {
		struct timespec ts = { .tv_sec = (time_t)interval,
				       .tv_nsec = (long)((interval - floor(interval)) * 1e9) };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		rc = sample_take(o, cur);
		if (rc == CTL_EXIT_OK)
			render(stdout, prev, cur, interval, "");
		sample_free(prev);
		sample_free(cur);
		return fflush(stdout) == 0 ? rc : CTL_EXIT_DAEMON;
	}

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (tty) {
		raw = saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO); /* keys at once; ISIG kept: Ctrl-C */
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	/* Alternate screen, cursor hidden; a first frame while the first interval runs. */
	printf("\033[?1049h\033[?25l\033[H\033[2Jquiverctl top: first sample taken, next in %.1f s "
	       "(q quits)\n", interval);
	fflush(stdout);
	while (!top_quit) {
		if (wait_keys(interval, tty))
			break;
		rc = sample_take(o, cur);
		if (rc != CTL_EXIT_OK)
			break;
		fputs("\033[H", stdout);
		render(stdout, prev, cur, interval, "\033[K");
		fputs("\033[J", stdout);
		fflush(stdout);
		tmp = prev;
		prev = cur;
		cur = tmp;
	}
	printf("\033[?25h\033[?1049l");
	fflush(stdout);
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	sample_free(prev);
	sample_free(cur);
	return rc;
}
