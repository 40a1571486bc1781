#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Generates quiver's test models and their reference outputs.

Usage: gen_models.py OUTDIR

Writes into OUTDIR:
  NAME.onnx, NAME.x.npy, NAME.y.npy   one per good model; Y is computed
                                      independently of quiver: with a plain
                                      numpy implementation of each op (op
                                      models) or with torch in float64
                                      (torch models)
  bad-NAME.onnx                       malformed or unsupported models
  manifest.json                       every model: dims, tolerances, or the
                                      error substrings a bad model must give
  manifest.tsv                        the same, one line a model, for C tests:
                                        good<TAB>name<TAB>in_dim<TAB>out_dim<TAB>rtol<TAB>atol<TAB>max_steps
                                        (max_steps 0: not checked)
                                        bad<TAB>name<TAB>alt1|alt2|...
  repo/                               a model repository for quiverd:
                                        trade-mlp/1, trade-mlp/2, ctr-mlp/1, echo/1

Everything is seeded, so the output is byte-for-byte the same on every run.
Needs Debian's python3-onnx, python3-numpy and python3-torch.
"""
import json
import os
import shutil
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROWS = 64            # rows of every X; tests also run prefixes and single rows
RTOL, ATOL = 1e-4, 1e-5

good = []            # manifest entries
bad = []


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def f32(a):
    return np.asarray(a, dtype=np.float32)


def init(name, arr):
    return numpy_helper.from_array(f32(arr), name)


def init_i64(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.int64), name)


def vinfo(name, dims, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, dims)


def make(name, nodes, inits, in_dims, out_dims, opset, extra_inputs=(), outputs=None):
    graph = helper.make_graph(
        nodes, name.replace("-", "_"),
        [vinfo("X", ["N"] + list(in_dims))] + list(extra_inputs),
        outputs if outputs is not None else [vinfo("Y", ["N"] + list(out_dims))],
        initializer=inits)
    model = helper.make_model(graph, producer_name="quiver-gen-models",
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7 if opset <= 14 else 8
    return model


# Plans that must come out fused: at most this many steps (MatMul+Add+Relu is
# one dense step, BatchNormalization folds into the Gemm before it, Dropout
# and Identity vanish).
MAX_STEPS = {
    "matmul-add-relu": 1, "matmul-biasleft-relu": 1, "gemm-chain": 2, "gemm-relu6": 1,
    "dropout-opset9": 1, "dropout-opset13": 1, "identity": 1, "gemm-bn-relu": 1,
    "gemm-bn-relu-opset15": 1, "trade-mlp": 3, "trade-mlp-v2": 3, "ctr-mlp": 3, "bn-mlp": 3,
    "echo-flatten": 1, "echo-mul1": 1,
}


def write_good(out, name, model, x, y, rtol=RTOL, atol=ATOL, kind="op"):
    onnx.checker.check_model(model)
    x = f32(x)
    y = f32(y)
    assert x.shape[0] == y.shape[0]
    with open(os.path.join(out, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())
    np.save(os.path.join(out, name + ".x.npy"), x)
    np.save(os.path.join(out, name + ".y.npy"), y)
    good.append({
        "name": name, "kind": kind,
        "onnx": name + ".onnx", "x": name + ".x.npy", "y": name + ".y.npy",
        "in_shape": [-1] + list(x.shape[1:]), "out_shape": [-1] + list(y.shape[1:]),
        "in_dim": int(np.prod(x.shape[1:])), "out_dim": int(np.prod(y.shape[1:])),
        "rows": int(x.shape[0]), "rtol": rtol, "atol": atol,
        "opset": model.opset_import[0].version, "max_steps": MAX_STEPS.get(name, 0),
    })


def write_bad(out, name, data, errors, why):
    if isinstance(data, onnx.ModelProto):
        data = data.SerializeToString()
    with open(os.path.join(out, name + ".onnx"), "wb") as f:
        f.write(data)
    bad.append({"name": name, "onnx": name + ".onnx", "error": errors, "why": why})


# ---------------------------------------------------------------------------
# Plain numpy references, in float64, written from the ONNX operator spec.

def ref_gemm(a, b, c=None, alpha=1.0, beta=1.0, trans_a=0, trans_b=0):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if trans_a:
        a = a.T
    if trans_b:
        b = b.T
    y = alpha * (a @ b)
    if c is not None:
        y = y + beta * c.astype(np.float64)
    return y


def ref_relu(x):
    return np.maximum(x, 0.0)


def ref_leaky(x, alpha):
    return np.where(x < 0, alpha * x, x)


def ref_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def ref_softmax(x, axis):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def ref_softmax_v11(x, axis):
    # opset < 13: coerce to 2D [prod(shape[:axis]), prod(shape[axis:])]
    shp = x.shape
    flat = x.reshape(int(np.prod(shp[:axis])), -1)
    return ref_softmax(flat, 1).reshape(shp)


def ref_bn(x, scale, bias, mean, var, eps):
    x = x.astype(np.float64)
    return (x - mean) / np.sqrt(var.astype(np.float64) + eps) * scale + bias


def rand_x(rng, dims, scale=1.0):
    return f32(rng.standard_normal([ROWS] + list(dims)) * scale)


def away_from_zero(rng, shape):
    """Values in +-[0.5, 2]: safe divisors."""
    mag = rng.uniform(0.5, 2.0, size=shape)
    sign = np.where(rng.random(size=shape) < 0.5, -1.0, 1.0)
    return f32(mag * sign)


# ---------------------------------------------------------------------------
# Op models

def gen_gemm(out):
    n = "gemm-basic"; r = rng_for(n)
    w = f32(r.standard_normal((8, 6)) * 0.5); c = f32(r.standard_normal(6))
    m = make(n, [helper.make_node("Gemm", ["X", "W", "C"], ["Y"], name="gemm0")],
             [init("W", w), init("C", c)], [8], [6], 13)
    x = rand_x(r, [8]); write_good(out, n, m, x, ref_gemm(x, w, c))

    n = "gemm-transb-alpha-beta-bias1n"; r = rng_for(n)
    w = f32(r.standard_normal((6, 8)) * 0.5); c = f32(r.standard_normal((1, 6)))
    m = make(n, [helper.make_node("Gemm", ["X", "W", "C"], ["Y"], name="gemm0",
                                  alpha=0.5, beta=2.0, transA=0, transB=1)],
             [init("W", w), init("C", c)], [8], [6], 11)
    x = rand_x(r, [8]); write_good(out, n, m, x, ref_gemm(x, w, c, 0.5, 2.0, 0, 1))

    n = "gemm-transb0-alpha-bias1n"; r = rng_for(n)
    w = f32(r.standard_normal((8, 6)) * 0.5); c = f32(r.standard_normal((1, 6)))
    m = make(n, [helper.make_node("Gemm", ["X", "W", "C"], ["Y"], name="gemm0",
                                  alpha=-1.25, transB=0)],
             [init("W", w), init("C", c)], [8], [6], 13)
    x = rand_x(r, [8]); write_good(out, n, m, x, ref_gemm(x, w, c, -1.25))

    n = "gemm-nobias"; r = rng_for(n)
    w = f32(r.standard_normal((5, 8)) * 0.5)
    m = make(n, [helper.make_node("Gemm", ["X", "W"], ["Y"], name="gemm0", transB=1)],
             [init("W", w)], [8], [5], 13)
    x = rand_x(r, [8]); write_good(out, n, m, x, ref_gemm(x, w, None, trans_b=1))

    n = "gemm-opset9"; r = rng_for(n)
    w = f32(r.standard_normal((7, 8)) * 0.5); c = f32(r.standard_normal(7))
    m = make(n, [helper.make_node("Gemm", ["X", "W", "C"], ["Y"], name="gemm0",
                                  alpha=1.5, beta=0.25, transB=1)],
             [init("W", w), init("C", c)], [8], [7], 9)
    x = rand_x(r, [8]); write_good(out, n, m, x, ref_gemm(x, w, c, 1.5, 0.25, 0, 1))

    # weights as float_data (repeated float) instead of raw_data
    n = "gemm-float-data"; r = rng_for(n)
    w = f32(r.standard_normal((8, 6)) * 0.5); c = f32(r.standard_normal(6))
    tw = helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.flatten().tolist(), raw=False)
    tc = helper.make_tensor("C", TensorProto.FLOAT, c.shape, c.flatten().tolist(), raw=False)
    m = make(n, [helper.make_node("Gemm", ["X", "W", "C"], ["Y"], name="gemm0")],
             [tw, tc], [8], [6], 13)
    x = rand_x(r, [8]); write_good(out, n, m, x, ref_gemm(x, w, c))

    # initializers also listed as graph inputs, as IR < 4 exporters write them
    # (torch's keep_initializers_as_inputs=True): they are constants, not inputs
    n = "gemm-init-as-input"; r = rng_for(n)
    w = f32(r.standard_normal((6, 8)) * 0.5); c = f32(r.standard_normal(6))
    m = make(n, [helper.make_node("Gemm", ["X", "W", "C"], ["Y"], name="gemm0", transB=1)],
             [init("W", w), init("C", c)], [8], [6], 9,
             extra_inputs=[vinfo("W", [6, 8]), vinfo("C", [6])])
    m.ir_version = 3
    x = rand_x(r, [8]); write_good(out, n, m, x, ref_gemm(x, w, c, trans_b=1))

    # K and N off the vector widths, to hit kernel tails
    n = "gemm-odd-sizes"; r = rng_for(n)
    w = f32(r.standard_normal((37, 19)) * 0.3); c = f32(r.standard_normal(19))
    m = make(n, [helper.make_node("Gemm", ["X", "W", "C"], ["Y"], name="gemm0")],
             [init("W", w), init("C", c)], [37], [19], 13)
    x = rand_x(r, [37]); write_good(out, n, m, x, ref_gemm(x, w, c))


def gen_matmul(out):
    n = "matmul"; r = rng_for(n)
    w = f32(r.standard_normal((8, 5)) * 0.5)
    m = make(n, [helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm0")],
             [init("W", w)], [8], [5], 13)
    x = rand_x(r, [8]); write_good(out, n, m, x, ref_gemm(x, w))

    n = "matmul-add-relu"; r = rng_for(n)
    w = f32(r.standard_normal((16, 12)) * 0.5); b = f32(r.standard_normal(12))
    m = make(n, [helper.make_node("MatMul", ["X", "W"], ["t0"], name="mm0"),
                 helper.make_node("Add", ["t0", "B"], ["t1"], name="add0"),
                 helper.make_node("Relu", ["t1"], ["Y"], name="relu0")],
             [init("W", w), init("B", b)], [16], [12], 13)
    x = rand_x(r, [16]); write_good(out, n, m, x, ref_relu(ref_gemm(x, w) + b))

    # bias on the left of the Add, as some exporters write it
    n = "matmul-biasleft-relu"; r = rng_for(n)
    w = f32(r.standard_normal((16, 12)) * 0.5); b = f32(r.standard_normal((1, 12)))
    m = make(n, [helper.make_node("MatMul", ["X", "W"], ["t0"], name="mm0"),
                 helper.make_node("Add", ["B", "t0"], ["t1"], name="add0"),
                 helper.make_node("Relu", ["t1"], ["Y"], name="relu0")],
             [init("W", w), init("B", b)], [16], [12], 13)
    x = rand_x(r, [16]); write_good(out, n, m, x, ref_relu(ref_gemm(x, w) + b))

    n = "gemm-chain"; r = rng_for(n)
    w1 = f32(r.standard_normal((20, 24)) * 0.3); b1 = f32(r.standard_normal(24) * 0.1)
    w2 = f32(r.standard_normal((3, 24)) * 0.3); b2 = f32(r.standard_normal(3) * 0.1)
    m = make(n, [helper.make_node("Gemm", ["X", "W1", "B1"], ["h"], name="fc1"),
                 helper.make_node("Tanh", ["h"], ["a"], name="act1"),
                 helper.make_node("Gemm", ["a", "W2", "B2"], ["z"], name="fc2", transB=1),
                 helper.make_node("Sigmoid", ["z"], ["Y"], name="act2")],
             [init("W1", w1), init("B1", b1), init("W2", w2), init("B2", b2)], [20], [3], 13)
    x = rand_x(r, [20])
    write_good(out, n, m, x, ref_sigmoid(ref_gemm(np.tanh(ref_gemm(x, w1, b1)), w2, b2, trans_b=1)))


def gen_binary(out):
    ops = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
    shapes = {"vec": (8,), "row": (1, 8), "scalar": ()}
    for op, fn in ops.items():
        for sname, shp in shapes.items():
            for side in ("right", "left"):
                n = f"{op.lower()}-{side}-{sname}"; r = rng_for(n)
                c = away_from_zero(r, shp)
                x = rand_x(r, [8])
                if op == "Div" and side == "left":
                    # x is the divisor: keep it away from zero
                    x = away_from_zero(r, (ROWS, 8))
                ins = ["X", "C"] if side == "right" else ["C", "X"]
                m = make(n, [helper.make_node(op, ins, ["Y"], name=op.lower() + "0")],
                         [init("C", c)], [8], [8], 13 if op != "Div" else 14)
                xd, cd = x.astype(np.float64), c.astype(np.float64)
                y = fn(xd, cd) if side == "right" else fn(cd, xd)
                write_good(out, n, m, x, y)


def gen_eltwise(out):
    for n, node, fn, opset in [
        ("relu", helper.make_node("Relu", ["X"], ["Y"], name="relu0"), ref_relu, 14),
        ("leakyrelu", helper.make_node("LeakyRelu", ["X"], ["Y"], name="lrelu0", alpha=0.1),
         lambda x: ref_leaky(x, 0.1), 16),
        ("leakyrelu-default", helper.make_node("LeakyRelu", ["X"], ["Y"], name="lrelu0"),
         lambda x: ref_leaky(x, 0.01), 9),
        ("sigmoid", helper.make_node("Sigmoid", ["X"], ["Y"], name="sig0"), ref_sigmoid, 13),
        ("tanh", helper.make_node("Tanh", ["X"], ["Y"], name="tanh0"), np.tanh, 13),
    ]:
        r = rng_for(n)
        m = make(n, [node], [], [10], [10], opset)
        x = rand_x(r, [10], 3.0)
        x[0, :4] = [-100.0, 100.0, -1e-30, 40.0]  # saturation, subnormal-ish inputs
        write_good(out, n, m, x, fn(x.astype(np.float64)))


def gen_softmax(out):
    n = "softmax-axis-last"; r = rng_for(n)
    m = make(n, [helper.make_node("Softmax", ["X"], ["Y"], name="sm0", axis=-1)], [], [10], [10], 13)
    x = rand_x(r, [10], 3.0); write_good(out, n, m, x, ref_softmax(x, -1))

    # logits far beyond exp()'s float range: only a max-subtracted softmax survives
    n = "softmax-large-logits"; r = rng_for(n)
    m = make(n, [helper.make_node("Softmax", ["X"], ["Y"], name="sm0", axis=-1)], [], [10], [10], 13)
    x = rand_x(r, [10], 60.0); x[0, :] = 200.0; x[1, :3] = -200.0
    write_good(out, n, m, x, ref_softmax(x, -1))

    n = "softmax-default-opset13"; r = rng_for(n)
    m = make(n, [helper.make_node("Softmax", ["X"], ["Y"], name="sm0")], [], [10], [10], 13)
    x = rand_x(r, [10], 3.0); write_good(out, n, m, x, ref_softmax(x, -1))

    n = "softmax-opset11-axis1"; r = rng_for(n)
    m = make(n, [helper.make_node("Softmax", ["X"], ["Y"], name="sm0", axis=1)], [], [10], [10], 11)
    x = rand_x(r, [10], 3.0); write_good(out, n, m, x, ref_softmax_v11(x, 1))

    # the classic classifier head: logits then softmax
    n = "gemm-softmax"; r = rng_for(n)
    w = f32(r.standard_normal((12, 4))); b = f32(r.standard_normal(4))
    m = make(n, [helper.make_node("Gemm", ["X", "W", "B"], ["z"], name="fc0"),
                 helper.make_node("Softmax", ["z"], ["Y"], name="sm0", axis=1)],
             [init("W", w), init("B", b)], [12], [4], 11)
    x = rand_x(r, [12]); write_good(out, n, m, x, ref_softmax(ref_gemm(x, w, b), 1))


def gen_clip(out):
    n = "clip-opset9"; r = rng_for(n)
    m = make(n, [helper.make_node("Clip", ["X"], ["Y"], name="clip0", min=-0.5, max=0.7)],
             [], [10], [10], 9)
    x = rand_x(r, [10]); write_good(out, n, m, x, np.clip(x, -0.5, 0.7))

    n = "clip-opset13"; r = rng_for(n)
    m = make(n, [helper.make_node("Clip", ["X", "lo", "hi"], ["Y"], name="clip0")],
             [init("lo", np.float32(-0.25)), init("hi", np.float32(1.5))], [10], [10], 13)
    x = rand_x(r, [10]); write_good(out, n, m, x, np.clip(x, -0.25, 1.5))

    n = "clip-opset13-min-only"; r = rng_for(n)
    m = make(n, [helper.make_node("Clip", ["X", "lo"], ["Y"], name="clip0")],
             [init("lo", np.float32(0.1))], [10], [10], 13)
    x = rand_x(r, [10]); write_good(out, n, m, x, np.maximum(x, np.float32(0.1)))

    # ReLU6 as exporters write it: Gemm then Clip(0, 6)
    n = "gemm-relu6"; r = rng_for(n)
    w = f32(r.standard_normal((8, 9)) * 2.0); b = f32(r.standard_normal(9))
    m = make(n, [helper.make_node("Gemm", ["X", "W", "B"], ["z"], name="fc0"),
                 helper.make_node("Clip", ["z", "lo", "hi"], ["Y"], name="clip0")],
             [init("W", w), init("B", b), init("lo", np.float32(0)), init("hi", np.float32(6))],
             [8], [9], 13)
    x = rand_x(r, [8]); write_good(out, n, m, x, np.clip(ref_gemm(x, w, b), 0, 6))


def gen_shape_ops(out):
    n = "flatten-gemm"; r = rng_for(n)
    w = f32(r.standard_normal((24, 5)) * 0.5); b = f32(r.standard_normal(5))
    m = make(n, [helper.make_node("Flatten", ["X"], ["f"], name="flat0", axis=1),
                 helper.make_node("Gemm", ["f", "W", "B"], ["Y"], name="fc0")],
             [init("W", w), init("B", b)], [2, 3, 4], [5], 13)
    x = rand_x(r, [2, 3, 4])
    write_good(out, n, m, x, ref_gemm(x.reshape(ROWS, 24), w, b))

    n = "flatten"; r = rng_for(n)
    m = make(n, [helper.make_node("Flatten", ["X"], ["Y"], name="flat0")], [], [2, 3, 4], [24], 9)
    x = rand_x(r, [2, 3, 4]); write_good(out, n, m, x, x.reshape(ROWS, 24))

    n = "reshape-0-neg1-matmul"; r = rng_for(n)
    w = f32(r.standard_normal((24, 4)) * 0.5)
    m = make(n, [helper.make_node("Reshape", ["X", "shape"], ["f"], name="rs0"),
                 helper.make_node("MatMul", ["f", "W"], ["Y"], name="mm0")],
             [init_i64("shape", [0, -1]), init("W", w)], [2, 3, 4], [4], 13)
    x = rand_x(r, [2, 3, 4])
    write_good(out, n, m, x, ref_gemm(x.reshape(ROWS, 24), w))

    n = "reshape-3d-out"; r = rng_for(n)
    m = make(n, [helper.make_node("Reshape", ["X", "shape"], ["t"], name="rs0"),
                 helper.make_node("Relu", ["t"], ["Y"], name="relu0")],
             [init_i64("shape", [0, 4, -1])], [24], [4, 6], 9)
    x = rand_x(r, [24]); write_good(out, n, m, x, ref_relu(x.reshape(ROWS, 4, 6)))

    n = "identity"; r = rng_for(n)
    m = make(n, [helper.make_node("Identity", ["X"], ["a"], name="id0"),
                 helper.make_node("Relu", ["a"], ["b"], name="relu0"),
                 helper.make_node("Identity", ["b"], ["Y"], name="id1")],
             [], [10], [10], 13)
    x = rand_x(r, [10]); write_good(out, n, m, x, ref_relu(x))

    n = "dropout-opset9"; r = rng_for(n)
    w = f32(r.standard_normal((8, 6)) * 0.5); b = f32(r.standard_normal(6))
    m = make(n, [helper.make_node("Gemm", ["X", "W", "B"], ["h"], name="fc0"),
                 helper.make_node("Dropout", ["h"], ["d"], name="drop0", ratio=0.3),
                 helper.make_node("Relu", ["d"], ["Y"], name="relu0")],
             [init("W", w), init("B", b)], [8], [6], 9)
    x = rand_x(r, [8]); write_good(out, n, m, x, ref_relu(ref_gemm(x, w, b)))

    n = "dropout-opset13"; r = rng_for(n)
    w = f32(r.standard_normal((8, 6)) * 0.5); b = f32(r.standard_normal(6))
    m = make(n, [helper.make_node("Gemm", ["X", "W", "B"], ["h"], name="fc0"),
                 helper.make_node("Dropout", ["h", "ratio"], ["d", "mask"], name="drop0"),
                 helper.make_node("Sigmoid", ["d"], ["Y"], name="sig0")],
             [init("W", w), init("B", b), init("ratio", np.float32(0.5))], [8], [6], 13)
    x = rand_x(r, [8]); write_good(out, n, m, x, ref_sigmoid(ref_gemm(x, w, b)))

    for n, axis in (("concat", 1), ("concat-neg-axis", -1)):
        r = rng_for(n)
        w1 = f32(r.standard_normal((8, 4)) * 0.5); w2 = f32(r.standard_normal((8, 3)) * 0.5)
        b2 = f32(r.standard_normal(3))
        m = make(n, [helper.make_node("MatMul", ["X", "W1"], ["a0"], name="mm1"),
                     helper.make_node("Relu", ["a0"], ["a"], name="relu1"),
                     helper.make_node("Gemm", ["X", "W2", "B2"], ["b0"], name="fc2"),
                     helper.make_node("Tanh", ["b0"], ["b"], name="tanh2"),
                     helper.make_node("Concat", ["a", "b"], ["Y"], name="cat0", axis=axis)],
                 [init("W1", w1), init("W2", w2), init("B2", b2)], [8], [7], 13)
        x = rand_x(r, [8])
        y = np.concatenate([ref_relu(ref_gemm(x, w1)), np.tanh(ref_gemm(x, w2, b2))], axis=1)
        write_good(out, n, m, x, y)

    # concat then a dense layer over the concatenation
    n = "concat-gemm"; r = rng_for(n)
    w1 = f32(r.standard_normal((8, 5)) * 0.5); w2 = f32(r.standard_normal((8, 6)) * 0.5)
    w3 = f32(r.standard_normal((11, 2)) * 0.5); b3 = f32(r.standard_normal(2))
    m = make(n, [helper.make_node("MatMul", ["X", "W1"], ["a"], name="mm1"),
                 helper.make_node("Sigmoid", ["X"], ["s"], name="sig0"),
                 helper.make_node("MatMul", ["s", "W2"], ["b"], name="mm2"),
                 helper.make_node("Concat", ["a", "b"], ["c"], name="cat0", axis=1),
                 helper.make_node("Gemm", ["c", "W3", "B3"], ["Y"], name="fc3")],
             [init("W1", w1), init("W2", w2), init("W3", w3), init("B3", b3)], [8], [2], 13)
    x = rand_x(r, [8])
    c = np.concatenate([ref_gemm(x, w1), ref_gemm(ref_sigmoid(x), w2)], axis=1)
    write_good(out, n, m, x, ref_gemm(c, w3, b3))


def bn_params(r, ch):
    return (f32(r.uniform(0.5, 1.5, ch)), f32(r.standard_normal(ch) * 0.2),
            f32(r.standard_normal(ch) * 0.5), f32(r.uniform(0.25, 2.0, ch)))


def gen_batchnorm(out):
    for n, opset, eps in (("gemm-bn-relu", 9, 1e-5), ("gemm-bn-relu-opset15", 15, 1e-3)):
        r = rng_for(n)
        w = f32(r.standard_normal((10, 8)) * 0.5); b = f32(r.standard_normal(8))
        s, bb, mu, var = bn_params(r, 8)
        m = make(n, [helper.make_node("Gemm", ["X", "W", "B"], ["h"], name="fc0"),
                     helper.make_node("BatchNormalization", ["h", "s", "bb", "mu", "var"], ["z"],
                                      name="bn0", epsilon=eps),
                     helper.make_node("Relu", ["z"], ["Y"], name="relu0")],
                 [init("W", w), init("B", b), init("s", s), init("bb", bb), init("mu", mu),
                  init("var", var)], [10], [8], opset)
        x = rand_x(r, [10])
        write_good(out, n, m, x, ref_relu(ref_bn(ref_gemm(x, w, b), s, bb, mu, var, eps)))

    n = "batchnorm"; r = rng_for(n)
    s, bb, mu, var = bn_params(r, 6)
    m = make(n, [helper.make_node("BatchNormalization", ["X", "s", "bb", "mu", "var"], ["Y"],
                                  name="bn0", epsilon=1e-5)],
             [init("s", s), init("bb", bb), init("mu", mu), init("var", var)], [6], [6], 15)
    x = rand_x(r, [6]); write_good(out, n, m, x, ref_bn(x, s, bb, mu, var, 1e-5))


def gen_echo(out):
    """Models whose output equals their input: the repository's 'echo'."""
    n = "echo-flatten"; r = rng_for(n)
    m = make(n, [helper.make_node("Flatten", ["X"], ["Y"], name="echo0", axis=1)],
             [], [16], [16], 13)
    x = rand_x(r, [16]); write_good(out, n, m, x, x)

    n = "echo-mul1"; r = rng_for(n)
    m = make(n, [helper.make_node("Mul", ["X", "one"], ["Y"], name="echo0")],
             [init("one", np.float32(1.0))], [16], [16], 13)
    x = rand_x(r, [16]); write_good(out, n, m, x, x)
    return m


