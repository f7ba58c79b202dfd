/* Causal attention with grouped-query heads, flash-style: scores and
 * probabilities live only in registers and shared memory, one tile at a time,
 * with an online softmax; the backward pass recomputes them from the saved
 * row log-sum-exp. Head sizes 64 and 128 use tensor cores (WMMA, bf16 in, fp32
 * accumulate) on 64 x 64 tiles; other sizes use a simple warp-per-row path.
 * The backward pass writes dQ in one kernel and dK/dV in another (each output
 * owned by one block), so no atomics and the result repeats bit for bit. */
#include <mma.h>

#include "cuda/kernels.cuh"

using namespace nvcuda;

/* ---- simple path: one warp per query row ------------------------------------- */

#define SIMPLE_WARPS 4

__device__ __forceinline__ float dot_warp(const bf16 *a, const bf16 *b, int hd, int lane) {
    float s = 0;
    for (int j = lane; j < hd; j += 32)
        s += __bfloat162float(a[j]) * __bfloat162float(b[j]);
    return warp_sum(s);
}

__global__ void simple_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, int B, int T, int nh,
                               int nkv, int hd, float scale) {
    int row = blockIdx.x * SIMPLE_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= B * nh * T)
        return;
    int t = row % T, h = (row / T) % nh, b = row / (T * nh), kh = h / (nh / nkv);
    const bf16 *qt = q + (((size_t)b * T + t) * nh + h) * hd;
    float acc[8] = {0}; /* hd <= 256: lane owns dims lane + 32·i */
    float m = -INFINITY, l = 0;
    for (int u = 0; u <= t; u++) {
        const bf16 *ku = k + (((size_t)b * T + u) * nkv + kh) * hd;
        const bf16 *vu = v + (((size_t)b * T + u) * nkv + kh) * hd;
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

/* delta[b,h,t] = Σ dO·O. */
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
                                   const bf16 *k, const bf16 *v, int B, int T, int nh, int nkv, int hd, float scale) {
    int row = blockIdx.x * SIMPLE_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= B * nh * T)
        return;
    int t = row % T, h = (row / T) % nh, b = row / (T * nh), kh = h / (nh / nkv);
    size_t base = (((size_t)b * T + t) * nh + h) * hd;
    float L = lse[row], D = delta[row];
    float acc[8] = {0};
    for (int u = 0; u <= t; u++) {
        const bf16 *ku = k + (((size_t)b * T + u) * nkv + kh) * hd;
        const bf16 *vu = v + (((size_t)b * T + u) * nkv + kh) * hd;
        float p = __expf(dot_warp(q + base, ku, hd, lane) * scale - L);
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
            dq[base + j] = __float2bfloat16(acc[i]);
    }
}

/* One warp per key row u of a key/value head: sums over the query heads of its
 * group and the queries t >= u. */
__global__ void simple_backward_dkv(bf16 *dk, bf16 *dv, const bf16 *dout, const float *lse, const float *delta,
                                    const bf16 *q, const bf16 *k, const bf16 *v, int B, int T, int nh, int nkv, int hd,
                                    float scale) {
    int row = blockIdx.x * SIMPLE_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= B * nkv * T)
        return;
    int u = row % T, kh = (row / T) % nkv, b = row / (T * nkv), group = nh / nkv;
    size_t kbase = (((size_t)b * T + u) * nkv + kh) * hd;
    float ak[8] = {0}, av[8] = {0};
    for (int h = kh * group; h < (kh + 1) * group; h++) {
        for (int t = u; t < T; t++) {
            size_t qbase = (((size_t)b * T + t) * nh + h) * hd;
            size_t r = ((size_t)b * nh + h) * T + t;
            float p = __expf(dot_warp(q + qbase, k + kbase, hd, lane) * scale - lse[r]);
            float ds = p * (dot_warp(dout + qbase, v + kbase, hd, lane) - delta[r]) * scale;
            for (int i = 0; i < 8; i++) {
                int j = lane + 32 * i;
                if (j < hd) {
                    av[i] += p * __bfloat162float(dout[qbase + j]);
                    ak[i] += ds * __bfloat162float(q[qbase + j]);
                }
            }
        }
    }
    for (int i = 0; i < 8; i++) {
        int j = lane + 32 * i;
        if (j < hd) {
            dk[kbase + j] = __float2bfloat16(ak[i]);
            dv[kbase + j] = __float2bfloat16(av[i]);
        }
    }
}

