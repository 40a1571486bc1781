/* SPDX-License-Identifier: Apache-2.0 */
/*
 * quiverd - the quiver inference daemon.
 *
 *   quiverd --repo DIR [--cores LIST] [--socket PATH] [--socket-mode OCTAL]
 *           [--allow-uid UID]... [--allow-gid GID]... [--udp ADDR:PORT]
 *           [--dpdk "EAL ARGS" --ip A.B.C.D --udp-port N] [--udp-allow CIDR]...
 *           [--admin-gid GID]... [--max-batch N] [--max-channels-per-uid N] [--state-file PATH]
 *           [--s3-endpoint URL] [--s3-cache DIR]
 *           [--foreground] [--log-level LEVEL] [--log-format text|json]
 *           [--metrics-listen ADDR:PORT]
 *
 * Threads
 *   The main thread is the control thread: it creates one worker per core
 *   of --cores (default: the last core we may run on), loads the
 *   repository (one route per model directory, handle = index in name
 *   order, stable for the daemon's life; later loads of new names get the
 *   next handles; a model that fails to load keeps its route in state
 *   "failed" with the loader's message, and quiverd refuses to start only
 *   when no model loaded) - each version with an exec context per worker
 *   on the worker's NUMA node - publishes the first routing table
 *   (routes.c), starts the workers, then serves the Unix socket with
 *   poll(). Each worker pins itself, sets local NUMA allocation, calls
 *   qv_thread_init(), reports ready, and then only polls: its mailbox, its
 *   channels, its UDP socket.
 *   The socket is opened (and "quiverd ready" logged) only after every
 *   worker is ready, so nothing is created lazily once serving starts.
 *
 * Ownership of channels
 *   The control thread creates a channel on HELLO (memfd, header, magic
 *   last with release, seals), sends the fd, and posts ADD to the least
 *   loaded worker's mailbox. The mailbox is an SPSC ring in private memory:
 *   the producer's release store of its tail pairs with the worker's
 *   acquire load, so the worker sees the channel fully built. From then on
 *   only that worker touches the channel's rings and slots; the control
 *   thread touches only server_state (drain) and its own bookkeeping.
 *
 * Retirement
 *   When the client's socket reaches EOF/POLLHUP, the control thread closes
 *   the socket and posts RETIRE. The worker finishes what it already
 *   consumed (requests are completed inside the turn that consumed them),
 *   removes the channel from its poll list and stores chan->retired =
 *   ACKED with release, its last access. The control thread, ticking every
 *   millisecond while any retirement is pending, loads `retired` with
 *   acquire and only on ACKED munmaps and frees: every access the worker
 *   made happens-before the unmap. A client that corrupts its ring indices
 *   (-EBADMSG) gets server_state CLOSED; the worker drops the channel and
 *   stores DROPPED unasked; the control thread, seeing DROPPED on a channel
 *   it never posted RETIRE for, closes that client's socket and frees. (If
 *   RETIRE was already posted it still waits for ACKED: the worker will
 *   read that message, which names the channel.) A client that merely
 *   stops heartbeating keeps its channel.
 *
 * SIGHUP reloads the repository (control.c, qv_reg_reload_repo).
 * Drain (SIGTERM/SIGINT, read from a signalfd in the control loop)
 *   Every channel's server_state becomes DRAINING; each worker gets DRAIN,
 *   answers UNAVAILABLE from then on, and acknowledges (release on
 *   `drained`, acquire by the control thread) after a full turn. Then STOP,
 *   join, every channel CLOSED, unmapped and freed, the socket unlinked,
 *   exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "http_metrics.h"
#include "ops.h"
#include "predlog.h"
#include "quiverd.h"
#include "state.h"
#include "s3fetch.h"
#include "log.h"
#include "udp.h"
#ifdef QV_HAVE_DPDK
#include "udp_dpdk.h"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: quiverd --repo DIR [options]\n"
		"  --repo DIR            model repository: DIR/<name>/<version>/model.onnx (or model.json,\n"
		"                        model.ubj: XGBoost; config.json: an ensemble)\n"
		"  --cores LIST          worker cores, e.g. 1 or 1,3-5 (default: the last core)\n"
		"  --socket PATH         control socket (default %s)\n"
		"  --socket-mode OCTAL   socket file mode (default 0660)\n"
		"  --allow-uid UID       also accept this uid (repeatable)\n"
		"  --allow-gid GID       also accept this group (repeatable)\n"
		"  --admin-gid GID       this group may also run mutating commands (repeatable)\n"
		"  --udp ADDR:PORT       serve UDP requests (io_uring back end)\n"
		"  --dpdk \"EAL ARGS\"     serve UDP with DPDK on the first port (kernel bypass)\n"
		"  --ip A.B.C.D          the DPDK port's IPv4 address (with --dpdk)\n"
		"  --udp-port N          the UDP port served over DPDK (with --dpdk)\n"
		"  --udp-allow CIDR      accept UDP only from these sources (repeatable)\n"
		"  --max-batch N         cap on every model's max batch\n"
		"  --max-channels-per-uid N  shared-memory channels one uid may hold (default %u)\n"
		"  --state-file PATH     keep routes (swaps, canaries, fallbacks) across restarts\n"
		"  --repo s3://BUCKET/PREFIX  fetch the repository from S3 into the cache first\n"
		"  --s3-endpoint URL     S3-compatible store, e.g. http://127.0.0.1:9000 (default:\n"
		"                        AWS_ENDPOINT_URL, else AWS); path-style addressing\n"
		"  --s3-cache DIR        local copy of S3 sources (default $QUIVER_S3_CACHE,\n"
		"                        $XDG_CACHE_HOME/quiver/s3, ~/.cache/quiver/s3)\n"
		"  --foreground          do not detach (always the case under systemd)\n"
		"  --log-level LEVEL     debug, info, warn or error (default info)\n"
		"  --log-format FORMAT   text (default) or json: one JSON object a line\n"
		"  --metrics-listen ADDR:PORT  serve GET /metrics (Prometheus), /healthz and\n"
		"                        /readyz over HTTP, e.g. 127.0.0.1:9464 or [::]:9464\n"
		"Root and the daemon's own uid are always allowed.\n",
		QV_DEFAULT_SOCKET, QV_DEFAULT_CHANS_PER_UID);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || end == s || *end || v > max || s[0] == '-')
		return -EINVAL;
	*ret = v;
	return 0;
}

/* "1,3-5" -> {1,3,4,5}. */
/*
 * The control thread compiles models, and the runtime times oneDNN against
 * the hand-written kernels at load to pick the faster per layer. Timed on a
 * core where a worker busy-polls, both candidates get half a core and the
 * choice is noise; so the control thread keeps off the worker cores when any
 * other core is allowed (and shares them otherwise).
 */
