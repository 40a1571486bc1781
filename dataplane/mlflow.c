/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mlflow.c - the MLmodel file of an MLflow model directory (mlflow.h).
 *
 * YAML is read with Debian's libyaml (its document API gives a node tree)
 * rather than by hand: MLmodel files are written by PyYAML with quoting,
 * flow and block styles, anchors and multi-line scalars that a
 * line-oriented reader would get wrong. The signature's inner JSON strings
 * are read with cJSON, as the rest of the data plane reads JSON.
 */
#include "mlflow.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "repo.h"

#define MLMODEL_MAX_BYTES (1u << 20)

static int fail(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* The value of key in mapping node map, or NULL. */
static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(key) &&
		    memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0)
			return yaml_document_get_node(doc, p->value);
	}
	return NULL;
}

/* A scalar's text into out (NUL-terminated); -1 if not a scalar or too long. */
static int scalar(const yaml_node_t *n, char *out, size_t len)
{
	if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.length >= len)
		return -1;
	memcpy(out, n->data.scalar.value, n->data.scalar.length);
	out[n->data.scalar.length] = '\0';
	return 0;
}

/* YAML's null: absent, "~", "null", or an empty plain scalar. */
static int is_null(const yaml_node_t *n)
{
	if (!n)
		return 1;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	return n->data.scalar.length == 0 ||
	       (n->data.scalar.length == 1 && n->data.scalar.value[0] == '~') ||
	       (n->data.scalar.length == 4 && memcmp(n->data.scalar.value, "null", 4) == 0);
}

static const char *const column_types[] = {
	"double", "float", "long", "integer", "boolean", "string", "binary", "datetime",
};

static int parse_spec(const cJSON *o, const char *side, uint32_t idx, struct qv_mlflow_spec *s,
		      char *err, size_t len)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");

	if (!cJSON_IsObject(o))
		return fail(err, len, "signature %s %u: not an object", side, idx);
	if (name && !cJSON_IsNull(name)) {
		if (!cJSON_IsString(name) || strlen(name->valuestring) >= sizeof(s->name))
			return fail(err, len, "signature %s %u: \"name\" is not a string of at most %zu bytes",
				    side, idx, sizeof(s->name) - 1);
		snprintf(s->name, sizeof(s->name), "%s", name->valuestring);
	}
	if (!cJSON_IsString(type))
		return fail(err, len, "signature %s %u: no \"type\"", side, idx);
	if (strcmp(type->valuestring, "tensor") == 0) {
		const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "tensor-spec");
		const cJSON *dt = cJSON_GetObjectItemCaseSensitive(ts, "dtype");
		const cJSON *sh = cJSON_GetObjectItemCaseSensitive(ts, "shape");
		const cJSON *d;
		if (!cJSON_IsObject(ts) || !cJSON_IsString(dt) ||
		    strlen(dt->valuestring) >= sizeof(s->type))
			return fail(err, len, "signature %s %u: tensor without a \"tensor-spec\" dtype",
				    side, idx);
		snprintf(s->type, sizeof(s->type), "%s", dt->valuestring);
		if (sh && !cJSON_IsNull(sh)) {
			if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > (int)QV_MAX_RANK)
				return fail(err, len, "signature %s %u: \"shape\" is not a list of at most %d dims",
					    side, idx, QV_MAX_RANK);
			cJSON_ArrayForEach(d, sh) {
				if (!cJSON_IsNumber(d) || d->valuedouble != (double)(int64_t)d->valuedouble ||
				    d->valuedouble < -1 || d->valuedouble > 1e12)
					return fail(err, len, "signature %s %u: shape entries must be integers >= -1",
						    side, idx);
				s->shape[s->rank++] = (int64_t)d->valuedouble;
			}
		}
		return 0;
	}
	for (size_t k = 0; k < sizeof(column_types) / sizeof(column_types[0]); k++)
		if (strcmp(type->valuestring, column_types[k]) == 0) {
			s->column = 1;
			snprintf(s->type, sizeof(s->type), "%s", type->valuestring);
			return 0;
		}
	return fail(err, len, "signature %s %u: unknown type '%.40s'", side, idx, type->valuestring);
}

/* One side of the signature: a JSON string inside the YAML. */
static int parse_side(yaml_document_t *doc, yaml_node_t *sig, const char *side,
		      struct qv_mlflow_sig *out, char *err, size_t len)
{
	yaml_node_t *n = map_get(doc, sig, side);
	const cJSON *e;
	cJSON *j;
	uint32_t i = 0;
	int columns = -1;

