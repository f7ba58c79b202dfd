/* libFuzzer target for the safetensors reader: arbitrary bytes go through
 * ob_st_open_memory, and whatever it accepts is used the way a loader would:
 * every view's bytes read, every name looked up, every metadata entry read,
 * float views converted. AddressSanitizer flags any view that strays outside
 * the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/safetensors.h"

/* Reads go here so that the compiler cannot drop them. */
static volatile unsigned sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ob_st_file *f;
    if (ob_st_open_memory(data, size, "fuzz", &f) != OB_OK)
        return 0;
    unsigned sum = 0;
    for (size_t i = 0; i < ob_st_count(f); i++) {
        const ob_tensor_view *v = ob_st_get(f, i);
        const uint8_t *p = v->data;
        for (size_t k = 0; k < v->nbytes; k++)
            sum += p[k];
        if (ob_st_find(f, v->name) != v)
            abort(); /* names are unique, so lookup must find this very view */
        if (ob_st_require(f, v->name, v->dtype, v->ndim, v->shape, NULL) != OB_OK)
            abort();
        if ((v->dtype == OB_DTYPE_F32 || v->dtype == OB_DTYPE_F16 || v->dtype == OB_DTYPE_BF16) &&
            v->nbytes <= (1u << 20)) {
            float *out = malloc(v->nbytes * 2 + 1);
            if (out && ob_tensor_to_f32(v, out) != OB_OK)
                abort();
            free(out);
        }
    }
    for (size_t i = 0; i < ob_st_metadata_count(f); i++) {
        const char *key, *value;
        ob_st_metadata_at(f, i, &key, &value);
        sum += (unsigned)strlen(value);
        if (ob_st_metadata(f, key) != value)
            abort();
    }
    sink = sum;
    ob_st_close(f);
    return 0;
}
