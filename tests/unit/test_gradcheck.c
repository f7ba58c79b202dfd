/* Finite differences in double precision against the analytical backward of
 * every CPU operation and of whole tiny models (the CPU backend compiled with
 * real = double). Where the function is piecewise constant (hard quantisers,
 * activation quantiser) the straight-through gradient is not a derivative, so
 * the whole-model checks run the smooth regimes (full precision, soft) and, in
 * the hard regime, the parameters that are not quantised. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_model.h"
#include "cpu/kernels.h"
#include "onebit/model.h"
#include "quant/quant_real.h"
#include "test_util.h"

#define FD_STEP 1e-5
#define FD_TOL 1e-5

static ob_rng rng;

static void fill(double *x, size_t n, double scale) {
    for (size_t i = 0; i < n; i++)
        x[i] = scale * ob_rng_normal(&rng);
}

static double *alloc_random(size_t n, double scale) {
    double *x = malloc(n * sizeof *x);
    fill(x, n, scale);
    return x;
}

typedef double (*loss_fn)(void *ctx);

/* Compares grad[i] with the finite difference of f at every entry (or a
 * sample of `max_checks` entries) of x. */
static void check_fd(const char *what, double *x, size_t n, const double *grad, loss_fn f, void *ctx,
                     size_t max_checks) {
    double worst = 0;
    size_t worst_i = 0;
    for (size_t k = 0; k < n && k < max_checks; k++) {
        size_t i = n <= max_checks ? k : (size_t)ob_rng_below(&rng, n);
        double saved = x[i], at[4], offsets[4] = {2, 1, -1, -2};
        for (int k2 = 0; k2 < 4; k2++) {
            x[i] = saved + offsets[k2] * FD_STEP;
            at[k2] = f(ctx);
        }
        x[i] = saved;
        /* Fourth-order central difference: truncation error O(h^4). */
        double fd = (-at[0] + 8 * at[1] - 8 * at[2] + at[3]) / (12 * FD_STEP);
        double err = fabs(fd - grad[i]) / (fmax(fabs(fd), fabs(grad[i])) + 1e-4);
        if (err > worst) {
            worst = err;
            worst_i = i;
        }
    }
    if (worst > FD_TOL)
        fail_msg("%s: relative error %.3g at %zu (analytic %.10g)", what, worst, worst_i, grad[worst_i]);
}

/* ---- single operations ------------------------------------------------------ */

typedef struct {
    double *x, *g, *w, *y, *mean, *rstd;
    int n, d;
    bool layernorm;
} norm_ctx;

static double norm_loss(void *vc) {
    norm_ctx *c = vc;
    ob_cpu_norm_forward_f64(c->y, c->mean, c->rstd, c->x, c->g, c->n, c->d, 1e-5, c->layernorm);
    double s = 0;
    for (int i = 0; i < c->n * c->d; i++)
        s += c->w[i] * c->y[i];
    return s;
}

static void test_norms(void **state) {
    (void)state;
    for (int ln = 0; ln < 2; ln++) {
        norm_ctx c = {.n = 4, .d = 9, .layernorm = ln};
        c.x = alloc_random(36, 1.0);
        c.g = alloc_random(9, 1.0);
        c.w = alloc_random(36, 1.0);
        c.y = malloc(36 * sizeof(double));
        c.mean = malloc(4 * sizeof(double));
        c.rstd = malloc(4 * sizeof(double));
        double *dx = calloc(36, sizeof(double)), *dg = calloc(9, sizeof(double));
        norm_loss(&c);
        ob_cpu_norm_backward_f64(dx, dg, c.w, c.x, c.g, c.mean, c.rstd, c.n, c.d, c.layernorm);
        check_fd(ln ? "layernorm dx" : "rmsnorm dx", c.x, 36, dx, norm_loss, &c, 100);
        check_fd(ln ? "layernorm dg" : "rmsnorm dg", c.g, 9, dg, norm_loss, &c, 100);
        free(c.x), free(c.g), free(c.w), free(c.y), free(c.mean), free(c.rstd), free(dx), free(dg);
    }
}

typedef struct {
    double *x, *w, *y, *cs, *sn;
    int B, T, heads, hd;
} rope_ctx;

static double rope_loss(void *vc) {
    rope_ctx *c = vc;
    size_t n = (size_t)c->B * c->T * c->heads * c->hd;
    memcpy(c->y, c->x, n * sizeof(double));
    ob_cpu_rope_f64(c->y, c->cs, c->sn, c->B, c->T, c->heads, c->hd, false);
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += c->w[i] * c->y[i];
    return s;
}

