#!/usr/bin/python3
"""Self-checks of tests/ref/model_ref.py: float64 finite differences
(torch.autograd.gradcheck) on every smooth part, the hard quantisers' values and
scales, the straight-through gradients, the loss of a fresh model, torch's own
AdamW and cross-entropy as independent peers, and the case-directory protocol
run through the command line. Run: /usr/bin/python3 tests/ref/test_model_ref.py"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

try:
    import numpy as np
    import torch
except ImportError as e:  # ctest reads 77 as "skipped"
    print(f"test_model_ref.py: skipped, {e} (needs Debian's python3-torch)", file=sys.stderr)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model_ref as mr  # noqa: E402

torch.set_default_dtype(torch.float64)

# Fresh inputs every run; MODEL_REF_SEED=N replays a run (the seed is printed).
SEED = int(os.environ.get("MODEL_REF_SEED", int.from_bytes(os.urandom(4), "little")))
_generators = [0]


def fresh_generator():
    _generators[0] += 1
    return torch.Generator().manual_seed(SEED * 1000 + _generators[0])


def tiny_config(**overrides):
    fields = {"vocab_size": 13, "hidden_size": 8, "num_heads": 2, "num_kv_heads": 1, "num_layers": 1,
              "intermediate_size": 12, "max_seq_len": 6, "activation_bits": 0}
    fields.update(overrides)
    return mr.Config(fields)


def gradcheck(fn, *inputs, fast=False):
    """Finite differences in float64. fast: one random direction per input tensor
    (torch's fast_mode) instead of every entry; MODEL_REF_FULL_GRADCHECK=1 forces every entry."""
    fast = fast and not os.environ.get("MODEL_REF_FULL_GRADCHECK")
    return torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=fast)


def away_from_kinks(W, C, margin=1e-5):
    """Moves entries of a latent matrix at least `margin` away from the points where
    the soft quantisers have kinks or jumps (0 for |W|, ±C for the clamp, ±0.7β for
    the threshold mask), so that finite differences with eps 1e-6 see a smooth function."""
    W = W.detach().clone()
    for _ in range(5):
        beta = mr.absmean_scale(mr.clamp_latent(W, C)).item()
        moved = False
        for kink in (0.0, C, 0.7 * beta):
            near = (W.abs() - kink).abs() < margin
            if near.any():
                moved = True
                side = torch.where(W.abs() >= kink, 1.0, -1.0) if kink > 0 else torch.ones_like(W)
                sign = torch.where(W >= 0, 1.0, -1.0)
                W[near] = (sign * (kink + 2 * margin * side))[near]
        if not moved:
            return W
    return W


def rand(*shape, scale=1.0, gen=None):
    return (torch.randn(*shape, generator=gen) * scale).requires_grad_()


