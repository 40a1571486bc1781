/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp_uring.c - the io_uring UDP back end: one socket and one ring per
 * worker, polled from the worker's loop without ever blocking.
 *
 * Receive: one multishot recvmsg stays armed on the socket; the kernel
 * picks a buffer from a provided buffer ring for each datagram and posts a
 * completion, so receiving costs no syscall at all.
 *
 * Serve: a turn reaps up to CQE_BATCH completions and parses every datagram
 * where it landed. Each INFER becomes a batch item whose input is read in
 * place and whose output goes straight into a preallocated reply buffer;
 * one qv_worker_serve_batch() call then serves them all, so requests for
 * the same model version that arrived together run as one batched model
 * call, and a lone request still runs in place with no copy. The turn never
 * waits for more datagrams to fill a batch. Only then do the receive
 * buffers go back to the ring (a store to shared memory, no syscall): the
 * inputs were read from them.
 *
 * Send: when a poll turn produced several replies, each is a send SQE and
 * all go to the kernel with one io_uring_enter, so a burst of N datagrams
 * costs one syscall, not N; UDP sends complete inline in that call, so
 * reply buffers come back at the next turn. When a turn produced exactly
 * one reply, a plain sendto(MSG_DONTWAIT) is the same one syscall and was
 * measured ~1 us cheaper on loopback than the io_uring send (no SQE/CQE
 * round, no request allocation in the kernel); if it would block, the
 * reply falls back to the ring.
 *
 * Every submission is made by the worker thread (the recv is armed lazily
 * at its first poll): io_uring runs a request's task work in the task that
 * submitted it, and a control thread asleep in accept() would never run it.
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <numa.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "quiver.h"
#include "serve.h"
#include "udp.h"
#include "worker.h"

#define RX_BUFS 256u            /* power of two (buffer ring) */
#define RX_NAMELEN 32u          /* room for a sockaddr_in6, keeps payload 16-aligned */
#define RX_HDR (sizeof(struct io_uring_recvmsg_out) + RX_NAMELEN)
/* One byte more than a legal datagram so an oversize one shows MSG_TRUNC. */
#define RX_BUF_SIZE ((RX_HDR + QV_UDP_MAX_DATAGRAM + 64u) & ~63u)
#define TX_SLOTS 256u
#define SQ_ENTRIES 512u
#define CQ_ENTRIES 4096u
#define CQE_BATCH 64u
#define BGID 7u

#define UD_RECV (1ull << 63)

_Static_assert((RX_BUFS & (RX_BUFS - 1)) == 0, "buffer ring size is a power of two");
_Static_assert((RX_HDR + sizeof(struct qv_udp_req_hdr)) % 16 == 0,
	       "inputs land 16-byte aligned in a receive buffer");
_Static_assert(CQE_BATCH + 1 <= SQ_ENTRIES, "one turn's sends fit the SQ");

struct tx_slot {
	struct msghdr msg;
	struct iovec iov;
	struct sockaddr_storage peer;
	uint8_t *data;          /* QV_UDP_MAX_DATAGRAM bytes, 64-aligned */
};

/* Written by the owning worker only (relaxed load + store, no RMW needed),
 * read by anyone with relaxed loads. */
struct udp_counters {
	_Atomic uint64_t rx, tx, dropped_allow, bad_request, junk, lookups, tx_dropped, rx_rearm,
		tx_direct;
};

struct qv_udp_uring {
	struct io_uring ring;
	int fd;
	uint16_t port;
	bool armed;
	bool numa_mem;
	bool send_addr;         /* IORING_OP_SEND takes a destination (Linux >= 6.1) */
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	uint8_t *rx_mem;
	uint8_t *tx_mem;
	size_t rx_bytes, tx_bytes;
	struct msghdr rx_msg;   /* template of the multishot recvmsg */
	uint32_t tx_free_n;
	uint32_t npend;         /* replies built this turn, not yet sent */
	uint32_t nitems;        /* this turn's INFERs, waiting for the batch */
	struct qv_batch_item *items; /* [CQE_BATCH]; items[i].slot: index into pend_* */
	size_t items_bytes;
	uint16_t pend_slot[CQE_BATCH];
	uint32_t pend_len[CQE_BATCH];
	uint16_t tx_free[TX_SLOTS];
	struct tx_slot tx[TX_SLOTS];
	struct qv_allow_list allow;
	struct udp_counters cnt;
};

