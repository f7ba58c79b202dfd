/* The .1bit reader: maps the file and validates all of it before handing out
 * a view (docs/FORMAT.md, "What the reader checks"): the fixed header, its
 * checksum, the placement of the tensor table, names, config and tokenizer
 * inside the header, every table entry (name, dtype, shape, sizes, offsets,
 * alignment, reserved bytes), that no two spans of data overlap, then each
 * tensor's checksum, scales and integer codes. Every length and offset is
 * checked against the file before it is used, with overflow-safe arithmetic.
 * Version 1 files (OneBit-LLM) go to onebit_read_v1.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "format/onebit_read.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error ".1bit data is little-endian and read in place: big-endian hosts are not supported"
#endif

/* [off, off + size) lies inside [lo, hi), without overflow. */
static bool span_inside(uint64_t off, uint64_t size, uint64_t lo, uint64_t hi) {
    return off >= lo && off <= hi && size <= hi - off;
}

static bool spans_overlap(uint64_t a, uint64_t an, uint64_t b, uint64_t bn) {
    return an && bn && a < b + bn && b < a + an;
}

typedef struct {
    uint64_t off, size;
    const char *what;
    int tensor;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->off < y->off ? -1 : (x->off > y->off ? 1 : 0);
}

/* The name of tensor i for messages: its own once read, else its index. */
static const char *tname(const ob_1bit_file *f, int i, char *buf, size_t n) {
    if (f->tensors && f->tensors[i].name)
        snprintf(buf, n, "tensor '%s'", f->tensors[i].name);
    else
        snprintf(buf, n, "tensor %d", i);
    return buf;
}

static ob_status check_fixed(const uint8_t *b, uint64_t size, const char *src, bool skip, uint64_t *header_size) {
    if (size < OB_1BIT_HEADER_BYTES)
        return ob_error(OB_ERR_FORMAT, "%s: truncated: %llu bytes, the version 2 header alone is %d", src,
                        (unsigned long long)size, OB_1BIT_HEADER_BYTES);
    uint64_t hs = le_get64(b + H_HEADER_SIZE);
    if (hs < OB_1BIT_HEADER_BYTES || hs % OB_1BIT_ALIGN || hs > size)
        return ob_error(OB_ERR_FORMAT,
                        "%s: field 'header_size' = %llu (a multiple of 64, at least %d, at most the file's %llu bytes)",
                        src, (unsigned long long)hs, OB_1BIT_HEADER_BYTES, (unsigned long long)size);
    if (!skip) {
        uint32_t stored = le_get32(b + H_HEADER_CRC);
        uint8_t zero[4] = {0};
        uint32_t crc = ob_crc32(0, b, H_HEADER_CRC);
        crc = ob_crc32(crc, zero, 4);
        crc = ob_crc32(crc, b + H_HEADER_CRC + 4, (size_t)hs - H_HEADER_CRC - 4);
        if (crc != stored)
            return ob_error(OB_ERR_FORMAT, "%s: header checksum mismatch (field 'header_crc32' = %08x, the header's "
                                           "CRC-32 is %08x): the file is damaged",
                            src, stored, crc);
    }
    uint64_t fs = le_get64(b + H_FILE_SIZE);
    if (fs != size)
        return ob_error(OB_ERR_FORMAT, "%s: field 'file_size' = %llu but the file has %llu bytes (truncated or "
                                       "appended to)",
                        src, (unsigned long long)fs, (unsigned long long)size);
    uint32_t flags = le_get32(b + H_FLAGS), align = le_get32(b + H_ALIGNMENT);
    if (flags)
        return ob_error(OB_ERR_FORMAT, "%s: field 'flags' = %u (must be 0 in version 2)", src, flags);
    if (align != OB_1BIT_ALIGN)
        return ob_error(OB_ERR_FORMAT, "%s: field 'alignment' = %u (must be %d)", src, align, OB_1BIT_ALIGN);
    for (int i = H_RESERVED; i < OB_1BIT_HEADER_BYTES; i++)
        if (b[i])
            return ob_error(OB_ERR_FORMAT, "%s: reserved header byte %d is %u (must be 0)", src, i, b[i]);
    *header_size = hs;
    return OB_OK;
}

