/* Inference sessions: the KV cache and every scratch buffer allocated once at
 * creation, and the forward pass of docs/MODEL.md over chunks of tokens at
 * increasing positions. Norms, QK-norm, RoPE, the residual scaling and the FFN
 * activations repeat the training kernels' arithmetic; the linear layers run
 * on the packed weights (linear.c), attention on the cache (attention.c). The
 * context is a hard limit: a forward that would pass it fails before touching
 * anything. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels.h"
#include "infer/session.h"
#include "onebit_math.h"

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

ob_status ob_infer_create(const ob_packed_model *pm, const ob_infer_options *opts, ob_infer **out) {
    *out = NULL;
    ob_infer_options defaults = {0, 0, OB_ISA_AUTO};
    if (!opts)
        opts = &defaults;
    const ob_config *c = &pm->cfg;
    if (opts->context < 0 || opts->context > c->max_seq_len)
        return ob_error(OB_ERR_INVALID_ARG, "context %d is outside 1..%d (the model's max_seq_len)", opts->context,
                        c->max_seq_len);
    if (opts->threads < 0)
        return ob_error(OB_ERR_INVALID_ARG, "threads %d is negative", opts->threads);
    const ob_kernels *kern = ob_kernels_get(opts->isa);
    if (!kern)
        return ob_error(OB_ERR_UNSUPPORTED, "kernels '%s' are not supported by this CPU", ob_kernel_isa_name(opts->isa));
    ob_infer *s = ob_calloc(1, sizeof *s);
    if (!s)
        return OB_ERR_NOMEM;
    s->pm = pm;
    s->kern = kern;
    s->threads = opts->threads ? opts->threads : omp_get_max_threads();
    s->ctx = opts->context ? opts->context : c->max_seq_len;
    int H = c->hidden_size, F = c->intermediate_size, L = c->num_layers;
    s->hd = ob_config_head_dim(c);
    s->kvd = c->num_kv_heads * s->hd;
    int kpH = ob_packed_cols_padded(OB_DTYPE_I8, H), kpF = ob_packed_cols_padded(OB_DTYPE_I8, F);
    s->kmax = kpH > kpF ? kpH : kpF;
    size_t ch = OB_INFER_CHUNK, ctx = (size_t)s->ctx, kv = (size_t)L * ctx * s->kvd;
    size_t half = (size_t)(s->hd / 2 > 0 ? s->hd / 2 : 1);
    struct {
        void *slot;
        size_t bytes;
    } req[] = {
        {&s->tokens, ctx * sizeof(int32_t)},
        {&s->kcache, kv * sizeof(float)},
        {&s->vcache, kv * sizeof(float)},
        {&s->rope_cos, ctx * half * sizeof(float)},
        {&s->rope_sin, ctx * half * sizeof(float)},
        {&s->x, ch * H * sizeof(float)},
        {&s->nrm, ch * H * sizeof(float)},
        {&s->q, ch * H * sizeof(float)},
        {&s->k, ch * s->kvd * sizeof(float)},
        {&s->v, ch * s->kvd * sizeof(float)},
        {&s->att, ch * H * sizeof(float)},
        {&s->tmp, ch * H * sizeof(float)},
        {&s->up, ch * F * sizeof(float)},
        {&s->gate, ch * F * sizeof(float)},
        {&s->hid, ch * F * sizeof(float)},
        {&s->scores, (size_t)s->threads * ctx * sizeof(float)},
        {&s->wrow, (size_t)s->threads * s->kmax * sizeof(float)},
        {&s->codes, ch * s->kmax},
        {&s->sums, ch * sizeof(int32_t)},
        {&s->inv_scales, ch * sizeof(double)},
    };
    size_t n = sizeof req / sizeof *req, total = 0;
    for (size_t i = 0; i < n; i++)
        total += align16(req[i].bytes) + 64;
    s->block = ob_aligned_alloc(total);
    if (!s->block) {
        int context = s->ctx;
        free(s);
        return ob_error(OB_ERR_NOMEM, "inference session: cannot allocate %.1f MB (KV cache %.1f MB for %d tokens)",
                        (double)total / 1e6, 2.0 * kv * sizeof(float) / 1e6, context);
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        *(void **)req[i].slot = (uint8_t *)s->block + off;
        off += (align16(req[i].bytes) + 63) & ~(size_t)63;
    }
    s->kv_bytes = 2 * kv * sizeof(float);
    /* The same table as the training kernel: φ = t·θ^(−2j/hd) in double. */
    for (int t = 0; c->use_rope && t < s->ctx; t++)
        for (int j = 0; j < s->hd / 2; j++) {
            double phi = (double)t * pow(c->rope_theta, -2.0 * j / s->hd);
            s->rope_cos[(size_t)t * (s->hd / 2) + j] = (float)cos(phi);
            s->rope_sin[(size_t)t * (s->hd / 2) + j] = (float)sin(phi);
        }
    s->min_margin = 0.5f;
    *out = s;
    return OB_OK;
}

void ob_infer_free(ob_infer *s) {
    if (!s)
        return;
    ob_aligned_free(s->block);
    free(s);
}

