/* Causal attention on Hopper's warpgroup products (head size 64, sm_90a): the
 * kernels of k_attention_fwd.cu and k_attention_bwd.cu with every product on
 * wgmma (attention_wgmma.cuh), a warpgroup owning 64 rows where a warp owned
 * 16. Same algorithm, same fixed order of every sum, no atomics: forward in
 * the manner of FlashAttention-2; backward with dK/dV owned by blocks of 64
 * keys and dQ by blocks of 64 queries. On other devices the kernels are empty
 * and ob_attention_wg_available() says so. */
#include "cuda/attention_wgmma.cuh"
#include "cuda/vec_access.cuh"

#define WG_FWD_GROUPS 2                  /* warpgroups per forward block */
#define WG_FWD_BM (64 * WG_FWD_GROUPS)   /* query rows per forward block */
#define WG_FWD_THREADS (128 * WG_FWD_GROUPS)
#define WG_BWD_THREADS 128

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WG_BODY 1
#else
#define WG_BODY 0
#endif

__global__ void wg_probe(int *out) { *out = WG_BODY; }

/* The block's head (or key/value head) and the rank of its tile by work, 0
 * the heaviest, in a 1-D grid of `tiles` blocks a head: first the heavier
 * half of every head's tiles, then the lighter halves, each head's blocks one
 * after another (they share its keys and values in L2). Blocks start in
 * index order, so the last to start are light ones and the grid ends without
 * a long tail (a y-dimension of heads had every head's heaviest block start
 * in turn to the end). */
__device__ __forceinline__ void heavy_first(int tiles, int &head, int &rank) {
    int hi = (tiles + 1) / 2, lo = tiles - hi, id = blockIdx.x, heavy = (int)gridDim.x / tiles * hi;
    if (id < heavy) {
        head = id / hi, rank = id % hi;
    } else {
        id -= heavy;
        head = id / lo, rank = hi + id % lo;
    }
}

/* Shared memory: the query tile, then two stages of key and value tiles. */
static constexpr size_t WG_FWD_SMEM = (WG_FWD_BM * 64 + 4 * WG_TILE) * sizeof(bf16) + 1024;

