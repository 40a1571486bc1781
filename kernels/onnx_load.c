/* SPDX-License-Identifier: Apache-2.0 */
/*
 * onnx_load.c - ONNX protobuf -> struct qvg_graph.
 *
 * The protobuf is untrusted input: every pointer, count and dimension is
 * checked before use, names are copied out so the unpacked message can be
 * freed before this returns, and every error path frees what it built.
 * Only structure is checked here (types, attributes, data sizes); shapes
 * are graph.c's job once the nodes are sorted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "onnx_tensor.h"

#define DT_FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define DT_INT64 ONNX__TENSOR_PROTO__DATA_TYPE__INT64

struct op_entry {
	const char *name;
	enum qvg_op op;
};

static const struct op_entry op_table[] = {
	{ "Gemm", QVG_GEMM }, { "MatMul", QVG_MATMUL }, { "Add", QVG_ADD }, { "Sub", QVG_SUB },
	{ "Mul", QVG_MUL }, { "Div", QVG_DIV }, { "Relu", QVG_RELU },
	{ "LeakyRelu", QVG_LEAKY_RELU }, { "Sigmoid", QVG_SIGMOID }, { "Tanh", QVG_TANH },
	{ "Softmax", QVG_SOFTMAX }, { "Clip", QVG_CLIP }, { "Flatten", QVG_FLATTEN },
	{ "Reshape", QVG_RESHAPE }, { "Identity", QVG_IDENTITY }, { "Dropout", QVG_DROPOUT },
	{ "Concat", QVG_CONCAT }, { "BatchNormalization", QVG_BATCHNORM },
};

static bool is_default_domain(const char *d)
{
	return !d || !d[0] || !strcmp(d, "ai.onnx");
}

int qv_onnx_tensor_decode(const Onnx__TensorProto *tp, unsigned flags, uint64_t budget,
			  const char *what, struct qv_onnx_tensor *ret, char *err, size_t err_len)
{
	bool wide = flags & QV_ONNX_WIDE;
	if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
		qvg_err(err, err_len, "%s: external data is not supported", what);
		return -ENOTSUP;
	}
	int32_t dt = tp->has_data_type ? tp->data_type : 0;
	bool ok = dt == DT_FLOAT || dt == DT_INT64 ||
		  (wide && (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 ||
			    dt == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL));
	if (!ok) {
		qvg_err(err, err_len, "%s: data type %d is not supported (float32 or int64%s only)", what,
			dt, wide ? ", int32, bool" : "");
		return -ENOTSUP;
	}
	if (tp->n_dims > QV_MAX_RANK || (tp->n_dims && !tp->dims)) {
		qvg_err(err, err_len, "%s: rank %zu exceeds %d", what, tp->n_dims, QV_MAX_RANK);
		return -EINVAL;
	}
	struct qv_onnx_tensor t = { .dtype = (uint32_t)dt };
	uint64_t numel = 1;
	for (size_t i = 0; i < tp->n_dims; i++) {
		int64_t d = tp->dims[i];
		if (d <= 0 || d > QVG_MAX_DIM) {
			qvg_err(err, err_len, "%s: dimension %zu is %lld (must be 1..%lld)", what, i,
				(long long)d, (long long)QVG_MAX_DIM);
			return -EINVAL;
		}
		numel *= (uint64_t)d;
		if (numel > QVG_MAX_PARAM_BYTES / 8) {
			qvg_err(err, err_len, "%s: too many elements", what);
			return -E2BIG;
		}
		t.shape[i] = d;
	}
	t.rank = (uint32_t)tp->n_dims;
	/* the size each element has in the file, and in memory after widening */
	size_t fsz = dt == DT_INT64 ? 8 : dt == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL ? 1 : 4;
	size_t esz = dt == DT_FLOAT ? 4 : dt == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL ? 1 : 8;
	if (numel * esz > budget) {
		qvg_err(err, err_len, "%s: parameters exceed %llu bytes", what,
			(unsigned long long)QVG_MAX_PARAM_BYTES);
		return -E2BIG;
	}
	const void *src;
	size_t have;
	const int32_t *i32 = NULL; /* int32 and bool outside raw_data live in int32_data */
	if (tp->has_raw_data) {
		src = tp->raw_data.data;
		have = tp->raw_data.len / fsz;
		if (tp->raw_data.len % fsz || (tp->raw_data.len && !src)) {
			qvg_err(err, err_len, "%s: raw_data size %zu is not a multiple of %zu", what,
				tp->raw_data.len, fsz);
			return -EINVAL;
		}
	} else if (dt == DT_FLOAT) {
		src = tp->float_data;
		have = tp->n_float_data;
	} else if (dt == DT_INT64) {
		src = tp->int64_data;
		have = tp->n_int64_data;
	} else {
		src = i32 = tp->int32_data;
		have = tp->n_int32_data;
	}
	if (have != numel || (numel && !src)) {
		qvg_err(err, err_len, "%s: holds %zu values, shape needs %llu", what, have,
			(unsigned long long)numel);
		return -EINVAL;
	}
	void *data = malloc(numel ? numel * esz : 1);
	if (!data)
		return -ENOMEM;
	/* raw_data is little-endian, as is every machine we run on. */
	if (fsz == esz && !i32) {
		memcpy(data, src, numel * esz);
	} else {
		for (uint64_t i = 0; i < numel; i++) {
			int64_t v;
			if (i32) {
				v = i32[i];
			} else if (fsz == 1) {
				v = ((const uint8_t *)src)[i];
			} else {
				int32_t w;
				memcpy(&w, (const char *)src + i * 4, 4);
				v = w;
			}
			if (esz == 1)
				((uint8_t *)data)[i] = v != 0;
			else
				((int64_t *)data)[i] = v;
		}
	}
	t.numel = numel;
	t.esz = (uint32_t)esz;
	t.data = data;
	*ret = t;
	return 0;
}

