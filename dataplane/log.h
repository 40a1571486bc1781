/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.h - quiverd's log: one line an event on stderr, with a level.
 * Control thread only (workers never log: they count and return statuses).
 */
#ifndef QV_DP_LOG_H
#define QV_DP_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum qv_log_level {
	QV_LOG_DEBUG = 0,
	QV_LOG_INFO = 1,
	QV_LOG_WARN = 2,
	QV_LOG_ERROR = 3,
};

enum qv_log_format {
	QV_LOG_TEXT = 0,  /* "<iso time> quiverd[pid] level message" */
	QV_LOG_JSON = 1,  /* one JSON object a line, see log.c */
};

void qv_log_set_level(enum qv_log_level lvl);
void qv_log_set_format(enum qv_log_format fmt);
/* Parses "text" or "json"; returns 0 or -EINVAL. */
int qv_log_parse_format(const char *s, enum qv_log_format *ret_fmt);
/* Parses "debug", "info", "warn" or "error"; returns 0 or -EINVAL. */
int qv_log_parse_level(const char *s, enum qv_log_level *ret_lvl);
void qv_log(enum qv_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The JSON line of one event (what qv_log writes in QV_LOG_JSON), into
 * buf (always NUL-terminated, truncated lines stay valid JSON objects
 * only if cap is large enough: 1024 is). `ap` holds the format's arguments.
 * Returns the length. Exposed for the unit test.
 */
size_t qv_log_json_line(char *buf, size_t cap, enum qv_log_level lvl, const char *ts, int pid,
			const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

#endif /* QV_DP_LOG_H */
