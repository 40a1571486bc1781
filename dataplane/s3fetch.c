/* SPDX-License-Identifier: Apache-2.0 */
/*
 * s3fetch.c - an S3 prefix into a local cache directory (see s3fetch.h).
 *
 * HTTP through libcurl (Debian's libs3 predates SigV4), signed by sigv4.c.
 * ListObjectsV2 replies are parsed with libxml2 rather than expat: the
 * reply is small (1000 keys a page) and a tree we can walk by element name
 * is shorter and harder to get wrong than expat's callback state machine;
 * it is parsed with XML_PARSE_NONET and without entity substitution, so a
 * hostile reply cannot make us read files or the network.
 */
#include "s3fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "sigv4.h"

#define LIST_MAX_BYTES (16u << 20)   /* one ListObjectsV2 page; S3's are ~300 KiB */
#define MAX_OBJECTS 100000u

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return 0;
}

int qv_s3_is_url(const char *s)
{
	return s && strncmp(s, "s3://", 5) == 0;
}

/* Every '/'-separated component non-empty, not "." or "..", no control bytes. */
static int rel_path_ok(const char *p, size_t n)
{
	size_t start = 0;

	if (n == 0 || n >= PATH_MAX - 256)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && ((unsigned char)p[i] < 0x20 || p[i] == 0x7f))
			return 0;
		if (i == n || p[i] == '/') {
			size_t c = i - start;
			if (c == 0 || c > NAME_MAX || (c == 1 && p[start] == '.') ||
			    (c == 2 && p[start] == '.' && p[start + 1] == '.'))
				return 0;
			start = i + 1;
		}
	}
	return 1;
}

int qv_s3_key_safe(const char *rel)
{
	return rel && rel_path_ok(rel, strlen(rel)) && strcmp(rel, QV_S3_MANIFEST) != 0 &&
	       strncmp(rel, ".quiver-s3-", 11) != 0;
}

