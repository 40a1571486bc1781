/* SPDX-License-Identifier: Apache-2.0 */
#include "numa_mem.h"

#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <stdlib.h>
#include <string.h>

static int numa_ok(void)
{
	static int ok = -2;

	/* Control thread only (workers allocate nothing after start). */
	if (ok == -2)
		ok = numa_available() >= 0;
	return ok;
}

int qv_numa_node_of_cpu(int cpu)
{
	if (!numa_ok())
		return -1;
	return numa_node_of_cpu(cpu);
}

void *qv_numa_alloc(size_t bytes, int node)
{
	void *p;

	if (node >= 0 && numa_ok()) {
		/* Page-aligned, zero-filled on first touch, bound to the node. */
		return numa_alloc_onnode(bytes, node);
	}
	p = aligned_alloc(64, (bytes + 63) / 64 * 64);
	if (p)
		memset(p, 0, bytes);
	return p;
}

void qv_numa_free(void *p, size_t bytes, int node)
{
	if (!p)
		return;
	if (node >= 0 && numa_ok())
		numa_free(p, bytes);
	else
		free(p);
}

int qv_numa_plan(const int *worker_node, uint32_t n, int *ret_nodes, uint32_t max,
		 uint32_t *ret_copy)
{
	uint32_t ncopies = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t k = 0;
		while (k < ncopies && ret_nodes[k] != worker_node[i])
			k++;
		if (k == ncopies) {
			if (ncopies == max)
				return -E2BIG;
			ret_nodes[ncopies++] = worker_node[i];
		}
		ret_copy[i] = k;
	}
	if (ncopies == 0) {
		if (max == 0)
			return -E2BIG;
		ret_nodes[ncopies++] = -1;
	}
	return (int)ncopies;
}

void qv_numa_bind(int node)
{
	struct bitmask *bm;

	/* A node this machine lacks (a simulated topology) binds nothing. */
	if (node < 0 || !numa_ok() || node > numa_max_node())
		return;
	bm = numa_allocate_nodemask();
	if (!bm)
		return;
	numa_bitmask_setbit(bm, (unsigned int)node);
	numa_set_membind(bm);
	numa_bitmask_free(bm);
}

void qv_numa_unbind(int node)
{
	if (node < 0 || !numa_ok() || node > numa_max_node())
		return;
	numa_set_localalloc();
}

int qv_numa_node_of_addr(void *p)
{
	int node = -1;

	/* The page must exist to have a node; a read alone could map the shared zero page. */
	volatile char *c = p;
	*c = *c;
	if (get_mempolicy(&node, NULL, 0, p, MPOL_F_NODE | MPOL_F_ADDR) < 0)
		return -errno;
	return node;
}
