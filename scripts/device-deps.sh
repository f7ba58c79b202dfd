#!/usr/bin/env bash
# Downloads the Debian packages onebit builds against into .devdeps/ (ignored by
# git), for GPU machines that have CUDA but none of these libraries and no
# package registry: bench/gpu/device_run.sh unpacks them there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/.devdeps"
cd "$root/.devdeps"
rm -f ./*.deb
apt-get download libcjson-dev libcjson1 libpcre2-dev libpcre2-8-0 libopenblas-dev libopenblas-pthread-dev \
  libopenblas0-pthread libgfortran5 libcmocka-dev libcmocka0 2>&1 | tail -1
ls -la

# Test data and the PyTorch peer, copied (not committed: .devdata/ is ignored)
# because ../shared does not travel to the GPU machine.
shared="$root/../shared"
mkdir -p "$root/.devdata/tinyshakespeare" "$root/.devdata/gpt2" "$root/.devdata/refs"
cp "$shared/data/tinyshakespeare/input.txt" "$root/.devdata/tinyshakespeare/"
cp "$shared/data/gpt2/tokenizer.json" "$root/.devdata/gpt2/"
cp "$shared/refs/bitnet_ref.py" "$shared/refs/gpt2-124m-ternary.json" "$root/.devdata/refs/"
if [ "${ONEBIT_DEVICE_GUTENBERG:-0}" = 1 ]; then
  mkdir -p "$root/.devdata/gutenberg"
  cp -r "$shared/data/gutenberg/train" "$shared/data/gutenberg/valid" "$root/.devdata/gutenberg/"
fi
du -sh "$root/.devdata"
