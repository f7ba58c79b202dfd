/* Byte-level BPE tokenizer: loading every supported format the same way,
 * decode(encode(x)) == x for random byte strings, the corpus encoder and its
 * cut points against plain encoding, the heap merge loop of long pieces against
 * a naive one, saving and reloading, training (determinism across thread
 * counts, special tokens, errors) and a clear error naming file and field for
 * each kind of malformed tokenizer file. Random inputs come from a fresh seed
 * that is printed (set ONEBIT_TEST_SEED to repeat a run). */
#include <stdlib.h>
#include <string.h>

#include "onebit/json.h"
#include "onebit/tokenizer.h"
#include "test_util.h"
#include "tokenizer/tok_internal.h"

static ob_tokenizer *gpt2;
static uint64_t seed;

static int setup(void **state) {
    (void)state;
    seed = tu_seed("test_tokenizer");
    char *path = tu_data_path("gpt2/tokenizer.json");
    ob_status st = ob_tokenizer_load(path, &gpt2);
    free(path);
    return st == OB_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    ob_tokenizer_free(gpt2);
    return 0;
}

static char *read_data(const char *rel, size_t *len) {
    char *path = tu_data_path(rel), *text;
    assert_ok(ob_read_file(path, &text, len));
    free(path);
    return text;
}

static void assert_same_ids(const ob_tokens *a, const ob_tokens *b) {
    assert_int_equal(a->count, b->count);
    assert_memory_equal(a->ids, b->ids, a->count * sizeof *a->ids);
}

static void encode(const ob_tokenizer *tok, const char *text, size_t len, bool special, ob_tokens *out) {
    out->count = 0;
    assert_ok(ob_tokenizer_encode(tok, text, len, special, out));
}

/* ---- loading -------------------------------------------------------------- */

static void test_formats_agree(void **state) {
    (void)state;
    ob_tokenizer *pair, *dir;
    char *vocab = tu_data_path("gpt2/vocab.json"), *merges = tu_data_path("gpt2/merges.txt");
    char *dir_path = tu_data_path("gpt2");
    assert_ok(ob_tokenizer_load_vocab_merges(vocab, merges, &pair));
    assert_ok(ob_tokenizer_load(dir_path, &dir));
    assert_int_equal(ob_tokenizer_vocab_size(gpt2), 50257);
    assert_int_equal(ob_tokenizer_vocab_size(pair), 50257);
    assert_int_equal(ob_tokenizer_num_merges(gpt2), 50000);
    assert_int_equal(ob_tokenizer_num_merges(pair), 50000);
    assert_int_equal(ob_tokenizer_eos_id(gpt2), ob_tokenizer_eos_id(pair));
    assert_int_equal(ob_tokenizer_eos_id(gpt2), ob_tokenizer_token_id(gpt2, "<|endoftext|>"));

    /* Every vocab.json entry is found under its spelling with its id, and its
     * bytes spell back to it. */
    cJSON *v;
    assert_ok(ob_json_load_file(vocab, &v));
    char spelled[1024];
    for (const cJSON *e = v->child; e; e = e->next) {
        assert_int_equal(ob_tokenizer_token_id(gpt2, e->string), (int)e->valuedouble);
        size_t n;
        const uint8_t *b = ob_tokenizer_token_bytes(pair, (int)e->valuedouble, &n);
        assert_true(n < sizeof spelled / 2);
        if ((int)e->valuedouble != ob_tokenizer_eos_id(pair)) {
            tok_bytes_to_spelling(b, n, spelled);
            assert_string_equal(spelled, e->string);
        }
    }
    cJSON_Delete(v);
    assert_int_equal(ob_tokenizer_token_id(gpt2, "no such token, surely"), -1);

    size_t len;
    char *text = read_data("tinystories/tinystories_v2_sample.txt", &len);
    ob_tokens a = {0}, b = {0}, c = {0};
    for (int special = 0; special < 2; special++) {
        encode(gpt2, text, len, special, &a);
        encode(pair, text, len, special, &b);
        encode(dir, text, len, special, &c);
        assert_same_ids(&a, &b);
        assert_same_ids(&a, &c);
        /* The sample separates stories with <|endoftext|>. */
        size_t eos = 0;
        for (size_t i = 0; i < a.count; i++)
            eos += a.ids[i] == ob_tokenizer_eos_id(gpt2);
        assert_int_equal(eos, special ? 5 : 0);
    }
    ob_tokens_free(&a);
    ob_tokens_free(&b);
    ob_tokens_free(&c);
    free(text);
    free(vocab);
    free(merges);
    free(dir_path);
    ob_tokenizer_free(pair);
    ob_tokenizer_free(dir);
}

