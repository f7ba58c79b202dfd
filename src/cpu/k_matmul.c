/* Matrix products through BLAS (OpenBLAS): the large products of every layer
 * and attention's.
 * Their time can be accumulated (for the benchmark's share of time in products). */
#include "cpu/kernels.h"
#include "onebit/common.h"

static bool profiling;
static double seconds;

void OB_R(ob_cpu_matmul_profile)(bool on) {
    profiling = on;
    seconds = 0;
}

double OB_R(ob_cpu_matmul_seconds)(void) { return seconds; }

#define TIMED(call)                                                                                    \
    do {                                                                                               \
        double t0_ = profiling ? ob_now() : 0;                                                         \
        call;                                                                                          \
        if (profiling)                                                                                 \
            seconds += ob_now() - t0_;                                                                 \
    } while (0)

void OB_R(ob_cpu_matmul_xwt)(real *y, const real *x, const real *w, int n, int in, int out, real alpha, real beta) {
    TIMED(OB_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, alpha, x, in, w, in, beta, y, out));
}

void OB_R(ob_cpu_matmul_dyw)(real *dx, const real *dy, const real *w, int n, int in, int out, real alpha, real beta) {
    TIMED(OB_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, alpha, dy, out, w, in, beta, dx, in));
}

void OB_R(ob_cpu_matmul_dytx)(real *dw, const real *dy, const real *x, int n, int in, int out, real alpha,
                              real beta) {
    TIMED(OB_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, alpha, dy, out, x, in, beta, dw, in));
}

void OB_R(ob_cpu_gemm)(bool ta, bool tb, int m, int n, int k, real alpha, const real *a, int lda, const real *b,
                       int ldb, real beta, real *c, int ldc) {
    TIMED(OB_GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a,
                  lda, b, ldb, beta, c, ldc));
}
