#!/usr/bin/env bash
# The main job, offline on a fresh Debian machine after scripts/install-deps.sh:
# build onebit, train a BPE tokenizer on TinyShakespeare, tokenize it, train a
# small ternary model (configs/tiny.json) for a few minutes on the CPU, plot the
# loss, export the model to .1bit and generate text from it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${ONEBIT_DATA_DIR:-$root/../shared/data}
out=${ONEBIT_MAIN_DIR:-$root/runs/main}
steps=${ONEBIT_MAIN_STEPS:-300}
step() { printf '\n==== %s ====\n' "$*"; }

step "build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$(nproc)" > /dev/null
onebit=build/bin/onebit
mkdir -p "$out"

step "tokenizer: byte-level BPE, 2048 tokens, trained on TinyShakespeare"
"$onebit" tokenizer train --vocab-size 2048 --input "$data/tinyshakespeare/input.txt" --output "$out/tokenizer.json"

step "tokenize: one document per blank-line-separated speech, 5% held out"
"$onebit" tokenize --input "$data/tinyshakespeare/input.txt" --doc-split blank-line --val-fraction 0.05 \
  --tokenizer "$out/tokenizer.json" --output-dir "$out/data" --prefix shakespeare --force

step "train: configs/tiny.json (ternary), $steps steps on the CPU"
rm -rf "$out/model"
"$onebit" train --config configs/tiny.json --data-dir "$out/data/shakespeare" --tokenizer "$out/tokenizer.json" \
  --output-dir "$out/model" --max-steps "$steps" --batch-size 16 --lr 3e-3 --lr-min 3e-4 --lr-warmup-steps 30 \
  --log-every 10 --eval-every 100 --eval-batches 10 --save-every 0

step "plot"
"$onebit" plot "$out/model/metrics.jsonl" -o "$out/loss.svg" --title "tiny ternary model on TinyShakespeare"

step "export: .1bit (ternary, checked bit for bit against the checkpoint) and a C header"
"$onebit" export --model-dir "$out/model" --output "$out/model.1bit" --pack-mode ternary --emit-c-header

step "generate from the exported model"
"$onebit" generate --model "$out/model.1bit" --prompt "ROMEO:" --max-tokens 120 --temperature 0.8 --seed 7
echo
echo "model: $out/model/latest  exported: $out/model.1bit, $out/model.h  loss plot: $out/loss.svg"
