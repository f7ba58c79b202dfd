/* Embedding, cross-entropy, residual and conversion kernels, deterministic
 * sums, and the fused AdamW step. */
#include "cuda/adamw.cuh"
#include "cuda/kernels.cuh"
#include "cuda/vec_access.cuh"

__global__ void embed_forward_kernel(float *x, const int32_t *tokens, const bf16 *emb, const float *scale,
                                     const float *pos, int N, int T, int H) {
    grid_dependency_wait();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * H)
        return;
    int n = (int)(i / H), j = (int)(i % H);
    float v = *scale * __bfloat162float(emb[(size_t)tokens[n] * H + j]);
    if (pos)
        v += pos[(size_t)(n % T) * H + j];
    x[i] = v;
}

/* The same with eight columns a thread: a 16-byte load of the table row,
 * two of the positions, two stores (H a multiple of 8 up to 2048, aligned). */
__global__ void embed_forward8_kernel(float *x, const int32_t *tokens, const bf16 *emb, const float *scale,
                                      const float *pos, int N, int T, int H) {
    grid_dependency_wait();
    int per_row = H / 8, rows = blockDim.x / per_row;
    int n = blockIdx.x * rows + threadIdx.x / per_row, j = 8 * (threadIdx.x % per_row);
    if (n >= N)
        return;
    float v[8], lo[4], hi[4];
    load_w(v, emb + (size_t)tokens[n] * H + j);
    if (pos) {
        load_w(lo, pos + (size_t)(n % T) * H + j);
        load_w(hi, pos + (size_t)(n % T) * H + j + 4);
    }
    for (int e = 0; e < 4; e++) {
        lo[e] = *scale * v[e] + (pos ? lo[e] : 0.0f);
        hi[e] = *scale * v[e + 4] + (pos ? hi[e] : 0.0f);
    }
    store_w(x + (size_t)n * H + j, lo);
    store_w(x + (size_t)n * H + j + 4, hi);
}

