/* config.json: one test per validation rule with an input that breaks it (status,
 * and a message naming the file, the field and the value), the defaults against
 * the table in docs/CONFIG.md, exact save/load round trips of random configs,
 * unknown fields, layer_bit_map, OneBit-LLM's own config format and the
 * init-config hint for a missing file. Random inputs come from a fresh seed
 * each run (printed; set ONEBIT_TEST_SEED to replay one). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onebit/config.h"
#include "onebit/json.h"
#include "test_util.h"

static ob_rng rng;

/* The mode names of DESIGN.md section 3, in the test's own words. */
static const char *const spec_modes[] = {"f16", "eightbit", "fourbit", "ternary", "binary"};

/* ---- helpers --------------------------------------------------------------- */

static int setup(void **state) {
    *state = tu_make_temp_dir();
    return 0;
}

static int teardown(void **state) {
    tu_remove_tree(*state);
    free(*state);
    return 0;
}

static cJSON *defaults_tree(void) {
    ob_config cfg;
    ob_config_default(&cfg);
    char *text = ob_config_to_json(&cfg);
    assert_non_null(text);
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    free(text);
    return root;
}

/* The default config as compact JSON with some fields replaced: pairs of field
 * name and JSON value text, ending with NULL. A NULL value removes the field. */
static char *config_text(const char *field, ...) {
    cJSON *root = defaults_tree();
    va_list ap;
    va_start(ap, field);
    for (const char *name = field; name; name = va_arg(ap, const char *)) {
        const char *value = va_arg(ap, const char *);
        cJSON_DeleteItemFromObjectCaseSensitive(root, name);
        if (!value)
            continue;
        cJSON *item = cJSON_Parse(value);
        if (!item)
            fail_msg("test bug: '%s' is not JSON", value);
        cJSON_AddItemToObject(root, name, item);
    }
    va_end(ap);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static char *fmt(const char *format, ...) OB_PRINTF(1, 2);
static char *fmt(const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    char *s = NULL;
    if (vasprintf(&s, format, ap) < 0)
        fail_msg("vasprintf");
    va_end(ap);
    return s;
}

static void assert_mentions(const char *message, const char *needle) {
    if (!strstr(message, needle))
        fail_msg("message '%s' lacks '%s'", message, needle);
}

/* Writes `text` to dir/bad.json and asserts that loading it fails with `code`
 * and a message naming the file, `field` and `value`. Takes ownership of text. */
static void expect_rejected(const char *dir, char *text, ob_status code, const char *field, const char *value) {
    char *path = tu_write_text(dir, "bad.json", text);
    ob_config cfg;
    ob_status st = ob_config_load(path, &cfg);
    if (st != code)
        fail_msg("%s: got %s (wanted %s): %s", text, ob_status_name(st), ob_status_name(code), ob_last_error());
    assert_null(cfg.extra); /* a failed load leaves nothing to free */
    assert_mentions(ob_last_error(), path);
    if (field)
        assert_mentions(ob_last_error(), field);
    if (value)
        assert_mentions(ob_last_error(), value);
    free(path);
    free(text);
}

static void expect_loads(const char *dir, char *text, ob_config *out) {
    char *path = tu_write_text(dir, "good.json", text);
    ob_config cfg;
    ob_status st = ob_config_load(path, &cfg);
    if (st != OB_OK)
        fail_msg("rejected %s: %s", text, ob_last_error());
    if (out)
        *out = cfg;
    else
        ob_config_free(&cfg);
    free(path);
    free(text);
}

static int rand_int(int lo, int hi) { return lo + (int)ob_rng_below(&rng, (uint64_t)(hi - lo + 1)); }

/* ---- docs/CONFIG.md's table ---------------------------------------------- */

typedef struct {
    char name[64];
    char type[64];
    char def[64];
} doc_field;

/* Rows "| `name` | type | `default` | ..." of the Fields table. */
static int read_doc_fields(doc_field *out, int max) {
    const char *src = getenv("ONEBIT_SOURCE_DIR");
    assert_non_null(src);
    char *path = fmt("%s/docs/CONFIG.md", src);
    char *text;
    size_t len;
    assert_ok(ob_read_file(path, &text, &len));
    free(path);
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "| `", 3) != 0)
            continue;
        assert_true(n < max);
        char cells[3][64];
        const char *p = line + 1;
        for (int c = 0; c < 3; c++) {
            const char *bar = strchr(p, '|');
            assert_non_null(bar);
            while (*p == ' ' || *p == '`')
                p++;
            const char *end = bar;
            while (end > p && (end[-1] == ' ' || end[-1] == '`'))
                end--;
            snprintf(cells[c], sizeof cells[c], "%.*s", (int)(end - p), p);
            p = bar + 1;
        }
        snprintf(out[n].name, sizeof out[n].name, "%s", cells[0]);
        snprintf(out[n].type, sizeof out[n].type, "%s", cells[1]);
        snprintf(out[n].def, sizeof out[n].def, "%s", cells[2]);
        n++;
    }
    free(text);
    return n;
}

/* Numbers compare exactly; everything else as cJSON_Compare does. */
static bool json_equal(const cJSON *a, const cJSON *b) {
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
        return a->valuedouble == b->valuedouble;
    return cJSON_Compare(a, b, true);
}

