/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_quiverd_chan.c - quiverd's side of the channel contract, driven
 * through a raw channel (tests/e2e/rawchan.h) so the test controls every
 * byte:
 *  - a full completion ring is back-pressure, never loss: descriptors stay
 *    in the submission ring until the client makes room, then all complete;
 *  - each invalid descriptor field gets its documented status, with the
 *    slot and request id echoed even when the slot is out of range;
 *  - a model that fails to load is served as "failed" with the loader's
 *    message while the others serve; handles follow name order;
 *  - impossible ring indices close that channel only, and the daemon counts
 *    it, frees it, and keeps serving;
 *  - a repository where nothing loads: quiverd refuses to start.
 * Outputs are checked against the generator's reference y.npy.
 *
 * Usage: test_quiverd_chan QUIVERD MODELS_DIR (MODELS_DIR holds repo/ and
 * bad-*.onnx, see tests/models).
 */
#include <cJSON.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "quiver.h"
#include "rawchan.h"

#define NSLOTS 4
#define SLOT_BYTES 4096

static char tmp[256];

static void mkrepo_link(const char *rel, const char *target)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", tmp, rel);
	if (symlink(target, p) < 0)
		qvt_die("symlink %s: %s", p, strerror(errno));
}

static void mkrepo_dir(const char *rel)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", tmp, rel);
	if (mkdir(p, 0755) < 0)
		qvt_die("mkdir %s: %s", p, strerror(errno));
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tmp(void)
{
	if (tmp[0])
		nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static cJSON *cmd(const char *sock, const char *name)
{
	static char buf[256 * 1024];
	char req[64];
	int32_t st;
	cJSON *j;

	snprintf(req, sizeof(req), "{\"cmd\":\"%s\"}", name);
	if (qvt_ctl_cmd(sock, req, &st, buf, sizeof(buf)) < 0 || st != 0)
		qvt_die("command %s failed (status %d): %s", name, st, buf);
	j = cJSON_Parse(buf);
	if (!j)
		qvt_die("command %s: reply is not JSON: %s", name, buf);
	return j;
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsNumber(v))
		qvt_die("JSON field %s missing or not a number", k);
	return v->valuedouble;
}

static const struct qv_ring_ctl *ring_ctl(const struct qvt_raw *ch, uint64_t off)
{
	return (const struct qv_ring_ctl *)(const void *)(ch->base + off);
}

static struct qv_sqe sqe(const struct qv_model_wire *m, uint32_t slot, uint32_t rows, uint64_t id)
{
	return (struct qv_sqe){ .slot = slot, .handle = m->handle, .rows = rows,
				.in_bytes = rows * m->in_dim * 4, .out_cap = SLOT_BYTES,
				.request_id = id };
}

/* Waits for the completion of `id` (the next one) and checks it. */
static void expect(struct qvt_raw *ch, uint64_t id, uint32_t slot, uint32_t status,
		   const char *what)
{
	struct qv_cqe c;
	int r = qvt_raw_wait(ch, 10000, &c);

	if (r != 1)
		qvt_die("%s: no completion (%s)", what, r == 0 ? "timeout" : strerror(-r));
	if (c.request_id != id || c.slot != slot || c.status != status)
		qvt_fail("%s: got id %llu slot %u status %u, want id %llu slot %u status %u", what,
			 (unsigned long long)c.request_id, c.slot, c.status,
			 (unsigned long long)id, slot, status);
}

static void check_out(struct qvt_raw *ch, const struct qvt_ref *ref, uint32_t slot,
		      uint32_t row, const char *what)
{
	if (qvt_compare(qvt_raw_out(ch, slot), ref->y.data + (size_t)row * ref->out_dim,
			ref->out_dim, 1e-5, 1e-6, what))
		qvt_fail("%s: output differs from the reference", what);
}