/* The table, names, config and tokenizer inside the header, apart. */
static ob_status check_regions(ob_1bit_file *f, const uint8_t *b, uint64_t hs) {
    const char *src = f->source;
    uint64_t count = le_get32(b + H_TENSOR_COUNT);
    if (count > OB_1BIT_MAX_TENSORS)
        return ob_error(OB_ERR_FORMAT, "%s: field 'tensor_count' = %llu (at most %d)", src, (unsigned long long)count,
                        OB_1BIT_MAX_TENSORS);
    struct {
        const char *name;
        uint64_t off, size;
    } r[4] = {
        {"table", le_get64(b + H_TABLE_OFFSET), count * OB_1BIT_ENTRY_BYTES},
        {"strings", le_get64(b + H_STRINGS_OFFSET), le_get64(b + H_STRINGS_SIZE)},
        {"config", le_get64(b + H_CONFIG_OFFSET), le_get64(b + H_CONFIG_SIZE)},
        {"tokenizer", le_get64(b + H_TOKENIZER_OFFSET), le_get64(b + H_TOKENIZER_SIZE)},
    };
    if (r[2].size == 0)
        return ob_error(OB_ERR_FORMAT, "%s: field 'config_size' = 0 (the config is required)", src);
    if (r[0].off % 8)
        return ob_error(OB_ERR_FORMAT, "%s: field 'table_offset' = %llu is not a multiple of 8", src,
                        (unsigned long long)r[0].off);
    for (int i = 0; i < 4; i++) {
        if (r[i].size == 0) {
            if (r[i].off != 0 && i == 3)
                return ob_error(OB_ERR_FORMAT, "%s: field 'tokenizer_offset' = %llu with no tokenizer (must be 0)",
                                src, (unsigned long long)r[i].off);
            if (r[i].off > hs) /* empty, but still a position in the header */
                return ob_error(OB_ERR_FORMAT, "%s: field '%s_offset' = %llu is past the header (%llu bytes)", src,
                                r[i].name, (unsigned long long)r[i].off, (unsigned long long)hs);
            continue;
        }
        if (!span_inside(r[i].off, r[i].size, OB_1BIT_HEADER_BYTES, hs))
            return ob_error(OB_ERR_FORMAT, "%s: the %s (field '%s_offset' = %llu, %llu bytes) is not inside the header "
                                           "[%d, %llu)",
                            src, r[i].name, r[i].name, (unsigned long long)r[i].off, (unsigned long long)r[i].size,
                            OB_1BIT_HEADER_BYTES, (unsigned long long)hs);
        for (int j = 0; j < i; j++)
            if (spans_overlap(r[i].off, r[i].size, r[j].off, r[j].size))
                return ob_error(OB_ERR_FORMAT, "%s: the %s and the %s overlap in the header", src, r[j].name,
                                r[i].name);
    }
    f->num_tensors = (int)count;
    f->config_json = (const char *)b + r[2].off;
    f->config_len = (size_t)r[2].size;
    f->tokenizer_json = r[3].size ? (const char *)b + r[3].off : "";
    f->tokenizer_len = (size_t)r[3].size;
    f->header_bytes = hs;
    return OB_OK;
}

/* Names lie apart in the string area (so together they fit in it). */
static ob_status check_name_spans(const ob_1bit_file *f, const uint8_t *b, uint64_t strings_size) {
    int n = f->num_tensors;
    span *s = ob_malloc((size_t)(n + 1) * sizeof *s);
    if (!s)
        return OB_ERR_NOMEM;
    const uint8_t *table = b + le_get64(b + H_TABLE_OFFSET);
    ob_status st = OB_OK;
    for (int i = 0; i < n && st == OB_OK; i++) {
        const uint8_t *e = table + (uint64_t)i * OB_1BIT_ENTRY_BYTES;
        uint32_t noff = le_get32(e + E_NAME_OFFSET), nlen = le_get32(e + E_NAME_SIZE);
        if (nlen == 0 || nlen > OB_1BIT_MAX_NAME || !span_inside(noff, nlen, 0, strings_size))
            st = ob_error(OB_ERR_FORMAT, "%s: tensor %d: name (field 'name_offset' = %u, 'name_size' = %u) is empty, "
                                         "longer than %d bytes or outside the string area of %llu bytes",
                          f->source, i, noff, nlen, OB_1BIT_MAX_NAME, (unsigned long long)strings_size);
        s[i] = (span){noff, nlen, "name", i};
    }
    if (st == OB_OK)
        qsort(s, (size_t)n, sizeof *s, cmp_span);
    for (int i = 1; i < n && st == OB_OK; i++)
        if (s[i].off < s[i - 1].off + s[i - 1].size)
            st = ob_error(OB_ERR_FORMAT, "%s: the names of tensors %d and %d overlap in the string area", f->source,
                          s[i - 1].tensor, s[i].tensor);
    free(s);
    return st;
}

