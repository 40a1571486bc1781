/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_args.c - the arguments of the control-plane commands (load, unload,
 * swap, canary, shadow, promote, rollback, fallback, stats) turned into
 * their request objects. Everything an operator can get wrong is caught
 * here and answered with exit 2 before anything is sent: the daemon checks
 * the same things again (it must, other clients exist), but a typo should
 * not need a round trip to be explained.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ctl.h"

__attribute__((format(printf, 2, 3))) static int bad(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "quiverctl: %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'quiverctl %s --help'.\n", cmd);
	return CTL_EXIT_USAGE;
}

int ctl_parse_version(const char *s, bool allow_zero, uint32_t *ret_version)
{
	if (!s || !s[0] || strlen(s) > 10)
		return -EINVAL;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v > UINT32_MAX || (v == 0 && !allow_zero))
		return -EINVAL;
	*ret_version = (uint32_t)v;
	return 0;
}

/*
 * A percentage as the operator writes it ("10", "0.5", "100") to parts per
 * million, in integer arithmetic so that "0.0001" is exactly 1 ppm and no
 * binary rounding can turn 10% into 99999 ppm. At most four decimals: finer
 * than 1 ppm is not representable, and silently rounding a share an
 * operator asked for is worse than refusing it. No sign, exponent, hex,
 * "nan" or "inf": strtod accepts all of those.
 */
int ctl_parse_percent(const char *s, uint32_t *ret_ppm)
{
	if (!s || !s[0])
		return -EINVAL;
	uint64_t whole = 0, frac = 0;
	unsigned nint = 0, nfrac = 0;
	const char *p = s;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (++nint > 3)
			return -EINVAL;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++) {
			if (++nfrac > 4)
				return -EINVAL;
			frac = frac * 10 + (uint64_t)(*p - '0');
		}
		if (nfrac == 0)
			return -EINVAL;
	}
	if (*p || nint == 0)
		return -EINVAL;
	for (unsigned i = nfrac; i < 4; i++)
		frac *= 10;
	uint64_t ppm = whole * 10000 + frac;
	if (ppm > 1000000)
		return -EINVAL;
	*ret_ppm = (uint32_t)ppm;
	return 0;
}

