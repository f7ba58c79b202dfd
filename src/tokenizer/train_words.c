/* The first half of BPE training: read the input files, cut them at special
 * tokens, pre-tokenize them with GPT-2's pattern and count how often each
 * distinct piece ("word") occurs. Files are cut into chunks at the same safe
 * newlines the parallel encoder uses and counted by OpenMP threads into
 * per-thread tables, which are then added together; the words are finally
 * sorted by their bytes, so the result does not depend on the thread count. */
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "tokenizer/tok_train.h"

static ob_status table_init(word_table *t, size_t slots) {
    memset(t, 0, sizeof *t);
    t->slots = ob_calloc(slots, sizeof *t->slots);
    if (!t->slots)
        return OB_ERR_NOMEM;
    t->mask = slots - 1;
    return OB_OK;
}

void word_table_free(word_table *t) {
    free(t->slots);
    free(t->words);
    free(t->bytes);
    memset(t, 0, sizeof *t);
}

static ob_status table_grow(word_table *t) {
    size_t n = (t->mask + 1) * 2;
    uint32_t *slots = ob_calloc(n, sizeof *slots);
    if (!slots)
        return OB_ERR_NOMEM;
    for (size_t w = 0; w < t->count; w++) {
        size_t i = (size_t)t->words[w].hash & (n - 1);
        while (slots[i])
            i = (i + 1) & (n - 1);
        slots[i] = (uint32_t)w + 1;
    }
    free(t->slots);
    t->slots = slots;
    t->mask = n - 1;
    return OB_OK;
}

static ob_status table_add(word_table *t, const uint8_t *p, size_t n, uint64_t hash, uint64_t count) {
    size_t i = (size_t)hash & t->mask;
    for (;;) {
        uint32_t s = t->slots[i];
        if (!s)
            break;
        word_entry *e = &t->words[s - 1];
        if (e->hash == hash && e->len == n && memcmp(t->bytes + e->start, p, n) == 0) {
            e->count += count;
            return OB_OK;
        }
        i = (i + 1) & t->mask;
    }
    if (n > UINT32_MAX || t->bytes_len + n > UINT32_MAX)
        return ob_error(OB_ERR_UNSUPPORTED, "more than 4 GiB of distinct words");
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4096;
        word_entry *w = realloc(t->words, cap * sizeof *w);
        if (!w)
            return OB_ERR_NOMEM;
        t->words = w;
        t->cap = cap;
    }
    if (t->bytes_len + n > t->bytes_cap) {
        size_t cap = t->bytes_cap ? t->bytes_cap * 2 : 1 << 16;
        while (cap < t->bytes_len + n)
            cap *= 2;
        uint8_t *b = realloc(t->bytes, cap);
        if (!b)
            return OB_ERR_NOMEM;
        t->bytes = b;
        t->bytes_cap = cap;
    }
    memcpy(t->bytes + t->bytes_len, p, n);
    t->words[t->count] = (word_entry){.start = (uint32_t)t->bytes_len, .len = (uint32_t)n, .hash = hash, .count = count};
    t->bytes_len += n;
    t->slots[i] = (uint32_t)++t->count;
    if (2 * t->count > t->mask + 1)
        return table_grow(t);
    return OB_OK;
}

static ob_status on_word(void *ctx, const uint8_t *piece, size_t n) {
    /* One-byte words hold no pair, so they cannot change what is learned. */
    if (n < 2)
        return OB_OK;
    return table_add(ctx, piece, n, tok_hash_bytes(piece, n), 1);
}

/* Counts the words of text[0..len), skipping special tokens. */
static ob_status count_text(const ob_tokenizer *splitter, tok_work *w, const uint8_t *text, size_t len,
                            const ob_bpe_train_options *opts, word_table *t) {
    size_t pos = 0;
    while (pos < len) {
        size_t end = len, skip = 0;
        for (int s = 0; s < opts->num_specials; s++) {
            size_t n = strlen(opts->specials[s]);
            const uint8_t *hit = memmem(text + pos, len - pos, opts->specials[s], n);
            if (hit && (size_t)(hit - text) < end) {
                end = (size_t)(hit - text);
                skip = n;
            }
        }
        ob_status st = tok_split(splitter, w, text + pos, end - pos, on_word, t);
        if (st)
            return st;
        pos = end + skip;
    }
    return OB_OK;
}