int qv_s3_parse_url(const char *url, char *ret_bucket, size_t blen, char *ret_prefix,
		    size_t plen)
{
	const char *b, *slash, *p;
	size_t bn, pn;

	if (!qv_s3_is_url(url))
		return -EINVAL;
	b = url + 5;
	slash = strchr(b, '/');
	bn = slash ? (size_t)(slash - b) : strlen(b);
	/* Bucket names: 3..63 of [a-z0-9.-] on AWS; stores differ, so also
	 * upper case and '_', but never anything that changes a path. */
	if (bn == 0 || bn > 63 || bn >= blen)
		return -EINVAL;
	for (size_t i = 0; i < bn; i++) {
		char c = b[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return -EINVAL;
	}
	if (b[0] == '.' || (bn == 2 && b[0] == '.' && b[1] == '.'))
		return -EINVAL;
	p = slash ? slash : b + bn;
	while (*p == '/')
		p++;
	pn = strlen(p);
	while (pn && p[pn - 1] == '/')
		pn--;
	if (pn >= plen || (pn && !rel_path_ok(p, pn)))
		return -EINVAL;
	memcpy(ret_bucket, b, bn);
	ret_bucket[bn] = '\0';
	memcpy(ret_prefix, p, pn);
	ret_prefix[pn] = '\0';
	return 0;
}

int qv_s3_default_cache(char *ret, size_t len)
{
	const char *e = getenv("QUIVER_S3_CACHE"), *x = getenv("XDG_CACHE_HOME"),
		   *h = getenv("HOME");
	int w;

	if (e && e[0])
		w = snprintf(ret, len, "%s", e);
	else if (x && x[0])
		w = snprintf(ret, len, "%s/quiver/s3", x);
	else if (h && h[0])
		w = snprintf(ret, len, "%s/.cache/quiver/s3", h);
	else
		return -ENOENT;
	return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
}

/* ---- credentials ---- */

struct creds {
	char key_id[256];
	char secret[256];
	char token[4096];
	char region[64];
	char source[320];     /* where they came from, for error messages */
};

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* The profile's keys from an INI file of [profile] sections and key = value lines. */
static int creds_from_file(const char *path, const char *profile, struct creds *c)
{
	FILE *f = fopen(path, "re");
	char line[4608];
	int in = 0, found = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *l = trim(line), *eq;
		if (l[0] == '#' || l[0] == ';' || !l[0])
			continue;
		if (l[0] == '[') {
			char *end = strchr(l, ']');
			if (end)
				*end = '\0';
			in = strcmp(trim(l + 1), profile) == 0;
			found |= in;
			continue;
		}
		if (!in || !(eq = strchr(l, '=')))
			continue;
		*eq = '\0';
		char *k = trim(l), *v = trim(eq + 1);
		if (strcmp(k, "aws_access_key_id") == 0)
			snprintf(c->key_id, sizeof(c->key_id), "%s", v);
		else if (strcmp(k, "aws_secret_access_key") == 0)
			snprintf(c->secret, sizeof(c->secret), "%s", v);
		else if (strcmp(k, "aws_session_token") == 0)
			snprintf(c->token, sizeof(c->token), "%s", v);
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

static int creds_load(struct creds *c, char *err, size_t errlen)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
	const char *tok = getenv("AWS_SESSION_TOKEN"), *reg = getenv("AWS_REGION");
	const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE"), *prof = getenv("AWS_PROFILE");
	char path[PATH_MAX];

	memset(c, 0, sizeof(*c));
	if (!reg || !reg[0])
		reg = getenv("AWS_DEFAULT_REGION");
	snprintf(c->region, sizeof(c->region), "%s", reg && reg[0] ? reg : "us-east-1");
	if (id && id[0] && sk && sk[0]) {
		snprintf(c->key_id, sizeof(c->key_id), "%s", id);
		snprintf(c->secret, sizeof(c->secret), "%s", sk);
		snprintf(c->token, sizeof(c->token), "%s", tok ? tok : "");
		snprintf(c->source, sizeof(c->source), "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
		return 0;
	}
	if (!prof || !prof[0])
		prof = "default";
	if (file && file[0]) {
		snprintf(path, sizeof(path), "%s", file);
	} else {
		const char *h = getenv("HOME");
		snprintf(path, sizeof(path), "%s/.aws/credentials", h ? h : "");
	}
	int rc = creds_from_file(path, prof, c);
	if (rc < 0 || !c->key_id[0] || !c->secret[0]) {
		fail(err, errlen,
		     "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give "
		     "profile '%s' aws_access_key_id and aws_secret_access_key in %s (%s)",
		     prof, path, rc < 0 ? strerror(-rc) : "keys missing");
		return -EACCES;
	}
	snprintf(c->source, sizeof(c->source), "profile '%.64s' of %.240s", prof, path);
	return 0;
}

/* ---- HTTP ---- */

struct endpoint {
	char base[512];    /* scheme://authority, no trailing slash */
	char host[256];    /* authority as sent in Host */
};

static int endpoint_parse(const char *url, const char *region, struct endpoint *e)
{
	const char *a, *end;

	if (!url || !url[0]) {
		snprintf(e->base, sizeof(e->base), "https://s3.%s.amazonaws.com", region);
		snprintf(e->host, sizeof(e->host), "s3.%s.amazonaws.com", region);
		return 0;
	}
	if (strncmp(url, "http://", 7) == 0)
		a = url + 7;
	else if (strncmp(url, "https://", 8) == 0)
		a = url + 8;
	else
		return -EINVAL;
	end = a + strcspn(a, "/?#");
	if (end == a || *end == '?' || *end == '#' || (*end == '/' && end[1]) ||
	    (size_t)(end - url) >= sizeof(e->base) || (size_t)(end - a) >= sizeof(e->host))
		return -EINVAL;   /* a path on the endpoint is not supported */
	snprintf(e->base, sizeof(e->base), "%.*s", (int)(end - url), url);
	snprintf(e->host, sizeof(e->host), "%.*s", (int)(end - a), a);
	return 0;
}

struct ctx {
	CURL *curl;
	struct creds cr;
	struct endpoint ep;
	const char *url;      /* the s3:// URL, for messages */
	char *err;
	size_t errlen;
};

struct membuf {
	char *p;
	size_t n, cap, max;
	int too_big;
};

static size_t mem_write(char *data, size_t sz, size_t nm, void *user)
{
	struct membuf *b = user;
	size_t n = sz * nm;

	if (b->n + n + 1 > b->max) {
		b->too_big = 1;
		return 0;
	}
	if (b->n + n + 1 > b->cap) {
		size_t cap = (b->n + n + 1) * 2;
		char *np = realloc(b->p, cap < b->max ? cap : b->max);
		if (!np)
			return 0;
		b->p = np;
		b->cap = cap < b->max ? cap : b->max;
	}
	memcpy(b->p + b->n, data, n);
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

struct filesink {
	int fd;
	uint64_t n;
	EVP_MD_CTX *md5;
	struct membuf errbody;   /* the body of a non-2xx answer, kept for its message */
	long status;
	CURL *curl;
	int io_errno;
};

static size_t file_write(char *data, size_t sz, size_t nm, void *user)
{
	struct filesink *s = user;
	size_t n = sz * nm, off = 0;

	if (s->status == 0)
		curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
	if (s->status < 200 || s->status > 299)
		return mem_write(data, sz, nm, &s->errbody);
	while (off < n) {
		ssize_t w = write(s->fd, data + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			s->io_errno = w < 0 ? errno : EIO;
			return 0;
		}
		off += (size_t)w;
	}
	EVP_DigestUpdate(s->md5, data, n);
	s->n += n;
	return n;
}

static void amz_now(char date[17])
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(date, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static const char EMPTY_SHA256[] =
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* Sets the URL and the signed headers of a GET of canon_uri?canon_query. */
static int prepare(struct ctx *x, const char *canon_uri, const char *canon_query,
		   struct curl_slist **ret_hdrs)
{
	char date[17], auth[1024], url[8192], line[4352];
	struct sigv4_hdrs {
		struct qv_sigv4_kv kv[4];
	} h;
	size_t nh = 0;
	struct curl_slist *sl = NULL, *t;
	int rc;

	amz_now(date);
	h.kv[nh++] = (struct qv_sigv4_kv){ "host", x->ep.host };
	h.kv[nh++] = (struct qv_sigv4_kv){ "x-amz-content-sha256", EMPTY_SHA256 };
	h.kv[nh++] = (struct qv_sigv4_kv){ "x-amz-date", date };
	if (x->cr.token[0])
		h.kv[nh++] = (struct qv_sigv4_kv){ "x-amz-security-token", x->cr.token };
	struct qv_sigv4_req q = {
		.method = "GET", .canon_uri = canon_uri, .canon_query = canon_query,
		.headers = h.kv, .n_headers = nh, .payload_hash = EMPTY_SHA256,
		.amz_date = date, .region = x->cr.region, .service = "s3",
		.key_id = x->cr.key_id, .secret = x->cr.secret,
	};
	rc = qv_sigv4_sign(&q, auth, sizeof(auth), NULL);
	if (rc < 0)
		return rc;
	rc = snprintf(url, sizeof(url), "%s%s%s%s", x->ep.base, canon_uri,
		      canon_query[0] ? "?" : "", canon_query);
	if (rc < 0 || (size_t)rc >= sizeof(url))
		return -ENAMETOOLONG;
	for (size_t i = 0; i < nh; i++) {
		snprintf(line, sizeof(line), "%s%s: %s", i == 0 ? "Host" : "", i == 0 ? "" :
			 h.kv[i].name, h.kv[i].value);
		t = curl_slist_append(sl, line);
		if (!t)
			goto oom;
		sl = t;
	}
	snprintf(line, sizeof(line), "Authorization: %s", auth);
	if (!(t = curl_slist_append(sl, line)))
		goto oom;
	sl = t;
	curl_easy_reset(x->curl);
	curl_easy_setopt(x->curl, CURLOPT_URL, url);
	curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, sl);
	curl_easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	/* A store that stops sending for 30 s is treated as gone. */
	curl_easy_setopt(x->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(x->curl, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(x->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	*ret_hdrs = sl;
	return 0;
oom:
	curl_slist_free_all(sl);
	return -ENOMEM;
}

/* Text of the first element called name below n, or NULL (free with xmlFree). */
static xmlChar *child_text(xmlNode *n, const char *name)
{
	for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
			return xmlNodeGetContent(c);
	return NULL;
}

/* The store's <Error><Code>..</Code><Message>..</Message></Error> as a message and an errno. */
static int http_error(struct ctx *x, const char *what, const char *obj, long status,
		      const char *body, size_t blen)
{
	char code[128] = "", msg[512] = "";
	const char *hint = "";
	int rc;

	if (body && blen) {
		xmlDoc *doc = xmlReadMemory(body, (int)blen, NULL, NULL,
					   XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
		xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
		if (root && strcmp((const char *)root->name, "Error") == 0) {
			xmlChar *c = child_text(root, "Code"), *m = child_text(root, "Message");
			snprintf(code, sizeof(code), "%s", c ? (const char *)c : "");
			snprintf(msg, sizeof(msg), "%s", m ? (const char *)m : "");
			xmlFree(c);
			xmlFree(m);
		}
		xmlFreeDoc(doc);
	}
	if (status == 403 || status == 401) {
		rc = -EACCES;
		if (strcmp(code, "SignatureDoesNotMatch") == 0)
			hint = " (check the secret access key";
		else if (strcmp(code, "InvalidAccessKeyId") == 0)
			hint = " (check the access key id";
		else
			hint = " (check the credentials and the bucket's policy";
	} else if (status == 404) {
		rc = -ENOENT;
	} else {
		rc = -EIO;
	}
	fail(x->err, x->errlen, "%s: %s%s%s: HTTP %ld%s%s%s%s%s%s%s", x->url, what,
	     obj[0] ? " " : "", obj, status,
	     code[0] ? " " : "", code, msg[0] ? ": " : "", msg, hint,
	     hint[0] ? " from " : "", hint[0] ? x->cr.source : "");
	if (hint[0]) {
		size_t n = strlen(x->err);
		if (n + 1 < x->errlen)
			snprintf(x->err + n, x->errlen - n, ")");
	}
	return rc;
}

struct object {
	char *rel;          /* key below the prefix */
	uint64_t size;
	char etag[80];      /* without quotes */
	int fresh;          /* the cached copy is current */
};

struct objlist {
	struct object *v;
	size_t n, cap;
};

static void objlist_free(struct objlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].rel);
	free(l->v);
}

/* One page of ListObjectsV2 into l; *ret_next gets the continuation token ("" at the end). */
static int list_page(struct ctx *x, const char *bucket, const char *prefix, const char *token,
		     struct objlist *l, char *ret_next, size_t next_len)
{
	char pfx[1100], query[4096], uri[256];
	struct qv_sigv4_kv params[3];
	size_t np = 0, plen;
	struct curl_slist *hdrs = NULL;
	struct membuf body = { .max = LIST_MAX_BYTES };
	long status = 0;
	CURLcode cc;
	int rc;

	snprintf(pfx, sizeof(pfx), "%s%s", prefix, prefix[0] ? "/" : "");
	plen = strlen(pfx);
	params[np++] = (struct qv_sigv4_kv){ "list-type", "2" };
	params[np++] = (struct qv_sigv4_kv){ "prefix", pfx };
	if (token[0])
		params[np++] = (struct qv_sigv4_kv){ "continuation-token", token };
	rc = qv_sigv4_query(params, np, query, sizeof(query));
	if (rc == 0)
		rc = qv_uri_encode(bucket, 0, uri + 1, sizeof(uri) - 1);
	if (rc < 0) {
		fail(x->err, x->errlen, "%s: ListObjectsV2: request too long", x->url);
		return -EINVAL;
	}
	uri[0] = '/';
	rc = prepare(x, uri, query, &hdrs);
	if (rc < 0) {
		fail(x->err, x->errlen, "%s: ListObjectsV2: %s", x->url, strerror(-rc));
		return rc;
	}
	curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, mem_write);
	curl_easy_setopt(x->curl, CURLOPT_WRITEDATA, &body);
	cc = curl_easy_perform(x->curl);
	curl_slist_free_all(hdrs);
	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK) {
		fail(x->err, x->errlen, "%s: ListObjectsV2 at %s: %s", x->url, x->ep.base,
		     body.too_big ? "reply too large" : curl_easy_strerror(cc));
		free(body.p);
		return -EIO;
	}
	if (status != 200) {
		rc = http_error(x, "ListObjectsV2", "", status, body.p, body.n);
		free(body.p);
		return rc;
	}

	xmlDoc *doc = xmlReadMemory(body.p ? body.p : "", (int)body.n, NULL, NULL,
				   XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	free(body.p);
	if (!root || strcmp((const char *)root->name, "ListBucketResult") != 0) {
		xmlFreeDoc(doc);
		fail(x->err, x->errlen, "%s: ListObjectsV2: the reply is not a ListBucketResult",
		     x->url);
		return -EPROTO;
	}
	rc = 0;
	for (xmlNode *c = root->children; c && rc == 0; c = c->next) {
		if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "Contents") != 0)
			continue;
		xmlChar *key = child_text(c, "Key"), *size = child_text(c, "Size"),
			*etag = child_text(c, "ETag");
		const char *k = (const char *)key, *e = (const char *)etag;
		char *end = NULL;
		unsigned long long sz = size ? strtoull((const char *)size, &end, 10) : 0;

		if (!key || !k[0] || !size || !end || *end || strncmp(k, pfx, plen) != 0) {
			fail(x->err, x->errlen, "%s: ListObjectsV2: malformed <Contents> (key '%.200s')",
			     x->url, k ? k : "?");
			rc = -EPROTO;
		} else if (k[strlen(k) - 1] == '/' && sz == 0) {
			/* a "folder" marker some tools create: nothing to fetch */
		} else if (!qv_s3_key_safe(k + plen)) {
			fail(x->err, x->errlen,
			     "%s: object key '%.300s' is not a safe relative path (empty, '.' or '..' "
			     "components, control characters, or a name reserved for the cache)",
			     x->url, k);
			rc = -EINVAL;
		} else if (l->n >= MAX_OBJECTS) {
			fail(x->err, x->errlen, "%s: more than %u objects", x->url, MAX_OBJECTS);
			rc = -E2BIG;
		} else {
			if (l->n == l->cap) {
				size_t cap = l->cap ? l->cap * 2 : 64;
				struct object *nv = realloc(l->v, cap * sizeof(*nv));
				if (!nv) {
					rc = -ENOMEM;
					goto next;
				}
				l->v = nv;
				l->cap = cap;
			}
			struct object *o = &l->v[l->n];
			memset(o, 0, sizeof(*o));
			o->rel = strdup(k + plen);
			if (!o->rel) {
				rc = -ENOMEM;
				goto next;
			}
			o->size = sz;
			if (e) {
				while (*e == '"')
					e++;
				snprintf(o->etag, sizeof(o->etag), "%s", e);
				size_t n = strlen(o->etag);
				while (n && o->etag[n - 1] == '"')
					o->etag[--n] = '\0';
				for (char *p = o->etag; *p; p++)
					if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
						*p = '_';
			}
			l->n++;
		}
next:
		xmlFree(key);
		xmlFree(size);
		xmlFree(etag);
	}
	if (rc == 0) {
		xmlChar *trunc = child_text(root, "IsTruncated"), *nt = child_text(root,
						"NextContinuationToken");
		ret_next[0] = '\0';
		if (trunc && strcmp((const char *)trunc, "true") == 0) {
			if (!nt || !nt[0] || strlen((const char *)nt) >= next_len) {
				fail(x->err, x->errlen,
				     "%s: ListObjectsV2: truncated without a usable NextContinuationToken",
				     x->url);
				rc = -EPROTO;
			} else {
				snprintf(ret_next, next_len, "%s", (const char *)nt);
			}
		}
		xmlFree(trunc);
		xmlFree(nt);
	}
	xmlFreeDoc(doc);
	return rc;
}

/* GetObject bucket/prefix/rel into path (created, must not exist), checked by size and ETag. */
static int get_object(struct ctx *x, const char *bucket, const char *prefix,
		      const struct object *o, const char *path)
{
	char key[PATH_MAX + 1200], uri[3 * (PATH_MAX + 1200)], objname[PATH_MAX + 1300];
	struct curl_slist *hdrs = NULL;
	struct filesink s = { .errbody = { .max = 64 << 10 } };
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdn = 0;
	CURLcode cc;
	int rc;

	snprintf(key, sizeof(key), "%s/%s%s%s", bucket, prefix, prefix[0] ? "/" : "", o->rel);
	snprintf(objname, sizeof(objname), "s3://%s", key);
	uri[0] = '/';
	rc = qv_uri_encode(key, 1, uri + 1, sizeof(uri) - 1);
	if (rc == 0)
		rc = prepare(x, uri, "", &hdrs);
	if (rc < 0) {
		fail(x->err, x->errlen, "%s: GetObject %s: %s", x->url, objname, strerror(-rc));
		return rc;
	}
	s.fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (s.fd < 0) {
		rc = -errno;
		curl_slist_free_all(hdrs);
		fail(x->err, x->errlen, "%s: %s: %s", x->url, path, strerror(-rc));
		return rc;
	}
	s.md5 = EVP_MD_CTX_new();
	s.curl = x->curl;
	if (!s.md5 || !EVP_DigestInit_ex(s.md5, EVP_md5(), NULL)) {
		rc = -ENOMEM;
		fail(x->err, x->errlen, "%s: MD5: out of memory", x->url);
		goto out;
	}
	curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, file_write);
	curl_easy_setopt(x->curl, CURLOPT_WRITEDATA, &s);
	cc = curl_easy_perform(x->curl);
	if (s.status == 0)
		curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &s.status);
	if (s.io_errno) {
		rc = -s.io_errno;
		fail(x->err, x->errlen, "%s: writing %s: %s", x->url, path, strerror(s.io_errno));
		goto out;
	}
	if (s.status && (s.status < 200 || s.status > 299)) {
		rc = http_error(x, "GetObject", objname, s.status, s.errbody.p, s.errbody.n);
		goto out;
	}
	if (cc != CURLE_OK) {
		rc = -EIO;
		fail(x->err, x->errlen, "%s: GetObject %s: %s after %llu of %llu bytes", x->url,
		     objname, curl_easy_strerror(cc), (unsigned long long)s.n,
		     (unsigned long long)o->size);
		goto out;
	}
	if (s.n != o->size) {
		rc = -EIO;
		fail(x->err, x->errlen, "%s: GetObject %s: got %llu bytes, the listing says %llu",
		     x->url, objname, (unsigned long long)s.n, (unsigned long long)o->size);
		goto out;
	}
	/* A single-part upload's ETag is the MD5 of its bytes (32 hex digits);
	 * multipart ("...-N") and encrypted objects' are not, so only size counts. */
	EVP_DigestFinal_ex(s.md5, md, &mdn);
	if (strlen(o->etag) == 32 && strspn(o->etag, "0123456789abcdef") == 32) {
		char got[33];
		for (unsigned i = 0; i < 16; i++)
			snprintf(got + 2 * i, 3, "%02x", md[i]);
		if (strcmp(got, o->etag) != 0) {
			rc = -EIO;
			fail(x->err, x->errlen, "%s: GetObject %s: content MD5 %s is not its ETag %s",
			     x->url, objname, got, o->etag);
			goto out;
		}
	}
	rc = 0;
out:
	EVP_MD_CTX_free(s.md5);
	free(s.errbody.p);
	curl_slist_free_all(hdrs);
	if (close(s.fd) < 0 && rc == 0) {
		rc = -errno;
		fail(x->err, x->errlen, "%s: closing %s: %s", x->url, path, strerror(-rc));
	}
	return rc;
}

