/* The BPE merge loop for one pre-tokenized piece: start from one token per byte,
 * then repeatedly merge the adjacent pair of lowest merge rank (the leftmost one
 * on a tie) until no pair has a merge. This is the rule of GPT-2's encoder.py, of
 * tiktoken and of Hugging Face's BPE. Short pieces (nearly all of them) use a
 * flat array and a linear scan per merge; long ones (a run of 100k spaces is one
 * piece) use a linked list and a min-heap keyed on (rank, position), so a piece
 * of n bytes costs O(n log n) instead of O(n^2). In front of the merge loop sit
 * two shortcuts: a piece that is itself a token whose own bytes merge back into
 * it (TOK_DIRECT) is looked up, and other short pieces go through a
 * direct-mapped cache of recent results. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* Pieces longer than this use the heap. */
#define SMALL_PIECE 64

static ob_status ensure_capacity(tok_work *w, size_t n) {
    if (w->cap >= n)
        return OB_OK;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < n)
        cap *= 2;
    int32_t *ids = realloc(w->ids, cap * sizeof *ids);
    if (ids)
        w->ids = ids;
    uint32_t *ranks = realloc(w->ranks, cap * sizeof *ranks);
    if (ranks)
        w->ranks = ranks;
    int32_t *next = realloc(w->next, cap * sizeof *next);
    if (next)
        w->next = next;
    int32_t *prev = realloc(w->prev, cap * sizeof *prev);
    if (prev)
        w->prev = prev;
    uint64_t *heap = realloc(w->heap, 3 * cap * sizeof *heap);
    if (heap)
        w->heap = heap;
    if (!ids || !ranks || !next || !prev || !heap)
        return ob_error(OB_ERR_NOMEM, "out of memory for a %zu-byte piece", n);
    w->cap = cap;
    return OB_OK;
}

/* Flat arrays: ids[0..m), ranks[i] and merged[i] describe the pair (i, i+1). */
static size_t merge_small(const ob_tokenizer *tok, tok_work *w, const uint8_t *piece, size_t n) {
    int32_t *ids = w->ids, *merged = w->next;
    uint32_t *ranks = w->ranks;
    for (size_t i = 0; i < n; i++)
        ids[i] = tok->byte_id[piece[i]];
    for (size_t i = 0; i + 1 < n; i++)
        ranks[i] = tok_pair_rank(&tok->merges, ids[i], ids[i + 1], &merged[i]);
    size_t m = n;
    while (m > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < m; i++)
            if (ranks[i] < ranks[best])
                best = i;
        if (ranks[best] == UINT32_MAX)
            break;
        ids[best] = merged[best];
        size_t tail = m - best - 2; /* pairs after the removed element */
        memmove(ids + best + 1, ids + best + 2, tail * sizeof *ids);
        memmove(ranks + best + 1, ranks + best + 2, (tail > 0 ? tail - 1 : 0) * sizeof *ranks);
        memmove(merged + best + 1, merged + best + 2, (tail > 0 ? tail - 1 : 0) * sizeof *merged);
        m--;
        if (best > 0)
            ranks[best - 1] = tok_pair_rank(&tok->merges, ids[best - 1], ids[best], &merged[best - 1]);
        if (best + 1 < m)
            ranks[best] = tok_pair_rank(&tok->merges, ids[best], ids[best + 1], &merged[best]);
    }
    return m;
}

static void heap_push(uint64_t *heap, size_t *size, uint64_t key) {
    size_t i = (*size)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (heap[parent] <= key)
            break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = key;
}

static uint64_t heap_pop(uint64_t *heap, size_t *size) {
    uint64_t top = heap[0], last = heap[--*size];
    size_t i = 0, n = *size;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap[c + 1] < heap[c])
            c++;
        if (heap[c] >= last)
            break;
        heap[i] = heap[c];
        i = c;
    }
    if (n > 0)
        heap[i] = last;
    return top;
}

/* Linked list over positions; heap keys are rank << 32 | position of the left
 * element, so the minimum is the lowest rank and, among equals, the leftmost.
 * Entries go stale when a neighbour merges; they are recognised on pop because
 * a pair's rank identifies the pair. Returns the count, ids packed in w->ids. */
