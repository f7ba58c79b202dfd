/* The runtime's logits against the training forward (the CPU backend's
 * eval_batch: hard quantisers, no Arenas) on the same tokens, within 1e-4
 * relative in the max norm, over a matrix of tiny configs covering every layer
 * mode and switch of docs/MODEL.md, for every kernel set this CPU runs (the
 * scalar one always), with one and two threads, by prefill (all positions at
 * once), by decoding one token at a time through the KV cache, and by chunks.
 *
 * The f16 layers: the runtime stores their weights in half precision, so the
 * test rounds those latent weights to half before running both sides (see
 * docs/INFERENCE.md, "Numerics").
 *
 * The activation quantiser rounds x·s to an integer; where x·s lies within
 * float noise of a half-integer, the two implementations (whose sums differ
 * in the last bits) may round differently, which moves a result by a whole
 * quantisation step. The runtime reports the smallest distance of any x·s to
 * a rounding boundary; draws whose distance is below MARGIN (far above the
 * float noise, far below the spacing of codes) are redrawn, so every compared
 * draw exercises the quantiser with the codes guaranteed equal. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer/session.h"
#include "onebit/backend.h"
#include "onebit/infer.h"
#include "config_variants.h"
#include "test_util.h"

#define TOL 1e-4
#define MARGIN 1e-4f
#define MAX_DRAWS 60
enum { MAX_T = 6 };

typedef struct {
    const char *name;
    void (*tweak)(ob_config *cfg);
    int tokens; /* 0: T (fewer for wide layers, whose many activations make near-ties likely) */
} eq_case;

static void activation_quant_off(ob_config *c) {
    c->activation_bits = 0;
    c->use_rope = true;
    c->use_ternary = true;
}
static void residual_scaling_off_silu(ob_config *c) {
    c->use_residual_scaling = false;
    c->use_qk_norm = false;
}
static void all_f16_layers_rope(ob_config *c) {
    c->has_layer_bit_map = true;
    c->layer_modes[0] = OB_MODE_F16;
    c->layer_modes[1] = OB_MODE_F16;
    c->use_rope = true;
    c->use_swiglu = true;
}
static void tied_eightbit_table_ternary_wide(ob_config *c) {
    /* Rows longer than one 256-weight block (two groups plus padding). */
    c->hidden_size = 320;
    c->num_heads = 5;
    c->num_kv_heads = 5;
    c->intermediate_size = 520;
    c->use_ternary = true;
    c->has_layer_bit_map = true;
    c->embedding_mode = OB_MODE_EIGHTBIT;
    c->layer_modes[0] = OB_MODE_TERNARY;
    c->layer_modes[1] = OB_MODE_BINARY;
}
static void fourbit_eightbit_layers_untied_fourbit_head_gqa(ob_config *c) {
    c->has_layer_bit_map = true;
    c->tie_embeddings = false;
    c->has_lm_head_mode = true;
    c->lm_head_mode = OB_MODE_FOURBIT;
    c->layer_modes[0] = OB_MODE_EIGHTBIT;
    c->layer_modes[1] = OB_MODE_FOURBIT;
    c->num_kv_heads = 2;
    c->use_rope = true;
}

static const eq_case cases[] = {
    {"binary, LayerNorm, learned positions, QK-norm, SiLU, tied", cv_binary_defaults, 0},
    {"ternary threshold, ReLU2, RMSNorm, RoPE, no QK-norm, no scaling, untied", cv_ternary_relu2_rms_rope_untied, 0},
    {"ternary absmean, SwiGLU, RMSNorm, RoPE, GQA 4/2", cv_ternary_absmean_swiglu_gqa, 0},
    {"binary, LayerNorm, GQA 4/1, ReLU2, untied", cv_binary_layernorm_gqa1_untied, 0},
    {"ternary, latent clamp 0.03", cv_ternary_small_clamp, 0},
    {"ternary, 4-bit activations, SwiGLU", cv_activation_bits_4, 0},
    {"ternary, activation quantiser off, RoPE", activation_quant_off, 0},
    {"binary, no residual scaling, no QK-norm", residual_scaling_off_silu, 0},
    {"8-bit embedding, 4-bit head, f16 + 8-bit layers", cv_mixed_layer_modes, 0},
    {"binary + ternary layers, tied ternary embedding", cv_binary_ternary_layers_tied_ternary_embedding, 0},
    {"4-bit + ternary layers, binary head, RMSNorm", cv_fourbit_layers_binary_head, 0},
    {"f16 layers, RoPE, SwiGLU", all_f16_layers_rope, 0},
    {"tied 8-bit table, ternary + binary layers, H 320, F 520", tied_eightbit_table_ternary_wide, 2},
    {"8-bit + 4-bit layers, 4-bit head, GQA, RoPE", fourbit_eightbit_layers_untied_fourbit_head_gqa, 0},
};
#define NUM_CASES (sizeof cases / sizeof cases[0])

/* Latent weights of f16-mode layers rounded to half (what the runtime stores). */
static void round_f16_layers(ob_model *m) {
    for (int i = 0; i < m->num_params; i++) {
        const ob_param *p = &m->params[i];
        if (p->kind != OB_PARAM_LINEAR || p->mode != OB_MODE_F16)
            continue;
        for (size_t k = 0; k < p->numel; k++)
            m->weights[p->offset + k] = ob_f16_to_f32(ob_f32_to_f16(m->weights[p->offset + k]));
    }
}

