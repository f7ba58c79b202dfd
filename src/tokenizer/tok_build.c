/* Assembling a tokenizer from its parts (shared by the tokenizer.json and
 * vocab.json + merges.txt loaders and by the trainer), the final consistency
 * checks, the simple getters and freeing. The loaders check their files field by
 * field; the checks here are the ones every source must pass (a token for every
 * byte, merges that make vocabulary tokens). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

ob_status tok_create(int n_vocab, ob_tokenizer **out) {
    *out = NULL;
    if (n_vocab < 256 || n_vocab > TOK_MAX_VOCAB)
        return ob_error(OB_ERR_FORMAT, "vocabulary size %d is outside 256..%d", n_vocab, TOK_MAX_VOCAB);
    ob_tokenizer *tok = ob_calloc(1, sizeof *tok);
    if (!tok)
        return OB_ERR_NOMEM;
    tok->n_vocab = n_vocab;
    tok->start = ob_malloc((size_t)n_vocab * sizeof *tok->start);
    tok->len = ob_malloc((size_t)n_vocab * sizeof *tok->len);
    tok->flags = ob_calloc((size_t)n_vocab, 1);
    tok->eos_id = -1;
    if (!tok->start || !tok->len || !tok->flags) {
        ob_tokenizer_free(tok);
        return OB_ERR_NOMEM;
    }
    memset(tok->len, 0xFF, (size_t)n_vocab * sizeof *tok->len);
    *out = tok;
    return OB_OK;
}

ob_status tok_set_token(ob_tokenizer *tok, int32_t id, const uint8_t *bytes, size_t len, uint8_t flags) {
    if (id < 0 || id >= tok->n_vocab || len == 0 || len > UINT32_MAX / 2)
        return ob_error(OB_ERR_FORMAT, "token id %d (%zu bytes) is out of range", (int)id, len);
    if (tok->blob_len + len > UINT32_MAX)
        return ob_error(OB_ERR_FORMAT, "token bytes exceed 4 GiB");
    if (tok->blob_len + len > tok->blob_cap) {
        size_t cap = tok->blob_cap ? tok->blob_cap * 2 : 1 << 16;
        while (cap < tok->blob_len + len)
            cap *= 2;
        uint8_t *blob = realloc(tok->blob, cap);
        if (!blob)
            return ob_error(OB_ERR_NOMEM, "out of memory for token bytes");
        tok->blob = blob;
        tok->blob_cap = cap;
    }
    memcpy(tok->blob + tok->blob_len, bytes, len);
    tok->start[id] = (uint32_t)tok->blob_len;
    tok->len[id] = (uint32_t)len;
    tok->flags[id] = flags;
    tok->blob_len += len;
    return OB_OK;
}

ob_status tok_index(ob_tokenizer *tok, const char *source) {
    for (int id = 0; id < tok->n_vocab; id++)
        if (tok->len[id] == UINT32_MAX)
            return ob_error(OB_ERR_FORMAT, "%s: no token has id %d (ids must run from 0 to %d without gaps)", source,
                            id, tok->n_vocab - 1);
    if (tok_bytes_map_build(tok, &tok->by_bytes, TOK_IN_MODEL) != OB_OK)
        return OB_ERR_NOMEM;
    for (int b = 0; b < 256; b++) {
        uint8_t byte = (uint8_t)b;
        tok->byte_id[b] = tok_lookup(tok, &tok->by_bytes, &byte, 1);
        if (tok->byte_id[b] < 0) {
            char spelling[4];
            tok_bytes_to_spelling(&byte, 1, spelling);
            return ob_error(OB_ERR_FORMAT, "%s: model.vocab has no token for byte 0x%02X ('%s'); a byte-level BPE "
                            "vocabulary needs all 256", source, b, spelling);
        }
    }
    return tok_pair_map_init(&tok->merges, (size_t)tok->n_vocab);
}

ob_status tok_add_merge(ob_tokenizer *tok, int32_t left, int32_t right, tok_merge_problem *problem) {
    *problem = TOK_MERGE_OK;
    size_t ll = tok->len[left], lr = tok->len[right];
    uint8_t stack_buf[256];
    uint8_t *joined = ll + lr <= sizeof stack_buf ? stack_buf : ob_malloc(ll + lr);
    if (!joined)
        return OB_ERR_NOMEM;
    memcpy(joined, tok->blob + tok->start[left], ll);
    memcpy(joined + ll, tok->blob + tok->start[right], lr);
    int32_t merged = tok_lookup(tok, &tok->by_bytes, joined, ll + lr);
    if (joined != stack_buf)
        free(joined);
    if (merged < 0) {
        *problem = TOK_MERGE_UNKNOWN_RESULT;
        return OB_ERR_FORMAT;
    }
    if (tok_pair_rank(&tok->merges, left, right, NULL) != UINT32_MAX) {
        *problem = TOK_MERGE_DUPLICATE;
        return OB_ERR_FORMAT;
    }
    if (tok->n_merges == tok->merge_cap) {
        int cap = tok->merge_cap ? tok->merge_cap * 2 : 1024;
        int32_t(*list)[2] = realloc(tok->merge_list, (size_t)cap * sizeof *list);
        if (!list)
            return ob_error(OB_ERR_NOMEM, "out of memory for merges");
        tok->merge_list = list;
        tok->merge_cap = cap;
    }
    if (!tok_pair_map_insert(&tok->merges, left, right, (uint32_t)tok->n_merges, merged))
        return ob_error(OB_ERR_NOMEM, "out of memory for merges");
    tok->merge_list[tok->n_merges][0] = left;
    tok->merge_list[tok->n_merges][1] = right;
    tok->n_merges++;
    return OB_OK;
}

/* A model token is a whole-piece shortcut when BPE on its own bytes yields it:
 * then looking the piece up gives the same ids as merging, only faster. (With
 * ignore_merges every model token is a shortcut, as in Hugging Face.) */
