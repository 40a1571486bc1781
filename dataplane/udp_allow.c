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

#include "qv_addr.h"
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
	/* A bind address: port 0 lets the kernel pick. */
	return qv_addr_parse(addr_port, 1, ret_ss, ret_len);
}
