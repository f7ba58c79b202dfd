/* safetensors: an mmap reader that validates the whole header before any use
 * and hands out zero-copy views, and a writer whose files other readers accept
 * (8-byte aligned header padded with spaces), written atomically. Format: u64
 * little-endian header length N, N bytes of JSON {name: {dtype, shape,
 * data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data. */
#ifndef ONEBIT_SAFETENSORS_H
#define ONEBIT_SAFETENSORS_H

#include "onebit/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_st_file ob_st_file;

/* Maps and validates `path`: header length within the file (and at most 10^8),
 * strict JSON, entries with exactly dtype/shape/data_offsets, dtypes
 * F32/F16/BF16/I8/U8/I32/I64, shape x dtype size equal to the byte span, spans
 * inside the data area and not overlapping, __metadata__ of strings. Views point
 * into the mapping and may be unaligned for their dtype (ob_tensor_aligned);
 * docs/FORMAT.md lists every rule. */
ob_status ob_st_open(const char *path, ob_st_file **out) OB_NODISCARD;
/* The same over bytes in memory (not copied; they must outlive the file). */
ob_status ob_st_open_memory(const void *data, size_t size, const char *source, ob_st_file **out) OB_NODISCARD;
void ob_st_close(ob_st_file *f);

size_t ob_st_count(const ob_st_file *f);
/* Tensors in file order of their data offsets; NULL past the end. Views and
 * their names stay valid until ob_st_close. */
const ob_tensor_view *ob_st_get(const ob_st_file *f, size_t index);
/* NULL if absent. */
const ob_tensor_view *ob_st_find(const ob_st_file *f, const char *name);
/* Finds `name` and checks its dtype and shape (`shape` holds `ndim` entries);
 * errors name the file, the tensor, what was expected and what was found
 * (OB_ERR_NOT_FOUND, with the nearest name, or OB_ERR_FORMAT). `out` may be NULL. */
ob_status ob_st_require(const ob_st_file *f, const char *name, ob_dtype dtype, int ndim, const int64_t *shape,
                        const ob_tensor_view **out) OB_NODISCARD;
/* __metadata__ value, NULL if absent. */
const char *ob_st_metadata(const ob_st_file *f, const char *key);
size_t ob_st_metadata_count(const ob_st_file *f);
void ob_st_metadata_at(const ob_st_file *f, size_t index, const char **key, const char **value);

typedef struct ob_st_writer ob_st_writer;

ob_status ob_st_writer_create(ob_st_writer **out) OB_NODISCARD;
/* Adds a tensor; `data` is not copied and must stay valid until write (it may
 * be NULL when the tensor is empty). Names must be non-empty UTF-8, unique and
 * not "__metadata__"; packed dtypes are refused (store packed bytes as U8). */
ob_status ob_st_writer_add(ob_st_writer *w, const char *name, ob_dtype dtype, int ndim, const int64_t *shape,
                           const void *data) OB_NODISCARD;
/* Copies both strings; setting a key again replaces its value. */
ob_status ob_st_writer_set_metadata(ob_st_writer *w, const char *key, const char *value) OB_NODISCARD;
/* Writes atomically (temporary file, fsync, rename): header with __metadata__
 * first (keys sorted), then tensors in the order added, padded with spaces so
 * the data starts 8-byte aligned; data in the order added, without gaps. */
ob_status ob_st_writer_write(ob_st_writer *w, const char *path) OB_NODISCARD;
void ob_st_writer_free(ob_st_writer *w);

#ifdef __cplusplus
}
#endif
#endif
