/* SPDX-License-Identifier: Apache-2.0 */
/*
 * floor_xgboost.h - the peer quiver-bench measures tree models against:
 * the same model file through XGBoost's own C API, as its inference example
 * does it: XGBoosterLoadModel, nthread 1, and per call
 * XGBoosterPredictFromDense on the caller's rows (an __array_interface__
 * over the buffer, missing = NaN), the result copied out of the booster's
 * buffer. Built only when libxgboost (xgboost/c_api.h) is found; otherwise
 * create returns -ENOTSUP. A benchmark dependency, never quiverd's.
 */
#ifndef QV_FLOOR_XGBOOST_H
#define QV_FLOOR_XGBOOST_H

#include <stddef.h>
#include <stdint.h>

struct qv_xgb_floor;

/* Does the file hold an XGBoost model (JSON or UBJSON: starts with '{')? */
int qv_xgb_floor_is_model(const char *path);

/* Loads `path` for `rows` rows of `in_dim` floats from `in`, writing
 * rows * out_dim floats to `out`. -ENOTSUP when built without libxgboost;
 * err says why on failure. */
int qv_xgb_floor_create(const char *path, uint32_t rows, uint32_t in_dim, uint32_t out_dim,
			const float *in, float *out, struct qv_xgb_floor **ret_floor, char *err,
			size_t err_len);

/* One prediction. 0, or -EIO (XGBoost failed) / -EPROTO (output shape). */
int qv_xgb_floor_run(struct qv_xgb_floor *f);

void qv_xgb_floor_free(struct qv_xgb_floor *f);

#endif /* QV_FLOOR_XGBOOST_H */
