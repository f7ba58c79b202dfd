/* safetensors writer. Tensors are recorded by pointer and written in the
 * order added, back to back (strict readers reject gaps between spans). The
 * header is JSON emitted here rather than by cJSON, whose number printing loses
 * integers above 2^31 to "%g": "__metadata__" first with its keys in byte
 * order, then the tensors in the order added, each as dtype, shape,
 * data_offsets. It is padded with spaces to a multiple of 8 bytes so the data
 * area starts 8-byte aligned. The file is written atomically. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/safetensors.h"

typedef struct {
    char *name;
    ob_dtype dtype;
    int ndim;
    int64_t shape[OB_MAX_DIMS];
    const void *data;
    size_t nbytes;
} st_entry;

typedef struct {
    char *key;
    char *value;
} st_meta;

struct ob_st_writer {
    st_entry *entries;
    size_t count, capacity;
    st_meta *meta;
    size_t meta_count, meta_capacity;
    size_t data_bytes; /* sum of the entries' nbytes, kept to refuse overflow early */
};

/* A growable string for the header. */
typedef struct {
    char *s;
    size_t len, cap;
    bool failed;
} text;

static void text_append(text *t, const char *s, size_t n) {
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *grown = realloc(t->s, cap);
        if (!grown) {
            t->failed = true;
            return;
        }
        t->s = grown;
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void text_puts(text *t, const char *s) { text_append(t, s, strlen(s)); }

/* A JSON string literal. Input is valid UTF-8 (checked when added); only the
 * quote, the backslash and control characters need escapes. */
static void text_json_string(text *t, const char *s) {
    text_puts(t, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            text_append(t, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            text_puts(t, esc);
        } else {
            text_append(t, (const char *)p, 1);
        }
    }
    text_puts(t, "\"");
}

ob_status ob_st_writer_create(ob_st_writer **out) {
    *out = ob_calloc(1, sizeof **out);
    return *out ? OB_OK : OB_ERR_NOMEM;
}

void ob_st_writer_free(ob_st_writer *w) {
    if (!w)
        return;
    for (size_t i = 0; i < w->count; i++)
        free(w->entries[i].name);
    for (size_t i = 0; i < w->meta_count; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->entries);
    free(w->meta);
    free(w);
}

static ob_status check_string(const char *s, const char *what) {
    if (!s)
        return ob_error(OB_ERR_INVALID_ARG, "safetensors writer: %s is NULL", what);
    if (!*s)
        return ob_error(OB_ERR_INVALID_ARG, "safetensors writer: %s is empty", what);
    size_t bad;
    if (!ob_utf8_valid(s, strlen(s), &bad))
        return ob_error(OB_ERR_INVALID_ARG, "safetensors writer: %s \"%s\" is not valid UTF-8 (byte %zu)", what, s, bad);
    return OB_OK;
}

static bool grow(void **array, size_t *capacity, size_t count, size_t elem) {
    if (count < *capacity)
        return true;
    size_t cap = *capacity ? *capacity * 2 : 16;
    void *grown = realloc(*array, cap * elem);
    if (!grown) {
        ob_error(OB_ERR_NOMEM, "safetensors writer: out of memory");
        return false;
    }
    *array = grown;
    *capacity = cap;
    return true;
}

ob_status ob_st_writer_add(ob_st_writer *w, const char *name, ob_dtype dtype, int ndim, const int64_t *shape,
                           const void *data) {
    ob_status st = check_string(name, "tensor name");
    if (st)
        return st;
    if (strcmp(name, "__metadata__") == 0)
        return ob_error(OB_ERR_INVALID_ARG, "safetensors writer: \"__metadata__\" is reserved and cannot name a tensor");
    for (size_t i = 0; i < w->count; i++)
        if (strcmp(w->entries[i].name, name) == 0)
            return ob_error(OB_ERR_INVALID_ARG, "safetensors writer: tensor '%s' added twice", name);
    if ((unsigned)dtype >= OB_DTYPE_COUNT)
        return ob_error(OB_ERR_INVALID_ARG, "safetensors writer: tensor '%s': invalid dtype %d", name, (int)dtype);
    if (ob_dtype_size(dtype) == 0)
        return ob_error(OB_ERR_INVALID_ARG,
                        "safetensors writer: tensor '%s': packed dtype %s cannot be stored in safetensors (store the "
                        "packed bytes as U8)",
                        name, ob_dtype_name(dtype));
    if (ndim < 0 || ndim > OB_MAX_DIMS)
        return ob_error(OB_ERR_INVALID_ARG, "safetensors writer: tensor '%s': %d dimensions (0 to %d allowed)", name,
                        ndim, OB_MAX_DIMS);
    if (ndim > 0 && !shape)
        return ob_error(OB_ERR_INVALID_ARG, "safetensors writer: tensor '%s': shape is NULL", name);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return ob_error(OB_ERR_INVALID_ARG, "safetensors writer: tensor '%s': shape[%d] = %" PRId64 " is negative",
                            name, i, shape[i]);
    int64_t numel = ob_shape_numel(ndim, shape);
    size_t nbytes = numel < 0 ? SIZE_MAX : ob_dtype_bytes_for(dtype, numel);
    /* Offsets are printed from doubles by most readers: keep them below 2^53. */
    if (nbytes == SIZE_MAX || nbytes > ((size_t)1 << 53) - w->data_bytes)
        return ob_error(OB_ERR_INVALID_ARG, "safetensors writer: tensor '%s': shape too large (byte size overflows)",
                        name);
    if (nbytes && !data)
        return ob_error(OB_ERR_INVALID_ARG, "safetensors writer: tensor '%s': data is NULL", name);
    if (!grow((void **)&w->entries, &w->capacity, w->count, sizeof *w->entries))
        return OB_ERR_NOMEM;
    st_entry *e = &w->entries[w->count];
    memset(e, 0, sizeof *e);
    e->name = ob_strdup(name);
    if (!e->name)
        return OB_ERR_NOMEM;
    e->dtype = dtype;
    e->ndim = ndim;
    if (ndim)
        memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->data = data;
    e->nbytes = nbytes;
    w->data_bytes += nbytes;
    w->count++;
    return OB_OK;
}

ob_status ob_st_writer_set_metadata(ob_st_writer *w, const char *key, const char *value) {
    ob_status st = check_string(key, "metadata key");
    if (st)
        return st;
    if (!value)
        return ob_error(OB_ERR_INVALID_ARG, "safetensors writer: metadata '%s': value is NULL", key);
    size_t bad;
    if (!ob_utf8_valid(value, strlen(value), &bad))
        return ob_error(OB_ERR_INVALID_ARG, "safetensors writer: metadata '%s': value is not valid UTF-8 (byte %zu)",
                        key, bad);
    char *copy = ob_strdup(value);
    if (!copy)
        return OB_ERR_NOMEM;
    for (size_t i = 0; i < w->meta_count; i++) {
        if (strcmp(w->meta[i].key, key) == 0) { /* set again: the last value wins */
            free(w->meta[i].value);
            w->meta[i].value = copy;
            return OB_OK;
        }
    }
    if (!grow((void **)&w->meta, &w->meta_capacity, w->meta_count, sizeof *w->meta)) {
        free(copy);
        return OB_ERR_NOMEM;
    }
    w->meta[w->meta_count].key = ob_strdup(key);
    if (!w->meta[w->meta_count].key) {
        free(copy);
        return OB_ERR_NOMEM;
    }
    w->meta[w->meta_count++].value = copy;
    return OB_OK;
}

static int compare_meta(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

/* The header JSON, padded with spaces to a multiple of 8 bytes. */
static ob_status build_header(ob_st_writer *w, text *t) {
    text_puts(t, "{");
    bool first = true;
    if (w->meta_count) {
        qsort(w->meta, w->meta_count, sizeof *w->meta, compare_meta);
        text_puts(t, "\"__metadata__\":{");
        for (size_t i = 0; i < w->meta_count; i++) {
            if (i)
                text_puts(t, ",");
            text_json_string(t, w->meta[i].key);
            text_puts(t, ":");
            text_json_string(t, w->meta[i].value);
        }
        text_puts(t, "}");
        first = false;
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->count; i++) {
        const st_entry *e = &w->entries[i];
        char buf[64];
        if (!first)
            text_puts(t, ",");
        first = false;
        text_json_string(t, e->name);
        text_puts(t, ":{\"dtype\":\"");
        text_puts(t, ob_dtype_name(e->dtype));
        text_puts(t, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            snprintf(buf, sizeof buf, d ? ",%" PRId64 : "%" PRId64, e->shape[d]);
            text_puts(t, buf);
        }
        snprintf(buf, sizeof buf, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", offset, offset + e->nbytes);
        text_puts(t, buf);
        offset += e->nbytes;
    }
    text_puts(t, "}");
    while (!t->failed && t->len % 8 != 0)
        text_puts(t, " ");
    if (t->failed)
        return ob_error(OB_ERR_NOMEM, "safetensors writer: out of memory building the header");
    return OB_OK;
}

ob_status ob_st_writer_write(ob_st_writer *w, const char *path) {
    text header = {0};
    ob_status st = build_header(w, &header);
    if (st) {
        free(header.s);
        return st;
    }
    unsigned char len_bytes[8];
    for (int i = 0; i < 8; i++)
        len_bytes[i] = (unsigned char)((uint64_t)header.len >> (8 * i));

    ob_atomic_file out;
    st = ob_atomic_open(&out, path);
    if (st) {
        free(header.s);
        return st;
    }
    bool ok = fwrite(len_bytes, 1, 8, out.fp) == 8 && fwrite(header.s, 1, header.len, out.fp) == header.len;
    for (size_t i = 0; ok && i < w->count; i++)
        ok = w->entries[i].nbytes == 0 || fwrite(w->entries[i].data, 1, w->entries[i].nbytes, out.fp) == w->entries[i].nbytes;
    free(header.s);
    if (!ok) {
        st = ob_error(OB_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        ob_atomic_abort(&out);
        return st;
    }
    return ob_atomic_commit(&out);
}