static void test_backpressure(struct qvt_raw *ch, const struct qv_model_wire *m,
			      const struct qvt_ref *ref)
{
	const struct qv_ring_ctl *sq = ring_ctl(ch, ch->l.sq_off), *cq = ring_ctl(ch, ch->l.cq_off);
	uint64_t t0;
	char what[64];

	if (ch->l.ring_entries != NSLOTS)
		qvt_die("ring has %u entries, expected %u", ch->l.ring_entries, NSLOTS);
	/* Fill the completion ring without reading it. */
	for (uint32_t i = 0; i < NSLOTS; i++) {
		memcpy(qvt_raw_in(ch, i), ref->x.data + (size_t)i * ref->in_dim, ref->in_dim * 4);
		struct qv_sqe e = sqe(m, i, 1, 100 + i);
		if (qvt_raw_push(ch, &e) < 0)
			qvt_die("push %u", i);
	}
	t0 = qvt_now_ns();
	while (atomic_load_explicit(&cq->tail, memory_order_acquire) != NSLOTS) {
		if (qvt_now_ns() - t0 > 10000000000ull)
			qvt_die("the first %d requests were not completed in 10 s", NSLOTS);
		qvt_sleep_ms(1);
	}
	for (uint32_t i = 0; i < NSLOTS; i++) {
		snprintf(what, sizeof(what), "first wave, slot %u", i);
		check_out(ch, ref, i, i, what);
	}
	/* A second wave: the server can take the descriptors but not answer them. */
	for (uint32_t i = 0; i < NSLOTS; i++) {
		memcpy(qvt_raw_in(ch, i), ref->x.data + (size_t)(i + NSLOTS) * ref->in_dim,
		       ref->in_dim * 4);
		struct qv_sqe e = sqe(m, i, 1, 200 + i);
		if (qvt_raw_push(ch, &e) < 0)
			qvt_die("second wave push %u: submission ring not released", i);
	}
	qvt_sleep_ms(300);
	if (atomic_load_explicit(&cq->tail, memory_order_acquire) != NSLOTS)
		qvt_fail("completion ring overrun: tail %u with %d unread entries",
			 atomic_load(&cq->tail), NSLOTS);
	if (atomic_load_explicit(&sq->head, memory_order_acquire) != NSLOTS)
		qvt_fail("descriptors consumed with no room to answer them: sq head %u",
			 atomic_load(&sq->head));
	for (uint32_t i = 0; i < NSLOTS; i++)
		expect(ch, 100 + i, i, QV_OK, "first wave");
	for (uint32_t i = 0; i < NSLOTS; i++) {
		expect(ch, 200 + i, i, QV_OK, "second wave");
		snprintf(what, sizeof(what), "second wave, slot %u", i);
		check_out(ch, ref, i, i + NSLOTS, what);
	}
	fprintf(stderr, "back-pressure: %d held while the completion ring was full, none lost\n",
		NSLOTS);
}

static void test_statuses(struct qvt_raw *ch, const struct qv_model_wire *m)
{
	struct {
		const char *what;
		struct qv_sqe e;
		uint32_t status;
	} cases[] = {
		{ "slot == nslots", sqe(m, NSLOTS, 1, 300), QV_BAD_REQUEST },
		{ "slot huge", sqe(m, 0xfffffff0u, 1, 301), QV_BAD_REQUEST },
		{ "flags != 0", sqe(m, 0, 1, 302), QV_BAD_REQUEST },
		{ "out_cap > slot", sqe(m, 1, 1, 303), QV_BAD_REQUEST },
		{ "in_bytes > slot", sqe(m, 2, 1, 304), QV_BAD_REQUEST },
		{ "rows 0", sqe(m, 3, 1, 305), QV_BAD_REQUEST },
		{ "unknown handle", sqe(m, 0, 1, 306), QV_UNKNOWN_MODEL },
		{ "in_bytes != rows*in_dim*4", sqe(m, 1, 2, 307), QV_BAD_SHAPE },
		{ "out_cap too small", sqe(m, 2, 1, 308), QV_BAD_SHAPE },
		{ "rows > max_batch", sqe(m, 3, 1, 309), QV_BAD_SHAPE },
		{ "deadline passed", sqe(m, 0, 1, 310), QV_DEADLINE_EXCEEDED },
		{ "valid after all that", sqe(m, 1, 1, 311), QV_OK },
	};
	cases[2].e.flags = 1;
	cases[3].e.out_cap = SLOT_BYTES + 1;
	cases[4].e.in_bytes = SLOT_BYTES + 4;
	cases[5].e.rows = 0;
	cases[6].e.handle = 9999;
	cases[7].e.in_bytes = m->in_dim * 4;
	cases[8].e.out_cap = m->out_dim * 4 - 4;
	cases[9].e.rows = m->max_batch + 1;
	cases[9].e.in_bytes = 0; /* any size: the shape check must refuse first */
	cases[10].e.deadline_ns = 1;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (qvt_raw_push(ch, &cases[i].e) < 0)
			qvt_die("push %s", cases[i].what);
		expect(ch, cases[i].e.request_id, cases[i].e.slot, cases[i].status, cases[i].what);
	}
}

