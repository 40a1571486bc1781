/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_chan_limit.c - one uid cannot take every channel: with
 * --max-channels-per-uid 3, three clients of this uid connect, the fourth
 * is refused with -EBUSY (and the daemon's message names the limit in its
 * log), the three keep being served, and once one closes a new client
 * gets its channel.
 *
 * Usage: test_chan_limit QUIVERD REPO CLIENT QUIVERCTL
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

int main(int argc, char **argv)
{
	struct qvt_daemon d;
	qv_client *c[4] = { 0 };
	struct qvt_model m;

	if (argc < 5) {
		fprintf(stderr, "usage: %s QUIVERD REPO CLIENT QUIVERCTL\n", argv[0]);
		return 2;
	}
	const char *extra[] = { "--max-channels-per-uid", "3", NULL };
	if (qvt_daemon_start(&d, argv[1], argv[2], extra) < 0)
		qvt_die("quiverd did not start");
	for (int i = 0; i < 3; i++)
		c[i] = qvt_connect(d.sock, "e2e-limit", 4);
	struct qv_connect_opts o = { .client_name = "e2e-limit-4th", .slots = 4 };
	int r = qv_connect(d.sock, &o, &c[3]);
	if (r != -EBUSY)
		qvt_fail("4th channel of one uid: qv_connect %d, want -EBUSY", r);
	qvt_model_open(c[0], argv[2], "trade-mlp", &m);
	for (int i = 0; i < 3; i++) {
		struct qvt_model mi;
		qvt_model_open(c[i], argv[2], "trade-mlp", &mi);
		qvt_infer_check(c[i], &mi, 0, 2, "a client within the limit");
		qvt_ref_free(&mi.ref);
	}
	qv_close(c[1]);
	/* The daemon sees the hang-up on its next poll turn. */
	uint64_t until = qvt_now_ns() + 5000000000ull;
	do {
		r = qv_connect(d.sock, &o, &c[3]);
		if (r == -EBUSY)
			qvt_sleep_ms(10);
	} while (r == -EBUSY && qvt_now_ns() < until);
	if (r != 0)
		qvt_fail("a channel after one closed: qv_connect %d, want 0", r);
	else {
		struct qvt_model m3;
		qvt_model_open(c[3], argv[2], "trade-mlp", &m3);
		qvt_infer_check(c[3], &m3, 0, 2, "the client after one closed");
		qvt_ref_free(&m3.ref);
	}
	qvt_ref_free(&m.ref);
	qv_close(c[0]);
	qv_close(c[2]);
	if (c[3] && r == 0)
		qv_close(c[3]);
	FILE *f = fopen(d.log, "r");
	char line[512];
	int named = 0;
	while (f && fgets(line, sizeof(line), f))
		named |= strstr(line, "--max-channels-per-uid 3") != NULL;
	if (f)
		fclose(f);
	if (!named)
		qvt_fail("the daemon's log does not name the limit");
	return qvt_finish(&d);
}
