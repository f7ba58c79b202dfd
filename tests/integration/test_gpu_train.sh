#!/usr/bin/env bash
# 200 training steps on TinyShakespeare on the GPU and on the CPU from the same
# initial weights and batches: the training loss agrees within 2% at every
# logged step. Skipped (77) without a GPU.
set -euo pipefail
bin="$ONEBIT_BIN/onebit"
"$bin" --version | grep -q "a GPU is visible" || { echo "no GPU: skipped"; exit 77; }
data="$ONEBIT_DATA_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" tokenize --input "$data/tinyshakespeare/input.txt" --doc-split blank-line --val-fraction 0.05 \
  --tokenizer "$data/gpt2/tokenizer.json" --output-dir "$work/data" > /dev/null
cat > "$work/config.json" <<'JSON'
{"vocab_size": 50257, "hidden_size": 128, "num_heads": 2, "num_layers": 2, "intermediate_size": 256,
 "max_seq_len": 64, "use_ternary": true, "use_rope": true, "use_subln": true, "use_swiglu": true}
JSON
for dev in cpu cuda; do
  "$bin" train --config "$work/config.json" --data-dir "$work/data/input" --output-dir "$work/$dev" \
    --device $dev --batch-size 8 --max-steps 200 --lr 2e-3 --lr-warmup-steps 20 --log-every 10 \
    --eval-every 100 --eval-batches 4 --no-progress > "$work/$dev.log" 2>&1 || { cat "$work/$dev.log"; exit 1; }
done
"$ONEBIT_PYTHON" - "$work/cpu/metrics.jsonl" "$work/cuda/metrics.jsonl" <<'PY'
import json, sys
def losses(path):
    return {r["step"]: r for r in map(json.loads, open(path)) if r["event"] == "train"}
cpu, gpu = losses(sys.argv[1]), losses(sys.argv[2])
worst = 0.0
for step, c in sorted(cpu.items()):
    g = gpu[step]
    rel = abs(g["train_loss"] - c["train_loss"]) / c["train_loss"]
    worst = max(worst, rel)
    print(f"step {step:4d}: cpu {c['train_loss']:.4f} gpu {g['train_loss']:.4f} ({rel:.2%})")
    assert rel < 0.02, f"step {step}: {rel:.2%} apart"
first = min(cpu)
assert cpu[200]["train_loss"] < cpu[first]["train_loss"] - 1.0, "the model did not learn"
print(f"worst relative difference {worst:.3%}")
PY
