/* Packed models: built once from latent weights (every quantised matrix goes
 * through the training quantiser, ob_pack_weight), or with random codes for
 * benchmarks. All tensors live in one 64-byte aligned block laid out in two
 * passes (sizes first, then data). A model read from a .1bit file fills the
 * same struct with views into the mapped file and a release callback instead;
 * ob_packed_model_validate checks such a model before use. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/infer.h"

/* Bump allocation over the model's block; with base == NULL it only counts. */
typedef struct {
    uint8_t *base;
    size_t used;
} block_plan;

static void *plan_take(block_plan *p, size_t bytes) {
    size_t at = (p->used + OB_PACK_ALIGN - 1) & ~(size_t)(OB_PACK_ALIGN - 1);
    p->used = at + bytes;
    return p->base ? p->base + at : NULL;
}

static const char *const precision_names[] = {"auto", "f32", "f16", "int8", "int4"};

const char *ob_table_precision_name(ob_table_precision p) {
    return (unsigned)p < sizeof precision_names / sizeof *precision_names ? precision_names[p] : "?";
}

bool ob_table_precision_parse(const char *name, ob_table_precision *out) {
    for (size_t i = 0; i < sizeof precision_names / sizeof *precision_names; i++)
        if (strcmp(name, precision_names[i]) == 0) {
            *out = (ob_table_precision)i;
            return true;
        }
    return false;
}

static ob_dtype table_dtype(ob_quant_mode mode, ob_table_precision p) {
    if (mode != OB_MODE_F16)
        return ob_packed_dtype_for_mode(mode);
    switch (p) {
    case OB_TABLE_F16: return OB_DTYPE_F16;
    case OB_TABLE_I8: return OB_DTYPE_I8;
    case OB_TABLE_I4: return OB_DTYPE_FOURBIT;
    default: return OB_DTYPE_F32;
    }
}

/* Reserves a tensor's data and scales in the plan and fills its view. */
static void plan_tensor(block_plan *p, ob_packed_tensor *t, ob_dtype dtype, int rows, int cols) {
    size_t rb = ob_packed_row_bytes(dtype, cols);
    void *data = plan_take(p, rb * (size_t)rows);
    int ns = ob_packed_num_scales(dtype, rows);
    float *scales = ns ? plan_take(p, (size_t)ns * sizeof(float)) : NULL;
    ob_packed_tensor_init(t, dtype, rows, cols, data, scales);
}

static float *plan_floats(block_plan *p, size_t n) { return plan_take(p, n * sizeof(float)); }

/* Lays out every tensor of `cfg` (twice: sizing, then over the block). */
static void plan_model(block_plan *p, ob_packed_model *pm, const ob_pack_options *o) {
    const ob_config *c = &pm->cfg;
    int V = c->vocab_size, H = c->hidden_size, F = c->intermediate_size, hd = ob_config_head_dim(c);
    int kvd = c->num_kv_heads * hd;
    ob_quant_mode emode = ob_config_embedding_mode(c), hmode = ob_config_lm_head_mode(c);
    pm->head_shares_embed = c->tie_embeddings;
    plan_tensor(p, &pm->embed, table_dtype(emode, c->tie_embeddings ? o->head : o->embed), V, H);
    pm->positions = c->use_rope ? NULL : plan_floats(p, (size_t)c->max_seq_len * H);
    for (int l = 0; l < c->num_layers; l++) {
        ob_packed_layer *ly = &pm->layers[l];
        ly->input_norm = plan_floats(p, (size_t)H);
        ly->post_norm = plan_floats(p, (size_t)H);
        ly->q_norm = c->use_qk_norm ? plan_floats(p, (size_t)hd) : NULL;
        ly->k_norm = c->use_qk_norm ? plan_floats(p, (size_t)hd) : NULL;
        ob_dtype dt = ob_packed_dtype_for_mode(ob_config_layer_mode(c, l));
        int rows[OB_PROJ_COUNT] = {H, kvd, kvd, H, c->use_swiglu ? F : 0, F, H};
        int cols[OB_PROJ_COUNT] = {H, H, H, H, H, H, F};
        for (int k = 0; k < OB_PROJ_COUNT; k++) {
            if (rows[k])
                plan_tensor(p, &ly->proj[k], dt, rows[k], cols[k]);
            else
                ob_packed_tensor_init(&ly->proj[k], dt, 0, cols[k], NULL, NULL);
        }
    }
    pm->final_norm = plan_floats(p, (size_t)H);
    if (pm->head_shares_embed)
        pm->head = pm->embed;
    else
        plan_tensor(p, &pm->head, table_dtype(hmode, o->head), V, H);
}

