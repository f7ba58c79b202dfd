/* The elementary functions of the inference runtimes, freestanding and written
 * once: the full runtime (src/infer) and the embedded runtime
 * (onebit_embedded.c) both call these, so that a model gives the same bits on
 * a desktop CPU and on a microcontroller. C libraries round exp differently
 * (glibc's expf misrounds about one float input in 13,000), so a libm call in
 * either runtime would make their logits drift apart in the last bit, and a
 * last bit is enough to move an activation code. Every function here uses
 * IEEE double or float arithmetic only (no fused multiply-add, no long double,
 * no lookup of the rounding mode), which gives identical results on x86-64 and
 * on Cortex-M (where libgcc emulates double precision exactly).
 *
 * obe_exp: exp(x) within about one ulp (a table of 2^(i/64) and a degree-5
 * polynomial over |r| <= ln2/128); obe_expf rounds it to float, which is then
 * the correctly rounded expf but for one input in hundreds of millions.
 * obe_sqrt: the correctly rounded square root (as IEEE requires of sqrt), by
 * integer digit recurrence. obe_rintf: round half to even, as rintf in the
 * default rounding mode. obe_f16_to_f32: exact widening of IEEE half. */
#ifndef ONEBIT_MATH_H
#define ONEBIT_MATH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef union obe_bits64 {
    double d;
    uint64_t u;
} obe_bits64;

typedef union obe_bits32 {
    float f;
    uint32_t u;
} obe_bits32;

static inline double obe_from_bits64(uint64_t u) {
    obe_bits64 b;
    b.u = u;
    return b.d;
}

static inline uint64_t obe_bits_of64(double d) {
    obe_bits64 b;
    b.d = d;
    return b.u;
}

static inline float obe_from_bits32(uint32_t u) {
    obe_bits32 b;
    b.u = u;
    return b.f;
}

static inline uint32_t obe_bits_of32(float f) {
    obe_bits32 b;
    b.f = f;
    return b.u;
}

/* 2^(i/64), i = 0..63, each the double nearest to the exact value. */
static const double obe_exp2_table[64] = {
    0x1.0000000000000p+0, 0x1.02c9a3e778061p+0, 0x1.059b0d3158574p+0, 0x1.0874518759bc8p+0,
    0x1.0b5586cf9890fp+0, 0x1.0e3ec32d3d1a2p+0, 0x1.11301d0125b51p+0, 0x1.1429aaea92de0p+0,
    0x1.172b83c7d517bp+0, 0x1.1a35beb6fcb75p+0, 0x1.1d4873168b9aap+0, 0x1.2063b88628cd6p+0,
    0x1.2387a6e756238p+0, 0x1.26b4565e27cddp+0, 0x1.29e9df51fdee1p+0, 0x1.2d285a6e4030bp+0,
    0x1.306fe0a31b715p+0, 0x1.33c08b26416ffp+0, 0x1.371a7373aa9cbp+0, 0x1.3a7db34e59ff7p+0,
    0x1.3dea64c123422p+0, 0x1.4160a21f72e2ap+0, 0x1.44e086061892dp+0, 0x1.486a2b5c13cd0p+0,
    0x1.4bfdad5362a27p+0, 0x1.4f9b2769d2ca7p+0, 0x1.5342b569d4f82p+0, 0x1.56f4736b527dap+0,
    0x1.5ab07dd485429p+0, 0x1.5e76f15ad2148p+0, 0x1.6247eb03a5585p+0, 0x1.6623882552225p+0,
    0x1.6a09e667f3bcdp+0, 0x1.6dfb23c651a2fp+0, 0x1.71f75e8ec5f74p+0, 0x1.75feb564267c9p+0,
    0x1.7a11473eb0187p+0, 0x1.7e2f336cf4e62p+0, 0x1.82589994cce13p+0, 0x1.868d99b4492edp+0,
    0x1.8ace5422aa0dbp+0, 0x1.8f1ae99157736p+0, 0x1.93737b0cdc5e5p+0, 0x1.97d829fde4e50p+0,
    0x1.9c49182a3f090p+0, 0x1.a0c667b5de565p+0, 0x1.a5503b23e255dp+0, 0x1.a9e6b5579fdbfp+0,
    0x1.ae89f995ad3adp+0, 0x1.b33a2b84f15fbp+0, 0x1.b7f76f2fb5e47p+0, 0x1.bcc1e904bc1d2p+0,
    0x1.c199bdd85529cp+0, 0x1.c67f12e57d14bp+0, 0x1.cb720dcef9069p+0, 0x1.d072d4a07897cp+0,
    0x1.d5818dcfba487p+0, 0x1.da9e603db3285p+0, 0x1.dfc97337b9b5fp+0, 0x1.e502ee78b3ff6p+0,
    0x1.ea4afa2a490dap+0, 0x1.efa1bee615a27p+0, 0x1.f50765b6e4540p+0, 0x1.fa7c1819e90d8p+0,
};

