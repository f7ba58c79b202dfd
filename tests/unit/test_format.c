/* The .1bit format (src/format): the writer and the mmap reader round trip
 * fresh random tensors of every dtype byte for byte and deterministically;
 * every validation rule of the reader is broken once (the checksums fixed up
 * where the rule sits behind them) and answered with an error that names the
 * file and the field; flipping any single byte of a file is detected; CRC-32
 * agrees with Python's zlib; version 1 files written by tests/ref/
 * onebit_v1_write.py (from the format's description) read back to the codes
 * the script chose; packed models round trip through files with the runtime's
 * logits unchanged, bit for bit; and the export pipeline (pack modes,
 * verification, the size report) end to end on a checkpoint directory. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "format/onebit_layout.h"
#include "onebit/format.h"
#include "onebit/infer.h"
#include "test_util.h"

static uint64_t seed_base;

/* ---- helpers ------------------------------------------------------------------------ */

static uint8_t *read_all(const char *path, size_t *size) {
    char *data;
    assert_ok(ob_read_file(path, &data, size));
    uint8_t *copy = ob_aligned_alloc(*size + 1);
    memcpy(copy, data, *size);
    free(data);
    return copy;
}

static void fix_header_crc(uint8_t *b) {
    uint64_t hs = le_get64(b + H_HEADER_SIZE);
    le_put32(b + H_HEADER_CRC, 0);
    le_put32(b + H_HEADER_CRC, ob_crc32(0, b, (size_t)hs));
}

static uint8_t *entry(uint8_t *b, int i) { return b + le_get64(b + H_TABLE_OFFSET) + (size_t)i * OB_1BIT_ENTRY_BYTES; }

/* Recomputes tensor i's checksum from the bytes, then the header's. */
static void fix_tensor_crc(uint8_t *b, int i) {
    uint8_t *e = entry(b, i);
    uint32_t crc = ob_crc32(0, b + le_get64(e + E_DATA_OFFSET), (size_t)le_get64(e + E_DATA_SIZE));
    crc = ob_crc32(crc, b + le_get64(e + E_SCALES_OFFSET), (size_t)le_get32(e + E_SCALE_COUNT) * 4);
    le_put32(e + E_CRC, crc);
    fix_header_crc(b);
}

typedef struct {
    char *dir, *path;
    uint8_t *bytes;
    size_t size;
    /* what was written */
    ob_1bit_tensor t[4];
    int8_t *codes[4];
    void *data[4];
    float *scales[4];
} sample;

static const char *const sample_config = "{\"hidden_size\": 64}";
static const char *const sample_tokenizer = "{\"model\": {}}";

/* Four tensors: TERNARY2 [3, 300] (padded rows), F32 [5], I8 [2, 10] with row
 * scales, FOURBIT [4, 70]; random codes and values. */
static void sample_make(sample *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    ob_rng r;
    ob_rng_seed(&r, seed);
    s->dir = tu_make_temp_dir();
    s->path = ob_path_join(s->dir, "s.1bit");
    static const struct {
        const char *name;
        ob_dtype dtype;
        int ndims;
        int64_t shape[2];
        int qmax;
    } spec[4] = {{"layer.ternary", OB_DTYPE_TERNARY2, 2, {3, 300}, 1},
                 {"norm.gain", OB_DTYPE_F32, 1, {5, 0}, 0},
                 {"table.int8", OB_DTYPE_I8, 2, {2, 10}, 127},
                 {"layer.fourbit", OB_DTYPE_FOURBIT, 2, {4, 70}, 7}};
    for (int i = 0; i < 4; i++) {
        ob_1bit_tensor *t = &s->t[i];
        t->name = spec[i].name;
        t->dtype = spec[i].dtype;
        t->ndims = spec[i].ndims;
        t->shape[0] = spec[i].shape[0];
        t->shape[1] = spec[i].shape[1];
        t->data_bytes = ob_1bit_data_bytes(t->dtype, t->ndims, t->shape);
        s->data[i] = calloc(1, (size_t)t->data_bytes);
        t->data = s->data[i];
        if (t->dtype == OB_DTYPE_F32) {
            for (int k = 0; k < t->shape[0]; k++)
                ((float *)s->data[i])[k] = (float)ob_rng_normal(&r);
            continue;
        }
        int rows = (int)t->shape[0], cols = (int)t->shape[1], q = spec[i].qmax;
        s->codes[i] = malloc((size_t)rows * cols);
        for (int k = 0; k < rows * cols; k++)
            s->codes[i][k] = (int8_t)((int)ob_rng_below(&r, (uint64_t)(2 * q + 1)) - q);
        assert_ok(ob_pack_codes(t->dtype, s->codes[i], rows, cols, s->data[i]));
        t->num_scales = ob_packed_num_scales(t->dtype, rows);
        s->scales[i] = malloc((size_t)t->num_scales * sizeof(float));
        for (int k = 0; k < t->num_scales; k++)
            s->scales[i][k] = (float)(0.01 + ob_rng_uniform(&r));
        t->scales = s->scales[i];
    }
    ob_1bit_contents c = {sample_config, strlen(sample_config), sample_tokenizer, strlen(sample_tokenizer), s->t, 4};
    assert_ok(ob_1bit_write(s->path, &c));
    s->bytes = read_all(s->path, &s->size);
}

static void sample_free(sample *s) {
    for (int i = 0; i < 4; i++) {
        free(s->codes[i]);
        free(s->data[i]);
        free(s->scales[i]);
    }
    ob_aligned_free(s->bytes);
    tu_remove_tree(s->dir);
    free(s->dir);
    free(s->path);
}