static ob_status mark_direct_tokens(ob_tokenizer *tok) {
    size_t longest = 1;
    for (int id = 0; id < tok->n_vocab; id++)
        if (tok->len[id] > longest)
            longest = tok->len[id];
    int32_t *ids = ob_malloc(longest * sizeof *ids);
    tok_work w;
    ob_status st = ids ? tok_work_init(&w, tok, false) : OB_ERR_NOMEM;
    if (st) {
        free(ids);
        return st;
    }
    for (int id = 0; id < tok->n_vocab && st == OB_OK; id++) {
        if ((tok->flags[id] & (TOK_IN_MODEL | TOK_ADDED)) != TOK_IN_MODEL)
            continue;
        bool direct = tok->ignore_merges || tok->len[id] == 1;
        if (!direct) {
            size_t count = 0;
            st = tok_bpe_merge(tok, &w, tok->blob + tok->start[id], tok->len[id], ids, &count);
            direct = st == OB_OK && count == 1 && ids[0] == id;
        }
        if (direct)
            tok->flags[id] |= TOK_DIRECT;
    }
    tok_work_free(&w);
    free(ids);
    if (st)
        return st;
    return tok_bytes_map_build(tok, &tok->direct, TOK_DIRECT);
}

ob_status tok_finish(ob_tokenizer *tok, const char *source) {
    tok->added = ob_malloc((size_t)tok->n_vocab * sizeof *tok->added);
    if (!tok->added)
        return OB_ERR_NOMEM;
    for (int id = 0; id < tok->n_vocab; id++)
        if (tok->flags[id] & TOK_ADDED)
            tok->added[tok->n_added++] = id;
    static const char *const eos_names[] = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"};
    for (size_t k = 0; k < sizeof eos_names / sizeof eos_names[0] && tok->eos_id < 0; k++)
        for (int i = 0; i < tok->n_added; i++) {
            int32_t id = tok->added[i];
            size_t n = strlen(eos_names[k]);
            if (tok->len[id] == n && memcmp(tok->blob + tok->start[id], eos_names[k], n) == 0) {
                tok->eos_id = id;
                break;
            }
        }
    ob_status st = tok_compile_regex(&tok->regex);
    if (st)
        return ob_error_context(st, "%s", source);
    return mark_direct_tokens(tok);
}

void ob_tokenizer_free(ob_tokenizer *tok) {
    if (!tok)
        return;
    free(tok->blob);
    free(tok->start);
    free(tok->len);
    free(tok->flags);
    free(tok->by_bytes.slots);
    free(tok->direct.slots);
    tok_pair_map_free(&tok->merges);
    free(tok->merge_list);
    free(tok->added);
    if (tok->regex)
        pcre2_code_free(tok->regex);
    free(tok);
}

int ob_tokenizer_vocab_size(const ob_tokenizer *tok) { return tok->n_vocab; }

int ob_tokenizer_eos_id(const ob_tokenizer *tok) { return tok->eos_id; }

int ob_tokenizer_token_id(const ob_tokenizer *tok, const char *token) {
    size_t n = strlen(token);
    for (int i = 0; i < tok->n_added; i++) {
        int32_t id = tok->added[i];
        if (tok->len[id] == n && memcmp(tok->blob + tok->start[id], token, n) == 0)
            return id;
    }
    uint8_t *bytes = ob_malloc(n + 1);
    if (!bytes)
        return -1;
    long nb = tok_spelling_to_bytes(token, n, bytes);
    int id = nb > 0 ? tok_lookup(tok, &tok->by_bytes, bytes, (size_t)nb) : -1;
    free(bytes);
    return id;
}

const uint8_t *ob_tokenizer_token_bytes(const ob_tokenizer *tok, int id, size_t *len) {
    if (id < 0 || id >= tok->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = tok->len[id];
    return tok->blob + tok->start[id];
}

int ob_tokenizer_num_merges(const ob_tokenizer *tok) { return tok->n_merges; }
