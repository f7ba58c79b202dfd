/* safetensors reader. The file is mapped read-only and its whole header is
 * validated before any view is handed out: header length, strict JSON, each
 * entry's fields and types, dtype, shape arithmetic, span size and bounds, and
 * overlap between spans. Views point into the mapping (zero copy), so a view's
 * data is aligned only as far as the file put it there: see ob_tensor_aligned
 * and docs/FORMAT.md. Every message names the file, the tensor and the value. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/json.h"
#include "onebit/safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian and views hand it out as is: big-endian hosts are not supported"
#endif

/* The reference implementation's limit: a header larger than this is corrupt
 * or hostile, never a real model. */
#define ST_MAX_HEADER 100000000u
#define ST_SUPPORTED "F32, F16, BF16, I8, U8, I32, I64"

struct ob_st_file {
    char *source;
    ob_mapping map; /* empty when opened from memory */
    cJSON *header;  /* owns the names and metadata strings the views point to */
    ob_tensor_view *tensors; /* sorted by data offset */
    size_t count;
    const ob_tensor_view **by_name; /* sorted by name, for bsearch */
    const char **meta_keys;
    const char **meta_values;
    size_t meta_count;
};

typedef struct {
    uint64_t begin, end;
    size_t header_index; /* breaks ties between empty tensors deterministically */
    ob_tensor_view view;
} span;

/* "[2, 3]" for messages. */
static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, size - k, "[");
    for (int i = 0; i < ndim && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, i ? ", %" PRId64 : "%" PRId64, shape[i]);
    if (k < size)
        snprintf(buf + k, size - k, "]");
}

/* A JSON number that is a non-negative integer no larger than 2^53 (every
 * offset and dimension of a real file is far below); `what` names it. */
static ob_status read_index(const cJSON *item, const char *source, const char *tensor, const char *what,
                            uint64_t *out) {
    if (!cJSON_IsNumber(item))
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': %s is %s, expected a non-negative integer", source, tensor,
                        what, ob_json_type_name(item));
    double v = item->valuedouble;
    if (v < 0)
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': %s = %.17g is negative", source, tensor, what, v);
    if (!ob_json_is_integer(item))
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': %s = %.17g is %s", source, tensor, what, v,
                        isfinite(v) && v < 9007199254740992.0 ? "not an integer" : "too large (over 2^53)");
    *out = (uint64_t)v;
    return OB_OK;
}

static ob_status parse_dtype(const cJSON *item, const char *source, const char *name, ob_dtype *out) {
    if (!cJSON_IsString(item))
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': field 'dtype' must be a string, found %s", source, name,
                        ob_json_type_name(item));
    /* Our packed types have names but no place in safetensors. */
    if (!ob_dtype_parse(item->valuestring, out) || ob_dtype_size(*out) == 0)
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': unsupported dtype \"%s\" (supported: " ST_SUPPORTED ")",
                        source, name, item->valuestring);
    return OB_OK;
}

static ob_status parse_shape(const cJSON *item, const char *source, const char *name, ob_tensor_view *v) {
    if (!cJSON_IsArray(item))
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': field 'shape' must be an array of integers, found %s", source,
                        name, ob_json_type_name(item));
    int ndim = cJSON_GetArraySize(item);
    if (ndim > OB_MAX_DIMS)
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': shape has %d dimensions, more than the %d supported", source,
                        name, ndim, OB_MAX_DIMS);
    v->ndim = 0;
    for (const cJSON *d = item->child; d; d = d->next) {
        char what[32];
        snprintf(what, sizeof what, "shape[%d]", v->ndim);
        uint64_t dim;
        ob_status st = read_index(d, source, name, what, &dim);
        if (st)
            return st;
        v->shape[v->ndim++] = (int64_t)dim;
    }
    return OB_OK;
}

