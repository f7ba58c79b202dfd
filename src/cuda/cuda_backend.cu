/* The CUDA backend: allocation of the model's buffers and activations on one
 * GPU, and the ob_backend operations (the pass itself is in cuda_pass.cu). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_state.cuh"

extern "C" bool ob_cuda_available(void) {
    int count = 0;
    return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

extern "C" ob_status ob_cuda_memory(int device, size_t *used, size_t *total) {
    size_t free_bytes = 0;
    *used = *total = 0;
    OB_CUDA_TRY(cudaSetDevice(device));
    OB_CUDA_TRY(cudaMemGetInfo(&free_bytes, total));
    *used = *total - free_bytes;
    return OB_OK;
}

/* Device allocations are recorded so that destroy can free them all. */
typedef struct {
    gpu_state st;
    void **allocs;
    int num_allocs, cap_allocs;
    size_t bytes;
} gpu_backend;

static ob_status dalloc(gpu_backend *g, void **ptr, size_t bytes) {
    *ptr = NULL;
    if (bytes == 0)
        bytes = 16;
    if (g->num_allocs == g->cap_allocs) {
        int cap = g->cap_allocs ? 2 * g->cap_allocs : 256;
        void **grown = (void **)realloc(g->allocs, (size_t)cap * sizeof *grown);
        if (!grown)
            return ob_error(OB_ERR_NOMEM, "cuda: out of host memory");
        g->allocs = grown;
        g->cap_allocs = cap;
    }
    cudaError_t e = cudaMalloc(ptr, bytes);
    if (e != cudaSuccess)
        return ob_error(OB_ERR_DEVICE, "cuda: cannot allocate %.1f MB on the GPU (%.1f MB allocated so far): %s",
                        (double)bytes / 1e6, (double)g->bytes / 1e6, cudaGetErrorString(e));
    g->allocs[g->num_allocs++] = *ptr;
    g->bytes += bytes;
    return OB_OK;
}

#define DALLOC(ptr, count) OB_STATUS_TRY(dalloc(g, (void **)&(ptr), (size_t)(count) * sizeof(*(ptr))))

static gpu_backend *impl(ob_backend *b) { return (gpu_backend *)b->impl; }

