/* Cross-entropy with label smoothing ε over rows of logits z:
 * loss = lse − (1−ε)·z_y − ε·mean(z), dloss/dz_v = p_v − (1−ε)[v = y] − ε/V.
 * The exponentials dominate the cost with a large vocabulary: they run as
 * vector loops (ob_cpu_exp_shifted). */
#include "cpu/kernels.h"

double OB_R(ob_cpu_cross_entropy)(real *logits, const int32_t *targets, int n, int V, real smoothing,
                                  real grad_scale, bool want_grad, double *plain_sum) {
    double total = 0, plain = 0;
#pragma omp parallel for schedule(static) reduction(+ : total, plain)
    for (int i = 0; i < n; i++) {
        real *z = logits + (size_t)i * V;
        int y = targets[i];
        real maxv = z[0];
#pragma omp simd reduction(max : maxv)
        for (int v = 1; v < V; v++)
            maxv = z[v] > maxv ? z[v] : maxv;
        real zy = z[y];
        double zsum = 0; /* only the smoothing term needs it */
        if (smoothing != 0) {
#pragma omp simd reduction(+ : zsum)
            for (int v = 0; v < V; v++)
                zsum += z[v];
        }
        double sum = OB_R(ob_cpu_exp_shifted)(z, V, maxv);
        double lse = (double)maxv + log(sum);
        double nll = lse - zy;
        total += (1.0 - smoothing) * nll + smoothing * (lse - zsum / V);
        plain += nll;
        if (want_grad) {
            real inv = (real)(1.0 / sum), off = smoothing / (real)V;
#pragma omp simd
            for (int v = 0; v < V; v++)
                z[v] = (z[v] * inv - off) * grad_scale;
            z[y] -= ((real)1 - smoothing) * grad_scale;
        }
    }
    if (plain_sum)
        *plain_sum += plain;
    return total;
}
