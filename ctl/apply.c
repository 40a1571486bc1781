/* SPDX-License-Identifier: Apache-2.0 */
/*
 * apply.c - routes.yaml parsed, checked and compared with quiverd's routes
 * (apply.h).
 *
 * YAML is read with Debian's libyaml (the document API: a node tree whose
 * every node carries its line), not by hand: the files are written by
 * people and by tools (kubectl, Helm, PyYAML) in block and flow styles,
 * with comments, quoting and anchors, which a line-oriented reader would
 * get wrong; libyaml is small, C, fuzzed upstream and already what quiverd
 * reads MLflow's MLmodel files with. It does not refuse duplicate keys, so
 * that is checked here, as are types: a number or boolean must be a plain
 * (unquoted) scalar, so `version: "3"` is refused as a string.
 */
#include "apply.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include <cjson/cJSON.h>

#include "ctl.h"

struct pctx {
	const char *file;
	yaml_document_t *doc;
	FILE *err;
	unsigned nerr;
};

__attribute__((format(printf, 4, 5)))
static void perr(struct pctx *c, const yaml_node_t *n, const char *key, const char *fmt, ...)
{
	va_list ap;

	fprintf(c->err, "%s:%lu: %s: ", c->file, n ? (unsigned long)n->start_mark.line + 1 : 0ul,
		key);
	va_start(ap, fmt);
	vfprintf(c->err, fmt, ap);
	va_end(ap);
	fputc('\n', c->err);
	c->nerr++;
}

static const char *node_kind(const yaml_node_t *n)
{
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return "a string";
	return "a scalar";
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool is_null(const yaml_node_t *n)
{
	const char *s = scalar(n);

	return s && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       (!s[0] || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
		strcmp(s, "NULL") == 0);
}

/* Plain decimal digits, no sign: 1..UINT32_MAX. */
static int get_version(struct pctx *c, const yaml_node_t *n, const char *key, uint32_t *ret)
{
	const char *s = scalar(n);
	uint64_t v = 0;

	if (!s || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || !s[0]) {
		perr(c, n, key, "must be a version number (an integer 1..4294967295), not %s",
		     node_kind(n));
		return -EINVAL;
	}
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9' || v > UINT32_MAX) {
			perr(c, n, key, "'%.40s' is not a version number (an integer 1..4294967295)",
			     s);
			return -EINVAL;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v == 0 || v > UINT32_MAX) {
		perr(c, n, key, "%.40s is out of range (1..4294967295)", s);
		return -EINVAL;
	}
	*ret = (uint32_t)v;
	return 0;
}

static int get_bool(struct pctx *c, const yaml_node_t *n, const char *key, bool *ret)
{
	const char *s = scalar(n);

	if (s && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0) {
			*ret = false;
			return 0;
		}
	}
	perr(c, n, key, "must be true or false, not %s%s%.40s%s", s ? "'" : "",
	     s ? "" : node_kind(n), s ? s : "", s ? "'" : "");
	return -EINVAL;
}

static int get_percent(struct pctx *c, const yaml_node_t *n, const char *key, uint32_t *ret_ppm)
{
	const char *s = scalar(n);
	uint32_t ppm;

	if (!s || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
		perr(c, n, key, "must be a number, not %s", node_kind(n));
		return -EINVAL;
	}
	if (ctl_parse_percent(s, &ppm) < 0 || ppm == 0) {
		perr(c, n, key, "'%.40s' is out of range (0 < percent <= 100, at most 4 decimals)",
		     s);
		return -EINVAL;
	}
	*ret_ppm = ppm;
	return 0;
}

static int get_ppm(struct pctx *c, const yaml_node_t *n, const char *key, uint32_t *ret_ppm)
{
	const char *s = scalar(n);
	uint32_t v;

	if (!s || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
		perr(c, n, key, "must be an integer, not %s", node_kind(n));
		return -EINVAL;
	}
	if (ctl_parse_version(s, false, &v) < 0 || v > 1000000) {
		perr(c, n, key, "'%.40s' is out of range (an integer 1..1000000)", s);
		return -EINVAL;
	}
	*ret_ppm = v;
	return 0;
}

/*
 * Walks a mapping's pairs: each key must be a plain scalar among `keys`
 * (NULL-terminated) and appear once. Returns the value nodes in vals[]
 * (NULL where absent), their key nodes in knodes[].
 */
