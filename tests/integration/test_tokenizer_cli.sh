#!/usr/bin/env bash
# onebit tokenizer train|encode|decode from the command line: round trips,
# thread counts that must not change the ids, deterministic training, a trained
# tokenizer.json that Hugging Face tokenizers (Rust) and Tokenizers.js read and
# encode exactly as we do, and clear errors for bad input.
set -euo pipefail
trap 'echo "FAIL: command at line $LINENO exited $?"' ERR
src=${ONEBIT_SOURCE_DIR:?}
data=${ONEBIT_DATA_DIR:?}
onebit=${ONEBIT_BIN:?}/onebit
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gpt2="$data/gpt2/tokenizer.json"
passed=0
ok() { passed=$((passed + 1)); }
die() { echo "FAIL: $*"; exit 1; }

# encode -> decode gives the bytes back, whatever they are.
printf 'Hello,\r\n  world!\x00 caf\xc3\xa9 \xff\xfe <|endoftext|> 日本語 😀\n\n\t' > "$work/odd.txt"
"$onebit" tokenizer encode --tokenizer "$gpt2" < "$work/odd.txt" > "$work/ids"
[ "$(wc -l < "$work/ids")" -eq 1 ] || die "ids are not on one line"
grep -qE '^[0-9]+( [0-9]+)*$' "$work/ids" || die "ids are not single-space separated numbers"
"$onebit" tokenizer decode --tokenizer "$gpt2" < "$work/ids" > "$work/back"
cmp "$work/odd.txt" "$work/back" || die "decode(encode(x)) != x"; ok
# Special tokens only with --allow-special.
eot=$(printf '<|endoftext|>' | "$onebit" tokenizer encode --tokenizer "$gpt2" --allow-special)
[ "$eot" = 50256 ] || die "--allow-special gave '$eot'"; ok
plain=$(printf '<|endoftext|>' | "$onebit" tokenizer encode --tokenizer "$gpt2")
[ "$plain" != 50256 ] && [ "$(echo "$plain" | wc -w)" -gt 1 ] || die "special token encoded without --allow-special"; ok
# Empty input: an empty line.
[ "$("$onebit" tokenizer encode --tokenizer "$gpt2" < /dev/null)" = "" ] || die "empty input"; ok
# Threads do not change the ids; vocab.json + merges.txt give the same ids.
# (No `ls | head` here: with pipefail, ls can die of SIGPIPE.)
books=("$data"/gutenberg/valid/*)
book=${books[0]}
"$onebit" tokenizer encode --tokenizer "$gpt2" < "$book" > "$work/one"
"$onebit" tokenizer encode --tokenizer "$gpt2" --threads 2 < "$book" > "$work/two"
"$onebit" tokenizer encode --tokenizer "$data/gpt2" < "$book" > "$work/dir"
cmp "$work/one" "$work/two" && cmp "$work/one" "$work/dir" || die "thread count or format changed the ids"; ok

# Training: deterministic across thread counts.
train=("$data"/gutenberg/train/*.txt)
inputs=("${train[@]:0:4}")
"$onebit" tokenizer train --vocab-size 3000 --input "${inputs[@]}" "$data/tinystories/tinystories_v2_sample.txt" \
  --output "$work/a.json" --threads 1 2> "$work/train.log"
"$onebit" tokenizer train --vocab-size 3000 --input "${inputs[@]}" "$data/tinystories/tinystories_v2_sample.txt" \
  --output "$work/b.json" --threads 2 2>> "$work/train.log"
cmp "$work/a.json" "$work/b.json" || die "training is not deterministic"; ok
grep -q "wrote $work/a.json: 3000 tokens" "$work/train.log" || die "no summary line: $(cat "$work/train.log")"; ok
"$onebit" tokenizer encode --tokenizer "$work/a.json" < "$work/odd.txt" |
  "$onebit" tokenizer decode --tokenizer "$work/a.json" | cmp - "$work/odd.txt" || die "trained round trip"; ok

# An independent reader encodes with the trained tokenizer exactly as we do.
if command -v node >/dev/null && [ -d "$src/tests/node_modules/@anush008/tokenizers" ]; then
  checks=("$data"/gutenberg/valid/* "$data/wikitext-2/raw/test.txt" "$data/tinystories/tinystories_v2_sample.txt")
  node "$src/tests/ref/tokenize_ref.cjs" hf "$work/a.json" "${checks[@]}" > "$work/hf"
  node "$src/tests/ref/tokenize_ref.cjs" hf-js "$work/a.json" "${checks[@]}" > "$work/hfjs"
  i=0
  for f in "${checks[@]}"; do
    i=$((i + 1))
    "$onebit" tokenizer encode --tokenizer "$work/a.json" --allow-special < "$f" > "$work/ours"
    sed -n "${i}p" "$work/hf" | cmp -s - "$work/ours" || die "Hugging Face tokenizers disagrees on $f"; ok
    sed -n "${i}p" "$work/hfjs" | cmp -s - "$work/ours" || die "Tokenizers.js disagrees on $f"; ok
  done
  # Small tokenizers with add_prefix_space, a non-special added token,
  # ignore_merges and ["a", "b"] merges (the fuzz seeds).
  printf 'hello the cat<sep>sat on<sep> the mat\n  x <|endoftext|>end  ' > "$work/seeds.txt"
  for seed in prefix_space_added ignore_merges array_merges trained bytes_only; do
    json="$src/tests/fuzz/corpus/fuzz_tokenizer_json/$seed.json"
    node "$src/tests/ref/tokenize_ref.cjs" hf "$json" "$work/seeds.txt" > "$work/hf"
    "$onebit" tokenizer encode --tokenizer "$json" --allow-special < "$work/seeds.txt" > "$work/ours"
    cmp -s "$work/hf" "$work/ours" || die "Hugging Face tokenizers disagrees with $seed.json"; ok
  done
else
  die "node or tests/node_modules missing: run scripts/install-deps.sh (the Hugging Face readers are the oracle)"
fi

# Errors: exit status and a message naming the thing.
expect_fail() { # STATUS NEEDLE COMMAND...
  local want=$1 needle=$2; shift 2
  set +e
  "$@" > "$work/out" 2> "$work/err" < "${STDIN:-/dev/null}"
  local got=$?
  set -e
  [ "$got" -eq "$want" ] || die "$* exited $got, wanted $want: $(cat "$work/err")"
  grep -qF -- "$needle" "$work/err" || die "$*: message lacks '$needle': $(cat "$work/err")"
  ok
}
expect_fail 2 "--tokenizer is required" "$onebit" tokenizer encode
expect_fail 1 "$work/nope.json: cannot open" "$onebit" tokenizer encode --tokenizer "$work/nope.json"
printf '{"model": 3}' > "$work/bad.json"
expect_fail 1 "bad.json: field 'model' must be an object" "$onebit" tokenizer decode --tokenizer "$work/bad.json"
echo "1 2 x3" > "$work/badids"
STDIN="$work/badids" expect_fail 1 "'x3' at byte 4 is not a token id" "$onebit" tokenizer decode --tokenizer "$gpt2"
echo "1 50257" > "$work/bigid"
STDIN="$work/bigid" expect_fail 1 "token id 50257 at position 1 is out of range" "$onebit" tokenizer decode --tokenizer "$gpt2"
: > "$work/empty.txt"
expect_fail 1 "empty.txt: file is empty" "$onebit" tokenizer train --vocab-size 300 --input "$work/empty.txt" \
  --output "$work/x.json"
expect_fail 1 "missing.txt: cannot open" "$onebit" tokenizer train --vocab-size 300 --input "$work/missing.txt" \
  --output "$work/x.json"
expect_fail 2 "--vocab-size" "$onebit" tokenizer train --vocab-size 10 --input "$book" --output "$work/x.json"
expect_fail 2 "unknown subcommand 'frobnicate'" "$onebit" tokenizer frobnicate
[ ! -e "$work/x.json" ] || die "a failed training left an output file"; ok
"$onebit" tokenizer encode --help > "$work/help"
grep -q -- "--allow-special" "$work/help" || die "encode --help"; ok
"$onebit" tokenizer train --help > "$work/help"
grep -q -- "--vocab-size" "$work/help" || die "train --help"; ok
echo "$passed passed, 0 failed"