/* ---- properties ------------------------------------------------------------- */

/* Random bytes of several kinds: uniform, mostly ASCII, UTF-8 fragments. */
static size_t random_text(ob_rng *rng, char *buf, size_t max) {
    static const char *const frags[] = {" ", "  ", "\n", "\r\n", "\t", "'s", "'ll", "the", " the", "é", "日本", "😀",
                                        "👨‍👩‍👧", "\xcc\x81", "\xe3\x80\x80", "\xc2\xa0", "<|endoftext|>", "<|", "1",
                                        "23", "!", "..."};
    size_t n = (size_t)ob_rng_below(rng, max), k = 0;
    int kind = (int)ob_rng_below(rng, 3);
    while (k < n) {
        if (kind == 0) {
            buf[k++] = (char)ob_rng_below(rng, 256);
        } else if (kind == 1) {
            buf[k++] = ob_rng_below(rng, 10) == 0 ? (char)ob_rng_below(rng, 256) : (char)(32 + ob_rng_below(rng, 95));
        } else {
            const char *f = frags[ob_rng_below(rng, sizeof frags / sizeof frags[0])];
            size_t fl = strlen(f);
            if (ob_rng_below(rng, 20) == 0 && fl > 1)
                fl = 1 + (size_t)ob_rng_below(rng, fl - 1); /* a cut-off sequence */
            if (k + fl > n)
                break;
            memcpy(buf + k, f, fl);
            k += fl;
        }
    }
    return k;
}

static void test_decode_inverts_encode(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, seed);
    char *buf = malloc(4096);
    ob_tokens ids = {0};
    for (int round = 0; round < 2000; round++) {
        size_t n = random_text(&rng, buf, 4096);
        for (int special = 0; special < 2; special++) {
            encode(gpt2, buf, n, special, &ids);
            char *back;
            size_t back_len;
            assert_ok(ob_tokenizer_decode(gpt2, ids.ids, ids.count, &back, &back_len));
            assert_int_equal(back_len, n);
            assert_memory_equal(back, buf, n);
            free(back);
            for (size_t i = 0; i < ids.count; i++)
                assert_true(ids.ids[i] >= 0 && ids.ids[i] < 50257 && (special || ids.ids[i] != 50256));
        }
    }
    ob_tokens_free(&ids);
    free(buf);
}

static void test_parallel_equals_serial(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, seed + 1);
    /* Random lines (so there are cut points), several hundred kB each. */
    size_t cap = 600000;
    char *text = malloc(cap);
    ob_tokens one = {0}, many = {0};
    for (int round = 0; round < 2; round++) {
        size_t n = 0;
        while (n + 5000 < cap) {
            n += random_text(&rng, text + n, 200);
            text[n++] = '\n';
        }
        for (int special = 0; special < 2; special++) {
            encode(gpt2, text, n, special, &one);
            for (int threads = 2; threads <= 3; threads++) {
                many.count = 0;
                assert_ok(ob_tokenizer_encode_parallel(gpt2, text, n, special, threads, &many));
                assert_same_ids(&one, &many);
            }
        }
    }
    /* Chunks between the cut points encode to the whole text's ids. */
    size_t len;
    char *shakespeare = read_data("tinyshakespeare/input.txt", &len);
    size_t cuts[64];
    size_t k = ob_tokenizer_safe_cuts(shakespeare, len, cuts, 63);
    assert_true(k >= 60);
    encode(gpt2, shakespeare, len, false, &one);
    many.count = 0;
    for (size_t i = 0, prev = 0; i <= k; i++) {
        size_t end = i < k ? cuts[i] : len;
        assert_true(end > prev);
        assert_ok(ob_tokenizer_encode(gpt2, shakespeare + prev, end - prev, false, &many));
        prev = end;
    }
    assert_same_ids(&one, &many);
    free(shakespeare);
    ob_tokens_free(&one);
    ob_tokens_free(&many);
    free(text);
}

