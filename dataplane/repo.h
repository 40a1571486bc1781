/* SPDX-License-Identifier: Apache-2.0 */
/*
 * repo.h - the model repository: REPO/<name>/<version>/model.onnx (or
 * model.json or model.ubj: XGBoost) plus an optional REPO/<name>/config.json. Pure logic (no
 * model loading), so it is unit-tested on its own.
 *
 * Scanning never fails because of one bad model: each model directory
 * becomes an entry, and an entry that cannot be served carries a readable
 * error ("no numeric version directory", "config.json: max_batch must be
 * ..."). Entries are sorted by name so handles are deterministic.
 */
#ifndef QV_DP_REPO_H
#define QV_DP_REPO_H

#include <stddef.h>
#include <stdint.h>

#define QV_REPO_NAME_MAX 64    /* incl. NUL, same as the wire's name[64] */
#define QV_REPO_ERR_MAX 256
#define QV_REPO_MAX_MODELS 1024
/* The runtime's largest batch (2^(QV_MAX_BUCKETS-1) rows, kernels/plan.h):
 * a config or flag above it would pass here and fail every load. */
#define QV_REPO_MAX_BATCH_LIMIT 32768u

struct qv_model_config {
	uint32_t max_batch;          /* 0 = not set */
	uint64_t default_deadline_us; /* 0 = none */
	/*
	 * Batching by waiting, off unless set: a worker holds a version's
	 * ready requests up to max_queue_delay_us after the oldest one was
	 * picked up, until they make preferred_batch rows (0: max_batch).
	 */
	uint32_t max_queue_delay_us;  /* 0 = never wait (the default) */
	uint32_t preferred_batch;     /* 0 = max_batch */
	/*
	 * "precision": "fp32" | "bf16" | "int8" | "auto" (enum qv_precision,
	 * default fp32) and "tolerance": a number (absolute) or an object
	 * {"abs": A, "rel": R, "top1": T}; 0 = the runtime's defaults
	 * (kernels/qv_model.h).
	 */
	uint32_t precision;
	float tol_abs, tol_rel, tol_top1;
	/*
	 * "log": {"sample": P, "dir": D, "max_bytes": N, "keep": K}, the
	 * prediction log (dataplane/predlog.h): P in 0..1 (0 off), D needed
	 * when P > 0, N in 4096..2^40 (0 here: the default), K in 1..10000
	 * (0 here: the default). log_set 0: no "log" key.
	 */
	int log_set;
	double log_sample;
	char log_dir[1024];
	uint64_t log_max_bytes;
	uint32_t log_keep;
};

struct qv_repo_entry {
	char name[QV_REPO_NAME_MAX];
	uint32_t version;            /* highest numeric version found, 0 if none */
	char path[4096];             /* model file of that version (config.json: an ensemble) */
	int ensemble;                /* 1 = that version is an ensemble */
	struct qv_model_config cfg;
	int ok;                      /* 1 = path and config are usable */
	char error[QV_REPO_ERR_MAX]; /* why not, when ok == 0 */
};

/*
 * Parses a config.json body (len bytes, not NUL-terminated). Unknown keys
 * are ignored (later features add their own). Returns 0 or -EINVAL with a
 * message in err.
 */
/*
 * Reads the whole regular file `path` (relative to dfd, or absolute; dfd
 * AT_FDCWD for the working directory) of at most max bytes into a new
 * NUL-terminated buffer. Opened O_NONBLOCK and checked with fstat before
 * any read, so a FIFO, socket or device planted as a config or model file
 * is refused at once (-EINVAL) instead of hanging the control thread.
 * -EFBIG past max bytes, or the open/read errno.
 */
int qv_read_regular(int dfd, const char *path, size_t max, char **ret_buf, size_t *ret_len);

/*
 * The numeric version directories of model `name` in repository dir below
 * `below`, highest first, at most cap of them (the highest cap). For
 * falling back when the highest version does not load.
 */
int qv_repo_versions_below(const char *dir, const char *name, uint32_t below, uint32_t *ret,
			   size_t cap, size_t *ret_n);

int qv_config_parse(const char *text, size_t len, struct qv_model_config *ret_cfg, char *err,
		    size_t err_len);

/* "fp32" 0, "bf16" 1, "int8" 2, "auto" 3 (enum qv_precision's numbers), else -1. */
int qv_config_precision(const char *s);

