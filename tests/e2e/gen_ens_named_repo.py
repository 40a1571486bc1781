#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a model repository of an ensemble wired by named tensors for
test_ens_named_e2e.

Usage: gen_ens_named_repo.py OUTDIR  (writes OUTDIR/ensnrepo and OUTDIR/ensnrepo.stamp)

The step models and the torch (float64) references of the composition come
from tests/ensemble/gen_named.py (same seed, same weights). Layout:
  REPO/{tower,gate,head}/1/model.onnx
  REPO/ens-named/1/config.json   tower {x: $dense}; head {dense: tower.h,
                                 uid: $user_id, x: $dense};
                                 outputs {score: head.prob, feat: tower.h}
  REPO/ens-named/1/in.dense.npy, in.user_id.npy, out.score.npy, out.feat.npy
  REPO/ens-gated/1/config.json   the same head gated by gate(dense) >= 0.5
                                 (else -1), outputs {score: head.prob}
  REPO/ens-gated/1/out.score.npy (inputs as ens-named's)
  REPO/bad-dtype/1/config.json   head's uid (int64) bound to tower.s (float32)
  REPO/bad-missing/1/config.json head's uid bound to nothing
"""
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, os.path.join(HERE, "..", "ensemble"))
import gen_named as g  # noqa: E402

TOWER = {"name": "tower", "model": "tower", "inputs": {"x": "$dense"}}
HEAD = {"name": "head", "model": "head",
        "inputs": {"dense": "tower.h", "uid": "$user_id", "x": "$dense"}}
GATE = {"name": "g", "model": "gate", "inputs": {"x": "$dense"}}
ENSEMBLES = {
    "ens-named": {"steps": [TOWER, HEAD], "outputs": {"score": "head.prob", "feat": "tower.h"}},
    "ens-gated": {"steps": [GATE, TOWER, dict(HEAD, gate={"step": "g", "op": ">=",
                                                          "threshold": g.THRESHOLD,
                                                          "else": g.ELSE})],
                  "outputs": {"score": "head.prob"}},
    "bad-dtype": {"steps": [TOWER, dict(HEAD, inputs={"dense": "tower.h", "uid": "tower.s",
                                                      "x": "$dense"})]},
    "bad-missing": {"steps": [TOWER, dict(HEAD, inputs={"dense": "tower.h", "x": "$dense"})]},
}


def main(out):
    repo = os.path.join(out, "ensnrepo")
    shutil.rmtree(repo, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        g.main(tmp)
        for m in ("tower", "gate", "head"):
            os.makedirs(os.path.join(repo, m, "1"))
            shutil.copy(os.path.join(tmp, "named_" + m + ".onnx"), os.path.join(repo, m, "1", "model.onnx"))
        for name, ens in ENSEMBLES.items():
            d = os.path.join(repo, name, "1")
            os.makedirs(d)
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump({"ensemble": ens}, f, indent=1)
            if name.startswith("bad"):
                continue
            shutil.copy(os.path.join(tmp, "named.in.dense.npy"), os.path.join(d, "in.dense.npy"))
            shutil.copy(os.path.join(tmp, "named.in.user_id.npy"), os.path.join(d, "in.user_id.npy"))
        shutil.copy(os.path.join(tmp, "named.score.npy"),
                    os.path.join(repo, "ens-named", "1", "out.score.npy"))
        shutil.copy(os.path.join(tmp, "named.feat.npy"),
                    os.path.join(repo, "ens-named", "1", "out.feat.npy"))
        shutil.copy(os.path.join(tmp, "gated.score.npy"),
                    os.path.join(repo, "ens-gated", "1", "out.score.npy"))
    with open(os.path.join(out, "ensnrepo.stamp"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main(sys.argv[1])
