/* JSON output for every file onebit writes (config.json, trainer state,
 * tokenizer.json). cJSON's own printer is not used: it writes a double with 15
 * significant digits whenever that reads back within an epsilon, so saved
 * numbers drift in their last bits, and it indents with tabs. Here every number
 * is written with the fewest digits that read back to the identical double,
 * objects are indented by two spaces and arrays of scalars stay on one line. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/json.h"

typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} buffer;

static void put(buffer *b, const char *s, size_t n) {
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_(buffer *b, const char *s) { put(b, s, strlen(s)); }

static void indent(buffer *b, int depth) {
    for (int i = 0; i < depth; i++)
        put(b, "  ", 2);
}

void ob_json_format_number(double v, char *buf, size_t size) {
    if (!isfinite(v)) {
        snprintf(buf, size, "null");
        return;
    }
    /* Integers print as integers; -0 keeps its sign through the %g path. */
    if (v == floor(v) && fabs(v) < 9007199254740992.0 && !(v == 0 && signbit(v))) {
        snprintf(buf, size, "%lld", (long long)v);
        return;
    }
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static void put_string(buffer *b, const char *s) {
    put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *esc = NULL;
        switch (*p) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: break;
        }
        if (esc) {
            puts_(b, esc);
        } else if (*p < 0x20) {
            char u[8];
            snprintf(u, sizeof u, "\\u%04x", *p);
            puts_(b, u);
        } else {
            put(b, (const char *)p, 1);
        }
    }
    put(b, "\"", 1);
}

static bool is_container(const cJSON *item) { return cJSON_IsArray(item) || cJSON_IsObject(item); }

static void put_value(buffer *b, const cJSON *item, int depth, bool pretty) {
    if (cJSON_IsNull(item) || cJSON_IsInvalid(item)) {
        puts_(b, "null");
    } else if (cJSON_IsBool(item)) {
        puts_(b, cJSON_IsTrue(item) ? "true" : "false");
    } else if (cJSON_IsNumber(item)) {
        char num[40];
        ob_json_format_number(item->valuedouble, num, sizeof num);
        puts_(b, num);
    } else if (cJSON_IsString(item)) {
        put_string(b, item->valuestring ? item->valuestring : "");
    } else if (cJSON_IsRaw(item)) {
        puts_(b, item->valuestring ? item->valuestring : "null");
    } else {
        bool object = cJSON_IsObject(item);
        /* Arrays of scalars (a layer list, a merge pair) read best on one line. */
        bool one_line = !pretty || !item->child || !object;
        for (const cJSON *c = item->child; c && one_line && pretty; c = c->next)
            one_line = !is_container(c);
        put(b, object ? "{" : "[", 1);
        for (const cJSON *c = item->child; c; c = c->next) {
            if (!one_line) {
                put(b, "\n", 1);
                indent(b, depth + 1);
            }
            if (object) {
                put_string(b, c->string ? c->string : "");
                put(b, pretty ? ": " : ":", pretty ? 2 : 1);
            }
            put_value(b, c, depth + 1, pretty);
            if (c->next)
                put(b, one_line && pretty ? ", " : ",", one_line && pretty ? 2 : 1);
        }
        if (!one_line) {
            put(b, "\n", 1);
            indent(b, depth);
        }
        put(b, object ? "}" : "]", 1);
    }
}

char *ob_json_print(const cJSON *root, bool pretty) {
    buffer b = {0};
    put_value(&b, root, 0, pretty);
    if (pretty)
        put(&b, "\n", 1);
    if (b.failed || !b.data) {
        free(b.data);
        ob_error(OB_ERR_NOMEM, "out of memory while writing JSON");
        return NULL;
    }
    return b.data;
}
