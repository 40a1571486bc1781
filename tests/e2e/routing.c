/* SPDX-License-Identifier: Apache-2.0 */
/*
 * routing.c - see routing.h.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rawchan.h"
#include "routing.h"

#define SETPRIV "/usr/bin/setpriv"

void qvt_refs_load(const char *repo, struct qvt_refs *ret)
{
	char common[600];
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->versions_dir, sizeof(ret->versions_dir), "%s/../versions", repo);
	snprintf(common, sizeof(common), "%s/common", ret->versions_dir);
	for (uint32_t v = 1; v <= QVT_NVERSIONS; v++) {
		if (qvt_ref_load(common, "trade-mlp", v, &ret->v[v]) < 0) {
			printf("SKIP: no reference data in %s (gen_models.py not run?)\n", common);
			exit(QVT_SKIP);
		}
		if (ret->v[v].rows != ret->v[1].rows || ret->v[v].in_dim != 32 ||
		    ret->v[v].out_dim != 1 ||
		    memcmp(ret->v[v].x.data, ret->v[1].x.data,
			   (size_t)ret->v[1].rows * 32 * sizeof(float)) != 0)
			qvt_die("versions/common: version %u has other inputs or shapes", v);
	}
	ret->rows = ret->v[1].rows;
	ret->in_dim = 32;
}

void qvt_refs_free(struct qvt_refs *r)
{
	for (uint32_t v = 1; v <= QVT_NVERSIONS; v++)
		qvt_ref_free(&r->v[v]);
}

bool qvt_refs_match(const struct qvt_refs *r, uint32_t v, uint32_t row, float out)
{
	if (v < 1 || v > QVT_NVERSIONS || row >= r->rows)
		return false;
	double w = r->v[v].y.data[row], g = out;
	if (isnan(w))
		return isnan(g);
	return fabs(g - w) <= QVT_ATOL + QVT_RTOL * fabs(w);
}

uint32_t qvt_refs_distinct(const struct qvt_refs *r, uint32_t a, uint32_t b, uint32_t *rows,
			   uint32_t cap)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < r->rows && n < cap; i++) {
		double ya = r->v[a].y.data[i], yb = r->v[b].y.data[i];
		if (isfinite(ya) && isfinite(yb) && fabs(ya - yb) > 1e-2)
			rows[n++] = i;
	}
	return n;
}

static int vctl(const char *pre[], int npre, const char *quiverctl, const char *sock, char *out,
		size_t cap, va_list ap)
{
	const char *argv[32];
	int n = 0;
	for (int i = 0; i < npre; i++)
		argv[n++] = pre[i];
	argv[n++] = quiverctl;
	argv[n++] = "--socket";
	argv[n++] = sock;
	for (const char *a; n < 31 && (a = va_arg(ap, const char *));)
		argv[n++] = a;
	argv[n] = NULL;
	int st;
	if (qvt_run(argv, out, cap, &st) < 0)
		qvt_die("cannot run %s", argv[0]);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int qvt_ctl(const char *quiverctl, const char *sock, char *out, size_t cap, ...)
{
	va_list ap;
	va_start(ap, cap);
	int rc = vctl(NULL, 0, quiverctl, sock, out, cap, ap);
	va_end(ap);
	return rc;
}

int qvt_ctl_nobody(const char *quiverctl, const char *sock, char *out, size_t cap, ...)
{
	const char *pre[] = { SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups" };
	if (access(SETPRIV, X_OK) != 0)
		return 127;
	va_list ap;
	va_start(ap, cap);
	int rc = vctl(pre, 4, quiverctl, sock, out, cap, ap);
	va_end(ap);
	return rc;
}

static char reply_buf[1 << 20];

static cJSON *vcmd(const char *sock, int32_t *ret_status, const char *fmt, va_list ap)
{
	char json[4096];
	vsnprintf(json, sizeof(json), fmt, ap);
	int32_t st;
	int r = qvt_ctl_cmd(sock, json, &st, reply_buf, sizeof(reply_buf) - 1);
	if (r < 0)
		qvt_die("control command %s: %s", json, strerror(-r));
	*ret_status = st;
	return cJSON_Parse(reply_buf);
}

cJSON *qvt_cmd(const char *sock, int32_t *ret_status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cJSON *j = vcmd(sock, ret_status, fmt, ap);
	va_end(ap);
	return j;
}

cJSON *qvt_cmd_ok(const char *sock, const char *fmt, ...)
{
	int32_t st;
	va_list ap;
	va_start(ap, fmt);
	cJSON *j = vcmd(sock, &st, fmt, ap);
	va_end(ap);
	if (st != 0 || !j) {
		char cmd[256];
		va_start(ap, fmt);
		vsnprintf(cmd, sizeof(cmd), fmt, ap);
		va_end(ap);
		qvt_fail("%s: status %d: %s", cmd, st, reply_buf);
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

void qvt_need_routing(struct qvt_daemon *d)
{
	int32_t st;
	cJSON *j = qvt_cmd(d->sock, &st, "{\"cmd\":\"routes\"}");
	cJSON_Delete(j);
	if (st == -EINVAL && strstr(reply_buf, "unknown command")) {
		printf("SKIP: this quiverd has no routing commands yet (%s)\n", reply_buf);
		qvt_daemon_cleanup(d);
		exit(QVT_SKIP);
	}
	if (st != 0)
		qvt_die("routes: status %d: %s", st, reply_buf);
}

const cJSON *qvt_route_of(const cJSON *routes_reply, const char *name)
{
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(routes_reply, "routes")) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "name");
		if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
			return r;
	}
	return NULL;
}

double qvt_num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void stream_reap(struct qvt_stream *s, const struct qv_result *res)
{
	/* id = seq * depth + slot: the slot tells which request it was, the
	 * sequence number that it is the one in flight there. */
	uint32_t i = (uint32_t)(res->request_id % s->depth);
	if (!s->busy[i] || s->id[i] != res->request_id) {
		s->unknown_id++;
		return;
	}
	s->busy[i] = false;
	s->done++;
	if (res->version <= QVT_NVERSIONS)
		s->by_version[res->version]++;
	if (res->flags & QV_FLAG_CANARY)
		s->canary_flag++;
	if (res->flags & QV_FLAG_FALLBACK)
		s->fallback_flag++;
	if (res->status != QV_OK) {
		if (s->bad_status++ < 5)
			fprintf(stderr, "request %llu: status %s\n",
				(unsigned long long)res->request_id, qv_strerror((int)res->status));
	} else if (res->out_floats != 1 ||
		   !qvt_refs_match(s->refs, res->version, s->row[i], s->out[i][0])) {
		if (s->mismatched++ < 5)
			fprintf(stderr, "request %llu row %u: output %.9g does not match version %u\n",
				(unsigned long long)res->request_id, s->row[i],
				(double)s->out[i][0], res->version);
	} else {
		s->ok++;
	}
	if (s->on_done)
		s->on_done(s->arg, res, s->row[i], s->key[i]);
}

