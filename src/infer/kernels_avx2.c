/* AVX2 kernels (compiled with -mavx2 -mfma -mf16c) and their AVX-VNNI variants
 * (functions compiled for the "avxvnni" target, run only when CPUID reports
 * it). The packed layout (kernels.h) is built for these loops: one 32-byte
 * load of a TERNARY2 row holds 128 weights, and the 2-bit field k of every
 * byte lines up with the contiguous activation slice x[32k .. 32k+31].
 *
 * AVX2: fields are unpacked with shifts and masks into bytes 0..2 and
 * multiplied with VPMADDUBSW (unsigned weight × signed activation, pairs summed
 * in int16: at most 2·2·127 per lane, four of them at most 2032), then widened
 * with VPMADDWD. When several tokens are multiplied at once (prefill), one
 * unpacked group serves up to four tokens.
 *
 * AVX-VNNI: VPDPBUSD multiplies and accumulates four byte pairs into int32 in
 * one instruction. For one token (decoding) the fields are not shifted at all:
 * field k is masked in place (values 0, 4^k, 2·4^k) and accumulated into its
 * own register, which the end divides by 4^k exactly (every product in it is
 * a multiple of 4^k); that leaves two instructions per 32 weights. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "infer/kernels.h"

#define OB_INLINE static inline __attribute__((always_inline))
#define OB_VNNI __attribute__((target("avx2,fma,f16c,avxvnni")))

OB_INLINE int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* The lane sums of four vectors at once: one reduction tree. */
OB_INLINE void hsum4_i32(__m256i a, __m256i b, __m256i c, __m256i d, int32_t *raw) {
    __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    _mm_storeu_si128((__m128i *)raw, _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1)));
}

/* raw[t] = Σ lanes of acc[t] for t < nt. */
#define HSUM_TILES(acc, nt, raw)                                                                                       \
    do {                                                                                                               \
        if ((nt) == 4)                                                                                                 \
            hsum4_i32((acc)[0], (acc)[1], (acc)[2], (acc)[3], (raw));                                                  \
        else                                                                                                           \
            for (int t_ = 0; t_ < (nt); t_++)                                                                          \
                (raw)[t_] = hsum_i32((acc)[t_]);                                                                       \
    } while (0)

OB_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Clears the upper halves of the vector registers before returning to SSE
 * code. The compiler inserts this itself, except where a register stays live
 * across a call to a function it knows leaves it alone: then it wrongly
 * believes the state clean, and every later SSE instruction of the caller
 * (libm's expf in the FFN, for one) runs many times slower. */
OB_INLINE void leave_avx(void) { _mm256_zeroupper(); }

OB_INLINE __m256i load(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* Weights are read once per token, in address order (rows are contiguous):
 * asking for the line 4 KiB ahead keeps enough reads in flight for one core to
 * approach the memory bandwidth (the hardware prefetcher alone reached about
 * two thirds of it at the 700M shape). */
#define PREFETCH_AHEAD 4096
OB_INLINE void prefetch_ahead(const uint8_t *p) { _mm_prefetch((const char *)p + PREFETCH_AHEAD, _MM_HINT_T0); }

/* ---- AVX2: raw sums of one row against up to four tokens ------------------------ */

/* Σ of VPMADDUBSW int16 pairs widened to int32. */
OB_INLINE __m256i widen(__m256i p) { return _mm256_madd_epi16(p, _mm256_set1_epi16(1)); }

OB_INLINE void t2_row_avx2(const uint8_t *row, const int8_t *x, size_t ld, int nt, int groups, int32_t *raw) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    for (int g = 0; g < groups; g++) {
        prefetch_ahead(row + 32 * g);
        __m256i v = load(row + 32 * g);
        __m256i u0 = _mm256_and_si256(v, m3);
        __m256i u1 = _mm256_and_si256(_mm256_srli_epi16(v, 2), m3);
        __m256i u2 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m3);
        __m256i u3 = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3);
        for (int t = 0; t < nt; t++) {
            const int8_t *xt = x + t * ld + 128 * g;
            __m256i p = _mm256_maddubs_epi16(u0, load(xt));
            p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u1, load(xt + 32)));
            p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u2, load(xt + 64)));
            p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u3, load(xt + 96)));
            acc[t] = _mm256_add_epi32(acc[t], widen(p));
        }
    }
    HSUM_TILES(acc, nt, raw);
}

