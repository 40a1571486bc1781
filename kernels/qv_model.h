/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qv_model.h - quiver's model runtime: load an ONNX MLP, compile it into a
 * plan of oneDNN primitives and hand-written kernels, run it.
 *
 * Contract
 *  - Slow-path functions return 0 or a negative errno; out-parameters are
 *    named ret_* and are written only on success.
 *  - Loading never leaves a half-loaded model: on failure nothing is
 *    allocated and `err` (if given) holds one line naming the node, the op
 *    and the reason, e.g. "node 'fc2' (Gemm): transB=2 is not 0 or 1".
 *  - A loaded qv_model is immutable and may be shared by any number of
 *    threads. Every thread that runs it owns one qv_exec_ctx: its scratch,
 *    oneDNN stream and memory objects. qv_run() never allocates, locks,
 *    logs or makes a syscall, and runs single-threaded on the calling
 *    thread (no OpenMP pool is ever woken; the argument is in onednn_dense.c).
 *  - A model has n_inputs >= 1 inputs and n_outputs >= 1 outputs, each a
 *    named tensor of one dtype (float32, int32, int64) whose first
 *    dimension is the (dynamic) batch; everything after it is fixed at load
 *    time and flattened into a row (qv_tensor_info). MLPs, tree models and
 *    positional ensembles have one float32 input and one float32 output;
 *    graphs and ensembles wired by name may have several of any dtype.
 *  - The packed row. Transports (shared-memory slots, UDP datagrams,
 *    batching) see a request as rows of bytes: one row of every input
 *    tensor, in declared order, back to back with no padding (every dtype
 *    is a multiple of 4 bytes, so each tensor starts 4-byte aligned; int64
 *    values are read with memcpy and may sit at an offset that is only
 *    4-aligned). in_dim / out_dim count the 4-byte words of a packed row;
 *    for a model with one float input and one float output they are its
 *    floats a row, exactly as before. qv_run takes and gives packed rows;
 *    qv_run_tensors takes one buffer per tensor.
 */
#ifndef QV_MODEL_H
#define QV_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QV_MAX_RANK 8
#define QV_DEFAULT_MAX_BATCH 256u
#define QV_ERR_LEN 256

typedef struct qv_model qv_model;
typedef struct qv_exec_ctx qv_exec_ctx;

/* Which implementation a dense step uses. AUTO measures at load time. */
enum qv_kernel_choice {
	QV_KERNEL_AUTO = 0,
	QV_KERNEL_ONEDNN = 1,  /* oneDNN primitives only */
	QV_KERNEL_HAND = 2,    /* hand-written kernels where they exist */
};

/*
 * Reduced precision (MLP plans; other model kinds are served in fp32 and
 * say so in their report). The weights of each dense step are converted
 * once at load to bf16 or int8 (per-output-channel scales; activations
 * quantised per row at run time), kernels as in qv_ops.h.
 *
 * The accuracy guard. At load the reduced plan and the fp32 plan both run a
 * golden set: opts.golden (golden.npy beside a repository model), else
 * QV_GOLDEN_ROWS rows drawn from N(0, 1) independently per feature by a
 * fixed-seed generator (xorshift64 + Box-Muller, seed QV_GOLDEN_SEED), so
 * every load of a model sees the same rows. Per output value d = |reduced -
 * fp32|; the plan passes when every d <= tol_abs + tol_rel * |fp32| and, for
 * a classifier (more than one output value a row), the top class agrees on
 * at least tol_top1 of the rows. Defaults (0 in opts): tol_abs 1e-2 for
 * bf16 and auto, 3e-2 for int8; tol_rel 0; tol_top1 0.99. A plan that fails
 * is served in fp32, and the report says why. AUTO tries, layer by layer
 * in plan order, the precisions faster than fp32 at batch 1 (fastest
 * first, measured) and keeps the fastest that keeps the whole model within
 * tolerance. A CPU without AVX512_BF16 / AVX512_VNNI (or with them masked
 * by QUIVER_DISABLE_ISA) serves fp32 with that reason. Layers of at most 4
 * outputs (a final logit) always stay fp32.
 */
enum qv_precision {
	QV_PRECISION_FP32 = 0,
	QV_PRECISION_BF16 = 1,
	QV_PRECISION_INT8 = 2,
	QV_PRECISION_AUTO = 3,
};
#define QV_GOLDEN_ROWS 256u
#define QV_GOLDEN_SEED 0x5eed5eed5eedull