static ob_status read_entry(ob_1bit_file *f, const uint8_t *b, int i, const uint8_t *strings, char *names,
                            uint64_t *name_at, uint32_t *crc) {
    const char *src = f->source;
    const uint8_t *e = b + le_get64(b + H_TABLE_OFFSET) + (uint64_t)i * OB_1BIT_ENTRY_BYTES;
    ob_1bit_tensor *t = &f->tensors[i];
    char who[OB_1BIT_MAX_NAME + 32];
    uint32_t noff = le_get32(e + E_NAME_OFFSET), nlen = le_get32(e + E_NAME_SIZE); /* checked by check_name_spans */
    const char *raw = (const char *)strings + noff;
    if (memchr(raw, 0, nlen) || !ob_utf8_valid(raw, nlen, NULL))
        return ob_error(OB_ERR_FORMAT, "%s: tensor %d: name is not UTF-8 without NUL bytes", src, i);
    memcpy(names + *name_at, raw, nlen);
    names[*name_at + nlen] = 0;
    t->name = names + *name_at;
    *name_at += nlen + 1;
    tname(f, i, who, sizeof who);
    uint32_t code = le_get32(e + E_DTYPE), ndims = le_get32(e + E_NDIMS);
    if (!ob_1bit_dtype_from_code(code, &t->dtype))
        return ob_error(OB_ERR_FORMAT, "%s: %s: field 'dtype' = %u (1 f32, 2 f16, 3 int8, 4 fourbit, 5 ternary2, "
                                       "6 binary1)",
                        src, who, code);
    if (ndims < 1 || ndims > OB_1BIT_MAX_DIMS || (ob_packed_dtype_quantised(t->dtype) && ndims != 2))
        return ob_error(OB_ERR_FORMAT, "%s: %s: field 'ndims' = %u (1 to %d; packed %s is a matrix: 2)", src, who,
                        ndims, OB_1BIT_MAX_DIMS, ob_dtype_name(t->dtype));
    t->ndims = (int)ndims;
    for (int d = 0; d < OB_1BIT_MAX_DIMS; d++) {
        uint64_t v = le_get64(e + E_DIMS + 8 * d);
        if (d < t->ndims ? v < 1 || v > OB_1BIT_MAX_DIM : v != 0)
            return ob_error(OB_ERR_FORMAT, "%s: %s: field 'dims[%d]' = %llu (%s)", src, who, d, (unsigned long long)v,
                            d < t->ndims ? "1 to 2^30" : "unused, must be 0");
        t->shape[d] = (int64_t)v;
    }
    uint64_t want = ob_1bit_data_bytes(t->dtype, t->ndims, t->shape);
    uint64_t doff = le_get64(e + E_DATA_OFFSET), dsize = le_get64(e + E_DATA_SIZE);
    if (want == UINT64_MAX || dsize != want)
        return ob_error(OB_ERR_FORMAT, "%s: %s: field 'data_size' = %llu, its dtype %s and shape need %llu", src, who,
                        (unsigned long long)dsize, ob_dtype_name(t->dtype), (unsigned long long)want);
    if (doff % OB_1BIT_ALIGN || !span_inside(doff, dsize, f->header_bytes, f->file_bytes))
        return ob_error(OB_ERR_FORMAT, "%s: %s: field 'data_offset' = %llu (%llu bytes) is not 64-byte aligned inside "
                                       "the data area [%llu, %llu)",
                        src, who, (unsigned long long)doff, (unsigned long long)dsize,
                        (unsigned long long)f->header_bytes, (unsigned long long)f->file_bytes);
    uint32_t ns = le_get32(e + E_SCALE_COUNT);
    uint64_t soff = le_get64(e + E_SCALES_OFFSET);
    int want_ns = ob_packed_num_scales(t->dtype, (int)t->shape[0]);
    if (ns != (uint32_t)want_ns)
        return ob_error(OB_ERR_FORMAT, "%s: %s: field 'scale_count' = %u, %s needs %d", src, who, ns,
                        ob_dtype_name(t->dtype), want_ns);
    if (ns == 0 && soff != 0)
        return ob_error(OB_ERR_FORMAT, "%s: %s: field 'scales_offset' = %llu without scales (must be 0)", src, who,
                        (unsigned long long)soff);
    if (ns && (soff % 4 || !span_inside(soff, (uint64_t)ns * 4, f->header_bytes, f->file_bytes)))
        return ob_error(OB_ERR_FORMAT, "%s: %s: field 'scales_offset' = %llu (%u floats) is not 4-byte aligned inside "
                                       "the data area [%llu, %llu)",
                        src, who, (unsigned long long)soff, ns, (unsigned long long)f->header_bytes,
                        (unsigned long long)f->file_bytes);
    for (int k = E_RESERVED; k < OB_1BIT_ENTRY_BYTES; k++)
        if (e[k])
            return ob_error(OB_ERR_FORMAT, "%s: %s: reserved entry byte %d is %u (must be 0)", src, who, k, e[k]);
    t->data = b + doff;
    t->data_bytes = dsize;
    t->scales = ns ? (const float *)(const void *)(b + soff) : NULL;
    t->num_scales = (int)ns;
    *crc = le_get32(e + E_CRC);
    return OB_OK;
}