/* Opens a copy of the sample's bytes after `mutate`, expecting an error with `needle`. */
static void expect_error(const sample *s, void (*mutate)(uint8_t *b, size_t *size), const char *needle) {
    size_t size = s->size;
    uint8_t *b = ob_aligned_alloc(size + 64);
    memcpy(b, s->bytes, size);
    memset(b + size, 0, 64);
    mutate(b, &size);
    ob_1bit_file *f = NULL;
    ob_status st = ob_1bit_open_memory(b, size, "broken.1bit", NULL, &f);
    if (st == OB_OK)
        fail_msg("a file breaking '%s' was accepted", needle);
    if (!strstr(ob_last_error(), needle) || !strstr(ob_last_error(), "broken.1bit"))
        fail_msg("error '%s' lacks '%s' or the file name", ob_last_error(), needle);
    assert_null(f);
    ob_aligned_free(b);
}

/* ---- CRC-32 and round trips --------------------------------------------------------------- */

static void test_crc32_matches_zlib(void **state) {
    (void)state;
    ob_rng r;
    ob_rng_seed(&r, seed_base + 1);
    size_t n = 1000 + ob_rng_below(&r, 5000);
    uint8_t *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)ob_rng_u32(&r);
    char *dir = tu_make_temp_dir();
    char *path = tu_write_file(dir, "bytes", data, n);
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s -c \"import sys, zlib; d = open(sys.argv[1], 'rb').read(); "
                              "print(zlib.crc32(d), zlib.crc32(d[:77]))\" %s",
             tu_python(), path);
    assert_int_equal(tu_run(cmd, &out), 0);
    unsigned long whole, part;
    assert_int_equal(sscanf(out, "%lu %lu", &whole, &part), 2);
    assert_int_equal(ob_crc32(0, data, n), (uint32_t)whole);
    assert_int_equal(ob_crc32(0, data, 77), (uint32_t)part);
    /* Continuing over pieces gives the checksum of the whole. */
    size_t cut = ob_rng_below(&r, n);
    assert_int_equal(ob_crc32(ob_crc32(0, data, cut), data + cut, n - cut), (uint32_t)whole);
    free(out);
    free(path);
    tu_remove_tree(dir);
    free(dir);
    free(data);
}

static void test_round_trip(void **state) {
    (void)state;
    sample s;
    sample_make(&s, seed_base + 2);
    ob_1bit_file *f;
    assert_ok(ob_1bit_open(s.path, NULL, &f));
    assert_int_equal(f->version, 2);
    assert_int_equal(f->num_tensors, 4);
    assert_int_equal(f->file_bytes, s.size);
    assert_int_equal(f->config_len, strlen(sample_config));
    assert_memory_equal(f->config_json, sample_config, f->config_len);
    assert_memory_equal(f->tokenizer_json, sample_tokenizer, f->tokenizer_len);
    for (int i = 0; i < 4; i++) {
        const ob_1bit_tensor *a = &s.t[i], *b = ob_1bit_find(f, a->name);
        assert_non_null(b);
        assert_ptr_equal(b, &f->tensors[i]); /* file order is the order written */
        assert_int_equal(a->dtype, b->dtype);
        assert_int_equal(a->ndims, b->ndims);
        assert_memory_equal(a->shape, b->shape, (size_t)a->ndims * sizeof(int64_t));
        assert_int_equal(a->data_bytes, b->data_bytes);
        assert_memory_equal(a->data, b->data, (size_t)a->data_bytes);
        assert_int_equal(a->num_scales, b->num_scales);
        if (a->num_scales)
            assert_memory_equal(a->scales, b->scales, (size_t)a->num_scales * sizeof(float));
        /* In place in the mapping, on a 64-byte boundary. */
        assert_int_equal((uintptr_t)b->data % 64, 0);
        if (s.codes[i]) {
            ob_packed_tensor pt;
            ob_packed_tensor_init(&pt, b->dtype, (int)b->shape[0], (int)b->shape[1], b->data, b->scales);
            for (int r = 0; r < pt.rows; r++)
                for (int j = 0; j < pt.cols; j++)
                    assert_int_equal(ob_packed_code(&pt, r, j), s.codes[i][r * pt.cols + j]);
        }
    }
    assert_null(ob_1bit_find(f, "nope"));
    ob_1bit_close(f);
    /* Deterministic: the same contents give the same bytes. */
    char *again = ob_path_join(s.dir, "again.1bit");
    ob_1bit_contents c = {sample_config, strlen(sample_config), sample_tokenizer, strlen(sample_tokenizer), s.t, 4};
    assert_ok(ob_1bit_write(again, &c));
    size_t n;
    uint8_t *b = read_all(again, &n);
    assert_int_equal(n, s.size);
    assert_memory_equal(b, s.bytes, n);
    ob_aligned_free(b);
    free(again);
    sample_free(&s);
}

static void test_writer_refusals(void **state) {
    (void)state;
    sample s;
    sample_make(&s, seed_base + 3);
    char *p = ob_path_join(s.dir, "bad.1bit");
    ob_1bit_tensor t[4];
    ob_1bit_contents c = {sample_config, strlen(sample_config), NULL, 0, t, 4};
    memcpy(t, s.t, sizeof t);
    t[3].name = t[0].name;
    assert_fails_with(ob_1bit_write(p, &c), OB_ERR_INVALID_ARG, "appears twice");
    memcpy(t, s.t, sizeof t);
    t[0].data_bytes--;
    assert_fails_with(ob_1bit_write(p, &c), OB_ERR_INVALID_ARG, "data bytes");
    memcpy(t, s.t, sizeof t);
    t[0].ndims = 1;
    assert_fails_with(ob_1bit_write(p, &c), OB_ERR_INVALID_ARG, "bad shape");
    memcpy(t, s.t, sizeof t);
    t[2].num_scales = 1;
    assert_fails_with(ob_1bit_write(p, &c), OB_ERR_INVALID_ARG, "scales");
    memcpy(t, s.t, sizeof t);
    float nan_scale = NAN;
    t[0].scales = &nan_scale;
    assert_fails_with(ob_1bit_write(p, &c), OB_ERR_INVALID_ARG, "scale 0 is");
    memcpy(t, s.t, sizeof t);
    t[1].dtype = OB_DTYPE_BF16;
    assert_fails_with(ob_1bit_write(p, &c), OB_ERR_INVALID_ARG, "cannot be stored");
    memcpy(t, s.t, sizeof t);
    t[1].name = "";
    assert_fails_with(ob_1bit_write(p, &c), OB_ERR_INVALID_ARG, "no name");
    memcpy(t, s.t, sizeof t);
    c.config_len = 0;
    assert_fails_with(ob_1bit_write(p, &c), OB_ERR_INVALID_ARG, "config.json");
    assert_false(ob_path_exists(p));
    free(p);
    sample_free(&s);
}

