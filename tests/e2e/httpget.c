/* SPDX-License-Identifier: Apache-2.0 */
/* httpget.c - see httpget.h. Blocking, one request a connection. */
#include "httpget.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int qvt_http(uint16_t port, const char *method, const char *path, char **ret_body,
	     char *ctype, size_t ctype_cap)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = 30 };
	char req[512], *buf = NULL, *p;
	size_t len = 0, cap = 0;
	int fd, code = -EPROTO;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return -EIO;
	}
	for (;;) {
		ssize_t n;
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap * 2 + 8192);
			if (!nb) {
				free(buf);
				close(fd);
				return -ENOMEM;
			}
			buf = nb;
			cap = cap * 2 + 8192;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (!buf)
		return -EPROTO;
	buf[len] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
		code = -EPROTO;
	if (ctype && ctype_cap) {
		ctype[0] = '\0';
		for (p = buf; p && *p; p = strstr(p, "\r\n")) {
			if (*p == '\r')
				p += 2;
			if (strncasecmp(p, "Content-Type:", 13) == 0) {
				const char *v = p + 13, *e;
				while (*v == ' ')
					v++;
				e = strstr(v, "\r\n");
				snprintf(ctype, ctype_cap, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
				break;
			}
			if (strncmp(p, "\r\n", 2) == 0)
				break;
		}
	}
	p = strstr(buf, "\r\n\r\n");
	if (ret_body) {
		*ret_body = strdup(p ? p + 4 : "");
		if (!*ret_body)
			code = -ENOMEM;
	}
	free(buf);
	return code;
}

uint16_t qvt_metrics_port(const char *log_path)
{
	FILE *f = fopen(log_path, "r");
	char line[4096];
	unsigned port = 0;

	while (f && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "metrics: listening on ");
		/* Text or JSON: the first "(port N)" with a number (JSON's
		 * "event" holds the format, "(port %u)", first). */
		while (p && (p = strstr(p, "(port ")) != NULL) {
			if (sscanf(p, "(port %u)", &port) == 1)
				break;
			p++;
		}
		if (port)
			break;
	}
	if (f)
		fclose(f);
	return (uint16_t)port;
}
