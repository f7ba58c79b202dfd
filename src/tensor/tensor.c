/* The dtype table (size, bits, name), shape arithmetic with overflow checks,
 * and bit-exact half-precision conversions done on the integer representation,
 * so that the result never depends on the compiler's floating-point mode or on
 * the CPU having F16C. ob_tensor_to_f32 reads through memcpy because views into
 * safetensors files may be unaligned. */
#include <string.h>

#include "onebit/tensor.h"

typedef struct {
    const char *name;
    size_t size; /* bytes per element; 0 when packed */
    int bits;
} dtype_info;

static const dtype_info dtype_table[OB_DTYPE_COUNT] = {
    [OB_DTYPE_F32] = {"F32", 4, 32},
    [OB_DTYPE_F16] = {"F16", 2, 16},
    [OB_DTYPE_BF16] = {"BF16", 2, 16},
    [OB_DTYPE_I8] = {"I8", 1, 8},
    [OB_DTYPE_U8] = {"U8", 1, 8},
    [OB_DTYPE_I32] = {"I32", 4, 32},
    [OB_DTYPE_I64] = {"I64", 8, 64},
    [OB_DTYPE_TERNARY2] = {"TERNARY2", 0, 2},
    [OB_DTYPE_BINARY1] = {"BINARY1", 0, 1},
    [OB_DTYPE_FOURBIT] = {"FOURBIT", 0, 4},
};

static bool dtype_valid(ob_dtype dtype) { return (unsigned)dtype < OB_DTYPE_COUNT; }

size_t ob_dtype_size(ob_dtype dtype) { return dtype_valid(dtype) ? dtype_table[dtype].size : 0; }

int ob_dtype_bits(ob_dtype dtype) { return dtype_valid(dtype) ? dtype_table[dtype].bits : 0; }

const char *ob_dtype_name(ob_dtype dtype) { return dtype_valid(dtype) ? dtype_table[dtype].name : "?"; }

bool ob_dtype_parse(const char *name, ob_dtype *out) {
    for (int d = 0; d < OB_DTYPE_COUNT; d++) {
        if (strcmp(name, dtype_table[d].name) == 0) {
            *out = (ob_dtype)d;
            return true;
        }
    }
    return false;
}

int64_t ob_shape_numel(int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > OB_MAX_DIMS)
        return -1;
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        empty |= shape[i] == 0;
    }
    /* [2^40, 2^40, 0] holds no elements: zero wins over overflow. */
    if (empty)
        return 0;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (n > INT64_MAX / shape[i])
            return -1;
        n *= shape[i];
    }
    return n;
}

size_t ob_dtype_bytes_for(ob_dtype dtype, int64_t numel) {
    if (!dtype_valid(dtype) || numel < 0)
        return SIZE_MAX;
    /* ceil(numel * bits / 8) without forming numel * bits, which can overflow
     * when the byte count itself does not. */
    uint64_t n = (uint64_t)numel, bits = (uint64_t)dtype_table[dtype].bits;
    uint64_t whole = n / 8, rest = n % 8;
    if (whole > (UINT64_MAX - 64) / bits)
        return SIZE_MAX;
    uint64_t bytes = whole * bits + (rest * bits + 7) / 8;
    return bytes >= SIZE_MAX ? SIZE_MAX : (size_t)bytes;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float ob_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) /* inf or NaN, payload kept */
        return f32_from_bits(sign | 0x7f800000u | (mant << 13));
    if (exp != 0) /* normal: rebias 15 -> 127 */
        return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
    if (mant == 0)
        return f32_from_bits(sign);
    /* Subnormal mant * 2^-24: shift the leading 1 up to the implicit bit. */
    uint32_t e = 113; /* biased exponent of 2^-14 */
    while (!(mant & 0x400)) {
        mant <<= 1;
        e--;
    }
    return f32_from_bits(sign | (e << 23) | ((mant & 0x3ff) << 13));
}

/* Shifts `m` right by `shift` (1..31) rounding to nearest, ties to even. */
static uint32_t shift_round_even(uint32_t m, unsigned shift) {
    uint32_t kept = m >> shift;
    uint32_t rest = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (kept & 1)))
        kept++;
    return kept;
}

uint16_t ob_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: quiet, top 9 payload bits kept */
        return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
    if (a >= 0x477ff000u) /* 65520 and above round to inf; inf stays inf */
        return (uint16_t)(sign | 0x7c00);
    if (a >= 0x38800000u) /* normal half (>= 2^-14): rebias, round away 13 bits */
        return (uint16_t)(sign | shift_round_even(a - (112u << 23), 13));
    if (a <= 0x33000000u) /* <= 2^-25: rounds to zero (2^-25 is a tie to even 0) */
        return sign;
    /* Half subnormal: value / 2^-24 = m * 2^(e - 126) with the implicit bit in m;
     * e is 102..112 here, so the shift is 14..24. A carry into 0x400 correctly
     * produces the smallest normal. */
    uint32_t e = a >> 23;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    return (uint16_t)(sign | shift_round_even(m, 126 - e));
}

float ob_bf16_to_f32(uint16_t b) { return f32_from_bits((uint32_t)b << 16); }

uint16_t ob_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: quiet, sign and top payload kept */
        return (uint16_t)((x >> 16) | 0x0040);
    /* Overflow rounds into the exponent and gives inf, as it should. */
    return (uint16_t)shift_round_even(x, 16);
}

bool ob_tensor_aligned(const ob_tensor_view *view) {
    size_t size = ob_dtype_size(view->dtype);
    return size <= 1 || (uintptr_t)view->data % size == 0;
}

ob_status ob_tensor_to_f32(const ob_tensor_view *view, float *out) {
    const char *name = view->name ? view->name : "(unnamed)";
    int64_t numel = ob_shape_numel(view->ndim, view->shape);
    if (numel < 0)
        return ob_error(OB_ERR_INVALID_ARG, "tensor '%s': invalid shape", name);
    size_t need = ob_dtype_bytes_for(view->dtype, numel);
    if (need != view->nbytes)
        return ob_error(OB_ERR_INVALID_ARG, "tensor '%s': %zu bytes of data but its shape of %s needs %zu", name,
                        view->nbytes, ob_dtype_name(view->dtype), need);
    const unsigned char *p = view->data;
    size_t n = (size_t)numel;
    switch (view->dtype) {
    case OB_DTYPE_F32:
        if (n)
            memcpy(out, p, n * sizeof(float));
        return OB_OK;
    case OB_DTYPE_F16:
    case OB_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, sizeof h);
            out[i] = view->dtype == OB_DTYPE_F16 ? ob_f16_to_f32(h) : ob_bf16_to_f32(h);
        }
        return OB_OK;
    default:
        return ob_error(OB_ERR_UNSUPPORTED, "tensor '%s': cannot convert %s to F32 (only F32, F16 and BF16)", name,
                        ob_dtype_name(view->dtype));
    }
}
