/* Input files and documents. A document is a file, a JSONL line, or (when asked)
 * a blank-line- or "<|endoftext|>"-separated part of a text file. Documents
 * longer than OB_PIECE_BYTES are handed out in pieces, cut only where GPT-2
 * style pre-tokenization cannot join the bytes on both sides of the cut, so that
 * encoding the pieces one by one (in parallel, or as a stream) gives the same
 * tokens as encoding the whole document. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/documents.h"
#include "onebit/json.h"

enum { MAX_DIR_DEPTH = 64 };

/* ---- hashing and the split rule -------------------------------------------- */

uint64_t ob_fnv1a64(const char *text, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)text[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

bool ob_split_hash_is_val(uint64_t doc_hash, uint64_t seed, double val_fraction) {
    if (val_fraction <= 0)
        return false;
    double u = (double)(mix64(doc_hash ^ mix64(seed)) >> 11) * 0x1.0p-53;
    return u < val_fraction;
}

bool ob_split_is_val(const char *text, size_t len, uint64_t seed, double val_fraction) {
    return ob_split_hash_is_val(ob_fnv1a64(text, len), seed, val_fraction);
}

/* ---- collecting input files --------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static ob_status add_file(ob_input_list *list, const char *path, ob_input_format format, bool force_val) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ob_error(OB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ob_error(OB_ERR_IO, "%s: not a regular file", path);
    }
    char magic[4] = {0};
    ssize_t got = read(fd, magic, sizeof magic);
    int err = errno;
    close(fd);
    if (got < 0)
        return ob_error(OB_ERR_IO, "%s: cannot read: %s", path, strerror(err));
    if (st.st_size == 0)
        return ob_error(OB_ERR_FORMAT, "%s: empty file", path);
    if (format == OB_INPUT_AUTO) {
        if (ends_with(path, ".jsonl"))
            format = OB_INPUT_JSONL;
        else if (ends_with(path, ".tokens") || (got == 4 && memcmp(magic, "TKN2", 4) == 0))
            format = OB_INPUT_TKN2;
        else
            format = OB_INPUT_TEXT;
    }
    if (list->count == list->capacity) {
        int cap = list->capacity ? list->capacity * 2 : 16;
        ob_input_file *grown = realloc(list->files, (size_t)cap * sizeof *grown);
        if (!grown)
            return ob_error(OB_ERR_NOMEM, "out of memory listing inputs");
        list->files = grown;
        list->capacity = cap;
    }
    ob_input_file *f = &list->files[list->count];
    f->path = ob_strdup(path);
    if (!f->path)
        return OB_ERR_NOMEM;
    f->format = format;
    f->size = (uint64_t)st.st_size;
    f->force_val = force_val;
    list->count++;
    list->total_bytes += f->size;
    return OB_OK;
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static ob_status add_path(ob_input_list *list, const char *path, ob_input_format format, bool force_val, int depth);

static ob_status add_directory(ob_input_list *list, const char *dir, ob_input_format format, bool force_val,
                               int depth) {
    if (depth > MAX_DIR_DEPTH)
        return ob_error(OB_ERR_INVALID_ARG, "%s: directories nested more than %d deep (a link loop?)", dir,
                        MAX_DIR_DEPTH);
    DIR *d = opendir(dir);
    if (!d)
        return ob_error(OB_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    char **names = NULL;
    size_t count = 0, capacity = 0;
    ob_status st = OB_OK;
    struct dirent *e;
    while ((e = readdir(d)) && st == OB_OK) {
        if (e->d_name[0] == '.')
            continue;
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 64;
            char **grown = realloc(names, capacity * sizeof *names);
            if (!grown) {
                st = ob_error(OB_ERR_NOMEM, "out of memory listing %s", dir);
                break;
            }
            names = grown;
        }
        names[count] = ob_strdup(e->d_name);
        if (!names[count])
            st = OB_ERR_NOMEM;
        else
            count++;
    }
    closedir(d);
    if (names)
        qsort(names, count, sizeof *names, compare_names);
    for (size_t i = 0; i < count && st == OB_OK; i++) {
        char *child = ob_path_join(dir, names[i]);
        st = child ? add_path(list, child, format, force_val, depth + 1) : OB_ERR_NOMEM;
        free(child);
    }
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return st;
}

static ob_status add_path(ob_input_list *list, const char *path, ob_input_format format, bool force_val, int depth) {
    struct stat st;
    if (stat(path, &st) != 0)
        return ob_error(OB_ERR_NOT_FOUND, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return add_directory(list, path, format, force_val, depth);
    if (!S_ISREG(st.st_mode)) {
        if (depth > 0)
            return OB_OK; /* sockets, fifos and devices inside a directory are not inputs */
        return ob_error(OB_ERR_IO, "%s: not a regular file", path);
    }
    return add_file(list, path, format, force_val);
}

