/* Norms (fused with the activation quantiser) and QK-norm with RoPE, forward
 * and backward. */
#include "cuda/kernels.cuh"
#include "cuda/vec_access.cuh"

#define DG_ROWS 32 /* rows per partial sum of a gain gradient */

/* One warp per row, W columns per lane access; each pass reads the row again
 * (from L1). With a branch, the row is x + branch, stored to x_sum by the
 * first pass. y is written unless it is yq and a quantiser runs. */
#define ROW_WARPS 8

/* The row's 1/σ from this lane's part of Σ(x − m)² (or Σx²), stored with the
 * mean (LayerNorm) by lane 0. */
__device__ __forceinline__ float row_rstd(float *mean, float *rstd, int row, float m, float ss, int d, float eps,
                                          bool layernorm, int lane) {
    float r = rsqrtf(warp_sum(ss) / d + eps);
    if (lane == 0) {
        if (layernorm)
            mean[row] = m;
        rstd[row] = r;
    }
    return r;
}

template <int W>
__global__ void norm_forward_kernel(bf16 *y, bf16 *yq, float *mean, float *rstd, float *x_sum, const float *x,
                                    const bf16 *branch, const float *g, int n, int d, float eps, bool layernorm,
                                    int bits) {
    grid_dependency_wait();
    int row = blockIdx.x * ROW_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= n)
        return;
    const float *xr = x + (size_t)row * d;
    float *sr = branch ? x_sum + (size_t)row * d : NULL;
    /* First pass: the row (x + branch, stored), and the sum for the mean
     * (LayerNorm) or the sum of squares (RMSNorm). */
    float s = 0;
    for (int j = W * lane; j < d; j += 32 * W) {
        float v[W];
        load_w(v, xr + j);
        if (sr) {
            float b[W];
            load_w(b, branch + (size_t)row * d + j);
            for (int k = 0; k < W; k++)
                v[k] += b[k];
            store_w(sr + j, v);
        }
        for (int k = 0; k < W; k++)
            s += layernorm ? v[k] : v[k] * v[k];
    }
    if (sr)
        xr = sr; /* later passes read this lane's own stores */
    float m = layernorm ? warp_sum(s) / d : 0.0f;
    float ss = layernorm ? 0.0f : s;
    if (layernorm)
        for (int j = W * lane; j < d; j += 32 * W) {
            float v[W];
            load_w(v, xr + j);
            for (int k = 0; k < W; k++)
                ss += (v[k] - m) * (v[k] - m);
        }
    float r = row_rstd(mean, rstd, row, m, ss, d, eps, layernorm, lane);
    bool plain = y != yq || bits == 0;
    float mx = 0;
    for (int j = W * lane; j < d; j += 32 * W) {
        float v[W], gv[W];
        load_w(v, xr + j);
        load_w(gv, g + j);
        for (int k = 0; k < W; k++) {
            v[k] = (v[k] - m) * r * gv[k];
            mx = fmaxf(mx, fabsf(v[k]));
        }
        if (plain)
            store_w(y + (size_t)row * d + j, v);
    }
    if (bits == 0)
        return;
    mx = warp_max(mx);
    float qmax = (float)((1 << (bits - 1)) - 1), sc = qmax / fmaxf(mx, 1e-5f), inv = 1.0f / sc;
    for (int j = W * lane; j < d; j += 32 * W) {
        float v[W], gv[W];
        load_w(v, xr + j);
        load_w(gv, g + j);
        for (int k = 0; k < W; k++)
            v[k] = quant_value((v[k] - m) * r * gv[k], sc, inv, -qmax - 1.0f, qmax);
        store_w(yq + (size_t)row * d + j, v);
    }
}

/* The same for rows of d = 128·ITER, held in registers: a lane's ITER groups
 * of four values are all loaded before any is used, where the loop above
 * reads the row three times, waiting for each group's loads in turn (58
 * against 54 us for 16384 rows of 768 on an H100). */
