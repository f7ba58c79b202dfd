/* The export pipeline (`onebit export`): read a checkpoint, settle the layer
 * modes (--pack-mode), pack every matrix with the training quantiser
 * (ob_packed_model_build), write the .1bit file, reopen it through the full
 * validating reader, optionally compare the runtime's logits on the file with
 * those on the checkpoint bit for bit, write the C header, and account the
 * bytes per kind of tensor. */
#include <stdlib.h>
#include <string.h>

#include "format/onebit_layout.h"
#include "infer/source_1bit.h"

static const char *const kind_names[OB_SIZE_KIND_COUNT] = {"embedding", "positions", "attention", "ffn",
                                                           "norms",     "head",      "metadata",  "padding"};

const char *ob_size_kind_name(ob_size_kind k) {
    return (unsigned)k < OB_SIZE_KIND_COUNT ? kind_names[k] : "?";
}

static ob_size_kind classify(const char *name) {
    if (strstr(name, "embed_tokens"))
        return OB_SIZE_EMBEDDING;
    if (strstr(name, "embed_positions"))
        return OB_SIZE_POSITIONS;
    if (strstr(name, "lm_head"))
        return OB_SIZE_HEAD;
    if (strstr(name, "_proj"))
        return strstr(name, "mlp.") ? OB_SIZE_FFN : OB_SIZE_ATTENTION;
    return OB_SIZE_NORMS;
}

void ob_1bit_size_report(const ob_1bit_file *f, ob_size_report *r) {
    memset(r, 0, sizeof *r);
    uint64_t tensors = 0;
    for (int i = 0; i < f->num_tensors; i++) {
        const ob_1bit_tensor *t = &f->tensors[i];
        ob_size_kind k = classify(t->name);
        uint64_t bytes = t->data_bytes + (uint64_t)t->num_scales * sizeof(float), weights = 1;
        for (int d = 0; d < t->ndims; d++)
            weights *= (uint64_t)t->shape[d];
        r->tensors[k]++;
        r->bytes[k] += bytes;
        r->weights[k] += weights;
        r->total_weights += weights;
        tensors += bytes;
        if ((k == OB_SIZE_ATTENTION || k == OB_SIZE_FFN) && ob_packed_dtype_quantised(t->dtype)) {
            r->quantised_bytes += bytes;
            r->quantised_weights += weights;
        }
    }
    r->bytes[OB_SIZE_METADATA] = f->header_bytes;
    r->bytes[OB_SIZE_PADDING] = f->file_bytes - f->header_bytes - tensors;
    r->total_bytes = f->file_bytes;
}

/* ---- layer modes ----------------------------------------------------------------- */

static bool binary_or_ternary(ob_quant_mode m) { return m == OB_MODE_TERNARY || m == OB_MODE_BINARY; }

/* Applies --pack-mode to the decoder layers that are binary or ternary. */
static ob_status settle_modes(ob_config *cfg, const ob_export_options *o, const char *cfg_path) {
    if (o->pack_mode == OB_PACK_MODE_CONFIG)
        return OB_OK;
    ob_quant_mode want = o->pack_mode == OB_PACK_MODE_TERNARY ? OB_MODE_TERNARY : OB_MODE_BINARY;
    int quantised = 0, differ = 0, first = -1;
    for (int l = 0; l < cfg->num_layers; l++) {
        ob_quant_mode m = ob_config_layer_mode(cfg, l);
        if (!binary_or_ternary(m))
            continue;
        quantised++;
        if (m != want && differ++ == 0)
            first = l;
    }
    if (quantised == 0)
        ob_log(OB_LOG_WARN, "%s: no decoder layer is binary or ternary; --pack-mode %s changes nothing", cfg_path,
               ob_quant_mode_name(want));
    if (differ == 0)
        return OB_OK;
    if (!o->change_mode)
        return ob_error(OB_ERR_CONFIG,
                        "%s: %d decoder layer(s) were trained %s (layer %d first) but --pack-mode is %s; packing them "
                        "with the %s quantiser gives a different model than the one trained. Use --pack-mode %s, or "
                        "add --change-mode to repack the latent weights anyway",
                        cfg_path, differ, ob_quant_mode_name(ob_config_layer_mode(cfg, first)), first,
                        ob_quant_mode_name(want), ob_quant_mode_name(want),
                        ob_quant_mode_name(ob_config_layer_mode(cfg, first)));
    ob_log(OB_LOG_WARN, "%s: repacking %d %s layer(s) as %s: the exported model is not the one trained", cfg_path,
           differ, want == OB_MODE_TERNARY ? "binary" : "ternary", ob_quant_mode_name(want));
    for (int l = 0; l < cfg->num_layers; l++)
        if (binary_or_ternary(ob_config_layer_mode(cfg, l)))
            cfg->layer_modes[l] = (uint8_t)want;
    cfg->use_ternary = want == OB_MODE_TERNARY;
    return OB_OK;
}

