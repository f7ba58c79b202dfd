/* Bookkeeping of BPE training: a hash index of symbol pairs (each with its
 * weighted count and the words it occurs in) and the max-heap that orders them
 * by count, ties to the smaller pair. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_train.h"

static uint64_t mix(uint64_t k) {
    k *= 0x9E3779B97F4A7C15ull;
    return k ^ (k >> 29);
}

/* Number of the pair `key`, created (count 0) if absent; UINT32_MAX on OOM. */
uint32_t train_pair_get(pair_index *pi, uint64_t key, bool create) {
    size_t i = (size_t)mix(key) & pi->mask;
    for (;;) {
        uint32_t s = pi->slots[i];
        if (!s)
            break;
        if (pi->pairs[s - 1].key == key)
            return s - 1;
        i = (i + 1) & pi->mask;
    }
    if (!create)
        return UINT32_MAX;
    if (pi->count == pi->cap) {
        size_t cap = pi->cap ? pi->cap * 2 : 1 << 16;
        pair_info *p = realloc(pi->pairs, cap * sizeof *p);
        if (!p)
            return UINT32_MAX;
        pi->pairs = p;
        pi->cap = cap;
    }
    pi->pairs[pi->count] = (pair_info){.key = key, .pushed = UINT32_MAX};
    pi->slots[i] = (uint32_t)++pi->count;
    if (2 * pi->count > pi->mask + 1) {
        size_t n = (pi->mask + 1) * 2;
        uint32_t *slots = calloc(n, sizeof *slots);
        if (!slots)
            return UINT32_MAX;
        for (size_t p = 0; p < pi->count; p++) {
            size_t j = (size_t)mix(pi->pairs[p].key) & (n - 1);
            while (slots[j])
                j = (j + 1) & (n - 1);
            slots[j] = (uint32_t)p + 1;
        }
        free(pi->slots);
        pi->slots = slots;
        pi->mask = n - 1;
    }
    return (uint32_t)pi->count - 1;
}

bool train_pair_add_word(pair_info *p, uint32_t word) {
    if (p->n_words > 0 && p->words[p->n_words - 1] == word)
        return true;
    if (p->n_words == p->cap_words) {
        uint32_t cap = p->cap_words ? p->cap_words * 2 : 4;
        uint32_t *w = realloc(p->words, cap * sizeof *w);
        if (!w)
            return false;
        p->words = w;
        p->cap_words = cap;
    }
    p->words[p->n_words++] = word;
    return true;
}

static bool better(const heap_entry *a, const heap_entry *b) {
    return a->count > b->count || (a->count == b->count && a->key < b->key);
}

bool train_heap_push(pair_heap *h, int64_t count, uint64_t key, uint32_t pair) {
    if (h->size == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 1 << 16;
        heap_entry *a = realloc(h->a, cap * sizeof *a);
        if (!a)
            return false;
        h->a = a;
        h->cap = cap;
    }
    heap_entry e = {count, key, pair};
    size_t i = h->size++;
    while (i > 0 && better(&e, &h->a[(i - 1) / 2])) {
        h->a[i] = h->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->a[i] = e;
    return true;
}

heap_entry train_heap_pop(pair_heap *h) {
    heap_entry top = h->a[0], last = h->a[--h->size];
    size_t i = 0, n = h->size;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && better(&h->a[c + 1], &h->a[c]))
            c++;
        if (!better(&h->a[c], &last))
            break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (n > 0)
        h->a[i] = last;
    return top;
}
