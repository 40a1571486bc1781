#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Generates MLflow model directories for quiver's MLmodel loader.

Usage: gen_mlflow.py OUTDIR

Each directory is laid out the way MLflow 2.x's mlflow.onnx.save_model and
mlflow.xgboost.save_model write it (MLmodel, conda.yaml, python_env.yaml,
requirements.txt, the model file under the flavor's `data` path), written
here with PyYAML because MLflow itself is not packaged by Debian. The MLmodel
texts follow MLflow's own output: flavors in key order, the signature's
inputs/outputs as JSON strings inside YAML.

Writes into OUTDIR:
  repo/<name>/1/        a quiverd repository:
     mlp-onnx           torch MLP exported to ONNX; onnx + python_function
                        flavors; named tensor signature
     xgb-json           XGBoost binary:logistic saved as JSON; xgboost +
                        python_function flavors; column ("double") signature
     xgb-ubj            the same booster saved as UBJSON; tensor signature
     onnx-nosig         no signature; the flavor's data under a sub-folder
     onnx-pyfunc-only   only a python_function flavor (loader_module mlflow.onnx)
     bad-missing-file   MLmodel names model.onnx, which is not there
     bad-yaml           MLmodel is not valid YAML
     bad-flavor         an sklearn model (no flavor quiver serves)
     bad-sig-dtype      signature says float64
     bad-sig-shape      signature says 15 features, the model has 16
     bad-sig-name       signature names an input the model lacks
     bad-sig-columns    7 "double" columns for 8 features
     bad-dotdot         data: ../../elsewhere/model.onnx
  late/                 an MLflow directory for `quiverctl load --path`
  expect.json           per model: "ok" with the reference files, or the
                        substrings the load error must hold
References: x.npy and y.npy beside each good model, y from torch (float64)
or xgboost's own predict(); never from quiver.
"""
import json
import os
import shutil
import sys

import numpy as np
import yaml

ROWS = 64
FEATS_MLP = 16
FEATS_XGB = 8


def requirements(out, pkgs):
    with open(os.path.join(out, "requirements.txt"), "w") as f:
        f.write("mlflow==2.9.2\n" + "".join(p + "\n" for p in pkgs))
    with open(os.path.join(out, "conda.yaml"), "w") as f:
        yaml.safe_dump({"channels": ["conda-forge"],
                        "dependencies": ["python=3.11.2", "pip<=23.0.1",
                                         {"pip": ["mlflow==2.9.2"] + pkgs}],
                        "name": "mlflow-env"}, f, default_flow_style=False)
    with open(os.path.join(out, "python_env.yaml"), "w") as f:
        yaml.safe_dump({"python": "3.11.2", "build_dependencies": ["pip==23.0.1"],
                        "dependencies": ["-r requirements.txt"]}, f,
                       default_flow_style=False)


def tensor_spec(dtype, shape, name=None):
    s = {"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}
    if name:
        s["name"] = name
    return s


def mlmodel(out, flavors, inputs=None, outputs=None):
    doc = {"artifact_path": "model", "flavors": flavors,
           "mlflow_version": "2.9.2",
           "model_uuid": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
           "utc_time_created": "2024-03-01 12:00:00.000000"}
    if inputs is not None:
        doc["signature"] = {"inputs": json.dumps(inputs),
                            "outputs": json.dumps(outputs) if outputs is not None else None,
                            "params": None}
    with open(os.path.join(out, "MLmodel"), "w") as f:
        yaml.safe_dump(doc, f, default_flow_style=False)


def onnx_flavors(data="model.onnx", pyfunc=True, native=True):
    fl = {}
    if native:
        fl["onnx"] = {"code": None, "data": data, "onnx_version": "1.12.0",
                      "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
    if pyfunc:
        fl["python_function"] = {"data": data, "env": {"conda": "conda.yaml",
                                                       "virtualenv": "python_env.yaml"},
                                 "loader_module": "mlflow.onnx", "python_version": "3.11.2"}
    return fl


def xgb_flavors(fmt):
    return {"python_function": {"data": f"model.{fmt}", "env": {"conda": "conda.yaml",
                                                               "virtualenv": "python_env.yaml"},
                                "loader_module": "mlflow.xgboost",
                                "python_version": "3.11.2"},
            "xgboost": {"code": None, "data": f"model.{fmt}", "model_class":
                        "xgboost.core.Booster", "model_format": fmt, "xgb_version": "1.7.4"}}


def make_mlp(path):
    import torch
    torch.manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Linear(FEATS_MLP, 24), torch.nn.ReLU(),
                              torch.nn.Linear(24, 1), torch.nn.Sigmoid())
    x = torch.randn(ROWS, FEATS_MLP)
    torch.onnx.export(net, x[:1], path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=13)
    with torch.no_grad():
        y = net.double()(x.double()).numpy().astype(np.float32)
    return x.numpy(), y


def make_xgb():
    import xgboost as xgb
    r = np.random.default_rng(11)
    x = r.normal(size=(400, FEATS_XGB)).astype(np.float32)
    lab = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] > 0).astype(np.float32)
    b = xgb.train({"objective": "binary:logistic", "max_depth": 4, "eta": 0.3,
                   "base_score": 0.5}, xgb.DMatrix(x, label=lab), num_boost_round=12)
    xt = x[:ROWS]
    return b, xt, b.predict(xgb.DMatrix(xt)).astype(np.float32)


def good(repo, name, expect, x, y):
    d = os.path.join(repo, name, "1")
    np.save(os.path.join(d, "x.npy"), x)
    np.save(os.path.join(d, "y.npy"), y)
    expect[name] = {"ok": True}


def vdir(repo, name):
    d = os.path.join(repo, name, "1")
    os.makedirs(d)
    return d


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_mlflow.py OUTDIR")
    out = sys.argv[1]
    repo = os.path.join(out, "repo")
    for p in (repo, os.path.join(out, "late")):
        if os.path.isdir(p):
            shutil.rmtree(p)
    os.makedirs(repo)
    expect = {}
    sig_in = [tensor_spec("float32", [-1, FEATS_MLP], "x")]
    sig_out = [tensor_spec("float32", [-1, 1], "y")]

    d = vdir(repo, "mlp-onnx")
    x, y = make_mlp(os.path.join(d, "model.onnx"))
    mlmodel(d, onnx_flavors(), sig_in, sig_out)
    requirements(d, ["onnx==1.12.0", "onnxruntime==1.16.3"])
    good(repo, "mlp-onnx", expect, x, y)

    booster, xt, yt = make_xgb()
    for fmt in ("json", "ubj"):
        d = vdir(repo, f"xgb-{fmt}")
        booster.save_model(os.path.join(d, f"model.{fmt}"))
        if fmt == "json":
            cols = [{"type": "double", "name": f"f{i}", "required": True}
                    for i in range(FEATS_XGB)]
            mlmodel(d, xgb_flavors(fmt), cols, [tensor_spec("float32", [-1])])
        else:
            mlmodel(d, xgb_flavors(fmt), [tensor_spec("float32", [-1, FEATS_XGB])],
                    [tensor_spec("float32", [-1])])
        requirements(d, ["xgboost==1.7.4"])
        good(repo, f"xgb-{fmt}", expect, xt, yt.reshape(-1, 1))

    d = vdir(repo, "onnx-nosig")
    os.makedirs(os.path.join(d, "artifacts"))
    shutil.copyfile(os.path.join(repo, "mlp-onnx", "1", "model.onnx"),
                    os.path.join(d, "artifacts", "net.onnx"))
    mlmodel(d, onnx_flavors("artifacts/net.onnx"))
    requirements(d, ["onnx==1.12.0"])
    good(repo, "onnx-nosig", expect, x, y)

    d = vdir(repo, "onnx-pyfunc-only")
    shutil.copyfile(os.path.join(repo, "mlp-onnx", "1", "model.onnx"),
                    os.path.join(d, "model.onnx"))
    mlmodel(d, onnx_flavors(native=False), sig_in, sig_out)
    requirements(d, ["onnx==1.12.0"])
    good(repo, "onnx-pyfunc-only", expect, x, y)

    def bad(name, words, flavors=None, inputs=None, outputs=None, copy=True, text=None):
        d = vdir(repo, name)
        if copy:
            shutil.copyfile(os.path.join(repo, "mlp-onnx", "1", "model.onnx"),
                            os.path.join(d, "model.onnx"))
        requirements(d, ["onnx==1.12.0"])
        if text is not None:
            with open(os.path.join(d, "MLmodel"), "w") as f:
                f.write(text)
        else:
            mlmodel(d, flavors or onnx_flavors(), inputs, outputs)
        expect[name] = {"ok": False, "error": words}

    bad("bad-missing-file", ["MLmodel", "model.onnx", "No such file"], copy=False,
        inputs=sig_in, outputs=sig_out)
    bad("bad-yaml", ["MLmodel", "YAML", "line"],
        text="flavors:\n  onnx:\n    data: model.onnx\n   bad: [unclosed\n")
    bad("bad-flavor", ["no flavor quiver serves", "sklearn"], flavors={
        "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
        "sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle",
                    "sklearn_version": "1.2.1"}})
    bad("bad-sig-dtype", ["signature input 'x'", "float64", "float32"],
        inputs=[tensor_spec("float64", [-1, FEATS_MLP], "x")], outputs=sig_out)
    bad("bad-sig-shape", ["signature input 'x'", "shape [-1, 15]", "[-1, 16]"],
        inputs=[tensor_spec("float32", [-1, 15], "x")], outputs=sig_out)
    bad("bad-sig-name", ["signature input 'features'", "no such input"],
        inputs=[tensor_spec("float32", [-1, FEATS_MLP], "features")], outputs=sig_out)
    bad("bad-sig-columns", ["signature input", "7 columns", "'x'", "16"],
        inputs=[{"type": "double", "name": f"c{i}"} for i in range(7)], outputs=sig_out)
    bad("bad-dotdot", ["data '../../elsewhere/model.onnx'", "leaves the model directory"],
        flavors=onnx_flavors("../../elsewhere/model.onnx"))

    late = os.path.join(out, "late")
    os.makedirs(late)
    shutil.copyfile(os.path.join(repo, "mlp-onnx", "1", "model.onnx"),
                    os.path.join(late, "model.onnx"))
    mlmodel(late, onnx_flavors(), sig_in, sig_out)
    requirements(late, ["onnx==1.12.0"])
    np.save(os.path.join(late, "x.npy"), x)
    np.save(os.path.join(late, "y.npy"), y)

    with open(os.path.join(out, "expect.json"), "w") as f:
        json.dump(expect, f, indent=1, sort_keys=True)
    with open(os.path.join(out, "stamp"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
