/* W consecutive elements of a row as floats, in one access where W allows:
 * W = 4 fp32 (16 bytes), W = 4 bf16 (8 bytes), W = 8 bf16 (16 bytes); W = 1
 * is the fallback for rows whose starts are not aligned. Stores of bf16 round
 * to nearest after multiplying by `scale`. */
#ifndef ONEBIT_CUDA_VEC_ACCESS_CUH
#define ONEBIT_CUDA_VEC_ACCESS_CUH

#include "cuda/cuda_common.cuh"

__device__ __forceinline__ void load_w(float (&v)[4], const float *p) {
    float4 t = *(const float4 *)p;
    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
}
__device__ __forceinline__ void load_w(float (&v)[1], const float *p) { v[0] = *p; }
__device__ __forceinline__ void load_w(float (&v)[8], const bf16 *p) {
    uint4 t = *(const uint4 *)p;
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&t;
    for (int k = 0; k < 4; k++) {
        float2 f = __bfloat1622float2(h[k]);
        v[2 * k] = f.x, v[2 * k + 1] = f.y;
    }
}
__device__ __forceinline__ void load_w(float (&v)[4], const bf16 *p) {
    uint2 t = *(const uint2 *)p;
    float2 lo = __bfloat1622float2(*(const __nv_bfloat162 *)&t.x),
           hi = __bfloat1622float2(*(const __nv_bfloat162 *)&t.y);
    v[0] = lo.x, v[1] = lo.y, v[2] = hi.x, v[3] = hi.y;
}
__device__ __forceinline__ void load_w(float (&v)[1], const bf16 *p) { v[0] = __bfloat162float(*p); }

__device__ __forceinline__ void store_w(float *p, const float (&v)[4]) {
    *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void store_w(float *p, const float (&v)[1]) { *p = v[0]; }
__device__ __forceinline__ void store_w(bf16 *p, const float (&v)[8], float scale = 1.0f) {
    uint4 t;
    __nv_bfloat162 *h = (__nv_bfloat162 *)&t;
    for (int k = 0; k < 4; k++)
        h[k] = __floats2bfloat162_rn(scale * v[2 * k], scale * v[2 * k + 1]);
    *(uint4 *)p = t;
}
__device__ __forceinline__ void store_w(bf16 *p, const float (&v)[4], float scale = 1.0f) {
    __nv_bfloat162 lo = __floats2bfloat162_rn(scale * v[0], scale * v[1]);
    __nv_bfloat162 hi = __floats2bfloat162_rn(scale * v[2], scale * v[3]);
    *(uint2 *)p = make_uint2(*(const unsigned *)&lo, *(const unsigned *)&hi);
}
__device__ __forceinline__ void store_w(bf16 *p, const float (&v)[1], float scale = 1.0f) {
    *p = __float2bfloat16(scale * v[0]);
}

/* Whether every pointer is aligned to `bytes`. */
static inline bool all_aligned(size_t bytes, const void *a, const void *b = NULL, const void *c = NULL,
                               const void *d = NULL, const void *e = NULL) {
    return (uintptr_t)a % bytes == 0 && (uintptr_t)b % bytes == 0 && (uintptr_t)c % bytes == 0 &&
           (uintptr_t)d % bytes == 0 && (uintptr_t)e % bytes == 0;
}

/* The activation quantiser of one value (docs/MODEL.md): round(x·s) clamped to
 * [lo, hi], then back to the input's scale by the row's 1/s (a multiply where
 * the CPU divides: within an ulp, and a tenth of a division's instructions). */
__device__ __forceinline__ float quant_value(float x, float s, float inv_s, float lo, float hi) {
    return fminf(fmaxf(rintf(x * s), lo), hi) * inv_s;
}

#endif
