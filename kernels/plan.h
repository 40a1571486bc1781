/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plan.h - the compiled plan shared by plan.c (builds it) and exec.c
 * (runs it). Internal to kernels/.
 */
#ifndef QV_PLAN_H
#define QV_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "ensemble.h"
#include "graph.h"
#include "qv_model.h"
#include "qv_ops.h"

#define QV_MAX_BUCKETS 16   /* max_batch <= 2^15 */
#define QV_TUNED_BUCKETS 10 /* 1, 2, 4 ... 512 rows are timed under AUTO */

/* Buffers a step reads and writes: the caller's in and out, then scratch. */
#define QV_BUF_IN 0u
#define QV_BUF_OUT 1u

enum qv_step_kind {
	QV_STEP_DENSE,
	QV_STEP_BINARY,   /* y = x op c[i] (or c[i] op x), c expanded to one row */
	QV_STEP_AFFINE,   /* y = (x + pre[i]) * c[i] + shift[i]: BatchNormalization, scaler chains */
	QV_STEP_ACT,
	QV_STEP_SOFTMAX,  /* rows * groups softmaxes of cols each */
	QV_STEP_CONCAT,
	QV_STEP_COPY,
};

struct qv_step {
	enum qv_step_kind kind;
	uint32_t src, dst;     /* buffer ids */
	uint32_t in_w, out_w;  /* floats a row read / written */
	char label[96];        /* the node(s) it came from */

	/* DENSE: y = act(x W + b), W K x N row-major (after folding) */
	uint32_t K, N;
	float *W, *b;
	struct qv_act_desc act;
	struct qv_dnnl_dense *dnnl;
	struct qv_hand_dense *hand;
	bool all_hand;                   /* hand kernel for every row count */
	bool any_hand;
	bool use_hand[QV_MAX_BUCKETS];   /* per bucket 2^i */
	uint32_t hand_below;             /* rows < this: one hand call (all its chunks chose hand) */
	uint64_t ns_dnnl[QV_TUNED_BUCKETS], ns_hand[QV_TUNED_BUCKETS];
	uint32_t n_folded;               /* Add/Mul/BN/... folded into W, b */
	enum qv_prec prec;               /* of the kernels above (W, b stay fp32) */

	/* BINARY / AFFINE */
	enum qv_binop op;
	int c_is_lhs;
	float *c, *shift, *pre;

	/* SOFTMAX */
	uint32_t groups, cols;

	/* CONCAT: for each of `outer` blocks a row, copy each input's part */
	uint32_t n_src, outer;
	uint32_t *srcs, *part;
};

/*
 * A model kind other than the MLP plan (tree ensembles, general graphs)
 * plugs in through this table; the MLP plan and ensembles are served by
 * plan.c / exec.c / ensemble.c directly and leave `ops` NULL. Every
 * function gets the qv_model and its own state (`impl`, `ctx->impl`).
 */
struct qv_model_ops {
	const char *kind;                                   /* "tree", "graph" ... */
	void (*free)(void *impl);
	int (*ctx_create)(const struct qv_model *m, void **ret_impl);
	void (*ctx_free)(const struct qv_model *m, void *ctx_impl);
	/* packed rows in and out (see qv_model.h); hot path */
	int (*run)(const struct qv_model *m, void *ctx_impl, const void *in, uint32_t rows, void *out);
	/* one buffer per tensor; NULL: single tensor in and out, run is used */
	int (*run_tensors)(const struct qv_model *m, void *ctx_impl, uint32_t rows,
			   const void *const *in, void *const *out);
	/* packed rows; slow, independent of run's optimisations */
	int (*run_reference)(const struct qv_model *m, const void *in, uint32_t rows, void *out);
	int (*describe)(const struct qv_model *m, char *buf, size_t len);
};