/*
 * Ensembles. A version directory REPO/<name>/<version>/ without a model
 * file but with a config.json holding an "ensemble" object is an ensemble
 * version (each version may wire its steps differently, so the wiring is
 * per version; REPO/<name>/config.json keeps max_batch and the deadline):
 *   {"ensemble": {"steps": [{"name": "a", "model": "tower-a", "version": 1,
 *                            "inputs": ["$input"]},
 *                           {"name": "head", "model": "head", "inputs": ["a", "b"],
 *                            "gate": {"step": "g", "op": ">=", "threshold": 0.5,
 *                                     "else": -1}}],
 *                 "output": "head"}}
 * "version" absent or 0: the step model's primary at load time. "inputs"
 * absent: the ensemble's input. "output" absent: the last step. The
 * fields map one for one onto struct qv_ensemble_desc (qv_model.h).
 *
 * Named tensors: "inputs" as an object binds each input tensor of the
 * step's model by name to an ensemble input ("$NAME") or a step's output
 * tensor ("STEP.TENSOR", or "STEP" when that step has one output); the
 * ensemble's outputs are then named by an "outputs" object (absent: the
 * last step's outputs under their own names):
 *   {"ensemble": {"steps": [{"name": "tower", "model": "ctr-mlp",
 *                            "inputs": {"x": "$dense"}},
 *                           {"name": "head", "model": "dlrm",
 *                            "inputs": {"dense": "tower", "user_id": "$user_id",
 *                                       "item_id": "$item_id", "cat_id": "$cat_id"}}],
 *                 "outputs": {"p": "head.ctr"}}}
 * Every step of such an ensemble binds by name; the two forms do not mix.
 */
#define QV_REPO_ENS_MAX_STEPS 32u
#define QV_REPO_ENS_MAX_INPUTS 8u
#define QV_REPO_ENS_MAX_BINDS 16u     /* QV_MAX_TENSORS */
#define QV_REPO_TENSOR_MAX 64u        /* QV_TENSOR_NAME_LEN */
#define QV_REPO_SOURCE_MAX 160u       /* "$NAME" or "STEP.TENSOR" with its NUL */

struct qv_ens_bind_cfg {
	char name[QV_REPO_TENSOR_MAX];      /* a step: its input tensor; outputs: the output's name */
	char source[QV_REPO_SOURCE_MAX];
};

struct qv_ens_step_cfg {
	char name[QV_REPO_NAME_MAX];
	char model[QV_REPO_NAME_MAX];
	uint32_t version;            /* 0: the primary at load time */
	uint32_t n_inputs;
	char inputs[QV_REPO_ENS_MAX_INPUTS][QV_REPO_NAME_MAX];
	int gate_op;                 /* enum qv_gate_op: 0 none, 1 ">=", 2 "<" */
	char gate_step[QV_REPO_NAME_MAX];
	float threshold, else_value;
	uint32_t n_binds;            /* named form: "inputs" was an object */
	struct qv_ens_bind_cfg binds[QV_REPO_ENS_MAX_BINDS];
};

struct qv_ens_config {
	uint32_t n_steps;
	struct qv_ens_step_cfg steps[QV_REPO_ENS_MAX_STEPS];
	char output[QV_REPO_NAME_MAX];  /* "" = the last step */
	int named;                      /* steps bind tensors by name */
	uint32_t n_outputs;             /* named form: "outputs"; 0 = the last step's */
	struct qv_ens_bind_cfg outputs[QV_REPO_ENS_MAX_BINDS];
};

/*
 * Parses the "ensemble" object of a config.json body. Returns 0, -ENOENT
 * when the body has no "ensemble" key (not an ensemble), or -EINVAL with a
 * message naming the step in err.
 */
int qv_ens_config_parse(const char *text, size_t len, struct qv_ens_config *ret_cfg, char *err,
			size_t err_len);

/* A model name usable on the wire and in a path: [A-Za-z0-9._-], 1..63, no leading dot. */
int qv_repo_name_valid(const char *name);

/*
 * Scans dir. On success *ret_entries (free with free()) holds *ret_n
 * entries sorted by name: the first QV_REPO_MAX_MODELS model directories
 * in name order, and *ret_skipped (may be NULL) says how many more there
 * were, not scanned. Returns -errno when dir itself cannot be read.
 */
int qv_repo_scan(const char *dir, struct qv_repo_entry **ret_entries, size_t *ret_n,
		 size_t *ret_skipped);

#endif /* QV_DP_REPO_H */