/* ---- the local tree ---- */

static int mkdir_p(const char *path, size_t upto)
{
	char p[PATH_MAX];

	if (upto >= sizeof(p))
		return -ENAMETOOLONG;
	memcpy(p, path, upto);
	p[upto] = '\0';
	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, 0755) < 0 && errno != EEXIST)
				return -errno;
			*s = c;
			if (!c)
				break;
		}
	}
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	if (flag == FTW_DP)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int obj_cmp(const void *a, const void *b)
{
	return strcmp(((const struct object *)a)->rel, ((const struct object *)b)->rel);
}

/*
 * Marks the objects whose cached copy in dir is current (manifest + file
 * size). l is sorted by rel (bsearch), so this is n log n.
 */
static unsigned mark_fresh(const char *dir, struct objlist *l)
{
	char path[PATH_MAX + 64], line[PATH_MAX + 200];
	unsigned fresh = 0;
	FILE *f;

	if (snprintf(path, sizeof(path), "%.*s/%s", PATH_MAX - 1, dir, QV_S3_MANIFEST) < 0)
		return 0;
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(line, sizeof(line), f) || strcmp(line, "quiver-s3-manifest 1\n") != 0) {
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long long sz;
		char etag[80];
		int off = 0;
		size_t n = strlen(line);
		if (n && line[n - 1] == '\n')
			line[--n] = '\0';
		if (sscanf(line, "%llu %79s %n", &sz, etag, &off) != 2 || off <= 0)
			continue;
		struct object key = { .rel = line + off }, *o;
		struct stat st;
		char fp[2 * PATH_MAX];

		o = bsearch(&key, l->v, l->n, sizeof(*o), obj_cmp);
		if (!o || o->fresh)
			continue;
		snprintf(fp, sizeof(fp), "%s/%s", dir, o->rel);
		if (o->size == sz && strcmp(o->etag[0] ? o->etag : "-", etag) == 0 &&
		    lstat(fp, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == sz) {
			o->fresh = 1;
			fresh++;
		}
	}
	fclose(f);
	return fresh;
}

