/* Fuzz target: ob_tokenizer_parse_json on arbitrary bytes. Whatever it
 * accepts must then encode and decode a short text losslessly; whatever it
 * rejects must say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ob_tokenizer *tok = NULL;
    ob_status st = ob_tokenizer_parse_json((const char *)data, size, "fuzz.json", &tok);
    if (st != OB_OK) {
        if (tok || ob_last_error()[0] == '\0')
            abort();
        return 0;
    }
    /* A tokenizer with add_prefix_space gives back " x" for "x": round trips
     * are then only checked up to that space. */
    ob_tokens probe = {0};
    char *x = NULL;
    size_t xlen = 0;
    if (ob_tokenizer_encode(tok, "x", 1, false, &probe) != OB_OK ||
        ob_tokenizer_decode(tok, probe.ids, probe.count, &x, &xlen) != OB_OK)
        abort();
    size_t prefix = xlen == 2 && x[0] == ' ' ? 1 : 0;
    if (xlen != prefix + 1 || x[prefix] != 'x')
        abort();
    free(x);
    ob_tokens_free(&probe);

    static const char text[] = "Hello world! <|endoftext|> 'll \xff\xfe caf\xc3\xa9 \n\n  12345";
    for (int special = 0; special < 2; special++) {
        ob_tokens ids = {0};
        if (ob_tokenizer_encode(tok, text, sizeof text - 1, special, &ids) != OB_OK)
            abort();
        char *back = NULL;
        size_t len = 0;
        if (ob_tokenizer_decode(tok, ids.ids, ids.count, &back, &len) != OB_OK)
            abort();
        /* Added tokens decode to their own text, so the bytes come back
         * exactly, special tokens allowed or not. */
        if (len != prefix + sizeof text - 1 || memcmp(back + prefix, text, sizeof text - 1) != 0)
            abort();
        free(back);
        ob_tokens_free(&ids);
    }
    (void)ob_tokenizer_vocab_size(tok);
    (void)ob_tokenizer_eos_id(tok);
    ob_tokenizer_free(tok);
    return 0;
}