ob_status ob_inputs_collect(ob_input_list *list, const char *const *paths, int num_paths, ob_input_format format,
                            bool force_val) {
    for (int i = 0; i < num_paths; i++) {
        int before = list->count;
        ob_status st = add_path(list, paths[i], format, force_val, 0);
        if (st)
            return st;
        if (list->count == before)
            return ob_error(OB_ERR_NOT_FOUND, "%s: no input files in this directory", paths[i]);
    }
    return OB_OK;
}

void ob_inputs_free(ob_input_list *list) {
    for (int i = 0; i < list->count; i++)
        free(list->files[i].path);
    free(list->files);
    memset(list, 0, sizeof *list);
}

/* ---- binary detection ---------------------------------------------------------- */

static ob_status check_text(const char *path, const char *data, size_t size) {
    const char *nul = memchr(data, '\0', size);
    if (nul)
        return ob_error(OB_ERR_FORMAT, "%s: binary data (a NUL byte at offset %zu), not text", path,
                        (size_t)(nul - data));
    /* Count invalid bytes, resynchronising after each; a few (a stray Latin-1
     * byte) are encoded as raw bytes, many mean this is not UTF-8 text. */
    size_t limit = size / 100 > 8 ? size / 100 : 8;
    size_t invalid = 0, first_bad = 0, pos = 0, bad = 0;
    while (pos < size && !ob_utf8_valid(data + pos, size - pos, &bad)) {
        if (invalid == 0)
            first_bad = pos + bad;
        invalid++;
        pos += bad + 1;
        if (invalid > limit)
            return ob_error(OB_ERR_FORMAT,
                            "%s: not UTF-8 text (more than %zu invalid bytes, the first at offset %zu); convert it "
                            "to UTF-8 (iconv) or check that it is text",
                            path, limit, first_bad);
    }
    if (invalid)
        ob_log(OB_LOG_WARN, "%s: %zu bytes are not valid UTF-8 (the first at offset %zu); they are encoded as raw "
               "bytes", path, invalid, first_bad);
    return OB_OK;
}

/* ---- the reader ------------------------------------------------------------------ */

ob_status ob_doc_reader_open(ob_doc_reader *r, const ob_input_file *file, ob_doc_split split, const char *text_field) {
    memset(r, 0, sizeof *r);
    if (file->format == OB_INPUT_TKN2)
        return ob_error(OB_ERR_INVALID_ARG, "%s: a TKN2 token file, not text", file->path);
    r->file = file;
    r->split = split;
    r->text_field = text_field ? text_field : "text";
    r->eot = "<|endoftext|>";
    r->piece_bytes = OB_PIECE_BYTES;
    ob_status st = ob_map_file(file->path, &r->map);
    if (st)
        return st;
    r->data = r->map.data;
    r->size = r->map.size;
    if (r->size == 0)
        st = ob_error(OB_ERR_FORMAT, "%s: empty file", file->path);
    if (st == OB_OK)
        st = check_text(file->path, r->data, r->size);
    if (st)
        ob_unmap_file(&r->map);
    return st;
}

void ob_doc_reader_close(ob_doc_reader *r) {
    free(r->doc_owned);
    ob_unmap_file(&r->map);
    memset(r, 0, sizeof *r);
}

