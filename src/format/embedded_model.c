/* The obe_model view of a packed model (embedded_model.h). Values that the
 * full runtime derives from the config with libm (the rotary tables, the
 * attention and residual factors) are computed here the same way and stored,
 * so the embedded runtime needs no libm and still gets the same bits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "format/embedded_model.h"

const char *ob_embedded_unsupported(const ob_config *cfg) {
    static _Thread_local char why[160];
    for (int l = 0; l < cfg->num_layers; l++)
        if (ob_config_layer_mode(cfg, l) == OB_MODE_F16) {
            snprintf(why, sizeof why, "decoder layer %d is f16: the embedded runtime has integer kernels only "
                                      "(ternary, binary, fourbit, eightbit layers)", l);
            return why;
        }
    if (cfg->activation_bits == 0)
        return "activation_bits is 0: the embedded runtime multiplies int8 activations only (2..8 bits)";
    return NULL;
}

static void view(obe_tensor *o, const ob_packed_tensor *t) {
    o->dtype = (int32_t)ob_1bit_dtype_code(t->dtype);
    o->rows = t->rows;
    o->cols = t->cols;
    o->cols_padded = t->cols_padded;
    o->row_bytes = (int32_t)t->row_bytes;
    o->num_scales = t->num_scales;
    o->data = t->data;
    o->scales = t->scales;
}

/* forward.c's act_bits: the config's for quantised modes, 8 for a compressed
 * full-precision table, none for float weights. */
static int32_t head_bits(const ob_config *c, const ob_packed_tensor *w) {
    if (!ob_packed_dtype_quantised(w->dtype))
        return 0;
    return ob_config_lm_head_mode(c) == OB_MODE_F16 ? 8 : c->activation_bits;
}

static ob_status add_vocab(ob_embedded_model *e, const ob_tokenizer *tok) {
    obe_model *m = &e->model;
    m->eos_id = -1;
    if (!tok)
        return OB_OK;
    int n = ob_tokenizer_vocab_size(tok);
    size_t total = 0, len;
    for (int i = 0; i < n; i++) {
        ob_tokenizer_token_bytes(tok, i, &len);
        total += len;
    }
    e->vocab_offsets = ob_malloc(((size_t)n + 1) * sizeof(uint32_t));
    e->vocab_bytes = ob_malloc(total + 1);
    if (!e->vocab_offsets || !e->vocab_bytes)
        return OB_ERR_NOMEM;
    if (total > UINT32_MAX)
        return ob_error(OB_ERR_UNSUPPORTED, "embedded model: the vocabulary has %zu bytes (at most 2^32-1)", total);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        const uint8_t *b = ob_tokenizer_token_bytes(tok, i, &len);
        e->vocab_offsets[i] = (uint32_t)at;
        if (len)
            memcpy(e->vocab_bytes + at, b, len);
        at += len;
    }
    e->vocab_offsets[n] = (uint32_t)at;
    m->vocab_count = n;
    m->eos_id = ob_tokenizer_eos_id(tok);
    m->vocab_offsets = e->vocab_offsets;
    m->vocab_bytes = e->vocab_bytes;
    return OB_OK;
}

ob_status ob_embedded_model_build(const ob_packed_model *pm, const ob_tokenizer *tok, ob_embedded_model *e) {
    memset(e, 0, sizeof *e);
    const ob_config *c = &pm->cfg;
    const char *why = ob_embedded_unsupported(c);
    if (why)
        return ob_error(OB_ERR_UNSUPPORTED, "embedded model: %s", why);
    obe_model *m = &e->model;
    int hd = ob_config_head_dim(c), half = hd / 2;
    m->layout_version = OBE_MODEL_VERSION;
    m->vocab_size = c->vocab_size;
    m->hidden_size = c->hidden_size;
    m->num_heads = c->num_heads;
    m->num_kv_heads = c->num_kv_heads;
    m->num_layers = c->num_layers;
    m->intermediate_size = c->intermediate_size;
    m->max_seq_len = c->max_seq_len;
    m->layernorm = !c->use_subln;
    m->use_qk_norm = c->use_qk_norm;
    m->use_rope = c->use_rope;
    m->ffn = (int32_t)ob_config_ffn(c);
    /* The same expressions as forward.c and attention.c. */
    m->norm_eps = (float)c->layer_norm_eps;
    m->residual_scale = c->use_residual_scaling ? (float)(1.0 / sqrt(2.0)) : 1.0f;
    m->attn_scale = (float)(1.0 / sqrt((double)hd));
    view(&m->embed, &pm->embed);
    view(&m->head, &pm->head);
    m->head_act_bits = head_bits(c, &pm->head);
    m->positions = pm->positions;
    m->final_norm = pm->final_norm;
    e->layers = ob_calloc((size_t)c->num_layers, sizeof *e->layers);
    ob_status st = e->layers ? OB_OK : OB_ERR_NOMEM;
    for (int l = 0; st == OB_OK && l < c->num_layers; l++) {
        const ob_packed_layer *pl = &pm->layers[l];
        obe_layer *ly = &e->layers[l];
        ly->input_norm = pl->input_norm;
        ly->post_norm = pl->post_norm;
        ly->q_norm = pl->q_norm;
        ly->k_norm = pl->k_norm;
        for (int k = 0; k < OB_PROJ_COUNT; k++)
            view(&ly->proj[k], &pl->proj[k]);
        ly->act_bits = c->activation_bits;
    }
    m->layers = e->layers;
    if (st == OB_OK && c->use_rope) {
        size_t n = (size_t)c->max_seq_len * (size_t)half;
        e->rope_cos = ob_malloc(n * sizeof(float) + 1);
        e->rope_sin = ob_malloc(n * sizeof(float) + 1);
        if (!e->rope_cos || !e->rope_sin)
            st = OB_ERR_NOMEM;
        /* ob_infer_create's table: φ = t·θ^(−2j/hd) in double. */
        for (int t = 0; st == OB_OK && t < c->max_seq_len; t++)
            for (int j = 0; j < half; j++) {
                double phi = (double)t * pow(c->rope_theta, -2.0 * j / hd);
                e->rope_cos[(size_t)t * half + j] = (float)cos(phi);
                e->rope_sin[(size_t)t * half + j] = (float)sin(phi);
            }
        m->rope_cos = e->rope_cos;
        m->rope_sin = e->rope_sin;
    }
    if (st == OB_OK)
        st = add_vocab(e, tok);
    if (st)
        ob_embedded_model_free(e);
    return st;
}

void ob_embedded_model_free(ob_embedded_model *e) {
    free(e->layers);
    free(e->rope_cos);
    free(e->rope_sin);
    free(e->vocab_offsets);
    free(e->vocab_bytes);
    memset(e, 0, sizeof *e);
}