int qvt_stream_step(struct qvt_stream *s, uint64_t budget)
{
	for (uint32_t i = 0; i < s->depth && budget; i++) {
		if (s->busy[i])
			continue;
		uint64_t seq = s->next;
		uint32_t row = s->rows[seq % s->nrows];
		uint64_t key = s->keys ? s->keys[seq % s->nkeys] : 0;
		struct qv_request rq = {
			.handle = s->handle,
			.rows = 1,
			.input = s->refs->v[1].x.data + (size_t)row * s->refs->in_dim,
			.deadline_ns = s->deadline_offset_ns ? qvt_now_ns() + s->deadline_offset_ns : 0,
			.routing_key = key,
			.request_id = seq * s->depth + i,
		};
		int r = qv_submit(s->c, &rq, s->out[i], 4);
		if (r == -EAGAIN)
			break;
		if (r < 0)
			return r;
		s->busy[i] = true;
		s->id[i] = rq.request_id;
		s->row[i] = row;
		s->key[i] = key;
		s->next++;
		s->sent++;
		budget--;
	}
	struct qv_result res[QVT_STREAM_MAX_DEPTH];
	int n = qv_poll(s->c, res, QVT_STREAM_MAX_DEPTH);
	if (n < 0)
		return n;
	for (int k = 0; k < n; k++)
		stream_reap(s, &res[k]);
	return n;
}

int qvt_stream_drain(struct qvt_stream *s, uint32_t timeout_ms)
{
	uint64_t end = qvt_now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (s->done + s->unknown_id < s->sent || qv_inflight(s->c) > 0) {
		if (qvt_now_ns() > end)
			return -ETIMEDOUT;
		int r = qvt_stream_step(s, 0);
		if (r < 0)
			return r;
		if (r == 0)
			qvt_sleep_us(20);
	}
	return 0;
}

bool qvt_stream_report(const struct qvt_stream *s, const char *who)
{
	fprintf(stderr, "%s: sent %llu, completed %llu, ok %llu, bad status %llu, mismatched %llu, "
		"unknown id %llu; by version", who, (unsigned long long)s->sent,
		(unsigned long long)s->done, (unsigned long long)s->ok,
		(unsigned long long)s->bad_status, (unsigned long long)s->mismatched,
		(unsigned long long)s->unknown_id);
	for (uint32_t v = 1; v <= QVT_NVERSIONS; v++)
		fprintf(stderr, " v%u=%llu", v, (unsigned long long)s->by_version[v]);
	fprintf(stderr, "; canary flag %llu, fallback flag %llu\n",
		(unsigned long long)s->canary_flag, (unsigned long long)s->fallback_flag);
	return s->done == s->sent && s->ok == s->sent && s->unknown_id == 0;
}
