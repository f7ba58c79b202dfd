/* RMSNorm and bias-free LayerNorm, forward and backward. Row statistics are
 * accumulated in double so that the float build stays close to the reference. */
#include "cpu/kernels.h"

#define NORM_DG_COLS 64

real OB_R(ob_cpu_norm_row)(real *y, const real *x, const real *g, int d, real eps, bool layernorm, real *mean) {
    double m = 0;
    if (layernorm) {
        for (int j = 0; j < d; j++)
            m += x[j];
        m /= d;
    }
    double ss = 0;
    for (int j = 0; j < d; j++) {
        double c = x[j] - m;
        ss += c * c;
    }
    real r = (real)(1.0 / sqrt(ss / d + (double)eps));
    real mr = (real)m;
    for (int j = 0; j < d; j++)
        y[j] = (x[j] - mr) * r * g[j];
    *mean = mr;
    return r;
}

void OB_R(ob_cpu_norm_forward)(real *y, real *mean, real *rstd, const real *x, const real *g, int n, int d, real eps,
                               bool layernorm) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        real mr;
        rstd[i] = OB_R(ob_cpu_norm_row)(y + (size_t)i * d, x + (size_t)i * d, g, d, eps, layernorm, &mr);
        if (layernorm)
            mean[i] = mr;
    }
}

/* With x̂ = (x − μ)·r: dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) for LayerNorm and
 * dx = r·(dx̂ − x̂·mean(dx̂·x̂)) for RMSNorm (μ = 0), where dx̂ = dy·g. */
void OB_R(ob_cpu_norm_backward)(real *dx, real *dg, const real *dy, const real *x, const real *g, const real *mean,
                                const real *rstd, int n, int d, bool layernorm) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *xi = x + (size_t)i * d, *dyi = dy + (size_t)i * d;
        real *dxi = dx + (size_t)i * d;
        real m = layernorm ? mean[i] : 0, r = rstd[i];
        double sum_dxh = 0, sum_dxh_xh = 0;
#pragma omp simd reduction(+ : sum_dxh, sum_dxh_xh)
        for (int j = 0; j < d; j++) {
            double dxh = (double)dyi[j] * g[j];
            double xh = (double)(xi[j] - m) * r;
            sum_dxh += dxh;
            sum_dxh_xh += dxh * xh;
        }
        real mean_dxh = layernorm ? (real)(sum_dxh / d) : 0;
        real mean_dxh_xh = (real)(sum_dxh_xh / d);
#pragma omp simd
        for (int j = 0; j < d; j++) {
            real xh = (xi[j] - m) * r;
            dxi[j] = r * (dyi[j] * g[j] - mean_dxh - xh * mean_dxh_xh);
        }
    }
    /* Gains: every column summed over the rows in order (a fixed order, whatever
     * the threads), a block of NORM_DG_COLS columns per task so that the rows
     * are read a stretch at a time. */
#pragma omp parallel for schedule(static)
    for (int j0 = 0; j0 < d; j0 += NORM_DG_COLS) {
        int j1 = d - j0 < NORM_DG_COLS ? d : j0 + NORM_DG_COLS;
        double acc[NORM_DG_COLS] = {0};
        for (int i = 0; i < n; i++) {
            const real *xi = x + (size_t)i * d, *dyi = dy + (size_t)i * d;
            real m = layernorm ? mean[i] : 0, r = rstd[i];
#pragma omp simd
            for (int j = j0; j < j1; j++)
                acc[j - j0] += (double)dyi[j] * (xi[j] - m) * r;
        }
        for (int j = j0; j < j1; j++)
            dg[j] += (real)acc[j - j0];
    }
}
