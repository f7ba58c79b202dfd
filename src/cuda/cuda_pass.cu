/* Forward and backward of the model on one GPU (docs/MODEL.md), step for step
 * the CPU reference of src/cpu/cpu_model.c: bf16 matrix products with fp32
 * accumulation, an fp32 residual stream and fp32 gradients. The products of a
 * block's output (o and down projections) write a bf16 branch, which the next
 * norm adds into the residual stream as it reads it (as under PyTorch's
 * autocast): cuBLASLt's fp32 epilogue that read and wrote the stream ran the
 * o-projection at 40% of its bf16 speed. */
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_state.cuh"

typedef struct {
    gpu_state *st;
    const ob_step_info *step;
    int N;
} pass;

#define MARK(label) ob_gpu_profile_mark(&p->st->prof, p->st->stream, label)

static const ob_param *param(const pass *p, int idx) { return &p->st->m->params[idx]; }

static bool quantised(const pass *p, const ob_param *prm) {
    return prm->mode != OB_MODE_F16 && p->step->regime != OB_REGIME_FP;
}

static bool soft(const pass *p, const ob_param *prm) {
    return quantised(p, prm) && p->step->regime == OB_REGIME_SOFT &&
           (prm->mode == OB_MODE_TERNARY || prm->mode == OB_MODE_BINARY);
}

static bool arenas(const pass *p, const ob_param *prm) { return quantised(p, prm) && p->step->arenas > 0; }

static int act_bits(const pass *p, const ob_param *prm) {
    return quantised(p, prm) ? p->st->m->cfg.activation_bits : 0;
}

static const float *scale_of(const pass *p, int idx, bool residual) {
    ob_gpu_qstats *s = &p->st->stats[p->st->matrix_of[idx]];
    return residual ? &s->scale_r : &s->scale;
}

static float residual_factor(const ob_config *c) { return c->use_residual_scaling ? 0.70710678118654752f : 1.0f; }

/* y (bf16, rows y_ld apart, 0: dense) = the product of a linear, or of `out`
 * rows of linears stored one after another (fused_rows): alpha is the matrix's
 * scale (times the residual factor for a branch into the residual stream);
 * Arenas adds c·x·W_cᵀ. */
static ob_status linear_forward(const pass *p, int idx, int out, const bf16 *x, const bf16 *xq, int n, bf16 *y,
                                int y_ld, bool residual) {
    gpu_state *st = p->st;
    const ob_param *prm = param(p, idx);
    ob_gemm_args a = ob_gemm_xwt(y, CUDA_R_16BF, xq, st->w_eff + prm->offset, n, prm->cols, out);
    a.ldd = y_ld;
    a.alpha_device = scale_of(p, idx, residual);
    OB_STATUS_TRY(ob_gemm_run(st->gemm, &a));
    if (arenas(p, prm)) {
        ob_gemm_args b = ob_gemm_xwt(y, CUDA_R_16BF, x, st->wc + prm->offset, n, prm->cols, out);
        b.ldd = y_ld;
        b.alpha = p->step->arenas * (residual ? residual_factor(&st->m->cfg) : 1.0f);
        b.beta = 1.0f;
        OB_STATUS_TRY(ob_gemm_run(st->gemm, &b));
    }
    return OB_OK;
}

/* dx (bf16, = or +=) of one linear, or of `out` rows of fused linears, through
 * `gemm` (the main or the weight gradients' stream); dy's rows have stride
 * dy_ld (0: dense). */
static ob_status input_grad(const pass *p, ob_gemm *gemm, int idx, int out, const bf16 *dy, int dy_ld, int n,
                            bf16 *dx, bool accumulate) {
    gpu_state *st = p->st;
    const ob_param *prm = param(p, idx);
    int in = prm->cols;
    ob_gemm_args a = ob_gemm_dyw(dx, CUDA_R_16BF, dy, st->w_eff + prm->offset, n, in, out);
    a.lda = dy_ld;
    a.alpha_device = scale_of(p, idx, false);
    a.beta = accumulate ? 1.0f : 0.0f;
    OB_STATUS_TRY(ob_gemm_run(gemm, &a));
    if (arenas(p, prm)) {
        ob_gemm_args b = ob_gemm_dyw(dx, CUDA_R_16BF, dy, st->wc + prm->offset, n, in, out);
        b.lda = dy_ld;
        b.alpha = p->step->arenas;
        b.beta = 1.0f;
        OB_STATUS_TRY(ob_gemm_run(gemm, &b));
    }
    return OB_OK;
}

/* The weight gradients' stream (cuda_state.cuh) starts on what the main
 * stream has queued so far: called before a layer's input-gradient product,
 * so that its weight gradient may run beside it. */
static ob_status wg_begin(const pass *p) {
    gpu_state *st = p->st;
    if (st->wg_stream == st->stream)
        return OB_OK;
    OB_CUDA_TRY(cudaEventRecord(st->wg_ready, st->stream));
    OB_CUDA_TRY(cudaStreamWaitEvent(st->wg_stream, st->wg_ready, 0));
    return OB_OK;
}

/* Marks the weight gradients queued so far (NULL when they share the main
 * stream). */
