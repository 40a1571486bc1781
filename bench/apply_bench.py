#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What `quiverctl apply -f` costs beside the commands it is made of.

Starts quiverd on REPO (worker on the last core) and times, alternating in
the same run, wall clock per process run:

- `apply` of a file quiverd already matches ("no changes"): one `routes`
  command plus the file's parse, checks and diff; its floor is
  `quiverctl routes --json`, the one command it sends;
- `apply` of a change (a canary toggled between two shares): `routes` plus
  one `canary` command (published, then a grace period); its floor is the
  same `quiverctl canary` run directly.

Prints p50/p99/p99.9 in microseconds and runs/s for each, and the ratios of
the p50s to their floors.

Usage: apply_bench.py QUIVERCTL QUIVERD REPO [--iters N] [--json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

FILE_A = "models:\n  trade-mlp:\n    canary: {version: 1, percent: 10}\n"
FILE_B = "models:\n  trade-mlp:\n    canary: {version: 1, percent: 20}\n"


def timed(argv, want_rc=0):
    t0 = time.perf_counter_ns()
    p = subprocess.run(argv, capture_output=True, text=True)
    dt = time.perf_counter_ns() - t0
    if p.returncode != want_rc:
        sys.exit(f"{' '.join(argv)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return dt, p.stdout


def stats(name, lat, wall_ns):
    a = np.array(lat, dtype=np.int64) / 1e3
    return {"path": name, "iters": len(lat), "p50_us": float(np.percentile(a, 50)),
            "p99_us": float(np.percentile(a, 99)), "p999_us": float(np.percentile(a, 99.9)),
            "throughput_per_s": len(lat) / (wall_ns / 1e9)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("quiverctl")
    ap.add_argument("quiverd")
    ap.add_argument("repo")
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    worker = os.cpu_count() - 1
    with tempfile.TemporaryDirectory(prefix="qv-applybench-") as tmp:
        sock = os.path.join(tmp, "quiverd.sock")
        logp = os.path.join(tmp, "quiverd.log")
        fa, fb = os.path.join(tmp, "a.yaml"), os.path.join(tmp, "b.yaml")
        open(fa, "w").write(FILE_A)
        open(fb, "w").write(FILE_B)
        log = open(logp, "w")
        d = subprocess.Popen([a.quiverd, "--repo", a.repo, "--socket", sock, "--foreground",
                              "--cores", str(worker)], stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while "quiverd ready" not in open(logp).read():
                if time.monotonic() > deadline or d.poll() is not None:
                    sys.exit("quiverd did not start:\n" + open(logp).read())
                time.sleep(0.05)
            ctl = [a.quiverctl, "--socket", sock]
            timed(ctl + ["load", "trade-mlp", "1"])
            timed(ctl + ["apply", "-f", fa])
            lat = {k: [] for k in ("apply-same", "floor-routes", "apply-change", "floor-canary")}
            wall = dict.fromkeys(lat, 0)
            for i in range(a.iters):
                runs = [
                    ("apply-same", ctl + ["apply", "-f", fa], "no changes\n"),
                    ("floor-routes", ctl + ["--json", "routes"], None),
                    ("apply-change", ctl + ["apply", "-f", fb], "applied 1 command\n"),
                    ("apply-change", ctl + ["apply", "-f", fa], "applied 1 command\n"),
                    ("floor-canary", ctl + ["canary", "trade-mlp", "1", "--percent", "20"], None),
                    ("floor-canary", ctl + ["canary", "trade-mlp", "1", "--percent", "10"], None),
                ]
                for name, argv, want in runs:
                    dt, out = timed(argv)
                    if want and not out.endswith(want):
                        sys.exit(f"{name}: printed {out!r}, want ...{want!r}")
                    lat[name].append(dt)
                    wall[name] += dt
            rows = [stats(k, lat[k], wall[k]) for k in lat]
        finally:
            d.terminate()
            d.wait(timeout=30)
    by = {r["path"]: r for r in rows}
    by["apply-same"]["ratio_p50_vs_floor"] = by["apply-same"]["p50_us"] / by["floor-routes"]["p50_us"]
    by["apply-change"]["ratio_p50_vs_floor"] = (by["apply-change"]["p50_us"] /
                                                by["floor-canary"]["p50_us"])
    if a.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    print(f"{'path':<14}{'runs':>6}{'p50 us':>10}{'p99 us':>10}{'p99.9 us':>10}{'runs/s':>9}"
          f"{'p50/floor':>11}")
    for r in rows:
        ratio = r.get("ratio_p50_vs_floor")
        print(f"{r['path']:<14}{r['iters']:>6}{r['p50_us']:>10.0f}{r['p99_us']:>10.0f}"
              f"{r['p999_us']:>10.0f}{r['throughput_per_s']:>9.0f}"
              f"{'' if ratio is None else f'{ratio:.2f}':>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
