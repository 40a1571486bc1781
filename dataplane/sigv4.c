/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sigv4.c - AWS Signature Version 4 (see sigv4.h for why it is ours).
 * Canonical request -> string to sign -> HMAC chain of the date, region,
 * service and "aws4_request" -> hex signature.
 */
#include "sigv4.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

void qv_sha256_hex(const void *data, size_t len, char ret[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	hex(md, 32, ret);
}

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
	unsigned int n = 32;

	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n);
}

int qv_uri_encode(const char *s, int keep_slash, char *ret, size_t len)
{
	static const char d[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			   (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
			   c == '~' || (keep_slash && c == '/');
		if (o + (keep ? 1 : 3) >= len)
			return -ENOBUFS;
		if (keep) {
			ret[o++] = (char)c;
		} else {
			ret[o++] = '%';
			ret[o++] = d[c >> 4];
			ret[o++] = d[c & 15];
		}
	}
	if (o >= len)
		return -ENOBUFS;
	ret[o] = '\0';
	return 0;
}

struct enc_kv {
	char *name, *value;
};

static int enc_cmp(const void *a, const void *b)
{
	const struct enc_kv *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

int qv_sigv4_query(const struct qv_sigv4_kv *params, size_t n, char *ret, size_t len)
{
	struct enc_kv *e;
	size_t o = 0;
	int rc = 0;

	if (n == 0) {
		if (len < 1)
			return -ENOBUFS;
		ret[0] = '\0';
		return 0;
	}
	e = calloc(n, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		size_t ln = strlen(params[i].name) * 3 + 1, lv = strlen(params[i].value) * 3 + 1;
		e[i].name = malloc(ln);
		e[i].value = malloc(lv);
		if (!e[i].name || !e[i].value)
			rc = -ENOMEM;
		else if (qv_uri_encode(params[i].name, 0, e[i].name, ln) < 0 ||
			 qv_uri_encode(params[i].value, 0, e[i].value, lv) < 0)
			rc = -EINVAL;
	}
	if (rc == 0) {
		qsort(e, n, sizeof(*e), enc_cmp);
		for (size_t i = 0; i < n; i++) {
			int w = snprintf(ret + o, len - o, "%s%s=%s", i ? "&" : "", e[i].name,
					 e[i].value);
			if (w < 0 || (size_t)w >= len - o) {
				rc = -ENOBUFS;
				break;
			}
			o += (size_t)w;
		}
	}
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].value);
	}
	free(e);
	return rc;
}

/* A growing string for the canonical request. */
struct sbuf {
	char *p;
	size_t n, cap;
	int oom;
};

__attribute__((format(printf, 2, 3)))
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		w = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (w < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)w < b->cap - b->n) {
			b->n += (size_t)w;
			return;
		}
		size_t cap = (b->cap + (size_t)w + 1) * 2;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

/* Value trimmed of leading and trailing spaces (runs inside are kept: S3 values have none). */
static void sb_trimmed(struct sbuf *b, const char *v)
{
	size_t n;

	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	sb_printf(b, "%.*s", (int)n, v);
}

int qv_sigv4_sign(const struct qv_sigv4_req *q, char *ret, size_t len, char *ret_sig)
{
	struct sbuf cr = { 0 }, sh = { 0 };
	char date[9], scope[256], cr_hash[65], sts[512], sig[65], key[256];
	unsigned char k1[32], k2[32], k3[32], k4[32], s[32];
	int w;

	if (!q->method || !q->canon_uri || !q->canon_query || !q->payload_hash || !q->amz_date ||
	    strlen(q->amz_date) != 16 || !q->region || !q->service || !q->key_id || !q->secret ||
	    (q->n_headers && !q->headers))
		return -EINVAL;
	for (size_t i = 1; i < q->n_headers; i++)
		if (strcmp(q->headers[i - 1].name, q->headers[i].name) >= 0)
			return -EINVAL;   /* unsorted or duplicate */
	memcpy(date, q->amz_date, 8);
	date[8] = '\0';
	w = snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date, q->region, q->service);
	if (w < 0 || (size_t)w >= sizeof(scope))
		return -EINVAL;

	sb_printf(&cr, "%s\n%s\n%s\n", q->method, q->canon_uri, q->canon_query);
	for (size_t i = 0; i < q->n_headers; i++) {
		sb_printf(&cr, "%s:", q->headers[i].name);
		sb_trimmed(&cr, q->headers[i].value);
		sb_printf(&cr, "\n");
		sb_printf(&sh, "%s%s", i ? ";" : "", q->headers[i].name);
	}
	sb_printf(&cr, "\n%s\n%s", sh.p ? sh.p : "", q->payload_hash);
	if (cr.oom || sh.oom) {
		free(cr.p);
		free(sh.p);
		return -ENOMEM;
	}
	qv_sha256_hex(cr.p, cr.n, cr_hash);
	free(cr.p);
	snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", q->amz_date, scope, cr_hash);

	w = snprintf(key, sizeof(key), "AWS4%s", q->secret);
	if (w < 0 || (size_t)w >= sizeof(key)) {
		free(sh.p);
		return -EINVAL;
	}
	hmac(key, (size_t)w, date, k1);
	hmac(k1, 32, q->region, k2);
	hmac(k2, 32, q->service, k3);
	hmac(k3, 32, "aws4_request", k4);
	hmac(k4, 32, sts, s);
	hex(s, 32, sig);
	OPENSSL_cleanse(key, sizeof(key));

	w = snprintf(ret, len, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		     q->key_id, scope, sh.p ? sh.p : "", sig);
	free(sh.p);
	if (w < 0 || (size_t)w >= len)
		return -ENOBUFS;
	if (ret_sig)
		memcpy(ret_sig, sig, 65);
	return 0;
}
