/* Causal multi-head attention with grouped-query heads. The probabilities are
 * kept for the backward pass (fine at CPU sequence lengths). Work is split by
 * (batch, key/value head) so that the heads sharing a key/value head accumulate
 * their gradients without races. */
#include "cpu/kernels.h"

void OB_R(ob_cpu_attention_forward)(real *o, real *att, const real *q, const real *k, const real *v, int B, int T,
                                    int nh, int nkv, int hd) {
    real scale = (real)(1.0 / sqrt((double)hd));
    int group = nh / nkv;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < nh; h++) {
            int kh = h / group;
            for (int t = 0; t < T; t++) {
                const real *qt = q + (((size_t)b * T + t) * nh + h) * hd;
                real *p = att + (((size_t)b * nh + h) * T + t) * T;
                real maxv = -INFINITY;
                for (int u = 0; u <= t; u++) {
                    const real *ku = k + (((size_t)b * T + u) * nkv + kh) * hd;
                    real s = 0;
                    for (int j = 0; j < hd; j++)
                        s += qt[j] * ku[j];
                    s *= scale;
                    p[u] = s;
                    if (s > maxv)
                        maxv = s;
                }
                double sum = 0;
                for (int u = 0; u <= t; u++) {
                    p[u] = exp(p[u] - maxv);
                    sum += p[u];
                }
                real inv = (real)(1.0 / sum);
                for (int u = 0; u <= t; u++)
                    p[u] *= inv;
                real *ot = o + (((size_t)b * T + t) * nh + h) * hd;
                for (int j = 0; j < hd; j++)
                    ot[j] = 0;
                for (int u = 0; u <= t; u++) {
                    const real *vu = v + (((size_t)b * T + u) * nkv + kh) * hd;
                    for (int j = 0; j < hd; j++)
                        ot[j] += p[u] * vu[j];
                }
            }
        }
    }
}

void OB_R(ob_cpu_attention_backward)(real *dq, real *dk, real *dv, const real *dout, const real *att, const real *q,
                                     const real *k, const real *v, int B, int T, int nh, int nkv, int hd) {
    real scale = (real)(1.0 / sqrt((double)hd));
    int group = nh / nkv;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int kh = 0; kh < nkv; kh++) {
            for (int t = 0; t < T; t++) {
                real *dkt = dk + (((size_t)b * T + t) * nkv + kh) * hd;
                real *dvt = dv + (((size_t)b * T + t) * nkv + kh) * hd;
                for (int j = 0; j < hd; j++)
                    dkt[j] = dvt[j] = 0;
            }
            for (int h = kh * group; h < (kh + 1) * group; h++) {
                for (int t = 0; t < T; t++) {
                    const real *p = att + (((size_t)b * nh + h) * T + t) * T;
                    const real *dot = dout + (((size_t)b * T + t) * nh + h) * hd;
                    const real *qt = q + (((size_t)b * T + t) * nh + h) * hd;
                    real *dqt = dq + (((size_t)b * T + t) * nh + h) * hd;
                    /* dP_u = dout·v_u; dS_u = P_u (dP_u − Σ P·dP). */
                    double pdp = 0;
                    for (int u = 0; u <= t; u++) {
                        const real *vu = v + (((size_t)b * T + u) * nkv + kh) * hd;
                        real dp = 0;
                        for (int j = 0; j < hd; j++)
                            dp += dot[j] * vu[j];
                        pdp += (double)p[u] * dp;
                    }
                    for (int j = 0; j < hd; j++)
                        dqt[j] = 0;
                    for (int u = 0; u <= t; u++) {
                        const real *vu = v + (((size_t)b * T + u) * nkv + kh) * hd;
                        const real *ku = k + (((size_t)b * T + u) * nkv + kh) * hd;
                        real *dku = dk + (((size_t)b * T + u) * nkv + kh) * hd;
                        real *dvu = dv + (((size_t)b * T + u) * nkv + kh) * hd;
                        real dp = 0;
                        for (int j = 0; j < hd; j++)
                            dp += dot[j] * vu[j];
                        real ds = p[u] * (dp - (real)pdp) * scale;
                        for (int j = 0; j < hd; j++) {
                            dqt[j] += ds * ku[j];
                            dku[j] += ds * qt[j];
                            dvu[j] += p[u] * dot[j];
                        }
                    }
                }
            }
        }
    }
}
