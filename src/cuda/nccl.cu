/* Data-parallel gradient reduction through NCCL. Each layer's gradients are
 * summed over all processes as soon as the backward pass has finished that
 * layer, on a second stream, so communication overlaps the rest of the
 * backward pass. Every process issues the same reductions in the same order. */
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

ob_status ob_gpu_reduce_range(gpu_state *st, size_t begin, size_t end) {
    if (!st->comm || end <= begin)
        return OB_OK;
    OB_CUDA_TRY(cudaEventRecord(st->ready, st->stream));
    OB_CUDA_TRY(cudaStreamWaitEvent(st->comm_stream, st->ready, 0));
    NCCL_TRY(ncclAllReduce(st->grads + begin, st->grads + begin, end - begin, ncclFloat, ncclSum,
                           (ncclComm_t)st->comm, st->comm_stream));
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