static ob_status wg_mark(const pass *p, cudaEvent_t *e) {
    gpu_state *st = p->st;
    *e = NULL;
    if (st->wg_stream == st->stream)
        return OB_OK;
    *e = st->wg_done[st->wg_next++ % WG_EVENTS];
    OB_CUDA_TRY(cudaEventRecord(*e, st->wg_stream));
    return OB_OK;
}

/* The main stream waits for the weight gradients up to a mark: before it
 * overwrites a buffer they read, or uses the gradients. */
static ob_status wg_wait(const pass *p, cudaEvent_t e) {
    if (e)
        OB_CUDA_TRY(cudaStreamWaitEvent(p->st->stream, e, 0));
    return OB_OK;
}

/* The main stream waits for every weight gradient queued so far. */
static ob_status wg_wait_all(const pass *p) {
    cudaEvent_t e;
    OB_STATUS_TRY(wg_mark(p, &e));
    return wg_wait(p, e);
}

/* A free slot of the gain-gradient partial sums (cuda_state.cuh): the main
 * stream first waits until what the slot held in this pass has been summed
 * (a pass ends with its sums done, and a recorded graph cannot wait for an
 * event of the pass before). */
static ob_status partials_take(const pass *p, int *slot) {
    gpu_state *st = p->st;
    *slot = st->partials_next++ % PARTIAL_SLOTS;
    if (st->partials_summing >> *slot & 1)
        OB_CUDA_TRY(cudaStreamWaitEvent(st->stream, st->partials_free[*slot], 0));
    return OB_OK;
}

static float *partials_of(const pass *p, int slot) { return p->st->partials + (size_t)slot * p->st->partial_floats; }

/* dg += the slot's partial sums, on the weight gradients' stream: a few
 * microseconds each, four times a layer, off the main stream's path. */
static ob_status gain_sum(const pass *p, float *dg, int slot, size_t floats, int d) {
    gpu_state *st = p->st;
    OB_STATUS_TRY(wg_begin(p));
    OB_STATUS_TRY(ob_gpu_gain_sum(dg, partials_of(p, slot), floats, d, st->wg_stream));
    if (st->wg_stream != st->stream) {
        OB_CUDA_TRY(cudaEventRecord(st->partials_free[slot], st->wg_stream));
        st->partials_summing |= 1u << slot;
    }
    return OB_OK;
}

/* Backward of a norm over H-wide rows, its gain gradient summed by gain_sum. */
static ob_status norm_backward(const pass *p, float *dx, bool accumulate, bf16 *dx16, float scale16, int gain,
                               const bf16 *dy, const float *x, const float *mean, const float *rstd, bool layernorm) {
    gpu_state *st = p->st;
    int slot, H = st->m->cfg.hidden_size;
    OB_STATUS_TRY(partials_take(p, &slot));
    OB_STATUS_TRY(ob_gpu_norm_backward(dx, accumulate, dx16, scale16, NULL, partials_of(p, slot), dy, x,
                                       st->params + param(p, gain)->offset, mean, rstd, p->N, H, layernorm,
                                       st->stream));
    return gain_sum(p, st->grads + param(p, gain)->offset, slot, ob_gpu_norm_partials(p->N, H), H);
}

/* Makes a weight-gradient product a strided batch over `batch` matrices stored
 * one after another like prm, their dy dy_stride elements apart. */
static void batch_of(ob_gemm_args *g, int batch, long long dy_stride, const ob_param *prm) {
    if (batch < 2)
        return;
    g->batch = batch;
    g->stride_a = dy_stride;
    g->stride_d = (long long)prm->numel;
}

/* The weight gradient (+=) of one linear, of `out` rows of fused linears, or
 * of `batch` fused linears of `out` rows each whose dy lie dy_stride elements
 * apart (the last two not soft). The clamp mask of quantised weights is
 * applied once at the end of the pass. */
static ob_status weight_grad(const pass *p, int idx, int out, const bf16 *x, const bf16 *xq, const bf16 *dy,
                             int dy_ld, int n, int batch, long long dy_stride) {
    gpu_state *st = p->st;
    const ob_param *prm = param(p, idx);
    const ob_config *c = &st->m->cfg;
    int in = prm->cols;
    float *dw = st->grads + prm->offset;
    ob_gemm_args g = ob_gemm_dytx(dw, CUDA_R_32F, dy, act_bits(p, prm) ? xq : x, n, in, out);
    g.lda = dy_ld;
    g.beta = 1.0f;
    batch_of(&g, batch, dy_stride, prm);
    /* On the weight gradients' stream, but for the soft regime's, whose
     * backward works in the main stream's scratch. */
    ob_gemm *gemm = soft(p, prm) ? st->gemm : st->wg_gemm;
    if (soft(p, prm)) {
        g.d = st->scratch;
        g.beta = 0.0f;
        OB_STATUS_TRY(ob_gemm_run(gemm, &g));
        OB_STATUS_TRY(ob_gpu_soft_backward(st->wq, st->matrix_of[idx], st->params, st->scratch, st->grads, st->stats,
                                           c->use_dynamic_threshold, (float)c->latent_clamp_max,
                                           p->step->sharpness, st->stream));
    } else {
        if (quantised(p, prm))
            g.alpha = (float)c->ste_scale_factor;
        OB_STATUS_TRY(ob_gemm_run(gemm, &g));
    }
    if (arenas(p, prm)) {
        ob_gemm_args b = ob_gemm_dytx(dw, CUDA_R_32F, dy, x, n, in, out);
        b.lda = dy_ld;
        b.alpha = p->step->arenas;
        b.beta = 1.0f;
        batch_of(&b, batch, dy_stride, prm);
        OB_STATUS_TRY(ob_gemm_run(gemm, &b));
    }
    return OB_OK;
}

