/* A dataset: shards mapped read-only and seen as one token sequence. Nothing is
 * read up front beyond each header, so a dataset can be far larger than RAM;
 * the page cache brings in only the windows that are drawn. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/data.h"

typedef struct shard {
    char *path;
    ob_mapping map;
    ob_token_view view;
    uint64_t start; /* index of its first token in the dataset */
} shard;

struct ob_dataset {
    shard *shards;
    int count;
    uint64_t num_tokens;
    int64_t vocab_size;
};

void ob_dataset_free(ob_dataset *ds) {
    if (!ds)
        return;
    for (int i = 0; i < ds->count; i++) {
        ob_unmap_file(&ds->shards[i].map);
        free(ds->shards[i].path);
    }
    free(ds->shards);
    free(ds);
}

ob_status ob_dataset_open(const char *const *paths, int num_paths, ob_dataset **out) {
    *out = NULL;
    if (num_paths <= 0)
        return ob_error(OB_ERR_INVALID_ARG, "a dataset needs at least one shard");
    ob_dataset *ds = ob_calloc(1, sizeof *ds);
    if (!ds)
        return OB_ERR_NOMEM;
    ds->shards = ob_calloc((size_t)num_paths, sizeof *ds->shards);
    if (!ds->shards) {
        free(ds);
        return OB_ERR_NOMEM;
    }
    ob_status st = OB_OK;
    for (int i = 0; i < num_paths && st == OB_OK; i++) {
        shard *s = &ds->shards[i];
        ds->count = i + 1;
        s->path = ob_strdup(paths[i]);
        if (!s->path) {
            st = OB_ERR_NOMEM;
            break;
        }
        st = ob_map_file(paths[i], &s->map);
        if (st == OB_OK)
            st = ob_shard_parse(s->map.data, s->map.size, paths[i], &s->view);
        s->start = ds->num_tokens;
        ds->num_tokens += s->view.count;
    }
    if (st) {
        ob_dataset_free(ds);
        return st;
    }
    *out = ds;
    return OB_OK;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "<anything>_<split>_<digits>.bin", the names onebit tokenize and llm.c write. */
static bool is_split_shard_name(const char *name, const char *split, const char *prefix) {
    size_t n = strlen(name), plen = prefix ? strlen(prefix) : 0;
    if (n < 4 || strcmp(name + n - 4, ".bin") != 0)
        return false;
    if (prefix && (strncmp(name, prefix, plen) != 0 || name[plen] != '_'))
        return false;
    char middle[64];
    int written = snprintf(middle, sizeof middle, "_%s_", split);
    if (written <= 0 || (size_t)written >= sizeof middle)
        return false;
    /* The last "_<split>_": a prefix may itself contain the split's name. */
    const char *m = NULL;
    for (const char *f = strstr(name + plen, middle); f; f = strstr(f + 1, middle))
        m = f;
    if (!m || (prefix && m != name + plen))
        return false;
    const char *digits = m + strlen(middle), *end = name + n - 4;
    if (digits == end)
        return false;
    for (const char *d = digits; d < end; d++)
        if (*d < '0' || *d > '9')
            return false;
    return true;
}

ob_status ob_dataset_open_split(const char *path, const char *split, ob_dataset **out) {
    *out = NULL;
    if (ob_path_exists(path) && !ob_is_directory(path))
        return ob_dataset_open(&path, 1, out);
    char *dir = NULL;
    const char *prefix = NULL;
    if (ob_is_directory(path)) {
        dir = ob_strdup(path);
    } else {
        const char *slash = strrchr(path, '/');
        dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : ob_strdup(".");
        prefix = slash ? slash + 1 : path;
    }
    if (!dir)
        return OB_ERR_NOMEM;
    DIR *d = opendir(dir);
    if (!d) {
        ob_status st = ob_error(OB_ERR_NOT_FOUND, "%s: no such shard, directory or prefix", path);
        free(dir);
        return st;
    }
    char **names = NULL;
    int count = 0, capacity = 0;
    ob_status st = OB_OK;
    struct dirent *e;
    while ((e = readdir(d)) && st == OB_OK) {
        if (e->d_name[0] == '.' || !is_split_shard_name(e->d_name, split, prefix))
            continue;
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            char **grown = realloc(names, (size_t)capacity * sizeof *names);
            if (!grown) {
                st = ob_error(OB_ERR_NOMEM, "out of memory listing %s", dir);
                break;
            }
            names = grown;
        }
        names[count] = ob_path_join(dir, e->d_name);
        if (!names[count])
            st = OB_ERR_NOMEM;
        else
            count++;
    }
    closedir(d);
    if (st == OB_OK && count == 0)
        st = ob_error(OB_ERR_NOT_FOUND, "%s: no %s shards (%s_%s_*.bin)", path, split, prefix ? prefix : "*", split);
    if (st == OB_OK) {
        qsort(names, (size_t)count, sizeof *names, compare_strings);
        st = ob_dataset_open((const char *const *)names, count, out);
    }
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
    free(dir);
    return st;
}

uint64_t ob_dataset_num_tokens(const ob_dataset *ds) { return ds->num_tokens; }
int ob_dataset_num_shards(const ob_dataset *ds) { return ds->count; }
const char *ob_dataset_shard_path(const ob_dataset *ds, int index) {
    return index >= 0 && index < ds->count ? ds->shards[index].path : NULL;
}
void ob_dataset_set_vocab_size(ob_dataset *ds, int64_t vocab_size) { ds->vocab_size = vocab_size; }

/* The shard holding token `pos` < N: the last shard that starts at or before
 * it. An empty shard starts where the next one does, so it is never the last
 * such shard (a trailing empty shard starts at N). */
static int find_shard(const ob_dataset *ds, uint64_t pos) {
    int lo = 0, hi = ds->count - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (ds->shards[mid].start <= pos)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

ob_status ob_dataset_read(const ob_dataset *ds, uint64_t start, size_t count, int32_t *out) {
    if (start > ds->num_tokens || count > ds->num_tokens - start)
        return ob_error(OB_ERR_INVALID_ARG, "dataset read of tokens [%llu, %llu) is past its %llu tokens",
                        (unsigned long long)start, (unsigned long long)(start + count),
                        (unsigned long long)ds->num_tokens);
    if (count == 0)
        return OB_OK;
    uint64_t limit = ds->vocab_size > 0 ? (uint64_t)ds->vocab_size : 2147483648ull;
    int s = find_shard(ds, start);
    size_t done = 0;
    while (done < count) {
        const shard *sh = &ds->shards[s];
        uint64_t offset = start + done - sh->start;
        uint64_t avail = sh->view.count - offset;
        size_t n = avail < count - done ? (size_t)avail : count - done;
        for (size_t i = 0; i < n; i++) {
            uint32_t id = ob_token_view_get(&sh->view, offset + i);
            if (id >= limit)
                return ob_error(OB_ERR_FORMAT, "%s: token %llu = %u is outside the vocabulary (size %lld)", sh->path,
                                (unsigned long long)(offset + i), id,
                                (long long)(ds->vocab_size > 0 ? ds->vocab_size : (int64_t)limit));
            out[done + i] = (int32_t)id;
        }
        done += n;
        s++;
    }
    return OB_OK;
}
