/* Causal attention backward on tensor cores (head sizes 64 and 128), in the
 * manner of FlashAttention-2 but without atomics: every output element belongs
 * to one block, so the result repeats bit for bit.
 *  - dK, dV: a block owns 64 keys of one key/value head (16 per warp) and walks
 *    the query heads of its group, then the query tiles from the diagonal on,
 *    in that fixed order. Each warp computes its scores transposed (Sᵀ = K·Qᵀ),
 *    so that Pᵀ and dSᵀ come out of the accumulators already in the layout of
 *    the A operand of dV += Pᵀ·dO and dK += dSᵀ·Q.
 *  - dQ: a block owns 64 query rows of one head and walks the key tiles up to
 *    the diagonal, recomputing P and dS (the price of owning dQ outright).
 * P = 2^(S·scale·log2 e − lse·log2 e) from the forward pass's lse, and
 * dS = P·(dP − delta) with delta = Σ dO·O per row (k_attention.cu); the scale
 * of dS is applied once to the finished dK and dQ. Query, dO, key and value
 * tiles arrive by cp.async, double-buffered. */
#include "cuda/attention_mma.cuh"

#define BWD_WARPS 4
#define BWD_THREADS (BWD_WARPS * 32)
#define DKV_BN (16 * BWD_WARPS) /* keys per dK/dV block */
#define DQ_BM (16 * BWD_WARPS)  /* query rows per dQ block */
#define DQ_BN 64                /* keys per dQ step */

/* Queries per dK/dV step: Sᵀ and dPᵀ of a warp take BQ/2 registers each, and
 * with hd 128 the dK and dV accumulators already take 128. */
template <int HD> struct dkv_step {
    static constexpr int BQ = HD == 128 ? 32 : 64;
};

/* Shared memory: the block's keys and values, then two stages of query and dO
 * tiles with their lse and delta. */
template <int HD> static constexpr size_t dkv_smem_bytes() {
    return (size_t)(2 * DKV_BN + 4 * dkv_step<HD>::BQ) * att_tile<HD>::LD * sizeof(bf16) +
           4 * dkv_step<HD>::BQ * sizeof(float);
}

/* Queues the copies of step `it` (query head kh·group + it / per_head, query
 * tile qb0 + it % per_head) into `stage`. */
template <int HD>
__device__ __forceinline__ void dkv_load_step(bf16 *sq, bf16 *sdo, float *slse, float *sdelta, int it, int stage,
                                              const bf16 *q, size_t q_ld, const bf16 *dout, const float *lse,
                                              const float *delta, int b, int kh, int group, int qb0, int per_head,
                                              int T, int nh) {
    constexpr int LD = att_tile<HD>::LD, BQ = dkv_step<HD>::BQ;
    int h = kh * group + it / per_head, q0 = (qb0 + it % per_head) * BQ;
    size_t os = (size_t)nh * HD, row = (size_t)b * T + q0;
    load_tile_async<HD, BQ, BWD_THREADS>(sq + stage * BQ * LD, q + row * q_ld + (size_t)h * HD, q_ld, T - q0);
    load_tile_async<HD, BQ, BWD_THREADS>(sdo + stage * BQ * LD, dout + row * os + (size_t)h * HD, os, T - q0);
    row_stats_async<BQ>(slse + stage * BQ, sdelta + stage * BQ, lse, delta, b, h, nh, T, q0);
}

