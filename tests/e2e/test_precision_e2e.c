/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_precision_e2e.c - reduced precision through a real quiverd:
 *  - "trade" (trade-mlp, config.json "precision": "bf16") serves bf16 and
 *    logs the guard's measured error; `models --json` shows it;
 *  - "brk" (bf16-break, "precision": "bf16") is kept in fp32 by the guard:
 *    the log says why, `models` shows "fp32 (bf16 asked)";
 *  - `quiverctl load trade 2 --precision fp32` overrides config.json, and as
 *    the shadow of the bf16 primary its drift shows in `stats`
 *    (shadow_max_abs_diff > 0, within the guard's tolerance).
 * Skips (77) on a CPU without avx512_bf16.
 *
 * Usage: test_precision_e2e QUIVERD REPO CLIENT QUIVERCTL
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"

static int cpu_has(const char *flag)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[8192];
	int found = 0;
	while (f && !found && fgets(line, sizeof(line), f))
		if (strncmp(line, "flags", 5) == 0)
			found = strstr(line, flag) != NULL;
	if (f)
		fclose(f);
	return found;
}

static int log_has(const struct qvt_daemon *d, const char *a, const char *b)
{
	FILE *f = fopen(d->log, "r");
	char line[2048];
	int n = 0;
	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, a) && (!b || strstr(line, b));
	if (f)
		fclose(f);
	return n;
}

static void put_version(const char *repo, const char *model, int v, const char *onnx,
			const char *config)
{
	char cmd[16384];
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/%s/%d && ln -sf %s %s/%s/%d/model.onnx", repo, model,
		 v, onnx, repo, model, v);
	if (system(cmd) != 0)
		qvt_die("cannot build %s/%d", model, v);
	if (config) {
		snprintf(cmd, sizeof(cmd), "%s/%s/config.json", repo, model);
		FILE *f = fopen(cmd, "w");
		if (!f || fputs(config, f) < 0 || fclose(f) != 0)
			qvt_die("cannot write %s", cmd);
	}
}

/* The `models --json` entry of name/version. */
static const cJSON *entry(const cJSON *models, const char *name, int version)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(models, "models")) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "name");
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "version");
		if (cJSON_IsString(n) && !strcmp(n->valuestring, name) && cJSON_IsNumber(v) &&
		    v->valueint == version)
			return m;
	}
	return NULL;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : -1.0;
}

