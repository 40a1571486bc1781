/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp_allow.c - source allow-lists for the UDP back ends (io_uring and
 * DPDK) and the ADDR:PORT parser they share. The list is a flat array of
 * prefixes checked linearly: a few entries, one cache line or two, faster
 * than any tree at that size and free of allocation.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "udp.h"

int qv_allow_add(struct qv_allow_list *l, const char *cidr)
{
	struct qv_allow_entry e;
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash;
	size_t hlen;
	long prefix = -1;

	if (l == NULL || cidr == NULL)
		return -EINVAL;
	slash = strchr(cidr, '/');
	hlen = slash ? (size_t)(slash - cidr) : strlen(cidr);
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, cidr, hlen);
	host[hlen] = '\0';
	if (slash) {
		char *end;

		if (slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		errno = 0;
		prefix = strtol(slash + 1, &end, 10);
		if (errno != 0 || *end != '\0')
			return -EINVAL;
	}

	memset(&e, 0, sizeof(e));
	if (inet_pton(AF_INET, host, e.addr) == 1) {
		e.family = AF_INET;
		if (prefix < 0)
			prefix = 32;
		if (prefix > 32)
			return -EINVAL;
	} else if (inet_pton(AF_INET6, host, e.addr) == 1) {
		e.family = AF_INET6;
		if (prefix < 0)
			prefix = 128;
		if (prefix > 128)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	e.prefix = (uint8_t)prefix;
	if (l->n >= QV_ALLOW_MAX)
		return -ENOSPC;
	l->e[l->n++] = e;
	return 0;
}

static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, net, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (a[full] & mask) == (net[full] & mask);
}

bool qv_allow_check(const struct qv_allow_list *l, const struct sockaddr *sa,
		    socklen_t salen)
{
	const uint8_t *a;
	uint8_t fam;

	if (l == NULL || l->n == 0)
		return true;
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
		a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		fam = AF_INET;
	} else if (sa->sa_family == AF_INET6 &&
		   salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			a = (const uint8_t *)a6 + 12;
			fam = AF_INET;
		} else {
			a = (const uint8_t *)a6;
			fam = AF_INET6;
		}
	} else {
		return false;
	}
	for (uint32_t i = 0; i < l->n && i < QV_ALLOW_MAX; i++)
		if (l->e[i].family == fam && prefix_match(a, l->e[i].addr, l->e[i].prefix))
			return true;
	return false;
}

int qv_udp_parse_addr(const char *addr_port, struct sockaddr_storage *ret_ss,
		      socklen_t *ret_len)
{
	struct sockaddr_storage ss;
	char host[INET6_ADDRSTRLEN + 1];
	const char *hs, *he, *ps;
	char *end;
	long port;

	if (addr_port == NULL)
		return -EINVAL;
	if (addr_port[0] == '[') {
		hs = addr_port + 1;
		he = strchr(hs, ']');
		if (he == NULL || he[1] != ':')
			return -EINVAL;
		ps = he + 2;
	} else {
		hs = addr_port;
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
	if (errno != 0 || *end != '\0' || port < 0 || port > 65535)
		return -EINVAL;

	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
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
