/* The data module: shard round trips (also against an independent numpy
 * reader/writer), header validation, TKN2, multi-shard datasets, random and
 * sequential windows, rank sharding, cursors, and the document reader. Token
 * values come from a fresh seed each run (printed, to replay a failure). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/documents.h"
#include "onebit/data.h"
#include "onebit/json.h"
#include "test_util.h"

static uint64_t fresh_seed(void) {
    return tu_seed("test_data");
}

static int32_t *random_ids(ob_rng *rng, size_t n, uint32_t below) {
    int32_t *ids = calloc(n + 1, sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)ob_rng_below(rng, below);
    return ids;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A shard's bytes built by hand (not through the writer). */
static uint8_t *shard_bytes(int32_t magic, int32_t version, int32_t count, size_t tokens, size_t itemsize,
                            size_t *size) {
    *size = OB_SHARD_HEADER_BYTES + tokens * itemsize;
    uint8_t *b = calloc(1, *size);
    put_u32(b, (uint32_t)magic);
    put_u32(b + 4, (uint32_t)version);
    put_u32(b + 8, (uint32_t)count);
    for (size_t i = 0; i < tokens * itemsize; i++)
        b[OB_SHARD_HEADER_BYTES + i] = (uint8_t)(i * 7);
    return b;
}

/* ---- shards ------------------------------------------------------------------------- */

static void check_roundtrip(ob_token_dtype dtype, uint32_t below) {
    ob_rng rng;
    ob_rng_seed(&rng, fresh_seed());
    char *dir = tu_make_temp_dir();
    size_t n = 1000 + ob_rng_below(&rng, 4000);
    int32_t *ids = random_ids(&rng, n, below);
    char *one = ob_path_join(dir, "one.bin"), *pieces = ob_path_join(dir, "pieces.bin");
    assert_ok(ob_shard_write(one, dtype, ids, n));
    /* The same tokens appended in random-sized chunks give the same file. */
    ob_shard_writer *w;
    assert_ok(ob_shard_writer_open(pieces, dtype, &w));
    for (size_t done = 0; done < n;) {
        size_t k = 1 + ob_rng_below(&rng, 700);
        if (k > n - done)
            k = n - done;
        assert_ok(ob_shard_writer_append(w, ids + done, k));
        done += k;
    }
    assert_int_equal(ob_shard_writer_count(w), n);
    assert_ok(ob_shard_writer_commit(w));
    char *a, *b;
    size_t na, nb;
    assert_ok(ob_read_file(one, &a, &na));
    assert_ok(ob_read_file(pieces, &b, &nb));
    assert_int_equal(na, OB_SHARD_HEADER_BYTES + n * (size_t)dtype);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    ob_token_view view;
    assert_ok(ob_shard_parse(a, na, one, &view));
    assert_int_equal(view.dtype, dtype);
    assert_int_equal(view.count, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ob_token_view_get(&view, i), (uint32_t)ids[i]);
    free(a);
    free(b);
    free(ids);
    free(one);
    free(pieces);
    tu_remove_tree(dir);
    free(dir);
}

static void test_shard_roundtrip_u16(void **state) {
    (void)state;
    check_roundtrip(OB_TOKENS_U16, 65536);
}

static void test_shard_roundtrip_u32(void **state) {
    (void)state;
    check_roundtrip(OB_TOKENS_U32, 1u << 31);
}

/* Shards written by numpy the way llm.c writes them read back the same, and
 * numpy reads ours. */
static void test_shard_numpy_interop(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, fresh_seed());
    char *dir = tu_make_temp_dir();
    const char *src = getenv("ONEBIT_SOURCE_DIR");
    const char *dtypes[] = {"u16", "u32"};
    for (int d = 0; d < 2; d++) {
        char *path = ob_path_join(dir, "py.bin"), cmd[8192], *out = NULL;
        size_t count = 200 + ob_rng_below(&rng, 300);
        snprintf(cmd, sizeof cmd, "%s %s/tests/ref/shard_ref.py write %s %s %zu %llu", tu_python(), src, path,
                 dtypes[d], count, (unsigned long long)ob_rng_u32(&rng));
        assert_int_equal(tu_run(cmd, &out), 0);
        ob_dataset *ds;
        assert_ok(ob_dataset_open((const char *const *)&path, 1, &ds));
        assert_int_equal(ob_dataset_num_tokens(ds), count);
        int32_t *got = malloc(count * sizeof *got);
        assert_ok(ob_dataset_read(ds, 0, count, got));
        char *p = out;
        for (size_t i = 0; i < count; i++)
            assert_int_equal(strtoll(p, &p, 10), got[i]);
        free(got);
        free(out);
        ob_dataset_free(ds);

        int32_t *ids = random_ids(&rng, count, d == 0 ? 65536 : 1u << 31);
        assert_ok(ob_shard_write(path, d == 0 ? OB_TOKENS_U16 : OB_TOKENS_U32, ids, count));
        snprintf(cmd, sizeof cmd, "%s %s/tests/ref/shard_ref.py read %s", tu_python(), src, path);
        assert_int_equal(tu_run(cmd, &out), 0);
        p = out;
        assert_int_equal(strtol(p, &p, 10), d == 0 ? OB_SHARD_MAGIC_U16 : OB_SHARD_MAGIC_U32);
        assert_int_equal(strtol(p, &p, 10), d == 0 ? OB_SHARD_VERSION_U16 : OB_SHARD_VERSION_U32);
        assert_int_equal(strtol(p, &p, 10), count);
        for (size_t i = 0; i < count; i++)
            assert_int_equal(strtoll(p, &p, 10), ids[i]);
        free(out);
        free(ids);
        free(path);
    }
    tu_remove_tree(dir);
    free(dir);
}

