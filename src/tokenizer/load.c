/* Finding and reading tokenizer files: a tokenizer.json, a directory holding
 * one, or GPT-2's original pair vocab.json + merges.txt (which is turned into
 * the same tree a tokenizer.json gives, with ByteLevel pre-tokenization and
 * <|endoftext|> as the special token when the vocabulary has it). Empty and
 * binary files are refused with their own message before any parsing. */
#include <stdlib.h>
#include <string.h>

#include "onebit/json.h"
#include "tokenizer/tok_internal.h"

/* Reads a whole text file; refuses empty and binary (NUL-containing) files. */
static ob_status read_text_file(const char *path, char **text, size_t *len) {
    ob_status st = ob_read_file(path, text, len);
    if (st)
        return st;
    const char *nul = memchr(*text, '\0', *len);
    if (*len == 0 || nul) {
        size_t at = nul ? (size_t)(nul - *text) : 0;
        free(*text);
        *text = NULL;
        if (nul)
            return ob_error(OB_ERR_FORMAT, "%s: binary file (NUL byte at offset %zu), expected text", path, at);
        return ob_error(OB_ERR_FORMAT, "%s: file is empty", path);
    }
    return OB_OK;
}

static ob_status load_json_file(const char *path, ob_tokenizer **out) {
    char *text;
    size_t len;
    ob_status st = read_text_file(path, &text, &len);
    if (st)
        return st;
    st = ob_tokenizer_parse_json(text, len, path, out);
    free(text);
    return st;
}

ob_status ob_tokenizer_load(const char *path, ob_tokenizer **out) {
    *out = NULL;
    if (!path || !*path)
        return ob_error(OB_ERR_INVALID_ARG, "no tokenizer path given");
    if (!ob_is_directory(path))
        return load_json_file(path, out);
    char *json = ob_path_join(path, "tokenizer.json");
    char *vocab = ob_path_join(path, "vocab.json");
    char *merges = ob_path_join(path, "merges.txt");
    ob_status st;
    if (!json || !vocab || !merges)
        st = OB_ERR_NOMEM;
    else if (ob_path_exists(json))
        st = load_json_file(json, out);
    else if (ob_path_exists(vocab) && ob_path_exists(merges))
        st = ob_tokenizer_load_vocab_merges(vocab, merges, out);
    else
        st = ob_error(OB_ERR_NOT_FOUND, "%s: directory holds neither tokenizer.json nor vocab.json + merges.txt", path);
    free(json);
    free(vocab);
    free(merges);
    return st;
}

/* merges.txt lines (after an optional "#version" line) as a JSON array of
 * "a b" strings, with the line number of each. */
static ob_status parse_merges_txt(char *text, size_t len, const char *path, cJSON *array, int **lines_out) {
    size_t count = 1;
    for (size_t i = 0; i < len; i++)
        count += text[i] == '\n';
    int *lines = ob_malloc(count * sizeof *lines);
    if (!lines)
        return OB_ERR_NOMEM;
    if (!ob_utf8_valid(text, len, NULL)) {
        free(lines);
        return ob_error(OB_ERR_FORMAT, "%s: not valid UTF-8", path);
    }
    int n = 0, line = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        line++;
        char *stop = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        *stop = '\0';
        bool version = line == 1 && strncmp(p, "#version", 8) == 0;
        if (!version && *p) {
            cJSON *s = cJSON_CreateString(p);
            if (!s || !cJSON_AddItemToArray(array, s)) {
                cJSON_Delete(s);
                free(lines);
                return OB_ERR_NOMEM;
            }
            lines[n++] = line;
        }
        p = eol + 1;
    }
    *lines_out = lines;
    return OB_OK;
}

ob_status ob_tokenizer_load_vocab_merges(const char *vocab_json, const char *merges_txt, ob_tokenizer **out) {
    *out = NULL;
    char *vtext = NULL, *mtext = NULL;
    size_t vlen, mlen;
    cJSON *vocab = NULL, *root = NULL;
    int *lines = NULL;
    ob_status st = read_text_file(vocab_json, &vtext, &vlen);
    if (!st)
        st = ob_json_parse(vtext, vlen, vocab_json, &vocab);
    if (!st && !cJSON_IsObject(vocab))
        st = ob_error(OB_ERR_FORMAT, "%s: expected a JSON object of token -> id, found %s", vocab_json,
                      ob_json_type_name(vocab));
    if (!st)
        st = read_text_file(merges_txt, &mtext, &mlen);
    if (!st) {
        root = cJSON_CreateObject();
        cJSON *model = cJSON_AddObjectToObject(root, "model");
        cJSON *merges = cJSON_AddArrayToObject(model, "merges");
        cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
        cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
        if (!root || !model || !merges || !pre || !added || !cJSON_AddStringToObject(model, "type", "BPE") ||
            !cJSON_AddItemReferenceToObject(model, "vocab", vocab) ||
            !cJSON_AddStringToObject(pre, "type", "ByteLevel") || !cJSON_AddFalseToObject(pre, "add_prefix_space"))
            st = ob_error(OB_ERR_NOMEM, "out of memory");
        if (!st)
            st = parse_merges_txt(mtext, mlen, merges_txt, merges, &lines);
        /* GPT-2's end-of-text token is the one special token of this format. */
        const cJSON *eot = cJSON_GetObjectItemCaseSensitive(vocab, "<|endoftext|>");
        if (!st && ob_json_is_integer(eot)) {
            cJSON *e = cJSON_CreateObject();
            if (!e || !cJSON_AddItemToArray(added, e) || !cJSON_AddNumberToObject(e, "id", eot->valuedouble) ||
                !cJSON_AddStringToObject(e, "content", "<|endoftext|>") || !cJSON_AddTrueToObject(e, "special"))
                st = ob_error(OB_ERR_NOMEM, "out of memory");
        }
    }
    if (!st) {
        tok_merge_source ms = {merges_txt, vocab_json, lines};
        st = tok_from_tree(root, vocab_json, &ms, out);
    }
    cJSON_Delete(root);
    cJSON_Delete(vocab);
    free(lines);
    free(vtext);
    free(mtext);
    return st;
}