/* "--opt VALUE" or "--opt=VALUE"; returns the value and advances *i. */
static const char *opt_value(int argc, char **argv, int *i, const char *opt)
{
	size_t n = strlen(opt);
	if (strncmp(argv[*i], opt, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc)
		return "";
	return argv[++*i];
}

static bool is_opt(const char *a)
{
	return a[0] == '-' && a[1] == '-';
}

/* NAME and, when want_version, VERSION from the positional arguments;
 * options are left to the caller (they were checked to be known). */
static int name_version(const char *cmd, int npos, char **pos, bool want_version,
			bool allow_zero, cJSON *req)
{
	int want = want_version ? 2 : 1;
	if (npos < want)
		return bad(cmd, "missing %s", npos == 0 ? "NAME" : "VERSION");
	if (npos > want)
		return bad(cmd, "unexpected argument '%s'", pos[want]);
	if (!pos[0][0] || strlen(pos[0]) >= 64)
		return bad(cmd, "bad model name '%s' (1..63 characters)", pos[0]);
	if (!cJSON_AddStringToObject(req, "name", pos[0]))
		return CTL_EXIT_DAEMON;
	if (want_version) {
		uint32_t v;
		if (ctl_parse_version(pos[1], allow_zero, &v) < 0)
			return bad(cmd, "bad version '%s' (an integer %s..4294967295)", pos[1],
				   allow_zero ? "0" : "1");
		if (!cJSON_AddNumberToObject(req, "version", v))
			return CTL_EXIT_DAEMON;
	}
	return CTL_EXIT_OK;
}

/* Splits argv into positional arguments (in place, returned count) and
 * rejects any option not handled by the caller's loop. */
static int no_options(const char *cmd, int argc, char **argv, int *ret_npos)
{
	int npos = 0;
	for (int i = 0; i < argc; i++) {
		if (is_opt(argv[i]) || (argv[i][0] == '-' && argv[i][1]))
			return bad(cmd, "unknown option '%s'", argv[i]);
		argv[npos++] = argv[i];
	}
	*ret_npos = npos;
	return CTL_EXIT_OK;
}

int ctl_build_load(int argc, char **argv, cJSON *req)
{
	char *pos[3];
	int npos = 0;
	const char *path = NULL, *prec = NULL;
	for (int i = 0; i < argc; i++) {
		const char *v = opt_value(argc, argv, &i, "--path");
		const char *pv = v ? NULL : opt_value(argc, argv, &i, "--precision");
		if (v) {
			if (!v[0])
				return bad("load", "--path needs a directory");
			path = v;
		} else if (pv) {
			if (strcmp(pv, "fp32") && strcmp(pv, "bf16") && strcmp(pv, "int8") && strcmp(pv, "auto"))
				return bad("load", "--precision '%s': want fp32, bf16, int8 or auto", pv);
			prec = pv;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return bad("load", "unknown option '%s'", argv[i]);
		} else if (npos < 3) {
			pos[npos++] = argv[i];
		} else {
			return bad("load", "unexpected argument '%s'", argv[i]);
		}
	}
	int rc = name_version("load", npos, pos, true, false, req);
	if (rc == CTL_EXIT_OK && path && !cJSON_AddStringToObject(req, "path", path))
		rc = CTL_EXIT_DAEMON;
	if (rc == CTL_EXIT_OK && prec && !cJSON_AddStringToObject(req, "precision", prec))
		rc = CTL_EXIT_DAEMON;
	return rc;
}

static int build_name_version(const char *cmd, int argc, char **argv, cJSON *req)
{
	int npos;
	int rc = no_options(cmd, argc, argv, &npos);
	return rc ? rc : name_version(cmd, npos, argv, true, false, req);
}

int ctl_build_unload(int argc, char **argv, cJSON *req)
{
	return build_name_version("unload", argc, argv, req);
}

int ctl_build_swap(int argc, char **argv, cJSON *req)
{
	return build_name_version("swap", argc, argv, req);
}

static int build_name(const char *cmd, int argc, char **argv, cJSON *req)
{
	int npos;
	int rc = no_options(cmd, argc, argv, &npos);
	return rc ? rc : name_version(cmd, npos, argv, false, false, req);
}

int ctl_build_promote(int argc, char **argv, cJSON *req)
{
	return build_name("promote", argc, argv, req);
}

int ctl_build_rollback(int argc, char **argv, cJSON *req)
{
	return build_name("rollback", argc, argv, req);
}

int ctl_build_failpoint(int argc, char **argv, cJSON *req)
{
	int npos;
	int rc = no_options("failpoint", argc, argv, &npos);
	bool fail;

	if (rc)
		return rc;
	if (npos != 3)
		return bad("failpoint", npos < 3 ? "missing %s" : "unexpected argument '%s'",
			   npos < 2 ? "NAME VERSION on|off" : npos < 3 ? "on|off" : argv[3]);
	if (strcmp(argv[2], "on") == 0)
		fail = true;
	else if (strcmp(argv[2], "off") == 0)
		fail = false;
	else
		return bad("failpoint", "'%s' is not on or off", argv[2]);
	rc = name_version("failpoint", 2, argv, true, false, req);
	if (rc == CTL_EXIT_OK && !cJSON_AddBoolToObject(req, "fail", fail))
		rc = CTL_EXIT_DAEMON;
	return rc;
}

/*
 * log NAME --sample P [--dir D]: P a plain decimal in 0..1 (strtod's hex,
 * inf and nan are refused: an operator's typo must not turn logging on).
 */
int ctl_build_log(int argc, char **argv, cJSON *req)
{
	char *pos[2];
	int npos = 0;
	const char *sample = NULL, *dir = NULL;

	for (int i = 0; i < argc; i++) {
		const char *sv = opt_value(argc, argv, &i, "--sample");
		const char *dv = sv ? NULL : opt_value(argc, argv, &i, "--dir");
		if (sv) {
			sample = sv;
		} else if (dv) {
			if (!dv[0])
				return bad("log", "--dir needs a directory");
			dir = dv;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return bad("log", "unknown option '%s'", argv[i]);
		} else if (npos < 2) {
			pos[npos++] = argv[i];
		} else {
			return bad("log", "unexpected argument '%s'", argv[i]);
		}
	}
	if (!sample)
		return bad("log", "missing --sample P (0..1, 0 turns it off)");
	size_t n = strspn(sample, "0123456789.");
	char *end = NULL;
	double p = n == strlen(sample) && n > 0 ? strtod(sample, &end) : -1.0;
	if (!end || *end || !(p >= 0.0 && p <= 1.0))
		return bad("log", "--sample '%s': want a number in 0..1", sample);
	int rc = name_version("log", npos, pos, false, false, req);
	if (rc == CTL_EXIT_OK && !cJSON_AddNumberToObject(req, "sample", p))
		rc = CTL_EXIT_DAEMON;
	if (rc == CTL_EXIT_OK && dir && !cJSON_AddStringToObject(req, "dir", dir))
		rc = CTL_EXIT_DAEMON;
	return rc;
}

/* models [--plan]. */
int ctl_build_models(int argc, char **argv, cJSON *req)
{
	bool plan = false;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--plan") == 0)
			plan = true;
		else if (argv[i][0] == '-' && argv[i][1])
			return bad("models", "unknown option '%s' (models takes --plan)", argv[i]);
		else
			return bad("models", "takes no arguments, got '%s'", argv[i]);
	}
	if (plan && !cJSON_AddTrueToObject(req, "plan"))
		return CTL_EXIT_DAEMON;
	return CTL_EXIT_OK;
}

