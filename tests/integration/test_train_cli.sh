#!/usr/bin/env bash
# onebit train end to end through the command line on real text (a slice of
# TinyShakespeare, tokenized with GPT-2's tokenizer): metrics, checkpoints,
# tokenizer copy, Ctrl-C handling, resume, plots and flag errors.
set -euo pipefail
bin="$ONEBIT_BIN/onebit"
data="$ONEBIT_DATA_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$work/text"
head -c 60000 "$data/tinyshakespeare/input.txt" > "$work/text/a.txt"
tail -c 20000 "$data/tinyshakespeare/input.txt" > "$work/text/b.txt"
cat > "$work/config.json" <<'JSON'
{"vocab_size": 50257, "hidden_size": 32, "num_heads": 4, "num_layers": 1, "intermediate_size": 64,
 "max_seq_len": 32, "use_ternary": true, "use_rope": true, "use_subln": true}
JSON
common=(--config "$work/config.json" --tokenizer "$data/gpt2/tokenizer.json" --batch-size 2
        --lr 3e-3 --lr-warmup-steps 2 --threads 1 --no-progress --log-every 1)

# Text is tokenized into a cache, validation comes from held-out shards.
"$bin" tokenize --input "$work/text/b.txt" --tokenizer "$data/gpt2/tokenizer.json" \
  --output-dir "$work/val" --prefix held --val-fraction 0 > /dev/null
"$bin" train "${common[@]}" --data-dir "$work/text" --val-data-dir "$work/val/held" --output-dir "$work/run" \
  --max-steps 6 --eval-every 3 --eval-batches 2 > "$work/train.log" 2>&1 || { cat "$work/train.log"; fail "train"; }
grep -q "finished after 6 steps" "$work/train.log" || fail "no summary line"
[ -L "$work/run/latest" ] || fail "no latest link"
for f in config.json model.safetensors optimizer.safetensors tokenizer.json trainer_state.json; do
  [ -s "$work/run/latest/$f" ] || fail "checkpoint lacks $f"
done
cmp -s "$work/run/tokenizer.json" "$data/gpt2/tokenizer.json" || fail "tokenizer not copied"
[ "$(grep -c '"event":"train"' "$work/run/metrics.jsonl")" = 6 ] || fail "expected 6 train rows"
[ "$(grep -c '"event":"eval"' "$work/run/metrics.jsonl")" = 2 ] || fail "expected 2 eval rows"
head -1 "$work/run/metrics.csv" | grep -q '^event,step,epoch,tokens,train_loss,val_loss' || fail "csv header"
# The first loss is about ln(50257) = 10.8.
"$ONEBIT_PYTHON" - "$work/run/metrics.jsonl" <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
first = rows[0]["train_loss"]
assert abs(first - math.log(50257)) < 0.3, first
for r in rows:
    if r["event"] == "eval":
        assert abs(r["val_ppl"] - math.exp(r["val_loss"])) < 1e-6 * r["val_ppl"]
PY

# Streaming: text tokenized on the fly, no cache written.
"$bin" train "${common[@]}" --data-dir "$work/text" --streaming --output-dir "$work/stream" --max-steps 3 \
  --eval-every 0 > "$work/stream.log" 2>&1 || { cat "$work/stream.log"; fail "streaming"; }
grep -q "finished after 3 steps" "$work/stream.log" || fail "streaming summary"
[ ! -d "$work/stream/data" ] || fail "streaming wrote a token cache"
[ "$(grep -c '"event":"train"' "$work/stream/metrics.jsonl")" = 3 ] || fail "streaming metrics"

# Plots: SVG drawn by onebit (well-formed, one point per train row), PNG by gnuplot.
"$bin" plot "$work/run/metrics.jsonl" -o "$work/loss.svg" > /dev/null
"$ONEBIT_PYTHON" - "$work/loss.svg" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
lines = [e for e in root.iter() if e.tag.endswith("polyline")]
assert len(lines) == 3, len(lines)
assert len(lines[0].get("points").split()) == 6
PY
"$bin" plot "$work/run/metrics.jsonl" -o "$work/loss.png" > /dev/null
[ "$(head -c 4 "$work/loss.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "not a PNG"
if "$bin" plot "$work/run/metrics.csv" -o "$work/x.svg" 2> "$work/err"; then fail "plot accepted a CSV"; fi
grep -q "metrics.csv line 1" "$work/err" || fail "plot error does not name the file and line"

# Ctrl-C: a checkpoint is written and the run stops cleanly; --resume latest finishes it.
"$bin" train "${common[@]}" --data-dir "$work/run/data/corpus" --output-dir "$work/int" --max-steps 100000 \
  --eval-every 0 --save-every 0 > "$work/int.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -s "$work/int/metrics.jsonl" ] && [ "$(wc -l < "$work/int/metrics.jsonl")" -ge 3 ] && break
  sleep 0.1
done
kill -INT "$pid"
wait "$pid" || fail "interrupted run exited non-zero: $(cat "$work/int.log")"
grep -q "^stopped after" "$work/int.log" || fail "no 'stopped' summary: $(cat "$work/int.log")"
step=$(basename "$(readlink "$work/int/latest")" | sed 's/checkpoint-0*//')
[ "$step" -ge 3 ] || fail "checkpoint step $step"
"$bin" train "${common[@]}" --data-dir "$work/run/data/corpus" --output-dir "$work/int" --max-steps $((step + 2)) \
  --eval-every 0 --resume latest > "$work/resume.log" 2>&1 || fail "resume: $(cat "$work/resume.log")"
grep -q "finished after $((step + 2)) steps" "$work/resume.log" || fail "resume summary"

# Flag errors name the flag and suggest the right one.
if "$bin" train --lr-mn 1 2> "$work/err"; then fail "unknown flag accepted"; fi
grep -q "did you mean '--lr-min'" "$work/err" || fail "no suggestion"
if "$bin" train "${common[@]}" --data-dir "$work/nowhere" --output-dir "$work/x" --max-steps 1 2> "$work/err"; then
  fail "missing data accepted"
fi
grep -q "nowhere" "$work/err" || fail "error does not name the data path: $(cat "$work/err")"
echo "train CLI: ok"
