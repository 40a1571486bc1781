/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_numa_replica.c - NUMA placement and per-node weight replication.
 *
 * 1. qv_numa_alloc(node 0): the kernel reports (get_mempolicy with
 *    MPOL_F_NODE|MPOL_F_ADDR, and move_pages with a NULL node list, which
 *    only queries) that every page is on node 0.
 * 2. qv_numa_plan on given topologies (copies per node, worker -> copy).
 * 3. qv_reg_load on fake workers with an injected node map: 2 workers on
 *    2 nodes get 2 model copies (distinct pointers, each worker's context
 *    from its node's copy); 2 workers on 1 node share 1 copy. Node 1 need
 *    not exist: binding to a missing node is a no-op, the plan is the same.
 *
 * Usage: test_dp_numa_replica MODEL_DIR   (a directory with model.onnx)
 */
#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "numa_mem.h"
#include "routes.h"
#include "worker.h"

static int failures;

#define CHECK(c)                                                                   \
	do {                                                                       \
		if (!(c)) {                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			failures++;                                                \
		}                                                                  \
	} while (0)

static void test_alloc_node0(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t npages = 16, bytes = npages * (size_t)pg;
	void *pages[16];
	int status[16];
	char *p;

	if (numa_available() < 0) {
		printf("numa: libnuma reports NUMA unavailable, placement check skipped\n");
		return;
	}
	p = qv_numa_alloc(bytes, 0);
	CHECK(p != NULL);
	if (!p)
		return;
	memset(p, 0xab, bytes);   /* fault every page in under the node's policy */
	for (size_t i = 0; i < npages; i++) {
		pages[i] = p + i * (size_t)pg;
		status[i] = -1;
		CHECK(qv_numa_node_of_addr(pages[i]) == 0);
	}
	CHECK(move_pages(0, npages, pages, NULL, status, 0) == 0);
	for (size_t i = 0; i < npages; i++)
		CHECK(status[i] == 0);
	qv_numa_free(p, bytes, 0);
}

static void test_plan(void)
{
	int nodes[QV_NUMA_MAX_COPIES];
	uint32_t copy[4];

	CHECK(qv_numa_plan((const int[]){ 0, 1 }, 2, nodes, QV_NUMA_MAX_COPIES, copy) == 2);
	CHECK(nodes[0] == 0 && nodes[1] == 1 && copy[0] == 0 && copy[1] == 1);
	CHECK(qv_numa_plan((const int[]){ 0, 0 }, 2, nodes, QV_NUMA_MAX_COPIES, copy) == 1);
	CHECK(nodes[0] == 0 && copy[0] == 0 && copy[1] == 0);
	CHECK(qv_numa_plan((const int[]){ 1, 0, 1, 3 }, 4, nodes, QV_NUMA_MAX_COPIES, copy) == 3);
	CHECK(nodes[0] == 1 && nodes[1] == 0 && nodes[2] == 3);
	CHECK(copy[0] == 0 && copy[1] == 1 && copy[2] == 0 && copy[3] == 2);
	CHECK(qv_numa_plan(NULL, 0, nodes, QV_NUMA_MAX_COPIES, copy) == 1 && nodes[0] == -1);
	CHECK(qv_numa_plan((const int[]){ 0, 1, 2 }, 3, nodes, 2, copy) == -E2BIG);
}

/* Loads dir's model as "m"/1 on fake workers on the given nodes. */
static void test_replicas(const char *dir, const int *node_of, uint32_t n, uint32_t want)
{
	struct qv_worker *w[2] = { NULL, NULL };
	struct qv_registry reg;
	char err[512] = "";
	int r;

	for (uint32_t i = 0; i < n; i++) {
		w[i] = calloc(1, sizeof(*w[i]));
		CHECK(w[i] != NULL);
		if (!w[i])
			goto out;
		w[i]->vs = calloc(QV_MAX_VSLOTS, sizeof(*w[i]->vs));
		w[i]->id = i;
		w[i]->node = node_of[i];
		CHECK(w[i]->vs != NULL);
		if (!w[i]->vs)
			goto out;
	}
	r = qv_reg_init(&reg, NULL, 8, 1000000000ull, w, n);
	CHECK(r == 0);
	if (r < 0)
		goto out;
	r = qv_reg_load(&reg, "m", 1, dir, NULL, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "load: %s\n", err);
	CHECK(r == 0);
	if (r == 0) {
		const struct qv_version *v = qv_route_version(qv_reg_find(&reg, "m"), 1);
		CHECK(v && v->nmodels == want && v->nctx == n);
		for (uint32_t a = 0; v && a < v->nmodels; a++) {
			CHECK(v->models[a] != NULL);
			for (uint32_t b = a + 1; b < v->nmodels; b++)
				CHECK(v->models[a] != v->models[b]);
		}
		CHECK(v && v->model == v->models[0]);
		printf("%u workers on nodes", n);
		for (uint32_t i = 0; i < n; i++)
			printf(" %d", node_of[i]);
		printf(": %u model copies\n", v ? v->nmodels : 0);
	}
	qv_reg_fini(&reg);
out:
	for (uint32_t i = 0; i < n; i++) {
		if (w[i])
			free(w[i]->vs);
		free(w[i]);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
		return 2;
	}
	if (access(argv[1], R_OK) != 0) {
		printf("SKIP: no model directory at %s\n", argv[1]);
		return 77;
	}
	test_alloc_node0();
	test_plan();
	test_replicas(argv[1], (const int[]){ 0, 1 }, 2, 2);
	test_replicas(argv[1], (const int[]){ 0, 0 }, 2, 1);
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
