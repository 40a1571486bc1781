/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loader.c - the loader thread (loader.h): builds the models `quiverctl
 * load` asks for, one at a time, off the control thread.
 *
 * A mutex and a condition variable guard the job lists: the thread sleeps
 * on the condition while there is nothing to build (or it is held); the
 * control thread learns that a job finished from an eventfd in its poll
 * set. Loads are rare and slow (milliseconds to seconds), so a lock is the
 * simple, right tool here; nothing on a worker's path touches it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "loader.h"
#include "log.h"
#include "routes.h"
#include "s3fetch.h"

/* The test delay sleeps in steps this long, checking for a cancel. */
#define DELAY_STEP_MS 10u

struct qv_loader {
	struct qv_registry *reg;
	char s3_cache[4096];
	const char *s3_endpoint;
	uint32_t delay_ms;          /* QUIVERD_TEST_LOAD_DELAY_MS */
	char gate[4096];            /* QUIVERD_TEST_LOAD_GATE, "" none */
	int efd;
	pthread_t th;
	int started;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* Under mu: */
	struct qv_load_job *queue[QV_LOADER_MAX_JOBS]; /* FIFO, not started */
	uint32_t nq;
	struct qv_load_job *running;
	struct qv_load_job *done[QV_LOADER_MAX_JOBS];  /* finished, not taken */
	uint32_t ndone;
	int taken;                  /* the control thread holds a finished job */
	int held;                   /* qv_loader_try_hold */
	int stop;
	/* Read by the running build between its steps without the lock: set
	 * once at stop, relaxed both ways (it orders nothing, it only asks the
	 * build to give up early). */
	atomic_bool cancel;
};

int qv_load_fetch_s3(const char *url, const char *cache, const char *endpoint, const char *name,
		     uint32_t version, char *ret_dir, size_t len, char *err, size_t err_len)
{
	struct qv_s3_opts o = { .endpoint = endpoint };
	char why[900];
	int rc = qv_s3_fetch(url, cache, &o, ret_dir, len, NULL, why, sizeof(why));

	if (rc < 0)
		snprintf(err, err_len, "load %s/%u: %.900s", name, version, why);
	return rc;
}

static int cancelled(struct qv_loader *l)
{
	return atomic_load_explicit(&l->cancel, memory_order_relaxed);
}

static void cancel_msg(struct qv_load_job *j)
{
	j->rc = -ECANCELED;
	snprintf(j->err, sizeof(j->err), "load %s/%u: cancelled: quiverd is draining", j->name,
		 j->version);
}

/* The slow part of one job; fills j's result. */
static void build(struct qv_loader *l, struct qv_load_job *j)
{
	const char *dir = j->path[0] ? j->path : NULL;

	struct timespec step = { .tv_nsec = DELAY_STEP_MS * 1000000l };
	struct stat st;

	for (uint32_t ms = 0; ms < l->delay_ms && !cancelled(l); ms += DELAY_STEP_MS)
		nanosleep(&step, NULL);
	while (l->gate[0] && !cancelled(l) && stat(l->gate, &st) != 0)
		nanosleep(&step, NULL);
	if (cancelled(l)) {
		cancel_msg(j);
		return;
	}
	if (dir && qv_s3_is_url(dir)) {
		int rc = qv_load_fetch_s3(dir, l->s3_cache, l->s3_endpoint, j->name, j->version,
					  j->dir, sizeof(j->dir), j->err, sizeof(j->err));
		if (rc < 0) {
			j->rc = rc;
			return;
		}
		if (cancelled(l)) {
			cancel_msg(j);
			return;
		}
	} else if (dir) {
		snprintf(j->dir, sizeof(j->dir), "%s", dir);
	}
	j->rc = qv_reg_build(l->reg, j->name, j->version, j->dir[0] ? j->dir : NULL, j->precision,
			     &j->v, j->err, sizeof(j->err));
}

