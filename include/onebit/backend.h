/* What a training step needs besides parameters and tokens: the quantisation
 * regime of this step and the schedule-dependent coefficients (docs/MODEL.md,
 * "Training schedule inputs"). Shared by every backend. */
#ifndef ONEBIT_BACKEND_H
#define ONEBIT_BACKEND_H

#include "onebit/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ob_regime {
    OB_REGIME_FP = 0, /* quantisation warm-up: every mode acts as f16 */
    OB_REGIME_SOFT,   /* tanh quantisers for binary/ternary */
    OB_REGIME_HARD,   /* the deployed quantisers, straight-through gradients */
} ob_regime;

typedef struct ob_step_info {
    ob_regime regime;
    float sharpness;       /* soft regime: a, rising 1 → 8 */
    float arenas;          /* Arenas coefficient c (0 = off) */
    float label_smoothing; /* ε; 0 for evaluation */
} ob_step_info;

/* Evaluation: hard quantisers, no Arenas, plain cross-entropy. */
static inline ob_step_info ob_step_info_eval(void) {
    ob_step_info s = {OB_REGIME_HARD, 8.0f, 0.0f, 0.0f};
    return s;
}

#ifdef __cplusplus
}
#endif
#endif
