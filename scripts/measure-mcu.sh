#!/usr/bin/env bash
# Footprint and instructions per token of the embedded runtime on a
# Cortex-M4F (QEMU mps2-an386) and a Cortex-M7 with a double-precision FPU
# (mps2-an500) for a few small model shapes: each gets one
# training step (the numbers do not depend on the weights), `onebit export
# --emit-c-header`, the cross-build of embedded/examples/generate.c and a run
# of 32 tokens after the prompt "ROMEO:", greedy and with onebit generate's
# default sampler. Prints a markdown table (docs/EMBEDDED.md).
#
#   scripts/measure-mcu.sh [BUILD_DIR]     (default: build)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
onebit=$build/bin/onebit
data=${ONEBIT_DATA_DIR:-$here/../shared/data}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
group() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }

head -c 200000 "$data/tinyshakespeare/input.txt" >"$work/text.txt"
"$onebit" tokenizer train --vocab-size 512 --input "$work/text.txt" --output "$work/tok.json" >/dev/null 2>&1
ids=$(printf 'ROMEO:' | "$onebit" tokenizer encode --tokenizer "$work/tok.json" | sed 's/ /, /g')
eos=$(printf '<|endoftext|>' | "$onebit" tokenizer encode --allow-special --tokenizer "$work/tok.json")

# name | config | --embed-dtype
shapes=(
  'H64 L2 F128 ternary, RoPE, SwiGLU, f32 table|{"hidden_size": 64, "num_heads": 4, "num_kv_heads": 2, "num_layers": 2, "intermediate_size": 128, "max_seq_len": 64, "use_ternary": true, "use_rope": true, "use_subln": true, "use_swiglu": true}|f32'
  'H64 L2 F128 ternary, RoPE, SwiGLU, int8 table|{"hidden_size": 64, "num_heads": 4, "num_kv_heads": 2, "num_layers": 2, "intermediate_size": 128, "max_seq_len": 64, "use_ternary": true, "use_rope": true, "use_subln": true, "use_swiglu": true}|int8'
  'H128 L4 F384 ternary, RoPE, SwiGLU, int8 table|{"hidden_size": 128, "num_heads": 4, "num_layers": 4, "intermediate_size": 384, "max_seq_len": 128, "use_ternary": true, "use_rope": true, "use_subln": true, "use_swiglu": true}|int8'
  'H128 L4 F512 binary (default switches), int8 table|{"hidden_size": 128, "num_heads": 4, "num_layers": 4, "intermediate_size": 512, "max_seq_len": 128}|int8'
)
echo "| model (vocabulary 512) | parameters | flash (text + rodata) | static RAM (data + bss) | stack | M4F decode, greedy | M4F decode, sampled | M4F prefill | M7 decode, greedy | M7 decode, sampled |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for i in "${!shapes[@]}"; do
  IFS='|' read -r name cfg embed <<<"${shapes[$i]}"
  d=$work/m$i
  mkdir -p "$d"
  echo "${cfg%\}}, \"vocab_size\": 512}" >"$d/config.json"
  "$onebit" train --config "$d/config.json" --data-dir "$work/text.txt" --tokenizer "$work/tok.json" \
    --output-dir "$d/run" --batch-size 1 --max-steps 1 --no-progress >"$d/train.log" 2>&1 || { cat "$d/train.log"; exit 1; }
  "$onebit" export --model-dir "$d/run" --output "$d/model.1bit" --embed-dtype "$embed" --emit-c-header \
    >"$d/export.log" 2>&1 || { cat "$d/export.log"; exit 1; }
  params=$(awk '$1 == "total" { print $2 }' "$d/export.log")
  for board in an386 an500; do
    for mode in greedy sampled; do
      r=$d/$board-$mode
      mkdir -p "$r"
      temp=$([ $mode = greedy ] && echo "0.0" || echo "0.8")
      printf '#define RUN_MAX_TOKENS 32\n#define RUN_TEMPERATURE %s\nstatic const int32_t run_prompt[] = {%s, %s};\n' \
        "$temp" "$eos" "$ids" >"$r/onebit_run.h"
      make -s -C "$here/embedded/mcu" BOARD=$board MODEL="$d/model.h" RUN="$r/onebit_run.h" OUT="$r/build" >/dev/null
      make -s -C "$here/embedded/mcu" BOARD=$board MODEL="$d/model.h" RUN="$r/onebit_run.h" OUT="$r/build" run \
        >"$r/out.txt" 2>&1
    done
  done
  size=$d/an386-greedy/build/size.txt
  flash=$(awk '$1 == ".vectors" || $1 == ".text" || $1 == ".rodata" || $1 == ".data" { s += $2 } END { print s }' "$size")
  ram=$(awk '$1 == ".data" || $1 == ".bss" { s += $2 } END { print s }' "$size")
  stack=$(sed -n 's/.*stack: \([0-9]*\) bytes/\1/p' "$d/an386-sampled/out.txt")
  decode() { group "$(sed -n 's/.*decode \([0-9]*\) per token/\1/p' "$d/$1/out.txt")"; }
  prefill=$(sed -n 's/^instructions: prefill+first token \([0-9]*\) (\([0-9]*\) prompt tokens).*/\1 \2/p' \
    "$d/an386-greedy/out.txt")
  echo "| $name | $params | $(group "$flash") | $(group "$ram") | $(group "$stack") | $(decode an386-greedy) |" \
    "$(decode an386-sampled) | $(group "${prefill% *}") for ${prefill#* } tokens | $(decode an500-greedy) |" \
    "$(decode an500-sampled) |"
done