/* Long pieces go through the heap-based merge loop; short ones through a flat
 * scan. Both must give what the naive rule gives. */
static size_t naive_bpe(const ob_tokenizer *tok, const uint8_t *p, size_t n, int32_t *ids) {
    for (size_t i = 0; i < n; i++)
        ids[i] = tok->byte_id[p[i]];
    for (;;) {
        size_t best = n;
        uint32_t best_rank = UINT32_MAX;
        int32_t merged = -1, m;
        for (size_t i = 0; i + 1 < n; i++) {
            uint32_t r = tok_pair_rank(&tok->merges, ids[i], ids[i + 1], &m);
            if (r < best_rank) {
                best_rank = r;
                best = i;
                merged = m;
            }
        }
        if (best == n)
            return n;
        ids[best] = merged;
        memmove(ids + best + 1, ids + best + 2, (n - best - 2) * sizeof *ids);
        n--;
    }
}

static void test_long_pieces(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, seed + 2);
    tok_work w;
    assert_ok(tok_work_init(&w, gpt2, false));
    uint8_t piece[2000];
    int32_t want[2000], got[2000];
    static const char *const syllables[] = {"a", "b", "an", "the", "ing", "er", "ab", "ba", "aa", "ly", "qu", "x"};
    for (int round = 0; round < 300; round++) {
        size_t n = 0, target = 1 + (size_t)ob_rng_below(&rng, 1500);
        while (n < target) {
            const char *s = syllables[ob_rng_below(&rng, sizeof syllables / sizeof syllables[0])];
            size_t l = strlen(s);
            if (n + l > sizeof piece)
                break;
            memcpy(piece + n, s, l);
            n += l;
        }
        if (round % 10 == 0)
            for (size_t i = 0; i < n; i++)
                piece[i] = (uint8_t)ob_rng_below(&rng, 256);
        size_t count;
        assert_ok(tok_bpe_merge(gpt2, &w, piece, n, got, &count));
        size_t want_count = naive_bpe(gpt2, piece, n, want);
        assert_int_equal(count, want_count);
        assert_memory_equal(got, want, count * sizeof *got);
    }
    tok_work_free(&w);
}

static void test_edge_cases(void **state) {
    (void)state;
    ob_tokens ids = {0};
    assert_ok(ob_tokenizer_encode(gpt2, "", 0, true, &ids));
    assert_int_equal(ids.count, 0);
    char *text;
    size_t len;
    assert_ok(ob_tokenizer_decode(gpt2, NULL, 0, &text, &len));
    assert_int_equal(len, 0);
    assert_string_equal(text, "");
    free(text);
    int32_t bad[] = {5, 50257};
    assert_fails_with(ob_tokenizer_decode(gpt2, bad, 2, &text, &len), OB_ERR_INVALID_ARG, "50257");
    int32_t negative[] = {-1};
    assert_fails_with(ob_tokenizer_decode(gpt2, negative, 1, &text, &len), OB_ERR_INVALID_ARG, "-1");
    /* Encoding appends. */
    assert_ok(ob_tokenizer_encode(gpt2, "a", 1, false, &ids));
    assert_ok(ob_tokenizer_encode(gpt2, "a", 1, false, &ids));
    assert_int_equal(ids.count, 2);
    assert_int_equal(ids.ids[0], ids.ids[1]);
    ob_tokens_free(&ids);
    size_t n;
    assert_null(ob_tokenizer_token_bytes(gpt2, 50257, &n));
    assert_int_equal(n, 0);
}

/* ---- saving ------------------------------------------------------------------- */