static void test_models_and_status(const char *sock)
{
	cJSON *j = cmd(sock, "models"), *ms = cJSON_GetObjectItemCaseSensitive(j, "models");
	const char *want[] = { "aaa-bad", "echo", "trade-mlp" };
	const cJSON *m;
	int i = 0;

	if (cJSON_GetArraySize(ms) != 3)
		qvt_fail("models: %d entries, want 3", cJSON_GetArraySize(ms));
	cJSON_ArrayForEach(m, ms) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
		const cJSON *state = cJSON_GetObjectItemCaseSensitive(m, "state");
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(m, "error");
		if (i >= 3 || !cJSON_IsString(name) || strcmp(name->valuestring, want[i]) != 0 ||
		    num(m, "handle") != i)
			qvt_fail("models[%d]: want %s with handle %d", i, i < 3 ? want[i] : "?", i);
		if (i == 0) {
			if (!cJSON_IsString(state) || strcmp(state->valuestring, "failed") != 0 ||
			    !cJSON_IsString(err) || !strstr(err->valuestring, "transB"))
				qvt_fail("aaa-bad: want state failed and the loader's message about transB");
		} else if (!cJSON_IsString(state) || strcmp(state->valuestring, "ready") != 0 ||
			   !cJSON_IsNull(err)) {
			qvt_fail("%s: want state ready, error null", want[i < 3 ? i : 0]);
		}
		i++;
	}
	cJSON_Delete(j);

	j = cmd(sock, "status");
	if (num(j, "models_loaded") != 2 || num(j, "models_failed") != 1)
		qvt_fail("status: models_loaded %g models_failed %g, want 2 and 1",
			 num(j, "models_loaded"), num(j, "models_failed"));
	if (num(j, "channels") != 1)
		qvt_fail("status: %g channels, want 1", num(j, "channels"));
	/* 8 back-pressure requests, 12 status cases. */
	if (num(j, "requests_served") < 20)
		qvt_fail("status: requests_served %g < 20", num(j, "requests_served"));
	cJSON_Delete(j);
}

static void test_corrupt(struct qvt_raw *ch, const char *sock, pid_t pid)
{
	struct qv_ring_ctl *sq = (struct qv_ring_ctl *)(void *)(ch->base + ch->l.sq_off);
	uint32_t head = atomic_load_explicit(&sq->head, memory_order_acquire);
	uint64_t t0 = qvt_now_ns();
	double open = 1, corrupt = 0;
	cJSON *j;

	/* More entries outstanding than the ring holds: impossible. */
	atomic_store_explicit(&sq->tail, head + ch->l.ring_entries + 5, memory_order_release);
	while (!qvt_raw_closed(ch)) {
		if (qvt_now_ns() - t0 > 10000000000ull)
			qvt_die("a corrupt submission ring did not get the channel closed in 10 s");
		qvt_sleep_ms(5);
	}
	/* The daemon frees it on its own and keeps serving. */
	t0 = qvt_now_ns();
	while (qvt_now_ns() - t0 < 10000000000ull) {
		j = cmd(sock, "status");
		open = num(j, "channels");
		corrupt = num(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "workers"), 0),
			      "corrupt_channels");
		cJSON_Delete(j);
		if (open == 0)
			break;
		qvt_sleep_ms(20);
	}
	if (open != 0 || corrupt != 1)
		qvt_fail("after a corrupt ring: %g channels open, %g counted corrupt; want 0 and 1",
			 open, corrupt);
	if (qvt_memfd_maps(pid) != 0)
		qvt_fail("after a corrupt ring: %d memfd mappings left", qvt_memfd_maps(pid));
	fprintf(stderr, "corrupt ring: channel closed and freed\n");
}

