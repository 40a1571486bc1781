/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Repository scanning and config.json parsing, on a repository built in a
 * fresh temporary directory: highest numeric version wins, non-numeric
 * and empty versions are ignored, a broken model is reported and does not
 * hide the others, entries come sorted by name.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "repo.h"

static int failures;

#define CHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

static char root[256];

static void mkdirs(const char *rel)
{
	char p[1024], *s;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	for (s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	mkdir(p, 0755);
}

static void put(const char *rel, const char *text)
{
	char p[1024];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	f = fopen(p, "w");
	if (!f) {
		perror(p);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void test_config(void)
{
	struct qv_model_config c;
	char err[256];
	const char *s;

	s = "{\"max_batch\": 64, \"default_deadline_us\": 500, \"fallback\": {\"x\": 1}}";
	CHECK(qv_config_parse(s, strlen(s), &c, err, sizeof(err)) == 0);
	CHECK(c.max_batch == 64 && c.default_deadline_us == 500);

	s = "{}";
	CHECK(qv_config_parse(s, strlen(s), &c, err, sizeof(err)) == 0);
	CHECK(c.max_batch == 0 && c.default_deadline_us == 0);
	CHECK(c.max_queue_delay_us == 0 && c.preferred_batch == 0);

	s = "{\"max_batch\": 64, \"max_queue_delay_us\": 200, \"preferred_batch\": 32}";
	CHECK(qv_config_parse(s, strlen(s), &c, err, sizeof(err)) == 0);
	CHECK(c.max_queue_delay_us == 200 && c.preferred_batch == 32 && c.max_batch == 64);

	/* Each bad batching key is named in its message. */
	const struct {
		const char *text, *word;
	} badq[] = {
		{ "{\"max_queue_delay_us\": -1}", "max_queue_delay_us" },
		{ "{\"max_queue_delay_us\": 1000001}", "max_queue_delay_us" },
		{ "{\"max_queue_delay_us\": \"5\"}", "max_queue_delay_us" },
		{ "{\"preferred_batch\": 0}", "preferred_batch" },
		{ "{\"preferred_batch\": 2.5}", "preferred_batch" },
		{ "{\"max_batch\": 8, \"preferred_batch\": 16}", "over max_batch" },
		{ "{\"precision\": \"fp16\"}", "precision" },
		{ "{\"precision\": 1}", "precision" },
		{ "{\"tolerance\": -0.1}", "tolerance" },
		{ "{\"tolerance\": \"1e-2\"}", "tolerance" },
		{ "{\"tolerance\": {\"abs\": -1}}", "tolerance.abs" },
		{ "{\"tolerance\": {\"top1\": 1.5}}", "tolerance.top1" },
		{ "{\"tolerance\": {\"absolute\": 0.1}}", "unknown key" },
	};
	for (size_t i = 0; i < sizeof(badq) / sizeof(badq[0]); i++) {
		err[0] = '\0';
		CHECK(qv_config_parse(badq[i].text, strlen(badq[i].text), &c, err, sizeof(err)) ==
		      -EINVAL);
		CHECK(strstr(err, badq[i].word) != NULL);
	}

	s = "{\"precision\": \"int8\", \"tolerance\": {\"abs\": 0.05, \"rel\": 0.01, \"top1\": 0.98}}";
	CHECK(qv_config_parse(s, strlen(s), &c, err, sizeof(err)) == 0 && c.precision == 2 &&
	      c.tol_abs == 0.05f && c.tol_rel == 0.01f && c.tol_top1 == 0.98f);
	s = "{\"precision\": \"auto\", \"tolerance\": 0.02}";
	CHECK(qv_config_parse(s, strlen(s), &c, err, sizeof(err)) == 0 && c.precision == 3 &&
	      c.tol_abs == 0.02f && c.tol_rel == 0.0f);

	s = "{\"max_batch\": 32768}";
	CHECK(qv_config_parse(s, strlen(s), &c, err, sizeof(err)) == 0 && c.max_batch == 32768);
	s = "{\"max_batch\": null}";
	CHECK(qv_config_parse(s, strlen(s), &c, err, sizeof(err)) == 0 && c.max_batch == 0);

	const char *bad[] = {
		"{\"max_batch\": 0}", "{\"max_batch\": -1}", "{\"max_batch\": 1.5}",
		"{\"max_batch\": \"8\"}", "{\"max_batch\": 1e12}", "{\"max_batch\": 32769}", "{\"default_deadline_us\": -5}",
		"[1,2]", "{\"max_batch\": 8", "", "nul\0l",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK(qv_config_parse(bad[i], strlen(bad[i]), &c, err, sizeof(err)) == -EINVAL);
		CHECK(strncmp(err, "config.json:", 12) == 0);
	}
	/* Length is honoured: the text past len is not read. */
	s = "{\"max_batch\": 16}GARBAGE";
	CHECK(qv_config_parse(s, 17, &c, err, sizeof(err)) == 0 && c.max_batch == 16);
}

static void test_names(void)
{
	CHECK(qv_repo_name_valid("trade-mlp"));
	CHECK(qv_repo_name_valid("a.b_c-1"));
	CHECK(!qv_repo_name_valid(""));
	CHECK(!qv_repo_name_valid(".hidden"));
	CHECK(!qv_repo_name_valid("sp ace"));
	CHECK(!qv_repo_name_valid("x/y"));
	CHECK(qv_repo_name_valid("012345678901234567890123456789012345678901234567890123456789012"));
	CHECK(!qv_repo_name_valid("0123456789012345678901234567890123456789012345678901234567890123"));
}

static const struct qv_repo_entry *find(const struct qv_repo_entry *e, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].name, name) == 0)
			return &e[i];
	return NULL;
}

