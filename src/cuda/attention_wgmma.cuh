/* Hopper's warpgroup products (wgmma.mma_async, sm_90a) for the attention
 * kernels of k_attention_wg.cu, head size 64. A warpgroup (4 warps, 128
 * threads) multiplies 64 rows at once with operands read by the tensor cores
 * straight from shared memory, where mma.sync needs every operand in registers
 * first (ldmatrix).
 *
 * Shared-memory tiles are [rows][64] bf16: 128-byte lines, the 16-byte chunk c
 * of line r stored at chunk c ^ (r % 8) (the 128-byte swizzle, which keeps the
 * tensor cores' reads free of bank conflicts), each tile 1024-byte aligned.
 * A tile is read two ways (PTX ISA, "Matrix Descriptor Format"):
 *  - K-major, the head along K (Q, K, V, dO in S = Q·Kᵀ, dP = dO·Vᵀ and their
 *    transposes): 8 lines make a 1024-byte group (stride byte offset 1024, the
 *    leading offset unused); each 16 columns of K start 32 bytes further on.
 *  - MN-major, lines along K and the head along N (V in O = P·V, dO, Q and K
 *    in dV, dK, dQ): again 1024 bytes per 8 lines of K; each 16 lines of K
 *    start 2048 bytes further on.
 * The accumulators of an m64nN product hold, warp w of the group, rows
 * 16w.. in the layout of mma.sync's m16n8 accumulators, N/8 of them side by
 * side (attention_mma.cuh), and an A operand from registers has mma.sync's A
 * layout: the softmax and acc_to_a carry over unchanged. */
#ifndef ONEBIT_CUDA_ATTENTION_WGMMA_CUH
#define ONEBIT_CUDA_ATTENTION_WGMMA_CUH

#include "cuda/attention_mma.cuh"

#define WG_TILE (64 * 64) /* elements of a [64][64] tile */

/* Dynamic shared memory from its first 1024-byte boundary (launches ask for
 * 1024 bytes more than the tiles take). */
__device__ __forceinline__ bf16 *wg_smem() {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    return reinterpret_cast<bf16 *>(smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023));
}

/* Starts copying `rows` rows of one head (row stride `stride` elements) into a
 * swizzled tile; rows at or past `valid` become zeros. */
template <int ROWS, int THREADS>
__device__ __forceinline__ void load_swizzled_async(bf16 *dst, const bf16 *src, size_t stride, int valid) {
    static_assert(ROWS * 8 % THREADS == 0, "tile copy must divide among the threads");
#pragma unroll
    for (int j = 0; j < ROWS * 8 / THREADS; j++) {
        int i = threadIdx.x + j * THREADS, r = i >> 3, c = i & 7;
        bool ok = r < valid;
        cp_async16(smem_addr(dst + r * 64 + ((c ^ (r & 7)) << 3)), src + (ok ? r * stride + c * 8 : 0), ok);
    }
}

/* Copies written through the generic proxy (cp.async, st.shared) become
 * visible to wgmma's reads only after this fence (then a barrier). */
