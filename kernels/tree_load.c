/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tree_load.c - an XGBoost model document (as Booster.save_model writes it
 * in 1.6 and later, JSON or UBJSON, both read into a cJSON tree) into the
 * intermediate struct qv_tree_model. Everything a saved model can hold is
 * either honoured or refused here with a message naming the tree and node;
 * nothing after this trusts the file.
 *
 * JSON goes through cJSON (Debian's libcjson, already quiverd's control
 * reply library): a well-kept parser with a nesting limit, so a hostile
 * file cannot recurse us off the stack. Thresholds are read as doubles and
 * rounded to float: xgboost prints every float with enough digits to round
 * trip, so decimal -> double -> float lands on the float it wrote.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree.h"

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t err_len, const char *fmt, ...)
{
	if (err && err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static const cJSON *get(const cJSON *o, const char *k)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

/* An integer parameter: xgboost writes most as strings ("4"), some as
 * numbers. Refuses anything outside [lo, hi]. */
static int get_uint(const cJSON *o, const char *k, uint64_t lo, uint64_t hi, bool required,
		    uint64_t dflt, uint64_t *ret, const char *where, char *err, size_t err_len)
{
	const cJSON *v = get(o, k);
	if (!v) {
		if (required)
			return fail(err, err_len, "%s: no %s", where, k);
		*ret = dflt;
		return 0;
	}
	double d;
	if (cJSON_IsString(v)) {
		char *end;
		errno = 0;
		d = strtod(v->valuestring, &end);
		if (end == v->valuestring || *end || errno)
			return fail(err, err_len, "%s: %s '%.32s' is not a number", where, k, v->valuestring);
	} else if (cJSON_IsNumber(v)) {
		d = v->valuedouble;
	} else {
		return fail(err, err_len, "%s: %s is not a number", where, k);
	}
	if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
		return fail(err, err_len, "%s: %s %.17g out of range [%llu, %llu]", where, k, d,
			    (unsigned long long)lo, (unsigned long long)hi);
	*ret = (uint64_t)d;
	return 0;
}

static int get_float_str(const cJSON *o, const char *k, float *ret, const char *where, char *err,
			 size_t err_len)
{
	const cJSON *v = get(o, k);
	double d;
	if (cJSON_IsString(v)) {
		char *end;
		d = strtod(v->valuestring, &end);
		if (end == v->valuestring || *end)
			return fail(err, err_len, "%s: %s '%.32s' is not a number", where, k, v->valuestring);
	} else if (cJSON_IsNumber(v)) {
		d = v->valuedouble;
	} else {
		return fail(err, err_len, "%s: no %s", where, k);
	}
	if (!isfinite(d) || fabs(d) > 3.4e38)
		return fail(err, err_len, "%s: %s %g is not a finite float", where, k, d);
	*ret = (float)d;
	return 0;
}

/* An array of exactly n numbers. */
static int get_array(const cJSON *t, const char *k, uint32_t n, uint32_t ti, const cJSON **ret,
		     char *err, size_t err_len)
{
	const cJSON *a = get(t, k);
	if (!cJSON_IsArray(a))
		return fail(err, err_len, "tree %u: no array %s", ti, k);
	int sz = cJSON_GetArraySize(a);
	if (sz < 0 || (uint32_t)sz != n)
		return fail(err, err_len, "tree %u: %s has %d entries, num_nodes is %u", ti, k, sz, n);
	*ret = a;
	return 0;
}

/* Each element of a numeric array through `each`; names the node on error. */
static int num_at(const cJSON *e, const char *k, uint32_t ti, uint32_t i, double *ret, char *err,
		  size_t err_len)
{
	if (!cJSON_IsNumber(e))
		return fail(err, err_len, "tree %u node %u: %s is not a number", ti, i, k);
	*ret = e->valuedouble;
	return 0;
}

static int int_at(const cJSON *e, const char *k, uint32_t ti, uint32_t i, double lo, double hi,
		  int64_t *ret, char *err, size_t err_len)
{
	double d = 0;
	int r = num_at(e, k, ti, i, &d, err, err_len);
	if (r < 0)
		return r;
	if (!(d >= lo && d <= hi) || d != floor(d))
		return fail(err, err_len, "tree %u node %u: %s %.17g out of range", ti, i, k, d);
	*ret = (int64_t)d;
	return 0;
}

static void tree_free(struct qv_tree *t)
{
	free(t->left);
	free(t->right);
	free(t->feat);
	free(t->value);
	free(t->dleft);
	free(t->cat);
}

void qv_tree_model_free(struct qv_tree_model *tm)
{
	if (!tm)
		return;
	for (uint32_t i = 0; tm->trees && i < tm->n_trees; i++)
		tree_free(&tm->trees[i]);
	free(tm->trees);
	free(tm->cats);
	free(tm->cat_words);
	free(tm->lin_w);
	free(tm);
}

int qv_tree_sniff(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t i = 0;
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
		i++;
	return i < len && p[i] == '{';
}

struct objective {
	const char *name;
	enum qv_tree_tf tf;
	char margin;   /* base_score -> margin: 'l' logit, 'e' log, 0 as is */
	bool multi;    /* needs num_class, one group a class */
};

/* What predict() gives for each objective xgboost 1.7 can save. The
 * generator's models check every line of this table against predict(). */
static const struct objective objectives[] = {
	{ "binary:logistic", QV_TF_SIGMOID, 'l', false },
	{ "reg:logistic", QV_TF_SIGMOID, 'l', false },
	{ "binary:logitraw", QV_TF_IDENTITY, 0, false },   /* no logit: checked */
	{ "binary:hinge", QV_TF_HINGE, 0, false },
	{ "reg:squarederror", QV_TF_IDENTITY, 0, false },
	{ "reg:linear", QV_TF_IDENTITY, 0, false },
	{ "reg:squaredlogerror", QV_TF_IDENTITY, 0, false },
	{ "reg:pseudohubererror", QV_TF_IDENTITY, 0, false },
	{ "reg:absoluteerror", QV_TF_IDENTITY, 0, false },
	{ "count:poisson", QV_TF_EXP, 'e', false },
	{ "reg:gamma", QV_TF_EXP, 'e', false },
	{ "reg:tweedie", QV_TF_EXP, 'e', false },
	{ "survival:cox", QV_TF_EXP, 'e', false },
	{ "survival:aft", QV_TF_EXP, 'e', false },
	{ "rank:pairwise", QV_TF_IDENTITY, 0, false },
	{ "rank:ndcg", QV_TF_IDENTITY, 0, false },
	{ "rank:map", QV_TF_IDENTITY, 0, false },
	{ "multi:softprob", QV_TF_SOFTMAX, 0, true },
	{ "multi:softmax", QV_TF_ARGMAX, 0, true },
};

/* One tree: arrays, children, features, categorical sets; then a walk from
 * the root that refuses cycles, shared children and depth over 64. */
static int load_tree(struct qv_tree_model *tm, const cJSON *t, uint32_t ti, uint32_t **cat_words,
		     uint32_t *cat_cap, uint32_t *cat_tab_cap, char *err, size_t err_len)
{
	char where[32];
	snprintf(where, sizeof(where), "tree %u", ti);
	if (!cJSON_IsObject(t))
		return fail(err, err_len, "%s: not an object", where);
	const cJSON *tp = get(t, "tree_param");
	uint64_t n, slv;
	int r = get_uint(tp, "num_nodes", 1, QV_TREE_MAX_NODES, true, 0, &n, where, err, err_len);
	if (r == 0)
		r = get_uint(tp, "size_leaf_vector", 0, 0, false, 0, &slv, where, err, err_len);
	if (r < 0)
		return r;
	if (tm->total_nodes + n > QV_TREE_MAX_TOTAL)
		return fail(err, err_len, "%s: more than %u nodes in all", where, QV_TREE_MAX_TOTAL);
	tm->total_nodes += n;
	const cJSON *al, *ar, *af, *av, *ad, *as;
	if ((r = get_array(t, "left_children", (uint32_t)n, ti, &al, err, err_len)) < 0 ||
	    (r = get_array(t, "right_children", (uint32_t)n, ti, &ar, err, err_len)) < 0 ||
	    (r = get_array(t, "split_indices", (uint32_t)n, ti, &af, err, err_len)) < 0 ||
	    (r = get_array(t, "split_conditions", (uint32_t)n, ti, &av, err, err_len)) < 0 ||
	    (r = get_array(t, "default_left", (uint32_t)n, ti, &ad, err, err_len)) < 0 ||
	    (r = get_array(t, "split_type", (uint32_t)n, ti, &as, err, err_len)) < 0)
		return r;
	struct qv_tree *tr = &tm->trees[ti];
	tr->n_nodes = (uint32_t)n;
	tr->left = malloc(n * sizeof(int32_t));
	tr->right = malloc(n * sizeof(int32_t));
	tr->feat = malloc(n * sizeof(uint32_t));
	tr->value = malloc(n * sizeof(float));
	tr->dleft = malloc(n);
	tr->cat = calloc(n, sizeof(uint32_t));
	if (!tr->left || !tr->right || !tr->feat || !tr->value || !tr->dleft || !tr->cat)
		return -ENOMEM;
	/* Walk the arrays side by side: cJSON_GetArrayItem is O(i). */
	const cJSON *el = al->child, *er = ar->child, *ef = af->child, *ev = av->child, *ed = ad->child,
		    *es = as->child;
	for (uint32_t i = 0; i < n; i++) {
		int64_t l, rr, f, dl, st;
		double v = 0;
		if ((r = int_at(el, "left_children", ti, i, -1, (double)n - 1, &l, err, err_len)) < 0 ||
		    (r = int_at(er, "right_children", ti, i, -1, (double)n - 1, &rr, err, err_len)) < 0 ||
		    (r = int_at(ef, "split_indices", ti, i, 0, 4294967295.0, &f, err, err_len)) < 0 ||
		    (r = int_at(ed, "default_left", ti, i, 0, 1, &dl, err, err_len)) < 0 ||
		    (r = int_at(es, "split_type", ti, i, 0, 1, &st, err, err_len)) < 0)
			return r;
		/* a categorical split has no threshold: xgboost writes NaN */
		if (st == 1 && l >= 0 &&
		    (cJSON_IsNull(ev) || (cJSON_IsNumber(ev) && isnan(ev->valuedouble))))
			v = 0;
		else if ((r = num_at(ev, "split_conditions", ti, i, &v, err, err_len)) < 0)
			return r;
		if ((l < 0) != (rr < 0))
			return fail(err, err_len, "tree %u node %u: one child (%lld, %lld)", ti, i,
				    (long long)l, (long long)rr);
		if (l >= 0 && ((uint64_t)f >= tm->num_feature))
			return fail(err, err_len, "tree %u node %u: feature %lld out of range (num_feature %u)",
				    ti, i, (long long)f, tm->num_feature);
		if (!isfinite(v) || fabs(v) > 3.4e38)
			return fail(err, err_len, "tree %u node %u: split_conditions %g is not a finite float",
				    ti, i, v);
		tr->left[i] = (int32_t)l;
		tr->right[i] = (int32_t)rr;
		tr->feat[i] = l >= 0 ? (uint32_t)f : 0;
		tr->value[i] = (float)v;
		tr->dleft[i] = (uint8_t)dl;
		/* a categorical split must get its set below; mark it for now */
		tr->cat[i] = st == 1 && l >= 0 ? UINT32_MAX : 0;
		el = el->next, er = er->next, ef = ef->next, ev = ev->next, ed = ed->next, es = es->next;
	}

	/* Categorical sets: categories_nodes[k]'s categories are
	 * categories[segments[k] .. segments[k] + sizes[k]). */
	const cJSON *cn = get(t, "categories_nodes"), *cs = get(t, "categories_segments"),
		    *cz = get(t, "categories_sizes"), *cc = get(t, "categories");
	int n_cn = cJSON_IsArray(cn) ? cJSON_GetArraySize(cn) : 0;
	if (n_cn && (!cJSON_IsArray(cs) || !cJSON_IsArray(cz) || !cJSON_IsArray(cc) ||
		     cJSON_GetArraySize(cs) != n_cn || cJSON_GetArraySize(cz) != n_cn))
		return fail(err, err_len, "%s: categories_nodes, _segments, _sizes disagree", where);
	if (n_cn) {
		int n_c = cJSON_GetArraySize(cc);
		uint32_t *vals = malloc((size_t)(n_c ? n_c : 1) * sizeof(uint32_t));
		if (!vals)
			return -ENOMEM;
		uint32_t k = 0;
		for (const cJSON *e = cc->child; e; e = e->next, k++) {
			int64_t c;
			r = int_at(e, "categories", ti, k, 0, 4294967295.0, &c, err, err_len);
			if (r < 0) {
				free(vals);
				return fail(err, err_len, "tree %u: categories[%u] is not a category", ti, k);
			}
			vals[k] = (uint32_t)c;
		}
		const cJSON *en = cn->child, *eg = cs->child, *ez = cz->child;
		for (int j = 0; j < n_cn; j++, en = en->next, eg = eg->next, ez = ez->next) {
			int64_t node, seg, sz;
			if ((r = int_at(en, "categories_nodes", ti, (uint32_t)j, 0, 4294967295.0, &node, err,
					err_len)) < 0 ||
			    (r = int_at(eg, "categories_segments", ti, (uint32_t)j, 0, 4294967295.0, &seg, err,
					err_len)) < 0 ||
			    (r = int_at(ez, "categories_sizes", ti, (uint32_t)j, 0, 4294967295.0, &sz, err,
					err_len)) < 0) {
				free(vals);
				return r;
			}
			if ((uint64_t)node >= n || tr->left[node] < 0 || tr->cat[node] != UINT32_MAX) {
				free(vals);
				return fail(err, err_len,
					    "%s: categories_nodes[%d] = %lld is not a categorical split", where, j,
					    (long long)node);
			}
			if ((uint64_t)seg + (uint64_t)sz > (uint64_t)n_c) {
				free(vals);
				return fail(err, err_len,
					    "tree %u node %lld: categories %lld..%lld past the %d listed", ti,
					    (long long)node, (long long)seg, (long long)(seg + sz), n_c);
			}
			uint32_t maxc = 0;
			for (int64_t q = 0; q < sz; q++)
				maxc = vals[seg + q] > maxc ? vals[seg + q] : maxc;
			if (maxc >= QV_TREE_MAX_CAT) {
				free(vals);
				return fail(err, err_len, "tree %u node %lld: category %u out of range [0, %u)", ti,
					    (long long)node, maxc, QV_TREE_MAX_CAT);
			}
			/* xgboost sizes the bitset by the largest category listed */
			uint32_t nw = sz ? maxc / 32 + 1 : 0;
			if ((uint64_t)tm->n_cat_words + nw > (1u << 24)) {
				free(vals);
				return fail(err, err_len, "tree %u node %lld: categorical sets too large", ti,
					    (long long)node);
			}
			if (tm->n_cat_words + nw > *cat_cap) {
				uint32_t cap = (*cat_cap ? *cat_cap * 2 : 256);
				while (cap < tm->n_cat_words + nw)
					cap *= 2;
				uint32_t *w = realloc(*cat_words, (size_t)cap * sizeof(uint32_t));
				if (!w) {
					free(vals);
					return -ENOMEM;
				}
				*cat_words = w;
				*cat_cap = cap;
			}
			if (tm->n_cats + 1 > *cat_tab_cap) {
				uint32_t cap = *cat_tab_cap ? *cat_tab_cap * 2 : 64;
				struct qv_tree_cat *c = realloc(tm->cats, (size_t)cap * sizeof(*c));
				if (!c) {
					free(vals);
					return -ENOMEM;
				}
				tm->cats = c;
				*cat_tab_cap = cap;
			}
			uint32_t *w = *cat_words + tm->n_cat_words;
			memset(w, 0, (size_t)nw * sizeof(uint32_t));
			for (int64_t q = 0; q < sz; q++)
				w[vals[seg + q] / 32] |= 1u << (vals[seg + q] % 32);
			tm->cats[tm->n_cats] = (struct qv_tree_cat){ .off = tm->n_cat_words, .n_words = nw };
			tm->n_cat_words += nw;
			tm->n_cats++;
			tr->cat[node] = tm->n_cats;   /* index + 1 */
		}
		free(vals);
	}
	for (uint32_t i = 0; i < n; i++)
		if (tr->cat[i] == UINT32_MAX)
			return fail(err, err_len, "tree %u node %u: categorical split without categories", ti, i);

	/* From the root: every node reached at most once (no cycle, no shared
	 * child), no path longer than 64 splits. Unreached nodes (deleted by
	 * pruning) are allowed and never read. */
	uint8_t *seen = calloc(n, 1);
	uint32_t *stack = malloc(n * sizeof(uint32_t) * 2);
	if (!seen || !stack) {
		free(seen);
		free(stack);
		return -ENOMEM;
	}
	uint32_t sp = 0, depth = 0;
	stack[sp++] = 0;
	stack[sp++] = 0;
	seen[0] = 1;
	r = 0;
	while (sp && r == 0) {
		uint32_t d = stack[--sp];
		uint32_t i = stack[--sp];
		if (d > depth)
			depth = d;
		if (tr->left[i] < 0)
			continue;
		if (d + 1 > QV_TREE_MAX_DEPTH) {
			r = fail(err, err_len, "tree %u node %u: depth over %u", ti, i, QV_TREE_MAX_DEPTH);
			break;
		}
		int32_t kids[2] = { tr->left[i], tr->right[i] };
		for (int k = 0; k < 2; k++) {
			if (seen[kids[k]]) {
				r = fail(err, err_len, "tree %u node %u: child %d reached twice (a cycle or a shared node)",
					 ti, i, kids[k]);
				break;
			}
			seen[kids[k]] = 1;
			/* at most n nodes are ever pushed, each once */
			stack[sp++] = (uint32_t)kids[k];
			stack[sp++] = d + 1;
		}
	}
	free(seen);
	free(stack);
	tr->depth = depth;
	if (depth > tm->max_depth)
		tm->max_depth = depth;
	return r;
}

static int load_trees(struct qv_tree_model *tm, const cJSON *model, const cJSON *weights,
		      char *err, size_t err_len)
{
	const cJSON *gp = get(model, "gbtree_model_param");
	uint64_t nt, npt, slv;
	int r = get_uint(gp, "num_trees", 0, QV_TREE_MAX_TOTAL, true, 0, &nt, "gbtree_model_param", err,
			 err_len);
	if (r == 0)
		r = get_uint(gp, "num_parallel_tree", 1, 1u << 20, false, 1, &npt, "gbtree_model_param",
			     err, err_len);
	if (r == 0)
		r = get_uint(gp, "size_leaf_vector", 0, 0, false, 0, &slv, "gbtree_model_param", err,
			     err_len);
	if (r < 0)
		return r;
	const cJSON *trees = get(model, "trees"), *info = get(model, "tree_info");
	if (!cJSON_IsArray(trees) || !cJSON_IsArray(info))
		return fail(err, err_len, "model: no trees or tree_info array");
	int n_t = cJSON_GetArraySize(trees), n_i = cJSON_GetArraySize(info);
	if (n_t < 0 || (uint64_t)n_t != nt || n_i != n_t)
		return fail(err, err_len, "model: num_trees %llu but %d trees and %d tree_info entries",
			    (unsigned long long)nt, n_t, n_i);
	if (weights) {
		if (!cJSON_IsArray(weights) || cJSON_GetArraySize(weights) != n_t)
			return fail(err, err_len, "dart: weight_drop has %d entries for %d trees",
				    cJSON_IsArray(weights) ? cJSON_GetArraySize(weights) : -1, n_t);
	}
	tm->num_parallel_tree = (uint32_t)npt;
	tm->n_trees = (uint32_t)nt;
	tm->trees = calloc(nt ? nt : 1, sizeof(*tm->trees));
	if (!tm->trees)
		return -ENOMEM;
	uint32_t cat_cap = 0, tab_cap = 0;
	const cJSON *et = trees->child, *ei = info->child, *ew = weights ? weights->child : NULL;
	for (uint32_t i = 0; i < nt; i++, et = et->next, ei = ei->next) {
		struct qv_tree *tr = &tm->trees[i];
		int64_t g;
		r = int_at(ei, "tree_info", i, 0, 0, 4294967295.0, &g, err, err_len);
		if (r < 0)
			return fail(err, err_len, "tree %u: tree_info is not a group number", i);
		/* xgboost lays trees out round by round, group by group, the
		 * parallel trees of a group together: anything else was not
		 * written by it and would be summed into the wrong output */
		uint32_t want = (uint32_t)((i / npt) % tm->n_groups);
		if ((uint64_t)g != want)
			return fail(err, err_len,
				    "tree %u: tree_info says group %lld but with num_class/num_target %u and "
				    "num_parallel_tree %llu it is group %u",
				    i, (long long)g, tm->n_groups, (unsigned long long)npt, want);
		tr->group = (uint32_t)g;
		tr->weight = 1.0f;
		if (ew) {
			double w;
			if (!cJSON_IsNumber(ew) || !isfinite(w = ew->valuedouble) || fabs(w) > 3.4e38)
				return fail(err, err_len, "tree %u: weight_drop is not a finite number", i);
			tr->weight = (float)w;
			ew = ew->next;
		}
		r = load_tree(tm, et, i, &tm->cat_words, &cat_cap, &tab_cap, err, err_len);
		if (r < 0)
			return r;
		const cJSON *id = get(et, "id");
		if (cJSON_IsNumber(id) && id->valuedouble != i)
			return fail(err, err_len, "tree %u: id %g out of order", i, id->valuedouble);
	}
	return 0;
}

static int load_linear(struct qv_tree_model *tm, const cJSON *model, char *err, size_t err_len)
{
	const cJSON *w = get(model, "weights");
	uint64_t want = ((uint64_t)tm->num_feature + 1) * tm->n_groups;
	if (!cJSON_IsArray(w) || (uint64_t)cJSON_GetArraySize(w) != want)
		return fail(err, err_len, "gblinear: weights has %d entries, (num_feature + 1) x groups is %llu",
			    cJSON_IsArray(w) ? cJSON_GetArraySize(w) : -1, (unsigned long long)want);
	tm->lin_w = malloc(want * sizeof(float));
	if (!tm->lin_w)
		return -ENOMEM;
	uint64_t i = 0;
	for (const cJSON *e = w->child; e; e = e->next, i++) {
		if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || fabs(e->valuedouble) > 3.4e38)
			return fail(err, err_len, "gblinear: weight %llu is not a finite float", (unsigned long long)i);
		tm->lin_w[i] = (float)e->valuedouble;
	}
	return 0;
}

int qv_tree_model_from_json(const cJSON *root, struct qv_tree_model **ret, char *err, size_t err_len)
{
	const cJSON *learner = get(root, "learner");
	if (!cJSON_IsObject(learner))
		return fail(err, err_len, "not an XGBoost model: no learner object");
	const cJSON *ver = get(root, "version");
	if (cJSON_IsArray(ver) && cJSON_IsNumber(ver->child) && ver->child->valuedouble < 1)
		return fail(err, err_len, "XGBoost %g.x models are not supported (1.0 and later are)",
			    ver->child->valuedouble);
	struct qv_tree_model *tm = calloc(1, sizeof(*tm));
	if (!tm)
		return -ENOMEM;
	const cJSON *mp = get(learner, "learner_model_param");
	uint64_t nf, nc, ntg;
	int r = get_uint(mp, "num_feature", 1, QV_TREE_MAX_FEATURES, true, 0, &nf, "learner_model_param",
			 err, err_len);
	if (r == 0)
		r = get_uint(mp, "num_class", 0, QV_TREE_MAX_GROUPS, false, 0, &nc, "learner_model_param",
			     err, err_len);
	if (r == 0)
		r = get_uint(mp, "num_target", 1, QV_TREE_MAX_GROUPS, false, 1, &ntg, "learner_model_param",
			     err, err_len);
	if (r == 0)
		r = get_float_str(mp, "base_score", &tm->base_score, "learner_model_param", err, err_len);
	if (r < 0)
		goto out;
	if (nc > 0 && ntg > 1) {
		r = fail(err, err_len, "learner_model_param: num_class %llu and num_target %llu together",
			 (unsigned long long)nc, (unsigned long long)ntg);
		goto out;
	}
	tm->num_feature = (uint32_t)nf;
	tm->n_groups = (uint32_t)(nc > 0 ? nc : ntg);

	const cJSON *obj = get(learner, "objective");
	const cJSON *on = get(obj, "name");
	if (!cJSON_IsString(on)) {
		r = fail(err, err_len, "objective: no name");
		goto out;
	}
	const struct objective *o = NULL;
	for (size_t i = 0; i < sizeof(objectives) / sizeof(objectives[0]); i++)
		if (!strcmp(on->valuestring, objectives[i].name))
			o = &objectives[i];
	if (!o) {
		r = fail(err, err_len, "objective '%.40s' is not supported", on->valuestring);
		goto out;
	}
	if (o->multi && nc < 1) {
		r = fail(err, err_len, "objective %s needs num_class, model has 0", o->name);
		goto out;
	}
	if (!o->multi && nc > 1) {
		r = fail(err, err_len, "objective %s with num_class %llu", o->name, (unsigned long long)nc);
		goto out;
	}
	snprintf(tm->objective, sizeof(tm->objective), "%s", o->name);
	tm->tf = o->tf;
	tm->out_w = o->tf == QV_TF_ARGMAX ? 1 : tm->n_groups;
	/* xgboost 1.7: ProbToMargin in float (-logf(1/b - 1), logf(b)) */
	float b = tm->base_score;
	if (o->margin == 'l') {
		if (!(b > 0.0f && b < 1.0f)) {
			r = fail(err, err_len, "base_score %g of %s is not a probability in (0, 1)", b, o->name);
			goto out;
		}
		tm->base_margin = -logf(1.0f / b - 1.0f);
	} else if (o->margin == 'e') {
		if (!(b > 0.0f)) {
			r = fail(err, err_len, "base_score %g of %s is not positive", b, o->name);
			goto out;
		}
		tm->base_margin = logf(b);
	} else {
		tm->base_margin = b;
	}

	const cJSON *gb = get(learner, "gradient_booster");
	const cJSON *gn = get(gb, "name");
	if (!cJSON_IsString(gn)) {
		r = fail(err, err_len, "gradient_booster: no name");
		goto out;
	}
	if (!strcmp(gn->valuestring, "gbtree")) {
		tm->booster = QV_TB_GBTREE;
		r = load_trees(tm, get(gb, "model"), NULL, err, err_len);
	} else if (!strcmp(gn->valuestring, "dart")) {
		tm->booster = QV_TB_DART;
		const cJSON *wd = get(gb, "weight_drop");
		if (!wd) {
			r = fail(err, err_len, "dart: no weight_drop");
			goto out;
		}
		r = load_trees(tm, get(get(gb, "gbtree"), "model"), wd, err, err_len);
	} else if (!strcmp(gn->valuestring, "gblinear")) {
		tm->booster = QV_TB_GBLINEAR;
		r = load_linear(tm, get(gb, "model"), err, err_len);
	} else {
		r = fail(err, err_len, "booster '%.32s' is not supported (gbtree, dart, gblinear are)",
			 gn->valuestring);
	}
out:
	if (r < 0) {
		if (r == -ENOMEM)
			fail(err, err_len, "out of memory");
		qv_tree_model_free(tm);
		return r;
	}
	*ret = tm;
	return 0;
}
