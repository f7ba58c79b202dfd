/* Command-line flags (args.h): every flag type in both --x=v and --x v forms,
 * lists, positional bounds, boolean forms, ranges, "did you mean" suggestions,
 * missing and malformed values, choices, the "--" terminator, negative numbers
 * as values, and --help. Numbers are fresh random values each run (seed
 * printed; ONEBIT_TEST_SEED replays one). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onebit/args.h"
#include "test_util.h"

static ob_rng rng;

/* The flags of an imaginary command; the values are reset before each test. */
static bool verbose, steps_seen, verbose_seen;
static int steps, offset;
static int64_t tokens;
static double lr, lr_min;
static const char *out_path, *device;
static ob_strlist files;

static const ob_arg table[] = {
    {"--verbose", OB_ARG_BOOL, &verbose, NULL, "print more", NULL, 0, 0, &verbose_seen},
    {"--steps", OB_ARG_INT, &steps, "N", "optimizer steps", NULL, 1, 1000, &steps_seen},
    {"--offset", OB_ARG_INT, &offset, "K", "a signed shift", NULL, -100, 100, NULL},
    {"--tokens", OB_ARG_I64, &tokens, "N", "token budget", NULL, 0, 0, NULL},
    {"--lr", OB_ARG_DOUBLE, &lr, "RATE", "peak learning rate", NULL, 0, 10, NULL},
    {"--lr-min", OB_ARG_DOUBLE, &lr_min, "RATE", "final learning rate", NULL, 0, 0, NULL},
    {"--out", OB_ARG_STRING, &out_path, "PATH", "output file", NULL, 0, 0, NULL},
    {"--device", OB_ARG_CHOICE, &device, NULL, "where to run", "cpu|cuda|auto", 0, 0, NULL},
    {"--files", OB_ARG_LIST, &files, "FILE", "input files", NULL, 0, 0, NULL},
    {0},
};

static const ob_command_spec spec = {
    .name = "test-cmd",
    .summary = "An imaginary command for the flag parser's tests.",
    .usage = "[options] PATH [PATH]",
    .details = "Details paragraph.",
    .args = table,
    .min_positional = 1,
    .max_positional = 2,
};

/* argv strings live until the next reset: lists and strings point into them. */
#define POOL_CAP 4096
static char *pool[POOL_CAP];
static int pool_count;

static int reset(void **state) {
    (void)state;
    for (int i = 0; i < pool_count; i++)
        free(pool[i]);
    pool_count = 0;
    verbose = steps_seen = verbose_seen = false;
    steps = 10;
    offset = 0;
    tokens = 0;
    lr = 1e-3;
    lr_min = 0;
    out_path = "out.bin";
    device = "auto";
    memset(&files, 0, sizeof files);
    return 0;
}

/* Parses "test-cmd" followed by the NULL-terminated arguments. */
static ob_status parse_with(const ob_command_spec *s, ob_strlist *pos, bool *help, const char *first, ...) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = pool[pool_count++] = ob_strdup("test-cmd");
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        assert_true(argc < 63 && pool_count < POOL_CAP);
        argv[argc++] = pool[pool_count++] = ob_strdup(a);
    }
    va_end(ap);
    argv[argc] = NULL;
    return ob_args_parse(s, argc, argv, pos, help);
}

#define PARSE(pos, help, ...) parse_with(&spec, pos, help, __VA_ARGS__, (const char *)NULL)

static void assert_mentions(const char *needle) {
    if (!strstr(ob_last_error(), needle))
        fail_msg("message '%s' lacks '%s'", ob_last_error(), needle);
}

static void expect_error(ob_status st, const char *needle1, const char *needle2) {
    if (st == OB_OK)
        fail_msg("accepted; wanted an error mentioning '%s'", needle1);
    assert_int_equal(st, OB_ERR_INVALID_ARG);
    assert_mentions("test-cmd");
    assert_mentions(needle1);
    if (needle2)
        assert_mentions(needle2);
}

static int rand_int(int lo, int hi) { return lo + (int)ob_rng_below(&rng, (uint64_t)(hi - lo + 1)); }

/* ---- tests ------------------------------------------------------------------ */

