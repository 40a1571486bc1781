/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_onnx - libFuzzer target for the ONNX loader: any bytes go to
 * qv_model_load_buffer; what loads is also run once (a row of zeros through
 * the plan and the reference), since a plan built from a hostile graph is
 * the next thing that could go wrong. Built as a fuzzer only with
 * -Dfuzz=true and clang; fuzz_replay.c replays a corpus through the same
 * function as an ordinary unit test.
 */
#include "qv_model.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Plans bigger than this are loaded but not run: a few MiB of activations. */
#define RUN_LIMIT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* HAND and a small max_batch: no tuning and few primitives, so the
	 * fuzzer spends its time in the parser and the compiler. */
	static const struct qv_model_opts opts = { .max_batch = 4, .kernels = QV_KERNEL_HAND, .tune_iters = 0 };
	char err[QV_ERR_LEN];
	qv_model *m = NULL;
	struct qv_model_info info;

	if (qv_model_load_buffer(data, size, &opts, &m, err, sizeof(err)) < 0)
		return 0;
	if (qv_model_get_info(m, &info) == 0 && info.in_dim > 0 && info.out_dim > 0 &&
	    info.in_dim <= RUN_LIMIT && info.out_dim <= RUN_LIMIT) {
		float *in = calloc((size_t)info.in_dim * 2, sizeof(float));
		float *out = malloc((size_t)info.out_dim * 2 * sizeof(float));
		qv_exec_ctx *ctx = NULL;
		if (in && out && qv_exec_ctx_create(m, &ctx) == 0) {
			(void)qv_run(ctx, in, 2, out);
			(void)qv_run(ctx, in, 1, out);
			qv_exec_ctx_free(ctx);
		}
		if (in && out)
			(void)qv_run_reference(m, in, 1, out);
		free(in);
		free(out);
	}
	qv_model_free(m);
	return 0;
}