static int map_fields(struct pctx *c, yaml_node_t *map, const char *path,
		      const char *const *keys, yaml_node_t **vals, yaml_node_t **knodes)
{
	size_t nk = 0;
	int rc = 0;
	char kp[APPLY_NAME_MAX + 64];

	while (keys[nk])
		nk++;
	for (size_t i = 0; i < nk; i++)
		vals[i] = knodes[i] = NULL;
	if (map->type != YAML_MAPPING_NODE) {
		perr(c, map, path[0] ? path : "(top level)", "must be a mapping, not %s",
		     node_kind(map));
		return -EINVAL;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *ks = scalar(k);
		size_t i;

		if (!ks) {
			perr(c, k, path, "a key must be a string, not %s", k ? node_kind(k) : "?");
			rc = -EINVAL;
			continue;
		}
		for (i = 0; i < nk && strcmp(keys[i], ks) != 0; i++)
			;
		snprintf(kp, sizeof(kp), "%s%s%.40s", path, path[0] ? "." : "", ks);
		if (i == nk) {
			char known[256] = "";
			for (size_t j = 0; j < nk; j++)
				snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
					 j ? ", " : "", keys[j]);
			perr(c, k, kp, "unknown key (known: %s)", known);
			rc = -EINVAL;
		} else if (vals[i]) {
			perr(c, k, kp, "duplicate key (first at line %lu)",
			     (unsigned long)knodes[i]->start_mark.line + 1);
			rc = -EINVAL;
		} else {
			vals[i] = v;
			knodes[i] = k;
		}
	}
	return rc;
}

/*
 * A canary or shadow: a mapping of version, percent or per_million (one of
 * them; required for a canary, 100% by default for a shadow) and, for a
 * canary, sticky. null clears the role.
 */
struct role_out {
	const char *role;       /* "canary" or "shadow" */
	bool share_required;    /* no default share */
	uint32_t *version, *ppm;
	unsigned *line;
	bool *sticky;           /* NULL: the role takes no sticky key */
};

static int parse_role(struct pctx *c, yaml_node_t *n, const char *path, const struct role_out *o)
{
	static const char *const keys[] = { "version", "percent", "per_million", "sticky", NULL };
	static const char *const keys_nosticky[] = { "version", "percent", "per_million", NULL };
	yaml_node_t *v[4] = { 0 }, *k[4] = { 0 };
	char kp[APPLY_NAME_MAX + 64];
	int rc;

	*o->line = (unsigned)n->start_mark.line + 1;
	if (is_null(n))
		return 0;
	rc = map_fields(c, n, path, o->sticky ? keys : keys_nosticky, v, k);
	if (rc < 0 && n->type != YAML_MAPPING_NODE)
		return rc;
	snprintf(kp, sizeof(kp), "%s.version", path);
	if (!v[0]) {
		perr(c, n, kp, "missing (the %s's version)", o->role);
		rc = -EINVAL;
	} else if (get_version(c, v[0], kp, o->version) < 0) {
		rc = -EINVAL;
	} else {
		*o->line = (unsigned)v[0]->start_mark.line + 1;
	}
	if (!o->share_required)
		*o->ppm = 1000000;   /* default: mirror everything */
	if (v[1] && v[2]) {
		snprintf(kp, sizeof(kp), "%s.per_million", path);
		perr(c, k[2], kp, "give percent or per_million, not both");
		rc = -EINVAL;
	} else if (!v[1] && !v[2] && o->share_required) {
		snprintf(kp, sizeof(kp), "%s.percent", path);
		perr(c, n, kp, "missing (the %s's share: percent or per_million)", o->role);
		rc = -EINVAL;
	} else if (v[1]) {
		snprintf(kp, sizeof(kp), "%s.percent", path);
		if (get_percent(c, v[1], kp, o->ppm) < 0)
			rc = -EINVAL;
	} else if (v[2]) {
		snprintf(kp, sizeof(kp), "%s.per_million", path);
		if (get_ppm(c, v[2], kp, o->ppm) < 0)
			rc = -EINVAL;
	}
	snprintf(kp, sizeof(kp), "%s.sticky", path);
	if (o->sticky && v[3] && get_bool(c, v[3], kp, o->sticky) < 0)
		rc = -EINVAL;
	return rc;
}

static int parse_fallback(struct pctx *c, yaml_node_t *n, const char *path,
			  struct apply_model *m)
{
	static const char *const keys[] = { "version", "on", "manual", NULL };
	static const char *const trig[] = { "error", "deadline", "nonfinite" };
	yaml_node_t *v[3], *k[3];
	char kp[APPLY_NAME_MAX + 64];
	bool manual = false;
	int rc;

