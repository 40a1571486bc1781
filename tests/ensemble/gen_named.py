#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Generates the step models of the ensembles wired by named tensors and
the reference outputs of their compositions.

Usage: gen_named.py OUTDIR

Writes into OUTDIR:
  named_tower.onnx  x float32 [8] -> h float32 [6] (Linear, ReLU), s float32 [1] (sigmoid)
  named_gate.onnx   x float32 [8] -> p float32 [1] (sigmoid)
  named_head.onnx   dense float32 [6], uid int64 [] (embedding of 30), x float32 [8]
               -> prob float32 [1], logit float32 [1]
  named.in.dense.npy     64 rows of the ensemble input $dense, float32 [64, 8]
  named.in.user_id.npy   64 ids of the ensemble input $user_id, int64 [64], in [0, 30)
  named.score.npy        head(tower(dense).h, user_id, dense).prob
  named.feat.npy         tower(dense).h
  gated.score.npy        gate(dense) >= 0.5 ? head(...).prob : -1
  named.stamp

The compositions are computed here with torch in float64 from the same
weights, independently of quiver. Both steps tower and head read the
ensemble input $dense; head also reads $user_id by name through its
embedding. Seeded: the output is the same on every run. Needs Debian's
python3-onnx, python3-numpy and python3-torch.
"""
import copy
import os
import sys

import numpy as np

ROWS = 64
IDS = 30
THRESHOLD = 0.5
ELSE = -1.0


def main(out):
    import torch
    import torch.nn as nn

    torch.manual_seed(20261205)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(20261205)

    class Tower(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 6)
            self.sc = nn.Linear(8, 1)

        def forward(self, x):
            return torch.relu(self.fc(x)), torch.sigmoid(self.sc(x))

    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 1)

        def forward(self, x):
            return torch.sigmoid(self.fc(x) * 3.0)

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(IDS, 4)
            with torch.no_grad():
                self.emb.weight.mul_(0.5)
            self.fc1 = nn.Linear(6 + 4 + 8, 12)
            self.fc2 = nn.Linear(12, 1)

        def forward(self, dense, uid, x):
            z = torch.relu(self.fc1(torch.cat([dense, self.emb(uid), x], 1)))
            logit = self.fc2(z)
            return torch.sigmoid(logit), logit

    dense = (rng.standard_normal((ROWS, 8))).astype(np.float32)
    uid = rng.integers(0, IDS, size=(ROWS,)).astype(np.int64)

    def export(mod, name, ins, in_names, out_names):
        dyn = {t: {0: "N"} for t in in_names + out_names}
        dummy = tuple(torch.from_numpy(a[:2].copy()) for a in ins)
        torch.onnx.export(mod.eval(), dummy, os.path.join(out, name + ".onnx"),
                          input_names=in_names, output_names=out_names, dynamic_axes=dyn,
                          opset_version=13, do_constant_folding=True)

    tower, gate, head = Tower(), Gate(), Head()
    # no gate value so close to the threshold that float32 rounding could
    # flip it: redraw such rows
    while True:
        with torch.no_grad():
            pg = gate(torch.from_numpy(dense)).numpy()[:, 0]
        near = np.abs(pg - THRESHOLD) <= 1e-3
        if not near.any():
            break
        dense[near] = rng.standard_normal((int(near.sum()), 8)).astype(np.float32)
    h_ex = np.zeros((ROWS, 6), np.float32)
    export(tower, "named_tower", [dense], ["x"], ["h", "s"])
    export(gate, "named_gate", [dense], ["x"], ["p"])
    export(head, "named_head", [h_ex, uid, dense], ["dense", "uid", "x"], ["prob", "logit"])

    # the reference: the composition in float64
    t64, g64, hd64 = (copy.deepcopy(m).double().eval() for m in (tower, gate, head))
    with torch.no_grad():
        d = torch.from_numpy(dense.astype(np.float64))
        u = torch.from_numpy(uid)
        h, _ = t64(d)
        prob, _ = hd64(h, u, d)
        p = g64(d)
    prob = prob.numpy()
    p = p.numpy()
    # no gate value so close to the threshold that float32 rounding could flip it
    assert (np.abs(p - THRESHOLD) > 1e-3).all()
    assert 4 < (p >= THRESHOLD).sum() < ROWS - 4, "the gate must pass some rows and skip others"
    gated = np.where(p >= THRESHOLD, prob, ELSE)

    np.save(os.path.join(out, "named.in.dense.npy"), dense)
    np.save(os.path.join(out, "named.in.user_id.npy"), uid)
    np.save(os.path.join(out, "named.score.npy"), prob.astype(np.float32))
    np.save(os.path.join(out, "named.feat.npy"), h.numpy().astype(np.float32))
    np.save(os.path.join(out, "gated.score.npy"), gated.astype(np.float32))
    with open(os.path.join(out, "named.stamp"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main(sys.argv[1])