template <int HD>
__global__ void __launch_bounds__(BWD_THREADS) mma_backward_dkv(bf16 *dk, bf16 *dv, const bf16 *dout,
                                                                const float *lse, const float *delta, const bf16 *q,
                                                                const bf16 *k, const bf16 *v, ob_qkv_ld ld, int T,
                                                                int nh, int nkv, float scale, float scale_log2) {
    constexpr int LD = att_tile<HD>::LD, BQ = dkv_step<HD>::BQ, NT = BQ / 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sk = reinterpret_cast<bf16 *>(smem_raw), *sv = sk + DKV_BN * LD, *sq = sv + DKV_BN * LD;
    bf16 *sdo = sq + 2 * BQ * LD;
    float *slse = reinterpret_cast<float *>(sdo + 2 * BQ * LD), *sdelta = slse + 2 * BQ;
    /* Early key tiles see more queries: launching them first shortens the tail. */
    int kb = blockIdx.x, bk = blockIdx.y, b = bk / nkv, kh = bk % nkv, group = nh / nkv;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = 2 * (lane & 3);
    int k0 = kb * DKV_BN, kr0 = k0 + warp * 16; /* kr0: the warp's first key */
    size_t ks = ld.k, vs = ld.v, koff = ((size_t)b * T + k0) * ks + (size_t)kh * HD;
    size_t voff = ((size_t)b * T + k0) * vs + (size_t)kh * HD;
    /* Query tiles before qb0 end before the block's first key. */
    int qb0 = k0 / BQ, per_head = (T + BQ - 1) / BQ - qb0, steps = group * per_head;
    load_tile_async<HD, DKV_BN, BWD_THREADS>(sk, k + koff, ks, T - k0);
    load_tile_async<HD, DKV_BN, BWD_THREADS>(sv, v + voff, vs, T - k0);
    dkv_load_step<HD>(sq, sdo, slse, sdelta, 0, 0, q, ld.q, dout, lse, delta, b, kh, group, qb0, per_head, T, nh);
    cp_async_commit();

    /* Keys g and g + 8 of the warp. */
    float dka[HD / 8][4] = {}, dva[HD / 8][4] = {};
    for (int it = 0; it < steps; it++) {
        int stage = it & 1, q0 = (qb0 + it % per_head) * BQ;
        if (it + 1 < steps)
            dkv_load_step<HD>(sq, sdo, slse, sdelta, it + 1, stage ^ 1, q, ld.q, dout, lse, delta, b, kh, group,
                              qb0, per_head, T, nh);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const bf16 *tq = sq + stage * BQ * LD, *tdo = sdo + stage * BQ * LD;
        const float *tl = slse + stage * BQ, *td = sdelta + stage * BQ;
        if (q0 + BQ - 1 >= kr0) { /* else every query of the step is before every key of the warp */
            /* Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ for the warp's 16 keys. */
            float s[NT][4] = {}, dp[NT][4] = {};
            mma_tile_tile<HD, LD, NT>(s, sk, warp * 16, tq, lane);
            mma_tile_tile<HD, LD, NT>(dp, sv, warp * 16, tdo, lane);
            probs_transposed(s, dp, tl, td, q0, kr0, T, scale_log2, lane);
            /* dV += Pᵀ·dO and dK += dSᵀ·Q over the step's queries. */
            mma_regs_tile<HD, LD, NT>(dva, s, tdo, lane);
            mma_regs_tile<HD, LD, NT>(dka, dp, tq, lane);
        }
        __syncthreads(); /* the next iteration's copy overwrites this stage */
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int key = kr0 + g + 8 * i;
        if (key >= T)
            continue;
        store_row(dk + ((size_t)b * T + key) * ks + (size_t)kh * HD + c, dka, i, scale);
        store_row(dv + ((size_t)b * T + key) * vs + (size_t)kh * HD + c, dva, i, 1.0f);
    }
}

/* Shared memory: the block's query and dO tiles, then two stages of key and
 * value tiles. */
template <int HD> static constexpr size_t dq_smem_bytes() {
    return (size_t)(2 * DQ_BM + 4 * DQ_BN) * att_tile<HD>::LD * sizeof(bf16);
}