	m->line_fallback = (unsigned)n->start_mark.line + 1;
	if (is_null(n))
		return 0;
	rc = map_fields(c, n, path, keys, v, k);
	if (rc < 0 && n->type != YAML_MAPPING_NODE)
		return rc;
	snprintf(kp, sizeof(kp), "%s.version", path);
	if (!v[0]) {
		perr(c, n, kp, "missing (the fallback's version)");
		rc = -EINVAL;
	} else if (get_version(c, v[0], kp, &m->want.fallback) < 0) {
		rc = -EINVAL;
	} else {
		m->line_fallback = (unsigned)v[0]->start_mark.line + 1;
	}
	snprintf(kp, sizeof(kp), "%s.on", path);
	if (v[1] && v[1]->type != YAML_SEQUENCE_NODE) {
		perr(c, v[1], kp, "must be a list of triggers (error, deadline, nonfinite), not %s",
		     node_kind(v[1]));
		rc = -EINVAL;
	} else if (v[1]) {
		for (yaml_node_item_t *it = v[1]->data.sequence.items.start;
		     it < v[1]->data.sequence.items.top; it++) {
			yaml_node_t *e = yaml_document_get_node(c->doc, *it);
			const char *s = scalar(e);
			unsigned t;
			for (t = 0; s && t < 3 && strcmp(s, trig[t]) != 0; t++)
				;
			if (!s || t == 3) {
				perr(c, e, kp, "'%.40s' is not a trigger (error, deadline, nonfinite)",
				     s ? s : node_kind(e));
				rc = -EINVAL;
			} else if (m->want.fb_on & (1u << t)) {
				perr(c, e, kp, "'%s' is listed twice", s);
				rc = -EINVAL;
			} else {
				m->want.fb_on |= 1u << t;
			}
		}
	}
	snprintf(kp, sizeof(kp), "%s.manual", path);
	if (v[2] && get_bool(c, v[2], kp, &manual) < 0)
		rc = -EINVAL;
	if (manual)
		m->want.fb_on |= APPLY_FB_MANUAL;
	if (rc == 0 && !m->want.fb_on) {
		snprintf(kp, sizeof(kp), "%s.on", path);
		perr(c, n, kp, "missing (a non-empty list of triggers, or manual: true)");
		rc = -EINVAL;
	}
	return rc;
}

static int parse_model(struct pctx *c, yaml_node_t *kn, yaml_node_t *n, struct apply_model *m)
{
	static const char *const keys[] = { "primary", "canary", "shadow", "fallback", NULL };
	yaml_node_t *v[4], *k[4];
	char path[APPLY_NAME_MAX + 16], kp[APPLY_NAME_MAX + 32];
	int rc;

	m->line = (unsigned)kn->start_mark.line + 1;
	snprintf(path, sizeof(path), "%s", m->name);
	rc = map_fields(c, n, path, keys, v, k);
	if (rc < 0 && n->type != YAML_MAPPING_NODE)
		return rc;
	snprintf(kp, sizeof(kp), "%s.primary", path);
	if (v[0]) {
		m->line_primary = (unsigned)v[0]->start_mark.line + 1;
		if (get_version(c, v[0], kp, &m->want.primary) < 0)
			rc = -EINVAL;
	}
	snprintf(kp, sizeof(kp), "%s.canary", path);
	if (v[1] && parse_role(c, v[1], kp, &(struct role_out){ "canary", true, &m->want.canary,
							&m->want.canary_ppm, &m->line_canary,
							&m->want.canary_sticky }) < 0)
		rc = -EINVAL;
	snprintf(kp, sizeof(kp), "%s.shadow", path);
	if (v[2] && parse_role(c, v[2], kp, &(struct role_out){ "shadow", false, &m->want.shadow,
							&m->want.shadow_ppm, &m->line_shadow,
							NULL }) < 0)
		rc = -EINVAL;
	snprintf(kp, sizeof(kp), "%s.fallback", path);
	if (v[3] && parse_fallback(c, v[3], kp, m) < 0)
		rc = -EINVAL;
	if (rc == 0 && m->want.primary) {
		/* quiverd refuses a role on the primary's own version. */
		const struct { uint32_t v; unsigned line; const char *role; } roles[] = {
			{ m->want.canary, m->line_canary, "canary" },
			{ m->want.shadow, m->line_shadow, "shadow" },
			{ m->want.fallback, m->line_fallback, "fallback" },
		};
		for (unsigned i = 0; i < 3; i++)
			if (roles[i].v == m->want.primary) {
				fprintf(c->err, "%s:%u: %s.%s.version: %u is the primary's version\n",
					c->file, roles[i].line, m->name, roles[i].role, roles[i].v);
				c->nerr++;
				rc = -EINVAL;
			}
	}
	return rc;
}

