/* Forward and backward of the whole model on the CPU (docs/MODEL.md), the
 * reference every other backend is tested against. Activations needed by the
 * backward pass are kept per layer in one allocation sized at creation; the
 * output head and the loss are computed in chunks of rows and back-propagated
 * on the spot, so the [B·T, V] logits never exist at once. */
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_model.h"
#include "cpu/kernels.h"
#include "quant/quant_real.h"

#define HEAD_CHUNK_ROWS 64

typedef struct {
    real *x;                    /* [N,H] residual stream entering the layer */
    real *n1, *mean1, *rstd1;   /* input norm */
    real *x1q;                  /* n1 after the activation quantiser */
    real *qpre, *kpre, *rq, *rk; /* before QK-norm, and its row rstd */
    real *q, *k, *v;            /* as used by attention (after QK-norm and RoPE) */
    real *att;                  /* [B,nh,T,T] */
    real *o, *oq;               /* attention output [N,H] and quantised */
    real *a;                    /* residual after attention */
    real *n2, *mean2, *rstd2, *x2q;
    real *u, *g, *h, *hq;       /* FFN [N,F] */
} layer_acts;

struct OB_R(ob_cpu_pass) {
    const ob_model *m;
    int B, T;
    real *block; /* every buffer below lives in this one allocation */
    layer_acts *layers;
    real *xf, *nf, *meanf, *rstdf, *nfq; /* final residual, final norm, quantised */
    real *wq;         /* effective (quantised) weights, parameter layout */
    real *wc;         /* clamped latent weights, parameter layout (Arenas) */
    ob_quant_stats *stats;
    real *scratch;    /* soft-regime weight gradients: largest quantisable matrix */
    real *att_scratch; /* attention backward: OB_CPU_ATTENTION_BLOCK x T */
    real *head_chunk; /* [HEAD_CHUNK_ROWS, V] */
    real *dres, *dtmp, *dn, *dq, *dk, *dv, *dqpre, *dkpre, *df1, *df2, *df3;
    real *rope_cos, *rope_sin;
    /* The step being run. */
    const ob_step_info *step;
    const real *params;
    real *grads;
};

typedef struct {
    real **slot;
    size_t count;
} buffer_request;

static size_t add_request(buffer_request *req, size_t n, real **slot, size_t count) {
    req[n].slot = slot;
    req[n].count = count;
    return n + 1;
}

