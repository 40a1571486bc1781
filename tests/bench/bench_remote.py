#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""quiver-bench --shm / --udp against a real quiverd: exit codes for bad
arguments, the --json lines of short runs (keys, p50 <= p99 <= p99.9, the
side-by-side rows and ratios), the open-loop and sweep modes, and
--input/--output through the daemon checked against the reference outputs
the generator wrote with torch (REPO/trade-mlp/<v>/x.npy, y.npy).

Usage: bench_remote.py QUIVER_BENCH QUIVERD REPO
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
KEYS = ("model", "path", "batch", "iters", "p50_ns", "p99_ns", "p999_ns",
        "throughput_per_s", "threads", "inflight")


def run(*args, timeout=60):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def json_rows(p, what):
    if p.returncode != 0:
        raise SystemExit(f"FAIL {what}: exit {p.returncode}\n{p.stderr}")
    rows = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    for r in rows:
        for k in KEYS:
            assert k in r, (what, k, r)
        assert 0 < r["p50_ns"] <= r["p99_ns"] <= r["p999_ns"] <= r["max_ns"], (what, r)
        assert r["throughput_per_s"] > 0, (what, r)
        assert r["iters"] > 0, (what, r)
    print(f"ok {what}: {len(rows)} lines")
    return rows


def paths(rows):
    return {(r["path"], r["batch"]) for r in rows}


def check_npy(bench, target, repo, tmp, what):
    import numpy as np
    vers = sorted(int(v) for v in os.listdir(os.path.join(repo, "trade-mlp")) if v.isdigit())
    vdir = os.path.join(repo, "trade-mlp", str(vers[-1]))
    out = os.path.join(tmp, what.split()[0] + "-y.npy")
    p = run(bench, *target, "--model", "trade-mlp", "--input", os.path.join(vdir, "x.npy"),
            "--output", out)
    assert p.returncode == 0, (what, p.stderr)
    got, want = np.load(out), np.load(os.path.join(vdir, "y.npy"))
    assert got.shape == want.reshape(got.shape[0], -1).shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-4, atol=1e-5)
    print(f"ok {what}: {got.shape[0]} rows match the torch reference")


def tensor_names(bench, target, opt, vdir, tmp):
    """The model's input (or output) names, as quiver-bench lists them when
    asked for one it does not have (exit 2, before anything runs)."""
    x, y = os.path.join(vdir, "x.npy"), os.path.join(tmp, "never.npy")
    args = (["--input", "no-such=" + x, "--output", y] if opt == "--input"
            else ["--input", x, "--output", "no-such=" + y])
    p = run(bench, *target, *args)
    assert p.returncode == 2 and "no such" in p.stderr, (opt, p.returncode, p.stderr)
    inner = p.stderr[p.stderr.rindex("(") + 1:p.stderr.rindex(")")]
    return inner.split(", ")


def check_npy_named(bench, target, repo, tmp, what):
    """--input NAME=X --output NAME=Y: typed requests (over UDP, version 2)."""
    import numpy as np
    vers = sorted(int(v) for v in os.listdir(os.path.join(repo, "trade-mlp")) if v.isdigit())
    vdir = os.path.join(repo, "trade-mlp", str(vers[-1]))
    (iname,) = tensor_names(bench, target, "--input", vdir, tmp)
    (oname,) = tensor_names(bench, target, "--output", vdir, tmp)
    out = os.path.join(tmp, what.split()[0] + "-named-y.npy")
    p = run(bench, *target, "--input", f"{iname}={os.path.join(vdir, 'x.npy')}",
            "--output", f"{oname}={out}")
    assert p.returncode == 0, (what, p.stderr)
    got, want = np.load(out), np.load(os.path.join(vdir, "y.npy"))
    np.testing.assert_allclose(got.reshape(want.shape[0], -1), want.reshape(want.shape[0], -1),
                               rtol=1e-4, atol=1e-5)
    print(f"ok {what}: {got.shape[0]} rows through typed requests match the torch reference")


