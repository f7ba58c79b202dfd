/* Encoding speed of the GPT-2 tokenizer against OpenAI's tiktoken on the same
 * text in the same run: onebit on 1 thread and on N threads (the corpus encoder
 * ob_tokenizer_encode_parallel), tiktoken (npm `tiktoken`, its Rust core as
 * WASM, and `js-tiktoken`) through node on 1 thread, each the median of
 * --repeat runs. Prints MB/s and the ratios, and checks that both produce the
 * same number of tokens.
 *
 *   bench_tokenizer [--threads N] [--repeat R] [--tokenizer PATH] [FILE...]
 *
 * Defaults: the GPT-2 tokenizer and the Gutenberg valid books from
 * $ONEBIT_DATA_DIR (or ../shared/data), concatenated. Run from the source root
 * (node needs tests/node_modules; see scripts/install-deps.sh). */
#include <dirent.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "onebit/onebit.h"

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec +
           (double)u.ru_stime.tv_usec * 1e-6;
}

/* Median MB/s of `repeat` encodes (after a warm-up) with `threads` threads
 * (0 = the single-threaded entry point); *cpu_mbps is MB per CPU-second over
 * all threads, which tells the parallel encoder's overhead apart from cores
 * that other processes hold. */
static double median_mbps(const ob_tokenizer *tok, const char *text, size_t len, int threads, int repeat,
                          size_t *tokens, double *cpu_mbps) {
    double *secs = malloc((size_t)repeat * sizeof *secs);
    double cpu = 0;
    for (int r = -1; r < repeat; r++) {
        ob_tokens ids = {0};
        double c0 = cpu_seconds();
        double t0 = ob_now();
        ob_status st = threads == 0 ? ob_tokenizer_encode(tok, text, len, false, &ids)
                                    : ob_tokenizer_encode_parallel(tok, text, len, false, threads, &ids);
        double dt = ob_now() - t0;
        if (r >= 0)
            cpu += cpu_seconds() - c0;
        if (st) {
            fprintf(stderr, "bench_tokenizer: %s\n", ob_last_error());
            exit(1);
        }
        if (r >= 0)
            secs[r] = dt;
        *tokens = ids.count;
        ob_tokens_free(&ids);
    }
    qsort(secs, (size_t)repeat, sizeof *secs, compare_double);
    double mbps = (double)len / 1e6 / secs[repeat / 2];
    *cpu_mbps = (double)len / 1e6 * repeat / cpu;
    free(secs);
    return mbps;
}

static int append_file(const char *path, char **buf, size_t *len) {
    char *data;
    size_t n;
    if (ob_read_file(path, &data, &n) != OB_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", ob_last_error());
        return -1;
    }
    *buf = realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    free(data);
    return 0;
}