void ob_infer_reset(ob_infer *s) { s->pos = 0; }
const ob_packed_model *ob_infer_model(const ob_infer *s) { return s->pm; }
int ob_infer_position(const ob_infer *s) { return s->pos; }
int ob_infer_context(const ob_infer *s) { return s->ctx; }
ob_kernel_isa ob_infer_isa(const ob_infer *s) { return s->kern->isa; }
int ob_infer_threads(const ob_infer *s) { return s->threads; }
size_t ob_infer_kv_bytes(const ob_infer *s) { return s->kv_bytes; }
const int32_t *ob_infer_tokens(const ob_infer *s) { return s->tokens; }

void ob_infer_debug_track_margin(ob_infer *s, bool on) {
    s->track_margin = on;
    s->min_margin = 0.5f;
}

float ob_infer_debug_min_margin(const ob_infer *s) { return s->min_margin; }

/* ---- the pieces of a layer ---------------------------------------------------------- */

/* RMSNorm or bias-free LayerNorm of n rows, with the training kernel's row. */
static void norm_rows(float *y, const float *x, const float *g, int n, int d, float eps, bool layernorm) {
    float mean;
    for (int i = 0; i < n; i++)
        ob_cpu_norm_row(y + (size_t)i * d, x + (size_t)i * d, g, d, eps, layernorm, &mean);
}

static void rope_rows(const ob_infer *s, float *x, int n, int heads) {
    int half = s->hd / 2;
    for (int t = 0; t < n; t++) {
        const float *cs = s->rope_cos + (size_t)(s->pos + t) * half, *sn = s->rope_sin + (size_t)(s->pos + t) * half;
        for (int h = 0; h < heads; h++) {
            float *v = x + ((size_t)t * heads + h) * s->hd;
            for (int j = 0; j < half; j++) {
                float a = v[2 * j], b = v[2 * j + 1];
                v[2 * j] = a * cs[j] - b * sn[j];
                v[2 * j + 1] = a * sn[j] + b * cs[j];
            }
        }
    }
}

/* obe_expf (embedded/onebit_math.h), not libm: the embedded runtime computes
 * the same bits. */
static inline float sigmoidf_(float z) { return 1.0f / (1.0f + obe_expf(-z)); }

static void ffn_activation(float *h, const float *u, const float *g, size_t count, ob_ffn_kind kind) {
    for (size_t i = 0; i < count; i++) {
        switch (kind) {
        case OB_FFN_SILU: h[i] = u[i] * sigmoidf_(u[i]); break;
        case OB_FFN_RELU2: {
            float r = u[i] > 0 ? u[i] : 0;
            h[i] = r * r;
            break;
        }
        case OB_FFN_SWIGLU: h[i] = g[i] * sigmoidf_(g[i]) * u[i]; break;
        }
    }
}

/* Activation bits of a matrix: the config's for quantised modes, 8 for a
 * compressed full-precision table, none for float weights. */
static int act_bits(const ob_config *c, ob_quant_mode mode, const ob_packed_tensor *w) {
    if (!ob_packed_dtype_quantised(w->dtype))
        return 0;
    return mode == OB_MODE_F16 ? 8 : c->activation_bits;
}

static void embed_rows(ob_infer *s, const int32_t *tokens, int n) {
    const ob_packed_model *pm = s->pm;
    int H = pm->cfg.hidden_size;
    for (int t = 0; t < n; t++) {
        float *xt = s->x + (size_t)t * H;
        ob_packed_row_to_f32(&pm->embed, tokens[t], xt);
        if (pm->positions) {
            const float *p = pm->positions + (size_t)(s->pos + t) * H;
            for (int j = 0; j < H; j++)
                xt[j] = xt[j] + p[j];
        }
    }
}