static void test_rope(void **state) {
    (void)state;
    rope_ctx c = {.B = 2, .T = 5, .heads = 3, .hd = 6};
    size_t n = 2 * 5 * 3 * 6;
    c.x = alloc_random(n, 1.0);
    c.w = alloc_random(n, 1.0);
    c.y = malloc(n * sizeof(double));
    c.cs = malloc(5 * 3 * sizeof(double));
    c.sn = malloc(5 * 3 * sizeof(double));
    ob_cpu_rope_table_f64(c.cs, c.sn, 5, 6, 10000.0);
    double *dx = malloc(n * sizeof(double));
    memcpy(dx, c.w, n * sizeof(double));
    ob_cpu_rope_f64(dx, c.cs, c.sn, 2, 5, 3, 6, true);
    check_fd("rope", c.x, n, dx, rope_loss, &c, 200);
    free(c.x), free(c.w), free(c.y), free(c.cs), free(c.sn), free(dx);
}

typedef struct {
    double *q, *k, *v, *w, *o, *att;
    int B, T, nh, nkv, hd;
} attn_ctx;

static double attn_loss(void *vc) {
    attn_ctx *c = vc;
    ob_cpu_attention_forward_f64(c->o, c->att, c->q, c->k, c->v, c->B, c->T, c->nh, c->nkv, c->hd);
    double s = 0;
    for (int i = 0; i < c->B * c->T * c->nh * c->hd; i++)
        s += c->w[i] * c->o[i];
    return s;
}

static void check_attention(int B, int T, int nh, int nkv, int hd, size_t checks) {
    attn_ctx c = {.B = B, .T = T, .nh = nh, .nkv = nkv, .hd = hd};
    size_t nq = (size_t)B * T * nh * hd, nk = (size_t)B * T * nkv * hd;
    c.q = alloc_random(nq, 1.0);
    c.k = alloc_random(nk, 1.0);
    c.v = alloc_random(nk, 1.0);
    c.w = alloc_random(nq, 1.0);
    c.o = malloc(nq * sizeof(double));
    c.att = malloc((size_t)B * nh * T * T * sizeof(double));
    double *dq = malloc(nq * sizeof(double)), *dk = malloc(nk * sizeof(double)), *dv = malloc(nk * sizeof(double));
    double *scratch = malloc((size_t)OB_CPU_ATTENTION_BLOCK * T * sizeof(double));
    attn_loss(&c);
    ob_cpu_attention_backward_f64(dq, dk, dv, scratch, c.w, c.att, c.q, c.k, c.v, B, T, nh, nkv, hd);
    check_fd("attention dq", c.q, nq, dq, attn_loss, &c, checks);
    check_fd("attention dk", c.k, nk, dk, attn_loss, &c, checks);
    check_fd("attention dv", c.v, nk, dv, attn_loss, &c, checks);
    free(c.q), free(c.k), free(c.v), free(c.w), free(c.o), free(c.att), free(dq), free(dk), free(dv), free(scratch);
}

static void test_attention_gqa(void **state) {
    (void)state;
    check_attention(2, 6, 4, 2, 3, 1000);
    /* Longer than two query blocks, the last one partial. */
    check_attention(1, 2 * OB_CPU_ATTENTION_BLOCK + 44, 4, 2, 3, 150);
}

typedef struct {
    double *u, *g, *h, *w;
    size_t n;
    ob_cpu_act act;
} act_ctx;

static double act_loss(void *vc) {
    act_ctx *c = vc;
    ob_cpu_ffn_act_forward_f64(c->h, c->u, c->g, c->n, c->act);
    double s = 0;
    for (size_t i = 0; i < c->n; i++)
        s += c->w[i] * c->h[i];
    return s;
}

static void test_ffn_activations(void **state) {
    (void)state;
    const char *names[] = {"silu", "relu2", "swiglu"};
    for (int a = 0; a < 3; a++) {
        act_ctx c = {.n = 50, .act = (ob_cpu_act)a};
        c.u = alloc_random(50, 1.5);
        c.g = alloc_random(50, 1.5);
        c.w = alloc_random(50, 1.0);
        c.h = malloc(50 * sizeof(double));
        double *du = malloc(50 * sizeof(double)), *dg = calloc(50, sizeof(double));
        ob_cpu_ffn_act_backward_f64(du, dg, c.w, c.u, c.g, 50, c.act);
        check_fd(names[a], c.u, 50, du, act_loss, &c, 50);
        if (c.act == OB_ACT_SWIGLU)
            check_fd("swiglu gate", c.g, 50, dg, act_loss, &c, 50);
        free(c.u), free(c.g), free(c.w), free(c.h), free(du), free(dg);
    }
}

typedef struct {
    double *z, *work;
    int32_t *targets;
    int n, V;
    double eps;
} ce_ctx;