# ---------------------------------------------------------------------------
# Torch models, exported the way users export them

def gen_torch(out):
    import torch
    import torch.nn as nn

    torch.use_deterministic_algorithms(True)

    def mlp(sizes, seed, bn=False):
        torch.manual_seed(seed)
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                if bn:
                    b = nn.BatchNorm1d(sizes[i + 1])
                    with torch.no_grad():  # non-trivial statistics, as after training
                        b.running_mean.uniform_(-0.5, 0.5)
                        b.running_var.uniform_(0.25, 2.0)
                        b.weight.uniform_(0.5, 1.5)
                        b.bias.uniform_(-0.2, 0.2)
                    layers.append(b)
                layers.append(nn.ReLU())
                if bn:
                    layers.append(nn.Dropout(0.2))
        with torch.no_grad():  # logits spread over sigmoid's slope, not all near 0.5
            layers[-1].weight.mul_(20.0)
        layers.append(nn.Sigmoid())
        return nn.Sequential(*layers).eval()

    def export(name, model, in_dim, seed, opset=13, atol=ATOL):
        path = os.path.join(out, name + ".onnx")
        dummy = torch.zeros(2, in_dim)
        torch.onnx.export(model, dummy, path, input_names=["X"], output_names=["Y"],
                          dynamic_axes={"X": {0: "N"}, "Y": {0: "N"}}, opset_version=opset,
                          do_constant_folding=True)
        r = np.random.default_rng(seed)
        # a full default batch, so the largest bucket runs too
        x = f32(r.standard_normal((256, in_dim)))
        with torch.no_grad():
            import copy
            y = copy.deepcopy(model).double()(torch.from_numpy(x.astype(np.float64))).numpy()
        m = onnx.load(path)
        write_good(out, name, m, x, y, atol=atol, kind="torch")

    export("trade-mlp", mlp([32, 256, 256, 1], 1), 32, 101)
    export("trade-mlp-v2", mlp([32, 256, 256, 1], 2), 32, 102)
    export("ctr-mlp", mlp([256, 512, 256, 1], 3), 256, 103)
    export("bn-mlp", mlp([24, 64, 32, 1], 4, bn=True), 24, 104, opset=11)

    # Reduced precision. pairs(): columns 2j and 2j+1 of a layer are
    # 100 u_j + eps v_j and 100 u_j, and the next layer takes their
    # difference, so the output is eps v_j . x. At magnitude 100 bf16's
    # spacing is 0.5 and an int8 step about 100 / 127 of the column's max:
    # neither carries eps = 0.2 (or 0.0625), and the guard must keep such a
    # layer in fp32. (Without v, per-column int8 scales would carry the two
    # proportional columns exactly.)
    def pairs(k, n_pairs, eps, r):
        u = r.standard_normal((n_pairs, k)) / np.sqrt(k)
        v = r.standard_normal((n_pairs, k)) / np.sqrt(k)
        w = np.empty((2 * n_pairs, k))
        w[0::2] = 100.0 * u + eps * v
        w[1::2] = 100.0 * u
        diff = np.tile([1.0, -1.0], n_pairs)[None, :]
        return w, diff

    def fixed(*layers):
        mods = []
        for w, act in layers:
            lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(f32(w)))
            mods.append(lin)
            if act:
                mods.append(torch.nn.ReLU())
        return torch.nn.Sequential(*mods).eval()

    r = np.random.default_rng(105)
    w1, d1 = pairs(16, 16, 0.2, r)
    # (the cancellation of two values of magnitude 100 costs fp32 itself
    # about 1e-5 relative of 100: atol 1e-3 here, still 1000x below what
    # bf16 or int8 would lose)
    export("bf16-break", fixed((w1, False), (d1, False)), 16, 105, atol=1e-3)
    # only the first layer may be reduced: auto must choose per layer
    r = np.random.default_rng(106)
    w0 = r.standard_normal((256, 64)) / 8.0
    w1, d1 = pairs(256, 16, 0.0625, r)
    export("prec-auto", fixed((w0, True), (w1, False), (d1, False)), 64, 106, atol=1e-3)