static int parse_doc(struct pctx *c, struct apply_spec *s)
{
	static const char *const top_keys[] = { "models", NULL };
	yaml_node_t *root = yaml_document_get_root_node(c->doc), *v[1], *k[1];

	if (!root) {
		fprintf(c->err, "%s:1: models: missing (the file is empty)\n", c->file);
		c->nerr++;
		return -EINVAL;
	}
	if (map_fields(c, root, "", top_keys, v, k) < 0 && root->type != YAML_MAPPING_NODE)
		return -EINVAL;
	if (!v[0]) {
		if (c->nerr == 0)
			perr(c, root, "models", "missing (a mapping of model names to routes)");
		return -EINVAL;
	}
	if (is_null(v[0]))
		return c->nerr ? -EINVAL : 0;      /* `models:` with nothing: no change */
	if (v[0]->type != YAML_MAPPING_NODE) {
		perr(c, v[0], "models", "must be a mapping of model names to routes, not %s",
		     node_kind(v[0]));
		return -EINVAL;
	}
	size_t npairs = (size_t)(v[0]->data.mapping.pairs.top - v[0]->data.mapping.pairs.start);
	if (npairs > APPLY_MAX_MODELS) {
		perr(c, v[0], "models", "%zu models, at most %u", npairs, APPLY_MAX_MODELS);
		return -EINVAL;
	}
	s->models = calloc(npairs ? npairs : 1, sizeof(*s->models));
	if (!s->models)
		return -ENOMEM;
	for (yaml_node_pair_t *p = v[0]->data.mapping.pairs.start;
	     p < v[0]->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
		const char *name = scalar(kn);
		struct apply_model *m = &s->models[s->n];

		if (!name || !name[0] || strlen(name) >= APPLY_NAME_MAX) {
			perr(c, kn, "models", "a model name must be a string of 1..%u characters",
			     APPLY_NAME_MAX - 1);
			continue;
		}
		bool dup = false;
		for (size_t i = 0; i < s->n; i++)
			if (strcmp(s->models[i].name, name) == 0) {
				perr(c, kn, name, "duplicate model (first at line %u)",
				     s->models[i].line);
				dup = true;
			}
		if (dup)
			continue;
		memset(m, 0, sizeof(*m));
		snprintf(m->name, sizeof(m->name), "%s", name);
		parse_model(c, kn, vn, m);
		s->n++;
	}
	return c->nerr ? -EINVAL : 0;
}

int apply_parse(const char *file, const char *text, size_t len, struct apply_spec *ret,
		FILE *err)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	struct apply_spec s;
	struct pctx c = { .file = file, .doc = &doc, .err = err };
	int rc;

	memset(&s, 0, sizeof(s));
	snprintf(s.file, sizeof(s.file), "%s", file);
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		fprintf(err, "%s:%lu:%lu: YAML: %s%s%s\n", file,
			(unsigned long)parser.problem_mark.line + 1,
			(unsigned long)parser.problem_mark.column + 1,
			parser.problem ? parser.problem : "malformed",
			parser.context ? " " : "", parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		return -EINVAL;
	}
	rc = parse_doc(&c, &s);
	if (rc == 0) {
		/* A second document ("---") would be silently ignored: refuse it. */
		if (!yaml_parser_load(&parser, &extra)) {
			fprintf(err, "%s:%lu: YAML: %s\n", file,
				(unsigned long)parser.problem_mark.line + 1,
				parser.problem ? parser.problem : "malformed");
			rc = -EINVAL;
		} else {
			if (yaml_document_get_root_node(&extra)) {
				fprintf(err, "%s:%lu: ---: a second document; one is expected\n",
					file, (unsigned long)extra.start_mark.line + 1);
				rc = -EINVAL;
			}
			yaml_document_delete(&extra);
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (rc < 0) {
		free(s.models);
		return rc;
	}
	*ret = s;
	return 0;
}

void apply_spec_free(struct apply_spec *s)
{
	free(s->models);
	s->models = NULL;
	s->n = 0;
}

/* ---- the daemon's routes ------------------------------------------------ */

static int json_version(const cJSON *o, const char *key, uint32_t *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!v || cJSON_IsNull(v)) {
		*ret = 0;
		return 0;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > UINT32_MAX ||
	    v->valuedouble != (double)(uint32_t)v->valuedouble)
		return -EPROTO;
	*ret = (uint32_t)v->valuedouble;
	return 0;
}

