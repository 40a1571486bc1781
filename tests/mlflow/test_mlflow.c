/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MLmodel parser and the signature check (dataplane/mlflow.c) on
 * MLmodel texts as MLflow writes them (PyYAML's block style, signature JSON
 * folded over several lines in single quotes) and on broken ones: every
 * refusal must say what is wrong and name the tensor or flavor. Also the
 * repository scan picking MLmodel before a model.onnx beside it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mlflow.h"
#include "repo.h"

static int failures;

#define CHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			failures++;                                                  \
		}                                                                    \
	} while (0)

static const char onnx_mlmodel[] =
	"artifact_path: model\n"
	"flavors:\n"
	"  onnx:\n"
	"    code: null\n"
	"    data: model.onnx\n"
	"    onnx_version: 1.12.0\n"
	"    providers:\n"
	"    - CUDAExecutionProvider\n"
	"    - CPUExecutionProvider\n"
	"  python_function:\n"
	"    data: other.onnx\n"
	"    env:\n"
	"      conda: conda.yaml\n"
	"      virtualenv: python_env.yaml\n"
	"    loader_module: mlflow.onnx\n"
	"    python_version: 3.11.2\n"
	"mlflow_version: 2.9.2\n"
	"model_uuid: 0f1e2d3c\n"
	"signature:\n"
	"  inputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", \"shape\": [-1,\n"
	"    16]}, \"name\": \"x\"}, {\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"int64\",\n"
	"    \"shape\": [-1]}, \"name\": \"ids\"}]'\n"
	"  outputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", \"shape\": [-1]}}]'\n"
	"  params: null\n"
	"utc_time_created: '2024-03-01 12:00:00.000000'\n";

static struct qv_tensor_info tensor(const char *name, uint32_t dt, uint32_t rank, int64_t d1,
				    int64_t d2)
{
	struct qv_tensor_info t;

	memset(&t, 0, sizeof(t));
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.dtype = dt;
	t.rank = rank;
	t.shape[0] = -1;
	t.shape[1] = d1;
	t.shape[2] = d2;
	return t;
}

static int parse(const char *text, struct qv_mlflow *ml, char *err, size_t len)
{
	memset(ml, 0, sizeof(*ml));
	err[0] = '\0';
	return qv_mlflow_parse(text, strlen(text), ml, err, len);
}

/* Parses text, expecting a refusal whose message holds every word. */
static void refused(const char *text, const char *w1, const char *w2)
{
	struct qv_mlflow ml;
	char err[256];
	int r = parse(text, &ml, err, sizeof(err));

	CHECK(r == -EINVAL);
	CHECK(strstr(err, w1) != NULL);
	CHECK(!w2 || strstr(err, w2) != NULL);
	if (r != -EINVAL || !strstr(err, w1) || (w2 && !strstr(err, w2)))
		fprintf(stderr, "  for %.60s...: r=%d err='%s'\n", text, r, err);
}

static void test_onnx(void)
{
	struct qv_tensor_info ins[2], outs[1];
	struct qv_mlflow ml;
	char err[256];

	CHECK(parse(onnx_mlmodel, &ml, err, sizeof(err)) == 0);
	CHECK(ml.flavor == QV_MLFLOW_ONNX);
	CHECK(strcmp(ml.data, "model.onnx") == 0);  /* the native flavor, not python_function */
	CHECK(ml.has_signature && ml.in.n == 2 && ml.out.n == 1);
	CHECK(strcmp(ml.in.s[0].name, "x") == 0 && strcmp(ml.in.s[0].type, "float32") == 0);
	CHECK(ml.in.s[0].rank == 2 && ml.in.s[0].shape[0] == -1 && ml.in.s[0].shape[1] == 16);
	CHECK(strcmp(ml.in.s[1].name, "ids") == 0 && strcmp(ml.in.s[1].type, "int64") == 0);
	CHECK(ml.out.s[0].name[0] == '\0' && ml.out.s[0].rank == 1);

	/* By name, in any order; [-1] matches the model's [-1, 1]. */
	ins[0] = tensor("ids", QV_DT_I64, 1, 0, 0);
	ins[1] = tensor("x", QV_DT_F32, 2, 16, 0);
	outs[0] = tensor("y", QV_DT_F32, 2, 1, 0);
	CHECK(qv_mlflow_check(&ml, ins, 2, outs, 1, err, sizeof(err)) == 0);

	ins[1].dtype = QV_DT_I32;
	CHECK(qv_mlflow_check(&ml, ins, 2, outs, 1, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "signature input 'x'") && strstr(err, "int32"));
	ins[1] = tensor("x", QV_DT_F32, 2, 15, 0);
	CHECK(qv_mlflow_check(&ml, ins, 2, outs, 1, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "'x'") && strstr(err, "[-1, 16]") && strstr(err, "[-1, 15]"));
	ins[1] = tensor("z", QV_DT_F32, 2, 16, 0);
	CHECK(qv_mlflow_check(&ml, ins, 2, outs, 1, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "'x'") && strstr(err, "no such input"));
	ins[1] = tensor("x", QV_DT_F32, 2, 16, 0);
	CHECK(qv_mlflow_check(&ml, ins, 1, outs, 1, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "2 tensors") && strstr(err, "has 1"));
	outs[0] = tensor("y", QV_DT_F32, 2, 2, 0);
	CHECK(qv_mlflow_check(&ml, ins, 2, outs, 1, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "signature output 'y'") && strstr(err, "shape"));
	/* A dynamic row dimension in the model: nothing fixed to compare. */
	outs[0] = tensor("y", QV_DT_F32, 2, -1, 0);
	CHECK(qv_mlflow_check(&ml, ins, 2, outs, 1, err, sizeof(err)) == 0);
}

