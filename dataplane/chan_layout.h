/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chan_layout.h - how a client's HELLO becomes a segment layout. Pure
 * arithmetic, unit-tested: every size a client asks for is clamped or
 * rounded here, and nothing past this point trusts the HELLO. The layout
 * itself is shm/qv_seg.h's (one definition for both sides).
 */
#ifndef QV_DP_CHAN_LAYOUT_H
#define QV_DP_CHAN_LAYOUT_H

#include <stdint.h>

#include "qv_proto.h"
#include "qv_seg.h"

#define QV_CHAN_MAX_SLOTS 4096u
#define QV_CHAN_DEFAULT_SLOTS 64u
#define QV_CHAN_DEFAULT_IN (64u * 1024u)
#define QV_CHAN_DEFAULT_OUT (16u * 1024u)
#define QV_CHAN_MAX_SEG_BYTES (1ull << 30)

/*
 * slots: 0 -> default, rounded up to a power of two, clamped to
 * QV_CHAN_MAX_SLOTS. Slot sizes: 0 -> default, rounded up to 64, at most
 * QV_SEG_MAX_SLOT_BYTES (else -E2BIG). A segment above max_seg_bytes is
 * refused with -E2BIG: a smaller channel than asked would surprise the
 * client more than a clear refusal. ABI mismatch: -EPROTONOSUPPORT.
 */
int qv_chan_layout_compute(const struct qv_hello *h, uint64_t max_seg_bytes,
			   struct qv_seg_layout *ret);

#endif /* QV_DP_CHAN_LAYOUT_H */
