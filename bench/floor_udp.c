/* SPDX-License-Identifier: Apache-2.0 */
/*
 * floor_udp.c - see floor_udp.h. Both sockets are made before fork(), so
 * the echo side is bound before the first datagram leaves and no start-up
 * handshake is needed; the echo process is killed at the end (and by
 * PR_SET_PDEATHSIG if the bench dies first).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floor_udp.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int loopback_socket(struct sockaddr_in *ret_addr)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t sl = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &sl) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret_addr = a;
	return fd;
}

static _Noreturn void echo(int fd, uint8_t *buf, size_t cap)
{
	for (;;) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);

		if (n >= 0)
			(void)sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
	}
}

int qv_floor_udp(uint32_t iters, uint32_t warmup, uint32_t payload_bytes, uint64_t *ret_lat_ns)
{
	struct sockaddr_in srv_addr, cli_addr;
	uint64_t *lat = NULL;
	uint8_t *buf = NULL;
	int srv = -1, cli = -1, r = 0;
	pid_t pid = -1;

	if (iters == 0 || ret_lat_ns == NULL || payload_bytes == 0 || payload_bytes > 65000)
		return -EINVAL;
	buf = calloc(1, 65536);
	lat = calloc(iters, sizeof(*lat));
	if (buf == NULL || lat == NULL) {
		r = -ENOMEM;
		goto out;
	}
	srv = loopback_socket(&srv_addr);
	cli = loopback_socket(&cli_addr);
	if (srv < 0 || cli < 0) {
		r = srv < 0 ? srv : cli;
		goto out;
	}
	if (connect(cli, (struct sockaddr *)&srv_addr, sizeof(srv_addr)) < 0) {
		r = -errno;
		goto out;
	}
	pid_t parent = getpid();
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto out;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		close(cli);
		echo(srv, buf, 65536);
	}

	for (uint64_t i = 0; i < (uint64_t)warmup + iters; i++) {
		uint64_t t0, t1, sent;
		ssize_t n;

		memcpy(buf, &i, sizeof(i) < payload_bytes ? sizeof(i) : payload_bytes);
		t0 = now_ns();
		if (send(cli, buf, payload_bytes, 0) < 0) {
			r = -errno;
			goto out;
		}
		sent = t0;
		for (;;) {
			n = recv(cli, buf, 65536, MSG_DONTWAIT);
			if (n >= 0)
				break;
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				r = -errno;
				goto out;
			}
			if (now_ns() - sent > 10000000000ull) {
				r = -ETIMEDOUT;
				goto out;
			}
		}
		t1 = now_ns();
		if (i >= warmup)
			lat[i - warmup] = t1 - t0;
	}
	memcpy(ret_lat_ns, lat, (size_t)iters * sizeof(*lat));
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (srv >= 0)
		close(srv);
	if (cli >= 0)
		close(cli);
	free(buf);
	free(lat);
	return r;
}
