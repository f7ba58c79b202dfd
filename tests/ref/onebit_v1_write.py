#!/usr/bin/env python3
"""Writes a OneBit-LLM version 1 .1bit file from the format's description alone
(docs/FORMAT.md, "Version 1"), with random binary and ternary tensors, and the
codes it packed, for test_format's reader check:

  onebit_v1_write.py OUT.1bit OUT.codes SEED

Version 1, all little-endian: b"1BIT", u32 version (1), u32 tensor count,
u32 config length, the config JSON; then per tensor u32 name length, the name,
u8 dtype (1 binary, 2 ternary), u32 ndims, u64 dims[ndims], u64 data length,
the data: the codes of the whole tensor in row-major order, packed least
significant bits first (ternary 2 bits: 00 = 0, 01 = +1, 11 = -1; binary
1 bit: 1 = +1, 0 = -1), the last byte padded with zero bits.

OUT.codes holds, per tensor in file order, its codes as int8 (row-major), so
the reader's unpacking is checked against values this script chose. Shapes
include 1-D, 3-D and rows whose codes straddle bytes and 256-weight blocks.
"""
import json
import random
import struct
import sys

TERNARY_BITS = {0: 0b00, 1: 0b01, -1: 0b11}


def pack(codes, dtype):
    bits_per = 1 if dtype == 1 else 2
    out = bytearray((len(codes) * bits_per + 7) // 8)
    for i, c in enumerate(codes):
        v = (1 if c > 0 else 0) if dtype == 1 else TERNARY_BITS[c]
        pos = i * bits_per
        out[pos // 8] |= v << (pos % 8)
    return bytes(out)


def main():
    out_path, codes_path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    config = {"vocab_size": 100, "hidden_size": 40, "num_heads": 4, "num_layers": 1,
              "intermediate_size": 72, "use_ternary": True}
    shapes = [("model.layers.0.self_attn.q_proj.weight", 2, [40, 40]),
              ("model.layers.0.mlp.up_proj.weight", 1, [72, 40]),
              ("model.layers.0.mlp.down_proj.weight", 2, [40, 72]),
              ("odd.vector", 2, [rng.randint(1, 29)]),
              ("odd.cube", 1, [3, 2, rng.randint(250, 300)]),
              ("wide.ternary", 2, [2, rng.randint(257, 600)])]
    body = bytearray()
    all_codes = bytearray()
    for name, dtype, dims in shapes:
        n = 1
        for d in dims:
            n *= d
        choices = [-1, 1] if dtype == 1 else [-1, 0, 1]
        codes = [rng.choice(choices) for _ in range(n)]
        data = pack(codes, dtype)
        enc = name.encode()
        body += struct.pack("<I", len(enc)) + enc + struct.pack("<BI", dtype, len(dims))
        body += b"".join(struct.pack("<Q", d) for d in dims)
        body += struct.pack("<Q", len(data)) + data
        all_codes += bytes(c & 0xFF for c in codes)
    cfg = json.dumps(config).encode()
    head = b"1BIT" + struct.pack("<III", 1, len(shapes), len(cfg)) + cfg
    with open(out_path, "wb") as f:
        f.write(head + bytes(body))
    with open(codes_path, "wb") as f:
        f.write(bytes(all_codes))


if __name__ == "__main__":
    main()