/* ---- tensor-core path: 64 x 64 tiles, 4 warps of 16 rows each ------------------ */

#define TILE 64
#define FWARPS 4

/* Copies `rows` rows of a head (stride `stride` elements between rows) into a
 * dense [TILE][HD] tile; rows past `valid` become zeros. */
template <int HD>
__device__ __forceinline__ void load_tile(bf16 *dst, const bf16 *src, size_t stride, int valid) {
    constexpr int VEC = 8; /* 16 bytes */
    for (int i = threadIdx.x; i < TILE * HD / VEC; i += blockDim.x) {
        int r = i / (HD / VEC), c = (i % (HD / VEC)) * VEC;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (r < valid)
            val = *(const uint4 *)(src + r * stride + c);
        *(uint4 *)(dst + r * HD + c) = val;
    }
}

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> frag_a_row;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> frag_a_col;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> frag_b_row;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> frag_b_col;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> frag_acc;

/* out[16][64] (fp32, ld 64) = A[16][HD] · B[64][HD]ᵀ, A and B row-major with ld HD. */
template <int HD>
__device__ __forceinline__ void mma_abt(float *out, const bf16 *a, const bf16 *b) {
    for (int n = 0; n < TILE / 16; n++) {
        frag_acc acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int kk = 0; kk < HD / 16; kk++) {
            frag_a_row fa;
            frag_b_col fb;
            wmma::load_matrix_sync(fa, a + kk * 16, HD);
            wmma::load_matrix_sync(fb, b + n * 16 * HD + kk * 16, HD);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        wmma::store_matrix_sync(out + n * 16, acc, TILE, wmma::mem_row_major);
    }
}

/* out[16][HD] (fp32, ld HD) = P[16][64] (bf16, ld lda) · V[64][HD] (ld HD); with
 * transpose_p, P is read as the transpose of the [64][16] block at p (ld lda). */
template <int HD>
__device__ __forceinline__ void mma_pv(float *out, const bf16 *p, int lda, bool transpose_p, const bf16 *v) {
    for (int n = 0; n < HD / 16; n++) {
        frag_acc acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int kk = 0; kk < TILE / 16; kk++) {
            frag_b_row fb;
            wmma::load_matrix_sync(fb, v + kk * 16 * HD + n * 16, HD);
            if (transpose_p) {
                frag_a_col fa;
                wmma::load_matrix_sync(fa, p + kk * 16 * lda, lda);
                wmma::mma_sync(acc, fa, fb, acc);
            } else {
                frag_a_row fa;
                wmma::load_matrix_sync(fa, p + kk * 16, lda);
                wmma::mma_sync(acc, fa, fb, acc);
            }
        }
        wmma::store_matrix_sync(out + n * 16, acc, HD, wmma::mem_row_major);
    }
}

/* Shared memory of the forward kernel. */
template <int HD> struct fwd_smem {
    bf16 q[TILE * HD], k[TILE * HD], v[TILE * HD];
    float s[FWARPS][16 * TILE];
    bf16 p[FWARPS][16 * TILE];
    float o[FWARPS][16 * HD];
};

