/* The embedded runtime (embedded/onebit_embedded.c, built for the host)
 * against the full runtime with its scalar kernels: on tiny models of every
 * layer mode, table precision and switch the embedded runtime supports, with
 * fresh random weights and tokens each run, the logits of every position are
 * equal bit for bit, and generation (greedy and seeded sampling with top-k,
 * top-p, min-p and the repetition penalty, over vocabularies below and above
 * the sampler's 256-id first sort) gives the same tokens. Also: the shared
 * elementary functions (embedded/onebit_math.h) against libm, the arena
 * bound and the session's refusals, and the models the exporter refuses. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "format/embedded_model.h"
#include "onebit/infer.h"
#include "onebit_math.h"
#include "test_util.h"

static uint64_t seed_base;

/* ---- onebit_math.h against libm -------------------------------------------------------- */

static double rand_double(ob_rng *r) { return (double)(ob_rng_u64(r) >> 11) * 0x1.0p-53; }

static void test_sqrt_is_correctly_rounded(void **state) {
    (void)state;
    ob_rng r;
    ob_rng_seed(&r, seed_base + 1);
    for (int i = 0; i < 2000000; i++) {
        uint64_t bits = ob_rng_u64(&r) & 0x7fffffffffffffffull;
        if (i % 4 == 0)
            bits &= 0x000fffffffffffffull; /* subnormals */
        double x;
        memcpy(&x, &bits, 8);
        if (isnan(x))
            continue;
        double a = obe_sqrt(x), b = sqrt(x);
        if (memcmp(&a, &b, 8) != 0)
            fail_msg("obe_sqrt(%a) = %a, sqrt gives %a", x, a, b);
    }
    assert_true(obe_sqrt(-1.0) != obe_sqrt(-1.0));
    assert_true(obe_sqrt(INFINITY) == INFINITY);
    assert_true(obe_sqrt(0.0) == 0.0 && signbit(obe_sqrt(-0.0)));
}

static void test_rintf_and_half(void **state) {
    (void)state;
    ob_rng r;
    ob_rng_seed(&r, seed_base + 2);
    for (int i = 0; i < 2000000; i++) {
        float x = i % 2 ? (float)((rand_double(&r) - 0.5) * 600.0) : (float)(ob_rng_below(&r, 2001)) / 2.0f - 500.0f;
        float a = obe_rintf(x), b = rintf(x);
        if (memcmp(&a, &b, 4) != 0)
            fail_msg("obe_rintf(%a) = %a, rintf gives %a", (double)x, (double)a, (double)b);
    }
    for (uint32_t h = 0; h < 65536; h++) {
        float a = obe_f16_to_f32((uint16_t)h), b = ob_f16_to_f32((uint16_t)h);
        if (memcmp(&a, &b, 4) != 0)
            fail_msg("half 0x%04x: %a vs %a", h, (double)a, (double)b);
    }
}

static void test_exp_accuracy(void **state) {
    (void)state;
    ob_rng r;
    ob_rng_seed(&r, seed_base + 3);
    double worst = 0;
    for (int i = 0; i < 1000000; i++) {
        double x = (rand_double(&r) - 0.5) * 1400.0;
        long double ref = expl((long double)x);
        double got = obe_exp(x);
        double ulp = nextafter((double)ref, INFINITY) - (double)ref;
        if (ref > 0 && isfinite((double)ref) && (double)ref > 0x1p-1022) {
            double e = (double)fabsl((long double)got - ref) / ulp;
            worst = e > worst ? e : worst;
        }
    }
    if (worst > 2.0)
        fail_msg("obe_exp is %.2f ulp off", worst);
    /* obe_expf: the correctly rounded value, bar a rare tie-break (none seen in 3e8 inputs). */
    int off = 0;
    for (int i = 0; i < 1000000; i++) {
        float x = (float)((rand_double(&r) - 0.7) * 200.0);
        float a = obe_expf(x), b = (float)expl((long double)x);
        off += a != b;
    }
    assert_true(off <= 2);
    assert_true(obe_exp(710.0) == INFINITY && obe_exp(-746.0) == 0.0 && obe_exp(0.0) == 1.0);
    assert_true(obe_exp(-740.0) > 0 && obe_exp(-740.0) == (double)expl(-740.0L));
}