/* dx (bf16, = or +=) and the weight gradient of one linear. With `rebuild`
 * (xq's buffer), xq is first made again from x by the activation quantiser
 * (the forward pass keeps no copy), on the stream of the weight gradient, its
 * only reader. */
static ob_status linear_backward(const pass *p, int idx, const bf16 *x, const bf16 *xq, bf16 *rebuild,
                                 const bf16 *dy, int dy_ld, int n, bf16 *dx, bool accumulate) {
    const ob_param *prm = param(p, idx);
    int out = prm->rows;
    OB_STATUS_TRY(wg_begin(p));
    if (rebuild)
        OB_STATUS_TRY(ob_gpu_act_quant(rebuild, x, n, prm->cols, act_bits(p, prm),
                                       soft(p, prm) ? p->st->stream : p->st->wg_stream));
    if (dx)
        OB_STATUS_TRY(input_grad(p, p->st->gemm, idx, out, dy, dy_ld, n, dx, accumulate));
    return weight_grad(p, idx, out, x, xq, dy, dy_ld, n, 1, 0);
}

/* The rows of linears idx[0..count) as one matrix, or 0 where they cannot run
 * as one product: they must lie one after another with the same input width
 * and the same treatment (quantised or not: the same input, the same Arenas
 * term). Their scales are folded into the effective weights (the backend
 * marks Q, K, V, gate and up so), which leaves every product alpha 1. */
static int fused_rows(const pass *p, const int *idx, int count) {
    const ob_param *first = param(p, idx[0]);
    size_t next = first->offset;
    int rows = 0;
    for (int i = 0; i < count; i++) {
        const ob_param *prm = param(p, idx[i]);
        if (prm->offset != next || prm->cols != first->cols || quantised(p, prm) != quantised(p, first))
            return 0;
        next += prm->numel;
        rows += prm->rows;
    }
    return rows;
}

/* The products of linears idx[0..count) that share their input, written to
 * the parts out[i] of rows y_ld apart: one product where they fuse. */
static ob_status linears_forward(const pass *p, const int *idx, int count, const bf16 *x, const bf16 *xq, int n,
                                 bf16 *const *out, int y_ld) {
    int fused = fused_rows(p, idx, count);
    if (fused)
        return linear_forward(p, idx[0], fused, x, xq, n, out[0], y_ld, false);
    for (int i = 0; i < count; i++)
        OB_STATUS_TRY(linear_forward(p, idx[i], param(p, idx[i])->rows, x, xq, n, out[i], y_ld, false));
    return OB_OK;
}

/* dx (=) and the weight gradients of the linears of linears_forward, their dy
 * the parts dy[i] of rows dy_ld apart: one product each where they fuse (the
 * weight gradient per matrix in the soft regime, whose backward works per
 * matrix). */
static ob_status linears_backward(const pass *p, const int *idx, int count, const bf16 *x, const bf16 *xq, int n,
                                  const bf16 *const *dy, int dy_ld, bf16 *dx) {
    int fused = fused_rows(p, idx, count);
    OB_STATUS_TRY(wg_begin(p));
    if (fused)
        OB_STATUS_TRY(input_grad(p, p->st->gemm, idx[0], fused, dy[0], dy_ld, n, dx, false));
    else
        for (int i = 0; i < count; i++)
            OB_STATUS_TRY(input_grad(p, p->st->gemm, idx[i], param(p, idx[i])->rows, dy[i], dy_ld, n, dx, i > 0));
    if (fused && !soft(p, param(p, idx[0]))) {
        /* Matrices of one shape as a strided batch: cuBLASLt runs Q, K and V's
         * 768 x 768 x 16384 weight gradients so at about 650 TFLOP/s, as one
         * 2304 x 768 x 16384 product at 555 (one H100). */
        int rows = param(p, idx[0])->rows;
        if (count > 1 && rows * count == fused)
            return weight_grad(p, idx[0], rows, x, xq, dy[0], dy_ld, n, count, dy[1] - dy[0]);
        return weight_grad(p, idx[0], fused, x, xq, dy[0], dy_ld, n, 1, 0);
    }
    for (int i = 0; i < count; i++)
        OB_STATUS_TRY(weight_grad(p, idx[i], param(p, idx[i])->rows, x, xq, dy[i], dy_ld, n, 1, 0));
    return OB_OK;
}

/* Norm of the fp32 rows x into y (unquantised, kept when Arenas needs it) and
 * yq; with a branch, of x + branch, stored to x_sum first. */
