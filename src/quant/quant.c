/* Weight and activation quantisers, written over `real` (see cpu/real.h) so
 * that the finite-difference tests can run them in double precision. Sums
 * over a matrix are taken in double and in a fixed order: the scale of a
 * matrix must not depend on the thread count. */
#include <string.h>

#include "cpu/real.h"
#include "onebit/quant.h"
#include "quant/quant_real.h"

static inline real clampr(real x, real c) { return x > c ? c : (x < -c ? -c : x); }

/* rint(v) for |v| below 2^22 (float; 2^51 in double), in a form that
 * vectorises where libm's rint is a call: adding and subtracting 1.5·2^23
 * (1.5·2^52) rounds to nearest even. NaN and infinities pass through. Its
 * callers round small values: x/β clamped to [−2, 2], and scaled activations
 * within ±(qmax + 1). */
static inline real rint_small(real v) {
#ifdef OB_REAL_DOUBLE
    const real magic = 6755399441055744.0;
#else
    const real magic = 12582912.0f;
#endif
    return (v + magic) - magic;
}

#define STATS_BLOCK 65536 /* elements per partial sum */

/* β, μ and the dynamic-threshold α and mask size of W_c. The sums run over
 * fixed blocks in parallel, and the blocks' partial sums are added in block
 * order (`ordered`): the same bits for any thread count. */
static void matrix_stats(const real *w, size_t n, real c, ob_quant_stats *st) {
    long blocks = (long)((n + STATS_BLOCK - 1) / STATS_BLOCK);
    double abs_sum = 0, sum = 0;
#pragma omp parallel for ordered schedule(static, 1)
    for (long b = 0; b < blocks; b++) {
        size_t i0 = (size_t)b * STATS_BLOCK, i1 = n - i0 < STATS_BLOCK ? n : i0 + STATS_BLOCK;
        double pa = 0, ps = 0;
#pragma omp simd reduction(+ : pa, ps)
        for (size_t i = i0; i < i1; i++) {
            real x = clampr(w[i], c);
            pa += fabs((double)x);
            ps += x;
        }
#pragma omp ordered
        {
            abs_sum += pa;
            sum += ps;
        }
    }
    double beta = abs_sum / (double)n;
    st->beta = beta > 1e-8 ? beta : 1e-8;
    st->mu = sum / (double)n;
    real delta = (real)0.7 * (real)st->beta;
    double above = 0;
    int64_t count = 0;
#pragma omp parallel for ordered schedule(static, 1)
    for (long b = 0; b < blocks; b++) {
        size_t i0 = (size_t)b * STATS_BLOCK, i1 = n - i0 < STATS_BLOCK ? n : i0 + STATS_BLOCK;
        double pa = 0;
        int64_t pc = 0;
#pragma omp simd reduction(+ : pa, pc)
        for (size_t i = i0; i < i1; i++) {
            real a = fabs(clampr(w[i], c));
            pa += a > delta ? a : 0;
            pc += a > delta;
        }
#pragma omp ordered
        {
            above += pa;
            count += pc;
        }
    }
    st->alpha = count ? above / (double)count : 0;
    st->mask_count = count;
}

/* The code (−1, 0 or +1) of a clamped latent weight x: binary by the sign of
 * x − μ; ternary by |x| > δ (dynamic threshold) or by round(x/β) clamped to
 * [−1, 1], where rounding x/β clamped to [−2, 2] first gives the same code. */
static inline real hard_code(ob_quant_mode mode, bool dynamic_threshold, real x, real mu, real beta, real delta) {
    if (mode == OB_MODE_BINARY)
        return x - mu >= 0 ? (real)1 : (real)-1;
    if (dynamic_threshold)
        return fabs(x) > delta ? (x > 0 ? (real)1 : (real)-1) : (real)0;
    real v = x / beta;
    real q = rint_small(v > 2 ? (real)2 : (v < -2 ? (real)-2 : v));
    return q > 1 ? (real)1 : (q < -1 ? (real)-1 : q);
}

