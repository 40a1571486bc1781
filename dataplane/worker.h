/* SPDX-License-Identifier: Apache-2.0 */
/*
 * worker.h - a polled worker: one thread pinned to one core, owning the
 * channels (and UDP socket) assigned to it, serving them in a loop that
 * never blocks, locks, allocates, logs or makes a syscall.
 *
 * The control thread talks to a worker only through its mailbox, an SPSC
 * ring in private memory (control = producer, worker = consumer), and reads
 * its counters (single writer, relaxed). The worker talks back through a
 * few flags (ready, drained) and each channel's `retired`.
 */
#ifndef QV_DP_WORKER_H
#define QV_DP_WORKER_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "channel.h"
#include "quiver.h"
#include "qv_model.h"
#include "qv_ring.h"
#include "routes.h"
#include "serve.h"
#include "stats.h"

struct qv_plog_ring;

#define QV_WORKER_MAX_CHANS 1024u
#define QV_MBOX_ENTRIES 256u
/* Descriptors taken from one channel a turn: enough for a full batch. */
#define QV_WORKER_BURST 128u
/*
 * Fairness: rows taken from one channel a turn, and from all channels a
 * turn (a channel's first descriptor is taken whatever its rows, so that a
 * request larger than the bound still runs). A client flooding large
 * requests then delays another's by about one run of QV_WORKER_CHAN_ROWS
 * rows, not by a whole burst of them; the turn's channels are visited
 * round-robin from the one after the channel served first last turn.
 */
#define QV_WORKER_CHAN_ROWS 256u
#define QV_WORKER_TURN_ROWS 1024u
#define QV_WORKER_MAX_POLLERS 2u

enum qv_mbox_op {
	QV_MBOX_ADD = 1,      /* adopt chan */
	QV_MBOX_RETIRE = 2,   /* stop polling chan, then store chan->retired = 1 */
	QV_MBOX_DRAIN = 3,    /* answer UNAVAILABLE from now on; ack with `drained` */
	QV_MBOX_STOP = 4,     /* leave the loop */
};

struct qv_mbox_msg {
	uint32_t op;
	uint32_t pad;
	struct qv_chan *chan;
};

/* A transport polled by the worker besides its channels (e.g. UDP). Returns work done. */
typedef int (*qv_worker_poll_fn)(void *arg, struct qv_worker *w);

/* Counters: written by the owning worker only (relaxed load + store, no RMW). */
struct qv_worker_counters {
	/* requests answered, by status; the control thread sums them for the
	 * total (no separate total is counted per request) */
	_Atomic uint64_t status[QV_STATUS_COUNT];
	_Atomic uint64_t busy_cycles;
	_Atomic uint64_t idle_cycles;
	_Atomic uint64_t busy_turns; /* loop turns that did work (SPDK's busy ticks) */
	_Atomic uint64_t idle_turns; /* loop turns that found nothing */
	_Atomic uint64_t corrupt_channels;
	_Atomic uint64_t beats;      /* heartbeat rounds: the worker is making progress */
};

/*
 * Opportunistic batching: a turn gathers up to this many descriptors from
 * all channels before serving them, and each worker has one gather buffer
 * for inputs and one for outputs of this many floats (a batch that would
 * not fit is cut; a request alone runs in place in its slot).
 */
#define QV_WORKER_MAX_PENDING 256u
#define QV_BATCH_BUF_FLOATS (256u * 1024u)

/* One request of a turn, as qv_worker_serve_batch() takes it. */
struct qv_batch_item {
	struct qv_serve_req req;
	struct qv_serve_res res;
	const struct qv_version *v;  /* private: the version picked, this turn only */
	const struct qv_route_hot *h;/* private: its route, this turn only */
	struct qv_chan *chan;        /* the transport's: where the answer goes */
	uint64_t t0;                 /* private: TSC when the worker took it */
	uint64_t ring;               /* TSC cycles it waited in the submission ring (0: unknown) */
	uint64_t submit_tsc;         /* the client's stamp, when plausible (0: unknown); predlog */
	uint32_t slot;               /* the transport's */
	uint32_t done;               /* 1: answered already (res filled), skipped */
	uint32_t flags;              /* private: QV_FLAG_* of the pick */
	uint32_t held;               /* private: waiting for a fuller batch (channels only) */
	uint32_t mirror;             /* private: drawn for the route's shadow */
};

/* Shadow scratch: inputs and outputs larger than this are not mirrored. */
#define QV_SHADOW_SCRATCH_BYTES (256u * 1024u)

