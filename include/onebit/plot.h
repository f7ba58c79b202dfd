/* Loss curves: reads metrics.jsonl as written by the trainer and draws train
 * loss, validation loss and learning rate against the step. */
#ifndef ONEBIT_PLOT_H
#define ONEBIT_PLOT_H

#include "onebit/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_series {
    double *x, *y;
    size_t count;
} ob_series;

typedef struct ob_metrics_series {
    ob_series train_loss, val_loss, lr;
} ob_metrics_series;

/* Reads one or more metrics.jsonl files (rows of later files follow). */
ob_status ob_metrics_read(const char *path, ob_metrics_series *out) OB_NODISCARD;
void ob_metrics_series_free(ob_metrics_series *s);

/* Writes an SVG with two panels (loss, learning rate) atomically; each of the
 * `count` runs gets its own colour and its label in the legend. */
ob_status ob_plot_svg(const ob_metrics_series *runs, const char *const *labels, int count, const char *title,
                      const char *path) OB_NODISCARD;
/* Writes run k's series as whitespace-separated columns for gnuplot
 * (train<k>.dat, val<k>.dat, lr<k>.dat in dir). */
ob_status ob_plot_write_columns(const ob_metrics_series *s, int k, const char *dir) OB_NODISCARD;

#ifdef __cplusplus
}
#endif
#endif
