/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dpdk_client.c - the client side of the DPDK back end's test, run inside
 * the test's network namespace (test_dpdk.sh) with libquiver's qv_udp_*:
 *
 *   dpdk_client serve  ADDR:PORT REPO     trade-mlp against the torch
 *       references (every row alone, multi-row requests that fit one
 *       Ethernet frame, all rows asynchronously, typed requests in protocol
 *       version 2), junk datagrams dropped or
 *       answered BAD_REQUEST, an oversize (IP-fragmented) request dropped,
 *       and the daemon still serving afterwards;
 *   dpdk_client denied ADDR:PORT          no answer at all (allow-list);
 *   dpdk_client bench  ADDR:PORT N        N synchronous 1-row round trips,
 *       latency percentiles printed (nothing asserted on time);
 *   dpdk_client frames IFACE MAC ADDR:PORT REPO   a counted set of datagrams
 *       and hand-made frames (burst, IP options, bad checksum, forged
 *       source, ARP), see dpdk_frames.c.
 *
 * Exit status 0 when every check held, 1 otherwise.
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

#include "daemon.h"
#include "dpdk_frames.h"
#include "udpcheck.h"
#include "quiver.h"
#include "qv_udp_proto.h"

/* One Ethernet frame: 1500 - IPv4 - UDP headers. */
#define FRAME_PAYLOAD 1472u

static void sync_rows(qv_udp_client *c, const struct qv_model_desc *d, const struct qvt_ref *ref,
		      uint32_t row0, uint32_t rows)
{
	qvt_udp_sync_rows(c, d, ref, row0, rows, 1000 + row0, 5000, "dpdk");
}

static void async_all(qv_udp_client *c, const struct qv_model_desc *d, const struct qvt_ref *ref)
{
	qvt_udp_async_all(c, d, ref, 30, "dpdk");
}

static int raw_socket(const char *addr_port)
{
	char host[64];
	const char *colon = strrchr(addr_port, ':');
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd;

	if (colon == NULL || (size_t)(colon - addr_port) >= sizeof(host))
		qvt_die("bad address %s", addr_port);
	memcpy(host, addr_port, (size_t)(colon - addr_port));
	host[colon - addr_port] = '\0';
	a.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		qvt_die("bad address %s", addr_port);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		qvt_die("raw socket: %s", strerror(errno));
	return fd;
}

static void put_req(uint8_t *dg, const struct qv_model_desc *d, uint32_t rows, uint64_t id,
		    uint32_t payload_bytes)
{
	struct qv_udp_req_hdr h;

	memset(&h, 0, sizeof(h));
	h.magic = QV_UDP_MAGIC;
	h.version = QV_UDP_VERSION;
	h.type = QV_UDP_INFER;
	h.handle = d->handle;
	h.rows = rows;
	h.request_id = id;
	h.payload_bytes = payload_bytes;
	memcpy(dg, &h, sizeof(h));
}

/*
 * Junk: random datagrams (dropped), a reply-typed datagram (dropped), two
 * inconsistent requests (BAD_REQUEST 11, 12), an oversize request that IP
 * fragments (dropped by the data plane, never answered), and a valid
 * request (14) whose answer must come right after the two BAD_REQUESTs.
 */
