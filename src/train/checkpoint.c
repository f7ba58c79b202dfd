/* Checkpoint save, resolve and load (see checkpoint.h). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onebit/json.h"
#include "onebit/safetensors.h"
#include "train/checkpoint.h"

ob_status ob_copy_file(const char *from, const char *to) {
    char *data;
    size_t size;
    ob_status st = ob_read_file(from, &data, &size);
    if (st)
        return st;
    st = ob_write_file_atomic(to, data, size);
    free(data);
    return st;
}

static ob_status save_moments(const char *path, const ob_model *m, const float *exp_avg, const float *exp_avg_sq) {
    ob_st_writer *w;
    ob_status st = ob_st_writer_create(&w);
    if (st)
        return st;
    char (*names)[128] = ob_calloc((size_t)m->num_params * 2, sizeof *names);
    if (!names) {
        ob_st_writer_free(w);
        return OB_ERR_NOMEM;
    }
    for (int i = 0; i < m->num_params && st == OB_OK; i++) {
        const ob_param *p = &m->params[i];
        int64_t shape[2] = {p->rows, p->cols};
        snprintf(names[2 * i], 128, "exp_avg.%s", p->name);
        snprintf(names[2 * i + 1], 128, "exp_avg_sq.%s", p->name);
        st = ob_st_writer_add(w, names[2 * i], OB_DTYPE_F32, p->cols ? 2 : 1, shape, exp_avg + p->offset);
        if (st == OB_OK)
            st = ob_st_writer_add(w, names[2 * i + 1], OB_DTYPE_F32, p->cols ? 2 : 1, shape, exp_avg_sq + p->offset);
    }
    if (st == OB_OK)
        st = ob_st_writer_write(w, path);
    ob_st_writer_free(w);
    free(names);
    return st;
}

static void remove_tree_shallow(const char *dir) {
    static const char *const files[] = {"config.json", "model.safetensors", "optimizer.safetensors",
                                        "tokenizer.json", "trainer_state.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p = ob_path_join(dir, files[i]);
        if (p)
            unlink(p);
        free(p);
    }
    rmdir(dir);
}

ob_status ob_checkpoint_save(const char *output_dir, int64_t step, const ob_model *m, const float *params,
                             const float *exp_avg, const float *exp_avg_sq, const char *tokenizer,
                             const cJSON *state, char *written, size_t written_size) {
    char name[64], partial[96];
    snprintf(name, sizeof name, "checkpoint-%06lld", (long long)step);
    snprintf(partial, sizeof partial, "%s.partial-%ld", name, (long)getpid());
    char *final_dir = ob_path_join(output_dir, name);
    char *tmp_dir = ob_path_join(output_dir, partial);
    char *paths[5] = {0};
    ob_status st = final_dir && tmp_dir ? ob_mkdirs(tmp_dir) : OB_ERR_NOMEM;
    static const char *const files[] = {"config.json", "model.safetensors", "optimizer.safetensors",
                                        "tokenizer.json", "trainer_state.json"};
    for (int i = 0; i < 5 && st == OB_OK; i++)
        if (!(paths[i] = ob_path_join(tmp_dir, files[i])))
            st = OB_ERR_NOMEM;
    if (st == OB_OK)
        st = ob_config_save(&m->cfg, paths[0]);
    const char *meta[] = {"format", "pt", "onebit_step", NULL, NULL};
    char step_text[32];
    snprintf(step_text, sizeof step_text, "%lld", (long long)step);
    meta[3] = step_text;
    if (st == OB_OK)
        st = ob_model_save(m, params, paths[1], meta);
    if (st == OB_OK)
        st = save_moments(paths[2], m, exp_avg, exp_avg_sq);
    if (st == OB_OK && tokenizer)
        st = ob_copy_file(tokenizer, paths[3]);
    if (st == OB_OK)
        st = ob_json_save_file(paths[4], state);
    if (st == OB_OK) {
        /* Replace an older checkpoint of the same step (a resumed run saving again). */
        if (ob_is_directory(final_dir))
            remove_tree_shallow(final_dir);
        if (rename(tmp_dir, final_dir) != 0)
            st = ob_error(OB_ERR_IO, "%s: cannot rename checkpoint into place: %s", final_dir, strerror(errno));
    }
    if (st == OB_OK) {
        char *link_tmp = ob_path_join(output_dir, "latest.tmp");
        char *link_final = ob_path_join(output_dir, "latest");
        unlink(link_tmp);
        if (symlink(name, link_tmp) != 0 || rename(link_tmp, link_final) != 0)
            st = ob_error(OB_ERR_IO, "%s: cannot update the 'latest' link: %s", link_final, strerror(errno));
        free(link_tmp);
        free(link_final);
    }
    if (st != OB_OK && tmp_dir)
        remove_tree_shallow(tmp_dir);
    if (st == OB_OK && written)
        snprintf(written, written_size, "%s", final_dir);
    for (int i = 0; i < 5; i++)
        free(paths[i]);
    free(final_dir);
    free(tmp_dir);
    return st;
}

