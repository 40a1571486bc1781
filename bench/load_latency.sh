#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# How promptly quiverd answers the control socket while `quiverctl load`
# builds a model on the loader thread. Times `quiverctl stats` (a whole
# quiverctl process, connect to reply) in a loop: first with nothing in
# flight (the floor), then during ROUNDS loads of VERSION_DIR as new
# versions of a model "bench-load". Prints p50/p99/max of each beside the
# load times. Not a test: nothing is asserted.
#
# Usage: bench/load_latency.sh QUIVERD QUIVERCTL REPO VERSION_DIR [ROUNDS]
set -euo pipefail
QD=$1 QC=$2 REPO=$3 VD=$4 ROUNDS=${5:-3}
dir=$(mktemp -d)
sock=$dir/q.sock
"$QD" --repo "$REPO" --socket "$sock" --foreground 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 300); do "$QC" --socket "$sock" status >/dev/null 2>&1 && break; sleep 0.1; done

ms() { echo $(( ($(date +%s%N) - $1) / 1000 )); }   # microseconds since $1 (ns)
one() { local a; a=$(date +%s%N); "$QC" --socket "$sock" stats >/dev/null; ms "$a"; }
pct() { sort -n | awk '{v[NR]=$1} END {p50=v[int(NR*0.5)+1>NR?NR:int(NR*0.5)+1];
  p99=v[int(NR*0.99)+1>NR?NR:int(NR*0.99)+1]; printf "n %d p50 %.1f ms p99 %.1f ms max %.1f ms\n",
  NR, p50/1000, p99/1000, v[NR]/1000}'; }

for _ in $(seq 30); do one; done >"$dir/floor"
echo "stats, nothing in flight (floor): $(pct <"$dir/floor")"
: >"$dir/during"
for r in $(seq "$ROUNDS"); do
  t0=$(date +%s%N)
  "$QC" --socket "$sock" --timeout 3600000 load bench-load "$r" --path "$VD" >/dev/null &
  lp=$!
  while kill -0 "$lp" 2>/dev/null; do one >>"$dir/during"; done
  wait "$lp"
  echo "load bench-load/$r: $(( $(ms "$t0") / 1000 )) ms"
done
echo "stats, during the loads: $(pct <"$dir/during")"
