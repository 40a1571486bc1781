#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Generates the step models of the ensemble tests and the reference outputs
of their compositions.

Usage: gen_ensemble.py OUTDIR

Writes into OUTDIR:
  NAME.onnx        the step models: chain_a, chain_b (a chain), tower_a,
                   tower_b, head (two towers concatenated into a head),
                   gate, expert (a cheap gate and the model it gates)
  x.npy            64 rows of input, shared by every ensemble
  ENSEMBLE.y.npy   the composition computed here in float64 numpy from the
                   same weights, independently of quiver:
                     chain        chain_b(chain_a(x))
                     fanin        head(concat(tower_a(x), tower_b(x)))
                     gate_ge      gate(x) >= 0.5 ? expert(x) : -1
                     gate_lt      gate(x) <  0.5 ? expert(x) : -1
                     fanin_gated  gate(x) >= 0.5 ? head(concat(...)) : -1
  ensemble.stamp

Seeded: the output is the same on every run. Needs Debian's python3-onnx
and python3-numpy.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROWS = 64
IN = 16
THRESHOLD = 0.5
ELSE = -1.0
rng = np.random.default_rng(20261129)


def dense(k, n):
    return (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32), \
        (rng.standard_normal(n) * 0.1).astype(np.float32)


def act(name, v):
    if name == "Relu":
        return np.maximum(v, 0.0)
    if name == "Tanh":
        return np.tanh(v)
    if name == "Sigmoid":
        return 1.0 / (1.0 + np.exp(-v))
    assert name is None
    return v


def mlp(name, dims, acts):
    """Gemm layers dims[0] -> dims[1] -> ..., acts[i] after layer i (or None).
    Writes NAME.onnx, returns a float64 numpy function of the same weights."""
    nodes, inits, layers = [], [], []
    cur = "X"
    for i in range(len(dims) - 1):
        w, b = dense(dims[i], dims[i + 1])
        layers.append((w.astype(np.float64), b.astype(np.float64), acts[i]))
        # alternate the stored layout so both Gemm forms are exercised
        trans = i % 2
        inits.append(numpy_helper.from_array(w.T.copy() if trans else w, f"W{i}"))
        inits.append(numpy_helper.from_array(b, f"B{i}"))
        last = i == len(dims) - 2
        g_out = "Y" if last and acts[i] is None else f"g{i}"
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"B{i}"], [g_out], transB=trans,
                                      name=f"fc{i}"))
        cur = g_out
        if acts[i] is not None:
            a_out = "Y" if last else f"a{i}"
            nodes.append(helper.make_node(acts[i], [cur], [a_out], name=f"act{i}"))
            cur = a_out
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", dims[0]])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", dims[-1]])],
        initializer=inits)
    model = helper.make_model(graph, producer_name="quiver-gen-ensemble",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, name + ".onnx"))

    def f(x):
        v = np.asarray(x, dtype=np.float64)
        for w, b, a in layers:
            v = act(a, v @ w + b)
        return v
    return f


def save(name, arr):
    np.save(os.path.join(OUT, name), np.asarray(arr, dtype=np.float32))


def main():
    global OUT
    OUT = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    chain_a = mlp("chain_a", [IN, 32], ["Relu"])
    chain_b = mlp("chain_b", [32, 24, 4], ["Tanh", None])
    tower_a = mlp("tower_a", [IN, 8], ["Relu"])
    tower_b = mlp("tower_b", [IN, 6], ["Sigmoid"])
    head = mlp("head", [14, 10, 3], ["Relu", None])
    gate = mlp("gate", [IN, 1], ["Sigmoid"])
    expert = mlp("expert", [IN, 32, 2], ["Relu", None])

    # Rows whose gate value is close to the threshold could pass in float32
    # and fail in float64: keep only rows clearly on one side.
    cand = rng.standard_normal((16 * ROWS, IN)).astype(np.float32)
    g = gate(cand)[:, 0]
    x = cand[np.abs(g - THRESHOLD) > 0.02][:ROWS]
    assert x.shape == (ROWS, IN)
    g = gate(x)
    passes = int((g[:, 0] >= THRESHOLD).sum())
    assert 8 <= passes <= ROWS - 8, passes   # both branches, many runs
    save("x.npy", x)

    save("chain.y.npy", chain_b(chain_a(x)))
    cat = np.concatenate([tower_a(x), tower_b(x)], axis=1)
    save("fanin.y.npy", head(cat))
    save("gate_ge.y.npy", np.where(g >= THRESHOLD, expert(x), ELSE))
    save("gate_lt.y.npy", np.where(g < THRESHOLD, expert(x), ELSE))
    save("fanin_gated.y.npy", np.where(g >= THRESHOLD, head(cat), ELSE))
    with open(os.path.join(OUT, "ensemble.stamp"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
