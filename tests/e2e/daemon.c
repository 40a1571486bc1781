/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.c - spawning and probing a real quiverd for end-to-end tests.
 * See daemon.h. Test code, not hot path: it may allocate, block and print.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "daemon.h"

static struct qvt_daemon *live[4];
static atomic_int failures;

uint64_t qvt_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void qvt_sleep_ms(uint32_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void qvt_sleep_us(uint32_t us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void qvt_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("FAIL: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	atomic_fetch_add_explicit(&failures, 1, memory_order_relaxed);
}

void qvt_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("FATAL: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	for (int i = 0; i < 4; i++)
		if (live[i])
			qvt_daemon_dump_log(live[i]);
	exit(1);  /* the atexit hook kills the daemon */
}

int qvt_failures(void)
{
	return atomic_load_explicit(&failures, memory_order_relaxed);
}

void qvt_daemon_cleanup(struct qvt_daemon *d)
{
	for (int i = 0; i < 4; i++)
		if (live[i] == d)
			live[i] = NULL;
	if (d->pid > 0)
		qvt_daemon_kill(d);
	if (d->dir[0]) {
		unlink(d->sock);
		unlink(d->log);
		rmdir(d->dir);
		d->dir[0] = '\0';
	}
}

/* Never leave a daemon or a temp dir behind, whatever path exits. */
static void cleanup_at_exit(void)
{
	for (int i = 0; i < 4; i++)
		if (live[i])
			qvt_daemon_cleanup(live[i]);
}

static bool log_says_ready(const char *path)
{
	char buf[8192];
	FILE *f = fopen(path, "r");
	bool ready = false;
	if (!f)
		return false;
	while (fgets(buf, sizeof(buf), f))
		if (strstr(buf, "quiverd ready")) {
			ready = true;
			break;
		}
	fclose(f);
	return ready;
}

static bool socket_accepts(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return false;
	memcpy(sa.sun_path, path, n + 1);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool ok = connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

void qvt_daemon_dump_log(const struct qvt_daemon *d)
{
	char buf[4096];
	FILE *f = fopen(d->log, "r");
	if (!f)
		return;
	fprintf(stderr, "---- %s ----\n", d->log);
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	fprintf(stderr, "---- end of log ----\n");
	fclose(f);
}

bool qvt_daemon_alive(struct qvt_daemon *d)
{
	int st;
	if (d->pid <= 0)
		return false;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
		fprintf(stderr, "quiverd %d exited (status 0x%x)\n", (int)d->pid, st);
		d->pid = 0;
		return false;
	}
	return true;
}

int qvt_daemon_start(struct qvt_daemon *d, const char *quiverd, const char *repo,
		     const char *const *extra)
{
	static bool hooked;
	const char *argv[32];
	int n = 0, slot = -1;

	memset(d, 0, sizeof(*d));
	if (access(quiverd, X_OK) != 0) {
		printf("SKIP: no quiverd binary at %s\n", quiverd);
		exit(QVT_SKIP);
	}
	if (access(repo, R_OK | X_OK) != 0) {
		printf("SKIP: no generated model repository at %s\n", repo);
		exit(QVT_SKIP);
	}
	for (int i = 0; i < 4; i++)
		if (!live[i]) {
			slot = i;
			break;
		}
	if (slot < 0)
		return -EMFILE;
	const char *tmp = getenv("TMPDIR");
	snprintf(d->dir, sizeof(d->dir), "%s/qv-e2e-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	if (!mkdtemp(d->dir))
		return -errno;
	snprintf(d->sock, sizeof(d->sock), "%s/quiverd.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/quiverd.log", d->dir);
	if (!hooked) {
		atexit(cleanup_at_exit);
		hooked = true;
	}
	live[slot] = d;

	argv[n++] = quiverd;
	argv[n++] = "--repo";
	argv[n++] = repo;
	argv[n++] = "--socket";
	argv[n++] = d->sock;
	argv[n++] = "--foreground";   /* we must be its parent to reap it */
	for (int i = 0; extra && extra[i] && n < 31; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;

	fprintf(stderr, "starting:");
	for (int i = 0; i < n; i++)
		fprintf(stderr, " %s", argv[i]);
	fputc('\n', stderr);

	int logfd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (logfd < 0)
		return -errno;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(logfd);
		return e;
	}
	if (pid == 0) {
		dup2(logfd, STDERR_FILENO);
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, STDIN_FILENO);
			dup2(nul, STDOUT_FILENO);
		}
		execv(quiverd, (char *const *)argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", quiverd, strerror(errno));
		_exit(127);
	}
	close(logfd);
	d->pid = pid;

	uint64_t t0 = qvt_now_ns();
	while (qvt_now_ns() - t0 < 30ull * 1000000000u) {
		if (!qvt_daemon_alive(d)) {
			qvt_daemon_dump_log(d);
			return -ECHILD;
		}
		if (log_says_ready(d->log) || socket_accepts(d->sock)) {
			fprintf(stderr, "quiverd %d ready after %.0f ms\n", (int)pid,
				(double)(qvt_now_ns() - t0) / 1e6);
			return 0;
		}
		qvt_sleep_ms(20);
	}
	qvt_daemon_dump_log(d);
	qvt_daemon_kill(d);
	return -ETIMEDOUT;
}

int qvt_daemon_stop(struct qvt_daemon *d, uint32_t timeout_ms, int *ret_wstatus)
{
	if (d->pid <= 0)
		return -ESRCH;
	kill(d->pid, SIGTERM);
	return qvt_daemon_wait(d, timeout_ms, ret_wstatus);
}

int qvt_daemon_wait(struct qvt_daemon *d, uint32_t timeout_ms, int *ret_wstatus)
{
	int st;
	if (d->pid <= 0)
		return -ESRCH;
	uint64_t t0 = qvt_now_ns();
	while (qvt_now_ns() - t0 < (uint64_t)timeout_ms * 1000000u) {
		pid_t r = waitpid(d->pid, &st, WNOHANG);
		if (r == d->pid) {
			d->pid = 0;
			*ret_wstatus = st;
			return 0;
		}
		if (r < 0)
			return -errno;
		qvt_sleep_ms(10);
	}
	qvt_daemon_kill(d);
	return -ETIMEDOUT;
}

int qvt_finish(struct qvt_daemon *d)
{
	int st;
	if (d->pid > 0) {
		if (qvt_daemon_stop(d, 30000, &st) < 0)
			qvt_fail("quiverd did not exit within 30 s of SIGTERM");
		else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			qvt_fail("quiverd exit status 0x%x, want exit 0", st);
	}
	if (qvt_failures())
		qvt_daemon_dump_log(d);
	qvt_daemon_cleanup(d);
	printf("%s\n", qvt_failures() ? "FAILED" : "ok");
	return qvt_failures() ? 1 : 0;
}

void qvt_daemon_kill(struct qvt_daemon *d)
{
	int st;
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGKILL);
	while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR)
		;
	d->pid = 0;
}

