#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The io_uring UDP back end's counters where operators look: a real quiverd
with --udp on 127.0.0.1 and an allow-list of 127.0.0.1/32 gets a counted
set of datagrams (one LOOKUP, INFER requests checked against the torch
reference rows, junk, requests answered BAD_REQUEST, requests from
127.0.0.2 outside the allow-list); then `quiverctl status --json` must show
exactly those counts under "udp" (and no "udp_dpdk"), `quiverctl metrics`
the same values as quiver_udp_<name>_total{backend="io_uring"} with HELP and
TYPE lines, and `quiverctl status` a UDP section with the io_uring row.
(The DPDK back end's counters are checked the same way by test_dpdk.sh.)

Usage: udp_counters.py QUIVERD QUIVERCTL REPO
"""
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

MAGIC = 0x50445551
VERSION = 1
INFER, LOOKUP, INFER_REPLY, LOOKUP_REPLY = 1, 2, 0x81, 0x82
QV_OK, QV_BAD_REQUEST = 0, 3
REQ = struct.Struct("<IBBHIIQQQII")     # 48 bytes, qv_udp_proto.h
REP = struct.Struct("<IBBHIIQII")       # 32 bytes
N_INFER, N_JUNK, N_BAD, N_DENIED = 5, 4, 2, 3


def req(typ, handle, rows, rid, payload, version=VERSION):
    return REQ.pack(MAGIC, version, typ, 0, handle, rows, rid, 0, 0, len(payload), 0) + payload


def recv_reply(s, rid, what):
    r, _, _ = select.select([s], [], [], 5.0)
    if not r:
        raise SystemExit(f"FAIL {what}: no reply within 5 s")
    d = s.recv(65536)
    h = REP.unpack_from(d)
    if h[0] != MAGIC or h[6] != rid or h[7] != len(d) - REP.size:
        raise SystemExit(f"FAIL {what}: bad reply header {h}")
    return h, d[REP.size:]


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ctl(quiverctl, sock, *args):
    p = subprocess.run([quiverctl, "--socket", sock, *args], capture_output=True, text=True,
                       timeout=30)
    if p.returncode != 0:
        raise SystemExit(f"FAIL quiverctl {' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    return p.stdout


def traffic(port, repo):
    """Sends the counted datagrams; returns the counters they must produce."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.connect(("127.0.0.1", port))
    s.send(req(LOOKUP, 0, 0, 1, b"trade-mlp"))
    h, body = recv_reply(s, 1, "lookup")
    assert h[2] == LOOKUP_REPLY and h[4] == QV_OK and len(body) == 224, h
    handle, version, in_dim, out_dim = struct.unpack_from("<IIII", body)
    vdir = os.path.join(repo, "trade-mlp", str(version))
    x = np.load(os.path.join(vdir, "x.npy")).astype(np.float32).reshape(-1, in_dim)
    y = np.load(os.path.join(vdir, "y.npy")).astype(np.float32).reshape(-1, out_dim)
    for i in range(N_INFER):
        s.send(req(INFER, handle, 1, 100 + i, x[i].tobytes()))
        h, body = recv_reply(s, 100 + i, f"infer row {i}")
        got = np.frombuffer(body, dtype="<f4")
        assert h[2] == INFER_REPLY and h[4] == QV_OK and got.size == out_dim, h
        if not np.allclose(got, y[i], rtol=1e-4, atol=1e-5):
            raise SystemExit(f"FAIL row {i}: {got} vs torch reference {y[i]}")
    for i in range(N_JUNK):
        s.send(bytes([0x20 + i]) * (10 + 30 * i))         # never the magic: dropped
    for i in range(N_BAD):
        s.send(req(INFER, handle, 1, 200 + i, x[0].tobytes(), version=VERSION + 2))
        h, _ = recv_reply(s, 200 + i, "bad version")
        assert h[4] == QV_BAD_REQUEST, h
    # Outside the allow-list (127.0.0.1/32): dropped, counted, never answered.
    d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    d.bind(("127.0.0.2", 0))
    d.connect(("127.0.0.1", port))
    for i in range(N_DENIED):
        d.send(req(LOOKUP, 0, 0, 300 + i, b"trade-mlp"))
    if select.select([d, s], [], [], 0.5)[0]:
        raise SystemExit("FAIL an answer to junk or to a source outside the allow-list")
    d.close()
    s.close()
    return {"rx": 1 + N_INFER + N_JUNK + N_BAD + N_DENIED, "tx": 1 + N_INFER + N_BAD,
            "lookups": 1, "junk": N_JUNK, "bad_request": N_BAD, "dropped_allow": N_DENIED,
            "tx_dropped": 0}


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    quiverd, quiverctl, repo = sys.argv[1:]
    port = free_udp_port()
    with tempfile.TemporaryDirectory(prefix="qv-udpcnt-") as tmp:
        sock = os.path.join(tmp, "quiverd.sock")
        log = open(os.path.join(tmp, "log"), "w+")
        p = subprocess.Popen([quiverd, "--foreground", "--repo", repo, "--socket", sock,
                              "--udp", f"127.0.0.1:{port}", "--udp-allow", "127.0.0.1/32"],
                             stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                log.seek(0)
                if "quiverd ready" in log.read() or p.poll() is not None:
                    break
                time.sleep(0.1)
            log.seek(0)
            if "quiverd ready" not in log.read():
                log.seek(0)
                raise SystemExit("FAIL quiverd did not become ready\n" + log.read())
            want = traffic(port, repo)
            # A reply is counted as sent when its completion is reaped, a
            # moment after the client may already hold it: poll briefly.
            for _ in range(50):
                st = json.loads(ctl(quiverctl, sock, "status", "--json"))
                u = st.get("udp", {})
                if all(u.get(k) == v for k, v in want.items()):
                    break
                time.sleep(0.1)
            bad = [f"udp.{k} = {u.get(k)}, sent {v}" for k, v in sorted(want.items())
                   if u.get(k) != v]
            if "udp_dpdk" in st:
                bad.append("status --json has udp_dpdk without --dpdk")
            metrics = ctl(quiverctl, sock, "metrics")
            st2 = json.loads(ctl(quiverctl, sock, "status", "--json")).get("udp", {})
            for k, v in sorted(st2.items()):
                name = f"quiver_udp_{k}_total"
                m = re.search(r'^%s\{backend="io_uring"\} (\d+)$' % name, metrics, re.M)
                if not m or int(m.group(1)) != v:
                    bad.append(f"metrics {name}: {m and m.group(1)}, status --json {v}")
                if f"# TYPE {name} counter" not in metrics or f"# HELP {name} " not in metrics:
                    bad.append(f"metrics: no HELP/TYPE for {name}")
                if 'backend="dpdk"' in metrics:
                    bad.append("metrics: a dpdk line without --dpdk")
            human = ctl(quiverctl, sock, "status")
            row = re.search(r"^io_uring\s+(\d+)\s+(\d+)", human, re.M)
            if not re.search(r"^UDP\s+RX\s+TX", human, re.M) or not row or \
                    int(row.group(1)) != st2.get("rx") or int(row.group(2)) != st2.get("tx"):
                bad.append("status: no UDP section with the io_uring row's rx/tx:\n" + human)
            for b in bad:
                print("FAIL", b)
            print(f"udp counters: {len(want)} counts and {len(st2)} metrics checked: "
                  f"{'ok' if not bad else 'FAILED'}")
            return 1 if bad else 0
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            log.close()


if __name__ == "__main__":
    sys.exit(main())