static int json_role(const cJSON *o, const char *key, uint32_t *ret_version, uint32_t *ret_ppm)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, key);

	*ret_version = 0;
	if (ret_ppm)
		*ret_ppm = 0;
	if (!r || cJSON_IsNull(r))
		return 0;
	if (!cJSON_IsObject(r) || json_version(r, "version", ret_version) < 0 ||
	    (ret_ppm && json_version(r, "ppm", ret_ppm) < 0))
		return -EPROTO;
	return 0;
}

int apply_current(const cJSON *routes_reply, const char *name, struct apply_route *ret,
		  uint32_t *ret_loaded, uint32_t *ret_nloaded)
{
	const cJSON *rs = cJSON_GetObjectItemCaseSensitive(routes_reply, "routes"), *r, *found = NULL;
	struct apply_route a;
	uint32_t n = 0;

	if (!cJSON_IsArray(rs))
		return -EPROTO;
	cJSON_ArrayForEach(r, rs) {
		const cJSON *nm = cJSON_GetObjectItemCaseSensitive(r, "name");
		if (cJSON_IsString(nm) && strcmp(nm->valuestring, name) == 0)
			found = r;
	}
	if (!found)
		return -ENOENT;
	memset(&a, 0, sizeof(a));
	if (json_version(found, "primary", &a.primary) < 0 ||
	    json_role(found, "canary", &a.canary, &a.canary_ppm) < 0 ||
	    json_role(found, "shadow", &a.shadow, &a.shadow_ppm) < 0 ||
	    json_role(found, "fallback", &a.fallback, NULL) < 0)
		return -EPROTO;
	if (!a.primary)
		return -ENOENT;
	if (a.canary)
		a.canary_sticky = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(found, "canary"), "sticky"));
	if (a.fallback) {
		const cJSON *fb = cJSON_GetObjectItemCaseSensitive(found, "fallback"), *e;
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(fb, "on")) {
			if (!cJSON_IsString(e))
				return -EPROTO;
			if (strcmp(e->valuestring, "error") == 0)
				a.fb_on |= APPLY_FB_ERROR;
			else if (strcmp(e->valuestring, "deadline") == 0)
				a.fb_on |= APPLY_FB_DEADLINE;
			else if (strcmp(e->valuestring, "nonfinite") == 0)
				a.fb_on |= APPLY_FB_NONFINITE;
		}
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fb, "manual")))
			a.fb_on |= APPLY_FB_MANUAL;
	}
	const cJSON *vs = cJSON_GetObjectItemCaseSensitive(found, "versions"), *v;
	cJSON_ArrayForEach(v, vs) {
		uint32_t ver;
		if (json_version(v, "version", &ver) < 0 || !ver)
			return -EPROTO;
		if (n < APPLY_MAX_VERSIONS && ret_loaded)
			ret_loaded[n] = ver;
		n++;
	}
	if (n > APPLY_MAX_VERSIONS)
		return -EPROTO;
	*ret = a;
	if (ret_nloaded)
		*ret_nloaded = n;
	return 0;
}

static bool has(const uint32_t *vs, uint32_t n, uint32_t v)
{
	for (uint32_t i = 0; i < n; i++)
		if (vs[i] == v)
			return true;
	return false;
}

static void list_versions(const uint32_t *vs, uint32_t n, char *buf, size_t len)
{
	buf[0] = 0;
	for (uint32_t i = 0; i < n; i++)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%" PRIu32, i ? ", " : "", vs[i]);
}

