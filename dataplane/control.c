/* SPDX-License-Identifier: Apache-2.0 */
/*
 * control.c - the control thread's loop: the listening socket, client
 * connections (HELLO, LOOKUP, CMD), channel hand-off and retirement, and
 * the drain on SIGTERM/SIGINT. Blocks in poll(); may allocate and log.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "chan_layout.h"
#include "channel.h"
#include "quiverd.h"
#include "state.h"
#include "loader.h"
#include "log.h"
#include "ops.h"

#define MAX_CONNS 4096
/*
 * Connections of peers whose credentials are not allowed are kept only to
 * answer their first message with -EACCES (a clear refusal beats a reset),
 * then closed; at most this many at once, so a refused uid cannot fill the
 * table and lock everyone else out. Past it they are closed at accept.
 */
#define MAX_REFUSED_CONNS 32
/* accept() out of descriptors (EMFILE/ENFILE) or memory: the listening
 * socket stays readable, so stop polling it for this long instead of
 * spinning on it, and log once per episode. */
#define ACCEPT_BACKOFF_MS 100
#define MAX_GROUPS 64
#define TICK_BUSY_MS 1
#define TICK_BEAT_MS 10
#define TICK_IDLE_MS 200
/* A worker that made no progress for this long is hung: stop beating for it. */
#define WORKER_STALL_NS 1000000000ull

struct conn {
	uint64_t id;                 /* unique for the daemon's life: a load's answer finds it */
	int fd;
	pid_t pid;
	uid_t uid;
	int allowed;
	int admin;                   /* may run mutating commands */
	struct qv_chan *chan;
	/* A long command reply still being sent in QV_MSG_CHUNK packets: the
	 * rest goes out as the socket drains (POLLOUT); the connection's next
	 * message is read only after it, so replies stay in order. */
	char *tx;
	size_t tx_len, tx_off;
	uint32_t tx_seq;
	int32_t tx_status;
	/* A load handed to the loader thread waits for its answer: nothing more
	 * is read from this connection until it is sent (replies stay in order),
	 * but a hang-up is still seen (POLLHUP). */
	int waiting;
};

struct ctl {
	struct qv_daemon *d;
	int lfd;
	int sigfd;
	struct conn *conns;
	uint32_t nconns;
	struct qv_chan **retiring;   /* RETIRE posted, waiting for the worker's ack */
	uint32_t nretiring;
	struct pollfd *pfds;
	uint8_t *rx;
	uint32_t next_chan_id;
	uint64_t next_conn_id;
	int reload_pending;          /* SIGHUP not yet acted on: 1, 2 once "follows" is logged */
	uint64_t last_beat_ns;
	uint32_t nrefused;           /* open connections with allowed == 0 */
	uint64_t refused_dropped;    /* refused peers closed at accept (over the cap) */
	uint64_t accept_paused_until_ns; /* 0: accepting */
	int accept_pause_logged;
	uint64_t seen_turns[QV_MAX_WORKERS];
	uint64_t progress_ns[QV_MAX_WORKERS];
};

/* ---- credentials ------------------------------------------------------ */

static int gid_allowed(const struct qv_daemon *d, gid_t g)
{
	for (uint32_t i = 0; i < d->n_allow_gid; i++)
		if (d->allow_gid[i] == g)
			return 1;
	return 0;
}

/*
 * Root, the daemon's own uid, any --allow-uid, or a primary or
 * supplementary group named by --allow-gid.
 */
static int gid_in(const gid_t *list, uint32_t n, gid_t g)
{
	for (uint32_t i = 0; i < n; i++)
		if (list[i] == g)
			return 1;
	return 0;
}

/* Root, the daemon's own uid, or a primary or supplementary group of --admin-gid. */
static int peer_admin(const struct qv_daemon *d, int fd, const struct ucred *cr)
{
	gid_t groups[MAX_GROUPS];
	socklen_t len = sizeof(groups);

	if (cr->uid == 0 || cr->uid == geteuid())
		return 1;
	if (!d->n_admin_gid)
		return 0;
	if (gid_in(d->admin_gid, d->n_admin_gid, cr->gid))
		return 1;
#ifdef SO_PEERGROUPS
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
		for (uint32_t i = 0; i < len / sizeof(gid_t); i++)
			if (gid_in(d->admin_gid, d->n_admin_gid, groups[i]))
				return 1;
#else
	(void)fd;
	(void)groups;
	(void)len;
#endif
	return 0;
}

