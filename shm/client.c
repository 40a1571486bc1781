/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client.c - libquiver: the hand-shake over quiverd's Unix socket, model
 * lookups, and requests over the channel's shared-memory rings.
 *
 * Hot path (qv_infer / qv_submit / qv_poll): pop a free slot, copy the input
 * into it, fill one descriptor, publish it with one release store, spin on
 * the completion ring's tail with acquire loads, copy the output out, push
 * the slot back. No syscall, allocation or lock; the clock is read only
 * every QV_SPIN_CHECK empty spins to check the server's heartbeat (and the
 * caller's timeout), and that read also refreshes our own heartbeat.
 *
 * Nothing the server writes into the segment is trusted: the header is
 * validated once at connect (and copied), ring indices are bounds-checked
 * by qv_ring.h, and every completion is copied once and validated against
 * the slot it names before its output is read.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "quiver.h"
#include "qv_desc.h"
#include "qv_prefetch.h"
#include "qv_proto.h"
#include "qv_ring.h"
#include "qv_seg.h"
#include "qv_shm.h"

/*
 * The descriptor's submit_tsc (qv_shm.h): the same counter quiverd's
 * workers read (rdtsc on x86, CLOCK_MONOTONIC ns elsewhere), so the
 * worker measures how long the request waited in the submission ring
 * with one subtraction and no clock read of its own. About 20 cycles.
 */
