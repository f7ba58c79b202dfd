/* Minimal tensor view (dtype, shape, data) shared by every file format and
 * backend, with the dtype table and half-precision conversions. A view never
 * owns its data. */
#ifndef ONEBIT_TENSOR_H
#define ONEBIT_TENSOR_H

#include "onebit/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OB_MAX_DIMS 8

typedef enum ob_dtype {
    OB_DTYPE_F32 = 0,
    OB_DTYPE_F16,
    OB_DTYPE_BF16,
    OB_DTYPE_I8,
    OB_DTYPE_U8,
    OB_DTYPE_I32,
    OB_DTYPE_I64,
    OB_DTYPE_TERNARY2, /* packed: 2 bits per weight */
    OB_DTYPE_BINARY1,  /* packed: 1 bit per weight */
    OB_DTYPE_FOURBIT,  /* packed: 4 bits per weight */
    OB_DTYPE_COUNT
} ob_dtype;

typedef struct ob_tensor_view {
    const char *name; /* may be NULL */
    ob_dtype dtype;
    int ndim;
    int64_t shape[OB_MAX_DIMS];
    const void *data;
    size_t nbytes;
} ob_tensor_view;

/* Bytes per element for byte-aligned dtypes; 0 for packed ones. */
size_t ob_dtype_size(ob_dtype dtype);
/* Bits per element (32, 16, 8, 2, 1, 4). */
int ob_dtype_bits(ob_dtype dtype);
/* Safetensors spelling ("F32", "BF16", ...); packed types: "TERNARY2" etc. */
const char *ob_dtype_name(ob_dtype dtype);
bool ob_dtype_parse(const char *name, ob_dtype *out);
/* Product of the shape (1 for a scalar); -1 on overflow. */
int64_t ob_shape_numel(int ndim, const int64_t *shape);
/* Bytes that `numel` elements of `dtype` take (packed types round up to a byte). */
size_t ob_dtype_bytes_for(ob_dtype dtype, int64_t numel);

float ob_f16_to_f32(uint16_t h);
uint16_t ob_f32_to_f16(float f);   /* round to nearest even; overflow to inf */
float ob_bf16_to_f32(uint16_t b);
uint16_t ob_f32_to_bf16(float f);  /* round to nearest even; NaN stays NaN */

/* Converts an F32, F16 or BF16 view into `out` (numel floats). */
ob_status ob_tensor_to_f32(const ob_tensor_view *view, float *out) OB_NODISCARD;

#ifdef __cplusplus
}
#endif
#endif