static void test_shard_header_errors(void **state) {
    (void)state;
    ob_token_view v;
    size_t n;
    uint8_t *b = shard_bytes(12345, 1, 10, 10, 2, &n);
    assert_fails_with(ob_shard_parse(b, n, "x.bin", &v), OB_ERR_FORMAT, "x.bin: magic 12345");
    free(b);
    b = shard_bytes(OB_SHARD_MAGIC_U16, 2, 10, 10, 2, &n);
    assert_fails_with(ob_shard_parse(b, n, "x.bin", &v), OB_ERR_FORMAT, "version 2");
    free(b);
    b = shard_bytes(OB_SHARD_MAGIC_U32, 1, 10, 10, 4, &n);
    assert_fails_with(ob_shard_parse(b, n, "x.bin", &v), OB_ERR_FORMAT, "version 1");
    free(b);
    b = shard_bytes(OB_SHARD_MAGIC_U16, 1, 20, 10, 2, &n);
    assert_fails_with(ob_shard_parse(b, n, "x.bin", &v), OB_ERR_FORMAT, "truncated: the header's token count 20");
    free(b);
    b = shard_bytes(OB_SHARD_MAGIC_U32, 7, 10, 11, 4, &n);
    assert_fails_with(ob_shard_parse(b, n, "x.bin", &v), OB_ERR_FORMAT, "needs exactly 1064");
    free(b);
    b = shard_bytes(OB_SHARD_MAGIC_U16, 1, -3, 0, 2, &n);
    assert_fails_with(ob_shard_parse(b, n, "x.bin", &v), OB_ERR_FORMAT, "negative token count -3");
    assert_fails_with(ob_shard_parse(b, 100, "x.bin", &v), OB_ERR_FORMAT, "100 bytes, shorter");
    memcpy(b, "TKN2", 4);
    assert_fails_with(ob_shard_parse(b, n, "x.bin", &v), OB_ERR_FORMAT, "TKN2");
    free(b);
    b = shard_bytes(OB_SHARD_MAGIC_U32, 7, 3, 3, 4, &n);
    assert_ok(ob_shard_parse(b, n, "x.bin", &v));
    assert_int_equal(v.count, 3);
    free(b);

    /* Through a file, the message names the file. */
    char *dir = tu_make_temp_dir();
    b = shard_bytes(OB_SHARD_MAGIC_U16, 1, 5000, 10, 2, &n);
    char *path = tu_write_file(dir, "cut.bin", b, n);
    ob_dataset *ds;
    assert_fails_with(ob_dataset_open((const char *const *)&path, 1, &ds), OB_ERR_FORMAT, path);
    assert_non_null(strstr(ob_last_error(), "5000"));
    free(path);
    free(b);
    path = ob_path_join(dir, "missing.bin");
    assert_fails_with(ob_dataset_open((const char *const *)&path, 1, &ds), OB_ERR_IO, path);
    free(path);
    tu_remove_tree(dir);
    free(dir);
}

static void test_writer_rejects_ids(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    char *path = ob_path_join(dir, "w.bin");
    int32_t ids[3] = {1, 70000, 2};
    assert_fails_with(ob_shard_write(path, OB_TOKENS_U16, ids, 3), OB_ERR_INVALID_ARG, "70000");
    assert_non_null(strstr(ob_last_error(), path));
    assert_false(ob_path_exists(path)); /* nothing half-written is left */
    ids[1] = -1;
    assert_fails_with(ob_shard_write(path, OB_TOKENS_U32, ids, 3), OB_ERR_INVALID_ARG, "-1");
    ids[1] = 70000;
    assert_ok(ob_shard_write(path, OB_TOKENS_U32, ids, 3));
    assert_int_equal(ob_token_dtype_for_vocab(50257), OB_TOKENS_U16);
    assert_int_equal(ob_token_dtype_for_vocab(65536), OB_TOKENS_U16);
    assert_int_equal(ob_token_dtype_for_vocab(65537), OB_TOKENS_U32);
    free(path);
    tu_remove_tree(dir);
    free(dir);
}

static uint8_t *tkn2_bytes(const int32_t *ids, uint64_t header_count, size_t n, size_t *size) {
    *size = OB_TKN2_HEADER_BYTES + n * 4;
    uint8_t *b = calloc(1, *size);
    memcpy(b, "TKN2", 4);
    put_u32(b + 4, (uint32_t)header_count);
    put_u32(b + 8, (uint32_t)(header_count >> 32));
    for (size_t i = 0; i < n; i++)
        put_u32(b + OB_TKN2_HEADER_BYTES + 4 * i, (uint32_t)ids[i]);
    return b;
}

static void test_tkn2(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, fresh_seed());
    size_t n = 100 + ob_rng_below(&rng, 1000), size;
    int32_t *ids = random_ids(&rng, n, 1u << 31);
    uint8_t *b = tkn2_bytes(ids, n, n, &size);
    ob_token_view v;
    assert_ok(ob_tkn2_parse(b, size, "t.tokens", &v));
    assert_int_equal(v.count, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ob_token_view_get(&v, i), (uint32_t)ids[i]);
    assert_fails_with(ob_tkn2_parse(b, size - 1, "t.tokens", &v), OB_ERR_FORMAT, "truncated");
    assert_fails_with(ob_tkn2_parse(b, 7, "t.tokens", &v), OB_ERR_FORMAT, "t.tokens: 7 bytes");
    free(b);
    b = tkn2_bytes(ids, (uint64_t)1 << 62, n, &size);
    assert_fails_with(ob_tkn2_parse(b, size, "t.tokens", &v), OB_ERR_FORMAT, "4611686018427387904");
    free(b);
    b = tkn2_bytes(ids, n - 1, n, &size);
    assert_fails_with(ob_tkn2_parse(b, size, "t.tokens", &v), OB_ERR_FORMAT, "needs exactly");
    b[3] = '3';
    assert_fails_with(ob_tkn2_parse(b, size, "t.tokens", &v), OB_ERR_FORMAT, "is not \"TKN2\"");
    free(b);
    free(ids);
}

/* ---- datasets ------------------------------------------------------------------------- */

typedef struct fixture {
    char *dir;
    int32_t *tokens; /* all shards of prefix "a", split "train", concatenated */
    size_t count;
    ob_dataset *ds;
} fixture;

/* Shards a_train_000000..4 with random lengths (empty ones in the middle and
 * at the end, one uint32), plus decoys that must not join the dataset. */
