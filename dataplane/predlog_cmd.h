/* SPDX-License-Identifier: Apache-2.0 */
/*
 * predlog_cmd.h - the prediction log seen from the control thread: the
 * `log` command, its fields in `models` and `stats`, and its Prometheus
 * families.
 */
#ifndef QV_DP_PREDLOG_CMD_H
#define QV_DP_PREDLOG_CMD_H

#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

#include "quiverd.h"

/*
 * {"cmd": "log", "name": NAME, "sample": P, "dir": D (optional)}: sets
 * NAME's sampling (P in 0..1, 0 off) on every loaded version at once.
 * Refusals name the field; *ret_status 0 or -errno.
 */
cJSON *qv_predlog_cmd(struct qv_daemon *d, const cJSON *req, int32_t *ret_status);

/* Adds "log_sample" and "log_dir" of route `handle` to a models / stats entry. */
void qv_predlog_json_route(struct qv_daemon *d, cJSON *o, uint32_t handle);

/* Adds the "predlog" counters object to a stats reply. */
void qv_predlog_json_totals(struct qv_daemon *d, cJSON *o);

/* quiver_predlog_* families. */
void qv_predlog_prom(struct qv_daemon *d, FILE *f);

#endif /* QV_DP_PREDLOG_CMD_H */
