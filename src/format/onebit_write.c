/* The .1bit writer (version 2, docs/FORMAT.md): the header (fixed part,
 * tensor table, names, config.json, tokenizer.json) padded to 64 bytes, then
 * each tensor's packed bytes on a 64-byte boundary with its scales right
 * after them, a CRC-32 per tensor and one over the header. Everything is laid
 * out before a byte is written, and the file goes through ob_atomic_open, so a
 * refused tensor or a failed write leaves nothing behind. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "format/onebit_layout.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error ".1bit data is little-endian and written from memory as is: big-endian hosts are not supported"
#endif

static const struct {
    ob_dtype dtype;
    uint32_t code;
} dtype_codes[] = {
    {OB_DTYPE_F32, 1}, {OB_DTYPE_F16, 2}, {OB_DTYPE_I8, 3}, {OB_DTYPE_FOURBIT, 4}, {OB_DTYPE_TERNARY2, 5},
    {OB_DTYPE_BINARY1, 6},
};

uint32_t ob_1bit_dtype_code(ob_dtype dtype) {
    for (size_t i = 0; i < sizeof dtype_codes / sizeof *dtype_codes; i++)
        if (dtype_codes[i].dtype == dtype)
            return dtype_codes[i].code;
    return 0;
}

bool ob_1bit_dtype_from_code(uint32_t code, ob_dtype *out) {
    for (size_t i = 0; i < sizeof dtype_codes / sizeof *dtype_codes; i++)
        if (dtype_codes[i].code == code) {
            *out = dtype_codes[i].dtype;
            return true;
        }
    return false;
}

uint64_t ob_1bit_data_bytes(ob_dtype dtype, int ndims, const int64_t *shape) {
    if (ndims < 1 || ndims > OB_1BIT_MAX_DIMS || !ob_1bit_dtype_code(dtype))
        return UINT64_MAX;
    for (int i = 0; i < ndims; i++)
        if (shape[i] < 1 || shape[i] > OB_1BIT_MAX_DIM)
            return UINT64_MAX;
    if (ob_packed_dtype_quantised(dtype)) {
        if (ndims != 2)
            return UINT64_MAX;
        return (uint64_t)shape[0] * ob_packed_row_bytes(dtype, (int)shape[1]);
    }
    uint64_t n = ob_dtype_size(dtype);
    for (int i = 0; i < ndims; i++) {
        if (n > UINT64_MAX / (uint64_t)shape[i])
            return UINT64_MAX;
        n *= (uint64_t)shape[i];
    }
    return n;
}

/* Scales a tensor of this dtype and shape carries. */
static int scale_count(const ob_1bit_tensor *t) { return ob_packed_num_scales(t->dtype, (int)t->shape[0]); }

static int cmp_names(const void *a, const void *b) {
    return strcmp((*(const ob_1bit_tensor *const *)a)->name, (*(const ob_1bit_tensor *const *)b)->name);
}

static ob_status check_tensor(const char *path, int i, const ob_1bit_tensor *t) {
    if (!t->name || !*t->name)
        return ob_error(OB_ERR_INVALID_ARG, "%s: tensor %d has no name", path, i);
    size_t len = strlen(t->name);
    if (len > OB_1BIT_MAX_NAME || !ob_utf8_valid(t->name, len, NULL))
        return ob_error(OB_ERR_INVALID_ARG, "%s: tensor %d: name is not UTF-8 of at most %d bytes", path, i,
                        OB_1BIT_MAX_NAME);
    if (!ob_1bit_dtype_code(t->dtype))
        return ob_error(OB_ERR_INVALID_ARG, "%s: tensor '%s': dtype %s cannot be stored in .1bit", path, t->name,
                        ob_dtype_name(t->dtype));
    uint64_t bytes = ob_1bit_data_bytes(t->dtype, t->ndims, t->shape);
    if (bytes == UINT64_MAX)
        return ob_error(OB_ERR_INVALID_ARG,
                        "%s: tensor '%s': bad shape for %s (%d dimensions; 1 to 4 of 1 .. 2^30, exactly 2 for "
                        "packed dtypes)",
                        path, t->name, ob_dtype_name(t->dtype), t->ndims);
    if (t->data_bytes != bytes || (bytes && !t->data))
        return ob_error(OB_ERR_INVALID_ARG, "%s: tensor '%s': %llu data bytes, its shape needs %llu", path, t->name,
                        (unsigned long long)t->data_bytes, (unsigned long long)bytes);
    int ns = scale_count(t);
    if (t->num_scales != ns || (ns && !t->scales))
        return ob_error(OB_ERR_INVALID_ARG, "%s: tensor '%s': %d scales, %s needs %d", path, t->name, t->num_scales,
                        ob_dtype_name(t->dtype), ns);
    for (int k = 0; k < ns; k++)
        if (!isfinite(t->scales[k]) || t->scales[k] < 0)
            return ob_error(OB_ERR_INVALID_ARG, "%s: tensor '%s': scale %d is %g", path, t->name, k,
                            (double)t->scales[k]);
    return OB_OK;
}

