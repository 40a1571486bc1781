/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_conn.c - one command round trip over quiverd's SOCK_SEQPACKET
 * control socket: qv_msg_hdr + JSON in one packet, one reply packet with
 * the same seq (a long reply: QV_MSG_CMD_REPLY_PART packets, then the
 * final QV_MSG_CMD_REPLY, concatenated here). A fresh connection per command keeps quiverctl stateless;
 * the control thread is the slow path and a connect costs microseconds.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "qv_proto.h"

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int open_socket(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, n + 1);

	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	*ret_fd = fd;
	return 0;
}

/* Waits for the reply packet; the daemon may also close on us (a peer it
 * does not allow), which reads as EOF. */
static int recv_reply(int fd, uint32_t timeout_ms, uint8_t *buf, size_t cap, size_t *ret_n)
{
	uint64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		uint64_t t = now_ms();
		if (t >= deadline)
			return -ETIMEDOUT;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r = poll(&pfd, 1, (int)(deadline - t));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		ssize_t n = recv(fd, buf, cap, MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		if ((size_t)n > cap)
			return -EMSGSIZE;
		*ret_n = (size_t)n;
		return 0;
	}
}

int ctl_call(const char *socket_path, uint32_t timeout_ms, const char *json, size_t len,
	     struct ctl_reply *ret_reply)
{
	if (len > QV_MSG_MAX)
		return -EMSGSIZE;
	size_t cap = sizeof(struct qv_msg_hdr) + QV_MSG_MAX;
	char *text = NULL;
	size_t tlen = 0;
	uint8_t *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;

	int fd = -1;
	int r = open_socket(socket_path, &fd);
	if (r < 0)
		goto out;

	/* Any seq will do on a private connection; a non-zero one catches a
	 * daemon that answers with a zeroed header. */
	uint32_t seq = (uint32_t)getpid() | 1u;
	struct qv_msg_hdr h = {
		.magic = QV_PROTO_MAGIC,
		.type = QV_MSG_CMD,
		.version = QV_PROTO_VERSION,
		.len = (uint32_t)len,
		.seq = seq,
	};
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), json, len);
	if (send(fd, buf, sizeof(h) + len, MSG_NOSIGNAL) < 0) {
		r = -errno;
		goto out;
	}

	uint64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		size_t n = 0;
		uint64_t t = now_ms();
		r = t >= deadline ? -ETIMEDOUT : recv_reply(fd, (uint32_t)(deadline - t), buf, cap, &n);
		if (r < 0)
			goto out;
		memcpy(&h, buf, n < sizeof(h) ? n : sizeof(h));
		if (n < sizeof(h) || h.magic != QV_PROTO_MAGIC || h.seq != seq ||
		    h.len != n - sizeof(h) ||
		    (h.type != QV_MSG_CMD_REPLY && h.type != QV_MSG_ERROR &&
		     h.type != QV_MSG_CMD_REPLY_PART) ||
		    (h.type == QV_MSG_CMD_REPLY_PART && h.len != QV_MSG_CHUNK) ||
		    (tlen && h.type == QV_MSG_ERROR) || tlen + h.len > QV_REPLY_MAX) {
			r = -EPROTO;
			goto out;
		}
		char *p = realloc(text, tlen + h.len + 1);
		if (!p) {
			r = -ENOMEM;
			goto out;
		}
		text = p;
		memcpy(text + tlen, buf + sizeof(h), h.len);
		tlen += h.len;
		text[tlen] = '\0';
		if (h.type != QV_MSG_CMD_REPLY_PART)
			break;
	}
	/* A plain-text QV_MSG_ERROR (e.g. a refused peer) has no JSON; its
	 * negative status carries the meaning and the text is the message. */
	ret_reply->status = h.type == QV_MSG_ERROR && h.status == 0 ? -EPROTO : h.status;
	ret_reply->json = text;
	ret_reply->len = tlen;
	text = NULL;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	free(text);
	free(buf);
	return r;
}

void ctl_reply_free(struct ctl_reply *r)
{
	free(r->json);
	r->json = NULL;
}
