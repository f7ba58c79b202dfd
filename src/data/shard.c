/* Token shards in llm.c's .bin layout: validation of a shard's bytes (shared by
 * the mmap reader and the fuzz target) and a streaming writer that goes through
 * ob_atomic_open/commit, so a shard is either complete or absent. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/data.h"

static uint32_t load_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int32_t load_i32le(const uint8_t *p) {
    uint32_t u = load_u32le(p);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static void store_u32le(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

ob_token_dtype ob_token_dtype_for_vocab(int64_t vocab_size) {
    return vocab_size <= 65536 ? OB_TOKENS_U16 : OB_TOKENS_U32;
}

const char *ob_token_dtype_name(ob_token_dtype dtype) {
    switch (dtype) {
    case OB_TOKENS_U16:
        return "uint16";
    case OB_TOKENS_U32:
        return "uint32";
    case OB_TOKENS_AUTO:
        break;
    }
    return "auto";
}

ob_status ob_shard_parse(const void *bytes, size_t size, const char *source, ob_token_view *out) {
    const uint8_t *p = bytes;
    memset(out, 0, sizeof *out);
    if (size < OB_SHARD_HEADER_BYTES)
        return ob_error(OB_ERR_FORMAT, "%s: %zu bytes, shorter than the %d-byte shard header", source, size,
                        OB_SHARD_HEADER_BYTES);
    int32_t magic = load_i32le(p), version = load_i32le(p + 4), count = load_i32le(p + 8);
    ob_token_dtype dtype;
    int32_t want_version;
    if (magic == OB_SHARD_MAGIC_U16) {
        dtype = OB_TOKENS_U16;
        want_version = OB_SHARD_VERSION_U16;
    } else if (magic == OB_SHARD_MAGIC_U32) {
        dtype = OB_TOKENS_U32;
        want_version = OB_SHARD_VERSION_U32;
    } else if (memcmp(p, "TKN2", 4) == 0) {
        return ob_error(OB_ERR_FORMAT,
                        "%s: a OneBit-LLM TKN2 .tokens file, not a token shard (convert it with onebit tokenize "
                        "--input %s)",
                        source, source);
    } else {
        return ob_error(OB_ERR_FORMAT, "%s: magic %d is not a token shard's (%d for uint16 tokens, %d for uint32)",
                        source, (int)magic, OB_SHARD_MAGIC_U16, OB_SHARD_MAGIC_U32);
    }
    if (version != want_version)
        return ob_error(OB_ERR_FORMAT, "%s: version %d is not supported for magic %d (expected %d, %s tokens)", source,
                        (int)version, (int)magic, (int)want_version, ob_token_dtype_name(dtype));
    if (count < 0)
        return ob_error(OB_ERR_FORMAT, "%s: negative token count %d in the header", source, (int)count);
    uint64_t need = OB_SHARD_HEADER_BYTES + (uint64_t)count * (uint64_t)dtype;
    if ((uint64_t)size < need)
        return ob_error(OB_ERR_FORMAT, "%s: truncated: the header's token count %d needs %llu bytes, the file has %zu",
                        source, (int)count, (unsigned long long)need, size);
    if ((uint64_t)size > need)
        return ob_error(OB_ERR_FORMAT, "%s: %zu bytes, but the header's token count %d needs exactly %llu", source,
                        size, (int)count, (unsigned long long)need);
    out->data = p + OB_SHARD_HEADER_BYTES;
    out->count = (uint64_t)count;
    out->dtype = dtype;
    return OB_OK;
}

ob_status ob_tkn2_parse(const void *bytes, size_t size, const char *source, ob_token_view *out) {
    const uint8_t *p = bytes;
    memset(out, 0, sizeof *out);
    if (size < OB_TKN2_HEADER_BYTES)
        return ob_error(OB_ERR_FORMAT, "%s: %zu bytes, shorter than the %d-byte TKN2 header", source, size,
                        OB_TKN2_HEADER_BYTES);
    if (memcmp(p, "TKN2", 4) != 0)
        return ob_error(OB_ERR_FORMAT, "%s: magic 0x%02x%02x%02x%02x is not \"TKN2\"", source, p[0], p[1], p[2], p[3]);
    uint64_t count = (uint64_t)load_u32le(p + 4) | (uint64_t)load_u32le(p + 8) << 32;
    uint64_t body = (uint64_t)size - OB_TKN2_HEADER_BYTES;
    if (count > body / 4)
        return ob_error(OB_ERR_FORMAT, "%s: truncated: the header's token count %llu needs %llu bytes of tokens, the "
                        "file has %llu", source, (unsigned long long)count,
                        count > UINT64_MAX / 4 ? (unsigned long long)UINT64_MAX : (unsigned long long)(count * 4),
                        (unsigned long long)body);
    if (body != count * 4)
        return ob_error(OB_ERR_FORMAT, "%s: %zu bytes, but the header's token count %llu needs exactly %llu", source,
                        size, (unsigned long long)count, (unsigned long long)(OB_TKN2_HEADER_BYTES + count * 4));
    out->data = p + OB_TKN2_HEADER_BYTES;
    out->count = count;
    out->dtype = OB_TOKENS_U32;
    return OB_OK;
}

/* ---- writer ---------------------------------------------------------------- */