static inline void cnt_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static void *mem_alloc(size_t bytes, int node, bool *ret_numa)
{
	void *p;

	if (node >= 0 && numa_available() >= 0) {
		p = numa_alloc_onnode(bytes, node);
		if (p != NULL) {
			memset(p, 0, bytes); /* fault the pages in now, not on the first packet */
			*ret_numa = true;
			return p;
		}
	}
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		 -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	*ret_numa = false;
	return p;
}

static void mem_free(void *p, size_t bytes, bool numa_mem)
{
	if (p == NULL)
		return;
	if (numa_mem)
		numa_free(p, bytes);
	else
		munmap(p, bytes);
}

static int ring_init(struct qv_udp_uring *u)
{
	/* COOP_TASKRUN: no IPI interrupts the busy worker when a datagram
	 * arrives; the kernel sets IORING_SQ_TASKRUN instead and
	 * io_uring_peek_batch_cqe enters the kernel only then. Older
	 * kernels refuse the flags with -EINVAL: fall back to the default. */
	static const unsigned tries[] = {
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		0,
	};
	int r = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		p.flags = tries[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = CQ_ENTRIES;
		r = io_uring_queue_init_params(SQ_ENTRIES, &u->ring, &p);
		if (r != -EINVAL)
			break;
	}
	return r;
}

static int buf_ring_init(struct qv_udp_uring *u)
{
	struct io_uring_buf_reg reg;
	int r;

	u->br_bytes = RX_BUFS * sizeof(struct io_uring_buf);
	u->br = mmap(NULL, u->br_bytes, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (u->br == MAP_FAILED) {
		u->br = NULL;
		return -ENOMEM;
	}
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)u->br;
	reg.ring_entries = RX_BUFS;
	reg.bgid = BGID;
	r = io_uring_register_buf_ring(&u->ring, &reg, 0);
	if (r < 0)
		return r;
	io_uring_buf_ring_init(u->br);
	for (unsigned i = 0; i < RX_BUFS; i++)
		io_uring_buf_ring_add(u->br, u->rx_mem + (size_t)i * RX_BUF_SIZE, RX_BUF_SIZE,
				      (unsigned short)i, io_uring_buf_ring_mask(RX_BUFS), (int)i);
	io_uring_buf_ring_advance(u->br, RX_BUFS);
	return 0;
}