/* ---- validation rules, each broken once ------------------------------------------------------- */

static void cut_to_100(uint8_t *b, size_t *n) { (void)b; *n = 100; }
static void bad_magic(uint8_t *b, size_t *n) { (void)n; b[0] = '2'; }
static void version_3(uint8_t *b, size_t *n) { (void)n; le_put32(b + H_VERSION, 3); }
static void header_size_odd(uint8_t *b, size_t *n) { (void)n; le_put64(b + H_HEADER_SIZE, le_get64(b + H_HEADER_SIZE) - 8); }
static void header_byte_flipped(uint8_t *b, size_t *n) { (void)n; b[le_get64(b + H_CONFIG_OFFSET)] ^= 1; }
static void appended(uint8_t *b, size_t *n) { (void)b; *n += 1; }
static void flags_set(uint8_t *b, size_t *n) { (void)n; le_put32(b + H_FLAGS, 1); fix_header_crc(b); }
static void alignment_32(uint8_t *b, size_t *n) { (void)n; le_put32(b + H_ALIGNMENT, 32); fix_header_crc(b); }
static void reserved_set(uint8_t *b, size_t *n) { (void)n; b[H_RESERVED + 5] = 7; fix_header_crc(b); }
static void count_huge(uint8_t *b, size_t *n) { (void)n; le_put32(b + H_TENSOR_COUNT, 0x7fffffff); fix_header_crc(b); }
static void table_outside(uint8_t *b, size_t *n) {
    (void)n;
    le_put64(b + H_TABLE_OFFSET, le_get64(b + H_HEADER_SIZE) - 8);
    fix_header_crc(b);
}
static void config_empty(uint8_t *b, size_t *n) { (void)n; le_put64(b + H_CONFIG_SIZE, 0); fix_header_crc(b); }
static void config_over_strings(uint8_t *b, size_t *n) {
    (void)n;
    le_put64(b + H_CONFIG_OFFSET, le_get64(b + H_STRINGS_OFFSET));
    fix_header_crc(b);
}
static void tokenizer_offset_alone(uint8_t *b, size_t *n) {
    (void)n;
    le_put64(b + H_TOKENIZER_SIZE, 0);
    fix_header_crc(b);
}
static void name_outside(uint8_t *b, size_t *n) {
    (void)n;
    le_put32(entry(b, 1) + E_NAME_OFFSET, 1000);
    fix_header_crc(b);
}
static void name_not_utf8(uint8_t *b, size_t *n) {
    (void)n;
    b[le_get64(b + H_STRINGS_OFFSET) + le_get32(entry(b, 1) + E_NAME_OFFSET)] = 0xff;
    fix_header_crc(b);
}
static void dtype_9(uint8_t *b, size_t *n) { (void)n; le_put32(entry(b, 0) + E_DTYPE, 9); fix_header_crc(b); }
static void packed_1d(uint8_t *b, size_t *n) { (void)n; le_put32(entry(b, 0) + E_NDIMS, 1); fix_header_crc(b); }
static void dim_zero(uint8_t *b, size_t *n) { (void)n; le_put64(entry(b, 1) + E_DIMS, 0); fix_header_crc(b); }
static void unused_dim(uint8_t *b, size_t *n) { (void)n; le_put64(entry(b, 1) + E_DIMS + 24, 2); fix_header_crc(b); }
static void data_size_off(uint8_t *b, size_t *n) {
    (void)n;
    le_put64(entry(b, 1) + E_DATA_SIZE, le_get64(entry(b, 1) + E_DATA_SIZE) + 4);
    fix_header_crc(b);
}
static void data_unaligned(uint8_t *b, size_t *n) {
    (void)n;
    le_put64(entry(b, 1) + E_DATA_OFFSET, le_get64(entry(b, 1) + E_DATA_OFFSET) + 4);
    fix_header_crc(b);
}
static void data_past_end(uint8_t *b, size_t *n) {
    le_put64(entry(b, 3) + E_DATA_OFFSET, align_up64(*n, 64));
    fix_header_crc(b);
}
static void data_in_header(uint8_t *b, size_t *n) { (void)n; le_put64(entry(b, 1) + E_DATA_OFFSET, 64); fix_header_crc(b); }
static void scale_count_off(uint8_t *b, size_t *n) { (void)n; le_put32(entry(b, 2) + E_SCALE_COUNT, 1); fix_header_crc(b); }
static void scales_unaligned(uint8_t *b, size_t *n) {
    (void)n;
    le_put64(entry(b, 2) + E_SCALES_OFFSET, le_get64(entry(b, 2) + E_SCALES_OFFSET) + 1);
    fix_header_crc(b);
}
static void scales_without_count(uint8_t *b, size_t *n) {
    (void)n;
    le_put64(entry(b, 1) + E_SCALES_OFFSET, 64);
    fix_header_crc(b);
}
static void entry_reserved(uint8_t *b, size_t *n) { (void)n; entry(b, 2)[E_RESERVED + 3] = 1; fix_header_crc(b); }
static void data_overlap(uint8_t *b, size_t *n) {
    (void)n;
    le_put64(entry(b, 1) + E_DATA_OFFSET, le_get64(entry(b, 0) + E_DATA_OFFSET));
    fix_header_crc(b);
}
static void duplicate_name(uint8_t *b, size_t *n) {
    (void)n;
    /* Entry 3's name ("layer.fourbit") becomes entry 0's ("layer.ternary"), of the same length. */
    uint8_t *strings = b + le_get64(b + H_STRINGS_OFFSET);
    memcpy(strings + le_get32(entry(b, 3) + E_NAME_OFFSET), strings + le_get32(entry(b, 0) + E_NAME_OFFSET), 13);
    fix_header_crc(b);
}
static void names_overlap(uint8_t *b, size_t *n) {
    (void)n;
    le_put32(entry(b, 2) + E_NAME_OFFSET, le_get32(entry(b, 0) + E_NAME_OFFSET) + 1);
    fix_header_crc(b);
}
static void data_byte_flipped(uint8_t *b, size_t *n) { (void)n; b[le_get64(entry(b, 0) + E_DATA_OFFSET) + 5] ^= 4; }
static void ternary_code_3(uint8_t *b, size_t *n) {
    (void)n;
    b[le_get64(entry(b, 0) + E_DATA_OFFSET) + 1] = 0xff;
    fix_tensor_crc(b, 0);
}
static void ternary_padding(uint8_t *b, size_t *n) {
    (void)n;
    /* Column 300 of row 0: group 2 (bytes 64..95), field 1 of byte 64 + 300 % 32 = 76. */
    uint8_t *row = b + le_get64(entry(b, 0) + E_DATA_OFFSET);
    row[64 + 12] = (uint8_t)((row[64 + 12] & ~(3u << 2)) | (2u << 2));
    fix_tensor_crc(b, 0);
}
static void fourbit_nibble_0(uint8_t *b, size_t *n) {
    (void)n;
    b[le_get64(entry(b, 3) + E_DATA_OFFSET)] &= 0xf0;
    fix_tensor_crc(b, 3);
}
static void int8_minus_128(uint8_t *b, size_t *n) {
    (void)n;
    b[le_get64(entry(b, 2) + E_DATA_OFFSET) + 3] = 0x80;
    fix_tensor_crc(b, 2);
}
static void negative_scale(uint8_t *b, size_t *n) {
    (void)n;
    float v = -1.0f;
    memcpy(b + le_get64(entry(b, 2) + E_SCALES_OFFSET), &v, 4);
    fix_tensor_crc(b, 2);
}
static void float_nan(uint8_t *b, size_t *n) {
    (void)n;
    float v = NAN;
    memcpy(b + le_get64(entry(b, 1) + E_DATA_OFFSET) + 8, &v, 4);
    fix_tensor_crc(b, 1);
}
static void padding_nonzero(uint8_t *b, size_t *n) {
    (void)n;
    b[le_get64(entry(b, 1) + E_DATA_OFFSET) + le_get64(entry(b, 1) + E_DATA_SIZE) + 3] = 9;
}

