/* The byte layout of a version 2 .1bit file (docs/FORMAT.md), shared by the
 * writer and the reader: field offsets of the fixed header and of a tensor
 * table entry, and little-endian access that does not depend on the host. */
#ifndef ONEBIT_FORMAT_LAYOUT_H
#define ONEBIT_FORMAT_LAYOUT_H

#include <string.h>

#include "onebit/format.h"

/* Fixed header (OB_1BIT_HEADER_BYTES). */
enum {
    H_MAGIC = 0,          /* "1BIT" */
    H_VERSION = 4,        /* u32 */
    H_HEADER_CRC = 8,     /* u32 CRC-32 of [0, header_size) with these 4 bytes taken as zero */
    H_FLAGS = 12,         /* u32, 0 */
    H_FILE_SIZE = 16,     /* u64 */
    H_HEADER_SIZE = 24,   /* u64, multiple of 64 */
    H_TENSOR_COUNT = 32,  /* u32 */
    H_ALIGNMENT = 36,     /* u32, 64 */
    H_TABLE_OFFSET = 40,  /* u64 */
    H_STRINGS_OFFSET = 48, /* u64 */
    H_STRINGS_SIZE = 56,  /* u64 */
    H_CONFIG_OFFSET = 64, /* u64 */
    H_CONFIG_SIZE = 72,   /* u64 */
    H_TOKENIZER_OFFSET = 80, /* u64 */
    H_TOKENIZER_SIZE = 88,   /* u64 */
    H_RESERVED = 96,      /* 32 zero bytes */
};

/* Tensor table entry (OB_1BIT_ENTRY_BYTES). */
enum {
    E_NAME_OFFSET = 0,    /* u32, into the string area */
    E_NAME_SIZE = 4,      /* u32 */
    E_DTYPE = 8,          /* u32 code */
    E_NDIMS = 12,         /* u32 */
    E_DIMS = 16,          /* u64[4] */
    E_DATA_OFFSET = 48,   /* u64, absolute, multiple of 64 */
    E_DATA_SIZE = 56,     /* u64 */
    E_SCALES_OFFSET = 64, /* u64, absolute, multiple of 4; 0 without scales */
    E_SCALE_COUNT = 72,   /* u32 */
    E_CRC = 76,           /* u32 CRC-32 of the data bytes, then the scale bytes */
    E_RESERVED = 80,      /* 16 zero bytes */
};

#define OB_1BIT_MAX_NAME 1024
#define OB_1BIT_MAX_TENSORS (1 << 20)

static inline void le_put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void le_put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t le_get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t le_get64(const uint8_t *p) { return (uint64_t)le_get32(p) | (uint64_t)le_get32(p + 4) << 32; }

static inline uint64_t align_up64(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

/* The dtype of a file code; false for an unknown code. */
bool ob_1bit_dtype_from_code(uint32_t code, ob_dtype *out);

#endif
