/* The inference runtime: packed models (weights quantised once by the training
 * quantiser and stored 2 bits per ternary weight, 1 bit per binary weight),
 * integer kernels (AVX2 / AVX-VNNI / scalar, chosen at run time), a forward
 * pass with a KV cache allocated once, generation, chat sessions and
 * perplexity. docs/INFERENCE.md describes the packed layout, the numerics and
 * the commands built on this API. Nothing here prints. */
#ifndef ONEBIT_INFER_H
#define ONEBIT_INFER_H

#include "onebit/model.h"
#include "onebit/sampler.h"
#include "onebit/tensor.h"
#include "onebit/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- packed tensors ---------------------------------------------------------
 *
 * A matrix [rows, cols] (y = x·Wᵀ, one row per output) in one of these dtypes:
 *   F32, F16   row-major floats, no padding (row_bytes = cols·4 or cols·2)
 *   I8         eightbit codes in [-127, 127], one float scale per row
 *   FOURBIT    fourbit codes in [-7, 7], one float scale per row
 *   TERNARY2   ternary codes {-1, 0, 1}, one float scale for the matrix
 *   BINARY1    binary codes {-1, 1}, one float scale for the matrix
 * Quantised rows are padded to cols_padded = cols rounded up to 256 weights and
 * stored as 32-byte groups (weight = code · scale):
 *   TERNARY2  a group holds 128 weights: bits 2k..2k+1 of byte b hold weight
 *             32k + b of the group as code + 1 (0, 1, 2); padding stores 1.
 *   BINARY1   a group holds 256 weights: bit k of byte b holds weight 32k + b
 *             (1 = +1, 0 = -1); padding stores 0.
 *   FOURBIT   a group holds 64 weights: the low nibble of byte b holds weight b,
 *             the high nibble weight 32 + b, each as code + 8 (1..15); padding 8.
 *   I8        a group holds 32 weights, one int8 code each; padding 0.
 * So one 32-byte load feeds 128 ternary weights against 4 contiguous 32-byte
 * slices of the int8 activations. The layout is part of the .1bit format. */

#define OB_PACK_ROW_MULTIPLE 256 /* quantised rows are padded to a multiple of this many weights */
#define OB_PACK_GROUP_BYTES 32
#define OB_PACK_ALIGN 64         /* every tensor's data starts on this boundary */

typedef struct ob_packed_tensor {
    ob_dtype dtype;      /* F32, F16, I8, FOURBIT, TERNARY2 or BINARY1 */
    int rows, cols;
    int cols_padded;     /* quantised: cols rounded up to 256; float: cols */
    size_t row_bytes;
    const void *data;    /* rows · row_bytes bytes */
    const float *scales; /* num_scales floats (NULL for F32/F16) */
    int num_scales;      /* rows (I8, FOURBIT), 1 (TERNARY2, BINARY1), 0 (floats) */
} ob_packed_tensor;

/* The packed dtype of a layer mode: F16 for f16, I8, FOURBIT, TERNARY2, BINARY1. */
ob_dtype ob_packed_dtype_for_mode(ob_quant_mode mode);
/* True for I8, FOURBIT, TERNARY2, BINARY1. */
bool ob_packed_dtype_quantised(ob_dtype dtype);
int ob_packed_cols_padded(ob_dtype dtype, int cols);
/* Bytes of one row; 0 for a dtype that cannot be packed. */
size_t ob_packed_row_bytes(ob_dtype dtype, int cols);
/* Scales a tensor of this dtype carries (rows, 1 or 0). */
int ob_packed_num_scales(ob_dtype dtype, int rows);
/* Fills a view over caller memory: data must hold rows · row_bytes bytes. */
void ob_packed_tensor_init(ob_packed_tensor *t, ob_dtype dtype, int rows, int cols, const void *data,
                           const float *scales);

