/* Speed of the data path against its peers in the same run, each the median of
 * --repeat runs:
 *  1. the tokenize pipeline (files -> documents -> parallel encode -> shards on
 *     disk) against encoding the same text, concatenated in memory, with
 *     ob_tokenizer_encode_parallel on as many threads: the ratio is what
 *     reading, splitting, hashing and writing cost on top of encoding;
 *  2. drawing random batches (B x T windows from mmap'd shards, uint16 -> int32)
 *     against memcpy of the same windows from an int32 array in memory.
 *
 *   bench_data [--threads N] [--repeat R] [--batch B] [--context T] [DIR]
 *
 * Defaults: all cores, 5 repeats, B 16, T 1024, the Gutenberg valid books in
 * $ONEBIT_DATA_DIR (or ../shared/data) with the GPT-2 tokenizer there. */
#include <dirent.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/onebit.h"

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare_double);
    return v[n / 2];
}

static void die(const char *what) {
    fprintf(stderr, "bench_data: %s: %s\n", what, ob_last_error());
    exit(1);
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The directory's files (flat, sorted), concatenated. */
static char *read_dir(const char *dir, size_t *len) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "bench_data: cannot open %s\n", dir);
        exit(1);
    }
    char *names[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096)
        if (e->d_name[0] != '.')
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, compare_names);
    char *all = NULL;
    *len = 0;
    for (int i = 0; i < n; i++) {
        char *path = ob_path_join(dir, names[i]), *data;
        size_t size;
        if (ob_read_file(path, &data, &size))
            die(path);
        all = realloc(all, *len + size);
        memcpy(all + *len, data, size);
        *len += size;
        free(data);
        free(path);
        free(names[i]);
    }
    return all;
}

int main(int argc, char **argv) {
    int threads = 0, repeat = 5, B = 16, T = 1024;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            B = atoi(argv[++i]);
        else if (strcmp(argv[i], "--context") == 0 && i + 1 < argc)
            T = atoi(argv[++i]);
        else
            dir = argv[i];
    }
    if (threads <= 0)
        threads = omp_get_max_threads();
    if (repeat < 1 || B < 1 || T < 1) {
        fprintf(stderr, "usage: bench_data [--threads N] [--repeat R] [--batch B] [--context T] [DIR]\n");
        return 2;
    }
    const char *data_dir = getenv("ONEBIT_DATA_DIR");
    if (!data_dir || !*data_dir)
        data_dir = "../shared/data";
    char *default_dir = ob_path_join(data_dir, "gutenberg/valid"), *tok_path = ob_path_join(data_dir, "gpt2/tokenizer.json");
    if (!dir)
        dir = default_dir;
    ob_tokenizer *tok;
    if (ob_tokenizer_load(tok_path, &tok))
        die(tok_path);
    size_t len;
    char *text = read_dir(dir, &len);
    char out_dir[] = "/tmp/bench_data_XXXXXX";
    if (!mkdtemp(out_dir)) {
        perror("mkdtemp");
        return 1;
    }

    /* 1. pipeline vs encode */
    double *pipe = malloc((size_t)repeat * sizeof *pipe), *enc = malloc((size_t)repeat * sizeof *enc);
    ob_tokenize_stats stats = {0};
    size_t encoded = 0;
    for (int r = -1; r < repeat; r++) {
        ob_tokenize_options o;
        ob_tokenize_options_default(&o);
        o.inputs = &dir;
        o.num_inputs = 1;
        o.output_dir = out_dir;
        o.prefix = "bench";
        o.tokenizer = tok;
        o.val_fraction = 0;
        o.threads = threads;
        o.force = true;
        double t0 = ob_now();
        if (ob_tokenize(&o, &stats))
            die("tokenize");
        double t1 = ob_now();
        ob_tokens ids = {0};
        if (ob_tokenizer_encode_parallel(tok, text, len, false, threads, &ids))
            die("encode");
        double t2 = ob_now();
        encoded = ids.count;
        ob_tokens_free(&ids);
        if (r >= 0) {
            pipe[r] = (double)len / 1e6 / (t1 - t0);
            enc[r] = (double)len / 1e6 / (t2 - t1);
        }
    }
    double pipe_mbps = median(pipe, repeat), enc_mbps = median(enc, repeat);
    printf("tokenize %s (%.2f MB, %llu tokens), %d threads:\n", dir, (double)len / 1e6,
           (unsigned long long)stats.train.text_tokens, threads);
    printf("  onebit tokenize pipeline     %8.2f MB/s\n", pipe_mbps);
    printf("  encode_parallel in memory    %8.2f MB/s   (%zu tokens)\n", enc_mbps, encoded);
    printf("  ratio pipeline / encode      %8.3f\n", pipe_mbps / enc_mbps);

    /* 2. random batches vs memcpy */
    char *prefix = ob_path_join(out_dir, "bench");
    ob_dataset *ds;
    if (ob_dataset_open_split(prefix, "train", &ds))
        die(prefix);
    size_t n = (size_t)ob_dataset_num_tokens(ds);
    int32_t *all = malloc(n * sizeof *all), *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    if (ob_dataset_read(ds, 0, n, all))
        die("read");
    ob_batch_source *src;
    if (ob_batch_source_random(ds, 1, 0, 1, &src))
        die("source");
    const int batches = 2000;
    double *draw = malloc((size_t)repeat * sizeof *draw), *copy = malloc((size_t)repeat * sizeof *copy);
    ob_rng rng;
    ob_rng_seed(&rng, 2);
    uint64_t sink = 0;
    for (int r = -1; r < repeat; r++) {
        double t0 = ob_now();
        for (int k = 0; k < batches; k++)
            if (ob_batch_source_next(src, B, T, in, tg, NULL))
                die("next");
        double t1 = ob_now();
        for (int k = 0; k < batches; k++)
            for (int b = 0; b < B; b++) {
                uint64_t s = ob_rng_below(&rng, n - (size_t)T);
                memcpy(in + (size_t)b * T, all + s, (size_t)T * sizeof *in);
                memcpy(tg + (size_t)b * T, all + s + 1, (size_t)T * sizeof *tg);
            }
        double t2 = ob_now();
        sink += (uint64_t)in[0] + (uint64_t)tg[T - 1];
        double tokens = (double)batches * B * T;
        if (r >= 0) {
            draw[r] = tokens / (t1 - t0) / 1e6;
            copy[r] = tokens / (t2 - t1) / 1e6;
        }
    }
    double draw_mtps = median(draw, repeat), copy_mtps = median(copy, repeat);
    printf("random batches B=%d T=%d over %zu tokens (%s shards):\n", B, T, n, ob_token_dtype_name(stats.dtype));
    printf("  ob_batch_source_next         %8.1f M tokens/s\n", draw_mtps);
    printf("  memcpy from an int32 array   %8.1f M tokens/s\n", copy_mtps);
    printf("  ratio source / memcpy        %8.3f   (checksum %llu)\n", draw_mtps / copy_mtps, (unsigned long long)sink);

    ob_batch_source_free(src);
    ob_dataset_free(ds);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", out_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_data: could not remove %s\n", out_dir);
    free(prefix);
    free(all);
    free(in);
    free(tg);
    free(pipe);
    free(enc);
    free(draw);
    free(copy);
    free(text);
    free(default_dir);
    free(tok_path);
    ob_tokenizer_free(tok);
    return 0;
}
