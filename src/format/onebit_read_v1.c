/* Version 1 .1bit files, as OneBit-LLM writes them (docs/FORMAT.md):
 *
 *   "1BIT", u32 version = 1, u32 tensor count, u32 config length, config JSON,
 *   then per tensor: u32 name length, name, u8 dtype (1 binary, 2 ternary),
 *   u32 ndims, u64 dims[ndims], u64 data length, data
 *
 * all little-endian, the codes of the whole tensor packed least-significant
 * bits first (ternary 2 bits: 00 = 0, 01 = +1, 11 = -1; binary 1 bit: 1 = +1,
 * 0 = -1). The format has no scales, no alignment and no checksums, so the
 * reader checks every length against the file in a first pass, then unpacks
 * each tensor (as a matrix [product of the leading dims, last dim]) into the
 * runtime's packed layout with scale 1, in memory it owns. */
#include <stdlib.h>
#include <string.h>

#include "format/onebit_read.h"

typedef struct {
    const uint8_t *b;
    uint64_t size, at;
} cursor;

static bool take(cursor *c, uint64_t n, const uint8_t **p) {
    if (n > c->size - c->at)
        return false;
    *p = c->b + c->at;
    c->at += n;
    return true;
}

static ob_status truncated(const ob_1bit_file *f, const char *what, int tensor) {
    if (tensor >= 0)
        return ob_error(OB_ERR_FORMAT, "%s: version 1: truncated in the %s of tensor %d", f->source, what, tensor);
    return ob_error(OB_ERR_FORMAT, "%s: version 1: truncated in the %s", f->source, what);
}

/* One tensor's record, located and checked (first pass). */
typedef struct {
    const uint8_t *name, *data;
    uint32_t name_len;
    ob_dtype dtype;
    int ndims;
    int64_t shape[OB_1BIT_MAX_DIMS];
    int rows, cols;
    uint64_t numel;
} v1_record;

static ob_status read_record(ob_1bit_file *f, cursor *c, int i, v1_record *r) {
    const uint8_t *p;
    if (!take(c, 4, &p))
        return truncated(f, "name length", i);
    r->name_len = le_get32(p);
    if (r->name_len == 0 || r->name_len > OB_1BIT_MAX_NAME)
        return ob_error(OB_ERR_FORMAT, "%s: version 1: tensor %d: name length %u (1 to %d)", f->source, i, r->name_len,
                        OB_1BIT_MAX_NAME);
    if (!take(c, r->name_len, &r->name))
        return truncated(f, "name", i);
    if (memchr(r->name, 0, r->name_len) || !ob_utf8_valid((const char *)r->name, r->name_len, NULL))
        return ob_error(OB_ERR_FORMAT, "%s: version 1: tensor %d: name is not UTF-8 without NUL bytes", f->source, i);
    int nl = (int)r->name_len;
    const char *nm = (const char *)r->name;
    if (!take(c, 1, &p))
        return truncated(f, "dtype", i);
    if (*p != 1 && *p != 2)
        return ob_error(OB_ERR_FORMAT, "%s: version 1: tensor '%.*s': dtype %u (1 binary, 2 ternary)", f->source, nl,
                        nm, *p);
    r->dtype = *p == 1 ? OB_DTYPE_BINARY1 : OB_DTYPE_TERNARY2;
    if (!take(c, 4, &p))
        return truncated(f, "ndims", i);
    uint32_t nd = le_get32(p);
    if (nd < 1 || nd > OB_1BIT_MAX_DIMS)
        return ob_error(OB_ERR_FORMAT, "%s: version 1: tensor '%.*s': ndims %u (1 to %d are supported)", f->source, nl,
                        nm, nd, OB_1BIT_MAX_DIMS);
    r->ndims = (int)nd;
    uint64_t rows = 1;
    r->numel = 1;
    for (int d = 0; d < r->ndims; d++) {
        if (!take(c, 8, &p))
            return truncated(f, "dims", i);
        uint64_t v = le_get64(p);
        if (v < 1 || v > OB_1BIT_MAX_DIM)
            return ob_error(OB_ERR_FORMAT, "%s: version 1: tensor '%.*s': dims[%d] = %llu (1 to 2^30)", f->source,
                            nl, nm, d, (unsigned long long)v);
        r->shape[d] = (int64_t)v;
        if (r->numel > UINT64_MAX / 4 / v)
            return ob_error(OB_ERR_FORMAT, "%s: version 1: tensor '%.*s': too many elements", f->source, nl, nm);
        r->numel *= v;
        if (d < r->ndims - 1)
            rows *= v;
    }
    if (rows > OB_1BIT_MAX_DIM)
        return ob_error(OB_ERR_FORMAT, "%s: version 1: tensor '%.*s': %llu rows (at most 2^30)", f->source, nl, nm,
                        (unsigned long long)rows);
    r->rows = (int)rows;
    r->cols = (int)r->shape[r->ndims - 1];
    if (!take(c, 8, &p))
        return truncated(f, "data length", i);
    uint64_t len = le_get64(p), bits = r->dtype == OB_DTYPE_TERNARY2 ? 2 : 1;
    uint64_t want = (r->numel * bits + 7) / 8;
    if (len != want)
        return ob_error(OB_ERR_FORMAT, "%s: version 1: tensor '%.*s': data length %llu, %llu %s codes need %llu",
                        f->source, nl, nm, (unsigned long long)len, (unsigned long long)r->numel,
                        bits == 2 ? "ternary" : "binary", (unsigned long long)want);
    if (!take(c, len, &r->data))
        return truncated(f, "data", i);
    return OB_OK;
}

