#!/usr/bin/env bash
# Measures the bytes of the default model (config.json at the repository root:
# 512 hidden, 6 layers, GPT-2 vocabulary) in every export format, as a
# markdown table (the table of docs/FORMAT.md, "Sizes"). The checkpoint comes
# from one training step on TinyShakespeare (the bytes do not depend on the
# values); FP16 safetensors is that checkpoint with every tensor in half
# precision; the int8 model is the same weights with every decoder layer in
# eightbit mode. Takes a minute or two and ~1 GB of scratch space.
#
#   scripts/measure-export-sizes.sh [BUILD_DIR]     (default: build)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
onebit=$build/bin/onebit
data=${ONEBIT_DATA_DIR:-$here/../shared/data}
python=${ONEBIT_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$onebit" train --config "$here/config.json" --data-dir "$data/tinyshakespeare/input.txt" \
  --tokenizer "$data/gpt2/tokenizer.json" --output-dir "$work/run" --batch-size 1 --max-steps 1 --no-progress \
  >"$work/train.log" 2>&1 || { cat "$work/train.log"; exit 1; }
ck=$(readlink -f "$work/run/latest")

# FP16 safetensors: the same tensors, each converted to F16.
"$python" - "$ck/model.safetensors" "$work/model-f16.safetensors" <<'PY'
import json, struct, sys
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
raw = open(src, "rb").read()
n = struct.unpack_from("<Q", raw)[0]
header = json.loads(raw[8:8 + n])
meta = header.pop("__metadata__", None)
out, blobs, at = ({"__metadata__": meta} if meta else {}), [], 0
for name, t in header.items():
    b, e = t["data_offsets"]
    a = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4").astype("<f2").tobytes()
    out[name] = {"dtype": "F16", "shape": t["shape"], "data_offsets": [at, at + len(a)]}
    blobs.append(a)
    at += len(a)
text = json.dumps(out, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
open(dst, "wb").write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
PY

# The int8 model: the same checkpoint with eightbit decoder layers.
cp -r "$ck" "$work/int8"
"$python" - "$work/int8/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["layer_bit_map"] = {"embedding": "f16", "layer_modes": ["eightbit"] * c["num_layers"]}
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY

run_export() { "$onebit" export --verify=false "$@" >/dev/null 2>&1; }
run_export --model-dir "$ck" --output "$work/binary.1bit" --pack-mode binary --emit-c-header
run_export --model-dir "$ck" --output "$work/binary-i8.1bit" --pack-mode binary --embed-dtype int8 --emit-c-header
run_export --model-dir "$ck" --output "$work/ternary.1bit" --pack-mode ternary --change-mode
run_export --model-dir "$ck" --output "$work/ternary-i8.1bit" --pack-mode ternary --change-mode --embed-dtype int8
run_export --model-dir "$work/int8" --output "$work/int8.1bit" --embed-dtype int8
"$onebit" export --verify=false --model-dir "$ck" --output "$work/x.1bit" >"$work/table.txt" 2>/dev/null

params=$(awk '$1 == "total" { gsub(",", "", $2); print $2 }' "$work/table.txt")
fp32=$(stat -c %s "$ck/model.safetensors")
row() { # label, file
  local b
  b=$(stat -c %s "$2")
  awk -v l="$1" -v b="$b" -v g="$(echo "$b" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')" -v p="$params" -v f="$fp32" \
    'BEGIN { printf "| %s | %s | %.1f | %.2f | %.1f× |\n", l, g, b / 1e6, 8 * b / p, f / b }'
}
echo "Default config ($(echo "$params" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta') parameters, $(sed -n 's/^embedding *1 *\([0-9,]*\).*/\1/p' "$work/table.txt") in the tied embedding table):"
echo
echo "| format | bytes | MB | bits per parameter | smaller than FP32 |"
echo "| --- | ---: | ---: | ---: | ---: |"
row "FP32 safetensors (checkpoint)" "$ck/model.safetensors"
row "FP16 safetensors" "$work/model-f16.safetensors"
row "int8 .1bit (eightbit layers, int8 table)" "$work/int8.1bit"
row "ternary .1bit (f32 table)" "$work/ternary.1bit"
row "ternary .1bit (int8 table)" "$work/ternary-i8.1bit"
row "binary .1bit (f32 table)" "$work/binary.1bit"
row "binary .1bit (int8 table)" "$work/binary-i8.1bit"
row "C header, binary (f32 table)" "$work/binary.h"
row "C header, binary (int8 table)" "$work/binary-i8.h"
echo
echo "Size table of \`onebit export\` for the binary .1bit (f32 table):"
echo
echo '```'
cat "$work/table.txt"
echo '```'
