/* State of the CUDA backend: the model's buffers on one GPU and the saved
 * activations of a pass (mirrors src/cpu/cpu_model.c, with bf16 where the CPU
 * has float, and fp32 for the residual stream, statistics and gradients). */
#ifndef ONEBIT_CUDA_STATE_CUH
#define ONEBIT_CUDA_STATE_CUH

#include "cuda/gemm.cuh"
#include "cuda/graph.cuh"
#include "cuda/kernels.cuh"
#include "cuda/profile.cuh"

extern "C" {
#include "onebit/dist.h"
}

#define WG_EVENTS 8
#define PARTIAL_SLOTS 4 /* gain-gradient partial sums in flight (a layer's backward has four) */

typedef struct {
    float *x, *a;                       /* residual entering the layer, after attention [N,H] */
    float *mean1, *rstd1, *mean2, *rstd2;
    bf16 *n1, *x1q, *n2, *x2q;          /* norm outputs and their quantised forms [N,H]; n1 and n2
                                         * alias x1q and x2q unless Arenas needs both */
    bf16 *qkv;                          /* [N, q|k|v] rows qkv_ld wide: the products' output */
    float *rq, *rk;
    bf16 *q, *k, *v;                    /* as attention sees them: q and k after QK-norm and RoPE
                                         * (dense), v inside qkv */
    float *lse;                         /* [B,nh,T] */
    bf16 *o;                            /* attention output [N,H] */
    bf16 *u, *g, *h;                    /* FFN [N,F]: u, g in rows ffn_ld apart (one [N, gate|up]
                                         * block); h holds hq when the layer keeps it */
} gpu_layer;

typedef struct {
    const ob_model *m;
    int device;
    int B, T;               /* capacity */
    cudaStream_t stream;
    ob_gemm *gemm;
    /* Weight gradients run on wg_stream (products through wg_gemm) beside the
     * rest of the backward pass, which waits for them (wg_done, a ring) only
     * before it overwrites what they read and before the gradients are used.
     * When profiling, wg_stream and wg_gemm are stream and gemm. */
    cudaStream_t wg_stream;
    ob_gemm *wg_gemm;
    cudaEvent_t wg_ready, wg_done[WG_EVENTS];
    cudaEvent_t grads_zeroed; /* zero_grad's memset, on wg_stream */
    int wg_next;
    ob_gpu_wquant *wq;
    int *matrix_of;          /* parameter index → quantiser matrix index (-1: a vector) */
    float *params, *grads, *mom_m, *mom_v; /* fp32, model layout */
    /* Accumulation: the first micro-batch after zero_grad writes `grads`; later
     * ones write `grads_micro` (allocated when first needed), which is then
     * added, so that k micro-batches sum in the same order as k processes. */
    float *grads_micro;
    bool grads_fresh;
    bf16 *w_eff, *wc;        /* effective weights, clamped latent weights (Arenas) */
    ob_gpu_qstats *stats;    /* per matrix */
    ob_gpu_param_seg *segs;  /* AdamW's segments: the parameters outside the quantiser's matrices */
    int num_segs;
    int64_t segs_packed;
    gpu_layer *layers;
    float *xf, *meanf, *rstdf;
    bf16 *nf, *nfq;
    bf16 *branch;            /* [N,H] a block's output product, added to the stream by the next norm */
    float *dres;             /* [N,H] gradient of the residual stream */
    bf16 *dtmp, *dn, *df1, *df2, *df3; /* df3|df2: dgate|dup in rows ffn_ld apart */
    bf16 *dq, *dk, *dv;      /* as attention writes them: dq, dk dense, dv inside dqkv */
    bf16 *dqkv;              /* [N, q|k|v]: the products' dy */
    size_t qkv_ld;           /* H + 2·nkv·hd */
    size_t ffn_ld;           /* 2F with SwiGLU (gate|up), else F; also of df3|df2 */
    bf16 *oq, *hq;           /* quantised o (and h under Arenas): rebuilt where needed */
    float *delta;
    float *scratch;          /* soft-regime weight gradients (largest matrix) */
    float *logits;           /* [chunk, logits_ld]; then their bf16 gradient in place */
    size_t logits_ld;
    int chunk;
    float *row_loss, *row_plain;
    /* Gain-gradient partial sums: a ring of PARTIAL_SLOTS slots of
     * partial_floats, summed on wg_stream (off the main stream's path); a
     * slot is taken again after partials_free[slot] (NULL: one stream). */
    float *partials;
    size_t partial_floats;
    cudaEvent_t partials_free[PARTIAL_SLOTS];
    int partials_next;
    unsigned partials_summing; /* slots with a sum queued in this pass: only those are waited for */
    double *sum_partials, *sums;
    float *rope_cos, *rope_sin;
    /* The batch's tables (tokens, targets, emb_order, emb_ids [capacity each],
     * emb_starts [capacity + 1], in that order), uploaded in one copy from the
     * same layout in pinned host memory (host_upload), which never waits for
     * the device as a copy from pageable memory may. */
    int32_t *tokens, *targets, *emb_order, *emb_ids, *emb_starts;
    int32_t *host_upload, *host_order, *host_ids, *host_starts, *host_count;
    const ob_step_info *step;
    float *host_logits;      /* eval with logits: destination on the host */
    ob_gpu_profile prof;
    ob_graph_cache graph; /* training passes as a CUDA graph (ob_gpu_pass) */
    /* Data parallelism (world > 1): NCCL communicator and its stream. */
    int world, rank;
    void *comm;                /* ncclComm_t */
    cudaStream_t comm_stream;
    cudaEvent_t ready, reduced;
    bool reduce;               /* this pass reduces the gradients as layers finish */
    size_t *layer_begin, *layer_end; /* gradient ranges per layer (floats) */
    double *values;            /* device scratch of sync_step */
    size_t max_shard;          /* largest per-process shard of a gradient range */
    float *reduce_recv, *reduce_gather; /* [world][max_shard] each */
} gpu_state;

/* NCCL (cuda/nccl.cu): communicator set-up from the rendezvous, gradient ranges
 * reduced on the communication stream after the compute stream reached them,
 * and a small sum of host values. */
ob_status ob_gpu_dist_init(gpu_state *st, const ob_dist *dist);
void ob_gpu_dist_free(gpu_state *st);
ob_status ob_gpu_reduce_range(gpu_state *st, size_t begin, size_t end);
ob_status ob_gpu_reduce_wait(gpu_state *st);
ob_status ob_gpu_sum_values(gpu_state *st, double *values, int count);

/* Forward (and backward when `train`) of one batch; losses as means over tokens. */
ob_status ob_gpu_pass(gpu_state *st, const int32_t *inputs, const int32_t *targets, int B, int T,
                      const ob_step_info *step, bool train, float grad_scale, double *loss, double *plain,
                      float *host_logits);

#endif
