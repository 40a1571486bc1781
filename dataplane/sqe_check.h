/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sqe_check.h - validation of a submission descriptor against the sizes of
 * the channel it arrived on. The descriptor must already be a private copy
 * (copied once out of shared memory): validating the shared entry and then
 * reading it again would let the client change it in between.
 */
#ifndef QV_DP_SQE_CHECK_H
#define QV_DP_SQE_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "qv_shm.h"

/* The channel's own sizes, as the server laid them out (never re-read from the header). */
struct qv_chan_limits {
	uint32_t nslots;
	uint32_t slot_in_bytes;
	uint32_t slot_out_bytes;
};

/*
 * true if every field the server relies on is within the channel's bounds:
 * slot < nslots, 1 <= rows, in_bytes <= slot_in_bytes, out_cap <=
 * slot_out_bytes, flags == 0. Model-dependent checks (handle, rows <=
 * max_batch, exact byte counts) belong to qv_worker_serve().
 */
static inline bool qv_sqe_valid(const struct qv_sqe *d, const struct qv_chan_limits *l)
{
	return d->slot < l->nslots && d->rows >= 1 && d->in_bytes <= l->slot_in_bytes &&
	       d->out_cap <= l->slot_out_bytes && d->flags == 0;
}

#endif /* QV_DP_SQE_CHECK_H */
