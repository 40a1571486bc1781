/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HELLO -> channel layout: defaults, clamping, rounding, the segment cap,
 * and that every layout produced passes the client's own check
 * (qv_seg_check), i.e. both sides agree on what a valid segment is.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "chan_layout.h"

static int failures;

#define CHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

static struct qv_hello hello(uint32_t slots, uint32_t in, uint32_t out)
{
	struct qv_hello h;

	memset(&h, 0, sizeof(h));
	h.abi_version = QV_ABI_VERSION;
	h.slots = slots;
	h.slot_in_bytes = in;
	h.slot_out_bytes = out;
	return h;
}

static void check_consistent(const struct qv_seg_layout *l)
{
	uint64_t end = l->slots_off + (uint64_t)l->nslots * (l->slot_in_bytes + l->slot_out_bytes);

	CHECK(qv_seg_check(l, l->seg_bytes) == 0);
	CHECK((l->nslots & (l->nslots - 1)) == 0);
	CHECK(l->ring_entries == l->nslots);
	CHECK(l->slot_in_bytes % 64 == 0 && l->slot_out_bytes % 64 == 0);
	CHECK(l->sq_off % 64 == 0 && l->cq_off % 64 == 0 && l->slots_off % 64 == 0);
	CHECK(l->seg_bytes % 4096 == 0 && end <= l->seg_bytes && end + 4096 > l->seg_bytes);
}

int main(void)
{
	struct qv_seg_layout l;
	struct qv_hello h;

	/* Defaults. */
	h = hello(0, 0, 0);
	CHECK(qv_chan_layout_compute(&h, QV_CHAN_MAX_SEG_BYTES, &l) == 0);
	CHECK(l.nslots == QV_CHAN_DEFAULT_SLOTS);
	CHECK(l.slot_in_bytes == QV_CHAN_DEFAULT_IN && l.slot_out_bytes == QV_CHAN_DEFAULT_OUT);
	check_consistent(&l);

	/* Rounding: slots up to a power of two, sizes up to 64. */
	h = hello(5, 1, 65);
	CHECK(qv_chan_layout_compute(&h, QV_CHAN_MAX_SEG_BYTES, &l) == 0);
	CHECK(l.nslots == 8 && l.slot_in_bytes == 64 && l.slot_out_bytes == 128);
	CHECK(l.sq_off == sizeof(struct qv_seg_hdr));
	CHECK(l.cq_off == l.sq_off + 128 + 8 * 64);
	CHECK(l.slots_off == l.cq_off + 128 + 8 * 32);
	check_consistent(&l);

	h = hello(1, 64, 64);
	CHECK(qv_chan_layout_compute(&h, QV_CHAN_MAX_SEG_BYTES, &l) == 0);
	CHECK(l.nslots == 1);
	check_consistent(&l);

	/* Clamped to 4096 slots, never refused for asking too many. */
	h = hello(UINT32_MAX, 64, 64);
	CHECK(qv_chan_layout_compute(&h, QV_CHAN_MAX_SEG_BYTES, &l) == 0);
	CHECK(l.nslots == QV_CHAN_MAX_SLOTS);
	check_consistent(&l);
	h = hello(4097, 64, 64);
	CHECK(qv_chan_layout_compute(&h, QV_CHAN_MAX_SEG_BYTES, &l) == 0 && l.nslots == 4096);

	/* Over the segment cap: refused, never silently shrunk. */
	h = hello(4096, 256 * 1024, 64);
	CHECK(qv_chan_layout_compute(&h, QV_CHAN_MAX_SEG_BYTES, &l) == -E2BIG);
	h = hello(4096, 128 * 1024, 64); /* 4096 * (128K+64) > 512 MiB, < 1 GiB */
	CHECK(qv_chan_layout_compute(&h, QV_CHAN_MAX_SEG_BYTES, &l) == 0);
	check_consistent(&l);
	CHECK(qv_chan_layout_compute(&h, 1u << 20, &l) == -E2BIG);

	/* Slot sizes beyond what either side accepts. */
	h = hello(1, UINT32_MAX, 64);
	CHECK(qv_chan_layout_compute(&h, QV_CHAN_MAX_SEG_BYTES, &l) == -E2BIG);
	h = hello(1, 64, QV_SEG_MAX_SLOT_BYTES + 1);
	CHECK(qv_chan_layout_compute(&h, QV_CHAN_MAX_SEG_BYTES, &l) < 0);

	/* Another ABI. */
	h = hello(1, 64, 64);
	h.abi_version = QV_ABI_VERSION + 1;
	CHECK(qv_chan_layout_compute(&h, QV_CHAN_MAX_SEG_BYTES, &l) == -EPROTONOSUPPORT);

	if (failures)
		return 1;
	printf("chan_layout: ok\n");
	return 0;
}
