/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_udp_e2e.c - a real quiverd serving UDP (`--udp 127.0.0.1:PORT`),
 * driven by the qv_udp_* client: trade-mlp's outputs equal the torch
 * references (every reference row alone, multi-row requests, and all rows
 * asynchronously), junk datagrams are dropped or answered BAD_REQUEST and
 * the daemon keeps serving, and an unknown model is -ENOENT. Then a second
 * daemon with `--udp-allow 127.0.0.2/32`: 127.0.0.1 is never answered,
 * 127.0.0.2 is.
 *
 * Usage: test_udp_e2e QUIVERD REPO
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "udpcheck.h"
#include "rawchan.h"
#include "quiver.h"
#include "qv_udp_proto.h"
#include "udp_test_util.h"

static void sync_rows(qv_udp_client *c, const struct qv_model_desc *d, const struct qvt_ref *ref,
		      uint32_t row0, uint32_t rows)
{
	qvt_udp_sync_rows(c, d, ref, row0, rows, row0, 10000, "udp");
}

static void async_all(qv_udp_client *c, const struct qv_model_desc *d, const struct qvt_ref *ref)
{
	qvt_udp_async_all(c, d, ref, 60, "udp");
}

/* Junk from a raw socket; the valid request sent last must be the first
 * (and only) thing answered besides the BAD_REQUESTs expected. */
static void junk(uint16_t port, const struct qv_model_desc *d, const struct qvt_ref *ref)
{
	static _Alignas(16) uint8_t dg[QV_UDP_MAX_DATAGRAM + 2048];
	static _Alignas(16) uint8_t rep[QV_UDP_MAX_DATAGRAM + 16];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct qv_udp_req_hdr h;
	struct qv_udp_rep_hdr rh;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	uint64_t x = 0x2545f4914f6cdd1dull;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		qvt_die("raw socket: %s", strerror(errno));
	for (int it = 0; it < 500; it++) {
		size_t len = 1 + (size_t)it * 7 % 300;
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			dg[i] = (uint8_t)x;
		}
		dg[0] = 0; /* never the magic */
		(void)send(fd, dg, len, 0);
	}
	/* bad: lying rows, then oversize; then a valid one */
	memset(&h, 0, sizeof(h));
	h.magic = QV_UDP_MAGIC;
	h.version = QV_UDP_VERSION;
	h.type = QV_UDP_INFER;
	h.handle = d->handle;
	h.rows = d->in_dim + 1; /* does not divide the payload */
	h.request_id = 11;
	h.payload_bytes = d->in_dim * 4;
	memcpy(dg, &h, sizeof(h));
	memcpy(dg + sizeof(h), ref->x.data, h.payload_bytes);
	(void)send(fd, dg, sizeof(h) + h.payload_bytes, 0);
	h.rows = 1;
	h.request_id = 12;
	h.payload_bytes = QV_UDP_MAX_DATAGRAM;
	memcpy(dg, &h, sizeof(h));
	(void)send(fd, dg, sizeof(h) + QV_UDP_MAX_DATAGRAM, 0);
	h.request_id = 13;
	h.payload_bytes = d->in_dim * 4;
	memcpy(dg, &h, sizeof(h));
	(void)send(fd, dg, sizeof(h) + h.payload_bytes, 0);

	static const uint32_t want_status[] = { QV_BAD_REQUEST, QV_BAD_REQUEST, QV_OK };
	for (uint64_t k = 0; k < 3; k++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 10000) != 1) {
			qvt_fail("junk: no answer for request %llu", (unsigned long long)(11 + k));
			break;
		}
		ssize_t n = recv(fd, rep, sizeof(rep), 0);
		memcpy(&rh, rep, sizeof(rh));
		if (n < (ssize_t)sizeof(rh) || rh.request_id != 11 + k ||
		    rh.status != want_status[k]) {
			qvt_fail("junk: reply %llu status %u, want id %llu status %u",
				 (unsigned long long)rh.request_id, rh.status,
				 (unsigned long long)(11 + k), want_status[k]);
			break;
		}
		if (k == 2 && qvt_compare((const float *)(const void *)(rep + sizeof(rh)),
					  ref->y.data, d->out_dim, QVT_RTOL, QVT_ATOL, "raw"))
			qvt_fail("junk: raw request's output differs from the reference");
	}
	close(fd);
}

