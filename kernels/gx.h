/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gx.h - the general graph runtime: models the MLP plan (plan.c) refuses -
 * several typed inputs and outputs, embedding lookups, batched MatMul,
 * LayerNorm, GELU, reductions. Internal to kernels/.
 *
 *   gx_load.c   protobuf -> nodes and tensors, topological order
 *   gx_build.c  shape inference with a symbolic batch, constant folding,
 *               one unfused step per surviving node (the op builders in
 *               gx_ops_shape.c and gx_ops_math.c, sharing gx_build.h)
 *   gx_fuse.c   the fused plan: dense steps on the hand / oneDNN kernels
 *               with bias and activation, GELU and LayerNorm patterns
 *   gx_exec.c   the kernels, run / run_tensors / run_reference, contexts
 *   gx_model.c  the qv_model_ops table, describe, the dense chain
 *
 * The batch. Every computed tensor has exactly one batch axis (bpos) in its
 * logical shape, stored there as 1; its memory is batch-major whatever bpos
 * is: row r is the tensor with batch index r, laid out row-major over the
 * logical shape with the batch axis (size 1) in place. So a Transpose that
 * moves the batch axis, or a Reshape that keeps the product of the
 * dimensions after it, changes no byte; every other op works on one row at
 * a time with shapes fixed at load. Constants (bpos -1) have no batch and
 * are read with a row stride of 0 where they meet computed tensors.
 * dims[bpos] may also be k > 1: the batch merged with the k elements after
 * it (ids Reshaped to [-1]), the axis then B * k long with row r owning
 * k consecutive entries; only views, casts and Gather's indices take such
 * a tensor (gx_build checks), and no output may be one.
 *
 * Shape vectors. A constant int64 tensor may hold GX_SYM, the batch size,
 * where it came from Shape of a computed tensor; data movement carries it,
 * arithmetic keeps it only where it is the identity (B * 1, B + 0), and
 * Reshape / Expand / ConstantOfShape read it as "the batch axis goes here".
 */
#ifndef QV_GX_H
#define QV_GX_H

#include <stdbool.h>
#include <stdint.h>

#include "name_index.h"
#include "onnx_tensor.h"
#include "plan.h"

#define GX_SYM INT64_MIN   /* the batch size in a shape vector */
#define GX_BOOL 9u          /* ONNX's BOOL; computed and constant bools are one byte */
#define GX_MAX_IN 64u       /* step operands (Concat's inputs) */
#define GX_MAX_MAPS 3u
#define GX_MAX_ROW_ELEMS (1ull << 26)

struct gx_attr {
	char *name;
	int type;              /* ONNX AttributeType */
	float f;
	int64_t i;
	int64_t *ints;
	uint32_t n_ints;
	float *floats;
	uint32_t n_floats;
	bool has_t;
	struct qv_onnx_tensor t;
};

struct gx_node {
	char *name;            /* never NULL: made up from the output if absent */
	char *op;
	uint32_t n_in, n_out;
	int32_t *in, *out;     /* tensor ids, -1 for an absent optional one */
	uint32_t n_attr;
	struct gx_attr *attr;
};

struct gx_tensor {
	char *name;
	uint32_t dt;           /* QV_DT_F32 / QV_DT_I32 / QV_DT_I64 / GX_BOOL */
	int32_t bpos;          /* batch axis; -1: a constant */
	uint32_t rank;
	int64_t dims[QV_MAX_RANK];  /* logical; dims[bpos] == 1 (or k, see above) */
	uint64_t numel;        /* constants: all elements; computed: one row */
	void *data;            /* constants (owned) */
	bool defined;
	bool has_sym;          /* a constant shape vector holding GX_SYM */
	int32_t producer;      /* node, -1: initializer or graph input */
	int32_t store;         /* computed: storage (aliases share one) */
	int32_t origin;        /* graph input this is a copy / cast / view of, or -1 */
	uint32_t n_cons;
};

enum gx_kind {
	GX_K_MAP,       /* y[i] = x[map[i]] (transpose, slice, gather by constant, expand, split) */
	GX_K_CONCAT,    /* per outer block, each operand's part */
	GX_K_BIN,       /* elementwise over 2 operands with broadcast maps */
	GX_K_WHERE,     /* y = c ? a : b */
	GX_K_UNARY,
	GX_K_CAST,
	GX_K_SOFTMAX,   /* outer x n x inner, over n; op 1: log-softmax */
	GX_K_REDUCE,    /* y[rmap[i]] (op)= x[i] */
	GX_K_LN,        /* LayerNorm over n (outer x n), optional scale/bias */
	GX_K_AFFINE,    /* y = x * scale[i] + bias[i] (BatchNormalization) */
	GX_K_GATHER,    /* embedding: y[i, :] = table[ids[i], :] */
	GX_K_BMM,       /* L matmuls M x K x N a row */
	GX_K_DENSE,     /* y = act(x W + b) over rows * rmul rows of K */
	GX_K_DENSE_REF, /* the same with qv_ref_dense (the reference walk) */
};

enum gx_binop {
	GX_ADD, GX_SUB, GX_MUL, GX_DIV, GX_POW, GX_MAX, GX_MIN,
	GX_EQ, GX_LT, GX_GT, GX_LE, GX_GE, GX_AND, GX_OR,
};

enum gx_unop {
	GX_RELU, GX_LEAKY, GX_SIGMOID, GX_TANH, GX_CLIP, GX_ERF, GX_EXP, GX_LOG, GX_SQRT,
	GX_RECIP, GX_NEG, GX_ABS, GX_NOT, GX_FLOOR, GX_CEIL, GX_GELU, GX_GELU_TANH, GX_IDENT,
};