static void layer_forward(ob_infer *s, int l, int n) {
    const ob_config *c = &s->pm->cfg;
    const ob_packed_layer *ly = &s->pm->layers[l];
    int H = c->hidden_size, F = c->intermediate_size, nh = c->num_heads, nkv = c->num_kv_heads;
    int kvd = s->kvd;
    float eps = (float)c->layer_norm_eps;
    bool ln = !c->use_subln;
    float r = c->use_residual_scaling ? (float)(1.0 / sqrt(2.0)) : 1.0f;
    ob_quant_mode mode = ob_config_layer_mode(c, l);
    int bits = act_bits(c, mode, &ly->proj[OB_PROJ_Q]);
    /* Attention. q, k and v share one quantisation of the normed input. */
    norm_rows(s->nrm, s->x, ly->input_norm, n, H, eps, ln);
    if (bits) {
        ob_infer_quantise(s, s->nrm, n, H, ly->proj[OB_PROJ_Q].cols_padded, bits);
        ob_infer_qmatmul(s, &ly->proj[OB_PROJ_Q], n, s->q);
        ob_infer_qmatmul(s, &ly->proj[OB_PROJ_K], n, s->k);
        ob_infer_qmatmul(s, &ly->proj[OB_PROJ_V], n, s->v);
    } else {
        ob_infer_fmatmul(s, &ly->proj[OB_PROJ_Q], s->nrm, n, s->q);
        ob_infer_fmatmul(s, &ly->proj[OB_PROJ_K], s->nrm, n, s->k);
        ob_infer_fmatmul(s, &ly->proj[OB_PROJ_V], s->nrm, n, s->v);
    }
    if (c->use_qk_norm) {
        norm_rows(s->q, s->q, ly->q_norm, n * nh, s->hd, eps, false);
        norm_rows(s->k, s->k, ly->k_norm, n * nkv, s->hd, eps, false);
    }
    if (c->use_rope) {
        rope_rows(s, s->q, n, nh);
        rope_rows(s, s->k, n, nkv);
    }
    size_t at = ((size_t)l * s->ctx + s->pos) * kvd;
    memcpy(s->kcache + at, s->k, (size_t)n * kvd * sizeof(float));
    memcpy(s->vcache + at, s->v, (size_t)n * kvd * sizeof(float));
    ob_infer_attention(s, l, n, s->att);
    ob_infer_linear(s, &ly->proj[OB_PROJ_O], bits, s->att, n, s->tmp);
    for (size_t i = 0; i < (size_t)n * H; i++)
        s->x[i] = s->x[i] + r * s->tmp[i];
    /* FFN. up and gate share one quantisation. */
    norm_rows(s->nrm, s->x, ly->post_norm, n, H, eps, ln);
    ob_ffn_kind kind = ob_config_ffn(c);
    if (bits) {
        ob_infer_quantise(s, s->nrm, n, H, ly->proj[OB_PROJ_UP].cols_padded, bits);
        ob_infer_qmatmul(s, &ly->proj[OB_PROJ_UP], n, s->up);
        if (kind == OB_FFN_SWIGLU)
            ob_infer_qmatmul(s, &ly->proj[OB_PROJ_GATE], n, s->gate);
    } else {
        ob_infer_fmatmul(s, &ly->proj[OB_PROJ_UP], s->nrm, n, s->up);
        if (kind == OB_FFN_SWIGLU)
            ob_infer_fmatmul(s, &ly->proj[OB_PROJ_GATE], s->nrm, n, s->gate);
    }
    ffn_activation(s->hid, s->up, s->gate, (size_t)n * F, kind);
    ob_infer_linear(s, &ly->proj[OB_PROJ_DOWN], bits, s->hid, n, s->tmp);
    for (size_t i = 0; i < (size_t)n * H; i++)
        s->x[i] = s->x[i] + r * s->tmp[i];
}

/* Final norm and head of rows [first, n) of the chunk into logits [n - first][V]. */
static void head_rows(ob_infer *s, int first, int n, float *logits) {
    const ob_packed_model *pm = s->pm;
    const ob_config *c = &pm->cfg;
    int H = c->hidden_size, rows = n - first;
    norm_rows(s->nrm, s->x + (size_t)first * H, pm->final_norm, rows, H, (float)c->layer_norm_eps, !c->use_subln);
    ob_infer_linear(s, &pm->head, act_bits(c, ob_config_lm_head_mode(c), &pm->head), s->nrm, rows, logits);
}

ob_status ob_infer_forward(ob_infer *s, const int32_t *tokens, int n, float *logits, bool all_logits) {
    const ob_config *c = &s->pm->cfg;
    if (n < 1)
        return ob_error(OB_ERR_INVALID_ARG, "forward: %d tokens (need at least 1)", n);
    if (n > s->ctx - s->pos)
        return ob_error(OB_ERR_INVALID_ARG, "context full: %d tokens in the cache and %d more exceed the context of %d",
                        s->pos, n, s->ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return ob_error(OB_ERR_INVALID_ARG, "forward: token %d at index %d is outside the vocabulary (%d)", tokens[i],
                            i, c->vocab_size);
    int V = c->vocab_size;
    for (int done = 0; done < n;) {
        int m = n - done < OB_INFER_CHUNK ? n - done : OB_INFER_CHUNK;
        /* tokens may point into s->tokens (ob_infer_slide): copy before use. */
        memmove(s->tokens + s->pos, tokens + done, (size_t)m * sizeof(int32_t));
        embed_rows(s, s->tokens + s->pos, m);
        for (int l = 0; l < c->num_layers; l++)
            layer_forward(s, l, m);
        if (logits && all_logits)
            head_rows(s, 0, m, logits + (size_t)done * V);
        else if (logits && done + m == n)
            head_rows(s, m - 1, m, logits);
        s->pos += m;
        done += m;
    }
    return OB_OK;
}

ob_status ob_infer_slide(ob_infer *s, int keep, float *logits) {
    if (keep < 1 || keep > s->pos)
        return ob_error(OB_ERR_INVALID_ARG, "slide: cannot keep %d of %d tokens", keep, s->pos);
    memmove(s->tokens, s->tokens + (s->pos - keep), (size_t)keep * sizeof(int32_t));
    s->pos = 0;
    return ob_infer_forward(s, s->tokens, keep, logits, false);
}