int qvt_fd_count(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *dir = opendir(path);
	if (!dir)
		return -errno;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

int qvt_memfd_maps(pid_t pid)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int n = 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "/memfd:"))
			n++;
	fclose(f);
	return n;
}

long qvt_rss_kib(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	long kib = -ENOENT;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int qvt_run(const char *const *argv, char *out, size_t cap, int *ret_wstatus)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(p[0]);
		close(p[1]);
		return e;
	}
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execv(argv[0], (char *const *)argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	size_t n = 0;
	for (;;) {
		char tmp[4096];
		ssize_t k = read(p[0], tmp, sizeof(tmp));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		size_t take = (size_t)k;
		if (cap && n + take > cap - 1)
			take = cap - 1 - n;
		memcpy(out + n, tmp, take);
		n += take;
	}
	if (cap)
		out[n] = '\0';
	close(p[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	*ret_wstatus = st;
	return 0;
}

cJSON *qvt_ctl_json(const char *quiverctl, const char *sock, ...)
{
	enum { MAX_ARGS = 12, OUT_CAP = 1 << 20 };
	const char *argv[4 + MAX_ARGS + 1] = { quiverctl, "--socket", sock, "--json" };
	char cmd[256] = "quiverctl --json";
	size_t n = 4, cl = strlen(cmd);
	const char *a;
	va_list ap;
	int ws;

	va_start(ap, sock);
	while ((a = va_arg(ap, const char *)) != NULL) {
		if (n == 4 + MAX_ARGS)
			qvt_die("qvt_ctl_json: more than %d arguments", MAX_ARGS);
		argv[n++] = a;
		if (cl < sizeof(cmd))
			cl += (size_t)snprintf(cmd + cl, sizeof(cmd) - cl, " %s", a);
	}
	va_end(ap);
	argv[n] = NULL;
	/* Allocated, not static: the e2e tests call this from several threads. */
	char *out = malloc(OUT_CAP);
	if (!out)
		qvt_die("%s: out of memory", cmd);
	int r = qvt_run(argv, out, OUT_CAP, &ws);
	if (r < 0)
		qvt_die("%s: %s", cmd, strerror(-r));
	if (WIFSIGNALED(ws))
		qvt_die("%s: killed by signal %d:\n%.2000s", cmd, WTERMSIG(ws), out);
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		qvt_die("%s: exit status %d:\n%.2000s", cmd, WEXITSTATUS(ws), out);
	cJSON *j = cJSON_Parse(out);
	if (!j)
		qvt_die("%s: not JSON:\n%.2000s", cmd, out);
	free(out);
	return j;
}

void qvt_stats_batches(const char *quiverctl, const char *sock, const char *model,
		       double *ret_batches, double *ret_rows)
{
	cJSON *j = qvt_ctl_json(quiverctl, sock, "stats", NULL);
	const cJSON *r, *v;
	double b = 0, rows = 0;

	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "routes")) {
		const cJSON *nm = cJSON_GetObjectItemCaseSensitive(r, "name");

		if (!cJSON_IsString(nm) || strcmp(nm->valuestring, model) != 0)
			continue;
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(r, "versions")) {
			const cJSON *bb = cJSON_GetObjectItemCaseSensitive(v, "batches");
			const cJSON *br = cJSON_GetObjectItemCaseSensitive(v, "batch_rows");

			if (!cJSON_IsNumber(bb) || !cJSON_IsNumber(br))
				qvt_die("stats: no batches / batch_rows");
			b += bb->valuedouble;
			rows += br->valuedouble;
		}
	}
	cJSON_Delete(j);
	*ret_batches = b;
	*ret_rows = rows;
}

