/* The streaming batch source: raw text tokenized while batches are drawn. The
 * token buffer holds only what the next batch needs plus one piece of text;
 * windows overlap by one token (the last target of a window is the first input
 * of the next), so the windows of consecutive batches tile the token stream
 * with nothing dropped. The cursor names the piece of text that produced the
 * first buffered token and how many of its tokens were consumed: restoring
 * re-reads and re-encodes from there. */
#include <stdlib.h>
#include <string.h>

#include "data/batch_source.h"
#include "data/documents.h"
#include "onebit/json.h"

/* The tokens of one piece, as they sit in the buffer. */
typedef struct span {
    int file;
    ob_doc_pos pos;
    uint64_t pass;
    size_t tokens;
} span;

typedef struct stream_source {
    ob_batch_source base;
    ob_stream_options opts;
    const ob_tokenizer *tok;
    int eos;
    ob_input_list inputs;
    /* reading side */
    int file;              /* file the reader is on */
    bool reader_open;
    ob_doc_reader reader;
    uint64_t pass;         /* pass the reader is in */
    uint64_t pass_tokens;  /* tokens produced in this pass so far */
    bool exhausted;        /* non-looping: the reader reached the end */
    /* buffer: buf.ids[0] is the first unconsumed token */
    ob_tokens buf;
    span *spans;
    size_t num_spans, span_capacity;
    size_t head_skip;      /* tokens of spans[0] consumed */
    uint64_t *file_starts; /* byte offset of each file in a pass, for epoch fractions */
} stream_source;

static bool keep_document(const stream_source *s, const ob_input_file *f, uint64_t doc_hash) {
    if (s->opts.split == OB_SPLIT_ALL)
        return true;
    bool val = f->force_val || ob_split_hash_is_val(doc_hash, s->opts.split_seed, s->opts.val_fraction);
    return val == (s->opts.split == OB_SPLIT_VAL);
}

static void close_reader(stream_source *s) {
    if (s->reader_open)
        ob_doc_reader_close(&s->reader);
    s->reader_open = false;
}

static ob_status open_reader(stream_source *s, int file) {
    close_reader(s);
    s->file = file;
    ob_status st = ob_doc_reader_open(&s->reader, &s->inputs.files[file], s->opts.doc_split, s->opts.text_field);
    s->reader_open = st == OB_OK;
    return st;
}

static ob_status push_span(stream_source *s, const span *sp) {
    if (s->num_spans == s->span_capacity) {
        size_t cap = s->span_capacity ? s->span_capacity * 2 : 64;
        span *grown = realloc(s->spans, cap * sizeof *grown);
        if (!grown)
            return ob_error(OB_ERR_NOMEM, "out of memory in the text stream");
        s->spans = grown;
        s->span_capacity = cap;
    }
    s->spans[s->num_spans++] = *sp;
    return OB_OK;
}

/* Reads and encodes one piece; *end_of_pass when every file is done. */
static ob_status read_piece(stream_source *s, bool *end_of_pass) {
    *end_of_pass = false;
    for (;;) {
        if (!s->reader_open) {
            if (s->file >= s->inputs.count) {
                *end_of_pass = true;
                return OB_OK;
            }
            ob_status st = open_reader(s, s->file);
            if (st)
                return st;
        }
        ob_piece piece;
        bool have;
        ob_status st = ob_doc_reader_next(&s->reader, &piece, &have);
        if (st)
            return st;
        if (!have) {
            close_reader(s);
            s->file++;
            continue;
        }
        if (!keep_document(s, &s->inputs.files[s->file], piece.doc_hash)) {
            free(piece.release);
            continue;
        }
        size_t before = s->buf.count;
        if (piece.first)
            st = ob_tokens_push(&s->buf, s->eos);
        if (st == OB_OK)
            st = ob_tokenizer_encode(s->tok, piece.text, piece.len, false, &s->buf);
        free(piece.release);
        if (st)
            return ob_error_context(st, "%s", s->inputs.files[s->file].path);
        span sp = {.file = s->file, .pos = piece.pos, .pass = s->pass, .tokens = s->buf.count - before};
        s->pass_tokens += sp.tokens;
        return push_span(s, &sp);
    }
}

