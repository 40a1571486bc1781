/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mlflow.h - MLflow model directories: a version directory holding an
 * `MLmodel` file is loaded through the flavor it names, and the model's
 * signature (when it has one) is checked against the loaded model.
 *
 * Served flavors: `onnx` (key `data`: the .onnx file) and `xgboost` (key
 * `data`: the saved booster, JSON or UBJSON; `model_format` json, ubj, or
 * xgb, whose content the loader recognises). When a native flavor is
 * present it is used, whatever `python_function` says; a directory with
 * only `python_function` is served when its loader_module is mlflow.onnx
 * or mlflow.xgboost. Anything else is refused naming the flavors found.
 *
 * Signature: `signature: inputs:` / `outputs:` hold a JSON string (as
 * MLflow writes it) listing tensor specs ({"type": "tensor", "name": ...,
 * "tensor-spec": {"dtype": ..., "shape": [...]}}) or columns ({"type":
 * "double", "name": ...}). Tensor specs are matched to the model's tensors
 * by name when every spec is named, else by position; dtypes must be the
 * same; shapes must agree where both are fixed, ignoring size-1 dimensions
 * (MLflow records xgboost's predictions as [-1] where the model says
 * [-1, 1]). Columns map onto one input (output) whose row has one element
 * per column, or onto one single-element tensor per column; they must be
 * numeric.
 */
#ifndef QV_DP_MLFLOW_H
#define QV_DP_MLFLOW_H

#include <stddef.h>
#include <stdint.h>

#include "qv_model.h"

#define QV_MLFLOW_MAX_SPECS 64u

enum qv_mlflow_flavor { QV_MLFLOW_ONNX = 1, QV_MLFLOW_XGBOOST = 2 };

struct qv_mlflow_spec {
	char name[QV_TENSOR_NAME_LEN];   /* "" = unnamed */
	int column;                      /* 1: a column ("double" ...), 0: a tensor spec */
	char type[16];                   /* tensor: numpy dtype ("float32"); column: its type */
	uint32_t rank;                   /* tensor: rank of "shape", 0 if absent */
	int64_t shape[QV_MAX_RANK];
};

struct qv_mlflow_sig {
	uint32_t n;
	struct qv_mlflow_spec s[QV_MLFLOW_MAX_SPECS];
};

struct qv_mlflow {
	int flavor;                      /* enum qv_mlflow_flavor */
	char data[1024];                 /* the flavor's `data`, relative to the directory */
	char model_format[16];           /* xgboost only; "" if absent */
	int has_signature;
	struct qv_mlflow_sig in, out;    /* with has_signature; n 0 if that side is absent */
};

/*
 * Parses an MLmodel body (YAML, len bytes) into *ret. Returns 0, or -EINVAL
 * with a message in err ("flavors: ...", "signature inputs: ...").
 */
int qv_mlflow_parse(const char *text, size_t len, struct qv_mlflow *ret, char *err,
		    size_t err_len);

/*
 * Reads dir/MLmodel, parses it and resolves the model file: ret_path gets
 * dir/<data>, which must be a regular file. -ENOENT (no MLmodel), -EINVAL
 * (err says why).
 */
int qv_mlflow_read(const char *dir, struct qv_mlflow *ret, char *ret_path, size_t path_len,
		   char *err, size_t err_len);

/*
 * Checks the signature against the loaded model's inputs and outputs.
 * 0 (also without a signature), or -EINVAL with a message naming the
 * tensor ("signature input 'x': dtype float64, the model's is float32").
 */
int qv_mlflow_check(const struct qv_mlflow *ml, const struct qv_tensor_info *ins, uint32_t n_in,
		    const struct qv_tensor_info *outs, uint32_t n_out, char *err,
		    size_t err_len);

#endif /* QV_DP_MLFLOW_H */
