/* Packed models in .1bit files: the list of tensors a config implies, under
 * their Hugging Face names (docs/MODEL.md), is written from an
 * ob_packed_model and read back into one whose tensors are views into the
 * mapped file (no copy; the model closes the file when freed). This is also
 * the runtime's .1bit source (infer/source_1bit.h). */
#include <stdlib.h>
#include <string.h>

#include "format/onebit_layout.h"
#include "infer/source_1bit.h"

/* One tensor of a packed model: a matrix (table or projection) or floats
 * (norm gains [n], learned positions [max_seq_len, H]). */
typedef struct model_entry {
    char name[96];
    ob_packed_tensor *matrix; /* NULL for floats */
    bool table;               /* embedding or head: any table dtype when its mode is f16 */
    ob_dtype want;            /* the dtype the mode needs */
    const float **floats;
    int ndims;
    int64_t shape[2];
} model_entry;

static const char *const proj_names[OB_PROJ_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

typedef struct {
    model_entry *e; /* NULL: count only */
    int n;
} entry_list;

static model_entry *add(entry_list *l, const char *name) {
    model_entry *e = l->e ? &l->e[l->n] : NULL;
    l->n++;
    if (e) {
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s", name);
    }
    return e;
}

static void add_floats(entry_list *l, const char *name, const float **slot, int64_t rows, int64_t cols) {
    model_entry *e = add(l, name);
    if (!e)
        return;
    e->floats = slot;
    e->ndims = cols ? 2 : 1;
    e->shape[0] = rows;
    e->shape[1] = cols;
}

static void add_matrix(entry_list *l, const char *name, ob_packed_tensor *t, ob_quant_mode mode, bool table,
                       int rows, int cols) {
    model_entry *e = add(l, name);
    if (!e)
        return;
    e->matrix = t;
    e->table = table && mode == OB_MODE_F16;
    e->want = mode == OB_MODE_F16 && table ? OB_DTYPE_F32 : ob_packed_dtype_for_mode(mode);
    e->ndims = 2;
    e->shape[0] = rows;
    e->shape[1] = cols;
}

/* The tensors of pm's config in file order; returns their count. */
static int model_entries(ob_packed_model *pm, model_entry *out) {
    const ob_config *c = &pm->cfg;
    entry_list l = {out, 0};
    int V = c->vocab_size, H = c->hidden_size, F = c->intermediate_size, hd = ob_config_head_dim(c);
    int kvd = c->num_kv_heads * hd;
    add_matrix(&l, "model.embed_tokens.weight", &pm->embed, ob_config_embedding_mode(c), true, V, H);
    if (!c->use_rope)
        add_floats(&l, "model.embed_positions.weight", &pm->positions, c->max_seq_len, H);
    int rows[OB_PROJ_COUNT] = {H, kvd, kvd, H, F, F, H}, cols[OB_PROJ_COUNT] = {H, H, H, H, H, H, F};
    char name[96];
    for (int i = 0; i < c->num_layers; i++) {
        ob_packed_layer *ly = &pm->layers[i];
        ob_quant_mode mode = ob_config_layer_mode(c, i);
#define NAME(suffix) (snprintf(name, sizeof name, "model.layers.%d.%s.weight", i, suffix), name)
        add_floats(&l, NAME("input_layernorm"), &ly->input_norm, H, 0);
        for (int p = OB_PROJ_Q; p <= OB_PROJ_O; p++)
            add_matrix(&l, NAME(proj_names[p]), &ly->proj[p], mode, false, rows[p], cols[p]);
        if (c->use_qk_norm) {
            add_floats(&l, NAME("self_attn.q_norm"), &ly->q_norm, hd, 0);
            add_floats(&l, NAME("self_attn.k_norm"), &ly->k_norm, hd, 0);
        }
        add_floats(&l, NAME("post_attention_layernorm"), &ly->post_norm, H, 0);
        for (int p = OB_PROJ_GATE; p <= OB_PROJ_DOWN; p++)
            if (p != OB_PROJ_GATE || c->use_swiglu)
                add_matrix(&l, NAME(proj_names[p]), &ly->proj[p], mode, false, rows[p], cols[p]);
#undef NAME
    }
    add_floats(&l, "model.norm.weight", &pm->final_norm, H, 0);
    if (!c->tie_embeddings)
        add_matrix(&l, "lm_head.weight", &pm->head, ob_config_lm_head_mode(c), true, V, H);
    return l.n;
}

/* ---- writing ---------------------------------------------------------------------- */

ob_status ob_1bit_write_model(const char *path, const ob_packed_model *pm, const char *tokenizer_json,
                              size_t tokenizer_len) {
    ob_packed_model *m = (ob_packed_model *)pm; /* entries only read through it here */
    int n = model_entries(m, NULL);
    model_entry *e = ob_calloc((size_t)n, sizeof *e);
    ob_1bit_tensor *t = ob_calloc((size_t)n, sizeof *t);
    char *config = ob_config_to_json(&pm->cfg);
    ob_status st = e && t && config ? OB_OK : OB_ERR_NOMEM;
    if (st == OB_OK) {
        model_entries(m, e);
        for (int i = 0; i < n; i++) {
            t[i].name = e[i].name;
            t[i].ndims = e[i].ndims;
            memcpy(t[i].shape, e[i].shape, sizeof e[i].shape);
            if (e[i].matrix) {
                const ob_packed_tensor *p = e[i].matrix;
                t[i].dtype = p->dtype;
                t[i].data = p->data;
                t[i].data_bytes = (uint64_t)p->rows * p->row_bytes;
                t[i].scales = p->scales;
                t[i].num_scales = p->num_scales;
            } else {
                t[i].dtype = OB_DTYPE_F32;
                t[i].data = *e[i].floats;
                t[i].data_bytes = (uint64_t)e[i].shape[0] * (uint64_t)(e[i].ndims == 2 ? e[i].shape[1] : 1) * 4;
            }
        }
        ob_1bit_contents c = {config, strlen(config), tokenizer_json, tokenizer_json ? tokenizer_len : 0, t, n};
        st = ob_1bit_write(path, &c);
    }
    free(config);
    free(e);
    free(t);
    return st;
}

/* ---- reading ---------------------------------------------------------------------- */

static void close_file(void *ctx) { ob_1bit_close(ctx); }

static bool table_dtype_ok(ob_dtype d) {
    return d == OB_DTYPE_F32 || d == OB_DTYPE_F16 || d == OB_DTYPE_I8 || d == OB_DTYPE_FOURBIT;
}

static ob_status bind(const ob_1bit_file *f, const model_entry *e, const ob_1bit_tensor *t) {
    bool shape_ok = t->ndims == e->ndims && t->shape[0] == e->shape[0] && (e->ndims == 1 || t->shape[1] == e->shape[1]);
    if (!shape_ok)
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s' has %d dimensions [%lld, %lld], the config needs [%lld%s%lld]",
                        f->source, e->name, t->ndims, (long long)t->shape[0], (long long)(t->ndims > 1 ? t->shape[1] : 0),
                        (long long)e->shape[0], e->ndims == 2 ? ", " : "", (long long)(e->ndims == 2 ? e->shape[1] : 0));
    if (!e->matrix) {
        if (t->dtype != OB_DTYPE_F32)
            return ob_error(OB_ERR_FORMAT, "%s: tensor '%s' is %s, norm gains and positions are F32", f->source,
                            e->name, ob_dtype_name(t->dtype));
        *e->floats = t->data;
        return OB_OK;
    }
    if (e->table ? !table_dtype_ok(t->dtype) : t->dtype != e->want)
        return ob_error(OB_ERR_FORMAT, "%s: tensor '%s' is %s, its mode in the config needs %s", f->source, e->name,
                        ob_dtype_name(t->dtype), e->table ? "F32, F16, I8 or FOURBIT" : ob_dtype_name(e->want));
    ob_packed_tensor_init(e->matrix, t->dtype, (int)e->shape[0], (int)e->shape[1], t->data, t->scales);
    return OB_OK;
}