/* Fills the buffer to `need` tokens, or as far as a non-looping pass goes. */
static ob_status refill(stream_source *s, size_t need) {
    while (s->buf.count < need && !s->exhausted) {
        bool end_of_pass;
        ob_status st = read_piece(s, &end_of_pass);
        if (st)
            return st;
        if (!end_of_pass)
            continue;
        if (s->pass_tokens == 0)
            return ob_error(OB_ERR_INVALID_ARG, "streamed inputs (%s%s) hold no %sdocuments", s->inputs.files[0].path,
                            s->inputs.count > 1 ? ", ..." : "",
                            s->opts.split == OB_SPLIT_VAL ? "validation " : s->opts.split == OB_SPLIT_TRAIN ? "training " : "");
        if (!s->opts.loop) {
            s->exhausted = true;
            break;
        }
        s->pass++;
        s->pass_tokens = 0;
        s->file = 0;
    }
    return OB_OK;
}

static void consume(stream_source *s, size_t n) {
    memmove(s->buf.ids, s->buf.ids + n, (s->buf.count - n) * sizeof *s->buf.ids);
    s->buf.count -= n;
    s->head_skip += n;
    size_t popped = 0;
    while (popped < s->num_spans && s->head_skip >= s->spans[popped].tokens) {
        s->head_skip -= s->spans[popped].tokens;
        popped++;
    }
    memmove(s->spans, s->spans + popped, (s->num_spans - popped) * sizeof *s->spans);
    s->num_spans -= popped;
}

static void restart(stream_source *s, uint64_t pass) {
    close_reader(s);
    s->file = 0;
    s->pass = pass;
    s->pass_tokens = 0;
    s->exhausted = false;
    s->buf.count = 0;
    s->num_spans = 0;
    s->head_skip = 0;
}

static ob_status stream_next(ob_batch_source *src, int B, int T, int32_t *inputs, int32_t *targets,
                             ob_batch_rows *info) {
    stream_source *s = (stream_source *)src;
    int64_t global = (int64_t)B * src->world;
    size_t need = (size_t)global * (size_t)T + 1;
    ob_status st = refill(s, need);
    if (st)
        return st;
    if (s->buf.count < need) {
        int64_t windows = s->buf.count > 0 ? (int64_t)((s->buf.count - 1) / (size_t)T) : 0;
        if (windows == 0) {
            restart(s, s->pass + 1);
            info->end = true;
            return OB_OK;
        }
        global = windows;
    }
    int rows = ob_batch_rank_rows(src, B, global);
    for (int j = 0; j < rows; j++) {
        const int32_t *w = s->buf.ids + ((size_t)src->rank * (size_t)B + (size_t)j) * (size_t)T;
        memcpy(inputs + (size_t)j * T, w, (size_t)T * sizeof *w);
        memcpy(targets + (size_t)j * T, w + 1, (size_t)T * sizeof *w);
    }
    consume(s, (size_t)global * (size_t)T);
    info->rows = rows;
    info->global_rows = (int)global;
    return OB_OK;
}

static double stream_epoch(const ob_batch_source *src) {
    const stream_source *s = (const stream_source *)src;
    if (s->num_spans == 0)
        return (double)s->pass;
    const span *head = &s->spans[0];
    double offset = (double)(s->file_starts[head->file] + head->pos.doc_offset + head->pos.piece_offset);
    return (double)head->pass + offset / (double)s->inputs.total_bytes;
}

