/* Training data: token shards in llm.c's .bin format (written atomically, read
 * through mmap and fully validated), OneBit-LLM's TKN2 .tokens files, datasets
 * over many shards, and one batch-source abstraction the trainer pulls
 * (inputs, targets) batches from: random windows for training, sequential
 * windows for evaluation, or raw text tokenized on the fly. Also the pipeline
 * behind `onebit tokenize`. docs/DATA.md explains the rules; docs/FORMAT.md the
 * byte layouts. */
#ifndef ONEBIT_DATA_H
#define ONEBIT_DATA_H

#include <cjson/cJSON.h>

#include "onebit/common.h"
#include "onebit/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- token shards (llm.c .bin) ------------------------------------------- */

/* Header: 256 little-endian int32; [0] magic, [1] version, [2] token count; the
 * tokens follow. uint16 tokens: llm.c's GPT-2 layout. uint32 tokens: llm.c's
 * Llama-3 layout, for vocabularies with ids above 65,535. */
#define OB_SHARD_HEADER_INTS 256
#define OB_SHARD_HEADER_BYTES (OB_SHARD_HEADER_INTS * 4)
#define OB_SHARD_MAGIC_U16 20240520
#define OB_SHARD_VERSION_U16 1
#define OB_SHARD_MAGIC_U32 20240801
#define OB_SHARD_VERSION_U32 7
/* The header's token count is an int32. */
#define OB_SHARD_MAX_TOKENS 2147483647ull

typedef enum ob_token_dtype {
    OB_TOKENS_AUTO = 0, /* pick from the vocabulary size (writers only) */
    OB_TOKENS_U16 = 2,
    OB_TOKENS_U32 = 4,
} ob_token_dtype;

/* uint16 when every id of a vocabulary of `vocab_size` fits (<= 65,536), else uint32. */
ob_token_dtype ob_token_dtype_for_vocab(int64_t vocab_size);
/* "uint16" / "uint32". */
const char *ob_token_dtype_name(ob_token_dtype dtype);

/* A validated view of token bytes inside a buffer (a mapped shard or a TKN2 file). */
typedef struct ob_token_view {
    const uint8_t *data; /* first token */
    uint64_t count;
    ob_token_dtype dtype;
} ob_token_view;

