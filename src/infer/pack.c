/* Packing of one matrix into the runtime's layout (include/onebit/infer.h and
 * docs/INFERENCE.md): codes from the training quantiser are written as 32-byte
 * groups, rows padded to a multiple of 256 weights with codes whose product
 * with the (zero) padded activations vanishes. Reading a code back is here too,
 * for the embedding lookup, the tests and the exporters. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/infer.h"
#include "onebit/quant.h"

ob_dtype ob_packed_dtype_for_mode(ob_quant_mode mode) {
    switch (mode) {
    case OB_MODE_EIGHTBIT: return OB_DTYPE_I8;
    case OB_MODE_FOURBIT: return OB_DTYPE_FOURBIT;
    case OB_MODE_TERNARY: return OB_DTYPE_TERNARY2;
    case OB_MODE_BINARY: return OB_DTYPE_BINARY1;
    case OB_MODE_F16: break;
    }
    return OB_DTYPE_F16;
}

bool ob_packed_dtype_quantised(ob_dtype dtype) {
    return dtype == OB_DTYPE_I8 || dtype == OB_DTYPE_FOURBIT || dtype == OB_DTYPE_TERNARY2 ||
           dtype == OB_DTYPE_BINARY1;
}

int ob_packed_cols_padded(ob_dtype dtype, int cols) {
    if (!ob_packed_dtype_quantised(dtype))
        return cols;
    return (cols + OB_PACK_ROW_MULTIPLE - 1) / OB_PACK_ROW_MULTIPLE * OB_PACK_ROW_MULTIPLE;
}

size_t ob_packed_row_bytes(ob_dtype dtype, int cols) {
    if (cols < 0)
        return 0;
    size_t k = (size_t)ob_packed_cols_padded(dtype, cols);
    switch (dtype) {
    case OB_DTYPE_F32: return k * 4;
    case OB_DTYPE_F16: return k * 2;
    case OB_DTYPE_I8: return k;
    case OB_DTYPE_FOURBIT: return k / 2;
    case OB_DTYPE_TERNARY2: return k / 4;
    case OB_DTYPE_BINARY1: return k / 8;
    default: return 0;
    }
}

int ob_packed_num_scales(ob_dtype dtype, int rows) {
    switch (dtype) {
    case OB_DTYPE_I8:
    case OB_DTYPE_FOURBIT: return rows;
    case OB_DTYPE_TERNARY2:
    case OB_DTYPE_BINARY1: return 1;
    default: return 0;
    }
}

void ob_packed_tensor_init(ob_packed_tensor *t, ob_dtype dtype, int rows, int cols, const void *data,
                           const float *scales) {
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->rows = rows;
    t->cols = cols;
    t->cols_padded = ob_packed_cols_padded(dtype, cols);
    t->row_bytes = ob_packed_row_bytes(dtype, cols);
    t->data = data;
    t->scales = scales;
    t->num_scales = ob_packed_num_scales(dtype, rows);
}

/* Whether code c can be stored in dtype. */
static int code_range_ok(ob_dtype dtype, int c) {
    switch (dtype) {
    case OB_DTYPE_I8: return c >= -127 && c <= 127;
    case OB_DTYPE_FOURBIT: return c >= -7 && c <= 7;
    case OB_DTYPE_TERNARY2: return c >= -1 && c <= 1;
    case OB_DTYPE_BINARY1: return c == -1 || c == 1;
    default: return 0;
    }
}

static void pack_row(ob_dtype dtype, const int8_t *codes, int cols, int kp, uint8_t *out) {
    switch (dtype) {
    case OB_DTYPE_I8:
        for (int j = 0; j < kp; j++)
            out[j] = (uint8_t)(j < cols ? codes[j] : 0);
        break;
    case OB_DTYPE_FOURBIT:
        for (int g = 0; g < kp / 64; g++) {
            for (int b = 0; b < 32; b++) {
                int j0 = g * 64 + b, j1 = j0 + 32;
                int lo = (j0 < cols ? codes[j0] : 0) + 8, hi = (j1 < cols ? codes[j1] : 0) + 8;
                out[g * 32 + b] = (uint8_t)(lo | hi << 4);
            }
        }
        break;
    case OB_DTYPE_TERNARY2:
        for (int g = 0; g < kp / 128; g++) {
            for (int b = 0; b < 32; b++) {
                unsigned v = 0;
                for (int k = 0; k < 4; k++) {
                    int j = g * 128 + 32 * k + b;
                    v |= (unsigned)((j < cols ? codes[j] : 0) + 1) << (2 * k);
                }
                out[g * 32 + b] = (uint8_t)v;
            }
        }
        break;
    case OB_DTYPE_BINARY1:
        for (int g = 0; g < kp / 256; g++) {
            for (int b = 0; b < 32; b++) {
                unsigned v = 0;
                for (int k = 0; k < 8; k++) {
                    int j = g * 256 + 32 * k + b;
                    if (j < cols && codes[j] > 0)
                        v |= 1u << k;
                }
                out[g * 32 + b] = (uint8_t)v;
            }
        }
        break;
    default: break;
    }
}