static ob_status stream_save(const ob_batch_source *src, cJSON *cursor) {
    const stream_source *s = (const stream_source *)src;
    const span *head = s->num_spans ? &s->spans[0] : NULL;
    ob_status st = ob_cursor_put_int(cursor, "files", s->inputs.count);
    if (st == OB_OK)
        st = ob_cursor_put_int(cursor, "pass", (int64_t)(head ? head->pass : s->pass));
    if (st == OB_OK && !cJSON_AddBoolToObject(cursor, "at_start", head == NULL))
        st = ob_error(OB_ERR_NOMEM, "out of memory saving a cursor");
    if (st || !head)
        return st;
    const ob_input_file *f = &s->inputs.files[head->file];
    st = ob_cursor_put_int(cursor, "file", head->file);
    if (st == OB_OK && !cJSON_AddStringToObject(cursor, "path", f->path))
        st = ob_error(OB_ERR_NOMEM, "out of memory saving a cursor");
    if (st == OB_OK)
        st = ob_cursor_put_int(cursor, "size", (int64_t)f->size);
    if (st == OB_OK)
        st = ob_cursor_put_int(cursor, "doc_offset", (int64_t)head->pos.doc_offset);
    if (st == OB_OK)
        st = ob_cursor_put_int(cursor, "piece_offset", (int64_t)head->pos.piece_offset);
    if (st == OB_OK)
        st = ob_cursor_put_int(cursor, "line", (int64_t)head->pos.line);
    if (st == OB_OK)
        st = ob_cursor_put_int(cursor, "skip", (int64_t)s->head_skip);
    return st;
}

static ob_status stream_restore(ob_batch_source *src, const cJSON *cursor, const char *source) {
    stream_source *s = (stream_source *)src;
    uint64_t files = 0, pass = 0;
    bool at_start = false, present = false;
    ob_status st = ob_cursor_get_count(cursor, "files", source, &files);
    if (st == OB_OK)
        st = ob_cursor_get_count(cursor, "pass", source, &pass);
    if (st == OB_OK)
        st = ob_json_get_bool(cursor, "at_start", source, &at_start, &present);
    if (st)
        return st;
    if (!present)
        return ob_error(OB_ERR_FORMAT, "%s: field 'at_start' is missing", source);
    if (files != (uint64_t)s->inputs.count)
        return ob_error(OB_ERR_FORMAT, "%s: the cursor was saved over %llu input files, this stream has %d", source,
                        (unsigned long long)files, s->inputs.count);
    restart(s, pass);
    if (at_start)
        return OB_OK;
    uint64_t file = 0, size = 0, skip = 0;
    ob_doc_pos pos = {0};
    const char *path = NULL;
    st = ob_cursor_get_count(cursor, "file", source, &file);
    if (st == OB_OK)
        st = ob_json_get_string(cursor, "path", source, &path, NULL);
    if (st == OB_OK)
        st = ob_cursor_get_count(cursor, "size", source, &size);
    if (st == OB_OK)
        st = ob_cursor_get_count(cursor, "doc_offset", source, &pos.doc_offset);
    if (st == OB_OK)
        st = ob_cursor_get_count(cursor, "piece_offset", source, &pos.piece_offset);
    if (st == OB_OK)
        st = ob_cursor_get_count(cursor, "line", source, &pos.line);
    if (st == OB_OK)
        st = ob_cursor_get_count(cursor, "skip", source, &skip);
    if (st)
        return st;
    if (file >= files)
        return ob_error(OB_ERR_FORMAT, "%s: field 'file' = %llu is not below 'files' = %llu", source,
                        (unsigned long long)file, (unsigned long long)files);
    const ob_input_file *f = &s->inputs.files[file];
    if (!path || strcmp(path, f->path) != 0 || size != f->size)
        return ob_error(OB_ERR_FORMAT, "%s: the cursor points into %s (%llu bytes), but input %llu is %s (%llu bytes)",
                        source, path ? path : "(no path)", (unsigned long long)size, (unsigned long long)file,
                        f->path, (unsigned long long)f->size);
    st = open_reader(s, (int)file);
    if (st == OB_OK)
        st = ob_doc_reader_seek(&s->reader, &pos);
    /* The named piece alone (all its tokens land in the buffer): a 'skip' past
     * its end is refused before anything else is read. */
    if (st == OB_OK)
        st = refill(s, 1);
    if (st == OB_OK && (s->num_spans == 0 || s->spans[0].tokens <= skip))
        st = ob_error(OB_ERR_FORMAT, "%s: field 'skip' = %llu is past the tokens of the piece it names (changed "
                      "input or tokenizer?)", source, (unsigned long long)skip);
    if (st) {
        restart(s, pass);
        return st;
    }
    consume(s, (size_t)skip);
    return OB_OK;
}

