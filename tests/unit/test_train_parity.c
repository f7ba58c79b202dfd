/* 50 optimizer steps of the trainer against the PyTorch reference trainer
 * (tests/ref/model_ref.py train): the same initial weights and batches, AdamW
 * with decoupled decay, clipping, the latent clamp, warm-up then cosine,
 * accumulation, label smoothing, the soft-to-hard switch and Arenas. The loss of
 * every step agrees within 1e-3 (relative), and so do learning rates and
 * gradient norms. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/data.h"
#include "onebit/json.h"
#include "onebit/safetensors.h"
#include "onebit/train.h"
#include "test_util.h"

enum { STEPS = 50, ACCUM = 2, B = 4, T = 16, VOCAB = 64 };
static const uint64_t SEED = 2026;

static void write_batches(const char *dir, const char *data_dir) {
    ob_dataset *ds;
    ob_batch_source *src;
    assert_ok(ob_dataset_open_split(data_dir, "train", &ds));
    /* The trainer draws its batches from seed + 1 (src/train/trainer.c). */
    assert_ok(ob_batch_source_random(ds, SEED + 1, 0, 1, &src));
    size_t n = (size_t)STEPS * ACCUM * B * T;
    int32_t *in = malloc(n * sizeof *in), *tg = malloc(n * sizeof *tg);
    for (int k = 0; k < STEPS * ACCUM; k++)
        assert_ok(ob_batch_source_next(src, B, T, in + (size_t)k * B * T, tg + (size_t)k * B * T, NULL));
    ob_st_writer *w;
    int64_t shape[3] = {STEPS * ACCUM, B, T};
    assert_ok(ob_st_writer_create(&w));
    assert_ok(ob_st_writer_add(w, "inputs", OB_DTYPE_I32, 3, shape, in));
    assert_ok(ob_st_writer_add(w, "targets", OB_DTYPE_I32, 3, shape, tg));
    char *path = ob_path_join(dir, "batches.safetensors");
    assert_ok(ob_st_writer_write(w, path));
    ob_st_writer_free(w);
    free(path), free(in), free(tg);
    ob_batch_source_free(src);
    ob_dataset_free(ds);
}

static double value_of(const char *line, const char *key) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":", key);
    const char *p = strstr(line, needle);
    return p ? strtod(p + strlen(needle), NULL) : NAN;
}