static void test_every_rule(void **state) {
    (void)state;
    sample s;
    sample_make(&s, seed_base + 4);
    static const struct {
        void (*mutate)(uint8_t *, size_t *);
        const char *needle;
    } rules[] = {
        {cut_to_100, "truncated"},
        {bad_magic, "not a .1bit file"},
        {version_3, "field 'version' = 3"},
        {header_size_odd, "field 'header_size'"},
        {header_byte_flipped, "header checksum mismatch"},
        {appended, "field 'file_size'"},
        {flags_set, "field 'flags' = 1"},
        {alignment_32, "field 'alignment' = 32"},
        {reserved_set, "reserved header byte 101"},
        {count_huge, "field 'tensor_count'"},
        {table_outside, "the table (field 'table_offset'"},
        {config_empty, "field 'config_size' = 0"},
        {config_over_strings, "overlap"},
        {tokenizer_offset_alone, "field 'tokenizer_offset'"},
        {name_outside, "outside the string area"},
        {name_not_utf8, "not UTF-8"},
        {dtype_9, "field 'dtype' = 9"},
        {packed_1d, "field 'ndims' = 1"},
        {dim_zero, "field 'dims[0]' = 0"},
        {unused_dim, "field 'dims[3]' = 2"},
        {data_size_off, "field 'data_size'"},
        {data_unaligned, "field 'data_offset'"},
        {data_past_end, "field 'data_offset'"},
        {data_in_header, "field 'data_offset' = 64"},
        {scale_count_off, "field 'scale_count' = 1"},
        {scales_unaligned, "field 'scales_offset'"},
        {scales_without_count, "without scales"},
        {entry_reserved, "reserved entry byte 83"},
        {data_overlap, "overlaps"},
        {duplicate_name, "'layer.ternary' appears twice"},
        {names_overlap, "overlap in the string area"},
        {data_byte_flipped, "tensor 'layer.ternary': checksum mismatch"},
        {ternary_code_3, "invalid TERNARY2 code"},
        {ternary_padding, "padding column 300"},
        {fourbit_nibble_0, "invalid FOURBIT code"},
        {int8_minus_128, "invalid I8 code"},
        {negative_scale, "scale 0 is -1"},
        {float_nan, "element 2 is not finite"},
        {padding_nonzero, "padding byte at offset"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof *rules; i++)
        expect_error(&s, rules[i].mutate, rules[i].needle);
    sample_free(&s);
}

/* Any single flipped byte anywhere in the file is caught (header checksum,
 * tensor checksums, zero padding). */
static void test_flipped_bytes_detected(void **state) {
    (void)state;
    sample s;
    sample_make(&s, seed_base + 5);
    ob_rng r;
    ob_rng_seed(&r, seed_base + 6);
    uint8_t *b = ob_aligned_alloc(s.size);
    for (size_t pos = 0; pos < s.size; pos += 1 + ob_rng_below(&r, 3)) {
        memcpy(b, s.bytes, s.size);
        b[pos] ^= (uint8_t)(1u << ob_rng_below(&r, 8));
        ob_1bit_file *f = NULL;
        if (ob_1bit_open_memory(b, s.size, "flip.1bit", NULL, &f) == OB_OK)
            fail_msg("a flipped bit at byte %zu of %zu went unnoticed", pos, s.size);
    }
    /* Unflipped, the copy opens; with the data checks skipped, a flipped data byte passes. */
    memcpy(b, s.bytes, s.size);
    ob_1bit_file *f;
    assert_ok(ob_1bit_open_memory(b, s.size, "ok.1bit", NULL, &f));
    ob_1bit_close(f);
    b[le_get64(entry(b, 1) + E_DATA_OFFSET)] ^= 1;
    ob_1bit_read_options skip = {true};
    assert_ok(ob_1bit_open_memory(b, s.size, "ok.1bit", &skip, &f));
    ob_1bit_close(f);
    assert_fails_with(ob_1bit_open_memory(b + 4, s.size - 4, "x", NULL, &f), OB_ERR_INVALID_ARG, "64-byte boundary");
    ob_aligned_free(b);
    sample_free(&s);
}

/* ---- version 1 ------------------------------------------------------------------------------------ */

static void test_version1_from_reference_writer(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    char *path = ob_path_join(dir, "v1.1bit"), *codes_path = ob_path_join(dir, "v1.codes");
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/onebit_v1_write.py %s %s %llu", tu_python(),
             getenv("ONEBIT_SOURCE_DIR"), path, codes_path, (unsigned long long)(seed_base + 7));
    if (tu_run(cmd, &out) != 0)
        fail_msg("onebit_v1_write.py: %s", out ? out : "");
    free(out);
    size_t ncodes;
    uint8_t *codes = read_all(codes_path, &ncodes);
    ob_1bit_file *f;
    assert_ok(ob_1bit_open(path, NULL, &f));
    assert_int_equal(f->version, 1);
    assert_int_equal(f->num_tensors, 6);
    assert_non_null(memchr(f->config_json, '{', f->config_len));
    assert_int_equal(f->tokenizer_len, 0);
    size_t at = 0;
    for (int i = 0; i < f->num_tensors; i++) {
        const ob_1bit_tensor *t = &f->tensors[i];
        assert_true(t->dtype == OB_DTYPE_TERNARY2 || t->dtype == OB_DTYPE_BINARY1);
        int64_t rows = 1;
        for (int d = 0; d < t->ndims - 1; d++)
            rows *= t->shape[d];
        int cols = (int)t->shape[t->ndims - 1];
        ob_packed_tensor pt;
        ob_packed_tensor_init(&pt, t->dtype, (int)rows, cols, t->data, t->scales);
        assert_int_equal(t->data_bytes, (uint64_t)rows * pt.row_bytes);
        assert_int_equal(t->num_scales, 1);
        assert_true(t->scales[0] == 1.0f);
        for (int r = 0; r < pt.rows; r++)
            for (int j = 0; j < cols; j++, at++)
                if (ob_packed_code(&pt, r, j) != (int8_t)codes[at])
                    fail_msg("tensor '%s' element %zu: read %d, written %d", t->name, at, ob_packed_code(&pt, r, j),
                             (int8_t)codes[at]);
    }
    assert_int_equal(at, ncodes);
    assert_non_null(ob_1bit_find(f, "odd.cube"));
    ob_packed_model *pm;
    assert_fails_with(ob_packed_model_from_1bit(f, &pm), OB_ERR_UNSUPPORTED, "version 1");

    /* Broken version 1 files. */
    size_t size;
    uint8_t *orig = read_all(path, &size);
    uint8_t *b = ob_aligned_alloc(size + 8);
    uint32_t clen = le_get32(orig + 12);
    size_t first = 16 + clen; /* the first record */
    uint32_t nlen = le_get32(orig + first);
    size_t dtype_at = first + 4 + nlen, data_len_at = dtype_at + 1 + 4 + 16, data_at = data_len_at + 8;
    struct {
        const char *needle;
        size_t size;
        size_t at;
        uint8_t value;
    } broken[] = {
        {"truncated", size - 3, 0, 0},
        {"after the last tensor", size + 1, 0, 0},
        {"dtype 3", size, dtype_at, 3},
        {"invalid ternary code 10", size, data_at, 0x02},
        {"data length", size, data_len_at, 0x01},
        {"ndims 0", size, dtype_at + 1, 0},
    };
    for (size_t k = 0; k < sizeof broken / sizeof *broken; k++) {
        memset(b, 0, size + 8);
        memcpy(b, orig, size);
        if (broken[k].at)
            b[broken[k].at] = broken[k].value;
        assert_fails_with(ob_1bit_open_memory(b, broken[k].size, "old.1bit", NULL, &f), OB_ERR_FORMAT,
                          broken[k].needle);
    }
    ob_aligned_free(b);
    ob_aligned_free(orig);
    ob_aligned_free(codes);
    free(path);
    free(codes_path);
    tu_remove_tree(dir);
    free(dir);
}

