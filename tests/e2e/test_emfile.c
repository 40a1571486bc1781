/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_emfile.c - quiverd out of descriptors: run under a limit of 64 open
 * files (prlimit), a root peer holding 200 connections makes accept() fail
 * with EMFILE. The control thread must back off and say so once (not log
 * and spin on every poll), keep serving the clients it has, and accept
 * again once the connections are gone.
 *
 * Usage: test_emfile QUIVERD REPO CLIENT QUIVERCTL
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define PRLIMIT "/usr/bin/prlimit"

static int log_count(const struct qvt_daemon *d, const char *needle)
{
	FILE *f = fopen(d->log, "r");
	char line[1024];
	int n = 0;
	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return n;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/qv-emfile-XXXXXX", wrap[256], line[64] = "";
	struct qvt_daemon d;

	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	if (access(PRLIMIT, X_OK) != 0) {
		printf("SKIP: no %s (util-linux)\n", PRLIMIT);
		return QVT_SKIP;
	}
	if (!mkdtemp(dir))
		qvt_die("mkdtemp: %m");
	/* quiverd under a descriptor limit: a wrapper that execs it */
	snprintf(wrap, sizeof(wrap), "%s/quiverd", dir);
	FILE *w = fopen(wrap, "w");
	if (!w || fprintf(w, "#!/bin/sh\nexec %s --nofile=64:64 %s \"$@\"\n", PRLIMIT, argv[1]) < 0 ||
	    fclose(w) != 0 || chmod(wrap, 0755) < 0)
		qvt_die("cannot write %s", wrap);
	if (qvt_daemon_start(&d, wrap, argv[2], NULL) < 0)
		qvt_die("quiverd did not start under 64 descriptors");
	qv_client *c = qvt_connect(d.sock, "e2e-emfile-early", 4);
	struct qvt_model m;
	qvt_model_open(c, argv[2], "trade-mlp", &m);

	int pfd[2];
	if (pipe(pfd) < 0)
		qvt_die("pipe: %m");
	pid_t hog = fork();
	if (hog == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		execl(argv[3], argv[3], "hog", d.sock, "200", (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	FILE *f = fdopen(pfd[0], "r");
	if (!f || !fgets(line, sizeof(line), f))
		qvt_die("hog printed nothing");
	fprintf(stderr, "root hog: %s", line);
	qvt_sleep_ms(500);   /* the listener stays readable: a spinning loop would log here */
	int paused = log_count(&d, "new connections wait");
	int raw = log_count(&d, "warn accept:");
	fprintf(stderr, "backoff lines %d, raw accept warnings %d\n", paused, raw - paused);
	if (paused != 1)
		qvt_fail("EMFILE: %d 'new connections wait' lines, want exactly 1", paused);
	if (raw != paused)
		qvt_fail("EMFILE: %d other accept warnings (a loop logging every poll)", raw - paused);
	qvt_infer_check(c, &m, 0, 2, "a client connected before the descriptors ran out");
	kill(hog, SIGKILL);
	waitpid(hog, NULL, 0);
	fclose(f);

	/* The connections are gone: new ones are accepted again. */
	uint64_t until = qvt_now_ns() + 10000000000ull;
	while (log_count(&d, "accepting connections again") == 0 && qvt_now_ns() < until) {
		qv_client *x = NULL;
		if (qv_connect(d.sock, NULL, &x) == 0)
			qv_close(x);
		qvt_sleep_ms(50);
	}
	if (log_count(&d, "accepting connections again") < 1)
		qvt_fail("quiverd never said it accepts again");
	qvt_serves(d.sock, argv[2], "trade-mlp", 2, "e2e-emfile-after");
	qv_close(c);
	qvt_ref_free(&m.ref);
	int rc = qvt_finish(&d);
	unlink(wrap);
	rmdir(dir);
	return rc;
}
