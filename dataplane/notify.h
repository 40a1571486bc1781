/* SPDX-License-Identifier: Apache-2.0 */
/*
 * notify.h - the service manager's notification protocol (sd_notify(3)):
 * one datagram of "KEY=VALUE\n" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET, and the watchdog settings systemd passes in
 * $WATCHDOG_USEC / $WATCHDOG_PID. Control thread only.
 */
#ifndef QV_DP_NOTIFY_H
#define QV_DP_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Sends msg (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET: a path
 * ("/run/systemd/notify") or an abstract name ("@name"). Returns 1 when
 * sent, 0 when NOTIFY_SOCKET is unset (not run by a service manager),
 * -EINVAL for an address it cannot use, or the -errno of the send (-EAGAIN:
 * the receiver's queue is full; the call never blocks).
 */
int qv_notify_send(const char *msg);

/*
 * The watchdog period in microseconds from $WATCHDOG_USEC, when it is set
 * for this process ($WATCHDOG_PID unset or our pid). Returns 1 and
 * *ret_usec, 0 when no watchdog is asked for, -EINVAL when the variables
 * are malformed.
 */
int qv_notify_watchdog_usec(uint64_t *ret_usec);

/*
 * Whether every one of n workers made progress: each heartbeat counter
 * beats[i] differs from seen[i], the value at the previous check. seen[]
 * becomes beats[] either way. A worker stuck in a model run, or a dead
 * thread, keeps its counter and makes this false.
 */
bool qv_workers_progressed(const uint64_t *beats, uint64_t *seen, uint32_t n);

#endif /* QV_DP_NOTIFY_H */
