/* Portable kernels: the packed layout (kernels.h) read one weight at a time.
 * They are the reference the SIMD kernels are tested against, and the path
 * used on CPUs without AVX2 (or when $ONEBIT_KERNELS=scalar). */
#include "infer/kernels.h"

static int32_t raw_dot(const ob_packed_tensor *w, const uint8_t *row, const int8_t *x) {
    int32_t acc = 0;
    int kp = w->cols_padded;
    switch (w->dtype) {
    case OB_DTYPE_TERNARY2:
        for (int g = 0; g < kp / 128; g++, row += 32, x += 128)
            for (int b = 0; b < 32; b++) {
                unsigned v = row[b];
                acc += (int32_t)(v & 3) * x[b] + (int32_t)((v >> 2) & 3) * x[32 + b] +
                       (int32_t)((v >> 4) & 3) * x[64 + b] + (int32_t)(v >> 6) * x[96 + b];
            }
        break;
    case OB_DTYPE_BINARY1:
        for (int g = 0; g < kp / 256; g++, row += 32, x += 256)
            for (int b = 0; b < 32; b++)
                for (int k = 0; k < 8; k++)
                    acc += (int32_t)((row[b] >> k) & 1) * x[32 * k + b];
        break;
    case OB_DTYPE_FOURBIT:
        for (int g = 0; g < kp / 64; g++, row += 32, x += 64)
            for (int b = 0; b < 32; b++)
                acc += (int32_t)(row[b] & 15) * x[b] + (int32_t)(row[b] >> 4) * x[32 + b];
        break;
    case OB_DTYPE_I8:
        for (int j = 0; j < kp; j++)
            acc += (int32_t)(int8_t)row[j] * x[j];
        break;
    default: break;
    }
    return acc;
}

static void qgemm_scalar(const ob_packed_tensor *w, const ob_qact *x, int r0, int r1, float *y, int ldy) {
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (int t = 0; t < x->n; t++) {
            int32_t raw = raw_dot(w, row, x->codes + (size_t)t * x->ld);
            y[(size_t)t * ldy + r] = ob_q_output(w, r, ob_q_correct(w->dtype, raw, x->sums[t]), x->inv_scales[t]);
        }
    }
}

static void fgemm_scalar(const ob_packed_tensor *w, const float *x, int n, int ldx, int r0, int r1, float *y,
                         int ldy) {
    int K = w->cols;
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (int t = 0; t < n; t++) {
            const float *xt = x + (size_t)t * ldx;
            float acc = 0;
            if (w->dtype == OB_DTYPE_F32) {
                const float *wr = (const float *)row;
                for (int j = 0; j < K; j++)
                    acc += wr[j] * xt[j];
            } else {
                const uint16_t *wr = (const uint16_t *)row;
                for (int j = 0; j < K; j++)
                    acc += ob_f16_to_f32(wr[j]) * xt[j];
            }
            y[(size_t)t * ldy + r] = acc;
        }
    }
}

static float dot_scalar(const float *a, const float *b, int n) {
    float s = 0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void axpy_scalar(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

const ob_kernels ob_kernels_scalar = {OB_ISA_SCALAR, qgemm_scalar, fgemm_scalar, dot_scalar, axpy_scalar};
