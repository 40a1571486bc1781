/* SPDX-License-Identifier: Apache-2.0 */
/*
 * numa_mem.h - NUMA-node-local allocation with a graceful fallback: when
 * libnuma reports NUMA unavailable (containers, single-node kernels without
 * NUMA support) the memory comes from aligned_alloc instead. Memory is
 * zeroed and 64-byte aligned either way.
 */
#ifndef QV_DP_NUMA_MEM_H
#define QV_DP_NUMA_MEM_H

#include <stddef.h>

/* Node of a CPU, or -1 when unknown / NUMA unavailable. */
int qv_numa_node_of_cpu(int cpu);

/* Zeroed, 64-byte aligned; node -1 = anywhere. NULL on failure. */
void *qv_numa_alloc(size_t bytes, int node);
void qv_numa_free(void *p, size_t bytes, int node);

#endif /* QV_DP_NUMA_MEM_H */
