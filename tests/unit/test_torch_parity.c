/* Parity of the CPU backend with the independent PyTorch reference
 * (tests/ref/model_ref.py, float64) over a matrix of configurations that covers
 * every switch of docs/MODEL.md: loss, logits and every gradient within 1e-4
 * relative (per tensor, in the max norm). All cases are written first and the
 * reference runs once over all of them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/backend.h"
#include "onebit/json.h"
#include "onebit/safetensors.h"
#include "test_util.h"

#define TOL 1e-4

typedef struct {
    const char *name;
    void (*tweak)(ob_config *cfg);
    ob_step_info step;
} parity_case;

static void binary_defaults(ob_config *c) { (void)c; }
static void ternary_relu2_rms_rope(ob_config *c) {
    c->use_ternary = c->use_relu2 = c->use_subln = c->use_rope = true;
    c->use_qk_norm = c->use_residual_scaling = false;
    c->tie_embeddings = false;
}
static void ternary_absmean_swiglu_gqa(ob_config *c) {
    c->use_ternary = c->use_swiglu = c->use_subln = c->use_rope = true;
    c->use_dynamic_threshold = false;
    c->num_kv_heads = 2;
}
static void binary_layernorm_gqa1_untied(ob_config *c) {
    c->num_kv_heads = 1;
    c->use_relu2 = true;
    c->tie_embeddings = false;
}
static void ternary_small_clamp(ob_config *c) {
    c->use_ternary = true;
    c->latent_clamp_max = 0.03; /* many latent weights beyond the clamp */
}
static void activation_bits_4(ob_config *c) {
    c->use_ternary = true;
    c->activation_bits = 4;
    c->use_swiglu = true;
}
static void activation_quant_off(ob_config *c) {
    c->activation_bits = 0;
    c->use_rope = true;
}
static void ste_scale_3(ob_config *c) {
    c->use_ternary = true;
    c->ste_scale_factor = 3.0;
}
static void mixed_layer_modes(ob_config *c) {
    c->has_layer_bit_map = true;
    c->tie_embeddings = false;
    c->embedding_mode = OB_MODE_EIGHTBIT;
    c->has_lm_head_mode = true;
    c->lm_head_mode = OB_MODE_FOURBIT;
    c->layer_modes[0] = OB_MODE_F16;
    c->layer_modes[1] = OB_MODE_EIGHTBIT;
}
static void ternary_binary_layers_tied_ternary_embedding(ob_config *c) {
    c->has_layer_bit_map = true;
    c->embedding_mode = OB_MODE_TERNARY;
    c->layer_modes[0] = OB_MODE_BINARY;
    c->layer_modes[1] = OB_MODE_TERNARY;
    c->use_swiglu = true;
}
static void fourbit_layers_binary_head(ob_config *c) {
    c->has_layer_bit_map = true;
    c->tie_embeddings = false;
    c->has_lm_head_mode = true;
    c->lm_head_mode = OB_MODE_BINARY;
    c->layer_modes[0] = OB_MODE_FOURBIT;
    c->layer_modes[1] = OB_MODE_TERNARY;
    c->use_subln = true;
}

#define HARD(smooth, arenas) {OB_REGIME_HARD, 8.0f, arenas, smooth}
#define SOFT(sharp, smooth, arenas) {OB_REGIME_SOFT, sharp, arenas, smooth}
#define FP(smooth) {OB_REGIME_FP, 1.0f, 0.0f, smooth}