/* ---- the runtimes side by side --------------------------------------------------------------- */

typedef struct {
    const char *name;
    void (*tweak)(ob_config *c);
    ob_table_precision table; /* for full-precision embedding/head modes */
} emb_case;

static void base(ob_config *c) {
    ob_config_default(c);
    c->vocab_size = 300;
    c->hidden_size = 64;
    c->num_heads = 4;
    c->num_kv_heads = 4;
    c->num_layers = 2;
    c->intermediate_size = 96;
    c->max_seq_len = 40;
}

static void ternary_rms_rope_swiglu_gqa(ob_config *c) {
    c->use_ternary = c->use_subln = c->use_rope = c->use_swiglu = true;
    c->num_kv_heads = 2;
}
static void binary_layernorm_positions_relu2_untied(ob_config *c) {
    c->use_relu2 = true;
    c->tie_embeddings = false;
    c->use_qk_norm = false;
    c->use_residual_scaling = false;
}
static void ternary_absmean_silu_4bit_acts(ob_config *c) {
    c->use_ternary = true;
    c->use_dynamic_threshold = false;
    c->activation_bits = 4;
    c->vocab_size = 700; /* above 256: the sampler's sorted prefix grows */
}
static void fourbit_eightbit_layers_untied_binary_head(ob_config *c) {
    c->has_layer_bit_map = true;
    c->tie_embeddings = false;
    c->has_lm_head_mode = true;
    c->lm_head_mode = OB_MODE_BINARY;
    c->layer_modes[0] = OB_MODE_FOURBIT;
    c->layer_modes[1] = OB_MODE_EIGHTBIT;
    c->use_rope = true;
    c->num_kv_heads = 1;
}
static void tied_ternary_embedding_wide(ob_config *c) {
    c->has_layer_bit_map = true;
    c->embedding_mode = OB_MODE_TERNARY;
    c->layer_modes[0] = OB_MODE_BINARY;
    c->layer_modes[1] = OB_MODE_TERNARY;
    c->hidden_size = 320; /* rows of two 256-weight blocks with padding */
    c->num_heads = 5;
    c->num_kv_heads = 5;
    c->intermediate_size = 520;
    c->use_swiglu = true;
}
static void eightbit_embedding_fourbit_head(ob_config *c) {
    c->has_layer_bit_map = true;
    c->tie_embeddings = false;
    c->embedding_mode = OB_MODE_EIGHTBIT;
    c->has_lm_head_mode = true;
    c->lm_head_mode = OB_MODE_FOURBIT;
    c->layer_modes[0] = OB_MODE_TERNARY;
    c->layer_modes[1] = OB_MODE_TERNARY;
    c->activation_bits = 6;
}

static const emb_case cases[] = {
    {"ternary, RMSNorm, RoPE, SwiGLU, GQA 4/2, tied f32 table", ternary_rms_rope_swiglu_gqa, OB_TABLE_F32},
    {"binary, LayerNorm, positions, ReLU2, untied, no QK-norm/scaling, f16 tables",
     binary_layernorm_positions_relu2_untied, OB_TABLE_F16},
    {"ternary absmean, SiLU, 4-bit activations, vocab 700, int8 table", ternary_absmean_silu_4bit_acts, OB_TABLE_I8},
    {"fourbit + eightbit layers, binary head, int4 table, GQA 4/1, RoPE", fourbit_eightbit_layers_untied_binary_head,
     OB_TABLE_I4},
    {"tied ternary embedding, binary + ternary layers, H 320, F 520", tied_ternary_embedding_wide, OB_TABLE_F32},
    {"8-bit embedding, 4-bit head, 6-bit activations", eightbit_embedding_fourbit_head, OB_TABLE_F32},
};
#define NUM_CASES (sizeof cases / sizeof cases[0])