static ob_status norm_quant(const pass *p, int norm_idx, int first_linear, float *x_sum, const float *x,
                            const bf16 *branch, bf16 *y, bf16 *yq, float *mean, float *rstd) {
    gpu_state *st = p->st;
    const ob_config *c = &st->m->cfg;
    const ob_param *lin = param(p, first_linear);
    int bits = act_bits(p, lin);
    bf16 *plain = arenas(p, lin) || bits == 0 ? y : yq;
    return ob_gpu_norm_forward(plain, bits ? yq : plain, mean, rstd, x_sum, x, branch,
                               st->params + param(p, norm_idx)->offset, p->N, c->hidden_size,
                               (float)c->layer_norm_eps, !c->use_subln, bits, st->stream);
}

/* The input a layer's products use: quantised, or plain when no quantiser ran. */
static const bf16 *input_of(const pass *p, int lin, const bf16 *plain, const bf16 *q) {
    return act_bits(p, param(p, lin)) ? q : plain;
}

/* Whether a layer keeps the quantised FFN activation in place of h: the down
 * projection's products read only that (h itself only under Arenas), and the
 * backward pass then need not rebuild it. */
static bool keeps_hq(const pass *p, int down) {
    return act_bits(p, param(p, down)) && !arenas(p, param(p, down));
}

/* Layer l's input x_l is layer l−1's a plus its FFN branch (st->branch), made
 * by the input norm; on return st->branch holds this layer's FFN branch. */
static ob_status layer_forward(const pass *p, int l, int B, int T) {
    gpu_state *st = p->st;
    const ob_model *m = st->m;
    const ob_config *c = &m->cfg;
    const ob_layer_params *lp = &m->layers[l];
    gpu_layer *a = &st->layers[l];
    int N = p->N, H = c->hidden_size, F = c->intermediate_size, nh = c->num_heads, nkv = c->num_kv_heads;
    int hd = ob_config_head_dim(c);
    float eps = (float)c->layer_norm_eps;
    int pq = lp->proj[OB_PROJ_Q];
    MARK("fwd norm+quant");
    const float *prev = l > 0 ? st->layers[l - 1].a : a->x;
    OB_STATUS_TRY(norm_quant(p, lp->input_norm, pq, a->x, prev, l > 0 ? st->branch : NULL, a->n1, a->x1q, a->mean1,
                             a->rstd1));
    const bf16 *x1 = input_of(p, pq, a->n1, a->x1q);
    MARK("fwd gemm qkv");
    const int qkv[3] = {pq, lp->proj[OB_PROJ_K], lp->proj[OB_PROJ_V]};
    bf16 *qkv_out[3] = {a->qkv, a->qkv + H, a->v};
    OB_STATUS_TRY(linears_forward(p, qkv, 3, a->n1, x1, N, qkv_out, (int)st->qkv_ld));
    const float *gq = c->use_qk_norm ? st->params + param(p, lp->q_norm)->offset : NULL;
    const float *gk = c->use_qk_norm ? st->params + param(p, lp->k_norm)->offset : NULL;
    MARK("fwd qk-norm+rope");
    OB_STATUS_TRY(ob_gpu_qk_forward(a->q, qkv_out[0], st->qkv_ld, a->rq, gq, st->rope_cos, st->rope_sin, B, T, nh, hd,
                                    eps, c->use_qk_norm, c->use_rope, st->stream));
    OB_STATUS_TRY(ob_gpu_qk_forward(a->k, qkv_out[1], st->qkv_ld, a->rk, gk, st->rope_cos, st->rope_sin, B, T, nkv, hd,
                                    eps, c->use_qk_norm, c->use_rope, st->stream));
    MARK("fwd attention");
    ob_qkv_ld lds = {(size_t)H, (size_t)nkv * hd, st->qkv_ld};
    OB_STATUS_TRY(ob_gpu_attention_forward(a->o, a->lse, a->q, a->k, a->v, lds, B, T, nh, nkv, hd, st->stream));
    int po = lp->proj[OB_PROJ_O];
    MARK("fwd act quant");
    if (act_bits(p, param(p, po)))
        OB_STATUS_TRY(ob_gpu_act_quant(st->oq, a->o, N, H, act_bits(p, param(p, po)), st->stream));
    MARK("fwd gemm o");
    OB_STATUS_TRY(linear_forward(p, po, H, a->o, input_of(p, po, a->o, st->oq), N, st->branch, 0, true));
    int pu = lp->proj[OB_PROJ_UP];
    MARK("fwd norm+quant");
    OB_STATUS_TRY(norm_quant(p, lp->post_norm, pu, a->a, a->x, st->branch, a->n2, a->x2q, a->mean2, a->rstd2));
    const bf16 *x2 = input_of(p, pu, a->n2, a->x2q);
    MARK("fwd gemm up/gate");
    int act = c->use_swiglu ? 2 : (c->use_relu2 ? 1 : 0);
    const int ffn[2] = {act == 2 ? lp->proj[OB_PROJ_GATE] : pu, pu};
    bf16 *ffn_out[2] = {act == 2 ? a->g : a->u, a->u};
    OB_STATUS_TRY(linears_forward(p, ffn, act == 2 ? 2 : 1, a->n2, x2, N, ffn_out, (int)st->ffn_ld));
    int pd = lp->proj[OB_PROJ_DOWN];
    MARK("fwd ffn act+quant");
    bf16 *hq = keeps_hq(p, pd) ? a->h : st->hq;
    OB_STATUS_TRY(
        ob_gpu_ffn_forward(a->h, hq, a->u, a->g, st->ffn_ld, N, F, act, act_bits(p, param(p, pd)), st->stream));
    MARK("fwd gemm down");
    return linear_forward(p, pd, H, a->h, input_of(p, pd, a->h, hq), N, st->branch, 0, true);
}

