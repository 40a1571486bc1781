/* SPDX-License-Identifier: Apache-2.0 */
/*
 * quiverctl.c - the operator CLI of quiverd: a table of subcommands, each a
 * JSON request over the control socket (qv_proto.h), a human view by
 * default and the daemon's own JSON with --json.
 *
 * Replies are parsed with cJSON (Debian's libcjson): quiverd builds them
 * with the same library, so both ends agree on escaping and number
 * formats, and a small, widely fuzzed parser is safer than a hand-rolled
 * one for text that comes from another process.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ctl.h"
#include "quiver.h"

static const struct ctl_cmd commands[] = {
	{
		.name = "status",
		.args = "",
		.summary = "daemon state, uptime, workers and their utilisation",
		.help = "Shows the daemon's state, uptime, channel and request counts, and one\n"
			"row a worker: its core, NUMA node, channels, requests served and\n"
			"utilisation (busy cycles over busy + idle cycles of its poll loop).",
		.render = ctl_render_status,
	},
	{
		.name = "models",
		.args = "[--plan]",
		.summary = "models, versions, shapes and load errors",
		.help = "Lists every model route: name, handle, the version served, its state,\n"
			"input and output shapes (-1 is the batch axis), max batch, the\n"
			"precision it serves (and the one asked for when the accuracy guard\n"
			"kept fp32), the guard's max abs error against fp32 on its golden\n"
			"rows, and the load error of a model that failed to load.\n"
			"--plan also shows each loaded version's compiled plan: its steps,\n"
			"the ONNX nodes each came from, and for dense steps the activation,\n"
			"the precision and the kernel that runs each batch-size bucket (the\n"
			"hand-written one or oneDNN, as measured at load); other model kinds\n"
			"(trees, graphs, ensembles) show the runtime's description.",
		.build = ctl_build_models,
		.render = ctl_render_models,
	},
	{
		.name = "routes",
		.args = "",
		.summary = "routes: primary, previous, canary, shadow, fallback",
		.help = "Lists every route (a model name and its handle): the primary version,\n"
			"the previous primary kept warm for rollback, the canary and its share\n"
			"(sticky or not), the shadow and its share, the fallback and its\n"
			"triggers, and every loaded version with its state.",
		.render = ctl_render_routes,
	},
	{
		.name = "load",
		.args = "NAME VERSION [--path DIR|s3://BUCKET/PREFIX] [--precision fp32|bf16|int8|auto]",
		.summary = "load, compile and warm a model version (admin)",
		.help = "Loads REPO/NAME/VERSION/ (or DIR, holding model.onnx), compiles it\n"
			"and warms it off the data plane. A new NAME becomes a new route with\n"
			"VERSION as its primary; otherwise the version is loaded but serves\n"
			"nothing until swap, canary, shadow or fallback names it.\n"
			"--precision overrides config.json's \"precision\" for this version;\n"
			"the accuracy guard may still serve it in fp32 (see models).",
		.build = ctl_build_load,
		.render = ctl_render_load,
		/* Compiling and warming a large model takes seconds. */
		.timeout_ms = 300000,
	},
	{
		.name = "unload",
		.args = "NAME VERSION",
		.summary = "unload a version no route uses (admin)",
		.help = "Unloads a version. A version that is the primary, previous, canary,\n"
			"shadow or fallback of its route is refused (busy).",
		.build = ctl_build_unload,
		.render = ctl_render_state,
	},
	{
		.name = "swap",
		.args = "NAME VERSION",
		.summary = "make a loaded version the primary, atomically (admin)",
		.help = "Makes VERSION the primary of NAME in one atomic publication: every\n"
			"request is served entirely by the old or the new version, none is\n"
			"lost. The old primary stays loaded and warm for rollback.",
		.build = ctl_build_swap,
		.render = ctl_render_swap,
	},
	{
		.name = "canary",
		.args = "NAME VERSION --percent P [--sticky]",
		.summary = "send P% of NAME's traffic to VERSION (admin)",
		.help = "Routes P percent (a decimal 0..100, e.g. 10 or 0.5; at most 4\n"
			"decimals, 1 ppm) of NAME's requests to VERSION. --sticky picks by\n"
			"the request's routing key, so a key always lands on the same\n"
			"version. VERSION 0 or --percent 0 clears the canary.",
		.build = ctl_build_canary,
		.render = ctl_render_route,
	},
	{
		.name = "shadow",
		.args = "NAME VERSION [--percent P]",
		.summary = "mirror P% (default 100) of NAME's traffic to VERSION (admin)",
		.help = "Runs VERSION on P percent (default 100) of NAME's requests as well;\n"
			"its outputs are compared and counted, never answered. VERSION 0\n"
			"clears the shadow.",
		.build = ctl_build_shadow,
		.render = ctl_render_route,
	},
	{
		.name = "promote",
		.args = "NAME",
		.summary = "the canary becomes the primary (admin)",
		.help = "Makes NAME's canary its primary (the old primary becomes previous)\n"
			"and clears the canary.",
		.build = ctl_build_promote,
		.render = ctl_render_route,
	},
	{
		.name = "rollback",
		.args = "NAME",
		.summary = "back to the previous primary, at once (admin)",
		.help = "Makes NAME's previous primary (kept loaded and warm) the primary\n"
			"again. Fails if there is no previous primary.",
		.build = ctl_build_rollback,
		.render = ctl_render_route,
	},
	{
		.name = "fallback",
		.args = "NAME VERSION --on LIST | NAME VERSION --manual | NAME --clear",
		.summary = "answer from VERSION when the primary fails (admin)",
		.help = "--on LIST (comma-separated: error, deadline, nonfinite): a request\n"
			"the primary fails, would answer after its deadline, or answers with\n"
			"NaN/Inf is answered by VERSION with the fallback flag set.\n"
			"--manual: VERSION answers everything (flagged). --clear: no fallback.",
		.build = ctl_build_fallback,
		.render = ctl_render_route,
	},
	{
		.name = "failpoint",
		.args = "NAME VERSION on|off",
		.summary = "make every run of a version fail, for testing fallbacks (admin)",
		.help = "on: every run of VERSION counts as failed (requests get INTERNAL, or\n"
			"the fallback's answer where the route falls back on error); off:\n"
			"it runs again. A testing aid for the error fallback; logged.",
		.build = ctl_build_failpoint,
		.render = ctl_render_state,
	},
	{
		.name = "log",
		.args = "NAME --sample P [--dir D]",
		.summary = "sample a model's requests into the prediction log (admin)",
		.help = "Writes a share P (0..1; 0 turns it off) of NAME's answered requests\n"
			"- inputs, outputs, version, flags, routing key, request id, times -\n"
			"as JSON lines to D/NAME.jsonl (D: --dir, else the directory set\n"
			"before or in config.json \"log\"), rotated into .gz files. Applies\n"
			"at once to every loaded version. See the README for the line schema.",
		.build = ctl_build_log,
		.render = ctl_render_state,
	},
	{
		.name = "stats",
		.args = "[NAME]",
		.summary = "per-version counters and service-time percentiles",
		.help = "One row a version: requests, OK, errors, canary and shadow hits,\n"
			"shadow disagreements, fallback answers, and p50/p99/p99.9 service\n"
			"time in microseconds. NAME limits it to one route.",
		.build = ctl_build_stats,
		.render = ctl_render_stats,
	},
	{
		.name = "metrics",
		.args = "",
		.summary = "Prometheus text exposition of the counters",
		.help = "Prints quiverd's counters and service-time quantiles in the\n"
			"Prometheus text format (for a node_exporter textfile or a scrape\n"
			"proxy).",
		.render = ctl_render_metrics,
	},
	{
		.name = "top",
		.args = "[--once] [--interval SECONDS]",
		.summary = "live view: requests/s, latency, shares per version; workers",
		.help = "Redraws every interval: per model version requests/s, traffic shares,\n"
			"errors/s, p50/p99 of the interval and requests per run; per worker\n"
			"busy %, channels, requests/s, UDP rx/tx. q or Ctrl-C quits; --once\n"
			"prints one frame for scripts.",
		.run = ctl_top,
	},
	{
		.name = "apply",
		.args = "-f FILE [--dry-run] [--offline] [--load]",
		.summary = "make the routes declared in a YAML file true (admin)",
		.help = "Reads FILE's routes (primary, canary, shadow, fallback per model),\n"
			"prints what differs from quiverd's and sends the route commands\n"
			"that make the file true; a second apply prints \"no changes\".",
		.run = ctl_apply,
	},
	{
		.name = "drain",
		.args = "",
		.summary = "stop taking requests, finish in-flight ones, exit (admin)",
		.help = "Same as SIGTERM: the daemon refuses new work, answers what is in\n"
			"flight and exits.",
		.render = ctl_render_state,
	},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char exit_codes_help[] =
	"Exit status:\n"
	"  0  success\n"
	"  1  the daemon answered with an error (or an unreadable reply)\n"
	"  2  usage error: bad arguments\n"
	"  3  cannot connect: daemon not running, socket missing, or no reply\n"
	"  4  permission denied\n";

