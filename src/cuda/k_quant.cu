/* Weight quantisers on the GPU (docs/MODEL.md, "Quantised linear"), matching
 * src/quant/quant.c: matrix statistics in double from fixed per-block partial
 * sums, then one pass writing the bf16 effective weights. */
#include <stdlib.h>
#include <string.h>

#include "cuda/adamw.cuh"
#include "cuda/kernels.cuh"
#include "cuda/vec_access.cuh"

/* Elements per statistics block: small enough that the AdamW over them
 * (ob_gpu_wquant_adamw) runs in several waves of blocks, not 1.2. */
#define QBLOCK_ELEMS (1 << 14)
#define QTHREADS 256

/* A block of the statistics passes: a range of one matrix. */
typedef struct {
    int matrix;
    int64_t begin, end; /* element range within the matrix */
} qblock;

struct ob_gpu_wquant {
    int count;
    ob_gpu_matrix *mats_h, *mats_d;
    qblock *blocks_d;
    int num_blocks;
    int *first_block_h, *first_block_d; /* [count + 1]: blocks of matrix i */
    double *partials;                   /* [num_blocks][2] */
    int *beyond;                        /* [num_blocks]: a weight beyond the clamp (last statistics pass) */
    double *soft_partials;              /* [largest matrix's blocks + 1][4] */
    int max_rows;
    bool has_rowwise; /* any eightbit/fourbit matrix */
    /* `partials` and `beyond` hold the first statistics pass of the current
     * weights with this clamp (ob_gpu_wquant_adamw wrote them). */
    bool sums_ready;
    float sums_clamp;
    /* The f16 matrices' effective weights in this buffer are the current
     * weights' (ob_gpu_wquant_adamw wrote them): apply_quant skips them. */
    const bf16 *f16_written;
};

ob_status ob_gpu_wquant_create(const ob_gpu_matrix *mats, int count, ob_gpu_wquant **out) {
    ob_gpu_wquant *q = (ob_gpu_wquant *)calloc(1, sizeof *q);
    *out = q;
    if (!q)
        return ob_error(OB_ERR_NOMEM, "cuda: out of memory");
    q->count = count;
    q->mats_h = (ob_gpu_matrix *)malloc((size_t)(count ? count : 1) * sizeof *mats);
    q->first_block_h = (int *)malloc((size_t)(count + 1) * sizeof(int));
    if (!q->mats_h || !q->first_block_h)
        return ob_error(OB_ERR_NOMEM, "cuda: out of memory");
    memcpy(q->mats_h, mats, (size_t)count * sizeof *mats);
    int nb = 0, most = 0;
    for (int i = 0; i < count; i++) {
        q->first_block_h[i] = nb;
        int64_t n = (int64_t)mats[i].rows * mats[i].cols;
        int here = (int)((n + QBLOCK_ELEMS - 1) / QBLOCK_ELEMS);
        nb += here;
        if (here > most)
            most = here;
        if (mats[i].rows > q->max_rows)
            q->max_rows = mats[i].rows;
        if (mats[i].mode == OB_MODE_EIGHTBIT || mats[i].mode == OB_MODE_FOURBIT)
            q->has_rowwise = true;
    }
    q->first_block_h[count] = nb;
    q->num_blocks = nb;
    qblock *blocks = (qblock *)malloc((size_t)(nb ? nb : 1) * sizeof *blocks);
    if (!blocks)
        return ob_error(OB_ERR_NOMEM, "cuda: out of memory");
    for (int i = 0, b = 0; i < count; i++) {
        int64_t n = (int64_t)mats[i].rows * mats[i].cols;
        for (int64_t s = 0; s < n; s += QBLOCK_ELEMS, b++) {
            blocks[b].matrix = i;
            blocks[b].begin = s;
            blocks[b].end = s + QBLOCK_ELEMS < n ? s + QBLOCK_ELEMS : n;
        }
    }
    cudaError_t e = cudaMalloc(&q->mats_d, (size_t)(count ? count : 1) * sizeof *mats);
    if (e == cudaSuccess)
        e = cudaMalloc(&q->blocks_d, (size_t)(nb ? nb : 1) * sizeof *blocks);
    if (e == cudaSuccess)
        e = cudaMalloc(&q->first_block_d, (size_t)(count + 1) * sizeof(int));
    if (e == cudaSuccess)
        e = cudaMalloc(&q->partials, (size_t)(nb ? nb : 1) * 2 * sizeof(double));
    if (e == cudaSuccess)
        e = cudaMalloc(&q->soft_partials, (size_t)(most + 1) * 4 * sizeof(double));
    if (e == cudaSuccess)
        e = cudaMalloc(&q->beyond, (size_t)(nb ? nb : 1) * sizeof(int));
    if (e == cudaSuccess) /* until a statistics pass has looked: every block */
        e = cudaMemset(q->beyond, 1, (size_t)(nb ? nb : 1) * sizeof(int));
    if (e == cudaSuccess)
        e = cudaMemcpy(q->mats_d, mats, (size_t)count * sizeof *mats, cudaMemcpyHostToDevice);
    if (e == cudaSuccess)
        e = cudaMemcpy(q->blocks_d, blocks, (size_t)nb * sizeof *blocks, cudaMemcpyHostToDevice);
    if (e == cudaSuccess)
        e = cudaMemcpy(q->first_block_d, q->first_block_h, (size_t)(count + 1) * sizeof(int), cudaMemcpyHostToDevice);
    free(blocks);
    if (e != cudaSuccess)
        return ob_error(OB_ERR_DEVICE, "cuda: %s", cudaGetErrorString(e));
    return OB_OK;
}

