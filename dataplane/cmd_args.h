/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_args.h - parsing and validating the arguments of control commands
 * (pure: JSON in, a struct or a readable error out), so every refusal is
 * unit-tested without a daemon. Semantic checks that need the routing
 * state (unknown model, version in use) live in route_cmds.c.
 */
#ifndef QV_DP_CMD_ARGS_H
#define QV_DP_CMD_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "repo.h"

enum qv_cmd_kind {
	QV_CMD_LOAD = 1, QV_CMD_UNLOAD, QV_CMD_SWAP, QV_CMD_CANARY, QV_CMD_SHADOW,
	QV_CMD_PROMOTE, QV_CMD_ROLLBACK, QV_CMD_FALLBACK, QV_CMD_FAILPOINT,
};

struct qv_cmd_args {
	enum qv_cmd_kind kind;
	char name[QV_REPO_NAME_MAX];
	uint32_t version;           /* 0 = clear (canary, shadow) */
	uint32_t ppm;
	int sticky;
	uint32_t on;                /* QV_RT_FB_* trigger bits (fallback) */
	int manual;
	int clear;
	int fail;                   /* failpoint: 1 = runs of the version fail */
	char path[4096];            /* load: "" = REPO/<name>/<version>/ */
	int precision;              /* load: -1 = config.json's, else qv_config_precision() */
};

/* "load" -> QV_CMD_LOAD ..., 0 for a command that is not a routing command. */
enum qv_cmd_kind qv_cmd_kind_of(const char *cmd);

/* Validates req for `kind`. Returns 0 or -EINVAL with a message in err. */
int qv_cmd_args_parse(enum qv_cmd_kind kind, const cJSON *req, struct qv_cmd_args *ret_args,
		      char *err, size_t err_len);

/*
 * A refused command's reply: {"error": the formatted message}, with err
 * (a negative errno) in *ret_status. NULL only when out of memory.
 */
cJSON *qv_cmd_fail(int32_t *ret_status, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* QV_DP_CMD_ARGS_H */