static void *loader_main(void *arg)
{
	struct qv_loader *l = arg;
	const uint64_t one = 1;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		struct qv_load_job *j;

		while (!l->stop && (l->nq == 0 || l->held || l->taken || l->ndone))
			pthread_cond_wait(&l->cv, &l->mu);
		if (l->stop)
			break;
		j = l->queue[0];
		memmove(&l->queue[0], &l->queue[1], (l->nq - 1) * sizeof(l->queue[0]));
		l->nq--;
		l->running = j;
		pthread_mutex_unlock(&l->mu);
		build(l, j);
		pthread_mutex_lock(&l->mu);
		l->running = NULL;
		l->done[l->ndone++] = j;
		pthread_cond_broadcast(&l->cv);
		/* Wakes the control thread's poll; the count itself means nothing. */
		if (write(l->efd, &one, sizeof(one)) < 0)
			qv_log(QV_LOG_WARN, "loader: eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

int qv_loader_start(struct qv_registry *reg, const char *s3_cache, const char *s3_endpoint,
		    struct qv_loader **ret)
{
	struct qv_loader *l = calloc(1, sizeof(*l));
	const char *delay = getenv("QUIVERD_TEST_LOAD_DELAY_MS");
	int r;

	if (!l)
		return -ENOMEM;
	l->reg = reg;
	snprintf(l->s3_cache, sizeof(l->s3_cache), "%s", s3_cache ? s3_cache : "");
	l->s3_endpoint = s3_endpoint;
	if (delay && delay[0]) {
		char *end;
		unsigned long ms = strtoul(delay, &end, 10);
		if (*end == '\0' && ms <= 600000ul) {
			l->delay_ms = (uint32_t)ms;
			qv_log(QV_LOG_WARN, "QUIVERD_TEST_LOAD_DELAY_MS=%lu: every load waits that long "
			       "(a test hook; never set it in production)", ms);
		} else {
			qv_log(QV_LOG_WARN, "QUIVERD_TEST_LOAD_DELAY_MS='%.32s' ignored (0..600000)",
			       delay);
		}
	}
	delay = getenv("QUIVERD_TEST_LOAD_GATE");
	if (delay && delay[0]) {
		snprintf(l->gate, sizeof(l->gate), "%s", delay);
		qv_log(QV_LOG_WARN, "QUIVERD_TEST_LOAD_GATE=%.300s: every load waits until that file "
		       "exists (a test hook; never set it in production)", l->gate);
	}
	atomic_init(&l->cancel, false);
	l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->efd < 0) {
		r = -errno;
		free(l);
		return r;
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	r = -pthread_create(&l->th, NULL, loader_main, l);
	if (r < 0) {
		qv_loader_free(l);
		return r;
	}
	l->started = 1;
	*ret = l;
	return 0;
}

int qv_loader_fd(const struct qv_loader *l)
{
	return l ? l->efd : -1;
}

static int same(const struct qv_load_job *a, const struct qv_load_job *b)
{
	return a && a->version == b->version && strcmp(a->name, b->name) == 0;
}

int qv_loader_submit(struct qv_loader *l, struct qv_load_job *j, char *err, size_t err_len)
{
	int dup = 0, r = 0;

	pthread_mutex_lock(&l->mu);
	dup = same(l->running, j);
	for (uint32_t i = 0; i < l->nq; i++)
		dup |= same(l->queue[i], j);
	for (uint32_t i = 0; i < l->ndone; i++)
		dup |= same(l->done[i], j);
	if (dup) {
		snprintf(err, err_len, "load %s/%u already in progress", j->name, j->version);
		r = -EBUSY;
	} else if (l->stop) {
		snprintf(err, err_len, "load %s/%u: quiverd is draining", j->name, j->version);
		r = -ESHUTDOWN;
	} else if (l->nq + l->ndone + (l->running != NULL) >= QV_LOADER_MAX_JOBS) {
		snprintf(err, err_len, "load %s/%u: %u loads already in progress; try again later",
			 j->name, j->version, QV_LOADER_MAX_JOBS);
		r = -EBUSY;
	} else {
		qv_log(QV_LOG_INFO, "load %s/%u: building on the loader thread", j->name, j->version);
		l->queue[l->nq++] = j;
		pthread_cond_broadcast(&l->cv);
	}
	pthread_mutex_unlock(&l->mu);
	return r;
}

struct qv_load_job *qv_loader_next_done(struct qv_loader *l)
{
	struct qv_load_job *j = NULL;
	uint64_t n;

	/* Resets the eventfd; what it counted is the lists' business. */
	while (read(l->efd, &n, sizeof(n)) == sizeof(n))
		;
	pthread_mutex_lock(&l->mu);
	if (l->ndone) {
		j = l->done[0];
		memmove(&l->done[0], &l->done[1], (l->ndone - 1) * sizeof(l->done[0]));
		l->ndone--;
		l->taken = 1;
	} else {
		l->taken = 0;
		pthread_cond_broadcast(&l->cv);
	}
	pthread_mutex_unlock(&l->mu);
	return j;
}

bool qv_loader_try_hold(struct qv_loader *l)
{
	bool ok;

	pthread_mutex_lock(&l->mu);
	ok = l->running == NULL;
	if (ok)
		l->held = 1;
	pthread_mutex_unlock(&l->mu);
	return ok;
}

void qv_loader_resume(struct qv_loader *l)
{
	pthread_mutex_lock(&l->mu);
	l->held = 0;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

void qv_loader_stop(struct qv_loader *l)
{
	if (!l || !l->started)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = 1;
	atomic_store_explicit(&l->cancel, true, memory_order_relaxed);
	/* Never started: cancelled at once, answered by the control thread. */
	for (uint32_t i = 0; i < l->nq; i++) {
		cancel_msg(l->queue[i]);
		l->done[l->ndone++] = l->queue[i];
	}
	l->nq = 0;
	if (l->running)
		qv_log(QV_LOG_INFO, "load %s/%u: cancelling; waiting for its current step",
		       l->running->name, l->running->version);
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->th, NULL);
	l->started = 0;
}

void qv_loader_free(struct qv_loader *l)
{
	if (!l)
		return;
	qv_loader_stop(l);
	/* Whatever the control thread did not take: no registry to publish to. */
	for (uint32_t i = 0; i < l->ndone; i++) {
		if (l->done[i]->v)
			qv_reg_build_free(l->reg, l->done[i]->v);
		free(l->done[i]);
	}
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	close(l->efd);
	free(l);
}
