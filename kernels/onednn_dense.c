/* SPDX-License-Identifier: Apache-2.0 */
/*
 * onednn_dense.c - a dense step as oneDNN matmul primitives, one per batch
 * bucket (1, 2, 4, ... max_batch), all made at load time.
 *
 * Layout: the weights descriptor is created with format_tag any, so each
 * bucket's primitive picks the layout it runs fastest with; the plain K x N
 * weights are reordered once per distinct layout (buckets usually share
 * one or two). Bias and activation are fused: bias as the matmul's bias
 * argument, the activation as an eltwise post-op (LeakyRelu is eltwise_relu
 * with alpha, Clip eltwise_clip).
 *
 * Threads: this oneDNN is built on the OpenMP runtime. oneDNN sizes its
 * parallel regions with omp_get_max_threads() of the calling thread, and
 * when that is 1 it calls the kernel inline without entering
 * `#pragma omp parallel`, so no pool is created or woken. qv_thread_init()
 * sets the calling thread's nthreads-var to 1; qv_exec_ctx_create calls it,
 * and qv_run re-checks it with one omp_get_max_threads() read (a thread-
 * local load, no syscall) so a context handed to another thread still runs
 * inline. Primitive creation here also runs with one thread (the creating
 * thread's setting is saved and restored) so kernels are specialised for
 * single-threaded execution.
 *
 * Scratchpad: user mode. Each qv_dnnl_dense_ctx owns a buffer as large as
 * the largest bucket needs, so contexts on different threads never share
 * oneDNN state; the primitives and reordered weights are read-only and
 * shared by all contexts.
 *
 * Known cost: oneDNN 2.6's dnnl_primitive_execute builds its argument map
 * and scratchpad grantor on the heap, about 8 malloc/free pairs a call
 * (measured with a counting malloc). Nothing in this file allocates on the
 * run path, and no public oneDNN API avoids it; it is one more reason the
 * plan prefers the hand kernel where it is measured faster (small batches),
 * where a run makes no allocation at all.
 */
#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <immintrin.h>

#include <oneapi/dnnl/dnnl.h>

#include "qv_model.h"
#include "qv_ops.h"
#include "plan.h"

#define QV_DNNL_MAX_BUCKETS 16

struct bucket {
	dnnl_primitive_t prim;
	dnnl_memory_desc_t src_md, dst_md, w_md, scratch_md;
	uint32_t w_idx;
	size_t scratch_bytes;
};

struct qv_dnnl_dense {
	uint32_t K, N, n_buckets;
	bool has_bias;
	bool bf16;                     /* bf16 source and weights, fp32 bias and output */
	dnnl_memory_desc_t bias_md;
	float *bias;
	struct bucket b[QV_DNNL_MAX_BUCKETS];
	void *w[QV_DNNL_MAX_BUCKETS];  /* reordered weights, one per distinct layout */
	uint32_t n_w;
	size_t max_scratch;
};

struct ctx_bucket {
	dnnl_memory_t src, dst, w, bias, scratch;
	dnnl_exec_arg_t args[5];
	int nargs;
};

struct qv_dnnl_dense_ctx {
	dnnl_stream_t stream;
	void *scratch;
	uint16_t *xbf;                 /* bf16: the converted source, max_batch x K */
	struct ctx_bucket b[QV_DNNL_MAX_BUCKETS];
};

static dnnl_engine_t g_engine;
static pthread_once_t g_engine_once = PTHREAD_ONCE_INIT;
static dnnl_status_t g_engine_status;

/* One CPU engine for the process: engines are thread-safe and cheap to share. */
static void engine_init(void)
{
	g_engine_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
}

static int engine_get(dnnl_engine_t *ret)
{
	pthread_once(&g_engine_once, engine_init);
	if (g_engine_status != dnnl_success)
		return -ENODEV;
	*ret = g_engine;
	return 0;
}

