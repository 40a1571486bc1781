/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qv_addr.h - "A.B.C.D:PORT" / "[v6]:PORT" into a sockaddr, the one parser
 * of UDP addresses: libquiver's UDP client (a destination, port 1..65535)
 * and quiverd's UDP back end (a bind address, port 0 = any) both use it.
 * Header-only and libc-only, because libquiver links nothing of quiverd.
 */
#ifndef QV_ADDR_H
#define QV_ADDR_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* 0, or -EINVAL for anything but a numeric host and a decimal port in range. */
static inline int qv_addr_parse(const char *ap, int allow_port0, struct sockaddr_storage *ret_ss,
				socklen_t *ret_len)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	char host[INET6_ADDRSTRLEN + 1];
	const char *hs = ap, *he, *ps;
	char *end;
	long port;

	if (ap == NULL)
		return -EINVAL;
	if (ap[0] == '[') {
		hs = ap + 1;
		he = strchr(hs, ']');
		if (he == NULL || he[1] != ':')
			return -EINVAL;
		ps = he + 2;
	} else {
		he = strrchr(hs, ':');
		/* An IPv6 address needs brackets: "::1:80" is ambiguous. */
		if (he == NULL || memchr(hs, ':', (size_t)(he - hs)) != NULL)
			return -EINVAL;
		ps = he + 1;
	}
	if (he == hs || (size_t)(he - hs) >= sizeof(host) || *ps < '0' || *ps > '9')
		return -EINVAL;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	errno = 0;
	port = strtol(ps, &end, 10);
	if (errno != 0 || *end != '\0' || port < (allow_port0 ? 0 : 1) || port > 65535)
		return -EINVAL;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*ret_len = sizeof(*s4);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*ret_len = sizeof(*s6);
	} else {
		return -EINVAL;
	}
	*ret_ss = ss;
	return 0;
}

#endif /* QV_ADDR_H */