static int peer_allowed(const struct qv_daemon *d, int fd, struct conn *c)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	gid_t groups[MAX_GROUPS];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -errno;
	c->pid = cr.pid;
	c->uid = cr.uid;
	c->admin = peer_admin(d, fd, &cr);
	if (c->admin)
		return 1;
	for (uint32_t i = 0; i < d->n_allow_uid; i++)
		if (d->allow_uid[i] == cr.uid)
			return 1;
	if (gid_allowed(d, cr.gid))
		return 1;
#ifdef SO_PEERGROUPS
	len = sizeof(groups);
	if (d->n_allow_gid && getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
		for (uint32_t i = 0; i < len / sizeof(gid_t); i++)
			if (gid_allowed(d, groups[i]))
				return 1;
	}
#else
	(void)groups;
#endif
	return 0;
}

/* ---- the listening socket --------------------------------------------- */

static int make_parent_dir(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * Refuses to start over a live quiverd (connect succeeds) or over a file
 * that is not a socket; removes a stale socket left by a crash.
 */
static int listen_socket(const char *path, mode_t mode, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			qv_log(QV_LOG_ERROR, "%s exists and is not a socket; not replacing it", path);
			return -EEXIST;
		}
		fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (r == 0) {
			qv_log(QV_LOG_ERROR, "another quiverd is listening on %s", path);
			return -EADDRINUSE;
		}
		qv_log(QV_LOG_INFO, "removing stale socket %s", path);
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}
	r = make_parent_dir(path);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* Created with no access for others, then opened up to `mode`: no window. */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || chmod(path, mode) < 0 || listen(fd, 128) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* ---- messages --------------------------------------------------------- */

static int send_msg(int fd, uint16_t type, uint32_t seq, int32_t status, const void *payload,
		    uint32_t len, int pass_fd)
{
	struct qv_msg_hdr h = {
		.magic = QV_PROTO_MAGIC,
		.type = type,
		.version = QV_PROTO_VERSION,
		.len = len,
		.seq = seq,
		.status = status,
	};
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (pass_fd >= 0) {
		struct cmsghdr *cmh;
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		cmh = CMSG_FIRSTHDR(&mh);
		cmh->cmsg_level = SOL_SOCKET;
		cmh->cmsg_type = SCM_RIGHTS;
		cmh->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmh), &pass_fd, sizeof(int));
	}
	/* Non-blocking: a client that does not read its replies is dropped, never waited for. */
	if (sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return -errno;
	return 0;
}

static int send_error(int fd, uint32_t seq, int32_t err, const char *text)
{
	return send_msg(fd, QV_MSG_ERROR, seq, err, text, (uint32_t)strlen(text), -1);
}

static struct qv_worker *least_loaded(struct qv_daemon *d)
{
	struct qv_worker *best = NULL;

	for (uint32_t i = 0; i < d->nworkers; i++) {
		struct qv_worker *w = d->workers[i];
		if (w->nchans_ctl < QV_WORKER_MAX_CHANS &&
		    (!best || w->nchans_ctl < best->nchans_ctl))
			best = w;
	}
	return best;
}