static int st2err(dnnl_status_t s)
{
	switch (s) {
	case dnnl_success:
		return 0;
	case dnnl_out_of_memory:
		return -ENOMEM;
	case dnnl_unimplemented:
		return -ENOTSUP;
	case dnnl_invalid_arguments:
		return -EINVAL;
	default:
		return -EIO;
	}
}

void qv_thread_init(void)
{
	if (omp_get_max_threads() != 1)
		omp_set_num_threads(1);
}

static int make_post_ops(struct qv_act_desc act, dnnl_primitive_attr_t attr)
{
	dnnl_alg_kind_t alg;
	float a = 0.0f, b = 0.0f;
	switch (act.kind) {
	case QV_ACT_NONE:
		return 0;
	case QV_ACT_RELU:
		alg = dnnl_eltwise_relu;
		break;
	case QV_ACT_LEAKY_RELU:
		alg = dnnl_eltwise_relu;
		a = act.alpha;
		break;
	case QV_ACT_SIGMOID:
		alg = dnnl_eltwise_logistic;
		break;
	case QV_ACT_TANH:
		alg = dnnl_eltwise_tanh;
		break;
	case QV_ACT_CLIP:
		alg = dnnl_eltwise_clip;
		a = act.alpha;
		b = act.beta;
		break;
	default:
		return -EINVAL;
	}
	dnnl_post_ops_t po;
	dnnl_status_t s = dnnl_post_ops_create(&po);
	if (s != dnnl_success)
		return st2err(s);
	s = dnnl_post_ops_append_eltwise(po, 1.0f, alg, a, b);
	if (s == dnnl_success)
		s = dnnl_primitive_attr_set_post_ops(attr, po);
	dnnl_post_ops_destroy(po);
	return st2err(s);
}

static int reorder_weights(dnnl_engine_t eng, const float *W, uint32_t K, uint32_t N,
			   const dnnl_memory_desc_t *dst_md, void *dst)
{
	dnnl_memory_desc_t src_md;
	dnnl_dims_t dims = { K, N };
	dnnl_primitive_desc_t rpd = NULL;
	dnnl_primitive_t rp = NULL;
	dnnl_memory_t sm = NULL, dm = NULL;
	dnnl_stream_t st = NULL;
	dnnl_status_t s = dnnl_memory_desc_init_by_tag(&src_md, 2, dims, dnnl_f32, dnnl_ab);
	if (s == dnnl_success)
		s = dnnl_reorder_primitive_desc_create(&rpd, &src_md, eng, dst_md, eng, NULL);
	if (s == dnnl_success)
		s = dnnl_primitive_create(&rp, rpd);
	if (s == dnnl_success)
		s = dnnl_memory_create(&sm, &src_md, eng, (void *)W);
	if (s == dnnl_success)
		s = dnnl_memory_create(&dm, dst_md, eng, dst);
	if (s == dnnl_success)
		s = dnnl_stream_create(&st, eng, dnnl_stream_default_flags);
	if (s == dnnl_success) {
		dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, sm }, { DNNL_ARG_TO, dm } };
		s = dnnl_primitive_execute(rp, st, 2, args);
		if (s == dnnl_success)
			s = dnnl_stream_wait(st);
	}
	if (st)
		dnnl_stream_destroy(st);
	if (dm)
		dnnl_memory_destroy(dm);
	if (sm)
		dnnl_memory_destroy(sm);
	if (rp)
		dnnl_primitive_destroy(rp);
	if (rpd)
		dnnl_primitive_desc_destroy(rpd);
	return st2err(s);
}

