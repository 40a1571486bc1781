/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ensemble_e2e.c - ensembles served by a real quiverd over shared
 * memory, on the repository gen_ens_repo.py writes: a chain, a fan-in, a
 * gated fan-in and a gate, each checked against numpy's float64
 * composition at 1 row and at many rows; bad ensembles (unknown step
 * model, cycle, shape mismatch) reported failed in `models --json` with
 * the step named while the good ones serve; `load` and `swap` between two
 * versions of an ensemble; a step version an ensemble uses cannot be
 * unloaded.
 *
 * Usage: e2e_ensemble QUIVERD ENSREPO CLIENT QUIVERCTL
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "check.h"
#include "daemon.h"
#include "routing.h"

static char out[1 << 16];

/* Every reference row, at 1 row a request and in chunks of 1, 7 and 64 rows. */
static void check_model(qv_client *c, const char *repo, const char *name,
			uint32_t want_version)
{
	struct qvt_model m;

	qvt_model_open(c, repo, name, &m);
	if (m.desc.version != want_version)
		qvt_fail("%s: serves version %u, want %u", name, m.desc.version, want_version);
	for (uint32_t row = 0; row < m.ref.rows; row++)
		qvt_infer_check(c, &m, row, 1, name);
	for (uint32_t row = 0; row + 7 <= m.ref.rows; row += 7)
		qvt_infer_check(c, &m, row, 7, name);
	if (m.ref.rows <= m.desc.max_batch)
		qvt_infer_check(c, &m, 0, m.ref.rows, name);
	qvt_ref_free(&m.ref);
}

/* models --json: `name` is failed and its error contains each of the words. */
static void check_failed(const cJSON *models, const char *name, const char *w1,
			 const char *w2)
{
	const cJSON *m;

	cJSON_ArrayForEach(m, models) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "name");
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "state");
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(m, "error");
		if (!cJSON_IsString(n) || strcmp(n->valuestring, name) != 0)
			continue;
		if (!cJSON_IsString(st) || strcmp(st->valuestring, "failed") != 0 ||
		    !cJSON_IsString(e) || !strstr(e->valuestring, w1) ||
		    !strstr(e->valuestring, w2))
			qvt_fail("models: %s should be failed with \"%s\" and \"%s\" in its error, is %s (%s)",
				 name, w1, w2, cJSON_IsString(st) ? st->valuestring : "?",
				 cJSON_IsString(e) ? e->valuestring : "no error");
		else
			fprintf(stderr, "%s failed as expected: %s\n", name, e->valuestring);
		return;
	}
	qvt_fail("models: no entry for %s", name);
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	const char *cores[] = { "--cores", "0,1", NULL };

	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD ENSREPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	const char *repo = argv[2], *q = argv[4];
	if (qvt_daemon_start(&d, argv[1], repo, cores) < 0)
		qvt_die("quiverd did not start");

	/* 1. Bad wiring is a load error naming the step; the rest serves. */
	if (qvt_ctl(q, d.sock, out, sizeof(out), "--json", "models", NULL) != 0)
		qvt_die("quiverctl --json models failed");
	cJSON *root = cJSON_Parse(out);
	const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
	if (!cJSON_IsArray(models))
		qvt_die("models --json: no models array in %s", out);
	check_failed(models, "bad-unknown", "step 'b'", "no-such-model");
	check_failed(models, "bad-cycle", "step '", "cycle");
	check_failed(models, "bad-shape", "step 'b'", "takes 32");
	check_failed(models, "bad-loop-a", "step 'l'", "bad-loop-b");
	check_failed(models, "bad-loop-b", "step 'l'", "bad-loop-a");
	cJSON_Delete(root);

	/* 2. Every good ensemble against numpy, 2 workers. */
	qv_client *c = qvt_connect(d.sock, "ens", 16);
	check_model(c, repo, "ens-chain", 1);
	check_model(c, repo, "ens-fanin", 2);
	check_model(c, repo, "ens-gate", 1);
	/* An ensemble of an ensemble that sorts after it by name. */
	check_model(c, repo, "aa-nested", 1);

	/* 3. load + swap between two ensemble versions, and back. */
	int rc = qvt_ctl(q, d.sock, out, sizeof(out), "load", "ens-fanin", "1", NULL);
	fprintf(stderr, "quiverctl load ens-fanin 1 (exit %d): %s", rc, out);
	if (rc != 0)
		qvt_fail("quiverctl load ens-fanin 1: exit %d", rc);
	if (qvt_ctl(q, d.sock, out, sizeof(out), "swap", "ens-fanin", "1", NULL) != 0)
		qvt_fail("quiverctl swap ens-fanin 1 failed");
	check_model(c, repo, "ens-fanin", 1);
	if (qvt_ctl(q, d.sock, out, sizeof(out), "swap", "ens-fanin", "2", NULL) != 0)
		qvt_fail("quiverctl swap ens-fanin 2 failed");
	check_model(c, repo, "ens-fanin", 2);

	/* 4. A step version an ensemble uses outlives it: tower_a/2 (the primary
	 * when the ensembles loaded) is pinned. Swaps to 1 then to 3 (the same
	 * file) leave 2 without a role, so only the pin can refuse its unload. */
	int32_t st;
	cJSON_Delete(qvt_cmd(d.sock, &st, "{\"cmd\":\"load\",\"name\":\"tower_a\",\"version\":1}"));
	if (st != 0)
		qvt_fail("load tower_a/1: status %d", st);
	cJSON_Delete(qvt_cmd(d.sock, &st,
			     "{\"cmd\":\"load\",\"name\":\"tower_a\",\"version\":3,\"path\":\"%s/tower_a/1\"}",
			     repo));
	if (st != 0)
		qvt_fail("load tower_a/3: status %d", st);
	cJSON_Delete(qvt_cmd_ok(d.sock, "{\"cmd\":\"swap\",\"name\":\"tower_a\",\"version\":1}"));
	cJSON_Delete(qvt_cmd_ok(d.sock, "{\"cmd\":\"swap\",\"name\":\"tower_a\",\"version\":3}"));
	cJSON_Delete(qvt_cmd(d.sock, &st, "{\"cmd\":\"unload\",\"name\":\"tower_a\",\"version\":2}"));
	if (st != -EBUSY)
		qvt_fail("unload tower_a/2 (a step of ens-fanin): status %d, want %d", st, -EBUSY);
	check_model(c, repo, "ens-fanin", 2);

	qv_close(c);
	return qvt_finish(&d);
}