static ob_status model_alloc(const ob_config *cfg, const ob_pack_options *opts, ob_packed_model **out) {
    *out = NULL;
    ob_pack_options none = {OB_TABLE_AUTO, OB_TABLE_AUTO};
    if (!opts)
        opts = &none;
    ob_packed_model *pm = ob_calloc(1, sizeof *pm);
    if (!pm)
        return OB_ERR_NOMEM;
    ob_status st = ob_config_copy(&pm->cfg, cfg);
    if (st) {
        free(pm);
        return st;
    }
    pm->layers = ob_calloc((size_t)cfg->num_layers, sizeof *pm->layers);
    if (!pm->layers) {
        ob_packed_model_free(pm);
        return OB_ERR_NOMEM;
    }
    block_plan sizing = {NULL, 0};
    plan_model(&sizing, pm, opts);
    pm->storage = ob_aligned_alloc(sizing.used ? sizing.used : 1);
    if (!pm->storage) {
        ob_packed_model_free(pm);
        return ob_error(OB_ERR_NOMEM, "packed model: cannot allocate %.1f MB", (double)sizing.used / 1e6);
    }
    block_plan fill = {pm->storage, 0};
    plan_model(&fill, pm, opts);
    pm->weight_bytes = fill.used;
    *out = pm;
    return OB_OK;
}

void ob_packed_model_free(ob_packed_model *pm) {
    if (!pm)
        return;
    ob_aligned_free(pm->storage);
    if (pm->release)
        pm->release(pm->release_ctx);
    free(pm->layers);
    ob_config_free(&pm->cfg);
    free(pm);
}

/* ---- from latent weights ------------------------------------------------------ */

/* A full-precision table in its chosen dtype. */
static ob_status fill_table(ob_packed_tensor *t, const float *w) {
    void *data = (void *)t->data;
    switch (t->dtype) {
    case OB_DTYPE_F32: memcpy(data, w, (size_t)t->rows * t->cols * sizeof(float)); return OB_OK;
    case OB_DTYPE_F16: return ob_pack_weight(OB_MODE_F16, false, 0, w, t->rows, t->cols, data, NULL);
    default: return ob_pack_rows_absmax(t->dtype, w, t->rows, t->cols, data, (float *)t->scales);
    }
}

static ob_status fill_matrix(const ob_config *c, ob_quant_mode mode, ob_packed_tensor *t, const float *w) {
    if (mode == OB_MODE_F16)
        return fill_table(t, w);
    return ob_pack_weight(mode, c->use_dynamic_threshold, (float)c->latent_clamp_max, w, t->rows, t->cols,
                          (void *)t->data, (float *)t->scales);
}

static void copy_floats(const float *dst, const float *src, size_t n) { memcpy((void *)dst, src, n * sizeof(float)); }

