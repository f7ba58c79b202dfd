/* The tokenize pipeline behind `onebit tokenize`: input files are read in
 * order, cut into documents and pieces (documents.c), pieces are encoded in
 * parallel in batches of a few MB, and the tokens are written in input order,
 * each document preceded by EOS, into bounded-size shards of the train or val
 * split. The output depends on neither the thread count nor timing. A failed
 * run removes the shards it wrote. */
#include <dirent.h>
#include <errno.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/documents.h"
#include "onebit/json.h"

enum {
    BATCH_BYTES = 8 << 20, /* text encoded per parallel batch */
    BATCH_UNITS = 8192,
    TKN2_CHUNK = 65536,
};

typedef struct unit {
    const char *text;
    size_t len;
    int file;
    bool first;
    bool val;
    char *release;
    ob_tokens tokens;
    ob_status status;
    char *message;
} unit;

typedef struct split_out {
    const char *name; /* "train" / "val" */
    ob_shard_writer *writer;
    int next_index;
    ob_tokenize_split_stats *stats;
} split_out;

typedef struct pipeline {
    const ob_tokenize_options *o;
    ob_tokenize_stats *stats;
    ob_input_list inputs;
    ob_token_dtype dtype;
    int eos;
    int threads;
    split_out out[2];
    char **written;
    int num_written, written_capacity;
    /* the batch being filled */
    unit *units;
    int num_units;
    size_t batch_bytes;
    ob_doc_reader *retired;
    int num_retired;
    int current_file; /* file whose reader is open, for progress */
    ob_doc_reader reader;
    bool reader_open;
    uint64_t bytes_before_current;
    ob_progress progress;
    char **replaced; /* shards of an earlier run (--force) */
    int num_replaced;
} pipeline;

void ob_tokenize_options_default(ob_tokenize_options *opts) {
    memset(opts, 0, sizeof *opts);
    opts->val_fraction = 0.005;
    opts->seed = 1337;
    opts->shard_tokens = 100000000;
    opts->text_field = "text";
}

/* ---- output shards --------------------------------------------------------------- */

static char *shard_path(const pipeline *p, const split_out *s, int index) {
    char name[512];
    snprintf(name, sizeof name, "%s_%s_%06d.bin", p->o->prefix, s->name, index);
    return ob_path_join(p->o->output_dir, name);
}

static ob_status remember_written(pipeline *p, char *path) {
    if (p->num_written == p->written_capacity) {
        int cap = p->written_capacity ? p->written_capacity * 2 : 16;
        char **grown = realloc(p->written, (size_t)cap * sizeof *grown);
        if (!grown) {
            free(path);
            return ob_error(OB_ERR_NOMEM, "out of memory");
        }
        p->written = grown;
        p->written_capacity = cap;
    }
    p->written[p->num_written++] = path;
    return OB_OK;
}

static ob_status close_shard(pipeline *p, split_out *s) {
    ob_shard_writer *w = s->writer;
    s->writer = NULL;
    char *path = shard_path(p, s, s->next_index);
    if (!path) {
        ob_shard_writer_abort(w);
        return OB_ERR_NOMEM;
    }
    ob_status st = ob_shard_writer_commit(w);
    if (st) {
        free(path);
        return st;
    }
    s->next_index++;
    s->stats->shards++;
    return remember_written(p, path);
}

static ob_status append_tokens(pipeline *p, split_out *s, const int32_t *ids, size_t count) {
    while (count > 0) {
        if (!s->writer) {
            char *path = shard_path(p, s, s->next_index);
            if (!path)
                return OB_ERR_NOMEM;
            ob_status st = ob_shard_writer_open(path, p->dtype, &s->writer);
            free(path);
            if (st)
                return st;
        }
        uint64_t room = p->o->shard_tokens - ob_shard_writer_count(s->writer);
        size_t n = count < room ? count : (size_t)room;
        ob_status st = ob_shard_writer_append(s->writer, ids, n);
        if (st)
            return st;
        s->stats->tokens += n;
        ids += n;
        count -= n;
        if (ob_shard_writer_count(s->writer) == p->o->shard_tokens && (st = close_shard(p, s)))
            return st;
    }
    return OB_OK;
}

