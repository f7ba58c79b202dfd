#!/usr/bin/env bash
# onebit's packed runtime beside llama.cpp's TQ2_0 and TQ1_0 ternary types at
# the three shapes of bench_infer (125M, 700M, BitNet b1.58 2B4T), prefill 128
# and decode 64 tokens with 1 and 2 threads: the median of RUNS runs each,
# and the ratio onebit / llama.cpp TQ2_0.
#
# llama.cpp is built from its public source outside this repository (never
# committed), e.g.:
#   git clone <llama.cpp> /tmp/llama/src && cd /tmp/llama/src &&
#   cmake -B build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release &&
#   cmake --build build -j2 --target llama-bench llama-quantize
#
# usage: bench/compare_llamacpp.sh [SHAPE...]     (default: 125m 700m 2b4t)
# env:   LLAMA_BUILD  llama.cpp build directory (default /tmp/llama/src/build)
#        MODELS       where the GGUF models are made and kept (default /tmp/llama/models)
#        ONEBIT_BUILD onebit build directory (default build)
#        RUNS         runs per figure (default 5); HEAD: onebit head precision (default int4,
#                     the closest to llama.cpp's Q4_K token_embd/output table)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
llama=${LLAMA_BUILD:-/tmp/llama/src/build}
models=${MODELS:-/tmp/llama/models}
onebit_build=${ONEBIT_BUILD:-$root/build}
runs=${RUNS:-5}
head=${HEAD:-int4}
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(125m 700m 2b4t)
export LD_LIBRARY_PATH=$llama/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for tool in "$llama/bin/llama-bench" "$llama/bin/llama-quantize" "$onebit_build/bin/bench_infer"; do
  [ -x "$tool" ] || { echo "missing $tool (see the top of $0)" >&2; exit 2; }
done
gguf_py=$(cd "$llama/.." && pwd)/gguf-py
mkdir -p "$models"

model_for() { # shape type -> path, made on first use
  local s=$1 t=$2 out=$models/m$1-$2.gguf
  if [ ! -f "$out" ]; then
    local f16=$models/m$s-f16.gguf
    [ -f "$f16" ] || PYTHONPATH=$gguf_py /usr/bin/python3 "$root/bench/llamacpp_model.py" "$s" "$f16" >&2
    local type=TQ2_0
    [ "$t" = tq1 ] && type=TQ1_0
    "$llama/bin/llama-quantize" "$f16" "$out" "$type" >"$models/quantize-$s-$t.log" 2>&1
  fi
  echo "$out"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# llama-bench tokens/s of one run of one test (pp or tg) at one thread count.
llama_tps() { # model threads test
  local args
  if [ "$3" = pp ]; then args="-p 128 -n 0"; else args="-p 0 -n 64"; fi
  # shellcheck disable=SC2086
  "$llama/bin/llama-bench" -m "$1" $args -t "$2" -r 1 -o csv 2>/dev/null | awk -F, 'NR > 1 { gsub(/"/, ""); print $(NF - 1) }'
}

# The runs of onebit and llama.cpp alternate, so a change in the machine's load
# (it is shared) falls on both alike; each figure is the median of its runs.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $runs runs per figure"
"$onebit_build/bin/bench_infer" --shape 125m --runs 1 --gen 1 --prompt 1 --threads 1 --bandwidth-runs 5 | grep -E '^memory'
rows=()
for s in "${shapes[@]}"; do
  tq2=$(model_for "$s" tq2)
  tq1=$(model_for "$s" tq1)
  echo "$s: load average before $(cut -d' ' -f1-3 /proc/loadavg)"
  for r in $(seq "$runs"); do
    out=$("$onebit_build/bin/bench_infer" --shape "$s" --runs 1 --bandwidth-runs 0 --head "$head" --threads 1,2 \
      --prompt 128 --gen 64)
    [ "$r" = 1 ] && echo "$out" | grep -E '^[0-9a-z]+: hidden'
    for t in 1 2; do
      line=$(echo "$out" | grep "^RESULT shape=$s threads=$t ")
      for test in pp tg; do
        echo "$line" | sed -n "s/.* ${test}_tps=\([0-9.]*\).*/\1/p" >>"$tmp/onebit-$t-$test"
        llama_tps "$tq2" "$t" "$test" >>"$tmp/tq2-$t-$test"
        llama_tps "$tq1" "$t" "$test" >>"$tmp/tq1-$t-$test"
      done
    done
  done
  echo "$s: load average after $(cut -d' ' -f1-3 /proc/loadavg)"
  for t in 1 2; do
    for test in pp tg; do
      ours=$(median <"$tmp/onebit-$t-$test")
      l2=$(median <"$tmp/tq2-$t-$test")
      l1=$(median <"$tmp/tq1-$t-$test")
      rows+=("$(printf '| %s | %d | %s | %.1f | %.1f | %.1f | %.2f |' "$s" "$t" "$test$([ $test = pp ] && echo 128 || echo 64)" \
        "$ours" "$l2" "$l1" "$(awk -v a="$ours" -v b="$l2" 'BEGIN { print a / b }')")")
    done
  done
  rm -f "$tmp"/*
done
printf '\n| shape | threads | test | onebit tok/s | llama.cpp TQ2_0 | llama.cpp TQ1_0 | onebit / TQ2_0 |\n'
printf '| --- | ---: | --- | ---: | ---: | ---: | ---: |\n'
printf '%s\n' "${rows[@]}"