static void test_save_reload(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    char *path = ob_path_join(dir, "tokenizer.json");
    assert_ok(ob_tokenizer_save(gpt2, path));
    ob_tokenizer *again;
    assert_ok(ob_tokenizer_load(path, &again));
    assert_int_equal(ob_tokenizer_vocab_size(again), 50257);
    assert_int_equal(ob_tokenizer_num_merges(again), 50000);
    /* Same vocabulary and merges as Hugging Face's file. */
    cJSON *a, *b;
    char *orig = tu_data_path("gpt2/tokenizer.json");
    assert_ok(ob_json_load_file(orig, &a));
    assert_ok(ob_json_load_file(path, &b));
    const cJSON *va = cJSON_GetObjectItem(cJSON_GetObjectItem(a, "model"), "vocab");
    const cJSON *vb = cJSON_GetObjectItem(cJSON_GetObjectItem(b, "model"), "vocab");
    assert_int_equal(cJSON_GetArraySize(va), cJSON_GetArraySize(vb));
    /* Both list the vocabulary in id order. */
    for (const cJSON *x = va->child, *y = vb->child; x; x = x->next, y = y->next) {
        assert_string_equal(x->string, y->string);
        assert_true(x->valuedouble == y->valuedouble);
    }
    const cJSON *ma = cJSON_GetObjectItem(cJSON_GetObjectItem(a, "model"), "merges");
    const cJSON *mb = cJSON_GetObjectItem(cJSON_GetObjectItem(b, "model"), "merges");
    assert_int_equal(cJSON_GetArraySize(ma), cJSON_GetArraySize(mb));
    for (const cJSON *x = ma->child, *y = mb->child; x; x = x->next, y = y->next)
        assert_string_equal(x->valuestring, y->valuestring);
    cJSON_Delete(a);
    cJSON_Delete(b);
    size_t len;
    char *text = read_data("wikitext-2/raw/test.txt", &len);
    ob_tokens x = {0}, y = {0};
    encode(gpt2, text, len, true, &x);
    encode(again, text, len, true, &y);
    assert_same_ids(&x, &y);
    ob_tokens_free(&x);
    ob_tokens_free(&y);
    free(text);
    free(orig);
    ob_tokenizer_free(again);
    free(path);
    tu_remove_tree(dir);
    free(dir);
}

/* ---- training --------------------------------------------------------------- */

static char *train_to_file(const char *dir, const char *name, const char *const *files, int n, int vocab, int threads) {
    static const char *const specials[] = {"<|endoftext|>", "<|pad|>"};
    ob_bpe_train_options o = {.vocab_size = vocab, .specials = specials, .num_specials = 2, .threads = threads};
    ob_tokenizer *tok;
    assert_ok(ob_tokenizer_train(&o, files, n, &tok));
    char *path = ob_path_join(dir, name);
    assert_ok(ob_tokenizer_save(tok, path));
    ob_tokenizer_free(tok);
    return path;
}