static ob_status allocate(gpu_backend *g) {
    gpu_state *st = &g->st;
    const ob_model *m = st->m;
    const ob_config *c = &m->cfg;
    size_t N = (size_t)st->B * st->T, H = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    int nh = c->num_heads, nkv = c->num_kv_heads, hd = ob_config_head_dim(c);
    size_t kvd = (size_t)nkv * hd, P = m->num_floats, qkv_ld = H + 2 * kvd, ffn_ld = c->use_swiglu ? 2 * F : F;
    st->qkv_ld = qkv_ld;
    st->ffn_ld = ffn_ld;
    DALLOC(st->params, P);
    DALLOC(st->grads, P);
    DALLOC(st->mom_m, P);
    DALLOC(st->mom_v, P);
    DALLOC(st->w_eff, P);
    if (c->has_arenas)
        DALLOC(st->wc, P);
    st->layers = (gpu_layer *)calloc((size_t)c->num_layers, sizeof *st->layers);
    if (!st->layers)
        return ob_error(OB_ERR_NOMEM, "cuda: out of host memory");
    for (int l = 0; l < c->num_layers; l++) {
        gpu_layer *a = &st->layers[l];
        DALLOC(a->x, N * H);
        DALLOC(a->a, N * H);
        DALLOC(a->mean1, N);
        DALLOC(a->rstd1, N);
        DALLOC(a->mean2, N);
        DALLOC(a->rstd2, N);
        DALLOC(a->x1q, N * H);
        DALLOC(a->x2q, N * H);
        a->n1 = a->x1q;
        a->n2 = a->x2q;
        if (c->has_arenas) {
            DALLOC(a->n1, N * H);
            DALLOC(a->n2, N * H);
        }
        DALLOC(a->qkv, N * qkv_ld);
        DALLOC(a->rq, N * nh);
        DALLOC(a->rk, N * nkv);
        DALLOC(a->q, N * H);
        DALLOC(a->k, N * kvd);
        a->v = a->qkv + H + kvd;
        DALLOC(a->lse, N * nh);
        DALLOC(a->o, N * H);
        DALLOC(a->g, N * ffn_ld); /* the FFN products' output: [N, gate|up], or [N, up] */
        a->u = a->g + (ffn_ld - F);
        DALLOC(a->h, N * F);
    }
    DALLOC(st->xf, N * H);
    DALLOC(st->branch, N * H);
    DALLOC(st->meanf, N);
    DALLOC(st->rstdf, N);
    DALLOC(st->nf, N * H);
    DALLOC(st->nfq, N * H);
    DALLOC(st->dres, N * H);
    DALLOC(st->dtmp, N * H);
    DALLOC(st->dn, N * H);
    DALLOC(st->dqkv, N * qkv_ld);
    DALLOC(st->dq, N * H);
    DALLOC(st->dk, N * kvd);
    st->dv = st->dqkv + H + kvd;
    DALLOC(st->df1, N * F);
    DALLOC(st->df3, N * ffn_ld); /* dgate|dup, as a->g|a->u */
    st->df2 = st->df3 + (ffn_ld - F);
    DALLOC(st->oq, N * H);
    DALLOC(st->hq, N * F);
    DALLOC(st->delta, N * nh);
    size_t largest = 0;
    for (int i = 0; i < m->num_params; i++) {
        const ob_param *p = &m->params[i];
        if ((p->mode == OB_MODE_TERNARY || p->mode == OB_MODE_BINARY) && p->numel > largest)
            largest = p->numel;
    }
    DALLOC(st->scratch, largest);
    /* Logits in equal chunks of rows of at most 1 GiB: large enough for the
     * head's products to fill the GPU. Rows are padded to 16 bytes for the
     * cross-entropy's vector loads; its gradient overwrites them in place. */
    st->logits_ld = ((size_t)V + 3) / 4 * 4;
    size_t chunks = (N * st->logits_ld + (1u << 28) - 1) / (1u << 28);
    st->chunk = (int)((N + chunks - 1) / chunks);
    DALLOC(st->logits, (size_t)st->chunk * st->logits_ld);
    DALLOC(st->row_loss, N);
    DALLOC(st->row_plain, N);
    size_t partial_floats = ob_gpu_norm_partials((int)N, (int)H); /* every norm is H wide */
    size_t qk_floats = ob_gpu_qk_partials((int)(N * nh), hd);
    st->partial_floats = qk_floats > partial_floats ? qk_floats : partial_floats;
    DALLOC(st->partials, PARTIAL_SLOTS * st->partial_floats);
    DALLOC(st->sum_partials, OB_GPU_SUM_BLOCKS);
    DALLOC(st->sums, 2);
    size_t half = (size_t)st->T * (hd / 2 + 1);
    DALLOC(st->rope_cos, half);
    DALLOC(st->rope_sin, half);
    DALLOC(st->tokens, 5 * N + 1);
    st->targets = st->tokens + N, st->emb_order = st->tokens + 2 * N;
    st->emb_ids = st->tokens + 3 * N, st->emb_starts = st->tokens + 4 * N;
    if (cudaMallocHost((void **)&st->host_upload, (5 * N + 1) * sizeof(int32_t)) != cudaSuccess)
        return ob_error(OB_ERR_NOMEM, "cuda: out of pinned host memory (%zu bytes)", (5 * N + 1) * sizeof(int32_t));
    st->host_order = st->host_upload + 2 * N, st->host_ids = st->host_upload + 3 * N;
    st->host_starts = st->host_upload + 4 * N;
    st->host_count = (int32_t *)malloc(V * sizeof(int32_t));
    if (!st->host_count)
        return ob_error(OB_ERR_NOMEM, "cuda: out of host memory");
    return OB_OK;
}

