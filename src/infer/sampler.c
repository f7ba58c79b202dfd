/* The sampler (include/onebit/sampler.h). Stages, in order, over logits z
 * taken in double:
 *   1. repetition penalty ρ: each distinct id among the last `window` tokens
 *      of the history once: z ← z/ρ if z > 0, else z·ρ;
 *   2. temperature ≤ 0: greedy, the largest z (the lowest id on ties);
 *   3. z ← z / temperature;
 *   4. top-k: exactly the k largest z (ties: the lower id first);
 *   5. softmax over the kept ids;
 *   6. top-p: in order of (z descending, id ascending), the shortest prefix
 *      whose probability reaches p; renormalised;
 *   7. min-p: ids with p >= min_p · max p; renormalised;
 *   8. when more than one id is left, one uniform u from the seeded stream:
 *      the first id in that order whose cumulative probability exceeds u.
 * Candidates are kept in that order; only as many are sorted as a stage
 * needs (a partial selection first), so a large vocabulary costs O(V).
 * exp is obe_exp (embedded/onebit_math.h), which the embedded runtime's
 * sampler shares, so both draw the same tokens from the same logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/sampler.h"
#include "onebit_math.h"

struct ob_sampler {
    ob_sampler_params p;
    ob_rng rng;
    int max_vocab;
    double *z;    /* [max_vocab] working logits */
    double *prob; /* [max_vocab] probability of the candidate at each rank */
    int32_t *idx; /* [max_vocab] candidate ids, best first once sorted */
    uint8_t *seen;
    int count;    /* candidates kept */
};

void ob_sampler_params_default(ob_sampler_params *p) {
    p->temperature = 0.8;
    p->top_k = 40;
    p->top_p = 0.9;
    p->min_p = 0.0;
    p->repetition_penalty = 1.1;
    p->repetition_window = 64;
    p->seed = 42;
}

ob_status ob_sampler_params_validate(const ob_sampler_params *p) {
    if (!isfinite(p->temperature))
        return ob_error(OB_ERR_INVALID_ARG, "sampler: temperature %g is not finite", p->temperature);
    if (p->top_k < 0)
        return ob_error(OB_ERR_INVALID_ARG, "sampler: top_k %d is negative", p->top_k);
    if (!(p->top_p > 0))
        return ob_error(OB_ERR_INVALID_ARG, "sampler: top_p %g must be above 0 (1 turns it off)", p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return ob_error(OB_ERR_INVALID_ARG, "sampler: min_p %g is outside [0, 1]", p->min_p);
    if (!(p->repetition_penalty > 0) || !isfinite(p->repetition_penalty))
        return ob_error(OB_ERR_INVALID_ARG, "sampler: repetition_penalty %g must be above 0 (1 turns it off)",
                        p->repetition_penalty);
    if (p->repetition_window < 0)
        return ob_error(OB_ERR_INVALID_ARG, "sampler: repetition_window %d is negative", p->repetition_window);
    return OB_OK;
}

ob_status ob_sampler_create(const ob_sampler_params *p, int max_vocab, ob_sampler **out) {
    *out = NULL;
    ob_status st = ob_sampler_params_validate(p);
    if (st)
        return st;
    if (max_vocab < 1)
        return ob_error(OB_ERR_INVALID_ARG, "sampler: vocabulary of %d", max_vocab);
    ob_sampler *s = ob_calloc(1, sizeof *s);
    if (!s)
        return OB_ERR_NOMEM;
    s->p = *p;
    s->max_vocab = max_vocab;
    s->z = ob_malloc((size_t)max_vocab * sizeof(double));
    s->prob = ob_malloc((size_t)max_vocab * sizeof(double));
    s->idx = ob_malloc((size_t)max_vocab * sizeof(int32_t));
    s->seen = ob_calloc((size_t)max_vocab, 1);
    if (!s->z || !s->prob || !s->idx || !s->seen) {
        ob_sampler_free(s);
        return OB_ERR_NOMEM;
    }
    ob_rng_seed(&s->rng, p->seed);
    *out = s;
    return OB_OK;
}

void ob_sampler_free(ob_sampler *s) {
    if (!s)
        return;
    free(s->z);
    free(s->prob);
    free(s->idx);
    free(s->seen);
    free(s);
}

void ob_sampler_seed(ob_sampler *s, uint64_t seed) { ob_rng_seed(&s->rng, seed); }
const ob_sampler_params *ob_sampler_get_params(const ob_sampler *s) { return &s->p; }

/* ---- ordering ----------------------------------------------------------------------- */

/* a ranks before b: larger z, then lower id. */
static inline bool before(const double *z, int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); }

static void swap_ids(int32_t *v, int i, int j) {
    int32_t t = v[i];
    v[i] = v[j];
    v[j] = t;
}

/* Rearranges v[0..n) so that its first m entries are the m best (unordered). */
static void select_best(const double *z, int32_t *v, int n, int m) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t pivot = v[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (before(z, v[i], pivot))
                i++;
            while (before(z, pivot, v[j]))
                j--;
            if (i <= j)
                swap_ids(v, i++, j--);
        }
        if (m - 1 <= j)
            hi = j;
        else if (m - 1 >= i)
            lo = i;
        else
            break;
    }
}

static int cmp_rank(const void *a, const void *b, void *keys) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return before(keys, x, y) ? -1 : (before(keys, y, x) ? 1 : 0);
}