static void test_every_type_both_forms(void **state) {
    (void)state;
    for (int trial = 0; trial < 200; trial++) {
        int want_steps = rand_int(1, 1000);
        int64_t want_tokens = (int64_t)(ob_rng_u64(&rng) >> 2) * (rand_int(0, 1) ? 1 : -1);
        double want_lr = 10.0 * ob_rng_uniform(&rng);
        char s[32], t[32], l[40], path[32];
        snprintf(s, sizeof s, "%d", want_steps);
        snprintf(t, sizeof t, "%lld", (long long)want_tokens);
        snprintf(l, sizeof l, "%.17g", want_lr);
        snprintf(path, sizeof path, "run-%d/x.bin", rand_int(0, 99999));
        const char *choices[] = {"cpu", "cuda", "auto"};
        const char *want_device = choices[rand_int(0, 2)];
        ob_strlist pos;
        bool help;
        reset(NULL);
        if (trial % 2 == 0) {
            assert_ok(PARSE(&pos, &help, "--verbose", "--steps", s, "--tokens", t, "--lr", l, "--out", path,
                            "--device", want_device, "in.txt"));
        } else {
            char *eq[5];
            assert_true(asprintf(&eq[0], "--steps=%s", s) > 0);
            assert_true(asprintf(&eq[1], "--tokens=%s", t) > 0);
            assert_true(asprintf(&eq[2], "--lr=%s", l) > 0);
            assert_true(asprintf(&eq[3], "--out=%s", path) > 0);
            assert_true(asprintf(&eq[4], "--device=%s", want_device) > 0);
            assert_ok(PARSE(&pos, &help, "in.txt", eq[0], eq[1], eq[2], eq[3], eq[4], "--verbose=true"));
            for (int k = 0; k < 5; k++)
                free(eq[k]);
        }
        assert_false(help);
        assert_true(verbose);
        assert_int_equal(steps, want_steps);
        assert_true(tokens == want_tokens);
        assert_true(lr == want_lr); /* exact: %.17g reads back to the same double */
        assert_string_equal(out_path, path);
        assert_string_equal(device, want_device);
        assert_int_equal(pos.count, 1);
        assert_string_equal(pos.items[0], "in.txt");
        ob_args_free(&spec, &pos);
    }
}

static void test_lists(void **state) {
    (void)state;
    ob_strlist pos;
    bool help;
    assert_ok(PARSE(&pos, &help, "--files", "a.txt", "b.txt", "c.txt", "--steps", "5", "p"));
    assert_int_equal(files.count, 3);
    assert_string_equal(files.items[0], "a.txt");
    assert_string_equal(files.items[2], "c.txt");
    assert_int_equal(steps, 5);
    assert_int_equal(pos.count, 1);
    ob_args_free(&spec, &pos);
    assert_int_equal(files.count, 0);
    /* Repeated flags append; =VALUE adds exactly one. */
    reset(NULL);
    assert_ok(PARSE(&pos, &help, "--files=a", "p", "--files", "b", "c"));
    /* "c" went to the list, not to the positionals. */
    assert_int_equal(files.count, 3);
    assert_string_equal(files.items[1], "b");
    assert_int_equal(pos.count, 1);
    ob_args_free(&spec, &pos);
    /* "--" ends a list too. */
    reset(NULL);
    assert_ok(PARSE(&pos, &help, "--files", "a", "--", "p"));
    assert_int_equal(files.count, 1);
    assert_string_equal(pos.items[0], "p");
    ob_args_free(&spec, &pos);
    /* A list needs a value. */
    reset(NULL);
    expect_error(PARSE(&pos, &help, "p", "--files", "--verbose"), "--files", "at least one FILE");
    reset(NULL);
    expect_error(PARSE(&pos, &help, "p", "--files"), "--files", "at least one");
}

