#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Test models for the general graph runtime (kernels/gx_*.c).

Usage: gen_gx.py OUTDIR

Writes OUTDIR/NAME.onnx, OUTDIR/NAME.bin and OUTDIR/gx.tsv:
  good<TAB>NAME<TAB>rows<TAB>rtol<TAB>atol   NAME.bin: rows packed input rows
                                             (every input's row, declared
                                             order, no padding) then rows
                                             packed float32 output rows,
                                             computed here with numpy/torch
  bad<TAB>NAME<TAB>substring                 must be refused, naming this
  range<TAB>NAME<TAB>rows<TAB>bad_row        NAME.bin: rows packed input rows;
                                             row bad_row holds an id outside
                                             its table: a run over it gives
                                             -ERANGE, the other rows run
Op-level models are built with onnx.helper and checked against numpy; the
model families are torch modules exported with torch.onnx.export (dynamic
batch) and checked against torch.
"""
import io
import os
import sys
import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

warnings.filterwarnings("ignore")
ROWS = 5
lines = []
OUT = None


def rng(name):
    return np.random.default_rng(sum(map(ord, name)) * 7919)


def vi(name, dims, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, dims)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def model(name, nodes, inputs, outputs, inits=(), opset=13):
    g = helper.make_graph(nodes, name.replace("-", "_"), inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, producer_name="quiver-gen-gx", opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def pack(arrays):
    rows = arrays[0].shape[0]
    out = bytearray()
    for r in range(rows):
        for a in arrays:
            out += np.ascontiguousarray(a[r]).tobytes()
    return bytes(out)


def good(name, m, ins, outs, rtol=1e-4, atol=1e-5):
    data = m if isinstance(m, (bytes, bytearray)) else m.SerializeToString()
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(data)
    outs = [np.asarray(o, dtype=np.float32) for o in outs]
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(pack(ins) + pack(outs))
    lines.append(f"good\t{name}\t{ins[0].shape[0]}\t{rtol}\t{atol}")


def bad(name, m, substr):
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(m.SerializeToString())
    lines.append(f"bad\t{name}\t{substr}")


def f32(r, *shape, lo=-1.0, hi=1.0):
    return r.uniform(lo, hi, size=shape).astype(np.float32)


# ---- op-level models ----

def gen_ops():
    N = ROWS
    r = rng("ops")
    # embedding lookup, int64 and int32 ids, negative ids count from the end
    table = f32(r, 50, 8)
    for dt, npdt in ((TensorProto.INT64, np.int64), (TensorProto.INT32, np.int32)):
        ids = r.integers(-50, 50, size=(N, 3)).astype(npdt)
        m = model(f"gather-{npdt.__name__}", [helper.make_node("Gather", ["T", "ids"], ["Y"], name="emb")],
                  [vi("ids", ["N", 3], dt)], [vi("Y", ["N", 3, 8])], [init("T", table)])
        good(f"gather-{npdt.__name__}", m, [ids], [table[ids]])
    ids = r.integers(0, 50, size=(N, 3)).astype(np.int64)
    ids[2, 1] = 50
    m = model("range-gather", [helper.make_node("Gather", ["T", "ids"], ["Y"], name="emb")],
              [vi("ids", ["N", 3], TensorProto.INT64)], [vi("Y", ["N", 3, 8])], [init("T", table)])
    with open(os.path.join(OUT, "range-gather.onnx"), "wb") as f:
        f.write(m.SerializeToString())
    with open(os.path.join(OUT, "range-gather.bin"), "wb") as f:
        f.write(pack([ids]))
    lines.append(f"range\trange-gather\t{N}\t2")

    # binary ops of two computed tensors with broadcasting, and with constants
    x = f32(r, N, 4, 1, lo=0.5, hi=2.0)
    y = f32(r, N, 1, 5, lo=0.5, hi=2.0)
    for op, fn in (("Add", np.add), ("Sub", np.subtract), ("Mul", np.multiply), ("Div", np.divide),
                   ("Pow", np.power), ("Max", np.maximum), ("Min", np.minimum)):
        m = model(f"bin-{op.lower()}", [helper.make_node(op, ["X", "Z"], ["Y"], name="b0")],
                  [vi("X", ["N", 4, 1]), vi("Z", ["N", 1, 5])], [vi("Y", ["N", 4, 5])])
        good(f"bin-{op.lower()}", m, [x, y], [fn(x, y)])
    c1, c2 = f32(r, 4), f32(r, 3, 1)
    x3 = f32(r, N, 3, 4)
    m = model("bin-const", [helper.make_node("Add", ["X", "C1"], ["t"], name="a0"),
                            helper.make_node("Mul", ["C2", "t"], ["Y"], name="m0")],
              [vi("X", ["N", 3, 4])], [vi("Y", ["N", 3, 4])], [init("C1", c1), init("C2", c2)])
    good("bin-const", m, [x3], [c2 * (x3 + c1)])

    # batched MatMul of two computed tensors; MatMul of rank 4 by a constant (dense)
    a, b = f32(r, N, 4, 6), f32(r, N, 6, 3)
    m = model("bmm", [helper.make_node("MatMul", ["A", "B"], ["Y"], name="mm")],
              [vi("A", ["N", 4, 6]), vi("B", ["N", 6, 3])], [vi("Y", ["N", 4, 3])])
    good("bmm", m, [a, b], [a @ b])
    a4, w = f32(r, N, 2, 3, 6), f32(r, 6, 5)
    m = model("matmul-rank4", [helper.make_node("MatMul", ["A", "W"], ["Y"], name="mm")],
              [vi("A", ["N", 2, 3, 6])], [vi("Y", ["N", 2, 3, 5])], [init("W", w)])
    good("matmul-rank4", m, [a4], [a4 @ w])
    # X X^T as in DLRM, through Transpose
    m = model("bmm-xxt", [helper.make_node("Transpose", ["A"], ["At"], name="tr", perm=[0, 2, 1]),
                          helper.make_node("MatMul", ["A", "At"], ["Y"], name="mm")],
              [vi("A", ["N", 4, 6])], [vi("Y", ["N", 4, 4])])
    good("bmm-xxt", m, [a], [a @ a.transpose(0, 2, 1)])

    # transpose moving the batch axis, reduced back
    x3 = f32(r, N, 3, 4)
    m = model("transpose-batch", [helper.make_node("Transpose", ["X"], ["t"], name="tr", perm=[1, 0, 2]),
                                  helper.make_node("ReduceSum", ["t", "ax"], ["Y"], name="rs", keepdims=0)],
              [vi("X", ["N", 3, 4])], [vi("Y", ["N", 4])], [init("ax", np.array([0], np.int64))])
    good("transpose-batch", m, [x3], [x3.sum(axis=1)])
    x4 = f32(r, N, 3, 4, 5)
    m = model("transpose", [helper.make_node("Transpose", ["X"], ["Y"], name="tr", perm=[0, 3, 1, 2])],
              [vi("X", ["N", 3, 4, 5])], [vi("Y", ["N", 5, 3, 4])])
    good("transpose", m, [x4], [x4.transpose(0, 3, 1, 2)])

    # reshape from a shape subgraph with the symbolic batch; flatten, squeeze, unsqueeze
    nodes = [helper.make_node("Shape", ["X"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "zero"], ["b"], name="g0", axis=0),
             helper.make_node("Unsqueeze", ["b", "ax0"], ["bu"], name="u0"),
             helper.make_node("Concat", ["bu", "m1"], ["tgt"], name="c0", axis=0),
             helper.make_node("Reshape", ["X", "tgt"], ["f"], name="rs"),
             helper.make_node("Unsqueeze", ["f", "ax1"], ["fu"], name="u1"),
             helper.make_node("Squeeze", ["fu", "ax1"], ["fs"], name="sq"),
             helper.make_node("Flatten", ["fs"], ["Y"], name="fl", axis=1)]
    m = model("reshape-shape", nodes, [vi("X", ["N", 3, 4, 5])], [vi("Y", ["N", 60])],
              [init("zero", np.array(0, np.int64)), init("ax0", np.array([0], np.int64)),
               init("m1", np.array([-1], np.int64)), init("ax1", np.array([1], np.int64))])
    good("reshape-shape", m, [x4], [x4.reshape(N, 60)])

    # concat of computed and a constant expanded over the batch (Expand with the batch from Shape)
    x2 = f32(r, N, 4)
    k = f32(r, 1, 3)
    nodes = [helper.make_node("Shape", ["X"], ["s"], name="shape"),
             helper.make_node("Slice", ["s", "st", "en"], ["b"], name="sl"),
             helper.make_node("Concat", ["b", "three"], ["tgt"], name="c0", axis=0),
             helper.make_node("Expand", ["K", "tgt"], ["ke"], name="ex"),
             helper.make_node("Concat", ["X", "ke", "X"], ["Y"], name="cat", axis=1)]
    m = model("concat-expand", nodes, [vi("X", ["N", 4])], [vi("Y", ["N", 11])],
              [init("st", np.array([0], np.int64)), init("en", np.array([1], np.int64)),
               init("three", np.array([3], np.int64)), init("K", k)])
    good("concat-expand", m, [x2], [np.concatenate([x2, np.repeat(k, N, 0), x2], 1)])

    # slice with steps (also negative), split (opset 13 sizes, opset 18 num_outputs)
    x10 = f32(r, N, 10)
    m = model("slice", [helper.make_node("Slice", ["X", "s0", "e0", "a0", "p0"], ["t"], name="s1"),
                        helper.make_node("Slice", ["X", "s1", "e1", "a0", "p1"], ["u"], name="s2"),
                        helper.make_node("Concat", ["t", "u"], ["Y"], name="c", axis=1)],
              [vi("X", ["N", 10])], [vi("Y", ["N", 7])],
              [init("s0", np.array([2], np.int64)), init("e0", np.array([8], np.int64)),
               init("a0", np.array([1], np.int64)), init("p0", np.array([2], np.int64)),
               init("s1", np.array([-1], np.int64)), init("e1", np.array([-9], np.int64)),
               init("p1", np.array([-2], np.int64))])
    good("slice", m, [x10], [np.concatenate([x10[:, 2:8:2], x10[:, -1:-9:-2]], 1)])
    m = model("split13", [helper.make_node("Split", ["X", "sp"], ["a", "b"], name="sp", axis=1),
                          helper.make_node("Sub", ["a", "b"], ["Y"], name="d")],
              [vi("X", ["N", 10])], [vi("Y", ["N", 5])], [init("sp", np.array([5, 5], np.int64))])
    good("split13", m, [x10], [x10[:, :5] - x10[:, 5:]])
    m = model("split18", [helper.make_node("Split", ["X"], ["a", "b", "c"], name="sp", axis=1, num_outputs=3)],
              [vi("X", ["N", 10])], [vi("a", ["N", 4]), vi("b", ["N", 4]), vi("c", ["N", 2])], opset=18)
    good("split18", m, [x10], [x10[:, :4], x10[:, 4:8], x10[:, 8:]])

    # cast, where, comparisons
    xi = r.integers(-5, 5, size=(N, 6)).astype(np.int64)
    m = model("cast", [helper.make_node("Cast", ["X"], ["Y"], name="c", to=TensorProto.FLOAT)],
              [vi("X", ["N", 6], TensorProto.INT64)], [vi("Y", ["N", 6])])
    good("cast", m, [xi], [xi.astype(np.float32)])
    x2, y2 = f32(r, N, 4), f32(r, N, 4)
    m = model("where", [helper.make_node("Greater", ["X", "zero"], ["c"], name="gt"),
                        helper.make_node("Mul", ["Z", "two"], ["z2"], name="m"),
                        helper.make_node("Where", ["c", "X", "z2"], ["Y"], name="w")],
              [vi("X", ["N", 4]), vi("Z", ["N", 4])], [vi("Y", ["N", 4])],
              [init("zero", np.array(0, np.float32)), init("two", np.array(2, np.float32))])
    good("where", m, [x2, y2], [np.where(x2 > 0, x2, y2 * 2)])

    # reductions: axes attribute (opset 13 Mean/Max), axes input (Sum), keepdims
    x3 = f32(r, N, 3, 4)
    m = model("reduce", [helper.make_node("ReduceMean", ["X"], ["a"], name="rm", axes=[2], keepdims=1),
                         helper.make_node("ReduceMax", ["X"], ["b"], name="rx", axes=[1, 2], keepdims=1),
                         helper.make_node("ReduceSum", ["X", "ax"], ["c"], name="rs", keepdims=0),
                         helper.make_node("Add", ["a", "b"], ["ab"], name="s"),
                         helper.make_node("Flatten", ["ab"], ["Y"], name="f")],
              [vi("X", ["N", 3, 4])], [vi("Y", ["N", 3]), vi("c", ["N", 4])],
              [init("ax", np.array([1], np.int64))])
    good("reduce", m, [x3], [(x3.mean(2, keepdims=True) + x3.max((1, 2), keepdims=True)).reshape(N, 3),
                             x3.sum(1)])

    # unary ops
    x2 = f32(r, N, 6, lo=-2, hi=2)
    import math
    erf = np.vectorize(math.erf)
    nodes = [helper.make_node("Erf", ["X"], ["e"], name="erf"), helper.make_node("Exp", ["e"], ["x"], name="exp"),
             helper.make_node("Abs", ["X"], ["a"], name="abs"), helper.make_node("Sqrt", ["a"], ["q"], name="sqrt"),
             helper.make_node("Add", ["a", "one"], ["a1"], name="a1"),
             helper.make_node("Log", ["a1"], ["l"], name="log"),
             helper.make_node("Reciprocal", ["a1"], ["rc"], name="rcp"),
             helper.make_node("Neg", ["rc"], ["n"], name="neg"),
             helper.make_node("Concat", ["x", "q", "l", "n"], ["Y"], name="cat", axis=1)]
    m = model("unary", nodes, [vi("X", ["N", 6])], [vi("Y", ["N", 24])], [init("one", np.array(1, np.float32))])
    a = np.abs(x2)
    good("unary", m, [x2], [np.concatenate([np.exp(erf(x2)), np.sqrt(a), np.log(a + 1), -1 / (a + 1)], 1)])

    # softmax / log-softmax on any axis; opset 11's coerced form
    x3 = f32(r, N, 3, 4, lo=-3, hi=3)

    def sm(v, ax):
        e = np.exp(v - v.max(ax, keepdims=True))
        return e / e.sum(ax, keepdims=True)
    m = model("softmax", [helper.make_node("Softmax", ["X"], ["a"], name="sm", axis=1),
                          helper.make_node("LogSoftmax", ["X"], ["b"], name="lsm", axis=-1)],
              [vi("X", ["N", 3, 4])], [vi("a", ["N", 3, 4]), vi("b", ["N", 3, 4])])
    good("softmax", m, [x3], [sm(x3, 1), np.log(sm(x3, 2))])
    m = model("softmax11", [helper.make_node("Softmax", ["X"], ["Y"], name="sm", axis=1)],
              [vi("X", ["N", 3, 4])], [vi("Y", ["N", 3, 4])], opset=11)
    good("softmax11", m, [x3], [sm(x3.reshape(N, 12), 1).reshape(N, 3, 4)])

    # LayerNormalization (opset 17)
    x3 = f32(r, N, 3, 8)
    sc, bi = f32(r, 8), f32(r, 8)
    mu = x3.mean(-1, keepdims=True)
    ref = (x3 - mu) / np.sqrt(((x3 - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * sc + bi
    m = model("layernorm", [helper.make_node("LayerNormalization", ["X", "S", "B"], ["Y"], name="ln", axis=-1)],
              [vi("X", ["N", 3, 8])], [vi("Y", ["N", 3, 8])], [init("S", sc), init("B", bi)], opset=17)
    good("layernorm", m, [x3], [ref])

    # ConstantOfShape over the symbolic batch, added to the input
    x2 = f32(r, N, 4)
    nodes = [helper.make_node("Shape", ["X"], ["s"], name="shape"),
             helper.make_node("ConstantOfShape", ["s"], ["z"], name="cos",
                              value=numpy_helper.from_array(np.array([1.5], np.float32))),
             helper.make_node("Add", ["X", "z"], ["Y"], name="a")]
    m = model("const-of-shape", nodes, [vi("X", ["N", 4])], [vi("Y", ["N", 4])])
    good("const-of-shape", m, [x2], [x2 + 1.5])

    # ids flattened with the batch (Reshape to [-1]), looked up, reshaped back per row
    ids = r.integers(0, 50, size=(N, 3)).astype(np.int64)
    nodes = [helper.make_node("Reshape", ["ids", "m1"], ["flat"], name="flat"),
             helper.make_node("Gather", ["T", "flat"], ["e"], name="emb"),
             helper.make_node("Shape", ["ids"], ["s"], name="shape"),
             helper.make_node("Slice", ["s", "z", "one"], ["b"], name="sl"),
             helper.make_node("Concat", ["b", "m1"], ["tgt"], name="c", axis=0),
             helper.make_node("Reshape", ["e", "tgt"], ["Y"], name="back")]
    m = model("ids-merged-batch", nodes, [vi("ids", ["N", 3], TensorProto.INT64)], [vi("Y", ["N", 24])],
              [init("T", table), init("m1", np.array([-1], np.int64)), init("z", np.array([0], np.int64)),
               init("one", np.array([1], np.int64))])
    good("ids-merged-batch", m, [ids], [table[ids].reshape(N, 24)])
    bad("bad-gx-merged", model("bad-gx-merged", [helper.make_node("Reshape", ["X", "m1"], ["f"], name="flat"),
                                                 helper.make_node("Relu", ["f"], ["g"], name="relu_m"),
                                                 helper.make_node("Reshape", ["g", "s"], ["Y"], name="back")],
                               [vi("X", ["N", 4])], [vi("Y", ["N", 4])],
                               [init("m1", np.array([-1], np.int64)), init("s", np.array([-1, 4], np.int64))]),
        "relu_m")

    # comparisons and logic into Where
    x2, y2 = f32(r, N, 6), f32(r, N, 6)
    y2[:, 0] = x2[:, 0]
    nodes = [helper.make_node("Less", ["X", "Z"], ["lt"], name="lt"),
             helper.make_node("Equal", ["X", "Z"], ["eq"], name="eq"),
             helper.make_node("Not", ["eq"], ["ne"], name="not"),
             helper.make_node("And", ["lt", "ne"], ["c1"], name="and"),
             helper.make_node("Greater", ["X", "half"], ["gt"], name="gt"),
             helper.make_node("LessOrEqual", ["Z", "mhalf"], ["le"], name="le"),
             helper.make_node("Or", ["gt", "le"], ["c2"], name="or"),
             helper.make_node("Where", ["c1", "X", "Z"], ["a"], name="w1"),
             helper.make_node("Where", ["c2", "one", "zero"], ["b"], name="w2"),
             helper.make_node("Concat", ["a", "b"], ["Y"], name="cat", axis=1)]
    m = model("logic", nodes, [vi("X", ["N", 6]), vi("Z", ["N", 6])], [vi("Y", ["N", 12])],
              [init("half", np.array(0.5, np.float32)), init("mhalf", np.array(-0.5, np.float32)),
               init("one", np.array([1.0], np.float32)), init("zero", np.array([0.0], np.float32))])
    c1 = (x2 < y2) & ~(x2 == y2)
    c2 = (x2 > 0.5) | (y2 <= -0.5)
    good("logic", m, [x2, y2], [np.concatenate([np.where(c1, x2, y2), np.where(c2, 1.0, 0.0)], 1)])

    # Floor, Ceil, LeakyRelu, Clip with bound inputs, a constant Range, Min / Max of one and three inputs
    x2 = f32(r, N, 4, lo=-3, hi=3)
    nodes = [helper.make_node("Floor", ["X"], ["f"], name="floor"),
             helper.make_node("Ceil", ["X"], ["c"], name="ceil"),
             helper.make_node("LeakyRelu", ["X"], ["l"], name="leaky", alpha=0.2),
             helper.make_node("Clip", ["X", "lo", "hi"], ["k"], name="clip"),
             helper.make_node("Range", ["r0", "r1", "r2"], ["rg"], name="range"),
             helper.make_node("Cast", ["rg"], ["rgf"], name="castr", to=TensorProto.FLOAT),
             helper.make_node("Add", ["X", "rgf"], ["xr"], name="addr"),
             helper.make_node("Max", ["xr"], ["m1"], name="max1"),
             helper.make_node("Min", ["f", "c", "l"], ["m3"], name="min3"),
             helper.make_node("Concat", ["m1", "m3", "k"], ["Y"], name="cat", axis=1)]
    m = model("misc-unary", nodes, [vi("X", ["N", 4])], [vi("Y", ["N", 12])],
              [init("lo", np.array(-1.0, np.float32)), init("hi", np.array(1.5, np.float32)),
               init("r0", np.array(0, np.int64)), init("r1", np.array(4, np.int64)),
               init("r2", np.array(1, np.int64))])
    leaky = np.where(x2 < 0, 0.2 * x2, x2)
    good("misc-unary", m, [x2], [np.concatenate([x2 + np.arange(4, dtype=np.float32),
                                                 np.minimum(np.minimum(np.floor(x2), np.ceil(x2)), leaky),
                                                 np.clip(x2, -1.0, 1.5)], 1)])

    # BatchNormalization and Gemm (transB, alpha, beta) in a graph of two inputs
    x3, z2 = f32(r, N, 3, 5), f32(r, N, 7)
    sc, bi, mu, var = f32(r, 3), f32(r, 3), f32(r, 3), f32(r, 3, lo=0.5, hi=2.0)
    w, cb = f32(r, 4, 7), f32(r, 4)
    nodes = [helper.make_node("BatchNormalization", ["X", "sc", "bi", "mu", "var"], ["bn"], name="bn",
                              epsilon=1e-3),
             helper.make_node("Gemm", ["Z", "W", "C"], ["Y2"], name="gemm", transB=1, alpha=0.5, beta=2.0)]
    m = model("bn-gemm", nodes, [vi("X", ["N", 3, 5]), vi("Z", ["N", 7])], [vi("bn", ["N", 3, 5]), vi("Y2", ["N", 4])],
              [init("sc", sc), init("bi", bi), init("mu", mu), init("var", var), init("W", w), init("C", cb)])
    bn = (x3 - mu[:, None]) / np.sqrt(var[:, None] + 1e-3) * sc[:, None] + bi[:, None]
    good("bn-gemm", m, [x3, z2], [bn, 0.5 * z2 @ w.T + 2.0 * cb])

    # Squeeze / Unsqueeze with the axes attribute (opset 11)
    x4 = f32(r, N, 1, 6)
    m = model("squeeze11", [helper.make_node("Squeeze", ["X"], ["s"], name="sq", axes=[1]),
                            helper.make_node("Unsqueeze", ["s"], ["u"], name="us", axes=[2]),
                            helper.make_node("Transpose", ["u"], ["Y"], name="tr", perm=[0, 2, 1])],
              [vi("X", ["N", 1, 6]), vi("K", ["N", 2], TensorProto.INT64)], [vi("Y", ["N", 1, 6])], opset=11)
    good("squeeze11", m, [x4, np.zeros((N, 2), np.int64)], [x4])

    # bad models: shapes that disagree, unknown op, reducing over the batch, K mismatch
    bad("bad-gx-shapes", model("bad-gx-shapes", [helper.make_node("Add", ["X", "Z"], ["Y"], name="add_bad")],
                               [vi("X", ["N", 4]), vi("Z", ["N", 5])], [vi("Y", ["N", 5])]), "add_bad")
    bad("bad-gx-op", model("bad-gx-op", [helper.make_node("Gather", ["T", "ids"], ["e"], name="emb"),
                                         helper.make_node("NonMaxSuppression", ["e"], ["Y"], name="nms0")],
                           [vi("ids", ["N", 3], TensorProto.INT64)], [vi("Y", ["N", 3])], [init("T", table)]),
        "nms0' (NonMaxSuppression)")
    bad("bad-gx-batch-reduce", model("bad-gx-batch-reduce",
                                     [helper.make_node("ReduceSum", ["X", "ax"], ["Y"], name="rs_b", keepdims=1),
                                      helper.make_node("Gather", ["T", "ids"], ["e"], name="emb")],
                                     [vi("X", ["N", 4]), vi("ids", ["N", 3], TensorProto.INT64)],
                                     [vi("Y", ["N", 4]), vi("e", ["N", 3, 8])],
                                     [init("ax", np.array([0], np.int64)), init("T", table)]), "rs_b")
    bad("bad-gx-bmm", model("bad-gx-bmm", [helper.make_node("MatMul", ["A", "B"], ["Y"], name="mm_k")],
                            [vi("A", ["N", 4, 6]), vi("B", ["N", 5, 3])], [vi("Y", ["N", 4, 3])]), "mm_k")
    bad("bad-gx-float-ids", model("bad-gx-float-ids", [helper.make_node("Gather", ["T", "X"], ["Y"], name="emb_f")],
                                  [vi("X", ["N", 3])], [vi("Y", ["N", 3, 8])], [init("T", table)]), "emb_f")


# ---- model families (torch) ----

def export(mod, args, names, outs, opset):
    import torch
    f = io.BytesIO()
    kw = dict(input_names=names, output_names=outs, opset_version=opset,
              dynamic_axes={n: {0: "B"} for n in names + outs})
    try:
        torch.onnx.export(mod, args, f, dynamo=False, **kw)
    except TypeError:
        torch.onnx.export(mod, args, f, **kw)
    return f.getvalue()


def gen_torch():
    import torch
    import torch.nn as nn
    torch.manual_seed(0)
    N = ROWS

    class DLRM(nn.Module):
        def __init__(s):
            super().__init__()
            s.bot = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())
            s.emb = nn.ModuleList([nn.Embedding(n, 16) for n in (100, 50, 20)])
            s.top = nn.Sequential(nn.Linear(16 + 6, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())
            s.li, s.lj = torch.tril_indices(4, 4, -1)

        def forward(s, dense, ids):
            x = s.bot(dense)
            t = torch.stack([x] + [m(ids[:, i]) for i, m in enumerate(s.emb)], dim=1)
            z = torch.bmm(t, t.transpose(1, 2))
            return s.top(torch.cat([x, z[:, s.li, s.lj]], 1))

    class DCN(nn.Module):
        def __init__(s):
            super().__init__()
            s.cross = nn.ModuleList([nn.Linear(12, 12) for _ in range(2)])
            s.deep = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())
            s.out = nn.Linear(28, 1)

        def forward(s, x):
            x0, xl = x, x
            for c in s.cross:
                xl = x0 * c(xl) + xl
            return torch.sigmoid(s.out(torch.cat([xl, s.deep(x)], 1)))

    class WideDeep(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(40, 8)
            s.wide = nn.Linear(10, 1)
            s.deep = nn.Sequential(nn.Linear(10 + 16, 32), nn.ReLU(), nn.Linear(32, 1))

        def forward(s, x, ids):
            e = s.emb(ids).flatten(1)
            return torch.sigmoid(s.wide(x) + s.deep(torch.cat([x, e], 1)))

    class TwoTower(nn.Module):
        def __init__(s):
            super().__init__()
            s.u = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 16))
            s.i = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 16))

        def forward(s, user, item):
            return (s.u(user) * s.i(item)).sum(-1, keepdim=True)

    class MultiTask(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(30, 4)
            s.shared = nn.Sequential(nn.Linear(8 + 8, 32), nn.ReLU())
            s.click = nn.Linear(32, 1)
            s.conv = nn.Linear(32, 2)

        def forward(s, x, ids):
            h = s.shared(torch.cat([x, s.emb(ids).flatten(1)], 1))
            return torch.sigmoid(s.click(h)), torch.softmax(s.conv(h), -1)

    class Residual(nn.Module):
        def __init__(s, approx):
            super().__init__()
            s.inp = nn.Linear(12, 24)
            s.blocks = nn.ModuleList([nn.Sequential(nn.Linear(24, 24), nn.GELU(approximate=approx)) for _ in range(2)])
            s.norms = nn.ModuleList([nn.LayerNorm(24) for _ in range(2)])
            s.head = nn.Linear(24, 3)

        def forward(s, x):
            h = s.inp(x)
            for blk, ln in zip(s.blocks, s.norms):
                h = ln(h + blk(h))
            return s.head(h)

    class GeluAlone(nn.Module):
        def forward(s, x):
            return nn.functional.gelu(x) * 2 + nn.functional.gelu(-x, approximate="tanh")

    r = rng("torch")
    dense = r.standard_normal((N, 13)).astype(np.float32)
    ids = np.stack([r.integers(0, n, N) for n in (100, 50, 20)], 1).astype(np.int64)
    x12 = r.standard_normal((N, 12)).astype(np.float32)
    x10 = r.standard_normal((N, 10)).astype(np.float32)
    ids2 = r.integers(0, 40, (N, 2)).astype(np.int64)
    it6 = r.standard_normal((N, 6)).astype(np.float32)
    x8 = r.standard_normal((N, 8)).astype(np.float32)
    ids3 = r.integers(0, 30, (N, 2)).astype(np.int64)
    cases = [
        ("gx-dlrm", DLRM(), [dense, ids], ["dense", "ids"], ["p"], 13),
        ("gx-dcn-v2", DCN(), [x12], ["x"], ["p"], 13),
        ("gx-wide-deep", WideDeep(), [x10, ids2], ["x", "ids"], ["p"], 13),
        ("gx-two-tower", TwoTower(), [x10, it6], ["user", "item"], ["score"], 13),
        ("gx-multi-task", MultiTask(), [x8, ids3], ["x", "ids"], ["click", "conv"], 13),
        ("gx-residual-ln17", Residual("none"), [x12], ["x"], ["y"], 17),
        ("gx-residual-ln13", Residual("none"), [x12], ["x"], ["y"], 13),
        ("gx-residual-tanh", Residual("tanh"), [x12], ["x"], ["y"], 17),
        ("gx-gelu-alone", GeluAlone(), [x12], ["x"], ["y"], 13),
    ]
    for name, mod, ins, inames, onames, opset in cases:
        mod.eval()
        targs = tuple(torch.from_numpy(a) for a in ins)
        with torch.no_grad():
            ref = mod(*targs)
        refs = [t.numpy() for t in (ref if isinstance(ref, tuple) else (ref,))]
        data = export(mod, targs, inames, onames, opset)
        good(name, data, ins, refs)


def main():
    global OUT
    if len(sys.argv) != 2:
        sys.exit("usage: gen_gx.py OUTDIR")
    OUT = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    gen_ops()
    try:
        gen_torch()
    except ImportError:
        pass  # op-level models still run; families need torch
    with open(os.path.join(OUT, "gx.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
