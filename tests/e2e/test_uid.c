/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_uid.c - a client whose uid the daemon does not allow is refused
 * with a clear error: the helper client runs as nobody (setpriv
 * --reuid=65534 --regid=65534 --clear-groups) against a socket everyone
 * may open (mode 0666 in a 0777 dir), so the refusal comes from the
 * daemon's SO_PEERCRED check, not from file permissions; qv_connect must
 * return -EACCES or -EPERM. The same helper as root connects (so the
 * refusal is about the uid), quiverctl as nobody exits 4, and the daemon
 * keeps serving afterwards. A refused uid that opens more connections
 * than the daemon's table holds (4096) and sends nothing locks nobody
 * out: a root client still connects and is served meanwhile.
 * Needs root (to change uid) and setpriv; skips otherwise.
 *
 * Usage: test_uid QUIVERD REPO CLIENT [QUIVERCTL]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define SETPRIV "/usr/bin/setpriv"

static int run_probe(const char *const *argv, char *out, size_t cap)
{
	int st;
	if (qvt_run(argv, out, cap, &st) < 0)
		qvt_die("cannot run %s", argv[0]);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 256 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	char out[1024];

	if (argc < 4) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT\n", argv[0]);
		return 2;
	}
	if (geteuid() != 0) {
		printf("SKIP: needs root to run a client as another uid\n");
		return QVT_SKIP;
	}
	if (access(SETPRIV, X_OK) != 0) {
		printf("SKIP: no %s (util-linux)\n", SETPRIV);
		return QVT_SKIP;
	}
	const char *extra[] = { "--socket-mode", "0666", NULL };
	if (qvt_daemon_start(&d, argv[1], argv[2], extra) < 0)
		qvt_die("quiverd did not start");
	if (chmod(d.dir, 0777) < 0 || chmod(d.sock, 0666) < 0)
		qvt_die("chmod: %m");

	const char *as_root[] = { argv[3], "probe", d.sock, NULL };
	int rc = run_probe(as_root, out, sizeof(out));
	if (rc != 0)
		qvt_fail("root client: exit %d (%s), want 0", rc, out);

	const char *as_nobody[] = { SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups",
				    argv[3], "probe", d.sock, NULL };
	rc = run_probe(as_nobody, out, sizeof(out));
	fprintf(stderr, "client as uid 65534: exit %d: %s", rc, out);
	if (rc == 126 || rc == 127) {
		printf("SKIP: uid 65534 cannot execute %s (build dir not readable?)\n", argv[3]);
		qvt_daemon_cleanup(&d);
		return QVT_SKIP;
	}
	if (rc == 0)
		qvt_fail("a client of uid 65534 was let in");
	else if (rc != 100 + 13 && rc != 100 + 1)
		qvt_fail("uid 65534: exit %d (%s), want -EACCES (113) or -EPERM (101)", rc, out);
	else if (!strstr(out, "qv_connect: -"))
		qvt_fail("uid 65534: no clear error printed: %s", out);

	/* quiverctl as that uid: exit 4 (permission denied), with a message. */
	if (argc > 4) {
		const char *ctl_nobody[] = { SETPRIV, "--reuid=65534", "--regid=65534",
					     "--clear-groups", argv[4], "--socket", d.sock, "status",
					     NULL };
		rc = run_probe(ctl_nobody, out, sizeof(out));
		fprintf(stderr, "quiverctl as uid 65534: exit %d\n", rc);
		if (rc != 4)
			qvt_fail("quiverctl as uid 65534: exit %d, want 4 (permission denied)", rc);
	}

	/* A refused uid holding more connections than the table has. */
	{
		int pfd[2];
		char line[64] = "";
		if (pipe(pfd) < 0)
			qvt_die("pipe: %m");
		pid_t hog = fork();
		if (hog == 0) {
			dup2(pfd[1], 1);
			close(pfd[0]);
			execl(SETPRIV, SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups",
			      argv[3], "hog", d.sock, "4200", (char *)NULL);
			_exit(127);
		}
		close(pfd[1]);
		FILE *f = fdopen(pfd[0], "r");
		if (!f || !fgets(line, sizeof(line), f))
			qvt_die("hog printed nothing");
		fprintf(stderr, "uid 65534 hog: %s", line);
		if (strtoul(line + 8, NULL, 10) < 4100)
			qvt_fail("the hog opened too few connections to fill the table: %s", line);
		usleep(200 * 1000); /* the control thread accepts them all */
		qvt_serves(d.sock, argv[2], "trade-mlp", 3, "beside a refused uid's 4200 connections");
		kill(hog, SIGKILL);
		waitpid(hog, NULL, 0);
		fclose(f);
	}

	/* Still serving, and the refused peer left nothing behind. */
	qvt_serves(d.sock, argv[2], "trade-mlp", 3, "after the refusal");
	return qvt_finish(&d);
}
