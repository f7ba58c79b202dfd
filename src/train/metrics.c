/* metrics.jsonl / metrics.csv and quantised-weight statistics (see metrics.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/json.h"
#include "onebit/quant.h"
#include "train/metrics.h"

static const char *const csv_header =
    "event,step,epoch,tokens,train_loss,val_loss,val_ppl,lr,grad_norm,tokens_per_s,zero_share,flip_share,regime,"
    "sharpness,arenas,elapsed_s\n";

/* Keeps the lines of `path` whose "step" is at most `max_step` (all when the
 * file is missing); returns them as one heap string. */
static char *kept_lines(const char *path, int64_t max_step, bool csv) {
    char *text;
    size_t size;
    if (ob_read_file(path, &text, &size) != OB_OK) {
        ob_clear_error();
        return NULL;
    }
    char *out = ob_malloc(size + 1);
    size_t n = 0;
    char *line = text;
    bool first = true;
    while (out && line && *line) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line + 1) : strlen(line);
        long long step = -1;
        if (csv && !first) {
            const char *comma = strchr(line, ',');
            step = comma ? atoll(comma + 1) : -1;
        } else if (!csv) {
            const char *key = strstr(line, "\"step\":");
            step = key ? atoll(key + 7) : -1;
        }
        if ((csv && first) || (step >= 0 && step <= max_step)) {
            memcpy(out + n, line, len);
            n += len;
        }
        first = false;
        line = end ? end + 1 : NULL;
    }
    if (out)
        out[n] = '\0';
    free(text);
    return out;
}

static ob_status open_one(FILE **fp, const char *dir, const char *name, int64_t resume_step, bool csv) {
    char *path = ob_path_join(dir, name);
    if (!path)
        return OB_ERR_NOMEM;
    ob_status st = OB_OK;
    if (resume_step >= 0) {
        char *kept = kept_lines(path, resume_step, csv);
        if (kept) {
            st = ob_write_file_atomic(path, kept, strlen(kept));
            free(kept);
        }
    } else {
        remove(path);
    }
    if (st == OB_OK) {
        bool fresh = !ob_path_exists(path);
        *fp = fopen(path, "a");
        if (!*fp)
            st = ob_error(OB_ERR_IO, "%s: cannot open for writing", path);
        else if (csv && fresh)
            fputs(csv_header, *fp);
    }
    free(path);
    return st;
}

ob_status ob_metrics_open(ob_metrics_log *log, const char *output_dir, int64_t resume_step) {
    memset(log, 0, sizeof *log);
    ob_status st = open_one(&log->jsonl, output_dir, "metrics.jsonl", resume_step, false);
    if (st == OB_OK)
        st = open_one(&log->csv, output_dir, "metrics.csv", resume_step, true);
    if (st)
        ob_metrics_close(log);
    return st;
}

static const char *regime_name(ob_regime r) {
    return r == OB_REGIME_FP ? "fp" : (r == OB_REGIME_SOFT ? "soft" : "hard");
}

static void csv_number(FILE *fp, double v) {
    if (isfinite(v))
        fprintf(fp, "%.9g", v);
    fputc(',', fp);
}

void ob_metrics_write(ob_metrics_log *log, const ob_metrics_row *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", r->event);
    cJSON_AddNumberToObject(o, "step", (double)r->step);
    cJSON_AddNumberToObject(o, "epoch", r->epoch);
    cJSON_AddNumberToObject(o, "tokens", (double)r->tokens);
    struct {
        const char *key;
        double v;
    } fields[] = {{"train_loss", r->train_loss}, {"val_loss", r->val_loss},   {"val_ppl", r->val_ppl},
                  {"lr", r->lr},                 {"grad_norm", r->grad_norm}, {"tokens_per_s", r->tokens_per_second},
                  {"zero_share", r->zero_share}, {"flip_share", r->flip_share}};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (isfinite(fields[i].v))
            cJSON_AddNumberToObject(o, fields[i].key, fields[i].v);
    cJSON_AddStringToObject(o, "regime", regime_name(r->regime));
    cJSON_AddNumberToObject(o, "sharpness", r->sharpness);
    cJSON_AddNumberToObject(o, "arenas", r->arenas);
    cJSON_AddNumberToObject(o, "elapsed_s", r->elapsed);
    char *line = cJSON_PrintUnformatted(o);
    if (line) {
        fprintf(log->jsonl, "%s\n", line);
        cJSON_free(line);
    }
    cJSON_Delete(o);
    fflush(log->jsonl);
    fprintf(log->csv, "%s,%lld,", r->event, (long long)r->step);
    csv_number(log->csv, r->epoch);
    fprintf(log->csv, "%llu,", (unsigned long long)r->tokens);
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        csv_number(log->csv, fields[i].v);
    fprintf(log->csv, "%s,%.9g,%.9g,%.3f\n", regime_name(r->regime), r->sharpness, r->arenas, r->elapsed);
    fflush(log->csv);
}

void ob_metrics_close(ob_metrics_log *log) {
    if (log->jsonl)
        fclose(log->jsonl);
    if (log->csv)
        fclose(log->csv);
    memset(log, 0, sizeof *log);
}

static bool tracked(const ob_param *p) {
    return p->cols > 0 && (p->mode == OB_MODE_TERNARY || p->mode == OB_MODE_BINARY);
}

ob_status ob_quant_tracker_init(ob_quant_tracker *t, const ob_model *m) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < m->num_params; i++)
        if (tracked(&m->params[i]))
            t->count += m->params[i].numel;
    if (t->count && !(t->codes = ob_malloc(t->count)))
        return OB_ERR_NOMEM;
    return OB_OK;
}

void ob_quant_tracker_update(ob_quant_tracker *t, const ob_model *m, const float *params, double *zero_share,
                             double *flip_share) {
    *zero_share = *flip_share = NAN;
    if (!t->count)
        return;
    size_t zeros = 0, ternary = 0, flips = 0, off = 0;
    int8_t *codes = NULL;
    for (int i = 0; i < m->num_params; i++) {
        const ob_param *p = &m->params[i];
        if (!tracked(p))
            continue;
        int8_t *dst = t->codes + off;
        codes = t->have_previous ? ob_malloc(p->numel) : dst;
        if (!codes)
            return;
        ob_quant_weight_hard(p->mode, m->cfg.use_dynamic_threshold, (float)m->cfg.latent_clamp_max,
                             params + p->offset, p->rows, p->cols, codes, NULL, NULL, NULL);
        for (size_t k = 0; k < p->numel; k++) {
            if (p->mode == OB_MODE_TERNARY) {
                ternary++;
                zeros += codes[k] == 0;
            }
            if (t->have_previous) {
                flips += codes[k] != dst[k];
                dst[k] = codes[k];
            }
        }
        if (t->have_previous)
            free(codes);
        off += p->numel;
    }
    if (ternary)
        *zero_share = (double)zeros / (double)ternary;
    if (t->have_previous)
        *flip_share = (double)flips / (double)t->count;
    t->have_previous = true;
}

void ob_quant_tracker_free(ob_quant_tracker *t) {
    free(t->codes);
    memset(t, 0, sizeof *t);
}