static int write_manifest(const char *dir, const struct objlist *l)
{
	char path[PATH_MAX + 64];
	FILE *f;
	int rc = 0;

	if (snprintf(path, sizeof(path), "%.*s/%s", PATH_MAX - 1, dir, QV_S3_MANIFEST) < 0)
		return -EINVAL;
	f = fopen(path, "wxe");
	if (!f)
		return -errno;
	fprintf(f, "quiver-s3-manifest 1\n");
	for (size_t i = 0; i < l->n; i++)
		fprintf(f, "%llu %s %s\n", (unsigned long long)l->v[i].size,
			l->v[i].etag[0] ? l->v[i].etag : "-", l->v[i].rel);
	if (fflush(f) != 0 || ferror(f))
		rc = -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* Is the cached tree in dir exactly the listing (no object missing or stale)? */
static int all_fresh(const struct objlist *l, unsigned fresh)
{
	return fresh == l->n;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	xmlInitParser();
}

int qv_s3_fetch(const char *url, const char *cache_dir, const struct qv_s3_opts *opts,
		char *ret_dir, size_t dir_len, struct qv_s3_stats *stats, char *err,
		size_t errlen)
{
	char bucket[64], prefix[1024], dir[PATH_MAX], stage[PATH_MAX + 64], next[1024] = "";
	struct objlist l = { 0 };
	struct ctx x = { .url = url, .err = err, .errlen = errlen };
	struct qv_s3_stats st = { 0 };
	const char *ep;
	unsigned fresh;
	int rc, w, staged = 0;
	struct stat sb;

	if (qv_s3_parse_url(url, bucket, sizeof(bucket), prefix, sizeof(prefix)) < 0) {
		fail(err, errlen,
		     "%.300s: not an S3 URL s3://BUCKET/PREFIX (bucket of [a-z0-9.-_], prefix "
		     "without empty, '.' or '..' components)", url);
		return -EINVAL;
	}
	if (!cache_dir || !cache_dir[0]) {
		fail(err, errlen, "%s: no cache directory", url);
		return -EINVAL;
	}
	w = snprintf(dir, sizeof(dir), "%s/%s%s%s", cache_dir, bucket, prefix[0] ? "/" : "",
		     prefix);
	if (w < 0 || (size_t)w >= sizeof(dir) - 300 || (size_t)w >= dir_len) {
		fail(err, errlen, "%s: cache path too long", url);
		return -ENAMETOOLONG;
	}
	pthread_once(&curl_once, curl_init_once);
	rc = creds_load(&x.cr, err, errlen);
	if (rc < 0)
		return rc;
	ep = opts && opts->endpoint && opts->endpoint[0] ? opts->endpoint :
							   getenv("AWS_ENDPOINT_URL");
	if (endpoint_parse(ep, x.cr.region, &x.ep) < 0) {
		fail(err, errlen, "%s: bad S3 endpoint '%.200s' (http[s]://HOST[:PORT])", url, ep);
		rc = -EINVAL;
		goto out;
	}
	x.curl = curl_easy_init();
	if (!x.curl) {
		fail(err, errlen, "%s: libcurl: cannot make a handle", url);
		rc = -ENOMEM;
		goto out;
	}
	do {
		char tok[1024];
		snprintf(tok, sizeof(tok), "%s", next);
		rc = list_page(&x, bucket, prefix, tok, &l, next, sizeof(next));
	} while (rc == 0 && next[0]);
	if (rc < 0)
		goto out;
	if (l.n == 0) {
		fail(err, errlen, "%s: no objects under this prefix at %s (bucket %s)", url,
		     x.ep.base, bucket);
		rc = -ENOENT;
		goto out;
	}
	st.objects = (unsigned)l.n;
	qsort(l.v, l.n, sizeof(*l.v), obj_cmp);
	for (size_t i = 1; i < l.n; i++)
		if (strcmp(l.v[i - 1].rel, l.v[i].rel) == 0) {
			fail(err, errlen, "%s: ListObjectsV2 listed '%.300s' twice", url, l.v[i].rel);
			rc = -EPROTO;
			goto out;
		}
	fresh = stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) ? mark_fresh(dir, &l) : 0;
	if (all_fresh(&l, fresh)) {
		rc = 0;
		goto out;
	}

	/* Staging beside the target (same file system, so the renames are atomic). */
	rc = mkdir_p(dir, (size_t)(strrchr(dir, '/') - dir));
	if (rc < 0) {
		fail(err, errlen, "%s: creating the cache %s: %s", url, dir, strerror(-rc));
		goto out;
	}
	snprintf(stage, sizeof(stage), "%.*s/.quiver-s3-fetch.XXXXXX",
		 (int)(strrchr(dir, '/') - dir), dir);
	if (!mkdtemp(stage)) {
		rc = -errno;
		fail(err, errlen, "%s: staging directory %s: %s", url, stage, strerror(-rc));
		goto out;
	}
	staged = 1;
	(void)chmod(stage, 0755);   /* mkdtemp made it 0700; it becomes the tree */
	for (size_t i = 0; i < l.n; i++) {
		struct object *o = &l.v[i];
		char dst[2 * PATH_MAX], src[2 * PATH_MAX];
		snprintf(dst, sizeof(dst), "%s/%s", stage, o->rel);
		const char *slash = strrchr(dst, '/');
		rc = mkdir_p(dst, (size_t)(slash - dst));
		if (rc < 0) {
			fail(err, errlen, "%s: %s: %s", url, dst, strerror(-rc));
			goto out;
		}
		if (o->fresh) {
			snprintf(src, sizeof(src), "%s/%s", dir, o->rel);
			if (link(src, dst) == 0)
				continue;
		}
		rc = get_object(&x, bucket, prefix, o, dst);
		if (rc < 0)
			goto out;
		st.fetched++;
		st.bytes += o->size;
	}
	rc = write_manifest(stage, &l);
	if (rc < 0) {
		fail(err, errlen, "%s: writing the manifest in %s: %s", url, stage, strerror(-rc));
		goto out;
	}
	/* The complete tree takes the target's place in one step. */
	if (renameat2(AT_FDCWD, stage, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
		/* stage now holds the old tree */
	} else if (errno == ENOENT && rename(stage, dir) == 0) {
		staged = 0;
	} else {
		rc = -errno;
		fail(err, errlen, "%s: putting %s in place: %s", url, dir, strerror(-rc));
		goto out;
	}
	rc = 0;
out:
	if (staged)
		rm_rf(stage);
	objlist_free(&l);
	if (x.curl)
		curl_easy_cleanup(x.curl);
	OPENSSL_cleanse(&x.cr, sizeof(x.cr));
	if (rc == 0) {
		snprintf(ret_dir, dir_len, "%s", dir);
		if (stats)
			*stats = st;
	}
	return rc;
}