unsigned apply_check(const struct apply_spec *s, const cJSON *routes_reply, bool allow_load,
		     FILE *err)
{
	unsigned nerr = 0;

	for (size_t i = 0; i < s->n; i++) {
		const struct apply_model *m = &s->models[i];
		struct apply_route cur;
		uint32_t loaded[APPLY_MAX_VERSIONS], nl = 0;
		char known[256];
		int rc = apply_current(routes_reply, m->name, &cur, loaded, &nl);

		if (rc == -ENOENT) {
			fprintf(err, "%s:%u: %s: unknown model (quiverd serves no route of that name)\n",
				s->file, m->line, m->name);
			nerr++;
			continue;
		}
		if (rc < 0) {
			fprintf(err, "%s: quiverd's routes reply is malformed (%s)\n", s->file,
				m->name);
			nerr++;
			continue;
		}
		list_versions(loaded, nl, known, sizeof(known));
		const struct { uint32_t v; unsigned line; const char *key; } vs[] = {
			{ m->want.primary, m->line_primary, "primary" },
			{ m->want.canary, m->line_canary, "canary.version" },
			{ m->want.shadow, m->line_shadow, "shadow.version" },
			{ m->want.fallback, m->line_fallback, "fallback.version" },
		};
		uint32_t primary = m->want.primary ? m->want.primary : cur.primary;
		for (unsigned k = 0; k < 4; k++) {
			if (!vs[k].v)
				continue;
			if (!has(loaded, nl, vs[k].v) && !allow_load) {
				fprintf(err, "%s:%u: %s.%s: version %" PRIu32 " is not loaded "
					"(loaded: %s; quiverctl load, or apply --load)\n",
					s->file, vs[k].line, m->name, vs[k].key, vs[k].v, known);
				nerr++;
			}
			/* Only reachable with primary left out: the file's own
			 * primary was compared in apply_parse. */
			if (k > 0 && vs[k].v == primary && !m->want.primary) {
				fprintf(err, "%s:%u: %s.%s: %" PRIu32 " is the primary's version\n",
					s->file, vs[k].line, m->name, vs[k].key, vs[k].v);
				nerr++;
			}
		}
	}
	return nerr;
}

/* ---- the diff ----------------------------------------------------------- */

void apply_fmt_percent(uint32_t ppm, char *buf, size_t len)
{
	uint32_t whole = ppm / 10000, frac = ppm % 10000;
	int digits = 4;

	if (!frac) {
		snprintf(buf, len, "%" PRIu32, whole);
		return;
	}
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	snprintf(buf, len, "%" PRIu32 ".%0*" PRIu32, whole, digits, frac);
}

static void fmt_ver(uint32_t v, char *buf, size_t len)
{
	if (v)
		snprintf(buf, len, "%" PRIu32, v);
	else
		snprintf(buf, len, "-");
}

static void fmt_on(uint32_t on, bool present, char *buf, size_t len)
{
	static const char *const names[] = { "error", "deadline", "nonfinite" };

	if (!present || !(on & 7u)) {
		snprintf(buf, len, "-");
		return;
	}
	buf[0] = 0;
	for (unsigned i = 0; i < 3; i++)
		if (on & (1u << i))
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? "," : "",
				 names[i]);
}

static unsigned field(FILE *out, const char *model, const char *key, const char *old,
		      const char *new)
{
	if (strcmp(old, new) == 0)
		return 0;
	fprintf(out, "%s: %s %s -> %s\n", model, key, old, new);
	return 1;
}

static struct apply_step *add_step(struct apply_plan *p, size_t *cap)
{
	if (p->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct apply_step *ns = realloc(p->steps, nc * sizeof(*ns));
		if (!ns)
			return NULL;
		p->steps = ns;
		*cap = nc;
	}
	struct apply_step *s = &p->steps[p->n++];
	memset(s, 0, sizeof(*s));
	return s;
}

/* The request JSON of a step; names are JSON-escaped by cJSON. */
static int step_request(struct apply_step *st, cJSON *req)
{
	char *text = req ? cJSON_PrintUnformatted(req) : NULL;
	int rc = 0;

	if (!text || strlen(text) >= sizeof(st->request))
		rc = -ENOMEM;
	else
		snprintf(st->request, sizeof(st->request), "%s", text);
	cJSON_free(text);
	cJSON_Delete(req);
	return rc;
}

static cJSON *req_of(const char *cmd, const char *model, uint32_t version)
{
	cJSON *r = cJSON_CreateObject();

	if (r && (!cJSON_AddStringToObject(r, "cmd", cmd) ||
		  !cJSON_AddStringToObject(r, "name", model) ||
		  (version && !cJSON_AddNumberToObject(r, "version", version)))) {
		cJSON_Delete(r);
		return NULL;
	}
	return r;
}

static int model_steps(const struct apply_model *m, const struct apply_route *cur,
		       struct apply_plan *p, size_t *cap, FILE *out)
{
	const struct apply_route *w = &m->want;
	char a[64], b[64], pa[32], pb[32];
	struct apply_step *st;
	cJSON *req;
	unsigned ch;

