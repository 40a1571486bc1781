#!/usr/bin/env bash
# Installs what is missing, builds quiver twice (optimized, and with
# AddressSanitizer + UndefinedBehaviorSanitizer), runs every test in the
# first build, and in the sanitizer build the unit suite plus the
# end-to-end tests that drive the worker's batching, holding, routing,
# ensemble and UDP paths, typed multi-tensor requests and a garbage-writing
# client through a sanitized quiverd; then a ThreadSanitizer build of the
# tests whose threads share memory (rings, QSBR, libquiver against a fake
# server thread, the UDP client and loopback, quiverctl against a fake daemon
# thread); ends with one line "N passed, N failed, N skipped" computed from
# meson's results.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

status=0
build() { # dir, extra args...
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" -Dwerror=true "$@" || return 1
  fi
  meson compile -C "$dir" || return 1
}

if build build; then
  meson test -C build --print-errorlogs --num-processes 2 --timeout-multiplier 3 || status=1
else
  echo "build failed"; status=1
fi
if build build-san -Db_sanitize=address,undefined -Db_lundef=false; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-san --suite unit --print-errorlogs --num-processes 2 --timeout-multiplier 4 || status=1
  # Not the whole e2e suite: ASan's quarantine makes the RSS-growth check of
  # e2e_client_kill meaningless, and the slow ones add minutes for little.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-san --logbase testlog-e2e --print-errorlogs --num-processes 2 \
      --timeout-multiplier 4 e2e_garbage e2e_canary e2e_ensemble dataplane_batch_e2e \
      dataplane_queue_delay_e2e udp_batch_e2e e2e_graph trees_e2e e2e_ens_named e2e_precision \
      e2e_ops e2e_apply e2e_load_async e2e_hol || status=1
else
  echo "sanitizer build failed"; status=1
fi

# ThreadSanitizer: only the targets these tests need (quiverd itself is not
# run under TSan: compiling and tuning a model under its instrumentation takes
# minutes, past the e2e tests' control timeouts).
TSAN_TARGETS=(tests/shm/test_ring tests/dataplane/test_dp_qsbr tests/shm/test_client
  tests/udp/test_udp_client tests/udp/test_udp_loopback tests/e2e/test_ctl_cli ctl/quiverctl)
TSAN_TESTS=(shm_ring dataplane_qsbr shm_client udp_client udp_loopback ctl_cli)
if { [ -f build-tsan/build.ninja ] || meson setup build-tsan -Dwerror=true \
       -Db_sanitize=thread -Db_lundef=false; } &&
   meson compile -C build-tsan "${TSAN_TARGETS[@]}"; then
  TSAN_OPTIONS=halt_on_error=1 meson test -C build-tsan --no-rebuild --logbase testlog-tsan \
    --print-errorlogs --num-processes 2 --timeout-multiplier 4 "${TSAN_TESTS[@]}" || status=1
else
  echo "ThreadSanitizer build failed"; status=1
fi

/usr/bin/python3 scripts/count_results.py build/meson-logs/testlog.json \
  build-san/meson-logs/testlog.json build-san/meson-logs/testlog-e2e.json \
  build-tsan/meson-logs/testlog-tsan.json
rc=$?
[ $status -ne 0 ] && exit 1
exit $rc
