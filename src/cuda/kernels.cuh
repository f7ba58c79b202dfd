/* Kernels of the CUDA backend (docs/MODEL.md). Every reduction is split into
 * fixed per-block partial sums added in a fixed order, never atomics, so that a
 * run repeats bit for bit (exact resume on GPU). Shapes are row-major; N is the
 * number of tokens (B·T). */
#ifndef ONEBIT_CUDA_KERNELS_CUH
#define ONEBIT_CUDA_KERNELS_CUH

#include "cuda/cuda_common.cuh"

extern "C" {
#include "onebit/backend.h"
#include "onebit/quant.h"
}

/* ---- weight quantisation ---------------------------------------------------- */

/* One quantisable matrix as the device kernels see it. */
typedef struct {
    int64_t offset; /* into the fp32 parameter buffer and the bf16 effective weights */
    int rows, cols;
    int mode;       /* ob_quant_mode */
    int soft;       /* soft regime this step */
    int fold;       /* hard ternary/binary codes times their scale (GEMM alpha 1) */
    int decay, clamp; /* AdamW's weight decay and latent clamp apply */
} ob_gpu_matrix;

/* Per-matrix scalars computed on the device. */
typedef struct {
    float beta, mu, alpha; /* β, μ, dynamic-threshold α (0 without it, as mask_inv) */
    float mask_inv;        /* 1/|M| (0 when M is empty) */
    float scale;           /* GEMM alpha: the per-matrix scale, or 1 when folded into the weights */
    float scale_r;         /* scale times the residual factor (products that add into the residual) */
} ob_gpu_qstats;

typedef struct ob_gpu_wquant ob_gpu_wquant;

/* Plans the launches for the given matrices (done once per model). */
ob_status ob_gpu_wquant_create(const ob_gpu_matrix *mats, int count, ob_gpu_wquant **out);
void ob_gpu_wquant_free(ob_gpu_wquant *q);
/* Effective weights (bf16) and stats of every matrix for this step: hard codes
 * (scale in stats.scale, or folded into the weights: bf16(scale·code) where
 * the matrix says `fold`), soft values, per-row 8/4-bit values, or the latent
 * weights themselves for f16/full precision (`quantised` = 0 for every matrix
 * in the full-precision regime). Also the clamped latent weights in `wc` when
 * wc != NULL (Arenas). */
ob_status ob_gpu_wquant_run(ob_gpu_wquant *q, const float *w, bf16 *w_eff, bf16 *wc, ob_gpu_qstats *stats,
                            bool dynamic_threshold, float clamp, float sharpness, bool quantised, bool soft,
                            float residual, cudaStream_t s);
/* Soft regime backward of one matrix: dw += dL/dW given g = dL/dWq (fp32). */
ob_status ob_gpu_soft_backward(ob_gpu_wquant *q, int index, const float *w, const float *g, float *dw,
                               const ob_gpu_qstats *stats, bool dynamic_threshold, float clamp, float sharpness,
                               cudaStream_t s);
/* Zeroes gradient entries whose latent weight is beyond the clamp, for every
 * quantised matrix; looks only where the last ob_gpu_wquant_run (over the same
 * weights) saw such a weight. */
ob_status ob_gpu_mask_clamped(ob_gpu_wquant *q, const float *w, float *grads, float clamp, cudaStream_t s);

/* ---- normalisation and activations ------------------------------------------ */

/* Norm (RMS or bias-free Layer) of fp32 rows, saving mean and rstd; writes the
 * bf16 normalised rows to `y` and, when act_bits > 0, their activation-quantised
 * version to `yq` (yq may equal y when the unquantised rows are not needed).
 * With a bf16 branch, the rows normalised are x + branch (the residual stream
 * after a block's product), written to x_sum. */
ob_status ob_gpu_norm_forward(bf16 *y, bf16 *yq, float *mean, float *rstd, float *x_sum, const float *x,
                              const bf16 *branch, const float *g, int n, int d, float eps, bool layernorm,
                              int act_bits, cudaStream_t s);
