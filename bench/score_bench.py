#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""quiver-score's in-process throughput beside its floor, in the same run:
quiver-bench's batch-256 in-process throughput on each core quiver-score
uses, summed (the rows/s those cores give when they do nothing but run the
model), measured before and after the scoring run and averaged.

The input (default 10 M rows of the model's width, float32 .npy, standard
normal) is generated into a temporary directory and removed afterwards;
it is read once before the run so the page cache holds it and the figure
is the scorer's, not the disk's.

Usage: score_bench.py QUIVER_SCORE QUIVER_BENCH MODEL.onnx [--rows N]
       [--threads T] [--csv] [--json]
"""
import json
import os
import subprocess
import sys
import tempfile


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def floor(bench, model, cores):
    per = []
    for c in cores:
        p = subprocess.run([bench, model, "--batch", "256", "--json", "--core", str(c),
                            "--iters", "20000"], capture_output=True, text=True, check=True)
        row = [json.loads(l) for l in p.stdout.splitlines()
               if l.startswith("{") and '"path":"inproc"' in l][0]
        per.append((row["throughput_per_s"], row["throughput_mean_per_s"]))
    return sum(a for a, _ in per), sum(b for _, b in per)


def main():
    import numpy as np
    score, bench, model = sys.argv[1:4]
    rows = int(float(arg("--rows", "10e6")))
    cores = sorted(os.sched_getaffinity(0))
    threads = int(arg("--threads", str(len(cores))))
    used = cores[:threads] if threads <= len(cores) else cores
    with tempfile.TemporaryDirectory(prefix="qv-score-bench-") as tmp:
        # The model's width from a one-row probe: quiver-score refuses a wrong one and says it.
        probe = os.path.join(tmp, "probe.npy")
        np.save(probe, np.zeros((1, 1), np.float32))
        r = subprocess.run([score, model, "--input", probe, "--output",
                            os.path.join(tmp, "p.npy")], capture_output=True, text=True)
        width = int(r.stderr.split("the model takes ")[1].split()[0]) if r.returncode else 1
        x = os.path.join(tmp, "x.npy")
        m = np.lib.format.open_memmap(x, mode="w+", dtype=np.float32, shape=(rows, width))
        rng = np.random.default_rng(1)
        for i in range(0, rows, 1 << 20):
            n = min(1 << 20, rows - i)
            m[i:i + n] = rng.standard_normal((n, width), dtype=np.float32)
        m.flush()
        del m
        if "--csv" in sys.argv:
            xc = os.path.join(tmp, "x.csv")
            a = np.load(x, mmap_mode="r")
            with open(xc, "w") as f:
                for i in range(0, rows, 1 << 18):
                    np.savetxt(f, a[i:i + (1 << 18)], delimiter=",", fmt="%.7g")
            os.unlink(x)
            x = xc
        with open(x, "rb") as f:
            while f.read(16 << 20):
                pass
        f_before = floor(bench, model, used)
        r = subprocess.run([score, model, "--input", x, "--output", os.path.join(tmp, "y.npy"),
                            "--threads", str(threads), "--json", "--no-progress"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"quiver-score failed: {r.stderr}")
        res = json.loads(r.stdout.strip().splitlines()[-1])
        f_after = floor(bench, model, used)
        y = np.load(os.path.join(tmp, "y.npy"), mmap_mode="r")
        assert y.shape[0] == rows, y.shape
    fl = (f_before[0] + f_after[0]) / 2
    fl_mean = (f_before[1] + f_after[1]) / 2
    out = {"model": os.path.basename(model), "rows": rows, "input": os.path.basename(x),
           "threads": threads, "cores": used, "score_rows_per_s": res["rows_per_s"],
           "score_seconds": res["seconds"],
           "floor_b256_x_cores_rows_per_s": fl, "ratio_vs_floor": res["rows_per_s"] / fl,
           "floor_b256_mean_x_cores_rows_per_s": fl_mean,
           "ratio_vs_floor_mean": res["rows_per_s"] / fl_mean,
           "score_run_median_rows_per_s": res["run_median_rows_per_s"],
           "ratio_run_median_vs_floor": res["run_median_rows_per_s"] / fl,
           "scorer_wait_share": res["scorer_wait_share"],
           "floor_before": f_before[0], "floor_after": f_after[0]}
    if "--json" in sys.argv:
        print(json.dumps(out))
        return 0
    print(f"quiver-score {out['model']}: {rows} rows ({out['input']}), {threads} threads "
          f"on cores {used}, {res['seconds']:.2f} s")
    print(f"{'measure':<44} {'quiver-score':>13} {'floor':>12} {'ratio':>7}")
    print(f"{'wall rows/s vs bench b256 median x cores':<44} {res['rows_per_s']:>13.0f} "
          f"{fl:>12.0f} {out['ratio_vs_floor']:>7.3f}")
    print(f"{'wall rows/s vs bench b256 mean x cores':<44} {res['rows_per_s']:>13.0f} "
          f"{fl_mean:>12.0f} {out['ratio_vs_floor_mean']:>7.3f}")
    print(f"{'model-run median rows/s (summed) vs median':<44} "
          f"{res['run_median_rows_per_s']:>13.0f} {fl:>12.0f} "
          f"{out['ratio_run_median_vs_floor']:>7.3f}")
    print(f"(floor before {f_before[0]:.0f}, after {f_after[0]:.0f} rows/s; scorers waited for "
          f"input {100 * res['scorer_wait_share']:.1f}% of their time; ratio = quiver-score / "
          f"floor, target >= 0.9; median: the median over chunks of rows / chunk time, as "
          f"quiver-bench's throughput (quiver-score: over its batch-256 model runs); "
          f"mean: whole-run, preemptions included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