static void test_train(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    char *shakespeare = tu_data_path("tinyshakespeare/input.txt");
    char *stories = tu_data_path("tinystories/tinystories_v2_sample.txt");
    const char *files[] = {shakespeare, stories};
    char *one = train_to_file(dir, "one.json", files, 2, 1500, 1);
    char *two = train_to_file(dir, "two.json", files, 2, 1500, 2);
    char *a, *b;
    size_t la, lb;
    assert_ok(ob_read_file(one, &a, &la));
    assert_ok(ob_read_file(two, &b, &lb));
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la); /* deterministic, whatever the thread count */
    free(a);
    free(b);

    ob_tokenizer *tok;
    assert_ok(ob_tokenizer_load(one, &tok));
    assert_int_equal(ob_tokenizer_vocab_size(tok), 1500);
    assert_int_equal(ob_tokenizer_num_merges(tok), 1500 - 256 - 2);
    assert_int_equal(ob_tokenizer_eos_id(tok), 1498);
    assert_int_equal(ob_tokenizer_token_id(tok, "<|pad|>"), 1499);
    /* The special tokens' text was not learned from (the sample holds five). */
    for (int id = 0; id < 1498; id++) {
        size_t n;
        const uint8_t *p = ob_tokenizer_token_bytes(tok, id, &n);
        assert_false(n >= 2 && memmem(p, n, "|>", 2) && memmem(p, n, "<|", 2));
    }
    const char *text = "First Citizen:<|pad|> you<|endoftext|>";
    ob_tokens ids = {0};
    encode(tok, text, strlen(text), true, &ids);
    assert_int_equal(ids.ids[ids.count - 1], 1498);
    bool pad = false;
    for (size_t i = 0; i < ids.count; i++)
        pad |= ids.ids[i] == 1499;
    assert_true(pad);
    /* Frequent words of the corpus became single tokens. */
    encode(tok, " the", 4, false, &ids);
    assert_int_equal(ids.count, 1);
    ob_tokens_free(&ids);
    ob_tokenizer_free(tok);

    /* min_frequency stops training early on a tiny corpus. */
    char *tiny = tu_write_text(dir, "tiny.txt", "low lower lowest newer newest wider\n");
    const char *tiny_files[] = {tiny};
    ob_bpe_train_options o = {.vocab_size = 5000, .min_frequency = 2};
    assert_ok(ob_tokenizer_train(&o, tiny_files, 1, &tok));
    assert_true(ob_tokenizer_num_merges(tok) > 0 && ob_tokenizer_num_merges(tok) < 20);
    assert_int_equal(ob_tokenizer_vocab_size(tok), 256 + ob_tokenizer_num_merges(tok));
    ob_tokenizer_free(tok);

    /* Bad inputs. */
    char *empty = tu_write_text(dir, "empty.txt", "");
    char *binary = tu_write_file(dir, "binary.bin", "ab\0cd", 5);
    char *missing = ob_path_join(dir, "missing.txt");
    const char *e1[] = {empty}, *e2[] = {binary}, *e3[] = {missing};
    ob_bpe_train_options ok = {.vocab_size = 300};
    assert_fails_with(ob_tokenizer_train(&ok, e1, 1, &tok), OB_ERR_FORMAT, "empty.txt: file is empty");
    assert_fails_with(ob_tokenizer_train(&ok, e2, 1, &tok), OB_ERR_FORMAT, "binary.bin: binary file");
    assert_fails_with(ob_tokenizer_train(&ok, e3, 1, &tok), OB_ERR_IO, "missing.txt");
    ob_bpe_train_options small = {.vocab_size = 200};
    assert_fails_with(ob_tokenizer_train(&small, tiny_files, 1, &tok), OB_ERR_INVALID_ARG, "vocab size 200");
    static const char *const twice[] = {"<s>", "<s>"};
    ob_bpe_train_options dup = {.vocab_size = 300, .specials = twice, .num_specials = 2};
    assert_fails_with(ob_tokenizer_train(&dup, tiny_files, 1, &tok), OB_ERR_INVALID_ARG, "listed twice");

    free(empty);
    free(binary);
    free(missing);
    free(tiny);
    free(one);
    free(two);
    free(shakespeare);
    free(stories);
    tu_remove_tree(dir);
    free(dir);
}

/* ---- malformed files ------------------------------------------------------- */

/* A small valid tokenizer.json (trained on a few lines), as a cJSON tree. */
static cJSON *small_tokenizer(const char *dir) {
    char *input = tu_write_text(dir, "small.txt", "the cat sat on the mat; the cat ate the rat\nthe end\n");
    const char *files[] = {input};
    static const char *const specials[] = {"<|endoftext|>"};
    ob_bpe_train_options o = {.vocab_size = 270, .specials = specials, .num_specials = 1};
    ob_tokenizer *tok;
    assert_ok(ob_tokenizer_train(&o, files, 1, &tok));
    char *path = ob_path_join(dir, "small.json");
    assert_ok(ob_tokenizer_save(tok, path));
    ob_tokenizer_free(tok);
    cJSON *root;
    assert_ok(ob_json_load_file(path, &root));
    free(path);
    free(input);
    return root;
}

static cJSON *model_of(cJSON *root) { return cJSON_GetObjectItem(root, "model"); }

typedef void (*mutation)(cJSON *root);

