/* Writing tokenizer.json in Hugging Face's format (the layout of GPT-2's own
 * file: ByteLevel pre-tokenizer, post-processor and decoder, a BPE model with
 * vocab in id order and merges in rank order, added tokens listed separately),
 * so that Hugging Face tokenizers, Tokenizers.js and our loader all read it. */
#include <stdlib.h>
#include <string.h>

#include "onebit/json.h"
#include "tokenizer/tok_internal.h"

/* The vocabulary spelling of a token: added tokens keep their text, model
 * tokens are written in the byte-level alphabet. Heap string. */
static char *spelling(const ob_tokenizer *tok, int32_t id) {
    const uint8_t *b = tok->blob + tok->start[id];
    size_t n = tok->len[id];
    char *s = ob_malloc(2 * n + 1);
    if (!s)
        return NULL;
    if (tok->flags[id] & TOK_ADDED) {
        memcpy(s, b, n);
        s[n] = '\0';
    } else {
        tok_bytes_to_spelling(b, n, s);
    }
    return s;
}

static cJSON *byte_level(bool add_prefix_space, bool trim_offsets) {
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "type", "ByteLevel") &&
        cJSON_AddBoolToObject(o, "add_prefix_space", add_prefix_space) &&
        cJSON_AddBoolToObject(o, "trim_offsets", trim_offsets) && cJSON_AddTrueToObject(o, "use_regex"))
        return o;
    cJSON_Delete(o);
    return NULL;
}

static bool add_added_tokens(const ob_tokenizer *tok, cJSON *root) {
    cJSON *list = cJSON_AddArrayToObject(root, "added_tokens");
    if (!list)
        return false;
    for (int i = 0; i < tok->n_added; i++) {
        int32_t id = tok->added[i];
        char *content = spelling(tok, id);
        cJSON *e = cJSON_CreateObject();
        bool ok = content && e && cJSON_AddItemToArray(list, e) && cJSON_AddNumberToObject(e, "id", id) &&
                  cJSON_AddStringToObject(e, "content", content) && cJSON_AddFalseToObject(e, "single_word") &&
                  cJSON_AddFalseToObject(e, "lstrip") && cJSON_AddFalseToObject(e, "rstrip") &&
                  cJSON_AddFalseToObject(e, "normalized") &&
                  cJSON_AddBoolToObject(e, "special", (tok->flags[id] & TOK_SPECIAL) != 0);
        free(content);
        if (!ok)
            return false;
    }
    return true;
}

static bool add_model(const ob_tokenizer *tok, cJSON *root) {
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    if (!model || !cJSON_AddStringToObject(model, "type", "BPE") || !cJSON_AddNullToObject(model, "dropout") ||
        !cJSON_AddNullToObject(model, "unk_token") || !cJSON_AddStringToObject(model, "continuing_subword_prefix", "") ||
        !cJSON_AddStringToObject(model, "end_of_word_suffix", "") || !cJSON_AddFalseToObject(model, "fuse_unk") ||
        !cJSON_AddFalseToObject(model, "byte_fallback") ||
        !cJSON_AddBoolToObject(model, "ignore_merges", tok->ignore_merges))
        return false;
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    if (!vocab || !merges)
        return false;
    for (int id = 0; id < tok->n_vocab; id++) {
        if (!(tok->flags[id] & TOK_IN_MODEL))
            continue;
        char *s = spelling(tok, id);
        bool ok = s && cJSON_AddNumberToObject(vocab, s, id);
        free(s);
        if (!ok)
            return false;
    }
    for (int i = 0; i < tok->n_merges; i++) {
        char *a = spelling(tok, tok->merge_list[i][0]), *b = spelling(tok, tok->merge_list[i][1]);
        bool ok = a && b;
        if (ok && !strchr(a, ' ') && !strchr(b, ' ')) {
            /* "a b": the classic form every reader knows. */
            size_t la = strlen(a), lb = strlen(b);
            char *joined = ob_malloc(la + lb + 2);
            ok = joined != NULL;
            if (ok) {
                memcpy(joined, a, la);
                joined[la] = ' ';
                memcpy(joined + la + 1, b, lb + 1);
                ok = cJSON_AddItemToArray(merges, cJSON_CreateString(joined));
            }
            free(joined);
        } else if (ok) {
            /* A part with a space in it needs the newer ["a", "b"] form. */
            const char *parts[2] = {a, b};
            ok = cJSON_AddItemToArray(merges, cJSON_CreateStringArray(parts, 2));
        }
        free(a);
        free(b);
        if (!ok)
            return false;
    }
    return true;
}

ob_status ob_tokenizer_save(const ob_tokenizer *tok, const char *path) {
    cJSON *root = cJSON_CreateObject();
    bool ok = root && cJSON_AddStringToObject(root, "version", "1.0") && cJSON_AddNullToObject(root, "truncation") &&
              cJSON_AddNullToObject(root, "padding") && add_added_tokens(tok, root) &&
              cJSON_AddNullToObject(root, "normalizer");
    if (ok) {
        cJSON *pre = byte_level(tok->add_prefix_space, true), *post = byte_level(true, false),
              *dec = byte_level(true, true);
        ok = pre && post && dec;
        if (ok) {
            cJSON_AddItemToObject(root, "pre_tokenizer", pre);
            cJSON_AddItemToObject(root, "post_processor", post);
            cJSON_AddItemToObject(root, "decoder", dec);
        } else {
            cJSON_Delete(pre);
            cJSON_Delete(post);
            cJSON_Delete(dec);
        }
    }
    ok = ok && add_model(tok, root);
    ob_status st = ok ? ob_json_save_file(path, root) : ob_error(OB_ERR_NOMEM, "%s: out of memory building JSON", path);
    cJSON_Delete(root);
    return st;
}