class SmoothParts(unittest.TestCase):
    def setUp(self):
        self.gen = fresh_generator()

    def test_norms(self):
        x, g = rand(3, 5, 7, gen=self.gen), rand(7, gen=self.gen)
        self.assertTrue(gradcheck(lambda a, b: mr.rms_norm(a, b, 1e-5), x, g))
        self.assertTrue(gradcheck(lambda a, b: mr.layer_norm(a, b, 1e-5), x, g))
        # values against torch's own layer norm (no bias)
        ref = torch.nn.functional.layer_norm(x, (7,), g, None, 1e-5)
        self.assertLess((mr.layer_norm(x, g, 1e-5) - ref).abs().max().item(), 1e-12)

    def test_rope(self):
        x = rand(2, 5, 3, 8, gen=self.gen)
        self.assertTrue(gradcheck(lambda a: mr.rope(a, 10000.0), x))
        # values: pair (2j, 2j+1) as a complex number times exp(i t theta^(-2j/hd))
        z = torch.complex(x[..., 0::2], x[..., 1::2]).detach()
        t = torch.arange(5, dtype=torch.float64)[:, None]
        phase = torch.exp(1j * t * 500.0 ** (-2.0 * torch.arange(4) / 8))[None, :, None, :]
        rotated = z * phase
        expect = torch.stack((rotated.real, rotated.imag), dim=-1).reshape(x.shape)
        self.assertLess((mr.rope(x, 500.0) - expect).abs().max().item(), 1e-12)
        # position 0 is unrotated, and norms of pairs are preserved
        self.assertTrue(torch.equal(mr.rope(x, 500.0)[:, 0], x[:, 0]))

    def test_attention_gqa(self):
        q, k, v = rand(2, 4, 4, 3, gen=self.gen), rand(2, 4, 2, 3, gen=self.gen), rand(2, 4, 2, 3, gen=self.gen)
        self.assertTrue(gradcheck(mr.causal_attention, q, k, v))
        # values against a plain loop over batch, head and position
        out = mr.causal_attention(q, k, v).detach()
        for b in range(2):
            for h in range(4):
                kv = h * 2 // 4
                for t in range(4):
                    s = torch.stack([q[b, t, h] @ k[b, u, kv] / math.sqrt(3) for u in range(t + 1)])
                    p = torch.exp(s - s.max())
                    p = p / p.sum()
                    o = sum(p[u] * v[b, u, kv] for u in range(t + 1))
                    self.assertLess((out[b, t, h * 3:(h + 1) * 3] - o).abs().max().item(), 1e-12)

    def test_ffn_variants(self):
        regime = mr.Regime("fp")
        for overrides in ({}, {"use_relu2": True}, {"use_swiglu": True}):
            cfg = tiny_config(**overrides)
            n = rand(2, 3, 8, gen=self.gen)
            weights = [rand(12, 8, gen=self.gen), rand(8, 12, gen=self.gen), rand(12, 8, gen=self.gen)]

            def run(n_, up, down, gate):
                params = {"up_proj.weight": up, "down_proj.weight": down, "gate_proj.weight": gate}
                return mr.ffn(n_, params, "", "f16", regime, cfg)
            self.assertTrue(gradcheck(run, n, *weights), overrides)

    def test_label_smoothed_loss(self):
        logits = rand(2, 3, 9, gen=self.gen)
        targets = torch.randint(0, 9, (2, 3), generator=self.gen)
        for eps in (0.0, 0.1, 0.3):
            self.assertTrue(gradcheck(lambda z: mr.label_smoothed_cross_entropy(z, targets, eps), logits))
            ref = torch.nn.functional.cross_entropy(logits.reshape(6, 9), targets.reshape(6), label_smoothing=eps)
            self.assertLess(abs(mr.label_smoothed_cross_entropy(logits, targets, eps).item() - ref.item()), 1e-12)

    def soft_weight(self, C=0.05):
        # std 0.03 with C = 0.05: some entries are clamped, the rest are live
        return away_from_kinks(torch.randn(6, 10, generator=self.gen) * 0.03, C).requires_grad_(), C

    def test_soft_binary(self):
        W, C = self.soft_weight()
        for a in (1.0, 4.5, 8.0):
            self.assertTrue(gradcheck(lambda w: mr.soft_binary(mr.clamp_latent(w, C), a), W))

    def test_soft_ternary(self):
        W, C = self.soft_weight()
        for dynamic in (True, False):
            for a in (1.0, 8.0):
                self.assertTrue(gradcheck(lambda w: mr.soft_ternary(mr.clamp_latent(w, C), a, dynamic), W))

    def test_soft_gradient_sees_beta_mu_sigma(self):
        """The check above can fail: treating β, μ and σ as constants gives another gradient."""
        W, C = self.soft_weight()
        W_c = mr.clamp_latent(W, C)
        R = torch.randn(W.shape, generator=self.gen)
        full = torch.autograd.grad((mr.soft_ternary(W_c, 3.0, True) * R).sum(), W)[0]
        beta = mr.absmean_scale(W_c).detach()
        sigma = mr.threshold_scale(W_c, mr.threshold_mask(W_c, beta)).detach()
        u = W_c / beta
        W_c = mr.clamp_latent(W, C)
        u = W_c / beta
        frozen = sigma * 0.5 * (torch.tanh(3.0 * (u - 0.7)) + torch.tanh(3.0 * (u + 0.7)))
        partial = torch.autograd.grad((frozen * R).sum(), W)[0]
        self.assertGreater((full - partial).abs().max().item(), 1e-3 * full.abs().max().item())
        # zero where the clamp is active
        self.assertTrue(torch.all(full[W.abs() > C] == 0))

    def test_soft_qlinear_with_arenas(self):
        """Soft regime, no activation quantiser: QLinear is smooth, Arenas included."""
        for use_ternary, dynamic in ((False, True), (True, True), (True, False)):
            cfg = tiny_config(latent_clamp_max=0.05, use_ternary=use_ternary, use_dynamic_threshold=dynamic)
            regime = mr.Regime("soft", 2.5, 0.3)
            mode = "ternary" if use_ternary else "binary"
            x = rand(3, 10, gen=self.gen)
            W = away_from_kinks(torch.randn(7, 10, generator=self.gen) * 0.03, 0.05).requires_grad_()
            self.assertTrue(gradcheck(lambda a, b: mr.qlinear(a, b, mode, regime, cfg), x, W))

    def test_whole_model_smooth_regimes(self):
        """Finite differences through the whole model: fp regime, and soft regime with
        quantised embedding, Arenas and both quantised layer modes."""
        cases = [
            (dict(use_rope=True, use_swiglu=True, use_subln=True, tie_embeddings=False), mr.Regime("fp")),
            (dict(num_layers=2, use_relu2=True, latent_clamp_max=0.03, use_qk_norm=False,
                  layer_bit_map={"embedding": "binary", "layer_modes": ["ternary", "binary"]}),
             mr.Regime("soft", 3.0, 0.25)),
            (dict(use_ternary=True, use_dynamic_threshold=False, tie_embeddings=False, use_residual_scaling=False,
                  layer_bit_map={"embedding": "f16", "layer_modes": ["ternary"], "lm_head": "ternary"}),
             mr.Regime("soft", 1.5, 0.0)),
        ]
        for overrides, regime in cases:
            cfg = tiny_config(**overrides)
            params = mr.init_parameters(cfg, self.gen)
            names = list(params)
            for name in names:  # gains away from 1 so that their gradients are generic
                if name.endswith("norm.weight"):
                    params[name] = 1 + 0.1 * torch.randn(params[name].shape, generator=self.gen)
                elif params[name].dim() == 2:
                    params[name] = away_from_kinks(params[name], cfg.latent_clamp_max)
            leaves = [params[n].clone().requires_grad_() for n in names]
            inputs = torch.randint(0, 13, (2, 4), generator=self.gen)
            targets = torch.randint(0, 13, (2, 4), generator=self.gen)

            def loss(*ps):
                logits = mr.forward(dict(zip(names, ps)), inputs, regime, cfg)
                return mr.label_smoothed_cross_entropy(logits, targets, 0.1)
            # every entry costs ~11 s here; a random direction per tensor catches wiring
            # errors, and the parts above are checked entry by entry
            self.assertTrue(gradcheck(loss, *leaves, fast=True), overrides)


