/* Multi-turn chat over one session. The conversation is plain text, kept in
 * the KV cache so that each turn only runs its new tokens:
 *
 *   <eos>{user_prefix}{message}\n{assistant_prefix}{reply}\n{user_prefix}...
 *
 * (the EOS token opens the conversation as it opens every training document).
 * A reply ends at EOS, at its first blank line, or after max_tokens; its last
 * token is run with the next turn. When the conversation outgrows the context,
 * its older tokens slide out (ob_generate). */
#include <stdlib.h>
#include <string.h>

#include "onebit/infer.h"

struct ob_chat {
    ob_infer *s;
    ob_sampler *smp;
    const ob_tokenizer *tok;
    ob_chat_options o;
    int eos;
    int32_t pending;    /* the previous reply's last token, not yet run; -1: none */
    bool ended_newline; /* the previous reply ended with a newline */
    bool started;
    ob_tokens prompt;
};

ob_status ob_chat_create(ob_infer *s, ob_sampler *smp, const ob_tokenizer *tok, const ob_chat_options *opts,
                         ob_chat **out) {
    *out = NULL;
    ob_chat *c = ob_calloc(1, sizeof *c);
    if (!c)
        return OB_ERR_NOMEM;
    c->s = s;
    c->smp = smp;
    c->tok = tok;
    if (opts)
        c->o = *opts;
    if (!c->o.user_prefix)
        c->o.user_prefix = "";
    if (!c->o.assistant_prefix)
        c->o.assistant_prefix = "";
    if (c->o.max_tokens <= 0)
        c->o.max_tokens = 128;
    c->eos = ob_tokenizer_eos_id(tok);
    ob_chat_reset(c);
    *out = c;
    return OB_OK;
}

void ob_chat_free(ob_chat *c) {
    if (!c)
        return;
    ob_tokens_free(&c->prompt);
    free(c);
}

void ob_chat_reset(ob_chat *c) {
    ob_infer_reset(c->s);
    c->pending = -1;
    c->ended_newline = true;
    c->started = false;
}

typedef struct {
    ob_chat *c;
    ob_text_fn fn;
    void *user;
    char tail[2]; /* the last two bytes of the reply */
    size_t bytes;
} reply_state;

static bool on_token(int32_t token, void *user) {
    reply_state *r = user;
    size_t len;
    const uint8_t *bytes = ob_tokenizer_token_bytes(r->c->tok, token, &len);
    if (!bytes || !len)
        return true;
    if (r->fn)
        r->fn((const char *)bytes, len, r->user);
    for (size_t i = 0; i < len; i++) {
        r->tail[0] = r->tail[1];
        r->tail[1] = (char)bytes[i];
    }
    r->bytes += len;
    /* A blank line ends the reply. */
    return !(r->bytes >= 2 && r->tail[0] == '\n' && r->tail[1] == '\n');
}

ob_status ob_chat_send(ob_chat *c, const char *message, ob_text_fn fn, void *user, ob_generate_result *res) {
    c->prompt.count = 0;
    ob_status st = OB_OK;
    if (!c->started && c->eos >= 0)
        st = ob_tokens_push(&c->prompt, c->eos);
    if (st == OB_OK && c->pending >= 0)
        st = ob_tokens_push(&c->prompt, c->pending);
    size_t n = strlen(c->o.user_prefix) + strlen(message) + strlen(c->o.assistant_prefix) + 3;
    char *text = ob_malloc(n);
    if (!text)
        return OB_ERR_NOMEM;
    snprintf(text, n, "%s%s%s\n%s", c->ended_newline ? "" : "\n", c->o.user_prefix, message, c->o.assistant_prefix);
    if (st == OB_OK)
        st = ob_tokenizer_encode(c->tok, text, strlen(text), false, &c->prompt);
    free(text);
    if (st)
        return st;
    reply_state r = {c, fn, user, {0, 0}, 0};
    ob_generate_options go = {c->o.max_tokens, c->eos, ob_tokenizer_vocab_size(c->tok), true};
    st = ob_generate(c->s, c->smp, c->prompt.ids, (int)c->prompt.count, &go, on_token, &r, res);
    c->started = true;
    c->pending = st == OB_OK ? res->last : -1;
    c->ended_newline = r.bytes > 0 && r.tail[1] == '\n';
    return st;
}
