/* SPDX-License-Identifier: Apache-2.0 */
/*
 * floor_xgboost.c - see floor_xgboost.h.
 */
#include "floor_xgboost.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qv_xgb_floor_is_model(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	int c;
	while ((c = fgetc(f)) == ' ' || c == '\n' || c == '\t' || c == '\r')
		;
	fclose(f);
	return c == '{';
}

#ifdef QV_HAVE_XGBOOST
#include <xgboost/c_api.h>

struct qv_xgb_floor {
	BoosterHandle b;
	char values[256];   /* __array_interface__ of the input */
	char config[256];
	float *out;
	size_t out_n;
};

int qv_xgb_floor_create(const char *path, uint32_t rows, uint32_t in_dim, uint32_t out_dim,
			const float *in, float *out, struct qv_xgb_floor **ret_floor, char *err,
			size_t err_len)
{
	struct qv_xgb_floor *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	if (XGBoosterCreate(NULL, 0, &f->b) != 0 || XGBoosterLoadModel(f->b, path) != 0 ||
	    XGBoosterSetParam(f->b, "nthread", "1") != 0) {
		snprintf(err, err_len, "%s", XGBGetLastError());
		qv_xgb_floor_free(f);
		return -EINVAL;
	}
	snprintf(f->values, sizeof(f->values),
		 "{\"data\": [%llu, true], \"shape\": [%u, %u], \"typestr\": \"<f4\", \"version\": 3}",
		 (unsigned long long)(uintptr_t)in, rows, in_dim);
	snprintf(f->config, sizeof(f->config),
		 "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, "
		 "\"strict_shape\": false, \"missing\": NaN, \"cache_id\": 0}");
	f->out = out;
	f->out_n = (size_t)rows * out_dim;
	int r = qv_xgb_floor_run(f);
	if (r < 0) {
		snprintf(err, err_len, "%s", r == -EIO ? XGBGetLastError() : "output shape differs");
		qv_xgb_floor_free(f);
		return r;
	}
	*ret_floor = f;
	return 0;
}

int qv_xgb_floor_run(struct qv_xgb_floor *f)
{
	const bst_ulong *shape;
	bst_ulong dim;
	const float *res;
	if (XGBoosterPredictFromDense(f->b, f->values, f->config, NULL, &shape, &dim, &res) != 0)
		return -EIO;
	size_t n = 1;
	for (bst_ulong i = 0; i < dim; i++)
		n *= shape[i];
	if (n != f->out_n)
		return -EPROTO;
	memcpy(f->out, res, n * sizeof(float));
	return 0;
}

void qv_xgb_floor_free(struct qv_xgb_floor *f)
{
	if (!f)
		return;
	if (f->b)
		XGBoosterFree(f->b);
	free(f);
}

#else

int qv_xgb_floor_create(const char *path, uint32_t rows, uint32_t in_dim, uint32_t out_dim,
			const float *in, float *out, struct qv_xgb_floor **ret_floor, char *err,
			size_t err_len)
{
	(void)path, (void)rows, (void)in_dim, (void)out_dim, (void)in, (void)out, (void)ret_floor;
	snprintf(err, err_len, "built without libxgboost");
	return -ENOTSUP;
}

int qv_xgb_floor_run(struct qv_xgb_floor *f)
{
	(void)f;
	return -ENOTSUP;
}

void qv_xgb_floor_free(struct qv_xgb_floor *f)
{
	(void)f;
}
#endif
