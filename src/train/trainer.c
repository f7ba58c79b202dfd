/* The training loop: data, model, backend and schedules wired together, with
 * logging, validation, checkpoints and exact resume. Everything that decides a
 * result (initial weights, the data cursor, the optimizer moments, the step
 * counter) is in the checkpoint, so a resumed run continues bit for bit. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/data.h"
#include "onebit/dist.h"
#include "onebit/json.h"
#include "onebit/train.h"
#include "train/checkpoint.h"
#include "train/metrics.h"

static atomic_int stop_requested;

void ob_train_request_stop(void) { atomic_store(&stop_requested, 1); }

void ob_train_options_default(ob_train_options *o) {
    memset(o, 0, sizeof *o);
    o->output_dir = "runs/onebit";
    o->device = "cpu";
    o->batch_size = 8;
    o->accumulation_steps = 1;
    o->max_steps = 1000;
    o->save_every = 500;
    o->log_every = 10;
    o->eval_every = 100;
    o->eval_batches = 20;
    o->schedule.lr = 3e-4;
    o->schedule.lr_min = 3e-5;
    o->schedule.warmup_steps = 100;
    o->schedule.decay = OB_LR_COSINE;
    o->schedule.weight_decay = 0.1;
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->adam_eps = 1e-8f;
    o->grad_clip = 1.0f;
    o->seed = 1337;
    o->progress = true;
}

/* Everything one run holds. */
typedef struct {
    const ob_train_options *opt;
    ob_config cfg;
    ob_tokenizer *tok;
    char tokenizer_path[4096];
    ob_dataset *train_ds, *val_ds;
    ob_batch_source *train_src;
    ob_model *model;
    ob_backend *backend;
    ob_schedule sched;
    int B, T;
    int32_t *inputs, *targets;
    float *exp_avg, *exp_avg_sq;
    int64_t step;       /* optimizer steps completed */
    uint64_t tokens;    /* training tokens consumed */
    double elapsed;     /* seconds of training before this run (resume) */
    char data_path[4096];
    ob_metrics_log metrics;
    ob_quant_tracker tracker;
    ob_dist dist;        /* data-parallel position; only rank 0 writes files */
} run;

static bool leader(const run *r) { return r->dist.rank == 0; }

/* ---- data -------------------------------------------------------------------- */

static bool has_shards(const char *path) {
    ob_dataset *ds;
    if (ob_dataset_open_split(path, "train", &ds) == OB_OK) {
        ob_dataset_free(ds);
        return true;
    }
    ob_clear_error();
    return false;
}

/* Text given as --data-dir is tokenized once into <output>/data and reused. */
static ob_status prepare_shards(run *r) {
    const ob_train_options *o = r->opt;
    if (has_shards(o->data_dir)) {
        snprintf(r->data_path, sizeof r->data_path, "%s", o->data_dir);
        return OB_OK;
    }
    if (r->dist.world > 1)
        return ob_error(OB_ERR_INVALID_ARG,
                        "%s: data-parallel training reads token shards; tokenize the text first (onebit tokenize)",
                        o->data_dir);
    if (!r->tok)
        return ob_error(OB_ERR_INVALID_ARG,
                        "%s: holds no token shards (*_train_*.bin); give --tokenizer to tokenize it as text",
                        o->data_dir);
    char *cache = ob_path_join(o->output_dir, "data");
    if (!cache)
        return OB_ERR_NOMEM;
    snprintf(r->data_path, sizeof r->data_path, "%s/corpus", cache);
    ob_status st = OB_OK;
    if (!has_shards(r->data_path)) {
        ob_log(OB_LOG_INFO, "tokenizing %s into %s", o->data_dir, cache);
        ob_tokenize_options t;
        ob_tokenize_options_default(&t);
        const char *inputs[1] = {o->data_dir};
        t.inputs = inputs;
        t.num_inputs = 1;
        t.output_dir = cache;
        t.prefix = "corpus";
        t.tokenizer = r->tok;
        t.threads = o->threads;
        t.progress = o->progress;
        t.seed = o->seed;
        ob_tokenize_stats stats;
        st = ob_mkdirs(cache);
        if (st == OB_OK)
            st = ob_tokenize(&t, &stats);
    }
    free(cache);
    return st;
}