ob_status ob_gpu_embed_forward(float *x, const int32_t *tokens, const bf16 *emb, const float *scale, const float *pos,
                               int N, int T, int H, cudaStream_t s) {
    if (H % 8 == 0 && H <= 2048 && all_aligned(16, x, emb, pos)) {
        int rows = 256 / (H / 8);
        ob_launch_dependent(embed_forward8_kernel, (N + rows - 1) / rows, rows * (H / 8), 0, s, x, tokens, emb, scale,
                            pos, N, T, H);
    } else {
        ob_launch_dependent(embed_forward_kernel, ob_blocks((size_t)N * H, 256), 256, 0, s, x, tokens, emb, scale, pos,
                            N, T, H);
    }
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

/* The same with four columns a thread (H/4 threads) and the rows of four
 * positions loaded at a time: the loop above waits for one row after another,
 * three times over for 768 columns. Same sums in the same order. */
__global__ void embed_backward4_kernel(float *demb, const float *dx, const int32_t *order, const int32_t *starts,
                                       const int32_t *ids, int H, float factor) {
    int t = blockIdx.x, j = 4 * threadIdx.x;
    int p = starts[t], end = starts[t + 1];
    float *row = demb + (size_t)ids[t] * H;
    float acc[4] = {0, 0, 0, 0};
    for (; p + 4 <= end; p += 4) {
        float v[4][4];
#pragma unroll
        for (int u = 0; u < 4; u++)
            load_w(v[u], dx + (size_t)order[p + u] * H + j);
#pragma unroll
        for (int u = 0; u < 4; u++)
            for (int k = 0; k < 4; k++)
                acc[k] += v[u][k];
    }
    for (; p < end; p++) {
        float v[4];
        load_w(v, dx + (size_t)order[p] * H + j);
        for (int k = 0; k < 4; k++)
            acc[k] += v[k];
    }
    float r[4];
    load_w(r, row + j);
    for (int k = 0; k < 4; k++)
        r[k] += factor * acc[k];
    store_w(row + j, r);
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
    if (H % 4 == 0 && H <= 4096 && all_aligned(16, demb, dx))
        embed_backward4_kernel<<<distinct, H / 4, 0, s>>>(demb, dx, order, starts, ids, H, factor);
    else
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

/* Four logits in one access: a float4, or four bf16 in a uint2. */
template <typename Z> struct four_of;
template <> struct four_of<float> {
    typedef float4 type;
};
template <> struct four_of<bf16> {
    typedef uint2 type;
};
__device__ __forceinline__ float4 widen(float4 v) { return v; }
__device__ __forceinline__ float4 widen(uint2 v) {
    float2 lo = __bfloat1622float2(*(const __nv_bfloat162 *)&v.x), hi = __bfloat1622float2(*(const __nv_bfloat162 *)&v.y);
    return make_float4(lo.x, lo.y, hi.x, hi.y);
}
__device__ __forceinline__ float widen(float v) { return v; }
__device__ __forceinline__ float widen(bf16 v) { return __bfloat162float(v); }

/* One block per row: loss = lse − (1−ε)·z_y − ε·mean(z); dz = (p − ε/V − (1−ε)[v = y])·grad_scale.
 * The row is read from device memory once when it fits in shared memory
 * (`staged`), else twice. The gradient (bf16) overwrites the row's first 2V
 * bytes: step by step, every thread reads its four logits, then after a
 * barrier writes their four gradients, whose bytes belong to logits read in
 * this step or earlier (fp32 logits), or are the very logits it read (bf16). */
template <typename Z>
__global__ void __launch_bounds__(CE_THREADS)
    cross_entropy_kernel(Z *logits, size_t ld, bool grad, bool staged, float *row_loss, float *row_plain,
                         const int32_t *targets, int V, float eps, float grad_scale) {
    grid_dependency_wait();
    typedef typename four_of<Z>::type four;
    extern __shared__ float4 staged_row[]; /* [V / 4] fours when staged */
    four *row_s = (four *)staged_row;
    Z *z = logits + (size_t)blockIdx.x * ld;
    const four *z4 = (const four *)z;
    int y = targets[blockIdx.x], V4 = V / 4;
    float m = -INFINITY, s = 0, zs = 0;
#pragma unroll 4
    for (int i = threadIdx.x; i < V4; i += CE_THREADS) {
        four raw = z4[i];
        if (staged)
            row_s[i] = raw;
        float4 v = widen(raw);
        softmax_add(m, s, v);
        zs += (v.x + v.y) + (v.z + v.w);
    }
    for (int j = 4 * V4 + threadIdx.x; j < V; j += CE_THREADS) {
        softmax_add(m, s, make_float4(widen(z[j]), -INFINITY, -INFINITY, -INFINITY));
        zs += widen(z[j]);
    }
    float mx = block_max(m);
    float sum = block_sum(m == -INFINITY ? 0.0f : s * __expf(m - mx));
    float zsum = block_sum(zs);
    float lse = mx + logf(sum);
    if (threadIdx.x == 0) {
        float nll = lse - widen(z[y]);
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
    if (staged) { /* the reads come from shared memory: no barrier between them and the writes */
        uint2 *d4 = (uint2 *)z;
#pragma unroll 4
        for (int i = threadIdx.x; i < V4; i += CE_THREADS) {
            float4 v = widen(row_s[i]);
            __nv_bfloat162 lo = __floats2bfloat162_rn(grad_of(v.x, 4 * i), grad_of(v.y, 4 * i + 1));
            __nv_bfloat162 hi = __floats2bfloat162_rn(grad_of(v.z, 4 * i + 2), grad_of(v.w, 4 * i + 3));
            d4[i] = make_uint2(*(const unsigned *)&lo, *(const unsigned *)&hi);
        }
    }
    for (int base = 0; !staged && base < V4; base += CE_THREADS) {
        int i = base + threadIdx.x;
        float4 v = i < V4 ? widen(z4[i]) : make_float4(0, 0, 0, 0);
        __syncthreads();
        if (i < V4) {
            d2[2 * i] = __floats2bfloat162_rn(grad_of(v.x, 4 * i), grad_of(v.y, 4 * i + 1));
            d2[2 * i + 1] = __floats2bfloat162_rn(grad_of(v.z, 4 * i + 2), grad_of(v.w, 4 * i + 3));
        }
    }
    /* The last V mod 4 logits lie past every gradient written so far. */
    int j = 4 * V4 + threadIdx.x;
    float v = j < V ? widen(z[j]) : 0.0f;
    __syncthreads();
    if (j < V)
        ((bf16 *)z)[j] = __float2bfloat16(grad_of(v, j));
}

template <typename Z>
static ob_status cross_entropy(Z *logits, size_t ld, bool grad, float *row_loss, float *row_plain,
                               const int32_t *targets, int n, int V, float smoothing, float grad_scale,
                               cudaStream_t s) {
    if (ld % 4 || (uintptr_t)logits % (4 * sizeof(Z)))
        return ob_error(OB_ERR_INVALID_ARG, "cuda: cross-entropy rows must be aligned to four logits");
    /* Staged: few blocks an SM, so unrolled loads keep enough bytes in flight. */
    int device, most;
    OB_CUDA_TRY(cudaGetDevice(&device));
    OB_CUDA_TRY(cudaDeviceGetAttribute(&most, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    size_t bytes = (size_t)(V / 4) * sizeof(typename four_of<Z>::type);
    bool staged = grad && bytes + 1024 <= (size_t)most;
    if (staged)
        OB_CUDA_TRY(cudaFuncSetAttribute(cross_entropy_kernel<Z>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    ob_launch_dependent(cross_entropy_kernel<Z>, n, CE_THREADS, staged ? bytes : 0, s, logits, ld, grad, staged,
                        row_loss, row_plain, targets, V, smoothing, grad_scale);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

ob_status ob_gpu_cross_entropy(float *logits, size_t ld, bool grad, float *row_loss, float *row_plain,
                               const int32_t *targets, int n, int V, float smoothing, float grad_scale,
                               cudaStream_t s) {
    return cross_entropy(logits, ld, grad, row_loss, row_plain, targets, n, V, smoothing, grad_scale, s);
}

ob_status ob_gpu_cross_entropy(bf16 *logits, size_t ld, bool grad, float *row_loss, float *row_plain,
                               const int32_t *targets, int n, int V, float smoothing, float grad_scale,
                               cudaStream_t s) {
    return cross_entropy(logits, ld, grad, row_loss, row_plain, targets, n, V, smoothing, grad_scale, s);
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

#define SUM_THREADS 256

__device__ __forceinline__ double sum_term(float v, bool squares) { return squares ? (double)v * v : (double)v; }

/* The block's values summed as a fixed tree (the total in thread 0). */
__device__ __forceinline__ double block_tree_sum(double v) {
    __shared__ double part[SUM_THREADS];
    part[threadIdx.x] = v;
    __syncthreads();
    for (int half = SUM_THREADS / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half)
            part[threadIdx.x] += part[threadIdx.x + half];
        __syncthreads();
    }
    return part[0];
}

/* Each thread sums every (blocks x threads)-th run of four floats from its
 * own, then the tail's floats likewise, in a fixed order; enough blocks with
 * 16-byte loads to keep the memory busy (the gradient norm reads every
 * gradient: 256 blocks with 4-byte loads read it at a fraction of the
 * bandwidth). */
__global__ void __launch_bounds__(SUM_THREADS) sum_partials(const float *x, size_t n, double *partials, bool squares) {
    double acc = 0;
    size_t stride = (size_t)OB_GPU_SUM_BLOCKS * SUM_THREADS, first = (size_t)blockIdx.x * SUM_THREADS + threadIdx.x;
    size_t runs = (uintptr_t)x % 16 == 0 ? n / 4 : 0;
    const float4 *x4 = (const float4 *)x;
    for (size_t i = first; i < runs; i += stride) {
        float4 v = x4[i];
        acc += sum_term(v.x, squares) + sum_term(v.y, squares) + sum_term(v.z, squares) + sum_term(v.w, squares);
    }
    for (size_t i = 4 * runs + first; i < n; i += stride)
        acc += sum_term(x[i], squares);
    acc = block_tree_sum(acc);
    if (threadIdx.x == 0)
        partials[blockIdx.x] = acc;
}

/* The partials in a fixed order: a thread's run, then a tree. */
__global__ void __launch_bounds__(SUM_THREADS) sum_finish(double *out, const double *partials) {
    double t = 0;
    for (int i = threadIdx.x; i < OB_GPU_SUM_BLOCKS; i += SUM_THREADS)
        t += partials[i];
    t = block_tree_sum(t);
    if (threadIdx.x == 0)
        *out = t;
}

ob_status ob_gpu_sum(double *out, const float *x, size_t n, double *partials, bool squares, cudaStream_t s) {
    sum_partials<<<OB_GPU_SUM_BLOCKS, SUM_THREADS, 0, s>>>(x, n, partials, squares);
    sum_finish<<<1, SUM_THREADS, 0, s>>>(out, partials);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* Four consecutive floats a thread over the packed segments, so that every
 * segment gets threads in proportion to its size and none go to floats
 * outside them; a binary search over the ascending packed offsets finds the
 * segment. */
__global__ void adamw_kernel(float *w, const float *g, float *m, float *v, const ob_gpu_param_seg *segs, int num_segs,
                             int64_t packed_total, adamw_consts c) {
    int64_t p = 4 * ((int64_t)blockIdx.x * blockDim.x + threadIdx.x);
    if (p >= packed_total)
        return;
    int lo = 0, hi = num_segs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (segs[mid].packed <= p)
            lo = mid;
        else
            hi = mid - 1;
    }
    ob_gpu_param_seg seg = segs[lo];
    int64_t i = seg.offset + (p - seg.packed), end = seg.offset + seg.numel;
    if (i >= end)
        return;
    float decay = seg.decay ? 1.0f - c.lr * c.weight_decay : 1.0f;
    if (i + 4 <= end) {
        adamw_update4(w, g, m, v, i, decay, seg.clamp, c);
    } else {
        for (int64_t k = i; k < end; k++)
            adamw_update(w[k], g[k], m[k], v[k], decay, seg.clamp, c);
    }
}

int64_t ob_gpu_param_segs_pack(ob_gpu_param_seg *segs, int num_segs) {
    int64_t packed = 0;
    for (int i = 0; i < num_segs; i++) {
        segs[i].packed = packed;
        packed += (segs[i].numel + 3) / 4 * 4;
    }
    return packed;
}

ob_status ob_gpu_adamw(float *w, const float *g, float *m, float *v, const ob_gpu_param_seg *segs, int num_segs,
                       int64_t packed_total, const ob_gpu_adamw_step *a, cudaStream_t s) {
    if (packed_total == 0)
        return OB_OK;
    int64_t threads = packed_total / 4;
    adamw_kernel<<<(unsigned)((threads + 255) / 256), 256, 0, s>>>(w, g, m, v, segs, num_segs, packed_total,
                                                                    adamw_consts_of(a));
    OB_LAUNCH_CHECK();
    return OB_OK;
}
