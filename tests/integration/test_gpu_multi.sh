#!/usr/bin/env bash
# Data parallelism: N GPUs with micro-batch B follow 1 GPU with N accumulation
# steps of B (same data, same initial weights): training losses within 1e-3 over
# 20 steps. Started as N processes with ONEBIT_RANK/WORLD_SIZE/LOCAL_RANK.
# Skipped (77) with fewer than 2 GPUs.
set -euo pipefail
bin="$ONEBIT_BIN/onebit"
gpus=$(nvidia-smi -L 2>/dev/null | wc -l || true)
[ "${gpus:-0}" -ge 2 ] || { echo "fewer than 2 GPUs: skipped"; exit 77; }
n=${ONEBIT_TEST_GPUS:-$gpus}
data="$ONEBIT_DATA_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" tokenize --input "$data/tinyshakespeare/input.txt" --doc-split blank-line --val-fraction 0.05 \
  --tokenizer "$data/gpt2/tokenizer.json" --output-dir "$work/data" > /dev/null
cat > "$work/config.json" <<'JSON'
{"vocab_size": 50257, "hidden_size": 128, "num_heads": 2, "num_layers": 2, "intermediate_size": 256,
 "max_seq_len": 64, "use_ternary": true, "use_rope": true, "use_subln": true}
JSON
common=(--config "$work/config.json" --data-dir "$work/data/input" --device cuda --batch-size 4 --max-steps 20
        --lr 2e-3 --lr-warmup-steps 5 --log-every 1 --eval-every 0 --no-progress)
"$bin" train "${common[@]}" --output-dir "$work/one" --accumulation-steps "$n" > "$work/one.log" 2>&1 ||
  { cat "$work/one.log"; exit 1; }
pids=()
for r in $(seq 0 $((n - 1))); do
  ONEBIT_RANK=$r ONEBIT_WORLD_SIZE=$n ONEBIT_LOCAL_RANK=$r "$bin" train "${common[@]}" --output-dir "$work/many" \
    > "$work/many$r.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { cat "$work"/many*.log; exit 1; }; done
# The same through mpirun, where it is installed.
if command -v mpirun > /dev/null; then
  mpirun --allow-run-as-root --oversubscribe -np "$n" -x NCCL_NVLS_ENABLE=0 "$bin" train "${common[@]}" \
    --output-dir "$work/mpi" > "$work/mpi.log" 2>&1 || { cat "$work/mpi.log"; exit 1; }
  cmp <(grep -o '"train_loss":[^,]*' "$work/many/metrics.jsonl") <(grep -o '"train_loss":[^,]*' "$work/mpi/metrics.jsonl") ||
    { echo "mpirun launch gave other losses"; exit 1; }
  echo "mpirun launch: same losses"
fi
"$ONEBIT_PYTHON" - "$work/one/metrics.jsonl" "$work/many/metrics.jsonl" <<'PY'
import json, sys
one = [r["train_loss"] for r in map(json.loads, open(sys.argv[1])) if "train_loss" in r]
many = [r["train_loss"] for r in map(json.loads, open(sys.argv[2])) if "train_loss" in r]
assert len(one) == len(many) == 20, (len(one), len(many))
worst = max(abs(a - b) / a for a, b in zip(one, many))
print(f"20 steps, worst relative loss difference {worst:.2e}")
assert worst < 1e-3
PY
