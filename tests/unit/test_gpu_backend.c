/* The CUDA backend against the CPU reference on whole models: loss, logits and
 * every gradient over a matrix of configurations (bf16 bounds), AdamW steps,
 * bit-for-bit repeatability, training steps replayed from a CUDA graph, the
 * gradient norm under the clamp mask, and a GPU training run stopped and
 * resumed that ends bit-identical to an uninterrupted one. Skipped (exit 77)
 * without a GPU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/backend.h"
#include "onebit/data.h"
#include "onebit/train.h"
#include "test_util.h"

static ob_rng rng;

typedef struct {
    const char *name;
    void (*tweak)(ob_config *c);
    ob_step_info step;
} gpu_case;

static void defaults(ob_config *c) { (void)c; }
static void ternary_swiglu_rope_gqa(ob_config *c) {
    c->use_ternary = c->use_swiglu = c->use_rope = c->use_subln = true;
    c->num_kv_heads = 2;
    c->use_dynamic_threshold = false;
}
static void ternary_relu2_untied_head64(ob_config *c) {
    c->use_ternary = c->use_relu2 = true;
    c->tie_embeddings = false;
    c->hidden_size = 128; /* head_dim 64: the tensor-core attention */
    c->num_heads = 2;
    c->num_kv_heads = 1;
}
static void mixed_modes(ob_config *c) {
    c->has_layer_bit_map = true;
    c->tie_embeddings = false;
    c->embedding_mode = OB_MODE_EIGHTBIT;
    c->has_lm_head_mode = true;
    c->lm_head_mode = OB_MODE_TERNARY;
    c->layer_modes[0] = OB_MODE_FOURBIT;
    c->layer_modes[1] = OB_MODE_BINARY;
    c->arenas_initial = 0.2;
    c->has_arenas = true;
}
static void no_qk_no_scaling(ob_config *c) {
    c->use_qk_norm = c->use_residual_scaling = false;
    c->use_ternary = true;
    c->activation_bits = 0;
}

static const gpu_case cases[] = {
    {"binary defaults, hard", defaults, {OB_REGIME_HARD, 8, 0, 0.1f}},
    {"binary defaults, soft", defaults, {OB_REGIME_SOFT, 3, 0, 0}},
    {"ternary absmean, SwiGLU, RoPE, GQA, hard", ternary_swiglu_rope_gqa, {OB_REGIME_HARD, 8, 0, 0}},
    {"ternary absmean, SwiGLU, RoPE, GQA, soft", ternary_swiglu_rope_gqa, {OB_REGIME_SOFT, 5, 0, 0.1f}},
    {"ternary, ReLU2, untied, head_dim 64, hard", ternary_relu2_untied_head64, {OB_REGIME_HARD, 8, 0, 0}},
    {"mixed modes with Arenas, hard", mixed_modes, {OB_REGIME_HARD, 8, 0.2f, 0}},
    {"mixed modes with Arenas, soft", mixed_modes, {OB_REGIME_SOFT, 2, 0.1f, 0}},
    {"mixed modes, full precision", mixed_modes, {OB_REGIME_FP, 1, 0, 0}},
    {"no QK-norm, no scaling, no activation quantiser", no_qk_no_scaling, {OB_REGIME_HARD, 8, 0, 0}},
};

static void base_config(ob_config *c) {
    ob_config_default(c);
    c->vocab_size = 500;
    c->hidden_size = 64;
    c->num_heads = 4;
    c->num_kv_heads = 4;
    c->num_layers = 2;
    c->intermediate_size = 96;
    c->max_seq_len = 80;
}

/* ‖a − b‖₂ / ‖b‖₂. */
static double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-30);
}

