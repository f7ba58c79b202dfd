/* Parameter layout, initialisation and safetensors I/O of the model. The layout
 * is the single source of truth for names, shapes, offsets, modes and the
 * optimizer's decay/clamp rules; every backend walks this table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/model.h"
#include "onebit/safetensors.h"

static const char *const proj_names[OB_PROJ_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

typedef struct {
    ob_model *m;
    int capacity;
} builder;

static int add_param(builder *b, ob_param_kind kind, int layer, int rows, int cols, ob_quant_mode mode,
                     const char *name) {
    ob_model *m = b->m;
    if (m->num_params == b->capacity)
        return -1;
    ob_param *p = &m->params[m->num_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->kind = kind;
    p->layer = layer;
    p->rows = rows;
    p->cols = cols;
    p->numel = (size_t)rows * (size_t)(cols ? cols : 1);
    /* 16-float alignment keeps every tensor 64-byte aligned for SIMD kernels. */
    p->offset = (m->num_floats + 15) & ~(size_t)15;
    m->num_floats = p->offset + p->numel;
    p->mode = mode;
    p->decay = cols > 0;
    p->clamp = (kind == OB_PARAM_LINEAR || kind == OB_PARAM_HEAD) && mode != OB_MODE_F16;
    return m->num_params++;
}

ob_status ob_model_create(const ob_config *cfg, ob_model **out) {
    *out = NULL;
    ob_status st = ob_config_validate(cfg, "config");
    if (st)
        return st;
    ob_quant_mode emb_mode = ob_config_embedding_mode(cfg), head_mode = ob_config_lm_head_mode(cfg);
    if (cfg->tie_embeddings && emb_mode != head_mode)
        return ob_error(OB_ERR_CONFIG,
                        "config: layer_bit_map.lm_head = \"%s\" differs from embedding = \"%s\" but tie_embeddings is "
                        "true (a tied head shares the embedding matrix)",
                        ob_quant_mode_name(head_mode), ob_quant_mode_name(emb_mode));
    ob_model *m = ob_calloc(1, sizeof *m);
    if (!m)
        return OB_ERR_NOMEM;
    if ((st = ob_config_copy(&m->cfg, cfg))) {
        free(m);
        return st;
    }
    int L = cfg->num_layers, H = cfg->hidden_size, F = cfg->intermediate_size, V = cfg->vocab_size;
    int hd = ob_config_head_dim(cfg), kvd = cfg->num_kv_heads * hd;
    builder b = {m, 4 + L * 11};
    m->params = ob_calloc((size_t)b.capacity, sizeof *m->params);
    m->layers = ob_calloc((size_t)L, sizeof *m->layers);
    if (!m->params || !m->layers) {
        ob_model_free(m);
        return OB_ERR_NOMEM;
    }
    m->embed = add_param(&b, OB_PARAM_EMBED, -1, V, H, emb_mode, "model.embed_tokens.weight");
    m->positions = cfg->use_rope ? -1
                                 : add_param(&b, OB_PARAM_POSITIONS, -1, cfg->max_seq_len, H, OB_MODE_F16,
                                             "model.embed_positions.weight");
    int out_dims[OB_PROJ_COUNT] = {H, kvd, kvd, H, F, F, H};
    int in_dims[OB_PROJ_COUNT] = {H, H, H, H, H, H, F};
    for (int l = 0; l < L; l++) {
        ob_layer_params *lp = &m->layers[l];
        ob_quant_mode mode = ob_config_layer_mode(cfg, l);
        char name[96];
#define LAYER_PARAM(kind, rows, cols, pmode, suffix) \
    (snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, suffix), \
     add_param(&b, kind, l, rows, cols, pmode, name))
        lp->input_norm = LAYER_PARAM(OB_PARAM_NORM, H, 0, OB_MODE_F16, "input_layernorm");
        for (int p = OB_PROJ_Q; p <= OB_PROJ_O; p++)
            lp->proj[p] = LAYER_PARAM(OB_PARAM_LINEAR, out_dims[p], in_dims[p], mode, proj_names[p]);
        lp->q_norm = cfg->use_qk_norm ? LAYER_PARAM(OB_PARAM_QK_NORM, hd, 0, OB_MODE_F16, "self_attn.q_norm") : -1;
        lp->k_norm = cfg->use_qk_norm ? LAYER_PARAM(OB_PARAM_QK_NORM, hd, 0, OB_MODE_F16, "self_attn.k_norm") : -1;
        lp->post_norm = LAYER_PARAM(OB_PARAM_NORM, H, 0, OB_MODE_F16, "post_attention_layernorm");
        for (int p = OB_PROJ_GATE; p <= OB_PROJ_DOWN; p++)
            lp->proj[p] = p == OB_PROJ_GATE && !cfg->use_swiglu
                              ? -1
                              : LAYER_PARAM(OB_PARAM_LINEAR, out_dims[p], in_dims[p], mode, proj_names[p]);
#undef LAYER_PARAM
    }
    m->final_norm = add_param(&b, OB_PARAM_NORM, -1, H, 0, OB_MODE_F16, "model.norm.weight");
    m->head = cfg->tie_embeddings ? m->embed : add_param(&b, OB_PARAM_HEAD, -1, V, H, head_mode, "lm_head.weight");
    m->weights = ob_aligned_alloc(m->num_floats * sizeof(float));
    if (!m->weights) {
        ob_model_free(m);
        return OB_ERR_NOMEM;
    }
    memset(m->weights, 0, m->num_floats * sizeof(float));
    *out = m;
    return OB_OK;
}

