/* Sessions beyond one forward: the context is a hard limit (a forward past it
 * fails and changes nothing; under ASan any overrun would abort), sliding the
 * window equals a fresh session on the kept tokens, greedy generation through
 * the KV cache picks the argmax of a from-scratch forward at every step,
 * generation stops or slides at a full context, perplexity scores each token
 * once and agrees with a brute-force computation and with the training loss,
 * and the loader gives clear errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer/session.h"
#include "onebit/backend.h"
#include "onebit/infer.h"
#include "test_util.h"

typedef struct {
    ob_model *m;
    ob_packed_model *pm;
} tiny;

static void make_tiny(tiny *t, uint64_t seed, bool rope) {
    ob_config c;
    ob_config_default(&c);
    c.vocab_size = 61;
    c.hidden_size = 48;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.num_layers = 2;
    c.intermediate_size = 64;
    c.max_seq_len = 24;
    c.use_ternary = true;
    c.use_rope = rope;
    c.use_swiglu = true;
    assert_ok(ob_model_create(&c, &t->m));
    ob_model_init(t->m, seed);
    assert_ok(ob_packed_model_build(t->m, t->m->weights, NULL, &t->pm));
    ob_config_free(&c);
}

static void free_tiny(tiny *t) {
    ob_packed_model_free(t->pm);
    ob_model_free(t->m);
}

static uint64_t seed_now(void) {
    return tu_seed("test_infer_session");
}

static void random_tokens(ob_rng *rng, int32_t *t, int n, int V) {
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)ob_rng_below(rng, (uint64_t)V);
}

static void test_context_limit_and_slide(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, seed_now());
    tiny t;
    make_tiny(&t, ob_rng_u64(&rng), false);
    int V = t.pm->cfg.vocab_size;
    ob_infer_options o = {8, 1, OB_ISA_AUTO};
    ob_infer *s;
    assert_ok(ob_infer_create(t.pm, &o, &s));
    assert_int_equal(ob_infer_context(s), 8);
    int32_t toks[12];
    random_tokens(&rng, toks, 12, V);
    float *a = malloc((size_t)V * sizeof(float)), *b = malloc((size_t)V * sizeof(float));
    assert_ok(ob_infer_forward(s, toks, 6, a, false));
    assert_fails_with(ob_infer_forward(s, toks + 6, 3, b, false), OB_ERR_INVALID_ARG, "context full");
    assert_int_equal(ob_infer_position(s), 6);
    assert_ok(ob_infer_forward(s, toks + 6, 2, a, false));
    assert_int_equal(ob_infer_position(s), 8);
    assert_fails_with(ob_infer_forward(s, toks + 8, 1, b, false), OB_ERR_INVALID_ARG, "context full");
    assert_int_equal(ob_infer_position(s), 8);
    assert_memory_equal(ob_infer_tokens(s), toks, 8 * sizeof(int32_t));
    /* Sliding keeps the last 3 tokens: the same as a fresh session on them. */
    assert_ok(ob_infer_slide(s, 3, a));
    assert_int_equal(ob_infer_position(s), 3);
    ob_infer *fresh;
    assert_ok(ob_infer_create(t.pm, &o, &fresh));
    assert_ok(ob_infer_forward(fresh, toks + 5, 3, b, false));
    assert_memory_equal(a, b, (size_t)V * sizeof(float));
    assert_ok(ob_infer_forward(s, toks + 8, 4, a, false));
    assert_ok(ob_infer_forward(fresh, toks + 8, 4, b, false));
    assert_memory_equal(a, b, (size_t)V * sizeof(float));
    /* Bad inputs. */
    int32_t bad = V;
    ob_infer_reset(s);
    assert_fails_with(ob_infer_forward(s, &bad, 1, a, false), OB_ERR_INVALID_ARG, "outside the vocabulary");
    assert_fails_with(ob_infer_forward(s, toks, 0, a, false), OB_ERR_INVALID_ARG, "0 tokens");
    assert_fails_with(ob_infer_slide(fresh, 9, NULL), OB_ERR_INVALID_ARG, "cannot keep 9");
    ob_infer_options big = {25, 1, OB_ISA_AUTO};
    ob_infer *none;
    assert_fails_with(ob_infer_create(t.pm, &big, &none), OB_ERR_INVALID_ARG, "max_seq_len");
    ob_infer_free(fresh);
    ob_infer_free(s);
    free(a), free(b);
    free_tiny(&t);
}

