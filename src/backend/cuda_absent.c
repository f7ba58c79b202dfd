/* Stand-ins used when libonebit is built without CUDA. */
#ifndef ONEBIT_HAVE_CUDA
#include "onebit/backend.h"

bool ob_cuda_available(void) { return false; }

ob_status ob_cuda_memory(int device, size_t *used, size_t *total) {
    (void)device;
    *used = *total = 0;
    return ob_error(OB_ERR_UNSUPPORTED, "this build of onebit has no CUDA backend");
}

ob_status ob_cuda_backend_create(int device, const ob_model *m, int max_batch, int max_seq, const ob_dist *dist,
                                 ob_backend **out) {
    (void)device, (void)m, (void)max_batch, (void)max_seq, (void)dist;
    *out = NULL;
    return ob_error(OB_ERR_UNSUPPORTED, "device 'cuda': this build of onebit has no CUDA backend "
                                        "(configure with -DONEBIT_CUDA=ON on a machine with nvcc)");
}
#endif
