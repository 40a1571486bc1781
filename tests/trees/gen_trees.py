#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Generate XGBoost test models and their reference outputs.

Usage: gen_trees.py OUTDIR           the small models, bad ones, repo/, bench
       gen_trees.py OUTDIR --large   only the large model (1000 trees, depth 8)

Trains small models on random data with Debian's python3-xgboost, for every
objective and booster quiver serves, saves each with Booster.save_model as
NAME.json and NAME.ubj, and writes:

  NAME.x.npy     float32 [rows, num_feature]: random rows, rows whose values
                 sit exactly on split thresholds, NaN (missing) and +-inf
  NAME.y.npy     float32 [rows, width]: what xgboost's predict() gives
  manifest.tsv   good  NAME  num_feature  width  check  (check: abs = 1e-6
                 absolute, rel = 1e-5 relative, exact = identical)
                 bad   FILE  substring the load error must hold
  repo/          a quiverd repository: trees-bin/1/model.json,
                 trees-multi/1/model.ubj (with x.npy / y.npy beside them)
  bench-500x6    500 trees of depth 6 on 32 features (quiver-bench's model)
  large-1000x8   with --large, alone: 1000 trees of depth 8 (load time)

References: predict(DMatrix) for rows without infinities (a DMatrix refuses
them) and inplace_predict, the path XGBoosterPredictFromDense takes, for
rows with +-inf; both are asserted equal where both apply.
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
import xgboost as xgb

OUT = sys.argv[1]
LARGE = "--large" in sys.argv
os.makedirs(OUT, exist_ok=True)
manifest = []


def rng_for(name):
    # hash() is salted per process: derive the seed from the name itself
    return np.random.default_rng(sum(ord(c) * (i + 1) for i, c in enumerate(name)))


def thresholds(booster):
    """(feature, threshold) of every numerical split in the model."""
    d = json.loads(booster.save_raw("json"))
    gb = d["learner"]["gradient_booster"]
    trees = gb.get("model", gb.get("gbtree", {}).get("model", {})).get("trees", [])
    out = []
    for t in trees:
        for i, lc in enumerate(t["left_children"]):
            if lc != -1 and t["split_type"][i] == 0:
                out.append((t["split_indices"][i], t["split_conditions"][i]))
    return out


def test_rows(booster, nf, rng, cat_feats=(), n_cat=0, n_rand=48):
    x = rng.normal(0, 1, (n_rand, nf)).astype(np.float32)
    for f in cat_feats:
        x[:, f] = rng.integers(0, n_cat + 2, n_rand)  # also unseen categories
    th = thresholds(booster)
    rows = [x]
    if th:
        # rows exactly on thresholds (and one ulp either side): every split
        # of the first trees sees a value it must send the right way
        k = min(len(th), 64)
        on = rng.normal(0, 1, (k * 3, nf)).astype(np.float32)
        for i, (f, c) in enumerate(th[:k]):
            c = np.float32(c)
            for j, v in enumerate((c, np.nextafter(c, np.float32(-np.inf)),
                                   np.nextafter(c, np.float32(np.inf)))):
                on[i * 3 + j, :] = c if j == 0 else on[i * 3 + j, :]
                on[i * 3 + j, f] = v
        rows.append(on)
    miss = rng.normal(0, 1, (16, nf)).astype(np.float32)
    mask = rng.random((16, nf)) < 0.4
    miss[mask] = np.nan
    miss[0, :] = np.nan
    rows.append(miss)
    inf = rng.normal(0, 1, (8, nf)).astype(np.float32)
    inf[0, :] = np.inf
    inf[1, :] = -np.inf
    for i in range(2, 8):
        inf[i, rng.integers(0, nf)] = np.inf if i % 2 else -np.inf
    if n_cat:
        inf[:, list(cat_feats)] = rng.integers(0, n_cat, (8, len(cat_feats)))
        # categories no split lists: negative, fractional, past every set,
        # at and past 2^24, infinite (inplace_predict takes them all)
        odd = np.array([-1.5, -0.3, 0.5, 2.7, n_cat + 40, 1e7, 2 ** 24 - 1, 2 ** 24,
                        1e30, np.inf, -np.inf, 31, 32, 33, 63, 64], np.float32)
        cr = rng.normal(0, 1, (len(odd), nf)).astype(np.float32)
        for f in cat_feats:
            cr[:, f] = odd
        cr[0, :] = np.inf   # so the block goes through inplace_predict
        cr[:, 0] = np.inf
        rows.append(cr)
    rows.append(inf)
    return np.concatenate(rows).astype(np.float32)


def reference(booster, x, width, cat=False, gblinear=False):
    has_inf = np.isinf(x).any(axis=1)
    y = np.zeros((x.shape[0], width), np.float32)
    fin = ~has_inf
    kw = {"enable_categorical": True} if cat else {}
    ft = None
    if cat:
        ft = [t for t in booster.feature_types] if booster.feature_types else None
    dm = xgb.DMatrix(x[fin], feature_types=ft, **kw) if ft else xgb.DMatrix(x[fin])
    p = booster.predict(dm).astype(np.float32).reshape(int(fin.sum()), -1)
    y[fin] = p
    if has_inf.any():
        if gblinear:
            return x[fin], p  # inplace_predict has no gblinear path in 1.7
        q = booster.inplace_predict(x).astype(np.float32).reshape(x.shape[0], -1)
        # dart sums differently in the two paths (an ulp of the margin)
        np.testing.assert_allclose(q[fin], p, rtol=2e-6, atol=1e-6)
        y[has_inf] = q[has_inf]
    return x, y


def save(name, booster, x, y, check):
    booster.save_model(os.path.join(OUT, name + ".json"))
    booster.save_model(os.path.join(OUT, name + ".ubj"))
    np.save(os.path.join(OUT, name + ".x.npy"), x.astype(np.float32))
    np.save(os.path.join(OUT, name + ".y.npy"), y.astype(np.float32))
    manifest.append(f"good\t{name}\t{x.shape[1]}\t{y.shape[1]}\t{check}")


def train(name, params, nf=6, rows=400, rounds=8, label="binary", groups=None,
          missing=0.1, cat_feats=(), n_cat=0, check="rel", extra=None):
    rng = rng_for(name)
    x = rng.normal(0, 1, (rows, nf)).astype(np.float32)
    for f in cat_feats:
        x[:, f] = rng.integers(0, n_cat, rows)
    s = x[:, 0] + 0.5 * np.nan_to_num(x[:, 1]) - 0.25 * x[:, 2]
    if cat_feats:
        s = s + (x[:, cat_feats[0]] % 3 == 1)
    if label == "binary":
        y = (s + rng.normal(0, 0.5, rows) > 0).astype(np.float32)
    elif label == "prob":
        y = 1 / (1 + np.exp(-s))
    elif label == "count":
        y = rng.poisson(np.exp(0.3 * s)).astype(np.float32)
    elif label == "positive":
        y = np.exp(0.3 * s + rng.normal(0, 0.1, rows)).astype(np.float32)
    elif label == "multi":
        y = (np.digitize(s, [-0.5, 0.5])).astype(np.float32)
    elif label == "rank":
        y = np.clip(np.round(s + 1), 0, 3).astype(np.float32)
    elif label == "cox":
        t = np.exp(-0.3 * s) * rng.exponential(1, rows)
        y = np.where(rng.random(rows) < 0.8, t, -t).astype(np.float32)
    elif label == "two":
        y = np.stack([s, s * s], axis=1).astype(np.float32)
    else:
        y = (s + rng.normal(0, 0.3, rows)).astype(np.float32)
    if missing:
        m = rng.random((rows, nf)) < missing
        for f in cat_feats:
            m[:, f] = False
        x[m] = np.nan
    ft = None
    if cat_feats:
        ft = ["c" if f in cat_feats else "q" for f in range(nf)]
        dm = xgb.DMatrix(x, label=y, feature_types=ft, enable_categorical=True)
    else:
        dm = xgb.DMatrix(x, label=y)
    if groups:
        dm.set_group(groups)
    if extra:
        extra(dm, y)
    p = dict(params)
    p.setdefault("seed", 7)
    p.setdefault("nthread", 1)
    b = xgb.train(p, dm, rounds)
    xt = test_rows(b, nf, rng, cat_feats, n_cat)
    width = b.predict(xgb.DMatrix(x[:2], feature_types=ft, enable_categorical=bool(ft))).reshape(2, -1).shape[1]
    xt, yt = reference(b, xt, width, cat=bool(cat_feats), gblinear=p.get("booster") == "gblinear")
    save(name, b, xt, yt, check)
    return b


def aft(dm, y):
    lo = np.exp(y).astype(np.float32)
    hi = np.where(np.arange(len(y)) % 4 == 0, np.inf, lo).astype(np.float32)
    dm.set_float_info("label_lower_bound", lo)
    dm.set_float_info("label_upper_bound", hi)


def gen_good():
    d = {"max_depth": 3, "eta": 0.3}
    train("binary-logistic", {**d, "objective": "binary:logistic"}, check="abs")
    train("binary-logitraw", {**d, "objective": "binary:logitraw"})
    train("binary-hinge", {**d, "objective": "binary:hinge"}, check="exact")
    train("reg-squarederror", {**d, "objective": "reg:squarederror"}, label="reg")
    train("reg-squaredlogerror", {**d, "objective": "reg:squaredlogerror"}, label="positive")
    train("reg-logistic", {**d, "objective": "reg:logistic"}, label="prob", check="abs")
    train("reg-pseudohubererror", {**d, "objective": "reg:pseudohubererror"}, label="reg")
    train("reg-absoluteerror", {**d, "objective": "reg:absoluteerror"}, label="reg")
    train("count-poisson", {**d, "objective": "count:poisson"}, label="count")
    train("reg-gamma", {**d, "objective": "reg:gamma"}, label="positive")
    train("reg-tweedie", {**d, "objective": "reg:tweedie", "tweedie_variance_power": 1.3}, label="count")
    train("multi-softprob", {**d, "objective": "multi:softprob", "num_class": 3}, label="multi", check="abs")
    train("multi-softmax", {**d, "objective": "multi:softmax", "num_class": 3}, label="multi", check="exact")
    train("rank-pairwise", {**d, "objective": "rank:pairwise"}, label="rank", groups=[40] * 10)
    train("rank-ndcg", {**d, "objective": "rank:ndcg"}, label="rank", groups=[40] * 10)
    train("rank-map", {**d, "objective": "rank:map"}, label="binary", groups=[40] * 10)
    train("survival-cox", {**d, "objective": "survival:cox"}, label="cox")
    train("survival-aft", {**d, "objective": "survival:aft", "aft_loss_distribution": "normal"},
          label="reg", extra=aft)
    # a base_score given by hand, no estimation
    train("binary-logistic-base", {**d, "objective": "binary:logistic", "base_score": 0.3}, check="abs")
    # multi-target regression: one tree a target (tree_info 0, 1, 0, 1 ...)
    train("reg-two-targets", {**d, "objective": "reg:squarederror", "tree_method": "hist"},
          label="two")
    # dart: trees weighted by weight_drop
    dart = {**d, "booster": "dart", "rate_drop": 0.3, "skip_drop": 0.0, "sample_type": "weighted"}
    train("dart-logistic", {**dart, "objective": "binary:logistic"}, rounds=12, check="abs")
    train("dart-reg", {**dart, "objective": "reg:squarederror", "normalize_type": "forest"},
          label="reg", rounds=12)
    train("dart-softprob", {**dart, "objective": "multi:softprob", "num_class": 3}, label="multi",
          rounds=6, check="abs")
    # gblinear: weights and bias, missing features skipped
    lin = {"booster": "gblinear", "eta": 0.5, "lambda": 0.1}
    train("linear-reg", {**lin, "objective": "reg:squarederror"}, label="reg", rounds=10)
    train("linear-logistic", {**lin, "objective": "binary:logistic"}, rounds=10, check="abs")
    train("linear-softprob", {**lin, "objective": "multi:softprob", "num_class": 3}, label="multi",
          rounds=10, check="abs")
    train("linear-poisson", {**lin, "objective": "count:poisson"}, label="count", rounds=10)
    # random forests: num_parallel_tree trees a round
    rf = {**d, "num_parallel_tree": 4, "subsample": 0.8, "colsample_bynode": 0.8}
    train("forest-logistic", {**rf, "objective": "binary:logistic", "eta": 1.0}, rounds=1, check="abs")
    train("forest-boosted-softprob", {**rf, "objective": "multi:softprob", "num_class": 3},
          label="multi", rounds=3, check="abs")
    # categorical splits (partition and one-hot), with missing numericals
    cat = {**d, "tree_method": "hist", "max_cat_to_onehot": 1}
    train("cat-logistic", {**cat, "objective": "binary:logistic"}, nf=5, cat_feats=(3, 4), n_cat=40,
          check="abs", rounds=10)
    train("cat-onehot-reg", {**d, "tree_method": "hist", "max_cat_to_onehot": 64,
                             "objective": "reg:squarederror"}, nf=4, cat_feats=(2,), n_cat=5,
          label="reg")
    train("cat-softprob", {**cat, "objective": "multi:softprob", "num_class": 3}, nf=5,
          cat_feats=(4,), n_cat=70, label="multi", check="abs")
    # deeper trees, more features
    train("deep-logistic", {"max_depth": 10, "eta": 0.3, "objective": "binary:logistic",
                            "min_child_weight": 0}, nf=20, rows=3000, rounds=20, check="abs")


# ---------------------------------------------------------------------------
# A small UBJSON writer for the bad models (xgboost writes good ones): plain
# containers and, for lists of numbers, the typed/counted form xgboost uses.

def ubj(v):
    if isinstance(v, bool):
        return b"T" if v else b"F"
    if v is None:
        return b"Z"
    if isinstance(v, int):
        if -2 ** 31 <= v < 2 ** 31:
            return b"l" + struct.pack(">i", v)
        return b"L" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"d" + struct.pack(">f", v)
    if isinstance(v, str):
        s = v.encode()
        return b"S" + ubj(len(s)) + s
    if isinstance(v, list):
        if v and all(isinstance(e, float) for e in v):
            return b"[$d#" + ubj(len(v)) + b"".join(struct.pack(">f", e) for e in v)
        if v and all(isinstance(e, int) and not isinstance(e, bool) for e in v) and \
                all(-2 ** 31 <= e < 2 ** 31 for e in v):
            return b"[$l#" + ubj(len(v)) + b"".join(struct.pack(">i", e) for e in v)
        return b"[" + b"".join(ubj(e) for e in v) + b"]"
    if isinstance(v, dict):
        out = b"{"
        for k, e in v.items():
            s = k.encode()
            out += ubj(len(s)) + s + ubj(e)
        return out + b"}"
    raise TypeError(type(v))


def gen_bad():
    base = json.load(open(os.path.join(OUT, "multi-softprob.json")))
    cat = json.load(open(os.path.join(OUT, "cat-logistic.json")))

    def bad(name, d, expect, raw=None):
        data = raw if raw is not None else json.dumps(d).encode()
        with open(os.path.join(OUT, name + ".json"), "wb") as f:
            f.write(data)
        manifest.append(f"bad\t{name}.json\t{expect}")
        if raw is None:
            with open(os.path.join(OUT, name + ".ubj"), "wb") as f:
                f.write(ubj(d))
            manifest.append(f"bad\t{name}.ubj\t{expect}")

    def mut(src, fn):
        d = json.loads(json.dumps(src))
        fn(d)
        return d

    def tree(d, i):
        return d["learner"]["gradient_booster"]["model"]["trees"][i]

    def internal(t):
        return [i for i, c in enumerate(t["left_children"]) if c != -1]

    text = json.dumps(base).encode()
    bad("bad-truncated", None, "json", raw=text[: len(text) // 2])
    bad("bad-not-json", None, "json", raw=b"{ this is not json")
    bad("bad-empty-object", {}, "learner")

    def child_oob(d):
        t = tree(d, 2)
        t["left_children"][internal(t)[-1]] = 9999
    bad("bad-child-range", mut(base, child_oob), "tree 2 node")

    def cycle(d):
        t = tree(d, 1)
        n = internal(t)
        t["right_children"][n[-1]] = 0
    bad("bad-cycle", mut(base, cycle), "tree 1 node")

    def self_loop(d):
        t = tree(d, 0)
        t["left_children"][0] = 0
    bad("bad-self-loop", mut(base, self_loop), "tree 0 node 0")

    def feat_oob(d):
        t = tree(d, 3)
        t["split_indices"][internal(t)[0]] = 6
    bad("bad-feature-range", mut(base, feat_oob), "tree 3 node")

    def deep(d):
        # a chain of 70 splits: depth over 64
        n = 141
        t = tree(d, 0)
        t["left_children"] = [2 * i + 1 if i < 70 else -1 for i in range(n)]
        t["right_children"] = [2 * i + 2 if i < 70 else -1 for i in range(n)]
        # node 2i+1 is a leaf, 2i+2 continues the chain
        lc = [-1] * n
        rc = [-1] * n
        cur = 0
        nxt = 1
        for _ in range(70):
            lc[cur] = nxt
            rc[cur] = nxt + 1
            cur = nxt + 1
            nxt += 2
        t["left_children"], t["right_children"] = lc, rc
        for k in ("split_indices", "split_type", "default_left"):
            t[k] = [0] * n
        for k in ("split_conditions", "base_weights", "loss_changes", "sum_hessian"):
            t[k] = [0.5] * n
        t["parents"] = [2147483647] + [0] * (n - 1)
        t["tree_param"]["num_nodes"] = str(n)
    bad("bad-depth", mut(base, deep), "tree 0 node|depth")

    def tree_info(d):
        d["learner"]["gradient_booster"]["model"]["tree_info"][4] = 3
    bad("bad-tree-info", mut(base, tree_info), "tree 4|tree_info")

    def n_class(d):
        d["learner"]["learner_model_param"]["num_class"] = "2"
    bad("bad-num-class", mut(base, n_class), "tree_info|num_class")

    def absurd_nodes(d):
        tree(d, 0)["tree_param"]["num_nodes"] = "4000000000"
    bad("bad-absurd-nodes", mut(base, absurd_nodes), "tree 0")

    def absurd_feat(d):
        d["learner"]["learner_model_param"]["num_feature"] = "99999999999"
    bad("bad-absurd-features", mut(base, absurd_feat), "num_feature")

    def short_array(d):
        tree(d, 5)["split_conditions"].pop()
    bad("bad-short-array", mut(base, short_array), "tree 5")

    def num_trees(d):
        d["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"] = "1000"
    bad("bad-num-trees", mut(base, num_trees), "num_trees")

    def objective(d):
        d["learner"]["objective"]["name"] = "reg:quantileerror"
    bad("bad-objective", mut(base, objective), "objective")

    def booster(d):
        d["learner"]["gradient_booster"]["name"] = "gbforest"
    bad("bad-booster", mut(base, booster), "booster")

    def leaf_vec(d):
        tree(d, 0)["tree_param"]["size_leaf_vector"] = "3"
    bad("bad-leaf-vector", mut(base, leaf_vec), "tree 0")

    def nan_cond(d):
        t = tree(d, 2)
        t["split_conditions"][internal(t)[0]] = "nan"
    bad("bad-type", mut(base, nan_cond), "tree 2")

    def cat_range(d):
        t = tree(d, 0)
        t["categories_nodes"] = [internal(t)[0]]
        t["categories_segments"] = [0]
        t["categories_sizes"] = [5]
        t["categories"] = [1, 2]
        t["split_type"][internal(t)[0]] = 1
    bad("bad-cat-segments", mut(cat, cat_range), "tree 0 node")

    def cat_node(d):
        t = tree(d, 0)
        t["categories_nodes"] = [len(t["left_children"]) + 3]
        t["categories_segments"] = [0]
        t["categories_sizes"] = [1]
        t["categories"] = [1]
    bad("bad-cat-node", mut(cat, cat_node), "tree 0")

    def cat_huge(d):
        t = tree(d, 0)
        n = internal(t)[0]
        t["categories_nodes"] = [n]
        t["categories_segments"] = [0]
        t["categories_sizes"] = [1]
        t["categories"] = [1 << 30]
        t["split_type"][n] = 1
    bad("bad-cat-value", mut(cat, cat_huge), "tree 0 node")

    ub = open(os.path.join(OUT, "multi-softprob.ubj"), "rb").read()
    for name, raw in (("bad-ubj-truncated", ub[: len(ub) * 2 // 3]),
                      ("bad-ubj-count", ub[:20] + b"[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff"),
                      ("bad-ubj-marker", b"{L\x00\x00\x00\x00\x00\x00\x00\x01aQ}")):
        with open(os.path.join(OUT, name + ".ubj"), "wb") as f:
            f.write(raw)
        manifest.append(f"bad\t{name}.ubj\tubjson")


def gen_repo():
    repo = os.path.join(OUT, "repo")
    if os.path.isdir(repo):
        shutil.rmtree(repo)
    for model, src, ext in (("trees-bin", "binary-logistic", "json"),
                            ("trees-multi", "multi-softprob", "ubj")):
        d = os.path.join(repo, model, "1")
        os.makedirs(d)
        shutil.copyfile(os.path.join(OUT, f"{src}.{ext}"), os.path.join(d, f"model.{ext}"))
        for k in ("x", "y"):
            shutil.copyfile(os.path.join(OUT, f"{src}.{k}.npy"), os.path.join(d, f"{k}.npy"))


def gen_mixed():
    """ONNX steps for ensembles that mix trees and MLPs (test_trees_ensemble.c):
      mix-mlp6    6 -> 1: sigmoid(x W + b)
      mix-avg2    2 -> 1: the mean of its two inputs
      mix-head3   3 -> 2: relu(p W + b) on multi-softprob's probabilities
    and the references, from xgboost's predict() and numpy:
      mix-avg.y.npy   mean of binary-logistic and mix-mlp6, on mix.x.npy
      mix-chain.y.npy mix-head3 of multi-softprob, on mix.x.npy"""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return
    rng = np.random.default_rng(66)

    def model(name, nodes, inits, n_in, n_out):
        g = helper.make_graph(nodes, name.replace("-", "_"),
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", n_in])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", n_out])],
                              initializer=inits)
        m = helper.make_model(g, producer_name="quiver-gen-trees",
                              opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 7
        onnx.checker.check_model(m)
        onnx.save(m, os.path.join(OUT, name + ".onnx"))

    def init(name, a):
        return numpy_helper.from_array(np.asarray(a, np.float32), name)

    w1, b1 = rng.normal(0, 0.5, (6, 1)).astype(np.float32), rng.normal(0, 0.1, 1).astype(np.float32)
    model("mix-mlp6", [helper.make_node("Gemm", ["X", "W", "B"], ["H"]),
                       helper.make_node("Sigmoid", ["H"], ["Y"])],
          [init("W", w1), init("B", b1)], 6, 1)
    model("mix-avg2", [helper.make_node("MatMul", ["X", "W"], ["Y"])],
          [init("W", [[0.5], [0.5]])], 2, 1)
    w3, b3 = rng.normal(0, 1, (3, 2)).astype(np.float32), rng.normal(0, 0.1, 2).astype(np.float32)
    model("mix-head3", [helper.make_node("Gemm", ["X", "W", "B"], ["H"]),
                        helper.make_node("Relu", ["H"], ["Y"])],
          [init("W", w3), init("B", b3)], 3, 2)
    xm = rng.normal(0, 1, (64, 6)).astype(np.float32)
    tb = xgb.Booster(model_file=os.path.join(OUT, "binary-logistic.json"))
    tm = xgb.Booster(model_file=os.path.join(OUT, "multi-softprob.json"))
    pt = tb.predict(xgb.DMatrix(xm)).astype(np.float64)
    pm = 1 / (1 + np.exp(-(xm.astype(np.float64) @ w1 + b1)))[:, 0]
    np.save(os.path.join(OUT, "mix.x.npy"), xm)
    np.save(os.path.join(OUT, "mix-avg.y.npy"), ((pt + pm) / 2).astype(np.float32)[:, None])
    pp = tm.predict(xgb.DMatrix(xm)).astype(np.float64)
    np.save(os.path.join(OUT, "mix-chain.y.npy"), np.maximum(pp @ w3 + b3, 0).astype(np.float32))


def gen_bench():
    """The benchmark model: 500 trees of depth 6 on 32 features, binary:logistic."""
    rng = np.random.default_rng(500)
    x = rng.normal(0, 1, (4000, 32)).astype(np.float32)
    w = rng.normal(0, 1, 32)
    y = ((x @ w + rng.normal(0, 2, 4000)) > 0).astype(np.float32)
    b = xgb.train({"max_depth": 6, "eta": 0.05, "objective": "binary:logistic", "nthread": 2,
                   "tree_method": "hist", "seed": 1}, xgb.DMatrix(x, label=y), 500)
    xt = rng.normal(0, 1, (1024, 32)).astype(np.float32)
    yt = b.predict(xgb.DMatrix(xt)).reshape(-1, 1).astype(np.float32)
    save("bench-500x6", b, xt, yt, "abs")


def gen_large():
    rng = np.random.default_rng(1000)
    x = rng.normal(0, 1, (1500, 32)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] + np.sin(x[:, 2] * 3) + rng.normal(0, 1, 1500)).astype(np.float32)
    b = xgb.train({"max_depth": 8, "eta": 0.02, "objective": "reg:squarederror", "nthread": 2,
                   "tree_method": "hist", "max_bin": 32, "min_child_weight": 0, "seed": 1},
                  xgb.DMatrix(x, label=y), 1000)
    xt = rng.normal(0, 1, (256, 32)).astype(np.float32)
    yt = b.predict(xgb.DMatrix(xt)).reshape(-1, 1).astype(np.float32)
    save("large-1000x8", b, xt, yt, "rel")


if LARGE:
    gen_large()
else:
    gen_good()
    gen_bad()
    gen_repo()
    gen_mixed()
    gen_bench()
with open(os.path.join(OUT, "manifest.tsv"), "w") as f:
    f.write("\n".join(manifest) + "\n")
