/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl.h - quiverctl internals: the command table, the connection to
 * quiverd's control socket, and the small table printer the commands share.
 */
#ifndef QV_CTL_H
#define QV_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes; documented in `quiverctl --help` and ctl/README.md. */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_DAEMON = 1,   /* the daemon answered with an error */
	CTL_EXIT_USAGE = 2,    /* bad arguments */
	CTL_EXIT_CONNECT = 3,  /* cannot reach the daemon */
	CTL_EXIT_PERM = 4,     /* permission denied */
};

struct ctl_opts {
	const char *socket_path;
	bool json;
	uint32_t timeout_ms;
};

/* A reply from quiverd: hdr.status and the JSON payload (NUL-terminated). */
struct ctl_reply {
	int32_t status;
	char *json;     /* malloc'ed */
	size_t len;
};

struct cJSON;

/*
 * One entry a subcommand. Adding a command is one entry in the table in
 * quiverctl.c: `build` turns the arguments left after the name into the
 * request object (NULL = the command takes no arguments and sends
 * {"cmd":"<name>"}); `render` prints the human view of a successful reply
 * (NULL = pretty-printed JSON).
 */
struct ctl_cmd {
	const char *name;
	const char *args;      /* usage synopsis of the arguments, "" if none */
	const char *summary;   /* one line for the global help */
	const char *help;      /* paragraph for `quiverctl CMD --help` */
	int (*build)(int argc, char **argv, struct cJSON *req);
	void (*render)(const struct cJSON *reply);
};

/* ctl_conn.c: one request/reply round trip. Returns 0 or -errno (-ENOENT,
 * -ECONNREFUSED, -EACCES, -ETIMEDOUT, -EPROTO...). */
int ctl_call(const char *socket_path, uint32_t timeout_ms, const char *json, size_t len,
	     struct ctl_reply *ret_reply);
void ctl_reply_free(struct ctl_reply *r);

/* ctl_cmds.c: the human views. */
void ctl_render_status(const struct cJSON *reply);
void ctl_render_models(const struct cJSON *reply);

/* ctl_table.c: aligned columns. Cells are copied. */
struct ctl_table;
struct ctl_table *ctl_table_new(unsigned ncols);
void ctl_table_add(struct ctl_table *t, const char *const *cells);
void ctl_table_print(const struct ctl_table *t);
void ctl_table_free(struct ctl_table *t);

#endif /* QV_CTL_H */