	/* primary */
	if (w->primary && w->primary != cur->primary) {
		fmt_ver(cur->primary, a, sizeof(a));
		fmt_ver(w->primary, b, sizeof(b));
		p->changes += field(out, m->name, "primary", a, b);
		if (!(st = add_step(p, cap)))
			return -ENOMEM;
		st->kind = APPLY_SWAP;
		snprintf(st->model, sizeof(st->model), "%s", m->name);
		st->version = w->primary;
		snprintf(st->what, sizeof(st->what), "swap %s %" PRIu32, m->name, w->primary);
		if (step_request(st, req_of("swap", m->name, w->primary)) < 0)
			return -ENOMEM;
	}

	/* canary: version, share, sticky */
	ch = 0;
	fmt_ver(cur->canary, a, sizeof(a));
	fmt_ver(w->canary, b, sizeof(b));
	ch += field(out, m->name, "canary.version", a, b);
	snprintf(pa, sizeof(pa), "-");
	snprintf(pb, sizeof(pb), "-");
	if (cur->canary)
		apply_fmt_percent(cur->canary_ppm, pa, sizeof(pa));
	if (w->canary)
		apply_fmt_percent(w->canary_ppm, pb, sizeof(pb));
	ch += field(out, m->name, "canary.percent", pa, pb);
	ch += field(out, m->name, "canary.sticky",
		    cur->canary ? (cur->canary_sticky ? "true" : "false") : "-",
		    w->canary ? (w->canary_sticky ? "true" : "false") : "-");
	p->changes += ch;
	if (ch) {
		if (!(st = add_step(p, cap)))
			return -ENOMEM;
		st->kind = APPLY_CANARY;
		snprintf(st->model, sizeof(st->model), "%s", m->name);
		st->version = w->canary;
		req = req_of("canary", m->name, 0);
		if (req && (!cJSON_AddNumberToObject(req, "version", w->canary) ||
			    !cJSON_AddNumberToObject(req, "ppm", w->canary ? w->canary_ppm : 0) ||
			    !cJSON_AddBoolToObject(req, "sticky", w->canary && w->canary_sticky))) {
			cJSON_Delete(req);
			req = NULL;
		}
		if (w->canary)
			snprintf(st->what, sizeof(st->what), "canary %s %" PRIu32 " --percent %s%s",
				 m->name, w->canary, pb, w->canary_sticky ? " --sticky" : "");
		else
			snprintf(st->what, sizeof(st->what), "canary %s 0", m->name);
		if (step_request(st, req) < 0)
			return -ENOMEM;
	}

	/* shadow: version, share */
	ch = 0;
	fmt_ver(cur->shadow, a, sizeof(a));
	fmt_ver(w->shadow, b, sizeof(b));
	ch += field(out, m->name, "shadow.version", a, b);
	snprintf(pa, sizeof(pa), "-");
	snprintf(pb, sizeof(pb), "-");
	if (cur->shadow)
		apply_fmt_percent(cur->shadow_ppm, pa, sizeof(pa));
	if (w->shadow)
		apply_fmt_percent(w->shadow_ppm, pb, sizeof(pb));
	ch += field(out, m->name, "shadow.percent", pa, pb);
	p->changes += ch;
	if (ch) {
		if (!(st = add_step(p, cap)))
			return -ENOMEM;
		st->kind = APPLY_SHADOW;
		snprintf(st->model, sizeof(st->model), "%s", m->name);
		st->version = w->shadow;
		req = req_of("shadow", m->name, 0);
		if (req && (!cJSON_AddNumberToObject(req, "version", w->shadow) ||
			    !cJSON_AddNumberToObject(req, "ppm", w->shadow ? w->shadow_ppm : 0))) {
			cJSON_Delete(req);
			req = NULL;
		}
		if (w->shadow)
			snprintf(st->what, sizeof(st->what), "shadow %s %" PRIu32 " --percent %s",
				 m->name, w->shadow, pb);
		else
			snprintf(st->what, sizeof(st->what), "shadow %s 0", m->name);
		if (step_request(st, req) < 0)
			return -ENOMEM;
	}