typedef struct {
    int32_t tokens[64];
    int count;
} collected;

static bool collect(int32_t token, void *user) {
    collected *c = user;
    c->tokens[c->count++] = token;
    return true;
}

static int argmax(const float *z, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (z[i] > z[best])
            best = i;
    return best;
}

static void test_greedy_generation_matches_fresh_forward(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, seed_now());
    tiny t;
    make_tiny(&t, ob_rng_u64(&rng), true);
    int V = t.pm->cfg.vocab_size;
    ob_infer *s;
    ob_infer_options o = {0, 2, OB_ISA_AUTO};
    assert_ok(ob_infer_create(t.pm, &o, &s));
    ob_sampler_params sp;
    ob_sampler_params_default(&sp);
    sp.temperature = 0;
    sp.repetition_penalty = 1;
    ob_sampler *smp;
    assert_ok(ob_sampler_create(&sp, V, &smp));
    int32_t prompt[4];
    random_tokens(&rng, prompt, 4, V);
    collected got = {{0}, 0};
    ob_generate_options go = {10, -1, 0, false};
    ob_generate_result res;
    assert_ok(ob_generate(s, smp, prompt, 4, &go, collect, &got, &res));
    assert_int_equal(res.generated, 10);
    assert_int_equal(got.count, 10);
    assert_int_equal(res.stop, OB_STOP_MAX_TOKENS);
    assert_int_equal(res.last, got.tokens[9]);
    assert_int_equal(ob_infer_position(s), 4 + 9); /* the last token is not run yet */
    /* Each token is the argmax of a fresh forward over everything before it. */
    int32_t seq[32];
    memcpy(seq, prompt, sizeof prompt);
    memcpy(seq + 4, got.tokens, 10 * sizeof(int32_t));
    float *z = malloc((size_t)V * sizeof(float));
    ob_infer *fresh;
    assert_ok(ob_infer_create(t.pm, &o, &fresh));
    for (int i = 0; i < 10; i++) {
        ob_infer_reset(fresh);
        assert_ok(ob_infer_forward(fresh, seq, 4 + i, z, false));
        assert_int_equal(argmax(z, V), got.tokens[i]);
    }
    /* Past the context (24): stop, or slide and go on. */
    ob_infer_reset(s);
    go.max_tokens = 40;
    got.count = 0;
    assert_ok(ob_generate(s, smp, prompt, 4, &go, collect, &got, &res));
    assert_int_equal(res.stop, OB_STOP_CONTEXT);
    assert_int_equal(ob_infer_position(s), 24);
    assert_int_equal(res.generated, 21);
    ob_infer_reset(s);
    go.slide = true;
    got.count = 0;
    assert_ok(ob_generate(s, smp, prompt, 4, &go, collect, &got, &res));
    assert_int_equal(res.generated, 40);
    assert_true(res.slides >= 1);
    assert_true(ob_infer_position(s) <= 24);
    /* EOS stops and is not reported. */
    ob_infer_reset(s);
    go.eos_id = got.tokens[0];
    go.max_tokens = 5;
    got.count = 0;
    assert_ok(ob_generate(s, smp, prompt, 4, &go, collect, &got, &res));
    assert_int_equal(res.stop, OB_STOP_EOS);
    assert_int_equal(res.generated, 0);
    ob_infer_free(fresh);
    ob_infer_free(s);
    ob_sampler_free(smp);
    free(z);
    free_tiny(&t);
}

