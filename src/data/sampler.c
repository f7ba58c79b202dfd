/* Batch sources over a dataset of shards: random windows for training (seeded
 * ob_rng, so a run is reproducible and its cursor is just the RNG state) and
 * consecutive windows for evaluation (every target token once per pass). */
#include <stdlib.h>
#include <string.h>

#include "data/batch_source.h"
#include "onebit/json.h"

/* Reads window [start, start + T] into one row of inputs and targets. */
static ob_status read_window(const ob_dataset *ds, uint64_t start, int T, int32_t *inputs, int32_t *targets) {
    ob_status st = ob_dataset_read(ds, start, (size_t)T, inputs);
    if (st == OB_OK)
        st = ob_dataset_read(ds, start + 1, (size_t)T, targets);
    return st;
}

static ob_status check_window_fits(const ob_dataset *ds, int T, const char *what) {
    uint64_t n = ob_dataset_num_tokens(ds);
    if (n < (uint64_t)T + 1)
        return ob_error(OB_ERR_INVALID_ARG, "%s: the dataset (%s%s) has %llu tokens, fewer than one window of T + 1 "
                        "= %d", what, ob_dataset_shard_path(ds, 0), ob_dataset_num_shards(ds) > 1 ? ", ..." : "",
                        (unsigned long long)n, T + 1);
    return OB_OK;
}

static ob_status check_same_dataset(const ob_dataset *ds, const cJSON *cursor, const char *source) {
    uint64_t n;
    ob_status st = ob_cursor_get_count(cursor, "num_tokens", source, &n);
    if (st == OB_OK && n != ob_dataset_num_tokens(ds))
        st = ob_error(OB_ERR_FORMAT, "%s: the cursor was saved over %llu tokens, this dataset (%s) has %llu", source,
                      (unsigned long long)n, ob_dataset_shard_path(ds, 0),
                      (unsigned long long)ob_dataset_num_tokens(ds));
    return st;
}

static void describe(ob_batch_source *src, const char *what, const ob_dataset *ds) {
    snprintf(src->description, sizeof src->description, "%s over %llu tokens in %d shard%s (%s%s)", what,
             (unsigned long long)ob_dataset_num_tokens(ds), ob_dataset_num_shards(ds),
             ob_dataset_num_shards(ds) == 1 ? "" : "s", ob_dataset_shard_path(ds, 0),
             ob_dataset_num_shards(ds) > 1 ? ", ..." : "");
}

/* ---- random windows --------------------------------------------------------------- */

typedef struct random_source {
    ob_batch_source base;
    ob_dataset *ds;
    ob_rng rng;
    uint64_t tokens_drawn; /* by all ranks together */
} random_source;

/* Every rank draws all B*world starts so that the RNG (and so the cursor) stays
 * the same everywhere, and reads only its own rows. */
static ob_status random_next(ob_batch_source *src, int B, int T, int32_t *inputs, int32_t *targets,
                             ob_batch_rows *info) {
    random_source *r = (random_source *)src;
    ob_status st = check_window_fits(r->ds, T, "random windows");
    if (st)
        return st;
    uint64_t starts = ob_dataset_num_tokens(r->ds) - (uint64_t)T;
    int64_t global = (int64_t)B * src->world, first = (int64_t)src->rank * B;
    for (int64_t g = 0; g < global; g++) {
        uint64_t start = ob_rng_below(&r->rng, starts);
        int64_t row = g - first;
        if (row >= 0 && row < B) {
            st = read_window(r->ds, start, T, inputs + row * T, targets + row * T);
            if (st)
                return st;
        }
    }
    r->tokens_drawn += (uint64_t)global * (uint64_t)T;
    info->rows = B;
    info->global_rows = (int)global;
    return OB_OK;
}

static double random_epoch(const ob_batch_source *src) {
    const random_source *r = (const random_source *)src;
    return (double)r->tokens_drawn / (double)ob_dataset_num_tokens(r->ds);
}

static ob_status random_save(const ob_batch_source *src, cJSON *cursor) {
    const random_source *r = (const random_source *)src;
    cJSON *state = cJSON_AddArrayToObject(cursor, "rng");
    if (!state)
        return ob_error(OB_ERR_NOMEM, "out of memory saving a cursor");
    for (int i = 0; i < 4; i++) {
        char text[24];
        snprintf(text, sizeof text, "0x%016llx", (unsigned long long)r->rng.s[i]);
        cJSON *item = cJSON_CreateString(text);
        if (!item || !cJSON_AddItemToArray(state, item))
            return ob_error(OB_ERR_NOMEM, "out of memory saving a cursor");
    }
    ob_status st = ob_cursor_put_int(cursor, "tokens_drawn", (int64_t)r->tokens_drawn);
    if (st == OB_OK)
        st = ob_cursor_put_int(cursor, "num_tokens", (int64_t)ob_dataset_num_tokens(r->ds));
    return st;
}

