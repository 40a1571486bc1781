/* SPDX-License-Identifier: Apache-2.0 */
/*
 * state.c - the routing state that survives a restart (--state-file).
 *
 * After every route change an operator makes (load, unload, swap, canary,
 * shadow, promote, rollback, fallback) and after a SIGHUP reload, the
 * control thread writes every route's loaded versions (with the directory
 * each came from) and roles as JSON to PATH.tmp, fsyncs it and renames it
 * over PATH, so a crash leaves the old state or the new one, never half.
 * At start, after the repository is loaded as usual, the file is read
 * back: versions it names that are not loaded are loaded from their
 * directory, then each role is set again if its version loaded and it does
 * not clash with the primary. What cannot be restored is logged and
 * skipped; a missing file is a first start; an unreadable or malformed
 * file is logged and ignored (the repository's defaults are served).
 *
 * cJSON (Debian's libcjson) writes and reads it, as it does config.json.
 *
 *   {"format": 1, "routes": [{"name": "trade-mlp", "primary": 1, "previous": 2,
 *     "canary": {"version": 3, "ppm": 5000, "sticky": true},
 *     "shadow": {"version": 4, "ppm": 1000000},
 *     "fallback": {"version": 1, "on": 48},
 *     "versions": [{"version": 1, "dir": "/srv/models/trade-mlp/1"}, ...]}]}
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "log.h"
#include "quiverd.h"
#include "repo.h"
#include "routes.h"
#include "state.h"

#define STATE_FORMAT 1
#define STATE_MAX_BYTES (16u << 20)

static cJSON *route_state(const struct qv_route *r)
{
	cJSON *o = cJSON_CreateObject(), *x, *vs;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "name", r->name);
	cJSON_AddNumberToObject(o, "primary", r->primary);
	cJSON_AddNumberToObject(o, "previous", r->previous);
	if (r->canary && (x = cJSON_AddObjectToObject(o, "canary"))) {
		cJSON_AddNumberToObject(x, "version", r->canary);
		cJSON_AddNumberToObject(x, "ppm", r->canary_ppm);
		cJSON_AddBoolToObject(x, "sticky", r->canary_sticky);
	}
	if (r->shadow && (x = cJSON_AddObjectToObject(o, "shadow"))) {
		cJSON_AddNumberToObject(x, "version", r->shadow);
		cJSON_AddNumberToObject(x, "ppm", r->shadow_ppm);
	}
	if (r->fallback && (x = cJSON_AddObjectToObject(o, "fallback"))) {
		cJSON_AddNumberToObject(x, "version", r->fallback);
		cJSON_AddNumberToObject(x, "on", r->fb_on);
	}
	vs = cJSON_AddArrayToObject(o, "versions");
	for (uint32_t i = 0; vs && i < r->nvers; i++) {
		cJSON *e = cJSON_CreateObject();
		if (!e)
			continue;
		cJSON_AddNumberToObject(e, "version", r->vers[i]->version);
		if (r->vers[i]->dir)
			cJSON_AddStringToObject(e, "dir", r->vers[i]->dir);
		cJSON_AddItemToArray(vs, e);
	}
	return o;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int qv_state_save(struct qv_daemon *d)
{
	char tmp[4200], dir[4200], *slash;
	cJSON *o, *rs;
	char *text;
	int fd, r;

	if (!d->state_path)
		return 0;
	o = cJSON_CreateObject();
	rs = o ? cJSON_AddArrayToObject(o, "routes") : NULL;
	if (!rs) {
		cJSON_Delete(o);
		return -ENOMEM;
	}
	cJSON_AddNumberToObject(o, "format", STATE_FORMAT);
	for (uint32_t i = 0; i < d->reg.n; i++) {
		const struct qv_route *rt = &d->reg.routes[i];
		cJSON *ro = rt->nvers ? route_state(rt) : NULL;
		if (ro)
			cJSON_AddItemToArray(rs, ro);
	}
	text = cJSON_Print(o);
	cJSON_Delete(o);
	if (!text)
		return -ENOMEM;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", d->state_path) >= sizeof(tmp)) {
		free(text);
		return -ENAMETOOLONG;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = -errno;
		free(text);
		return r;
	}
	r = write_all(fd, text, strlen(text));
	free(text);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, d->state_path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	/* The rename itself is durable once the directory is synced. */
	snprintf(dir, sizeof(dir), "%s", d->state_path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

void qv_state_save_logged(struct qv_daemon *d, const char *why)
{
	int r = qv_state_save(d);

	if (r < 0)
		qv_log(QV_LOG_ERROR, "state file %s not written after %s: %s (the change is live, "
		       "but a restart would not keep it)", d->state_path, why, strerror(-r));
}

static uint32_t num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 4294967295.0
		       ? (uint32_t)v->valuedouble : 0;
}

