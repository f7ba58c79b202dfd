/* The exponentials of a softmax row, as one vector loop per chunk (OB_EXP). */
#include "cpu/kernels.h"

#define EXP_CHUNK 256

/* Compiled for AVX-512 and AVX2 as well, picked at load time (GCC/clang
 * function multiversioning): two and four times the lanes of baseline SSE2. */
__attribute__((target_clones("avx512f", "avx2", "default")))
double OB_R(ob_cpu_exp_shifted)(real *z, int n, real shift) {
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
