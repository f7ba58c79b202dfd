/* Bump allocator over one aligned block. */
#include <string.h>

#include "onebit/common.h"

ob_status ob_arena_init(ob_arena *arena, size_t capacity) {
    memset(arena, 0, sizeof *arena);
    if (capacity == 0)
        return OB_OK;
    arena->base = ob_aligned_alloc(capacity);
    if (!arena->base)
        return ob_error(OB_ERR_NOMEM, "arena: cannot allocate %zu bytes", capacity);
    arena->capacity = capacity;
    return OB_OK;
}

void *ob_arena_alloc(ob_arena *arena, size_t bytes, size_t align) {
    if (align == 0 || (align & (align - 1)) != 0) {
        ob_error(OB_ERR_INVALID_ARG, "arena: alignment %zu is not a power of two", align);
        return NULL;
    }
    uintptr_t base = (uintptr_t)arena->base;
    size_t start = (size_t)(((base + arena->used + align - 1) & ~(uintptr_t)(align - 1)) - base);
    if (start > arena->capacity || bytes > arena->capacity - start) {
        ob_error(OB_ERR_NOMEM, "arena: %zu bytes requested, %zu of %zu free", bytes,
                 arena->capacity - (arena->used < arena->capacity ? arena->used : arena->capacity),
                 arena->capacity);
        return NULL;
    }
    arena->used = start + bytes;
    if (arena->used > arena->high_water)
        arena->high_water = arena->used;
    return arena->base + start;
}

size_t ob_arena_mark(const ob_arena *arena) { return arena->used; }

void ob_arena_reset(ob_arena *arena, size_t mark) {
    if (mark <= arena->used)
        arena->used = mark;
}

void ob_arena_free(ob_arena *arena) {
    ob_aligned_free(arena->base);
    memset(arena, 0, sizeof *arena);
}
