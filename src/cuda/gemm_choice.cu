/* Which cuBLASLt algorithm runs a product (gemm_choice.cuh). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cuda/gemm_choice.cuh"

/* Measured with `ONEBIT_CUDA_GEMM_TUNE=1 ONEBIT_CUDA_WG_STREAM=0
 * bench_gpu_train --config configs/gpt2-124m-ternary.json --batch 16 --seq
 * 1024 --quant ternary` on one H100 80GB HBM3 (CUDA 13.0; one stream, so that
 * no other product runs beside the one timed): the fastest of the heuristic's
 * first 32 candidates per product. */
static const ob_gemm_config table[] = {
#include "cuda/gemm_table.inc"
};

/* The configuration attributes the table sets (the algorithm id is given to
 * cublasLtMatmulAlgoInit), with where they live in an ob_gemm_config. */
typedef struct {
    cublasLtMatmulAlgoConfigAttributes_t attr;
    size_t offset, size;
} config_field;

#define FIELD(attr, member) {attr, offsetof(ob_gemm_config, member), sizeof(((ob_gemm_config *)0)->member)}
static const config_field fields[] = {
    FIELD(CUBLASLT_ALGO_CONFIG_TILE_ID, tile),           FIELD(CUBLASLT_ALGO_CONFIG_STAGES_ID, stages),
    FIELD(CUBLASLT_ALGO_CONFIG_SPLITK_NUM, splitk),      FIELD(CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, reduction),
    FIELD(CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, swizzle),  FIELD(CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, custom),
    FIELD(CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID, inner),   FIELD(CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, cluster),
};

void ob_gemm_describe(const cublasLtMatmulAlgo_t *algo, ob_gemm_config *c) {
    memset(c, 0, sizeof *c);
    size_t n;
    cublasLtMatmulAlgoConfigGetAttribute(algo, CUBLASLT_ALGO_CONFIG_ID, &c->algo, sizeof c->algo, &n);
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        cublasLtMatmulAlgoConfigGetAttribute(algo, fields[i].attr, (char *)c + fields[i].offset, fields[i].size, &n);
}

void ob_gemm_print_config(const char *key, const ob_gemm_config *c, double us, double first_us) {
    fprintf(stderr, "    {\"%s\", %d, %u, %u, %d, %u, %u, %u, %u, %u}, /* %.1f us, heuristic's first %.1f */\n",
            key, c->algo, c->tile, c->stages, c->splitk, c->reduction, c->swizzle, c->custom, (unsigned)c->inner,
            (unsigned)c->cluster, us, first_us);
}

bool ob_gemm_from_table(const ob_gemm_problem *p, const char *key, cublasLtMatmulAlgo_t *algo) {
    int dev, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess || major != 9)
        return false; /* measured on Hopper */
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const ob_gemm_config *c = &table[i];
        if (strcmp(c->key, key) != 0)
            continue;
        cublasLtMatmulAlgo_t a;
        cublasLtMatmulHeuristicResult_t check;
        bool ok = cublasLtMatmulAlgoInit(p->handle, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16BF, CUDA_R_16BF,
                                         p->d_type, p->d_type, c->algo, &a) == CUBLAS_STATUS_SUCCESS;
        for (size_t f = 0; ok && f < sizeof fields / sizeof *fields; f++)
            ok = cublasLtMatmulAlgoConfigSetAttribute(&a, fields[f].attr, (const char *)c + fields[f].offset,
                                                      fields[f].size) == CUBLAS_STATUS_SUCCESS;
        ok = ok && cublasLtMatmulAlgoCheck(p->handle, p->desc, p->la, p->lb, p->lc, p->ld, &a, &check) ==
                       CUBLAS_STATUS_SUCCESS &&
             check.workspaceSize <= p->workspace_bytes;
        if (ok)
            *algo = a;
        return ok;
    }
    return false;
}
