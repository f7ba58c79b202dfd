/* Matrix products of the CUDA backend through cuBLASLt, in row-major terms:
 * D[M,N] = alpha·op(A)[M,K]·op(B)[K,N] + beta·C, with bf16 A and B, fp32
 * accumulation, and a bf16 or fp32 D, or a strided batch of such products.
 * alpha may live on the device (per-matrix quantisation scales are computed
 * there). Plans are cached per shape. */
#ifndef ONEBIT_CUDA_GEMM_CUH
#define ONEBIT_CUDA_GEMM_CUH

#include "cuda/cuda_common.cuh"

typedef struct ob_gemm ob_gemm;

ob_status ob_gemm_create(cudaStream_t stream, ob_gemm **out);
void ob_gemm_free(ob_gemm *g);

typedef struct {
    void *d;               /* output */
    cudaDataType d_type;   /* CUDA_R_16BF or CUDA_R_32F */
    const void *c;         /* NULL: D itself when beta != 0 */
    const bf16 *a, *b;
    int m, n, k;
    bool trans_a, trans_b; /* A stored [K,M] / B stored [N,K] */
    float alpha;           /* used when alpha_device is NULL */
    const float *alpha_device;
    float beta;            /* 0 or 1 */
    int lda, ldd;          /* row strides of A as stored and of D (and C); 0: dense */
    int batch;             /* > 1: that many products, each operand `stride_*` */
    long long stride_a, stride_b, stride_d; /* elements further on (0: the same matrix) */
} ob_gemm_args;

ob_status ob_gemm_run(ob_gemm *g, const ob_gemm_args *args);
/* With ONEBIT_CUDA_PROFILE=1, each product's time is summed per shape and
 * printed (with its TFLOP/s) when the ob_gemm is freed; a pass ends with this. */
void ob_gemm_profile_flush(ob_gemm *g);
/* Device memory of one ob_gemm (its workspace). */
size_t ob_gemm_workspace_bytes(void);

/* The three products of a linear layer y = x·Wᵀ (W [out, in]), row-major:
 * forward y[n,out], input gradient dx[n,in], weight gradient dW[out,in]. */
static inline ob_gemm_args ob_gemm_xwt(void *y, cudaDataType yt, const bf16 *x, const bf16 *w, int n, int in, int out) {
    ob_gemm_args a = {y, yt, NULL, x, w, n, out, in, false, true, 1.0f, NULL, 0.0f};
    return a;
}
static inline ob_gemm_args ob_gemm_dyw(void *dx, cudaDataType t, const bf16 *dy, const bf16 *w, int n, int in, int out) {
    ob_gemm_args a = {dx, t, NULL, dy, w, n, in, out, false, false, 1.0f, NULL, 0.0f};
    return a;
}
static inline ob_gemm_args ob_gemm_dytx(void *dw, cudaDataType t, const bf16 *dy, const bf16 *x, int n, int in, int out) {
    ob_gemm_args a = {dw, t, NULL, dy, x, out, in, n, true, false, 1.0f, NULL, 0.0f};
    return a;
}

#endif
