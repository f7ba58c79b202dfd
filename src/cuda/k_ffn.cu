/* The FFN activations (SiLU, ReLU², SwiGLU) forward and backward, and the
 * per-token activation quantiser of a bf16 matrix. Rows are walked by one warp
 * each with 16-byte accesses (eight bf16) where the row length and pointers
 * allow, else one element at a time. */
#include "cuda/kernels.cuh"
#include "cuda/vec_access.cuh"

#define ROW_WARPS 8

/* The quantiser's grid and scale for a row whose largest |value| is mx. */
__device__ __forceinline__ float act_scale(float mx, int bits, float *qmax) {
    *qmax = (float)((1 << (bits - 1)) - 1);
    return *qmax / fmaxf(mx, 1e-5f);
}

/* out = the quantised rows of x (the row is read twice; the second from L1). */
template <int W>
__global__ void act_quant_kernel(bf16 *out, const bf16 *x, int n, int d, int bits) {
    grid_dependency_wait();
    int row = blockIdx.x * ROW_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= n)
        return;
    const bf16 *xr = x + (size_t)row * d;
    float mx = 0;
    for (int j = W * lane; j < d; j += 32 * W) {
        float v[W];
        load_w(v, xr + j);
        for (int k = 0; k < W; k++)
            mx = fmaxf(mx, fabsf(v[k]));
    }
    float qmax, sc = act_scale(warp_max(mx), bits, &qmax), inv = 1.0f / sc;
    for (int j = W * lane; j < d; j += 32 * W) {
        float v[W];
        load_w(v, xr + j);
        for (int k = 0; k < W; k++)
            v[k] = quant_value(v[k], sc, inv, -qmax - 1.0f, qmax);
        store_w(out + (size_t)row * d + j, v);
    }
}

ob_status ob_gpu_act_quant(bf16 *out, const bf16 *x, int n, int d, int bits, cudaStream_t s) {
    unsigned blocks = ob_blocks((size_t)n, ROW_WARPS);
    if (d % 8 == 0 && all_aligned(16, out, x))
        ob_launch_dependent(act_quant_kernel<8>, blocks, ROW_WARPS * 32, 0, s, out, x, n, d, bits);
    else
        ob_launch_dependent(act_quant_kernel<1>, blocks, ROW_WARPS * 32, 0, s, out, x, n, d, bits);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* Fast exponential and division (each within 2 ulp): the FFN activation kernels
 * would otherwise spend most of their instructions on IEEE division. */
__device__ __forceinline__ float sigmoidf_(float z) { return __fdividef(1.0f, 1.0f + __expf(-z)); }

__device__ __forceinline__ float ffn_value(int act, float u, float g) {
    if (act == 0)
        return u * sigmoidf_(u);
    if (act == 1) {
        float r = fmaxf(u, 0.0f);
        return r * r;
    }
    return g * sigmoidf_(g) * u;
}

/* h = act(u, g) per row, then its activation quantiser into hq. The quantiser
 * reads the stored (bf16) h, as the backward pass does when it rebuilds hq.
 * hq may be h itself: each lane reads back only what it wrote. The rows of u
 * and g lie `ld` elements apart (both inside one [N, gate|up] product). */
template <int W>
__global__ void ffn_forward_kernel(bf16 *h, bf16 *hq, const bf16 *u, const bf16 *g, size_t ld, int n, int f, int act,
                                   int bits) {
    grid_dependency_wait();
    int row = blockIdx.x * ROW_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= n)
        return;
    size_t base = (size_t)row * f, in = (size_t)row * ld;
    float mx = 0;
    for (int j = W * lane; j < f; j += 32 * W) {
        float uv[W], gv[W], hv[W];
        load_w(uv, u + in + j);
        if (g)
            load_w(gv, g + in + j);
        for (int k = 0; k < W; k++)
            hv[k] = __bfloat162float(__float2bfloat16(ffn_value(act, uv[k], g ? gv[k] : 0.0f)));
        store_w(h + base + j, hv);
        for (int k = 0; k < W; k++)
            mx = fmaxf(mx, fabsf(hv[k]));
    }
    if (bits == 0)
        return;
    float qmax, sc = act_scale(warp_max(mx), bits, &qmax), inv = 1.0f / sc;
    for (int j = W * lane; j < f; j += 32 * W) {
        float hv[W];
        load_w(hv, h + base + j); /* this lane's own stores */
        for (int k = 0; k < W; k++)
            hv[k] = quant_value(hv[k], sc, inv, -qmax - 1.0f, qmax);
        store_w(hq + base + j, hv);
    }
}

/* The same for rows of f = 256·ITER, held in registers: a lane's ITER groups
 * of eight values are all loaded before any is used, h stays the bf16 it is
 * stored as, and where hq is h itself only hq is written. The loop above
 * waits for each group's loads in turn and writes h twice: 107 against 81 us
 * for the 16384 x 2048 SwiGLU rows of GPT-2 124M on an H100. */
template <int ITER>
__global__ void __launch_bounds__(ROW_WARPS * 32) ffn_forward_regs_kernel(bf16 *h, bf16 *hq, const bf16 *u,
                                                                         const bf16 *g, size_t ld, int n, int act,
                                                                         int bits) {
    grid_dependency_wait();
    int row = blockIdx.x * ROW_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= n)
        return;
    size_t base = (size_t)row * (ITER * 256) + 8 * lane, in = (size_t)row * ld + 8 * lane;
    __nv_bfloat162 hv[ITER][4];
    float mx = 0;
