/* safetensors: every validation rule of the reader with an input that breaks
 * it, truncations and byte flips of valid files, writer rules, round trips of
 * fresh random tensors, and interop both ways with the independent Python
 * reader/writer tests/ref/safetensors_io.py. Set ONEBIT_TEST_SEED to replay. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onebit/json.h"
#include "onebit/safetensors.h"
#include "test_util.h"

static uint64_t test_seed(void) {
    static uint64_t seed;
    if (!seed)
        seed = tu_seed("test_safetensors") | 1;
    return seed;
}

/* ---- building file images ----------------------------------------------- */

/* u64 length + header + data_len bytes (0, 1, 2, ...), in an exactly sized
 * heap block so that AddressSanitizer sees any read past the end. */
static unsigned char *image_with_length(uint64_t header_len, const char *header, size_t data_len, size_t *size) {
    size_t hl = strlen(header);
    *size = 8 + hl + data_len;
    unsigned char *b = malloc(*size);
    assert_non_null(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(header_len >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++)
        b[8 + hl + i] = (unsigned char)i;
    return b;
}

static unsigned char *image(const char *header, size_t data_len, size_t *size) {
    return image_with_length(strlen(header), header, data_len, size);
}

static volatile unsigned sink; /* keeps the reads of view bytes */

/* Opens bytes copied into an exactly sized block; returns the status. */
static ob_status open_copy(const unsigned char *bytes, size_t size, ob_st_file **f) {
    unsigned char *copy = malloc(size ? size : 1);
    assert_non_null(copy);
    if (size)
        memcpy(copy, bytes, size);
    ob_status st = ob_st_open_memory(copy, size, "t.safetensors", f);
    if (st == OB_OK) {
        /* The views point into `copy`: touch every byte before it goes. */
        unsigned sum = 0;
        for (size_t i = 0; i < ob_st_count(*f); i++) {
            const ob_tensor_view *v = ob_st_get(*f, i);
            for (size_t k = 0; k < v->nbytes; k++)
                sum += ((const unsigned char *)v->data)[k];
        }
        sink = sum;
        ob_st_close(*f);
        *f = NULL;
    }
    free(copy);
    return st;
}

/* ---- validation rules ---------------------------------------------------- */

#define X4 "\"dtype\":\"F32\",\"shape\":[4]"

typedef struct {
    const char *what;
    const char *header;
    size_t data_len;
    ob_status code;
    const char *needle;
} bad_header;

static const bad_header bad_headers[] = {
    {"empty header", "", 16, OB_ERR_FORMAT, "t.safetensors header: invalid JSON"},
    {"only spaces", "        ", 16, OB_ERR_FORMAT, "invalid JSON"},
    {"invalid JSON", "{\"x\":{" X4 ",", 16, OB_ERR_FORMAT, "invalid JSON at line 1"},
    {"bare word", "{x:1}", 0, OB_ERR_FORMAT, "invalid JSON"},
    {"trailing garbage", "{} x", 0, OB_ERR_FORMAT, "unexpected characters after the JSON value"},
    {"two values", "{}{}", 0, OB_ERR_FORMAT, "unexpected characters after the JSON value"},
    {"byte order mark", "\xEF\xBB\xBF{}", 0, OB_ERR_FORMAT, "byte order mark"},
    {"bad UTF-8", "{\"\xff\":{" X4 ",\"data_offsets\":[0,16]}}", 16, OB_ERR_FORMAT, "invalid UTF-8"},
    {"NUL escape", "{\"a\\u0000\":{" X4 ",\"data_offsets\":[0,16]}}", 16, OB_ERR_FORMAT, "\\u0000"},
    {"duplicate tensor", "{\"x\":{" X4 ",\"data_offsets\":[0,16]},\"x\":{" X4 ",\"data_offsets\":[16,32]}}", 32,
     OB_ERR_FORMAT, "duplicate key \"x\""},
    {"duplicate field", "{\"x\":{\"dtype\":\"F32\"," X4 ",\"data_offsets\":[0,16]}}", 16, OB_ERR_FORMAT,
     "duplicate key \"dtype\""},
    {"duplicate metadata", "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0, OB_ERR_FORMAT, "duplicate key \"a\""},
    {"header array", "[1, 2]", 0, OB_ERR_FORMAT, "header is an array, expected a JSON object"},
    {"header string", "\"x\"", 0, OB_ERR_FORMAT, "header is a string"},
    {"entry array", "{\"x\":[1]}", 0, OB_ERR_FORMAT, "tensor 'x': entry is an array, expected an object"},
    {"entry null", "{\"x\":null}", 0, OB_ERR_FORMAT, "tensor 'x': entry is null"},
    {"missing dtype", "{\"x\":{\"shape\":[4],\"data_offsets\":[0,16]}}", 16, OB_ERR_FORMAT,
     "tensor 'x': missing field 'dtype'"},
    {"missing shape", "{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", 16, OB_ERR_FORMAT,
     "tensor 'x': missing field 'shape'"},
    {"missing offsets", "{\"x\":{" X4 "}}", 16, OB_ERR_FORMAT, "tensor 'x': missing field 'data_offsets'"},
    {"extra field", "{\"x\":{" X4 ",\"data_offsets\":[0,16],\"foo\":1}}", 16, OB_ERR_FORMAT,
     "tensor 'x': unexpected field 'foo'"},
    {"dtype number", "{\"x\":{\"dtype\":4,\"shape\":[4],\"data_offsets\":[0,16]}}", 16, OB_ERR_FORMAT,
     "tensor 'x': field 'dtype' must be a string, found a number"},
    {"unknown dtype", "{\"w\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, OB_ERR_FORMAT,
     "t.safetensors: tensor 'w': unsupported dtype \"F64\" (supported: F32"},
    {"bool dtype", "{\"w\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, OB_ERR_FORMAT,
     "unsupported dtype \"BOOL\""},
    {"packed dtype", "{\"w\":{\"dtype\":\"TERNARY2\",\"shape\":[4],\"data_offsets\":[0,1]}}", 1, OB_ERR_FORMAT,
     "unsupported dtype \"TERNARY2\""},
    {"lower-case dtype", "{\"w\":{\"dtype\":\"f32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, OB_ERR_FORMAT,
     "unsupported dtype \"f32\""},
    {"shape number", "{\"x\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16, OB_ERR_FORMAT,
     "tensor 'x': field 'shape' must be an array of integers, found a number"},
    {"shape object", "{\"x\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,16]}}", 16, OB_ERR_FORMAT,
     "found an object"},
    {"shape entry string", "{\"x\":{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,16]}}", 16,
     OB_ERR_FORMAT, "tensor 'x': shape[0] is a string, expected a non-negative integer"},
    {"shape entry nested", "{\"x\":{\"dtype\":\"F32\",\"shape\":[[4]],\"data_offsets\":[0,16]}}", 16,
     OB_ERR_FORMAT, "shape[0] is an array"},
    {"negative shape", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,-2],\"data_offsets\":[0,16]}}", 16, OB_ERR_FORMAT,
     "tensor 'x': shape[1] = -2 is negative"},
    {"fractional shape", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,10]}}", 10, OB_ERR_FORMAT,
     "tensor 'x': shape[0] = 2.5 is not an integer"},
    {"huge shape entry", "{\"x\":{\"dtype\":\"U8\",\"shape\":[1e300],\"data_offsets\":[0,16]}}", 16, OB_ERR_FORMAT,
     "too large (over 2^53)"},
    {"too many dims", "{\"x\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
     OB_ERR_FORMAT, "tensor 'x': shape has 9 dimensions, more than the 8 supported"},
    {"element overflow", "{\"x\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,16]}}",
     16, OB_ERR_FORMAT, "tensor 'x': shape [4294967296, 4294967296, 4] of U8 is too large"},
    {"byte overflow", "{\"x\":{\"dtype\":\"I64\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,16]}}", 16,
     OB_ERR_FORMAT, "of I64 is too large (its byte size overflows)"},
    {"offsets string", "{\"x\":{" X4 ",\"data_offsets\":\"0\"}}", 16, OB_ERR_FORMAT,
     "tensor 'x': field 'data_offsets' must be an array of 2 integers, found a string"},
    {"three offsets", "{\"x\":{" X4 ",\"data_offsets\":[0,8,16]}}", 16, OB_ERR_FORMAT,
     "an array of another length"},
    {"one offset", "{\"x\":{" X4 ",\"data_offsets\":[16]}}", 16, OB_ERR_FORMAT, "an array of another length"},
    {"negative offset", "{\"x\":{" X4 ",\"data_offsets\":[-16,0]}}", 16, OB_ERR_FORMAT,
     "tensor 'x': data_offsets[0] = -16 is negative"},
    {"offset string", "{\"x\":{" X4 ",\"data_offsets\":[0,\"16\"]}}", 16, OB_ERR_FORMAT,
     "tensor 'x': data_offsets[1] is a string"},
    {"fractional offset", "{\"x\":{" X4 ",\"data_offsets\":[0,16.5]}}", 16, OB_ERR_FORMAT,
     "data_offsets[1] = 16.5 is not an integer"},
    {"offset above 2^53", "{\"x\":{" X4 ",\"data_offsets\":[18014398509481984,18014398509482000]}}", 16,
     OB_ERR_FORMAT, "data_offsets[0] = 18014398509481984 is too large"},
    {"end before begin", "{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,0]}}", 16, OB_ERR_FORMAT,
     "tensor 'x': data_offsets [16, 0] end before they begin"},
    {"span mismatch", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 16, OB_ERR_FORMAT,
     "t.safetensors: tensor 'x': data_offsets [0, 12] span 12 bytes but shape [2, 2] of F32 needs 16"},
    {"span too long", "{\"x\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, OB_ERR_FORMAT,
     "span 8 bytes but shape [3] of BF16 needs 6"},
    {"scalar span", "{\"x\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,4]}}", 8, OB_ERR_FORMAT,
     "shape [] of I64 needs 8"},
    {"span outside data", "{\"x\":{" X4 ",\"data_offsets\":[0,16]}}", 8, OB_ERR_FORMAT,
     "tensor 'x': data_offsets [0, 16] run past the end of the data area (8 bytes)"},
    {"span far outside", "{\"x\":{" X4 ",\"data_offsets\":[9007199254740976,9007199254740992]}}", 8,
     OB_ERR_FORMAT, "run past the end of the data area"},
    {"empty span past the end", "{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[9,9]}}", 8,
     OB_ERR_FORMAT, "run past the end of the data area (8 bytes)"},
    {"overlap", "{\"a\":{" X4 ",\"data_offsets\":[0,16]},\"b\":{" X4 ",\"data_offsets\":[8,24]}}", 24,
     OB_ERR_FORMAT, "t.safetensors: tensors 'a' data_offsets [0, 16] and 'b' [8, 24] overlap"},
    {"overlap listed backwards", "{\"b\":{" X4 ",\"data_offsets\":[8,24]},\"a\":{" X4 ",\"data_offsets\":[0,16]}}",
     24, OB_ERR_FORMAT, "tensors 'a' data_offsets [0, 16] and 'b' [8, 24] overlap"},
    {"same span", "{\"a\":{" X4 ",\"data_offsets\":[0,16]},\"b\":{" X4 ",\"data_offsets\":[0,16]}}", 16,
     OB_ERR_FORMAT, "overlap"},
    {"empty span inside another",
     "{\"a\":{" X4 ",\"data_offsets\":[0,16]},\"e\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}}", 16,
     OB_ERR_FORMAT, "overlap"},
    {"metadata array", "{\"__metadata__\":[\"a\"]}", 0, OB_ERR_FORMAT,
     "t.safetensors: __metadata__ must be an object of strings, found an array"},
    {"metadata string", "{\"__metadata__\":\"a\"}", 0, OB_ERR_FORMAT, "found a string"},
    {"metadata number value", "{\"__metadata__\":{\"ok\":\"1\",\"k\":1}}", 0, OB_ERR_FORMAT,
     "__metadata__ 'k' must be a string, found a number"},
    {"metadata object value", "{\"__metadata__\":{\"k\":{}}}", 0, OB_ERR_FORMAT, "'k' must be a string, found an object"},
    {"metadata null value", "{\"__metadata__\":{\"k\":null}}", 0, OB_ERR_FORMAT, "'k' must be a string, found null"},
    {"metadata bool value", "{\"__metadata__\":{\"k\":true}}", 0, OB_ERR_FORMAT, "found a boolean"},
};

