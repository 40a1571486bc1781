#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The quiver Python module against a real quiverd, shared memory and UDP.

Answers are checked against the references the model generators wrote with
torch (tests/models: trade-mlp/<v>/x.npy, y.npy; tests/graph: the
multi-tensor families' in.T.npy, out.T.npy), never against quiver itself.

Usage: test_client.py QUIVERD MODELS_REPO GRAPH_REPO PYI
(PYTHONPATH must hold the built module.)
"""
import ast
import os
import sys
import tempfile
import threading

import numpy as np

import qvdaemon

try:
    import quiver
except ImportError as e:
    print(f"skip: the quiver module is not built ({e})")
    sys.exit(qvdaemon.SKIP)

RTOL, ATOL = 1e-4, 1e-5


def close(got, want):
    np.testing.assert_allclose(got, want.reshape(got.shape), rtol=RTOL, atol=ATOL)


def raises(cls, fn, *words, status=None):
    try:
        fn()
    except cls as e:
        msg = str(e)
        for w in words:
            assert w in msg, (w, msg)
        if status is not None:
            assert e.status == status, (e.status, status, msg)
        return e
    raise AssertionError(f"no {cls.__name__} raised")


def load_graph(vdir, info):
    ins = {t.name: np.load(os.path.join(vdir, f"in.{t.name}.npy")) for t in info.inputs}
    outs = {t.name: np.load(os.path.join(vdir, f"out.{t.name}.npy")) for t in info.outputs}
    return ins, outs


def check_lookup(c, trade):
    info = c.lookup("trade-mlp")
    assert info.name == "trade-mlp" and info.version == 2 and info.max_batch >= 1, info
    assert len(info.inputs) == 1 and len(info.outputs) == 1, info
    x = np.load(os.path.join(trade, "2", "x.npy"))
    assert info.inputs[0].dtype == np.float32, info
    assert info.inputs[0].shape == (None, x.shape[1]), info
    mt = c.lookup("multitask")
    assert [t.name for t in mt.inputs] == ["dense", "ad_id"], mt
    assert mt.inputs[1].dtype == np.int64 and mt.inputs[1].index_bound == 20, mt
    assert len(mt.outputs) == 2, mt
    print("ok lookup: names, dtypes, shapes, version, max_batch")
    return info


def check_trade(c, trade, what):
    x = np.load(os.path.join(trade, "2", "x.npy"))
    y = np.load(os.path.join(trade, "2", "y.npy")).reshape(len(x), -1)
    one = c.infer("trade-mlp", x[0])
    assert one.shape == (y.shape[1],) and one.dtype == np.float32, one.shape
    close(one, y[0])
    out = c.infer("trade-mlp", x)
    assert out.shape == y.shape, (out.shape, y.shape)
    close(out, y)
    # More rows than one request carries: split and answered in order.
    big = np.concatenate([x] * 5)
    close(c.infer("trade-mlp", big), np.concatenate([y] * 5))
    # Non-contiguous views and Fortran order are converted, same answers.
    close(c.infer("trade-mlp", x[::3]), y[::3])
    close(c.infer("trade-mlp", np.asfortranarray(x[:17])), y[:17])
    # Big-endian float32 casts safely.
    close(c.infer("trade-mlp", x[:5].astype(">f4")), y[:5])
    # A one-input model takes a dict too.
    close(c.infer("trade-mlp", {"X": x[:4]}), y[:4])
    print(f"ok {what} trade-mlp: one row, {len(x)} rows, {len(big)} rows split, views, "
          "byte order, dict")


def check_multi(c, graph, what):
    for fam in ("multitask", "dlrm", "two-tower"):
        info = c.lookup(fam)
        ins, outs = load_graph(os.path.join(graph, fam, "1"), info)
        got = c.infer(fam, ins)
        if len(info.outputs) == 1:
            assert isinstance(got, np.ndarray)
            close(got, next(iter(outs.values())))
        else:
            assert isinstance(got, dict) and set(got) == set(outs), (got.keys(), outs.keys())
            for k in outs:
                assert got[k].dtype == outs[k].dtype, (k, got[k].dtype)
                close(got[k], outs[k])
        # one row, no batch dimension
        row = {k: v[7] for k, v in ins.items()}
        got1 = c.infer(fam, row)
        for k in outs:
            g = got1[k] if isinstance(got1, dict) else got1
            close(g, outs[k][7])
        # int32 ids for int64 inputs: NumPy's safe cast
        conv = {k: (v.astype(np.int32) if v.dtype == np.int64 else v) for k, v in ins.items()}
        got32 = c.infer(fam, conv)
        for k in outs:
            g = got32[k] if isinstance(got32, dict) else got32
            close(g, outs[k])
    print(f"ok {what} multi-tensor models: dict inputs, dict outputs, one row, int32 ids")


def check_errors(c, trade, graph, what):
    x = np.load(os.path.join(trade, "2", "x.npy"))
    e = raises(quiver.UnknownModelError, lambda: c.infer("no-such-model", x), "no-such-model",
               status=quiver.UNKNOWN_MODEL)
    assert isinstance(e, quiver.Error)
    raises(quiver.UnknownModelError, lambda: c.lookup("no-such-model"),
           status=quiver.UNKNOWN_MODEL)
    raises(quiver.ShapeError, lambda: c.infer("trade-mlp", x[:, :31]), "'X'", "(256, 31)",
           "(rows, 32)", status=quiver.BAD_SHAPE)
    raises(quiver.ShapeError, lambda: c.infer("trade-mlp", x.reshape(16, 16, 32)), "(16, 16, 32)")
    raises(quiver.ShapeError, lambda: c.infer("trade-mlp", x[:0]), "no rows")
    e = raises(quiver.DtypeError, lambda: c.infer("trade-mlp", x.astype(np.float64)), "'X'",
               "float64", "float32", status=quiver.BAD_REQUEST)
    assert isinstance(e, TypeError)
    raises(quiver.DtypeError, lambda: c.infer("trade-mlp", x[0].tolist()), "float64")
    raises(TypeError, lambda: c.infer(3, x), "str")
    info = c.lookup("multitask")
    ins, _ = load_graph(os.path.join(graph, "multitask", "1"), info)
    raises(quiver.ShapeError, lambda: c.infer("multitask", ins["dense"]), "2 inputs", "dict")
    raises(quiver.ShapeError, lambda: c.infer("multitask", {"dense": ins["dense"]}),
           "'ad_id' missing")
    raises(quiver.ShapeError, lambda: c.infer("multitask", {**ins, "bogus": ins["dense"]}),
           "'bogus'", "dense")
    raises(quiver.ShapeError, lambda: c.infer("multitask", {"dense": ins["dense"][:5],
                                                             "ad_id": ins["ad_id"][:6]}),
           "row")
    raises(quiver.DtypeError, lambda: c.infer("multitask", {**ins, "ad_id":
                                                             ins["ad_id"].astype(np.float32)}),
           "'ad_id'", "int64")
    raises(quiver.DtypeError, lambda: c.infer("multitask", {**ins, "ad_id":
                                                             ins["ad_id"].astype(np.uint64)}),
           "'ad_id'")
    bad = dict(ins)
    bad["ad_id"] = ins["ad_id"].copy()
    bad["ad_id"][3] = 10 ** 6
    raises(quiver.BadRequestError, lambda: c.infer("multitask", bad), "multitask",
           status=quiver.BAD_REQUEST)
    # the client still serves after every refusal
    close(c.infer("trade-mlp", x[:2]), np.load(os.path.join(trade, "2", "y.npy"))[:2])
    print(f"ok {what} errors: unknown model, shape, rank, no rows, dtype, dict keys, "
          "row counts, id out of range")


def check_async(c, trade, graph, what):
    x = np.load(os.path.join(trade, "2", "x.npy"))
    y = np.load(os.path.join(trade, "2", "y.npy")).reshape(len(x), -1)
    ids = {}
    for i in range(0, 40, 4):
        ids[c.submit("trade-mlp", x[i:i + 4])] = i
    ids[c.submit("trade-mlp", x[50], request_id=777)] = 50
    assert 777 in ids
    raises(ValueError, lambda: c.submit("trade-mlp", x[0], request_id=777), "in flight")
    info = c.lookup("multitask")
    ins, outs = load_graph(os.path.join(graph, "multitask", "1"), info)
    mid = c.submit("multitask", {k: v[:9] for k, v in ins.items()})
    bad = {k: v[:2].copy() for k, v in ins.items()}
    bad["ad_id"][0] = 999
    bid = c.submit("multitask", bad)
    assert c.inflight >= 1
    got = {}
    for _ in range(10000):
        for r in c.poll(timeout_ms=100):
            got[r.request_id] = r
        if len(got) == len(ids) + 2:
            break
    assert len(got) == len(ids) + 2, (len(got), len(ids))
    assert c.inflight == 0
    for rid, i in ids.items():
        r = got[rid]
        assert r.status == quiver.OK and r.error is None and r.version == 2, r
        if i == 50:
            close(r.output, y[50])
        else:
            close(r.output, y[i:i + 4])
    r = got[mid]
    assert r.status == quiver.OK and set(r.output) == set(outs)
    for k in outs:
        close(r.output[k], outs[k][:9])
    r = got[bid]
    assert r.status == quiver.BAD_REQUEST and r.output is None, r
    assert isinstance(r.error, quiver.BadRequestError) and r.error.status == quiver.BAD_REQUEST
    assert c.poll() == []
    big = np.concatenate([x] * 10)
    raises(quiver.ShapeError, lambda: c.submit("trade-mlp", big), "fit one request")
    print(f"ok {what} async: {len(ids) + 2} requests submitted and polled, ids, errors as results")


def check_threads(sock):
    """Two clients in two threads at once: the GIL is released while each waits."""
    errs = []

    def work():
        try:
            with quiver.Client(sock) as c:
                x = np.ones((1, 32), np.float32)
                first = c.infer("trade-mlp", x)
                for _ in range(300):
                    assert np.array_equal(c.infer("trade-mlp", x), first)
        except Exception as e:  # noqa: BLE001 - reported below
            errs.append(e)
    ts = [threading.Thread(target=work) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs, errs
    print("ok two clients in two threads")


def check_stubs(pyi):
    tree = ast.parse(open(pyi).read())
    names = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    names |= {t.target.id for t in tree.body if isinstance(t, ast.AnnAssign)}
    public = {n for n in dir(quiver) if not n.startswith("_")}
    missing = public - names
    assert not missing, f"not in quiver.pyi: {sorted(missing)}"
    base = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "_ClientBase")
    meths = {f.name for f in base.body if isinstance(f, ast.FunctionDef)}
    for cls in (quiver.Client, quiver.UdpClient):
        for m in ("lookup", "infer", "submit", "poll", "close", "inflight"):
            assert hasattr(cls, m) and m in meths, (cls, m)
    print(f"ok quiver.pyi declares all {len(public)} public names")


def main():
    quiverd, models_repo, graph_repo, pyi = sys.argv[1:5]
    trade = os.path.join(models_repo, "trade-mlp")
    if not os.path.exists(os.path.join(trade, "2", "y.npy")) or \
            not os.path.exists(os.path.join(graph_repo, "multitask", "1", "model.onnx")):
        print("skip: no generated models")
        return qvdaemon.SKIP
    check_stubs(pyi)
    raises(quiver.UnavailableError, lambda: quiver.Client("/nonexistent/quiverd.sock"),
           "connect", status=quiver.UNAVAILABLE)
    raises(ValueError, lambda: quiver.UdpClient("not an address"), "PORT")
    with tempfile.TemporaryDirectory(prefix="qv-py-") as tmp:
        repo = qvdaemon.make_repo(os.path.join(tmp, "repo"), trade,
                                  *(os.path.join(graph_repo, f)
                                    for f in ("multitask", "dlrm", "two-tower")))
        with qvdaemon.Daemon(quiverd, repo, tmp) as d:
            with quiver.Client(d.sock, name="pytest") as c:
                check_lookup(c, trade)
                check_trade(c, trade, "shm")
                check_multi(c, graph_repo, "shm")
                check_errors(c, trade, graph_repo, "shm")
                check_async(c, trade, graph_repo, "shm")
            raises(ValueError, lambda: c.infer("trade-mlp", np.zeros(32, np.float32)), "closed")
            u = quiver.UdpClient(d.udp, timeout_ms=2000)
            check_lookup(u, trade)
            check_trade(u, trade, "udp")
            check_multi(u, graph_repo, "udp")
            check_errors(u, trade, graph_repo, "udp")
            check_async(u, trade, graph_repo, "udp")
            u.close()
            check_threads(d.sock)

            # The daemon dies: a waiting call says UNAVAILABLE, never hangs.
            c = quiver.Client(d.sock, dead_after_ms=100)
            x = np.load(os.path.join(trade, "2", "x.npy"))
            c.infer("trade-mlp", x[:1])
            rid = c.submit("trade-mlp", x[:1])
            c.poll(timeout_ms=1000)
            d.kill()
            raises(quiver.UnavailableError, lambda: c.infer("trade-mlp", x[:1]),
                   status=quiver.UNAVAILABLE)
            raises(quiver.UnavailableError, lambda: c.submit("trade-mlp", x[:1]),
                   status=quiver.UNAVAILABLE)
            u = quiver.UdpClient(d.udp, timeout_ms=200)
            raises(quiver.TimeoutError, lambda: u.lookup("trade-mlp"),
                   status=quiver.DEADLINE_EXCEEDED)
            c.close()
            del rid
            print("ok daemon gone: UnavailableError (shm), TimeoutError (udp)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
