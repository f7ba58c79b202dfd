/* Exported model files: the .1bit container (version 2 written and read,
 * OneBit-LLM's version 1 read), the export pipeline from a checkpoint, and the
 * self-contained C header of the embedded runtime. docs/FORMAT.md specifies
 * the .1bit bytes; docs/EMBEDDED.md the header and the embedded runtime.
 *
 * A .1bit file stores the runtime's packed layout (include/onebit/infer.h)
 * byte for byte, each tensor 64-byte aligned, so the runtime maps the file and
 * uses its tensors in place. The reader checks every field, offset and length,
 * the checksums and the integer codes before it hands anything out. */
#ifndef ONEBIT_FORMAT_H
#define ONEBIT_FORMAT_H

#include "onebit/infer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OB_1BIT_VERSION 2
#define OB_1BIT_ALIGN 64
#define OB_1BIT_MAX_DIMS 4
#define OB_1BIT_HEADER_BYTES 128 /* the fixed part of a version 2 header */
#define OB_1BIT_ENTRY_BYTES 96   /* one tensor table entry */
#define OB_1BIT_MAX_DIM (1 << 30) /* every dimension is 1 .. 2^30 (padded rows stay in int) */

/* ---- CRC-32 ------------------------------------------------------------------ */

/* CRC-32 of ISO-HDLC (the zlib and PNG checksum: reflected polynomial
 * 0xEDB88320, initial and final xor 0xFFFFFFFF). Start with crc = 0; pass the
 * result back in to continue over more bytes. */
uint32_t ob_crc32(uint32_t crc, const void *data, size_t n);

/* ---- .1bit files ---------------------------------------------------------------- */

/* One tensor. dtype is F32, F16, I8, FOURBIT, TERNARY2 or BINARY1; quantised
 * dtypes are matrices [rows, cols] in the packed layout (rows padded to 256
 * weights), float ones hold ndims dimensions without padding. */
typedef struct ob_1bit_tensor {
    const char *name;
    ob_dtype dtype;
    int ndims;
    int64_t shape[OB_1BIT_MAX_DIMS];
    const void *data;
    uint64_t data_bytes;
    const float *scales; /* rows (I8, FOURBIT), 1 (TERNARY2, BINARY1) or 0 floats */
    int num_scales;
} ob_1bit_tensor;

/* What the writer writes: config.json text (required), tokenizer.json text
 * (may be empty) and the tensors, in this order in the file. */
typedef struct ob_1bit_contents {
    const char *config_json;
    size_t config_len;
    const char *tokenizer_json;
    size_t tokenizer_len;
    const ob_1bit_tensor *tensors;
    int num_tensors;
} ob_1bit_contents;

/* The file code a dtype has in the tensor table (1 f32, 2 f16, 3 int8,
 * 4 fourbit, 5 ternary2, 6 binary1); 0 for a dtype .1bit cannot hold. */
uint32_t ob_1bit_dtype_code(ob_dtype dtype);
/* Bytes the data of a tensor takes: float elements, or rows · packed row bytes. */
uint64_t ob_1bit_data_bytes(ob_dtype dtype, int ndims, const int64_t *shape);

/* Writes a version 2 file atomically. Every tensor is checked first (unique
 * non-empty UTF-8 name, a .1bit dtype, 1..4 positive dimensions, 2 for
 * quantised dtypes, data and scale counts that match the shape). The same
 * contents give the same bytes. */
ob_status ob_1bit_write(const char *path, const ob_1bit_contents *c) OB_NODISCARD;

typedef struct ob_1bit_read_options {
    /* Skip the header and tensor checksums and the scan of the integer codes
     * (fuzzing reaches the structural checks this way; never for real use). */
    bool skip_data_checks;
} ob_1bit_read_options;

typedef struct ob_1bit_file {
    char *source;               /* the path, for messages */
    int version;                /* 1 (OneBit-LLM) or 2 */
    const char *config_json;    /* not NUL-terminated */
    size_t config_len;
    const char *tokenizer_json; /* not NUL-terminated; length 0 when absent */
    size_t tokenizer_len;
    ob_1bit_tensor *tensors;    /* in file order */
    int num_tensors;
    uint64_t file_bytes, header_bytes;
    /* storage: the mapping (or caller's bytes), and what version 1 unpacks */
    ob_mapping map;
    bool mapped;
    void *owned;
} ob_1bit_file;

/* Maps a .1bit file (version 2: views into the mapping, no copy; version 1:
 * its codes repacked into the packed layout with scale 1, since version 1
 * stores no scales) after validating all of it. Errors name the file, the
 * tensor and the field. `opts` may be NULL. */