void OB_R(ob_quant_weight_hard)(ob_quant_mode mode, bool dynamic_threshold, real clamp, const real *w, int rows,
                                int cols, int8_t *codes, real *row_scales, real *wq, ob_quant_stats *stats) {
    size_t n = (size_t)rows * cols;
    ob_quant_stats st;
    memset(&st, 0, sizeof st);
    if (mode == OB_MODE_EIGHTBIT || mode == OB_MODE_FOURBIT) {
        real qmax = (real)ob_quant_mode_qmax(mode);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++) {
            const real *wr = w + (size_t)r * cols;
            real m = 0;
            for (int j = 0; j < cols; j++) {
                real a = fabs(clampr(wr[j], clamp));
                if (a > m)
                    m = a;
            }
            real s = (m > (real)1e-8 ? m : (real)1e-8) / qmax;
            for (int j = 0; j < cols; j++) {
                real q = rint(clampr(wr[j], clamp) / s);
                q = q > qmax ? qmax : (q < -qmax ? -qmax : q);
                if (codes)
                    codes[(size_t)r * cols + j] = (int8_t)q;
                if (wq)
                    wq[(size_t)r * cols + j] = q * s;
            }
            if (row_scales)
                row_scales[r] = s;
        }
        if (stats)
            *stats = st;
        return;
    }
    matrix_stats(w, n, clamp, &st);
    real beta = (real)st.beta, scale;
    real delta = (real)0.7 * beta;
    if (mode == OB_MODE_TERNARY)
        scale = dynamic_threshold ? (real)st.alpha : beta;
    else
        scale = beta;
    real mu = (real)st.mu;
    /* One loop per output, each vectorising (the mode's branches become selects). */
    if (codes) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++)
            codes[i] = (int8_t)hard_code(mode, dynamic_threshold, clampr(w[i], clamp), mu, beta, delta);
    }
    if (wq) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++)
            wq[i] = hard_code(mode, dynamic_threshold, clampr(w[i], clamp), mu, beta, delta) * scale;
    }
    if (row_scales)
        for (int r = 0; r < rows; r++)
            row_scales[r] = scale;
    if (stats)
        *stats = st;
}

/* Soft quantiser pieces: u, the shape f(u) and f'(u) for one latent entry. */
typedef struct {
    real theta; /* ternary threshold in units of β */
    real beta, mu, sigma, a;
    bool binary;
} soft_params;

static soft_params soft_setup(ob_quant_mode mode, bool dynamic_threshold, real a, const ob_quant_stats *st) {
    soft_params p;
    p.binary = mode == OB_MODE_BINARY;
    p.theta = dynamic_threshold ? (real)0.7 : (real)0.5;
    p.beta = (real)st->beta;
    p.mu = p.binary ? (real)st->mu : 0;
    p.sigma = p.binary ? p.beta : (dynamic_threshold ? (real)st->alpha : p.beta);
    p.a = a;
    return p;
}

static inline void soft_shape(const soft_params *p, real c, real *u, real *f, real *fp) {
    *u = (c - p->mu) / p->beta;
    if (p->binary) {
        real t = tanh(p->a * *u);
        *f = t;
        *fp = p->a * ((real)1 - t * t);
    } else {
        real t1 = tanh(p->a * (*u - p->theta)), t2 = tanh(p->a * (*u + p->theta));
        *f = (real)0.5 * (t1 + t2);
        *fp = (real)0.5 * p->a * (((real)1 - t1 * t1) + ((real)1 - t2 * t2));
    }
}

void OB_R(ob_quant_weight_soft)(ob_quant_mode mode, bool dynamic_threshold, real clamp, real sharpness,
                                const real *w, int rows, int cols, real *wq, ob_quant_stats *stats) {
    size_t n = (size_t)rows * cols;
    ob_quant_stats st;
    matrix_stats(w, n, clamp, &st);
    soft_params p = soft_setup(mode, dynamic_threshold, sharpness, &st);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real u, f, fp;
        soft_shape(&p, clampr(w[i], clamp), &u, &f, &fp);
        wq[i] = p.sigma * f;
    }
    if (stats)
        *stats = st;
}

