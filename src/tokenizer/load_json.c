/* Loading a Hugging Face tokenizer.json: a BPE model with a ByteLevel
 * pre-tokenizer and decoder, plus added and special tokens. Every field is
 * checked for type and range before use; messages name the file and the field
 * ("tokenizer.json: model.merges[17] = "a b": 'b' is not in model.vocab").
 * Features we do not implement (normalizers, other models, stripping added
 * tokens) are refused by name rather than ignored, because ignoring them would
 * encode differently from the library that wrote the file. */
#include <stdlib.h>
#include <string.h>

#include "onebit/json.h"
#include "tokenizer/tok_internal.h"

/* Where each id came from while the vocabulary is gathered. */
typedef struct id_entry {
    const char *vocab_key; /* model.vocab spelling, or NULL */
    const cJSON *added;    /* added_tokens element, or NULL */
} id_entry;

static const char *type_field(const cJSON *obj) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

/* section must be null/absent or an object of one of the allowed types. */
static ob_status check_component(const cJSON *root, const char *field, const char *source, bool null_ok,
                                 const char *allowed) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!c || cJSON_IsNull(c)) {
        if (null_ok)
            return OB_OK;
        return ob_error(OB_ERR_UNSUPPORTED, "%s: field '%s' is null; a byte-level BPE tokenizer needs type \"%s\"",
                        source, field, allowed);
    }
    if (!cJSON_IsObject(c))
        return ob_error(OB_ERR_FORMAT, "%s: field '%s' must be an object or null, found %s", source, field,
                        ob_json_type_name(c));
    const char *type = type_field(c);
    if (!type)
        return ob_error(OB_ERR_FORMAT, "%s: field '%s.type' must be a string", source, field);
    if (!allowed || strcmp(type, allowed) != 0)
        return ob_error(OB_ERR_UNSUPPORTED, "%s: field '%s.type' = \"%s\" is not supported (only %s%s%s)", source,
                        field, type, allowed ? "\"" : "null", allowed ? allowed : "", allowed ? "\"" : "");
    return OB_OK;
}

static ob_status check_model_options(const cJSON *model, const char *source, bool *ignore_merges) {
    char ctx[512];
    snprintf(ctx, sizeof ctx, "%s: model", source);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0.0))
        return ob_error(OB_ERR_UNSUPPORTED, "%s: field 'model.dropout' must be null or 0 (BPE dropout is not supported)",
                        source);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(model, affixes[i]);
        if (a && !cJSON_IsNull(a) && !(cJSON_IsString(a) && a->valuestring[0] == '\0'))
            return ob_error(OB_ERR_UNSUPPORTED, "%s: field 'model.%s' must be null or \"\" for byte-level BPE", source,
                            affixes[i]);
    }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (unk && !cJSON_IsNull(unk) && !cJSON_IsString(unk))
        return ob_error(OB_ERR_FORMAT, "%s: field 'model.unk_token' must be a string or null, found %s", source,
                        ob_json_type_name(unk));
    bool flag = false;
    ob_status st = ob_json_get_bool(model, "byte_fallback", ctx, &flag, NULL);
    if (st)
        return st;
    if (flag)
        return ob_error(OB_ERR_UNSUPPORTED, "%s: field 'model.byte_fallback' = true is not supported", source);
    if ((st = ob_json_get_bool(model, "fuse_unk", ctx, &flag, NULL)))
        return st;
    *ignore_merges = false;
    return ob_json_get_bool(model, "ignore_merges", ctx, ignore_merges, NULL);
}

