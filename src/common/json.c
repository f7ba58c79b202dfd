/* Strict JSON: a small RFC 8259 syntax check runs before cJSON builds the tree,
 * because cJSON alone accepts leading zeros, trailing bytes, raw control
 * characters and duplicate keys. Errors carry file, line, column and the text
 * found there. Output goes through json_print.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/json.h"

typedef struct {
    const unsigned char *s;
    size_t n, i;
    const char *source;
} scanner;

static void position(const scanner *sc, size_t offset, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t k = 0; k < offset && k < sc->n; k++) {
        if (sc->s[k] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* Up to 24 bytes of the input at the error, printable ASCII kept and every
 * other byte shown as \xHH, so the message says what was found there. */
static void snippet(const scanner *sc, char *out, size_t size) {
    size_t k = 0;
    for (size_t i = sc->i; i < sc->n && i < sc->i + 24 && k + 5 < size; i++) {
        unsigned char c = sc->s[i];
        if (c >= 0x20 && c < 0x7F)
            out[k++] = (char)c;
        else
            k += (size_t)snprintf(out + k, size - k, "\\x%02X", c);
    }
    out[k] = '\0';
}

static ob_status syntax_error(const scanner *sc, const char *what) {
    int line, col;
    char near[128];
    position(sc, sc->i, &line, &col);
    snippet(sc, near, sizeof near);
    if (!near[0])
        return ob_error(OB_ERR_FORMAT, "%s: invalid JSON at line %d, column %d: %s", sc->source, line, col, what);
    return ob_error(OB_ERR_FORMAT, "%s: invalid JSON at line %d, column %d: %s, found '%s'", sc->source, line, col,
                    what, near);
}

static void skip_ws(scanner *sc) {
    while (sc->i < sc->n) {
        unsigned char c = sc->s[sc->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        sc->i++;
    }
}

static int hex4(const unsigned char *p) {
    int v = 0;
    for (int k = 0; k < 4; k++) {
        int c = p[k], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static ob_status scan_string(scanner *sc) {
    sc->i++; /* opening quote */
    while (sc->i < sc->n) {
        unsigned char c = sc->s[sc->i];
        if (c == '"') {
            sc->i++;
            return OB_OK;
        }
        if (c < 0x20)
            return syntax_error(sc, "control character inside a string");
        if (c != '\\') {
            sc->i++;
            continue;
        }
        if (sc->i + 1 >= sc->n)
            break;
        unsigned char e = sc->s[sc->i + 1];
        if (strchr("\"\\/bfnrt", e) && e != '\0') {
            sc->i += 2;
            continue;
        }
        if (e != 'u')
            return syntax_error(sc, "invalid escape sequence");
        if (sc->n - sc->i < 6)
            break;
        int u = hex4(sc->s + sc->i + 2);
        if (u < 0)
            return syntax_error(sc, "invalid \\u escape");
        if (u == 0)
            return syntax_error(sc, "\\u0000 inside a string is not supported");
        if (u >= 0xDC00 && u <= 0xDFFF)
            return syntax_error(sc, "unpaired low surrogate in \\u escape");
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (sc->n - sc->i < 12 || sc->s[sc->i + 6] != '\\' || sc->s[sc->i + 7] != 'u')
                return syntax_error(sc, "unpaired high surrogate in \\u escape");
            int lo = hex4(sc->s + sc->i + 8);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return syntax_error(sc, "unpaired high surrogate in \\u escape");
            sc->i += 12;
        } else {
            sc->i += 6;
        }
    }
    return syntax_error(sc, "unterminated string");
}

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static ob_status scan_number(scanner *sc) {
    size_t i = sc->i;
    const unsigned char *s = sc->s;
    if (i < sc->n && s[i] == '-')
        i++;
    if (i >= sc->n || !is_digit(s[i])) {
        sc->i = i;
        return syntax_error(sc, "invalid number");
    }
    if (s[i] == '0') {
        i++;
        if (i < sc->n && is_digit(s[i])) {
            sc->i = i;
            return syntax_error(sc, "leading zero in number");
        }
    } else {
        while (i < sc->n && is_digit(s[i]))
            i++;
    }
    if (i < sc->n && s[i] == '.') {
        i++;
        if (i >= sc->n || !is_digit(s[i])) {
            sc->i = i;
            return syntax_error(sc, "digit expected after decimal point");
        }
        while (i < sc->n && is_digit(s[i]))
            i++;
    }
    if (i < sc->n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < sc->n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= sc->n || !is_digit(s[i])) {
            sc->i = i;
            return syntax_error(sc, "digit expected in exponent");
        }
        while (i < sc->n && is_digit(s[i]))
            i++;
    }
    sc->i = i;
    return OB_OK;
}

static ob_status scan_value(scanner *sc, int depth);

static ob_status scan_container(scanner *sc, int depth, bool object) {
    if (depth >= OB_JSON_MAX_DEPTH)
        return syntax_error(sc, "nesting deeper than 256 levels");
    char close = object ? '}' : ']';
    sc->i++;
    skip_ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == (unsigned char)close) {
        sc->i++;
        return OB_OK;
    }
    for (;;) {
        ob_status st;
        skip_ws(sc);
        if (object) {
            if (sc->i >= sc->n || sc->s[sc->i] != '"')
                return syntax_error(sc, "object key (a string) expected");
            if ((st = scan_string(sc)))
                return st;
            skip_ws(sc);
            if (sc->i >= sc->n || sc->s[sc->i] != ':')
                return syntax_error(sc, "':' expected after object key");
            sc->i++;
        }
        if ((st = scan_value(sc, depth + 1)))
            return st;
        skip_ws(sc);
        if (sc->i >= sc->n)
            return syntax_error(sc, object ? "unterminated object" : "unterminated array");
        if (sc->s[sc->i] == ',') {
            sc->i++;
            continue;
        }
        if (sc->s[sc->i] == (unsigned char)close) {
            sc->i++;
            return OB_OK;
        }
        return syntax_error(sc, object ? "',' or '}' expected" : "',' or ']' expected");
    }
}

