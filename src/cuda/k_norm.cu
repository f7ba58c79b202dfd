/* Norms (fused with the activation quantiser), QK-norm with RoPE, and the FFN
 * activations, forward and backward. */
#include "cuda/kernels.cuh"

#define NORM_THREADS 256
#define DG_ROWS 64 /* rows per partial sum of a gain gradient */

__device__ __forceinline__ float quant_value(float x, float s, float lo, float hi) {
    return fminf(fmaxf(rintf(x * s), lo), hi) / s;
}

/* One block per row; the row is read again for each pass (it stays in cache). */
__global__ void norm_forward_kernel(bf16 *y, bf16 *yq, float *mean, float *rstd, const float *x, const float *g,
                                    int d, float eps, bool layernorm, int bits) {
    int row = blockIdx.x;
    const float *xr = x + (size_t)row * d;
    float s = 0;
    if (layernorm) {
        for (int j = threadIdx.x; j < d; j += blockDim.x)
            s += xr[j];
        s = block_sum(s);
    }
    float m = layernorm ? s / d : 0.0f;
    float ss = 0;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float c = xr[j] - m;
        ss += c * c;
    }
    ss = block_sum(ss);
    float r = rsqrtf(ss / d + eps);
    if (threadIdx.x == 0) {
        if (layernorm)
            mean[row] = m;
        rstd[row] = r;
    }
    float mx = 0;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float v = (xr[j] - m) * r * g[j];
        if (y != yq || bits == 0)
            y[(size_t)row * d + j] = __float2bfloat16(v);
        mx = fmaxf(mx, fabsf(v));
    }
    if (bits == 0)
        return;
    mx = block_max(mx);
    float qmax = (float)((1 << (bits - 1)) - 1);
    float sc = qmax / fmaxf(mx, 1e-5f);
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float v = (xr[j] - m) * r * g[j];
        yq[(size_t)row * d + j] = __float2bfloat16(quant_value(v, sc, -qmax - 1.0f, qmax));
    }
}

ob_status ob_gpu_norm_forward(bf16 *y, bf16 *yq, float *mean, float *rstd, const float *x, const float *g, int n,
                              int d, float eps, bool layernorm, int act_bits, cudaStream_t s) {
    norm_forward_kernel<<<n, NORM_THREADS, 0, s>>>(y, yq, mean, rstd, x, g, d, eps, layernorm, act_bits);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dy·g. One warp per row; each
 * warp keeps its own column sums of dy·x̂ (the gain gradient) in a row of
 * `partials`, summed afterwards in a fixed order. */
#define DG_WARPS 8

__global__ void norm_backward_kernel(float *dx, bool accumulate, float *partials, const bf16 *dy, const float *x,
                                     const float *g, const float *mean, const float *rstd, int n, int d,
                                     bool layernorm) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *part = partials + ((size_t)blockIdx.x * DG_WARPS + warp) * d;
    for (int j = lane; j < d; j += 32)
        part[j] = 0.0f;
    int row_end = min(n, (int)(blockIdx.x + 1) * DG_ROWS);
    for (int row = blockIdx.x * DG_ROWS + warp; row < row_end; row += DG_WARPS) {
        const float *xr = x + (size_t)row * d;
        const bf16 *dyr = dy + (size_t)row * d;
        float m = layernorm ? mean[row] : 0.0f, r = rstd[row];
        float s1 = 0, s2 = 0;
        for (int j = lane; j < d; j += 32) {
            float dxh = __bfloat162float(dyr[j]) * g[j];
            s1 += dxh;
            s2 += dxh * (xr[j] - m) * r;
        }
        s1 = warp_sum(s1);
        s2 = warp_sum(s2);
        float mean_dxh = layernorm ? s1 / d : 0.0f, mean_dxh_xh = s2 / d;
        for (int j = lane; j < d; j += 32) {
            float dyv = __bfloat162float(dyr[j]);
            float xh = (xr[j] - m) * r;
            float v = r * (dyv * g[j] - mean_dxh - xh * mean_dxh_xh);
            size_t k = (size_t)row * d + j;
            dx[k] = accumulate ? dx[k] + v : v;
            part[j] += dyv * xh;
        }
    }
}

__global__ void column_sum(float *dg, const float *partials, int chunks, int d) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d)
        return;
    float t = 0;
    for (int c = 0; c < chunks; c++)
        t += partials[(size_t)c * d + j];
    dg[j] += t;
}

size_t ob_gpu_norm_partials(int n, int d) { return (size_t)((n + DG_ROWS - 1) / DG_ROWS) * DG_WARPS * d; }

