/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_udp_batch_e2e.c - UDP requests batched by a real quiverd (one
 * worker, `--udp 127.0.0.1:PORT`): a client socket sends a burst of 200
 * one-row trade-mlp INFER datagrams with one sendmmsg and without waiting
 * for replies, then collects them all. Every reply must equal its row of
 * the torch reference, and `quiverctl stats --json` must show trade-mlp ran
 * a batch of more than one row (so the test cannot pass while the UDP back
 * end serves datagrams one by one). Then one burst mixing INFERs for
 * trade-mlp and ctr-mlp, a LOOKUP and a junk datagram: every INFER equals
 * its model's reference, the LOOKUP is answered with ctr-mlp's record, the
 * junk is never answered and `status` counts it.
 *
 * Replies lost by the first try (none expected on loopback with a big
 * receive buffer) are asked for again one by one, counted and printed.
 *
 * Usage: test_udp_batch_e2e QUIVERD REPO QUIVERCTL
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "daemon.h"
#include "quiver.h"
#include "qv_udp_proto.h"
#include "rawchan.h"
#include "udp_test_util.h"

#define BURST 200u
#define MAX_BURSTS 5      /* bursts tried before giving up on seeing a batch */
#define DG_MAX 2048u      /* one datagram of this test: header + one row */
#define WAIT_MS 10000     /* per reply: the machine may be loaded */
#define LOOKUP_ID 900000u
#define JUNK_ID 900001u   /* never answered: no reply may carry it */

/* What one request of a burst is: model m's row `row`. */
struct want {
	int m;
	uint32_t row;
	int got;
};

struct model {
	const char *name;
	struct qv_model_desc d;
	struct qvt_ref ref;
};

static struct model models[2] = { { .name = "trade-mlp" }, { .name = "ctr-mlp" } };
static _Alignas(16) uint8_t dgs[BURST + 2][DG_MAX];
static size_t dg_len[BURST + 2];
static struct want wants[BURST + 2];
static uint64_t lost_first_try;

static int client_socket(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_DGRAM, 0), rcv = 8 << 20;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		qvt_die("client socket: %s", strerror(errno));
	/* Room for every reply of a burst while this thread is still sending. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	return fd;
}

/* A request datagram of this test into buf (DG_MAX bytes). */
static size_t put_hdr(uint8_t *buf, uint8_t type, uint32_t handle, uint32_t rows, uint64_t id,
		      const void *payload, uint32_t bytes)
{
	if (sizeof(struct qv_udp_req_hdr) + bytes > DG_MAX)
		qvt_die("a datagram of %u payload bytes does not fit the test", bytes);
	return mk_req(buf, type, handle, rows, id, payload, bytes);
}

/* Request `id` (an index into dgs/wants): model m's reference row `row`. */
static void put_infer(uint32_t id, int m, uint32_t row)
{
	const struct model *mo = &models[m];

	wants[id] = (struct want){ .m = m, .row = row };
	dg_len[id] = put_hdr(dgs[id], QV_UDP_INFER, mo->d.handle, 1, id,
			     mo->ref.x.data + (size_t)row * mo->ref.in_dim, mo->ref.in_dim * 4);
}

/* All of dgs[0..n) with one sendmmsg (looping only if the kernel takes
 * part), so they queue at the server faster than one at a time. */
