/* SPDX-License-Identifier: Apache-2.0 */
#include "chan_layout.h"

#include <errno.h>

int qv_chan_layout_compute(const struct qv_hello *h, uint64_t max_seg_bytes,
			   struct qv_seg_layout *ret)
{
	struct qv_seg_layout l;
	uint32_t slots = h->slots ? h->slots : QV_CHAN_DEFAULT_SLOTS;
	uint32_t in = h->slot_in_bytes ? h->slot_in_bytes : QV_CHAN_DEFAULT_IN;
	uint32_t out = h->slot_out_bytes ? h->slot_out_bytes : QV_CHAN_DEFAULT_OUT;
	uint32_t n = 1;
	int r;

	if (h->abi_version != QV_ABI_VERSION)
		return -EPROTONOSUPPORT;
	if (slots > QV_CHAN_MAX_SLOTS)
		slots = QV_CHAN_MAX_SLOTS;
	/* Power of two: ring and slot indices then mask the same way. */
	while (n < slots)
		n <<= 1;
	r = qv_seg_layout(n, in, out, &l);
	if (r < 0)
		return r;
	if (l.seg_bytes > max_seg_bytes)
		return -E2BIG;
	*ret = l;
	return 0;
}
