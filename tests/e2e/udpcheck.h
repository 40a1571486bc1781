/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udpcheck.h - checks of a UDP back end (io_uring or DPDK) against a
 * model's reference outputs, shared by the UDP and DPDK end-to-end tests.
 * Failures go through qvt_fail / qvt_die, labelled with `label`.
 */
#ifndef QVT_UDPCHECK_H
#define QVT_UDPCHECK_H

#include <stdint.h>

#include "daemon.h"
#include "quiver.h"

/* One synchronous request of rows [row0, row0 + rows) with id `id`: status
 * OK, the id and version echoed, outputs equal to the reference. */
void qvt_udp_sync_rows(qv_udp_client *c, const struct qv_model_desc *d,
		       const struct qvt_ref *ref, uint32_t row0, uint32_t rows, uint64_t id,
		       uint32_t timeout_ms, const char *label);

/* Every reference row as its own request, as many in flight as the client
 * takes; all OK and equal to the reference within limit_s seconds. */
void qvt_udp_async_all(qv_udp_client *c, const struct qv_model_desc *d,
		       const struct qvt_ref *ref, uint32_t limit_s, const char *label);

#endif /* QVT_UDPCHECK_H */