static void test_defaults_match_doc_table(void **state) {
    (void)state;
    doc_field doc[64];
    int n = read_doc_fields(doc, 64);
    assert_true(n >= 25);
    cJSON *defaults = defaults_tree();
    int present = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(defaults, doc[i].name);
        if (strcmp(doc[i].def, "absent") == 0) {
            if (item)
                fail_msg("%s: documented as absent by default, but the defaults have it", doc[i].name);
            continue;
        }
        if (!item)
            fail_msg("%s: documented, but missing from the saved defaults", doc[i].name);
        present++;
        if (doc[i].def[0] == '=') { /* "= num_heads" */
            const cJSON *other = cJSON_GetObjectItemCaseSensitive(defaults, doc[i].def + 2);
            assert_non_null(other);
            assert_true(json_equal(item, other));
            continue;
        }
        cJSON *want = cJSON_Parse(doc[i].def);
        if (!want)
            fail_msg("%s: default '%s' in docs/CONFIG.md is not JSON", doc[i].name, doc[i].def);
        if (!json_equal(item, want))
            fail_msg("%s: default %s, docs/CONFIG.md says %s", doc[i].name, cJSON_PrintUnformatted(item), doc[i].def);
        cJSON_Delete(want);
    }
    /* ... and nothing saved that the table does not document. */
    assert_int_equal(cJSON_GetArraySize(defaults), present);
    cJSON_Delete(defaults);

    ob_config cfg;
    ob_config_default(&cfg);
    assert_ok(ob_config_validate(&cfg, "defaults"));
    assert_false(cfg.has_layer_bit_map);
    assert_false(cfg.has_arenas);
    assert_null(cfg.extra);
    for (int l = 0; l < cfg.num_layers; l++)
        assert_int_equal(ob_config_layer_mode(&cfg, l), cfg.use_ternary ? OB_MODE_TERNARY : OB_MODE_BINARY);
    assert_int_equal(ob_config_embedding_mode(&cfg), OB_MODE_F16);
    assert_int_equal(ob_config_lm_head_mode(&cfg), OB_MODE_F16);
}

/* ---- one test per validation rule ------------------------------------------ */

static const char *const size_fields[] = {"vocab_size",        "hidden_size", "num_heads", "num_kv_heads",
                                          "num_layers",        "intermediate_size", "max_seq_len"};

static void test_rejects_nonpositive_sizes(void **state) {
    for (size_t i = 0; i < sizeof size_fields / sizeof *size_fields; i++) {
        int values[2] = {0, -rand_int(1, 1000000)};
        for (int k = 0; k < 2; k++) {
            char value[32];
            snprintf(value, sizeof value, "%d", values[k]);
            char *want = fmt("= %d", values[k]);
            expect_rejected(*state, config_text(size_fields[i], value, NULL), OB_ERR_CONFIG, size_fields[i], want);
            free(want);
        }
    }
}

static void test_rejects_sizes_over_limits(void **state) {
    for (size_t i = 0; i < sizeof size_fields / sizeof *size_fields; i++) {
        /* Past every limit but inside int32: the size limit answers. */
        int big = rand_int(1 << 25, 1 << 30);
        char value[32];
        snprintf(value, sizeof value, "%d", big);
        char *want = fmt("= %d", big);
        expect_rejected(*state, config_text(size_fields[i], value, NULL), OB_ERR_CONFIG, size_fields[i], want);
        free(want);
        /* Past int32: the range check answers before anything is truncated. */
        long long huge = 3000000000LL + rand_int(0, 1000000);
        snprintf(value, sizeof value, "%lld", huge);
        expect_rejected(*state, config_text(size_fields[i], value, NULL), OB_ERR_CONFIG, size_fields[i], value);
    }
    char value[32];
    snprintf(value, sizeof value, "%d", OB_MAX_LAYERS + 1);
    expect_rejected(*state, config_text("num_layers", value, NULL), OB_ERR_CONFIG, "num_layers", value);
}

static void test_rejects_heads_not_dividing_hidden(void **state) {
    for (int trial = 0; trial < 20; trial++) {
        int heads = rand_int(2, 64);
        int hidden = heads * rand_int(1, 64) + rand_int(1, heads - 1);
        char h[16], n[16];
        snprintf(h, sizeof h, "%d", hidden);
        snprintf(n, sizeof n, "%d", heads);
        char *want = fmt("= %d", heads);
        expect_rejected(*state, config_text("hidden_size", h, "num_heads", n, "num_kv_heads", n, NULL),
                        OB_ERR_CONFIG, "num_heads", want);
        assert_mentions(ob_last_error(), h);
        free(want);
        /* The same sizes made divisible load. */
        snprintf(h, sizeof h, "%d", hidden - hidden % heads);
        expect_loads(*state, config_text("hidden_size", h, "num_heads", n, "num_kv_heads", n, NULL), NULL);
    }
}

static void test_rejects_kv_heads_not_dividing_heads(void **state) {
    for (int trial = 0; trial < 20; trial++) {
        int heads = rand_int(1, 32), kv;
        do
            kv = rand_int(2, 2 * heads + 2);
        while (heads % kv == 0);
        char h[16], n[16], k[16];
        snprintf(h, sizeof h, "%d", heads * 8);
        snprintf(n, sizeof n, "%d", heads);
        snprintf(k, sizeof k, "%d", kv);
        char *want = fmt("= %d", kv);
        expect_rejected(*state, config_text("hidden_size", h, "num_heads", n, "num_kv_heads", k, NULL),
                        OB_ERR_CONFIG, "num_kv_heads", want);
        free(want);
    }
    /* Every divisor is accepted (grouped-query attention). */
    for (int kv = 1; kv <= 12; kv++) {
        if (12 % kv)
            continue;
        char k[16];
        snprintf(k, sizeof k, "%d", kv);
        ob_config cfg;
        expect_loads(*state, config_text("hidden_size", "768", "num_heads", "12", "num_kv_heads", k, NULL), &cfg);
        assert_int_equal(cfg.num_kv_heads, kv);
        ob_config_free(&cfg);
    }
}