static inline uint64_t submit_stamp(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __rdtsc();
#else
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

/* Completions of a reaped burst whose outputs are prefetched before any is read. */
#define QV_REAP_PREFETCH 16
/* Empty spins between clock reads: ~2^10 * ~10 ns ≈ 10 µs of staleness. */
#define QV_SPIN_CHECK 1024u
/* Requests between client heartbeats when no spin reached a clock read. */
#define QV_HB_EVERY 16384u
/* Slow-path socket replies; a wedged (not dead) server must not hang us. */
#define QV_CTL_TIMEOUT_S 10
#define QV_MAX_MODELS_INIT 8u
/* Largest reply payload the client reads (an error's text may be cut): a
 * lookup reply describing the most tensors a model may have. */
#define QV_CTL_RECV_MAX ((uint32_t)sizeof(struct qv_lookup_reply))
/* Heartbeat silence after which we also ask the socket (one poll per check). */
#define QV_STALE_NS (5ull * 1000000ull)

enum slot_state {
	SLOT_FREE = 0,
	SLOT_INFLIGHT,   /* submitted, completion not yet seen */
	SLOT_DONE,       /* completion seen, in the done queue, not yet polled */
	SLOT_ABANDONED,  /* its qv_infer timed out; drop the completion */
	SLOT_SYNC,       /* owned by a running qv_infer */
};

struct slot {
	float *out;             /* caller's buffer, remembered for the completion */
	uint32_t out_cap_bytes;
	uint32_t state;         /* enum slot_state */
	uint64_t request_id;
	struct qv_result res;   /* valid in SLOT_DONE */
	uint32_t rows;
	uint32_t model;         /* typed: index in models[] (stable: never removed) */
	uint32_t typed;         /* 1: unpack into tens[slot].out at completion */
};

/* A typed request's output buffers, per slot (qv_submit_tensors). */
struct slot_tens {
	void *out[QV_MAX_TENSORS_WIRE];
	size_t cap[QV_MAX_TENSORS_WIRE];
};

/* Whether every output of l fits its buffer at `rows` rows: checked again at
 * completion, since a lookup in between may have replaced the layout. */
static bool tens_fit(const struct qv_layout *l, const struct slot_tens *st, uint32_t rows)
{
	for (uint32_t j = 0; j < l->n_out; j++)
		if (st->cap[j] < (uint64_t)rows * l->out_rb[j])
			return false;
	return true;
}

struct model {
	uint32_t handle;
	uint32_t in_dim, out_dim, max_batch;
	struct qv_layout lay;
};

struct qv_client {
	/* Hot fields first. */
	struct qv_ring_prod sq;
	struct qv_ring_cons cq;
	struct qv_seg_hdr *hdr;
	uint8_t *slots;
	uint64_t slot_stride;
	uint32_t slot_in_bytes, slot_out_bytes;
	uint32_t nslots;
	uint32_t nfree;
	uint32_t *free_stack;   /* nslots entries; [0, nfree) are free */
	uint32_t *done_q;       /* ring of nslots slot indices, in completion order */
	uint32_t done_head, done_count;
	uint32_t inflight;      /* submitted and not yet polled (abandoned excluded) */
	uint32_t spins;         /* empty polls since the last clock read */
	uint64_t poll_check_coarse; /* coarse time of qv_poll's last server check */
	uint32_t pushed;        /* requests sent, wrapping; paces the client heartbeat */
	struct slot *st;
	struct slot_tens *tens; /* [nslots] */
	struct model *models;
	uint32_t nmodels, models_cap, last_model;
	bool gone;              /* hung up, closed the channel or broke a ring: for good */
	bool stalled;           /* heartbeat silent for dead_after; cleared if it resumes */
	bool broken;            /* the completion ring's indices are impossible */
	uint64_t dead_after_ns;
	uint64_t stale_ns;      /* silence after which the socket is polled for a hang-up */
	uint64_t connect_ns;

	/* Slow path. */
	int fd;
	uint32_t seq;
	size_t map_bytes;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The coarse clock: a vDSO read of the last tick (1-4 ms resolution), a
 * few ns, cheap enough for every empty qv_poll. */
static uint64_t coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* ---- control socket ---------------------------------------------------- */

static int ctl_send(qv_client *c, uint16_t type, const void *payload, uint32_t len)
{
	struct qv_msg_hdr h = {
		.magic = QV_PROTO_MAGIC,
		.type = type,
		.version = QV_PROTO_VERSION,
		.len = len,
		.seq = ++c->seq,
	};
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	ssize_t n;

	do
		n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != sizeof(h) + len)
		return -EPROTO;
	return 0;
}

/*
 * Receives the reply to the last request: its header into *hdr and up to
 * buf_len payload bytes into buf. A longer payload is an error except for
 * QV_MSG_ERROR, whose text we do not need (hdr->status carries the errno).
 * If ret_fd is not NULL, a descriptor passed with SCM_RIGHTS is returned
 * there (-1 if none); any other descriptor is closed. Returns the payload
 * length copied or a negative errno.
 */
static int ctl_recv(qv_client *c, struct qv_msg_hdr *hdr, void *buf, uint32_t buf_len,
		    int *ret_fd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} cbuf;
	uint8_t payload[QV_CTL_RECV_MAX];
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = sizeof(*hdr) },
		{ .iov_base = payload, .iov_len = sizeof(payload) },
	};
	struct msghdr m = {
		.msg_iov = iov,
		.msg_iovlen = 2,
		.msg_control = cbuf.buf,
		.msg_controllen = sizeof(cbuf.buf),
	};
	int fd = -1;
	size_t got;
	ssize_t n;

	do
		n = recvmsg(c->fd, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	if (n == 0)
		return -ECONNRESET;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int f;
			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(f));
			if (fd < 0 && ret_fd)
				fd = f;
			else
				close(f);
		}
	}

	if ((size_t)n < sizeof(*hdr) || hdr->magic != QV_PROTO_MAGIC ||
	    hdr->version != QV_PROTO_VERSION || hdr->seq != c->seq)
		goto bad;
	if (hdr->type == QV_MSG_ERROR) {
		if (fd >= 0)
			close(fd);
		return hdr->status < 0 ? hdr->status : -EPROTO;
	}
	got = (size_t)n - sizeof(*hdr);
	if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || hdr->len != got || got > buf_len)
		goto bad;
	memcpy(buf, payload, got);
	if (ret_fd)
		*ret_fd = fd;
	return (int)got;
bad:
	if (fd >= 0)
		close(fd);
	return -EPROTO;
}

/* ---- connect ----------------------------------------------------------- */