class HardQuantisers(unittest.TestCase):
    def setUp(self):
        self.gen = fresh_generator()
        self.W = torch.randn(16, 24, generator=self.gen) * 0.8  # C = 1.5 clamps some entries
        self.W_c = mr.clamp_latent(self.W, 1.5)

    def test_clamp(self):
        self.assertLessEqual(self.W_c.abs().max().item(), 1.5)
        self.assertTrue(torch.any(self.W.abs() > 1.5))
        inside = self.W.abs() <= 1.5
        self.assertTrue(torch.equal(self.W_c[inside], self.W[inside]))

    def test_ternary_threshold(self):
        W_q = mr.quantise_ternary_threshold(self.W_c)
        beta = self.W_c.abs().mean()
        mask = self.W_c.abs() > 0.7 * beta
        alpha = self.W_c.abs()[mask].mean()
        self.assertTrue(torch.allclose(W_q[mask], alpha * torch.sign(self.W_c[mask]), rtol=1e-14, atol=0))
        self.assertTrue(torch.all(W_q[~mask] == 0))

    def test_ternary_absmean(self):
        W_q = mr.quantise_ternary_absmean(self.W_c)
        beta = self.W_c.abs().mean()
        big = self.W_c.abs() > 0.5 * beta
        self.assertTrue(torch.allclose(W_q[big], beta * torch.sign(self.W_c[big]), rtol=1e-14, atol=0))
        self.assertTrue(torch.all(W_q[~big] == 0))

    def test_binary(self):
        W_q = mr.quantise_binary(self.W_c)
        beta = self.W_c.abs().mean()
        above = self.W_c >= self.W_c.mean()
        self.assertTrue(torch.allclose(W_q[above], beta.expand(int(above.sum())), rtol=1e-14, atol=0))
        self.assertTrue(torch.allclose(W_q[~above], -beta.expand(int((~above).sum())), rtol=1e-14, atol=0))

    def test_rowwise(self):
        for qmax in (127, 7):
            W_q = mr.quantise_rowwise(self.W_c, qmax)
            s = self.W_c.abs().amax(dim=1, keepdim=True) / qmax
            q = W_q / s
            self.assertLess((q - q.round()).abs().max().item(), 1e-9)
            self.assertLessEqual(q.abs().max().item(), qmax + 1e-9)
            self.assertTrue(torch.allclose(q.abs().amax(dim=1), torch.full((16,), float(qmax))))
            self.assertLessEqual(((W_q - self.W_c).abs() / s).max().item(), 0.5 + 1e-9)

    def test_activation_quantiser(self):
        x = torch.randn(5, 9, generator=self.gen) * 3
        for bits in (8, 4, 2):
            top = 2 ** (bits - 1)
            s = (top - 1) / x.abs().amax(dim=1, keepdim=True)
            q = mr.quantise_activations(x, bits) * s
            self.assertLess((q - q.round()).abs().max().item(), 1e-9)
            self.assertTrue(torch.all((q.round() >= -top) & (q.round() <= top - 1)))
            self.assertTrue(torch.allclose(q.abs().amax(dim=1), torch.full((5,), top - 1.0)))
            self.assertLessEqual((q - x * s).abs().max().item(), 0.5 + 1e-9)

    def test_zero_inputs_give_zeros(self):
        zero = torch.zeros(4, 6)
        cfg = tiny_config()
        for mode in ("eightbit", "fourbit", "binary", "ternary"):
            for dynamic in (True, False):
                cfg.use_dynamic_threshold = dynamic
                W_q = mr.quantise_weight_hard(zero, mode, cfg)
                self.assertTrue(torch.all(torch.isfinite(W_q)), mode)
                self.assertLessEqual(W_q.abs().max().item(), 1e-8, mode)
        self.assertTrue(torch.all(mr.quantise_activations(zero, 8) == 0))