static double ce_loss(void *vc) {
    ce_ctx *c = vc;
    memcpy(c->work, c->z, (size_t)c->n * c->V * sizeof(double));
    return ob_cpu_cross_entropy_f64(c->work, c->targets, c->n, c->V, c->eps, 1, false, NULL);
}

static void test_cross_entropy(void **state) {
    (void)state;
    ce_ctx c = {.n = 4, .V = 9, .eps = 0.1};
    c.z = alloc_random(36, 2.0);
    c.work = malloc(36 * sizeof(double));
    int32_t targets[4] = {0, 8, 3, 3};
    c.targets = targets;
    double *grad = malloc(36 * sizeof(double));
    memcpy(grad, c.z, 36 * sizeof(double));
    double plain = 0;
    ob_cpu_cross_entropy_f64(grad, targets, 4, 9, 0.1, 1, true, &plain);
    check_fd("cross-entropy with label smoothing", c.z, 36, grad, ce_loss, &c, 36);
    free(c.z), free(c.work), free(grad);
}

typedef struct {
    double *w, *wq, *g;
    int rows, cols;
    ob_quant_mode mode;
    bool dynamic;
    double clamp, a;
} soft_ctx;

static double soft_loss(void *vc) {
    soft_ctx *c = vc;
    ob_quant_weight_soft_f64(c->mode, c->dynamic, c->clamp, c->a, c->w, c->rows, c->cols, c->wq, NULL);
    double s = 0;
    for (int i = 0; i < c->rows * c->cols; i++)
        s += c->g[i] * c->wq[i];
    return s;
}

static void test_soft_quantisers(void **state) {
    (void)state;
    struct {
        ob_quant_mode mode;
        bool dynamic;
        const char *name;
    } cases[] = {{OB_MODE_BINARY, true, "soft binary"},
                 {OB_MODE_TERNARY, true, "soft ternary (dynamic threshold)"},
                 {OB_MODE_TERNARY, false, "soft ternary (absmean)"}};
    for (int k = 0; k < 3; k++) {
        for (int sharp = 0; sharp < 2; sharp++) {
            soft_ctx c = {.rows = 6, .cols = 7, .mode = cases[k].mode, .dynamic = cases[k].dynamic};
            c.a = sharp ? 7.5 : 1.0;
            c.w = alloc_random(42, 1.0);
            c.g = alloc_random(42, 1.0);
            c.wq = malloc(42 * sizeof(double));
            c.clamp = 1.6; /* some entries beyond the clamp: their gradient is 0 */
            ob_quant_stats st;
            ob_quant_weight_soft_f64(c.mode, c.dynamic, c.clamp, c.a, c.w, 6, 7, c.wq, &st);
            double *dw = calloc(42, sizeof(double));
            ob_quant_weight_soft_backward_f64(c.mode, c.dynamic, c.clamp, c.a, c.w, 6, 7, &st, c.g, dw);
            check_fd(cases[k].name, c.w, 42, dw, soft_loss, &c, 42);
            free(c.w), free(c.g), free(c.wq), free(dw);
        }
    }
}

/* ---- whole models ----------------------------------------------------------- */

typedef struct {
    ob_model *m;
    ob_cpu_pass_f64 *pass;
    double *params;
    int32_t *inputs, *targets;
    int B, T;
    ob_step_info step;
} model_ctx;

static double model_loss(void *vc) {
    model_ctx *c = vc;
    double loss;
    assert_ok(ob_cpu_pass_run_f64(c->pass, c->params, NULL, c->inputs, c->targets, c->B, c->T, &c->step, 1, &loss,
                                  NULL, NULL));
    return loss;
}

static void tiny_config(ob_config *cfg) {
    ob_config_default(cfg);
    cfg->vocab_size = 13;
    cfg->hidden_size = 12;
    cfg->num_heads = 3;
    cfg->num_kv_heads = 3;
    cfg->num_layers = 2;
    cfg->intermediate_size = 10;
    cfg->max_seq_len = 6;
    cfg->activation_bits = 0;
}

/* Checks every parameter tensor (a sample of entries each) whose gradient is a
 * true derivative in this regime. */
