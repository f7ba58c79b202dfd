/* GPU training speed: onebit's CUDA backend on a config (default: the
 * GPT-2 124M ternary model of ../shared/refs/gpt2-124m-ternary.json) at batch
 * B x T with random tokens, timed over full optimizer steps (forward, backward,
 * clipping, AdamW), with and without quantisation. Prints tokens/s, step time,
 * TFLOP/s, MFU (against --peak-tflops, the GPU's dense bf16 peak) and device
 * memory as JSON lines; bench/gpu/device_run.sh runs PyTorch's bitnet_ref.py
 * beside it on the same GPU.
 *   bench_gpu_train [--config FILE] [--batch 16] [--seq 1024] [--steps 20] [--warmup 5]
 *                   [--quant ternary|fp] [--device cuda:0] [--peak-tflops 989.4] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/args.h"
#include "onebit/backend.h"

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *config = "../shared/refs/gpt2-124m-ternary.json", *quant = "ternary", *device = "cuda:0";
    int batch = 16, seq = 1024, steps = 20, warmup = 5;
    double peak = 989.4; /* NVIDIA's datasheet figure for an H100 SXM, dense bf16 */
    const ob_arg args[] = {
        {"--config", OB_ARG_STRING, &config, "FILE", "model config", NULL, 0, 0, NULL},
        {"--batch", OB_ARG_INT, &batch, "B", "sequences per step", NULL, 1, 4096, NULL},
        {"--seq", OB_ARG_INT, &seq, "T", "tokens per sequence", NULL, 1, 1 << 20, NULL},
        {"--steps", OB_ARG_INT, &steps, "N", "timed steps", NULL, 1, 100000, NULL},
        {"--warmup", OB_ARG_INT, &warmup, "N", "untimed steps first", NULL, 0, 100000, NULL},
        {"--quant", OB_ARG_CHOICE, &quant, NULL, "quantisation on (hard) or off", "ternary|fp", 0, 0, NULL},
        {"--device", OB_ARG_STRING, &device, "DEV", "cuda or cuda:N", NULL, 0, 0, NULL},
        {"--peak-tflops", OB_ARG_DOUBLE, &peak, "X", "the GPU's dense bf16 peak, for the MFU", NULL, 1e-3, 1e6, NULL},
        {0},
    };
    const ob_command_spec spec = {.name = "bench_gpu_train", .summary = "Time GPU training steps.", .args = args};
    bool help;
    if (ob_args_parse(&spec, argc, argv, NULL, &help) != OB_OK) {
        fprintf(stderr, "%s\n", ob_last_error());
        return 2;
    }
    if (help)
        return 0;
    ob_config cfg;
    ob_model *m;
    ob_backend *b;
    if (ob_config_load(config, &cfg) || ob_model_create(&cfg, &m)) {
        fprintf(stderr, "%s\n", ob_last_error());
        return 1;
    }
    ob_model_init(m, 1);
    if (ob_backend_create(device, m, batch, seq, &b)) {
        fprintf(stderr, "%s\n", ob_last_error());
        return 1;
    }
    int N = batch * seq;
    int32_t *in = malloc((size_t)N * sizeof *in), *tg = malloc((size_t)N * sizeof *tg);
    ob_rng rng;
    ob_rng_seed(&rng, 7);
    ob_step_info step = {strcmp(quant, "fp") == 0 ? OB_REGIME_FP : OB_REGIME_HARD, 8.0f, 0.0f, 0.0f};
    double *times = malloc((size_t)steps * sizeof *times), loss = 0;
    for (int s = 0; s < warmup + steps; s++) {
        for (int i = 0; i < N; i++) {
            in[i] = (int32_t)ob_rng_below(&rng, (uint64_t)cfg.vocab_size);
            tg[i] = (int32_t)ob_rng_below(&rng, (uint64_t)cfg.vocab_size);
        }
        double t0 = ob_now(), norm;
        ob_adamw opt = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, s + 1, 1.0f};
        if (b->ops->zero_grad(b) || b->ops->train_batch(b, in, tg, batch, seq, &step, 1.0f, &loss) ||
            b->ops->grad_norm(b, &norm)) {
            fprintf(stderr, "%s\n", ob_last_error());
            return 1;
        }
        if (norm > 1.0)
            opt.grad_scale = (float)(1.0 / (norm + 1e-6));
        /* The loss and norm copies synchronise the device; the update is timed
         * by the next step's first synchronisation. */
        if (b->ops->adamw(b, &opt)) {
            fprintf(stderr, "%s\n", ob_last_error());
            return 1;
        }
        if (s >= warmup)
            times[s - warmup] = ob_now() - t0;
    }
    qsort(times, (size_t)steps, sizeof *times, compare_double);
    double med = times[steps / 2];
    size_t used = 0, total = 0;
    int dev = 0;
    if (strncmp(device, "cuda:", 5) == 0)
        dev = atoi(device + 5);
    ob_cuda_memory(dev, &used, &total);
    /* Same FLOP count as bitnet_ref.py: 6 per matrix-product parameter per token
     * (the embedding lookup is not a product; the tied head is) plus attention. */
    int64_t params = ob_config_param_count(&cfg);
    double flops_tok = 6.0 * (double)params + 6.0 * cfg.num_layers * (double)seq * cfg.hidden_size;
    double tok_s = N / med;
    /* mem_gb: what onebit allocated (as torch.cuda.max_memory_allocated counts);
     * device_used_gb adds the CUDA context and libraries. */
    double tflops = flops_tok * tok_s / 1e12;
    printf("{\"impl\": \"onebit\", \"quant\": \"%s\", \"params\": %lld, \"bs\": %d, \"T\": %d, \"step_ms\": %.2f, "
           "\"tok_s\": %.0f, \"tflops\": %.1f, \"mfu\": %.3f, \"loss\": %.4f, \"mem_gb\": %.2f, "
           "\"device_used_gb\": %.2f}\n",
           quant, (long long)params, batch, seq, med * 1e3, tok_s, tflops, tflops / peak, loss,
           b->device_bytes / 1e9, used / 1e9);
    free(times), free(in), free(tg);
    ob_backend_free(b);
    ob_model_free(m);
    ob_config_free(&cfg);
    return 0;
}
