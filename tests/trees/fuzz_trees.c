/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_trees - libFuzzer target for both XGBoost parsers. Input starting
 * with 'U': the rest goes to the UBJSON reader alone (any root value, any
 * nesting). Anything else goes to qv_model_load_buffer as a model file
 * (JSON, or UBJSON when it looks like it); what loads is run on rows of
 * zeros, NaN and infinities by every path and the reference, since a tree
 * that passed the checks is walked next. fuzz_trees_replay runs the
 * committed corpus and every generated model through the same function
 * as an ordinary unit test.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "qv_model.h"
#include "tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RUN_LIMIT (1u << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[QV_ERR_LEN];
	if (size && data[0] == 'U') {
		cJSON *root = NULL;
		if (qv_ubjson_parse(data + 1, size - 1, &root, err, sizeof(err)) == 0)
			cJSON_Delete(root);
		return 0;
	}
	static const struct qv_model_opts opts = { .max_batch = 4, .kernels = QV_KERNEL_AUTO, .tune_iters = 1 };
	qv_model *m = NULL;
	struct qv_model_info info;
	if (qv_model_load_buffer(data, size, &opts, &m, err, sizeof(err)) < 0)
		return 0;
	if (qv_model_get_info(m, &info) == 0 && info.in_dim <= RUN_LIMIT && info.out_dim <= RUN_LIMIT) {
		float *in = calloc((size_t)info.in_dim * 4, sizeof(float));
		float *out = malloc((size_t)info.out_dim * 4 * sizeof(float));
		qv_exec_ctx *ctx = NULL;
		if (in && out) {
			for (uint32_t i = 0; i < info.in_dim; i++) {
				in[info.in_dim + i] = NAN;
				in[2 * info.in_dim + i] = INFINITY;
				in[3 * info.in_dim + i] = (float)i - 2.5f;
			}
		}
		if (in && out && qv_exec_ctx_create(m, &ctx) == 0) {
			for (int p = 0; p < 4; p++)
				if (qv_tree_set_path(m, p) == 0)
					(void)qv_run(ctx, in, 4, out);
			qv_exec_ctx_free(ctx);
		}
		if (in && out)
			(void)qv_run_reference(m, in, 4, out);
		free(in);
		free(out);
	}
	qv_model_free(m);
	return 0;
}
