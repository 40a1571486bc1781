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

int qv_config_precision(const char *s)
{
	/* numbered as the runtime's enum qv_precision (qv_model.h); this
	 * library links no runtime, routes.c hands the number on */
	static const char *const names[] = { "fp32", "bf16", "int8", "auto" };
	for (int i = 0; i < 4; i++)
		if (s && strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* A tolerance: >= 0 and finite (top1: a fraction, 0..1). */
static int tol_value(const cJSON *v, double max, float *ret)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0.0) || !(v->valuedouble <= max))
		return -EINVAL;
	*ret = (float)v->valuedouble;
	return 0;
}

/* "tolerance": 0.01, or {"abs": 0.01, "rel": 0.001, "top1": 0.99} */
static int parse_tolerance(const cJSON *v, struct qv_model_config *cfg, char *err, size_t err_len)
{
	static const char *const keys[] = { "abs", "rel", "top1" };
	float *dst[] = { &cfg->tol_abs, &cfg->tol_rel, &cfg->tol_top1 };
	const cJSON *k;

	if (cJSON_IsNumber(v)) {
		if (tol_value(v, 1e30, &cfg->tol_abs) == 0)
			return 0;
	} else if (cJSON_IsObject(v)) {
		cJSON_ArrayForEach(k, v) {
			int found = 0;
			for (int i = 0; i < 3; i++) {
				if (strcmp(k->string, keys[i]) != 0)
					continue;
				found = 1;
				if (tol_value(k, i == 2 ? 1.0 : 1e30, dst[i]) < 0) {
					snprintf(err, err_len,
						 "config.json: tolerance.%s must be a number %s", keys[i],
						 i == 2 ? "in 0..1" : ">= 0");
					return -EINVAL;
				}
			}
			if (!found) {
				snprintf(err, err_len,
					 "config.json: tolerance has an unknown key \"%.40s\" (abs, rel, top1)",
					 k->string);
				return -EINVAL;
			}
		}
		return 0;
	}
	snprintf(err, err_len,
		 "config.json: tolerance must be a number >= 0 or an object {\"abs\", \"rel\", \"top1\"}");
	return -EINVAL;
}