void ob_gpu_wquant_free(ob_gpu_wquant *q) {
    if (!q)
        return;
    cudaFree(q->mats_d);
    cudaFree(q->blocks_d);
    cudaFree(q->first_block_d);
    cudaFree(q->partials);
    cudaFree(q->soft_partials);
    cudaFree(q->beyond);
    free(q->mats_h);
    free(q->first_block_h);
    free(q);
}

__device__ __forceinline__ float clampf(float x, float c) { return fminf(fmaxf(x, -c), c); }

__device__ double block_sum_d(double v) {
    __shared__ double part[QTHREADS / 32];
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    double t = 0;
    if (threadIdx.x == 0)
        for (int i = 0; i < QTHREADS / 32; i++)
            t += part[i];
    return t; /* valid in thread 0 */
}

/* The block's sums of a and b (in thread 0) as its pair of partials. */
__device__ __forceinline__ void write_partial_pair(double *partials, double a, double b) {
    a = block_sum_d(a);
    b = block_sum_d(b);
    if (threadIdx.x == 0) {
        partials[2 * blockIdx.x] = a;
        partials[2 * blockIdx.x + 1] = b;
    }
}

/* Whether a block's range of m can be read 16 bytes at a time. */
__device__ __forceinline__ bool block_vectorised(const float *m, const qblock &b) {
    return ((uintptr_t)(m + b.begin) | (uintptr_t)((b.end - b.begin) * sizeof(float))) % 16 == 0;
}

/* Calls f(i, m[i]) for every element of the block's range, each thread taking
 * four consecutive elements at a time where the range is aligned. */
template <typename F>
__device__ __forceinline__ void each_value(const float *m, const qblock &b, F f) {
    if (block_vectorised(m, b)) {
        for (int64_t i = b.begin + 4 * threadIdx.x; i < b.end; i += 4 * QTHREADS) {
            float v[4];
            load_w(v, m + i);
            for (int k = 0; k < 4; k++)
                f(i + k, v[k]);
        }
    } else {
        for (int64_t i = b.begin + threadIdx.x; i < b.end; i += QTHREADS)
            f(i, m[i]);
    }
}

/* Pass 1 of a block: Σ|c| and Σc of the clamped weights c, and whether a
 * weight lies beyond the clamp (mask_clamped skips the blocks where none
 * does: AdamW keeps them within). */