/* Loads the versions the file lists for route `name` that are not loaded. */
static void restore_versions(struct qv_daemon *d, const char *name, const cJSON *vs)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, vs)
	{
		uint32_t v = num(e, "version");
		const cJSON *dir = cJSON_GetObjectItemCaseSensitive(e, "dir");
		struct qv_route *rt = qv_reg_find(&d->reg, name);
		char err[1024] = "";

		if (!v || (rt && qv_route_version(rt, v)))
			continue;
		if (qv_reg_load(&d->reg, name, v, cJSON_IsString(dir) ? dir->valuestring : NULL, NULL,
				err, sizeof(err)) < 0)
			qv_log(QV_LOG_WARN, "state: %s/%u not restored: %s", name, v, err);
	}
}

/* A role's version must be loaded and must not be the primary. */
static int role_ok(const struct qv_route *rt, uint32_t v, uint32_t primary)
{
	return v && v != primary && qv_route_version(rt, v);
}

static void restore_roles(struct qv_route *rt, const cJSON *ro)
{
	uint32_t p = num(ro, "primary"), prev = num(ro, "previous");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(ro, "canary");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(ro, "shadow");
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(ro, "fallback");
	struct qv_route n = *rt;

	if (p && !qv_route_version(rt, p)) {
		qv_log(QV_LOG_WARN, "state: %s: primary %u is not loaded; serving %u", rt->name, p,
		       rt->primary);
		p = 0;
	}
	if (p)
		n.primary = p;
	n.previous = prev && qv_route_version(rt, prev) && prev != n.primary ? prev : 0;
	n.canary = n.canary_ppm = 0;
	n.canary_sticky = 0;
	n.shadow = n.shadow_ppm = 0;
	n.fallback = n.fb_on = 0;
	if (cJSON_IsObject(c)) {
		uint32_t v = num(c, "version"), ppm = num(c, "ppm");
		if (role_ok(rt, v, n.primary) && ppm && ppm <= 1000000) {
			n.canary = v;
			n.canary_ppm = ppm;
			n.canary_sticky = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "sticky"));
		} else {
			qv_log(QV_LOG_WARN, "state: %s: canary %u not restored", rt->name, v);
		}
	}
	if (cJSON_IsObject(s)) {
		uint32_t v = num(s, "version"), ppm = num(s, "ppm");
		if (role_ok(rt, v, n.primary) && ppm && ppm <= 1000000) {
			n.shadow = v;
			n.shadow_ppm = ppm;
		} else {
			qv_log(QV_LOG_WARN, "state: %s: shadow %u not restored", rt->name, v);
		}
	}
	if (cJSON_IsObject(f)) {
		uint32_t v = num(f, "version"), on = num(f, "on");
		const uint32_t known = QV_RT_FB_ERROR | QV_RT_FB_DEADLINE | QV_RT_FB_NONFINITE |
				       QV_RT_FB_MANUAL;
		if (role_ok(rt, v, n.primary) && (on & ~known) == 0) {
			n.fallback = v;
			n.fb_on = on;
		} else {
			qv_log(QV_LOG_WARN, "state: %s: fallback %u not restored", rt->name, v);
		}
	}
	*rt = n;
}

int qv_state_restore(struct qv_daemon *d)
{
	char *text = NULL;
	size_t len = 0;
	cJSON *o;
	const cJSON *rs, *ro;
	uint32_t restored = 0;
	int r;

	if (!d->state_path)
		return 0;
	r = qv_read_regular(AT_FDCWD, d->state_path, STATE_MAX_BYTES, &text, &len);
	if (r == -ENOENT) {
		qv_log(QV_LOG_INFO, "state file %s: none yet (first start)", d->state_path);
		return 0;
	}
	if (r < 0) {
		qv_log(QV_LOG_ERROR, "state file %s: %s; routes start from the repository",
		       d->state_path, r == -EINVAL ? "not a regular file" : strerror(-r));
		return r;
	}
	o = cJSON_ParseWithLength(text, len);
	free(text);
	rs = cJSON_GetObjectItemCaseSensitive(o, "routes");
	if (!cJSON_IsObject(o) || num(o, "format") != STATE_FORMAT || !cJSON_IsArray(rs)) {
		qv_log(QV_LOG_ERROR, "state file %s: not a quiverd state (format %d); routes start "
		       "from the repository", d->state_path, STATE_FORMAT);
		cJSON_Delete(o);
		return -EINVAL;
	}
	cJSON_ArrayForEach(ro, rs)
	{
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(ro, "name");
		struct qv_route *rt;

		if (!cJSON_IsString(name) || !qv_repo_name_valid(name->valuestring))
			continue;
		restore_versions(d, name->valuestring, cJSON_GetObjectItemCaseSensitive(ro, "versions"));
		rt = qv_reg_find(&d->reg, name->valuestring);
		if (!rt || !rt->primary) {
			qv_log(QV_LOG_WARN, "state: %s: no version loads; not restored",
			       name->valuestring);
			continue;
		}
		restore_roles(rt, ro);
		restored++;
	}
	cJSON_Delete(o);
	r = qv_reg_publish(&d->reg);
	if (r == 0)
		qv_log(QV_LOG_INFO, "state file %s: %u routes restored", d->state_path, restored);
	return r;
}