static void compare_case(const gpu_case *gc) {
    ob_config cfg;
    base_config(&cfg);
    gc->tweak(&cfg);
    ob_model *m;
    assert_ok(ob_model_create(&cfg, &m));
    ob_model_init(m, ob_rng_u64(&rng));
    int B = 3, T = 70, N = B * T, V = cfg.vocab_size;
    int32_t *in = malloc(N * sizeof *in), *tg = malloc(N * sizeof *tg);
    for (int i = 0; i < N; i++) {
        in[i] = (int32_t)ob_rng_below(&rng, (uint64_t)V);
        tg[i] = (int32_t)ob_rng_below(&rng, (uint64_t)V);
    }
    ob_backend *cpu, *gpu;
    assert_ok(ob_backend_create("cpu", m, B, T, &cpu));
    assert_ok(ob_backend_create("cuda", m, B, T, &gpu));
    double lc, lg;
    assert_ok(cpu->ops->train_batch(cpu, in, tg, B, T, &gc->step, 1.0f, &lc));
    assert_ok(gpu->ops->train_batch(gpu, in, tg, B, T, &gc->step, 1.0f, &lg));
    float *gc_ = malloc(m->num_floats * sizeof(float)), *gg = malloc(m->num_floats * sizeof(float));
    float *logc = malloc((size_t)N * V * sizeof(float)), *logg = malloc((size_t)N * V * sizeof(float));
    assert_ok(cpu->ops->get_grads(cpu, gc_));
    assert_ok(gpu->ops->get_grads(gpu, gg));
    double pc, pg;
    assert_ok(cpu->ops->eval_batch(cpu, in, tg, B, T, &gc->step, &pc, logc));
    assert_ok(gpu->ops->eval_batch(gpu, in, tg, B, T, &gc->step, &pg, logg));
    print_message("%s: loss cpu %.6f gpu %.6f\n", gc->name, lc, lg);
    if (!(fabs(lc - lg) <= 1e-2 * fabs(lc)))
        fail_msg("%s: loss %.6f on the GPU vs %.6f on the CPU", gc->name, lg, lc);
    double e = rel_l2(logg, logc, (size_t)N * V);
    if (!(e <= 2e-2))
        fail_msg("%s: logits relative error %.3g", gc->name, e);
    for (int i = 0; i < m->num_params; i++) {
        const ob_param *p = &m->params[i];
        e = rel_l2(gg + p->offset, gc_ + p->offset, p->numel);
        if (!(e <= 5e-2))
            fail_msg("%s: gradient of %s: relative error %.3g", gc->name, p->name, e);
    }
    /* One optimizer step on both: parameters stay within bf16 bounds. */
    ob_adamw opt = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, 1.0f};
    assert_ok(cpu->ops->adamw(cpu, &opt));
    assert_ok(gpu->ops->adamw(gpu, &opt));
    assert_ok(cpu->ops->download(cpu, gc_));
    assert_ok(gpu->ops->download(gpu, gg));
    e = rel_l2(gg, gc_, m->num_floats);
    if (!(e <= 1e-2))
        fail_msg("%s: parameters after one AdamW step: relative error %.3g", gc->name, e);
    free(gc_), free(gg), free(logc), free(logg), free(in), free(tg);
    ob_backend_free(cpu);
    ob_backend_free(gpu);
    ob_model_free(m);
}

static void test_matches_cpu(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        compare_case(&cases[k]);
}

/* The ternary SwiGLU RoPE GQA model of the whole-model tests, and n random
 * tokens and targets from its vocabulary. */
static ob_model *small_model(ob_config *cfg, uint64_t seed) {
    base_config(cfg);
    ternary_swiglu_rope_gqa(cfg);
    ob_model *m;
    assert_ok(ob_model_create(cfg, &m));
    ob_model_init(m, seed);
    return m;
}

static void random_tokens(int32_t *in, int32_t *tg, int n) {
    for (int i = 0; i < n; i++) {
        in[i] = (int32_t)ob_rng_below(&rng, 500);
        tg[i] = (int32_t)ob_rng_below(&rng, 500);
    }
}

static void test_repeatable(void **state) {
    (void)state;
    ob_config cfg;
    ob_model *m = small_model(&cfg, 5);
    int B = 2, T = 64, N = B * T;
    int32_t *in = malloc(N * sizeof *in), *tg = malloc(N * sizeof *tg);
    random_tokens(in, tg, N);
    float *g1 = malloc(m->num_floats * sizeof(float)), *g2 = malloc(m->num_floats * sizeof(float));
    ob_step_info step = {OB_REGIME_SOFT, 4, 0, 0.1f};
    for (int run = 0; run < 2; run++) {
        ob_backend *gpu;
        assert_ok(ob_backend_create("cuda", m, B, T, &gpu));
        double l;
        assert_ok(gpu->ops->train_batch(gpu, in, tg, B, T, &step, 1.0f, &l));
        assert_ok(gpu->ops->get_grads(gpu, run ? g2 : g1));
        ob_backend_free(gpu);
    }
    if (memcmp(g1, g2, m->num_floats * sizeof(float)) != 0)
        fail_msg("two identical GPU passes gave different gradients");
    free(g1), free(g2), free(in), free(tg);
    ob_model_free(m);
}

