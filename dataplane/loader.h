/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loader.h - the loader thread: the slow half of `quiverctl load` (the S3
 * fetch of `--path s3://...`, reading, parsing, compiling, tuning, the
 * precision guard, warming; qv_reg_build) runs here, so the control
 * thread keeps answering commands, hand-shakes and /metrics meanwhile.
 *
 * The control thread submits a job and goes on serving; the loader builds
 * one job at a time and then holds (builds nothing more) until the control
 * thread has taken the job back (qv_loader_next_done) and published it
 * (qv_reg_attach_built) or dropped it. So at most one model build runs in
 * the process at any time, and everything that touches the registry, the
 * routing tables and QSBR stays on the control thread.
 */
#ifndef QV_DP_LOADER_H
#define QV_DP_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "repo.h"

struct qv_registry;
struct qv_version;
struct qv_loader;

/* Loads waiting or running at once; one more is refused with -EBUSY. */
#define QV_LOADER_MAX_JOBS 16u

struct qv_load_job {
	/* the request (control thread, before submit; read-only afterwards) */
	char name[QV_REPO_NAME_MAX];
	uint32_t version;
	int precision;              /* enum qv_precision, <0: config.json's */
	char path[4096];            /* --path as given (a directory or s3://...), "" none */
	uint64_t conn_id;           /* who waits for the answer (control.c) */
	uint32_t seq;
	/* the result (loader thread, read by the control thread once done) */
	int rc;                     /* 0, 1 (an ensemble: build on the control thread), -errno */
	char dir[4096];             /* the directory built from ("" : the repository's) */
	struct qv_version *v;       /* rc 0: built, not published */
	char err[1024];
};

/*
 * Starts the thread. s3_cache ("" none) and s3_endpoint (NULL: AWS) are
 * quiverd's, kept for the fetches. QUIVERD_TEST_LOAD_DELAY_MS in the
 * environment (tests only) makes every job wait that long before its
 * build, and QUIVERD_TEST_LOAD_GATE=FILE makes it wait until FILE
 * exists, so a test can act while a load is in flight (the gate without
 * depending on timing). Both give way to a cancel. 0 or -errno.
 */
/*
 * A load's S3 source: the version directory at url fetched into cache (or
 * found current there); its local path in ret_dir. The error names the
 * load ("load NAME/VERSION: ..."). Blocking: the loader thread's, or the
 * command's own thread when quiverd runs without one.
 */
int qv_load_fetch_s3(const char *url, const char *cache, const char *endpoint, const char *name,
		     uint32_t version, char *ret_dir, size_t len, char *err, size_t err_len);

int qv_loader_start(struct qv_registry *reg, const char *s3_cache, const char *s3_endpoint,
		    struct qv_loader **ret);
/* An eventfd, readable when a finished job waits for qv_loader_next_done. */
int qv_loader_fd(const struct qv_loader *l);
/*
 * Queues j (malloc'd; the loader owns it until it comes back through
 * qv_loader_next_done). -EBUSY when the same name/version is already
 * queued or being built, or QV_LOADER_MAX_JOBS jobs are; err says which.
 */
int qv_loader_submit(struct qv_loader *l, struct qv_load_job *j, char *err, size_t err_len);
/* A finished job, or NULL; the caller owns it. Until the next call, the
 * loader starts no new build (its result may be being published). */
struct qv_load_job *qv_loader_next_done(struct qv_loader *l);
/*
 * Holds the loader between builds: true when no build runs and none will
 * start until qv_loader_resume; false (nothing held) while one runs.
 */
bool qv_loader_try_hold(struct qv_loader *l);
void qv_loader_resume(struct qv_loader *l);
/*
 * Shutdown: jobs not started are cancelled (rc -ECANCELED), the running
 * one is told to stop at its next step (a compile in progress finishes
 * first) and joined. Every job not yet taken comes back through
 * qv_loader_next_done afterwards; then qv_loader_free.
 */
void qv_loader_stop(struct qv_loader *l);
void qv_loader_free(struct qv_loader *l);

#endif /* QV_DP_LOADER_H */
