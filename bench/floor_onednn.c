/* SPDX-License-Identifier: Apache-2.0 */
#include "floor_onednn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

struct floor_layer {
	dnnl_primitive_t prim;
	dnnl_memory_t src, wei, bias, dst; /* src of layer i+1 is dst of layer i */
	float *hidden;                     /* dst buffer unless this is the last layer */
	dnnl_memory_t own_src;             /* a layer that does not read the previous one's output */
	float *own_src_buf;
	dnnl_exec_arg_t args[4];
	int nargs;
};

struct qv_floor {
	dnnl_engine_t eng;
	dnnl_stream_t stream;
	uint32_t n;
	int own_io;   /* made without the caller's in / out: runs on its own buffers */
	struct floor_layer *l;
};

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t len, const char *fmt, ...)
{
	if (err && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return -EIO;
}

static int act_to_dnnl(struct qv_act_desc a, dnnl_alg_kind_t *ret_alg, float *ret_alpha,
		       float *ret_beta)
{
	switch (a.kind) {
	case QV_ACT_RELU:
		*ret_alg = dnnl_eltwise_relu, *ret_alpha = 0.f, *ret_beta = 0.f;
		return 0;
	case QV_ACT_LEAKY_RELU:
		*ret_alg = dnnl_eltwise_relu, *ret_alpha = a.alpha, *ret_beta = 0.f;
		return 0;
	case QV_ACT_SIGMOID:
		*ret_alg = dnnl_eltwise_logistic, *ret_alpha = 0.f, *ret_beta = 0.f;
		return 0;
	case QV_ACT_TANH:
		*ret_alg = dnnl_eltwise_tanh, *ret_alpha = 0.f, *ret_beta = 0.f;
		return 0;
	case QV_ACT_CLIP:
		/* clip_v2 is min(max(x, alpha), beta), the ONNX Clip semantics. */
		*ret_alg = dnnl_eltwise_clip_v2, *ret_alpha = a.alpha, *ret_beta = a.beta;
		return 0;
	case QV_ACT_NONE:
		break;
	}
	return -ENOENT;
}

static void layer_free(struct floor_layer *l)
{
	if (l->prim)
		dnnl_primitive_destroy(l->prim);
	/* src of a non-first layer is the previous layer's dst; freed there. */
	if (l->wei)
		dnnl_memory_destroy(l->wei);
	if (l->bias)
		dnnl_memory_destroy(l->bias);
	if (l->dst)
		dnnl_memory_destroy(l->dst);
	if (l->own_src)
		dnnl_memory_destroy(l->own_src);
	free(l->hidden);
	free(l->own_src_buf);
}

void qv_floor_free(struct qv_floor *f)
{
	if (!f)
		return;
	if (f->l) {
		if (f->n && f->l[0].src && f->l[0].src != f->l[0].own_src)
			dnnl_memory_destroy(f->l[0].src);
		for (uint32_t i = 0; i < f->n; i++)
			layer_free(&f->l[i]);
		free(f->l);
	}
	if (f->stream)
		dnnl_stream_destroy(f->stream);
	if (f->eng)
		dnnl_engine_destroy(f->eng);
	free(f);
}

/* Reorders the user's K x N row-major weights into the layout the primitive chose. */
static int make_weights(struct qv_floor *f, struct floor_layer *l, const struct qv_dense_layer *d,
			const dnnl_memory_desc_t *want, char *err, size_t err_len, uint32_t i)
{
	dnnl_memory_desc_t user_md;
	dnnl_dims_t wd = {d->K, d->N};
	dnnl_memory_t user = NULL;
	dnnl_primitive_desc_t rpd = NULL;
	dnnl_primitive_t reorder = NULL;
	int r = 0;

	if (dnnl_memory_desc_init_by_tag(&user_md, 2, wd, dnnl_f32, dnnl_ab) != dnnl_success ||
	    dnnl_memory_create(&user, &user_md, f->eng, (void *)d->W) != dnnl_success ||
	    dnnl_memory_create(&l->wei, want, f->eng, DNNL_MEMORY_ALLOCATE) != dnnl_success) {
		r = fail(err, err_len, "layer %u: weights memory", i);
		goto out;
	}
	if (dnnl_memory_desc_equal(&user_md, want)) {
		void *dst;
		if (dnnl_memory_get_data_handle(l->wei, &dst) != dnnl_success) {
			r = fail(err, err_len, "layer %u: weights handle", i);
			goto out;
		}
		memcpy(dst, d->W, (size_t)d->K * d->N * sizeof(float));
		goto out;
	}
	if (dnnl_reorder_primitive_desc_create(&rpd, &user_md, f->eng, want, f->eng, NULL) !=
		    dnnl_success ||
	    dnnl_primitive_create(&reorder, rpd) != dnnl_success) {
		r = fail(err, err_len, "layer %u: weights reorder", i);
		goto out;
	}
	dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, l->wei}};
	if (dnnl_primitive_execute(reorder, f->stream, 2, args) != dnnl_success ||
	    dnnl_stream_wait(f->stream) != dnnl_success)
		r = fail(err, err_len, "layer %u: weights reorder execute", i);