static int make_bucket(struct qv_dnnl_dense *d, dnnl_engine_t eng, uint32_t rows, struct qv_act_desc act,
		       const float *W, struct bucket *bk)
{
	dnnl_memory_desc_t src_md, w_any, dst_md;
	dnnl_dims_t sd = { rows, d->K }, wd = { d->K, d->N }, dd = { rows, d->N };
	dnnl_matmul_desc_t desc;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_primitive_desc_t pd = NULL;
	int r;
	const dnnl_data_type_t dt = d->bf16 ? dnnl_bf16 : dnnl_f32;
	dnnl_status_t s = dnnl_memory_desc_init_by_tag(&src_md, 2, sd, dt, dnnl_ab);
	if (s == dnnl_success)
		s = dnnl_memory_desc_init_by_tag(&w_any, 2, wd, dt, dnnl_format_tag_any);
	if (s == dnnl_success)
		s = dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab);
	if (s == dnnl_success)
		s = dnnl_matmul_desc_init(&desc, &src_md, &w_any, d->has_bias ? &d->bias_md : NULL, &dst_md);
	if (s == dnnl_success)
		s = dnnl_primitive_attr_create(&attr);
	if (s == dnnl_success)
		s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
	if (s != dnnl_success) {
		r = st2err(s);
		goto out;
	}
	r = make_post_ops(act, attr);
	if (r < 0)
		goto out;
	s = dnnl_primitive_desc_create(&pd, &desc, attr, eng, NULL);
	if (s == dnnl_success)
		s = dnnl_primitive_create(&bk->prim, pd);
	if (s != dnnl_success) {
		r = st2err(s);
		goto out;
	}
	bk->src_md = src_md;
	bk->dst_md = dst_md;
	bk->w_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	bk->scratch_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	bk->scratch_bytes = dnnl_memory_desc_get_size(&bk->scratch_md);
	if (bk->scratch_bytes > d->max_scratch)
		d->max_scratch = bk->scratch_bytes;
	/* Share reordered weights between buckets that want the same layout. */
	bk->w_idx = UINT32_MAX;
	for (uint32_t i = 0; i < (uint32_t)(bk - d->b); i++) {
		if (dnnl_memory_desc_equal(&d->b[i].w_md, &bk->w_md)) {
			bk->w_idx = d->b[i].w_idx;
			break;
		}
	}
	if (bk->w_idx == UINT32_MAX) {
		size_t sz = dnnl_memory_desc_get_size(&bk->w_md);
		void *w = aligned_alloc(64, (sz + 63) & ~(size_t)63);
		if (!w) {
			r = -ENOMEM;
			goto out;
		}
		r = reorder_weights(eng, W, d->K, d->N, &bk->w_md, w);
		if (r < 0) {
			free(w);
			goto out;
		}
		bk->w_idx = d->n_w;
		d->w[d->n_w++] = w;
	}
	r = 0;
out:
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	if (attr)
		dnnl_primitive_attr_destroy(attr);
	return r;
}

void qv_dnnl_dense_free(struct qv_dnnl_dense *d)
{
	if (!d)
		return;
	for (uint32_t i = 0; i < d->n_buckets; i++)
		if (d->b[i].prim)
			dnnl_primitive_destroy(d->b[i].prim);
	for (uint32_t i = 0; i < d->n_w; i++)
		free(d->w[i]);
	free(d->bias);
	free(d);
}

static int dense_create(const float *W, uint32_t K, uint32_t N, const float *b,
			struct qv_act_desc act, uint32_t max_batch, bool bf16, struct qv_dnnl_dense **ret)
{
	if (!W || !K || !N || !max_batch || max_batch > (1u << (QV_DNNL_MAX_BUCKETS - 1)))
		return -EINVAL;
	dnnl_engine_t eng;
	int r = engine_get(&eng);
	if (r < 0)
		return r;
	struct qv_dnnl_dense *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->K = K;
	d->N = N;
	d->bf16 = bf16;
	if (b) {
		d->has_bias = true;
		d->bias = aligned_alloc(64, ((size_t)N * sizeof(float) + 63) & ~(size_t)63);
		if (!d->bias) {
			free(d);
			return -ENOMEM;
		}
		memcpy(d->bias, b, (size_t)N * sizeof(float));
		dnnl_dims_t bd = { 1, N };
		if (dnnl_memory_desc_init_by_tag(&d->bias_md, 2, bd, dnnl_f32, dnnl_ab) != dnnl_success) {
			qv_dnnl_dense_free(d);
			return -EINVAL;
		}
	}
	/* Create kernels for single-threaded use; restore the caller's setting. */
	int prev = omp_get_max_threads();
	omp_set_num_threads(1);
	r = 0;
	for (uint32_t rows = 1; rows <= max_batch && r == 0; rows *= 2) {
		struct bucket *bk = &d->b[d->n_buckets];
		r = make_bucket(d, eng, rows, act, W, bk);
		if (r == 0)
			d->n_buckets++;
		else if (bk->prim)
			dnnl_primitive_destroy(bk->prim);
	}
	omp_set_num_threads(prev);
	if (r < 0) {
		qv_dnnl_dense_free(d);
		return r;
	}
	*ret = d;
	return 0;
}

