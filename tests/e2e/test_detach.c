/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_detach.c - quiverd started without --foreground (detached): a
 * repository that cannot be served makes the command itself fail (exit
 * non-zero, with a message), and a good one makes it exit 0 only once the
 * daemon serves - a client connects at once, no retry - and `quiverctl
 * drain` stops it.
 *
 * Usage: test_detach QUIVERD REPO CLIENT QUIVERCTL
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static int sh(const char *cmd, char *out, size_t cap)
{
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	int st;
	if (qvt_run(argv, out, cap, &st) < 0)
		qvt_die("cannot run /bin/sh");
	return WIFEXITED(st) ? WEXITSTATUS(st) : 256;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/qv-detach-XXXXXX", cmd[8192], out[4096], sock[256];
	struct stat st;

	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	if (!mkdtemp(dir))
		qvt_die("mkdtemp: %m");
	snprintf(sock, sizeof(sock), "%s/quiverd.sock", dir);

	/* An empty repository: nothing to serve, so the start must fail. */
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/empty && %s --repo %s/empty --socket %s "
		 ">/dev/null 2>%s/bad.log; echo rc=$?", dir, argv[1], dir, sock, dir);
	sh(cmd, out, sizeof(out));
	fprintf(stderr, "empty repository: %s", out);
	if (strcmp(out, "rc=0\n") == 0 || strncmp(out, "rc=", 3) != 0)
		qvt_fail("a detached start with nothing to serve: %s, want a non-zero exit", out);
	snprintf(cmd, sizeof(cmd), "grep -c 'failed to start' %s/bad.log", dir);
	if (sh(cmd, out, sizeof(out)) != 0)
		qvt_fail("the failed detached start printed no message");

	/* A good repository: exit 0 means it serves now. */
	snprintf(cmd, sizeof(cmd), "%s --repo %s --socket %s >/dev/null 2>%s/good.log; echo rc=$?",
		 argv[1], argv[2], sock, dir);
	sh(cmd, out, sizeof(out));
	if (strcmp(out, "rc=0\n") != 0) {
		qvt_fail("a detached start with a good repository: %s", out);
	} else {
		qv_client *c = NULL;
		int r = qv_connect(sock, NULL, &c);
		if (r < 0) {
			qvt_fail("connect right after the detached start returned: %d", r);
		} else {
			struct qvt_model m;
			qvt_model_open(c, argv[2], "trade-mlp", &m);
			qvt_infer_check(c, &m, 0, 2, "the detached daemon");
			qvt_ref_free(&m.ref);
			qv_close(c);
		}
		snprintf(cmd, sizeof(cmd), "%s --socket %s drain", argv[4], sock);
		if (sh(cmd, out, sizeof(out)) != 0)
			qvt_fail("quiverctl drain of the detached daemon failed: %s", out);
		/* it removes its socket on the way out */
		uint64_t until = qvt_now_ns() + 10000000000ull;
		while (stat(sock, &st) == 0 && qvt_now_ns() < until)
			qvt_sleep_ms(20);
		if (stat(sock, &st) == 0)
			qvt_fail("the detached daemon did not exit after drain");
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	sh(cmd, out, sizeof(out));
	return qvt_failures() ? 1 : 0;
}
