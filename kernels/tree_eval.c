/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tree_eval.c - XGBoost models as a qv_model kind ("tree"): load (JSON or
 * UBJSON, told apart by content), compile the trees into a flat layout,
 * pick per batch size between a one-row walk and a blocked walk by timing
 * both at load, and run.
 *
 * Exactness. xgboost's predict() sums leaf values into a float32 margin
 * per output group, starting from base_score on the margin scale, tree by
 * tree in file order; both paths here add the same floats in the same order
 * for every row (the blocked path interleaves rows, never trees), so the
 * margins are bit-identical to predict()'s. Dart's weight_drop multiplies
 * the leaf (leaf * w in float) before the add; the flat layout stores that
 * product, which is the same float.
 *
 * The flat layout. Each tree is renumbered breadth-first so that a node's
 * two children are adjacent; a node is 8 bytes:
 *   v  the threshold (split), leaf value x weight (leaf), or the index of a
 *      categorical set (categorical split, bits of v)
 *   m  bits 0-15 offset to the left child (0: a leaf; the right child is
 *      the next node), 16-29 the feature, 30 missing goes left, 31
 *      categorical.
 * The missing test costs nothing on numerical splits: a default-left node
 * asks "not x >= t" and a default-right node "x < t"; NaN fails both
 * comparisons and so takes the default. A model whose trees do not fit
 * (more than 16384 features, or a child more than 65535 nodes away) is
 * served by the reference walk instead: slower, never wrong.
 *
 * The blocked path walks a block of rows through one tree level by level,
 * so the loads of one row's next node overlap with the others' compares
 * instead of each row waiting on its own chain of dependent loads.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plan.h"
#include "tree.h"

#define TN_KID 0xffffu
#define TN_FEAT_SHIFT 16
#define TN_FEAT_MASK 0x3fffu
#define TN_DL (1u << 30)
#define TN_CAT (1u << 31)
#define BLOCK 8u
#define TUNE_BUCKETS 10u   /* 1 ... 512 rows */

struct qv_tnode {
	float v;
	uint32_t m;
};
_Static_assert(sizeof(struct qv_tnode) == 8, "8-byte nodes");

enum path { PATH_AUTO = 0, PATH_ROW = 1, PATH_BLOCK = 2, PATH_REF = 3 };

struct qv_tree_fast {
	struct qv_tnode *nodes;
	uint32_t *root;     /* per tree: its first node */
	uint32_t *grp;      /* per tree: its output group */
	uint8_t *depth;     /* per tree */
	bool block[QV_MAX_BUCKETS];   /* per bucket 2^i rows: the blocked path */
	uint64_t ns_row[TUNE_BUCKETS], ns_block[TUNE_BUCKETS];
	enum path forced;
};

struct tree_ctx {
	float *acc;   /* max_batch x n_groups margins */
};

/* ---- the transform every path shares ---- */

/* xgboost's common::Sigmoid: exp of -x capped at 88.7 (no overflow to
 * inf), as in its source, so even the extremes match. */
static inline float sigmoid(float x)
{
	float t = -x;
	if (t > 88.7f)
		t = 88.7f;
	return 1.0f / (expf(t) + 1.0f + 1e-16f);
}

