/* Decode and prefill speed of the packed runtime at three shapes with random
 * ternary weights (125M, 700M and the BitNet b1.58 2B4T shape), with 1 and 2
 * threads, beside this machine's memory bandwidth measured in the same run (a
 * STREAM-like copy and a read-only sweep). Each figure is the median of
 * --runs runs. Decoding reads every weight once per token, so the bandwidth it
 * achieves (bytes per token × tokens/s) is compared with the read bandwidth.
 * Resident memory (VmRSS) is compared with packed weights + KV cache.
 *
 * Output: a table for people and one "RESULT key=value ..." line per figure
 * for bench/compare_llamacpp.sh. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/args.h"
#include "onebit/infer.h"

typedef struct {
    const char *name;
    int hidden, layers, heads, kv_heads, ffn, vocab;
} shape;

static const shape shapes[] = {
    {"125m", 768, 12, 12, 12, 2048, 32000},
    {"700m", 1536, 24, 24, 24, 4096, 32000},
    {"2b4t", 2560, 30, 20, 5, 6912, 128256},
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Resident set size in bytes (VmRSS of /proc/self/status). */
static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %zu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

/* ---- memory bandwidth --------------------------------------------------------------- */

/* GB/s of a copy (bytes read + written) and of a read-only sum over 512 MB,
 * the median of `runs`, with `threads` threads. */
static void bandwidth(int threads, int runs, double *copy_gbs, double *read_gbs) {
    size_t n = (size_t)64 << 20; /* doubles: 512 MB per array */
    double *a = ob_aligned_alloc(n * sizeof(double)), *b = ob_aligned_alloc(n * sizeof(double));
    double tc[16], tr[16];
    uint64_t sink = 0;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++)
        a[i] = (double)i, b[i] = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = ob_now();
#pragma omp parallel for num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++)
            b[i] = a[i];
        double t1 = ob_now();
        /* Integer sums in four independent chains: the loads, not the adds, limit it. */
        const uint64_t *u = (const uint64_t *)b;
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : s0, s1, s2, s3)
        for (size_t i = 0; i < n; i += 4) {
            s0 += u[i];
            s1 += u[i + 1];
            s2 += u[i + 2];
            s3 += u[i + 3];
        }
        double t2 = ob_now();
        sink += s0 + s1 + s2 + s3;
        tc[r] = 2.0 * n * sizeof(double) / (t1 - t0) / 1e9;
        tr[r] = (double)n * sizeof(double) / (t2 - t1) / 1e9;
    }
    *copy_gbs = median(tc, runs);
    *read_gbs = median(tr, runs) + (double)(sink & 1) * 1e-12; /* keeps the sums alive */
    ob_aligned_free(a);
    ob_aligned_free(b);
}

/* ---- one shape ------------------------------------------------------------------------ */

static void shape_config(const shape *sh, ob_config *c) {
    ob_config_default(c);
    c->hidden_size = sh->hidden;
    c->num_layers = sh->layers;
    c->num_heads = sh->heads;
    c->num_kv_heads = sh->kv_heads;
    c->intermediate_size = sh->ffn;
    c->vocab_size = sh->vocab;
    c->max_seq_len = 4096;
    /* Llama / BitNet b1.58: ternary, RMSNorm, RoPE, SwiGLU, tied table. */
    c->use_ternary = c->use_subln = c->use_rope = c->use_swiglu = true;
    c->use_qk_norm = c->use_residual_scaling = false;
    c->tie_embeddings = true;
}

typedef struct {
    int prompt, gen, runs, context, bandwidth_runs;
    ob_kernel_isa isa;
    ob_pack_options pack;
} bench_options;

