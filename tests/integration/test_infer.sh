#!/usr/bin/env bash
# The inference commands end to end: train a tiny ternary model with `onebit
# train` on the head of TinyShakespeare, then test-generate (five prompts,
# --prompt, determinism, the scalar kernels), chat with piped input (/help, a
# message, /reset, /quit, end of input), eval on text and on the training
# shard (its perplexity must agree with the training loss), and the errors
# of bad model paths.
set -euo pipefail
bin=${ONEBIT_BIN:?}
data=${ONEBIT_DATA_DIR:?}
text_src=$data/tinyshakespeare/input.txt
tokenizer=$data/gpt2/tokenizer.json
if [ ! -f "$text_src" ] || [ ! -f "$tokenizer" ]; then
  echo "shared data missing ($text_src, $tokenizer)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

head -c 120000 "$text_src" >"$work/small.txt"
cat >"$work/config.json" <<'EOF'
{"vocab_size": 50257, "hidden_size": 64, "num_heads": 4, "num_kv_heads": 2, "num_layers": 2,
 "intermediate_size": 128, "max_seq_len": 64, "use_ternary": true, "use_rope": true, "use_subln": true,
 "use_swiglu": true}
EOF
"$bin/onebit" train --config "$work/config.json" --data-dir "$work/small.txt" --tokenizer "$tokenizer" \
  --output-dir "$work/out" --batch-size 8 --max-steps 40 --lr 3e-3 --no-progress --threads 2 >"$work/train.log" 2>&1 \
  || { cat "$work/train.log"; fail "onebit train"; }
train_loss=$(sed -n 's/.*train loss \([0-9.]*\).*/\1/p' "$work/train.log")
[ -n "$train_loss" ] || fail "no train loss in: $(cat "$work/train.log")"
model=$work/out

# --- test-generate -------------------------------------------------------------------
"$bin/onebit" test-generate --model-dir "$model" --max-tokens 8 --seed 3 >"$work/gen.out" 2>"$work/gen.err" \
  || { cat "$work/gen.err"; fail "test-generate"; }
for p in "The cat sat" "The rain fell" "A small boat" "The scientist" "Stars twinkled"; do
  grep -q "^$p" "$work/gen.out" || fail "test-generate did not continue '$p': $(cat "$work/gen.out")"
done
[ "$(grep -c 'generated' "$work/gen.err")" -eq 5 ] || fail "expected five speed lines: $(cat "$work/gen.err")"
# A continuation is there: each prompt line is longer than its prompt.
[ "$(awk 'length($0) > 16' "$work/gen.out" | wc -l)" -ge 4 ] || fail "continuations missing: $(cat "$work/gen.out")"
# Greedy is deterministic, and the portable kernels give the same tokens.
"$bin/onebit-test-generate" --model-dir "$model" --prompt "To be, or not" --temperature 0 --max-tokens 12 \
  >"$work/g1.out" 2>/dev/null || fail "greedy generate"
ONEBIT_KERNELS=scalar "$bin/onebit" generate --model-dir "$model" --prompt "To be, or not" --temperature 0 \
  --max-tokens 12 >"$work/g2.out" 2>/dev/null || fail "greedy generate with the scalar kernels"
cmp -s "$work/g1.out" "$work/g2.out" || fail "scalar and SIMD kernels disagree: $(cat "$work/g1.out") / $(cat "$work/g2.out")"
grep -q "^To be, or not" "$work/g1.out" || fail "--prompt not continued: $(cat "$work/g1.out")"
# Sampling with a seed is reproducible.
"$bin/onebit" generate --model-dir "$model" --prompt "My lord" --seed 11 --max-tokens 10 --top-k 5 --top-p 0.8 \
  --repetition-penalty 1.3 >"$work/s1.out" 2>/dev/null
"$bin/onebit" generate --model-dir "$model" --prompt "My lord" --seed 11 --max-tokens 10 --top-k 5 --top-p 0.8 \
  --repetition-penalty 1.3 >"$work/s2.out" 2>/dev/null
cmp -s "$work/s1.out" "$work/s2.out" || fail "the same seed gave different text"

# --- chat (line mode: stdin is a pipe) -------------------------------------------------
printf '/help\nGood morrow, sir.\n/reset\nWhat news?\n/quit\nnot read\n' |
  "$bin/onebit-chat" --model-dir "$model" --max-tokens 8 --seed 5 >"$work/chat.out" 2>"$work/chat.err" \
  || { cat "$work/chat.err"; fail "chat"; }
grep -q "^commands:" "$work/chat.out" || fail "/help printed nothing: $(cat "$work/chat.out")"
grep -q "(conversation reset)" "$work/chat.out" || fail "/reset not acknowledged"
grep -q "> " "$work/chat.out" && fail "line mode printed a prompt"
# /help is 4 lines, two replies of one line each, the reset line: nothing after /quit.
[ "$(wc -l <"$work/chat.out")" -eq 7 ] || fail "unexpected chat transcript: $(cat -A "$work/chat.out")"
# End of input without /quit also ends it cleanly.
printf 'Hark!\n' | "$bin/onebit" chat --model-dir "$model" --max-tokens 4 >/dev/null 2>&1 || fail "chat at EOF"

# --- eval ----------------------------------------------------------------------------------
"$bin/onebit" eval --model-dir "$model" --data "$work/small.txt" --max-tokens 3000 --no-progress >"$work/eval.out" \
  2>"$work/eval.err" || { cat "$work/eval.err"; fail "eval on text"; }
ppl=$(sed -n 's/^perplexity \([0-9.]*\) .*/\1/p' "$work/eval.out")
[ -n "$ppl" ] || fail "no perplexity: $(cat "$work/eval.out")"
shard=$(ls "$model"/data/*_train_*.bin | head -1)
"$bin/onebit-eval" --model-dir "$model" --data "$shard" --max-tokens 3000 --no-progress >"$work/eval2.out" \
  2>/dev/null || fail "eval on a token shard"
grep -q "over 3000 tokens" "$work/eval2.out" || fail "eval scored the wrong count: $(cat "$work/eval2.out")"
# The perplexity of the training text is close to exp(training loss).
awk -v p="$ppl" -v l="$train_loss" 'BEGIN { d = log(p) - l; if (d < -0.5 || d > 0.5 || p < 1) exit 1 }' \
  || fail "perplexity $ppl is far from exp(train loss $train_loss)"

# --- errors -----------------------------------------------------------------------------------
if "$bin/onebit" test-generate --model-dir "$work/nowhere" >/dev/null 2>"$work/err1"; then fail "missing dir accepted"; fi
grep -q "no such directory" "$work/err1" || fail "unclear error: $(cat "$work/err1")"
if "$bin/onebit" chat --model-dir "$model/data" </dev/null >/dev/null 2>"$work/err2"; then fail "bad dir accepted"; fi
grep -q "not a checkpoint directory" "$work/err2" || fail "unclear error: $(cat "$work/err2")"
if "$bin/onebit" eval --model "$work/small.txt" --data "$work/small.txt" >/dev/null 2>"$work/err3"; then
  fail "a text file was accepted as a .1bit model"
fi
grep -q "not a .1bit file" "$work/err3" || fail "unclear error: $(cat "$work/err3")"
if "$bin/onebit" eval --model-dir "$model" >/dev/null 2>"$work/err4"; then fail "eval without --data"; fi
grep -q -- "--data" "$work/err4" || fail "unclear error: $(cat "$work/err4")"
for c in chat test-generate eval; do
  "$bin/onebit" "$c" --help | grep -q -- "--model-dir" || fail "$c --help"
done
echo "test_infer: all checks passed"
