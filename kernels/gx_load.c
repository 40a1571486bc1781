/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gx_load.c - ONNX protobuf -> struct gx_model (nodes, tensors, inputs,
 * outputs) in topological order. Like onnx_load.c, the protobuf is
 * untrusted: counts and pointers are checked before use and everything is
 * copied out so the unpacked message is freed before this returns.
 * Initializers are decoded by onnx_load.c's qv_onnx_tensor_decode.
 *
 * Names are looked up through name_index.h, the index graph.c uses too
 * (why it is written rather than taken from a library is said there).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx.h"

void gx_err(char *err, size_t err_len, const struct gx_node *n, const char *fmt, ...)
{
	if (!err || !err_len)
		return;
	int k = 0;
	if (n) {
		k = snprintf(err, err_len, "node '%.100s' (%.40s): ", n->name, n->op);
		if (k < 0 || (size_t)k >= err_len)
			return;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + k, err_len - (size_t)k, fmt, ap);
	va_end(ap);
}

static void attr_free(struct gx_attr *a)
{
	free(a->name);
	free(a->ints);
	free(a->floats);
	if (a->has_t)
		free(a->t.data);
}

void gx_free(struct gx_model *g)
{
	if (!g)
		return;
	for (uint32_t i = 0; i < g->n_t; i++) {
		free(g->t[i].name);
		free(g->t[i].data);
	}
	free(g->t);
	qv_name_index_free(&g->names);
	for (uint32_t i = 0; i < g->n_nodes; i++) {
		struct gx_node *n = &g->nodes[i];
		free(n->name);
		free(n->op);
		free(n->in);
		free(n->out);
		for (uint32_t j = 0; j < n->n_attr; j++)
			attr_free(&n->attr[j]);
		free(n->attr);
	}
	free(g->nodes);
	free(g->order);
	for (uint32_t i = 0; i < g->n_steps; i++)
		if (g->steps[i].own)
			gx_step_free(&g->steps[i]);
	free(g->steps);
	for (uint32_t i = 0; i < g->n_ref; i++)
		gx_step_free(&g->ref[i]);
	free(g->ref);
	free(g->store_bytes);
	free(g);
}

static const char *tensor_name(const void *owner, int32_t id)
{
	return ((const struct gx_model *)owner)->t[id].name;
}

int32_t gx_tensor_find(const struct gx_model *g, const char *name)
{
	return qv_name_index_find(&g->names, name, tensor_name, g);
}

