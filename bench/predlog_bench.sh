#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The prediction log's cost on the shared-memory path: starts quiverd on a
# copy of trade-mlp (worker on --cores, default 1), then runs quiver-bench
# --shm with the log at sample 0, 1% and 100% (set live with `quiverctl
# log`), ROUNDS times in turn so drift on a shared machine hits every
# setting alike, and prints each run's rows (p50/p99/p99.9 beside the
# floor-ring and inproc rows quiver-bench prints).
#
#   bash bench/predlog_bench.sh [BUILD_DIR] [-- extra quiver-bench args]
#   env: CORE (quiverd worker core, 1), ITERS (20000), ROUNDS (2), BATCH (1,8)
set -euo pipefail
BUILD=${1:-build}
shift || true
[ "${1:-}" = "--" ] && shift
CORE=${CORE:-1}
ITERS=${ITERS:-20000}
ROUNDS=${ROUNDS:-2}
BATCH=${BATCH:-1,8}
MODELS="$BUILD/tests/models"
[ -d "$MODELS/repo/trade-mlp" ] || { echo "predlog_bench: no $MODELS/repo/trade-mlp (build first)" >&2; exit 1; }
TMP=$(mktemp -d)
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"; wait "$PID" || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$TMP/repo"
cp -r "$MODELS/repo/trade-mlp" "$TMP/repo/"
SOCK="$TMP/quiverd.sock"
"$BUILD/dataplane/quiverd" --repo "$TMP/repo" --socket "$SOCK" --foreground --cores "$CORE" \
  2>"$TMP/quiverd.log" &
PID=$!
for _ in $(seq 1 600); do
  grep -q "quiverd ready" "$TMP/quiverd.log" && break
  sleep 0.1
done
grep -q "quiverd ready" "$TMP/quiverd.log" || { cat "$TMP/quiverd.log" >&2; exit 1; }
CTL=("$BUILD/ctl/quiverctl" --socket "$SOCK")
for round in $(seq 1 "$ROUNDS"); do
  for p in 0 0.01 1; do
    "${CTL[@]}" log trade-mlp --sample "$p" --dir "$TMP/logs" >/dev/null
    echo "== round $round, predlog sample $p"
    "$BUILD/bench/quiver-bench" --shm "$SOCK" --model trade-mlp --repo "$TMP/repo" \
      --batch "$BATCH" --iters "$ITERS" --no-echo "$@"
  done
done
"${CTL[@]}" stats | grep predlog
du -sh "$TMP/logs" | sed 's/^/predlog files: /'