static int run_shape(const shape *sh, const int *threads, int nthreads, const bench_options *bo, double read_gbs[2]) {
    ob_config cfg;
    shape_config(sh, &cfg);
    size_t rss0 = rss_bytes();
    ob_packed_model *pm;
    double t0 = ob_now();
    if (ob_packed_model_random(&cfg, 1234, &bo->pack, &pm)) {
        fprintf(stderr, "%s: %s\n", sh->name, ob_last_error());
        ob_config_free(&cfg);
        return 1;
    }
    double build = ob_now() - t0;
    size_t bpt = ob_packed_model_bytes_per_token(pm);
    int V = cfg.vocab_size;
    float *logits = malloc((size_t)V * sizeof(float));
    int32_t *prompt = malloc((size_t)bo->prompt * sizeof(int32_t));
    ob_rng rng;
    ob_rng_seed(&rng, 7);
    for (int i = 0; i < bo->prompt; i++)
        prompt[i] = (int32_t)ob_rng_below(&rng, (uint64_t)V);
    printf("\n%s: hidden %d, %d layers, %d/%d heads, ffn %d, vocab %d; head %s; weights %.1f MB, %.1f MB read per "
           "token (built in %.1f s)\n",
           sh->name, sh->hidden, sh->layers, sh->heads, sh->kv_heads, sh->ffn, sh->vocab,
           ob_table_precision_name(bo->pack.head), pm->weight_bytes / 1e6, bpt / 1e6, build);
    printf("  %-7s %-8s %12s %12s %12s %10s %10s\n", "threads", "kernels", "pp tok/s", "tg tok/s", "tg GB/s",
           "of read BW", "RSS/(W+KV)");
    int rc = 0;
    for (int ti = 0; ti < nthreads && rc == 0; ti++) {
        ob_infer_options io = {bo->context, threads[ti], bo->isa};
        ob_infer *s;
        if (ob_infer_create(pm, &io, &s)) {
            fprintf(stderr, "%s: %s\n", sh->name, ob_last_error());
            rc = 1;
            break;
        }
        double pp[16], tg[16];
        for (int r = 0; r < bo->runs; r++) {
            ob_infer_reset(s);
            double a = ob_now();
            if (ob_infer_forward(s, prompt, bo->prompt, logits, false))
                rc = 1;
            pp[r] = bo->prompt / (ob_now() - a);
            /* Decoding from an empty context, as llama-bench's tg test does. */
            ob_infer_reset(s);
            int32_t tok = prompt[0];
            a = ob_now();
            for (int i = 0; i < bo->gen && rc == 0; i++) {
                if (ob_infer_forward(s, &tok, 1, logits, false))
                    rc = 1;
                tok = (int32_t)((uint32_t)(tok * 2654435761u + (uint32_t)i) % (uint32_t)V);
            }
            tg[r] = bo->gen / (ob_now() - a);
        }
        if (rc) {
            fprintf(stderr, "%s: %s\n", sh->name, ob_last_error());
            ob_infer_free(s);
            break;
        }
        double pps = median(pp, bo->runs), tgs = median(tg, bo->runs);
        double gbs = tgs * (double)bpt / 1e9;
        size_t rss = rss_bytes() - rss0, budget = pm->weight_bytes + ob_infer_kv_bytes(s);
        double bw = read_gbs[threads[ti] > 1 ? 1 : 0];
        printf("  %-7d %-8s %12.1f %12.2f %12.2f %9.0f%% %10.3f\n", threads[ti], ob_kernel_isa_name(ob_infer_isa(s)),
               pps, tgs, gbs, 100.0 * gbs / bw, (double)rss / (double)budget);
        printf("RESULT shape=%s threads=%d kernels=%s head=%s pp_tps=%.2f tg_tps=%.3f bytes_per_token=%zu tg_gbs=%.3f "
               "read_gbs=%.3f weights=%zu kv=%zu rss=%zu\n",
               sh->name, threads[ti], ob_kernel_isa_name(ob_infer_isa(s)), ob_table_precision_name(bo->pack.head),
               pps, tgs, bpt, gbs, bw, pm->weight_bytes, ob_infer_kv_bytes(s), rss);
        fflush(stdout);
        ob_infer_free(s);
    }
    free(logits);
    free(prompt);
    ob_packed_model_free(pm);
    ob_config_free(&cfg);
    return rc;
}

