/* What onebit chat, test-generate and eval share: the model flags (--model-dir,
 * --model, --threads, --context, --head, --kernels), OneBit-LLM's sampler flags
 * (--temperature, --top-k, --top-p, --repetition-penalty, --max-tokens) with
 * --min-p, --repetition-window and --seed, and loading a model into a session. */
#ifndef ONEBIT_TOOLS_INFER_COMMON_H
#define ONEBIT_TOOLS_INFER_COMMON_H

#include "commands.h"
#include "onebit/infer.h"

typedef struct infer_flags {
    const char *model_dir, *model_file;
    int threads, context, max_tokens;
    const char *head, *kernels;
    ob_sampler_params sampler;
    int64_t seed;
} infer_flags;

#define INFER_MODEL_ARGS(f)                                                                                           \
    {"--model-dir", OB_ARG_STRING, &(f).model_dir, "DIR",                                                            \
     "checkpoint directory (config.json, model.safetensors, tokenizer.json) or a training output with 'latest'",      \
     NULL, 0, 0, NULL},                                                                                               \
        {"--model", OB_ARG_STRING, &(f).model_file, "FILE", "a .1bit model file", NULL, 0, 0, NULL},                  \
        {"--threads", OB_ARG_INT, &(f).threads, "N", "CPU threads (0: all cores)", NULL, 0, 4096, NULL},              \
        {"--context", OB_ARG_INT, &(f).context, "N", "tokens the KV cache holds (0: max_seq_len)", NULL, 0, 1 << 24,  \
         NULL},                                                                                                       \
        {"--head", OB_ARG_CHOICE, &(f).head, NULL,                                                                    \
         "precision of a full-precision output head (and tied table): f32 is exact, int8/int4 faster",                \
         "f32|f16|int8|int4", 0, 0, NULL},                                                                            \
        {"--kernels", OB_ARG_CHOICE, &(f).kernels, NULL, "kernel set (auto: the best this CPU has)",                   \
         "auto|scalar|avx2|avxvnni", 0, 0, NULL}

#define INFER_SAMPLER_ARGS(f)                                                                                         \
    {"--temperature", OB_ARG_DOUBLE, &(f).sampler.temperature, "T", "sampling temperature (0: greedy)", NULL, 0,     \
     100, NULL},                                                                                                      \
        {"--top-k", OB_ARG_INT, &(f).sampler.top_k, "K", "keep the K most likely tokens (0: off)", NULL, 0, 1 << 30,  \
         NULL},                                                                                                       \
        {"--top-p", OB_ARG_DOUBLE, &(f).sampler.top_p, "P", "nucleus: smallest set with probability >= P (1: off)",   \
         NULL, 1e-9, 1, NULL},                                                                                        \
        {"--min-p", OB_ARG_DOUBLE, &(f).sampler.min_p, "P", "drop tokens below P x the top probability (0: off)",     \
         NULL, 0, 1, NULL},                                                                                           \
        {"--repetition-penalty", OB_ARG_DOUBLE, &(f).sampler.repetition_penalty, "R",                                \
         "divide logits of recent tokens by R (1: off)", NULL, 1e-6, 100, NULL},                                      \
        {"--repetition-window", OB_ARG_INT, &(f).sampler.repetition_window, "N",                                     \
         "how many recent tokens the penalty looks at (0: all)", NULL, 0, 1 << 30, NULL},                             \
        {"--max-tokens", OB_ARG_INT, &(f).max_tokens, "N", "tokens to generate at most", NULL, 0, 1 << 30, NULL},     \
        {"--seed", OB_ARG_I64, &(f).seed, "N", "seed of the sampler", NULL, 0, 9e18, NULL}

void infer_flags_default(infer_flags *f, int max_tokens);

/* A loaded model with its tokenizer, one session and a sampler. */
typedef struct infer_env {
    ob_packed_model *model;
    ob_tokenizer *tok;
    ob_infer *session;
    ob_sampler *sampler;
} infer_env;

/* Loads the model (and its tokenizer when need_tokenizer) and makes the
 * session and the sampler. Returns -1 on success, else the exit status, after
 * printing the error. */
int infer_env_open(const char *cmd, const infer_flags *f, bool need_tokenizer, infer_env *e);
void infer_env_close(infer_env *e);

/* Writes a token's bytes to stdout and flushes (streaming). */
void infer_print_token(const ob_tokenizer *tok, int32_t token);

#endif