static void usage_global(FILE *f)
{
	fprintf(f,
		"Usage: quiverctl [--socket PATH] [--json] [--timeout MS] <command> [args]\n"
		"       quiverctl <command> --help\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH  quiverd's control socket (default: $QUIVER_SOCKET,\n"
		"                     else %s)\n"
		"  -j, --json         print the daemon's JSON reply instead of a table\n"
		"  -t, --timeout MS   give up waiting for a reply after MS ms (default 5000;\n"
		"                     load: 300000)\n"
		"  -h, --help         this help\n"
		"\n"
		"Commands:\n",
		QV_DEFAULT_SOCKET);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n%s", exit_codes_help);
}

static void usage_cmd(FILE *f, const struct ctl_cmd *c)
{
	fprintf(f, "Usage: quiverctl [--socket PATH] [--json] %s%s%s\n\n%s\n\n"
		   "Options:\n  -j, --json  print the daemon's JSON reply\n"
		   "  -h, --help  this help\n\n%s",
		c->name, c->args[0] ? " " : "", c->args, c->help, exit_codes_help);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("quiverctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'quiverctl --help'.\n", stderr);
	return CTL_EXIT_USAGE;
}

static const struct ctl_cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int exit_for_errno(int e)
{
	switch (e) {
	case -EACCES:
	case -EPERM:
		return CTL_EXIT_PERM;
	case -ENOENT:
	case -ECONNREFUSED:
	case -ENOTSOCK:
	case -ENOTDIR:
	case -ENAMETOOLONG:
	case -ETIMEDOUT:
	case -ECONNRESET:
	case -EPIPE:
	case -EPROTOTYPE:
		return CTL_EXIT_CONNECT;
	default:
		return CTL_EXIT_DAEMON;
	}
}

