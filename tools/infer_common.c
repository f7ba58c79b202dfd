/* Model loading and flags shared by onebit chat, test-generate and eval
 * (infer_common.h). */
#include <stdio.h>
#include <string.h>

#include "infer_common.h"

void infer_flags_default(infer_flags *f, int max_tokens) {
    memset(f, 0, sizeof *f);
    f->head = "f32";
    f->kernels = "auto";
    f->max_tokens = max_tokens;
    ob_sampler_params_default(&f->sampler);
    f->seed = (int64_t)f->sampler.seed;
}

int infer_env_open(const char *cmd, const infer_flags *f, bool need_tokenizer, infer_env *e) {
    memset(e, 0, sizeof *e);
    if (!f->model_dir && !f->model_file) {
        fprintf(stderr, "%s: give --model-dir DIR (a checkpoint) or --model FILE (.1bit); see --help\n", cmd);
        return 2;
    }
    ob_pack_options po = {OB_TABLE_AUTO, OB_TABLE_AUTO};
    ob_table_precision_parse(f->head, &po.head);
    ob_infer_options io = {f->context, f->threads, OB_ISA_AUTO};
    ob_kernel_isa_parse(f->kernels, &io.isa);
    ob_sampler_params sp = f->sampler;
    sp.seed = (uint64_t)f->seed;
    double t0 = ob_now();
    ob_status st = ob_infer_open(f->model_dir, f->model_file, &po, &e->model, need_tokenizer ? &e->tok : NULL);
    if (st == OB_OK)
        st = ob_infer_create(e->model, &io, &e->session);
    if (st == OB_OK)
        st = ob_sampler_create(&sp, e->model->cfg.vocab_size, &e->sampler);
    if (st) {
        infer_env_close(e);
        return ob_cmd_fail(cmd);
    }
    const ob_config *c = &e->model->cfg;
    ob_log(OB_LOG_INFO, "loaded %s in %.1f s: %d layers, hidden %d, vocab %d; %.1f MB of packed weights, %.1f MB KV "
                        "cache for %d tokens; %s kernels, %d threads",
           f->model_dir ? f->model_dir : f->model_file, ob_now() - t0, c->num_layers, c->hidden_size, c->vocab_size,
           e->model->weight_bytes / 1e6, ob_infer_kv_bytes(e->session) / 1e6, ob_infer_context(e->session),
           ob_kernel_isa_name(ob_infer_isa(e->session)), ob_infer_threads(e->session));
    return -1;
}

void infer_env_close(infer_env *e) {
    ob_sampler_free(e->sampler);
    ob_infer_free(e->session);
    ob_tokenizer_free(e->tok);
    ob_packed_model_free(e->model);
    memset(e, 0, sizeof *e);
}

void infer_print_token(const ob_tokenizer *tok, int32_t token) {
    size_t len;
    const uint8_t *bytes = ob_tokenizer_token_bytes(tok, token, &len);
    if (bytes && len)
        fwrite(bytes, 1, len, stdout);
    fflush(stdout);
}
