/* onebit eval (onebit-eval): perplexity of a model on a file, with plain
 * cross-entropy over sliding windows (ob_perplexity). The file is a token
 * shard (llm.c .bin or OneBit-LLM's TKN2 .tokens, recognised by their magic)
 * or text, tokenized with the model's tokenizer after one end-of-text token
 * (as every training document starts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer_common.h"
#include "onebit/data.h"

/* The file's tokens: a shard's ids, or the text encoded. */
static ob_status load_tokens(const char *path, const ob_tokenizer *tok, int threads, ob_tokens *out,
                             const char **kind) {
    ob_mapping map;
    ob_status st = ob_map_file(path, &map);
    if (st)
        return st;
    ob_token_view view;
    bool shard = false;
    if (map.size >= 4) {
        int32_t magic;
        memcpy(&magic, map.data, 4);
        if (magic == OB_SHARD_MAGIC_U16 || magic == OB_SHARD_MAGIC_U32) {
            st = ob_shard_parse(map.data, map.size, path, &view);
            shard = true;
            *kind = "token shard";
        } else if (memcmp(map.data, "TKN2", 4) == 0) {
            st = ob_tkn2_parse(map.data, map.size, path, &view);
            shard = true;
            *kind = "TKN2 tokens";
        }
    }
    if (shard) {
        for (uint64_t i = 0; st == OB_OK && i < view.count; i++)
            st = ob_tokens_push(out, (int32_t)ob_token_view_get(&view, i));
    } else {
        *kind = "text";
        int eos = ob_tokenizer_eos_id(tok);
        if (eos >= 0)
            st = ob_tokens_push(out, eos);
        if (st == OB_OK)
            st = ob_tokenizer_encode_parallel(tok, map.data, map.size, false, threads, out);
    }
    ob_unmap_file(&map);
    return st;
}

int ob_cmd_eval(int argc, char **argv) {
    infer_flags f;
    infer_flags_default(&f, 0);
    const char *data = NULL;
    int window = 0, stride = 0;
    int64_t max_tokens = 0;
    bool no_progress = false;
    const ob_arg args[] = {
        INFER_MODEL_ARGS(f),
        {"--data", OB_ARG_STRING, &data, "FILE", "text, or a token shard (.bin / TKN2 .tokens)", NULL, 0, 0, NULL},
        {"--window", OB_ARG_INT, &window, "N", "tokens per window (0: the context)", NULL, 0, 1 << 24, NULL},
        {"--stride", OB_ARG_INT, &stride, "N", "new tokens scored per window after the first (0: window/2)", NULL, 0,
         1 << 24, NULL},
        {"--max-tokens", OB_ARG_I64, &max_tokens, "N", "score at most N tokens (0: all)", NULL, 0, 9e18, NULL},
        {"--no-progress", OB_ARG_BOOL, &no_progress, NULL, "no progress bar", NULL, 0, 0, NULL},
        {0},
    };
    const ob_command_spec spec = {
        .name = argv[0],
        .summary = "Perplexity of a model on a file: plain cross-entropy over sliding windows, each token scored "
                   "once.",
        .usage = "--model-dir DIR | --model FILE --data FILE [options]",
        .details = "The first window scores its tokens 1..window-1; each next window scores the next --stride\n"
                   "tokens, given the window-stride tokens before them. Text is tokenized with the model's\n"
                   "tokenizer after one end-of-text token. Sampling flags do not apply: perplexity scores the\n"
                   "model's own distribution.",
        .args = args,
    };
    int rc = ob_cmd_parse(&spec, argc, argv, NULL);
    if (rc >= 0)
        return rc;
    if (!data) {
        fprintf(stderr, "%s: --data FILE is required (text or a token shard)\n", argv[0]);
        return 2;
    }
    infer_env e;
    if ((rc = infer_env_open(argv[0], &f, true, &e)) >= 0)
        return rc;
    ob_tokens toks = {0};
    const char *kind = "";
    ob_status st = load_tokens(data, e.tok, f.threads, &toks, &kind);
    ob_perplexity_result res;
    if (st == OB_OK) {
        ob_log(OB_LOG_INFO, "%s: %zu tokens (%s)", data, toks.count, kind);
        ob_perplexity_options po = {window, stride, max_tokens, !no_progress};
        st = ob_perplexity(e.session, toks.ids, toks.count, &po, &res);
    }
    if (st) {
        rc = ob_cmd_fail(argv[0]);
    } else {
        printf("perplexity %.4f (mean cross-entropy %.4f nats over %lld tokens, %lld windows, %.1f s, %.0f tok/s)\n",
               res.perplexity, res.mean_nll, (long long)res.tokens_scored, (long long)res.windows, res.seconds,
               res.tokens_scored / (res.seconds > 0 ? res.seconds : 1e-9));
        rc = 0;
    }
    ob_tokens_free(&toks);
    infer_env_close(&e);
    ob_args_free(&spec, NULL);
    return rc;
}
