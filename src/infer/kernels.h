/* Kernels of the packed runtime, one table per instruction set, chosen at run
 * time (dispatch.c). They read the packed layout of include/onebit/infer.h:
 *
 *   TERNARY2  32-byte group = 128 weights; byte b, bits 2k..2k+1 = weight 32k+b, stored code+1
 *   BINARY1   32-byte group = 256 weights; byte b, bit k         = weight 32k+b, 1 = +1, 0 = -1
 *   FOURBIT   32-byte group =  64 weights; byte b, low nibble = weight b, high = weight 32+b, code+8
 *   I8        32-byte group =  32 weights; one int8 code each
 *
 * Rows are padded to a multiple of 256 weights; the int8 activations are padded
 * with zeros to the same length, so padded weights add nothing. With the
 * stored (unsigned) value u of each weight, the kernels accumulate the raw sum
 * Σ u·x exactly in int32 and correct it with the activation code sum Σx:
 *
 *   TERNARY2  Σ code·x = raw − Σx          BINARY1  Σ code·x = 2·raw − Σx
 *   FOURBIT   Σ code·x = raw − 8·Σx        I8       Σ code·x = raw (signed codes)
 *
 * and the output is y = (Σ code·x) · weight_scale / s, with s the activation
 * scale of the token (x̃ = code / s, docs/MODEL.md step 4). A token's codes lie
 * in [-127, 127] (|x·s| <= 127 before rounding), so the AVX2 pairwise byte
 * products (VPMADDUBSW) never saturate. */
#ifndef ONEBIT_INFER_KERNELS_H
#define ONEBIT_INFER_KERNELS_H

#include "onebit/infer.h"

/* int8 activations of n tokens. */
typedef struct ob_qact {
    const int8_t *codes;  /* [n][ld], zero beyond the matrix's cols */
    const int32_t *sums;  /* [n] Σ codes */
    const double *inv_scales; /* [n] 1/s */
    int n, ld;
} ob_qact;

typedef struct ob_kernels {
    ob_kernel_isa isa;
    /* y[t·ldy + r] for tokens t < x->n and rows r0 <= r < r1 of a quantised w. */
    void (*qgemm)(const ob_packed_tensor *w, const ob_qact *x, int r0, int r1, float *y, int ldy);
    /* The same for F32/F16 weights and float activations x [n][ldx]. */
    void (*fgemm)(const ob_packed_tensor *w, const float *x, int n, int ldx, int r0, int r1, float *y, int ldy);
    /* Σ a·b and y += a·x over n floats (attention). */
    float (*dot)(const float *a, const float *b, int n);
    void (*axpy)(float *y, float a, const float *x, int n);
} ob_kernels;

/* NULL when `isa` is not supported by this CPU. */
const ob_kernels *ob_kernels_get(ob_kernel_isa isa);

extern const ob_kernels ob_kernels_scalar;
extern const ob_kernels ob_kernels_avx2;
extern const ob_kernels ob_kernels_avxvnni;

/* Σ code·x from the raw sum Σ u·x (see above). */
static inline int32_t ob_q_correct(ob_dtype dtype, int32_t raw, int32_t xsum) {
    switch (dtype) {
    case OB_DTYPE_TERNARY2: return raw - xsum;
    case OB_DTYPE_BINARY1: return 2 * raw - xsum;
    case OB_DTYPE_FOURBIT: return raw - 8 * xsum;
    default: return raw;
    }
}

/* The output of row r for a token with activation scale s (inv_s = 1/s, in
 * double) from its exact integer dot product: rounded once to float. */
static inline float ob_q_output(const ob_packed_tensor *w, int r, int32_t dot, double inv_s) {
    float scale = w->scales[w->num_scales == 1 ? 0 : r];
    return (float)((double)dot * (double)scale * inv_s);
}

#endif
