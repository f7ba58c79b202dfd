/* The CPU backend: parameters, gradients and AdamW moments in host buffers with
 * the model's layout, the model pass of cpu_model.c, and the optimizer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_model.h"
#include "onebit/backend.h"

typedef struct {
    ob_cpu_pass *pass;
    float *params, *grads, *m, *v;
} cpu_state;

static cpu_state *state_of(ob_backend *b) { return b->impl; }

static size_t bytes_of(const ob_backend *b) { return b->model->num_floats * sizeof(float); }

static ob_status cpu_upload(ob_backend *b, const float *params) {
    memcpy(state_of(b)->params, params, bytes_of(b));
    return OB_OK;
}

static ob_status cpu_download(ob_backend *b, float *params) {
    memcpy(params, state_of(b)->params, bytes_of(b));
    return OB_OK;
}

static ob_status cpu_zero_grad(ob_backend *b) {
    memset(state_of(b)->grads, 0, bytes_of(b));
    return OB_OK;
}

static ob_status cpu_train_batch(ob_backend *b, const int32_t *inputs, const int32_t *targets, int B, int T,
                                 const ob_step_info *step, float grad_scale, double *loss) {
    cpu_state *s = state_of(b);
    return ob_cpu_pass_run(s->pass, s->params, s->grads, inputs, targets, B, T, step, grad_scale, loss, NULL, NULL);
}

static ob_status cpu_eval_batch(ob_backend *b, const int32_t *inputs, const int32_t *targets, int B, int T,
                                const ob_step_info *step, double *loss, float *logits) {
    cpu_state *s = state_of(b);
    ob_step_info eval = ob_step_info_eval();
    double smoothed;
    return ob_cpu_pass_run(s->pass, s->params, NULL, inputs, targets, B, T, step ? step : &eval, 1, &smoothed, loss,
                           logits);
}

static ob_status cpu_grad_norm(ob_backend *b, double *norm) {
    const float *g = state_of(b)->grads;
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (size_t i = 0; i < b->model->num_floats; i++)
        sum += (double)g[i] * g[i];
    *norm = sqrt(sum);
    return OB_OK;
}

/* PyTorch's AdamW order: decoupled decay, moments, bias-corrected step; then
 * the latent clamp on quantised projections. */
static ob_status cpu_adamw(ob_backend *b, const ob_adamw *o) {
    cpu_state *s = state_of(b);
    const ob_model *m = b->model;
    float bc1 = 1.0f - powf(o->beta1, (float)o->step);
    float bc2_sqrt = sqrtf(1.0f - powf(o->beta2, (float)o->step));
    float step_size = o->lr / bc1;
    float clamp = (float)m->cfg.latent_clamp_max;
    /* Copies in locals: read through `o` inside the loop, they might alias the
     * arrays, and the loop would not vectorise. */
    float beta1 = o->beta1, beta2 = o->beta2, eps = o->eps, grad_scale = o->grad_scale;
    for (int i = 0; i < m->num_params; i++) {
        const ob_param *p = &m->params[i];
        float *w = s->params + p->offset, *g = s->grads + p->offset;
        float *mo = s->m + p->offset, *v = s->v + p->offset;
        float decay = p->decay ? 1.0f - o->lr * o->weight_decay : 1.0f;
        bool clamped = p->clamp;
#pragma omp parallel for simd schedule(static)
        for (size_t k = 0; k < p->numel; k++) {
            float gk = g[k] * grad_scale;
            float wk = w[k] * decay;
            mo[k] = beta1 * mo[k] + (1.0f - beta1) * gk;
            v[k] = beta2 * v[k] + (1.0f - beta2) * gk * gk;
            wk -= step_size * mo[k] / (sqrtf(v[k]) / bc2_sqrt + eps);
            if (clamped)
                wk = wk > clamp ? clamp : (wk < -clamp ? -clamp : wk);
            w[k] = wk;
        }
    }
    return OB_OK;
}

static ob_status cpu_get_grads(ob_backend *b, float *grads) {
    memcpy(grads, state_of(b)->grads, bytes_of(b));
    return OB_OK;
}

static ob_status cpu_get_moments(ob_backend *b, float *m, float *v) {
    memcpy(m, state_of(b)->m, bytes_of(b));
    memcpy(v, state_of(b)->v, bytes_of(b));
    return OB_OK;
}

static ob_status cpu_set_moments(ob_backend *b, const float *m, const float *v) {
    memcpy(state_of(b)->m, m, bytes_of(b));
    memcpy(state_of(b)->v, v, bytes_of(b));
    return OB_OK;
}

static ob_status cpu_sync_step(ob_backend *b, double *values, int count) {
    (void)b, (void)values, (void)count;
    return OB_OK;
}

static void cpu_destroy(ob_backend *b) {
    cpu_state *s = state_of(b);
    if (s) {
        ob_cpu_pass_free(s->pass);
        ob_aligned_free(s->params);
        ob_aligned_free(s->grads);
        ob_aligned_free(s->m);
        ob_aligned_free(s->v);
        free(s);
    }
    free(b);
}

static const ob_backend_ops cpu_ops = {
    cpu_upload,      cpu_download,    cpu_zero_grad, cpu_train_batch, cpu_eval_batch, cpu_grad_norm, cpu_adamw,
    cpu_get_grads,   cpu_get_moments, cpu_set_moments, cpu_sync_step, cpu_destroy,
};

ob_status ob_cpu_backend_create(const ob_model *m, int max_batch, int max_seq, ob_backend **out) {
    *out = NULL;
    ob_backend *b = ob_calloc(1, sizeof *b);
    cpu_state *s = ob_calloc(1, sizeof *s);
    if (!b || !s) {
        free(b);
        free(s);
        return OB_ERR_NOMEM;
    }
    b->ops = &cpu_ops;
    b->model = m;
    b->max_batch = max_batch;
    b->max_seq = max_seq;
    snprintf(b->device, sizeof b->device, "cpu");
    b->world = 1;
    b->impl = s;
    size_t bytes = m->num_floats * sizeof(float);
    s->params = ob_aligned_alloc(bytes);
    s->grads = ob_aligned_alloc(bytes);
    s->m = ob_aligned_alloc(bytes);
    s->v = ob_aligned_alloc(bytes);
    ob_status st = OB_OK;
    if (!s->params || !s->grads || !s->m || !s->v)
        st = ob_error(OB_ERR_NOMEM, "cpu backend: cannot allocate 4 x %.1f MB for parameters, gradients and moments",
                      (double)bytes / 1e6);
    if (st == OB_OK)
        st = ob_cpu_pass_create(m, max_batch, max_seq, &s->pass);
    if (st) {
        cpu_destroy(b);
        return st;
    }
    memcpy(s->params, m->weights, bytes);
    memset(s->grads, 0, bytes);
    memset(s->m, 0, bytes);
    memset(s->v, 0, bytes);
    *out = b;
    return OB_OK;
}