static ob_status prepare_tables(gpu_backend *g) {
    gpu_state *st = &g->st;
    const ob_model *m = st->m;
    const ob_config *c = &m->cfg;
    /* Quantiser matrices: every 2-D parameter except the learned positions. */
    st->matrix_of = (int *)malloc((size_t)m->num_params * sizeof(int));
    ob_gpu_matrix *mats = (ob_gpu_matrix *)calloc((size_t)m->num_params, sizeof *mats);
    ob_gpu_param_seg *segs = (ob_gpu_param_seg *)calloc((size_t)m->num_params, sizeof *segs);
    if (!st->matrix_of || !mats || !segs) {
        free(mats);
        free(segs);
        return ob_error(OB_ERR_NOMEM, "cuda: out of host memory");
    }
    /* AdamW: the matrices through the quantiser (ob_gpu_wquant_adamw), the
     * other parameters as segments. */
    int count = 0, num_segs = 0;
    for (int i = 0; i < m->num_params; i++) {
        const ob_param *p = &m->params[i];
        st->matrix_of[i] = -1;
        if (p->cols == 0 || p->kind == OB_PARAM_POSITIONS) {
            ob_gpu_param_seg seg = {(int64_t)p->offset, (int64_t)p->numel, 0, p->decay, p->clamp};
            segs[num_segs++] = seg;
            continue;
        }
        mats[count].offset = (int64_t)p->offset;
        mats[count].rows = p->rows;
        mats[count].cols = p->cols;
        mats[count].mode = p->mode;
        mats[count].decay = p->decay;
        mats[count].clamp = p->clamp;
        st->matrix_of[i] = count++;
    }
    st->num_segs = num_segs;
    st->segs_packed = ob_gpu_param_segs_pack(segs, num_segs);
    /* Q, K, V, gate and up carry their scale in the effective weights, so that
     * one product (alpha 1) serves Q, K and V, and one gate and up
     * (cuda_pass.cu, fused_rows). */
    const int folded[] = {OB_PROJ_Q, OB_PROJ_K, OB_PROJ_V, OB_PROJ_GATE, OB_PROJ_UP};
    for (int l = 0; l < m->cfg.num_layers; l++)
        for (int j = 0; j < (int)(sizeof folded / sizeof *folded); j++)
            if (m->layers[l].proj[folded[j]] >= 0)
                mats[st->matrix_of[m->layers[l].proj[folded[j]]]].fold = 1;
    ob_status s = ob_gpu_wquant_create(mats, count, &st->wq);
    free(mats);
    if (s == OB_OK)
        s = dalloc(g, (void **)&st->stats, (size_t)(count ? count : 1) * sizeof(ob_gpu_qstats));
    if (s == OB_OK)
        s = dalloc(g, (void **)&st->segs, (size_t)(num_segs ? num_segs : 1) * sizeof *segs);
    if (s == OB_OK && cudaMemcpy(st->segs, segs, (size_t)num_segs * sizeof *segs, cudaMemcpyHostToDevice) !=
                          cudaSuccess)
        s = ob_error(OB_ERR_DEVICE, "cuda: upload of the parameter table failed");
    free(segs);
    if (s || !c->use_rope)
        return s;
    int hd = ob_config_head_dim(c), half = hd / 2;
    float *cs = (float *)malloc((size_t)st->T * half * sizeof(float) * 2);
    if (!cs)
        return ob_error(OB_ERR_NOMEM, "cuda: out of host memory");
    float *sn = cs + (size_t)st->T * half;
    for (int t = 0; t < st->T; t++)
        for (int j = 0; j < half; j++) {
            double phi = (double)t * pow(c->rope_theta, -2.0 * j / hd);
            cs[(size_t)t * half + j] = (float)cos(phi);
            sn[(size_t)t * half + j] = (float)sin(phi);
        }
    cudaError_t e = cudaMemcpy(st->rope_cos, cs, (size_t)st->T * half * sizeof(float), cudaMemcpyHostToDevice);
    if (e == cudaSuccess)
        e = cudaMemcpy(st->rope_sin, sn, (size_t)st->T * half * sizeof(float), cudaMemcpyHostToDevice);
    free(cs);
    if (e != cudaSuccess)
        return ob_error(OB_ERR_DEVICE, "cuda: %s", cudaGetErrorString(e));
    return OB_OK;
}