static int map_channel(qv_client *c, int memfd, const struct qv_hello_ok *ok)
{
	struct qv_seg_layout l;
	struct stat sb;
	void *p;
	int r;

	if (fstat(memfd, &sb) < 0)
		return -errno;
	/*
	 * Only a segment that can no longer shrink is safe to map: a server
	 * (or anyone holding the fd) that truncated it would turn our next
	 * access into SIGBUS. quiverd seals it before passing it.
	 */
	int seals = fcntl(memfd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK))
		return -EPROTO;
	if (ok->seg_bytes < sizeof(struct qv_seg_hdr) || ok->seg_bytes > QV_SEG_MAX_BYTES ||
	    (uint64_t)sb.st_size < ok->seg_bytes)
		return -EPROTO;
	p = mmap(NULL, ok->seg_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (p == MAP_FAILED)
		return -errno;
	c->map_bytes = ok->seg_bytes;
	c->hdr = p;

	/*
	 * Acquire pairs with the server's release store of magic after it
	 * wrote the header (qv_seg_init_hdr): every field read below is the
	 * one the server meant.
	 */
	if (atomic_load_explicit(&c->hdr->magic, memory_order_acquire) != QV_SEG_MAGIC)
		return -EPROTO;
	if (c->hdr->abi_version != QV_ABI_VERSION)
		return -EPROTONOSUPPORT;
	if (c->hdr->hdr_bytes != sizeof(struct qv_seg_hdr))
		return -EPROTO;
	qv_seg_read_layout(c->hdr, &l);
	r = qv_seg_check(&l, c->map_bytes);
	if (r < 0)
		return r;

	c->nslots = l.nslots;
	c->slot_in_bytes = l.slot_in_bytes;
	c->slot_out_bytes = l.slot_out_bytes;
	c->slot_stride = (uint64_t)l.slot_in_bytes + l.slot_out_bytes;
	c->slots = (uint8_t *)p + l.slots_off;
	qv_ring_prod_init(&c->sq, (uint8_t *)p + l.sq_off, l.ring_entries, sizeof(struct qv_sqe));
	qv_ring_cons_init(&c->cq, (uint8_t *)p + l.cq_off, l.ring_entries, sizeof(struct qv_cqe));
	return 0;
}

static int alloc_slots(qv_client *c)
{
	c->st = calloc(c->nslots, sizeof(*c->st));
	c->free_stack = calloc(c->nslots, sizeof(*c->free_stack));
	c->done_q = calloc(c->nslots, sizeof(*c->done_q));
	c->tens = calloc(c->nslots, sizeof(*c->tens));
	if (!c->st || !c->free_stack || !c->done_q || !c->tens)
		return -ENOMEM;
	/* Lowest slot on top: a lightly loaded client keeps reusing warm lines. */
	for (uint32_t i = 0; i < c->nslots; i++)
		c->free_stack[i] = c->nslots - 1 - i;
	c->nfree = c->nslots;
	return 0;
}

