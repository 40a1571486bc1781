/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fake_server.c - see fake_server.h. Written against the same headers
 * quiverd uses (qv_proto.h, qv_shm.h, qv_seg.h, qv_ring.h), so the client is
 * exercised on the real wire format and layout, not on a private copy.
 */
#include "fake_server.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "quiver.h"
#include "qv_proto.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int send_msg(int fd, uint16_t type, uint32_t seq, int32_t status, const void *payload,
		    uint32_t len, int pass_fd)
{
	struct qv_msg_hdr h = {
		.magic = QV_PROTO_MAGIC, .type = type, .version = QV_PROTO_VERSION,
		.len = len, .seq = seq, .status = status,
	};
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (pass_fd >= 0) {
		memset(&cbuf, 0, sizeof(cbuf));
		m.msg_control = cbuf.buf;
		m.msg_controllen = sizeof(cbuf.buf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
	}
	return sendmsg(fd, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

static int handshake(struct fake_server *f)
{
	struct {
		struct qv_msg_hdr h;
		struct qv_hello hello;
	} in;
	struct qv_hello_ok ok;
	ssize_t n = recv(f->cfd, &in, sizeof(in), 0);
	int memfd, r;

	if (n != (ssize_t)sizeof(in) || in.h.magic != QV_PROTO_MAGIC || in.h.type != QV_MSG_HELLO ||
	    in.hello.abi_version != QV_ABI_VERSION)
		return -EPROTO;
	if (in.hello.slots == FAKE_REFUSED_SLOTS) {
		/* Like quiverd's refusals: an errno plus a readable (long) reason. */
		char why[300];
		memset(why, 'x', sizeof(why));
		send_msg(f->cfd, QV_MSG_ERROR, in.h.seq, -EBUSY, why, sizeof(why), -1);
		return -EBUSY;
	}
	r = qv_seg_layout(in.hello.slots, in.hello.slot_in_bytes, in.hello.slot_out_bytes, &f->l);
	if (r < 0)
		return send_msg(f->cfd, QV_MSG_ERROR, in.h.seq, r, NULL, 0, -1);
	memfd = memfd_create("qv-fake-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (memfd < 0)
		return -errno;
	if (ftruncate(memfd, (off_t)f->l.seg_bytes) < 0 ||
	    (atomic_load(&f->hello_lie) != LIE_UNSEALED &&
	     fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)) {
		close(memfd);
		return -errno;
	}
	f->map = mmap(NULL, f->l.seg_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (f->map == MAP_FAILED) {
		f->map = NULL;
		close(memfd);
		return -errno;
	}
	f->hdr = f->map;
	qv_seg_init_hdr(f->hdr, &f->l, 1, 0, mono_ns());
	qv_ring_cons_init(&f->sq, (uint8_t *)f->map + f->l.sq_off, f->l.ring_entries,
			  sizeof(struct qv_sqe));
	qv_ring_prod_init(&f->cq, (uint8_t *)f->map + f->l.cq_off, f->l.ring_entries,
			  sizeof(struct qv_cqe));
	ok = (struct qv_hello_ok){ .seg_bytes = f->l.seg_bytes, .channel_id = 1, .worker = 0 };
	switch (atomic_load(&f->hello_lie)) {
	case LIE_MAGIC:
		atomic_store(&f->hdr->magic, 0);
		break;
	case LIE_ABI:
		f->hdr->abi_version = 99;
		break;
	case LIE_SEG_BYTES:
		ok.seg_bytes += QV_SEG_PAGE;
		break;
	case LIE_RING:
		f->hdr->ring_entries = 3;
		break;
	case LIE_SLOTS_OFF:
		f->hdr->slots_off = f->l.seg_bytes - QV_CACHELINE;
		break;
	case LIE_NO_FD:
		r = send_msg(f->cfd, QV_MSG_HELLO_OK, in.h.seq, 0, &ok, sizeof(ok), -1);
		close(memfd);
		return r;
	default:
		break;
	}
	r = send_msg(f->cfd, QV_MSG_HELLO_OK, in.h.seq, 0, &ok, sizeof(ok), memfd);
	close(memfd);
	return r;
}

static void tensor(struct qv_tensor_wire *t, const char *name, uint32_t dtype, uint32_t elems,
		   uint32_t off)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->dtype = dtype;
	t->rank = 2;
	t->shape[0] = -1;
	t->shape[1] = elems;
	t->row_bytes = elems * (dtype == QV_TENSOR_INT64 ? 8u : 4u);
	t->packed_off = off;
}

static void float_tensor(struct qv_tensor_wire *t, const char *name, uint32_t elems)
{
	tensor(t, name, QV_TENSOR_FLOAT32, elems, 0);
}

/* "mixed"'s tensors; the lie-mixed-* names break one rule each. */
static void mixed_tensors(struct qv_tensor_wire *t, const char *name)
{
	tensor(&t[0], "dense", QV_TENSOR_FLOAT32, 3, 0);
	tensor(&t[1], "ids", QV_TENSOR_INT64, 2, 12);
	tensor(&t[2], "k", QV_TENSOR_INT32, 1, 28);
	t[1].index_bound = 100;
	tensor(&t[3], "score", QV_TENSOR_FLOAT32, 1, 0);
	tensor(&t[4], "cls", QV_TENSOR_INT64, 1, 4);
	tensor(&t[5], "pair", QV_TENSOR_FLOAT32, 2, 12);
	if (strcmp(name, "lie-mixed-dtype") == 0)
		t[2].dtype = 2; /* uint8: not a dtype of the wire */
	else if (strcmp(name, "lie-mixed-off") == 0)
		t[2].packed_off = 24; /* overlaps ids */
	else if (strcmp(name, "lie-mixed-bytes") == 0)
		t[1].row_bytes = 12; /* two int64 are 16 bytes */
	else if (strcmp(name, "lie-mixed-sum") == 0)
		t[5].shape[1] = 3, t[5].row_bytes = 12; /* 6 output words, out_dim says 5 */
}

static void answer_control(struct fake_server *f)
{
	struct {
		struct qv_msg_hdr h;
		struct qv_lookup q;
	} in;
	struct qv_lookup_reply lr;
	struct qv_model_wire w;
	uint32_t n_in = 1, n_out = 1;
	ssize_t n = recv(f->cfd, &in, sizeof(in), MSG_DONTWAIT);

	if (n <= 0)
		return;
	if (n != (ssize_t)sizeof(in) || in.h.type != QV_MSG_LOOKUP ||
	    in.q.abi_version != QV_ABI_VERSION) {
		send_msg(f->cfd, QV_MSG_ERROR, in.h.seq, -EPROTO, NULL, 0, -1);
		return;
	}
	atomic_fetch_add_explicit(&f->lookups, 1, memory_order_relaxed);
	in.q.name[sizeof(in.q.name) - 1] = 0;
	memset(&w, 0, sizeof(w));
	memset(&lr, 0, sizeof(lr));
	if (strcmp(in.q.name, "echo") == 0) {
		w.handle = FAKE_ECHO_HANDLE;
		w.in_dim = w.out_dim = 4;
		w.max_batch = 8;
	} else if (strcmp(in.q.name, "double") == 0) {
		w.handle = FAKE_DOUBLE_HANDLE;
		w.in_dim = w.out_dim = 3;
		w.max_batch = 4;
	} else if (strcmp(in.q.name, "lie-zero-dim") == 0) {
		/* A record a server must never send: the client refuses it. */
		w.handle = FAKE_ECHO_HANDLE;
		w.in_dim = 0;
		w.out_dim = 4;
		w.max_batch = 8;
	} else if (strcmp(in.q.name, "lie-zero-batch") == 0) {
		w.handle = FAKE_ECHO_HANDLE;
		w.in_dim = w.out_dim = 4;
		w.max_batch = 0;
	} else if (strcmp(in.q.name, "lie-rank") == 0) {
		w.handle = FAKE_ECHO_HANDLE;
		w.in_dim = w.out_dim = 4;
		w.max_batch = 8;
		w.version = FAKE_VERSION;
		w.in_rank = QV_MAX_RANK_WIRE + 1;
		w.out_rank = 2;
		snprintf(w.name, sizeof(w.name), "%s", in.q.name);
		lr.m = w;
		lr.n_inputs = lr.n_outputs = 1;
		float_tensor(&lr.t[0], "x", 4);
		float_tensor(&lr.t[1], "y", 4);
		send_msg(f->cfd, QV_MSG_LOOKUP_OK, in.h.seq, 0, &lr, qv_lookup_reply_bytes(1, 1), -1);
		return;
	} else if (strcmp(in.q.name, "mixed") == 0 || strncmp(in.q.name, "lie-mixed", 9) == 0) {
		w.handle = FAKE_MIXED_HANDLE;
		w.in_dim = 8;
		w.out_dim = 5;
		w.max_batch = 4;
		n_in = n_out = 3;
		mixed_tensors(lr.t, in.q.name);
	} else if (strcmp(in.q.name, "fail") == 0) {
		char why[2000];
		memset(why, 'y', sizeof(why));
		send_msg(f->cfd, QV_MSG_ERROR, in.h.seq, -EIO, why, sizeof(why), -1);
		return;
	} else {
		send_msg(f->cfd, QV_MSG_LOOKUP_OK, in.h.seq, QV_UNKNOWN_MODEL, NULL, 0, -1);
		return;
	}
	w.version = FAKE_VERSION;
	w.in_rank = w.out_rank = 2;
	w.in_shape[0] = w.out_shape[0] = -1;
	w.in_shape[1] = w.in_dim;
	w.out_shape[1] = w.out_dim;
	snprintf(w.name, sizeof(w.name), "%s", in.q.name);
	lr.m = w;
	lr.n_inputs = n_in;
	lr.n_outputs = n_out;
	if (n_in == 1) {
		float_tensor(&lr.t[0], "x", w.in_dim);
		float_tensor(&lr.t[1], "y", w.out_dim);
	}
	send_msg(f->cfd, QV_MSG_LOOKUP_OK, in.h.seq, 0, &lr,
		 (uint32_t)qv_lookup_reply_bytes(n_in, n_out) -
			 (strcmp(in.q.name, "lie-mixed-short") == 0 ? 8u : 0u),
		 -1);
}

static uint64_t rnd(struct fake_server *f)
{
	uint64_t x = f->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	f->rng = x;
	return x;
}

static void push_cqe(struct fake_server *f, const struct qv_cqe *e)
{
	while (qv_ring_prod_space(&f->cq) <= 0) {
		if (atomic_load_explicit(&f->stop, memory_order_relaxed))
			return;
		sched_yield();
	}
	memcpy(qv_ring_prod_entry(&f->cq, 0), e, sizeof(*e));
	qv_ring_prod_commit(&f->cq, 1);
}

/* "mixed" (fake_server.h), read from the documented byte offsets. */
static void serve_mixed(struct fake_server *f, const struct qv_sqe *d)
{
	const uint8_t *in = (const uint8_t *)f->map + qv_seg_slot_off(&f->l, d->slot);
	uint8_t *out = (uint8_t *)f->map + qv_seg_slot_off(&f->l, d->slot) + f->l.slot_in_bytes;

	for (uint32_t r = 0; r < d->rows; r++, in += 32, out += 20) {
		float dense[3], score, pair[2];
		int64_t ids[2], cls;
		int32_t k;

		memcpy(dense, in, 12);
		memcpy(ids, in + 12, 16);
		memcpy(&k, in + 28, 4);
		score = dense[0] + dense[1] + dense[2];
		cls = ids[0] * 1000 + ids[1] + k;
		pair[0] = 2.0f * dense[0];
		pair[1] = (float)k;
		memcpy(out, &score, 4);
		memcpy(out + 4, &cls, 8);
		memcpy(out + 12, pair, 8);
	}
}

/* Serves one descriptor, validating the private copy like a worker would. */
static void serve_one(struct fake_server *f, const struct qv_sqe *d)
{
	struct qv_cqe e = { .request_id = d->request_id, .slot = d->slot, .version = FAKE_VERSION };
	uint32_t in_dim, max_batch;
	float mul;

	if (d->slot >= f->l.nslots || d->in_bytes > f->l.slot_in_bytes ||
	    d->out_cap > f->l.slot_out_bytes) {
		e.status = QV_BAD_REQUEST;
		if (d->slot >= f->l.nslots)
			return; /* nowhere to answer; a real worker retires the channel */
		goto done;
	}
	if (d->handle == FAKE_MIXED_HANDLE) {
		if (d->rows == 0 || d->rows > 4 || d->in_bytes != d->rows * 32 ||
		    d->out_cap < d->rows * 20) {
			e.status = QV_BAD_SHAPE;
			goto done;
		}
		serve_mixed(f, d);
		e.status = QV_OK;
		e.out_bytes = d->rows * 20;
		goto done;
	}
	if (d->handle == FAKE_ECHO_HANDLE) {
		in_dim = 4, max_batch = 8, mul = 1.0f;
	} else if (d->handle == FAKE_DOUBLE_HANDLE) {
		in_dim = 3, max_batch = 4, mul = 2.0f;
	} else {
		e.status = QV_UNKNOWN_MODEL;
		goto done;
	}
	if (d->rows == 0 || d->rows > max_batch || d->in_bytes != d->rows * in_dim * 4 ||
	    d->out_cap < d->in_bytes) {
		e.status = QV_BAD_SHAPE;
		goto done;
	}
	const uint8_t *in = (const uint8_t *)f->map + qv_seg_slot_off(&f->l, d->slot);
	uint8_t *out = (uint8_t *)f->map + qv_seg_slot_off(&f->l, d->slot) + f->l.slot_in_bytes;
	for (uint32_t i = 0; i < d->rows * in_dim; i++) {
		float v;
		memcpy(&v, in + 4 * i, 4);
		v *= mul;
		memcpy(out + 4 * i, &v, 4);
	}
	e.status = QV_OK;
	e.out_bytes = d->in_bytes;
done:
	for (int g = atomic_load_explicit(&f->garbage, memory_order_relaxed); g > 0; g--) {
		uint64_t x = rnd(f);
		struct qv_cqe b = {
			.request_id = (x & 1) ? d->request_id : rnd(f),
			.slot = (uint32_t)(x >> 8) % (f->l.nslots + 2),
			.status = (uint32_t)(x >> 24) % 12,
			.out_bytes = (uint32_t)(x >> 32) % (f->l.slot_out_bytes + 128),
			.version = (uint32_t)(x >> 48),
		};
		/* Our own id with a valid status would be a real answer, not garbage. */
		if (b.request_id == d->request_id && b.status < QV_STATUS_COUNT)
			b.status += QV_STATUS_COUNT;
		push_cqe(f, &b);
	}
	switch (atomic_exchange_explicit(&f->corrupt, FAKE_OK, memory_order_relaxed)) {
	case FAKE_BOGUS_SLOT: {
		struct qv_cqe b = e;
		b.slot = f->l.nslots + 5;
		push_cqe(f, &b);
		break;
	}
	case FAKE_IDLE_SLOT: {
		struct qv_cqe b = e;
		b.slot = (e.slot + 1) % f->l.nslots;
		push_cqe(f, &b);
		break;
	}
	case FAKE_TOO_BIG:
		e.out_bytes = d->out_cap + 64;
		break;
	case FAKE_WRONG_ID:
		e.request_id ^= 0x5a5a;
		break;
	case FAKE_BAD_STATUS:
		e.status = 99;
		break;
	case FAKE_DUPLICATE:
		push_cqe(f, &e);
		break;
	case FAKE_BREAK_RING:
		/* Release pairs with the client's acquire of tail; it sees garbage. */
		atomic_store_explicit(&f->cq.ctl->tail, f->cq.tail + 4 * f->l.ring_entries + 1,
				      memory_order_release);
		return;
	default:
		break;
	}
	push_cqe(f, &e);
	atomic_fetch_add_explicit(&f->served, 1, memory_order_relaxed);
}

static void *run(void *arg)
{
	struct fake_server *f = arg;

	f->cfd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (f->cfd < 0 || handshake(f) < 0 || !f->map) {
		/* Release pairs with fake_wait_channel(): it sees the failure. */
		atomic_store_explicit(&f->ready, -1, memory_order_release);
		return NULL;
	}
	/* Release pairs with the acquire in fake_wait_channel(): hdr is set. */
	atomic_store_explicit(&f->ready, 1, memory_order_release);

	while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
		int did = 0;

		if (atomic_load_explicit(&f->hangup, memory_order_relaxed) && f->cfd >= 0) {
			close(f->cfd);
			f->cfd = -1;
		}
		if (f->cfd >= 0)
			answer_control(f);
		if (atomic_load_explicit(&f->beat, memory_order_relaxed))
			atomic_store_explicit(&f->hdr->server_heartbeat_ns, mono_ns(),
					      memory_order_relaxed);
		if (!atomic_load_explicit(&f->hold, memory_order_relaxed)) {
			int n = qv_ring_cons_avail(&f->sq);
			for (int i = 0; i < n; i++) {
				struct qv_sqe d;
				memcpy(&d, qv_ring_cons_entry(&f->sq, (uint32_t)i), sizeof(d));
				serve_one(f, &d);
			}
			if (n > 0) {
				qv_ring_cons_release(&f->sq, (uint32_t)n);
				did = 1;
			}
		}
		if (!did)
			sched_yield();
	}
	return NULL;
}

int fake_start(struct fake_server *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int r;

	memset(f, 0, sizeof(*f));
	f->lfd = f->cfd = -1;
	atomic_store(&f->beat, 1);
	f->rng = 0x2545f4914f6cdd1dull;
		snprintf(f->dir, sizeof(f->dir), "/tmp/qv-fake.XXXXXX");
	if (!mkdtemp(f->dir))
		return -errno;
	snprintf(f->path, sizeof(f->path), "%s/quiverd.sock", f->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	f->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (f->lfd < 0)
		return -errno;
	if (bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(f->lfd, 4) < 0)
		return -errno;
	r = pthread_create(&f->thread, NULL, run, f);
	if (r)
		return -r;
	f->started = true;
	return 0;
}

void fake_wait_channel(struct fake_server *f)
{
	/* Acquire pairs with the thread's release store after the hand-shake. */
	while (atomic_load_explicit(&f->ready, memory_order_acquire) == 0)
		sched_yield();
}

void fake_set_state(struct fake_server *f, uint32_t state)
{
	fake_wait_channel(f);
	if (f->hdr)
		atomic_store_explicit(&f->hdr->server_state, state, memory_order_relaxed);
}

void fake_stop(struct fake_server *f)
{
	if (f->started) {
		atomic_store(&f->stop, 1);
		/* Wakes a thread still blocked in accept(). */
		shutdown(f->lfd, SHUT_RDWR);
		pthread_join(f->thread, NULL);
	}
	if (f->cfd >= 0)
		close(f->cfd);
	if (f->lfd >= 0)
		close(f->lfd);
	if (f->map)
		munmap(f->map, f->l.seg_bytes);
	unlink(f->path);
	rmdir(f->dir);
	f->started = false;
	f->cfd = f->lfd = -1;
	f->map = NULL;
}