uint64_t ob_doc_reader_offset(const ob_doc_reader *r) {
    if (r->active && r->file->format == OB_INPUT_TEXT)
        return r->doc_pos.doc_offset + r->piece_pos;
    return r->pos;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_graph(char c) { return c > ' ' && c < 0x7f; }

/* A cut before byte p is safe when no GPT-2 pre-token can contain both t[p-1]
 * and t[p], and no pre-token's lookahead looks across p:
 *  - "x y" between ASCII letters: the letter run ends at the space and " y"
 *    starts a new pre-token (" ?\p{L}+");
 *  - after a newline that follows and precedes printable ASCII ("x\nY"): the
 *    newline is a pre-token of its own, in the whole text and at a chunk's end. */
static bool is_safe_cut(const char *t, size_t len, size_t p) {
    if (p < 2 || p + 1 >= len)
        return false;
    if (t[p] == ' ' && is_alpha(t[p - 1]) && is_alpha(t[p + 1]))
        return true;
    return t[p - 1] == '\n' && is_graph(t[p - 2]) && is_graph(t[p]);
}

static size_t next_cut(const char *t, size_t len, size_t from, size_t piece, bool *unsafe) {
    *unsafe = false;
    if (len - from <= piece)
        return len;
    size_t target = from + piece;
    if (len - target <= piece)
        return len;
    for (size_t p = target; p < target + piece; p++)
        if (is_safe_cut(t, len, p))
            return p;
    /* No safe point in a piece's length (a line of symbols, a script without spaces):
     * cut at a character boundary and count it. */
    size_t p = target;
    while (p > from + 1 && ((uint8_t)t[p] & 0xC0) == 0x80)
        p--;
    *unsafe = true;
    return p;
}

static void trim_trailing(const char *t, size_t start, size_t *end) {
    while (*end > start && is_space(t[*end - 1]))
        (*end)--;
}

/* Blank line: a newline, optional spaces, tabs or CRs, and another newline. */
static size_t find_blank_line(const char *t, size_t from, size_t size, size_t *after) {
    for (size_t i = from; i < size;) {
        const char *nl = memchr(t + i, '\n', size - i);
        if (!nl)
            break;
        size_t j = (size_t)(nl - t) + 1;
        while (j < size && (t[j] == ' ' || t[j] == '\t' || t[j] == '\r'))
            j++;
        if (j < size && t[j] == '\n') {
            *after = j + 1;
            return (size_t)(nl - t);
        }
        i = (size_t)(nl - t) + 1;
    }
    *after = size;
    return size;
}

static ob_status load_jsonl_doc(ob_doc_reader *r, bool *found) {
    while (r->pos < r->size) {
        size_t start = r->pos;
        const char *nl = memchr(r->data + start, '\n', r->size - start);
        size_t end = nl ? (size_t)(nl - r->data) : r->size;
        r->pos = nl ? end + 1 : r->size;
        r->line++;
        bool blank = true;
        for (size_t i = start; i < end && blank; i++)
            blank = is_space(r->data[i]);
        if (blank)
            continue;
        char source[4200];
        snprintf(source, sizeof source, "%s:%llu", r->file->path, (unsigned long long)r->line);
        cJSON *root;
        ob_status st = ob_json_parse(r->data + start, end - start, source, &root);
        if (st)
            return st;
        const cJSON *field = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, r->text_field) : NULL;
        if (!cJSON_IsObject(root))
            st = ob_error(OB_ERR_FORMAT, "%s: %s, expected an object with a \"%s\" field", source,
                          ob_json_type_name(root), r->text_field);
        else if (!field)
            st = ob_error(OB_ERR_FORMAT, "%s: no field \"%s\" (set the field with --text-field)", source,
                          r->text_field);
        else if (!cJSON_IsString(field))
            st = ob_error(OB_ERR_FORMAT, "%s: field \"%s\" is %s, expected a string", source, r->text_field,
                          ob_json_type_name(field));
        char *text = st ? NULL : ob_strdup(field->valuestring);
        cJSON_Delete(root);
        if (st)
            return st;
        if (!text)
            return OB_ERR_NOMEM;
        if (!*text) {
            free(text);
            r->skipped_empty++;
            continue;
        }
        r->doc_owned = text;
        r->doc = text;
        r->doc_len = strlen(text);
        r->doc_pos = (ob_doc_pos){.doc_offset = start, .line = r->line};
        *found = true;
        return OB_OK;
    }
    return OB_OK;
}