static void test_rejects_odd_head_dim_with_rope(void **state) {
    for (int trial = 0; trial < 20; trial++) {
        int heads = rand_int(1, 16), head_dim = 2 * rand_int(0, 31) + 1;
        char h[16], n[16];
        snprintf(h, sizeof h, "%d", heads * head_dim);
        snprintf(n, sizeof n, "%d", heads);
        char *want = fmt("= %d", head_dim);
        expect_rejected(*state,
                        config_text("hidden_size", h, "num_heads", n, "num_kv_heads", n, "use_rope", "true", NULL),
                        OB_ERR_CONFIG, "use_rope", want);
        free(want);
        /* Without RoPE an odd head_dim is fine. */
        expect_loads(*state,
                     config_text("hidden_size", h, "num_heads", n, "num_kv_heads", n, "use_rope", "false", NULL),
                     NULL);
    }
}

/* A number field must be > 0: zero and a random negative value are rejected,
 * a random positive value loads. */
static void check_positive_number(const char *dir, const char *field) {
    double bad[2] = {0.0, -(double)rand_int(1, 4096) / 64.0};
    for (int k = 0; k < 2; k++) {
        char value[48], want[64];
        snprintf(value, sizeof value, "%.17g", bad[k]);
        snprintf(want, sizeof want, "= %s", value);
        expect_rejected(dir, config_text(field, value, NULL), OB_ERR_CONFIG, field, want);
    }
    char value[48];
    snprintf(value, sizeof value, "%.17g", ldexp(1.0 + ob_rng_uniform(&rng), rand_int(-40, 10)));
    expect_loads(dir, config_text(field, value, NULL), NULL);
}

static void test_rejects_nonpositive_eps(void **state) { check_positive_number(*state, "layer_norm_eps"); }

static void test_rejects_nonpositive_latent_clamp(void **state) { check_positive_number(*state, "latent_clamp_max"); }

static void test_rejects_other_nonpositive_numbers(void **state) {
    check_positive_number(*state, "rope_theta");
    check_positive_number(*state, "ste_scale_factor");
    char value[32];
    snprintf(value, sizeof value, "%d", -rand_int(1, 1000));
    expect_rejected(*state, config_text("arenas_initial", value, NULL), OB_ERR_CONFIG, "arenas_initial", value);
    expect_loads(*state, config_text("arenas_initial", "0", NULL), NULL);
    snprintf(value, sizeof value, "%d", -rand_int(0, 1000));
    expect_rejected(*state, config_text("arenas_anneal_steps", value, NULL), OB_ERR_CONFIG, "arenas_anneal_steps",
                    value);
}

static void test_rejects_anneal_fraction_outside_unit_interval(void **state) {
    /* Short exact binary fractions, so that the value reads the same in the file
     * and in the message; 1 + 1/1024 must not be shown as "1". */
    double bad[2] = {-rand_int(1, 4096) / 1024.0, 1.0 + rand_int(1, 1023) / 1024.0};
    for (int k = 0; k < 2; k++) {
        char value[48], want[64];
        snprintf(value, sizeof value, "%.17g", bad[k]);
        snprintf(want, sizeof want, "= %s", value);
        expect_rejected(*state, config_text("anneal_fraction", value, NULL), OB_ERR_CONFIG, "anneal_fraction", want);
    }
    const char *good[3] = {"0", "1", NULL};
    char inside[48];
    snprintf(inside, sizeof inside, "%.17g", ob_rng_uniform(&rng));
    good[2] = inside;
    for (int k = 0; k < 3; k++)
        expect_loads(*state, config_text("anneal_fraction", good[k], NULL), NULL);
}

static void test_activation_bits_domain(void **state) {
    for (int bits = -3; bits <= 16; bits++) {
        char value[16];
        snprintf(value, sizeof value, "%d", bits);
        if (bits == 0 || (bits >= 2 && bits <= 8)) {
            ob_config cfg;
            expect_loads(*state, config_text("activation_bits", value, NULL), &cfg);
            assert_int_equal(cfg.activation_bits, bits);
            ob_config_free(&cfg);
        } else {
            char *want = fmt("= %d", bits);
            expect_rejected(*state, config_text("activation_bits", value, NULL), OB_ERR_CONFIG, "activation_bits",
                            want);
            free(want);
        }
    }
}

/* {"embedding": ..., "layer_modes": [n random modes], "lm_head": ...}; the
 * modes chosen are stored in modes[] when it is not NULL. */
static char *random_bit_map(int n, const char *embedding, const char *lm_head, int *modes) {
    cJSON *map = cJSON_CreateObject();
    if (embedding)
        cJSON_AddStringToObject(map, "embedding", embedding);
    cJSON *list = cJSON_AddArrayToObject(map, "layer_modes");
    for (int i = 0; i < n; i++) {
        int m = rand_int(0, 4);
        if (modes)
            modes[i] = m;
        cJSON_AddItemToArray(list, cJSON_CreateString(spec_modes[m]));
    }
    if (lm_head)
        cJSON_AddStringToObject(map, "lm_head", lm_head);
    char *text = cJSON_PrintUnformatted(map);
    cJSON_Delete(map);
    return text;
}

static void test_rejects_layer_modes_wrong_length(void **state) {
    for (int trial = 0; trial < 10; trial++) {
        int layers = rand_int(1, 48);
        int wrong = rand_int(0, 1) ? rand_int(0, layers - 1) : rand_int(layers + 1, layers + 8);
        char n[16];
        snprintf(n, sizeof n, "%d", layers);
        char *map = random_bit_map(wrong, NULL, NULL, NULL);
        char *want = fmt("has %d entries", wrong);
        expect_rejected(*state, config_text("num_layers", n, "layer_bit_map", map, NULL), OB_ERR_CONFIG,
                        "layer_modes", want);
        assert_mentions(ob_last_error(), n);
        free(want);
        free(map);
    }
}