static int on_hello(struct ctl *t, struct conn *c, const struct qv_msg_hdr *h, const void *p)
{
	struct qv_daemon *d = t->d;
	struct qv_hello hello;
	struct qv_seg_layout l;
	struct qv_hello_ok ok;
	struct qv_worker *w;
	struct qv_chan *ch;
	int memfd, r;

	if (c->chan)
		return send_error(c->fd, h->seq, -EALREADY, "this connection already has a channel");
	if (h->len != sizeof(hello))
		return send_error(c->fd, h->seq, -EPROTO, "HELLO payload has the wrong size");
	if (d->draining)
		return send_error(c->fd, h->seq, -ESHUTDOWN, "quiverd is draining");
	memcpy(&hello, p, sizeof(hello));
	hello.client_name[sizeof(hello.client_name) - 1] = '\0';
	for (char *s = hello.client_name; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			*s = '?';
	if (hello.abi_version != QV_ABI_VERSION) {
		qv_log(QV_LOG_WARN,
		       "HELLO from pid %d ('%s') refused: client speaks channel ABI %u, this quiverd ABI %u",
		       (int)c->pid, hello.client_name, hello.abi_version, QV_ABI_VERSION);
		return send_error(c->fd, h->seq, -EPROTONOSUPPORT, "channel ABI not supported");
	}
	r = qv_chan_layout_compute(&hello, QV_CHAN_MAX_SEG_BYTES, &l);
	if (r < 0) {
		qv_log(QV_LOG_WARN, "HELLO from pid %d refused: slots %u in %u out %u: %s",
		       (int)c->pid, hello.slots, hello.slot_in_bytes, hello.slot_out_bytes,
		       strerror(-r));
		return send_error(c->fd, h->seq, r, "channel sizes refused");
	}
	uint32_t held = 0;
	for (uint32_t i = 0; i < t->nconns; i++)
		held += t->conns[i].chan && t->conns[i].uid == c->uid;
	if (held >= d->max_chans_per_uid) {
		char why[128];
		qv_log(QV_LOG_WARN, "HELLO from pid %d refused: uid %u holds %u channels "
		       "(--max-channels-per-uid %u)", (int)c->pid, (unsigned)c->uid, held,
		       d->max_chans_per_uid);
		snprintf(why, sizeof(why), "uid %u already holds %u channels, the limit "
			 "(--max-channels-per-uid)", (unsigned)c->uid, held);
		return send_error(c->fd, h->seq, -EBUSY, why);
	}
	w = least_loaded(d);
	if (!w)
		return send_error(c->fd, h->seq, -EBUSY, "every worker is full");
	r = qv_chan_create(&l, t->next_chan_id, w->id, w->node, &ch, &memfd);
	if (r < 0) {
		qv_log(QV_LOG_ERROR, "channel for pid %d: %s", (int)c->pid, strerror(-r));
		return send_error(c->fd, h->seq, r, "cannot create the channel");
	}
	ch->pid = c->pid;
	ch->uid = c->uid;
	snprintf(ch->client, sizeof(ch->client), "%s", hello.client_name);
	ok.seg_bytes = l.seg_bytes;
	ok.channel_id = ch->id;
	ok.worker = w->id;
	r = send_msg(c->fd, QV_MSG_HELLO_OK, h->seq, 0, &ok, sizeof(ok), memfd);
	close(memfd);
	if (r < 0) {
		/* Never handed to a worker: ours to free right away. */
		qv_chan_destroy(ch);
		return r;
	}
	t->next_chan_id++;
	c->chan = ch;
	w->nchans_ctl++;
	d->channels_open++;
	d->channels_total++;
	/* From here on the worker owns the rings (release inside the post). */
	qv_worker_post(w, QV_MBOX_ADD, ch);
	qv_log(QV_LOG_INFO,
	       "channel %u open: client '%s' pid %d uid %u, %u slots of %u+%u bytes, worker %u",
	       ch->id, ch->client, (int)c->pid, (unsigned)c->uid, l.nslots, l.slot_in_bytes,
	       l.slot_out_bytes, w->id);
	return 0;
}

static int on_lookup(struct ctl *t, struct conn *c, const struct qv_msg_hdr *h, const void *p)
{
	struct qv_lookup q;
	struct qv_lookup_reply wire;

	uint32_t abi = 1; /* the 64-byte layout is ABI 1's */

	if (h->len == sizeof(q))
		memcpy(&abi, (const uint8_t *)p + offsetof(struct qv_lookup, abi_version), sizeof(abi));
	/* An ABI 1 client would read the ABI 2 reply as garbage: refuse it. */
	if ((h->len == QV_LOOKUP_V1_BYTES || h->len == sizeof(q)) && abi != QV_ABI_VERSION) {
		qv_log(QV_LOG_WARN,
		       "LOOKUP from pid %d refused: client speaks channel ABI %u, this quiverd ABI %u",
		       (int)c->pid, abi, QV_ABI_VERSION);
		return send_error(c->fd, h->seq, -EPROTONOSUPPORT, "channel ABI not supported");
	}
	if (h->len != sizeof(q))
		return send_error(c->fd, h->seq, -EPROTO, "LOOKUP payload has the wrong size");
	memcpy(&q, p, sizeof(q));
	q.name[sizeof(q.name) - 1] = '\0';
	if (qv_reg_lookup(&t->d->reg, q.name, &wire) < 0)
		return send_msg(c->fd, QV_MSG_LOOKUP_OK, h->seq, QV_UNKNOWN_MODEL, NULL, 0, -1);
	return send_msg(c->fd, QV_MSG_LOOKUP_OK, h->seq, 0, &wire,
			(uint32_t)qv_lookup_reply_bytes(wire.n_inputs, wire.n_outputs), -1);
}

/* Sends what fits of c's pending reply. 0 (done, or the rest waits for
 * POLLOUT), or <0 when the connection must be closed. */
static int flush_tx(struct conn *c)
{
	while (c->tx) {
		size_t left = c->tx_len - c->tx_off;
		int last = left <= QV_MSG_CHUNK;
		uint32_t n = last ? (uint32_t)left : QV_MSG_CHUNK;
		int r = send_msg(c->fd, last ? QV_MSG_CMD_REPLY : QV_MSG_CMD_REPLY_PART, c->tx_seq,
				 last ? c->tx_status : 0, c->tx + c->tx_off, n, -1);
		if (r == -EAGAIN || r == -ENOBUFS)
			return 0;
		if (r < 0)
			return r;
		c->tx_off += n;
		if (last) {
			free(c->tx);
			c->tx = NULL;
		}
	}
	return 0;
}

static int send_reply(struct conn *c, uint32_t seq, int32_t status, char *reply);

static int on_cmd(struct ctl *t, struct conn *c, const struct qv_msg_hdr *h, const void *p)
{
	char *reply = NULL;
	int32_t status;
	int r;

	t->d->cmd_conn_id = c->id;
	t->d->cmd_seq = h->seq;
	r = qv_cmd_handle(t->d, p, h->len, c->admin, &reply, &status);
	if (r < 0)
		return send_error(c->fd, h->seq, r, "out of memory");
	if (r == 1) {
		c->waiting = 1;   /* answered by finish_loads */
		return 0;
	}
	return send_reply(c, h->seq, status, reply);
}

/* Sends a command's reply (takes it): in one packet, or in chunks as the
 * socket drains. 0, or <0 when the connection must be closed. */
static int send_reply(struct conn *c, uint32_t seq, int32_t status, char *reply)
{
	size_t len;
	int r;

	len = strlen(reply);
	if (len > QV_REPLY_MAX) {
		free(reply);
		return send_error(c->fd, seq, -E2BIG, "reply too large");
	}
	if (len <= QV_MSG_CHUNK) {
		r = send_msg(c->fd, QV_MSG_CMD_REPLY, seq, status, reply, (uint32_t)len, -1);
		free(reply);
		return r;
	}
	c->tx = reply;
	c->tx_len = len;
	c->tx_off = 0;
	c->tx_seq = seq;
	c->tx_status = status;
	return flush_tx(c);
}

/* Reads one message. Returns 0, or <0 when the connection must be closed. */
static int on_readable(struct ctl *t, struct conn *c)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 8)];
	} cm;
	struct iovec iov = { t->rx, sizeof(struct qv_msg_hdr) + QV_MSG_MAX };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	struct qv_msg_hdr h;
	ssize_t n;

	n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	/* Clients have no business sending descriptors: close any. */
	for (struct cmsghdr *cmh = CMSG_FIRSTHDR(&mh); cmh; cmh = CMSG_NXTHDR(&mh, cmh)) {
		if (cmh->cmsg_level == SOL_SOCKET && cmh->cmsg_type == SCM_RIGHTS) {
			size_t nfd = (cmh->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < nfd; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(cmh) + i * sizeof(int), sizeof(int));
				close(fd);
			}
		}
	}
	if (n == 0)
		return -ECONNRESET;
	if ((size_t)n < sizeof(h) || (mh.msg_flags & MSG_TRUNC))
		return send_error(c->fd, 0, -EPROTO, "malformed message") < 0 ? -EPROTO : 0;
	memcpy(&h, t->rx, sizeof(h));
	if (h.magic != QV_PROTO_MAGIC || h.version != QV_PROTO_VERSION ||
	    h.len != (size_t)n - sizeof(h))
		return send_error(c->fd, h.seq, -EPROTO, "bad magic, version or length") < 0 ?
			       -EPROTO : 0;
	if (!c->allowed) {
		qv_log(QV_LOG_WARN, "refused message from pid %d uid %u: not allowed", (int)c->pid,
		       (unsigned)c->uid);
		(void)send_error(c->fd, h.seq, -EACCES, "credentials not allowed");
		return -EACCES; /* answered: now close it, its slot is someone else's */
	}
	switch (h.type) {
	case QV_MSG_HELLO:
		return on_hello(t, c, &h, t->rx + sizeof(h));
	case QV_MSG_LOOKUP:
		return on_lookup(t, c, &h, t->rx + sizeof(h));
	case QV_MSG_CMD:
		return on_cmd(t, c, &h, t->rx + sizeof(h));
	default:
		return send_error(c->fd, h.seq, -EOPNOTSUPP, "unknown message type");
	}
}