OB_INLINE void b1_row_avx2(const uint8_t *row, const int8_t *x, size_t ld, int nt, int groups, int32_t *raw) {
    const __m256i m1 = _mm256_set1_epi8(1);
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    for (int g = 0; g < groups; g++) {
        prefetch_ahead(row + 32 * g);
        __m256i v = load(row + 32 * g);
        __m256i u[8];
        for (int k = 0; k < 8; k++)
            u[k] = _mm256_and_si256(_mm256_srli_epi16(v, k), m1);
        for (int t = 0; t < nt; t++) {
            const int8_t *xt = x + t * ld + 256 * g;
            __m256i p = _mm256_maddubs_epi16(u[0], load(xt));
            for (int k = 1; k < 8; k++)
                p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u[k], load(xt + 32 * k)));
            acc[t] = _mm256_add_epi32(acc[t], widen(p));
        }
    }
    HSUM_TILES(acc, nt, raw);
}

OB_INLINE void i4_row_avx2(const uint8_t *row, const int8_t *x, size_t ld, int nt, int groups, int32_t *raw) {
    const __m256i m15 = _mm256_set1_epi8(15);
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    for (int g = 0; g < groups; g++) {
        prefetch_ahead(row + 32 * g);
        __m256i v = load(row + 32 * g);
        __m256i lo = _mm256_and_si256(v, m15), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m15);
        for (int t = 0; t < nt; t++) {
            const int8_t *xt = x + t * ld + 64 * g;
            __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, load(xt)), _mm256_maddubs_epi16(hi, load(xt + 32)));
            acc[t] = _mm256_add_epi32(acc[t], widen(p));
        }
    }
    HSUM_TILES(acc, nt, raw);
}

OB_INLINE void i8_row_avx2(const uint8_t *row, const int8_t *x, size_t ld, int nt, int groups, int32_t *raw) {
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    for (int g = 0; g < groups; g++) {
        prefetch_ahead(row + 32 * g);
        __m256i w = load(row + 32 * g);
        __m256i aw = _mm256_abs_epi8(w);
        for (int t = 0; t < nt; t++) {
            __m256i xs = _mm256_sign_epi8(load(x + t * ld + 32 * g), w);
            acc[t] = _mm256_add_epi32(acc[t], widen(_mm256_maddubs_epi16(aw, xs)));
        }
    }
    HSUM_TILES(acc, nt, raw);
}

/* One row against tokens [t0, t0 + nt): the raw sums. */
OB_INLINE void row_raw_avx2(const ob_packed_tensor *w, const uint8_t *row, const int8_t *x, size_t ld, int nt,
                            int32_t *raw) {
    int kp = w->cols_padded;
    switch (w->dtype) {
    case OB_DTYPE_TERNARY2: t2_row_avx2(row, x, ld, nt, kp / 128, raw); break;
    case OB_DTYPE_BINARY1: b1_row_avx2(row, x, ld, nt, kp / 256, raw); break;
    case OB_DTYPE_FOURBIT: i4_row_avx2(row, x, ld, nt, kp / 64, raw); break;
    default: i8_row_avx2(row, x, ld, nt, kp / 32, raw); break;
    }
}

static void row_raw_avx2_any(const ob_packed_tensor *w, const uint8_t *row, const int8_t *x, size_t ld, int nt,
                             int32_t *raw) {
    switch (nt) {
    case 1: row_raw_avx2(w, row, x, ld, 1, raw); break;
    case 2: row_raw_avx2(w, row, x, ld, 2, raw); break;
    case 3: row_raw_avx2(w, row, x, ld, 3, raw); break;
    default: row_raw_avx2(w, row, x, ld, 4, raw); break;
    }
}