static int recordings;
static void count_recordings(ob_log_level level, const char *message, void *user) {
    (void)level, (void)user;
    recordings += strstr(message, "recorded as a CUDA graph") != NULL;
}

/* Training steps of `micro` micro-batches, new tokens each, recorded as CUDA
 * graphs at the second step (one a micro-batch's gradient buffer) and
 * replayed from the third, end bit-identical to the same steps without
 * graphs (ONEBIT_CUDA_GRAPH=0): losses, gradient norms, parameters. */
static void graph_replay(int micro) {
    ob_config cfg;
    ob_model *m = small_model(&cfg, 7);
    enum { B = 2, T = 64, N = B * T, STEPS = 5 };
    int batches = STEPS * micro;
    int32_t *in = malloc(batches * N * sizeof *in), *tg = malloc(batches * N * sizeof *tg);
    random_tokens(in, tg, batches * N);
    ob_step_info step = {OB_REGIME_HARD, 8, 0, 0.1f};
    float *w[2] = {malloc(m->num_floats * sizeof(float)), malloc(m->num_floats * sizeof(float))};
    double loss[2][STEPS], norm[2][STEPS];
    ob_log_level level = ob_log_get_level();
    for (int run = 0; run < 2; run++) {
        if (run == 1)
            setenv("ONEBIT_CUDA_GRAPH", "0", 1);
        recordings = 0;
        ob_log_set_sink(count_recordings, NULL);
        ob_log_set_level(OB_LOG_DEBUG);
        ob_backend *gpu;
        assert_ok(ob_backend_create("cuda", m, B, T, &gpu));
        for (int k = 0; k < STEPS; k++) {
            ob_adamw opt = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, k + 1, 1.0f};
            assert_ok(gpu->ops->zero_grad(gpu));
            for (int u = 0; u < micro; u++) {
                size_t at = (size_t)(k * micro + u) * N;
                assert_ok(gpu->ops->train_batch(gpu, in + at, tg + at, B, T, &step, 1.0f / micro, &loss[run][k]));
            }
            assert_ok(gpu->ops->grad_norm(gpu, &norm[run][k]));
            assert_ok(gpu->ops->adamw(gpu, &opt));
        }
        assert_ok(gpu->ops->download(gpu, w[run]));
        ob_backend_free(gpu);
        ob_log_set_sink(NULL, NULL);
        ob_log_set_level(level);
        unsetenv("ONEBIT_CUDA_GRAPH");
        assert_int_equal(recordings, run == 0 ? micro : 0);
    }
    for (int k = 0; k < STEPS; k++)
        if (loss[0][k] != loss[1][k] || norm[0][k] != norm[1][k])
            fail_msg("%d micro-batches, step %d: loss %.9g, gradient norm %.9g with graphs; %.9g, %.9g without", micro,
                     k + 1, loss[0][k], norm[0][k], loss[1][k], norm[1][k]);
    if (memcmp(w[0], w[1], m->num_floats * sizeof(float)) != 0)
        fail_msg("%d micro-batches: parameters after %d steps differ with and without graphs", micro, STEPS);
    free(w[0]), free(w[1]), free(in), free(tg);
    ob_model_free(m);
}

static void test_graph_replay(void **state) {
    (void)state;
    graph_replay(1);
    graph_replay(2); /* gradient accumulation: the micro-batches' two keys alternate */
}

/* The gradient norm is that of the gradients a pass leaves, whose entries of
 * latent weights beyond the clamp (inside and outside the layers) the pass
 * zeroes; after one micro-batch and after a second added to it. */