static void test_rejects_each_bad_header(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_headers / sizeof *bad_headers; i++) {
        const bad_header *c = &bad_headers[i];
        size_t size;
        unsigned char *b = image(c->header, c->data_len, &size);
        ob_st_file *f = (ob_st_file *)1;
        ob_status st = open_copy(b, size, &f);
        if (st != c->code || !strstr(ob_last_error(), c->needle))
            fail_msg("%s: got %s '%s', wanted %s with '%s'", c->what, ob_status_name(st), ob_last_error(),
                     ob_status_name(c->code), c->needle);
        assert_null(f);
        free(b);
    }
}

static void test_rejects_bad_header_length(void **state) {
    (void)state;
    ob_st_file *f;
    size_t size;
    assert_fails_with(open_copy(NULL, 0, &f), OB_ERR_FORMAT, "t.safetensors: file is 0 bytes, too short");
    assert_fails_with(open_copy((const unsigned char *)"\x02\0\0\0\0\0\0", 7, &f), OB_ERR_FORMAT,
                      "file is 7 bytes, too short for the 8-byte header length");
    unsigned char *b = image_with_length(100, "{}", 18, &size);
    assert_fails_with(open_copy(b, size, &f), OB_ERR_FORMAT, "header length 100 runs past the end of the file (28 bytes)");
    free(b);
    b = image_with_length(3, "{}", 0, &size); /* one byte short of the header */
    assert_fails_with(open_copy(b, size, &f), OB_ERR_FORMAT, "header length 3 runs past the end of the file (10 bytes)");
    free(b);
    b = image_with_length((uint64_t)1 << 40, "{}", 0, &size);
    assert_fails_with(open_copy(b, size, &f), OB_ERR_FORMAT, "header length 1099511627776 exceeds the limit");
    free(b);
    b = image_with_length(UINT64_MAX, "{}", 0, &size);
    assert_fails_with(open_copy(b, size, &f), OB_ERR_FORMAT, "header length 18446744073709551615 exceeds the limit");
    free(b);
    b = image_with_length(100000001, "{}", 0, &size);
    assert_fails_with(open_copy(b, size, &f), OB_ERR_FORMAT, "exceeds the limit of 100000000 bytes");
    free(b);
}

