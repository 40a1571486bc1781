/* SPDX-License-Identifier: Apache-2.0 */
/*
 * quiverd.h - quiverd's process-wide state, owned by the control thread
 * (workers see only their own struct qv_worker and the published tables).
 */
#ifndef QV_DP_QUIVERD_H
#define QV_DP_QUIVERD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "routes.h"
#include "worker.h"

struct qv_udp_dpdk;
struct qv_udp_dpdk_stats;

#define QV_MAX_ALLOW 32
#define QV_MAX_WORKERS 256

/* One uid may hold this many channels open unless --max-channels-per-uid
 * says otherwise: a single client (or a leak in one) must not take every
 * worker's channel table (QV_WORKER_MAX_CHANS each). */
#define QV_DEFAULT_CHANS_PER_UID 256u

struct qv_daemon {
	/* configuration (command line) */
	const char *repo;
	const char *sock_path;
	mode_t sock_mode;
	uid_t allow_uid[QV_MAX_ALLOW];
	uint32_t n_allow_uid;
	gid_t allow_gid[QV_MAX_ALLOW];
	uint32_t n_allow_gid;
	gid_t admin_gid[QV_MAX_ALLOW];  /* --admin-gid: may run mutating commands */
	uint32_t n_admin_gid;
	const char *udp_addr;
	const char *dpdk_eal;       /* --dpdk: EAL arguments */
	const char *dpdk_ip;
	uint16_t dpdk_port;
	void *dpdk;                 /* struct qv_udp_dpdk *, when --dpdk */
	/* qv_udp_dpdk_stats, set with dpdk: the commands reach the DPDK back end's
	 * counters through it, so only quiverd links the DPDK library. */
	void (*dpdk_stats)(const struct qv_udp_dpdk *dp, struct qv_udp_dpdk_stats *ret);
	void *udp_allow;            /* struct qv_allow_list *, NULL: allow all */
	uint32_t max_batch;
	uint32_t max_chans_per_uid;  /* channels one uid may hold open at once */
	const char *state_path;     /* --state-file: routes kept across restarts; NULL */
	const char *s3_endpoint;    /* --s3-endpoint: an S3-compatible store; NULL: AWS */
	char s3_cache[4096];        /* --s3-cache or the default (s3fetch.h); "" if none */
	char repo_local[4096];      /* --repo s3://...: the fetched copy d->repo points at */
	int ready_fd;               /* detached: the parent waits for one byte here; -1 */
	int cores[QV_MAX_WORKERS];
	uint32_t ncores;

	/* state */
	struct qv_registry reg;
	struct qv_worker *workers[QV_MAX_WORKERS];
	uint32_t nworkers;
	void *udp[QV_MAX_WORKERS];  /* per-worker UDP back end, when --udp */
	uint64_t start_ns;
	uint64_t tsc_hz;
	uint32_t channels_open;
	uint64_t channels_total;
	int draining;
	int drain_requested;        /* the drain command: the control loop drains */

	/* The loader thread (loader.c), NULL: loads run on the calling thread
	 * (before the control loop, and in tests that drive the commands). */
	void *loader;               /* struct qv_loader * */
	/* Who sent the command being handled (control.c sets them before
	 * qv_cmd_handle): a load answered later is addressed to them. */
	uint64_t cmd_conn_id;
	uint32_t cmd_seq;

	/* operations (ops.c): --metrics-listen, sd_notify, the watchdog */
	const char *metrics_listen; /* ADDR:PORT, NULL: no HTTP endpoint */
	void *ops;                  /* struct qv_ops *, set by qv_ops_start */
};

/* Runs the control loop until SIGTERM/SIGINT (drains) or a fatal error. */
int qv_control_run(struct qv_daemon *d, int sigfd);

/*
 * Answers one JSON command; `admin` says the caller may run mutating ones.
 * *ret_reply is malloc'd JSON (caller frees), *ret_status 0 or -errno.
 * Returns 0, -ENOMEM when no reply could be built, or 1 when the answer
 * comes later (a load handed to the loader thread, for d->cmd_conn_id and
 * d->cmd_seq: see qv_load_finish); *ret_reply is then untouched.
 */
int qv_cmd_handle(struct qv_daemon *d, const char *json, size_t len, int admin,
		  char **ret_reply, int32_t *ret_status);

/* Routing commands (route_cmds.c): *ret_reply set on success and on failure;
 * returns 0, 1 (answered later, as qv_cmd_handle), or -ENOENT (not one). */
int qv_route_cmd(struct qv_daemon *d, const char *cmd, const void *req, void **ret_reply,
		 int32_t *ret_status);

/*
 * A load job back from the loader thread (route_cmds.c): publishes the
 * built version (or, for an ensemble, builds it here) and makes the reply
 * the command would have had, JSON in *ret_reply (caller frees, may be
 * NULL out of memory) with *ret_status. `stopping`: quiverd drains, the job
 * is dropped and answered -ESHUTDOWN. Takes the job's version either way.
 */
struct qv_load_job;
void qv_load_finish(struct qv_daemon *d, struct qv_load_job *j, int stopping, char **ret_reply,
		    int32_t *ret_status);

/* Writes the UDP back ends' counters as Prometheus text (commands.c). */
void qv_udp_metrics_write(const struct qv_daemon *d, FILE *f);

/* Routes with a servable primary. */
uint32_t qv_daemon_models_ready(const struct qv_daemon *d);

/* commands.c: a version's precision fields ("precision", the guard's
 * measured errors, "precision_note") added to a models / routes entry. */
struct cJSON;
struct qv_precision_report;
void qv_precision_json(struct cJSON *e, const struct qv_precision_report *p);

#endif /* QV_DP_QUIVERD_H */
