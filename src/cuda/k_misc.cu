/* Embedding, cross-entropy, residual and conversion kernels, deterministic
 * sums, and the fused AdamW step. */
#include "cuda/kernels.cuh"

__global__ void embed_forward_kernel(float *x, const int32_t *tokens, const bf16 *emb, const float *scale,
                                     const float *pos, int N, int T, int H) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * H)
        return;
    int n = (int)(i / H), j = (int)(i % H);
    float v = *scale * __bfloat162float(emb[(size_t)tokens[n] * H + j]);
    if (pos)
        v += pos[(size_t)(n % T) * H + j];
    x[i] = v;
}

ob_status ob_gpu_embed_forward(float *x, const int32_t *tokens, const bf16 *emb, const float *scale, const float *pos,
                               int N, int T, int H, cudaStream_t s) {
    embed_forward_kernel<<<ob_blocks((size_t)N * H, 256), 256, 0, s>>>(x, tokens, emb, scale, pos, N, T, H);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* One block per distinct token: its positions are summed in a fixed order. */
__global__ void embed_backward_kernel(float *demb, const float *dx, const int32_t *order, const int32_t *starts,
                                      const int32_t *ids, int H, float factor) {
    int t = blockIdx.x;
    int begin = starts[t], end = starts[t + 1];
    float *row = demb + (size_t)ids[t] * H;
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        float acc = 0;
        for (int p = begin; p < end; p++)
            acc += dx[(size_t)order[p] * H + j];
        row[j] += factor * acc;
    }
}

/* One thread per (position, column): sums over the batch in order. */
__global__ void pos_backward_kernel(float *dpos, const float *dx, int N, int T, int H) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * H)
        return;
    int t = (int)(i / H), j = (int)(i % H);
    float acc = 0;
    for (int n = t; n < N; n += T)
        acc += dx[(size_t)n * H + j];
    dpos[i] += acc;
}

ob_status ob_gpu_embed_backward(float *demb, float *dpos, const float *dx, const int32_t *order,
                                const int32_t *starts, const int32_t *ids, int distinct, int N, int T, int H,
                                float factor, cudaStream_t s) {
    embed_backward_kernel<<<distinct, 256, 0, s>>>(demb, dx, order, starts, ids, H, factor);
    if (dpos)
        pos_backward_kernel<<<ob_blocks((size_t)T * H, 256), 256, 0, s>>>(dpos, dx, N, T, H);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

#define CE_THREADS 1024

/* Online softmax over four values: m and s (Σ exp(z − m)) absorb them. */
__device__ __forceinline__ void softmax_add(float &m, float &s, float4 v) {
    float mv = fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w));
    if (mv > m) {
        s *= __expf(m - mv); /* 0 while m is −∞ (s is 0 then) */
        m = mv;
    }
    s += __expf(v.x - m) + __expf(v.y - m) + __expf(v.z - m) + __expf(v.w - m);
}

/* One block per row: loss = lse − (1−ε)·z_y − ε·mean(z); dz = (p − ε/V − (1−ε)[v = y])·grad_scale.
 * The row is read once for the sums and once for the gradient, which (bf16)
 * overwrites the row's first 2V bytes: step by step, every thread reads its
 * four logits, then after a barrier writes their four gradients, whose bytes
 * belong to logits read in this step or earlier. */
__global__ void __launch_bounds__(CE_THREADS)
    cross_entropy_kernel(float *logits, size_t ld, bool grad, float *row_loss, float *row_plain, const int32_t *targets,
                         int V, float eps, float grad_scale) {
    float *z = logits + (size_t)blockIdx.x * ld;
    const float4 *z4 = (const float4 *)z;
    int y = targets[blockIdx.x], V4 = V / 4;
    float m = -INFINITY, s = 0, zs = 0;
    for (int i = threadIdx.x; i < V4; i += CE_THREADS) {
        float4 v = z4[i];
        softmax_add(m, s, v);
        zs += (v.x + v.y) + (v.z + v.w);
    }
    for (int j = 4 * V4 + threadIdx.x; j < V; j += CE_THREADS) {
        softmax_add(m, s, make_float4(z[j], -INFINITY, -INFINITY, -INFINITY));
        zs += z[j];
    }
    float mx = block_max(m);
    float sum = block_sum(m == -INFINITY ? 0.0f : s * __expf(m - mx));
    float zsum = block_sum(zs);
    float lse = mx + logf(sum);
    if (threadIdx.x == 0) {
        float nll = lse - z[y];
        row_plain[blockIdx.x] = nll;
        row_loss[blockIdx.x] = (1.0f - eps) * nll + eps * (lse - zsum / V);
    }
    if (!grad)
        return;
    __nv_bfloat162 *d2 = (__nv_bfloat162 *)z;
    float inv = 1.0f / sum, off = eps / V;
    auto grad_of = [&](float v, int j) {
        return (__expf(v - mx) * inv - off - (j == y ? 1.0f - eps : 0.0f)) * grad_scale;
    };
    for (int base = 0; base < V4; base += CE_THREADS) {
        int i = base + threadIdx.x;
        float4 v = i < V4 ? z4[i] : make_float4(0, 0, 0, 0);
        __syncthreads();
        if (i < V4) {
            d2[2 * i] = __floats2bfloat162_rn(grad_of(v.x, 4 * i), grad_of(v.y, 4 * i + 1));
            d2[2 * i + 1] = __floats2bfloat162_rn(grad_of(v.z, 4 * i + 2), grad_of(v.w, 4 * i + 3));
        }
    }
    /* The last V mod 4 logits lie past every gradient written so far. */
    int j = 4 * V4 + threadIdx.x;
    float v = j < V ? z[j] : 0.0f;
    __syncthreads();
    if (j < V)
        ((bf16 *)z)[j] = __float2bfloat16(grad_of(v, j));
}

