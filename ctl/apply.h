/* SPDX-License-Identifier: Apache-2.0 */
/*
 * apply.h - `quiverctl apply -f routes.yaml`: declared routes, parsed and
 * checked (pure: text in, a spec or messages naming FILE:LINE: key out),
 * compared with quiverd's `routes` reply, and turned into the ordinary
 * route commands (load, swap, canary, shadow, fallback) that make the file
 * true. No I/O here but the FILE * the messages go to, so the parser,
 * validator and diff are unit-tested without a daemon (tests/ctl).
 *
 * The file:
 *
 *   models:
 *     trade-mlp:
 *       primary: 2                      # optional: absent = leave it as it is
 *       canary: {version: 3, percent: 10, sticky: true}   # or per_million: 100000
 *       shadow: {version: 4, percent: 50}                 # percent default 100
 *       fallback: {version: 1, on: [error, deadline]}     # and/or manual: true
 *
 * A model named in the file gets exactly the roles written: a canary,
 * shadow or fallback left out (or null) is cleared. Models not named are
 * left alone.
 */
#ifndef QV_CTL_APPLY_H
#define QV_CTL_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cJSON;

#define APPLY_NAME_MAX 128u
#define APPLY_MAX_MODELS 1024u
#define APPLY_MAX_VERSIONS 16u        /* loaded versions of a route (quiverd's limit) */

/* Fallback triggers, the bits of `on` (as quiverd's QV_RT_FB_*: names only
 * travel on the wire, so the values are ours). */
enum {
	APPLY_FB_ERROR = 1u << 0,
	APPLY_FB_DEADLINE = 1u << 1,
	APPLY_FB_NONFINITE = 1u << 2,
	APPLY_FB_MANUAL = 1u << 3,
};

/* One route's roles; version 0 = none (primary 0 in a desired route: left as is). */
struct apply_route {
	uint32_t primary;
	uint32_t canary, canary_ppm;
	bool canary_sticky;
	uint32_t shadow, shadow_ppm;
	uint32_t fallback, fb_on;
};

struct apply_model {
	char name[APPLY_NAME_MAX];
	unsigned line;                  /* of the model's key */
	unsigned line_primary, line_canary, line_shadow, line_fallback;
	struct apply_route want;
};

struct apply_spec {
	char file[256];                 /* for messages */
	struct apply_model *models;
	size_t n;
};

/*
 * Parses and checks what needs no daemon: the YAML itself, unknown keys,
 * types, ranges (percent 0 < P <= 100 with at most 4 decimals, per_million
 * 1..1000000, versions 1..4294967295), duplicate models and keys, a role
 * naming the primary's version. Every problem is printed to err as
 * "FILE:LINE: KEY: why"; returns 0, or -EINVAL after at least one message
 * (-ENOMEM). On success *ret is filled (apply_spec_free it).
 */
int apply_parse(const char *file, const char *text, size_t len, struct apply_spec *ret,
		FILE *err);
void apply_spec_free(struct apply_spec *s);

/* The current route of `name` in a `routes` reply; -ENOENT when absent
 * (or without a primary), -EPROTO when the reply is malformed. */
int apply_current(const struct cJSON *routes_reply, const char *name, struct apply_route *ret,
		  uint32_t *ret_loaded, uint32_t *ret_nloaded);

/*
 * Checks the spec against quiverd's routes: every model must be a route,
 * every version it names loaded (with allow_load, a version not loaded is
 * to be loaded from the repository first instead), and the roles must not
 * name the primary they will have. Messages as apply_parse; returns the
 * number of problems.
 */
unsigned apply_check(const struct apply_spec *s, const struct cJSON *routes_reply,
		     bool allow_load, FILE *err);

/* One command to send, and what it changes. */
enum apply_kind { APPLY_LOAD = 1, APPLY_SWAP, APPLY_CANARY, APPLY_SHADOW, APPLY_FALLBACK };

struct apply_step {
	enum apply_kind kind;
	char model[APPLY_NAME_MAX];
	uint32_t version;
	char request[512];              /* the JSON request (control protocol) */
	char what[320];                 /* "canary trade-mlp 3 --percent 10 --sticky" */
};

struct apply_plan {
	struct apply_step *steps;
	size_t n;
	unsigned changes;               /* diff lines printed */
};

/*
 * The difference between the spec and the routes reply: one line a changed
 * field to out ("MODEL: FIELD OLD -> NEW", "-" for none; nothing when the
 * route already matches), and the commands that make the file true, in
 * order: every load first (they change no route), then per model in file
 * order swap, canary, shadow, fallback (the swap first, so a role may name
 * the old primary). Call after apply_check passed. 0 or -ENOMEM/-EPROTO.
 */
int apply_diff(const struct apply_spec *s, const struct cJSON *routes_reply, bool allow_load,
	       struct apply_plan *ret, FILE *out);
void apply_plan_free(struct apply_plan *p);

/* ppm -> "10", "0.5", "100" (the inverse of ctl_parse_percent). */
void apply_fmt_percent(uint32_t ppm, char *buf, size_t len);

#endif /* QV_CTL_APPLY_H */
