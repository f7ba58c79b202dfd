/* The trainer end to end on small random data: a stopped and resumed run ends
 * bit-identical to an uninterrupted one, metrics are written, a diverging run
 * stops with a clear error and leaves the last checkpoint intact, a model
 * overfits a small text, and bad device names get clear errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/backend.h"
#include "onebit/data.h"
#include "onebit/json.h"
#include "onebit/train.h"
#include "test_util.h"

static char *make_data(const char *root, int vocab, size_t train_tokens, uint64_t seed) {
    char *dir = ob_path_join(root, "data");
    assert_ok(ob_mkdirs(dir));
    ob_rng rng;
    ob_rng_seed(&rng, seed);
    size_t n = train_tokens;
    int32_t *ids = malloc(n * sizeof *ids);
    /* A learnable pattern with noise: next = (prev * 3 + 1) mod vocab, 20% random. */
    ids[0] = 0;
    for (size_t i = 1; i < n; i++)
        ids[i] = ob_rng_uniform(&rng) < 0.2 ? (int32_t)ob_rng_below(&rng, (uint64_t)vocab)
                                            : (ids[i - 1] * 3 + 1) % vocab;
    char *path = ob_path_join(dir, "t_train_000000.bin");
    assert_ok(ob_shard_write(path, OB_TOKENS_U16, ids, n));
    free(path);
    path = ob_path_join(dir, "t_val_000000.bin");
    assert_ok(ob_shard_write(path, OB_TOKENS_U16, ids, n / 8));
    free(path);
    free(ids);
    return dir;
}

static char *write_config(const char *root, const char *extra) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"vocab_size\": 64, \"hidden_size\": 32, \"num_heads\": 4, \"num_layers\": 2, "
             "\"intermediate_size\": 48, \"max_seq_len\": 16, \"use_ternary\": true, \"use_rope\": true, "
             "\"use_subln\": true, \"arenas_initial\": 0.2, \"arenas_anneal_steps\": 6%s}",
             extra ? extra : "");
    return tu_write_text(root, "config.json", json);
}

static void base_options(ob_train_options *o, const char *config, const char *data, const char *out) {
    ob_train_options_default(o);
    o->config_path = config;
    o->data_dir = data;
    o->output_dir = out;
    o->batch_size = 4;
    o->accumulation_steps = 2;
    o->max_steps = 12;
    o->save_every = 0;
    o->log_every = 1;
    o->eval_every = 4;
    o->eval_batches = 2;
    o->schedule.lr = 3e-3;
    o->schedule.warmup_steps = 3;
    o->schedule.label_smoothing = 0.1f;
    o->threads = 2;
    o->progress = false;
}

static void read_bytes(const char *dir, const char *name, char **data, size_t *size) {
    char *path = ob_path_join(dir, name);
    assert_ok(ob_read_file(path, data, size));
    free(path);
}

static void assert_same_file(const char *dir_a, const char *dir_b, const char *name) {
    char *a, *b;
    size_t na, nb;
    read_bytes(dir_a, name, &a, &na);
    read_bytes(dir_b, name, &b, &nb);
    assert_int_equal(na, nb);
    if (memcmp(a, b, na) != 0)
        fail_msg("%s differs between the uninterrupted and the resumed run", name);
    free(a);
    free(b);
}

/* 12 steps spanning the soft regime (anneal_fraction 0.3 → 3 steps), the
 * switch to hard, Arenas decay and warm-up, with accumulation. */
static void test_resume_is_bit_exact(void **state) {
    (void)state;
    char *root = tu_make_temp_dir();
    char *data = make_data(root, 64, 20000, 1);
    char *config = write_config(root, NULL);
    char *out_a = ob_path_join(root, "a"), *out_b = ob_path_join(root, "b");
    ob_train_options o;
    ob_train_result ra, rb;
    base_options(&o, config, data, out_a);
    assert_ok(ob_train(&o, &ra));
    assert_int_equal(ra.steps, 12);
    assert_false(ra.interrupted);

    base_options(&o, config, data, out_b);
    o.stop_after = 5;
    assert_ok(ob_train(&o, &rb));
    assert_true(rb.interrupted);
    assert_int_equal(rb.steps, 5);
    o.stop_after = 0;
    o.resume = "latest";
    assert_ok(ob_train(&o, &rb));
    assert_int_equal(rb.steps, 12);
    assert_false(rb.interrupted);

    char *ca = ob_path_join(out_a, "checkpoint-000012"), *cb = ob_path_join(out_b, "checkpoint-000012");
    assert_same_file(ca, cb, "model.safetensors");
    assert_same_file(ca, cb, "optimizer.safetensors");
    /* The resumed run's metrics continue the first part's: one train row per step. */
    char *metrics;
    size_t n;
    read_bytes(out_b, "metrics.jsonl", &metrics, &n);
    int train_rows = 0;
    for (char *p = metrics; (p = strstr(p, "\"event\":\"train\"")); p++)
        train_rows++;
    assert_int_equal(train_rows, 12);
    free(metrics);
    free(ca), free(cb), free(out_a), free(out_b), free(config), free(data);
    tu_remove_tree(root);
    free(root);
}

static double last_value(const char *dir, const char *key) {
    char *metrics;
    size_t n;
    read_bytes(dir, "metrics.jsonl", &metrics, &n);
    double v = NAN;
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":", key);
    for (char *p = metrics; (p = strstr(p, needle)); p++)
        v = strtod(p + strlen(needle), NULL);
    free(metrics);
    return v;
}

