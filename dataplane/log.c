/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.c - one line an event, on stderr.
 *
 * Text (default): "<iso time> quiverd[pid] LEVEL message".
 * JSON (--log-format json): one object a line,
 *   {"ts":"2026-01-02T03:04:05.678Z","level":"info","pid":42,
 *    "event":"model %s: version %u loaded in %.1f ms (...)",
 *    "msg":"model trade: version 3 loaded in 1.5 ms (...)",
 *    "model":"trade","version":3,"fields":["trade",3,1.5,...]}
 * `event` is the call site's format string: constant for a kind of event,
 * so a log platform groups and counts by it; `fields` are the format's
 * arguments in order, typed (numbers stay numbers); `model` and `version`
 * are present when the event names a model ("model %s", "%s/%u", "version
 * %u"). Built with cJSON (already a dependency) so every string is escaped
 * correctly, whatever a model name or an error message contains.
 *
 * The line is built in one buffer and written with one write(2) so lines
 * from a daemon and its test harness never interleave mid-line.
 */
#include "log.h"

#include <cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum qv_log_level log_level = QV_LOG_INFO;
static enum qv_log_format log_format = QV_LOG_TEXT;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void qv_log_set_level(enum qv_log_level lvl)
{
	log_level = lvl;
}

void qv_log_set_format(enum qv_log_format fmt)
{
	log_format = fmt;
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

int qv_log_parse_format(const char *s, enum qv_log_format *ret_fmt)
{
	if (strcmp(s, "text") == 0)
		*ret_fmt = QV_LOG_TEXT;
	else if (strcmp(s, "json") == 0)
		*ret_fmt = QV_LOG_JSON;
	else
		return -EINVAL;
	return 0;
}

/*
 * Walks fmt's conversions, taking each argument from ap with its type, and
 * appends it to `fields`. Where the format names a model ("model %s",
 * "%s/%u") or a version ("version %u", "%s/%u"), sets them on o.
 */
static void walk_args(cJSON *o, cJSON *fields, const char *fmt, va_list ap)
{
	const char *p = fmt;
	int have_model = 0, have_version = 0;

	while ((p = strchr(p, '%')) != NULL) {
		const char *conv = p;
		int lng = 0, size_t_len = 0, is_model = 0, is_version = 0;
		cJSON *item = NULL;

		p++;
		if (*p == '%') {
			p++;
			continue;
		}
		while (*p && strchr("-+ #0", *p))
			p++;
		while (*p == '*' || (*p >= '0' && *p <= '9') || *p == '.') {
			if (*p == '*')
				(void)va_arg(ap, int);
			p++;
		}
		for (;; p++) {
			if (*p == 'l')
				lng++;
			else if (*p == 'z' || *p == 't' || *p == 'j')
				size_t_len = 1;
			else if (*p != 'h' && *p != 'L')
				break;
		}
		is_model = (conv >= fmt + 6 && strncmp(conv - 6, "model ", 6) == 0) ||
			   (*p == 's' && strncmp(p + 1, "/%u", 3) == 0);
		is_version = (conv >= fmt + 8 && strncmp(conv - 8, "version ", 8) == 0) ||
			     (conv >= fmt + 3 && strncmp(conv - 3, "%s/", 3) == 0);
		switch (*p) {
		case 'd':
		case 'i': {
			long long v = size_t_len ? (long long)va_arg(ap, ssize_t) :
				      lng >= 2 ? va_arg(ap, long long) :
				      lng == 1 ? va_arg(ap, long) : va_arg(ap, int);
			item = cJSON_CreateNumber((double)v);
			break;
		}
		case 'u':
		case 'x':
		case 'X':
		case 'o':
		case 'c': {
			unsigned long long v = size_t_len ? va_arg(ap, size_t) :
					       lng >= 2 ? va_arg(ap, unsigned long long) :
					       lng == 1 ? va_arg(ap, unsigned long) :
							  va_arg(ap, unsigned);
			item = cJSON_CreateNumber((double)v);
			if (is_version && !have_version && *p == 'u') {
				cJSON_AddNumberToObject(o, "version", (double)v);
				have_version = 1;
			}
			break;
		}
		case 'e':
		case 'f':
		case 'g':
		case 'E':
		case 'G':
			item = cJSON_CreateNumber(va_arg(ap, double));
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			item = cJSON_CreateString(s ? s : "(null)");
			if (is_model && !have_model && s) {
				cJSON_AddStringToObject(o, "model", s);
				have_model = 1;
			}
			break;
		}
		case 'p':
			(void)va_arg(ap, void *);
			break;
		default:
			return; /* a conversion this walker does not know: stop, types unknown */
		}
		if (item)
			cJSON_AddItemToArray(fields, item);
		if (*p)
			p++;
	}
}

size_t qv_log_json_line(char *buf, size_t cap, enum qv_log_level lvl, const char *ts, int pid,
			const char *fmt, va_list ap)
{
	char msg[768];
	cJSON *o = cJSON_CreateObject(), *fields = cJSON_CreateArray();
	char *text = NULL;
	size_t n = 0;
	va_list ap2;

	va_copy(ap2, ap);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (o && fields) {
		cJSON_AddStringToObject(o, "ts", ts);
		cJSON_AddStringToObject(o, "level", level_names[lvl]);
		cJSON_AddNumberToObject(o, "pid", pid);
		cJSON_AddStringToObject(o, "event", fmt);
		cJSON_AddStringToObject(o, "msg", msg);
		walk_args(o, fields, fmt, ap2);
		cJSON_AddItemToObject(o, "fields", fields);
		fields = NULL;
		text = cJSON_PrintUnformatted(o);
	}
	va_end(ap2);
	cJSON_Delete(fields);
	cJSON_Delete(o);
	if (text && strlen(text) < cap) {
		n = strlen(text);
		memcpy(buf, text, n + 1);
	} else if (cap > 0) {
		/* Out of memory or a giant line: still one valid object. */
		int r = snprintf(buf, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"pid\":%d,"
				 "\"event\":\"log line too long\"}", ts, level_names[lvl], pid);
		n = r < 0 ? 0 : (size_t)r >= cap ? cap - 1 : (size_t)r;
	}
	free(text);
	return n;
}

void qv_log(enum qv_log_level lvl, const char *fmt, ...)
{
	char line[2048], ts[48];
	struct timespec tv;
	struct tm tm;
	size_t n;
	va_list ap;
	int r;

	if (lvl < log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &tv);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", tv.tv_nsec / 1000000);
	if (log_format == QV_LOG_JSON) {
		va_start(ap, fmt);
		n = qv_log_json_line(line, sizeof(line) - 1, lvl, ts, (int)getpid(), fmt, ap);
		va_end(ap);
	} else {
		r = snprintf(line, sizeof(line), "%s quiverd[%d] %s ", ts, (int)getpid(),
			     level_names[lvl]);
		n = r > 0 ? (size_t)r : 0;
		if (n < sizeof(line)) {
			va_start(ap, fmt);
			r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
			va_end(ap);
			if (r > 0)
				n += (size_t)r;
		}
		if (n >= sizeof(line) - 1)
			n = sizeof(line) - 2;
	}
	line[n++] = '\n';
	/* Best effort: a log line that cannot be written is dropped. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