/* Packs integer codes [rows, cols] (row-major) into `data` (rows · row_bytes). */
ob_status ob_pack_codes(ob_dtype dtype, const int8_t *codes, int rows, int cols, void *data) OB_NODISCARD;
/* Quantises latent weights W [rows, cols] with the training quantiser of
 * `mode` (ob_quant_weight_hard) and packs them: data gets rows · row_bytes bytes
 * and scales num_scales floats. Mode f16 rounds to F16 (scales unused). */
ob_status ob_pack_weight(ob_quant_mode mode, bool dynamic_threshold, float clamp, const float *w, int rows, int cols,
                         void *data, float *scales) OB_NODISCARD;
/* Per-row absmax int8 (qmax 127) or int4 (qmax 7) of a full-precision matrix:
 * the optional compressed output head (lossy). */
ob_status ob_pack_rows_absmax(ob_dtype dtype, const float *w, int rows, int cols, void *data,
                              float *scales) OB_NODISCARD;
/* The integer code of weight (r, j) of a quantised tensor. */
int ob_packed_code(const ob_packed_tensor *t, int r, int j);
/* Row r as floats: code · scale, or the stored float. */
void ob_packed_row_to_f32(const ob_packed_tensor *t, int r, float *out);

/* ---- packed models ------------------------------------------------------- */

typedef struct ob_packed_layer {
    const float *input_norm, *post_norm; /* [H] */
    const float *q_norm, *k_norm;        /* [head_dim]; NULL without QK-norm */
    ob_packed_tensor proj[OB_PROJ_COUNT]; /* gate has rows = 0 without SwiGLU */
} ob_packed_layer;

/* Precision of the embedding table and the output head when their mode is
 * full precision (f16); a quantised mode always keeps its own codes. */
typedef enum ob_table_precision {
    OB_TABLE_AUTO = 0, /* F32: the training forward exactly */
    OB_TABLE_F32,
    OB_TABLE_F16,
    OB_TABLE_I8,       /* per-row absmax int8 (lossy), int8 activations in the head */
    OB_TABLE_I4,       /* per-row absmax int4 (lossy), int8 activations in the head */
} ob_table_precision;

typedef struct ob_pack_options {
    ob_table_precision head;  /* the output head; with tied embeddings, the shared table */
    ob_table_precision embed; /* an untied embedding table (lookups only) */
} ob_pack_options;

const char *ob_table_precision_name(ob_table_precision p);
bool ob_table_precision_parse(const char *name, ob_table_precision *out);

typedef struct ob_packed_model {
    ob_config cfg;
    ob_packed_tensor embed;    /* [V, H] lookup table */
    const float *positions;    /* [max_seq_len, H]; NULL with RoPE */
    ob_packed_layer *layers;   /* num_layers */
    const float *final_norm;   /* [H] */
    ob_packed_tensor head;     /* [V, H]; the same bytes as embed when they are shared */
    bool head_shares_embed;
    size_t weight_bytes;       /* bytes of every tensor, shared ones once */
    /* Storage: either one block this model owns, or memory of a source (a
     * mapped .1bit file) released through `release`. */
    void *storage;
    void (*release)(void *ctx);
    void *release_ctx;
} ob_packed_model;

/* Packs a model from its latent weights (parameter layout of `m`); the packed
 * weights are the training quantiser's, so the runtime reproduces the hard
 * training forward. `opts` may be NULL. */
ob_status ob_packed_model_build(const ob_model *m, const float *weights, const ob_pack_options *opts,
                                ob_packed_model **out) OB_NODISCARD;
/* A model of the config with random codes (random normal tables, unit norm
 * gains), built without latent weights: benchmarks at sizes whose f32 weights
 * would not fit in memory. */
ob_status ob_packed_model_random(const ob_config *cfg, uint64_t seed, const ob_pack_options *opts,
                                 ob_packed_model **out) OB_NODISCARD;
/* Checks a model filled by another source: each tensor's dtype fits its mode,
 * shapes, row sizes, alignment and scales (finite). `source` names it in errors. */