static void make_fixture(fixture *f, ob_rng *rng, uint32_t below) {
    memset(f, 0, sizeof *f);
    f->dir = tu_make_temp_dir();
    size_t lengths[5] = {300 + ob_rng_below(rng, 900), 0, 1 + ob_rng_below(rng, 40), 300 + ob_rng_below(rng, 900), 0};
    f->count = lengths[0] + lengths[1] + lengths[2] + lengths[3];
    f->tokens = random_ids(rng, f->count, below);
    size_t at = 0;
    for (int i = 0; i < 5; i++) {
        char name[64];
        snprintf(name, sizeof name, "a_train_%06d.bin", i);
        char *path = ob_path_join(f->dir, name);
        assert_ok(ob_shard_write(path, i == 3 ? OB_TOKENS_U32 : OB_TOKENS_U16, f->tokens + at, lengths[i]));
        at += lengths[i];
        free(path);
    }
    const char *decoys[] = {"a_val_000000.bin", "b_train_000000.bin", "a_train_x.bin"};
    for (int i = 0; i < 3; i++) {
        char *path = ob_path_join(f->dir, decoys[i]);
        assert_ok(ob_shard_write(path, OB_TOKENS_U16, f->tokens, 5));
        free(path);
    }
    char *prefix = ob_path_join(f->dir, "a");
    assert_ok(ob_dataset_open_split(prefix, "train", &f->ds));
    free(prefix);
}

static void free_fixture(fixture *f) {
    ob_dataset_free(f->ds);
    free(f->tokens);
    tu_remove_tree(f->dir);
    free(f->dir);
}

static void test_dataset_multi_shard(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, fresh_seed());
    fixture f;
    make_fixture(&f, &rng, 65536);
    assert_int_equal(ob_dataset_num_shards(f.ds), 5);
    assert_int_equal(ob_dataset_num_tokens(f.ds), f.count);
    assert_non_null(strstr(ob_dataset_shard_path(f.ds, 3), "a_train_000003.bin"));
    /* Reads crossing shard boundaries (and the empty shard) match. */
    int32_t *got = malloc(f.count * sizeof *got);
    assert_ok(ob_dataset_read(f.ds, 0, f.count, got));
    assert_memory_equal(got, f.tokens, f.count * sizeof *got);
    for (int k = 0; k < 200; k++) {
        uint64_t start = ob_rng_below(&rng, f.count);
        size_t n = (size_t)ob_rng_below(&rng, f.count - start + 1);
        assert_ok(ob_dataset_read(f.ds, start, n, got));
        assert_memory_equal(got, f.tokens + start, n * sizeof *got);
    }
    assert_fails_with(ob_dataset_read(f.ds, f.count - 2, 3, got), OB_ERR_INVALID_ARG, "past");
    /* A directory takes every train shard of every prefix. */
    ob_dataset *all;
    assert_ok(ob_dataset_open_split(f.dir, "train", &all));
    assert_int_equal(ob_dataset_num_shards(all), 6);
    assert_non_null(strstr(ob_dataset_shard_path(all, 5), "b_train_000000.bin"));
    ob_dataset_free(all);
    char *val = ob_path_join(f.dir, "a");
    assert_ok(ob_dataset_open_split(val, "val", &all));
    assert_int_equal(ob_dataset_num_tokens(all), 5);
    ob_dataset_free(all);
    free(val);
    char *none = ob_path_join(f.dir, "c");
    assert_fails_with(ob_dataset_open_split(none, "train", &all), OB_ERR_NOT_FOUND, "no train shards");
    free(none);
    /* Tokens outside the vocabulary are reported with shard, position and value. */
    int32_t max_id = 0;
    size_t max_at = 0;
    for (size_t i = 0; i < f.count; i++)
        if (f.tokens[i] > max_id) {
            max_id = f.tokens[i];
            max_at = i;
        }
    ob_dataset_set_vocab_size(f.ds, max_id);
    char value[32];
    snprintf(value, sizeof value, "= %d", (int)max_id);
    assert_fails_with(ob_dataset_read(f.ds, 0, f.count, got), OB_ERR_FORMAT, value);
    assert_non_null(strstr(ob_last_error(), "a_train_00000"));
    ob_dataset_set_vocab_size(f.ds, max_id + 1);
    assert_ok(ob_dataset_read(f.ds, max_at, 1, got));
    free(got);
    free_fixture(&f);
}

/* ---- random and sequential windows -------------------------------------------------- */

/* The start of the window a row holds, or -1 when it is no window of the data. */
static int64_t find_window(const fixture *f, const int32_t *in, const int32_t *tg, int T) {
    for (size_t s = 0; s + (size_t)T < f->count; s++)
        if (memcmp(f->tokens + s, in, (size_t)T * sizeof *in) == 0 &&
            memcmp(f->tokens + s + 1, tg, (size_t)T * sizeof *tg) == 0)
            return (int64_t)s;
    return -1;
}

static void test_random_windows(void **state) {
    (void)state;
    ob_rng rng;
    uint64_t seed = fresh_seed();
    ob_rng_seed(&rng, seed);
    fixture f;
    make_fixture(&f, &rng, 65536);
    const int B = 4, T = 16, steps = 60;
    ob_batch_source *a, *b, *c;
    assert_ok(ob_batch_source_random(f.ds, seed, 0, 1, &a));
    assert_ok(ob_batch_source_random(f.ds, seed, 0, 1, &b));
    assert_ok(ob_batch_source_random(f.ds, seed + 1, 0, 1, &c));
    int32_t in[4 * 16], tg[4 * 16], in2[4 * 16], tg2[4 * 16];
    int64_t lowest = (int64_t)f.count, highest = -1;
    bool differs = false;
    for (int step = 0; step < steps; step++) {
        ob_batch_rows info;
        assert_ok(ob_batch_source_next(a, B, T, in, tg, &info));
        assert_int_equal(info.rows, B);
        assert_false(info.end);
        assert_ok(ob_batch_source_next(b, B, T, in2, tg2, NULL));
        assert_memory_equal(in, in2, sizeof in);
        assert_memory_equal(tg, tg2, sizeof tg);
        assert_ok(ob_batch_source_next(c, B, T, in2, tg2, NULL));
        differs |= memcmp(in, in2, sizeof in) != 0;
        for (int r = 0; r < B; r++) {
            int64_t s = find_window(&f, in + r * T, tg + r * T, T);
            assert_true(s >= 0 && s + T < (int64_t)f.count);
            lowest = s < lowest ? s : lowest;
            highest = s > highest ? s : highest;
        }
    }
    assert_true(differs);
    /* 240 uniform draws reach both ends of the data. */
    assert_true(lowest < (int64_t)f.count / 10);
    assert_true(highest > (int64_t)f.count * 9 / 10 - T);
    double epoch = ob_batch_source_epoch(a);
    assert_true(fabs(epoch * (double)f.count - (double)(steps * B * T)) < 1e-6);
    assert_non_null(strstr(ob_batch_source_describe(a), "random windows"));
    /* A window longer than the data is an error, not a hang. */
    int32_t *big = malloc((f.count + 1) * sizeof *big);
    assert_fails_with(ob_batch_source_next(a, 1, (int)f.count, big, big, NULL), OB_ERR_INVALID_ARG, "fewer than one");
    free(big);
    ob_batch_source_free(a);
    ob_batch_source_free(b);
    ob_batch_source_free(c);
    free_fixture(&f);
}

