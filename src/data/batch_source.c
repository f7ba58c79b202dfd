/* The batch-source front end: argument checks shared by every source, the
 * rank rule of data parallelism, and the JSON form of cursors. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "data/batch_source.h"
#include "onebit/json.h"

ob_status ob_batch_source_init(ob_batch_source *src, const ob_batch_source_ops *ops, int rank, int world) {
    if (world < 1 || rank < 0 || rank >= world)
        return ob_error(OB_ERR_INVALID_ARG, "batch source: rank %d is not in [0, world %d)", rank, world);
    src->ops = ops;
    src->rank = rank;
    src->world = world;
    return OB_OK;
}

int ob_batch_rank_rows(const ob_batch_source *src, int B, int64_t global_rows) {
    int64_t mine = global_rows - (int64_t)src->rank * B;
    return mine <= 0 ? 0 : mine >= B ? B : (int)mine;
}

ob_status ob_batch_source_next(ob_batch_source *src, int B, int T, int32_t *inputs, int32_t *targets,
                               ob_batch_rows *info) {
    if (B < 1 || T < 1)
        return ob_error(OB_ERR_INVALID_ARG, "batch source: B = %d and T = %d must be positive", B, T);
    if (!inputs || !targets)
        return ob_error(OB_ERR_INVALID_ARG, "batch source: inputs and targets are required");
    if ((int64_t)B * src->world > INT32_MAX / T)
        return ob_error(OB_ERR_INVALID_ARG, "batch source: B = %d x world %d x T = %d is too large", B, src->world, T);
    if (!info && src->ends)
        return ob_error(OB_ERR_INVALID_ARG, "batch source (%s): passes end, so ob_batch_source_next needs its "
                        "ob_batch_rows argument", src->ops->kind);
    ob_batch_rows local;
    ob_batch_rows *out = info ? info : &local;
    memset(out, 0, sizeof *out);
    return src->ops->next(src, B, T, inputs, targets, out);
}

double ob_batch_source_epoch(const ob_batch_source *src) { return src->ops->epoch(src); }
const char *ob_batch_source_describe(const ob_batch_source *src) { return src->description; }

void ob_batch_source_free(ob_batch_source *src) {
    if (src)
        src->ops->destroy(src);
}

ob_status ob_batch_source_save_json(const ob_batch_source *src, cJSON **out) {
    *out = cJSON_CreateObject();
    if (!*out || !cJSON_AddStringToObject(*out, "kind", src->ops->kind)) {
        cJSON_Delete(*out);
        *out = NULL;
        return ob_error(OB_ERR_NOMEM, "out of memory saving a batch cursor");
    }
    ob_status st = src->ops->save(src, *out);
    if (st) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    return st;
}

ob_status ob_batch_source_restore_json(ob_batch_source *src, const cJSON *cursor, const char *source) {
    if (!source)
        source = "batch cursor";
    if (!cJSON_IsObject(cursor))
        return ob_error(OB_ERR_FORMAT, "%s: %s, expected an object", source, ob_json_type_name(cursor));
    const char *kind = NULL;
    ob_status st = ob_json_get_string(cursor, "kind", source, &kind, NULL);
    if (st)
        return st;
    if (!kind || strcmp(kind, src->ops->kind) != 0)
        return ob_error(OB_ERR_FORMAT, "%s: field 'kind' = '%s' does not match this %s source", source,
                        kind ? kind : "(missing)", src->ops->kind);
    return src->ops->restore(src, cursor, source);
}

ob_status ob_batch_source_save(const ob_batch_source *src, char **json_text) {
    *json_text = NULL;
    cJSON *root;
    ob_status st = ob_batch_source_save_json(src, &root);
    if (st)
        return st;
    char *printed = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!printed)
        return ob_error(OB_ERR_NOMEM, "out of memory printing a batch cursor");
    *json_text = ob_strdup(printed);
    cJSON_free(printed);
    return *json_text ? OB_OK : OB_ERR_NOMEM;
}

ob_status ob_batch_source_restore(ob_batch_source *src, const char *json_text) {
    cJSON *root;
    ob_status st = ob_json_parse(json_text, strlen(json_text), "batch cursor", &root);
    if (st)
        return st;
    st = ob_batch_source_restore_json(src, root, "batch cursor");
    cJSON_Delete(root);
    return st;
}

/* ---- cursor fields ---------------------------------------------------------------- */

ob_status ob_cursor_put_u64(cJSON *obj, const char *key, uint64_t value) {
    char text[24];
    snprintf(text, sizeof text, "0x%016" PRIx64, value);
    return cJSON_AddStringToObject(obj, key, text) ? OB_OK : ob_error(OB_ERR_NOMEM, "out of memory saving a cursor");
}

ob_status ob_cursor_item_u64(const cJSON *item, const char *source, const char *what, uint64_t *value) {
    const char *text = cJSON_IsString(item) ? item->valuestring : NULL;
    char *end = NULL;
    unsigned long long v = 0;
    if (text && strncmp(text, "0x", 2) == 0 && strlen(text) == 18)
        v = strtoull(text + 2, &end, 16);
    if (!end || *end)
        return ob_error(OB_ERR_FORMAT, "%s: %s = %s is not a 0x-prefixed 16-digit hex string", source, what,
                        text ? text : ob_json_type_name(item));
    *value = (uint64_t)v;
    return OB_OK;
}

ob_status ob_cursor_get_u64(const cJSON *obj, const char *key, const char *source, uint64_t *value) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item)
        return ob_error(OB_ERR_FORMAT, "%s: field '%s' is missing", source, key);
    char what[96];
    snprintf(what, sizeof what, "field '%s'", key);
    return ob_cursor_item_u64(item, source, what, value);
}

ob_status ob_cursor_put_int(cJSON *obj, const char *key, int64_t value) {
    return cJSON_AddNumberToObject(obj, key, (double)value) ? OB_OK
                                                            : ob_error(OB_ERR_NOMEM, "out of memory saving a cursor");
}

ob_status ob_cursor_get_count(const cJSON *obj, const char *key, const char *source, uint64_t *value) {
    int64_t v = 0;
    bool present = false;
    ob_status st = ob_json_get_int(obj, key, source, &v, &present);
    if (st)
        return st;
    if (!present)
        return ob_error(OB_ERR_FORMAT, "%s: field '%s' is missing", source, key);
    if (v < 0)
        return ob_error(OB_ERR_FORMAT, "%s: field '%s' = %lld is negative", source, key, (long long)v);
    *value = (uint64_t)v;
    return OB_OK;
}