ob_status ob_packed_model_build(const ob_model *m, const float *weights, const ob_pack_options *opts,
                                ob_packed_model **out) {
    ob_packed_model *pm;
    ob_status st = model_alloc(&m->cfg, opts, &pm);
    if (st)
        return st;
    const ob_config *c = &pm->cfg;
    int H = c->hidden_size, hd = ob_config_head_dim(c);
    const ob_param *P = m->params;
    st = fill_matrix(c, ob_config_embedding_mode(c), &pm->embed, weights + P[m->embed].offset);
    if (pm->positions)
        copy_floats(pm->positions, weights + P[m->positions].offset, (size_t)c->max_seq_len * H);
    for (int l = 0; l < c->num_layers && st == OB_OK; l++) {
        const ob_layer_params *lp = &m->layers[l];
        ob_packed_layer *ly = &pm->layers[l];
        copy_floats(ly->input_norm, weights + P[lp->input_norm].offset, (size_t)H);
        copy_floats(ly->post_norm, weights + P[lp->post_norm].offset, (size_t)H);
        if (ly->q_norm) {
            copy_floats(ly->q_norm, weights + P[lp->q_norm].offset, (size_t)hd);
            copy_floats(ly->k_norm, weights + P[lp->k_norm].offset, (size_t)hd);
        }
        for (int k = 0; k < OB_PROJ_COUNT && st == OB_OK; k++)
            if (lp->proj[k] >= 0)
                st = fill_matrix(c, ob_config_layer_mode(c, l), &ly->proj[k], weights + P[lp->proj[k]].offset);
    }
    copy_floats(pm->final_norm, weights + P[m->final_norm].offset, (size_t)H);
    if (st == OB_OK && !pm->head_shares_embed)
        st = fill_matrix(c, ob_config_lm_head_mode(c), &pm->head, weights + P[m->head].offset);
    if (st == OB_OK)
        st = ob_packed_model_validate(pm, "packed model");
    if (st) {
        ob_packed_model_free(pm);
        return st;
    }
    *out = pm;
    return OB_OK;
}

/* ---- random codes ------------------------------------------------------------------ */

/* The 81 bytes whose four 2-bit fields are all valid ternary values (0, 1, 2). */
static void ternary_bytes(uint8_t table[81]) {
    for (int i = 0; i < 81; i++) {
        int v = i;
        unsigned b = 0;
        for (int k = 0; k < 4; k++, v /= 3)
            b |= (unsigned)(v % 3) << (2 * k);
        table[i] = (uint8_t)b;
    }
}

static void random_matrix(ob_packed_tensor *t, uint64_t seed) {
    uint8_t tern[81];
    ternary_bytes(tern);
    uint8_t *data = (uint8_t *)t->data;
    float *scales = (float *)t->scales;
    if (t->dtype == OB_DTYPE_F32 || t->dtype == OB_DTYPE_F16) {
#pragma omp parallel for schedule(static)
        for (int r = 0; r < t->rows; r++) {
            ob_rng rng;
            ob_rng_seed_stream(&rng, seed, (uint64_t)r);
            for (int j = 0; j < t->cols; j++) {
                float v = (float)(0.02 * ob_rng_normal(&rng));
                if (t->dtype == OB_DTYPE_F32)
                    ((float *)(data + (size_t)r * t->row_bytes))[j] = v;
                else
                    ((uint16_t *)(data + (size_t)r * t->row_bytes))[j] = ob_f32_to_f16(v);
            }
        }
        return;
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < t->rows; r++) {
        ob_rng rng;
        ob_rng_seed_stream(&rng, seed, (uint64_t)r);
        uint8_t *row = data + (size_t)r * t->row_bytes;
        for (size_t i = 0; i < t->row_bytes; i += 8) {
            uint64_t bits = ob_rng_u64(&rng);
            for (size_t b = 0; b < 8 && i + b < t->row_bytes; b++, bits >>= 8) {
                uint8_t v = (uint8_t)bits;
                switch (t->dtype) {
                case OB_DTYPE_TERNARY2: v = tern[v % 81]; break;
                case OB_DTYPE_FOURBIT: v = (uint8_t)(1 + (v & 15) % 15) | (uint8_t)((1 + (v >> 4) % 15) << 4); break;
                case OB_DTYPE_I8: v = v == 0x80 ? 0 : v; break;
                default: break;
                }
                row[i + b] = v;
            }
        }
        /* Padding must hold the code 0 (ternary, fourbit, int8) for exact sums. */
        for (int j = t->cols; j < t->cols_padded; j++) {
            size_t g, bit;
            switch (t->dtype) {
            case OB_DTYPE_TERNARY2:
                g = (size_t)(j / 128) * 32 + j % 32, bit = 2 * (size_t)((j % 128) / 32);
                row[g] = (uint8_t)((row[g] & ~(3u << bit)) | 1u << bit);
                break;
            case OB_DTYPE_FOURBIT:
                g = (size_t)(j / 64) * 32 + j % 32, bit = (j % 64) < 32 ? 0 : 4;
                row[g] = (uint8_t)((row[g] & ~(15u << bit)) | 8u << bit);
                break;
            case OB_DTYPE_I8: row[j] = 0; break;
            case OB_DTYPE_BINARY1:
                g = (size_t)(j / 256) * 32 + j % 32, bit = (size_t)((j % 256) / 32);
                row[g] = (uint8_t)(row[g] & ~(1u << bit));
                break;
            default: break;
            }
        }
        if (t->num_scales == t->rows)
            scales[r] = 0.02f / (t->dtype == OB_DTYPE_I8 ? 127.0f : 7.0f);
    }
    if (t->num_scales == 1)
        scales[0] = 1.0f / sqrtf((float)t->cols);
}