int gx_tensor_add(struct gx_model *g, const char *name, int32_t *ret_id)
{
	if (g->n_t == g->cap_t) {
		uint32_t cap = g->cap_t ? 2 * g->cap_t : 64;
		struct gx_tensor *t = realloc(g->t, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		g->t = t;
		g->cap_t = cap;
	}
	int r = qv_name_index_reserve(&g->names, g->n_t, 128, tensor_name, g);
	if (r < 0)
		return r;
	struct gx_tensor *t = &g->t[g->n_t];
	memset(t, 0, sizeof(*t));
	t->name = strdup(name);
	if (!t->name)
		return -ENOMEM;
	t->producer = t->store = t->origin = t->bpos = -1;
	int32_t id = (int32_t)g->n_t++;
	qv_name_index_put(&g->names, t->name, id);
	*ret_id = id;
	return 0;
}

const struct gx_attr *gx_attr(const struct gx_node *n, const char *name)
{
	for (uint32_t i = 0; i < n->n_attr; i++)
		if (!strcmp(n->attr[i].name, name))
			return &n->attr[i];
	return NULL;
}

static bool name_ok(const char *s)
{
	return s && s[0];
}

static bool default_domain(const char *d)
{
	return !d || !d[0] || !strcmp(d, "ai.onnx");
}

static int copy_attr(struct gx_model *g, struct gx_node *n, struct gx_attr *a,
		     const Onnx__AttributeProto *ap, char *err, size_t err_len)
{
	if (!ap || !name_ok(ap->name)) {
		gx_err(err, err_len, n, "malformed attribute");
		return -EINVAL;
	}
	a->name = strdup(ap->name);
	if (!a->name)
		return -ENOMEM;
	a->type = ap->has_type ? (int)ap->type : 0;
	a->f = ap->has_f ? ap->f : 0.0f;
	a->i = ap->has_i ? ap->i : 0;
	if (ap->n_ints) {
		if (!ap->ints || ap->n_ints > 1024) {
			gx_err(err, err_len, n, "attribute '%s': malformed ints", ap->name);
			return -EINVAL;
		}
		a->ints = malloc(ap->n_ints * sizeof(int64_t));
		if (!a->ints)
			return -ENOMEM;
		memcpy(a->ints, ap->ints, ap->n_ints * sizeof(int64_t));
		a->n_ints = (uint32_t)ap->n_ints;
	}
	if (ap->n_floats) {
		if (!ap->floats || ap->n_floats > 1024) {
			gx_err(err, err_len, n, "attribute '%s': malformed floats", ap->name);
			return -EINVAL;
		}
		a->floats = malloc(ap->n_floats * sizeof(float));
		if (!a->floats)
			return -ENOMEM;
		memcpy(a->floats, ap->floats, ap->n_floats * sizeof(float));
		a->n_floats = (uint32_t)ap->n_floats;
	}
	if (ap->t) {
		char what[QV_ERR_LEN];
		snprintf(what, sizeof(what), "node '%.100s' (%.40s): attribute '%.40s'", n->name, n->op,
			 ap->name);
		int r = qv_onnx_tensor_decode(ap->t, QV_ONNX_WIDE, QVG_MAX_PARAM_BYTES - g->param_bytes,
					      what, &a->t, err, err_len);
		if (r < 0)
			return r;
		a->has_t = true;
		g->param_bytes += a->t.numel * a->t.esz;
	}
	if (ap->g || ap->n_graphs) {
		gx_err(err, err_len, n, "subgraph attributes are not supported");
		return -ENOTSUP;
	}
	return 0;
}

static int tensor_ref(struct gx_model *g, const char *name, int32_t *ret)
{
	int32_t id = gx_tensor_find(g, name);
	if (id < 0) {
		int r = gx_tensor_add(g, name, &id);
		if (r < 0)
			return r;
	}
	*ret = id;
	return 0;
}

static int load_node(struct gx_model *g, const Onnx__NodeProto *np, uint32_t idx, char *err, size_t err_len)
{
	struct gx_node *n = &g->nodes[g->n_nodes];
	memset(n, 0, sizeof(*n));
	char tmp[32];
	const char *nm = np->name;
	if (!name_ok(nm)) {
		if (np->n_output && np->output && name_ok(np->output[0])) {
			nm = np->output[0];
		} else {
			snprintf(tmp, sizeof(tmp), "#%u", idx);
			nm = tmp;
		}
	}
	n->name = strdup(nm);
	n->op = strdup(np->op_type ? np->op_type : "");
	g->n_nodes++; /* owned by g from here on */
	if (!n->name || !n->op)
		return -ENOMEM;
	if (!default_domain(np->domain)) {
		gx_err(err, err_len, n, "unsupported op (domain '%.60s')", np->domain);
		return -ENOTSUP;
	}
	if (np->n_input > QVG_MAX_NODE_INPUTS || (np->n_input && !np->input) ||
	    np->n_output > 64 || (np->n_output && !np->output) ||
	    np->n_attribute > 64 || (np->n_attribute && !np->attribute)) {
		gx_err(err, err_len, n, "malformed node");
		return -EINVAL;
	}
	if (np->n_output < 1 || !name_ok(np->output[0])) {
		gx_err(err, err_len, n, "has no output");
		return -EINVAL;
	}
	n->in = calloc(np->n_input ? np->n_input : 1, sizeof(*n->in));
	n->out = calloc(np->n_output, sizeof(*n->out));
	n->attr = calloc(np->n_attribute ? np->n_attribute : 1, sizeof(*n->attr));
	if (!n->in || !n->out || !n->attr)
		return -ENOMEM;
	int r;
	for (size_t i = 0; i < np->n_attribute; i++) {
		n->n_attr++;
		if ((r = copy_attr(g, n, &n->attr[i], np->attribute[i], err, err_len)) < 0)
			return r;
	}
	n->n_in = (uint32_t)np->n_input;
	for (size_t i = 0; i < np->n_input; i++) {
		n->in[i] = -1;
		if (name_ok(np->input[i]) && (r = tensor_ref(g, np->input[i], &n->in[i])) < 0)
			return r;
	}
	n->n_out = (uint32_t)np->n_output;
	for (size_t i = 0; i < np->n_output; i++) {
		n->out[i] = -1;
		if (!name_ok(np->output[i]))
			continue;
		if ((r = tensor_ref(g, np->output[i], &n->out[i])) < 0)
			return r;
		struct gx_tensor *t = &g->t[n->out[i]];
		if (t->defined || t->producer >= 0) {
			gx_err(err, err_len, n, "tensor '%.100s' is defined twice", t->name);
			return -EINVAL;
		}
		t->producer = (int32_t)(g->n_nodes - 1);
	}
	return 0;
}

static int load_input(struct gx_model *g, const Onnx__ValueInfoProto *vi, char *err, size_t err_len)
{
	const char *name = vi->name;
	const Onnx__TypeProto *tp = vi->type;
	if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
		gx_err(err, err_len, NULL, "input '%.100s': not a tensor", name);
		return -ENOTSUP;
	}
	const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
	int32_t et = tt->has_elem_type ? tt->elem_type : 0;
	if (et != QV_DT_F32 && et != QV_DT_I32 && et != QV_DT_I64) {
		gx_err(err, err_len, NULL, "input '%.100s': element type %d is not float32, int32 or int64",
		       name, et);
		return -ENOTSUP;
	}
	const Onnx__TensorShapeProto *sp = tt->shape;
	if (!sp || sp->n_dim < 1 || sp->n_dim > QV_MAX_RANK || !sp->dim) {
		gx_err(err, err_len, NULL, "input '%.100s': needs a shape of rank 1..%d with the batch first",
		       name, QV_MAX_RANK);
		return -EINVAL;
	}
	if (g->n_in == QV_MAX_TENSORS) {
		gx_err(err, err_len, NULL, "model: more than %u inputs", QV_MAX_TENSORS);
		return -E2BIG;
	}
	int32_t id;
	int r = gx_tensor_add(g, name, &id);
	if (r < 0)
		return r;
	struct gx_tensor *t = &g->t[id];
	t->dt = (uint32_t)et;
	t->rank = (uint32_t)sp->n_dim;
	t->bpos = 0;
	t->dims[0] = 1; /* the batch, whatever the file says */
	uint64_t numel = 1;
	for (size_t i = 1; i < sp->n_dim; i++) {
		const Onnx__TensorShapeProto__Dimension *d = sp->dim[i];
		if (!d || d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
		    d->dim_value <= 0 || d->dim_value > QVG_MAX_DIM) {
			gx_err(err, err_len, NULL, "input '%.100s': dimension %zu must be a fixed size in 1..%lld",
			       name, i, (long long)QVG_MAX_DIM);
			return -EINVAL;
		}
		t->dims[i] = d->dim_value;
		numel *= (uint64_t)d->dim_value;
		if (numel > GX_MAX_ROW_ELEMS) {
			gx_err(err, err_len, NULL, "input '%.100s': a row exceeds %llu elements", name,
			       (unsigned long long)GX_MAX_ROW_ELEMS);
			return -E2BIG;
		}
	}
	t->numel = numel;
	t->defined = true;
	t->origin = (int32_t)g->n_in;
	g->in[g->n_in++] = id;
	return 0;
}