/* ---- verification -------------------------------------------------------------------- */

/* The runtime on the packed checkpoint and on the file: the logits of every
 * position of a seeded token sequence must agree bit for bit. */
static ob_status verify(const ob_packed_model *packed, const char *path, int *tokens_checked) {
    ob_packed_model *mapped = NULL;
    ob_infer *a = NULL, *b = NULL;
    const ob_config *c = &packed->cfg;
    int n = c->max_seq_len < 48 ? c->max_seq_len : 48, V = c->vocab_size;
    int32_t *tok = ob_malloc((size_t)n * sizeof *tok);
    float *la = ob_malloc((size_t)n * V * sizeof(float)), *lb = ob_malloc((size_t)n * V * sizeof(float));
    ob_status st = tok && la && lb ? OB_OK : OB_ERR_NOMEM;
    if (st == OB_OK)
        st = ob_packed_model_open_1bit(path, NULL, &mapped, NULL);
    ob_infer_options io = {n, 1, OB_ISA_AUTO};
    if (st == OB_OK)
        st = ob_infer_create(packed, &io, &a);
    if (st == OB_OK)
        st = ob_infer_create(mapped, &io, &b);
    ob_rng rng;
    ob_rng_seed(&rng, 20240520);
    for (int i = 0; i < n; i++)
        if (tok)
            tok[i] = (int32_t)ob_rng_below(&rng, (uint64_t)V);
    if (st == OB_OK)
        st = ob_infer_forward(a, tok, n, la, true);
    if (st == OB_OK)
        st = ob_infer_forward(b, tok, n, lb, true);
    if (st == OB_OK && memcmp(la, lb, (size_t)n * V * sizeof(float)) != 0)
        st = ob_error(OB_ERR_NUMERIC, "%s: verification failed: the runtime's logits on the file differ from those "
                                      "on the checkpoint",
                      path);
    if (st == OB_OK)
        *tokens_checked = n;
    ob_infer_free(a);
    ob_infer_free(b);
    ob_packed_model_free(mapped);
    free(tok);
    free(la);
    free(lb);
    return st;
}

/* ---- the pipeline --------------------------------------------------------------------- */

typedef struct {
    char *dir, *cfg_path, *st_path, *tok_path;
    char *tok_json;
    size_t tok_len;
    ob_config cfg;
    bool have_cfg;
    ob_model *model;
    ob_tokenizer *tok;
    ob_packed_model *packed;
} export_state;

static void state_free(export_state *s) {
    ob_packed_model_free(s->packed);
    ob_tokenizer_free(s->tok);
    ob_model_free(s->model);
    if (s->have_cfg)
        ob_config_free(&s->cfg);
    free(s->tok_json);
    free(s->dir);
    free(s->cfg_path);
    free(s->st_path);
    free(s->tok_path);
}