/* ---- connections and retirement -------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void accept_all(struct ctl *t)
{
	for (;;) {
		int fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;
		int a;

		if (fd < 0) {
			int e = errno;
			if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
				t->accept_paused_until_ns = mono_ns() + ACCEPT_BACKOFF_MS * 1000000ull;
				if (!t->accept_pause_logged)
					qv_log(QV_LOG_WARN, "accept: %s; new connections wait (retried every %d ms)",
					       strerror(e), ACCEPT_BACKOFF_MS);
				t->accept_pause_logged = 1;
			} else if (e != EAGAIN && e != EINTR && e != ECONNABORTED) {
				qv_log(QV_LOG_WARN, "accept: %s", strerror(e));
			}
			return;
		}
		if (t->accept_pause_logged) {
			qv_log(QV_LOG_INFO, "accept: accepting connections again");
			t->accept_pause_logged = 0;
		}
		if (t->nconns == MAX_CONNS) {
			qv_log(QV_LOG_WARN, "too many connections (%d); refusing one", MAX_CONNS);
			close(fd);
			continue;
		}
		c = &t->conns[t->nconns];
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->id = ++t->next_conn_id;
		a = peer_allowed(t->d, fd, c);
		if (a < 0) {
			close(fd);
			continue;
		}
		if (!a && t->nrefused >= MAX_REFUSED_CONNS) {
			/* Logged once per power of two, never per connection. */
			uint64_t k = ++t->refused_dropped;
			if (!(k & (k - 1)))
				qv_log(QV_LOG_WARN, "pid %d uid %u not allowed: closed at once (%llu so far, "
				       "%d refused peers already waiting)", (int)c->pid, (unsigned)c->uid,
				       (unsigned long long)t->refused_dropped, MAX_REFUSED_CONNS);
			close(fd);
			continue;
		}
		c->allowed = a;
		t->nrefused += !a;
		t->nconns++;
		qv_log(QV_LOG_DEBUG, "connection from pid %d uid %u%s", (int)c->pid,
		       (unsigned)c->uid, a ? "" : " (not allowed)");
	}
}