/* A lookup from 127.0.0.2 (inside the allow-list) is answered. */
static void allowed_lookup(uint16_t port)
{
	static _Alignas(16) uint8_t buf[512];
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct qv_udp_req_hdr h;
	struct qv_udp_rep_hdr rh;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	a.sin_addr.s_addr = htonl(0x7f000002);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		qvt_die("bind 127.0.0.2: %s", strerror(errno));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		qvt_die("connect: %s", strerror(errno));
	memset(&h, 0, sizeof(h));
	h.magic = QV_UDP_MAGIC;
	h.version = QV_UDP_VERSION;
	h.type = QV_UDP_LOOKUP;
	h.request_id = 77;
	h.payload_bytes = 9;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), "trade-mlp", 9);
	for (int attempt = 0; attempt < 5; attempt++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		(void)send(fd, buf, sizeof(h) + 9, 0);
		if (poll(&p, 1, 2000) != 1)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		memcpy(&rh, buf, sizeof(rh));
		if (n != (ssize_t)(sizeof(rh) + sizeof(struct qv_udp_model)) || rh.request_id != 77 ||
		    rh.status != QV_OK)
			qvt_fail("allowed lookup: %zd bytes, id %llu, status %u", n,
				 (unsigned long long)rh.request_id, rh.status);
		close(fd);
		return;
	}
	qvt_fail("allowed lookup from 127.0.0.2: no answer");
	close(fd);
}

int main(int argc, char **argv)
{
	struct qvt_daemon dm;
	struct qv_model_desc d;
	struct qvt_ref ref;
	qv_udp_client *c;
	char ap[64];
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: %s QUIVERD REPO\n", argv[0]);
		return 2;
	}
	uint16_t port = free_udp_port();
	snprintf(ap, sizeof(ap), "127.0.0.1:%u", port);
	const char *extra[] = { "--udp", ap, NULL };
	if (qvt_daemon_start(&dm, argv[1], argv[2], extra) < 0)
		qvt_die("quiverd did not start");

	r = qv_udp_connect(ap, &(struct qv_udp_opts){ .max_inflight = 16, .timeout_ms = 5000 }, &c);
	if (r < 0)
		qvt_die("qv_udp_connect %s: %s", ap, strerror(-r));
	r = qv_udp_lookup(c, "no-such-model", &d);
	if (r != -ENOENT)
		qvt_fail("lookup of an unknown model: %d, want -ENOENT", r);
	r = qv_udp_lookup(c, "trade-mlp", &d);
	if (r < 0)
		qvt_die("udp lookup trade-mlp: %s", strerror(-r));
	r = qvt_ref_load(argv[2], "trade-mlp", d.version, &ref);
	if (r < 0)
		qvt_die("reference trade-mlp/%u: %s", d.version, strerror(-r));
	if (ref.in_dim != d.in_dim || ref.out_dim != d.out_dim)
		qvt_die("trade-mlp: lookup says %u -> %u, reference %u -> %u", d.in_dim, d.out_dim,
			ref.in_dim, ref.out_dim);

	for (uint32_t i = 0; i < ref.rows; i++)
		sync_rows(c, &d, &ref, i, 1);
	static const uint32_t sizes[] = { 2, 3, 7, 16 };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		if (sizes[k] <= ref.rows && sizes[k] <= d.max_batch &&
		    (size_t)sizes[k] * d.in_dim * 4 <= QV_UDP_MAX_IN_BYTES)
			sync_rows(c, &d, &ref, ref.rows - sizes[k], sizes[k]);
	async_all(c, &d, &ref);
	junk(port, &d, &ref);
	/* still serving after the junk */
	sync_rows(c, &d, &ref, 0, 1);
	fprintf(stderr, "udp e2e: %u reference rows checked, stray replies %llu\n", ref.rows,
		(unsigned long long)qv_udp_stray(c));

	qv_udp_close(c);
	qvt_ref_free(&ref);
	int ws = 0;
	if (qvt_daemon_stop(&dm, 30000, &ws) < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		qvt_fail("quiverd (first run) did not exit cleanly");

	/* The allow-list: only 127.0.0.2 may talk; 127.0.0.1 gets nothing. */
	port = free_udp_port();
	snprintf(ap, sizeof(ap), "127.0.0.1:%u", port);
	const char *extra2[] = { "--udp", ap, "--udp-allow", "127.0.0.2/32", NULL };
	if (qvt_daemon_start(&dm, argv[1], argv[2], extra2) < 0)
		qvt_die("quiverd --udp-allow did not start");
	r = qv_udp_connect(ap, &(struct qv_udp_opts){ .timeout_ms = 300 }, &c);
	if (r < 0)
		qvt_die("qv_udp_connect %s: %s", ap, strerror(-r));
	r = qv_udp_lookup(c, "trade-mlp", &d);
	if (r != -ETIMEDOUT)
		qvt_fail("lookup from outside the allow-list: %d, want -ETIMEDOUT", r);
	qv_udp_close(c);
	allowed_lookup(port);
	/* The drop is counted where an operator sees it: `status` has udp.dropped_allow. */
	{
		char rep[16384];
		int32_t st = 0;
		const char *k;
		if (qvt_ctl_cmd(dm.sock, "{\"cmd\":\"status\"}", &st, rep, sizeof(rep)) < 0 || st != 0)
			qvt_fail("status after the allow-list checks failed (%d)", st);
		else if (!(k = strstr(rep, "\"dropped_allow\":")) || atoi(k + 16) < 1)
			qvt_fail("status does not count the dropped datagram: %.300s", rep);
	}
	return qvt_finish(&dm);
}