ob_status ob_packed_model_random(const ob_config *cfg, uint64_t seed, const ob_pack_options *opts,
                                 ob_packed_model **out) {
    ob_packed_model *pm;
    ob_status st = model_alloc(cfg, opts, &pm);
    if (st)
        return st;
    const ob_config *c = &pm->cfg;
    int H = c->hidden_size, hd = ob_config_head_dim(c);
    uint64_t stream = seed;
    random_matrix(&pm->embed, stream++ * 0x9E3779B97F4A7C15ull);
    if (pm->positions) {
        ob_rng rng;
        ob_rng_seed(&rng, seed ^ 0x5A5A5A5Aull);
        ob_rng_fill_normal(&rng, (float *)pm->positions, (size_t)c->max_seq_len * H, 0, 0.02f);
    }
    for (int l = 0; l < c->num_layers; l++) {
        ob_packed_layer *ly = &pm->layers[l];
        const float *gains[4] = {ly->input_norm, ly->post_norm, ly->q_norm, ly->k_norm};
        int sizes[4] = {H, H, hd, hd};
        for (int g = 0; g < 4; g++)
            for (int j = 0; gains[g] && j < sizes[g]; j++)
                ((float *)gains[g])[j] = 1.0f;
        for (int k = 0; k < OB_PROJ_COUNT; k++)
            if (ly->proj[k].rows)
                random_matrix(&ly->proj[k], stream++ * 0x9E3779B97F4A7C15ull);
    }
    for (int j = 0; j < H; j++)
        ((float *)pm->final_norm)[j] = 1.0f;
    if (!pm->head_shares_embed)
        random_matrix(&pm->head, stream++ * 0x9E3779B97F4A7C15ull);
    *out = pm;
    return OB_OK;
}

/* ---- validation and accounting ------------------------------------------------------ */

static ob_status check_tensor(const ob_packed_tensor *t, const char *source, const char *what, int layer,
                              ob_dtype want, bool table, int rows, int cols) {
    char name[96];
    if (layer >= 0)
        snprintf(name, sizeof name, "layer %d %s", layer, what);
    else
        snprintf(name, sizeof name, "%s", what);
    bool dtype_ok = t->dtype == want;
    if (table && want == OB_DTYPE_F32)
        dtype_ok = t->dtype == OB_DTYPE_F32 || t->dtype == OB_DTYPE_F16 || t->dtype == OB_DTYPE_I8 ||
                   t->dtype == OB_DTYPE_FOURBIT;
    if (!dtype_ok)
        return ob_error(OB_ERR_FORMAT, "%s: %s has dtype %s, its mode needs %s", source, name, ob_dtype_name(t->dtype),
                        ob_dtype_name(want));
    if (t->rows != rows || t->cols != cols)
        return ob_error(OB_ERR_FORMAT, "%s: %s has shape [%d, %d], the config gives [%d, %d]", source, name, t->rows,
                        t->cols, rows, cols);
    if (t->cols_padded != ob_packed_cols_padded(t->dtype, cols) || t->row_bytes != ob_packed_row_bytes(t->dtype, cols))
        return ob_error(OB_ERR_FORMAT, "%s: %s has %zu bytes per row, %s [%d] needs %zu", source, name, t->row_bytes,
                        ob_dtype_name(t->dtype), cols, ob_packed_row_bytes(t->dtype, cols));
    if (!t->data || ((uintptr_t)t->data & 3))
        return ob_error(OB_ERR_FORMAT, "%s: %s has no data or data not aligned to 4 bytes", source, name);
    int ns = ob_packed_num_scales(t->dtype, rows);
    if (t->num_scales != ns || (ns && !t->scales))
        return ob_error(OB_ERR_FORMAT, "%s: %s has %d scales, %s needs %d", source, name, t->num_scales,
                        ob_dtype_name(t->dtype), ns);
    for (int i = 0; i < ns; i++)
        if (!isfinite(t->scales[i]) || t->scales[i] < 0)
            return ob_error(OB_ERR_FORMAT, "%s: %s scale %d is %g", source, name, i, (double)t->scales[i]);
    return OB_OK;
}