def main():
    bench, quiverd, repo = sys.argv[1:4]
    # Bad arguments: exit 2, before any connection is tried.
    for args, word in ((["--shm", "s"], "--model"),
                       (["--shm", "s", "--udp", "127.0.0.1:1", "--model", "m"], "exactly one"),
                       (["--shm", "s", "--model", "m", "--threads", "0"], "--threads"),
                       (["--shm", "s", "--model", "m", "--inflight", "x"], "--inflight"),
                       (["--shm", "s", "--model", "m", "--rate", "0"], "--rate"),
                       (["--shm", "s", "--model", "m", "--rate", "5", "--rate-sweep"], "exclude"),
                       (["--shm", "s", "--model", "m", "--bogus"], "unknown"),
                       (["--shm", "s", "--model", "m", "--input", "x.npy"], "together"),
                       (["--shm", "s", "--model", "m", "--input", "a=x.npy", "--input",
                         "y.npy", "--output", "z.npy"], "name each"),
                       (["--shm", "s", "--model", "m", "--input", "a=x.npy", "--input",
                         "a=y.npy", "--output", "z.npy"], "given twice"),
                       (["--shm", "s", "--model", "m", "--input", "=x.npy", "--output",
                         "z.npy"], "NAME=FILE"),
                       (["--shm", "s", "--model", "m", "--batch", "0"], "--batch"),
                       (["--shm"], "needs a value")):
        p = run(bench, *args)
        assert p.returncode == 2 and word in p.stderr, (args, p.returncode, p.stderr)
    h = run(bench, "--shm", "s", "--help")
    assert h.returncode == 0 and "--inflight" in h.stdout, h
    print("ok bad arguments exit 2")

    if not os.access(quiverd, os.X_OK):
        print(f"skip: no quiverd at {quiverd}")
        return SKIP
    if not os.path.isdir(os.path.join(repo, "trade-mlp")):
        print(f"skip: no generated model repository at {repo}")
        return SKIP
    if (os.cpu_count() or 1) < 2:
        print("skip: the floors and quiverd's worker need two cores")
        return SKIP

    with tempfile.TemporaryDirectory(prefix="qv-bench-") as tmp:
        sock = os.path.join(tmp, "quiverd.sock")
        udp = f"127.0.0.1:{free_udp_port()}"
        log = open(os.path.join(tmp, "quiverd.log"), "w+")
        d = subprocess.Popen([quiverd, "--repo", repo, "--socket", sock, "--foreground",
                              "--cores", "1", "--udp", udp], stderr=log, stdout=log)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                log.seek(0)
                if "quiverd ready" in log.read():
                    break
                if d.poll() is not None:
                    break
                time.sleep(0.1)
            else:
                d.poll()
            log.seek(0)
            text = log.read()
            if "quiverd ready" not in text:
                raise SystemExit(f"FAIL quiverd did not start:\n{text}")

            common = ["--model", "trade-mlp", "--repo", repo, "--json", "--warmup", "20"]
            rows = json_rows(run(bench, "--shm", sock, *common, "--iters", "300",
                                 "--batch", "1,4"), "shm closed loop")
            want = {("shm", 1), ("shm", 4), ("echo", 1), ("echo", 4), ("floor-ring", 1),
                    ("inproc", 1), ("inproc", 4)}
            assert paths(rows) == want, paths(rows)
            shm1 = [r for r in rows if r["path"] == "shm" and r["batch"] == 1][0]
            assert shm1["ratio_echo_p50_vs_floor_ring"] > 0, shm1
            assert "shm_minus_inproc_p50_ns" in shm1, shm1
            assert shm1["errors"] == 0 and shm1["threads"] == 1, shm1
            # rows/s is requests/s times rows a request
            shm4 = [r for r in rows if r["path"] == "shm" and r["batch"] == 4][0]
            assert abs(shm4["throughput_per_s"] - 4 * shm4["requests_per_s"]) <= \
                1e-3 * shm4["throughput_per_s"] + 0.2, shm4

            rows = json_rows(run(bench, "--shm", sock, *common, "--iters", "300",
                                 "--threads", "2", "--inflight", "8", "--no-echo"),
                             "shm 2 threads x 8 in flight")
            shm = [r for r in rows if r["path"] == "shm"][0]
            assert shm["threads"] == 2 and shm["inflight"] == 8 and shm["iters"] == 600, shm
            assert shm["ratio_throughput_vs_inproc_b64"] > 0, shm

            rows = json_rows(run(bench, "--shm", sock, "--model", "trade-mlp", "--json",
                                 "--iters", "200", "--rate", "2000", "--no-echo"),
                             "shm open loop")
            assert [r["path"] for r in rows] == ["shm"] and rows[0]["mode"] == "open", rows

            rows = json_rows(run(bench, "--shm", sock, "--model", "trade-mlp", "--json",
                                 "--iters", "200", "--rate-sweep"), "shm rate sweep")
            assert [r["mode"] for r in rows] == ["max"] + ["open"] * 4, rows
            assert [r.get("rate_fraction") for r in rows[1:]] == [0.1, 0.5, 0.8, 0.95], rows

            rows = json_rows(run(bench, "--udp", udp, *common, "--iters", "200"), "udp")
            want = {("udp", 1), ("echo", 1), ("floor-udp", 1), ("inproc", 1)}
            assert paths(rows) == want, paths(rows)
            assert "udp_overhead_p50_ns" in [r for r in rows if r["path"] == "udp"][0], rows

            p = run(bench, "--shm", sock, "--model", "no-such-model", "--iters", "10")
            assert p.returncode == 1 and "no-such-model" in p.stderr, p
            print("ok unknown model exits 1")

            check_npy(bench, ["--shm", sock], repo, tmp, "shm --input/--output")
            check_npy(bench, ["--udp", udp], repo, tmp, "udp --input/--output")
            check_npy_named(bench, ["--shm", sock, "--model", "trade-mlp"], repo, tmp,
                            "shm --input NAME=/--output NAME=")
            check_npy_named(bench, ["--udp", udp, "--model", "trade-mlp"], repo, tmp,
                            "udp --input NAME=/--output NAME=")
        finally:
            if d.poll() is None:
                d.send_signal(signal.SIGTERM)
                try:
                    d.wait(30)
                except subprocess.TimeoutExpired:
                    d.kill()
                    d.wait()
                    raise SystemExit("FAIL quiverd did not stop on SIGTERM")
        assert d.returncode == 0, f"quiverd exit {d.returncode}"
        print("ok quiverd stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