static int open_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = QV_CTL_TIMEOUT_S };
	size_t len = strlen(path);
	int fd;

	if (len == 0 || len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int hello(qv_client *c, const struct qv_connect_opts *o)
{
	struct qv_hello h = {
		.abi_version = QV_ABI_VERSION,
		.slots = o && o->slots ? o->slots : 64,
		.slot_in_bytes = o && o->slot_in_bytes ? o->slot_in_bytes : 64u << 10,
		.slot_out_bytes = o && o->slot_out_bytes ? o->slot_out_bytes : 16u << 10,
	};
	struct qv_msg_hdr rh;
	struct qv_hello_ok ok;
	struct qv_seg_layout want;
	int memfd = -1, r;

	/* Refuse what no server could grant before bothering one. */
	r = qv_seg_layout(h.slots, h.slot_in_bytes, h.slot_out_bytes, &want);
	if (r < 0)
		return r;
	if (o && o->client_name)
		snprintf(h.client_name, sizeof(h.client_name), "%s", o->client_name);
	else
		snprintf(h.client_name, sizeof(h.client_name), "pid:%ld", (long)getpid());

	r = ctl_send(c, QV_MSG_HELLO, &h, sizeof(h));
	if (r < 0)
		return r;
	r = ctl_recv(c, &rh, &ok, sizeof(ok), &memfd);
	if (r < 0)
		return r;
	if (rh.type != QV_MSG_HELLO_OK || rh.status != 0) {
		r = rh.status < 0 ? rh.status : -EPROTO;
		goto out;
	}
	if (r != sizeof(ok) || memfd < 0) {
		r = -EPROTO;
		goto out;
	}
	r = map_channel(c, memfd, &ok);
out:
	/* The mapping keeps the memfd alive; the descriptor is not needed. */
	if (memfd >= 0)
		close(memfd);
	return r;
}

int qv_connect(const char *socket_path, const struct qv_connect_opts *opts,
	       qv_client **ret_client)
{
	qv_client *c;
	int r;

	if (!ret_client)
		return -EINVAL;
	if (!socket_path)
		socket_path = QV_DEFAULT_SOCKET;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	r = open_socket(socket_path);
	if (r < 0)
		goto fail;
	c->fd = r;
	r = hello(c, opts);
	if (r < 0)
		goto fail;
	r = alloc_slots(c);
	if (r < 0)
		goto fail;
	c->dead_after_ns = (uint64_t)(opts && opts->dead_after_ms ? opts->dead_after_ms : 100) *
			   1000000ull;
	/* A crashed server is seen by its socket long before dead_after. */
	c->stale_ns = c->dead_after_ns / 2 < QV_STALE_NS ? c->dead_after_ns / 2 : QV_STALE_NS;
	c->connect_ns = now_ns();
	atomic_store_explicit(&c->hdr->client_heartbeat_ns, c->connect_ns, memory_order_relaxed);
	*ret_client = c;
	return 0;
fail:
	qv_close(c);
	return r;
}

void qv_close(qv_client *c)
{
	if (!c)
		return;
	/* Closing the socket is what tells quiverd to retire the channel. */
	if (c->fd >= 0)
		close(c->fd);
	if (c->hdr)
		munmap((void *)c->hdr, c->map_bytes);
	free(c->st);
	free(c->free_stack);
	free(c->done_q);
	free(c->tens);
	free(c->models);
	free(c);
}

/* ---- lookup ------------------------------------------------------------ */

static int remember_model(qv_client *c, const struct qv_model_desc *d)
{
	struct model nm = { d->handle, d->in_dim, d->out_dim, d->max_batch, { 0 } };

	qv_layout_of(d, &nm.lay);
	for (uint32_t i = 0; i < c->nmodels; i++) {
		if (c->models[i].handle == d->handle) {
			c->models[i] = nm;
			return 0;
		}
	}
	if (c->nmodels == c->models_cap) {
		uint32_t cap = c->models_cap ? 2 * c->models_cap : QV_MAX_MODELS_INIT;
		struct model *m = realloc(c->models, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		c->models = m;
		c->models_cap = cap;
	}
	c->models[c->nmodels++] = nm;
	return 0;
}

int qv_model_lookup(qv_client *c, const char *name, struct qv_model_desc *ret_desc)
{
	struct qv_lookup q = { .abi_version = QV_ABI_VERSION };
	struct qv_lookup_reply w;
	struct qv_model_desc d;
	struct qv_msg_hdr rh;
	size_t len;
	int r;

	if (!c || !name || !ret_desc)
		return -EINVAL;
	len = strlen(name);
	if (len == 0 || len >= sizeof(q.name))
		return -EINVAL;
	memcpy(q.name, name, len);
	r = ctl_send(c, QV_MSG_LOOKUP, &q, sizeof(q));
	if (r < 0)
		return r;
	r = ctl_recv(c, &rh, &w, sizeof(w), NULL);
	if (r < 0)
		return r;
	if (rh.status == QV_UNKNOWN_MODEL)
		return -ENOENT;
	if (rh.status != 0)
		return rh.status < 0 ? rh.status : -EPROTO;
	if (rh.type != QV_MSG_LOOKUP_OK)
		return -EPROTO;
	r = qv_desc_from_wire(&w, (size_t)r, &d);
	if (r < 0)
		return r;
	r = remember_model(c, &d);
	if (r < 0)
		return r;
	*ret_desc = d;
	return 0;
}

/* ---- the channel ------------------------------------------------------- */

static inline const struct model *find_model(qv_client *c, uint32_t handle)
{
	/* Clients use a handful of models; remember the last one hit. */
	if (c->last_model < c->nmodels && c->models[c->last_model].handle == handle)
		return &c->models[c->last_model];
	for (uint32_t i = 0; i < c->nmodels; i++) {
		if (c->models[i].handle == handle) {
			c->last_model = i;
			return &c->models[i];
		}
	}
	return NULL;
}

static inline uint8_t *slot_in(const qv_client *c, uint32_t s)
{
	return c->slots + (uint64_t)s * c->slot_stride;
}

static inline const uint8_t *slot_out(const qv_client *c, uint32_t s)
{
	return c->slots + (uint64_t)s * c->slot_stride + c->slot_in_bytes;
}

/*
 * Called when the clock is read anyway (every QV_SPIN_CHECK empty spins):
 * refreshes our heartbeat and decides whether the server is reachable. The
 * socket is polled only when the heartbeat already looks stale, so a live
 * server costs one vDSO clock read per check and nothing more.
 *
 * A hang-up, a CLOSED channel or a broken ring is final ("gone"). Silence
 * alone only makes the server "stalled": waiting calls give up with
 * QV_UNAVAILABLE, but a server that beats again (a worker descheduled on
 * an overloaded host, a SIGSTOP) is used again without reconnecting.
 */
static bool check_server(qv_client *c, uint64_t now)
{
	uint64_t hb, last, silent;
	uint32_t state;

	if (c->gone)
		return false;
	atomic_store_explicit(&c->hdr->client_heartbeat_ns, now, memory_order_relaxed);
	state = atomic_load_explicit(&c->hdr->server_state, memory_order_relaxed);
	if (state == QV_SRV_CLOSED) {
		c->gone = true;
		return false;
	}
	hb = atomic_load_explicit(&c->hdr->server_heartbeat_ns, memory_order_relaxed);
	/* A worker that has not beaten yet gets dead_after from our connect. */
	last = hb > c->connect_ns ? hb : c->connect_ns;
	silent = now > last ? now - last : 0;
	if (silent > c->stale_ns) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL))) {
			c->gone = true;
			return false;
		}
	}
	c->stalled = silent > c->dead_after_ns;
	return !c->stalled;
}

