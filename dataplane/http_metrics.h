/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_metrics.h - the HTTP endpoint of --metrics-listen: GET /metrics
 * (Prometheus text 0.0.4), /healthz and /readyz, served by libmicrohttpd
 * from the control thread's own poll loop (no HTTP thread).
 */
#ifndef QV_DP_HTTP_METRICS_H
#define QV_DP_HTTP_METRICS_H

#include <stdint.h>
#include <sys/socket.h>

struct qv_daemon;
struct qv_http;

/*
 * "ADDR:PORT" -> a socket address: ADDR an IPv4 address, "[IPv6]", or
 * empty / "*" for every IPv4 address; PORT 0..65535 (0: any free port).
 * Returns 0 or -EINVAL.
 */
int qv_listen_addr_parse(const char *s, struct sockaddr_storage *ret_sa, socklen_t *ret_len);

/*
 * Listens on `addr`; requests are answered from qv_http_run(). `ready`
 * says whether /readyz answers 200 (with `why` as the body otherwise).
 */
typedef int (*qv_http_ready_fn)(struct qv_daemon *d, char *why, size_t cap);
int qv_http_open(struct qv_daemon *d, const char *addr, qv_http_ready_fn ready,
		 struct qv_http **ret);
/* The port bound (useful with port 0). */
uint16_t qv_http_port(const struct qv_http *h);
/* One descriptor to poll for POLLIN; then call qv_http_run. */
int qv_http_fd(const struct qv_http *h);
/* The longest the caller may sleep before calling qv_http_run, -1: no limit. */
int qv_http_timeout_ms(struct qv_http *h);
/* Accepts, reads and answers whatever is ready; never blocks. */
void qv_http_run(struct qv_http *h);
void qv_http_close(struct qv_http *h);

#endif /* QV_DP_HTTP_METRICS_H */
