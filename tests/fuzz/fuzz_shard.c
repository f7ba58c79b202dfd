/* Fuzz target for the token-file parsers: the same bytes are read as an llm.c
 * shard and as a TKN2 file. Whatever a parser accepts must hold exactly the
 * tokens its header promises, and every token must be readable. */
#include <stdint.h>
#include <stdlib.h>

#include "onebit/data.h"

static void check_view(const ob_token_view *v, size_t size, size_t header) {
    if (header + v->count * (uint64_t)v->dtype != size)
        abort();
    uint64_t sum = 0;
    for (uint64_t i = 0; i < v->count; i++)
        sum += ob_token_view_get(v, i);
    /* Keep the reads from being optimised away. */
    volatile uint64_t sink = sum;
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ob_token_view v;
    if (ob_shard_parse(data, size, "fuzz.bin", &v) == OB_OK)
        check_view(&v, size, OB_SHARD_HEADER_BYTES);
    if (ob_tkn2_parse(data, size, "fuzz.tokens", &v) == OB_OK) {
        if (v.dtype != OB_TOKENS_U32)
            abort();
        check_view(&v, size, OB_TKN2_HEADER_BYTES);
    }
    return 0;
}
