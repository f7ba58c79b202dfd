/* Common services: errors, RNG reproducibility and statistics, arena bounds,
 * UTF-8 validation, edit distance, atomic files, strict JSON. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onebit/json.h"
#include "test_util.h"

static void test_error_context(void **state) {
    (void)state;
    ob_status st = ob_error(OB_ERR_FORMAT, "field '%s' bad", "x");
    assert_int_equal(st, OB_ERR_FORMAT);
    ob_error_context(st, "loading %s", "a.json");
    assert_string_equal(ob_last_error(), "loading a.json: field 'x' bad");
}

/* The stream for a seed is fixed forever: the first outputs of xoshiro256**
 * seeded by splitmix64(0) are checked against tests/ref/rng_ref.py. */
static void test_rng_reference_stream(void **state) {
    (void)state;
    char *out = NULL;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/rng_ref.py 12345 8", tu_python(), getenv("ONEBIT_SOURCE_DIR"));
    assert_int_equal(tu_run(cmd, &out), 0);
    ob_rng rng;
    ob_rng_seed(&rng, 12345);
    char *p = out;
    for (int i = 0; i < 8; i++) {
        char *end;
        unsigned long long want = strtoull(p, &end, 10);
        assert_true(end != p);
        p = end;
        assert_true(ob_rng_u64(&rng) == want);
    }
    free(out);
}

static void test_rng_statistics(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, 7);
    const int n = 200000;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) {
        double x = ob_rng_normal(&rng);
        sum += x;
        sq += x * x;
    }
    double mean = sum / n, var = sq / n - mean * mean;
    assert_true(fabs(mean) < 0.01);
    assert_true(fabs(var - 1.0) < 0.02);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++)
        counts[ob_rng_below(&rng, 7)]++;
    for (int k = 0; k < 7; k++)
        assert_true(abs(counts[k] - 10000) < 500);
    for (int i = 0; i < 1000; i++) {
        float u = ob_rng_uniformf(&rng);
        assert_true(u >= 0.0f && u < 1.0f);
    }
    ob_rng a, b;
    ob_rng_seed_stream(&a, 1, 0);
    ob_rng_seed_stream(&b, 1, 1);
    assert_true(ob_rng_u64(&a) != ob_rng_u64(&b));
}

static void test_arena(void **state) {
    (void)state;
    ob_arena arena;
    assert_ok(ob_arena_init(&arena, 1024));
    void *a = ob_arena_alloc(&arena, 100, 64);
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % 64, 0);
    size_t mark = ob_arena_mark(&arena);
    assert_non_null(ob_arena_alloc(&arena, 900, 1));
    assert_null(ob_arena_alloc(&arena, 100, 1));
    assert_non_null(strstr(ob_last_error(), "arena"));
    ob_arena_reset(&arena, mark);
    assert_non_null(ob_arena_alloc(&arena, 500, 16));
    assert_null(ob_arena_alloc(&arena, 8, 3));
    ob_arena_free(&arena);
}

static void test_utf8(void **state) {
    (void)state;
    size_t bad = 0;
    assert_true(ob_utf8_valid("h\xC3\xA9llo \xF0\x9F\x98\x80", 11, NULL));
    assert_false(ob_utf8_valid("ab\xC0\x80", 4, &bad)); /* overlong NUL */
    assert_int_equal(bad, 2);
    assert_false(ob_utf8_valid("\xED\xA0\x80", 3, NULL));     /* surrogate */
    assert_false(ob_utf8_valid("\xF4\x90\x80\x80", 4, NULL)); /* > U+10FFFF */
    assert_false(ob_utf8_valid("\xE2\x82", 2, NULL));         /* truncated */
    assert_false(ob_utf8_valid("\x80", 1, NULL));             /* stray continuation */
}

static void test_edit_distance(void **state) {
    (void)state;
    assert_int_equal(ob_edit_distance("--lr-mn", "--lr-min"), 1);
    assert_int_equal(ob_edit_distance("kitten", "sitting"), 3);
    assert_int_equal(ob_edit_distance("", "abc"), 3);
}

