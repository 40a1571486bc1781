/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hand_dense.h - the packed weights of a hand-written dense kernel, shared
 * by the fp32 kernels (dense_hand.c) and the bf16 / int8 ones
 * (dense_lowp.c), which are run and freed through the same
 * qv_hand_dense_run / qv_hand_dense_free. Internal to kernels/.
 */
#ifndef QV_HAND_DENSE_H
#define QV_HAND_DENSE_H

#include <stdint.h>

#include "qv_ops.h"

struct qv_hand_dense;
typedef void (*run_fn)(const struct qv_hand_dense *d, const float *x, uint32_t rows, float *y);

struct qv_hand_dense {
	uint32_t K, N;
	uint32_t nv;         /* vectors: ceil(N / 16) */
	struct qv_act_desc act;
	run_fn run;
	uint32_t kp;         /* narrow layout: K rounded up to 16 */
	float *w;            /* packed panels (or narrow rows), 64-byte aligned;
			      * bf16 / int8: packed 32-bit groups (dense_lowp.c) */
	float *bias;         /* nv * 16 floats, zero-padded, 64-byte aligned */
	/* reduced precision only (NULL / 0 for fp32) */
	enum qv_prec prec;
	uint32_t kg;         /* 32-bit groups a row of x: ceil(K / 2) or ceil(K / 4) */
	float *wscale;       /* int8: nv * 16 column scales, zero-padded */
	int32_t *comp;       /* int8: 128 * sum_k q[k][n], nv * 16 */
	float x_absmax;      /* int8: static calibration max, 0 = per row */
};

#endif /* QV_HAND_DENSE_H */