/* "<prefix>_train_<digits>.bin" or "<prefix>_val_<digits>.bin". */
static bool is_own_shard(const char *name, const char *prefix) {
    size_t plen = strlen(prefix), n = strlen(name);
    if (strncmp(name, prefix, plen) != 0 || name[plen] != '_' || n < plen + 5 || strcmp(name + n - 4, ".bin") != 0)
        return false;
    const char *rest = name + plen + 1;
    if (strncmp(rest, "train_", 6) == 0)
        rest += 6;
    else if (strncmp(rest, "val_", 4) == 0)
        rest += 4;
    else
        return false;
    if (rest == name + n - 4)
        return false;
    for (; rest < name + n - 4; rest++)
        if (*rest < '0' || *rest > '9')
            return false;
    return true;
}

/* The shards of the prefix already in the output directory. */
static ob_status existing_shards(const pipeline *p, char ***names, int *count) {
    *names = NULL;
    *count = 0;
    DIR *d = opendir(p->o->output_dir);
    if (!d)
        return OB_OK;
    int capacity = 0;
    struct dirent *e;
    ob_status st = OB_OK;
    while ((e = readdir(d)) && st == OB_OK) {
        if (!is_own_shard(e->d_name, p->o->prefix))
            continue;
        if (*count == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            char **grown = realloc(*names, (size_t)capacity * sizeof *grown);
            if (!grown) {
                st = ob_error(OB_ERR_NOMEM, "out of memory");
                break;
            }
            *names = grown;
        }
        (*names)[*count] = ob_path_join(p->o->output_dir, e->d_name);
        if ((*names)[*count])
            (*count)++;
        else
            st = OB_ERR_NOMEM;
    }
    closedir(d);
    return st;
}

