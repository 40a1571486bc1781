#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The prediction log against a real quiverd, over shared memory.

A small MLP (8 -> 16 relu -> 3) is generated here with numpy weights and
written as ONNX; its reference outputs come from numpy, never from quiver.
Five models of the repository serve it with different config.json "log"
settings:
  plog    sample 1.0, small max_bytes: every request is logged exactly once,
          inputs/outputs equal to what the client sent/got and to numpy,
          split over rotated .gz files that Python's gzip reads back
  quiet   sample 0: nothing, until `quiverctl log quiet --sample 1` (only
          the requests sent while it is on appear), then `--sample 0` again
  rot     max_bytes 4096, keep 2: many rotations, at most 2 .gz kept
  broken  `quiverctl log broken --sample 1 --dir` a path under a regular
          file: answers are unaffected, the failure is logged and counted
  badlog  a bad "log" in config.json: refused at load, naming the key
The plog requests are the last ones before SIGTERM: what the log holds is
read after quiverd exited, so the final flush is what is checked.

Usage: test_predlog.py QUIVERD QUIVERCTL  (PYTHONPATH holds the module)
"""
import glob
import gzip
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

import qvdaemon

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:
    print(f"skip: onnx is not installed ({e})")
    sys.exit(qvdaemon.SKIP)
try:
    import quiver
except ImportError as e:
    print(f"skip: the quiver module is not built ({e})")
    sys.exit(qvdaemon.SKIP)

IN, HID, OUT = 8, 16, 3


def make_model(path, rng):
    w1 = rng.standard_normal((IN, HID)).astype(np.float32)
    b1 = rng.standard_normal(HID).astype(np.float32)
    w2 = rng.standard_normal((HID, OUT)).astype(np.float32)
    b2 = rng.standard_normal(OUT).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["y"]),
    ]
    g = helper.make_graph(
        nodes, "plog",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", OUT])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
         numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)
    return lambda x: np.maximum(x.astype(np.float64) @ w1 + b1, 0) @ w2 + b2


def add_model(repo, name, onnx_path, log):
    d = os.path.join(repo, name, "1")
    os.makedirs(d)
    with open(onnx_path, "rb") as src, open(os.path.join(d, "model.onnx"), "wb") as dst:
        dst.write(src.read())
    with open(os.path.join(repo, name, "config.json"), "w") as f:
        json.dump({"log": log}, f)


def ctl(quiverctl, sock, *args, want=0):
    p = subprocess.run([quiverctl, "--socket", sock, *args], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == want, (args, p.returncode, p.stdout, p.stderr)
    return p


def ctl_json(quiverctl, sock, *args):
    return json.loads(ctl(quiverctl, sock, "--json", *args).stdout)


def send(c, model, xs, first_id, key0=0):
    """Submits xs[i] as request first_id + i (routing key key0 + i); returns {id: output}."""
    got, pending = {}, 0
    for i, x in enumerate(xs):
        c.submit(model, x, request_id=first_id + i, routing_key=key0 + i)
        pending += 1
        if pending == 16 or i == len(xs) - 1:
            while pending:
                for r in c.poll(64, timeout_ms=5000):
                    assert r.error is None, r
                    got[r.request_id] = np.asarray(r.output, np.float32).reshape(-1, OUT)
                    pending -= 1
    assert sorted(got) == list(range(first_id, first_id + len(xs)))
    return got


def raw_cmd(sock, obj):
    """One command straight over the control socket (what quiverctl would refuse
    before sending): returns (status, reply)."""
    body = json.dumps(obj).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(10)
        s.connect(sock)
        s.send(struct.pack("<IHHIIiI", 0x50435651, 5, 1, len(body), 1, 0, 0) + body)
        msg = s.recv(1 << 20)
    _, typ, _, n, _, status, _ = struct.unpack("<IHHIIiI", msg[:24])
    return status, json.loads(msg[24:24 + n]) if typ == 6 else msg[24:24 + n].decode()


def read_lines(logdir, model):
    """Every line of model's files: rotated .gz (oldest first), then the live file."""
    lines = []
    for gz in sorted(glob.glob(os.path.join(logdir, f"{model}.*.jsonl.gz"))):
        with gzip.open(gz, "rt") as f:
            lines += f.read().splitlines()
    live = os.path.join(logdir, f"{model}.jsonl")
    if os.path.exists(live):
        with open(live) as f:
            lines += f.read().splitlines()
    return [json.loads(s) for s in lines]


