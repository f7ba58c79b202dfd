/* The inside of an inference session (include/onebit/infer.h), shared by the
 * files of the forward pass: the KV cache, the scratch buffers of one chunk of
 * tokens (all sized once at creation), and the kernel table. */
#ifndef ONEBIT_INFER_SESSION_H
#define ONEBIT_INFER_SESSION_H

#include "infer/kernels.h"

/* Tokens run through the layers together; longer inputs go in chunks. */
#define OB_INFER_CHUNK 32

struct ob_infer {
    const ob_packed_model *pm;
    const ob_kernels *kern;
    int threads;
    int ctx, pos;
    int hd, kvd, kmax; /* head dim, key/value width, the largest padded input width */
    int32_t *tokens;   /* [ctx] the tokens in the cache */
    float *kcache, *vcache; /* [num_layers][ctx][kvd] */
    float *rope_cos, *rope_sin; /* [ctx][hd/2] */
    /* One chunk of activations. */
    float *x, *nrm, *q, *k, *v, *att, *tmp, *up, *gate, *hid;
    float *scores;   /* [threads][ctx] attention probabilities */
    float *wrow;     /* [threads][kmax] a dequantised row (activation_bits = 0) */
    int8_t *codes;   /* [chunk][kmax] int8 activations */
    int32_t *sums;   /* [chunk] */
    double *inv_scales; /* [chunk] 1/s */
    void *block;     /* the allocation every buffer above lives in */
    size_t kv_bytes;
    /* Test instrumentation: the smallest distance of any x·s to a rounding
     * boundary (half-integer) seen by the activation quantiser. */
    bool track_margin;
    float min_margin;
};

/* Quantises rows [n][K] of x into s->codes (padded with zeros to kp) with
 * `bits`, filling sums and scales. */
void ob_infer_quantise(ob_infer *s, const float *x, int n, int K, int kp, int bits);
/* y [n][w->rows] = x·Wᵀ for the activations last quantised (qgemm). */
void ob_infer_qmatmul(ob_infer *s, const ob_packed_tensor *w, int n, float *y);
/* y [n][w->rows] = x·Wᵀ with float activations: F32/F16 weights, or quantised
 * weights dequantised row by row (activation_bits = 0). */
void ob_infer_fmatmul(ob_infer *s, const ob_packed_tensor *w, const float *x, int n, float *y);
/* The linear layer of docs/MODEL.md for weights `w` with activation bits
 * `bits` (0: none): quantise (when both are quantised) and multiply. */
void ob_infer_linear(ob_infer *s, const ob_packed_tensor *w, int bits, const float *x, int n, float *y);

/* Causal attention of the chunk's queries q [n][H] at positions pos..pos+n-1
 * over the cache of layer l (which already holds their keys and values). */
void ob_infer_attention(ob_infer *s, int layer, int n, float *out);

/* Test instrumentation (see track_margin). */
void ob_infer_debug_track_margin(ob_infer *s, bool on);
float ob_infer_debug_min_margin(const ob_infer *s);

#endif