int qvt_ref_load(const char *repo, const char *model, uint32_t version, struct qvt_ref *ret)
{
	char path[512], err[256];
	struct qvt_ref r;
	memset(&r, 0, sizeof(r));
	snprintf(path, sizeof(path), "%s/%s/%u/x.npy", repo, model, version);
	int e = qv_npy_read(path, &r.x, err, sizeof(err));
	if (e < 0) {
		fprintf(stderr, "%s: %s\n", path, err);
		return e;
	}
	snprintf(path, sizeof(path), "%s/%s/%u/y.npy", repo, model, version);
	e = qv_npy_read(path, &r.y, err, sizeof(err));
	if (e < 0) {
		fprintf(stderr, "%s: %s\n", path, err);
		qv_npy_free(&r.x);
		return e;
	}
	if (r.x.rank != 2 || r.y.rank != 2 || r.x.shape[0] != r.y.shape[0] || r.x.shape[0] < 1) {
		fprintf(stderr, "%s/%s/%u: x/y are not [rows, dim] with equal rows\n", repo, model,
			version);
		qv_npy_free(&r.x);
		qv_npy_free(&r.y);
		return -EINVAL;
	}
	r.rows = (uint32_t)r.x.shape[0];
	r.in_dim = (uint32_t)r.x.shape[1];
	r.out_dim = (uint32_t)r.y.shape[1];
	*ret = r;
	return 0;
}

void qvt_ref_free(struct qvt_ref *r)
{
	qv_npy_free(&r->x);
	qv_npy_free(&r->y);
}

size_t qvt_compare(const float *got, const float *want, size_t n, double rtol, double atol,
		   const char *what)
{
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		double g = got[i], w = want[i];
		/* !(<=) so that a NaN counts as a mismatch. */
		if (!(fabs(g - w) <= atol + rtol * fabs(w))) {
			if (bad < 5)
				fprintf(stderr, "%s: [%zu] got %.9g want %.9g\n", what, i, g, w);
			bad++;
		}
	}
	return bad;
}