static ob_status open_data(run *r) {
    const ob_train_options *o = r->opt;
    ob_status st;
    if (o->streaming) {
        if (!r->tok)
            return ob_error(OB_ERR_INVALID_ARG, "--streaming needs --tokenizer");
        ob_stream_options so = {0};
        const char *inputs[1] = {o->data_dir};
        so.inputs = inputs;
        so.num_inputs = 1;
        so.split = OB_SPLIT_TRAIN;
        so.val_fraction = 0.005;
        so.split_seed = o->seed;
        so.loop = true;
        st = ob_batch_source_stream(&so, r->tok, r->dist.rank, r->dist.world, &r->train_src);
    } else {
        st = prepare_shards(r);
        if (st == OB_OK)
            st = ob_dataset_open_split(r->data_path, "train", &r->train_ds);
        if (st == OB_OK) {
            ob_dataset_set_vocab_size(r->train_ds, r->cfg.vocab_size);
            if (ob_dataset_num_tokens(r->train_ds) < (uint64_t)r->T + 1)
                return ob_error(OB_ERR_INVALID_ARG, "%s: %llu training tokens, fewer than one window of %d",
                                r->data_path, (unsigned long long)ob_dataset_num_tokens(r->train_ds), r->T + 1);
            st = ob_batch_source_random(r->train_ds, o->seed + 1, r->dist.rank, r->dist.world, &r->train_src);
        }
    }
    if (st)
        return st;
    /* Validation: --val-data-dir, else the validation split next to the training shards. */
    const char *val_path = o->val_data_dir ? o->val_data_dir : (o->streaming ? NULL : r->data_path);
    if (val_path && o->eval_every > 0) {
        if (ob_dataset_open_split(val_path, "val", &r->val_ds) != OB_OK) {
            ob_clear_error();
            if (o->val_data_dir && (st = ob_dataset_open_split(val_path, "train", &r->val_ds)))
                return ob_error_context(st, "--val-data-dir %s", val_path);
        }
        if (r->val_ds) {
            ob_dataset_set_vocab_size(r->val_ds, r->cfg.vocab_size);
            if (ob_dataset_num_tokens(r->val_ds) < (uint64_t)r->T + 1) {
                ob_log(OB_LOG_WARN, "%s: validation split too small for one window; validation is off", val_path);
                ob_dataset_free(r->val_ds);
                r->val_ds = NULL;
            }
        }
    }
    if (!r->val_ds && o->eval_every > 0)
        ob_log(OB_LOG_WARN, "no validation data (give --val-data-dir); validation is off");
    return OB_OK;
}

/* Mean plain cross-entropy over up to eval_batches sequential batches. */
static ob_status evaluate(run *r, double *loss) {
    *loss = NAN;
    if (!r->val_ds)
        return OB_OK;
    ob_batch_source *src;
    ob_status st = ob_batch_source_sequential(r->val_ds, 0, 1, &src);
    if (st)
        return st;
    double sum = 0;
    int64_t rows_total = 0;
    for (int64_t k = 0; k < r->opt->eval_batches && st == OB_OK; k++) {
        ob_batch_rows info;
        st = ob_batch_source_next(src, r->B, r->T, r->inputs, r->targets, &info);
        if (st || info.end || info.rows == 0)
            break;
        double l;
        st = r->backend->ops->eval_batch(r->backend, r->inputs, r->targets, info.rows, r->T, NULL, &l, NULL);
        sum += l * info.rows;
        rows_total += info.rows;
    }
    ob_batch_source_free(src);
    if (st == OB_OK && rows_total)
        *loss = sum / (double)rows_total;
    return st;
}

/* ---- checkpoints --------------------------------------------------------------- */

static cJSON *trainer_state(run *r, double elapsed) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "step", (double)r->step);
    cJSON_AddNumberToObject(s, "tokens", (double)r->tokens);
    cJSON_AddNumberToObject(s, "elapsed_seconds", elapsed);
    cJSON_AddNumberToObject(s, "max_steps", (double)r->sched.max_steps);
    cJSON_AddNumberToObject(s, "seed", (double)r->opt->seed);
    cJSON_AddNumberToObject(s, "batch_size", r->B);
    cJSON_AddNumberToObject(s, "seq_len", r->T);
    cJSON_AddNumberToObject(s, "accumulation_steps", r->opt->accumulation_steps);
    cJSON *cursor = NULL;
    if (ob_batch_source_save_json(r->train_src, &cursor) == OB_OK)
        cJSON_AddItemToObject(s, "data_cursor", cursor);
    return s;
}