__global__ void __launch_bounds__(WG_FWD_THREADS) wg_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k,
                                                             const bf16 *v, ob_qkv_ld ld, int T, int nh, int nkv,
                                                             float scale_log2) {
    grid_dependency_wait();
#if WG_BODY
    bf16 *sq = wg_smem(), *sk = sq + WG_FWD_BM * 64, *sv = sk + 2 * WG_TILE;
    int nq = (T + WG_FWD_BM - 1) / WG_FWD_BM, bh, rank;
    heavy_first(nq, bh, rank); /* later query tiles see more keys */
    int qb = nq - 1 - rank, b = bh / nh, h = bh % nh, kh = h / (nh / nkv);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = 2 * (lane & 3), group = warp >> 2;
    int q0 = qb * WG_FWD_BM, w0 = q0 + group * 64, r0 = q0 + warp * 16; /* first rows of group and warp */
    size_t qs = ld.q, ks = ld.k, vs = ld.v, os = (size_t)nh * 64; /* row strides of q, k, v and o */
    const bf16 *kg = k + (size_t)b * T * ks + (size_t)kh * 64, *vg = v + (size_t)b * T * vs + (size_t)kh * 64;
    int nkb = (min(q0 + WG_FWD_BM, T) + 63) / 64;
    load_swizzled_async<WG_FWD_BM, WG_FWD_THREADS>(sq, q + ((size_t)b * T + q0) * qs + (size_t)h * 64, qs, T - q0);
    load_swizzled_async<64, WG_FWD_THREADS>(sk, kg, ks, T);
    load_swizzled_async<64, WG_FWD_THREADS>(sv, vg, vs, T);
    cp_async_commit();

    /* Rows g and g + 8 of the warp: unnormalised output, running max (base 2,
     * scaled) and this thread's part of the running sum. */
    float acc[8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    for (int kb = 0; kb < nkb; kb++) {
        int k0 = kb * 64, stage = kb & 1;
        if (kb + 1 < nkb) {
            int n0 = k0 + 64;
            load_swizzled_async<64, WG_FWD_THREADS>(sk + (stage ^ 1) * WG_TILE, kg + n0 * ks, ks, T - n0);
            load_swizzled_async<64, WG_FWD_THREADS>(sv + (stage ^ 1) * WG_TILE, vg + n0 * vs, vs, T - n0);
        }
        cp_async_commit();
        cp_async_wait<1>(); /* this tile (and the query tile) has landed */
        wg_fence_smem();
        __syncthreads();
        const bf16 *tk = sk + stage * WG_TILE, *tv = sv + stage * WG_TILE;
        if (k0 <= w0 + 63) { /* else every key of the tile is after every row of the group */
            float s[8][4];
            wg_fence();
            wg_tile_tile(s, sq + group * WG_TILE, tk);
            wg_complete(s);
            if (k0 + 63 > r0) /* the tile crosses the warp's diagonal */
                mask_after_row(s, k0, r0, g, c);
            online_softmax(s, m, l, acc, scale_log2);
            uint32_t pa[4][4];
            wg_acc_to_a(pa, s);
            wg_fence();
            wg_regs_tile(acc, pa, tv);
            wg_complete(acc);
        }
        __syncthreads(); /* the next iteration's copy overwrites this stage */
    }
    finish_forward(o, lse, acc, m, l, b, h, nh, T, r0, os, lane);
#endif
}

/* Shared memory: the block's keys and values, two stages of query and dO
 * tiles, then two stages of their lse and delta. */
static constexpr size_t WG_DKV_SMEM = 6 * WG_TILE * sizeof(bf16) + 4 * 64 * sizeof(float) + 1024;

/* Queues the copies of the step of query head h and query tile q0.. into
 * `stage`. */
__device__ __forceinline__ void wg_dkv_load_step(bf16 *sq, bf16 *sdo, float *slse, float *sdelta, int h, int q0,
                                                 int stage, const bf16 *q, size_t q_ld, const bf16 *dout,
                                                 const float *lse, const float *delta, int b, int T, int nh) {
    size_t os = (size_t)nh * 64, row = (size_t)b * T + q0;
    load_swizzled_async<64, WG_BWD_THREADS>(sq + stage * WG_TILE, q + row * q_ld + (size_t)h * 64, q_ld, T - q0);
    load_swizzled_async<64, WG_BWD_THREADS>(sdo + stage * WG_TILE, dout + row * os + (size_t)h * 64, os, T - q0);
    row_stats_async<64>(slse + stage * 64, sdelta + stage * 64, lse, delta, b, h, nh, T, q0);
}

/* dK, dV of 64 keys (16 per warp) of one key/value head: Sᵀ = K·Qᵀ and
 * dPᵀ = V·dOᵀ per step of 64 queries, then dV += Pᵀ·dO and dK += dSᵀ·Q.
 * Held to 168 registers (16 bytes spill) so that three blocks share an SM:
 * left free it took 200, two blocks, and 0.9 ms more a step on an H100. */
__global__ void __launch_bounds__(WG_BWD_THREADS, 3) wg_backward_dkv(bf16 *dk, bf16 *dv, const bf16 *dout,
                                                                  const float *lse, const float *delta,
                                                                  const bf16 *q, const bf16 *k, const bf16 *v,
                                                                  ob_qkv_ld ld, int T, int nh, int nkv, float scale,
                                                                  float scale_log2) {
    grid_dependency_wait();
#if WG_BODY
    bf16 *sk = wg_smem(), *sv = sk + WG_TILE, *sq = sv + WG_TILE, *sdo = sq + 2 * WG_TILE;
    float *slse = reinterpret_cast<float *>(sdo + 2 * WG_TILE), *sdelta = slse + 2 * 64;
    int kb, bk; /* earlier key blocks see more queries */
    heavy_first((T + 63) / 64, bk, kb);
    int b = bk / nkv, kh = bk % nkv, group = nh / nkv;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = 2 * (lane & 3);
    int k0 = kb * 64, kr0 = k0 + warp * 16; /* kr0: the warp's first key */
    size_t ks = ld.k, vs = ld.v, koff = ((size_t)b * T + k0) * ks + (size_t)kh * 64;
    size_t voff = ((size_t)b * T + k0) * vs + (size_t)kh * 64;
    /* The steps walk the query tiles from the block's own (those before end
     * before its first key) to the last, head after head of the group: the
     * step being computed starts at query q0, the one being loaded is of
     * head hn from query qn. */
    int steps = group * ((T + 63) / 64 - kb), q0 = k0, hn = kh * group, qn = q0;
    load_swizzled_async<64, WG_BWD_THREADS>(sk, k + koff, ks, T - k0);
    load_swizzled_async<64, WG_BWD_THREADS>(sv, v + voff, vs, T - k0);
    wg_dkv_load_step(sq, sdo, slse, sdelta, hn, qn, 0, q, ld.q, dout, lse, delta, b, T, nh);
    cp_async_commit();

    /* Keys g and g + 8 of the warp. */
    float dka[8][4] = {}, dva[8][4] = {};
    for (int it = 0; it < steps; it++) {
        int stage = it & 1;
        if ((qn += 64) >= T)
            hn++, qn = k0;
        if (it + 1 < steps)
            wg_dkv_load_step(sq, sdo, slse, sdelta, hn, qn, stage ^ 1, q, ld.q, dout, lse, delta, b, T, nh);
        cp_async_commit();
        cp_async_wait<1>();
        wg_fence_smem();
        __syncthreads();
        const bf16 *tq = sq + stage * WG_TILE, *tdo = sdo + stage * WG_TILE;
        const float *tl = slse + stage * 64, *td = sdelta + stage * 64;
        float s[8][4], dp[8][4];
        wg_fence();
        wg_tile_tile(s, sk, tq);
        wg_tile_tile(dp, sv, tdo);
        wg_complete(s, dp);
        probs_transposed(s, dp, tl, td, q0, kr0, T, scale_log2, lane);
        uint32_t pa[4][4], dsa[4][4];
        wg_acc_to_a(pa, s);
        wg_acc_to_a(dsa, dp);
        wg_fence();
        wg_regs_tile(dva, pa, tdo);
        wg_regs_tile(dka, dsa, tq);
        wg_complete(dva, dka);
        q0 = qn;
        __syncthreads(); /* the next iteration's copy overwrites this stage */
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int key = kr0 + g + 8 * i;
        if (key >= T)
            continue;
        store_row(dk + ((size_t)b * T + key) * ks + (size_t)kh * 64 + c, dka, i, scale);
        store_row(dv + ((size_t)b * T + key) * vs + (size_t)kh * 64 + c, dva, i, 1.0f);
    }
#endif
}

/* delta = Σ dO·O of the thread's rows g and g + 8 (rows r0.. of head h, rows
 * of dO and O `os` apart), the four threads of a row summing 16 columns each;
 * written to `delta` for the dK/dV kernel. */
__device__ __forceinline__ void row_delta(float (&rd)[2], float *delta, const bf16 *dout, const bf16 *o, int b, int h,
                                          int nh, int T, int r0, size_t os, int lane) {
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int t = r0 + (lane >> 2) + 8 * i;
        float sum = 0;
        if (t < T) {
            size_t at = ((size_t)b * T + t) * os + (size_t)h * 64 + 16 * (lane & 3);
#pragma unroll
            for (int half = 0; half < 2; half++) {
                float x[8], y[8];
                load_w(x, dout + at + 8 * half);
                load_w(y, o + at + 8 * half);
#pragma unroll
                for (int e = 0; e < 8; e++)
                    sum += x[e] * y[e];
            }
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        rd[i] = sum;
        if (t < T && (lane & 3) == 0)
            delta[((size_t)b * nh + h) * T + t] = sum;
    }
}

/* Shared memory: the block's query and dO tiles, then two stages of key and
 * value tiles. */
static constexpr size_t WG_DQ_SMEM = 6 * WG_TILE * sizeof(bf16) + 1024;

/* dQ of 64 query rows of one head: S = Q·Kᵀ and dP = dO·Vᵀ per tile of 64
 * keys up to the diagonal, then dQ += dS·K. Three blocks an SM, as dK/dV.
 * Also the rows' delta = Σ dO·O, which the dK/dV kernel reads after it. */
__global__ void __launch_bounds__(WG_BWD_THREADS, 3) wg_backward_dq(bf16 *dq, float *delta, const bf16 *dout,
                                                                 const bf16 *o, const float *lse, const bf16 *q,
                                                                 const bf16 *k, const bf16 *v, ob_qkv_ld ld, int T,
                                                                 int nh, int nkv, float scale, float scale_log2) {
    grid_dependency_wait();
#if WG_BODY
    bf16 *sq = wg_smem(), *sdo = sq + WG_TILE, *sk = sdo + WG_TILE, *sv = sk + 2 * WG_TILE;
    int nq = (T + 63) / 64, bh, rank;
    heavy_first(nq, bh, rank); /* later query tiles see more keys */
    int qb = nq - 1 - rank, b = bh / nh, h = bh % nh, kh = h / (nh / nkv);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = 2 * (lane & 3);
    int q0 = qb * 64, r0 = q0 + warp * 16;
    size_t qs = ld.q, ks = ld.k, vs = ld.v, os = (size_t)nh * 64, row = (size_t)b * T + q0;
    const bf16 *kg = k + (size_t)b * T * ks + (size_t)kh * 64, *vg = v + (size_t)b * T * vs + (size_t)kh * 64;
    int nkb = (min(q0 + 64, T) + 63) / 64;
    load_swizzled_async<64, WG_BWD_THREADS>(sq, q + row * qs + (size_t)h * 64, qs, T - q0);
    load_swizzled_async<64, WG_BWD_THREADS>(sdo, dout + row * os + (size_t)h * 64, os, T - q0);
    load_swizzled_async<64, WG_BWD_THREADS>(sk, kg, ks, T);
    load_swizzled_async<64, WG_BWD_THREADS>(sv, vg, vs, T);
    cp_async_commit();

    float rl[2], rd[2];
    row_delta(rd, delta, dout, o, b, h, nh, T, r0, os, lane);
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int t = r0 + g + 8 * i;
        rl[i] = t < T ? lse[((size_t)b * nh + h) * T + t] * ATT_LOG2E : 0.0f;
    }
    float acc[8][4] = {};
    for (int kb = 0; kb < nkb; kb++) {
        int k0 = kb * 64, stage = kb & 1;
        if (kb + 1 < nkb) {
            int n0 = k0 + 64;
            load_swizzled_async<64, WG_BWD_THREADS>(sk + (stage ^ 1) * WG_TILE, kg + n0 * ks, ks, T - n0);
            load_swizzled_async<64, WG_BWD_THREADS>(sv + (stage ^ 1) * WG_TILE, vg + n0 * vs, vs, T - n0);
        }
        cp_async_commit();
        cp_async_wait<1>();
        wg_fence_smem();
        __syncthreads();
        const bf16 *tk = sk + stage * WG_TILE, *tv = sv + stage * WG_TILE;
        float s[8][4], dp[8][4];
        wg_fence();
        wg_tile_tile(s, sq, tk);
        wg_tile_tile(dp, sdo, tv);
        wg_complete(s, dp);
        probs_grad(s, dp, rl, rd, k0, r0, scale_log2, lane); /* dS into s */
        uint32_t dsa[4][4];
        wg_acc_to_a(dsa, s);
        wg_fence();
        wg_regs_tile(acc, dsa, tk);
        wg_complete(acc);
        __syncthreads(); /* the next iteration's copy overwrites this stage */
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int t = r0 + g + 8 * i;
        if (t >= T)
            continue;
        store_row(dq + ((size_t)b * T + t) * qs + (size_t)h * 64 + c, acc, i, scale);
    }
#endif
}

