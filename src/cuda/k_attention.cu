/* Causal attention with grouped-query heads, flash-style: scores and
 * probabilities never reach global memory; the backward pass recomputes them
 * from the saved row log-sum-exp. Head sizes 64 and 128 run on tensor cores:
 * Hopper's warpgroup products for 64 where the device runs sm_90a code
 * (k_attention_wg.cu), mma.sync otherwise (k_attention_fwd.cu,
 * k_attention_bwd.cu); other sizes take the simple warp-per-row path below.
 * ONEBIT_CUDA_ATTENTION=simple|mma picks a slower path (to test one against
 * another).
 * Every output element is written by one warp or block, never through atomics,
 * so the result repeats bit for bit. */
#include "cuda/attention_mma.cuh"
#include "cuda/vec_access.cuh"
#include <string.h>

/* ---- simple path: one warp per query row ------------------------------------- */

#define SIMPLE_WARPS 4

__device__ __forceinline__ float dot_warp(const bf16 *a, const bf16 *b, int hd, int lane) {
    float s = 0;
    for (int j = lane; j < hd; j += 32)
        s += __bfloat162float(a[j]) * __bfloat162float(b[j]);
    return warp_sum(s);
}

__global__ void simple_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld, int B,
                               int T, int nh, int nkv, int hd, float scale) {
    int row = blockIdx.x * SIMPLE_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= B * nh * T)
        return;
    int t = row % T, h = (row / T) % nh, b = row / (T * nh), kh = h / (nh / nkv);
    const bf16 *qt = q + ((size_t)b * T + t) * ld.q + (size_t)h * hd;
    float acc[8] = {0}; /* hd <= 256: lane owns dims lane + 32·i */
    float m = -INFINITY, l = 0;
    for (int u = 0; u <= t; u++) {
        const bf16 *ku = k + ((size_t)b * T + u) * ld.k + (size_t)kh * hd;
        const bf16 *vu = v + ((size_t)b * T + u) * ld.v + (size_t)kh * hd;
        float s = dot_warp(qt, ku, hd, lane) * scale;
        float mn = fmaxf(m, s), corr = __expf(m - mn), p = __expf(s - mn);
        l = l * corr + p;
        for (int i = 0; i < 8; i++) {
            int j = lane + 32 * i;
            if (j < hd)
                acc[i] = acc[i] * corr + p * __bfloat162float(vu[j]);
        }
        m = mn;
    }
    bf16 *ot = o + (((size_t)b * T + t) * nh + h) * hd;
    for (int i = 0; i < 8; i++) {
        int j = lane + 32 * i;
        if (j < hd)
            ot[j] = __float2bfloat16(acc[i] / l);
    }
    if (lane == 0)
        lse[((size_t)b * nh + h) * T + t] = m + logf(l);
}

/* delta[b,h,t] = Σ dO·O, hd/8 threads a row with 16-byte loads (for head sizes
 * whose hd/8 divides 32), the rows in memory order. */
__global__ void attention_delta8(float *delta, const bf16 *dout, const bf16 *o, int B, int T, int nh, int hd) {
    int group = hd / 8;
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, row = tid / group; /* (b·T + t)·nh + h */
    bool valid = row < (size_t)B * T * nh;
    float s = 0;
    if (valid) {
        float x[8], y[8];
        size_t at = row * hd + 8 * (tid % group);
        load_w(x, dout + at);
        load_w(y, o + at);
        for (int k = 0; k < 8; k++)
            s += x[k] * y[k];
    }
    s = group_sum(s, group);
    if (valid && tid % group == 0) {
        size_t h = row % nh, bt = row / nh;
        delta[((bt / T) * nh + h) * T + bt % T] = s;
    }
}

/* The same, a warp a row, for other head sizes. */
__global__ void attention_delta(float *delta, const bf16 *dout, const bf16 *o, int B, int T, int nh, int hd) {
    int row = blockIdx.x * SIMPLE_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= B * nh * T)
        return;
    int t = row % T, h = (row / T) % nh, b = row / (T * nh);
    size_t base = (((size_t)b * T + t) * nh + h) * hd;
    float s = dot_warp(dout + base, o + base, hd, lane);
    if (lane == 0)
        delta[row] = s;
}

__global__ void simple_backward_dq(bf16 *dq, const bf16 *dout, const float *lse, const float *delta, const bf16 *q,
                                   const bf16 *k, const bf16 *v, ob_qkv_ld ld, int B, int T, int nh, int nkv, int hd,
                                   float scale) {
    int row = blockIdx.x * SIMPLE_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= B * nh * T)
        return;
    int t = row % T, h = (row / T) % nh, b = row / (T * nh), kh = h / (nh / nkv);
    size_t base = (((size_t)b * T + t) * nh + h) * hd, qbase = ((size_t)b * T + t) * ld.q + (size_t)h * hd;
    float L = lse[row], D = delta[row];
    float acc[8] = {0};
    for (int u = 0; u <= t; u++) {
        const bf16 *ku = k + ((size_t)b * T + u) * ld.k + (size_t)kh * hd;
        const bf16 *vu = v + ((size_t)b * T + u) * ld.v + (size_t)kh * hd;
        float p = __expf(dot_warp(q + qbase, ku, hd, lane) * scale - L);
        float ds = p * (dot_warp(dout + base, vu, hd, lane) - D) * scale;
        for (int i = 0; i < 8; i++) {
            int j = lane + 32 * i;
            if (j < hd)
                acc[i] += ds * __bfloat162float(ku[j]);
        }
    }
    for (int i = 0; i < 8; i++) {
        int j = lane + 32 * i;
        if (j < hd)
            dq[qbase + j] = __float2bfloat16(acc[i]);
    }
}