struct block_stats {
    double sa = 0, s = 0;
    bool out = false;
    __device__ void add(float x, float clamp) {
        float c = clampf(x, clamp);
        out |= fabsf(x) > clamp;
        sa += fabsf(c);
        s += c;
    }
    __device__ void write(double *partials, int *beyond) {
        out = __syncthreads_or(out);
        if (threadIdx.x == 0)
            beyond[blockIdx.x] = out;
        write_partial_pair(partials, sa, s);
    }
};

__global__ void stats_abs_sum(const float *w, const ob_gpu_matrix *mats, const qblock *blocks, float clamp,
                              double *partials, int *beyond) {
    qblock b = blocks[blockIdx.x];
    block_stats st;
    each_value(w + mats[b.matrix].offset, b, [&](int64_t, float x) { st.add(x, clamp); });
    st.write(partials, beyond);
}

/* AdamW over a statistics block's weights, summing block_stats of the
 * updated weights in stats_abs_sum's order; an f16 matrix's effective weights
 * (the weights in bf16, whatever the regime) are written too. */
__global__ void adamw_stats(float *w, bf16 *w_eff, const float *g, float *m, float *v, const ob_gpu_matrix *mats,
                            const qblock *blocks, adamw_consts c, double *partials, int *beyond) {
    qblock b = blocks[blockIdx.x];
    const ob_gpu_matrix mat = mats[b.matrix];
    float *wm = w + mat.offset, *mm = m + mat.offset, *vm = v + mat.offset;
    const float *gm = g + mat.offset;
    bf16 *eff = mat.mode == OB_MODE_F16 ? w_eff + mat.offset : NULL;
    float decay = mat.decay ? 1.0f - c.lr * c.weight_decay : 1.0f;
    block_stats st;
    if (block_vectorised(wm, b)) { /* g, m, v and w_eff lie at the same offsets of buffers as aligned */
        for (int64_t i = b.begin + 4 * threadIdx.x; i < b.end; i += 4 * QTHREADS) {
            float4 u = adamw_update4(wm, gm, mm, vm, i, decay, mat.clamp, c);
            st.add(u.x, c.clamp), st.add(u.y, c.clamp), st.add(u.z, c.clamp), st.add(u.w, c.clamp);
            if (eff) {
                float e[4] = {u.x, u.y, u.z, u.w};
                store_w(eff + i, e);
            }
        }
    } else {
        for (int64_t i = b.begin + threadIdx.x; i < b.end; i += QTHREADS) {
            adamw_update(wm[i], gm[i], mm[i], vm[i], decay, mat.clamp, c);
            st.add(wm[i], c.clamp);
            if (eff)
                eff[i] = __float2bfloat16(wm[i]);
        }
    }
    st.write(partials, beyond);
}

ob_status ob_gpu_wquant_adamw(ob_gpu_wquant *q, float *w, bf16 *w_eff, const float *g, float *m, float *v,
                              const ob_gpu_adamw_step *a, cudaStream_t s) {
    if (!q->num_blocks)
        return OB_OK;
    adamw_stats<<<q->num_blocks, QTHREADS, 0, s>>>(w, w_eff, g, m, v, q->mats_d, q->blocks_d, adamw_consts_of(a),
                                                   q->partials, q->beyond);
    OB_LAUNCH_CHECK();
    q->sums_ready = true;
    q->sums_clamp = a->clamp;
    q->f16_written = w_eff;
    return OB_OK;
}

void ob_gpu_wquant_forget(ob_gpu_wquant *q) {
    q->sums_ready = false;
    q->f16_written = NULL;
}

/* The scale of hard ternary/binary codes (1 for every other kind). */
__device__ __forceinline__ float hard_scale(const ob_gpu_matrix &m, const ob_gpu_qstats &st, bool dynamic,
                                            bool quantised) {
    if (!quantised || m.soft || (m.mode != OB_MODE_TERNARY && m.mode != OB_MODE_BINARY))
        return 1.0f;
    return m.mode == OB_MODE_TERNARY && dynamic ? st.alpha : st.beta;
}

/* α and 1/|M| from pass 3's sums (sa, cnt: 0 without the dynamic threshold),
 * then the products' scales. */