/* Legal files that look unusual: no tensors, gaps and trailing bytes, empty
 * and scalar tensors, whitespace around the JSON, spans listed out of order. */
static void test_accepts_unusual_but_valid(void **state) {
    (void)state;
    ob_st_file *f;
    size_t size;
    unsigned char *b = image("{}", 0, &size);
    assert_ok(ob_st_open_memory(b, size, "t", &f));
    assert_int_equal(ob_st_count(f), 0);
    assert_int_equal(ob_st_metadata_count(f), 0);
    assert_null(ob_st_get(f, 0));
    assert_null(ob_st_find(f, "x"));
    ob_st_close(f);
    free(b);

    b = image(" \n{\"__metadata__\":{},\"b\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]},"
              "\"e2\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]},"
              "\"e1\":{\"dtype\":\"F32\",\"shape\":[3,0,2],\"data_offsets\":[4,4]},"
              "\"a\":{\"dtype\":\"F16\",\"shape\":[1,2],\"data_offsets\":[0,4]}}\t\r\n  ",
              40, &size);
    assert_ok(ob_st_open_memory(b, size, "t", &f));
    assert_int_equal(ob_st_count(f), 4);
    /* Sorted by offset; the two empty spans at 4 keep their header order. */
    const char *order[] = {"a", "e2", "e1", "b"};
    for (size_t i = 0; i < 4; i++) {
        const ob_tensor_view *v = ob_st_get(f, i);
        assert_string_equal(v->name, order[i]);
        assert_ptr_equal(ob_st_find(f, order[i]), v);
    }
    const ob_tensor_view *s = ob_st_find(f, "b");
    assert_int_equal(s->ndim, 0);
    assert_int_equal(s->nbytes, 8);
    size_t header_len = size - 8 - 40;
    assert_ptr_equal(s->data, b + 8 + header_len + 16);
    assert_int_equal(ob_st_find(f, "e1")->ndim, 3);
    assert_int_equal(ob_st_find(f, "e1")->nbytes, 0);
    ob_st_close(f);
    free(b);
    ob_st_close(NULL);
}