/* "log": {"sample": 0.01, "dir": "...", "max_bytes": N, "keep": K}; every key is checked. */
static int parse_log(const cJSON *v, struct qv_model_config *cfg, char *err, size_t err_len)
{
	const cJSON *k;
	uint64_t u;

	if (!cJSON_IsObject(v)) {
		snprintf(err, err_len,
			 "config.json: log must be an object {\"sample\", \"dir\", \"max_bytes\", \"keep\"}");
		return -EINVAL;
	}
	cfg->log_set = 1;
	cJSON_ArrayForEach(k, v) {
		if (strcmp(k->string, "sample") == 0) {
			if (!cJSON_IsNumber(k) || !(k->valuedouble >= 0.0) || !(k->valuedouble <= 1.0)) {
				snprintf(err, err_len, "config.json: log.sample must be a number in 0..1");
				return -EINVAL;
			}
			cfg->log_sample = k->valuedouble;
		} else if (strcmp(k->string, "dir") == 0) {
			if (!cJSON_IsString(k) || !k->valuestring[0] ||
			    strlen(k->valuestring) >= sizeof(cfg->log_dir)) {
				snprintf(err, err_len,
					 "config.json: log.dir must be a directory name (1..%zu bytes)",
					 sizeof(cfg->log_dir) - 1);
				return -EINVAL;
			}
			snprintf(cfg->log_dir, sizeof(cfg->log_dir), "%s", k->valuestring);
		} else if (strcmp(k->string, "max_bytes") == 0) {
			if (json_uint(k, 1ull << 40, &u) < 0 || u < 4096) {
				snprintf(err, err_len,
					 "config.json: log.max_bytes must be an integer in 4096..1099511627776");
				return -EINVAL;
			}
			cfg->log_max_bytes = u;
		} else if (strcmp(k->string, "keep") == 0) {
			if (json_uint(k, 10000, &u) < 0 || u == 0) {
				snprintf(err, err_len, "config.json: log.keep must be an integer in 1..10000");
				return -EINVAL;
			}
			cfg->log_keep = (uint32_t)u;
		} else {
			snprintf(err, err_len,
				 "config.json: log has an unknown key \"%.40s\" (sample, dir, max_bytes, keep)",
				 k->string);
			return -EINVAL;
		}
	}
	if (cfg->log_sample > 0 && !cfg->log_dir[0]) {
		snprintf(err, err_len, "config.json: log.sample above 0 needs log.dir");
		return -EINVAL;
	}
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
	v = cJSON_GetObjectItemCaseSensitive(root, "max_queue_delay_us");
	if (v && !cJSON_IsNull(v)) {
		/* A second of waiting is far beyond what a low-latency server should do. */
		if (json_uint(v, 1000000u, &u) < 0) {
			snprintf(err, err_len,
				 "config.json: max_queue_delay_us must be an integer in 0..1000000");
			r = -EINVAL;
			goto out;
		}
		cfg.max_queue_delay_us = (uint32_t)u;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "preferred_batch");
	if (v && !cJSON_IsNull(v)) {
		if (json_uint(v, QV_REPO_MAX_BATCH_LIMIT, &u) < 0 || u == 0) {
			snprintf(err, err_len,
				 "config.json: preferred_batch must be an integer in 1..%u",
				 QV_REPO_MAX_BATCH_LIMIT);
			r = -EINVAL;
			goto out;
		}
		cfg.preferred_batch = (uint32_t)u;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "precision");
	if (v && !cJSON_IsNull(v)) {
		int p = cJSON_IsString(v) ? qv_config_precision(v->valuestring) : -1;
		if (p < 0) {
			snprintf(err, err_len,
				 "config.json: precision must be \"fp32\", \"bf16\", \"int8\" or \"auto\"");
			r = -EINVAL;
			goto out;
		}
		cfg.precision = (uint32_t)p;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "tolerance");
	if (v && !cJSON_IsNull(v) && parse_tolerance(v, &cfg, err, err_len) < 0) {
		r = -EINVAL;
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "log");
	if (v && !cJSON_IsNull(v) && parse_log(v, &cfg, err, err_len) < 0) {
		r = -EINVAL;
		goto out;
	}
	if (cfg.preferred_batch && cfg.max_batch && cfg.preferred_batch > cfg.max_batch) {
		snprintf(err, err_len, "config.json: preferred_batch %u is over max_batch %u",
			 cfg.preferred_batch, cfg.max_batch);
		r = -EINVAL;
		goto out;
	}
	*ret_cfg = cfg;
out:
	cJSON_Delete(root);
	return r;
}

/* Copies a JSON string of 1..63 chars into out[QV_REPO_NAME_MAX]. */
static int json_name(const cJSON *v, char *out)
{
	if (!cJSON_IsString(v) || !v->valuestring[0] ||
	    strlen(v->valuestring) >= QV_REPO_NAME_MAX)
		return -EINVAL;
	snprintf(out, QV_REPO_NAME_MAX, "%s", v->valuestring);
	return 0;
}

static int parse_gate(const cJSON *g, struct qv_ens_step_cfg *st, char *err, size_t err_len)
{
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(g, "op");
	const cJSON *thr = cJSON_GetObjectItemCaseSensitive(g, "threshold");
	const cJSON *els = cJSON_GetObjectItemCaseSensitive(g, "else");

	if (!cJSON_IsObject(g) ||
	    json_name(cJSON_GetObjectItemCaseSensitive(g, "step"), st->gate_step) < 0) {
		snprintf(err, err_len, "step '%s': gate needs a \"step\" name", st->name);
		return -EINVAL;
	}
	if (!op || (cJSON_IsString(op) && strcmp(op->valuestring, ">=") == 0))
		st->gate_op = 1;
	else if (cJSON_IsString(op) && strcmp(op->valuestring, "<") == 0)
		st->gate_op = 2;
	else {
		snprintf(err, err_len, "step '%s': gate op must be \">=\" or \"<\"", st->name);
		return -EINVAL;
	}
	if (!cJSON_IsNumber(thr) || (els && !cJSON_IsNumber(els))) {
		snprintf(err, err_len, "step '%s': gate threshold and else must be numbers",
			 st->name);
		return -EINVAL;
	}
	st->threshold = (float)thr->valuedouble;
	st->else_value = els ? (float)els->valuedouble : 0.0f;
	return 0;
}