ob_status ob_gpu_cross_entropy(float *logits, size_t ld, bool grad, float *row_loss, float *row_plain,
                               const int32_t *targets, int n, int V, float smoothing, float grad_scale,
                               cudaStream_t s) {
    if (ld % 4 || (uintptr_t)logits % 16)
        return ob_error(OB_ERR_INVALID_ARG, "cuda: cross-entropy rows must be 16-byte aligned");
    cross_entropy_kernel<<<n, CE_THREADS, 0, s>>>(logits, ld, grad, row_loss, row_plain, targets, V, smoothing,
                                                  grad_scale);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

__global__ void bf16_to_f32_kernel(float *out, const bf16 *in, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = __bfloat162float(in[i]);
}

ob_status ob_gpu_bf16_to_f32(float *out, const bf16 *in, size_t n, cudaStream_t s) {
    bf16_to_f32_kernel<<<ob_blocks(n, 256), 256, 0, s>>>(out, in, n);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

__global__ void residual_kernel(float *out, const float *a, const bf16 *b, float scale, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = a[i] + scale * __bfloat162float(b[i]);
}

ob_status ob_gpu_residual(float *out, const float *a, const bf16 *b, float scale, size_t n, cudaStream_t s) {
    residual_kernel<<<ob_blocks(n, 256), 256, 0, s>>>(out, a, b, scale, n);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

__global__ void add_kernel(float *acc, const float *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        acc[i] += x[i];
}

ob_status ob_gpu_add(float *acc, const float *x, size_t n, cudaStream_t s) {
    add_kernel<<<ob_blocks(n, 256), 256, 0, s>>>(acc, x, n);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

#define SUM_BLOCKS 256
#define SUM_THREADS 256

__global__ void sum_partials(const float *x, size_t n, double *partials, bool squares) {
    double acc = 0;
    for (size_t i = (size_t)blockIdx.x * SUM_THREADS + threadIdx.x; i < n; i += (size_t)SUM_BLOCKS * SUM_THREADS) {
        double v = x[i];
        acc += squares ? v * v : v;
    }
    __shared__ double part[SUM_THREADS];
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int stride = SUM_THREADS / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride)
            part[threadIdx.x] += part[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        partials[blockIdx.x] = part[0];
}

__global__ void sum_finish(double *out, const double *partials) {
    double t = 0;
    for (int i = 0; i < SUM_BLOCKS; i++)
        t += partials[i];
    *out = t;
}

ob_status ob_gpu_sum(double *out, const float *x, size_t n, double *partials, bool squares, cudaStream_t s) {
    sum_partials<<<SUM_BLOCKS, SUM_THREADS, 0, s>>>(x, n, partials, squares);
    sum_finish<<<1, 1, 0, s>>>(out, partials);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* Segments are walked by blocks of a fixed size: blockIdx.y picks the segment. */
__global__ void adamw_kernel(float *w, const float *g, float *m, float *v, const ob_gpu_param_seg *segs, float lr,
                             float beta1, float beta2, float eps, float wd, float bc1, float bc2_sqrt,
                             float grad_scale, float clamp) {
    ob_gpu_param_seg seg = segs[blockIdx.y];
    float decay = seg.decay ? 1.0f - lr * wd : 1.0f, step_size = lr / bc1;
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < seg.numel;
         k += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = seg.offset + k;
        float gk = g[i] * grad_scale;
        float wk = w[i] * decay;
        float mk = beta1 * m[i] + (1.0f - beta1) * gk;
        float vk = beta2 * v[i] + (1.0f - beta2) * gk * gk;
        wk -= step_size * mk / (sqrtf(vk) / bc2_sqrt + eps);
        if (seg.clamp)
            wk = fminf(fmaxf(wk, -clamp), clamp);
        m[i] = mk;
        v[i] = vk;
        w[i] = wk;
    }
}

ob_status ob_gpu_adamw(float *w, const float *g, float *m, float *v, const ob_gpu_param_seg *segs, int num_segs,
                       int64_t total, float lr, float beta1, float beta2, float eps, float weight_decay,
                       int64_t step, float grad_scale, float clamp, cudaStream_t s) {
    (void)total;
    float bc1 = 1.0f - powf(beta1, (float)step), bc2_sqrt = sqrtf(1.0f - powf(beta2, (float)step));
    adamw_kernel<<<dim3(64, num_segs), 256, 0, s>>>(w, g, m, v, segs, lr, beta1, beta2, eps, weight_decay, bc1,
                                                    bc2_sqrt, grad_scale, clamp);
    OB_LAUNCH_CHECK();
    return OB_OK;
}