ob_status OB_R(ob_cpu_pass_create)(const ob_model *m, int B, int T, OB_R(ob_cpu_pass) **out) {
    *out = NULL;
    const ob_config *c = &m->cfg;
    if (B < 1 || T < 1 || T > c->max_seq_len)
        return ob_error(OB_ERR_INVALID_ARG, "cpu backend: batch %d x %d does not fit max_seq_len %d", B, T,
                        c->max_seq_len);
    OB_R(ob_cpu_pass) *p = ob_calloc(1, sizeof *p);
    if (!p)
        return OB_ERR_NOMEM;
    p->m = m;
    p->B = B;
    p->T = T;
    int L = c->num_layers, H = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    int nh = c->num_heads, nkv = c->num_kv_heads, hd = ob_config_head_dim(c), kvd = nkv * hd;
    size_t N = (size_t)B * T;
    p->layers = ob_calloc((size_t)L, sizeof *p->layers);
    p->stats = ob_calloc((size_t)m->num_params, sizeof *p->stats);
    size_t nreq = 0, cap = (size_t)L * 32 + 64;
    buffer_request *req = ob_calloc(cap, sizeof *req);
    if (!p->layers || !p->stats || !req) {
        free(req);
        OB_R(ob_cpu_pass_free)(p);
        return OB_ERR_NOMEM;
    }
    for (int l = 0; l < L; l++) {
        layer_acts *a = &p->layers[l];
        real **nh_slots[] = {&a->x, &a->n1, &a->x1q, &a->qpre, &a->q, &a->o, &a->oq, &a->a, &a->n2, &a->x2q};
        for (size_t i = 0; i < sizeof nh_slots / sizeof *nh_slots; i++)
            nreq = add_request(req, nreq, nh_slots[i], N * H);
        real **kv_slots[] = {&a->kpre, &a->k, &a->v};
        for (size_t i = 0; i < 3; i++)
            nreq = add_request(req, nreq, kv_slots[i], N * kvd);
        real **row_slots[] = {&a->mean1, &a->rstd1, &a->mean2, &a->rstd2};
        for (size_t i = 0; i < 4; i++)
            nreq = add_request(req, nreq, row_slots[i], N);
        nreq = add_request(req, nreq, &a->rq, N * nh);
        nreq = add_request(req, nreq, &a->rk, N * nkv);
        nreq = add_request(req, nreq, &a->att, (size_t)B * nh * T * T);
        real **f_slots[] = {&a->u, &a->g, &a->h, &a->hq};
        for (size_t i = 0; i < 4; i++)
            nreq = add_request(req, nreq, f_slots[i], N * F);
    }
    real **nh_final[] = {&p->xf, &p->nf, &p->nfq, &p->dres, &p->dtmp, &p->dn, &p->dq, &p->dqpre};
    for (size_t i = 0; i < sizeof nh_final / sizeof *nh_final; i++)
        nreq = add_request(req, nreq, nh_final[i], N * H);
    nreq = add_request(req, nreq, &p->meanf, N);
    nreq = add_request(req, nreq, &p->rstdf, N);
    nreq = add_request(req, nreq, &p->dk, N * kvd);
    nreq = add_request(req, nreq, &p->dv, N * kvd);
    nreq = add_request(req, nreq, &p->dkpre, N * kvd);
    nreq = add_request(req, nreq, &p->df1, N * F);
    nreq = add_request(req, nreq, &p->df2, N * F);
    nreq = add_request(req, nreq, &p->df3, N * F);
    nreq = add_request(req, nreq, &p->head_chunk, (size_t)HEAD_CHUNK_ROWS * V);
    nreq = add_request(req, nreq, &p->wq, m->num_floats);
    nreq = add_request(req, nreq, &p->wc, m->num_floats);
    size_t largest = 0;
    for (int i = 0; i < m->num_params; i++)
        if (m->params[i].mode != OB_MODE_F16 && m->params[i].numel > largest)
            largest = m->params[i].numel;
    nreq = add_request(req, nreq, &p->scratch, largest ? largest : 1);
    nreq = add_request(req, nreq, &p->att_scratch, (size_t)OB_CPU_ATTENTION_BLOCK * T);
    nreq = add_request(req, nreq, &p->rope_cos, (size_t)T * (hd / 2 + 1));
    nreq = add_request(req, nreq, &p->rope_sin, (size_t)T * (hd / 2 + 1));
    size_t total = 0;
    for (size_t i = 0; i < nreq; i++)
        total += (req[i].count + 15) & ~(size_t)15;
    p->block = ob_aligned_alloc(total * sizeof(real));
    if (!p->block) {
        free(req);
        OB_R(ob_cpu_pass_free)(p);
        return ob_error(OB_ERR_NOMEM, "cpu backend: cannot allocate %.1f MB of activations for batch %d x %d",
                        (double)total * sizeof(real) / 1e6, B, T);
    }
    memset(p->block, 0, total * sizeof(real));
    size_t off = 0;
    for (size_t i = 0; i < nreq; i++) {
        *req[i].slot = p->block + off;
        off += (req[i].count + 15) & ~(size_t)15;
    }
    free(req);
    if (c->use_rope)
        OB_R(ob_cpu_rope_table)(p->rope_cos, p->rope_sin, T, hd, c->rope_theta);
    *out = p;
    return OB_OK;
}

void OB_R(ob_cpu_pass_free)(OB_R(ob_cpu_pass) *p) {
    if (!p)
        return;
    ob_aligned_free(p->block);
    free(p->layers);
    free(p->stats);
    free(p);
}

/* ---- quantised linear layers ---------------------------------------------- */

static bool quantised(const OB_R(ob_cpu_pass) *p, const ob_param *prm) {
    return prm->mode != OB_MODE_F16 && p->step->regime != OB_REGIME_FP;
}

static bool soft(const OB_R(ob_cpu_pass) *p, const ob_param *prm) {
    return quantised(p, prm) && p->step->regime == OB_REGIME_SOFT &&
           (prm->mode == OB_MODE_TERNARY || prm->mode == OB_MODE_BINARY);
}

static bool arenas(const OB_R(ob_cpu_pass) *p, const ob_param *prm) {
    return quantised(p, prm) && p->step->arenas > 0;
}

