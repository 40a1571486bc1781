/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.h - quiverd's log: one line an event on stderr, with a level.
 * Control thread only (workers never log: they count and return statuses).
 */
#ifndef QV_DP_LOG_H
#define QV_DP_LOG_H

enum qv_log_level {
	QV_LOG_DEBUG = 0,
	QV_LOG_INFO = 1,
	QV_LOG_WARN = 2,
	QV_LOG_ERROR = 3,
};

void qv_log_set_level(enum qv_log_level lvl);
/* Parses "debug", "info", "warn" or "error"; returns 0 or -EINVAL. */
int qv_log_parse_level(const char *s, enum qv_log_level *ret_lvl);
void qv_log(enum qv_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* QV_DP_LOG_H */
