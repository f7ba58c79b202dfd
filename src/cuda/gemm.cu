/* cuBLASLt plans and execution (see gemm.cuh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/gemm.cuh"
#include "cuda/gemm_choice.cuh"
#include "cuda/profile.cuh"

#define PLAN_CACHE 128
#define WORKSPACE_BYTES (64u << 20)
#define TUNE_CANDIDATES 32
#define TUNE_RUNS 20

typedef struct {
    int m, n, k, lda, ldd, batch;
    long long stride_a, stride_b, stride_d;
    bool trans_a, trans_b, device_alpha, accumulate;
    cudaDataType d_type, c_type;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc, ld;
    cublasLtMatmulAlgo_t algo;
    char key[96];   /* every field above: the algorithm table's key */
    char label[48]; /* "M x N x K[ (xB)], bf16|fp32[ +=]" for the profile */
} plan;

struct ob_gemm {
    cublasLtHandle_t handle;
    cudaStream_t stream;
    void *workspace;
    float *constants; /* device {0, 1}: beta when alpha is a device pointer */
    plan plans[PLAN_CACHE];
    int num_plans;
    ob_gpu_profile prof; /* per shape */
};

ob_status ob_gemm_create(cudaStream_t stream, ob_gemm **out) {
    *out = NULL;
    ob_gemm *g = (ob_gemm *)calloc(1, sizeof *g);
    if (!g)
        return ob_error(OB_ERR_NOMEM, "cuda: out of memory");
    g->stream = stream;
    ob_gpu_profile_init(&g->prof);
    *out = g;
    OB_CUBLAS_TRY(cublasLtCreate(&g->handle));
    OB_CUDA_TRY(cudaMalloc(&g->workspace, WORKSPACE_BYTES));
    OB_CUDA_TRY(cudaMalloc(&g->constants, 2 * sizeof(float)));
    float c[2] = {0.0f, 1.0f};
    OB_CUDA_TRY(cudaMemcpy(g->constants, c, sizeof c, cudaMemcpyHostToDevice));
    return OB_OK;
}

size_t ob_gemm_workspace_bytes(void) { return WORKSPACE_BYTES; }

/* 2·M·N·K (times the batch) of a profile label. */
static double label_flops(const char *label) {
    int m = 0, n = 0, k = 0, batch = 1;
    sscanf(label, "%d x %d x %d (x%d)", &m, &n, &k, &batch);
    return 2.0 * m * n * k * batch;
}

void ob_gemm_profile_flush(ob_gemm *g) { ob_gpu_profile_flush(&g->prof, g->stream); }

void ob_gemm_free(ob_gemm *g) {
    if (!g)
        return;
    ob_gpu_profile_report(&g->prof, "cuBLASLt products by shape", label_flops);
    for (int i = 0; i < g->num_plans; i++) {
        plan *p = &g->plans[i];
        cublasLtMatmulDescDestroy(p->desc);
        cublasLtMatrixLayoutDestroy(p->la);
        cublasLtMatrixLayoutDestroy(p->lb);
        cublasLtMatrixLayoutDestroy(p->lc);
        cublasLtMatrixLayoutDestroy(p->ld);
    }
    cudaFree(g->workspace);
    cudaFree(g->constants);
    if (g->handle)
        cublasLtDestroy(g->handle);
    free(g);
}

static ob_status launch(ob_gemm *g, const ob_gemm_args *a, const plan *p, const cublasLtMatmulAlgo_t *algo, void *d,
                        float beta_value);

