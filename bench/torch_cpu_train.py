"""PyTorch eager CPU training of the model a onebit config.json describes (the
peer of bench_cpu_train): same layers, quantisers with straight-through
gradients, AdamW; float32 on the CPU. Prints one JSON line with tokens/s.
  torch_cpu_train.py CONFIG --batch B --seq T --steps N --threads K"""
import argparse, json, math, time

import torch
import torch.nn.functional as F


def act_quant(x, bits):
    if bits == 0:
        return x
    q = 2 ** (bits - 1) - 1
    s = q / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    y = (x * s).round().clamp(-q - 1, q) / s
    return x + (y - x).detach()


def w_quant(w, c):
    wc = w.clamp(-c["latent_clamp_max"], c["latent_clamp_max"])
    beta = wc.abs().mean().clamp(min=1e-8)
    if c.get("use_ternary"):
        if c.get("use_dynamic_threshold", True):
            m = (wc.abs() > 0.7 * beta).float()
            alpha = (wc.abs() * m).sum() / m.sum().clamp(min=1)
            y = alpha * torch.sign(wc) * m
        else:
            y = beta * (wc / beta).round().clamp(-1, 1)
    else:
        y = beta * torch.where(wc - wc.mean() >= 0, 1.0, -1.0)
    return wc + (y - wc).detach()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=0)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    c = {"vocab_size": 50257, "hidden_size": 512, "num_heads": 8, "num_layers": 6, "intermediate_size": 2048,
         "max_seq_len": 512, "layer_norm_eps": 1e-5, "use_qk_norm": True, "use_residual_scaling": True,
         "latent_clamp_max": 1.5, "activation_bits": 8, "rope_theta": 10000.0}
    c.update(json.load(open(a.config)))
    V, H, L, nh = c["vocab_size"], c["hidden_size"], c["num_layers"], c["num_heads"]
    nkv, Fd, T = c.get("num_kv_heads", nh), c["intermediate_size"], a.seq or c["max_seq_len"]
    hd, bits, eps = H // nh, c["activation_bits"], c["layer_norm_eps"]
    g = torch.Generator().manual_seed(0)
    P = lambda *s: torch.nn.Parameter(torch.randn(*s, generator=g) * 0.02)
    params = {"emb": P(V, H)}
    if not c.get("use_rope"):
        params["pos"] = P(c["max_seq_len"], H)
    layers = []
    for _ in range(L):
        p = {k: P(*s) for k, s in [("q", (H, H)), ("k", (nkv * hd, H)), ("v", (nkv * hd, H)), ("o", (H, H)),
                                    ("up", (Fd, H)), ("down", (H, Fd))]}
        if c.get("use_swiglu"):
            p["gate"] = P(Fd, H)
        for k in ["n1", "n2", "qn", "kn"]:
            p[k] = torch.nn.Parameter(torch.ones(hd if k in ("qn", "kn") else H))
        layers.append(p)
    params["nf"] = torch.nn.Parameter(torch.ones(H))
    allp = list(params.values()) + [t for p in layers for t in p.values()]
    opt = torch.optim.AdamW(allp, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    norm = (lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w) if c.get("use_subln") else \
        (lambda x, w: F.layer_norm(x, (x.shape[-1],), w, None, eps))
    lin = lambda x, w: F.linear(act_quant(x, bits), w_quant(w, c))
    r = 1 / math.sqrt(2) if c["use_residual_scaling"] else 1.0
    mask = torch.full((T, T), float("-inf")).triu(1)

    def step(idx, tgt):
        B = idx.shape[0]
        x = params["emb"][idx] + (params["pos"][:T] if "pos" in params else 0)
        for p in layers:
            n = norm(x, p["n1"])
            q = lin(n, p["q"]).view(B, T, nh, hd)
            k = lin(n, p["k"]).view(B, T, nkv, hd)
            v = lin(n, p["v"]).view(B, T, nkv, hd)
            if c["use_qk_norm"]:
                q = q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + eps) * p["qn"]
                k = k * torch.rsqrt(k.pow(2).mean(-1, keepdim=True) + eps) * p["kn"]
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            k, v = k.repeat_interleave(nh // nkv, 1), v.repeat_interleave(nh // nkv, 1)
            att = (q @ k.transpose(-1, -2) / math.sqrt(hd) + mask).softmax(-1)
            o = (att @ v).transpose(1, 2).reshape(B, T, H)
            x = x + r * lin(o, p["o"])
            n = norm(x, p["n2"])
            u = lin(n, p["up"])
            h = F.silu(lin(n, p["gate"])) * u if "gate" in p else (F.relu(u) ** 2 if c.get("use_relu2") else F.silu(u))
            x = x + r * lin(h, p["down"])
        logits = F.linear(norm(x, params["nf"]), params["emb"])
        loss = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(allp, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    times = []
    for s in range(a.warmup + a.steps):
        idx = torch.randint(0, V, (a.batch, T + 1), generator=g)
        t0 = time.perf_counter()
        loss = step(idx[:, :-1], idx[:, 1:])
        if s >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"impl": "pytorch", "threads": a.threads, "tok_s": round(a.batch * T / med, 1),
                      "step_s": round(med, 3), "loss": round(loss, 4), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