/*
 * The client's socket is closed: its channel goes back to its worker's
 * mailbox as RETIRE, and is freed once the worker acknowledges.
 */
static void close_conn(struct ctl *t, uint32_t i)
{
	struct conn *c = &t->conns[i];

	if (c->chan) {
		struct qv_worker *w = t->d->workers[c->chan->worker];
		qv_worker_post(w, QV_MBOX_RETIRE, c->chan);
		t->retiring[t->nretiring++] = c->chan;
		qv_log(QV_LOG_INFO, "channel %u closing: client '%s' pid %d hung up", c->chan->id,
		       c->chan->client, (int)c->pid);
	}
	close(c->fd);
	free(c->tx);
	t->nrefused -= !c->allowed;
	t->conns[i] = t->conns[--t->nconns];
}

static void free_chan(struct ctl *t, struct qv_chan *ch)
{
	t->d->workers[ch->worker]->nchans_ctl--;
	t->d->channels_open--;
	qv_chan_destroy(ch);
}

/*
 * Frees retired channels; also closes connections whose channel a worker
 * dropped as corrupt (it acknowledged without being asked).
 */
static void reap(struct ctl *t)
{
	for (uint32_t i = 0; i < t->nretiring;) {
		struct qv_chan *ch = t->retiring[i];
		/*
		 * Acquire pairs with the worker's release store in chan_drop()
		 * or mbox_poll(). Only ACKED: a channel the worker DROPPED may
		 * still be named by the RETIRE message it has yet to read.
		 */
		if (atomic_load_explicit(&ch->retired, memory_order_acquire) == QV_CHAN_ACKED) {
			qv_log(QV_LOG_DEBUG, "channel %u retired", ch->id);
			free_chan(t, ch);
			t->retiring[i] = t->retiring[--t->nretiring];
		} else {
			i++;
		}
	}
	for (uint32_t i = 0; i < t->nconns;) {
		struct conn *c = &t->conns[i];
		/*
		 * Acquire pairs with the worker's release store in chan_drop().
		 * No RETIRE was posted for a channel still in conns, so once
		 * DROPPED the worker never reads it again.
		 */
		if (c->chan && atomic_load_explicit(&c->chan->retired, memory_order_acquire) ==
				       QV_CHAN_DROPPED) {
			qv_log(QV_LOG_WARN, "channel %u closed: client '%s' pid %d corrupted its rings",
			       c->chan->id, c->chan->client, (int)c->pid);
			free_chan(t, c->chan);
			close(c->fd);
			t->conns[i] = t->conns[--t->nconns];
		} else {
			i++;
		}
	}
}

