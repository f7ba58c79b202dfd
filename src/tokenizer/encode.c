/* Encoding and decoding. Added tokens are found first (special ones only when
 * the caller allows them, as tiktoken's allowed_special does; non-special added
 * tokens always, as Hugging Face does); the text between them is pre-tokenized
 * and each piece goes through BPE. Decoding concatenates token bytes. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

void ob_tokens_free(ob_tokens *t) {
    free(t->ids);
    t->ids = NULL;
    t->count = t->capacity = 0;
}

ob_status ob_tokens_push(ob_tokens *t, int32_t id) {
    if (t->count == t->capacity) {
        size_t cap = t->capacity ? t->capacity * 2 : 64;
        int32_t *p = realloc(t->ids, cap * sizeof *p);
        if (!p)
            return ob_error(OB_ERR_NOMEM, "out of memory for %zu token ids", cap);
        t->ids = p;
        t->capacity = cap;
    }
    t->ids[t->count++] = id;
    return OB_OK;
}

typedef struct piece_ctx {
    const ob_tokenizer *tok;
    tok_work *w;
    ob_tokens *out;
} piece_ctx;

static ob_status on_piece(void *ctx, const uint8_t *piece, size_t n) {
    piece_ctx *c = ctx;
    return tok_bpe_piece(c->tok, c->w, piece, n, c->out);
}

/* Text without added tokens in it. */
static ob_status encode_ordinary(const ob_tokenizer *tok, tok_work *w, const uint8_t *text, size_t len,
                                 ob_tokens *out) {
    if (len == 0)
        return OB_OK;
    piece_ctx ctx = {tok, w, out};
    if (!tok->add_prefix_space || text[0] == ' ')
        return tok_split(tok, w, text, len, on_piece, &ctx);
    /* ByteLevel add_prefix_space: the segment is read as if it began with a space. */
    uint8_t *spaced = ob_malloc(len + 1);
    if (!spaced)
        return OB_ERR_NOMEM;
    spaced[0] = ' ';
    memcpy(spaced + 1, text, len);
    ob_status st = tok_split(tok, w, spaced, len + 1, on_piece, &ctx);
    free(spaced);
    return st;
}

static bool eligible(const ob_tokenizer *tok, int32_t id, bool allow_special) {
    return allow_special || !(tok->flags[id] & TOK_SPECIAL);
}

ob_status tok_encode_with(const ob_tokenizer *tok, tok_work *w, const uint8_t *text, size_t len, bool allow_special,
                          ob_tokens *out) {
    int n_match = 0;
    for (int i = 0; i < tok->n_added; i++)
        n_match += eligible(tok, tok->added[i], allow_special);
    if (n_match == 0)
        return encode_ordinary(tok, w, text, len, out);

    /* next[i]: where added token i next occurs at or after pos (len if never);
     * positions only move forward, so each token's memmem runs once per match. */
    size_t *next = ob_malloc((size_t)tok->n_added * sizeof *next);
    if (!next)
        return OB_ERR_NOMEM;
    for (int i = 0; i < tok->n_added; i++)
        next[i] = SIZE_MAX; /* not searched yet */
    ob_status st = OB_OK;
    size_t pos = 0;
    while (st == OB_OK) {
        size_t best_at = len;
        int best = -1;
        for (int i = 0; i < tok->n_added; i++) {
            int32_t id = tok->added[i];
            if (!eligible(tok, id, allow_special))
                continue;
            size_t n = tok->len[id];
            if (next[i] == SIZE_MAX || next[i] < pos) {
                const void *hit = pos + n <= len ? memmem(text + pos, len - pos, tok->blob + tok->start[id], n) : NULL;
                next[i] = hit ? (size_t)((const uint8_t *)hit - text) : len;
            }
            /* The leftmost match wins, and the longest among those at one place. */
            if (next[i] < best_at || (next[i] == best_at && best >= 0 && n > tok->len[tok->added[best]])) {
                best_at = next[i];
                best = i;
            }
        }
        if (best < 0 || best_at >= len) {
            st = encode_ordinary(tok, w, text + pos, len - pos, out);
            break;
        }
        st = encode_ordinary(tok, w, text + pos, best_at - pos, out);
        if (st == OB_OK)
            st = ob_tokens_push(out, tok->added[best]);
        pos = best_at + tok->len[tok->added[best]];
    }
    free(next);
    return st;
}

/* Inputs at least this long get a piece cache; for short ones clearing it would
 * cost more than it saves. */
#define CACHE_MIN_BYTES (16 * 1024)

ob_status ob_tokenizer_encode(const ob_tokenizer *tok, const char *text, size_t len, bool allow_special,
                              ob_tokens *out) {
    if (!tok || (!text && len > 0) || !out)
        return ob_error(OB_ERR_INVALID_ARG, "ob_tokenizer_encode: null argument");
    tok_work w;
    ob_status st = tok_work_init(&w, tok, len >= CACHE_MIN_BYTES);
    if (st)
        return st;
    st = tok_encode_with(tok, &w, (const uint8_t *)text, len, allow_special, out);
    tok_work_free(&w);
    return st;
}

ob_status ob_tokenizer_decode(const ob_tokenizer *tok, const int32_t *ids, size_t n, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab)
            return ob_error(OB_ERR_INVALID_ARG, "token id %d at position %zu is out of range (vocabulary size %d)",
                            (int)ids[i], i, tok->n_vocab);
        total += tok->len[ids[i]];
    }
    char *buf = ob_malloc(total + 1);
    if (!buf)
        return OB_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(buf + k, tok->blob + tok->start[ids[i]], tok->len[ids[i]]);
        k += tok->len[ids[i]];
    }
    buf[k] = '\0';
    *text = buf;
    *len = k;
    return OB_OK;
}