static ob_status check_contents(const char *path, const ob_1bit_contents *c) {
    if (!c->config_json || c->config_len == 0)
        return ob_error(OB_ERR_INVALID_ARG, "%s: a .1bit file needs its config.json", path);
    if (c->num_tensors < 0 || c->num_tensors > OB_1BIT_MAX_TENSORS)
        return ob_error(OB_ERR_INVALID_ARG, "%s: %d tensors", path, c->num_tensors);
    for (int i = 0; i < c->num_tensors; i++) {
        ob_status st = check_tensor(path, i, &c->tensors[i]);
        if (st)
            return st;
    }
    const ob_1bit_tensor **sorted = ob_malloc((size_t)(c->num_tensors + 1) * sizeof *sorted);
    if (!sorted)
        return OB_ERR_NOMEM;
    for (int i = 0; i < c->num_tensors; i++)
        sorted[i] = &c->tensors[i];
    qsort(sorted, (size_t)c->num_tensors, sizeof *sorted, cmp_names);
    ob_status st = OB_OK;
    for (int i = 1; i < c->num_tensors && st == OB_OK; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0)
            st = ob_error(OB_ERR_INVALID_ARG, "%s: tensor name '%s' appears twice", path, sorted[i]->name);
    free(sorted);
    return st;
}

/* Offsets of every part, computed before writing. */
typedef struct {
    uint64_t strings_off, strings_size, config_off, tokenizer_off, header_size, file_size;
    uint64_t *data_off, *scales_off;
} layout;

static void plan(const ob_1bit_contents *c, layout *L) {
    uint64_t at = OB_1BIT_HEADER_BYTES + (uint64_t)c->num_tensors * OB_1BIT_ENTRY_BYTES;
    L->strings_off = at;
    L->strings_size = 0;
    for (int i = 0; i < c->num_tensors; i++)
        L->strings_size += strlen(c->tensors[i].name);
    L->config_off = L->strings_off + L->strings_size;
    L->tokenizer_off = L->config_off + c->config_len;
    L->header_size = align_up64(L->tokenizer_off + c->tokenizer_len, OB_1BIT_ALIGN);
    at = L->header_size;
    for (int i = 0; i < c->num_tensors; i++) {
        const ob_1bit_tensor *t = &c->tensors[i];
        L->data_off[i] = align_up64(at, OB_1BIT_ALIGN);
        at = L->data_off[i] + t->data_bytes;
        L->scales_off[i] = 0;
        if (t->num_scales) {
            L->scales_off[i] = align_up64(at, 4);
            at = L->scales_off[i] + (uint64_t)t->num_scales * sizeof(float);
        }
    }
    L->file_size = at;
}

