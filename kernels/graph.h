/* SPDX-License-Identifier: Apache-2.0 */
/*
 * graph.h - the model runtime's in-memory graph: what onnx_load.c builds
 * from a protobuf, graph.c sorts and shape-infers, plan.c compiles into
 * steps and exec.c's reference path walks node by node.
 *
 * Computed tensors carry the batch as their first dimension, stored as -1;
 * everything after it is fixed at load time ("inner" floats a row).
 * Constants (initializers, Constant nodes) have fully known shapes.
 */
#ifndef QV_GRAPH_H
#define QV_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "name_index.h"
#include "qv_model.h"
#include "qv_ops.h"

/* Limits that turn an absurd or hostile model into a load error. */
#define QVG_MAX_DIM        (1ll << 24)          /* any one dimension */
#define QVG_MAX_PARAM_BYTES (1ull << 30)        /* all constants together */
#define QVG_MAX_ROW_FLOATS (1ull << 24)         /* a computed tensor, one row */
#define QVG_MAX_NODES      10000u
#define QVG_MAX_NODE_INPUTS 1024u

enum qvg_op {
	QVG_GEMM, QVG_MATMUL, QVG_ADD, QVG_SUB, QVG_MUL, QVG_DIV,
	QVG_RELU, QVG_LEAKY_RELU, QVG_SIGMOID, QVG_TANH, QVG_SOFTMAX, QVG_CLIP,
	QVG_FLATTEN, QVG_RESHAPE, QVG_IDENTITY, QVG_DROPOUT, QVG_CONCAT, QVG_BATCHNORM,
};

struct qvg_tensor {
	char *name;
	uint32_t rank;
	int64_t shape[QV_MAX_RANK];
	bool is_const;
	bool defined;       /* an initializer, the input or some node's output */
	float *data;        /* float constants (owned) */
	int64_t *i64;       /* int64 constants (owned), e.g. Reshape's shape */
	uint64_t numel;     /* constants: all elements; computed: one row (inner) */
	int32_t producer;   /* node index, -1 if none */
	uint32_t n_consumers;
};

struct qvg_node {
	char *name;         /* never NULL; made up from the output if absent */
	const char *op_name;
	enum qvg_op op;
	uint32_t n_in;
	int32_t *in;        /* tensor ids; -1 for an absent optional input */
	int32_t out;
	/* attributes, already defaulted */
	float alpha, beta, eps;
	int64_t trans_a, trans_b, axis;
	float clip_min, clip_max;
	/* Gemm/MatMul: W (K x N, alpha applied) and b (N, beta applied or NULL) in
	 * the y = x W + b form, made by graph.c for the reference path and the plan. */
	uint32_t K, N;
	float *W, *b;
	int c_is_lhs;       /* binary ops: the constant is the left operand */
	int32_t c_id, x_id; /* binary ops: constant and computed operand */
};

struct qvg_graph {
	struct qvg_tensor *t;
	uint32_t n_t, cap_t;
	struct qv_name_index names;  /* tensor name -> id */
	struct qvg_node *nodes;  /* topologically sorted after qvg_sort() */
	uint32_t n_nodes;
	int32_t input, output;
	int64_t opset;
	uint64_t param_bytes;
};

/* onnx_load.c */
int qvg_from_onnx(const void *buf, size_t len, struct qvg_graph **ret_g, char *err, size_t err_len);

/* graph.c */
void qvg_free(struct qvg_graph *g);
int qvg_tensor_add(struct qvg_graph *g, const char *name, int32_t *ret_id);
int32_t qvg_tensor_find(const struct qvg_graph *g, const char *name);
int qvg_sort(struct qvg_graph *g, char *err, size_t err_len);
int qvg_infer(struct qvg_graph *g, char *err, size_t err_len);
uint64_t qvg_inner(const struct qvg_tensor *t);
/* Expands constant c (numpy-broadcast against computed x) to one row of x. */
int qvg_expand_const(const struct qvg_graph *g, int32_t c_id, int32_t x_id, float **ret);

void qvg_err(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void qvg_node_err(char *err, size_t err_len, const struct qvg_node *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif /* QV_GRAPH_H */