static void test_xgboost_columns(void)
{
	static const char text[] =
		"flavors:\n"
		"  python_function: {data: model.ubj, loader_module: mlflow.xgboost}\n"
		"  xgboost: {data: model.ubj, model_format: ubj, xgb_version: 2.0.3}\n"
		"signature:\n"
		"  inputs: '[{\"type\": \"double\", \"name\": \"a\"}, {\"type\": \"float\", \"name\": \"b\"},\n"
		"    {\"type\": \"long\", \"name\": \"c\", \"required\": true}]'\n"
		"  outputs: '[{\"type\": \"double\"}]'\n";
	struct qv_tensor_info in3 = tensor("input", QV_DT_F32, 2, 3, 0);
	struct qv_tensor_info in4 = tensor("input", QV_DT_F32, 2, 4, 0);
	struct qv_tensor_info sep[3] = { tensor("a", QV_DT_F32, 2, 1, 0),
					 tensor("b", QV_DT_F32, 1, 0, 0),
					 tensor("c", QV_DT_F32, 2, 1, 0) };
	struct qv_tensor_info out = tensor("output", QV_DT_F32, 2, 1, 0);
	struct qv_mlflow ml;
	char err[256];

	CHECK(parse(text, &ml, err, sizeof(err)) == 0);
	CHECK(ml.flavor == QV_MLFLOW_XGBOOST && strcmp(ml.data, "model.ubj") == 0);
	CHECK(strcmp(ml.model_format, "ubj") == 0);
	CHECK(ml.in.n == 3 && ml.in.s[0].column && strcmp(ml.in.s[2].type, "long") == 0);
	CHECK(qv_mlflow_check(&ml, &in3, 1, &out, 1, err, sizeof(err)) == 0);
	CHECK(qv_mlflow_check(&ml, sep, 3, &out, 1, err, sizeof(err)) == 0);
	CHECK(qv_mlflow_check(&ml, &in4, 1, &out, 1, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "3 columns") && strstr(err, "'input'") && strstr(err, "4 elements"));

	refused("flavors:\n  xgboost: {data: m.bin, model_format: pickle}\n", "model_format", NULL);
	{
		/* a string column parses but cannot feed a model */
		CHECK(parse("flavors:\n  xgboost: {data: m.json}\n"
			    "signature:\n  inputs: '[{\"type\": \"string\", \"name\": \"s\"}]'\n",
			    &ml, err, sizeof(err)) == 0);
		CHECK(qv_mlflow_check(&ml, &in3, 1, &out, 1, err, sizeof(err)) == -EINVAL);
		CHECK(strstr(err, "column 's'") && strstr(err, "not numeric"));
	}
}

