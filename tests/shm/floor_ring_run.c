/* SPDX-License-Identifier: Apache-2.0 */
/*
 * floor_ring_run.c - runs qv_floor_ring() and prints its percentiles.
 *   floor_ring_run [iters [server_core client_core]]
 * As a test (few iterations) it checks the floor runs and every round trip
 * was timed; latencies are printed, never asserted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "floor_ring.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *v, uint32_t n, double p)
{
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);

	return v[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
	uint32_t iters = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 2000;
	int server = argc > 3 ? atoi(argv[2]) : 0;
	int client = argc > 3 ? atoi(argv[3]) : 1;
	uint64_t *lat;
	int r;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		printf("skip: the floor needs two cores\n");
		return 77;
	}
	if (iters == 0)
		return 2;
	lat = calloc(iters, sizeof(*lat));
	if (!lat)
		return 1;
	r = qv_floor_ring(iters, iters / 10 + 100, server, client, lat);
	if (r == -EINVAL) {
		printf("skip: cores %d and %d are not both usable here\n", server, client);
		free(lat);
		return 77;
	}
	if (r < 0) {
		fprintf(stderr, "qv_floor_ring: %s\n", strerror(-r));
		free(lat);
		return 1;
	}
	for (uint32_t i = 0; i < iters; i++) {
		if (lat[i] == 0) {
			fprintf(stderr, "round trip %u not timed\n", i);
			free(lat);
			return 1;
		}
	}
	qsort(lat, iters, sizeof(*lat), cmp_u64);
	printf("floor_ring cores %d<->%d, %u round trips: p50 %llu ns  p90 %llu ns  p99 %llu ns  "
	       "p99.9 %llu ns  max %llu ns\n",
	       server, client, iters, (unsigned long long)pct(lat, iters, 50),
	       (unsigned long long)pct(lat, iters, 90), (unsigned long long)pct(lat, iters, 99),
	       (unsigned long long)pct(lat, iters, 99.9), (unsigned long long)lat[iters - 1]);
	free(lat);
	return 0;
}
