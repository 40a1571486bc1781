/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.c - one line an event: "<iso time> quiverd[pid] LEVEL message".
 * The line is built in one buffer and written with one write(2) so lines
 * from a daemon and its test harness never interleave mid-line.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum qv_log_level log_level = QV_LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void qv_log_set_level(enum qv_log_level lvl)
{
	log_level = lvl;
}

int qv_log_parse_level(const char *s, enum qv_log_level *ret_lvl)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*ret_lvl = (enum qv_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void qv_log(enum qv_log_level lvl, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	size_t n;
	va_list ap;
	int r;

	if (lvl < log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ quiverd[%d] %s ", ts.tv_nsec / 1000000,
		     (int)getpid(), level_names[lvl]);
	if (r > 0)
		n += (size_t)r;
	if (n < sizeof(line)) {
		va_start(ap, fmt);
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		if (r > 0)
			n += (size_t)r;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* Best effort: a log line that cannot be written is dropped. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