/* Files written by tests/fuzz/gen_corpus_onebit.py, a second writer made from
 * docs/FORMAT.md alone: the valid ones open (the model runs a token), each
 * broken one fails. */
static void test_independent_writer(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s %s/tests/fuzz/gen_corpus_onebit.py %s", tu_python(), getenv("ONEBIT_SOURCE_DIR"),
             dir);
    if (tu_run(cmd, &out) != 0)
        fail_msg("gen_corpus_onebit.py: %s", out ? out : "");
    free(out);
    static const char *const valid[] = {"model_v2", "model_v2_tokenizer", "dtypes_v2", "empty_v2", "v1"};
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        char *p = ob_path_join(dir, valid[i]);
        ob_1bit_file *f;
        assert_ok(ob_1bit_open(p, NULL, &f));
        if (strcmp(valid[i], "dtypes_v2") == 0) {
            const ob_1bit_tensor *t = ob_1bit_find(f, "f32");
            float v[3];
            memcpy(v, t->data, sizeof v);
            assert_true(v[0] == 1.5f && v[1] == -2.0f && v[2] == 0.25f);
            t = ob_1bit_find(f, "i8");
            assert_true(t->num_scales == 2 && t->scales[1] == 0.25f && ((const int8_t *)t->data)[1] == -127);
        }
        if (strcmp(valid[i], "model_v2") == 0) {
            ob_packed_model *pm;
            assert_ok(ob_packed_model_from_1bit(f, &pm));
            ob_infer *s;
            float logits[16];
            int32_t tok = 3;
            assert_ok(ob_infer_create(pm, NULL, &s));
            assert_ok(ob_infer_forward(s, &tok, 1, logits, false));
            assert_true(isfinite(logits[0]));
            ob_infer_free(s);
            ob_packed_model_free(pm);
        } else {
            ob_1bit_close(f);
        }
        free(p);
    }
    static const char *const broken[] = {"broken_bad_dtype", "broken_bad_ndims", "broken_config_size", "broken_crc",
                                         "broken_data_unaligned", "broken_name_out", "broken_scales_count",
                                         "broken_tensor_count", "truncated"};
    for (size_t i = 0; i < sizeof broken / sizeof *broken; i++) {
        char *p = ob_path_join(dir, broken[i]);
        ob_1bit_file *f;
        if (ob_1bit_open(p, NULL, &f) == OB_OK)
            fail_msg("%s was accepted", broken[i]);
        free(p);
    }
    tu_remove_tree(dir);
    free(dir);
}