static void test_nothing_loads(const char *quiverd, const char *models)
{
	char repo[300], p[600], bad[600];
	struct qvt_daemon d;

	snprintf(repo, sizeof(repo), "%s/empty", tmp);
	mkrepo_dir("empty");
	mkrepo_dir("empty/trade-mlp");
	mkrepo_dir("empty/trade-mlp/1");
	snprintf(bad, sizeof(bad), "%s/bad-gemm-transb2.onnx", models);
	snprintf(p, sizeof(p), "%s/trade-mlp/1/model.onnx", repo);
	if (symlink(bad, p) < 0)
		qvt_die("symlink: %s", strerror(errno));
	fprintf(stderr, "(a refusal to start is expected next)\n");
	if (qvt_daemon_start(&d, quiverd, repo, NULL) == 0) {
		qvt_fail("quiverd started with no loadable model");
		qvt_daemon_kill(&d);
		return;
	}
	/* It must say why. */
	FILE *f = fopen(d.log, "r");
	char buf[8192] = "";
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	buf[n] = '\0';
	if (f)
		fclose(f);
	if (!strstr(buf, "no model loaded") || !strstr(buf, "transB"))
		qvt_fail("quiverd refused to start without saying why in its log");
}

int main(int argc, char **argv)
{
	char repo[300], link[600], bad[600];
	struct qv_model_wire m;
	struct qvt_daemon d;
	struct qvt_raw ch;
	struct qvt_ref ref;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: %s QUIVERD MODELS_DIR\n", argv[0]);
		return 2;
	}
	/* Symlinks need an absolute target. */
	char *models = realpath(argv[2], NULL);
	if (!models) {
		printf("SKIP: no generated models in %s\n", argv[2]);
		return QVT_SKIP;
	}
	argv[2] = models;
	snprintf(bad, sizeof(bad), "%s/bad-gemm-transb2.onnx", argv[2]);
	snprintf(link, sizeof(link), "%s/repo/echo", argv[2]);
	if (access(bad, R_OK) != 0 || access(link, R_OK) != 0) {
		printf("SKIP: no generated models in %s\n", argv[2]);
		return QVT_SKIP;
	}
	snprintf(tmp, sizeof(tmp), "%s/qv-dp-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmp))
		qvt_die("mkdtemp: %s", strerror(errno));
	atexit(rm_tmp);
	/* echo and trade-mlp as generated, plus a model the runtime must refuse. */
	mkrepo_dir("repo");
	mkrepo_link("repo/echo", link);
	snprintf(link, sizeof(link), "%s/repo/trade-mlp", argv[2]);
	mkrepo_link("repo/trade-mlp", link);
	mkrepo_dir("repo/aaa-bad");
	mkrepo_dir("repo/aaa-bad/1");
	mkrepo_link("repo/aaa-bad/1/model.onnx", bad);
	snprintf(repo, sizeof(repo), "%s/repo", tmp);

	if (qvt_ref_load(repo, "echo", 1, &ref) < 0)
		qvt_die("echo reference data missing");
	if (qvt_daemon_start(&d, argv[1], repo, NULL) < 0)
		qvt_die("quiverd did not start");
	r = qvt_raw_open(&ch, d.sock, NSLOTS, SLOT_BYTES, SLOT_BYTES);
	if (r < 0)
		qvt_die("raw channel: %s", strerror(-r));
	if (qvt_raw_lookup(&ch, "echo", &m) < 0 || m.handle != 1 || m.in_dim != ref.in_dim ||
	    m.out_dim != ref.out_dim)
		qvt_die("lookup echo: want handle 1 and the reference dims");
	if (qvt_raw_lookup(&ch, "aaa-bad", &m) != -ENOENT)
		qvt_fail("lookup of a failed model: want -ENOENT");
	qvt_raw_lookup(&ch, "echo", &m);

	test_backpressure(&ch, &m, &ref);
	test_statuses(&ch, &m);
	test_models_and_status(d.sock);
	test_corrupt(&ch, d.sock, d.pid);
	qvt_raw_close(&ch);
	qvt_ref_free(&ref);
	r = qvt_finish(&d);
	test_nothing_loads(argv[1], argv[2]);
	free(models);
	return r ? r : (qvt_failures() ? 1 : 0);
}
