/* A packed model seen through the embedded runtime's struct (obe_model of
 * embedded/onebit_embedded.h): the tensors point into the packed model, the
 * rotary tables and the vocabulary are computed here. The C header writer
 * prints exactly this struct, and the tests run the embedded runtime on it
 * directly, so both see the same values. */
#ifndef ONEBIT_FORMAT_EMBEDDED_MODEL_H
#define ONEBIT_FORMAT_EMBEDDED_MODEL_H

#include "onebit/format.h"
#include "onebit_embedded.h"

typedef struct ob_embedded_model {
    obe_model model;
    obe_layer *layers;
    float *rope_cos, *rope_sin;
    uint32_t *vocab_offsets;
    uint8_t *vocab_bytes;
} ob_embedded_model;

/* Fails (naming the reason) when ob_embedded_unsupported says so. `tok` may
 * be NULL. pm (and tok) must outlive the result. */
ob_status ob_embedded_model_build(const ob_packed_model *pm, const ob_tokenizer *tok,
                                  ob_embedded_model *out) OB_NODISCARD;
void ob_embedded_model_free(ob_embedded_model *e);

#endif