out:
	if (reorder)
		dnnl_primitive_destroy(reorder);
	if (rpd)
		dnnl_primitive_desc_destroy(rpd);
	if (user)
		dnnl_memory_destroy(user);
	return r;
}

static int make_layer(struct qv_floor *f, uint32_t i, const struct qv_dense_layer *d,
		      uint32_t rows, dnnl_memory_t src, float *user_out, int last,
		      char *err, size_t err_len)
{
	struct floor_layer *l = &f->l[i];
	dnnl_memory_desc_t src_md, wei_md, bias_md, dst_md;
	dnnl_dims_t sd = {rows, d->K}, wd = {d->K, d->N}, bd = {1, d->N}, dd = {rows, d->N};
	dnnl_matmul_desc_t md;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_post_ops_t po = NULL;
	dnnl_primitive_desc_t pd = NULL;
	int r = 0;

	if (dnnl_memory_desc_init_by_tag(&src_md, 2, sd, dnnl_f32, dnnl_ab) != dnnl_success ||
	    dnnl_memory_desc_init_by_tag(&wei_md, 2, wd, dnnl_f32, dnnl_format_tag_any) !=
		    dnnl_success ||
	    dnnl_memory_desc_init_by_tag(&bias_md, 2, bd, dnnl_f32, dnnl_ab) != dnnl_success ||
	    dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab) != dnnl_success ||
	    dnnl_matmul_desc_init(&md, &src_md, &wei_md, d->b ? &bias_md : NULL, &dst_md) !=
		    dnnl_success)
		return fail(err, err_len, "layer %u (%ux%u): matmul descriptor", i, d->K, d->N);

	if (dnnl_primitive_attr_create(&attr) != dnnl_success) {
		r = fail(err, err_len, "layer %u: attr", i);
		goto out;
	}
	dnnl_alg_kind_t alg;
	float alpha, beta;
	if (act_to_dnnl(d->act, &alg, &alpha, &beta) == 0) {
		if (dnnl_post_ops_create(&po) != dnnl_success ||
		    dnnl_post_ops_append_eltwise(po, 1.f, alg, alpha, beta) != dnnl_success ||
		    dnnl_primitive_attr_set_post_ops(attr, po) != dnnl_success) {
			r = fail(err, err_len, "layer %u: eltwise post-op", i);
			goto out;
		}
	}
	if (dnnl_primitive_desc_create(&pd, &md, attr, f->eng, NULL) != dnnl_success ||
	    dnnl_primitive_create(&l->prim, pd) != dnnl_success) {
		r = fail(err, err_len, "layer %u (%ux%u, %u rows): matmul primitive", i, d->K,
			 d->N, rows);
		goto out;
	}
	r = make_weights(f, l, d, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
			 err, err_len, i);
	if (r)
		goto out;
	if (d->b) {
		void *bh;
		if (dnnl_memory_create(&l->bias, &bias_md, f->eng, DNNL_MEMORY_ALLOCATE) !=
			    dnnl_success ||
		    dnnl_memory_get_data_handle(l->bias, &bh) != dnnl_success) {
			r = fail(err, err_len, "layer %u: bias memory", i);
			goto out;
		}
		memcpy(bh, d->b, (size_t)d->N * sizeof(float));
	}
	float *dst_buf = user_out;
	if (!last || !user_out) {
		l->hidden = aligned_alloc(64, ((size_t)rows * d->N * sizeof(float) + 63) & ~(size_t)63);
		if (!l->hidden) {
			r = -ENOMEM;
			fail(err, err_len, "layer %u: out of memory", i);
			goto out;
		}
		dst_buf = l->hidden;
	}
	if (dnnl_memory_create(&l->dst, &dst_md, f->eng, dst_buf) != dnnl_success) {
		r = fail(err, err_len, "layer %u: dst memory", i);
		goto out;
	}
	l->src = src;
	l->nargs = 0;
	l->args[l->nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, l->src};
	l->args[l->nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, l->wei};
	if (l->bias)
		l->args[l->nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, l->bias};
	l->args[l->nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, l->dst};
