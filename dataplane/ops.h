/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops.h - what quiverd does for its operator besides serving: the HTTP
 * endpoint of --metrics-listen (http_metrics.c), the service manager's
 * notifications READY=1 / STOPPING=1 / WATCHDOG=1 (notify.c), and the
 * readiness /readyz reports. Control thread only; the hooks below are all
 * the control loop knows of it.
 */
#ifndef QV_DP_OPS_H
#define QV_DP_OPS_H

struct qv_daemon;

/* At start, before the repository loads: opens the HTTP listener (so a bad
 * or busy address fails the start early) and reads the watchdog settings.
 * 0 or -errno (logged). */
int qv_ops_start(struct qv_daemon *d);
/* The repository is loaded and every worker polls: READY=1. */
void qv_ops_ready(struct qv_daemon *d);
/* The descriptor the control loop polls for POLLIN (-1: none), and the
 * poll timeout lowered to what HTTP timeouts and the watchdog need. */
int qv_ops_fd(const struct qv_daemon *d);
int qv_ops_timeout(struct qv_daemon *d, int timeout_ms);
/* After every poll: answers HTTP requests, pings the watchdog when due. */
void qv_ops_tick(struct qv_daemon *d);
/* The drain begins: STOPPING=1; /readyz answers 503 from now on. */
void qv_ops_stopping(struct qv_daemon *d);
/* Closes the listener and frees (safe when qv_ops_start never ran). */
void qv_ops_stop(struct qv_daemon *d);

#endif /* QV_DP_OPS_H */
