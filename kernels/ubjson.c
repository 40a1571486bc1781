/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ubjson.c - a bounded UBJSON (Universal Binary JSON, draft 12) reader that
 * builds a cJSON tree, so one loader (tree_load.c) reads both of XGBoost's
 * formats. Debian ships no UBJSON library for C; the format is small: a
 * one-byte marker per value, big-endian numbers, strings and keys prefixed
 * by an integer length, and containers optionally "optimized" with a type
 * ($) and/or a count (#), which is how xgboost writes its number arrays.
 *
 * Bounds: nesting depth <= 64; every declared length or count is checked
 * against the bytes left before anything is allocated (a count can never
 * exceed the bytes remaining, even for zero-byte element types), so a
 * hostile file costs at most a fixed multiple of its own size.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree.h"

#define UBJ_MAX_DEPTH 64

struct ubj {
	const uint8_t *p;
	size_t len, pos;
	char *err;
	size_t err_len;
};

__attribute__((format(printf, 2, 3)))
static int ubj_fail(struct ubj *u, const char *fmt, ...)
{
	if (u->err && u->err_len) {
		int k = snprintf(u->err, u->err_len, "ubjson offset %zu: ", u->pos);
		if (k >= 0 && (size_t)k < u->err_len) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(u->err + k, u->err_len - (size_t)k, fmt, ap);
			va_end(ap);
		}
	}
	return -EINVAL;
}

/* The next n bytes, or NULL (the error set) when fewer are left. */
static const uint8_t *take(struct ubj *u, size_t n)
{
	if (u->len - u->pos < n) {
		ubj_fail(u, "truncated (%zu bytes wanted, %zu left)", n, u->len - u->pos);
		return NULL;
	}
	const uint8_t *b = u->p + u->pos;
	u->pos += n;
	return b;
}

static uint64_t be(const uint8_t *b, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | b[i];
	return v;
}

/* A number of type marker m, its bytes next; as double (int64 above 2^53
 * loses precision, which no model field needs). */
static int read_num(struct ubj *u, uint8_t m, double *ret, bool *ret_int, int64_t *ret_i)
{
	const uint8_t *b = NULL;
	int64_t i = 0;
	bool is_int = true;
	double d = 0;
	switch (m) {
	case 'i':
		if (!(b = take(u, 1)))
			return -EINVAL;
		i = (int8_t)b[0];
		break;
	case 'U':
		if (!(b = take(u, 1)))
			return -EINVAL;
		i = b[0];
		break;
	case 'I':
		if (!(b = take(u, 2)))
			return -EINVAL;
		i = (int16_t)be(b, 2);
		break;
	case 'l':
		if (!(b = take(u, 4)))
			return -EINVAL;
		i = (int32_t)be(b, 4);
		break;
	case 'L':
		if (!(b = take(u, 8)))
			return -EINVAL;
		i = (int64_t)be(b, 8);
		break;
	case 'd': {
		if (!(b = take(u, 4)))
			return -EINVAL;
		uint32_t w = (uint32_t)be(b, 4);
		float f;
		memcpy(&f, &w, 4);
		d = f;
		is_int = false;
		break;
	}
	case 'D': {
		if (!(b = take(u, 8)))
			return -EINVAL;
		uint64_t w = be(b, 8);
		memcpy(&d, &w, 8);
		is_int = false;
		break;
	}
	default:
		return ubj_fail(u, "marker 0x%02x is not a number", m);
	}
	if (is_int)
		d = (double)i;
	*ret = d;
	if (ret_int)
		*ret_int = is_int;
	if (ret_i)
		*ret_i = i;
	return 0;
}

/* A length or count: an integer marker and value, >= 0 and <= bytes left. */
static int read_len(struct ubj *u, size_t *ret)
{
	const uint8_t *m = take(u, 1);
	if (!m)
		return -EINVAL;
	int r;
	double d;
	bool is_int;
	int64_t i;
	if ((r = read_num(u, *m, &d, &is_int, &i)) < 0)
		return r;
	if (!is_int || i < 0)
		return ubj_fail(u, "length is not a non-negative integer");
	if ((uint64_t)i > u->len - u->pos)
		return ubj_fail(u, "length %lld exceeds the %zu bytes left", (long long)i, u->len - u->pos);
	*ret = (size_t)i;
	return 0;
}

static int read_str(struct ubj *u, char **ret)
{
	size_t n;
	const uint8_t *b;
	int r = read_len(u, &n);
	if (r < 0)
		return r;
	if (!(b = take(u, n)))
		return -EINVAL;
	if (memchr(b, 0, n))
		return ubj_fail(u, "string holds a NUL byte");
	char *s = malloc(n + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, b, n);
	s[n] = '\0';
	*ret = s;
	return 0;
}

static int read_value(struct ubj *u, uint8_t m, int depth, cJSON **ret);

static size_t elem_size(uint8_t t)
{
	switch (t) {
	case 'i': case 'U': case 'C': return 1;
	case 'I': return 2;
	case 'l': case 'd': return 4;
	case 'L': case 'D': return 8;
	}
	return 1;   /* strings, containers: at least their first byte */
}