/* One pass of sequential windows: row k holds tokens [kT, kT + T], so targets
 * cover tokens 1 .. W*T once each, W = floor((N - 1) / T). */
static void test_sequential_covers_once(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, fresh_seed());
    fixture f;
    make_fixture(&f, &rng, 65536);
    const int B = 3, T = 7 + (int)ob_rng_below(&rng, 10);
    ob_batch_source *s;
    assert_ok(ob_batch_source_sequential(f.ds, 0, 1, &s));
    int32_t *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    assert_fails_with(ob_batch_source_next(s, B, T, in, tg, NULL), OB_ERR_INVALID_ARG, "ob_batch_rows");
    const size_t W = (f.count - 1) / (size_t)T;
    for (int pass = 0; pass < 2; pass++) {
        size_t window = 0;
        for (;;) {
            ob_batch_rows info;
            assert_ok(ob_batch_source_next(s, B, T, in, tg, &info));
            if (info.end)
                break;
            assert_true(info.rows == B || window + (size_t)info.rows == W);
            for (int r = 0; r < info.rows; r++, window++) {
                assert_memory_equal(in + r * T, f.tokens + window * T, (size_t)T * sizeof *in);
                assert_memory_equal(tg + r * T, f.tokens + window * T + 1, (size_t)T * sizeof *tg);
            }
        }
        assert_int_equal(window, W);
        assert_true(ob_batch_source_epoch(s) == (double)(pass + 1));
    }
    free(in);
    free(tg);
    ob_batch_source_free(s);
    free_fixture(&f);
}

/* With world ranks, rank r gets rows [rB, rB + B) of the batch one process with
 * B * world rows gets: disjoint, and together the same data. */
static void test_rank_sharding(void **state) {
    (void)state;
    ob_rng rng;
    uint64_t seed = fresh_seed();
    ob_rng_seed(&rng, seed);
    fixture f;
    make_fixture(&f, &rng, 65536);
    enum { B = 2, T = 9, WORLD = 3 };
    int32_t whole_in[WORLD * B * T], whole_tg[WORLD * B * T], in[B * T], tg[B * T];
    for (int kind = 0; kind < 2; kind++) {
        ob_batch_source *whole, *ranks[WORLD];
        if (kind == 0)
            assert_ok(ob_batch_source_random(f.ds, seed, 0, 1, &whole));
        else
            assert_ok(ob_batch_source_sequential(f.ds, 0, 1, &whole));
        for (int r = 0; r < WORLD; r++) {
            if (kind == 0)
                assert_ok(ob_batch_source_random(f.ds, seed, r, WORLD, &ranks[r]));
            else
                assert_ok(ob_batch_source_sequential(f.ds, r, WORLD, &ranks[r]));
        }
        ob_batch_source *bad;
        assert_fails_with(ob_batch_source_random(f.ds, seed, 3, 3, &bad), OB_ERR_INVALID_ARG, "rank 3");
        size_t covered = 0;
        for (int step = 0; step < 1000; step++) {
            ob_batch_rows all, mine;
            assert_ok(ob_batch_source_next(whole, WORLD * B, T, whole_in, whole_tg, &all));
            int total = 0;
            for (int r = 0; r < WORLD; r++) {
                assert_ok(ob_batch_source_next(ranks[r], B, T, in, tg, &mine));
                assert_int_equal(mine.end, all.end);
                assert_int_equal(mine.global_rows, all.rows);
                assert_memory_equal(in, whole_in + r * B * T, (size_t)mine.rows * T * sizeof *in);
                assert_memory_equal(tg, whole_tg + r * B * T, (size_t)mine.rows * T * sizeof *tg);
                total += mine.rows;
            }
            assert_int_equal(total, all.rows);
            covered += (size_t)total;
            if (kind == 0 && step == 20)
                break;
            if (all.end)
                break;
        }
        if (kind == 1)
            assert_int_equal(covered, (f.count - 1) / T);
        ob_batch_source_free(whole);
        for (int r = 0; r < WORLD; r++)
            ob_batch_source_free(ranks[r]);
    }
    free_fixture(&f);
}

/* Draw k batches, save, draw m; a fresh source restored from the cursor draws
 * the same m. */
static void check_cursor(ob_batch_source *first, ob_batch_source *fresh, int k, int m, int B, int T) {
    int32_t *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    int32_t *want = malloc((size_t)m * 2 * B * T * sizeof *want);
    ob_batch_rows rows[64], again;
    assert_true(m <= 64);
    for (int i = 0; i < k; i++)
        assert_ok(ob_batch_source_next(first, B, T, in, tg, &again));
    char *cursor;
    assert_ok(ob_batch_source_save(first, &cursor));
    for (int i = 0; i < m; i++)
        assert_ok(ob_batch_source_next(first, B, T, want + (size_t)i * 2 * B * T, want + (size_t)(2 * i + 1) * B * T,
                                       &rows[i]));
    assert_ok(ob_batch_source_restore(fresh, cursor));
    for (int i = 0; i < m; i++) {
        assert_ok(ob_batch_source_next(fresh, B, T, in, tg, &again));
        assert_int_equal(again.rows, rows[i].rows);
        assert_int_equal(again.end, rows[i].end);
        assert_memory_equal(in, want + (size_t)i * 2 * B * T, (size_t)again.rows * T * sizeof *in);
        assert_memory_equal(tg, want + (size_t)(2 * i + 1) * B * T, (size_t)again.rows * T * sizeof *tg);
    }
    assert_true(ob_batch_source_epoch(first) == ob_batch_source_epoch(fresh));
    free(cursor);
    free(want);
    free(in);
    free(tg);
}

