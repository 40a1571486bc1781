/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gx_build.h - what gx_build.c (the building framework: outputs, views,
 * folding, broadcasting, the op table) shares with the op builders in
 * gx_ops_shape.c (shapes and data movement) and gx_ops_math.c
 * (arithmetic, reductions, normalisation, matrix products). Internal.
 */
#ifndef QV_GX_BUILD_H
#define QV_GX_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gx.h"

/* One node being built: errors name it. */
struct bctx {
	struct gx_model *g;
	const struct gx_node *n;
	char *err;
	size_t err_len;
};

/* an error naming the node being built */
#define BERR(b, ...) gx_err((b)->err, (b)->err_len, (b)->n, __VA_ARGS__)

/* gx_build.c: what every builder uses */
uint64_t gxb_prod(const int64_t *d, uint32_t from, uint32_t to);
void gxb_shape_str(const struct gx_tensor *t, char *s, size_t len);
struct gx_tensor *gxb_opt_t(struct bctx *b, uint32_t i);
__attribute__((returns_nonnull)) struct gx_tensor *gxb_in_t(struct bctx *b, uint32_t i);
bool gxb_is_const(const struct gx_tensor *t);
int gxb_need_in(struct bctx *b, uint32_t lo, uint32_t hi);
int64_t gxb_attr_i(const struct gx_node *n, const char *name, int64_t def);
float gxb_attr_f(const struct gx_node *n, const char *name, float def);
int gxb_norm_axis(struct bctx *b, int64_t a, uint32_t rank, uint32_t *ret);
int gxb_const_ints(struct bctx *b, const struct gx_tensor *t, int64_t *v, uint32_t max, uint32_t *ret_n);
int gxb_attr_or_input_ints(struct bctx *b, const char *aname, uint32_t idx, int64_t *v, uint32_t max,
	uint32_t *ret_n, bool *ret_given);
int gxb_check_dims(struct bctx *b, uint32_t rank, const int64_t *dims, uint64_t *ret_numel);
int gxb_set_shape(struct bctx *b, struct gx_tensor *o, uint32_t dt, uint32_t rank, const int64_t *dims,
	int32_t bpos);
int gxb_def_const(struct bctx *b, int32_t id, uint32_t dt, uint32_t rank, const int64_t *dims, void *data);
int gxb_new_store(struct gx_model *g, uint64_t row_bytes, int32_t *ret);
int gxb_def_view(struct bctx *b, int32_t id, const struct gx_tensor *x, uint32_t rank, const int64_t *dims,
	int32_t bpos);
int gxb_new_step(struct bctx *b, enum gx_kind kind, struct gx_step **ret);
void gxb_drop_last_step(struct gx_model *g);
int gxb_step_in(struct gx_step *s, const struct gx_model *g, int32_t id);
int gxb_emit(struct bctx *b, struct gx_step *s, int32_t id, uint32_t dt, uint32_t rank, const int64_t *dims,
	int32_t bpos);
void gxb_strides_of(const int64_t *dims, uint32_t rank, int64_t *st);
bool gxb_next_coord(int64_t *c, const int64_t *dims, uint32_t rank);
int32_t *gxb_map_alloc(uint64_t n);
int gxb_bcast(struct bctx *b, struct gx_step *s, uint32_t k, const int32_t *ids, uint32_t *ret_rank,
	int64_t *dims, int32_t *ret_bpos);

/* gx_ops_shape.c */
int gxb_constant(struct bctx *b);
int gxb_shape(struct bctx *b);
int gxb_reshape(struct bctx *b);
int gxb_flatten(struct bctx *b);
int gxb_squeeze(struct bctx *b, bool un);
int gxb_transpose(struct bctx *b);
int gxb_slice(struct bctx *b);
int gxb_split(struct bctx *b);
int gxb_concat(struct bctx *b);
int gxb_gather(struct bctx *b);
int gxb_expand(struct bctx *b);
int gxb_const_of_shape(struct bctx *b);
int gxb_range(struct bctx *b);

/* gx_ops_math.c */
int gxb_binary(struct bctx *b, int op);
int gxb_where(struct bctx *b);
int gxb_unary(struct bctx *b, int op);
int gxb_cast(struct bctx *b);
int gxb_softmax(struct bctx *b, bool lg);
int gxb_reduce(struct bctx *b, int op);
int gxb_layernorm(struct bctx *b);
int gxb_batchnorm(struct bctx *b);
int gxb_matmul(struct bctx *b);
int gxb_gemm(struct bctx *b);

#endif /* QV_GX_BUILD_H */
