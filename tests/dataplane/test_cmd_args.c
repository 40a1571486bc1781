/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Argument validation of the routing commands: every malformed request
 * is refused with -EINVAL and a message naming the problem, every good
 * one parses to the expected fields.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd_args.h"
#include "route_pick.h"

static int failures;

#define CHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

static int parse(const char *json, struct qv_cmd_args *a, char *err)
{
	cJSON *req = cJSON_Parse(json);
	const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
	int r;

	if (!req || !cJSON_IsString(cmd)) {
		cJSON_Delete(req);
		return -100;
	}
	err[0] = '\0';
	r = qv_cmd_args_parse(qv_cmd_kind_of(cmd->valuestring), req, a, err, 256);
	cJSON_Delete(req);
	return r;
}

static void bad(const char *json, const char *needle)
{
	struct qv_cmd_args a;
	char err[256];
	int r = parse(json, &a, err);

	if (r != -EINVAL || !strstr(err, needle)) {
		fprintf(stderr, "expected -EINVAL containing '%s' for %s: got %d '%s'\n", needle, json,
			r, err);
		failures++;
	}
}

int main(void)
{
	struct qv_cmd_args a;
	char err[256];

	CHECK(qv_cmd_kind_of("swap") == QV_CMD_SWAP);
	CHECK(qv_cmd_kind_of("status") == 0);
	CHECK(qv_cmd_kind_of("failpoint") == QV_CMD_FAILPOINT);
	CHECK(parse("{\"cmd\":\"failpoint\",\"name\":\"m\",\"version\":2,\"fail\":true}", &a,
		    err) == 0 && a.version == 2 && a.fail == 1);
	CHECK(parse("{\"cmd\":\"failpoint\",\"name\":\"m\",\"version\":2,\"fail\":false}", &a,
		    err) == 0 && a.fail == 0);

	bad("{\"cmd\":\"load\",\"version\":3}", "name");
	bad("{\"cmd\":\"load\",\"name\":\"../etc\",\"version\":3}", "bad model name");
	bad("{\"cmd\":\"load\",\"name\":\"m\"}", "version");
	bad("{\"cmd\":\"load\",\"name\":\"m\",\"version\":0}", "version");
	bad("{\"cmd\":\"swap\",\"name\":\"m\",\"version\":-1}", "version");
	bad("{\"cmd\":\"swap\",\"name\":\"m\",\"version\":1.5}", "version");
	bad("{\"cmd\":\"swap\",\"name\":\"m\",\"version\":\"2\"}", "version");
	bad("{\"cmd\":\"load\",\"name\":\"m\",\"version\":2,\"path\":3}", "path");
	bad("{\"cmd\":\"canary\",\"name\":\"m\",\"version\":2,\"ppm\":1000001}", "ppm");
	bad("{\"cmd\":\"canary\",\"name\":\"m\",\"version\":2,\"ppm\":-1}", "ppm");
	bad("{\"cmd\":\"canary\",\"name\":\"m\",\"version\":2,\"percent\":101}", "percent");
	bad("{\"cmd\":\"canary\",\"name\":\"m\",\"version\":2}", "ppm");
	bad("{\"cmd\":\"canary\",\"name\":\"m\",\"version\":2,\"ppm\":10,\"sticky\":1}", "sticky");
	bad("{\"cmd\":\"canary\",\"name\":\"m\",\"ppm\":10}", "version");
	bad("{\"cmd\":\"fallback\",\"name\":\"m\",\"version\":1,\"on\":[\"eror\"]}", "trigger");
	bad("{\"cmd\":\"fallback\",\"name\":\"m\",\"version\":1,\"on\":\"error\"}", "array");
	bad("{\"cmd\":\"fallback\",\"name\":\"m\",\"version\":1}", "on");
	bad("{\"cmd\":\"fallback\",\"name\":\"m\",\"on\":[\"error\"]}", "version");
	bad("{\"cmd\":\"fallback\",\"name\":\"m\",\"clear\":\"yes\"}", "boolean");
	bad("{\"cmd\":\"failpoint\",\"name\":\"m\",\"version\":2}", "\"fail\"");
	bad("{\"cmd\":\"failpoint\",\"name\":\"m\",\"version\":2,\"fail\":1}", "\"fail\"");
	bad("{\"cmd\":\"failpoint\",\"name\":\"m\",\"fail\":true}", "version");
	bad("{\"cmd\":\"failpoint\",\"name\":\"m\",\"version\":0,\"fail\":true}", "version");

	CHECK(parse("{\"cmd\":\"load\",\"name\":\"trade-mlp\",\"version\":3,\"path\":\"/x/y\"}", &a,
		    err) == 0);
	CHECK(a.kind == QV_CMD_LOAD && a.version == 3 && strcmp(a.name, "trade-mlp") == 0 &&
	      strcmp(a.path, "/x/y") == 0 && a.precision == -1);
	CHECK(parse("{\"cmd\":\"load\",\"name\":\"m\",\"version\":3,\"precision\":\"int8\"}", &a,
		    err) == 0 && a.precision == 2);
	bad("{\"cmd\":\"load\",\"name\":\"m\",\"version\":2,\"precision\":\"fp16\"}", "precision");
	bad("{\"cmd\":\"load\",\"name\":\"m\",\"version\":2,\"precision\":2}", "precision");
	CHECK(parse("{\"cmd\":\"canary\",\"name\":\"m\",\"version\":2,\"ppm\":100000,\"sticky\":true}",
		    &a, err) == 0);
	CHECK(a.ppm == 100000 && a.sticky == 1 && a.version == 2);
	CHECK(parse("{\"cmd\":\"canary\",\"name\":\"m\",\"version\":2,\"percent\":25}", &a, err) == 0);
	CHECK(a.ppm == 250000 && a.sticky == 0);
	CHECK(parse("{\"cmd\":\"canary\",\"name\":\"m\",\"version\":0}", &a, err) == 0);
	CHECK(a.version == 0 && a.ppm == 0);
	CHECK(parse("{\"cmd\":\"shadow\",\"name\":\"m\",\"version\":2}", &a, err) == 0);
	CHECK(a.ppm == 1000000);
	CHECK(parse("{\"cmd\":\"fallback\",\"name\":\"m\",\"version\":1,\"on\":[\"error\",\"deadline\",\"nonfinite\"]}",
		    &a, err) == 0);
	CHECK(a.on == (QV_RT_FB_ERROR | QV_RT_FB_DEADLINE | QV_RT_FB_NONFINITE) && !a.manual);
	CHECK(parse("{\"cmd\":\"fallback\",\"name\":\"m\",\"version\":1,\"manual\":true}", &a, err) == 0);
	CHECK(a.on == QV_RT_FB_MANUAL && a.manual);
	CHECK(parse("{\"cmd\":\"fallback\",\"name\":\"m\",\"clear\":true}", &a, err) == 0);
	CHECK(a.clear);
	CHECK(parse("{\"cmd\":\"promote\",\"name\":\"m\"}", &a, err) == 0);
	CHECK(parse("{\"cmd\":\"rollback\",\"name\":\"m\"}", &a, err) == 0);
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
