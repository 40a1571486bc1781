/* SPDX-License-Identifier: Apache-2.0 */
/*
 * routing.h - what the routing tests (swap storm, canary, shadow, fallback,
 * refused commands) and the swap benchmark share: quiverctl runs and raw
 * control commands, a skip when the daemon predates the routing commands,
 * and the reference outputs of every trade-mlp version on one input set
 * (gen_models.py writes them to versions/common/ beside the repository), so
 * that an answer can be checked against the version its completion names.
 */
#ifndef QVT_ROUTING_H
#define QVT_ROUTING_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "check.h"

#define QVT_NVERSIONS 4     /* trade-mlp 1..4, see gen_models.py gen_versions */

struct qvt_refs {
	struct qvt_ref v[QVT_NVERSIONS + 1];   /* [0] unused */
	uint32_t rows, in_dim;
	char versions_dir[512];                /* REPO/../versions */
};

/* Loads versions/common/trade-mlp/1..4 (same x for all); exits 77 when
 * they were not generated. */
void qvt_refs_load(const char *repo, struct qvt_refs *ret);
void qvt_refs_free(struct qvt_refs *r);
/* Whether out (out_dim 1) matches version v's output for row; NaN matches
 * NaN (version 4's answer to a zero x0). */
bool qvt_refs_match(const struct qvt_refs *r, uint32_t v, uint32_t row, float out);
/* Rows whose outputs of versions a and b differ clearly (> 1e-2), so an
 * answer names its version unambiguously. Returns how many, written to
 * rows (cap entries). */
uint32_t qvt_refs_distinct(const struct qvt_refs *r, uint32_t a, uint32_t b, uint32_t *rows,
			   uint32_t cap);

/* quiverctl --socket SOCK ARGS... (NULL-terminated); stdout into out.
 * Returns the exit code (-1 if it did not exit normally). */
int qvt_ctl(const char *quiverctl, const char *sock, char *out, size_t cap, ...)
	__attribute__((sentinel));
/* The same as uid/gid 65534 through setpriv; 126/127 when it cannot run. */
int qvt_ctl_nobody(const char *quiverctl, const char *sock, char *out, size_t cap, ...)
	__attribute__((sentinel));

/* One raw control command (printf-style JSON). Returns the parsed reply
 * (NULL if it is not JSON) and hdr.status in *ret_status; dies if the
 * socket fails. */
cJSON *qvt_cmd(const char *sock, int32_t *ret_status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same, asserting status 0; returns the reply or NULL after qvt_fail. */
cJSON *qvt_cmd_ok(const char *sock, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Exits 77 (after cleaning the daemon up) when quiverd does not know the
 * routing commands yet. */
void qvt_need_routing(struct qvt_daemon *d);

/* The route object of `name` in a routes reply (borrowed), or NULL. */
const cJSON *qvt_route_of(const cJSON *routes_reply, const char *name);
/* A number field of o, -1 if absent. */
double qvt_num(const cJSON *o, const char *key);

/*
 * A pipelined request stream on one client (one thread): keeps `depth`
 * trade-mlp requests in flight, one row each, cycling over `rows` of the
 * common reference inputs, and checks every completion: its request id is
 * one in flight (else unknown_id: lost, duplicated or invented), status
 * OK, and the output matches the reference of the version it names (else
 * mismatched: misrouted or wrong). Routing keys cycle over `keys` if set.
 */
#define QVT_STREAM_MAX_DEPTH 32
struct qvt_stream {
	qv_client *c;
	uint32_t handle, depth;
	const struct qvt_refs *refs;
	const uint32_t *rows;
	uint32_t nrows;
	const uint64_t *keys;      /* NULL: key 0 */
	uint32_t nkeys;
	uint64_t deadline_offset_ns; /* 0: none */
	/* optional: every completion, with its row and key */
	void (*on_done)(void *arg, const struct qv_result *res, uint32_t row, uint64_t key);
	void *arg;

	uint64_t next, sent, done, ok, bad_status, mismatched, unknown_id;
	uint64_t by_version[QVT_NVERSIONS + 1], canary_flag, fallback_flag;

	bool busy[QVT_STREAM_MAX_DEPTH];
	uint64_t id[QVT_STREAM_MAX_DEPTH];
	uint32_t row[QVT_STREAM_MAX_DEPTH];
	uint64_t key[QVT_STREAM_MAX_DEPTH];
	float out[QVT_STREAM_MAX_DEPTH][4];
};

/* Submits until depth requests are in flight (at most `budget` new ones)
 * and reaps what completed; returns completions reaped, or -errno. */
int qvt_stream_step(struct qvt_stream *s, uint64_t budget);
/* Reaps until nothing is in flight or timeout_ms passes; 0 or -ETIMEDOUT. */
int qvt_stream_drain(struct qvt_stream *s, uint32_t timeout_ms);
/* Prints the counts, tagged; returns whether all is well (every sent
 * request completed exactly once, OK, and matching its version). */
bool qvt_stream_report(const struct qvt_stream *s, const char *who);

#endif /* QVT_ROUTING_H */
