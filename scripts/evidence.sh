#!/usr/bin/env bash
# Evidence of learning (docs/TRAINING.md): on a corpus, trains a BPE tokenizer,
# tokenizes, then trains a small ternary model and its full-precision twin
# (same config and tokens, quantisation off) on the CPU, and plots both.
# "overfit" drives a small ternary model on 2 KB of TinyShakespeare towards zero
# loss and checks that an untrained model's validation loss is about ln V (it
# uses the shakespeare run's tokenizer and shards).
#   scripts/evidence.sh shakespeare|gutenberg|overfit [steps] [device]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ONEBIT_BIN:-$root/build/bin}/onebit
data=${ONEBIT_DATA_DIR:-$root/../shared/data}
corpus=${1:?shakespeare or gutenberg}
steps=${2:-600}
device=${3:-cpu}
work=${ONEBIT_EVIDENCE_DIR:-$root/runs/evidence}/$corpus
mkdir -p "$work"
if [ "$corpus" = overfit ]; then
  vocab=$work/../shakespeare/tokenizer.json shards=$work/../shakespeare/data/corpus
  [ -f "$vocab" ] || { echo "run scripts/evidence.sh shakespeare first (its tokenizer)"; exit 2; }
  head -c 2048 "$data/tinyshakespeare/input.txt" > "$work/text.txt"
  "$bin" tokenize --input "$work/text.txt" --val-fraction 0 --tokenizer "$vocab" --output-dir "$work/data" \
    --prefix t --force
  cat > "$work/config.json" <<'JSON'
{"vocab_size": 4096, "hidden_size": 128, "num_heads": 4, "num_layers": 2, "intermediate_size": 384,
 "max_seq_len": 64, "use_ternary": true, "use_swiglu": true, "use_subln": true, "use_rope": true,
 "use_dynamic_threshold": false, "anneal_fraction": 0.1}
JSON
  rm -rf "$work/out" "$work/initial"
  "$bin" train --config "$work/config.json" --data-dir "$work/data/t" --tokenizer "$vocab" --output-dir "$work/out" \
    --device "$device" --batch-size 8 --max-steps "$steps" --lr 3e-3 --lr-warmup-steps 20 --log-every 20 \
    --eval-every 0 --save-every 0 --no-progress
  # One step at a negligible learning rate, validated on the shakespeare split.
  "$bin" train --config "$work/config.json" --data-dir "$shards" --tokenizer "$vocab" --output-dir "$work/initial" \
    --device "$device" --batch-size 8 --max-steps 1 --lr 1e-9 --lr-warmup-steps 0 --label-smoothing 0 \
    --eval-every 1 --eval-batches 20 --save-every 0 --no-progress
  echo "ln(4096) = $(python3 -c 'import math; print(round(math.log(4096), 4))')"
  exit 0
fi
case $corpus in
  shakespeare)
    inputs=("$data/tinyshakespeare/input.txt")
    split=(--doc-split blank-line --val-fraction 0.05) ;;
  gutenberg)
    inputs=("$data/gutenberg/train/"*.txt)
    split=(--val-input "$data/gutenberg/valid") ;;
  *) echo "unknown corpus $corpus"; exit 2 ;;
esac
[ -f "$work/tokenizer.json" ] || "$bin" tokenizer train --vocab-size 4096 --input "${inputs[@]}" \
  --output "$work/tokenizer.json"
[ -d "$work/data" ] || "$bin" tokenize --input "${inputs[@]}" "${split[@]}" --tokenizer "$work/tokenizer.json" \
  --output-dir "$work/data" --prefix corpus
cat > "$work/config.json" <<'JSON'
{"vocab_size": 4096, "hidden_size": 256, "num_heads": 4, "num_layers": 4, "intermediate_size": 768,
 "max_seq_len": 128, "use_ternary": true, "use_swiglu": true, "use_subln": true, "use_rope": true,
 "use_dynamic_threshold": false, "anneal_fraction": 0.2}
JSON
common=(--config "$work/config.json" --data-dir "$work/data/corpus" --tokenizer "$work/tokenizer.json"
        --device "$device" --batch-size 16 --max-steps "$steps" --lr 3e-3 --lr-min 3e-4 --lr-warmup-steps 50
        --weight-decay 0.05 --log-every 10 --eval-every 50 --eval-batches 20 --save-every 0)
# The twin: the same config with every layer in f16 mode (no quantiser in
# training or validation).
sed 's/^ "max_seq_len"/ "layer_bit_map": {"embedding": "f16", "layer_modes": ["f16", "f16", "f16", "f16"]},\n "max_seq_len"/' \
  "$work/config.json" > "$work/config-fp.json"
[ -f "$work/ternary-$device/latest/model.safetensors" ] || "$bin" train "${common[@]}" --output-dir "$work/ternary-$device"
"$bin" train "${common[@]}" --config "$work/config-fp.json" --output-dir "$work/fp-$device"
"$bin" plot "$work/ternary-$device/metrics.jsonl" "$work/fp-$device/metrics.jsonl" -o "$work/twins-$device.png" \
  --title "$corpus: ternary and full-precision twin ($device)"