class StraightThrough(unittest.TestCase):
    def test_ste_gradient(self):
        """dW = S (dyᵀ x̃) [|W| ≤ C] (+ c (dyᵀ x) [|W| ≤ C]); dx = dy W_q (+ c dy W_c)."""
        gen = fresh_generator()
        for mode in ("binary", "ternary", "eightbit", "fourbit"):
            for arenas in (0.0, 0.4):
                for regime_kind in ("hard", "soft"):
                    if regime_kind == "soft" and mode in ("binary", "ternary"):
                        continue  # soft binary/ternary have true derivatives (checked above)
                    cfg = tiny_config(activation_bits=8, ste_scale_factor=1.7, latent_clamp_max=0.04)
                    regime = mr.Regime(regime_kind, 2.0, arenas)
                    x = rand(5, 10, gen=gen)
                    W = rand(7, 10, scale=0.03, gen=gen)
                    dy = torch.randn(5, 7, generator=gen)
                    dx, dW = torch.autograd.grad((mr.qlinear(x, W, mode, regime, cfg) * dy).sum(), (x, W))
                    mask = (W.abs() <= 0.04).double()
                    self.assertTrue(torch.any(mask == 0))
                    x_t = mr.quantise_activations(x.detach(), 8)
                    W_c = mr.clamp_latent(W.detach(), 0.04)
                    W_q = mr.quantise_weight_hard(W_c, mode, cfg)
                    expect_dW = (1.7 * (dy.t() @ x_t) + arenas * (dy.t() @ x.detach())) * mask
                    expect_dx = dy @ W_q + arenas * dy @ W_c
                    self.assertLess((dW - expect_dW).abs().max().item(), 1e-12, (mode, arenas))
                    self.assertLess((dx - expect_dx).abs().max().item(), 1e-12, (mode, arenas))
                    y = mr.qlinear(x, W, mode, regime, cfg).detach()
                    self.assertLess((y - (x_t @ W_q.t() + arenas * x.detach() @ W_c.t())).abs().max().item(), 1e-12)

    def test_tied_embedding_gradients_add_before_ste(self):
        gen = fresh_generator()
        cfg = tiny_config(latent_clamp_max=0.03, ste_scale_factor=2.0,
                          layer_bit_map={"embedding": "ternary", "layer_modes": ["binary"]})
        params = {k: v.requires_grad_() for k, v in mr.init_parameters(cfg, gen).items()}
        inputs = torch.randint(0, 13, (2, 5), generator=gen)
        targets = torch.randint(0, 13, (2, 5), generator=gen)
        _, _, grads = mr.loss_and_grads(params, inputs, targets, mr.Regime("hard"), 0.0, cfg)
        E = params["model.embed_tokens.weight"]
        g = grads["model.embed_tokens.weight"]
        self.assertTrue(torch.all(g[E.detach().abs() > 0.03] == 0))
        self.assertGreater(g.abs().max().item(), 0)
        # rows of tokens never looked up still get the head's gradient
        unused = [v for v in range(13) if v not in inputs]
        if unused:
            self.assertGreater(g[unused].abs().max().item(), 0)