/* Exact derivative of W_q = σ·f(u) with u = (c − μ)/β, c = clamp(W), where β, μ
 * and σ depend on every c (docs/MODEL.md step 3):
 *   binary (σ = β, μ = mean c):     dc_j = G_j f'_j − (1/n) Σ G f' + (sgn c_j / n) Σ G (f − u f')
 *   ternary absmean (σ = β, μ = 0): dc_j = G_j f'_j + (sgn c_j / n) Σ G (f − u f')
 *   ternary dynamic (σ = α):        dc_j = (α/β) G_j f'_j − (α/β)(sgn c_j / n) Σ G u f'
 *                                          + (sgn c_j [j ∈ M] / |M|) Σ G f
 * and dW_j = dc_j where |W_j| ≤ C, else 0. */
void OB_R(ob_quant_weight_soft_backward)(ob_quant_mode mode, bool dynamic_threshold, real clamp, real sharpness,
                                         const real *w, int rows, int cols, const ob_quant_stats *stats,
                                         const real *g, real *dw) {
    size_t n = (size_t)rows * cols;
    soft_params p = soft_setup(mode, dynamic_threshold, sharpness, stats);
    bool dynamic = !p.binary && dynamic_threshold;
    double sum_gfp = 0, sum_g_f_minus_ufp = 0, sum_gufp = 0, sum_gf = 0;
    for (size_t i = 0; i < n; i++) {
        real u, f, fp;
        soft_shape(&p, clampr(w[i], clamp), &u, &f, &fp);
        sum_gfp += (double)g[i] * fp;
        sum_g_f_minus_ufp += (double)g[i] * (f - u * fp);
        sum_gufp += (double)g[i] * u * fp;
        sum_gf += (double)g[i] * f;
    }
    real inv_n = (real)(1.0 / (double)n);
    real delta = (real)0.7 * p.beta;
    real ratio = p.sigma / p.beta;
    real mask_inv = stats->mask_count ? (real)(1.0 / (double)stats->mask_count) : 0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        if (fabs(w[i]) > clamp)
            continue;
        real c = w[i];
        real sg = c > 0 ? (real)1 : (c < 0 ? (real)-1 : (real)0);
        real u, f, fp, d;
        soft_shape(&p, c, &u, &f, &fp);
        if (p.binary)
            d = g[i] * fp - inv_n * (real)sum_gfp + sg * inv_n * (real)sum_g_f_minus_ufp;
        else if (!dynamic)
            d = g[i] * fp + sg * inv_n * (real)sum_g_f_minus_ufp;
        else
            d = ratio * g[i] * fp - ratio * sg * inv_n * (real)sum_gufp +
                (fabs(c) > delta ? sg * mask_inv * (real)sum_gf : (real)0);
        dw[i] += d;
    }
}

static real activation_scale(const real *x, int d, int bits) {
    real m = 0;
#pragma omp simd reduction(max : m)
    for (int j = 0; j < d; j++) {
        real a = fabs(x[j]);
        m = a > m ? a : m;
    }
    real qmax = (real)((1 << (bits - 1)) - 1);
    return qmax / (m > (real)1e-5 ? m : (real)1e-5);
}

void OB_R(ob_quant_activations)(const real *x, int n, int d, int bits, real *xq) {
    real lo = (real)-(1 << (bits - 1)), hi = (real)((1 << (bits - 1)) - 1);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *xi = x + (size_t)i * d;
        real *yi = xq + (size_t)i * d;
        real s = activation_scale(xi, d, bits);
#pragma omp simd
        for (int j = 0; j < d; j++) {
            real q = rint_small(xi[j] * s);
            q = q > hi ? hi : (q < lo ? lo : q);
            yi[j] = q / s;
        }
    }
}

real OB_R(ob_quant_activation_codes)(const real *x, int d, int bits, int8_t *codes) {
    real lo = (real)-(1 << (bits - 1)), hi = (real)((1 << (bits - 1)) - 1);
    real s = activation_scale(x, d, bits);
    for (int j = 0; j < d; j++) {
        real q = rint(x[j] * s);
        /* A NaN (from activations that overflowed) becomes code 0: converting it is undefined. */
        codes[j] = (int8_t)(q > hi ? hi : (q < lo ? lo : (q == q ? q : 0)));
    }
    return s;
}