static void test_rejects_unknown_mode_names(void **state) {
    const char *bad[] = {"int3", "TERNARY", "fp16", "", "binary "};
    for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
        int slot = rand_int(0, 5);
        cJSON *map = cJSON_CreateObject();
        cJSON *list = cJSON_AddArrayToObject(map, "layer_modes");
        for (int i = 0; i < 6; i++)
            cJSON_AddItemToArray(list, cJSON_CreateString(i == slot ? bad[b] : "ternary"));
        char *text = cJSON_PrintUnformatted(map);
        char *field = fmt("layer_modes[%d]", slot);
        char *value = fmt("\"%s\"", bad[b]);
        expect_rejected(*state, config_text("layer_bit_map", text, NULL), OB_ERR_CONFIG, field, value);
        free(field);
        free(text);
        cJSON_Delete(map);
        /* The embedding and the head are checked the same way. */
        char *map2 = random_bit_map(6, bad[b], NULL, NULL);
        expect_rejected(*state, config_text("layer_bit_map", map2, NULL), OB_ERR_CONFIG, "layer_bit_map.embedding",
                        value);
        free(map2);
        map2 = random_bit_map(6, "f16", bad[b], NULL);
        expect_rejected(*state, config_text("layer_bit_map", map2, NULL), OB_ERR_CONFIG, "layer_bit_map.lm_head",
                        value);
        free(map2);
        free(value);
    }
}

static void test_rejects_malformed_layer_bit_map(void **state) {
    expect_rejected(*state, config_text("layer_bit_map", "{\"embedding\": \"f16\"}", NULL), OB_ERR_CONFIG,
                    "layer_bit_map", "layer_modes");
    expect_rejected(*state,
                    config_text("layer_bit_map",
                                "{\"layer_modes\": [\"f16\",\"f16\",\"f16\",\"f16\",\"f16\",\"f16\"], "
                                "\"lm_haed\": \"f16\"}",
                                NULL),
                    OB_ERR_CONFIG, "layer_bit_map", "lm_haed");
    expect_rejected(*state, config_text("layer_bit_map", "{\"layer_modes\": \"ternary\"}", NULL), OB_ERR_FORMAT,
                    "layer_modes", "\"ternary\"");
    expect_rejected(*state, config_text("layer_bit_map", "{\"layer_modes\": [1,2,3,4,5,6]}", NULL), OB_ERR_FORMAT,
                    "layer_modes[0]", "= 1");
}

/* Every documented field, given a value of each wrong JSON type. */
static void test_rejects_wrong_json_types(void **state) {
    doc_field doc[64];
    int n = read_doc_fields(doc, 64);
    int checked = 0;
    for (int i = 0; i < n; i++) {
        const char *wrong[5] = {0};
        if (strcmp(doc[i].type, "integer") == 0) {
            wrong[0] = "\"7\"", wrong[1] = "7.5", wrong[2] = "true", wrong[3] = "null", wrong[4] = "[1]";
        } else if (strcmp(doc[i].type, "number") == 0) {
            wrong[0] = "\"0.5\"", wrong[1] = "true", wrong[2] = "null", wrong[3] = "{}";
        } else if (strcmp(doc[i].type, "boolean") == 0) {
            wrong[0] = "1", wrong[1] = "\"true\"", wrong[2] = "null", wrong[3] = "[]";
        } else if (strcmp(doc[i].type, "number or null") == 0) {
            wrong[0] = "\"0.1\"", wrong[1] = "false", wrong[2] = "[0.1]";
        } else if (strcmp(doc[i].type, "object") == 0) {
            wrong[0] = "[]", wrong[1] = "\"ternary\"", wrong[2] = "7";
        } else {
            fail_msg("docs/CONFIG.md: field %s has unknown type '%s'", doc[i].name, doc[i].type);
        }
        for (int k = 0; k < 5 && wrong[k]; k++) {
            char *want = fmt("= %s", wrong[k]);
            expect_rejected(*state, config_text(doc[i].name, wrong[k], NULL), OB_ERR_FORMAT, doc[i].name, want);
            free(want);
            checked++;
        }
    }
    assert_true(checked > 80);
}

static void test_rejects_duplicate_keys(void **state) {
    char *text = config_text(NULL);
    /* Append a second "hidden_size" to the object. */
    char *dup = fmt("%.*s,\"hidden_size\":256}", (int)strlen(text) - 1, text);
    expect_rejected(*state, dup, OB_ERR_FORMAT, "duplicate key", "\"hidden_size\"");
    free(text);
    expect_rejected(*state,
                    config_text("layer_bit_map",
                                "{\"embedding\":\"f16\",\"layer_modes\":[\"f16\",\"f16\",\"f16\",\"f16\",\"f16\","
                                "\"f16\"],\"embedding\":\"binary\"}",
                                NULL),
                    OB_ERR_FORMAT, "layer_bit_map", "\"embedding\"");
}

static void test_rejects_trailing_garbage(void **state) {
    const char *tails[] = {" x", "}", ",{}", " {\"a\":1}", "\n\n  garbage"};
    for (size_t i = 0; i < sizeof tails / sizeof *tails; i++) {
        char *text = config_text(NULL);
        char *with = fmt("%s%s", text, tails[i]);
        const char *first = tails[i] + strspn(tails[i], " \n");
        char want[8];
        snprintf(want, sizeof want, "'%c", *first);
        expect_rejected(*state, with, OB_ERR_FORMAT, "after the JSON value", want);
        free(text);
    }
    /* Trailing whitespace is fine. */
    char *text = config_text(NULL);
    expect_loads(*state, fmt("%s \n\t\r\n", text), NULL);
    free(text);
}

