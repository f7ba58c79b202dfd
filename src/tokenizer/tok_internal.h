/* Internal layout of a loaded tokenizer, shared by the files of src/tokenizer/:
 * token bytes, the byte-level alphabet, the hash maps used by the encoder (merge
 * ranks keyed on token-id pairs, token bytes to id), the compiled pre-tokenizer
 * regex and the per-call encoder workspace. Nothing here is public API. */
#ifndef ONEBIT_TOKENIZER_INTERNAL_H
#define ONEBIT_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "onebit/tokenizer.h"

/* Upper bound on the vocabulary size we accept (ids must stay well inside int32). */
#define TOK_MAX_VOCAB (1 << 24)

/* ---- byte-level alphabet (GPT-2's bytes_to_unicode) -------------------- */

/* Code point that stands for byte b in vocabulary spellings. */
uint32_t tok_byte_to_cp(uint8_t b);
/* Byte for a code point of the alphabet, or -1 if the code point is not in it. */
int tok_cp_to_byte(uint32_t cp);
/* Decodes a vocabulary spelling (UTF-8 of alphabet characters) into raw bytes;
 * out must hold len bytes. Returns the byte count, or -1 if the spelling has a
 * character outside the alphabet or is not valid UTF-8. */
long tok_spelling_to_bytes(const char *spelling, size_t len, uint8_t *out);
/* Writes the spelling of raw bytes (at most 2 UTF-8 bytes per byte) to out,
 * NUL-terminated; returns its length. */
size_t tok_bytes_to_spelling(const uint8_t *bytes, size_t len, char *out);

/* Decodes one UTF-8 sequence at s[0..n); returns its length (1..4) and the code
 * point, or 0 when the bytes there are not a well-formed sequence. */
int tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
/* Offset of the first byte that is not part of well-formed UTF-8, or n. */
size_t tok_utf8_first_invalid(const uint8_t *s, size_t n);

/* ---- hash maps ------------------------------------------------------------ */

uint64_t tok_hash_bytes(const uint8_t *p, size_t n);

/* (left id, right id) -> (rank, merged id); open addressing, linear probing. */
typedef struct tok_pair_map {
    uint64_t *keys; /* UINT64_MAX marks an empty slot */
    uint32_t *ranks;
    int32_t *merged;
    size_t mask;
    size_t count;
} tok_pair_map;

ob_status tok_pair_map_init(tok_pair_map *m, size_t expected);
void tok_pair_map_free(tok_pair_map *m);
/* false if the pair is already present (nothing is changed). */
bool tok_pair_map_insert(tok_pair_map *m, int32_t left, int32_t right, uint32_t rank, int32_t merged);

static inline uint64_t tok_pair_key(int32_t left, int32_t right) {
    return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
}

/* Rank of merging (left, right), or UINT32_MAX if no merge exists. */
static inline uint32_t tok_pair_rank(const tok_pair_map *m, int32_t left, int32_t right, int32_t *merged) {
    uint64_t key = tok_pair_key(left, right);
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & m->mask;
    for (;;) {
        uint64_t k = m->keys[i];
        if (k == key) {
            if (merged)
                *merged = m->merged[i];
            return m->ranks[i];
        }
        if (k == UINT64_MAX)
            return UINT32_MAX;
        i = (i + 1) & m->mask;
    }
}

/* Token bytes -> id, over the token bytes stored in the tokenizer. */
typedef struct tok_bytes_map {
    int32_t *slots; /* id + 1; 0 marks an empty slot */
    size_t mask;
} tok_bytes_map;

/* ---- the tokenizer ---------------------------------------------------------- */

enum {
    TOK_IN_MODEL = 1, /* listed in model.vocab */
    TOK_ADDED = 2,    /* listed in added_tokens: matched in text before pre-tokenization */
    TOK_SPECIAL = 4,  /* added token with special = true: matched only when allowed */
    TOK_DIRECT = 8,   /* a piece equal to this token's bytes encodes to this token alone */
};

struct ob_tokenizer {
    int n_vocab;
    uint8_t *blob; /* bytes of every token, concatenated */
    size_t blob_len, blob_cap;
    uint32_t *start; /* per id: offset into blob */
    uint32_t *len;   /* per id: byte count */
    uint8_t *flags;  /* per id: TOK_* */
    int32_t byte_id[256];

    tok_bytes_map by_bytes; /* every model token's bytes -> id */
    tok_bytes_map direct;   /* TOK_DIRECT tokens only: the encoder's whole-piece shortcut */
    tok_pair_map merges;
    int32_t (*merge_list)[2]; /* merges in rank order, kept for saving */
    int n_merges, merge_cap;

    int32_t *added; /* ids of added tokens, in file order */
    int n_added;

