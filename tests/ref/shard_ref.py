"""Independent reader and writer of llm.c token shards, with numpy the way
llm.c's dev/data scripts do it: a header of 256 int32 (magic, version, token
count) followed by uint16 tokens (magic 20240520, version 1) or uint32 tokens
(magic 20240801, version 7).

  shard_ref.py write PATH u16|u32 COUNT SEED   writes random tokens, prints them
  shard_ref.py read PATH                        prints magic, version, count, then the tokens
"""
import sys

import numpy as np

LAYOUTS = {"u16": (20240520, 1, np.uint16), "u32": (20240801, 7, np.uint32)}


def write(path, dtype, count, seed):
    magic, version, np_dtype = LAYOUTS[dtype]
    high = 65536 if dtype == "u16" else 2**31
    tokens = np.random.default_rng(seed).integers(0, high, size=count).astype(np_dtype)
    header = np.zeros(256, dtype=np.int32)
    header[0], header[1], header[2] = magic, version, count
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.tobytes())
    print(" ".join(str(int(t)) for t in tokens))


def read(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(256 * 4), dtype=np.int32)
        magic, version, count = int(header[0]), int(header[1]), int(header[2])
        np_dtype = {20240520: np.uint16, 20240801: np.uint32}[magic]
        tokens = np.frombuffer(f.read(), dtype=np_dtype)
    assert len(tokens) == count, (len(tokens), count)
    print(magic, version, count, " ".join(str(int(t)) for t in tokens))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        read(sys.argv[2])
