#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Generates quiver's multi-tensor graph test models and their references.

Usage: gen_graph_models.py OUTDIR

Recommender and trading networks as PyTorch exports them (torch.onnx.export
with the batch of every input and output dynamic, so the graphs carry the
Shape/Gather/Unsqueeze/Concat/Reshape subgraphs real exports have), one
model per op of the graph runtime, and models that must be refused.

Writes into OUTDIR:
  NAME.onnx                 one per model
  NAME.in.TENSOR.npy        every input tensor, ROWS rows (float32, int32 or
                            int64, C order, shape [ROWS, per-row dims...])
  NAME.out.TENSOR.npy       every output's reference: torch run in float64
                            (torch models) or a float64 numpy implementation
                            written from the ONNX spec (graphs built node by node);
                            never anything of quiver's. Stored as float32
                            (int32/int64 for integer outputs).
  bad-NAME.onnx             models the loader must refuse
  manifest.json             everything below, plus the op types of each graph
  manifest.tsv              the same for C tests, one record a line, TAB-separated:
      model NAME ROWS RTOL ATOL N_IN N_OUT   then N_IN "in" and N_OUT "out" lines
      in    TENSOR DTYPE SHAPE BOUND          DTYPE float32|int32|int64; SHAPE the
      out   TENSOR DTYPE SHAPE                per-row dims joined by 'x', '-' for
                                              none (a row of one element); BOUND
                                              the table size an id input indexes
                                              (0: not an id input)
      bad   NAME ALT1|ALT2...                 substrings the load error must hold
                                              (one is enough; the node's name)
  repo/NAME/1/              a quiverd model repository of the six model
                            families (dlrm, dcn-v2, wide-deep, two-tower,
                            multitask, resmlp): model.onnx, in.TENSOR.npy,
                            out.TENSOR.npy

Everything is seeded, so every run writes the same files. Needs Debian's
python3-onnx, python3-numpy and python3-torch.
"""
import copy
import json
import os
import shutil
import sys
import warnings
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROWS = 200          # not a power of two: a batch of all rows spans buckets
RTOL, ATOL = 1e-4, 1e-5
FAMILIES = ["dlrm", "dcn-v2", "wide-deep", "two-tower", "multitask", "resmlp"]

DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.int32): "int32",
          np.dtype(np.int64): "int64"}
ONNX_DT = {"float32": TensorProto.FLOAT, "int32": TensorProto.INT32, "int64": TensorProto.INT64}

good = []
bad = []


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def f32(a):
    return np.asarray(a, dtype=np.float32)


def away_from_zero(r, shape, lo=0.5, hi=2.0):
    sign = np.where(r.random(size=shape) < 0.5, -1.0, 1.0)
    return f32(r.uniform(lo, hi, size=shape) * sign)


def check_io(model, name, ins, outs):
    """The graph's inputs and outputs are ours, in our order, batch dynamic."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    gin = [i for i in g.input if i.name not in inits]
    assert [i.name for i in gin] == [t[0] for t in ins], (name, [i.name for i in gin])
    assert [o.name for o in g.output] == [t[0] for t in outs], (name, [o.name for o in g.output])
    for vi, t in zip(list(gin) + list(g.output), list(ins) + list(outs)):
        tt = vi.type.tensor_type
        dims = tt.shape.dim
        assert tt.elem_type == ONNX_DT[DTYPES[t[1].dtype]], (name, vi.name, tt.elem_type)
        assert len(dims) == t[1].ndim, (name, vi.name, len(dims))
        assert dims[0].dim_param and not dims[0].HasField("dim_value"), (name, vi.name, "batch")
        # torch's exporter may leave an output's per-row dims symbolic (a
        # Reshape to [-1, 2, 6]): the runtime infers them; inputs are fixed
        is_out = vi in g.output
        for d, n in zip(dims[1:], t[1].shape[1:]):
            assert d.dim_value == n or (is_out and d.dim_param), (name, vi.name, d, n)


def write_good(out, name, model, ins, outs, rtol=RTOL, atol=ATOL, kind="op", why="",
               expect_ops=(), absent_ops=(), check=True):
    """ins: [(tensor, array, index_bound)], outs: [(tensor, reference array)]."""
    if check:
        onnx.checker.check_model(model)
    outs = [(t, np.asarray(a).astype(np.float32) if np.asarray(a).dtype.kind == "f" else np.asarray(a))
            for t, a in outs]
    check_io(model, name, ins, outs)
    ops = sorted({n.op_type for n in model.graph.node})
    for op in expect_ops:
        assert op in ops, (name, op, ops)
    for op in absent_ops:
        assert op not in ops, (name, op, ops)
    with open(os.path.join(out, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())
    rec = {"name": name, "kind": kind, "onnx": name + ".onnx", "rows": ROWS,
           "rtol": rtol, "atol": atol, "opset": model.opset_import[0].version, "ops": ops,
           "inputs": [], "outputs": []}
    if why:
        rec["tolerance_why"] = why
    for t, a, bound in ins:
        assert a.shape[0] == ROWS and a.dtype in DTYPES, (name, t)
        if bound:  # ids: integers (also when sent as floats) inside the table
            assert (a == np.round(a)).all() and a.min() >= -bound and a.max() < bound, (name, t)
        np.save(os.path.join(out, f"{name}.in.{t}.npy"), a)
        rec["inputs"].append({"name": t, "dtype": DTYPES[a.dtype], "shape": list(a.shape[1:]),
                              "index_bound": int(bound), "npy": f"{name}.in.{t}.npy"})
    for t, a in outs:
        assert a.shape[0] == ROWS and a.dtype in DTYPES and np.isfinite(a).all(), (name, t)
        np.save(os.path.join(out, f"{name}.out.{t}.npy"), a)
        rec["outputs"].append({"name": t, "dtype": DTYPES[a.dtype], "shape": list(a.shape[1:]),
                               "npy": f"{name}.out.{t}.npy"})
    good.append(rec)


def write_bad(out, name, model, errors, why):
    with open(os.path.join(out, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())
    bad.append({"name": name, "onnx": name + ".onnx", "error": errors, "why": why})


# ---------------------------------------------------------------------------
# torch models

def torch_export(out, name, module, ins, out_names, opset=13, rtol=RTOL, atol=ATOL, kind="op",
                 why="", expect_ops=(), absent_ops=()):
    """Exports module with every input's and output's batch dynamic and
    writes the float64 torch run as the reference. ins: [(tensor, array,
    index_bound)] in the forward's argument order."""
    import torch

    module = module.eval()
    path = os.path.join(out, name + ".onnx")
    # the traced example has 2 rows, not ROWS: nothing may bake the batch in
    dummy = tuple(torch.from_numpy(a[:2].copy()) for _, a, _ in ins)
    names = [t for t, _, _ in ins]
    dyn = {t: {0: "N"} for t in names + list(out_names)}
    torch.onnx.export(module, dummy, path, input_names=names, output_names=list(out_names),
                      dynamic_axes=dyn, opset_version=opset, do_constant_folding=True)
    model = onnx.load(path)

    def run(mod, dt):
        args = [torch.from_numpy(a.astype(dt) if a.dtype == np.float32 else a) for _, a, _ in ins]
        with torch.no_grad():
            y = mod(*args)
        y = y if isinstance(y, tuple) else (y,)
        return [t.numpy() for t in y]

    ref = run(copy.deepcopy(module).double(), np.float64)
    # The model must be well conditioned: torch's own float32 run meets the
    # tolerance the test asks of quiver's.
    for t, a64, a32 in zip(out_names, ref, run(module, np.float32)):
        if a64.dtype.kind == "f":
            assert np.allclose(a32, a64, rtol=rtol, atol=atol), (name, t,
                                                                 np.abs(a32 - a64).max())
        else:
            assert (a32 == a64).all(), (name, t)
    assert len(ref) == len(out_names), name
    write_good(out, name, model, ins, list(zip(out_names, ref)), rtol, atol, kind, why,
               expect_ops, absent_ops)


def ids(r, bound, shape, dtype=np.int64):
    return r.integers(0, bound, size=(ROWS,) + tuple(shape)).astype(dtype)


def dense(r, dim, scale=1.0):
    shape = (ROWS,) + (tuple(dim) if isinstance(dim, (tuple, list)) else (dim,))
    return f32(r.standard_normal(shape) * scale)


def gen_families(out):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.use_deterministic_algorithms(True)

    def emb(n, d, scale=0.5):
        e = nn.Embedding(n, d)
        with torch.no_grad():
            e.weight.mul_(scale)
        return e

    # DLRM: bottom MLP on the dense features, three embedding tables, the
    # pairwise dot products of the four [d] vectors by a batched MatMul of
    # the stacked [B, 4, d] with its transpose, the upper triangle picked
    # out of a flat view (Gather with constant indices), top MLP, sigmoid.
    class DLRM(nn.Module):
        def __init__(self):
            super().__init__()
            self.bot = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU())
            self.user = emb(50, 8)
            self.item = emb(40, 8)
            self.cat = emb(10, 8)
            self.top = nn.Sequential(nn.Linear(8 + 6, 16), nn.ReLU(), nn.Linear(16, 1))
            iu = torch.triu_indices(4, 4, 1)
            self.register_buffer("tri", iu[0] * 4 + iu[1])

        def forward(self, dense, user_id, item_id, cat_id):
            b = self.bot(dense)
            t = torch.stack([b, self.user(user_id), self.item(item_id), self.cat(cat_id)], dim=1)
            z = torch.bmm(t, t.transpose(1, 2))
            flat = z.reshape(z.shape[0], -1)
            inter = flat.index_select(1, self.tri)
            return torch.sigmoid(self.top(torch.cat([b, inter], 1)))

    n = "dlrm"; r = rng_for(n); torch.manual_seed(11)
    torch_export(out, n, DLRM(), [("dense", dense(r, 8), 0), ("user_id", ids(r, 50, ()), 50),
                                  ("item_id", ids(r, 40, ()), 40), ("cat_id", ids(r, 10, ()), 10)],
                 ["ctr"], kind="family",
                 expect_ops=["Gather", "MatMul", "Transpose", "Shape", "Reshape", "Concat",
                             "Unsqueeze", "Sigmoid"])

    # The same network as exporters also see it: int32 ids of shape [B, 1]
    # (lookups [B, 1, d] flattened), the lower triangle by tril_indices.
    class DLRM2(DLRM):
        def __init__(self):
            super().__init__()
            il = torch.tril_indices(4, 4, -1)
            self.register_buffer("li", il[0])
            self.register_buffer("lj", il[1])

        def forward(self, dense, user_id, item_id, cat_id):
            b = self.bot(dense)
            e = [self.user(user_id), self.item(item_id), self.cat(cat_id)]
            t = torch.cat([b.unsqueeze(1)] + e, 1)
            z = torch.matmul(t, t.permute(0, 2, 1))
            inter = z[:, self.li, self.lj]
            return torch.sigmoid(self.top(torch.cat([b, inter], 1)))

    n = "dlrm-int32-tril"; r = rng_for(n); torch.manual_seed(11)
    # torch warns that negative indices would break this export: ours are not
    warnings.filterwarnings("ignore", message="Exporting aten::index operator")
    torch_export(out, n, DLRM2(), [("dense", dense(r, 8), 0),
                                   ("user_id", ids(r, 50, (1,), np.int32), 50),
                                   ("item_id", ids(r, 40, (1,), np.int32), 40),
                                   ("cat_id", ids(r, 10, (1,), np.int32), 10)],
                 ["ctr"], expect_ops=["Gather", "MatMul", "Sigmoid"])

    # DCN-v2: x0 = [emb(c1), emb(c2), dense]; three cross layers
    # x_{l+1} = x0 * (W x_l + b) + x_l beside a deep tower; concat; head.
    class DCN(nn.Module):
        def __init__(self):
            super().__init__()
            self.e1 = emb(20, 4)
            self.e2 = emb(30, 4)
            self.cross = nn.ModuleList([nn.Linear(14, 14) for _ in range(3)])
            with torch.no_grad():
                for c in self.cross:
                    c.weight.mul_(0.5)
            self.deep = nn.Sequential(nn.Linear(14, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())
            self.head = nn.Linear(30, 1)

        def forward(self, dense, c1, c2):
            x0 = torch.cat([self.e1(c1), self.e2(c2), dense], 1)
            x = x0
            for c in self.cross:
                x = x0 * c(x) + x
            return torch.sigmoid(self.head(torch.cat([x, self.deep(x0)], 1)))

    n = "dcn-v2"; r = rng_for(n); torch.manual_seed(12)
    torch_export(out, n, DCN(), [("dense", dense(r, 6), 0), ("c1", ids(r, 20, ()), 20),
                                 ("c2", ids(r, 30, ()), 30)], ["ctr"], kind="family",
                 expect_ops=["Gather", "Mul", "Add", "Concat", "Sigmoid"])

    # Wide & Deep: a linear part on the floats plus one-wide embeddings of
    # the ids (the wide side), a deep MLP on embeddings and floats, summed.
    class WideDeep(nn.Module):
        def __init__(self):
            super().__init__()
            self.wide = nn.Linear(5, 1)
            self.wa, self.wb = emb(25, 1), emb(15, 1)
            self.da, self.db = emb(25, 6), emb(15, 6)
            self.deep = nn.Sequential(nn.Linear(17, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                                      nn.Linear(16, 1))

        def forward(self, dense, a, b):
            wide = self.wide(dense) + self.wa(a) + self.wb(b)
            deep = self.deep(torch.cat([self.da(a), self.db(b), dense], 1))
            return torch.sigmoid(wide + deep)

    n = "wide-deep"; r = rng_for(n); torch.manual_seed(13)
    torch_export(out, n, WideDeep(), [("dense", dense(r, 5), 0), ("a", ids(r, 25, ()), 25),
                                      ("b", ids(r, 15, ()), 15)], ["prob"], kind="family",
                 expect_ops=["Gather", "Add", "Concat", "Sigmoid"])

    # Two-tower retrieval: user tower (id, a history of item ids averaged
    # through the item table, floats) and item tower (id, floats), each
    # L2-normalised by ReduceSum/Sqrt/Div; score = sum of the product.
    class TwoTower(nn.Module):
        def __init__(self):
            super().__init__()
            self.user = emb(30, 8)
            self.item = emb(50, 8)
            self.um = nn.Sequential(nn.Linear(8 + 8 + 4, 16), nn.ReLU(), nn.Linear(16, 8))
            self.im = nn.Sequential(nn.Linear(8 + 3, 16), nn.ReLU(), nn.Linear(16, 8))

        def forward(self, user_id, user_hist, user_feats, item_id, item_feats):
            u = self.um(torch.cat([self.user(user_id), self.item(user_hist).mean(1), user_feats], 1))
            v = self.im(torch.cat([self.item(item_id), item_feats], 1))
            u = u / torch.sqrt((u * u).sum(1, keepdim=True))
            v = v / torch.sqrt((v * v).sum(1, keepdim=True))
            return (u * v).sum(1, keepdim=True)

    n = "two-tower"; r = rng_for(n); torch.manual_seed(14)
    torch_export(out, n, TwoTower(),
                 [("user_id", ids(r, 30, ()), 30), ("user_hist", ids(r, 50, (5,)), 50),
                  ("user_feats", dense(r, 4), 0), ("item_id", ids(r, 50, ()), 50),
                  ("item_feats", dense(r, 3), 0)], ["score"], kind="family",
                 expect_ops=["Gather", "ReduceMean", "ReduceSum", "Sqrt", "Div", "Mul"])

    # DeepFM: the factorisation-machine term 0.5 * ((sum_f e)^2 - sum_f e^2)
    # over the stacked [B, 3, d] embeddings (ReduceSum, Pow, Sub), a deep
    # MLP on them flattened, a linear part, sigmoid.
    class DeepFM(nn.Module):
        def __init__(self):
            super().__init__()
            self.es = nn.ModuleList([emb(n, 6) for n in (15, 25, 35)])
            self.lin = nn.Linear(4, 1)
            self.deep = nn.Sequential(nn.Linear(18 + 4, 16), nn.ReLU(), nn.Linear(16, 1))

        def forward(self, dense, f0, f1, f2):
            e = torch.stack([m(f) for m, f in zip(self.es, (f0, f1, f2))], 1)
            fm = 0.5 * (e.sum(1).pow(2) - e.pow(2).sum(1)).sum(1, keepdim=True)
            deep = self.deep(torch.cat([e.flatten(1), dense], 1))
            return torch.sigmoid(self.lin(dense) + fm + deep)

    n = "deepfm"; r = rng_for(n); torch.manual_seed(19)
    torch_export(out, n, DeepFM(), [("dense", dense(r, 4), 0), ("f0", ids(r, 15, ()), 15),
                                    ("f1", ids(r, 25, ()), 25), ("f2", ids(r, 35, ()), 35)],
                 ["ctr"], expect_ops=["Gather", "ReduceSum", "Pow", "Sub", "Flatten"])

    # A trading model over a window of ticks: per-tick projection (MatMul
    # of rank 3 by constants), one head of self-attention
    # softmax(q k^T / sqrt(d)) v by batched MatMuls, a residual, LayerNorm,
    # the mean over time, a head; plus the position's float features.
    class TickAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(6, 16)
            self.q, self.k, self.v = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 16)
            self.ln = nn.LayerNorm(16)
            self.head = nn.Sequential(nn.Linear(16 + 3, 16), nn.GELU(), nn.Linear(16, 2))

        def forward(self, ticks, position):
            h = self.proj(ticks)
            a = torch.softmax(torch.matmul(self.q(h), self.k(h).transpose(1, 2)) / 4.0, -1)
            h = self.ln(h + torch.matmul(a, self.v(h)))
            return self.head(torch.cat([h.mean(1), position], 1))

    n = "tick-attention"; r = rng_for(n); torch.manual_seed(20)
    torch_export(out, n, TickAttention(), [("ticks", dense(r, (8, 6)), 0), ("position", dense(r, 3), 0)],
                 ["signal"], opset=17,
                 expect_ops=["MatMul", "Transpose", "Softmax", "LayerNormalization", "ReduceMean"])

    # Ids sent as floats (one float tensor for everything, as older
    # clients do), cast to int64 in the graph: the float input is an id input.
    class FloatIds(nn.Module):
        def __init__(self):
            super().__init__()
            self.e = emb(30, 4)
            self.mlp = nn.Sequential(nn.Linear(4 + 8, 16), nn.ReLU(), nn.Linear(16, 1))

        def forward(self, dense, ids_f):
            return torch.sigmoid(self.mlp(torch.cat([dense, self.e(ids_f.long()).flatten(1)], 1)))

    n = "ctr-float-ids"; r = rng_for(n); torch.manual_seed(17)
    torch_export(out, n, FloatIds(), [("dense", dense(r, 4), 0),
                                      ("ids_f", f32(ids(r, 30, (2,))), 30)], ["ctr"],
                 expect_ops=["Cast", "Gather", "Flatten"])

    # The ops MLPs already used, inside a graph with ids: BatchNormalization
    # with trained statistics, Dropout (eval), LeakyRelu, Clip (ReLU6), Tanh,
    # and a Softmax head over three classes.
    class LegacyOps(nn.Module):
        def __init__(self):
            super().__init__()
            self.e = emb(12, 4)
            self.fc1 = nn.Linear(4 + 6, 16)
            self.bn = nn.BatchNorm1d(16)
            with torch.no_grad():
                self.bn.running_mean.uniform_(-0.5, 0.5)
                self.bn.running_var.uniform_(0.25, 2.0)
                self.bn.weight.uniform_(0.5, 1.5)
                self.bn.bias.uniform_(-0.2, 0.2)
            self.fc2 = nn.Linear(16, 8)
            self.fc3 = nn.Linear(8, 3)
            self.drop = nn.Dropout(0.3)

        def forward(self, dense, ids):
            h = self.drop(F.leaky_relu(self.bn(self.fc1(torch.cat([self.e(ids), dense], 1))), 0.1))
            h = torch.tanh(F.relu6(self.fc2(h) * 3.0))
            return torch.softmax(self.fc3(h), 1)

    n = "ctr-legacy-ops"; r = rng_for(n); torch.manual_seed(18)
    torch_export(out, n, LegacyOps(), [("dense", dense(r, 6), 0), ("ids", ids(r, 12, ()), 12)],
                 ["probs"], expect_ops=["BatchNormalization", "LeakyRelu", "Clip", "Tanh", "Softmax"])

    # Multi-task: one shared bottom, two heads, two named outputs.
    class MultiTask(nn.Module):
        def __init__(self):
            super().__init__()
            self.ad = emb(20, 6)
            self.shared = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())
            self.click = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1))
            self.conv = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1))

        def forward(self, dense, ad_id):
            h = self.shared(torch.cat([dense, self.ad(ad_id)], 1))
            return torch.sigmoid(self.click(h)), torch.sigmoid(self.conv(h))

    n = "multitask"; r = rng_for(n); torch.manual_seed(15)
    torch_export(out, n, MultiTask(), [("dense", dense(r, 10), 0), ("ad_id", ids(r, 20, ()), 20)],
                 ["click", "conversion"], kind="family", expect_ops=["Gather", "Sigmoid"])

    # Residual MLP (a trading signal): blocks x + fc2(gelu(fc1(ln(x)))),
    # LayerNorm last. Opset 17 exports nn.LayerNorm as LayerNormalization;
    # opset 13/14 as ReduceMean/Sub/Pow/Sqrt/Div. GELU comes out as Erf
    # (exact) or Tanh (approximate) arithmetic at every opset torch has.
    class Block(nn.Module):
        def __init__(self, approx):
            super().__init__()
            self.ln = nn.LayerNorm(32)
            self.fc1 = nn.Linear(32, 64)
            self.fc2 = nn.Linear(64, 32)
            self.approx = approx

        def forward(self, x):
            return x + self.fc2(F.gelu(self.fc1(self.ln(x)), approximate=self.approx))

    class ResMLP(nn.Module):
        def __init__(self, approx):
            super().__init__()
            self.inp = nn.Linear(16, 32)
            self.blocks = nn.Sequential(Block(approx), Block(approx))
            self.ln = nn.LayerNorm(32)
            self.head = nn.Linear(32, 3)
            with torch.no_grad():  # trained-looking affine LayerNorm parameters
                for m in self.modules():
                    if isinstance(m, nn.LayerNorm):
                        m.weight.uniform_(0.5, 1.5)
                        m.bias.uniform_(-0.2, 0.2)

        def forward(self, features):
            return self.head(self.ln(self.blocks(self.inp(features))))

    for n, approx, opset, kind, exp, absent in (
            ("resmlp", "none", 17, "family", ["LayerNormalization", "Erf"], []),
            ("resmlp-tanh", "tanh", 17, "model", ["LayerNormalization", "Tanh"], ["Erf"]),
            ("resmlp-opset13", "none", 13, "model", ["ReduceMean", "Pow", "Sqrt", "Div", "Erf"],
             ["LayerNormalization"]),
            ("resmlp-opset14-tanh", "tanh", 14, "model", ["ReduceMean", "Pow", "Sqrt", "Tanh"],
             ["LayerNormalization", "Erf"])):
        r = rng_for("resmlp"); torch.manual_seed(16)  # the same weights and inputs in every form
        torch_export(out, n, ResMLP(approx), [("features", dense(r, 16), 0)], ["signal"],
                     opset=opset, kind=kind, expect_ops=exp, absent_ops=absent)