static void junk(const char *addr_port, const struct qv_model_desc *d, const struct qvt_ref *ref)
{
	static _Alignas(16) uint8_t dg[QV_UDP_MAX_DATAGRAM];
	static _Alignas(16) uint8_t rep[QV_UDP_MAX_DATAGRAM];
	struct qv_udp_rep_hdr rh;
	int fd = raw_socket(addr_port);
	uint64_t x = 0x2545f4914f6cdd1dull;
	uint32_t in_bytes = d->in_dim * 4;

	for (int it = 0; it < 300; it++) {
		size_t len = 1 + (size_t)it * 7 % 300;
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			dg[i] = (uint8_t)x;
		}
		dg[0] = 0; /* never the magic */
		(void)send(fd, dg, len, 0);
	}
	put_req(dg, d, 1, 10, in_bytes);
	dg[5] = QV_UDP_INFER_REPLY; /* a reply: must never be answered */
	memcpy(dg + sizeof(struct qv_udp_req_hdr), ref->x.data, in_bytes);
	(void)send(fd, dg, sizeof(struct qv_udp_req_hdr) + in_bytes, 0);
	put_req(dg, d, d->in_dim + 1, 11, in_bytes); /* rows do not divide the payload */
	(void)send(fd, dg, sizeof(struct qv_udp_req_hdr) + in_bytes, 0);
	put_req(dg, d, 1, 12, in_bytes);
	dg[4] = QV_UDP_VERSION_TENSORS + 1; /* a version nobody speaks */
	(void)send(fd, dg, sizeof(struct qv_udp_req_hdr) + in_bytes, 0);
	put_req(dg, d, 4, 13, 4 * 1024);     /* > one frame: fragmented */
	(void)send(fd, dg, sizeof(struct qv_udp_req_hdr) + 4 * 1024, 0);
	put_req(dg, d, 1, 14, in_bytes);
	memcpy(dg + sizeof(struct qv_udp_req_hdr), ref->x.data, in_bytes);
	(void)send(fd, dg, sizeof(struct qv_udp_req_hdr) + in_bytes, 0);

	static const uint64_t want_id[] = { 11, 12, 14 };
	static const uint32_t want_status[] = { QV_BAD_REQUEST, QV_BAD_REQUEST, QV_OK };
	for (int k = 0; k < 3; k++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 5000) != 1) {
			qvt_fail("junk: no answer for request %llu", (unsigned long long)want_id[k]);
			break;
		}
		ssize_t n = recv(fd, rep, sizeof(rep), 0);
		memcpy(&rh, rep, sizeof(rh));
		if (n < (ssize_t)sizeof(rh) || rh.request_id != want_id[k] ||
		    rh.status != want_status[k]) {
			qvt_fail("junk: reply %llu status %u, want id %llu status %u",
				 (unsigned long long)rh.request_id, rh.status,
				 (unsigned long long)want_id[k], want_status[k]);
			break;
		}
		if (k == 2 && qvt_compare((const float *)(const void *)(rep + sizeof(rh)),
					  ref->y.data, d->out_dim, QVT_RTOL, QVT_ATOL, "raw"))
			qvt_fail("junk: the valid request's output differs from the reference");
	}
	/* Nothing else may come back (no answer to the reply or fragments). */
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 300) == 1)
		qvt_fail("junk: an unexpected extra reply arrived");
	close(fd);
}

/* Typed requests (UDP version 2: the tensor count, then packed rows) of
 * 1 and `fit` - 1 rows (the 16-byte prefix must fit the frame too). */
static void typed(qv_udp_client *c, const struct qv_model_desc *d, const struct qvt_ref *ref,
		  uint32_t fit)
{
	static float y[4096];
	uint32_t sizes[2] = { 1, fit > 2 ? fit - 1 : 1 };

	if (d->n_inputs != 1 || d->n_outputs != 1 || d->inputs[0].dtype != QV_TENSOR_FLOAT32)
		qvt_fail("trade-mlp over DPDK: lookup says %u inputs, %u outputs", d->n_inputs,
			 d->n_outputs);
	for (int k = 0; k < 2; k++) {
		uint32_t rows = sizes[k] < ref->rows ? sizes[k] : ref->rows;
		const void *in[1] = { ref->x.data };
		void *out[1] = { y };
		size_t caps[1] = { sizeof(y) };
		struct qv_tensors t = { 1, 1, in, out, caps };
		struct qv_request rq = { .handle = d->handle, .rows = rows, .request_id = 77 };
		struct qv_result res;
		int r;

		if (rows > d->max_batch || (size_t)rows * d->out_dim > 4096)
			continue;
		r = qv_udp_infer_tensors(c, &rq, &t, 5000, &res);
		if (r < 0 || res.status != QV_OK || res.out_floats != rows * d->out_dim)
			qvt_fail("typed request of %u rows over DPDK: %d, %s", rows, r,
				 r ? "" : qv_strerror((int)res.status));
		else if (qvt_compare(y, ref->y.data, (size_t)rows * d->out_dim, QVT_RTOL, QVT_ATOL,
				     "dpdk typed"))
			qvt_fail("typed request of %u rows over DPDK differs from the reference",
				 rows);
	}
}