static void test_truncations_and_flips(void **state) {
    (void)state;
    int64_t shape[2] = {3, 5};
    float values[15];
    uint16_t halves[15];
    for (int i = 0; i < 15; i++) {
        values[i] = (float)i - 7.5f;
        halves[i] = ob_f32_to_f16(values[i]);
    }
    char *dir = tu_make_temp_dir();
    char *path = ob_path_join(dir, "v.safetensors");
    ob_st_writer *w;
    assert_ok(ob_st_writer_create(&w));
    assert_ok(ob_st_writer_add(w, "w", OB_DTYPE_F32, 2, shape, values));
    assert_ok(ob_st_writer_add(w, "h", OB_DTYPE_F16, 2, shape, halves));
    assert_ok(ob_st_writer_add(w, "z", OB_DTYPE_I8, 1, (int64_t[]){0}, NULL));
    assert_ok(ob_st_writer_set_metadata(w, "k", "v"));
    assert_ok(ob_st_writer_write(w, path));
    ob_st_writer_free(w);
    char *bytes;
    size_t size;
    assert_ok(ob_read_file(path, &bytes, &size));
    ob_st_file *f;
    assert_ok(open_copy((unsigned char *)bytes, size, &f));
    /* Every proper prefix is rejected (the data area is exactly covered). */
    for (size_t len = 0; len < size; len++)
        if (open_copy((unsigned char *)bytes, len, &f) == OB_OK)
            fail_msg("prefix of %zu of %zu bytes accepted", len, size);
    /* Any byte changed to any value: either rejected or consistent. */
    ob_rng rng;
    ob_rng_seed(&rng, test_seed());
    for (size_t i = 0; i < size; i++) {
        for (int k = 0; k < 8; k++) {
            char saved = bytes[i];
            bytes[i] = (char)(k == 0 ? ' ' : k == 1 ? '9' : (int)ob_rng_below(&rng, 256));
            ob_status st = open_copy((unsigned char *)bytes, size, &f);
            assert_true(st == OB_OK || st == OB_ERR_FORMAT);
            bytes[i] = saved;
        }
    }
    free(bytes);
    free(path);
    tu_remove_tree(dir);
    free(dir);
}

static void test_open_file_errors(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    ob_st_file *f;
    char *missing = ob_path_join(dir, "missing.safetensors");
    assert_fails_with(ob_st_open(missing, &f), OB_ERR_IO, missing);
    assert_null(f);
    assert_fails_with(ob_st_open(dir, &f), OB_ERR_IO, "not a regular file");
    char *empty = tu_write_file(dir, "empty.safetensors", "", 0);
    assert_fails_with(ob_st_open(empty, &f), OB_ERR_FORMAT, "empty.safetensors: file is 0 bytes");
    size_t size;
    unsigned char *b = image("{\"x\":{" X4 ",\"data_offsets\":[0,16]}}", 16, &size);
    char *whole = tu_write_file(dir, "whole.safetensors", b, size);
    assert_ok(ob_st_open(whole, &f));
    ob_st_close(f);
    char *cut = tu_write_file(dir, "cut.safetensors", b, size - 1);
    assert_fails_with(ob_st_open(cut, &f), OB_ERR_FORMAT, "cut.safetensors: tensor 'x': data_offsets [0, 16] run past");
    free(b);
    free(missing);
    free(empty);
    free(whole);
    free(cut);
    tu_remove_tree(dir);
    free(dir);
}

static void test_require(void **state) {
    (void)state;
    size_t size;
    unsigned char *b = image("{\"__metadata__\":{\"format\":\"pt\",\"k\":\"\"},"
                             "\"layer.0.weight\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]}}",
                             12, &size);
    ob_st_file *f;
    assert_ok(ob_st_open_memory(b, size, "m.safetensors", &f));
    const ob_tensor_view *v = NULL;
    assert_ok(ob_st_require(f, "layer.0.weight", OB_DTYPE_F16, 2, (int64_t[]){2, 3}, &v));
    assert_ptr_equal(v, ob_st_get(f, 0));
    assert_ok(ob_st_require(f, "layer.0.weight", OB_DTYPE_F16, 2, (int64_t[]){2, 3}, NULL));
    assert_fails_with(ob_st_require(f, "layer.0.weight", OB_DTYPE_F32, 2, (int64_t[]){2, 3}, &v), OB_ERR_FORMAT,
                      "m.safetensors: tensor 'layer.0.weight' is F16 [2, 3], expected F32 [2, 3]");
    assert_null(v);
    assert_fails_with(ob_st_require(f, "layer.0.weight", OB_DTYPE_F16, 2, (int64_t[]){3, 2}, &v), OB_ERR_FORMAT,
                      "is F16 [2, 3], expected F16 [3, 2]");
    assert_fails_with(ob_st_require(f, "layer.0.weight", OB_DTYPE_F16, 1, (int64_t[]){6}, &v), OB_ERR_FORMAT,
                      "expected F16 [6]");
    assert_fails_with(ob_st_require(f, "layer.1.weight", OB_DTYPE_F16, 2, (int64_t[]){2, 3}, &v), OB_ERR_NOT_FOUND,
                      "m.safetensors: no tensor 'layer.1.weight' (did you mean 'layer.0.weight'?)");
    assert_fails_with(ob_st_require(f, "lm_head", OB_DTYPE_F16, 0, NULL, &v), OB_ERR_NOT_FOUND,
                      "no tensor 'lm_head'");
    assert_null(strstr(ob_last_error(), "did you mean"));
    assert_string_equal(ob_st_metadata(f, "format"), "pt");
    assert_string_equal(ob_st_metadata(f, "k"), "");
    assert_null(ob_st_metadata(f, "missing"));
    assert_int_equal(ob_st_metadata_count(f), 2);
    const char *key, *value;
    ob_st_metadata_at(f, 1, &key, &value);
    assert_string_equal(key, "k");
    ob_st_metadata_at(f, 2, &key, &value);
    assert_null(key);
    assert_null(value);
    ob_st_close(f);
    free(b);
}

