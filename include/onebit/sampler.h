/* Token sampling for generation: repetition penalty, temperature, top-k,
 * top-p, min-p and greedy decoding, with a seeded ob_rng so that the same seed
 * and logits give the same tokens everywhere. docs/INFERENCE.md gives the exact
 * definition of each stage; tests/ref/sampler_ref.py implements it with numpy. */
#ifndef ONEBIT_SAMPLER_H
#define ONEBIT_SAMPLER_H

#include "onebit/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_sampler_params {
    double temperature;        /* <= 0: greedy (argmax after the repetition penalty) */
    int top_k;                 /* keep exactly k tokens (ties: lower id first); 0: off */
    double top_p;              /* nucleus: smallest set with probability >= p; >= 1: off */
    double min_p;              /* keep tokens with p >= min_p * max p; 0: off */
    double repetition_penalty; /* > 1 penalises tokens seen in the window; 1: off */
    int repetition_window;     /* how many of the latest tokens count; 0: the whole history */
    uint64_t seed;
} ob_sampler_params;

/* Defaults: temperature 0.8, top-k 40, top-p 0.9, min-p 0, repetition
 * penalty 1.1 over the last 64 tokens, seed 42. */
void ob_sampler_params_default(ob_sampler_params *p);
/* Checks the ranges (temperature finite, top_k >= 0, 0 < top_p, 0 <= min_p <= 1,
 * penalty > 0, window >= 0); the error names the field and value. */
ob_status ob_sampler_params_validate(const ob_sampler_params *p) OB_NODISCARD;

typedef struct ob_sampler ob_sampler;

/* Scratch for up to max_vocab logits is allocated here, never while sampling. */
ob_status ob_sampler_create(const ob_sampler_params *p, int max_vocab, ob_sampler **out) OB_NODISCARD;
void ob_sampler_free(ob_sampler *s);
/* Restarts the random stream. */
void ob_sampler_seed(ob_sampler *s, uint64_t seed);
const ob_sampler_params *ob_sampler_get_params(const ob_sampler *s);

/* The distribution the next draw comes from, over ids [0, n): probs[n] sums to
 * 1 with zeros for filtered tokens (greedy: one-hot). `history` holds the
 * tokens so far (oldest first) for the repetition penalty; ids outside [0, n)
 * are ignored. */
ob_status ob_sampler_distribution(ob_sampler *s, const float *logits, int n, const int32_t *history,
                                  size_t n_history, double *probs) OB_NODISCARD;
/* Draws one token id in [0, n) (the stages above, then one uniform from the
 * sampler's stream; greedy draws nothing). */
ob_status ob_sampler_sample(ob_sampler *s, const float *logits, int n, const int32_t *history, size_t n_history,
                            int32_t *token) OB_NODISCARD;

#ifdef __cplusplus
}
#endif
#endif
