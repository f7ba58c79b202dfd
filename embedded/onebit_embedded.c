/* The embedded runtime (onebit_embedded.h): a session laid out in the caller's
 * arena, the forward pass of one token, the sampler and generation. Each step
 * repeats the arithmetic of the full runtime's scalar path (src/infer:
 * forward.c, linear.c, kernels_scalar.c, attention.c, sampler.c,
 * generate.c) in the same order, so the two produce the same bits; the
 * comments name the function each part mirrors. Build it with
 * -ffp-contract=off. */
#include "onebit_embedded.h"
#include "onebit_math.h"

/* ---- the session --------------------------------------------------------------- */

struct obe_session {
    const obe_model *m;
    int32_t ctx, pos, hd, kvd, kmax;
    int32_t *tokens;         /* [ctx] */
    float *kcache, *vcache;  /* [layers][ctx][kvd] */
    float *x, *nrm, *q, *k, *v, *att, *tmp, *up, *gate, *hid; /* one token */
    float *scores;           /* [ctx] */
    float *logits;           /* [vocab] */
    int8_t *codes;           /* [kmax] */
    int32_t xsum;            /* Σ codes */
    double inv_scale;        /* 1/s of the last quantisation */
    /* sampler */
    obe_sampler_params sp;
    uint64_t rng[4];
    double *z, *prob;        /* [vocab] */
    int32_t *idx;            /* [vocab] */
    uint8_t *seen;           /* [vocab] */
    int32_t count;
};

const char *obe_status_name(int status) {
    switch (status) {
    case OBE_OK: return "ok";
    case OBE_ERR_ARG: return "bad argument";
    case OBE_ERR_MODEL: return "malformed model";
    case OBE_ERR_ARENA: return "arena too small";
    case OBE_ERR_CONTEXT: return "context full";
    case OBE_ERR_NUMERIC: return "non-finite logit";
    default: return "unknown status";
    }
}

static int32_t pad256(int32_t n) { return (n + 255) / 256 * 256; }

static int quantised(int32_t dtype) {
    return dtype == OBE_I8 || dtype == OBE_FOURBIT || dtype == OBE_TERNARY2 || dtype == OBE_BINARY1;
}

static int32_t row_bytes(int32_t dtype, int32_t cols) {
    switch (dtype) {
    case OBE_F32: return cols * 4;
    case OBE_F16: return cols * 2;
    case OBE_I8: return pad256(cols);
    case OBE_FOURBIT: return pad256(cols) / 2;
    case OBE_TERNARY2: return pad256(cols) / 4;
    case OBE_BINARY1: return pad256(cols) / 8;
    default: return -1;
    }
}

static int tensor_ok(const obe_tensor *t, int32_t rows, int32_t cols, int need_quantised) {
    if (t->rows != rows || t->cols != cols || !t->data || row_bytes(t->dtype, cols) != t->row_bytes)
        return 0;
    if (need_quantised && !quantised(t->dtype))
        return 0;
    int32_t ns = t->dtype == OBE_I8 || t->dtype == OBE_FOURBIT ? rows : (quantised(t->dtype) ? 1 : 0);
    if (t->num_scales != ns || (ns && !t->scales))
        return 0;
    return t->cols_padded == (quantised(t->dtype) ? pad256(cols) : cols);
}