static void test_fifty_steps(void **state) {
    (void)state;
    char *root = tu_make_temp_dir();
    char *data = ob_path_join(root, "data");
    assert_ok(ob_mkdirs(data));
    ob_rng rng;
    ob_rng_seed(&rng, 77);
    int32_t *ids = malloc(8000 * sizeof *ids);
    ids[0] = 0;
    for (int i = 1; i < 8000; i++) /* a learnable pattern with noise */
        ids[i] = ob_rng_uniform(&rng) < 0.3 ? (int32_t)ob_rng_below(&rng, VOCAB) : (ids[i - 1] * 5 + 3) % VOCAB;
    char *shard = ob_path_join(data, "t_train_000000.bin");
    assert_ok(ob_shard_write(shard, OB_TOKENS_U16, ids, 8000));
    /* Soft for 0.2·50 = 10 steps (an integer, so both sides switch at the same
     * step), Arenas fading over 20. The activation quantiser is off: a value that
     * rounds differently in float and double changes a whole quantisation step,
     * and fifty steps of training would amplify it (the double-precision parity
     * of test_torch_parity covers the quantiser). */
    const char *cfg_text =
        "{\"vocab_size\": 64, \"hidden_size\": 32, \"num_heads\": 4, \"num_kv_heads\": 2, \"num_layers\": 2, "
        "\"intermediate_size\": 48, \"max_seq_len\": 16, \"use_ternary\": true, \"use_swiglu\": true, "
        "\"use_rope\": true, \"use_subln\": true, \"anneal_fraction\": 0.2, \"activation_bits\": 0, "
        "\"latent_clamp_max\": 0.06, \"arenas_initial\": 0.3, \"arenas_anneal_steps\": 20}";
    char *config = tu_write_text(root, "config.json", cfg_text);
    char *out = ob_path_join(root, "out");
    ob_train_options o;
    ob_train_options_default(&o);
    o.config_path = config;
    o.data_dir = data;
    o.output_dir = out;
    o.batch_size = B;
    o.seq_len = T;
    o.accumulation_steps = ACCUM;
    o.max_steps = STEPS;
    o.log_every = 1;
    o.eval_every = 0;
    o.save_every = 0;
    o.seed = SEED;
    o.progress = false;
    o.threads = 1;
    o.grad_clip = 0.5f;
    o.schedule.lr = 1e-2;
    o.schedule.lr_min = 1e-3;
    o.schedule.warmup_steps = 5;
    o.schedule.weight_decay = 0.1;
    o.schedule.label_smoothing = 0.1f;
    ob_train_result r;
    assert_ok(ob_train(&o, &r));
    assert_int_equal(r.steps, STEPS);

    /* The same run for the reference: initial weights, batches, options. */
    char *ref = ob_path_join(root, "ref");
    assert_ok(ob_mkdirs(ref));
    free(tu_write_text(ref, "config.json", cfg_text));
    ob_config cfg;
    ob_model *m;
    assert_ok(ob_config_load(config, &cfg));
    assert_ok(ob_model_create(&cfg, &m));
    ob_model_init(m, SEED);
    char *model_path = ob_path_join(ref, "model.safetensors");
    assert_ok(ob_model_save(m, m->weights, model_path, NULL));
    write_batches(ref, data);
    char train_json[512];
    snprintf(train_json, sizeof train_json,
             "{\"steps\": %d, \"max_steps\": %d, \"accum\": %d, \"lr\": 1e-2, \"lr_min\": 1e-3, \"warmup_steps\": 5, "
             "\"schedule\": \"cosine\", \"beta1\": %.9g, \"beta2\": %.9g, \"eps\": %.9g, \"weight_decay\": 0.1, "
             "\"clip\": 0.5, \"label_smoothing\": %.9g}",
             STEPS, STEPS, ACCUM, o.beta1, o.beta2, o.adam_eps, o.schedule.label_smoothing);
    free(tu_write_text(ref, "train.json", train_json));
    char cmd[8192], *log = NULL;
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/model_ref.py train %s", tu_python(), getenv("ONEBIT_SOURCE_DIR"), ref);
    if (tu_run(cmd, &log) != 0)
        fail_msg("reference trainer failed: %s", log ? log : "");
    free(log);

    char *ref_path = ob_path_join(ref, "ref_train.safetensors");
    ob_st_file *f;
    assert_ok(ob_st_open(ref_path, &f));
    int64_t n = STEPS;
    const ob_tensor_view *losses, *lrs, *norms;
    assert_ok(ob_st_require(f, "losses", OB_DTYPE_F32, 1, &n, &losses));
    assert_ok(ob_st_require(f, "lrs", OB_DTYPE_F32, 1, &n, &lrs));
    assert_ok(ob_st_require(f, "grad_norms", OB_DTYPE_F32, 1, &n, &norms));
    float ref_loss[STEPS], ref_lr[STEPS], ref_norm[STEPS];
    assert_ok(ob_tensor_to_f32(losses, ref_loss));
    assert_ok(ob_tensor_to_f32(lrs, ref_lr));
    assert_ok(ob_tensor_to_f32(norms, ref_norm));

    char *metrics_path = ob_path_join(out, "metrics.jsonl"), *metrics;
    size_t size;
    assert_ok(ob_read_file(metrics_path, &metrics, &size));
    int step = 0;
    double worst = 0;
    for (char *line = strtok(metrics, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(line, "\"event\":\"train\""))
            continue;
        assert_true(step < STEPS);
        double loss = value_of(line, "train_loss"), lr = value_of(line, "lr"), norm = value_of(line, "grad_norm");
        double e = fabs(loss - ref_loss[step]) / ref_loss[step];
        worst = fmax(worst, e);
        if (!(e < 1e-3))
            fail_msg("step %d: loss %.6f, reference %.6f (relative difference %.2e)", step + 1, loss, ref_loss[step], e);
        if (!(fabs(lr - ref_lr[step]) <= 1e-6 * ref_lr[step]))
            fail_msg("step %d: learning rate %.9g, reference %.9g", step + 1, lr, ref_lr[step]);
        if (!(fabs(norm - ref_norm[step]) <= 1e-2 * ref_norm[step]))
            fail_msg("step %d: gradient norm %.6g, reference %.6g", step + 1, norm, ref_norm[step]);
        step++;
    }
    assert_int_equal(step, STEPS);
    print_message("50 steps: worst relative loss difference %.2e (loss %.4f -> %.4f)\n", worst, ref_loss[0],
                  ref_loss[STEPS - 1]);
    assert_true(ref_loss[STEPS - 1] < ref_loss[0] - 0.5); /* it learned something */
    free(metrics), free(metrics_path), free(ref_path), free(model_path), free(ref), free(out), free(config);
    free(shard), free(ids), free(data);
    ob_st_close(f);
    ob_model_free(m);
    ob_config_free(&cfg);
    tu_remove_tree(root);
    free(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fifty_steps)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
