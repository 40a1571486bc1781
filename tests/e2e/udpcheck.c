/* SPDX-License-Identifier: Apache-2.0 */
#include "udpcheck.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qvt_udp_sync_rows(qv_udp_client *c, const struct qv_model_desc *d,
		       const struct qvt_ref *ref, uint32_t row0, uint32_t rows, uint64_t id,
		       uint32_t timeout_ms, const char *label)
{
	float out[64 * 64];
	struct qv_request rq = {
		.handle = d->handle,
		.rows = rows,
		.input = ref->x.data + (size_t)row0 * ref->in_dim,
		.request_id = id,
	};
	struct qv_result res;
	char what[64];
	int r = qv_udp_infer(c, &rq, out, sizeof(out) / sizeof(out[0]), timeout_ms, &res);

	if (r < 0) {
		qvt_fail("%s infer rows %u+%u: %s", label, row0, rows, strerror(-r));
		return;
	}
	if (res.status != QV_OK || res.request_id != id || res.version != d->version ||
	    res.out_floats != rows * d->out_dim) {
		qvt_fail("%s infer rows %u+%u: status %d id %llu version %u floats %u", label, row0,
			 rows, (int)res.status, (unsigned long long)res.request_id, res.version,
			 res.out_floats);
		return;
	}
	snprintf(what, sizeof(what), "%s rows %u+%u", label, row0, rows);
	if (qvt_compare(out, ref->y.data + (size_t)row0 * ref->out_dim, (size_t)rows * d->out_dim,
			QVT_RTOL, QVT_ATOL, what))
		qvt_fail("%s: outputs differ from the reference", what);
}

void qvt_udp_async_all(qv_udp_client *c, const struct qv_model_desc *d,
		       const struct qvt_ref *ref, uint32_t limit_s, const char *label)
{
	size_t n = (size_t)ref->rows * ref->out_dim;
	float *out = malloc(n * sizeof(float));
	uint32_t next = 0, done = 0;
	uint64_t t0 = qvt_now_ns();
	char what[64];

	if (out == NULL)
		qvt_die("out of memory");
	memset(out, 0xff, n * sizeof(float));
	while (done < ref->rows) {
		while (next < ref->rows) {
			struct qv_request rq = {
				.handle = d->handle,
				.rows = 1,
				.input = ref->x.data + (size_t)next * ref->in_dim,
				.request_id = next,
			};
			int r = qv_udp_submit(c, &rq, out + (size_t)next * ref->out_dim, ref->out_dim);
			if (r == -EAGAIN)
				break;
			if (r < 0)
				qvt_die("%s: qv_udp_submit: %s", label, strerror(-r));
			next++;
		}
		struct qv_result res[16];
		int k = qv_udp_poll(c, res, 16);
		if (k < 0)
			qvt_die("%s: qv_udp_poll: %s", label, strerror(-k));
		for (int i = 0; i < k; i++) {
			done++;
			if (res[i].status != QV_OK)
				qvt_fail("%s async row %llu: status %d", label,
					 (unsigned long long)res[i].request_id, (int)res[i].status);
		}
		if (qvt_now_ns() - t0 > (uint64_t)limit_s * 1000000000ull)
			qvt_die("%s async: %u of %u in %u s", label, done, ref->rows, limit_s);
	}
	snprintf(what, sizeof(what), "%s async", label);
	if (qvt_compare(out, ref->y.data, n, QVT_RTOL, QVT_ATOL, what))
		qvt_fail("%s: outputs differ from the reference", what);
	free(out);
}
