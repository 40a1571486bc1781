/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops.c - readiness, liveness and the service manager, for the control
 * thread.
 *
 * Worker progress: each worker bumps its `beats` counter about once a
 * millisecond while its loop turns (worker.c). The control thread reads
 * the counters (relaxed: a counter, nothing is published through it) at
 * every tick and keeps when each last moved. /readyz wants every worker
 * to have moved within READY_STALL_NS; the watchdog is pinged (WATCHDOG=1,
 * every half period) only if every worker's counter moved since the
 * previous ping, so a worker stuck in a run or a dead thread lets
 * systemd's WatchdogSec expire and restart the service.
 */
#include "ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "http_metrics.h"
#include "log.h"
#include "notify.h"
#include "quiverd.h"

#define READY_STALL_NS 2000000000ull

struct qv_ops {
	struct qv_http *http;
	int ready;                  /* READY=1 sent: repository loaded, workers polling */
	int stopping;
	uint64_t wd_period_ns;      /* 0: no watchdog */
	uint64_t wd_next_ns;
	int wd_skipped_logged;
	uint64_t wd_seen[QV_MAX_WORKERS];
	uint64_t live_seen[QV_MAX_WORKERS];
	uint64_t live_ns[QV_MAX_WORKERS];
};

static int ops_ready(struct qv_daemon *d, char *why, size_t cap)
{
	struct qv_ops *o = d->ops;
	uint64_t now = qv_now_ns();

	if (!o->ready) {
		snprintf(why, cap, "starting: the repository is loading\n");
		return 0;
	}
	if (o->stopping || d->draining) {
		snprintf(why, cap, "draining\n");
		return 0;
	}
	for (uint32_t i = 0; i < d->nworkers; i++) {
		if (now - o->live_ns[i] >= READY_STALL_NS) {
			snprintf(why, cap, "worker %u (core %d) made no progress for %llu ms\n", i,
				 d->workers[i]->core,
				 (unsigned long long)((now - o->live_ns[i]) / 1000000u));
			return 0;
		}
	}
	return 1;
}

int qv_ops_start(struct qv_daemon *d)
{
	struct qv_ops *o = calloc(1, sizeof(*o));
	uint64_t usec;
	int r;

	if (!o)
		return -ENOMEM;
	d->ops = o;
	r = qv_notify_watchdog_usec(&usec);
	if (r < 0)
		qv_log(QV_LOG_WARN, "watchdog: bad WATCHDOG_USEC/WATCHDOG_PID; not pinging");
	else if (r > 0)
		o->wd_period_ns = usec * 1000u;
	if (d->metrics_listen) {
		r = qv_http_open(d, d->metrics_listen, ops_ready, &o->http);
		if (r < 0) {
			qv_log(QV_LOG_ERROR, "metrics: cannot listen on %s: %s", d->metrics_listen,
			       strerror(-r));
			return r;
		}
		qv_log(QV_LOG_INFO, "metrics: listening on %s (port %u): /metrics /healthz /readyz",
		       d->metrics_listen, (unsigned)qv_http_port(o->http));
	}
	return 0;
}

static void notify_logged(const char *msg, const char *what)
{
	int r = qv_notify_send(msg);

	if (r < 0)
		qv_log(QV_LOG_WARN, "sd_notify %s: %s", what, strerror(-r));
}

void qv_ops_ready(struct qv_daemon *d)
{
	struct qv_ops *o = d->ops;
	char msg[160];
	uint64_t now = qv_now_ns();

	if (!o)
		return;
	for (uint32_t i = 0; i < d->nworkers; i++) {
		o->live_seen[i] = o->wd_seen[i] = qv_cnt_get(&d->workers[i]->cnt.beats);
		o->live_ns[i] = now;
	}
	o->ready = 1;
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving %u models on %u workers",
		 qv_daemon_models_ready(d), d->nworkers);
	notify_logged(msg, "READY");
	if (o->wd_period_ns) {
		notify_logged("WATCHDOG=1", "WATCHDOG");
		o->wd_next_ns = now + o->wd_period_ns / 2;
	}
}

int qv_ops_fd(const struct qv_daemon *d)
{
	const struct qv_ops *o = d->ops;

	return o && o->http ? qv_http_fd(o->http) : -1;
}

int qv_ops_timeout(struct qv_daemon *d, int timeout_ms)
{
	struct qv_ops *o = d->ops;

	if (!o)
		return timeout_ms;
	if (o->http) {
		int t = qv_http_timeout_ms(o->http);
		if (t >= 0 && t < timeout_ms)
			timeout_ms = t;
	}
	if (o->wd_period_ns && o->ready) {
		uint64_t now = qv_now_ns();
		int t = now >= o->wd_next_ns ? 0 : (int)((o->wd_next_ns - now) / 1000000u) + 1;
		if (t < timeout_ms)
			timeout_ms = t;
	}
	return timeout_ms;
}

void qv_ops_tick(struct qv_daemon *d)
{
	struct qv_ops *o = d->ops;
	uint64_t now, beats[QV_MAX_WORKERS];

	if (!o)
		return;
	now = qv_now_ns();
	for (uint32_t i = 0; i < d->nworkers; i++) {
		beats[i] = qv_cnt_get(&d->workers[i]->cnt.beats);
		if (beats[i] != o->live_seen[i]) {
			o->live_seen[i] = beats[i];
			o->live_ns[i] = now;
		}
	}
	if (o->wd_period_ns && o->ready && !o->stopping && now >= o->wd_next_ns) {
		o->wd_next_ns = now + o->wd_period_ns / 2;
		if (qv_workers_progressed(beats, o->wd_seen, d->nworkers)) {
			notify_logged("WATCHDOG=1", "WATCHDOG");
			o->wd_skipped_logged = 0;
		} else if (!o->wd_skipped_logged) {
			qv_log(QV_LOG_ERROR, "watchdog: a worker made no progress; not pinging");
			o->wd_skipped_logged = 1;
		}
	}
	if (o->http)
		qv_http_run(o->http);
}

void qv_ops_stopping(struct qv_daemon *d)
{
	struct qv_ops *o = d->ops;

	if (!o || o->stopping)
		return;
	o->stopping = 1;
	notify_logged("STOPPING=1\nSTATUS=draining", "STOPPING");
}

void qv_ops_stop(struct qv_daemon *d)
{
	struct qv_ops *o = d->ops;

	if (!o)
		return;
	qv_http_close(o->http);
	free(o);
	d->ops = NULL;
}
