/* Encoding a large buffer on many threads with the same ids as one thread: the
 * text is cut only where GPT-2's pattern is certain to end a piece whatever
 * follows, and each chunk is encoded on its own (OpenMP, one workspace and
 * piece cache per thread).
 *
 * The safe place used is a cut just after a newline that has a printable,
 * non-space ASCII character on each side ("x\ny"): the newline is a piece of its
 * own both in the whole text (\s+ followed by non-space) and at the end of the
 * first chunk (\s+(?!\S) at the end of input), no piece crosses it, and the
 * regex never looks behind. Any text with line structure has plenty of them;
 * text without any is encoded in one chunk. */
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "tokenizer/tok_internal.h"

static bool graphic_ascii(uint8_t c) { return c > 0x20 && c < 0x7F; }

static bool safe_cut(const uint8_t *s, size_t len, size_t p) {
    return p >= 2 && p < len && s[p - 1] == '\n' && graphic_ascii(s[p - 2]) && graphic_ascii(s[p]);
}

size_t ob_tokenizer_safe_cuts(const char *text, size_t len, size_t *cuts, size_t max_cuts) {
    const uint8_t *s = (const uint8_t *)text;
    size_t n = 0, prev = 0;
    for (size_t k = 1; k <= max_cuts; k++) {
        size_t from = (size_t)((double)len * (double)k / (double)(max_cuts + 1));
        if (from <= prev)
            from = prev + 1;
        while (from < len) {
            const uint8_t *nl = memchr(s + from, '\n', len - from);
            if (!nl)
                return n;
            size_t p = (size_t)(nl - s) + 1;
            if (safe_cut(s, len, p)) {
                cuts[n++] = prev = p;
                break;
            }
            from = p;
        }
        if (from >= len)
            break;
    }
    return n;
}

/* Added tokens are matched before splitting; one holding a newline could be cut
 * in half. add_prefix_space would add a space to every chunk. Both are rare in
 * GPT-2-style tokenizers; such tokenizers encode on one thread. */
static bool can_split(const ob_tokenizer *tok) {
    if (tok->add_prefix_space)
        return false;
    for (int i = 0; i < tok->n_added; i++)
        if (memchr(tok->blob + tok->start[tok->added[i]], '\n', tok->len[tok->added[i]]))
            return false;
    return true;
}

/* Chunks this small are not worth a thread. */
#define MIN_CHUNK (64 * 1024)

ob_status ob_tokenizer_encode_parallel(const ob_tokenizer *tok, const char *text, size_t len, bool allow_special,
                                       int threads, ob_tokens *out) {
    if (!tok || (!text && len > 0) || !out)
        return ob_error(OB_ERR_INVALID_ARG, "ob_tokenizer_encode_parallel: null argument");
    if (threads <= 0)
        threads = omp_get_max_threads();
    size_t want = (size_t)threads * 4; /* several chunks per thread balance uneven text */
    if (want > len / MIN_CHUNK)
        want = len / MIN_CHUNK;
    if (threads == 1 || want < 2 || !can_split(tok))
        return ob_tokenizer_encode(tok, text, len, allow_special, out);

    size_t *bounds = ob_malloc((want + 1) * sizeof *bounds);
    if (!bounds)
        return OB_ERR_NOMEM;
    bounds[0] = 0;
    size_t n_chunks = ob_tokenizer_safe_cuts(text, len, bounds + 1, want - 1) + 1;
    bounds[n_chunks] = len;
    ob_tokens *parts = ob_calloc(n_chunks, sizeof *parts);
    tok_work *work = ob_calloc((size_t)threads, sizeof *work);
    ob_status st = parts && work ? OB_OK : OB_ERR_NOMEM;
    char message[512] = "";
    const bool ready = st == OB_OK;
#pragma omp parallel num_threads(threads)
    {
        tok_work *w = &work[omp_get_thread_num()];
        ob_status mine = ready ? tok_work_init(w, tok, true) : OB_ERR_NOMEM;
#pragma omp for schedule(dynamic, 1)
        for (size_t c = 0; c < n_chunks; c++) {
            /* Encode into a local list and store it once: neighbouring parts[]
             * share cache lines, and updating their counts token by token from
             * different threads would bounce those lines between cores. */
            ob_tokens local = {0};
            if (mine == OB_OK)
                mine = tok_encode_with(tok, w, (const uint8_t *)text + bounds[c], bounds[c + 1] - bounds[c],
                                       allow_special, &local);
            parts[c] = local;
        }
        if (mine != OB_OK) {
            /* Error messages are per thread: carry one back to the caller's. */
#pragma omp critical(ob_tokenizer_encode_error)
            if (st == OB_OK) {
                st = mine;
                snprintf(message, sizeof message, "%s", ob_last_error());
            }
        }
        if (ready)
            tok_work_free(w);
    }
    size_t total = out->count;
    for (size_t c = 0; c < n_chunks && st == OB_OK; c++)
        total += parts[c].count;
    if (st == OB_OK && total > out->capacity) {
        int32_t *p = realloc(out->ids, total * sizeof *p);
        if (!p)
            st = ob_error(OB_ERR_NOMEM, "out of memory for %zu token ids", total);
        else {
            out->ids = p;
            out->capacity = total;
        }
    }
    for (size_t c = 0; c < n_chunks && st == OB_OK; c++) {
        memcpy(out->ids + out->count, parts[c].ids, parts[c].count * sizeof *parts[c].ids);
        out->count += parts[c].count;
    }
    for (size_t c = 0; parts && c < n_chunks; c++)
        ob_tokens_free(&parts[c]);
    free(parts);
    free(work);
    free(bounds);
    if (st && message[0])
        return ob_error(st, "%s", message);
    return st;
}