/* The fuzzer's seeds say by their name whether they are valid. */
static void test_corpus_seeds(void **state) {
    (void)state;
    char dirpath[4096];
    snprintf(dirpath, sizeof dirpath, "%s/tests/fuzz/corpus/fuzz_safetensors", getenv("ONEBIT_SOURCE_DIR"));
    DIR *d = opendir(dirpath);
    assert_non_null(d);
    struct dirent *e;
    int valid = 0, bad = 0;
    while ((e = readdir(d))) {
        bool want_ok = strncmp(e->d_name, "valid_", 6) == 0;
        if (!want_ok && strncmp(e->d_name, "bad_", 4) != 0)
            continue;
        char *path = ob_path_join(dirpath, e->d_name);
        ob_st_file *f;
        ob_status st = ob_st_open(path, &f);
        if ((st == OB_OK) != want_ok)
            fail_msg("%s: %s %s", e->d_name, ob_status_name(st), ob_last_error());
        ob_st_close(f);
        valid += want_ok;
        bad += !want_ok;
        free(path);
    }
    closedir(d);
    assert_true(valid >= 5 && bad >= 5);
}

/* ---- writer ---------------------------------------------------------------- */

static void test_writer_rejects(void **state) {
    (void)state;
    ob_st_writer *w;
    assert_ok(ob_st_writer_create(&w));
    float data[8] = {0};
    int64_t shape[2] = {2, 4};
    assert_ok(ob_st_writer_add(w, "a", OB_DTYPE_F32, 2, shape, data));
    assert_fails_with(ob_st_writer_add(w, "a", OB_DTYPE_F32, 2, shape, data), OB_ERR_INVALID_ARG,
                      "tensor 'a' added twice");
    assert_fails_with(ob_st_writer_add(w, "", OB_DTYPE_F32, 2, shape, data), OB_ERR_INVALID_ARG, "tensor name is empty");
    assert_fails_with(ob_st_writer_add(w, NULL, OB_DTYPE_F32, 2, shape, data), OB_ERR_INVALID_ARG, "tensor name is NULL");
    assert_fails_with(ob_st_writer_add(w, "__metadata__", OB_DTYPE_F32, 2, shape, data), OB_ERR_INVALID_ARG, "reserved");
    assert_fails_with(ob_st_writer_add(w, "bad\xff", OB_DTYPE_F32, 2, shape, data), OB_ERR_INVALID_ARG, "not valid UTF-8");
    assert_fails_with(ob_st_writer_add(w, "t", OB_DTYPE_TERNARY2, 2, shape, data), OB_ERR_INVALID_ARG,
                      "packed dtype TERNARY2 cannot be stored in safetensors");
    assert_fails_with(ob_st_writer_add(w, "t", OB_DTYPE_BINARY1, 2, shape, data), OB_ERR_INVALID_ARG, "BINARY1");
    assert_fails_with(ob_st_writer_add(w, "t", OB_DTYPE_FOURBIT, 2, shape, data), OB_ERR_INVALID_ARG, "FOURBIT");
    assert_fails_with(ob_st_writer_add(w, "t", OB_DTYPE_COUNT, 2, shape, data), OB_ERR_INVALID_ARG, "invalid dtype");
    assert_fails_with(ob_st_writer_add(w, "t", OB_DTYPE_F32, 2, (int64_t[]){2, -4}, data), OB_ERR_INVALID_ARG,
                      "tensor 't': shape[1] = -4 is negative");
    assert_fails_with(ob_st_writer_add(w, "t", OB_DTYPE_F32, OB_MAX_DIMS + 1, shape, data), OB_ERR_INVALID_ARG,
                      "9 dimensions");
    assert_fails_with(ob_st_writer_add(w, "t", OB_DTYPE_F32, -1, shape, data), OB_ERR_INVALID_ARG, "-1 dimensions");
    assert_fails_with(ob_st_writer_add(w, "t", OB_DTYPE_F32, 2, NULL, data), OB_ERR_INVALID_ARG, "shape is NULL");
    assert_fails_with(ob_st_writer_add(w, "t", OB_DTYPE_I64, 2, (int64_t[]){INT64_MAX, 2}, data), OB_ERR_INVALID_ARG,
                      "shape too large");
    assert_fails_with(ob_st_writer_add(w, "t", OB_DTYPE_I64, 2, (int64_t[]){1 << 30, 1 << 30}, data),
                      OB_ERR_INVALID_ARG, "shape too large");
    assert_fails_with(ob_st_writer_add(w, "t", OB_DTYPE_F32, 2, shape, NULL), OB_ERR_INVALID_ARG, "data is NULL");
    assert_fails_with(ob_st_writer_set_metadata(w, "", "v"), OB_ERR_INVALID_ARG, "metadata key is empty");
    assert_fails_with(ob_st_writer_set_metadata(w, "k", NULL), OB_ERR_INVALID_ARG, "value is NULL");
    assert_fails_with(ob_st_writer_set_metadata(w, "k", "\xc3"), OB_ERR_INVALID_ARG, "not valid UTF-8");
    assert_ok(ob_st_writer_set_metadata(w, "k", "first"));
    assert_ok(ob_st_writer_set_metadata(w, "k", "second")); /* the last value wins */
    assert_ok(ob_st_writer_add(w, "empty", OB_DTYPE_F32, 2, (int64_t[]){0, 4}, NULL));

    /* The rejected calls left the writer intact. */
    char *dir = tu_make_temp_dir();
    char *path = ob_path_join(dir, "w.safetensors");
    assert_ok(ob_st_writer_write(w, path));
    ob_st_file *f;
    assert_ok(ob_st_open(path, &f));
    assert_int_equal(ob_st_count(f), 2);
    assert_string_equal(ob_st_metadata(f, "k"), "second");
    assert_int_equal(ob_st_metadata_count(f), 1);
    ob_st_close(f);

    /* A failed write leaves nothing behind, not even the temporary file. */
    char *bad = ob_path_join(dir, "no/such/dir/w.safetensors");
    assert_fails_with(ob_st_writer_write(w, bad), OB_ERR_IO, "no/such/dir");
    DIR *d = opendir(dir);
    struct dirent *e;
    int entries = 0;
    while ((e = readdir(d)))
        entries += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(entries, 1);
    ob_st_writer_free(w);
    ob_st_writer_free(NULL);
    free(bad);
    free(path);
    tu_remove_tree(dir);
    free(dir);
}