ob_status ob_gpu_norm_backward(float *dx, bool accumulate, float *dg, float *partials, const bf16 *dy,
                               const float *x, const float *g, const float *mean, const float *rstd, int n, int d,
                               bool layernorm, cudaStream_t s) {
    int chunks = (n + DG_ROWS - 1) / DG_ROWS;
    norm_backward_kernel<<<chunks, DG_WARPS * 32, 0, s>>>(dx, accumulate, partials, dy, x, g, mean, rstd, n, d,
                                                          layernorm);
    column_sum<<<ob_blocks((size_t)d, 256), 256, 0, s>>>(dg, partials, chunks * DG_WARPS, d);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

__global__ void act_quant_kernel(bf16 *out, const bf16 *x, int d, int bits) {
    int row = blockIdx.x;
    const bf16 *xr = x + (size_t)row * d;
    float mx = 0;
    for (int j = threadIdx.x; j < d; j += blockDim.x)
        mx = fmaxf(mx, fabsf(__bfloat162float(xr[j])));
    mx = block_max(mx);
    float qmax = (float)((1 << (bits - 1)) - 1), sc = qmax / fmaxf(mx, 1e-5f);
    for (int j = threadIdx.x; j < d; j += blockDim.x)
        out[(size_t)row * d + j] = __float2bfloat16(quant_value(__bfloat162float(xr[j]), sc, -qmax - 1.0f, qmax));
}

ob_status ob_gpu_act_quant(bf16 *out, const bf16 *x, int n, int d, int bits, cudaStream_t s) {
    act_quant_kernel<<<n, NORM_THREADS, 0, s>>>(out, x, d, bits);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* ---- QK-norm and RoPE: one warp per head vector --------------------------------- */

#define QK_WARPS 8

__global__ void qk_forward_kernel(bf16 *x, bf16 *pre, float *rstd, const float *gain, const float *cs,
                                  const float *sn, int rows, int T, int heads, int hd, float eps, bool qk_norm,
                                  bool rope) {
    int vec = blockIdx.x * QK_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (vec >= rows)
        return;
    int t = (vec / heads) % T;
    bf16 *v = x + (size_t)vec * hd;
    float r = 1.0f;
    if (qk_norm) {
        float ss = 0;
        for (int j = lane; j < hd; j += 32) {
            float a = __bfloat162float(v[j]);
            pre[(size_t)vec * hd + j] = v[j];
            ss += a * a;
        }
        ss = warp_sum(ss);
        r = rsqrtf(ss / hd + eps);
        if (lane == 0)
            rstd[vec] = r;
    }
    int half = hd / 2;
    for (int p = lane; p < half; p += 32) {
        float a = __bfloat162float(v[2 * p]), b = __bfloat162float(v[2 * p + 1]);
        if (qk_norm) {
            a *= r * gain[2 * p];
            b *= r * gain[2 * p + 1];
        }
        if (rope) {
            float c = cs[(size_t)t * half + p], sn_ = sn[(size_t)t * half + p];
            float na = a * c - b * sn_, nb = a * sn_ + b * c;
            a = na;
            b = nb;
        }
        v[2 * p] = __float2bfloat16(a);
        v[2 * p + 1] = __float2bfloat16(b);
    }
}

ob_status ob_gpu_qk_forward(bf16 *x, bf16 *pre, float *rstd, const float *gain, const float *rope_cos,
                            const float *rope_sin, int B, int T, int heads, int hd, float eps, bool qk_norm,
                            bool rope, cudaStream_t s) {
    if (!qk_norm && !rope)
        return OB_OK;
    int rows = B * T * heads;
    qk_forward_kernel<<<ob_blocks((size_t)rows, QK_WARPS), QK_WARPS * 32, 0, s>>>(
        x, pre, rstd, gain, rope_cos, rope_sin, rows, T, heads, hd, eps, qk_norm, rope);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* Each block handles QK_CHUNK vectors and writes its gain-gradient partial sums. */
#define QK_CHUNK 256

__global__ void qk_backward_kernel(bf16 *dy, float *partials, const bf16 *pre, const float *rstd, const float *gain,
                                   const float *cs, const float *sn, int rows, int T, int heads, int hd,
                                   bool qk_norm, bool rope) {
    extern __shared__ float dgain_acc[]; /* [QK_WARPS][hd] */
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, half = hd / 2;
    float *acc = dgain_acc + warp * hd;
    for (int j = lane; j < hd; j += 32)
        acc[j] = 0.0f;
    int first = blockIdx.x * QK_CHUNK, last = min(rows, first + QK_CHUNK);
    for (int vec = first + warp; vec < last; vec += QK_WARPS) {
        int t = (vec / heads) % T;
        bf16 *d = dy + (size_t)vec * hd;
        if (rope) {
            for (int p = lane; p < half; p += 32) {
                float a = __bfloat162float(d[2 * p]), b = __bfloat162float(d[2 * p + 1]);
                float c = cs[(size_t)t * half + p], s_ = sn[(size_t)t * half + p];
                d[2 * p] = __float2bfloat16(a * c + b * s_);
                d[2 * p + 1] = __float2bfloat16(-a * s_ + b * c);
            }
            __syncwarp();
        }
        if (!qk_norm)
            continue;
        const bf16 *xv = pre + (size_t)vec * hd;
        float r = rstd[vec], s2 = 0;
        for (int j = lane; j < hd; j += 32) {
            float xh = __bfloat162float(xv[j]) * r;
            s2 += __bfloat162float(d[j]) * gain[j] * xh;
        }
        s2 = warp_sum(s2) / hd;
        for (int j = lane; j < hd; j += 32) {
            float dyv = __bfloat162float(d[j]);
            float xh = __bfloat162float(xv[j]) * r;
            acc[j] += dyv * xh;
            d[j] = __float2bfloat16(r * (dyv * gain[j] - xh * s2));
        }
    }
    __syncthreads();
    for (int j = threadIdx.x; j < hd; j += blockDim.x) {
        float t = 0;
        for (int w = 0; w < QK_WARPS; w++)
            t += dgain_acc[w * hd + j];
        partials[(size_t)blockIdx.x * hd + j] = t;
    }
}

ob_status ob_gpu_qk_backward(bf16 *dy, float *dgain, float *partials, const bf16 *pre, const float *rstd,
                             const float *gain, const float *rope_cos, const float *rope_sin, int B, int T,
                             int heads, int hd, bool qk_norm, bool rope, cudaStream_t s) {
    if (!qk_norm && !rope)
        return OB_OK;
    int rows = B * T * heads, chunks = (rows + QK_CHUNK - 1) / QK_CHUNK;
    qk_backward_kernel<<<chunks, QK_WARPS * 32, QK_WARPS * hd * sizeof(float), s>>>(
        dy, partials, pre, rstd, gain, rope_cos, rope_sin, rows, T, heads, hd, qk_norm, rope);
    if (qk_norm)
        column_sum<<<ob_blocks((size_t)hd, 256), 256, 0, s>>>(dgain, partials, chunks, hd);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* ---- FFN activations ---------------------------------------------------------- */

__device__ __forceinline__ float sigmoidf_(float z) { return 1.0f / (1.0f + __expf(-z)); }

__device__ __forceinline__ float ffn_value(int act, float u, float g) {
    if (act == 0)
        return u * sigmoidf_(u);
    if (act == 1) {
        float r = fmaxf(u, 0.0f);
        return r * r;
    }
    return g * sigmoidf_(g) * u;
}

/* One block per row: h = act(u, g), then its activation quantiser. */
__global__ void ffn_forward_kernel(bf16 *h, bf16 *hq, const bf16 *u, const bf16 *g, int f, int act, int bits) {
    size_t base = (size_t)blockIdx.x * f;
    float mx = 0;
    for (int j = threadIdx.x; j < f; j += blockDim.x) {
        bf16 v = __float2bfloat16(ffn_value(act, __bfloat162float(u[base + j]), g ? __bfloat162float(g[base + j]) : 0.0f));
        h[base + j] = v;
        mx = fmaxf(mx, fabsf(__bfloat162float(v)));
    }
    if (bits == 0)
        return;
    /* The quantiser reads the stored (bf16) h, as the backward pass does when it
     * rebuilds hq from h. */
    mx = block_max(mx);
    float qmax = (float)((1 << (bits - 1)) - 1), sc = qmax / fmaxf(mx, 1e-5f);
    for (int j = threadIdx.x; j < f; j += blockDim.x)
        hq[base + j] = __float2bfloat16(quant_value(__bfloat162float(h[base + j]), sc, -qmax - 1.0f, qmax));
}

ob_status ob_gpu_ffn_forward(bf16 *h, bf16 *hq, const bf16 *u, const bf16 *g, int n, int f, int act, int act_bits,
                             cudaStream_t s) {
    ffn_forward_kernel<<<n, NORM_THREADS, 0, s>>>(h, hq, u, act == 2 ? g : NULL, f, act, act_bits);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

__global__ void ffn_backward_kernel(bf16 *du, bf16 *dg, const bf16 *dh, const bf16 *u, const bf16 *g, size_t count,
                                    int act) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count)
        return;
    float d = __bfloat162float(dh[i]), uv = __bfloat162float(u[i]);
    if (act == 0) {
        float sg = sigmoidf_(uv);
        du[i] = __float2bfloat16(d * (sg + uv * sg * (1.0f - sg)));
    } else if (act == 1) {
        du[i] = __float2bfloat16(uv > 0.0f ? d * 2.0f * uv : 0.0f);
    } else {
        float gv = __bfloat162float(g[i]), sg = sigmoidf_(gv);
        du[i] = __float2bfloat16(d * gv * sg);
        dg[i] = __float2bfloat16(d * uv * (sg + gv * sg * (1.0f - sg)));
    }
}

ob_status ob_gpu_ffn_backward(bf16 *du, bf16 *dg, const bf16 *dh, const bf16 *u, const bf16 *g, size_t count,
                              int act, cudaStream_t s) {
    ffn_backward_kernel<<<ob_blocks(count, 256), 256, 0, s>>>(du, dg, dh, u, g, count, act);
    OB_LAUNCH_CHECK();
    return OB_OK;
}
