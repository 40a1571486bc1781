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

struct qv_model {
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
};

struct qv_exec_ctx {
	const struct qv_model *m;
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

/* exec.c: runs one non-dense step (also used by tuning-free tests). */
void qv_step_run_other(const struct qv_step *st, float *const *bufs, uint32_t rows);

#endif /* QV_PLAN_H */
