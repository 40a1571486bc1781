/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_errors.c - requests that must fail, fail with the right status:
 * an unknown model name is -ENOENT at lookup; through a raw channel (which
 * sends what libquiver would refuse before it left the client) a bogus
 * handle is UNKNOWN_MODEL, a wrong input size or rows > max_batch or too
 * small an output capacity is BAD_SHAPE, a bad slot / non-zero flags /
 * oversize input is BAD_REQUEST (BAD_SHAPE accepted where both fit), a
 * passed deadline is DEADLINE_EXCEEDED; each echoes its request id, and a
 * good request on the same channel still returns the reference outputs.
 * A client of the previous channel ABI is refused with -EPROTONOSUPPORT,
 * at HELLO and at LOOKUP, and the daemon's log says why.
 *
 * Usage: test_errors QUIVERD REPO [CLIENT QUIVERCTL]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rawchan.h"

static struct qvt_raw ch;
static struct qvt_model m;
static uint64_t next_id = 1;

/* Pushes e (request id assigned here) and checks the completion's status
 * is `want` or `alt`. */
static void expect_status(struct qv_sqe e, enum qv_status want, enum qv_status alt,
			  const char *what)
{
	struct qv_cqe c;
	e.request_id = next_id++;
	int r = qvt_raw_push(&ch, &e);
	if (r < 0) {
		qvt_fail("%s: push: %s", what, strerror(-r));
		return;
	}
	r = qvt_raw_wait(&ch, 10000, &c);
	if (r != 1) {
		qvt_fail("%s: no completion (%s)", what, r == 0 ? "timeout" : strerror(-r));
		return;
	}
	fprintf(stderr, "%-34s -> %s\n", what, qv_strerror((int)c.status));
	if (c.request_id != e.request_id)
		qvt_fail("%s: request id %llu, want %llu", what, (unsigned long long)c.request_id,
			 (unsigned long long)e.request_id);
	if (c.status != want && c.status != alt)
		qvt_fail("%s: status %s, want %s", what, qv_strerror((int)c.status),
			 qv_strerror((int)want));
}

static struct qv_sqe good(uint32_t slot, uint32_t rows)
{
	return (struct qv_sqe){
		.slot = slot,
		.handle = m.desc.handle,
		.rows = rows,
		.in_bytes = rows * m.desc.in_dim * 4,
		.out_cap = rows * m.desc.out_dim * 4,
	};
}

static void good_request(const char *what)
{
	const uint32_t rows = 3;
	memcpy(qvt_raw_in(&ch, 1), m.ref.x.data, rows * m.desc.in_dim * sizeof(float));
	memset(qvt_raw_out(&ch, 1), 0xff, rows * m.desc.out_dim * sizeof(float));
	expect_status(good(1, rows), QV_OK, QV_OK, what);
	if (qvt_compare(qvt_raw_out(&ch, 1), m.ref.y.data, rows * m.desc.out_dim, QVT_RTOL,
			QVT_ATOL, what))
		qvt_fail("%s: outputs differ from the reference", what);
}

/* Whether the daemon's log holds `what`. */
static int log_has(const struct qvt_daemon *d, const char *what)
{
	char buf[65536];
	FILE *f = fopen(d->log, "r");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, what) != NULL;
}

/* A client of ABI 1 (whose LOOKUP reply had no tensors) gets a clear
 * refusal, never a reply it would misread. */