int qv_dnnl_dense_create(const float *W, uint32_t K, uint32_t N, const float *b,
			 struct qv_act_desc act, uint32_t max_batch, struct qv_dnnl_dense **ret)
{
	return dense_create(W, K, N, b, act, max_batch, false, ret);
}

/*
 * bf16: the weights are reordered from fp32 to bf16 once (oneDNN's
 * reorder rounds to nearest even, as the hand kernel); the source is
 * converted per run into the context's buffer (cvt_bf16 below) because
 * this oneDNN's matmul takes one data type for source and weights.
 */
int qv_dnnl_dense_create_bf16(const float *W, uint32_t K, uint32_t N, const float *b,
			      struct qv_act_desc act, uint32_t max_batch, struct qv_dnnl_dense **ret)
{
	if (!qv_prec_supported(QV_PREC_BF16))
		return -ENOTSUP;
	int r = dense_create(W, K, N, b, act, max_batch, true, ret);
	return r == -EINVAL && W && K && N && max_batch ? -ENOTSUP : r;
}

void qv_dnnl_dense_ctx_free(struct qv_dnnl_dense_ctx *c)
{
	if (!c)
		return;
	for (uint32_t i = 0; i < QV_DNNL_MAX_BUCKETS; i++) {
		struct ctx_bucket *cb = &c->b[i];
		dnnl_memory_t ms[5] = { cb->src, cb->dst, cb->w, cb->bias, cb->scratch };
		for (int j = 0; j < 5; j++)
			if (ms[j])
				dnnl_memory_destroy(ms[j]);
	}
	if (c->stream)
		dnnl_stream_destroy(c->stream);
	free(c->scratch);
	free(c->xbf);
	free(c);
}

int qv_dnnl_dense_ctx_create(const struct qv_dnnl_dense *d, struct qv_dnnl_dense_ctx **ret)
{
	dnnl_engine_t eng;
	int r = engine_get(&eng);
	if (r < 0)
		return r;
	qv_thread_init();
	struct qv_dnnl_dense_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	dnnl_status_t s = dnnl_stream_create(&c->stream, eng, dnnl_stream_default_flags);
	if (s == dnnl_success && d->max_scratch) {
		c->scratch = aligned_alloc(64, (d->max_scratch + 63) & ~(size_t)63);
		if (!c->scratch)
			s = dnnl_out_of_memory;
	}
	if (s == dnnl_success && d->bf16) {
		size_t n = ((size_t)1 << (d->n_buckets - 1)) * d->K * sizeof(uint16_t);
		c->xbf = aligned_alloc(64, (n + 63) & ~(size_t)63);
		if (!c->xbf)
			s = dnnl_out_of_memory;
	}
	for (uint32_t i = 0; i < d->n_buckets && s == dnnl_success; i++) {
		const struct bucket *bk = &d->b[i];
		struct ctx_bucket *cb = &c->b[i];
		s = dnnl_memory_create(&cb->src, &bk->src_md, eng, DNNL_MEMORY_NONE);
		if (s == dnnl_success)
			s = dnnl_memory_create(&cb->dst, &bk->dst_md, eng, DNNL_MEMORY_NONE);
		if (s == dnnl_success)
			s = dnnl_memory_create(&cb->w, &bk->w_md, eng, d->w[bk->w_idx]);
		if (s == dnnl_success && d->has_bias)
			s = dnnl_memory_create(&cb->bias, &d->bias_md, eng, d->bias);
		if (s == dnnl_success)
			s = dnnl_memory_create(&cb->scratch, &bk->scratch_md, eng,
					       bk->scratch_bytes ? c->scratch : DNNL_MEMORY_NONE);
		if (s != dnnl_success)
			break;
		int k = 0;
		cb->args[k++] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, cb->src };
		cb->args[k++] = (dnnl_exec_arg_t){ DNNL_ARG_WEIGHTS, cb->w };
		if (d->has_bias)
			cb->args[k++] = (dnnl_exec_arg_t){ DNNL_ARG_BIAS, cb->bias };
		cb->args[k++] = (dnnl_exec_arg_t){ DNNL_ARG_DST, cb->dst };
		cb->args[k++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, cb->scratch };
		cb->nargs = k;
	}
	if (s != dnnl_success) {
		qv_dnnl_dense_ctx_free(c);
		return st2err(s);
	}
	*ret = c;
	return 0;
}