static int model_ok(const obe_model *m) {
    if (!m || m->layout_version != OBE_MODEL_VERSION || m->vocab_size < 1 || m->hidden_size < 1 ||
        m->num_heads < 1 || m->num_kv_heads < 1 || m->num_layers < 1 || m->intermediate_size < 1 ||
        m->max_seq_len < 1 || m->hidden_size % m->num_heads || m->num_heads % m->num_kv_heads || !m->layers ||
        !m->final_norm || m->ffn < OBE_FFN_SILU || m->ffn > OBE_FFN_SWIGLU)
        return 0;
    int32_t H = m->hidden_size, F = m->intermediate_size, hd = H / m->num_heads, kvd = m->num_kv_heads * hd;
    if ((m->use_rope && (!m->rope_cos || !m->rope_sin || hd % 2)) || (!m->use_rope && !m->positions))
        return 0;
    if (!tensor_ok(&m->embed, m->vocab_size, H, 0) || !tensor_ok(&m->head, m->vocab_size, H, 0))
        return 0;
    if (m->head_act_bits < 0 || m->head_act_bits > 8 || (m->head_act_bits == 0) == quantised(m->head.dtype))
        return 0;
    int32_t rows[OBE_PROJ_COUNT] = {H, kvd, kvd, H, F, F, H}, cols[OBE_PROJ_COUNT] = {H, H, H, H, H, H, F};
    for (int32_t l = 0; l < m->num_layers; l++) {
        const obe_layer *ly = &m->layers[l];
        if (!ly->input_norm || !ly->post_norm || (m->use_qk_norm && (!ly->q_norm || !ly->k_norm)) ||
            ly->act_bits < 2 || ly->act_bits > 8)
            return 0;
        for (int p = 0; p < OBE_PROJ_COUNT; p++) {
            if (p == OBE_PROJ_GATE && m->ffn != OBE_FFN_SWIGLU)
                continue;
            if (!tensor_ok(&ly->proj[p], rows[p], cols[p], 1))
                return 0;
        }
    }
    if (m->vocab_count < 0 || m->vocab_count > m->vocab_size || (m->vocab_count && (!m->vocab_offsets || !m->vocab_bytes)))
        return 0;
    return 1;
}

/* Arena parts in order; with base 0 it only measures. */
typedef struct {
    uintptr_t at, end;
} bump;

static void *take(bump *b, size_t bytes) {
    b->at = (b->at + 15) & ~(uintptr_t)15;
    void *p = (void *)b->at;
    b->at += bytes;
    return p;
}

static void layout(obe_session *s, bump *b) {
    const obe_model *m = s->m;
    size_t ctx = (size_t)s->ctx, H = (size_t)m->hidden_size, F = (size_t)m->intermediate_size;
    size_t V = (size_t)m->vocab_size, kv = (size_t)m->num_layers * ctx * (size_t)s->kvd;
    s->tokens = take(b, ctx * sizeof(int32_t));
    s->kcache = take(b, kv * sizeof(float));
    s->vcache = take(b, kv * sizeof(float));
    s->x = take(b, H * sizeof(float));
    s->nrm = take(b, H * sizeof(float));
    s->q = take(b, H * sizeof(float));
    s->k = take(b, (size_t)s->kvd * sizeof(float));
    s->v = take(b, (size_t)s->kvd * sizeof(float));
    s->att = take(b, H * sizeof(float));
    s->tmp = take(b, H * sizeof(float));
    s->up = take(b, F * sizeof(float));
    s->gate = take(b, F * sizeof(float));
    s->hid = take(b, F * sizeof(float));
    s->scores = take(b, ctx * sizeof(float));
    s->logits = take(b, V * sizeof(float));
    s->codes = take(b, (size_t)s->kmax);
    s->z = take(b, V * sizeof(double));
    s->prob = take(b, V * sizeof(double));
    s->idx = take(b, V * sizeof(int32_t));
    s->seen = take(b, V);
}

static void session_dims(obe_session *s, const obe_model *m, int32_t context) {
    s->m = m;
    s->ctx = context;
    s->hd = m->hidden_size / m->num_heads;
    s->kvd = m->num_kv_heads * s->hd;
    int32_t a = pad256(m->hidden_size), b = pad256(m->intermediate_size);
    s->kmax = a > b ? a : b;
}

size_t obe_arena_bytes(const obe_model *m, int32_t context) {
    if (!model_ok(m) || context < 1 || context > m->max_seq_len)
        return 0;
    obe_session s;
    session_dims(&s, m, context);
    bump b = {16, 0}; /* measures from an aligned base; +15 covers any arena alignment */
    take(&b, sizeof(obe_session));
    layout(&s, &b);
    return (size_t)(b.at - 16) + 15;
}

