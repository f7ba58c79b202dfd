#!/usr/bin/env python3
"""Independent safetensors reader and writer for onebit's interop tests.

Written from the format description (8-byte little-endian header length N, N
bytes of UTF-8 JSON mapping tensor names to {dtype, shape, data_offsets} plus an
optional "__metadata__" object of strings, then the data area, offsets relative
to its start), using only json, struct and numpy, and sharing no code with the C
library. Expectations travel in a JSON "sidecar" listing every tensor's dtype,
shape and raw bytes (hex), the float32 value of each element for float dtypes
(hex of the little-endian float32 bits), and the metadata.

  write FILE SIDECAR --seed S [--unaligned] [--shuffle]
      Writes random tensors of every dtype. --unaligned: no padding, and a header
      length that is not a multiple of 8 (so the data area is misaligned).
      --shuffle: header keys in random order and data in another random order.
  read FILE SIDECAR
      Reads FILE strictly (as the reference implementation does: spans contiguous
      from 0 and covering the whole data area) and checks it against SIDECAR,
      value for value. Also checks what onebit's writer promises: header length a
      multiple of 8, padding made of spaces only, "__metadata__" first with sorted
      keys, tensors listed in data order. Exit 0 on success, 1 with a message on
      a mismatch, 77 when numpy is missing.
"""
import json
import random
import struct
import sys

try:
    import numpy as np
except ImportError:  # the test skips
    print("numpy is not available", file=sys.stderr)
    sys.exit(77)

DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": None, "I8": "i1", "U8": "u1", "I32": "<i4", "I64": "<i8"}
SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1, "I32": 4, "I64": 8}


def fail(msg):
    print("safetensors_io: " + msg, file=sys.stderr)
    sys.exit(1)


def f32_bytes(dtype, raw):
    """Little-endian float32 bytes of each element of a float tensor, or None."""
    if dtype == "BF16":
        # bfloat16 is the top half of a float32: widening is a 16-bit shift.
        return (np.frombuffer(raw, "<u2").astype("<u4") << 16).astype("<u4").tobytes()
    if dtype in ("F32", "F16"):
        return np.frombuffer(raw, DTYPES[dtype]).astype("<f4").tobytes()
    return None


def random_tensor(rng, nprng, dtype):
    ndim = rng.randrange(0, 5)
    shape = [rng.randrange(0, 6) if rng.random() < 0.1 else rng.randrange(1, 6) for _ in range(ndim)]
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if dtype in ("F32", "F16"):
        vals = nprng.standard_normal(n).astype(DTYPES[dtype])
        specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-7 if dtype == "F16" else 1e-40],
                            dtype=DTYPES[dtype])
        for i in range(n):
            if rng.random() < 0.15:
                vals[i] = specials[rng.randrange(len(specials))]
        raw = vals.tobytes()
    else:
        # Integers and bfloat16: every bit pattern is a valid value.
        raw = nprng.integers(0, 256, n * SIZES[dtype], dtype=np.uint8).tobytes()
    return shape, raw


def cmd_write(path, sidecar, seed, unaligned, shuffle):
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    names = ["weight", "model.layers.0.self_attn.q_proj.weight", "emb\u00e9d.\u03b1", "quote\"back\\slash",
             "smile\U0001F600", "tab\tname"]
    tensors = []
    for dtype in DTYPES:
        for k in range(rng.randrange(1, 4)):
            shape, raw = random_tensor(rng, nprng, dtype)
            name = "%s.%s.%d" % (rng.choice(names), dtype.lower(), k)
            tensors.append({"name": name, "dtype": dtype, "shape": shape, "raw": raw})
    metadata = {"format": "pt", "seed": str(seed), "unicode \u00fc\U0001F600": "value \"quoted\" \\ \n", "empty": ""}

    data_order = list(range(len(tensors)))
    header_order = list(range(len(tensors)))
    if shuffle:
        rng.shuffle(data_order)
        rng.shuffle(header_order)
    offset = 0
    for i in data_order:
        t = tensors[i]
        t["offsets"] = [offset, offset + len(t["raw"])]
        offset += len(t["raw"])
    header = {"__metadata__": metadata}
    for i in header_order:
        t = tensors[i]
        header[t["name"]] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": t["offsets"]}
    items = list(header.items())
    if shuffle:
        rng.shuffle(items)
    text = json.dumps(dict(items), ensure_ascii=unaligned).encode("utf-8")
    if unaligned:
        if len(text) % 8 == 0:
            text += b" "  # JSON allows trailing whitespace; the length is now odd
    else:
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for i in data_order:
            f.write(tensors[i]["raw"])

    side = {"metadata": metadata, "tensors": []}
    for t in tensors:
        entry = {"name": t["name"], "dtype": t["dtype"], "shape": t["shape"], "hex": t["raw"].hex()}
        fb = f32_bytes(t["dtype"], t["raw"])
        if fb is not None:
            entry["f32_hex"] = fb.hex()
        side["tensors"].append(entry)
    with open(sidecar, "w", encoding="utf-8") as f:
        json.dump(side, f)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        fail("duplicate key in the header")
    return dict(pairs)