/* Each lane owns half a row (row = lane / 2) of its warp's 16 rows. */
template <int HD>
__global__ void __launch_bounds__(FWARPS * 32) flash_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k,
                                                             const bf16 *v, int T, int nh, int nkv, float scale) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    fwd_smem<HD> &sm = *reinterpret_cast<fwd_smem<HD> *>(smem_raw);
    int qb = blockIdx.x, bh = blockIdx.y, b = bh / nh, h = bh % nh, kh = h / (nh / nkv);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, row = lane >> 1, half = lane & 1;
    int q0 = qb * TILE;
    size_t qstride = (size_t)nh * HD, kstride = (size_t)nkv * HD;
    load_tile<HD>(sm.q, q + ((size_t)b * T + q0) * qstride + (size_t)h * HD, qstride, min(TILE, T - q0));
    constexpr int OH = HD / 2;
    float acc[OH];
#pragma unroll
    for (int i = 0; i < OH; i++)
        acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    int qt = q0 + warp * 16 + row; /* this lane's query position */
    for (int kb = 0; kb <= qb; kb++) {
        int k0 = kb * TILE;
        __syncthreads();
        load_tile<HD>(sm.k, k + ((size_t)b * T + k0) * kstride + (size_t)kh * HD, kstride, min(TILE, T - k0));
        load_tile<HD>(sm.v, v + ((size_t)b * T + k0) * kstride + (size_t)kh * HD, kstride, min(TILE, T - k0));
        __syncthreads();
        mma_abt<HD>(sm.s[warp], sm.q + warp * 16 * HD, sm.k);
        __syncwarp();
        const float *srow = sm.s[warp] + row * TILE + half * 32;
        float sv[32], mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < 32; j++) {
            int kt = k0 + half * 32 + j;
            sv[j] = (kt <= qt && kt < T) ? srow[j] * scale : -INFINITY;
            mx = fmaxf(mx, sv[j]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        float mn = fmaxf(m, mx);
        float corr = mn == -INFINITY ? 1.0f : __expf(m - mn), sum = 0.0f;
        bf16 *prow = sm.p[warp] + row * TILE + half * 32;
#pragma unroll
        for (int j = 0; j < 32; j++) {
            float pv = sv[j] == -INFINITY ? 0.0f : __expf(sv[j] - mn);
            sum += pv;
            prow[j] = __float2bfloat16(pv);
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * corr + sum;
        m = mn;
#pragma unroll
        for (int i = 0; i < OH; i++)
            acc[i] *= corr;
        __syncwarp();
        mma_pv<HD>(sm.o[warp], sm.p[warp], TILE, false, sm.v);
        __syncwarp();
        const float *orow = sm.o[warp] + row * HD + half * OH;
#pragma unroll
        for (int i = 0; i < OH; i++)
            acc[i] += orow[i];
    }
    if (qt < T) {
        bf16 *out = o + ((size_t)b * T + qt) * qstride + (size_t)h * HD + half * OH;
        float inv = 1.0f / l;
#pragma unroll
        for (int i = 0; i < OH; i++)
            out[i] = __float2bfloat16(acc[i] * inv);
        if (half == 0)
            lse[((size_t)b * nh + h) * T + qt] = m + logf(l);
    }
}

/* Scores of a tile for the backward pass: P = exp(S·scale − lse) (masked) and
 * dS = P·(dP − delta)·scale, for the lane's half row; writes P and dS (bf16). */
__device__ __forceinline__ void backward_probs(const float *s, const float *dp, bf16 *p_out, bf16 *ds_out, int qt,
                                               int k0, int T, float L, float D, float scale) {
#pragma unroll
    for (int j = 0; j < 32; j++) {
        int kt = k0 + j;
        float p = (kt <= qt && kt < T && qt < T) ? __expf(s[j] * scale - L) : 0.0f;
        p_out[j] = __float2bfloat16(p);
        ds_out[j] = __float2bfloat16(p * (dp[j] - D) * scale);
    }
}

template <int HD> struct bwd_smem {
    bf16 q[TILE * HD], k[TILE * HD], v[TILE * HD], dout[TILE * HD];
    float s[FWARPS][16 * TILE], dp[FWARPS][16 * TILE];
    bf16 p[TILE * TILE], ds[TILE * TILE];
    float tmp[FWARPS][16 * HD];
    float lse[TILE], delta[TILE];
};

/* dQ of one query tile: Σ over key tiles of dS·K. */
template <int HD>
__global__ void __launch_bounds__(FWARPS * 32) flash_backward_dq(bf16 *dq, const bf16 *dout, const float *lse,
                                                                 const float *delta, const bf16 *q, const bf16 *k,
                                                                 const bf16 *v, int T, int nh, int nkv, float scale) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bwd_smem<HD> &sm = *reinterpret_cast<bwd_smem<HD> *>(smem_raw);
    int qb = blockIdx.x, bh = blockIdx.y, b = bh / nh, h = bh % nh, kh = h / (nh / nkv);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, row = lane >> 1, half = lane & 1;
    int q0 = qb * TILE, valid = min(TILE, T - q0);
    size_t qstride = (size_t)nh * HD, kstride = (size_t)nkv * HD;
    load_tile<HD>(sm.q, q + ((size_t)b * T + q0) * qstride + (size_t)h * HD, qstride, valid);
    load_tile<HD>(sm.dout, dout + ((size_t)b * T + q0) * qstride + (size_t)h * HD, qstride, valid);
    for (int i = threadIdx.x; i < TILE; i += blockDim.x) {
        size_t r = ((size_t)b * nh + h) * T + q0 + i;
        sm.lse[i] = i < valid ? lse[r] : 0.0f;
        sm.delta[i] = i < valid ? delta[r] : 0.0f;
    }
    constexpr int OH = HD / 2;
    float acc[OH];
#pragma unroll
    for (int i = 0; i < OH; i++)
        acc[i] = 0.0f;
    int lrow = warp * 16 + row, qt = q0 + lrow;
    for (int kb = 0; kb <= qb; kb++) {
        int k0 = kb * TILE;
        __syncthreads();
        load_tile<HD>(sm.k, k + ((size_t)b * T + k0) * kstride + (size_t)kh * HD, kstride, min(TILE, T - k0));
        load_tile<HD>(sm.v, v + ((size_t)b * T + k0) * kstride + (size_t)kh * HD, kstride, min(TILE, T - k0));
        __syncthreads();
        mma_abt<HD>(sm.s[warp], sm.q + warp * 16 * HD, sm.k);
        mma_abt<HD>(sm.dp[warp], sm.dout + warp * 16 * HD, sm.v);
        __syncwarp();
        int off = row * TILE + half * 32;
        backward_probs(sm.s[warp] + off, sm.dp[warp] + off, sm.p + lrow * TILE + half * 32,
                       sm.ds + lrow * TILE + half * 32, qt, k0 + half * 32, T, sm.lse[lrow], sm.delta[lrow], scale);
        __syncwarp();
        mma_pv<HD>(sm.tmp[warp], sm.ds + warp * 16 * TILE, TILE, false, sm.k);
        __syncwarp();
        const float *trow = sm.tmp[warp] + row * HD + half * OH;
#pragma unroll
        for (int i = 0; i < OH; i++)
            acc[i] += trow[i];
    }
    if (qt < T) {
        bf16 *out = dq + ((size_t)b * T + qt) * qstride + (size_t)h * HD + half * OH;
#pragma unroll
        for (int i = 0; i < OH; i++)
            out[i] = __float2bfloat16(acc[i]);
    }
}

