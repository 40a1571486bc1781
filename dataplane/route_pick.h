/* SPDX-License-Identifier: Apache-2.0 */
/*
 * route_pick.h - the per-request routing decision, pure and inline so the
 * worker, the unit tests and the micro-benchmark run the same code.
 *
 * A route's flags say which of canary / shadow / fallback are configured;
 * a route with none has flags == 0 and the worker never calls in here.
 * Canary shares are compared in the 64-bit domain: a uniform 64-bit value
 * r picks the canary when r < ppm * 2^64 / 1e6. Sticky routing hashes the
 * request's routing key with splitmix64 (a bijective mixer with full
 * avalanche, so consecutive keys spread evenly); random routing draws from
 * the worker's own xorshift64* state (no shared state, no atomics).
 */
#ifndef QV_DP_ROUTE_PICK_H
#define QV_DP_ROUTE_PICK_H

#include <stdint.h>

#define QV_RT_CANARY       0x01u  /* canary version set with ppm > 0 */
#define QV_RT_STICKY       0x02u  /* canary chosen by routing key */
#define QV_RT_SHADOW       0x04u  /* shadow version set with ppm > 0 */
#define QV_RT_FALLBACK     0x08u  /* fallback version set */
#define QV_RT_FB_ERROR     0x10u
#define QV_RT_FB_DEADLINE  0x20u
#define QV_RT_FB_NONFINITE 0x40u
#define QV_RT_FB_MANUAL    0x80u

enum qv_pick {
	QV_PICK_PRIMARY = 0,
	QV_PICK_CANARY = 1,
	QV_PICK_FALLBACK = 2,
};

static inline uint64_t qv_splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* xorshift64*: state must be non-zero (seed with qv_splitmix64 of anything). */
static inline uint64_t qv_xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* ppm (0..1e6) -> threshold in [0, 2^64): r < threshold with probability ppm/1e6. */
static inline uint64_t qv_ppm_threshold(uint32_t ppm)
{
	if (ppm >= 1000000u)
		return UINT64_MAX;
	return (uint64_t)(((unsigned __int128)ppm << 64) / 1000000u);
}

/* Which version serves: manual fallback first, then the canary share. */
static inline enum qv_pick qv_route_pick(uint32_t flags, uint64_t canary_thr, uint64_t key,
					 uint64_t *rng)
{
	uint64_t r;

	if (flags & QV_RT_FB_MANUAL)
		return QV_PICK_FALLBACK;
	if (!(flags & QV_RT_CANARY))
		return QV_PICK_PRIMARY;
	r = (flags & QV_RT_STICKY) ? qv_splitmix64(key) : qv_xorshift64(rng);
	return r < canary_thr ? QV_PICK_CANARY : QV_PICK_PRIMARY;
}

#endif /* QV_DP_ROUTE_PICK_H */