def cmd_read(path, sidecar):
    blob = open(path, "rb").read()
    if len(blob) < 8:
        fail("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        fail("header length %d beyond the file" % n)
    raw_header = blob[8:8 + n]
    if n % 8 != 0:
        fail("header length %d is not a multiple of 8" % n)
    stripped = raw_header.rstrip(b" ")
    if not stripped.endswith(b"}"):
        fail("header padding is not made of spaces after the JSON object")
    pairs = json.loads(raw_header.decode("utf-8"), object_pairs_hook=lambda p: p)
    header = no_duplicates(pairs)
    data = blob[8 + n:]

    keys = [k for k, _ in pairs]
    if "__metadata__" in header:
        if keys[0] != "__metadata__":
            fail("__metadata__ is not the first key")
        meta_pairs = header["__metadata__"]
        meta_keys = [k for k, _ in meta_pairs]
        if meta_keys != sorted(meta_keys, key=lambda s: s.encode("utf-8")):
            fail("metadata keys not in byte order: %r" % meta_keys)
        metadata = no_duplicates(meta_pairs)
        for k, v in metadata.items():
            if not isinstance(v, str):
                fail("metadata %r is not a string" % k)
    else:
        metadata = {}
    entries = [(k, no_duplicates(v)) for k, v in pairs if k != "__metadata__"]

    expected_end = 0
    for name, e in entries:
        if set(e) != {"dtype", "shape", "data_offsets"}:
            fail("tensor %r: fields %r" % (name, sorted(e)))
        if e["dtype"] not in DTYPES:
            fail("tensor %r: dtype %r" % (name, e["dtype"]))
        begin, end = e["data_offsets"]
        if begin != expected_end:
            fail("tensor %r: begins at %d, expected %d (listed out of data order, or a gap)" % (name, begin,
                                                                                                expected_end))
        numel = 1
        for d in e["shape"]:
            if not isinstance(d, int) or d < 0:
                fail("tensor %r: bad shape %r" % (name, e["shape"]))
            numel *= d
        if end - begin != numel * SIZES[e["dtype"]]:
            fail("tensor %r: span %d does not match shape %r" % (name, end - begin, e["shape"]))
        expected_end = end
    if expected_end != len(data):
        fail("data area is %d bytes but the tensors cover %d" % (len(data), expected_end))

    side = json.load(open(sidecar, encoding="utf-8"))
    if metadata != side["metadata"]:
        fail("metadata %r != expected %r" % (metadata, side["metadata"]))
    got = dict(entries)
    want_names = [t["name"] for t in side["tensors"]]
    if sorted(got) != sorted(want_names):
        fail("tensor names %r != expected %r" % (sorted(got), sorted(want_names)))
    if [k for k, _ in entries] != want_names:
        fail("tensors not listed in the order added")
    for t in side["tensors"]:
        e = got[t["name"]]
        if e["dtype"] != t["dtype"] or e["shape"] != t["shape"]:
            fail("tensor %r: %s %r != expected %s %r" % (t["name"], e["dtype"], e["shape"], t["dtype"], t["shape"]))
        begin, end = e["data_offsets"]
        raw = data[begin:end]
        if raw != bytes.fromhex(t["hex"]):
            fail("tensor %r: bytes differ" % t["name"])
        if "f32_hex" in t and f32_bytes(t["dtype"], raw) != bytes.fromhex(t["f32_hex"]):
            fail("tensor %r: float32 values from onebit differ from numpy's" % t["name"])
    check_with_torch(data, entries, side)
    print("ok: %d tensors, %d metadata entries" % (len(entries), len(metadata)))


def check_with_torch(data, entries, side):
    """Extra check where Debian's torch is present: its own bf16/f16 widening."""
    try:
        import torch
    except ImportError:
        return
    want = {t["name"]: t for t in side["tensors"]}
    kinds = {"F16": torch.float16, "BF16": torch.bfloat16}
    for name, e in entries:
        if e["dtype"] not in kinds or e["data_offsets"][0] == e["data_offsets"][1]:
            continue
        raw = bytearray(data[e["data_offsets"][0]:e["data_offsets"][1]])
        values = torch.frombuffer(raw, dtype=kinds[e["dtype"]]).float().numpy()
        expect = np.frombuffer(bytes.fromhex(want[name]["f32_hex"]), "<f4")
        finite = ~np.isnan(expect)
        if not np.array_equal(values[finite], expect[finite]) or not np.array_equal(np.isnan(values), ~finite):
            fail("tensor %r: torch widens %s differently" % (name, e["dtype"]))


def main(argv):
    if len(argv) >= 3 and argv[0] == "write":
        seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
        cmd_write(argv[1], argv[2], seed, "--unaligned" in argv, "--shuffle" in argv)
    elif len(argv) == 3 and argv[0] == "read":
        cmd_read(argv[1], argv[2])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
