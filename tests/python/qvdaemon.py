# SPDX-License-Identifier: Apache-2.0
"""Starts a real quiverd for the Python tests: a private socket in a temp
dir, its worker on the last core, UDP on a free loopback port; stopped with
SIGTERM (checked to exit 0) when the `with` block ends."""
import os
import shutil
import signal
import socket
import subprocess
import time

SKIP = 77


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_repo(dst, *model_dirs):
    """A repository of copies of the given model directories."""
    os.makedirs(dst, exist_ok=True)
    for d in model_dirs:
        shutil.copytree(d, os.path.join(dst, os.path.basename(d.rstrip("/"))))
    return dst


class Daemon:
    def __init__(self, quiverd, repo, tmp, extra=()):
        self.sock = os.path.join(tmp, "quiverd.sock")
        self.udp = f"127.0.0.1:{free_udp_port()}"
        self.log_path = os.path.join(tmp, "quiverd.log")
        self.args = [quiverd, "--repo", repo, "--socket", self.sock, "--foreground",
                     "--cores", str(os.cpu_count() - 1), "--udp", self.udp, *extra]
        self.proc = None

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def __enter__(self):
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            if "quiverd ready" in self.log():
                return self
            time.sleep(0.05)
        self.stop()
        raise SystemExit(f"FAIL quiverd did not start:\n{self.log()}")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise SystemExit("FAIL quiverd did not stop on SIGTERM")
        return self.proc.returncode if self.proc else None

    def __exit__(self, *exc):
        rc = self.stop()
        if exc[0] is None and rc not in (0, -signal.SIGKILL):
            raise SystemExit(f"FAIL quiverd exit {rc}:\n{self.log()}")