static void test_grad_norm(void **state) {
    (void)state;
    ob_config cfg;
    ob_model *m = small_model(&cfg, 11);
    size_t beyond = 0; /* a weight of layer 0's first quantised matrix put beyond the clamp */
    for (int i = 0; i < m->num_params; i++) {
        const ob_param *p = &m->params[i];
        if (p->cols == 0 || p->layer > 0)
            continue;
        for (size_t j = 0; j < p->numel; j += 37)
            m->weights[p->offset + j] = (float)(j % 2 ? 2 : -2) * (float)cfg.latent_clamp_max;
        if (p->layer == 0 && p->mode != OB_MODE_F16 && !beyond)
            beyond = p->offset;
    }
    assert_true(beyond > 0);
    enum { B = 2, T = 64, N = B * T };
    int32_t in[2 * N], tg[2 * N];
    random_tokens(in, tg, 2 * N);
    ob_step_info step = {OB_REGIME_HARD, 8, 0, 0.1f};
    float *g = malloc(m->num_floats * sizeof(float));
    ob_backend *gpu;
    assert_ok(ob_backend_create("cuda", m, B, T, &gpu));
    assert_ok(gpu->ops->zero_grad(gpu));
    for (int micro = 0; micro < 2; micro++) {
        double loss, norm, sq = 0;
        assert_ok(gpu->ops->train_batch(gpu, in + micro * N, tg + micro * N, B, T, &step, 1.0f, &loss));
        assert_ok(gpu->ops->grad_norm(gpu, &norm));
        assert_ok(gpu->ops->get_grads(gpu, g));
        for (size_t i = 0; i < m->num_floats; i++)
            sq += (double)g[i] * g[i];
        if (g[beyond] != 0.0f)
            fail_msg("the gradient of a weight beyond the clamp is %g, not 0", g[beyond]);
        if (!(fabs(norm - sqrt(sq)) <= 1e-9 * sqrt(sq)))
            fail_msg("micro-batch %d: gradient norm %.12g from the backend, %.12g from its gradients", micro + 1, norm,
                     sqrt(sq));
    }
    ob_backend_free(gpu);
    free(g);
    ob_model_free(m);
}

/* A checkpoint of a CPU run resumes on the GPU; a GPU run stopped and resumed
 * ends bit-identical to an uninterrupted GPU run. */
static void test_gpu_resume(void **state) {
    (void)state;
    char *root = tu_make_temp_dir();
    char *data = ob_path_join(root, "data");
    assert_ok(ob_mkdirs(data));
    int32_t *ids = malloc(20000 * sizeof *ids);
    for (int i = 0; i < 20000; i++)
        ids[i] = (int32_t)ob_rng_below(&rng, 500);
    char *shard = ob_path_join(data, "t_train_000000.bin");
    assert_ok(ob_shard_write(shard, OB_TOKENS_U16, ids, 20000));
    char *config = tu_write_text(root, "config.json",
                                 "{\"vocab_size\": 500, \"hidden_size\": 64, \"num_heads\": 4, \"num_layers\": 2, "
                                 "\"intermediate_size\": 96, \"max_seq_len\": 32, \"use_ternary\": true}");
    char *out_a = ob_path_join(root, "a"), *out_b = ob_path_join(root, "b");
    ob_train_options o;
    ob_train_result r;
    const char *outs[2] = {out_a, out_b};
    for (int k = 0; k < 2; k++) {
        ob_train_options_default(&o);
        o.config_path = config;
        o.data_dir = data;
        o.output_dir = outs[k];
        o.device = "cuda";
        o.batch_size = 4;
        o.max_steps = 10;
        o.eval_every = 0;
        o.log_every = 1;
        o.save_every = 0;
        o.progress = false;
        o.stop_after = k == 1 ? 4 : 0;
        assert_ok(ob_train(&o, &r));
        if (k == 1) {
            assert_true(r.interrupted);
            o.stop_after = 0;
            o.resume = "latest";
            assert_ok(ob_train(&o, &r));
        }
        assert_int_equal(r.steps, 10);
    }
    char *fa = ob_path_join(out_a, "checkpoint-000010/model.safetensors");
    char *fb = ob_path_join(out_b, "checkpoint-000010/model.safetensors");
    char *a, *b;
    size_t na, nb;
    assert_ok(ob_read_file(fa, &a, &na));
    assert_ok(ob_read_file(fb, &b, &nb));
    assert_int_equal(na, nb);
    if (memcmp(a, b, na) != 0)
        fail_msg("the resumed GPU run differs from the uninterrupted one");
    free(a), free(b), free(fa), free(fb);
    /* The CPU continues the GPU's checkpoint (formats are the same). */
    o.device = "cpu";
    o.max_steps = 12;
    assert_ok(ob_train(&o, &r));
    assert_int_equal(r.steps, 12);
    free(out_a), free(out_b), free(config), free(shard), free(data), free(ids);
    tu_remove_tree(root);
    free(root);
}

int main(void) {
    if (!ob_cuda_available()) {
        printf("no CUDA GPU visible: skipped\n");
        return 77;
    }
    ob_rng_seed(&rng, 99);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_cpu), cmocka_unit_test(test_repeatable), cmocka_unit_test(test_graph_replay),
        cmocka_unit_test(test_grad_norm),   cmocka_unit_test(test_gpu_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