static int serve(const char *ap, const char *repo)
{
	struct qv_model_desc d;
	struct qvt_ref ref;
	qv_udp_client *c;
	int r;

	r = qv_udp_connect(ap, &(struct qv_udp_opts){ .max_inflight = 16, .timeout_ms = 3000 }, &c);
	if (r < 0)
		qvt_die("qv_udp_connect %s: %s", ap, strerror(-r));
	r = qv_udp_lookup(c, "no-such-model", &d);
	if (r != -ENOENT)
		qvt_fail("lookup of an unknown model: %d, want -ENOENT", r);
	r = qv_udp_lookup(c, "trade-mlp", &d);
	if (r < 0)
		qvt_die("lookup trade-mlp over DPDK: %s", strerror(-r));
	r = qvt_ref_load(repo, "trade-mlp", d.version, &ref);
	if (r < 0)
		qvt_die("reference trade-mlp/%u: %s", d.version, strerror(-r));
	if (ref.in_dim != d.in_dim || ref.out_dim != d.out_dim)
		qvt_die("trade-mlp: lookup says %u -> %u, reference %u -> %u", d.in_dim, d.out_dim,
			ref.in_dim, ref.out_dim);
	for (uint32_t i = 0; i < ref.rows; i++)
		sync_rows(c, &d, &ref, i, 1);
	uint32_t fit = (FRAME_PAYLOAD - (uint32_t)sizeof(struct qv_udp_req_hdr)) / (d.in_dim * 4);
	static const uint32_t sizes[] = { 2, 3, 7, 11 };
	uint32_t multi = 0;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		if (sizes[k] <= ref.rows && sizes[k] <= d.max_batch && sizes[k] <= fit) {
			sync_rows(c, &d, &ref, ref.rows - sizes[k], sizes[k]);
			multi++;
		}
	if (multi == 0)
		qvt_fail("no multi-row request fits one frame (in_dim %u)", d.in_dim);
	async_all(c, &d, &ref);
	typed(c, &d, &ref, fit);
	junk(ap, &d, &ref);
	sync_rows(c, &d, &ref, 0, 1); /* still serving after the junk */
	printf("dpdk serve: %u reference rows, %u multi-row sizes, junk checked; stray %llu\n",
	       ref.rows, multi, (unsigned long long)qv_udp_stray(c));
	qv_udp_close(c);
	qvt_ref_free(&ref);
	return qvt_failures() ? 1 : 0;
}

/* Outside the allow-list: not even a lookup is answered. */
static int denied(const char *ap)
{
	struct qv_model_desc d;
	qv_udp_client *c;
	int r = qv_udp_connect(ap, &(struct qv_udp_opts){ .timeout_ms = 1500 }, &c);

	if (r < 0)
		qvt_die("qv_udp_connect %s: %s", ap, strerror(-r));
	r = qv_udp_lookup(c, "trade-mlp", &d);
	if (r != -ETIMEDOUT)
		qvt_fail("lookup from outside the allow-list: %d (%s), want -ETIMEDOUT", r,
			 r < 0 ? strerror(-r) : "answered");
	else
		printf("dpdk denied: no answer, as expected\n");
	qv_udp_close(c);
	return qvt_failures() ? 1 : 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int bench(const char *ap, uint32_t n)
{
	struct qv_model_desc d;
	qv_udp_client *c;
	float in[1024], out[1024];
	uint64_t *lat = calloc(n, sizeof(*lat));
	uint32_t ok = 0, lost = 0;
	int r;

	if (lat == NULL)
		qvt_die("out of memory");
	r = qv_udp_connect(ap, &(struct qv_udp_opts){ .timeout_ms = 3000 }, &c);
	if (r < 0 || (r = qv_udp_lookup(c, "trade-mlp", &d)) < 0)
		qvt_die("bench setup: %s", strerror(-r));
	if (d.in_dim > 1024 || d.out_dim > 1024)
		qvt_die("bench: trade-mlp is bigger than expected");
	for (uint32_t i = 0; i < d.in_dim; i++)
		in[i] = (float)i / (float)d.in_dim;
	for (uint32_t i = 0; i < n + 200; i++) {
		struct qv_request rq = { .handle = d.handle, .rows = 1, .input = in, .request_id = i };
		struct qv_result res;
		uint64_t t0 = qvt_now_ns();
		r = qv_udp_infer(c, &rq, out, 1024, 1000, &res);
		uint64_t t1 = qvt_now_ns();
		if (r < 0 || res.status != QV_OK) {
			lost++;
			continue;
		}
		if (i >= 200) /* warm-up excluded */
			lat[ok++] = t1 - t0;
	}
	if (ok == 0)
		qvt_die("bench: no request answered");
	qsort(lat, ok, sizeof(*lat), cmp_u64);
	printf("dpdk bench (trade-mlp, 1 row, af_packet over veth): n=%u lost=%u "
	       "p50=%.1f us p90=%.1f us p99=%.1f us max=%.1f us\n", ok, lost,
	       (double)lat[ok / 2] / 1e3, (double)lat[(size_t)ok * 9 / 10] / 1e3,
	       (double)lat[(size_t)ok * 99 / 100] / 1e3, (double)lat[ok - 1] / 1e3);
	qv_udp_close(c);
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "serve") == 0)
		return serve(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "denied") == 0)
		return denied(argv[2]);
	if (argc == 4 && strcmp(argv[1], "bench") == 0)
		return bench(argv[2], (uint32_t)strtoul(argv[3], NULL, 10));
	if (argc == 6 && strcmp(argv[1], "frames") == 0)
		return dpdk_frames(argv[2], argv[3], argv[4], argv[5]);
	fprintf(stderr,
		"usage: %s serve ADDR:PORT REPO | denied ADDR:PORT | bench ADDR:PORT N | "
		"frames IFACE MAC ADDR:PORT REPO\n", argv[0]);
	return 2;
}
