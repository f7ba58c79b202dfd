/* Parity of the CPU backend with the independent PyTorch reference
 * (tests/ref/model_ref.py, float64) over a matrix of configurations that covers
 * every switch of docs/MODEL.md: loss, logits and every gradient within 1e-4
 * relative (per tensor, in the max norm). All cases are written first and the
 * reference runs once over all of them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_model.h"
#include "onebit/backend.h"
#include "onebit/json.h"
#include "onebit/safetensors.h"
#include "config_variants.h"
#include "test_util.h"

#define TOL 1e-4

typedef struct {
    const char *name;
    void (*tweak)(ob_config *cfg);
    ob_step_info step;
} parity_case;

static void activation_quant_off(ob_config *c) {
    c->activation_bits = 0;
    c->use_rope = true;
}
static void ste_scale_3(ob_config *c) {
    c->use_ternary = true;
    c->ste_scale_factor = 3.0;
}

#define HARD(smooth, arenas) {OB_REGIME_HARD, 8.0f, arenas, smooth}
#define SOFT(sharp, smooth, arenas) {OB_REGIME_SOFT, sharp, arenas, smooth}
#define FP(smooth) {OB_REGIME_FP, 1.0f, 0.0f, smooth}

static const parity_case cases[] = {
    {"binary, LayerNorm, learned positions, QK-norm, SiLU, tied, hard", cv_binary_defaults, HARD(0, 0)},
    {"binary, hard, label smoothing 0.1", cv_binary_defaults, HARD(0.1f, 0)},
    {"binary, soft a=2", cv_binary_defaults, SOFT(2.0f, 0, 0)},
    {"binary, soft a=7 with Arenas", cv_binary_defaults, SOFT(7.0f, 0, 0.2f)},
    {"binary, hard with Arenas", cv_binary_defaults, HARD(0, 0.3f)},
    {"ternary threshold, ReLU2, RMSNorm, RoPE, no QK-norm, no scaling, untied, hard", cv_ternary_relu2_rms_rope_untied,
     HARD(0, 0)},
    {"ternary threshold, ReLU2, RMSNorm, RoPE, untied, soft", cv_ternary_relu2_rms_rope_untied, SOFT(3.0f, 0.05f, 0)},
    {"ternary absmean, SwiGLU, RMSNorm, RoPE, GQA 4/2, hard", cv_ternary_absmean_swiglu_gqa, HARD(0.1f, 0)},
    {"ternary absmean, SwiGLU, GQA, soft with Arenas", cv_ternary_absmean_swiglu_gqa, SOFT(4.0f, 0, 0.5f)},
    {"binary, LayerNorm, GQA 4/1, ReLU2, untied, hard", cv_binary_layernorm_gqa1_untied, HARD(0, 0)},
    {"binary, GQA 4/1, untied, soft", cv_binary_layernorm_gqa1_untied, SOFT(1.0f, 0.1f, 0)},
    {"ternary, latent clamp 0.03, hard", cv_ternary_small_clamp, HARD(0, 0)},
    {"ternary, latent clamp 0.03, soft with Arenas", cv_ternary_small_clamp, SOFT(5.0f, 0, 0.1f)},
    {"ternary, 4-bit activations, SwiGLU, hard", cv_activation_bits_4, HARD(0, 0)},
    {"binary, activation quantiser off, RoPE, hard", activation_quant_off, HARD(0, 0)},
    {"ternary, ste_scale_factor 3, hard", ste_scale_3, HARD(0, 0)},
    {"layer_bit_map: 8-bit embedding, 4-bit head, f16 + 8-bit layers, hard", cv_mixed_layer_modes, HARD(0.1f, 0.2f)},
    {"layer_bit_map: 8-bit embedding, 4-bit head, soft regime", cv_mixed_layer_modes, SOFT(3.0f, 0, 0)},
    {"layer_bit_map: binary + ternary layers, tied ternary embedding, hard", cv_binary_ternary_layers_tied_ternary_embedding,
     HARD(0, 0)},
    {"layer_bit_map: binary + ternary layers, tied ternary embedding, soft", cv_binary_ternary_layers_tied_ternary_embedding,
     SOFT(2.5f, 0, 0.1f)},
    {"layer_bit_map: 4-bit + ternary layers, binary head, hard", cv_fourbit_layers_binary_head, HARD(0, 0.1f)},
    {"quantisation warm-up (full precision)", cv_ternary_absmean_swiglu_gqa, FP(0.1f)},
};
#define NUM_CASES (sizeof cases / sizeof cases[0])

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

/* What one implementation computed for a case. */
typedef struct {
    double loss;
    double *logits; /* [B, T, V] */
    double *grads;  /* model layout */
} results;