/*
 * Heartbeats on behalf of workers that are making progress. A worker beats
 * its channels itself about once a millisecond while it runs; on a loaded
 * machine the scheduler can keep it off its core for longer than a
 * client's dead_after (100 ms by default), which would make clients
 * declare a live server dead. So the control thread also beats, every
 * TICK_BEAT_MS, the channels of every worker whose beat counter moved in
 * the last WORKER_STALL_NS: a hung worker (or a dead process) still stops
 * the heartbeat, a preempted one does not. Both writers store a recent
 * CLOCK_MONOTONIC value with relaxed order; either value is correct.
 */
static void beat(struct ctl *t)
{
	struct qv_daemon *d = t->d;
	uint64_t now = qv_now_ns();
	int live[QV_MAX_WORKERS];

	if (now - t->last_beat_ns < TICK_BEAT_MS * 1000000ull)
		return;
	t->last_beat_ns = now;
	for (uint32_t i = 0; i < d->nworkers; i++) {
		uint64_t turns = qv_cnt_get(&d->workers[i]->cnt.beats);
		if (turns != t->seen_turns[i] || t->progress_ns[i] == 0) {
			t->seen_turns[i] = turns;
			t->progress_ns[i] = now;
		}
		live[i] = now - t->progress_ns[i] < WORKER_STALL_NS;
	}
	for (uint32_t i = 0; i < t->nconns; i++) {
		struct qv_chan *ch = t->conns[i].chan;
		if (ch && live[ch->worker])
			atomic_store_explicit(&ch->hdr->server_heartbeat_ns, now,
					      memory_order_relaxed);
	}
}

/* ---- drain and shutdown ----------------------------------------------- */

static void drain(struct ctl *t)
{
	struct qv_daemon *d = t->d;
	struct timespec ms = { .tv_nsec = 1000 * 1000 };

	d->draining = 1;
	for (uint32_t i = 0; i < t->nconns; i++)
		if (t->conns[i].chan)
			atomic_store_explicit(&t->conns[i].chan->hdr->server_state,
					      QV_SRV_DRAINING, memory_order_relaxed);
	for (uint32_t i = 0; i < d->nworkers; i++)
		qv_worker_post(d->workers[i], QV_MBOX_DRAIN, NULL);
	for (uint32_t i = 0; i < d->nworkers; i++) {
		/* Acquire pairs with the worker's release store of `drained`. */
		while (!atomic_load_explicit(&d->workers[i]->drained, memory_order_acquire))
			nanosleep(&ms, NULL);
	}
	qv_log(QV_LOG_INFO, "drained: every request taken before the drain is answered");
}

/* After the workers are joined: every channel is ours again. */
static void release_all(struct ctl *t)
{
	for (uint32_t i = 0; i < t->nretiring; i++)
		qv_chan_destroy(t->retiring[i]);
	t->nretiring = 0;
	for (uint32_t i = 0; i < t->nconns; i++) {
		struct conn *c = &t->conns[i];
		if (c->chan) {
			atomic_store_explicit(&c->chan->hdr->server_state, QV_SRV_CLOSED,
					      memory_order_relaxed);
			qv_chan_destroy(c->chan);
		}
		close(c->fd);
		free(c->tx);
	}
	t->nconns = 0;
	t->d->channels_open = 0;
}

