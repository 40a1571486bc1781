/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qv_seg.h - computing and validating the layout of a channel segment
 * (see qv_shm.h). Header-only so that quiverd (which builds segments) and
 * libquiver (which maps them) share one definition of "a valid layout"
 * without the data plane linking the client library.
 *
 * Layout: [hdr][sq ring][cq ring][slot 0 in|out][slot 1 in|out]...
 * Every region starts on a 64-byte boundary; the segment is rounded up to
 * a 4 KiB page so it can be mapped whole.
 */
#ifndef QV_SEG_H
#define QV_SEG_H

#include <errno.h>
#include <stdint.h>

#include "qv_ring.h"
#include "qv_shm.h"

/* Limits both sides enforce; a peer that exceeds them is refused. */
#define QV_SEG_MAX_SLOTS 65536u
#define QV_SEG_MAX_SLOT_BYTES (64u << 20)    /* per region (in or out) */
#define QV_SEG_MAX_RING 131072u              /* entries, power of two */
#define QV_SEG_MAX_BYTES (4ull << 30)
#define QV_SEG_PAGE 4096u

struct qv_seg_layout {
	uint64_t seg_bytes;
	uint32_t ring_entries;
	uint32_t nslots;
	uint32_t slot_in_bytes;
	uint32_t slot_out_bytes;
	uint64_t sq_off;
	uint64_t cq_off;
	uint64_t slots_off;
};