template <int ITER>
__global__ void __launch_bounds__(ROW_WARPS * 32)
    norm_forward_regs_kernel(bf16 *y, bf16 *yq, float *mean, float *rstd, float *x_sum, const float *x,
                             const bf16 *branch, const float *g, int n, float eps, bool layernorm, int bits) {
    grid_dependency_wait();
    constexpr int d = ITER * 128;
    int row = blockIdx.x * ROW_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= n)
        return;
    size_t at = (size_t)row * d + 4 * lane;
    float v[ITER][4], s = 0;
#pragma unroll
    for (int it = 0; it < ITER; it++) {
        load_w(v[it], x + at + it * 128);
        if (branch) {
            float b[4];
            load_w(b, branch + at + it * 128);
            for (int k = 0; k < 4; k++)
                v[it][k] += b[k];
            store_w(x_sum + at + it * 128, v[it]);
        }
        for (int k = 0; k < 4; k++)
            s += layernorm ? v[it][k] : v[it][k] * v[it][k];
    }
    float m = layernorm ? warp_sum(s) / d : 0.0f, ss = layernorm ? 0.0f : s;
#pragma unroll
    for (int it = 0; layernorm && it < ITER; it++)
        for (int k = 0; k < 4; k++)
            ss += (v[it][k] - m) * (v[it][k] - m);
    float r = row_rstd(mean, rstd, row, m, ss, d, eps, layernorm, lane);
    bool plain = y != yq || bits == 0;
    float mx = 0;
#pragma unroll
    for (int it = 0; it < ITER; it++) {
        float gv[4];
        load_w(gv, g + 4 * lane + it * 128);
        for (int k = 0; k < 4; k++) {
            v[it][k] = (v[it][k] - m) * r * gv[k];
            mx = fmaxf(mx, fabsf(v[it][k]));
        }
        if (plain)
            store_w(y + at + it * 128, v[it]);
    }
    if (bits == 0)
        return;
    mx = warp_max(mx);
    float qmax = (float)((1 << (bits - 1)) - 1), sc = qmax / fmaxf(mx, 1e-5f), inv = 1.0f / sc;
#pragma unroll
    for (int it = 0; it < ITER; it++) {
        for (int k = 0; k < 4; k++)
            v[it][k] = quant_value(v[it][k], sc, inv, -qmax - 1.0f, qmax);
        store_w(yq + at + it * 128, v[it]);
    }
}

ob_status ob_gpu_norm_forward(bf16 *y, bf16 *yq, float *mean, float *rstd, float *x_sum, const float *x,
                              const bf16 *branch, const float *g, int n, int d, float eps, bool layernorm,
                              int act_bits, cudaStream_t s) {
    unsigned blocks = ob_blocks((size_t)n, ROW_WARPS);
    bool vectorised = d % 4 == 0 && all_aligned(16, x, g, x_sum) && all_aligned(8, y, yq, branch);
    if (vectorised && d == 768)
        ob_launch_dependent(norm_forward_regs_kernel<6>, blocks, ROW_WARPS * 32, 0, s, y, yq, mean, rstd, x_sum, x,
                            branch, g, n, eps, layernorm, act_bits);
    else if (vectorised && d == 1024)
        ob_launch_dependent(norm_forward_regs_kernel<8>, blocks, ROW_WARPS * 32, 0, s, y, yq, mean, rstd, x_sum, x,
                            branch, g, n, eps, layernorm, act_bits);
    else if (vectorised)
        ob_launch_dependent(norm_forward_kernel<4>, blocks, ROW_WARPS * 32, 0, s, y, yq, mean, rstd, x_sum, x, branch,
                            g, n, d, eps, layernorm, act_bits);
    else
        ob_launch_dependent(norm_forward_kernel<1>, blocks, ROW_WARPS * 32, 0, s, y, yq, mean, rstd, x_sum, x, branch,
                            g, n, d, eps, layernorm, act_bits);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* The block's gain-gradient partial sums: its `rows` rows of shared memory
 * (one a warp, or a slot of vectors) added in order into its row of `partials`. */
__device__ __forceinline__ void block_gain_partials(float *partials, const float *dg_acc, int rows, int d) {
    __syncthreads();
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float t = 0;
        for (int w = 0; w < rows; w++)
            t += dg_acc[w * d + j];
        partials[(size_t)blockIdx.x * d + j] = t;
    }
}

/* dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dy·g. One warp per row, DG_ROWS
 * rows per block, W columns per lane access; the second pass over a row reads
 * it from L1. Each warp sums dy·x̂ (the gain gradient) over its rows in its own
 * row of shared memory; the block adds its warps in order into its row of
 * `partials`, which column_sum adds in a fixed order: no atomics. */
template <int W>
__global__ void norm_backward_kernel(float *dx, bool accumulate, bf16 *dx16, float scale16, float *partials,
                                     const bf16 *dy, const float *x, const float *g, const float *mean,
                                     const float *rstd, int n, int d, bool layernorm) {
    grid_dependency_wait();
    extern __shared__ float dg_acc[]; /* [warps][d] */
    int warps = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *acc = dg_acc + (size_t)warp * d;
    for (int j = lane; j < d; j += 32)
        acc[j] = 0.0f;
    __syncwarp(); /* the lanes below read other lanes' zeros */
    int row_end = min(n, (int)(blockIdx.x + 1) * DG_ROWS);
    for (int row = blockIdx.x * DG_ROWS + warp; row < row_end; row += warps) {
        const float *xr = x + (size_t)row * d;
        const bf16 *dyr = dy + (size_t)row * d;
        float *dxr = dx + (size_t)row * d;
        float m = layernorm ? mean[row] : 0.0f, r = rstd[row];
        float s1 = 0, s2 = 0;
        for (int j = W * lane; j < d; j += 32 * W) {
            float xv[W], dv[W], gv[W];
            load_w(xv, xr + j);
            load_w(dv, dyr + j);
            load_w(gv, g + j);
            for (int k = 0; k < W; k++) {
                float dxh = dv[k] * gv[k];
                s1 += dxh;
                s2 += dxh * (xv[k] - m) * r;
            }
        }
        s1 = warp_sum(s1);
        s2 = warp_sum(s2);
        float mean_dxh = layernorm ? s1 / d : 0.0f, mean_dxh_xh = s2 / d;
        for (int j = W * lane; j < d; j += 32 * W) {
            float xv[W], dv[W], gv[W], out[W], a[W];
            load_w(xv, xr + j);
            load_w(dv, dyr + j);
            load_w(gv, g + j);
            load_w(a, acc + j);
            if (accumulate)
                load_w(out, dxr + j);
            for (int k = 0; k < W; k++) {
                float xh = (xv[k] - m) * r;
                float v = r * (dv[k] * gv[k] - mean_dxh - xh * mean_dxh_xh);
                out[k] = accumulate ? out[k] + v : v;
                a[k] += dv[k] * xh;
            }
            store_w(dxr + j, out);
            if (dx16)
                store_w(dx16 + (size_t)row * d + j, out, scale16);
            store_w(acc + j, a);
        }
    }
    block_gain_partials(partials, dg_acc, warps, d);
}

/* The same for rows of d = 128·ITER held in registers: a lane issues every
 * load of its part of the row (x, dy, and dx when accumulating) before it
 * uses any, where the loop above waits for each group's loads in turn. Same
 * operations in the same order. */
