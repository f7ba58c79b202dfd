/* Where packed models come from: a checkpoint directory (config.json +
 * model.safetensors + tokenizer.json, as `onebit train` writes them; a training
 * output directory resolves through its `latest` link), whose latent weights
 * are read once, packed and dropped; or a .1bit file (source_1bit.c). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "infer/source_1bit.h"

char *ob_checkpoint_dir_resolve(const char *dir) {
    char *cfg = ob_path_join(dir, "config.json");
    bool here = cfg && ob_path_exists(cfg);
    free(cfg);
    if (here)
        return ob_strdup(dir);
    char *latest = ob_path_join(dir, "latest");
    char *resolved = latest ? realpath(latest, NULL) : NULL;
    free(latest);
    if (!resolved)
        return NULL;
    cfg = ob_path_join(resolved, "config.json");
    here = cfg && ob_path_exists(cfg);
    free(cfg);
    if (here)
        return resolved;
    free(resolved);
    return NULL;
}

static ob_status open_checkpoint(const char *dir_arg, const ob_pack_options *opts, ob_packed_model **model,
                                 ob_tokenizer **tok) {
    if (!ob_is_directory(dir_arg))
        return ob_error(OB_ERR_NOT_FOUND, "%s: no such directory (--model-dir wants a checkpoint directory)", dir_arg);
    char *dir = ob_checkpoint_dir_resolve(dir_arg);
    if (!dir)
        return ob_error(OB_ERR_NOT_FOUND,
                        "%s: not a checkpoint directory (no config.json in it, nor a 'latest' link to one)", dir_arg);
    char *cfg_path = ob_path_join(dir, "config.json"), *st_path = ob_path_join(dir, "model.safetensors");
    char *tok_path = ob_path_join(dir, "tokenizer.json");
    ob_config cfg;
    ob_model *m = NULL;
    bool have_cfg = false;
    ob_status st = cfg_path && st_path && tok_path ? OB_OK : OB_ERR_NOMEM;
    if (st == OB_OK && (st = ob_config_load(cfg_path, &cfg)) == OB_OK)
        have_cfg = true;
    if (st == OB_OK && !ob_path_exists(st_path))
        st = ob_error(OB_ERR_NOT_FOUND, "%s: missing (a checkpoint directory holds model.safetensors)", st_path);
    if (st == OB_OK)
        st = ob_model_create(&cfg, &m);
    if (st == OB_OK)
        st = ob_model_load(m, m->weights, st_path);
    if (st == OB_OK)
        st = ob_packed_model_build(m, m->weights, opts, model);
    ob_model_free(m);
    if (st == OB_OK && tok) {
        if (!ob_path_exists(tok_path))
            st = ob_error(OB_ERR_NOT_FOUND, "%s: missing (the checkpoint has no tokenizer)", tok_path);
        else
            st = ob_tokenizer_load(tok_path, tok);
        if (st == OB_OK && ob_tokenizer_vocab_size(*tok) > cfg.vocab_size) {
            st = ob_error(OB_ERR_CONFIG, "%s: the tokenizer has %d tokens, more than vocab_size %d of %s", tok_path,
                          ob_tokenizer_vocab_size(*tok), cfg.vocab_size, cfg_path);
            ob_tokenizer_free(*tok);
            *tok = NULL;
        }
        if (st) {
            ob_packed_model_free(*model);
            *model = NULL;
        }
    }
    if (have_cfg)
        ob_config_free(&cfg);
    free(cfg_path);
    free(st_path);
    free(tok_path);
    free(dir);
    return st;
}

ob_status ob_infer_open(const char *model_dir, const char *model_file, const ob_pack_options *opts,
                        ob_packed_model **model, ob_tokenizer **tok) {
    *model = NULL;
    if (tok)
        *tok = NULL;
    if ((model_dir != NULL) == (model_file != NULL))
        return ob_error(OB_ERR_INVALID_ARG, "give either --model-dir DIR (a checkpoint) or --model FILE (.1bit)");
    if (model_dir)
        return open_checkpoint(model_dir, opts, model, tok);
    if (ob_is_directory(model_file))
        return ob_error(OB_ERR_INVALID_ARG, "%s: is a directory; use --model-dir for checkpoint directories",
                        model_file);
    FILE *f = fopen(model_file, "rb");
    if (!f)
        return ob_error(OB_ERR_NOT_FOUND, "%s: cannot open the model file", model_file);
    char magic[4] = {0};
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got != 4 || memcmp(magic, OB_1BIT_MAGIC, 4) != 0)
        return ob_error(OB_ERR_FORMAT, "%s: not a .1bit file (it does not start with \"1BIT\")", model_file);
    return ob_packed_model_open_1bit(model_file, opts, model, tok);
}