void qv_tree_transform(const struct qv_tree_model *tm, const float *margin, uint32_t rows, float *out)
{
	uint32_t g = tm->n_groups;
	uint64_t n = (uint64_t)rows * g;
	switch (tm->tf) {
	case QV_TF_IDENTITY:
		if (out != margin)
			memcpy(out, margin, n * sizeof(float));
		break;
	case QV_TF_SIGMOID:
		for (uint64_t i = 0; i < n; i++)
			out[i] = sigmoid(margin[i]);
		break;
	case QV_TF_EXP:
		for (uint64_t i = 0; i < n; i++)
			out[i] = expf(margin[i]);
		break;
	case QV_TF_HINGE:
		for (uint64_t i = 0; i < n; i++)
			out[i] = margin[i] > 0.0f ? 1.0f : 0.0f;
		break;
	case QV_TF_SOFTMAX:
		/* xgboost's common::Softmax: max, exp(x - max) in float, the sum
		 * in double, each divided by the sum as float */
		for (uint32_t r = 0; r < rows; r++) {
			const float *x = margin + (uint64_t)r * g;
			float *y = out + (uint64_t)r * g;
			float mx = x[0];
			for (uint32_t k = 1; k < g; k++)
				mx = fmaxf(x[k], mx);
			double sum = 0;
			for (uint32_t k = 0; k < g; k++) {
				y[k] = expf(x[k] - mx);
				sum += y[k];
			}
			for (uint32_t k = 0; k < g; k++)
				y[k] /= (float)sum;
		}
		break;
	case QV_TF_ARGMAX:
		/* the first largest, as std::max_element */
		for (uint32_t r = 0; r < rows; r++) {
			const float *x = margin + (uint64_t)r * g;
			uint32_t best = 0;
			for (uint32_t k = 1; k < g; k++)
				if (x[best] < x[k])
					best = k;
			out[r] = (float)best;
		}
		break;
	}
}

/* ---- the reference walk ---- */

/* A categorical split: does category value x (not NaN: missing values are
 * decided before) go right? Listed categories go right; a negative value,
 * one >= 2^24 or +-inf, and a category past the set's bitset go LEFT
 * whatever the default direction: that is what xgboost 1.7's predictor
 * does (checked against inplace_predict on such values by the generator's
 * rows). Fractions are truncated to the category below. */
static inline bool cat_right(const struct qv_tree_model *tm, uint32_t ci, float x)
{
	if (!(x >= 0.0f && x < (float)QV_TREE_MAX_CAT))
		return false;
	uint32_t c = (uint32_t)x;
	const struct qv_tree_cat *s = &tm->cats[ci];
	if (c / 32 >= s->n_words)
		return false;
	return (tm->cat_words[s->off + c / 32] >> (c % 32)) & 1u;
}

static void linear_rows(const struct qv_tree_model *tm, const float *x, uint32_t rows, float *margin)
{
	uint32_t nf = tm->num_feature, g = tm->n_groups;
	const float *bias = tm->lin_w + (uint64_t)nf * g;
	for (uint32_t r = 0; r < rows; r++) {
		const float *xr = x + (uint64_t)r * nf;
		for (uint32_t k = 0; k < g; k++) {
			/* GBLinear::Pred: bias + base, then each present feature */
			float s = bias[k] + tm->base_margin;
			for (uint32_t f = 0; f < nf; f++)
				if (!isnan(xr[f]))
					s += xr[f] * tm->lin_w[(uint64_t)f * g + k];
			margin[(uint64_t)r * g + k] = s;
		}
	}
}

void qv_tree_eval_reference(const struct qv_tree_model *tm, const float *x, uint32_t rows, float *margin)
{
	if (tm->booster == QV_TB_GBLINEAR) {
		linear_rows(tm, x, rows, margin);
		return;
	}
	uint32_t nf = tm->num_feature, g = tm->n_groups;
	for (uint32_t r = 0; r < rows; r++) {
		const float *xr = x + (uint64_t)r * nf;
		float *mr = margin + (uint64_t)r * g;
		for (uint32_t k = 0; k < g; k++)
			mr[k] = tm->base_margin;
		for (uint32_t t = 0; t < tm->n_trees; t++) {
			const struct qv_tree *tr = &tm->trees[t];
			int32_t i = 0;
			while (tr->left[i] >= 0) {
				float v = xr[tr->feat[i]];
				bool right;
				if (isnan(v))
					right = !tr->dleft[i];
				else if (tr->cat[i])
					right = cat_right(tm, tr->cat[i] - 1, v);
				else
					right = !(v < tr->value[i]);
				i = right ? tr->right[i] : tr->left[i];
			}
			mr[tr->group] += tr->value[i] * tr->weight;
		}
	}
}

/* ---- the flat layout ---- */