static ob_status parse_offsets(const cJSON *item, const char *source, const char *name, uint64_t *begin,
                               uint64_t *end) {
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2)
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': field 'data_offsets' must be an array of 2 integers, found %s",
                        source, name, cJSON_IsArray(item) ? "an array of another length" : ob_json_type_name(item));
    ob_status st = read_index(item->child, source, name, "data_offsets[0]", begin);
    if (!st)
        st = read_index(item->child->next, source, name, "data_offsets[1]", end);
    return st;
}

/* One header entry: an object with exactly dtype, shape and data_offsets, whose
 * span has the size the shape needs and lies inside the data area. */
static ob_status parse_entry(const cJSON *entry, const char *source, size_t data_size, span *out) {
    const char *name = entry->string;
    if (!cJSON_IsObject(entry))
        return ob_error(OB_ERR_FORMAT,
                        "%s: tensor '%s': entry is %s, expected an object with dtype, shape and data_offsets", source,
                        name, ob_json_type_name(entry));
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (const cJSON *c = entry->child; c; c = c->next) {
        if (strcmp(c->string, "dtype") == 0)
            dtype = c;
        else if (strcmp(c->string, "shape") == 0)
            shape = c;
        else if (strcmp(c->string, "data_offsets") == 0)
            offsets = c;
        else
            return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': unexpected field '%s' (only dtype, shape, data_offsets)",
                            source, name, c->string);
    }
    const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offsets ? "data_offsets" : NULL;
    if (missing)
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': missing field '%s'", source, name, missing);

    ob_tensor_view *v = &out->view;
    memset(v, 0, sizeof *v);
    v->name = name;
    ob_status st = parse_dtype(dtype, source, name, &v->dtype);
    if (!st)
        st = parse_shape(shape, source, name, v);
    if (!st)
        st = parse_offsets(offsets, source, name, &out->begin, &out->end);
    if (st)
        return st;

    char dims[OB_MAX_DIMS * 24 + 4];
    format_shape(dims, sizeof dims, v->ndim, v->shape);
    int64_t numel = ob_shape_numel(v->ndim, v->shape);
    size_t need = numel < 0 ? SIZE_MAX : ob_dtype_bytes_for(v->dtype, numel);
    if (need == SIZE_MAX)
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': shape %s of %s is too large (its byte size overflows)", source,
                        name, dims, ob_dtype_name(v->dtype));
    if (out->end < out->begin)
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin",
                        source, name, out->begin, out->end);
    uint64_t have = out->end - out->begin;
    if (have != need)
        return ob_error(OB_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64
                        " bytes but shape %s of %s needs %zu",
                        source, name, out->begin, out->end, have, dims, ob_dtype_name(v->dtype), need);
    if (out->end > data_size)
        return ob_error(OB_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end of the data area (%zu bytes)",
                        source, name, out->begin, out->end, data_size);
    v->nbytes = (size_t)have;
    return OB_OK;
}

static ob_status parse_metadata(ob_st_file *f, const cJSON *meta) {
    if (!cJSON_IsObject(meta))
        return ob_error(OB_ERR_FORMAT, "%s: __metadata__ must be an object of strings, found %s", f->source,
                        ob_json_type_name(meta));
    size_t n = 0;
    for (const cJSON *c = meta->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return ob_error(OB_ERR_FORMAT, "%s: __metadata__ '%s' must be a string, found %s", f->source, c->string,
                            ob_json_type_name(c));
        n++;
    }
    f->meta_keys = ob_calloc(n, sizeof *f->meta_keys);
    f->meta_values = ob_calloc(n, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values)
        return OB_ERR_NOMEM;
    for (const cJSON *c = meta->child; c; c = c->next) {
        f->meta_keys[f->meta_count] = c->string;
        f->meta_values[f->meta_count++] = c->valuestring;
    }
    return OB_OK;
}

static int compare_spans(const void *pa, const void *pb) {
    const span *a = pa, *b = pb;
    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    return a->header_index < b->header_index ? -1 : a->header_index > b->header_index;
}