class Model(unittest.TestCase):
    def test_loss_at_init_is_log_vocab(self):
        gen = fresh_generator()
        for overrides in ({}, {"use_ternary": True, "use_rope": True},
                          {"layer_bit_map": {"embedding": "eightbit", "layer_modes": ["fourbit", "ternary"]}}):
            fields = {"vocab_size": 64, "hidden_size": 32, "num_heads": 4, "num_layers": 2,
                      "intermediate_size": 64, "max_seq_len": 16}
            fields.update(overrides)
            cfg = mr.Config(fields)
            params = mr.init_parameters(cfg, gen)
            # 128 positions: the mean's sampling spread is about 0.01
            inputs = torch.randint(0, 64, (8, 16), generator=gen)
            targets = torch.randint(0, 64, (8, 16), generator=gen)
            for regime in (mr.Regime("hard"), mr.Regime("soft", 1.0, 0.5), mr.Regime("fp")):
                loss = mr.label_smoothed_cross_entropy(mr.forward(params, inputs, regime, cfg), targets, 0.1)
                self.assertLess(abs(loss.item() - math.log(64)), 0.06, (overrides, regime.kind))

    def test_parameter_shapes_match_count(self):
        cfg = tiny_config(use_swiglu=True, tie_embeddings=False)
        H, V, F, kvd, hd = 8, 13, 12, 4, 4
        count = V * H + 6 * H + (2 * H + 2 * H * H + 2 * kvd * H + 3 * H * F + 2 * hd) + H + V * H
        self.assertEqual(sum(int(np.prod(s)) for _, s in mr.parameter_shapes(cfg)), count)

    def test_schedules(self):
        tr = {"lr": 1.0, "lr_min": 0.1, "warmup_steps": 4, "max_steps": 24, "schedule": "cosine"}
        self.assertAlmostEqual(mr.learning_rate(0, tr), 0.25)
        self.assertAlmostEqual(mr.learning_rate(3, tr), 1.0)
        self.assertAlmostEqual(mr.learning_rate(4, tr), 1.0)
        self.assertAlmostEqual(mr.learning_rate(14, tr), 0.55)
        self.assertAlmostEqual(mr.learning_rate(24, tr), 0.1)
        self.assertAlmostEqual(mr.learning_rate(14, dict(tr, schedule="linear")), 0.55)
        self.assertAlmostEqual(mr.learning_rate(19, dict(tr, schedule="linear")), 0.325)
        self.assertAlmostEqual(mr.learning_rate(19, dict(tr, schedule="constant")), 1.0)
        cfg = tiny_config(anneal_fraction=0.5, arenas_initial=0.2, arenas_anneal_steps=8)
        kinds = [mr.quant_regime(t, {"max_steps": 10}, cfg) for t in range(10)]
        self.assertEqual([r.kind for r in kinds], ["soft"] * 5 + ["hard"] * 5)
        self.assertEqual([r.sharpness for r in kinds[:5]], [1 + 7 * t / 5 for t in range(5)])
        self.assertAlmostEqual(kinds[2].arenas, 0.15)
        self.assertEqual(kinds[9].arenas, 0.0)
        tr = {"max_steps": 10, "quant_warmup_steps": 2, "quant_anneal_steps": 4}
        kinds = [mr.quant_regime(t, tr, cfg) for t in range(8)]
        self.assertEqual([r.kind for r in kinds], ["fp"] * 2 + ["soft"] * 4 + ["hard"] * 2)
        self.assertEqual(kinds[2].sharpness, 1.0)
        self.assertEqual(kinds[5].sharpness, 1 + 7 * 3 / 4)