ob_status ob_checkpoint_resolve(const char *output_dir, const char *resume, char *dir, size_t size) {
    if (strcmp(resume, "latest") == 0) {
        if (!output_dir)
            return ob_error(OB_ERR_INVALID_ARG, "--resume latest needs --output-dir");
        char *link = ob_path_join(output_dir, "latest");
        char *resolved = link ? realpath(link, NULL) : NULL;
        if (!resolved) {
            ob_status st = ob_error(OB_ERR_NOT_FOUND, "%s: no checkpoint to resume from (%s)", link ? link : output_dir,
                                    strerror(errno));
            free(link);
            return st;
        }
        snprintf(dir, size, "%s", resolved);
        free(resolved);
        free(link);
        return OB_OK;
    }
    if (!ob_is_directory(resume))
        return ob_error(OB_ERR_NOT_FOUND, "%s: not a checkpoint directory", resume);
    snprintf(dir, size, "%s", resume);
    return OB_OK;
}

static ob_status load_moments(const char *path, const ob_model *m, float *exp_avg, float *exp_avg_sq) {
    ob_st_file *f;
    ob_status st = ob_st_open(path, &f);
    if (st)
        return st;
    for (int i = 0; i < m->num_params && st == OB_OK; i++) {
        const ob_param *p = &m->params[i];
        int64_t shape[2] = {p->rows, p->cols};
        const ob_tensor_view *v;
        char name[128];
        snprintf(name, sizeof name, "exp_avg.%s", p->name);
        st = ob_st_require(f, name, OB_DTYPE_F32, p->cols ? 2 : 1, shape, &v);
        if (st == OB_OK)
            st = ob_tensor_to_f32(v, exp_avg + p->offset);
        snprintf(name, sizeof name, "exp_avg_sq.%s", p->name);
        if (st == OB_OK)
            st = ob_st_require(f, name, OB_DTYPE_F32, p->cols ? 2 : 1, shape, &v);
        if (st == OB_OK)
            st = ob_tensor_to_f32(v, exp_avg_sq + p->offset);
    }
    ob_st_close(f);
    return st;
}

ob_status ob_checkpoint_load(const char *dir, const ob_model *m, float *params, float *exp_avg, float *exp_avg_sq,
                             cJSON **state) {
    *state = NULL;
    char *model_path = ob_path_join(dir, "model.safetensors");
    char *opt_path = ob_path_join(dir, "optimizer.safetensors");
    char *state_path = ob_path_join(dir, "trainer_state.json");
    ob_status st = model_path && opt_path && state_path ? OB_OK : OB_ERR_NOMEM;
    if (st == OB_OK)
        st = ob_model_load(m, params, model_path);
    if (st == OB_OK)
        st = load_moments(opt_path, m, exp_avg, exp_avg_sq);
    if (st == OB_OK)
        st = ob_json_load_file(state_path, state);
    free(model_path);
    free(opt_path);
    free(state_path);
    return st;
}