	if (is_null(n))
		return 0;
	if (n->type != YAML_SCALAR_NODE)
		return fail(err, len, "signature %s: not a JSON string", side);
	j = cJSON_ParseWithLength((const char *)n->data.scalar.value, n->data.scalar.length);
	if (!j)
		return fail(err, len, "signature %s: not valid JSON", side);
	if (!cJSON_IsArray(j)) {
		cJSON_Delete(j);
		return fail(err, len, "signature %s: not a JSON list", side);
	}
	if (cJSON_GetArraySize(j) > (int)QV_MLFLOW_MAX_SPECS) {
		cJSON_Delete(j);
		return fail(err, len, "signature %s: more than %u entries", side, QV_MLFLOW_MAX_SPECS);
	}
	cJSON_ArrayForEach(e, j) {
		int r = parse_spec(e, side, i, &out->s[i], err, len);
		if (r < 0) {
			cJSON_Delete(j);
			return r;
		}
		if (columns >= 0 && columns != out->s[i].column) {
			cJSON_Delete(j);
			return fail(err, len, "signature %s: mixes tensors and columns", side);
		}
		columns = out->s[i].column;
		i++;
	}
	out->n = i;
	cJSON_Delete(j);
	return 0;
}

/* A flavor's data path: relative, inside the directory. */
static int data_path(yaml_node_t *n, const char *flavor, char *out, size_t out_len, char *err,
		     size_t len)
{
	const char *p;

	if (scalar(n, out, out_len) < 0 || out[0] == '\0')
		return fail(err, len, "flavor %s: no \"data\" naming the model file", flavor);
	if (out[0] == '/')
		return fail(err, len, "flavor %s: data '%.200s' is an absolute path", flavor, out);
	for (p = out; *p; ) {
		size_t seg = strcspn(p, "/");
		if (seg == 2 && p[0] == '.' && p[1] == '.')
			return fail(err, len, "flavor %s: data '%.200s' leaves the model directory",
				    flavor, out);
		p += seg;
		if (*p == '/')
			p++;
	}
	return 0;
}

static int parse_doc(yaml_document_t *doc, struct qv_mlflow *ml, char *err, size_t len)
{
	yaml_node_t *root = yaml_document_get_root_node(doc);
	yaml_node_t *flavors = map_get(doc, root, "flavors");
	yaml_node_t *onnx, *xgb, *pyf, *sig, *chosen = NULL;
	const char *fname = NULL;
	char names[200] = "", mod[64] = "";
	size_t o = 0;
	int r;

	if (!root || root->type != YAML_MAPPING_NODE)
		return fail(err, len, "not a YAML mapping");
	if (!flavors || flavors->type != YAML_MAPPING_NODE)
		return fail(err, len, "no \"flavors\" mapping");
	onnx = map_get(doc, flavors, "onnx");
	xgb = map_get(doc, flavors, "xgboost");
	pyf = map_get(doc, flavors, "python_function");
	/* Native flavors first: they name the model file and its format. */
	if (onnx) {
		chosen = onnx;
		fname = "onnx";
		ml->flavor = QV_MLFLOW_ONNX;
	} else if (xgb) {
		chosen = xgb;
		fname = "xgboost";
		ml->flavor = QV_MLFLOW_XGBOOST;
	} else if (pyf && scalar(map_get(doc, pyf, "loader_module"), mod, sizeof(mod)) == 0 &&
		   (strcmp(mod, "mlflow.onnx") == 0 || strcmp(mod, "mlflow.xgboost") == 0)) {
		chosen = pyf;
		fname = "python_function";
		ml->flavor = strcmp(mod, "mlflow.onnx") == 0 ? QV_MLFLOW_ONNX : QV_MLFLOW_XGBOOST;
	}
	if (!chosen) {
		for (yaml_node_pair_t *p = flavors->data.mapping.pairs.start;
		     p < flavors->data.mapping.pairs.top && o < sizeof(names); p++) {
			yaml_node_t *k = yaml_document_get_node(doc, p->key);
			char kn[64];
			if (scalar(k, kn, sizeof(kn)) == 0)
				o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s",
						      o ? ", " : "", kn);
		}
		return fail(err, len, "no flavor quiver serves (flavors: %s; served: onnx, xgboost)",
			    o ? names : "none");
	}
	if (chosen->type != YAML_MAPPING_NODE)
		return fail(err, len, "flavor %s: not a mapping", fname);
	r = data_path(map_get(doc, chosen, "data"), fname, ml->data, sizeof(ml->data), err, len);
	if (r < 0)
		return r;
	if (ml->flavor == QV_MLFLOW_XGBOOST) {
		yaml_node_t *mf = map_get(doc, xgb ? xgb : chosen, "model_format");
		if (!is_null(mf)) {
			if (scalar(mf, ml->model_format, sizeof(ml->model_format)) < 0 ||
			    (strcmp(ml->model_format, "json") && strcmp(ml->model_format, "ubj") &&
			     strcmp(ml->model_format, "xgb")))
				return fail(err, len, "flavor xgboost: model_format must be json, ubj or xgb");
		}
	}

	sig = map_get(doc, root, "signature");
	if (is_null(sig))
		return 0;
	if (sig->type != YAML_MAPPING_NODE)
		return fail(err, len, "signature: not a mapping");
	r = parse_side(doc, sig, "inputs", &ml->in, err, len);
	if (r == 0)
		r = parse_side(doc, sig, "outputs", &ml->out, err, len);
	if (r < 0)
		return r;
	ml->has_signature = ml->in.n || ml->out.n;
	return 0;
}

