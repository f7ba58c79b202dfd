#!/usr/bin/env bash
# Everything the GPU issue needs from a GPU machine of the device tool, in one
# call: unpack the carried Debian libraries (scripts/device-deps.sh), build the
# CUDA targets, run the GPU tests, then the benchmarks beside PyTorch's
# bitnet_ref.py. Logs go to $OUT; a short table is printed last.
#   bench/gpu/device_run.sh [test] [bench | onebit-bench] [pairs] [train] [profile] [trace] [torchprof] [ncu] [multi] [gutenberg]
# pairs: $PAIRS (3) onebit and PyTorch ternary runs one after the other, each
# pair's ratio and their median (both step times vary 1-3% between runs).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/onebit-out}
mkdir -p "$out"
parts=${*:-test bench}
deps=/tmp/onebit-deps
mkdir -p "$deps"
for f in .devdeps/*.deb; do dpkg -x "$f" "$deps"; done
export CMAKE_PREFIX_PATH=$deps/usr PKG_CONFIG_SYSROOT_DIR=$deps
lib=$deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$lib:$lib/openblas-pthread:${LD_LIBRARY_PATH:-}
export ONEBIT_DATA_DIR=$PWD/.devdata ONEBIT_PYTHON=python3 ONEBIT_BIN=$PWD/build-gpu/bin NCCL_NVLS_ENABLE=0
NCCL_HOME=$(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
export NCCL_HOME
[ -n "$NCCL_HOME" ] && export LD_LIBRARY_PATH=$NCCL_HOME/lib:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
t0=$(date +%s)
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DONEBIT_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=90a-real;90-virtual" -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON \
  -DONEBIT_DATA_DIR="$ONEBIT_DATA_DIR" > "$out/cmake.log" 2>&1 || { tail -40 "$out/cmake.log"; exit 1; }
grep "onebit: NCCL" "$out/cmake.log"
cmake --build build-gpu -j"$(nproc)" --target onebit test_gpu_kernels test_gpu_backend bench_gpu_train bench_tokenizer \
  $(grep -q kernel_trace build-gpu/Makefile && echo kernel_trace) \
  > "$out/build.log" 2>&1 || { grep -E "error|Error" "$out/build.log" | head -40; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
summary=()
if [[ " $parts " == *" test "* ]]; then
  for t in test_gpu_kernels test_gpu_backend; do
    if timeout 300 "build-gpu/bin/$t" > "$out/$t.log" 2>&1; then r=passed; else r="FAILED ($?)"; fi
    grep -E "relative error|FAIL|ERROR|loss cpu" "$out/$t.log" | tail -60
    [ "$r" = passed ] && rm "$out/$t.log"
    summary+=("$t: $r")
  done
fi
if [[ " $parts " == *" bench "* || " $parts " == *" onebit-bench "* ]]; then
  cfg=.devdata/refs/gpt2-124m-ternary.json
  for q in ternary fp; do
    build-gpu/bin/bench_gpu_train --config "$cfg" --batch 16 --seq 1024 --steps 15 --warmup 3 --quant $q \
      2>&1 | tee -a "$out/bench.jsonl" | tail -1
  done
fi
if [[ " $parts " == *" bench "* ]]; then
  for q in ternary fp; do
    timeout 400 python3 .devdata/refs/bitnet_ref.py --quant $q --compile 1 --steps 15 --bs 16 --T 1024 2>"$out/ref_$q.err" \
      | tee -a "$out/bench.jsonl" | tail -1
  done
fi
if [[ " $parts " == *" pairs "* ]]; then
  cfg=.devdata/refs/gpt2-124m-ternary.json
  for i in $(seq "${PAIRS:-3}"); do
    build-gpu/bin/bench_gpu_train --config "$cfg" --batch 16 --seq 1024 --steps 15 --warmup 3 --quant ternary 2>&1 \
      | tail -1 >> "$out/pairs.jsonl"
    timeout 400 python3 .devdata/refs/bitnet_ref.py --quant ternary --compile 1 --steps 15 --bs 16 --T 1024 \
      2>>"$out/ref_pairs.err" | tail -1 >> "$out/pairs.jsonl"
  done
  python3 - "$out/pairs.jsonl" <<'PY' | tee "$out/pairs.txt"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ours = [r["step_ms"] for r in rows if r.get("impl") == "onebit"]
ref = [r["step_ms"] for r in rows if "compile" in r]
ratios = [b / a for a, b in zip(ours, ref)]
for a, b, q in zip(ours, ref, ratios):
    print(f"pair: onebit {a:.2f} ms, PyTorch {b:.2f} ms, {q:.3f}x")
if ratios:
    print(f"pairs: median {statistics.median(ratios):.3f}x of {len(ratios)} (min {min(ratios):.3f}, max {max(ratios):.3f})")
PY
fi
if [[ " $parts " == *" train "* ]]; then
  if bash tests/integration/test_gpu_train.sh > "$out/gpu_train.log" 2>&1; then r=passed; else r="FAILED ($?)"; fi
  tail -25 "$out/gpu_train.log"
  summary+=("test_gpu_train: $r")
fi
if [[ " $parts " == *" multi "* ]]; then
  if bash tests/integration/test_gpu_multi.sh > "$out/gpu_multi.log" 2>&1; then r=passed; else r="FAILED ($?)"; fi
  tail -5 "$out/gpu_multi.log"
  summary+=("test_gpu_multi: $r")
  bash bench/gpu/scaling.sh 2>&1 | tee "$out/scaling.txt"
fi
if [[ " $parts " == *" tokbench "* ]]; then
  # Tokenizer scaling with threads, on this machine's cores (tiktoken is not here).
  for t in 1 2 4 8 16; do
    build-gpu/bin/bench_tokenizer --threads $t --repeat 3 .devdata/gutenberg/train/*.txt 2>&1 | grep -E "onebit" | tail -1
  done | tee "$out/tokbench.txt"
fi
if [[ " $parts " == *" gutenberg "* ]]; then
  # The Gutenberg twin runs of docs/TRAINING.md on one GPU.
  ONEBIT_BIN=build-gpu/bin ONEBIT_EVIDENCE_DIR=/tmp/evidence bash scripts/evidence.sh gutenberg 400 cuda \
    > "$out/gutenberg.log" 2>&1 || tail -20 "$out/gutenberg.log"
  cp /tmp/evidence/gutenberg/ternary-cuda/metrics.jsonl "$out/gutenberg_ternary_cuda.jsonl"
  cp /tmp/evidence/gutenberg/fp-cuda/metrics.jsonl "$out/gutenberg_fp_cuda.jsonl"
  grep -E "finished|validation loss" "$out/gutenberg.log" | tail -6
fi
if [[ " $parts " == *" profile "* ]]; then
  ONEBIT_CUDA_PROFILE=1 build-gpu/bin/bench_gpu_train --config .devdata/refs/gpt2-124m-ternary.json --batch 16 \
    --seq 1024 --steps 5 --warmup 2 --quant ternary 2>&1 | tee "$out/profile.txt"
fi
if [[ " $parts " == *" trace "* ]]; then
  # The kernel timeline (bench/gpu/kernel_trace.c): idle gaps, overlap, kernels by time.
  KERNEL_TRACE_TIMELINE=$out/timeline.txt LD_PRELOAD=$PWD/build-gpu/lib/libkernel_trace.so build-gpu/bin/bench_gpu_train \
    --config .devdata/refs/gpt2-124m-ternary.json --batch 16 --seq 1024 --steps 12 --warmup 3 --quant ternary \
    2>&1 | tee "$out/trace.txt" | head -30
fi
if [[ " $parts " == *" torchprof "* ]]; then
  timeout 300 python3 bench/gpu/torch_profile.py .devdata/refs/bitnet_ref.py > "$out/torch_profile.txt" 2>&1
  head -30 "$out/torch_profile.txt"
fi
if [[ " $parts " == *" ncu "* ]]; then
  # Nsight Compute sections of the attention and row kernels, one launch each.
  ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [ -z "$ncu" ]; then echo "ncu: not installed"; else
    run=(build-gpu/bin/bench_gpu_train --config .devdata/refs/gpt2-124m-ternary.json --batch 16 --seq 1024 --steps 1
         --warmup 0 --quant ternary)
    sections=(--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats
              --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis)
    fwd="wg_forward|mma_forward|ffn_forward_kernel|norm_forward_kernel|act_quant_kernel"
    "$ncu" "${sections[@]}" -k regex:"$fwd" -c 5 \
      "${run[@]}" > "$out/ncu_fwd.txt" 2>&1
    bwd="wg_backward|mma_backward|attention_delta|norm_backward_kernel"
    "$ncu" "${sections[@]}" -k regex:"$bwd" -c 6 "${run[@]}" > "$out/ncu_bwd.txt" 2>&1
    cat "$out/ncu_fwd.txt" "$out/ncu_bwd.txt" | grep -E "^  [a-z_]+.*\(|==ERR|Duration|Compute \(SM\) Th|Memory Throughput|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Executed Ipc A|L1/TEX Hit|Shared Memory|Issue Slots Busy|One or More Eligible|No Eligible" | head -120
  fi
fi
# The device tool brings back few files: drop the logs of steps that worked.
rm -f "$out/cmake.log" "$out/build.log" "$out"/ref_*.err
printf '%s\n' "${summary[@]}"
