/* Training schedules as pure functions of the optimizer step t: learning rate,
 * weight decay, quantisation regime and sharpness, Arenas coefficient
 * (docs/MODEL.md "Training schedule inputs", docs/TRAINING.md). */
#ifndef ONEBIT_SCHEDULE_H
#define ONEBIT_SCHEDULE_H

#include "onebit/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ob_lr_decay {
    OB_LR_COSINE = 0,
    OB_LR_LINEAR,
    OB_LR_CONSTANT,
    OB_LR_TWO_STAGE, /* BitNet b1.58: cosine to half-way, then a drop and a linear cool-down, decay off */
} ob_lr_decay;

typedef struct ob_schedule {
    double lr, lr_min;
    int64_t warmup_steps;
    int64_t max_steps;
    ob_lr_decay decay;
    double weight_decay;
    /* Quantisation: with quant_explicit, full precision for quant_warmup_steps,
     * soft for quant_anneal_steps, then hard; otherwise soft for the first
     * anneal_fraction of max_steps. */
    bool quant_explicit;
    int64_t quant_warmup_steps, quant_anneal_steps;
    double anneal_fraction;
    bool has_arenas;
    double arenas_initial;
    int64_t arenas_anneal_steps;
    float label_smoothing;
} ob_schedule;

/* Fills quantisation and Arenas fields from a config (anneal_fraction, arenas_*). */
void ob_schedule_from_config(ob_schedule *s, const ob_config *cfg);
bool ob_lr_decay_parse(const char *name, ob_lr_decay *out);
const char *ob_lr_decay_name(ob_lr_decay d);

double ob_schedule_lr(const ob_schedule *s, int64_t t);
double ob_schedule_weight_decay(const ob_schedule *s, int64_t t);
/* Regime, sharpness, Arenas coefficient and label smoothing of step t. */
ob_step_info ob_schedule_step(const ob_schedule *s, int64_t t);

#ifdef __cplusplus
}
#endif
#endif
