#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_safetensors: small valid files (every dtype,
metadata, empty and scalar tensors, unpadded header, shuffled order) and
near-valid ones that each break one rule. Run from anywhere:

  python3 tests/fuzz/gen_corpus_safetensors.py [OUTDIR]

OUTDIR defaults to tests/fuzz/corpus/fuzz_safetensors next to this script.
Uses only json and struct; every file stays under 2 KB.
"""
import json
import os
import random
import struct
import sys

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1, "I32": 4, "I64": 8}


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def build(tensors, metadata=None, pad=True, order=None, rng=None):
    """tensors: list of (name, dtype, shape); data written in list order."""
    header, data, offset = {}, b"", 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape in tensors:
        size = numel(shape) * SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        data += bytes((offset + i) * 37 % 256 for i in range(size))
        offset += size
    items = list(header.items())
    if order == "shuffle":
        rng.shuffle(items)
    text = json.dumps(dict(items), separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def raw(header_text, data=b"", length=None):
    text = header_text.encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "fuzz_safetensors")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(1)
    every = [("t.%s" % d.lower(), d, [2, 3]) for d in SIZES]
    entry = '"x":{"dtype":"F32","shape":[2,2],"data_offsets":[%s]}'
    seeds = {
        "valid_every_dtype": build(every),
        "valid_metadata": build(every[:2], {"format": "pt", "note": "caf\u00e9 \"q\""}),
        "valid_empty_header": build([]),
        "valid_metadata_only": build([], {"k": "v"}),
        "valid_scalar_and_empty": build([("s", "I64", []), ("e", "F32", [0, 4]), ("u", "U8", [5])]),
        "valid_unpadded": build(every[:3], {"a": "b"}, pad=False),
        "valid_shuffled": build(every, {"m": "1"}, order="shuffle", rng=rng),
        "valid_eight_dims": build([("d8", "U8", [1, 2, 1, 2, 1, 2, 1, 2])]),
        "bad_span_mismatch": raw("{" + entry % "0,12" + "}", bytes(16)),
        "bad_span_outside": raw("{" + entry % "0,16" + "}", bytes(8)),
        "bad_overlap": raw('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},'
                           '"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}', bytes(24)),
        "bad_dtype": raw('{"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}', bytes(16)),
        "bad_duplicate_key": raw("{" + entry % "0,16" + "," + entry % "16,32" + "}", bytes(32)),
        "bad_metadata_value": raw('{"__metadata__":{"k":1}}'),
        "bad_negative_shape": raw('{"x":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}}', bytes(16)),
        "bad_shape_overflow": raw('{"x":{"dtype":"I64","shape":[4294967296,4294967296],"data_offsets":[0,16]}}',
                                  bytes(16)),
        "bad_trailing_garbage": raw("{" + entry % "0,16" + "}x", bytes(16)),
        "bad_header_length": raw("{" + entry % "0,16" + "}", bytes(16), length=1 << 40),
        "bad_truncated": build(every)[:150],
        "bad_extra_field": raw('{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16],"y":0}}', bytes(16)),
    }
    for name, blob in seeds.items():
        assert len(blob) < 2048, name
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)
    print("wrote %d seeds to %s" % (len(seeds), out))


if __name__ == "__main__":
    main()
