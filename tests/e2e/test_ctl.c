/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ctl.c - quiverctl against a real quiverd: `status` and `models`
 * exit 0 with human tables naming the state and every model; `--json`
 * output parses (cJSON) with the documented fields; requests_served grows
 * by at least the requests this test sent; a models listing agrees with
 * qv_model_lookup; with no daemon quiverctl exits 3.
 *
 * Usage: test_ctl QUIVERD REPO CLIENT QUIVERCTL
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "check.h"

static char out[256 * 1024];

static int ctl(const char *quiverctl, const char *sock, const char *a1, const char *a2)
{
	const char *argv[] = { quiverctl, "--socket", sock, a1, a2, NULL };
	int st;
	if (qvt_run(argv, out, sizeof(out), &st) < 0)
		qvt_die("cannot run %s", quiverctl);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static cJSON *ctl_json(const char *quiverctl, const char *sock, const char *cmd)
{
	int rc = ctl(quiverctl, sock, "--json", cmd);
	if (rc != 0) {
		qvt_fail("quiverctl --json %s: exit %d", cmd, rc);
		return NULL;
	}
	cJSON *j = cJSON_Parse(out);
	if (!j || !cJSON_IsObject(j))
		qvt_fail("quiverctl --json %s: not a JSON object:\n%s", cmd, out);
	return j;
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsNumber(v)) {
		qvt_fail("field '%s' missing or not a number", k);
		return -1;
	}
	return v->valuedouble;
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	const int NREQ = 50;

	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	const char *q = argv[4];
	if (qvt_daemon_start(&d, argv[1], argv[2], NULL) < 0)
		qvt_die("quiverd did not start");

	int rc = ctl(q, d.sock, "status", NULL);
	fprintf(stderr, "quiverctl status (exit %d):\n%s", rc, out);
	if (rc != 0 || !strstr(out, "running") || !strstr(out, "WORKER"))
		qvt_fail("quiverctl status: exit %d, no state or worker table", rc);

	rc = ctl(q, d.sock, "models", NULL);
	fprintf(stderr, "quiverctl models (exit %d):\n%s", rc, out);
	if (rc != 0)
		qvt_fail("quiverctl models: exit %d", rc);
	static const char *const names[] = { "trade-mlp", "ctr-mlp", "echo" };
	for (int i = 0; i < 3; i++)
		if (!strstr(out, names[i]))
			qvt_fail("quiverctl models does not list %s", names[i]);
	if (!strstr(out, "[-1,32]") || !strstr(out, "[-1,256]"))
		qvt_fail("quiverctl models does not show the input shapes");

	cJSON *s0 = ctl_json(q, d.sock, "status");
	double served0 = s0 ? num(s0, "requests_served") : 0;
	if (s0) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(s0, "state");
		if (!cJSON_IsString(st) || strcmp(st->valuestring, "running") != 0)
			qvt_fail("--json status: state is not \"running\"");
		const cJSON *w = cJSON_GetObjectItemCaseSensitive(s0, "workers");
		if (!cJSON_IsArray(w) || cJSON_GetArraySize(w) < 1)
			qvt_fail("--json status: no workers array");
		else {
			num(cJSON_GetArrayItem(w, 0), "busy_cycles");
			num(cJSON_GetArrayItem(w, 0), "idle_cycles");
		}
		if (num(s0, "models_loaded") != 3)
			qvt_fail("--json status: models_loaded is not 3");
	}

	/* Traffic, then requests_served must have grown by at least that. */
	qv_client *c = qvt_connect(d.sock, "e2e-ctl", 4);
	struct qvt_model m;
	qvt_model_open(c, argv[2], "trade-mlp", &m);
	for (int i = 0; i < NREQ; i++)
		qvt_infer_check(c, &m, (uint32_t)i % m.ref.rows, 1, "traffic");
	cJSON *s1 = ctl_json(q, d.sock, "status");
	double served1 = s1 ? num(s1, "requests_served") : 0;
	fprintf(stderr, "requests_served: %.0f before, %.0f after %d requests\n", served0, served1,
		NREQ);
	if (served1 < served0 + NREQ)
		qvt_fail("requests_served grew by %.0f, want >= %d", served1 - served0, NREQ);
	if (s1 && num(s1, "channels") < 1)
		qvt_fail("--json status: channels < 1 with a client connected");

	/* models --json agrees with the lookup. */
	cJSON *mj = ctl_json(q, d.sock, "models");
	const cJSON *arr = mj ? cJSON_GetObjectItemCaseSensitive(mj, "models") : NULL;
	bool found = false;
	const cJSON *e;
	cJSON_ArrayForEach(e, arr) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
		if (!cJSON_IsString(n) || strcmp(n->valuestring, "trade-mlp") != 0)
			continue;
		found = true;
		const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, "in_shape");
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "state");
		if (num(e, "handle") != m.desc.handle || num(e, "version") != m.desc.version ||
		    num(e, "max_batch") != m.desc.max_batch || !cJSON_IsArray(in) ||
		    cJSON_GetArraySize(in) != 2 ||
		    cJSON_GetArrayItem(in, 1)->valuedouble != m.desc.in_dim ||
		    !cJSON_IsString(st) || strcmp(st->valuestring, "ready") != 0)
			qvt_fail("--json models: trade-mlp disagrees with qv_model_lookup");
	}
	if (!found)
		qvt_fail("--json models: no trade-mlp");
	cJSON_Delete(s0);
	cJSON_Delete(s1);
	cJSON_Delete(mj);
	qv_close(c);
	qvt_ref_free(&m.ref);

	int fin = qvt_finish(&d);
	/* The daemon is gone: quiverctl must say it cannot connect. */
	rc = ctl(q, d.sock, "status", NULL);
	if (rc != 3) {
		fprintf(stderr, "FAIL: quiverctl status with no daemon: exit %d, want 3\n", rc);
		return 1;
	}
	return fin;
}
