/* libFuzzer target for the strict JSON parser: ob_json_parse on arbitrary bytes
 * must never crash, leak or trip a sanitizer. Whatever it accepts must print
 * (pretty and compact) to text that parses back to the identical tree, numbers
 * bit for bit, and the typed getters must cope with any member value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/json.h"

/* Same shape, same keys in the same order, numbers exactly equal. */
static bool same_tree(const cJSON *a, const cJSON *b) {
    if ((a->type & 0xFF) != (b->type & 0xFF))
        return false;
    if ((a->string == NULL) != (b->string == NULL) || (a->string && strcmp(a->string, b->string) != 0))
        return false;
    if (cJSON_IsNumber(a))
        return memcmp(&a->valuedouble, &b->valuedouble, sizeof(double)) == 0;
    if (cJSON_IsString(a))
        return strcmp(a->valuestring, b->valuestring) == 0;
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next)
        if (!same_tree(x, y))
            return false;
    return x == NULL && y == NULL;
}

static void check_reprint(const cJSON *root, bool pretty) {
    char *text = ob_json_print(root, pretty);
    if (!text)
        abort();
    cJSON *back = NULL;
    if (ob_json_parse(text, strlen(text), "printed.json", &back) != OB_OK) {
        fprintf(stderr, "printed JSON does not parse: %s\n%s\n", ob_last_error(), text);
        abort();
    }
    if (!same_tree(root, back)) {
        fprintf(stderr, "printed JSON parses to a different tree:\n%s\n", text);
        abort();
    }
    char *again = ob_json_print(back, pretty);
    if (!again || strcmp(text, again) != 0)
        abort();
    free(again);
    cJSON_Delete(back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *root = NULL;
    if (ob_json_parse((const char *)data, size, "fuzz.json", &root) != OB_OK) {
        if (root)
            abort(); /* a failed parse hands nothing back */
        return 0;
    }
    check_reprint(root, true);
    check_reprint(root, false);
    if (cJSON_IsObject(root)) {
        for (const cJSON *item = root->child; item; item = item->next) {
            int64_t i;
            double d;
            bool b;
            const char *s;
            (void)ob_json_get_int(root, item->string, "fuzz.json", &i, NULL);
            (void)ob_json_get_double(root, item->string, "fuzz.json", &d, NULL);
            (void)ob_json_get_bool(root, item->string, "fuzz.json", &b, NULL);
            (void)ob_json_get_string(root, item->string, "fuzz.json", &s, NULL);
        }
    }
    cJSON_Delete(root);
    return 0;
}