/* Whether requests can be sent; re-reads the clock only while stalled. */
static inline bool server_reachable(qv_client *c)
{
	if (c->gone)
		return false;
	return !c->stalled || check_server(c, now_ns());
}

static inline void slot_free(qv_client *c, uint32_t s)
{
	c->st[s].state = SLOT_FREE;
	c->st[s].out = NULL;
	c->free_stack[c->nfree++] = s;
}

static inline void done_push(qv_client *c, uint32_t s)
{
	uint32_t i = c->done_head + c->done_count;

	if (i >= c->nslots)
		i -= c->nslots;
	c->done_q[i] = s;
	c->done_count++;
	c->st[s].state = SLOT_DONE;
}

/*
 * Validates one completion (already copied out of the ring) against the
 * slot it names and copies its output into the caller's buffer. A
 * completion naming a slot not in flight is dropped (and counted); a
 * malformed one for an in-flight slot completes that request with
 * QV_INTERNAL and copies nothing. Returns the slot, or -1 if dropped.
 */
static int complete_one(qv_client *c, const struct qv_cqe *e)
{
	struct slot *sl;
	uint32_t s = e->slot;
	struct qv_result res;

	if (s >= c->nslots) {
		return -1;
	}
	sl = &c->st[s];
	if (sl->state != SLOT_INFLIGHT && sl->state != SLOT_SYNC && sl->state != SLOT_ABANDONED) {
		return -1;
	}
	if (sl->state == SLOT_ABANDONED) {
		slot_free(c, s);
		return -1;
	}
	res.request_id = sl->request_id;
	res.version = e->version;
	res.flags = e->flags;
	res.out_floats = 0;
	res.status = (enum qv_status)e->status;
	if (e->request_id != sl->request_id || e->status >= QV_STATUS_COUNT ||
	    e->out_bytes > c->slot_out_bytes || e->out_bytes > sl->out_cap_bytes ||
	    (e->out_bytes & 3u) != 0) {
		res.status = QV_INTERNAL;
	} else if (sl->typed) {
		/* Exactly rows packed output rows, or nothing: the per-output
		 * capacities were checked against that size at submit. */
		const struct qv_layout *l = &c->models[sl->model].lay;
		if (e->status == QV_OK && e->out_bytes == (uint64_t)sl->rows * l->out_row &&
		    tens_fit(l, &c->tens[s], sl->rows)) {
			qv_tensors_unpack(l, slot_out(c, s), sl->rows, c->tens[s].out);
			res.out_floats = e->out_bytes / 4;
		} else if (e->out_bytes != 0 || e->status == QV_OK) {
			res.status = QV_INTERNAL;
		}
	} else if (e->out_bytes) {
		memcpy(sl->out, slot_out(c, s), e->out_bytes);
		res.out_floats = e->out_bytes / 4;
	}
	sl->res = res;
	return (int)s;
}

/*
 * Reaps what the completion ring holds. Completions of asynchronous
 * requests go to the done queue; if `sync_slot` completes, returns 1 and
 * leaves it in SLOT_SYNC for the caller. Returns 0 if it did not, or
 * -EBADMSG if the server broke the ring (the channel is then gone).
 */