typedef struct {
    ob_model *m;
    ob_packed_model *pm;
    ob_embedded_model em;
    uint8_t *arena;
    size_t arena_bytes;
} pair;

static void pair_make(pair *p, const emb_case *c, uint64_t seed) {
    ob_config cfg;
    base(&cfg);
    c->tweak(&cfg);
    assert_ok(ob_config_validate(&cfg, c->name));
    assert_ok(ob_model_create(&cfg, &p->m));
    ob_model_init(p->m, seed);
    /* Trained gains are not 1: draw them, so that every multiplication by a gain counts. */
    ob_rng r;
    ob_rng_seed(&r, seed ^ 0xabcdef);
    for (int i = 0; i < p->m->num_params; i++) {
        const ob_param *q = &p->m->params[i];
        if (q->kind == OB_PARAM_NORM || q->kind == OB_PARAM_QK_NORM)
            for (size_t k = 0; k < q->numel; k++)
                p->m->weights[q->offset + k] = (float)(1.0 + 0.3 * ob_rng_normal(&r));
    }
    ob_pack_options po = {c->table, c->table};
    assert_ok(ob_packed_model_build(p->m, p->m->weights, &po, &p->pm));
    assert_ok(ob_embedded_model_build(p->pm, NULL, &p->em));
    p->arena_bytes = obe_arena_bytes(&p->em.model, cfg.max_seq_len);
    assert_true(p->arena_bytes > 0);
    const obe_model *em = &p->em.model;
    size_t bound = OBE_ARENA_BYTES(em->vocab_size, em->hidden_size, em->intermediate_size, em->num_layers,
                                   em->num_kv_heads * (em->hidden_size / em->num_heads), cfg.max_seq_len);
    if (p->arena_bytes > bound)
        fail_msg("%s: the arena needs %zu bytes, OBE_ARENA_BYTES says %zu", c->name, p->arena_bytes, bound);
    p->arena = malloc(p->arena_bytes + 8);
    assert_non_null(p->arena);
    ob_config_free(&cfg);
}

static void pair_free(pair *p) {
    free(p->arena);
    ob_embedded_model_free(&p->em);
    ob_packed_model_free(p->pm);
    ob_model_free(p->m);
}

static obe_session *embedded_session(pair *p, int ctx) {
    obe_session *s;
    /* An arena at an odd address: the session aligns its parts itself. */
    int st = obe_session_init(&s, &p->em.model, ctx, p->arena + 3, p->arena_bytes);
    if (st)
        fail_msg("obe_session_init: %s", obe_status_name(st));
    return s;
}

static void test_logits_bit_identical(void **state) {
    (void)state;
    for (size_t c = 0; c < NUM_CASES; c++) {
        pair p;
        pair_make(&p, &cases[c], seed_base + 100 + c);
        const ob_config *cfg = &p.pm->cfg;
        int T = cfg->max_seq_len, V = cfg->vocab_size;
        ob_rng r;
        ob_rng_seed(&r, seed_base + 200 + c);
        int32_t *tok = malloc((size_t)T * sizeof *tok);
        float *full = malloc((size_t)T * V * sizeof(float));
        for (int t = 0; t < T; t++)
            tok[t] = (int32_t)ob_rng_below(&r, (uint64_t)V);
        ob_infer_options io = {0, 1, OB_ISA_SCALAR};
        ob_infer *s;
        assert_ok(ob_infer_create(p.pm, &io, &s));
        assert_ok(ob_infer_forward(s, tok, T, full, true));
        obe_session *e = embedded_session(&p, T);
        for (int t = 0; t < T; t++) {
            const float *lg;
            int st = obe_forward(e, tok[t], 1, &lg);
            if (st)
                fail_msg("%s: obe_forward: %s", cases[c].name, obe_status_name(st));
            for (int v = 0; v < V; v++)
                if (memcmp(&lg[v], &full[(size_t)t * V + v], 4) != 0)
                    fail_msg("%s: position %d, logit %d: embedded %a, full runtime %a", cases[c].name, t, v,
                             (double)lg[v], (double)full[(size_t)t * V + v]);
        }
        int st = obe_forward(e, 0, 0, NULL);
        assert_int_equal(st, OBE_ERR_CONTEXT);
        ob_infer_free(s);
        free(tok);
        free(full);
        pair_free(&p);
    }
}