/* Code k of a version 1 tensor; 2 marks the invalid ternary pattern 10. */
static int v1_code(const v1_record *r, uint64_t k) {
    if (r->dtype == OB_DTYPE_BINARY1)
        return (r->data[k / 8] >> (k % 8)) & 1 ? 1 : -1;
    static const int codes[4] = {0, 1, 2, -1};
    return codes[(r->data[k / 4] >> (2 * (k % 4))) & 3];
}

static ob_status unpack(ob_1bit_file *f, const v1_record *r, ob_1bit_tensor *t, uint8_t *dst, float *scale,
                        bool skip) {
    int8_t *codes = ob_malloc((size_t)r->numel);
    if (!codes)
        return OB_ERR_NOMEM;
    ob_status st = OB_OK;
    for (uint64_t k = 0; k < r->numel; k++) {
        int c = v1_code(r, k);
        if (c == 2) {
            if (!skip) {
                st = ob_error(OB_ERR_FORMAT, "%s: version 1: tensor '%s': element %llu holds the invalid ternary code 10",
                              f->source, t->name, (unsigned long long)k);
                break;
            }
            c = 0;
        }
        codes[k] = (int8_t)c;
    }
    if (st == OB_OK)
        st = ob_pack_codes(r->dtype, codes, r->rows, r->cols, dst);
    free(codes);
    *scale = 1.0f;
    t->dtype = r->dtype;
    t->ndims = r->ndims;
    memcpy(t->shape, r->shape, sizeof t->shape);
    t->data = dst;
    t->data_bytes = (uint64_t)r->rows * ob_packed_row_bytes(r->dtype, r->cols);
    t->scales = scale;
    t->num_scales = 1;
    return st;
}

ob_status ob_1bit_parse_v1(ob_1bit_file *f, const uint8_t *b, uint64_t size, bool skip) {
    cursor c = {b, size, 8};
    const uint8_t *p;
    if (!take(&c, 8, &p))
        return truncated(f, "header", -1);
    uint32_t count = le_get32(p), clen = le_get32(p + 4);
    if (count > OB_1BIT_MAX_TENSORS)
        return ob_error(OB_ERR_FORMAT, "%s: version 1: tensor count %u (at most %d)", f->source, count,
                        OB_1BIT_MAX_TENSORS);
    if (!take(&c, clen, &p))
        return ob_error(OB_ERR_FORMAT, "%s: version 1: config length %u runs past the end of the file (%llu bytes)",
                        f->source, clen, (unsigned long long)size);
    f->config_json = (const char *)p;
    f->config_len = clen;
    f->tokenizer_json = "";
    f->tokenizer_len = 0;
    f->file_bytes = size;
    /* Each record takes at least 26 bytes, which bounds the count before allocating. */
    if (count > (size - c.at) / 26 + 1)
        return truncated(f, "tensor records", -1);
    v1_record *recs = ob_calloc((size_t)count + 1, sizeof *recs);
    if (!recs)
        return OB_ERR_NOMEM;
    ob_status st = OB_OK;
    uint64_t need = 0;
    for (uint32_t i = 0; i < count && st == OB_OK; i++) {
        st = read_record(f, &c, (int)i, &recs[i]);
        if (st == OB_OK) {
            uint64_t bytes = (uint64_t)recs[i].rows * ob_packed_row_bytes(recs[i].dtype, recs[i].cols);
            need += align_up64(recs[i].name_len + 1, OB_1BIT_ALIGN) + OB_1BIT_ALIGN + align_up64(bytes, OB_1BIT_ALIGN);
        }
    }
    if (st == OB_OK && c.at != size)
        st = ob_error(OB_ERR_FORMAT, "%s: version 1: %llu bytes after the last tensor", f->source,
                      (unsigned long long)(size - c.at));
    f->header_bytes = 16 + (uint64_t)clen;
    if (st == OB_OK && need > SIZE_MAX / 2)
        st = ob_error(OB_ERR_FORMAT, "%s: version 1: the tensors need %llu bytes unpacked", f->source,
                      (unsigned long long)need);
    uint8_t *mem = NULL;
    if (st == OB_OK) {
        f->tensors = ob_calloc((size_t)count + 1, sizeof *f->tensors);
        mem = ob_aligned_alloc((size_t)need + 1);
        f->owned = mem;
        if (!f->tensors || !mem)
            st = OB_ERR_NOMEM;
    }
    f->num_tensors = st == OB_OK ? (int)count : 0;
    uint64_t at = 0;
    for (uint32_t i = 0; i < count && st == OB_OK; i++) {
        const v1_record *r = &recs[i];
        ob_1bit_tensor *t = &f->tensors[i];
        char *name = (char *)mem + at;
        memcpy(name, r->name, r->name_len);
        name[r->name_len] = 0;
        t->name = name;
        at = align_up64(at + r->name_len + 1, OB_1BIT_ALIGN);
        float *scale = (float *)(void *)(mem + at);
        at += OB_1BIT_ALIGN;
        st = unpack(f, r, t, mem + at, scale, skip);
        at = align_up64(at + t->data_bytes, OB_1BIT_ALIGN);
    }
    free(recs);
    if (st == OB_OK)
        st = ob_1bit_check_unique_names(f);
    return st;
}