/* n floats -> bf16, round to nearest even (vcvtne2ps2bf16). */
static __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void cvt_bf16(const float *x, size_t n,
									   uint16_t *o)
{
	size_t i = 0;
	for (; i + 32 <= n; i += 32)
		_mm512_storeu_si512(o + i, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16),
									 _mm512_loadu_ps(x + i)));
	for (; i < n; i += 16) {
		size_t left = n - i;
		__mmask16 m = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1u);
		__m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
		_mm256_mask_storeu_epi16(o + i, m, (__m256i)v);
	}
}

/* Runs bucket `bi` (2^bi rows) on x -> y. */
static inline int run_bucket(const struct qv_dnnl_dense *d, struct qv_dnnl_dense_ctx *c, uint32_t bi,
			     const float *x, float *y)
{
	struct ctx_bucket *cb = &c->b[bi];
	if (d->bf16) {
		cvt_bf16(x, ((size_t)1 << bi) * d->K, c->xbf);
		x = (const float *)(const void *)c->xbf;
	}
	/* oneDNN only reads the source; its API takes a non-const handle. */
	if (dnnl_memory_set_data_handle(cb->src, (void *)(uintptr_t)x) != dnnl_success ||
	    dnnl_memory_set_data_handle(cb->dst, y) != dnnl_success ||
	    dnnl_primitive_execute(d->b[bi].prim, c->stream, cb->nargs, cb->args) != dnnl_success)
		return -EIO;
	return 0;
}

/*
 * Rows that are not a bucket run as power-of-two chunks, largest first, in
 * place (row offsets into x and y, no copy): 37 rows = 32 + 4 + 1. Each
 * chunk is a full-efficiency primitive; the alternative, a runtime-M
 * primitive, is slower for every size, and padding to the next bucket
 * would need a copy and wastes up to half the work.
 */
int qv_dnnl_dense_run(const struct qv_dnnl_dense *d, struct qv_dnnl_dense_ctx *c,
		      const float *x, uint32_t rows, float *y)
{
	if (rows == 0 || rows >= (2u << (d->n_buckets - 1)))
		return -EINVAL;
	while (rows) {
		uint32_t bi = 31u - (uint32_t)__builtin_clz(rows);
		uint32_t n = 1u << bi;
		int r = run_bucket(d, c, bi, x, y);
		if (r < 0)
			return r;
		x += (size_t)n * d->K;
		y += (size_t)n * d->N;
		rows -= n;
	}
	return 0;
}

int qv_dnnl_dense_run_bucket(const struct qv_dnnl_dense *d, struct qv_dnnl_dense_ctx *c,
			     uint32_t bi, const float *x, float *y)
{
	if (bi >= d->n_buckets)
		return -EINVAL;
	return run_bucket(d, c, bi, x, y);
}
