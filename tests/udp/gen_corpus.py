#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpus of fuzz_udp_parse: one file per datagram class.
Byte 0 of a file is the MSG_TRUNC flag the target passes to the parser; the
rest is the datagram (layout in shm/qv_udp_proto.h). Run: gen_corpus.py DIR"""
import os
import struct
import sys

MAGIC = 0x50445551
INFER, LOOKUP, INFER_REPLY = 1, 2, 0x81


def req(typ=INFER, handle=1, rows=1, rid=1, budget=0, key=0, payload=b"",
        plen=None, version=1, flags=0, reserved=0, magic=MAGIC):
    if plen is None:
        plen = len(payload)
    return struct.pack("<IBBHIIQQQII", magic, version, typ, flags, handle, rows,
                       rid, budget, key, plen, reserved) + payload


def floats(n):
    return struct.pack("<%df" % n, *[i * 0.5 for i in range(n)])


def v2(n_tensors, rows_bytes, reserved=(0, 0, 0)):
    """A version 2 INFER payload: n_tensors, three reserved words, packed rows."""
    return struct.pack("<4I", n_tensors, *reserved) + rows_bytes


def packed(rows):
    """rows packed rows of a float32[2] + int64[1] + int32[1] model (5 words)."""
    return b"".join(struct.pack("<2fqi", 0.5 * r, -1.0, r, 3) for r in range(rows))


seeds = {
    "infer_1x4": (0, req(payload=floats(4))),
    "infer_3x4": (0, req(rows=3, payload=floats(12), budget=1000000, key=7)),
    "lookup": (0, req(typ=LOOKUP, rows=0, handle=0, payload=b"trade-mlp")),
    "lookup_nul": (0, req(typ=LOOKUP, rows=0, payload=b"a\0b")),
    "lookup_long": (0, req(typ=LOOKUP, rows=0, payload=b"x" * 64)),
    "short": (0, req(payload=floats(4))[:20]),
    "empty": (0, b""),
    "bad_magic": (0, req(payload=floats(4), magic=0x12345678)),
    "bad_version": (0, req(payload=floats(4), version=0)),
    "reply_type": (0, req(typ=INFER_REPLY, payload=floats(4))),
    "unknown_type": (0, req(typ=9, payload=floats(4))),
    "flags": (0, req(payload=floats(4), flags=1)),
    "reserved": (0, req(payload=floats(4), reserved=5)),
    "lying_rows": (0, req(rows=3, payload=floats(4))),
    "zero_rows": (0, req(rows=0, payload=floats(4))),
    "huge_rows": (0, req(rows=0xFFFFFFFF, payload=floats(4))),
    "lying_len": (0, req(payload=floats(4), plen=64)),
    "odd_bytes": (0, req(payload=floats(4)[:15])),
    "truncated": (1, req(payload=floats(4))),
    "oversize": (0, req(payload=floats(4200))),
    "v2_infer_2x5": (0, req(version=2, rows=2, payload=v2(3, packed(2)))),
    "v2_infer_16": (0, req(version=2, payload=v2(16, floats(4)))),
    "v2_lookup": (0, req(version=2, typ=LOOKUP, rows=0, handle=0, payload=b"dlrm")),
    "v2_no_tensors": (0, req(version=2, rows=2, payload=v2(0, packed(2)))),
    "v2_17_tensors": (0, req(version=2, rows=2, payload=v2(17, packed(2)))),
    "v2_reserved": (0, req(version=2, rows=2, payload=v2(3, packed(2), (0, 9, 0)))),
    "v2_prefix_only": (0, req(version=2, payload=v2(3, b""))),
    "v2_short_prefix": (0, req(version=2, payload=struct.pack("<2I", 3, 0))),
    "v2_lying_rows": (0, req(version=2, rows=3, payload=v2(3, packed(2)))),
    "v2_odd_bytes": (0, req(version=2, payload=v2(3, packed(1)[:19]))),
    "v2_truncated": (1, req(version=2, rows=2, payload=v2(3, packed(2)))),
    "v3": (0, req(version=3, payload=floats(4))),
}

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, (trunc, data) in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([trunc]) + data)
