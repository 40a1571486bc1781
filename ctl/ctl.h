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
#include <stdio.h>

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
	bool timeout_given;     /* --timeout on the command line */
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
	uint32_t timeout_ms;   /* default reply timeout if not 5 s (load: compile + warm) */
	/* A command that is not one request and one reply (top): runs instead
	 * of build/render with its arguments (argv[0] its name) and returns
	 * the exit code. */
	int (*run)(int argc, char **argv, struct ctl_opts *o);
};

/* ctl_apply.c: `quiverctl apply -f FILE`. */
int ctl_apply(int argc, char **argv, struct ctl_opts *o);

/* ctl_top.c: `quiverctl top`. */
int ctl_top(int argc, char **argv, struct ctl_opts *o);

/* ctl_conn.c: one request/reply round trip. Returns 0 or -errno (-ENOENT,
 * -ECONNREFUSED, -EACCES, -ETIMEDOUT, -EPROTO...). */
int ctl_call(const char *socket_path, uint32_t timeout_ms, const char *json, size_t len,
	     struct ctl_reply *ret_reply);
void ctl_reply_free(struct ctl_reply *r);

/* ctl_cmds.c: the human views. */
void ctl_render_status(const struct cJSON *reply);
void ctl_render_models(const struct cJSON *reply);

/* ctl_views.c: the human views of the control-plane commands. */
void ctl_render_routes(const struct cJSON *reply);
void ctl_render_route(const struct cJSON *reply);
void ctl_render_load(const struct cJSON *reply);
void ctl_render_swap(const struct cJSON *reply);
void ctl_render_state(const struct cJSON *reply);
void ctl_render_metrics(const struct cJSON *reply);
void ctl_render_stats(const struct cJSON *reply);

/* ctl_args.c: arguments -> request objects. Builders return a ctl_exit
 * code (usage errors are printed). Options other than --json/--help reach
 * the builder among the positional arguments. */
int ctl_build_load(int argc, char **argv, struct cJSON *req);
int ctl_build_unload(int argc, char **argv, struct cJSON *req);
int ctl_build_swap(int argc, char **argv, struct cJSON *req);
int ctl_build_canary(int argc, char **argv, struct cJSON *req);
int ctl_build_shadow(int argc, char **argv, struct cJSON *req);
int ctl_build_promote(int argc, char **argv, struct cJSON *req);
int ctl_build_rollback(int argc, char **argv, struct cJSON *req);
int ctl_build_fallback(int argc, char **argv, struct cJSON *req);
int ctl_build_failpoint(int argc, char **argv, struct cJSON *req);
int ctl_build_log(int argc, char **argv, struct cJSON *req);
int ctl_build_stats(int argc, char **argv, struct cJSON *req);
int ctl_build_models(int argc, char **argv, struct cJSON *req);
/* "10", "0.5", "100" -> ppm (0..1000000, at most 4 decimals); -EINVAL. */
int ctl_parse_percent(const char *s, uint32_t *ret_ppm);
/* Decimal 1..UINT32_MAX (0 too when allow_zero); -EINVAL. */
int ctl_parse_version(const char *s, bool allow_zero, uint32_t *ret_version);

/* ctl_table.c: aligned columns. Cells are copied. */
struct ctl_table;
struct ctl_table *ctl_table_new(unsigned ncols);
void ctl_table_add(struct ctl_table *t, const char *const *cells);
void ctl_table_print(const struct ctl_table *t);
/* The same to f, each line ending with eol before its newline (top's
 * clear-to-end-of-line). */
void ctl_table_print_to(const struct ctl_table *t, FILE *f, const char *eol);
void ctl_table_free(struct ctl_table *t);

#endif /* QV_CTL_H */
