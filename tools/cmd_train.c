/* onebit train (onebit-train): quantisation-aware training with OneBit-LLM's flags. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "onebit/train.h"

static void on_sigint(int sig) {
    (void)sig;
    ob_train_request_stop();
    /* A second Ctrl-C kills the process the usual way. */
    signal(SIGINT, SIG_DFL);
}

int ob_cmd_train(int argc, char **argv) {
    ob_train_options o;
    ob_train_options_default(&o);
    const char *decay = "cosine";
    double label_smoothing = 0, beta1 = o.beta1, beta2 = o.beta2, eps = o.adam_eps, clip = o.grad_clip;
    int64_t quant_warmup = -1, quant_anneal = -1;
    int64_t seed = (int64_t)o.seed;
    bool no_progress = false;
    const ob_arg args[] = {
        {"--config", OB_ARG_STRING, &o.config_path, "FILE", "model config.json (onebit init-config writes one)", NULL, 0, 0, NULL},
        {"--data-dir", OB_ARG_STRING, &o.data_dir, "PATH", "token shards (file, directory or prefix) or text to tokenize", NULL, 0, 0, NULL},
        {"--val-data-dir", OB_ARG_STRING, &o.val_data_dir, "PATH", "held-out shards (default: the val split of --data-dir)", NULL, 0, 0, NULL},
        {"--tokenizer", OB_ARG_STRING, &o.tokenizer, "FILE", "tokenizer.json (for text data; copied to the output)", NULL, 0, 0, NULL},
        {"--output-dir", OB_ARG_STRING, &o.output_dir, "DIR", "checkpoints, metrics and the tokenizer go here", NULL, 0, 0, NULL},
        {"--streaming", OB_ARG_BOOL, &o.streaming, NULL, "tokenize text on the fly instead of shards", NULL, 0, 0, NULL},
        {"--batch-size", OB_ARG_INT, &o.batch_size, "N", "sequences per micro-batch", NULL, 1, 1 << 20, NULL},
        {"--seq-len", OB_ARG_INT, &o.seq_len, "T", "tokens per sequence (0: max_seq_len)", NULL, 0, 1 << 20, NULL},
        {"--accumulation-steps", OB_ARG_INT, &o.accumulation_steps, "N", "micro-batches per optimizer step", NULL, 1, 1 << 20, NULL},
        {"--lr", OB_ARG_DOUBLE, &o.schedule.lr, "RATE", "peak learning rate", NULL, 0, 10, NULL},
        {"--lr-min", OB_ARG_DOUBLE, &o.schedule.lr_min, "RATE", "final learning rate", NULL, 0, 10, NULL},
        {"--lr-decay", OB_ARG_CHOICE, &decay, NULL, "decay after warm-up", "cosine|linear|constant|two-stage", 0, 0, NULL},
        {"--lr-warmup-steps", OB_ARG_I64, &o.schedule.warmup_steps, "N", "linear warm-up steps", NULL, 0, 1e15, NULL},
        {"--max-steps", OB_ARG_I64, &o.max_steps, "N", "optimizer steps (0: from --max-epochs)", NULL, 0, 1e15, NULL},
        {"--max-epochs", OB_ARG_DOUBLE, &o.max_epochs, "E", "passes over the training tokens when --max-steps is 0", NULL, 0, 1e9, NULL},
        {"--save-every", OB_ARG_I64, &o.save_every, "N", "checkpoint every N steps (0: only at the end)", NULL, 0, 1e15, NULL},
        {"--log-every", OB_ARG_I64, &o.log_every, "N", "metrics every N steps", NULL, 0, 1e15, NULL},
        {"--eval-every", OB_ARG_I64, &o.eval_every, "N", "validation every N steps (0: off)", NULL, 0, 1e15, NULL},
        {"--eval-batches", OB_ARG_I64, &o.eval_batches, "N", "validation batches per evaluation", NULL, 1, 1e15, NULL},
        {"--weight-decay", OB_ARG_DOUBLE, &o.schedule.weight_decay, "WD", "AdamW decoupled weight decay (2-D weights)", NULL, 0, 10, NULL},
        {"--beta1", OB_ARG_DOUBLE, &beta1, "B1", "AdamW beta1", NULL, 0, 1, NULL},
        {"--beta2", OB_ARG_DOUBLE, &beta2, "B2", "AdamW beta2", NULL, 0, 1, NULL},
        {"--eps", OB_ARG_DOUBLE, &eps, "EPS", "AdamW epsilon", NULL, 0, 1, NULL},
        {"--grad-clip-max-norm", OB_ARG_DOUBLE, &clip, "NORM", "global gradient-norm clipping (0: off)", NULL, 0, 1e9, NULL},
        {"--label-smoothing", OB_ARG_DOUBLE, &label_smoothing, "EPS", "label smoothing of the training loss", NULL, 0, 1, NULL},
        {"--quant-warmup-steps", OB_ARG_I64, &quant_warmup, "N", "full-precision steps before quantisation (with --quant-anneal-steps)", NULL, -1, 1e15, NULL},
        {"--quant-anneal-steps", OB_ARG_I64, &quant_anneal, "N", "soft (tanh) steps after the warm-up (default: anneal_fraction)", NULL, -1, 1e15, NULL},
        {"--resume", OB_ARG_STRING, &o.resume, "DIR|latest", "continue from a checkpoint", NULL, 0, 0, NULL},
        {"--seed", OB_ARG_I64, &seed, "N", "seed of the initial weights and the data order", NULL, 0, 9e18, NULL},
        {"--device", OB_ARG_STRING, &o.device, "DEV", "cpu, cuda or cuda:N", NULL, 0, 0, NULL},
        {"--threads", OB_ARG_INT, &o.threads, "N", "CPU threads (0: all cores)", NULL, 0, 4096, NULL},
        {"--dist-rendezvous", OB_ARG_STRING, &o.dist_rendezvous, "FILE", "data parallel: file through which the processes meet (default OUTPUT_DIR/.rendezvous)", NULL, 0, 0, NULL},
        {"--no-progress", OB_ARG_BOOL, &no_progress, NULL, "no progress bar", NULL, 0, 0, NULL},
        {0},
    };
    const ob_command_spec spec = {
        .name = argv[0],
        .summary = "Train a binary/ternary transformer with quantisation-aware training (straight-through "
                   "estimator, soft-to-hard annealing, latent clamp, AdamW).",
        .usage = "--config FILE --data-dir PATH --output-dir DIR [options]",
        .details = "Checkpoints go to DIR/checkpoint-N/ with DIR/latest pointing at the newest; metrics to\n"
                   "DIR/metrics.jsonl and DIR/metrics.csv (plot them with onebit plot). Ctrl-C writes a\n"
                   "checkpoint and stops; --resume DIR/latest continues exactly where it stopped.\n"
                   "Several GPUs: mpirun -np N onebit train --device cuda ... (or start N processes with\n"
                   "ONEBIT_RANK, ONEBIT_WORLD_SIZE and ONEBIT_LOCAL_RANK set); --batch-size is per GPU.",
        .args = args,
    };
    int rc = ob_cmd_parse(&spec, argc, argv, NULL);
    if (rc >= 0)
        return rc;
    ob_lr_decay_parse(decay, &o.schedule.decay);
    o.schedule.label_smoothing = (float)label_smoothing;
    o.beta1 = (float)beta1;
    o.beta2 = (float)beta2;
    o.adam_eps = (float)eps;
    o.grad_clip = (float)clip;
    o.seed = (uint64_t)seed;
    o.progress = !no_progress;
    if (quant_warmup >= 0 || quant_anneal >= 0) {
        o.schedule.quant_explicit = true;
        o.schedule.quant_warmup_steps = quant_warmup > 0 ? quant_warmup : 0;
        o.schedule.quant_anneal_steps = quant_anneal > 0 ? quant_anneal : 0;
    }
    signal(SIGINT, on_sigint);
    ob_train_result res;
    ob_status st = ob_train(&o, &res);
    ob_args_free(&spec, NULL);
    if (st)
        return ob_cmd_fail(argv[0]);
    printf("%s after %lld steps: train loss %.4f", res.interrupted ? "stopped" : "finished", (long long)res.steps,
           res.final_train_loss);
    if (res.final_val_loss == res.final_val_loss)
        printf(", validation loss %.4f", res.final_val_loss);
    printf(", %.0f tokens/s\ncheckpoint: %s\n", res.tokens_per_second, res.checkpoint);
    return 0;
}
