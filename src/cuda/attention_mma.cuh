/* Pieces shared by the tensor-core attention kernels (k_attention_fwd.cu,
 * k_attention_bwd.cu): the m16n8k16 bf16 product with fp32 accumulators,
 * ldmatrix loads of its operands from shared memory, and cp.async copies of
 * [rows, head] tiles from global memory.
 *
 * Fragment layouts (PTX ISA, "mma.m16n8k16"): lane l holds, with g = l / 4 and
 * c = 2·(l % 4),
 *   A 16×16: a0 = A[g][c..c+1], a1 = A[g+8][c..], a2 = A[g][c+8..], a3 = A[g+8][c+8..]
 *   B 16×8:  b0 = B[c..c+1][g], b1 = B[c+8..c+9][g]
 *   C 16×8:  c0,c1 = C[g][c..c+1], c2,c3 = C[g+8][c..c+1]
 * so the accumulators of two neighbouring 16×8 products are, packed to bf16,
 * exactly the A operand of the next product: probabilities go from one product
 * to the next without leaving registers. */
#ifndef ONEBIT_CUDA_ATTENTION_MMA_CUH
#define ONEBIT_CUDA_ATTENTION_MMA_CUH

#include "cuda/kernels.cuh"

/* Tensor-core paths for head sizes 64 and 128 (the caller checks hd). */
ob_status ob_attention_mma_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld,
                                   int B, int T, int nh, int nkv, int hd, cudaStream_t s);
ob_status ob_attention_mma_backward(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const float *lse,
                                    const float *delta, const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld,
                                    int B, int T, int nh, int nkv, int hd, cudaStream_t s);
/* Head size 64 on Hopper's warpgroup products (k_attention_wg.cu), where the
 * device runs sm_90a code (ob_attention_wg_available). */
bool ob_attention_wg_available(void);
ob_status ob_attention_wg_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld,
                                  int B, int T, int nh, int nkv, cudaStream_t s);
/* The backward also computes delta = Σ dO·O (in its dQ kernel). */
ob_status ob_attention_wg_backward(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *o, const float *lse,
                                   float *delta, const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld, int B,
                                   int T, int nh, int nkv, cudaStream_t s);

#define ATT_LOG2E 1.4426950408889634f

/* Shared-memory tiles hold rows of `hd` bf16 padded by 16 bytes, so the eight
 * rows one ldmatrix phase reads start in eight different bank groups. */
