/* SPDX-License-Identifier: Apache-2.0 */
/*
 * repo.c - scanning the model repository and parsing config.json.
 */
#include "repo.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_BYTES (1u << 20)

/* A JSON number that is a non-negative integer not above max. */
static int json_uint(const cJSON *v, uint64_t max, uint64_t *ret)
{
	double d;

	if (!cJSON_IsNumber(v))
		return -EINVAL;
	d = v->valuedouble;
	if (!(d >= 0.0) || d > (double)max || d != (double)(uint64_t)d)
		return -EINVAL;
	*ret = (uint64_t)d;
	return 0;
}

int qv_config_parse(const char *text, size_t len, struct qv_model_config *ret_cfg, char *err,
		    size_t err_len)
{
	struct qv_model_config cfg = { 0 };
	const cJSON *v;
	cJSON *root;
	uint64_t u;
	int r = 0;

	root = cJSON_ParseWithLength(text, len);
	if (!root) {
		snprintf(err, err_len, "config.json: not valid JSON");
		return -EINVAL;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(err, err_len, "config.json: top level is not an object");
		r = -EINVAL;
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "max_batch");
	if (v && !cJSON_IsNull(v)) {
		if (json_uint(v, QV_REPO_MAX_BATCH_LIMIT, &u) < 0 || u == 0) {
			snprintf(err, err_len, "config.json: max_batch must be an integer in 1..%u",
				 QV_REPO_MAX_BATCH_LIMIT);
			r = -EINVAL;
			goto out;
		}
		cfg.max_batch = (uint32_t)u;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "default_deadline_us");
	if (v && !cJSON_IsNull(v)) {
		/* An hour is far beyond any sensible deadline; it bounds the ns math. */
		if (json_uint(v, 3600ull * 1000000ull, &u) < 0) {
			snprintf(err, err_len,
				 "config.json: default_deadline_us must be an integer in 0..3600000000");
			r = -EINVAL;
			goto out;
		}
		cfg.default_deadline_us = u;
	}
	*ret_cfg = cfg;
out:
	cJSON_Delete(root);
	return r;
}

int qv_repo_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= QV_REPO_NAME_MAX || name[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* "17" -> 17; anything but 1..UINT32_MAX in plain decimal is not a version. */
static int parse_version(const char *s, uint32_t *ret)
{
	unsigned long long v = 0;

	if (!*s || *s == '0')
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long long)(*s - '0');
		if (v > UINT32_MAX)
			return -ERANGE;
	}
	*ret = (uint32_t)v;
	return 0;
}

static int is_dir_at(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, 0) == 0 && S_ISDIR(st.st_mode);
}

static int is_file_at(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, 0) == 0 && S_ISREG(st.st_mode);
}

static int read_config(int mdfd, struct qv_repo_entry *e)
{
	char *buf;
	ssize_t n;
	size_t len = 0;
	int fd, r;

	fd = openat(mdfd, "config.json", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(e->error, sizeof(e->error), "config.json: %s", strerror(errno));
		return -errno;
	}
	buf = malloc(CONFIG_MAX_BYTES);
	if (!buf) {
		close(fd);
		snprintf(e->error, sizeof(e->error), "config.json: out of memory");
		return -ENOMEM;
	}
	while (len < CONFIG_MAX_BYTES && (n = read(fd, buf + len, CONFIG_MAX_BYTES - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (len == CONFIG_MAX_BYTES) {
		free(buf);
		snprintf(e->error, sizeof(e->error), "config.json: larger than %u bytes",
			 CONFIG_MAX_BYTES);
		return -EFBIG;
	}
	r = qv_config_parse(buf, len, &e->cfg, e->error, sizeof(e->error));
	free(buf);
	return r;
}

/* Fills e for the model directory `name` of the repository open at rdfd. */
static void scan_model(const char *dir, int rdfd, const char *name, struct qv_repo_entry *e)
{
	struct dirent *de;
	const char *file = NULL;
	char vname[16];
	DIR *d;
	int mdfd, vdfd;

	snprintf(e->name, sizeof(e->name), "%.63s", name);
	if (!qv_repo_name_valid(name)) {
		snprintf(e->error, sizeof(e->error),
			 "invalid model name (use 1..63 of [A-Za-z0-9._-])");
		return;
	}
	mdfd = openat(rdfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mdfd < 0) {
		snprintf(e->error, sizeof(e->error), "%s", strerror(errno));
		return;
	}
	d = fdopendir(mdfd);
	if (!d) {
		snprintf(e->error, sizeof(e->error), "%s", strerror(errno));
		close(mdfd);
		return;
	}
	while ((de = readdir(d))) {
		uint32_t v;
		if (parse_version(de->d_name, &v) == 0 && v > e->version &&
		    is_dir_at(dirfd(d), de->d_name))
			e->version = v;
	}
	if (e->version == 0) {
		snprintf(e->error, sizeof(e->error), "no numeric version directory");
		goto out;
	}
	snprintf(vname, sizeof(vname), "%u", e->version);
	vdfd = openat(dirfd(d), vname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (vdfd >= 0) {
		if (is_file_at(vdfd, "model.onnx"))
			file = "model.onnx";
		else if (is_file_at(vdfd, "model.json"))
			file = "model.json";
		close(vdfd);
	}
	if (!file) {
		snprintf(e->error, sizeof(e->error), "version %u: no model.onnx or model.json",
			 e->version);
		goto out;
	}
	if ((size_t)snprintf(e->path, sizeof(e->path), "%s/%s/%s/%s", dir, name, vname, file) >=
	    sizeof(e->path)) {
		snprintf(e->error, sizeof(e->error), "path too long");
		goto out;
	}
	if (read_config(dirfd(d), e) < 0)
		goto out;
	e->ok = 1;
out:
	closedir(d);
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct qv_repo_entry *)a)->name,
		      ((const struct qv_repo_entry *)b)->name);
}

int qv_repo_scan(const char *dir, struct qv_repo_entry **ret_entries, size_t *ret_n)
{
	struct qv_repo_entry *ents = NULL;
	struct dirent *de;
	size_t n = 0, cap = 0;
	DIR *d;
	int r = 0;

	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !is_dir_at(dirfd(d), de->d_name))
			continue;
		if (n == QV_REPO_MAX_MODELS) {
			r = -E2BIG;
			goto fail;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct qv_repo_entry *p = realloc(ents, ncap * sizeof(*ents));
			if (!p) {
				r = -ENOMEM;
				goto fail;
			}
			ents = p;
			cap = ncap;
		}
		memset(&ents[n], 0, sizeof(ents[n]));
		scan_model(dir, dirfd(d), de->d_name, &ents[n]);
		n++;
	}
	closedir(d);
	if (n)
		qsort(ents, n, sizeof(*ents), entry_cmp);
	*ret_entries = ents;
	*ret_n = n;
	return 0;
fail:
	closedir(d);
	free(ents);
	return r;
}