struct qv_worker {
	/* ---- the worker's own, read every turn ---- */
	alignas(64) const struct qv_table *tab; /* loaded at the top of each turn */
	struct qv_registry *reg;
	struct qv_vstats *vs;       /* [QV_MAX_VSLOTS], this worker's stats per version */
	uint32_t draining;          /* plain: written and read by the worker only */
	uint32_t nchans;
	uint32_t rr;                /* channel the next turn's gathering starts at:
				     * the one after the channel served first last turn */
	struct qv_chan **chans;     /* [QV_WORKER_MAX_CHANS] */
	uint64_t rng;               /* xorshift64* state: random canary and shadow shares */
	double ns_per_cycle;
	double cycles_per_ns;       /* its inverse: no divide per request */
	uint32_t drain_ack_due;
	struct qv_ring_cons mbox_cons;
	uint64_t hb_interval_tsc;
	uint64_t last_hb_tsc;
	uint64_t last_tsc;
	uint32_t n_ext;
	struct {
		qv_worker_poll_fn fn;
		void *arg;
	} ext[QV_WORKER_MAX_POLLERS]; /* UDP io_uring, UDP DPDK */
	/*
	 * Mirrored requests waiting to run on their shadow after their answers
	 * are pushed: one shadow version at a time, its requests' rows side by
	 * side in sh_in (inputs) and sh_ref (the answers given), run as one
	 * batch by qv_worker_shadow_flush().
	 */
	const struct qv_version *sh_ver;  /* NULL: nothing pending */
	uint32_t sh_rows;                 /* rows gathered */
	uint32_t sh_n;                    /* requests gathered */
	uint32_t sh_req_rows[QV_WORKER_MAX_PENDING]; /* rows of each, in order */
	float *sh_in;               /* [QV_SHADOW_SCRATCH_BYTES], copies: the slot is the client's again */
	float *sh_ref;
	float *sh_out;
	/* Batching: this turn's requests and the gather / scatter buffers. */
	struct qv_batch_item *items;     /* [QV_WORKER_MAX_PENDING]; [0, nheld) held over */
	uint32_t nheld;                  /* requests held for a fuller batch (max_queue_delay_us) */
	uint32_t any_delay;              /* this turn admitted a version that may wait */
	uint64_t hold_until;             /* TSC: no held request needs looking at before */
	uint64_t turn_t0;                /* TSC at the start of this batch's turn */
	uint64_t run_t0;                 /* TSC at the start of the model run being answered */
	float *bt_in;                    /* [QV_BATCH_BUF_FLOATS] */
	float *bt_out;                   /* [QV_BATCH_BUF_FLOATS] */
	struct qv_chan **touched;        /* [QV_WORKER_MAX_CHANS]: channels answered this turn */
	struct qv_plog_ring *plog;       /* prediction log ring (predlog.h), NULL: none */
	/* One channel's burst of descriptors, copied before any is validated
	 * so that their slots can be prefetched together (chan_gather). */
	alignas(64) struct qv_sqe sqes[QV_WORKER_BURST];

	alignas(64) struct qv_worker_counters cnt;

	/* ---- control thread's side ---- */
	alignas(64) struct qv_ring_prod mbox_prod;
	void *mbox_mem;
	uint32_t id;
	int core;
	int node;
	uint32_t nchans_ctl;        /* channels assigned and not yet freed */
	pthread_t thread;
	int started;

	/* ---- worker -> control ---- */
	alignas(64) _Atomic int32_t ready;  /* 0 starting, 1 serving, -errno failed */
	_Atomic uint32_t drained;
	char init_err[QV_ERR_LEN];
};

/*
 * Allocates a worker (on its core's NUMA node) serving the tables `reg`
 * publishes; reg->cur must be set before qv_worker_start().
 */
int qv_worker_create(uint32_t id, int core, struct qv_registry *reg, uint64_t tsc_hz,
		     struct qv_worker **ret);

/* Starts the thread and waits until it is pinned. */
int qv_worker_start(struct qv_worker *w);

/* Before qv_worker_start: adds a transport the worker polls every turn. 0 or -ENOSPC. */
int qv_worker_add_poller(struct qv_worker *w, qv_worker_poll_fn fn, void *arg);

/* Control thread: posts a message, waiting (sleeping) while the mailbox is full. */
void qv_worker_post(struct qv_worker *w, uint32_t op, struct qv_chan *c);

/* Control thread: sends STOP, joins, frees the worker. Safe on a never-started worker. */
void qv_worker_destroy(struct qv_worker *w);

/*
 * Serves n requests as qv_worker_serve() would serve each, filling every
 * items[i].res, but runs requests that picked the same version together:
 * up to the version's max_batch rows are copied into the worker's gather
 * buffer, run once and the outputs copied back to each request's `out`. A
 * version with one request this call runs it in place. Each request's
 * version is picked first, per request (canary share, manual or deadline
 * fallback); error and nonfinite fallbacks are checked per request after
 * the run and re-run only the requests they fire for. Requests drawn for
 * their route's shadow are copied (input and answer) into the worker's
 * mirror buffers; the caller runs them with qv_worker_shadow_flush() after
 * it pushed the answers. Never waits:
 * max_queue_delay_us applies to channels only. Items with `done` set were
 * answered by the transport and are skipped. Hot path: no allocation,
 * lock, syscall or log.
 */
void qv_worker_serve_batch(struct qv_worker *w, struct qv_batch_item *items, uint32_t n);

/* Runs a pending shadow request, if any (after its primary's completion was pushed). */
void qv_worker_shadow_flush(struct qv_worker *w);

/* Time-stamp counter (or ns where there is none) and its rate. */
uint64_t qv_tsc(void);
uint64_t qv_tsc_calibrate(void);

static inline uint64_t qv_cnt_get(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Requests the worker answered: the sum of its per-status counters (it
 * counts no separate total on the hot path). Control thread. */
static inline uint64_t qv_worker_requests(const struct qv_worker *w)
{
	uint64_t n = 0;

	for (uint32_t s = 0; s < QV_STATUS_COUNT; s++)
		n += qv_cnt_get(&w->cnt.status[s]);
	return n;
}

#endif /* QV_DP_WORKER_H */