template <int ITER>
__global__ void norm_backward_regs_kernel(float *dx, bool accumulate, bf16 *dx16, float scale16, float *partials,
                                          const bf16 *dy, const float *x, const float *g, const float *mean,
                                          const float *rstd, int n, bool layernorm) {
    grid_dependency_wait();
    constexpr int d = ITER * 128;
    extern __shared__ float dg_acc[]; /* [warps][d] */
    int warps = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *acc = dg_acc + (size_t)warp * d + 4 * lane;
    const float zero[4] = {};
#pragma unroll
    for (int it = 0; it < ITER; it++)
        store_w(acc + it * 128, zero);
    int row_end = min(n, (int)(blockIdx.x + 1) * DG_ROWS);
    for (int row = blockIdx.x * DG_ROWS + warp; row < row_end; row += warps) {
        size_t at = (size_t)row * d + 4 * lane;
        float xv[ITER][4], dv[ITER][4], out[ITER][4];
#pragma unroll
        for (int it = 0; it < ITER; it++) {
            load_w(xv[it], x + at + it * 128);
            load_w(dv[it], dy + at + it * 128);
            if (accumulate)
                load_w(out[it], dx + at + it * 128);
        }
        float m = layernorm ? mean[row] : 0.0f, r = rstd[row];
        float s1 = 0, s2 = 0;
#pragma unroll
        for (int it = 0; it < ITER; it++) {
            float gv[4];
            load_w(gv, g + 4 * lane + it * 128);
            for (int k = 0; k < 4; k++) {
                float dxh = dv[it][k] * gv[k];
                s1 += dxh;
                s2 += dxh * (xv[it][k] - m) * r;
            }
        }
        s1 = warp_sum(s1);
        s2 = warp_sum(s2);
        float mean_dxh = layernorm ? s1 / d : 0.0f, mean_dxh_xh = s2 / d;
#pragma unroll
        for (int it = 0; it < ITER; it++) {
            float gv[4], a[4];
            load_w(gv, g + 4 * lane + it * 128);
            load_w(a, acc + it * 128);
            for (int k = 0; k < 4; k++) {
                float xh = (xv[it][k] - m) * r;
                float v = r * (dv[it][k] * gv[k] - mean_dxh - xh * mean_dxh_xh);
                out[it][k] = accumulate ? out[it][k] + v : v;
                a[k] += dv[it][k] * xh;
            }
            store_w(dx + at + it * 128, out[it]);
            if (dx16)
                store_w(dx16 + at + it * 128, out[it], scale16);
            store_w(acc + it * 128, a);
        }
    }
    block_gain_partials(partials, dg_acc, warps, d);
}

/* dg[j] += Σ_c partials[c][j]: 32 columns per block, each of COLSUM_SPLIT
 * threads sums a fixed strided subset of the rows, and those are added in order.
 * Eight loads a thread go out together (the adds keep their order): a few dozen
 * blocks on an H100 are otherwise bound by one load's latency after another. */
#define COLSUM_SPLIT 32
#define COLSUM_LOADS 8

__global__ void column_sum(float *dg, const float *partials, int chunks, int d) {
    grid_dependency_wait();
    __shared__ float part[COLSUM_SPLIT][33];
    int j = blockIdx.x * 32 + threadIdx.x, c = threadIdx.y;
    float t = 0;
    if (j < d) {
        for (; c + (COLSUM_LOADS - 1) * COLSUM_SPLIT < chunks; c += COLSUM_LOADS * COLSUM_SPLIT) {
            float v[COLSUM_LOADS];
#pragma unroll
            for (int u = 0; u < COLSUM_LOADS; u++)
                v[u] = partials[(size_t)(c + u * COLSUM_SPLIT) * d + j];
#pragma unroll
            for (int u = 0; u < COLSUM_LOADS; u++)
                t += v[u];
        }
        for (; c < chunks; c += COLSUM_SPLIT)
            t += partials[(size_t)c * d + j];
    }
    part[threadIdx.y][threadIdx.x] = t;
    __syncthreads();
    if (threadIdx.y || j >= d)
        return;
    t = 0;
    for (int y = 0; y < COLSUM_SPLIT; y++)
        t += part[y][threadIdx.x];
    dg[j] += t;
}

static void column_sum_launch(float *dg, const float *partials, int chunks, int d, cudaStream_t s) {
    ob_launch_dependent(column_sum, (d + 31) / 32, dim3(32, COLSUM_SPLIT), 0, s, dg, partials, chunks, d);
}

