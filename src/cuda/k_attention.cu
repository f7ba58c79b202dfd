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

/* ---- tensor-core path: 64 x 64 tiles, 4 warps of 16 rows each ------------------
 * Shared-memory rows are padded (bf16 rows by 8, fp32 rows by 4) against bank
 * conflicts, and lane j of a warp handles columns j and j + 32 of each of the
 * warp's 16 rows, so that row-wise softmax work reads consecutive words. */

#define TILE 64
#define FWARPS 4
#define LDS (TILE + 4) /* fp32 score rows */
#define LDP (TILE + 8) /* bf16 probability rows */

template <int HD> struct hd_dims {
    static constexpr int LDH = HD + 8; /* bf16 rows of q, k, v, dO tiles */
    static constexpr int LDO = HD + 4; /* fp32 rows of product tiles */
    static constexpr int CPL = HD / 32; /* output columns per lane */
};

/* Copies up to TILE rows of a head (stride `stride` elements between rows) into
 * a padded tile; rows past `valid` become zeros. */
template <int HD>
__device__ __forceinline__ void load_tile(bf16 *dst, const bf16 *src, size_t stride, int valid) {
    constexpr int VEC = 8, LDH = hd_dims<HD>::LDH; /* 16-byte vectors */
    for (int i = threadIdx.x; i < TILE * HD / VEC; i += blockDim.x) {
        int r = i / (HD / VEC), c = (i % (HD / VEC)) * VEC;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (r < valid)
            val = *(const uint4 *)(src + r * stride + c);
        *(uint4 *)(dst + r * LDH + c) = val;
    }
}

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> frag_a_row;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> frag_a_col;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> frag_b_row;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> frag_b_col;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> frag_acc;

/* out[16][TILE] (fp32, ld LDS) = A[16][HD] · B[TILE][HD]ᵀ (both ld LDH). */
template <int HD>
__device__ __forceinline__ void mma_abt(float *out, const bf16 *a, const bf16 *b) {
    constexpr int LDH = hd_dims<HD>::LDH;
    frag_a_row fa[HD / 16];
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
        wmma::load_matrix_sync(fa[kk], a + kk * 16, LDH);
#pragma unroll
    for (int n = 0; n < TILE / 16; n++) {
        frag_acc acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            frag_b_col fb;
            wmma::load_matrix_sync(fb, b + n * 16 * LDH + kk * 16, LDH);
            wmma::mma_sync(acc, fa[kk], fb, acc);
        }
        wmma::store_matrix_sync(out + n * 16, acc, LDS, wmma::mem_row_major);
    }
}

/* out[16][HD] (fp32, ld LDO) = P[16][TILE] (bf16, ld LDP) · V[TILE][HD] (ld LDH);
 * with transpose_p, P is read as the transpose of the [TILE][16] block at p. */
template <int HD>
__device__ __forceinline__ void mma_pv(float *out, const bf16 *p, bool transpose_p, const bf16 *v) {
    constexpr int LDH = hd_dims<HD>::LDH, LDO = hd_dims<HD>::LDO;
#pragma unroll
    for (int n = 0; n < HD / 16; n++) {
        frag_acc acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < TILE / 16; kk++) {
            frag_b_row fb;
            wmma::load_matrix_sync(fb, v + kk * 16 * LDH + n * 16, LDH);
            if (transpose_p) {
                frag_a_col fa;
                wmma::load_matrix_sync(fa, p + kk * 16 * LDP, LDP);
                wmma::mma_sync(acc, fa, fb, acc);
            } else {
                frag_a_row fa;
                wmma::load_matrix_sync(fa, p + kk * 16, LDP);
                wmma::mma_sync(acc, fa, fb, acc);
            }
        }
        wmma::store_matrix_sync(out + n * 16, acc, LDO, wmma::mem_row_major);
    }
}

/* A warp's scores are dead once its probabilities are written, so its product
 * tile reuses their space (more blocks fit on a multiprocessor). */
template <int HD> union score_or_product {
    float s[16 * LDS];
    float o[16 * hd_dims<HD>::LDO];
};

template <int HD> struct fwd_smem {
    bf16 q[TILE * hd_dims<HD>::LDH], k[TILE * hd_dims<HD>::LDH], v[TILE * hd_dims<HD>::LDH];
    score_or_product<HD> so[FWARPS];
    bf16 p[FWARPS][16 * LDP];
};