bool ob_attention_wg_available(void) {
    static int available = -1; /* asked once: the code a device runs does not change */
    if (available < 0) {
        int *flag = NULL, host = 0;
        if (cudaMalloc(&flag, sizeof *flag) == cudaSuccess) {
            wg_probe<<<1, 1>>>(flag);
            if (cudaMemcpy(&host, flag, sizeof host, cudaMemcpyDeviceToHost) != cudaSuccess)
                host = 0;
            cudaFree(flag);
        }
        cudaGetLastError(); /* a failed probe means no wgmma, not an error to report later */
        available = host == 1;
    }
    return available == 1;
}

ob_status ob_attention_wg_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld, int B,
                                  int T, int nh, int nkv, cudaStream_t s) {
    OB_CUDA_TRY(cudaFuncSetAttribute(wg_forward, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)WG_FWD_SMEM));
    unsigned grid = (unsigned)((T + WG_FWD_BM - 1) / WG_FWD_BM * B * nh);
    ob_launch_dependent(wg_forward, grid, WG_FWD_THREADS, WG_FWD_SMEM, s, o, lse, q, k, v, ld, T, nh, nkv,
                        ATT_LOG2E / 8.0f);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

ob_status ob_attention_wg_backward(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *o, const float *lse,
                                   float *delta, const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld, int B,
                                   int T, int nh, int nkv, cudaStream_t s) {
    OB_CUDA_TRY(cudaFuncSetAttribute(wg_backward_dq, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)WG_DQ_SMEM));
    OB_CUDA_TRY(cudaFuncSetAttribute(wg_backward_dkv, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)WG_DKV_SMEM));
    float scale = 0.125f, scale_log2 = scale * ATT_LOG2E; /* 1/√64 */
    unsigned tiles = (unsigned)(T + 63) / 64;
    ob_launch_dependent(wg_backward_dq, tiles * B * nh, WG_BWD_THREADS, WG_DQ_SMEM, s, dq, delta, dout, o, lse, q, k, v,
                        ld, T, nh, nkv, scale, scale_log2);
    OB_LAUNCH_CHECK();
    ob_launch_dependent(wg_backward_dkv, tiles * B * nkv, WG_BWD_THREADS, WG_DKV_SMEM, s, dk, dv, dout, lse, delta, q,
                        k, v, ld, T, nh, nkv, scale, scale_log2);
    OB_LAUNCH_CHECK();
    return OB_OK;
}
