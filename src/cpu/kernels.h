/* CPU kernels of the training forward and backward passes (docs/MODEL.md).
 * Row-major throughout; `n` rows of `d` columns. Backward functions accumulate
 * into parameter gradients (+=) and overwrite input gradients (=) unless noted. */
#ifndef ONEBIT_CPU_KERNELS_H
#define ONEBIT_CPU_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu/real.h"

/* Accumulate the time spent in the products below (for benchmarks). */
void OB_R(ob_cpu_matmul_profile)(bool on);
double OB_R(ob_cpu_matmul_seconds)(void);

/* y[n,out] = x[n,in]·W[out,in]ᵀ (beta = 0) or y += (beta = 1); alpha scales. */
void OB_R(ob_cpu_matmul_xwt)(real *y, const real *x, const real *w, int n, int in, int out, real alpha, real beta);
/* dx[n,in] = alpha·dy[n,out]·W[out,in] + beta·dx. */
void OB_R(ob_cpu_matmul_dyw)(real *dx, const real *dy, const real *w, int n, int in, int out, real alpha, real beta);
/* dW[out,in] = alpha·dy[n,out]ᵀ·x[n,in] + beta·dW. */
void OB_R(ob_cpu_matmul_dytx)(real *dw, const real *dy, const real *x, int n, int in, int out, real alpha, real beta);

/* C[m,n] = alpha·op(A)·op(B) + beta·C, op = transpose when ta/tb; row-major with
 * leading dimensions. */
void OB_R(ob_cpu_gemm)(bool ta, bool tb, int m, int n, int k, real alpha, const real *a, int lda, const real *b,
                       int ldb, real beta, real *c, int ldc);

/* z[i] = e^(z[i] − shift) for i < n, in place; returns their sum (in `real`
 * over chunks of 256, the chunks in double). */
double OB_R(ob_cpu_exp_shifted)(real *z, int n, real shift);

/* One row of the norm below (y may be x): returns rstd, and the mean in *mean
 * (0 for RMSNorm). The inference runtime calls it to normalise as training does. */
real OB_R(ob_cpu_norm_row)(real *y, const real *x, const real *g, int d, real eps, bool layernorm, real *mean);
/* RMSNorm (layernorm = false) or bias-free LayerNorm; saves rstd per row, and the
 * mean for LayerNorm (`mean` may be NULL for RMSNorm). */
void OB_R(ob_cpu_norm_forward)(real *y, real *mean, real *rstd, const real *x, const real *g, int n, int d, real eps,
                               bool layernorm);
/* dx (=) and dg (+=) from dy. */
void OB_R(ob_cpu_norm_backward)(real *dx, real *dg, const real *dy, const real *x, const real *g, const real *mean,
                                const real *rstd, int n, int d, bool layernorm);

/* cos/sin table [T][hd/2] for RoPE. */
void OB_R(ob_cpu_rope_table)(real *cos_t, real *sin_t, int T, int hd, double theta);
/* Rotates x viewed [B·T][heads][hd] in place; inverse = true applies the
 * transpose (the backward pass). */
void OB_R(ob_cpu_rope)(real *x, const real *cos_t, const real *sin_t, int B, int T, int heads, int hd, bool inverse);

/* Causal attention. q [B,T,nh,hd], k/v [B,T,nkv,hd] → o [B,T,nh,hd]; att holds the
 * softmax probabilities [B,nh,T,T] (lower triangle, zeros above). The backward
 * pass needs OB_CPU_ATTENTION_BLOCK·T reals of scratch. */
#define OB_CPU_ATTENTION_BLOCK 128
void OB_R(ob_cpu_attention_forward)(real *o, real *att, const real *q, const real *k, const real *v, int B, int T,
                                    int nh, int nkv, int hd);
void OB_R(ob_cpu_attention_backward)(real *dq, real *dk, real *dv, real *scratch, const real *dout, const real *att,
                                     const real *q, const real *k, const real *v, int B, int T, int nh, int nkv,
                                     int hd);

typedef enum { OB_ACT_SILU, OB_ACT_RELU2, OB_ACT_SWIGLU } ob_cpu_act;
/* h = act(u) or silu(g)·u (SwiGLU; g unused otherwise). */
void OB_R(ob_cpu_ffn_act_forward)(real *h, const real *u, const real *g, size_t count, ob_cpu_act act);
void OB_R(ob_cpu_ffn_act_backward)(real *du, real *dg, const real *dh, const real *u, const real *g, size_t count,
                                   ob_cpu_act act);

/* Label-smoothed cross-entropy over rows of logits [n,V], in place: on return the
 * rows hold dloss/dlogits·grad_scale when want_grad (else they hold nothing
 * useful). Returns the sum over rows of the loss; also adds the plain (ε = 0)
 * cross-entropy sum to *plain_sum when not NULL. */
double OB_R(ob_cpu_cross_entropy)(real *logits, const int32_t *targets, int n, int V, real smoothing,
                                  real grad_scale, bool want_grad, double *plain_sum);

#endif