template <int HD>
__global__ void __launch_bounds__(FWARPS * 32) flash_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k,
                                                             const bf16 *v, int T, int nh, int nkv, float scale) {
    constexpr int LDH = hd_dims<HD>::LDH, LDO = hd_dims<HD>::LDO, CPL = hd_dims<HD>::CPL;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    fwd_smem<HD> &sm = *reinterpret_cast<fwd_smem<HD> *>(smem_raw);
    int qb = blockIdx.x, bh = blockIdx.y, b = bh / nh, h = bh % nh, kh = h / (nh / nkv);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int q0 = qb * TILE, row0 = q0 + warp * 16;
    size_t qstride = (size_t)nh * HD, kstride = (size_t)nkv * HD;
    load_tile<HD>(sm.q, q + ((size_t)b * T + q0) * qstride + (size_t)h * HD, qstride, min(TILE, T - q0));
    float acc[16][CPL], m[16], l[16];
#pragma unroll
    for (int r = 0; r < 16; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < CPL; i++)
            acc[r][i] = 0.0f;
    }
    float *s_w = sm.so[warp].s, *o_w = sm.so[warp].o;
    bf16 *p_w = sm.p[warp];
    for (int kb = 0; kb <= qb; kb++) {
        int k0 = kb * TILE;
        __syncthreads();
        load_tile<HD>(sm.k, k + ((size_t)b * T + k0) * kstride + (size_t)kh * HD, kstride, min(TILE, T - k0));
        load_tile<HD>(sm.v, v + ((size_t)b * T + k0) * kstride + (size_t)kh * HD, kstride, min(TILE, T - k0));
        __syncthreads();
        mma_abt<HD>(s_w, sm.q + warp * 16 * LDH, sm.k);
        __syncwarp();
#pragma unroll
        for (int r = 0; r < 16; r++) {
            int qt = row0 + r, kt0 = k0 + lane, kt1 = kt0 + 32;
            float s0 = (kt0 <= qt && kt0 < T) ? s_w[r * LDS + lane] * scale : -INFINITY;
            float s1 = (kt1 <= qt && kt1 < T) ? s_w[r * LDS + lane + 32] * scale : -INFINITY;
            float mn = fmaxf(m[r], warp_max(fmaxf(s0, s1)));
            float corr = m[r] == -INFINITY ? 0.0f : __expf(m[r] - mn);
            float p0 = s0 == -INFINITY ? 0.0f : __expf(s0 - mn), p1 = s1 == -INFINITY ? 0.0f : __expf(s1 - mn);
            l[r] = l[r] * corr + warp_sum(p0 + p1);
            m[r] = mn;
            p_w[r * LDP + lane] = __float2bfloat16(p0);
            p_w[r * LDP + lane + 32] = __float2bfloat16(p1);
#pragma unroll
            for (int i = 0; i < CPL; i++)
                acc[r][i] *= corr;
        }
        __syncwarp();
        mma_pv<HD>(o_w, p_w, false, sm.v);
        __syncwarp();
#pragma unroll
        for (int r = 0; r < 16; r++)
#pragma unroll
            for (int i = 0; i < CPL; i++)
                acc[r][i] += o_w[r * LDO + lane + 32 * i];
    }
#pragma unroll
    for (int r = 0; r < 16; r++) {
        int qt = row0 + r;
        if (qt >= T)
            continue;
        bf16 *out = o + ((size_t)b * T + qt) * qstride + (size_t)h * HD;
        float inv = 1.0f / l[r];
#pragma unroll
        for (int i = 0; i < CPL; i++)
            out[lane + 32 * i] = __float2bfloat16(acc[r][i] * inv);
        if (lane == 0)
            lse[((size_t)b * nh + h) * T + qt] = m[r] + logf(l[r]);
    }
}

template <int HD> struct bwd_smem {
    bf16 q[TILE * hd_dims<HD>::LDH], k[TILE * hd_dims<HD>::LDH], v[TILE * hd_dims<HD>::LDH],
        dout[TILE * hd_dims<HD>::LDH];
    score_or_product<HD> so[FWARPS]; /* scores, then the warp's product tile */
    float dp[FWARPS][16 * LDS];
    bf16 p[TILE * LDP], ds[TILE * LDP];
    float lse[TILE], delta[TILE];
};

