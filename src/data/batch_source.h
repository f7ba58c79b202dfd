/* Internal to src/data: the batch-source vtable that the random, sequential and
 * streaming sources implement, and helpers for their JSON cursors. */
#ifndef ONEBIT_DATA_BATCH_SOURCE_H
#define ONEBIT_DATA_BATCH_SOURCE_H

#include "onebit/data.h"

typedef struct ob_batch_source_ops {
    const char *kind; /* "random", "sequential", "stream": the cursor's "kind" */
    /* B, T and the pointers are checked by the caller. */
    ob_status (*next)(ob_batch_source *src, int B, int T, int32_t *inputs, int32_t *targets, ob_batch_rows *info);
    double (*epoch)(const ob_batch_source *src);
    ob_status (*save)(const ob_batch_source *src, cJSON *cursor);
    ob_status (*restore)(ob_batch_source *src, const cJSON *cursor, const char *source);
    void (*destroy)(ob_batch_source *src);
} ob_batch_source_ops;

struct ob_batch_source {
    const ob_batch_source_ops *ops;
    int rank, world;
    bool ends; /* passes end (sequential, non-looping stream): next() needs its info */
    char description[200];
};

ob_status ob_batch_source_init(ob_batch_source *src, const ob_batch_source_ops *ops, int rank, int world)
    OB_NODISCARD;

/* Rows of the global batch that belong to this rank: [rank*B, rank*B + B) cut
 * to the `global_rows` that exist. */
int ob_batch_rank_rows(const ob_batch_source *src, int B, int64_t global_rows);

/* 64-bit values as "0x%016llx" strings (JSON numbers lose bits past 2^53). */
ob_status ob_cursor_put_u64(cJSON *obj, const char *key, uint64_t value) OB_NODISCARD;
/* `item` is one such string; `what` names it in messages ("field 'seed'"). */
ob_status ob_cursor_item_u64(const cJSON *item, const char *source, const char *what, uint64_t *value) OB_NODISCARD;
ob_status ob_cursor_get_u64(const cJSON *obj, const char *key, const char *source, uint64_t *value) OB_NODISCARD;
ob_status ob_cursor_put_int(cJSON *obj, const char *key, int64_t value) OB_NODISCARD;
/* A required non-negative integer. */
ob_status ob_cursor_get_count(const cJSON *obj, const char *key, const char *source, uint64_t *value) OB_NODISCARD;

#endif
