/* The CUDA backend (GPU training). Device discovery lives here; the training
 * kernels arrive with the GPU training issue. */
#include <cuda_runtime.h>

extern "C" {
#include "onebit/backend.h"
}

extern "C" bool ob_cuda_available(void) {
    int count = 0;
    return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

extern "C" ob_status ob_cuda_backend_create(int device, const ob_model *m, int max_batch, int max_seq,
                                            ob_backend **out) {
    (void)m, (void)max_batch, (void)max_seq;
    *out = NULL;
    if (!ob_cuda_available())
        return ob_error(OB_ERR_DEVICE, "device 'cuda:%d': no CUDA GPU is visible", device);
    return ob_error(OB_ERR_UNSUPPORTED, "device 'cuda:%d': the CUDA training backend is not implemented yet", device);
}
