#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""quiver-score end to end, every output checked against the torch outputs
tests/models/gen_models.py wrote (REPO/trade-mlp/<v>/x.npy, y.npy):

- .npy float32 and float64 and CSV inputs, .npy and CSV outputs, in process;
- order: 20 shuffled copies of the reference rows (5120 rows) through 2
  threads in chunks of 7 rows and batches of 4, so chunks finish out of
  order, must come out row for row as the shuffled reference;
- bad CSV rows (a short row, a field that is not a number): stop reports
  the first with FILE:LINE and writes only the rows before it (exit 3);
  skip reports both and writes every other row;
- refusals: wrong width, truncated .npy, float16, missing files, bad
  arguments (exit 2);
- the progress bar: drawn on a terminal (a pty), never into a pipe;
- with a quiverd (e2e mode): --shm gives the primary version's answers.

Usage: test_score.py QUIVER_SCORE REPO [QUIVERD]
"""
import os
import pty
import subprocess
import sys
import tempfile
import time

SKIP = 77


def run(*args, timeout=120, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def close(got, want):
    import numpy as np
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def inproc(score, repo, tmp):
    import numpy as np
    vdir = os.path.join(repo, "trade-mlp", "1")
    model = os.path.join(vdir, "model.onnx")
    x, y = np.load(os.path.join(vdir, "x.npy")), np.load(os.path.join(vdir, "y.npy"))
    y = y.reshape(x.shape[0], -1)
    p = lambda n: os.path.join(tmp, n)

    # .npy in, .npy out; float64 in; CSV in and out.
    r = run(score, model, "--input", os.path.join(vdir, "x.npy"), "--output", p("y.npy"))
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "ETA" not in r.stderr, r.stderr   # not a terminal
    close(np.load(p("y.npy")), y)
    np.save(p("x64.npy"), x.astype(np.float64))
    r = run(score, model, "--input", p("x64.npy"), "--output", p("y64.npy"), "--threads", "2")
    assert r.returncode == 0, r.stderr
    close(np.load(p("y64.npy")), y)
    np.savetxt(p("x.csv"), x, delimiter=",", fmt="%.9g")
    r = run(score, model, "--input", p("x.csv"), "--output", p("y.csv"), "--threads", "2",
            "--chunk", "10")
    assert r.returncode == 0, r.stderr
    close(np.loadtxt(p("y.csv"), delimiter=",", ndmin=2).astype(np.float32), y)
    # A header line, CRLF endings and blank lines are fine.
    with open(p("xh.csv"), "w", newline="") as f:
        f.write(",".join(f"f{i}" for i in range(x.shape[1])) + "\r\n")
        for i, row in enumerate(x):
            f.write(", ".join(f"{v:.9g}" for v in row) + "\r\n")
            if i == 100:
                f.write("\r\n")
    r = run(score, model, "--input", p("xh.csv"), "--output", p("yh.npy"), "--csv-header")
    assert r.returncode == 0, r.stderr
    close(np.load(p("yh.npy")), y)
    print("ok npy f32/f64 and csv (header, CRLF, blank line) against torch")

    # Order with several threads: shuffled copies, tiny chunks and batches.
    rng = np.random.default_rng(7)
    idx = np.concatenate([rng.permutation(x.shape[0]) for _ in range(20)])
    np.save(p("xbig.npy"), x[idx])
    for fmt in ("npy", "csv"):
        out = p(f"ybig.{fmt}")
        r = run(score, model, "--input", p("xbig.npy"), "--output", out, "--threads", "2",
                "--chunk", "7", "--batch", "4", "--json")
        assert r.returncode == 0, r.stderr
        got = np.load(out) if fmt == "npy" else \
            np.loadtxt(out, delimiter=",", ndmin=2).astype(np.float32)
        close(got, y[idx])
        assert '"rows": 5120' in r.stdout and '"threads": 2' in r.stdout, r.stdout
    print(f"ok order: {len(idx)} shuffled rows through 2 threads, chunks of 7, batches of 4")

    # Bad rows.
    lines = [",".join(f"{v:.9g}" for v in row) for row in x[:12]]
    lines[4] = ",".join(lines[4].split(",")[:-1])                 # line 5: 31 fields
    f = lines[8].split(",")
    f[5] = "abc"
    lines[8] = ",".join(f)                                        # line 9: field 6
    with open(p("bad.csv"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    r = run(score, model, "--input", p("bad.csv"), "--output", p("ybad.npy"), "--threads", "2",
            "--chunk", "3")
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "bad.csv:5: 31 fields, the model takes 32" in r.stderr, r.stderr
    assert "bad.csv:9" not in r.stderr, r.stderr
    close(np.load(p("ybad.npy")), y[:4])
    r = run(score, model, "--input", p("bad.csv"), "--output", p("yskip.csv"), "--threads", "2",
            "--chunk", "3", "--on-bad-row", "skip")
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "bad.csv:5: 31 fields" in r.stderr and "bad.csv:9: field 6 'abc' is not a number" \
        in r.stderr and "2 bad rows skipped" in r.stderr, r.stderr
    keep = [i for i in range(12) if i not in (4, 8)]
    close(np.loadtxt(p("yskip.csv"), delimiter=",", ndmin=2).astype(np.float32), y[keep])
    # Many bad rows: the first 100 are printed, the rest counted.
    with open(p("many.csv"), "w") as fh:
        for i in range(300):
            fh.write(lines[0] + "\n" if i % 2 else "1,2\n")
    r = run(score, model, "--input", p("many.csv"), "--output", p("ymany.npy"),
            "--on-bad-row", "skip", "--chunk", "64")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("bad row: ") == 100 and "... 50 more bad rows not shown" in r.stderr \
        and "150 bad rows skipped" in r.stderr and "many.csv:199: 2 fields" in r.stderr \
        and "many.csv:201:" not in r.stderr, r.stderr
    close(np.load(p("ymany.npy")), np.repeat(y[:1], 150, axis=0))
    print("ok bad rows: stop (exit 3, rows before it written), skip (both reported), "
          "100 printed and the rest counted")

    # Refusals.
    np.save(p("x31.npy"), x[:, :31])
    np.save(p("x16.npy"), x.astype(np.float16))
    with open(os.path.join(vdir, "x.npy"), "rb") as fh:
        data = fh.read()
    with open(p("xtrunc.npy"), "wb") as fh:
        fh.write(data[:len(data) - 200])
    for args, code, words in (
            ([model, "--input", p("x31.npy"), "--output", p("o.npy")], 1,
             "rows of 31 values, the model takes 32"),
            ([model, "--input", p("xtrunc.npy"), "--output", p("o.npy")], 1, "truncated"),
            ([model, "--input", p("x16.npy"), "--output", p("o.npy")], 1, "float32 or float64"),
            ([model, "--input", p("nope.npy"), "--output", p("o.npy")], 1, "No such file"),
            ([p("nope.onnx"), "--input", p("xbig.npy"), "--output", p("o.npy")], 1, "nope.onnx"),
            ([model, "--input", p("x.txt.gz"), "--output", p("o.npy")], 2, "not .npy or .csv"),
            ([model, "--output", p("o.npy")], 2, "--input and --output"),
            ([model, "--input", p("x.csv"), "--output", p("o.npy"), "--on-bad-row", "maybe"],
             2, "stop or skip"),
            ([model, "--input", p("x.csv"), "--output", p("o.npy"), "--threads", "0"], 2,
             "--threads"),
            (["--shm", "s", "--input", p("x.csv"), "--output", p("o.npy")], 2, "--model"),
            ([model, "--shm", "s", "--model", "m", "--input", p("x.csv"), "--output",
              p("o.npy")], 2, "exactly one"),
            ([model, "--input", p("x.npy"), "--output", p("o.npy"), "--csv-header"], 2,
             "--csv-header")):
        r = run(score, *args)
        assert r.returncode == code and words in r.stderr, (args, r.returncode, r.stderr)
    print("ok refusals")

    # Progress bar on a terminal only.
    m, s = pty.openpty()
    pr = subprocess.Popen([score, model, "--input", p("xbig.npy"), "--output", p("o.npy"),
                           "--chunk", "64"], stderr=s, stdout=subprocess.DEVNULL)
    os.close(s)
    buf = b""
    while True:
        try:
            d = os.read(m, 4096)
        except OSError:
            break
        if not d:
            break
        buf += d
    assert pr.wait(60) == 0
    os.close(m)
    text = buf.decode(errors="replace")
    assert "\r[" in text and "rows/s" in text and "ETA" in text and "100.0%" in text, text
    print("ok progress bar on a terminal")


def shm(score, quiverd, repo, tmp):
    import numpy as np
    vers = sorted(int(v) for v in os.listdir(os.path.join(repo, "trade-mlp")) if v.isdigit())
    vdir = os.path.join(repo, "trade-mlp", str(vers[-1]))
    x, y = np.load(os.path.join(vdir, "x.npy")), np.load(os.path.join(vdir, "y.npy"))
    y = y.reshape(x.shape[0], -1)
    rng = np.random.default_rng(3)
    idx = np.concatenate([rng.permutation(x.shape[0]) for _ in range(8)])
    xin = os.path.join(tmp, "xs.npy")
    np.save(xin, x[idx])
    sock = os.path.join(tmp, "quiverd.sock")
    log = open(os.path.join(tmp, "quiverd.log"), "w+")
    d = subprocess.Popen([quiverd, "--repo", repo, "--socket", sock, "--foreground",
                          "--cores", "1"], stderr=log, stdout=log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and d.poll() is None:
            log.seek(0)
            if "quiverd ready" in log.read():
                break
            time.sleep(0.1)
        log.seek(0)
        assert "quiverd ready" in log.read(), "quiverd did not start"
        for threads in ("1", "2"):
            out = os.path.join(tmp, f"ys{threads}.npy")
            r = run(score, "--shm", sock, "--model", "trade-mlp", "--input", xin, "--output",
                    out, "--threads", threads, "--chunk", "100", "--batch", "8",
                    "--inflight", "4")
            assert r.returncode == 0, r.stderr
            assert f"answered by trade-mlp version {vers[-1]}" in r.stderr, r.stderr
            close(np.load(out), y[idx])
        r = run(score, "--shm", sock, "--model", "nosuch", "--input", xin, "--output",
                os.path.join(tmp, "o.npy"))
        assert r.returncode == 1 and "nosuch" in r.stderr, r.stderr
        print(f"ok --shm: {len(idx)} shuffled rows, 1 and 2 clients, version {vers[-1]}")
    finally:
        d.terminate()
        d.wait(30)
        log.close()


def main():
    score, repo = sys.argv[1:3]
    quiverd = sys.argv[3] if len(sys.argv) > 3 else None
    if not os.path.isdir(os.path.join(repo, "trade-mlp")):
        print(f"skip: no generated model repository at {repo}")
        return SKIP
    with tempfile.TemporaryDirectory(prefix="qv-score-") as tmp:
        if quiverd:
            shm(score, quiverd, repo, tmp)
        else:
            inproc(score, repo, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