int main(int argc, char **argv) {
    const char *shape_arg = "all", *threads_arg = "1,2", *head = "int4", *isa_name = "auto";
    bench_options bo = {128, 64, 5, 256, 5, OB_ISA_AUTO, {OB_TABLE_AUTO, OB_TABLE_AUTO}};
    const ob_arg args[] = {
        {"--shape", OB_ARG_CHOICE, &shape_arg, NULL, "model shape", "125m|700m|2b4t|all", 0, 0, NULL},
        {"--threads", OB_ARG_STRING, &threads_arg, "LIST", "thread counts, comma-separated", NULL, 0, 0, NULL},
        {"--prompt", OB_ARG_INT, &bo.prompt, "N", "prefill tokens (llama-bench -p)", NULL, 1, 4096, NULL},
        {"--gen", OB_ARG_INT, &bo.gen, "N", "decoded tokens (llama-bench -n)", NULL, 1, 4096, NULL},
        {"--runs", OB_ARG_INT, &bo.runs, "N", "repetitions; medians are reported", NULL, 1, 16, NULL},
        {"--bandwidth-runs", OB_ARG_INT, &bo.bandwidth_runs, "N", "repetitions of the bandwidth sweeps (0: skip)", NULL,
         0, 16, NULL},
        {"--head", OB_ARG_CHOICE, &head, NULL, "precision of the tied table (int4 ~ llama.cpp's Q4_K table)",
         "f32|f16|int8|int4", 0, 0, NULL},
        {"--kernels", OB_ARG_CHOICE, &isa_name, NULL, "kernel set", "auto|scalar|avx2|avxvnni", 0, 0, NULL},
        {0},
    };
    const ob_command_spec spec = {"bench_infer", "Decode/prefill speed of the packed runtime at three shapes.",
                                  "[options]", NULL, args, 0, 0};
    bool help = false;
    if (ob_args_parse(&spec, argc, argv, NULL, &help) != OB_OK) {
        fprintf(stderr, "%s\n", ob_last_error());
        return 2;
    }
    if (help)
        return 0;
    ob_table_precision_parse(head, &bo.pack.head);
    ob_kernel_isa_parse(isa_name, &bo.isa);
    bo.context = bo.prompt > bo.gen ? bo.prompt : bo.gen;
    int threads[8], nthreads = 0;
    for (const char *p = threads_arg; *p && nthreads < 8;) {
        threads[nthreads++] = atoi(p);
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    double copy[2] = {1, 1}, read[2] = {1, 1};
    if (bo.bandwidth_runs) {
        bandwidth(1, bo.bandwidth_runs, &copy[0], &read[0]);
        bandwidth(2, bo.bandwidth_runs, &copy[1], &read[1]);
    }
    FILE *lf = fopen("/proc/loadavg", "r");
    char load[64] = "?";
    if (lf && fgets(load, sizeof load, lf))
        load[strcspn(load, "\n")] = 0;
    if (lf)
        fclose(lf);
    printf("memory bandwidth (median of %d):", bo.bandwidth_runs);
    printf(" copy %.1f GB/s (1 thread), %.1f GB/s (2 threads); read %.1f / %.1f GB/s\n",
           copy[0], copy[1], read[0], read[1]);
    printf("load average at start: %s; kernels: %s; %d runs per figure\n", load,
           ob_kernel_isa_name(bo.isa == OB_ISA_AUTO ? ob_kernel_isa_detect() : bo.isa), bo.runs);
    printf("RESULT bandwidth copy1=%.3f copy2=%.3f read1=%.3f read2=%.3f\n", copy[0], copy[1], read[0], read[1]);
    int rc = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes && rc == 0; i++)
        if (strcmp(shape_arg, "all") == 0 || strcmp(shape_arg, shapes[i].name) == 0)
            rc = run_shape(&shapes[i], threads, nthreads, &bo, read);
    ob_args_free(&spec, NULL);
    return rc;
}