/* Sorts the best m of v[0..n) into v[0..m). */
static void sort_best(const double *z, int32_t *v, int n, int m) {
    if (m < n)
        select_best(z, v, n, m);
    qsort_r(v, (size_t)m, sizeof *v, cmp_rank, (void *)z);
}

/* ---- the stages ----------------------------------------------------------------------- */

static void penalise(ob_sampler *s, int n, const int32_t *history, size_t n_history) {
    double rho = s->p.repetition_penalty;
    if (rho == 1.0 || !history)
        return;
    size_t w = s->p.repetition_window ? (size_t)s->p.repetition_window : n_history;
    size_t start = n_history > w ? n_history - w : 0;
    for (size_t i = start; i < n_history; i++) {
        int32_t t = history[i];
        if (t < 0 || t >= n || s->seen[t])
            continue;
        s->seen[t] = 1;
        s->z[t] = s->z[t] > 0 ? s->z[t] / rho : s->z[t] * rho;
    }
    for (size_t i = start; i < n_history; i++)
        if (history[i] >= 0 && history[i] < n)
            s->seen[history[i]] = 0;
}

static void normalise(ob_sampler *s) {
    double sum = 0;
    for (int i = 0; i < s->count; i++)
        sum += s->prob[i];
    for (int i = 0; i < s->count; i++)
        s->prob[i] /= sum;
}

/* Leaves the kept candidates in s->idx[0..count) with s->prob. */
static ob_status filter(ob_sampler *s, const float *logits, int n, const int32_t *history, size_t n_history) {
    if (n < 1 || n > s->max_vocab)
        return ob_error(OB_ERR_INVALID_ARG, "sampler: %d logits for a sampler of %d", n, s->max_vocab);
    for (int i = 0; i < n; i++) {
        if (!isfinite(logits[i]))
            return ob_error(OB_ERR_NUMERIC, "sampler: logit %d is %g", i, (double)logits[i]);
        s->z[i] = logits[i];
        s->idx[i] = i;
    }
    penalise(s, n, history, n_history);
    const ob_sampler_params *p = &s->p;
    if (p->temperature <= 0) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (s->z[i] > s->z[best])
                best = i;
        s->idx[0] = best;
        s->prob[0] = 1;
        s->count = 1;
        return OB_OK;
    }
    for (int i = 0; i < n; i++)
        s->z[i] /= p->temperature;
    s->count = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    bool need_order = p->top_p < 1 || p->min_p > 0;
    int sorted = 0;
    if (s->count < n || need_order) {
        /* Sorting every id is rarely needed: top-k needs k, top-p stops
         * early on peaked distributions (the sorted prefix doubles until it
         * reaches p). */
        sorted = p->top_p < 1 && s->count == n ? (n < 256 ? n : 256) : s->count;
        sort_best(s->z, s->idx, n, sorted);
    }
    double maxz = s->z[s->idx[0]];
    if (!sorted)
        for (int i = 1; i < s->count; i++)
            maxz = fmax(maxz, s->z[s->idx[i]]);
    for (int i = 0; i < s->count; i++)
        s->prob[i] = obe_exp(s->z[s->idx[i]] - maxz);
    normalise(s);
    if (p->top_p < 1) {
        double cum = 0;
        int keep = 0;
        for (;;) {
            while (keep < sorted && cum < p->top_p)
                cum += s->prob[keep++];
            if (cum >= p->top_p || sorted == s->count)
                break;
            /* Extend the sorted prefix; probabilities follow the new order. */
            int more = sorted * 2 < s->count ? sorted * 2 : s->count;
            sort_best(s->z, s->idx + sorted, s->count - sorted, more - sorted);
            double sum = 0;
            for (int i = 0; i < s->count; i++)
                sum += obe_exp(s->z[s->idx[i]] - maxz);
            for (int i = sorted; i < more; i++)
                s->prob[i] = obe_exp(s->z[s->idx[i]] - maxz) / sum;
            sorted = more;
        }
        s->count = keep > 0 ? keep : 1;
        normalise(s);
    }
    if (p->min_p > 0) {
        double threshold = p->min_p * s->prob[0];
        int keep = 0;
        while (keep < s->count && s->prob[keep] >= threshold)
            keep++;
        s->count = keep > 0 ? keep : 1;
        normalise(s);
    }
    return OB_OK;
}

ob_status ob_sampler_distribution(ob_sampler *s, const float *logits, int n, const int32_t *history,
                                  size_t n_history, double *probs) {
    ob_status st = filter(s, logits, n, history, n_history);
    if (st)
        return st;
    memset(probs, 0, (size_t)n * sizeof(double));
    for (int i = 0; i < s->count; i++)
        probs[s->idx[i]] = s->prob[i];
    return OB_OK;
}

ob_status ob_sampler_sample(ob_sampler *s, const float *logits, int n, const int32_t *history, size_t n_history,
                            int32_t *token) {
    ob_status st = filter(s, logits, n, history, n_history);
    if (st)
        return st;
    if (s->count == 1) {
        *token = s->idx[0];
        return OB_OK;
    }
    double u = ob_rng_uniform(&s->rng), cum = 0;
    for (int i = 0; i < s->count; i++) {
        cum += s->prob[i];
        if (u < cum) {
            *token = s->idx[i];
            return OB_OK;
        }
    }
    *token = s->idx[s->count - 1];
    return OB_OK;
}