static void check_model(const char *name, const ob_config *cfg, ob_step_info step) {
    model_ctx c = {.B = 2, .T = 5, .step = step};
    assert_ok(ob_model_create(cfg, &c.m));
    ob_model_init(c.m, ob_rng_u64(&rng));
    /* Larger gains and weights than at init make every term of the gradient
     * visible above rounding. */
    c.params = malloc(c.m->num_floats * sizeof(double));
    for (size_t i = 0; i < c.m->num_floats; i++)
        c.params[i] = c.m->weights[i] * 4 + 0.05 * ob_rng_normal(&rng);
    assert_ok(ob_cpu_pass_create_f64(c.m, c.B, c.T, &c.pass));
    c.inputs = malloc(10 * sizeof(int32_t));
    c.targets = malloc(10 * sizeof(int32_t));
    for (int i = 0; i < 10; i++) {
        c.inputs[i] = (int32_t)ob_rng_below(&rng, (uint64_t)cfg->vocab_size);
        c.targets[i] = (int32_t)ob_rng_below(&rng, (uint64_t)cfg->vocab_size);
    }
    double *grads = calloc(c.m->num_floats, sizeof(double));
    double loss;
    assert_ok(ob_cpu_pass_run_f64(c.pass, c.params, grads, c.inputs, c.targets, c.B, c.T, &step, 1, &loss, NULL, NULL));
    assert_true(isfinite(loss));
    for (int i = 0; i < c.m->num_params; i++) {
        const ob_param *p = &c.m->params[i];
        if (step.regime == OB_REGIME_HARD && p->mode != OB_MODE_F16)
            continue;
        if (step.regime == OB_REGIME_SOFT &&
            (p->mode == OB_MODE_EIGHTBIT || p->mode == OB_MODE_FOURBIT)) /* hard even in the soft regime */
            continue;
        char what[200];
        snprintf(what, sizeof what, "%s: %s", name, p->name);
        check_fd(what, c.params + p->offset, p->numel, grads + p->offset, model_loss, &c, 8);
    }
    free(grads), free(c.params), free(c.inputs), free(c.targets);
    ob_cpu_pass_free_f64(c.pass);
    ob_model_free(c.m);
}

static void test_model_full_precision(void **state) {
    (void)state;
    ob_step_info fp = {OB_REGIME_FP, 1, 0, 0.1f};
    ob_config cfg;
    tiny_config(&cfg);
    check_model("defaults (LayerNorm, learned positions, QK-norm, SiLU, tied)", &cfg, fp);
    cfg.use_subln = cfg.use_rope = cfg.use_swiglu = true;
    cfg.num_kv_heads = 1;
    cfg.tie_embeddings = false;
    check_model("RMSNorm, RoPE, SwiGLU, GQA, untied", &cfg, fp);
    cfg.use_qk_norm = cfg.use_residual_scaling = cfg.use_swiglu = false;
    cfg.use_relu2 = true;
    check_model("no QK-norm, no residual scaling, ReLU2", &cfg, fp);
}

static void test_model_soft_regime(void **state) {
    (void)state;
    ob_config cfg;
    tiny_config(&cfg);
    cfg.latent_clamp_max = 0.5; /* some latent weights beyond the clamp */
    ob_step_info soft = {OB_REGIME_SOFT, 2.5f, 0, 0};
    cfg.use_ternary = true;
    check_model("soft ternary, dynamic threshold", &cfg, soft);
    cfg.use_dynamic_threshold = false;
    cfg.use_rope = cfg.use_subln = true;
    soft.label_smoothing = 0.2f;
    check_model("soft ternary, absmean, label smoothing", &cfg, soft);
    cfg.use_ternary = false;
    soft.arenas = 0.3f;
    check_model("soft binary with Arenas", &cfg, soft);
    /* A quantised embedding and head, untied, and per-layer modes. */
    cfg.tie_embeddings = false;
    cfg.has_layer_bit_map = true;
    cfg.embedding_mode = OB_MODE_TERNARY;
    cfg.has_lm_head_mode = true;
    cfg.lm_head_mode = OB_MODE_BINARY;
    cfg.layer_modes[0] = OB_MODE_F16;
    cfg.layer_modes[1] = OB_MODE_TERNARY;
    check_model("layer_bit_map: ternary embedding, binary head, f16 + ternary layers", &cfg, soft);
    cfg.tie_embeddings = true;
    cfg.lm_head_mode = OB_MODE_TERNARY;
    soft.arenas = 0;
    check_model("tied soft-ternary embedding and head", &cfg, soft);
}

static void test_model_hard_regime_unquantised_params(void **state) {
    (void)state;
    ob_config cfg;
    tiny_config(&cfg);
    cfg.use_ternary = true;
    ob_step_info hard = {OB_REGIME_HARD, 8, 0.25f, 0.1f};
    check_model("hard ternary with Arenas: gains and positions", &cfg, hard);
    cfg.has_layer_bit_map = true;
    cfg.layer_modes[0] = OB_MODE_EIGHTBIT;
    cfg.layer_modes[1] = OB_MODE_FOURBIT;
    check_model("hard 8-bit and 4-bit layers: gains, positions, embedding", &cfg, hard);
}

int main(void) {
    ob_rng_seed(&rng, 20261126);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norms),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention_gqa),
        cmocka_unit_test(test_ffn_activations),
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_soft_quantisers),
        cmocka_unit_test(test_model_full_precision),
        cmocka_unit_test(test_model_soft_regime),
        cmocka_unit_test(test_model_hard_regime_unquantised_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
