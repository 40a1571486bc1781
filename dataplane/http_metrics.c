/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_metrics.c - GET /metrics, /healthz and /readyz over HTTP/1.1 with
 * libmicrohttpd (Debian's libmicrohttpd-dev) rather than a hand-written
 * HTTP parser: the endpoint faces the network, and request parsing,
 * keep-alive, pipelining, timeouts and connection limits are exactly what
 * a small hand-written server gets wrong.
 *
 * Which thread: the control thread. libmicrohttpd runs in its "external
 * polling" mode with epoll: the daemon exposes one epoll descriptor that
 * the control loop polls beside its Unix sockets, and calls MHD_run() when
 * it is readable (or when MHD_get_timeout says a connection timed out).
 * The /metrics handler therefore reads the routing registry and the
 * workers' counters on the thread that owns the registry, with no lock and
 * no snapshot to publish; a dedicated HTTP thread would need one or the
 * other, since routes, versions and stats slots change under the control
 * thread. Workers never see HTTP. The price: a scrape waits while the
 * control thread is busy (a model load); that delays the answer, it does
 * not lose it.
 *
 * Limits: 16 connections at once, 10 s idle timeout, so a flood of
 * scrapers or a stuck peer costs the control thread bounded work.
 */
#include "http_metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "prom.h"
#include "quiverd.h"

struct qv_http {
	struct MHD_Daemon *mhd;
	struct qv_daemon *d;
	qv_http_ready_fn ready;
	int epfd;
	uint16_t port;
};

int qv_listen_addr_parse(const char *s, struct sockaddr_storage *ret_sa, socklen_t *ret_len)
{
	char host[64];
	const char *colon, *hs = s;
	size_t hl;
	char *end;
	unsigned long port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
	struct addrinfo *ai = NULL;
	int r;

	if (!s)
		return -EINVAL;
	colon = strrchr(s, ':');
	if (!colon || !colon[1])
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port > 65535 || colon[1] == '-' || colon[1] == '+' ||
	    colon[1] == ' ')
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
		hs = s + 1;
		hl -= 2;
		hints.ai_family = AF_INET6;
	} else {
		if (memchr(s, ':', hl) || memchr(s, '[', hl))
			return -EINVAL; /* an IPv6 address needs its brackets */
		hints.ai_family = AF_INET;
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	if (hints.ai_family == AF_INET && (hl == 0 || strcmp(host, "*") == 0)) {
		struct sockaddr_in *in = (struct sockaddr_in *)ret_sa;
		memset(ret_sa, 0, sizeof(*ret_sa));
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_ANY);
		in->sin_port = htons((uint16_t)port);
		*ret_len = sizeof(*in);
		return 0;
	}
	if (hl == 0)
		return -EINVAL;
	r = getaddrinfo(host, NULL, &hints, &ai);
	if (r != 0 || !ai || ai->ai_addrlen > sizeof(*ret_sa)) {
		if (ai)
			freeaddrinfo(ai);
		return -EINVAL;
	}
	memset(ret_sa, 0, sizeof(*ret_sa));
	memcpy(ret_sa, ai->ai_addr, ai->ai_addrlen);
	*ret_len = (socklen_t)ai->ai_addrlen;
	if (ai->ai_family == AF_INET6)
		((struct sockaddr_in6 *)ret_sa)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ret_sa)->sin_port = htons((uint16_t)port);
	freeaddrinfo(ai);
	return 0;
}

__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	qv_log(QV_LOG_WARN, "metrics http: %s", msg);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
			     char *body, size_t len, int owned)
{
	struct MHD_Response *rsp;
	enum MHD_Result r;

	if (owned)
		rsp = MHD_create_response_from_buffer_with_free_callback(len, body, free);
	else
		rsp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY);
	if (!rsp) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(rsp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	r = MHD_queue_response(c, code, rsp);
	MHD_destroy_response(rsp);
	return r;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned code, const char *s)
{
	return reply(c, code, "text/plain; charset=utf-8", (char *)s, strlen(s), 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload, size_t *upload_size, void **req_cls)
{
	struct qv_http *h = cls;

	(void)version;
	(void)upload;
	/* The first call only announces the headers; answer on the second,
	 * after any body (which no endpoint takes) has been read. */
	if (*req_cls == NULL) {
		*req_cls = h;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	if (strcmp(url, "/metrics") == 0) {
		char *body = NULL;
		size_t len = 0;
		if (qv_prom_render(h->d, &body, &len) < 0)
			return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
		return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len,
			     1);
	}
	if (strcmp(url, "/healthz") == 0)
		return text(c, MHD_HTTP_OK, "ok\n");
	if (strcmp(url, "/readyz") == 0) {
		char why[256];
		if (h->ready(h->d, why, sizeof(why)))
			return text(c, MHD_HTTP_OK, "ready\n");
		return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, why);
	}
	return text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n");
}

int qv_http_open(struct qv_daemon *d, const char *addr, qv_http_ready_fn ready,
		 struct qv_http **ret)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	const union MHD_DaemonInfo *info;
	struct qv_http *h;
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;

	if (qv_listen_addr_parse(addr, &sa, &salen) < 0)
		return -EINVAL;
	if (sa.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->d = d;
	h->ready = ready;
	/* Port 0 here: the address (with its port) is MHD_OPTION_SOCK_ADDR's. */
	/* The logger first: libmicrohttpd logs the other options' errors with it. */
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				  MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&sa,
				  MHD_OPTION_CONNECTION_LIMIT, 16u,
				  MHD_OPTION_CONNECTION_TIMEOUT, 10u,
				  MHD_OPTION_END);
	if (!h->mhd) {
		free(h);
		return -EADDRNOTAVAIL;
	}
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	h->epfd = info ? info->epoll_fd : -1;
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : 0;
	if (h->epfd < 0) {
		MHD_stop_daemon(h->mhd);
		free(h);
		return -EOPNOTSUPP;
	}
	*ret = h;
	return 0;
}

uint16_t qv_http_port(const struct qv_http *h)
{
	return h->port;
}

int qv_http_fd(const struct qv_http *h)
{
	return h->epfd;
}

int qv_http_timeout_ms(struct qv_http *h)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (MHD_get_timeout(h->mhd, &t) != MHD_YES)
		return -1;
	return t > INT_MAX ? INT_MAX : (int)t;
}

void qv_http_run(struct qv_http *h)
{
	MHD_run(h->mhd);
}

void qv_http_close(struct qv_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->mhd);
	free(h);
}