/* P = exp(S·scale − lse) (masked) and dS = P·(dP − delta)·scale for the warp's
 * 16 rows (row r of the warp is tile row row_base + r), columns lane, lane + 32. */
__device__ __forceinline__ void backward_probs(const float *s, const float *dp, bf16 *p_out, bf16 *ds_out,
                                               int row_base, int q0, int k0, int T, const float *lse,
                                               const float *delta, float scale, int lane) {
#pragma unroll
    for (int r = 0; r < 16; r++) {
        int qt = q0 + row_base + r;
        float L = lse[row_base + r], D = delta[row_base + r];
#pragma unroll
        for (int c = 0; c < 2; c++) {
            int col = lane + 32 * c, kt = k0 + col;
            float pv = (kt <= qt && kt < T && qt < T) ? __expf(s[r * LDS + col] * scale - L) : 0.0f;
            if (p_out)
                p_out[(row_base + r) * LDP + col] = __float2bfloat16(pv);
            ds_out[(row_base + r) * LDP + col] = __float2bfloat16(pv * (dp[r * LDS + col] - D) * scale);
        }
    }
}

template <int HD>
__device__ __forceinline__ void load_row_stats(float *sl, float *sd, const float *lse, const float *delta, size_t base,
                                               int valid) {
    for (int i = threadIdx.x; i < TILE; i += blockDim.x) {
        sl[i] = i < valid ? lse[base + i] : 0.0f;
        sd[i] = i < valid ? delta[base + i] : 0.0f;
    }
}

