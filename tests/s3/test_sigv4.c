/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_sigv4: the SigV4 signer against the example signatures AWS
 * publishes for S3 ("Signature Calculations for the Authorization Header",
 * sig-v4-header-based-auth: GET Object with a Range, GET Bucket list
 * objects), the query and path encodings, and the S3 URL / key checks
 * that keep fetched files inside the cache.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3fetch.h"
#include "sigv4.h"

static int failures;

#define CHECK(c)                                                                  \
	do {                                                                      \
		if (!(c)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,    \
				__LINE__, #c);                                    \
			failures++;                                               \
		}                                                                 \
	} while (0)

static const char KEY_ID[] = "AKIAIOSFODNN7EXAMPLE";
static const char SECRET[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
static const char EMPTY[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static void aws_get_object(void)
{
	const struct qv_sigv4_kv h[] = {
		{ "host", "examplebucket.s3.amazonaws.com" },
		{ "range", "bytes=0-9" },
		{ "x-amz-content-sha256", EMPTY },
		{ "x-amz-date", "20130524T000000Z" },
	};
	struct qv_sigv4_req q = {
		.method = "GET", .canon_uri = "/test.txt", .canon_query = "", .headers = h,
		.n_headers = 4, .payload_hash = EMPTY, .amz_date = "20130524T000000Z",
		.region = "us-east-1", .service = "s3", .key_id = KEY_ID, .secret = SECRET,
	};
	char auth[512], sig[65];

	CHECK(qv_sigv4_sign(&q, auth, sizeof(auth), sig) == 0);
	CHECK(strcmp(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41") == 0);
	CHECK(strcmp(auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
			   "s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;"
			   "x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48"
			   "dd91039c6036bdb41") == 0);
	/* One byte of the secret changed: another signature. */
	q.secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ";
	CHECK(qv_sigv4_sign(&q, auth, sizeof(auth), sig) == 0);
	CHECK(strcmp(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41") != 0);
	/* Spaces around a value are not part of the canonical form. */
	const struct qv_sigv4_kv h2[] = {
		{ "host", "  examplebucket.s3.amazonaws.com " },
		{ "range", "bytes=0-9 " },
		{ "x-amz-content-sha256", EMPTY },
		{ "x-amz-date", " 20130524T000000Z" },
	};
	q.secret = SECRET;
	q.headers = h2;
	CHECK(qv_sigv4_sign(&q, auth, sizeof(auth), sig) == 0);
	CHECK(strcmp(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41") == 0);
	/* Unsorted headers are misuse. */
	const struct qv_sigv4_kv h3[] = { { "x-amz-date", "x" }, { "host", "h" } };
	q.headers = h3;
	q.n_headers = 2;
	CHECK(qv_sigv4_sign(&q, auth, sizeof(auth), sig) == -EINVAL);
	q.headers = h;
	q.n_headers = 4;
	CHECK(qv_sigv4_sign(&q, auth, 20, sig) == -ENOBUFS);
}

static void aws_list_objects(void)
{
	const struct qv_sigv4_kv params[] = { { "prefix", "J" }, { "max-keys", "2" } };
	const struct qv_sigv4_kv h[] = {
		{ "host", "examplebucket.s3.amazonaws.com" },
		{ "x-amz-content-sha256", EMPTY },
		{ "x-amz-date", "20130524T000000Z" },
	};
	char query[128], auth[512], sig[65];

	CHECK(qv_sigv4_query(params, 2, query, sizeof(query)) == 0);
	CHECK(strcmp(query, "max-keys=2&prefix=J") == 0);
	struct qv_sigv4_req q = {
		.method = "GET", .canon_uri = "/", .canon_query = query, .headers = h,
		.n_headers = 3, .payload_hash = EMPTY, .amz_date = "20130524T000000Z",
		.region = "us-east-1", .service = "s3", .key_id = KEY_ID, .secret = SECRET,
	};
	CHECK(qv_sigv4_sign(&q, auth, sizeof(auth), sig) == 0);
	CHECK(strcmp(sig, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7") == 0);
}

static void encoding(void)
{
	char b[256], h[65];
	const struct qv_sigv4_kv p[] = {
		{ "prefix", "models/a b/" }, { "continuation-token", "1/a+b=c~" }, { "list-type", "2" },
	};

	CHECK(qv_uri_encode("a b/c~d_e.f-g+h=*", 1, b, sizeof(b)) == 0);
	CHECK(strcmp(b, "a%20b/c~d_e.f-g%2Bh%3D%2A") == 0);
	CHECK(qv_uri_encode("a/b", 0, b, sizeof(b)) == 0);
	CHECK(strcmp(b, "a%2Fb") == 0);
	CHECK(qv_uri_encode("\xc3\xa9", 0, b, sizeof(b)) == 0);
	CHECK(strcmp(b, "%C3%A9") == 0);
	CHECK(qv_uri_encode("abcdef", 0, b, 4) == -ENOBUFS);
	CHECK(qv_sigv4_query(p, 3, b, sizeof(b)) == 0);
	CHECK(strcmp(b, "continuation-token=1%2Fa%2Bb%3Dc~&list-type=2&prefix=models%2Fa%20b%2F")
	      == 0);
	qv_sha256_hex("", 0, h);
	CHECK(strcmp(h, EMPTY) == 0);
	qv_sha256_hex("abc", 3, h);
	CHECK(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
}

static void urls_and_keys(void)
{
	char bk[64], pf[256];

	CHECK(qv_s3_is_url("s3://b/p"));
	CHECK(!qv_s3_is_url("/srv/models"));
	CHECK(qv_s3_parse_url("s3://my-bucket/models/repo/", bk, sizeof(bk), pf, sizeof(pf)) == 0);
	CHECK(strcmp(bk, "my-bucket") == 0 && strcmp(pf, "models/repo") == 0);
	CHECK(qv_s3_parse_url("s3://my-bucket", bk, sizeof(bk), pf, sizeof(pf)) == 0);
	CHECK(strcmp(bk, "my-bucket") == 0 && pf[0] == '\0');
	CHECK(qv_s3_parse_url("s3://b//x", bk, sizeof(bk), pf, sizeof(pf)) == 0);
	CHECK(strcmp(pf, "x") == 0);
	CHECK(qv_s3_parse_url("s3:///x", bk, sizeof(bk), pf, sizeof(pf)) == -EINVAL);
	CHECK(qv_s3_parse_url("s3://b/a/../x", bk, sizeof(bk), pf, sizeof(pf)) == -EINVAL);
	CHECK(qv_s3_parse_url("s3://b/a//x", bk, sizeof(bk), pf, sizeof(pf)) == -EINVAL);
	CHECK(qv_s3_parse_url("s3://b/./x", bk, sizeof(bk), pf, sizeof(pf)) == -EINVAL);
	CHECK(qv_s3_parse_url("s3://../x", bk, sizeof(bk), pf, sizeof(pf)) == -EINVAL);
	CHECK(qv_s3_parse_url("s3://b%2f/x", bk, sizeof(bk), pf, sizeof(pf)) == -EINVAL);
	CHECK(qv_s3_parse_url("http://b/x", bk, sizeof(bk), pf, sizeof(pf)) == -EINVAL);
	CHECK(qv_s3_key_safe("trade/1/model.onnx"));
	CHECK(qv_s3_key_safe("trade/config.json"));
	CHECK(!qv_s3_key_safe("../etc/passwd"));
	CHECK(!qv_s3_key_safe("trade/../../x"));
	CHECK(!qv_s3_key_safe("/abs"));
	CHECK(!qv_s3_key_safe("a//b"));
	CHECK(!qv_s3_key_safe("a/./b"));
	CHECK(!qv_s3_key_safe("a/b\nc"));
	CHECK(!qv_s3_key_safe(QV_S3_MANIFEST));
	CHECK(!qv_s3_key_safe(""));
}

int main(void)
{
	aws_get_object();
	aws_list_objects();
	encoding();
	urls_and_keys();
	if (failures) {
		fprintf(stderr, "%d checks failed\n", failures);
		return 1;
	}
	printf("ok sigv4: AWS example signatures, encodings, URL and key checks\n");
	return 0;
}
