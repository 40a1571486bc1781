#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""deploy/k8s: every manifest parses and holds together.

- each file is YAML (python3-yaml) whose documents have a known kind with its
  apiVersion, a name and the namespace `quiver`; kustomization.yaml lists
  every manifest but the example client pod;
- the DaemonSet: selector matches the pod labels; quiverd's probes are HTTP
  GETs of /readyz (readiness) and /healthz (liveness, startup) on the port
  of its --metrics-listen; --socket lies in the hostPath /run/quiver mount,
  --repo in the model volume's mount; every mount names a volume and every
  volume is mounted; every container (init ones too) has requests equal to
  limits, quiverd's CPU an integer of at least 2 (control thread + workers);
- quiverd parses the DaemonSet's arguments (the binary under test fails on
  the missing repository, not with exit 2 for a usage error), and the entry
  script's --cores is this process's allowed cores but the first;
- the routes sidecar applies the ConfigMap's file at the path it is mounted
  at, and that routes.yaml passes `quiverctl apply --offline` (while a copy
  with a share out of range is refused, so the check can fail);
- the Service selects the DaemonSet's pods and targets the metrics port; the
  ServiceMonitor selects the Service and scrapes /metrics on that port;
- the client pod mounts the same hostPath and points QUIVER_SOCKET at the
  socket quiverd listens on.

