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
#include <stdint.h>

/* Node of a CPU, or -1 when unknown / NUMA unavailable. */
int qv_numa_node_of_cpu(int cpu);

/* Zeroed, 64-byte aligned; node -1 = anywhere. NULL on failure. */
void *qv_numa_alloc(size_t bytes, int node);
void qv_numa_free(void *p, size_t bytes, int node);

/*
 * Weight replication. A version keeps one model copy per NUMA node that
 * has workers, never one shared across nodes. From the node of each worker
 * (-1 unknown), lists the distinct nodes in first-seen order into
 * ret_nodes[max] and, per worker, the index of its node's copy into
 * ret_copy[n]. Pure, so a test can feed it any topology. Returns the
 * number of copies (1 when n == 0), or -E2BIG above max nodes.
 */
#define QV_NUMA_MAX_COPIES 8u
int qv_numa_plan(const int *worker_node, uint32_t n, int *ret_nodes, uint32_t max,
		 uint32_t *ret_copy);

/*
 * Binds the calling thread's allocations to node (MPOL_BIND) until
 * qv_numa_unbind(), which restores local allocation. node -1 or NUMA
 * unavailable: no-op. Control thread only (load path).
 */
void qv_numa_bind(int node);
void qv_numa_unbind(int node);

/* Node the page holding p is on (touching it first), or -errno. */
int qv_numa_node_of_addr(void *p);

#endif /* QV_DP_NUMA_MEM_H */
