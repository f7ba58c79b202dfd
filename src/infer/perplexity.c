/* Perplexity with plain cross-entropy over sliding windows: the first window
 * covers tokens [0, window) and scores targets 1 .. window−1; each next one
 * scores the next `stride` targets [a, b) with the window of tokens
 * [b − window, b) before them, so every target t >= 1 is scored exactly once,
 * given at least window − stride tokens of context once the first window is
 * past. Each window starts from an empty cache; its logits are taken a chunk
 * at a time, so memory stays at one chunk × vocabulary. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer/session.h"

/* −log softmax(z)[target], in double. */
static double nll(const float *z, int V, int target) {
    float maxv = z[0];
    for (int v = 1; v < V; v++)
        if (z[v] > maxv)
            maxv = z[v];
    double sum = 0;
    for (int v = 0; v < V; v++)
        sum += exp((double)z[v] - maxv);
    return (double)maxv + log(sum) - z[target];
}

ob_status ob_perplexity(ob_infer *s, const int32_t *tokens, size_t n, const ob_perplexity_options *o,
                        ob_perplexity_result *res) {
    memset(res, 0, sizeof *res);
    int ctx = ob_infer_context(s), V = s->pm->cfg.vocab_size;
    int window = o->window > 0 ? o->window : ctx;
    if (window > ctx || window < 2)
        return ob_error(OB_ERR_INVALID_ARG, "perplexity: window %d is outside 2..%d (the context)", window, ctx);
    int stride = o->stride > 0 ? o->stride : window / 2;
    if (stride >= window)
        return ob_error(OB_ERR_INVALID_ARG,
                        "perplexity: stride %d must be below the window %d (a target needs the token before it)",
                        stride, window);
    if (o->max_tokens > 0 && (uint64_t)o->max_tokens + 1 < n)
        n = (size_t)o->max_tokens + 1;
    if (n < 2)
        return ob_error(OB_ERR_INVALID_ARG, "perplexity: %zu tokens; at least 2 are needed", n);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return ob_error(OB_ERR_INVALID_ARG, "perplexity: token %d at position %zu is outside the vocabulary (%d)",
                            tokens[i], i, V);
    float *logits = ob_malloc((size_t)OB_INFER_CHUNK * V * sizeof(float));
    if (!logits)
        return OB_ERR_NOMEM;
    ob_progress bar;
    if (o->progress)
        ob_progress_begin(&bar, NULL, "perplexity", (uint64_t)(n - 1), "tok");
    double t0 = ob_now();
    ob_status st = OB_OK;
    size_t scored_to = 1; /* targets [1, scored_to) are done */
    while (st == OB_OK && scored_to < n) {
        size_t end = scored_to == 1 ? (size_t)window : scored_to + (size_t)stride;
        if (end > n)
            end = n;
        size_t begin = end > (size_t)window ? end - (size_t)window : 0;
        ob_infer_reset(s);
        for (size_t at = begin; st == OB_OK && at < end;) {
            int m = end - at < OB_INFER_CHUNK ? (int)(end - at) : OB_INFER_CHUNK;
            /* Tokens that only give context need no logits. */
            size_t first_scored_row = scored_to - 1;
            if (at < first_scored_row) {
                if ((size_t)m > first_scored_row - at)
                    m = (int)(first_scored_row - at);
                st = ob_infer_forward(s, tokens + at, m, NULL, false);
                at += (size_t)m;
                continue;
            }
            st = ob_infer_forward(s, tokens + at, m, logits, true);
            /* Row i predicts token at + i + 1. */
            for (int i = 0; st == OB_OK && i < m; i++) {
                size_t target = at + (size_t)i + 1;
                if (target < scored_to || target >= end)
                    continue;
                res->nll_sum += nll(logits + (size_t)i * V, V, tokens[target]);
                res->tokens_scored++;
            }
            at += (size_t)m;
        }
        scored_to = end;
        res->windows++;
        if (o->progress)
            ob_progress_update(&bar, (uint64_t)res->tokens_scored, NULL);
    }
    free(logits);
    res->seconds = ob_now() - t0;
    if (st == OB_OK) {
        res->mean_nll = res->nll_sum / (double)res->tokens_scored;
        res->perplexity = exp(res->mean_nll);
    }
    if (o->progress) {
        char suffix[64];
        snprintf(suffix, sizeof suffix, "perplexity %.3f", res->perplexity);
        ob_progress_end(&bar, st == OB_OK ? suffix : NULL);
    }
    return st;
}