/* ---- random tensors --------------------------------------------------------- */

typedef struct {
    char name[96];
    ob_dtype dtype;
    int ndim;
    int64_t shape[OB_MAX_DIMS];
    unsigned char *data;
    size_t nbytes;
} rand_tensor;

typedef struct {
    rand_tensor *t;
    size_t count;
    char keys[6][64];
    char values[6][128];
    size_t meta_count;
} rand_set;

/* Names with quotes, backslashes, control characters and 2- and 4-byte UTF-8,
 * so that the writer's escaping is exercised. */
static const char *const name_parts[] = {"model.layers.0.mlp.up_proj.weight", "emb\xc3\xa9\x64", "q\"uote",
                                         "back\\slash", "ctl\x01\t\n", "smile\xf0\x9f\x98\x80", "/"};

static rand_set random_set(ob_rng *rng, bool all_f32) {
    rand_set s = {0};
    s.count = 7 + ob_rng_below(rng, 14);
    s.t = calloc(s.count, sizeof *s.t);
    assert_non_null(s.t);
    for (size_t i = 0; i < s.count; i++) {
        rand_tensor *t = &s.t[i];
        t->dtype = all_f32 ? OB_DTYPE_F32 : (ob_dtype)(i < 7 ? i : ob_rng_below(rng, 7)); /* every dtype */
        snprintf(t->name, sizeof t->name, "%s.%zu", name_parts[ob_rng_below(rng, 7)], i);
        t->ndim = (int)ob_rng_below(rng, 5);
        for (int d = 0; d < t->ndim; d++)
            t->shape[d] = ob_rng_below(rng, 12) == 0 ? 0 : 1 + (int64_t)ob_rng_below(rng, 7);
        t->nbytes = ob_dtype_bytes_for(t->dtype, ob_shape_numel(t->ndim, t->shape));
        t->data = t->nbytes ? malloc(t->nbytes) : NULL;
        for (size_t k = 0; k < t->nbytes; k++)
            t->data[k] = (unsigned char)ob_rng_u32(rng);
    }
    s.meta_count = ob_rng_below(rng, 4) == 0 ? 0 : 1 + ob_rng_below(rng, 6);
    for (size_t i = 0; i < s.meta_count; i++) {
        snprintf(s.keys[i], sizeof s.keys[i], "key %zu \xc3\xbc%s", i, i == 0 ? "\"\\\n" : "");
        int len = (int)ob_rng_below(rng, 40);
        int k = 0;
        for (; k < len; k++)
            s.values[i][k] = (char)(0x20 + ob_rng_below(rng, 95)); /* printable ASCII, quotes included */
        s.values[i][k] = '\0';
        if (i == 1)
            strcat(s.values[i], "\xe2\x82\xac\n\t\\");
    }
    return s;
}

static void free_set(rand_set *s) {
    for (size_t i = 0; i < s->count; i++)
        free(s->t[i].data);
    free(s->t);
}