/* dx (fp32, = or += when accumulate) and the gain gradient (fp32 +=) from bf16 dy;
 * with dx16, also scale16·dx (the result) in bf16, the next product's input.
 * `partials` holds ob_gpu_norm_partials(n, d) floats: the gain gradient's
 * partial sums, which ob_gpu_gain_sum adds into dg later when dg is NULL. */
size_t ob_gpu_norm_partials(int n, int d);
ob_status ob_gpu_gain_sum(float *dg, const float *partials, size_t floats, int d, cudaStream_t s);
ob_status ob_gpu_norm_backward(float *dx, bool accumulate, bf16 *dx16, float scale16, float *dg, float *partials,
                               const bf16 *dy, const float *x, const float *g, const float *mean, const float *rstd,
                               int n, int d, bool layernorm, cudaStream_t s);
/* Activation quantiser of bf16 rows (x̃ = rint(x·s)/s, per row). */
ob_status ob_gpu_act_quant(bf16 *out, const bf16 *x, int n, int d, int bits, cudaStream_t s);

/* QK-norm (optional, with the saved rstd) then RoPE (optional) of the heads
 * of `in`, whose token rows lie `ld` elements apart (q or k inside one
 * [N, q|k|v] product output, which stays as the backward pass's input), into
 * dense out [N, heads, hd]. */
ob_status ob_gpu_qk_forward(bf16 *out, const bf16 *in, size_t ld, float *rstd, const float *gain,
                            const float *rope_cos, const float *rope_sin, int B, int T, int heads, int hd, float eps,
                            bool qk_norm, bool rope, cudaStream_t s);
/* Backward of the above: dx (bf16, rows `ld` apart, as `pre`, the forward's
 * input) from dense dy, and the gain gradient (+=); `partials` holds
 * ob_gpu_qk_partials(B·T·heads, hd) floats (left for ob_gpu_gain_sum when
 * dgain is NULL). */
size_t ob_gpu_qk_partials(int rows, int hd);
ob_status ob_gpu_qk_backward(bf16 *dx, size_t ld, const bf16 *dy, float *dgain, float *partials, const bf16 *pre,
                             const float *rstd, const float *gain, const float *rope_cos, const float *rope_sin, int B,
                             int T, int heads, int hd, bool qk_norm, bool rope, cudaStream_t s);

/* h = act(u[, g]) [n, f] and, with act_bits, hq = x̃(h); hq may be h (quantised
 * in place). The rows of u and g (du and dg) lie `ld` elements apart: both
 * parts of one [n, gate|up] product output; h and dh are dense. */
ob_status ob_gpu_ffn_forward(bf16 *h, bf16 *hq, const bf16 *u, const bf16 *g, size_t ld, int n, int f, int act,
                             int act_bits, cudaStream_t s);
ob_status ob_gpu_ffn_backward(bf16 *du, bf16 *dg, const bf16 *dh, const bf16 *u, const bf16 *g, size_t ld, int n,
                              int f, int act, cudaStream_t s);

/* ---- attention ---------------------------------------------------------------- */

/* Causal attention q [B,T,nh,hd], k/v [B,T,nkv,hd] → o [B,T,nh,hd] and the row
 * log-sum-exp lse [B,nh,T]. Flash-style: scores live in registers and shared
 * memory only. The token rows of q, k and v (and of dq, dk, dv) lie ld.q,
 * ld.k and ld.v elements apart (v inside one [N, q|k|v] product output); o
 * and do are dense. */
typedef struct {
    size_t q, k, v;
} ob_qkv_ld;
ob_status ob_gpu_attention_forward(bf16 *o, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld,
                                   int B, int T, int nh, int nkv, int hd, cudaStream_t s);
/* dq, dk, dv (bf16) from do; `delta` [B,nh,T] is scratch. */
ob_status ob_gpu_attention_backward(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *o, const float *lse,
                                    const bf16 *q, const bf16 *k, const bf16 *v, ob_qkv_ld ld, float *delta, int B,
                                    int T, int nh, int nkv, int hd, cudaStream_t s);

/* ---- embedding, residual, loss ------------------------------------------------ */

/* x[t] = scale·E[tok] (+ P[t mod T]) in fp32, from bf16 effective embedding rows
 * and the device scalar `scale`. */