static const parity_case cases[] = {
    {"binary, LayerNorm, learned positions, QK-norm, SiLU, tied, hard", binary_defaults, HARD(0, 0)},
    {"binary, hard, label smoothing 0.1", binary_defaults, HARD(0.1f, 0)},
    {"binary, soft a=2", binary_defaults, SOFT(2.0f, 0, 0)},
    {"binary, soft a=7 with Arenas", binary_defaults, SOFT(7.0f, 0, 0.2f)},
    {"binary, hard with Arenas", binary_defaults, HARD(0, 0.3f)},
    {"ternary threshold, ReLU2, RMSNorm, RoPE, no QK-norm, no scaling, untied, hard", ternary_relu2_rms_rope,
     HARD(0, 0)},
    {"ternary threshold, ReLU2, RMSNorm, RoPE, untied, soft", ternary_relu2_rms_rope, SOFT(3.0f, 0.05f, 0)},
    {"ternary absmean, SwiGLU, RMSNorm, RoPE, GQA 4/2, hard", ternary_absmean_swiglu_gqa, HARD(0.1f, 0)},
    {"ternary absmean, SwiGLU, GQA, soft with Arenas", ternary_absmean_swiglu_gqa, SOFT(4.0f, 0, 0.5f)},
    {"binary, LayerNorm, GQA 4/1, ReLU2, untied, hard", binary_layernorm_gqa1_untied, HARD(0, 0)},
    {"binary, GQA 4/1, untied, soft", binary_layernorm_gqa1_untied, SOFT(1.0f, 0.1f, 0)},
    {"ternary, latent clamp 0.03, hard", ternary_small_clamp, HARD(0, 0)},
    {"ternary, latent clamp 0.03, soft with Arenas", ternary_small_clamp, SOFT(5.0f, 0, 0.1f)},
    {"ternary, 4-bit activations, SwiGLU, hard", activation_bits_4, HARD(0, 0)},
    {"binary, activation quantiser off, RoPE, hard", activation_quant_off, HARD(0, 0)},
    {"ternary, ste_scale_factor 3, hard", ste_scale_3, HARD(0, 0)},
    {"layer_bit_map: 8-bit embedding, 4-bit head, f16 + 8-bit layers, hard", mixed_layer_modes, HARD(0.1f, 0.2f)},
    {"layer_bit_map: 8-bit embedding, 4-bit head, soft regime", mixed_layer_modes, SOFT(3.0f, 0, 0)},
    {"layer_bit_map: binary + ternary layers, tied ternary embedding, hard", ternary_binary_layers_tied_ternary_embedding,
     HARD(0, 0)},
    {"layer_bit_map: binary + ternary layers, tied ternary embedding, soft", ternary_binary_layers_tied_ternary_embedding,
     SOFT(2.5f, 0, 0.1f)},
    {"layer_bit_map: 4-bit + ternary layers, binary head, hard", fourbit_layers_binary_head, HARD(0, 0.1f)},
    {"quantisation warm-up (full precision)", ternary_absmean_swiglu_gqa, FP(0.1f)},
};
#define NUM_CASES (sizeof cases / sizeof cases[0])

static void base_config(ob_config *c) {
    ob_config_default(c);
    c->vocab_size = 48;
    c->hidden_size = 32;
    c->num_heads = 4;
    c->num_kv_heads = 4;
    c->num_layers = 2;
    c->intermediate_size = 40;
    c->max_seq_len = 16;
}

enum { B = 2, T = 8 };

static void write_case(const char *dir, const ob_config *cfg, const ob_model *m, const ob_step_info *step,
                       const int32_t *inputs, const int32_t *targets) {
    char *path = ob_path_join(dir, "config.json");
    assert_ok(ob_config_save(cfg, path));
    free(path);
    path = ob_path_join(dir, "model.safetensors");
    assert_ok(ob_model_save(m, m->weights, path, NULL));
    free(path);
    ob_st_writer *w;
    int64_t shape[2] = {B, T};
    assert_ok(ob_st_writer_create(&w));
    assert_ok(ob_st_writer_add(w, "inputs", OB_DTYPE_I32, 2, shape, inputs));
    assert_ok(ob_st_writer_add(w, "targets", OB_DTYPE_I32, 2, shape, targets));
    path = ob_path_join(dir, "batch.safetensors");
    assert_ok(ob_st_writer_write(w, path));
    ob_st_writer_free(w);
    free(path);
    const char *regimes[] = {"fp", "soft", "hard"};
    char json[512];
    snprintf(json, sizeof json,
             "{\"regime\": \"%s\", \"sharpness\": %.9g, \"arenas\": %.9g, \"label_smoothing\": %.9g, \"eval\": false}\n",
             regimes[step->regime], step->sharpness, step->arenas, step->label_smoothing);
    free(tu_write_text(dir, "case.json", json));
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)x[i]));
    return m;
}

/* ‖a − b‖∞ / ‖b‖∞, infinite when either holds a NaN. */
static double tensor_rel_err(const float *a, const float *b, size_t n) {
    double diff = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i]))
            return INFINITY;
        diff = fmax(diff, fabs((double)a[i] - (double)b[i]));
    }
    double scale = max_abs(b, n);
    return diff / (scale > 1e-30 ? scale : 1e-30);
}