static void free_results(results *r) {
    free(r->logits);
    free(r->grads);
}

/* The library's float CPU backend. */
static void run_float(ob_model *m, const ob_step_info *step, const int32_t *inputs, const int32_t *targets,
                      results *out) {
    ob_backend *be;
    assert_ok(ob_backend_create("cpu", m, B, T, &be));
    assert_ok(be->ops->zero_grad(be));
    assert_ok(be->ops->train_batch(be, inputs, targets, B, T, step, 1.0f, &out->loss));
    size_t nl = (size_t)B * T * m->cfg.vocab_size;
    float *grads = malloc(m->num_floats * sizeof(float)), *logits = malloc(nl * sizeof(float));
    assert_ok(be->ops->get_grads(be, grads));
    double plain;
    assert_ok(be->ops->eval_batch(be, inputs, targets, B, T, step, &plain, logits));
    out->grads = malloc(m->num_floats * sizeof(double));
    out->logits = malloc(nl * sizeof(double));
    for (size_t i = 0; i < m->num_floats; i++)
        out->grads[i] = grads[i];
    for (size_t i = 0; i < nl; i++)
        out->logits[i] = logits[i];
    free(grads), free(logits);
    ob_backend_free(be);
}

/* The same source compiled with real = double. */
static void run_double(ob_model *m, const ob_step_info *step, const int32_t *inputs, const int32_t *targets,
                       results *out) {
    ob_cpu_pass_f64 *pass;
    assert_ok(ob_cpu_pass_create_f64(m, B, T, &pass));
    double *params = malloc(m->num_floats * sizeof(double));
    for (size_t i = 0; i < m->num_floats; i++)
        params[i] = m->weights[i];
    out->grads = calloc(m->num_floats, sizeof(double));
    out->logits = malloc((size_t)B * T * m->cfg.vocab_size * sizeof(double));
    assert_ok(ob_cpu_pass_run_f64(pass, params, out->grads, inputs, targets, B, T, step, 1, &out->loss, NULL,
                                  out->logits));
    free(params);
    ob_cpu_pass_free_f64(pass);
}

