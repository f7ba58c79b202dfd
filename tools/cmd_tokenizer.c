/* onebit tokenizer <train|encode|decode>: train a byte-level BPE vocabulary on
 * text files, or turn text on stdin into token ids and back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "onebit/tokenizer.h"

/* Reads all of stdin (any bytes). */
static ob_status read_stdin(char **data, size_t *size) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return ob_error(OB_ERR_NOMEM, "out of memory reading stdin");
    for (;;) {
        if (n == cap) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return ob_error(OB_ERR_NOMEM, "out of memory reading stdin");
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        return ob_error(OB_ERR_IO, "stdin: read failed");
    }
    *data = buf;
    *size = n;
    return OB_OK;
}

static int cmd_encode(int argc, char **argv) {
    const char *path = NULL;
    bool allow_special = false;
    int threads = 1;
    const ob_arg args[] = {
        {"--tokenizer", OB_ARG_STRING, &path, "FILE", "tokenizer.json, or a directory with it or vocab.json + merges.txt",
         NULL, 0, 0, NULL},
        {"--allow-special", OB_ARG_BOOL, &allow_special, NULL,
         "turn special tokens written in the text (<|endoftext|>) into their ids", NULL, 0, 0, NULL},
        {"--threads", OB_ARG_INT, &threads, "N", "encode with N threads (0 = all cores); the ids do not change", NULL,
         0, 4096, NULL},
        {0},
    };
    const ob_command_spec spec = {
        .name = argv[0],
        .summary = "Read text on stdin and print its token ids, separated by single spaces, on one line.",
        .usage = "--tokenizer FILE [--allow-special] < text",
        .args = args,
    };
    int rc = ob_cmd_parse(&spec, argc, argv, NULL);
    if (rc >= 0)
        return rc;
    if (!path) {
        fprintf(stderr, "%s: --tokenizer is required\n", argv[0]);
        return 2;
    }
    ob_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    ob_tokens ids = {0};
    ob_status st = ob_tokenizer_load(path, &tok);
    if (!st)
        st = read_stdin(&text, &len);
    if (!st)
        st = threads == 1 ? ob_tokenizer_encode(tok, text, len, allow_special, &ids)
                          : ob_tokenizer_encode_parallel(tok, text, len, allow_special, threads, &ids);
    if (!st) {
        for (size_t i = 0; i < ids.count; i++)
            fprintf(stdout, i ? " %d" : "%d", (int)ids.ids[i]);
        fputc('\n', stdout);
        if (fflush(stdout) != 0)
            st = ob_error(OB_ERR_IO, "stdout: write failed");
    }
    ob_tokens_free(&ids);
    free(text);
    ob_tokenizer_free(tok);
    return st ? ob_cmd_fail(argv[0]) : 0;
}

/* Parses whitespace-separated decimal ids. */
static ob_status parse_ids(const char *text, size_t len, ob_tokens *ids) {
    size_t i = 0;
    while (i < len) {
        while (i < len && strchr(" \t\r\n", text[i]) && text[i])
            i++;
        if (i == len)
            break;
        size_t start = i;
        long long v = 0;
        bool ok = true;
        while (i < len && !strchr(" \t\r\n", text[i])) {
            if (text[i] < '0' || text[i] > '9' || v > INT32_MAX)
                ok = false;
            else
                v = v * 10 + (text[i] - '0');
            i++;
        }
        if (!ok || v > INT32_MAX)
            return ob_error(OB_ERR_FORMAT, "stdin: '%.*s' at byte %zu is not a token id", (int)(i - start < 40 ? i - start : 40),
                            text + start, start);
        ob_status st = ob_tokens_push(ids, (int32_t)v);
        if (st)
            return st;
    }
    return OB_OK;
}

static int cmd_decode(int argc, char **argv) {
    const char *path = NULL;
    const ob_arg args[] = {
        {"--tokenizer", OB_ARG_STRING, &path, "FILE", "tokenizer.json, or a directory with it or vocab.json + merges.txt",
         NULL, 0, 0, NULL},
        {0},
    };
    const ob_command_spec spec = {
        .name = argv[0],
        .summary = "Read token ids (decimal, separated by white space) on stdin and write the bytes they stand for.",
        .usage = "--tokenizer FILE < ids",
        .args = args,
    };
    int rc = ob_cmd_parse(&spec, argc, argv, NULL);
    if (rc >= 0)
        return rc;
    if (!path) {
        fprintf(stderr, "%s: --tokenizer is required\n", argv[0]);
        return 2;
    }
    ob_tokenizer *tok = NULL;
    char *input = NULL, *text = NULL;
    size_t len = 0, text_len = 0;
    ob_tokens ids = {0};
    ob_status st = ob_tokenizer_load(path, &tok);
    if (!st)
        st = read_stdin(&input, &len);
    if (!st)
        st = parse_ids(input, len, &ids);
    if (!st)
        st = ob_tokenizer_decode(tok, ids.ids, ids.count, &text, &text_len);
    if (!st && (fwrite(text, 1, text_len, stdout) != text_len || fflush(stdout) != 0))
        st = ob_error(OB_ERR_IO, "stdout: write failed");
    free(text);
    ob_tokens_free(&ids);
    free(input);
    ob_tokenizer_free(tok);
    return st ? ob_cmd_fail(argv[0]) : 0;
}