# ---------------------------------------------------------------------------
# op-level models

def gen_torch_ops(out):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Fn(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, *a):
            return self.fn(*a)

    def op(name, fn, ins, outs, opset=13, expect=(), **kw):
        torch_export(out, name, Fn(fn), ins, outs, opset=opset, expect_ops=expect, **kw)

    # two computed tensors with broadcasting: a [3,4] against b [4] made
    # [1,4] by Unsqueeze, and c [3,1] against the same (both sides broadcast)
    for o, fn in (("Add", torch.add), ("Sub", torch.sub), ("Mul", torch.mul),
                  ("Div", torch.div), ("Pow", torch.pow), ("Max", torch.maximum),
                  ("Min", torch.minimum)):
        n = "op-" + o.lower(); r = rng_for(n)
        if o == "Pow":    # positive bases, exponents in [-2, 2]
            a = f32(r.uniform(0.5, 2.0, (ROWS, 3, 4))); c = f32(r.uniform(0.5, 2.0, (ROWS, 3, 1)))
            b = f32(r.uniform(-2.0, 2.0, (ROWS, 4)))
        elif o == "Div":  # divisors away from zero
            a = dense(r, (3, 4)); c = dense(r, (3, 1)); b = away_from_zero(r, (ROWS, 4))
        else:
            a = dense(r, (3, 4)); c = dense(r, (3, 1)); b = dense(r, 4)
        op(n, lambda a, b, c, fn=fn: (fn(a, b.unsqueeze(1)), fn(c, b.unsqueeze(1))),
           [("a", a, 0), ("b", b, 0), ("c", c, 0)], ["y", "z"], expect=[o, "Unsqueeze"])

    n = "op-matmul-rank3"; r = rng_for(n)
    op(n, lambda a, b: torch.matmul(a, b), [("a", dense(r, (3, 4)), 0), ("b", dense(r, (4, 5)), 0)],
       ["y"], expect=["MatMul"])
    n = "op-matmul-rank4"; r = rng_for(n)
    op(n, lambda a, b: torch.matmul(a, b),
       [("a", dense(r, (2, 3, 4)), 0), ("b", dense(r, (2, 4, 5)), 0)], ["y"], expect=["MatMul"])

    # a Linear on a [B, 3, 6] input: MatMul of rank 3 by a constant matrix
    n = "op-matmul-rank3-const"; r = rng_for(n); torch.manual_seed(21)
    op(n, nn.Linear(6, 5), [("x", dense(r, (3, 6)), 0)], ["y"], expect=["MatMul"])

    n = "op-transpose"; r = rng_for(n)
    op(n, lambda x: (x.permute(0, 2, 3, 1), x.transpose(1, 2)), [("x", dense(r, (2, 3, 4)), 0)],
       ["y", "z"], expect=["Transpose"])

    n = "op-reshape"; r = rng_for(n)
    op(n, lambda x: (x.reshape(x.shape[0], 3, 4) * 2.0, x.view(-1, 2, 6)),
       [("x", dense(r, 12), 0)], ["y", "z"], expect=["Reshape"])

    n = "op-flatten"; r = rng_for(n)
    op(n, lambda x: torch.flatten(x, 1) + 1.0, [("x", dense(r, (3, 4)), 0)], ["y"],
       expect=["Flatten"])

    n = "op-squeeze-unsqueeze"; r = rng_for(n)
    op(n, lambda x: (x.squeeze(1) * 3.0, x.squeeze(1).unsqueeze(2) - 1.0, x.unsqueeze(-1)),
       [("x", dense(r, (1, 4)), 0)], ["y", "z", "w"], expect=["Squeeze", "Unsqueeze"])

    # Concat of computed tensors on axes 1 and -1, and a computed batch
    # size concatenated with constants into a Reshape's target shape
    n = "op-concat"; r = rng_for(n)
    op(n, lambda x, y: (torch.cat([x, torch.relu(y), x * 2.0], 1),
                        torch.cat([x.reshape(x.shape[0], 2, 2), y.reshape(y.shape[0], 2, 3)], -1)),
       [("x", dense(r, 4), 0), ("y", dense(r, 6), 0)], ["y0", "y1"], expect=["Concat", "Reshape"])

    n = "op-slice"; r = rng_for(n)
    op(n, lambda x, t: (x[:, 2:8:2], x[:, -3:], t[:, 1:, 1:3]),
       [("x", dense(r, 10), 0), ("t", dense(r, (3, 4)), 0)], ["y0", "y1", "y2"], expect=["Slice"])

    n = "op-split"; r = rng_for(n)
    op(n, lambda x: tuple(torch.split(x, [3, 7], 1)) + tuple(x.reshape(-1, 2, 5).chunk(2, 1)),
       [("x", dense(r, 10), 0)], ["s0", "s1", "c0", "c1"], expect=["Split"])

    # ids cast to float features; floats truncated toward zero by an int
    # round trip (values kept a quarter away from integers)
    n = "op-cast"; r = rng_for(n)
    xf = f32(r.integers(-20, 20, (ROWS, 4)) + r.uniform(0.25, 0.75, (ROWS, 4)))
    op(n, lambda k, j, x: (k.float() * 0.5, j.float() - 1.0, x.to(torch.int32).float()),
       [("k", ids(r, 1000, (3,)), 0), ("j", ids(r, 1000, (2,), np.int32), 0), ("x", xf, 0)],
       ["kf", "jf", "xt"], expect=["Cast"])
    n = "op-cast-int-out"; r = rng_for(n)
    xf = f32(r.integers(-20, 20, (ROWS, 4)) + r.uniform(0.25, 0.75, (ROWS, 4)))
    op(n, lambda x: x.to(torch.int64), [("x", xf, 0)], ["y"], expect=["Cast"])

    # a 0/1 mask input made boolean by Cast, choosing between two tensors
    n = "op-where"; r = rng_for(n)
    op(n, lambda m, a, b: torch.where(m.bool(), a, b * 0.5),
       [("mask", ids(r, 2, (4,)), 0), ("a", dense(r, 4), 0), ("b", dense(r, 4), 0)], ["y"],
       expect=["Where", "Cast"])

    for o, fn in (("ReduceSum", torch.sum), ("ReduceMean", torch.mean),
                  ("ReduceMax", lambda x, d, keepdim: torch.amax(x, d, keepdim=keepdim))):
        n = "op-" + o.lower(); r = rng_for(n)
        op(n, lambda x, fn=fn: (fn(x, 2, keepdim=True), fn(x, 1, keepdim=False),
                                fn(x, -1, keepdim=False)),
           [("x", dense(r, (3, 4)), 0)], ["k1", "k0", "last"], expect=[o])

    n = "op-layernorm"; r = rng_for(n); torch.manual_seed(22)
    ln = nn.LayerNorm(8)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-0.5, 0.5)

    class LNBoth(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln = ln

        def forward(self, x, t):
            return self.ln(x), self.ln(t)

    # rank 2 and rank 3 inputs, opset 17: LayerNormalization
    torch_export(out, n, LNBoth(), [("x", dense(r, 8, 2.0), 0), ("t", dense(r, (3, 8)), 0)],
                 ["y", "z"], opset=17, expect_ops=["LayerNormalization"])
    n = "op-layernorm-decomposed"; r = rng_for("op-layernorm")
    torch_export(out, n, LNBoth(), [("x", dense(r, 8, 2.0), 0), ("t", dense(r, (3, 8)), 0)],
                 ["y", "z"], opset=13, expect_ops=["ReduceMean", "Sub", "Pow", "Sqrt", "Div"],
                 absent_ops=["LayerNormalization"])

    n = "op-erf"; r = rng_for(n)
    op(n, lambda x: torch.erf(x), [("x", dense(r, 10, 2.0), 0)], ["y"], expect=["Erf"])
    n = "op-gelu"; r = rng_for(n)
    op(n, lambda x: F.gelu(x), [("x", dense(r, 10, 3.0), 0)], ["y"], expect=["Erf"])
    n = "op-gelu-tanh"; r = rng_for(n)
    op(n, lambda x: F.gelu(x, approximate="tanh"), [("x", dense(r, 10, 3.0), 0)], ["y"],
       expect=["Tanh"])

    n = "op-exp"; r = rng_for(n)
    op(n, torch.exp, [("x", dense(r, 10), 0)], ["y"], expect=["Exp"])
    n = "op-log"; r = rng_for(n)
    op(n, torch.log, [("x", f32(r.uniform(0.05, 20.0, (ROWS, 10))), 0)], ["y"], expect=["Log"])
    n = "op-sqrt"; r = rng_for(n)
    op(n, torch.sqrt, [("x", f32(r.uniform(0.01, 20.0, (ROWS, 10))), 0)], ["y"], expect=["Sqrt"])
    n = "op-reciprocal"; r = rng_for(n)
    op(n, torch.reciprocal, [("x", away_from_zero(r, (ROWS, 10)), 0)], ["y"],
       expect=["Reciprocal"])
    n = "op-neg"; r = rng_for(n)
    op(n, torch.neg, [("x", dense(r, 10), 0)], ["y"], expect=["Neg"])
    n = "op-abs"; r = rng_for(n)
    op(n, torch.abs, [("x", dense(r, 10), 0)], ["y"], expect=["Abs"])

    # on [B, 3, 4, 5]: axis 1, the last, and a middle one
    for o, fn in (("Softmax", F.softmax), ("LogSoftmax", F.log_softmax)):
        for tag, axis in (("axis1", 1), ("axis-last", -1), ("axis2", 2)):
            n = f"op-{o.lower()}-{tag}"; r = rng_for(n)
            op(n, lambda x, fn=fn, axis=axis: fn(x, dim=axis), [("x", dense(r, (3, 4, 5), 2.0), 0)],
               ["y"], expect=[o])


def graph_model(name, nodes, inits, ins, outs, opset):
    """ins / outs: [(tensor, dtype, per-row dims)]."""
    g = helper.make_graph(
        nodes, name.replace("-", "_"),
        [helper.make_tensor_value_info(t, ONNX_DT[d], ["N"] + list(s)) for t, d, s in ins],
        [helper.make_tensor_value_info(t, ONNX_DT[d], ["N"] + list(s)) for t, d, s in outs],
        initializer=inits)
    m = helper.make_model(g, producer_name="quiver-gen-graph-models",
                          opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def gen_fusion_hazards(out):
    """Graphs where a fused or in-place step would be wrong: a value that a
    tail (GELU, LayerNorm, residual Add) could overwrite in place is also
    read elsewhere, an embedding gathered into a Concat is used again, a
    residual adds the caller's input, a dense output feeds two steps."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.use_deterministic_algorithms(True)

    class Hazards(nn.Module):
        def __init__(self, kind):
            super().__init__()
            self.kind = kind
            self.e = nn.Embedding(20, 4)
            self.fc = nn.Linear(8, 8)
            self.fc2 = nn.Linear(8, 8)
            self.fc3 = nn.Linear(12, 8)
            self.ln = nn.LayerNorm(8)
            with torch.no_grad():
                self.ln.weight.uniform_(0.5, 1.5)
                self.ln.bias.uniform_(-0.2, 0.2)

        def forward(self, x, ids=None):
            h = self.fc(x)
            k = self.kind
            if k == "gelu-and-raw":      # GELU of h and h itself
                return F.gelu(h), h * 1.0 + 0.5
            if k == "ln-and-raw":        # LayerNorm of h, and h read after it
                return self.ln(h) + h, h
            if k == "residual-input":    # the caller's x in a residual Add
                return x + self.fc2(F.gelu(h)), x * 2.0
            if k == "fanout":            # h into two dense steps and a residual
                return self.fc2(h) + h, torch.relu(self.fc3(torch.cat([h, self.e(ids)], 1)))
            if k == "emb-twice":         # lookup into a Concat and read again
                e = self.e(ids)
                c = self.fc3(torch.cat([x, e], 1))
                return c, (e * e).sum(1, keepdim=True)
            if k == "self-add":          # both operands the same dense output
                return F.gelu(h + h), self.ln(h + h)
            raise ValueError(k)

    # Ids through views and a cast before their lookups, as exports write
    # them: [B, 1] viewed as [B], [B, 2] flattened, int32 made int64; one id
    # input into two tables (its bound is the smaller table's).
    class IdViews(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Embedding(30, 4)
            self.b = nn.Embedding(10, 3)
            self.c = nn.Embedding(25, 2)

        def forward(self, one, pair, small):
            u = self.a(one.view(-1))
            v = self.c(torch.flatten(pair, 1)).flatten(1)
            w = self.b(small.long().squeeze(1)) + self.a(small.long().squeeze(1))[:, :3]
            return torch.cat([u, v, w], 1)

    n = "ids-views"; r = rng_for(n); torch.manual_seed(50)
    torch_export(out, n, IdViews(), [("one", ids(r, 30, (1,)), 30), ("pair", ids(r, 25, (2,)), 25),
                                     ("small", ids(r, 10, (1,), np.int32), 10)], ["y"],
                 expect_ops=["Gather", "Reshape", "Cast", "Squeeze"])

    # The lookup as DLRM code often writes it: the [B, k] ids flattened
    # into one [B*k] vector (the batch merged with a row axis, by a shape
    # subgraph that slices an empty piece of the shape), looked up, and
    # viewed back as [B, k*d].
    class FlatLookup(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Embedding(25, 2)

        def forward(self, pair, x):
            return torch.cat([self.c(pair.flatten()).reshape(pair.shape[0], -1), x], 1)

    n = "ids-flatten-batch"; r = rng_for(n); torch.manual_seed(51)
    torch_export(out, n, FlatLookup(), [("pair", ids(r, 25, (3,)), 25), ("x", dense(r, 2), 0)],
                 ["y"], expect_ops=["Gather", "Reshape", "Slice", "Shape"])

    # Gather of a computed tensor at a constant scalar index (x[:, 1]):
    # the axis disappears
    class Select(nn.Module):
        def forward(self, x, t):
            return x[:, 1] * 2.0, t[:, :, 2] + 1.0, t[:, 0] - 1.0

    n = "op-gather-select"; r = rng_for(n)
    torch_export(out, n, Select(), [("x", dense(r, 5), 0), ("t", dense(r, (3, 4)), 0)],
                 ["y", "z", "w"], expect_ops=["Gather"])

    for i, kind in enumerate(["gelu-and-raw", "ln-and-raw", "residual-input", "fanout",
                              "emb-twice", "self-add"]):
        n = "fuse-" + kind; r = rng_for(n); torch.manual_seed(40 + i)
        torch_export(out, n, Hazards(kind), [("x", dense(r, 8), 0), ("ids", ids(r, 20, ()), 20)]
                     if kind in ("fanout", "emb-twice") else [("x", dense(r, 8), 0)],
                     ["y", "z"], opset=17)


def gen_spec_ops(out):
    # Gather on an embedding table with int64 and int32 ids, negative ids
    # counting from the end (ONNX Gather; torch's Embedding has no such form)
    for dt, npdt in (("int64", np.int64), ("int32", np.int32)):
        n = f"op-gather-{dt}"; r = rng_for(n)
        table = f32(r.standard_normal((10, 4)) * 0.5)
        idx = r.integers(-10, 10, (ROWS, 3)).astype(npdt)
        idx[0] = [-10, 9, -1]  # both ends of the range
        m = graph_model(n, [helper.make_node("Gather", ["table", "ids"], ["y"], name="lookup", axis=0)],
                         [numpy_helper.from_array(table, "table")],
                         [("ids", dt, [3])], [("y", "float32", [3, 4])], 13)
        write_good(out, n, m, [("ids", idx, 10)], [("y", np.take(table, idx, axis=0))],
                   expect_ops=["Gather"])

    # ReduceSum/Mean/Max at opset 18, where every reduce takes axes as an
    # input (checked by onnx.checker only where the onnx module knows opset 18)
    for o, fn in (("ReduceSum", np.sum), ("ReduceMean", np.mean), ("ReduceMax", np.max)):
        n = f"op-{o.lower()}-opset18"; r = rng_for(n)
        x = dense(r, (3, 4))
        nodes = [helper.make_node(o, ["x", "ax2"], ["k1"], name="r_keep", keepdims=1),
                 helper.make_node(o, ["x", "ax1"], ["k0"], name="r_drop", keepdims=0)]
        inits = [numpy_helper.from_array(np.array([2], np.int64), "ax2"),
                 numpy_helper.from_array(np.array([1], np.int64), "ax1")]
        m = graph_model(n, nodes, inits, [("x", "float32", [3, 4])],
                         [("k1", "float32", [3, 1]), ("k0", "float32", [4])], 18)
        xd = x.astype(np.float64)
        write_good(out, n, m, [("x", x, 0)],
                   [("k1", fn(xd, axis=2, keepdims=True)), ("k0", fn(xd, axis=1))],
                   expect_ops=[o], check=onnx.defs.onnx_opset_version() >= 18)

    # LayerNormalization over the last two axes (axis=-2) of [B, 3, 4]
    n = "op-layernorm-axis-2"; r = rng_for(n)
    x = dense(r, (3, 4), 2.0)
    sc = f32(r.uniform(0.5, 1.5, (3, 4))); bi = f32(r.uniform(-0.5, 0.5, (3, 4)))
    m = graph_model(n, [helper.make_node("LayerNormalization", ["x", "sc", "bi"], ["y"], name="ln",
                                          axis=-2, epsilon=1e-5)],
                     [numpy_helper.from_array(sc, "sc"), numpy_helper.from_array(bi, "bi")],
                     [("x", "float32", [3, 4])], [("y", "float32", [3, 4])], 17)
    xd = x.astype(np.float64)
    mu = xd.mean(axis=(1, 2), keepdims=True)
    var = ((xd - mu) ** 2).mean(axis=(1, 2), keepdims=True)
    write_good(out, n, m, [("x", x, 0)], [("y", (xd - mu) / np.sqrt(var + 1e-5) * sc + bi)],
               expect_ops=["LayerNormalization"])


# ---------------------------------------------------------------------------
# Bad models: refused at load, the message naming the node

def gen_bad(out):
    def hm(name, nodes, inits, ins, outs, opset=13):
        return graph_model(name, nodes, inits, ins, outs, opset)

    n = "bad-add-shapes"
    m = hm(n, [helper.make_node("Add", ["a", "b"], ["y"], name="add_mismatch")], [],
           [("a", "float32", [3]), ("b", "float32", [4])], [("y", "float32", [4])])
    write_bad(out, n, m, ["add_mismatch"], "[B,3] + [B,4] do not broadcast")

    n = "bad-matmul-inner"
    m = hm(n, [helper.make_node("MatMul", ["a", "b"], ["y"], name="bmm_mismatch")], [],
           [("a", "float32", [3, 4]), ("b", "float32", [5, 2])], [("y", "float32", [3, 2])])
    write_bad(out, n, m, ["bmm_mismatch"], "[B,3,4] @ [B,5,2]: inner 4 vs 5")

    n = "bad-unknown-op"
    m = hm(n, [helper.make_node("Gather", ["t", "ids"], ["e"], name="lookup", axis=0),
               helper.make_node("FrobnicateOp", ["e", "x"], ["y"], name="frob0")],
           [numpy_helper.from_array(f32(np.ones((5, 4))), "t")],
           [("ids", "int64", []), ("x", "float32", [4])], [("y", "float32", [4])])
    write_bad(out, n, m, ["frob0"], "made-up op after an embedding lookup")

    n = "bad-gather-computed-table"
    m = hm(n, [helper.make_node("Relu", ["x"], ["t"], name="relu0"),
               helper.make_node("Gather", ["t", "ids"], ["y"], name="gather_computed", axis=0)],
           [], [("x", "float32", [4]), ("ids", "int64", [])], [("y", "float32", [4])])
    write_bad(out, n, m, ["gather_computed"], "lookup of request ids in a computed table "
                                              "(along the batch: rows would mix)")

    n = "bad-reshape-size"
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape0"),
             helper.make_node("Gather", ["s", "zero"], ["b"], name="batch0", axis=0),
             helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"], name="unsq0"),
             helper.make_node("Concat", ["b1", "five"], ["shp"], name="cat_shape", axis=0),
             helper.make_node("Reshape", ["x", "shp"], ["y"], name="reshape_bad")]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "ax0"),
             numpy_helper.from_array(np.array([5], np.int64), "five")]
    m = hm(n, nodes, inits, [("x", "float32", [12])], [("y", "float32", [5])])
    write_bad(out, n, m, ["reshape_bad"], "12 floats a row reshaped to [B, 5]")

    # ops that would mix the rows of a batch
    n = "bad-softmax-batch-axis"
    m = hm(n, [helper.make_node("Softmax", ["x"], ["y"], name="softmax_batch", axis=0)], [],
           [("x", "float32", [4])], [("y", "float32", [4])])
    write_bad(out, n, m, ["softmax_batch"], "softmax across the rows of a batch")

    n = "bad-reduce-batch-axis"
    m = hm(n, [helper.make_node("ReduceSum", ["x", "ax"], ["y"], name="sum_batch", keepdims=1)],
           [numpy_helper.from_array(np.array([0], np.int64), "ax")],
           [("x", "float32", [4])], [("y", "float32", [4])])
    write_bad(out, n, m, ["sum_batch"], "sum over the rows of a batch")

    n = "bad-output-batch-moved"
    m = hm(n, [helper.make_node("Transpose", ["x"], ["y"], name="transpose_batch", perm=[1, 0])],
           [], [("x", "float32", [4])], [("y", "float32", [4])])
    write_bad(out, n, m, ["transpose_batch", "'y'"], "an output whose batch is not its first axis")

    # the batch merged with a row axis by Reshape to [-1] (as torch's
    # flatten() writes it), then computed on, or given out as is
    n = "bad-merged-batch-computed"
    m = hm(n, [helper.make_node("Reshape", ["x", "flat"], ["f"], name="flatten_all"),
               helper.make_node("Relu", ["f"], ["g"], name="relu_merged"),
               helper.make_node("Reshape", ["g", "back"], ["y"], name="unflatten")],
           [numpy_helper.from_array(np.array([-1], np.int64), "flat"),
            numpy_helper.from_array(np.array([-1, 3], np.int64), "back")],
           [("x", "float32", [3])], [("y", "float32", [3])])
    write_bad(out, n, m, ["relu_merged", "flatten_all"], "Relu across a batch merged with its rows")

    n = "bad-merged-batch-output"
    m = hm(n, [helper.make_node("Reshape", ["ids", "flat"], ["y"], name="flatten_out")],
           [numpy_helper.from_array(np.array([-1], np.int64), "flat")],
           [("ids", "int64", [2])], [("y", "int64", [])])
    write_bad(out, n, m, ["flatten_out", "'y'"], "an output of [B*2] for [B, 2] ids")

    n = "bad-input-batch-second"
    g = helper.make_graph(
        [helper.make_node("Gather", ["t", "ids"], ["e"], name="lookup", axis=0),
         helper.make_node("Add", ["e", "x"], ["y"], name="add0")], n.replace("-", "_"),
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, "N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(f32(np.ones((5, 4))), "t")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    write_bad(out, n, m, ["'x'"], "an input whose batch is not its first axis")

    n = "bad-gather-float-ids"
    m = hm(n, [helper.make_node("Gather", ["t", "ids"], ["y"], name="lookup_float", axis=0)],
           [numpy_helper.from_array(f32(np.ones((5, 4))), "t")],
           [("ids", "float32", [])], [("y", "float32", [4])])
    write_bad(out, n, m, ["lookup_float"], "float ids")


# ---------------------------------------------------------------------------

def write_repo(out):
    repo = os.path.join(out, "repo")
    if os.path.isdir(repo):
        shutil.rmtree(repo)
    by_name = {g["name"]: g for g in good}
    for fam in FAMILIES:
        g = by_name[fam]
        d = os.path.join(repo, fam, "1")
        os.makedirs(d)
        shutil.copyfile(os.path.join(out, g["onnx"]), os.path.join(d, "model.onnx"))
        for t in g["inputs"]:
            shutil.copyfile(os.path.join(out, t["npy"]), os.path.join(d, f"in.{t['name']}.npy"))
        for t in g["outputs"]:
            shutil.copyfile(os.path.join(out, t["npy"]), os.path.join(d, f"out.{t['name']}.npy"))


def shape_str(s):
    return "x".join(str(d) for d in s) if s else "-"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_graph_models.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    np.seterr(all="raise", under="ignore")

    gen_families(out)
    gen_torch_ops(out)
    gen_fusion_hazards(out)
    gen_spec_ops(out)
    gen_bad(out)
    write_repo(out)

    names = [g["name"] for g in good] + [b["name"] for b in bad]
    assert len(names) == len(set(names)), "duplicate model names"
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"rows": ROWS, "good": good, "bad": bad}, f, indent=1)
    with open(os.path.join(out, "manifest.tsv"), "w") as f:
        for g in good:
            f.write(f"model\t{g['name']}\t{g['rows']}\t{g['rtol']:g}\t{g['atol']:g}"
                    f"\t{len(g['inputs'])}\t{len(g['outputs'])}\n")
            for t in g["inputs"]:
                f.write(f"in\t{t['name']}\t{t['dtype']}\t{shape_str(t['shape'])}"
                        f"\t{t['index_bound']}\n")
            for t in g["outputs"]:
                f.write(f"out\t{t['name']}\t{t['dtype']}\t{shape_str(t['shape'])}\n")
        for b in bad:
            f.write(f"bad\t{b['name']}\t{'|'.join(b['error'])}\n")
    # meson's stamp: written last so a failed run is re-run
    with open(os.path.join(out, "stamp"), "w") as f:
        f.write(f"{len(good)} good, {len(bad)} bad\n")


if __name__ == "__main__":
    main()