ob_status ob_1bit_open(const char *path, const ob_1bit_read_options *opts, ob_1bit_file **out) OB_NODISCARD;
/* The same over bytes in memory, which must stay valid and unchanged until
 * ob_1bit_close and start on a 64-byte boundary. */
ob_status ob_1bit_open_memory(const void *data, size_t size, const char *source, const ob_1bit_read_options *opts,
                              ob_1bit_file **out) OB_NODISCARD;
void ob_1bit_close(ob_1bit_file *f);
/* NULL when absent. */
const ob_1bit_tensor *ob_1bit_find(const ob_1bit_file *f, const char *name);

/* ---- packed models in .1bit files ------------------------------------------------ */

/* Writes a packed model with its config and tokenizer.json text (may be NULL). */
ob_status ob_1bit_write_model(const char *path, const ob_packed_model *pm, const char *tokenizer_json,
                              size_t tokenizer_len) OB_NODISCARD;
/* Builds a packed model over the tensors of an open file, which the model
 * then owns (closed by ob_packed_model_free, also on failure). The tensors
 * must be exactly those the embedded config needs, with their shapes and the
 * dtypes of their modes. */
ob_status ob_packed_model_from_1bit(ob_1bit_file *f, ob_packed_model **out) OB_NODISCARD;

/* ---- export --------------------------------------------------------------------- */

typedef enum ob_pack_mode_choice {
    OB_PACK_MODE_CONFIG = 0, /* as the checkpoint's config says */
    OB_PACK_MODE_TERNARY,
    OB_PACK_MODE_BINARY,
} ob_pack_mode_choice;

typedef struct ob_export_options {
    const char *model_dir;        /* checkpoint directory (or a training output with 'latest') */
    const char *output;           /* the .1bit file */
    ob_pack_mode_choice pack_mode;
    /* Pack-mode differs from the checkpoint's binary/ternary layers: repack
     * their latent weights with the other quantiser (a different model than
     * the one trained) instead of refusing. */
    bool change_mode;
    ob_table_precision embed;     /* f32 (AUTO), f16 or int8: the embedding table and an untied head */
    const char *c_header;         /* also write this C header (NULL: none) */
    bool verify;                  /* reopen the file and compare logits with the checkpoint's, bit for bit */
} ob_export_options;

/* Bytes per kind of tensor in an exported file (the size table). */
typedef enum ob_size_kind {
    OB_SIZE_EMBEDDING = 0,
    OB_SIZE_POSITIONS,
    OB_SIZE_ATTENTION,
    OB_SIZE_FFN,
    OB_SIZE_NORMS,
    OB_SIZE_HEAD,
    OB_SIZE_METADATA, /* the header: config, tokenizer, tensor table, names */
    OB_SIZE_PADDING,  /* alignment gaps */
    OB_SIZE_KIND_COUNT
} ob_size_kind;

typedef struct ob_size_report {
    int tensors[OB_SIZE_KIND_COUNT];
    uint64_t bytes[OB_SIZE_KIND_COUNT];
    uint64_t weights[OB_SIZE_KIND_COUNT]; /* parameters of each kind */
    uint64_t total_bytes, total_weights;
    uint64_t quantised_bytes, quantised_weights; /* binary/ternary/4-/8-bit decoder matrices */
    uint64_t header_bytes;                       /* the C header's size, when written */
    int verified_tokens;                          /* logits compared by --verify (0: not run) */
} ob_size_report;

const char *ob_size_kind_name(ob_size_kind k);
/* Accounts the tensors and the rest of an open .1bit file by kind. */
void ob_1bit_size_report(const ob_1bit_file *f, ob_size_report *r);

/* Checkpoint → .1bit (and optionally a C header): packs with the training
 * quantiser, writes, reopens and validates the file. `report` may be NULL. */
ob_status ob_export(const ob_export_options *o, ob_size_report *report) OB_NODISCARD;

/* ---- C header for the embedded runtime ---------------------------------------------- */

/* Why the embedded runtime cannot run this model (NULL when it can): it runs
 * integer kernels only, so every decoder layer must be ternary, binary,
 * fourbit or eightbit with activation_bits 2..8. */
const char *ob_embedded_unsupported(const ob_config *cfg);
/* Writes one self-contained C header (embedded/onebit_embedded.h's obe_model
 * named `onebit_model`, the weights as aligned const arrays, the rotary
 * tables, the vocabulary as bytes). `tok` may be NULL (no vocabulary). */
ob_status ob_c_header_write(const char *path, const ob_packed_model *pm, const ob_tokenizer *tok) OB_NODISCARD;

#ifdef __cplusplus
}
#endif
#endif