__device__ __forceinline__ void finish_scales(const ob_gpu_matrix &mat, ob_gpu_qstats &st, double sa, double cnt,
                                              bool dynamic, bool quantised, float residual) {
    st.alpha = cnt > 0 ? (float)(sa / cnt) : 0.0f;
    st.mask_inv = cnt > 0 ? (float)(1.0 / cnt) : 0.0f;
    float scale = hard_scale(mat, st, dynamic, quantised);
    if (mat.fold)
        scale = 1.0f; /* apply_quant multiplies the codes */
    st.scale = scale;
    st.scale_r = scale * residual;
}

/* Pass 2 (a block per matrix, its threads' sums added in a fixed order): β
 * and μ; without the dynamic threshold also the scales (no pass 3 to wait for). */
__global__ void stats_finish_beta(const ob_gpu_matrix *mats, const int *first, const double *partials,
                                  ob_gpu_qstats *stats, bool dynamic, bool quantised, float residual) {
    int i = blockIdx.x;
    double sa = 0, s = 0;
    for (int b = first[i] + threadIdx.x; b < first[i + 1]; b += QTHREADS) {
        sa += partials[2 * b];
        s += partials[2 * b + 1];
    }
    sa = block_sum_d(sa);
    s = block_sum_d(s);
    if (threadIdx.x != 0)
        return;
    double n = (double)mats[i].rows * mats[i].cols;
    double beta = sa / n;
    stats[i].beta = (float)(beta > 1e-8 ? beta : 1e-8);
    stats[i].mu = (float)(s / n);
    if (!dynamic)
        finish_scales(mats[i], stats[i], 0.0, 0.0, false, quantised, residual);
}

/* Pass 3: Σ|c| and the count over |c| > 0.7β (dynamic threshold). */
__global__ void stats_mask_sum(const float *w, const ob_gpu_matrix *mats, const qblock *blocks, float clamp,
                               const ob_gpu_qstats *stats, double *partials) {
    qblock b = blocks[blockIdx.x];
    const float *m = w + mats[b.matrix].offset;
    float delta = 0.7f * stats[b.matrix].beta;
    double sa = 0, cnt = 0;
    each_value(m, b, [&](int64_t, float x) {
        float a = fabsf(clampf(x, clamp));
        if (a > delta) {
            sa += a;
            cnt += 1;
        }
    });
    write_partial_pair(partials, sa, cnt);
}

/* After pass 3 (the dynamic threshold): α, 1/|M| and the scales. */
__global__ void stats_finish_alpha(const ob_gpu_matrix *mats, const int *first, const double *partials, int count,
                                   bool quantised, float residual, ob_gpu_qstats *stats) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count)
        return;
    double sa = 0, cnt = 0;
    for (int b = first[i]; b < first[i + 1]; b++) {
        sa += partials[2 * b];
        cnt += partials[2 * b + 1];
    }
    finish_scales(mats[i], stats[i], sa, cnt, true, quantised, residual);
}

/* Pass 4: effective weights (and the clamped latent weights for Arenas). Hard
 * ternary/binary write the codes (the scale is the GEMM's alpha, or multiplies
 * them where the matrix folds it); soft writes
 * σ·f(u); f16/full precision the latent value; 8/4-bit rows are left to
 * per_row_quant. */
