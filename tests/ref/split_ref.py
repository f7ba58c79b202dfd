"""Independent check of `onebit tokenize` output: reads llm.c shards with numpy,
decodes the tokens with GPT-2's byte-level vocabulary (vocab.json), cuts the
stream at EOS into documents, and compares them with the documents and the
train/val split that docs/DATA.md defines, recomputed here from the raw text:

  split_ref.py --vocab vocab.json --mode file|blank-line|eot|jsonl [--field text]
               --fraction F --seed S --inputs FILE... --train SHARD... [--val SHARD...]

Prints "ok <train docs> <val docs>" or exits 1 with the first difference."""
import argparse
import json
import re
import sys

import numpy as np

MASK = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def is_val(text, seed, fraction):
    if fraction <= 0:
        return False
    u = (splitmix64(fnv1a64(text) ^ splitmix64(seed)) >> 11) * 2.0**-53
    return u < fraction


def byte_decoder():
    """GPT-2's reversible map between bytes and printable characters."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def documents(path, mode, field):
    data = open(path, "rb").read()
    ws = b" \t\n\r\f\v"
    if mode == "file":
        return [data]
    if mode == "jsonl":
        docs = []
        for line in data.split(b"\n"):
            if line.strip(ws):
                text = json.loads(line)[field].encode("utf-8")
                if text:
                    docs.append(text)
        return docs
    if mode == "blank-line":
        parts = re.split(rb"\n[ \t\r]*\n", data)
    else:
        parts = data.split(b"<|endoftext|>")
    return [p.strip(ws) for p in parts if p.strip(ws)]


def shard_docs(paths, vocab, eos):
    decoder = byte_decoder()
    id_to_bytes = {i: bytes(decoder[c] for c in tok) for tok, i in vocab.items()}
    tokens = []
    for path in paths:
        with open(path, "rb") as f:
            header = np.frombuffer(f.read(1024), dtype=np.int32)
            dtype = {20240520: np.uint16, 20240801: np.uint32}[int(header[0])]
            body = np.frombuffer(f.read(), dtype=dtype)
        assert len(body) == int(header[2]), path
        tokens.extend(int(t) for t in body)
    docs, current = [], None
    for t in tokens:
        if t == eos:
            if current is not None:
                docs.append(bytes(current))
            current = bytearray()
        else:
            assert current is not None, "the stream does not start with EOS"
            current += id_to_bytes[t]
    if current is not None:
        docs.append(bytes(current))
    return docs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--mode", required=True)
    ap.add_argument("--field", default="text")
    ap.add_argument("--fraction", type=float, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--inputs", nargs="+", required=True)
    ap.add_argument("--train", nargs="*", default=[])
    ap.add_argument("--val", nargs="*", default=[])
    a = ap.parse_args()
    vocab = json.load(open(a.vocab, encoding="utf-8"))
    eos = vocab["<|endoftext|>"]
    want = {"train": [], "val": []}
    for path in a.inputs:
        for d in documents(path, a.mode, a.field):
            want["val" if is_val(d, a.seed, a.fraction) else "train"].append(d)
    for split, shards in (("train", a.train), ("val", a.val)):
        got = shard_docs(shards, vocab, eos)
        if got != want[split]:
            n = min(len(got), len(want[split]))
            first = next((i for i in range(n) if got[i] != want[split][i]), n)
            print(f"{split}: {len(got)} documents in the shards, {len(want[split])} expected; first difference at "
                  f"document {first}", file=sys.stderr)
            sys.exit(1)
    print("ok", len(want["train"]), len(want["val"]))


if __name__ == "__main__":
    main()