static void keep_control_off_workers(const struct qv_daemon *d)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return;
	for (uint32_t i = 0; i < d->ncores; i++)
		if (d->cores[i] >= 0 && d->cores[i] < CPU_SETSIZE)
			CPU_CLR(d->cores[i], &set);
	if (CPU_COUNT(&set) == 0) {
		qv_log(QV_LOG_INFO, "control thread shares the worker cores (no other core allowed)");
		return;
	}
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		qv_log(QV_LOG_WARN, "control thread affinity: %s", strerror(errno));
}

static int parse_cores(const char *s, struct qv_daemon *d)
{
	char buf[1024], *save = NULL, *tok;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", s);
	d->ncores = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned long a, b;
		char *dash = strchr(tok, '-');
		if (dash) {
			*dash = '\0';
			if (parse_uint(tok, CPU_SETSIZE - 1, &a) < 0 ||
			    parse_uint(dash + 1, CPU_SETSIZE - 1, &b) < 0 || b < a)
				return -EINVAL;
		} else {
			if (parse_uint(tok, CPU_SETSIZE - 1, &a) < 0)
				return -EINVAL;
			b = a;
		}
		for (unsigned long c = a; c <= b; c++) {
			for (uint32_t i = 0; i < d->ncores; i++)
				if (d->cores[i] == (int)c)
					return -EINVAL;
			if (d->ncores == QV_MAX_WORKERS)
				return -E2BIG;
			d->cores[d->ncores++] = (int)c;
		}
	}
	return d->ncores ? 0 : -EINVAL;
}

static int last_allowed_core(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int c = CPU_SETSIZE - 1; c >= 0; c--)
			if (CPU_ISSET(c, &set))
				return c;
	return (int)sysconf(_SC_NPROCESSORS_ONLN) - 1;
}