/* Brute force: for every target, a fresh forward over exactly its window. */
static double brute_force_nll(const ob_packed_model *pm, const int32_t *toks, int n, int window, int stride) {
    int V = pm->cfg.vocab_size;
    ob_infer *s;
    ob_infer_options o = {0, 1, OB_ISA_AUTO};
    assert_ok(ob_infer_create(pm, &o, &s));
    float *z = malloc((size_t)V * sizeof(float));
    double total = 0;
    for (int scored_to = 1; scored_to < n;) {
        int end = scored_to == 1 ? window : scored_to + stride;
        end = end < n ? end : n;
        int begin = end > window ? end - window : 0;
        for (int target = scored_to; target < end; target++) {
            ob_infer_reset(s);
            assert_ok(ob_infer_forward(s, toks + begin, target - begin, z, false));
            double m = z[0], sum = 0;
            for (int v = 1; v < V; v++)
                m = fmax(m, z[v]);
            for (int v = 0; v < V; v++)
                sum += exp(z[v] - m);
            total += m + log(sum) - z[toks[target]];
        }
        scored_to = end;
    }
    free(z);
    ob_infer_free(s);
    return total;
}

static void test_perplexity(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, seed_now());
    tiny t;
    make_tiny(&t, ob_rng_u64(&rng), false);
    int V = t.pm->cfg.vocab_size;
    enum { N = 70 };
    int32_t toks[N];
    random_tokens(&rng, toks, N, V);
    ob_infer *s;
    ob_infer_options o = {0, 2, OB_ISA_AUTO};
    assert_ok(ob_infer_create(t.pm, &o, &s));
    const int windows[][2] = {{24, 12}, {24, 23}, {10, 3}, {24, 0}};
    for (size_t k = 0; k < 4; k++) {
        ob_perplexity_options po = {windows[k][0], windows[k][1], 0, false};
        ob_perplexity_result r;
        assert_ok(ob_perplexity(s, toks, N, &po, &r));
        assert_int_equal(r.tokens_scored, N - 1);
        int stride = windows[k][1] ? windows[k][1] : windows[k][0] / 2;
        double want = brute_force_nll(t.pm, toks, N, windows[k][0], stride);
        assert_true(fabs(r.nll_sum - want) <= 1e-9 * fabs(want));
        assert_true(fabs(r.perplexity - exp(want / (N - 1))) <= 1e-9 * r.perplexity);
    }
    /* One window covering everything is the training loss of that batch
     * (unless an activation sat on a rounding boundary: test_infer_equivalence
     * explains why such a draw is not comparable). */
    ob_perplexity_options po = {24, 12, 23, false};
    ob_perplexity_result r;
    ob_infer_debug_track_margin(s, true);
    assert_ok(ob_perplexity(s, toks, N, &po, &r));
    assert_int_equal(r.tokens_scored, 23);
    bool comparable = ob_infer_debug_min_margin(s) >= 1e-4f;
    ob_infer_debug_track_margin(s, false);
    ob_backend *be;
    assert_ok(ob_backend_create("cpu", t.m, 1, 23, &be));
    assert_ok(be->ops->upload(be, t.m->weights));
    double loss;
    ob_step_info step = ob_step_info_eval();
    assert_ok(be->ops->eval_batch(be, toks, toks + 1, 1, 23, &step, &loss, NULL));
    if (comparable)
        assert_true(fabs(r.mean_nll - loss) <= 1e-4 * loss);
    else
        print_message("near-tie in the activation quantiser: loss comparison skipped\n");
    ob_backend_free(be);
    ob_perplexity_options bad = {30, 0, 0, false};
    assert_fails_with(ob_perplexity(s, toks, N, &bad, &r), OB_ERR_INVALID_ARG, "window 30");
    assert_fails_with(ob_perplexity(s, toks, 1, &po, &r), OB_ERR_INVALID_ARG, "at least 2");
    ob_perplexity_options same = {10, 10, 0, false};
    assert_fails_with(ob_perplexity(s, toks, N, &same, &r), OB_ERR_INVALID_ARG, "stride 10");
    ob_infer_free(s);
    free_tiny(&t);
}