/* st->dres holds dL/dx_{l+1} on entry and dL/dx_l on return. */
static ob_status layer_backward(const pass *p, int l, int B, int T) {
    gpu_state *st = p->st;
    const ob_model *m = st->m;
    const ob_config *c = &m->cfg;
    const ob_layer_params *lp = &m->layers[l];
    gpu_layer *a = &st->layers[l];
    int N = p->N, H = c->hidden_size, F = c->intermediate_size, nh = c->num_heads, nkv = c->num_kv_heads;
    int hd = ob_config_head_dim(c);
    float r = residual_factor(c);
    bool ln = !c->use_subln;
    cudaStream_t s = st->stream;
    int pd = lp->proj[OB_PROJ_DOWN], pu = lp->proj[OB_PROJ_UP], pg = lp->proj[OB_PROJ_GATE];
    /* st->dtmp holds r·dL/dx_{l+1} in bf16, from the norm backward before. */
    MARK("bwd gemm down");
    bool rebuild_hq = act_bits(p, param(p, pd)) && !keeps_hq(p, pd);
    OB_STATUS_TRY(linear_backward(p, pd, a->h, keeps_hq(p, pd) ? a->h : st->hq, rebuild_hq ? st->hq : NULL, st->dtmp,
                                  0, N, st->df1, false));
    cudaEvent_t down_done, o_done; /* the norms below overwrite the dtmp these read */
    OB_STATUS_TRY(wg_mark(p, &down_done));
    int act = c->use_swiglu ? 2 : (c->use_relu2 ? 1 : 0);
    MARK("bwd ffn act");
    OB_STATUS_TRY(ob_gpu_ffn_backward(st->df2, st->df3, st->df1, a->u, a->g, st->ffn_ld, N, F, act, s));
    MARK("bwd gemm up/gate");
    const int ffn[2] = {act == 2 ? pg : pu, pu};
    const bf16 *dffn[2] = {act == 2 ? st->df3 : st->df2, st->df2};
    OB_STATUS_TRY(linears_backward(p, ffn, act == 2 ? 2 : 1, a->n2, a->x2q, N, dffn, (int)st->ffn_ld, st->dn));
    MARK("bwd norm");
    OB_STATUS_TRY(wg_wait(p, down_done));
    OB_STATUS_TRY(norm_backward(p, st->dres, true, st->dtmp, r, lp->post_norm, st->dn, a->a, a->mean2, a->rstd2, ln));
    int po = lp->proj[OB_PROJ_O];
    MARK("bwd gemm o");
    bf16 *rebuild_oq = act_bits(p, param(p, po)) ? st->oq : NULL;
    OB_STATUS_TRY(linear_backward(p, po, a->o, st->oq, rebuild_oq, st->dtmp, 0, N, st->dn, false));
    OB_STATUS_TRY(wg_mark(p, &o_done));
    MARK("bwd attention");
    ob_qkv_ld lds = {(size_t)H, (size_t)nkv * hd, st->qkv_ld};
    OB_STATUS_TRY(ob_gpu_attention_backward(st->dq, st->dk, st->dv, st->dn, a->o, a->lse, a->q, a->k, a->v, lds,
                                            st->delta, B, T, nh, nkv, hd, s));
    const float *gq = c->use_qk_norm ? st->params + param(p, lp->q_norm)->offset : NULL;
    const float *gk = c->use_qk_norm ? st->params + param(p, lp->k_norm)->offset : NULL;
    float *dgq = c->use_qk_norm ? st->grads + param(p, lp->q_norm)->offset : NULL;
    float *dgk = c->use_qk_norm ? st->grads + param(p, lp->k_norm)->offset : NULL;
    MARK("bwd qk-norm+rope");
    int q_slot, k_slot;
    OB_STATUS_TRY(partials_take(p, &q_slot));
    OB_STATUS_TRY(ob_gpu_qk_backward(st->dqkv, st->qkv_ld, st->dq, NULL, partials_of(p, q_slot), a->qkv, a->rq, gq,
                                     st->rope_cos, st->rope_sin, B, T, nh, hd, c->use_qk_norm, c->use_rope, s));
    if (c->use_qk_norm)
        OB_STATUS_TRY(gain_sum(p, dgq, q_slot, ob_gpu_qk_partials(N * nh, hd), hd));
    OB_STATUS_TRY(partials_take(p, &k_slot));
    OB_STATUS_TRY(ob_gpu_qk_backward(st->dqkv + H, st->qkv_ld, st->dk, NULL, partials_of(p, k_slot), a->qkv + H, a->rk,
                                     gk, st->rope_cos, st->rope_sin, B, T, nkv, hd, c->use_qk_norm, c->use_rope, s));
    if (c->use_qk_norm)
        OB_STATUS_TRY(gain_sum(p, dgk, k_slot, ob_gpu_qk_partials(N * nkv, hd), hd));
    const int qkv[3] = {lp->proj[OB_PROJ_Q], lp->proj[OB_PROJ_K], lp->proj[OB_PROJ_V]};
    const bf16 *dqkv[3] = {st->dqkv, st->dqkv + H, st->dv};
    MARK("bwd gemm qkv");
    OB_STATUS_TRY(linears_backward(p, qkv, 3, a->n1, a->x1q, N, dqkv, (int)st->qkv_ld, st->dn));
    MARK("bwd norm");
    OB_STATUS_TRY(wg_wait(p, o_done));
    return norm_backward(p, st->dres, true, l > 0 ? st->dtmp : NULL, r, lp->input_norm, st->dn, a->x, a->mean1,
                         a->rstd1, ln);
}

