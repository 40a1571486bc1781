/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qv_ops.h - internal interface between the plan compiler and the kernels
 * that execute its steps. Three implementations of a dense step exist and
 * are checked against each other by tests/harness:
 *   - qv_ref_*    plain C reference (ref_ops.c), the ground truth;
 *   - qv_hand_*   hand-written AVX-512 / AVX2 kernels (dense_hand.c),
 *                 chosen at run time by cpuid;
 *   - qv_dnnl_*   oneDNN matmul primitives (onednn_dense.c).
 *
 * Convention: a dense step computes  y[r][n] = act(sum_k x[r][k] * W[k][n] + b[n])
 * with x: rows x K (row stride K), W: K x N row-major (the "y = x W" form;
 * the compiler turns Gemm transB / alpha / beta into it), b: N floats or NULL.
 */
#ifndef QV_OPS_H
#define QV_OPS_H

#include <stddef.h>
#include <stdint.h>

enum qv_act {
	QV_ACT_NONE = 0,
	QV_ACT_RELU,        /* alpha unused */
	QV_ACT_LEAKY_RELU,  /* x < 0 ? alpha * x : x */
	QV_ACT_SIGMOID,
	QV_ACT_TANH,
	QV_ACT_CLIP,        /* min(max(x, alpha), beta) */
};

struct qv_act_desc {
	enum qv_act kind;
	float alpha, beta;
};

/* ---- reference ops (ref_ops.c): plain loops, no vector intrinsics ---- */
void qv_ref_dense(const float *x, uint32_t rows, uint32_t K, const float *W, uint32_t N,
		  const float *b, struct qv_act_desc act, float *y);
void qv_ref_act(const float *x, size_t n, struct qv_act_desc act, float *y);
/* softmax over the last axis: rows x cols */
void qv_ref_softmax(const float *x, uint32_t rows, uint32_t cols, float *y);
/* y = x (op) c with numpy broadcasting of c (shape c_shape, rank c_rank)
 * against x (shape x_shape, rank x_rank, output shape = x_shape). */
enum qv_binop { QV_BIN_ADD, QV_BIN_SUB, QV_BIN_MUL, QV_BIN_DIV };
int qv_ref_binary(enum qv_binop op, const float *x, const int64_t *x_shape, uint32_t x_rank,
		  const float *c, const int64_t *c_shape, uint32_t c_rank, int c_is_lhs, float *y);
/* concat of n inputs along axis; each input shaped like the output except at axis */
void qv_ref_concat(const float *const *in, const int64_t *const *shapes, uint32_t n,
		   uint32_t rank, uint32_t axis, float *y);
/* BatchNormalization (inference) on rows x C (x C spatial... flattened as outer x C x inner) */
void qv_ref_batchnorm(const float *x, uint64_t outer, uint32_t C, uint64_t inner,
		      const float *scale, const float *bias, const float *mean, const float *var,
		      float eps, float *y);

/* ---- hand-written dense (dense_hand.c) ---- */
enum qv_isa { QV_ISA_SCALAR = 0, QV_ISA_AVX2 = 1, QV_ISA_AVX512 = 2 };
enum qv_isa qv_hand_isa(void);  /* best ISA this CPU runs, cached */

struct qv_hand_dense;  /* weights packed for the kernel, immutable */
/* isa: QV_ISA_* to force one (tests), or -1 for the best available. */
int qv_hand_dense_create(const float *W, uint32_t K, uint32_t N, const float *b,
			 struct qv_act_desc act, int isa, struct qv_hand_dense **ret);
void qv_hand_dense_free(struct qv_hand_dense *d);
/* Hot path: no allocation. Any rows >= 1. */
void qv_hand_dense_run(const struct qv_hand_dense *d, const float *x, uint32_t rows, float *y);

/* ---- reduced precision (dense_lowp.c, references in ref_ops.c) ----
 *
 * A dense step may run with bf16 or int8 weights (converted once at load):
 *  - bf16: x and W rounded to bfloat16 (round to nearest even), products
 *    summed in fp32 (AVX512_BF16 vdpbf16ps), bias and activation in fp32;
 *  - int8: W quantised per output column n with scale sw[n] = max_k |W[k][n]|
 *    / 127, q = rne(W[k][n] * (127 / max)); x quantised per row r with
 *    sx = max_k |x[r][k]| / 127 and q = rne(x * (127 / max)) (or with one
 *    static max from calibration, values beyond it clamped to +-127); the
 *    int32 sum of products (AVX512_VNNI vpdpbusd) is turned back with
 *    y = fma(sum, sx * sw[n], b[n]), then the activation.
 * qv_ref_dense_bf16 / qv_ref_dense_int8 round exactly so, in plain C.
 */