def write_random_case(case_dir, cfg_fields, gen, B=2, T=8, case=None):
    cfg = mr.Config(cfg_fields)
    os.makedirs(case_dir, exist_ok=True)
    with open(os.path.join(case_dir, "config.json"), "w") as f:
        json.dump(cfg_fields, f)
    params = {k: v.numpy().astype(np.float32) for k, v in mr.init_parameters(cfg, gen).items()}
    for name in params:
        if name.endswith("norm.weight"):
            params[name] = (1 + 0.1 * torch.randn(params[name].shape, generator=gen)).numpy().astype(np.float32)
    mr.write_safetensors(os.path.join(case_dir, "model.safetensors"), params)
    tokens = torch.randint(0, cfg.vocab_size, (2, B, T), generator=gen).numpy().astype(np.int32)
    mr.write_safetensors(os.path.join(case_dir, "batch.safetensors"), {"inputs": tokens[0], "targets": tokens[1]})
    if case is not None:
        with open(os.path.join(case_dir, "case.json"), "w") as f:
            json.dump(case, f)
    return cfg, params


TINY_FIELDS = {"vocab_size": 64, "hidden_size": 32, "num_heads": 4, "num_kv_heads": 2, "num_layers": 2,
               "intermediate_size": 48, "max_seq_len": 8, "use_ternary": True, "use_rope": True,
               "use_swiglu": True, "latent_clamp_max": 0.03, "arenas_initial": 0.3, "arenas_anneal_steps": 6}