/* One warp per key row u of a key/value head: sums over the query heads of its
 * group and the queries t >= u. */
__global__ void simple_backward_dkv(bf16 *dk, bf16 *dv, const bf16 *dout, const float *lse, const float *delta,
                                    const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld, int B, int T, int nh,
                                    int nkv, int hd, float scale) {
    int row = blockIdx.x * SIMPLE_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= B * nkv * T)
        return;
    int u = row % T, kh = (row / T) % nkv, b = row / (T * nkv), group = nh / nkv;
    size_t kbase = ((size_t)b * T + u) * ld.k + (size_t)kh * hd;
    size_t vbase = ((size_t)b * T + u) * ld.v + (size_t)kh * hd;
    float ak[8] = {0}, av[8] = {0};
    for (int h = kh * group; h < (kh + 1) * group; h++) {
        for (int t = u; t < T; t++) {
            size_t qbase = ((size_t)b * T + t) * ld.q + (size_t)h * hd, obase = (((size_t)b * T + t) * nh + h) * hd;
            size_t r = ((size_t)b * nh + h) * T + t;
            float p = __expf(dot_warp(q + qbase, k + kbase, hd, lane) * scale - lse[r]);
            float ds = p * (dot_warp(dout + obase, v + vbase, hd, lane) - delta[r]) * scale;
            for (int i = 0; i < 8; i++) {
                int j = lane + 32 * i;
                if (j < hd) {
                    av[i] += p * __bfloat162float(dout[obase + j]);
                    ak[i] += ds * __bfloat162float(q[qbase + j]);
                }
            }
        }
    }
    for (int i = 0; i < 8; i++) {
        int j = lane + 32 * i;
        if (j < hd) {
            dk[kbase + j] = __float2bfloat16(ak[i]);
            dv[vbase + j] = __float2bfloat16(av[i]);
        }
    }
}

typedef enum { PATH_SIMPLE, PATH_MMA, PATH_WGMMA } attention_path;

static attention_path pick_path(int hd) {
    const char *env = getenv("ONEBIT_CUDA_ATTENTION");
    if ((hd != 64 && hd != 128) || (env && strcmp(env, "simple") == 0))
        return PATH_SIMPLE;
    if (hd == 64 && !(env && strcmp(env, "mma") == 0) && ob_attention_wg_available())
        return PATH_WGMMA;
    return PATH_MMA;
}

ob_status ob_gpu_attention_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld,
                                   int B, int T, int nh, int nkv, int hd, cudaStream_t s) {
    if (hd > 256)
        return ob_error(OB_ERR_UNSUPPORTED, "cuda attention: head_dim %d above 256", hd);
    attention_path path = pick_path(hd);
    if (path == PATH_WGMMA)
        return ob_attention_wg_forward(o, lse, q, k, v, ld, B, T, nh, nkv, s);
    if (path == PATH_MMA)
        return ob_attention_mma_forward(o, lse, q, k, v, ld, B, T, nh, nkv, hd, s);
    float scale = 1.0f / sqrtf((float)hd);
    int rows = B * nh * T;
    simple_forward<<<ob_blocks((size_t)rows, SIMPLE_WARPS), SIMPLE_WARPS * 32, 0, s>>>(o, lse, q, k, v, ld, B, T, nh,
                                                                                       nkv, hd, scale);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

ob_status ob_gpu_attention_backward(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *o, const float *lse,
                                    const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld, float *delta, int B,
                                    int T, int nh, int nkv, int hd, cudaStream_t s) {
    float scale = 1.0f / sqrtf((float)hd);
    int rows = B * nh * T;
    attention_path path = pick_path(hd);
    if (path == PATH_WGMMA)
        return ob_attention_wg_backward(dq, dk, dv, dout, o, lse, delta, q, k, v, ld, B, T, nh, nkv, s);
    if (hd % 8 == 0 && 32 % (hd / 8) == 0 && all_aligned(16, dout, o))
        attention_delta8<<<ob_blocks((size_t)rows * (hd / 8), 256), 256, 0, s>>>(delta, dout, o, B, T, nh, hd);
    else
        attention_delta<<<ob_blocks((size_t)rows, SIMPLE_WARPS), SIMPLE_WARPS * 32, 0, s>>>(delta, dout, o, B, T, nh,
                                                                                          hd);
    OB_LAUNCH_CHECK();
    if (path == PATH_MMA)
        return ob_attention_mma_backward(dq, dk, dv, dout, lse, delta, q, k, v, ld, B, T, nh, nkv, hd, s);
    simple_backward_dq<<<ob_blocks((size_t)rows, SIMPLE_WARPS), SIMPLE_WARPS * 32, 0, s>>>(
        dq, dout, lse, delta, q, k, v, ld, B, T, nh, nkv, hd, scale);
    simple_backward_dkv<<<ob_blocks((size_t)B * nkv * T, SIMPLE_WARPS), SIMPLE_WARPS * 32, 0, s>>>(
        dk, dv, dout, lse, delta, q, k, v, ld, B, T, nh, nkv, hd, scale);
    OB_LAUNCH_CHECK();
    return OB_OK;
}