static void test_old_abi(const struct qvt_daemon *d)
{
	struct qvt_raw old;
	struct qv_lookup_reply lr;
	char want[128];
	int r;

	r = qvt_raw_open_abi(&old, d->sock, QV_ABI_VERSION - 1, 4, 4096, 4096);
	if (r != -EPROTONOSUPPORT)
		qvt_fail("HELLO of ABI %u: %d (%s), want -EPROTONOSUPPORT", QV_ABI_VERSION - 1, r,
			 strerror(r < 0 ? -r : 0));
	if (r == 0)
		qvt_raw_close(&old);
	ch.seq++;
	r = qvt_raw_lookup_v1(ch.sock, ch.seq, "trade-mlp");
	if (r != -EPROTONOSUPPORT)
		qvt_fail("LOOKUP in the ABI 1 layout: %d, want -EPROTONOSUPPORT", r);
	/* The log names both ABIs; the daemon logs before it answers. */
	snprintf(want, sizeof(want), "client speaks channel ABI %u, this quiverd ABI %u",
		 QV_ABI_VERSION - 1, QV_ABI_VERSION);
	if (!log_has(d, want))
		qvt_fail("the log does not say \"%s\"", want);
	/* The ABI 2 lookup describes the one float input and output. */
	r = qvt_raw_lookup_full(&ch, "trade-mlp", &lr);
	if (r < 0 || lr.n_inputs != 1 || lr.n_outputs != 1 || lr.t[0].dtype != 1 ||
	    lr.t[0].row_bytes != m.desc.in_dim * 4 || lr.t[1].row_bytes != m.desc.out_dim * 4 ||
	    lr.t[0].shape[0] != -1 || lr.t[0].packed_off != 0)
		qvt_fail("ABI 2 lookup of trade-mlp: %d, %u inputs %u outputs", r, lr.n_inputs,
			 lr.n_outputs);
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	struct qv_model_desc desc;
	struct qv_model_wire w;

	if (argc < 3) {
		fprintf(stderr, "usage: %s QUIVERD REPO\n", argv[0]);
		return 2;
	}
	if (qvt_daemon_start(&d, argv[1], argv[2], NULL) < 0)
		qvt_die("quiverd did not start");

	/* Through libquiver. */
	qv_client *c = qvt_connect(d.sock, "e2e-errors", 4);
	int r = qv_model_lookup(c, "no-such-model", &desc);
	if (r != -ENOENT)
		qvt_fail("lookup of an unknown model: %d (%s), want -ENOENT", r, qv_strerror(r));
	qvt_model_open(c, argv[2], "trade-mlp", &m);
	float out[8];
	struct qv_result res;
	struct qv_request bogus = { .handle = 0xdeadbeefu, .rows = 1, .input = m.ref.x.data };
	r = qv_infer(c, &bogus, out, 8, 5000, &res);
	if (r != -ENOENT && !(r == 0 && res.status == QV_UNKNOWN_MODEL))
		qvt_fail("libquiver, bogus handle: %d / %s", r, r ? "" : qv_strerror((int)res.status));

	/* Through a raw channel, sized so that max_batch + 1 rows fit a slot. */
	uint32_t mb = m.desc.max_batch;
	uint32_t in_bytes = (mb + 2) * m.desc.in_dim * 4, out_bytes = (mb + 2) * m.desc.out_dim * 4;
	r = qvt_raw_open(&ch, d.sock, 4, in_bytes, out_bytes < 4096 ? 4096 : out_bytes);
	if (r < 0)
		qvt_die("raw channel: %s", strerror(-r));
	r = qvt_raw_lookup(&ch, "trade-mlp", &w);
	if (r < 0 || w.handle != m.desc.handle || w.in_dim != m.desc.in_dim)
		qvt_fail("raw lookup of trade-mlp: %d, handle %u/%u", r, w.handle, m.desc.handle);
	r = qvt_raw_lookup(&ch, "no-such-model", &w);
	if (r != -ENOENT)
		qvt_fail("raw lookup of an unknown model: %d, want -ENOENT", r);

	test_old_abi(&d);
	good_request("good request");
	struct qv_sqe e = good(0, 2);
	e.handle = 0xdeadbeefu;
	expect_status(e, QV_UNKNOWN_MODEL, QV_UNKNOWN_MODEL, "bogus handle");
	e = good(0, 2);
	e.in_bytes -= 4;
	expect_status(e, QV_BAD_SHAPE, QV_BAD_SHAPE, "input one float short");
	e = good(0, 2);
	e.in_bytes += 4 * m.desc.in_dim;
	expect_status(e, QV_BAD_SHAPE, QV_BAD_SHAPE, "input one row too long");
	e = good(0, mb + 1);
	expect_status(e, QV_BAD_SHAPE, QV_BAD_SHAPE, "rows = max_batch + 1");
	e = good(0, 2);
	e.out_cap -= 4;
	expect_status(e, QV_BAD_SHAPE, QV_BAD_REQUEST, "output capacity one float short");
	e = good(0, 2);
	e.rows = 0;
	e.in_bytes = 0;
	expect_status(e, QV_BAD_REQUEST, QV_BAD_SHAPE, "zero rows");
	e = good(0, 2);
	e.slot = ch.l.nslots;
	expect_status(e, QV_BAD_REQUEST, QV_BAD_REQUEST, "slot = nslots");
	e = good(0, 2);
	e.slot = 0xffffffffu;
	expect_status(e, QV_BAD_REQUEST, QV_BAD_REQUEST, "slot = 2^32 - 1");
	e = good(0, 2);
	e.flags = 1;
	expect_status(e, QV_BAD_REQUEST, QV_BAD_REQUEST, "non-zero flags");
	e = good(0, 2);
	e.in_bytes = ch.l.slot_in_bytes + 64;
	expect_status(e, QV_BAD_REQUEST, QV_BAD_SHAPE, "input larger than the slot");
	e = good(0, 2);
	e.out_cap = ch.l.slot_out_bytes + 64;
	expect_status(e, QV_BAD_REQUEST, QV_BAD_REQUEST, "out_cap larger than the slot");
	e = good(0, 2);
	e.deadline_ns = 1;
	expect_status(e, QV_DEADLINE_EXCEEDED, QV_DEADLINE_EXCEEDED, "deadline in the past");
	good_request("good request after the errors");
	if (qvt_raw_closed(&ch))
		qvt_fail("the daemon closed a channel that only sent invalid requests");

	/* libquiver's client still works too. */
	qvt_infer_check(c, &m, 5, 2, "libquiver after the errors");
	qvt_raw_close(&ch);
	qv_close(c);
	qvt_ref_free(&m.ref);
	return qvt_finish(&d);
}
