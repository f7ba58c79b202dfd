/* The onebit command: dispatches to subcommands by name, or by the name it was
 * invoked under (onebit-train, onebit-chat, ... are links to this binary). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "onebit/onebit.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"tokenize", ob_cmd_tokenize, "turn text, JSONL or directories into token shards"},
    {"tokenizer", ob_cmd_tokenizer, "train a BPE tokenizer, or encode/decode text with one"},
    {"train", ob_cmd_train, "train a binary/ternary model (quantisation-aware)"},
    {"eval", ob_cmd_eval, "perplexity of a model on a text file"},
    {"chat", ob_cmd_chat, "interactive chat with a model"},
    {"test-generate", ob_cmd_generate, "generate from the five standard prompts or --prompt"},
    {"generate", ob_cmd_generate, "same as test-generate"},
    {"export", ob_cmd_export, "export a checkpoint to .1bit, a C header, GGUF or safetensors"},
    {"search", ob_cmd_search, "search a bit width per layer under a size budget"},
    {"eval-config", ob_cmd_eval_config, "evaluate one per-layer bit configuration"},
    {"init-config", ob_cmd_init_config, "write the default config.json"},
    {"plot", ob_cmd_plot, "plot metrics.jsonl (loss, validation loss, learning rate)"},
};
static const size_t command_count = sizeof commands / sizeof commands[0];

static void print_usage(FILE *out) {
    fprintf(out,
            "onebit %s: train, search and deploy 1-bit and 1.58-bit language models\n\n"
            "usage: onebit <command> [options]   (onebit <command> --help for its options)\n\ncommands:\n",
            OB_VERSION_STRING);
    for (size_t i = 0; i < command_count; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-14s %s\n  %-14s %s\n", "help", "show this list", "--version", "print the version");
    fprintf(out, "\nThe same commands are installed as onebit-train, onebit-chat, onebit-export,\n"
                 "onebit-search, onebit-eval-config, onebit-test-generate, onebit-tokenize, onebit-eval.\n"
                 "Set ONEBIT_LOG=error|warn|info|debug|trace for more or less detail.\n");
}

static const command *find_command(const char *name) {
    for (size_t i = 0; i < command_count; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int run_command(const command *c, int argc, char **argv) {
    char name[64];
    snprintf(name, sizeof name, "onebit %s", c->name);
    argv[0] = name;
    return c->run(argc, argv);
}

/* Exit status 2 with the closest command name suggested. */
static int unknown_command(const char *name) {
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < command_count; i++) {
        size_t d = ob_edit_distance(name, commands[i].name);
        if (d < best_d) {
            best_d = d;
            best = commands[i].name;
        }
    }
    if (best && ob_close_enough(name, best_d))
        fprintf(stderr, "onebit: unknown command '%s'; did you mean '%s'? (see onebit help)\n", name, best);
    else
        fprintf(stderr, "onebit: unknown command '%s' (see onebit help)\n", name);
    return 2;
}

int main(int argc, char **argv) {
    const char *self = strrchr(argv[0], '/');
    self = self ? self + 1 : argv[0];
    ob_tune_cpu_runtime(argv, strcmp(self, "onebit-train") == 0 || (argc > 1 && strcmp(argv[1], "train") == 0));
    /* Commands report progress at info level unless $ONEBIT_LOG says otherwise. */
    if (!getenv("ONEBIT_LOG"))
        ob_log_set_level(OB_LOG_INFO);
    if (strncmp(self, "onebit-", 7) == 0) {
        const command *c = find_command(self + 7);
        if (!c) {
            fprintf(stderr, "onebit: unknown command name '%s'\n", self);
            return 2;
        }
        return run_command(c, argc, argv);
    }
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        if (argc > 2) {
            const command *c = find_command(argv[2]);
            if (!c)
                return unknown_command(argv[2]);
            char *help_argv[] = {argv[2], "--help", NULL};
            return run_command(c, 2, help_argv);
        }
        print_usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("onebit %s\n", OB_VERSION_STRING);
#ifdef ONEBIT_HAVE_CUDA
        printf("CUDA backend: built, %s\n", ob_cuda_available() ? "a GPU is visible" : "no GPU visible");
#else
        printf("CUDA backend: not built\n");
#endif
        return 0;
    }
    const command *c = find_command(name);
    if (!c)
        return unknown_command(name);
    return run_command(c, argc - 1, argv + 1);
}