ob_status ob_packed_model_validate(const ob_packed_model *pm, const char *source) OB_NODISCARD;
void ob_packed_model_free(ob_packed_model *pm);
/* Bytes read from the weights to decode one token: every decoder matrix, the
 * head, the norms and one embedding row. */
size_t ob_packed_model_bytes_per_token(const ob_packed_model *pm);

/* Opens a model: `model_dir` is a checkpoint directory (config.json,
 * model.safetensors, tokenizer.json; a training output directory with a
 * `latest` link works too), or `model_file` a .1bit file. Exactly one is given.
 * `tok` (may be NULL) receives the tokenizer. */
ob_status ob_infer_open(const char *model_dir, const char *model_file, const ob_pack_options *opts,
                        ob_packed_model **model, ob_tokenizer **tok) OB_NODISCARD;

/* ---- kernels --------------------------------------------------------------- */

typedef enum ob_kernel_isa {
    OB_ISA_AUTO = 0, /* the best this CPU supports, or $ONEBIT_KERNELS */
    OB_ISA_SCALAR,   /* portable C */
    OB_ISA_AVX2,     /* AVX2 + FMA + F16C */
    OB_ISA_AVXVNNI,  /* AVX2 with the VEX-encoded VPDPBUSD (AVX-VNNI) */
} ob_kernel_isa;

const char *ob_kernel_isa_name(ob_kernel_isa isa);
bool ob_kernel_isa_parse(const char *name, ob_kernel_isa *out);
/* Whether this CPU (and this build) can run the kernels of `isa`. */
bool ob_kernel_isa_supported(ob_kernel_isa isa);
/* $ONEBIT_KERNELS (scalar, avx2, avxvnni) when set and supported, else
 * the best supported. */
ob_kernel_isa ob_kernel_isa_detect(void);

/* ---- sessions: one sequence with its KV cache -------------------------------- */

typedef struct ob_infer_options {
    int context;       /* tokens the KV cache holds; 0: max_seq_len (never more) */
    int threads;       /* OpenMP threads; 0: omp_get_max_threads() */
    ob_kernel_isa isa; /* OB_ISA_AUTO: ob_kernel_isa_detect() */
} ob_infer_options;

typedef struct ob_infer ob_infer;

/* Allocates the KV cache and every scratch buffer once; `pm` must outlive it. */
ob_status ob_infer_create(const ob_packed_model *pm, const ob_infer_options *opts, ob_infer **out) OB_NODISCARD;
void ob_infer_free(ob_infer *s);
/* Empties the cache (position 0). */
void ob_infer_reset(ob_infer *s);
const ob_packed_model *ob_infer_model(const ob_infer *s);
int ob_infer_position(const ob_infer *s); /* tokens in the cache */
int ob_infer_context(const ob_infer *s);
ob_kernel_isa ob_infer_isa(const ob_infer *s);
int ob_infer_threads(const ob_infer *s);
size_t ob_infer_kv_bytes(const ob_infer *s);
/* The tokens in the cache, oldest first (position() of them). */
const int32_t *ob_infer_tokens(const ob_infer *s);

/* Runs n tokens at positions position() .. position()+n-1 and appends them to
 * the cache. `logits` may be NULL, or receive [V] floats for the last token,
 * or [n, V] when `all_logits`. Running past the context is an error that
 * leaves the session unchanged (never a buffer overrun): check the room
 * first, or slide. */
ob_status ob_infer_forward(ob_infer *s, const int32_t *tokens, int n, float *logits,
                           bool all_logits) OB_NODISCARD;
/* Keeps the last `keep` tokens of the cache and re-encodes them from position
 * 0 (the sliding window used when a conversation outgrows the context);
 * `logits` (may be NULL) gets the last kept token's logits. */
ob_status ob_infer_slide(ob_infer *s, int keep, float *logits) OB_NODISCARD;

/* ---- generation ------------------------------------------------------------ */