static void fast_free(struct qv_tree_fast *f)
{
	if (!f)
		return;
	free(f->nodes);
	free(f->root);
	free(f->grp);
	free(f->depth);
	free(f);
}

/* NULL (and 0) when the model does not fit 8-byte nodes. */
static int compile(const struct qv_tree_model *tm, struct qv_tree_fast **ret)
{
	*ret = NULL;
	if (tm->booster == QV_TB_GBLINEAR || tm->num_feature > TN_FEAT_MASK + 1 || !tm->n_trees)
		return 0;
	uint64_t total = 0;
	for (uint32_t t = 0; t < tm->n_trees; t++)
		total += tm->trees[t].n_nodes;
	struct qv_tree_fast *f = calloc(1, sizeof(*f));
	uint32_t *order = NULL, *pos = NULL;
	uint32_t maxn = 0;
	for (uint32_t t = 0; t < tm->n_trees; t++)
		maxn = tm->trees[t].n_nodes > maxn ? tm->trees[t].n_nodes : maxn;
	if (f) {
		f->nodes = aligned_alloc(64, ((total * sizeof(struct qv_tnode)) + 63) & ~(uint64_t)63);
		f->root = malloc(tm->n_trees * sizeof(uint32_t));
		f->grp = malloc(tm->n_trees * sizeof(uint32_t));
		f->depth = malloc(tm->n_trees);
		order = malloc(maxn * sizeof(uint32_t));
		pos = malloc(maxn * sizeof(uint32_t));
	}
	if (!f || !f->nodes || !f->root || !f->grp || !f->depth || !order || !pos) {
		fast_free(f);
		free(order);
		free(pos);
		return -ENOMEM;
	}
	uint64_t base = 0;
	bool fits = true;
	for (uint32_t t = 0; t < tm->n_trees && fits; t++) {
		const struct qv_tree *tr = &tm->trees[t];
		/* breadth first from the root: children land side by side */
		uint32_t n = 0, head = 0;
		order[n++] = 0;
		while (head < n) {
			uint32_t i = order[head++];
			pos[i] = head - 1;
			if (tr->left[i] >= 0) {
				order[n++] = (uint32_t)tr->left[i];
				order[n++] = (uint32_t)tr->right[i];
			}
		}
		struct qv_tnode *out = f->nodes + base;
		for (uint32_t k = 0; k < n; k++) {
			uint32_t i = order[k];
			if (tr->left[i] < 0) {
				out[k].v = tr->value[i] * tr->weight;
				out[k].m = 0;
				continue;
			}
			uint32_t kid = pos[tr->left[i]] - k;
			if (kid > TN_KID || pos[tr->right[i]] != pos[tr->left[i]] + 1) {
				fits = false;
				break;
			}
			uint32_t m = kid | tr->feat[i] << TN_FEAT_SHIFT | (tr->dleft[i] ? TN_DL : 0);
			if (tr->cat[i]) {
				uint32_t ci = tr->cat[i] - 1;
				memcpy(&out[k].v, &ci, 4);
				m |= TN_CAT;
			} else {
				out[k].v = tr->value[i];
			}
			out[k].m = m;
		}
		f->root[t] = (uint32_t)base;
		f->grp[t] = tr->group;
		f->depth[t] = (uint8_t)tr->depth;
		base += n;
	}
	free(order);
	free(pos);
	if (!fits) {
		fast_free(f);
		return 0;
	}
	*ret = f;
	return 0;
}

/* 0: go left, 1: go right. */
static inline uint32_t step(const struct qv_tree_model *tm, const struct qv_tnode *n, const float *x)
{
	uint32_t m = n->m;
	float v = x[(m >> TN_FEAT_SHIFT) & TN_FEAT_MASK];
	if (__builtin_expect(m & TN_CAT, 0)) {
		uint32_t ci;
		memcpy(&ci, &n->v, 4);
		return isnan(v) ? !(m & TN_DL) : cat_right(tm, ci, v);
	}
	return (m & TN_DL) ? (v >= n->v) : !(v < n->v);
}

