/* e^x in float, written so that loops calling it vectorise (#pragma omp simd),
 * which libm's expf does not: the softmax of the cross-entropy over a large
 * vocabulary spent most of its time in expf. x·log2(e) is rounded to an
 * integer n (adding and subtracting 1.5·2^23), r = x − n·ln2 with ln2 in two
 * parts, e^r from its Taylor polynomial of degree 7 (truncation below 1e-8 on
 * |r| ≤ ln2/2), times 2^n built in the exponent bits. Within 2 ulp of expf
 * (tests/unit/test_fast_exp.c); 0 below −87.33 (where 2^n would leave the
 * normal floats; expf's subnormal results there are below 1.2e-38), e^88.376
 * ≈ 2.4e38 (finite) above 88.376, NaN for NaN. */
#ifndef ONEBIT_CPU_FAST_EXP_H
#define ONEBIT_CPU_FAST_EXP_H

#include <stdint.h>
#include <string.h>

#define OB_FAST_EXP_MIN (-87.33654f)
#define OB_FAST_EXP_MAX 88.37626f

static inline float ob_fast_expf(float x) {
    float c = x > OB_FAST_EXP_MIN ? x : OB_FAST_EXP_MIN; /* NaN becomes the minimum here */
    c = c < OB_FAST_EXP_MAX ? c : OB_FAST_EXP_MAX;
    float n = (c * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = c - n * 0.693145751953125f;
    r = r - n * 1.42860677e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    return x != x ? x : x < OB_FAST_EXP_MIN ? 0.0f : y;
}

#endif