void obe_sampler_params_default(obe_sampler_params *p) {
    p->temperature = 0.8;
    p->top_k = 40;
    p->top_p = 0.9;
    p->min_p = 0.0;
    p->repetition_penalty = 1.1;
    p->repetition_window = 64;
    p->seed = 42;
}

int obe_session_init(obe_session **out, const obe_model *m, int32_t context, void *arena, size_t arena_bytes) {
    *out = 0;
    size_t need = obe_arena_bytes(m, context);
    if (!need)
        return context < 1 || (m && model_ok(m) && context > m->max_seq_len) ? OBE_ERR_ARG : OBE_ERR_MODEL;
    if (!arena || arena_bytes < need)
        return OBE_ERR_ARENA;
    bump b = {(uintptr_t)arena, (uintptr_t)arena + arena_bytes};
    obe_session *s = take(&b, sizeof *s);
    session_dims(s, m, context);
    layout(s, &b);
    for (int32_t i = 0; i < m->vocab_size; i++)
        s->seen[i] = 0;
    s->pos = 0;
    obe_sampler_params p;
    obe_sampler_params_default(&p);
    obe_sampler_set(s, &p);
    *out = s;
    return OBE_OK;
}

void obe_session_reset(obe_session *s) { s->pos = 0; }
int32_t obe_session_position(const obe_session *s) { return s->pos; }

/* ---- numerics of one token (forward.c, linear.c, kernels_scalar.c) ---------------------- */

/* norm_rows: RMSNorm or bias-free LayerNorm of one row, sums in double. */
static void norm_row(float *y, const float *x, const float *g, int32_t d, float eps, int layernorm) {
    double m = 0;
    if (layernorm) {
        for (int32_t j = 0; j < d; j++)
            m += x[j];
        m /= d;
    }
    double ss = 0;
    for (int32_t j = 0; j < d; j++) {
        double c = x[j] - m;
        ss += c * c;
    }
    float r = (float)(1.0 / obe_sqrt(ss / d + (double)eps));
    float mr = (float)m;
    for (int32_t j = 0; j < d; j++)
        y[j] = (x[j] - mr) * r * g[j];
}

/* ob_quant_activation_codes + quantise_row: per-token absmax codes, padded with zeros. */
static void quantise(obe_session *s, const float *x, int32_t K, int32_t kp, int32_t bits) {
    float mx = 0;
    for (int32_t j = 0; j < K; j++) {
        float a = x[j] < 0 ? -x[j] : x[j];
        if (a > mx)
            mx = a;
    }
    float lo = (float)-(1 << (bits - 1)), hi = (float)((1 << (bits - 1)) - 1);
    float sc = hi / (mx > 1e-5f ? mx : 1e-5f);
    int32_t sum = 0;
    for (int32_t j = 0; j < K; j++) {
        float q = obe_rintf(x[j] * sc);
        s->codes[j] = (int8_t)(q > hi ? hi : (q < lo ? lo : (q == q ? q : 0))); /* NaN: 0, as quant.c */
        sum += s->codes[j];
    }
    for (int32_t j = K; j < kp; j++)
        s->codes[j] = 0;
    s->xsum = sum;
    s->inv_scale = 1.0 / (double)sc;
}

/* raw_dot + ob_q_correct: Σ code·x exactly, from the stored values u. The
 * 32-column blocks that hold only padding are skipped: their activations are
 * 0, so the sum is the same integer (the correction uses Σx over the real
 * columns), and small models (rows of 64 or 128 weights in 256-weight
 * blocks) do half the work or less. */