static ob_status save_checkpoint(run *r, double elapsed, char *written, size_t size) {
    ob_backend *b = r->backend;
    if (!leader(r))
        return OB_OK;
    ob_status st = b->ops->download(b, r->model->weights);
    for (size_t i = 0; st == OB_OK && i < r->model->num_floats; i++)
        if (!isfinite(r->model->weights[i]))
            st = ob_error(OB_ERR_NUMERIC, "step %lld: the parameters hold NaN or Inf; not saving a checkpoint",
                          (long long)r->step);
    if (st == OB_OK)
        st = b->ops->get_moments(b, r->exp_avg, r->exp_avg_sq);
    if (st)
        return st;
    cJSON *state = trainer_state(r, elapsed);
    st = ob_checkpoint_save(r->opt->output_dir, r->step, r->model, r->model->weights, r->exp_avg, r->exp_avg_sq,
                            r->tokenizer_path[0] ? r->tokenizer_path : NULL, state, written, size);
    cJSON_Delete(state);
    return st;
}

static ob_status resume(run *r) {
    char dir[4096];
    ob_status st = ob_checkpoint_resolve(r->opt->output_dir, r->opt->resume, dir, sizeof dir);
    if (st)
        return st;
    cJSON *state = NULL;
    st = ob_checkpoint_load(dir, r->model, r->model->weights, r->exp_avg, r->exp_avg_sq, &state);
    int64_t step = 0, tokens = 0, B = 0, T = 0, accum = 0;
    double elapsed = 0;
    const char *src = "trainer_state.json";
    if (st == OB_OK)
        st = ob_json_get_int(state, "step", src, &step, NULL);
    if (st == OB_OK)
        st = ob_json_get_int(state, "tokens", src, &tokens, NULL);
    if (st == OB_OK)
        st = ob_json_get_double(state, "elapsed_seconds", src, &elapsed, NULL);
    if (st == OB_OK)
        st = ob_json_get_int(state, "batch_size", src, &B, NULL);
    if (st == OB_OK)
        st = ob_json_get_int(state, "seq_len", src, &T, NULL);
    if (st == OB_OK)
        st = ob_json_get_int(state, "accumulation_steps", src, &accum, NULL);
    if (st == OB_OK && (B != r->B || T != r->T || accum != r->opt->accumulation_steps))
        st = ob_error(OB_ERR_INVALID_ARG,
                      "%s: saved with batch %lld x %lld and %lld accumulation steps; this run asks for %d x %d and %d "
                      "(an exact resume needs the same shape)",
                      dir, (long long)B, (long long)T, (long long)accum, r->B, r->T, r->opt->accumulation_steps);
    const cJSON *cursor = st == OB_OK ? cJSON_GetObjectItemCaseSensitive(state, "data_cursor") : NULL;
    if (st == OB_OK && !cursor)
        st = ob_error(OB_ERR_FORMAT, "%s/trainer_state.json: no data_cursor", dir);
    if (st == OB_OK)
        st = ob_batch_source_restore_json(r->train_src, cursor, dir);
    cJSON_Delete(state);
    if (st)
        return ob_error_context(st, "resuming from %s", dir);
    r->step = step;
    r->tokens = (uint64_t)tokens;
    r->elapsed = elapsed;
    ob_backend *b = r->backend;
    if ((st = b->ops->upload(b, r->model->weights)) == OB_OK)
        st = b->ops->set_moments(b, r->exp_avg, r->exp_avg_sq);
    ob_log(OB_LOG_INFO, "resumed from %s at step %lld", dir, (long long)step);
    return st;
}

/* ---- the loop ------------------------------------------------------------------ */

static void fill_row(run *r, ob_metrics_row *row, const char *event, double elapsed) {
    memset(row, 0, sizeof *row);
    row->event = event;
    row->step = r->step;
    row->epoch = ob_batch_source_epoch(r->train_src);
    row->tokens = r->tokens;
    row->train_loss = row->val_loss = row->val_ppl = row->grad_norm = row->tokens_per_second = NAN;
    row->zero_share = row->flip_share = NAN;
    ob_step_info info = ob_schedule_step(&r->sched, r->step > 0 ? r->step - 1 : 0);
    row->regime = info.regime;
    row->sharpness = info.sharpness;
    row->arenas = info.arenas;
    row->lr = ob_schedule_lr(&r->sched, r->step > 0 ? r->step - 1 : 0);
    row->elapsed = elapsed;
}

