/* SPDX-License-Identifier: Apache-2.0 */
/*
 * routes.h - versions, routes and the published routing table.
 *
 * The control thread owns a registry: one route per model name (handle =
 * creation order, stable for the daemon's life), each with its loaded
 * versions and their roles (primary, previous, canary, shadow, fallback).
 * Workers never see the registry: they see an immutable struct qv_table,
 * built from it after every change and published with one pointer store.
 * See routes.c for publication and reclamation.
 */
#ifndef QV_DP_ROUTES_H
#define QV_DP_ROUTES_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "numa_mem.h"
#include "qsbr.h"
#include "qv_model.h"
#include "qv_proto.h"
#include "repo.h"
#include "route_pick.h"
#include "stats.h"

#define QV_ROUTE_MAX_VERSIONS 16u
#define QV_MAX_VSLOTS 256u          /* versions loaded at once, daemon-wide */
#define QV_MAX_ROUTES 1024u

struct qv_worker;
struct qv_predlog;

enum qv_route_state {
	QV_ROUTE_READY = 1,
	QV_ROUTE_FAILED = 2,        /* no version could be loaded at start */
};

/*
 * A loaded version. Immutable once published: workers read it through a
 * table; the control thread frees it only after it left every table and a
 * grace period passed (routes.c).
 */
struct qv_version {
	uint32_t version;
	uint32_t handle;
	uint32_t slot;              /* stats slot in every worker's qv_vstats array */
	uint32_t max_batch;
	uint64_t deadline_cycles;   /* config default_deadline_us in TSC cycles, 0 none */
	uint64_t default_deadline_ns;
	/* config max_queue_delay_us in TSC cycles (0: never wait) and the rows
	 * a held batch waits for (max_batch when not set). */
	uint64_t queue_delay_cycles;
	uint32_t preferred_batch;
	uint32_t queue_delay_us;
	/*
	 * Failpoint, for testing what depends on a failing model (the `error`
	 * fallback trigger): while set, every run of this version counts as
	 * failed. The one field a worker reads that changes after publication;
	 * set by the admin command `failpoint`, relaxed both ways (no data
	 * rides on it; a worker sees it within a turn or so).
	 */
	_Atomic uint32_t failpoint;
	/*
	 * Prediction log sampling threshold (predlog.h: 0 off, QV_PLOG_THR_ONE
	 * every request); on the first line beside failpoint, set by the
	 * control thread (`quiverctl log`, config.json "log") at any time,
	 * relaxed both ways like failpoint.
	 */
	_Atomic uint64_t log_thr;
	qv_model *model;            /* models[0] */
	uint32_t nmodels;           /* one copy per NUMA node with workers */
	qv_model *models[QV_NUMA_MAX_COPIES];
	int model_node[QV_NUMA_MAX_COPIES];
	/* An ensemble pins its steps' versions: unload says -EBUSY while pins > 0,
	 * and the steps are unpinned only when the ensemble is freed. */
	uint32_t pins;
	uint32_t nsteps;
	struct qv_version **steps;  /* [nsteps], NULL for a plain model */
	struct qv_model_info info;
	struct qv_precision_report prec;  /* asked for, served, the guard's measured error */
	double load_ms;
	/* Float32 output words of a packed output row, as spans: the nonfinite
	 * check and the shadow comparison read only these (outcheck.h).
	 * out_mixed 0: the whole row is floats. */
	uint32_t out_mixed;
	uint32_t n_fspans;
	struct {
		uint32_t off, n;    /* 4-byte words */
	} fspans[QV_MAX_TENSORS];
	uint32_t nctx;
	qv_exec_ctx **ctx;          /* [nctx], by worker id, memory on its node */
	char *dir;                  /* where it was loaded from (control thread, state file) */
	/* config.json's "log" from the build until the version is attached
	 * (control thread only; NULL when config.json has none) */
	struct qv_model_config *log_cfg;
};

/* What a worker reads per request. Line 0 is all a plain route touches. */
struct qv_route_hot {
	uint32_t state;
	uint32_t flags;             /* QV_RT_* (route_pick.h); 0: primary only */
	uint32_t in_dim;
	uint32_t out_dim;
	uint32_t max_batch;         /* min over the versions in a role */
	uint32_t n_inputs;          /* input tensors of a packed row (UDP 2 says how many it sent) */
	const struct qv_version *primary;
	const struct qv_version *canary;
	const struct qv_version *fallback;
	uint64_t canary_thr;
	uint32_t n_outputs;         /* output tensors of a packed row */
	uint32_t pad1;
	/* line 1: only with QV_RT_SHADOW */
	alignas(64) const struct qv_version *shadow;
	uint64_t shadow_thr;
};
_Static_assert(sizeof(struct qv_route_hot) == 128, "hot route is two lines");

struct qv_table {
	uint32_t n;                 /* routes (handles 0..n-1) */
	uint64_t gen;
	struct qv_route_hot *hot;   /* [n], 64-byte aligned */
	struct qv_lookup_reply *wire; /* [n], for name lookups */
};

/* The control thread's description of one route. */
struct qv_route {
	char name[QV_REPO_NAME_MAX];
	uint32_t handle;
	struct qv_version *vers[QV_ROUTE_MAX_VERSIONS];
	uint32_t nvers;
	uint32_t primary, previous; /* version numbers, 0 = none */
	uint32_t canary, canary_ppm;
	int canary_sticky;
	uint32_t shadow, shadow_ppm;
	uint32_t fallback, fb_on;   /* fb_on: QV_RT_FB_* */
	char error[QV_REPO_ERR_MAX];/* why the route has no primary */
};

