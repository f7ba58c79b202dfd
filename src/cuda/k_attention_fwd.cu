/* Causal attention forward on tensor cores (head sizes 64 and 128), in the
 * manner of FlashAttention-2: a block owns FWD_BM query rows of one head, 16 per
 * warp, and walks the key/value tiles up to the diagonal while cp.async brings
 * the next tile in. Scores, the online softmax and the probabilities stay in
 * registers; the softmax runs in base 2 with the 1/√hd scale folded into one
 * multiply-add per score. */
#include "cuda/attention_mma.cuh"

#define FWD_WARPS 8
#define FWD_BM (16 * FWD_WARPS) /* query rows per block: each key tile serves 8 warps */
#define FWD_BN 64               /* keys per tile */

/* Shared memory: the query tile, then two stages of key and value tiles. */
template <int HD> static constexpr size_t fwd_smem_bytes() {
    return (size_t)(FWD_BM + 4 * FWD_BN) * att_tile<HD>::LD * sizeof(bf16);
}

template <int HD>
__global__ void __launch_bounds__(FWD_WARPS * 32) mma_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k,
                                                              const bf16 *v, ob_qkv_ld ld, int T, int nh,
                                                              int nkv, float scale_log2) {
    constexpr int LD = att_tile<HD>::LD, THREADS = FWD_WARPS * 32, NT = FWD_BN / 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sq = reinterpret_cast<bf16 *>(smem_raw), *sk = sq + FWD_BM * LD, *sv = sk + 2 * FWD_BN * LD;
    /* Later query tiles see more keys: starting them first shortens the tail. */
    int qb = gridDim.x - 1 - blockIdx.x, bh = blockIdx.y, b = bh / nh, h = bh % nh, kh = h / (nh / nkv);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = 2 * (lane & 3);
    int q0 = qb * FWD_BM, r0 = q0 + warp * 16; /* r0: the warp's first row */
    size_t qs = ld.q, ks = ld.k, vs = ld.v, os = (size_t)nh * HD; /* row strides of q, k, v and o */
    const bf16 *kg = k + (size_t)b * T * ks + (size_t)kh * HD, *vg = v + (size_t)b * T * vs + (size_t)kh * HD;
    int nkb = (min(q0 + FWD_BM, T) + FWD_BN - 1) / FWD_BN;
    load_tile_async<HD, FWD_BM, THREADS>(sq, q + ((size_t)b * T + q0) * qs + (size_t)h * HD, qs, T - q0);
    load_tile_async<HD, FWD_BN, THREADS>(sk, kg, ks, T);
    load_tile_async<HD, FWD_BN, THREADS>(sv, vg, vs, T);
    cp_async_commit();

    /* Rows g and g + 8 of the warp: unnormalised output, running max (base 2,
     * scaled) and this thread's part of the running sum. */
    float acc[HD / 8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    for (int kb = 0; kb < nkb; kb++) {
        int k0 = kb * FWD_BN, stage = kb & 1;
        if (kb + 1 < nkb) {
            int n0 = k0 + FWD_BN;
            load_tile_async<HD, FWD_BN, THREADS>(sk + (stage ^ 1) * FWD_BN * LD, kg + n0 * ks, ks, T - n0);
            load_tile_async<HD, FWD_BN, THREADS>(sv + (stage ^ 1) * FWD_BN * LD, vg + n0 * vs, vs, T - n0);
        }
        cp_async_commit();
        cp_async_wait<1>(); /* this tile (and the query tile) has landed */
        __syncthreads();
        const bf16 *tk = sk + stage * FWD_BN * LD, *tv = sv + stage * FWD_BN * LD;
        if (k0 <= r0 + 15) { /* else every key of the tile is after every row of the warp */
            float s[NT][4] = {};
            mma_tile_tile<HD, LD, NT>(s, sq, warp * 16, tk, lane);
            if (k0 + FWD_BN - 1 > r0) /* the tile crosses the warp's diagonal */
                mask_after_row(s, k0, r0, g, c);
            online_softmax(s, m, l, acc, scale_log2);
            mma_regs_tile<HD, LD, NT>(acc, s, tv, lane);
        }
        __syncthreads(); /* the next iteration's copy overwrites this stage */
    }
    finish_forward(o, lse, acc, m, l, b, h, nh, T, r0, os, lane);
}

template <int HD>
static ob_status launch_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld, int B,
                                int T, int nh, int nkv, cudaStream_t s) {
    size_t bytes = fwd_smem_bytes<HD>();
    OB_CUDA_TRY(cudaFuncSetAttribute(mma_forward<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    dim3 grid((T + FWD_BM - 1) / FWD_BM, B * nh);
    float scale_log2 = ATT_LOG2E / sqrtf((float)HD);
    mma_forward<HD><<<grid, FWD_WARPS * 32, bytes, s>>>(o, lse, q, k, v, ld, T, nh, nkv, scale_log2);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

ob_status ob_attention_mma_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld,
                                   int B, int T, int nh, int nkv, int hd, cudaStream_t s) {
    return hd == 64 ? launch_forward<64>(o, lse, q, k, v, ld, B, T, nh, nkv, s)
                    : launch_forward<128>(o, lse, q, k, v, ld, B, T, nh, nkv, s);
}