static int reap(qv_client *c, uint32_t sync_slot)
{
	int n = qv_ring_cons_avail(&c->cq), got = 0;

	if (n < 0) {
		c->gone = true;
		c->broken = true;
		return n;
	}
	/*
	 * Prefetch the outputs first (qv_prefetch.h). A synchronous call knows
	 * its slot already: its output is fetched as soon as the tail says a
	 * completion is there, together with the completion's own line rather
	 * than after it. (Prefetching it on every empty spin was measured
	 * slower: it pulls the line back while the worker is writing it.) The
	 * others' slot index read here is only a hint for the prefetch,
	 * bounds-checked; each completion is still copied once below and
	 * validated before anything is read from the slot it names.
	 */
	if (n > 0 && sync_slot < c->nslots)
		qv_prefetch_rd(slot_out(c, sync_slot), c->st[sync_slot].out_cap_bytes);
	for (int i = 0; i < n && i < QV_REAP_PREFETCH; i++) {
		uint32_t ps = ((const struct qv_cqe *)qv_ring_cons_entry(&c->cq, (uint32_t)i))->slot;
		if (ps < c->nslots)
			qv_prefetch_rd(slot_out(c, ps), c->st[ps].out_cap_bytes);
	}
	for (int i = 0; i < n; i++) {
		struct qv_cqe e;
		/* Copied once: the server may rewrite the entry behind us. */
		memcpy(&e, qv_ring_cons_entry(&c->cq, (uint32_t)i), sizeof(e));
		int s = complete_one(c, &e);
		if (s < 0)
			continue;
		if ((uint32_t)s == sync_slot && c->st[s].state == SLOT_SYNC) {
			/* Not SYNC any more: a duplicate completion is now dropped. */
			c->st[s].state = SLOT_DONE;
			got = 1;
		} else
			done_push(c, (uint32_t)s);
	}
	if (n > 0)
		qv_ring_cons_release(&c->cq, (uint32_t)n);
	return got;
}

/* Validates a request and returns the bytes it moves, or a negative errno. */
static inline int check_req(qv_client *c, const struct qv_request *req, size_t out_cap,
			    const struct qv_tensors *t, uint32_t *ret_in_bytes,
			    uint32_t *ret_out_cap)
{
	const struct model *m;
	uint64_t in_bytes, out_need, cap;

	if (!req || (!t && !req->input && req->rows))
		return -EINVAL;
	m = find_model(c, req->handle);
	if (!m)
		return -ENOENT;
	if (req->rows == 0 || req->rows > m->max_batch)
		return -EINVAL;
	in_bytes = (uint64_t)req->rows * m->in_dim * 4;
	out_need = (uint64_t)req->rows * m->out_dim * 4;
	if (in_bytes > c->slot_in_bytes || out_need > c->slot_out_bytes)
		return -EMSGSIZE;
	if (t) {
		int r = qv_tensors_check(&m->lay, t, req->rows);
		if (r < 0)
			return r;
		cap = out_need;
	} else {
		cap = (uint64_t)out_cap * 4 < c->slot_out_bytes ? (uint64_t)out_cap * 4 :
								  c->slot_out_bytes;
		if (cap < out_need)
			return -ENOBUFS;
	}
	*ret_in_bytes = (uint32_t)in_bytes;
	*ret_out_cap = (uint32_t)cap;
	return 0;
}

/*
 * Pops a slot, copies the input in and publishes the descriptor. The slot
 * is left in `state`. Returns the slot or a negative errno.
 */
