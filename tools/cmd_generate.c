/* onebit test-generate (onebit-test-generate; onebit generate is the same):
 * continues OneBit-LLM's five test prompts, or the --prompt given, streaming
 * each continuation to stdout, with speed figures on stderr. */
#include <stdio.h>
#include <string.h>

#include "infer_common.h"

static const char *const test_prompts[] = {"The cat sat", "The rain fell", "A small boat", "The scientist",
                                           "Stars twinkled"};

typedef struct {
    const ob_tokenizer *tok;
} stream;

static bool print_token(int32_t token, void *user) {
    const stream *s = user;
    infer_print_token(s->tok, token);
    return true;
}

int ob_cmd_generate(int argc, char **argv) {
    infer_flags f;
    infer_flags_default(&f, 64);
    const char *prompt = NULL;
    const ob_arg args[] = {
        INFER_MODEL_ARGS(f),
        INFER_SAMPLER_ARGS(f),
        {"--prompt", OB_ARG_STRING, &prompt, "TEXT", "continue this text instead of the five test prompts", NULL, 0, 0,
         NULL},
        {0},
    };
    const ob_command_spec spec = {
        .name = argv[0],
        .summary = "Continue OneBit-LLM's five test prompts (\"The cat sat\", \"The rain fell\", \"A small boat\", "
                   "\"The scientist\", \"Stars twinkled\"), or --prompt, with the model.",
        .usage = "--model-dir DIR | --model FILE [options]",
        .details = "Each prompt starts a fresh context, opened by the end-of-text token as training documents are.\n"
                   "The continuation streams to stdout; tokens and speed go to stderr. --temperature 0 is greedy.",
        .args = args,
    };
    int rc = ob_cmd_parse(&spec, argc, argv, NULL);
    if (rc >= 0)
        return rc;
    infer_env e;
    if ((rc = infer_env_open(argv[0], &f, true, &e)) >= 0)
        return rc;
    const char *const *prompts = prompt ? &prompt : test_prompts;
    size_t count = prompt ? 1 : sizeof test_prompts / sizeof *test_prompts;
    int eos = ob_tokenizer_eos_id(e.tok);
    ob_generate_options go = {f.max_tokens, eos, ob_tokenizer_vocab_size(e.tok), false};
    ob_tokens ids = {0};
    stream st = {e.tok};
    rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        ids.count = 0;
        ob_infer_reset(e.session);
        ob_status s = eos >= 0 ? ob_tokens_push(&ids, eos) : OB_OK;
        if (s == OB_OK)
            s = ob_tokenizer_encode(e.tok, prompts[i], strlen(prompts[i]), false, &ids);
        if (s == OB_OK && ids.count == 0)
            s = ob_error(OB_ERR_INVALID_ARG, "the prompt is empty and the tokenizer has no end-of-text token");
        ob_generate_result res;
        if (s == OB_OK) {
            printf("%s", prompts[i]);
            fflush(stdout);
            s = ob_generate(e.session, e.sampler, ids.ids, (int)ids.count, &go, print_token, &st, &res);
            printf("\n\n");
            fflush(stdout);
        }
        if (s) {
            rc = ob_cmd_fail(argv[0]);
            break;
        }
        fprintf(stderr, "[%d prompt tokens, %d generated (%s); prefill %.1f tok/s, decode %.1f tok/s]\n",
                res.prompt_tokens, res.generated, ob_stop_reason_name(res.stop),
                res.prompt_tokens / (res.prefill_seconds > 0 ? res.prefill_seconds : 1e-9),
                res.generated / (res.decode_seconds > 0 ? res.decode_seconds : 1e-9));
    }
    ob_tokens_free(&ids);
    infer_env_close(&e);
    ob_args_free(&spec, NULL);
    return rc;
}