static int cmd_train(int argc, char **argv) {
    int vocab_size = 0, min_frequency = 2, threads = 0;
    const char *output = NULL;
    ob_strlist inputs = {0}, specials = {0};
    bool specials_seen = false;
    const ob_arg args[] = {
        {"--vocab-size", OB_ARG_INT, &vocab_size, "N", "vocabulary size, counting the 256 byte tokens and the specials",
         NULL, 257, 1 << 24, NULL},
        {"--input", OB_ARG_LIST, &inputs, "FILE...", "text files to learn from (UTF-8; other bytes are kept as bytes)",
         NULL, 0, 0, NULL},
        {"--output", OB_ARG_STRING, &output, "FILE", "tokenizer.json to write", NULL, 0, 0, NULL},
        {"--special", OB_ARG_LIST, &specials, "TOKEN...", "special tokens (default <|endoftext|>)", NULL, 0, 0,
         &specials_seen},
        {"--min-frequency", OB_ARG_INT, &min_frequency, "N", "stop when the best pair occurs fewer times", NULL, 1,
         1e9, NULL},
        {"--threads", OB_ARG_INT, &threads, "N", "threads for counting words (0 = all cores)", NULL, 0, 4096, NULL},
        {0},
    };
    const ob_command_spec spec = {
        .name = argv[0],
        .summary = "Train a byte-level BPE tokenizer (GPT-2 pre-tokenization) and write it as tokenizer.json.",
        .usage = "--vocab-size N --input FILE... --output tokenizer.json",
        .details = "Training is deterministic: the same files and options give the same tokenizer.json.\n"
                   "Special tokens in the input text are not learned from: they split the text like document ends.",
        .args = args,
    };
    int rc = ob_cmd_parse(&spec, argc, argv, NULL);
    if (rc >= 0)
        return rc;
    if (vocab_size == 0 || inputs.count == 0 || !output) {
        fprintf(stderr, "%s: --vocab-size, --input and --output are required (see --help)\n", argv[0]);
        ob_args_free(&spec, NULL);
        return 2;
    }
    static const char *const default_specials[] = {"<|endoftext|>"};
    ob_bpe_train_options opts = {
        .vocab_size = vocab_size,
        .specials = specials_seen ? specials.items : default_specials,
        .num_specials = specials_seen ? specials.count : 1,
        .min_frequency = min_frequency,
        .threads = threads,
        .progress = true,
    };
    ob_tokenizer *tok = NULL;
    double t0 = ob_now();
    ob_status st = ob_tokenizer_train(&opts, inputs.items, inputs.count, &tok);
    if (!st)
        st = ob_tokenizer_save(tok, output);
    if (!st) {
        char took[32];
        ob_format_duration(ob_now() - t0, took, sizeof took);
        fprintf(stderr, "wrote %s: %d tokens (%d merges) in %s\n", output, ob_tokenizer_vocab_size(tok),
                ob_tokenizer_num_merges(tok), took);
    }
    ob_tokenizer_free(tok);
    ob_args_free(&spec, NULL);
    return st ? ob_cmd_fail(argv[0]) : 0;
}

int ob_cmd_tokenizer(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } subs[] = {{"train", cmd_train}, {"encode", cmd_encode}, {"decode", cmd_decode}};
    if (argc >= 2) {
        for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
            if (strcmp(argv[1], subs[i].name) == 0) {
                char name[96];
                snprintf(name, sizeof name, "%s %s", argv[0], subs[i].name);
                argv[1] = name;
                return subs[i].run(argc - 1, argv + 1);
            }
        }
    }
    FILE *out = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) ? stdout : stderr;
    fprintf(out,
            "usage: %s <train|encode|decode> [options]   (%s <sub> --help for its options)\n\n"
            "  train    learn a byte-level BPE vocabulary from text files, write tokenizer.json\n"
            "  encode   text on stdin -> token ids on stdout (one line, separated by spaces)\n"
            "  decode   token ids on stdin -> text on stdout\n"
            "  -h, --help  show this help and exit\n",
            argv[0], argv[0]);
    if (argc >= 2 && out == stderr)
        fprintf(stderr, "%s: unknown subcommand '%s'\n", argv[0], argv[1]);
    return out == stdout ? 0 : 2;
}
