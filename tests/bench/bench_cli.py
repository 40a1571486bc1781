#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""quiver-bench's command line: exit codes and messages for bad arguments
(2) and bad models (1), and the --json output of a short real run.

Usage: bench_cli.py QUIVER_BENCH MODELS_DIR
"""
import json
import os
import subprocess
import sys

SKIP = 77
FIELDS = ("model", "path", "batch", "iters", "p50_ns", "p99_ns", "p999_ns",
          "throughput_per_s")


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True)


def expect(p, code, words, what):
    if p.returncode != code:
        raise SystemExit(f"FAIL {what}: exit {p.returncode}, want {code}\n{p.stderr}")
    low = p.stderr.lower()
    if not any(w in low for w in words):
        raise SystemExit(f"FAIL {what}: stderr lacks any of {words}:\n{p.stderr}")
    print(f"ok {what}")


def listed_names(p):
    """The names quiver-bench lists after 'no such input/output (...)'."""
    assert p.returncode == 2 and "no such" in p.stderr, (p.returncode, p.stderr)
    return p.stderr[p.stderr.rindex("(") + 1:p.stderr.rindex(")")].split(", ")


def check_named(bench, mdir, trade):
    """--input NAME=X --output NAME=Y in process equals the lone form's output
    and the torch reference; misnamed tensors exit 2 listing the real ones."""
    import tempfile
    import numpy as np
    x = os.path.join(mdir, "trade-mlp.x.npy")
    if not os.path.exists(x):
        x = os.path.join(mdir, "repo", "trade-mlp", "1", "x.npy")
    yref = os.path.join(os.path.dirname(x), os.path.basename(x).replace("x.npy", "y.npy"))
    with tempfile.TemporaryDirectory(prefix="qv-bench-cli-") as tmp:
        y = os.path.join(tmp, "y.npy")
        (iname,) = listed_names(run(bench, trade, "--input", "nope=" + x, "--output", y))
        (oname,) = listed_names(run(bench, trade, "--input", x, "--output", "nope=" + y))
        expect(run(bench, trade, "--input", f"{iname}={x}", "--input", f"{iname}={x}",
                   "--output", y), 2, ["given twice"], "an input named twice")
        expect(run(bench, trade, "--input", f"{iname}={x}", "--input", x, "--output", y), 2,
               ["name each"], "a lone --input beside a named one")
        yn = os.path.join(tmp, "yn.npy")
        p = run(bench, trade, "--input", f"{iname}={x}", "--output", f"{oname}={yn}")
        assert p.returncode == 0, p.stderr
        p = run(bench, trade, "--input", x, "--output", y)
        assert p.returncode == 0, p.stderr
        got, lone = np.load(yn), np.load(y)
        # Two loads may time different kernels (AUTO): equal within tolerance.
        assert got.shape == lone.shape, (got.shape, lone.shape)
        np.testing.assert_allclose(got, lone, rtol=1e-4, atol=1e-5)
        if os.path.exists(yref):
            want = np.load(yref)
            np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-5)
    print("ok named --input/--output in process")


def main():
    bench, mdir = sys.argv[1], sys.argv[2]
    trade = os.path.join(mdir, "trade-mlp.onnx")

    expect(run(bench), 2, ["no model"], "no arguments")
    expect(run(bench, "m.onnx", "--batch", "0"), 2, ["--batch"], "batch 0")
    expect(run(bench, "m.onnx", "--batch", "1,x"), 2, ["--batch"], "batch not a number")
    expect(run(bench, "m.onnx", "--iters", "-5"), 2, ["--iters"], "negative iters")
    expect(run(bench, "m.onnx", "--kernels", "fast"), 2, ["--kernels"], "unknown kernels")
    expect(run(bench, "m.onnx", "--bogus"), 2, ["unknown option"], "unknown option")
    expect(run(bench, "m.onnx", "--warmup"), 2, ["needs a value"], "missing value")
    expect(run(bench, "m.onnx", "--input", "x.npy"), 2, ["go together"], "input alone")
    expect(run(bench, "m.onnx", "--path", "inproc"), 2, ["--path"], "path without input")
    expect(run(bench, "/nonexistent/m.onnx"), 1, ["nonexistent"], "missing model file")
    h = run(bench, "--help")
    assert h.returncode == 0 and "usage" in h.stdout, h

    if not os.path.exists(os.path.join(mdir, "manifest.json")):
        print(f"skip: no generated models in {mdir} (python3-onnx/torch missing?)")
        return SKIP
    expect(run(bench, os.path.join(mdir, "bad-truncated.onnx")), 1,
           ["bad-truncated"], "truncated model")

    p = run(bench, trade, "--batch", "1,3", "--iters", "200", "--warmup", "10", "--json")
    if p.returncode != 0:
        raise SystemExit(f"FAIL json run: exit {p.returncode}\n{p.stderr}")
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    got = {(r["path"], r["batch"]) for r in rows}
    want = {(path, b) for path in ("inproc", "floor-onednn") for b in (1, 3)}
    assert got == want, got
    for r in rows:
        for k in FIELDS:
            assert k in r, (k, r)
        assert r["model"] == "trade-mlp.onnx" and r["iters"] == 200, r
        assert 0 < r["p50_ns"] <= r["p99_ns"] <= r["p999_ns"] <= r["max_ns"], r
        # Both rates are batch * calls / call time over some set of calls, so
        # they lie between the rates of the slowest and the fastest call.
        for k in ("throughput_per_s", "throughput_mean_per_s"):
            assert r["batch"] * 1e9 / r["max_ns"] <= r[k] * 1.0001, (k, r)
            assert r[k] <= r["batch"] * 1e9 / r["min_ns"] * 1.0001, (k, r)
        mean_rate = r["batch"] * 1e9 / r["mean_ns"]
        assert abs(mean_rate - r["throughput_mean_per_s"]) <= 1e-3 * mean_rate, r
        if r["path"] == "inproc":
            assert r["ratio_p50_vs_floor"] > 0 and r["ratio_throughput_vs_floor"] > 0, r
            # same input through both paths; sigmoid outputs in [0, 1]
            assert r["max_abs_diff_vs_floor"] <= 1e-4, r
    print(f"ok json: {len(rows)} lines")

    check_named(bench, mdir, trade)

    t = run(bench, trade, "--batch", "2", "--iters", "50", "--warmup", "0")
    assert t.returncode == 0, t.stderr
    assert "floor-onednn" in t.stdout and "p99.9" in t.stdout, t.stdout
    print("ok table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
