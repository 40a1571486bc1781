/* SPDX-License-Identifier: Apache-2.0 */
/* check.c - see check.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

qv_client *qvt_connect(const char *sock, const char *name, uint32_t slots)
{
	struct qv_connect_opts o = { .client_name = name, .slots = slots,
				     .dead_after_ms = QVT_DEAD_MS };
	qv_client *c;
	int r = qv_connect(sock, &o, &c);
	if (r < 0)
		qvt_die("%s: qv_connect(%s): %s", name, sock, qv_strerror(r));
	return c;
}

void qvt_model_open(qv_client *c, const char *repo, const char *name, struct qvt_model *ret)
{
	struct qvt_model m;
	memset(&m, 0, sizeof(m));
	int r = qv_model_lookup(c, name, &m.desc);
	if (r < 0)
		qvt_die("qv_model_lookup(%s): %s", name, qv_strerror(r));
	r = qvt_ref_load(repo, name, m.desc.version, &m.ref);
	if (r < 0)
		qvt_die("references of %s/%u: %s", name, m.desc.version, strerror(-r));
	if (m.desc.in_dim != m.ref.in_dim || m.desc.out_dim != m.ref.out_dim)
		qvt_die("%s: lookup says %u -> %u floats, references %u -> %u", name,
			m.desc.in_dim, m.desc.out_dim, m.ref.in_dim, m.ref.out_dim);
	fprintf(stderr, "%s: handle %u version %u, %u -> %u, max_batch %u\n", name,
		m.desc.handle, m.desc.version, m.desc.in_dim, m.desc.out_dim, m.desc.max_batch);
	*ret = m;
}

int qvt_infer_check(qv_client *c, const struct qvt_model *m, uint32_t row0, uint32_t rows,
		    const char *who)
{
	static _Thread_local float out[64 * 1024];
	const struct qvt_ref *ref = &m->ref;
	char what[160];
	size_t n = (size_t)rows * ref->out_dim;

	if (row0 + rows > ref->rows || n > sizeof(out) / sizeof(out[0]))
		qvt_die("%s: rows %u+%u out of the reference's range", who, row0, rows);
	snprintf(what, sizeof(what), "%s %s rows %u..%u", who, m->desc.name, row0,
		 row0 + rows - 1);
	uint64_t id = ((uint64_t)row0 << 32) | rows;
	struct qv_request req = {
		.handle = m->desc.handle,
		.rows = rows,
		.input = ref->x.data + (size_t)row0 * ref->in_dim,
		.request_id = id,
	};
	struct qv_result res;
	memset(out, 0xff, n * sizeof(float));  /* NaN: a stale buffer cannot pass */
	int r = qv_infer(c, &req, out, sizeof(out) / sizeof(out[0]), 10000, &res);
	if (r < 0) {
		qvt_fail("%s: qv_infer: %s", what, qv_strerror(r));
		return -1;
	}
	if (res.status != QV_OK) {
		qvt_fail("%s: status %s", what, qv_strerror((int)res.status));
		return -1;
	}
	if (res.request_id != id || res.version != m->desc.version || res.out_floats != n) {
		qvt_fail("%s: id %llu/%llu version %u/%u out_floats %u/%zu", what,
			 (unsigned long long)res.request_id, (unsigned long long)id, res.version,
			 m->desc.version, res.out_floats, n);
		return -1;
	}
	if (qvt_compare(out, ref->y.data + (size_t)row0 * ref->out_dim, n, QVT_RTOL, QVT_ATOL,
			what)) {
		qvt_fail("%s: outputs differ from the reference", what);
		return -1;
	}
	return 0;
}

void qvt_serves(const char *sock, const char *repo, const char *model, uint32_t rows,
		const char *who)
{
	qv_client *c = qvt_connect(sock, who, 4);
	struct qvt_model m;

	qvt_model_open(c, repo, model, &m);
	qvt_infer_check(c, &m, 0, rows, who);
	qv_close(c);
	qvt_ref_free(&m.ref);
}
