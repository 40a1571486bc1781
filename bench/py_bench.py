#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The quiver Python module's overhead over the C client, in the same run.

Starts quiverd on REPO (worker on the last core), then alternates, ROUNDS
times: quiver-bench --shm (the C client, libquiver's qv_infer, batch 1) and
a Python loop of client.infer(model, row) on the same core, timing each
call with time.perf_counter_ns(); with --udp the same again over UDP
(quiver-bench --udp and quiver.UdpClient). Prints p50/p99/p99.9 and calls/s of each side
by side and the Python p50 minus the C p50 against its floor (<= 2000 ns).
Exit 0 whatever the numbers (a benchmark, not a test); exit 1 only if a
run fails.

Usage: PYTHONPATH=build/python py_bench.py QUIVER_BENCH QUIVERD REPO
       [--model trade-mlp] [--iters 20000] [--rounds 3] [--core 0] [--udp] [--json]
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

FLOOR_NS = 2000


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def c_run(bench, target, model, iters, core):
    p = subprocess.run([bench, *target, "--model", model, "--iters", str(iters), "--batch", "1",
                        "--core", str(core), "--no-echo", "--json"],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        sys.exit(f"quiver-bench failed ({p.returncode}):\n{p.stderr}")
    for line in p.stdout.splitlines():
        r = json.loads(line)
        if r["path"] in ("shm", "udp") and r["batch"] == 1:
            return r
    sys.exit(f"quiver-bench printed no batch-1 row:\n{p.stdout}")


def py_run(client, model, x, iters, warmup=500):
    infer = client.infer
    clock = time.perf_counter_ns
    for _ in range(warmup):
        infer(model, x)
    lat = [0] * iters
    t_start = clock()
    for i in range(iters):
        t0 = clock()
        infer(model, x)
        lat[i] = clock() - t0
    wall = clock() - t_start
    a = np.array(lat, dtype=np.int64)
    return {"p50_ns": int(np.percentile(a, 50)), "p99_ns": int(np.percentile(a, 99)),
            "p999_ns": int(np.percentile(a, 99.9)), "throughput_per_s": iters / (wall / 1e9)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench")
    ap.add_argument("quiverd")
    ap.add_argument("repo")
    ap.add_argument("--model", default="trade-mlp")
    ap.add_argument("--iters", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--core", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--udp", action="store_true", help="also UDP (quiver.UdpClient)")
    a = ap.parse_args()
    import quiver

    worker = os.cpu_count() - 1
    with tempfile.TemporaryDirectory(prefix="qv-pybench-") as tmp:
        sock = os.path.join(tmp, "quiverd.sock")
        udp = f"127.0.0.1:{free_udp_port()}"
        logp = os.path.join(tmp, "quiverd.log")
        log = open(logp, "w")
        d = subprocess.Popen([a.quiverd, "--repo", a.repo, "--socket", sock, "--foreground",
                              "--cores", str(worker), "--udp", udp], stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while "quiverd ready" not in open(logp).read():
                if time.monotonic() > deadline or d.poll() is not None:
                    sys.exit("quiverd did not start:\n" + open(logp).read())
                time.sleep(0.05)
            # Pinned only now: quiverd must not inherit this affinity.
            os.sched_setaffinity(0, {a.core})
            rows = []
            paths = [("shm", ["--shm", sock], lambda: quiver.Client(sock))]
            if a.udp:
                paths.append(("udp", ["--udp", udp], lambda: quiver.UdpClient(udp)))
            for path, target, mk in paths:
                client = mk()
                info = client.lookup(a.model)
                x = np.random.default_rng(1).standard_normal(
                    [s for s in info.inputs[0].shape[1:]]).astype(np.float32)
                cs, ps = [], []
                for _ in range(a.rounds):
                    cs.append(c_run(a.bench, target, a.model, a.iters, a.core))
                    ps.append(py_run(client, a.model, x, a.iters))
                client.close()

                def med(runs, k):
                    return float(np.median([r[k] for r in runs]))
                c = {k: med(cs, k) for k in ("p50_ns", "p99_ns", "p999_ns", "throughput_per_s")}
                p = {k: med(ps, k) for k in ("p50_ns", "p99_ns", "p999_ns", "throughput_per_s")}
                rows.append((path, c, p))
        finally:
            d.send_signal(signal.SIGTERM)
            d.wait(30)

    if a.json:
        for path, c, p in rows:
            print(json.dumps({"model": a.model, "path": path, "batch": 1, "iters": a.iters,
                              "rounds": a.rounds, "c": c, "python": p,
                              "p50_overhead_ns": p["p50_ns"] - c["p50_ns"],
                              "floor_overhead_ns": FLOOR_NS,
                              "ratio_p50": p["p50_ns"] / c["p50_ns"]}))
        return 0
    print(f"model {a.model}, batch 1, {a.iters} calls x {a.rounds} rounds (medians of rounds), "
          f"client core {a.core}, quiverd worker core {worker}")
    print(f"{'path':<10}{'p50 ns':>10}{'p99 ns':>10}{'p99.9 ns':>10}{'calls/s':>12}")
    for path, c, p in rows:
        for name, r in ((f"c-{path}", c), (f"py-{path}", p)):
            print(f"{name:<10}{r['p50_ns']:>10.0f}{r['p99_ns']:>10.0f}{r['p999_ns']:>10.0f}"
                  f"{r['throughput_per_s']:>12.0f}")
    for path, c, p in rows:
        over = p["p50_ns"] - c["p50_ns"]
        print(f"{path}: python p50 - C p50 = {over:.0f} ns (floor <= {FLOOR_NS} ns: "
              f"{'met' if over <= FLOOR_NS else 'MISSED'}), python/C p50 = "
              f"{p['p50_ns'] / c['p50_ns']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
