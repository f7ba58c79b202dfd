/* Shared pieces of the CUDA backend: error checks that turn CUDA/cuBLAS
 * failures into ob_status messages, bf16 helpers, and block reductions. */
#ifndef ONEBIT_CUDA_COMMON_CUH
#define ONEBIT_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "onebit/common.h"
}

typedef __nv_bfloat16 bf16;

#define OB_CUDA_TRY(call)                                                                              \
    do {                                                                                               \
        cudaError_t ob_e_ = (call);                                                                    \
        if (ob_e_ != cudaSuccess)                                                                      \
            return ob_error(OB_ERR_DEVICE, "CUDA error at %s:%d: %s (%s)", __FILE__, __LINE__,        \
                            cudaGetErrorString(ob_e_), #call);                                         \
    } while (0)

#define OB_CUBLAS_TRY(call)                                                                            \
    do {                                                                                               \
        cublasStatus_t ob_s_ = (call);                                                                 \
        if (ob_s_ != CUBLAS_STATUS_SUCCESS)                                                            \
            return ob_error(OB_ERR_DEVICE, "cuBLAS error %d at %s:%d (%s)", (int)ob_s_, __FILE__,      \
                            __LINE__, #call);                                                          \
    } while (0)

/* After a kernel launch: launch errors (bad configuration) surface here. */
#define OB_LAUNCH_CHECK() OB_CUDA_TRY(cudaGetLastError())

/* Programmatic dependent launch (sm_90): on a created stream, the kernel may
 * be put on the SMs as the kernel before it drains, which hides the launch
 * latency between them. Such a kernel calls grid_dependency_wait() before it
 * touches memory: there it waits for the earlier kernels and their writes. */
__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

template <typename... Params, typename... Args>
static inline void ob_launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                                       Args... args) {
    cudaLaunchAttribute dependent;
    dependent.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    dependent.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = smem;
    config.stream = s;
    config.attrs = &dependent;
    config.numAttrs = s ? 1 : 0; /* the legacy default stream: an ordinary launch */
    cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
}

#define OB_STATUS_TRY(expr)                                                                            \
    do {                                                                                               \
        ob_status ob_t_ = (expr);                                                                      \
        if (ob_t_ != OB_OK)                                                                            \
            return ob_t_;                                                                              \
    } while (0)

static inline unsigned ob_blocks(size_t n, unsigned threads) { return (unsigned)((n + threads - 1) / threads); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over aligned groups of `group` lanes (a power of two up to 32); every
 * lane of the warp must take part. */
__device__ __forceinline__ float group_sum(float v, int group) {
    for (int o = group / 2; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over a block of up to 1024 threads; every thread gets the result. */
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float partial[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* `partial` may still be read by a previous call */
    if (lane == 0)
        partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < (int)((blockDim.x + 31) >> 5) ? partial[lane] : 0.0f;
        w = warp_sum(w);
        if (lane == 0)
            total = w;
    }
    __syncthreads();
    return total;
}

__device__ __forceinline__ float block_max(float v) {
    __shared__ float partial[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
        partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < (int)((blockDim.x + 31) >> 5) ? partial[lane] : -INFINITY;
        w = warp_max(w);
        if (lane == 0)
            total = w;
    }
    __syncthreads();
    return total;
}

#endif