static void compare_case(const char *dir, const parity_case *pc, ob_model *m, const int32_t *inputs,
                         const int32_t *targets) {
    ob_backend *be;
    assert_ok(ob_backend_create("cpu", m, B, T, &be));
    double loss;
    assert_ok(be->ops->zero_grad(be));
    assert_ok(be->ops->train_batch(be, inputs, targets, B, T, &pc->step, 1.0f, &loss));
    float *grads = malloc(m->num_floats * sizeof(float));
    assert_ok(be->ops->get_grads(be, grads));
    size_t nlogits = (size_t)B * T * m->cfg.vocab_size;
    float *logits = malloc(nlogits * sizeof(float));
    double plain;
    assert_ok(be->ops->eval_batch(be, inputs, targets, B, T, &pc->step, &plain, logits));

    char *path = ob_path_join(dir, "ref.safetensors");
    ob_st_file *ref;
    assert_ok(ob_st_open(path, &ref));
    free(path);
    const ob_tensor_view *v;
    int64_t one = 1, lshape[3] = {B, T, m->cfg.vocab_size};
    assert_ok(ob_st_require(ref, "loss", OB_DTYPE_F32, 1, &one, &v));
    float ref_loss;
    memcpy(&ref_loss, v->data, sizeof ref_loss);
    double loss_err = fabs(loss - ref_loss) / fabs(ref_loss);
    if (!(loss_err < TOL))
        fail_msg("%s: loss %.8f vs reference %.8f (relative error %.3g)", pc->name, loss, ref_loss, loss_err);
    assert_ok(ob_st_require(ref, "logits", OB_DTYPE_F32, 3, lshape, &v));
    float *ref_logits = malloc(nlogits * sizeof(float));
    assert_ok(ob_tensor_to_f32(v, ref_logits));
    double err = tensor_rel_err(logits, ref_logits, nlogits);
    if (!(err < TOL))
        fail_msg("%s: logits relative error %.3g", pc->name, err);
    float *ref_grad = malloc(m->num_floats * sizeof(float));
    for (int i = 0; i < m->num_params; i++) {
        const ob_param *p = &m->params[i];
        char name[128];
        int64_t shape[2] = {p->rows, p->cols};
        snprintf(name, sizeof name, "grad.%s", p->name);
        assert_ok(ob_st_require(ref, name, OB_DTYPE_F32, p->cols ? 2 : 1, shape, &v));
        assert_ok(ob_tensor_to_f32(v, ref_grad));
        err = tensor_rel_err(grads + p->offset, ref_grad, p->numel);
        if (!(err < TOL))
            fail_msg("%s: gradient of %s: relative error %.3g (reference max |g| %.3g)", pc->name, p->name, err,
                     max_abs(ref_grad, p->numel));
    }
    free(ref_grad), free(ref_logits), free(logits), free(grads);
    ob_st_close(ref);
    ob_backend_free(be);
}

static void test_parity_matrix(void **state) {
    (void)state;
    char *root = tu_make_temp_dir();
    ob_model *models[NUM_CASES];
    int32_t inputs[NUM_CASES][B * T], targets[NUM_CASES][B * T];
    char *dirs[NUM_CASES];
    ob_rng rng;
    ob_rng_seed(&rng, 4242);
    size_t cmd_len = 4096;
    char *cmd = malloc(cmd_len);
    snprintf(cmd, cmd_len, "%s %s/tests/ref/model_ref.py grad", tu_python(), getenv("ONEBIT_SOURCE_DIR"));
    for (size_t k = 0; k < NUM_CASES; k++) {
        ob_config cfg;
        base_config(&cfg);
        cases[k].tweak(&cfg);
        assert_ok(ob_model_create(&cfg, &models[k]));
        ob_model_init(models[k], ob_rng_u64(&rng));
        for (int i = 0; i < B * T; i++) {
            inputs[k][i] = (int32_t)ob_rng_below(&rng, (uint64_t)cfg.vocab_size);
            targets[k][i] = (int32_t)ob_rng_below(&rng, (uint64_t)cfg.vocab_size);
        }
        char name[32];
        snprintf(name, sizeof name, "case%02zu", k);
        dirs[k] = ob_path_join(root, name);
        assert_ok(ob_mkdirs(dirs[k]));
        write_case(dirs[k], &cfg, models[k], &cases[k].step, inputs[k], targets[k]);
        size_t used = strlen(cmd);
        if (used + strlen(dirs[k]) + 2 >= cmd_len)
            cmd = realloc(cmd, cmd_len *= 2);
        snprintf(cmd + used, cmd_len - used, " %s", dirs[k]);
    }
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != 0)
        fail_msg("reference failed (%d): %s", rc, out ? out : "");
    free(out);
    free(cmd);
    for (size_t k = 0; k < NUM_CASES; k++) {
        compare_case(dirs[k], &cases[k], models[k], inputs[k], targets[k]);
        ob_model_free(models[k]);
        free(dirs[k]);
    }
    tu_remove_tree(root);
    free(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parity_matrix)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