static ob_status log_eval(run *r, double elapsed, double *val_loss) {
    if (!leader(r))
        return OB_OK;
    ob_status st = evaluate(r, val_loss);
    if (st || isnan(*val_loss))
        return st;
    ob_metrics_row row;
    fill_row(r, &row, "eval", elapsed);
    row.val_loss = *val_loss;
    row.val_ppl = exp(*val_loss);
    ob_metrics_write(&r->metrics, &row);
    ob_log(OB_LOG_INFO, "step %lld: validation loss %.4f, perplexity %.2f", (long long)r->step, *val_loss,
           row.val_ppl);
    return OB_OK;
}

static ob_status train_loop(run *r, ob_train_result *res) {
    const ob_train_options *o = r->opt;
    ob_backend *b = r->backend;
    ob_progress bar;
    bool progress = o->progress && leader(r);
    if (progress)
        ob_progress_begin(&bar, stderr, "train", (uint64_t)r->sched.max_steps, "steps");
    double start = ob_now(), window_start = start;
    uint64_t window_tokens = 0;
    /* A logged training loss is the mean over the steps since the last log:
     * one batch's loss is too noisy to compare runs by. */
    double window_loss = 0;
    int window_steps = 0;
    int64_t run_steps = 0;
    double loss = NAN, val_loss = NAN;
    ob_status st = OB_OK;
    bool saved_at_step = false;
    while (r->step < r->sched.max_steps) {
        int64_t t = r->step;
        ob_step_info info = ob_schedule_step(&r->sched, t);
        if (window_start < 0)
            window_start = ob_now(); /* the rate leaves out logging, validation and checkpoints */
        if ((st = b->ops->zero_grad(b)))
            break;
        double sum = 0;
        int world = r->dist.world;
        for (int a = 0; a < o->accumulation_steps && st == OB_OK; a++) {
            double l = 0;
            st = ob_batch_source_next(r->train_src, r->B, r->T, r->inputs, r->targets, NULL);
            b->reduce_in_backward = world > 1 && a == o->accumulation_steps - 1;
            if (st == OB_OK)
                st = b->ops->train_batch(b, r->inputs, r->targets, r->B, r->T, &info,
                                         1.0f / (float)(o->accumulation_steps * world), &l);
            sum += l;
        }
        /* Across processes: the mean loss, and a stop asked of any of them. */
        double shared[2] = {sum / o->accumulation_steps, atomic_load(&stop_requested) ? 1.0 : 0.0};
        if (st == OB_OK)
            st = b->ops->sync_step(b, shared, 2);
        if (st)
            break;
        loss = shared[0] / world;
        if (!isfinite(loss)) {
            st = ob_error(OB_ERR_NUMERIC,
                          "step %lld: the training loss is %g; stopping (the last checkpoint is intact; try a lower "
                          "--lr or --grad-clip-max-norm)",
                          (long long)t, loss);
            break;
        }
        double norm;
        if ((st = b->ops->grad_norm(b, &norm)))
            break;
        if (!isfinite(norm)) {
            st = ob_error(OB_ERR_NUMERIC,
                          "step %lld: the gradient norm is %g; stopping (the last checkpoint is intact; try a lower "
                          "--lr or --grad-clip-max-norm)",
                          (long long)t, norm);
            break;
        }
        ob_adamw adam = {(float)ob_schedule_lr(&r->sched, t), o->beta1, o->beta2, o->adam_eps,
                         (float)ob_schedule_weight_decay(&r->sched, t), t + 1, 1.0f};
        if (o->grad_clip > 0 && norm > o->grad_clip)
            adam.grad_scale = (float)(o->grad_clip / (norm + 1e-6));
        if ((st = b->ops->adamw(b, &adam)))
            break;
        r->step++;
        run_steps++;
        saved_at_step = false;
        uint64_t step_tokens = (uint64_t)r->B * r->T * o->accumulation_steps * r->dist.world;
        r->tokens += step_tokens;
        window_tokens += step_tokens;
        window_loss += loss;
        window_steps++;
        double now = ob_now(), elapsed = r->elapsed + (now - start);
        if (leader(r) && o->log_every > 0 && (r->step % o->log_every == 0 || r->step == r->sched.max_steps)) {
            ob_metrics_row row;
            fill_row(r, &row, "train", elapsed);
            row.train_loss = window_loss / window_steps;
            row.grad_norm = norm;
            row.tokens_per_second = (double)window_tokens / (now - window_start);
            if ((st = b->ops->download(b, r->model->weights)))
                break;
            ob_quant_tracker_update(&r->tracker, r->model, r->model->weights, &row.zero_share, &row.flip_share);
            ob_metrics_write(&r->metrics, &row);
            if (progress) {
                char suffix[128];
                snprintf(suffix, sizeof suffix, "loss %.4f  lr %.2e  %.0f tok/s", row.train_loss, row.lr,
                         row.tokens_per_second);
                ob_progress_update(&bar, (uint64_t)r->step, suffix);
            }
            window_tokens = 0;
            window_loss = 0;
            window_steps = 0;
            window_start = -1; /* restarted after the bookkeeping below */
        }
        if (o->eval_every > 0 && r->step % o->eval_every == 0 && (st = log_eval(r, elapsed, &val_loss)))
            break;
        bool stop = shared[1] > 0 || (o->stop_after > 0 && run_steps >= o->stop_after);
        if ((o->save_every > 0 && r->step % o->save_every == 0) || stop || r->step == r->sched.max_steps) {
            if ((st = save_checkpoint(r, elapsed, res->checkpoint, sizeof res->checkpoint)))
                break;
            saved_at_step = true;
        }
        if (stop && r->step < r->sched.max_steps) {
            res->interrupted = true;
            ob_log(OB_LOG_INFO, "stopped at step %lld; checkpoint %s", (long long)r->step, res->checkpoint);
            break;
        }
    }
    if (progress)
        ob_progress_end(&bar, NULL);
    double total = ob_now() - start;
    res->steps = r->step;
    res->final_train_loss = loss;
    res->tokens_per_second =
        total > 0 ? (double)run_steps * r->B * r->T * o->accumulation_steps * r->dist.world / total : 0;
    if (st == OB_OK && !res->interrupted && r->step == r->sched.max_steps) {
        if (o->eval_every > 0 && r->step % o->eval_every != 0)
            st = log_eval(r, r->elapsed + total, &val_loss);
        if (st == OB_OK && !saved_at_step)
            st = save_checkpoint(r, r->elapsed + total, res->checkpoint, sizeof res->checkpoint);
    }
    res->final_val_loss = val_loss;
    return st;
}

