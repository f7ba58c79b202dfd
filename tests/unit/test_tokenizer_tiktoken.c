/* The GPT-2 tokenizer against OpenAI's tiktoken (npm `tiktoken`, its Rust core
 * as WASM, run through tests/ref/tokenize_ref.cjs): token for token on
 * TinyShakespeare, WikiText-2 valid, test and raw test, the Gutenberg valid
 * books, and the adversarial inputs of tests/ref/tokenizer_inputs.py (runs of
 * spaces, newlines and tabs, CRLF, emoji and ZWJ sequences, CJK, combining
 * marks, NUL bytes, a 1 MB line, every code point of the used planes, special
 * tokens allowed and not, random text from a fresh seed), with special tokens
 * allowed and not, on one thread and on several. Invalid UTF-8 (tiktoken
 * cannot take it) is compared with the tiktoken-bytes reference. Skipped when
 * node or the npm packages are missing (scripts/install-deps.sh installs them). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/tokenizer.h"
#include "test_util.h"

typedef struct {
    char **paths;
    int count;
} file_list;

static void list_add(file_list *l, char *path) {
    l->paths = realloc(l->paths, (size_t)(l->count + 1) * sizeof *l->paths);
    l->paths[l->count++] = path;
}

static int compare_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list_dir(file_list *l, const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int first = l->count;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            list_add(l, ob_path_join(dir, e->d_name));
    closedir(d);
    qsort(l->paths + first, (size_t)(l->count - first), sizeof *l->paths, compare_str);
}

static void list_free(file_list *l) {
    for (int i = 0; i < l->count; i++)
        free(l->paths[i]);
    free(l->paths);
}

/* Runs the reference on every file; returns one id list per file. */
static ob_tokens *reference(const char *mode, const file_list *files, const char *dir) {
    size_t cap = 1 << 16, len = 0;
    char *cmd = malloc(cap);
    len += (size_t)snprintf(cmd, cap, "node %s/tests/ref/tokenize_ref.cjs %s", getenv("ONEBIT_SOURCE_DIR"), mode);
    for (int i = 0; i < files->count; i++) {
        size_t need = strlen(files->paths[i]) + 4;
        if (len + need + 512 > cap)
            cmd = realloc(cmd, cap *= 2);
        len += (size_t)snprintf(cmd + len, cap - len, " '%s'", files->paths[i]);
    }
    char out_path[4096];
    snprintf(out_path, sizeof out_path, "%s/ref_%d.txt", dir, rand());
    snprintf(cmd + len, cap - len, " > %s", out_path);
    char *log = NULL;
    int rc = tu_run(cmd, &log);
    if (rc != 0)
        fail_msg("%s failed: %s", mode, log);
    free(log);
    free(cmd);
    char *text;
    size_t n;
    assert_ok(ob_read_file(out_path, &text, &n));
    ob_tokens *lists = calloc((size_t)files->count, sizeof *lists);
    char *p = text;
    for (int i = 0; i < files->count; i++) {
        char *eol = strchr(p, '\n');
        assert_non_null(eol);
        while (p < eol) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p)
                break;
            assert_ok(ob_tokens_push(&lists[i], (int32_t)v));
            p = end;
            while (*p == ' ')
                p++;
        }
        p = eol + 1;
    }
    free(text);
    return lists;
}

static int checked, mismatches;

static void expect_same(const ob_tokens *want, const ob_tokens *got, const char *path, const char *how) {
    checked++;
    size_t i = 0;
    while (i < want->count && i < got->count && want->ids[i] == got->ids[i])
        i++;
    if (i == want->count && i == got->count)
        return;
    mismatches++;
    print_error("MISMATCH %s (%s): %zu vs %zu tokens, first difference at token %zu: tiktoken %d, onebit %d\n", path,
                how, want->count, got->count, i, i < want->count ? want->ids[i] : -1,
                i < got->count ? got->ids[i] : -1);
}

static void encode_file(const ob_tokenizer *tok, const char *path, bool special, int threads, ob_tokens *out) {
    char *text;
    size_t n;
    assert_ok(ob_read_file(path, &text, &n));
    out->count = 0;
    if (threads == 1)
        assert_ok(ob_tokenizer_encode(tok, text, n, special, out));
    else
        assert_ok(ob_tokenizer_encode_parallel(tok, text, n, special, threads, out));
    char *back;
    size_t back_len;
    assert_ok(ob_tokenizer_decode(tok, out->ids, out->count, &back, &back_len));
    assert_true(back_len == n && memcmp(back, text, n) == 0);
    free(back);
    free(text);
}