struct qv_model_opts {
	uint32_t max_batch;            /* 0 = QV_DEFAULT_MAX_BATCH; rounded up to a power of two */
	enum qv_kernel_choice kernels; /* default AUTO */
	uint32_t tune_iters;           /* AUTO: timed runs per candidate, 0 = default */
	enum qv_precision precision;   /* default fp32: plans exactly as before */
	float tol_abs, tol_rel, tol_top1;  /* the guard's tolerance, 0 = default */
	const float *golden;           /* golden_rows x golden_dim floats, or NULL */
	uint32_t golden_rows;
	uint32_t golden_dim;           /* must be the model's in_dim (a load error otherwise) */
	/* AUTO ranks int8 < bf16 < fp32 by weight bytes instead of timing each
	 * layer (deterministic, for tests on a noisy machine) */
	int auto_untimed;
};

/* "fp32", "bf16", "int8", "auto"; qv_precision_parse: -EINVAL for others. */
const char *qv_precision_name(enum qv_precision p);
int qv_precision_parse(const char *s, enum qv_precision *ret);

struct qv_precision_report {
	enum qv_precision requested;
	char served[96];       /* "fp32", "bf16", "int8", or per dense layer "int8,bf16,fp32" */
	int reduced;           /* 1: some layer runs below fp32 */
	int checked;           /* 1: the guard ran (reduced plan tried) */
	double max_abs, max_rel;  /* of the plan served (0 when fp32); rel: d / max(|fp32|, 1e-3) */
	double top1;           /* top-class agreement, -1: not a classifier */
	uint32_t golden_rows;
	int golden_given;      /* 1: opts.golden, 0: the generated rows */
	double tol_abs, tol_rel, tol_top1;
	char reason[192];      /* why (part of) the plan stayed fp32, "" if it did not */
};

/* The precision a model was asked for and what it serves (any model kind). */
int qv_model_precision(const qv_model *m, struct qv_precision_report *ret);

/* Element types, numbered as ONNX's TensorProto.DataType. */
enum qv_dtype {
	QV_DT_F32 = 1,
	QV_DT_I32 = 6,
	QV_DT_I64 = 7,
};
#define QV_MAX_TENSORS 16u   /* inputs, and outputs, a model at most */
#define QV_TENSOR_NAME_LEN 64u

/* Bytes of one element of dt, 0 for an unknown dtype. */
static inline uint32_t qv_dtype_size(uint32_t dt)
{
	return dt == QV_DT_F32 || dt == QV_DT_I32 ? 4u : dt == QV_DT_I64 ? 8u : 0u;
}

/* "float32", "int32", "int64", or "?" */
const char *qv_dtype_name(uint32_t dt);

struct qv_tensor_info {
	char name[QV_TENSOR_NAME_LEN];
	uint32_t dtype;       /* enum qv_dtype */
	uint32_t rank;        /* with the batch dimension */
	int64_t shape[QV_MAX_RANK];   /* shape[0] == -1: the batch */
	uint32_t row_elems;   /* elements a row (product of shape[1..]) */
	uint32_t row_bytes;   /* row_elems * qv_dtype_size(dtype) */
	uint32_t packed_off;  /* byte offset of this tensor in a packed row */
	uint32_t reserved;
	/* Integer inputs used as indices (embedding ids): every value must be in
	 * [0, index_bound) (negative ids count from the end where the op allows
	 * it, as in ONNX Gather: [-index_bound, index_bound)). 0: not an index
	 * input, or no single bound. Benchmarks draw ids inside it. */
	int64_t index_bound;
};

struct qv_model_info {
	uint32_t in_dim;      /* 4-byte words of a packed input row (floats for float models) */
	uint32_t out_dim;     /* 4-byte words of a packed output row */
	uint32_t max_batch;
	uint32_t n_steps;     /* steps in the compiled plan */
	uint32_t in_rank, out_rank;
	int64_t in_shape[QV_MAX_RANK];  /* in_shape[0] == -1: dynamic batch */
	int64_t out_shape[QV_MAX_RANK];
	char in_name[64];     /* the first input's and output's names */
	char out_name[64];
	uint32_t n_inputs, n_outputs;
};

/* Load from a file or a buffer. opts may be NULL. err may be NULL. */
int qv_model_load_file(const char *path, const struct qv_model_opts *opts,
		       qv_model **ret_model, char *err, size_t err_len);
int qv_model_load_buffer(const void *buf, size_t len, const struct qv_model_opts *opts,
			 qv_model **ret_model, char *err, size_t err_len);
void qv_model_free(qv_model *m);

int qv_model_get_info(const qv_model *m, struct qv_model_info *ret_info);

/* Input (is_output 0) or output (is_output 1) number idx. -ENOENT past the last. */
int qv_model_tensor(const qv_model *m, int is_output, uint32_t idx, struct qv_tensor_info *ret_info);

/* Human-readable plan, one step a line (op, shapes, kernel chosen, measured ns). */
int qv_model_describe(const qv_model *m, char *buf, size_t len);

