/* SPDX-License-Identifier: Apache-2.0 */
/*
 * precision.c - bf16 / int8 plans and the accuracy guard (the contract is
 * in qv_model.h, the kernels in dense_lowp.c).
 *
 * A dense step's kernels (hand kernel, oneDNN primitives, their timings)
 * form a "kernel set"; the step holds the one it runs. The guard makes the
 * reduced sets beside the fp32 ones, swaps them into the steps, runs the
 * golden rows through the real plan (qv_run, the same code a worker runs)
 * and compares with the fp32 plan's outputs; the losing sets are freed
 * before the model is published, so a served model holds one set a step.
 *
 * AUTO is greedy in plan order: a layer's candidates are tried fastest
 * first (batch-1 time of the step's own kernels, measured here), each with
 * every earlier layer at its chosen precision, and the first whose whole-
 * model error is within tolerance stays. Greedy is not the optimum over
 * all 3^L assignments, but L is small, each try is one pass over the
 * golden rows, and an early layer's error propagates through every later
 * one, so settling layers front to back is the natural order.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph.h"
#include "plan.h"

struct kset {
	struct qv_dnnl_dense *dnnl;
	struct qv_hand_dense *hand;
	bool all_hand, any_hand;
	bool use_hand[QV_MAX_BUCKETS];
	uint32_t hand_below;
	uint64_t ns_dnnl[QV_TUNED_BUCKETS], ns_hand[QV_TUNED_BUCKETS];
	enum qv_prec prec;
	uint64_t ns1;   /* measured batch-1 time of the step with this set */
	bool made;
};

/* Moves the step's kernels into ks (the step is left without kernels). */
static void kset_take(struct qv_step *st, struct kset *ks)
{
	ks->dnnl = st->dnnl;
	ks->hand = st->hand;
	ks->all_hand = st->all_hand;
	ks->any_hand = st->any_hand;
	memcpy(ks->use_hand, st->use_hand, sizeof(ks->use_hand));
	ks->hand_below = st->hand_below;
	memcpy(ks->ns_dnnl, st->ns_dnnl, sizeof(ks->ns_dnnl));
	memcpy(ks->ns_hand, st->ns_hand, sizeof(ks->ns_hand));
	ks->prec = st->prec;
	ks->made = true;
	st->dnnl = NULL;
	st->hand = NULL;
	st->all_hand = st->any_hand = false;
	memset(st->use_hand, 0, sizeof(st->use_hand));
	st->hand_below = 0;
	memset(st->ns_dnnl, 0, sizeof(st->ns_dnnl));
	memset(st->ns_hand, 0, sizeof(st->ns_hand));
	st->prec = QV_PREC_FP32;
}

static void kset_put(struct qv_step *st, const struct kset *ks)
{
	st->dnnl = ks->dnnl;
	st->hand = ks->hand;
	st->all_hand = ks->all_hand;
	st->any_hand = ks->any_hand;
	memcpy(st->use_hand, ks->use_hand, sizeof(st->use_hand));
	st->hand_below = ks->hand_below;
	memcpy(st->ns_dnnl, ks->ns_dnnl, sizeof(st->ns_dnnl));
	memcpy(st->ns_hand, ks->ns_hand, sizeof(st->ns_hand));
	st->prec = ks->prec;
}

static void kset_free(struct kset *ks)
{
	if (!ks->made)
		return;
	qv_dnnl_dense_free(ks->dnnl);
	if (ks->hand)
		qv_hand_dense_free(ks->hand);
	memset(ks, 0, sizeof(*ks));
}

/* Swaps the step's current kernels with ks. */
static void kset_swap(struct qv_step *st, struct kset *ks)
{
	struct kset cur;
	kset_take(st, &cur);
	kset_put(st, ks);
	*ks = cur;
}

const char *qv_precision_name(enum qv_precision p)
{
	static const char *const nm[] = { "fp32", "bf16", "int8", "auto" };
	return (unsigned)p <= QV_PRECISION_AUTO ? nm[p] : "?";
}

int qv_precision_parse(const char *s, enum qv_precision *ret)
{
	for (int p = QV_PRECISION_FP32; p <= QV_PRECISION_AUTO && s; p++)
		if (strcmp(s, qv_precision_name((enum qv_precision)p)) == 0) {
			*ret = (enum qv_precision)p;
			return 0;
		}
	return -EINVAL;
}

void qv_prec_report_fp32(struct qv_model *m, enum qv_precision requested, const char *why)
{
	struct qv_precision_report *p = &m->prec;
	memset(p, 0, sizeof(*p));
	p->requested = requested;
	p->top1 = -1.0;
	snprintf(p->served, sizeof(p->served), "fp32");
	if (requested != QV_PRECISION_FP32)
		snprintf(p->reason, sizeof(p->reason), "%s", why);
}