OB_INLINE void store_outputs(const ob_packed_tensor *w, const ob_qact *x, int r, int t0, int nt, const int32_t *raw,
                          float *y, int ldy) {
    for (int t = 0; t < nt; t++)
        y[(size_t)(t0 + t) * ldy + r] =
            ob_q_output(w, r, ob_q_correct(w->dtype, raw[t], x->sums[t0 + t]), x->inv_scales[t0 + t]);
}

static void qgemm_avx2(const ob_packed_tensor *w, const ob_qact *x, int r0, int r1, float *y, int ldy) {
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (int t0 = 0; t0 < x->n; t0 += 4) {
            int nt = x->n - t0 < 4 ? x->n - t0 : 4;
            int32_t raw[4];
            row_raw_avx2_any(w, row, x->codes + (size_t)t0 * x->ld, (size_t)x->ld, nt, raw);
            store_outputs(w, x, r, t0, nt, raw, y, ldy);
        }
    }
    leave_avx();
}

/* ---- float activations ------------------------------------------------------------ */

OB_INLINE __m256 load_w8(const uint8_t *row, bool half, int j) {
    if (half)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + j)));
    return _mm256_loadu_ps((const float *)row + j);
}

OB_INLINE float load_w1(const uint8_t *row, bool half, int j) {
    return half ? ob_f16_to_f32(((const uint16_t *)row)[j]) : ((const float *)row)[j];
}

OB_INLINE void frow_avx2(const uint8_t *row, bool half, const float *x, int ldx, int nt, int K, float *out) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int j = 0;
    for (; j + 8 <= K; j += 8) {
        __m256 wv = load_w8(row, half, j);
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (size_t)t * ldx + j), acc[t]);
    }
    for (int t = 0; t < nt; t++) {
        float s = hsum_ps(acc[t]);
        for (int jj = j; jj < K; jj++)
            s += load_w1(row, half, jj) * x[(size_t)t * ldx + jj];
        out[t] = s;
    }
}

static void fgemm_avx2(const ob_packed_tensor *w, const float *x, int n, int ldx, int r0, int r1, float *y,
                       int ldy) {
    bool half = w->dtype == OB_DTYPE_F16;
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (int t0 = 0; t0 < n; t0 += 4) {
            int nt = n - t0 < 4 ? n - t0 : 4;
            float out[4];
            const float *xt = x + (size_t)t0 * ldx;
            switch (nt) {
            case 1: frow_avx2(row, half, xt, ldx, 1, w->cols, out); break;
            case 2: frow_avx2(row, half, xt, ldx, 2, w->cols, out); break;
            case 3: frow_avx2(row, half, xt, ldx, 3, w->cols, out); break;
            default: frow_avx2(row, half, xt, ldx, 4, w->cols, out); break;
            }
            for (int t = 0; t < nt; t++)
                y[(size_t)(t0 + t) * ldy + r] = out[t];
        }
    }
    leave_avx();
}

