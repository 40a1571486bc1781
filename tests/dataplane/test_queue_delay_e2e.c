/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_queue_delay_e2e.c - max_queue_delay_us through a real quiverd with
 * one worker. The test writes its own repository: "trade-wait" (the
 * generated trade-mlp, config.json {"max_queue_delay_us": 1000000,
 * "preferred_batch": 8}) and "trade-mlp" (the same model, no config: never
 * waits). Every output is checked against the torch reference.
 *
 *  1. A lone trade-wait request is held: it is not answered before the
 *     delay (a lower bound on time, safe on a loaded machine).
 *  2. On the same channel a trade-mlp request sent after a held trade-wait
 *     one is answered first: waiting is per model, not per channel.
 *  3. Seven trade-wait requests stay held (none answered 100 ms later);
 *     the eighth makes preferred_batch rows and all eight run as one batch
 *     (the version's runs of 8..15 rows grow by one in quiverctl stats).
 *  4. A held request whose own deadline comes before the delay is released
 *     for it: answered well before the delay.
 *  5. A client SIGKILLed while three of its requests are held: its channel
 *     is retired (the held requests go with it, nothing is written into
 *     its unmapped slots), the daemon lives on and the next batch of eight
 *     is answered correctly.
 *
 * Usage: test_queue_delay_e2e QUIVERD REPO QUIVERCTL
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"

#define DELAY_MS 1000.0

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms)
{
	struct timespec d = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&d, NULL);
}

static void mkdir_or_die(const char *p)
{
	if (mkdir(p, 0755) != 0 && errno != EEXIST)
		qvt_die("mkdir %s: %s", p, strerror(errno));
}

/* REPO/<name>/1/{model.onnx,x.npy,y.npy} -> the generated trade-mlp's files. */
static void link_model(const char *repo, const char *name, const char *src)
{
	const char *files[] = { "model.onnx", "x.npy", "y.npy" };
	char d[4096], from[4200], to[4200];

	snprintf(d, sizeof(d), "%s/%s", repo, name);
	mkdir_or_die(d);
	snprintf(d, sizeof(d), "%s/%s/1", repo, name);
	mkdir_or_die(d);
	for (int i = 0; i < 3; i++) {
		snprintf(from, sizeof(from), "%s/%s", src, files[i]);
		snprintf(to, sizeof(to), "%s/%s", d, files[i]);
		if (symlink(from, to) != 0)
			qvt_die("symlink %s: %s", to, strerror(errno));
	}
}

/* trade-wait's model runs of 8..15 rows, from quiverctl stats --json. */
static double runs_of_8(const char *quiverctl, const char *sock)
{
	cJSON *j = qvt_ctl_json(quiverctl, sock, "stats", "trade-wait", NULL);
	const cJSON *r, *v;
	double n = -1;

	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "routes")) {
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(r, "versions")) {
			const cJSON *h = cJSON_GetObjectItemCaseSensitive(v, "runs_by_rows");
			const cJSON *e = cJSON_GetObjectItemCaseSensitive(h, "8");

			if (cJSON_IsNumber(e))
				n = e->valuedouble;
		}
	}
	if (n < 0) {
		char *text = cJSON_PrintUnformatted(j);

		qvt_die("stats: no runs_by_rows[\"8\"] for trade-wait:\n%.2000s", text ? text : "");
	}
	cJSON_Delete(j);
	return n;
}

/* models --json: name's max_queue_delay_us and preferred_batch are as configured. */
static void check_config(const char *quiverctl, const char *sock, const char *name,
			 double delay_us, double preferred)
{
	cJSON *j = qvt_ctl_json(quiverctl, sock, "models", NULL);
	const cJSON *m;
	int seen = 0;

	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(j, "models")) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "name");
		const cJSON *dl = cJSON_GetObjectItemCaseSensitive(m, "max_queue_delay_us");
		const cJSON *pb = cJSON_GetObjectItemCaseSensitive(m, "preferred_batch");

		if (!cJSON_IsString(n) || strcmp(n->valuestring, name) != 0)
			continue;
		seen = 1;
		if (!cJSON_IsNumber(dl) || dl->valuedouble != delay_us || !cJSON_IsNumber(pb) ||
		    pb->valuedouble != preferred)
			qvt_fail("models: %s should show max_queue_delay_us %.0f, preferred_batch %.0f",
				 name, delay_us, preferred);
	}
	cJSON_Delete(j);
	if (!seen)
		qvt_fail("models: no %s", name);
}

/* Open channels, from quiverctl status --json. */
static double open_channels(const char *quiverctl, const char *sock)
{
	cJSON *j = qvt_ctl_json(quiverctl, sock, "status", NULL);
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "channels");
	double v = cJSON_IsNumber(n) ? n->valuedouble : -1;

	cJSON_Delete(j);
	if (v < 0)
		qvt_die("status --json: no channels count");
	return v;
}

