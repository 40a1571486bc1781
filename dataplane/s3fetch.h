/* SPDX-License-Identifier: Apache-2.0 */
/*
 * s3fetch.h - copy a prefix of an S3 bucket (or an S3-compatible store) into
 * a local cache directory, so the rest of quiverd reads a plain repository.
 *
 *   s3://BUCKET/PREFIX  ->  CACHE/BUCKET/PREFIX/<key below PREFIX>
 *
 * Contract
 *  - Slow path only (the control thread, before anything is published):
 *    blocking HTTP through libcurl, signed with SigV4 (sigv4.h).
 *  - Cached by size and ETag: CACHE/BUCKET/PREFIX/.quiver-s3-manifest
 *    lists every object's size and ETag as last fetched; an object whose
 *    listed size and ETag match the manifest and whose file has that size is
 *    not fetched again, so a restart costs one listing.
 *  - All or nothing: changed objects are downloaded into a staging
 *    directory beside the target (unchanged ones hard-linked into it), each
 *    checked against its listed size and, for single-part uploads, its ETag
 *    (the MD5 of the content); only a complete tree replaces the old one,
 *    with one renameat2(RENAME_EXCHANGE) (or rename when there was none).
 *    A failure at any point removes the staging directory and leaves the
 *    previous tree, or none, exactly as it was: never a half-loaded version.
 *  - Credentials: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+
 *    AWS_SESSION_TOKEN) from the environment, else profile AWS_PROFILE
 *    (default "default") of AWS_SHARED_CREDENTIALS_FILE (default
 *    ~/.aws/credentials). Region: AWS_REGION, AWS_DEFAULT_REGION, else
 *    us-east-1. Endpoint: opts->endpoint, else AWS_ENDPOINT_URL, else
 *    https://s3.REGION.amazonaws.com; always path-style addressing
 *    (ENDPOINT/BUCKET/KEY), which every S3-compatible store accepts.
 *  - Errors return -errno with one line in err naming the object and the
 *    store's own code and message, e.g. "s3://b/repo: ListObjectsV2: HTTP 403
 *    SignatureDoesNotMatch: ... (check the secret key ...)". -EACCES for a
 *    refused signature or key, -ENOENT for a missing bucket, prefix or object,
 *    -EIO for a transfer that failed or was cut, -EINVAL for a bad URL or
 *    an object key that is no safe relative path ("..", empty components).
 */
#ifndef QV_DP_S3FETCH_H
#define QV_DP_S3FETCH_H

#include <stddef.h>

#define QV_S3_MANIFEST ".quiver-s3-manifest"

struct qv_s3_opts {
	const char *endpoint;   /* "http://127.0.0.1:9000"; NULL: AWS_ENDPOINT_URL or AWS */
};

struct qv_s3_stats {
	unsigned objects;       /* objects under the prefix */
	unsigned fetched;       /* downloaded this time */
	unsigned long long bytes;  /* bytes downloaded */
};

/* 1 when s starts with "s3://". */
int qv_s3_is_url(const char *s);

/*
 * Splits "s3://BUCKET[/PREFIX]" into the bucket and the prefix without
 * leading or trailing slashes ("" for the whole bucket). -EINVAL for a
 * bad bucket name or a prefix with empty, "." or ".." components.
 */
int qv_s3_parse_url(const char *url, char *ret_bucket, size_t blen, char *ret_prefix,
		    size_t plen);

/* 1 when rel (an object key below the prefix) is a safe relative file path. */
int qv_s3_key_safe(const char *rel);

/*
 * Fetches url into cache_dir (created if missing) and writes the local
 * directory that mirrors it to ret_dir. stats may be NULL. See above.
 */
int qv_s3_fetch(const char *url, const char *cache_dir, const struct qv_s3_opts *opts,
		char *ret_dir, size_t dir_len, struct qv_s3_stats *stats, char *err,
		size_t errlen);

/*
 * The default cache directory: $QUIVER_S3_CACHE, else
 * $XDG_CACHE_HOME/quiver/s3, else $HOME/.cache/quiver/s3. -ENOENT when
 * none of them is set.
 */
int qv_s3_default_cache(char *ret, size_t len);

#endif /* QV_DP_S3FETCH_H */