static int32_t int_dot(const obe_tensor *w, const uint8_t *row, const int8_t *x, int32_t xsum) {
    int32_t acc = 0, k = w->cols;
    switch (w->dtype) {
    case OBE_TERNARY2:
        for (int32_t g = 0; g < (k + 127) / 128; g++, row += 32, x += 128) {
            int32_t fields = k - 128 * g >= 128 ? 4 : (k - 128 * g + 31) / 32;
            if (fields == 4) {
                for (int b = 0; b < 32; b++) {
                    uint32_t v = row[b];
                    acc += (int32_t)(v & 3) * x[b] + (int32_t)((v >> 2) & 3) * x[32 + b] +
                           (int32_t)((v >> 4) & 3) * x[64 + b] + (int32_t)(v >> 6) * x[96 + b];
                }
            } else {
                for (int32_t f = 0; f < fields; f++)
                    for (int b = 0; b < 32; b++)
                        acc += (int32_t)((row[b] >> (2 * f)) & 3) * x[32 * f + b];
            }
        }
        return acc - xsum;
    case OBE_BINARY1:
        for (int32_t g = 0; g < (k + 255) / 256; g++, row += 32, x += 256) {
            int32_t bits = k - 256 * g >= 256 ? 8 : (k - 256 * g + 31) / 32;
            for (int32_t j = 0; j < bits; j++)
                for (int b = 0; b < 32; b++)
                    acc += (int32_t)((row[b] >> j) & 1) * x[32 * j + b];
        }
        return 2 * acc - xsum;
    case OBE_FOURBIT:
        for (int32_t g = 0; g < (k + 63) / 64; g++, row += 32, x += 64) {
            if (k - 64 * g > 32)
                for (int b = 0; b < 32; b++)
                    acc += (int32_t)(row[b] & 15) * x[b] + (int32_t)(row[b] >> 4) * x[32 + b];
            else
                for (int b = 0; b < 32; b++)
                    acc += (int32_t)(row[b] & 15) * x[b];
        }
        return acc - 8 * xsum;
    default: /* OBE_I8 */
        for (int32_t j = 0; j < k; j++)
            acc += (int32_t)(int8_t)row[j] * x[j];
        return acc;
    }
}

/* qgemm_scalar for one token: y = (Σ code·x) · scale / s, rounded once. */
static void qmatvec(obe_session *s, const obe_tensor *w, float *y) {
    for (int32_t r = 0; r < w->rows; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * (size_t)w->row_bytes;
        int32_t dot = int_dot(w, row, s->codes, s->xsum);
        float scale = w->scales[w->num_scales == 1 ? 0 : r];
        y[r] = (float)((double)dot * (double)scale * s->inv_scale);
    }
}

/* fgemm_scalar for one token: F32 or F16 rows against float activations. */
static void fmatvec(const obe_tensor *w, const float *x, float *y) {
    for (int32_t r = 0; r < w->rows; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * (size_t)w->row_bytes;
        float acc = 0;
        if (w->dtype == OBE_F32) {
            const float *wr = (const float *)(const void *)row;
            for (int32_t j = 0; j < w->cols; j++)
                acc += wr[j] * x[j];
        } else {
            const uint16_t *wr = (const uint16_t *)(const void *)row;
            for (int32_t j = 0; j < w->cols; j++)
                acc += obe_f16_to_f32(wr[j]) * x[j];
        }
        y[r] = acc;
    }
}

/* ob_infer_linear: quantise and multiply, or the float product. */
static void linear(obe_session *s, const obe_tensor *w, int32_t bits, const float *x, float *y) {
    if (quantised(w->dtype) && bits > 0) {
        quantise(s, x, w->cols, w->cols_padded, bits);
        qmatvec(s, w, y);
    } else {
        fmatvec(w, x, y);
    }
}