int qv_model_precision(const qv_model *m, struct qv_precision_report *ret)
{
	if (!m || !ret)
		return -EINVAL;
	*ret = m->prec;
	if (!ret->served[0]) {
		snprintf(ret->served, sizeof(ret->served), "fp32");
		ret->top1 = -1.0;
	}
	return 0;
}

/* ---- golden rows ---- */

static uint64_t xs64(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* QV_GOLDEN_ROWS x dim values of N(0, 1): Box-Muller on xorshift64. */
static void golden_generate(float *x, size_t n)
{
	uint64_t s = QV_GOLDEN_SEED;
	for (size_t i = 0; i < n; i += 2) {
		double u1 = ((double)(xs64(&s) >> 11) + 0.5) / 9007199254740992.0;
		double u2 = (double)(xs64(&s) >> 11) / 9007199254740992.0;
		double r = sqrt(-2.0 * log(u1));
		x[i] = (float)(r * cos(2.0 * M_PI * u2));
		if (i + 1 < n)
			x[i + 1] = (float)(r * sin(2.0 * M_PI * u2));
	}
}

/* Runs rows of x through m's plan as it stands, in max_batch chunks. */
static int run_all(const struct qv_model *m, const float *x, uint32_t rows, float *y)
{
	qv_exec_ctx *c = NULL;
	int r = qv_exec_ctx_create(m, &c);
	for (uint32_t r0 = 0; r == 0 && r0 < rows;) {
		uint32_t n = rows - r0 < m->info.max_batch ? rows - r0 : m->info.max_batch;
		r = qv_run(c, x + (size_t)r0 * m->info.in_dim, n, y + (size_t)r0 * m->info.out_dim);
		r0 += n;
	}
	qv_exec_ctx_free(c);
	return r;
}

struct errs {
	double max_abs, max_rel, top1;
	int pass;
};

static struct errs compare(const struct qv_model *m, const float *ref, const float *got,
			   uint32_t rows, const struct qv_precision_report *p)
{
	struct errs e = { 0, 0, -1.0, 1 };
	const uint32_t od = m->info.out_dim;
	uint32_t agree = 0;
	for (uint32_t r = 0; r < rows; r++) {
		const float *a = ref + (size_t)r * od, *b = got + (size_t)r * od;
		uint32_t ia = 0, ib = 0;
		for (uint32_t j = 0; j < od; j++) {
			double d = fabs((double)b[j] - a[j]);
			if (isnan(d))
				d = INFINITY;  /* NaN where fp32 has a number is never within tolerance */
			if (!(isnan(a[j]) && isnan(b[j]))) {
				if (d > e.max_abs)
					e.max_abs = d;
				double rel = d / fmax(fabs(a[j]), 1e-3);
				if (rel > e.max_rel)
					e.max_rel = rel;
				if (!(d <= p->tol_abs + p->tol_rel * fabs(a[j])))
					e.pass = 0;
			}
			if (a[j] > a[ia])
				ia = j;
			if (b[j] > b[ib])
				ib = j;
		}
		agree += ia == ib;
	}
	if (od > 1) {
		e.top1 = (double)agree / rows;
		if (e.top1 < p->tol_top1)
			e.pass = 0;
	}
	return e;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Best-of-5 batch-1 time of the step with its current kernels. */
static int time_step1(const struct qv_step *st, uint64_t *ret_ns)
{
	struct qv_dnnl_dense_ctx *dc = NULL;
	float *x = calloc(st->K, sizeof(float)), *y = calloc(st->N, sizeof(float));
	int r = x && y ? 0 : -ENOMEM;
	if (r == 0 && st->dnnl)
		r = qv_dnnl_dense_ctx_create(st->dnnl, &dc);
	for (uint32_t k = 0; r == 0 && k < st->K; k++)
		x[k] = (float)((k * 2654435761u) % 1000) / 1000.0f - 0.5f;
	uint64_t best = UINT64_MAX;
	for (int round = 0; r == 0 && round < 6; round++) {
		uint64_t t0 = now_ns();
		for (int i = 0; r == 0 && i < 64; i++)
			r = qv_dense_step_run(st, dc, x, 1, y);
		uint64_t dt = (now_ns() - t0) / 64;
		if (round && dt < best)  /* round 0 warms up */
			best = dt;
	}
	qv_dnnl_dense_ctx_free(dc);
	free(x);
	free(y);
	if (r == 0)
		*ret_ns = best;
	return r;
}

static void served_string(struct qv_model *m)
{
	struct qv_precision_report *p = &m->prec;
	size_t k = 0;
	int uniform = 1, first = -1, any = 0;
	p->served[0] = '\0';
	for (uint32_t i = 0; i < m->n_steps; i++) {
		const struct qv_step *st = &m->steps[i];
		if (st->kind != QV_STEP_DENSE || st->N <= 4)
			continue;
		if (first < 0)
			first = (int)st->prec;
		uniform &= (int)st->prec == first;
		any |= st->prec != QV_PREC_FP32;
	}
	p->reduced = any;
	if (uniform) {
		snprintf(p->served, sizeof(p->served), "%s",
			 qv_prec_name(first < 0 ? QV_PREC_FP32 : (enum qv_prec)first));
		return;
	}
	for (uint32_t i = 0; i < m->n_steps; i++) {
		const struct qv_step *st = &m->steps[i];
		if (st->kind == QV_STEP_DENSE)
			qv_put(p->served, sizeof(p->served), &k, "%s%s", k ? "," : "", qv_prec_name(st->prec));
	}
}

int qv_plan_precision(struct qv_model *m, const struct qv_model_opts *o, char *err, size_t err_len)
{
	struct qv_precision_report *p = &m->prec;
	qv_prec_report_fp32(m, o->precision, "");
	if (o->precision == QV_PRECISION_FP32)
		return 0;
	p->tol_abs = o->tol_abs > 0 ? o->tol_abs : o->precision == QV_PRECISION_INT8 ? 3e-2 : 1e-2;
	p->tol_rel = o->tol_rel;
	p->tol_top1 = o->tol_top1 > 0 ? o->tol_top1 : 0.99;

	/* which reduced precisions to try, and whether the CPU has them */
	int want[QV_PREC_COUNT] = { 0 };
	if (o->precision == QV_PRECISION_BF16 || o->precision == QV_PRECISION_AUTO)
		want[QV_PREC_BF16] = 1;
	if (o->precision == QV_PRECISION_INT8 || o->precision == QV_PRECISION_AUTO)
		want[QV_PREC_INT8] = 1;
	int have = 0;
	for (int q = QV_PREC_BF16; q < QV_PREC_COUNT; q++) {
		if (want[q] && !qv_prec_supported((enum qv_prec)q))
			want[q] = 0;
		have |= want[q];
	}
	if (!have) {
		snprintf(p->reason, sizeof(p->reason), "this CPU lacks %s%s",
			 o->precision == QV_PRECISION_INT8 ? "avx512_vnni" : "avx512_bf16",
			 o->precision == QV_PRECISION_AUTO ? " and avx512_vnni" : "");
		return 0;
	}

	const uint32_t in_dim = m->info.in_dim, od = m->info.out_dim;
	if (o->golden && o->golden_dim != in_dim) {
		qvg_err(err, err_len, "golden set: %u floats a row, the model takes %u", o->golden_dim,
			in_dim);
		return -EINVAL;
	}
	const uint32_t rows = o->golden ? o->golden_rows : QV_GOLDEN_ROWS;
	p->golden_rows = rows;
	p->golden_given = o->golden != NULL;
	float *gen = NULL, *ref = malloc((size_t)rows * od * sizeof(float));
	float *got = malloc((size_t)rows * od * sizeof(float));
	struct kset(*alt)[QV_PREC_COUNT] = calloc(m->n_steps ? m->n_steps : 1, sizeof(*alt));
	const float *x = o->golden;
	int r = -ENOMEM;
	if (!x) {
		gen = malloc((size_t)rows * in_dim * sizeof(float));
		golden_generate(gen ? gen : got, gen ? (size_t)rows * in_dim : 0);
		x = gen;
	}
	if (!ref || !got || !alt || !x)
		goto out;
	if ((r = run_all(m, x, rows, ref)) < 0) {
		qvg_err(err, err_len, "precision guard: fp32 run: %s", strerror(-r));
		goto out;
	}

	/* make every candidate set, and time each step's sets at batch 1 */
	uint32_t n_cand = 0;
	for (uint32_t i = 0; i < m->n_steps; i++) {
		struct qv_step *st = &m->steps[i];
		if (st->kind != QV_STEP_DENSE || st->N <= 4)
			continue;
		const int timed = o->precision == QV_PRECISION_AUTO && !o->auto_untimed;
		alt[i][0].ns1 = 3;  /* untimed: fp32 3, bf16 2, int8 1 */
		if (timed && (r = time_step1(st, &alt[i][0].ns1)) < 0)
			goto out;
		for (int q = QV_PREC_BF16; q < QV_PREC_COUNT; q++) {
			if (!want[q])
				continue;
			struct kset fp;
			kset_take(st, &fp);
			st->prec = (enum qv_prec)q;
			char sub[QV_ERR_LEN];
			int kr = qv_dense_step_kernels(st, m->info.max_batch, m->kernels, o->tune_iters,
						       sub, sizeof(sub));
			uint64_t ns = q == QV_PREC_BF16 ? 2 : 1;
			if (kr == 0 && timed)
				kr = time_step1(st, &ns);
			struct kset mine;
			kset_take(st, &mine);
			kset_put(st, &fp);
			if (kr == -ENOMEM || kr == -EIO) {
				kset_free(&mine);
				r = kr;
				qvg_err(err, err_len, "%s", sub);
				goto out;
			}
			if (kr < 0) {
				kset_free(&mine);  /* no kernel for this shape: the step stays fp32 */
				continue;
			}
			mine.ns1 = ns;
			alt[i][q] = mine;
			n_cand++;
		}
	}
	if (!n_cand) {
		snprintf(p->reason, sizeof(p->reason), "no layer has a %s kernel (at most 4 outputs, or K over %u)",
			 qv_precision_name(o->precision), QV_LOWP_MAX_K);
		r = 0;
		goto out;
	}
	p->checked = 1;

	struct errs best = { 0, 0, -1.0, 1 };
	if (o->precision != QV_PRECISION_AUTO) {
		int q = o->precision == QV_PRECISION_BF16 ? QV_PREC_BF16 : QV_PREC_INT8;
		for (uint32_t i = 0; i < m->n_steps; i++)
			if (alt[i][q].made)
				kset_swap(&m->steps[i], &alt[i][q]);
		if ((r = run_all(m, x, rows, got)) < 0)
			goto out;
		struct errs e = compare(m, ref, got, rows, p);
		if (!e.pass) {
			/* back to fp32 */
			for (uint32_t i = 0; i < m->n_steps; i++)
				if (alt[i][q].made)
					kset_swap(&m->steps[i], &alt[i][q]);
			snprintf(p->reason, sizeof(p->reason),
				 "%s error on %u golden rows (max abs %.3g, max rel %.3g%s) exceeds the tolerance (abs %.3g, rel %.3g%s)",
				 qv_precision_name(o->precision), rows, e.max_abs, e.max_rel,
				 e.top1 >= 0 ? ", top-1 agreement below the minimum" : "", p->tol_abs,
				 p->tol_rel, e.top1 >= 0 ? ", top-1" : "");
			p->max_abs = e.max_abs;  /* what was measured, though not served */
			p->max_rel = e.max_rel;
			p->top1 = e.top1;
		} else {
			best = e;
		}
	} else {
		/* per layer, fastest candidate first, keep the first within tolerance */
		uint32_t kept_err = 0, kept_slow = 0;
		for (uint32_t i = 0; i < m->n_steps; i++) {
			struct kset *a = alt[i];
			if (!a[QV_PREC_BF16].made && !a[QV_PREC_INT8].made)
				continue;
			int order[2] = { QV_PREC_INT8, QV_PREC_BF16 };
			if (a[QV_PREC_BF16].made && a[QV_PREC_INT8].made &&
			    a[QV_PREC_BF16].ns1 < a[QV_PREC_INT8].ns1) {
				order[0] = QV_PREC_BF16;
				order[1] = QV_PREC_INT8;
			}
			int chosen = 0, tried = 0;
			for (int c = 0; c < 2 && !chosen; c++) {
				int q = order[c];
				if (!a[q].made || a[q].ns1 >= a[0].ns1)
					continue;  /* not faster than fp32: no reason to lose accuracy */
				tried = 1;
				kset_swap(&m->steps[i], &a[q]);
				if ((r = run_all(m, x, rows, got)) < 0)
					goto out;
				struct errs e = compare(m, ref, got, rows, p);
				if (e.pass) {
					best = e;
					chosen = 1;
				} else {
					kset_swap(&m->steps[i], &a[q]);
				}
			}
			kept_err += !chosen && tried;
			kept_slow += !chosen && !tried;
		}
		if (kept_err || kept_slow)
			snprintf(p->reason, sizeof(p->reason),
				 "kept in fp32: %u layer(s) out of tolerance (abs %.3g, rel %.3g) in every faster precision, %u layer(s) no faster reduced",
				 kept_err, p->tol_abs, p->tol_rel, kept_slow);
	}
	served_string(m);
	if (p->reduced) {
		p->max_abs = best.max_abs;
		p->max_rel = best.max_rel;
		p->top1 = best.top1;
	}
	r = 0;
out:
	if (alt)
		for (uint32_t i = 0; i < m->n_steps; i++)
			for (int q = 0; q < QV_PREC_COUNT; q++)
				kset_free(&alt[i][q]);
	free(alt);
	free(gen);
	free(ref);
	free(got);
	return r;
}
