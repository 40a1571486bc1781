#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""S3 model sources against a local SigV4-checking S3 server (s3_server.py):

- qv_s3_fetch (through s3fetch_cli): a repository copied byte for byte over
  paginated listings; a second fetch lists but gets nothing (size+ETag
  cache); a changed object is the only one fetched again; credentials from
  a shared credentials file and profile; a wrong secret, a wrong key id, no
  credentials, a missing prefix, bucket and object, and a bad URL are clear
  errors; a transfer the server cuts half-way leaves no version directory
  (first fetch) or the previous tree untouched (refresh), and no staging
  directory behind.
- quiverd --repo s3://... serves the fetched repository (outputs through
  shared memory against the torch reference); a restart fetches nothing; a
  wrong key makes it refuse to start with the store's message;
  quiverctl load NAME V --path s3://... loads a version from S3, and a
  missing one is refused with a clear error.

Usage: test_s3.py fetch|daemon S3FETCH_CLI S3_SERVER QUIVERD QUIVERCTL QUIVER_BENCH REPO
("fetch": the first part, "daemon": the second)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77
KEY, SECRET = "QVTESTKEY", "qv-test-secret/0123456789"


def run(*args, env=None, timeout=120):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def env_with(**kw):
    e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    e.update(kw)
    return e


def requests(root):
    try:
        with open(os.path.join(root, ".requests")) as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    open(os.path.join(root, ".requests"), "w").close()
    gets = [l for l in lines if l.startswith("GET ") and "list-type=2" not in l]
    lists = [l for l in lines if "list-type=2" in l]
    return gets, lists


def set_faults(root, f):
    with open(os.path.join(root, ".faults"), "w") as fh:
        json.dump(f, fh)


def same_tree(a, b):
    fa = sorted(os.path.relpath(os.path.join(d, n), a) for d, _, ns in os.walk(a) for n in ns)
    fb = sorted(os.path.relpath(os.path.join(d, n), b) for d, _, ns in os.walk(b) for n in ns
                if n != ".quiver-s3-manifest")
    assert fa == fb, (fa, fb)
    for r in fa:
        with open(os.path.join(a, r), "rb") as x, open(os.path.join(b, r), "rb") as y:
            assert x.read() == y.read(), r


def no_staging(cache):
    left = [os.path.join(d, n) for d, ns, _ in os.walk(cache) for n in ns
            if n.startswith(".quiver-s3-fetch")]
    assert not left, left


def wait_ready(d, log, what):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log.seek(0)
        if "quiverd ready" in log.read() or d.poll() is not None:
            break
        time.sleep(0.1)
    log.seek(0)
    text = log.read()
    if "quiverd ready" not in text:
        raise SystemExit(f"FAIL {what}: quiverd did not start:\n{text}")
    return text


def stop(d):
    if d.poll() is None:
        d.terminate()
        try:
            d.wait(30)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait()


def check_serving(bench, sock, vdir, tmp, what):
    import numpy as np
    out = os.path.join(tmp, "y.npy")
    p = run(bench, "--shm", sock, "--model", "trade-mlp", "--input", os.path.join(vdir, "x.npy"),
            "--output", out)
    assert p.returncode == 0, (what, p.stderr)
    got, want = np.load(out), np.load(os.path.join(vdir, "y.npy"))
    np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-4, atol=1e-5)
    print(f"ok {what}: {got.shape[0]} rows through shared memory match the torch reference")