/* ob_packed_code / ob_packed_row_to_f32: row r of a table as floats. */
static void row_to_f32(const obe_tensor *t, int32_t r, float *out) {
    const uint8_t *row = (const uint8_t *)t->data + (size_t)r * (size_t)t->row_bytes;
    if (t->dtype == OBE_F32) {
        const float *f = (const float *)(const void *)row;
        for (int32_t j = 0; j < t->cols; j++)
            out[j] = f[j];
        return;
    }
    if (t->dtype == OBE_F16) {
        const uint16_t *h = (const uint16_t *)(const void *)row;
        for (int32_t j = 0; j < t->cols; j++)
            out[j] = obe_f16_to_f32(h[j]);
        return;
    }
    float scale = t->scales[t->num_scales == 1 ? 0 : r];
    for (int32_t j = 0; j < t->cols; j++) {
        int code;
        switch (t->dtype) {
        case OBE_I8: code = (int8_t)row[j]; break;
        case OBE_FOURBIT: {
            uint8_t v = row[(j / 64) * 32 + j % 32];
            code = ((j % 64) < 32 ? (v & 15) : (v >> 4)) - 8;
            break;
        }
        case OBE_TERNARY2: code = ((row[(j / 128) * 32 + j % 32] >> (2 * ((j % 128) / 32))) & 3) - 1; break;
        default: code = (row[(j / 256) * 32 + j % 32] >> ((j % 256) / 32)) & 1 ? 1 : -1; break;
        }
        out[j] = (float)code * scale;
    }
}

static void rope(const obe_session *s, float *x, int32_t heads) {
    int32_t half = s->hd / 2;
    const float *cs = s->m->rope_cos + (size_t)s->pos * half, *sn = s->m->rope_sin + (size_t)s->pos * half;
    for (int32_t h = 0; h < heads; h++) {
        float *v = x + (size_t)h * s->hd;
        for (int32_t j = 0; j < half; j++) {
            float a = v[2 * j], b = v[2 * j + 1];
            v[2 * j] = a * cs[j] - b * sn[j];
            v[2 * j + 1] = a * sn[j] + b * cs[j];
        }
    }
}

static float sigmoid(float z) { return 1.0f / (1.0f + obe_expf(-z)); }

/* attention.c one_head for the token at s->pos. */
static void attention(obe_session *s, int32_t layer) {
    const obe_model *m = s->m;
    int32_t nh = m->num_heads, nkv = m->num_kv_heads, hd = s->hd, kvd = s->kvd;
    for (int32_t h = 0; h < nh; h++) {
        int32_t kh = h / (nh / nkv);
        const float *q = s->q + (size_t)h * hd;
        const float *kc = s->kcache + (size_t)layer * s->ctx * kvd + (size_t)kh * hd;
        const float *vc = s->vcache + (size_t)layer * s->ctx * kvd + (size_t)kh * hd;
        float *p = s->scores;
        float maxv = -obe_from_bits32(0x7f800000u);
        for (int32_t u = 0; u <= s->pos; u++) {
            const float *ku = kc + (size_t)u * kvd;
            float dot = 0;
            for (int32_t i = 0; i < hd; i++)
                dot += q[i] * ku[i];
            float sc = dot * m->attn_scale;
            p[u] = sc;
            if (sc > maxv)
                maxv = sc;
        }
        double sum = 0;
        for (int32_t u = 0; u <= s->pos; u++) {
            p[u] = obe_expf(p[u] - maxv);
            sum += p[u];
        }
        float inv = (float)(1.0 / sum);
        float *o = s->att + (size_t)h * hd;
        for (int32_t i = 0; i < hd; i++)
            o[i] = 0;
        for (int32_t u = 0; u <= s->pos; u++) {
            float a = p[u] * inv;
            const float *vu = vc + (size_t)u * kvd;
            for (int32_t i = 0; i < hd; i++)
                o[i] += a * vu[i];
        }
    }
}