static ob_status fill_model(ob_packed_model *pm, const ob_1bit_file *f) {
    int n = model_entries(pm, NULL);
    model_entry *e = ob_calloc((size_t)n, sizeof *e);
    if (!e)
        return OB_ERR_NOMEM;
    model_entries(pm, e);
    ob_status st = OB_OK;
    for (int i = 0; i < n && st == OB_OK; i++) {
        const ob_1bit_tensor *t = ob_1bit_find(f, e[i].name);
        st = t ? bind(f, &e[i], t)
               : ob_error(OB_ERR_FORMAT, "%s: tensor '%s' is missing (the config needs it)", f->source, e[i].name);
    }
    /* Every tensor of the file is one of the n names (which are distinct). */
    if (st == OB_OK && f->num_tensors != n) {
        for (int k = 0; k < f->num_tensors && st == OB_OK; k++) {
            bool known = false;
            for (int i = 0; i < n && !known; i++)
                known = strcmp(e[i].name, f->tensors[k].name) == 0;
            if (!known)
                st = ob_error(OB_ERR_FORMAT, "%s: tensor '%s' is not part of the model its config describes", f->source,
                              f->tensors[k].name);
        }
    }
    free(e);
    if (st)
        return st;
    const ob_config *c = &pm->cfg;
    for (int l = 0; l < c->num_layers && !c->use_swiglu; l++)
        ob_packed_tensor_init(&pm->layers[l].proj[OB_PROJ_GATE], ob_packed_dtype_for_mode(ob_config_layer_mode(c, l)),
                              0, c->hidden_size, NULL, NULL);
    pm->head_shares_embed = c->tie_embeddings;
    if (pm->head_shares_embed)
        pm->head = pm->embed;
    pm->weight_bytes = 0;
    for (int k = 0; k < f->num_tensors; k++)
        pm->weight_bytes += f->tensors[k].data_bytes + (uint64_t)f->tensors[k].num_scales * sizeof(float);
    return ob_packed_model_validate(pm, f->source);
}

