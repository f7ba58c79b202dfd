/* Rotary position embeddings on interleaved pairs (2j, 2j+1) of each head. */
#include "cpu/kernels.h"

void OB_R(ob_cpu_rope_table)(real *cos_t, real *sin_t, int T, int hd, double theta) {
    int half = hd / 2;
    for (int t = 0; t < T; t++) {
        for (int j = 0; j < half; j++) {
            double phi = (double)t * pow(theta, -2.0 * j / hd);
            cos_t[(size_t)t * half + j] = (real)cos(phi);
            sin_t[(size_t)t * half + j] = (real)sin(phi);
        }
    }
}

void OB_R(ob_cpu_rope)(real *x, const real *cos_t, const real *sin_t, int B, int T, int heads, int hd, bool inverse) {
    int half = hd / 2;
    real sign = inverse ? (real)-1 : (real)1;
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        const real *c = cos_t + (size_t)t * half, *s = sin_t + (size_t)t * half;
        for (int h = 0; h < heads; h++) {
            real *v = x + ((size_t)bt * heads + h) * hd;
            for (int j = 0; j < half; j++) {
                real a = v[2 * j], b = v[2 * j + 1];
                real sn = sign * s[j];
                v[2 * j] = a * c[j] - b * sn;
                v[2 * j + 1] = a * sn + b * c[j];
            }
        }
    }
}