static int compare_view_names(const void *pa, const void *pb) {
    const ob_tensor_view *a = *(const ob_tensor_view *const *)pa, *b = *(const ob_tensor_view *const *)pb;
    return strcmp(a->name, b->name);
}

/* Validates the header of bytes[0..size) and fills f's tables. */
static ob_status parse_file(ob_st_file *f, const uint8_t *bytes, size_t size) {
    const char *source = f->source;
    if (size < 8)
        return ob_error(OB_ERR_FORMAT, "%s: file is %zu bytes, too short for the 8-byte header length%s", source, size,
                        size ? "" : " (empty file)");
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = header_len << 8 | bytes[i];
    if (header_len > ST_MAX_HEADER)
        return ob_error(OB_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the limit of %u bytes (corrupt file?)",
                        source, header_len, ST_MAX_HEADER);
    if (header_len > size - 8)
        return ob_error(OB_ERR_FORMAT, "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes)",
                        source, header_len, size);
    const uint8_t *data = bytes + 8 + header_len;
    size_t data_size = size - 8 - (size_t)header_len;

    size_t label_len = strlen(source) + 16;
    char *label = ob_malloc(label_len);
    if (!label)
        return OB_ERR_NOMEM;
    snprintf(label, label_len, "%s header", source);
    ob_status st = ob_json_parse((const char *)bytes + 8, (size_t)header_len, label, &f->header);
    free(label);
    if (st)
        return st;
    if (!cJSON_IsObject(f->header))
        return ob_error(OB_ERR_FORMAT, "%s: header is %s, expected a JSON object", source,
                        ob_json_type_name(f->header));

    size_t entries = 0;
    for (const cJSON *c = f->header->child; c; c = c->next)
        entries++;
    span *spans = ob_calloc(entries, sizeof *spans);
    if (!spans)
        return OB_ERR_NOMEM;
    size_t index = 0;
    for (const cJSON *c = f->header->child; c && !st; c = c->next, index++) {
        if (strcmp(c->string, "__metadata__") == 0) {
            st = parse_metadata(f, c);
        } else {
            spans[f->count].header_index = index;
            st = parse_entry(c, source, data_size, &spans[f->count]);
            f->count++;
        }
    }
    if (!st) {
        qsort(spans, f->count, sizeof *spans, compare_spans);
        for (size_t i = 1; i < f->count && !st; i++) {
            const span *a = &spans[i - 1], *b = &spans[i];
            if (b->begin < a->end)
                st = ob_error(OB_ERR_FORMAT,
                              "%s: tensors '%s' data_offsets [%" PRIu64 ", %" PRIu64 "] and '%s' [%" PRIu64 ", %" PRIu64
                              "] overlap",
                              source, a->view.name, a->begin, a->end, b->view.name, b->begin, b->end);
        }
    }
    if (!st) {
        f->tensors = ob_calloc(f->count, sizeof *f->tensors);
        f->by_name = ob_calloc(f->count, sizeof *f->by_name);
        if (!f->tensors || !f->by_name)
            st = OB_ERR_NOMEM;
    }
    if (!st) {
        for (size_t i = 0; i < f->count; i++) {
            f->tensors[i] = spans[i].view;
            f->tensors[i].data = data + spans[i].begin;
            f->by_name[i] = &f->tensors[i];
        }
        qsort(f->by_name, f->count, sizeof *f->by_name, compare_view_names);
    }
    free(spans);
    return st;
}

static ob_status open_bytes(ob_st_file *f, const void *data, size_t size, ob_st_file **out) {
    ob_status st = parse_file(f, data, size);
    if (st) {
        ob_st_close(f);
        return st;
    }
    *out = f;
    return OB_OK;
}