static const real *effective_weight(const OB_R(ob_cpu_pass) *p, const ob_param *prm) {
    return quantised(p, prm) ? p->wq + prm->offset : p->params + prm->offset;
}

/* Quantises every quantisable matrix once per pass. */
static void prepare_weights(OB_R(ob_cpu_pass) *p) {
    const ob_model *m = p->m;
    const ob_config *c = &m->cfg;
    real clamp = (real)c->latent_clamp_max;
    for (int i = 0; i < m->num_params; i++) {
        const ob_param *prm = &m->params[i];
        if (!quantised(p, prm))
            continue;
        const real *w = p->params + prm->offset;
        real *wq = p->wq + prm->offset;
        if (soft(p, prm))
            OB_R(ob_quant_weight_soft)(prm->mode, c->use_dynamic_threshold, clamp, (real)p->step->sharpness, w,
                                       prm->rows, prm->cols, wq, &p->stats[i]);
        else
            OB_R(ob_quant_weight_hard)(prm->mode, c->use_dynamic_threshold, clamp, w, prm->rows, prm->cols, NULL,
                                       NULL, wq, &p->stats[i]);
        if (arenas(p, prm)) {
            real *wc = p->wc + prm->offset;
#pragma omp parallel for simd schedule(static)
            for (size_t k = 0; k < prm->numel; k++)
                wc[k] = w[k] > clamp ? clamp : (w[k] < -clamp ? -clamp : w[k]);
        }
    }
}

/* x̃: the activation quantiser for a quantised layer, else x itself. */
static const real *quantise_input(const OB_R(ob_cpu_pass) *p, const ob_param *prm, const real *x, real *xq, int n,
                                  int d) {
    int bits = p->m->cfg.activation_bits;
    if (!quantised(p, prm) || bits == 0)
        return x;
    OB_R(ob_quant_activations)(x, n, d, bits, xq);
    return xq;
}

/* The input a layer's weight gradient uses: x̃ when the activation quantiser ran. */
static const real *used_input(const OB_R(ob_cpu_pass) *p, const ob_param *prm, const real *x, const real *xq) {
    return quantised(p, prm) && p->m->cfg.activation_bits ? xq : x;
}

static void linear_forward(const OB_R(ob_cpu_pass) *p, int idx, const real *x, const real *xq, int n, real *y) {
    const ob_param *prm = &p->m->params[idx];
    OB_R(ob_cpu_matmul_xwt)(y, xq, effective_weight(p, prm), n, prm->cols, prm->rows, 1, 0);
    if (arenas(p, prm))
        OB_R(ob_cpu_matmul_xwt)(y, x, p->wc + prm->offset, n, prm->cols, prm->rows, (real)p->step->arenas, 1);
}

/* dx (= when !accumulate, else +=) and the weight gradient of one linear. The
 * clamp mask of quantised weights is applied once at the end of the pass. */
static void linear_backward(OB_R(ob_cpu_pass) *p, int idx, const real *x, const real *xq, const real *dy, int n,
                            real *dx, bool accumulate) {
    const ob_param *prm = &p->m->params[idx];
    const ob_config *c = &p->m->cfg;
    real *dw = p->grads + prm->offset;
    int in = prm->cols, out = prm->rows;
    real arenas_c = (real)p->step->arenas;
    if (dx) {
        OB_R(ob_cpu_matmul_dyw)(dx, dy, effective_weight(p, prm), n, in, out, 1, accumulate ? 1 : 0);
        if (arenas(p, prm))
            OB_R(ob_cpu_matmul_dyw)(dx, dy, p->wc + prm->offset, n, in, out, arenas_c, 1);
    }
    if (!quantised(p, prm)) {
        OB_R(ob_cpu_matmul_dytx)(dw, dy, x, n, in, out, 1, 1);
        return;
    }
    if (soft(p, prm)) {
        OB_R(ob_cpu_matmul_dytx)(p->scratch, dy, xq, n, in, out, 1, 0);
        OB_R(ob_quant_weight_soft_backward)(prm->mode, c->use_dynamic_threshold, (real)c->latent_clamp_max,
                                            (real)p->step->sharpness, p->params + prm->offset, prm->rows, prm->cols,
                                            &p->stats[idx], p->scratch, dw);
    } else {
        OB_R(ob_cpu_matmul_dytx)(dw, dy, xq, n, in, out, (real)c->ste_scale_factor, 1);
    }
    if (arenas(p, prm))
        OB_R(ob_cpu_matmul_dytx)(dw, dy, x, n, in, out, arenas_c, 1);
}