static void m_root_array(cJSON *root) {
    cJSON_DeleteItemFromObject(root, "model");
    cJSON_DeleteItemFromObject(root, "version");
    cJSON_AddItemToObject(root, "model", cJSON_CreateArray());
}
static void m_type(cJSON *r) { cJSON_ReplaceItemInObject(model_of(r), "type", cJSON_CreateString("WordPiece")); }
static void m_vocab_string(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(model_of(r), "vocab"), "!", cJSON_CreateString("0"));
}
static void m_vocab_fraction(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(model_of(r), "vocab"), "!", cJSON_CreateNumber(0.5));
}
static void m_vocab_range(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(model_of(r), "vocab"), "!", cJSON_CreateNumber(99999));
}
static void m_vocab_negative(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(model_of(r), "vocab"), "!", cJSON_CreateNumber(-1));
}
static void m_vocab_duplicate(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(model_of(r), "vocab"), "!", cJSON_CreateNumber(1));
}
static void m_vocab_gap(cJSON *r) {
    cJSON *v = cJSON_GetObjectItem(model_of(r), "vocab");
    cJSON_AddNumberToObject(v, "zzzzzz", cJSON_GetArraySize(v) + 1); /* one past the last id */
}
static void m_vocab_alphabet(cJSON *r) {
    cJSON *v = cJSON_GetObjectItem(model_of(r), "vocab");
    cJSON_AddNumberToObject(v, "a b", cJSON_GetArraySize(v));
}
static void m_missing_byte(cJSON *r) {
    cJSON *v = cJSON_GetObjectItem(model_of(r), "vocab");
    int id = (int)cJSON_GetObjectItem(v, "!")->valuedouble;
    cJSON_DeleteItemFromObject(v, "!");
    cJSON_AddNumberToObject(v, "zzzq", id);
}
static void m_merge_unknown(cJSON *r) {
    cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(r), "merges"), cJSON_CreateString("qqqq zzzz"));
}
static void m_merge_result(cJSON *r) {
    cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(r), "merges"), cJSON_CreateString("! !"));
}
static void m_merge_number(cJSON *r) {
    cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(r), "merges"), cJSON_CreateNumber(3));
}
static void m_merge_three(cJSON *r) {
    cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(r), "merges"), cJSON_CreateString("a b c"));
}
static void m_merge_repeat(cJSON *r) {
    cJSON *m = cJSON_GetObjectItem(model_of(r), "merges");
    cJSON_AddItemToArray(m, cJSON_Duplicate(m->child, true));
}
static void m_merges_missing(cJSON *r) { cJSON_DeleteItemFromObject(model_of(r), "merges"); }
static void m_normalizer(cJSON *r) {
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "type", "NFC");
    cJSON_ReplaceItemInObject(r, "normalizer", n);
}
static void m_pre_null(cJSON *r) { cJSON_ReplaceItemInObject(r, "pre_tokenizer", cJSON_CreateNull()); }
static void m_pre_meta(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(r, "pre_tokenizer"), "type", cJSON_CreateString("Metaspace"));
}
static void m_pre_flag(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(r, "pre_tokenizer"), "add_prefix_space", cJSON_CreateString("no"));
}
static void m_pre_no_prefix(cJSON *r) {
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(r, "pre_tokenizer"), "add_prefix_space");
}
static void m_decoder(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(r, "decoder"), "type", cJSON_CreateString("WordPiece"));
}
static void m_added_object(cJSON *r) { cJSON_ReplaceItemInObject(r, "added_tokens", cJSON_CreateObject()); }
static void m_added_clash(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "added_tokens"), 0), "id", cJSON_CreateNumber(3));
}
static void m_added_lstrip(cJSON *r) {
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "added_tokens"), 0), "lstrip", cJSON_CreateTrue());
}
static void m_added_content(cJSON *r) {
    cJSON_DeleteItemFromObject(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "added_tokens"), 0), "content");
}
static void m_dropout(cJSON *r) { cJSON_ReplaceItemInObject(model_of(r), "dropout", cJSON_CreateNumber(0.1)); }
static void m_byte_fallback(cJSON *r) { cJSON_ReplaceItemInObject(model_of(r), "byte_fallback", cJSON_CreateTrue()); }

