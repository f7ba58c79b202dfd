#!/usr/bin/python3
"""Independent PyTorch reference of onebit's model, loss and optimizer, written
from docs/MODEL.md (the numerical specification) and nothing else. The C CPU
backend is tested against it through case directories (tests/ref/README.md):

    model_ref.py grad CASE_DIR [CASE_DIR ...]   loss, logits and every gradient
    model_ref.py train CASE_DIR                 a few AdamW steps from given batches

Everything is computed in float64 (inputs arrive as float32). Each function below
is one step of docs/MODEL.md and carries its name; the straight-through
estimators are the only hand-written backward passes, everything else is
differentiated by autograd."""
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

# ---------------------------------------------------------------------------
# safetensors (F32, I32 and F64 are all the cases need)

_DTYPES = {"F32": np.float32, "I32": np.int32, "F64": np.float64}
_DTYPE_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


def read_safetensors(path):
    """Returns {name: numpy array}; checks every length and offset."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise ValueError(f"{path}: header length {header_len} exceeds the file")
    header = json.loads(data[8:8 + header_len].decode("utf-8"))
    body = memoryview(data)[8 + header_len:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        if dtype not in _DTYPES:
            raise ValueError(f"{path}: tensor '{name}' has dtype {dtype} (expected F32, I32 or F64)")
        begin, end = info["data_offsets"]
        shape = [int(d) for d in info["shape"]]
        itemsize = np.dtype(_DTYPES[dtype]).itemsize
        if not 0 <= begin <= end <= len(body) or end - begin != itemsize * int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{path}: tensor '{name}' has bad data_offsets {begin}..{end} for shape {shape}")
        out[name] = np.frombuffer(body[begin:end], dtype=_DTYPES[dtype]).reshape(shape).copy()
    return out


def write_safetensors(path, tensors):
    """Writes {name: numpy array} (float32, int32 or float64), via a temporary name."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        if array.dtype not in _DTYPE_NAMES:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {array.dtype}")
        raw = array.tobytes()
        header[name] = {"dtype": _DTYPE_NAMES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# config.json (DESIGN.md §3 defaults, include/onebit/config.h field names)

MODES = ("f16", "eightbit", "fourbit", "ternary", "binary")

CONFIG_DEFAULTS = {
    "vocab_size": 50257, "hidden_size": 512, "num_heads": 8, "num_layers": 6,
    "intermediate_size": 2048, "max_seq_len": 512, "layer_norm_eps": 1e-5,
    "rope_theta": 10000.0, "tie_embeddings": True, "use_ternary": False,
    "use_relu2": False, "use_swiglu": False, "use_subln": False, "use_rope": False,
    "use_qk_norm": True, "use_residual_scaling": True, "use_dynamic_threshold": True,
    "ste_scale_factor": 2.0, "latent_clamp_max": 1.5, "anneal_fraction": 0.3,
    "activation_bits": 8, "arenas_initial": None, "arenas_anneal_steps": 10000,
}


class Config:
    """config.json with defaults filled in and the derived quantities of the spec."""

    def __init__(self, fields):
        values = dict(CONFIG_DEFAULTS)
        values.update({k: v for k, v in fields.items() if k != "layer_bit_map"})
        for key, value in values.items():
            setattr(self, key, value)
        self.num_kv_heads = fields.get("num_kv_heads", self.num_heads)
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("config: num_heads must divide hidden_size and num_kv_heads num_heads")
        self.head_dim = self.hidden_size // self.num_heads
        self.kv_dim = self.num_kv_heads * self.head_dim
        self.residual = 1 / math.sqrt(2) if self.use_residual_scaling else 1.0
        self.ffn = "swiglu" if self.use_swiglu else ("relu2" if self.use_relu2 else "silu")
        bit_map = fields.get("layer_bit_map")
        if bit_map is None:
            layer_mode = "ternary" if self.use_ternary else "binary"
            self.layer_modes = [layer_mode] * self.num_layers
            self.embedding_mode = "f16"
            self.head_mode = "f16"
        else:
            self.layer_modes = list(bit_map["layer_modes"])
            self.embedding_mode = bit_map.get("embedding", "f16")
            self.head_mode = bit_map.get("lm_head", self.embedding_mode)
        if len(self.layer_modes) != self.num_layers:
            raise ValueError("config: layer_bit_map.layer_modes must have num_layers entries")
        for mode in self.layer_modes + [self.embedding_mode, self.head_mode]:
            if mode not in MODES:
                raise ValueError(f"config: '{mode}' is not a mode ({', '.join(MODES)})")
        if self.tie_embeddings and self.head_mode != self.embedding_mode:
            raise ValueError("config: tie_embeddings needs equal embedding and lm_head modes")


def load_config(path):
    with open(path) as f:
        return Config(json.load(f))


def parameter_shapes(cfg):
    """[(name, shape)] in buffer order (docs/MODEL.md, Parameters)."""
    H, F, hd = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    shapes = [("model.embed_tokens.weight", (cfg.vocab_size, H))]
    if not cfg.use_rope:
        shapes.append(("model.embed_positions.weight", (cfg.max_seq_len, H)))
    for i in range(cfg.num_layers):
        p = f"model.layers.{i}."
        shapes += [(p + "input_layernorm.weight", (H,)),
                   (p + "self_attn.q_proj.weight", (H, H)),
                   (p + "self_attn.k_proj.weight", (cfg.kv_dim, H)),
                   (p + "self_attn.v_proj.weight", (cfg.kv_dim, H)),
                   (p + "self_attn.o_proj.weight", (H, H))]
        if cfg.use_qk_norm:
            shapes += [(p + "self_attn.q_norm.weight", (hd,)), (p + "self_attn.k_norm.weight", (hd,))]
        shapes.append((p + "post_attention_layernorm.weight", (H,)))
        if cfg.use_swiglu:
            shapes.append((p + "mlp.gate_proj.weight", (F, H)))
        shapes += [(p + "mlp.up_proj.weight", (F, H)), (p + "mlp.down_proj.weight", (H, F))]
    shapes.append(("model.norm.weight", (H,)))
    if not cfg.tie_embeddings:
        shapes.append(("lm_head.weight", (cfg.vocab_size, H)))
    return shapes


def init_parameters(cfg, generator):
    """Init of docs/MODEL.md (for tests; the C side brings its own parameters)."""
    out_std = 0.02 / math.sqrt(2 * cfg.num_layers)
    params = {}
    for name, shape in parameter_shapes(cfg):
        if name.endswith("norm.weight"):
            params[name] = torch.ones(shape)
        else:
            std = out_std if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02
            params[name] = torch.randn(shape, generator=generator) * std
    return params


def parameter_mode(cfg, name):
    """Quantisation mode a parameter is used with (f16 for norms and positions)."""
    if name.startswith("model.layers.") and name.endswith("_proj.weight"):
        return cfg.layer_modes[int(name.split(".")[2])]
    if name == "model.embed_tokens.weight":
        return cfg.embedding_mode
    if name == "lm_head.weight":
        return cfg.head_mode
    return "f16"


# ---------------------------------------------------------------------------
# The forward pass's regime: which quantisers run, with what sharpness and Arenas.

class Regime:
    """kind: "fp" (every mode treated as f16), "soft" or "hard"; sharpness a for
    soft; arenas c (0 = off)."""

    def __init__(self, kind, sharpness=1.0, arenas=0.0):
        if kind not in ("fp", "soft", "hard"):
            raise ValueError(f"regime '{kind}' is not fp, soft or hard")
        self.kind, self.sharpness, self.arenas = kind, float(sharpness), float(arenas)


# ---------------------------------------------------------------------------
# Quantised linear, step by step (docs/MODEL.md, "Quantised linear")

def clamp_latent(W, C):
    """Step 1: W_c = clamp(W, -C, C); its derivative is [|W| <= C]."""
    return torch.where(W.abs() <= C, W, torch.sign(W) * C)


def absmean_scale(W_c):
    """Step 1: beta = max(mean|W_c|, 1e-8) over the whole matrix."""
    return torch.clamp(W_c.abs().mean(), min=1e-8)


def threshold_mask(W_c, beta):
    """Hard ternary mask m = [|W_c| > 0.7 beta] (piecewise constant: no gradient)."""
    return (W_c.abs() > 0.7 * beta).to(W_c.dtype).detach()


def threshold_scale(W_c, mask):
    """alpha = sum(m |W_c|) / sum(m), 0 when the mask is empty."""
    count = mask.sum()
    if count.item() == 0:
        return W_c.sum() * 0.0
    return (mask * W_c.abs()).sum() / count


def quantise_ternary_threshold(W_c):
    """Step 2, ternary with use_dynamic_threshold: alpha sign(W_c) m."""
    mask = threshold_mask(W_c, absmean_scale(W_c))
    return threshold_scale(W_c, mask) * torch.sign(W_c) * mask


def quantise_ternary_absmean(W_c):
    """Step 2, ternary absmean: beta clamp(rint(W_c/beta), -1, 1)."""
    beta = absmean_scale(W_c)
    return beta * torch.clamp(torch.round(W_c / beta), -1, 1)


def quantise_binary(W_c):
    """Step 2, binary: beta (+1 where W_c - mean(W_c) >= 0, else -1)."""
    beta = absmean_scale(W_c)
    ones = torch.ones_like(W_c)
    return beta * torch.where(W_c - W_c.mean() >= 0, ones, -ones)


def quantise_rowwise(W_c, qmax):
    """Step 2, eightbit (qmax 127) / fourbit (qmax 7): per-row absmax scale s_r."""
    s = torch.clamp(W_c.abs().amax(dim=-1, keepdim=True), min=1e-8) / qmax
    return s * torch.clamp(torch.round(W_c / s), -qmax, qmax)


def quantise_weight_hard(W_c, mode, cfg):
    """Step 2: the hard weight quantiser of a mode (torch.round rounds half to even)."""
    if mode == "ternary":
        if cfg.use_dynamic_threshold:
            return quantise_ternary_threshold(W_c)
        return quantise_ternary_absmean(W_c)
    if mode == "binary":
        return quantise_binary(W_c)
    return quantise_rowwise(W_c, 127 if mode == "eightbit" else 7)


def soft_binary(W_c, a):
    """Step 3, binary: beta tanh(a (W_c - mu)/beta), differentiable in W_c."""
    beta = absmean_scale(W_c)
    u = (W_c - W_c.mean()) / beta
    return beta * torch.tanh(a * u)


def soft_ternary(W_c, a, dynamic_threshold):
    """Step 3, ternary: sigma ½[tanh(a(u - theta)) + tanh(a(u + theta))], u = W_c/beta."""
    beta = absmean_scale(W_c)
    u = W_c / beta
    if dynamic_threshold:
        theta, sigma = 0.7, threshold_scale(W_c, threshold_mask(W_c, beta))
    else:
        theta, sigma = 0.5, beta
    return sigma * 0.5 * (torch.tanh(a * (u - theta)) + torch.tanh(a * (u + theta)))


class StraightThrough(torch.autograd.Function):
    """Hard regime: the forward value is W_q; the gradient reaching W is
    S dW_q [|W| <= C] (straight-through estimator)."""

    @staticmethod
    def forward(ctx, W, W_q, S, C):
        ctx.mask = (W.abs() <= C).to(W.dtype)
        ctx.S = S
        return W_q.clone()

    @staticmethod
    def backward(ctx, grad):
        return ctx.S * grad * ctx.mask, None, None, None


def effective_weight(W, mode, regime, cfg):
    """Steps 1-3: the weight the product uses, with the gradient the spec gives."""
    if mode == "f16" or regime.kind == "fp":
        return W
    C = cfg.latent_clamp_max
    if regime.kind == "soft" and mode in ("binary", "ternary"):
        W_c = clamp_latent(W, C)
        if mode == "binary":
            return soft_binary(W_c, regime.sharpness)
        return soft_ternary(W_c, regime.sharpness, cfg.use_dynamic_threshold)
    with torch.no_grad():
        W_q = quantise_weight_hard(clamp_latent(W, C), mode, cfg)
    return StraightThrough.apply(W, W_q, cfg.ste_scale_factor, C)


def quantise_activations(x, bits):
    """Step 4 forward: per row, s = (2^(b-1) - 1)/max(max|x|, 1e-5);
    clamp(rint(x s), -2^(b-1), 2^(b-1) - 1)/s."""
    top = 2 ** (bits - 1)
    s = (top - 1) / torch.clamp(x.abs().amax(dim=-1, keepdim=True), min=1e-5)
    return torch.clamp(torch.round(x * s), -top, top - 1) / s


class ActivationStraightThrough(torch.autograd.Function):
    """Step 4 with its gradient: passed through unchanged (no S)."""

    @staticmethod
    def forward(ctx, x, bits):
        return quantise_activations(x, bits)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def qlinear(x, W, mode, regime, cfg):
    """QLinear(x, W; mode): steps 1-6 (y = x̃ W_qᵀ, plus c x W_cᵀ with Arenas)."""
    if mode == "f16" or regime.kind == "fp":
        return x @ W.t()
    x_tilde = x
    if cfg.activation_bits > 0:
        x_tilde = ActivationStraightThrough.apply(x, cfg.activation_bits)
    y = x_tilde @ effective_weight(W, mode, regime, cfg).t()
    if regime.arenas > 0:
        y = y + regime.arenas * (x @ clamp_latent(W, cfg.latent_clamp_max).t())
    return y


# ---------------------------------------------------------------------------
# Norms, attention, FFN, decoder layer

def rms_norm(x, g, eps):
    """RMSNorm(x; g) = x / sqrt(mean(x²) + eps) ⊙ g over the last axis."""
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * g


def layer_norm(x, g, eps):
    """LayerNorm without bias, biased variance."""
    centred = x - x.mean(dim=-1, keepdim=True)
    return centred / torch.sqrt((centred * centred).mean(dim=-1, keepdim=True) + eps) * g


def norm(x, g, cfg):
    """RMSNorm with use_subln, else LayerNorm."""
    return rms_norm(x, g, cfg.layer_norm_eps) if cfg.use_subln else layer_norm(x, g, cfg.layer_norm_eps)


def rope(x, theta):
    """Rotary embedding on interleaved pairs (2j, 2j+1) of x [B, T, n, hd],
    angle t theta^(-2j/hd) at position t."""
    T, hd = x.shape[1], x.shape[3]
    j = torch.arange(hd // 2, dtype=torch.float64)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * theta ** (-2.0 * j / hd)[None, :]
    cos, sin = torch.cos(angle)[None, :, None, :], torch.sin(angle)[None, :, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated_even = even * cos - odd * sin
    rotated_odd = even * sin + odd * cos
    return torch.stack((rotated_even, rotated_odd), dim=-1).reshape(x.shape)


def causal_attention(q, k, v):
    """q [B, T, nh, hd], k/v [B, T, nkv, hd]: query head h uses kv head
    floor(h nkv/nh); causal softmax(q·k/sqrt(hd)) v; heads concatenated [B, T, nh hd]."""
    B, T, nh, hd = q.shape
    nkv = k.shape[2]
    kv_head = torch.tensor([h * nkv // nh for h in range(nh)])
    k, v = k[:, :, kv_head, :], v[:, :, kv_head, :]
    scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(future, float("-inf"))
    p = torch.softmax(scores, dim=-1)
    return torch.einsum("bhts,bshd->bthd", p, v).reshape(B, T, nh * hd)


def attention(n, params, prefix, mode, regime, cfg):
    """Attention steps 1-5 on the normed input n [B, T, H]."""
    B, T, _ = n.shape
    nh, nkv, hd = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    q = qlinear(n, params[prefix + "q_proj.weight"], mode, regime, cfg).reshape(B, T, nh, hd)
    k = qlinear(n, params[prefix + "k_proj.weight"], mode, regime, cfg).reshape(B, T, nkv, hd)
    v = qlinear(n, params[prefix + "v_proj.weight"], mode, regime, cfg).reshape(B, T, nkv, hd)
    if cfg.use_qk_norm:
        q = rms_norm(q, params[prefix + "q_norm.weight"], cfg.layer_norm_eps)
        k = rms_norm(k, params[prefix + "k_norm.weight"], cfg.layer_norm_eps)
    if cfg.use_rope:
        q, k = rope(q, cfg.rope_theta), rope(k, cfg.rope_theta)
    o = causal_attention(q, k, v)
    return qlinear(o, params[prefix + "o_proj.weight"], mode, regime, cfg)


def silu(z):
    return z * torch.sigmoid(z)


def ffn(n, params, prefix, mode, regime, cfg):
    """SwiGLU: down(silu(gate n) ⊙ up n); ReLU²: down(relu(up n)²); SiLU: down(silu(up n))."""
    up = qlinear(n, params[prefix + "up_proj.weight"], mode, regime, cfg)
    if cfg.ffn == "swiglu":
        hidden = silu(qlinear(n, params[prefix + "gate_proj.weight"], mode, regime, cfg)) * up
    elif cfg.ffn == "relu2":
        hidden = torch.relu(up) ** 2
    else:
        hidden = silu(up)
    return qlinear(hidden, params[prefix + "down_proj.weight"], mode, regime, cfg)


def decoder_layer(x, params, i, regime, cfg):
    """a = x + r Attention(Norm(x)); x' = a + r FFN(Norm(a))."""
    p, mode, r = f"model.layers.{i}.", cfg.layer_modes[i], cfg.residual
    a = x + r * attention(norm(x, params[p + "input_layernorm.weight"], cfg), params, p + "self_attn.",
                          mode, regime, cfg)
    return a + r * ffn(norm(a, params[p + "post_attention_layernorm.weight"], cfg), params, p + "mlp.",
                       mode, regime, cfg)


def forward(params, inputs, regime, cfg):
    """Token ids [B, T] -> logits [B, T, V] (docs/MODEL.md, Embedding and head)."""
    T = inputs.shape[1]
    if T > cfg.max_seq_len:
        raise ValueError(f"sequence length {T} exceeds max_seq_len {cfg.max_seq_len}")
    E = params["model.embed_tokens.weight"]
    E_hat = effective_weight(E, cfg.embedding_mode, regime, cfg)
    x = E_hat[inputs]
    if not cfg.use_rope:
        x = x + params["model.embed_positions.weight"][:T]
    for i in range(cfg.num_layers):
        x = decoder_layer(x, params, i, regime, cfg)
    h_final = norm(x, params["model.norm.weight"], cfg)
    # Tied: the head quantises E again; the straight-through map is linear, so
    # the two gradients add before it exactly as if one W_q were shared.
    W_head = E if cfg.tie_embeddings else params["lm_head.weight"]
    return qlinear(h_final, W_head, cfg.head_mode, regime, cfg)


def label_smoothed_cross_entropy(logits, targets, epsilon):
    """(1 - ε)(-ℓ_y) + ε mean_v(-ℓ_v), averaged over every position."""
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets[..., None].long())[..., 0]
    smooth = -logp.mean(dim=-1)
    return ((1 - epsilon) * nll + epsilon * smooth).mean()


# ---------------------------------------------------------------------------
# grad: one forward/backward of a case directory

def to_torch_params(arrays, cfg, source):
    """float64 leaf tensors from the file's float32 arrays, checked against the config."""
    expected = dict(parameter_shapes(cfg))
    for name in arrays:
        if name not in expected:
            raise ValueError(f"{source}: unexpected tensor '{name}' for this config")
    params = {}
    for name, shape in expected.items():
        if name not in arrays:
            raise ValueError(f"{source}: missing tensor '{name}'")
        if tuple(arrays[name].shape) != tuple(shape):
            raise ValueError(f"{source}: tensor '{name}' has shape {list(arrays[name].shape)}, expected {list(shape)}")
        params[name] = torch.tensor(arrays[name], dtype=torch.float64, requires_grad=True)
    return params


def loss_and_grads(params, inputs, targets, regime, epsilon, cfg):
    """Loss, logits and {name: gradient} for one batch."""
    for p in params.values():
        p.grad = None
    logits = forward(params, inputs, regime, cfg)
    loss = label_smoothed_cross_entropy(logits, targets, epsilon)
    loss.backward()
    grads = {name: p.grad if p.grad is not None else torch.zeros_like(p) for name, p in params.items()}
    return loss.detach(), logits.detach(), grads


def regime_of_case(case):
    """case.json -> (Regime, ε); eval means plain CE, hard quantisers, no Arenas."""
    if case.get("eval", False):
        return Regime("hard"), 0.0
    kind = case["regime"]
    return (Regime(kind, case.get("sharpness", 1.0) if kind == "soft" else 1.0, case.get("arenas", 0.0)),
            float(case.get("label_smoothing", 0.0)))


def run_grad_case(case_dir):
    cfg = load_config(os.path.join(case_dir, "config.json"))
    with open(os.path.join(case_dir, "case.json")) as f:
        case = json.load(f)
    if case.get("regime") == "soft" and "sharpness" not in case and not case.get("eval", False):
        raise ValueError(f"{case_dir}/case.json: regime soft needs 'sharpness'")
    regime, epsilon = regime_of_case(case)
    model_path = os.path.join(case_dir, "model.safetensors")
    params = to_torch_params(read_safetensors(model_path), cfg, model_path)
    batch = read_safetensors(os.path.join(case_dir, "batch.safetensors"))
    inputs, targets = torch.tensor(batch["inputs"]).long(), torch.tensor(batch["targets"]).long()
    check_tokens(inputs, targets, cfg, case_dir)
    loss, logits, grads = loss_and_grads(params, inputs, targets, regime, epsilon, cfg)
    out = {"loss": np.array([loss.item()], dtype=np.float32),
           "logits": logits.numpy().astype(np.float32)}
    for name, g in grads.items():
        out["grad." + name] = g.numpy().astype(np.float32)
    write_safetensors(os.path.join(case_dir, "ref.safetensors"), out)


def check_tokens(inputs, targets, cfg, source):
    if inputs.shape != targets.shape or inputs.dim() < 2:
        raise ValueError(f"{source}: inputs {list(inputs.shape)} and targets {list(targets.shape)} must match")
    for name, t in (("inputs", inputs), ("targets", targets)):
        if t.numel() and (t.min() < 0 or t.max() >= cfg.vocab_size):
            raise ValueError(f"{source}: {name} has token ids outside [0, {cfg.vocab_size})")


# ---------------------------------------------------------------------------
# train: schedules and AdamW (docs/MODEL.md, Training schedule inputs, Optimizer)

TRAIN_FIELDS = ("steps", "max_steps", "accum", "lr", "lr_min", "warmup_steps", "schedule", "beta1",
                "beta2", "eps", "weight_decay", "clip", "label_smoothing")


def learning_rate(t, tr):
    """Linear warmup lr (t+1)/warmup, then cosine, linear or constant to lr_min."""
    lr, lr_min, warmup = tr["lr"], tr["lr_min"], tr["warmup_steps"]
    if t < warmup:
        return lr * (t + 1) / warmup
    p = (t - warmup) / max(1, tr["max_steps"] - warmup)
    if tr["schedule"] == "cosine":
        return lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(math.pi * p))
    if tr["schedule"] == "linear":
        return lr - (lr - lr_min) * p
    if tr["schedule"] == "constant":
        return lr
    raise ValueError(f"train.json: schedule '{tr['schedule']}' is not cosine, linear or constant")


def quant_regime(t, tr, cfg):
    """The regime, sharpness and Arenas coefficient of optimizer step t."""
    M = tr["max_steps"]
    if "quant_warmup_steps" in tr or "quant_anneal_steps" in tr:
        W, A = tr.get("quant_warmup_steps", 0), tr.get("quant_anneal_steps", 0)
        if t < W:
            return Regime("fp")
        t0, t1 = W, W + A
    else:
        t0, t1 = 0, tr.get("anneal_fraction", cfg.anneal_fraction) * M
    arenas = 0.0
    if cfg.arenas_initial is not None:
        arenas = cfg.arenas_initial * max(0.0, 1 - t / cfg.arenas_anneal_steps)
    if t < t1:
        return Regime("soft", 1 + 7 * (t - t0) / (t1 - t0), arenas)
    return Regime("hard", 1.0, arenas)


def global_norm(grads):
    return math.sqrt(sum(float((g * g).sum()) for g in grads.values()))


def clip_gradients(grads, clip, norm_value):
    """g <- g min(1, clip/(‖g‖ + 1e-6)) when clip > 0."""
    if clip > 0:
        factor = min(1.0, clip / (norm_value + 1e-6))
        for g in grads.values():
            g.mul_(factor)


def adamw_step(params, grads, state, k, lr, tr, cfg):
    """One AdamW update (PyTorch semantics) with step count k, then the latent clamp."""
    b1, b2 = tr["beta1"], tr["beta2"]
    with torch.no_grad():
        for name, p in params.items():
            g = grads[name]
            m, v = state[name]
            m.mul_(b1).add_((1 - b1) * g)
            v.mul_(b2).add_((1 - b2) * g * g)
            if p.dim() == 2:
                p.mul_(1 - lr * tr["weight_decay"])
            p.sub_(lr * (m / (1 - b1 ** k)) / (torch.sqrt(v / (1 - b2 ** k)) + tr["eps"]))
            if takes_latent_clamp(name, cfg):
                p.clamp_(-cfg.latent_clamp_max, cfg.latent_clamp_max)


def takes_latent_clamp(name, cfg):
    """Quantised projections and an untied quantised lm_head; never the embedding or gains."""
    if name == "model.embed_tokens.weight" or name.endswith("norm.weight"):
        return False
    if name == "lm_head.weight":
        return not cfg.tie_embeddings and cfg.head_mode != "f16"
    return name.endswith("_proj.weight") and parameter_mode(cfg, name) != "f16"


def run_train_case(case_dir):
    cfg = load_config(os.path.join(case_dir, "config.json"))
    with open(os.path.join(case_dir, "train.json")) as f:
        tr = json.load(f)
    missing = [k for k in TRAIN_FIELDS if k not in tr]
    if missing:
        raise ValueError(f"{case_dir}/train.json: missing field(s) {', '.join(missing)}")
    model_path = os.path.join(case_dir, "model.safetensors")
    params = to_torch_params(read_safetensors(model_path), cfg, model_path)
    batches = read_safetensors(os.path.join(case_dir, "batches.safetensors"))
    inputs, targets = torch.tensor(batches["inputs"]).long(), torch.tensor(batches["targets"]).long()
    steps, accum = int(tr["steps"]), int(tr["accum"])
    if inputs.dim() != 3 or inputs.shape[0] < steps * accum:
        raise ValueError(f"{case_dir}/batches.safetensors: need [steps·accum = {steps * accum}, B, T] inputs, "
                         f"found {list(inputs.shape)}")
    check_tokens(inputs, targets, cfg, case_dir)
    state = {name: (torch.zeros_like(p), torch.zeros_like(p)) for name, p in params.items()}
    losses, lrs, norms = [], [], []
    for t in range(steps):
        regime = quant_regime(t, tr, cfg)
        total = {name: torch.zeros_like(p) for name, p in params.items()}
        step_loss = 0.0
        for micro in range(accum):
            index = t * accum + micro
            loss, _, grads = loss_and_grads(params, inputs[index], targets[index], regime,
                                            tr["label_smoothing"], cfg)
            step_loss += loss.item() / accum
            for name in total:
                total[name] += grads[name] / accum
        norm_value = global_norm(total)
        clip_gradients(total, tr["clip"], norm_value)
        lr = learning_rate(t, tr)
        adamw_step(params, total, state, t + 1, lr, tr, cfg)
        losses.append(step_loss)
        lrs.append(lr)
        norms.append(norm_value)
    out = {"losses": np.array(losses, dtype=np.float32), "lrs": np.array(lrs, dtype=np.float32),
           "grad_norms": np.array(norms, dtype=np.float32)}
    for name, p in params.items():
        out["param." + name] = p.detach().numpy().astype(np.float32)
    write_safetensors(os.path.join(case_dir, "ref_train.safetensors"), out)


# ---------------------------------------------------------------------------

USAGE = """usage: model_ref.py grad CASE_DIR [CASE_DIR ...]
       model_ref.py train CASE_DIR
  grad   writes CASE_DIR/ref.safetensors: loss, logits, grad.<name> for every parameter
  train  writes CASE_DIR/ref_train.safetensors: losses, lrs, grad_norms, param.<name>
  (case directory protocol: tests/ref/README.md)"""


def main(argv):
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if len(argv) < 2 or argv[0] not in ("grad", "train") or (argv[0] == "train" and len(argv) != 2):
        print(USAGE, file=sys.stderr)
        return 2
    started = time.perf_counter()
    for case_dir in argv[1:]:
        try:
            run_grad_case(case_dir) if argv[0] == "grad" else run_train_case(case_dir)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            print(f"model_ref.py {argv[0]} {case_dir}: {e.__class__.__name__}: {e}", file=sys.stderr)
            return 1
    if os.environ.get("MODEL_REF_TIMING"):
        print(f"model_ref.py {argv[0]}: {time.perf_counter() - started:.3f} s for {len(argv) - 1} case(s)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
