/* The second half of BPE training: learn merges from word counts. Every word
 * starts as its bytes; the most frequent adjacent pair over all words (weighted
 * by word count) becomes a new token, its occurrences are merged, and so on
 * until the vocabulary is full or no pair occurs min_frequency times.
 *
 * Pair counts are kept up to date incrementally: each pair knows the words it
 * occurs in, and a merge only visits those words, adjusting the counts of the
 * pairs around each occurrence. A max-heap orders the pairs; entries whose count
 * has fallen since they were pushed are pushed again with the new count when
 * they surface (counts of existing pairs only ever fall, so the top entry, once
 * current, is the true maximum). Ties go to the smaller (left id, right id),
 * with bytes as ids 0..255 and new tokens numbered in creation order, which
 * makes training deterministic.
 *
 * The result is laid out like GPT-2's vocabulary: ids 0..255 are the single
 * bytes in the order of their byte-level characters, then the merges in rank
 * order, then the special tokens. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_train.h"

typedef struct learner {
    /* words */
    int32_t *syms;     /* all words' symbols, word w at syms[start[w]..start[w]+len[w]) */
    size_t *start;
    uint32_t *len;
    uint64_t *wcount;
    uint32_t *seen; /* merge number + 1 that last visited the word */
    size_t n_words;
    pair_index pi;
    pair_heap heap;
    /* learned tokens: bytes of training id t at tok_bytes[tok_start[t]..] */
    uint8_t *tok_bytes;
    size_t *tok_start, tok_bytes_len, tok_bytes_cap;
    uint32_t *tok_len;
    int32_t (*merges)[2];
    int n_merges;
    uint32_t *new_pairs; /* pairs created by the current merge */
    size_t n_new, cap_new;
} learner;

/* Adds delta to the count of (left, right) as seen in `word`. */
static bool adjust(learner *L, int32_t left, int32_t right, int64_t delta, uint32_t word, int32_t new_id) {
    uint32_t p = train_pair_get(&L->pi, (uint64_t)(uint32_t)left << 32 | (uint32_t)right, delta > 0);
    if (p == UINT32_MAX)
        return delta < 0; /* decrementing an absent pair cannot happen; creating one can fail */
    pair_info *info = &L->pi.pairs[p];
    info->count += delta;
    if (delta > 0) {
        if (!train_pair_add_word(info, word))
            return false;
        if ((left == new_id || right == new_id) && info->pushed != (uint32_t)L->n_merges) {
            info->pushed = (uint32_t)L->n_merges;
            if (L->n_new == L->cap_new) {
                size_t cap = L->cap_new ? L->cap_new * 2 : 1024;
                uint32_t *n = realloc(L->new_pairs, cap * sizeof *n);
                if (!n)
                    return false;
                L->new_pairs = n;
                L->cap_new = cap;
            }
            L->new_pairs[L->n_new++] = p;
        }
    }
    return true;
}

/* Replaces every (a, b) in word w by m, left to right, fixing pair counts. */
static bool merge_word(learner *L, uint32_t w, int32_t a, int32_t b, int32_t m) {
    int32_t *s = L->syms + L->start[w];
    uint32_t n = L->len[w], out = 0;
    int64_t c = (int64_t)L->wcount[w];
    for (uint32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            /* The left neighbour is the last symbol written (it may be an m
             * from the previous occurrence); the right one is still unread. */
            if (out > 0 && (!adjust(L, s[out - 1], a, -c, w, m) || !adjust(L, s[out - 1], m, c, w, m)))
                return false;
            if (i + 2 < n && (!adjust(L, b, s[i + 2], -c, w, m) || !adjust(L, m, s[i + 2], c, w, m)))
                return false;
            s[out++] = m;
            i += 2;
        } else {
            s[out++] = s[i++];
        }
    }
    L->len[w] = out;
    return true;
}

static bool add_token_bytes(learner *L, int32_t a, int32_t b) {
    size_t la = L->tok_len[a], lb = L->tok_len[b];
    if (L->tok_bytes_len + la + lb > L->tok_bytes_cap) {
        size_t cap = L->tok_bytes_cap * 2 + la + lb;
        uint8_t *p = realloc(L->tok_bytes, cap);
        if (!p)
            return false;
        L->tok_bytes = p;
        L->tok_bytes_cap = cap;
    }
    int32_t t = 256 + L->n_merges;
    L->tok_start[t] = L->tok_bytes_len;
    L->tok_len[t] = (uint32_t)(la + lb);
    memcpy(L->tok_bytes + L->tok_bytes_len, L->tok_bytes + L->tok_start[a], la);
    memcpy(L->tok_bytes + L->tok_bytes_len + la, L->tok_bytes + L->tok_start[b], lb);
    L->tok_bytes_len += la + lb;
    return true;
}