template <int HD> struct att_tile {
    static constexpr int LD = HD + 8;
};

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldsm_x4(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* A operand: the 16×16 block at (row0, col0) of a row-major tile. */
template <int LD>
__device__ __forceinline__ void load_a(uint32_t a[4], const bf16 *tile, int row0, int col0, int lane) {
    ldsm_x4(a, smem_addr(tile + (row0 + (lane & 15)) * LD + col0 + (lane >> 4) * 8));
}

/* B operands of the two 16×8 products n0.., n0+8.. at k0.., from a tile stored
 * [n][k] (K for Q·Kᵀ): b[0], b[1] for columns n0.., b[2], b[3] for n0+8... */
template <int LD>
__device__ __forceinline__ void load_b_nk(uint32_t b[4], const bf16 *tile, int n0, int k0, int lane) {
    ldsm_x4(b, smem_addr(tile + (n0 + (lane & 7) + (lane >> 4) * 8) * LD + k0 + ((lane >> 3) & 1) * 8));
}

/* The same from a tile stored [k][n] (V for P·V), transposed on the way. */
template <int LD>
__device__ __forceinline__ void load_b_kn(uint32_t b[4], const bf16 *tile, int k0, int n0, int lane) {
    ldsm_x4_trans(b, smem_addr(tile + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + n0 + (lane >> 4) * 8));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* A operand for columns 16·kk.. from the accumulators of 16×8 products
 * 2·kk and 2·kk + 1 (see the layouts above). */
__device__ __forceinline__ void acc_to_a(uint32_t a[4], const float c0[4], const float c1[4]) {
    a[0] = pack_bf16(c0[0], c0[1]);
    a[1] = pack_bf16(c0[2], c0[3]);
    a[2] = pack_bf16(c1[0], c1[1]);
    a[3] = pack_bf16(c1[2], c1[3]);
}

/* acc += A·Bᵀ over HD columns: A the warp's 16 rows from a_row of tile ta, B
 * the NT·8 rows of tile tb, both stored [row][HD] (S = Q·Kᵀ, dP = dO·Vᵀ). */
template <int HD, int LD, int NT>
__device__ __forceinline__ void mma_tile_tile(float (&acc)[NT][4], const bf16 *ta, int a_row, const bf16 *tb,
                                              int lane) {
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        uint32_t a[4];
        load_a<LD>(a, ta, a_row, kk * 16, lane);
#pragma unroll
        for (int j = 0; j < NT / 2; j++) {
            uint32_t b[4];
            load_b_nk<LD>(b, tb, j * 16, kk * 16, lane);
            mma_bf16(acc[2 * j], a, b[0], b[1]);
            mma_bf16(acc[2 * j + 1], a, b[2], b[3]);
        }
    }
}

/* acc += P·B: P the warp's 16 × NT·8 accumulators of an earlier product
 * (probabilities or their gradients), B the NT·8 rows of tile tb, stored
 * [row][HD] (O = P·V, dQ = dS·K, dV = Pᵀ·dO, dK = dSᵀ·Q). */
template <int HD, int LD, int NT>
__device__ __forceinline__ void mma_regs_tile(float (&acc)[HD / 8][4], const float (&p)[NT][4], const bf16 *tb,
                                              int lane) {
#pragma unroll
    for (int kk = 0; kk < NT / 2; kk++) {
        uint32_t a[4];
        acc_to_a(a, p[2 * kk], p[2 * kk + 1]);
#pragma unroll
        for (int j = 0; j < HD / 16; j++) {
            uint32_t b[4];
            load_b_kn<LD>(b, tb, kk * 16, j * 16, lane);
            mma_bf16(acc[2 * j], a, b[0], b[1]);
            mma_bf16(acc[2 * j + 1], a, b[2], b[3]);
        }
    }
}

/* 2^x on the special-function unit; 2^-inf = 0 (masked scores). */
__device__ __forceinline__ float exp2_fast(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* ---- register-level steps shared by the mma.sync and wgmma kernels ---------
 * A thread holds rows g and g + 8 of its warp's 16 rows (i = 0, 1) and, per 8
 * columns j, columns c and c + 1 of each (e = 0..3 in the accumulator layout). */

/* Forward: scores of keys after the row become −∞ (a tile crossing the diagonal). */
template <int NT>
__device__ __forceinline__ void mask_after_row(float (&s)[NT][4], int k0, int r0, int g, int c) {
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            if (k0 + 8 * j + c + (e & 1) > r0 + g + 8 * (e >> 1))
                s[j][e] = -INFINITY;
}

/* Forward: the online softmax of a tile of scores, in base 2 with the scale
 * folded in: s becomes the tile's probabilities (unnormalised), the running
 * max m, this thread's part of the running sum l and the output acc are
 * rescaled. The first tile gives every row a finite max, so later maxima are
 * finite (a row before the whole tile gets correction 1 and probabilities 0). */
template <int NT, int NO>
__device__ __forceinline__ void online_softmax(float (&s)[NT][4], float (&m)[2], float (&l)[2], float (&acc)[NO][4],
                                               float scale_log2) {
#pragma unroll
    for (int i = 0; i < 2; i++) {
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < NT; j++)
            mx = fmaxf(mx, fmaxf(s[j][2 * i], s[j][2 * i + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1)); /* the four lanes of a row */
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float mn = fmaxf(m[i], mx * scale_log2), corr = exp2_fast(m[i] - mn), sum = 0.0f;
        m[i] = mn;
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 2 * i; e < 2 * i + 2; e++) {
                s[j][e] = exp2_fast(fmaf(s[j][e], scale_log2, -mn));
                sum += s[j][e];
            }
        l[i] = l[i] * corr + sum;
#pragma unroll
        for (int n = 0; n < NO; n++) {
            acc[n][2 * i] *= corr;
            acc[n][2 * i + 1] *= corr;
        }
    }
}

/* Row i's 8·NO accumulated values (this thread's pairs), times `scale`, to dst. */
template <int NO>
__device__ __forceinline__ void store_row(bf16 *dst, const float (&acc)[NO][4], int i, float scale) {
#pragma unroll
    for (int n = 0; n < NO; n++)
        *reinterpret_cast<__nv_bfloat162 *>(dst + 8 * n) =
            __floats2bfloat162_rn(acc[n][2 * i] * scale, acc[n][2 * i + 1] * scale);
}

/* Forward's end: o = acc / l for the warp's rows r0.. of head h (rows of o
 * `os` apart) and the row log-sum-exp. */
template <int NO>
__device__ __forceinline__ void finish_forward(bf16 *o, float *lse, const float (&acc)[NO][4], const float (&m)[2],
                                               float (&l)[2], int b, int h, int nh, int T, int r0, size_t os,
                                               int lane) {
    int g = lane >> 2, c = 2 * (lane & 3);
#pragma unroll
    for (int i = 0; i < 2; i++) {
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
        int t = r0 + g + 8 * i;
        if (t >= T)
            continue;
        store_row(o + ((size_t)b * T + t) * os + (size_t)h * NO * 8 + c, acc, i, 1.0f / l[i]);
        if ((lane & 3) == 0)
            lse[((size_t)b * nh + h) * T + t] = (m[i] + log2f(l[i])) / ATT_LOG2E;
    }
}

/* dK/dV step: from Sᵀ and dPᵀ of the warp's keys kr0.. and the step's
 * queries q0.. (their lse and delta in tl, td), Pᵀ into s and dSᵀ into dp;
 * queries before the key (causal) or past T (padding) get 0. Steps that mask
 * nothing (the warp's keys before every query, all queries inside T: all but
 * the diagonal's) take a path without the per-element tests, which the
 * compiler turned into predicates, reloaded constants and scalar loads:
 * half the instructions of the wgmma dK/dV kernel's loop. Both paths compute
 * each value the same way. */
template <int NT>
__device__ __forceinline__ void probs_transposed(float (&s)[NT][4], float (&dp)[NT][4], const float *tl,
                                                 const float *td, int q0, int kr0, int T, float scale_log2,
                                                 int lane) {
    int g = lane >> 2, c = 2 * (lane & 3);
    if (q0 >= kr0 + 15 && q0 + 8 * NT <= T) {
#pragma unroll
        for (int j = 0; j < NT; j++) {
            float2 l = *reinterpret_cast<const float2 *>(tl + 8 * j + c); /* columns c, c + 1 */
            float2 d = *reinterpret_cast<const float2 *>(td + 8 * j + c);
            float nl[2] = {-l.x * ATT_LOG2E, -l.y * ATT_LOG2E}, dd[2] = {d.x, d.y};
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = exp2_fast(fmaf(s[j][e], scale_log2, nl[e & 1]));
                s[j][e] = p;
                dp[j][e] = p * (dp[j][e] - dd[e & 1]);
            }
        }
        return;
    }
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int col = 8 * j + c + (e & 1), t = q0 + col, key = kr0 + g + 8 * (e >> 1);
            float p = t < key || t >= T ? 0.0f : exp2_fast(fmaf(s[j][e], scale_log2, -tl[col] * ATT_LOG2E));
            s[j][e] = p;
            dp[j][e] = p * (dp[j][e] - td[col]);
        }
}

