/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The loader thread's queue (loader.h), with every build held at the test
 * gate (QUIVERD_TEST_LOAD_GATE naming a file that never appears), so no
 * model is read and the queue's limits are seen without timing:
 *  - QV_LOADER_MAX_JOBS loads are taken; one more is refused -EBUSY
 *    naming the limit; a second load of a queued model/version is refused
 *    -EBUSY "already in progress";
 *  - stopping cancels every one of them (the held build and the queued
 *    ones), each coming back once with -ECANCELED and its message;
 *  - a load submitted after the stop is refused -ESHUTDOWN.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader.h"
#include "routes.h"

static int failures;

#define CHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

static struct qv_load_job *job(const char *name, uint32_t version)
{
	struct qv_load_job *j = calloc(1, sizeof(*j));

	if (!j) {
		perror("calloc");
		exit(1);
	}
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->version = version;
	j->precision = -1;
	return j;
}

int main(void)
{
	static struct qv_registry reg;   /* never reached: every build waits at the gate */
	char gate[] = "/tmp/qv-loader-gate-XXXXXX", err[256], name[32];
	struct qv_loader *l = NULL;
	struct qv_load_job *j, *seen[QV_LOADER_MAX_JOBS] = { 0 };
	uint32_t back = 0;
	int fd = mkstemp(gate);

	if (fd < 0) {
		perror("mkstemp");
		return 1;
	}
	unlink(gate);   /* the gate file never exists */
	setenv("QUIVERD_TEST_LOAD_GATE", gate, 1);
	CHECK(qv_loader_start(&reg, "", NULL, &l) == 0);
	if (!l)
		return 1;

	for (uint32_t i = 0; i < QV_LOADER_MAX_JOBS; i++) {
		snprintf(name, sizeof(name), "m%u", i);
		j = job(name, 1);
		seen[i] = j;
		CHECK(qv_loader_submit(l, j, err, sizeof(err)) == 0);
	}
	j = job("m3", 1);
	err[0] = '\0';
	CHECK(qv_loader_submit(l, j, err, sizeof(err)) == -EBUSY);
	CHECK(strstr(err, "load m3/1 already in progress") != NULL);
	free(j);
	j = job("extra", 1);
	err[0] = '\0';
	CHECK(qv_loader_submit(l, j, err, sizeof(err)) == -EBUSY);
	CHECK(strstr(err, "16 loads already in progress") != NULL);
	free(j);
	/* Held at the gate: nothing has finished. */
	CHECK(qv_loader_next_done(l) == NULL);

	qv_loader_stop(l);
	while ((j = qv_loader_next_done(l))) {
		uint32_t k;

		for (k = 0; k < QV_LOADER_MAX_JOBS && seen[k] != j; k++)
			;
		CHECK(k < QV_LOADER_MAX_JOBS);
		if (k < QV_LOADER_MAX_JOBS)
			seen[k] = NULL;   /* each comes back once */
		CHECK(j->rc == -ECANCELED && j->v == NULL);
		CHECK(strstr(j->err, "cancelled: quiverd is draining") != NULL);
		free(j);
		back++;
	}
	CHECK(back == QV_LOADER_MAX_JOBS);

	j = job("late", 1);
	err[0] = '\0';
	CHECK(qv_loader_submit(l, j, err, sizeof(err)) == -ESHUTDOWN);
	CHECK(strstr(err, "quiverd is draining") != NULL);
	free(j);
	qv_loader_free(l);
	close(fd);

	if (failures) {
		fprintf(stderr, "loader: %d check(s) failed\n", failures);
		return 1;
	}
	printf("loader: %u loads taken, the limit and a duplicate refused, all cancelled once, "
	       "a late one refused\n", back);
	return 0;
}