typedef struct {
    int32_t ids[64];
    int n;
} collected;

static bool collect_full(int32_t t, void *u) {
    collected *c = u;
    c->ids[c->n++] = t;
    return true;
}

static int collect_embedded(int32_t t, void *u) { return collect_full(t, u); }

static void test_generation_same_tokens(void **state) {
    (void)state;
    const ob_sampler_params settings[] = {
        {0.0, 40, 0.9, 0.0, 1.1, 64, 1},   /* greedy after the penalty */
        {0.8, 40, 0.9, 0.0, 1.1, 64, 2},   /* onebit generate's defaults */
        {1.5, 0, 0.97, 0.0, 1.3, 8, 3},    /* top-p over the whole vocabulary */
        {1.0, 0, 1.0, 0.02, 1.0, 0, 4},    /* min-p alone */
        {2.0, 0, 1.0, 0.0, 1.0, 0, 5},     /* plain softmax */
        {0.7, 5, 0.5, 0.1, 1.2, 0, 6},     /* every filter */
    };
    int draws = 0;
    for (size_t c = 0; c < NUM_CASES; c++) {
        pair p;
        pair_make(&p, &cases[c], seed_base + 300 + c);
        const ob_config *cfg = &p.pm->cfg;
        int V = cfg->vocab_size;
        for (size_t k = 0; k < sizeof settings / sizeof *settings; k++) {
            ob_sampler_params sp = settings[k];
            sp.seed = seed_base + 1000 * c + k;
            ob_rng r;
            ob_rng_seed(&r, sp.seed ^ 77);
            int32_t prompt[6];
            for (int i = 0; i < 6; i++)
                prompt[i] = (int32_t)ob_rng_below(&r, (uint64_t)V);
            int limit = V - (int)(k % 3) * 7; /* a tokenizer smaller than the vocabulary */
            int eos = k == 2 ? (int)ob_rng_below(&r, (uint64_t)V) : -1;
            int max_tokens = cfg->max_seq_len - 6 + 2; /* runs into the end of the context */
            ob_infer_options io = {0, 1, OB_ISA_SCALAR};
            ob_infer *s;
            ob_sampler *smp;
            assert_ok(ob_infer_create(p.pm, &io, &s));
            assert_ok(ob_sampler_create(&sp, V, &smp));
            ob_generate_options go = {max_tokens, eos, limit, false};
            ob_generate_result res;
            collected full = {{0}, 0}, emb = {{0}, 0};
            assert_ok(ob_generate(s, smp, prompt, 6, &go, collect_full, &full, &res));
            obe_session *e = embedded_session(&p, cfg->max_seq_len);
            obe_sampler_params ep = {sp.temperature, sp.top_k, sp.top_p, sp.min_p, sp.repetition_penalty,
                                     sp.repetition_window, sp.seed};
            assert_int_equal(obe_sampler_set(e, &ep), OBE_OK);
            obe_generate_options eo = {max_tokens, eos, limit};
            int32_t generated, stop;
            int st = obe_generate(e, prompt, 6, &eo, collect_embedded, &emb, &generated, &stop);
            if (st)
                fail_msg("%s: obe_generate: %s", cases[c].name, obe_status_name(st));
            if (full.n != emb.n || memcmp(full.ids, emb.ids, (size_t)full.n * sizeof(int32_t)) != 0)
                fail_msg("%s, sampler setting %zu: %d tokens from the full runtime, %d embedded, first difference at "
                         "%d",
                         cases[c].name, k, full.n, emb.n,
                         (int)(full.n < emb.n ? full.n : emb.n));
            assert_int_equal(generated, res.generated);
            assert_int_equal(stop, (int)res.stop);
            draws += full.n;
            ob_sampler_free(smp);
            ob_infer_free(s);
        }
        pair_free(&p);
    }
    assert_true(draws > 100);
}

