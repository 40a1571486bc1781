#!/usr/bin/env bash
# The README's main command: installs what is missing, builds quiver into
# build/ (the same directory and options as scripts/test.sh), generates the
# example models, and prints quiver-bench's tables for the two example MLPs:
# in-process latency and throughput beside the direct-oneDNN floor.
#
#   bash scripts/run.sh                 tables
#   bash scripts/run.sh --json          one JSON object a line
#   bash scripts/run.sh --iters 50000   any other quiver-bench option
#
# Each step is a function; main() lists them in order, so a new step (e.g.
# starting quiverd and benchmarking through shared memory) is one function
# and one line.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${QV_BUILD_DIR:-build}
MODELS="$BUILD/tests/models"
BATCHES=1,8,64,256

step() { printf '\n### %s\n' "$*" >&2; }

install_deps() {
  step "dependencies"
  bash scripts/install-deps.sh
}

build() {
  step "build ($BUILD)"
  if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" -Dwerror=true
  fi
  meson compile -C "$BUILD"
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

main() {
  install_deps
  build
  models
  bench_inproc "$@"
}

main "$@"
