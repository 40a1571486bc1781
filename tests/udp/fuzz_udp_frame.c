/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_udp_frame.c - libFuzzer target for qv_frame_classify (the DPDK back
 * end's frame classification, dataplane/udp_frame.c). One input is one
 * frame; our side is 02:00:00:00:00:01, 10.9.0.1, UDP port 9000 (the seeds
 * in corpus_frame/ are built for it by gen_frame_corpus.py). Besides not
 * reading past the frame (ASan, exact-size copies): every layer a verdict
 * points at lies inside the frame and matches what the verdict claims.
 * Built with -Dfuzz=true (clang -fsanitize=fuzzer); otherwise linked with
 * fuzz_replay.c and run over corpus_frame/ as a unit test.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "udp_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qv_frame_self self = { .mac = { 0x02, 0, 0, 0, 0, 0x01 } };
	struct qv_frame_info fi;
	uint32_t len = size > 65535 ? 65535 : (uint32_t)size;
	enum qv_frame_kind k;
	uint16_t port;

	self.ip_be = htonl(0x0a090001u);
	self.port_be = htons(9000);
	memset(&fi, 0xa5, sizeof(fi));
	k = qv_frame_classify(data, len, &self, &fi);
	switch (k) {
	case QV_FRAME_OTHER:
		break;
	case QV_FRAME_ARP_REQUEST:
		if (len < QV_FRAME_L2_LEN + QV_FRAME_ARP_LEN || memcmp(data + 14 + 24, &self.ip_be, 4))
			abort();
		break;
	case QV_FRAME_ICMP_ECHO:
	case QV_FRAME_UDP:
	case QV_FRAME_FRAGMENT:
		if (memcmp(data, self.mac, 6) != 0 || memcmp(data + 14 + 16, &self.ip_be, 4) ||
		    fi.ihl < 20 || fi.ihl > 60 || fi.l4_off != 14 + fi.ihl ||
		    fi.ip_len < fi.ihl || 14 + fi.ip_len > len)
			abort();
		if (k == QV_FRAME_ICMP_ECHO && (fi.ip_len - fi.ihl < 8 || data[fi.l4_off] != 8))
			abort();
		if (k == QV_FRAME_UDP) {
			memcpy(&port, data + fi.l4_off + 2, 2);
			if (port != self.port_be || fi.udp_len < 8 ||
			    fi.udp_len > fi.ip_len - fi.ihl ||
			    fi.udp_len - 8 > QV_FRAME_MAX_UDP_PAYLOAD)
				abort();
		}
		break;
	default:
		abort();
	}
	return 0;
}