/* A client that submits three trade-wait requests, says so, and waits to be killed. */
static void victim(const char *sock, const struct qvt_model *m, int fd)
{
	static float out[3][8];
	qv_client *k = qvt_connect(sock, "qdelay-victim", 4);
	struct qv_model_desc desc;

	if (qv_model_lookup(k, "trade-wait", &desc) != 0 || desc.handle != m->desc.handle)
		_exit(5);

	for (uint32_t i = 0; i < 3; i++) {
		struct qv_request rq = {
			.handle = m->desc.handle,
			.rows = 1,
			.input = m->ref.x.data + (size_t)i * m->ref.in_dim,
			.request_id = i,
		};
		int e = qv_submit(k, &rq, out[i], 8);
		if (e != 0) {
			fprintf(stderr, "victim: qv_submit: %s\n", qv_strerror(e));
			_exit(3);
		}
	}
	if (write(fd, "x", 1) != 1)
		_exit(4);
	for (;;)
		pause();
}

/* A request in flight and, once polled, its answer and when it came. */
struct pend {
	float out[8];
	int done;
	uint32_t status;
	double at_ms;
};

/* Reaps what is there, recording each answer under its request id. */
static void poll_some(qv_client *c, struct pend *p, uint32_t np)
{
	struct qv_result res[16];
	int n = qv_poll(c, res, 16);

	if (n < 0)
		qvt_die("qv_poll: %s", qv_strerror(n));
	for (int k = 0; k < n; k++) {
		if (res[k].request_id >= np || p[res[k].request_id].done)
			qvt_die("unexpected completion %llu", (unsigned long long)res[k].request_id);
		p[res[k].request_id].done = 1;
		p[res[k].request_id].status = res[k].status;
		p[res[k].request_id].at_ms = now_ms();
	}
}

static void submit(qv_client *c, const struct qvt_model *m, uint32_t row, uint64_t id,
		   uint64_t deadline_ns, struct pend *p)
{
	struct qv_request rq = {
		.handle = m->desc.handle,
		.rows = 1,
		.input = m->ref.x.data + (size_t)row * m->ref.in_dim,
		.deadline_ns = deadline_ns,
		.request_id = id,
	};
	int e = qv_submit(c, &rq, p->out, 8);

	if (e != 0)
		qvt_die("qv_submit: %s", qv_strerror(e));
}

static void check_row(const struct qvt_model *m, const struct pend *p, uint32_t row,
		      const char *what)
{
	if (p->status != QV_OK) {
		qvt_fail("%s: status %u", what, p->status);
		return;
	}
	if (qvt_compare(p->out, m->ref.y.data + (size_t)row * m->ref.out_dim, m->ref.out_dim,
			QVT_RTOL, QVT_ATOL, what) != 0)
		qvt_fail("%s: output differs from the torch reference", what);
}