ob_status ob_pack_codes(ob_dtype dtype, const int8_t *codes, int rows, int cols, void *data) {
    if (!ob_packed_dtype_quantised(dtype))
        return ob_error(OB_ERR_INVALID_ARG, "pack: dtype %s holds no integer codes", ob_dtype_name(dtype));
    if (rows < 0 || cols < 1)
        return ob_error(OB_ERR_INVALID_ARG, "pack: bad shape [%d, %d]", rows, cols);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        if (!code_range_ok(dtype, codes[i]))
            return ob_error(OB_ERR_INVALID_ARG, "pack: code %d at row %zu, column %zu does not fit %s", codes[i],
                            i / (size_t)cols, i % (size_t)cols, ob_dtype_name(dtype));
    int kp = ob_packed_cols_padded(dtype, cols);
    size_t rb = ob_packed_row_bytes(dtype, cols);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
        pack_row(dtype, codes + (size_t)r * cols, cols, kp, (uint8_t *)data + (size_t)r * rb);
    return OB_OK;
}

ob_status ob_pack_weight(ob_quant_mode mode, bool dynamic_threshold, float clamp, const float *w, int rows, int cols,
                         void *data, float *scales) {
    if (mode == OB_MODE_F16) {
        uint16_t *h = data;
        for (size_t i = 0; i < (size_t)rows * cols; i++)
            h[i] = ob_f32_to_f16(w[i]);
        return OB_OK;
    }
    ob_dtype dtype = ob_packed_dtype_for_mode(mode);
    int8_t *codes = ob_malloc((size_t)rows * cols);
    float *row_scales = ob_malloc((size_t)rows * sizeof(float));
    if (!codes || !row_scales) {
        free(codes);
        free(row_scales);
        return OB_ERR_NOMEM;
    }
    ob_quant_weight_hard(mode, dynamic_threshold, clamp, w, rows, cols, codes, row_scales, NULL, NULL);
    ob_status st = ob_pack_codes(dtype, codes, rows, cols, data);
    if (st == OB_OK)
        memcpy(scales, row_scales, (size_t)ob_packed_num_scales(dtype, rows) * sizeof(float));
    free(codes);
    free(row_scales);
    return st;
}

ob_status ob_pack_rows_absmax(ob_dtype dtype, const float *w, int rows, int cols, void *data, float *scales) {
    if (dtype != OB_DTYPE_I8 && dtype != OB_DTYPE_FOURBIT)
        return ob_error(OB_ERR_INVALID_ARG, "pack: per-row absmax needs I8 or FOURBIT, not %s", ob_dtype_name(dtype));
    float qmax = dtype == OB_DTYPE_I8 ? 127.0f : 7.0f;
    int kp = ob_packed_cols_padded(dtype, cols);
    size_t rb = ob_packed_row_bytes(dtype, cols);
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        int8_t *row = malloc((size_t)cols);
        if (!row)
            failed = 1;
#pragma omp for schedule(static)
        for (int r = 0; r < rows; r++) {
            if (!row)
                continue;
            const float *wr = w + (size_t)r * cols;
            float m = 0;
            for (int j = 0; j < cols; j++)
                m = fmaxf(m, fabsf(wr[j]));
            float s = (m > 1e-8f ? m : 1e-8f) / qmax;
            for (int j = 0; j < cols; j++) {
                float q = rintf(wr[j] / s);
                row[j] = (int8_t)(q > qmax ? qmax : (q < -qmax ? -qmax : q));
            }
            pack_row(dtype, row, cols, kp, (uint8_t *)data + (size_t)r * rb);
            scales[r] = s;
        }
        free(row);
    }
    return failed ? ob_error(OB_ERR_NOMEM, "pack: out of memory") : OB_OK;
}

int ob_packed_code(const ob_packed_tensor *t, int r, int j) {
    const uint8_t *row = (const uint8_t *)t->data + (size_t)r * t->row_bytes;
    switch (t->dtype) {
    case OB_DTYPE_I8: return (int8_t)row[j];
    case OB_DTYPE_FOURBIT: {
        uint8_t v = row[(j / 64) * 32 + j % 32];
        return ((j % 64) < 32 ? (v & 15) : (v >> 4)) - 8;
    }
    case OB_DTYPE_TERNARY2: {
        uint8_t v = row[(j / 128) * 32 + j % 32];
        return ((v >> (2 * ((j % 128) / 32))) & 3) - 1;
    }
    case OB_DTYPE_BINARY1: {
        uint8_t v = row[(j / 256) * 32 + j % 32];
        return (v >> ((j % 256) / 32)) & 1 ? 1 : -1;
    }
    default: return 0;
    }
}

void ob_packed_row_to_f32(const ob_packed_tensor *t, int r, float *out) {
    const uint8_t *row = (const uint8_t *)t->data + (size_t)r * t->row_bytes;
    if (t->dtype == OB_DTYPE_F32) {
        memcpy(out, row, (size_t)t->cols * sizeof(float));
        return;
    }
    if (t->dtype == OB_DTYPE_F16) {
        const uint16_t *h = (const uint16_t *)row;
        for (int j = 0; j < t->cols; j++)
            out[j] = ob_f16_to_f32(h[j]);
        return;
    }
    /* The same product the training quantiser forms: code · scale in float. */
    float scale = t->scales[t->num_scales == 1 ? 0 : r];
    for (int j = 0; j < t->cols; j++)
        out[j] = (float)ob_packed_code(t, r, j) * scale;
}
