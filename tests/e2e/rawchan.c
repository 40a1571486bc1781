/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rawchan.c - see rawchan.h. The test is one of the two parties of the
 * channel, so the same acquire/release pairing as libquiver applies: the
 * ring helpers of qv_ring.h do the ordering and name their pairs.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "quiver.h"
#include "rawchan.h"

static int connect_seqpacket(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
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

static int send_msg(int fd, uint16_t type, uint32_t seq, const void *p, uint32_t len)
{
	uint8_t buf[sizeof(struct qv_msg_hdr) + 4096];
	struct qv_msg_hdr h = { .magic = QV_PROTO_MAGIC, .type = type,
				.version = QV_PROTO_VERSION, .len = len, .seq = seq };
	if (len > sizeof(buf) - sizeof(h))
		return -EMSGSIZE;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), p, len);
	if (send(fd, buf, sizeof(h) + len, MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

/* Receives one message (and an fd, if one came) within 10 s. */
static int recv_msg(int fd, struct qv_msg_hdr *ret_h, void *payload, size_t cap,
		    int *ret_fd)
{
	uint8_t buf[sizeof(struct qv_msg_hdr) + 65536];
	union {
		struct cmsghdr c;
		char b[CMSG_SPACE(sizeof(int))];
	} ctrl;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.b,
			    .msg_controllen = sizeof(ctrl.b) };
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int r = poll(&pfd, 1, 10000);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	int got_fd = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&got_fd, CMSG_DATA(c), sizeof(int));
	if ((size_t)n < sizeof(*ret_h)) {
		if (got_fd >= 0)
			close(got_fd);
		return -EPROTO;
	}
	memcpy(ret_h, buf, sizeof(*ret_h));
	if (ret_h->magic != QV_PROTO_MAGIC || ret_h->len != (size_t)n - sizeof(*ret_h)) {
		if (got_fd >= 0)
			close(got_fd);
		return -EPROTO;
	}
	size_t take = ret_h->len < cap ? ret_h->len : cap;
	memcpy(payload, buf + sizeof(*ret_h), take);
	if (cap > take)
		((char *)payload)[take] = '\0';
	if (ret_fd)
		*ret_fd = got_fd;
	else if (got_fd >= 0)
		close(got_fd);
	return 0;
}

int qvt_raw_open(struct qvt_raw *ch, const char *sock_path, uint32_t slots, uint32_t slot_in,
		 uint32_t slot_out)
{
	return qvt_raw_open_abi(ch, sock_path, QV_ABI_VERSION, slots, slot_in, slot_out);
}

