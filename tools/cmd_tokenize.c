/* onebit tokenize: text, JSONL, directories or OneBit-LLM .tokens files into
 * train/val token shards (the pipeline is ob_tokenize in src/data). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "onebit/data.h"

/* "data/tinyshakespeare/input.txt" -> "input"; a directory gives its own name. */
static void default_prefix(const char *input, char *out, size_t size) {
    size_t len = strlen(input);
    while (len > 1 && input[len - 1] == '/')
        len--;
    const char *base = input;
    for (size_t i = 0; i < len; i++)
        if (input[i] == '/')
            base = input + i + 1;
    size_t n = (size_t)(input + len - base);
    for (size_t i = n; i > 1; i--)
        if (base[i - 1] == '.') {
            n = i - 1;
            break;
        }
    snprintf(out, size, "%.*s", (int)n, base);
    if (!out[0] || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
        snprintf(out, size, "data");
}

static void print_split(const char *name, const ob_tokenize_split_stats *s, const char *dir, const char *prefix) {
    printf("  %-5s  documents %-9llu tokens %-11llu shards %d", name, (unsigned long long)s->documents,
           (unsigned long long)s->tokens, s->shards);
    if (s->shards)
        printf("  (%s/%s_%s_*.bin)", dir, prefix, name);
    printf("\n");
}

static void print_summary(const ob_tokenize_stats *st, const ob_tokenize_options *o) {
    int threads = st->threads;
    const ob_tokenize_split_stats *tr = &st->train, *va = &st->val;
    uint64_t bytes = tr->text_bytes + va->text_bytes, text_tokens = tr->text_tokens + va->text_tokens;
    printf("tokenized %llu file%s, %llu bytes of text, in %.2f s (%.2f MB/s, %d thread%s)\n",
           (unsigned long long)st->files, st->files == 1 ? "" : "s", (unsigned long long)bytes, st->seconds,
           st->seconds > 0 ? (double)bytes / st->seconds / 1e6 : 0.0, threads, threads == 1 ? "" : "s");
    print_split("train", tr, o->output_dir, o->prefix);
    print_split("val", va, o->output_dir, o->prefix);
    printf("  total  documents %-9llu tokens %-11llu text tokens %llu, %.3f bytes per token, %s shards\n",
           (unsigned long long)(tr->documents + va->documents), (unsigned long long)(tr->tokens + va->tokens),
           (unsigned long long)text_tokens, text_tokens ? (double)bytes / (double)text_tokens : 0.0,
           ob_token_dtype_name(st->dtype));
    if (st->skipped_empty_documents)
        printf("  skipped %llu empty documents\n", (unsigned long long)st->skipped_empty_documents);
    if (st->unsafe_cuts)
        printf("  %llu long documents were cut where no safe point was near (see the warnings)\n",
               (unsigned long long)st->unsafe_cuts);
    if (va->documents == 0 && o->val_fraction > 0 && o->num_val_inputs == 0 && tr->text_bytes > 0)
        ob_log(OB_LOG_WARN, "the validation split is empty (%llu document%s); use a larger --val-fraction, "
               "--doc-split for files holding many documents, or --val-input",
               (unsigned long long)tr->documents, tr->documents == 1 ? "" : "s");
    if (tr->documents == 0)
        ob_log(OB_LOG_WARN, "the training split is empty: every document went to validation");
}

int ob_cmd_tokenize(int argc, char **argv) {
    ob_tokenize_options o;
    ob_tokenize_options_default(&o);
    ob_strlist inputs = {0}, val_inputs = {0};
    const char *tokenizer_path = NULL, *format = "auto", *doc_split = "file", *dtype = "auto";
    int64_t seed = (int64_t)o.seed, shard_tokens = (int64_t)o.shard_tokens;
    int threads = 0;
    bool quiet = false, fraction_given = false;
    const ob_arg args[] = {
        {"--input", OB_ARG_LIST, &inputs, "PATH", "text, JSONL or .tokens files, or directories (recursive, sorted)",
         NULL, 0, 0, NULL},
        {"--val-input", OB_ARG_LIST, &val_inputs, "PATH", "inputs whose documents all go to validation", NULL, 0, 0,
         NULL},
        {"--tokenizer", OB_ARG_STRING, &tokenizer_path, "PATH",
         "tokenizer.json, or a directory with it or vocab.json + merges.txt", NULL, 0, 0, NULL},
        {"--output-dir", OB_ARG_STRING, &o.output_dir, "DIR", "where the shards go", NULL, 0, 0, NULL},
        {"--prefix", OB_ARG_STRING, &o.prefix, "NAME", "shard names NAME_train_000000.bin (default: first input's name)",
         NULL, 0, 0, NULL},
        {"--format", OB_ARG_CHOICE, &format, NULL, "input format (auto: *.jsonl JSONL, *.tokens TKN2, else text)",
         "auto|text|jsonl|tokens", 0, 0, NULL},
        {"--text-field", OB_ARG_STRING, &o.text_field, "NAME", "JSONL field holding the text", NULL, 0, 0, NULL},
        {"--doc-split", OB_ARG_CHOICE, &doc_split, NULL,
         "documents of a text file: the whole file, blank-line-separated, or <|endoftext|>-separated",
         "file|blank-line|eot", 0, 0, NULL},
        {"--val-fraction", OB_ARG_DOUBLE, &o.val_fraction, "F", "share of documents for validation (by text hash)",
         NULL, 0, 1, &fraction_given},
        {"--seed", OB_ARG_I64, &seed, "N", "seed of the train/validation split", NULL, 0, 0, NULL},
        {"--shard-tokens", OB_ARG_I64, &shard_tokens, "N", "tokens per shard", NULL, 1, (double)OB_SHARD_MAX_TOKENS,
         NULL},
        {"--dtype", OB_ARG_CHOICE, &dtype, NULL, "token type in the shards (auto: uint16 if the vocabulary fits)",
         "auto|uint16|uint32", 0, 0, NULL},
        {"--threads", OB_ARG_INT, &threads, "N", "encoding threads (0 = all cores); the output does not change", NULL,
         0, 4096, NULL},
        {"--force", OB_ARG_BOOL, &o.force, NULL, "replace shards of the same prefix in the output directory", NULL, 0,
         0, NULL},
        {"--quiet", OB_ARG_BOOL, &quiet, NULL, "no progress bar", NULL, 0, 0, NULL},
        {0},
    };
    const ob_command_spec spec = {
        .name = argv[0],
        .summary = "Tokenize text, JSONL, directories or OneBit-LLM .tokens files into llm.c token shards, split "
                   "by document into train and val.",
        .usage = "--input PATH... --tokenizer PATH --output-dir DIR [options]",
        .details = "Each document (a file, a JSONL line, or a part of a file with --doc-split) is preceded by the "
                   "EOS token. A document goes to validation when splitmix64(fnv1a64(text) ^ splitmix64(seed)) / "
                   "2^64 < --val-fraction; TKN2 inputs have no documents and go to train (or val with --val-input) "
                   "as they are. See docs/DATA.md.",
        .args = args,
    };
    int rc = ob_cmd_parse(&spec, argc, argv, NULL);
    if (rc >= 0)
        return rc;
    ob_tokenizer *tok = NULL;
    char prefix[256];
    rc = 2;
    if (inputs.count == 0)
        fprintf(stderr, "%s: --input is required (see --help)\n", argv[0]);
    else if (!o.output_dir)
        fprintf(stderr, "%s: --output-dir is required (see --help)\n", argv[0]);
    else if (val_inputs.count > 0 && fraction_given)
        fprintf(stderr, "%s: give --val-input or --val-fraction, not both\n", argv[0]);
    else if (seed < 0)
        fprintf(stderr, "%s: --seed = %lld must not be negative\n", argv[0], (long long)seed);
    else
        rc = -1;
    if (rc < 0) {
        o.inputs = inputs.items;
        o.num_inputs = inputs.count;
        o.val_inputs = val_inputs.items;
        o.num_val_inputs = val_inputs.count;
        o.format = strcmp(format, "text") == 0    ? OB_INPUT_TEXT
                   : strcmp(format, "jsonl") == 0 ? OB_INPUT_JSONL
                   : strcmp(format, "tokens") == 0 ? OB_INPUT_TKN2
                                                  : OB_INPUT_AUTO;
        o.doc_split = strcmp(doc_split, "blank-line") == 0 ? OB_DOC_SPLIT_BLANK_LINE
                      : strcmp(doc_split, "eot") == 0      ? OB_DOC_SPLIT_EOT
                                                           : OB_DOC_SPLIT_FILE;
        o.dtype = strcmp(dtype, "uint16") == 0 ? OB_TOKENS_U16 : strcmp(dtype, "uint32") == 0 ? OB_TOKENS_U32 : OB_TOKENS_AUTO;
        o.seed = (uint64_t)seed;
        o.shard_tokens = (uint64_t)shard_tokens;
        o.threads = threads;
        o.progress = !quiet;
        if (!o.prefix) {
            default_prefix(inputs.items[0], prefix, sizeof prefix);
            o.prefix = prefix;
        }
        ob_status st = tokenizer_path ? ob_tokenizer_load(tokenizer_path, &tok) : OB_OK;
        ob_tokenize_stats stats;
        if (st == OB_OK) {
            o.tokenizer = tok;
            st = ob_tokenize(&o, &stats);
        }
        if (st == OB_OK) {
            print_summary(&stats, &o);
            rc = 0;
        } else {
            rc = ob_cmd_fail(argv[0]);
        }
    }
    ob_tokenizer_free(tok);
    ob_args_free(&spec, NULL);
    return rc;
}