/* Copies a TensorProto's data into a constant tensor. `what` names it in errors. */
static int load_tensor(struct qvg_graph *g, struct qvg_tensor *t, const Onnx__TensorProto *tp,
		       const char *what, char *err, size_t err_len)
{
	struct qv_onnx_tensor ot;
	int r = qv_onnx_tensor_decode(tp, 0, QVG_MAX_PARAM_BYTES - g->param_bytes, what, &ot, err, err_len);
	if (r < 0)
		return r;
	memcpy(t->shape, ot.shape, sizeof(t->shape));
	t->rank = ot.rank;
	if (ot.dtype == DT_FLOAT)
		t->data = ot.data;
	else
		t->i64 = ot.data;
	t->numel = ot.numel;
	t->is_const = true;
	t->defined = true;
	g->param_bytes += ot.numel * ot.esz;
	return 0;
}

static int load_input(struct qvg_graph *g, const Onnx__ValueInfoProto *vi, char *err, size_t err_len)
{
	const char *name = vi->name;
	const Onnx__TypeProto *tp = vi->type;
	if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
		qvg_err(err, err_len, "input '%s': not a tensor", name);
		return -ENOTSUP;
	}
	const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
	if (!tt->has_elem_type || tt->elem_type != DT_FLOAT) {
		qvg_err(err, err_len, "input '%s': element type %d is not float32", name,
			tt->has_elem_type ? tt->elem_type : 0);
		return -ENOTSUP;
	}
	const Onnx__TensorShapeProto *sp = tt->shape;
	if (!sp || sp->n_dim < 1 || sp->n_dim > QV_MAX_RANK || !sp->dim) {
		qvg_err(err, err_len, "input '%s': needs a shape of rank 1..%d with the batch first",
			name, QV_MAX_RANK);
		return -EINVAL;
	}
	int32_t id;
	int r = qvg_tensor_add(g, name, &id);
	if (r < 0)
		return r;
	struct qvg_tensor *t = &g->t[id];
	t->rank = (uint32_t)sp->n_dim;
	t->shape[0] = -1; /* the batch, whatever the file says */
	for (size_t i = 1; i < sp->n_dim; i++) {
		const Onnx__TensorShapeProto__Dimension *d = sp->dim[i];
		if (!d || d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
		    d->dim_value <= 0 || d->dim_value > QVG_MAX_DIM) {
			qvg_err(err, err_len, "input '%s': dimension %zu must be a fixed size in 1..%lld",
				name, i, (long long)QVG_MAX_DIM);
			return -EINVAL;
		}
		t->shape[i] = d->dim_value;
	}
	t->numel = qvg_inner(t);
	if (t->numel > QVG_MAX_ROW_FLOATS) {
		qvg_err(err, err_len, "input '%s': a row exceeds %llu floats", name,
			(unsigned long long)QVG_MAX_ROW_FLOATS);
		return -E2BIG;
	}
	t->defined = true;
	g->input = id;
	return 0;
}