__global__ void apply_quant(const float *w, const ob_gpu_matrix *mats, const qblock *blocks, const ob_gpu_qstats *stats,
                            bf16 *w_eff, bf16 *wc, bool dynamic, float clamp, float a, bool quantised,
                            bool f16_written) {
    qblock b = blocks[blockIdx.x];
    const ob_gpu_matrix mat = mats[b.matrix];
    if (f16_written && mat.mode == OB_MODE_F16 && !wc)
        return;
    const ob_gpu_qstats st = stats[b.matrix];
    const float *m = w + mat.offset;
    bf16 *out = w_eff + mat.offset;
    bool quant = quantised && mat.mode != OB_MODE_F16;
    bool rowwise = quant && (mat.mode == OB_MODE_EIGHTBIT || mat.mode == OB_MODE_FOURBIT);
    float delta = 0.7f * st.beta;
    float theta = dynamic ? 0.7f : 0.5f;
    float sigma = mat.mode == OB_MODE_BINARY ? st.beta : (dynamic ? st.alpha : st.beta);
    float fold = mat.fold ? hard_scale(mat, st, dynamic, quantised) : 1.0f;
    if (rowwise && !wc) /* per_row_quant writes these */
        return;
    auto value = [&](float x) {
        float c = clampf(x, clamp), v;
        if (!quant) {
            v = x;
        } else if (mat.soft) {
            if (mat.mode == OB_MODE_BINARY) {
                v = st.beta * tanhf(a * (c - st.mu) / st.beta);
            } else {
                float u = c / st.beta;
                v = sigma * 0.5f * (tanhf(a * (u - theta)) + tanhf(a * (u + theta)));
            }
        } else if (mat.mode == OB_MODE_BINARY) {
            v = c - st.mu >= 0.0f ? 1.0f : -1.0f;
        } else if (dynamic) {
            v = fabsf(c) > delta ? (c > 0.0f ? 1.0f : -1.0f) : 0.0f;
        } else {
            v = fminf(fmaxf(rintf(c / st.beta), -1.0f), 1.0f);
        }
        return v * fold;
    };
    bf16 *clamped = wc ? wc + mat.offset : NULL;
    bool stores8 = ((uintptr_t)(out + b.begin) | (clamped ? (uintptr_t)(clamped + b.begin) : 0)) % 8 == 0;
    if (block_vectorised(m, b) && stores8) {
        /* Four values a thread, stored 8 bytes at a time. */
#pragma unroll 4
        for (int64_t i = b.begin + 4 * threadIdx.x; i < b.end; i += 4 * QTHREADS) {
            float x[4], c[4], v[4];
            load_w(x, m + i);
            for (int k = 0; k < 4; k++) {
                c[k] = clampf(x[k], clamp);
                v[k] = value(x[k]);
            }
            if (clamped)
                store_w(clamped + i, c);
            if (!rowwise)
                store_w(out + i, v);
        }
        return;
    }
    each_value(m, b, [&](int64_t i, float x) {
        if (clamped)
            clamped[i] = __float2bfloat16(clampf(x, clamp));
        if (!rowwise)
            out[i] = __float2bfloat16(value(x));
    });
}

/* 8/4-bit: one warp per row; s_r = max|c|/qmax, value s_r·clamp(rint(c/s_r)). */
__global__ void per_row_quant(const float *w, const ob_gpu_matrix *mats, int count, bf16 *w_eff, float clamp,
                              bool quantised, int max_rows) {
    int warps = blockDim.x / 32;
    int row = blockIdx.x * warps + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    int mi = blockIdx.y;
    const ob_gpu_matrix mat = mats[mi];
    if (!quantised || row >= mat.rows || (mat.mode != OB_MODE_EIGHTBIT && mat.mode != OB_MODE_FOURBIT))
        return;
    float qmax = mat.mode == OB_MODE_EIGHTBIT ? 127.0f : 7.0f;
    const float *r = w + mat.offset + (int64_t)row * mat.cols;
    bf16 *o = w_eff + mat.offset + (int64_t)row * mat.cols;
    float mx = 0;
    for (int j = lane; j < mat.cols; j += 32)
        mx = fmaxf(mx, fabsf(clampf(r[j], clamp)));
    mx = warp_max(mx);
    float s = fmaxf(mx, 1e-8f) / qmax;
    for (int j = lane; j < mat.cols; j += 32) {
        float q = fminf(fmaxf(rintf(clampf(r[j], clamp) / s), -qmax), qmax);
        o[j] = __float2bfloat16(q * s);
    }
}