/* Kahn's order over the nodes; a node whose input nobody produces (or that
 * sits on a cycle) is named. */
static int sort_nodes(struct gx_model *g, char *err, size_t err_len)
{
	g->order = malloc((g->n_nodes ? g->n_nodes : 1) * sizeof(*g->order));
	bool *done = calloc(g->n_nodes + 1, 1);
	bool *avail = calloc(g->n_t + 1, 1);
	int r = -ENOMEM;
	if (!g->order || !done || !avail)
		goto out;
	for (uint32_t i = 0; i < g->n_t; i++)
		avail[i] = g->t[i].defined;
	uint32_t k = 0;
	for (bool progress = true; progress && k < g->n_nodes;) {
		progress = false;
		for (uint32_t i = 0; i < g->n_nodes; i++) {
			if (done[i])
				continue;
			const struct gx_node *n = &g->nodes[i];
			bool ready = true;
			for (uint32_t j = 0; j < n->n_in && ready; j++)
				ready = n->in[j] < 0 || avail[n->in[j]];
			if (!ready)
				continue;
			done[i] = true;
			g->order[k++] = i;
			for (uint32_t j = 0; j < n->n_out; j++)
				if (n->out[j] >= 0)
					avail[n->out[j]] = true;
			progress = true;
		}
	}
	if (k < g->n_nodes) {
		for (uint32_t i = 0; i < g->n_nodes; i++) {
			if (done[i])
				continue;
			const struct gx_node *n = &g->nodes[i];
			for (uint32_t j = 0; j < n->n_in; j++) {
				if (n->in[j] >= 0 && !avail[n->in[j]]) {
					gx_err(err, err_len, n, "input '%.100s' is never produced (undefined, or a cycle)",
					       g->t[n->in[j]].name);
					r = -EINVAL;
					goto out;
				}
			}
		}
		gx_err(err, err_len, NULL, "model: nodes cannot be ordered");
		r = -EINVAL;
		goto out;
	}
	r = 0;
out:
	free(done);
	free(avail);
	return r;
}