static ob_status scan_literal(scanner *sc, const char *word) {
    size_t len = strlen(word);
    if (sc->n - sc->i < len || memcmp(sc->s + sc->i, word, len) != 0)
        return syntax_error(sc, "unexpected character");
    sc->i += len;
    return OB_OK;
}

static ob_status scan_value(scanner *sc, int depth) {
    skip_ws(sc);
    if (sc->i >= sc->n)
        return syntax_error(sc, "value expected, found end of input");
    switch (sc->s[sc->i]) {
    case '{': return scan_container(sc, depth, true);
    case '[': return scan_container(sc, depth, false);
    case '"': return scan_string(sc);
    case 't': return scan_literal(sc, "true");
    case 'f': return scan_literal(sc, "false");
    case 'n': return scan_literal(sc, "null");
    case '-': return scan_number(sc);
    default:
        if (is_digit(sc->s[sc->i]))
            return scan_number(sc);
        return syntax_error(sc, "value expected");
    }
}

static int compare_keys(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Duplicate keys are found by sorting each object's keys: objects such as a BPE
 * vocabulary hold tens of thousands of members. */
static ob_status check_object_keys(const cJSON *object, const char *source) {
    size_t count = 0;
    for (const cJSON *c = object->child; c; c = c->next)
        count++;
    if (count < 2)
        return OB_OK;
    const char **keys = ob_malloc(count * sizeof *keys);
    if (!keys)
        return ob_error(OB_ERR_NOMEM, "%s: out of memory while checking JSON keys", source);
    size_t k = 0;
    for (const cJSON *c = object->child; c; c = c->next)
        keys[k++] = c->string;
    qsort(keys, count, sizeof *keys, compare_keys);
    ob_status st = OB_OK;
    for (k = 1; k < count && st == OB_OK; k++) {
        if (strcmp(keys[k - 1], keys[k]) != 0)
            continue;
        if (object->string)
            st = ob_error(OB_ERR_FORMAT, "%s: duplicate key \"%s\" in object '%s'", source, keys[k], object->string);
        else
            st = ob_error(OB_ERR_FORMAT, "%s: duplicate key \"%s\" in a JSON object", source, keys[k]);
    }
    free(keys);
    return st;
}

/* The checks that need the tree: duplicate keys, and numbers too large for a
 * double (1e400 would become infinity, which JSON cannot write back). */
static ob_status check_tree(const cJSON *item, const char *source) {
    for (; item; item = item->next) {
        ob_status st;
        if (cJSON_IsObject(item) && (st = check_object_keys(item, source)))
            return st;
        if (cJSON_IsNumber(item) && !isfinite(item->valuedouble)) {
            if (item->string)
                return ob_error(OB_ERR_FORMAT, "%s: field '%s' holds a number too large for a double", source,
                                item->string);
            return ob_error(OB_ERR_FORMAT, "%s: a number too large for a double", source);
        }
        if (item->child && (st = check_tree(item->child, source)))
            return st;
    }
    return OB_OK;
}

ob_status ob_json_parse(const char *text, size_t len, const char *source, cJSON **out) {
    *out = NULL;
    size_t bad;
    if (!ob_utf8_valid(text, len, &bad)) {
        scanner sc = {(const unsigned char *)text, len, bad, source};
        return syntax_error(&sc, "invalid UTF-8 (the text must be UTF-8 encoded)");
    }
    scanner sc = {(const unsigned char *)text, len, 0, source};
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        return syntax_error(&sc, "byte order mark (U+FEFF) at the start; save the file as UTF-8 without BOM");
    ob_status st = scan_value(&sc, 0);
    if (st)
        return st;
    skip_ws(&sc);
    if (sc.i != sc.n)
        return syntax_error(&sc, "unexpected characters after the JSON value");
    /* The text is valid JSON now, so cJSON can only fail for lack of memory. */
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root)
        return ob_error(OB_ERR_NOMEM, "%s: out of memory while parsing JSON", source);
    if ((st = check_tree(root, source))) {
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return OB_OK;
}

ob_status ob_json_load_file(const char *path, cJSON **out) {
    char *text;
    size_t len;
    *out = NULL;
    ob_status st = ob_read_file(path, &text, &len);
    if (st)
        return st;
    st = ob_json_parse(text, len, path, out);
    free(text);
    return st;
}

ob_status ob_json_save_file(const char *path, const cJSON *root) {
    char *text = ob_json_print(root, true);
    if (!text)
        return ob_error(OB_ERR_NOMEM, "%s: out of memory while writing JSON", path);
    ob_status st = ob_write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

bool ob_json_is_integer(const cJSON *item) {
    if (!cJSON_IsNumber(item))
        return false;
    double v = item->valuedouble;
    return v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == (double)(int64_t)v;
}

static const cJSON *member(const cJSON *obj, const char *key, bool *present) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (present)
        *present = item != NULL;
    return item;
}

const char *ob_json_type_name(const cJSON *item) {
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsNull(item)) return "null";
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    return "invalid";
}