static int cmp_name_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

ob_status ob_1bit_check_unique_names(const ob_1bit_file *f) {
    const char **names = ob_malloc((size_t)(f->num_tensors + 1) * sizeof *names);
    if (!names)
        return OB_ERR_NOMEM;
    for (int i = 0; i < f->num_tensors; i++)
        names[i] = f->tensors[i].name;
    qsort(names, (size_t)f->num_tensors, sizeof *names, cmp_name_ptr);
    ob_status st = OB_OK;
    for (int i = 1; i < f->num_tensors && st == OB_OK; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            st = ob_error(OB_ERR_FORMAT, "%s: tensor name '%s' appears twice", f->source, names[i]);
    free(names);
    return st;
}

/* Sorted spans of data and scales must not overlap, the gaps between them
 * are zero (unless the data checks are skipped); names must be unique. */
static ob_status check_spans_and_names(ob_1bit_file *f, bool check_padding) {
    int n = f->num_tensors;
    span *s = ob_malloc((size_t)(2 * n + 1) * sizeof *s);
    if (!s)
        return OB_ERR_NOMEM;
    int m = 0;
    const uint8_t *base = f->map.data;
    for (int i = 0; i < n; i++) {
        const ob_1bit_tensor *t = &f->tensors[i];
        s[m++] = (span){(uint64_t)((const uint8_t *)t->data - base), t->data_bytes, "data", i};
        if (t->num_scales)
            s[m++] = (span){(uint64_t)((const uint8_t *)t->scales - base), (uint64_t)t->num_scales * 4, "scales", i};
    }
    qsort(s, (size_t)m, sizeof *s, cmp_span);
    ob_status st = OB_OK;
    for (int i = 1; i < m && st == OB_OK; i++)
        if (s[i].off < s[i - 1].off + s[i - 1].size)
            st = ob_error(OB_ERR_FORMAT, "%s: the %s of tensor '%s' overlaps the %s of tensor '%s'", f->source,
                          s[i].what, f->tensors[s[i].tensor].name, s[i - 1].what, f->tensors[s[i - 1].tensor].name);
    /* The gaps (alignment padding) are zero, so that no byte of the file goes unchecked. */
    uint64_t at = f->header_bytes;
    for (int i = 0; i <= m && st == OB_OK && check_padding; i++) {
        uint64_t end = i < m ? s[i].off : f->file_bytes;
        for (uint64_t k = at; k < end && st == OB_OK; k++)
            if (base[k])
                st = ob_error(OB_ERR_FORMAT, "%s: padding byte at offset %llu is %u (alignment gaps are zero)",
                              f->source, (unsigned long long)k, base[k]);
        if (i < m)
            at = s[i].off + s[i].size;
    }
    free(s);
    return st == OB_OK ? ob_1bit_check_unique_names(f) : st;
}

ob_status ob_1bit_parse_v2(ob_1bit_file *f, const uint8_t *b, uint64_t size, bool skip) {
    uint64_t hs = 0;
    ob_status st = check_fixed(b, size, f->source, skip, &hs);
    f->file_bytes = size;
    if (st == OB_OK)
        st = check_regions(f, b, hs);
    if (st)
        return st;
    uint64_t strings_size = le_get64(b + H_STRINGS_SIZE);
    const uint8_t *strings = b + le_get64(b + H_STRINGS_OFFSET);
    int n = f->num_tensors;
    f->tensors = ob_calloc((size_t)n + 1, sizeof *f->tensors);
    uint32_t *crcs = ob_calloc((size_t)n + 1, sizeof *crcs);
    /* Every name takes at least one byte of the string area, so this bounds them. */
    char *names = ob_aligned_alloc((size_t)strings_size + (size_t)n + 1);
    f->owned = names;
    if (!f->tensors || !crcs || !names) {
        free(crcs);
        return OB_ERR_NOMEM;
    }
    uint64_t name_at = 0;
    st = check_name_spans(f, b, strings_size);
    for (int i = 0; i < n && st == OB_OK; i++)
        st = read_entry(f, b, i, strings, names, &name_at, &crcs[i]);
    if (st == OB_OK)
        st = check_spans_and_names(f, !skip);
    for (int i = 0; i < n && st == OB_OK; i++)
        st = ob_1bit_check_tensor_data(f, i, skip ? NULL : &crcs[i], skip);
    free(crcs);
    return st;
}

/* ---- data checks (shared with version 1) ------------------------------------------ */

/* Whether every byte of a row holds valid codes: a 2-bit field of 3 (ternary),
 * a nibble of 0 (fourbit) or -128 (int8) is not a code the packer writes. */
static bool byte_valid(ob_dtype dtype, uint8_t v) {
    switch (dtype) {
    case OB_DTYPE_TERNARY2: return (v & 3) != 3 && ((v >> 2) & 3) != 3 && ((v >> 4) & 3) != 3 && (v >> 6) != 3;
    case OB_DTYPE_FOURBIT: return (v & 15) != 0 && (v >> 4) != 0;
    case OB_DTYPE_I8: return v != 0x80;
    default: return true;
    }
}

/* The packed value of padding column j: the code 0 (ternary 1, fourbit 8, int8 0) or bit 0 (binary). */
static bool padding_ok(const ob_packed_tensor *pt, const uint8_t *row, int j) {
    switch (pt->dtype) {
    case OB_DTYPE_TERNARY2: return ((row[(j / 128) * 32 + j % 32] >> (2 * ((j % 128) / 32))) & 3) == 1;
    case OB_DTYPE_FOURBIT: {
        uint8_t v = row[(j / 64) * 32 + j % 32];
        return ((j % 64) < 32 ? (v & 15) : (v >> 4)) == 8;
    }
    case OB_DTYPE_I8: return row[j] == 0;
    case OB_DTYPE_BINARY1: return ((row[(j / 256) * 32 + j % 32] >> ((j % 256) / 32)) & 1) == 0;
    default: return true;
    }
}

static ob_status check_codes(const ob_1bit_file *f, const ob_1bit_tensor *t) {
    ob_packed_tensor pt;
    ob_packed_tensor_init(&pt, t->dtype, (int)t->shape[0], (int)t->shape[1], t->data, t->scales);
    bool table[256];
    for (int v = 0; v < 256; v++)
        table[v] = byte_valid(t->dtype, (uint8_t)v);
    for (int r = 0; r < pt.rows; r++) {
        const uint8_t *row = (const uint8_t *)pt.data + (size_t)r * pt.row_bytes;
        for (size_t k = 0; k < pt.row_bytes; k++)
            if (!table[row[k]])
                return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': row %d holds an invalid %s code (byte %zu = 0x%02x)",
                                f->source, t->name, r, ob_dtype_name(t->dtype), k, row[k]);
        for (int j = pt.cols; j < pt.cols_padded; j++)
            if (!padding_ok(&pt, row, j))
                return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': row %d, padding column %d is not the code 0",
                                f->source, t->name, r, j);
    }
    return OB_OK;
}

