/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_plan_e2e.c - `quiverctl models --plan` against a real quiverd: the
 * plan of the trade-mlp version served names every Gemm node of its
 * model.onnx (listed independently, by the onnx Python package) in the
 * order of the graph, each as one dense step with the activation that
 * follows the Gemm in the graph fused in, fp32, and a kernel ("hand" or
 * "onednn") for every batch bucket 1, 2, 4 ... max_batch; the human view
 * shows the same; a model kind without an MLP plan (the echo model is one
 * too, so the check is only that every version has a plan object) still
 * gets its description. A bad flag, a stray argument and a non-boolean
 * "plan" in a raw request are refused; plain `models` has no plan.
 *
 * Usage: test_plan_e2e QUIVERD REPO CLIENT QUIVERCTL
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "daemon.h"
#include "routing.h"

static char out[512 * 1024];

/* The Gemm nodes of a model and the op that follows each (lower case). */
struct gemms {
	int n;
	char name[8][96];
	char act[8][32];
};

static int onnx_gemms(const char *path, struct gemms *g)
{
	const char *py =
		"import sys, onnx\n"
		"m = onnx.load(sys.argv[1])\n"
		"ns = list(m.graph.node)\n"
		"for i, n in enumerate(ns):\n"
		"    if n.op_type == 'Gemm':\n"
		"        nx = ns[i + 1].op_type.lower() if i + 1 < len(ns) else 'none'\n"
		"        print(n.name, nx)\n";
	const char *argv[] = { "/usr/bin/python3", "-c", py, path, NULL };
	int st;

	if (qvt_run(argv, out, sizeof(out), &st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	g->n = 0;
	for (char *line = strtok(out, "\n"); line && g->n < 8; line = strtok(NULL, "\n")) {
		if (sscanf(line, "%95s %31s", g->name[g->n], g->act[g->n]) == 2)
			g->n++;
	}
	return g->n > 0 ? 0 : -1;
}

static const cJSON *model_entry(const cJSON *reply, const char *name)
{
	const cJSON *m;

	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(reply, "models")) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "name");
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
		if (cJSON_IsString(n) && !strcmp(n->valuestring, name) && cJSON_IsString(r) &&
		    !strcmp(r->valuestring, "primary"))
			return m;
	}
	return NULL;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static void check_plan(const cJSON *m, const struct gemms *g)
{
	const cJSON *plan = cJSON_GetObjectItemCaseSensitive(m, "plan");
	const cJSON *steps = cJSON_GetObjectItemCaseSensitive(plan, "steps");
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(plan, "text");
	double max_batch = qvt_num(m, "max_batch");
	const cJSON *s;
	int i = 0;

	if (!cJSON_IsArray(steps) || cJSON_GetArraySize(steps) != g->n) {
		qvt_fail("trade-mlp: plan.steps should be %d dense steps", g->n);
		return;
	}
	if (!cJSON_IsArray(text) || cJSON_GetArraySize(text) < g->n)
		qvt_fail("trade-mlp: plan.text should describe every step");
	cJSON_ArrayForEach(s, steps) {
		const cJSON *ks = cJSON_GetObjectItemCaseSensitive(s, "kernels"), *k;
		double rows = 1;

		if (strcmp(str(s, "kind"), "dense"))
			qvt_fail("step %d: kind '%s', not dense", i, str(s, "kind"));
		if (!strstr(str(s, "label"), g->name[i]))
			qvt_fail("step %d: label '%s' does not name Gemm node '%s'", i,
				 str(s, "label"), g->name[i]);
		if (strcmp(str(s, "activation"), g->act[i]))
			qvt_fail("step %d: activation '%s', the graph has %s after %s", i,
				 str(s, "activation"), g->act[i], g->name[i]);
		if (strcmp(str(s, "precision"), "fp32"))
			qvt_fail("step %d: precision '%s', not fp32", i, str(s, "precision"));
		cJSON_ArrayForEach(k, ks) {
			if (qvt_num(k, "rows") != rows)
				qvt_fail("step %d: bucket of %g rows where %g was due", i,
					 qvt_num(k, "rows"), rows);
			if (strcmp(str(k, "kernel"), "hand") && strcmp(str(k, "kernel"), "onednn"))
				qvt_fail("step %d: kernel '%s'", i, str(k, "kernel"));
			rows *= 2;
		}
		if (rows / 2 != max_batch)
			qvt_fail("step %d: buckets end at %g rows, max_batch is %g", i, rows / 2,
				 max_batch);
		i++;
	}
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	struct gemms g;
	char path[512];
	int32_t status;

	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	const char *quiverctl = argv[4];
	if (qvt_daemon_start(&d, argv[1], argv[2], NULL) < 0)
		qvt_die("quiverd did not start");

	cJSON *plain = qvt_ctl_json(quiverctl, d.sock, "models", NULL);
	const cJSON *pm = model_entry(plain, "trade-mlp");
	if (!pm)
		qvt_die("models: no trade-mlp primary");
	if (cJSON_GetObjectItemCaseSensitive(pm, "plan"))
		qvt_fail("models without --plan carries a plan");
	snprintf(path, sizeof(path), "%s/trade-mlp/%g/model.onnx", argv[2], qvt_num(pm, "version"));
	cJSON_Delete(plain);
	if (onnx_gemms(path, &g) < 0) {
		fprintf(stderr, "SKIP: /usr/bin/python3 cannot list the nodes of %s with onnx\n",
			path);
		qvt_daemon_cleanup(&d);
		return QVT_SKIP;
	}

	cJSON *rep = qvt_ctl_json(quiverctl, d.sock, "models", "--plan", NULL);
	const cJSON *m = model_entry(rep, "trade-mlp"), *e;
	if (!m)
		qvt_die("models --plan: no trade-mlp primary");
	check_plan(m, &g);
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(rep, "models")) {
		if (!strcmp(str(e, "state"), "ready") &&
		    !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(e, "plan")))
			qvt_fail("models --plan: %s has no plan object", str(e, "name"));
	}
	cJSON_Delete(rep);

	/* The human view: the steps' table with the Gemm nodes. */
	int rc = qvt_ctl(quiverctl, d.sock, out, sizeof(out), "models", "--plan", NULL);
	if (rc != 0 || !strstr(out, "KERNEL BY ROWS"))
		qvt_fail("models --plan: exit %d, no plan table:\n%s", rc, out);
	for (int i = 0; i < g.n; i++)
		if (!strstr(out, g.name[i]))
			qvt_fail("models --plan: the view does not name %s", g.name[i]);

	/* Refused: a bad flag and a stray argument (usage, exit 2), and a
	 * non-boolean plan in a raw request (the daemon's own check). */
	rc = qvt_ctl(quiverctl, d.sock, out, sizeof(out), "models", "--plans", NULL);
	if (rc != 2)
		qvt_fail("models --plans: exit %d, want 2", rc);
	rc = qvt_ctl(quiverctl, d.sock, out, sizeof(out), "models", "trade-mlp", NULL);
	if (rc != 2)
		qvt_fail("models trade-mlp: exit %d, want 2", rc);
	cJSON *bad = qvt_cmd(d.sock, &status, "{\"cmd\":\"models\",\"plan\":\"yes\"}");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(bad, "error");
	if (status >= 0 || !cJSON_IsString(err) || !strstr(err->valuestring, "plan"))
		qvt_fail("models with \"plan\":\"yes\": status %d, want an error naming plan",
			 status);
	cJSON_Delete(bad);

	qvt_serves(d.sock, argv[2], "trade-mlp", 4, "after models --plan");
	return qvt_finish(&d);
}
