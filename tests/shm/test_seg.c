/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_seg.c - qv_seg_layout() and qv_seg_check(): the layout quiverd builds
 * is the layout libquiver accepts, and every way a header can lie about it
 * is refused.
 */
#include <errno.h>
#include <stdio.h>

#include "qv_seg.h"

static int failures;

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

static void valid_layouts(void)
{
	static const uint32_t slots[] = { 1, 2, 3, 64, 100, 1024, QV_SEG_MAX_SLOTS };
	static const uint32_t sizes[] = { 1, 63, 64, 65, 4096, 65536 };

	for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
			struct qv_seg_layout l;
			int r = qv_seg_layout(slots[i], sizes[j], sizes[j] * 2 + 1, &l);
			if (r == -E2BIG)
				continue; /* 65536 slots of 64 KiB exceed the 4 GiB cap */
			CHECK(r == 0);
			if (r)
				continue;
			CHECK(qv_seg_check(&l, l.seg_bytes) == 0);
			CHECK(l.ring_entries >= l.nslots);
			CHECK(l.ring_entries < 2 * l.nslots || l.nslots == 1);
			CHECK(l.slot_in_bytes % 64 == 0 && l.slot_in_bytes >= sizes[j]);
			CHECK(l.slot_out_bytes % 64 == 0 && l.slot_out_bytes >= sizes[j] * 2 + 1);
			CHECK(l.seg_bytes % QV_SEG_PAGE == 0);
			/* The last slot's output ends inside the segment. */
			CHECK(qv_seg_slot_off(&l, l.nslots - 1) + l.slot_in_bytes + l.slot_out_bytes <=
			      l.seg_bytes);
			/* A smaller mapping than the header claims is refused. */
			CHECK(qv_seg_check(&l, l.seg_bytes - 1) == -EPROTO);
		}
	}
	struct qv_seg_layout l;
	CHECK(qv_seg_layout(0, 64, 64, &l) == -EINVAL);
	CHECK(qv_seg_layout(4, 0, 64, &l) == -EINVAL);
	CHECK(qv_seg_layout(4, 64, 0, &l) == -EINVAL);
	CHECK(qv_seg_layout(QV_SEG_MAX_SLOTS + 1, 64, 64, &l) == -E2BIG);
	CHECK(qv_seg_layout(4, QV_SEG_MAX_SLOT_BYTES + 1, 64, &l) == -E2BIG);
}

static void lying_headers(void)
{
	struct qv_seg_layout good, l;

	CHECK(qv_seg_layout(64, 4096, 1024, &good) == 0);

#define LIE(field, value)                                      \
	do {                                                   \
		l = good;                                      \
		l.field = (value);                             \
		CHECK(qv_seg_check(&l, good.seg_bytes) == -EPROTO); \
	} while (0)

	LIE(seg_bytes, good.seg_bytes + 4096);
	LIE(nslots, 0);
	LIE(nslots, good.ring_entries + 1);
	LIE(nslots, UINT32_MAX);
	LIE(ring_entries, 0);
	LIE(ring_entries, 96);
	LIE(ring_entries, 32);
	LIE(ring_entries, 1u << 31);
	LIE(slot_in_bytes, 0);
	LIE(slot_in_bytes, 4095);
	LIE(slot_in_bytes, UINT32_MAX - 63);
	LIE(slot_out_bytes, good.slot_out_bytes + 64 * 1024);
	LIE(sq_off, 0);
	LIE(sq_off, good.sq_off + 8);
	LIE(cq_off, good.sq_off);
	LIE(cq_off, good.cq_off - 64);
	LIE(slots_off, good.cq_off);
	LIE(slots_off, good.seg_bytes);
	LIE(slots_off, UINT64_MAX - 63);
	LIE(sq_off, UINT64_MAX - 63);
#undef LIE
	/* Regions may be further apart than needed, as long as they fit. */
	l = good;
	l.seg_bytes += 8192;
	l.slots_off += 4096;
	CHECK(qv_seg_check(&l, l.seg_bytes) == 0);
}

int main(void)
{
	valid_layouts();
	lying_headers();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