static inline int push_req(qv_client *c, const struct qv_request *req, float *out,
			   const struct qv_tensors *t, uint32_t in_bytes, uint32_t out_cap,
			   uint32_t state)
{
	struct qv_sqe *e;
	uint32_t s;
	int space;

	space = qv_ring_prod_space(&c->sq);
	if (space >= 0 && (c->nfree == 0 || space == 0)) {
		/*
		 * Reap first: completions waiting in the ring may free a slot
		 * (a timed-out request's), and a server blocked on a full
		 * completion ring cannot consume submissions until we do.
		 */
		if (!c->broken)
			reap(c, UINT32_MAX);
		space = qv_ring_prod_space(&c->sq);
		if (space >= 0 && (c->nfree == 0 || space == 0))
			return -EAGAIN;
	}
	if (space < 0) {
		c->gone = true;
		return -EPIPE;
	}
	s = c->free_stack[--c->nfree];
	c->st[s].typed = t != NULL;
	if (t) {
		/* check_req found the model and made it the last one hit. */
		const struct model *m = &c->models[c->last_model];
		qv_tensors_pack(&m->lay, t->inputs, req->rows, slot_in(c, s));
		for (uint32_t j = 0; j < t->n_outputs; j++) {
			c->tens[s].out[j] = t->outputs[j];
			c->tens[s].cap[j] = t->out_caps[j];
		}
		c->st[s].model = c->last_model;
		c->st[s].rows = req->rows;
	} else {
		memcpy(slot_in(c, s), req->input, in_bytes);
	}
	e = qv_ring_prod_entry(&c->sq, 0);
	*e = (struct qv_sqe){
		.submit_tsc = submit_stamp(),
		.slot = s,
		.handle = req->handle,
		.rows = req->rows,
		.in_bytes = in_bytes,
		.deadline_ns = req->deadline_ns,
		.routing_key = req->routing_key,
		.request_id = req->request_id,
		.out_cap = out_cap,
	};
	c->st[s].out = out;
	c->st[s].out_cap_bytes = out_cap;
	c->st[s].request_id = req->request_id;
	c->st[s].state = state;
	/* Release inside: the slot's input and the descriptor before the tail. */
	qv_ring_prod_commit(&c->sq, 1);
	/*
	 * A client whose requests never spin long enough to reach a clock
	 * read still shows it is alive, at one clock read per 2^14 requests.
	 */
	if ((++c->pushed & (QV_HB_EVERY - 1)) == 0)
		atomic_store_explicit(&c->hdr->client_heartbeat_ns, now_ns(), memory_order_relaxed);
	return (int)s;
}

/*
 * The server's state, read once a request: the line it lives on changes
 * only at heartbeats (about once a millisecond), so this is a cache hit.
 * Relaxed: it orders nothing, a stale RUNNING only costs one UNAVAILABLE
 * answered by the server instead of by us.
 */
static inline uint32_t server_state(const qv_client *c)
{
	return atomic_load_explicit(&c->hdr->server_state, memory_order_relaxed);
}

static int infer(qv_client *c, const struct qv_request *req, float *out, size_t out_cap,
		 const struct qv_tensors *t, uint32_t timeout_ms, struct qv_result *ret_result)
{
	uint32_t in_bytes, cap, spins = 0;
	uint64_t deadline = 0;
	int s, r;

	if (!c || !ret_result || (!out && out_cap))
		return -EINVAL;
	r = check_req(c, req, out_cap, t, &in_bytes, &cap);
	if (r < 0)
		return r;
	if (!server_reachable(c) || server_state(c) != QV_SRV_RUNNING) {
		/* No request is sent: nobody would answer it, or the server refuses new work. */
		*ret_result = (struct qv_result){ .request_id = req->request_id,
						  .status = QV_UNAVAILABLE };
		return 0;
	}
	s = push_req(c, req, out, t, in_bytes, cap, SLOT_SYNC);
	if (s < 0)
		return s;

	for (;;) {
		r = reap(c, (uint32_t)s);
		if (r == 1)
			break;
		if (r < 0 || (++spins & (QV_SPIN_CHECK - 1)) == 0) {
			uint64_t now = now_ns();
			if (!check_server(c, now)) {
				/*
				 * The slot stays taken: a stalled server may still
				 * answer (the completion is then dropped), a dead one
				 * may hold it for ever.
				 */
				c->st[s].state = SLOT_ABANDONED;
				*ret_result = (struct qv_result){ .request_id = req->request_id,
								  .status = QV_UNAVAILABLE };
				return 0;
			}
			if (timeout_ms) {
				if (!deadline)
					deadline = now + (uint64_t)timeout_ms * 1000000ull;
				else if (now >= deadline) {
					c->st[s].state = SLOT_ABANDONED;
						return -ETIMEDOUT;
				}
			}
		}
		cpu_relax();
	}
	*ret_result = c->st[s].res;
	slot_free(c, (uint32_t)s);
	return 0;
}

int qv_infer(qv_client *c, const struct qv_request *req, float *out, size_t out_cap,
	     uint32_t timeout_ms, struct qv_result *ret_result)
{
	return infer(c, req, out, out_cap, NULL, timeout_ms, ret_result);
}

int qv_infer_tensors(qv_client *c, const struct qv_request *req, const struct qv_tensors *t,
		     uint32_t timeout_ms, struct qv_result *ret_result)
{
	if (!t)
		return -EINVAL;
	return infer(c, req, NULL, 0, t, timeout_ms, ret_result);
}