static ob_status check_floats(const ob_1bit_file *f, const ob_1bit_tensor *t) {
    uint64_t n = t->data_bytes / ob_dtype_size(t->dtype);
    for (uint64_t i = 0; i < n; i++) {
        bool finite;
        if (t->dtype == OB_DTYPE_F32) {
            float v;
            memcpy(&v, (const uint8_t *)t->data + 4 * i, 4);
            finite = isfinite(v);
        } else {
            uint16_t h;
            memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
            finite = (h & 0x7c00) != 0x7c00;
        }
        if (!finite)
            return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': element %llu is not finite", f->source, t->name,
                            (unsigned long long)i);
    }
    return OB_OK;
}

ob_status ob_1bit_check_tensor_data(const ob_1bit_file *f, int i, const uint32_t *crc, bool skip_data) {
    const ob_1bit_tensor *t = &f->tensors[i];
    if (crc) {
        uint32_t c = ob_crc32(0, t->data, (size_t)t->data_bytes);
        c = ob_crc32(c, t->scales, (size_t)t->num_scales * sizeof(float));
        if (c != *crc)
            return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': checksum mismatch (field 'crc32' = %08x, the data's "
                                           "CRC-32 is %08x): the file is damaged",
                            f->source, t->name, *crc, c);
    }
    for (int k = 0; k < t->num_scales; k++)
        if (!isfinite(t->scales[k]) || t->scales[k] < 0)
            return ob_error(OB_ERR_FORMAT, "%s: tensor '%s': scale %d is %g (scales are finite and >= 0)", f->source,
                            t->name, k, (double)t->scales[k]);
    if (skip_data)
        return OB_OK;
    return ob_packed_dtype_quantised(t->dtype) ? check_codes(f, t) : check_floats(f, t);
}

