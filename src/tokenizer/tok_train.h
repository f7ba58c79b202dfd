/* Internal interfaces of BPE training: the word counts gathered from the input
 * files (train_words.c) and the merge learner that consumes them (train.c). */
#ifndef ONEBIT_TOK_TRAIN_H
#define ONEBIT_TOK_TRAIN_H

#include "tokenizer/tok_internal.h"

/* One distinct pre-tokenized piece and how often it occurs. */
typedef struct word_entry {
    uint32_t start, len; /* bytes in word_table.bytes */
    uint64_t hash;
    uint64_t count;
} word_entry;

typedef struct word_table {
    uint32_t *slots; /* word index + 1; 0 = empty */
    size_t mask;
    word_entry *words;
    size_t count, cap;
    uint8_t *bytes;
    size_t bytes_len, bytes_cap;
} word_table;

/* Counts the words (pieces of two bytes or more) of all files, skipping the
 * special tokens' text. Words come out sorted by their bytes. */
ob_status train_count_words(const ob_bpe_train_options *opts, const char *const *files, int num_files,
                            word_table *out, uint64_t *total_bytes);
void word_table_free(word_table *t);

/* A pair of symbols during training. */
typedef struct pair_info {
    uint64_t key; /* left << 32 | right, in training ids */
    int64_t count;
    uint32_t *words; /* words the pair occurs (or occurred) in; may repeat */
    uint32_t n_words, cap_words;
    uint32_t pushed; /* merge number when last pushed as a new pair */
} pair_info;

typedef struct pair_index {
    uint32_t *slots; /* pair number + 1 */
    size_t mask;
    pair_info *pairs;
    size_t count, cap;
} pair_index;

/* Number of the pair `key`; with `create`, an absent pair is added with count
 * 0. UINT32_MAX when absent (or out of memory). */
uint32_t train_pair_get(pair_index *pi, uint64_t key, bool create);
/* Records that the pair occurs in `word` (false when out of memory). */
bool train_pair_add_word(pair_info *p, uint32_t word);

typedef struct heap_entry {
    int64_t count;
    uint64_t key;
    uint32_t pair;
} heap_entry;

/* Max-heap on (count, then smaller key). */
typedef struct pair_heap {
    heap_entry *a;
    size_t size, cap;
} pair_heap;

bool train_heap_push(pair_heap *h, int64_t count, uint64_t key, uint32_t pair);
heap_entry train_heap_pop(pair_heap *h);

#endif