static void test_rejects_non_utf8(void **state) {
    /* A Latin-1 é, a lone continuation byte, an overlong '/', a surrogate. */
    const char *bad[] = {"caf\xE9", "\x80", "\xC0\xAF", "\xED\xA0\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *text = config_text(NULL);
        char *with = fmt("%.*s,\n\"note\":\"%s\"}", (int)strlen(text) - 1, text, bad[i]);
        const unsigned char *b = (const unsigned char *)bad[i];
        while (*b < 0x80)
            b++;
        char want[8];
        snprintf(want, sizeof want, "\\x%02X", *b);
        expect_rejected(*state, with, OB_ERR_FORMAT, "UTF-8", want);
        assert_mentions(ob_last_error(), "line 2");
        free(text);
    }
}

static void test_rejects_non_object_and_bad_syntax(void **state) {
    expect_rejected(*state, ob_strdup("[1, 2]"), OB_ERR_FORMAT, "top level", "an array");
    expect_rejected(*state, ob_strdup("\"config\""), OB_ERR_FORMAT, "top level", "a string");
    expect_rejected(*state, ob_strdup(""), OB_ERR_FORMAT, "line 1", "end of input");
    expect_rejected(*state, ob_strdup("{\"vocab_size\": 50257 // comment\n}"), OB_ERR_FORMAT, "line 1", "'//");
    expect_rejected(*state, ob_strdup("{\n  \"vocab_size\": 050257\n}"), OB_ERR_FORMAT, "line 2", "leading zero");
    expect_rejected(*state, ob_strdup("{'vocab_size': 1}"), OB_ERR_FORMAT, "column 2", "'vocab_size");
    expect_rejected(*state, ob_strdup("{\"rope_theta\": 1e400}"), OB_ERR_FORMAT, "rope_theta", "too large");
    expect_rejected(*state, ob_strdup("{\"rope_theta\": NaN}"), OB_ERR_FORMAT, "column 16", "'NaN");
}

static void test_missing_file_mentions_init_config(void **state) {
    char *path = ob_path_join(*state, "nowhere/config.json");
    ob_config cfg;
    assert_fails_with(ob_config_load(path, &cfg), OB_ERR_IO, "onebit init-config");
    assert_mentions(ob_last_error(), path);
    assert_null(cfg.extra);
    free(path);
}

/* ---- round trips --------------------------------------------------------- */

static double random_positive(double lo_exp2, double hi_exp2) {
    /* Log-uniform with a full random mantissa, so that printing must keep every bit. */
    return exp2(lo_exp2 + (hi_exp2 - lo_exp2) * ob_rng_uniform(&rng));
}