static ob_status load_checkpoint(export_state *s, const ob_export_options *o) {
    if (!ob_is_directory(o->model_dir))
        return ob_error(OB_ERR_NOT_FOUND, "%s: no such directory (--model-dir wants a checkpoint directory)",
                        o->model_dir);
    s->dir = ob_checkpoint_dir_resolve(o->model_dir);
    if (!s->dir)
        return ob_error(OB_ERR_NOT_FOUND,
                        "%s: not a checkpoint directory (no config.json in it, nor a 'latest' link to one)", o->model_dir);
    s->cfg_path = ob_path_join(s->dir, "config.json");
    s->st_path = ob_path_join(s->dir, "model.safetensors");
    s->tok_path = ob_path_join(s->dir, "tokenizer.json");
    if (!s->cfg_path || !s->st_path || !s->tok_path)
        return OB_ERR_NOMEM;
    ob_status st = ob_config_load(s->cfg_path, &s->cfg);
    if (st)
        return st;
    s->have_cfg = true;
    if ((st = settle_modes(&s->cfg, o, s->cfg_path)))
        return st;
    if (o->c_header) {
        const char *why = ob_embedded_unsupported(&s->cfg);
        if (why)
            return ob_error(OB_ERR_UNSUPPORTED, "%s: --emit-c-header: %s", s->cfg_path, why);
    }
    if (!ob_path_exists(s->st_path))
        return ob_error(OB_ERR_NOT_FOUND, "%s: missing (a checkpoint directory holds model.safetensors)", s->st_path);
    if ((st = ob_model_create(&s->cfg, &s->model)) || (st = ob_model_load(s->model, s->model->weights, s->st_path)))
        return st;
    if (!ob_path_exists(s->tok_path)) {
        ob_log(OB_LOG_WARN, "%s: missing; the .1bit file will hold no tokenizer", s->tok_path);
        return OB_OK;
    }
    if ((st = ob_read_file(s->tok_path, &s->tok_json, &s->tok_len)) || (st = ob_tokenizer_load(s->tok_path, &s->tok)))
        return st;
    if (ob_tokenizer_vocab_size(s->tok) > s->cfg.vocab_size)
        return ob_error(OB_ERR_CONFIG, "%s: the tokenizer has %d tokens, more than vocab_size %d of %s", s->tok_path,
                        ob_tokenizer_vocab_size(s->tok), s->cfg.vocab_size, s->cfg_path);
    return OB_OK;
}

ob_status ob_export(const ob_export_options *o, ob_size_report *report) {
    ob_size_report local;
    if (!report)
        report = &local;
    memset(report, 0, sizeof *report);
    if (!o->model_dir || !o->output)
        return ob_error(OB_ERR_INVALID_ARG, "export: give a checkpoint directory and an output file");
    if (o->embed != OB_TABLE_AUTO && o->embed != OB_TABLE_F32 && o->embed != OB_TABLE_F16 && o->embed != OB_TABLE_I8)
        return ob_error(OB_ERR_INVALID_ARG, "export: --embed-dtype must be f32, f16 or int8, not %s",
                        ob_table_precision_name(o->embed));
    export_state s;
    memset(&s, 0, sizeof s);
    ob_status st = load_checkpoint(&s, o);
    if (st == OB_OK && o->embed > OB_TABLE_F32 && ob_config_embedding_mode(&s.cfg) != OB_MODE_F16 &&
        ob_config_lm_head_mode(&s.cfg) != OB_MODE_F16)
        ob_log(OB_LOG_WARN, "%s: the embedding and head are quantised (layer_bit_map); --embed-dtype %s changes nothing",
               s.cfg_path, ob_table_precision_name(o->embed));
    ob_pack_options po = {o->embed, o->embed};
    double t0 = ob_now();
    if (st == OB_OK) {
        ob_log(OB_LOG_INFO, "packing %s (%lld parameters) with the training quantiser", s.dir,
               (long long)ob_config_param_count(&s.cfg));
        st = ob_packed_model_build(s.model, s.model->weights, &po, &s.packed);
    }
    /* The latent weights are no longer needed. */
    ob_model_free(s.model);
    s.model = NULL;
    if (st == OB_OK) {
        ob_log(OB_LOG_INFO, "writing %s (packed in %.1f s)", o->output, ob_now() - t0);
        st = ob_1bit_write_model(o->output, s.packed, s.tok_json, s.tok_len);
    }
    ob_1bit_file *f = NULL;
    if (st == OB_OK)
        st = ob_1bit_open(o->output, NULL, &f);
    if (st == OB_OK)
        ob_1bit_size_report(f, report);
    ob_1bit_close(f);
    if (st == OB_OK && o->verify) {
        ob_log(OB_LOG_INFO, "verifying: the runtime on %s against the checkpoint", o->output);
        st = verify(s.packed, o->output, &report->verified_tokens);
    }
    if (st == OB_OK && o->c_header) {
        ob_log(OB_LOG_INFO, "writing the C header %s", o->c_header);
        st = ob_c_header_write(o->c_header, s.packed, s.tok);
        ob_mapping hm = {0};
        if (st == OB_OK && (st = ob_map_file(o->c_header, &hm)) == OB_OK) {
            report->header_bytes = hm.size;
            ob_unmap_file(&hm);
        }
    }
    state_free(&s);
    return st;
}
