/* onebit's freestanding inference runtime for microcontrollers: no malloc (the
 * caller passes one arena, obe_arena_bytes says how large), no stdio, no libc
 * (only <stdint.h>/<stddef.h> and onebit_math.h), integer kernels over the
 * packed weights, greedy and seeded sampled generation, byte-level decoding of
 * tokens. `onebit export --emit-c-header` writes a model as one header that
 * defines `static const obe_model onebit_model`; docs/EMBEDDED.md shows how to
 * build it for a board.
 *
 * It computes what the full runtime (src/infer) computes with its scalar
 * kernels, operation for operation: the same activation quantiser, exact
 * integer dot products, the same float and double arithmetic in the same
 * order, the same exp and sqrt (onebit_math.h), the same sampler and seeded
 * xoshiro256** stream. Compiled with -ffp-contract=off (no fused
 * multiply-add), a model, prompt and seed give the same tokens here and in
 * `onebit generate --kernels scalar`, on the host and on the board.
 *
 * Supported: ternary, binary, fourbit and eightbit decoder layers with
 * activation_bits 2..8 (integer kernels only: f16 layers and activation_bits 0
 * are refused by the exporter), every table precision (f32, f16, int8, int4,
 * quantised embeddings), LayerNorm or RMSNorm, RoPE or learned positions,
 * QK-norm, grouped-query attention, SiLU / ReLU² / SwiGLU, tied or untied
 * heads. The context is fixed when a session starts; generation stops when it
 * is full (no sliding window). */
#ifndef ONEBIT_EMBEDDED_H
#define ONEBIT_EMBEDDED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The layout of obe_model below; a generated header checks it. */
#define OBE_MODEL_VERSION 1

/* Tensor dtypes: the codes of the .1bit tensor table. */
enum {
    OBE_F32 = 1,      /* floats, rows not padded */
    OBE_F16 = 2,      /* IEEE half, rows not padded */
    OBE_I8 = 3,       /* int8 codes, one scale per row */
    OBE_FOURBIT = 4,  /* 4-bit codes (code + 8), one scale per row */
    OBE_TERNARY2 = 5, /* 2-bit codes (code + 1), one scale */
    OBE_BINARY1 = 6,  /* 1-bit codes (1 = +1, 0 = -1), one scale */
};

/* A matrix [rows, cols] used as y = x·Wᵀ in the packed layout of
 * docs/INFERENCE.md (quantised rows padded to 256 weights, 32-byte groups). */
typedef struct obe_tensor {
    int32_t dtype;
    int32_t rows, cols, cols_padded;
    int32_t row_bytes;
    int32_t num_scales; /* rows (I8, FOURBIT), 1 (TERNARY2, BINARY1), 0 (floats) */
    const void *data;
    const float *scales;
} obe_tensor;

enum { OBE_PROJ_Q, OBE_PROJ_K, OBE_PROJ_V, OBE_PROJ_O, OBE_PROJ_GATE, OBE_PROJ_UP, OBE_PROJ_DOWN, OBE_PROJ_COUNT };

typedef struct obe_layer {
    const float *input_norm, *post_norm; /* [H] */
    const float *q_norm, *k_norm;        /* [head_dim]; NULL without QK-norm */
    obe_tensor proj[OBE_PROJ_COUNT];     /* gate has rows 0 without SwiGLU */
    int32_t act_bits;                    /* activation bits of its products (2..8) */
} obe_layer;

enum { OBE_FFN_SILU = 0, OBE_FFN_RELU2 = 1, OBE_FFN_SWIGLU = 2 };

typedef struct obe_model {
    int32_t layout_version; /* OBE_MODEL_VERSION */
    int32_t vocab_size, hidden_size, num_heads, num_kv_heads, num_layers, intermediate_size, max_seq_len;
    int32_t layernorm;      /* 1: LayerNorm without bias, 0: RMSNorm */
    int32_t use_qk_norm, use_rope, ffn;
    float norm_eps;         /* (float)layer_norm_eps */
    float residual_scale;   /* (float)(1/√2), or 1 without residual scaling */
    float attn_scale;       /* (float)(1/√head_dim) */
    obe_tensor embed;       /* [V, H] lookup table */
    const float *positions; /* [max_seq_len][H] learned positions; NULL with RoPE */
    const obe_layer *layers;
    const float *final_norm;
    obe_tensor head;        /* [V, H] */
    int32_t head_act_bits;  /* 0: float activations (F32/F16 head) */
    const float *rope_cos, *rope_sin; /* [max_seq_len][head_dim/2]; NULL without RoPE */
    /* The tokenizer's vocabulary for decoding: token t is bytes
     * vocab_bytes[vocab_offsets[t] .. vocab_offsets[t+1]). */
    int32_t vocab_count;    /* the tokenizer's size (<= vocab_size; 0: no vocabulary) */
    int32_t eos_id;         /* end-of-text token; -1: none */
    const uint32_t *vocab_offsets;
    const uint8_t *vocab_bytes;
} obe_model;

