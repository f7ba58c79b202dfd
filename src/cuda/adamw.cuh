/* One AdamW update of a float, shared by the optimizer's kernels (k_misc.cu
 * for the vectors, k_quant.cu for the quantiser's matrices). */
#ifndef ONEBIT_CUDA_ADAMW_CUH
#define ONEBIT_CUDA_ADAMW_CUH

#include "cuda/kernels.cuh"

typedef struct {
    float lr, beta1, beta2, eps, bc1, bc2_sqrt, grad_scale, clamp, weight_decay;
} adamw_consts;

static inline adamw_consts adamw_consts_of(const ob_gpu_adamw_step *a) {
    adamw_consts c = {a->lr,
                      a->beta1,
                      a->beta2,
                      a->eps,
                      1.0f - powf(a->beta1, (float)a->step),
                      sqrtf(1.0f - powf(a->beta2, (float)a->step)),
                      a->grad_scale,
                      a->clamp,
                      a->weight_decay};
    return c;
}

__device__ __forceinline__ void adamw_update(float &w, float g, float &m, float &v, float decay, bool clamp,
                                             const adamw_consts &c) {
    float gk = g * c.grad_scale;
    float wk = w * decay;
    float mk = c.beta1 * m + (1.0f - c.beta1) * gk;
    float vk = c.beta2 * v + (1.0f - c.beta2) * gk * gk;
    wk -= c.lr / c.bc1 * mk / (sqrtf(vk) / c.bc2_sqrt + c.eps);
    if (clamp)
        wk = fminf(fmaxf(wk, -c.clamp), c.clamp);
    m = mk;
    v = vk;
    w = wk;
}

/* The update of floats i..i+3 (16-byte aligned), read and written as float4;
 * returns the updated weights. */
__device__ __forceinline__ float4 adamw_update4(float *w, const float *g, float *m, float *v, int64_t i, float decay,
                                                bool clamp, const adamw_consts &c) {
    float4 wv = *(float4 *)(w + i), gv = *(const float4 *)(g + i);
    float4 mv = *(float4 *)(m + i), vv = *(float4 *)(v + i);
    adamw_update(wv.x, gv.x, mv.x, vv.x, decay, clamp, c);
    adamw_update(wv.y, gv.y, mv.y, vv.y, decay, clamp, c);
    adamw_update(wv.z, gv.z, mv.z, vv.z, decay, clamp, c);
    adamw_update(wv.w, gv.w, mv.w, vv.w, decay, clamp, c);
    *(float4 *)(w + i) = wv;
    *(float4 *)(m + i) = mv;
    *(float4 *)(v + i) = vv;
    return wv;
}

#endif