enum qv_prec { QV_PREC_FP32 = 0, QV_PREC_BF16 = 1, QV_PREC_INT8 = 2 };
#define QV_PREC_COUNT 3
const char *qv_prec_name(enum qv_prec p);  /* "fp32", "bf16", "int8" */

/* Whether this CPU runs p's hand kernels (fp32: always). The environment
 * variable QUIVER_DISABLE_ISA (comma-separated: avx512_bf16, avx512_vnni)
 * masks instructions the CPU has, to test the fp32 fallback. Cached. */
int qv_prec_supported(enum qv_prec p);

/* bfloat16 round to nearest even, as a float (NaN stays NaN). */
float qv_bf16_round(float v);

void qv_ref_dense_bf16(const float *x, uint32_t rows, uint32_t K, const float *W, uint32_t N,
		       const float *b, struct qv_act_desc act, float *y);
/* x_absmax 0: per-row dynamic scales; > 0: the static calibration max. */
void qv_ref_dense_int8(const float *x, uint32_t rows, uint32_t K, const float *W, uint32_t N,
		       const float *b, struct qv_act_desc act, float x_absmax, float *y);

/* Reduced hand kernels run through qv_hand_dense_run / qv_hand_dense_free.
 * -ENOTSUP: the CPU lacks the instructions, or N <= 4 (such narrow layers
 * stay fp32: the fp32 dot-product kernel already streams them at its
 * floor); -E2BIG: K > QV_LOWP_MAX_K (the converted rows live on the stack).
 * x_absmax as for qv_ref_dense_int8 (ignored for bf16). */
#define QV_LOWP_MAX_K 4096u
int qv_hand_dense_create_lowp(const float *W, uint32_t K, uint32_t N, const float *b,
			      struct qv_act_desc act, enum qv_prec prec, float x_absmax,
			      struct qv_hand_dense **ret);

/* ---- oneDNN dense (onednn_dense.c) ---- */
struct qv_dnnl_dense;      /* primitives for every batch bucket + reordered weights */
struct qv_dnnl_dense_ctx;  /* per-thread memory objects and scratchpad */
int qv_dnnl_dense_create(const float *W, uint32_t K, uint32_t N, const float *b,
			 struct qv_act_desc act, uint32_t max_batch, struct qv_dnnl_dense **ret);
/* The same in bf16: weights reordered to bf16 once, each run converts x to
 * bf16 (round to nearest even) into the context's buffer, fp32 out.
 * -ENOTSUP when oneDNN has no bf16 matmul here. */
int qv_dnnl_dense_create_bf16(const float *W, uint32_t K, uint32_t N, const float *b,
			      struct qv_act_desc act, uint32_t max_batch, struct qv_dnnl_dense **ret);
void qv_dnnl_dense_free(struct qv_dnnl_dense *d);
int qv_dnnl_dense_ctx_create(const struct qv_dnnl_dense *d, struct qv_dnnl_dense_ctx **ret);
void qv_dnnl_dense_ctx_free(struct qv_dnnl_dense_ctx *c);
/* Hot path. 1 <= rows <= max_batch. */
int qv_dnnl_dense_run(const struct qv_dnnl_dense *d, struct qv_dnnl_dense_ctx *c,
		      const float *x, uint32_t rows, float *y);

/*
 * For bench/'s floor: when a model's plan is a pure chain of dense steps,
 * export the layers (pointers into the model, valid while it lives).
 * Returns -ENOTSUP otherwise.
 */
struct qv_dense_layer {
	uint32_t K, N;
	const float *W;   /* K x N row-major */
	const float *b;   /* N or NULL */
	struct qv_act_desc act;
	uint32_t rows_mult;  /* matrix rows a batch row (a MatMul of rank > 2); 0 means 1 */
};
struct qv_model;
int qv_model_dense_chain(const struct qv_model *m, struct qv_dense_layer *layers,
			 uint32_t max_layers, uint32_t *ret_n);

#endif /* QV_OPS_H */
