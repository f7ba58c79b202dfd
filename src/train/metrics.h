/* Training metrics: metrics.jsonl (one JSON object per event) and metrics.csv
 * (the same rows, for spreadsheets), and the statistics of the quantised
 * weights that the trainer logs (share of ternary zeros, share of flips). */
#ifndef ONEBIT_TRAIN_METRICS_H
#define ONEBIT_TRAIN_METRICS_H

#include <stdio.h>

#include "onebit/backend.h"

typedef struct ob_metrics_row {
    const char *event; /* "train" or "eval" */
    int64_t step;
    double epoch;
    uint64_t tokens;
    double train_loss, val_loss, val_ppl; /* NaN when not measured at this row */
    double lr, grad_norm, tokens_per_second;
    double zero_share, flip_share;        /* NaN when the model has no binary/ternary weights */
    ob_regime regime;
    double sharpness, arenas;
    double elapsed;
} ob_metrics_row;

typedef struct ob_metrics_log {
    FILE *jsonl, *csv;
} ob_metrics_log;

/* Opens output_dir/metrics.{jsonl,csv}. When resuming at `resume_step`, rows of
 * later steps (logged after the checkpoint by the run that stopped) are dropped. */
ob_status ob_metrics_open(ob_metrics_log *log, const char *output_dir, int64_t resume_step) OB_NODISCARD;
void ob_metrics_write(ob_metrics_log *log, const ob_metrics_row *row);
void ob_metrics_close(ob_metrics_log *log);

/* Codes of the binary/ternary matrices, compared between log events. */
typedef struct ob_quant_tracker {
    int8_t *codes;
    size_t count;  /* binary + ternary weights */
    bool have_previous;
} ob_quant_tracker;

ob_status ob_quant_tracker_init(ob_quant_tracker *t, const ob_model *m) OB_NODISCARD;
/* Share of ternary weights at 0 and share of codes that changed since the last
 * call (NaN the first time). */
void ob_quant_tracker_update(ob_quant_tracker *t, const ob_model *m, const float *params, double *zero_share,
                             double *flip_share);
void ob_quant_tracker_free(ob_quant_tracker *t);

#endif