static ob_status load_text_doc(ob_doc_reader *r, bool *found) {
    const char *t = r->data;
    if (r->split == OB_DOC_SPLIT_FILE) {
        if (r->pos != 0)
            return OB_OK;
        r->doc = t;
        r->doc_len = r->size;
        r->doc_pos = (ob_doc_pos){0};
        r->pos = r->size;
        *found = true;
        return OB_OK;
    }
    while (r->pos < r->size) {
        while (r->pos < r->size && is_space(t[r->pos]))
            r->pos++;
        if (r->pos == r->size)
            break;
        size_t start = r->pos, end, after;
        if (r->split == OB_DOC_SPLIT_BLANK_LINE) {
            end = find_blank_line(t, start, r->size, &after);
        } else {
            size_t sep = strlen(r->eot);
            const char *hit = memmem(t + start, r->size - start, r->eot, sep);
            end = hit ? (size_t)(hit - t) : r->size;
            after = hit ? end + sep : r->size;
        }
        r->pos = after;
        trim_trailing(t, start, &end);
        if (end == start) {
            r->skipped_empty++; /* "<|endoftext|>" twice in a row */
            continue;
        }
        r->doc = t + start;
        r->doc_len = end - start;
        r->doc_pos = (ob_doc_pos){.doc_offset = start};
        *found = true;
        return OB_OK;
    }
    return OB_OK;
}

static ob_status load_doc(ob_doc_reader *r, bool *found) {
    *found = false;
    ob_status st = r->file->format == OB_INPUT_JSONL ? load_jsonl_doc(r, found) : load_text_doc(r, found);
    if (st || !*found)
        return st;
    r->active = true;
    r->piece_pos = 0;
    r->doc_hash = ob_fnv1a64(r->doc, r->doc_len);
    return OB_OK;
}

ob_status ob_doc_reader_next(ob_doc_reader *r, ob_piece *piece, bool *have) {
    memset(piece, 0, sizeof *piece);
    *have = false;
    if (!r->active) {
        bool found;
        ob_status st = load_doc(r, &found);
        if (st || !found)
            return st;
    }
    bool unsafe;
    size_t end = next_cut(r->doc, r->doc_len, r->piece_pos, r->piece_bytes, &unsafe);
    piece->text = r->doc + r->piece_pos;
    piece->len = end - r->piece_pos;
    piece->first = r->piece_pos == 0;
    piece->last = end == r->doc_len;
    piece->doc_hash = r->doc_hash;
    piece->pos = r->doc_pos;
    piece->pos.piece_offset = r->piece_pos;
    piece->unsafe_cut = unsafe;
    r->piece_pos = end;
    if (piece->last) {
        piece->release = r->doc_owned;
        r->doc_owned = NULL;
        r->active = false;
    }
    *have = true;
    return OB_OK;
}

ob_status ob_doc_reader_seek(ob_doc_reader *r, const ob_doc_pos *pos) {
    free(r->doc_owned);
    r->doc_owned = NULL;
    r->active = false;
    if (pos->doc_offset >= r->size || (r->file->format == OB_INPUT_JSONL && pos->line == 0))
        return ob_error(OB_ERR_FORMAT, "%s: cursor offset %llu is past the file's %zu bytes (changed input?)",
                        r->file->path, (unsigned long long)pos->doc_offset, r->size);
    r->pos = pos->doc_offset;
    r->line = pos->line ? pos->line - 1 : 0;
    bool found;
    ob_status st = load_doc(r, &found);
    if (st)
        return ob_error_context(st, "resuming %s at byte %llu", r->file->path, (unsigned long long)pos->doc_offset);
    if (!found || r->doc_pos.doc_offset != pos->doc_offset)
        return ob_error(OB_ERR_FORMAT, "%s: no document starts at byte %llu (changed input?)", r->file->path,
                        (unsigned long long)pos->doc_offset);
    while (r->piece_pos < pos->piece_offset && r->piece_pos < r->doc_len) {
        bool unsafe;
        r->piece_pos = next_cut(r->doc, r->doc_len, r->piece_pos, r->piece_bytes, &unsafe);
    }
    if (r->piece_pos != pos->piece_offset || r->piece_pos >= r->doc_len)
        return ob_error(OB_ERR_FORMAT, "%s: no piece starts at byte %llu of the document at byte %llu (changed input?)",
                        r->file->path, (unsigned long long)pos->piece_offset, (unsigned long long)pos->doc_offset);
    return OB_OK;
}