enum { WRITE_CHUNK = 16384 };

struct ob_shard_writer {
    ob_atomic_file file;
    char *path;
    ob_token_dtype dtype;
    uint64_t count;
    uint8_t buf[WRITE_CHUNK * 4];
};

ob_status ob_shard_writer_open(const char *path, ob_token_dtype dtype, ob_shard_writer **out) {
    *out = NULL;
    if (dtype != OB_TOKENS_U16 && dtype != OB_TOKENS_U32)
        return ob_error(OB_ERR_INVALID_ARG, "%s: token dtype %d is neither uint16 nor uint32", path, (int)dtype);
    ob_shard_writer *w = ob_calloc(1, sizeof *w);
    if (!w)
        return OB_ERR_NOMEM;
    w->path = ob_strdup(path);
    w->dtype = dtype;
    ob_status st = w->path ? ob_atomic_open(&w->file, path) : OB_ERR_NOMEM;
    if (st) {
        free(w->path);
        free(w);
        return st;
    }
    uint8_t header[OB_SHARD_HEADER_BYTES] = {0};
    store_u32le(header, dtype == OB_TOKENS_U16 ? OB_SHARD_MAGIC_U16 : OB_SHARD_MAGIC_U32);
    store_u32le(header + 4, dtype == OB_TOKENS_U16 ? OB_SHARD_VERSION_U16 : OB_SHARD_VERSION_U32);
    if (fwrite(header, 1, sizeof header, w->file.fp) != sizeof header) {
        st = ob_error(OB_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        ob_shard_writer_abort(w);
        return st;
    }
    *out = w;
    return OB_OK;
}

ob_status ob_shard_writer_append(ob_shard_writer *w, const int32_t *ids, size_t count) {
    if (count > OB_SHARD_MAX_TOKENS - w->count)
        return ob_error(OB_ERR_INVALID_ARG, "%s: more than %llu tokens do not fit one shard (the header count is an "
                        "int32)", w->path, OB_SHARD_MAX_TOKENS);
    uint32_t limit = w->dtype == OB_TOKENS_U16 ? 65535u : 2147483647u;
    for (size_t done = 0; done < count;) {
        size_t n = count - done < WRITE_CHUNK ? count - done : WRITE_CHUNK;
        for (size_t i = 0; i < n; i++) {
            int32_t id = ids[done + i];
            if (id < 0 || (uint32_t)id > limit)
                return ob_error(OB_ERR_INVALID_ARG, "%s: token id %d at position %llu does not fit %s shards", w->path,
                                (int)id, (unsigned long long)(w->count + done + i), ob_token_dtype_name(w->dtype));
            uint8_t *p = w->buf + i * (size_t)w->dtype;
            if (w->dtype == OB_TOKENS_U16) {
                p[0] = (uint8_t)id;
                p[1] = (uint8_t)(id >> 8);
            } else {
                store_u32le(p, (uint32_t)id);
            }
        }
        if (fwrite(w->buf, (size_t)w->dtype, n, w->file.fp) != n)
            return ob_error(OB_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
        done += n;
    }
    w->count += count;
    return OB_OK;
}

uint64_t ob_shard_writer_count(const ob_shard_writer *w) { return w->count; }

ob_status ob_shard_writer_commit(ob_shard_writer *w) {
    uint8_t count[4];
    store_u32le(count, (uint32_t)w->count);
    ob_status st = OB_OK;
    if (fseek(w->file.fp, 8, SEEK_SET) != 0 || fwrite(count, 1, 4, w->file.fp) != 4)
        st = ob_error(OB_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    if (st == OB_OK) {
        st = ob_atomic_commit(&w->file);
    } else {
        ob_atomic_abort(&w->file);
    }
    free(w->path);
    free(w);
    return st;
}

void ob_shard_writer_abort(ob_shard_writer *w) {
    if (!w)
        return;
    ob_atomic_abort(&w->file);
    free(w->path);
    free(w);
}

ob_status ob_shard_write(const char *path, ob_token_dtype dtype, const int32_t *ids, size_t count) {
    ob_shard_writer *w;
    ob_status st = ob_shard_writer_open(path, dtype, &w);
    if (st)
        return st;
    st = ob_shard_writer_append(w, ids, count);
    if (st) {
        ob_shard_writer_abort(w);
        return st;
    }
    return ob_shard_writer_commit(w);
}