# ---------------------------------------------------------------------------
# Bad models

def gen_bad(out):
    trade = open(os.path.join(out, "trade-mlp.onnx"), "rb").read()
    parse = ["parse", "protobuf", "decode", "invalid", "malformed", "truncat", "empty", "graph"]
    write_bad(out, "bad-empty", b"", parse + ["size"], "zero-byte file")
    write_bad(out, "bad-truncated", trade[: len(trade) // 2], parse, "half of trade-mlp")
    write_bad(out, "bad-random", rng_for("bad-random").bytes(1500), parse, "random bytes")

    r = rng_for("bad")
    w = f32(r.standard_normal((8, 4)))
    m = make("bad-conv", [helper.make_node("Conv", ["X", "W"], ["Y"], name="conv0")],
             [init("W", f32(r.standard_normal((4, 1, 3))))], [1, 8], [4, 6], 13)
    write_bad(out, "bad-conv", m, ["Conv"], "unsupported op Conv")

    m = make("bad-unknown-op", [helper.make_node("FrobnicateOp", ["X"], ["Y"], name="frob0")],
             [], [8], [8], 13)
    write_bad(out, "bad-unknown-op", m, ["FrobnicateOp"], "made-up op")

    m = make("bad-missing-init", [helper.make_node("Gemm", ["X", "W_missing", "B"], ["Y"], name="fc0")],
             [init("B", f32(np.zeros(4)))], [8], [4], 13)
    write_bad(out, "bad-missing-init", m, ["W_missing"], "Gemm weight not defined")

    m = make("bad-shape-mismatch", [helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm_bad")],
             [init("W", f32(r.standard_normal((32, 256)) * 0.1))], [33], [256], 13)
    write_bad(out, "bad-shape-mismatch", m, ["mm_bad"], "MatMul 32x256 fed 33 features")

    huge = TensorProto()
    huge.name = "W_huge"
    huge.data_type = TensorProto.FLOAT
    huge.dims.extend([1 << 20, 1 << 20])  # 2^40 elements, 16 bytes of data
    huge.raw_data = np.zeros(4, np.float32).tobytes()
    m = make("bad-huge-dims", [helper.make_node("MatMul", ["X", "W_huge"], ["Y"], name="mm0")],
             [huge], [1 << 20], [1 << 20], 13)
    write_bad(out, "bad-huge-dims", m, ["W_huge"], "initializer claims 2^40 elements")

    short = init("W_short", np.zeros((8, 6)))
    short.raw_data = short.raw_data[:10]
    m = make("bad-short-data", [helper.make_node("MatMul", ["X", "W_short"], ["Y"], name="mm0")],
             [short], [8], [6], 13)
    write_bad(out, "bad-short-data", m, ["W_short"], "initializer data shorter than its dims")

    huge_rank = init("W_rank", np.zeros(1))
    del huge_rank.dims[:]
    huge_rank.dims.extend([1] * 40)
    m = make("bad-rank", [helper.make_node("Add", ["X", "W_rank"], ["Y"], name="add0")],
             [huge_rank], [8], [8], 13)
    write_bad(out, "bad-rank", m, ["W_rank", "rank"], "initializer of rank 40")

    ext = TensorProto()
    ext.name = "W_ext"
    ext.data_type = TensorProto.FLOAT
    ext.dims.extend([8, 4])
    ext.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../../../../etc/passwd"), ("offset", "0"), ("length", "128")):
        e = ext.external_data.add()
        e.key, e.value = k, v
    m = make("bad-external-data", [helper.make_node("MatMul", ["X", "W_ext"], ["Y"], name="mm0")],
             [ext], [8], [4], 13)
    write_bad(out, "bad-external-data", m, ["W_ext", "external"],
              "initializer in an external file (never followed)")

    body = helper.make_graph([helper.make_node("Relu", ["X"], ["z"])], "body", [],
                             [vinfo("z", ["N", 8])])
    m = make("bad-if-subgraph",
             [helper.make_node("If", ["X"], ["Y"], name="if0", then_branch=body, else_branch=body)],
             [], [8], [8], 13)
    write_bad(out, "bad-if-subgraph", m, ["If"], "control flow with a subgraph")

    m = make("bad-cycle", [helper.make_node("Relu", ["cyc_b"], ["cyc_a"], name="cyc_n1"),
                           helper.make_node("Relu", ["cyc_a"], ["cyc_b"], name="cyc_n2"),
                           helper.make_node("Add", ["X", "cyc_a"], ["Y"], name="add0")],
             [], [8], [8], 13)
    write_bad(out, "bad-cycle", m, ["cyc"], "two nodes feeding each other")

    m = make("bad-undeclared-input", [helper.make_node("Relu", ["X"], ["t"], name="relu0"),
                                      helper.make_node("Add", ["t", "ghost"], ["Y"], name="add0")],
             [], [8], [8], 13)
    write_bad(out, "bad-undeclared-input", m, ["ghost"], "node input nobody produces")

    # two inputs load as a general graph; these two do not fit together
    m = make("bad-two-inputs", [helper.make_node("Add", ["X", "X2"], ["Y"], name="add0")],
             [], [8], [8], 13, extra_inputs=[vinfo("X2", ["N", 5])])
    write_bad(out, "bad-two-inputs", m, ["add0"], "two graph inputs whose shapes disagree")

    m = make("bad-gemm-transb2", [helper.make_node("Gemm", ["X", "W"], ["Y"], name="fc2", transB=2)],
             [init("W", w)], [8], [4], 13)
    write_bad(out, "bad-gemm-transb2", m, ["transB"], "transB=2")

    m = make("bad-int-input", [helper.make_node("Relu", ["X"], ["Y"], name="relu0")], [], [8], [8], 13)
    m.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    write_bad(out, "bad-int-input", m, ["float", "type", "int64"], "int64 input")

    m = make("bad-no-output", [helper.make_node("Relu", ["X"], ["t"], name="relu0")], [], [8], [8],
             13, outputs=[])
    write_bad(out, "bad-no-output", m, ["output"], "graph without outputs")

    m = make("bad-dangling-output", [helper.make_node("Relu", ["X"], ["t"], name="relu0")], [],
             [8], [8], 13)
    write_bad(out, "bad-dangling-output", m, ["Y", "output"], "graph output nobody produces")

    m = make("bad-softmax-axis0", [helper.make_node("Softmax", ["X"], ["Y"], name="sm0", axis=0)],
             [], [10], [10], 13)
    write_bad(out, "bad-softmax-axis0", m, ["sm0", "axis"], "softmax over the batch")

    # graphs that would mix rows of a batch, or break broadcasting
    for bname, node, inits in (
        ("bad-reshape-flatten-batch", helper.make_node("Reshape", ["X", "s"], ["Y"], name="rs_bad"),
         [init_i64("s", [-1])]),
        ("bad-reshape-fix-batch", helper.make_node("Reshape", ["X", "s"], ["Y"], name="rs_bad"),
         [init_i64("s", [2, -1])]),
        ("bad-reshape-size", helper.make_node("Reshape", ["X", "s"], ["Y"], name="rs_bad"),
         [init_i64("s", [0, 5])]),
        ("bad-gemm-transa", helper.make_node("Gemm", ["X", "W"], ["Y"], name="gemm_ta", transA=1),
         [init("W", np.ones((8, 8)))]),
        ("bad-flatten-axis0", helper.make_node("Flatten", ["X"], ["Y"], name="flat_bad", axis=0), []),
        ("bad-broadcast", helper.make_node("Add", ["X", "C"], ["Y"], name="add_bad"),
         [init("C", np.ones(7))]),
        ("bad-broadcast-batch", helper.make_node("Mul", ["C", "X"], ["Y"], name="mul_bad"),
         [init("C", np.ones((3, 8)))]),
    ):
        m = make(bname, [node], inits, [8], [8], 13)
        write_bad(out, bname, m, [node.name], "rows of the batch would mix, or shapes do not fit")

    m = make("bad-concat-batch-axis",
             [helper.make_node("Relu", ["X"], ["a"], name="relu0"),
              helper.make_node("Concat", ["X", "a"], ["Y"], name="cat0", axis=0)],
             [], [8], [8], 13)
    write_bad(out, "bad-concat-batch-axis", m, ["cat0", "axis"], "concat along the batch")


# ---------------------------------------------------------------------------

def write_repo(out):
    repo = os.path.join(out, "repo")
    if os.path.isdir(repo):
        shutil.rmtree(repo)
    for model, ver, src in (("trade-mlp", 1, "trade-mlp"), ("trade-mlp", 2, "trade-mlp-v2"),
                            ("ctr-mlp", 1, "ctr-mlp"), ("echo", 1, "echo-flatten")):
        d = os.path.join(repo, model, str(ver))
        os.makedirs(d)
        shutil.copyfile(os.path.join(out, src + ".onnx"), os.path.join(d, "model.onnx"))
        shutil.copyfile(os.path.join(out, src + ".x.npy"), os.path.join(d, "x.npy"))
        shutil.copyfile(os.path.join(out, src + ".y.npy"), os.path.join(d, "y.npy"))



# ---------------------------------------------------------------------------
# Extra versions of trade-mlp for the routing tests, outside repo/ (so the
# repository still serves what it served: the highest version) and outside
# the manifest. quiverctl loads them with `load trade-mlp V --path DIR`:
#   versions/trade-mlp/3  slow: 32 -> 1024 x 8 -> 1, misses tight deadlines
#   versions/trade-mlp/4  trade-mlp/2's logit, but NaN exactly where x0 == 0
#   versions/common/      versions 1-4 on one input set (see below)

def gen_versions(out):
    import copy
    import torch
    import torch.nn as nn

    torch.use_deterministic_algorithms(True)
    base = os.path.join(out, "versions")
    if os.path.isdir(base):
        shutil.rmtree(base)

    def run(model, x):
        if isinstance(model, tuple):
            return model[1](x)
        with torch.no_grad():
            return copy.deepcopy(model).double()(torch.from_numpy(x.astype(np.float64))).numpy()

    def mlp(sizes, seed):
        torch.manual_seed(seed)
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        with torch.no_grad():
            layers[-1].weight.mul_(20.0)
        layers.append(nn.Sigmoid())
        return nn.Sequential(*layers).eval()

    def nan_at_zero(inner):
        # trade-mlp/2 with a NaN side input joined after the last Relu:
        # U = (1 / X) * 0 is 0 where x is non-zero and NaN where x == 0, and
        # the final Gemm reads [H2, U]. Binary ops take one constant operand
        # and the runtime's Relu and Sigmoid need not keep a NaN (max
        # semantics, exp approximations), so the NaN enters the last layer
        # and the output is its logit: trade-mlp/2's logit where finite.
        l1, l2, l3 = inner[0], inner[2], inner[4]
        t = lambda p: p.detach().numpy().astype(np.float32)
        w3 = np.concatenate([t(l3.weight), np.full((1, 32), 0.01, np.float32)], axis=1)
        nodes = [
            helper.make_node("Div", ["one", "X"], ["Z"], name="recip"),
            helper.make_node("Mul", ["Z", "zero"], ["U"], name="nan_where_zero"),
            helper.make_node("Gemm", ["X", "W1", "B1"], ["G1"], name="fc1", transB=1),
            helper.make_node("Relu", ["G1"], ["H1"], name="relu1"),
            helper.make_node("Gemm", ["H1", "W2", "B2"], ["G2"], name="fc2", transB=1),
            helper.make_node("Relu", ["G2"], ["H2"], name="relu2"),
            helper.make_node("Concat", ["H2", "U"], ["C"], name="join", axis=1),
            helper.make_node("Gemm", ["C", "W3", "B3"], ["Y"], name="fc3", transB=1),
        ]
        inits = [init("one", np.ones(1)), init("zero", np.zeros(1)),
                 init("W1", t(l1.weight)), init("B1", t(l1.bias)),
                 init("W2", t(l2.weight)), init("B2", t(l2.bias)),
                 init("W3", w3), init("B3", t(l3.bias))]
        g = helper.make_graph(nodes, "trade-mlp-nan", [vinfo("X", ["N", 32])],
                              [vinfo("Y", ["N", 1])], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        onnx.checker.check_model(m)

        def ref(x):
            x = x.astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                u = (1.0 / x) * 0.0
            h = np.maximum(x @ t(l1.weight).T.astype(np.float64) + t(l1.bias), 0)
            h = np.maximum(h @ t(l2.weight).T.astype(np.float64) + t(l2.bias), 0)
            with np.errstate(invalid="ignore"):
                return np.concatenate([h, u], axis=1) @ w3.T.astype(np.float64) + t(l3.bias)
        return m, ref

    def save(ver, model, x):
        d = os.path.join(base, "trade-mlp", str(ver))
        os.makedirs(d)
        path = os.path.join(d, "model.onnx")
        if isinstance(model, tuple):
            onnx.save(model[0], path)
        else:
            torch.onnx.export(model, torch.ones(2, 32), path,
                              input_names=["X"], output_names=["Y"],
                              dynamic_axes={"X": {0: "N"}, "Y": {0: "N"}}, opset_version=13,
                              do_constant_folding=True)
        y = run(model, x)
        np.save(os.path.join(d, "x.npy"), f32(x))
        np.save(os.path.join(d, "y.npy"), y.astype(np.float32))
        return y


    r = np.random.default_rng(105)
    v3 = mlp([32] + [1024] * 8 + [1], 5)
    v4 = nan_at_zero(mlp([32, 256, 256, 1], 2))
    save(3, v3, f32(r.standard_normal((64, 32))))
    x = f32(r.standard_normal((64, 32)))
    x[::4, 0] = 0.0  # every 4th row: NaN from version 4
    y = save(4, v4, x)
    assert np.isnan(y[::4]).all() and np.isfinite(np.delete(y, np.s_[::4], 0)).all()

    # versions/common/trade-mlp/V/{x,y}.npy: every version on the SAME
    # inputs, so a test can check an answer against the version that the
    # completion names. Versions 1 and 2 are rebuilt from their seeds and
    # checked against the references gen_torch wrote.
    v1, v2 = mlp([32, 256, 256, 1], 1), mlp([32, 256, 256, 1], 2)
    for v, name in ((v1, "trade-mlp"), (v2, "trade-mlp-v2")):
        xr = np.load(os.path.join(out, name + ".x.npy"))
        yr = np.load(os.path.join(out, name + ".y.npy"))
        assert np.allclose(run(v, xr), yr, rtol=1e-5, atol=1e-6), name
    x = f32(r.standard_normal((128, 32)))
    x[::4, 0] = 0.0
    for ver, model in ((1, v1), (2, v2), (3, v3), (4, v4)):
        d = os.path.join(base, "common", "trade-mlp", str(ver))
        os.makedirs(d)
        np.save(os.path.join(d, "x.npy"), x)
        np.save(os.path.join(d, "y.npy"), run(model, x).astype(np.float32))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_models.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    np.seterr(all="raise", under="ignore")  # tiny sigmoid tails round to 0 in float32

    gen_gemm(out)
    gen_matmul(out)
    gen_binary(out)
    gen_eltwise(out)
    gen_softmax(out)
    gen_clip(out)
    gen_shape_ops(out)
    gen_batchnorm(out)
    gen_echo(out)
    gen_torch(out)
    gen_bad(out)
    write_repo(out)
    gen_versions(out)

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"rows": ROWS, "good": good, "bad": bad}, f, indent=1)
    with open(os.path.join(out, "manifest.tsv"), "w") as f:
        for g in good:
            f.write(f"good\t{g['name']}\t{g['in_dim']}\t{g['out_dim']}\t{g['rtol']:g}\t{g['atol']:g}"
                    f"\t{g['max_steps']}\n")
        for b in bad:
            f.write(f"bad\t{b['name']}\t{'|'.join(b['error'])}\n")
    # meson's stamp: written last so a failed run is re-run
    with open(os.path.join(out, "stamp"), "w") as f:
        f.write(f"{len(good)} good, {len(bad)} bad\n")


if __name__ == "__main__":
    main()