/* dK and dV of one key tile of a key/value head: Σ over the query heads of its
 * group and the query tiles at or after it of dSᵀ·Q and Pᵀ·dO. Warps compute
 * scores by query rows, then the products by key rows. */
template <int HD>
__global__ void __launch_bounds__(FWARPS * 32) flash_backward_dkv(bf16 *dk, bf16 *dv, const bf16 *dout,
                                                                  const float *lse, const float *delta, const bf16 *q,
                                                                  const bf16 *k, const bf16 *v, int T, int nh,
                                                                  int nkv, float scale) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bwd_smem<HD> &sm = *reinterpret_cast<bwd_smem<HD> *>(smem_raw);
    int kb = blockIdx.x, bk = blockIdx.y, b = bk / nkv, kh = bk % nkv, group = nh / nkv;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, row = lane >> 1, half = lane & 1;
    int k0 = kb * TILE, kvalid = min(TILE, T - k0);
    size_t qstride = (size_t)nh * HD, kstride = (size_t)nkv * HD;
    load_tile<HD>(sm.k, k + ((size_t)b * T + k0) * kstride + (size_t)kh * HD, kstride, kvalid);
    load_tile<HD>(sm.v, v + ((size_t)b * T + k0) * kstride + (size_t)kh * HD, kstride, kvalid);
    constexpr int OH = HD / 2;
    float ak[OH], av[OH];
