/* Causal grouped-query attention over the KV cache: query head h of a token at
 * position p reads key/value head h·nkv/nh at positions 0..p. The arithmetic
 * follows the training kernel (scores in float, scaled by 1/√hd, softmax with
 * the maximum subtracted and the sum taken in double), so the two agree to
 * rounding. Work is split over (token, head) pairs; each thread has its own
 * row of probabilities. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "infer/session.h"
#include "onebit_math.h"

static void one_head(ob_infer *s, int layer, int t, int h, float *out, float *p) {
    const ob_config *c = &s->pm->cfg;
    int nh = c->num_heads, nkv = c->num_kv_heads, hd = s->hd, kvd = s->kvd, H = c->hidden_size;
    int kh = h / (nh / nkv);
    int pos = s->pos + t;
    const float *q = s->q + (size_t)t * H + (size_t)h * hd;
    const float *kc = s->kcache + ((size_t)layer * s->ctx) * kvd + (size_t)kh * hd;
    const float *vc = s->vcache + ((size_t)layer * s->ctx) * kvd + (size_t)kh * hd;
    float scale = (float)(1.0 / sqrt((double)hd));
    float maxv = -INFINITY;
    for (int u = 0; u <= pos; u++) {
        float sc = s->kern->dot(q, kc + (size_t)u * kvd, hd) * scale;
        p[u] = sc;
        if (sc > maxv)
            maxv = sc;
    }
    double sum = 0;
    for (int u = 0; u <= pos; u++) {
        p[u] = obe_expf(p[u] - maxv); /* not libm: the embedded runtime computes the same bits */
        sum += p[u];
    }
    float inv = (float)(1.0 / sum);
    float *o = out + (size_t)t * H + (size_t)h * hd;
    memset(o, 0, (size_t)hd * sizeof(float));
    for (int u = 0; u <= pos; u++)
        s->kern->axpy(o, p[u] * inv, vc + (size_t)u * kvd, hd);
}

void ob_infer_attention(ob_infer *s, int layer, int n, float *out) {
    int nh = s->pm->cfg.num_heads;
    int pairs = n * nh;
    if (s->threads <= 1 || pairs < 2) {
        for (int i = 0; i < pairs; i++)
            one_head(s, layer, i / nh, i % nh, out, s->scores);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(s->threads)
    for (int i = 0; i < pairs; i++)
        one_head(s, layer, i / nh, i % nh, out, s->scores + (size_t)omp_get_thread_num() * s->ctx);
}