static void test_cursor_restore(void **state) {
    (void)state;
    ob_rng rng;
    uint64_t seed = fresh_seed();
    ob_rng_seed(&rng, seed);
    fixture f;
    make_fixture(&f, &rng, 65536);
    ob_dataset *again;
    char *prefix = ob_path_join(f.dir, "a");
    assert_ok(ob_dataset_open_split(prefix, "train", &again));
    free(prefix);
    ob_batch_source *a, *b;
    assert_ok(ob_batch_source_random(f.ds, seed, 0, 1, &a));
    assert_ok(ob_batch_source_random(again, seed ^ 0x5555, 0, 1, &b)); /* the cursor, not the seed, decides */
    check_cursor(a, b, 1 + (int)ob_rng_below(&rng, 10), 1 + (int)ob_rng_below(&rng, 20), 3, 11);
    ob_batch_source_free(a);
    ob_batch_source_free(b);
    /* Sequential, with the saved point placed so the restored run crosses the end of a pass. */
    for (int k = 0; k < 40; k += 7) {
        assert_ok(ob_batch_source_sequential(f.ds, 1, 2, &a));
        assert_ok(ob_batch_source_sequential(again, 1, 2, &b));
        check_cursor(a, b, k, 30, 4, 8);
        ob_batch_source_free(a);
        ob_batch_source_free(b);
    }
    ob_dataset_free(again);
    /* A cursor for other data, or of another kind, or damaged, is refused. */
    ob_dataset *other;
    char *path = ob_path_join(f.dir, "b_train_000000.bin");
    assert_ok(ob_dataset_open((const char *const *)&path, 1, &other));
    free(path);
    assert_ok(ob_batch_source_random(f.ds, seed, 0, 1, &a));
    assert_ok(ob_batch_source_random(other, seed, 0, 1, &b));
    char *cursor;
    assert_ok(ob_batch_source_save(a, &cursor));
    assert_fails_with(ob_batch_source_restore(b, cursor), OB_ERR_FORMAT, "saved over");
    ob_batch_source *seq;
    assert_ok(ob_batch_source_sequential(f.ds, 0, 1, &seq));
    assert_fails_with(ob_batch_source_restore(seq, cursor), OB_ERR_FORMAT, "'kind' = 'random'");
    char *hex = strstr(cursor, "0x");
    hex[5] = 'z';
    assert_fails_with(ob_batch_source_restore(a, cursor), OB_ERR_FORMAT, "rng[0]");
    assert_fails_with(ob_batch_source_restore(a, "{\"kind\": \"random\""), OB_ERR_FORMAT, "batch cursor");
    free(cursor);
    ob_batch_source_free(seq);
    ob_batch_source_free(a);
    ob_batch_source_free(b);
    ob_dataset_free(other);
    free_fixture(&f);
}

/* ---- documents ---------------------------------------------------------------------- */

typedef struct doc_list {
    char **texts;
    int count;
} doc_list;

/* Reads every document of a file (pieces joined), checking piece order. */
static ob_status read_docs(const char *path, ob_input_format format, ob_doc_split split, const char *field,
                           doc_list *out) {
    memset(out, 0, sizeof *out);
    ob_input_list list = {0};
    ob_status st = ob_inputs_collect(&list, &path, 1, format, false);
    if (st)
        return st;
    ob_doc_reader r;
    st = ob_doc_reader_open(&r, &list.files[0], split, field);
    char *doc = NULL;
    size_t len = 0;
    for (bool have = true; st == OB_OK && have;) {
        ob_piece p;
        st = ob_doc_reader_next(&r, &p, &have);
        if (st || !have)
            break;
        assert_int_equal(p.first, doc == NULL);
        assert_int_equal(p.pos.piece_offset, len);
        doc = realloc(doc, len + p.len + 1);
        memcpy(doc + len, p.text, p.len);
        len += p.len;
        doc[len] = '\0';
        free(p.release);
        if (p.last) {
            out->texts = realloc(out->texts, (size_t)(out->count + 1) * sizeof *out->texts);
            out->texts[out->count++] = doc;
            doc = NULL;
            len = 0;
        }
    }
    free(doc);
    if (list.count && r.map.data)
        ob_doc_reader_close(&r);
    ob_inputs_free(&list);
    return st;
}

static void free_docs(doc_list *d) {
    for (int i = 0; i < d->count; i++)
        free(d->texts[i]);
    free(d->texts);
}

static void test_documents(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    doc_list d;
    char *p = tu_write_text(dir, "stories.txt", "\n\nOne upon.\nStill one.\n\n \t\nTwo.\n\n\n\nThree  \n");
    assert_ok(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_BLANK_LINE, NULL, &d));
    assert_int_equal(d.count, 3);
    assert_string_equal(d.texts[0], "One upon.\nStill one.");
    assert_string_equal(d.texts[1], "Two.");
    assert_string_equal(d.texts[2], "Three");
    free_docs(&d);
    assert_ok(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_FILE, NULL, &d));
    assert_int_equal(d.count, 1);
    assert_string_equal(d.texts[0], "\n\nOne upon.\nStill one.\n\n \t\nTwo.\n\n\n\nThree  \n");
    free_docs(&d);
    free(p);
    p = tu_write_text(dir, "eot.txt", "a b<|endoftext|>\n<|endoftext|>c\n\nd\n<|endoftext|>");
    assert_ok(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_EOT, NULL, &d));
    assert_int_equal(d.count, 2);
    assert_string_equal(d.texts[0], "a b");
    assert_string_equal(d.texts[1], "c\n\nd");
    free_docs(&d);
    free(p);
    p = tu_write_text(dir, "d.jsonl", "{\"text\": \"x\\ny\", \"id\": 1}\n\n{\"body\": \"z\", \"text\": \"\"}\n{\"text\":\"w\"}");
    assert_ok(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_FILE, NULL, &d));
    assert_int_equal(d.count, 2);
    assert_string_equal(d.texts[0], "x\ny");
    assert_string_equal(d.texts[1], "w");
    free_docs(&d);
    assert_fails_with(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_FILE, "body", &d), OB_ERR_FORMAT, "d.jsonl:1: no field \"body\"");
    free_docs(&d);
    free(p);
    p = tu_write_text(dir, "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": 5}\n");
    assert_fails_with(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_FILE, NULL, &d), OB_ERR_FORMAT, "bad.jsonl:2: field \"text\" is a number");
    free_docs(&d);
    free(p);
    p = tu_write_text(dir, "broken.jsonl", "{\"text\": \"ok\"\n");
    assert_fails_with(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_FILE, NULL, &d), OB_ERR_FORMAT, "broken.jsonl:1");
    free_docs(&d);
    free(p);
    /* Binary and bad input. */
    p = tu_write_file(dir, "nul.txt", "text\0more", 9);
    assert_fails_with(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_FILE, NULL, &d), OB_ERR_FORMAT, "NUL byte at offset 4");
    assert_non_null(strstr(ob_last_error(), p));
    free(p);
    char latin[2000];
    memset(latin, 'a', sizeof latin);
    for (int i = 0; i < 100; i++)
        latin[i * 19] = (char)0xE9;
    p = tu_write_file(dir, "latin1.txt", latin, sizeof latin);
    assert_fails_with(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_FILE, NULL, &d), OB_ERR_FORMAT, "not UTF-8");
    free(p);
    latin[19 * 5] = 'a';
    for (int i = 6; i < 100; i++)
        latin[i * 19] = 'a';
    p = tu_write_file(dir, "few.txt", latin, sizeof latin); /* 5 stray bytes: a warning only */
    tu_capture_begin();
    assert_ok(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_FILE, NULL, &d));
    assert_non_null(strstr(tu_captured(), "5 bytes are not valid UTF-8"));
    tu_capture_end();
    free_docs(&d);
    free(p);
    p = tu_write_file(dir, "empty.txt", "", 0);
    assert_fails_with(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_FILE, NULL, &d), OB_ERR_FORMAT, "empty.txt: empty file");
    free(p);
    p = ob_path_join(dir, "absent.txt");
    assert_fails_with(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_FILE, NULL, &d), OB_ERR_NOT_FOUND, "absent.txt");
    free(p);
    p = tu_write_text(dir, "x.tokens", "TKN2........");
    assert_fails_with(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_FILE, NULL, &d), OB_ERR_INVALID_ARG, "TKN2");
    free(p);
    p = ob_path_join(dir, "pipe");
    assert_int_equal(mkfifo(p, 0600), 0);
    assert_fails_with(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_FILE, NULL, &d), OB_ERR_IO, "pipe: not a regular file");
    free(p);
    if (getuid() != 0) {
        p = tu_write_text(dir, "locked.txt", "secret");
        assert_int_equal(chmod(p, 0), 0);
        assert_fails_with(read_docs(p, OB_INPUT_AUTO, OB_DOC_SPLIT_FILE, NULL, &d), OB_ERR_IO, "locked.txt: cannot open");
        free(p);
    }
    tu_remove_tree(dir);
    free(dir);
}

