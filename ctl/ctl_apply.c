/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_apply.c - `quiverctl apply -f FILE [--dry-run] [--offline] [--load]`:
 * makes the routes declared in a YAML file true (apply.h for the file).
 *
 * 1. The file is parsed and checked on its own; with --offline that is all.
 * 2. quiverd's `routes` are read; every model must be a route and every
 *    version loaded (--load: loaded from the repository first).
 * 3. The difference is printed, one line a changed field; "no changes"
 *    when the daemon already matches, so a second apply does nothing.
 * 4. Unless --dry-run, the ordinary route commands are sent one by one.
 *    The first refused command stops the run: what was applied before it
 *    is printed and stays applied (each command is atomic on its own; the
 *    file as a whole is not), exit 1. Running apply again finishes the job
 *    once the cause is fixed, as it only sends what still differs.
 * Nothing is sent when any check fails (exit 2 for a bad file, 1 for one
 * that does not fit the daemon).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "apply.h"
#include "ctl.h"

#define APPLY_MAX_FILE (4u << 20)

static const char apply_usage[] =
	"Usage: quiverctl [--socket PATH] apply -f FILE [--dry-run] [--offline] [--load]\n";

static int read_file(const char *path, char **ret_text, size_t *ret_len)
{
	int fd = strcmp(path, "-") == 0 ? dup(0) : open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	size_t len = 0, cap = 4096;
	char *buf;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) &&
	    !S_ISCHR(st.st_mode)) {
		close(fd);
		return -EISDIR;
	}
	buf = malloc(cap);
	while (buf) {
		if (len + 1 >= cap) {
			char *nb = cap >= APPLY_MAX_FILE ? NULL : realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				close(fd);
				return cap >= APPLY_MAX_FILE ? -EFBIG : -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = -errno;
			free(buf);
			close(fd);
			return e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (!buf)
		return -ENOMEM;
	buf[len] = 0;
	*ret_text = buf;
	*ret_len = len;
	return 0;
}

/* One command; 0, or the ctl exit code after printing why. */
static int call(const struct ctl_opts *o, const char *what, const char *req, uint32_t timeout_ms,
		cJSON **ret_reply)
{
	struct ctl_reply rep;
	int r = ctl_call(o->socket_path, timeout_ms, req, strlen(req), &rep);

	if (r < 0) {
		fprintf(stderr, "quiverctl: apply: %s: %s: %s\n", what, o->socket_path,
			strerror(-r));
		return r == -EACCES || r == -EPERM ? CTL_EXIT_PERM : CTL_EXIT_CONNECT;
	}
	cJSON *j = cJSON_ParseWithLength(rep.json, rep.len);
	if (rep.status != 0) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
		fprintf(stderr, "quiverctl: apply: %s: %s (%s)\n", what,
			cJSON_IsString(e) ? e->valuestring : rep.json,
			strerror(rep.status < 0 ? -rep.status : EPROTO));
		cJSON_Delete(j);
		ctl_reply_free(&rep);
		return rep.status == -EACCES || rep.status == -EPERM ? CTL_EXIT_PERM
								     : CTL_EXIT_DAEMON;
	}
	ctl_reply_free(&rep);
	if (!j) {
		fprintf(stderr, "quiverctl: apply: %s: the daemon's reply is not JSON\n", what);
		return CTL_EXIT_DAEMON;
	}
	if (ret_reply)
		*ret_reply = j;
	else
		cJSON_Delete(j);
	return 0;
}

