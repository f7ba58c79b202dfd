/* GPT-2 pre-tokenization: the text is cut into pieces by GPT-2's regex (PCRE2,
 * JIT-compiled, with Unicode properties) before BPE runs on each piece alone.
 *
 * tiktoken cannot be given invalid UTF-8: its inputs are Unicode strings, and
 * every binding (Python, JavaScript) turns invalid bytes into U+FFFD on the way
 * in, which loses them. We keep the bytes (decode(encode(x)) == x for every byte
 * string) and split exactly as tiktoken splits the U+FFFD-replaced text: the
 * regex runs over a copy in which every byte that is not part of well-formed
 * UTF-8 is replaced by '!', a one-byte character of the same class as U+FFFD
 * (neither space, letter, number nor apostrophe), so the piece boundaries carry
 * over byte for byte; BPE then runs on the original bytes of each piece. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* GPT-2's pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * with \s spelled out as Unicode's White_Space property, which is what tiktoken's
 * Rust regex means by \s. PCRE2's \s (with PCRE2_UCP) also matches U+180E
 * MONGOLIAN VOWEL SEPARATOR, which stopped being a space in Unicode 6.3; the
 * exhaustive code-point test found that difference. */
#define WHITE_SPACE "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
const char tok_gpt2_pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WHITE_SPACE "\\p{L}\\p{N}]+"
                                "|[" WHITE_SPACE "]+(?![^" WHITE_SPACE "])|[" WHITE_SPACE "]+";

/* Stands in for an invalid byte; see above. */
#define INVALID_BYTE_STANDIN '!'

ob_status tok_compile_regex(pcre2_code **out) {
    int err;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)tok_gpt2_pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                                   &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return ob_error(OB_ERR_UNSUPPORTED, "cannot compile the GPT-2 pattern at offset %zu: %s", (size_t)at,
                        (const char *)msg);
    }
    /* Without JIT (a platform PCRE2 lacks it for) the interpreter gives the same
     * pieces, only slower. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    *out = re;
    return OB_OK;
}

ob_status tok_work_init(tok_work *w, const ob_tokenizer *tok, bool with_cache) {
    memset(w, 0, sizeof *w);
    if (tok->regex) {
        w->match = pcre2_match_data_create_from_pattern(tok->regex, NULL);
        w->mctx = pcre2_match_context_create(NULL);
        /* A long run of spaces backtracks in \s+(?!\S): give the JIT room. */
        w->jit_stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, NULL);
        if (!w->match || !w->mctx || !w->jit_stack) {
            tok_work_free(w);
            return ob_error(OB_ERR_NOMEM, "out of memory for regex match data");
        }
        pcre2_jit_stack_assign(w->mctx, NULL, w->jit_stack);
        /* pcre2_jit_match skips pcre2_match's option checks; the subject is
         * valid UTF-8 by construction (see regex_subject). */
        size_t jit_size = 0;
        w->jit = pcre2_pattern_info(tok->regex, PCRE2_INFO_JITSIZE, &jit_size) == 0 && jit_size > 0;
    }
    if (with_cache) {
        w->cache = ob_calloc(TOK_CACHE_SLOTS, sizeof *w->cache);
        if (!w->cache) {
            tok_work_free(w);
            return OB_ERR_NOMEM;
        }
    }
    return OB_OK;
}

void tok_work_free(tok_work *w) {
    if (w->match)
        pcre2_match_data_free(w->match);
    if (w->mctx)
        pcre2_match_context_free(w->mctx);
    if (w->jit_stack)
        pcre2_jit_stack_free(w->jit_stack);
    free(w->clean);
    free(w->ids);
    free(w->ranks);
    free(w->next);
    free(w->prev);
    free(w->heap);
    free(w->cache);
    memset(w, 0, sizeof *w);
}

/* The text the regex runs on: `text` itself when it is valid UTF-8, else a copy
 * with each invalid byte replaced by the stand-in. */
static const uint8_t *regex_subject(tok_work *w, const uint8_t *text, size_t len) {
    size_t bad = tok_utf8_first_invalid(text, len);
    if (bad == len)
        return text;
    if (w->clean_cap < len) {
        uint8_t *p = realloc(w->clean, len);
        if (!p)
            return NULL;
        w->clean = p;
        w->clean_cap = len;
    }
    memcpy(w->clean, text, bad);
    size_t i = bad;
    while (i < len) {
        uint32_t cp;
        int k = text[i] < 0x80 ? 1 : tok_utf8_decode(text + i, len - i, &cp);
        if (k == 0) {
            w->clean[i++] = INVALID_BYTE_STANDIN;
        } else {
            memcpy(w->clean + i, text + i, (size_t)k);
            i += (size_t)k;
        }
    }
    return w->clean;
}

ob_status tok_split(const ob_tokenizer *tok, tok_work *w, const uint8_t *text, size_t len, tok_piece_fn fn,
                    void *ctx) {
    const uint8_t *subject = regex_subject(w, text, len);
    if (!subject)
        return ob_error(OB_ERR_NOMEM, "out of memory for a %zu-byte text", len);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(w->match);
    size_t off = 0;
    while (off < len) {
        int rc = w->jit ? pcre2_jit_match(tok->regex, subject, len, off, 0, w->match, w->mctx)
                        : pcre2_match(tok->regex, subject, len, off, PCRE2_NO_UTF_CHECK, w->match, w->mctx);
        size_t from, to;
        if (rc == PCRE2_ERROR_NOMATCH) {
            from = to = len; /* cannot happen: every character matches some branch */
        } else if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return ob_error(OB_ERR_UNSUPPORTED, "pre-tokenizer regex failed at byte %zu: %s", off, (const char *)msg);
        } else {
            from = ov[0];
            to = ov[1] > ov[0] ? ov[1] : ov[0] + 1; /* no branch matches empty; never loop */
            if (to > len)
                to = len;
        }
        ob_status st;
        if (from > off && (st = fn(ctx, text + off, from - off)) != OB_OK)
            return st;
        if (to > from && (st = fn(ctx, text + from, to - from)) != OB_OK)
            return st;
        off = to;
    }
    return OB_OK;
}