static void test_flavor_choice(void)
{
	struct qv_mlflow ml;
	char err[256];

	/* python_function alone, naming a loader quiver knows */
	CHECK(parse("flavors:\n  python_function:\n    loader_module: mlflow.onnx\n    data: sub/m.onnx\n",
		    &ml, err, sizeof(err)) == 0);
	CHECK(ml.flavor == QV_MLFLOW_ONNX && strcmp(ml.data, "sub/m.onnx") == 0);
	CHECK(!ml.has_signature);
	CHECK(qv_mlflow_check(&ml, NULL, 0, NULL, 0, err, sizeof(err)) == 0);
	/* no signature at all, or a null one */
	CHECK(parse("flavors:\n  onnx: {data: model.onnx}\nsignature: null\n", &ml, err,
		    sizeof(err)) == 0 && !ml.has_signature);

	refused("flavors:\n  sklearn: {pickled_model: model.pkl}\n"
		"  python_function: {loader_module: mlflow.sklearn}\n",
		"no flavor quiver serves", "sklearn, python_function");
	refused("flavors: {}\n", "no flavor quiver serves", "none");
	refused("artifact_path: model\n", "no \"flavors\"", NULL);
	refused("flavors:\n  onnx:\n    code: null\n", "flavor onnx", "no \"data\"");
	refused("flavors:\n  onnx: {data: /etc/model.onnx}\n", "absolute path", NULL);
	refused("flavors:\n  onnx: {data: a/../../model.onnx}\n", "leaves the model directory", NULL);
	refused("flavors:\n  onnx: model.onnx\n", "flavor onnx", "not a mapping");
	refused("- just\n- a list\n", "not a YAML mapping", NULL);
	refused("", "not a YAML mapping", NULL);
	refused("flavors:\n  onnx:\n    data: model.onnx\n   bad: [unclosed\n", "YAML", "line 4");
	refused("flavors: {onnx: {data: m.onnx}}\nsignature:\n  inputs: '[{\"type\": '\n",
		"signature inputs", "not valid JSON");
	refused("flavors: {onnx: {data: m.onnx}}\nsignature:\n  inputs: '{\"type\": \"tensor\"}'\n",
		"signature inputs", "not a JSON list");
	refused("flavors: {onnx: {data: m.onnx}}\nsignature:\n  inputs: '[{\"type\": \"tensor\"}]'\n",
		"signature inputs 0", "tensor-spec");
	refused("flavors: {onnx: {data: m.onnx}}\nsignature:\n"
		"  inputs: '[{\"type\": \"double\"}, {\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\"}}]'\n",
		"mixes tensors and columns", NULL);
	refused("flavors: {onnx: {data: m.onnx}}\nsignature:\n  outputs: '[{\"type\": \"complex\"}]'\n",
		"signature outputs 0", "unknown type 'complex'");
	refused("flavors: {onnx: {data: m.onnx}}\nsignature:\n"
		"  inputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", \"shape\": [-1, 2.5]}}]'\n",
		"shape entries must be integers", NULL);
	refused("flavors: {onnx: {data: m.onnx}}\nsignature:\n  inputs: [a, b]\n",
		"signature inputs", "not a JSON string");
}

/* MLmodel is taken before a model.onnx beside it, and read from a directory. */
static void test_scan_and_read(void)
{
	char root[] = "/tmp/qv-mlflow-XXXXXX", p[512], file[4200], err[256];
	struct qv_repo_entry *ents = NULL;
	struct qv_mlflow ml;
	size_t n = 0;
	FILE *f;

	if (!mkdtemp(root)) {
		perror("mkdtemp");
		failures++;
		return;
	}
	snprintf(p, sizeof(p), "%s/m", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/m/1", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/m/1/model.onnx", root);
	f = fopen(p, "w");
	if (f)
		fclose(f);
	snprintf(p, sizeof(p), "%s/m/1/MLmodel", root);
	f = fopen(p, "w");
	if (f) {
		fputs("flavors:\n  onnx: {data: model.onnx}\n", f);
		fclose(f);
	}
	CHECK(qv_repo_scan(root, &ents, &n, NULL) == 0 && n == 1);
	if (n == 1) {
		CHECK(ents[0].ok);
		CHECK(strstr(ents[0].path, "/m/1/MLmodel") != NULL);
	}
	free(ents);

	snprintf(p, sizeof(p), "%s/m/1", root);
	CHECK(qv_mlflow_read(p, &ml, file, sizeof(file), err, sizeof(err)) == 0);
	CHECK(strstr(file, "/m/1/model.onnx") != NULL);
	snprintf(p, sizeof(p), "%s/m/1/model.onnx", root);
	unlink(p);
	snprintf(p, sizeof(p), "%s/m/1", root);
	CHECK(qv_mlflow_read(p, &ml, file, sizeof(file), err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "data 'model.onnx'") && strstr(err, "No such file"));
	snprintf(p, sizeof(p), "%s/m", root);
	CHECK(qv_mlflow_read(p, &ml, file, sizeof(file), err, sizeof(err)) == -ENOENT);

	snprintf(p, sizeof(p), "%s/m/1/MLmodel", root);
	unlink(p);
	snprintf(p, sizeof(p), "%s/m/1", root);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/m", root);
	rmdir(p);
	rmdir(root);
}

int main(void)
{
	test_onnx();
	test_xgboost_columns();
	test_flavor_choice();
	test_scan_and_read();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("ok mlflow\n");
	return 0;
}
