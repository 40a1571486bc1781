/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Descriptor validation: each field at, just inside and just past its
 * bound, against a channel of 8 slots of 256 + 128 bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqe_check.h"

static int failures;

#define CHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

static struct qv_sqe good(void)
{
	struct qv_sqe d;

	memset(&d, 0, sizeof(d));
	d.slot = 7;
	d.handle = 12345; /* handles are checked by the worker, not here */
	d.rows = 1;
	d.in_bytes = 256;
	d.out_cap = 128;
	d.request_id = 42;
	return d;
}

int main(void)
{
	const struct qv_chan_limits l = { .nslots = 8, .slot_in_bytes = 256, .slot_out_bytes = 128 };
	struct qv_sqe d;

	d = good();
	CHECK(qv_sqe_valid(&d, &l));
	d.slot = 8;
	CHECK(!qv_sqe_valid(&d, &l));
	d.slot = UINT32_MAX;
	CHECK(!qv_sqe_valid(&d, &l));
	d = good();
	d.slot = 0;
	CHECK(qv_sqe_valid(&d, &l));

	d = good();
	d.rows = 0;
	CHECK(!qv_sqe_valid(&d, &l));
	d.rows = UINT32_MAX; /* max_batch is the worker's check */
	CHECK(qv_sqe_valid(&d, &l));

	d = good();
	d.in_bytes = 257;
	CHECK(!qv_sqe_valid(&d, &l));
	d.in_bytes = 0;
	CHECK(qv_sqe_valid(&d, &l));

	d = good();
	d.out_cap = 129;
	CHECK(!qv_sqe_valid(&d, &l));
	d.out_cap = UINT32_MAX;
	CHECK(!qv_sqe_valid(&d, &l));

	d = good();
	d.flags = 1;
	CHECK(!qv_sqe_valid(&d, &l));
	d.flags = 0x80000000u;
	CHECK(!qv_sqe_valid(&d, &l));

	/* A channel with no slots accepts nothing. */
	{
		const struct qv_chan_limits z = { 0, 256, 128 };
		d = good();
		d.slot = 0;
		CHECK(!qv_sqe_valid(&d, &z));
	}
	if (failures)
		return 1;
	printf("sqe_check: ok\n");
	return 0;
}