/* Starts at about ln(vocab) and learns the pattern of the data. */
static void test_learns(void **state) {
    (void)state;
    char *root = tu_make_temp_dir();
    char *data = make_data(root, 64, 30000, 2);
    char *config = write_config(root, NULL);
    char *out = ob_path_join(root, "out");
    ob_train_options o;
    ob_train_result r;
    base_options(&o, config, data, out);
    o.max_steps = 1;
    o.eval_every = 1;
    o.schedule.warmup_steps = 0;
    o.schedule.lr = 1e-9;
    o.schedule.label_smoothing = 0;
    assert_ok(ob_train(&o, &r));
    assert_true(fabs(r.final_val_loss - log(64.0)) < 0.05);
    tu_remove_tree(out);
    base_options(&o, config, data, out);
    o.max_steps = 80;
    o.eval_every = 40;
    o.schedule.lr = 1e-2;
    assert_ok(ob_train(&o, &r));
    assert_true(isfinite(r.final_val_loss));
    if (!(r.final_val_loss < 0.6 * log(64.0)))
        fail_msg("validation loss %.3f after 80 steps (initial %.3f)", r.final_val_loss, log(64.0));
    /* Metrics carry the quantisation statistics of the ternary weights. */
    double zero = last_value(out, "zero_share"), flips = last_value(out, "flip_share");
    assert_true(zero > 0.05 && zero < 0.95);
    assert_true(flips >= 0 && flips < 0.5);
    assert_true(last_value(out, "val_ppl") > 1.0);
    free(out), free(config), free(data);
    tu_remove_tree(root);
    free(root);
}

/* A learning rate that blows the weights up: the run stops with a numerical
 * error and the checkpoint of the last good step is intact. */
static void test_divergence_stops_cleanly(void **state) {
    (void)state;
    char *root = tu_make_temp_dir();
    char *data = make_data(root, 64, 5000, 3);
    char *config = write_config(root, ", \"layer_bit_map\": {\"layer_modes\": [\"f16\", \"f16\"]}");
    char *out = ob_path_join(root, "out");
    ob_train_options o;
    ob_train_result r;
    base_options(&o, config, data, out);
    o.max_steps = 20;
    o.save_every = 1;
    o.eval_every = 0;
    o.grad_clip = 0;
    o.schedule.warmup_steps = 0;
    o.schedule.decay = OB_LR_CONSTANT;
    o.schedule.lr = 1e30;
    assert_fails_with(ob_train(&o, &r), OB_ERR_NUMERIC, "stopping");
    char *latest = ob_path_join(out, "latest");
    char *dir = realpath(latest, NULL);
    assert_non_null(dir);
    ob_config cfg;
    char *cfg_path = ob_path_join(dir, "config.json"), *model_path = ob_path_join(dir, "model.safetensors");
    assert_ok(ob_config_load(cfg_path, &cfg));
    ob_model *m;
    assert_ok(ob_model_create(&cfg, &m));
    assert_ok(ob_model_load(m, m->weights, model_path));
    for (size_t i = 0; i < m->num_floats; i++)
        assert_true(isfinite(m->weights[i]));
    ob_model_free(m);
    ob_config_free(&cfg);
    free(cfg_path), free(model_path), free(latest), free(dir), free(out), free(config), free(data);
    tu_remove_tree(root);
    free(root);
}

/* Device names: a clear error for a malformed one, for a GPU index past the
 * visible GPUs and, on a machine without a GPU (or a build without CUDA), for
 * cuda itself; data-parallel training needs cuda. Nothing is created. */
static void test_device_errors(void **state) {
    (void)state;
    char *root = tu_make_temp_dir();
    char *config = write_config(root, "");
    ob_config cfg;
    assert_ok(ob_config_load(config, &cfg));
    ob_model *m;
    assert_ok(ob_model_create(&cfg, &m));
    ob_backend *b = (ob_backend *)&b; /* not NULL: a failed create must clear it */
    assert_fails_with(ob_backend_create("gpu", m, 2, 8, &b), OB_ERR_INVALID_ARG, "'gpu': expected cpu, cuda or");
    assert_fails_with(ob_backend_create("cuda:x", m, 2, 8, &b), OB_ERR_INVALID_ARG, "'cuda:x': expected cuda or");
    assert_fails_with(ob_backend_create("cuda:", m, 2, 8, &b), OB_ERR_INVALID_ARG, "expected cuda or cuda:N");
    assert_fails_with(ob_backend_create("cuda:-1", m, 2, 8, &b), OB_ERR_INVALID_ARG, "expected cuda or cuda:N");
    assert_fails_with(ob_backend_create("cuda0", m, 2, 8, &b), OB_ERR_INVALID_ARG, "expected cpu, cuda or cuda:N");
    if (ob_cuda_available()) {
        assert_fails_with(ob_backend_create("cuda:255", m, 2, 8, &b), OB_ERR_DEVICE, "GPU(s) are visible");
    } else {
        ob_status st = ob_backend_create("cuda", m, 2, 8, &b);
        assert_true(st == OB_ERR_DEVICE || st == OB_ERR_UNSUPPORTED);
        assert_non_null(strstr(ob_last_error(), "device 'cuda"));
    }
    ob_dist dist = {.rank = 0, .world = 2, .local_rank = 0};
    assert_fails_with(ob_backend_create_dist("cpu", m, 2, 8, &dist, &b), OB_ERR_UNSUPPORTED, "needs --device cuda");
    assert_null(b);
    ob_model_free(m);
    ob_config_free(&cfg);
    free(config);
    tu_remove_tree(root);
    free(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_is_bit_exact),
        cmocka_unit_test(test_learns),
        cmocka_unit_test(test_divergence_stops_cleanly),
        cmocka_unit_test(test_device_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
