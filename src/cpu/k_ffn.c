/* FFN activations: SiLU, ReLU² and the SwiGLU gate. One loop per activation,
 * so that each vectorises (OB_EXP). */
#include "cpu/kernels.h"

static inline real sigmoid_r(real z) { return (real)1 / ((real)1 + OB_EXP(-z)); }

void OB_R(ob_cpu_ffn_act_forward)(real *h, const real *u, const real *g, size_t count, ob_cpu_act act) {
    switch (act) {
    case OB_ACT_SILU:
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < count; i++)
            h[i] = u[i] * sigmoid_r(u[i]);
        break;
    case OB_ACT_RELU2:
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < count; i++) {
            real r = u[i] > 0 ? u[i] : 0;
            h[i] = r * r;
        }
        break;
    case OB_ACT_SWIGLU:
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < count; i++)
            h[i] = g[i] * sigmoid_r(g[i]) * u[i];
        break;
    }
}

void OB_R(ob_cpu_ffn_act_backward)(real *du, real *dg, const real *dh, const real *u, const real *g, size_t count,
                                   ob_cpu_act act) {
    switch (act) {
    case OB_ACT_SILU:
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < count; i++) {
            real s = sigmoid_r(u[i]);
            du[i] = dh[i] * (s + u[i] * s * ((real)1 - s));
        }
        break;
    case OB_ACT_RELU2:
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < count; i++)
            du[i] = u[i] > 0 ? dh[i] * (real)2 * u[i] : 0;
        break;
    case OB_ACT_SWIGLU:
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < count; i++) {
            real s = sigmoid_r(g[i]);
            du[i] = dh[i] * g[i] * s;
            dg[i] = dh[i] * u[i] * (s + g[i] * s * ((real)1 - s));
        }
        break;
    }
}