/* ---- opening ------------------------------------------------------------------------------ */

static ob_status parse(ob_1bit_file *f, const uint8_t *b, uint64_t size, bool skip) {
    if (size < 8 || memcmp(b, "1BIT", 4) != 0)
        return ob_error(OB_ERR_FORMAT, "%s: not a .1bit file (%s)", f->source,
                        size < 8 ? "shorter than its 8-byte magic and version" : "it does not start with \"1BIT\"");
    uint32_t version = le_get32(b + 4);
    f->version = (int)version;
    if (version == 1)
        return ob_1bit_parse_v1(f, b, size, skip);
    if (version != OB_1BIT_VERSION)
        return ob_error(OB_ERR_FORMAT, "%s: field 'version' = %u (this reader knows versions 1 and 2)", f->source,
                        version);
    return ob_1bit_parse_v2(f, b, size, skip);
}

static ob_status open_over(ob_1bit_file *f, const ob_1bit_read_options *opts, ob_1bit_file **out) {
    bool skip = opts && opts->skip_data_checks;
    ob_status st = parse(f, f->map.data, f->map.size, skip);
    if (st) {
        ob_1bit_close(f);
        return st;
    }
    *out = f;
    return OB_OK;
}

static ob_1bit_file *new_file(const char *source) {
    ob_1bit_file *f = ob_calloc(1, sizeof *f);
    if (f && !(f->source = ob_strdup(source))) {
        free(f);
        f = NULL;
    }
    return f;
}

ob_status ob_1bit_open(const char *path, const ob_1bit_read_options *opts, ob_1bit_file **out) {
    *out = NULL;
    ob_1bit_file *f = new_file(path);
    if (!f)
        return OB_ERR_NOMEM;
    ob_mapping map;
    ob_status st = ob_map_file(path, &map);
    if (st) {
        ob_1bit_close(f);
        return st;
    }
    f->map = map;
    f->mapped = true;
    if (!map.data) {
        ob_1bit_close(f);
        return ob_error(OB_ERR_FORMAT, "%s: empty file (not a .1bit model)", path);
    }
    return open_over(f, opts, out);
}

ob_status ob_1bit_open_memory(const void *data, size_t size, const char *source, const ob_1bit_read_options *opts,
                              ob_1bit_file **out) {
    *out = NULL;
    if ((uintptr_t)data % OB_1BIT_ALIGN)
        return ob_error(OB_ERR_INVALID_ARG, "%s: the buffer must start on a 64-byte boundary", source);
    ob_1bit_file *f = new_file(source);
    if (!f)
        return OB_ERR_NOMEM;
    static const uint8_t empty[1];
    f->map.data = size ? (void *)data : (void *)empty;
    f->map.size = size;
    return open_over(f, opts, out);
}

void ob_1bit_close(ob_1bit_file *f) {
    if (!f)
        return;
    if (f->mapped)
        ob_unmap_file(&f->map);
    free(f->tensors);
    ob_aligned_free(f->owned);
    free(f->source);
    free(f);
}

const ob_1bit_tensor *ob_1bit_find(const ob_1bit_file *f, const char *name) {
    for (int i = 0; i < f->num_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}