/* One row at a time: the batch-1 path. */
static void walk_rows(const struct qv_tree_model *tm, const float *x, uint32_t rows, float *acc)
{
	const struct qv_tree_fast *f = tm->fast;
	uint32_t nf = tm->num_feature, g = tm->n_groups;
	for (uint32_t r = 0; r < rows; r++) {
		const float *xr = x + (uint64_t)r * nf;
		float *ar = acc + (uint64_t)r * g;
		for (uint32_t k = 0; k < g; k++)
			ar[k] = tm->base_margin;
		if (g == 1) {
			float s = ar[0];
			for (uint32_t t = 0; t < tm->n_trees; t++) {
				const struct qv_tnode *n = f->nodes + f->root[t];
				uint32_t kid;
				while ((kid = n->m & TN_KID))
					n += kid + step(tm, n, xr);
				s += n->v;
			}
			ar[0] = s;
			continue;
		}
		for (uint32_t t = 0; t < tm->n_trees; t++) {
			const struct qv_tnode *n = f->nodes + f->root[t];
			uint32_t kid;
			while ((kid = n->m & TN_KID))
				n += kid + step(tm, n, xr);
			ar[f->grp[t]] += n->v;
		}
	}
}

/* Blocks of BLOCK rows walked level by level through each tree. Trees go
 * in chunks of about TREE_CHUNK_BYTES of nodes: every block of rows walks
 * one chunk before the next chunk starts, so a model larger than the L2
 * cache is read from memory once per batch rather than once per block.
 * Each row still receives its trees' leaves in file order. */
#define TREE_CHUNK_BYTES (128u * 1024u)
static void walk_blocks(const struct qv_tree_model *tm, const float *x, uint32_t rows, float *acc)
{
	const struct qv_tree_fast *f = tm->fast;
	uint32_t nf = tm->num_feature, g = tm->n_groups;
	for (uint64_t i = 0; i < (uint64_t)rows * g; i++)
		acc[i] = tm->base_margin;
	for (uint32_t t0 = 0, t1; t0 < tm->n_trees; t0 = t1) {
		t1 = t0 + 1;
		while (t1 < tm->n_trees &&
		       (uint64_t)(f->root[t1] - f->root[t0]) * sizeof(struct qv_tnode) < TREE_CHUNK_BYTES)
			t1++;
	for (uint32_t r0 = 0; r0 < rows; r0 += BLOCK) {
		uint32_t nb = rows - r0 < BLOCK ? rows - r0 : BLOCK;
		const float *xb = x + (uint64_t)r0 * nf;
		float *ab = acc + (uint64_t)r0 * g;
		for (uint32_t t = t0; t < t1; t++) {
			const struct qv_tnode *root = f->nodes + f->root[t];
			uint32_t idx[BLOCK] = { 0 };
			if (!tm->n_cats) {
				/* numerical splits only: no call, no categorical test */
				for (uint32_t d = 0; d < f->depth[t]; d++) {
					for (uint32_t b = 0; b < nb; b++) {
						const struct qv_tnode *n = root + idx[b];
						uint32_t m = n->m, kid = m & TN_KID;
						float v = xb[(uint64_t)b * nf + ((m >> TN_FEAT_SHIFT) & TN_FEAT_MASK)];
						uint32_t right = (m & TN_DL) ? (v >= n->v) : !(v < n->v);
						idx[b] += kid ? kid + right : 0;
					}
				}
			} else for (uint32_t d = 0; d < f->depth[t]; d++) {
				for (uint32_t b = 0; b < nb; b++) {
					const struct qv_tnode *n = root + idx[b];
					uint32_t kid = n->m & TN_KID;
					/* a leaf stays where it is: its m is 0 */
					uint32_t go = kid + step(tm, n, xb + (uint64_t)b * nf);
					idx[b] += kid ? go : 0;
				}
			}
			uint32_t gr = f->grp[t];
			for (uint32_t b = 0; b < nb; b++)
				ab[(uint64_t)b * g + gr] += root[idx[b]].v;
		}
	}
	}
}

static int bucket_of(uint32_t rows)
{
	int b = 0;
	while ((1u << b) < rows)
		b++;
	return b;
}

