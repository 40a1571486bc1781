/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_clients.c - four clients at once, each a thread with its own
 * qv_client (its own channel), mixing trade-mlp and ctr-mlp requests of
 * 1..8 rows: every output equals the reference, so channels and batches
 * formed across channels never mix requests up.
 *
 * Usage: test_clients QUIVERD REPO [CLIENT QUIVERCTL]
 */
#include <pthread.h>
#include <stdio.h>

#include "check.h"

#define NCLIENTS 4
#define ROUNDS 400

struct arg {
	const char *sock, *repo;
	int id;
	int ok;
};

static void *client(void *p)
{
	struct arg *a = p;
	char name[32], who[32];
	struct qvt_model m[2];

	snprintf(name, sizeof(name), "e2e-client-%d", a->id);
	snprintf(who, sizeof(who), "client %d", a->id);
	qv_client *c = qvt_connect(a->sock, name, 8);
	qvt_model_open(c, a->repo, "trade-mlp", &m[0]);
	qvt_model_open(c, a->repo, "ctr-mlp", &m[1]);
	for (int i = 0; i < ROUNDS; i++) {
		const struct qvt_model *mm = &m[(i + a->id) & 1];
		uint32_t rows = 1 + (uint32_t)(i * 3 + a->id) % 8;
		uint32_t row0 = (uint32_t)(i * 7 + a->id * 13) % (mm->ref.rows - rows + 1);
		if (qvt_infer_check(c, mm, row0, rows, who) == 0)
			a->ok++;
	}
	qv_close(c);
	qvt_ref_free(&m[0].ref);
	qvt_ref_free(&m[1].ref);
	return NULL;
}

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	pthread_t th[NCLIENTS];
	struct arg args[NCLIENTS];

	if (argc < 3) {
		fprintf(stderr, "usage: %s QUIVERD REPO\n", argv[0]);
		return 2;
	}
	if (qvt_daemon_start(&d, argv[1], argv[2], NULL) < 0)
		qvt_die("quiverd did not start");
	for (int i = 0; i < NCLIENTS; i++) {
		args[i] = (struct arg){ .sock = d.sock, .repo = argv[2], .id = i };
		pthread_create(&th[i], NULL, client, &args[i]);
	}
	for (int i = 0; i < NCLIENTS; i++) {
		pthread_join(th[i], NULL);
		fprintf(stderr, "client %d: %d/%d correct\n", i, args[i].ok, ROUNDS);
		if (args[i].ok != ROUNDS)
			qvt_fail("client %d: %d of %d requests correct", i, args[i].ok, ROUNDS);
	}
	return qvt_finish(&d);
}