	/* fallback: version, triggers, manual */
	ch = 0;
	fmt_ver(cur->fallback, a, sizeof(a));
	fmt_ver(w->fallback, b, sizeof(b));
	ch += field(out, m->name, "fallback.version", a, b);
	fmt_on(cur->fb_on, cur->fallback != 0, a, sizeof(a));
	fmt_on(w->fb_on, w->fallback != 0, b, sizeof(b));
	ch += field(out, m->name, "fallback.on", a, b);
	ch += field(out, m->name, "fallback.manual",
		    cur->fallback ? (cur->fb_on & APPLY_FB_MANUAL ? "true" : "false") : "-",
		    w->fallback ? (w->fb_on & APPLY_FB_MANUAL ? "true" : "false") : "-");
	p->changes += ch;
	if (ch) {
		if (!(st = add_step(p, cap)))
			return -ENOMEM;
		st->kind = APPLY_FALLBACK;
		snprintf(st->model, sizeof(st->model), "%s", m->name);
		st->version = w->fallback;
		req = req_of("fallback", m->name, w->fallback);
		if (req && !w->fallback && !cJSON_AddTrueToObject(req, "clear")) {
			cJSON_Delete(req);
			req = NULL;
		}
		if (req && w->fallback) {
			cJSON *on = cJSON_AddArrayToObject(req, "on");
			static const char *const names[] = { "error", "deadline", "nonfinite" };
			for (unsigned i = 0; on && i < 3; i++)
				if (w->fb_on & (1u << i))
					cJSON_AddItemToArray(on, cJSON_CreateString(names[i]));
			if (!on || ((w->fb_on & APPLY_FB_MANUAL) &&
				    !cJSON_AddTrueToObject(req, "manual"))) {
				cJSON_Delete(req);
				req = NULL;
			}
		}
		if (w->fallback) {
			fmt_on(w->fb_on, true, b, sizeof(b));
			snprintf(st->what, sizeof(st->what), "fallback %s %" PRIu32 "%s%s%s", m->name,
				 w->fallback, w->fb_on & 7u ? " --on " : "", w->fb_on & 7u ? b : "",
				 w->fb_on & APPLY_FB_MANUAL ? " --manual" : "");
		} else {
			snprintf(st->what, sizeof(st->what), "fallback %s --clear", m->name);
		}
		if (step_request(st, req) < 0)
			return -ENOMEM;
	}
	return 0;
}

int apply_diff(const struct apply_spec *s, const cJSON *routes_reply, bool allow_load,
	       struct apply_plan *ret, FILE *out)
{
	struct apply_plan p = { 0 };
	size_t cap = 0;
	int rc = 0;

	/* Loads first: a failed load leaves every route as it was. */
	for (size_t i = 0; rc == 0 && i < s->n; i++) {
		const struct apply_model *m = &s->models[i];
		struct apply_route cur;
		uint32_t loaded[APPLY_MAX_VERSIONS], nl = 0, want[4], nw = 0;
		char a[256], b[320];

		rc = apply_current(routes_reply, m->name, &cur, loaded, &nl);
		if (rc < 0)
			break;
		const uint32_t vs[] = { m->want.primary, m->want.canary, m->want.shadow,
					m->want.fallback };
		for (unsigned k = 0; k < 4; k++)
			if (vs[k] && !has(loaded, nl, vs[k]) && !has(want, nw, vs[k]))
				want[nw++] = vs[k];
		if (!nw)
			continue;
		if (!allow_load) {
			rc = -EPROTO;   /* apply_check would have refused it */
			break;
		}
		list_versions(loaded, nl, a, sizeof(a));
		snprintf(b, sizeof(b), "%s", a);
		for (uint32_t k = 0; k < nw; k++) {
			struct apply_step *st = add_step(&p, &cap);
			if (!st) {
				rc = -ENOMEM;
				break;
			}
			snprintf(b + strlen(b), sizeof(b) - strlen(b), "%s%" PRIu32,
				 b[0] ? ", " : "", want[k]);
			st->kind = APPLY_LOAD;
			snprintf(st->model, sizeof(st->model), "%s", m->name);
			st->version = want[k];
			snprintf(st->what, sizeof(st->what), "load %s %" PRIu32, m->name, want[k]);
			if (step_request(st, req_of("load", m->name, want[k])) < 0)
				rc = -ENOMEM;
		}
		p.changes += field(out, m->name, "loaded", a, b);
	}
	for (size_t i = 0; rc == 0 && i < s->n; i++) {
		struct apply_route cur;
		rc = apply_current(routes_reply, s->models[i].name, &cur, NULL, NULL);
		if (rc == 0)
			rc = model_steps(&s->models[i], &cur, &p, &cap, out);
	}
	if (rc < 0) {
		free(p.steps);
		return rc;
	}
	*ret = p;
	return 0;
}

void apply_plan_free(struct apply_plan *p)
{
	free(p->steps);
	p->steps = NULL;
	p->n = 0;
}
