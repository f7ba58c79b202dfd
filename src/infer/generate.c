/* Generation over a session: prefill the prompt, then sample and decode one
 * token at a time. The sampled token is reported before it is run through the
 * model, so the last token of a generation is not in the cache (res->last
 * says which it was; a chat runs it with its next turn). When the context
 * fills, generation stops or slides: the cache keeps its newer half,
 * re-encoded from position 0. */
#include <stdlib.h>
#include <string.h>

#include "onebit/infer.h"

static const char *const stop_names[] = {"max-tokens", "eos", "context", "callback"};

const char *ob_stop_reason_name(ob_stop_reason r) {
    return (unsigned)r < sizeof stop_names / sizeof *stop_names ? stop_names[r] : "?";
}

/* Makes room for n more tokens: slides (keeping the newer half of the cache,
 * less what the n tokens need) or reports that it cannot. */
static ob_status make_room(ob_infer *s, int n, bool slide, bool *full, int *slides) {
    int ctx = ob_infer_context(s), pos = ob_infer_position(s);
    *full = false;
    if (pos + n <= ctx)
        return OB_OK;
    if (!slide) {
        *full = true;
        return OB_OK;
    }
    int keep = ctx / 2 < ctx - n ? ctx / 2 : ctx - n;
    (*slides)++;
    if (keep < 1) {
        ob_infer_reset(s);
        return OB_OK;
    }
    if (keep > pos)
        keep = pos;
    return ob_infer_slide(s, keep, NULL);
}

ob_status ob_generate(ob_infer *s, ob_sampler *smp, const int32_t *prompt, int n_prompt,
                      const ob_generate_options *o, ob_token_fn fn, void *user, ob_generate_result *res) {
    memset(res, 0, sizeof *res);
    res->last = -1;
    const ob_config *c = &ob_infer_model(s)->cfg;
    int V = c->vocab_size, ctx = ob_infer_context(s);
    int limit = o->vocab_limit > 0 && o->vocab_limit < V ? o->vocab_limit : V;
    if (n_prompt < 0 || (n_prompt == 0 && ob_infer_position(s) == 0))
        return ob_error(OB_ERR_INVALID_ARG, "generate: the prompt is empty and the context holds nothing");
    /* A prompt longer than the context keeps its end when sliding. */
    if (n_prompt > ctx) {
        if (!o->slide)
            return ob_error(OB_ERR_INVALID_ARG, "generate: a prompt of %d tokens does not fit the context of %d",
                            n_prompt, ctx);
        prompt += n_prompt - ctx / 2;
        n_prompt = ctx / 2;
        ob_infer_reset(s);
        res->slides++;
    }
    float *logits = ob_malloc((size_t)V * sizeof(float));
    if (!logits)
        return OB_ERR_NOMEM;
    ob_status st = OB_OK;
    bool full = false;
    double t0 = ob_now();
    if (n_prompt > 0) {
        st = make_room(s, n_prompt, o->slide, &full, &res->slides);
        if (st == OB_OK && full)
            st = ob_error(OB_ERR_INVALID_ARG, "generate: context full (%d of %d tokens used, the prompt has %d)",
                          ob_infer_position(s), ctx, n_prompt);
        if (st == OB_OK)
            st = ob_infer_forward(s, prompt, n_prompt, logits, false);
    } else {
        /* Continue from the cache. A session keeps no logits, so the cached
         * tokens are encoded again to get those of the last one. */
        int pos = ob_infer_position(s);
        st = ob_infer_slide(s, pos, logits);
    }
    res->prompt_tokens = n_prompt;
    double t1 = ob_now();
    res->prefill_seconds = t1 - t0;
    res->stop = OB_STOP_MAX_TOKENS;
    while (st == OB_OK && res->generated < o->max_tokens) {
        int32_t tok;
        st = ob_sampler_sample(smp, logits, limit, ob_infer_tokens(s), (size_t)ob_infer_position(s), &tok);
        if (st)
            break;
        if (tok == o->eos_id) {
            res->stop = OB_STOP_EOS;
            break;
        }
        res->generated++;
        res->last = tok;
        if (fn && !fn(tok, user)) {
            res->stop = OB_STOP_CALLBACK;
            break;
        }
        if (res->generated == o->max_tokens)
            break;
        st = make_room(s, 1, o->slide, &full, &res->slides);
        if (st == OB_OK && full) {
            res->stop = OB_STOP_CONTEXT;
            break;
        }
        if (st == OB_OK)
            st = ob_infer_forward(s, &tok, 1, logits, false);
        if (st == OB_OK)
            res->last = -1;
    }
    res->decode_seconds = ob_now() - t1;
    free(logits);
    return st;
}