static float dot_avx2(const float *a, const float *b, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    float s = hsum_ps(acc);
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void axpy_avx2(float *y, float a, const float *x, int n) {
    __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

const ob_kernels ob_kernels_avx2 = {OB_ISA_AVX2, qgemm_avx2, fgemm_avx2, dot_avx2, axpy_avx2};

/* ---- AVX-VNNI --------------------------------------------------------------------- */

OB_VNNI static inline __m256i dp(__m256i acc, __m256i u, __m256i x) { return _mm256_dpbusd_avx_epi32(acc, u, x); }

/* Decoding: two rows against one token, fields masked in place (see the top). */
OB_VNNI static void t2_rows2_vnni(const uint8_t *ra, const uint8_t *rb, const int8_t *x, int groups, int32_t *raw) {
    const __m256i m0 = _mm256_set1_epi8(0x03), m1 = _mm256_set1_epi8(0x0C), m2 = _mm256_set1_epi8(0x30),
                  m3 = _mm256_set1_epi8((char)0xC0);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (int g = 0; g < groups; g++) {
        const int8_t *xg = x + 128 * g;
        prefetch_ahead(rb + 32 * g);
        __m256i x0 = load(xg), x1 = load(xg + 32), x2 = load(xg + 64), x3 = load(xg + 96);
        __m256i va = load(ra + 32 * g), vb = load(rb + 32 * g);
        a0 = dp(a0, _mm256_and_si256(va, m0), x0);
        a1 = dp(a1, _mm256_and_si256(va, m1), x1);
        a2 = dp(a2, _mm256_and_si256(va, m2), x2);
        a3 = dp(a3, _mm256_and_si256(va, m3), x3);
        b0 = dp(b0, _mm256_and_si256(vb, m0), x0);
        b1 = dp(b1, _mm256_and_si256(vb, m1), x1);
        b2 = dp(b2, _mm256_and_si256(vb, m2), x2);
        b3 = dp(b3, _mm256_and_si256(vb, m3), x3);
    }
    __m256i ta = _mm256_add_epi32(_mm256_add_epi32(a0, _mm256_srai_epi32(a1, 2)),
                                  _mm256_add_epi32(_mm256_srai_epi32(a2, 4), _mm256_srai_epi32(a3, 6)));
    __m256i tb = _mm256_add_epi32(_mm256_add_epi32(b0, _mm256_srai_epi32(b1, 2)),
                                  _mm256_add_epi32(_mm256_srai_epi32(b2, 4), _mm256_srai_epi32(b3, 6)));
    raw[0] = hsum_i32(ta);
    raw[1] = hsum_i32(tb);
}

OB_VNNI static void i4_rows2_vnni(const uint8_t *ra, const uint8_t *rb, const int8_t *x, int groups, int32_t *raw) {
    const __m256i lo = _mm256_set1_epi8(0x0F), hi = _mm256_set1_epi8((char)0xF0);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, b0 = a0, b1 = a0;
    for (int g = 0; g < groups; g++) {
        prefetch_ahead(rb + 32 * g);
        __m256i x0 = load(x + 64 * g), x1 = load(x + 64 * g + 32);
        __m256i va = load(ra + 32 * g), vb = load(rb + 32 * g);
        a0 = dp(a0, _mm256_and_si256(va, lo), x0);
        a1 = dp(a1, _mm256_and_si256(va, hi), x1);
        b0 = dp(b0, _mm256_and_si256(vb, lo), x0);
        b1 = dp(b1, _mm256_and_si256(vb, hi), x1);
    }
    raw[0] = hsum_i32(_mm256_add_epi32(a0, _mm256_srai_epi32(a1, 4)));
    raw[1] = hsum_i32(_mm256_add_epi32(b0, _mm256_srai_epi32(b1, 4)));
}

/* Prefill: unpacked fields shared by up to four tokens, two accumulators each. */
OB_VNNI static inline __attribute__((always_inline)) void t2_row_vnni(const uint8_t *row, const int8_t *x, size_t ld,
                                                                     int nt, int groups, int32_t *raw) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i acc[8];
    for (int i = 0; i < 8; i++)
        acc[i] = _mm256_setzero_si256();
    for (int g = 0; g < groups; g++) {
        prefetch_ahead(row + 32 * g);
        __m256i v = load(row + 32 * g);
        __m256i u0 = _mm256_and_si256(v, m3);
        __m256i u1 = _mm256_and_si256(_mm256_srli_epi16(v, 2), m3);
        __m256i u2 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m3);
        __m256i u3 = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3);
        for (int t = 0; t < nt; t++) {
            const int8_t *xt = x + t * ld + 128 * g;
            acc[2 * t] = dp(dp(acc[2 * t], u0, load(xt)), u2, load(xt + 64));
            acc[2 * t + 1] = dp(dp(acc[2 * t + 1], u1, load(xt + 32)), u3, load(xt + 96));
        }
    }
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_add_epi32(acc[2 * t], acc[2 * t + 1]);
    HSUM_TILES(acc, nt, raw);
}

