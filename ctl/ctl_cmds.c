/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_cmds.c - the human views of quiverd's replies. Every field is read
 * defensively: a missing or mistyped field prints "-" rather than failing,
 * so an older quiverctl still shows what it understands of a newer daemon.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ctl.h"

/* Numbers arrive as doubles; counters stay exact up to 2^53. */
static void fmt_num(char *buf, size_t cap, const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (cJSON_IsNumber(v))
		snprintf(buf, cap, "%.0f", v->valuedouble);
	else if (cJSON_IsString(v))
		snprintf(buf, cap, "%s", v->valuestring);
	else
		snprintf(buf, cap, "-");
}

static double get_num(const cJSON *o, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *get_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void fmt_duration(char *buf, size_t cap, double s)
{
	if (!(s >= 0)) {
		snprintf(buf, cap, "-");
		return;
	}
	if (s >= 1e15) {   /* converting past uint64_t would be undefined */
		snprintf(buf, cap, "%.0fs", s);
		return;
	}
	uint64_t t = (uint64_t)s;
	uint64_t d = t / 86400, h = t / 3600 % 24, m = t / 60 % 60, sec = t % 60;
	if (d)
		snprintf(buf, cap, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "m", d, h, m);
	else if (h)
		snprintf(buf, cap, "%" PRIu64 "h %" PRIu64 "m %" PRIu64 "s", h, m, sec);
	else if (m)
		snprintf(buf, cap, "%" PRIu64 "m %" PRIu64 "s", m, sec);
	else
		snprintf(buf, cap, "%" PRIu64 "s", sec);
}

/* Shape as [-1,32]; -1 is the batch axis. */
static void fmt_shape(char *buf, size_t cap, const cJSON *o, const char *key)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsArray(a)) {
		snprintf(buf, cap, "-");
		return;
	}
	size_t n = 0;
	const cJSON *d;
	n += (size_t)snprintf(buf, cap, "[");
	cJSON_ArrayForEach(d, a) {
		if (n >= cap)
			break;
		n += (size_t)snprintf(buf + n, cap - n, "%s%.0f", d == a->child ? "" : ",",
				      cJSON_IsNumber(d) ? d->valuedouble : 0.0);
	}
	if (n < cap)
		snprintf(buf + n, cap - n, "]");
}

/*
 * The UDP section: one row a running back end ("udp": io_uring,
 * "udp_dpdk": DPDK), only the counters an operator scans first; the
 * frame-level ones of DPDK are in --json and metrics. Nothing is printed
 * when no UDP back end runs.
 */
static void render_udp(const cJSON *reply)
{
	static const char *const keys[] = { "udp", "udp_dpdk" };
	static const char *const names[] = { "io_uring", "dpdk" };
	static const char *const head[] = { "UDP",         "RX",    "TX",    "LOOKUPS",
					    "BAD_REQUEST", "JUNK",  "DENIED", "TX_DROPPED" };
	static const char *const fields[] = { "rx",   "tx",           "lookups",   "bad_request",
					      "junk", "dropped_allow", "tx_dropped" };
	struct ctl_table *t = NULL;

	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(reply, keys[k]);
		char cells[7][32];
		const char *row[8];

		if (!cJSON_IsObject(u))
			continue;
		if (t == NULL) {
			t = ctl_table_new(8);
			ctl_table_add(t, head);
		}
		row[0] = names[k];
		for (size_t i = 0; i < 7; i++) {
			fmt_num(cells[i], sizeof(cells[i]), u, fields[i]);
			row[i + 1] = cells[i];
		}
		ctl_table_add(t, row);
	}
	if (t == NULL)
		return;
	putchar('\n');
	ctl_table_print(t);
	ctl_table_free(t);
}

