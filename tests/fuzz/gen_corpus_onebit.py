#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_onebit_file: small valid .1bit files of
version 2 (a whole tiny model the runtime can open, every dtype, no tokenizer)
and version 1, and near-valid ones that each break one rule with the
checksums fixed up, so that the fuzzer starts next to every check. Written
from docs/FORMAT.md, not from the C writer. Run from anywhere:

  python3 tests/fuzz/gen_corpus_onebit.py [OUTDIR]

OUTDIR defaults to tests/fuzz/corpus/fuzz_onebit_file next to this script.
Uses only json, struct and zlib; every file stays under 8 KB.
"""
import json
import os
import struct
import sys
import zlib

F32, F16, I8, FOURBIT, TERNARY2, BINARY1 = 1, 2, 3, 4, 5, 6
HEADER, ENTRY = 128, 96


def row_bytes(dtype, cols):
    padded = (cols + 255) // 256 * 256
    return {F32: cols * 4, F16: cols * 2, I8: padded, FOURBIT: padded // 2,
            TERNARY2: padded // 4, BINARY1: padded // 8}[dtype]


def scale_count(dtype, rows):
    return {I8: rows, FOURBIT: rows, TERNARY2: 1, BINARY1: 1}.get(dtype, 0)


def align(n, a):
    return (n + a - 1) // a * a


def ternary_rows(rows, cols, seed):
    """Packed TERNARY2 rows: weight 32k+b of a 128-weight group in bits 2k of byte b, as code+1."""
    out = bytearray()
    for r in range(rows):
        row = bytearray(row_bytes(TERNARY2, cols))
        padded = len(row) * 4
        for j in range(padded):
            code = ((r * 7 + j * 3 + seed) % 3) - 1 if j < cols else 0
            g, k, b = j // 128, (j % 128) // 32, j % 32
            row[g * 32 + b] |= (code + 1) << (2 * k)
        out += row
    return bytes(out)


def floats(values):
    return b"".join(struct.pack("<f", v) for v in values)


def build_v2(tensors, config, tokenizer=b""):
    """tensors: list of (name, dtype, shape, data bytes, scale floats)."""
    names = b"".join(t[0].encode() for t in tensors)
    table_off = HEADER
    strings_off = table_off + ENTRY * len(tensors)
    config_off = strings_off + len(names)
    tok_off = config_off + len(config)
    header_size = align(tok_off + len(tokenizer), 64)
    at, placed = header_size, []
    for name, dtype, shape, data, scales in tensors:
        d = align(at, 64)
        at = d + len(data)
        s = 0
        if scales:
            s = align(at, 4)
            at = s + 4 * len(scales)
        placed.append((d, s))
    file_size = at
    h = bytearray(header_size)
    h[0:4] = b"1BIT"
    struct.pack_into("<IIIQQII", h, 4, 2, 0, 0, file_size, header_size, len(tensors), 64)
    struct.pack_into("<QQQQQQQ", h, 40, table_off, strings_off, len(names), config_off, len(config),
                     tok_off if tokenizer else 0, len(tokenizer))
    name_at = 0
    body = bytearray(file_size - header_size)
    for i, (name, dtype, shape, data, scales) in enumerate(tensors):
        e = table_off + ENTRY * i
        dims = list(shape) + [0] * (4 - len(shape))
        sb = floats(scales)
        crc = zlib.crc32(data + sb)
        struct.pack_into("<IIII4QQQQII", h, e, name_at, len(name), dtype, len(shape), *dims,
                         placed[i][0], len(data), placed[i][1], len(scales), crc)
        name_at += len(name)
        d, s = placed[i]
        body[d - header_size:d - header_size + len(data)] = data
        if scales:
            body[s - header_size:s - header_size + len(sb)] = sb
    h[strings_off:strings_off + len(names)] = names
    h[config_off:config_off + len(config)] = config
    h[tok_off:tok_off + len(tokenizer)] = tokenizer
    struct.pack_into("<I", h, 8, zlib.crc32(bytes(h)))
    return bytes(h) + bytes(body)


def fix_header_crc(b):
    b = bytearray(b)
    hs = struct.unpack_from("<Q", b, 24)[0]
    struct.pack_into("<I", b, 8, 0)
    struct.pack_into("<I", b, 8, zlib.crc32(bytes(b[:hs])))
    return bytes(b)


def tiny_model():
    cfg = {"vocab_size": 16, "hidden_size": 8, "num_heads": 2, "num_layers": 1, "intermediate_size": 8,
           "max_seq_len": 4, "use_ternary": True, "use_rope": True, "use_qk_norm": False}
    t = [("model.embed_tokens.weight", F32, [16, 8], floats([(i % 13) / 13.0 - 0.5 for i in range(128)]), [])]
    t.append(("model.layers.0.input_layernorm.weight", F32, [8], floats([1.0] * 8), []))
    for k, p in enumerate(["q", "k", "v", "o"]):
        t.append((f"model.layers.0.self_attn.{p}_proj.weight", TERNARY2, [8, 8], ternary_rows(8, 8, k), [0.05]))
    t.append(("model.layers.0.post_attention_layernorm.weight", F32, [8], floats([1.0] * 8), []))
    t.append(("model.layers.0.mlp.up_proj.weight", TERNARY2, [8, 8], ternary_rows(8, 8, 5), [0.04]))
    t.append(("model.layers.0.mlp.down_proj.weight", TERNARY2, [8, 8], ternary_rows(8, 8, 6), [0.03]))
    t.append(("model.norm.weight", F32, [8], floats([1.0] * 8), []))
    return t, json.dumps(cfg).encode()


def every_dtype():
    return [("f32", F32, [3], floats([1.5, -2.0, 0.25]), []),
            ("f16", F16, [2, 2], struct.pack("<4H", 0x3c00, 0xbc00, 0x0001, 0x7bff), []),
            ("i8", I8, [2, 3], bytes([1, 0x81, 127] + [0] * 253 + [5, 6, 7] + [0] * 253), [0.5, 0.25]),
            ("fourbit", FOURBIT, [1, 3], bytes([0x8f, 0x81, 0x88] + [0x88] * 125), [0.1]),
            ("ternary", TERNARY2, [1, 5], ternary_rows(1, 5, 1), [0.2]),
            ("binary", BINARY1, [1, 9], bytes([1, 0, 1, 1, 0, 0, 1, 0, 1] + [0] * 23), [0.3])]


def build_v1(tensors, config):
    out = b"1BIT" + struct.pack("<III", 1, len(tensors), len(config)) + config
    for name, dtype, dims, data in tensors:
        out += struct.pack("<I", len(name)) + name.encode() + struct.pack("<BI", dtype, len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<Q", len(data)) + data
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "fuzz_onebit_file")
    os.makedirs(out, exist_ok=True)
    files = {}
    model, cfg = tiny_model()
    files["model_v2"] = build_v2(model, cfg)
    files["model_v2_tokenizer"] = build_v2(model, cfg, b'{"model": {"type": "BPE", "vocab": {}, "merges": []}}')
    files["dtypes_v2"] = build_v2(every_dtype(), b"{}")
    files["empty_v2"] = build_v2([], b"{}")
    files["v1"] = build_v1([("w", 2, [2, 3], bytes([0b01001101, 0b11])), ("b", 1, [10], bytes([0xff, 0x02]))],
                           json.dumps({"hidden_size": 3}).encode())
    base = files["dtypes_v2"]
    e = HEADER  # first entry
    mutations = {
        "bad_dtype": (e + 8, struct.pack("<I", 9)),
        "bad_ndims": (e + 12, struct.pack("<I", 5)),
        "data_unaligned": (e + 48, struct.pack("<Q", struct.unpack_from("<Q", base, e + 48)[0] + 4)),
        "name_out": (e + 0, struct.pack("<I", 4000)),
        "scales_count": (e + ENTRY * 2 + 72, struct.pack("<I", 1)),
        "tensor_count": (32, struct.pack("<I", 200)),
        "config_size": (72, struct.pack("<Q", 0)),
    }
    for name, (at, value) in mutations.items():
        b = bytearray(base)
        b[at:at + len(value)] = value
        files["broken_" + name] = fix_header_crc(b)
    files["broken_crc"] = base[:200] + bytes([base[200] ^ 1]) + base[201:]
    files["truncated"] = base[:150]
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(files)} files to {out}")


if __name__ == "__main__":
    main()
