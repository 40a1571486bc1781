/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ubjson - the UBJSON reader (kernels/ubjson.c) on hand-made
 * documents: every marker, plain / counted / typed containers, no-ops,
 * big-endian numbers, each compared with the JSON it must equal; then
 * refusals: every strict prefix of a valid document (truncation at any
 * byte), counts and lengths past the end, unknown markers, nesting past 64,
 * trailing bytes, NUL in strings. Each refusal must name "ubjson offset".
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree.h"

static int failures;

static void good(const char *what, const void *buf, size_t len, const char *want)
{
	cJSON *root = NULL;
	char err[256] = "";
	int r = qv_ubjson_parse(buf, len, &root, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "FAIL %s: %d %s\n", what, r, err);
		failures++;
		return;
	}
	char *got = cJSON_PrintUnformatted(root);
	if (!got || strcmp(got, want)) {
		fprintf(stderr, "FAIL %s: got %s want %s\n", what, got ? got : "(null)", want);
		failures++;
	}
	free(got);
	cJSON_Delete(root);
}

static void bad(const char *what, const void *buf, size_t len)
{
	cJSON *root = (cJSON *)(uintptr_t)0x5a5a5a50u;
	char err[256] = "";
	int r = qv_ubjson_parse(buf, len, &root, err, sizeof(err));
	if (r >= 0 || root != (cJSON *)(uintptr_t)0x5a5a5a50u || !strstr(err, "ubjson offset")) {
		fprintf(stderr, "FAIL %s (%zu bytes): rc %d, error '%s'\n", what, len, r, err);
		failures++;
		if (r >= 0)
			cJSON_Delete(root);
	}
}

#define B(s) (s), sizeof(s) - 1

int main(void)
{
	/* scalars and plain containers */
	good("ints", B("[i\xffU\xffI\x01\x00l\xff\xff\xff\xfeL\x00\x00\x00\x01\x00\x00\x00\x00]"),
	     "[-1,255,256,-2,4294967296]");
	good("floats", B("[d\x3f\xc0\x00\x00" "D\x40\x09\x21\xfb\x54\x44\x2d\x18]"),
	     "[1.5,3.1415926535897931]");
	good("literals", B("[TFZNC\x41]"), "[true,false,null,\"A\"]");
	good("strings", B("{i\x01kSi\x03" "abcU\x02kkHi\x03" "1.5}"), "{\"k\":\"abc\",\"kk\":\"1.5\"}");
	/* counted and typed containers, as xgboost writes its arrays */
	good("counted", B("[#i\x02i\x01i\x02"), "[1,2]");
	good("typed floats", B("[$d#U\x02\x3f\x80\x00\x00\xbf\x80\x00\x00"), "[1,-1]");
	good("typed uint8", B("[$U#i\x03\x00\x01\xff"), "[0,1,255]");
	good("typed int64", B("[$L#i\x01\x00\x00\x00\x00\x00\x00\x00\x07"), "[7]");
	good("typed strings", B("[$S#i\x02i\x01xi\x02yz"), "[\"x\",\"yz\"]");
	good("counted object", B("{#i\x02i\x01" "aTi\x01" "bF"), "{\"a\":true,\"b\":false}");
	good("typed object", B("{$i#i\x02i\x01" "a\x05i\x01" "b\x06"), "{\"a\":5,\"b\":6}");
	good("nested", B("{L\x00\x00\x00\x00\x00\x00\x00\x01x[[]{}]}"), "{\"x\":[[],{}]}");
	good("noop in array", B("[Ni\x01N]"), "[1]");

	/* every strict prefix of a valid document is refused */
	static const char doc[] = "{L\x00\x00\x00\x00\x00\x00\x00\x05trees[$d#i\x02\x3f\x80\x00\x00"
				  "\x40\x00\x00\x00i\x01n[#U\x01Si\x02ok}";
	for (size_t n = 0; n < sizeof(doc) - 1; n++) {
		char what[64];
		snprintf(what, sizeof(what), "prefix %zu", n);
		bad(what, doc, n);
	}
	good("whole", doc, sizeof(doc) - 1, "{\"trees\":[1,2],\"n\":[\"ok\"]}");

	bad("count past end", B("[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff"));
	bad("count of zero-size past end", B("[#L\x00\x00\x00\x00\x00\x00\x10\x00"));
	bad("negative count", B("[#i\xff"));
	bad("negative length", B("Si\xfe" "ab"));
	bad("float length", B("Sd\x3f\x80\x00\x00" "a"));
	bad("unknown marker", B("[Q]"));
	bad("typed null", B("[$Z#i\x05"));
	bad("typed without count", B("[$d\x3f\x80\x00\x00]"));
	bad("NUL in string", B("Si\x03" "a\x00" "b"));
	bad("NUL char", B("C\x00"));
	bad("trailing bytes", B("[]]"));
	bad("key without length", B("{Sa}"));
	bad("empty", "", 0);
	/* 65 arrays: the innermost at depth 64, accepted; 66: refused */
	char deep[200];
	memset(deep, '[', 65);
	memset(deep + 65, ']', 65);
	deep[130] = '\0';
	good("nesting 65", deep, 130, deep);
	memset(deep, '[', 66);
	memset(deep + 66, ']', 66);
	bad("nesting 66", deep, 132);
	printf("%d failures\n", failures);
	return failures ? 1 : 0;
}
