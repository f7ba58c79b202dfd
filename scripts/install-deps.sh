#!/usr/bin/env bash
# Installs every build and test dependency of onebit from Debian packages (and the
# npm test oracles). Non-interactive and idempotent: packages already present are
# skipped, and `apt-get update` runs at most once per invocation.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang libomp-dev libclang-rt-14-dev
  libcjson-dev libpcre2-dev libopenblas-dev
  # tests and reference implementations
  libcmocka-dev python3 python3-numpy python3-torch nodejs valgrind
  # plots
  gnuplot-nox
  # microcontroller cross-build and emulation
  gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
  # multi-process launch for data-parallel training
  openmpi-bin libopenmpi-dev
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# nodejs from NodeSource bundles npm (and conflicts with Debian's npm package).
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi

# JavaScript test oracles (tiktoken's GPT-2 encoding, Hugging Face tokenizers), kept
# out of the repository in tests/node_modules (ignored by git).
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$here/tests/package.json" ]; then
  if [ ! -d "$here/tests/node_modules" ] || [ "$here/tests/package.json" -nt "$here/tests/node_modules" ]; then
    (cd "$here/tests" && npm install --no-audit --no-fund --loglevel=error && touch node_modules)
  fi
fi
echo "install-deps: done"