def daemon(tmp, root, src, ep, good, nobj, quiverd, quiverctl, bench):
    if not os.access(quiverd, os.X_OK):
        print(f"skip: no quiverd at {quiverd}")
        return SKIP
    # quiverd --repo s3://...: fetched, served, restarted without refetching.
    sock = os.path.join(tmp, "quiverd.sock")
    qcache = os.path.join(tmp, "qcache")
    args = [quiverd, "--repo", "s3://models/repo", "--s3-endpoint", ep,
            "--s3-cache", qcache, "--socket", sock, "--foreground", "--cores", "1"]
    denv = dict(good)
    del denv["AWS_ENDPOINT_URL"]   # --s3-endpoint says where
    requests(root)
    for attempt in range(2):
        log = open(os.path.join(tmp, f"quiverd{attempt}.log"), "w+")
        d = subprocess.Popen(args, stderr=log, stdout=log, env=denv)
        try:
            text = wait_ready(d, log, f"start {attempt}")
            gets, lists = requests(root)
            if attempt == 0:
                assert len(gets) == nobj, gets
                assert f"{nobj} fetched" in text, text
            else:
                assert gets == [] and lists, (gets, lists)
                assert " 0 fetched" in text, text
            vdir = os.path.join(qcache, "models", "repo", "trade-mlp", "2")
            check_serving(bench, sock, vdir, tmp, f"quiverd --repo s3 (start {attempt})")
            if attempt == 1:
                c = run(quiverctl, "--socket", sock, "load", "trade-mlp", "7", "--path",
                        "s3://models/extra/trade-mlp/7", env=denv)
                assert c.returncode == 0, (c.stdout, c.stderr)
                assert os.path.isfile(os.path.join(qcache, "models", "extra",
                                                   "trade-mlp", "7", "model.onnx"))
                c = run(quiverctl, "--socket", sock, "--json", "routes", env=denv)
                assert c.returncode == 0 and "7" in c.stdout, c.stdout
                print("ok quiverctl load --path s3://...")
                c = run(quiverctl, "--socket", sock, "load", "trade-mlp", "8", "--path",
                        "s3://models/extra/trade-mlp/8", env=denv)
                assert c.returncode == 1 and "no objects under this prefix" in \
                    (c.stdout + c.stderr), (c.stdout, c.stderr)
                print("ok quiverctl load of a missing S3 version: "
                      + (c.stdout + c.stderr).strip()[:100])
        finally:
            stop(d)
            log.close()
    print("ok restart: listed, nothing fetched")

    # A wrong key: quiverd refuses to start, saying why.
    bdenv = dict(denv, AWS_SECRET_ACCESS_KEY="wrong")
    p = run(*[a if a != qcache else os.path.join(tmp, "qcache2") for a in args],
            env=bdenv, timeout=60)
    assert p.returncode != 0 and "SignatureDoesNotMatch" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(tmp, "qcache2", "models"))
    print("ok quiverd with a wrong key: " + [l for l in p.stderr.splitlines()
                                             if "Signature" in l][0][:120])

    # A local repository, no --s3-cache and no default cache (no QUIVER_S3_CACHE,
    # XDG_CACHE_HOME or HOME): an S3 load is refused, saying what is missing, and nothing
    # is fetched.
    sock2 = os.path.join(tmp, "quiverd-local.sock")
    log = open(os.path.join(tmp, "quiverd-local.log"), "w+")
    nocache = {k: v for k, v in good.items()
               if k not in ("QUIVER_S3_CACHE", "XDG_CACHE_HOME", "HOME")}
    d = subprocess.Popen([quiverd, "--repo", src, "--socket", sock2, "--foreground",
                          "--cores", "1"], stderr=log, stdout=log, env=nocache)
    try:
        wait_ready(d, log, "local repository")
        requests(root)
        c = run(quiverctl, "--socket", sock2, "load", "trade-mlp", "7", "--path",
                "s3://models/extra/trade-mlp/7", env=denv)
        out = c.stdout + c.stderr
        assert c.returncode == 1 and "quiverd has no S3 cache directory" in out and \
            "--s3-cache DIR" in out, (c.returncode, out)
        gets, lists = requests(root)
        assert gets == [] and lists == [], (gets, lists)
        c = run(quiverctl, "--socket", sock2, "--json", "routes", env=denv)
        assert c.returncode == 0 and '"version":7' not in c.stdout.replace(" ", ""), c.stdout
        print("ok an S3 load without --s3-cache: " + out.strip()[:100])
    finally:
        stop(d)
        log.close()
    return 0