/* ‖a − b‖∞ / ‖b‖∞, infinite when either holds a NaN. */
static double rel_err(const double *a, const float *b, size_t n, double *scale) {
    double diff = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i]))
            return INFINITY;
        diff = fmax(diff, fabs(a[i] - (double)b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    *scale = m;
    return diff / (m > 1e-30 ? m : 1e-30);
}

/* Returns the number of mismatches, each reported. */
static int compare(const char *dir, const char *what, const char *name, const ob_model *m, const results *r,
                   double tol) {
    char *path = ob_path_join(dir, "ref.safetensors");
    ob_st_file *ref;
    assert_ok(ob_st_open(path, &ref));
    free(path);
    int failures = 0;
    const ob_tensor_view *v;
    int64_t one = 1, lshape[3] = {B, T, m->cfg.vocab_size};
    assert_ok(ob_st_require(ref, "loss", OB_DTYPE_F32, 1, &one, &v));
    float ref_loss;
    memcpy(&ref_loss, v->data, sizeof ref_loss);
    /* The reference's outputs are float32: its own rounding bounds the tolerance. */
    double floor_tol = tol > 2e-7 ? tol : 2e-7;
    double err = fabs(r->loss - ref_loss) / fabs(ref_loss), scale;
    if (!(err < floor_tol)) {
        print_message("FAIL %s (%s): loss %.9g vs reference %.9g (relative error %.3g)\n", name, what, r->loss,
                      ref_loss, err);
        failures++;
    }
    size_t nl = (size_t)B * T * m->cfg.vocab_size;
    float *buf = malloc((nl > m->num_floats ? nl : m->num_floats) * sizeof(float));
    assert_ok(ob_st_require(ref, "logits", OB_DTYPE_F32, 3, lshape, &v));
    assert_ok(ob_tensor_to_f32(v, buf));
    if (!((err = rel_err(r->logits, buf, nl, &scale)) < floor_tol)) {
        print_message("FAIL %s (%s): logits relative error %.3g\n", name, what, err);
        failures++;
    }
    for (int i = 0; i < m->num_params; i++) {
        const ob_param *p = &m->params[i];
        char gname[128];
        int64_t shape[2] = {p->rows, p->cols};
        snprintf(gname, sizeof gname, "grad.%s", p->name);
        assert_ok(ob_st_require(ref, gname, OB_DTYPE_F32, p->cols ? 2 : 1, shape, &v));
        assert_ok(ob_tensor_to_f32(v, buf));
        /* Float32 reference values: allow a few ulps of the tensor's largest entry. */
        if (!((err = rel_err(r->grads + p->offset, buf, p->numel, &scale)) < floor_tol * 4)) {
            print_message("FAIL %s (%s): gradient of %s: relative error %.3g (max |g| %.3g)\n", name, what, p->name,
                          err, scale);
            failures++;
        }
    }
    free(buf);
    ob_st_close(ref);
    return failures;
}

typedef struct {
    ob_model *model;
    char *dir;
    int32_t inputs[B * T], targets[B * T];
} prepared;

static void prepare(prepared *c, const ob_config *cfg, const parity_case *pc, ob_rng *rng, const char *root,
                    const char *name, char **cmd, size_t *cmd_len) {
    assert_ok(ob_model_create(cfg, &c->model));
    ob_model_init(c->model, ob_rng_u64(rng));
    for (int i = 0; i < B * T; i++) {
        c->inputs[i] = (int32_t)ob_rng_below(rng, (uint64_t)cfg->vocab_size);
        c->targets[i] = (int32_t)ob_rng_below(rng, (uint64_t)cfg->vocab_size);
    }
    c->dir = ob_path_join(root, name);
    assert_ok(ob_mkdirs(c->dir));
    write_case(c->dir, cfg, c->model, &pc->step, c->inputs, c->targets);
    size_t used = strlen(*cmd);
    if (used + strlen(c->dir) + 2 >= *cmd_len)
        *cmd = realloc(*cmd, *cmd_len *= 2);
    snprintf(*cmd + used, *cmd_len - used, " %s", c->dir);
}

/* Every case runs twice against the reference: the double-precision build of the
 * CPU code with the case as given (tight tolerance: this proves the numerics of
 * every switch), and the library's float build at 1e-4. The float run turns the
 * activation quantiser off: its rint() of values that differ in the last bits
 * between two implementations can land on either side of a rounding boundary
 * (rarely with 8 bits, often with 4), which moves a result by a whole
 * quantisation step; the double run covers the quantiser itself. */
static void test_parity_matrix(void **state) {
    (void)state;
    char *root = tu_make_temp_dir();
    prepared exact[NUM_CASES], fp32[NUM_CASES];
    ob_rng rng;
    ob_rng_seed(&rng, 4242);
    size_t cmd_len = 8192;
    char *cmd = malloc(cmd_len);
    snprintf(cmd, cmd_len, "%s %s/tests/ref/model_ref.py grad", tu_python(), getenv("ONEBIT_SOURCE_DIR"));
    for (size_t k = 0; k < NUM_CASES; k++) {
        ob_config cfg;
        cv_base_config(&cfg);
        cases[k].tweak(&cfg);
        char name[32];
        snprintf(name, sizeof name, "case%02zu", k);
        prepare(&exact[k], &cfg, &cases[k], &rng, root, name, &cmd, &cmd_len);
        cfg.activation_bits = 0;
        snprintf(name, sizeof name, "case%02zu-float", k);
        prepare(&fp32[k], &cfg, &cases[k], &rng, root, name, &cmd, &cmd_len);
    }
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != 0)
        fail_msg("reference failed (%d): %s", rc, out ? out : "");
    free(out);
    free(cmd);
    int failures = 0;
    for (size_t k = 0; k < NUM_CASES; k++) {
        results r;
        run_double(exact[k].model, &cases[k].step, exact[k].inputs, exact[k].targets, &r);
        failures += compare(exact[k].dir, "double", cases[k].name, exact[k].model, &r, 1e-9);
        free_results(&r);
        run_float(fp32[k].model, &cases[k].step, fp32[k].inputs, fp32[k].targets, &r);
        failures += compare(fp32[k].dir, "float", cases[k].name, fp32[k].model, &r, TOL);
        free_results(&r);
        ob_model_free(exact[k].model);
        ob_model_free(fp32[k].model);
        free(exact[k].dir);
        free(fp32[k].dir);
    }
    tu_remove_tree(root);
    free(root);
    if (failures)
        fail_msg("%d mismatches with the PyTorch reference", failures);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parity_matrix)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