class CaseDirectories(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="model_ref_")
        self.gen = fresh_generator()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def run_ref(self, *args):
        return subprocess.run([sys.executable, os.path.join(HERE, "model_ref.py"), *args],
                              capture_output=True, text=True)

    def test_safetensors_round_trip(self):
        path = os.path.join(self.dir, "t.safetensors")
        tensors = {"a": np.random.randn(3, 4).astype(np.float32), "b": np.arange(5, dtype=np.int32),
                   "c": np.zeros((0, 2), np.float32)}
        mr.write_safetensors(path, tensors)
        back = mr.read_safetensors(path)
        self.assertEqual(sorted(back), sorted(tensors))
        for k in tensors:
            self.assertEqual(back[k].dtype, tensors[k].dtype)
            self.assertTrue(np.array_equal(back[k], tensors[k]))
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:-4])
        with self.assertRaises(ValueError):
            mr.read_safetensors(path)

    def test_grad_round_trip(self):
        cases = [{"regime": "hard", "arenas": 0.2, "label_smoothing": 0.1},
                 {"regime": "soft", "sharpness": 3.0, "arenas": 0.0, "label_smoothing": 0.0},
                 {"regime": "fp", "label_smoothing": 0.05},
                 {"regime": "soft", "sharpness": 2.0, "arenas": 0.5, "eval": True}]
        dirs = []
        for i, case in enumerate(cases):
            d = os.path.join(self.dir, f"case{i}")
            dirs.append((d, case) + write_random_case(d, TINY_FIELDS, self.gen, case=case))
        proc = self.run_ref("grad", *[d for d, *_ in dirs])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        losses = []
        for d, case, cfg, params in dirs:
            out = mr.read_safetensors(os.path.join(d, "ref.safetensors"))
            self.assertEqual(sorted(out), sorted(["loss", "logits"] + ["grad." + n for n in params]))
            self.assertEqual(out["logits"].shape, (2, 8, 64))
            batch = mr.read_safetensors(os.path.join(d, "batch.safetensors"))
            regime, eps = mr.regime_of_case(case)
            leaves = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
            loss, logits, grads = mr.loss_and_grads(leaves, torch.tensor(batch["inputs"]).long(),
                                                    torch.tensor(batch["targets"]).long(), regime, eps, cfg)
            self.assertAlmostEqual(out["loss"][0], loss.item(), places=5)
            self.assertTrue(np.allclose(out["logits"], logits.numpy(), rtol=1e-6, atol=1e-7))
            for name in params:
                self.assertEqual(out["grad." + name].shape, params[name].shape)
                self.assertTrue(np.allclose(out["grad." + name], grads[name].numpy(), rtol=1e-6, atol=1e-9), name)
                self.assertGreater(np.abs(out["grad." + name]).max(), 0, name)
            losses.append(out["loss"][0])
        self.assertEqual(len(set(losses)), len(losses))

    def test_grad_rejects_bad_parameters(self):
        d = os.path.join(self.dir, "bad")
        _, params = write_random_case(d, TINY_FIELDS, self.gen, case={"regime": "hard"})
        params["model.norm.weight"] = np.ones(31, np.float32)
        mr.write_safetensors(os.path.join(d, "model.safetensors"), params)
        proc = self.run_ref("grad", d)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("model.norm.weight", proc.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, "ref.safetensors")))

    def test_train_against_torch_adamw(self):
        """`train` through the command line against torch.optim.AdamW driving the same gradients."""
        d = os.path.join(self.dir, "train")
        fields = dict(TINY_FIELDS, tie_embeddings=False,
                      layer_bit_map={"embedding": "f16", "layer_modes": ["ternary", "f16"], "lm_head": "eightbit"})
        cfg, params = write_random_case(d, fields, self.gen)
        steps, accum = 5, 2
        tokens = torch.randint(0, 64, (2, steps * accum, 2, 8), generator=self.gen).numpy().astype(np.int32)
        mr.write_safetensors(os.path.join(d, "batches.safetensors"), {"inputs": tokens[0], "targets": tokens[1]})
        tr = {"steps": steps, "max_steps": 8, "accum": accum, "lr": 0.02, "lr_min": 0.002, "warmup_steps": 2,
              "schedule": "cosine", "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "clip": 0.5,
              "label_smoothing": 0.1, "quant_warmup_steps": 1, "quant_anneal_steps": 2}
        with open(os.path.join(d, "train.json"), "w") as f:
            json.dump(tr, f)
        proc = self.run_ref("train", d)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        out = mr.read_safetensors(os.path.join(d, "ref_train.safetensors"))

        leaves = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
        decay = [p for p in leaves.values() if p.dim() == 2]
        no_decay = [p for p in leaves.values() if p.dim() != 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=0.02, betas=(0.9, 0.95), eps=1e-8)
        inputs, targets = torch.tensor(tokens[0]).long(), torch.tensor(tokens[1]).long()
        losses, norms = [], []
        for t in range(steps):
            regime = mr.quant_regime(t, tr, cfg)
            opt.zero_grad()
            total = 0.0
            for micro in range(accum):
                logits = mr.forward(leaves, inputs[t * accum + micro], regime, cfg)
                loss = mr.label_smoothed_cross_entropy(logits, targets[t * accum + micro], 0.1) / accum
                loss.backward()
                total += loss.item()
            norms.append(torch.nn.utils.clip_grad_norm_(list(leaves.values()), 0.5).item())
            for group in opt.param_groups:
                group["lr"] = mr.learning_rate(t, tr)
            opt.step()
            with torch.no_grad():
                for name in leaves:  # layer 0 is ternary, the head eightbit
                    if name.startswith("model.layers.0.") and name.endswith("_proj.weight") or name == "lm_head.weight":
                        leaves[name].clamp_(-0.03, 0.03)
            losses.append(total)
        self.assertTrue(np.allclose(out["losses"], losses, rtol=1e-6), (out["losses"], losses))
        self.assertTrue(np.allclose(out["grad_norms"], norms, rtol=1e-6))
        self.assertTrue(np.allclose(out["lrs"], [mr.learning_rate(t, tr) for t in range(steps)], rtol=1e-7))
        for name, p in leaves.items():
            self.assertTrue(np.allclose(out["param." + name], p.detach().numpy(), rtol=1e-5, atol=1e-7), name)
            self.assertFalse(np.array_equal(out["param." + name], params[name]), name)
        self.assertEqual(np.abs(out["param.model.layers.0.self_attn.k_proj.weight"]).max(), np.float32(0.03))
        self.assertGreater(np.abs(out["param.model.layers.1.self_attn.k_proj.weight"]).max(), 0.03)


if __name__ == "__main__":
    print(f"test_model_ref.py: MODEL_REF_SEED={SEED}", file=sys.stderr)
    unittest.main()
