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
 * ("config.json"). On success *out is a tree the caller frees with cJSON_Delete.
 * Rejected: syntax errors, duplicate keys in one object, bytes after the value,
 * invalid UTF-8, a byte order mark, \u0000 and unpaired surrogates, nesting over
 * OB_JSON_MAX_DEPTH, and numbers beyond the range of a double. */
ob_status ob_json_parse(const char *text, size_t len, const char *source, cJSON **out) OB_NODISCARD;
ob_status ob_json_load_file(const char *path, cJSON **out) OB_NODISCARD;

/* JSON text of `root` (heap string, free with free()): pretty = two-space indent,
 * arrays of scalars on one line, trailing newline; otherwise compact. Numbers
 * use the fewest digits that read back to the same double (cJSON's own printer
 * may round the last bits); non-finite numbers print as null. NULL when out of
 * memory. */
char *ob_json_print(const cJSON *root, bool pretty);
/* Shortest round-trip text of one number into buf (40 bytes are enough). */
void ob_json_format_number(double v, char *buf, size_t size);
/* Writes `root` with ob_json_print(root, true) atomically. */
ob_status ob_json_save_file(const char *path, const cJSON *root) OB_NODISCARD;

/* Typed reads of object member `key` with errors naming source and field.
 * A missing member leaves *out untouched and returns OB_OK; `present` (may be
 * NULL) tells whether it was there. */
ob_status ob_json_get_int(const cJSON *obj, const char *key, const char *source, int64_t *out, bool *present);
ob_status ob_json_get_double(const cJSON *obj, const char *key, const char *source, double *out, bool *present);
ob_status ob_json_get_bool(const cJSON *obj, const char *key, const char *source, bool *out, bool *present);
/* *out points into the tree. */
ob_status ob_json_get_string(const cJSON *obj, const char *key, const char *source, const char **out, bool *present);

/* Records "source: field 'key' = VALUE must be WANTED, found TYPE" (VALUE is the
 * item as JSON, shortened) and returns OB_ERR_FORMAT. `wanted`: "an integer". */
ob_status ob_json_type_error(const cJSON *item, const char *key, const char *source, const char *wanted);

/* True when a JSON number is an integer exactly representable in a double. */
bool ob_json_is_integer(const cJSON *item);
/* "a string", "an array", ... for messages. */
const char *ob_json_type_name(const cJSON *item);

#ifdef __cplusplus
}
#endif
#endif
