/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.h - what every end-to-end test needs: a real quiverd on a private
 * socket in a temp dir, started, waited for, stopped; /proc probes of its
 * fds, memfd mappings and RSS; child processes with captured stdout; and
 * the reference outputs the generator wrote beside each repository version;
 * quiverctl's --json replies, parsed.
 *
 * A test that cannot run here (no quiverd binary, not root where root is
 * needed) exits 77. A started daemon is killed at exit whatever happens, so
 * a failed assertion never leaves one behind.
 */
#ifndef QVT_DAEMON_H
#define QVT_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "npy.h"

#define QVT_SKIP 77

struct qvt_daemon {
	pid_t pid;              /* 0 once reaped */
	char dir[128];          /* private temp dir: socket and log */
	char sock[192];
	char log[192];
};

/* Starts `quiverd --repo REPO --socket DIR/quiverd.sock [extra...]` with
 * stderr to DIR/quiverd.log and waits (30 s at most) until the log says
 * "quiverd ready" or the socket accepts a connection. Returns 0 or -errno;
 * on failure the log is printed. Exits 77 if the binary does not exist. */
int qvt_daemon_start(struct qvt_daemon *d, const char *quiverd, const char *repo,
		     const char *const *extra);
/* SIGTERM, then waits up to timeout_ms (SIGKILL after). Returns 0 and the
 * wait status, or -ETIMEDOUT if it had to be killed. */
int qvt_daemon_stop(struct qvt_daemon *d, uint32_t timeout_ms, int *ret_wstatus);
/* The same without sending a signal. */
int qvt_daemon_wait(struct qvt_daemon *d, uint32_t timeout_ms, int *ret_wstatus);
/* The common ending: SIGTERM, assert exit status 0 within 30 s, print the
 * log if anything failed, clean up, print "ok"/"FAILED"; returns main's
 * exit code. */
int qvt_finish(struct qvt_daemon *d);
/* Kills it if running, removes its temp dir, forgets it (call before d
 * goes out of scope; qvt_finish does). */
void qvt_daemon_cleanup(struct qvt_daemon *d);
/* SIGKILL and reap. */
void qvt_daemon_kill(struct qvt_daemon *d);
void qvt_daemon_dump_log(const struct qvt_daemon *d);
/* Whether the daemon is still running (reaps it if it died). */
bool qvt_daemon_alive(struct qvt_daemon *d);

/* /proc probes; negative errno on failure. */
int qvt_fd_count(pid_t pid);
int qvt_memfd_maps(pid_t pid);     /* mappings of memfd-backed files */
long qvt_rss_kib(pid_t pid);

/* Runs argv (argv[0] a path) with stdout captured into out (NUL-terminated,
 * truncated at cap), stderr inherited. Returns 0 and the wait status. */
int qvt_run(const char *const *argv, char *out, size_t cap, int *ret_wstatus);

/* Runs `QUIVERCTL --socket SOCK --json ARG...` (the ARGs end with NULL)
 * and returns its stdout parsed, for the caller to cJSON_Delete. Dies
 * (qvt_die, naming the command and showing its output) if it cannot run,
 * exits other than 0 or prints something that is not JSON. */
struct cJSON;
__attribute__((sentinel)) struct cJSON *qvt_ctl_json(const char *quiverctl, const char *sock,
						      ...);
/* Sums "batches" and "batch_rows" (runs of more than one request, and the
 * rows in them) over the versions of `model` in `quiverctl stats --json`;
 * dies if a version lacks them. 0 and 0 when the model has no route. */
void qvt_stats_batches(const char *quiverctl, const char *sock, const char *model,
		       double *ret_batches, double *ret_rows);

uint64_t qvt_now_ns(void);
void qvt_sleep_ms(uint32_t ms);
void qvt_sleep_us(uint32_t us);

/* Failure accounting: qvt_fail prints and counts; qvt_exit_code is 0 if
 * nothing failed. qvt_die prints, kills the daemon and exits 1. */
__attribute__((format(printf, 1, 2))) void qvt_fail(const char *fmt, ...);
__attribute__((format(printf, 1, 2), noreturn)) void qvt_die(const char *fmt, ...);
int qvt_failures(void);

/* Reference data: REPO/<model>/<version>/x.npy and y.npy. */
struct qvt_ref {
	struct qv_npy x, y;
	uint32_t rows, in_dim, out_dim;
};
int qvt_ref_load(const char *repo, const char *model, uint32_t version, struct qvt_ref *ret);
void qvt_ref_free(struct qvt_ref *r);
/* Compares n floats with |got - want| <= atol + rtol * |want|; returns the
 * number of mismatches and prints the first few, tagged with `what`. */
size_t qvt_compare(const float *got, const float *want, size_t n, double rtol, double atol,
		   const char *what);

#define QVT_RTOL 1e-4
#define QVT_ATOL 1e-5

#endif /* QVT_DAEMON_H */
