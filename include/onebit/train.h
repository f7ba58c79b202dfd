/* The trainer: quantisation-aware training of a model on token shards or
 * streamed text, with AdamW, clipping, accumulation, schedules, validation,
 * metrics, checkpoints (atomic, with `latest`) and exact resume. */
#ifndef ONEBIT_TRAIN_H
#define ONEBIT_TRAIN_H

#include "onebit/schedule.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_train_options {
    const char *config_path;
    const char *data_dir;      /* shards (file, directory or prefix) or text to tokenize first */
    const char *val_data_dir;  /* held-out data; default: the validation split of data_dir */
    const char *tokenizer;     /* tokenizer.json; default: gpt2 from ../shared/data when present */
    const char *output_dir;
    const char *resume;        /* checkpoint directory, or "latest" (in output_dir) */
    const char *device;        /* "cpu", "cuda", "cuda:N" */
    const char *dist_rendezvous; /* data parallelism: rendezvous file (default <output_dir>/.rendezvous) */
    bool streaming;            /* tokenize text on the fly instead of shards */
    int batch_size;
    int seq_len;               /* 0: max_seq_len of the config */
    int accumulation_steps;
    int64_t max_steps;         /* 0: from max_epochs */
    double max_epochs;         /* used when max_steps is 0 */
    int64_t save_every, log_every, eval_every, eval_batches;
    ob_schedule schedule;      /* lr, decay, warm-up, weight decay, smoothing, quantisation */
    float beta1, beta2, adam_eps;
    float grad_clip;           /* 0: off */
    uint64_t seed;
    int threads;               /* 0: all cores */
    bool progress;
    /* Stop after this many steps of this run (0: none) as if interrupted:
     * a checkpoint is written; used by the resume tests. */
    int64_t stop_after;
} ob_train_options;

void ob_train_options_default(ob_train_options *o);

typedef struct ob_train_result {
    int64_t steps;              /* optimizer steps completed in total */
    double final_train_loss;
    double final_val_loss;      /* NaN when never evaluated */
    double tokens_per_second;
    bool interrupted;
    char checkpoint[4096];      /* the last checkpoint written */
} ob_train_result;

ob_status ob_train(const ob_train_options *opts, ob_train_result *result) OB_NODISCARD;

/* Asks a running ob_train to checkpoint and stop after the current step (for
 * SIGINT handlers: only sets a flag). */
void ob_train_request_stop(void);

#ifdef __cplusplus
}
#endif
#endif
