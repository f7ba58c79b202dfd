/* Data-parallel gradient reduction through NCCL. Each layer's gradients are
 * summed over all processes as soon as the backward pass has finished that
 * layer, on a second stream, so communication overlaps the rest of the
 * backward pass. The sum is taken in rank order (an all-to-all of shards, an
 * ordered sum of each shard, an all-gather), never in the order a collective
 * happens to use: N processes then compute exactly what one process computes
 * with N accumulation steps, and every run repeats bit for bit. */
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_state.cuh"

#ifdef ONEBIT_HAVE_NCCL
#include <nccl.h>

#define NCCL_TRY(call)                                                                                 \
    do {                                                                                               \
        ncclResult_t r_ = (call);                                                                      \
        if (r_ != ncclSuccess)                                                                         \
            return ob_error(OB_ERR_DEVICE, "NCCL error at %s:%d: %s", __FILE__, __LINE__,             \
                            ncclGetErrorString(r_));                                                   \
    } while (0)

ob_status ob_gpu_dist_init(gpu_state *st, const ob_dist *dist) {
    ncclUniqueId id;
    if (dist->rank == 0)
        NCCL_TRY(ncclGetUniqueId(&id));
    OB_STATUS_TRY(ob_dist_exchange(dist, &id, sizeof id, 300.0));
    ncclComm_t comm;
    NCCL_TRY(ncclCommInitRank(&comm, dist->world, id, dist->rank));
    st->comm = comm;
    st->world = dist->world;
    st->rank = dist->rank;
    OB_CUDA_TRY(cudaStreamCreateWithFlags(&st->comm_stream, cudaStreamNonBlocking));
    OB_CUDA_TRY(cudaEventCreateWithFlags(&st->ready, cudaEventDisableTiming));
    OB_CUDA_TRY(cudaEventCreateWithFlags(&st->reduced, cudaEventDisableTiming));
    return OB_OK;
}

void ob_gpu_dist_free(gpu_state *st) {
    if (!st->comm)
        return;
    ncclCommDestroy((ncclComm_t)st->comm);
    cudaStreamDestroy(st->comm_stream);
    cudaEventDestroy(st->ready);
    cudaEventDestroy(st->reduced);
    st->comm = NULL;
}

/* out[i] = Σ_p parts[p][i] for p = 0, 1, ... in order. */
__global__ void ordered_sum(float *out, const float *parts, size_t stride, int world, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    float acc = parts[i];
    for (int p = 1; p < world; p++)
        acc += parts[(size_t)p * stride + i];
    out[i] = acc;
}

ob_status ob_gpu_reduce_range(gpu_state *st, size_t begin, size_t end) {
    if (!st->comm || end <= begin)
        return OB_OK;
    ncclComm_t comm = (ncclComm_t)st->comm;
    int world = st->world, rank = st->rank;
    size_t n = end - begin, shard = (n + world - 1) / world;
    if (shard > st->max_shard)
        return ob_error(OB_ERR_DEVICE, "gradient range of %zu floats exceeds the reduction buffers", n);
    OB_CUDA_TRY(cudaEventRecord(st->ready, st->stream));
    OB_CUDA_TRY(cudaStreamWaitEvent(st->comm_stream, st->ready, 0));
    /* recv[p] = shard `rank` of process p's gradients. */
    size_t mine = rank * shard >= n ? 0 : (n - rank * shard < shard ? n - rank * shard : shard);
    NCCL_TRY(ncclGroupStart());
    for (int p = 0; p < world; p++) {
        size_t off = (size_t)p * shard, len = off >= n ? 0 : (n - off < shard ? n - off : shard);
        if (p == rank) {
            OB_CUDA_TRY(cudaMemcpyAsync(st->reduce_recv + (size_t)p * st->max_shard, st->grads + begin + off,
                                        len * sizeof(float), cudaMemcpyDeviceToDevice, st->comm_stream));
            continue;
        }
        if (len)
            NCCL_TRY(ncclSend(st->grads + begin + off, len, ncclFloat, p, comm, st->comm_stream));
        if (mine)
            NCCL_TRY(ncclRecv(st->reduce_recv + (size_t)p * st->max_shard, mine, ncclFloat, p, comm, st->comm_stream));
    }
    NCCL_TRY(ncclGroupEnd());
    if (mine)
        ordered_sum<<<ob_blocks(mine, 256), 256, 0, st->comm_stream>>>(st->reduce_gather + (size_t)rank * shard,
                                                                        st->reduce_recv, st->max_shard, world, mine);
    OB_LAUNCH_CHECK();
    NCCL_TRY(ncclAllGather(st->reduce_gather + (size_t)rank * shard, st->reduce_gather, shard, ncclFloat, comm,
                           st->comm_stream));
    OB_CUDA_TRY(cudaMemcpyAsync(st->grads + begin, st->reduce_gather, n * sizeof(float), cudaMemcpyDeviceToDevice,
                                st->comm_stream));
    return OB_OK;
}

ob_status ob_gpu_reduce_wait(gpu_state *st) {
    if (!st->comm)
        return OB_OK;
    OB_CUDA_TRY(cudaEventRecord(st->reduced, st->comm_stream));
    OB_CUDA_TRY(cudaStreamWaitEvent(st->stream, st->reduced, 0));
    return OB_OK;
}

ob_status ob_gpu_sum_values(gpu_state *st, double *values, int count) {
    if (!st->comm)
        return OB_OK;
    OB_CUDA_TRY(cudaMemcpyAsync(st->values, values, (size_t)count * sizeof(double), cudaMemcpyHostToDevice,
                                st->stream));
    OB_STATUS_TRY(ob_gpu_reduce_wait(st));
    NCCL_TRY(ncclAllReduce(st->values, st->values, (size_t)count, ncclDouble, ncclSum, (ncclComm_t)st->comm,
                           st->stream));
    OB_CUDA_TRY(cudaMemcpyAsync(values, st->values, (size_t)count * sizeof(double), cudaMemcpyDeviceToHost,
                                st->stream));
    OB_CUDA_TRY(cudaStreamSynchronize(st->stream));
    return OB_OK;
}

#else

ob_status ob_gpu_dist_init(gpu_state *st, const ob_dist *dist) {
    (void)st;
    return ob_error(OB_ERR_UNSUPPORTED, "data-parallel training over %d GPUs needs NCCL, which this build lacks",
                    dist->world);
}
void ob_gpu_dist_free(gpu_state *st) { (void)st; }
ob_status ob_gpu_reduce_range(gpu_state *st, size_t begin, size_t end) {
    (void)st, (void)begin, (void)end;
    return OB_OK;
}
ob_status ob_gpu_reduce_wait(gpu_state *st) {
    (void)st;
    return OB_OK;
}
ob_status ob_gpu_sum_values(gpu_state *st, double *values, int count) {
    (void)st, (void)values, (void)count;
    return OB_OK;
}

#endif
