/* SPDX-License-Identifier: Apache-2.0 */
/*
 * notify.c - sd_notify's datagram protocol, written out here rather than
 * linking libsystemd: the protocol is one sendto() on an AF_UNIX datagram
 * socket (documented as stable in sd_notify(3)), quiverd needs three
 * messages of it, and a library dependency for that would also have to be
 * present on hosts and images that never run systemd (containers). The
 * same code serves the fake NOTIFY_SOCKET of the tests.
 */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int qv_notify_send(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n, len = strlen(msg);
	socklen_t salen;
	ssize_t w;
	int fd, r = 1;

	if (!path || !path[0])
		return 0;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n < 2 || n >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* an abstract socket: no NUL terminator in its length */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Never wait: a receiver that does not read (its queue holds only
	 * net.unix.max_dgram_qlen datagrams, 10 by default) must not stop the
	 * control thread. A message that does not fit is lost: -EAGAIN. */
	do
		w = sendto(fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT, (const struct sockaddr *)&sa,
			   salen);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		r = -errno;
	else if ((size_t)w != len)
		r = -EMSGSIZE;
	close(fd);
	return r;
}

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || !s[0] || s[0] == '-' || s[0] == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int qv_notify_watchdog_usec(uint64_t *ret_usec)
{
	const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	uint64_t v, p;

	if (!us)
		return 0;
	if (parse_u64(us, &v) < 0 || v == 0)
		return -EINVAL;
	if (pid) {
		if (parse_u64(pid, &p) < 0 || p == 0)
			return -EINVAL;
		if (p != (uint64_t)getpid())
			return 0; /* meant for another process (we were exec'd by it) */
	}
	*ret_usec = v;
	return 1;
}

bool qv_workers_progressed(const uint64_t *beats, uint64_t *seen, uint32_t n)
{
	bool all = true;

	for (uint32_t i = 0; i < n; i++) {
		if (beats[i] == seen[i])
			all = false;
		seen[i] = beats[i];
	}
	return all;
}