static size_t merge_large(const ob_tokenizer *tok, tok_work *w, const uint8_t *piece, size_t n) {
    int32_t *ids = w->ids, *next = w->next, *prev = w->prev;
    uint64_t *heap = w->heap;
    size_t heap_size = 0;
    for (size_t i = 0; i < n; i++) {
        ids[i] = tok->byte_id[piece[i]];
        next[i] = (int32_t)i + 1;
        prev[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t r = tok_pair_rank(&tok->merges, ids[i], ids[i + 1], NULL);
        if (r != UINT32_MAX)
            heap_push(heap, &heap_size, (uint64_t)r << 32 | i);
    }
    while (heap_size > 0) {
        uint64_t key = heap_pop(heap, &heap_size);
        uint32_t r = (uint32_t)(key >> 32);
        int32_t i = (int32_t)(uint32_t)key;
        if (ids[i] < 0 || next[i] >= (int32_t)n)
            continue;
        int32_t j = next[i], merged = -1;
        if (tok_pair_rank(&tok->merges, ids[i], ids[j], &merged) != r)
            continue;
        ids[i] = merged;
        ids[j] = -1;
        next[i] = next[j];
        if (next[j] < (int32_t)n)
            prev[next[j]] = i;
        if (prev[i] >= 0) {
            uint32_t rp = tok_pair_rank(&tok->merges, ids[prev[i]], ids[i], NULL);
            if (rp != UINT32_MAX)
                heap_push(heap, &heap_size, (uint64_t)rp << 32 | (uint32_t)prev[i]);
        }
        if (next[i] < (int32_t)n) {
            uint32_t rn = tok_pair_rank(&tok->merges, ids[i], ids[next[i]], NULL);
            if (rn != UINT32_MAX)
                heap_push(heap, &heap_size, (uint64_t)rn << 32 | (uint32_t)i);
        }
    }
    size_t m = 0;
    for (int32_t i = 0; i < (int32_t)n; i = next[i])
        ids[m++] = ids[i];
    return m;
}

static ob_status merge(const ob_tokenizer *tok, tok_work *w, const uint8_t *piece, size_t n, size_t *count) {
    if (n > INT32_MAX / 2)
        return ob_error(OB_ERR_INVALID_ARG, "a %zu-byte piece is too long to encode", n);
    ob_status st = ensure_capacity(w, n);
    if (st)
        return st;
    *count = n <= SMALL_PIECE ? merge_small(tok, w, piece, n) : merge_large(tok, w, piece, n);
    return OB_OK;
}

ob_status tok_bpe_merge(const ob_tokenizer *tok, tok_work *w, const uint8_t *piece, size_t n, int32_t *ids,
                        size_t *count) {
    ob_status st = merge(tok, w, piece, n, count);
    if (st == OB_OK)
        memcpy(ids, w->ids, *count * sizeof *ids);
    return st;
}

static ob_status push_all(ob_tokens *out, const int32_t *ids, size_t n) {
    if (out->count + n > out->capacity) {
        size_t cap = out->capacity ? out->capacity : 64;
        while (cap < out->count + n)
            cap *= 2;
        int32_t *p = realloc(out->ids, cap * sizeof *p);
        if (!p)
            return ob_error(OB_ERR_NOMEM, "out of memory for %zu token ids", cap);
        out->ids = p;
        out->capacity = cap;
    }
    memcpy(out->ids + out->count, ids, n * sizeof *ids);
    out->count += n;
    return OB_OK;
}

ob_status tok_bpe_piece(const ob_tokenizer *tok, tok_work *w, const uint8_t *piece, size_t n, ob_tokens *out) {
    if (n == 1)
        return ob_tokens_push(out, tok->byte_id[piece[0]]);
    int32_t id = tok_lookup(tok, &tok->direct, piece, n);
    if (id >= 0)
        return ob_tokens_push(out, id);
    tok_cache_entry *slot = NULL;
    if (w->cache && n <= TOK_CACHE_MAX_BYTES) {
        slot = &w->cache[tok_hash_bytes(piece, n) >> 52 & (TOK_CACHE_SLOTS - 1)];
        if (slot->nbytes == n && memcmp(slot->bytes, piece, n) == 0)
            return push_all(out, slot->ids, slot->nids);
    }
    size_t count;
    ob_status st = merge(tok, w, piece, n, &count);
    if (st)
        return st;
    if (slot && count <= TOK_CACHE_MAX_IDS) {
        slot->nbytes = (uint8_t)n;
        slot->nids = (uint8_t)count;
        memcpy(slot->bytes, piece, n);
        memcpy(slot->ids, w->ids, count * sizeof *w->ids);
    }
    return push_all(out, w->ids, count);
}
