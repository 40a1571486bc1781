#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a model repository of ensembles for test_ensemble_e2e.

Usage: gen_ens_repo.py OUTDIR     (writes OUTDIR/ensrepo and OUTDIR/ensrepo.stamp)

The step models and the numpy (float64) references of their compositions
come from tests/ensemble/gen_ensemble.py (same seed, same weights). Layout:
  REPO/<step>/1/model.onnx              chain_a chain_b tower_a tower_b head gate expert
  REPO/<ens>/<v>/config.json            {"ensemble": {...}} (repo.h), x.npy, y.npy
    ens-chain/1    chain_b(chain_a(x))
    ens-fanin/1    head(concat(tower_a(x), tower_b(x)))
    ens-fanin/2    the same, gated: gate(x) >= 0.5 ? head(...) : -1 (same dims: swap)
    ens-gate/1     gate(x) < 0.5 ? expert(x) : -1
    bad-unknown/1  a step names a model that does not exist   (step 'b')
    bad-cycle/1    two steps read each other                  (step 'p' or 'q')
    bad-shape/1    chain_b (takes 32) reads tower_a's 8 floats    (step 'b')
    aa-nested/1    ens-chain(x): an ensemble step that is an ensemble sorting
                   after it by name (loaded once ens-chain is)
    bad-loop-a/1   bad-loop-b(x), and bad-loop-b/1 bad-loop-a(x): a cycle of
                   ensembles, neither can load                 (step 'l')
  tower_a has versions 1 and 2 (the same weights): the ensembles pin 2, the
  primary at load time, so unloading 2 after a swap to 1 must say busy.
"""
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, os.path.join(HERE, "..", "ensemble"))
import gen_ensemble as g  # noqa: E402

STEPS = ["chain_a", "chain_b", "tower_a", "tower_b", "head", "gate", "expert"]
INPUT = "$input"
GATE = {"step": "g", "op": ">=", "threshold": g.THRESHOLD, "else": g.ELSE}

ENSEMBLES = {
    ("ens-chain", 1): ({"steps": [
        {"name": "a", "model": "chain_a", "version": 1, "inputs": [INPUT]},
        {"name": "b", "model": "chain_b", "inputs": ["a"]}], "output": "b"}, "chain"),
    ("ens-fanin", 1): ({"steps": [
        {"name": "ta", "model": "tower_a", "inputs": [INPUT]},
        {"name": "tb", "model": "tower_b", "inputs": [INPUT]},
        {"name": "head", "model": "head", "inputs": ["ta", "tb"]}], "output": "head"}, "fanin"),
    ("ens-fanin", 2): ({"steps": [
        {"name": "g", "model": "gate", "inputs": [INPUT]},
        {"name": "ta", "model": "tower_a", "inputs": [INPUT]},
        {"name": "tb", "model": "tower_b", "inputs": [INPUT]},
        {"name": "head", "model": "head", "inputs": ["ta", "tb"], "gate": GATE}],
        "output": "head"}, "fanin_gated"),
    ("ens-gate", 1): ({"steps": [
        {"name": "g", "model": "gate"},
        {"name": "e", "model": "expert", "inputs": [INPUT],
         "gate": dict(GATE, op="<")}], "output": "e"}, "gate_lt"),
    ("bad-unknown", 1): ({"steps": [
        {"name": "a", "model": "chain_a"},
        {"name": "b", "model": "no-such-model", "inputs": ["a"]}]}, None),
    ("bad-cycle", 1): ({"steps": [
        {"name": "a", "model": "chain_a"},
        {"name": "p", "model": "chain_b", "inputs": ["q"]},
        {"name": "q", "model": "chain_b", "inputs": ["p"]}]}, None),
    ("bad-shape", 1): ({"steps": [
        {"name": "a", "model": "tower_a", "inputs": [INPUT]},
        {"name": "b", "model": "chain_b", "inputs": ["a"]}]}, None),
    ("aa-nested", 1): ({"steps": [
        {"name": "c", "model": "ens-chain", "inputs": [INPUT]}]}, "chain"),
    ("bad-loop-a", 1): ({"steps": [{"name": "l", "model": "bad-loop-b"}]}, None),
    ("bad-loop-b", 1): ({"steps": [{"name": "l", "model": "bad-loop-a"}]}, None),
}


def main():
    out = sys.argv[1]
    stage = os.path.join(out, "ensrepo.stage")
    repo = os.path.join(out, "ensrepo")
    for d in (stage, repo):
        shutil.rmtree(d, ignore_errors=True)
    sys.argv = [sys.argv[0], stage]
    g.main()
    for s in STEPS:
        d = os.path.join(repo, s, "1")
        os.makedirs(d)
        shutil.copy(os.path.join(stage, s + ".onnx"), os.path.join(d, "model.onnx"))
    os.makedirs(os.path.join(repo, "tower_a", "2"))
    shutil.copy(os.path.join(stage, "tower_a.onnx"), os.path.join(repo, "tower_a", "2", "model.onnx"))
    for (name, ver), (ens, ref) in ENSEMBLES.items():
        d = os.path.join(repo, name, str(ver))
        os.makedirs(d)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump({"ensemble": ens}, f, indent=1)
        if ref:
            shutil.copy(os.path.join(stage, "x.npy"), os.path.join(d, "x.npy"))
            shutil.copy(os.path.join(stage, ref + ".y.npy"), os.path.join(d, "y.npy"))
    shutil.rmtree(stage)
    with open(os.path.join(out, "ensrepo.stamp"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