static ob_status dist_setup(gpu_backend *g, const ob_dist *dist) {
    gpu_state *st = &g->st;
    int L = st->m->cfg.num_layers;
    size_t largest = st->layer_begin[0] > st->m->num_floats - st->layer_end[L - 1]
                         ? st->layer_begin[0]
                         : st->m->num_floats - st->layer_end[L - 1];
    for (int l = 0; l < L; l++)
        if (st->layer_end[l] - st->layer_begin[l] > largest)
            largest = st->layer_end[l] - st->layer_begin[l];
    st->max_shard = (largest + dist->world - 1) / dist->world;
    size_t bytes = (size_t)dist->world * st->max_shard * sizeof(float);
    OB_STATUS_TRY(dalloc(g, (void **)&st->values, 8 * sizeof(double)));
    OB_STATUS_TRY(dalloc(g, (void **)&st->reduce_recv, bytes));
    OB_STATUS_TRY(dalloc(g, (void **)&st->reduce_gather, bytes));
    return ob_gpu_dist_init(st, dist);
}

static size_t param_bytes(ob_backend *b) { return b->model->num_floats * sizeof(float); }

static ob_status gpu_copy(ob_backend *b, void *dst, const void *src, cudaMemcpyKind kind) {
    OB_CUDA_TRY(cudaSetDevice(impl(b)->st.device));
    OB_CUDA_TRY(cudaMemcpy(dst, src, param_bytes(b), kind));
    return OB_OK;
}

static ob_status gpu_upload(ob_backend *b, const float *params) {
    ob_gpu_wquant_forget(impl(b)->st.wq);
    return gpu_copy(b, impl(b)->st.params, params, cudaMemcpyHostToDevice);
}

static ob_status gpu_download(ob_backend *b, float *params) {
    return gpu_copy(b, params, impl(b)->st.params, cudaMemcpyDeviceToHost);
}

/* On the weight gradients' stream, after what the main stream has queued (the
 * optimizer step reads the gradients), so that it runs beside the next forward
 * pass; the pass waits for grads_zeroed before its backward. */
static ob_status gpu_zero_grad(ob_backend *b) {
    gpu_state *st = &impl(b)->st;
    OB_CUDA_TRY(cudaSetDevice(st->device));
    if (st->wg_stream != st->stream) {
        OB_CUDA_TRY(cudaEventRecord(st->wg_ready, st->stream));
        OB_CUDA_TRY(cudaStreamWaitEvent(st->wg_stream, st->wg_ready, 0));
    }
    OB_CUDA_TRY(cudaMemsetAsync(st->grads, 0, param_bytes(b), st->wg_stream));
    if (st->wg_stream != st->stream)
        OB_CUDA_TRY(cudaEventRecord(st->grads_zeroed, st->wg_stream));
    st->grads_fresh = true;
    return OB_OK;
}

static ob_status gpu_train_batch(ob_backend *b, const int32_t *inputs, const int32_t *targets, int B, int T,
                                 const ob_step_info *step, float grad_scale, double *loss) {
    gpu_backend *g = impl(b);
    gpu_state *st = &g->st;
    bool reduce = st->comm && b->reduce_in_backward;
    if (st->grads_fresh) {
        st->grads_fresh = false;
        st->reduce = reduce; /* overlapped with this backward pass */
        return ob_gpu_pass(st, inputs, targets, B, T, step, true, grad_scale, loss, NULL, NULL);
    }
    OB_CUDA_TRY(cudaSetDevice(st->device));
    if (!st->grads_micro) {
        OB_STATUS_TRY(dalloc(g, (void **)&st->grads_micro, param_bytes(b)));
        b->device_bytes += param_bytes(b);
    }
    OB_CUDA_TRY(cudaMemsetAsync(st->grads_micro, 0, param_bytes(b), st->stream));
    float *total = st->grads;
    st->grads = st->grads_micro;
    st->reduce = false;
    ob_status s = ob_gpu_pass(st, inputs, targets, B, T, step, true, grad_scale, loss, NULL, NULL);
    st->grads = total;
    OB_STATUS_TRY(s);
    OB_STATUS_TRY(ob_gpu_add(st->grads, st->grads_micro, b->model->num_floats, st->stream));
    if (!reduce)
        return OB_OK;
    int L = b->model->cfg.num_layers;
    OB_STATUS_TRY(ob_gpu_reduce_range(st, 0, st->layer_begin[0]));
    for (int l = 0; l < L; l++)
        OB_STATUS_TRY(ob_gpu_reduce_range(st, st->layer_begin[l], st->layer_end[l]));
    return ob_gpu_reduce_range(st, st->layer_end[L - 1], b->model->num_floats);
}

