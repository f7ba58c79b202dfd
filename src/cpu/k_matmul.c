/* Matrix products through BLAS (OpenBLAS): the large products of every layer. */
#include "cpu/kernels.h"

void OB_R(ob_cpu_matmul_xwt)(real *y, const real *x, const real *w, int n, int in, int out, real alpha, real beta) {
    OB_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, alpha, x, in, w, in, beta, y, out);
}

void OB_R(ob_cpu_matmul_dyw)(real *dx, const real *dy, const real *w, int n, int in, int out, real alpha, real beta) {
    OB_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, alpha, dy, out, w, in, beta, dx, in);
}

void OB_R(ob_cpu_matmul_dytx)(real *dw, const real *dy, const real *x, int n, int in, int out, real alpha,
                              real beta) {
    OB_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, alpha, dy, out, x, in, beta, dw, in);
}