static ob_status set_batch(cublasLtMatrixLayout_t layout, int32_t count, int64_t stride) {
    OB_CUBLAS_TRY(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
    OB_CUBLAS_TRY(
        cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
    return OB_OK;
}

static void plan_key(const ob_gemm_args *a, char *key, size_t size) {
    snprintf(key, size, "%d %d %d %d %d %d %lld %lld %lld %d%d%d%d %s", a->m, a->n, a->k, a->lda, a->ldd, a->batch,
             a->stride_a, a->stride_b, a->stride_d, a->trans_a, a->trans_b, a->alpha_device != NULL, a->beta != 0.0f,
             a->d_type == CUDA_R_32F ? "fp32" : "bf16");
}

/* How many memsets cuBLASLt issues with one launch of an algorithm (it zeroes
 * something before some kernels; each costs a gap in the stream): counted in
 * a captured graph of the launch, which runs nothing. -1 when not capturable. */
static int memsets_of(ob_gemm *g, const ob_gemm_args *a, const plan *p, const cublasLtMatmulAlgo_t *algo) {
    cudaGraph_t graph = NULL;
    if (cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess)
        return -1;
    ob_status launched = launch(g, a, p, algo, a->d, a->beta);
    if (cudaStreamEndCapture(g->stream, &graph) != cudaSuccess || launched != OB_OK)
        return -1;
    size_t n = 0;
    int memsets = 0;
    cudaGraphNode_t nodes[16];
    cudaGraphNodeType type;
    if (cudaGraphGetNodes(graph, NULL, &n) == cudaSuccess && n <= 16 &&
        cudaGraphGetNodes(graph, nodes, &n) == cudaSuccess)
        for (size_t i = 0; i < n; i++)
            memsets += cudaGraphNodeGetType(nodes[i], &type) == cudaSuccess && type == cudaGraphNodeTypeMemset;
    else
        memsets = -1;
    cudaGraphDestroy(graph);
    return memsets;
}

/* ONEBIT_CUDA_GEMM_TUNE=1: times the heuristic's candidates on the product's
 * inputs (into a scratch output), keeps the fastest and prints its table line;
 * =2 also prints every candidate (time, memsets, configuration). */
static ob_status tune_plan(ob_gemm *g, const ob_gemm_args *a, plan *p, const cublasLtMatmulHeuristicResult_t *results,
                           int found, bool verbose) {
    size_t ld_d = a->ldd ? a->ldd : a->n, elem = a->d_type == CUDA_R_32F ? 4 : 2;
    size_t bytes = ((size_t)a->m * ld_d + (size_t)(a->batch > 1 ? a->batch - 1 : 0) * a->stride_d) * elem;
    ob_gemm_args trial = *a;
    trial.c = NULL;
    OB_CUDA_TRY(cudaDeviceSynchronize()); /* time it alone: the other streams' queued work done first */
    OB_CUDA_TRY(cudaMalloc(&trial.d, bytes));
    OB_CUDA_TRY(cudaMemsetAsync(trial.d, 0, bytes, g->stream));
    cudaEvent_t start, stop;
    OB_CUDA_TRY(cudaEventCreate(&start));
    OB_CUDA_TRY(cudaEventCreate(&stop));
    double best = 1e30, first = 0;
    int pick = 0;
    for (int i = 0; i < found; i++) {
        if (results[i].workspaceSize > WORKSPACE_BYTES || launch(g, &trial, p, &results[i].algo, trial.d, a->beta))
            continue; /* one it cannot run */
        cudaEventRecord(start, g->stream);
        for (int r = 0; r < TUNE_RUNS; r++)
            launch(g, &trial, p, &results[i].algo, trial.d, a->beta);
        cudaEventRecord(stop, g->stream);
        float ms = 0;
        OB_CUDA_TRY(cudaEventSynchronize(stop));
        cudaEventElapsedTime(&ms, start, stop);
        double us = 1e3 * ms / TUNE_RUNS;
        if (i == 0)
            first = us;
        if (verbose) {
            ob_gemm_config c;
            ob_gemm_describe(&results[i].algo, &c);
            fprintf(stderr, "  candidate %2d, %d memsets: ", i, memsets_of(g, &trial, p, &results[i].algo));
            ob_gemm_print_config(p->key, &c, us, first);
        }
        if (us < best) {
            best = us;
            pick = i;
        }
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cudaFree(trial.d);
    ob_clear_error();
    p->algo = results[pick].algo;
    ob_gemm_config c;
    ob_gemm_describe(&p->algo, &c);
    ob_gemm_print_config(p->key, &c, best, first);
    return OB_OK;
}

/* Row-major D[M,N] = op(A)·op(B) is column-major Dᵀ[N,M] = op(B)ᵀ·op(A)ᵀ: cuBLAS
 * sees B first. A row-major [R,C] matrix is a column-major [C,R] one. */
static ob_status make_plan(ob_gemm *g, const ob_gemm_args *a, plan *p) {
    memset(p, 0, sizeof *p);
    p->m = a->m;
    p->n = a->n;
    p->k = a->k;
    p->lda = a->lda;
    p->ldd = a->ldd;
    p->batch = a->batch;
    p->stride_a = a->stride_a;
    p->stride_b = a->stride_b;
    p->stride_d = a->stride_d;
    p->trans_a = a->trans_a;
    p->trans_b = a->trans_b;
    p->device_alpha = a->alpha_device != NULL;
    p->accumulate = a->beta != 0.0f;
    p->d_type = a->d_type;
    p->c_type = a->d_type;
    cublasOperation_t op1 = a->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op2 = a->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    OB_CUBLAS_TRY(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    OB_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op1, sizeof op1));
    OB_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op2, sizeof op2));
    cublasLtPointerMode_t mode = p->device_alpha ? CUBLASLT_POINTER_MODE_DEVICE : CUBLASLT_POINTER_MODE_HOST;
    OB_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, &mode, sizeof mode));
    /* cuBLAS: D'(N x M) = op1(B')(N x K) · op2(A')(K x M). */
    int m = a->n, n = a->m, k = a->k;
    OB_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, a->trans_b ? k : m, a->trans_b ? m : k,
                                             a->trans_b ? k : m));
    int ld_a = a->lda ? a->lda : a->trans_a ? n : k, ld_d = a->ldd ? a->ldd : m;
    OB_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, a->trans_a ? n : k, a->trans_a ? k : n, ld_a));
    OB_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->lc, p->c_type, m, n, ld_d));
    OB_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->ld, p->d_type, m, n, ld_d));
    if (a->batch > 1) {
        OB_STATUS_TRY(set_batch(p->la, a->batch, a->stride_b));
        OB_STATUS_TRY(set_batch(p->lb, a->batch, a->stride_a));
        OB_STATUS_TRY(set_batch(p->lc, a->batch, a->stride_d));
        OB_STATUS_TRY(set_batch(p->ld, a->batch, a->stride_d));
    }
    cublasLtMatmulPreference_t pref;
    OB_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = WORKSPACE_BYTES;
    OB_CUBLAS_TRY(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    /* Split-K reductions with atomics would make results vary from run to run. */
    uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE |
                       CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    OB_CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                                       sizeof schemes));
    /* The table's choice (gemm_choice.cuh), else the heuristic's first. */
    cublasLtMatmulHeuristicResult_t results[TUNE_CANDIDATES];
    int found = 0;
    const char *tune = getenv("ONEBIT_CUDA_GEMM_TUNE");
    bool tuning = tune && (tune[0] == '1' || tune[0] == '2');
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(g->handle, p->desc, p->la, p->lb, p->lc, p->ld, pref,
                                                      tuning ? TUNE_CANDIDATES : 1, results, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0)
        return ob_error(OB_ERR_DEVICE, "cuBLASLt: no algorithm for a %d x %d x %d product (status %d)", a->m, a->n,
                        a->k, (int)s);
    plan_key(a, p->key, sizeof p->key);
    ob_gemm_problem problem = {g->handle, p->desc, p->la, p->lb, p->lc, p->ld, p->d_type, WORKSPACE_BYTES};
    if (tuning)
        OB_STATUS_TRY(tune_plan(g, a, p, results, found, tune[0] == '2'));
    else if (!ob_gemm_from_table(&problem, p->key, &p->algo))
        p->algo = results[0].algo;
    char batch[16] = "";
    if (a->batch > 1)
        snprintf(batch, sizeof batch, " (x%d)", a->batch);
    snprintf(p->label, sizeof p->label, "%d x %d x %d%s, %s%s", a->m, a->n, a->k, batch,
             a->d_type == CUDA_R_32F ? "fp32" : "bf16", p->accumulate ? " +=" : "");
    return OB_OK;
}