int ctl_apply(int argc, char **argv, struct ctl_opts *o)
{
	const char *file = NULL;
	bool dry = false, offline = false, load = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(apply_usage, stdout);
			fputs("\nMakes quiverd's routes what FILE declares (YAML; - reads stdin):\n"
			      "\n"
			      "  models:\n"
			      "    trade-mlp:\n"
			      "      primary: 2\n"
			      "      canary: {version: 3, percent: 10, sticky: true}\n"
			      "      shadow: {version: 4, percent: 100}\n"
			      "      fallback: {version: 1, on: [error, deadline]}\n"
			      "\n"
			      "A model named gets exactly these roles (a canary, shadow or fallback\n"
			      "left out is cleared; primary left out stays); models not named are\n"
			      "left alone. Prints one line a changed field (MODEL: FIELD OLD -> NEW)\n"
			      "or \"no changes\", then sends the route commands. The first refused\n"
			      "command stops the run and what was applied before it is listed.\n"
			      "\n"
			      "  -f, --file FILE  the routes file\n"
			      "  --dry-run        print the changes, send none\n"
			      "  --offline        check the file alone, without quiverd\n"
			      "  --load           load versions the file names that are not loaded\n"
			      "                   (from the repository) instead of refusing them\n"
			      "\nExit status: 0 applied or nothing to do, 1 the daemon refused a\n"
			      "command or the file does not fit its routes, 2 a bad file or\n"
			      "arguments, 3 cannot connect, 4 permission denied.\n",
			      stdout);
			return CTL_EXIT_OK;
		} else if (strcmp(a, "-f") == 0 || strcmp(a, "--file") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "quiverctl: apply: %s needs a file\n%s", a, apply_usage);
				return CTL_EXIT_USAGE;
			}
			file = argv[++i];
		} else if (strncmp(a, "--file=", 7) == 0) {
			file = a + 7;
		} else if (strcmp(a, "--dry-run") == 0) {
			dry = true;
		} else if (strcmp(a, "--offline") == 0) {
			offline = true;
		} else if (strcmp(a, "--load") == 0) {
			load = true;
		} else if (strcmp(a, "-j") == 0 || strcmp(a, "--json") == 0) {
			fputs("quiverctl: apply: no --json output (use routes --json)\n", stderr);
			return CTL_EXIT_USAGE;
		} else {
			fprintf(stderr, "quiverctl: apply: unknown argument '%s'\n%s", a, apply_usage);
			return CTL_EXIT_USAGE;
		}
	}
	if (!file || !file[0]) {
		fprintf(stderr, "quiverctl: apply: -f FILE is required\n%s", apply_usage);
		return CTL_EXIT_USAGE;
	}

	char *text = NULL;
	size_t len = 0;
	int r = read_file(file, &text, &len);
	if (r < 0) {
		fprintf(stderr, "quiverctl: apply: %s: %s\n", file, strerror(-r));
		return CTL_EXIT_USAGE;
	}
	struct apply_spec spec;
	r = apply_parse(file, text, len, &spec, stderr);
	free(text);
	if (r < 0) {
		fprintf(stderr, "quiverctl: apply: %s refused, nothing applied\n", file);
		return CTL_EXIT_USAGE;
	}
	if (offline) {
		printf("%s: %zu model%s, valid\n", file, spec.n, spec.n == 1 ? "" : "s");
		apply_spec_free(&spec);
		return CTL_EXIT_OK;
	}

	cJSON *routes = NULL;
	r = call(o, "routes", "{\"cmd\":\"routes\"}", o->timeout_ms, &routes);
	if (r) {
		apply_spec_free(&spec);
		return r;
	}
	int rc = CTL_EXIT_OK;
	struct apply_plan plan = { 0 };
	if (apply_check(&spec, routes, load, stderr)) {
		fprintf(stderr, "quiverctl: apply: %s does not fit quiverd's routes, nothing applied\n",
			file);
		rc = CTL_EXIT_DAEMON;
	} else if ((r = apply_diff(&spec, routes, load, &plan, stdout)) < 0) {
		fprintf(stderr, "quiverctl: apply: %s\n", strerror(-r));
		rc = CTL_EXIT_DAEMON;
	} else if (plan.n == 0) {
		printf("no changes\n");
	} else if (dry) {
		printf("dry run: %u change%s, %zu command%s not sent\n", plan.changes,
		       plan.changes == 1 ? "" : "s", plan.n, plan.n == 1 ? "" : "s");
	} else {
		size_t done = 0;
		fflush(stdout);         /* the changes before any error about them */
		for (; done < plan.n; done++) {
			const struct apply_step *st = &plan.steps[done];
			uint32_t t = st->kind == APPLY_LOAD && !o->timeout_given ? 300000u
										   : o->timeout_ms;
			rc = call(o, st->what, st->request, t, NULL);
			if (rc)
				break;
		}
		if (done == plan.n) {
			printf("applied %zu command%s\n", plan.n, plan.n == 1 ? "" : "s");
		} else {
			fprintf(stderr, "quiverctl: apply: stopped at '%s'; %zu of %zu commands "
				"applied before it%s\n", plan.steps[done].what, done, plan.n,
				done ? ":" : "");
			for (size_t i = 0; i < done; i++)
				fprintf(stderr, "  applied: %s\n", plan.steps[i].what);
		}
	}
	apply_plan_free(&plan);
	cJSON_Delete(routes);
	apply_spec_free(&spec);
	if (fflush(stdout) != 0 && rc == CTL_EXIT_OK)
		rc = CTL_EXIT_DAEMON;
	return rc;
}