/* Directories: recursive, sorted, hidden entries skipped. */
static void test_input_directories(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    char *sub = ob_path_join(dir, "m"), *hidden = ob_path_join(dir, ".git");
    assert_ok(ob_mkdirs(sub));
    assert_ok(ob_mkdirs(hidden));
    const char *names[] = {"b.txt", "a.jsonl", "m/z.txt", "m/c.tokens", ".git/x.txt", "n.txt"};
    for (int i = 0; i < 6; i++)
        free(tu_write_text(dir, names[i], "TKN2 or not"));
    ob_input_list list = {0};
    assert_ok(ob_inputs_collect(&list, (const char *const *)&dir, 1, OB_INPUT_AUTO, false));
    assert_int_equal(list.count, 5);
    const char *order[] = {"a.jsonl", "b.txt", "m/c.tokens", "m/z.txt", "n.txt"};
    const ob_input_format formats[] = {OB_INPUT_JSONL, OB_INPUT_TKN2, OB_INPUT_TKN2, OB_INPUT_TKN2, OB_INPUT_TKN2};
    for (int i = 0; i < 5; i++) {
        assert_non_null(strstr(list.files[i].path, order[i]));
        assert_int_equal(list.files[i].format, formats[i]); /* "TKN2" magic wins over .txt */
    }
    ob_inputs_free(&list);
    char *empty = ob_path_join(dir, "void");
    assert_ok(ob_mkdirs(empty));
    assert_fails_with(ob_inputs_collect(&list, (const char *const *)&empty, 1, OB_INPUT_AUTO, false),
                      OB_ERR_NOT_FOUND, "no input files");
    ob_inputs_free(&list);
    free(empty);
    free(sub);
    free(hidden);
    tu_remove_tree(dir);
    free(dir);
}

/* A long document comes in pieces cut only at safe points, and the reader can
 * be reopened at any piece. */
static void test_long_document_pieces(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, fresh_seed());
    size_t n = 7 * OB_PIECE_BYTES + ob_rng_below(&rng, OB_PIECE_BYTES);
    char *text = malloc(n);
    const char *words[] = {"alpha", "beta,", "gamma\n", "  ", "\xc3\xa9t\xc3\xa9", "x", "Delta.", "\n\n"};
    for (size_t i = 0; i < n;) {
        const char *w = words[ob_rng_below(&rng, 8)];
        for (; *w && i < n; w++)
            text[i++] = *w;
        if (i < n)
            text[i++] = ' ';
    }
    /* One stretch with no safe point at all: forced cuts, only there. */
    const size_t dash_start = 3 * OB_PIECE_BYTES - 100, dash_end = 5 * OB_PIECE_BYTES + 100;
    memset(text + dash_start, '-', dash_end - dash_start);
    char *dir = tu_make_temp_dir();
    char *path = tu_write_file(dir, "long.txt", text, n);
    ob_input_list list = {0};
    assert_ok(ob_inputs_collect(&list, (const char *const *)&path, 1, OB_INPUT_AUTO, false));
    ob_doc_reader r;
    assert_ok(ob_doc_reader_open(&r, &list.files[0], OB_DOC_SPLIT_FILE, NULL));
    ob_doc_pos pos[64];
    size_t lens[64], at = 0;
    int pieces = 0, unsafe = 0;
    bool have = true;
    while (have) {
        ob_piece p;
        assert_ok(ob_doc_reader_next(&r, &p, &have));
        if (!have)
            break;
        assert_true(p.len <= 2 * OB_PIECE_BYTES);
        assert_ptr_equal(p.text, r.data + at);
        if (!p.last && !p.unsafe_cut) {
            size_t c = at + p.len; /* the byte after the cut */
            bool word = text[c] == ' ' && text[c - 1] != ' ' && text[c + 1] != ' ';
            bool line = text[c - 1] == '\n' && text[c - 2] > ' ' && text[c] > ' ';
            assert_true(word || line);
        }
        if (p.unsafe_cut)
            assert_true(at + p.len > dash_start && at + p.len < dash_end);
        unsafe += p.unsafe_cut;
        pos[pieces] = p.pos;
        lens[pieces++] = p.len;
        at += p.len;
    }
    assert_int_equal(at, n);
    assert_true(unsafe >= 1);
    assert_true(pieces >= 4);
    for (int k = pieces - 1; k >= 0; k--) {
        ob_piece p;
        assert_ok(ob_doc_reader_seek(&r, &pos[k]));
        assert_ok(ob_doc_reader_next(&r, &p, &have));
        assert_true(have);
        assert_int_equal(p.pos.piece_offset, pos[k].piece_offset);
        assert_int_equal(p.len, lens[k]);
    }
    ob_doc_pos bogus = {.doc_offset = 0, .piece_offset = 17};
    assert_fails_with(ob_doc_reader_seek(&r, &bogus), OB_ERR_FORMAT, "no piece starts at byte 17");
    bogus.piece_offset = n + 5; /* past the document: an error, not a hang */
    assert_fails_with(ob_doc_reader_seek(&r, &bogus), OB_ERR_FORMAT, "no piece starts at byte");
    ob_doc_reader_close(&r);
    ob_inputs_free(&list);
    free(path);
    free(text);
    tu_remove_tree(dir);
    free(dir);
}