ob_status ob_gpu_gain_sum(float *dg, const float *partials, size_t floats, int d, cudaStream_t s) {
    column_sum_launch(dg, partials, (int)(floats / (size_t)d), d, s);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

size_t ob_gpu_norm_partials(int n, int d) { return (size_t)((n + DG_ROWS - 1) / DG_ROWS) * d; }

ob_status ob_gpu_norm_backward(float *dx, bool accumulate, bf16 *dx16, float scale16, float *dg, float *partials,
                               const bf16 *dy, const float *x, const float *g, const float *mean, const float *rstd,
                               int n, int d, bool layernorm, cudaStream_t s) {
    /* As many warps (up to 8) as fit their gain sums in 48 KB of shared memory. */
    int warps = (48 << 10) / (d * (int)sizeof(float));
    if (warps < 1)
        return ob_error(OB_ERR_UNSUPPORTED, "cuda: norm backward of rows wider than 12288");
    warps = warps > 8 ? 8 : warps;
    int chunks = (n + DG_ROWS - 1) / DG_ROWS;
    size_t smem = (size_t)warps * d * sizeof(float);
    /* 16-byte accesses where every row starts aligned (gains sit at any offset of the parameters). */
    bool vectorised = d % 4 == 0 && all_aligned(16, x, g, dx) && all_aligned(8, dy, dx16);
    if (vectorised && d == 768)
        ob_launch_dependent(norm_backward_regs_kernel<6>, chunks, warps * 32, smem, s, dx, accumulate, dx16, scale16,
                            partials, dy, x, g, mean, rstd, n, layernorm);
    else if (vectorised && d == 1024)
        ob_launch_dependent(norm_backward_regs_kernel<8>, chunks, warps * 32, smem, s, dx, accumulate, dx16, scale16,
                            partials, dy, x, g, mean, rstd, n, layernorm);
    else if (vectorised)
        ob_launch_dependent(norm_backward_kernel<4>, chunks, warps * 32, smem, s, dx, accumulate, dx16, scale16,
                            partials, dy, x, g, mean, rstd, n, d, layernorm);
    else
        ob_launch_dependent(norm_backward_kernel<1>, chunks, warps * 32, smem, s, dx, accumulate, dx16, scale16,
                            partials, dy, x, g, mean, rstd, n, d, layernorm);
    if (dg)
        column_sum_launch(dg, partials, chunks, d, s);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* ---- QK-norm and RoPE: one warp per head vector --------------------------------- */

#define QK_WARPS 8

/* Where head vector `vec` (token vec / heads, head vec % heads) starts in rows
 * of `ld` elements a token. */
__device__ __forceinline__ size_t head_at(int vec, int heads, int hd, size_t ld) {
    return (size_t)(vec / heads) * ld + (size_t)(vec % heads) * hd;
}

__global__ void qk_forward_kernel(bf16 *out, const bf16 *in, size_t ld, float *rstd, const float *gain,
                                  const float *cs, const float *sn, int rows, int T, int heads, int hd, float eps,
                                  bool qk_norm, bool rope) {
    grid_dependency_wait();
    int vec = blockIdx.x * QK_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (vec >= rows)
        return;
    int t = (vec / heads) % T;
    const bf16 *v = in + head_at(vec, heads, hd, ld);
    bf16 *o = out + (size_t)vec * hd;
    float r = 1.0f;
    if (qk_norm) {
        float ss = 0;
        for (int j = lane; j < hd; j += 32) {
            float a = __bfloat162float(v[j]);
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
        o[2 * p] = __float2bfloat16(a);
        o[2 * p + 1] = __float2bfloat16(b);
    }
}

/* The same with eight elements (four RoPE pairs) a thread and hd/8 threads a
 * vector: 16-byte accesses and four times the bytes in flight of a warp per
 * vector, for head sizes whose hd/8 divides 32 (a group never straddles warps).
 * Threads past the last vector still take part in the group's shuffles. */
__global__ void qk_forward8_kernel(bf16 *out, const bf16 *in, size_t ld, float *rstd, const float *gain,
                                   const float *cs, const float *sn, int rows, int T, int heads, int hd, float eps,
                                   bool qk_norm, bool rope) {
    grid_dependency_wait();
    int group = hd / 8, half = hd / 2;
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    int vec = (int)(tid / group), part = (int)(tid % group), j0 = 8 * part;
    bool valid = vec < rows;
    int t = (vec / heads) % T;
    float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (valid)
        load_w(a, in + head_at(vec, heads, hd, ld) + j0);
    if (qk_norm) {
        float ss = 0;
        for (int k = 0; k < 8; k++)
            ss += a[k] * a[k];
        float r = rsqrtf(group_sum(ss, group) / hd + eps);
        if (valid && part == 0)
            rstd[vec] = r;
        for (int k = 0; k < 8; k++)
            a[k] *= r * gain[j0 + k];
    }
    if (!valid)
        return;
    if (rope) {
        for (int k = 0; k < 4; k++) {
            float c = cs[(size_t)t * half + j0 / 2 + k], sn_ = sn[(size_t)t * half + j0 / 2 + k];
            float p0 = a[2 * k], p1 = a[2 * k + 1];
            a[2 * k] = p0 * c - p1 * sn_;
            a[2 * k + 1] = p0 * sn_ + p1 * c;
        }
    }
    store_w(out + (size_t)vec * hd + j0, a);
}

static bool qk_vectorised(const void *dense, const void *strided, size_t ld, int hd) {
    return hd % 8 == 0 && 32 % (hd / 8) == 0 && ld % 8 == 0 && (uintptr_t)dense % 16 == 0 &&
           (uintptr_t)strided % 16 == 0;
}

ob_status ob_gpu_qk_forward(bf16 *out, const bf16 *in, size_t ld, float *rstd, const float *gain,
                            const float *rope_cos, const float *rope_sin, int B, int T, int heads, int hd, float eps,
                            bool qk_norm, bool rope, cudaStream_t s) {
    int rows = B * T * heads;
    if (qk_vectorised(out, in, ld, hd))
        ob_launch_dependent(qk_forward8_kernel, ob_blocks((size_t)rows * (hd / 8), 256), 256, 0, s, out, in, ld, rstd,
                            gain, rope_cos, rope_sin, rows, T, heads, hd, eps, qk_norm, rope);
    else
        ob_launch_dependent(qk_forward_kernel, ob_blocks((size_t)rows, QK_WARPS), QK_WARPS * 32, 0, s, out, in, ld,
                            rstd, gain, rope_cos, rope_sin, rows, T, heads, hd, eps, qk_norm, rope);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* Each block handles QK_CHUNK vectors and writes its gain-gradient partial
 * sums: 1536 blocks for GPT-2's 16K tokens × 12 heads (256 a block ran
 * 1.13 ms a step on an H100, 128 ran 1.07). */
#define QK_CHUNK 128

size_t ob_gpu_qk_partials(int rows, int hd) { return (size_t)(rows + QK_CHUNK - 1) / QK_CHUNK * hd; }

__global__ void qk_backward_kernel(bf16 *dx, size_t ld, float *partials, const bf16 *dy, const bf16 *pre,
                                   const float *rstd, const float *gain, const float *cs, const float *sn, int rows,
                                   int T, int heads, int hd, bool qk_norm, bool rope) {
    grid_dependency_wait();
    extern __shared__ float dgain_acc[]; /* [QK_WARPS][hd] */
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, half = hd / 2;
    float *acc = dgain_acc + warp * hd;
    for (int j = lane; j < hd; j += 32)
        acc[j] = 0.0f;
    int first = blockIdx.x * QK_CHUNK, last = min(rows, first + QK_CHUNK);
    for (int vec = first + warp; vec < last; vec += QK_WARPS) {
        int t = (vec / heads) % T;
        const bf16 *din = dy + (size_t)vec * hd;
        bf16 *d = dx + head_at(vec, heads, hd, ld); /* RoPE's backward lands here, then the norm's */
        for (int p = lane; p < half; p += 32) {
            float a = __bfloat162float(din[2 * p]), b = __bfloat162float(din[2 * p + 1]);
            if (rope) {
                float c = cs[(size_t)t * half + p], s_ = sn[(size_t)t * half + p];
                float na = a * c + b * s_, nb = -a * s_ + b * c;
                a = na;
                b = nb;
            }
            d[2 * p] = __float2bfloat16(a);
            d[2 * p + 1] = __float2bfloat16(b);
        }
        __syncwarp();
        if (!qk_norm)
            continue;
        const bf16 *xv = pre + head_at(vec, heads, hd, ld);
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
    block_gain_partials(partials, dgain_acc, QK_WARPS, hd);
}

/* The backward with eight elements a thread (see qk_forward8_kernel): the block
 * walks its QK_CHUNK vectors 256/(hd/8) at a time, every thread keeping the
 * gain sums of its eight columns in registers; the block adds them in order. */
#define QK8_THREADS 256

__global__ void qk_backward8_kernel(bf16 *dx, size_t ld, float *partials, const bf16 *dy, const bf16 *pre,
                                    const float *rstd, const float *gain, const float *cs, const float *sn, int rows,
                                    int T, int heads, int hd, bool qk_norm, bool rope) {
    grid_dependency_wait();
    __shared__ float sums[QK8_THREADS * 8]; /* [slots][hd] */
    int group = hd / 8, half = hd / 2, slots = QK8_THREADS / group;
    int slot = threadIdx.x / group, part = threadIdx.x % group, j0 = 8 * part;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, g[8];
    for (int k = 0; k < 8; k++)
        g[k] = qk_norm ? gain[j0 + k] : 0.0f;
    int first = blockIdx.x * QK_CHUNK, last = min(rows, first + QK_CHUNK);
    for (int base = first; base < last; base += slots) {
        int vec = base + slot, t = (vec / heads) % T;
        bool valid = vec < last;
        size_t at = valid ? head_at(vec, heads, hd, ld) + j0 : 0;
        float a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, xv[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (valid) {
            load_w(a, dy + (size_t)vec * hd + j0);
            if (qk_norm)
                load_w(xv, pre + at);
        }
        if (rope && valid) {
            for (int k = 0; k < 4; k++) {
                float c = cs[(size_t)t * half + j0 / 2 + k], s_ = sn[(size_t)t * half + j0 / 2 + k];
                float p0 = a[2 * k], p1 = a[2 * k + 1];
                a[2 * k] = p0 * c + p1 * s_;
                a[2 * k + 1] = -p0 * s_ + p1 * c;
            }
        }
        if (qk_norm) {
            float r = valid ? rstd[vec] : 0.0f, s2 = 0;
            for (int k = 0; k < 8; k++)
                s2 += a[k] * g[k] * xv[k] * r;
            s2 = group_sum(s2, group) / hd;
            for (int k = 0; k < 8; k++) {
                float xh = xv[k] * r;
                acc[k] += a[k] * xh;
                a[k] = r * (a[k] * g[k] - xh * s2);
            }
        }
        if (valid)
            store_w(dx + at, a);
    }
    for (int k = 0; k < 8; k++)
        sums[slot * hd + j0 + k] = acc[k];
    block_gain_partials(partials, sums, slots, hd);
}

ob_status ob_gpu_qk_backward(bf16 *dx, size_t ld, const bf16 *dy, float *dgain, float *partials, const bf16 *pre,
                             const float *rstd, const float *gain, const float *rope_cos, const float *rope_sin, int B,
                             int T, int heads, int hd, bool qk_norm, bool rope, cudaStream_t s) {
    int rows = B * T * heads, chunks = (rows + QK_CHUNK - 1) / QK_CHUNK;
    if (qk_vectorised(dy, dx, ld, hd) && (uintptr_t)pre % 16 == 0)
        ob_launch_dependent(qk_backward8_kernel, chunks, QK8_THREADS, 0, s, dx, ld, partials, dy, pre, rstd, gain,
                            rope_cos, rope_sin, rows, T, heads, hd, qk_norm, rope);
    else
        ob_launch_dependent(qk_backward_kernel, chunks, QK_WARPS * 32, QK_WARPS * hd * sizeof(float), s, dx, ld,
                            partials, dy, pre, rstd, gain, rope_cos, rope_sin, rows, T, heads, hd, qk_norm, rope);
    if (qk_norm && dgain)
        column_sum_launch(dgain, partials, chunks, hd, s);
    OB_LAUNCH_CHECK();
    return OB_OK;
}
