#!/usr/bin/env python3
"""Reference for onebit's sampler (src/infer/sampler.c, docs/INFERENCE.md):
the distribution each stage leaves, computed independently with numpy in
float64. Reads a JSON list of cases and writes, for each, the final
distribution over the ids and the distribution after each stage.

usage: sampler_ref.py CASES.json OUT.json
case: {"logits": [...], "history": [...], "temperature": t, "top_k": k,
       "top_p": p, "min_p": m, "penalty": r, "window": w}"""
import json
import sys

import numpy as np


def order(z):
    """Ids by z descending, then id ascending."""
    ids = np.arange(len(z))
    return np.lexsort((ids, -z))


def renorm(p):
    return p / p.sum()


def stages(case):
    z = np.array(case["logits"], dtype=np.float32).astype(np.float64)
    n = len(z)
    out = {}
    # 1. repetition penalty, each distinct id of the window once.
    r = case["penalty"]
    hist = case["history"]
    w = case["window"] or len(hist)
    if r != 1.0:
        for t in set(hist[-w:] if w else []):
            if 0 <= t < n:
                z[t] = z[t] / r if z[t] > 0 else z[t] * r
    out["penalised"] = z.tolist()
    # 2. greedy.
    if case["temperature"] <= 0:
        p = np.zeros(n)
        p[order(z)[0]] = 1.0
        out["final"] = p.tolist()
        return out
    # 3. temperature.
    z = z / case["temperature"]
    keep = np.ones(n, dtype=bool)
    # 4. top-k: exactly k.
    k = case["top_k"]
    if 0 < k < n:
        keep[:] = False
        keep[order(z)[:k]] = True
    # 5. softmax over the kept ids.
    p = np.where(keep, np.exp(z - z[keep].max()), 0.0)
    p = renorm(p)
    out["after_top_k"] = p.tolist()
    # 6. top-p: shortest prefix (in rank order) reaching p.
    tp = case["top_p"]
    if tp < 1:
        ranked = [i for i in order(z) if keep[i]]
        cum, cut = 0.0, 0
        for i in ranked:
            if cum >= tp:
                break
            cum += p[i]
            cut += 1
        mask = np.zeros(n, dtype=bool)
        mask[ranked[:max(cut, 1)]] = True
        p = renorm(np.where(mask, p, 0.0))
    out["after_top_p"] = p.tolist()
    # 7. min-p relative to the most likely id.
    mp = case["min_p"]
    if mp > 0:
        p = renorm(np.where(p >= mp * p.max(), p, 0.0))
    out["final"] = p.tolist()
    return out


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    with open(sys.argv[2], "w") as f:
        json.dump([stages(c) for c in cases], f)


if __name__ == "__main__":
    main()