static bool name_ok(const char *s)
{
	return s && s[0];
}

/* Attribute parsing: a node accepts only the attributes its op knows. */
static int parse_attrs(const struct qvg_graph *g, struct qvg_node *n, const Onnx__NodeProto *np,
		       char *err, size_t err_len)
{
	for (size_t i = 0; i < np->n_attribute; i++) {
		const Onnx__AttributeProto *a = np->attribute[i];
		if (!a || !a->name) {
			qvg_node_err(err, err_len, n, "malformed attribute");
			return -EINVAL;
		}
		const char *an = a->name;
		bool is_f = a->has_f || (a->has_type && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
		bool is_i = a->has_i || (a->has_type && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
		bool known = false;
		switch (n->op) {
		case QVG_GEMM:
			if (!strcmp(an, "alpha") && is_f) { n->alpha = a->f; known = true; }
			else if (!strcmp(an, "beta") && is_f) { n->beta = a->f; known = true; }
			else if (!strcmp(an, "transA") && is_i) { n->trans_a = a->i; known = true; }
			else if (!strcmp(an, "transB") && is_i) { n->trans_b = a->i; known = true; }
			break;
		case QVG_LEAKY_RELU:
			if (!strcmp(an, "alpha") && is_f) { n->alpha = a->f; known = true; }
			break;
		case QVG_SOFTMAX:
		case QVG_FLATTEN:
		case QVG_CONCAT:
			if (!strcmp(an, "axis") && is_i) { n->axis = a->i; known = true; }
			break;
		case QVG_CLIP:
			if (g->opset < 11 && !strcmp(an, "min") && is_f) { n->clip_min = a->f; known = true; }
			else if (g->opset < 11 && !strcmp(an, "max") && is_f) { n->clip_max = a->f; known = true; }
			break;
		case QVG_RESHAPE:
			if (!strcmp(an, "allowzero") && is_i) {
				if (a->i != 0) {
					qvg_node_err(err, err_len, n, "allowzero=%lld is not supported", (long long)a->i);
					return -ENOTSUP;
				}
				known = true;
			}
			break;
		case QVG_DROPOUT:
			/* Inference: Dropout is the identity whatever its ratio. */
			known = !strcmp(an, "ratio") || !strcmp(an, "seed") || !strcmp(an, "is_test");
			break;
		case QVG_BATCHNORM:
			if (!strcmp(an, "epsilon") && is_f) { n->eps = a->f; known = true; }
			else if (!strcmp(an, "momentum")) known = true;
			else if ((!strcmp(an, "spatial") || !strcmp(an, "is_test")) && is_i) {
				if (!strcmp(an, "spatial") && a->i != 1) {
					qvg_node_err(err, err_len, n, "spatial=%lld is not supported", (long long)a->i);
					return -ENOTSUP;
				}
				known = true;
			} else if (!strcmp(an, "training_mode") && is_i) {
				if (a->i != 0) {
					qvg_node_err(err, err_len, n, "training_mode=1 is not supported");
					return -ENOTSUP;
				}
				known = true;
			}
			break;
		default:
			break;
		}
		if (!known) {
			qvg_node_err(err, err_len, n, "attribute '%s' is not supported", an);
			return -ENOTSUP;
		}
	}
	return 0;
}

static int load_constant_node(struct qvg_graph *g, const Onnx__NodeProto *np, char *err, size_t err_len)
{
	const char *nm = name_ok(np->name) ? np->name : "?";
	if (np->n_output != 1 || !np->output || !name_ok(np->output[0]) || np->n_input != 0 ||
	    np->n_attribute != 1 || !np->attribute || !np->attribute[0] || !np->attribute[0]->name ||
	    strcmp(np->attribute[0]->name, "value") || !np->attribute[0]->t) {
		qvg_err(err, err_len, "node '%s' (Constant): only a 'value' tensor attribute is supported", nm);
		return -ENOTSUP;
	}
	int32_t id = qvg_tensor_find(g, np->output[0]);
	if (id >= 0 && g->t[id].defined) {
		qvg_err(err, err_len, "node '%s' (Constant): tensor '%s' is defined twice", nm, np->output[0]);
		return -EINVAL;
	}
	if (id < 0) {
		int r = qvg_tensor_add(g, np->output[0], &id);
		if (r < 0)
			return r;
	}
	char what[QV_ERR_LEN];
	snprintf(what, sizeof(what), "node '%s' (Constant)", nm);
	return load_tensor(g, &g->t[id], np->attribute[0]->t, what, err, err_len);
}

static int load_node(struct qvg_graph *g, const Onnx__NodeProto *np, uint32_t idx, char *err, size_t err_len)
{
	const char *op = np->op_type ? np->op_type : "";
	if (is_default_domain(np->domain) && !strcmp(op, "Constant"))
		return load_constant_node(g, np, err, err_len);

	struct qvg_node *n = &g->nodes[g->n_nodes];
	memset(n, 0, sizeof(*n));
	n->out = -1;
	n->c_id = n->x_id = -1;
	const char *nm = np->name;
	char tmp[32];
	if (!name_ok(nm)) {
		if (np->n_output && np->output && name_ok(np->output[0])) {
			nm = np->output[0];
		} else {
			snprintf(tmp, sizeof(tmp), "#%u", idx);
			nm = tmp;
		}
	}
	n->name = strdup(nm);
	if (!n->name)
		return -ENOMEM;
	g->n_nodes++; /* owned by g from here on, so qvg_free releases it */
	n->op_name = op;
	bool found = false;
	if (is_default_domain(np->domain)) {
		for (size_t i = 0; i < sizeof(op_table) / sizeof(op_table[0]); i++) {
			if (!strcmp(op, op_table[i].name)) {
				n->op = op_table[i].op;
				n->op_name = op_table[i].name;
				found = true;
			}
		}
	}
	if (!found) {
		/* op_name points into the protobuf: print before it is freed. */
		qvg_err(err, err_len, "node '%s' (%s): unsupported op", n->name, op);
		n->op_name = "?";
		return -ENOTSUP;
	}
	/* defaults */
	n->alpha = n->op == QVG_LEAKY_RELU ? 0.01f : 1.0f;
	n->beta = 1.0f;
	n->eps = 1e-5f;
	n->clip_min = -__builtin_inff();
	n->clip_max = __builtin_inff();
	n->axis = n->op == QVG_SOFTMAX ? (g->opset >= 13 ? -1 : 1) : (n->op == QVG_FLATTEN ? 1 : INT64_MIN);
	int r = parse_attrs(g, n, np, err, err_len);
	if (r < 0)
		return r;
	if (n->op == QVG_CONCAT && n->axis == INT64_MIN) {
		qvg_node_err(err, err_len, n, "attribute 'axis' is required");
		return -EINVAL;
	}
	if (np->n_input > QVG_MAX_NODE_INPUTS || (np->n_input && !np->input)) {
		qvg_node_err(err, err_len, n, "too many inputs");
		return -EINVAL;
	}
	if (np->n_output < 1 || !np->output || !name_ok(np->output[0])) {
		qvg_node_err(err, err_len, n, "has no output");
		return -EINVAL;
	}
	n->in = calloc(np->n_input ? np->n_input : 1, sizeof(*n->in));
	if (!n->in)
		return -ENOMEM;
	n->n_in = (uint32_t)np->n_input;
	for (size_t i = 0; i < np->n_input; i++) {
		if (!name_ok(np->input[i])) {
			n->in[i] = -1;
			continue;
		}
		int32_t id = qvg_tensor_find(g, np->input[i]);
		if (id < 0) {
			r = qvg_tensor_add(g, np->input[i], &id);
			if (r < 0)
				return r;
		}
		n->in[i] = id;
	}
	/* Dropout's optional mask output (and any extra output) is never
	 * defined: a node reading it fails as reading an undefined tensor. */
	int32_t id = qvg_tensor_find(g, np->output[0]);
	if (id >= 0 && g->t[id].defined) {
		qvg_node_err(err, err_len, n, "tensor '%s' is defined twice", np->output[0]);
		return -EINVAL;
	}
	if (id < 0) {
		r = qvg_tensor_add(g, np->output[0], &id);
		if (r < 0)
			return r;
	}
	g->t[id].defined = true;
	g->t[id].producer = (int32_t)(g->n_nodes - 1);
	n->out = id;
	return 0;
}

static int load_graph(struct qvg_graph *g, const Onnx__ModelProto *mp, char *err, size_t err_len)
{
	g->opset = 0;
	for (size_t i = 0; i < mp->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = mp->opset_import ? mp->opset_import[i] : NULL;
		if (o && is_default_domain(o->domain) && o->has_version)
			g->opset = o->version;
	}
	if (g->opset < 7 || g->opset > 18) {
		qvg_err(err, err_len, "model: default-domain opset %lld is not supported (7..18)",
			(long long)g->opset);
		return -ENOTSUP;
	}
	const Onnx__GraphProto *gp = mp->graph;
	if (!gp) {
		qvg_err(err, err_len, "model: no graph");
		return -EINVAL;
	}
	if (gp->n_sparse_initializer) {
		qvg_err(err, err_len, "model: sparse initializers are not supported");
		return -ENOTSUP;
	}
	if (gp->n_node > QVG_MAX_NODES || (gp->n_node && !gp->node) ||
	    (gp->n_initializer && !gp->initializer) || (gp->n_input && !gp->input) ||
	    (gp->n_output && !gp->output)) {
		qvg_err(err, err_len, "model: malformed graph (%zu nodes)", gp->n_node);
		return -EINVAL;
	}
	int r;
	for (size_t i = 0; i < gp->n_initializer; i++) {
		const Onnx__TensorProto *tp = gp->initializer[i];
		if (!tp || !name_ok(tp->name)) {
			qvg_err(err, err_len, "initializer %zu: no name", i);
			return -EINVAL;
		}
		if (qvg_tensor_find(g, tp->name) >= 0) {
			qvg_err(err, err_len, "initializer '%s': defined twice", tp->name);
			return -EINVAL;
		}
		int32_t id;
		r = qvg_tensor_add(g, tp->name, &id);
		if (r < 0)
			return r;
		char what[QV_ERR_LEN];
		snprintf(what, sizeof(what), "initializer '%.200s'", tp->name);
		r = load_tensor(g, &g->t[id], tp, what, err, err_len);
		if (r < 0)
			return r;
	}
	uint32_t n_inputs = 0;
	for (size_t i = 0; i < gp->n_input; i++) {
		const Onnx__ValueInfoProto *vi = gp->input[i];
		if (!vi || !name_ok(vi->name)) {
			qvg_err(err, err_len, "graph input %zu: no name", i);
			return -EINVAL;
		}
		if (qvg_tensor_find(g, vi->name) >= 0)
			continue; /* an initializer listed as an input (IR < 4) */
		if (++n_inputs > 1) {
			qvg_err(err, err_len, "model: more than one graph input ('%s')", vi->name);
			return -ENOTSUP;
		}
		r = load_input(g, vi, err, err_len);
		if (r < 0)
			return r;
	}
	if (n_inputs != 1) {
		qvg_err(err, err_len, "model: no graph input");
		return -EINVAL;
	}
	if (gp->n_output != 1 || !gp->output[0] || !name_ok(gp->output[0]->name)) {
		qvg_err(err, err_len, "model: exactly one graph output is supported (has %zu)", gp->n_output);
		return -ENOTSUP;
	}
	g->nodes = calloc(gp->n_node ? gp->n_node : 1, sizeof(*g->nodes));
	if (!g->nodes)
		return -ENOMEM;
	for (size_t i = 0; i < gp->n_node; i++) {
		if (!gp->node[i]) {
			qvg_err(err, err_len, "node %zu: missing", i);
			return -EINVAL;
		}
		r = load_node(g, gp->node[i], (uint32_t)i, err, err_len);
		if (r < 0)
			return r;
	}
	int32_t out = qvg_tensor_find(g, gp->output[0]->name);
	if (out < 0 || !g->t[out].defined) {
		qvg_err(err, err_len, "output '%s': not produced by any node", gp->output[0]->name);
		return -EINVAL;
	}
	g->output = out;
	return 0;
}

int qvg_from_onnx(const void *buf, size_t len, struct qvg_graph **ret_g, char *err, size_t err_len)
{
	if (!buf || !len) {
		qvg_err(err, err_len, "model: empty buffer");
		return -EINVAL;
	}
	Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
	if (!mp) {
		qvg_err(err, err_len, "model: not a valid ONNX protobuf");
		return -EINVAL;
	}
	struct qvg_graph *g = calloc(1, sizeof(*g));
	if (!g) {
		protobuf_c_message_free_unpacked(&mp->base, NULL);
		return -ENOMEM;
	}
	g->input = g->output = -1;
	int r = load_graph(g, mp, err, err_len);
	protobuf_c_message_free_unpacked(&mp->base, NULL);
	if (r < 0) {
		if (r == -ENOMEM)
			qvg_err(err, err_len, "model: out of memory");
		qvg_free(g);
		return r;
	}
	*ret_g = g;
	return 0;
}