def main():
    mode = sys.argv[1]
    cli, server, quiverd, quiverctl, bench, repo = sys.argv[2:8]
    if not os.path.isdir(os.path.join(repo, "trade-mlp")):
        print(f"skip: no generated model repository at {repo}")
        return SKIP
    with tempfile.TemporaryDirectory(prefix="qv-s3-") as tmp:
        root = os.path.join(tmp, "store")
        src = os.path.join(root, "models", "repo")
        shutil.copytree(repo, src)
        os.makedirs(os.path.join(root, "models", "extra", "trade-mlp"))
        shutil.copytree(os.path.join(repo, "trade-mlp", "1"),
                        os.path.join(root, "models", "extra", "trade-mlp", "7"))
        srv = subprocess.Popen(["/usr/bin/python3", server, root, KEY, SECRET, "--page", "3"],
                               stdout=subprocess.PIPE, text=True)
        try:
            port = int(srv.stdout.readline())
            ep = f"http://127.0.0.1:{port}"
            good = env_with(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                            AWS_ENDPOINT_URL=ep, AWS_REGION="eu-west-1")
            cache = os.path.join(tmp, "cache")
            local = os.path.join(cache, "models", "repo")
            nobj = sum(len(ns) for _, _, ns in os.walk(src))

            if mode == "daemon":
                return daemon(tmp, root, src, ep, good, nobj, quiverd, quiverctl, bench)

            # A repository fetched over several pages, byte for byte.
            p = run(cli, "s3://models/repo", cache, env=good)
            assert p.returncode == 0, p.stderr
            assert f"objects={nobj} fetched={nobj}" in p.stdout, p.stdout
            same_tree(src, local)
            gets, lists = requests(root)
            assert len(gets) == nobj and len(lists) == (nobj + 2) // 3, (len(gets), lists)
            print(f"ok fetch: {nobj} objects over {len(lists)} listing pages")

            # Again: listed, nothing fetched.
            p = run(cli, "s3://models/repo/", cache, env=good)
            assert p.returncode == 0 and "fetched=0 bytes=0" in p.stdout, (p.stdout, p.stderr)
            gets, _ = requests(root)
            assert gets == [], gets
            print("ok refetch: size and ETag match, no GetObject")

            # One object changed (same size, other bytes: the ETag tells).
            cfg = os.path.join(src, "trade-mlp", "1", "x.npy")
            data = bytearray(open(cfg, "rb").read())
            data[-1] ^= 0xff
            open(cfg, "wb").write(data)
            p = run(cli, "s3://models/repo", cache, env=good)
            assert p.returncode == 0 and "fetched=1 " in p.stdout, (p.stdout, p.stderr)
            gets, _ = requests(root)
            assert len(gets) == 1 and gets[0].endswith("trade-mlp/1/x.npy"), gets
            same_tree(src, local)
            data[-1] ^= 0xff
            open(cfg, "wb").write(data)
            p = run(cli, "s3://models/repo", cache, env=good)
            assert p.returncode == 0 and "fetched=1 " in p.stdout, (p.stdout, p.stderr)
            print("ok a changed object (same size) is the only one fetched again")

            # Credentials from a shared credentials file, profile by AWS_PROFILE.
            cred = os.path.join(tmp, "credentials")
            with open(cred, "w") as f:
                f.write(f"[default]\naws_access_key_id = WRONG\naws_secret_access_key = x\n\n"
                        f"[qv]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
            fenv = env_with(AWS_SHARED_CREDENTIALS_FILE=cred, AWS_PROFILE="qv",
                            AWS_ENDPOINT_URL=ep)
            p = run(cli, "s3://models/repo", os.path.join(tmp, "cache-f"), env=fenv)
            assert p.returncode == 0 and f"fetched={nobj}" in p.stdout, p.stderr
            fenv["AWS_PROFILE"] = "default"
            p = run(cli, "s3://models/repo", os.path.join(tmp, "cache-f2"), env=fenv)
            assert p.returncode == 1 and "InvalidAccessKeyId" in p.stderr and \
                "profile 'default'" in p.stderr, p.stderr
            fenv["AWS_PROFILE"] = "nosuch"
            p = run(cli, "s3://models/repo", os.path.join(tmp, "cache-f2"), env=fenv)
            assert p.returncode == 1 and "no AWS credentials" in p.stderr, p.stderr
            print("ok credentials file and profile")

            # Refusals: each a clear message, nothing written.
            bad = dict(good, AWS_SECRET_ACCESS_KEY="not-the-secret")
            fresh = os.path.join(tmp, "cache-bad")
            for url, env, words in (
                    ("s3://models/repo", bad, ["HTTP 403", "SignatureDoesNotMatch",
                                               "check the secret access key"]),
                    ("s3://models/repo", dict(good, AWS_ACCESS_KEY_ID="NOPE"),
                     ["InvalidAccessKeyId", "check the access key id"]),
                    ("s3://models/repo", env_with(AWS_ENDPOINT_URL=ep, HOME=tmp),
                     ["no AWS credentials"]),
                    ("s3://models/nosuch", good, ["no objects under this prefix"]),
                    ("s3://nobucket/repo", good, ["HTTP 404", "NoSuchBucket"]),
                    ("s3://models/../etc", good, ["not an S3 URL"]),
                    ("s3://models/repo", dict(good, AWS_ENDPOINT_URL="ftp://x"),
                     ["bad S3 endpoint"]),
                    ("s3://models/repo", dict(good, AWS_ENDPOINT_URL="http://127.0.0.1:1"),
                     ["ListObjectsV2 at http://127.0.0.1:1", "onnect"])):
                p = run(cli, url, fresh, env=env)
                assert p.returncode == 1, (url, p.stdout)
                for w in words:
                    assert w in p.stderr, (url, w, p.stderr)
                assert not os.path.exists(os.path.join(fresh, "models")), url
                print(f"ok refused: {p.stderr.strip()[:110]}")

            # An object listed but gone when fetched: NoSuchKey, the cache untouched.
            set_faults(root, {"ghost": "repo/trade-mlp/2/gone.bin"})
            p = run(cli, "s3://models/repo", cache, env=good)
            assert p.returncode == 1 and "NoSuchKey" in p.stderr and \
                "s3://models/repo/trade-mlp/2/gone.bin" in p.stderr, p.stderr
            same_tree(src, local)
            no_staging(cache)
            print("ok missing object: NoSuchKey, previous tree intact")

            # A transfer cut half-way: nothing half-loaded.
            mfile = os.path.join(src, "trade-mlp", "2", "model.onnx")
            size = os.path.getsize(mfile)
            set_faults(root, {"drop": {"key": "repo/trade-mlp/2/model.onnx", "after": size // 2}})
            cut = os.path.join(tmp, "cache-cut")
            p = run(cli, "s3://models/repo", cut, env=good)
            assert p.returncode == 1 and "trade-mlp/2/model.onnx" in p.stderr and \
                f"after {size // 2} of {size} bytes" in p.stderr, p.stderr
            assert not os.path.exists(os.path.join(cut, "models", "repo")), os.listdir(cut)
            no_staging(cut)
            p = run(cli, "s3://models/repo/trade-mlp/2", cut, env=good)
            assert p.returncode == 1, p.stdout
            assert not os.path.exists(os.path.join(cut, "models", "repo", "trade-mlp", "2"))
            no_staging(cut)
            # A refresh cut half-way keeps the previous tree as it was.
            new = bytearray(open(mfile, "rb").read())
            new[-1] ^= 1
            open(mfile, "wb").write(new)
            p = run(cli, "s3://models/repo", cache, env=good)
            assert p.returncode == 1 and "partial" in p.stderr.lower(), p.stderr
            new[-1] ^= 1
            open(mfile, "wb").write(new)
            same_tree(src, local)
            no_staging(cache)
            set_faults(root, {})
            p = run(cli, "s3://models/repo/trade-mlp/2", cut, env=good)
            assert p.returncode == 0, p.stderr
            same_tree(os.path.join(src, "trade-mlp", "2"),
                      os.path.join(cut, "models", "repo", "trade-mlp", "2"))
            print("ok cut transfer: no version directory, previous tree intact, no staging left")

        finally:
            srv.terminate()
            srv.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
