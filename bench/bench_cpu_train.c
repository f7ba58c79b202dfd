/* CPU training speed: full optimizer steps (forward, backward, clipping, AdamW)
 * of a config (default: config.json, the 512-hidden 6-layer default) on random
 * tokens, with the share of time spent in matrix products; then the same model
 * trained by PyTorch on the CPU (bench/torch_cpu_train.py) for the ratio.
 *   bench_cpu_train [--config config.json] [--batch 4] [--seq 0] [--steps 3] [--threads 2] [--no-peer] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "cpu/kernels.h"
#include "onebit/args.h"
#include "onebit/backend.h"
#include "onebit/common.h"

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    ob_tune_cpu_runtime(argv, true); /* as onebit train does */
    const char *config = "config.json", *python = getenv("ONEBIT_PYTHON");
    int batch = 4, seq = 0, steps = 3, threads = 2;
    bool no_peer = false;
    const ob_arg args[] = {
        {"--config", OB_ARG_STRING, &config, "FILE", "model config", NULL, 0, 0, NULL},
        {"--batch", OB_ARG_INT, &batch, "B", "sequences per step", NULL, 1, 4096, NULL},
        {"--seq", OB_ARG_INT, &seq, "T", "tokens per sequence (0: max_seq_len)", NULL, 0, 1 << 20, NULL},
        {"--steps", OB_ARG_INT, &steps, "N", "timed steps (after one warm-up step)", NULL, 1, 1000, NULL},
        {"--threads", OB_ARG_INT, &threads, "N", "CPU threads", NULL, 1, 1024, NULL},
        {"--no-peer", OB_ARG_BOOL, &no_peer, NULL, "skip the PyTorch run", NULL, 0, 0, NULL},
        {0},
    };
    const ob_command_spec spec = {.name = "bench_cpu_train", .summary = "Time CPU training steps.", .args = args};
    bool help;
    if (ob_args_parse(&spec, argc, argv, NULL, &help) != OB_OK) {
        fprintf(stderr, "%s\n", ob_last_error());
        return 2;
    }
    if (help)
        return 0;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    ob_config cfg;
    ob_model *m;
    ob_backend *b;
    if (ob_config_load(config, &cfg) || ob_model_create(&cfg, &m)) {
        fprintf(stderr, "%s\n", ob_last_error());
        return 1;
    }
    int T = seq ? seq : cfg.max_seq_len, N = batch * T;
    ob_model_init(m, 1);
    if (ob_backend_create("cpu", m, batch, T, &b)) {
        fprintf(stderr, "%s\n", ob_last_error());
        return 1;
    }
    int32_t *in = malloc((size_t)N * sizeof *in), *tg = malloc((size_t)N * sizeof *tg);
    ob_rng rng;
    ob_rng_seed(&rng, 3);
    ob_step_info step = {OB_REGIME_HARD, 8.0f, 0.0f, 0.0f};
    double *times = malloc((size_t)steps * sizeof *times), *shares = malloc((size_t)steps * sizeof *shares);
    double loss = 0;
    for (int s = 0; s <= steps; s++) {
        for (int i = 0; i < N; i++) {
            in[i] = (int32_t)ob_rng_below(&rng, (uint64_t)cfg.vocab_size);
            tg[i] = (int32_t)ob_rng_below(&rng, (uint64_t)cfg.vocab_size);
        }
        ob_cpu_matmul_profile(true);
        double t0 = ob_now(), norm;
        ob_adamw opt = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, s + 1, 1.0f};
        if (b->ops->zero_grad(b) || b->ops->train_batch(b, in, tg, batch, T, &step, 1.0f, &loss) ||
            b->ops->grad_norm(b, &norm)) {
            fprintf(stderr, "%s\n", ob_last_error());
            return 1;
        }
        if (norm > 1.0)
            opt.grad_scale = (float)(1.0 / (norm + 1e-6));
        b->ops->adamw(b, &opt);
        double dt = ob_now() - t0;
        if (s > 0) { /* the first step warms caches and pages */
            times[s - 1] = dt;
            shares[s - 1] = ob_cpu_matmul_seconds() / dt;
        }
    }
    qsort(times, (size_t)steps, sizeof *times, compare_double);
    qsort(shares, (size_t)steps, sizeof *shares, compare_double);
    double tok_s = N / times[steps / 2];
    printf("{\"impl\": \"onebit\", \"threads\": %d, \"tok_s\": %.1f, \"step_s\": %.3f, \"matmul_share\": %.3f, "
           "\"loss\": %.4f, \"params\": %lld}\n",
           threads, tok_s, times[steps / 2], shares[steps / 2], loss, (long long)ob_config_param_count(&cfg));
    fflush(stdout);
    if (!no_peer) {
        char cmd[4096], line[1024];
        const char *src = getenv("ONEBIT_SOURCE_DIR");
        snprintf(cmd, sizeof cmd, "%s %s/bench/torch_cpu_train.py %s --batch %d --seq %d --steps %d --threads %d",
                 python && *python ? python : "/usr/bin/python3", src && *src ? src : ".", config, batch, T, steps,
                 threads);
        FILE *p = popen(cmd, "r");
        double peer = 0;
        while (p && fgets(line, sizeof line, p)) {
            fputs(line, stdout);
            const char *k = strstr(line, "\"tok_s\": ");
            if (k)
                peer = atof(k + 9);
        }
        if (p)
            pclose(p);
        if (peer > 0)
            printf("ratio onebit / PyTorch (CPU, %d threads): %.2f\n", threads, tok_s / peer);
    }
    free(times), free(shares), free(in), free(tg);
    ob_backend_free(b);
    ob_model_free(m);
    ob_config_free(&cfg);
    return 0;
}