void ob_model_free(ob_model *m) {
    if (!m)
        return;
    ob_config_free(&m->cfg);
    free(m->params);
    free(m->layers);
    ob_aligned_free(m->weights);
    free(m);
}

void ob_model_init(ob_model *m, uint64_t seed) {
    ob_rng rng;
    ob_rng_seed(&rng, seed);
    float out_std = 0.02f / sqrtf(2.0f * (float)m->cfg.num_layers);
    for (int i = 0; i < m->num_params; i++) {
        const ob_param *p = &m->params[i];
        float *w = m->weights + p->offset;
        if (p->cols == 0) {
            for (size_t k = 0; k < p->numel; k++)
                w[k] = 1.0f;
            continue;
        }
        bool is_output = strstr(p->name, "o_proj") || strstr(p->name, "down_proj");
        ob_rng_fill_normal(&rng, w, p->numel, 0.0f, is_output ? out_std : 0.02f);
    }
}

int ob_model_find(const ob_model *m, const char *name) {
    for (int i = 0; i < m->num_params; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return i;
    return -1;
}

ob_status ob_model_save(const ob_model *m, const float *buffer, const char *path, const char *const *metadata) {
    ob_st_writer *w;
    ob_status st = ob_st_writer_create(&w);
    if (st)
        return st;
    for (int i = 0; i < m->num_params && st == OB_OK; i++) {
        const ob_param *p = &m->params[i];
        int64_t shape[2] = {p->rows, p->cols};
        st = ob_st_writer_add(w, p->name, OB_DTYPE_F32, p->cols ? 2 : 1, shape, buffer + p->offset);
    }
    for (int k = 0; metadata && metadata[k] && st == OB_OK; k += 2)
        st = ob_st_writer_set_metadata(w, metadata[k], metadata[k + 1]);
    if (st == OB_OK)
        st = ob_st_writer_write(w, path);
    ob_st_writer_free(w);
    return st;
}

ob_status ob_model_load(const ob_model *m, float *buffer, const char *path) {
    ob_st_file *f;
    ob_status st = ob_st_open(path, &f);
    if (st)
        return st;
    for (int i = 0; i < m->num_params && st == OB_OK; i++) {
        const ob_param *p = &m->params[i];
        const ob_tensor_view *v = ob_st_find(f, p->name);
        if (!v) {
            st = ob_error(OB_ERR_FORMAT, "%s: tensor '%s' is missing (the config and the weights disagree)", path,
                          p->name);
            break;
        }
        int ndim = p->cols ? 2 : 1;
        if (v->ndim != ndim || v->shape[0] != p->rows || (ndim == 2 && v->shape[1] != p->cols)) {
            st = ob_error(OB_ERR_FORMAT, "%s: tensor '%s' has shape [%lld%s%lld] but the config needs [%d%s%d]", path,
                          p->name, (long long)v->shape[0], v->ndim > 1 ? ", " : "",
                          v->ndim > 1 ? (long long)v->shape[1] : 0LL, p->rows, ndim == 2 ? ", " : "",
                          ndim == 2 ? p->cols : 0);
            break;
        }
        st = ob_tensor_to_f32(v, buffer + p->offset);
        if (st)
            ob_error_context(st, "%s: tensor '%s'", path, p->name);
    }
    if (st == OB_OK && ob_st_count(f) != (size_t)m->num_params) {
        for (size_t k = 0; k < ob_st_count(f); k++) {
            const ob_tensor_view *v = ob_st_get(f, k);
            if (ob_model_find(m, v->name) < 0) {
                st = ob_error(OB_ERR_FORMAT, "%s: unexpected tensor '%s' (not part of the model this config describes)",
                              path, v->name);
                break;
            }
        }
    }
    ob_st_close(f);
    return st;
}

size_t ob_model_quantised_count(const ob_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->num_params; i++)
        if (m->params[i].mode == OB_MODE_TERNARY || m->params[i].mode == OB_MODE_BINARY)
            n += m->params[i].numel;
    return n;
}
