/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ensemble.h - the compiled form of an ensemble (ensemble.c) and the hooks
 * by which plan.c and exec.c hand an ensemble qv_model to it. Internal to
 * kernels/.
 */
#ifndef QV_ENSEMBLE_H
#define QV_ENSEMBLE_H

#include <stdbool.h>
#include <stdint.h>

#include "qv_model.h"

#define QV_ENS_REF_INPUT UINT32_MAX   /* an input part that is the ensemble's input */

/* How a step gets its input pointer. */
enum qv_ens_in_mode {
	QV_ENS_IN_ENSEMBLE,  /* the caller's input, read in place */
	QV_ENS_IN_STEP,      /* one step's output, by pointer */
	QV_ENS_IN_ADJACENT,  /* fan-in whose parts write adjacently at 1 row; gathered above 1 */
	QV_ENS_IN_GATHER,    /* fan-in gathered at every row count */
};

struct qv_ens_step {
	char name[QV_ENS_NAME_LEN];
	const qv_model *model;
	uint32_t in_w, out_w;
	enum qv_ens_in_mode mode;
	uint32_t n_in;
	uint32_t in[QV_ENS_MAX_INPUTS];   /* step index (execution order) or QV_ENS_REF_INPUT */
	uint32_t in_part_w[QV_ENS_MAX_INPUTS];
	uint32_t cat;                     /* ADJACENT / GATHER: its concat buffer */
	/* gate */
	enum qv_gate_op gate_op;
	uint32_t gate;                    /* step index */
	float threshold, else_value;
	/* ADJACENT placement of this step's output at 1 row: cat buffer, offset */
	uint32_t place_cat, place_off;
	int placed;
};

struct qv_ensemble {
	char name[QV_ENS_NAME_LEN];
	uint32_t n;                   /* steps, in execution order */
	struct qv_ens_step *steps;
	uint32_t out_step;
	uint32_t n_cat;
	uint32_t *cat_w;              /* floats a row of each concat buffer */
};

struct qv_ens_ctx {
	qv_exec_ctx **sub;            /* one per step */
	float **own;                  /* per step: its scratch output (NULL for the output step) */
	float **cat;                  /* per concat buffer */
	float *arena;
	const float **last_in;        /* per step, the last run's pointers */
	float **last_out;
	uint64_t copy_bytes;
};

/* plan.c / exec.c call these when m->ens is set. */
void qv_ens_free(struct qv_ensemble *e);

/*
 * The order steps run in, for both wirings (positional here, named in
 * ens_named.c): Kahn's algorithm, always taking the lowest-numbered ready
 * step, so a list already in order runs as written. ready(b, i, done) says
 * whether everything step i reads (inputs, gate) is done. Fills order
 * (execution index -> step) and pos (step -> execution index); -EINVAL with
 * the step named when the wiring has a cycle. en: the ensemble's name.
 */
int qv_ens_step_order(const struct qv_ensemble_desc *d, const char *en,
		      bool (*ready)(const void *b, uint32_t i, const bool *done), const void *b,
		      uint32_t *order, uint32_t *pos, char *err, size_t err_len);
int qv_ens_describe(const qv_model *m, char *buf, size_t len);
int qv_ens_ctx_create(const qv_model *m, qv_exec_ctx **ret_ctx);
void qv_ens_ctx_free(struct qv_ens_ctx *c, const struct qv_ensemble *e);
int qv_ens_run(qv_exec_ctx *ctx, const float *in, uint32_t rows, float *out);
int qv_ens_run_reference(const qv_model *m, const float *in, uint32_t rows, float *out);

/* ens_named.c: the form wired by named tensors, a model kind of its own. */
bool qv_ens_desc_named(const struct qv_ensemble_desc *d);
int qv_ensn_create(const struct qv_ensemble_desc *d, const char *en, qv_model **ret_model,
		   char *err, size_t err_len);
bool qv_ensn_is(const qv_model *m);
uint64_t qv_ensn_copy_bytes(const qv_exec_ctx *ctx);
int qv_ensn_step_io(const qv_exec_ctx *ctx, const char *name, const float **ret_in,
		    const float **ret_out);

#endif /* QV_ENSEMBLE_H */
