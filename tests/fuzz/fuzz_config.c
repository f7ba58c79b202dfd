/* libFuzzer target for config.json: ob_config_parse on arbitrary bytes must
 * never crash, leak or trip a sanitizer, and every config it accepts must come
 * back unchanged through ob_config_to_json and a second parse (the text being a
 * fixed point), as a checkpoint's config.json does on save and resume. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Unknown fields warn on every accepted input; that would drown the fuzzer. */
    ob_log_set_level(OB_LOG_ERROR);
    ob_config cfg;
    if (ob_config_parse((const char *)data, size, "fuzz.json", &cfg) != OB_OK)
        return 0;
    char *text = ob_config_to_json(&cfg);
    if (!text)
        abort();
    ob_config again;
    if (ob_config_parse(text, strlen(text), "saved.json", &again) != OB_OK) {
        fprintf(stderr, "saved config does not parse: %s\n%s\n", ob_last_error(), text);
        abort();
    }
    if (!ob_config_equal(&cfg, &again)) {
        fprintf(stderr, "config changed through save and load:\n%s\n", text);
        abort();
    }
    char *text2 = ob_config_to_json(&again);
    if (!text2 || strcmp(text, text2) != 0) {
        fprintf(stderr, "saved text is not a fixed point:\n%s\n---\n%s\n", text, text2 ? text2 : "(null)");
        abort();
    }
    free(text2);
    free(text);
    ob_config_free(&again);
    ob_config_free(&cfg);
    return 0;
}