ob_status ob_gpu_wquant_run(ob_gpu_wquant *q, const float *w, bf16 *w_eff, bf16 *wc, ob_gpu_qstats *stats,
                            bool dynamic, float clamp, float sharpness, bool quantised, bool soft, float residual,
                            cudaStream_t s) {
    if (!q->count)
        return OB_OK;
    /* Which matrices are soft this step (binary/ternary in the soft regime). */
    bool changed = false;
    for (int i = 0; i < q->count; i++) {
        int m = q->mats_h[i].mode;
        int is_soft = quantised && soft && (m == OB_MODE_TERNARY || m == OB_MODE_BINARY);
        if (q->mats_h[i].soft != is_soft) {
            q->mats_h[i].soft = is_soft;
            changed = true;
        }
    }
    if (changed)
        OB_CUDA_TRY(cudaMemcpyAsync(q->mats_d, q->mats_h, (size_t)q->count * sizeof *q->mats_h,
                                    cudaMemcpyHostToDevice, s));
    if (!q->sums_ready || q->sums_clamp != clamp)
        stats_abs_sum<<<q->num_blocks, QTHREADS, 0, s>>>(w, q->mats_d, q->blocks_d, clamp, q->partials, q->beyond);
    stats_finish_beta<<<q->count, QTHREADS, 0, s>>>(q->mats_d, q->first_block_d, q->partials, stats, dynamic, quantised,
                                                    residual);
    q->sums_ready = !dynamic; /* the weights' until they change, unless the next pass overwrites them */
    q->sums_clamp = clamp;
    if (dynamic) { /* α and |M| serve the dynamic threshold only: a pass over every weight saved without it */
        stats_mask_sum<<<q->num_blocks, QTHREADS, 0, s>>>(w, q->mats_d, q->blocks_d, clamp, stats, q->partials);
        stats_finish_alpha<<<ob_blocks((size_t)q->count, 128), 128, 0, s>>>(q->mats_d, q->first_block_d, q->partials,
                                                                            q->count, quantised, residual, stats);
    }
    apply_quant<<<q->num_blocks, QTHREADS, 0, s>>>(w, q->mats_d, q->blocks_d, stats, w_eff, wc, dynamic, clamp,
                                                   sharpness, quantised, q->f16_written == w_eff);
    if (q->has_rowwise && quantised) {
        dim3 grid(ob_blocks((size_t)q->max_rows, 8), (unsigned)q->count);
        per_row_quant<<<grid, 256, 0, s>>>(w, q->mats_d, q->count, w_eff, clamp, quantised, q->max_rows);
    }
    OB_LAUNCH_CHECK();
    return OB_OK;
}

/* ---- soft-regime backward (one matrix) ---------------------------------------- */

__device__ __forceinline__ void soft_shape(bool binary, float theta, float beta, float mu, float a, float c, float *u,
                                           float *f, float *fp) {
    *u = (c - mu) / beta;
    if (binary) {
        float t = tanhf(a * *u);
        *f = t;
        *fp = a * (1.0f - t * t);
    } else {
        float t1 = tanhf(a * (*u - theta)), t2 = tanhf(a * (*u + theta));
        *f = 0.5f * (t1 + t2);
        *fp = 0.5f * a * ((1.0f - t1 * t1) + (1.0f - t2 * t2));
    }
}

/* Per block: Σ G f', Σ G (f − u f'), Σ G u f', Σ G f. */
__global__ void soft_sums(const float *w, const float *g, int64_t n, int64_t per_block, bool binary, float theta,
                          const ob_gpu_qstats *st, float clamp, float a, double *partials) {
    int64_t begin = (int64_t)blockIdx.x * per_block, end = begin + per_block < n ? begin + per_block : n;
    float beta = st->beta, mu = binary ? st->mu : 0.0f;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t i = begin + threadIdx.x; i < end; i += QTHREADS) {
        float u, f, fp;
        soft_shape(binary, theta, beta, mu, a, clampf(w[i], clamp), &u, &f, &fp);
        s0 += (double)g[i] * fp;
        s1 += (double)g[i] * (f - u * fp);
        s2 += (double)g[i] * u * fp;
        s3 += (double)g[i] * f;
    }
    s0 = block_sum_d(s0);
    s1 = block_sum_d(s1);
    s2 = block_sum_d(s2);
    s3 = block_sum_d(s3);
    if (threadIdx.x == 0) {
        partials[4 * blockIdx.x] = s0;
        partials[4 * blockIdx.x + 1] = s1;
        partials[4 * blockIdx.x + 2] = s2;
        partials[4 * blockIdx.x + 3] = s3;
    }
}

