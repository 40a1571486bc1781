/* SPDX-License-Identifier: Apache-2.0 */
/* httpget.h - a minimal HTTP/1.0 client for the tests of --metrics-listen. */
#ifndef QVT_HTTPGET_H
#define QVT_HTTPGET_H

#include <stddef.h>
#include <stdint.h>

/*
 * Sends `METHOD PATH HTTP/1.0` to 127.0.0.1:port and reads the answer to
 * EOF. Returns the status code (and the body, malloc'd and NUL-terminated,
 * in *ret_body when ret_body is not NULL; its Content-Type header value in
 * ctype when ctype is not NULL), or -errno.
 */
int qvt_http(uint16_t port, const char *method, const char *path, char **ret_body,
	     char *ctype, size_t ctype_cap);

/* The port quiverd logged for --metrics-listen ("... (port N) ..."), 0 if none. */
uint16_t qvt_metrics_port(const char *log_path);

#endif /* QVT_HTTPGET_H */