def check_record(rec, model, x, out, ref, rid, t_lo, t_hi):
    assert rec["model"] == model and rec["version"] == 1, rec
    assert rec["status"] == "OK" and rec["flags"] == [], rec
    assert rec["request_id"] == rid and rec["routing_key"] == rid + 7, rec
    assert rec["rows"] == x.shape[0], rec
    # %.9g round-trips float32: the logged values are exactly those sent and answered.
    xin = np.array(rec["inputs"], np.float32)
    yout = np.array(rec["outputs"], np.float32)
    assert xin.shape == x.shape and np.array_equal(xin, x), (rid, xin, x)
    assert yout.shape == out.shape and np.array_equal(yout, out), (rid, yout, out)
    np.testing.assert_allclose(yout, ref(x), rtol=1e-4, atol=1e-4)
    s, st, e = rec["submit_ns"], rec["start_ns"], rec["end_ns"]
    # The TSC-to-wall-clock mapping is renewed every second: 20 ms is ample slack.
    assert s is not None and t_lo - 2e7 <= s <= st <= e <= t_hi + 2e7, (rec, t_lo, t_hi)
    assert 0 <= rec["latency_us"] <= (t_hi - t_lo) / 1e3 + 2e4, rec


def main():
    quiverd, quiverctl = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(20261205)
    with tempfile.TemporaryDirectory() as tmp:
        repo, logdir = os.path.join(tmp, "repo"), os.path.join(tmp, "logs")
        onnx_path = os.path.join(tmp, "plog.onnx")
        ref = make_model(onnx_path, rng)
        add_model(repo, "plog", onnx_path,
                  {"sample": 1.0, "dir": logdir, "max_bytes": 16384, "keep": 1000})
        add_model(repo, "quiet", onnx_path, {"sample": 0, "dir": logdir})
        add_model(repo, "rot", onnx_path,
                  {"sample": 1, "dir": logdir, "max_bytes": 4096, "keep": 2})
        add_model(repo, "broken", onnx_path, {"sample": 0})
        add_model(repo, "badlog", onnx_path, {"sample": 2, "dir": logdir})
        blocker = os.path.join(tmp, "a-file")
        open(blocker, "w").close()

        d = qvdaemon.Daemon(quiverd, repo, tmp)
        with d:
            sock = d.sock
            # -- a bad config.json "log" is refused at load, naming the key
            ms = ctl_json(quiverctl, sock, "models")["models"]
            bad = [m for m in ms if m["name"] == "badlog"]
            assert bad and bad[0]["state"] == "failed" and "log.sample" in bad[0]["error"], bad
            assert "log.sample must be a number in 0..1" in d.log()
            byname = {m["name"]: m for m in ms if m["state"] == "ready"}
            assert byname["plog"]["log_sample"] == 1 and byname["quiet"]["log_sample"] == 0
            assert byname["plog"]["log_dir"] == logdir, byname["plog"]
            print("ok bad config.json log refused naming log.sample; models shows the sampling")

            # -- bad values of quiverctl log, refused with messages
            for args, want, words in (
                    (["log", "plog", "--sample", "2"], 2, "want a number in 0..1"),
                    (["log", "plog", "--sample", "-0.5"], 2, "want a number in 0..1"),
                    (["log", "plog", "--sample", "nan"], 2, "want a number in 0..1"),
                    (["log", "plog"], 2, "missing --sample"),
                    (["log", "plog", "--sample", "0.5", "--dir="], 2, "--dir needs"),
                    (["log", "plog", "--sample", "0.5", "--bogus"], 2, "unknown option"),
                    (["log", "nosuch", "--sample", "0.5"], 1, "unknown model 'nosuch'"),
                    (["log", "broken", "--sample", "0.5"], 1, "needs a directory")):
                p = ctl(quiverctl, sock, *args, want=want)
                assert words in p.stderr + p.stdout, (args, p.stderr, p.stdout)
            # the daemon checks again (other clients exist)
            for req, words in (({"name": "plog", "sample": 1.5}, "\"sample\" must be"),
                               ({"name": "plog", "sample": "all"}, "\"sample\" must be"),
                               ({"name": "plog"}, "\"sample\" must be"),
                               ({"name": "plog", "sample": 0.5, "dir": 3}, "\"dir\" must be"),
                               ({"name": "../x", "sample": 0.5}, "bad \"name\""),
                               ({"name": "nosuch", "sample": 0.5}, "unknown model")):
                st, rep = raw_cmd(sock, {"cmd": "log", **req})
                msg = rep.get("error", "") if isinstance(rep, dict) else rep
                assert st < 0 and words in msg, (req, st, rep)
            print("ok quiverctl log and the daemon refuse bad values with messages")

            with quiver.Client(sock) as c:
                # -- sample 0, then on live, then off live
                xq = [rng.standard_normal((1, IN)).astype(np.float32) for _ in range(50)]
                send(c, "quiet", xq, 100, 107)
                r = ctl_json(quiverctl, sock, "log", "quiet", "--sample", "1")
                assert r["sample"] == 1 and r["state"] == "logging", r
                quiet_on = send(c, "quiet", xq, 1000, 1007)
                ctl(quiverctl, sock, "log", "quiet", "--sample", "0")
                send(c, "quiet", xq, 2000, 2007)
                ms = {m["name"]: m for m in ctl_json(quiverctl, sock, "models")["models"]}
                assert ms["quiet"]["log_sample"] == 0, ms["quiet"]

                # -- an unwritable directory: answers unaffected, failure logged and counted
                bad_dir = os.path.join(blocker, "sub")
                ctl(quiverctl, sock, "log", "broken", "--sample", "1", "--dir", bad_dir)
                xb = [rng.standard_normal((2, IN)).astype(np.float32) for _ in range(20)]
                got = send(c, "broken", xb, 3000, 3007)
                for i, x in enumerate(xb):
                    np.testing.assert_allclose(got[3000 + i], ref(x), rtol=1e-4, atol=1e-4)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    st = ctl_json(quiverctl, sock, "stats")["predlog"]
                    if st["write_errors"] >= 20:
                        break
                    time.sleep(0.05)
                assert st["write_errors"] == 20, st
                assert "predlog broken: cannot make directory" in d.log(), d.log()
                assert not os.path.exists(bad_dir)
                ctl(quiverctl, sock, "log", "broken", "--sample", "0")
                print("ok unwritable dir: 20 answers right, 20 write errors counted, logged")

                # -- rotation with keep 2
                xr = [rng.standard_normal((1, IN)).astype(np.float32) for _ in range(200)]
                send(c, "rot", xr, 5000, 5007)

                # -- sample 1.0: the last requests before shutdown
                xp = [rng.standard_normal((int(rng.integers(1, 5)), IN)).astype(np.float32)
                      for _ in range(300)]
                t_lo = time.time_ns()
                outs = send(c, "plog", xp, 10000, 10007)
                t_hi = time.time_ns()

            text = ctl(quiverctl, sock, "metrics").stdout
            assert "quiver_predlog_dropped_total 0\n" in text, text
            assert "quiver_predlog_write_errors_total 20\n" in text, text
            assert 'quiver_predlog_sample{model="plog"} 1\n' in text, text
            st = ctl_json(quiverctl, sock, "stats")["predlog"]
            assert st["sampled"] == 50 + 20 + 200 + 300 and st["dropped"] == 0, st
            human = ctl(quiverctl, sock, "stats").stdout
            assert "predlog: sampled 570, dropped 0" in human, human
            assert "LOG" in ctl(quiverctl, sock, "models").stdout
        # The daemon exited (0, checked by Daemon): everything was flushed.
        plog = read_lines(logdir, "plog")
        gzs = glob.glob(os.path.join(logdir, "plog.*.jsonl.gz"))
        assert len(gzs) >= 2, gzs
        ids = [r["request_id"] for r in plog]
        assert sorted(ids) == list(range(10000, 10300)), (len(ids), len(set(ids)))
        for rec in plog:
            i = rec["request_id"] - 10000
            check_record(rec, "plog", xp[i], outs[rec["request_id"]], ref, rec["request_id"],
                         t_lo, t_hi)
        for gz in gzs:
            assert os.path.getsize(gz) < 16384
        print(f"ok sample 1.0: 300 requests logged once each, exact inputs/outputs, numpy "
              f"reference, {len(gzs)} rotated .gz files read back with gzip")

        quiet = read_lines(logdir, "quiet")
        assert sorted(r["request_id"] for r in quiet) == list(range(1000, 1050)), quiet[:2]
        for rec in quiet:
            rid = rec["request_id"]
            assert np.array_equal(np.array(rec["outputs"], np.float32), quiet_on[rid])
        print("ok sample 0 logs nothing; quiverctl log turns it on and off live")

        rot_gz = sorted(glob.glob(os.path.join(logdir, "rot.*.jsonl.gz")))
        assert 1 <= len(rot_gz) <= 2, rot_gz
        rot = read_lines(logdir, "rot")
        rids = [r["request_id"] for r in rot]
        # The newest records survive, in order, ending with the last one sent.
        assert rids == list(range(rids[0], 5200)) and rids[0] > 5000, rids[:3]
        print(f"ok rotation keeps {len(rot_gz)} .gz (keep 2), the newest {len(rids)} records")
        assert not glob.glob(os.path.join(logdir, "broken*"))
    print("PASS predlog")


if __name__ == "__main__":
    main()
