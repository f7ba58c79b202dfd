#!/usr/bin/env bash
# Data-parallel scaling: onebit train on the GPT-2 124M ternary config, batch 16 x
# 1024 per GPU, on 1 GPU and on all GPUs of the machine; prints tokens/s and the
# efficiency tokens/s(N) / (N · tokens/s(1)).
set -euo pipefail
bin=${ONEBIT_BIN:-build-gpu/bin}/onebit
data=${ONEBIT_DATA_DIR:-.devdata}
gpus=$(nvidia-smi -L | wc -l)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" tokenize --input "$data/tinyshakespeare/input.txt" --doc-split blank-line --val-fraction 0.01 \
  --tokenizer "$data/gpt2/tokenizer.json" --output-dir "$work/data" > /dev/null
run() { # processes
  local n=$1 pids=()
  for r in $(seq 0 $((n - 1))); do
    ONEBIT_RANK=$r ONEBIT_WORLD_SIZE=$n ONEBIT_LOCAL_RANK=$r "$bin" train --config "$data/refs/gpt2-124m-ternary.json" \
      --data-dir "$work/data/input" --output-dir "$work/run$n" --device cuda --batch-size 16 --max-steps 25 \
      --log-every 5 --eval-every 0 --save-every 0 --no-progress > "$work/run$n.$r.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  # steady-state tokens/s: mean of the logged windows after the first
  "${ONEBIT_PYTHON:-python3}" -c "
import json,sys
rows=[json.loads(l) for l in open('$work/run$n/metrics.jsonl') if '\"train\"' in l]
v=[r['tokens_per_s'] for r in rows[1:]]
print(sum(v)/len(v))"
}
one=$(run 1)
echo "1 GPU: $one tokens/s"
for n in 2 4 8; do
  [ "$n" -le "$gpus" ] || break
  many=$(run "$n")
  echo "$n GPUs: $many tokens/s, scaling efficiency $(python3 -c "print(f'{$many/($n*$one):.1%}')")"
done
