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

#endif
