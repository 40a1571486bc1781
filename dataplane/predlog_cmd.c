/* SPDX-License-Identifier: Apache-2.0 */
/* predlog_cmd.c - the `log` command and the prediction log's counters. */
#include "predlog_cmd.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "cmd_args.h"
#include "log.h"
#include "predlog.h"
#include "routes.h"

cJSON *qv_predlog_cmd(struct qv_daemon *d, const cJSON *req, int32_t *ret_status)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "name");
	const cJSON *sample = cJSON_GetObjectItemCaseSensitive(req, "sample");
	const cJSON *dir = cJSON_GetObjectItemCaseSensitive(req, "dir");
	struct qv_plog_cfg pc = { 0 };
	struct qv_route *r;
	char why[256], cur_dir[4096];
	uint64_t max_bytes;
	uint32_t keep;
	double p;
	cJSON *o;

	if (!cJSON_IsString(name) || !qv_repo_name_valid(name->valuestring))
		return qv_cmd_fail(ret_status, -EINVAL, "log: missing or bad \"name\"");
	if (!cJSON_IsNumber(sample) || !isfinite(sample->valuedouble) ||
	    sample->valuedouble < 0.0 || sample->valuedouble > 1.0)
		return qv_cmd_fail(ret_status, -EINVAL, "log %s: \"sample\" must be a number in 0..1",
			    name->valuestring);
	if (dir && !cJSON_IsNull(dir) && (!cJSON_IsString(dir) || !dir->valuestring[0]))
		return qv_cmd_fail(ret_status, -EINVAL, "log %s: \"dir\" must be a directory name",
			    name->valuestring);
	if (!d->reg.predlog)
		return qv_cmd_fail(ret_status, -EOPNOTSUPP, "log: the prediction log is not running");
	r = qv_reg_find(&d->reg, name->valuestring);
	if (!r || !r->nvers)
		return qv_cmd_fail(ret_status, -ENOENT, "log: unknown model '%s'", name->valuestring);
	pc.sample = sample->valuedouble;
	pc.dir = cJSON_IsString(dir) ? dir->valuestring : NULL;
	if (qv_reg_set_log(&d->reg, r, &pc, why, sizeof(why)) < 0)
		return qv_cmd_fail(ret_status, -EINVAL, "log %s: %s", r->name, why);
	if (qv_predlog_get(d->reg.predlog, r->handle, &p, cur_dir, sizeof(cur_dir), &max_bytes,
			   &keep) < 0)
		return qv_cmd_fail(ret_status, -EIO, "log %s: settings vanished", r->name);
	qv_log(QV_LOG_INFO, "predlog %s: sample %g, dir %s", r->name, p,
	       cur_dir[0] ? cur_dir : "(none)");
	o = cJSON_CreateObject();
	if (o) {
		cJSON_AddStringToObject(o, "name", r->name);
		cJSON_AddNumberToObject(o, "sample", p);
		cJSON_AddStringToObject(o, "dir", cur_dir);
		cJSON_AddNumberToObject(o, "max_bytes", (double)max_bytes);
		cJSON_AddNumberToObject(o, "keep", keep);
		cJSON_AddStringToObject(o, "state", p > 0 ? "logging" : "off");
	}
	*ret_status = 0;
	return o;
}

void qv_predlog_json_route(struct qv_daemon *d, cJSON *o, uint32_t handle)
{
	char dir[4096] = "";
	double p = 0;
	uint64_t max_bytes;
	uint32_t keep;

	if (qv_predlog_get(d->reg.predlog, handle, &p, dir, sizeof(dir), &max_bytes, &keep) < 0)
		p = 0, dir[0] = '\0';
	cJSON_AddNumberToObject(o, "log_sample", p);
	if (dir[0])
		cJSON_AddStringToObject(o, "log_dir", dir);
	else
		cJSON_AddNullToObject(o, "log_dir");
}

void qv_predlog_json_totals(struct qv_daemon *d, cJSON *o)
{
	struct qv_plog_totals t;
	cJSON *p = cJSON_AddObjectToObject(o, "predlog");

	if (!p)
		return;
	qv_predlog_totals(d->reg.predlog, &t);
	cJSON_AddNumberToObject(p, "sampled", (double)t.pushed);
	cJSON_AddNumberToObject(p, "dropped", (double)t.dropped);
	cJSON_AddNumberToObject(p, "written", (double)t.written);
	cJSON_AddNumberToObject(p, "write_errors", (double)t.write_errors);
	cJSON_AddNumberToObject(p, "rotations", (double)t.rotations);
}

void qv_predlog_prom(struct qv_daemon *d, FILE *f)
{
	static const struct {
		const char *name, *help;
	} fam[] = {
		{ "quiver_predlog_sampled_total", "Requests sampled into the prediction log rings." },
		{ "quiver_predlog_dropped_total",
		  "Sampled requests dropped: a worker's prediction log ring was full (or the record over half of it)." },
		{ "quiver_predlog_written_total", "Prediction log lines written to files." },
		{ "quiver_predlog_write_errors_total",
		  "Prediction log records lost to an unwritable directory or file." },
		{ "quiver_predlog_rotations_total", "Prediction log files rotated into .gz files." },
	};
	struct qv_plog_totals t;
	uint64_t v[5];

	qv_predlog_totals(d->reg.predlog, &t);
	v[0] = t.pushed;
	v[1] = t.dropped;
	v[2] = t.written;
	v[3] = t.write_errors;
	v[4] = t.rotations;
	for (unsigned i = 0; i < 5; i++)
		fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", fam[i].name, fam[i].help,
			fam[i].name, fam[i].name, (unsigned long long)v[i]);
	fprintf(f, "# HELP quiver_predlog_sample Share of a model's requests sampled into the prediction log.\n"
		   "# TYPE quiver_predlog_sample gauge\n");
	for (uint32_t i = 0; i < d->reg.n; i++) {
		char dir[8];
		double p;
		uint64_t mb;
		uint32_t keep;

		if (qv_predlog_get(d->reg.predlog, d->reg.routes[i].handle, &p, dir, sizeof(dir), &mb,
				   &keep) == 0)
			fprintf(f, "quiver_predlog_sample{model=\"%s\"} %.9g\n", d->reg.routes[i].name, p);
	}
}
