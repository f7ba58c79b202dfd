#!/usr/bin/env bash
# onebit export end to end: train a tiny ternary model (and a binary one) with
# its own small tokenizer, export each to .1bit with the size table, then
#  - round trip: onebit generate gives the same text from the checkpoint and
#    from the .1bit file (greedy and sampled, every kernel set; --embed-dtype
#    int8 against --head int8), and export --verify compares the logits;
#  - the C header compiles on the host with -ffreestanding -Werror, the
#    embedded runtime object needs no symbol from outside, and the example
#    program generates the same bytes as `onebit generate --kernels scalar`;
#  - on a microcontroller: the same program cross-built for a Cortex-M4F with
#    arm-none-eabi-gcc and run under qemu-system-arm (mps2-an386) prints the
#    same token ids as on the host, with its footprint and instructions per
#    token; so does a Cortex-M7 (mps2-an500) (skipped only when the cross
#    tools are absent).
set -euo pipefail
bin=${ONEBIT_BIN:?}
data=${ONEBIT_DATA_DIR:?}
src=${ONEBIT_SOURCE_DIR:?}
text_src=$data/tinyshakespeare/input.txt
[ -f "$text_src" ] || { echo "shared data missing ($text_src)"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
onebit=$bin/onebit

head -c 100000 "$text_src" >"$work/small.txt"
"$onebit" tokenizer train --vocab-size 384 --input "$work/small.txt" --output "$work/tok.json" >/dev/null 2>&1 \
  || fail "tokenizer train"
cat >"$work/ternary.json" <<'EOF'
{"vocab_size": 384, "hidden_size": 64, "num_heads": 4, "num_kv_heads": 2, "num_layers": 2,
 "intermediate_size": 128, "max_seq_len": 64, "use_ternary": true, "use_rope": true, "use_subln": true,
 "use_swiglu": true}
EOF
cat >"$work/binary.json" <<'EOF'
{"vocab_size": 384, "hidden_size": 32, "num_heads": 2, "num_layers": 1, "intermediate_size": 64,
 "max_seq_len": 32, "use_ternary": false, "use_relu2": true, "tie_embeddings": false}
EOF
for m in ternary binary; do
  steps=$([ $m = ternary ] && echo 24 || echo 4)
  "$onebit" train --config "$work/$m.json" --data-dir "$work/small.txt" --tokenizer "$work/tok.json" \
    --output-dir "$work/$m" --batch-size 4 --max-steps "$steps" --lr 3e-3 --no-progress --threads 2 \
    >"$work/$m.train.log" 2>&1 || { cat "$work/$m.train.log"; fail "train $m"; }
done

# --- export and the size table ------------------------------------------------------------
"$onebit" export --model-dir "$work/ternary" --output "$work/t.1bit" --pack-mode ternary --emit-c-header \
  >"$work/export.out" 2>"$work/export.err" || { cat "$work/export.err"; fail "export"; }
cat "$work/export.out"
for want in "^kind *tensors *weights *bytes *bits/weight" "^attention *8 " "^ffn *6 " "^embedding *1 " \
            "^total " "^quantised layers: " "^C header: .*t.h" "^verified: .*bit for bit"; do
  grep -q "$want" "$work/export.out" || fail "size table lacks '$want'"
done
size=$(stat -c %s "$work/t.1bit" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')
grep -q "^total .* $size " "$work/export.out" || fail "the size table's total is not the file's $size bytes"
"$onebit-export" --model-dir "$work/binary" --output "$work/b.1bit" --pack-mode binary --embed-dtype int8 \
  >"$work/export_b.out" 2>&1 || { cat "$work/export_b.out"; fail "export binary"; }
grep -q "^head *1 " "$work/export_b.out" || fail "untied head missing from the table: $(cat "$work/export_b.out")"
"$onebit" export --inspect "$work/b.1bit" >"$work/inspect.out" || fail "inspect"
grep -q "lm_head.weight *I8 *\[384, 32\]" "$work/inspect.out" || fail "inspect: $(cat "$work/inspect.out")"
grep -q "mlp.up_proj.weight *BINARY1 *\[64, 32\]" "$work/inspect.out" || fail "inspect: $(cat "$work/inspect.out")"
# The pack mode must match the trained one.
if "$onebit" export --model-dir "$work/ternary" --output "$work/x.1bit" --pack-mode binary 2>"$work/err"; then
  fail "a ternary checkpoint was packed binary without --change-mode"
fi
grep -q -- "--change-mode" "$work/err" || fail "unclear error: $(cat "$work/err")"
[ ! -e "$work/x.1bit" ] || fail "a refused export left a file"

# --- round trip: the runtime on the checkpoint and on the file -----------------------------------
gen() { "$onebit" generate --max-tokens 24 --prompt "ROMEO:" "$@" 2>/dev/null; }
for kernels in auto scalar; do
  for sampling in "--temperature 0" "--seed 7" "--seed 3 --temperature 1.2 --top-k 0 --top-p 0.95"; do
    # shellcheck disable=SC2086
    a=$(gen --model-dir "$work/ternary" --kernels $kernels $sampling | od -An -tx1 -v)
    # shellcheck disable=SC2086
    b=$(gen --model "$work/t.1bit" --kernels $kernels $sampling | od -An -tx1 -v)
    [ -n "$a" ] && [ "$a" = "$b" ] || fail "checkpoint and .1bit differ ($kernels, $sampling)"
  done
done
a=$(gen --model-dir "$work/binary" --seed 5 | od -An -tx1 -v)
"$onebit" export --model-dir "$work/binary" --output "$work/b32.1bit" >/dev/null 2>&1 || fail "export binary f32"
b=$(gen --model "$work/b32.1bit" --seed 5 | od -An -tx1 -v)
[ "$a" = "$b" ] || fail "binary model: checkpoint and .1bit differ"
# The tied table in int8: the checkpoint run with --head int8 packs the same table.
"$onebit" export --model-dir "$work/ternary" --output "$work/t8.1bit" --embed-dtype int8 >/dev/null 2>&1 \
  || fail "export --embed-dtype int8"
a=$(gen --model-dir "$work/ternary" --head int8 --seed 5 | od -An -tx1 -v)
b=$(gen --model "$work/t8.1bit" --seed 5 | od -An -tx1 -v)
[ "$a" = "$b" ] || fail "checkpoint with --head int8 and the int8 .1bit differ"
if "$onebit" generate --model "$work/t.1bit" --head int8 --prompt x >/dev/null 2>"$work/err"; then
  fail "--head int8 accepted for a file that stores f32"
fi
grep -q "exported with" "$work/err" || fail "unclear --head error: $(cat "$work/err")"

# --- the C header on the host ----------------------------------------------------------------------
prompt="ROMEO:"
ids=$(printf '%s' "$prompt" | "$onebit" tokenizer encode --tokenizer "$work/tok.json")
eos=$(printf '<|endoftext|>' | "$onebit" tokenizer encode --allow-special --tokenizer "$work/tok.json")
cat >"$work/onebit_run.h" <<EOF
#define RUN_MAX_TOKENS 24
#define RUN_SEED 11
static const int32_t run_prompt[] = {$eos, $(echo $ids | sed 's/ /, /g')};
EOF
cc=${CC:-cc}
flags=(-std=c11 -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes -Werror -ffreestanding -ffp-contract=off
       -I"$src/embedded" -I"$src/embedded/examples" -I"$work" -DONEBIT_MODEL_HEADER='"t.h"')
"$cc" "${flags[@]}" -c "$src/embedded/onebit_embedded.c" -o "$work/rt.o" || fail "the runtime does not compile freestanding"
"$cc" "${flags[@]}" -c "$src/embedded/examples/generate.c" -o "$work/gen.o" || fail "the C header does not compile"
"$cc" -std=c11 -O2 -I"$src/embedded/examples" -c "$src/embedded/examples/board_host.c" -o "$work/host.o"
"$cc" "$work/rt.o" "$work/gen.o" "$work/host.o" -o "$work/gen" || fail "link"
undefined=$(nm -u "$work/rt.o" | grep -v -E '^\s*U (memcpy|memset|memmove)$' || true)
[ -z "$undefined" ] || fail "the embedded runtime needs symbols from outside: $undefined"
"$work/gen" >"$work/host.out" || { cat "$work/host.out"; fail "embedded example on the host"; }
cat "$work/host.out" | grep -v '^text:'
full=$(gen --model "$work/t.1bit" --kernels scalar --max-tokens 24 --seed 11 | head -c -2 | od -An -tx1 -v | tr -d ' \n')
host_hex=$(sed -n 's/^hex: //p' "$work/host.out")
[ -n "$full" ] && [ "$host_hex" = "$full" ] || fail "embedded on the host: $host_hex, onebit generate: $full"
host_ids=$(grep '^ids:' "$work/host.out")
[ "$(echo "$host_ids" | wc -w)" -ge 2 ] || fail "no tokens generated: $host_ids"

# --- the microcontroller under QEMU --------------------------------------------------------------------
if ! command -v arm-none-eabi-gcc >/dev/null || ! command -v qemu-system-arm >/dev/null; then
  echo "test_export: cross tools absent (scripts/install-deps.sh installs them); skipping the MCU run"
  exit 0
fi
make -s -C "$src/embedded/mcu" MODEL="$work/t.h" RUN="$work/onebit_run.h" OUT="$work/mcu" >"$work/make.log" 2>&1 \
  || { cat "$work/make.log"; fail "cross build"; }
timeout 120 make -s -C "$src/embedded/mcu" MODEL="$work/t.h" RUN="$work/onebit_run.h" OUT="$work/mcu" run \
  >"$work/mcu.out" 2>&1 || { cat "$work/mcu.out"; fail "the MCU run failed"; }
grep -v '^text:' "$work/mcu.out"
[ "$(grep '^ids:' "$work/mcu.out")" = "$host_ids" ] || fail "MCU tokens differ from the host's"
[ "$(sed -n 's/^hex: //p' "$work/mcu.out")" = "$host_hex" ] || fail "MCU bytes differ from the host's"
# The board's timer ticks every 40 instructions: the count of the 2,000,000-instruction
# loop (plus the few that read the timer) lands on 2,000,000 or one tick more,
# depending on where the loop starts within a tick.
counted=$(sed -n 's/^counter check: a loop of 2000000 instructions counted as \([0-9]*\)$/\1/p' "$work/mcu.out")
[ -n "$counted" ] && [ "$counted" -ge 2000000 ] && [ "$counted" -le 2000040 ] \
  || fail "the instruction counter is off: $(grep counter "$work/mcu.out")"
grep -q "^instructions: .* per token" "$work/mcu.out" || fail "no instructions per token"
# The same on a Cortex-M7, whose FPU does the double-precision parts in hardware.
make -s -C "$src/embedded/mcu" BOARD=an500 MODEL="$work/t.h" RUN="$work/onebit_run.h" OUT="$work/mcu7" \
  >"$work/make7.log" 2>&1 || { cat "$work/make7.log"; fail "cross build for the Cortex-M7"; }
timeout 120 make -s -C "$src/embedded/mcu" BOARD=an500 MODEL="$work/t.h" RUN="$work/onebit_run.h" OUT="$work/mcu7" \
  run >"$work/mcu7.out" 2>&1 || { cat "$work/mcu7.out"; fail "the Cortex-M7 run failed"; }
[ "$(grep '^ids:' "$work/mcu7.out")" = "$host_ids" ] || fail "Cortex-M7 tokens differ from the host's"
echo "Cortex-M7: $(grep '^instructions:' "$work/mcu7.out")"
awk '$1 == ".text" || $1 == ".rodata" || $1 == ".data" { flash += $2 } $1 == ".data" || $1 == ".bss" { ram += $2 }
     END { printf "MCU footprint: flash %d bytes, static RAM %d bytes (arena included), ", flash, ram }' \
  "$work/mcu/size.txt"
sed -n 's/.*stack: \([0-9]*\) bytes/stack \1 bytes/p' "$work/mcu.out"
echo "test_export: all checks passed"