ob_status ob_packed_model_from_1bit(ob_1bit_file *f, ob_packed_model **out) {
    *out = NULL;
    if (f->version == 1) {
        ob_status st = ob_error(OB_ERR_UNSUPPORTED,
                                "%s: a version 1 file (OneBit-LLM) holds only the binary and ternary matrices, without "
                                "scales, embeddings or norm gains, so it cannot run on its own",
                                f->source);
        ob_1bit_close(f);
        return st;
    }
    ob_packed_model *pm = ob_calloc(1, sizeof *pm);
    if (!pm) {
        ob_1bit_close(f);
        return OB_ERR_NOMEM;
    }
    pm->release = close_file;
    pm->release_ctx = f;
    size_t sl = strlen(f->source) + 16;
    char *src = ob_malloc(sl);
    ob_status st = src ? OB_OK : OB_ERR_NOMEM;
    bool have_cfg = false;
    if (st == OB_OK) {
        snprintf(src, sl, "%s (config)", f->source);
        st = ob_config_parse(f->config_json, f->config_len, src, &pm->cfg);
        have_cfg = st == OB_OK;
    }
    free(src);
    if (!have_cfg)
        ob_config_default(&pm->cfg); /* nothing to free */
    if (st == OB_OK && !(pm->layers = ob_calloc((size_t)pm->cfg.num_layers, sizeof *pm->layers)))
        st = OB_ERR_NOMEM;
    if (st == OB_OK)
        st = fill_model(pm, f);
    if (st) {
        ob_packed_model_free(pm);
        return st;
    }
    *out = pm;
    return OB_OK;
}

/* The runtime's entry point for .1bit files (see infer/source_1bit.h). A
 * .1bit file keeps the precision it was exported with: a --head other than
 * f32/auto that differs from it is an error rather than a silent repack. */
ob_status ob_packed_model_open_1bit(const char *path, const ob_pack_options *opts, ob_packed_model **model,
                                    ob_tokenizer **tok) {
    *model = NULL;
    if (tok)
        *tok = NULL;
    ob_1bit_file *f;
    ob_status st = ob_1bit_open(path, NULL, &f);
    if (st)
        return st;
    ob_tokenizer *t = NULL;
    if (tok && f->tokenizer_len == 0)
        st = ob_error(OB_ERR_NOT_FOUND, "%s: the file holds no tokenizer (export it from a checkpoint with "
                                        "tokenizer.json)",
                      path);
    if (st == OB_OK && tok) {
        size_t sl = strlen(path) + 16;
        char *src = ob_malloc(sl);
        if (!src)
            st = OB_ERR_NOMEM;
        else {
            snprintf(src, sl, "%s (tokenizer)", path);
            st = ob_tokenizer_parse_json(f->tokenizer_json, f->tokenizer_len, src, &t);
            free(src);
        }
    }
    if (st) {
        ob_1bit_close(f);
        return st;
    }
    ob_packed_model *pm;
    if ((st = ob_packed_model_from_1bit(f, &pm))) {
        ob_tokenizer_free(t);
        return st;
    }
    const ob_config *c = &pm->cfg;
    if (t && ob_tokenizer_vocab_size(t) > c->vocab_size)
        st = ob_error(OB_ERR_FORMAT, "%s: the tokenizer has %d tokens, more than the config's vocab_size %d", path,
                      ob_tokenizer_vocab_size(t), c->vocab_size);
    static const ob_dtype wanted[] = {OB_DTYPE_F32, OB_DTYPE_F32, OB_DTYPE_F16, OB_DTYPE_I8, OB_DTYPE_FOURBIT};
    if (st == OB_OK && opts && opts->head > OB_TABLE_F32 && (unsigned)opts->head < 5 &&
        ob_config_lm_head_mode(c) == OB_MODE_F16 && pm->head.dtype != wanted[opts->head])
        st = ob_error(OB_ERR_INVALID_ARG, "%s: the file stores the output head as %s, not %s (a .1bit file keeps the "
                                          "precision it was exported with: re-export with --embed-dtype)",
                      path, ob_dtype_name(pm->head.dtype), ob_table_precision_name(opts->head));
    if (st) {
        ob_tokenizer_free(t);
        ob_packed_model_free(pm);
        return st;
    }
    *model = pm;
    if (tok)
        *tok = t;
    return OB_OK;
}
