/* libFuzzer target for the .1bit reader (versions 1 and 2): arbitrary bytes
 * go through ob_1bit_open_memory twice, once with the data checks skipped (so
 * that inputs without valid checksums reach the structural checks behind
 * them) and once with everything checked. Whatever is accepted is used as the
 * runtime would: every tensor's bytes and scales read, names looked up, and
 * the file opened as a packed model (config parsed, tensors bound to it); a
 * small model that opens also runs one token. AddressSanitizer flags any
 * view that strays outside the input. Seeds: gen_corpus_onebit.py. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/format.h"
#include "onebit/infer.h"

static volatile unsigned sink;

static void use(const uint8_t *data, size_t size, bool skip) {
    ob_1bit_file *f;
    ob_1bit_read_options o = {skip};
    if (ob_1bit_open_memory(data, size, "fuzz.1bit", &o, &f) != OB_OK)
        return;
    unsigned sum = 0;
    for (int i = 0; i < f->num_tensors; i++) {
        const ob_1bit_tensor *t = &f->tensors[i];
        for (uint64_t k = 0; k < t->data_bytes; k++)
            sum += ((const uint8_t *)t->data)[k];
        for (int k = 0; k < t->num_scales; k++) {
            uint32_t bits;
            memcpy(&bits, &t->scales[k], 4);
            sum += bits;
        }
        if (ob_1bit_find(f, t->name) != t)
            abort(); /* names are unique */
    }
    for (size_t k = 0; k < f->config_len; k++)
        sum += (uint8_t)f->config_json[k];
    for (size_t k = 0; k < f->tokenizer_len; k++)
        sum += (uint8_t)f->tokenizer_json[k];
    sink = sum;
    ob_packed_model *pm;
    if (ob_packed_model_from_1bit(f, &pm) != OB_OK)
        return; /* f is closed either way */
    const ob_config *c = &pm->cfg;
    if (pm->weight_bytes < (1u << 20) && c->vocab_size <= 4096 && c->hidden_size <= 1024 &&
        c->intermediate_size <= 4096) {
        ob_infer_options io = {1, 1, OB_ISA_SCALAR};
        ob_infer *s;
        float *logits = malloc((size_t)c->vocab_size * sizeof(float));
        if (logits && ob_infer_create(pm, &io, &s) == OB_OK) {
            int32_t tok = 0;
            if (ob_infer_forward(s, &tok, 1, logits, false) == OB_OK)
                sink += (unsigned)(logits[0] == logits[0]);
            ob_infer_free(s);
        }
        free(logits);
    }
    ob_packed_model_free(pm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The reader wants its bytes on a 64-byte boundary, as a mapping is. */
    uint8_t *copy = ob_aligned_alloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    use(copy, size, true);
    use(copy, size, false);
    ob_aligned_free(copy);
    return 0;
}
