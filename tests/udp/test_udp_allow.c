/* SPDX-License-Identifier: Apache-2.0 */
/* test_udp_allow.c - CIDR parsing and matching of the UDP allow-list, and
 * the ADDR:PORT parser. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include "udp.h"
#include "udp_test_util.h"

static bool check4(const struct qv_allow_list *l, const char *ip)
{
	struct sockaddr_in a = { .sin_family = AF_INET };

	CHECK(inet_pton(AF_INET, ip, &a.sin_addr) == 1);
	return qv_allow_check(l, (struct sockaddr *)&a, sizeof(a));
}

static bool check6(const struct qv_allow_list *l, const char *ip)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 };

	CHECK(inet_pton(AF_INET6, ip, &a.sin6_addr) == 1);
	return qv_allow_check(l, (struct sockaddr *)&a, sizeof(a));
}

int main(void)
{
	struct qv_allow_list l;
	struct sockaddr_storage ss;
	socklen_t sl;

	memset(&l, 0, sizeof(l));
	/* empty list: everything allowed */
	CHECK(check4(&l, "10.1.2.3") && check6(&l, "2001:db8::1"));
	CHECK(qv_allow_check(NULL, NULL, 0));

	CHECK(qv_allow_add(&l, "10.0.0.0/8") == 0);
	CHECK(qv_allow_add(&l, "192.168.1.7") == 0);
	CHECK(qv_allow_add(&l, "172.16.0.0/12") == 0);
	CHECK(qv_allow_add(&l, "2001:db8::/32") == 0);
	CHECK(l.n == 4);

	CHECK(check4(&l, "10.255.1.1"));
	CHECK(!check4(&l, "11.0.0.1"));
	CHECK(check4(&l, "192.168.1.7"));
	CHECK(!check4(&l, "192.168.1.8"));
	CHECK(check4(&l, "172.31.255.255") && !check4(&l, "172.32.0.0"));
	CHECK(check4(&l, "172.16.0.0") && !check4(&l, "172.15.255.255"));
	CHECK(check6(&l, "2001:db8:ffff::1") && !check6(&l, "2001:db9::1"));
	CHECK(check6(&l, "::ffff:10.3.3.3"));   /* v4-mapped matches v4 entries */
	CHECK(!check6(&l, "::ffff:11.3.3.3"));
	CHECK(!check4(&l, "127.0.0.1"));
	/* a sockaddr too short for its family is refused */
	struct sockaddr_in a = { .sin_family = AF_INET };
	CHECK(!qv_allow_check(&l, (struct sockaddr *)&a, 4));

	/* /0 allows all of a family; /32 exactly one */
	struct qv_allow_list m;
	memset(&m, 0, sizeof(m));
	CHECK(qv_allow_add(&m, "0.0.0.0/0") == 0);
	CHECK(check4(&m, "1.2.3.4") && !check6(&m, "2001:db8::1"));
	memset(&m, 0, sizeof(m));
	CHECK(qv_allow_add(&m, "127.0.0.2/32") == 0);
	CHECK(check4(&m, "127.0.0.2") && !check4(&m, "127.0.0.1"));
	CHECK(qv_allow_add(&m, "10.0.0.1/31") == 0);
	CHECK(check4(&m, "10.0.0.0") && check4(&m, "10.0.0.1") && !check4(&m, "10.0.0.2"));

	/* malformed */
	const char *bad[] = { "", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8x",
			      "10.0.0", "hello", "::1/129", "10.0.0.0/ 8", "1.2.3.4/08a" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(qv_allow_add(&m, bad[i]) == -EINVAL);
	CHECK(qv_allow_add(&m, NULL) == -EINVAL);
	/* full */
	memset(&m, 0, sizeof(m));
	for (int i = 0; i < QV_ALLOW_MAX; i++)
		CHECK(qv_allow_add(&m, "10.0.0.0/8") == 0);
	CHECK(qv_allow_add(&m, "10.0.0.0/8") == -ENOSPC);

	/* ADDR:PORT */
	CHECK(qv_udp_parse_addr("127.0.0.1:9000", &ss, &sl) == 0);
	CHECK(ss.ss_family == AF_INET && sl == sizeof(struct sockaddr_in));
	CHECK(ntohs(((struct sockaddr_in *)&ss)->sin_port) == 9000);
	CHECK(qv_udp_parse_addr("[::1]:53", &ss, &sl) == 0 && ss.ss_family == AF_INET6);
	CHECK(qv_udp_parse_addr("0.0.0.0:0", &ss, &sl) == 0);
	const char *badap[] = { "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536", "[::1]80",
				"::1:80", "host:80", "1.2.3.4:80x" };
	for (size_t i = 0; i < sizeof(badap) / sizeof(badap[0]); i++)
		CHECK(qv_udp_parse_addr(badap[i], &ss, &sl) == -EINVAL);

	printf("udp allow: ok\n");
	return 0;
}
