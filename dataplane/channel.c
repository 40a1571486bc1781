/* SPDX-License-Identifier: Apache-2.0 */
/*
 * channel.c - creating and destroying a channel's segment. Slow path
 * (control thread).
 */
#include "channel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "numa_mem.h"

uint64_t qv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int qv_chan_create(const struct qv_seg_layout *l, uint32_t id, uint32_t worker, int node,
		   struct qv_chan **ret_chan, int *ret_memfd)
{
	struct qv_chan *c;
	char name[32];
	void *base;
	int fd, r;

	snprintf(name, sizeof(name), "quiver-chan-%u", id);
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)l->seg_bytes) < 0) {
		r = -errno;
		goto fail_fd;
	}
	base = mmap(NULL, l->seg_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		r = -errno;
		goto fail_fd;
	}
	c = qv_numa_alloc(sizeof(*c), node);
	if (!c) {
		r = -ENOMEM;
		goto fail_map;
	}
	c->node = node;
	c->base = base;
	c->bytes = l->seg_bytes;
	c->id = id;
	c->worker = worker;
	c->hdr = base;
	c->lim.nslots = l->nslots;
	c->lim.slot_in_bytes = l->slot_in_bytes;
	c->lim.slot_out_bytes = l->slot_out_bytes;
	c->slot_in_bytes = l->slot_in_bytes;
	c->slot_stride = (uint64_t)l->slot_in_bytes + l->slot_out_bytes;
	c->slots = (uint8_t *)base + l->slots_off;
	/* A fresh memfd reads as zeroes: both rings start empty at index 0. */
	qv_ring_cons_init(&c->sq, (uint8_t *)base + l->sq_off, l->ring_entries,
			  sizeof(struct qv_sqe));
	qv_ring_prod_init(&c->cq, (uint8_t *)base + l->cq_off, l->ring_entries,
			  sizeof(struct qv_cqe));
	atomic_store_explicit(&c->retired, 0, memory_order_relaxed);
	/* Magic is stored last, with release, inside qv_seg_init_hdr. */
	qv_seg_init_hdr(c->hdr, l, id, worker, qv_now_ns());
	/*
	 * Sealed: the client can neither shrink the file under our mapping
	 * (SIGBUS in a worker) nor grow it, nor undo the seals.
	 */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		r = -errno;
		qv_numa_free(c, sizeof(*c), node);
		goto fail_map;
	}
	*ret_chan = c;
	*ret_memfd = fd;
	return 0;
fail_map:
	munmap(base, l->seg_bytes);
fail_fd:
	close(fd);
	return r;
}

void qv_chan_destroy(struct qv_chan *c)
{
	if (!c)
		return;
	munmap(c->base, c->bytes);
	qv_numa_free(c, sizeof(*c), c->node);
}
