/* What a training step needs besides parameters and tokens: the quantisation
 * regime of this step and the schedule-dependent coefficients (docs/MODEL.md,
 * "Training schedule inputs"). Shared by every backend. */
#ifndef ONEBIT_BACKEND_H
#define ONEBIT_BACKEND_H

#include "onebit/dist.h"
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

/* One AdamW update (docs/MODEL.md "Optimizer"); step is k = t + 1. */
typedef struct ob_adamw {
    float lr;
    float beta1, beta2, eps;
    float weight_decay;
    int64_t step;
    float grad_scale; /* gradients are multiplied by this first (clipping) */
} ob_adamw;

typedef struct ob_backend ob_backend;

/* A training/evaluation engine for one model on one device. The backend owns the
 * parameters, gradients and AdamW moments (on its device); the host copies in
 * the ob_model are read and written only through upload/download. */
typedef struct ob_backend_ops {
    ob_status (*upload)(ob_backend *b, const float *params);
    ob_status (*download)(ob_backend *b, float *params);
    ob_status (*zero_grad)(ob_backend *b);
    /* Forward + backward of inputs/targets [B, T]; gradients += grad_scale·dloss/dθ. */
    ob_status (*train_batch)(ob_backend *b, const int32_t *inputs, const int32_t *targets, int B, int T,
                             const ob_step_info *step, float grad_scale, double *loss);
    /* Forward only: mean plain loss (step gives the regime; NULL = evaluation) and
     * optionally the logits [B, T, V] on the host. */
    ob_status (*eval_batch)(ob_backend *b, const int32_t *inputs, const int32_t *targets, int B, int T,
                            const ob_step_info *step, double *loss, float *logits);
    ob_status (*grad_norm)(ob_backend *b, double *norm);
    ob_status (*adamw)(ob_backend *b, const ob_adamw *opt);
    /* Gradients and optimizer moments to/from the host (checkpoints, tests). */
    ob_status (*get_grads)(ob_backend *b, float *grads);
    ob_status (*get_moments)(ob_backend *b, float *m, float *v);
    ob_status (*set_moments)(ob_backend *b, const float *m, const float *v);
    /* Data parallelism: finishes the gradient reduction that train_batch started
     * (when reduce_in_backward was set) and sums `values` (count <= 8) over all
     * processes. A no-op for a single process. */
    ob_status (*sync_step)(ob_backend *b, double *values, int count);
    void (*destroy)(ob_backend *b);
} ob_backend_ops;

struct ob_backend {
    const ob_backend_ops *ops;
    const ob_model *model;
    int max_batch, max_seq;
    char device[32];
    size_t device_bytes; /* memory the backend allocated on its device (reports) */
    int rank, world;     /* data-parallel position (0, 1 alone) */
    /* Set before the last micro-batch of a step: its backward pass sums the
     * gradients over all processes as each layer finishes. */
    bool reduce_in_backward;
    void *impl;
};

/* device: "cpu", "cuda" or "cuda:N". Batches up to max_batch x max_seq. */
ob_status ob_backend_create(const char *device, const ob_model *m, int max_batch, int max_seq,
                            ob_backend **out) OB_NODISCARD;
/* One of `dist->world` data-parallel processes (dist may be NULL: alone). */
ob_status ob_backend_create_dist(const char *device, const ob_model *m, int max_batch, int max_seq,
                                 const struct ob_dist *dist, ob_backend **out) OB_NODISCARD;
void ob_backend_free(ob_backend *b);
/* True when this build has the CUDA backend and a GPU is visible. */
bool ob_cuda_available(void);
/* Device memory in use (all allocations of this process and others) and in
 * total on GPU `device`; for memory reports. */
ob_status ob_cuda_memory(int device, size_t *used, size_t *total);

ob_status ob_cpu_backend_create(const ob_model *m, int max_batch, int max_seq, ob_backend **out) OB_NODISCARD;
ob_status ob_cuda_backend_create(int device, const ob_model *m, int max_batch, int max_seq,
                                 const struct ob_dist *dist, ob_backend **out) OB_NODISCARD;

#ifdef __cplusplus
}
#endif
#endif