static inline uint64_t qv_seg_align(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/*
 * The layout for nslots slots of slot_in/slot_out bytes (rounded up to a
 * multiple of 64; 0 is refused). Both rings get the smallest power of two
 * >= nslots entries: a slot has at most one descriptor and one completion
 * outstanding, so neither ring can fill while a slot is free.
 * Returns 0 or -EINVAL / -E2BIG.
 */
static inline int qv_seg_layout(uint32_t nslots, uint32_t slot_in, uint32_t slot_out,
				struct qv_seg_layout *ret_layout)
{
	struct qv_seg_layout l;
	uint32_t ring = 1;

	if (nslots == 0 || slot_in == 0 || slot_out == 0)
		return -EINVAL;
	if (nslots > QV_SEG_MAX_SLOTS || slot_in > QV_SEG_MAX_SLOT_BYTES ||
	    slot_out > QV_SEG_MAX_SLOT_BYTES)
		return -E2BIG;
	while (ring < nslots)
		ring <<= 1;
	l.ring_entries = ring;
	l.nslots = nslots;
	l.slot_in_bytes = (uint32_t)qv_seg_align(slot_in, QV_CACHELINE);
	l.slot_out_bytes = (uint32_t)qv_seg_align(slot_out, QV_CACHELINE);
	l.sq_off = sizeof(struct qv_seg_hdr);
	l.cq_off = l.sq_off + qv_ring_bytes(ring, sizeof(struct qv_sqe));
	l.slots_off = l.cq_off + qv_ring_bytes(ring, sizeof(struct qv_cqe));
	l.seg_bytes = qv_seg_align(l.slots_off + (uint64_t)nslots *
				   ((uint64_t)l.slot_in_bytes + l.slot_out_bytes),
				   QV_SEG_PAGE);
	if (l.seg_bytes > QV_SEG_MAX_BYTES)
		return -E2BIG;
	*ret_layout = l;
	return 0;
}

/*
 * Checks a layout read from a segment header against the bytes actually
 * mapped: every region inside the mapping, in order, non-overlapping,
 * 64-byte aligned, rings a power of two and >= nslots. Pass a private copy
 * of the header fields (read them once), never the shared header itself.
 * Returns 0 or -EPROTO.
 */
static inline int qv_seg_check(const struct qv_seg_layout *l, uint64_t mapped_bytes)
{
	const uint64_t a = QV_CACHELINE - 1;
	uint64_t slots_end;

	if (l->seg_bytes > mapped_bytes || l->seg_bytes > QV_SEG_MAX_BYTES)
		return -EPROTO;
	if (l->nslots == 0 || l->nslots > QV_SEG_MAX_SLOTS)
		return -EPROTO;
	if (l->ring_entries == 0 || l->ring_entries > QV_SEG_MAX_RING ||
	    (l->ring_entries & (l->ring_entries - 1)) != 0 || l->ring_entries < l->nslots)
		return -EPROTO;
	if (l->slot_in_bytes == 0 || l->slot_out_bytes == 0 ||
	    l->slot_in_bytes > QV_SEG_MAX_SLOT_BYTES || l->slot_out_bytes > QV_SEG_MAX_SLOT_BYTES ||
	    (l->slot_in_bytes & a) != 0 || (l->slot_out_bytes & a) != 0)
		return -EPROTO;
	if ((l->sq_off & a) != 0 || (l->cq_off & a) != 0 || (l->slots_off & a) != 0)
		return -EPROTO;
	/* All terms are bounded above, so none of these sums can overflow. */
	if (l->sq_off < sizeof(struct qv_seg_hdr) || l->sq_off > l->seg_bytes)
		return -EPROTO;
	if (l->cq_off < l->sq_off + qv_ring_bytes(l->ring_entries, sizeof(struct qv_sqe)) ||
	    l->cq_off > l->seg_bytes)
		return -EPROTO;
	if (l->slots_off < l->cq_off + qv_ring_bytes(l->ring_entries, sizeof(struct qv_cqe)) ||
	    l->slots_off > l->seg_bytes)
		return -EPROTO;
	slots_end = l->slots_off +
		    (uint64_t)l->nslots * ((uint64_t)l->slot_in_bytes + l->slot_out_bytes);
	if (slots_end > l->seg_bytes)
		return -EPROTO;
	return 0;
}

/* Slot i's input region; its output region follows at + slot_in_bytes. */
static inline uint64_t qv_seg_slot_off(const struct qv_seg_layout *l, uint32_t i)
{
	return l->slots_off + (uint64_t)i * ((uint64_t)l->slot_in_bytes + l->slot_out_bytes);
}

/*
 * Writes a fresh header for layout l at the start of a zeroed segment, the
 * magic last with release (pairs with the client's acquire load of magic
 * in qv_connect()). Server side; the rings' indices start at zero.
 */
static inline void qv_seg_init_hdr(struct qv_seg_hdr *h, const struct qv_seg_layout *l,
				   uint32_t channel_id, uint32_t worker, uint64_t now_ns)
{
	h->abi_version = QV_ABI_VERSION;
	h->hdr_bytes = sizeof(*h);
	h->seg_bytes = l->seg_bytes;
	h->ring_entries = l->ring_entries;
	h->nslots = l->nslots;
	h->slot_in_bytes = l->slot_in_bytes;
	h->slot_out_bytes = l->slot_out_bytes;
	h->sq_off = l->sq_off;
	h->cq_off = l->cq_off;
	h->slots_off = l->slots_off;
	h->channel_id = channel_id;
	h->worker = worker;
	atomic_store_explicit(&h->server_heartbeat_ns, now_ns, memory_order_relaxed);
	atomic_store_explicit(&h->server_state, QV_SRV_RUNNING, memory_order_relaxed);
	atomic_store_explicit(&h->client_heartbeat_ns, 0, memory_order_relaxed);
	/* Release: every field above is visible to whoever acquires magic. */
	atomic_store_explicit(&h->magic, QV_SEG_MAGIC, memory_order_release);
}

/* A private copy of the layout fields of a mapped header (read once). */
static inline void qv_seg_read_layout(const struct qv_seg_hdr *h, struct qv_seg_layout *ret_layout)
{
	struct qv_seg_layout l;

	l.seg_bytes = h->seg_bytes;
	l.ring_entries = h->ring_entries;
	l.nslots = h->nslots;
	l.slot_in_bytes = h->slot_in_bytes;
	l.slot_out_bytes = h->slot_out_bytes;
	l.sq_off = h->sq_off;
	l.cq_off = h->cq_off;
	l.slots_off = h->slots_off;
	*ret_layout = l;
}

#endif /* QV_SEG_H */