static void stream_destroy(ob_batch_source *src) {
    stream_source *s = (stream_source *)src;
    close_reader(s);
    ob_inputs_free(&s->inputs);
    ob_tokens_free(&s->buf);
    free(s->spans);
    free(s->file_starts);
    free(s);
}

static const ob_batch_source_ops stream_ops = {
    .kind = "stream",
    .next = stream_next,
    .epoch = stream_epoch,
    .save = stream_save,
    .restore = stream_restore,
    .destroy = stream_destroy,
};

ob_status ob_batch_source_stream(const ob_stream_options *opts, const ob_tokenizer *tok, int rank, int world,
                                 ob_batch_source **out) {
    *out = NULL;
    if (!tok)
        return ob_error(OB_ERR_INVALID_ARG, "streaming text needs a tokenizer");
    if (ob_tokenizer_eos_id(tok) < 0)
        return ob_error(OB_ERR_INVALID_ARG, "the tokenizer has no end-of-text token to separate documents with");
    if (opts->val_fraction < 0 || opts->val_fraction > 1)
        return ob_error(OB_ERR_INVALID_ARG, "val_fraction = %g is not in [0, 1]", opts->val_fraction);
    stream_source *s = ob_calloc(1, sizeof *s);
    if (!s)
        return OB_ERR_NOMEM;
    ob_status st = ob_batch_source_init(&s->base, &stream_ops, rank, world);
    if (st) {
        free(s);
        return st;
    }
    s->opts = *opts;
    s->tok = tok;
    s->eos = ob_tokenizer_eos_id(tok);
    s->base.ends = !opts->loop;
    st = ob_inputs_collect(&s->inputs, opts->inputs, opts->num_inputs, opts->format, false);
    if (st == OB_OK && s->inputs.count == 0)
        st = ob_error(OB_ERR_INVALID_ARG, "streaming text needs at least one input");
    for (int i = 0; st == OB_OK && i < s->inputs.count; i++)
        if (s->inputs.files[i].format == OB_INPUT_TKN2)
            st = ob_error(OB_ERR_INVALID_ARG, "%s: a TKN2 token file cannot be streamed as text; convert it to shards "
                          "with onebit tokenize", s->inputs.files[i].path);
    if (st == OB_OK) {
        s->file_starts = ob_calloc((size_t)s->inputs.count, sizeof *s->file_starts);
        if (!s->file_starts)
            st = OB_ERR_NOMEM;
        for (int i = 1; st == OB_OK && i < s->inputs.count; i++)
            s->file_starts[i] = s->file_starts[i - 1] + s->inputs.files[i - 1].size;
    }
    if (st) {
        stream_destroy(&s->base);
        return st;
    }
    snprintf(s->base.description, sizeof s->base.description, "text stream over %d file%s (%s%s), %.1f MB",
             s->inputs.count, s->inputs.count == 1 ? "" : "s", s->inputs.files[0].path,
             s->inputs.count > 1 ? ", ..." : "", (double)s->inputs.total_bytes / 1e6);
    *out = &s->base;
    return OB_OK;
}