static ob_status learn(learner *L, const word_table *words, int max_merges, int min_frequency, bool progress) {
    size_t total = 0;
    for (size_t w = 0; w < words->count; w++)
        total += words->words[w].len;
    L->n_words = words->count;
    L->syms = ob_malloc((total + 1) * sizeof *L->syms);
    L->start = ob_malloc((L->n_words + 1) * sizeof *L->start);
    L->len = ob_malloc((L->n_words + 1) * sizeof *L->len);
    L->wcount = ob_malloc((L->n_words + 1) * sizeof *L->wcount);
    L->seen = ob_calloc(L->n_words + 1, sizeof *L->seen);
    L->pi.slots = ob_calloc(1 << 16, sizeof *L->pi.slots);
    L->pi.mask = (1 << 16) - 1;
    size_t n_tok = 256 + (size_t)max_merges;
    L->tok_start = ob_malloc(n_tok * sizeof *L->tok_start);
    L->tok_len = ob_malloc(n_tok * sizeof *L->tok_len);
    L->tok_bytes_cap = 4096;
    L->tok_bytes = ob_malloc(L->tok_bytes_cap);
    L->merges = ob_malloc(((size_t)max_merges + 1) * sizeof *L->merges);
    if (!L->syms || !L->start || !L->len || !L->wcount || !L->seen || !L->pi.slots || !L->tok_start || !L->tok_len ||
        !L->tok_bytes || !L->merges)
        return OB_ERR_NOMEM;
    for (int b = 0; b < 256; b++) {
        L->tok_bytes[b] = (uint8_t)b;
        L->tok_start[b] = (size_t)b;
        L->tok_len[b] = 1;
    }
    L->tok_bytes_len = 256;

    size_t k = 0;
    for (size_t w = 0; w < words->count; w++) {
        const word_entry *e = &words->words[w];
        L->start[w] = k;
        L->len[w] = e->len;
        L->wcount[w] = e->count;
        for (uint32_t i = 0; i < e->len; i++)
            L->syms[k + i] = words->bytes[e->start + i];
        for (uint32_t i = 0; i + 1 < e->len; i++) {
            uint32_t p = train_pair_get(&L->pi, (uint64_t)L->syms[k + i] << 32 | (uint32_t)L->syms[k + i + 1], true);
            if (p == UINT32_MAX || !train_pair_add_word(&L->pi.pairs[p], (uint32_t)w))
                return OB_ERR_NOMEM;
            L->pi.pairs[p].count += (int64_t)e->count;
        }
        k += e->len;
    }
    for (size_t p = 0; p < L->pi.count; p++)
        if (!train_heap_push(&L->heap, L->pi.pairs[p].count, L->pi.pairs[p].key, (uint32_t)p))
            return OB_ERR_NOMEM;

    ob_progress bar;
    if (progress)
        ob_progress_begin(&bar, stderr, "learning merges", (uint64_t)max_merges, "merges");
    while (L->n_merges < max_merges && L->heap.size > 0) {
        heap_entry top = train_heap_pop(&L->heap);
        pair_info *info = &L->pi.pairs[top.pair];
        if (top.count != info->count) {
            if (info->count > 0 && !train_heap_push(&L->heap, info->count, info->key, top.pair))
                return OB_ERR_NOMEM;
            continue;
        }
        if (top.count < min_frequency)
            break;
        int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(uint32_t)top.key, m = 256 + L->n_merges;
        if (!add_token_bytes(L, a, b))
            return OB_ERR_NOMEM;
        L->merges[L->n_merges][0] = a;
        L->merges[L->n_merges][1] = b;
        L->n_new = 0;
        /* The list may grow while we merge (pairs (m, m) are added to it), so
         * take its length first: words added later are already merged. */
        uint32_t n_words = info->n_words;
        uint32_t *list = info->words;
        info->words = NULL;
        info->n_words = info->cap_words = 0;
        bool ok = true;
        for (uint32_t i = 0; i < n_words && ok; i++) {
            uint32_t w = list[i];
            if (L->seen[w] == (uint32_t)L->n_merges + 1)
                continue;
            L->seen[w] = (uint32_t)L->n_merges + 1;
            ok = merge_word(L, w, a, b, m);
        }
        free(list);
        if (!ok)
            return OB_ERR_NOMEM;
        L->pi.pairs[top.pair].count = 0;
        L->n_merges++;
        for (size_t i = 0; i < L->n_new; i++) {
            uint32_t p = L->new_pairs[i];
            if (L->pi.pairs[p].count > 0 && !train_heap_push(&L->heap, L->pi.pairs[p].count, L->pi.pairs[p].key, p))
                return OB_ERR_NOMEM;
        }
        if (progress)
            ob_progress_update(&bar, (uint64_t)L->n_merges, NULL);
    }
    if (progress)
        ob_progress_end(&bar, NULL);
    return OB_OK;
}

static void learner_free(learner *L) {
    free(L->syms);
    free(L->start);
    free(L->len);
    free(L->wcount);
    free(L->seen);
    for (size_t p = 0; p < L->pi.count; p++)
        free(L->pi.pairs[p].words);
    free(L->pi.pairs);
    free(L->pi.slots);
    free(L->heap.a);
    free(L->tok_bytes);
    free(L->tok_start);
    free(L->tok_len);
    free(L->merges);
    free(L->new_pairs);
}