static int load_graph(struct gx_model *g, const Onnx__ModelProto *mp, char *err, size_t err_len)
{
	for (size_t i = 0; i < mp->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = mp->opset_import ? mp->opset_import[i] : NULL;
		if (o && default_domain(o->domain) && o->has_version)
			g->opset = o->version;
	}
	if (g->opset < 7 || g->opset > 18) {
		gx_err(err, err_len, NULL, "model: default-domain opset %lld is not supported (7..18)",
		       (long long)g->opset);
		return -ENOTSUP;
	}
	const Onnx__GraphProto *gp = mp->graph;
	if (!gp) {
		gx_err(err, err_len, NULL, "model: no graph");
		return -EINVAL;
	}
	if (gp->n_sparse_initializer) {
		gx_err(err, err_len, NULL, "model: sparse initializers are not supported");
		return -ENOTSUP;
	}
	if (gp->n_node > QVG_MAX_NODES || (gp->n_node && !gp->node) ||
	    (gp->n_initializer && !gp->initializer) || (gp->n_input && !gp->input) ||
	    (gp->n_output && !gp->output)) {
		gx_err(err, err_len, NULL, "model: malformed graph (%zu nodes)", gp->n_node);
		return -EINVAL;
	}
	int r;
	for (size_t i = 0; i < gp->n_initializer; i++) {
		const Onnx__TensorProto *tp = gp->initializer[i];
		if (!tp || !name_ok(tp->name)) {
			gx_err(err, err_len, NULL, "initializer %zu: no name", i);
			return -EINVAL;
		}
		if (gx_tensor_find(g, tp->name) >= 0) {
			gx_err(err, err_len, NULL, "initializer '%.100s': defined twice", tp->name);
			return -EINVAL;
		}
		int32_t id;
		if ((r = gx_tensor_add(g, tp->name, &id)) < 0)
			return r;
		char what[QV_ERR_LEN];
		snprintf(what, sizeof(what), "initializer '%.200s'", tp->name);
		struct qv_onnx_tensor ot;
		r = qv_onnx_tensor_decode(tp, QV_ONNX_WIDE, QVG_MAX_PARAM_BYTES - g->param_bytes, what, &ot,
					  err, err_len);
		if (r < 0)
			return r;
		struct gx_tensor *t = &g->t[id];
		t->dt = ot.dtype == QV_DT_I32 ? QV_DT_I64 : ot.dtype;
		t->rank = ot.rank;
		memcpy(t->dims, ot.shape, sizeof(t->dims));
		t->numel = ot.numel;
		t->data = ot.data;
		t->defined = true;
		g->param_bytes += ot.numel * ot.esz;
	}
	for (size_t i = 0; i < gp->n_input; i++) {
		const Onnx__ValueInfoProto *vi = gp->input[i];
		if (!vi || !name_ok(vi->name)) {
			gx_err(err, err_len, NULL, "graph input %zu: no name", i);
			return -EINVAL;
		}
		if (gx_tensor_find(g, vi->name) >= 0)
			continue; /* an initializer listed as an input: a constant */
		if ((r = load_input(g, vi, err, err_len)) < 0)
			return r;
	}
	if (!g->n_in) {
		gx_err(err, err_len, NULL, "model: no graph input");
		return -EINVAL;
	}
	g->nodes = calloc(gp->n_node ? gp->n_node : 1, sizeof(*g->nodes));
	if (!g->nodes)
		return -ENOMEM;
	for (size_t i = 0; i < gp->n_node; i++) {
		if (!gp->node[i]) {
			gx_err(err, err_len, NULL, "node %zu: missing", i);
			return -EINVAL;
		}
		if ((r = load_node(g, gp->node[i], (uint32_t)i, err, err_len)) < 0)
			return r;
	}
	if (gp->n_output < 1 || gp->n_output > QV_MAX_TENSORS) {
		gx_err(err, err_len, NULL, "model: %zu graph outputs (1..%u supported)", gp->n_output,
		       QV_MAX_TENSORS);
		return -ENOTSUP;
	}
	for (size_t i = 0; i < gp->n_output; i++) {
		const Onnx__ValueInfoProto *vi = gp->output[i];
		if (!vi || !name_ok(vi->name)) {
			gx_err(err, err_len, NULL, "graph output %zu: no name", i);
			return -EINVAL;
		}
		int32_t id = gx_tensor_find(g, vi->name);
		if (id < 0 || (!g->t[id].defined && g->t[id].producer < 0)) {
			gx_err(err, err_len, NULL, "output '%.100s': not produced by any node", vi->name);
			return -EINVAL;
		}
		g->out[g->n_out++] = id;
	}
	return sort_nodes(g, err, err_len);
}

int gx_parse(const void *buf, size_t len, struct gx_model **ret, char *err, size_t err_len)
{
	if (!buf || !len) {
		gx_err(err, err_len, NULL, "model: empty buffer");
		return -EINVAL;
	}
	Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
	if (!mp) {
		gx_err(err, err_len, NULL, "model: not a valid ONNX protobuf");
		return -EINVAL;
	}
	struct gx_model *g = calloc(1, sizeof(*g));
	if (!g) {
		protobuf_c_message_free_unpacked(&mp->base, NULL);
		return -ENOMEM;
	}
	int r = load_graph(g, mp, err, err_len);
	protobuf_c_message_free_unpacked(&mp->base, NULL);
	if (r < 0) {
		if (r == -ENOMEM)
			gx_err(err, err_len, NULL, "model: out of memory");
		gx_free(g);
		return r;
	}
	*ret = g;
	return 0;
}