/* ---- set-up -------------------------------------------------------------------- */

static ob_status check_options(const ob_train_options *o) {
    if (!o->config_path)
        return ob_error(OB_ERR_INVALID_ARG, "--config is required (write one with: onebit init-config config.json)");
    if (!o->data_dir)
        return ob_error(OB_ERR_INVALID_ARG, "--data-dir is required");
    if (!o->output_dir)
        return ob_error(OB_ERR_INVALID_ARG, "--output-dir is required");
    if (o->batch_size < 1 || o->accumulation_steps < 1)
        return ob_error(OB_ERR_INVALID_ARG, "--batch-size and --accumulation-steps must be at least 1");
    if (o->max_steps <= 0 && o->max_epochs <= 0)
        return ob_error(OB_ERR_INVALID_ARG, "give --max-steps or --max-epochs");
    return OB_OK;
}

static ob_status setup(run *r) {
    const ob_train_options *o = r->opt;
    ob_status st = ob_dist_from_env(&r->dist);
    if (st)
        return st;
    if (r->dist.world > 1) {
        if (o->dist_rendezvous)
            snprintf(r->dist.rendezvous, sizeof r->dist.rendezvous, "%s", o->dist_rendezvous);
        else
            snprintf(r->dist.rendezvous, sizeof r->dist.rendezvous, "%s/.rendezvous", o->output_dir);
    }
    if ((st = ob_config_load(o->config_path, &r->cfg)))
        return st;
    r->B = o->batch_size;
    r->T = o->seq_len > 0 ? o->seq_len : r->cfg.max_seq_len;
    if (r->T > r->cfg.max_seq_len)
        return ob_error(OB_ERR_INVALID_ARG, "--seq-len %d exceeds max_seq_len %d of %s", r->T, r->cfg.max_seq_len,
                        o->config_path);
    if (o->tokenizer) {
        if ((st = ob_tokenizer_load(o->tokenizer, &r->tok)))
            return st;
        snprintf(r->tokenizer_path, sizeof r->tokenizer_path, "%s", o->tokenizer);
        if (ob_tokenizer_vocab_size(r->tok) > r->cfg.vocab_size)
            return ob_error(OB_ERR_CONFIG, "%s: vocab_size %d is smaller than the tokenizer's %d (%s)", o->config_path,
                            r->cfg.vocab_size, ob_tokenizer_vocab_size(r->tok), o->tokenizer);
    }
    if ((st = ob_mkdirs(o->output_dir)))
        return st;
    if ((st = open_data(r)))
        return st;
    r->sched = o->schedule;
    ob_schedule_from_config(&r->sched, &r->cfg);
    if (o->max_steps > 0) {
        r->sched.max_steps = o->max_steps;
    } else {
        if (!r->train_ds)
            return ob_error(OB_ERR_INVALID_ARG, "--max-epochs needs token shards (with --streaming, give --max-steps)");
        double per_step = (double)r->B * r->T * o->accumulation_steps;
        r->sched.max_steps = (int64_t)ceil(o->max_epochs * (double)ob_dataset_num_tokens(r->train_ds) / per_step);
    }
    if ((st = ob_model_create(&r->cfg, &r->model)))
        return st;
    ob_model_init(r->model, o->seed);
    size_t bytes = r->model->num_floats * sizeof(float);
    r->exp_avg = ob_aligned_alloc(bytes);
    r->exp_avg_sq = ob_aligned_alloc(bytes);
    r->inputs = ob_malloc((size_t)r->B * r->T * sizeof(int32_t));
    r->targets = ob_malloc((size_t)r->B * r->T * sizeof(int32_t));
    if (!r->exp_avg || !r->exp_avg_sq || !r->inputs || !r->targets)
        return OB_ERR_NOMEM;
    if ((st = ob_backend_create_dist(o->device, r->model, r->B, r->T, &r->dist, &r->backend)))
        return st;
    if (o->resume && (st = resume(r)))
        return st;
    if ((st = ob_quant_tracker_init(&r->tracker, r->model)))
        return st;
    if (!leader(r))
        return OB_OK;
    if ((st = ob_metrics_open(&r->metrics, o->output_dir, o->resume ? r->step : -1)))
        return st;
    if (r->tokenizer_path[0]) {
        char *copy = ob_path_join(o->output_dir, "tokenizer.json");
        st = copy ? ob_copy_file(r->tokenizer_path, copy) : OB_ERR_NOMEM;
        free(copy);
    }
    return st;
}

