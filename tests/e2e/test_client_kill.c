/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_client_kill.c - a client SIGKILLed mid-stream, 100 times, while two
 * other clients keep running: they see no error and correct outputs, and
 * afterwards the daemon holds no more fds and no more memfd mappings than
 * before (every retired channel was unmapped and closed), and its RSS has
 * not grown beyond a generous bound.
 *
 * The RSS bound: each killed client streams 8-row ctr-mlp requests
 * (8 KiB of input a slot, two pages, plus a page of output) through 64
 * slots, so the daemon touches about 64 * 12 KiB plus rings, ~0.8 MiB, of
 * each channel. 100 leaked channels would cost ~75 MiB, so +64 MiB
 * catches a leak of every channel while leaving room for allocator and
 * stats noise. The exact checks are the fd and memfd-mapping counts; RSS
 * is the backstop.
 *
 * Usage: test_client_kill QUIVERD REPO CLIENT [QUIVERCTL]
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define KILLS 100
#define RSS_BOUND_KIB (64L * 1024)

static atomic_bool stop;

struct checker {
	const char *sock, *repo;
	int id;
	long ok, bad;
};

static void *checker(void *p)
{
	struct checker *a = p;
	char name[32], who[32];
	struct qvt_model m;

	snprintf(name, sizeof(name), "e2e-steady-%d", a->id);
	snprintf(who, sizeof(who), "steady client %d", a->id);
	qv_client *c = qvt_connect(a->sock, name, 8);
	qvt_model_open(c, a->repo, a->id ? "ctr-mlp" : "trade-mlp", &m);
	for (uint32_t i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
		uint32_t rows = 1 + i % 4;
		if (qvt_infer_check(c, &m, i % (m.ref.rows - rows + 1), rows, who) == 0)
			a->ok++;
		else
			a->bad++;
	}
	qv_close(c);
	qvt_ref_free(&m.ref);
	return NULL;
}

/* Starts a streaming client and returns once it has had a completion. */
static pid_t spawn_stream(const char *client, const char *sock)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		qvt_die("pipe: %s", strerror(errno));
	const char *argv[] = { client, "stream", sock, "ctr-mlp", "8", NULL };
	pid_t pid = fork();
	if (pid < 0)
		qvt_die("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execv(client, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	char buf[32];
	int r = poll(&pfd, 1, 10000);
	ssize_t n = r == 1 ? read(p[0], buf, sizeof(buf)) : -1;
	close(p[0]);
	if (n <= 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		qvt_die("streaming client did not get a completion within 10 s");
	}
	return pid;
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	struct checker ck[2];
	pthread_t th[2];

	if (argc < 4) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT\n", argv[0]);
		return 2;
	}
	if (qvt_daemon_start(&d, argv[1], argv[2], NULL) < 0)
		qvt_die("quiverd did not start");
	for (int i = 0; i < 2; i++) {
		ck[i] = (struct checker){ .sock = d.sock, .repo = argv[2], .id = i };
		pthread_create(&th[i], NULL, checker, &ck[i]);
	}
	/* One throw-away stream first, so that whatever the daemon creates
	 * once (the first channel's bookkeeping) is in the baseline. */
	pid_t warm = spawn_stream(argv[3], d.sock);
	kill(warm, SIGKILL);
	waitpid(warm, NULL, 0);
	qvt_sleep_ms(500);

	int fd0 = qvt_fd_count(d.pid), maps0 = qvt_memfd_maps(d.pid);
	long rss0 = qvt_rss_kib(d.pid);
	fprintf(stderr, "baseline: %d fds, %d memfd mappings, RSS %ld KiB\n", fd0, maps0, rss0);
	if (fd0 < 0 || maps0 < 0 || rss0 < 0)
		qvt_die("cannot read /proc/%d", (int)d.pid);

	srand(12345);
	for (int k = 0; k < KILLS; k++) {
		pid_t pid = spawn_stream(argv[3], d.sock);
		qvt_sleep_ms((uint32_t)(rand() % 6));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (!qvt_daemon_alive(&d))
			qvt_die("quiverd died after %d client kills", k + 1);
	}

	/* Retirement is asynchronous (in-flight requests finish first). */
	int fd1 = -1, maps1 = -1;
	uint64_t t0 = qvt_now_ns();
	while (qvt_now_ns() - t0 < 20ull * 1000000000u) {
		fd1 = qvt_fd_count(d.pid);
		maps1 = qvt_memfd_maps(d.pid);
		if (fd1 <= fd0 && maps1 <= maps0)
			break;
		qvt_sleep_ms(50);
	}
	long rss1 = qvt_rss_kib(d.pid);
	fprintf(stderr, "after %d kills: %d fds, %d memfd mappings, RSS %ld KiB (%+ld KiB), "
			"settled in %.0f ms\n", KILLS, fd1, maps1, rss1, rss1 - rss0,
		(double)(qvt_now_ns() - t0) / 1e6);
	if (fd1 != fd0)
		qvt_fail("daemon fds: %d before, %d after %d client kills", fd0, fd1, KILLS);
	if (maps1 != maps0)
		qvt_fail("daemon memfd mappings: %d before, %d after", maps0, maps1);
	if (rss1 - rss0 > RSS_BOUND_KIB)
		qvt_fail("daemon RSS grew by %ld KiB (> %ld)", rss1 - rss0, RSS_BOUND_KIB);

	atomic_store_explicit(&stop, true, memory_order_relaxed);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		fprintf(stderr, "steady client %d: %ld correct, %ld wrong\n", i, ck[i].ok,
			ck[i].bad);
		if (ck[i].bad || ck[i].ok == 0)
			qvt_fail("steady client %d: %ld wrong of %ld", i, ck[i].bad,
				 ck[i].ok + ck[i].bad);
	}
	return qvt_finish(&d);
}