/* Writes the set; metadata keys are set in reverse order when `reverse`. */
static void write_set(const rand_set *s, const char *path, bool reverse) {
    ob_st_writer *w;
    assert_ok(ob_st_writer_create(&w));
    for (size_t i = 0; i < s->count; i++)
        assert_ok(ob_st_writer_add(w, s->t[i].name, s->t[i].dtype, s->t[i].ndim, s->t[i].shape, s->t[i].data));
    for (size_t k = 0; k < s->meta_count; k++) {
        size_t i = reverse ? s->meta_count - 1 - k : k;
        assert_ok(ob_st_writer_set_metadata(w, s->keys[i], s->values[i]));
    }
    assert_ok(ob_st_writer_write(w, path));
    ob_st_writer_free(w);
}

static void check_set(const rand_set *s, const ob_st_file *f) {
    assert_int_equal(ob_st_count(f), s->count);
    for (size_t i = 0; i < s->count; i++) {
        const rand_tensor *t = &s->t[i];
        const ob_tensor_view *v = ob_st_get(f, i); /* data in the order added */
        assert_string_equal(v->name, t->name);
        assert_ptr_equal(ob_st_find(f, t->name), v);
        assert_int_equal(v->dtype, t->dtype);
        assert_int_equal(v->ndim, t->ndim);
        for (int d = 0; d < t->ndim; d++)
            assert_int_equal(v->shape[d], t->shape[d]);
        assert_int_equal(v->nbytes, t->nbytes);
        if (t->nbytes)
            assert_memory_equal(v->data, t->data, t->nbytes);
        assert_ok(ob_st_require(f, t->name, t->dtype, t->ndim, t->shape, NULL));
    }
    assert_int_equal(ob_st_metadata_count(f), s->meta_count);
    for (size_t i = 0; i < s->meta_count; i++)
        assert_string_equal(ob_st_metadata(f, s->keys[i]), s->values[i]);
}

static void test_round_trip(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, test_seed() + 1);
    char *dir = tu_make_temp_dir();
    char *path = ob_path_join(dir, "rt.safetensors");
    char *again = ob_path_join(dir, "again.safetensors");
    for (int round = 0; round < 40; round++) {
        bool all_f32 = round % 4 == 3;
        rand_set s = random_set(&rng, all_f32);
        write_set(&s, path, false);
        ob_st_file *f;
        assert_ok(ob_st_open(path, &f));
        check_set(&s, f);
        if (all_f32) /* a padded header and 4-byte multiples keep every view aligned */
            for (size_t i = 0; i < ob_st_count(f); i++)
                assert_true(ob_tensor_aligned(ob_st_get(f, i)));
        ob_st_close(f);

        /* Layout: header length a multiple of 8, padding made of spaces, data
         * packed right after it; same input, same bytes. */
        char *bytes, *bytes2;
        size_t size, size2;
        assert_ok(ob_read_file(path, &bytes, &size));
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | (unsigned char)bytes[i];
        assert_int_equal(n % 8, 0);
        size_t total = 0;
        for (size_t i = 0; i < s.count; i++)
            total += s.t[i].nbytes;
        assert_int_equal(size, 8 + n + total);
        size_t end = 8 + n;
        while (bytes[end - 1] == ' ')
            end--;
        assert_int_equal(bytes[end - 1], '}');
        assert_true(8 + n - end < 8);
        write_set(&s, again, true);
        assert_ok(ob_read_file(again, &bytes2, &size2));
        assert_int_equal(size, size2);
        assert_memory_equal(bytes, bytes2, size);
        free(bytes);
        free(bytes2);
        free_set(&s);
    }
    free(path);
    free(again);
    tu_remove_tree(dir);
    free(dir);
}

/* ---- interop with tests/ref/safetensors_io.py ------------------------------ */

static int run_ref(const char *args, char **out) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/safetensors_io.py %s", tu_python(), getenv("ONEBIT_SOURCE_DIR"), args);
    int rc = tu_run(cmd, out);
    if (rc == 77) /* the independent reference is the test: missing is a failure */
        fail_msg("the Python reference needs numpy: run scripts/install-deps.sh");
    return rc;
}

static char *to_hex(const void *data, size_t n) {
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 * n + 1);
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[2 * n] = '\0';
    return s;
}