/* dQ of one query tile: Σ over key tiles of dS·K. */
template <int HD>
__global__ void __launch_bounds__(FWARPS * 32) flash_backward_dq(bf16 *dq, const bf16 *dout, const float *lse,
                                                                 const float *delta, const bf16 *q, const bf16 *k,
                                                                 const bf16 *v, int T, int nh, int nkv, float scale) {
    constexpr int LDH = hd_dims<HD>::LDH, LDO = hd_dims<HD>::LDO, CPL = hd_dims<HD>::CPL;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bwd_smem<HD> &sm = *reinterpret_cast<bwd_smem<HD> *>(smem_raw);
    int qb = blockIdx.x, bh = blockIdx.y, b = bh / nh, h = bh % nh, kh = h / (nh / nkv);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int q0 = qb * TILE, valid = min(TILE, T - q0);
    size_t qstride = (size_t)nh * HD, kstride = (size_t)nkv * HD;
    load_tile<HD>(sm.q, q + ((size_t)b * T + q0) * qstride + (size_t)h * HD, qstride, valid);
    load_tile<HD>(sm.dout, dout + ((size_t)b * T + q0) * qstride + (size_t)h * HD, qstride, valid);
    load_row_stats<HD>(sm.lse, sm.delta, lse, delta, ((size_t)b * nh + h) * T + q0, valid);
    float acc[16][CPL];
#pragma unroll
    for (int r = 0; r < 16; r++)
#pragma unroll
        for (int i = 0; i < CPL; i++)
            acc[r][i] = 0.0f;
    float *t_w = sm.so[warp].o;
    for (int kb = 0; kb <= qb; kb++) {
        int k0 = kb * TILE;
        __syncthreads();
        load_tile<HD>(sm.k, k + ((size_t)b * T + k0) * kstride + (size_t)kh * HD, kstride, min(TILE, T - k0));
        load_tile<HD>(sm.v, v + ((size_t)b * T + k0) * kstride + (size_t)kh * HD, kstride, min(TILE, T - k0));
        __syncthreads();
        mma_abt<HD>(sm.so[warp].s, sm.q + warp * 16 * LDH, sm.k);
        mma_abt<HD>(sm.dp[warp], sm.dout + warp * 16 * LDH, sm.v);
        __syncwarp();
        backward_probs(sm.so[warp].s, sm.dp[warp], NULL, sm.ds, warp * 16, q0, k0, T, sm.lse, sm.delta, scale, lane);
        __syncwarp();
        mma_pv<HD>(t_w, sm.ds + warp * 16 * LDP, false, sm.k);
        __syncwarp();
#pragma unroll
        for (int r = 0; r < 16; r++)
#pragma unroll
            for (int i = 0; i < CPL; i++)
                acc[r][i] += t_w[r * LDO + lane + 32 * i];
    }
#pragma unroll
    for (int r = 0; r < 16; r++) {
        int qt = q0 + warp * 16 + r;
        if (qt >= T)
            continue;
        bf16 *out = dq + ((size_t)b * T + qt) * qstride + (size_t)h * HD;
#pragma unroll
        for (int i = 0; i < CPL; i++)
            out[lane + 32 * i] = __float2bfloat16(acc[r][i]);
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
    constexpr int LDH = hd_dims<HD>::LDH, LDO = hd_dims<HD>::LDO, CPL = hd_dims<HD>::CPL;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bwd_smem<HD> &sm = *reinterpret_cast<bwd_smem<HD> *>(smem_raw);
    int kb = blockIdx.x, bk = blockIdx.y, b = bk / nkv, kh = bk % nkv, group = nh / nkv;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int k0 = kb * TILE;
    size_t qstride = (size_t)nh * HD, kstride = (size_t)nkv * HD;
    load_tile<HD>(sm.k, k + ((size_t)b * T + k0) * kstride + (size_t)kh * HD, kstride, min(TILE, T - k0));
    load_tile<HD>(sm.v, v + ((size_t)b * T + k0) * kstride + (size_t)kh * HD, kstride, min(TILE, T - k0));
    float ak[16][CPL], av[16][CPL];
#pragma unroll
    for (int r = 0; r < 16; r++)
#pragma unroll
        for (int i = 0; i < CPL; i++)
            ak[r][i] = av[r][i] = 0.0f;
    float *t_w = sm.so[warp].o;
    int nqb = (T + TILE - 1) / TILE;
    for (int h = kh * group; h < (kh + 1) * group; h++) {
        for (int qb = kb; qb < nqb; qb++) {
            int q0 = qb * TILE, valid = min(TILE, T - q0);
            __syncthreads();
            load_tile<HD>(sm.q, q + ((size_t)b * T + q0) * qstride + (size_t)h * HD, qstride, valid);
            load_tile<HD>(sm.dout, dout + ((size_t)b * T + q0) * qstride + (size_t)h * HD, qstride, valid);
            load_row_stats<HD>(sm.lse, sm.delta, lse, delta, ((size_t)b * nh + h) * T + q0, valid);
            __syncthreads();
            mma_abt<HD>(sm.so[warp].s, sm.q + warp * 16 * LDH, sm.k);
            mma_abt<HD>(sm.dp[warp], sm.dout + warp * 16 * LDH, sm.v);
            __syncwarp();
            backward_probs(sm.so[warp].s, sm.dp[warp], sm.p, sm.ds, warp * 16, q0, k0, T, sm.lse, sm.delta, scale,
                           lane);
            __syncthreads();
            /* This warp's 16 key rows: dV += Pᵀ·dO, dK += dSᵀ·Q. */
            mma_pv<HD>(t_w, sm.p + warp * 16, true, sm.dout);
            __syncwarp();
#pragma unroll
            for (int r = 0; r < 16; r++)
#pragma unroll
                for (int i = 0; i < CPL; i++)
                    av[r][i] += t_w[r * LDO + lane + 32 * i];
            __syncwarp();
            mma_pv<HD>(t_w, sm.ds + warp * 16, true, sm.q);
            __syncwarp();
#pragma unroll
            for (int r = 0; r < 16; r++)
#pragma unroll
                for (int i = 0; i < CPL; i++)
                    ak[r][i] += t_w[r * LDO + lane + 32 * i];
        }
    }
#pragma unroll
    for (int r = 0; r < 16; r++) {
        int kt = k0 + warp * 16 + r;
        if (kt >= T)
            continue;
        size_t base = ((size_t)b * T + kt) * kstride + (size_t)kh * HD;
#pragma unroll
        for (int i = 0; i < CPL; i++) {
            dk[base + lane + 32 * i] = __float2bfloat16(ak[r][i]);
            dv[base + lane + 32 * i] = __float2bfloat16(av[r][i]);
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