/* ---- arena and refusals ------------------------------------------------------------------------ */

static void test_session_refusals(void **state) {
    (void)state;
    pair p;
    pair_make(&p, &cases[0], seed_base + 7);
    obe_session *s;
    const obe_model *m = &p.em.model;
    size_t need = obe_arena_bytes(m, 8);
    assert_true(need > 0 && need < p.arena_bytes);
    assert_int_equal(obe_session_init(&s, m, 8, p.arena, need - 1), OBE_ERR_ARENA);
    assert_int_equal(obe_session_init(&s, m, 0, p.arena, p.arena_bytes), OBE_ERR_ARG);
    assert_int_equal(obe_session_init(&s, m, m->max_seq_len + 1, p.arena, p.arena_bytes), OBE_ERR_ARG);
    obe_model bad = *m;
    bad.layout_version = OBE_MODEL_VERSION + 1;
    assert_int_equal(obe_session_init(&s, &bad, 8, p.arena, p.arena_bytes), OBE_ERR_MODEL);
    bad = *m;
    bad.head.row_bytes++;
    assert_int_equal(obe_session_init(&s, &bad, 8, p.arena, p.arena_bytes), OBE_ERR_MODEL);
    assert_int_equal(obe_session_init(&s, m, 8, p.arena, need), OBE_OK);
    assert_int_equal(obe_forward(s, m->vocab_size, 1, NULL), OBE_ERR_ARG);
    assert_int_equal(obe_forward(s, -1, 1, NULL), OBE_ERR_ARG);
    obe_sampler_params sp;
    obe_sampler_params_default(&sp);
    sp.top_p = 0;
    assert_int_equal(obe_sampler_set(s, &sp), OBE_ERR_ARG);
    /* A prompt longer than the context. */
    int32_t prompt[9] = {0};
    obe_generate_options o = {4, -1, 0};
    assert_int_equal(obe_generate(s, prompt, 9, &o, NULL, NULL, NULL, NULL), OBE_ERR_CONTEXT);
    pair_free(&p);
}

static void test_unsupported_models(void **state) {
    (void)state;
    ob_config c;
    base(&c);
    c.has_layer_bit_map = true;
    c.layer_modes[0] = OB_MODE_TERNARY;
    c.layer_modes[1] = OB_MODE_F16;
    const char *why = ob_embedded_unsupported(&c);
    assert_non_null(why);
    assert_non_null(strstr(why, "layer 1 is f16"));
    base(&c);
    c.activation_bits = 0;
    assert_non_null(strstr(ob_embedded_unsupported(&c), "activation_bits"));
    base(&c);
    assert_null(ob_embedded_unsupported(&c));
    ob_model *m;
    ob_packed_model *pm;
    c.activation_bits = 0;
    assert_ok(ob_model_create(&c, &m));
    ob_model_init(m, 1);
    assert_ok(ob_packed_model_build(m, m->weights, NULL, &pm));
    ob_embedded_model em;
    assert_fails_with(ob_embedded_model_build(pm, NULL, &em), OB_ERR_UNSUPPORTED, "activation_bits is 0");
    ob_packed_model_free(pm);
    ob_model_free(m);
}

int main(void) {
    seed_base = tu_seed("test_embedded");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqrt_is_correctly_rounded), cmocka_unit_test(test_rintf_and_half),
        cmocka_unit_test(test_exp_accuracy),              cmocka_unit_test(test_logits_bit_identical),
        cmocka_unit_test(test_generation_same_tokens),    cmocka_unit_test(test_session_refusals),
        cmocka_unit_test(test_unsupported_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