static ob_status check_pre_tokenizer(const cJSON *root, const char *source, bool *add_prefix_space) {
    ob_status st = check_component(root, "pre_tokenizer", source, false, "ByteLevel");
    if (st)
        return st;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    char ctx[512];
    snprintf(ctx, sizeof ctx, "%s: pre_tokenizer", source);
    /* Required, as Hugging Face requires it: a default would be a guess. */
    bool has_prefix = false, use_regex = true, trim = true;
    if ((st = ob_json_get_bool(pre, "add_prefix_space", ctx, add_prefix_space, &has_prefix)))
        return st;
    if (!has_prefix)
        return ob_error(OB_ERR_FORMAT, "%s: field 'pre_tokenizer.add_prefix_space' is missing", source);
    if ((st = ob_json_get_bool(pre, "use_regex", ctx, &use_regex, NULL)) ||
        (st = ob_json_get_bool(pre, "trim_offsets", ctx, &trim, NULL)))
        return st;
    if (!use_regex)
        return ob_error(OB_ERR_UNSUPPORTED, "%s: field 'pre_tokenizer.use_regex' = false is not supported", source);
    return OB_OK;
}

/* Validates added_tokens[i] and records it under its id. */
static ob_status gather_added(const cJSON *item, int index, const char *source, id_entry *ids, int limit) {
    char ctx[512];
    snprintf(ctx, sizeof ctx, "%s: added_tokens[%d]", source, index);
    if (!cJSON_IsObject(item))
        return ob_error(OB_ERR_FORMAT, "%s must be an object, found %s", ctx, ob_json_type_name(item));
    int64_t id = -1;
    bool has_id = false, has_content = false;
    const char *content = NULL;
    ob_status st;
    if ((st = ob_json_get_int(item, "id", ctx, &id, &has_id)) ||
        (st = ob_json_get_string(item, "content", ctx, &content, &has_content)))
        return st;
    if (!has_id || !has_content)
        return ob_error(OB_ERR_FORMAT, "%s: field '%s' is missing", ctx, has_id ? "content" : "id");
    if (content[0] == '\0')
        return ob_error(OB_ERR_FORMAT, "%s: field 'content' is empty", ctx);
    bool special = false, normalized = false;
    if ((st = ob_json_get_bool(item, "special", ctx, &special, NULL)) ||
        (st = ob_json_get_bool(item, "normalized", ctx, &normalized, NULL)))
        return st;
    static const char *const unsupported[] = {"single_word", "lstrip", "rstrip"};
    for (int k = 0; k < 3; k++) {
        bool on = false;
        if ((st = ob_json_get_bool(item, unsupported[k], ctx, &on, NULL)))
            return st;
        if (on)
            return ob_error(OB_ERR_UNSUPPORTED, "%s (\"%s\"): field '%s' = true is not supported", ctx, content,
                            unsupported[k]);
    }
    if (id < 0 || id >= limit)
        return ob_error(OB_ERR_FORMAT, "%s (\"%s\"): field 'id' = %lld is out of range (the file defines at most %d "
                        "tokens, so ids must be in 0..%d)", ctx, content, (long long)id, limit, limit - 1);
    id_entry *e = &ids[id];
    if (e->added)
        return ob_error(OB_ERR_FORMAT, "%s (\"%s\"): id %lld is already used by added token \"%s\"", ctx, content,
                        (long long)id, cJSON_GetObjectItemCaseSensitive(e->added, "content")->valuestring);
    if (e->vocab_key && strcmp(e->vocab_key, content) != 0)
        return ob_error(OB_ERR_FORMAT, "%s: id %lld is \"%s\" in model.vocab but the added token's content is \"%s\"",
                        ctx, (long long)id, e->vocab_key, content);
    e->added = item;
    return OB_OK;
}

