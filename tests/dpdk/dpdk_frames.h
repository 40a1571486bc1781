/* SPDX-License-Identifier: Apache-2.0 */
/* dpdk_frames.h - the `frames` mode of dpdk_client (see dpdk_frames.c). */
#ifndef QVT_DPDK_FRAMES_H
#define QVT_DPDK_FRAMES_H

/* Returns the process exit status: 0 if every reply check held. */
int dpdk_frames(const char *iface, const char *port_mac, const char *addr_port,
		const char *repo);

#endif /* QVT_DPDK_FRAMES_H */
