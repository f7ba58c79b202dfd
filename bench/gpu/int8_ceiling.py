"""What cuBLASLt's int8 products (torch._int_mm: int8 x int8 -> int32) give on
this GPU for the layer products of GPT-2 124M at batch 16 x 1024, beside bf16
products of the same shapes: the question whether int8 forward products
(exact for ternary weights x 8-bit activations) could come from cuBLASLt.
Run on a GPU machine: python3 bench/gpu/int8_ceiling.py"""
import torch

SHAPES = [(16384, 2304, 768), (16384, 4096, 768), (16384, 768, 2048), (16384, 768, 768)]


def median_ms(f, n=30):
    for _ in range(5):
        f()
    torch.cuda.synchronize()
    times = []
    for _ in range(n):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        f()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[n // 2]


print(torch.cuda.get_device_name(), torch.__version__)
for M, N, K in SHAPES:
    x8 = torch.randint(-127, 127, (M, K), dtype=torch.int8, device="cuda")
    w8 = torch.randint(-1, 2, (N, K), dtype=torch.int8, device="cuda")
    xb, wb = x8.bfloat16(), w8.bfloat16()
    i8 = median_ms(lambda: torch._int_mm(x8, w8.t()))
    bf = median_ms(lambda: xb @ wb.t())
    exact = torch.equal(torch._int_mm(x8, w8.t()).float(), xb.float() @ wb.float().t())
    flop = 2 * M * N * K
    print(f"{M}x{N}x{K}: int8 {i8 * 1e3:.1f} us {flop / i8 / 1e9:.0f} TOPS, bf16 {bf * 1e3:.1f} us "
          f"{flop / bf / 1e9:.0f} TFLOP/s, bf16/int8 time {bf / i8:.2f}, int8 exact {exact}")