static plan *find_plan(ob_gemm *g, const ob_gemm_args *a) {
    for (int i = 0; i < g->num_plans; i++) {
        plan *p = &g->plans[i];
        if (p->m == a->m && p->n == a->n && p->k == a->k && p->lda == a->lda && p->ldd == a->ldd &&
            p->batch == a->batch && p->stride_a == a->stride_a && p->stride_b == a->stride_b &&
            p->stride_d == a->stride_d &&
            p->trans_a == a->trans_a && p->trans_b == a->trans_b && p->device_alpha == (a->alpha_device != NULL) &&
            p->accumulate == (a->beta != 0.0f) && p->d_type == a->d_type)
            return p;
    }
    return NULL;
}

ob_status ob_gemm_run(ob_gemm *g, const ob_gemm_args *a) {
    if (a->m <= 0 || a->n <= 0 || a->k <= 0)
        return OB_OK;
    plan *p = find_plan(g, a);
    if (!p) {
        if (g->num_plans == PLAN_CACHE)
            return ob_error(OB_ERR_DEVICE, "cuBLASLt: more than %d distinct product shapes", PLAN_CACHE);
        p = &g->plans[g->num_plans];
        OB_STATUS_TRY(make_plan(g, a, p));
        g->num_plans++;
    }
    ob_gpu_profile_mark(&g->prof, g->stream, p->label);
    ob_status st = launch(g, a, p, &p->algo, a->d, a->beta);
    ob_gpu_profile_mark(&g->prof, g->stream, NULL);
    return st;
}

static ob_status launch(ob_gemm *g, const ob_gemm_args *a, const plan *p, const cublasLtMatmulAlgo_t *algo, void *d,
                        float beta_value) {
    const void *alpha = a->alpha_device ? (const void *)a->alpha_device : (const void *)&a->alpha;
    const void *beta = a->alpha_device ? (const void *)(g->constants + (beta_value != 0.0f ? 1 : 0))
                                       : (const void *)&beta_value;
    const void *c = beta_value != 0.0f && a->c ? a->c : d;
    OB_CUBLAS_TRY(cublasLtMatmul(g->handle, p->desc, alpha, a->b, p->la, a->a, p->lb, beta, c, p->lc, d, p->ld, algo,
                                 g->workspace, WORKSPACE_BYTES, g->stream));
    return OB_OK;
}