struct qv_model {
	const struct qv_model_ops *ops;  /* NULL: the MLP plan or an ensemble */
	void *impl;                      /* the ops' own model state */
	struct qv_tensor_info tin[QV_MAX_TENSORS], tout[QV_MAX_TENSORS];
	struct qvg_graph *g;        /* the unfused graph, for qv_run_reference */
	struct qv_model_info info;
	enum qv_kernel_choice kernels;
	uint32_t n_buckets;
	struct qv_step *steps;
	uint32_t n_steps;
	uint32_t n_bufs;
	uint64_t *buf_w;            /* floats a row of each buffer */
	uint64_t arena_floats;      /* scratch a context allocates */
	struct qv_ensemble *ens;    /* non-NULL: an ensemble (ensemble.c), no plan */
	struct qv_precision_report prec;
};

struct qv_exec_ctx {
	const struct qv_model *m;
	void *impl;                       /* m->ops: the ops' own context */
	float **bufs;
	float *arena;
	struct qv_dnnl_dense_ctx **dctx;  /* per step, NULL if not oneDNN */
	struct qv_ens_ctx *ens;           /* ensembles: the steps' contexts and scratch */
};

/* onednn_dense.c: run exactly bucket bi (2^bi rows); used for tuning. */
/* Appends printf output at *k of buf (len bytes), advancing *k; stops
 * quietly once the buffer is full. For the describe functions. */
__attribute__((format(printf, 4, 5)))
void qv_put(char *buf, size_t len, size_t *k, const char *fmt, ...);

int qv_dnnl_dense_run_bucket(const struct qv_dnnl_dense *d, struct qv_dnnl_dense_ctx *c,
			     uint32_t bi, const float *x, float *y);

/* plan.c: a new model of kind `ops` with `impl` (owned from here on, freed
 * with ops->free on failure too) and max_batch rounded up to a power of two
 * as qv_model_load_buffer does. The caller fills info and tin/tout (or calls
 * qv_model_single_io) before publishing it. */
int qv_model_new_kind(const struct qv_model_ops *ops, void *impl, uint32_t max_batch,
		      struct qv_model **ret_model);
/* Fills tin[0] / tout[0], n_inputs = n_outputs = 1 and the packed offsets
 * from info's in_* / out_* fields (one float tensor in, one out). */
void qv_model_single_io(struct qv_model *m);
/* Fills row_bytes, packed offsets, in_dim / out_dim and in_* / out_* of
 * info from tin/tout and info.n_inputs / n_outputs. -E2BIG past 2^30 bytes a row. */
int qv_model_pack_io(struct qv_model *m);

/* plan.c: makes a dense step's kernels for up to max_rows rows: the hand
 * kernel and / or oneDNN primitives, timed per bucket under AUTO (also
 * used by the general graph runtime, gx_fuse.c). err names st->label.
 * At st->prec bf16 / int8 the reduced kernels (int8: hand only); -ENOTSUP
 * when neither exists for the shape or CPU. */
int qv_dense_step_kernels(struct qv_step *st, uint32_t max_rows, enum qv_kernel_choice kernels,
			  uint32_t iters, char *err, size_t err_len);
/* precision.c: the guard and the per-layer choice (qv_model.h); after
 * make_kernels, for an MLP plan. Fills m->prec; fails only on ENOMEM /
 * oneDNN errors (a plan out of tolerance is not an error). */
int qv_plan_precision(struct qv_model *m, const struct qv_model_opts *o, char *err, size_t err_len);
/* The report of a model kind that has no reduced plan. */
void qv_prec_report_fp32(struct qv_model *m, enum qv_precision requested, const char *why);

/* exec.c: runs a dense step made by qv_dense_step_kernels on rows rows. Hot path. */
int qv_dense_step_run(const struct qv_step *st, struct qv_dnnl_dense_ctx *dc, const float *x,
		      uint32_t rows, float *y);

/* exec.c: runs one non-dense step (also used by tuning-free tests). */
void qv_step_run_other(const struct qv_step *st, float *const *bufs, uint32_t rows);

#endif /* QV_PLAN_H */