int main(int argc, char **argv)
{
	const char *extra[] = { "--cores", "1", NULL };
	char repo[] = "/tmp/qv-qdelay-XXXXXX", src[4096], path[4200];
	struct qvt_model wait, plain;
	struct pend p[16];
	struct qvt_daemon d;
	double t0, r8;
	qv_client *c;
	FILE *f;

	if (argc < 4) {
		fprintf(stderr, "usage: %s QUIVERD REPO QUIVERCTL\n", argv[0]);
		return 2;
	}
	if (!mkdtemp(repo))
		qvt_die("mkdtemp: %s", strerror(errno));
	snprintf(src, sizeof(src), "%s/trade-mlp/2", argv[2]);
	link_model(repo, "trade-wait", src);
	link_model(repo, "trade-mlp", src);
	snprintf(path, sizeof(path), "%s/trade-wait/config.json", repo);
	f = fopen(path, "w");
	if (!f)
		qvt_die("%s: %s", path, strerror(errno));
	fprintf(f, "{\"max_queue_delay_us\": %.0f, \"preferred_batch\": 8}\n", DELAY_MS * 1000);
	fclose(f);
	if (qvt_daemon_start(&d, argv[1], repo, extra) < 0)
		qvt_die("quiverd did not start");
	check_config(argv[3], d.sock, "trade-wait", DELAY_MS * 1000, 8);
	check_config(argv[3], d.sock, "trade-mlp", 0, 256);
	c = qvt_connect(d.sock, "qdelay", 16);
	qvt_model_open(c, repo, "trade-wait", &wait);
	qvt_model_open(c, repo, "trade-mlp", &plain);
	if (wait.ref.out_dim > 8 || wait.ref.rows < 16)
		qvt_die("trade-mlp: out_dim %u, %u reference rows do not fit the test",
			wait.ref.out_dim, wait.ref.rows);

	/* 1. A lone request waits for the delay. */
	memset(p, 0, sizeof(p));
	t0 = now_ms();
	submit(c, &wait, 3, 0, 0, &p[0]);
	while (!p[0].done)
		poll_some(c, p, 1);
	fprintf(stderr, "1. lone request held %.1f ms (delay %.0f ms)\n", p[0].at_ms - t0,
		DELAY_MS);
	if (p[0].at_ms - t0 < 0.9 * DELAY_MS)
		qvt_fail("1. a lone trade-wait request was answered after %.1f ms, before the delay",
			 p[0].at_ms - t0);
	check_row(&wait, &p[0], 3, "1. lone request");

	/* 2. A model that does not wait is not held up by one that does. */
	memset(p, 0, sizeof(p));
	t0 = now_ms();
	submit(c, &wait, 4, 0, 0, &p[0]);
	submit(c, &plain, 5, 1, 0, &p[1]);
	while (!p[0].done || !p[1].done)
		poll_some(c, p, 2);
	fprintf(stderr, "2. trade-mlp answered after %.1f ms, trade-wait after %.1f ms\n",
		p[1].at_ms - t0, p[0].at_ms - t0);
	if (!(p[1].at_ms < p[0].at_ms))
		qvt_fail("2. trade-mlp (no delay) was answered after the held trade-wait request");
	check_row(&wait, &p[0], 4, "2. trade-wait");
	check_row(&plain, &p[1], 5, "2. trade-mlp");

	/* 3. Seven held; the eighth makes preferred_batch and all run as one batch. */
	memset(p, 0, sizeof(p));
	r8 = runs_of_8(argv[3], d.sock);
	t0 = now_ms();
	for (uint32_t i = 0; i < 7; i++)
		submit(c, &wait, i, i, 0, &p[i]);
	sleep_ms(100);
	poll_some(c, p, 8);
	for (uint32_t i = 0; i < 7; i++)
		if (p[i].done)
			qvt_fail("3. request %u of 7 was answered before the batch filled", i);
	submit(c, &wait, 7, 7, 0, &p[7]);
	for (uint32_t left = 8; left;) {
		poll_some(c, p, 8);
		left = 0;
		for (uint32_t i = 0; i < 8; i++)
			left += !p[i].done;
	}
	fprintf(stderr, "3. eight requests answered %.1f ms after the first\n", now_ms() - t0);
	for (uint32_t i = 0; i < 8; i++) {
		char what[32];
		snprintf(what, sizeof(what), "3. request %u", i);
		check_row(&wait, &p[i], i, what);
	}
	if (runs_of_8(argv[3], d.sock) != r8 + 1)
		qvt_fail("3. the eight requests did not run as one batch of 8 rows");

	/* 4. A deadline before the delay releases the request. */
	memset(p, 0, sizeof(p));
	t0 = now_ms();
	{
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		submit(c, &wait, 9, 0,
		       (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + 150000000ull,
		       &p[0]);
	}
	while (!p[0].done)
		poll_some(c, p, 1);
	fprintf(stderr, "4. request with a 150 ms deadline answered after %.1f ms, status %u\n",
		p[0].at_ms - t0, p[0].status);
	if (p[0].at_ms - t0 >= 0.9 * DELAY_MS)
		qvt_fail("4. a request with a 150 ms deadline was held for the whole delay");
	if (p[0].status != QV_OK && p[0].status != QV_DEADLINE_EXCEEDED)
		qvt_fail("4. status %u", p[0].status);
	if (p[0].status == QV_OK)
		check_row(&wait, &p[0], 9, "4. deadline request");

	/* 5. A client killed while its requests are held. */
	{
		int pfd[2];
		char b;
		pid_t pid;

		if (pipe(pfd) != 0)
			qvt_die("pipe: %s", strerror(errno));
		pid = fork();
		if (pid < 0)
			qvt_die("fork: %s", strerror(errno));
		if (pid == 0)
			victim(d.sock, &wait, pfd[1]);
		close(pfd[1]);
		if (read(pfd[0], &b, 1) != 1)
			qvt_die("the victim client died before submitting");
		sleep_ms(50); /* taken by the worker and held (the delay is a second) */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(pfd[0]);
		t0 = now_ms();
		while (open_channels(argv[3], d.sock) > 1 && now_ms() - t0 < 10000)
			sleep_ms(20);
		fprintf(stderr, "5. victim's channel retired after %.1f ms\n", now_ms() - t0);
		if (open_channels(argv[3], d.sock) != 1)
			qvt_fail("5. the killed client's channel is still open");
		if (!qvt_daemon_alive(&d))
			qvt_die("5. quiverd died after a client with held requests was killed");
		memset(p, 0, sizeof(p));
		for (uint32_t i = 0; i < 8; i++)
			submit(c, &wait, 8 + i, i, 0, &p[i]);
		for (uint32_t left = 8; left;) {
			poll_some(c, p, 8);
			left = 0;
			for (uint32_t i = 0; i < 8; i++)
				left += !p[i].done;
		}
		for (uint32_t i = 0; i < 8; i++) {
			char what[32];
			snprintf(what, sizeof(what), "5. request %u", i);
			check_row(&wait, &p[i], 8 + i, what);
		}
	}

	qv_close(c);
	qvt_ref_free(&wait.ref);
	qvt_ref_free(&plain.ref);
	{
		int rc = qvt_finish(&d);
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", repo);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", repo);
		return rc;
	}
}
