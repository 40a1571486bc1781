/* SPDX-License-Identifier: Apache-2.0 */
/*
 * floor_udp.h - the floor under any UDP transport on this host: a bare
 * ping-pong of one datagram between two processes on loopback, both
 * busy-polling (recvfrom MSG_DONTWAIT / sendto), no parsing, no model.
 * quiver-bench prints it beside `udp` (qv_udp_infer against quiverd).
 */
#ifndef QV_FLOOR_UDP_H
#define QV_FLOOR_UDP_H

#include <stdint.h>

/*
 * Forks an echo process on 127.0.0.1 (an ephemeral port), runs `warmup`
 * untimed then `iters` timed round trips of `payload_bytes` (1..65000)
 * each, and writes the round-trip times in ns to ret_lat_ns[0..iters) on
 * success. Both processes spin: on a 2-core host they take both cores.
 * Returns 0, -EINVAL, -ETIMEDOUT (no echo for 10 s), or another -errno.
 */
int qv_floor_udp(uint32_t iters, uint32_t warmup, uint32_t payload_bytes, uint64_t *ret_lat_ns);

#endif /* QV_FLOOR_UDP_H */