enum {
	OPT_REPO = 256, OPT_CORES, OPT_SOCKET, OPT_SOCKET_MODE, OPT_ALLOW_UID, OPT_ALLOW_GID,
	OPT_UDP, OPT_MAX_BATCH, OPT_FOREGROUND, OPT_LOG_LEVEL, OPT_HELP, OPT_DPDK, OPT_DPDK_IP,
	OPT_DPDK_PORT, OPT_UDP_ALLOW, OPT_ADMIN_GID, OPT_MAX_CHANS_UID, OPT_STATE_FILE,
	OPT_LOG_FORMAT, OPT_METRICS_LISTEN,
	OPT_S3_ENDPOINT, OPT_S3_CACHE,
};

static int parse_args(int argc, char **argv, struct qv_daemon *d, int *ret_foreground)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, OPT_REPO },
		{ "cores", required_argument, NULL, OPT_CORES },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
		{ "allow-uid", required_argument, NULL, OPT_ALLOW_UID },
		{ "allow-gid", required_argument, NULL, OPT_ALLOW_GID },
		{ "udp", required_argument, NULL, OPT_UDP },
		{ "max-batch", required_argument, NULL, OPT_MAX_BATCH },
		{ "foreground", no_argument, NULL, OPT_FOREGROUND },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "dpdk", required_argument, NULL, OPT_DPDK },
		{ "ip", required_argument, NULL, OPT_DPDK_IP },
		{ "udp-port", required_argument, NULL, OPT_DPDK_PORT },
		{ "dpdk-ip", required_argument, NULL, OPT_DPDK_IP },
		{ "dpdk-port", required_argument, NULL, OPT_DPDK_PORT },
		{ "udp-allow", required_argument, NULL, OPT_UDP_ALLOW },
		{ "admin-gid", required_argument, NULL, OPT_ADMIN_GID },
		{ "max-channels-per-uid", required_argument, NULL, OPT_MAX_CHANS_UID },
		{ "state-file", required_argument, NULL, OPT_STATE_FILE },
		{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
		{ "metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN },
		{ "s3-endpoint", required_argument, NULL, OPT_S3_ENDPOINT },
		{ "s3-cache", required_argument, NULL, OPT_S3_CACHE },
		{ 0 },
	};
	enum qv_log_level lvl;
	enum qv_log_format lfmt;
	struct sockaddr_storage sa;
	socklen_t salen;
	unsigned long v;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case OPT_REPO:
			d->repo = optarg;
			break;
		case OPT_CORES:
			if (parse_cores(optarg, d) < 0) {
				fprintf(stderr, "quiverd: bad --cores '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		case OPT_SOCKET:
			d->sock_path = optarg;
			break;
		case OPT_SOCKET_MODE:
			if (strspn(optarg, "01234567") != strlen(optarg) ||
			    parse_uint(optarg, 0777, &v) < 0) {
				fprintf(stderr, "quiverd: bad --socket-mode '%s'\n", optarg);
				return -EINVAL;
			}
			d->sock_mode = (mode_t)strtoul(optarg, NULL, 8);
			break;
		case OPT_ADMIN_GID:
			if (parse_uint(optarg, UINT32_MAX - 1, &v) < 0 ||
			    d->n_admin_gid == QV_MAX_ALLOW) {
				fprintf(stderr, "quiverd: bad or too many --admin-gid '%s'\n", optarg);
				return -EINVAL;
			}
			d->admin_gid[d->n_admin_gid++] = (gid_t)v;
			/* An admin may also connect. */
			if (d->n_allow_gid < QV_MAX_ALLOW)
				d->allow_gid[d->n_allow_gid++] = (gid_t)v;
			break;
		case OPT_ALLOW_UID:
		case OPT_ALLOW_GID:
			if (parse_uint(optarg, UINT32_MAX - 1, &v) < 0) {
				fprintf(stderr, "quiverd: bad id '%s'\n", optarg);
				return -EINVAL;
			}
			if (o == OPT_ALLOW_UID && d->n_allow_uid < QV_MAX_ALLOW)
				d->allow_uid[d->n_allow_uid++] = (uid_t)v;
			else if (o == OPT_ALLOW_GID && d->n_allow_gid < QV_MAX_ALLOW)
				d->allow_gid[d->n_allow_gid++] = (gid_t)v;
			else {
				fprintf(stderr, "quiverd: at most %d ids of each kind\n", QV_MAX_ALLOW);
				return -E2BIG;
			}
			break;
		case OPT_UDP:
			d->udp_addr = optarg;
			break;
		case OPT_MAX_BATCH:
			if (parse_uint(optarg, QV_REPO_MAX_BATCH_LIMIT, &v) < 0 || v == 0) {
				fprintf(stderr, "quiverd: bad --max-batch '%s'\n", optarg);
				return -EINVAL;
			}
			d->max_batch = (uint32_t)v;
			break;
		case OPT_S3_ENDPOINT:
			d->s3_endpoint = optarg;
			break;
		case OPT_S3_CACHE:
			if (!optarg[0] || strlen(optarg) >= sizeof(d->s3_cache)) {
				fprintf(stderr, "quiverd: bad --s3-cache '%s'\n", optarg);
				return -EINVAL;
			}
			snprintf(d->s3_cache, sizeof(d->s3_cache), "%s", optarg);
			break;
		case OPT_STATE_FILE:
			d->state_path = optarg;
			break;
		case OPT_MAX_CHANS_UID:
			if (parse_uint(optarg, 1u << 20, &v) < 0 || v == 0) {
				fprintf(stderr, "quiverd: bad --max-channels-per-uid '%s'\n", optarg);
				return -EINVAL;
			}
			d->max_chans_per_uid = (uint32_t)v;
			break;
		case OPT_FOREGROUND:
			*ret_foreground = 1;
			break;
		case OPT_LOG_LEVEL:
			if (qv_log_parse_level(optarg, &lvl) < 0) {
				fprintf(stderr, "quiverd: bad --log-level '%s'\n", optarg);
				return -EINVAL;
			}
			qv_log_set_level(lvl);
			break;
		case OPT_LOG_FORMAT:
			if (qv_log_parse_format(optarg, &lfmt) < 0) {
				fprintf(stderr, "quiverd: bad --log-format '%s' (text or json)\n", optarg);
				return -EINVAL;
			}
			qv_log_set_format(lfmt);
			break;
		case OPT_METRICS_LISTEN:
			if (qv_listen_addr_parse(optarg, &sa, &salen) < 0) {
				fprintf(stderr, "quiverd: bad --metrics-listen '%s' (ADDR:PORT, e.g. "
					"127.0.0.1:9464, [::1]:9464 or :9464)\n", optarg);
				return -EINVAL;
			}
			d->metrics_listen = optarg;
			break;
		case OPT_DPDK:
			d->dpdk_eal = optarg;
			break;
		case OPT_DPDK_IP:
			d->dpdk_ip = optarg;
			break;
		case OPT_DPDK_PORT:
			if (parse_uint(optarg, 65535, &v) < 0 || v == 0) {
				fprintf(stderr, "quiverd: bad --udp-port '%s'\n", optarg);
				return -EINVAL;
			}
			d->dpdk_port = (uint16_t)v;
			break;
		case OPT_UDP_ALLOW: {
			struct qv_allow_list *l = d->udp_allow;
			if (!l && !(l = d->udp_allow = calloc(1, sizeof(*l))))
				return -ENOMEM;
			if (qv_allow_add(l, optarg) < 0) {
				fprintf(stderr, "quiverd: bad or too many --udp-allow '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		}
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc || !d->repo) {
		usage(stderr);
		return -EINVAL;
	}
	if (d->dpdk_eal && (!d->dpdk_ip || !d->dpdk_port)) {
		fprintf(stderr, "quiverd: --dpdk needs --ip and --udp-port\n");
		return -EINVAL;
	}
#ifndef QV_HAVE_DPDK
	if (d->dpdk_eal) {
		fprintf(stderr, "quiverd: built without DPDK (meson -Ddpdk=enabled)\n");
		return -EOPNOTSUPP;
	}
#endif
	return 0;
}

static int udp_poll_adapter(void *arg, struct qv_worker *w)
{
	return qv_udp_uring_poll(arg, w);
}

#ifdef QV_HAVE_DPDK
static int dpdk_poll_adapter(void *arg, struct qv_worker *w)
{
	return qv_udp_dpdk_poll(arg, w);
}

static int dpdk_open(struct qv_daemon *d)
{
	struct qv_udp_dpdk_cfg cfg = {
		.eal_args = d->dpdk_eal,
		.ip = d->dpdk_ip,
		.udp_port = d->dpdk_port,
		.nqueues = d->ncores,
		.allow = d->udp_allow,
	};
	struct qv_udp_dpdk *p;
	int r = qv_udp_dpdk_open(&cfg, &p);

	if (r < 0) {
		qv_log(QV_LOG_ERROR, "dpdk: %s", strerror(-r));
		return r;
	}
	d->dpdk = p;
	d->dpdk_stats = qv_udp_dpdk_stats;
	qv_log(QV_LOG_INFO, "dpdk: serving UDP port %u on %s, %u queues", d->dpdk_port,
	       d->dpdk_ip, d->ncores);
	return 0;
}
#endif

/* Workers exist before any model loads: every version gets a ctx per worker. */
static int create_workers(struct qv_daemon *d)
{
#ifdef QV_HAVE_DPDK
	if (d->dpdk_eal) {
		int r = dpdk_open(d);
		if (r < 0)
			return r;
	}
#endif
	for (uint32_t i = 0; i < d->ncores; i++) {
		struct qv_worker *w;
		int r = qv_worker_create(i, d->cores[i], &d->reg, d->tsc_hz, &w);
		if (r < 0) {
			qv_log(QV_LOG_ERROR, "worker %u: %s", i, strerror(-r));
			return r;
		}
		d->workers[d->nworkers++] = w;
		if (d->udp_addr) {
			struct qv_udp_uring *u;
			r = qv_udp_uring_open(d->udp_addr, d->udp_allow, w->node, &u);
			if (r < 0) {
				qv_log(QV_LOG_ERROR, "worker %u: udp %s: %s", i, d->udp_addr,
				       strerror(-r));
				return r;
			}
			d->udp[i] = u;
			qv_worker_add_poller(w, udp_poll_adapter, u);
		}
#ifdef QV_HAVE_DPDK
		if (d->dpdk)
			qv_worker_add_poller(w, dpdk_poll_adapter, qv_udp_dpdk_queue(d->dpdk, i));
#endif
	}
	return 0;
}

static int start_workers(struct qv_daemon *d)
{
	for (uint32_t i = 0; i < d->nworkers; i++) {
		struct qv_worker *w = d->workers[i];
		int r = qv_worker_start(w);
		if (r < 0) {
			qv_log(QV_LOG_ERROR, "worker %u on core %d: %s", i, w->core,
			       w->init_err[0] ? w->init_err : strerror(-r));
			return r;
		}
		qv_log(QV_LOG_INFO, "worker %u on core %d (NUMA node %d)%s", i, w->core, w->node,
		       d->udp[i] ? ", serving UDP" : "");
	}
	if (d->udp_addr && d->udp[0])
		qv_log(QV_LOG_INFO, "udp: listening on port %u",
		       (unsigned)qv_udp_uring_port(d->udp[0]));
	return 0;
}

/*
 * Goes to the background like daemon(1, 1) (same cwd, same descriptors,
 * a new session), but the parent stays until the child says it serves:
 * it exits 0 when the child writes its ready byte (the repository is
 * loaded and the socket listens), and otherwise with the child's failure,
 * so `quiverd --repo BAD && echo started` cannot lie. Called before any
 * thread exists.
 */
static int detach(int *ret_ready_fd)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid > 0) {
		char c;
		ssize_t n;
		int st = 0;

		close(p[1]);
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n == 1)
			_exit(0);
		/* EOF: the child exited (or closed the pipe) before it was ready. */
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		fprintf(stderr, "quiverd: failed to start (exit status %d); its log says why\n",
			WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		_exit(WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : 1);
	}
	close(p[0]);
	if (setsid() < 0) {
		close(p[1]);
		return -1;
	}
	*ret_ready_fd = p[1];
	return 0;
}

/*
 * --repo s3://BUCKET/PREFIX: the repository is fetched into the cache (a
 * restart fetches only what changed, s3fetch.h) and served from there. On
 * the main thread before any worker starts, so nothing waits on it.
 */
static int fetch_s3_repo(struct qv_daemon *d)
{
	struct qv_s3_opts o = { .endpoint = d->s3_endpoint };
	struct qv_s3_stats st;
	char err[1024];
	int r;

	if (!qv_s3_is_url(d->repo))
		return 0;
	if (!d->s3_cache[0]) {
		qv_log(QV_LOG_ERROR, "repository %s: no cache directory (give --s3-cache DIR)",
		       d->repo);
		return -EINVAL;
	}
	r = qv_s3_fetch(d->repo, d->s3_cache, &o, d->repo_local, sizeof(d->repo_local), &st, err,
			sizeof(err));
	if (r < 0) {
		qv_log(QV_LOG_ERROR, "repository %s", err);
		return r;
	}
	qv_log(QV_LOG_INFO, "repository %s: %u objects in %s, %u fetched (%llu bytes)", d->repo,
	       st.objects, d->repo_local, st.fetched, st.bytes);
	d->repo = d->repo_local;
	return 0;
}

int main(int argc, char **argv)
{
	struct qv_daemon *d = calloc(1, sizeof(*d));
	int foreground = 0, sigfd = -1, r;
	sigset_t mask;

	if (!d)
		return 1;
	d->sock_path = QV_DEFAULT_SOCKET;
	d->sock_mode = 0660;
	d->max_chans_per_uid = QV_DEFAULT_CHANS_PER_UID;
	if (parse_args(argc, argv, d, &foreground) < 0) {
		free(d->udp_allow);
		free(d);
		return 2;
	}
	d->ready_fd = -1;
	if (!foreground && detach(&d->ready_fd) < 0) {
		fprintf(stderr, "quiverd: detach: %s\n", strerror(errno));
		free(d->udp_allow);
		free(d);
		return 1;
	}
	if (d->ncores == 0) {
		d->cores[0] = last_allowed_core();
		d->ncores = 1;
	}
	/* Blocked before any thread exists, so only the signalfd ever sees them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);   /* a reload of the repository, see control.c */
	signal(SIGPIPE, SIG_IGN);
	if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0 ||
	    (sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		qv_log(QV_LOG_ERROR, "signalfd: %s", strerror(errno));
		free(d->udp_allow);
		free(d);
		return 1;
	}
	keep_control_off_workers(d);
	d->start_ns = qv_now_ns();
	d->tsc_hz = qv_tsc_calibrate();
	r = qv_ops_start(d);
	if (r < 0)
		goto out;
	if (!d->s3_cache[0])
		(void)qv_s3_default_cache(d->s3_cache, sizeof(d->s3_cache));
	r = fetch_s3_repo(d);
	if (r < 0)
		goto out;
	r = qv_reg_init(&d->reg, d->repo, d->max_batch, d->tsc_hz, d->workers, d->ncores);
	if (r < 0)
		goto out;
	r = create_workers(d);
	if (r < 0)
		goto out;
	/* The prediction log's rings exist before any version picks its sampling. */
	r = qv_predlog_create(d->workers, d->nworkers, QV_PLOG_DEFAULT_RING, d->tsc_hz,
			      &d->reg.predlog);
	if (r < 0)
		goto out;
	r = qv_reg_load_repo(&d->reg);
	if (r < 0) {
		qv_log(QV_LOG_ERROR, "repository %s: %s", d->repo, strerror(-r));
		goto out;
	}
	(void)qv_state_restore(d);   /* logs what it could not restore */
	if (qv_daemon_models_ready(d) == 0) {
		qv_log(QV_LOG_ERROR, "repository %s: no model loaded (%u found); not starting",
		       d->repo, d->reg.n);
		r = -ENOENT;
		goto out;
	}
	r = qv_predlog_start(d->reg.predlog);
	if (r == 0)
		r = start_workers(d);
	if (r == 0)
		r = qv_control_run(d, sigfd);
out:
	/* qv_control_run stops the workers; here only what it never saw. */
	for (uint32_t i = 0; i < d->nworkers; i++)
		qv_worker_destroy(d->workers[i]);
	/* After the workers are joined: the last records are drained and written. */
	qv_predlog_destroy(d->reg.predlog);
	d->reg.predlog = NULL;
	for (uint32_t i = 0; i < QV_MAX_WORKERS; i++)
		if (d->udp[i])
			qv_udp_uring_close(d->udp[i]);
#ifdef QV_HAVE_DPDK
	/* After every worker stopped polling its queue. */
	qv_udp_dpdk_close(d->dpdk);
#endif
	qv_ops_stop(d);
	/* Every worker is joined: nothing reads the tables any more. */
	qv_reg_fini(&d->reg);
	free(d->udp_allow);
	close(sigfd);
	if (r < 0)
		qv_log(QV_LOG_ERROR, "quiverd exiting with status 1");
	else
		qv_log(QV_LOG_INFO, "quiverd exiting (clean)");
	free(d);
	return r < 0 ? 1 : 0;
}
