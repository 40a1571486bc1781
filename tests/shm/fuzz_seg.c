/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_seg.c - libFuzzer target for qv_seg_check, the check libquiver runs
 * on a segment header written by the other side: the input is a layout
 * (struct qv_seg_layout) followed by the mapped size. A layout the check
 * accepts must really fit - every ring and every slot inside the mapping,
 * in order, without overlap - recomputed here in 128-bit arithmetic so an
 * overflow in the check cannot hide.
 * Built with -Dfuzz=true (clang -fsanitize=fuzzer); otherwise linked with
 * tests/udp/fuzz_replay.c and run over corpus_seg/ as a unit test.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qv_seg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qv_seg_layout l;
	uint64_t mapped = 0;
	typedef unsigned __int128 u128;

	memset(&l, 0, sizeof(l));
	memcpy(&l, data, size < sizeof(l) ? size : sizeof(l));
	if (size > sizeof(l))
		memcpy(&mapped, data + sizeof(l),
		       size - sizeof(l) < sizeof(mapped) ? size - sizeof(l) : sizeof(mapped));
	if (qv_seg_check(&l, mapped) != 0)
		return 0;
	u128 sq_end = (u128)l.sq_off + qv_ring_bytes(l.ring_entries, sizeof(struct qv_sqe));
	u128 cq_end = (u128)l.cq_off + qv_ring_bytes(l.ring_entries, sizeof(struct qv_cqe));
	u128 slots_end = (u128)l.slots_off +
			 (u128)l.nslots * ((u128)l.slot_in_bytes + l.slot_out_bytes);
	if (l.seg_bytes > mapped || l.sq_off < sizeof(struct qv_seg_hdr) || sq_end > l.cq_off ||
	    cq_end > l.slots_off || slots_end > l.seg_bytes || l.ring_entries < l.nslots ||
	    (l.ring_entries & (l.ring_entries - 1)) != 0 || l.nslots == 0)
		abort();
	/* The last slot's output region ends inside the segment. */
	if ((u128)qv_seg_slot_off(&l, l.nslots - 1) + l.slot_in_bytes + l.slot_out_bytes > l.seg_bytes)
		abort();
	return 0;
}