#pragma unroll
    for (int i = 0; i < OH; i++)
        ak[i] = av[i] = 0.0f;
    int nqb = (T + TILE - 1) / TILE;
    for (int h = kh * group; h < (kh + 1) * group; h++) {
        for (int qb = kb; qb < nqb; qb++) {
            int q0 = qb * TILE, valid = min(TILE, T - q0);
            __syncthreads();
            load_tile<HD>(sm.q, q + ((size_t)b * T + q0) * qstride + (size_t)h * HD, qstride, valid);
            load_tile<HD>(sm.dout, dout + ((size_t)b * T + q0) * qstride + (size_t)h * HD, qstride, valid);
            for (int i = threadIdx.x; i < TILE; i += blockDim.x) {
                size_t r = ((size_t)b * nh + h) * T + q0 + i;
                sm.lse[i] = i < valid ? lse[r] : 0.0f;
                sm.delta[i] = i < valid ? delta[r] : 0.0f;
            }
            __syncthreads();
            mma_abt<HD>(sm.s[warp], sm.q + warp * 16 * HD, sm.k);
            mma_abt<HD>(sm.dp[warp], sm.dout + warp * 16 * HD, sm.v);
            __syncwarp();
            int lrow = warp * 16 + row, off = row * TILE + half * 32;
            backward_probs(sm.s[warp] + off, sm.dp[warp] + off, sm.p + lrow * TILE + half * 32,
                           sm.ds + lrow * TILE + half * 32, q0 + lrow, k0 + half * 32, T, sm.lse[lrow],
                           sm.delta[lrow], scale);
            __syncthreads();
            /* This warp's 16 key rows: dV += Pᵀ·dO, dK += dSᵀ·Q. */
            mma_pv<HD>(sm.tmp[warp], sm.p + warp * 16, TILE, true, sm.dout);
            __syncwarp();
            const float *trow = sm.tmp[warp] + row * HD + half * OH;
#pragma unroll
            for (int i = 0; i < OH; i++)
                av[i] += trow[i];
            __syncwarp();
            mma_pv<HD>(sm.tmp[warp], sm.ds + warp * 16, TILE, true, sm.q);
            __syncwarp();
#pragma unroll
            for (int i = 0; i < OH; i++)
                ak[i] += trow[i];
        }
    }
    int kt = k0 + warp * 16 + row;
    if (kt < T) {
        size_t base = ((size_t)b * T + kt) * kstride + (size_t)kh * HD + half * OH;
#pragma unroll
        for (int i = 0; i < OH; i++) {
            dk[base + i] = __float2bfloat16(ak[i]);
            dv[base + i] = __float2bfloat16(av[i]);
        }
    }
}