/* Head and loss in chunks of rows; with training, dL/dnf goes to st->dn. The
 * logits are bf16 (as under PyTorch's autocast: half the bytes of fp32 to write
 * and read), twice as many rows a chunk as the buffer holds of fp32 logits,
 * which the caller may want instead. The cross-entropy turns each chunk's
 * logits into their bf16 gradient in place, which the backward products read
 * there (the next chunk's product waits for them). Chunks of 8192 rows, not
 * two of 4096 in flight: the products ran 4% faster, and the cross-entropy of
 * one chunk never ran beside the products of another anyway (cuBLASLt's
 * kernels hold every SM). */
static ob_status head_and_loss(const pass *p, bool train, float grad_scale) {
    gpu_state *st = p->st;
    const ob_model *m = st->m;
    const ob_config *c = &m->cfg;
    int N = p->N, H = c->hidden_size, V = c->vocab_size, hidx = m->head;
    const ob_param *hp = param(p, hidx);
    const bf16 *xin = input_of(p, hidx, st->nf, st->nfq);
    bool wide = st->host_logits != NULL;
    int ld = (int)st->logits_ld, per = wide ? st->chunk : 2 * st->chunk;
    int gld = wide ? 2 * ld : ld; /* bf16 elements between the gradient's rows */
    cudaDataType zt = wide ? CUDA_R_32F : CUDA_R_16BF;
    bf16 *z = (bf16 *)st->logits;
    cudaStream_t s = st->stream;
    for (int r0 = 0; r0 < N; r0 += per) {
        int rows = N - r0 < per ? N - r0 : per;
        const bf16 *xr = xin + (size_t)r0 * H, *nr = st->nf + (size_t)r0 * H;
        MARK("head product");
        OB_STATUS_TRY(wg_wait_all(p)); /* the last chunk's weight gradient has read its logits */
        ob_gemm_args a = ob_gemm_xwt(z, zt, xr, st->w_eff + hp->offset, rows, H, V);
        a.ldd = ld;
        a.alpha_device = scale_of(p, hidx, false);
        OB_STATUS_TRY(ob_gemm_run(st->gemm, &a));
        if (arenas(p, hp)) {
            ob_gemm_args b = ob_gemm_xwt(z, zt, nr, st->wc + hp->offset, rows, H, V);
            b.ldd = ld;
            b.alpha = p->step->arenas;
            b.beta = 1.0f;
            OB_STATUS_TRY(ob_gemm_run(st->gemm, &b));
        }
        if (wide)
            OB_CUDA_TRY(cudaMemcpy2DAsync(st->host_logits + (size_t)r0 * V, (size_t)V * sizeof(float), st->logits,
                                          (size_t)ld * sizeof(float), (size_t)V * sizeof(float), rows,
                                          cudaMemcpyDeviceToHost, s));
        MARK("cross-entropy");
        float gs = grad_scale / (float)N, eps = p->step->label_smoothing;
        if (wide)
            OB_STATUS_TRY(ob_gpu_cross_entropy(st->logits, (size_t)ld, train, st->row_loss + r0, st->row_plain + r0,
                                               st->targets + r0, rows, V, eps, gs, s));
        else
            OB_STATUS_TRY(ob_gpu_cross_entropy(z, (size_t)ld, train, st->row_loss + r0, st->row_plain + r0,
                                               st->targets + r0, rows, V, eps, gs, s));
        if (!train)
            continue;
        MARK("head backward products");
        bf16 *dnr = st->dn + (size_t)r0 * H;
        if (soft(p, hp)) {
            /* The soft backward needs the whole dL/dWq: gather it over the chunks. */
            OB_STATUS_TRY(input_grad(p, st->gemm, hidx, V, z, gld, rows, dnr, false));
            if (arenas(p, hp)) {
                ob_gemm_args f = ob_gemm_dytx(st->grads + hp->offset, CUDA_R_32F, z, nr, rows, H, V);
                f.lda = gld;
                f.alpha = p->step->arenas;
                f.beta = 1.0f;
                OB_STATUS_TRY(ob_gemm_run(st->gemm, &f));
            }
            ob_gemm_args g = ob_gemm_dytx(st->scratch, CUDA_R_32F, z, xr, rows, H, V);
            g.lda = gld;
            g.beta = r0 ? 1.0f : 0.0f;
            OB_STATUS_TRY(ob_gemm_run(st->gemm, &g));
        } else {
            OB_STATUS_TRY(linear_backward(p, hidx, nr, xr, NULL, z, gld, rows, dnr, false));
        }
    }
    MARK("head + loss, rest");
    if (train && soft(p, hp))
        OB_STATUS_TRY(ob_gpu_soft_backward(st->wq, st->matrix_of[hidx], st->params, st->scratch, st->grads, st->stats,
                                           c->use_dynamic_threshold, (float)c->latent_clamp_max, p->step->sharpness,
                                           s));
    return OB_OK;
}