static void mask_clamped_gradients(OB_R(ob_cpu_pass) *p) {
    const ob_model *m = p->m;
    real clamp = (real)m->cfg.latent_clamp_max;
    for (int i = 0; i < m->num_params; i++) {
        const ob_param *prm = &m->params[i];
        if (!quantised(p, prm))
            continue;
        const real *w = p->params + prm->offset;
        real *g = p->grads + prm->offset;
#pragma omp parallel for simd schedule(static)
        for (size_t k = 0; k < prm->numel; k++)
            g[k] = fabs(w[k]) > clamp ? 0 : g[k];
    }
}

/* ---- the pass ---------------------------------------------------------------- */

static void embed_forward(OB_R(ob_cpu_pass) *p, const int32_t *inputs, int B, int T, real *x) {
    const ob_model *m = p->m;
    int H = m->cfg.hidden_size;
    const real *e = effective_weight(p, &m->params[m->embed]);
    const real *pos = m->positions >= 0 ? p->params + m->params[m->positions].offset : NULL;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B * T; i++) {
        const real *row = e + (size_t)inputs[i] * H;
        real *xi = x + (size_t)i * H;
        for (int j = 0; j < H; j++)
            xi[j] = row[j] + (pos ? pos[(size_t)(i % T) * H + j] : 0);
    }
}

/* Gradient of the lookup: rows of dx added to the embedding (and positions). */
static void embed_backward(OB_R(ob_cpu_pass) *p, const int32_t *inputs, int B, int T, const real *dx) {
    const ob_model *m = p->m;
    const ob_config *c = &m->cfg;
    const ob_param *e = &m->params[m->embed];
    int H = c->hidden_size;
    bool is_soft = soft(p, e);
    real factor = quantised(p, e) && !is_soft ? (real)c->ste_scale_factor : 1;
    real *target = is_soft ? p->scratch : p->grads + e->offset;
    if (is_soft)
        memset(p->scratch, 0, e->numel * sizeof(real));
    for (int i = 0; i < B * T; i++) {
        real *row = target + (size_t)inputs[i] * H;
        for (int j = 0; j < H; j++)
            row[j] += factor * dx[(size_t)i * H + j];
    }
    if (is_soft)
        OB_R(ob_quant_weight_soft_backward)(e->mode, c->use_dynamic_threshold, (real)c->latent_clamp_max,
                                            (real)p->step->sharpness, p->params + e->offset, e->rows, e->cols,
                                            &p->stats[m->embed], p->scratch, p->grads + e->offset);
    if (m->positions >= 0) {
        real *dpos = p->grads + m->params[m->positions].offset;
        for (int i = 0; i < B * T; i++)
            for (int j = 0; j < H; j++)
                dpos[(size_t)(i % T) * H + j] += dx[(size_t)i * H + j];
    }
}

static void attention_block_forward(OB_R(ob_cpu_pass) *p, int l, int B, int T) {
    const ob_model *m = p->m;
    const ob_config *c = &m->cfg;
    const ob_layer_params *lp = &m->layers[l];
    layer_acts *a = &p->layers[l];
    int N = B * T, H = c->hidden_size, nh = c->num_heads, nkv = c->num_kv_heads, hd = ob_config_head_dim(c);
    bool ln = !c->use_subln;
    real eps = (real)c->layer_norm_eps;
    OB_R(ob_cpu_norm_forward)(a->n1, a->mean1, a->rstd1, a->x, p->params + m->params[lp->input_norm].offset, N, H,
                              eps, ln);
    const ob_param *wq = &m->params[lp->proj[OB_PROJ_Q]];
    const real *x1 = quantise_input(p, wq, a->n1, a->x1q, N, H);
    bool qk = c->use_qk_norm;
    linear_forward(p, lp->proj[OB_PROJ_Q], a->n1, x1, N, qk ? a->qpre : a->q);
    linear_forward(p, lp->proj[OB_PROJ_K], a->n1, x1, N, qk ? a->kpre : a->k);
    linear_forward(p, lp->proj[OB_PROJ_V], a->n1, x1, N, a->v);
    if (qk) {
        OB_R(ob_cpu_norm_forward)(a->q, NULL, a->rq, a->qpre, p->params + m->params[lp->q_norm].offset, N * nh, hd,
                                  eps, false);
        OB_R(ob_cpu_norm_forward)(a->k, NULL, a->rk, a->kpre, p->params + m->params[lp->k_norm].offset, N * nkv, hd,
                                  eps, false);
    }
    if (c->use_rope) {
        OB_R(ob_cpu_rope)(a->q, p->rope_cos, p->rope_sin, B, T, nh, hd, false);
        OB_R(ob_cpu_rope)(a->k, p->rope_cos, p->rope_sin, B, T, nkv, hd, false);
    }
    OB_R(ob_cpu_attention_forward)(a->o, a->att, a->q, a->k, a->v, B, T, nh, nkv, hd);
    const ob_param *wo = &m->params[lp->proj[OB_PROJ_O]];
    const real *oq = quantise_input(p, wo, a->o, a->oq, N, H);
    linear_forward(p, lp->proj[OB_PROJ_O], a->o, oq, N, p->dtmp);
    real r = c->use_residual_scaling ? (real)(1.0 / sqrt(2.0)) : 1;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < (size_t)N * H; i++)
        a->a[i] = a->x[i] + r * p->dtmp[i];
}