/* SIGHUP: the repository is scanned again; new models and new versions load. */
static void reload(struct ctl *t)
{
	uint32_t loaded = 0;
	int r;

	qv_log(QV_LOG_INFO, "SIGHUP: reloading repository %s", t->d->repo);
	r = qv_reg_reload_repo(&t->d->reg, &loaded);
	if (r < 0)
		qv_log(QV_LOG_ERROR, "SIGHUP: repository %s: %s; nothing changed", t->d->repo,
		       strerror(-r));
	else
		qv_log(QV_LOG_INFO, "SIGHUP: repository reloaded, %u new versions loaded", loaded);
	if (r == 0 && loaded)
		qv_state_save_logged(t->d, "SIGHUP");
}

/*
 * Load jobs back from the loader thread: published here (the only thread
 * that builds and publishes routing tables), answered to the connection
 * that asked. A client that hung up meanwhile gets nothing, but its load
 * stands: the operator asked for it, and it is logged and saved like any.
 * `stopping`: quiverd drains; each job is dropped and answered -ESHUTDOWN.
 */
static void finish_loads(struct ctl *t, int stopping)
{
	struct qv_loader *l = t->d->loader;
	struct qv_load_job *j;

	while (l && (j = qv_loader_next_done(l))) {
		char *reply = NULL;
		int32_t status;
		uint32_t i;

		qv_load_finish(t->d, j, stopping, &reply, &status);
		for (i = 0; i < t->nconns && t->conns[i].id != j->conn_id; i++)
			;
		if (i == t->nconns) {
			qv_log(QV_LOG_INFO, "load %s/%u %s; the client that asked hung up before the answer",
			       j->name, j->version, status == 0 ? "done" : "failed");
			free(reply);
		} else {
			struct conn *c = &t->conns[i];
			int r;

			c->waiting = 0;
			r = reply ? send_reply(c, j->seq, status, reply) :
				    send_error(c->fd, j->seq, -ENOMEM, "out of memory");
			if (r < 0)
				close_conn(t, i);
		}
		free(j);
	}
}

static int loop(struct ctl *t)
{
	for (;;) {
		uint32_t n = 0, nc = t->nconns;
		int timeout = t->nretiring || t->d->reg.qsbr.npending ? TICK_BUSY_MS :
			      t->d->channels_open ? TICK_BEAT_MS : TICK_IDLE_MS;
		int r;

		t->pfds[n++] = (struct pollfd){ .fd = t->sigfd, .events = POLLIN };
		/* poll ignores a negative fd: the listener sleeps out an accept backoff */
		if (t->accept_paused_until_ns && mono_ns() >= t->accept_paused_until_ns)
			t->accept_paused_until_ns = 0;
		t->pfds[n++] = (struct pollfd){ .fd = t->accept_paused_until_ns ? -1 : t->lfd,
						.events = POLLIN };
		if (t->accept_paused_until_ns && timeout > ACCEPT_BACKOFF_MS)
			timeout = ACCEPT_BACKOFF_MS;
		for (uint32_t i = 0; i < nc; i++)
			t->pfds[n++] = (struct pollfd){ .fd = t->conns[i].fd,
							.events = t->conns[i].tx ? POLLOUT :
								  t->conns[i].waiting ? 0 : POLLIN };
		/* Then the HTTP endpoint (ops.c) and the loader's eventfd, -1 when none. */
		t->pfds[n++] = (struct pollfd){ .fd = qv_ops_fd(t->d), .events = POLLIN };
		t->pfds[n++] = (struct pollfd){ .fd = qv_loader_fd(t->d->loader), .events = POLLIN };
		timeout = qv_ops_timeout(t->d, timeout);
		r = poll(t->pfds, n, timeout);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && (t->pfds[0].revents & POLLIN)) {
			struct signalfd_siginfo si;
			if (read(t->sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					t->reload_pending = 1;
				} else {
					qv_log(QV_LOG_INFO, "signal %u: draining", si.ssi_signo);
					return 0;
				}
			}
		}
		/* Walk the polled connections backwards: closing one moves the last into its place. */
		for (uint32_t k = nc; r > 0 && k-- > 0;) {
			short ev = t->pfds[2 + k].revents;
			if (!ev)
				continue;
			if ((ev & POLLOUT) && t->conns[k].tx && flush_tx(&t->conns[k]) < 0) {
				close_conn(t, k);
				continue;
			}
			if (ev & POLLIN) {
				int e = on_readable(t, &t->conns[k]);
				if (e < 0) {
					close_conn(t, k);
					continue;
				}
			}
			if (ev & (POLLHUP | POLLERR | POLLNVAL)) {
				/* Pending messages first: a HUP with data still queued reads it next turn. */
				if (!(ev & POLLIN))
					close_conn(t, k);
			}
		}
		if (r > 0 && (t->pfds[1].revents & POLLIN))
			accept_all(t);
		if (r > 0 && (t->pfds[n - 1].revents & POLLIN))
			finish_loads(t, 0);
		/* Never beside a build: one model build at a time in the process. */
		if (t->reload_pending) {
			if (!t->d->loader || qv_loader_try_hold(t->d->loader)) {
				t->reload_pending = 0;
				reload(t);
				if (t->d->loader)
					qv_loader_resume(t->d->loader);
			} else if (t->reload_pending == 1) {
				t->reload_pending = 2;
				qv_log(QV_LOG_INFO, "SIGHUP: a load is being built; the reload follows it");
			}
		}
		qv_ops_tick(t->d);
		reap(t);
		beat(t);
		qv_reg_reclaim(&t->d->reg);
		if (t->d->drain_requested) {
			qv_log(QV_LOG_INFO, "drain command: draining");
			return 0;
		}
	}
}