/* ---- packed models in files -------------------------------------------------------------------- */

static void small_config(ob_config *c, int variant) {
    ob_config_default(c);
    c->vocab_size = 300;
    c->hidden_size = 64;
    c->num_heads = 4;
    c->num_kv_heads = 2;
    c->num_layers = 2;
    c->intermediate_size = 80;
    c->max_seq_len = 24;
    if (variant == 1) {
        c->use_ternary = c->use_rope = c->use_swiglu = c->use_subln = true;
    } else if (variant == 2) {
        c->tie_embeddings = false;
        c->use_relu2 = true;
        c->has_layer_bit_map = true;
        c->layer_modes[0] = OB_MODE_F16;
        c->layer_modes[1] = OB_MODE_FOURBIT;
        c->embedding_mode = OB_MODE_F16;
    }
}

static char *make_tokenizer_json(const char *dir, size_t *len) {
    char text[4096];
    size_t n = 0;
    ob_rng r;
    ob_rng_seed(&r, 9);
    static const char *const words[] = {"the ", "king ", "and ", "queen ", "of ", "hearts ", "said ", "no. "};
    while (n + 10 < sizeof text) {
        const char *w = words[ob_rng_below(&r, 8)];
        memcpy(text + n, w, strlen(w));
        n += strlen(w);
    }
    text[n] = 0;
    char *src = tu_write_text(dir, "text.txt", text);
    const char *files[] = {src};
    static const char *const specials[] = {"<|endoftext|>"};
    ob_bpe_train_options o = {.vocab_size = 280, .specials = specials, .num_specials = 1, .threads = 1};
    ob_tokenizer *tok;
    assert_ok(ob_tokenizer_train(&o, files, 1, &tok));
    char *path = ob_path_join(dir, "tokenizer.json");
    assert_ok(ob_tokenizer_save(tok, path));
    ob_tokenizer_free(tok);
    char *json;
    assert_ok(ob_read_file(path, &json, len));
    free(path);
    free(src);
    return json;
}

static void compare_logits(const ob_packed_model *a, const ob_packed_model *b, uint64_t seed) {
    int T = a->cfg.max_seq_len, V = a->cfg.vocab_size;
    ob_rng r;
    ob_rng_seed(&r, seed);
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    for (int t = 0; t < T; t++)
        tok[t] = (int32_t)ob_rng_below(&r, (uint64_t)V);
    float *la = malloc((size_t)T * V * sizeof(float)), *lb = malloc((size_t)T * V * sizeof(float));
    ob_infer *sa, *sb;
    ob_infer_options io = {0, 1, OB_ISA_AUTO};
    assert_ok(ob_infer_create(a, &io, &sa));
    assert_ok(ob_infer_create(b, &io, &sb));
    assert_ok(ob_infer_forward(sa, tok, T, la, true));
    assert_ok(ob_infer_forward(sb, tok, T, lb, true));
    assert_memory_equal(la, lb, (size_t)T * V * sizeof(float));
    ob_infer_free(sa);
    ob_infer_free(sb);
    free(tok);
    free(la);
    free(lb);
}