static void margins(const struct qv_tree_model *tm, const float *x, uint32_t rows, float *acc)
{
	const struct qv_tree_fast *f = tm->fast;
	if (!f || f->forced == PATH_REF) {
		qv_tree_eval_reference(tm, x, rows, acc);
		return;
	}
	bool blocked = f->forced == PATH_BLOCK ||
		       (f->forced == PATH_AUTO && f->block[bucket_of(rows)]);
	if (blocked)
		walk_blocks(tm, x, rows, acc);
	else
		walk_rows(tm, x, rows, acc);
}

/* ---- qv_model_ops ---- */

static void ops_free(void *impl)
{
	struct qv_tree_model *tm = impl;
	if (tm)
		fast_free(tm->fast);
	qv_tree_model_free(tm);
}

static int ops_ctx_create(const struct qv_model *m, void **ret_impl)
{
	const struct qv_tree_model *tm = m->impl;
	struct tree_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->acc = malloc((size_t)m->info.max_batch * tm->n_groups * sizeof(float));
	if (!c->acc) {
		free(c);
		return -ENOMEM;
	}
	/* touch it here, on the thread that will run */
	memset(c->acc, 0, (size_t)m->info.max_batch * tm->n_groups * sizeof(float));
	*ret_impl = c;
	return 0;
}

static void ops_ctx_free(const struct qv_model *m, void *impl)
{
	(void)m;
	struct tree_ctx *c = impl;
	if (c)
		free(c->acc);
	free(c);
}

static int ops_run(const struct qv_model *m, void *impl, const void *in, uint32_t rows, void *out)
{
	const struct qv_tree_model *tm = m->impl;
	struct tree_ctx *c = impl;
	margins(tm, in, rows, c->acc);
	qv_tree_transform(tm, c->acc, rows, out);
	return 0;
}

static int ops_run_reference(const struct qv_model *m, const void *in, uint32_t rows, void *out)
{
	const struct qv_tree_model *tm = m->impl;
	float *acc = malloc((size_t)rows * tm->n_groups * sizeof(float));
	if (!acc)
		return -ENOMEM;
	qv_tree_eval_reference(tm, in, rows, acc);
	qv_tree_transform(tm, acc, rows, out);
	free(acc);
	return 0;
}

static const char *booster_name(enum qv_tree_booster b)
{
	return b == QV_TB_GBTREE ? "gbtree" : b == QV_TB_DART ? "dart" : "gblinear";
}

static int ops_describe(const struct qv_model *m, char *buf, size_t len)
{
	const struct qv_tree_model *tm = m->impl;
	if (!buf || !len)
		return -EINVAL;
	size_t k = 0;
	buf[0] = '\0';
	qv_put(buf, len, &k, "in '%s' %u floats, out '%s' %u floats, max_batch %u\n", m->info.in_name,
	       m->info.in_dim, m->info.out_name, m->info.out_dim, m->info.max_batch);
	qv_put(buf, len, &k, "xgboost %s %s: %u trees (%u a round in parallel), %llu nodes, depth %u, "
	       "%u groups, %u categorical sets, base_score %g (margin %g)\n",
	       booster_name(tm->booster), tm->objective, tm->n_trees, tm->num_parallel_tree,
	       (unsigned long long)tm->total_nodes, tm->max_depth, tm->n_groups, tm->n_cats,
	       (double)tm->base_score, (double)tm->base_margin);
	const struct qv_tree_fast *f = tm->fast;
	if (tm->booster == QV_TB_GBLINEAR)
		qv_put(buf, len, &k, "kernel=linear\n");
	else if (!f)
		qv_put(buf, len, &k, "kernel=reference (does not fit 8-byte nodes)\n");
	else {
		qv_put(buf, len, &k, "kernel=flat8");
		for (uint32_t b = 0; b < TUNE_BUCKETS; b++)
			if (f->ns_row[b] || f->ns_block[b])
				qv_put(buf, len, &k, " b%u:%s(row %lluns block %lluns)", 1u << b,
				       f->block[b] ? "block" : "row", (unsigned long long)f->ns_row[b],
				       (unsigned long long)f->ns_block[b]);
		qv_put(buf, len, &k, "\n");
	}
	return k < len ? 0 : -ENOBUFS;
}