int ctl_build_stats(int argc, char **argv, cJSON *req)
{
	int npos;
	int rc = no_options("stats", argc, argv, &npos);
	if (rc)
		return rc;
	if (npos == 0)
		return CTL_EXIT_OK;
	return name_version("stats", npos, argv, false, false, req);
}

/* canary NAME VERSION --percent P [--sticky]; shadow NAME VERSION [--percent P]. */
static int build_share(const char *cmd, bool is_canary, int argc, char **argv, cJSON *req)
{
	char *pos[3];
	int npos = 0;
	bool sticky = false, have_pct = false;
	uint32_t ppm = 1000000;
	for (int i = 0; i < argc; i++) {
		const char *v = opt_value(argc, argv, &i, "--percent");
		if (v) {
			if (ctl_parse_percent(v, &ppm) < 0)
				return bad(cmd, "bad percent '%s' (a decimal 0..100, at most 4 "
						"decimals, e.g. 10 or 0.5)", v);
			have_pct = true;
		} else if (is_canary && strcmp(argv[i], "--sticky") == 0) {
			sticky = true;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return bad(cmd, "unknown option '%s'", argv[i]);
		} else if (npos < 3) {
			pos[npos++] = argv[i];
		} else {
			return bad(cmd, "unexpected argument '%s'", argv[i]);
		}
	}
	int rc = name_version(cmd, npos, pos, true, true, req);
	if (rc)
		return rc;
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(req, "version");
	if (is_canary && !have_pct && ver->valuedouble != 0)
		return bad(cmd, "--percent P is required");
	if (!cJSON_AddNumberToObject(req, "ppm", ppm))
		return CTL_EXIT_DAEMON;
	if (is_canary && !cJSON_AddBoolToObject(req, "sticky", sticky))
		return CTL_EXIT_DAEMON;
	return CTL_EXIT_OK;
}

int ctl_build_canary(int argc, char **argv, cJSON *req)
{
	return build_share("canary", true, argc, argv, req);
}

int ctl_build_shadow(int argc, char **argv, cJSON *req)
{
	return build_share("shadow", false, argc, argv, req);
}

static const char *const triggers[] = { "error", "deadline", "nonfinite" };

/* "error,deadline" -> ["error","deadline"], each known, none twice. */
static int parse_triggers(const char *list, cJSON *req)
{
	char buf[128];
	if (!list[0] || strlen(list) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, list, strlen(list) + 1);
	cJSON *arr = cJSON_AddArrayToObject(req, "on");
	if (!arr)
		return -ENOMEM;
	unsigned seen = 0;
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned k = 0;
		while (k < 3 && strcmp(t, triggers[k]) != 0)
			k++;
		if (k == 3 || (seen & (1u << k)))
			return -EINVAL;
		seen |= 1u << k;
		cJSON *s = cJSON_CreateString(triggers[k]);
		if (!s || !cJSON_AddItemToArray(arr, s)) {
			cJSON_Delete(s);
			return -ENOMEM;
		}
	}
	/* "," alone or ",," leaves nothing. */
	return seen ? 0 : -EINVAL;
}

/* fallback NAME VERSION --on LIST | --manual; fallback NAME --clear. */
int ctl_build_fallback(int argc, char **argv, cJSON *req)
{
	char *pos[3];
	int npos = 0, modes = 0;
	const char *on = NULL;
	bool manual = false, clear = false;
	for (int i = 0; i < argc; i++) {
		const char *v = opt_value(argc, argv, &i, "--on");
		if (v) {
			on = v;
			modes++;
		} else if (strcmp(argv[i], "--manual") == 0) {
			manual = true;
			modes++;
		} else if (strcmp(argv[i], "--clear") == 0) {
			clear = true;
			modes++;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return bad("fallback", "unknown option '%s'", argv[i]);
		} else if (npos < 3) {
			pos[npos++] = argv[i];
		} else {
			return bad("fallback", "unexpected argument '%s'", argv[i]);
		}
	}
	if (modes != 1)
		return bad("fallback", "give exactly one of --on LIST, --manual, --clear");
	int rc = name_version("fallback", npos, pos, !clear, false, req);
	if (rc)
		return rc;
	if (clear)
		return cJSON_AddTrueToObject(req, "clear") ? CTL_EXIT_OK : CTL_EXIT_DAEMON;
	if (manual)
		return cJSON_AddTrueToObject(req, "manual") ? CTL_EXIT_OK : CTL_EXIT_DAEMON;
	int r = parse_triggers(on, req);
	if (r == -ENOMEM)
		return CTL_EXIT_DAEMON;
	if (r < 0)
		return bad("fallback", "bad trigger list '%s' (comma-separated: error, "
				       "deadline, nonfinite)", on);
	return CTL_EXIT_OK;
}