static ob_status gpu_sync_step(ob_backend *b, double *values, int count) {
    gpu_state *st = &impl(b)->st;
    OB_CUDA_TRY(cudaSetDevice(st->device));
    if (count > 8)
        return ob_error(OB_ERR_INVALID_ARG, "sync_step: at most 8 values");
    OB_STATUS_TRY(ob_gpu_reduce_wait(st));
    return ob_gpu_sum_values(st, values, count);
}

static ob_status gpu_eval_batch(ob_backend *b, const int32_t *inputs, const int32_t *targets, int B, int T,
                                const ob_step_info *step, double *loss, float *logits) {
    ob_step_info eval = ob_step_info_eval();
    double smoothed;
    return ob_gpu_pass(&impl(b)->st, inputs, targets, B, T, step ? step : &eval, false, 1.0f, &smoothed, loss,
                       logits);
}

static ob_status gpu_grad_norm(ob_backend *b, double *norm) {
    gpu_state *st = &impl(b)->st;
    OB_CUDA_TRY(cudaSetDevice(st->device));
    OB_STATUS_TRY(ob_gpu_sum(st->sums, st->grads, b->model->num_floats, st->sum_partials, true, st->stream));
    double sq;
    OB_CUDA_TRY(cudaMemcpyAsync(&sq, st->sums, sizeof sq, cudaMemcpyDeviceToHost, st->stream));
    OB_CUDA_TRY(cudaStreamSynchronize(st->stream));
    *norm = sqrt(sq);
    return OB_OK;
}

static ob_status gpu_adamw(ob_backend *b, const ob_adamw *o) {
    gpu_state *st = &impl(b)->st;
    OB_CUDA_TRY(cudaSetDevice(st->device));
    ob_gpu_profile_mark(&st->prof, st->stream, "adamw");
    float clamp = (float)b->model->cfg.latent_clamp_max;
    ob_gpu_adamw_step a = {o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, o->grad_scale, clamp, o->step};
    OB_STATUS_TRY(ob_gpu_wquant_adamw(st->wq, st->params, st->w_eff, st->grads, st->mom_m, st->mom_v, &a, st->stream));
    return ob_gpu_adamw(st->params, st->grads, st->mom_m, st->mom_v, st->segs, st->num_segs, st->segs_packed, &a,
                        st->stream);
}

static ob_status gpu_get_grads(ob_backend *b, float *grads) {
    return gpu_copy(b, grads, impl(b)->st.grads, cudaMemcpyDeviceToHost);
}

static ob_status gpu_get_moments(ob_backend *b, float *m, float *v) {
    OB_STATUS_TRY(gpu_copy(b, m, impl(b)->st.mom_m, cudaMemcpyDeviceToHost));
    return gpu_copy(b, v, impl(b)->st.mom_v, cudaMemcpyDeviceToHost);
}

static ob_status gpu_set_moments(ob_backend *b, const float *m, const float *v) {
    OB_STATUS_TRY(gpu_copy(b, impl(b)->st.mom_m, m, cudaMemcpyHostToDevice));
    return gpu_copy(b, impl(b)->st.mom_v, v, cudaMemcpyHostToDevice);
}

/* The main stream, and the weight gradients' stream at a lower priority, so
 * that the blocks of the critical path are scheduled first where both wait. */