/* Groups the batch's positions by token (host side) for the lookup's backward. */
static ob_status upload_tokens(gpu_state *st, const int32_t *inputs, const int32_t *targets, int N, int *distinct_out) {
    int V = st->m->cfg.vocab_size;
    int32_t *count = st->host_count;
    memset(count, 0, (size_t)V * sizeof *count);
    for (int i = 0; i < N; i++) {
        if (inputs[i] < 0 || inputs[i] >= V || targets[i] < 0 || targets[i] >= V)
            return ob_error(OB_ERR_INVALID_ARG, "cuda backend: token id %d at position %d is outside the vocabulary (%d)",
                            inputs[i] < 0 || inputs[i] >= V ? inputs[i] : targets[i], i, V);
        count[inputs[i]]++;
    }
    int distinct = 0, pos = 0;
    for (int v = 0; v < V; v++) {
        if (!count[v])
            continue;
        st->host_ids[distinct] = v;
        st->host_starts[distinct] = pos;
        pos += count[v];
        count[v] = st->host_starts[distinct];
        distinct++;
    }
    st->host_starts[distinct] = pos;
    for (int i = 0; i < N; i++)
        st->host_order[count[inputs[i]]++] = i;
    memcpy(st->host_upload, inputs, (size_t)N * sizeof(int32_t));
    memcpy(st->host_upload + (st->targets - st->tokens), targets, (size_t)N * sizeof(int32_t));
    size_t upto = (size_t)(st->emb_starts - st->tokens) + distinct + 1; /* everything before and the starts used */
    OB_CUDA_TRY(cudaMemcpyAsync(st->tokens, st->host_upload, upto * sizeof(int32_t), cudaMemcpyHostToDevice,
                                st->stream));
    *distinct_out = distinct;
    return OB_OK;
}

static ob_status embed_backward(const pass *p, int B, int T, int distinct) {
    gpu_state *st = p->st;
    const ob_model *m = st->m;
    const ob_config *c = &m->cfg;
    const ob_param *e = param(p, m->embed);
    int N = B * T, H = c->hidden_size;
    float *dpos = m->positions >= 0 ? st->grads + param(p, m->positions)->offset : NULL;
    if (!soft(p, e)) {
        float factor = quantised(p, e) ? (float)c->ste_scale_factor : 1.0f;
        return ob_gpu_embed_backward(st->grads + e->offset, dpos, st->dres, st->emb_order, st->emb_starts, st->emb_ids,
                                     distinct, N, T, H, factor, st->stream);
    }
    OB_CUDA_TRY(cudaMemsetAsync(st->scratch, 0, e->numel * sizeof(float), st->stream));
    OB_STATUS_TRY(ob_gpu_embed_backward(st->scratch, dpos, st->dres, st->emb_order, st->emb_starts, st->emb_ids,
                                        distinct, N, T, H, 1.0f, st->stream));
    return ob_gpu_soft_backward(st->wq, st->matrix_of[m->embed], st->params, st->scratch, st->grads, st->stats,
                                c->use_dynamic_threshold, (float)c->latent_clamp_max, p->step->sharpness, st->stream);
}

/* What a pass's recorded graph depends on besides the buffers' contents
 * (graph.cuh): every value its launches take that may change between calls. */
typedef struct {
    int B, T;
    float grad_scale;
    ob_step_info step;
    const float *grads;
} pass_key;

typedef struct {
    pass *p;
    int B, T;
    bool train;
    float grad_scale;
} pass_work;

/* The device work of a pass from the embedding to the last layer's backward,
 * ending with the weight gradients' stream joined: what a graph records. */