static const struct qv_model_ops tree_ops = {
	.kind = "tree",
	.free = ops_free,
	.ctx_create = ops_ctx_create,
	.ctx_free = ops_ctx_free,
	.run = ops_run,
	.run_tensors = NULL,
	.run_reference = ops_run_reference,
	.describe = ops_describe,
};

/* ---- tuning ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Rows drawn from the model's own thresholds, so walks go where real
 * rows would rather than down one side. */
static void tune_rows(const struct qv_tree_model *tm, float *x, uint64_t n)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;
	for (uint64_t i = 0; i < n; i++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		const struct qv_tree *tr = &tm->trees[s % tm->n_trees];
		uint32_t j = (uint32_t)((s >> 20) % tr->n_nodes);
		x[i] = tr->value[j] + (float)((int)((s >> 40) & 3) - 1) * 1e-3f;
	}
}

static int tune(struct qv_model *m, uint32_t iters)
{
	struct qv_tree_model *tm = m->impl;
	struct qv_tree_fast *f = tm->fast;
	uint32_t maxr = m->info.max_batch < (1u << (TUNE_BUCKETS - 1)) ? m->info.max_batch
								     : 1u << (TUNE_BUCKETS - 1);
	float *x = malloc((size_t)maxr * tm->num_feature * sizeof(float));
	float *acc = malloc((size_t)maxr * tm->n_groups * sizeof(float));
	if (!x || !acc) {
		free(x);
		free(acc);
		return -ENOMEM;
	}
	tune_rows(tm, x, (uint64_t)maxr * tm->num_feature);
	bool last = false;
	for (uint32_t b = 0; b < m->n_buckets; b++) {
		uint32_t rows = 1u << b;
		if (b >= TUNE_BUCKETS || rows > maxr) {
			f->block[b] = last;   /* beyond what is timed: the largest timed choice */
			continue;
		}
		uint64_t best_r = UINT64_MAX, best_b = UINT64_MAX;
		for (uint32_t it = 0; it < iters; it++) {
			uint64_t t0 = now_ns();
			walk_rows(tm, x, rows, acc);
			uint64_t t1 = now_ns();
			walk_blocks(tm, x, rows, acc);
			uint64_t t2 = now_ns();
			best_r = t1 - t0 < best_r ? t1 - t0 : best_r;
			best_b = t2 - t1 < best_b ? t2 - t1 : best_b;
		}
		f->ns_row[b] = best_r;
		f->ns_block[b] = best_b;
		f->block[b] = last = best_b < best_r;
	}
	free(x);
	free(acc);
	return 0;
}

int qv_tree_set_path(qv_model *m, int path)
{
	if (!m || m->ops != &tree_ops || path < PATH_AUTO || path > PATH_REF)
		return -EINVAL;
	struct qv_tree_model *tm = m->impl;
	if (!tm->fast)
		return path == PATH_AUTO || path == PATH_REF ? 0 : -ENOTSUP;
	tm->fast->forced = (enum path)path;
	return 0;
}

/* ---- loading ---- */

/* xgboost writes non-finite floats as the bare words NaN, Infinity and
 * -Infinity (a categorical split's threshold is NaN), which strict JSON and
 * cJSON refuse. A copy with them, outside strings, as null and +-1e999
 * (strtod's infinity) is what cJSON reads. Offsets in messages are the
 * copy's. */