static ob_status create_streams(gpu_state *st) {
    int least, greatest;
    OB_CUDA_TRY(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    OB_CUDA_TRY(cudaStreamCreateWithPriority(&st->stream, cudaStreamDefault, greatest));
    OB_STATUS_TRY(ob_gemm_create(st->stream, &st->gemm));
    const char *env = getenv("ONEBIT_CUDA_WG_STREAM"); /* "0": on the main stream, for comparisons */
    if (st->prof.on || (env && strcmp(env, "0") == 0)) { /* the profile times one stream */
        st->wg_stream = st->stream;
        st->wg_gemm = st->gemm;
        return OB_OK;
    }
    OB_CUDA_TRY(cudaStreamCreateWithPriority(&st->wg_stream, cudaStreamDefault, least));
    OB_STATUS_TRY(ob_gemm_create(st->wg_stream, &st->wg_gemm));
    OB_CUDA_TRY(cudaEventCreateWithFlags(&st->wg_ready, cudaEventDisableTiming));
    OB_CUDA_TRY(cudaEventCreateWithFlags(&st->grads_zeroed, cudaEventDisableTiming));
    for (int i = 0; i < WG_EVENTS; i++)
        OB_CUDA_TRY(cudaEventCreateWithFlags(&st->wg_done[i], cudaEventDisableTiming));
    for (int i = 0; i < PARTIAL_SLOTS; i++)
        OB_CUDA_TRY(cudaEventCreateWithFlags(&st->partials_free[i], cudaEventDisableTiming));
    return OB_OK;
}

static void destroy_streams(gpu_state *st) {
    if (st->wg_gemm != st->gemm)
        ob_gemm_free(st->wg_gemm);
    ob_gemm_free(st->gemm);
    if (st->wg_stream && st->wg_stream != st->stream)
        cudaStreamDestroy(st->wg_stream);
    if (st->stream)
        cudaStreamDestroy(st->stream);
    if (st->wg_ready)
        cudaEventDestroy(st->wg_ready);
    if (st->grads_zeroed)
        cudaEventDestroy(st->grads_zeroed);
    for (int i = 0; i < WG_EVENTS; i++)
        if (st->wg_done[i])
            cudaEventDestroy(st->wg_done[i]);
    for (int i = 0; i < PARTIAL_SLOTS; i++)
        if (st->partials_free[i])
            cudaEventDestroy(st->partials_free[i]);
}

static void gpu_destroy(ob_backend *b) {
    gpu_backend *g = impl(b);
    if (g) {
        gpu_state *st = &g->st;
        cudaSetDevice(st->device);
        if (st->stream)
            cudaStreamSynchronize(st->stream);
        ob_gpu_profile_report(&st->prof, "cuda profile", NULL);
        ob_graph_free(&st->graph);
        for (int i = 0; i < g->num_allocs; i++)
            cudaFree(g->allocs[i]);
        free(g->allocs);
        ob_gpu_dist_free(st);
        ob_gpu_wquant_free(st->wq);
        free(st->layer_begin);
        free(st->layer_end);
        destroy_streams(st);
        free(st->layers);
        free(st->matrix_of);
        if (st->host_upload)
            cudaFreeHost(st->host_upload);
        free(st->host_count);
        free(g);
    }
    free(b);
}

static const ob_backend_ops gpu_ops = {
    gpu_upload,    gpu_download,    gpu_zero_grad,   gpu_train_batch, gpu_eval_batch, gpu_grad_norm, gpu_adamw,
    gpu_get_grads, gpu_get_moments, gpu_set_moments, gpu_sync_step,   gpu_destroy,
};

/* Gradient ranges of each layer, for reductions as the backward pass goes. */
static ob_status layer_ranges(gpu_backend *g) {
    gpu_state *st = &g->st;
    const ob_model *m = st->m;
    int L = m->cfg.num_layers;
    st->layer_begin = (size_t *)calloc((size_t)L, sizeof(size_t));
    st->layer_end = (size_t *)calloc((size_t)L, sizeof(size_t));
    if (!st->layer_begin || !st->layer_end)
        return ob_error(OB_ERR_NOMEM, "cuda: out of host memory");
    for (int l = 0; l < L; l++)
        st->layer_begin[l] = m->num_floats;
    for (int i = 0; i < m->num_params; i++) {
        const ob_param *p = &m->params[i];
        if (p->layer < 0)
            continue;
        if (p->offset < st->layer_begin[p->layer])
            st->layer_begin[p->layer] = p->offset;
        if (p->offset + p->numel > st->layer_end[p->layer])
            st->layer_end[p->layer] = p->offset + p->numel;
    }
    /* Layers are contiguous; the gaps between tensors (alignment) go with the layer before. */
    for (int l = 0; l + 1 < L; l++)
        st->layer_end[l] = st->layer_begin[l + 1];
    return OB_OK;
}

extern "C" ob_status ob_cuda_backend_create(int device, const ob_model *m, int max_batch, int max_seq,
                                            const ob_dist *dist, ob_backend **out) {
    *out = NULL;
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
        return ob_error(OB_ERR_DEVICE, "device 'cuda:%d': no CUDA GPU is visible", device);
    if (device >= count)
        return ob_error(OB_ERR_DEVICE, "device 'cuda:%d': only %d GPU(s) are visible", device, count);
    if (max_seq > m->cfg.max_seq_len || max_batch < 1 || max_seq < 1)
        return ob_error(OB_ERR_INVALID_ARG, "cuda backend: batch %d x %d does not fit max_seq_len %d", max_batch,
                        max_seq, m->cfg.max_seq_len);
    ob_backend *b = (ob_backend *)calloc(1, sizeof *b);
    gpu_backend *g = (gpu_backend *)calloc(1, sizeof *g);
    if (!b || !g) {
        free(b);
        free(g);
        return ob_error(OB_ERR_NOMEM, "cuda: out of host memory");
    }
    b->ops = &gpu_ops;
    b->model = m;
    b->max_batch = max_batch;
    b->max_seq = max_seq;
    snprintf(b->device, sizeof b->device, "cuda:%d", device);
    b->impl = g;
    gpu_state *st = &g->st;
    st->m = m;
    st->device = device;
    st->B = max_batch;
    st->T = max_seq;
    ob_gpu_profile_init(&st->prof);
    const char *graphs = getenv("ONEBIT_CUDA_GRAPH"); /* "0": passes run without graphs, for comparisons */
    st->graph.off = st->prof.on || (graphs && strcmp(graphs, "0") == 0); /* the profile times each kernel */
    ob_status s = OB_OK;
    if (cudaSetDevice(device) != cudaSuccess)
        s = ob_error(OB_ERR_DEVICE, "device 'cuda:%d': cannot be selected", device);
    if (s == OB_OK)
        s = create_streams(st);
    if (s == OB_OK)
        s = allocate(g);
    if (s == OB_OK)
        s = prepare_tables(g);
    if (s == OB_OK)
        s = layer_ranges(g);
    if (s == OB_OK && dist && dist->world > 1) {
        s = dist_setup(g, dist);
        b->rank = dist->rank;
        b->world = dist->world;
    } else {
        b->world = 1;
    }
    if (s == OB_OK && cudaMemcpy(st->params, m->weights, param_bytes(b), cudaMemcpyHostToDevice) != cudaSuccess)
        s = ob_error(OB_ERR_DEVICE, "cuda: upload of the parameters failed");
    if (s == OB_OK && (cudaMemset(st->grads, 0, param_bytes(b)) != cudaSuccess ||
                       cudaMemset(st->mom_m, 0, param_bytes(b)) != cudaSuccess ||
                       cudaMemset(st->mom_v, 0, param_bytes(b)) != cudaSuccess))
        s = ob_error(OB_ERR_DEVICE, "cuda: cannot clear the optimizer state");
    if (s) {
        gpu_destroy(b);
        return s;
    }
    b->device_bytes = g->bytes + ob_gemm_workspace_bytes() * (st->wg_gemm != st->gemm ? 2 : 1);
    ob_log(OB_LOG_DEBUG, "cuda:%d: %.1f MB allocated for batch %d x %d", device, (double)g->bytes / 1e6, max_batch,
           max_seq);
    *out = b;
    return OB_OK;
}