int qvt_raw_open_abi(struct qvt_raw *ch, const char *sock_path, uint32_t abi, uint32_t slots,
		     uint32_t slot_in, uint32_t slot_out)
{
	struct qv_hello hello = { .abi_version = abi, .slots = slots,
				  .slot_in_bytes = slot_in, .slot_out_bytes = slot_out };
	struct qv_hello_ok ok;
	struct qv_msg_hdr h;
	int fd, mfd = -1, r;

	memset(ch, 0, sizeof(*ch));
	snprintf(hello.client_name, sizeof(hello.client_name), "e2e-raw-%d", (int)getpid());
	r = connect_seqpacket(sock_path, &fd);
	if (r < 0)
		return r;
	r = send_msg(fd, QV_MSG_HELLO, 1, &hello, sizeof(hello));
	if (r == 0)
		r = recv_msg(fd, &h, &ok, sizeof(ok), &mfd);
	if (r == 0 && h.status != 0)
		r = h.status < 0 ? h.status : -EPROTO;
	if (r == 0 && (h.type != QV_MSG_HELLO_OK || h.seq != 1 || h.len != sizeof(ok) || mfd < 0))
		r = -EPROTO;
	if (r < 0) {
		if (mfd >= 0)
			close(mfd);
		close(fd);
		return r;
	}
	void *p = mmap(NULL, ok.seg_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	close(mfd);
	if (p == MAP_FAILED) {
		r = -errno;
		close(fd);
		return r;
	}
	ch->sock = fd;
	ch->base = p;
	ch->map_bytes = ok.seg_bytes;
	ch->hdr = p;
	/* Pairs with the server's release store of magic in qv_seg_init_hdr(). */
	if (atomic_load_explicit(&ch->hdr->magic, memory_order_acquire) != QV_SEG_MAGIC ||
	    ch->hdr->abi_version != QV_ABI_VERSION) {
		qvt_raw_close(ch);
		return -EPROTO;
	}
	qv_seg_read_layout(ch->hdr, &ch->l);
	if (qv_seg_check(&ch->l, ch->map_bytes) < 0) {
		qvt_raw_close(ch);
		return -EPROTO;
	}
	qv_ring_prod_init(&ch->sq, ch->base + ch->l.sq_off, ch->l.ring_entries,
			  sizeof(struct qv_sqe));
	qv_ring_cons_init(&ch->cq, ch->base + ch->l.cq_off, ch->l.ring_entries,
			  sizeof(struct qv_cqe));
	ch->seq = 1;
	return 0;
}

void qvt_raw_close(struct qvt_raw *ch)
{
	if (ch->base)
		munmap(ch->base, ch->map_bytes);
	if (ch->sock > 0)
		close(ch->sock);
	memset(ch, 0, sizeof(*ch));
}

int qvt_raw_lookup(struct qvt_raw *ch, const char *name, struct qv_model_wire *ret)
{
	struct qv_lookup_reply lr;
	int r = qvt_raw_lookup_full(ch, name, &lr);

	if (r == 0)
		*ret = lr.m;
	return r;
}

int qvt_raw_lookup_v1(int sock, uint32_t seq, const char *name)
{
	char q[QV_LOOKUP_V1_BYTES];
	struct qv_lookup_reply w;
	struct qv_msg_hdr h;
	int r;

	memset(q, 0, sizeof(q));
	snprintf(q, sizeof(q), "%s", name);
	r = send_msg(sock, QV_MSG_LOOKUP, seq, q, sizeof(q));
	if (r == 0)
		r = recv_msg(sock, &h, &w, sizeof(w), NULL);
	if (r < 0)
		return r;
	if (h.seq != seq || h.type != QV_MSG_ERROR)
		return -EPROTO;
	return h.status;
}

int qvt_raw_lookup_full(struct qvt_raw *ch, const char *name, struct qv_lookup_reply *ret)
{
	struct qv_lookup q;
	struct qv_lookup_reply w;
	struct qv_msg_hdr h;
	memset(&q, 0, sizeof(q));
	snprintf(q.name, sizeof(q.name), "%s", name);
	q.abi_version = QV_ABI_VERSION;
	uint32_t seq = ++ch->seq;
	int r = send_msg(ch->sock, QV_MSG_LOOKUP, seq, &q, sizeof(q));
	if (r == 0)
		r = recv_msg(ch->sock, &h, &w, sizeof(w), NULL);
	if (r < 0)
		return r;
	if (h.seq != seq)
		return -EPROTO;
	if (h.status == QV_UNKNOWN_MODEL || h.status == -ENOENT)
		return -ENOENT;
	if (h.status != 0)
		return h.status < 0 ? h.status : -EPROTO;
	if (h.type != QV_MSG_LOOKUP_OK || h.len < offsetof(struct qv_lookup_reply, t) ||
	    w.n_inputs == 0 || w.n_inputs > QV_WIRE_MAX_TENSORS || w.n_outputs == 0 ||
	    w.n_outputs > QV_WIRE_MAX_TENSORS ||
	    h.len != qv_lookup_reply_bytes(w.n_inputs, w.n_outputs))
		return -EPROTO;
	*ret = w;
	return 0;
}

float *qvt_raw_in(struct qvt_raw *ch, uint32_t i)
{
	return (float *)(void *)(ch->base + qv_seg_slot_off(&ch->l, i));
}

float *qvt_raw_out(struct qvt_raw *ch, uint32_t i)
{
	return (float *)(void *)(ch->base + qv_seg_slot_off(&ch->l, i) + ch->l.slot_in_bytes);
}

int qvt_raw_push(struct qvt_raw *ch, const struct qv_sqe *e)
{
	int space = qv_ring_prod_space(&ch->sq);
	if (space < 0)
		return space;
	if (space == 0)
		return -EAGAIN;
	memcpy(qv_ring_prod_entry(&ch->sq, 0), e, sizeof(*e));
	/* Release inside: the slot data and descriptor before the tail. */
	qv_ring_prod_commit(&ch->sq, 1);
	return 0;
}

bool qvt_raw_closed(struct qvt_raw *ch)
{
	if (atomic_load_explicit(&ch->hdr->server_state, memory_order_relaxed) == QV_SRV_CLOSED)
		return true;
	struct pollfd pfd = { .fd = ch->sock, .events = POLLIN };
	if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR)))
		return true;
	return false;
}

int qvt_raw_wait(struct qvt_raw *ch, uint32_t timeout_ms, struct qv_cqe *ret)
{
	uint64_t t0 = qvt_now_ns();
	uint32_t spins = 0;
	for (;;) {
		int n = qv_ring_cons_avail(&ch->cq);
		if (n < 0)
			return n;
		if (n > 0) {
			memcpy(ret, qv_ring_cons_entry(&ch->cq, 0), sizeof(*ret));
			qv_ring_cons_release(&ch->cq, 1);
			return 1;
		}
		if ((++spins & 1023) == 0) {
			if (qvt_raw_closed(ch))
				return -EPIPE;
			if (qvt_now_ns() - t0 > (uint64_t)timeout_ms * 1000000u)
				return 0;
			/* Be gentle on a 2-core machine shared with the daemon. */
			struct timespec ts = { 0, 20000 };
			nanosleep(&ts, NULL);
		}
	}
}

int qvt_ctl_cmd(const char *sock_path, const char *json, int32_t *ret_status, char *buf,
		size_t cap)
{
	struct qv_msg_hdr h;
	int fd;
	int r = connect_seqpacket(sock_path, &fd);
	if (r < 0)
		return r;
	r = send_msg(fd, QV_MSG_CMD, 7, json, (uint32_t)strlen(json));
	if (r == 0)
		r = recv_msg(fd, &h, buf, cap, NULL);
	close(fd);
	if (r < 0)
		return r;
	if (h.seq != 7 || (h.type != QV_MSG_CMD_REPLY && h.type != QV_MSG_ERROR))
		return -EPROTO;
	*ret_status = h.status;
	return 0;
}
