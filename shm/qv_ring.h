/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qv_ring.h - single-producer single-consumer rings in shared memory.
 *
 * A ring is a struct qv_ring_ctl (tail and head on their own cache lines)
 * followed by `size` fixed-size entries (size a power of two). Indices are
 * free-running uint32_t; `tail - head` is the number of filled entries.
 *
 * Each side keeps its own index and a cached copy of the other side's
 * index in private memory (struct qv_ring_prod / qv_ring_cons), and only
 * touches the other side's cache line when its cached copy says the ring is
 * full (producer) or empty (consumer). In steady state a round trip costs
 * one cache-line transfer per index, not one per access.
 *
 * The other side may be hostile (a client can write anything into its own
 * channel): an index that moves backwards or leaves more than `size` entries
 * outstanding makes the ring "corrupt" and the calls return -EBADMSG; the
 * caller then retires the channel. Entries are copied out once by the
 * consumer and never re-read.
 */
#ifndef QV_RING_H
#define QV_RING_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "qv_shm.h"

struct qv_ring_prod {
	struct qv_ring_ctl *ctl;
	uint8_t *ents;
	uint32_t mask;
	uint32_t esize;
	uint32_t tail;        /* our index; the shared copy is ctl->tail */
	uint32_t cached_head; /* last head we loaded from the consumer */
};

struct qv_ring_cons {
	struct qv_ring_ctl *ctl;
	uint8_t *ents;
	uint32_t mask;
	uint32_t esize;
	uint32_t head;        /* our index; the shared copy is ctl->head */
	uint32_t cached_tail; /* last tail we loaded from the producer */
};

/* Bytes a ring of `size` entries of `esize` bytes takes, control included. */
static inline uint64_t qv_ring_bytes(uint32_t size, uint32_t esize)
{
	uint64_t b = sizeof(struct qv_ring_ctl) + (uint64_t)size * esize;
	return (b + QV_CACHELINE - 1) & ~(uint64_t)(QV_CACHELINE - 1);
}

static inline void qv_ring_prod_init(struct qv_ring_prod *p, void *base, uint32_t size,
				     uint32_t esize)
{
	p->ctl = (struct qv_ring_ctl *)base;
	p->ents = (uint8_t *)base + sizeof(struct qv_ring_ctl);
	p->mask = size - 1;
	p->esize = esize;
	/* Only we write tail; relaxed is enough to read our own last value. */
	p->tail = atomic_load_explicit(&p->ctl->tail, memory_order_relaxed);
	/* Pairs with the consumer's release store of head. */
	p->cached_head = atomic_load_explicit(&p->ctl->head, memory_order_acquire);
}

static inline void qv_ring_cons_init(struct qv_ring_cons *c, void *base, uint32_t size,
				     uint32_t esize)
{
	c->ctl = (struct qv_ring_ctl *)base;
	c->ents = (uint8_t *)base + sizeof(struct qv_ring_ctl);
	c->mask = size - 1;
	c->esize = esize;
	c->head = atomic_load_explicit(&c->ctl->head, memory_order_relaxed);
	/* Pairs with the producer's release store of tail. */
	c->cached_tail = atomic_load_explicit(&c->ctl->tail, memory_order_acquire);
}

/*
 * Free entries the producer may fill now (0 when full), or -EBADMSG when
 * the consumer's head is impossible. Refreshes the cached head only when
 * the cached value says the ring is full.
 */
static inline int qv_ring_prod_space(struct qv_ring_prod *p)
{
	uint32_t size = p->mask + 1;
	uint32_t used = p->tail - p->cached_head;
	if (used >= size) {
		/*
		 * Acquire pairs with the consumer's release store of head in
		 * qv_ring_cons_release(): once we see the new head, the
		 * consumer's reads of those entries are done and we may
		 * overwrite them.
		 */
		p->cached_head = atomic_load_explicit(&p->ctl->head, memory_order_acquire);
		used = p->tail - p->cached_head;
		if (used > size)
			return -EBADMSG;
	}
	return (int)(size - used);
}

/* Entry i (0-based) past the tail; valid for i < qv_ring_prod_space(). */
static inline void *qv_ring_prod_entry(const struct qv_ring_prod *p, uint32_t i)
{
	return p->ents + (size_t)((p->tail + i) & p->mask) * p->esize;
}

/* Publishes n filled entries to the consumer. */
static inline void qv_ring_prod_commit(struct qv_ring_prod *p, uint32_t n)
{
	p->tail += n;
	/*
	 * Release orders our writes of the entries (and of any slot data they
	 * describe) before the new tail; pairs with the consumer's acquire load
	 * of tail in qv_ring_cons_avail().
	 */
	atomic_store_explicit(&p->ctl->tail, p->tail, memory_order_release);
}

/*
 * Filled entries the consumer may read now (0 when empty), or -EBADMSG
 * when the producer's tail is impossible.
 */
static inline int qv_ring_cons_avail(struct qv_ring_cons *c)
{
	uint32_t size = c->mask + 1;
	uint32_t avail = c->cached_tail - c->head;
	if (avail == 0) {
		/*
		 * Acquire pairs with the producer's release store of tail in
		 * qv_ring_prod_commit(): entries (and slot data) written before
		 * that store are visible once we see the new tail.
		 */
		c->cached_tail = atomic_load_explicit(&c->ctl->tail, memory_order_acquire);
		avail = c->cached_tail - c->head;
	}
	if (avail > size)
		return -EBADMSG;
	return (int)avail;
}

static inline const void *qv_ring_cons_entry(const struct qv_ring_cons *c, uint32_t i)
{
	return c->ents + (size_t)((c->head + i) & c->mask) * c->esize;
}

/* Gives n consumed entries back to the producer. */
static inline void qv_ring_cons_release(struct qv_ring_cons *c, uint32_t n)
{
	c->head += n;
	/*
	 * Release orders our reads (copies) of the entries before the new head;
	 * pairs with the producer's acquire load of head in qv_ring_prod_space().
	 */
	atomic_store_explicit(&c->ctl->head, c->head, memory_order_release);
}

#endif /* QV_RING_H */