static void test_matches_tiktoken(void **state) {
    (void)state;
    char *src = getenv("ONEBIT_SOURCE_DIR");
    char probe[4096];
    snprintf(probe, sizeof probe, "command -v node >/dev/null && test -d %s/tests/node_modules/tiktoken", src);
    /* The oracle is part of the test: without it the test fails, never passes. */
    if (tu_run(probe, NULL) != 0)
        fail_msg("node or tests/node_modules/tiktoken missing: run scripts/install-deps.sh");
    char *dir = tu_make_temp_dir();
    unsigned seed = (unsigned)tu_seed("test_tokenizer_tiktoken");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/tokenizer_inputs.py %s/in %s %u", tu_python(), src, dir, tu_data_dir(),
             seed);
    char *log = NULL;
    if (tu_run(cmd, &log) != 0)
        fail_msg("input generator failed: %s", log);
    free(log);

    file_list corpora = {0}, valid = {0}, invalid = {0};
    static const char *const named[] = {"tinyshakespeare/input.txt", "wikitext-2/valid.txt", "wikitext-2/test.txt",
                                        "wikitext-2/raw/test.txt"};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        list_add(&corpora, tu_data_path(named[i]));
    char *books = tu_data_path("gutenberg/valid");
    list_dir(&corpora, books);
    free(books);
    for (int i = 0; i < corpora.count; i++)
        list_add(&valid, ob_strdup(corpora.paths[i]));
    snprintf(cmd, sizeof cmd, "%s/in/valid", dir);
    list_dir(&valid, cmd);
    snprintf(cmd, sizeof cmd, "%s/in/invalid", dir);
    list_dir(&invalid, cmd);

    ob_tokens *ordinary = reference("tiktoken", &valid, dir);
    ob_tokens *special = reference("tiktoken --allow-special", &valid, dir);
    ob_tokens *bytes = reference("tiktoken-bytes", &invalid, dir);

    char *tok_path = tu_data_path("gpt2/tokenizer.json");
    ob_tokenizer *tok;
    assert_ok(ob_tokenizer_load(tok_path, &tok));
    ob_tokens got = {0};
    for (int i = 0; i < valid.count; i++) {
        encode_file(tok, valid.paths[i], false, 1, &got);
        expect_same(&ordinary[i], &got, valid.paths[i], "1 thread");
        encode_file(tok, valid.paths[i], true, 1, &got);
        expect_same(&special[i], &got, valid.paths[i], "1 thread, special tokens allowed");
        /* The big inputs again through the corpus encoder, which cuts them up. */
        if (i < corpora.count || strstr(valid.paths[i], "megabyte") || strstr(valid.paths[i], "crlf") ||
            strstr(valid.paths[i], "code_points")) {
            encode_file(tok, valid.paths[i], false, 2, &got);
            expect_same(&ordinary[i], &got, valid.paths[i], "2 threads");
            encode_file(tok, valid.paths[i], true, 3, &got);
            expect_same(&special[i], &got, valid.paths[i], "3 threads, special tokens allowed");
        }
    }
    for (int i = 0; i < invalid.count; i++) {
        encode_file(tok, invalid.paths[i], false, 1, &got);
        expect_same(&bytes[i], &got, invalid.paths[i], "invalid UTF-8");
    }
    print_message("%d encodings checked against tiktoken (%d files), %d mismatches\n", checked,
                  valid.count + invalid.count, mismatches);
    assert_int_equal(mismatches, 0);

    ob_tokens_free(&got);
    for (int i = 0; i < valid.count; i++) {
        ob_tokens_free(&ordinary[i]);
        ob_tokens_free(&special[i]);
    }
    for (int i = 0; i < invalid.count; i++)
        ob_tokens_free(&bytes[i]);
    free(ordinary);
    free(special);
    free(bytes);
    ob_tokenizer_free(tok);
    free(tok_path);
    list_free(&corpora);
    list_free(&valid);
    list_free(&invalid);
    tu_remove_tree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_tiktoken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
