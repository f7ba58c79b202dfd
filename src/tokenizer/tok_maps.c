/* The encoder's two hash maps: merge ranks keyed on a pair of token ids (one
 * 64-bit key, open addressing, linear probing, sized to a load under 1/2), and
 * token bytes to id (slots hold ids; the bytes live in the tokenizer's blob). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

uint64_t tok_hash_bytes(const uint8_t *p, size_t n) {
    /* Multiply-xorshift over 8-byte words: pieces are short, so a few
     * multiplications beat byte-at-a-time hashes. */
    uint64_t h = 0x243F6A8885A308D3ull ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0x94D049BB133111EBull;
        h ^= h >> 29;
    }
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

static size_t table_size(size_t expected) {
    size_t n = 64;
    while (n < 2 * expected + 2)
        n <<= 1;
    return n;
}

ob_status tok_pair_map_init(tok_pair_map *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t n = table_size(expected);
    m->keys = ob_malloc(n * sizeof *m->keys);
    m->ranks = ob_malloc(n * sizeof *m->ranks);
    m->merged = ob_malloc(n * sizeof *m->merged);
    if (!m->keys || !m->ranks || !m->merged) {
        tok_pair_map_free(m);
        return OB_ERR_NOMEM;
    }
    memset(m->keys, 0xFF, n * sizeof *m->keys);
    m->mask = n - 1;
    return OB_OK;
}

void tok_pair_map_free(tok_pair_map *m) {
    free(m->keys);
    free(m->ranks);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

static bool pair_map_grow(tok_pair_map *m) {
    tok_pair_map bigger;
    if (tok_pair_map_init(&bigger, (m->mask + 1)) != OB_OK)
        return false;
    for (size_t i = 0; i <= m->mask; i++)
        if (m->keys[i] != UINT64_MAX)
            tok_pair_map_insert(&bigger, (int32_t)(m->keys[i] >> 32), (int32_t)(uint32_t)m->keys[i], m->ranks[i],
                                m->merged[i]);
    tok_pair_map_free(m);
    *m = bigger;
    return true;
}

bool tok_pair_map_insert(tok_pair_map *m, int32_t left, int32_t right, uint32_t rank, int32_t merged) {
    if (2 * (m->count + 1) > m->mask + 1 && !pair_map_grow(m))
        return false;
    uint64_t key = tok_pair_key(left, right);
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & m->mask;
    while (m->keys[i] != UINT64_MAX) {
        if (m->keys[i] == key)
            return false;
        i = (i + 1) & m->mask;
    }
    m->keys[i] = key;
    m->ranks[i] = rank;
    m->merged[i] = merged;
    m->count++;
    return true;
}

int32_t tok_lookup(const ob_tokenizer *tok, const tok_bytes_map *map, const uint8_t *bytes, size_t len) {
    if (!map->slots)
        return -1;
    size_t i = (size_t)tok_hash_bytes(bytes, len) & map->mask;
    for (;;) {
        int32_t slot = map->slots[i];
        if (slot == 0)
            return -1;
        int32_t id = slot - 1;
        if (tok->len[id] == len && memcmp(tok->blob + tok->start[id], bytes, len) == 0)
            return id;
        i = (i + 1) & map->mask;
    }
}

/* Builds `map` over the ids whose flags contain `need`; the first id with given
 * bytes wins. */
ob_status tok_bytes_map_build(const ob_tokenizer *tok, tok_bytes_map *map, uint8_t need) {
    size_t count = 0;
    for (int id = 0; id < tok->n_vocab; id++)
        count += (tok->flags[id] & need) == need;
    size_t n = table_size(count);
    map->slots = ob_calloc(n, sizeof *map->slots);
    if (!map->slots)
        return OB_ERR_NOMEM;
    map->mask = n - 1;
    for (int id = 0; id < tok->n_vocab; id++) {
        if ((tok->flags[id] & need) != need)
            continue;
        const uint8_t *b = tok->blob + tok->start[id];
        if (tok_lookup(tok, map, b, tok->len[id]) >= 0)
            continue;
        size_t i = (size_t)tok_hash_bytes(b, tok->len[id]) & map->mask;
        while (map->slots[i] != 0)
            i = (i + 1) & map->mask;
        map->slots[i] = id + 1;
    }
    return OB_OK;
}