ob_status ob_packed_model_validate(const ob_packed_model *pm, const char *source) {
    const ob_config *c = &pm->cfg;
    ob_status st = ob_config_validate(c, source);
    if (st)
        return st;
    int V = c->vocab_size, H = c->hidden_size, F = c->intermediate_size, hd = ob_config_head_dim(c);
    int kvd = c->num_kv_heads * hd;
    ob_quant_mode emode = ob_config_embedding_mode(c), hmode = ob_config_lm_head_mode(c);
    if ((st = check_tensor(&pm->embed, source, "embedding", -1, table_dtype(emode, OB_TABLE_AUTO), true, V, H)))
        return st;
    if ((st = check_tensor(&pm->head, source, "output head", -1, table_dtype(hmode, OB_TABLE_AUTO), true, V, H)))
        return st;
    if (pm->head_shares_embed && (pm->head.data != pm->embed.data || !c->tie_embeddings))
        return ob_error(OB_ERR_FORMAT, "%s: the head shares the embedding table only with tie_embeddings", source);
    if (!c->use_rope && !pm->positions)
        return ob_error(OB_ERR_FORMAT, "%s: learned positions are missing (use_rope is false)", source);
    if (!pm->final_norm)
        return ob_error(OB_ERR_FORMAT, "%s: the final norm is missing", source);
    static const char *const names[OB_PROJ_COUNT] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                     "gate_proj", "up_proj", "down_proj"};
    for (int l = 0; l < c->num_layers; l++) {
        const ob_packed_layer *ly = &pm->layers[l];
        if (!ly->input_norm || !ly->post_norm || (c->use_qk_norm && (!ly->q_norm || !ly->k_norm)))
            return ob_error(OB_ERR_FORMAT, "%s: layer %d lacks a norm gain", source, l);
        ob_dtype dt = ob_packed_dtype_for_mode(ob_config_layer_mode(c, l));
        int rows[OB_PROJ_COUNT] = {H, kvd, kvd, H, F, F, H};
        int cols[OB_PROJ_COUNT] = {H, H, H, H, H, H, F};
        for (int k = 0; k < OB_PROJ_COUNT; k++) {
            if (k == OB_PROJ_GATE && !c->use_swiglu)
                continue;
            if ((st = check_tensor(&ly->proj[k], source, names[k], l, dt, false, rows[k], cols[k])))
                return st;
        }
    }
    return OB_OK;
}

static size_t tensor_bytes(const ob_packed_tensor *t) {
    return t->row_bytes * (size_t)t->rows + (size_t)t->num_scales * sizeof(float);
}

size_t ob_packed_model_bytes_per_token(const ob_packed_model *pm) {
    const ob_config *c = &pm->cfg;
    size_t H = (size_t)c->hidden_size, hd = (size_t)ob_config_head_dim(c);
    size_t total = pm->embed.row_bytes + tensor_bytes(&pm->head) + H * sizeof(float);
    if (pm->positions)
        total += H * sizeof(float);
    for (int l = 0; l < c->num_layers; l++) {
        const ob_packed_layer *ly = &pm->layers[l];
        total += 2 * H * sizeof(float) + (ly->q_norm ? 2 * hd * sizeof(float) : 0);
        for (int k = 0; k < OB_PROJ_COUNT; k++)
            total += tensor_bytes(&ly->proj[k]);
    }
    return total;
}