/* The split rule is a function of the text and the seed, and keeps about the
 * requested fraction. */
static void test_split_rule(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, fresh_seed());
    int val = 0, moved = 0;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        char doc[64];
        int len = snprintf(doc, sizeof doc, "document %llu", (unsigned long long)ob_rng_u64(&rng));
        bool v = ob_split_is_val(doc, (size_t)len, 1337, 0.1);
        assert_int_equal(v, ob_split_is_val(doc, (size_t)len, 1337, 0.1));
        val += v;
        moved += v != ob_split_is_val(doc, (size_t)len, 1338, 0.1);
        assert_false(ob_split_is_val(doc, (size_t)len, 1337, 0.0));
        assert_true(ob_split_is_val(doc, (size_t)len, 1337, 1.0));
    }
    assert_true(abs(val - n / 10) < 300); /* 5 standard deviations */
    assert_true(moved > n / 10);
}


/* ---- streaming text ------------------------------------------------------------------- */

static ob_tokenizer *gpt2(void) {
    char *path = tu_data_path("gpt2/tokenizer.json");
    ob_tokenizer *tok = NULL;
    assert_ok(ob_tokenizer_load(path, &tok));
    free(path);
    return tok;
}

/* Appends window rows to a token sequence: the first window's T + 1 tokens,
 * then T new tokens per window, checking the one-token overlap. */
static void append_windows(ob_tokens *seq, const int32_t *in, const int32_t *tg, int rows, int T) {
    for (int r = 0; r < rows; r++) {
        const int32_t *i = in + (size_t)r * T, *t = tg + (size_t)r * T;
        assert_memory_equal(i + 1, t, (size_t)(T - 1) * sizeof *i);
        if (seq->count == 0)
            assert_ok(ob_tokens_push(seq, i[0]));
        else
            assert_int_equal(i[0], seq->ids[seq->count - 1]);
        for (int k = 0; k < T; k++)
            assert_ok(ob_tokens_push(seq, t[k]));
    }
}

/* Streams a whole pass (non-looping) and returns the tokens the windows cover. */
static void stream_pass(ob_batch_source *s, int B, int T, ob_tokens *seq) {
    int32_t *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    for (;;) {
        ob_batch_rows info;
        assert_ok(ob_batch_source_next(s, B, T, in, tg, &info));
        if (info.end)
            break;
        append_windows(seq, in, tg, info.rows, T);
    }
    free(in);
    free(tg);
}

/* The streamed windows, joined with their one-token overlap, are the whole
 * tokenization (EOS + each file's tokens), less a tail shorter than T. The
 * 1.1 MB TinyShakespeare file is streamed in pieces. */
static void test_stream_is_full_tokenization(void **state) {
    (void)state;
    ob_tokenizer *tok = gpt2();
    char *files[2] = {tu_data_path("tinystories/tinystories_v2_sample.txt"), tu_data_path("tinyshakespeare/input.txt")};
    ob_tokens full = {0};
    for (int i = 0; i < 2; i++) {
        char *text;
        size_t len;
        assert_ok(ob_read_file(files[i], &text, &len));
        assert_ok(ob_tokens_push(&full, ob_tokenizer_eos_id(tok)));
        assert_ok(ob_tokenizer_encode(tok, text, len, false, &full));
        free(text);
    }
    ob_stream_options o = {.inputs = (const char *const *)files, .num_inputs = 2};
    ob_batch_source *s;
    assert_ok(ob_batch_source_stream(&o, tok, 0, 1, &s));
    const int B = 8, T = 97;
    for (int pass = 0; pass < 2; pass++) {
        ob_tokens seq = {0};
        stream_pass(s, B, T, &seq);
        assert_true(seq.count <= full.count && full.count - seq.count < (size_t)T);
        assert_int_equal((seq.count - 1) % T, 0);
        assert_memory_equal(seq.ids, full.ids, seq.count * sizeof *seq.ids);
        ob_tokens_free(&seq);
    }
    assert_true(ob_batch_source_epoch(s) == 2.0);
    ob_batch_source_free(s);
    ob_tokens_free(&full);
    free(files[0]);
    free(files[1]);
    ob_tokenizer_free(tok);
}

/* The stream's train and val documents are exactly the shards onebit tokenize
 * writes for the same inputs and split. */
static void test_stream_matches_tokenize(void **state) {
    (void)state;
    ob_tokenizer *tok = gpt2();
    char *text = tu_data_path("tinyshakespeare/input.txt");
    char *dir = tu_make_temp_dir();
    ob_tokenize_options t;
    ob_tokenize_options_default(&t);
    t.inputs = (const char *const *)&text;
    t.num_inputs = 1;
    t.output_dir = dir;
    t.prefix = "ts";
    t.tokenizer = tok;
    t.doc_split = OB_DOC_SPLIT_BLANK_LINE;
    t.val_fraction = 0.2;
    t.seed = 99;
    t.threads = 2;
    ob_tokenize_stats stats;
    assert_ok(ob_tokenize(&t, &stats));
    const char *splits[2] = {"train", "val"};
    for (int k = 0; k < 2; k++) {
        char *prefix = ob_path_join(dir, "ts");
        ob_dataset *ds;
        assert_ok(ob_dataset_open_split(prefix, splits[k], &ds));
        free(prefix);
        size_t n = (size_t)ob_dataset_num_tokens(ds);
        assert_int_equal(n, k == 0 ? stats.train.tokens : stats.val.tokens);
        int32_t *want = malloc(n * sizeof *want);
        assert_ok(ob_dataset_read(ds, 0, n, want));
        ob_stream_options o = {.inputs = (const char *const *)&text, .num_inputs = 1,
                               .doc_split = OB_DOC_SPLIT_BLANK_LINE, .split = k == 0 ? OB_SPLIT_TRAIN : OB_SPLIT_VAL,
                               .val_fraction = 0.2, .split_seed = 99};
        ob_batch_source *s;
        assert_ok(ob_batch_source_stream(&o, tok, 0, 1, &s));
        ob_tokens seq = {0};
        stream_pass(s, 5, 128, &seq);
        assert_true(n - seq.count < 128);
        assert_memory_equal(seq.ids, want, seq.count * sizeof *want);
        ob_tokens_free(&seq);
        ob_batch_source_free(s);
        ob_dataset_free(ds);
        free(want);
    }
    free(text);
    tu_remove_tree(dir);
    free(dir);
    ob_tokenizer_free(tok);
}