static void ffn_block_forward(OB_R(ob_cpu_pass) *p, int l, int B, int T, real *x_next) {
    const ob_model *m = p->m;
    const ob_config *c = &m->cfg;
    const ob_layer_params *lp = &m->layers[l];
    layer_acts *a = &p->layers[l];
    int N = B * T, H = c->hidden_size, F = c->intermediate_size;
    OB_R(ob_cpu_norm_forward)(a->n2, a->mean2, a->rstd2, a->a, p->params + m->params[lp->post_norm].offset, N, H,
                              (real)c->layer_norm_eps, !c->use_subln);
    const ob_param *wup = &m->params[lp->proj[OB_PROJ_UP]];
    const real *x2 = quantise_input(p, wup, a->n2, a->x2q, N, H);
    linear_forward(p, lp->proj[OB_PROJ_UP], a->n2, x2, N, a->u);
    ob_cpu_act act = c->use_swiglu ? OB_ACT_SWIGLU : (c->use_relu2 ? OB_ACT_RELU2 : OB_ACT_SILU);
    if (act == OB_ACT_SWIGLU)
        linear_forward(p, lp->proj[OB_PROJ_GATE], a->n2, x2, N, a->g);
    OB_R(ob_cpu_ffn_act_forward)(a->h, a->u, a->g, (size_t)N * F, act);
    const ob_param *wdown = &m->params[lp->proj[OB_PROJ_DOWN]];
    const real *hq = quantise_input(p, wdown, a->h, a->hq, N, F);
    linear_forward(p, lp->proj[OB_PROJ_DOWN], a->h, hq, N, p->dtmp);
    real r = c->use_residual_scaling ? (real)(1.0 / sqrt(2.0)) : 1;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < (size_t)N * H; i++)
        x_next[i] = a->a[i] + r * p->dtmp[i];
}

/* Head and loss in chunks of rows; with gradients, dL/dnf goes to p->dn and
 * the head's weight gradient is accumulated. */