out:
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	if (po)
		dnnl_post_ops_destroy(po);
	if (attr)
		dnnl_primitive_attr_destroy(attr);
	return r;
}

static uint32_t layer_rows(const struct qv_dense_layer *d, uint32_t rows)
{
	return rows * (d->rows_mult ? d->rows_mult : 1);
}

/* A source buffer of its own for a layer that reads something other than
 * the previous layer's output (a graph's dense layers are not always a chain). */
static int own_src(struct qv_floor *f, uint32_t i, uint32_t rows, uint32_t K, dnnl_memory_t *ret,
		   char *err, size_t err_len)
{
	struct floor_layer *l = &f->l[i];
	size_t n = (size_t)rows * K;
	l->own_src_buf = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
	if (!l->own_src_buf)
		return -ENOMEM;
	for (size_t j = 0; j < n; j++)
		l->own_src_buf[j] = (float)(j % 7) * 0.125f - 0.375f;
	dnnl_memory_desc_t md;
	dnnl_dims_t dd = {rows, K};
	if (dnnl_memory_desc_init_by_tag(&md, 2, dd, dnnl_f32, dnnl_ab) != dnnl_success ||
	    dnnl_memory_create(&l->own_src, &md, f->eng, l->own_src_buf) != dnnl_success)
		return fail(err, err_len, "layer %u: source memory", i);
	*ret = l->own_src;
	return 0;
}

int qv_floor_create(const struct qv_dense_layer *layers, uint32_t n_layers, uint32_t rows,
		    const float *in, float *out, struct qv_floor **ret_floor,
		    char *err, size_t err_len)
{
	if (!layers || !n_layers || !rows)
		return -EINVAL;
	struct qv_floor *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	int r = -EIO;
	f->l = calloc(n_layers, sizeof(*f->l));
	if (!f->l) {
		r = -ENOMEM;
		goto fail;
	}
	f->n = n_layers;
	f->own_io = !in || !out;
	if (dnnl_engine_create(&f->eng, dnnl_cpu, 0) != dnnl_success ||
	    dnnl_stream_create(&f->stream, f->eng, dnnl_stream_default_flags) != dnnl_success) {
		fail(err, err_len, "oneDNN CPU engine or stream");
		goto fail;
	}
	dnnl_memory_t src = NULL;
	if (in) {
		dnnl_memory_desc_t in_md;
		dnnl_dims_t id = {layer_rows(&layers[0], rows), layers[0].K};
		if (dnnl_memory_desc_init_by_tag(&in_md, 2, id, dnnl_f32, dnnl_ab) != dnnl_success ||
		    dnnl_memory_create(&f->l[0].src, &in_md, f->eng, (void *)in) != dnnl_success) {
			fail(err, err_len, "input memory");
			goto fail;
		}
		src = f->l[0].src;
	}
	for (uint32_t i = 0; i < n_layers; i++) {
		uint32_t lr = layer_rows(&layers[i], rows);
		if (!src || (i && (layers[i].K != layers[i - 1].N || lr != layer_rows(&layers[i - 1], rows)))) {
			r = own_src(f, i, lr, layers[i].K, &src, err, err_len);
			if (r)
				goto fail;
		}
		r = make_layer(f, i, &layers[i], lr, src, out, i + 1 == n_layers, err, err_len);
		if (r)
			goto fail;
		src = f->l[i].dst;
	}
	*ret_floor = f;
	return 0;
fail:
	qv_floor_free(f);
	return r;
}

int qv_floor_set_io(struct qv_floor *f, const float *in, float *out)
{
	if (f->own_io)
		return -EINVAL;
	if (dnnl_memory_set_data_handle(f->l[0].src, (void *)in) != dnnl_success ||
	    dnnl_memory_set_data_handle(f->l[f->n - 1].dst, out) != dnnl_success)
		return -EIO;
	return 0;
}

int qv_floor_run(struct qv_floor *f)
{
	for (uint32_t i = 0; i < f->n; i++)
		if (dnnl_primitive_execute(f->l[i].prim, f->stream, f->l[i].nargs, f->l[i].args) !=
		    dnnl_success)
			return -EIO;
	/* CPU streams execute in order; one wait at the end of the chain, as a
	 * user would write it, costs nothing when execution was synchronous. */
	return dnnl_stream_wait(f->stream) == dnnl_success ? 0 : -EIO;
}
