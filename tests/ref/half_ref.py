#!/usr/bin/env python3
"""Reference half-precision conversions for onebit's tensor tests.

  narrow IN OUT   IN: little-endian uint32 float32 bit patterns. OUT: their
                  float16 bits (numpy's astype, round to nearest even) followed
                  by their bfloat16 bits (computed here from the values: the
                  nearer of the two neighbouring bfloat16 numbers, ties to the
                  even one; NaN -> quiet NaN keeping sign and top payload bits).
  widen OUT       float32 bits of all 65536 float16 patterns (numpy), then of
                  all 65536 bfloat16 patterns (the 16-bit shift that defines
                  bfloat16), as little-endian uint32.

Where Debian's torch is present its float16 and bfloat16 conversions are
compared too (NaN payloads excepted: torch canonicalises them). Exit 1 on any
disagreement, 77 when numpy is missing.
"""
import sys

try:
    import numpy as np
except ImportError:
    print("numpy is not available", file=sys.stderr)
    sys.exit(77)


def bf16_from_values(bits):
    """Round float32 bit patterns to bfloat16 by comparing exact distances."""
    bits = bits.astype(np.uint32)
    value = bits.view(np.float32).astype(np.float64)
    down = (bits >> 16).astype(np.uint32)           # truncation: toward zero
    up = down + 1                                   # the next one away from zero
    down_val = (down << 16).astype(np.uint32).view(np.float32).astype(np.float64)
    up_bits = (up << 16).astype(np.uint32)
    with np.errstate(over="ignore", invalid="ignore"):
        up_val = up_bits.view(np.float32).astype(np.float64)
        # Past the largest finite bfloat16 the next value would be 2^128, which
        # is where rounding decides between the maximum and infinity.
        past = np.isinf(up_val) & ~np.isinf(value)
        up_val = np.where(past, np.copysign(2.0 ** 128, value), up_val)
        d_down = np.abs(value - down_val)
        d_up = np.abs(up_val - value)
    take_up = (d_up < d_down) | ((d_up == d_down) & (down & 1 == 1))
    out = np.where(take_up, up, down).astype(np.uint32)
    exact = d_down == 0
    out = np.where(exact, down, out)
    nan = np.isnan(value)
    out = np.where(nan, down | 0x40, out)
    return (out & 0xFFFF).astype("<u2")


def torch_check(f32_bits, f16, bf16):
    try:
        import torch
    except ImportError:
        return
    x = f32_bits.view(np.float32)
    keep = ~np.isnan(x)
    t = torch.from_numpy(x.copy())
    t16 = t.to(torch.float16).view(torch.int16).numpy().view(np.uint16)
    tb16 = t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    if not np.array_equal(t16[keep], f16[keep]):
        sys.exit("half_ref: torch and numpy disagree on float16")
    if not np.array_equal(tb16[keep], bf16[keep]):
        sys.exit("half_ref: torch disagrees with the bfloat16 reference")


def narrow(inp, out):
    bits = np.fromfile(inp, dtype="<u4")
    with np.errstate(over="ignore", invalid="ignore"):
        f16 = bits.view(np.float32).astype(np.float16).view("<u2")
    bf16 = bf16_from_values(bits)
    torch_check(bits, f16, bf16)
    with open(out, "wb") as f:
        f.write(f16.astype("<u2").tobytes())
        f.write(bf16.astype("<u2").tobytes())


def widen(out):
    h = np.arange(65536, dtype=np.uint32).astype("<u2")
    f16 = h.view(np.float16).astype(np.float32).view("<u4")
    bf16 = (h.astype(np.uint32) << 16).astype("<u4")
    try:
        import torch
        keep = ~np.isnan(f16.view(np.float32))
        t = torch.from_numpy(h.view(np.int16).copy())
        if not np.array_equal(t.view(torch.float16).float().numpy()[keep], f16.view(np.float32)[keep]):
            sys.exit("half_ref: torch and numpy widen float16 differently")
        keep = ~np.isnan(bf16.view(np.float32))
        if not np.array_equal(t.view(torch.bfloat16).float().numpy()[keep], bf16.view(np.float32)[keep]):
            sys.exit("half_ref: torch widens bfloat16 differently")
    except ImportError:
        pass
    with open(out, "wb") as f:
        f.write(f16.tobytes())
        f.write(bf16.tobytes())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "narrow":
        narrow(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "widen":
        widen(sys.argv[2])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
