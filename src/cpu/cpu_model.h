/* The CPU reference backend's model pass: forward, loss and backward of one
 * batch over a parameter buffer laid out by ob_model (docs/MODEL.md). Written
 * over `real` (cpu/real.h): float in the library, double in the gradient tests. */
#ifndef ONEBIT_CPU_MODEL_H
#define ONEBIT_CPU_MODEL_H

#include "cpu/real.h"
#include "onebit/backend.h"

typedef struct OB_R(ob_cpu_pass) OB_R(ob_cpu_pass);

/* Allocates activations for batches of up to B sequences of T tokens. */
ob_status OB_R(ob_cpu_pass_create)(const ob_model *m, int B, int T, OB_R(ob_cpu_pass) **out) OB_NODISCARD;
void OB_R(ob_cpu_pass_free)(OB_R(ob_cpu_pass) *pass);

/* Runs the model on inputs/targets [B, T]. *loss receives the mean loss with
 * label smoothing, *plain_loss (may be NULL) the mean plain cross-entropy, and
 * `logits` (may be NULL) the logits [B, T, V]. When `grads` is not NULL the
 * backward pass adds grad_scale·dloss/dθ to it. */
ob_status OB_R(ob_cpu_pass_run)(OB_R(ob_cpu_pass) *pass, const real *params, real *grads, const int32_t *inputs,
                                const int32_t *targets, int B, int T, const ob_step_info *step, real grad_scale,
                                double *loss, double *plain_loss, real *logits) OB_NODISCARD;

#endif