/* Batch-size buckets a plan step can report (1, 2, 4 ... 2^15 rows). */
#define QV_PLAN_MAX_BUCKETS 16u

/* One step of a compiled plan, as qv_model_plan() reports it. */
struct qv_plan_step {
	char kind[16];          /* "dense", "binary", "affine", "act", "softmax", "concat", "copy" */
	char label[96];         /* the ONNX node(s) it was compiled from */
	uint32_t in_w, out_w;   /* floats a row read / written */
	/* dense steps only (zero / empty otherwise): */
	uint32_t K, N;          /* weights K x N */
	char act[16];           /* activation fused as a post-op, "" for none */
	char precision[8];      /* kernels' precision: "fp32", "bf16", "int8" */
	uint32_t n_folded;      /* Add / Mul / BatchNormalization ... folded into the weights */
	uint32_t n_buckets;     /* buckets of 1, 2, 4 ... max_batch rows */
	/* per bucket 2^i rows: 1 the hand-written kernel runs it, 0 oneDNN */
	uint8_t hand[QV_PLAN_MAX_BUCKETS];
};

/*
 * The compiled plan of an MLP (ONNX dense) model, step by step: what each
 * step computes, the nodes it came from and, for dense steps, the kernel
 * that runs each batch-size bucket (measured at load time under
 * QV_KERNELS_AUTO) and its precision. Fills up to max steps and sets
 * *ret_n to the plan's length; -ENOBUFS when that is more than max.
 * -ENOTSUP for models that have no such plan (trees, general graphs,
 * ensembles: qv_model_describe describes them), -EINVAL for NULL
 * arguments.
 */
int qv_model_plan(const qv_model *m, struct qv_plan_step *steps, uint32_t max, uint32_t *ret_n);

/* One context per running thread. Allocates everything run() will touch. */
int qv_exec_ctx_create(const qv_model *m, qv_exec_ctx **ret_ctx);
void qv_exec_ctx_free(qv_exec_ctx *ctx);

/*
 * Run the model on `rows` rows (1 <= rows <= max_batch) of `in`
 * (rows * in_dim words of packed rows, read in place) and write rows *
 * out_dim words of packed rows to `out`. For a one-float-in, one-float-out
 * model these are plain float rows. Returns 0, -EINVAL for rows out of
 * range, -ERANGE as qv_run_tensors. Hot path.
 */
int qv_run(qv_exec_ctx *ctx, const float *in, uint32_t rows, float *out);

/*
 * Run with one buffer per tensor: in[i] holds rows * row_bytes of input i,
 * out[j] receives rows * row_bytes of output j (n_inputs / n_outputs
 * pointers each). Returns 0, -EINVAL for rows out of range, -ERANGE when an
 * index input (e.g. an embedding id) is outside its table: nothing is read
 * outside the model's memory, and the outputs are then undefined. Hot path.
 */
int qv_run_tensors(qv_exec_ctx *ctx, uint32_t rows, const void *const *in, void *const *out);

/* The plain C reference implementation of the same graph (slow, unfused). */
int qv_run_reference(const qv_model *m, const float *in, uint32_t rows, float *out);

/* Makes the calling thread run oneDNN inline (one OpenMP thread). Called by
 * qv_exec_ctx_create and idempotent; workers call it once after pinning. */
void qv_thread_init(void);


/* ==== Ensembles ====
 *
 * An ensemble is a qv_model made of other loaded models ("steps") and the
 * wiring of tensors between them. Once made, it is run through the API above
 * like any model: qv_model_get_info, qv_model_describe, qv_exec_ctx_create,
 * qv_run, qv_run_reference, qv_exec_ctx_free, qv_model_free.
 *
 *  - A step reads either the ensemble's input (n_inputs == 0) or the
 *    outputs of other steps, concatenated along the feature axis in the
 *    order given. QV_ENS_INPUT as an input name is the ensemble's input.
 *  - A step may be gated: it runs on a row only when the gate step's output
 *    for that row (the gate model gives 1 float a row) compares true with
 *    the threshold; on other rows its output row is else_value in every
 *    column. NaN never passes a gate.
 *  - The ensemble's output is the output step's (the last step listed when
 *    `output` is NULL); max_batch is the smallest of the steps'.
 *  - Steps run back to back on the calling thread. Intermediates live in
 *    scratch the exec context allocates (touched first by the creating
 *    thread, so create it on the worker) and are passed by pointer; the
 *    output step writes straight into qv_run's `out`. The one copy is a
 *    fan-in at more than one row (see qv_ensemble_copy_bytes).
 *  - Lifetime: the ensemble does not own its steps' models; they must
 *    outlive it and every context made from it. Names are copied.
 *  - Invalid wiring (no model, unknown or missing input, cycle, width
 *    mismatch, bad gate, unused step) fails with -EINVAL and an `err`
 *    naming the step, e.g. "step 'head': input is 14 floats a row
 *    (tower_a 8 + tower_b 6) but its model takes 12".
 *
 * The description is JSON-free; a repository's config.json maps onto it
 * one field for one, the loader resolving each model (and version) to a
 * loaded qv_model first:
 *   {"steps": [{"name": "ta", "model": "tower-a", "version": 2},
 *              {"name": "tb", "model": "tower-b"},
 *              {"name": "head", "model": "head", "inputs": ["ta", "tb"],
 *               "gate": {"step": "g", "op": ">=", "threshold": 0.5, "else": -1}}],
 *    "output": "head"}
 */
