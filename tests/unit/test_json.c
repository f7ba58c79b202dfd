/* Strict JSON beyond test_common.c: exact number output, print/parse round
 * trips of random trees, every prefix of a document rejected, the nesting limit
 * at its edge, escapes and surrogates, numbers beyond a double, error positions
 * checked against an independent count, duplicate keys among many, the typed
 * getters' messages and the saved file's layout. Fresh seed each run (printed;
 * ONEBIT_TEST_SEED replays one). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onebit/json.h"
#include "test_util.h"

static ob_rng rng;

static int rand_int(int lo, int hi) { return lo + (int)ob_rng_below(&rng, (uint64_t)(hi - lo + 1)); }

static ob_status parse(const char *text, cJSON **root) { return ob_json_parse(text, strlen(text), "t.json", root); }

static void expect_rejected(const char *text, size_t len, const char *needle) {
    cJSON *root = NULL;
    ob_status st = ob_json_parse(text, len, "t.json", &root);
    if (st == OB_OK)
        fail_msg("accepted invalid JSON: %.*s", (int)len, text);
    assert_null(root);
    assert_non_null(strstr(ob_last_error(), "t.json"));
    if (needle && !strstr(ob_last_error(), needle))
        fail_msg("'%.*s': message '%s' lacks '%s'", (int)len, text, ob_last_error(), needle);
}

static void expect_accepted(const char *text) {
    cJSON *root = NULL;
    if (parse(text, &root) != OB_OK)
        fail_msg("rejected '%s': %s", text, ob_last_error());
    cJSON_Delete(root);
}

static double random_finite_double(void) {
    for (;;) {
        uint64_t bits = ob_rng_u64(&rng);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (isfinite(d))
            return d;
    }
}

/* ---- numbers ----------------------------------------------------------------- */

/* Digits of the mantissa without leading or trailing zeros: "1.50e-3" has 2. */
static int significant_digits(const char *text) {
    char digits[64];
    int n = 0;
    for (const char *p = text; *p && *p != 'e' && *p != 'E'; p++)
        if (*p >= '0' && *p <= '9' && (n > 0 || *p != '0'))
            digits[n++] = *p;
    while (n > 0 && digits[n - 1] == '0')
        n--;
    return n;
}

static void test_number_format_is_exact_and_short(void **state) {
    (void)state;
    for (int i = 0; i < 100000; i++) {
        double v;
        switch (i % 4) {
        case 0: v = random_finite_double(); break;
        case 1: v = ob_rng_uniform(&rng) * pow(10.0, rand_int(-30, 30)); break;
        case 2: v = (double)rand_int(-1000000, 1000000) / (1 << rand_int(0, 20)); break;
        default: v = (double)(int64_t)(ob_rng_u64(&rng) >> rand_int(11, 63)) * (rand_int(0, 1) ? 1 : -1); break;
        }
        char text[40], longest[40];
        ob_json_format_number(v, text, sizeof text);
        char *end;
        double back = strtod(text, &end);
        if (*end || memcmp(&back, &v, sizeof v) != 0)
            fail_msg("%.17g printed as %s, which reads back as %.17g", v, text, back);
        snprintf(longest, sizeof longest, "%.17g", v);
        if (significant_digits(text) > significant_digits(longest))
            fail_msg("%s has more digits than %s", text, longest);
        /* Integers exactly representable print without a fraction or exponent. */
        if (v == floor(v) && fabs(v) < 9007199254740992.0 && !(v == 0 && signbit(v)))
            assert_null(strpbrk(text, ".eE"));
        /* It is valid JSON. */
        cJSON *root = NULL;
        assert_ok(parse(text, &root));
        assert_true(root->valuedouble == v);
        cJSON_Delete(root);
    }
    char text[40];
    ob_json_format_number(-0.0, text, sizeof text);
    assert_string_equal(text, "-0");
    ob_json_format_number(INFINITY, text, sizeof text);
    assert_string_equal(text, "null");
    ob_json_format_number(NAN, text, sizeof text);
    assert_string_equal(text, "null");
}

