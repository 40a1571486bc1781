/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_mlmodel.c - libFuzzer target for MLmodel files (qv_mlflow_parse),
 * which an operator hands quiverd in a repository or with quiverctl load
 * --path. Besides not crashing: an accepted MLmodel names a served flavor
 * and a relative data path that does not leave its directory, its
 * signature fits its limits, and checking it against a model says yes or
 * no with a message; a refusal always says why. Built with -Dfuzz=true
 * (clang -fsanitize=fuzzer); otherwise linked with tests/udp/fuzz_replay.c
 * and run over corpus_mlmodel/ as a unit test.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mlflow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qv_tensor_info ins[2], out;
	struct qv_mlflow *ml = calloc(1, sizeof(*ml));
	char err[256];
	int r;

	if (!ml)
		return 0;
	memset(ins, 0, sizeof(ins));
	memset(&out, 0, sizeof(out));
	strcpy(ins[0].name, "x");
	ins[0].dtype = QV_DT_F32;
	ins[0].rank = 2;
	ins[0].shape[0] = -1;
	ins[0].shape[1] = 16;
	strcpy(ins[1].name, "ids");
	ins[1].dtype = QV_DT_I64;
	ins[1].rank = 1;
	ins[1].shape[0] = -1;
	strcpy(out.name, "y");
	out.dtype = QV_DT_F32;
	out.rank = 2;
	out.shape[0] = -1;
	out.shape[1] = 1;

	err[0] = '\0';
	r = qv_mlflow_parse((const char *)data, size, ml, err, sizeof(err));
	if (r == 0) {
		if (ml->flavor != QV_MLFLOW_ONNX && ml->flavor != QV_MLFLOW_XGBOOST)
			abort();
		if (!memchr(ml->data, '\0', sizeof(ml->data)) || ml->data[0] == '\0' ||
		    ml->data[0] == '/' || strncmp(ml->data, "../", 3) == 0 ||
		    strstr(ml->data, "/../") || strcmp(ml->data, "..") == 0)
			abort();
		if (ml->in.n > QV_MLFLOW_MAX_SPECS || ml->out.n > QV_MLFLOW_MAX_SPECS)
			abort();
		for (uint32_t i = 0; i < ml->in.n; i++)
			if (ml->in.s[i].rank > QV_MAX_RANK ||
			    !memchr(ml->in.s[i].name, '\0', sizeof(ml->in.s[i].name)))
				abort();
		for (uint32_t n = 0; n <= 2; n++) {
			err[0] = '\0';
			r = qv_mlflow_check(ml, ins, n, &out, 1, err, sizeof(err));
			if (r != 0 && (r != -EINVAL || err[0] == '\0'))
				abort();
		}
	} else if (r != -EINVAL || err[0] == '\0' || !memchr(err, '\0', sizeof(err))) {
		abort();
	}
	free(ml);
	return 0;
}
