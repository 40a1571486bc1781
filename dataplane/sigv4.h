/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sigv4.h - AWS Signature Version 4 for S3 requests (header-based).
 *
 * Why our own signer rather than libcurl's CURLOPT_AWS_SIGV4 (curl 7.75+,
 * Debian 12 ships 7.88): curl signs with the wall clock and gives no way to
 * see or fix the date, so it cannot be checked against AWS's published
 * example vectors, and 7.88 canonicalises query strings in ways S3-compatible
 * stores disagree with (list continuation tokens hold '=', '/' and '+').
 * Signing is ~100 lines over OpenSSL's libcrypto (SHA-256, HMAC), and the
 * unit test pins it to the documented examples, so a wrong signature cannot
 * go unnoticed.
 *
 * Pure functions: 0 or -errno (-ENOBUFS when an output buffer is too small,
 * -EINVAL for misuse); outputs written only on success.
 */
#ifndef QV_DP_SIGV4_H
#define QV_DP_SIGV4_H

#include <stddef.h>

struct qv_sigv4_kv {
	const char *name;    /* headers: lowercase; query parameters: as sent, unencoded */
	const char *value;
};

/* SHA-256 of len bytes as 64 lowercase hex digits and a NUL. */
void qv_sha256_hex(const void *data, size_t len, char ret[65]);

/*
 * Percent-encodes s as SigV4 wants: unreserved characters (A-Z a-z 0-9 - . _ ~)
 * stay, every other byte becomes %XX (upper case); '/' stays when keep_slash
 * (object keys in a path).
 */
int qv_uri_encode(const char *s, int keep_slash, char *ret, size_t len);

/*
 * The canonical query string of n parameters: each name and value
 * encoded, sorted by encoded name (then value), joined with '&'. The same
 * string is a valid query for the request URL.
 */
int qv_sigv4_query(const struct qv_sigv4_kv *params, size_t n, char *ret, size_t len);

struct qv_sigv4_req {
	const char *method;          /* "GET", "HEAD" */
	const char *canon_uri;       /* encoded path, e.g. "/bucket/a%20b/model.onnx" */
	const char *canon_query;     /* from qv_sigv4_query, "" for none */
	const struct qv_sigv4_kv *headers;  /* lowercase names, sorted, no duplicates;
					     * must include host, x-amz-content-sha256, x-amz-date */
	size_t n_headers;
	const char *payload_hash;    /* hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
	const char *amz_date;        /* "20130524T000000Z" */
	const char *region;          /* "us-east-1" */
	const char *service;         /* "s3" */
	const char *key_id;
	const char *secret;
};

/*
 * The Authorization header's value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=..., Signature=...") into ret; ret_sig (65 bytes, may be
 * NULL) receives the bare signature. Header values are trimmed of
 * surrounding spaces as the canonical form requires.
 */
int qv_sigv4_sign(const struct qv_sigv4_req *q, char *ret, size_t len, char *ret_sig);

#endif /* QV_DP_SIGV4_H */
