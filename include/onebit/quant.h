/* Every quantiser of onebit in one place (docs/MODEL.md, "Quantised linear"):
 * training, export, the packed runtime and the search all call these, so that a
 * ternary weight is the same ternary weight everywhere. */
#ifndef ONEBIT_QUANT_H
#define ONEBIT_QUANT_H

#include "onebit/config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_quant_stats {
    double beta;        /* max(mean|W_c|, 1e-8) */
    double mu;          /* mean(W_c) (binary) */
    double alpha;       /* dynamic-threshold scale (ternary) */
    int64_t mask_count; /* entries above the dynamic threshold */
} ob_quant_stats;

/* Largest code magnitude of a mode: 1 (ternary, binary), 7 (fourbit), 127 (eightbit). */
int ob_quant_mode_qmax(ob_quant_mode mode);

/* Hard weight quantiser of a quantised mode (not f16) over W [rows, cols]: the
 * integer codes (may be NULL) and one scale per row (per-matrix modes repeat
 * their scale; may be NULL), and/or the effective weight wq = code·scale (may be
 * NULL). */
void ob_quant_weight_hard(ob_quant_mode mode, bool dynamic_threshold, float clamp, const float *w, int rows, int cols,
                          int8_t *codes, float *row_scales, float *wq, ob_quant_stats *stats);

/* Soft (tanh) quantiser of binary/ternary with sharpness a, and its exact
 * backward: dw += grad_scale·dL/dW given g = dL/dWq. */
void ob_quant_weight_soft(ob_quant_mode mode, bool dynamic_threshold, float clamp, float sharpness, const float *w,
                          int rows, int cols, float *wq, ob_quant_stats *stats);
void ob_quant_weight_soft_backward(ob_quant_mode mode, bool dynamic_threshold, float clamp, float sharpness,
                                   const float *w, int rows, int cols, const ob_quant_stats *stats, const float *g,
                                   float *dw);

/* Per-row (per-token) absmax activation quantiser with `bits` (2..8): xq = x̃. */
void ob_quant_activations(const float *x, int n, int d, int bits, float *xq);
/* One row to integer codes; returns the scale s (x̃ = code / s). */
float ob_quant_activation_codes(const float *x, int d, int bits, int8_t *codes);

#ifdef __cplusplus
}
#endif
#endif
