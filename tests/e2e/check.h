/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check.h - libquiver round trips checked against the reference outputs,
 * shared by the end-to-end tests.
 */
#ifndef QVT_CHECK_H
#define QVT_CHECK_H

#include <stdint.h>

#include "daemon.h"
#include "quiver.h"

/* A model as the tests use it: its descriptor and its served version's
 * reference data. */
struct qvt_model {
	struct qv_model_desc desc;
	struct qvt_ref ref;
};

/* Lookup + reference load + dims cross-check; qvt_die on failure. */
void qvt_model_open(qv_client *c, const char *repo, const char *name, struct qvt_model *ret);

/*
 * Synchronous qv_infer of reference rows [row0, row0 + rows) in one
 * request; checks status OK, version, request id, out_floats and values.
 * Returns 0, or -1 after qvt_fail.
 */
int qvt_infer_check(qv_client *c, const struct qvt_model *m, uint32_t row0, uint32_t rows,
		    const char *who);

/*
 * Opens a client with `name` or dies. Its heartbeat bound is QVT_DEAD_MS,
 * not libquiver's 100 ms default: on a 2-core machine where the test's
 * spinning clients and the daemon's polling worker share the cores, the
 * worker can be descheduled for longer than 100 ms, and a client that
 * declared the daemon dead stays dead. Only test_daemon_kill, which is
 * about that bound, uses the default.
 */
/* A new client of sock checks `rows` reference rows of model through
 * qvt_infer_check and closes: "the daemon still serves". */
void qvt_serves(const char *sock, const char *repo, const char *model, uint32_t rows,
		const char *who);

#define QVT_DEAD_MS 5000
qv_client *qvt_connect(const char *sock, const char *name, uint32_t slots);

#endif /* QVT_CHECK_H */
