/* SPDX-License-Identifier: Apache-2.0 */
/*
 * routes.h - the routing table: one route per model directory of the
 * repository, its handle being its index (sorted by name), stable for the
 * daemon's life. Built by the control thread before any worker serves and
 * immutable afterwards, so workers read it without synchronization beyond
 * the channel hand-off that happens-after it was built.
 *
 * A model that fails to load keeps its route, in state FAILED, with the
 * loader's message; requests to it are answered UNAVAILABLE.
 */
#ifndef QV_DP_ROUTES_H
#define QV_DP_ROUTES_H

#include <stdint.h>

#include "qv_model.h"
#include "qv_proto.h"
#include "repo.h"

enum qv_route_state {
	QV_ROUTE_READY = 1,
	QV_ROUTE_FAILED = 2,
};

/* What a worker reads per request: one 32-byte record, nothing else. */
struct qv_route_hot {
	uint32_t state;
	uint32_t version;
	uint32_t in_dim;
	uint32_t out_dim;
	uint32_t max_batch;
	uint32_t pad[3];
};
_Static_assert(sizeof(struct qv_route_hot) == 32, "hot route is half a line");

struct qv_route {
	char name[QV_REPO_NAME_MAX];
	uint32_t handle;
	uint32_t version;
	uint32_t state;
	uint32_t max_batch;
	uint64_t default_deadline_ns;
	qv_model *model;            /* NULL when FAILED */
	struct qv_model_info info;
	char error[QV_REPO_ERR_MAX];
};

struct qv_routes {
	struct qv_route *r;
	struct qv_route_hot *hot;   /* parallel to r, cache-line aligned */
	uint32_t n;
	uint32_t nready;
};

/*
 * Scans `repo_dir` and loads every model. max_batch_cap (0 = none) bounds
 * every route's max batch; a model without config max_batch gets
 * min(QV_DEFAULT_MAX_BATCH, cap). Returns 0 even when some models failed
 * (see nready), -errno when the repository cannot be read.
 */
int qv_routes_load(const char *repo_dir, uint32_t max_batch_cap, struct qv_routes *ret);
void qv_routes_free(struct qv_routes *rt);

/* Index of the route called name, or -ENOENT. */
int qv_routes_find(const struct qv_routes *rt, const char *name);

/* Fills the wire description of route h (which must be READY). */
void qv_route_to_wire(const struct qv_route *r, struct qv_model_wire *ret);

const char *qv_route_state_name(uint32_t state);

#endif /* QV_DP_ROUTES_H */