enum gx_redop { GX_RSUM, GX_RMEAN, GX_RMAX, GX_RMIN };

/* Element-wise work a dense step applies in place to its output rows. */
enum gx_tail_kind { GX_TAIL_ADD = 1, GX_TAIL_GELU, GX_TAIL_GELU_TANH, GX_TAIL_LN };
struct gx_tail {
	uint8_t kind;
	uint8_t arg;                  /* ADD: the operand's index in in[] */
};
#define GX_MAX_TAILS 4u

struct gx_step {
	enum gx_kind kind;
	char label[96];
	const char *what;             /* op name for describe */
	uint32_t n_in;
	int32_t in[GX_MAX_IN];        /* tensor ids */
	int32_t out;
	uint32_t dt, esz;             /* output element type; BIN/CAST: in_dt the operands' */
	uint32_t in_dt;
	uint64_t out_w;               /* elements a row of out */
	int op;                       /* gx_binop / gx_unop / gx_redop; SOFTMAX: 1 = log */
	float alpha, beta;            /* LEAKY alpha, CLIP bounds, LN eps */
	int32_t *map[GX_MAX_MAPS];      /* MAP: map[0]; BIN / WHERE: per operand, NULL = index i */
	bool one[GX_MAX_MAPS];        /* BIN: the operand is one element a row (its map all 0) */
	uint64_t outer, n, inner;     /* SOFTMAX, LN, CONCAT (outer) */
	uint64_t *part;               /* CONCAT: elements of each operand an outer block */
	float *scale, *bias;          /* LN (n each, may be NULL), AFFINE (out_w each) */
	float rnorm;                  /* REDUCE mean: 1 / count */
	uint64_t rn;                  /* REDUCE over one run of axes: outer x rn x inner (0: use map) */
	/* GATHER; ostride / ooff: writing into a Concat's rows (0: own rows) */
	uint64_t n_idx, D, V;
	uint64_t ostride, ooff;
	bool *skip;                   /* CONCAT: operands written in place by their producer */
	/* BMM: per row, L products of a (M x K) and b (K x N) at aoff[l], boff[l] */
	uint32_t L, M, K, N;
	uint64_t *aoff, *boff;
	/* DENSE */
	struct qv_step ds;            /* W (K x N), b, act; kernels in the fused plan */
	uint32_t rmul;                /* matrix rows a batch row */
	uint32_t n_tail;
	struct gx_tail tail[GX_MAX_TAILS];
	float *t_scale, *t_bias;      /* LN tail: t_n features */
	uint64_t t_n;
	float t_eps;
	bool own;                     /* frees its arrays (fused steps borrowing a reference step's do not) */
};

struct gx_model {
	struct gx_tensor *t;
	uint32_t n_t, cap_t;
	struct qv_name_index names;   /* tensor name -> id */
	struct gx_node *nodes;
	uint32_t n_nodes;
	uint32_t *order;              /* topological */
	int64_t opset;
	uint64_t param_bytes;
	uint32_t n_in, n_out;
	int32_t in[QV_MAX_TENSORS], out[QV_MAX_TENSORS];
	/* the unfused walk and the fused plan */
	struct gx_step *ref, *steps;
	uint32_t n_ref, cap_ref, n_steps;
	/* storage: one a computed tensor that is not a view */
	uint32_t n_store;
	uint64_t *store_bytes;        /* bytes a row */
	int32_t in_store[QV_MAX_TENSORS], out_store[QV_MAX_TENSORS];
	bool out_direct[QV_MAX_TENSORS];  /* the producer may write the caller's buffer */
	uint32_t max_batch, n_buckets;
	enum qv_kernel_choice kernels;
	uint32_t tune_iters;
};

/* gx_load.c */
int gx_parse(const void *buf, size_t len, struct gx_model **ret, char *err, size_t err_len);
void gx_free(struct gx_model *g);
int gx_tensor_add(struct gx_model *g, const char *name, int32_t *ret_id);
int32_t gx_tensor_find(const struct gx_model *g, const char *name);
const struct gx_attr *gx_attr(const struct gx_node *n, const char *name);
void gx_err(char *err, size_t err_len, const struct gx_node *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* gx_build.c */
int gx_build(struct gx_model *g, char *err, size_t err_len);
void gx_step_free(struct gx_step *s);
uint32_t gx_esz(uint32_t dt);

/* gx_fuse.c */
int gx_fuse(struct gx_model *g, char *err, size_t err_len);

/* gx_exec.c: one step on resolved operands (rows batch rows; a constant
 * operand is passed with its stride 0 in `stride`, in elements). Returns 0
 * or -ERANGE (an embedding id out of range). */
int gx_kernel(const struct gx_step *s, const void *const *in, const uint64_t *stride, void *out,
	      uint32_t rows, struct qv_dnnl_dense_ctx *dc);
int gx_run_reference(const struct qv_model *m, const void *in, uint32_t rows, void *out);

/* gx_model.c */
int gx_model_load(const void *buf, size_t len, const struct qv_model_opts *o, struct qv_model **ret,
		  char *err, size_t err_len);
int gx_describe(const struct qv_model *m, char *buf, size_t len);
int gx_dense_chain(const struct qv_model *m, struct qv_dense_layer *layers, uint32_t max_layers, uint32_t *ret_n);
extern const struct qv_model_ops gx_ops;

#endif /* QV_GX_H */