#define QV_ENS_MAX_STEPS 32u
#define QV_ENS_MAX_INPUTS 8u
#define QV_ENS_NAME_LEN 64u
#define QV_ENS_INPUT "$input"

enum qv_gate_op {
	QV_GATE_NONE = 0,  /* not gated */
	QV_GATE_GE = 1,    /* run when gate >= threshold */
	QV_GATE_LT = 2,    /* run when gate <  threshold */
};

struct qv_ensemble_gate {
	enum qv_gate_op op;
	const char *step;   /* the gating step */
	float threshold;
	float else_value;   /* every output float of a row the step skips */
};

/*
 * Named tensors. When any step has binds (or the description names
 * outputs), the ensemble is wired by name and the positional fields above
 * (n_inputs / inputs, output) must be unused:
 *  - every input tensor of a step's model is bound to a source: "$NAME",
 *    the ensemble input NAME; "STEP.TENSOR", output TENSOR of step STEP;
 *    or "STEP" when that step's model has exactly one output. Any tensor
 *    dtype; a source and the input it feeds agree on dtype and row shape.
 *  - The ensemble's inputs are the $NAMEs in order of first use (steps as
 *    listed, binds as listed), each typed by the step inputs it feeds; all
 *    of them must agree (dtype and row shape), else the error names both
 *    steps.
 *  - Its outputs are `outputs` (name -> "STEP.TENSOR" / "STEP") in the
 *    order given; none: the last step's outputs under their own names.
 *  - Gates work as above (the gated step's outputs must be float32).
 *  - Tensors pass by pointer: a step reads its sources where they were
 *    written; a step output that is an ensemble output is written straight
 *    into the caller's buffer (qv_run_tensors) or, at one row, into its
 *    slice of the packed output row (qv_run). Copies, all counted in
 *    qv_ensemble_copy_bytes: qv_run at rows > 1 de-interleaves packed
 *    inputs and interleaves packed outputs (unless there is one tensor on
 *    that side, whose rows are already contiguous), and a step output
 *    that is given out a second time under another name is copied.
 */
struct qv_ensemble_bind {
	const char *input;    /* the step model's input tensor */
	const char *source;   /* "$NAME", "STEP.TENSOR" or "STEP" */
};

struct qv_ensemble_output {
	const char *name;     /* the ensemble output's name */
	const char *source;   /* "STEP.TENSOR" or "STEP" */
};

struct qv_ensemble_step {
	const char *name;
	const qv_model *model;
	uint32_t n_inputs;                        /* 0: the ensemble's input */
	const char *inputs[QV_ENS_MAX_INPUTS];    /* step names or QV_ENS_INPUT */
	struct qv_ensemble_gate gate;
	uint32_t n_binds;                         /* named form: one per model input */
	const struct qv_ensemble_bind *binds;
};

struct qv_ensemble_desc {
	const char *name;                         /* for messages; may be NULL */
	uint32_t n_steps;
	const struct qv_ensemble_step *steps;
	const char *output;                       /* NULL: the last step */
	uint32_t n_outputs;                       /* named form: 0 = the last step's */
	const struct qv_ensemble_output *outputs;
};

int qv_ensemble_create(const struct qv_ensemble_desc *d, qv_model **ret_model,
		       char *err, size_t err_len);

/* Is m an ensemble? */
int qv_model_is_ensemble(const qv_model *m);

/* Bytes this context copied between steps since it was made (fan-in
 * gathers at rows > 1 and fan-ins that cannot be laid out adjacently).
 * Filling else_value rows is not a copy and is not counted. */
uint64_t qv_ensemble_copy_bytes(const qv_exec_ctx *ctx);

/* Where step `name` read its input and wrote its output in this context's
 * last qv_run (for tests of the no-copy layout). -ENOENT: no such step. */
int qv_ensemble_step_io(const qv_exec_ctx *ctx, const char *name,
			const float **ret_in, const float **ret_out);

#ifdef __cplusplus
}
#endif
#endif /* QV_MODEL_H */
