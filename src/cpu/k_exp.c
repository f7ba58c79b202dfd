/* The exponentials of a softmax row, as one vector loop per chunk (OB_EXP). */
#include "cpu/kernels.h"

#define EXP_CHUNK 256

static inline double exp_shifted(real *z, int n, real shift) {
    double sum = 0;
    for (int i0 = 0; i0 < n; i0 += EXP_CHUNK) {
        int i1 = n - i0 < EXP_CHUNK ? n : i0 + EXP_CHUNK;
        real s = 0;
#pragma omp simd reduction(+ : s)
        for (int i = i0; i < i1; i++) {
            z[i] = OB_EXP(z[i] - shift);
            s += z[i];
        }
        sum += s;
    }
    return sum;
}

/* On x86-64 the float loop is also compiled for AVX-512 and AVX2 (four and
 * two times the lanes of the baseline SSE2) and picked from CPUID. */
#if defined(__x86_64__) && !defined(OB_REAL_DOUBLE)
#define EXP_DISPATCH
__attribute__((target("avx512f"))) static double exp_shifted_avx512(real *z, int n, real shift) {
    return exp_shifted(z, n, shift);
}
__attribute__((target("avx2"))) static double exp_shifted_avx2(real *z, int n, real shift) {
    return exp_shifted(z, n, shift);
}
#endif

double OB_R(ob_cpu_exp_shifted)(real *z, int n, real shift) {
#ifdef EXP_DISPATCH
    if (__builtin_cpu_supports("avx512f"))
        return exp_shifted_avx512(z, n, shift);
    if (__builtin_cpu_supports("avx2"))
        return exp_shifted_avx2(z, n, shift);
#endif
    return exp_shifted(z, n, shift);
}
