#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""quiver-bench --input/--output against the generators' independent
references (torch in float64, see tests/models/gen_models.py).

For each MLP, X is tiled past max_batch (256) so the run crosses a batch
boundary and ends on a partial batch, and given once as [N, in_dim] and once
reshaped to [N, a, b] (trailing dims multiply to in_dim). Both paths are
checked: inproc (the runtime) and floor-onednn (the direct oneDNN chain).

Usage: npy_roundtrip.py QUIVER_BENCH MODELS_DIR
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

SKIP = 77
MODELS = ("trade-mlp", "ctr-mlp")
TILE = 5  # 64 rows x 5 = 320 rows: one full batch of 256, then 64


def main():
    bench, mdir = sys.argv[1], sys.argv[2]
    manifest = os.path.join(mdir, "manifest.json")
    if not os.path.exists(manifest):
        print(f"skip: no generated models in {mdir} (python3-onnx/torch missing?)")
        return SKIP
    with open(manifest) as f:
        good = {g["name"]: g for g in json.load(f)["good"]}
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            g = good[name]
            x = np.load(os.path.join(mdir, g["x"]))
            yref = np.load(os.path.join(mdir, g["y"])).reshape(x.shape[0], -1)
            x = np.tile(x, (TILE, 1))
            yref = np.tile(yref, (TILE, 1))
            in_dim = g["in_dim"]
            shapes = [x.shape, (x.shape[0], 2, in_dim // 2)]
            for shape in shapes:
                xp = os.path.join(tmp, "x.npy")
                np.save(xp, np.ascontiguousarray(x.reshape(shape), dtype=np.float32))
                for path in ("inproc", "floor-onednn"):
                    yp = os.path.join(tmp, f"y-{path}.npy")
                    cmd = [bench, os.path.join(mdir, g["onnx"]), "--input", xp,
                           "--output", yp, "--path", path]
                    p = subprocess.run(cmd, capture_output=True, text=True)
                    if p.returncode != 0:
                        print(f"FAIL {name} {path} {shape}: exit {p.returncode}\n{p.stderr}")
                        return 1
                    y = np.load(yp)
                    assert y.dtype == np.float32, y.dtype
                    assert y.shape == (x.shape[0], g["out_dim"]), (y.shape, x.shape)
                    err = np.abs(y.astype(np.float64) - yref)
                    tol = g["atol"] + g["rtol"] * np.abs(yref)
                    if not np.all(err <= tol):
                        i = int(np.argmax(err - tol))
                        print(f"FAIL {name} {path} {shape}: row {i // y.shape[1]}: "
                              f"got {y.flat[i]!r}, want {yref.flat[i]!r} "
                              f"(max abs err {err.max():.3g})")
                        return 1
                    print(f"ok {name} {path} X{list(shape)}: max abs err {err.max():.3g}")
                    checked += 1
    assert checked == len(MODELS) * 2 * 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
