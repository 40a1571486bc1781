/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ens_config.c - qv_ens_config_parse: the "ensemble" object of a
 * config.json onto struct qv_ens_config, and errors that name the step.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "repo.h"

static int failures;

#define CHECK(c)                                                                   \
	do {                                                                       \
		if (!(c)) {                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			failures++;                                                \
		}                                                                  \
	} while (0)

static struct qv_ens_config cfg;

static int parse(const char *text, char *err, size_t len)
{
	memset(&cfg, 0, sizeof(cfg));
	err[0] = '\0';
	return qv_ens_config_parse(text, strlen(text), &cfg, err, len);
}

/* Parsing fails with -EINVAL and the message contains want. */
static void bad(const char *text, const char *want)
{
	char err[QV_REPO_ERR_MAX];
	int r = parse(text, err, sizeof(err));

	if (r != -EINVAL || !strstr(err, want)) {
		fprintf(stderr, "%s\n  -> %d \"%s\", want -EINVAL with \"%s\"\n", text, r, err, want);
		failures++;
	}
}

/* A version directory with only a config.json is scanned as an ensemble. */
static void test_scan(void)
{
	char dir[] = "/tmp/qv-ens-scan-XXXXXX", p[256];
	struct qv_repo_entry *e = NULL;
	size_t n = 0;
	FILE *f;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		failures++;
		return;
	}
	snprintf(p, sizeof(p), "%s/ens", dir);
	CHECK(mkdir(p, 0700) == 0);
	snprintf(p, sizeof(p), "%s/ens/3", dir);
	CHECK(mkdir(p, 0700) == 0);
	snprintf(p, sizeof(p), "%s/ens/3/config.json", dir);
	f = fopen(p, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("{\"ensemble\": {\"steps\": [{\"name\": \"a\", \"model\": \"m\"}]}}", f);
		fclose(f);
	}
	CHECK(qv_repo_scan(dir, &e, &n, NULL) == 0);
	CHECK(n == 1 && e && e->ok && e->ensemble && e->version == 3);
	CHECK(e && strcmp(e->path, p) == 0);
	free(e);
	unlink(p);
	snprintf(p, sizeof(p), "%s/ens/3", dir);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/ens", dir);
	rmdir(p);
	rmdir(dir);
}