static void test_positional_min_max(void **state) {
    (void)state;
    ob_strlist pos;
    bool help;
    expect_error(PARSE(&pos, &help, "--verbose"), "missing argument", "usage: test-cmd [options] PATH");
    assert_ok(PARSE(&pos, &help, "one"));
    assert_int_equal(pos.count, 1);
    ob_args_free(&spec, &pos);
    assert_ok(PARSE(&pos, &help, "one", "--verbose", "two"));
    assert_int_equal(pos.count, 2);
    assert_string_equal(pos.items[1], "two");
    ob_args_free(&spec, &pos);
    expect_error(PARSE(&pos, &help, "one", "two", "three"), "unexpected argument 'three'", NULL);
    /* A command without positionals rejects any. */
    ob_command_spec none = spec;
    none.min_positional = none.max_positional = 0;
    expect_error(parse_with(&none, NULL, &help, "stray", (const char *)NULL), "unexpected argument 'stray'", NULL);
    assert_ok(parse_with(&none, NULL, &help, "--verbose", (const char *)NULL));
}

static void test_bool_forms(void **state) {
    (void)state;
    ob_strlist pos;
    bool help;
    const char *forms[] = {"--verbose", "--verbose=true", "--verbose=1", "--verbose=false", "--verbose=0"};
    const bool want[] = {true, true, true, false, false};
    for (int i = 0; i < 5; i++) {
        reset(NULL);
        verbose = !want[i];
        assert_ok(PARSE(&pos, &help, forms[i], "p"));
        assert_int_equal(verbose, want[i]);
        assert_true(verbose_seen);
        ob_args_free(&spec, &pos);
    }
    const char *bad[] = {"--verbose=yes", "--verbose=", "--verbose=TRUE", "--verbose=2"};
    for (int i = 0; i < 4; i++)
        expect_error(PARSE(&pos, &help, bad[i], "p"), "--verbose", bad[i] + strlen("--verbose="));
    /* A boolean never takes the next argument as its value. */
    reset(NULL);
    assert_ok(PARSE(&pos, &help, "--verbose", "false"));
    assert_true(verbose);
    assert_string_equal(pos.items[0], "false");
    ob_args_free(&spec, &pos);
}

static void test_ranges(void **state) {
    (void)state;
    ob_strlist pos;
    bool help;
    const char *edge[] = {"1", "1000"};
    for (int i = 0; i < 2; i++) {
        assert_ok(PARSE(&pos, &help, "--steps", edge[i], "p"));
        assert_int_equal(steps, atoi(edge[i]));
        ob_args_free(&spec, &pos);
    }
    for (int trial = 0; trial < 20; trial++) {
        char v[32];
        snprintf(v, sizeof v, "%d", rand_int(0, 1) ? -rand_int(0, 100000) : rand_int(1001, 100000));
        expect_error(PARSE(&pos, &help, "--steps", v, "p"), "--steps", v);
        assert_mentions("[1, 1000]");
        double bad = rand_int(0, 1) ? -ldexp(1.0 + ob_rng_uniform(&rng), -rand_int(1, 30))
                                    : 10.0 + ldexp(1.0, -rand_int(0, 40));
        snprintf(v, sizeof v, "%.17g", bad);
        expect_error(PARSE(&pos, &help, "--lr", v, "p"), "--lr", v);
        assert_mentions("[0, 10]");
    }
    /* min == max means unbounded. */
    assert_ok(PARSE(&pos, &help, "--tokens", "-9000000000000000000", "--lr-min", "1e300", "p"));
    assert_true(tokens == -9000000000000000000LL);
    assert_true(lr_min == 1e300);
    ob_args_free(&spec, &pos);
}

