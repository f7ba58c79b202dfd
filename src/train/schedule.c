/* Learning-rate, weight-decay and quantisation schedules (see schedule.h). */
#include <math.h>
#include <string.h>

#include "onebit/schedule.h"

static const char *const decay_names[] = {"cosine", "linear", "constant", "two-stage"};

bool ob_lr_decay_parse(const char *name, ob_lr_decay *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, decay_names[i]) == 0) {
            *out = (ob_lr_decay)i;
            return true;
        }
    }
    return false;
}

const char *ob_lr_decay_name(ob_lr_decay d) { return (unsigned)d < 4 ? decay_names[d] : "unknown"; }

void ob_schedule_from_config(ob_schedule *s, const ob_config *cfg) {
    s->anneal_fraction = cfg->anneal_fraction;
    s->has_arenas = cfg->has_arenas;
    s->arenas_initial = cfg->arenas_initial;
    s->arenas_anneal_steps = cfg->arenas_anneal_steps;
}

/* Stage 2 of the two-stage schedule restarts at this share of the peak. */
#define TWO_STAGE_DROP 0.4

double ob_schedule_lr(const ob_schedule *s, int64_t t) {
    if (t < s->warmup_steps)
        return s->lr * (double)(t + 1) / (double)s->warmup_steps;
    double span = (double)(s->max_steps - s->warmup_steps);
    double p = (double)(t - s->warmup_steps) / (span > 1 ? span : 1);
    if (p > 1)
        p = 1;
    switch (s->decay) {
    case OB_LR_COSINE: return s->lr_min + (s->lr - s->lr_min) * 0.5 * (1 + cos(M_PI * p));
    case OB_LR_LINEAR: return s->lr - (s->lr - s->lr_min) * p;
    case OB_LR_CONSTANT: return s->lr;
    case OB_LR_TWO_STAGE: {
        int64_t mid = s->max_steps / 2;
        if (t < mid) {
            double q = (double)(t - s->warmup_steps) / (double)(mid - s->warmup_steps > 1 ? mid - s->warmup_steps : 1);
            double low = s->lr * 0.5;
            return low + (s->lr - low) * 0.5 * (1 + cos(M_PI * q));
        }
        double q = (double)(t - mid) / (double)(s->max_steps - mid > 1 ? s->max_steps - mid : 1);
        double start = s->lr * TWO_STAGE_DROP;
        return start - (start - s->lr_min) * (q > 1 ? 1 : q);
    }
    }
    return s->lr;
}

double ob_schedule_weight_decay(const ob_schedule *s, int64_t t) {
    if (s->decay == OB_LR_TWO_STAGE && t >= s->max_steps / 2)
        return 0;
    return s->weight_decay;
}

ob_step_info ob_schedule_step(const ob_schedule *s, int64_t t) {
    ob_step_info info = {OB_REGIME_HARD, 8.0f, 0.0f, s->label_smoothing};
    int64_t soft_begin = 0, soft_end;
    if (s->quant_explicit) {
        soft_begin = s->quant_warmup_steps;
        soft_end = s->quant_warmup_steps + s->quant_anneal_steps;
        if (t < soft_begin)
            info.regime = OB_REGIME_FP;
    } else {
        soft_end = (int64_t)floor(s->anneal_fraction * (double)s->max_steps);
    }
    if (info.regime != OB_REGIME_FP && t < soft_end) {
        info.regime = OB_REGIME_SOFT;
        info.sharpness = (float)(1.0 + 7.0 * (double)(t - soft_begin) / (double)(soft_end - soft_begin));
    }
    if (s->has_arenas && s->arenas_anneal_steps > 0) {
        double c = s->arenas_initial * (1.0 - (double)t / (double)s->arenas_anneal_steps);
        info.arenas = c > 0 ? (float)c : 0.0f;
    }
    return info;
}