template <int HD>
__global__ void __launch_bounds__(BWD_THREADS) mma_backward_dq(bf16 *dq, const bf16 *dout, const float *lse,
                                                               const float *delta, const bf16 *q, const bf16 *k,
                                                               const bf16 *v, ob_qkv_ld ld, int T, int nh, int nkv,
                                                               float scale, float scale_log2) {
    constexpr int LD = att_tile<HD>::LD, NT = DQ_BN / 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sq = reinterpret_cast<bf16 *>(smem_raw), *sdo = sq + DQ_BM * LD, *sk = sdo + DQ_BM * LD;
    bf16 *sv = sk + 2 * DQ_BN * LD;
    /* Later query tiles see more keys: starting them first shortens the tail. */
    int qb = gridDim.x - 1 - blockIdx.x, bh = blockIdx.y, b = bh / nh, h = bh % nh, kh = h / (nh / nkv);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = 2 * (lane & 3);
    int q0 = qb * DQ_BM, r0 = q0 + warp * 16;
    size_t qs = ld.q, ks = ld.k, vs = ld.v, os = (size_t)nh * HD, row = (size_t)b * T + q0;
    const bf16 *kg = k + (size_t)b * T * ks + (size_t)kh * HD, *vg = v + (size_t)b * T * vs + (size_t)kh * HD;
    int nkb = (min(q0 + DQ_BM, T) + DQ_BN - 1) / DQ_BN;
    load_tile_async<HD, DQ_BM, BWD_THREADS>(sq, q + row * qs + (size_t)h * HD, qs, T - q0);
    load_tile_async<HD, DQ_BM, BWD_THREADS>(sdo, dout + row * os + (size_t)h * HD, os, T - q0);
    load_tile_async<HD, DQ_BN, BWD_THREADS>(sk, kg, ks, T);
    load_tile_async<HD, DQ_BN, BWD_THREADS>(sv, vg, vs, T);
    cp_async_commit();

    float rl[2], rd[2];
    row_stats(rl, rd, lse, delta, ((size_t)b * nh + h) * T, r0, T, lane);
    float acc[HD / 8][4] = {};
    for (int kb = 0; kb < nkb; kb++) {
        int k0 = kb * DQ_BN, stage = kb & 1;
        if (kb + 1 < nkb) {
            int n0 = k0 + DQ_BN;
            load_tile_async<HD, DQ_BN, BWD_THREADS>(sk + (stage ^ 1) * DQ_BN * LD, kg + n0 * ks, ks, T - n0);
            load_tile_async<HD, DQ_BN, BWD_THREADS>(sv + (stage ^ 1) * DQ_BN * LD, vg + n0 * vs, vs, T - n0);
        }
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const bf16 *tk = sk + stage * DQ_BN * LD, *tv = sv + stage * DQ_BN * LD;
        if (k0 <= r0 + 15) { /* else every key of the tile is after every row of the warp */
            /* S = Q·Kᵀ and dP = dO·Vᵀ for the warp's 16 rows. */
            float s[NT][4] = {}, dp[NT][4] = {};
            mma_tile_tile<HD, LD, NT>(s, sq, warp * 16, tk, lane);
            mma_tile_tile<HD, LD, NT>(dp, sdo, warp * 16, tv, lane);
            probs_grad(s, dp, rl, rd, k0, r0, scale_log2, lane); /* dS into s */
            /* dQ += dS·K. */
            mma_regs_tile<HD, LD, NT>(acc, s, tk, lane);
        }
        __syncthreads(); /* the next iteration's copy overwrites this stage */
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int t = r0 + g + 8 * i;
        if (t >= T)
            continue;
        store_row(dq + ((size_t)b * T + t) * qs + (size_t)h * HD + c, acc, i, scale);
    }
}

template <int HD>
static ob_status launch_backward(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const float *lse,
                                 const float *delta, const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld, int B,
                                 int T, int nh, int nkv, cudaStream_t s) {
    size_t dq_bytes = dq_smem_bytes<HD>(), dkv_bytes = dkv_smem_bytes<HD>();
    OB_CUDA_TRY(
        cudaFuncSetAttribute(mma_backward_dq<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dq_bytes));
    OB_CUDA_TRY(
        cudaFuncSetAttribute(mma_backward_dkv<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dkv_bytes));
    float scale = 1.0f / sqrtf((float)HD), scale_log2 = scale * ATT_LOG2E;
    mma_backward_dq<HD><<<dim3((T + DQ_BM - 1) / DQ_BM, B * nh), BWD_THREADS, dq_bytes, s>>>(
        dq, dout, lse, delta, q, k, v, ld, T, nh, nkv, scale, scale_log2);
    OB_LAUNCH_CHECK();
    mma_backward_dkv<HD><<<dim3((T + DKV_BN - 1) / DKV_BN, B * nkv), BWD_THREADS, dkv_bytes, s>>>(
        dk, dv, dout, lse, delta, q, k, v, ld, T, nh, nkv, scale, scale_log2);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

ob_status ob_attention_mma_backward(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const float *lse,
                                    const float *delta, const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld,
                                    int B, int T, int nh, int nkv, int hd, cudaStream_t s) {
    return hd == 64 ? launch_backward<64>(dq, dk, dv, dout, lse, delta, q, k, v, ld, B, T, nh, nkv, s)
                    : launch_backward<128>(dq, dk, dv, dout, lse, delta, q, k, v, ld, B, T, nh, nkv, s);
}