static void test_unknown_flag_gets_suggestion(void **state) {
    (void)state;
    ob_strlist pos;
    bool help;
    struct {
        const char *given, *flag, *suggested;
    } cases[] = {
        {"--lr-mn", "--lr-mn", "--lr-min"},   {"--lr-minn", "--lr-minn", "--lr-min"},
        {"--stesp", "--stesp", "--steps"},    {"--devcie=cpu", "--devcie", "--device"},
        {"-verbose", "-verbose", "--verbose"}, {"--file", "--file", "--files"},
        {"--tokns", "--tokns", "--tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char quoted[64], hint[80];
        snprintf(quoted, sizeof quoted, "unknown flag '%s'", cases[i].flag);
        snprintf(hint, sizeof hint, "did you mean '%s'?", cases[i].suggested);
        expect_error(PARSE(&pos, &help, "p", cases[i].given), quoted, hint);
        assert_mentions("test-cmd --help");
    }
}

static void test_far_unknown_flag_has_no_suggestion(void **state) {
    (void)state;
    ob_strlist pos;
    bool help;
    const char *far[] = {"--completely-different", "--x", "-q", "--zzzzzzzz", "--ab"};
    for (size_t i = 0; i < sizeof far / sizeof *far; i++) {
        expect_error(PARSE(&pos, &help, "p", far[i]), "unknown flag", far[i]);
        if (strstr(ob_last_error(), "did you mean"))
            fail_msg("'%s' got a suggestion: %s", far[i], ob_last_error());
    }
}

static void test_missing_value(void **state) {
    (void)state;
    ob_strlist pos;
    bool help;
    const char *flags[] = {"--steps", "--tokens", "--lr", "--out", "--device"};
    for (int i = 0; i < 5; i++) {
        expect_error(PARSE(&pos, &help, "p", flags[i]), flags[i], "needs a value");
        /* The next flag is not swallowed as the value. */
        expect_error(PARSE(&pos, &help, "p", flags[i], "--verbose"), "needs a value", "found the flag '--verbose'");
    }
}

static void test_bad_numbers(void **state) {
    (void)state;
    ob_strlist pos;
    bool help;
    struct {
        const char *flag, *value;
    } bad[] = {
        {"--steps", "abc"},  {"--steps", "1.5"}, {"--steps", "12x"},  {"--steps", "0x10"},
        {"--steps", ""},     {"--steps", "5000000000"}, {"--tokens", "99999999999999999999"},
        {"--tokens", "1e6"}, {"--lr", "nan"},   {"--lr", "inf"},     {"--lr", "1e999"},
        {"--lr", "1.2.3"},   {"--lr", "0.1x"},  {"--lr", ""},        {"--lr-min", "-"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *eq;
        assert_true(asprintf(&eq, "%s=%s", bad[i].flag, bad[i].value) > 0);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", bad[i].value);
        expect_error(PARSE(&pos, &help, "p", eq), bad[i].flag, quoted);
        free(eq);
    }
}

static void test_choices(void **state) {
    (void)state;
    ob_strlist pos;
    bool help;
    const char *good[] = {"cpu", "cuda", "auto"};
    for (int i = 0; i < 3; i++) {
        assert_ok(PARSE(&pos, &help, "--device", good[i], "p"));
        assert_string_equal(device, good[i]);
        ob_args_free(&spec, &pos);
    }
    const char *bad[] = {"gpu", "cu", "CPU", "cpu|cuda", ""};
    for (int i = 0; i < 5; i++) {
        char quoted[32];
        snprintf(quoted, sizeof quoted, "got '%s'", bad[i]);
        expect_error(PARSE(&pos, &help, "p", "--device", bad[i]), "one of cpu|cuda|auto", quoted);
    }
}

static void test_double_dash_terminator(void **state) {
    (void)state;
    ob_command_spec many = spec;
    many.max_positional = 8;
    ob_strlist pos;
    bool help = true;
    assert_ok(parse_with(&many, &pos, &help, "--steps", "3", "a", "--", "--steps", "-x", "--help", "--",
                         (const char *)NULL));
    assert_false(help); /* --help after "--" is an argument */
    assert_int_equal(steps, 3);
    assert_int_equal(pos.count, 5);
    const char *want[] = {"a", "--steps", "-x", "--help", "--"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(pos.items[i], want[i]);
    ob_args_free(&many, &pos);
}

static void test_negative_numbers_are_values(void **state) {
    (void)state;
    ob_strlist pos;
    bool help;
    const char *values[] = {"-1", "-.5", "-1e-3", "-0", "-2.5E+2"};
    for (int i = 0; i < 5; i++) {
        reset(NULL);
        assert_ok(PARSE(&pos, &help, "--lr-min", values[i], "p"));
        assert_true(lr_min == strtod(values[i], NULL));
        ob_args_free(&spec, &pos);
        char *eq;
        assert_true(asprintf(&eq, "--lr-min=%s", values[i]) > 0);
        assert_ok(PARSE(&pos, &help, eq, "p"));
        assert_true(lr_min == strtod(values[i], NULL));
        free(eq);
        ob_args_free(&spec, &pos);
    }
    for (int trial = 0; trial < 20; trial++) {
        int k = -rand_int(1, 100);
        char v[16];
        snprintf(v, sizeof v, "%d", k);
        assert_ok(PARSE(&pos, &help, "--offset", v, "p"));
        assert_int_equal(offset, k);
        ob_args_free(&spec, &pos);
    }
    /* In lists and as positionals too; "-" alone is an argument (stdin). */
    assert_ok(PARSE(&pos, &help, "--files", "-1", "-2.5", "x", "--verbose", "-7", "-"));
    assert_int_equal(files.count, 3);
    assert_string_equal(files.items[1], "-2.5");
    assert_int_equal(pos.count, 2);
    assert_string_equal(pos.items[0], "-7");
    assert_string_equal(pos.items[1], "-");
    ob_args_free(&spec, &pos);
    /* A string value that starts with '-' needs the = form, and the error says so. */
    expect_error(PARSE(&pos, &help, "p", "--out", "-weird"), "--out=-weird", NULL);
    assert_ok(PARSE(&pos, &help, "p", "--out=-weird"));
    assert_string_equal(out_path, "-weird");
    ob_args_free(&spec, &pos);
}

/* Runs a parse with stdout redirected to a temporary file; returns what it printed. */
static char *parse_capturing_stdout(ob_status *st, bool *help, const char *a, const char *b) {
    fflush(stdout);
    int saved = dup(1);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    dup2(fileno(tmp), 1);
    ob_strlist pos;
    *st = b ? PARSE(&pos, help, a, b) : PARSE(&pos, help, a);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    fseek(tmp, 0, SEEK_END);
    long n = ftell(tmp);
    rewind(tmp);
    char *text = calloc((size_t)n + 1, 1);
    assert_int_equal(fread(text, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return text;
}

static void test_help_prints_usage(void **state) {
    (void)state;
    const char *forms[][2] = {{"--help", NULL}, {"-h", NULL}, {"--bogus-flag", "--help"}, {"--steps=0", "-h"}};
    for (int f = 0; f < 4; f++) {
        ob_status st;
        bool help = false;
        char *text = parse_capturing_stdout(&st, &help, forms[f][0], forms[f][1]);
        assert_int_equal(st, OB_OK); /* help wins over errors and missing positionals */
        assert_true(help);
        assert_non_null(strstr(text, "usage: test-cmd [options] PATH [PATH]\n"));
        assert_non_null(strstr(text, spec.summary));
        assert_non_null(strstr(text, spec.details));
        for (const ob_arg *a = table; a->name; a++) {
            assert_non_null(strstr(text, a->name));
            assert_non_null(strstr(text, a->help));
        }
        assert_non_null(strstr(text, "--steps N"));
        assert_non_null(strstr(text, "[10]"));    /* defaults come from the destinations */
        assert_non_null(strstr(text, "[0.001]"));
        assert_non_null(strstr(text, "[out.bin]"));
        assert_non_null(strstr(text, "cpu|cuda|auto"));
        assert_non_null(strstr(text, "--files FILE..."));
        assert_non_null(strstr(text, "-h, --help"));
        free(text);
    }
}

static void test_seen_only_when_given(void **state) {
    (void)state;
    ob_strlist pos;
    bool help;
    assert_ok(PARSE(&pos, &help, "p"));
    assert_false(steps_seen);
    assert_false(verbose_seen);
    assert_int_equal(steps, 10); /* untouched default */
    ob_args_free(&spec, &pos);
    assert_ok(PARSE(&pos, &help, "p", "--steps=10"));
    assert_true(steps_seen);
    ob_args_free(&spec, &pos);
}

int main(void) {
    ob_rng_seed(&rng, tu_seed("test_args"));
#define T(f) cmocka_unit_test_setup_teardown(f, reset, reset)
    const struct CMUnitTest tests[] = {
        T(test_every_type_both_forms),
        T(test_lists),
        T(test_positional_min_max),
        T(test_bool_forms),
        T(test_ranges),
        T(test_unknown_flag_gets_suggestion),
        T(test_far_unknown_flag_has_no_suggestion),
        T(test_missing_value),
        T(test_bad_numbers),
        T(test_choices),
        T(test_double_dash_terminator),
        T(test_negative_numbers_are_values),
        T(test_help_prints_usage),
        T(test_seen_only_when_given),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
