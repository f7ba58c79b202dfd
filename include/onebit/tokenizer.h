/* Byte-level BPE (GPT-2 family): load a Hugging Face tokenizer.json or
 * vocab.json + merges.txt, encode exactly as OpenAI's GPT-2 encoder does, decode,
 * and train a new vocabulary. A loaded tokenizer is immutable: encoding from many
 * threads at once is safe. */
#ifndef ONEBIT_TOKENIZER_H
#define ONEBIT_TOKENIZER_H

#include "onebit/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_tokenizer ob_tokenizer;

/* A growable list of token ids (appended to by encode). */
typedef struct ob_tokens {
    int32_t *ids;
    size_t count;
    size_t capacity;
} ob_tokens;

void ob_tokens_free(ob_tokens *t);
ob_status ob_tokens_push(ob_tokens *t, int32_t id) OB_NODISCARD;

/* `path` is a tokenizer.json, or a directory holding tokenizer.json or
 * vocab.json + merges.txt. */
ob_status ob_tokenizer_load(const char *path, ob_tokenizer **out) OB_NODISCARD;
ob_status ob_tokenizer_load_vocab_merges(const char *vocab_json, const char *merges_txt,
                                         ob_tokenizer **out) OB_NODISCARD;
/* Parses tokenizer.json text held in memory (`source` names it in messages). */
ob_status ob_tokenizer_parse_json(const char *text, size_t len, const char *source,
                                  ob_tokenizer **out) OB_NODISCARD;
void ob_tokenizer_free(ob_tokenizer *tok);

int ob_tokenizer_vocab_size(const ob_tokenizer *tok);
/* Number of BPE merges. */
int ob_tokenizer_num_merges(const ob_tokenizer *tok);
/* Id of "<|endoftext|>" (or the tokenizer's end-of-text special token); -1 if none. */
int ob_tokenizer_eos_id(const ob_tokenizer *tok);
/* Id of an exact token string (special or regular, in its vocabulary spelling); -1 if absent. */
int ob_tokenizer_token_id(const ob_tokenizer *tok, const char *token);
/* The raw bytes a token decodes to. */
const uint8_t *ob_tokenizer_token_bytes(const ob_tokenizer *tok, int id, size_t *len);

/* Appends the ids of text[0..len) to `out`. With allow_special, special tokens
 * written in the text ("<|endoftext|>") become their ids; without, they are
 * encoded as ordinary text. Any byte string is accepted (invalid UTF-8 too). */
ob_status ob_tokenizer_encode(const ob_tokenizer *tok, const char *text, size_t len, bool allow_special,
                              ob_tokens *out) OB_NODISCARD;
/* Same ids as ob_tokenizer_encode, computed by `threads` threads (0 = all
 * cores): the text is cut at safe boundaries (a newline between two
 * non-space ASCII characters, where GPT-2's pattern always ends a piece), and
 * the chunks are encoded in parallel and concatenated. */
ob_status ob_tokenizer_encode_parallel(const ob_tokenizer *tok, const char *text, size_t len, bool allow_special,
                                       int threads, ob_tokens *out) OB_NODISCARD;
/* Offsets where ob_tokenizer_encode_parallel may cut text[0..len): at most
 * max_cuts of them, increasing, each about len/(max_cuts+1) after the previous
 * one. Returns the count. Exposed for tests. */
size_t ob_tokenizer_safe_cuts(const char *text, size_t len, size_t *cuts, size_t max_cuts);

/* Bytes of the ids, concatenated (heap, NUL-terminated; *len excludes the NUL).
 * Ids out of range are an error. */
ob_status ob_tokenizer_decode(const ob_tokenizer *tok, const int32_t *ids, size_t n, char **text,
                              size_t *len) OB_NODISCARD;

/* Writes tokenizer.json (Hugging Face format) atomically. */
ob_status ob_tokenizer_save(const ob_tokenizer *tok, const char *path) OB_NODISCARD;

typedef struct ob_bpe_train_options {
    int vocab_size;               /* total, including the 256 byte tokens and specials */
    const char *const *specials;  /* special tokens, e.g. {"<|endoftext|>"} */
    int num_specials;
    int min_frequency;            /* pairs seen fewer times are not merged (default 2) */
    int threads;                  /* 0 = all cores */
    bool progress;                /* draw a progress bar on stderr */
} ob_bpe_train_options;

/* Trains byte-level BPE with GPT-2 pre-tokenization over the files. Deterministic. */
ob_status ob_tokenizer_train(const ob_bpe_train_options *opts, const char *const *files, int num_files,
                             ob_tokenizer **out) OB_NODISCARD;

#ifdef __cplusplus
}
#endif
#endif