static char *json_literals(const char *in, size_t len, size_t *ret_len)
{
	/* "NaN" -> "null" is the only growth: 4 bytes for 3 */
	char *out = malloc(len + len / 3 + 8);
	if (!out)
		return NULL;
	size_t o = 0;
	bool str = false;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (str) {
			if (c == '\\' && i + 1 < len)
				out[o++] = in[i++];
			else if (c == '"')
				str = false;
		} else if (c == '"') {
			str = true;
		} else if (c == 'N' && len - i >= 3 && !memcmp(in + i, "NaN", 3)) {
			memcpy(out + o, "null", 4);
			o += 4;
			i += 2;
			continue;
		} else if (c == 'I' && len - i >= 8 && !memcmp(in + i, "Infinity", 8)) {
			memcpy(out + o, "1e999", 5);
			o += 5;
			i += 7;
			continue;
		}
		out[o++] = in[i];
	}
	*ret_len = o;
	return out;
}

int qv_tree_load_buffer(const void *buf, size_t len, const struct qv_model_opts *opts,
			qv_model **ret_model, char *err, size_t err_len)
{
	if (err && err_len)
		err[0] = '\0';
	if (!buf || !ret_model)
		return -EINVAL;
	cJSON *root = NULL;
	int r;
	const unsigned char *p = buf;
	/* UBJSON's '{' is followed by a key's length marker (an integer type)
	 * or '}', '#', '$'; JSON's by whitespace, '"' or '}' */
	bool ubj = len >= 2 && p[0] == '{' && strchr("iUIlL#$", p[1]) && p[1];
	if (ubj) {
		r = qv_ubjson_parse(buf, len, &root, err, err_len);
		if (r < 0)
			return r;
	} else {
		char *text = json_literals(buf, len, &len);
		if (!text) {
			if (err && err_len)
				snprintf(err, err_len, "out of memory");
			return -ENOMEM;
		}
		root = cJSON_ParseWithLength(text, len);
		if (!root) {
			const char *e = cJSON_GetErrorPtr();
			size_t off = e && e >= text && e <= text + len ? (size_t)(e - text) : len;
			free(text);
			if (err && err_len)
				snprintf(err, err_len, "json: malformed or truncated near byte %zu", off);
			return -EINVAL;
		}
		free(text);
	}
	struct qv_tree_model *tm;
	r = qv_tree_model_from_json(root, &tm, err, err_len);
	cJSON_Delete(root);
	if (r < 0)
		return r;
	if ((r = compile(tm, &tm->fast)) < 0) {
		qv_tree_model_free(tm);
		if (err && err_len)
			snprintf(err, err_len, "out of memory");
		return r;
	}
	struct qv_model *m;
	r = qv_model_new_kind(&tree_ops, tm, opts ? opts->max_batch : 0, &m);
	if (r < 0) {
		if (err && err_len)
			snprintf(err, err_len, "options: max_batch out of range");
		return r;
	}
	uint64_t wide = tm->num_feature > tm->n_groups ? tm->num_feature : tm->n_groups;
	if (wide * m->info.max_batch * 4 > (1ull << 30)) {
		qv_model_free(m);
		if (err && err_len)
			snprintf(err, err_len, "model: a batch of %u rows exceeds 1 GiB", m->info.max_batch);
		return -E2BIG;
	}
	struct qv_model_info *inf = &m->info;
	inf->in_dim = tm->num_feature;
	inf->out_dim = tm->out_w;
	inf->n_steps = 1;
	inf->in_rank = inf->out_rank = 2;
	inf->in_shape[0] = inf->out_shape[0] = -1;
	inf->in_shape[1] = tm->num_feature;
	inf->out_shape[1] = tm->out_w;
	snprintf(inf->in_name, sizeof(inf->in_name), "features");
	snprintf(inf->out_name, sizeof(inf->out_name), "%s",
		 tm->tf == QV_TF_SOFTMAX ? "probabilities" : tm->tf == QV_TF_SIGMOID ? "probability"
		 : tm->tf == QV_TF_ARGMAX || tm->tf == QV_TF_HINGE ? "class" : "prediction");
	qv_model_single_io(m);
	if (tm->fast) {
		r = tune(m, opts && opts->tune_iters ? opts->tune_iters : 3);
		if (r < 0) {
			qv_model_free(m);
			if (err && err_len)
				snprintf(err, err_len, "out of memory");
			return r;
		}
	}
	*ret_model = m;
	return 0;
}
