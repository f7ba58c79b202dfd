/* Fuzz target: the GPT-2 tokenizer (loaded once from
 * $ONEBIT_DATA_DIR/gpt2/tokenizer.json or ../shared/data/gpt2/tokenizer.json)
 * encodes arbitrary bytes with and without special tokens; decoding must give
 * the bytes back, every id must be in range, and the corpus encoder must agree
 * with the plain one. Any mismatch aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/tokenizer.h"

static ob_tokenizer *load_gpt2(void) {
    char path[4096];
    const char *dir = getenv("ONEBIT_DATA_DIR");
    snprintf(path, sizeof path, "%s/gpt2/tokenizer.json", dir && *dir ? dir : "../shared/data");
    ob_tokenizer *tok = NULL;
    if (ob_tokenizer_load(path, &tok) != OB_OK) {
        fprintf(stderr, "fuzz_encode: %s\n", ob_last_error());
        abort();
    }
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static ob_tokenizer *tok;
    if (!tok)
        tok = load_gpt2();
    const char *text = (const char *)data;
    for (int special = 0; special < 2; special++) {
        ob_tokens ids = {0}, par = {0};
        if (ob_tokenizer_encode(tok, text, size, special, &ids) != OB_OK)
            abort();
        for (size_t i = 0; i < ids.count; i++)
            if (ids.ids[i] < 0 || ids.ids[i] >= ob_tokenizer_vocab_size(tok) ||
                (!special && ids.ids[i] == ob_tokenizer_eos_id(tok)))
                abort();
        char *back = NULL;
        size_t len = 0;
        if (ob_tokenizer_decode(tok, ids.ids, ids.count, &back, &len) != OB_OK)
            abort();
        if (len != size || (size && memcmp(back, data, size) != 0))
            abort();
        free(back);
        if (ob_tokenizer_encode_parallel(tok, text, size, special, 2, &par) != OB_OK || par.count != ids.count ||
            (ids.count && memcmp(par.ids, ids.ids, ids.count * sizeof *ids.ids) != 0))
            abort();
        ob_tokens_free(&ids);
        ob_tokens_free(&par);
    }
    return 0;
}