static void test_packed_model_round_trip(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    size_t tok_len;
    char *tok_json = make_tokenizer_json(dir, &tok_len);
    char *path = ob_path_join(dir, "m.1bit");
    const ob_table_precision tables[3] = {OB_TABLE_F32, OB_TABLE_I8, OB_TABLE_F16};
    for (int v = 0; v < 3; v++) {
        ob_config cfg;
        small_config(&cfg, v);
        ob_model *m;
        assert_ok(ob_model_create(&cfg, &m));
        ob_model_init(m, seed_base + 10 + v);
        ob_pack_options po = {tables[v], tables[v]};
        ob_packed_model *pm, *back;
        assert_ok(ob_packed_model_build(m, m->weights, &po, &pm));
        assert_ok(ob_1bit_write_model(path, pm, tok_json, tok_len));
        ob_tokenizer *tok;
        assert_ok(ob_infer_open(NULL, path, NULL, &back, &tok));
        assert_int_equal(ob_tokenizer_vocab_size(tok), 280);
        assert_true(ob_config_equal(&pm->cfg, &back->cfg));
        assert_int_equal(back->head.dtype, pm->head.dtype);
        /* The same tensors, without the alignment gaps of the packed model's block. */
        assert_true(back->weight_bytes > 0 && back->weight_bytes <= pm->weight_bytes);
        compare_logits(pm, back, seed_base + 20 + v);
        ob_packed_model_free(back);
        ob_tokenizer_free(tok);
        /* A --head the file does not store is refused, not repacked. */
        ob_pack_options want = {v == 1 ? OB_TABLE_F16 : OB_TABLE_I8, OB_TABLE_AUTO};
        assert_fails_with(ob_infer_open(NULL, path, &want, &back, NULL), OB_ERR_INVALID_ARG,
                          "keeps the precision it was exported with");
        ob_packed_model_free(pm);
        ob_model_free(m);
        ob_config_free(&cfg);
    }
    free(path);
    free(tok_json);
    tu_remove_tree(dir);
    free(dir);
}

/* A file whose tensors do not make the model its config describes. */
static void test_model_mismatches(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    char *path = ob_path_join(dir, "m.1bit");
    ob_config cfg;
    small_config(&cfg, 1);
    ob_model *m;
    assert_ok(ob_model_create(&cfg, &m));
    ob_model_init(m, seed_base + 30);
    ob_packed_model *pm;
    assert_ok(ob_packed_model_build(m, m->weights, NULL, &pm));
    assert_ok(ob_1bit_write_model(path, pm, NULL, 0));
    ob_1bit_file *f;
    assert_ok(ob_1bit_open(path, NULL, &f));
    int n = f->num_tensors;
    ob_1bit_tensor *t = malloc((size_t)(n + 1) * sizeof *t);
    char *cfg_json = ob_config_to_json(&pm->cfg);
    ob_1bit_contents c = {cfg_json, strlen(cfg_json), NULL, 0, t, n};
    char *bad = ob_path_join(dir, "bad.1bit");
    ob_packed_model *back;
    ob_tokenizer *tok;
    /* no tokenizer */
    assert_fails_with(ob_infer_open(NULL, path, NULL, &back, &tok), OB_ERR_NOT_FOUND, "holds no tokenizer");
    /* a missing tensor */
    memcpy(t, f->tensors, (size_t)n * sizeof *t);
    t[3] = t[n - 1];
    c.num_tensors = n - 1;
    assert_ok(ob_1bit_write(bad, &c));
    assert_fails_with(ob_infer_open(NULL, bad, NULL, &back, NULL), OB_ERR_FORMAT, "is missing");
    /* an extra tensor */
    memcpy(t, f->tensors, (size_t)n * sizeof *t);
    t[n] = t[1];
    t[n].name = "model.extra.weight";
    c.num_tensors = n + 1;
    assert_ok(ob_1bit_write(bad, &c));
    assert_fails_with(ob_infer_open(NULL, bad, NULL, &back, NULL), OB_ERR_FORMAT, "'model.extra.weight' is not part");
    /* a projection in another dtype than its mode */
    memcpy(t, f->tensors, (size_t)n * sizeof *t);
    c.num_tensors = n;
    int q = -1;
    for (int i = 0; i < n; i++)
        if (strstr(t[i].name, "layers.1.self_attn.q_proj"))
            q = i;
    assert_true(q >= 0);
    int8_t *codes = calloc((size_t)(t[q].shape[0] * t[q].shape[1]), 1);
    void *packed = calloc(1, (size_t)ob_1bit_data_bytes(OB_DTYPE_BINARY1, 2, t[q].shape));
    for (int64_t i = 0; i < t[q].shape[0] * t[q].shape[1]; i++)
        codes[i] = 1;
    assert_ok(ob_pack_codes(OB_DTYPE_BINARY1, codes, (int)t[q].shape[0], (int)t[q].shape[1], packed));
    t[q].dtype = OB_DTYPE_BINARY1;
    t[q].data = packed;
    t[q].data_bytes = ob_1bit_data_bytes(OB_DTYPE_BINARY1, 2, t[q].shape);
    assert_ok(ob_1bit_write(bad, &c));
    assert_fails_with(ob_infer_open(NULL, bad, NULL, &back, NULL), OB_ERR_FORMAT, "needs TERNARY2");
    /* a norm gain of the wrong length */
    memcpy(t, f->tensors, (size_t)n * sizeof *t);
    t[n - 1].shape[0] = 32;
    t[n - 1].data_bytes = 128;
    assert_ok(ob_1bit_write(bad, &c));
    assert_fails_with(ob_infer_open(NULL, bad, NULL, &back, NULL), OB_ERR_FORMAT, "model.norm.weight' has 1 dimensions [32");
    /* a config that does not parse */
    memcpy(t, f->tensors, (size_t)n * sizeof *t);
    c.config_json = "{\"hidden_size\": 7}";
    c.config_len = strlen(c.config_json);
    assert_ok(ob_1bit_write(bad, &c));
    assert_fails_with(ob_infer_open(NULL, bad, NULL, &back, NULL), OB_ERR_CONFIG, "bad.1bit (config)");
    free(codes);
    free(packed);
    ob_1bit_close(f);
    free(t);
    free(cfg_json);
    free(bad);
    ob_packed_model_free(pm);
    ob_model_free(m);
    ob_config_free(&cfg);
    free(path);
    tu_remove_tree(dir);
    free(dir);
}

