/* Backend selection by device name. */
#include <stdlib.h>
#include <string.h>

#include "onebit/backend.h"

ob_status ob_backend_create(const char *device, const ob_model *m, int max_batch, int max_seq, ob_backend **out) {
    return ob_backend_create_dist(device, m, max_batch, max_seq, NULL, out);
}

ob_status ob_backend_create_dist(const char *device, const ob_model *m, int max_batch, int max_seq,
                                 const ob_dist *dist, ob_backend **out) {
    *out = NULL;
    bool alone = !dist || dist->world == 1;
    if (!device || strcmp(device, "cpu") == 0) {
        if (!alone)
            return ob_error(OB_ERR_UNSUPPORTED, "data-parallel training (%d processes) needs --device cuda",
                            dist->world);
        return ob_cpu_backend_create(m, max_batch, max_seq, out);
    }
    if (strncmp(device, "cuda", 4) == 0) {
        int index = 0;
        if (device[4] == ':') {
            char *end;
            long v = strtol(device + 5, &end, 10);
            if (end == device + 5 || *end || v < 0 || v > 255)
                return ob_error(OB_ERR_INVALID_ARG, "device '%s': expected cuda or cuda:N", device);
            index = (int)v;
        } else if (device[4] != '\0') {
            return ob_error(OB_ERR_INVALID_ARG, "device '%s': expected cpu, cuda or cuda:N", device);
        } else if (!alone) {
            index = dist->local_rank; /* one GPU per process of the machine */
        }
        return ob_cuda_backend_create(index, m, max_batch, max_seq, alone ? NULL : dist, out);
    }
    return ob_error(OB_ERR_INVALID_ARG, "device '%s': expected cpu, cuda or cuda:N", device);
}

void ob_backend_free(ob_backend *b) {
    if (b)
        b->ops->destroy(b);
}