static ob_status gather_ids(const cJSON *vocab, const cJSON *added, const char *source, id_entry **out, int *n_out) {
    int n_vocab = cJSON_GetArraySize(vocab), n_added = added ? cJSON_GetArraySize(added) : 0;
    if (n_vocab <= 0)
        return ob_error(OB_ERR_FORMAT, "%s: field 'model.vocab' is empty", source);
    if ((int64_t)n_vocab + n_added > TOK_MAX_VOCAB)
        return ob_error(OB_ERR_FORMAT, "%s: %d tokens are more than the %d supported", source, n_vocab + n_added,
                        TOK_MAX_VOCAB);
    int limit = n_vocab + n_added;
    id_entry *ids = ob_calloc((size_t)limit, sizeof *ids);
    if (!ids)
        return OB_ERR_NOMEM;
    ob_status st = OB_OK;
    for (const cJSON *v = vocab->child; v && st == OB_OK; v = v->next) {
        if (!ob_json_is_integer(v)) {
            st = ob_error(OB_ERR_FORMAT, "%s: model.vocab[\"%s\"] must be an integer id, found %s", source, v->string,
                          cJSON_IsNumber(v) ? "a fractional number" : ob_json_type_name(v));
        } else if (v->valuedouble < 0 || v->valuedouble >= limit) {
            st = ob_error(OB_ERR_FORMAT, "%s: model.vocab[\"%s\"] = %.0f is out of range (the file defines at most %d "
                          "tokens, so ids must be in 0..%d)", source, v->string, v->valuedouble, limit, limit - 1);
        } else if (v->string[0] == '\0') {
            st = ob_error(OB_ERR_FORMAT, "%s: model.vocab has an empty token (id %.0f)", source, v->valuedouble);
        } else {
            id_entry *e = &ids[(int)v->valuedouble];
            if (e->vocab_key)
                st = ob_error(OB_ERR_FORMAT, "%s: model.vocab: id %d is given to both \"%s\" and \"%s\"", source,
                              (int)v->valuedouble, e->vocab_key, v->string);
            e->vocab_key = v->string;
        }
    }
    int index = 0;
    for (const cJSON *a = added ? added->child : NULL; a && st == OB_OK; a = a->next, index++)
        st = gather_added(a, index, source, ids, limit);
    /* Ids must be 0..n-1 without gaps. */
    int n = 0;
    for (int id = 0; id < limit && st == OB_OK; id++)
        n += ids[id].vocab_key || ids[id].added;
    for (int id = n; id < limit && st == OB_OK; id++)
        if (ids[id].vocab_key || ids[id].added)
            st = ob_error(OB_ERR_FORMAT, "%s: token \"%s\" has id %d, out of range: the file defines %d tokens, so "
                          "ids must be in 0..%d", source,
                          ids[id].vocab_key ? ids[id].vocab_key
                                            : cJSON_GetObjectItemCaseSensitive(ids[id].added, "content")->valuestring,
                          id, n, n - 1);
    if (st) {
        free(ids);
        return st;
    }
    *out = ids;
    *n_out = n;
    return OB_OK;
}

static ob_status set_tokens(ob_tokenizer *tok, const id_entry *ids, const char *source) {
    size_t longest = 0;
    for (int id = 0; id < tok->n_vocab; id++)
        if (ids[id].vocab_key && strlen(ids[id].vocab_key) > longest)
            longest = strlen(ids[id].vocab_key);
    uint8_t *bytes = ob_malloc(longest + 1);
    if (!bytes)
        return OB_ERR_NOMEM;
    ob_status st = OB_OK;
    for (int id = 0; id < tok->n_vocab && st == OB_OK; id++) {
        const id_entry *e = &ids[id];
        uint8_t flags = 0;
        const char *content = NULL;
        if (e->added) {
            flags |= TOK_ADDED;
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e->added, "special")))
                flags |= TOK_SPECIAL;
            content = cJSON_GetObjectItemCaseSensitive(e->added, "content")->valuestring;
        }
        if (e->vocab_key) {
            flags |= TOK_IN_MODEL;
            long n = tok_spelling_to_bytes(e->vocab_key, strlen(e->vocab_key), bytes);
            if (n < 0 && !content) {
                st = ob_error(OB_ERR_FORMAT, "%s: model.vocab[\"%s\"] (id %d) has a character outside the byte-level "
                              "alphabet", source, e->vocab_key, id);
                break;
            }
            if (n >= 0 && !content) {
                st = tok_set_token(tok, id, bytes, (size_t)n, flags);
                continue;
            }
        }
        st = tok_set_token(tok, id, (const uint8_t *)content, strlen(content), flags);
    }
    free(bytes);
    return st;
}

