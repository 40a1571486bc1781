/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tree.h - XGBoost models (gbtree, dart, gblinear) as a model kind. Internal
 * to kernels/:
 *   ubjson.c      UBJSON bytes -> a cJSON tree (bounded reader)
 *   tree_load.c   JSON / UBJSON -> struct qv_tree_model, checked node by node
 *   tree_eval.c   the reference walk, the compiled flat layout and its two
 *                 paths (one row, blocks of rows), the qv_model_ops
 *
 * What a model computes, per row (as xgboost 1.7's predict()):
 *   margin[g] = base_margin, then for every tree t in file order whose group
 *   (tree_info) is g: margin[g] += leaf_t(row) * weight_t, in float32.
 *   weight_t is 1, or dart's weight_drop[t]. gblinear: margin[g] = (bias[g]
 *   + base_margin) + x[f] * w[f][g] for every present (non-NaN) feature f in
 *   order. Then the objective's transform (enum qv_tree_tf) gives the output.
 */
#ifndef QV_TREE_H
#define QV_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "qv_model.h"

struct cJSON;

#define QV_TREE_MAX_DEPTH 64u
#define QV_TREE_MAX_FEATURES (1u << 24)
#define QV_TREE_MAX_GROUPS (1u << 16)
#define QV_TREE_MAX_NODES (1u << 24)     /* one tree */
#define QV_TREE_MAX_TOTAL (1u << 28)     /* nodes of all trees */
#define QV_TREE_MAX_CAT (1u << 24)       /* categories are < 2^24, as xgboost's */

enum qv_tree_booster { QV_TB_GBTREE, QV_TB_DART, QV_TB_GBLINEAR };

/* What predict() applies to the margins. */
enum qv_tree_tf {
	QV_TF_IDENTITY,  /* margins as they are */
	QV_TF_SIGMOID,   /* 1 / (1 + exp(-m)) each */
	QV_TF_EXP,       /* exp(m) each */
	QV_TF_SOFTMAX,   /* softmax over the groups */
	QV_TF_ARGMAX,    /* index of the largest margin, one float */
	QV_TF_HINGE,     /* m > 0 ? 1 : 0 */
};

struct qv_tree {
	uint32_t n_nodes;
	uint32_t group;
	uint32_t depth;    /* splits on the longest path from the root */
	float weight;      /* dart's weight_drop, else 1 */
	int32_t *left, *right;   /* -1: a leaf */
	uint32_t *feat;
	float *value;            /* split threshold, or the leaf's value */
	uint8_t *dleft;          /* missing goes left */
	uint32_t *cat;           /* categorical split: index into the model's cats + 1; 0: numerical */
};

/* A categorical split's set: categories listed go RIGHT (xgboost 1.7's
 * Decision: !set.Check(c) goes left); a category outside the bitset, a
 * negative one or one >= 2^24 goes left; a missing one the default way. */
struct qv_tree_cat {
	uint32_t off;   /* first word in qv_tree_model.cat_words */
	uint32_t n_words;
};

struct qv_tree_fast;

struct qv_tree_model {
	enum qv_tree_booster booster;
	enum qv_tree_tf tf;
	char objective[40];
	uint32_t num_feature;
	uint32_t n_groups;     /* margins a row: num_class, or num_target */
	uint32_t out_w;        /* floats predict() gives a row */
	float base_score;      /* as stored (a probability for logistic objectives) */
	float base_margin;     /* base_score on the margin scale */
	uint32_t n_trees, num_parallel_tree;
	struct qv_tree *trees;
	uint64_t total_nodes;
	uint32_t n_cats, n_cat_words;
	struct qv_tree_cat *cats;
	uint32_t *cat_words;
	float *lin_w;          /* gblinear: (num_feature + 1) x n_groups, bias last */
	struct qv_tree_fast *fast;   /* NULL: the reference walk serves */
	uint32_t max_depth;
};

/* ubjson.c: parses UBJSON (draft 12, as xgboost writes it: typed and
 * counted containers) into a cJSON tree. Depth, counts and lengths are
 * bounded by the input's size. -EINVAL with a message naming the offset. */
int qv_ubjson_parse(const void *buf, size_t len, struct cJSON **ret_root, char *err, size_t err_len);

/* tree_load.c */
int qv_tree_model_from_json(const struct cJSON *root, struct qv_tree_model **ret, char *err,
			    size_t err_len);
void qv_tree_model_free(struct qv_tree_model *tm);

/* Does buf look like an XGBoost model (JSON or UBJSON: starts with '{')? */
int qv_tree_sniff(const void *buf, size_t len);

/* tree_eval.c: parses (JSON or UBJSON by content), checks, compiles, times
 * the two paths. Same contract as qv_model_load_buffer. */
int qv_tree_load_buffer(const void *buf, size_t len, const struct qv_model_opts *opts,
			qv_model **ret_model, char *err, size_t err_len);

/* Tests: force a path (0 timed choice, 1 one row at a time, 2 blocked, 3
 * the reference walk). -ENOTSUP for 1 and 2 when the model has no flat
 * layout. Call before the model is shared. */
int qv_tree_set_path(qv_model *m, int path);

/* Margins -> outputs for `rows` rows (margins rows x n_groups, out rows x out_w). */
void qv_tree_transform(const struct qv_tree_model *tm, const float *margin, uint32_t rows, float *out);

/* The reference: each row walked through the intermediate arrays. */
void qv_tree_eval_reference(const struct qv_tree_model *tm, const float *x, uint32_t rows,
			    float *margin);

#endif /* QV_TREE_H */