/* dQ step: from S and dP of the warp's rows r0.. and the keys k0.. (rows'
 * lse·log2 e in rl, delta in rd), dS into s; keys after the row get 0. Tiles
 * before the warp's diagonal take a path without the per-element test (as
 * probs_transposed). */
template <int NT>
__device__ __forceinline__ void probs_grad(float (&s)[NT][4], const float (&dp)[NT][4], const float (&rl)[2],
                                           const float (&rd)[2], int k0, int r0, float scale_log2, int lane) {
    int g = lane >> 2, c = 2 * (lane & 3);
    if (k0 + 8 * NT - 1 <= r0) {
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int i = e >> 1;
                s[j][e] = exp2_fast(fmaf(s[j][e], scale_log2, -rl[i])) * (dp[j][e] - rd[i]);
            }
        return;
    }
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int i = e >> 1, key = k0 + 8 * j + c + (e & 1);
            float p = key > r0 + g + 8 * i ? 0.0f : exp2_fast(fmaf(s[j][e], scale_log2, -rl[i]));
            s[j][e] = p * (dp[j][e] - rd[i]);
        }
}

/* dQ: rows g and g + 8 of the warp's rows r0..: lse (base 2) and delta;
 * padding rows get zeros, which keep their (unwritten) values finite. */
__device__ __forceinline__ void row_stats(float (&rl)[2], float (&rd)[2], const float *lse, const float *delta,
                                          size_t head_row, int r0, int T, int lane) {
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int t = r0 + (lane >> 2) + 8 * i;
        rl[i] = t < T ? lse[head_row + t] * ATT_LOG2E : 0.0f;
        rd[i] = t < T ? delta[head_row + t] : 0.0f;
    }
}

/* Asynchronous 16- and 4-byte copies to shared memory; with ok false nothing
 * is read and the destination becomes zeros. */
__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, bool ok) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(ok ? 16 : 0));
}
__device__ __forceinline__ void cp_async4(uint32_t dst, const void *src, bool ok) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(ok ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/* Waits until at most `n` of this thread's newest copy groups are in flight. */
template <int n> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(n) : "memory");
}

/* Starts copying `rows` rows of one head (row stride `stride` elements) into a
 * padded tile; rows at or past `valid` become zeros, so that padding rows add
 * nothing to any product. */
template <int HD, int ROWS, int THREADS>
__device__ __forceinline__ void load_tile_async(bf16 *dst, const bf16 *src, size_t stride, int valid) {
    constexpr int CHUNKS = HD / 8; /* 16-byte pieces per row */
    static_assert(ROWS * CHUNKS % THREADS == 0, "tile copy must divide among the threads");
#pragma unroll
    for (int j = 0; j < ROWS * CHUNKS / THREADS; j++) {
        int i = threadIdx.x + j * THREADS, r = i / CHUNKS, c = (i % CHUNKS) * 8;
        bool ok = r < valid;
        cp_async16(smem_addr(dst + r * att_tile<HD>::LD + c), src + (ok ? r * stride + c : 0), ok);
    }
}

/* Starts copying the lse and delta of ROWS queries from q0 of head h into
 * their stage's slots (zeros past T). */
template <int ROWS>
__device__ __forceinline__ void row_stats_async(float *slse, float *sdelta, const float *lse, const float *delta, int b,
                                                int h, int nh, int T, int q0) {
    int i = threadIdx.x;
    if (i < ROWS) {
        bool ok = q0 + i < T;
        size_t r = ok ? ((size_t)b * nh + h) * T + q0 + i : 0;
        cp_async4(smem_addr(slse + i), lse + r, ok);
        cp_async4(smem_addr(sdelta + i), delta + r, ok);
    }
}

#endif