__global__ void soft_sums_finish(double *partials, int blocks) {
    if (threadIdx.x >= 4)
        return;
    double t = 0;
    for (int b = 0; b < blocks; b++)
        t += partials[4 * b + threadIdx.x];
    partials[4 * blocks + threadIdx.x] = t;
}

__global__ void soft_apply(const float *w, const float *g, float *dw, int64_t n, bool binary, bool dynamic,
                           float theta, const ob_gpu_qstats *st, float clamp, float a, const double *sums) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || fabsf(w[i]) > clamp)
        return;
    float beta = st->beta, mu = binary ? st->mu : 0.0f;
    float sigma = binary ? beta : (dynamic ? st->alpha : beta);
    float inv_n = (float)(1.0 / (double)n);
    float c = w[i], sg = c > 0.0f ? 1.0f : (c < 0.0f ? -1.0f : 0.0f);
    float u, f, fp, d;
    soft_shape(binary, theta, beta, mu, a, c, &u, &f, &fp);
    if (binary)
        d = g[i] * fp - inv_n * (float)sums[0] + sg * inv_n * (float)sums[1];
    else if (!dynamic)
        d = g[i] * fp + sg * inv_n * (float)sums[1];
    else {
        float ratio = sigma / beta;
        d = ratio * g[i] * fp - ratio * sg * inv_n * (float)sums[2] +
            (fabsf(c) > 0.7f * beta ? sg * st->mask_inv * (float)sums[3] : 0.0f);
    }
    dw[i] += d;
}

ob_status ob_gpu_soft_backward(ob_gpu_wquant *q, int index, const float *w, const float *g, float *dw,
                               const ob_gpu_qstats *stats, bool dynamic, float clamp, float sharpness,
                               cudaStream_t s) {
    const ob_gpu_matrix *m = &q->mats_h[index];
    int64_t n = (int64_t)m->rows * m->cols;
    int use = q->first_block_h[index + 1] - q->first_block_h[index];
    bool binary = m->mode == OB_MODE_BINARY;
    float theta = dynamic ? 0.7f : 0.5f;
    const float *wm = w + m->offset;
    soft_sums<<<use, QTHREADS, 0, s>>>(wm, g, n, QBLOCK_ELEMS, binary, theta, stats + index, clamp, sharpness,
                                       q->soft_partials);
    soft_sums_finish<<<1, 32, 0, s>>>(q->soft_partials, use);
    soft_apply<<<ob_blocks((size_t)n, 256), 256, 0, s>>>(wm, g, dw + m->offset, n, binary, dynamic && !binary, theta,
                                                         stats + index, clamp, sharpness, q->soft_partials + 4 * use);
    OB_LAUNCH_CHECK();
    return OB_OK;
}

__global__ void mask_clamped(const float *w, float *grads, const ob_gpu_matrix *mats, const qblock *blocks,
                             const int *beyond, float clamp) {
    qblock b = blocks[blockIdx.x];
    const ob_gpu_matrix mat = mats[b.matrix];
    if (mat.mode == OB_MODE_F16 || !beyond[blockIdx.x])
        return;
    each_value(w + mat.offset, b, [&](int64_t i, float x) {
        if (fabsf(x) > clamp)
            grads[mat.offset + i] = 0.0f;
    });
}

ob_status ob_gpu_mask_clamped(ob_gpu_wquant *q, const float *w, float *grads, float clamp, cudaStream_t s) {
    if (!q->num_blocks)
        return OB_OK;
    mask_clamped<<<q->num_blocks, QTHREADS, 0, s>>>(w, grads, q->mats_d, q->blocks_d, q->beyond, clamp);
    OB_LAUNCH_CHECK();
    return OB_OK;
}