static double max_rel_err(const float *a, const float *b, size_t n) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return INFINITY;
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return diff / (scale > 1e-30 ? scale : 1e-30);
}

typedef enum { BY_PREFILL, BY_DECODE, BY_CHUNKS } run_kind;
static const char *const run_names[] = {"prefill", "decode", "two chunks"};

/* The runtime's logits [T][V] for the tokens; returns its smallest margin. */
static float run_runtime(const ob_packed_model *pm, ob_kernel_isa isa, int threads, run_kind kind,
                         const int32_t *tokens, int T, float *logits) {
    ob_infer_options o = {0, threads, isa};
    ob_infer *s;
    assert_ok(ob_infer_create(pm, &o, &s));
    ob_infer_debug_track_margin(s, true);
    int V = pm->cfg.vocab_size;
    switch (kind) {
    case BY_PREFILL: assert_ok(ob_infer_forward(s, tokens, T, logits, true)); break;
    case BY_DECODE:
        for (int t = 0; t < T; t++)
            assert_ok(ob_infer_forward(s, tokens + t, 1, logits + (size_t)t * V, false));
        break;
    case BY_CHUNKS:
        assert_ok(ob_infer_forward(s, tokens, (T + 1) / 2, logits, true));
        assert_ok(ob_infer_forward(s, tokens + (T + 1) / 2, T / 2, logits + (size_t)((T + 1) / 2) * V, true));
        break;
    }
    assert_int_equal(ob_infer_position(s), T);
    float margin = ob_infer_debug_min_margin(s);
    ob_infer_free(s);
    return margin;
}

static int check_case(const eq_case *ec, ob_rng *rng, int *redraws) {
    ob_config cfg;
    cv_base_config(&cfg);
    ec->tweak(&cfg);
    int T = ec->tokens ? ec->tokens : MAX_T;
    assert_ok(ob_config_validate(&cfg, ec->name));
    ob_model *m;
    assert_ok(ob_model_create(&cfg, &m));
    ob_model_init(m, ob_rng_u64(rng));
    round_f16_layers(m);
    ob_packed_model *pm;
    assert_ok(ob_packed_model_build(m, m->weights, NULL, &pm));
    ob_backend *be;
    assert_ok(ob_backend_create("cpu", m, 1, T, &be));
    assert_ok(be->ops->upload(be, m->weights));
    int V = cfg.vocab_size, failures = 0;
    float *ref = malloc((size_t)T * V * sizeof(float)), *got = malloc((size_t)T * V * sizeof(float));
    int32_t tokens[MAX_T], targets[MAX_T];
    ob_step_info step = ob_step_info_eval();
    const ob_kernel_isa isas[] = {OB_ISA_SCALAR, OB_ISA_AVX2, OB_ISA_AVXVNNI};
    for (int draw = 0;; draw++) {
        if (draw == MAX_DRAWS)
            fail_msg("%s: every one of %d draws had an activation within %g of a rounding boundary", ec->name,
                     MAX_DRAWS, (double)MARGIN);
        for (int t = 0; t < T; t++) {
            tokens[t] = (int32_t)ob_rng_below(rng, (uint64_t)V);
            targets[t] = (int32_t)ob_rng_below(rng, (uint64_t)V);
        }
        double loss;
        assert_ok(be->ops->eval_batch(be, tokens, targets, 1, T, &step, &loss, ref));
        bool near_tie = false;
        int compared = 0;
        for (size_t i = 0; i < sizeof isas / sizeof *isas && !near_tie; i++) {
            if (!ob_kernel_isa_supported(isas[i]))
                continue;
            for (int kind = BY_PREFILL; kind <= BY_CHUNKS && !near_tie; kind++) {
                int threads = 1 + (kind + (int)i) % 2;
                float margin = run_runtime(pm, isas[i], threads, (run_kind)kind, tokens, T, got);
                if (cfg.activation_bits && margin < MARGIN) {
                    near_tie = true;
                    break;
                }
                double err = max_rel_err(got, ref, (size_t)T * V);
                if (getenv("EQ_EXPLORE"))
                    print_message("EXPLORE %d %s %d margin %.3g err %.3g\n", (int)(&cases[0] - ec), ob_kernel_isa_name(isas[i]), kind, (double)margin, err);
                if (!(err < TOL)) {
                    print_message("FAIL %s: %s kernels, %s, %d threads: logits relative error %.3g\n", ec->name,
                                  ob_kernel_isa_name(isas[i]), run_names[kind], threads, err);
                    failures++;
                }
                compared++;
            }
        }
        if (!near_tie) {
            assert_true(compared >= 3);
            break;
        }
        (*redraws)++;
    }
    free(ref);
    free(got);
    ob_backend_free(be);
    ob_packed_model_free(pm);
    ob_model_free(m);
    ob_config_free(&cfg);
    return failures;
}

static void test_equivalence_matrix(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, tu_seed("test_infer_equivalence"));
    int failures = 0, redraws = 0;
    for (size_t k = 0; k < NUM_CASES; k++)
        failures += check_case(&cases[k], &rng, &redraws);
    print_message("%zu cases, %d draws redrawn for a near-tie in the activation quantiser\n", NUM_CASES, redraws);
    if (failures)
        fail_msg("%d mismatches between the runtime and the training forward", failures);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_equivalence_matrix)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