OB_VNNI static inline __attribute__((always_inline)) void i4_row_vnni(const uint8_t *row, const int8_t *x, size_t ld,
                                                                     int nt, int groups, int32_t *raw) {
    const __m256i m15 = _mm256_set1_epi8(15);
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    for (int g = 0; g < groups; g++) {
        prefetch_ahead(row + 32 * g);
        __m256i v = load(row + 32 * g);
        __m256i lo = _mm256_and_si256(v, m15), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m15);
        for (int t = 0; t < nt; t++) {
            const int8_t *xt = x + t * ld + 64 * g;
            acc[t] = dp(dp(acc[t], lo, load(xt)), hi, load(xt + 32));
        }
    }
    HSUM_TILES(acc, nt, raw);
}

OB_VNNI static inline __attribute__((always_inline)) void i8_row_vnni(const uint8_t *row, const int8_t *x, size_t ld,
                                                                     int nt, int groups, int32_t *raw) {
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    for (int g = 0; g < groups; g++) {
        prefetch_ahead(row + 32 * g);
        __m256i w = load(row + 32 * g);
        __m256i aw = _mm256_abs_epi8(w);
        for (int t = 0; t < nt; t++)
            acc[t] = dp(acc[t], aw, _mm256_sign_epi8(load(x + t * ld + 32 * g), w));
    }
    HSUM_TILES(acc, nt, raw);
}

OB_VNNI static inline __attribute__((always_inline)) void row_raw_vnni(const ob_packed_tensor *w, const uint8_t *row,
                                                                      const int8_t *x, size_t ld, int nt,
                                                                      int32_t *raw) {
    int kp = w->cols_padded;
    switch (w->dtype) {
    case OB_DTYPE_TERNARY2: t2_row_vnni(row, x, ld, nt, kp / 128, raw); break;
    case OB_DTYPE_FOURBIT: i4_row_vnni(row, x, ld, nt, kp / 64, raw); break;
    case OB_DTYPE_I8: i8_row_vnni(row, x, ld, nt, kp / 32, raw); break;
    default: row_raw_avx2_any(w, row, x, ld, nt, raw); break;
    }
}

OB_VNNI static void qgemm_vnni(const ob_packed_tensor *w, const ob_qact *x, int r0, int r1, float *y, int ldy) {
    const uint8_t *data = w->data;
    size_t rb = w->row_bytes;
    int r = r0;
    if (x->n == 1 && (w->dtype == OB_DTYPE_TERNARY2 || w->dtype == OB_DTYPE_FOURBIT)) {
        for (; r + 2 <= r1; r += 2) {
            int32_t raw[2];
            if (w->dtype == OB_DTYPE_TERNARY2)
                t2_rows2_vnni(data + (size_t)r * rb, data + (size_t)(r + 1) * rb, x->codes, w->cols_padded / 128, raw);
            else
                i4_rows2_vnni(data + (size_t)r * rb, data + (size_t)(r + 1) * rb, x->codes, w->cols_padded / 64, raw);
            store_outputs(w, x, r, 0, 1, raw, y, ldy);
            store_outputs(w, x, r + 1, 0, 1, raw + 1, y, ldy);
        }
    }
    for (; r < r1; r++) {
        const uint8_t *row = data + (size_t)r * rb;
        for (int t0 = 0; t0 < x->n; t0 += 4) {
            int nt = x->n - t0 < 4 ? x->n - t0 : 4;
            int32_t raw[4];
            const int8_t *xt = x->codes + (size_t)t0 * x->ld;
            switch (nt) {
            case 1: row_raw_vnni(w, row, xt, (size_t)x->ld, 1, raw); break;
            case 2: row_raw_vnni(w, row, xt, (size_t)x->ld, 2, raw); break;
            case 3: row_raw_vnni(w, row, xt, (size_t)x->ld, 3, raw); break;
            default: row_raw_vnni(w, row, xt, (size_t)x->ld, 4, raw); break;
            }
            store_outputs(w, x, r, t0, nt, raw, y, ldy);
        }
    }
    leave_avx();
}

const ob_kernels ob_kernels_avxvnni = {OB_ISA_AVXVNNI, qgemm_vnni, fgemm_avx2, dot_avx2, axpy_avx2};

#endif