static void send_all(int fd, uint32_t n)
{
	static struct mmsghdr mm[BURST + 2];
	static struct iovec iov[BURST + 2];
	uint32_t sent = 0;

	for (uint32_t i = 0; i < n; i++) {
		iov[i] = (struct iovec){ .iov_base = dgs[i], .iov_len = dg_len[i] };
		memset(&mm[i], 0, sizeof(mm[i]));
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
	}
	while (sent < n) {
		int r = sendmmsg(fd, mm + sent, n - sent, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			qvt_die("sendmmsg: %s", strerror(errno));
		sent += (uint32_t)r;
	}
}

/* Checks one reply; marks its request answered. Returns the id, or -1. */
static long check_reply(const uint8_t *rep, ssize_t n, uint32_t nreq)
{
	struct qv_udp_rep_hdr h;

	if (n < (ssize_t)sizeof(h)) {
		qvt_fail("a reply of %zd bytes", n);
		return -1;
	}
	memcpy(&h, rep, sizeof(h));
	if (h.magic != QV_UDP_MAGIC || h.request_id >= nreq || h.request_id == JUNK_ID) {
		qvt_fail("a reply with magic %#x id %llu", h.magic, (unsigned long long)h.request_id);
		return -1;
	}
	struct want *w = &wants[h.request_id];
	if (w->got) {
		qvt_fail("request %llu answered twice", (unsigned long long)h.request_id);
		return -1;
	}
	w->got = 1;
	if (w->m == -2) {
		qvt_fail("the junk datagram was answered");
		return -1;
	}
	if (w->m == -1) { /* the LOOKUP of ctr-mlp */
		struct qv_udp_model mw;

		if (h.type != QV_UDP_LOOKUP_REPLY || h.status != QV_OK ||
		    n != (ssize_t)(sizeof(h) + sizeof(mw))) {
			qvt_fail("lookup: type %u status %u, %zd bytes", h.type, h.status, n);
			return -1;
		}
		memcpy(&mw, rep + sizeof(h), sizeof(mw));
		if (mw.handle != models[1].d.handle || mw.in_dim != models[1].d.in_dim ||
		    mw.out_dim != models[1].d.out_dim || strcmp(mw.name, "ctr-mlp") != 0)
			qvt_fail("lookup: handle %u dims %u -> %u name %.32s, want ctr-mlp's",
				 mw.handle, mw.in_dim, mw.out_dim, mw.name);
		return (long)h.request_id;
	}
	const struct model *mo = &models[w->m];
	uint32_t od = mo->ref.out_dim;
	char tag[64];

	if (h.type != QV_UDP_INFER_REPLY || h.status != QV_OK || h.version_served != mo->d.version ||
	    h.payload_bytes != od * 4 || n != (ssize_t)(sizeof(h) + od * 4)) {
		qvt_fail("%s row %u: type %u status %u version %u, %u payload bytes in %zd",
			 mo->name, w->row, h.type, h.status, h.version_served, h.payload_bytes, n);
		return -1;
	}
	snprintf(tag, sizeof(tag), "%s row %u", mo->name, w->row);
	/* The reply buffer is 16-aligned and so is the payload (32-byte header). */
	if (qvt_compare((const float *)(const void *)(rep + sizeof(h)),
			mo->ref.y.data + (size_t)w->row * od, od, QVT_RTOL, QVT_ATOL, tag) != 0)
		qvt_fail("%s: output differs from the reference", tag);
	return (long)h.request_id;
}

/* Collects the replies to dgs[0..n) (those with wants[].m >= -1: all but
 * the junk); a request with no reply within WAIT_MS is sent again alone,
 * counted in lost_first_try, and must be answered then. */
static void collect(int fd, uint32_t n, uint32_t expect)
{
	static _Alignas(16) uint8_t rep[QV_UDP_MAX_DATAGRAM + 64];
	uint32_t got = 0;

	while (got < expect) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, WAIT_MS) != 1)
			break;
		ssize_t len = recv(fd, rep, sizeof(rep), 0);
		if (check_reply(rep, len, n) >= 0)
			got++;
	}
	for (uint32_t i = 0; i < n && got < expect; i++) {
		if (wants[i].got || wants[i].m < -1)
			continue;
		lost_first_try++;
		for (int attempt = 0; attempt < 3 && !wants[i].got; attempt++) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			if (send(fd, dgs[i], dg_len[i], 0) != (ssize_t)dg_len[i])
				qvt_die("send: %s", strerror(errno));
			while (!wants[i].got && poll(&p, 1, 2000) == 1)
				if (check_reply(rep, recv(fd, rep, sizeof(rep), 0), n) >= 0)
					got++;
		}
		if (!wants[i].got)
			qvt_fail("request %u never answered", i);
	}
}

/* The io_uring back end's `junk` counter from `status`. */
static double status_junk(const char *sock)
{
	static char rep[1 << 16];
	const cJSON *u, *k;
	int32_t st = 0;
	double v;
	cJSON *j;

	if (qvt_ctl_cmd(sock, "{\"cmd\":\"status\"}", &st, rep, sizeof(rep)) < 0 || st != 0)
		qvt_die("status failed (%d)", st);
	j = cJSON_Parse(rep);
	u = j ? cJSON_GetObjectItemCaseSensitive(j, "udp") : NULL;
	k = u ? cJSON_GetObjectItemCaseSensitive(u, "junk") : NULL;
	if (!cJSON_IsNumber(k))
		qvt_die("status has no udp.junk: %.400s", rep);
	v = k->valuedouble;
	cJSON_Delete(j);
	return v;
}