static double head_and_loss(OB_R(ob_cpu_pass) *p, const int32_t *targets, int N, real grad_scale, double *plain,
                            real *logits_out) {
    const ob_model *m = p->m;
    const ob_config *c = &m->cfg;
    int H = c->hidden_size, V = c->vocab_size;
    int hidx = m->head;
    const ob_param *hp = &m->params[hidx];
    const real *xin = quantise_input(p, hp, p->nf, p->nfq, N, H);
    bool want_grad = p->grads != NULL;
    bool is_soft = soft(p, hp);
    double total = 0;
    for (int r0 = 0; r0 < N; r0 += HEAD_CHUNK_ROWS) {
        int rows = N - r0 < HEAD_CHUNK_ROWS ? N - r0 : HEAD_CHUNK_ROWS;
        const real *xr = xin + (size_t)r0 * H, *nr = p->nf + (size_t)r0 * H;
        linear_forward(p, hidx, nr, xr, rows, p->head_chunk);
        if (logits_out)
            memcpy(logits_out + (size_t)r0 * V, p->head_chunk, (size_t)rows * V * sizeof(real));
        total += OB_R(ob_cpu_cross_entropy)(p->head_chunk, targets + r0, rows, V, (real)p->step->label_smoothing,
                                            grad_scale / (real)N, want_grad, plain);
        if (!want_grad)
            continue;
        real *dn = p->dn + (size_t)r0 * H;
        if (is_soft) {
            /* The soft backward needs the whole dL/dWq: gather it first. */
            OB_R(ob_cpu_matmul_dyw)(dn, p->head_chunk, effective_weight(p, hp), rows, H, V, 1, 0);
            if (arenas(p, hp))
                OB_R(ob_cpu_matmul_dyw)(dn, p->head_chunk, p->wc + hp->offset, rows, H, V, (real)p->step->arenas, 1);
            OB_R(ob_cpu_matmul_dytx)(p->scratch, p->head_chunk, xr, rows, H, V, 1, r0 ? 1 : 0);
            if (arenas(p, hp))
                OB_R(ob_cpu_matmul_dytx)(p->grads + hp->offset, p->head_chunk, nr, rows, H, V,
                                         (real)p->step->arenas, 1);
        } else {
            linear_backward(p, hidx, nr, xr, p->head_chunk, rows, dn, false);
        }
    }
    if (want_grad && is_soft)
        OB_R(ob_quant_weight_soft_backward)(hp->mode, c->use_dynamic_threshold, (real)c->latent_clamp_max,
                                            (real)p->step->sharpness, p->params + hp->offset, hp->rows, hp->cols,
                                            &p->stats[hidx], p->scratch, p->grads + hp->offset);
    return total;
}

static void add_into(real *dst, const real *src, size_t n, real scale) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] += scale * src[i];
}

/* p->dres holds dL/dx_{l+1} on entry and dL/dx_l on return. */
static void layer_backward(OB_R(ob_cpu_pass) *p, int l, int B, int T) {
    const ob_model *m = p->m;
    const ob_config *c = &m->cfg;
    const ob_layer_params *lp = &m->layers[l];
    layer_acts *a = &p->layers[l];
    int N = B * T, H = c->hidden_size, F = c->intermediate_size;
    int nh = c->num_heads, nkv = c->num_kv_heads, hd = ob_config_head_dim(c);
    size_t NH = (size_t)N * H;
    real r = c->use_residual_scaling ? (real)(1.0 / sqrt(2.0)) : 1;
    bool ln = !c->use_subln;
    /* FFN: x' = a + r·down(act(up(n2), gate(n2))). */
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < NH; i++)
        p->dtmp[i] = r * p->dres[i];
    const ob_param *wdown = &m->params[lp->proj[OB_PROJ_DOWN]];
    linear_backward(p, lp->proj[OB_PROJ_DOWN], a->h, used_input(p, wdown, a->h, a->hq), p->dtmp, N, p->df1, false);
    ob_cpu_act act = c->use_swiglu ? OB_ACT_SWIGLU : (c->use_relu2 ? OB_ACT_RELU2 : OB_ACT_SILU);
    OB_R(ob_cpu_ffn_act_backward)(p->df2, p->df3, p->df1, a->u, a->g, (size_t)N * F, act);
    const ob_param *wup = &m->params[lp->proj[OB_PROJ_UP]];
    const real *x2 = used_input(p, wup, a->n2, a->x2q);
    linear_backward(p, lp->proj[OB_PROJ_UP], a->n2, x2, p->df2, N, p->dn, false);
    if (act == OB_ACT_SWIGLU)
        linear_backward(p, lp->proj[OB_PROJ_GATE], a->n2, x2, p->df3, N, p->dn, true);
    OB_R(ob_cpu_norm_backward)(p->dtmp, p->grads + m->params[lp->post_norm].offset, p->dn, a->a,
                               p->params + m->params[lp->post_norm].offset, a->mean2, a->rstd2, N, H, ln);
    add_into(p->dres, p->dtmp, NH, 1); /* dres = dL/da */
    /* Attention: a = x + r·o_proj(attn(q, k, v)). */
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < NH; i++)
        p->dtmp[i] = r * p->dres[i];
    const ob_param *wo = &m->params[lp->proj[OB_PROJ_O]];
    linear_backward(p, lp->proj[OB_PROJ_O], a->o, used_input(p, wo, a->o, a->oq), p->dtmp, N, p->dn, false);
    OB_R(ob_cpu_attention_backward)(p->dq, p->dk, p->dv, p->att_scratch, p->dn, a->att, a->q, a->k, a->v, B, T, nh,
                                    nkv, hd);
    if (c->use_rope) {
        OB_R(ob_cpu_rope)(p->dq, p->rope_cos, p->rope_sin, B, T, nh, hd, true);
        OB_R(ob_cpu_rope)(p->dk, p->rope_cos, p->rope_sin, B, T, nkv, hd, true);
    }
    real *dq = p->dq, *dk = p->dk;
    if (c->use_qk_norm) {
        OB_R(ob_cpu_norm_backward)(p->dqpre, p->grads + m->params[lp->q_norm].offset, p->dq, a->qpre,
                                   p->params + m->params[lp->q_norm].offset, NULL, a->rq, N * nh, hd, false);
        OB_R(ob_cpu_norm_backward)(p->dkpre, p->grads + m->params[lp->k_norm].offset, p->dk, a->kpre,
                                   p->params + m->params[lp->k_norm].offset, NULL, a->rk, N * nkv, hd, false);
        dq = p->dqpre;
        dk = p->dkpre;
    }
    const ob_param *wq = &m->params[lp->proj[OB_PROJ_Q]];
    const real *x1 = used_input(p, wq, a->n1, a->x1q);
    linear_backward(p, lp->proj[OB_PROJ_Q], a->n1, x1, dq, N, p->dn, false);
    linear_backward(p, lp->proj[OB_PROJ_K], a->n1, x1, dk, N, p->dn, true);
    linear_backward(p, lp->proj[OB_PROJ_V], a->n1, x1, p->dv, N, p->dn, true);
    OB_R(ob_cpu_norm_backward)(p->dtmp, p->grads + m->params[lp->input_norm].offset, p->dn, a->x,
                               p->params + m->params[lp->input_norm].offset, a->mean1, a->rstd1, N, H, ln);
    add_into(p->dres, p->dtmp, NH, 1); /* dres = dL/dx_l */
}

