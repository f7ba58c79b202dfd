/* Allocation wrappers that leave an error message behind when memory runs out. */
#include <stdlib.h>
#include <string.h>

#include "onebit/common.h"

void *ob_malloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p)
        ob_error(OB_ERR_NOMEM, "out of memory allocating %zu bytes", size);
    return p;
}

void *ob_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        ob_error(OB_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *ob_aligned_alloc(size_t size) {
    void *p = NULL;
    if (posix_memalign(&p, 64, size ? size : 64) != 0) {
        ob_error(OB_ERR_NOMEM, "out of memory allocating %zu aligned bytes", size);
        return NULL;
    }
    return p;
}

void ob_aligned_free(void *p) { free(p); }

char *ob_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = ob_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
