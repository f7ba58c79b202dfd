#!/usr/bin/env python3
"""Writes a llama-architecture GGUF (F16) with random ternary weights at one of
the benchmark shapes, for llama-quantize to turn into TQ2_0 / TQ1_0 and
llama-bench to time beside bench_infer. The weights are {-0.02, 0, +0.02}, so
the ternary quantisation of llama.cpp keeps them exactly; the vocabulary is a
dummy SentencePiece one (llama-bench draws random token ids). Tensors are
streamed to the file one at a time, so the 2B shape needs no more memory than
its largest matrix.

usage: llamacpp_model.py SHAPE OUT.gguf   (SHAPE: 125m, 700m, 2b4t)
needs: numpy and llama.cpp's gguf-py on PYTHONPATH."""
import sys
import types

import numpy as np

# gguf-py imports sentencepiece for vocabulary conversion, which this script
# does not use; a stand-in lets it load where the package is not installed.
sys.modules.setdefault("sentencepiece", types.SimpleNamespace(SentencePieceProcessor=None))
import gguf  # noqa: E402

# The shapes of bench/bench_infer.c: hidden, layers, heads, kv heads, ffn, vocab.
SHAPES = {
    "125m": (768, 12, 12, 12, 2048, 32000),
    "700m": (1536, 24, 24, 24, 4096, 32000),
    "2b4t": (2560, 30, 20, 5, 6912, 128256),
}
CONTEXT = 4096


def ternary(rng, rows, cols):
    return (rng.integers(-1, 2, size=(rows, cols), dtype=np.int8).astype(np.float16) * np.float16(0.02))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in SHAPES:
        sys.exit(__doc__)
    H, L, nh, nkv, F, V = SHAPES[sys.argv[1]]
    hd = H // nh
    kvd = nkv * hd
    w = gguf.GGUFWriter(sys.argv[2], "llama")
    w.add_name("onebit-bench-" + sys.argv[1])
    w.add_context_length(CONTEXT)
    w.add_embedding_length(H)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_rope_dimension_count(hd)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    tokens += ["t%d" % i for i in range(V - len(tokens))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * (V - 259)
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(V)])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    # (name, shape) in file order; the output head is tied to token_embd.
    plan = [("token_embd.weight", (V, H), "table")]
    for i in range(L):
        plan += [
            ("blk.%d.attn_norm.weight" % i, (H,), "ones"),
            ("blk.%d.attn_q.weight" % i, (H, H), "ternary"),
            ("blk.%d.attn_k.weight" % i, (kvd, H), "ternary"),
            ("blk.%d.attn_v.weight" % i, (kvd, H), "ternary"),
            ("blk.%d.attn_output.weight" % i, (H, H), "ternary"),
            ("blk.%d.ffn_norm.weight" % i, (H,), "ones"),
            ("blk.%d.ffn_gate.weight" % i, (F, H), "ternary"),
            ("blk.%d.ffn_up.weight" % i, (F, H), "ternary"),
            ("blk.%d.ffn_down.weight" % i, (H, F), "ternary"),
        ]
    plan.append(("output_norm.weight", (H,), "ones"))
    for name, shape, kind in plan:
        dtype = np.float32 if kind == "ones" else np.float16
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        w.add_tensor_info(name, shape, np.dtype(dtype), nbytes)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(1234)
    for name, shape, kind in plan:
        if kind == "ones":
            data = np.ones(shape, dtype=np.float32)
        elif kind == "table":
            data = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)
        else:
            data = ternary(rng, *shape)
        w.write_tensor_data(data)
    w.close()


if __name__ == "__main__":
    main()