ob_status ob_gpu_embed_forward(float *x, const int32_t *tokens, const bf16 *emb, const float *scale, const float *pos,
                               int N, int T, int H, cudaStream_t s);
/* dE[tok] += factor·Σ dx over the positions holding tok (positions grouped per
 * token by the host: `order` lists positions sorted by token, `starts`
 * [distinct + 1] delimits each token's run, `ids` names it), dP += Σ_b dx. */
ob_status ob_gpu_embed_backward(float *demb, float *dpos, const float *dx, const int32_t *order,
                                const int32_t *starts, const int32_t *ids, int distinct, int N, int T, int H,
                                float factor, cudaStream_t s);
/* Label-smoothed cross-entropy of fp32 or bf16 logits rows (row stride ld, a
 * multiple of 4; rows aligned to four logits): per-row loss (smoothed and
 * plain) and, with grad, the bf16 gradients scaled by grad_scale, written in
 * place: row r's gradient is the first V bf16 of its logits row, so the
 * gradient rows have stride 2·ld (fp32 logits) or ld (bf16). */
ob_status ob_gpu_cross_entropy(float *logits, size_t ld, bool grad, float *row_loss, float *row_plain,
                               const int32_t *targets, int n, int V, float smoothing, float grad_scale, cudaStream_t s);
ob_status ob_gpu_cross_entropy(bf16 *logits, size_t ld, bool grad, float *row_loss, float *row_plain,
                               const int32_t *targets, int n, int V, float smoothing, float grad_scale, cudaStream_t s);

/* ---- element-wise helpers --------------------------------------------------- */

ob_status ob_gpu_bf16_to_f32(float *out, const bf16 *in, size_t n, cudaStream_t s);
/* out = a + scale·b (fp32 = fp32 + bf16). */
ob_status ob_gpu_residual(float *out, const float *a, const bf16 *b, float scale, size_t n, cudaStream_t s);
/* acc += x. */
ob_status ob_gpu_add(float *acc, const float *x, size_t n, cudaStream_t s);
/* Deterministic sum of n floats (or of their squares; in double) into *out
 * (device), through OB_GPU_SUM_BLOCKS partials. */
#define OB_GPU_SUM_BLOCKS 1024
ob_status ob_gpu_sum(double *out, const float *x, size_t n, double *partials, bool squares, cudaStream_t s);

/* ---- optimizer ---------------------------------------------------------------- */

/* A parameter segment of the optimizer: floats [offset, offset + numel) of
 * the buffers, at `packed` in the index space its threads cover
 * (ob_gpu_param_segs_pack). */
typedef struct {
    int64_t offset, numel, packed;
    int decay, clamp;
} ob_gpu_param_seg;

/* Lays the segments (offsets ascending, multiples of 4) one after another in
 * groups of four floats; returns the floats that covers. */
int64_t ob_gpu_param_segs_pack(ob_gpu_param_seg *segs, int num_segs);

/* One AdamW step: g is multiplied by grad_scale (clipping) first; the latent
 * clamp follows where a segment or matrix says so. */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay, grad_scale, clamp;
    int64_t step;
} ob_gpu_adamw_step;

/* Over the packed segments (packed_total from ob_gpu_param_segs_pack); floats
 * outside them are left alone. */
ob_status ob_gpu_adamw(float *w, const float *g, float *m, float *v, const ob_gpu_param_seg *segs, int num_segs,
                       int64_t packed_total, const ob_gpu_adamw_step *a, cudaStream_t s);
/* Over every quantiser matrix (ob_gpu_matrix's decay and clamp), writing as it
 * goes what the next ob_gpu_wquant_run's first statistics pass would compute
 * from the updated weights, and the f16 matrices' effective weights into
 * w_eff, so that the next run over w_eff skips both. */
ob_status ob_gpu_wquant_adamw(ob_gpu_wquant *q, float *w, bf16 *w_eff, const float *g, float *m, float *v,
                              const ob_gpu_adamw_step *a, cudaStream_t s);
/* The weights changed otherwise (an upload): the next run makes its statistics afresh. */
void ob_gpu_wquant_forget(ob_gpu_wquant *q);

#endif