ob_status ob_st_open(const char *path, ob_st_file **out) {
    *out = NULL;
    ob_st_file *f = ob_calloc(1, sizeof *f);
    if (!f)
        return OB_ERR_NOMEM;
    f->source = ob_strdup(path);
    if (!f->source) {
        ob_st_close(f);
        return OB_ERR_NOMEM;
    }
    ob_status st = ob_map_file(path, &f->map);
    if (st) {
        ob_st_close(f);
        return st;
    }
    return open_bytes(f, f->map.data, f->map.size, out);
}

ob_status ob_st_open_memory(const void *data, size_t size, const char *source, ob_st_file **out) {
    *out = NULL;
    ob_st_file *f = ob_calloc(1, sizeof *f);
    if (!f)
        return OB_ERR_NOMEM;
    f->source = ob_strdup(source ? source : "(memory)");
    if (!f->source) {
        ob_st_close(f);
        return OB_ERR_NOMEM;
    }
    return open_bytes(f, data, size, out);
}

void ob_st_close(ob_st_file *f) {
    if (!f)
        return;
    ob_unmap_file(&f->map);
    cJSON_Delete(f->header);
    free(f->tensors);
    free(f->by_name);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->source);
    free(f);
}

size_t ob_st_count(const ob_st_file *f) { return f->count; }

const ob_tensor_view *ob_st_get(const ob_st_file *f, size_t index) {
    return index < f->count ? &f->tensors[index] : NULL;
}

const ob_tensor_view *ob_st_find(const ob_st_file *f, const char *name) {
    ob_tensor_view key = {.name = name};
    const ob_tensor_view *pkey = &key;
    const ob_tensor_view **hit = bsearch(&pkey, f->by_name, f->count, sizeof *f->by_name, compare_view_names);
    return hit ? *hit : NULL;
}

/* The stored name closest to `name`, for "did you mean" (NULL if none is close). */
static const char *closest_name(const ob_st_file *f, const char *name) {
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < f->count; i++) {
        size_t d = ob_edit_distance(name, f->tensors[i].name);
        if (d < best_d) {
            best_d = d;
            best = f->tensors[i].name;
        }
    }
    return best && best_d <= 3 ? best : NULL;
}

ob_status ob_st_require(const ob_st_file *f, const char *name, ob_dtype dtype, int ndim, const int64_t *shape,
                        const ob_tensor_view **out) {
    if (out)
        *out = NULL;
    const ob_tensor_view *v = ob_st_find(f, name);
    if (!v) {
        const char *near = closest_name(f, name);
        if (near)
            return ob_error(OB_ERR_NOT_FOUND, "%s: no tensor '%s' (did you mean '%s'?)", f->source, name, near);
        return ob_error(OB_ERR_NOT_FOUND, "%s: no tensor '%s'", f->source, name);
    }
    bool same = v->dtype == dtype && v->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = v->shape[i] == shape[i];
    if (!same) {
        char want[OB_MAX_DIMS * 24 + 4], found[OB_MAX_DIMS * 24 + 4];
        if (ndim < 0 || ndim > OB_MAX_DIMS)
            snprintf(want, sizeof want, "(%d dimensions)", ndim);
        else
            format_shape(want, sizeof want, ndim, shape);
        format_shape(found, sizeof found, v->ndim, v->shape);
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s' is %s %s, expected %s %s", f->source, name,
                        ob_dtype_name(v->dtype), found, ob_dtype_name(dtype), want);
    }
    if (out)
        *out = v;
    return OB_OK;
}

const char *ob_st_metadata(const ob_st_file *f, const char *key) {
    for (size_t i = 0; i < f->meta_count; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

size_t ob_st_metadata_count(const ob_st_file *f) { return f->meta_count; }

void ob_st_metadata_at(const ob_st_file *f, size_t index, const char **key, const char **value) {
    bool ok = index < f->meta_count;
    if (key)
        *key = ok ? f->meta_keys[index] : NULL;
    if (value)
        *value = ok ? f->meta_values[index] : NULL;
}