/*
 * An object of tensor name -> source string ("inputs" of a step, or the
 * ensemble's "outputs"), in the order written (cJSON keeps it). Names are
 * 1..63 bytes, sources 1..159; which tensors and steps they name is the
 * runtime's to check (qv_ensemble_create), which knows the models.
 */
static int parse_binds(const cJSON *obj, const char *step, const char *what,
		       struct qv_ens_bind_cfg *b, uint32_t *ret_n, char *err, size_t err_len)
{
	const cJSON *it;
	uint32_t n = 0;

	cJSON_ArrayForEach(it, obj) {
		const char *k = it->string;
		if (n == QV_REPO_ENS_MAX_BINDS) {
			snprintf(err, err_len, "%s%s%s: more than %u %ss", step ? "step '" : "ensemble",
				 step ? step : "", step ? "'" : "", QV_REPO_ENS_MAX_BINDS, what);
			return -EINVAL;
		}
		if (!k || !k[0] || strlen(k) >= QV_REPO_TENSOR_MAX) {
			snprintf(err, err_len, "%s%s%s: %s #%u needs a name of 1..%u characters",
				 step ? "step '" : "ensemble", step ? step : "", step ? "'" : "", what, n,
				 QV_REPO_TENSOR_MAX - 1);
			return -EINVAL;
		}
		if (!cJSON_IsString(it) || !it->valuestring[0] ||
		    strlen(it->valuestring) >= QV_REPO_SOURCE_MAX) {
			snprintf(err, err_len,
				 "%s%s%s: %s '%s' must be a source string \"$NAME\", \"STEP\" or \"STEP.TENSOR\" of 1..%u characters",
				 step ? "step '" : "ensemble", step ? step : "", step ? "'" : "", what, k,
				 QV_REPO_SOURCE_MAX - 1);
			return -EINVAL;
		}
		for (uint32_t j = 0; j < n; j++)
			if (strcmp(b[j].name, k) == 0) {
				snprintf(err, err_len, "%s%s%s: %s '%s' given twice",
					 step ? "step '" : "ensemble", step ? step : "", step ? "'" : "", what, k);
				return -EINVAL;
			}
		snprintf(b[n].name, sizeof(b[n].name), "%s", k);
		snprintf(b[n].source, sizeof(b[n].source), "%s", it->valuestring);
		n++;
	}
	if (!n) {
		snprintf(err, err_len, "%s%s%s: empty %ss object", step ? "step '" : "ensemble",
			 step ? step : "", step ? "'" : "", what);
		return -EINVAL;
	}
	*ret_n = n;
	return 0;
}

static int parse_step(const cJSON *o, uint32_t idx, struct qv_ens_step_cfg *st, char *err,
		      size_t err_len)
{
	const cJSON *v, *in;
	uint64_t u;

	if (!cJSON_IsObject(o) || json_name(cJSON_GetObjectItemCaseSensitive(o, "name"),
					    st->name) < 0) {
		snprintf(err, err_len, "step %u: needs a \"name\" of 1..63 characters", idx);
		return -EINVAL;
	}
	if (json_name(cJSON_GetObjectItemCaseSensitive(o, "model"), st->model) < 0 ||
	    !qv_repo_name_valid(st->model)) {
		snprintf(err, err_len, "step '%s': needs a valid \"model\" name", st->name);
		return -EINVAL;
	}
	v = cJSON_GetObjectItemCaseSensitive(o, "version");
	if (v && !cJSON_IsNull(v)) {
		if (json_uint(v, UINT32_MAX, &u) < 0) {
			snprintf(err, err_len, "step '%s': version must be an integer", st->name);
			return -EINVAL;
		}
		st->version = (uint32_t)u;
	}
	v = cJSON_GetObjectItemCaseSensitive(o, "inputs");
	if (cJSON_IsObject(v)) {
		int r = parse_binds(v, st->name, "input", st->binds, &st->n_binds, err, err_len);
		if (r < 0)
			return r;
	} else if (v && !cJSON_IsNull(v)) {
		if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > (int)QV_REPO_ENS_MAX_INPUTS) {
			snprintf(err, err_len, "step '%s': inputs must be a list of at most %u names",
				 st->name, QV_REPO_ENS_MAX_INPUTS);
			return -EINVAL;
		}
		cJSON_ArrayForEach(in, v) {
			if (json_name(in, st->inputs[st->n_inputs]) < 0) {
				snprintf(err, err_len, "step '%s': input %u is not a name", st->name,
					 st->n_inputs);
				return -EINVAL;
			}
			st->n_inputs++;
		}
	}
	v = cJSON_GetObjectItemCaseSensitive(o, "gate");
	if (v && !cJSON_IsNull(v))
		return parse_gate(v, st, err, err_len);
	return 0;
}

