/* Internal to src/data: the list of input files and the document reader shared
 * by the tokenize pipeline and the streaming batch source, so that both cut the
 * same text into the same documents and pieces. */
#ifndef ONEBIT_DATA_DOCUMENTS_H
#define ONEBIT_DATA_DOCUMENTS_H

#include "onebit/data.h"

/* Long documents are encoded in pieces of about this many bytes (at most twice
 * as many), cut where no pre-token can span the cut. */
#define OB_PIECE_BYTES 65536

typedef struct ob_input_file {
    char *path;
    ob_input_format format; /* resolved: never AUTO */
    uint64_t size;
    bool force_val;         /* from --val-input */
} ob_input_file;

typedef struct ob_input_list {
    ob_input_file *files;
    int count, capacity;
    uint64_t total_bytes;
} ob_input_list;

/* Appends the files named by `paths` (directories: recursive, sorted by name,
 * hidden entries skipped). Missing, unreadable and empty files are errors. */
ob_status ob_inputs_collect(ob_input_list *list, const char *const *paths, int num_paths, ob_input_format format,
                            bool force_val) OB_NODISCARD;
void ob_inputs_free(ob_input_list *list);

/* Where a piece starts: enough to reopen the reader there. */
typedef struct ob_doc_pos {
    uint64_t doc_offset;   /* byte offset in the file of the document (JSONL: of its line) */
    uint64_t piece_offset; /* byte offset of the piece in the document's text */
    uint64_t line;         /* JSONL: 1-based line of the document; else 0 */
} ob_doc_pos;

typedef struct ob_piece {
    const char *text;
    size_t len;
    bool first, last;  /* of its document */
    uint64_t doc_hash; /* fnv1a64 of the whole document's text */
    ob_doc_pos pos;
    bool unsafe_cut;   /* ends at a forced cut (no safe cut point nearby) */
    char *release;     /* free() once the piece is encoded (the last piece of a heap document) */
} ob_piece;

typedef struct ob_doc_reader {
    const ob_input_file *file;
    ob_doc_split split;
    const char *text_field;
    const char *eot;   /* separator text for OB_DOC_SPLIT_EOT */
    ob_mapping map;
    const char *data;
    size_t size;
    size_t piece_bytes; /* OB_PIECE_BYTES; smaller only to test cutting on small inputs */
    size_t pos;        /* next byte to scan for a document */
    uint64_t line;     /* JSONL lines consumed */
    /* the current document */
    bool active;
    const char *doc;
    size_t doc_len;
    char *doc_owned;
    ob_doc_pos doc_pos;
    uint64_t doc_hash;
    size_t piece_pos;
    uint64_t skipped_empty;
} ob_doc_reader;

/* Maps the file and refuses binary content (a NUL byte, or more than 1% of the
 * bytes not valid UTF-8). TKN2 files are not documents: an error. */
ob_status ob_doc_reader_open(ob_doc_reader *r, const ob_input_file *file, ob_doc_split split, const char *text_field)
    OB_NODISCARD;
/* *have = false at the end of the file. */
ob_status ob_doc_reader_next(ob_doc_reader *r, ob_piece *piece, bool *have) OB_NODISCARD;
/* Positions the reader so that the next piece is the one that started at `pos`. */
ob_status ob_doc_reader_seek(ob_doc_reader *r, const ob_doc_pos *pos) OB_NODISCARD;
/* Bytes of the file scanned so far (for progress bars). */
uint64_t ob_doc_reader_offset(const ob_doc_reader *r);
void ob_doc_reader_close(ob_doc_reader *r);

uint64_t ob_fnv1a64(const char *text, size_t len);
/* The split rule on a document's hash. */
bool ob_split_hash_is_val(uint64_t doc_hash, uint64_t seed, double val_fraction);

#endif