static void test_loader_errors(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    ob_packed_model *pm;
    ob_tokenizer *tok;
    char *missing = ob_path_join(dir, "nope");
    assert_fails_with(ob_infer_open(missing, NULL, NULL, &pm, &tok), OB_ERR_NOT_FOUND, "no such directory");
    assert_fails_with(ob_infer_open(dir, NULL, NULL, &pm, &tok), OB_ERR_NOT_FOUND, "not a checkpoint directory");
    assert_fails_with(ob_infer_open(NULL, NULL, NULL, &pm, &tok), OB_ERR_INVALID_ARG, "--model-dir");
    free(tu_write_text(dir, "config.json", "{\"hidden_size\": 7}"));
    assert_fails_with(ob_infer_open(dir, NULL, NULL, &pm, &tok), OB_ERR_CONFIG, "config.json");
    char *f = tu_write_text(dir, "model.1bit", "1BIT....");
    assert_fails_with(ob_infer_open(NULL, f, NULL, &pm, &tok), OB_ERR_FORMAT, "field 'version'");
    free(f);
    f = tu_write_text(dir, "model.bin", "GGUF....");
    assert_fails_with(ob_infer_open(NULL, f, NULL, &pm, &tok), OB_ERR_FORMAT, "not a .1bit file");
    free(f);
    tu_remove_tree(dir);
    free(dir);
    free(missing);
}

/* A checkpoint written by the model module loads, and its packed weights give
 * the logits of a model packed in memory. */
static void test_checkpoint_round_trip(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, seed_now());
    tiny t;
    make_tiny(&t, ob_rng_u64(&rng), true);
    char *dir = tu_make_temp_dir();
    char *path = ob_path_join(dir, "config.json");
    assert_ok(ob_config_save(&t.m->cfg, path));
    free(path);
    path = ob_path_join(dir, "model.safetensors");
    assert_ok(ob_model_save(t.m, t.m->weights, path, NULL));
    free(path);
    ob_packed_model *pm;
    assert_ok(ob_infer_open(dir, NULL, NULL, &pm, NULL));
    ob_packed_model *again;
    ob_tokenizer *tok;
    assert_fails_with(ob_infer_open(dir, NULL, NULL, &again, &tok), OB_ERR_NOT_FOUND, "tokenizer.json");
    assert_null(again);
    assert_int_equal(pm->weight_bytes, t.pm->weight_bytes);
    int V = pm->cfg.vocab_size;
    int32_t toks[5];
    random_tokens(&rng, toks, 5, V);
    float *a = malloc((size_t)5 * V * sizeof(float)), *b = malloc((size_t)5 * V * sizeof(float));
    ob_infer *sa, *sb;
    assert_ok(ob_infer_create(pm, NULL, &sa));
    assert_ok(ob_infer_create(t.pm, NULL, &sb));
    assert_ok(ob_infer_forward(sa, toks, 5, a, true));
    assert_ok(ob_infer_forward(sb, toks, 5, b, true));
    assert_memory_equal(a, b, (size_t)5 * V * sizeof(float));
    ob_infer_free(sa);
    ob_infer_free(sb);
    ob_packed_model_free(pm);
    free(a), free(b);
    tu_remove_tree(dir);
    free(dir);
    free_tiny(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_context_limit_and_slide),
        cmocka_unit_test(test_greedy_generation_matches_fresh_forward),
        cmocka_unit_test(test_perplexity),
        cmocka_unit_test(test_loader_errors),
        cmocka_unit_test(test_checkpoint_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
