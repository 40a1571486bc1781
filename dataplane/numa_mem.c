/* SPDX-License-Identifier: Apache-2.0 */
#include "numa_mem.h"

#include <numa.h>
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