static void layer_forward(obe_session *s, int32_t l) {
    const obe_model *m = s->m;
    const obe_layer *ly = &m->layers[l];
    int32_t H = m->hidden_size, F = m->intermediate_size, kvd = s->kvd, bits = ly->act_bits;
    float r = m->residual_scale;
    norm_row(s->nrm, s->x, ly->input_norm, H, m->norm_eps, m->layernorm);
    quantise(s, s->nrm, H, ly->proj[OBE_PROJ_Q].cols_padded, bits);
    qmatvec(s, &ly->proj[OBE_PROJ_Q], s->q);
    qmatvec(s, &ly->proj[OBE_PROJ_K], s->k);
    qmatvec(s, &ly->proj[OBE_PROJ_V], s->v);
    if (m->use_qk_norm) {
        for (int32_t h = 0; h < m->num_heads; h++)
            norm_row(s->q + (size_t)h * s->hd, s->q + (size_t)h * s->hd, ly->q_norm, s->hd, m->norm_eps, 0);
        for (int32_t h = 0; h < m->num_kv_heads; h++)
            norm_row(s->k + (size_t)h * s->hd, s->k + (size_t)h * s->hd, ly->k_norm, s->hd, m->norm_eps, 0);
    }
    if (m->use_rope) {
        rope(s, s->q, m->num_heads);
        rope(s, s->k, m->num_kv_heads);
    }
    float *kc = s->kcache + ((size_t)l * s->ctx + s->pos) * kvd, *vc = s->vcache + ((size_t)l * s->ctx + s->pos) * kvd;
    for (int32_t i = 0; i < kvd; i++) {
        kc[i] = s->k[i];
        vc[i] = s->v[i];
    }
    attention(s, l);
    linear(s, &ly->proj[OBE_PROJ_O], bits, s->att, s->tmp);
    for (int32_t i = 0; i < H; i++)
        s->x[i] = s->x[i] + r * s->tmp[i];
    norm_row(s->nrm, s->x, ly->post_norm, H, m->norm_eps, m->layernorm);
    quantise(s, s->nrm, H, ly->proj[OBE_PROJ_UP].cols_padded, bits);
    qmatvec(s, &ly->proj[OBE_PROJ_UP], s->up);
    if (m->ffn == OBE_FFN_SWIGLU)
        qmatvec(s, &ly->proj[OBE_PROJ_GATE], s->gate);
    for (int32_t i = 0; i < F; i++) {
        float u = s->up[i];
        switch (m->ffn) {
        case OBE_FFN_SILU: s->hid[i] = u * sigmoid(u); break;
        case OBE_FFN_RELU2: {
            float v = u > 0 ? u : 0;
            s->hid[i] = v * v;
            break;
        }
        default: s->hid[i] = s->gate[i] * sigmoid(s->gate[i]) * u; break;
        }
    }
    linear(s, &ly->proj[OBE_PROJ_DOWN], bits, s->hid, s->tmp);
    for (int32_t i = 0; i < H; i++)
        s->x[i] = s->x[i] + r * s->tmp[i];
}

int obe_forward(obe_session *s, int32_t token, int want_logits, const float **logits) {
    const obe_model *m = s->m;
    if (token < 0 || token >= m->vocab_size)
        return OBE_ERR_ARG;
    if (s->pos >= s->ctx)
        return OBE_ERR_CONTEXT;
    int32_t H = m->hidden_size;
    s->tokens[s->pos] = token;
    row_to_f32(&m->embed, token, s->x);
    if (m->positions) {
        const float *p = m->positions + (size_t)s->pos * H;
        for (int32_t j = 0; j < H; j++)
            s->x[j] = s->x[j] + p[j];
    }
    for (int32_t l = 0; l < m->num_layers; l++)
        layer_forward(s, l);
    if (want_logits) {
        norm_row(s->nrm, s->x, m->final_norm, H, m->norm_eps, m->layernorm);
        linear(s, &m->head, m->head_act_bits, s->nrm, s->logits);
    }
    if (logits)
        *logits = want_logits ? s->logits : 0;
    s->pos++;
    return OBE_OK;
}

/* ---- the sampler (sampler.c) -------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** as ob_rng_u64. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static int finite(double x) { return x == x && x - x == 0; }

int obe_sampler_set(obe_session *s, const obe_sampler_params *p) {
    if (!finite(p->temperature) || p->top_k < 0 || !(p->top_p > 0) || !(p->min_p >= 0 && p->min_p <= 1) ||
        !(p->repetition_penalty > 0) || !finite(p->repetition_penalty) || p->repetition_window < 0)
        return OBE_ERR_ARG;
    s->sp = *p;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
    return OBE_OK;
}

/* a ranks before b: larger z, then lower id. */
static int before(const double *z, int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); }