struct qv_registry {
	const char *repo;
	uint32_t max_batch_cap;
	uint64_t tsc_hz;
	struct qv_route *routes;    /* [QV_MAX_ROUTES] */
	uint32_t n;
	struct qv_worker **workers;
	uint32_t nworkers;
	uint64_t gen;
	/* Written by the control thread (release), read by workers (acquire). */
	alignas(64) _Atomic(struct qv_table *) cur;
	struct qv_qsbr qsbr;
	uint8_t slot_used[QV_MAX_VSLOTS];
	struct qv_vsum *base;       /* [QV_MAX_VSLOTS]: counts of a slot's earlier owners */
	struct qv_predlog *predlog; /* NULL: no prediction log (tests) */
};

/* Workers must exist (created, not started): versions get one exec ctx each. */
int qv_reg_init(struct qv_registry *reg, const char *repo, uint32_t max_batch_cap,
		uint64_t tsc_hz, struct qv_worker **workers, uint32_t nworkers);
/* After the workers are joined. */
void qv_reg_fini(struct qv_registry *reg);

/* Loads the highest version of every model of the repository and publishes. */
int qv_reg_load_repo(struct qv_registry *reg);
/*
 * SIGHUP: scans the repository again and loads what is new - models not
 * seen before (served at once, as at start) and, for known models, a
 * version directory above every version loaded (loaded but not served:
 * `quiverctl swap` or `canary` puts it to work). Routes, canaries and
 * fallbacks set by quiverctl are kept. *ret_loaded (may be NULL): versions loaded.
 */
int qv_reg_reload_repo(struct qv_registry *reg, uint32_t *ret_loaded);

/*
 * Loads name/version (model file from dir, or REPO/name/version/ when dir
 * is NULL), compiles, creates every worker's ctx, warms, then publishes
 * (a new name becomes a new route with this version as primary).
 * An ensemble version (REPO/name/version/config.json, repo.h) resolves its
 * steps to loaded versions and pins them; errors name the step.
 * Returns 0, -EEXIST, -ENOENT, -EINVAL, -ENOSPC or -EIO; err says why.
 */
int qv_reg_load(struct qv_registry *reg, const char *name, uint32_t version, const char *dir,
		double *ret_load_ms, char *err, size_t err_len);
/* The same with config.json's precision replaced by `precision` (enum
 * qv_precision) unless it is negative (quiverctl load --precision). */
int qv_reg_load_prec(struct qv_registry *reg, const char *name, uint32_t version, const char *dir,
		     int precision, double *ret_load_ms, char *err, size_t err_len);

/*
 * Sets route r's prediction log (predlog.h qv_predlog_set) and stores the
 * new sampling threshold in every loaded version of r (control thread).
 * -EINVAL with a message in why when the settings are refused.
 */
struct qv_plog_cfg;
int qv_reg_set_log(struct qv_registry *reg, struct qv_route *r, const struct qv_plog_cfg *pc,
		   char *why, size_t why_len);

/*
 * A load in two halves, so that the slow one can run off the control
 * thread (loader.c):
 * qv_reg_build - finds the model file in dir (REPO/name/version/ when
 *   NULL), reads config.json and MLmodel, compiles, makes every worker's
 *   ctx and warms. Touches only registry fields fixed at start: safe on
 *   another thread while the control thread serves, one build at a time.
 *   Returns 0 and *ret_v (unpublished), 1 when dir holds an ensemble (its
 *   steps come from the registry: qv_reg_load_prec on the control thread),
 *   or -errno with err "load NAME/V: why".
 * qv_reg_attach_built - control thread: checks against the routes as they
 *   are now (-EEXIST, shapes of the primary), takes a stats slot, attaches
 *   and publishes. Takes v whatever it returns.
 * qv_reg_build_free - control thread: drops a built, unpublished version.
 */
int qv_reg_build(struct qv_registry *reg, const char *name, uint32_t version, const char *dir,
		 int precision, struct qv_version **ret_v, char *err, size_t err_len);
int qv_reg_attach_built(struct qv_registry *reg, const char *name, uint32_t version,
			struct qv_version *v, double *ret_load_ms, char *err, size_t err_len);
void qv_reg_build_free(struct qv_registry *reg, struct qv_version *v);

/* Builds a table from the registry and publishes it; the old one is retired. */
int qv_reg_publish(struct qv_registry *reg);

/* Takes v out of its route (caller checked it has no role) and retires it.
 * -EBUSY while an ensemble's version uses it as a step. */
int qv_reg_unload(struct qv_registry *reg, struct qv_route *r, uint32_t version);

/* Runs deferred frees whose grace period passed; returns how many wait. */
uint32_t qv_reg_reclaim(struct qv_registry *reg);

struct qv_route *qv_reg_find(struct qv_registry *reg, const char *name);
struct qv_version *qv_route_version(const struct qv_route *r, uint32_t version);

/* The role version v plays in r ("primary", "canary", "shadow", "fallback",
 * "previous"), or NULL when it plays none. */
const char *qv_route_role(const struct qv_route *r, uint32_t v);

/* Name -> wire description of a route with a primary, or -ENOENT. */
int qv_reg_lookup(struct qv_registry *reg, const char *name, struct qv_lookup_reply *ret);

/* Sum of a version's stats over every worker, since it was loaded. */
void qv_reg_version_stats(const struct qv_registry *reg, const struct qv_version *v,
			  struct qv_vsum *ret);

void qv_version_to_wire(const struct qv_version *v, const char *name,
			struct qv_lookup_reply *ret);

#endif /* QV_DP_ROUTES_H */
