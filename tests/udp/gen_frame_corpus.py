#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes tests/udp/corpus_frame/: one Ethernet frame per class for
fuzz_udp_frame.c (our side 02:00:00:00:00:01, 10.9.0.1, UDP port 9000).
Usage: gen_frame_corpus.py OUT_DIR"""
import os
import struct
import sys

OUR_MAC = bytes([2, 0, 0, 0, 0, 1])
PEER_MAC = bytes([2, 0, 0, 0, 0, 2])
BCAST = b"\xff" * 6
OUR_IP = bytes([10, 9, 0, 1])
PEER_IP = bytes([10, 9, 0, 2])


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(dst, et):
    return dst + PEER_MAC + struct.pack("!H", et)


def ipv4(dst_ip, proto, payload, frag=0x4000, opts=b""):
    ihl = 5 + len(opts) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), 0, frag, 64, proto,
                    0, PEER_IP, dst_ip) + opts
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def arp(op, tip):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, PEER_MAC, PEER_IP, b"\0" * 6, tip)


def udp(port, payload):
    return struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload


def icmp(t, code):
    return struct.pack("!BBHHH", t, code, 0, 1, 1) + bytes(range(16))


# a quiver UDP request header's worth of bytes: the classifier does not read it
REQ = b"QVU1" + bytes(28) + struct.pack("<8f", *range(8))

FRAMES = {
    "arp-request-ours": eth(BCAST, 0x0806) + arp(1, OUR_IP),
    "arp-request-other": eth(BCAST, 0x0806) + arp(1, PEER_IP),
    "arp-reply": eth(OUR_MAC, 0x0806) + arp(2, OUR_IP),
    "arp-truncated": (eth(BCAST, 0x0806) + arp(1, OUR_IP))[:40],
    "icmp-echo": eth(OUR_MAC, 0x0800) + ipv4(OUR_IP, 1, icmp(8, 0)),
    "icmp-echo-options": eth(OUR_MAC, 0x0800) + ipv4(OUR_IP, 1, icmp(8, 0), opts=b"\x01" * 8),
    "icmp-reply": eth(OUR_MAC, 0x0800) + ipv4(OUR_IP, 1, icmp(0, 0)),
    "udp-ours": eth(OUR_MAC, 0x0800) + ipv4(OUR_IP, 17, udp(9000, REQ)),
    "udp-ours-padded": eth(OUR_MAC, 0x0800) + ipv4(OUR_IP, 17, udp(9000, b"x")) + b"\0" * 20,
    "udp-other-port": eth(OUR_MAC, 0x0800) + ipv4(OUR_IP, 17, udp(9001, REQ)),
    "udp-other-ip": eth(OUR_MAC, 0x0800) + ipv4(PEER_IP, 17, udp(9000, REQ)),
    "udp-other-mac": eth(PEER_MAC, 0x0800) + ipv4(OUR_IP, 17, udp(9000, REQ)),
    "udp-truncated": (eth(OUR_MAC, 0x0800) + ipv4(OUR_IP, 17, udp(9000, REQ)))[:60],
    "udp-bad-ihl": eth(OUR_MAC, 0x0800) + bytes([0x44]) + ipv4(OUR_IP, 17, udp(9000, REQ))[1:],
    "udp-bad-checksum": eth(OUR_MAC, 0x0800) + (lambda h: h[:10] + b"\0\0" + h[12:])(
        ipv4(OUR_IP, 17, udp(9000, REQ))),
    "fragment-first": eth(OUR_MAC, 0x0800) + ipv4(OUR_IP, 17, udp(9000, REQ), frag=0x2000),
    "fragment-last": eth(OUR_MAC, 0x0800) + ipv4(OUR_IP, 17, REQ, frag=0x0010),
    "vlan-udp": OUR_MAC + PEER_MAC + struct.pack("!HH", 0x8100, 5) + struct.pack("!H", 0x0800)
    + ipv4(OUR_IP, 17, udp(9000, REQ)),
    "ipv6": eth(OUR_MAC, 0x86DD) + bytes(40),
    "tcp": eth(OUR_MAC, 0x0800) + ipv4(OUR_IP, 6, bytes(20)),
    "runt": eth(OUR_MAC, 0x0800)[:10],
    "empty": b"",
}

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, frame in FRAMES.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(frame)
