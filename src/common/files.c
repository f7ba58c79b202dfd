/* File helpers: whole-file reads, read-only mappings, and atomic writes
 * (temporary file, fsync, rename, fsync of the directory). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onebit/common.h"

ob_status ob_read_file(const char *path, char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return ob_error(OB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return ob_error(OB_ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    char *buf = ob_malloc(n + 1);
    if (!buf) {
        fclose(fp);
        return OB_ERR_NOMEM;
    }
    if (n && fread(buf, 1, n, fp) != n) {
        int e = errno;
        free(buf);
        fclose(fp);
        return ob_error(OB_ERR_IO, "%s: read failed: %s", path, e ? strerror(e) : "short read");
    }
    fclose(fp);
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return OB_OK;
}

ob_status ob_map_file(const char *path, ob_mapping *map) {
    map->data = NULL;
    map->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ob_error(OB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ob_error(OB_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return OB_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return ob_error(OB_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
    map->data = p;
    map->size = (size_t)st.st_size;
    return OB_OK;
}

void ob_unmap_file(ob_mapping *map) {
    if (map->data)
        munmap(map->data, map->size);
    map->data = NULL;
    map->size = 0;
}

static void fsync_parent_dir(const char *path) {
    char *copy = ob_strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

ob_status ob_atomic_open(ob_atomic_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    size_t n = strlen(path) + 32;
    f->final_path = ob_strdup(path);
    f->temp_path = ob_malloc(n);
    if (!f->final_path || !f->temp_path) {
        ob_atomic_abort(f);
        return OB_ERR_NOMEM;
    }
    snprintf(f->temp_path, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(f->temp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        ob_status s = ob_error(OB_ERR_IO, "%s: cannot create: %s", f->temp_path, strerror(errno));
        ob_atomic_abort(f);
        return s;
    }
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        close(fd);
        unlink(f->temp_path);
        ob_atomic_abort(f);
        return ob_error(OB_ERR_IO, "%s: fdopen failed", path);
    }
    return OB_OK;
}

ob_status ob_atomic_commit(ob_atomic_file *f) {
    ob_status st = OB_OK;
    if (fflush(f->fp) != 0 || ferror(f->fp) || fsync(fileno(f->fp)) != 0)
        st = ob_error(OB_ERR_IO, "%s: write failed: %s", f->final_path, strerror(errno));
    if (fclose(f->fp) != 0 && st == OB_OK)
        st = ob_error(OB_ERR_IO, "%s: close failed: %s", f->final_path, strerror(errno));
    f->fp = NULL;
    if (st == OB_OK && rename(f->temp_path, f->final_path) != 0)
        st = ob_error(OB_ERR_IO, "%s: rename failed: %s", f->final_path, strerror(errno));
    if (st == OB_OK)
        fsync_parent_dir(f->final_path);
    else
        unlink(f->temp_path);
    free(f->final_path);
    free(f->temp_path);
    memset(f, 0, sizeof *f);
    return st;
}

void ob_atomic_abort(ob_atomic_file *f) {
    if (f->fp) {
        fclose(f->fp);
        unlink(f->temp_path);
    }
    free(f->final_path);
    free(f->temp_path);
    memset(f, 0, sizeof *f);
}

ob_status ob_write_file_atomic(const char *path, const void *data, size_t size) {
    ob_atomic_file f;
    ob_status st = ob_atomic_open(&f, path);
    if (st)
        return st;
    if (size && fwrite(data, 1, size, f.fp) != size) {
        ob_atomic_abort(&f);
        return ob_error(OB_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return ob_atomic_commit(&f);
}

ob_status ob_mkdirs(const char *path) {
    char *p = ob_strdup(path);
    if (!p)
        return OB_ERR_NOMEM;
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == '\0') {
            char saved = p[i];
            p[i] = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                ob_status st = ob_error(OB_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
                free(p);
                return st;
            }
            p[i] = saved;
        }
    }
    free(p);
    if (!ob_is_directory(path))
        return ob_error(OB_ERR_IO, "%s: exists and is not a directory", path);
    return OB_OK;
}

bool ob_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

bool ob_is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *ob_path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    bool slash = la > 0 && a[la - 1] != '/';
    char *out = ob_malloc(la + lb + 2);
    if (!out)
        return NULL;
    memcpy(out, a, la);
    if (slash)
        out[la++] = '/';
    memcpy(out + la, b, lb + 1);
    return out;
}