static void teardown(run *r) {
    ob_metrics_close(&r->metrics);
    ob_quant_tracker_free(&r->tracker);
    ob_backend_free(r->backend);
    ob_model_free(r->model);
    ob_batch_source_free(r->train_src);
    ob_dataset_free(r->train_ds);
    ob_dataset_free(r->val_ds);
    ob_tokenizer_free(r->tok);
    ob_config_free(&r->cfg);
    ob_aligned_free(r->exp_avg);
    ob_aligned_free(r->exp_avg_sq);
    free(r->inputs);
    free(r->targets);
}

ob_status ob_train(const ob_train_options *opts, ob_train_result *result) {
    memset(result, 0, sizeof *result);
    result->final_val_loss = result->final_train_loss = NAN;
    atomic_store(&stop_requested, 0);
    ob_status st = check_options(opts);
    if (st)
        return st;
    if (opts->threads > 0) {
        omp_set_num_threads(opts->threads);
        openblas_set_num_threads(opts->threads);
    }
    run r;
    memset(&r, 0, sizeof r);
    r.opt = opts;
    st = setup(&r);
    if (st == OB_OK && leader(&r)) {
        if (r.dist.world > 1)
            ob_log(OB_LOG_INFO, "data parallel: %d processes, rendezvous %s", r.dist.world, r.dist.rendezvous);
        ob_log(OB_LOG_INFO,
               "training %lld parameters (%zu binary/ternary) on %s: %s; batch %d x %d x %d accumulation, %lld steps",
               (long long)ob_config_param_count(&r.cfg), ob_model_quantised_count(r.model), r.backend->device,
               ob_batch_source_describe(r.train_src), r.B, r.T, opts->accumulation_steps,
               (long long)r.sched.max_steps);
    }
    if (st == OB_OK) {
        st = train_loop(&r, result);
    }
    teardown(&r);
    return st;
}
