/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_cmd.c - libFuzzer target for the control commands: one input is
 * one command's JSON text, through qv_cmd_handle (commands.c: parsing,
 * credentials, status, models, drain) into the routing commands
 * (route_cmds.c, cmd_args.c: load, unload, swap, canary, shadow, promote,
 * rollback, fallback, failpoint, routes, stats, metrics), against one
 * registry kept across inputs, so sequences of commands are exercised.
 * An input starting with '!' is sent without the admin credential.
 *
 * The registry has no workers (every grace period passes at once) and the
 * repository of the generated test models (QV_FUZZ_CMD_REPO; none: a
 * directory that does not exist), so `load echo 1` loads a real model on
 * the calling thread (no loader thread: the answer is immediate).
 *
 * Besides not crashing: every input gets a reply, a JSON object; a
 * refusal (status < 0) carries an "error" string; the routes stay
 * consistent (every role names a loaded version, a route with versions
 * has a primary, the published table has every route).
 * Built with -Dfuzz=true (clang -fsanitize=fuzzer); otherwise linked with
 * tests/udp/fuzz_replay.c and run over corpus_cmd/ as a unit test.
 */
#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "quiverd.h"
#include "routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct qv_daemon *daemon_once(void)
{
	static struct qv_daemon d;
	static int ready;
	const char *repo = getenv("QV_FUZZ_CMD_REPO");

	if (ready)
		return &d;
	/* Quiet: most inputs are refused on purpose. QV_FUZZ_CMD_VERBOSE shows the log. */
	if (!getenv("QV_FUZZ_CMD_VERBOSE"))
		qv_log_set_level(QV_LOG_ERROR + 1);
	d.repo = repo && repo[0] ? repo : "/nonexistent/quiver-fuzz-repo";
	d.max_batch = 8;
	d.tsc_hz = 1000000000ull;
	d.start_ns = 1;
	d.ready_fd = -1;
	if (qv_reg_init(&d.reg, d.repo, 8, d.tsc_hz, d.workers, 0) < 0)
		abort();
	if (qv_reg_publish(&d.reg) < 0)
		abort();
	ready = 1;
	return &d;
}

static int loaded(const struct qv_route *r, uint32_t v)
{
	return v == 0 || qv_route_version(r, v) != NULL;
}

static void check_routes(struct qv_daemon *d)
{
	/* Relaxed: this thread is the only writer of the pointer. */
	const struct qv_table *t = atomic_load_explicit(&d->reg.cur, memory_order_relaxed);

	if (!t || t->n != d->reg.n)
		abort();
	for (uint32_t i = 0; i < d->reg.n; i++) {
		const struct qv_route *r = &d->reg.routes[i];

		if (r->handle != i || (r->nvers && !r->primary) || !loaded(r, r->primary) ||
		    !loaded(r, r->canary) || !loaded(r, r->shadow) || !loaded(r, r->fallback) ||
		    (r->canary && r->canary == r->primary) || r->nvers > QV_ROUTE_MAX_VERSIONS)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qv_daemon *d = daemon_once();
	int admin = !(size && data[0] == '!');
	const char *json = (const char *)data + !admin;
	char *reply = (char *)"untouched";
	int32_t status = 1;
	cJSON *rep;
	const cJSON *e;
	int r;

	d->drain_requested = 0;
	r = qv_cmd_handle(d, json, size - !admin, admin, &reply, &status);
	if (r != 0 || status > 0)
		abort();
	rep = cJSON_Parse(reply);
	e = cJSON_GetObjectItemCaseSensitive(rep, "error");
	if (!cJSON_IsObject(rep) || (status < 0 && !cJSON_IsString(e)))
		abort();
	cJSON_Delete(rep);
	free(reply);
	qv_reg_reclaim(&d->reg);
	check_routes(d);
	return 0;
}