__device__ __forceinline__ void wg_fence_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
/* Orders register accesses before the next wgmma (accumulators and A). */
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
/* Keeps the compiler from moving reads of accumulators above the wait. */
__device__ __forceinline__ void wg_hold(float (&d)[8][4]) {
#pragma unroll
    for (int j = 0; j < 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            asm volatile("" : "+f"(d[j][e])::"memory");
}

/* Closes the group of products queued since the last wg_fence() and waits for
 * it: their accumulators may be read after this. */
__device__ __forceinline__ void wg_complete(float (&d)[8][4]) {
    wg_commit();
    wg_wait_all();
    wg_hold(d);
}
__device__ __forceinline__ void wg_complete(float (&d)[8][4], float (&e)[8][4]) {
    wg_commit();
    wg_wait_all();
    wg_hold(d);
    wg_hold(e);
}

/* Shared-memory descriptor with the 128-byte swizzle; offsets in bytes. */
__device__ __forceinline__ uint64_t wg_desc(const bf16 *tile, uint32_t leading, uint32_t stride) {
    return ((smem_addr(tile) & 0x3FFFF) >> 4) | ((uint64_t)(leading >> 4) << 16) | ((uint64_t)(stride >> 4) << 32) |
           (1ull << 62);
}

#define WG_ACC4(d, j) "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
#define WG_ACC32(d)                                                                                                    \
    WG_ACC4(d, 0), WG_ACC4(d, 1), WG_ACC4(d, 2), WG_ACC4(d, 3), WG_ACC4(d, 4), WG_ACC4(d, 5), WG_ACC4(d, 6),          \
        WG_ACC4(d, 7)
#define WG_D32                                                                                                         \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "  \
    "%24, %25, %26, %27, %28, %29, %30, %31}"

/* d += A·B, 64 × 64 × 16, A and B from shared memory, both K-major. */
__device__ __forceinline__ void wgmma_ss(float (&d)[8][4], uint64_t a, uint64_t b) {
    asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WG_D32 ", %32, %33, 1, 1, 1, 0, 0;\n"
                 : WG_ACC32(d)
                 : "l"(a), "l"(b));
}

/* d = A·B, the first step of a sum: d is only written, so no instruction
 * need give it a value first. */
#define WG_OUT4(d, j) "=f"(d[j][0]), "=f"(d[j][1]), "=f"(d[j][2]), "=f"(d[j][3])
__device__ __forceinline__ void wgmma_ss_first(float (&d)[8][4], uint64_t a, uint64_t b) {
    asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WG_D32 ", %32, %33, 0, 1, 1, 0, 0;\n"
                 : WG_OUT4(d, 0), WG_OUT4(d, 1), WG_OUT4(d, 2), WG_OUT4(d, 3), WG_OUT4(d, 4), WG_OUT4(d, 5),
                   WG_OUT4(d, 6), WG_OUT4(d, 7)
                 : "l"(a), "l"(b));
}

/* d += A·B, 64 × 64 × 16, A from registers, B from shared memory MN-major. */
__device__ __forceinline__ void wgmma_rs(float (&d)[8][4], const uint32_t a[4], uint64_t b) {
    asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WG_D32 ", {%32, %33, %34, %35}, %36, 1, 1, 1, "
                 "1;\n"
                 : WG_ACC32(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}

/* Queues d = A·Bᵀ over the 64 head columns: A and B the 64 rows of tiles a
 * and b (S = Q·Kᵀ, dP = dO·Vᵀ, Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ). */
__device__ __forceinline__ void wg_tile_tile(float (&d)[8][4], const bf16 *a, const bf16 *b) {
    uint64_t da = wg_desc(a, 16, 1024), db = wg_desc(b, 16, 1024);
    wgmma_ss_first(d, da, db);
#pragma unroll
    for (int kk = 1; kk < 4; kk++) /* 32 bytes (2 in the descriptor) per 16 columns */
        wgmma_ss(d, da + 2 * kk, db + 2 * kk);
}

/* The 64 × 64 accumulators of an earlier product (probabilities or their
 * gradients) as the A operands of the four 16-column steps of a product.
 * Converted before the wg_fence() that precedes the product: registers written
 * between two wgmma of a group would make the compiler fence each one. */
__device__ __forceinline__ void wg_acc_to_a(uint32_t (&a)[4][4], const float (&p)[8][4]) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
        acc_to_a(a[kk], p[2 * kk], p[2 * kk + 1]);
}

/* Queues d += P·B: P from wg_acc_to_a, B the 64 rows of tile b (O += P·V,
 * dV += Pᵀ·dO, dK += dSᵀ·Q, dQ += dS·K). */
__device__ __forceinline__ void wg_regs_tile(float (&d)[8][4], const uint32_t (&a)[4][4], const bf16 *b) {
    uint64_t db = wg_desc(b, 64 * 128, 1024);
#pragma unroll
    for (int kk = 0; kk < 4; kk++) /* 2048 bytes (128 in the descriptor) per 16 lines */
        wgmma_rs(d, a[kk], db + 128 * kk);
}

#endif