static int compare_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    int threads = omp_get_max_threads(), repeat = 5;
    const char *tok_path = NULL;
    ob_strlist files = {0};
    const ob_arg args[] = {
        {"--threads", OB_ARG_INT, &threads, "N", "threads for the parallel encoder", NULL, 1, 4096, NULL},
        {"--repeat", OB_ARG_INT, &repeat, "R", "timed runs per measurement (median)", NULL, 1, 1000, NULL},
        {"--tokenizer", OB_ARG_STRING, &tok_path, "PATH", "tokenizer (default: the GPT-2 one in the data dir)", NULL, 0,
         0, NULL},
        {0},
    };
    const ob_command_spec spec = {.name = "bench_tokenizer", .summary = "GPT-2 encoding speed against tiktoken.",
                                  .usage = "[options] [FILE...]", .args = args, .max_positional = 1000};
    bool help = false;
    if (ob_args_parse(&spec, argc, argv, &files, &help) != OB_OK) {
        fprintf(stderr, "%s\n", ob_last_error());
        return 2;
    }
    if (help)
        return 0;
    const char *data = getenv("ONEBIT_DATA_DIR") ? getenv("ONEBIT_DATA_DIR") : "../shared/data";
    char path[4096];
    if (!tok_path) {
        snprintf(path, sizeof path, "%s/gpt2/tokenizer.json", data);
        tok_path = ob_strdup(path);
    }
    char *text = NULL;
    size_t len = 0;
    if (files.count > 0) {
        for (int i = 0; i < files.count; i++)
            if (append_file(files.items[i], &text, &len))
                return 1;
    } else {
        snprintf(path, sizeof path, "%s/gutenberg/valid", data);
        DIR *dir = opendir(path);
        if (!dir) {
            fprintf(stderr, "bench_tokenizer: cannot open %s (set ONEBIT_DATA_DIR)\n", path);
            return 1;
        }
        char *names[256];
        int n = 0;
        for (struct dirent *e; (e = readdir(dir)) && n < 256;)
            if (e->d_name[0] != '.')
                names[n++] = ob_strdup(e->d_name);
        closedir(dir);
        qsort(names, (size_t)n, sizeof *names, compare_str);
        for (int i = 0; i < n; i++) {
            char file[8192];
            snprintf(file, sizeof file, "%s/%s", path, names[i]);
            if (append_file(file, &text, &len))
                return 1;
            free(names[i]);
        }
    }
    ob_tokenizer *tok;
    double t0 = ob_now();
    if (ob_tokenizer_load(tok_path, &tok) != OB_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", ob_last_error());
        return 1;
    }
    double load_s = ob_now() - t0;

    size_t tokens1 = 0, tokensn = 0;
    double cpu_one, cpu_many;
    double one = median_mbps(tok, text, len, 0, repeat, &tokens1, &cpu_one);
    double many = median_mbps(tok, text, len, threads, repeat, &tokensn, &cpu_many);

    /* tiktoken on the same bytes, in node. */
    char tmp[] = "/tmp/bench_tokenizer_XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
        fprintf(stderr, "bench_tokenizer: cannot write %s\n", tmp);
        return 1;
    }
    close(fd);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "node tests/ref/bench_tiktoken.cjs %s %d", tmp, repeat);
    FILE *p = popen(cmd, "r");
    char line[1024] = "";
    double tk = 0, jstk = 0;
    unsigned long long tk_tokens = 0;
    if (p && fgets(line, sizeof line, p)) {
        const char *a = strstr(line, "\"tokens\":"), *b = strstr(line, "\"tiktoken_mbps\":"),
                   *c = strstr(line, "\"js_tiktoken_mbps\":");
        if (a && b && c) {
            tk_tokens = strtoull(a + 9, NULL, 10);
            tk = strtod(b + 16, NULL);
            jstk = strtod(c + 19, NULL);
        }
    }
    if (p)
        pclose(p);
    unlink(tmp);

    printf("text: %.2f MB, %zu tokens; tokenizer %s loaded in %.0f ms\n", (double)len / 1e6, tokens1, tok_path,
           load_s * 1e3);
    double load[3] = {0};
    if (getloadavg(load, 3) < 1)
        load[0] = -1;
    printf("onebit      1 thread : %7.2f MB/s (median of %d; %.2f MB per CPU-second)\n", one, repeat, cpu_one);
    printf("onebit %3d threads   : %7.2f MB/s (speed-up %.2fx over 1 thread; %.2f MB per CPU-second)\n", threads,
           many, many / one, cpu_many);
    printf("machine: %ld cores, load average %.2f\n", sysconf(_SC_NPROCESSORS_ONLN), load[0]);
    if (tk > 0) {
        printf("tiktoken    1 thread : %7.2f MB/s (npm tiktoken, WASM)   js-tiktoken: %.2f MB/s\n", tk, jstk);
        printf("ratio onebit/tiktoken: %.2fx (1 thread), %.2fx (%d threads)\n", one / tk, many / tk, threads);
        if (tk_tokens != tokens1 || tokensn != tokens1)
            printf("WARNING: token counts differ: onebit %zu (1 thread), %zu (%d threads), tiktoken %llu\n", tokens1,
                   tokensn, threads, tk_tokens);
    } else {
        printf("tiktoken: not measured (run from the source root after scripts/install-deps.sh)\n");
    }
    ob_tokenizer_free(tok);
    free(text);
    ob_args_free(&spec, &files);
    return 0;
}