/* Splits one merges element ("a b" or ["a", "b"]) into its two spellings. */
static ob_status merge_parts(const cJSON *m, const char *what, const char *source, char *buf, size_t buf_size,
                             const char **a, const char **b) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *space = strchr(s, ' ');
        if (!space || strchr(space + 1, ' ') || space == s || space[1] == '\0')
            return ob_error(OB_ERR_FORMAT, "%s: %s = \"%s\" must be two tokens separated by one space", source,
                            what, s);
        size_t n = strlen(s);
        if (n + 1 > buf_size)
            return ob_error(OB_ERR_FORMAT, "%s: %s is too long", source, what);
        memcpy(buf, s, n + 1);
        buf[space - s] = '\0';
        *a = buf;
        *b = buf + (space - s) + 1;
        return OB_OK;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
        cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring;
        *b = m->child->next->valuestring;
        return OB_OK;
    }
    return ob_error(OB_ERR_FORMAT, "%s: %s must be a string \"a b\" or an array of two strings, found %s", source,
                    what, ob_json_type_name(m));
}

static int32_t spelling_id(const ob_tokenizer *tok, const char *spelling, uint8_t *scratch) {
    long n = tok_spelling_to_bytes(spelling, strlen(spelling), scratch);
    return n > 0 ? tok_lookup(tok, &tok->by_bytes, scratch, (size_t)n) : -1;
}

/* Names merge `index` in messages: "model.merges[3]" in tokenizer.json, or
 * "line 5" of merges.txt. */
static void merge_name(const tok_merge_source *ms, int index, char *buf, size_t size) {
    if (ms && ms->lines)
        snprintf(buf, size, "line %d", ms->lines[index]);
    else
        snprintf(buf, size, "model.merges[%d]", index);
}

static ob_status add_merges(ob_tokenizer *tok, const cJSON *merges, const char *source, const tok_merge_source *ms) {
    const char *msource = ms ? ms->path : source, *vocab_name = ms ? ms->vocab_path : "model.vocab";
    size_t longest = 16;
    for (const cJSON *m = merges->child; m; m = m->next)
        if (cJSON_IsString(m) && strlen(m->valuestring) > longest)
            longest = strlen(m->valuestring);
        else if (cJSON_IsArray(m))
            for (const cJSON *p = m->child; p; p = p->next)
                if (cJSON_IsString(p) && strlen(p->valuestring) > longest)
                    longest = strlen(p->valuestring);
    char *buf = ob_malloc(longest + 1);
    uint8_t *scratch = ob_malloc(longest + 1);
    ob_status st = buf && scratch ? OB_OK : OB_ERR_NOMEM;
    int index = 0;
    for (const cJSON *m = merges->child; m && st == OB_OK; m = m->next, index++) {
        const char *a = NULL, *b = NULL;
        char what[96] = "";
        if (!cJSON_IsString(m) || !strchr(m->valuestring, ' ') || strchr(strchr(m->valuestring, ' ') + 1, ' '))
            merge_name(ms, index, what, sizeof what); /* about to fail: name it */
        if ((st = merge_parts(m, what, msource, buf, longest + 1, &a, &b)))
            break;
        int32_t left = spelling_id(tok, a, scratch), right = spelling_id(tok, b, scratch);
        tok_merge_problem problem = TOK_MERGE_OK;
        if (left >= 0 && right >= 0)
            st = tok_add_merge(tok, left, right, &problem);
        if (left < 0 || right < 0 || problem != TOK_MERGE_OK) {
            merge_name(ms, index, what, sizeof what);
            if (left < 0 || right < 0)
                st = ob_error(OB_ERR_FORMAT, "%s: %s = \"%s %s\": \"%s\" is not in %s", msource, what, a, b,
                              left < 0 ? a : b, vocab_name);
            else if (problem == TOK_MERGE_UNKNOWN_RESULT)
                st = ob_error(OB_ERR_FORMAT, "%s: %s = \"%s %s\": the merged token \"%s%s\" is not in %s", msource,
                              what, a, b, a, b, vocab_name);
            else
                st = ob_error(OB_ERR_FORMAT, "%s: %s = \"%s %s\" repeats an earlier merge", msource, what, a, b);
        }
    }
    free(buf);
    free(scratch);
    return st;
}

