#!/usr/bin/env bash
# The README's main command: installs what is missing, builds quiver into
# build/ (the same directory and options as scripts/test.sh), generates the
# example models, and prints quiver-bench's tables for the two example MLPs:
# in-process latency and throughput beside the direct-oneDNN floor; then
# starts quiverd on the example repository (private socket in a temp dir,
# worker on core 1, UDP on a free loopback port) and benchmarks trade-mlp
# through shared memory (beside floor-ring, echo and inproc) and UDP (beside
# floor-udp and inproc), and stops the daemon with SIGTERM (also on errors
# and Ctrl-C: an exit trap).
#
#   bash scripts/run.sh                 tables
#   bash scripts/run.sh --json          one JSON object a line
#   bash scripts/run.sh --iters 50000   any other option of the in-process run
#                                       (--json also goes to the daemon runs)
#
# Each step is a function; main() lists them in order.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${QV_BUILD_DIR:-build}
MODELS="$BUILD/tests/models"
BATCHES=1,8,64,256

# Progress and build output go to stderr: stdout holds only the tables (or,
# with --json, only JSON lines).
step() { printf '\n### %s\n' "$*" >&2; }

install_deps() {
  step "dependencies"
  bash scripts/install-deps.sh >&2
}

build() {
  step "build ($BUILD)"
  if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" -Dwerror=true >&2
  fi
  meson compile -C "$BUILD" >&2
}

models() {
  step "example models ($MODELS)"
  # gen_models.py runs as part of the build (custom target test_models);
  # build it explicitly in case the build dir predates the generator.
  meson compile -C "$BUILD" tests/models/test_models:custom >/dev/null
  for m in trade-mlp ctr-mlp; do
    if [ ! -f "$MODELS/$m.onnx" ]; then
      echo "run.sh: $MODELS/$m.onnx was not generated (is /usr/bin/python3 able to import onnx, numpy and torch?)" >&2
      exit 1
    fi
  done
}

bench_inproc() {
  step "quiver-bench: inproc vs floor-onednn"
  "$BUILD/bench/quiver-bench" "$MODELS/trade-mlp.onnx" "$MODELS/ctr-mlp.onnx" \
    --batch "$BATCHES" "$@"
}

DAEMON_PID=
DAEMON_DIR=
stop_daemon() {
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID"
    local i
    for i in $(seq 100); do
      kill -0 "$DAEMON_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
      echo "run.sh: quiverd did not stop on SIGTERM; killing it" >&2
      kill -KILL "$DAEMON_PID" 2>/dev/null || true
    fi
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  DAEMON_PID=
  if [ -n "$DAEMON_DIR" ]; then
    rm -rf "$DAEMON_DIR"
    DAEMON_DIR=
  fi
}

start_daemon() {
  step "quiverd on $MODELS/repo (worker on core 1)"
  DAEMON_DIR=$(mktemp -d -t quiver-run.XXXXXX)
  SOCK="$DAEMON_DIR/quiverd.sock"
  # A free loopback UDP port: bound by the kernel, released, handed to quiverd.
  UDP_PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  UDP="127.0.0.1:$UDP_PORT"
  "$BUILD/dataplane/quiverd" --repo "$MODELS/repo" --socket "$SOCK" --foreground \
    --cores 1 --udp "$UDP" 2>"$DAEMON_DIR/quiverd.log" &
  DAEMON_PID=$!
  local i
  for i in $(seq 300); do
    grep -q "quiverd ready" "$DAEMON_DIR/quiverd.log" && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "run.sh: quiverd did not become ready; its log:" >&2
  cat "$DAEMON_DIR/quiverd.log" >&2
  exit 1
}

bench_shm() {
  step "quiver-bench --shm: trade-mlp beside floor-ring, echo, inproc"
  "$BUILD/bench/quiver-bench" --shm "$SOCK" --model trade-mlp --repo "$MODELS/repo" \
    --batch 1,8 --iters 20000 "$@"
  step "quiver-bench --shm: 64 in flight, throughput vs inproc batch 64"
  "$BUILD/bench/quiver-bench" --shm "$SOCK" --model trade-mlp --repo "$MODELS/repo" \
    --inflight 64 --iters 20000 --no-echo "$@"
  step "quiver-bench --shm: open loop at 10/50/80/95% of the max"
  "$BUILD/bench/quiver-bench" --shm "$SOCK" --model trade-mlp --rate-sweep --iters 5000 "$@"
}

bench_udp() {
  step "quiver-bench --udp: trade-mlp beside floor-udp, echo, inproc"
  "$BUILD/bench/quiver-bench" --udp "$UDP" --model trade-mlp --repo "$MODELS/repo" \
    --iters 5000 "$@"
}

main() {
  install_deps
  build
  models
  bench_inproc "$@"
  local remote=()
  case " $* " in *" --json "*) remote=(--json) ;; esac
  trap stop_daemon EXIT
  trap 'exit 130' INT TERM
  start_daemon
  bench_shm "${remote[@]}"
  bench_udp "${remote[@]}"
  stop_daemon
}

main "$@"