static int compare_words(const void *a, const void *b, void *ctx) {
    const word_table *t = ctx;
    const word_entry *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(t->bytes + x->start, t->bytes + y->start, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

typedef struct chunk {
    const uint8_t *text;
    size_t len;
} chunk;

ob_status train_count_words(const ob_bpe_train_options *opts, const char *const *files, int num_files,
                            word_table *out, uint64_t *total_bytes) {
    memset(out, 0, sizeof *out);
    *total_bytes = 0;
    ob_tokenizer splitter = {0};
    ob_status st = tok_compile_regex(&splitter.regex);
    if (st)
        return st;
    int threads = opts->threads > 0 ? opts->threads : omp_get_max_threads();
    ob_mapping *maps = ob_calloc((size_t)num_files, sizeof *maps);
    chunk *chunks = NULL;
    size_t n_chunks = 0, cap = 0;
    for (int f = 0; f < num_files && st == OB_OK && maps; f++) {
        if ((st = ob_map_file(files[f], &maps[f])))
            break;
        const uint8_t *s = maps[f].data;
        size_t n = maps[f].size;
        if (n == 0) {
            st = ob_error(OB_ERR_FORMAT, "%s: file is empty", files[f]);
            break;
        }
        const uint8_t *nul = memchr(s, '\0', n);
        if (nul) {
            st = ob_error(OB_ERR_FORMAT, "%s: binary file (NUL byte at offset %zu), expected text", files[f],
                          (size_t)(nul - s));
            break;
        }
        *total_bytes += n;
        size_t want = n / (1 << 20) + 1; /* about 1 MiB per chunk */
        if (n_chunks + want + 1 > cap) {
            cap = (n_chunks + want + 1) * 2;
            chunk *c = realloc(chunks, cap * sizeof *c);
            if (!c) {
                st = OB_ERR_NOMEM;
                break;
            }
            chunks = c;
        }
        size_t *cuts = ob_malloc(want * sizeof *cuts);
        if (!cuts) {
            st = OB_ERR_NOMEM;
            break;
        }
        size_t k = ob_tokenizer_safe_cuts((const char *)s, n, cuts, want - 1), prev = 0;
        for (size_t i = 0; i <= k; i++) {
            size_t end = i < k ? cuts[i] : n;
            chunks[n_chunks++] = (chunk){s + prev, end - prev};
            prev = end;
        }
        free(cuts);
    }
    if (!maps)
        st = OB_ERR_NOMEM;

    word_table *tables = st ? NULL : ob_calloc((size_t)threads, sizeof *tables);
    if (!st && !tables)
        st = OB_ERR_NOMEM;
    char message[512] = "";
    ob_progress bar;
    if (!st && opts->progress)
        ob_progress_begin(&bar, stderr, "counting words", *total_bytes, "B");
    uint64_t done = 0;
    if (!st) {
#pragma omp parallel num_threads(threads)
        {
            word_table *t = &tables[omp_get_thread_num()];
            tok_work w;
            ob_status mine = table_init(t, 1 << 14);
            bool have_work = false;
            if (!mine) {
                mine = tok_work_init(&w, &splitter, false);
                have_work = mine == OB_OK;
            }
#pragma omp for schedule(dynamic, 1)
            for (size_t c = 0; c < n_chunks; c++) {
                if (mine == OB_OK)
                    mine = count_text(&splitter, &w, chunks[c].text, chunks[c].len, opts, t);
                uint64_t now;
#pragma omp atomic capture
                now = done += chunks[c].len;
                if (opts->progress && omp_get_thread_num() == 0)
                    ob_progress_update(&bar, now, NULL);
            }
            if (have_work)
                tok_work_free(&w);
            if (mine) {
#pragma omp critical(ob_train_count_error)
                if (st == OB_OK) {
                    st = mine;
                    snprintf(message, sizeof message, "%s", ob_last_error());
                }
            }
        }
        if (st && message[0])
            st = ob_error(st, "%s", message);
    }
    /* Add the per-thread tables into the first. */
    for (int i = 1; i < threads && st == OB_OK; i++)
        for (size_t w = 0; w < tables[i].count && st == OB_OK; w++) {
            const word_entry *e = &tables[i].words[w];
            st = table_add(&tables[0], tables[i].bytes + e->start, e->len, e->hash, e->count);
        }
    if (!st) {
        qsort_r(tables[0].words, tables[0].count, sizeof *tables[0].words, compare_words, &tables[0]);
        free(tables[0].slots); /* the slots no longer match the sorted order */
        tables[0].slots = NULL;
        *out = tables[0];
        tables[0] = (word_table){0};
        if (opts->progress)
            ob_progress_end(&bar, NULL);
    }
    for (int i = 0; tables && i < threads; i++)
        word_table_free(&tables[i]);
    free(tables);
    free(chunks);
    for (int f = 0; maps && f < num_files; f++)
        ob_unmap_file(&maps[f]);
    free(maps);
    pcre2_code_free(splitter.regex);
    return st;
}
