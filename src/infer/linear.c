/* Linear layers of the runtime: the activation quantiser (the training one,
 * ob_quant_activation_codes, so the codes are the training forward's), then
 * the matrix product over the output rows split among OpenMP threads. Rows go
 * to threads in contiguous blocks so each thread streams its own part of the
 * weights. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "infer/session.h"
#include "onebit/quant.h"

/* Rows per unit of work: even (the two-row decoding tiles) and large enough
 * that the blocks of one thread stay contiguous in memory. */
#define ROW_BLOCK 16

/* The smallest distance of any x·s (as the quantiser computes it) to a
 * half-integer, where rounding could go either way between implementations. */
static void track_margin(ob_infer *s, const float *x, int K, float sc) {
    for (int j = 0; j < K; j++) {
        float v = x[j] * sc;
        float margin = 0.5f - fabsf(v - rintf(v));
        if (margin < s->min_margin)
            s->min_margin = margin;
    }
}

static float quantise_row(ob_infer *s, const float *x, int t, int K, int kp, int bits) {
    int8_t *c = s->codes + (size_t)t * s->kmax;
    float sc = ob_quant_activation_codes(x + (size_t)t * K, K, bits, c);
    memset(c + K, 0, (size_t)(kp - K));
    int32_t sum = 0;
    for (int j = 0; j < K; j++)
        sum += c[j];
    s->sums[t] = sum;
    s->inv_scales[t] = 1.0 / (double)sc;
    return sc;
}

void ob_infer_quantise(ob_infer *s, const float *x, int n, int K, int kp, int bits) {
    float sc[OB_INFER_CHUNK];
    if (n > 1 && s->threads > 1) {
#pragma omp parallel for schedule(static) num_threads(s->threads)
        for (int t = 0; t < n; t++)
            sc[t] = quantise_row(s, x, t, K, kp, bits);
    } else {
        for (int t = 0; t < n; t++)
            sc[t] = quantise_row(s, x, t, K, kp, bits);
    }
    for (int t = 0; s->track_margin && t < n; t++)
        track_margin(s, x + (size_t)t * K, K, sc[t]);
}

typedef void (*block_fn)(ob_infer *s, const ob_packed_tensor *w, const void *arg, int n, float *y, int r0, int r1);

/* Runs fn over blocks of the rows of w on s->threads threads; the static
 * schedule gives each thread one contiguous range of blocks. */
static void over_rows(ob_infer *s, const ob_packed_tensor *w, const void *arg, int n, float *y, block_fn fn) {
    int blocks = (w->rows + ROW_BLOCK - 1) / ROW_BLOCK;
    if (s->threads <= 1 || blocks < 2) {
        fn(s, w, arg, n, y, 0, w->rows);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(s->threads)
    for (int b = 0; b < blocks; b++) {
        int r1 = (b + 1) * ROW_BLOCK;
        fn(s, w, arg, n, y, b * ROW_BLOCK, r1 < w->rows ? r1 : w->rows);
    }
}

static void q_block(ob_infer *s, const ob_packed_tensor *w, const void *arg, int n, float *y, int r0, int r1) {
    (void)arg;
    ob_qact qa = {s->codes, s->sums, s->inv_scales, n, s->kmax};
    s->kern->qgemm(w, &qa, r0, r1, y, w->rows);
}

void ob_infer_qmatmul(ob_infer *s, const ob_packed_tensor *w, int n, float *y) { over_rows(s, w, NULL, n, y, q_block); }

static void f_block(ob_infer *s, const ob_packed_tensor *w, const void *arg, int n, float *y, int r0, int r1) {
    s->kern->fgemm(w, arg, n, w->cols, r0, r1, y, w->rows);
}

/* Quantised weights times float activations: each row is expanded to
 * code·scale (the training quantiser's W_q, exactly) and dotted in float. */
static void dequant_block(ob_infer *s, const ob_packed_tensor *w, const void *arg, int n, float *y, int r0, int r1) {
    const float *x = arg;
    float *row = s->wrow + (size_t)omp_get_thread_num() * s->kmax;
    for (int r = r0; r < r1; r++) {
        ob_packed_row_to_f32(w, r, row);
        for (int t = 0; t < n; t++)
            y[(size_t)t * w->rows + r] = s->kern->dot(row, x + (size_t)t * w->cols, w->cols);
    }
}

void ob_infer_fmatmul(ob_infer *s, const ob_packed_tensor *w, const float *x, int n, float *y) {
    bool floats = w->dtype == OB_DTYPE_F32 || w->dtype == OB_DTYPE_F16;
    over_rows(s, w, x, n, y, floats ? f_block : dequant_block);
}

void ob_infer_linear(ob_infer *s, const ob_packed_tensor *w, int bits, const float *x, int n, float *y) {
    if (ob_packed_dtype_quantised(w->dtype) && bits > 0) {
        ob_infer_quantise(s, x, n, w->cols, w->cols_padded, bits);
        ob_infer_qmatmul(s, w, n, y);
    } else {
        ob_infer_fmatmul(s, w, x, n, y);
    }
}