ob_status OB_R(ob_cpu_pass_run)(OB_R(ob_cpu_pass) *p, const real *params, real *grads, const int32_t *inputs,
                                const int32_t *targets, int B, int T, const ob_step_info *step, real grad_scale,
                                double *loss, double *plain_loss, real *logits) {
    const ob_model *m = p->m;
    const ob_config *c = &m->cfg;
    if (B < 1 || T < 1 || B * T > p->B * p->T || T > p->T)
        return ob_error(OB_ERR_INVALID_ARG, "cpu backend: batch %d x %d exceeds the allocated %d x %d", B, T, p->B,
                        p->T);
    for (int i = 0; i < B * T; i++) {
        if (inputs[i] < 0 || inputs[i] >= c->vocab_size || targets[i] < 0 || targets[i] >= c->vocab_size)
            return ob_error(OB_ERR_INVALID_ARG, "cpu backend: token id %d at position %d is outside the vocabulary (%d)",
                            inputs[i] < 0 || inputs[i] >= c->vocab_size ? inputs[i] : targets[i], i, c->vocab_size);
    }
    p->step = step;
    p->params = params;
    p->grads = grads;
    int N = B * T, L = c->num_layers, H = c->hidden_size;
    prepare_weights(p);
    embed_forward(p, inputs, B, T, p->layers[0].x);
    for (int l = 0; l < L; l++) {
        attention_block_forward(p, l, B, T);
        ffn_block_forward(p, l, B, T, l + 1 < L ? p->layers[l + 1].x : p->xf);
    }
    OB_R(ob_cpu_norm_forward)(p->nf, p->meanf, p->rstdf, p->xf, params + m->params[m->final_norm].offset, N, H,
                              (real)c->layer_norm_eps, !c->use_subln);
    double plain = 0;
    double total = head_and_loss(p, targets, N, grad_scale, &plain, logits);
    *loss = total / N;
    if (plain_loss)
        *plain_loss = plain / N;
    if (!grads)
        return OB_OK;
    OB_R(ob_cpu_norm_backward)(p->dres, grads + m->params[m->final_norm].offset, p->dn, p->xf,
                               params + m->params[m->final_norm].offset, p->meanf, p->rstdf, N, H, !c->use_subln);
    for (int l = L - 1; l >= 0; l--)
        layer_backward(p, l, B, T);
    embed_backward(p, inputs, B, T, p->dres);
    mask_clamped_gradients(p);
    return OB_OK;
}