static void random_utf8_string(char *out, size_t cap) {
    size_t n = 0, len = (size_t)rand_int(0, 12);
    for (size_t i = 0; i < len && n + 5 < cap; i++) {
        uint32_t cp;
        switch (rand_int(0, 4)) {
        case 0: cp = (uint32_t)rand_int(1, 0x1F); break; /* control characters, escaped on output */
        case 1: cp = "\"\\/ azAZ09"[rand_int(0, 9)]; break;
        case 2: cp = (uint32_t)rand_int(0x80, 0x7FF); break;
        case 3: do cp = (uint32_t)rand_int(0x800, 0xFFFF); while (cp >= 0xD800 && cp <= 0xDFFF); break;
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

static double random_finite_double(void) {
    for (;;) {
        uint64_t bits = ob_rng_u64(&rng);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (isfinite(d))
            return d;
    }
}

static cJSON *random_json(int depth) {
    switch (rand_int(0, depth < 3 ? 6 : 4)) {
    case 0: return cJSON_CreateNull();
    case 1: return cJSON_CreateBool(rand_int(0, 1));
    case 2: return cJSON_CreateNumber(rand_int(0, 1) ? (double)rand_int(-1000000, 1000000) : random_finite_double());
    case 3:
    case 4: {
        char s[64];
        random_utf8_string(s, sizeof s);
        return cJSON_CreateString(s);
    }
    case 5: {
        cJSON *a = cJSON_CreateArray();
        for (int i = rand_int(0, 4); i > 0; i--)
            cJSON_AddItemToArray(a, random_json(depth + 1));
        return a;
    }
    default: {
        cJSON *o = cJSON_CreateObject();
        for (int i = rand_int(0, 4); i > 0; i--) {
            char key[64], unique[80];
            random_utf8_string(key, sizeof key);
            snprintf(unique, sizeof unique, "%d%s", i, key);
            cJSON_AddItemToObject(o, unique, random_json(depth + 1));
        }
        return o;
    }
    }
}

/* A fresh valid config with every field randomised, unknown fields included. */
static void random_config(ob_config *c) {
    ob_config_default(c);
    c->num_heads = rand_int(1, 32);
    int divisors[32], nd = 0;
    for (int d = 1; d <= c->num_heads; d++)
        if (c->num_heads % d == 0)
            divisors[nd++] = d;
    c->num_kv_heads = divisors[rand_int(0, nd - 1)];
    c->use_rope = rand_int(0, 1);
    int head_dim = rand_int(1, 64) * (c->use_rope ? 2 : 1);
    c->hidden_size = c->num_heads * head_dim;
    c->vocab_size = rand_int(1, 1 << 24);
    c->num_layers = rand_int(0, 9) ? rand_int(1, 48) : rand_int(1, OB_MAX_LAYERS);
    c->intermediate_size = rand_int(1, 1 << 18);
    c->max_seq_len = rand_int(1, 1 << 20);
    c->layer_norm_eps = random_positive(-40, 0);
    c->rope_theta = random_positive(0, 24);
    bool *flags[] = {&c->tie_embeddings, &c->use_ternary, &c->use_relu2, &c->use_swiglu, &c->use_subln,
                     &c->use_qk_norm, &c->use_residual_scaling, &c->use_dynamic_threshold};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        *flags[i] = rand_int(0, 1);
    c->ste_scale_factor = random_positive(-10, 10);
    c->latent_clamp_max = random_positive(-10, 10);
    c->anneal_fraction = rand_int(0, 9) ? ob_rng_uniform(&rng) : (double)rand_int(0, 1);
    c->activation_bits = rand_int(0, 7) ? rand_int(2, 8) : 0;
    c->has_arenas = rand_int(0, 1);
    c->arenas_initial = c->has_arenas ? (rand_int(0, 9) ? random_positive(-20, 4) : 0.0) : 0.0;
    c->arenas_anneal_steps = (int64_t)(ob_rng_u64(&rng) % (1ULL << 53)) + 1;
    c->has_layer_bit_map = rand_int(0, 1);
    if (c->has_layer_bit_map) {
        c->embedding_mode = (ob_quant_mode)rand_int(0, 4);
        c->has_lm_head_mode = rand_int(0, 1);
        c->lm_head_mode = c->has_lm_head_mode ? (ob_quant_mode)rand_int(0, 4) : OB_MODE_F16;
        for (int i = 0; i < c->num_layers; i++)
            c->layer_modes[i] = (uint8_t)rand_int(0, 4);
    }
    if (rand_int(0, 1)) {
        cJSON *extra = cJSON_CreateObject();
        for (int i = rand_int(1, 4); i > 0; i--) {
            char key[64], unique[80];
            random_utf8_string(key, sizeof key);
            snprintf(unique, sizeof unique, "x%d_%s", i, key);
            cJSON_AddItemToObject(extra, unique, random_json(0));
        }
        c->extra = extra;
    }
}

static void test_round_trip_random_configs(void **state) {
    char *path = ob_path_join(*state, "round.json");
    tu_capture_begin(); /* the unknown fields warn on every load */
    for (int iter = 0; iter < 500; iter++) {
        ob_config cfg, back, again;
        random_config(&cfg);
        assert_ok(ob_config_validate(&cfg, "random"));
        assert_ok(ob_config_save(&cfg, path));
        assert_ok(ob_config_load(path, &back));
        char *a = ob_config_to_json(&cfg), *b = ob_config_to_json(&back);
        assert_non_null(a);
        assert_non_null(b);
        if (!ob_config_equal(&cfg, &back) || strcmp(a, b) != 0)
            fail_msg("iteration %d: saved\n%s\nloaded back as\n%s", iter, a, b);
        /* The text form parses to the same config too, and the saved file is that text. */
        assert_ok(ob_config_parse(a, strlen(a), "text", &again));
        assert_true(ob_config_equal(&cfg, &again));
        char *file;
        size_t len;
        assert_ok(ob_read_file(path, &file, &len));
        assert_string_equal(file, a);
        assert_null(strchr(file, '\t'));
        free(file);
        free(a);
        free(b);
        ob_config_free(&cfg);
        ob_config_free(&back);
        ob_config_free(&again);
    }
    tu_capture_end();
    free(path);
}

/* ob_config_equal must see a change in any one field, or the round trip above
 * would prove nothing. */
static void test_equal_detects_every_field(void **state) {
    (void)state;
    for (int iter = 0; iter < 50; iter++) {
        ob_config base;
        random_config(&base);
        base.has_layer_bit_map = true;
        base.has_arenas = true;
        for (int field = 0;; field++) {
            ob_config c;
            assert_ok(ob_config_copy(&c, &base));
            assert_true(ob_config_equal(&c, &base));
            bool done = false;
            switch (field) {
            case 0: c.vocab_size++; break;
            case 1: c.hidden_size++; break;
            case 2: c.num_heads++; break;
            case 3: c.num_kv_heads++; break;
            case 4: c.num_layers++; break;
            case 5: c.intermediate_size++; break;
            case 6: c.max_seq_len++; break;
            case 7: c.layer_norm_eps = nextafter(c.layer_norm_eps, 1.0); break;
            case 8: c.rope_theta = nextafter(c.rope_theta, 0.0); break;
            case 9: c.tie_embeddings = !c.tie_embeddings; break;
            case 10: c.use_ternary = !c.use_ternary; break;
            case 11: c.use_relu2 = !c.use_relu2; break;
            case 12: c.use_swiglu = !c.use_swiglu; break;
            case 13: c.use_subln = !c.use_subln; break;
            case 14: c.use_rope = !c.use_rope; break;
            case 15: c.use_qk_norm = !c.use_qk_norm; break;
            case 16: c.use_residual_scaling = !c.use_residual_scaling; break;
            case 17: c.use_dynamic_threshold = !c.use_dynamic_threshold; break;
            case 18: c.ste_scale_factor = nextafter(c.ste_scale_factor, 0.0); break;
            case 19: c.latent_clamp_max = nextafter(c.latent_clamp_max, 0.0); break;
            case 20: c.anneal_fraction = nextafter(c.anneal_fraction, 0.5); break;
            case 21: c.activation_bits ^= 1; break;
            case 22: c.has_arenas = false; break;
            case 23: c.arenas_initial = nextafter(c.arenas_initial, 1e9); break;
            case 24: c.arenas_anneal_steps++; break;
            case 25: c.has_layer_bit_map = false; break;
            case 26: c.embedding_mode = (ob_quant_mode)((c.embedding_mode + 1) % 5); break;
            case 27: c.has_lm_head_mode = !c.has_lm_head_mode; break;
            case 28:
                c.has_lm_head_mode = base.has_lm_head_mode = true;
                c.lm_head_mode = (ob_quant_mode)((base.lm_head_mode + 1) % 5);
                break;
            case 29: c.layer_modes[c.num_layers - 1] = (uint8_t)((c.layer_modes[c.num_layers - 1] + 1) % 5); break;
            case 30:
                if (!c.extra)
                    c.extra = cJSON_CreateObject();
                cJSON_AddNullToObject(c.extra, "one_more");
                break;
            default: done = true; break;
            }
            if (done) {
                ob_config_free(&c);
                break;
            }
            if (ob_config_equal(&c, &base))
                fail_msg("ob_config_equal misses a change of field #%d", field);
            ob_config_free(&c);
        }
        ob_config_free(&base);
    }
}

/* ---- unknown fields, layer_bit_map, OneBit-LLM ---------------------------- */

static void test_unknown_fields_warned_and_kept(void **state) {
    char *text = config_text("dropout", "0.1", "notes", "{\"by\":\"me\",\"tags\":[1,\"x\",null,-0.5e-7]}", "zz",
                             "null", NULL);
    char *path = tu_write_text(*state, "extra.json", text);
    ob_config cfg;
    tu_capture_begin();
    assert_ok(ob_config_load(path, &cfg));
    char *log = ob_strdup(tu_captured());
    tu_capture_end();
    const char *names[] = {"'dropout'", "'notes'", "'zz'"};
    for (int i = 0; i < 3; i++) {
        assert_mentions(log, names[i]);
        assert_mentions(log, path);
    }
    assert_mentions(log, "unknown field");
    free(log);

    char *saved = ob_path_join(*state, "saved.json");
    assert_ok(ob_config_save(&cfg, saved));
    ob_config back;
    tu_capture_begin();
    assert_ok(ob_config_load(saved, &back));
    assert_mentions(tu_captured(), "'notes'");
    tu_capture_end();
    cJSON *original = cJSON_Parse(text);
    const char *keys[] = {"dropout", "notes", "zz"};
    for (int i = 0; i < 3; i++) {
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(original, keys[i]);
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(back.extra, keys[i]);
        assert_non_null(got);
        assert_true(cJSON_Compare(want, got, true));
    }
    assert_true(ob_config_equal(&cfg, &back));
    cJSON_Delete(original);

    /* A file with only known fields warns about nothing. */
    char *plain_text = config_text(NULL);
    char *plain = tu_write_text(*state, "plain.json", plain_text);
    free(plain_text);
    ob_config quiet;
    tu_capture_begin();
    assert_ok(ob_config_load(plain, &quiet));
    assert_string_equal(tu_captured(), "");
    tu_capture_end();
    assert_null(quiet.extra);

    ob_config_free(&cfg);
    ob_config_free(&back);
    free(plain);
    free(saved);
    free(path);
    free(text);
}

static void test_layer_bit_map_parsing(void **state) {
    for (int trial = 0; trial < 20; trial++) {
        int layers = rand_int(1, 24), modes[24];
        int emb = rand_int(0, 4), head = rand_int(0, 4);
        char n[16];
        snprintf(n, sizeof n, "%d", layers);
        /* lm_head absent: the head follows the embedding. */
        char *map = random_bit_map(layers, spec_modes[emb], NULL, modes);
        ob_config cfg;
        expect_loads(*state, config_text("num_layers", n, "layer_bit_map", map, NULL), &cfg);
        assert_true(cfg.has_layer_bit_map);
        assert_false(cfg.has_lm_head_mode);
        for (int i = 0; i < layers; i++)
            assert_string_equal(ob_quant_mode_name(ob_config_layer_mode(&cfg, i)), spec_modes[modes[i]]);
        assert_string_equal(ob_quant_mode_name(ob_config_embedding_mode(&cfg)), spec_modes[emb]);
        assert_string_equal(ob_quant_mode_name(ob_config_lm_head_mode(&cfg)), spec_modes[emb]);
        ob_config_free(&cfg);
        free(map);
        /* lm_head present. */
        map = random_bit_map(layers, spec_modes[emb], spec_modes[head], modes);
        expect_loads(*state, config_text("num_layers", n, "layer_bit_map", map, NULL), &cfg);
        assert_true(cfg.has_lm_head_mode);
        assert_string_equal(ob_quant_mode_name(ob_config_lm_head_mode(&cfg)), spec_modes[head]);
        assert_string_equal(ob_quant_mode_name(ob_config_embedding_mode(&cfg)), spec_modes[emb]);
        ob_config_free(&cfg);
        free(map);
        /* embedding absent: full precision. */
        map = random_bit_map(layers, NULL, NULL, modes);
        expect_loads(*state, config_text("num_layers", n, "layer_bit_map", map, NULL), &cfg);
        assert_int_equal(ob_config_embedding_mode(&cfg), OB_MODE_F16);
        assert_int_equal(ob_config_lm_head_mode(&cfg), OB_MODE_F16);
        ob_config_free(&cfg);
        free(map);
    }
    /* "lm_head": null is the same as absent. */
    ob_config cfg;
    expect_loads(*state,
                 config_text("layer_bit_map",
                             "{\"embedding\":\"eightbit\",\"layer_modes\":[\"binary\",\"binary\",\"binary\",\"binary\","
                             "\"binary\",\"binary\"],\"lm_head\":null}",
                             NULL),
                 &cfg);
    assert_false(cfg.has_lm_head_mode);
    assert_int_equal(ob_config_lm_head_mode(&cfg), OB_MODE_EIGHTBIT);
    ob_config_free(&cfg);
    /* No map (absent or null): use_ternary picks every decoder layer's mode. */
    const char *absent_or_null[2] = {NULL, "null"};
    for (int k = 0; k < 2; k++) {
        for (int ternary = 0; ternary < 2; ternary++) {
            expect_loads(*state,
                         config_text("use_ternary", ternary ? "true" : "false", "layer_bit_map", absent_or_null[k],
                                     NULL),
                         &cfg);
            assert_false(cfg.has_layer_bit_map);
            for (int i = 0; i < cfg.num_layers; i++)
                assert_string_equal(ob_quant_mode_name(ob_config_layer_mode(&cfg, i)),
                                    ternary ? "ternary" : "binary");
            assert_int_equal(ob_config_embedding_mode(&cfg), OB_MODE_F16);
            assert_int_equal(ob_config_lm_head_mode(&cfg), OB_MODE_F16);
            ob_config_free(&cfg);
        }
    }
}

/* The config.json OneBit-LLM writes, verbatim. */
static const char onebit_llm_config[] =
    "{\"vocab_size\":50257,\"hidden_size\":512,\"num_heads\":8,\"num_layers\":6,\"intermediate_size\":2048,"
    "\"max_seq_len\":512,\"layer_norm_eps\":1e-5,\"use_ternary\":true,\"use_relu2\":true,\"use_subln\":true,"
    "\"use_rope\":true,\"use_qk_norm\":true,\"use_residual_scaling\":true,\"arenas_initial\":0.1,"
    "\"arenas_anneal_steps\":10000}";

static void test_onebit_llm_config_loads(void **state) {
    char *path = tu_write_text(*state, "config.json", onebit_llm_config);
    ob_config cfg;
    tu_capture_begin();
    assert_ok(ob_config_load(path, &cfg));
    assert_string_equal(tu_captured(), ""); /* every field known: no warnings */
    tu_capture_end();
    assert_null(cfg.extra);
    /* Every field given reads back as given ... */
    cJSON *given = cJSON_Parse(onebit_llm_config);
    char *text = ob_config_to_json(&cfg);
    cJSON *loaded = cJSON_Parse(text);
    for (const cJSON *item = given->child; item; item = item->next) {
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(loaded, item->string);
        if (!got || !json_equal(item, got))
            fail_msg("field %s changed on load", item->string);
    }
    /* ... and every other field has its default (num_kv_heads: num_heads). */
    cJSON *defaults = defaults_tree();
    for (const cJSON *item = defaults->child; item; item = item->next) {
        if (cJSON_GetObjectItemCaseSensitive(given, item->string))
            continue;
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(loaded, item->string);
        assert_non_null(got);
        if (strcmp(item->string, "num_kv_heads") == 0)
            assert_int_equal(got->valueint, cJSON_GetObjectItemCaseSensitive(given, "num_heads")->valueint);
        else if (!json_equal(item, got))
            fail_msg("absent field %s did not take its default", item->string);
    }
    assert_true(cfg.has_arenas);
    assert_int_equal(ob_config_ffn(&cfg), OB_FFN_RELU2);
    for (int i = 0; i < cfg.num_layers; i++)
        assert_int_equal(ob_config_layer_mode(&cfg, i), OB_MODE_TERNARY);
    cJSON_Delete(defaults);
    cJSON_Delete(loaded);
    cJSON_Delete(given);
    free(text);
    ob_config_free(&cfg);
    free(path);
}

/* ---- saving, copying, the init-config command ----------------------------- */

static void test_save_validates_first(void **state) {
    ob_config cfg;
    ob_config_default(&cfg);
    cfg.num_heads = 7;
    char *path = ob_path_join(*state, "never.json");
    assert_fails_with(ob_config_save(&cfg, path), OB_ERR_CONFIG, "num_heads");
    assert_mentions(ob_last_error(), path);
    assert_false(ob_path_exists(path));
    free(path);
}

static void test_copy_is_deep(void **state) {
    (void)state;
    ob_config a, b;
    random_config(&a);
    if (!a.extra)
        a.extra = cJSON_CreateObject();
    cJSON_AddStringToObject(a.extra, "kept", "yes");
    assert_ok(ob_config_copy(&b, &a));
    assert_true(ob_config_equal(&a, &b));
    assert_ptr_not_equal(a.extra, b.extra);
    ob_config_free(&a);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(b.extra, "kept")->valuestring, "yes");
    ob_config_free(&b);
}

static void test_init_config_command_output_loads(void **state) {
    char *path = ob_path_join(*state, "init.json");
    char *cmd = fmt("%s init-config %s", tu_onebit(), path);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != 0)
        fail_msg("%s -> %d: %s", cmd, rc, out);
    free(out);
    ob_config cfg, defaults;
    assert_ok(ob_config_load(path, &cfg));
    ob_config_default(&defaults);
    assert_true(ob_config_equal(&cfg, &defaults));
    char *file, *want = ob_config_to_json(&defaults);
    size_t len;
    assert_ok(ob_read_file(path, &file, &len));
    assert_string_equal(file, want);
    free(file);
    free(want);
    ob_config_free(&cfg);
    free(cmd);
    free(path);
}

int main(void) {
    ob_rng_seed(&rng, tu_seed("test_config"));
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults_match_doc_table),
        T(test_rejects_nonpositive_sizes),
        T(test_rejects_sizes_over_limits),
        T(test_rejects_heads_not_dividing_hidden),
        T(test_rejects_kv_heads_not_dividing_heads),
        T(test_rejects_odd_head_dim_with_rope),
        T(test_rejects_nonpositive_eps),
        T(test_rejects_nonpositive_latent_clamp),
        T(test_rejects_other_nonpositive_numbers),
        T(test_rejects_anneal_fraction_outside_unit_interval),
        T(test_activation_bits_domain),
        T(test_rejects_layer_modes_wrong_length),
        T(test_rejects_unknown_mode_names),
        T(test_rejects_malformed_layer_bit_map),
        T(test_rejects_wrong_json_types),
        T(test_rejects_duplicate_keys),
        T(test_rejects_trailing_garbage),
        T(test_rejects_non_utf8),
        T(test_rejects_non_object_and_bad_syntax),
        T(test_missing_file_mentions_init_config),
        T(test_round_trip_random_configs),
        T(test_equal_detects_every_field),
        T(test_unknown_fields_warned_and_kept),
        T(test_layer_bit_map_parsing),
        T(test_onebit_llm_config_loads),
        T(test_save_validates_first),
        T(test_copy_is_deep),
        T(test_init_config_command_output_loads),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