int main(int argc, char **argv)
{
	char repo[] = "/tmp/qv-prec-XXXXXX", real[4096], brk[4096], path[4096], out[16384];
	struct qvt_daemon d;

	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	if (!cpu_has(" avx512_bf16")) {
		printf("SKIP: no avx512_bf16\n");
		return QVT_SKIP;
	}
	snprintf(path, sizeof(path), "%s/../trade-mlp.onnx", argv[2]);
	if (!realpath(path, real))
		qvt_die("realpath %s: %m", path);
	snprintf(path, sizeof(path), "%s/../bf16-break.onnx", argv[2]);
	if (!realpath(path, brk))
		qvt_die("realpath %s: %m", path);
	if (!mkdtemp(repo))
		qvt_die("mkdtemp: %m");
	put_version(repo, "trade", 1, real, "{\"precision\": \"bf16\", \"max_batch\": 64}");
	put_version(repo, "brk", 1, brk, "{\"precision\": \"bf16\", \"tolerance\": {\"abs\": 0.01}}");
	if (qvt_daemon_start(&d, argv[1], repo, NULL) < 0)
		qvt_die("quiverd did not start");

	if (log_has(&d, "model trade: version 1 serves bf16 (bf16 asked; guard on 256 generated rows", NULL) != 1)
		qvt_fail("the log does not say trade/1 serves bf16 with the guard's error");
	if (log_has(&d, "model brk: version 1 is served in fp32: bf16 error on 256 golden rows",
		    "exceeds the tolerance") != 1)
		qvt_fail("the log does not say why brk/1 is served in fp32");

	cJSON *j = qvt_ctl_json(argv[4], d.sock, "models", NULL);
	const cJSON *t = entry(j, "trade", 1), *b = entry(j, "brk", 1);
	if (!t || strcmp(str(t, "precision"), "bf16") || !(num(t, "max_abs_error") > 0) ||
	    !(num(t, "max_abs_error") <= 0.01))
		qvt_fail("models: trade/1 precision '%s', max_abs_error %g", t ? str(t, "precision") : "?",
			 t ? num(t, "max_abs_error") : -1.0);
	if (!b || strcmp(str(b, "precision"), "fp32") || strcmp(str(b, "precision_requested"), "bf16") ||
	    !strstr(str(b, "precision_note"), "exceeds the tolerance") || !(num(b, "max_abs_error") > 0.01))
		qvt_fail("models: brk/1 is not shown kept in fp32 with its reason");
	cJSON_Delete(j);
	{
		const char *av[] = { argv[4], "--socket", d.sock, "models", NULL };
		int ws;
		if (qvt_run(av, out, sizeof(out), &ws) < 0 || !strstr(out, "fp32 (bf16 asked)") ||
		    !strstr(out, "PRECISION"))
			qvt_fail("quiverctl models does not show brk's precision:\n%s", out);
	}

	/* an fp32 version as the shadow of the bf16 primary */
	put_version(repo, "trade", 2, real, NULL);
	j = qvt_ctl_json(argv[4], d.sock, "load", "trade", "2", "--precision", "fp32", NULL);
	cJSON_Delete(j);
	j = qvt_ctl_json(argv[4], d.sock, "models", NULL);
	t = entry(j, "trade", 2);
	if (!t || strcmp(str(t, "precision"), "fp32") || strcmp(str(t, "precision_requested"), "fp32"))
		qvt_fail("load --precision fp32 did not override config.json's bf16");
	cJSON_Delete(j);
	j = qvt_ctl_json(argv[4], d.sock, "shadow", "trade", "2", NULL);
	cJSON_Delete(j);

	qv_client *c = qvt_connect(d.sock, "e2e-prec", 4);
	struct qv_model_desc md;
	if (qv_model_lookup(c, "trade", &md) < 0)
		qvt_die("lookup trade");
	float in[32], y[1];
	for (int i = 0; i < 200; i++) {
		for (int k = 0; k < 32; k++)
			in[k] = (float)(((i * 37 + k * 11) % 23) - 11) / 7.0f;
		struct qv_request rq = { .handle = md.handle, .rows = 1, .input = in, .request_id = (uint64_t)i };
		struct qv_result res;
		if (qv_infer(c, &rq, y, 1, 2000, &res) < 0 || res.status != QV_OK)
			qvt_fail("request %d failed", i);
	}
	qv_close(c);
	double maxd = -1, shadow = 0;
	for (int tries = 0; tries < 50 && shadow < 200; tries++) {
		j = qvt_ctl_json(argv[4], d.sock, "stats", NULL);
		const cJSON *r, *v;
		cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "routes"))
			cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(r, "versions"))
				if (num(v, "version") == 2 && !strcmp(str(r, "name"), "trade")) {
					shadow = num(v, "shadow");
					maxd = num(v, "shadow_max_abs_diff");
				}
		cJSON_Delete(j);
		if (shadow < 200)
			qvt_sleep_ms(20);
	}
	printf("shadow fp32 vs bf16 primary: %.0f compared, max |diff| %g\n", shadow, maxd);
	if (shadow < 1 || !(maxd > 0) || !(maxd <= 0.01))
		qvt_fail("stats: shadow %g, shadow_max_abs_diff %g; want > 0 and within 0.01", shadow, maxd);

	snprintf(out, sizeof(out), "rm -rf %s", repo);
	if (system(out) != 0)
		qvt_fail("cleanup of %s failed", repo);
	return qvt_finish(&d);
}
