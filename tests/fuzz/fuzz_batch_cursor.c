/* Fuzz target for batch-source cursors (the JSON a checkpoint's
 * trainer_state.json carries): the input is restored into a random, a
 * sequential and a text-stream source over small fixed data, and a restored
 * source must draw a batch. The stream part needs the GPT-2 tokenizer from
 * $ONEBIT_DATA_DIR (or ../shared/data) and is skipped without it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/data.h"

static ob_dataset *dataset;
static ob_tokenizer *tokenizer;
static char text_path[512];

/* Fixed files under $TMPDIR/onebit_fuzz_cursor, so that seed cursors can name them. */
static void setup(void) {
    ob_log_set_level(OB_LOG_ERROR);
    const char *tmp = getenv("TMPDIR");
    char dir[400], shard[512];
    snprintf(dir, sizeof dir, "%s/onebit_fuzz_cursor", tmp && *tmp ? tmp : "/tmp");
    snprintf(shard, sizeof shard, "%s/a_train_000000.bin", dir);
    snprintf(text_path, sizeof text_path, "%s/text.txt", dir);
    int32_t ids[300];
    for (int i = 0; i < 300; i++)
        ids[i] = i;
    /* 20 short paragraphs, one of 140,000 bytes (read in pieces), 5 short ones. */
    const char *words[] = {"alpha", "beta,", "gamma\n", "x", "Delta."};
    size_t cap = 200000, n = 0;
    char *text = malloc(cap);
    ob_rng rng;
    ob_rng_seed(&rng, 1);
    for (int para = 0; para < 26 && text; para++) {
        size_t target = n + (para == 20 ? 140000 : 300);
        while (n < target) {
            const char *w = words[ob_rng_below(&rng, 5)];
            n += (size_t)snprintf(text + n, cap - n, "%s ", w);
        }
        n += (size_t)snprintf(text + n, cap - n, "\n\n");
    }
    const char *data_dir = getenv("ONEBIT_DATA_DIR");
    char tok_path[512];
    snprintf(tok_path, sizeof tok_path, "%s/gpt2/tokenizer.json", data_dir && *data_dir ? data_dir : "../shared/data");
    if (!text || ob_mkdirs(dir) || ob_shard_write(shard, OB_TOKENS_U16, ids, 300) ||
        ob_write_file_atomic(text_path, text, n) || ob_dataset_open_split(shard, "train", &dataset))
        abort();
    free(text);
    if (ob_path_exists(tok_path) && ob_tokenizer_load(tok_path, &tokenizer) != OB_OK)
        abort();
}

static void try_source(ob_batch_source *src, const char *cursor) {
    int32_t in[2 * 8], tg[2 * 8];
    ob_batch_rows info;
    if (ob_batch_source_restore(src, cursor) == OB_OK && ob_batch_source_next(src, 2, 8, in, tg, &info) != OB_OK)
        abort();
    ob_batch_source_free(src);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dataset)
        setup();
    char *cursor = malloc(size + 1);
    if (!cursor)
        return 0;
    memcpy(cursor, data, size);
    cursor[size] = '\0';
    ob_batch_source *src;
    if (ob_batch_source_random(dataset, 1, 0, 1, &src) == OB_OK)
        try_source(src, cursor);
    if (ob_batch_source_sequential(dataset, 1, 2, &src) == OB_OK)
        try_source(src, cursor);
    if (tokenizer) {
        const char *inputs[1] = {text_path};
        ob_stream_options o = {.inputs = inputs, .num_inputs = 1, .doc_split = OB_DOC_SPLIT_BLANK_LINE, .loop = true};
        if (ob_batch_source_stream(&o, tokenizer, 0, 1, &src) == OB_OK)
            try_source(src, cursor);
    }
    free(cursor);
    return 0;
}