int qv_mlflow_parse(const char *text, size_t len, struct qv_mlflow *ret, char *err,
		    size_t err_len)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct qv_mlflow *ml;
	int r;

	if (!text || !ret)
		return -EINVAL;
	ml = calloc(1, sizeof(*ml));
	if (!ml)
		return -ENOMEM;
	if (!yaml_parser_initialize(&parser)) {
		free(ml);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		r = fail(err, err_len, "YAML: %s at line %zu column %zu",
			 parser.problem ? parser.problem : "malformed",
			 parser.problem_mark.line + 1, parser.problem_mark.column + 1);
		yaml_parser_delete(&parser);
		free(ml);
		return r;
	}
	r = parse_doc(&doc, ml, err, err_len);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (r == 0)
		*ret = *ml;
	free(ml);
	return r;
}

int qv_mlflow_read(const char *dir, struct qv_mlflow *ret, char *ret_path, size_t path_len,
		   char *err, size_t err_len)
{
	char path[4200], sub[QV_ERR_LEN] = "";
	struct stat st;
	size_t len = 0;
	char *text = NULL;
	int r;

	snprintf(path, sizeof(path), "%s/MLmodel", dir);
	r = qv_read_regular(AT_FDCWD, path, MLMODEL_MAX_BYTES, &text, &len);
	if (r == -ENOENT)
		return r;
	if (r < 0)
		return fail(err, err_len, "MLmodel: %s",
			    r == -EINVAL ? "not a regular file" : strerror(-r));
	r = qv_mlflow_parse(text, len, ret, sub, sizeof(sub));
	free(text);
	if (r < 0)
		return fail(err, err_len, "MLmodel: %s", sub);
	if ((size_t)snprintf(ret_path, path_len, "%s/%s", dir, ret->data) >= path_len)
		return fail(err, err_len, "MLmodel: data path too long");
	if (stat(ret_path, &st) < 0)
		return fail(err, err_len, "MLmodel: flavor %s: data '%.200s': %s",
			    ret->flavor == QV_MLFLOW_ONNX ? "onnx" : "xgboost", ret->data,
			    strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(err, err_len, "MLmodel: flavor %s: data '%.200s' is not a regular file",
			    ret->flavor == QV_MLFLOW_ONNX ? "onnx" : "xgboost", ret->data);
	return 0;
}

/* ---- the signature against the model ---- */

static const char *dtype_name(uint32_t dt)
{
	switch (dt) {
	case QV_DT_F32: return "float32";
	case QV_DT_I32: return "int32";
	case QV_DT_I64: return "int64";
	default: return "?";
	}
}

/* Row dims with size-1 dims dropped; returns how many, -1 if one is dynamic. */
static int squeeze_row(const int64_t *shape, uint32_t rank, int64_t *out)
{
	int n = 0;

	for (uint32_t k = 1; k < rank; k++) {
		if (shape[k] < 0)
			return -1;
		if (shape[k] != 1)
			out[n++] = shape[k];
	}
	return n;
}

static uint64_t row_elems(const struct qv_tensor_info *t)
{
	uint64_t e = 1;

	for (uint32_t k = 1; k < t->rank; k++)
		e *= t->shape[k] > 0 ? (uint64_t)t->shape[k] : 1;
	return e;
}

static int check_tensor(const struct qv_mlflow_spec *s, const struct qv_tensor_info *t,
			const char *side, char *err, size_t len)
{
	int64_t a[QV_MAX_RANK], b[QV_MAX_RANK];
	int na, nb;

	if (strcmp(s->type, dtype_name(t->dtype)) != 0)
		return fail(err, len, "signature %s '%s': dtype %s, the model's is %s", side,
			    t->name, s->type, dtype_name(t->dtype));
	if (s->rank == 0)
		return 0;  /* no shape recorded */
	if (s->shape[0] >= 0 && t->rank && t->shape[0] >= 0 && s->shape[0] != t->shape[0])
		return fail(err, len, "signature %s '%s': batch dimension %lld, the model's is %lld",
			    side, t->name, (long long)s->shape[0], (long long)t->shape[0]);
	na = squeeze_row(s->shape, s->rank, a);
	nb = squeeze_row(t->shape, t->rank, b);
	if (na < 0 || nb < 0)
		return 0;  /* a dynamic row dimension: nothing fixed to compare */
	if (na != nb || memcmp(a, b, (size_t)na * sizeof(a[0])) != 0) {
		char ss[96] = "", ts[96] = "";
		size_t o = 0;
		for (uint32_t k = 0; k < s->rank && o < sizeof(ss); k++)
			o += (size_t)snprintf(ss + o, sizeof(ss) - o, "%s%lld", k ? ", " : "",
					      (long long)s->shape[k]);
		o = 0;
		for (uint32_t k = 0; k < t->rank && o < sizeof(ts); k++)
			o += (size_t)snprintf(ts + o, sizeof(ts) - o, "%s%lld", k ? ", " : "",
					      (long long)t->shape[k]);
		return fail(err, len, "signature %s '%s': shape [%s], the model's is [%s]", side,
			    t->name, ss, ts);
	}
	return 0;
}

static int check_side(const struct qv_mlflow_sig *sig, const struct qv_tensor_info *ts,
		      uint32_t n, const char *side, char *err, size_t len)
{
	int named = 1;

	if (sig->n == 0)
		return 0;
	if (sig->s[0].column) {
		for (uint32_t i = 0; i < sig->n; i++)
			if (strcmp(sig->s[i].type, "string") == 0 ||
			    strcmp(sig->s[i].type, "binary") == 0 ||
			    strcmp(sig->s[i].type, "datetime") == 0)
				return fail(err, len, "signature %s column '%s': type %s is not numeric",
					    side, sig->s[i].name[0] ? sig->s[i].name : "?",
					    sig->s[i].type);
		if (n == 1 && row_elems(&ts[0]) == sig->n)
			return 0;
		if (n == sig->n) {
			for (uint32_t i = 0; i < n; i++)
				if (row_elems(&ts[i]) != 1)
					return fail(err, len, "signature %s: %u columns, but '%s' has %llu elements a row",
						    side, sig->n, ts[i].name,
						    (unsigned long long)row_elems(&ts[i]));
			return 0;
		}
		return fail(err, len, "signature %s: %u columns, the model's %s '%s' has %llu elements a row%s",
			    side, sig->n, side, ts[0].name, (unsigned long long)row_elems(&ts[0]),
			    n > 1 ? " (and more tensors)" : "");
	}
	if (sig->n != n)
		return fail(err, len, "signature %s: %u tensors, the model has %u (first: '%s')", side,
			    sig->n, n, n ? ts[0].name : "");
	for (uint32_t i = 0; i < sig->n; i++)
		if (!sig->s[i].name[0])
			named = 0;
	for (uint32_t i = 0; i < sig->n; i++) {
		const struct qv_tensor_info *t = &ts[i];
		if (named) {
			uint32_t k;
			for (k = 0; k < n; k++)
				if (strcmp(ts[k].name, sig->s[i].name) == 0)
					break;
			if (k == n)
				return fail(err, len, "signature %s '%s': the model has no such %s", side,
					    sig->s[i].name, side);
			t = &ts[k];
		}
		int r = check_tensor(&sig->s[i], t, side, err, len);
		if (r < 0)
			return r;
	}
	return 0;
}

int qv_mlflow_check(const struct qv_mlflow *ml, const struct qv_tensor_info *ins, uint32_t n_in,
		    const struct qv_tensor_info *outs, uint32_t n_out, char *err,
		    size_t err_len)
{
	int r;

	if (!ml->has_signature)
		return 0;
	r = check_side(&ml->in, ins, n_in, "input", err, err_len);
	if (r == 0)
		r = check_side(&ml->out, outs, n_out, "output", err, err_len);
	return r;
}