typedef enum ob_stop_reason {
    OB_STOP_MAX_TOKENS = 0,
    OB_STOP_EOS,
    OB_STOP_CONTEXT,  /* the context is full and sliding is off */
    OB_STOP_CALLBACK, /* the token callback asked to stop */
} ob_stop_reason;

const char *ob_stop_reason_name(ob_stop_reason r);

typedef struct ob_generate_options {
    int max_tokens;   /* tokens to generate at most */
    int eos_id;       /* stop after this token (not reported); -1: none */
    int vocab_limit;  /* sample ids below this (the tokenizer's size); 0: vocab_size */
    bool slide;       /* when the context fills: keep its last half and go on (true) or stop */
} ob_generate_options;

typedef struct ob_generate_result {
    int prompt_tokens, generated;
    ob_stop_reason stop;
    int slides;                     /* times the window slid */
    int32_t last;                   /* the last generated token, not yet in the cache; -1: none */
    double prefill_seconds, decode_seconds;
} ob_generate_result;

/* Called with each generated token; returning false stops generation. */
typedef bool (*ob_token_fn)(int32_t token, void *user);

/* Appends the prompt to the session (which may hold earlier turns), then draws
 * tokens until max_tokens, EOS, a full context or the callback. The sampler's
 * repetition history is the session's tokens. An empty prompt continues the
 * cached tokens (encoding them again: a session keeps no logits). */
ob_status ob_generate(ob_infer *s, ob_sampler *smp, const int32_t *prompt, int n_prompt,
                      const ob_generate_options *opts, ob_token_fn fn, void *user,
                      ob_generate_result *res) OB_NODISCARD;

/* ---- chat -------------------------------------------------------------------- */

/* A multi-turn conversation over one session: each turn appends
 * user_prefix + message + "\n" + assistant_prefix and generates the reply until
 * EOS, its first blank line, or max_tokens; the reply stays in the history
 * (followed by a newline), so later turns see earlier ones. The first turn
 * starts with the end-of-text token. When the history outgrows the context,
 * its older half slides out. */
typedef struct ob_chat_options {
    const char *user_prefix;      /* default "" */
    const char *assistant_prefix; /* default "" */
    int max_tokens;               /* per reply; default 128 */
} ob_chat_options;

typedef struct ob_chat ob_chat;

/* Text of each reply token as it is generated (raw bytes; a multi-byte
 * character may arrive in pieces). */
typedef void (*ob_text_fn)(const char *text, size_t len, void *user);

ob_status ob_chat_create(ob_infer *s, ob_sampler *smp, const ob_tokenizer *tok, const ob_chat_options *opts,
                         ob_chat **out) OB_NODISCARD;
void ob_chat_free(ob_chat *c);
/* Forgets the history. */
void ob_chat_reset(ob_chat *c);
ob_status ob_chat_send(ob_chat *c, const char *message, ob_text_fn fn, void *user,
                       ob_generate_result *res) OB_NODISCARD;

/* ---- perplexity ---------------------------------------------------------------- */

typedef struct ob_perplexity_options {
    int window;    /* tokens per window; 0: the session's context */
    int stride;    /* targets each window after the first scores (< window); 0: window / 2 */
    int64_t max_tokens; /* score at most this many tokens; 0: all */
    bool progress; /* progress bar on stderr */
} ob_perplexity_options;

typedef struct ob_perplexity_result {
    double nll_sum;        /* natural-log cross-entropy summed over scored tokens */
    int64_t tokens_scored;
    int64_t windows;
    double mean_nll, perplexity;
    double seconds;
} ob_perplexity_result;

/* Plain cross-entropy of tokens[1..n) given their prefixes, over sliding
 * windows: the first covers tokens [0, window); each next one scores the next
 * `stride` targets with the `window` tokens that end there, so each target is
 * scored once, with at least window − stride tokens of context after the
 * first window. */
ob_status ob_perplexity(ob_infer *s, const int32_t *tokens, size_t n, const ob_perplexity_options *opts,
                        ob_perplexity_result *res) OB_NODISCARD;

#ifdef __cplusplus
}
#endif
#endif