static void fill_header(const ob_1bit_contents *c, const layout *L, uint8_t *h) {
    memcpy(h + H_MAGIC, "1BIT", 4);
    le_put32(h + H_VERSION, OB_1BIT_VERSION);
    le_put64(h + H_FILE_SIZE, L->file_size);
    le_put64(h + H_HEADER_SIZE, L->header_size);
    le_put32(h + H_TENSOR_COUNT, (uint32_t)c->num_tensors);
    le_put32(h + H_ALIGNMENT, OB_1BIT_ALIGN);
    le_put64(h + H_TABLE_OFFSET, OB_1BIT_HEADER_BYTES);
    le_put64(h + H_STRINGS_OFFSET, L->strings_off);
    le_put64(h + H_STRINGS_SIZE, L->strings_size);
    le_put64(h + H_CONFIG_OFFSET, L->config_off);
    le_put64(h + H_CONFIG_SIZE, c->config_len);
    le_put64(h + H_TOKENIZER_OFFSET, c->tokenizer_len ? L->tokenizer_off : 0);
    le_put64(h + H_TOKENIZER_SIZE, c->tokenizer_len);
    uint64_t name_at = 0;
    for (int i = 0; i < c->num_tensors; i++) {
        const ob_1bit_tensor *t = &c->tensors[i];
        uint8_t *e = h + OB_1BIT_HEADER_BYTES + (size_t)i * OB_1BIT_ENTRY_BYTES;
        size_t len = strlen(t->name);
        memcpy(h + L->strings_off + name_at, t->name, len);
        le_put32(e + E_NAME_OFFSET, (uint32_t)name_at);
        le_put32(e + E_NAME_SIZE, (uint32_t)len);
        name_at += len;
        le_put32(e + E_DTYPE, ob_1bit_dtype_code(t->dtype));
        le_put32(e + E_NDIMS, (uint32_t)t->ndims);
        for (int d = 0; d < t->ndims; d++)
            le_put64(e + E_DIMS + 8 * d, (uint64_t)t->shape[d]);
        le_put64(e + E_DATA_OFFSET, L->data_off[i]);
        le_put64(e + E_DATA_SIZE, t->data_bytes);
        le_put64(e + E_SCALES_OFFSET, L->scales_off[i]);
        le_put32(e + E_SCALE_COUNT, (uint32_t)t->num_scales);
        uint32_t crc = ob_crc32(0, t->data, (size_t)t->data_bytes);
        crc = ob_crc32(crc, t->scales, (size_t)t->num_scales * sizeof(float));
        le_put32(e + E_CRC, crc);
    }
    memcpy(h + L->config_off, c->config_json, c->config_len);
    if (c->tokenizer_len)
        memcpy(h + L->tokenizer_off, c->tokenizer_json, c->tokenizer_len);
    le_put32(h + H_HEADER_CRC, ob_crc32(0, h, (size_t)L->header_size));
}

static bool write_zeros(FILE *f, uint64_t n) {
    static const uint8_t zeros[OB_1BIT_ALIGN];
    return fwrite(zeros, 1, (size_t)n, f) == n;
}

ob_status ob_1bit_write(const char *path, const ob_1bit_contents *c) {
    ob_status st = check_contents(path, c);
    if (st)
        return st;
    layout L;
    size_t n = (size_t)c->num_tensors + 1;
    L.data_off = ob_calloc(n, sizeof *L.data_off);
    L.scales_off = ob_calloc(n, sizeof *L.scales_off);
    uint8_t *header = NULL;
    if (L.data_off && L.scales_off) {
        plan(c, &L);
        header = ob_calloc(1, (size_t)L.header_size);
    }
    if (!header) {
        free(L.data_off);
        free(L.scales_off);
        return OB_ERR_NOMEM;
    }
    fill_header(c, &L, header);
    ob_atomic_file af;
    st = ob_atomic_open(&af, path);
    if (st == OB_OK) {
        bool ok = fwrite(header, 1, (size_t)L.header_size, af.fp) == L.header_size;
        uint64_t at = L.header_size;
        for (int i = 0; ok && i < c->num_tensors; i++) {
            const ob_1bit_tensor *t = &c->tensors[i];
            ok = write_zeros(af.fp, L.data_off[i] - at) &&
                 fwrite(t->data, 1, (size_t)t->data_bytes, af.fp) == t->data_bytes;
            at = L.data_off[i] + t->data_bytes;
            if (ok && t->num_scales) {
                size_t sb = (size_t)t->num_scales * sizeof(float);
                ok = write_zeros(af.fp, L.scales_off[i] - at) && fwrite(t->scales, 1, sb, af.fp) == sb;
                at = L.scales_off[i] + sb;
            }
        }
        if (ok) {
            st = ob_atomic_commit(&af);
        } else {
            ob_atomic_abort(&af);
            st = ob_error(OB_ERR_IO, "%s: write failed (disk full?)", path);
        }
    }
    free(header);
    free(L.data_off);
    free(L.scales_off);
    return st;
}
