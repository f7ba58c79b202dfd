/* Strict JSON on top of cJSON: every JSON file onebit reads (config.json,
 * tokenizer.json, safetensors headers, trainer state) goes through here, so that
 * malformed text, duplicate keys, trailing bytes and invalid UTF-8 are rejected
 * with a message naming the file, line and column. */
#ifndef ONEBIT_JSON_H
#define ONEBIT_JSON_H

#include <cjson/cJSON.h>

#include "onebit/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Maximum nesting of arrays and objects accepted (deeper input is an error, never
 * a stack overflow). */
#define OB_JSON_MAX_DEPTH 256

/* Parses `text[0..len)` as one JSON value. `source` names the input in messages
 * ("config.json"). On success *out is a tree the caller frees with cJSON_Delete. */
ob_status ob_json_parse(const char *text, size_t len, const char *source, cJSON **out) OB_NODISCARD;
ob_status ob_json_load_file(const char *path, cJSON **out) OB_NODISCARD;

/* Writes `root` pretty-printed (2-space indent, trailing newline) atomically. */
ob_status ob_json_save_file(const char *path, const cJSON *root) OB_NODISCARD;

/* Typed reads of object member `key` with errors naming source and field.
 * A missing member leaves *out untouched and returns OB_OK; `present` (may be
 * NULL) tells whether it was there. */
ob_status ob_json_get_int(const cJSON *obj, const char *key, const char *source, int64_t *out, bool *present);
ob_status ob_json_get_double(const cJSON *obj, const char *key, const char *source, double *out, bool *present);
ob_status ob_json_get_bool(const cJSON *obj, const char *key, const char *source, bool *out, bool *present);
/* *out points into the tree. */
ob_status ob_json_get_string(const cJSON *obj, const char *key, const char *source, const char **out, bool *present);

/* True when a JSON number is an integer exactly representable in a double. */
bool ob_json_is_integer(const cJSON *item);
/* "a string", "an array", ... for messages. */
const char *ob_json_type_name(const cJSON *item);

#ifdef __cplusplus
}
#endif
#endif