static int parse_timeout(const char *s, uint32_t *ret_ms)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > 3600000ul || s[0] == '-')
		return -EINVAL;
	*ret_ms = (uint32_t)v;
	return 0;
}

/* Strips --json/--help that follow the command name; returns the index of
 * the first argument left for the command's own builder, or -1 on --help. */
static int cmd_options(const struct ctl_cmd *c, int argc, char **argv, struct ctl_opts *o,
		       int *ret_first)
{
	int first = argc;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			first = i + 1;
			break;
		}
		if (strcmp(argv[i], "-j") == 0 || strcmp(argv[i], "--json") == 0) {
			o->json = true;
			argv[i] = NULL;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage_cmd(stdout, c);
			return -1;
		} else if (argv[i][0] == '-' && argv[i][1] && !c->build) {
			return usage_error("%s: unknown option '%s'", c->name, argv[i]);
		} else if (argv[i][0] == '-' && argv[i][1]) {
			/* The command's own options (--percent ...): its builder
			 * parses them, in order, among the positional arguments. */
			if (first == argc)
				first = i;
		} else if (first == argc) {
			first = i;
		}
	}
	*ret_first = first;
	return 0;
}

static int run_cmd(const struct ctl_cmd *c, int argc, char **argv, struct ctl_opts *o)
{
	if (c->run)
		return c->run(argc, argv, o);
	int first = argc;
	int r = cmd_options(c, argc, argv, o, &first);
	if (r < 0)
		return CTL_EXIT_OK;     /* --help */
	if (r > 0)
		return r;

	/* Gather the positional arguments (nulled entries were options). */
	char **pos = calloc((size_t)argc + 1, sizeof(char *));
	cJSON *req = cJSON_CreateObject();
	if (!pos || !req || !cJSON_AddStringToObject(req, "cmd", c->name)) {
		free(pos);
		cJSON_Delete(req);
		fputs("quiverctl: out of memory\n", stderr);
		return CTL_EXIT_DAEMON;
	}
	int npos = 0;
	for (int i = first; i < argc; i++)
		if (argv[i])
			pos[npos++] = argv[i];

	int rc = CTL_EXIT_OK;
	if (c->build) {
		rc = c->build(npos, pos, req);
	} else if (npos > 0) {
		fprintf(stderr, "quiverctl: %s takes no arguments, got '%s'\n"
				"Try 'quiverctl %s --help'.\n", c->name, pos[0], c->name);
		rc = CTL_EXIT_USAGE;
	}
	free(pos);
	if (rc != CTL_EXIT_OK) {
		cJSON_Delete(req);
		return rc;
	}

	char *text = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (!text) {
		fputs("quiverctl: out of memory\n", stderr);
		return CTL_EXIT_DAEMON;
	}
	if (c->timeout_ms && !o->timeout_given)
		o->timeout_ms = c->timeout_ms;
	struct ctl_reply rep;
	r = ctl_call(o->socket_path, o->timeout_ms, text, strlen(text), &rep);
	cJSON_free(text);
	if (r < 0) {
		fprintf(stderr, "quiverctl: %s: %s: %s\n", c->name, o->socket_path, strerror(-r));
		if (r == -ENOENT || r == -ECONNREFUSED)
			fputs("quiverctl: is quiverd running? (--socket or $QUIVER_SOCKET)\n",
			      stderr);
		return exit_for_errno(r);
	}

	cJSON *j = cJSON_ParseWithLength(rep.json, rep.len);
	if (rep.status != 0) {
		const char *msg = rep.json;
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
		if (cJSON_IsString(e))
			msg = e->valuestring;
		if (o->json && j)
			printf("%s\n", rep.json);
		fprintf(stderr, "quiverctl: %s: %s (%s)\n", c->name, msg[0] ? msg : "error",
			strerror(rep.status < 0 ? -rep.status : EPROTO));
		rc = rep.status == -EACCES || rep.status == -EPERM ? CTL_EXIT_PERM
								    : CTL_EXIT_DAEMON;
	} else if (!j) {
		fprintf(stderr, "quiverctl: %s: the daemon's reply is not JSON\n", c->name);
		rc = CTL_EXIT_DAEMON;
	} else if (o->json) {
		/* The daemon's text, untouched: the stable machine interface. */
		printf("%s\n", rep.json);
	} else if (c->render) {
		c->render(j);
	} else {
		char *pretty = cJSON_Print(j);
		if (pretty)
			printf("%s\n", pretty);
		cJSON_free(pretty);
	}
	cJSON_Delete(j);
	ctl_reply_free(&rep);
	if (fflush(stdout) != 0 && rc == CTL_EXIT_OK)
		rc = CTL_EXIT_DAEMON;
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *env = getenv("QUIVER_SOCKET");
	struct ctl_opts o = {
		.socket_path = env && env[0] ? env : QV_DEFAULT_SOCKET,
		.timeout_ms = 5000,
	};

	opterr = 0;
	int ch;
	/* '+': stop at the command name; what follows belongs to it. */
	while ((ch = getopt_long(argc, argv, "+:s:jt:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (!optarg[0])
				return usage_error("empty socket path");
			o.socket_path = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		case 't':
			if (parse_timeout(optarg, &o.timeout_ms) < 0)
				return usage_error("bad timeout '%s' (milliseconds, 1..3600000)",
						   optarg);
			o.timeout_given = true;
			break;
		case 'h':
			usage_global(stdout);
			return CTL_EXIT_OK;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc) {
		usage_global(stderr);
		return CTL_EXIT_USAGE;
	}
	const char *name = argv[optind];
	if (strcmp(name, "help") == 0) {
		const struct ctl_cmd *c = optind + 1 < argc ? find_cmd(argv[optind + 1]) : NULL;
		if (c)
			usage_cmd(stdout, c);
		else
			usage_global(stdout);
		return CTL_EXIT_OK;
	}
	const struct ctl_cmd *c = find_cmd(name);
	if (!c)
		return usage_error("unknown command '%s'", name);
	return run_cmd(c, argc - optind, argv + optind, &o);
}