static inline uint32_t ob_token_view_get(const ob_token_view *v, uint64_t i) {
    const uint8_t *p = v->data + i * (uint64_t)v->dtype;
    if (v->dtype == OB_TOKENS_U16)
        return (uint32_t)p[0] | (uint32_t)p[1] << 8;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Validates a whole shard held in memory: magic, version, a non-negative token
 * count and a size of exactly header + count tokens. `source` names it in
 * messages ("data/x_train_000000.bin: token count 5000 in the header needs
 * 11024 bytes, the file has 4096"). */
ob_status ob_shard_parse(const void *bytes, size_t size, const char *source, ob_token_view *out) OB_NODISCARD;

/* Writes one shard atomically; ids must fit the dtype. */
ob_status ob_shard_write(const char *path, ob_token_dtype dtype, const int32_t *ids, size_t count) OB_NODISCARD;

/* A shard written piece by piece (the count is patched into the header on commit). */
typedef struct ob_shard_writer ob_shard_writer;
ob_status ob_shard_writer_open(const char *path, ob_token_dtype dtype, ob_shard_writer **out) OB_NODISCARD;
ob_status ob_shard_writer_append(ob_shard_writer *w, const int32_t *ids, size_t count) OB_NODISCARD;
uint64_t ob_shard_writer_count(const ob_shard_writer *w);
/* Finishes the file and frees the writer (also on failure). */
ob_status ob_shard_writer_commit(ob_shard_writer *w) OB_NODISCARD;
/* Drops the partial file and frees the writer. */
void ob_shard_writer_abort(ob_shard_writer *w);

/* ---- OneBit-LLM TKN2 .tokens files (read only) --------------------------- */

/* "TKN2", uint64 LE count, count x uint32 LE ids; no document boundaries. */
#define OB_TKN2_HEADER_BYTES 12
ob_status ob_tkn2_parse(const void *bytes, size_t size, const char *source, ob_token_view *out) OB_NODISCARD;

/* ---- datasets: many shards as one token sequence ------------------------- */

/* Shards are memory-mapped (never read whole: data bigger than RAM works) and
 * concatenated in the order given into one sequence of tokens. */
typedef struct ob_dataset ob_dataset;

/* `paths` are shard files. */
ob_status ob_dataset_open(const char *const *paths, int num_paths, ob_dataset **out) OB_NODISCARD;
/* `path` is a shard file, a directory (every *_<split>_*.bin in it, sorted by
 * name) or a prefix ("out/tiny" opens out/tiny_<split>_*.bin). split is "train"
 * or "val". */
ob_status ob_dataset_open_split(const char *path, const char *split, ob_dataset **out) OB_NODISCARD;
void ob_dataset_free(ob_dataset *ds);

uint64_t ob_dataset_num_tokens(const ob_dataset *ds);
int ob_dataset_num_shards(const ob_dataset *ds);
const char *ob_dataset_shard_path(const ob_dataset *ds, int index);
/* Tokens read afterwards must be < vocab_size (0 = no check); a token out of
 * range is an error naming the shard, the position and the value. */
void ob_dataset_set_vocab_size(ob_dataset *ds, int64_t vocab_size);
/* Copies tokens [start, start + count) (crossing shard boundaries) as int32. */
ob_status ob_dataset_read(const ob_dataset *ds, uint64_t start, size_t count, int32_t *out) OB_NODISCARD;

/* ---- batch sources ------------------------------------------------------- */

/* Everything the trainer draws batches from. A batch is B rows of T + 1
 * consecutive tokens ("windows"): inputs[b*T + t] = window_b[t] and
 * targets[b*T + t] = window_b[t + 1].
 *
 * Data parallelism: all ranks walk the same global stream of batches of
 * B * world rows; rank r gets rows [r*B, (r+1)*B) of each. The ranks' rows are
 * disjoint and together equal the batch one process with B * world rows gets.
 * All ranks hold the same cursor. */
typedef struct ob_batch_source ob_batch_source;

/* Random windows (start uniform over [0, N - T - 1]) drawn with ob_rng from
 * `seed`; never ends. Borrows `ds`, which must outlive the source. */
ob_status ob_batch_source_random(ob_dataset *ds, uint64_t seed, int rank, int world,
                                 ob_batch_source **out) OB_NODISCARD;
/* Consecutive windows starting at tokens 0, T, 2T, ...: the targets of one pass
 * cover tokens 1 .. W*T exactly once, W = floor((N - 1) / T); the last
 * (N - 1) mod T tokens, too few for a whole window, are left out. */
ob_status ob_batch_source_sequential(ob_dataset *ds, int rank, int world, ob_batch_source **out) OB_NODISCARD;

typedef enum ob_input_format {
    OB_INPUT_AUTO = 0, /* *.jsonl: JSONL; *.tokens or "TKN2" magic: TKN2; else text */
    OB_INPUT_TEXT,
    OB_INPUT_JSONL,
    OB_INPUT_TKN2,
} ob_input_format;

typedef enum ob_doc_split {
    OB_DOC_SPLIT_FILE = 0,   /* a text file is one document */
    OB_DOC_SPLIT_BLANK_LINE, /* documents are separated by blank lines (TinyStories) */
    OB_DOC_SPLIT_EOT,        /* documents are separated by the text "<|endoftext|>" */
} ob_doc_split;

/* Which documents a stream or a tokenize run keeps (see docs/DATA.md, split rule). */
typedef enum ob_split_select {
    OB_SPLIT_ALL = 0,
    OB_SPLIT_TRAIN,
    OB_SPLIT_VAL,
} ob_split_select;

typedef struct ob_stream_options {
    const char *const *inputs; /* text or JSONL files, or directories (recursive, sorted) */
    int num_inputs;
    ob_input_format format;
    const char *text_field;    /* JSONL field holding the text (NULL: "text") */
    ob_doc_split doc_split;
    ob_split_select split;     /* keep the train or val documents of the split rule, or all */
    double val_fraction;
    uint64_t split_seed;
    bool loop;                 /* start over at the end (training); else end like sequential */
} ob_stream_options;

/* Tokenizes the inputs while batches are drawn: documents in order, each
 * preceded by the EOS token, windows following each other with one token of
 * overlap, so no token is dropped between batches; memory is bounded by one
 * batch plus one piece of text (at most 128 KiB). Borrows `tok` and the option
 * strings. */
ob_status ob_batch_source_stream(const ob_stream_options *opts, const ob_tokenizer *tok, int rank, int world,
                                 ob_batch_source **out) OB_NODISCARD;

/* What one call to ob_batch_source_next filled. */
typedef struct ob_batch_rows {
    int rows;        /* rows of this rank filled: B, or fewer in the last batch of a pass */
    int global_rows; /* rows of the global batch, all ranks together */
    bool end;        /* the pass is over and nothing was filled; the next call starts a new one */
} ob_batch_rows;

/* Fills inputs and targets (B*T int32 each). Random and looping stream sources
 * always fill all B rows and `info` may be NULL; sequential and non-looping
 * stream sources need `info`: the last batch of a pass may have fewer rows
 * (a rank may get 0 while others get some: keep stepping while !end), and the
 * call after it reports end. */
ob_status ob_batch_source_next(ob_batch_source *src, int B, int T, int32_t *inputs, int32_t *targets,
                               ob_batch_rows *info) OB_NODISCARD;
/* Passes over the data so far, fractional (random: tokens drawn / N). */
double ob_batch_source_epoch(const ob_batch_source *src);
/* One line for logs ("random windows over 1.23M tokens in 2 shards"). */
const char *ob_batch_source_describe(const ob_batch_source *src);

/* The cursor: restoring it into a fresh source over the same data continues
 * exactly where the saved one was. The JSON object is for trainer_state.json;
 * the text forms are conveniences. */
ob_status ob_batch_source_save_json(const ob_batch_source *src, cJSON **out) OB_NODISCARD;
ob_status ob_batch_source_restore_json(ob_batch_source *src, const cJSON *cursor, const char *source) OB_NODISCARD;
ob_status ob_batch_source_save(const ob_batch_source *src, char **json_text) OB_NODISCARD;
ob_status ob_batch_source_restore(ob_batch_source *src, const char *json_text) OB_NODISCARD;
void ob_batch_source_free(ob_batch_source *src);

/* ---- the tokenize pipeline ------------------------------------------------ */

typedef struct ob_tokenize_options {
    const char *const *inputs;     /* files or directories (recursive, sorted) */
    int num_inputs;
    const char *const *val_inputs; /* documents that all go to validation (then no val_fraction) */
    int num_val_inputs;
    const char *output_dir;
    const char *prefix;            /* shard names: <prefix>_train_000000.bin, <prefix>_val_000000.bin */
    const ob_tokenizer *tokenizer; /* may be NULL when every input is a TKN2 file */
    ob_input_format format;
    const char *text_field;        /* NULL: "text" */
    ob_doc_split doc_split;
    double val_fraction;
    uint64_t seed;
    uint64_t shard_tokens;         /* tokens per shard, at most OB_SHARD_MAX_TOKENS */
    ob_token_dtype dtype;          /* OB_TOKENS_AUTO: from the vocabulary */
    int threads;                   /* 0: all cores */
    bool progress;                 /* progress bar on stderr */
    bool force;                    /* delete shards of the same prefix first */
} ob_tokenize_options;

typedef struct ob_tokenize_split_stats {
    uint64_t documents;
    uint64_t tokens; /* including one EOS per document */
    uint64_t text_bytes;
    uint64_t text_tokens; /* tokens of text only (no EOS), for bytes per token */
    int shards;
} ob_tokenize_split_stats;

typedef struct ob_tokenize_stats {
    ob_tokenize_split_stats train, val;
    uint64_t files;
    uint64_t skipped_empty_documents;
    uint64_t unsafe_cuts; /* long documents cut where a pre-token might span the cut */
    ob_token_dtype dtype;
    int threads;
    double seconds;
} ob_tokenize_stats;

/* Defaults: val_fraction 0.005, seed 1337, shard_tokens 100M, auto dtype. */
void ob_tokenize_options_default(ob_tokenize_options *opts);
ob_status ob_tokenize(const ob_tokenize_options *opts, ob_tokenize_stats *stats) OB_NODISCARD;

/* True when the document with this text goes to validation under the split
 * rule: splitmix64(fnv1a64(text) ^ splitmix64(seed)) / 2^64 < val_fraction. */
bool ob_split_is_val(const char *text, size_t len, uint64_t seed, double val_fraction);

#ifdef __cplusplus
}
#endif
#endif