static ob_status random_restore(ob_batch_source *src, const cJSON *cursor, const char *source) {
    random_source *r = (random_source *)src;
    ob_status st = check_same_dataset(r->ds, cursor, source);
    uint64_t drawn = 0;
    if (st == OB_OK)
        st = ob_cursor_get_count(cursor, "tokens_drawn", source, &drawn);
    if (st)
        return st;
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(cursor, "rng");
    if (!cJSON_IsArray(state) || cJSON_GetArraySize(state) != 4)
        return ob_error(OB_ERR_FORMAT, "%s: field 'rng' must be an array of 4 hex strings", source);
    ob_rng rng;
    bool nonzero = false;
    for (int i = 0; i < 4; i++) {
        char what[32];
        snprintf(what, sizeof what, "rng[%d]", i);
        st = ob_cursor_item_u64(cJSON_GetArrayItem(state, i), source, what, &rng.s[i]);
        if (st)
            return st;
        nonzero |= rng.s[i] != 0;
    }
    if (!nonzero)
        return ob_error(OB_ERR_FORMAT, "%s: field 'rng' is all zeros, not a valid xoshiro256** state", source);
    r->rng = rng;
    r->tokens_drawn = drawn;
    return OB_OK;
}

static void random_destroy(ob_batch_source *src) { free(src); }

static const ob_batch_source_ops random_ops = {
    .kind = "random",
    .next = random_next,
    .epoch = random_epoch,
    .save = random_save,
    .restore = random_restore,
    .destroy = random_destroy,
};

ob_status ob_batch_source_random(ob_dataset *ds, uint64_t seed, int rank, int world, ob_batch_source **out) {
    *out = NULL;
    random_source *r = ob_calloc(1, sizeof *r);
    if (!r)
        return OB_ERR_NOMEM;
    ob_status st = ob_batch_source_init(&r->base, &random_ops, rank, world);
    if (st) {
        free(r);
        return st;
    }
    r->ds = ds;
    ob_rng_seed(&r->rng, seed);
    describe(&r->base, "random windows", ds);
    *out = &r->base;
    return OB_OK;
}

/* ---- sequential windows ---------------------------------------------------------------- */

typedef struct sequential_source {
    ob_batch_source base;
    ob_dataset *ds;
    uint64_t pos;    /* start of the next window */
    uint64_t passes; /* completed */
} sequential_source;

static ob_status sequential_next(ob_batch_source *src, int B, int T, int32_t *inputs, int32_t *targets,
                                 ob_batch_rows *info) {
    sequential_source *s = (sequential_source *)src;
    ob_status st = check_window_fits(s->ds, T, "sequential windows");
    if (st)
        return st;
    uint64_t n = ob_dataset_num_tokens(s->ds);
    uint64_t left = s->pos + 1 < n ? (n - 1 - s->pos) / (uint64_t)T : 0;
    if (left == 0) {
        s->pos = 0;
        s->passes++;
        info->end = true;
        return OB_OK;
    }
    int64_t global = (int64_t)B * src->world;
    if ((uint64_t)global > left)
        global = (int64_t)left;
    int rows = ob_batch_rank_rows(src, B, global);
    for (int j = 0; j < rows; j++) {
        uint64_t start = s->pos + (uint64_t)((int64_t)src->rank * B + j) * (uint64_t)T;
        st = read_window(s->ds, start, T, inputs + (size_t)j * T, targets + (size_t)j * T);
        if (st)
            return st;
    }
    s->pos += (uint64_t)global * (uint64_t)T;
    info->rows = rows;
    info->global_rows = (int)global;
    return OB_OK;
}

static double sequential_epoch(const ob_batch_source *src) {
    const sequential_source *s = (const sequential_source *)src;
    return (double)s->passes + (double)s->pos / (double)ob_dataset_num_tokens(s->ds);
}

static ob_status sequential_save(const ob_batch_source *src, cJSON *cursor) {
    const sequential_source *s = (const sequential_source *)src;
    ob_status st = ob_cursor_put_int(cursor, "position", (int64_t)s->pos);
    if (st == OB_OK)
        st = ob_cursor_put_int(cursor, "passes", (int64_t)s->passes);
    if (st == OB_OK)
        st = ob_cursor_put_int(cursor, "num_tokens", (int64_t)ob_dataset_num_tokens(s->ds));
    return st;
}

static ob_status sequential_restore(ob_batch_source *src, const cJSON *cursor, const char *source) {
    sequential_source *s = (sequential_source *)src;
    uint64_t pos = 0, passes = 0;
    ob_status st = check_same_dataset(s->ds, cursor, source);
    if (st == OB_OK)
        st = ob_cursor_get_count(cursor, "position", source, &pos);
    if (st == OB_OK)
        st = ob_cursor_get_count(cursor, "passes", source, &passes);
    if (st)
        return st;
    if (pos >= ob_dataset_num_tokens(s->ds))
        return ob_error(OB_ERR_FORMAT, "%s: field 'position' = %llu is past the dataset's %llu tokens", source,
                        (unsigned long long)pos, (unsigned long long)ob_dataset_num_tokens(s->ds));
    s->pos = pos;
    s->passes = passes;
    return OB_OK;
}

static void sequential_destroy(ob_batch_source *src) { free(src); }

static const ob_batch_source_ops sequential_ops = {
    .kind = "sequential",
    .next = sequential_next,
    .epoch = sequential_epoch,
    .save = sequential_save,
    .restore = sequential_restore,
    .destroy = sequential_destroy,
};

ob_status ob_batch_source_sequential(ob_dataset *ds, int rank, int world, ob_batch_source **out) {
    *out = NULL;
    sequential_source *s = ob_calloc(1, sizeof *s);
    if (!s)
        return OB_ERR_NOMEM;
    ob_status st = ob_batch_source_init(&s->base, &sequential_ops, rank, world);
    if (st) {
        free(s);
        return st;
    }
    s->base.ends = true;
    s->ds = ds;
    describe(&s->base, "sequential windows", ds);
    *out = &s->base;
    return OB_OK;
}