ob_status tok_from_tree(const cJSON *root, const char *source, const tok_merge_source *ms, ob_tokenizer **out) {
    *out = NULL;
    if (!cJSON_IsObject(root))
        return ob_error(OB_ERR_FORMAT, "%s: expected a JSON object at the top level, found %s", source,
                        ob_json_type_name(root));
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        /* A vocab.json maps tokens (one may be "model") to numbers. */
        bool vocab_like = root->child && cJSON_IsNumber(root->child) && cJSON_IsNumber(root->child->next);
        return ob_error(OB_ERR_FORMAT, "%s: field 'model' must be an object, found %s%s", source,
                        model ? ob_json_type_name(model) : "nothing",
                        vocab_like ? " (this looks like a vocab.json: pass the directory holding it and merges.txt)"
                                   : "");
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && !cJSON_IsString(type))
        return ob_error(OB_ERR_FORMAT, "%s: field 'model.type' must be a string, found %s", source,
                        ob_json_type_name(type));
    if (type && strcmp(type->valuestring, "BPE") != 0)
        return ob_error(OB_ERR_UNSUPPORTED, "%s: field 'model.type' = \"%s\" is not supported (only \"BPE\")", source,
                        type->valuestring);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab))
        return ob_error(OB_ERR_FORMAT, "%s: field 'model.vocab' must be an object, found %s", source,
                        vocab ? ob_json_type_name(vocab) : "nothing");
    if (!cJSON_IsArray(merges))
        return ob_error(OB_ERR_FORMAT, "%s: field 'model.merges' must be an array, found %s", source,
                        merges ? ob_json_type_name(merges) : "nothing");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return ob_error(OB_ERR_FORMAT, "%s: field 'added_tokens' must be an array, found %s", source,
                        ob_json_type_name(added));
    if (added && cJSON_IsNull(added))
        added = NULL;
    bool ignore_merges, add_prefix_space;
    ob_status st;
    if ((st = check_model_options(model, source, &ignore_merges)) ||
        (st = check_pre_tokenizer(root, source, &add_prefix_space)) ||
        (st = check_component(root, "normalizer", source, true, NULL)) ||
        (st = check_component(root, "decoder", source, true, "ByteLevel")))
        return st;
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (post && !cJSON_IsNull(post) && !(type_field(post) && strcmp(type_field(post), "ByteLevel") == 0))
        ob_log(OB_LOG_WARN, "%s: post_processor is ignored: encode returns the ids of the text alone", source);

    id_entry *ids = NULL;
    int n = 0;
    if ((st = gather_ids(vocab, added, source, &ids, &n)))
        return st;
    ob_tokenizer *tok = NULL;
    if ((st = tok_create(n, &tok)) == OB_OK) {
        tok->add_prefix_space = add_prefix_space;
        tok->ignore_merges = ignore_merges;
        if ((st = set_tokens(tok, ids, source)) == OB_OK && (st = tok_index(tok, source)) == OB_OK &&
            (st = add_merges(tok, merges, source, ms)) == OB_OK)
            st = tok_finish(tok, source);
    }
    free(ids);
    if (st) {
        ob_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return OB_OK;
}

ob_status ob_tokenizer_parse_json(const char *text, size_t len, const char *source, ob_tokenizer **out) {
    *out = NULL;
    if (!source)
        source = "tokenizer.json";
    cJSON *root;
    ob_status st = ob_json_parse(text, len, source, &root);
    if (st)
        return st;
    st = tok_from_tree(root, source, NULL, out);
    cJSON_Delete(root);
    return st;
}
