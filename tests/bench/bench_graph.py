#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""quiver-bench --input NAME=X.npy / --output NAME=Y.npy with models of
several typed inputs and outputs (tests/graph's repository: dlrm, dcn-v2,
wide-deep, two-tower, multitask, resmlp), every output checked against the
torch reference the generator wrote (rtol 1e-4, atol 1e-5): in process,
and with QUIVERD given, through a real quiverd over --shm and --udp. Also
the argument errors of named tensors: a lone --input for a model of
several inputs, a missing input, a float file for an id input, an unknown
name (exit 2, naming the tensors); int32 id files are accepted for int64
inputs.

Usage: bench_graph.py QUIVER_BENCH GRAPH_REPO [QUIVERD]
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
FAMILIES = ["dlrm", "dcn-v2", "wide-deep", "two-tower", "multitask", "resmlp"]


def run(*args, timeout=120):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)


def tensors(vdir, prefix):
    """{name: path} of vdir's PREFIX.NAME.npy files."""
    out = {}
    for f in sorted(os.listdir(vdir)):
        if f.startswith(prefix + ".") and f.endswith(".npy"):
            out[f[len(prefix) + 1:-4]] = os.path.join(vdir, f)
    return out


def round_trip(bench, target, repo, fam, tmp, what):
    import numpy as np
    vdir = os.path.join(repo, fam, "1")
    ins, refs = tensors(vdir, "in"), tensors(vdir, "out")
    args = []
    for name, path in ins.items():
        args += ["--input", f"{name}={path}"]
    outs = {}
    for name in refs:
        outs[name] = os.path.join(tmp, f"{what}-{fam}-{name}.npy")
        args += ["--output", f"{name}={outs[name]}"]
    model = [os.path.join(vdir, "model.onnx")] if not target else target + ["--model", fam]
    p = run(bench, *model, *args)
    if p.returncode != 0:
        raise SystemExit(f"FAIL {what} {fam}: exit {p.returncode}\n{p.stderr}")
    for name, ref in refs.items():
        got, want = np.load(outs[name]), np.load(ref)
        assert got.dtype == want.dtype, (what, fam, name, got.dtype, want.dtype)
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-5,
                                   err_msg=f"{what} {fam}.{name}")
    print(f"ok {what} {fam}: {len(refs)} output(s) match the torch reference")


def errors(bench, repo, tmp):
    import numpy as np
    vdir = os.path.join(repo, "dlrm", "1")
    model = os.path.join(vdir, "model.onnx")
    ins = tensors(vdir, "in")
    y = os.path.join(tmp, "y.npy")
    named = []
    for name, path in ins.items():
        named += ["--input", f"{name}={path}"]

    def expect(args, words, what):
        p = run(bench, model, *args)
        assert p.returncode == 2, (what, p.returncode, p.stderr)
        assert all(w in p.stderr for w in words), (what, p.stderr)
        print(f"ok {what}")

    expect(["--input", ins["dense"], "--output", y], ["name one", "dense", "user_id"],
           "a lone --input for a model of four inputs")
    expect(named[:-2] + ["--output", y], ["no --input", list(ins)[-1]], "an input missing")
    expect(named + ["--input", f"bogus={ins['dense']}", "--output", y],
           ["no such input", "user_id"], "an unknown input name")
    expect(named + ["--output", f"bogus={y}"], ["no such output", "ctr"],
           "an unknown output name")
    bad = list(named)
    bad[bad.index(f"user_id={ins['user_id']}")] = f"user_id={ins['dense']}"
    expect(bad + ["--output", y], ["float32", "user_id"], "a float file for an id input")

    # int32 ids for int64 inputs: converted, same answers.
    conv = []
    for name, path in ins.items():
        a = np.load(path)
        if a.dtype == np.int64:
            p32 = os.path.join(tmp, f"{name}.i32.npy")
            np.save(p32, a.astype(np.int32))
            path = p32
        conv += ["--input", f"{name}={path}"]
    out = os.path.join(tmp, "ctr32.npy")
    p = run(bench, model, *conv, "--output", f"ctr={out}")
    assert p.returncode == 0, p.stderr
    want = np.load(os.path.join(vdir, "out.ctr.npy"))
    np.testing.assert_allclose(np.load(out).reshape(want.shape), want, rtol=1e-4, atol=1e-5)
    print("ok int32 id files for int64 inputs")
    # an id outside its table: a clear failure, exit 1
    a = np.load(ins["user_id"]).copy()
    a[5] = 10 ** 6
    pbad = os.path.join(tmp, "bad_ids.npy")
    np.save(pbad, a)
    bad = list(named)
    bad[bad.index(f"user_id={ins['user_id']}")] = f"user_id={pbad}"
    p = run(bench, model, *bad, "--output", y)
    assert p.returncode == 1 and "outside its table" in p.stderr, (p.returncode, p.stderr)
    print("ok an id out of range fails the run, saying so")


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def remote(bench, quiverd, repo, tmp):
    sock = os.path.join(tmp, "quiverd.sock")
    udp = f"127.0.0.1:{free_udp_port()}"
    log = open(os.path.join(tmp, "quiverd.log"), "w+")
    d = subprocess.Popen([quiverd, "--repo", repo, "--socket", sock, "--foreground",
                          "--cores", "1", "--udp", udp], stderr=log, stdout=log)
    try:
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline and d.poll() is None:
            log.seek(0)
            text = log.read()
            if "quiverd ready" in text:
                break
            time.sleep(0.1)
        if "quiverd ready" not in text:
            raise SystemExit(f"FAIL quiverd did not start:\n{text}")
        for fam in FAMILIES:
            round_trip(bench, ["--shm", sock], repo, fam, tmp, "shm")
            round_trip(bench, ["--udp", udp], repo, fam, tmp, "udp")
    finally:
        if d.poll() is None:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(30)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
    assert d.returncode == 0, f"quiverd exit {d.returncode}"


def main():
    bench, repo = sys.argv[1], sys.argv[2]
    quiverd = sys.argv[3] if len(sys.argv) > 3 else None
    if not all(os.path.exists(os.path.join(repo, f, "1", "model.onnx")) for f in FAMILIES):
        print(f"skip: no graph model repository at {repo}")
        return SKIP
    with tempfile.TemporaryDirectory(prefix="qv-bench-graph-") as tmp:
        if quiverd:
            if not os.access(quiverd, os.X_OK):
                print(f"skip: no quiverd at {quiverd}")
                return SKIP
            remote(bench, quiverd, repo, tmp)
        else:
            for fam in FAMILIES:
                round_trip(bench, None, repo, fam, tmp, "inproc")
            errors(bench, repo, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