/* ---- the export pipeline ----------------------------------------------------------------------- */

static void write_checkpoint(const char *dir, const ob_config *cfg, uint64_t seed, const char *tok_json,
                             size_t tok_len) {
    ob_model *m;
    assert_ok(ob_model_create(cfg, &m));
    ob_model_init(m, seed);
    char *p = ob_path_join(dir, "config.json");
    assert_ok(ob_config_save(cfg, p));
    free(p);
    p = ob_path_join(dir, "model.safetensors");
    assert_ok(ob_model_save(m, m->weights, p, NULL));
    free(p);
    p = ob_path_join(dir, "tokenizer.json");
    assert_ok(ob_write_file_atomic(p, tok_json, tok_len));
    free(p);
    ob_model_free(m);
}

static void test_export_pipeline(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    size_t tok_len;
    char *tok_json = make_tokenizer_json(dir, &tok_len);
    char *ck = ob_path_join(dir, "ck");
    assert_ok(ob_mkdirs(ck));
    ob_config cfg;
    small_config(&cfg, 1); /* ternary */
    write_checkpoint(ck, &cfg, seed_base + 40, tok_json, tok_len);
    char *out = ob_path_join(dir, "x.1bit"), *hdr = ob_path_join(dir, "x.h");
    ob_export_options o = {.model_dir = ck, .output = out, .pack_mode = OB_PACK_MODE_TERNARY, .verify = true,
                           .c_header = hdr};
    ob_size_report r;
    assert_ok(ob_export(&o, &r));
    assert_int_equal(r.verified_tokens, cfg.max_seq_len);
    size_t size;
    uint8_t *bytes = read_all(out, &size);
    assert_int_equal(r.total_bytes, size);
    uint64_t sum = 0, weights = 0;
    for (int k = 0; k < OB_SIZE_KIND_COUNT; k++) {
        sum += r.bytes[k];
        weights += r.weights[k];
    }
    assert_int_equal(sum, r.total_bytes);
    assert_int_equal(weights, r.total_weights);
    assert_int_equal(r.total_weights, (uint64_t)ob_config_param_count(&cfg));
    /* Every decoder matrix: rows of 2-bit codes padded to 256 columns, and its one scale. */
    int hd = cfg.hidden_size / cfg.num_heads, kvd = cfg.num_kv_heads * hd;
    int rows[7] = {cfg.hidden_size, kvd, kvd, cfg.hidden_size, cfg.intermediate_size, cfg.intermediate_size,
                   cfg.hidden_size};
    uint64_t qbytes = 0, qweights = 0;
    for (int k = 0; k < 7; k++) {
        int cols = k == 6 ? cfg.intermediate_size : cfg.hidden_size;
        qbytes += (uint64_t)rows[k] * ob_packed_row_bytes(OB_DTYPE_TERNARY2, cols) + 4;
        qweights += (uint64_t)rows[k] * (uint64_t)cols;
    }
    assert_int_equal(r.quantised_bytes, qbytes * (uint64_t)cfg.num_layers);
    assert_int_equal(r.quantised_weights, qweights * (uint64_t)cfg.num_layers);
    assert_true(r.header_bytes > 0 && ob_path_exists(hdr));
    ob_aligned_free(bytes);
    /* The pack mode must match what was trained, unless asked to change it. */
    o.pack_mode = OB_PACK_MODE_BINARY;
    o.c_header = NULL;
    assert_fails_with(ob_export(&o, &r), OB_ERR_CONFIG, "--change-mode");
    o.change_mode = true;
    assert_ok(ob_export(&o, &r));
    ob_packed_model *pm;
    assert_ok(ob_infer_open(NULL, out, NULL, &pm, NULL));
    assert_false(pm->cfg.use_ternary);
    assert_int_equal(pm->layers[0].proj[OB_PROJ_Q].dtype, OB_DTYPE_BINARY1);
    ob_packed_model_free(pm);
    /* --emit-c-header refuses what the embedded runtime cannot run, before writing. */
    ob_config f16;
    small_config(&f16, 2);
    write_checkpoint(ck, &f16, seed_base + 41, tok_json, tok_len);
    o.pack_mode = OB_PACK_MODE_CONFIG;
    o.c_header = hdr;
    char *out2 = ob_path_join(dir, "y.1bit");
    o.output = out2;
    assert_fails_with(ob_export(&o, &r), OB_ERR_UNSUPPORTED, "layer 0 is f16");
    assert_false(ob_path_exists(out2));
    o.c_header = NULL;
    o.embed = OB_TABLE_I8;
    assert_ok(ob_export(&o, &r));
    assert_ok(ob_infer_open(NULL, out2, NULL, &pm, NULL));
    assert_int_equal(pm->embed.dtype, OB_DTYPE_I8);
    assert_int_equal(pm->head.dtype, OB_DTYPE_I8);
    ob_packed_model_free(pm);
    o.model_dir = dir; /* no config.json, no latest */
    assert_fails_with(ob_export(&o, &r), OB_ERR_NOT_FOUND, "not a checkpoint directory");
    ob_config_free(&f16);
    ob_config_free(&cfg);
    free(out);
    free(out2);
    free(hdr);
    free(ck);
    free(tok_json);
    tu_remove_tree(dir);
    free(dir);
}

int main(void) {
    seed_base = tu_seed("test_format");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_matches_zlib),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_every_rule),
        cmocka_unit_test(test_flipped_bytes_detected),
        cmocka_unit_test(test_version1_from_reference_writer),
        cmocka_unit_test(test_independent_writer),
        cmocka_unit_test(test_packed_model_round_trip),
        cmocka_unit_test(test_model_mismatches),
        cmocka_unit_test(test_export_pipeline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