int qv_ens_config_parse(const char *text, size_t len, struct qv_ens_config *ret_cfg, char *err,
			size_t err_len)
{
	struct qv_ens_config *cfg = calloc(1, sizeof(*cfg));
	const cJSON *ens, *steps, *o;
	cJSON *root;
	int r = 0;

	if (!cfg)
		return -ENOMEM;
	root = cJSON_ParseWithLength(text, len);
	if (!root || !cJSON_IsObject(root)) {
		snprintf(err, err_len, "config.json: not a JSON object");
		r = -EINVAL;
		goto out;
	}
	ens = cJSON_GetObjectItemCaseSensitive(root, "ensemble");
	if (!ens) {
		r = -ENOENT;
		goto out;
	}
	steps = cJSON_GetObjectItemCaseSensitive(ens, "steps");
	if (!cJSON_IsObject(ens) || !cJSON_IsArray(steps) || cJSON_GetArraySize(steps) < 1 ||
	    cJSON_GetArraySize(steps) > (int)QV_REPO_ENS_MAX_STEPS) {
		snprintf(err, err_len, "ensemble: \"steps\" must be a list of 1..%u steps",
			 QV_REPO_ENS_MAX_STEPS);
		r = -EINVAL;
		goto out;
	}
	cJSON_ArrayForEach(o, steps) {
		r = parse_step(o, cfg->n_steps, &cfg->steps[cfg->n_steps], err, err_len);
		if (r < 0)
			goto out;
		cfg->n_steps++;
	}
	o = cJSON_GetObjectItemCaseSensitive(ens, "output");
	if (o && !cJSON_IsNull(o) && json_name(o, cfg->output) < 0) {
		snprintf(err, err_len, "ensemble: \"output\" must be a step name");
		r = -EINVAL;
		goto out;
	}
	/* named form: any step with an "inputs" object, or "outputs" */
	for (uint32_t i = 0; i < cfg->n_steps; i++)
		cfg->named |= cfg->steps[i].n_binds > 0;
	o = cJSON_GetObjectItemCaseSensitive(ens, "outputs");
	if (o && !cJSON_IsNull(o)) {
		if (!cJSON_IsObject(o)) {
			snprintf(err, err_len, "ensemble: \"outputs\" must be an object of name: \"STEP.TENSOR\"");
			r = -EINVAL;
			goto out;
		}
		r = parse_binds(o, NULL, "output", cfg->outputs, &cfg->n_outputs, err, err_len);
		if (r < 0)
			goto out;
		cfg->named = 1;
	}
	if (cfg->named) {
		if (cfg->output[0]) {
			snprintf(err, err_len, "ensemble: \"output\" with tensors bound by name; use \"outputs\"");
			r = -EINVAL;
			goto out;
		}
		for (uint32_t i = 0; i < cfg->n_steps; i++)
			if (!cfg->steps[i].n_binds) {
				snprintf(err, err_len,
					 "step '%s': \"inputs\" must be an object binding each input tensor by name, as in the other steps",
					 cfg->steps[i].name);
				r = -EINVAL;
				goto out;
			}
	}
	*ret_cfg = *cfg;
out:
	cJSON_Delete(root);
	free(cfg);
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

int qv_read_regular(int dfd, const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
	struct stat st;
	char *buf;
	size_t len = 0;
	int fd, r = 0;

	fd = openat(dfd, path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	/* The size may change under us: read to EOF, never past st_size. */
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[len] = '\0';
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

static int read_config(int mdfd, struct qv_repo_entry *e)
{
	char *buf;
	size_t len;
	int r;

	r = qv_read_regular(mdfd, "config.json", CONFIG_MAX_BYTES, &buf, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		snprintf(e->error, sizeof(e->error), "config.json: %s",
			 r == -EINVAL ? "not a regular file" : r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
		return r;
	}
	r = qv_config_parse(buf, len, &e->cfg, e->error, sizeof(e->error));
	free(buf);
	return r;
}

static int u32_desc(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

int qv_repo_versions_below(const char *dir, const char *name, uint32_t below, uint32_t *ret,
			   size_t cap, size_t *ret_n)
{
	char path[4200];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	if (!qv_repo_name_valid(name))
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		uint32_t v;
		if (parse_version(de->d_name, &v) < 0 || v >= below || !is_dir_at(dirfd(d), de->d_name))
			continue;
		if (n == cap) {
			/* keep the highest cap: replace the lowest kept if v is above it */
			qsort(ret, n, sizeof(*ret), u32_desc);
			if (n && v > ret[n - 1])
				ret[n - 1] = v;
			continue;
		}
		ret[n++] = v;
	}
	closedir(d);
	qsort(ret, n, sizeof(*ret), u32_desc);
	*ret_n = n;
	return 0;
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
		/* An MLflow model directory names its model file in MLmodel
		 * (mlflow.h); it may hold a model.onnx too, so it comes first. */
		if (is_file_at(vdfd, "MLmodel"))
			file = "MLmodel";
		else if (is_file_at(vdfd, "model.onnx"))
			file = "model.onnx";
		else if (is_file_at(vdfd, "model.json"))
			file = "model.json";
		else if (is_file_at(vdfd, "model.ubj"))
			file = "model.ubj";   /* XGBoost's binary JSON */
		else if (is_file_at(vdfd, "config.json")) {
			/* Validated at load, when the steps' models are known. */
			file = "config.json";
			e->ensemble = 1;
		}
		close(vdfd);
	}
	if (!file) {
		snprintf(e->error, sizeof(e->error), "version %u: no MLmodel, model.onnx, model.json, model.ubj or ensemble config.json",
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

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int qv_repo_scan(const char *dir, struct qv_repo_entry **ret_entries, size_t *ret_n,
		 size_t *ret_skipped)
{
	struct qv_repo_entry *ents = NULL;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, take;
	DIR *d;
	int r = 0;

	d = opendir(dir);
	if (!d)
		return -errno;
	/*
	 * Names first, all of them, then sorted: which models are served when
	 * there are more than QV_REPO_MAX_MODELS must not depend on readdir's
	 * order. A directory name is at most NAME_MAX bytes, so this costs
	 * little even for a repository far over the limit.
	 */
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !is_dir_at(dirfd(d), de->d_name))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **p = realloc(names, ncap * sizeof(*names));
			if (!p) {
				r = -ENOMEM;
				goto fail;
			}
			names = p;
			cap = ncap;
		}
		if (!(names[n] = strdup(de->d_name))) {
			r = -ENOMEM;
			goto fail;
		}
		n++;
	}
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	take = n < QV_REPO_MAX_MODELS ? n : QV_REPO_MAX_MODELS;
	ents = calloc(take ? take : 1, sizeof(*ents));
	if (!ents) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < take; i++)
		scan_model(dir, dirfd(d), names[i], &ents[i]);
	closedir(d);
	free_names(names, n);
	*ret_entries = ents;
	*ret_n = take;
	if (ret_skipped)
		*ret_skipped = n - take;
	return 0;
fail:
	closedir(d);
	free_names(names, n);
	return r;
}
