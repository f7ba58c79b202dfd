#!/usr/bin/env bash
# The whole test suite, as CI runs it: a -Werror build and ctest, the same under
# AddressSanitizer + UndefinedBehaviorSanitizer, then every libFuzzer target for
# ONEBIT_FUZZ_SECONDS (default 60) each. GPU tests skip when no GPU is present.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=${ONEBIT_JOBS:-$(nproc)}
fuzz_seconds=${ONEBIT_FUZZ_SECONDS:-60}

step() { printf '\n==== %s ====\n' "$*"; }

step "build (Release, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DONEBIT_WERROR=ON >/dev/null
cmake --build build -j "$jobs"

step "tests"
(cd build && ctest --output-on-failure -j "$jobs")

if [ "${ONEBIT_SKIP_SANITIZE:-0}" != 1 ]; then
  step "build (ASan + UBSan)"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DONEBIT_WERROR=ON -DONEBIT_SANITIZE=ON \
    -DONEBIT_CUDA=OFF >/dev/null
  cmake --build build-asan -j "$jobs"
  step "tests under ASan + UBSan"
  # Reference-model parity and long training runs are exercised by the plain
  # build; under the sanitizers they would only be slower, not more thorough.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs" -LE slow)
fi

if [ "${ONEBIT_SKIP_FUZZ:-0}" != 1 ]; then
  step "fuzzers (${fuzz_seconds}s each)"
  CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DONEBIT_FUZZ=ON -DONEBIT_CUDA=OFF \
    -DONEBIT_SANITIZE=ON >/dev/null
  cmake --build build-fuzz -j "$jobs"
  # Crash inputs and logs go to the build tree, never into the sources; a fixed
  # crash input is then copied to tests/fuzz/regressions/<target>/ by hand.
  artifacts="$root/build-fuzz/fuzz-artifacts"
  for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    corpus=$(mktemp -d)
    cp -r "tests/fuzz/corpus/$name/." "$corpus/" 2>/dev/null || true
    mkdir -p "$artifacts/$name"
    dict=()
    if [ -f "tests/fuzz/$name.dict" ]; then dict=(-dict="tests/fuzz/$name.dict"); fi
    log="$artifacts/$name.log"
    status=0
    "build-fuzz/bin/$name" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$artifacts/$name/" "${dict[@]}" "$corpus" >"$log" 2>&1 || status=$?
    rm -rf "$corpus"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "$name: ${execs:-unknown} executions in ${fuzz_seconds}s (exit $status; log $log)"
    if [ "$status" -ne 0 ]; then
      grep -E "ERROR|SUMMARY|Test unit written" "$log" || tail -n 30 "$log"
      echo "fuzzer $name failed: its input is in $artifacts/$name/; fix the bug, then keep the input in" \
        "tests/fuzz/regressions/$name/"
      exit 1
    fi
  done
fi
step "all tests passed"