/* Status codes. */
enum {
    OBE_OK = 0,
    OBE_ERR_ARG,     /* a bad argument (context, token, sampler parameter) */
    OBE_ERR_MODEL,   /* the model struct is malformed or of another layout version */
    OBE_ERR_ARENA,   /* the arena is too small or misaligned */
    OBE_ERR_CONTEXT, /* the context is full */
    OBE_ERR_NUMERIC, /* a logit is not finite */
};

const char *obe_status_name(int status);

/* Bytes of arena a session of `context` tokens needs (0 when the model or the
 * context is invalid): the KV cache, the activations of one token, the logits
 * and the sampler's scratch. */
size_t obe_arena_bytes(const obe_model *m, int32_t context);

/* A compile-time bound on obe_arena_bytes for static arenas (a generated
 * header defines ONEBIT_MODEL_ARENA_BYTES(context) with it): the same parts
 * plus room for the session struct and the alignment of each part. */
#define OBE_ARENA_BYTES(vocab, hidden, inter, layers, kv_dim, context)                                         \
    ((size_t)1024 + (size_t)4 * (size_t)(context) * ((size_t)2 + (size_t)2 * (size_t)(layers) * (size_t)(kv_dim)) + \
     (size_t)4 * ((size_t)5 * (size_t)(hidden) + (size_t)2 * (size_t)(kv_dim) + (size_t)3 * (size_t)(inter)) +      \
     (size_t)25 * (size_t)(vocab) + (size_t)(hidden) + (size_t)(inter) + (size_t)512)

typedef struct obe_session obe_session;

/* Checks the model and lays the session out in the arena (at least
 * obe_arena_bytes(m, context) bytes; any alignment). */
int obe_session_init(obe_session **out, const obe_model *m, int32_t context, void *arena, size_t arena_bytes);
/* Empties the KV cache. */
void obe_session_reset(obe_session *s);
int32_t obe_session_position(const obe_session *s);

/* Runs one token at the next position; with want_logits, *logits (may be
 * NULL otherwise) points to vocab_size floats valid until the next call. */
int obe_forward(obe_session *s, int32_t token, int want_logits, const float **logits);

/* The sampler of the full runtime (include/onebit/sampler.h). */
typedef struct obe_sampler_params {
    double temperature;        /* <= 0: greedy */
    int32_t top_k;             /* 0: off */
    double top_p;              /* >= 1: off */
    double min_p;              /* 0: off */
    double repetition_penalty; /* 1: off */
    int32_t repetition_window; /* 0: the whole history */
    uint64_t seed;
} obe_sampler_params;

/* Temperature 0.8, top-k 40, top-p 0.9, min-p 0, repetition penalty 1.1 over 64 tokens, seed 42. */
void obe_sampler_params_default(obe_sampler_params *p);
/* Checks the parameters and restarts the random stream from p->seed. */
int obe_sampler_set(obe_session *s, const obe_sampler_params *p);
/* Draws a token from logits [0, n) with the session's tokens as history. */
int obe_sample(obe_session *s, const float *logits, int32_t n, int32_t *token);

enum { OBE_STOP_MAX_TOKENS = 0, OBE_STOP_EOS, OBE_STOP_CONTEXT, OBE_STOP_CALLBACK };

typedef struct obe_generate_options {
    int32_t max_tokens;
    int32_t eos_id;      /* stop at this token (not reported); -1: none */
    int32_t vocab_limit; /* sample ids below this; 0: vocab_size */
} obe_generate_options;

/* Called with each generated token; returning 0 stops generation. */
typedef int (*obe_token_fn)(int32_t token, void *user);

/* Appends the prompt to the session, then samples up to max_tokens tokens
 * (as ob_generate without sliding: the last token is reported but not run).
 * *generated and *stop (each may be NULL) receive the count and the reason. */
int obe_generate(obe_session *s, const int32_t *prompt, int32_t n_prompt, const obe_generate_options *o,
                 obe_token_fn fn, void *user, int32_t *generated, int32_t *stop);

/* The bytes a token decodes to (NULL, *len 0 when the model has no vocabulary
 * or the id is out of range). */
const uint8_t *obe_token_bytes(const obe_model *m, int32_t token, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
