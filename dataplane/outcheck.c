/* SPDX-License-Identifier: Apache-2.0 */
#include "outcheck.h"

#include <string.h>

void qv_version_out_spans(struct qv_version *v)
{
	struct qv_tensor_info ti;
	uint32_t n = 0, mixed = 0;

	v->out_mixed = 0;
	v->n_fspans = 0;
	if (!v->model)
		return;
	for (uint32_t j = 0; j < v->info.n_outputs && j < QV_MAX_TENSORS; j++) {
		if (qv_model_tensor(v->model, 1, j, &ti) < 0)
			return;
		if (ti.dtype != QV_DT_F32) {
			mixed = 1;
			continue;
		}
		/* Adjacent float tensors make one span. */
		if (n && v->fspans[n - 1].off + v->fspans[n - 1].n == ti.packed_off / 4) {
			v->fspans[n - 1].n += ti.row_bytes / 4;
			continue;
		}
		v->fspans[n].off = ti.packed_off / 4;
		v->fspans[n].n = ti.row_bytes / 4;
		n++;
	}
	v->n_fspans = n;
	v->out_mixed = mixed;
}

static int same_list(const qv_model *a, const qv_model *b, int is_output, uint32_t n)
{
	struct qv_tensor_info x, y;

	for (uint32_t i = 0; i < n; i++) {
		if (qv_model_tensor(a, is_output, i, &x) < 0 || qv_model_tensor(b, is_output, i, &y) < 0)
			return 0;
		if (x.dtype != y.dtype || x.row_bytes != y.row_bytes)
			return 0;
	}
	return 1;
}

int qv_version_same_tensors(const struct qv_version *a, const struct qv_version *b)
{
	if (a->info.in_dim != b->info.in_dim || a->info.out_dim != b->info.out_dim)
		return 0;
	if (!a->model || !b->model || a->info.n_inputs == 0 || b->info.n_inputs == 0)
		return 1;
	return a->info.n_inputs == b->info.n_inputs && a->info.n_outputs == b->info.n_outputs &&
	       same_list(a->model, b->model, 0, a->info.n_inputs) &&
	       same_list(a->model, b->model, 1, a->info.n_outputs);
}