static void test_numbers_beyond_a_double(void **state) {
    (void)state;
    expect_rejected("1e400", 5, "too large");
    expect_rejected("[-1e400]", 8, "too large");
    expect_rejected("{\"big\": 1e309}", 14, "'big'");
    /* Underflow is not an error: the value is 0 (or the nearest subnormal). */
    cJSON *root = NULL;
    assert_ok(parse("[1e-400, 4.9e-324]", &root));
    assert_true(root->child->valuedouble == 0.0);
    assert_true(root->child->next->valuedouble > 0.0);
    cJSON_Delete(root);
    /* Long digit strings are fine. */
    char digits[400];
    memset(digits, '7', sizeof digits - 1);
    digits[sizeof digits - 1] = '\0';
    digits[0] = '0', digits[1] = '.';
    expect_accepted(digits);
    const char *bad[] = {"01", "-", "+1", ".5", "1.", "1e", "1e+", "--1", "0x10", "1_000", "NaN", "-Infinity"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_rejected(bad[i], strlen(bad[i]), "line 1");
}

/* ---- printing and round trips ---------------------------------------------- */

static void random_string(char *out, size_t cap) {
    size_t n = 0;
    for (int i = rand_int(0, 10); i > 0 && n + 5 < cap; i--) {
        uint32_t cp;
        switch (rand_int(0, 3)) {
        case 0: cp = (uint32_t)rand_int(1, 0x7F); break;
        case 1: cp = (uint32_t)rand_int(0x80, 0x7FF); break;
        case 2: do cp = (uint32_t)rand_int(0x800, 0xFFFF); while (cp >= 0xD800 && cp <= 0xDFFF); break;
        default: cp = (uint32_t)rand_int(0x10000, 0x10FFFF); break;
        }
        if (cp < 0x80) {
            out[n++] = (char)cp;
        } else if (cp < 0x800) {
            out[n++] = (char)(0xC0 | cp >> 6);
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[n++] = (char)(0xE0 | cp >> 12);
            out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[n++] = (char)(0xF0 | cp >> 18);
            out[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[n] = '\0';
}

static cJSON *random_tree(int depth) {
    int kind = rand_int(0, depth < 4 ? 6 : 4);
    switch (kind) {
    case 0: return cJSON_CreateNull();
    case 1: return cJSON_CreateBool(rand_int(0, 1));
    case 2: return cJSON_CreateNumber(random_finite_double());
    case 3: return cJSON_CreateNumber(rand_int(-100000, 100000));
    case 4: {
        char s[64];
        random_string(s, sizeof s);
        return cJSON_CreateString(s);
    }
    case 5: {
        cJSON *a = cJSON_CreateArray();
        for (int i = rand_int(0, 5); i > 0; i--)
            cJSON_AddItemToArray(a, random_tree(depth + 1));
        return a;
    }
    default: {
        cJSON *o = cJSON_CreateObject();
        for (int i = rand_int(0, 5); i > 0; i--) {
            char k[64], key[80];
            random_string(k, sizeof k);
            snprintf(key, sizeof key, "%d%s", i, k);
            cJSON_AddItemToObject(o, key, random_tree(depth + 1));
        }
        return o;
    }
    }
}

/* Same types, keys in the same order, numbers bit for bit. */
static bool same_tree(const cJSON *a, const cJSON *b) {
    if ((a->type & 0xFF) != (b->type & 0xFF))
        return false;
    if ((a->string == NULL) != (b->string == NULL) || (a->string && strcmp(a->string, b->string) != 0))
        return false;
    if (cJSON_IsNumber(a))
        return memcmp(&a->valuedouble, &b->valuedouble, sizeof(double)) == 0;
    if (cJSON_IsString(a))
        return strcmp(a->valuestring, b->valuestring) == 0;
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next)
        if (!same_tree(x, y))
            return false;
    return !x && !y;
}

static void test_print_parse_round_trip(void **state) {
    (void)state;
    for (int i = 0; i < 2000; i++) {
        cJSON *tree = random_tree(0);
        for (int pretty = 0; pretty < 2; pretty++) {
            char *text = ob_json_print(tree, pretty);
            assert_non_null(text);
            cJSON *back = NULL;
            if (parse(text, &back) != OB_OK)
                fail_msg("printed text does not parse (%s):\n%s", ob_last_error(), text);
            if (!same_tree(tree, back))
                fail_msg("round trip changed the tree:\n%s", text);
            assert_null(strchr(text, '\t'));
            if (!pretty)
                assert_null(strchr(text, '\n'));
            else
                assert_int_equal(text[strlen(text) - 1], '\n');
            cJSON_Delete(back);
            free(text);
        }
        cJSON_Delete(tree);
    }
}

static void test_pretty_layout(void **state) {
    (void)state;
    cJSON *root = NULL;
    assert_ok(parse("{\"a\":1,\"modes\":[\"x\",\"y\"],\"nested\":{\"b\":[[1],2]},\"e\":{},\"f\":[]}", &root));
    char *text = ob_json_print(root, true);
    /* Two-space indent, one space after the colon, scalar arrays on one line,
     * arrays holding containers one element per line. */
    assert_string_equal(text, "{\n"
                              "  \"a\": 1,\n"
                              "  \"modes\": [\"x\", \"y\"],\n"
                              "  \"nested\": {\n"
                              "    \"b\": [\n"
                              "      [1],\n"
                              "      2\n"
                              "    ]\n"
                              "  },\n"
                              "  \"e\": {},\n"
                              "  \"f\": []\n"
                              "}\n");
    free(text);
    text = ob_json_print(root, false);
    assert_string_equal(text, "{\"a\":1,\"modes\":[\"x\",\"y\"],\"nested\":{\"b\":[[1],2]},\"e\":{},\"f\":[]}");
    free(text);
    cJSON_Delete(root);
}

static void test_control_characters_escaped(void **state) {
    (void)state;
    char s[40];
    for (int c = 1; c < 0x20; c++)
        s[c - 1] = (char)c;
    strcpy(s + 31, "\"\\/\x7f");
    cJSON *str = cJSON_CreateString(s);
    char *text = ob_json_print(str, false);
    for (const char *p = text; *p; p++)
        assert_true((unsigned char)*p >= 0x20);
    cJSON *back = NULL;
    assert_ok(parse(text, &back));
    assert_string_equal(back->valuestring, s);
    cJSON_Delete(back);
    cJSON_Delete(str);
    free(text);
}

static void test_save_file_matches_print(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    char *path = ob_path_join(dir, "t.json");
    cJSON *tree = cJSON_CreateObject();
    cJSON_AddItemToObject(tree, "x", random_tree(1));
    cJSON_AddNumberToObject(tree, "eps", 1.5925911942462396e-05);
    assert_ok(ob_json_save_file(path, tree));
    char *file, *want = ob_json_print(tree, true);
    size_t len;
    assert_ok(ob_read_file(path, &file, &len));
    assert_string_equal(file, want);
    assert_non_null(strstr(file, "\"eps\": 1.5925911942462396e-05"));
    cJSON *back = NULL;
    assert_ok(ob_json_load_file(path, &back));
    assert_true(same_tree(tree, back));
    cJSON_Delete(back);
    cJSON_Delete(tree);
    free(file);
    free(want);
    free(path);
    tu_remove_tree(dir);
    free(dir);
}

/* ---- rejection ------------------------------------------------------------- */

static void test_every_prefix_rejected(void **state) {
    (void)state;
    for (int i = 0; i < 50; i++) {
        cJSON *tree = cJSON_CreateObject();
        cJSON_AddItemToObject(tree, "k", random_tree(1));
        char *text = ob_json_print(tree, rand_int(0, 1));
        size_t n = strlen(text);
        while (n > 0 && text[n - 1] == '\n')
            n--;
        for (size_t len = 0; len < n; len++)
            expect_rejected(text, len, NULL);
        cJSON *root = NULL;
        assert_ok(ob_json_parse(text, n, "t.json", &root));
        cJSON_Delete(root);
        free(text);
        cJSON_Delete(tree);
    }
}

static void test_nesting_limit_edge(void **state) {
    (void)state;
    for (int depth = OB_JSON_MAX_DEPTH - 1; depth <= OB_JSON_MAX_DEPTH + 1; depth++) {
        char *text = malloc(2 * (size_t)depth + 1);
        for (int i = 0; i < depth; i++) {
            text[i] = '[';
            text[2 * depth - 1 - i] = ']';
        }
        text[2 * depth] = '\0';
        cJSON *root = NULL;
        ob_status st = parse(text, &root);
        if (depth <= OB_JSON_MAX_DEPTH) {
            assert_ok(st);
            cJSON_Delete(root);
        } else {
            assert_int_equal(st, OB_ERR_FORMAT);
            assert_non_null(strstr(ob_last_error(), "nesting"));
        }
        free(text);
    }
    /* Objects count the same as arrays. */
    char deep[4000] = "";
    for (int i = 0; i <= OB_JSON_MAX_DEPTH; i++)
        strcat(deep, "{\"a\":");
    strcat(deep, "1");
    for (int i = 0; i <= OB_JSON_MAX_DEPTH; i++)
        strcat(deep, "}");
    expect_rejected(deep, strlen(deep), "nesting");
}

static void test_escapes_and_surrogates(void **state) {
    (void)state;
    cJSON *root = NULL;
    assert_ok(parse("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20AC\\ud83d\\ude00\"", &root));
    assert_string_equal(root->valuestring, "\"\\/\b\f\n\r\tA\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
    cJSON_Delete(root);
    struct {
        const char *text, *needle;
    } bad[] = {
        {"\"\\u0000\"", "\\u0000"},         {"\"\\ud800\"", "surrogate"},
        {"\"\\udc00\"", "surrogate"},       {"\"\\ud800\\u0041\"", "surrogate"},
        {"\"\\ud800x\"", "surrogate"},      {"\"\\u12G4\"", "\\u escape"},
        {"\"\\x41\"", "escape"},            {"\"\\u12\"", "unterminated"},
        {"\"abc", "unterminated"},          {"\"\\", "unterminated"},
        {"\"a\nb\"", "control character"}, {"\"a\x7f\"", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (!bad[i].needle) { /* DEL is not a control character in JSON */
            expect_accepted(bad[i].text);
            continue;
        }
        expect_rejected(bad[i].text, strlen(bad[i].text), bad[i].needle);
    }
    for (int c = 1; c < 0x20; c++) {
        char text[8] = {'"', 'a', (char)c, 'b', '"', 0};
        expect_rejected(text, 5, "control character");
    }
    expect_rejected("\xEF\xBB\xBF{}", 5, "byte order mark");
    char nul[] = "[1,\0 2]";
    expect_rejected(nul, sizeof nul - 1, "\\x00");
}

static void test_literals_and_whitespace(void **state) {
    (void)state;
    const char *good[] = {"true", " false ", "\n\r\t null \n", "[ ]", "{ }", "[true,false,null]", "0", "-0.0e-0"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        expect_accepted(good[i]);
    const char *bad[] = {"tru", "True", "nul", "falsey", "[true false]", "{\"a\":1 \"b\":2}", "[1,]", "{,}",
                         "\v1", "\f1", "[1]]", "{}{}", "'a'", "/* c */ 1", "[\"a\":1]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_rejected(bad[i], strlen(bad[i]), "line 1");
}

/* The reported line and column agree with a count made here, for a bad byte
 * put at a random place in a multi-line document. */
static void test_error_position(void **state) {
    (void)state;
    for (int trial = 0; trial < 200; trial++) {
        int lines = rand_int(1, 30);
        char text[4096];
        size_t n = 0;
        n += (size_t)snprintf(text + n, sizeof text - n, "[\n");
        int bad_line = rand_int(0, lines - 1);
        int want_line = 0, want_col = 0;
        for (int l = 0; l < lines; l++) {
            int indent = rand_int(0, 8);
            n += (size_t)snprintf(text + n, sizeof text - n, "%*s", indent, "");
            if (l == bad_line) {
                want_line = l + 2;
                want_col = indent + 1;
                text[n++] = '@';
            } else {
                n += (size_t)snprintf(text + n, sizeof text - n, "%d", rand_int(0, 99999));
            }
            n += (size_t)snprintf(text + n, sizeof text - n, "%s\n", l + 1 < lines ? "," : "");
        }
        n += (size_t)snprintf(text + n, sizeof text - n, "]");
        char where[64];
        snprintf(where, sizeof where, "line %d, column %d", want_line, want_col);
        expect_rejected(text, n, where);
        assert_non_null(strstr(ob_last_error(), "found '@"));
    }
}

static void test_duplicate_keys_among_many(void **state) {
    (void)state;
    int n = 20000;
    size_t cap = (size_t)n * 24 + 64;
    char *text = malloc(cap);
    for (int with_dup = 0; with_dup < 2; with_dup++) {
        int dup_of = rand_int(0, n - 2), dup_at = rand_int(dup_of + 1, n - 1);
        size_t len = 0;
        text[len++] = '{';
        for (int i = 0; i < n; i++) {
            int key = with_dup && i == dup_at ? dup_of : i;
            len += (size_t)snprintf(text + len, cap - len, "%s\"k%d\":%d", i ? "," : "", key, i);
        }
        text[len++] = '}';
        cJSON *root = NULL;
        ob_status st = ob_json_parse(text, len, "t.json", &root);
        if (!with_dup) {
            assert_ok(st);
            assert_int_equal(cJSON_GetArraySize(root), n);
            cJSON_Delete(root);
        } else {
            char want[64];
            snprintf(want, sizeof want, "duplicate key \"k%d\"", dup_of);
            assert_int_equal(st, OB_ERR_FORMAT);
            assert_non_null(strstr(ob_last_error(), want));
        }
    }
    free(text);
    /* Keys equal in a different object are fine; the message names the object. */
    expect_accepted("{\"a\":{\"x\":1},\"b\":{\"x\":2}}");
    const char *nested = "{\"a\":{\"x\":1},\"b\":{\"x\":2,\"x\":3}}";
    expect_rejected(nested, strlen(nested), "in object 'b'");
}

/* ---- typed getters ------------------------------------------------------------ */

static void test_typed_getters(void **state) {
    (void)state;
    cJSON *root = NULL;
    assert_ok(parse("{\"i\": 42, \"big\": 9007199254740992, \"bigger\": 18014398509481988, \"f\": 2.5,"
                    " \"s\": \"512\", \"b\": true, \"n\": null, \"a\": [1,2,3], \"long\": \"" /* */
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                    &root));
    int64_t i = -1;
    bool present = false;
    assert_ok(ob_json_get_int(root, "i", "t.json", &i, &present));
    assert_true(present);
    assert_int_equal(i, 42);
    assert_ok(ob_json_get_int(root, "big", "t.json", &i, NULL));
    assert_true(i == 9007199254740992LL);
    /* A missing key leaves the value alone. */
    i = 7;
    assert_ok(ob_json_get_int(root, "missing", "t.json", &i, &present));
    assert_false(present);
    assert_int_equal(i, 7);
    assert_fails_with(ob_json_get_int(root, "bigger", "t.json", &i, NULL), OB_ERR_FORMAT, "2^53");
    assert_fails_with(ob_json_get_int(root, "f", "t.json", &i, NULL), OB_ERR_FORMAT, "'f' = 2.5");
    assert_non_null(strstr(ob_last_error(), "fraction"));
    assert_fails_with(ob_json_get_int(root, "s", "t.json", &i, NULL), OB_ERR_FORMAT, "'s' = \"512\"");
    assert_non_null(strstr(ob_last_error(), "found a string"));
    assert_fails_with(ob_json_get_int(root, "a", "t.json", &i, NULL), OB_ERR_FORMAT, "= [1,2,3]");
    assert_fails_with(ob_json_get_int(root, "long", "t.json", &i, NULL), OB_ERR_FORMAT, "...");
    assert_true(strlen(ob_last_error()) < 200); /* long values are shortened */
    double d;
    assert_ok(ob_json_get_double(root, "i", "t.json", &d, NULL));
    assert_true(d == 42.0);
    assert_fails_with(ob_json_get_double(root, "n", "t.json", &d, NULL), OB_ERR_FORMAT, "'n' = null");
    bool b = false;
    assert_ok(ob_json_get_bool(root, "b", "t.json", &b, NULL));
    assert_true(b);
    assert_fails_with(ob_json_get_bool(root, "i", "t.json", &b, NULL), OB_ERR_FORMAT, "'i' = 42 must be true or false");
    const char *s = NULL;
    assert_ok(ob_json_get_string(root, "s", "t.json", &s, NULL));
    assert_string_equal(s, "512");
    assert_fails_with(ob_json_get_string(root, "b", "t.json", &s, NULL), OB_ERR_FORMAT, "'b' = true");
    cJSON_Delete(root);
}

int main(void) {
    ob_rng_seed(&rng, tu_seed("test_json"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_number_format_is_exact_and_short),
        cmocka_unit_test(test_numbers_beyond_a_double),
        cmocka_unit_test(test_print_parse_round_trip),
        cmocka_unit_test(test_pretty_layout),
        cmocka_unit_test(test_control_characters_escaped),
        cmocka_unit_test(test_save_file_matches_print),
        cmocka_unit_test(test_every_prefix_rejected),
        cmocka_unit_test(test_nesting_limit_edge),
        cmocka_unit_test(test_escapes_and_surrogates),
        cmocka_unit_test(test_literals_and_whitespace),
        cmocka_unit_test(test_error_position),
        cmocka_unit_test(test_duplicate_keys_among_many),
        cmocka_unit_test(test_typed_getters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
