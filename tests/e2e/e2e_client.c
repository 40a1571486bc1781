/* SPDX-License-Identifier: Apache-2.0 */
/*
 * e2e_client.c - a libquiver client run as its own process by the tests:
 *
 *   e2e_client probe SOCKET
 *     qv_connect, then exits 0; a refused connect exits 100 + errno
 *     (so -EACCES is 113, -EPERM 101) after printing the error.
 *   e2e_client stream SOCKET MODEL ROWS
 *     connects, looks MODEL up, keeps every slot busy with ROWS-row
 *     requests forever, and prints "streaming" once the first completion
 *     is back: the test kills it at a random point mid-stream.
 *   e2e_client hog SOCKET N
 *     opens up to N connections to SOCKET (fewer if the daemon stops
 *     accepting for 2 s) and sends nothing (raising its own
 *     descriptor limit as far as the hard limit allows), prints
 *     "holding N", then sleeps until killed: a peer trying to fill the
 *     daemon's connection table.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "quiver.h"

static int probe(const char *sock)
{
	qv_client *c;
	int r = qv_connect(sock, NULL, &c);
	if (r < 0) {
		printf("qv_connect: %d (%s)\n", r, qv_strerror(r));
		fflush(stdout);
		return 100 + (-r < 100 ? -r : 99);
	}
	printf("connected\n");
	qv_close(c);
	return 0;
}

static int stream(const char *sock, const char *model, uint32_t rows)
{
	static float in[256 * 1024], out[64][4096];
	struct qv_connect_opts o = { .client_name = "e2e-stream", .slots = 64,
				     .dead_after_ms = 5000 };
	struct qv_model_desc d;
	struct qv_result res[64];
	qv_client *c;
	bool said = false;

	int r = qv_connect(sock, &o, &c);
	if (r == 0)
		r = qv_model_lookup(c, model, &d);
	if (r < 0) {
		fprintf(stderr, "stream: %s\n", qv_strerror(r));
		return 1;
	}
	if ((size_t)rows * d.in_dim > sizeof(in) / sizeof(in[0]) ||
	    (size_t)rows * d.out_dim > 4096 || rows > d.max_batch)
		rows = 1;
	for (size_t i = 0; i < (size_t)rows * d.in_dim; i++)
		in[i] = (float)(i % 17) * 0.125f - 1.0f;
	for (uint64_t id = 0;; ) {
		/* Outputs are not checked here, so buffers may be shared. */
		while (qv_inflight(c) < 64) {
			struct qv_request q = { .handle = d.handle, .rows = rows, .input = in,
						.request_id = id };
			r = qv_submit(c, &q, out[id % 64], 4096);
			if (r == -EAGAIN)
				break;
			if (r < 0) {
				fprintf(stderr, "stream: submit: %s\n", qv_strerror(r));
				return 1;
			}
			id++;
		}
		int n = qv_poll(c, res, 64);
		if (n < 0) {
			fprintf(stderr, "stream: poll: %s\n", qv_strerror(n));
			return 1;
		}
		if (n > 0 && !said) {
			printf("streaming\n");
			fflush(stdout);
			said = true;
		}
	}
}

static _Noreturn void hog(const char *sock, unsigned n)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct rlimit rl;
	unsigned k = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n + 16) {
		rl.rlim_cur = rl.rlim_max < n + 16 ? rl.rlim_max : n + 16;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
	/* Non-blocking connects: a daemon that stopped accepting (a full
	 * backlog) answers EAGAIN; retried for 2 s, then the hog holds what it has. */
	int waited_ms = 0;
	while (k < n) {
		int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			break;
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
			k++;
			continue;
		}
		int e = errno;
		close(fd);
		if (e != EAGAIN || waited_ms >= 2000) {
			fprintf(stderr, "hog: connection %u: %s\n", k, strerror(e));
			break;
		}
		usleep(10000);
		waited_ms += 10;
	}
	printf("holding %u\n", k);
	fflush(stdout);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "hog") == 0)
		hog(argv[2], (unsigned)strtoul(argv[3], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "probe") == 0)
		return probe(argv[2]);
	if (argc == 5 && strcmp(argv[1], "stream") == 0)
		return stream(argv[2], argv[3], (uint32_t)strtoul(argv[4], NULL, 10));
	fprintf(stderr, "usage: %s probe SOCKET | stream SOCKET MODEL ROWS | hog SOCKET N\n", argv[0]);
	return 2;
}