static void swap_ids(int32_t *v, int32_t i, int32_t j) {
    int32_t t = v[i];
    v[i] = v[j];
    v[j] = t;
}

/* select_best, step for step: the arrangement of the unsorted rest matters,
 * since top-p later sums probabilities in that order. */
static void select_best(const double *z, int32_t *v, int32_t n, int32_t m) {
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t pivot = v[lo + (hi - lo) / 2];
        int32_t i = lo, j = hi;
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

/* Heapsort into rank order (the root of the heap is the worst of the rest,
 * moved to the end each step); the order is total (ids differ), so the result
 * equals the qsort of sampler.c. */
static void sift(const double *z, int32_t *v, int32_t root, int32_t n) {
    for (;;) {
        int32_t c = 2 * root + 1;
        if (c >= n)
            return;
        if (c + 1 < n && before(z, v[c], v[c + 1]))
            c++;
        if (!before(z, v[root], v[c]))
            return;
        swap_ids(v, root, c);
        root = c;
    }
}

static void sort_best(const double *z, int32_t *v, int32_t n, int32_t m) {
    if (m < n)
        select_best(z, v, n, m);
    for (int32_t i = m / 2 - 1; i >= 0; i--)
        sift(z, v, i, m);
    for (int32_t end = m - 1; end > 0; end--) {
        swap_ids(v, 0, end);
        sift(z, v, 0, end);
    }
}

static void penalise(obe_session *s, int32_t n) {
    double rho = s->sp.repetition_penalty;
    if (rho == 1.0)
        return;
    size_t nh = (size_t)s->pos;
    size_t w = s->sp.repetition_window ? (size_t)s->sp.repetition_window : nh;
    size_t start = nh > w ? nh - w : 0;
    for (size_t i = start; i < nh; i++) {
        int32_t t = s->tokens[i];
        if (t < 0 || t >= n || s->seen[t])
            continue;
        s->seen[t] = 1;
        s->z[t] = s->z[t] > 0 ? s->z[t] / rho : s->z[t] * rho;
    }
    for (size_t i = start; i < nh; i++)
        if (s->tokens[i] >= 0 && s->tokens[i] < n)
            s->seen[s->tokens[i]] = 0;
}

static void normalise(obe_session *s) {
    double sum = 0;
    for (int32_t i = 0; i < s->count; i++)
        sum += s->prob[i];
    for (int32_t i = 0; i < s->count; i++)
        s->prob[i] /= sum;
}

static int filter(obe_session *s, const float *logits, int32_t n) {
    if (n < 1 || n > s->m->vocab_size)
        return OBE_ERR_ARG;
    for (int32_t i = 0; i < n; i++) {
        if (!finite(logits[i]))
            return OBE_ERR_NUMERIC;
        s->z[i] = logits[i];
        s->idx[i] = i;
    }
    penalise(s, n);
    const obe_sampler_params *p = &s->sp;
    if (p->temperature <= 0) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (s->z[i] > s->z[best])
                best = i;
        s->idx[0] = best;
        s->prob[0] = 1;
        s->count = 1;
        return OBE_OK;
    }
    for (int32_t i = 0; i < n; i++)
        s->z[i] /= p->temperature;
    s->count = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    int need_order = p->top_p < 1 || p->min_p > 0;
    int32_t sorted = 0;
    if (s->count < n || need_order) {
        sorted = p->top_p < 1 && s->count == n ? (n < 256 ? n : 256) : s->count;
        sort_best(s->z, s->idx, n, sorted);
    }
    double maxz = s->z[s->idx[0]];
    if (!sorted)
        for (int32_t i = 1; i < s->count; i++) {
            double zi = s->z[s->idx[i]];
            maxz = zi > maxz ? zi : maxz; /* fmax: no NaN here */
        }
    for (int32_t i = 0; i < s->count; i++)
        s->prob[i] = obe_exp(s->z[s->idx[i]] - maxz);
    normalise(s);
    if (p->top_p < 1) {
        double cum = 0;
        int32_t keep = 0;
        for (;;) {
            while (keep < sorted && cum < p->top_p)
                cum += s->prob[keep++];
            if (cum >= p->top_p || sorted == s->count)
                break;
            int32_t more = sorted * 2 < s->count ? sorted * 2 : s->count;
            sort_best(s->z, s->idx + sorted, s->count - sorted, more - sorted);
            double sum = 0;
            for (int32_t i = 0; i < s->count; i++)
                sum += obe_exp(s->z[s->idx[i]] - maxz);
            for (int32_t i = sorted; i < more; i++)
                s->prob[i] = obe_exp(s->z[s->idx[i]] - maxz) / sum;
            sorted = more;
        }
        s->count = keep > 0 ? keep : 1;
        normalise(s);
    }
    if (p->min_p > 0) {
        double threshold = p->min_p * s->prob[0];
        int32_t keep = 0;
        while (keep < s->count && s->prob[keep] >= threshold)
            keep++;
        s->count = keep > 0 ? keep : 1;
        normalise(s);
    }
    return OBE_OK;
}

