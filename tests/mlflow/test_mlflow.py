#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""MLflow model directories served by a real quiverd: the good ones answer
like their references (torch / xgboost predict, written by gen_mlflow.py),
the broken ones are listed failed with a load error that says why, and
`quiverctl load NAME VERSION --path DIR` loads an MLflow directory (and
refuses a broken one with the same message).

Usage: test_mlflow.py QUIVERD QUIVERCTL GEN_OUTDIR   (PYTHONPATH: the quiver module)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import qvdaemon

try:
    import quiver
except ImportError as e:
    print(f"skip: the quiver module is not built ({e})")
    sys.exit(qvdaemon.SKIP)


def ctl(quiverctl, sock, *args):
    return subprocess.run([quiverctl, "--socket", sock, *args], capture_output=True,
                          text=True, timeout=120)


def main():
    quiverd, quiverctl, gen = sys.argv[1:4]
    exp_path = os.path.join(gen, "expect.json")
    if not os.path.exists(exp_path):
        print(f"skip: no generated MLflow models in {gen}")
        return qvdaemon.SKIP
    expect = json.load(open(exp_path))
    with tempfile.TemporaryDirectory(prefix="qv-mlflow-") as tmp:
        repo = os.path.join(tmp, "repo")
        shutil.copytree(os.path.join(gen, "repo"), repo)
        with qvdaemon.Daemon(quiverd, repo, tmp) as d:
            p = ctl(quiverctl, d.sock, "models", "--json")
            assert p.returncode == 0, p.stderr
            models = {m["name"]: m for m in json.loads(p.stdout)["models"]}
            assert set(models) == set(expect), (sorted(models), sorted(expect))
            c = quiver.Client(d.sock)
            for name, e in sorted(expect.items()):
                m = models[name]
                if not e["ok"]:
                    assert m["state"] == "failed", (name, m)
                    for w in e["error"]:
                        assert w in m["error"], (name, w, m["error"])
                    try:
                        c.infer(name, np.zeros(16, np.float32))
                        raise AssertionError(f"{name}: served")
                    except quiver.UnknownModelError:
                        pass
                    print(f"ok {name}: refused: {m['error']}")
                    continue
                assert m["state"] == "ready", (name, m)
                vd = os.path.join(repo, name, "1")
                x, y = np.load(os.path.join(vd, "x.npy")), np.load(os.path.join(vd, "y.npy"))
                got = c.infer(name, x)
                np.testing.assert_allclose(got, y.reshape(got.shape), rtol=1e-4, atol=1e-5)
                print(f"ok {name}: {len(x)} rows match the reference")

            # quiverctl load --path: an MLflow directory outside the repository
            late = os.path.join(gen, "late")
            p = ctl(quiverctl, d.sock, "load", "late-mlp", "3", "--path", late)
            assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
            x, y = np.load(os.path.join(late, "x.npy")), np.load(os.path.join(late, "y.npy"))
            got = c.infer("late-mlp", x)
            np.testing.assert_allclose(got, y.reshape(got.shape), rtol=1e-4, atol=1e-5)
            assert c.lookup("late-mlp").version == 3
            print("ok quiverctl load --path DIR (MLflow): served, matches the reference")
            p = ctl(quiverctl, d.sock, "load", "late-bad", "1", "--path",
                    os.path.join(repo, "bad-sig-dtype", "1"))
            assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
            assert "signature input 'x'" in p.stdout + p.stderr, (p.stdout, p.stderr)
            print("ok quiverctl load --path of a broken MLflow directory: exit 1, says why")
            c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