int main(int argc, char **argv)
{
	struct qvt_daemon dm;
	qv_udp_client *c;
	double batches = 0, brows = 0;
	char ap[64];
	int r, fd, bursts = 0;

	if (argc < 4) {
		fprintf(stderr, "usage: %s QUIVERD REPO QUIVERCTL\n", argv[0]);
		return 2;
	}
	uint16_t port = free_udp_port();
	snprintf(ap, sizeof(ap), "127.0.0.1:%u", port);
	/* One worker: every datagram of a burst reaches the same ring. */
	const char *extra[] = { "--cores", "1", "--udp", ap, NULL };
	if (qvt_daemon_start(&dm, argv[1], argv[2], extra) < 0)
		qvt_die("quiverd did not start");
	r = qv_udp_connect(ap, &(struct qv_udp_opts){ .timeout_ms = 5000 }, &c);
	if (r < 0)
		qvt_die("qv_udp_connect %s: %s", ap, strerror(-r));
	for (int m = 0; m < 2; m++) {
		struct model *mo = &models[m];

		r = qv_udp_lookup(c, mo->name, &mo->d);
		if (r < 0)
			qvt_die("udp lookup %s: %s", mo->name, strerror(-r));
		r = qvt_ref_load(argv[2], mo->name, mo->d.version, &mo->ref);
		if (r < 0)
			qvt_die("reference %s/%u: %s", mo->name, mo->d.version, strerror(-r));
		if (mo->ref.in_dim != mo->d.in_dim || mo->ref.out_dim != mo->d.out_dim ||
		    mo->ref.rows == 0)
			qvt_die("%s: lookup says %u -> %u, reference %u -> %u", mo->name,
				mo->d.in_dim, mo->d.out_dim, mo->ref.in_dim, mo->ref.out_dim);
	}
	qv_udp_close(c);
	fd = client_socket(port);

	/* 1: bursts of one-row trade-mlp requests until a batch shows (the
	 * first one should do: 200 datagrams queue far faster than a worker
	 * turn answers them). */
	do {
		for (uint32_t i = 0; i < BURST; i++)
			put_infer(i, 0, (i + (uint32_t)bursts * 37u) % models[0].ref.rows);
		send_all(fd, BURST);
		collect(fd, BURST, BURST);
		bursts++;
		qvt_stats_batches(argv[3], dm.sock, "trade-mlp", &batches, &brows);
	} while (batches < 1 && bursts < MAX_BURSTS && qvt_failures() == 0);
	fprintf(stderr, "trade-mlp: %d burst(s) of %u: %.0f batches of %.2f rows on average\n",
		bursts, BURST, batches, batches > 0 ? brows / batches : 0.0);
	if (batches < 1 || brows < 2 * batches)
		qvt_fail("no UDP batch of more than one request ran (batches %.0f, rows %.0f)",
			 batches, brows);

	/* 2: a mixed burst: both models interleaved, a LOOKUP and a junk
	 * datagram in the middle (answered datagrams follow it, so when they
	 * are all in, the junk was seen). */
	double junk0 = status_junk(dm.sock);
	uint32_t n = 0, half = 60;
	const char *cname = "ctr-mlp";

	for (uint32_t i = 0; i < half; i++) {
		put_infer(n++, 0, (i * 7u) % models[0].ref.rows);
		put_infer(n++, 1, (i * 5u) % models[1].ref.rows);
	}
	wants[n] = (struct want){ .m = -1 };
	dg_len[n] = put_hdr(dgs[n], QV_UDP_LOOKUP, 0, 0, n, cname, (uint32_t)strlen(cname));
	n++;
	wants[n] = (struct want){ .m = -2 };
	memset(dgs[n], 0x5a, 64);
	dgs[n][0] = 0; /* never the magic */
	memcpy(dgs[n] + 24, &(uint64_t){ JUNK_ID }, 8);
	dg_len[n] = 64;
	n++;
	for (uint32_t i = 0; i < 20; i++)
		put_infer(n++, (int)(i & 1), (i * 11u + 3u) % models[i & 1].ref.rows);
	send_all(fd, n);
	collect(fd, n, n - 1);
	/* Nothing more may come: the junk is never answered. */
	{
		struct pollfd p = { .fd = fd, .events = POLLIN };
		static _Alignas(16) uint8_t extra_rep[QV_UDP_MAX_DATAGRAM + 64];

		if (poll(&p, 1, 300) == 1) {
			ssize_t len = recv(fd, extra_rep, sizeof(extra_rep), 0);
			qvt_fail("an unexpected datagram of %zd bytes after the mixed burst", len);
		}
	}
	double junk1 = status_junk(dm.sock);
	if (junk1 - junk0 != 1)
		qvt_fail("status junk went %.0f -> %.0f, want one more", junk0, junk1);
	fprintf(stderr, "mixed burst: %u datagrams (trade-mlp, ctr-mlp, a lookup, a junk); "
		"replies asked for again: %llu\n", n, (unsigned long long)lost_first_try);

	close(fd);
	qvt_ref_free(&models[0].ref);
	qvt_ref_free(&models[1].ref);
	return qvt_finish(&dm);
}
