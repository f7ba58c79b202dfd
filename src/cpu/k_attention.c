/* Causal multi-head attention with grouped-query heads. The probabilities are
 * kept for the backward pass (fine at CPU sequence lengths). Each head is done
 * in blocks of OB_CPU_ATTENTION_BLOCK query rows: the scores, the output and the
 * gradients of a block are BLAS products over the keys up to its last row (the
 * causal triangle, not the whole square), the softmax between them runs on all
 * threads. Heads run one after the other, so the heads that share a key/value
 * head add their dK/dV in a fixed order. */
#include "cpu/kernels.h"

static int min_int(int a, int b) { return a < b ? a : b; }

/* Row t of the scores → probabilities over keys 0..t; the rest of the row
 * (future keys) is set to 0, which the backward products rely on. */
static void softmax_causal_row(real *p, int t, int T) {
    real maxv = -INFINITY;
#pragma omp simd reduction(max : maxv)
    for (int u = 0; u <= t; u++)
        maxv = p[u] > maxv ? p[u] : maxv;
    double sum = OB_R(ob_cpu_exp_shifted)(p, t + 1, maxv);
    real inv = (real)(1.0 / sum);
    for (int u = 0; u <= t; u++)
        p[u] *= inv;
    for (int u = t + 1; u < T; u++)
        p[u] = 0;
}

void OB_R(ob_cpu_attention_forward)(real *o, real *att, const real *q, const real *k, const real *v, int B, int T,
                                    int nh, int nkv, int hd) {
    real scale = (real)(1.0 / sqrt((double)hd));
    int group = nh / nkv, ldq = nh * hd, ldk = nkv * hd;
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < nh; h++) {
            int kh = h / group;
            const real *qh = q + (size_t)b * T * ldq + (size_t)h * hd;
            const real *kb = k + (size_t)b * T * ldk + (size_t)kh * hd;
            const real *vb = v + (size_t)b * T * ldk + (size_t)kh * hd;
            real *oh = o + (size_t)b * T * ldq + (size_t)h * hd;
            real *p = att + ((size_t)b * nh + h) * T * T;
            for (int r0 = 0; r0 < T; r0 += OB_CPU_ATTENTION_BLOCK) {
                int rows = min_int(OB_CPU_ATTENTION_BLOCK, T - r0), keys = r0 + rows;
                real *pr = p + (size_t)r0 * T;
                OB_R(ob_cpu_gemm)(false, true, rows, keys, hd, scale, qh + (size_t)r0 * ldq, ldq, kb, ldk, 0, pr, T);
#pragma omp parallel for schedule(static)
                for (int i = 0; i < rows; i++)
                    softmax_causal_row(pr + (size_t)i * T, r0 + i, T);
                OB_R(ob_cpu_gemm)(false, false, rows, hd, keys, 1, pr, T, vb, ldk, 0, oh + (size_t)r0 * ldq, ldq);
            }
        }
    }
}

void OB_R(ob_cpu_attention_backward)(real *dq, real *dk, real *dv, real *scratch, const real *dout, const real *att,
                                     const real *q, const real *k, const real *v, int B, int T, int nh, int nkv,
                                     int hd) {
    real scale = (real)(1.0 / sqrt((double)hd));
    int group = nh / nkv, ldq = nh * hd, ldk = nkv * hd;
    for (int b = 0; b < B; b++) {
        for (int kh = 0; kh < nkv; kh++) {
            const real *kb = k + (size_t)b * T * ldk + (size_t)kh * hd;
            const real *vb = v + (size_t)b * T * ldk + (size_t)kh * hd;
            real *dkb = dk + (size_t)b * T * ldk + (size_t)kh * hd;
            real *dvb = dv + (size_t)b * T * ldk + (size_t)kh * hd;
            for (int t = 0; t < T; t++)
                for (int j = 0; j < hd; j++)
                    dkb[(size_t)t * ldk + j] = dvb[(size_t)t * ldk + j] = 0;
            for (int h = kh * group; h < (kh + 1) * group; h++) {
                const real *p = att + ((size_t)b * nh + h) * T * T;
                const real *qh = q + (size_t)b * T * ldq + (size_t)h * hd;
                const real *doh = dout + (size_t)b * T * ldq + (size_t)h * hd;
                real *dqh = dq + (size_t)b * T * ldq + (size_t)h * hd;
                for (int r0 = 0; r0 < T; r0 += OB_CPU_ATTENTION_BLOCK) {
                    int rows = min_int(OB_CPU_ATTENTION_BLOCK, T - r0), keys = r0 + rows;
                    const real *pr = p + (size_t)r0 * T, *dor = doh + (size_t)r0 * ldq;
                    /* dV += Pᵀ·dO (P is 0 past the diagonal). */
                    OB_R(ob_cpu_gemm)(true, false, keys, hd, rows, 1, pr, T, dor, ldq, 1, dvb, ldk);
                    /* dP = dO·Vᵀ, then dS = P (dP − Σ P·dP) · scale in place. */
                    OB_R(ob_cpu_gemm)(false, true, rows, keys, hd, 1, dor, ldq, vb, ldk, 0, scratch, keys);
#pragma omp parallel for schedule(static)
                    for (int i = 0; i < rows; i++) {
                        int t = r0 + i;
                        const real *pt = pr + (size_t)i * T;
                        real *ds = scratch + (size_t)i * keys;
                        double pdp = 0;
                        for (int u = 0; u <= t; u++)
                            pdp += (double)pt[u] * ds[u];
                        for (int u = 0; u <= t; u++)
                            ds[u] = pt[u] * (ds[u] - (real)pdp) * scale;
                        for (int u = t + 1; u < keys; u++)
                            ds[u] = 0;
                    }
                    /* dQ = dS·K; dK += dSᵀ·Q. */
                    OB_R(ob_cpu_gemm)(false, false, rows, hd, keys, 1, scratch, keys, kb, ldk, 0,
                                      dqh + (size_t)r0 * ldq, ldq);
                    OB_R(ob_cpu_gemm)(true, false, keys, hd, rows, 1, scratch, keys, qh + (size_t)r0 * ldq, ldq, 1,
                                      dkb, ldk);
                }
            }
        }
    }
}