void ctl_render_status(const cJSON *reply)
{
	char up[64], ch[32], req[32], ml[32], mf[32];
	const char *state = get_str(reply, "state");

	fmt_duration(up, sizeof(up), get_num(reply, "uptime_s", -1));
	fmt_num(ch, sizeof(ch), reply, "channels");
	fmt_num(req, sizeof(req), reply, "requests_served");
	fmt_num(ml, sizeof(ml), reply, "models_loaded");
	fmt_num(mf, sizeof(mf), reply, "models_failed");

	printf("state:           %s\n", state ? state : "-");
	printf("uptime:          %s\n", up);
	printf("channels:        %s\n", ch);
	printf("requests served: %s\n", req);
	printf("models:          %s loaded, %s failed\n", ml, mf);
	render_udp(reply);

	const cJSON *workers = cJSON_GetObjectItemCaseSensitive(reply, "workers");
	if (!cJSON_IsArray(workers) || cJSON_GetArraySize(workers) == 0)
		return;
	putchar('\n');
	struct ctl_table *t = ctl_table_new(6);
	static const char *const head[] = { "WORKER", "CORE", "NUMA", "CHANNELS", "REQUESTS",
					    "UTIL" };
	ctl_table_add(t, head);
	const cJSON *w;
	cJSON_ArrayForEach(w, workers) {
		char id[32], core[32], numa[32], wch[32], wreq[32], util[32];
		fmt_num(id, sizeof(id), w, "id");
		fmt_num(core, sizeof(core), w, "core");
		fmt_num(numa, sizeof(numa), w, "numa_node");
		fmt_num(wch, sizeof(wch), w, "channels");
		fmt_num(wreq, sizeof(wreq), w, "requests");
		/* Utilisation: the share of polled cycles in which a poll step
		 * found work (SPDK's busy/idle reactor accounting). */
		double busy = get_num(w, "busy_cycles", -1), idle = get_num(w, "idle_cycles", -1);
		if (busy >= 0 && idle >= 0 && busy + idle > 0)
			snprintf(util, sizeof(util), "%.1f%%", 100.0 * busy / (busy + idle));
		else
			snprintf(util, sizeof(util), "-");
		const char *row[] = { id, core, numa, wch, wreq, util };
		ctl_table_add(t, row);
	}
	ctl_table_print(t);
	ctl_table_free(t);
}

/* One run of buckets: "8:hand" or "1-4:hand". Returns what snprintf does. */
static size_t put_run(char *buf, size_t cap, bool space, double lo, double hi, const char *k)
{
	int r = lo == hi ? snprintf(buf, cap, "%s%.0f:%s", space ? " " : "", lo, k)
			 : snprintf(buf, cap, "%s%.0f-%.0f:%s", space ? " " : "", lo, hi, k);
	return r > 0 ? (size_t)r : 0;
}

/*
 * A dense step's kernels by batch bucket, runs of the same kernel merged:
 * "1-4:hand 8-256:onednn" (a run of one bucket is just its rows: "1:hand").
 * Entries that are not {rows, kernel} are skipped.
 */
static void fmt_kernels(char *buf, size_t cap, const cJSON *ks)
{
	const cJSON *k;
	const char *run_k = NULL;
	double run_lo = 0, run_hi = 0;
	size_t n = 0;

	buf[0] = '\0';
	cJSON_ArrayForEach(k, ks) {
		const char *kk = get_str(k, "kernel");
		double rows = get_num(k, "rows", -1);
		if (!kk || rows < 1)
			continue;
		if (run_k && !strcmp(run_k, kk)) {
			run_hi = rows;
			continue;
		}
		if (run_k && n < cap)
			n += put_run(buf + n, cap - n, n != 0, run_lo, run_hi, run_k);
		run_k = kk;
		run_lo = run_hi = rows;
	}
	if (run_k && n < cap)
		put_run(buf + n, cap - n, n != 0, run_lo, run_hi, run_k);
	if (!buf[0])
		snprintf(buf, cap, "-");
}