static unsigned char *from_hex(const char *s, size_t *n) {
    *n = strlen(s) / 2;
    unsigned char *out = malloc(*n ? *n : 1);
    for (size_t i = 0; i < *n; i++) {
        unsigned v;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
    return out;
}

static char *write_sidecar(const rand_set *s, const char *dir) {
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "metadata");
    cJSON *list = cJSON_AddArrayToObject(root, "tensors");
    for (size_t i = 0; i < s->meta_count; i++)
        cJSON_AddStringToObject(meta, s->keys[i], s->values[i]);
    for (size_t i = 0; i < s->count; i++) {
        const rand_tensor *t = &s->t[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", t->name);
        cJSON_AddStringToObject(e, "dtype", ob_dtype_name(t->dtype));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        char *hex = to_hex(t->data, t->nbytes);
        cJSON_AddStringToObject(e, "hex", hex);
        free(hex);
        if (t->dtype == OB_DTYPE_F32 || t->dtype == OB_DTYPE_F16 || t->dtype == OB_DTYPE_BF16) {
            size_t n = (size_t)ob_shape_numel(t->ndim, t->shape);
            float *f = malloc((n ? n : 1) * sizeof *f);
            ob_tensor_view v = {t->name, t->dtype, t->ndim, {0}, t->data, t->nbytes};
            memcpy(v.shape, t->shape, sizeof v.shape);
            assert_ok(ob_tensor_to_f32(&v, f));
            hex = to_hex(f, n * sizeof *f);
            cJSON_AddStringToObject(e, "f32_hex", hex);
            free(hex);
            free(f);
        }
        cJSON_AddItemToArray(list, e);
    }
    char *text = cJSON_PrintUnformatted(root);
    char *path = tu_write_text(dir, "expect.json", text);
    cJSON_free(text);
    cJSON_Delete(root);
    return path;
}

/* C writes, the Python reader checks every value, the metadata and the layout. */
static void test_interop_c_to_python(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, test_seed() + 2);
    char *dir = tu_make_temp_dir();
    char *path = ob_path_join(dir, "c.safetensors");
    for (int round = 0; round < 4; round++) {
        rand_set s = random_set(&rng, false);
        write_set(&s, path, round % 2);
        char *sidecar = write_sidecar(&s, dir);
        char args[8400], *out = NULL;
        snprintf(args, sizeof args, "read %s %s", path, sidecar);
        if (run_ref(args, &out) != 0)
            fail_msg("python reader: %s", out ? out : "");
        free(out);
        /* The reader is not a rubber stamp: one changed expected byte fails it. */
        size_t i = 0;
        while (s.t[i].nbytes == 0)
            i++;
        s.t[i].data[ob_rng_below(&rng, s.t[i].nbytes)] ^= 0x10;
        free(sidecar);
        sidecar = write_sidecar(&s, dir);
        out = NULL;
        assert_int_equal(run_ref(args, &out), 1);
        assert_non_null(strstr(out, "differ"));
        free(out);
        free(sidecar);
        free_set(&s);
    }
    free(path);
    tu_remove_tree(dir);
    free(dir);
}

/* Python writes (padded or not, in order or shuffled), C reads and checks. */
static void test_interop_python_to_c(void **state) {
    (void)state;
    const char *variants[] = {"", "--shuffle", "--unaligned", "--unaligned --shuffle"};
    char *dir = tu_make_temp_dir();
    char *path = ob_path_join(dir, "py.safetensors");
    char *sidecar = ob_path_join(dir, "py.json");
    for (int k = 0; k < 4; k++) {
        char args[8400], *out = NULL;
        snprintf(args, sizeof args, "write %s %s --seed %llu %s", path, sidecar,
                 (unsigned long long)(test_seed() + (uint64_t)k) % 1000000007ull, variants[k]);
        if (run_ref(args, &out) != 0)
            fail_msg("python writer: %s", out ? out : "");
        free(out);
        ob_st_file *f;
        assert_ok(ob_st_open(path, &f));
        cJSON *side;
        assert_ok(ob_json_load_file(sidecar, &side));
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(side, "tensors");
        assert_int_equal(ob_st_count(f), (size_t)cJSON_GetArraySize(list));
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
            const char *name = cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring;
            const ob_tensor_view *v = ob_st_find(f, name);
            if (!v)
                fail_msg("tensor '%s' missing", name);
            assert_string_equal(ob_dtype_name(v->dtype), cJSON_GetObjectItemCaseSensitive(e, "dtype")->valuestring);
            const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
            assert_int_equal(v->ndim, cJSON_GetArraySize(shape));
            for (int d = 0; d < v->ndim; d++)
                assert_int_equal(v->shape[d], (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble);
            size_t n;
            unsigned char *want = from_hex(cJSON_GetObjectItemCaseSensitive(e, "hex")->valuestring, &n);
            assert_int_equal(v->nbytes, n);
            if (n)
                assert_memory_equal(v->data, want, n);
            free(want);
            const cJSON *f32 = cJSON_GetObjectItemCaseSensitive(e, "f32_hex");
            if (f32) {
                want = from_hex(f32->valuestring, &n);
                float *got = malloc(n ? n : 1);
                assert_ok(ob_tensor_to_f32(v, got));
                assert_memory_equal(got, want, n); /* bit for bit, NaN and inf included */
                free(got);
                free(want);
            }
        }
        /* Views come sorted by data offset, whatever the header order. */
        for (size_t i = 1; i < ob_st_count(f); i++)
            assert_true((const char *)ob_st_get(f, i)->data >= (const char *)ob_st_get(f, i - 1)->data);
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(side, "metadata"), *m;
        assert_int_equal(ob_st_metadata_count(f), (size_t)cJSON_GetArraySize(meta));
        cJSON_ArrayForEach(m, meta) {
            const char *got = ob_st_metadata(f, m->string);
            assert_non_null(got);
            assert_string_equal(got, m->valuestring);
        }
        ob_st_close(f);
        cJSON_Delete(side);
        /* The unaligned variants really misalign the data area. */
        char *bytes;
        size_t size;
        assert_ok(ob_read_file(path, &bytes, &size));
        assert_int_equal((unsigned char)bytes[0] % 8 != 0, k >= 2);
        free(bytes);
    }
    free(path);
    free(sidecar);
    tu_remove_tree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects_each_bad_header),
        cmocka_unit_test(test_rejects_bad_header_length),
        cmocka_unit_test(test_accepts_unusual_but_valid),
        cmocka_unit_test(test_truncations_and_flips),
        cmocka_unit_test(test_open_file_errors),
        cmocka_unit_test(test_require),
        cmocka_unit_test(test_corpus_seeds),
        cmocka_unit_test(test_writer_rejects),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_interop_c_to_python),
        cmocka_unit_test(test_interop_python_to_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