static void test_atomic_write(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    char *path = ob_path_join(dir, "x.bin");
    assert_ok(ob_write_file_atomic(path, "hello", 5));
    char *data;
    size_t n;
    assert_ok(ob_read_file(path, &data, &n));
    assert_int_equal(n, 5);
    assert_memory_equal(data, "hello", 5);
    free(data);
    /* An aborted write leaves the old file and no temporary behind. */
    ob_atomic_file f;
    assert_ok(ob_atomic_open(&f, path));
    fputs("partial", f.fp);
    ob_atomic_abort(&f);
    assert_ok(ob_read_file(path, &data, &n));
    assert_memory_equal(data, "hello", 5);
    free(data);
    char *out = NULL;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls %s | wc -l", dir);
    tu_run(cmd, &out);
    assert_int_equal(atoi(out), 1);
    free(out);
    assert_fails_with(ob_read_file("/nonexistent/file", &data, &n), OB_ERR_IO, "/nonexistent/file");
    free(path);
    tu_remove_tree(dir);
    free(dir);
}

static void expect_json_error(const char *text, const char *needle) {
    cJSON *root = NULL;
    ob_status st = ob_json_parse(text, strlen(text), "t.json", &root);
    if (st == OB_OK)
        fail_msg("accepted invalid JSON: %s", text);
    assert_null(root);
    if (!strstr(ob_last_error(), needle))
        fail_msg("'%s': message '%s' lacks '%s'", text, ob_last_error(), needle);
    assert_non_null(strstr(ob_last_error(), "t.json"));
}

static void test_json_strict(void **state) {
    (void)state;
    cJSON *root = NULL;
    const char *good = "{\"a\": [1, 2.5e-3, -0, true, null, \"\\u00e9\\ud83d\\ude00\"], \"b\": {}}";
    assert_ok(ob_json_parse(good, strlen(good), "t.json", &root));
    cJSON_Delete(root);
    expect_json_error("{\"a\": 1} x", "after the JSON value");
    expect_json_error("{\"a\": 1, \"a\": 2}", "duplicate key \"a\"");
    expect_json_error("{\"a\": 01}", "leading zero");
    expect_json_error("{\"a\": \"x\ty\"}", "control character");
    expect_json_error("{\"a\": \"\xC3\"}", "invalid UTF-8");
    expect_json_error("{\"a\": 1,}", "object key");
    expect_json_error("[1, 2", "unterminated array");
    expect_json_error("\"\\ud800\"", "surrogate");
    expect_json_error("", "end of input");
    expect_json_error("{\"a\" 1}", "':' expected");
    expect_json_error("line1\n  [1, .5]", "line 1");
    char deep[1200];
    memset(deep, '[', 600);
    memset(deep + 600, ']', 600);
    cJSON *r = NULL;
    assert_int_not_equal(ob_json_parse(deep, 1200, "t.json", &r), OB_OK);
    assert_non_null(strstr(ob_last_error(), "nesting"));
}

static void test_progress_plain_lines(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    char *path = ob_path_join(dir, "progress.txt");
    FILE *fp = fopen(path, "w");
    ob_progress p;
    ob_progress_begin(&p, fp, "work", 100, "items");
    ob_progress_update(&p, 50, "half");
    ob_progress_update(&p, 100, NULL);
    ob_progress_end(&p, "done");
    fclose(fp);
    char *text;
    size_t n;
    assert_ok(ob_read_file(path, &text, &n));
    /* Not a terminal: plain lines, no carriage returns or escape codes. */
    assert_null(strchr(text, '\r'));
    assert_null(strchr(text, '\033'));
    assert_non_null(strstr(text, "100.0%"));
    assert_non_null(strstr(text, "done"));
    free(text);
    free(path);
    tu_remove_tree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_context),    cmocka_unit_test(test_rng_reference_stream),
        cmocka_unit_test(test_rng_statistics),   cmocka_unit_test(test_arena),
        cmocka_unit_test(test_utf8),             cmocka_unit_test(test_edit_distance),
        cmocka_unit_test(test_atomic_write),     cmocka_unit_test(test_json_strict),
        cmocka_unit_test(test_progress_plain_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