static int socket_init(struct qv_udp_uring *u, const char *addr_port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1, rcvbuf = 4 << 20;
	int r;

	r = qv_udp_parse_addr(addr_port, &ss, &sl);
	if (r < 0)
		return r;
	u->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
	if (u->fd < 0)
		return -errno;
	if (setsockopt(u->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		return -errno;
	/* A bigger receive queue absorbs bursts while the worker computes;
	 * FORCE needs CAP_NET_ADMIN, the plain one is capped by rmem_max. */
	if (setsockopt(u->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		(void)setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(u->fd, (struct sockaddr *)&ss, sl) < 0)
		return -errno;
	sl = sizeof(ss);
	if (getsockname(u->fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	u->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

static bool kernel_at_least(unsigned major, unsigned minor)
{
	struct utsname un;
	unsigned ma = 0, mi = 0;

	if (uname(&un) != 0 || sscanf(un.release, "%u.%u", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

int qv_udp_uring_open(const char *addr_port, const struct qv_allow_list *allow,
		      int numa_node, struct qv_udp_uring **ret)
{
	struct qv_udp_uring *u;
	bool numa_rx = false, numa_tx = false, numa_it = false;
	int r;

	if (addr_port == NULL || ret == NULL)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return -ENOMEM;
	u->fd = -1;
	u->ring.ring_fd = -1;
	if (allow != NULL)
		u->allow = *allow;

	u->rx_bytes = (size_t)RX_BUFS * RX_BUF_SIZE;
	u->tx_bytes = (size_t)TX_SLOTS * QV_UDP_MAX_DATAGRAM;
	u->items_bytes = (size_t)CQE_BATCH * sizeof(*u->items);
	u->rx_mem = mem_alloc(u->rx_bytes, numa_node, &numa_rx);
	u->tx_mem = mem_alloc(u->tx_bytes, numa_node, &numa_tx);
	u->items = mem_alloc(u->items_bytes, numa_node, &numa_it);
	u->numa_mem = numa_rx;
	if (u->rx_mem == NULL || u->tx_mem == NULL || u->items == NULL || numa_rx != numa_tx ||
	    numa_rx != numa_it) {
		mem_free(u->rx_mem, u->rx_bytes, numa_rx);
		mem_free(u->tx_mem, u->tx_bytes, numa_tx);
		mem_free(u->items, u->items_bytes, numa_it);
		free(u);
		return -ENOMEM;
	}

	for (unsigned i = 0; i < TX_SLOTS; i++) {
		struct tx_slot *s = &u->tx[i];

		s->data = u->tx_mem + (size_t)i * QV_UDP_MAX_DATAGRAM;
		s->iov.iov_base = s->data;
		s->msg.msg_name = &s->peer;
		s->msg.msg_iov = &s->iov;
		s->msg.msg_iovlen = 1;
		u->tx_free[i] = (uint16_t)(TX_SLOTS - 1 - i);
	}
	u->tx_free_n = TX_SLOTS;
	u->rx_msg.msg_namelen = RX_NAMELEN;
	u->rx_msg.msg_controllen = 0;

	r = socket_init(u, addr_port);
	if (r == 0) {
		r = ring_init(u);
		if (r < 0)
			u->ring.ring_fd = -1;
	}
	if (r == 0)
		r = buf_ring_init(u);
	/* A registered file spares the fd table lookup and reference count on
	 * every receive and send. */
	if (r == 0)
		r = io_uring_register_files(&u->ring, &u->fd, 1);
	u->send_addr = kernel_at_least(6, 1);
	if (r < 0) {
		qv_udp_uring_close(u);
		return r;
	}
	*ret = u;
	return 0;
}

void qv_udp_uring_close(struct qv_udp_uring *u)
{
	if (u == NULL)
		return;
	if (u->ring.ring_fd >= 0)
		io_uring_queue_exit(&u->ring); /* cancels the armed recv */
	if (u->fd >= 0)
		close(u->fd);
	if (u->br != NULL)
		munmap(u->br, u->br_bytes);
	mem_free(u->rx_mem, u->rx_bytes, u->numa_mem);
	mem_free(u->tx_mem, u->tx_bytes, u->numa_mem);
	mem_free(u->items, u->items_bytes, u->numa_mem);
	free(u);
}

uint16_t qv_udp_uring_port(const struct qv_udp_uring *u)
{
	return u->port;
}

void qv_udp_uring_stats(const struct qv_udp_uring *u, struct qv_udp_stats *ret)
{
	const struct udp_counters *c = &u->cnt;

	ret->rx = atomic_load_explicit(&c->rx, memory_order_relaxed);
	ret->tx = atomic_load_explicit(&c->tx, memory_order_relaxed);
	ret->dropped_allow = atomic_load_explicit(&c->dropped_allow, memory_order_relaxed);
	ret->bad_request = atomic_load_explicit(&c->bad_request, memory_order_relaxed);
	ret->junk = atomic_load_explicit(&c->junk, memory_order_relaxed);
	ret->lookups = atomic_load_explicit(&c->lookups, memory_order_relaxed);
	ret->tx_dropped = atomic_load_explicit(&c->tx_dropped, memory_order_relaxed);
	ret->rx_rearm = atomic_load_explicit(&c->rx_rearm, memory_order_relaxed);
	ret->tx_direct = atomic_load_explicit(&c->tx_direct, memory_order_relaxed);
}

/* Gets an SQE, flushing the SQ once if it is full (cannot happen with the
 * sizes above, kept so a future change cannot turn into a NULL deref). */
static struct io_uring_sqe *get_sqe(struct qv_udp_uring *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (sqe == NULL) {
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

static bool arm_recv(struct qv_udp_uring *u)
{
	struct io_uring_sqe *sqe = get_sqe(u);

	if (sqe == NULL)
		return false;
	io_uring_prep_recvmsg_multishot(sqe, 0, &u->rx_msg, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT | IOSQE_FIXED_FILE;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, UD_RECV);
	return true;
}

static void queue_send(struct qv_udp_uring *u, uint16_t slot, size_t len)
{
	struct tx_slot *s = &u->tx[slot];
	struct io_uring_sqe *sqe = get_sqe(u);

	if (sqe == NULL) {
		u->tx_free[u->tx_free_n++] = slot;
		cnt_add(&u->cnt.tx_dropped, 1);
		return;
	}
	if (u->send_addr) {
		/* A plain send with a destination: no msghdr or iovec for the
		 * kernel to copy in, measurably cheaper than sendmsg. */
		io_uring_prep_send(sqe, 0, s->data, len, 0);
		sqe->addr2 = (uint64_t)(uintptr_t)&s->peer;
		sqe->addr_len = (uint16_t)s->msg.msg_namelen;
	} else {
		s->iov.iov_len = len;
		io_uring_prep_sendmsg(sqe, 0, &s->msg, 0);
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, slot);
}

/*
 * One received datagram in buffer `buf` (`len` bytes as the CQE said): a
 * reply slot is taken and the reply queued; an INFER's reply is only
 * prepared (an item for the turn's batch, its length set after the batch
 * ran), the others are written now. `buf` must stay the datagram's until
 * the batch ran.
 */
static void handle_datagram(struct qv_udp_uring *u, struct qv_worker *w, uint8_t *buf, int len)
{
	struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(buf, len, &u->rx_msg);
	struct qv_udp_parsed p;
	enum qv_udp_verdict v;
	socklen_t namelen;
	size_t plen, rlen;
	uint8_t *payload;

	cnt_add(&u->cnt.rx, 1);
	if (o == NULL) {
		cnt_add(&u->cnt.junk, 1);
		return;
	}
	namelen = o->namelen < RX_NAMELEN ? o->namelen : RX_NAMELEN;
	if (!qv_allow_check(&u->allow, io_uring_recvmsg_name(o), namelen)) {
		cnt_add(&u->cnt.dropped_allow, 1);
		return;
	}
	payload = io_uring_recvmsg_payload(o, &u->rx_msg);
	plen = io_uring_recvmsg_payload_length(o, len, &u->rx_msg);
	v = qv_udp_parse_request(payload, plen, (o->flags & MSG_TRUNC) != 0, &p);
	if (v == QV_UDP_V_JUNK) {
		cnt_add(&u->cnt.junk, 1);
		return;
	}
	if (u->tx_free_n == 0) {
		cnt_add(&u->cnt.tx_dropped, 1); /* the client times out, as on any loss */
		return;
	}
	uint16_t slot = u->tx_free[--u->tx_free_n];
	struct tx_slot *s = &u->tx[slot];

	switch (v) {
	case QV_UDP_V_INFER:
		/* At most one item per CQE, CQE_BATCH CQEs a turn: fits. */
		qv_udp_serve_prepare(&u->items[u->nitems], &p, payload, s->data,
				     (uint32_t)QV_UDP_MAX_OUT_BYTES);
		u->items[u->nitems++].slot = u->npend;
		rlen = 0; /* qv_udp_serve_finish() says, after the batch */
		break;
	case QV_UDP_V_LOOKUP:
		rlen = qv_udp_serve_lookup(w, &p, s->data);
		cnt_add(&u->cnt.lookups, 1);
		break;
	default:
		rlen = qv_udp_put_reply_hdr(s->data, (uint8_t)p.version, (uint8_t)p.reply_type, QV_BAD_REQUEST, 0, 0,
					    p.request_id, 0);
		cnt_add(&u->cnt.bad_request, 1);
		break;
	}
	memcpy(&s->peer, io_uring_recvmsg_name(o), namelen);
	s->msg.msg_namelen = namelen;
	/* At most one datagram per CQE and CQE_BATCH CQEs a turn: fits. */
	u->pend_slot[u->npend] = slot;
	u->pend_len[u->npend] = (uint32_t)rlen;
	u->npend++;
}

/* Runs the turn's INFERs as one qv_worker_serve_batch() call and writes
 * their reply headers and lengths. */
static void serve_items(struct qv_udp_uring *u, struct qv_worker *w)
{
	qv_worker_serve_batch(w, u->items, u->nitems);
	for (uint32_t i = 0; i < u->nitems; i++) {
		uint32_t k = u->items[i].slot;

		u->pend_len[k] = (uint32_t)qv_udp_serve_finish(&u->items[i],
							       u->tx[u->pend_slot[k]].data);
	}
}

/* Sends the turn's replies: a lone one directly, several through the ring. */
static void flush_replies(struct qv_udp_uring *u)
{
	if (u->npend == 1) {
		struct tx_slot *s = &u->tx[u->pend_slot[0]];

		if (sendto(u->fd, s->data, u->pend_len[0], MSG_DONTWAIT,
			   (const struct sockaddr *)&s->peer, s->msg.msg_namelen) >= 0) {
			u->tx_free[u->tx_free_n++] = u->pend_slot[0];
			cnt_add(&u->cnt.tx, 1);
			cnt_add(&u->cnt.tx_direct, 1);
			u->npend = 0;
			return;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
			/* A send the ring would fail the same way (unreachable peer,
			 * refused address): counted as dropped, as a failed ring send is. */
			u->tx_free[u->tx_free_n++] = u->pend_slot[0];
			cnt_add(&u->cnt.tx_dropped, 1);
			u->npend = 0;
			return;
		}
		/* The send buffer is full: the ring waits for room and retries. */
	}
	for (uint32_t i = 0; i < u->npend; i++)
		queue_send(u, u->pend_slot[i], u->pend_len[i]);
	u->npend = 0;
}

int qv_udp_uring_poll(struct qv_udp_uring *u, struct qv_worker *w)
{
	struct io_uring_cqe *cqes[CQE_BATCH];
	uint16_t bids[CQE_BATCH];
	unsigned n, nbids = 0, mask = io_uring_buf_ring_mask(RX_BUFS);
	bool rearm = !u->armed, served;
	int work = 0;

	u->nitems = 0;
	n = io_uring_peek_batch_cqe(&u->ring, cqes, CQE_BATCH);
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_cqe *cqe = cqes[i];
		uint64_t ud = io_uring_cqe_get_data64(cqe);

		if (ud != UD_RECV) {
			/* A reply left: its buffer is free again. */
			u->tx_free[u->tx_free_n++] = (uint16_t)ud;
			cnt_add(cqe->res >= 0 ? &u->cnt.tx : &u->cnt.tx_dropped, 1);
			continue;
		}
		if (!(cqe->flags & IORING_CQE_F_MORE))
			rearm = true; /* the multishot ended (e.g. -ENOBUFS): arm a new one */
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
			uint8_t *buf = u->rx_mem + (size_t)(bid & mask) * RX_BUF_SIZE;

			if (cqe->res > 0) {
				handle_datagram(u, w, buf, cqe->res);
				work++;
			}
			bids[nbids++] = (uint16_t)bid;
		}
	}
	if (n == 0 && !rearm)
		return 0;
	served = u->nitems > 0;
	if (served)
		serve_items(u, w);
	/* The inputs were read in place: only now may the kernel have the
	 * receive buffers back. */
	for (unsigned i = 0; i < nbids; i++)
		io_uring_buf_ring_add(u->br, u->rx_mem + (size_t)(bids[i] & mask) * RX_BUF_SIZE,
				      RX_BUF_SIZE, bids[i], mask, (int)i);
	/* Buffers first, then CQ slots. io_uring_buf_ring_advance publishes
	 * the buffer ring tail with a release store (pairs with the kernel's
	 * acquire load of the tail when it picks a buffer), so the entries
	 * written by io_uring_buf_ring_add are visible before the tail; the CQ
	 * head is likewise a release store inside io_uring_cq_advance (pairs
	 * with the kernel's acquire before it reuses a CQE slot). */
	io_uring_buf_ring_advance(u->br, (int)nbids);
	io_uring_cq_advance(&u->ring, n);
	if (!u->armed) {
		/* First turn, on the worker thread: a registered ring fd spares
		 * io_uring_enter an fd lookup, but it belongs to the registering
		 * thread, so it cannot be done at open. Failure only costs that. */
		(void)io_uring_register_ring_fd(&u->ring);
	}
	flush_replies(u);
	if (rearm && arm_recv(u)) {
		if (u->armed)
			cnt_add(&u->cnt.rx_rearm, 1);
		u->armed = true;
	}
	/* One syscall for all the ring sends of this turn (and the re-arm). */
	if (io_uring_sq_ready(&u->ring) > 0)
		io_uring_submit(&u->ring);
	/* The answers are out: a mirrored request drawn by the batch may run. */
	if (served)
		qv_worker_shadow_flush(w);
	return work;
}