/* models --plan: each version's plan under its table row. */
static void render_plans(const cJSON *models)
{
	const cJSON *m;

	cJSON_ArrayForEach(m, models) {
		const cJSON *plan = cJSON_GetObjectItemCaseSensitive(m, "plan");
		if (!cJSON_IsObject(plan))
			continue;
		const cJSON *steps = cJSON_GetObjectItemCaseSensitive(plan, "steps");
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(plan, "text");
		char version[32];
		fmt_num(version, sizeof(version), m, "version");
		const char *name = get_str(m, "name");
		printf("\n%s version %s", name ? name : "-", version);
		if (cJSON_IsArray(steps)) {
			printf(": %d steps\n", cJSON_GetArraySize(steps));
			struct ctl_table *t = ctl_table_new(8);
			static const char *const head[] = { "STEP", "KIND", "LABEL", "IN", "OUT",
							    "ACTIVATION", "PRECISION", "KERNEL BY ROWS" };
			ctl_table_add(t, head);
			const cJSON *s;
			int i = 0;
			cJSON_ArrayForEach(s, steps) {
				char idx[16], in[32], out[32], kern[512];
				snprintf(idx, sizeof(idx), "%d", i++);
				fmt_num(in, sizeof(in), s, "in");
				fmt_num(out, sizeof(out), s, "out");
				fmt_kernels(kern, sizeof(kern),
					    cJSON_GetObjectItemCaseSensitive(s, "kernels"));
				const char *row[] = { idx, get_str(s, "kind"), get_str(s, "label"), in,
						      out, get_str(s, "activation"),
						      get_str(s, "precision"), kern };
				ctl_table_add(t, row);
			}
			ctl_table_print(t);
			ctl_table_free(t);
		} else {
			/* A kind without an MLP plan: the runtime's own description. */
			printf("\n");
			const cJSON *line;
			cJSON_ArrayForEach(line, text)
				if (cJSON_IsString(line))
					printf("  %s\n", line->valuestring);
		}
	}
}

void ctl_render_models(const cJSON *reply)
{
	const cJSON *models = cJSON_GetObjectItemCaseSensitive(reply, "models");
	if (!cJSON_IsArray(models) || cJSON_GetArraySize(models) == 0) {
		puts("no models");
		return;
	}
	struct ctl_table *t = ctl_table_new(11);
	static const char *const head[] = { "NAME",   "HANDLE",    "VERSION",   "STATE",
					    "INPUT",  "OUTPUT",    "MAX_BATCH", "PRECISION",
					    "MAX_ERR", "LOG", "ERROR" };
	ctl_table_add(t, head);
	const cJSON *m;
	cJSON_ArrayForEach(m, models) {
		char handle[32], version[32], ins[128], outs[128], mb[32];
		fmt_num(handle, sizeof(handle), m, "handle");
		fmt_num(version, sizeof(version), m, "version");
		fmt_shape(ins, sizeof(ins), m, "in_shape");
		fmt_shape(outs, sizeof(outs), m, "out_shape");
		fmt_num(mb, sizeof(mb), m, "max_batch");
		/* "bf16" served as asked; "fp32 (bf16 asked)" when the guard or
		 * the CPU said no (the reason is in --json's precision_note and
		 * the daemon's log); the guard's max abs error when measured */
		char prec[160], merr[32];
		const char *served = get_str(m, "precision"), *asked = get_str(m, "precision_requested");
		if (!served)
			snprintf(prec, sizeof(prec), "-");
		else if (asked && !strcmp(asked, "auto"))
			snprintf(prec, sizeof(prec), "auto: %s", served);
		else if (asked && strcmp(asked, served))
			snprintf(prec, sizeof(prec), "%s (%s asked)", served, asked);
		else
			snprintf(prec, sizeof(prec), "%s", served);
		double me = get_num(m, "max_abs_error", -1);
		if (me >= 0)
			snprintf(merr, sizeof(merr), "%.2g", me);
		else
			snprintf(merr, sizeof(merr), "-");
		/* The prediction log's sampled share, as a percentage. */
		char lg[32];
		double ls = get_num(m, "log_sample", 0);
		if (ls > 0)
			snprintf(lg, sizeof(lg), "%.4g%%", 100.0 * ls);
		else
			snprintf(lg, sizeof(lg), "-");
		const char *row[] = { get_str(m, "name"), handle, version, get_str(m, "state"),
				      ins, outs, mb, prec, merr, lg, get_str(m, "error") };
		ctl_table_add(t, row);
	}
	ctl_table_print(t);
	ctl_table_free(t);
	render_plans(models);
}