static void test_malformed_json(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    cJSON *valid = small_tokenizer(dir);
    static const struct {
        mutation mutate;
        ob_status code;
        const char *needle;
    } cases[] = {
        {m_root_array, OB_ERR_FORMAT, "field 'model' must be an object, found an array"},
        {m_type, OB_ERR_UNSUPPORTED, "field 'model.type' = \"WordPiece\" is not supported"},
        {m_vocab_string, OB_ERR_FORMAT, "model.vocab[\"!\"] must be an integer id, found a string"},
        {m_vocab_fraction, OB_ERR_FORMAT, "model.vocab[\"!\"] must be an integer id, found a fractional number"},
        {m_vocab_range, OB_ERR_FORMAT, "model.vocab[\"!\"] = 99999 is out of range"},
        {m_vocab_negative, OB_ERR_FORMAT, "model.vocab[\"!\"] = -1 is out of range"},
        {m_vocab_duplicate, OB_ERR_FORMAT, "model.vocab: id 1 is given to both"},
        {m_vocab_gap, OB_ERR_FORMAT, "token \"zzzzzz\" has id"},
        {m_vocab_alphabet, OB_ERR_FORMAT, "model.vocab[\"a b\"] (id "},
        {m_missing_byte, OB_ERR_FORMAT, "model.vocab has no token for byte 0x21 ('!')"},
        {m_merge_unknown, OB_ERR_FORMAT, "= \"qqqq zzzz\": \"qqqq\" is not in model.vocab"},
        {m_merge_result, OB_ERR_FORMAT, "the merged token \"!!\" is not in model.vocab"},
        {m_merge_number, OB_ERR_FORMAT, "must be a string \"a b\" or an array of two strings, found a number"},
        {m_merge_three, OB_ERR_FORMAT, "= \"a b c\" must be two tokens separated by one space"},
        {m_merge_repeat, OB_ERR_FORMAT, "repeats an earlier merge"},
        {m_merges_missing, OB_ERR_FORMAT, "field 'model.merges' must be an array, found nothing"},
        {m_normalizer, OB_ERR_UNSUPPORTED, "field 'normalizer.type' = \"NFC\" is not supported"},
        {m_pre_null, OB_ERR_UNSUPPORTED, "field 'pre_tokenizer' is null"},
        {m_pre_meta, OB_ERR_UNSUPPORTED, "field 'pre_tokenizer.type' = \"Metaspace\" is not supported"},
        {m_pre_flag, OB_ERR_FORMAT, "pre_tokenizer: field 'add_prefix_space' = \"no\" must be true or false, found a string"},
        {m_pre_no_prefix, OB_ERR_FORMAT, "field 'pre_tokenizer.add_prefix_space' is missing"},
        {m_decoder, OB_ERR_UNSUPPORTED, "field 'decoder.type' = \"WordPiece\""},
        {m_added_object, OB_ERR_FORMAT, "field 'added_tokens' must be an array, found an object"},
        {m_added_clash, OB_ERR_FORMAT, "added_tokens[0]: id 3 is \"$\" in model.vocab but the added token's content"},
        {m_added_lstrip, OB_ERR_UNSUPPORTED, "added_tokens[0] (\"<|endoftext|>\"): field 'lstrip' = true"},
        {m_added_content, OB_ERR_FORMAT, "added_tokens[0]: field 'content' is missing"},
        {m_dropout, OB_ERR_UNSUPPORTED, "field 'model.dropout' must be null or 0"},
        {m_byte_fallback, OB_ERR_UNSUPPORTED, "field 'model.byte_fallback' = true"},
    };
    ob_tokenizer *tok = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *copy = cJSON_Duplicate(valid, true);
        cases[i].mutate(copy);
        char *text = cJSON_PrintUnformatted(copy);
        char *path = tu_write_text(dir, "bad.json", text);
        ob_status st = ob_tokenizer_load(path, &tok);
        if (st != cases[i].code || !strstr(ob_last_error(), cases[i].needle) || !strstr(ob_last_error(), "bad.json"))
            fail_msg("case %zu: got %s '%s', wanted %s '%s'", i, ob_status_name(st), ob_last_error(),
                     ob_status_name(cases[i].code), cases[i].needle);
        assert_null(tok);
        /* The same text from memory names the given source. */
        assert_int_equal(ob_tokenizer_parse_json(text, strlen(text), "mem.json", &tok), cases[i].code);
        assert_non_null(strstr(ob_last_error(), "mem.json"));
        free(path);
        cJSON_free(text);
        cJSON_Delete(copy);
    }
    /* The unmodified tree loads. */
    char *text = cJSON_PrintUnformatted(valid);
    assert_ok(ob_tokenizer_parse_json(text, strlen(text), "ok.json", &tok));
    ob_tokenizer_free(tok);

    /* Files that are not tokenizers at all. */
    char *trunc = tu_write_file(dir, "truncated.json", text, strlen(text) / 2);
    assert_fails_with(ob_tokenizer_load(trunc, &tok), OB_ERR_FORMAT, "truncated.json: invalid JSON");
    char *empty = tu_write_text(dir, "empty.json", "");
    assert_fails_with(ob_tokenizer_load(empty, &tok), OB_ERR_FORMAT, "empty.json: file is empty");
    char *binary = tu_write_file(dir, "binary.json", "{\"a\0", 4);
    assert_fails_with(ob_tokenizer_load(binary, &tok), OB_ERR_FORMAT, "binary.json: binary file (NUL byte at offset 3)");
    char *missing = ob_path_join(dir, "nope.json");
    assert_fails_with(ob_tokenizer_load(missing, &tok), OB_ERR_IO, "nope.json: cannot open");
    char *sub = ob_path_join(dir, "sub");
    assert_ok(ob_mkdirs(sub));
    assert_fails_with(ob_tokenizer_load(sub, &tok), OB_ERR_NOT_FOUND, "neither tokenizer.json nor vocab.json");
    char *latin1 = tu_write_text(dir, "latin1.json", "{\"model\": \"caf\xe9\"}");
    assert_fails_with(ob_tokenizer_load(latin1, &tok), OB_ERR_FORMAT, "latin1.json: invalid JSON");

    /* vocab.json + merges.txt: errors name the file and the line. */
    cJSON *vocab = cJSON_GetObjectItem(model_of(valid), "vocab");
    char *vtext = cJSON_PrintUnformatted(vocab);
    char *vpath = tu_write_text(dir, "vocab.json", vtext);
    char lines[256];
    snprintf(lines, sizeof lines, "#version: 0.2\n%s\nqqq e\n",
             cJSON_GetArrayItem(cJSON_GetObjectItem(model_of(valid), "merges"), 0)->valuestring);
    char *mpath = tu_write_text(dir, "merges.txt", lines);
    assert_fails_with(ob_tokenizer_load_vocab_merges(vpath, mpath, &tok), OB_ERR_FORMAT,
                      "merges.txt: line 3 = \"qqq e\": \"qqq\" is not in");
    char *mpath2 = tu_write_text(dir, "merges.txt", "t h x\n");
    assert_fails_with(ob_tokenizer_load_vocab_merges(vpath, mpath2, &tok), OB_ERR_FORMAT,
                      "merges.txt: line 1 = \"t h x\" must be two tokens");
    char *arr = tu_write_text(dir, "vocab2.json", "[1, 2]");
    assert_fails_with(ob_tokenizer_load_vocab_merges(arr, mpath2, &tok), OB_ERR_FORMAT,
                      "vocab2.json: expected a JSON object of token -> id, found an array");

    free(vtext);
    free(vpath);
    free(mpath);
    free(mpath2);
    free(arr);
    free(latin1);
    free(sub);
    free(missing);
    free(binary);
    free(empty);
    free(trunc);
    cJSON_free(text);
    cJSON_Delete(valid);
    tu_remove_tree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_agree),       cmocka_unit_test(test_decode_inverts_encode),
        cmocka_unit_test(test_parallel_equals_serial), cmocka_unit_test(test_long_pieces),
        cmocka_unit_test(test_edge_cases),          cmocka_unit_test(test_save_reload),
        cmocka_unit_test(test_train),               cmocka_unit_test(test_malformed_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