    bool add_prefix_space;
    bool ignore_merges;
    int eos_id;
    pcre2_code *regex;
};

/* Building a tokenizer (loaders and trainer): allocate, set every token, index,
 * add merges in rank order, then finish (added tokens, checks, regex). */
ob_status tok_create(int n_vocab, ob_tokenizer **out);
ob_status tok_set_token(ob_tokenizer *tok, int32_t id, const uint8_t *bytes, size_t len, uint8_t flags);
/* Builds the bytes -> id index over TOK_IN_MODEL tokens; `source` names the file. */
ob_status tok_index(ob_tokenizer *tok, const char *source);
/* Id of a model token with exactly these bytes, or -1. */
int32_t tok_lookup(const ob_tokenizer *tok, const tok_bytes_map *map, const uint8_t *bytes, size_t len);
/* Builds a map over the ids whose flags include all of `need`. */
ob_status tok_bytes_map_build(const ob_tokenizer *tok, tok_bytes_map *map, uint8_t need);
/* Adds merge number n_merges (its rank). On a bad merge it returns
 * OB_ERR_FORMAT without a message and says why in *problem; the caller, which
 * knows the file and line, writes the message. */
typedef enum tok_merge_problem {
    TOK_MERGE_OK,
    TOK_MERGE_UNKNOWN_RESULT, /* the two tokens joined are not a vocabulary token */
    TOK_MERGE_DUPLICATE,      /* the same pair was merged earlier */
} tok_merge_problem;
ob_status tok_add_merge(ob_tokenizer *tok, int32_t left, int32_t right, tok_merge_problem *problem);
ob_status tok_finish(ob_tokenizer *tok, const char *source);

/* Builds a tokenizer from a parsed tokenizer.json tree. When the merges came
 * from a merges.txt, `ms` names that file, the vocab file and each merge's line
 * for messages; NULL for a real tokenizer.json. */
typedef struct tok_merge_source {
    const char *path;
    const char *vocab_path;
    const int *lines;
} tok_merge_source;
struct cJSON;
ob_status tok_from_tree(const struct cJSON *root, const char *source, const tok_merge_source *ms, ob_tokenizer **out);

/* ---- pre-tokenization and BPE ----------------------------------------------- */

/* GPT-2's split pattern. */
extern const char tok_gpt2_pattern[];
ob_status tok_compile_regex(pcre2_code **out);

#define TOK_CACHE_SLOTS 4096
#define TOK_CACHE_MAX_BYTES 31
#define TOK_CACHE_MAX_IDS 15

/* One cached piece: its bytes and the ids they encode to. */
typedef struct tok_cache_entry {
    uint8_t nbytes;
    uint8_t nids;
    uint8_t bytes[TOK_CACHE_MAX_BYTES];
    int32_t ids[TOK_CACHE_MAX_IDS];
} tok_cache_entry;

/* Scratch for one encoding call (or one thread): regex match data, a sanitised
 * copy of text with invalid UTF-8, BPE arrays and a cache of encoded pieces.
 * Everything grows as needed and is reused across pieces. */
typedef struct tok_work {
    pcre2_match_data *match;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    bool jit; /* the pattern was JIT-compiled */
    uint8_t *clean;
    size_t clean_cap;
    int32_t *ids;
    uint32_t *ranks;
    int32_t *next, *prev;
    uint64_t *heap;
    size_t cap;
    tok_cache_entry *cache; /* NULL: no cache (short inputs) */
} tok_work;

ob_status tok_work_init(tok_work *w, const ob_tokenizer *tok, bool with_cache);
void tok_work_free(tok_work *w);

/* Calls fn(piece start, piece length) for every pre-tokenizer piece of
 * text[0..len) (no special-token handling). Invalid UTF-8 bytes split like
 * U+FFFD does. */
typedef ob_status (*tok_piece_fn)(void *ctx, const uint8_t *piece, size_t n);
ob_status tok_split(const ob_tokenizer *tok, tok_work *w, const uint8_t *text, size_t len, tok_piece_fn fn,
                    void *ctx);

/* Appends the BPE ids of one piece. */
ob_status tok_bpe_piece(const ob_tokenizer *tok, tok_work *w, const uint8_t *piece, size_t n, ob_tokens *out);
/* BPE by the merge ranks alone, no whole-piece shortcut or cache; writes at most
 * n ids to ids and returns their count (used to find TOK_DIRECT tokens). */
ob_status tok_bpe_merge(const ob_tokenizer *tok, tok_work *w, const uint8_t *piece, size_t n, int32_t *ids,
                        size_t *count);

/* Encodes with a caller-owned workspace (the parallel encoder keeps one per thread). */
ob_status tok_encode_with(const ob_tokenizer *tok, tok_work *w, const uint8_t *text, size_t len, bool allow_special,
                          ob_tokens *out);

#endif