static void free_names(char **names, int count) {
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* ---- batches of pieces --------------------------------------------------------------- */

static void encode_batch(pipeline *p) {
    unit *units = p->units;
    int n = p->num_units;
    const ob_tokenizer *tok = p->o->tokenizer;
#pragma omp parallel for schedule(dynamic, 1) num_threads(p->threads)
    for (int i = 0; i < n; i++) {
        units[i].tokens.count = 0;
        units[i].status = ob_tokenizer_encode(tok, units[i].text, units[i].len, false, &units[i].tokens);
        if (units[i].status)
            units[i].message = ob_strdup(ob_last_error());
    }
}

static ob_status write_unit(pipeline *p, unit *u) {
    const ob_input_file *f = &p->inputs.files[u->file];
    if (u->status)
        return ob_error(u->status, "%s: %s", f->path, u->message ? u->message : "encoding failed");
    split_out *s = &p->out[u->val ? 1 : 0];
    ob_status st = OB_OK;
    if (u->first) {
        s->stats->documents++;
        int32_t eos = p->eos;
        st = append_tokens(p, s, &eos, 1);
    }
    if (st == OB_OK)
        st = append_tokens(p, s, u->tokens.ids, u->tokens.count);
    s->stats->text_bytes += u->len;
    s->stats->text_tokens += u->tokens.count;
    return st;
}

static void release_unit(unit *u) {
    free(u->release);
    free(u->message);
    ob_tokens_free(&u->tokens);
    memset(u, 0, sizeof *u);
}

static void update_progress(pipeline *p) {
    if (!p->o->progress)
        return;
    uint64_t done = p->bytes_before_current + (p->reader_open ? ob_doc_reader_offset(&p->reader) : 0);
    char suffix[96];
    snprintf(suffix, sizeof suffix, "%.2fM tokens", (double)(p->stats->train.tokens + p->stats->val.tokens) / 1e6);
    ob_progress_update(&p->progress, done, suffix);
}

static ob_status flush_batch(pipeline *p) {
    if (p->num_units)
        encode_batch(p);
    ob_status st = OB_OK;
    for (int i = 0; i < p->num_units; i++) {
        if (st == OB_OK)
            st = write_unit(p, &p->units[i]);
        release_unit(&p->units[i]);
    }
    p->num_units = 0;
    p->batch_bytes = 0;
    for (int i = 0; i < p->num_retired; i++)
        ob_doc_reader_close(&p->retired[i]);
    p->num_retired = 0;
    update_progress(p);
    return st;
}

static ob_status add_piece(pipeline *p, const ob_piece *piece, bool val) {
    unit *u = &p->units[p->num_units++];
    memset(u, 0, sizeof *u);
    u->text = piece->text;
    u->len = piece->len;
    u->file = p->current_file;
    u->first = piece->first;
    u->val = val;
    u->release = piece->release;
    p->batch_bytes += piece->len;
    if (p->num_units == BATCH_UNITS || p->batch_bytes >= BATCH_BYTES)
        return flush_batch(p);
    return OB_OK;
}

/* The finished reader's mapping must outlive the batch that points into it. */
static ob_status retire_reader(pipeline *p) {
    ob_doc_reader *grown = realloc(p->retired, (size_t)(p->num_retired + 1) * sizeof *grown);
    if (!grown)
        return ob_error(OB_ERR_NOMEM, "out of memory");
    p->retired = grown;
    p->retired[p->num_retired++] = p->reader;
    p->reader_open = false;
    return OB_OK;
}

static ob_status tokenize_text_file(pipeline *p, int index) {
    const ob_input_file *f = &p->inputs.files[index];
    ob_status st = ob_doc_reader_open(&p->reader, f, p->o->doc_split, p->o->text_field);
    if (st)
        return st;
    p->reader_open = true;
    p->current_file = index;
    bool warned = false;
    for (;;) {
        ob_piece piece;
        bool have;
        st = ob_doc_reader_next(&p->reader, &piece, &have);
        if (st || !have)
            break;
        if (piece.unsafe_cut) {
            p->stats->unsafe_cuts++;
            if (!warned)
                ob_log(OB_LOG_WARN, "%s: no safe cut point near byte %llu of a %s; tokens at the cut may differ "
                       "from encoding the document whole", f->path,
                       (unsigned long long)(piece.pos.doc_offset + piece.pos.piece_offset + piece.len),
                       f->format == OB_INPUT_JSONL ? "JSONL document" : "document");
            warned = true;
        }
        bool val = f->force_val || (p->o->num_val_inputs == 0 &&
                                    ob_split_hash_is_val(piece.doc_hash, p->o->seed, p->o->val_fraction));
        if ((st = add_piece(p, &piece, val)))
            break;
    }
    p->stats->skipped_empty_documents += p->reader.skipped_empty;
    if (st) {
        ob_doc_reader_close(&p->reader);
        p->reader_open = false;
        return st;
    }
    return retire_reader(p);
}

/* ---- TKN2 files ---------------------------------------------------------------- */

static ob_status tkn2_max_id(const char *path, uint32_t *max_id) {
    ob_mapping map;
    ob_status st = ob_map_file(path, &map);
    if (st)
        return st;
    ob_token_view view;
    st = ob_tkn2_parse(map.data, map.size, path, &view);
    for (uint64_t i = 0; st == OB_OK && i < view.count; i++) {
        uint32_t id = ob_token_view_get(&view, i);
        if (id > *max_id)
            *max_id = id;
    }
    ob_unmap_file(&map);
    return st;
}

static ob_status convert_tkn2(pipeline *p, int index, int32_t *chunk) {
    const ob_input_file *f = &p->inputs.files[index];
    ob_mapping map;
    ob_status st = ob_map_file(f->path, &map);
    if (st)
        return st;
    ob_token_view view;
    st = ob_tkn2_parse(map.data, map.size, f->path, &view);
    int64_t vocab = p->o->tokenizer ? ob_tokenizer_vocab_size(p->o->tokenizer) : 0;
    uint32_t limit = p->dtype == OB_TOKENS_U16 ? 65535u : 2147483647u;
    split_out *s = &p->out[f->force_val ? 1 : 0];
    if (st == OB_OK && view.count > 0)
        s->stats->documents++;
    for (uint64_t done = 0; st == OB_OK && done < view.count;) {
        size_t n = view.count - done < TKN2_CHUNK ? (size_t)(view.count - done) : TKN2_CHUNK;
        for (size_t i = 0; i < n && st == OB_OK; i++) {
            uint32_t id = ob_token_view_get(&view, done + i);
            if ((vocab > 0 && id >= (uint64_t)vocab) || id > limit)
                st = ob_error(OB_ERR_FORMAT, "%s: token %llu = %u is outside %s", f->path,
                              (unsigned long long)(done + i), id,
                              vocab > 0 && id >= (uint64_t)vocab ? "the tokenizer's vocabulary" : "the shard dtype");
            chunk[i] = (int32_t)id;
        }
        if (st == OB_OK)
            st = append_tokens(p, s, chunk, n);
        done += n;
    }
    ob_unmap_file(&map);
    return st;
}

/* ---- the run ---------------------------------------------------------------------- */

static ob_status check_options(const ob_tokenize_options *o) {
    if (o->num_inputs <= 0)
        return ob_error(OB_ERR_INVALID_ARG, "tokenize: no input files");
    if (!o->output_dir || !*o->output_dir)
        return ob_error(OB_ERR_INVALID_ARG, "tokenize: no output directory");
    if (!o->prefix || !*o->prefix || strchr(o->prefix, '/'))
        return ob_error(OB_ERR_INVALID_ARG, "tokenize: prefix '%s' must be a non-empty file name",
                        o->prefix ? o->prefix : "");
    if (!(o->val_fraction >= 0 && o->val_fraction <= 1))
        return ob_error(OB_ERR_INVALID_ARG, "tokenize: val_fraction = %g is not in [0, 1]", o->val_fraction);
    if (o->shard_tokens < 1 || o->shard_tokens > OB_SHARD_MAX_TOKENS)
        return ob_error(OB_ERR_INVALID_ARG, "tokenize: shard_tokens = %llu is not in [1, %llu]",
                        (unsigned long long)o->shard_tokens, OB_SHARD_MAX_TOKENS);
    return OB_OK;
}

static ob_status choose_dtype(pipeline *p) {
    const ob_tokenize_options *o = p->o;
    if (o->tokenizer) {
        int64_t vocab = ob_tokenizer_vocab_size(o->tokenizer);
        p->dtype = o->dtype == OB_TOKENS_AUTO ? ob_token_dtype_for_vocab(vocab) : o->dtype;
        if (p->dtype == OB_TOKENS_U16 && vocab > 65536)
            return ob_error(OB_ERR_INVALID_ARG, "the tokenizer's vocabulary of %lld tokens does not fit uint16 shards "
                            "(ids up to 65535); use uint32 shards", (long long)vocab);
        return OB_OK;
    }
    /* Only TKN2 inputs: their largest id decides. */
    uint32_t max_id = 0;
    const char *max_file = NULL;
    for (int i = 0; i < p->inputs.count; i++) {
        uint32_t file_max = 0;
        ob_status st = tkn2_max_id(p->inputs.files[i].path, &file_max);
        if (st)
            return st;
        if (file_max >= max_id) {
            max_id = file_max;
            max_file = p->inputs.files[i].path;
        }
    }
    p->dtype = o->dtype == OB_TOKENS_AUTO ? ob_token_dtype_for_vocab((int64_t)max_id + 1) : o->dtype;
    if (p->dtype == OB_TOKENS_U16 && max_id > 65535)
        return ob_error(OB_ERR_INVALID_ARG, "%s: token id %u does not fit uint16 shards (ids up to 65535); use "
                        "uint32 shards", max_file, max_id);
    return OB_OK;
}

static ob_status write_summary(const pipeline *p) {
    char name[512];
    snprintf(name, sizeof name, "%s_summary.json", p->o->prefix);
    char *path = ob_path_join(p->o->output_dir, name);
    cJSON *root = cJSON_CreateObject();
    if (!path || !root) {
        free(path);
        cJSON_Delete(root);
        return ob_error(OB_ERR_NOMEM, "out of memory");
    }
    static const char *const split_names[] = {"file", "blank-line", "eot"};
    cJSON_AddStringToObject(root, "dtype", ob_token_dtype_name(p->dtype));
    cJSON_AddNumberToObject(root, "vocab_size", p->o->tokenizer ? ob_tokenizer_vocab_size(p->o->tokenizer) : 0);
    cJSON_AddNumberToObject(root, "eos_id", p->eos);
    cJSON_AddStringToObject(root, "doc_split", split_names[p->o->doc_split]);
    cJSON_AddNumberToObject(root, "val_fraction", p->o->num_val_inputs ? 0 : p->o->val_fraction);
    cJSON_AddNumberToObject(root, "seed", (double)p->o->seed);
    cJSON_AddNumberToObject(root, "files", (double)p->stats->files);
    for (int i = 0; i < 2; i++) {
        const ob_tokenize_split_stats *s = p->out[i].stats;
        cJSON *o = cJSON_AddObjectToObject(root, p->out[i].name);
        if (!o)
            break;
        cJSON_AddNumberToObject(o, "documents", (double)s->documents);
        cJSON_AddNumberToObject(o, "tokens", (double)s->tokens);
        cJSON_AddNumberToObject(o, "shards", s->shards);
        cJSON_AddNumberToObject(o, "text_bytes", (double)s->text_bytes);
        cJSON_AddNumberToObject(o, "text_tokens", (double)s->text_tokens);
    }
    ob_status st = ob_json_save_file(path, root);
    cJSON_Delete(root);
    free(path);
    return st;
}

static ob_status run(pipeline *p) {
    const ob_tokenize_options *o = p->o;
    ob_status st = ob_inputs_collect(&p->inputs, o->inputs, o->num_inputs, o->format, false);
    if (st == OB_OK && o->num_val_inputs > 0)
        st = ob_inputs_collect(&p->inputs, o->val_inputs, o->num_val_inputs, o->format, true);
    if (st)
        return st;
    bool has_text = false;
    for (int i = 0; i < p->inputs.count; i++)
        has_text |= p->inputs.files[i].format != OB_INPUT_TKN2;
    if (has_text && !o->tokenizer)
        return ob_error(OB_ERR_INVALID_ARG, "tokenize: text input %s needs a tokenizer", p->inputs.files[0].path);
    p->eos = o->tokenizer ? ob_tokenizer_eos_id(o->tokenizer) : -1;
    if (has_text && p->eos < 0)
        return ob_error(OB_ERR_INVALID_ARG, "tokenize: the tokenizer has no end-of-text token to separate documents");
    if ((st = choose_dtype(p)))
        return st;
    /* Once the inputs look usable, the replaced shards go, so that neither a
     * finished nor a failed run leaves a dataset that mixes two runs. */
    for (int i = 0; i < p->num_replaced; i++)
        if (unlink(p->replaced[i]) != 0)
            return ob_error(OB_ERR_IO, "%s: cannot remove: %s", p->replaced[i], strerror(errno));
    p->stats->dtype = p->dtype;
    p->stats->files = (uint64_t)p->inputs.count;
    if ((st = ob_mkdirs(o->output_dir)))
        return st;
    p->units = ob_calloc(BATCH_UNITS, sizeof *p->units);
    int32_t *chunk = ob_malloc(TKN2_CHUNK * sizeof *chunk);
    if (!p->units || !chunk) {
        free(chunk);
        return OB_ERR_NOMEM;
    }
    if (o->progress)
        ob_progress_begin(&p->progress, stderr, "tokenize", p->inputs.total_bytes, "B");
    for (int i = 0; i < p->inputs.count && st == OB_OK; i++) {
        const ob_input_file *f = &p->inputs.files[i];
        if (f->format == OB_INPUT_TKN2) {
            st = flush_batch(p); /* keep the output in input order */
            if (st == OB_OK)
                st = convert_tkn2(p, i, chunk);
        } else {
            st = tokenize_text_file(p, i);
        }
        p->bytes_before_current += f->size;
    }
    if (st == OB_OK)
        st = flush_batch(p);
    free(chunk);
    for (int i = 0; i < 2 && st == OB_OK; i++)
        if (p->out[i].writer && ob_shard_writer_count(p->out[i].writer) > 0)
            st = close_shard(p, &p->out[i]);
    if (st == OB_OK)
        st = write_summary(p);
    if (o->progress) {
        char suffix[96];
        snprintf(suffix, sizeof suffix, "%.2fM tokens", (double)(p->stats->train.tokens + p->stats->val.tokens) / 1e6);
        ob_progress_end(&p->progress, suffix);
    }
    return st;
}

static void cleanup(pipeline *p, bool failed) {
    for (int i = 0; i < p->num_units; i++)
        release_unit(&p->units[i]);
    free(p->units);
    for (int i = 0; i < p->num_retired; i++)
        ob_doc_reader_close(&p->retired[i]);
    free(p->retired);
    if (p->reader_open)
        ob_doc_reader_close(&p->reader);
    for (int i = 0; i < 2; i++)
        ob_shard_writer_abort(p->out[i].writer);
    for (int i = 0; i < p->num_written; i++) {
        if (failed)
            unlink(p->written[i]);
        free(p->written[i]);
    }
    free(p->written);
    ob_inputs_free(&p->inputs);
}

ob_status ob_tokenize(const ob_tokenize_options *opts, ob_tokenize_stats *stats) {
    memset(stats, 0, sizeof *stats);
    ob_status st = check_options(opts);
    if (st)
        return st;
    pipeline p = {.o = opts, .stats = stats};
    p.threads = opts->threads > 0 ? opts->threads : omp_get_max_threads();
    stats->threads = p.threads;
    p.out[0] = (split_out){.name = "train", .stats = &stats->train};
    p.out[1] = (split_out){.name = "val", .stats = &stats->val};
    char **old = NULL;
    int num_old = 0;
    st = existing_shards(&p, &old, &num_old);
    if (st == OB_OK && num_old > 0 && !opts->force)
        st = ob_error(OB_ERR_INVALID_ARG, "%s: already holds shards of prefix '%s' (%s%s); use --force to replace them",
                      opts->output_dir, opts->prefix, old[0], num_old > 1 ? ", ..." : "");
    p.replaced = old;
    p.num_replaced = num_old;
    double start = ob_now();
    if (st == OB_OK)
        st = run(&p);
    free_names(old, num_old);
    stats->seconds = ob_now() - start;
    cleanup(&p, st != OB_OK);
    return st;
}