#pragma unroll
    for (int it = 0; it < ITER; it++) {
        float uv[8], gv[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        load_w(uv, u + in + it * 256);
        if (g)
            load_w(gv, g + in + it * 256);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            hv[it][k] = __floats2bfloat162_rn(ffn_value(act, uv[2 * k], gv[2 * k]),
                                              ffn_value(act, uv[2 * k + 1], gv[2 * k + 1]));
            float2 r = __bfloat1622float2(hv[it][k]);
            mx = fmaxf(mx, fmaxf(fabsf(r.x), fabsf(r.y)));
        }
    }
    if (h != hq || bits == 0)
#pragma unroll
        for (int it = 0; it < ITER; it++)
            *(uint4 *)(h + base + it * 256) = *(const uint4 *)hv[it];
    if (bits == 0)
        return;
    float qmax, sc = act_scale(warp_max(mx), bits, &qmax), inv = 1.0f / sc;
#pragma unroll
    for (int it = 0; it < ITER; it++) {
        float v[8];
        for (int k = 0; k < 4; k++) {
            float2 r = __bfloat1622float2(hv[it][k]);
            v[2 * k] = quant_value(r.x, sc, inv, -qmax - 1.0f, qmax);
            v[2 * k + 1] = quant_value(r.y, sc, inv, -qmax - 1.0f, qmax);
        }
        store_w(hq + base + it * 256, v);
    }
}

ob_status ob_gpu_ffn_forward(bf16 *h, bf16 *hq, const bf16 *u, const bf16 *g, size_t ld, int n, int f, int act,
                             int act_bits, cudaStream_t s) {
    const bf16 *gate = act == 2 ? g : NULL;
    unsigned blocks = ob_blocks((size_t)n, ROW_WARPS), threads = ROW_WARPS * 32;
    bool vectorised = f % 8 == 0 && ld % 8 == 0 && all_aligned(16, h, hq, u, gate);
    if (vectorised && f == 1024)
        ob_launch_dependent(ffn_forward_regs_kernel<4>, blocks, threads, 0, s, h, hq, u, gate, ld, n, act, act_bits);
    else if (vectorised && f == 2048)
        ob_launch_dependent(ffn_forward_regs_kernel<8>, blocks, threads, 0, s, h, hq, u, gate, ld, n, act, act_bits);
    else if (vectorised && f == 3072)
        ob_launch_dependent(ffn_forward_regs_kernel<12>, blocks, threads, 0, s, h, hq, u, gate, ld, n, act, act_bits);
    else if (vectorised)
        ob_launch_dependent(ffn_forward_kernel<8>, blocks, ROW_WARPS * 32, 0, s, h, hq, u, gate, ld, n, f, act,
                            act_bits);
    else
        ob_launch_dependent(ffn_forward_kernel<1>, blocks, ROW_WARPS * 32, 0, s, h, hq, u, gate, ld, n, f, act,
                            act_bits);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* W consecutive elements of a row a thread (W divides f); dh is dense [n, f],
 * the rows of u, g, du and dg lie `ld` elements apart. */
template <int W>
__global__ void ffn_backward_kernel(bf16 *du, bf16 *dg, const bf16 *dh, const bf16 *u, const bf16 *g, size_t ld,
                                    int n, int f, int act) {
    grid_dependency_wait();
    size_t i = W * ((size_t)blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= (size_t)n * f)
        return;
    size_t at = i / f * ld + i % f;
    float d[W], uv[W], gv[W], a[W], b[W];
    load_w(d, dh + i);
    load_w(uv, u + at);
    if (act == 2)
        load_w(gv, g + at);
    for (int k = 0; k < W; k++) {
        if (act == 0) {
            float sg = sigmoidf_(uv[k]);
            a[k] = d[k] * (sg + uv[k] * sg * (1.0f - sg));
        } else if (act == 1) {
            a[k] = uv[k] > 0.0f ? d[k] * 2.0f * uv[k] : 0.0f;
        } else {
            float sg = sigmoidf_(gv[k]);
            a[k] = d[k] * gv[k] * sg;
            b[k] = d[k] * uv[k] * (sg + gv[k] * sg * (1.0f - sg));
        }
    }
    store_w(du + at, a);
    if (act == 2)
        store_w(dg + at, b);
}

ob_status ob_gpu_ffn_backward(bf16 *du, bf16 *dg, const bf16 *dh, const bf16 *u, const bf16 *g, size_t ld, int n,
                              int f, int act, cudaStream_t s) {
    size_t count = (size_t)n * f;
    if (f % 8 == 0 && ld % 8 == 0 && all_aligned(16, du, dh, u, act == 2 ? dg : NULL, act == 2 ? g : NULL))
        ob_launch_dependent(ffn_backward_kernel<8>, ob_blocks(count / 8, 256), 256, 0, s, du, dg, dh, u, g, ld, n, f,
                            act);
    else
        ob_launch_dependent(ffn_backward_kernel<1>, ob_blocks(count, 256), 256, 0, s, du, dg, dh, u, g, ld, n, f, act);
    OB_LAUNCH_CHECK();
    return OB_OK;
}