int main(void)
{
	test_scan();
	char err[QV_REPO_ERR_MAX];

	CHECK(parse("{\"ensemble\": {\"steps\": ["
		    "{\"name\": \"ta\", \"model\": \"tower-a\", \"version\": 2, \"inputs\": [\"$input\"]},"
		    "{\"name\": \"g\", \"model\": \"gate\"},"
		    "{\"name\": \"head\", \"model\": \"head\", \"inputs\": [\"ta\", \"g\"],"
		    " \"gate\": {\"step\": \"g\", \"op\": \"<\", \"threshold\": 0.25, \"else\": -1}}],"
		    " \"output\": \"head\"}, \"max_batch\": 8}", err, sizeof(err)) == 0);
	CHECK(cfg.n_steps == 3 && strcmp(cfg.output, "head") == 0);
	CHECK(strcmp(cfg.steps[0].name, "ta") == 0 && strcmp(cfg.steps[0].model, "tower-a") == 0);
	CHECK(cfg.steps[0].version == 2 && cfg.steps[0].n_inputs == 1);
	CHECK(strcmp(cfg.steps[0].inputs[0], "$input") == 0 && cfg.steps[0].gate_op == 0);
	CHECK(cfg.steps[1].version == 0 && cfg.steps[1].n_inputs == 0);
	CHECK(cfg.steps[2].n_inputs == 2 && strcmp(cfg.steps[2].inputs[1], "g") == 0);
	CHECK(cfg.steps[2].gate_op == 2 && strcmp(cfg.steps[2].gate_step, "g") == 0);
	CHECK(cfg.steps[2].threshold == 0.25f && cfg.steps[2].else_value == -1.0f);

	/* Default op ">=", no output: the last step. */
	CHECK(parse("{\"ensemble\": {\"steps\": [{\"name\": \"a\", \"model\": \"m\","
		    " \"gate\": {\"step\": \"a\", \"threshold\": 1}}]}}", err, sizeof(err)) == 0);
	CHECK(cfg.steps[0].gate_op == 1 && cfg.output[0] == '\0');

	/* Not an ensemble. */
	CHECK(parse("{\"max_batch\": 4}", err, sizeof(err)) == -ENOENT);

	bad("[1]", "not a JSON object");
	bad("{\"ensemble\": {\"steps\": []}}", "\"steps\" must be a list");
	bad("{\"ensemble\": {\"steps\": [{\"model\": \"m\"}]}}", "step 0: needs a \"name\"");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"s1\"}]}}", "step 's1': needs a valid \"model\"");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"s1\", \"model\": \"../x\"}]}}", "step 's1'");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"s2\", \"model\": \"m\", \"version\": -1}]}}",
	    "step 's2': version");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"s3\", \"model\": \"m\", \"inputs\": [1]}]}}",
	    "step 's3': input 0");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"s4\", \"model\": \"m\", \"inputs\":"
	    " [\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}]}}", "step 's4': inputs");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"s5\", \"model\": \"m\", \"gate\":"
	    " {\"step\": \"x\", \"op\": \"==\", \"threshold\": 1}}]}}", "step 's5': gate op");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"s6\", \"model\": \"m\", \"gate\":"
	    " {\"step\": \"x\"}}]}}", "step 's6': gate threshold");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"s7\", \"model\": \"m\", \"gate\": {}}]}}",
	    "step 's7': gate needs");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"a\", \"model\": \"m\"}], \"output\": 3}}",
	    "\"output\" must be");
	/* Named tensors: "inputs" objects, "outputs" object, order kept. */
	CHECK(parse("{\"ensemble\": {\"steps\": ["
		    "{\"name\": \"gbdt\", \"model\": \"ctr-mlp\", \"inputs\": {\"x\": \"$dense\"}},"
		    "{\"name\": \"head\", \"model\": \"dlrm\", \"inputs\": {\"dense\": \"gbdt\","
		    " \"ids_a\": \"$user_id\", \"x\": \"gbdt.h\"}}],"
		    " \"outputs\": {\"p\": \"head.prob\", \"f\": \"gbdt\"}}}", err, sizeof(err)) == 0);
	CHECK(cfg.named && cfg.n_steps == 2 && cfg.n_outputs == 2);
	CHECK(cfg.steps[0].n_binds == 1 && strcmp(cfg.steps[0].binds[0].name, "x") == 0 &&
	      strcmp(cfg.steps[0].binds[0].source, "$dense") == 0 && cfg.steps[0].n_inputs == 0);
	CHECK(cfg.steps[1].n_binds == 3 && strcmp(cfg.steps[1].binds[1].name, "ids_a") == 0 &&
	      strcmp(cfg.steps[1].binds[1].source, "$user_id") == 0 &&
	      strcmp(cfg.steps[1].binds[2].source, "gbdt.h") == 0);
	CHECK(strcmp(cfg.outputs[0].name, "p") == 0 && strcmp(cfg.outputs[0].source, "head.prob") == 0 &&
	      strcmp(cfg.outputs[1].name, "f") == 0 && strcmp(cfg.outputs[1].source, "gbdt") == 0);
	/* no "outputs": the last step's */
	CHECK(parse("{\"ensemble\": {\"steps\": [{\"name\": \"a\", \"model\": \"m\","
		    " \"inputs\": {\"x\": \"$x\"}}]}}", err, sizeof(err)) == 0);
	CHECK(cfg.named && cfg.n_outputs == 0 && cfg.steps[0].n_binds == 1);
	/* the old form is not named */
	CHECK(parse("{\"ensemble\": {\"steps\": [{\"name\": \"a\", \"model\": \"m\"}]}}", err,
		    sizeof(err)) == 0 && !cfg.named);

	bad("{\"ensemble\": {\"steps\": [{\"name\": \"n1\", \"model\": \"m\", \"inputs\": {}}]}}",
	    "step 'n1': empty inputs");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"n2\", \"model\": \"m\", \"inputs\": {\"x\": 1}}]}}",
	    "step 'n2': input 'x' must be a source");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"n3\", \"model\": \"m\", \"inputs\": {\"x\": \"\"}}]}}",
	    "step 'n3': input 'x'");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"n4\", \"model\": \"m\", \"inputs\": {\"\": \"$x\"}}]}}",
	    "step 'n4': input #0 needs a name");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"n5\", \"model\": \"m\", \"inputs\":"
	    " {\"x\": \"$a\", \"x\": \"$b\"}}]}}", "step 'n5': input 'x' given twice");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"a\", \"model\": \"m\", \"inputs\": {\"x\": \"$x\"}},"
	    " {\"name\": \"n6\", \"model\": \"m\", \"inputs\": [\"a\"]}]}}", "step 'n6': \"inputs\" must be an object");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"a\", \"model\": \"m\", \"inputs\": {\"x\": \"$x\"}}],"
	    " \"output\": \"a\"}}", "use \"outputs\"");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"a\", \"model\": \"m\"}], \"outputs\": [\"a\"]}}",
	    "\"outputs\" must be an object");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"n7\", \"model\": \"m\"}], \"outputs\": {\"p\": \"n7\"}}}",
	    "step 'n7': \"inputs\" must be an object");
	bad("{\"ensemble\": {\"steps\": [{\"name\": \"a\", \"model\": \"m\", \"inputs\": {\"x\": \"$x\"}}],"
	    " \"outputs\": {\"p\": 2}}}", "ensemble: output 'p' must be a source");
	{
		/* 17 binds: one more than a model has tensors */
		char big[2048];
		size_t k = (size_t)snprintf(big, sizeof(big),
					    "{\"ensemble\": {\"steps\": [{\"name\": \"n8\", \"model\": \"m\", \"inputs\": {");
		for (int i = 0; i < 17; i++)
			k += (size_t)snprintf(big + k, sizeof(big) - k, "%s\"t%d\": \"$x%d\"", i ? ", " : "", i, i);
		snprintf(big + k, sizeof(big) - k, "}}]}}");
		bad(big, "step 'n8': more than 16 inputs");
	}
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