int qv_control_run(struct qv_daemon *d, int sigfd)
{
	struct ctl t = { .d = d, .lfd = -1, .sigfd = sigfd };
	int r;

	t.conns = calloc(MAX_CONNS, sizeof(*t.conns));
	t.retiring = calloc(MAX_CONNS, sizeof(*t.retiring));
	t.pfds = calloc(MAX_CONNS + 4, sizeof(*t.pfds));
	t.rx = malloc(sizeof(struct qv_msg_hdr) + QV_MSG_MAX);
	if (!t.conns || !t.retiring || !t.pfds || !t.rx) {
		r = -ENOMEM;
		goto out;
	}
	r = listen_socket(d->sock_path, d->sock_mode, &t.lfd);
	if (r < 0) {
		qv_log(QV_LOG_ERROR, "socket %s: %s", d->sock_path, strerror(-r));
		goto out;
	}
	qv_log(QV_LOG_INFO, "quiverd ready: socket %s, %u workers, %u models loaded, %u failed",
	       d->sock_path, d->nworkers, qv_daemon_models_ready(d),
	       d->reg.n - qv_daemon_models_ready(d));
	if (d->ready_fd >= 0) {
		/* The parent of a detached start exits 0 only now (see quiverd.c). */
		ssize_t wr;
		do
			wr = write(d->ready_fd, "R", 1);
		while (wr < 0 && errno == EINTR);
		close(d->ready_fd);
		d->ready_fd = -1;
	}
	{
		struct qv_loader *l = NULL;
		int lr = qv_loader_start(&d->reg, d->s3_cache, d->s3_endpoint, &l);
		if (lr < 0)
			qv_log(QV_LOG_WARN, "loader thread: %s; loads run on the control thread",
			       strerror(-lr));
		d->loader = l;
	}
	qv_ops_ready(d);
	r = loop(&t);
	if (r < 0)
		qv_log(QV_LOG_ERROR, "control loop: %s", strerror(-r));
	qv_ops_stopping(d);
	/* Loads in flight are cancelled and answered before the drain (loader.h). */
	qv_loader_stop(d->loader);
	finish_loads(&t, 1);
	qv_loader_free(d->loader);
	d->loader = NULL;
	drain(&t);
out:
	/* Stop and join the workers first: only then are their channels ours to free. */
	for (uint32_t i = 0; i < d->nworkers; i++) {
		qv_worker_destroy(d->workers[i]);
		d->workers[i] = NULL;
	}
	d->nworkers = 0;
	if (t.conns)
		release_all(&t);
	if (t.lfd >= 0) {
		close(t.lfd);
		unlink(d->sock_path);
	}
	free(t.conns);
	free(t.retiring);
	free(t.pfds);
	free(t.rx);
	return r;
}