static int submit(qv_client *c, const struct qv_request *req, float *out, size_t out_cap,
		  const struct qv_tensors *t)
{
	uint32_t in_bytes, cap;
	int s, r;

	if (!c || (!out && out_cap))
		return -EINVAL;
	r = check_req(c, req, out_cap, t, &in_bytes, &cap);
	if (r < 0)
		return r;
	if (!server_reachable(c))
		return -EPIPE;
	switch (server_state(c)) {
	case QV_SRV_RUNNING:
		break;
	case QV_SRV_DRAINING:
		return -ESHUTDOWN;
	default:
		/* CLOSED (or garbage): the server will never read this channel again. */
		c->gone = true;
		return -EPIPE;
	}
	s = push_req(c, req, out, t, in_bytes, cap, SLOT_INFLIGHT);
	if (s < 0)
		return s;
	c->inflight++;
	return 0;
}

int qv_submit(qv_client *c, const struct qv_request *req, float *out, size_t out_cap)
{
	return submit(c, req, out, out_cap, NULL);
}

int qv_submit_tensors(qv_client *c, const struct qv_request *req, const struct qv_tensors *t)
{
	if (!t)
		return -EINVAL;
	return submit(c, req, NULL, 0, t);
}

int qv_poll(qv_client *c, struct qv_result *results, int max)
{
	int n = 0;

	if (!c || !results || max < 0)
		return -EINVAL;
	/* Even from a dead server, completions already in the ring are real. */
	if (!c->broken) {
		int r = reap(c, UINT32_MAX);
		/* While stalled every empty poll looks again: it is the error path. */
		/*
		 * Check the server every QV_SPIN_CHECK empty polls (a caller
		 * spinning), or once a coarse-clock millisecond has passed since
		 * the last check (a caller polling now and then): dead_after is
		 * honoured in time, not in calls, either way.
		 */
		if (r >= 0 && !c->gone && c->done_count == 0) {
			uint64_t cn = coarse_ns();
			if (c->stalled || ++c->spins >= QV_SPIN_CHECK ||
			    cn - c->poll_check_coarse >= 1000000u) {
				c->spins = 0;
				c->poll_check_coarse = cn;
				check_server(c, now_ns());
			}
		}
	}
	while (n < max && c->done_count) {
		uint32_t s = c->done_q[c->done_head];
		if (++c->done_head == c->nslots)
			c->done_head = 0;
		c->done_count--;
		results[n++] = c->st[s].res;
		c->inflight--;
		slot_free(c, s);
	}
	if (!c->gone && !c->stalled)
		return n;
	/*
	 * Unreachable: report whatever is still in flight once, as
	 * UNAVAILABLE. Its slot stays taken until a completion for it arrives
	 * (from a server that resumes), which is then dropped; a dead server's
	 * slots are never reused, it may have been writing into them.
	 */
	for (uint32_t s = 0; s < c->nslots && n < max; s++) {
		struct slot *sl = &c->st[s];
		if (sl->state != SLOT_INFLIGHT)
			continue;
		results[n++] = (struct qv_result){ .request_id = sl->request_id,
						   .status = QV_UNAVAILABLE };
		sl->state = SLOT_ABANDONED;
		c->inflight--;
	}
	if (n == 0)
		return -EPIPE;
	return n;
}

uint32_t qv_inflight(const qv_client *c)
{
	return c ? c->inflight : 0;
}

const char *qv_strerror(int status_or_negerrno)
{
	static const char *const names[QV_STATUS_COUNT] = {
		[QV_OK] = "OK",
		[QV_UNKNOWN_MODEL] = "UNKNOWN_MODEL",
		[QV_BAD_SHAPE] = "BAD_SHAPE",
		[QV_BAD_REQUEST] = "BAD_REQUEST",
		[QV_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
		[QV_OVERLOADED] = "OVERLOADED",
		[QV_UNAVAILABLE] = "UNAVAILABLE",
		[QV_INTERNAL] = "INTERNAL",
	};
	const char *s;

	if (status_or_negerrno >= 0)
		return status_or_negerrno < QV_STATUS_COUNT ? names[status_or_negerrno] :
							      "unknown status";
	if (status_or_negerrno == INT_MIN)
		return "unknown error";
	/* strerrordesc_np: thread-safe, no locale, static storage. */
	s = strerrordesc_np(-status_or_negerrno);
	return s ? s : "unknown error";
}
