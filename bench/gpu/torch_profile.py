"""Where the PyTorch peer's training step goes on the GPU: bitnet_ref.py's model,
optimizer and step (same shapes and flags as its benchmark), timed by
torch.profiler over a few steps after warm-up; prints the kernels by total GPU
time per step.

  python3 bench/gpu/torch_profile.py path/to/bitnet_ref.py [--quant ternary] [--steps 3]
"""
import argparse, importlib.util
import torch
from torch.profiler import profile, ProfilerActivity

ap = argparse.ArgumentParser()
ap.add_argument("ref")
ap.add_argument("--quant", default="ternary")
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--bs", type=int, default=16)
ap.add_argument("--T", type=int, default=1024)
ap.add_argument("--top", type=int, default=45)
a = ap.parse_args()
spec = importlib.util.spec_from_file_location("bitnet_ref", a.ref)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)

c = dict(hidden_size=768, num_heads=12, num_layers=12, intermediate_size=2048, vocab_size=50304,
         max_seq_len=a.T, tie=True)
torch.manual_seed(0)
torch.backends.cuda.matmul.allow_tf32 = True
m = ref.LM(c, a.quant).cuda()
opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
fn = torch.compile(m)


def step():
    x = torch.randint(0, c["vocab_size"], (a.bs, a.T + 1), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = fn(x[:, :-1], x[:, 1:])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if a.quant != "fp":
        with torch.no_grad():
            for b in m.blocks:
                for lin in (b.qkv, b.o, b.up, b.down):
                    lin.weight.clamp_(-1.5, 1.5)


for _ in range(5):
    step()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(a.steps):
        step()
    torch.cuda.synchronize()


def gpu_us(e):
    return getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)


rows = [e for e in prof.key_averages() if gpu_us(e) > 0]
rows.sort(key=lambda e: -gpu_us(e))
total = sum(gpu_us(e) for e in rows) / a.steps / 1e3
print(f"PyTorch {a.quant} GPU time per step: {total:.2f} ms (kernels, summed)")
for e in rows[: a.top]:
    ms = gpu_us(e) / a.steps / 1e3
    print(f"  {ms:7.3f} ms  {e.count // a.steps:4d}x  {e.key[:110]}")