template <int HD> static ob_status flash_launch_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k,
                                                        const bf16 *v, int B, int T, int nh, int nkv, float scale,
                                                        cudaStream_t s) {
    size_t bytes = sizeof(fwd_smem<HD>);
    OB_CUDA_TRY(cudaFuncSetAttribute(flash_forward<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    dim3 grid((T + TILE - 1) / TILE, B * nh);
    flash_forward<HD><<<grid, FWARPS * 32, bytes, s>>>(o, lse, q, k, v, T, nh, nkv, scale);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

template <int HD> static ob_status flash_launch_backward(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout,
                                                         const float *lse, const float *delta, const bf16 *q,
                                                         const bf16 *k, const bf16 *v, int B, int T, int nh, int nkv,
                                                         float scale, cudaStream_t s) {
    size_t bytes = sizeof(bwd_smem<HD>);
    OB_CUDA_TRY(cudaFuncSetAttribute(flash_backward_dq<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    OB_CUDA_TRY(cudaFuncSetAttribute(flash_backward_dkv<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    int tiles = (T + TILE - 1) / TILE;
    flash_backward_dq<HD><<<dim3(tiles, B * nh), FWARPS * 32, bytes, s>>>(dq, dout, lse, delta, q, k, v, T, nh, nkv,
                                                                         scale);
    flash_backward_dkv<HD><<<dim3(tiles, B * nkv), FWARPS * 32, bytes, s>>>(dk, dv, dout, lse, delta, q, k, v, T, nh,
                                                                           nkv, scale);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* The tensor-core path can be switched off (ONEBIT_CUDA_SIMPLE_ATTENTION=1) to
 * test one path against the other. */
static bool use_flash(int hd) {
    const char *env = getenv("ONEBIT_CUDA_SIMPLE_ATTENTION");
    return (hd == 64 || hd == 128) && !(env && env[0] == '1');
}

ob_status ob_gpu_attention_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, int B, int T,
                                   int nh, int nkv, int hd, cudaStream_t s) {
    if (hd > 256)
        return ob_error(OB_ERR_UNSUPPORTED, "cuda attention: head_dim %d above 256", hd);
    float scale = 1.0f / sqrtf((float)hd);
    if (use_flash(hd))
        return hd == 64 ? flash_launch_forward<64>(o, lse, q, k, v, B, T, nh, nkv, scale, s)
                        : flash_launch_forward<128>(o, lse, q, k, v, B, T, nh, nkv, scale, s);
    int rows = B * nh * T;
    simple_forward<<<ob_blocks((size_t)rows, SIMPLE_WARPS), SIMPLE_WARPS * 32, 0, s>>>(o, lse, q, k, v, B, T, nh, nkv,
                                                                                       hd, scale);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

ob_status ob_gpu_attention_backward(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *o, const float *lse,
                                    const bf16 *q, const bf16 *k, const bf16 *v, float *delta, int B, int T, int nh,
                                    int nkv, int hd, cudaStream_t s) {
    float scale = 1.0f / sqrtf((float)hd);
    int rows = B * nh * T;
    attention_delta<<<ob_blocks((size_t)rows, SIMPLE_WARPS), SIMPLE_WARPS * 32, 0, s>>>(delta, dout, o, B, T, nh, hd);
    if (use_flash(hd))
        return hd == 64 ? flash_launch_backward<64>(dq, dk, dv, dout, lse, delta, q, k, v, B, T, nh, nkv, scale, s)
                        : flash_launch_backward<128>(dq, dk, dv, dout, lse, delta, q, k, v, B, T, nh, nkv, scale, s);
    simple_backward_dq<<<ob_blocks((size_t)rows, SIMPLE_WARPS), SIMPLE_WARPS * 32, 0, s>>>(
        dq, dout, lse, delta, q, k, v, B, T, nh, nkv, hd, scale);
    simple_backward_dkv<<<ob_blocks((size_t)B * nkv * T, SIMPLE_WARPS), SIMPLE_WARPS * 32, 0, s>>>(
        dk, dv, dout, lse, delta, q, k, v, B, T, nh, nkv, hd, scale);
    OB_LAUNCH_CHECK();
    return OB_OK;
}