Usage: test_k8s_manifests.py K8S_DIR QUIVERD QUIVERCTL
"""
import os
import re
import shlex
import stat
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml is not installed")
    sys.exit(77)

KINDS = {
    "Namespace": "v1",
    "PersistentVolumeClaim": "v1",
    "ConfigMap": "v1",
    "Service": "v1",
    "Pod": "v1",
    "DaemonSet": "apps/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}
NS = "quiver"
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def load(k8s):
    docs = {}
    for f in sorted(os.listdir(k8s)):
        if not f.endswith(".yaml"):
            continue
        with open(os.path.join(k8s, f)) as fh:
            try:
                ds = [d for d in yaml.safe_load_all(fh) if d is not None]
            except yaml.YAMLError as e:
                fail(f"{f}: not YAML: {e}")
                continue
        for d in ds:
            kind, api = d.get("kind"), d.get("apiVersion")
            if not check(kind in KINDS, f"{f}: unknown kind {kind!r}"):
                continue
            check(api == KINDS[kind], f"{f}: {kind} apiVersion {api!r}, want {KINDS[kind]}")
            if kind != "Kustomization":
                md = d.get("metadata") or {}
                check(md.get("name"), f"{f}: {kind} without metadata.name")
                if kind != "Namespace":
                    check(md.get("namespace") == NS,
                          f"{f}: {kind} {md.get('name')} namespace {md.get('namespace')!r}")
            docs.setdefault(kind, []).append((f, d))
    return docs


def one(docs, kind):
    got = docs.get(kind, [])
    if not check(len(got) == 1, f"{len(got)} {kind} objects, want 1"):
        sys.exit(1)
    return got[0][1]


def opt(args, name):
    if name in args:
        i = args.index(name)
        return args[i + 1] if i + 1 < len(args) else None
    return None


def under(path, mounts):
    """The mount (volumeMount dict) whose mountPath holds path, if any."""
    for m in mounts:
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            return m
    return None


def is_int_cpu(v):
    return isinstance(v, int) or (isinstance(v, str) and re.fullmatch(r"[1-9][0-9]*", v))


def allowed_cpus():
    return sorted(os.sched_getaffinity(0))


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    k8s, quiverd, quiverctl = sys.argv[1:]
    docs = load(k8s)

    # kustomization lists every manifest but the example client.
    kz = one(docs, "Kustomization")
    files = {f for kind in docs for f, _ in docs[kind] if kind != "Kustomization"}
    check(set(kz.get("resources", [])) == files - {"client-pod.yaml"},
          f"kustomization resources {sorted(kz.get('resources', []))}, "
          f"want {sorted(files - {'client-pod.yaml'})}")
    check(one(docs, "Namespace")["metadata"]["name"] == NS, "namespace name")

    ds = one(docs, "DaemonSet")
    tpl = ds["spec"]["template"]
    labels = tpl["metadata"]["labels"]
    sel = ds["spec"]["selector"]["matchLabels"]
    check(all(labels.get(k) == v for k, v in sel.items()), "DaemonSet selector misses its pods")
    pod = tpl["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    containers = pod.get("containers", [])
    inits = pod.get("initContainers", [])
    by_name = {c["name"]: c for c in containers}
    q = by_name.get("quiverd")
    if not check(q is not None, "no container named quiverd"):
        return 1

    # Volumes: each mount names a volume, each volume is mounted.
    mounted = set()
    for c in containers + inits:
        for m in c.get("volumeMounts", []):
            check(m["name"] in volumes, f"{c['name']}: mount of unknown volume {m['name']}")
            mounted.add(m["name"])
    check(mounted == set(volumes), f"volumes never mounted: {sorted(set(volumes) - mounted)}")

    # Guaranteed QoS: requests == limits everywhere; quiverd's CPUs whole.
    for c in containers + inits:
        res = c.get("resources", {})
        req, lim = res.get("requests", {}), res.get("limits", {})
        check(req and req == lim, f"{c['name']}: requests {req} != limits {lim}")
        check("cpu" in req and "memory" in req, f"{c['name']}: no cpu or memory request")
    qcpu = q["resources"]["requests"]["cpu"]
    check(is_int_cpu(qcpu) and int(qcpu) >= 2,
          f"quiverd cpu {qcpu!r}: want an integer >= 2 (static CPU manager, control + worker)")

    # quiverd's arguments, probes and mounts.
    args = [str(a) for a in q.get("args", [])]
    listen = opt(args, "--metrics-listen")
    if check(listen and ":" in listen, f"--metrics-listen {listen!r}"):
        mport = int(listen.rsplit(":", 1)[1])
        cports = {p.get("name"): p["containerPort"] for p in q.get("ports", [])}
        check(mport in cports.values(), f"metrics port {mport} not among {cports}")

        def probe_port(p):
            port = p["httpGet"]["port"]
            return cports.get(port) if isinstance(port, str) else port

        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"),
                            ("startupProbe", "/healthz")):
            p = q.get(probe)
            if check(p and "httpGet" in p, f"quiverd {probe}: no httpGet"):
                check(p["httpGet"]["path"] == path,
                      f"{probe} path {p['httpGet']['path']}, want {path}")
                check(probe_port(p) == mport,
                      f"{probe} port {p['httpGet']['port']} is not --metrics-listen's {mport}")
    check("--foreground" in args, "quiverd must run with --foreground in a container")
    qmounts = q.get("volumeMounts", [])
    sock = opt(args, "--socket")
    m = under(sock or "", qmounts)
    run_vol = volumes.get(m["name"]) if m else None
    check(run_vol and run_vol.get("hostPath", {}).get("path") == "/run/quiver",
          f"--socket {sock} is not in the hostPath /run/quiver mount")
    repo = opt(args, "--repo")
    m = under(repo or "", qmounts)
    mv = volumes.get(m["name"]) if m else None
    check(mv and ("persistentVolumeClaim" in mv or "hostPath" in mv),
          f"--repo {repo} is not on a PVC or hostPath volume")
    if mv and "persistentVolumeClaim" in mv:
        claim = mv["persistentVolumeClaim"]["claimName"]
        pvcs = [d["metadata"]["name"] for _, d in docs.get("PersistentVolumeClaim", [])]
        check(claim in pvcs, f"claim {claim} not defined (have {pvcs})")
    check(m and m.get("readOnly") is True, "the model repository must be mounted read-only")

    # The entry script: --cores from this process's allowed cores, and
    # quiverd parses the whole command line.
    cmd = q.get("command", [])
    check(cmd[:2] == ["/bin/sh", "-c"] and len(cmd) == 4, f"quiverd command {cmd[:2]}")
    with tempfile.TemporaryDirectory() as tmp:
        fake = os.path.join(tmp, "bin")
        os.mkdir(fake)
        with open(os.path.join(fake, "quiverd"), "w") as f:
            f.write('#!/bin/sh\nprintf "%s\\n" "$@"\n')
        os.chmod(os.path.join(fake, "quiverd"), stat.S_IRWXU)
        env = dict(os.environ, PATH=fake + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
        r = subprocess.run(cmd[:3] + [cmd[3]] + args, env=env, capture_output=True, text=True)
        got = r.stdout.split("\n")[:-1]
        check(r.returncode == 0, f"entry script exit {r.returncode}: {r.stderr}")
        cpus = allowed_cpus()
        want = cpus[1:] if len(cpus) > 1 else cpus
        if check(got[:1] == ["--cores"] and len(got) > 1, f"entry script passed {got[:2]}"):
            check(got[1] == ",".join(map(str, want)),
                  f"--cores {got[1]} for allowed cpus {cpus}, want {want}")
            check(got[2:] == args, "entry script does not pass the args on unchanged")

        # quiverd itself parses them: no repository here, so exit 1, not 2.
        real = list(args)
        real[real.index("--repo") + 1] = os.path.join(tmp, "no-repo")
        real[real.index("--socket") + 1] = os.path.join(tmp, "q.sock")
        real[real.index("--metrics-listen") + 1] = "127.0.0.1:0"
        r = subprocess.run([quiverd, "--cores", str(want[0])] + real, capture_output=True,
                           text=True, timeout=60)
        # (Not "exit 1" exactly: a sanitizer build may end otherwise; the
        # log line says the arguments were taken and the repository read.)
        check(r.returncode not in (0, 2) and "no-repo: No such file or directory" in r.stderr,
              f"quiverd {shlex.join(real)}: exit {r.returncode}, want a failure reading the "
              f"missing repository (arguments parsed): {r.stderr.strip()[-400:]}")

    # The routes sidecar applies the ConfigMap's routes.yaml.
    cms = {d["metadata"]["name"]: d for _, d in docs.get("ConfigMap", [])}
    side = by_name.get("routes")
    if check(side is not None, "no routes sidecar"):
        script = " ".join(side.get("command", []))
        mm = re.search(r"apply\b[^\n]*?-f\s+(\S+)", script.replace("\\\n", " "))
        if check(mm and "quiverctl" in script, "sidecar does not run quiverctl apply -f"):
            path = mm.group(1)
            check(f"--socket {sock}" in script, f"sidecar does not use quiverd's socket {sock}")
            m = under(path, side.get("volumeMounts", []))
            cmv = volumes.get(m["name"], {}) if m else {}
            cm_name = cmv.get("configMap", {}).get("name")
            check(cm_name in cms, f"{path} is not on a ConfigMap volume of this directory")
            check(m and under(sock, side["volumeMounts"]) and
                  volumes[under(sock, side["volumeMounts"])["name"]] is run_vol,
                  "sidecar does not mount the socket directory")
            key = os.path.relpath(path, m["mountPath"]) if m else None
            routes = cms.get(cm_name, {}).get("data", {}).get(key)
            if check(routes, f"ConfigMap {cm_name} has no key {key}"):
                with tempfile.TemporaryDirectory() as tmp:
                    good = os.path.join(tmp, "routes.yaml")
                    with open(good, "w") as f:
                        f.write(routes)
                    r = subprocess.run([quiverctl, "apply", "-f", good, "--offline"],
                                       capture_output=True, text=True)
                    check(r.returncode == 0 and "valid" in r.stdout,
                          f"quiverctl apply --offline refuses the ConfigMap's routes.yaml "
                          f"(exit {r.returncode}): {r.stderr}")
                    spec = yaml.safe_load(routes)
                    name = sorted(spec["models"])[0]
                    spec["models"][name]["canary"] = {"version": 7, "percent": 150}
                    with open(good, "w") as f:
                        yaml.safe_dump(spec, f)
                    r = subprocess.run([quiverctl, "apply", "-f", good, "--offline"],
                                       capture_output=True, text=True)
                    check(r.returncode == 2 and "canary.percent" in r.stderr,
                          f"a share of 150% was not refused (exit {r.returncode})")

    # Service and ServiceMonitor.
    svc = one(docs, "Service")
    check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
          "Service selector misses the DaemonSet's pods")
    sport = svc["spec"]["ports"][0]
    tp = sport.get("targetPort")
    cports = {p.get("name"): p["containerPort"] for p in q.get("ports", [])}
    check((cports.get(tp) if isinstance(tp, str) else tp) == mport,
          f"Service targetPort {tp} is not the metrics port {mport}")
    sm = one(docs, "ServiceMonitor")
    svc_labels = svc["metadata"].get("labels", {})
    check(all(svc_labels.get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()),
          "ServiceMonitor selector misses the Service")
    ep = sm["spec"]["endpoints"][0]
    check(ep.get("port") == sport.get("name") and ep.get("path") == "/metrics",
          f"ServiceMonitor endpoint {ep}")

    # The example client.
    cl = one(docs, "Pod")
    cc = cl["spec"]["containers"][0]
    cvols = {v["name"]: v for v in cl["spec"].get("volumes", [])}
    env = {e["name"]: e.get("value") for e in cc.get("env", [])}
    m = under(env.get("QUIVER_SOCKET", ""), cc.get("volumeMounts", []))
    check(env.get("QUIVER_SOCKET") == sock, f"client QUIVER_SOCKET {env.get('QUIVER_SOCKET')}")
    check(m and cvols.get(m["name"], {}).get("hostPath", {}).get("path") == "/run/quiver",
          "client does not mount the hostPath /run/quiver at the socket's directory")
    gid = cl["spec"].get("securityContext", {}).get("runAsGroup")
    check(str(gid) == opt(args, "--allow-gid"), f"client gid {gid} is not quiverd's --allow-gid")

    print("FAILED" if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