/* The offending value as it appears in the file, shortened for messages:
 * "field 'hidden_size' = "512" must be an integer, found a string". */
static const char *shown(const cJSON *item, char *buf, size_t size) {
    char *text = ob_json_print(item, false);
    if (!text)
        return "?";
    size_t n = strlen(text);
    if (n < size)
        memcpy(buf, text, n + 1);
    else
        snprintf(buf, size, "%.*s...", (int)(size - 4), text);
    free(text);
    return buf;
}

ob_status ob_json_type_error(const cJSON *item, const char *key, const char *source, const char *wanted) {
    char buf[64];
    return ob_error(OB_ERR_FORMAT, "%s: field '%s' = %s must be %s, found %s", source, key,
                    shown(item, buf, sizeof buf), wanted, ob_json_type_name(item));
}

ob_status ob_json_get_int(const cJSON *obj, const char *key, const char *source, int64_t *out, bool *present) {
    const cJSON *item = member(obj, key, present);
    if (!item)
        return OB_OK;
    if (cJSON_IsNumber(item) && !ob_json_is_integer(item)) {
        char buf[64];
        const char *what = item->valuedouble == floor(item->valuedouble) ? "is beyond the exact integers of a double (2^53)"
                                                                         : "must be an integer, found a fraction";
        return ob_error(OB_ERR_FORMAT, "%s: field '%s' = %s %s", source, key, shown(item, buf, sizeof buf), what);
    }
    if (!ob_json_is_integer(item))
        return ob_json_type_error(item, key, source, "an integer");
    *out = (int64_t)item->valuedouble;
    return OB_OK;
}

ob_status ob_json_get_double(const cJSON *obj, const char *key, const char *source, double *out, bool *present) {
    const cJSON *item = member(obj, key, present);
    if (!item)
        return OB_OK;
    if (!cJSON_IsNumber(item))
        return ob_json_type_error(item, key, source, "a number");
    *out = item->valuedouble;
    return OB_OK;
}

ob_status ob_json_get_bool(const cJSON *obj, const char *key, const char *source, bool *out, bool *present) {
    const cJSON *item = member(obj, key, present);
    if (!item)
        return OB_OK;
    if (!cJSON_IsBool(item))
        return ob_json_type_error(item, key, source, "true or false");
    *out = cJSON_IsTrue(item);
    return OB_OK;
}

ob_status ob_json_get_string(const cJSON *obj, const char *key, const char *source, const char **out,
                             bool *present) {
    const cJSON *item = member(obj, key, present);
    if (!item)
        return OB_OK;
    if (!cJSON_IsString(item))
        return ob_json_type_error(item, key, source, "a string");
    *out = item->valuestring;
    return OB_OK;
}