/* After '[' or '{': the optional $type and #count. */
static int read_opt(struct ubj *u, uint8_t *ret_type, bool *ret_counted, size_t *ret_count)
{
	*ret_type = 0;
	*ret_counted = false;
	*ret_count = 0;
	int r;
	const uint8_t *b = NULL;
	if (u->pos < u->len && u->p[u->pos] == '$') {
		u->pos++;
		if (!(b = take(u, 1)))
			return -EINVAL;
		if (strchr("iUIlLdDCS[{", *b) == NULL || *b == 0)
			return ubj_fail(u, "container type 0x%02x not supported", *b);
		*ret_type = *b;
		if (u->pos >= u->len || u->p[u->pos] != '#')
			return ubj_fail(u, "typed container without a count");
	}
	if (u->pos < u->len && u->p[u->pos] == '#') {
		u->pos++;
		if ((r = read_len(u, ret_count)) < 0)
			return r;
		*ret_counted = true;
		size_t es = *ret_type ? elem_size(*ret_type) : 1;
		if (*ret_count > (u->len - u->pos) / es)
			return ubj_fail(u, "count %zu exceeds the bytes left", *ret_count);
	}
	return 0;
}

static int read_array(struct ubj *u, int depth, cJSON **ret)
{
	uint8_t type;
	bool counted;
	size_t count;
	int r = read_opt(u, &type, &counted, &count);
	if (r < 0)
		return r;
	cJSON *a = cJSON_CreateArray();
	if (!a)
		return -ENOMEM;
	/* cJSON appends in O(1) (it keeps the tail in child->prev), so a
	 * million-number array costs a million appends, not their square */
	for (size_t i = 0; !counted || i < count; i++) {
		const uint8_t *m = NULL;
		if (type) {
			m = &type;
		} else {
			m = take(u, 1);
			while (m && *m == 'N')   /* no-op markers between values */
				m = take(u, 1);
			if (!m) {
				r = -EINVAL;
				goto fail;
			}
			if (!counted && *m == ']')
				break;
		}
		cJSON *v;
		if ((r = read_value(u, *m, depth + 1, &v)) < 0)
			goto fail;
		cJSON_AddItemToArray(a, v);
	}
	*ret = a;
	return 0;
fail:
	cJSON_Delete(a);
	return r;
}

static int read_object(struct ubj *u, int depth, cJSON **ret)
{
	uint8_t type;
	bool counted;
	size_t count;
	int r = read_opt(u, &type, &counted, &count);
	if (r < 0)
		return r;
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	for (size_t i = 0; !counted || i < count; i++) {
		if (!counted) {
			while (u->pos < u->len && u->p[u->pos] == 'N')
				u->pos++;
			if (u->pos < u->len && u->p[u->pos] == '}') {
				u->pos++;
				break;
			}
		}
		char *key;
		if ((r = read_str(u, &key)) < 0)
			goto fail;
		const uint8_t *m = NULL;
		if (type) {
			m = &type;
		} else if (!(m = take(u, 1))) {
			free(key);
			r = -EINVAL;
			goto fail;
		}
		cJSON *v;
		if ((r = read_value(u, *m, depth + 1, &v)) < 0) {
			free(key);
			goto fail;
		}
		cJSON_AddItemToObject(o, key, v);
		free(key);
	}
	*ret = o;
	return 0;
fail:
	cJSON_Delete(o);
	return r;
}

static int read_value(struct ubj *u, uint8_t m, int depth, cJSON **ret)
{
	if (depth > UBJ_MAX_DEPTH)
		return ubj_fail(u, "nested deeper than %d", UBJ_MAX_DEPTH);
	cJSON *v = NULL;
	int r = 0;
	switch (m) {
	case 'Z':
		v = cJSON_CreateNull();
		break;
	case 'T':
		v = cJSON_CreateTrue();
		break;
	case 'F':
		v = cJSON_CreateFalse();
		break;
	case 'i': case 'U': case 'I': case 'l': case 'L': case 'd': case 'D': {
		double d;
		if ((r = read_num(u, m, &d, NULL, NULL)) < 0)
			return r;
		v = cJSON_CreateNumber(d);
		break;
	}
	case 'C': {
		const uint8_t *b = NULL;
		if (!(b = take(u, 1)))
			return -EINVAL;
		char s[2] = { (char)*b, 0 };
		if (!*b)
			return ubj_fail(u, "NUL char");
		v = cJSON_CreateString(s);
		break;
	}
	case 'S': case 'H': {
		char *s;
		if ((r = read_str(u, &s)) < 0)
			return r;
		v = cJSON_CreateString(s);
		free(s);
		break;
	}
	case '[':
		return read_array(u, depth, ret);
	case '{':
		return read_object(u, depth, ret);
	default:
		return ubj_fail(u, "unknown marker 0x%02x", m);
	}
	if (!v)
		return -ENOMEM;
	*ret = v;
	return 0;
}

int qv_ubjson_parse(const void *buf, size_t len, cJSON **ret_root, char *err, size_t err_len)
{
	struct ubj u = { .p = buf, .len = len, .err = err, .err_len = err_len };
	const uint8_t *m = take(&u, 1);
	cJSON *root = NULL;
	int r = m ? read_value(&u, *m, 0, &root) : -EINVAL;
	if (r == -ENOMEM)
		ubj_fail(&u, "out of memory");
	if (r < 0)
		return r;
	if (u.pos != u.len) {
		cJSON_Delete(root);
		return ubj_fail(&u, "%zu bytes after the document", u.len - u.pos);
	}
	*ret_root = root;
	return 0;
}
