/* Which cuBLASLt algorithm runs a product. The heuristic's first candidate is
 * not always the fastest (the o-projection's products ran at 445-540 TFLOP/s),
 * but timing candidates in every run would let processes pick differently and
 * compute other bits, so a resumed run would not repeat. The choice is a fixed
 * table instead (gemm_table.inc), measured once on an H100 with
 * ONEBIT_CUDA_GEMM_TUNE=1, which prints its lines; products it does not list,
 * and devices other than Hopper, take the heuristic's first. */
#ifndef ONEBIT_CUDA_GEMM_CHOICE_CUH
#define ONEBIT_CUDA_GEMM_CHOICE_CUH

#include "cuda/cuda_common.cuh"

/* An algorithm's configuration (cuBLASLt's CUBLASLT_ALGO_CONFIG_*). */
typedef struct {
    const char *key; /* the product it is for (gemm.cu's plan_key) */
    int32_t algo;
    uint32_t tile, stages;
    int32_t splitk;
    uint32_t reduction, swizzle, custom;
    uint16_t inner, cluster;
} ob_gemm_config;

/* A product as cuBLASLt sees it. */
typedef struct {
    cublasLtHandle_t handle;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc, ld;
    cudaDataType d_type;
    size_t workspace_bytes;
} ob_gemm_problem;

void ob_gemm_describe(const cublasLtMatmulAlgo_t *algo, ob_gemm_config *c);
/* One line of gemm_table.inc, with the measured and the heuristic's times. */
void ob_gemm_print_config(const char *key, const ob_gemm_config *c, double us, double first_us);
/* The table's algorithm for `key`, if it lists one that runs here. */
bool ob_gemm_from_table(const ob_gemm_problem *p, const char *key, cublasLtMatmulAlgo_t *algo);

#endif