static void test_scan(void)
{
	struct qv_repo_entry *e = NULL;
	const struct qv_repo_entry *x;
	size_t n = 0, skipped = 1;
	char want[1024];

	snprintf(root, sizeof(root), "/tmp/qv-test-repo-XXXXXX");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		exit(1);
	}
	/* zeta: versions 1, 2, 10 (numeric, not lexical, order), junk dirs. */
	mkdirs("zeta/1"); put("zeta/1/model.onnx", "x");
	mkdirs("zeta/2"); put("zeta/2/model.onnx", "x");
	mkdirs("zeta/10"); put("zeta/10/model.onnx", "x");
	mkdirs("zeta/latest"); put("zeta/latest/model.onnx", "x");
	mkdirs("zeta/07");
	put("zeta/config.json", "{\"max_batch\": 32, \"default_deadline_us\": 250}");
	/* alpha: xgboost json. */
	mkdirs("alpha/3"); put("alpha/3/model.json", "{}");
	/* broken: highest version has no model file. */
	mkdirs("broken/1"); put("broken/1/model.onnx", "x");
	mkdirs("broken/2");
	/* noversions */
	mkdirs("noversions/abc");
	/* badconfig */
	mkdirs("badconfig/1"); put("badconfig/1/model.onnx", "x");
	put("badconfig/config.json", "{\"max_batch\": \"lots\"}");
	/* fifoconfig: a FIFO planted as config.json is refused, never opened
	 * for a blocking read (the scan would hang with no writer). */
	mkdirs("fifoconfig/1"); put("fifoconfig/1/model.onnx", "x");
	snprintf(want, sizeof(want), "%s/fifoconfig/config.json", root);
	CHECK(mkfifo(want, 0600) == 0);
	/* a stray file and a hidden dir at top level are not models. */
	put("README", "hello");
	mkdirs(".git/1");

	CHECK(qv_repo_scan(root, &e, &n, &skipped) == 0 && skipped == 0);
	CHECK(n == 6);
	for (size_t i = 1; i < n; i++)
		CHECK(strcmp(e[i - 1].name, e[i].name) < 0);

	x = find(e, n, "zeta");
	CHECK(x && x->ok && x->version == 10 && x->cfg.max_batch == 32 &&
	      x->cfg.default_deadline_us == 250);
	snprintf(want, sizeof(want), "%s/zeta/10/model.onnx", root);
	CHECK(x && strcmp(x->path, want) == 0);

	x = find(e, n, "alpha");
	CHECK(x && x->ok && x->version == 3 && x->cfg.max_batch == 0);
	snprintf(want, sizeof(want), "%s/alpha/3/model.json", root);
	CHECK(x && strcmp(x->path, want) == 0);

	x = find(e, n, "broken");
	CHECK(x && !x->ok && x->version == 2 && strstr(x->error, "version 2"));

	x = find(e, n, "noversions");
	CHECK(x && !x->ok && strstr(x->error, "no numeric version"));

	x = find(e, n, "badconfig");
	CHECK(x && !x->ok && strstr(x->error, "max_batch"));

	x = find(e, n, "fifoconfig");
	CHECK(x && !x->ok && strstr(x->error, "config.json: not a regular file"));
	free(e);

	{
		char *buf = NULL;
		size_t len = 0;
		snprintf(want, sizeof(want), "%s/fifoconfig/config.json", root);
		CHECK(qv_read_regular(AT_FDCWD, want, 100, &buf, &len) == -EINVAL);
		snprintf(want, sizeof(want), "%s/zeta", root);
		CHECK(qv_read_regular(AT_FDCWD, want, 100, &buf, &len) == -EINVAL);
		snprintf(want, sizeof(want), "%s/zeta/config.json", root);
		CHECK(qv_read_regular(AT_FDCWD, want, 10, &buf, &len) == -EFBIG);
		CHECK(qv_read_regular(AT_FDCWD, want, 1000, &buf, &len) == 0 && buf &&
		      len == strlen(buf) && strstr(buf, "\"max_batch\": 32"));
		free(buf);
		snprintf(want, sizeof(want), "%s/nothing", root);
		CHECK(qv_read_regular(AT_FDCWD, want, 1000, &buf, &len) == -ENOENT);
	}

	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);

	CHECK(qv_repo_scan("/nonexistent/qv-repo", &e, &n, NULL) == -ENOENT);

	/* More model directories than the limit: the first QV_REPO_MAX_MODELS
	 * in name order are served, the rest counted, none refuses the others. */
	snprintf(root, sizeof(root), "/tmp/qv-test-repo-XXXXXX");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		exit(1);
	}
	for (unsigned i = 0; i < QV_REPO_MAX_MODELS + 6; i++) {
		char rel[64];
		/* created in descending order so readdir's order is not the answer */
		snprintf(rel, sizeof(rel), "m%05u/1", QV_REPO_MAX_MODELS + 5 - i);
		mkdirs(rel);
		snprintf(rel, sizeof(rel), "m%05u/1/model.onnx", QV_REPO_MAX_MODELS + 5 - i);
		put(rel, "x");
	}
	e = NULL;
	CHECK(qv_repo_scan(root, &e, &n, &skipped) == 0);
	CHECK(n == QV_REPO_MAX_MODELS && skipped == 6);
	CHECK(e && strcmp(e[0].name, "m00000") == 0 && e[0].ok);
	snprintf(want, sizeof(want), "m%05u", QV_REPO_MAX_MODELS - 1);
	CHECK(e && strcmp(e[n - 1].name, want) == 0 && e[n - 1].ok);
	free(e);
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	test_config();
	test_names();
	test_scan();
	if (failures)
		return 1;
	printf("repo: ok\n");
	return 0;
}