static ob_status check_options(const ob_bpe_train_options *opts, const char *const *files, int num_files) {
    if (!opts || !files || num_files <= 0)
        return ob_error(OB_ERR_INVALID_ARG, "tokenizer training needs at least one input file");
    if (opts->num_specials < 0 || (opts->num_specials > 0 && !opts->specials))
        return ob_error(OB_ERR_INVALID_ARG, "tokenizer training: bad special token list");
    if (opts->vocab_size < 256 + opts->num_specials || opts->vocab_size > TOK_MAX_VOCAB)
        return ob_error(OB_ERR_INVALID_ARG, "tokenizer training: vocab size %d must be in %d..%d (256 byte tokens + %d "
                        "special tokens + merges)", opts->vocab_size, 256 + opts->num_specials, TOK_MAX_VOCAB,
                        opts->num_specials);
    for (int i = 0; i < opts->num_specials; i++) {
        const char *s = opts->specials[i];
        if (!s || !*s || !ob_utf8_valid(s, strlen(s), NULL))
            return ob_error(OB_ERR_INVALID_ARG, "tokenizer training: special token %d is empty or not UTF-8", i);
        for (int j = 0; j < i; j++)
            if (strcmp(s, opts->specials[j]) == 0)
                return ob_error(OB_ERR_INVALID_ARG, "tokenizer training: special token \"%s\" is listed twice", s);
    }
    return OB_OK;
}

/* Ids 0..255 follow the code points of the byte-level characters, as GPT-2's. */
static void byte_order(int32_t final_id[256]) {
    for (int b = 0; b < 256; b++) {
        int32_t rank = 0;
        for (int x = 0; x < 256; x++)
            rank += tok_byte_to_cp((uint8_t)x) < tok_byte_to_cp((uint8_t)b);
        final_id[b] = rank;
    }
}

/* Training id t -> id in the written vocabulary. */
static int32_t final_id(const int32_t byte_id[256], int32_t t) { return t < 256 ? byte_id[t] : t; }

static ob_status build(const learner *L, const ob_bpe_train_options *opts, ob_tokenizer **out) {
    int n = 256 + L->n_merges + opts->num_specials;
    ob_tokenizer *tok;
    ob_status st = tok_create(n, &tok);
    if (st)
        return st;
    int32_t byte_id[256];
    byte_order(byte_id);
    for (int t = 0; t < 256 + L->n_merges && !st; t++)
        st = tok_set_token(tok, final_id(byte_id, t), L->tok_bytes + L->tok_start[t], L->tok_len[t], TOK_IN_MODEL);
    for (int s = 0; s < opts->num_specials && !st; s++) {
        const char *text = opts->specials[s];
        size_t len = strlen(text);
        /* A special token spelled like a learned token stays out of model.vocab
         * (its spelling would appear twice there); it is still an added token. */
        uint8_t flags = TOK_ADDED | TOK_SPECIAL | TOK_IN_MODEL;
        for (int t = 0; t < 256 + L->n_merges; t++)
            if (L->tok_len[t] == len && memcmp(L->tok_bytes + L->tok_start[t], text, len) == 0)
                flags &= (uint8_t)~TOK_IN_MODEL;
        st = tok_set_token(tok, 256 + L->n_merges + s, (const uint8_t *)text, len, flags);
    }
    if (!st)
        st = tok_index(tok, "trained tokenizer");
    for (int i = 0; i < L->n_merges && !st; i++) {
        tok_merge_problem problem;
        st = tok_add_merge(tok, final_id(byte_id, L->merges[i][0]), final_id(byte_id, L->merges[i][1]), &problem);
        if (st && problem != TOK_MERGE_OK)
            st = ob_error(OB_ERR_FORMAT, "trained tokenizer: merge %d is inconsistent (internal error)", i);
    }
    if (!st)
        st = tok_finish(tok, "trained tokenizer");
    if (st) {
        ob_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return OB_OK;
}

ob_status ob_tokenizer_train(const ob_bpe_train_options *opts, const char *const *files, int num_files,
                             ob_tokenizer **out) {
    *out = NULL;
    ob_status st = check_options(opts, files, num_files);
    if (st)
        return st;
    word_table words;
    uint64_t total_bytes;
    if ((st = train_count_words(opts, files, num_files, &words, &total_bytes)))
        return st;
    learner L = {0};
    int min_frequency = opts->min_frequency > 0 ? opts->min_frequency : 2;
    st = learn(&L, &words, opts->vocab_size - 256 - opts->num_specials, min_frequency, opts->progress);
    if (st == OB_ERR_NOMEM)
        st = ob_error(OB_ERR_NOMEM, "out of memory while learning merges");
    word_table_free(&words);
    if (!st)
        st = build(&L, opts, out);
    learner_free(&L);
    return st;
}