static ob_status pass_body(void *ctx) {
    const pass_work *w = (const pass_work *)ctx;
    const pass *p = w->p;
    gpu_state *st = p->st;
    const ob_model *m = st->m;
    const ob_config *c = &m->cfg;
    int B = w->B, T = w->T, N = p->N, L = c->num_layers, H = c->hidden_size;
    cudaStream_t s = st->stream;
    st->partials_summing = 0;   /* the last pass ended with its sums done (joined below) */
    OB_STATUS_TRY(wg_begin(p)); /* where a graph is recorded, the weight gradients' stream joins it here */
    const ob_param *e = param(p, m->embed);
    ob_gpu_profile_mark(&st->prof, s, "embedding");
    OB_STATUS_TRY(ob_gpu_embed_forward(st->layers[0].x, st->tokens, st->w_eff + e->offset, scale_of(p, m->embed, false),
                                       m->positions >= 0 ? st->params + param(p, m->positions)->offset : NULL, N, T, H,
                                       s));
    for (int l = 0; l < L; l++)
        OB_STATUS_TRY(layer_forward(p, l, B, T));
    int hidx = m->head;
    int bits = act_bits(p, param(p, hidx));
    bf16 *plain_nf = arenas(p, param(p, hidx)) || bits == 0 ? st->nf : st->nfq;
    OB_STATUS_TRY(ob_gpu_norm_forward(plain_nf, bits ? st->nfq : plain_nf, st->meanf, st->rstdf, st->xf,
                                      st->layers[L - 1].a, st->branch, st->params + param(p, m->final_norm)->offset, N,
                                      H, (float)c->layer_norm_eps, !c->use_subln, bits, s));
    if (w->train && st->wg_stream != st->stream) { /* zero_grad's memset ran beside the forward pass */
        cudaStreamCaptureStatus recording;
        OB_CUDA_TRY(cudaStreamIsCapturing(s, &recording));
        OB_CUDA_TRY(cudaStreamWaitEvent(s, st->grads_zeroed,
                                        recording == cudaStreamCaptureStatusActive ? cudaEventWaitExternal : 0));
    }
    OB_STATUS_TRY(head_and_loss(p, w->train, w->grad_scale));
    ob_gpu_profile_mark(&st->prof, s, "loss sums, final norm");
    /* On the weight gradients' stream, off the backward pass's path. */
    OB_STATUS_TRY(wg_begin(p));
    OB_STATUS_TRY(ob_gpu_sum(st->sums, st->row_loss, (size_t)N, st->sum_partials, false, st->wg_stream));
    OB_STATUS_TRY(ob_gpu_sum(st->sums + 1, st->row_plain, (size_t)N, st->sum_partials, false, st->wg_stream));
    if (w->train) {
        OB_STATUS_TRY(norm_backward(p, st->dres, false, st->dtmp, residual_factor(c), m->final_norm, st->dn, st->xf,
                                    st->meanf, st->rstdf, !c->use_subln));
        for (int l = L - 1; l >= 0; l--) {
            OB_STATUS_TRY(layer_backward(p, l, B, T));
            if (st->reduce) { /* this layer's gradients are final: sum them over the processes now */
                OB_STATUS_TRY(wg_wait_all(p));
                OB_STATUS_TRY(ob_gpu_reduce_range(st, st->layer_begin[l], st->layer_end[l]));
            }
        }
    }
    return wg_wait_all(p);
}

ob_status ob_gpu_pass(gpu_state *st, const int32_t *inputs, const int32_t *targets, int B, int T,
                      const ob_step_info *step, bool train, float grad_scale, double *loss, double *plain,
                      float *host_logits) {
    const ob_model *m = st->m;
    const ob_config *c = &m->cfg;
    if (B < 1 || T < 1 || T > st->T || B * T > st->B * st->T)
        return ob_error(OB_ERR_INVALID_ARG, "cuda backend: batch %d x %d exceeds the allocated %d x %d", B, T, st->B,
                        st->T);
    pass p = {st, step, B * T};
    int N = B * T, L = c->num_layers;
    cudaStream_t s = st->stream;
    OB_CUDA_TRY(cudaSetDevice(st->device));
    int distinct;
    OB_STATUS_TRY(upload_tokens(st, inputs, targets, N, &distinct));
    bool fp = step->regime == OB_REGIME_FP;
    ob_gpu_profile_mark(&st->prof, s, "weight quantisers");
    OB_STATUS_TRY(ob_gpu_wquant_run(st->wq, st->params, st->w_eff, step->arenas > 0 && !fp ? st->wc : NULL, st->stats,
                                    c->use_dynamic_threshold, (float)c->latent_clamp_max, step->sharpness, !fp,
                                    step->regime == OB_REGIME_SOFT, residual_factor(c), s));
    st->host_logits = host_logits;
    pass_work work = {&p, B, T, train, grad_scale};
    if (train && !host_logits && !st->reduce) { /* training steps repeat: record them */
        pass_key key;
        memset(&key, 0, sizeof key); /* the padding too: keys compare as bytes */
        key.B = B, key.T = T, key.grad_scale = grad_scale, key.step = *step, key.grads = st->grads;
        OB_STATUS_TRY(ob_graph_run(&st->graph, s, &key, sizeof key, pass_body, &work));
    } else {
        OB_STATUS_TRY(pass_body(&work));
    }
    if (train) {
        ob_gpu_profile_mark(&st->prof, s, "embedding backward, mask");
        OB_STATUS_TRY(embed_backward(&p, B, T, distinct));
        if (!fp)
            OB_STATUS_TRY(ob_gpu_mask_clamped(st->wq, st->params, st->grads, (float)c->latent_clamp_max, s));
        if (st->reduce) {
            OB_STATUS_TRY(ob_gpu_reduce_range(st, 0, st->layer_begin[0]));
            OB_STATUS_TRY(ob_gpu_reduce_range(st, st->layer_end[L - 1], m->num_floats));
        }
    }
    double sums[2];
    OB_CUDA_TRY(cudaMemcpyAsync(sums, st->sums, sizeof sums, cudaMemcpyDeviceToHost, s));
    ob_gpu_profile_flush(&st->prof, s);
    ob_gemm_profile_flush(st->gemm);
    OB_CUDA_TRY(cudaStreamSynchronize(s));
    *loss = sums[0] / N;
    if (plain)
        *plain = sums[1] / N;
    return OB_OK;
}