int obe_sample(obe_session *s, const float *logits, int32_t n, int32_t *token) {
    int st = filter(s, logits, n);
    if (st)
        return st;
    if (s->count == 1) {
        *token = s->idx[0];
        return OBE_OK;
    }
    double u = (double)(rng_next(s->rng) >> 11) * 0x1.0p-53, cum = 0;
    for (int32_t i = 0; i < s->count; i++) {
        cum += s->prob[i];
        if (u < cum) {
            *token = s->idx[i];
            return OBE_OK;
        }
    }
    *token = s->idx[s->count - 1];
    return OBE_OK;
}

/* ---- generation (generate.c without sliding) --------------------------------------------- */

int obe_generate(obe_session *s, const int32_t *prompt, int32_t n_prompt, const obe_generate_options *o,
                 obe_token_fn fn, void *user, int32_t *generated, int32_t *stop) {
    int32_t done = 0, why = OBE_STOP_MAX_TOKENS, V = s->m->vocab_size;
    int32_t limit = o->vocab_limit > 0 && o->vocab_limit < V ? o->vocab_limit : V;
    int st = OBE_OK;
    if (n_prompt < 1 || n_prompt > s->ctx - s->pos)
        st = n_prompt < 1 ? OBE_ERR_ARG : OBE_ERR_CONTEXT;
    const float *logits = 0;
    for (int32_t i = 0; i < n_prompt && st == OBE_OK; i++)
        st = obe_forward(s, prompt[i], i == n_prompt - 1, &logits);
    while (st == OBE_OK && done < o->max_tokens) {
        int32_t tok;
        st = obe_sample(s, logits, limit, &tok);
        if (st)
            break;
        if (tok == o->eos_id) {
            why = OBE_STOP_EOS;
            break;
        }
        done++;
        if (fn && !fn(tok, user)) {
            why = OBE_STOP_CALLBACK;
            break;
        }
        if (done == o->max_tokens)
            break;
        if (s->pos >= s->ctx) {
            why = OBE_STOP_CONTEXT;
            break;
        }
        st = obe_forward(s, tok, 1, &logits);
    }
    if (generated)
        *generated = done;
    if (stop)
        *stop = why;
    return st;
}

const uint8_t *obe_token_bytes(const obe_model *m, int32_t token, size_t *len) {
    *len = 0;
    if (token < 0 || token >= m->vocab_count)
        return 0;
    *len = m->vocab_offsets[token + 1] - m->vocab_offsets[token];
    return m->vocab_bytes + m->vocab_offsets[token];
}
