/* Minimal tensor view (dtype, shape, data) shared by every file format and
 * backend, with the dtype table and half-precision conversions. A view never
 * owns its data, and its data need not be aligned for its dtype (safetensors
 * places tensors at any byte offset): check ob_tensor_aligned() before typed
 * access, or copy (ob_tensor_to_f32 accepts any alignment). Multi-byte values
 * are little-endian, as in every format onebit reads. */
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

/* Bytes per element for byte-aligned dtypes; 0 for packed ones (and for values
 * outside the enum). */
size_t ob_dtype_size(ob_dtype dtype);
/* Bits per element (32, 16, 8, 2, 1, 4); 0 outside the enum. */
int ob_dtype_bits(ob_dtype dtype);
/* Safetensors spelling ("F32", "BF16", ...); packed types: "TERNARY2" etc.;
 * "?" outside the enum. */
const char *ob_dtype_name(ob_dtype dtype);
/* Exact, case-sensitive match of an ob_dtype_name spelling. */
bool ob_dtype_parse(const char *name, ob_dtype *out);
/* Product of the shape (1 for a scalar, 0 when any dimension is 0); -1 on
 * overflow, on a negative dimension, or when ndim is outside [0, OB_MAX_DIMS]. */
int64_t ob_shape_numel(int ndim, const int64_t *shape);
/* Bytes that `numel` elements of `dtype` take (packed types round up to a byte);
 * SIZE_MAX when numel is negative, the dtype unknown, or the count overflows. */
size_t ob_dtype_bytes_for(ob_dtype dtype, int64_t numel);

/* Bit-exact IEEE 754 conversions. Widening is exact (NaN payloads kept, never
 * quietened). Narrowing rounds to nearest, ties to even, keeps subnormals, and
 * turns NaN into a quiet NaN of the same sign with the top payload bits, as the
 * F16C instruction does, so scalar and SIMD paths agree bit for bit. */
float ob_f16_to_f32(uint16_t h);
uint16_t ob_f32_to_f16(float f);   /* overflow (|f| >= 65520) gives inf */
float ob_bf16_to_f32(uint16_t b);
uint16_t ob_f32_to_bf16(float f);

/* True when view->data is a multiple of the element size apart from address 0,
 * so that it may be read as an array of its C type (always true for 1-byte and
 * packed dtypes). */
bool ob_tensor_aligned(const ob_tensor_view *view);

/* Converts an F32, F16 or BF16 view (any alignment) into `out` (numel floats).
 * Fails when view->nbytes does not match the shape. */
ob_status ob_tensor_to_f32(const ob_tensor_view *view, float *out) OB_NODISCARD;

#ifdef __cplusplus
}
#endif
#endif