/* y · 2^m for a finite y in [1, 2) and any m: two steps where 2^m alone would
 * not be a normal double (the second step rounds once into the subnormals). */
static inline double obe_scale2(double y, int32_t m) {
    if (m > 1023)
        return y * obe_from_bits64((uint64_t)(1023 + 1023) << 52) * obe_from_bits64((uint64_t)(m - 1023 + 1023) << 52);
    if (m < -1022)
        return y * obe_from_bits64((uint64_t)(m + 600 + 1023) << 52) * obe_from_bits64((uint64_t)(-600 + 1023) << 52);
    return y * obe_from_bits64((uint64_t)(m + 1023) << 52);
}

static inline double obe_exp(double x) {
    if (x != x)
        return x;
    if (x > 709.8)
        return obe_from_bits64(0x7ff0000000000000ull);
    if (x < -745.2)
        return 0.0;
    /* x = k·ln2/64 + r, |r| <= ln2/128; ln2/64 split so that k·hi is exact. */
    const double inv_ln2_64 = 0x1.71547652b82fep+6, ln2_64_hi = 0x1.62e42fee00000p-7,
                 ln2_64_lo = 0x1.a39ef35793c76p-39, shifter = 0x1.8p52;
    double kd = (x * inv_ln2_64 + shifter) - shifter; /* round to nearest, ties to even */
    int32_t k = (int32_t)kd;
    double r = (x - kd * ln2_64_hi) - kd * ln2_64_lo;
    /* e^r - 1 = r + r²(1/2 + r(1/6 + r(1/24 + r/120))); the next term is below 2^-54. */
    double q = r + r * r * (0.5 + r * (0x1.5555555555555p-3 + r * (0x1.5555555555555p-5 + r * 0x1.1111111111111p-7)));
    uint32_t j = (uint32_t)k & 63u;
    int32_t m = (k - (int32_t)j) / 64;
    double t = obe_exp2_table[j];
    return obe_scale2(t + t * q, m);
}

static inline float obe_expf(float x) { return (float)obe_exp((double)x); }

/* The correctly rounded square root: digit recurrence over the 110-bit
 * radicand m·2^56 gives 55 bits of root, then one rounding to 53. */
static inline double obe_sqrt(double x) {
    uint64_t b = obe_bits_of64(x);
    if (x == 0 || x != x)
        return x;
    if (x < 0)
        return obe_from_bits64(0x7ff8000000000000ull);
    int32_t e = (int32_t)(b >> 52) & 0x7ff;
    if (e == 0x7ff)
        return x; /* +inf */
    uint64_t m = b & ((1ull << 52) - 1);
    if (e == 0) { /* subnormal: normalise */
        e = 1;
        while (!(m & (1ull << 52))) {
            m <<= 1;
            e--;
        }
    } else {
        m |= 1ull << 52;
    }
    int32_t ex = e - 1075; /* x = m·2^ex */
    if (ex & 1) {
        m <<= 1;
        ex -= 1;
    }
    uint64_t hi = m >> 8, lo = m << 56; /* the radicand m·2^56 = hi·2^64 + lo */
    uint64_t root = 0, rem = 0;
    for (int i = 54; i >= 0; i--) {
        uint64_t pair = 2 * i >= 64 ? (hi >> (2 * i - 64)) & 3 : (lo >> (2 * i)) & 3;
        rem = (rem << 2) | pair;
        uint64_t trial = (root << 2) | 1;
        root <<= 1;
        if (rem >= trial) {
            rem -= trial;
            root |= 1;
        }
    }
    /* root = floor(sqrt(m·2^56)) in [2^54, 2^55): keep 53 bits, round to nearest even. */
    uint64_t mant = root >> 2;
    uint64_t guard = (root >> 1) & 1, sticky = (root & 1) | (rem != 0);
    if (guard && (sticky || (mant & 1)))
        mant++;
    int32_t biased = ex / 2 - 26 + 52 + 1023; /* value = mant·2^(ex/2 - 26) */
    return obe_from_bits64(((uint64_t)biased << 52) + (mant - (1ull << 52)));
}

static inline float obe_rintf(float x) {
    float a = x < 0 ? -x : x;
    if (!(a < 0x1p23f))
        return x; /* already an integer, or NaN */
    float r = (a + 0x1p23f) - 0x1p23f;
    return x < 0 ? -r : (x > 0 ? r : x);
}

static inline float obe_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0x1f)
        return obe_from_bits32(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        if (m == 0)
            return obe_from_bits32(sign);
        e = 113; /* 127 - 15 + 1 */
        while (!(m & 0x400)) {
            m <<= 1;
            e--;
        }
        return obe_from_bits32(sign | (e << 23) | ((m & 0x3ff) << 13));
    }
    return obe_from_bits32(sign | ((e + 112) << 23) | (m << 13));
}

#ifdef __cplusplus
}
#endif
#endif