/* Cursor exactness for streams, looping over a small file many times and over
 * a large one that is read in pieces; rank slices as for shards. */
static void test_stream_cursor_and_ranks(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, fresh_seed());
    ob_tokenizer *tok = gpt2();
    char *small = tu_data_path("tinystories/tinystories_v2_sample.txt");
    char *large = tu_data_path("tinyshakespeare/input.txt");
    for (int c = 0; c < 4; c++) {
        ob_stream_options o = {.inputs = (const char *const *)(c < 2 ? &small : &large), .num_inputs = 1,
                               .doc_split = c % 2 ? OB_DOC_SPLIT_EOT : OB_DOC_SPLIT_FILE, .loop = c != 3};
        ob_batch_source *a, *b;
        assert_ok(ob_batch_source_stream(&o, tok, 1, 2, &a));
        assert_ok(ob_batch_source_stream(&o, tok, 1, 2, &b));
        int k = (int)ob_rng_below(&rng, c < 2 ? 40 : 400);
        check_cursor(a, b, k, 1 + (int)ob_rng_below(&rng, 30), 3, 40);
        ob_batch_source_free(a);
        ob_batch_source_free(b);
    }
    /* A cursor from other inputs is refused. */
    ob_stream_options o = {.inputs = (const char *const *)&small, .num_inputs = 1, .loop = true};
    ob_stream_options other = {.inputs = (const char *const *)&large, .num_inputs = 1, .loop = true};
    ob_batch_source *a, *b;
    assert_ok(ob_batch_source_stream(&o, tok, 0, 1, &a));
    assert_ok(ob_batch_source_stream(&other, tok, 0, 1, &b));
    int32_t in[2 * 16], tg[2 * 16];
    assert_ok(ob_batch_source_next(a, 2, 16, in, tg, NULL));
    char *cursor;
    assert_ok(ob_batch_source_save(a, &cursor));
    assert_fails_with(ob_batch_source_restore(b, cursor), OB_ERR_FORMAT, "tinystories_v2_sample.txt");
    ob_batch_source_free(b);
    /* A 'skip' past the piece the cursor names is refused after reading that
     * piece alone (it once tokenized the looping stream until that many tokens
     * were buffered: here, until memory or the test's time ran out). */
    cJSON *json = cJSON_Parse(cursor);
    assert_non_null(json);
    cJSON_SetNumberValue(cJSON_GetObjectItem(json, "skip"), 1e12);
    char *far = cJSON_PrintUnformatted(json);
    assert_ok(ob_batch_source_stream(&o, tok, 0, 1, &b));
    assert_fails_with(ob_batch_source_restore(b, far), OB_ERR_FORMAT, "'skip' = 1000000000000");
    assert_ok(ob_batch_source_restore(b, cursor));
    cJSON_Delete(json);
    free(far);
    free(cursor);
    ob_batch_source_free(b);
    /* World 3: each rank's rows are its slice of the single-process batch. */
    enum { B = 2, T = 24, WORLD = 3 };
    ob_batch_source *ranks[WORLD];
    ob_batch_source_free(a);
    assert_ok(ob_batch_source_stream(&o, tok, 0, 1, &a));
    for (int r = 0; r < WORLD; r++)
        assert_ok(ob_batch_source_stream(&o, tok, r, WORLD, &ranks[r]));
    int32_t whole_in[WORLD * B * T], whole_tg[WORLD * B * T], rin[B * T], rtg[B * T];
    for (int step = 0; step < 30; step++) {
        ob_batch_rows all;
        assert_ok(ob_batch_source_next(a, WORLD * B, T, whole_in, whole_tg, &all));
        for (int r = 0; r < WORLD; r++) {
            assert_ok(ob_batch_source_next(ranks[r], B, T, rin, rtg, NULL));
            assert_memory_equal(rin, whole_in + r * B * T, sizeof rin);
            assert_memory_equal(rtg, whole_tg + r * B * T, sizeof rtg);
        }
    }
    for (int r = 0; r < WORLD; r++)
        ob_batch_source_free(ranks[r]);
    ob_batch_source_free(a);
    /* Nothing to stream is an error, not a hang. */
    o.split = OB_SPLIT_VAL;
    o.val_fraction = 0;
    assert_ok(ob_batch_source_stream(&o, tok, 0, 1, &a));
    assert_fails_with(ob_batch_source_next(a, 2, 16, in, tg, NULL), OB_ERR_INVALID_ARG, "no validation documents");
    ob_batch_source_free(a);
    free(small);
    free(large);
    ob_tokenizer_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_roundtrip_u16), cmocka_unit_test(test_shard_roundtrip_u32),
        cmocka_unit_test(test_shard_numpy_interop), cmocka_unit_test(test_shard_header_errors),
        cmocka_unit_test(test_writer_rejects_ids),  cmocka_unit_test(test_tkn2),
        cmocka_unit_test(test_dataset_multi_shard), cmocka_unit_test(test_random_windows),
        cmocka_unit_test(test_sequential_covers_once), cmocka_unit_test(test_rank_sharding),
        cmocka_unit_test(test_cursor_restore),      cmocka_unit_test(test_documents),
        cmocka_unit_test(test_input_directories),   cmocka_unit_test(test_long_document_pieces),
        cmocka_unit_test(test_split_rule),          cmocka_unit_test(test_stream_is_full_tokenization),
        cmocka_unit_test(test_stream_matches_tokenize), cmocka_unit_test(test_stream_cursor_and_ranks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
