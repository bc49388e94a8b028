/* Arena implementation: a bump allocator over one backend allocation. */
#include "engine/core/arena.h"

int cnet_arena_init(cnet_arena *a, cnet_backend *be, size_t capacity, const char *name,
                    cnet_error *err) {
    a->be = be;
    a->capacity = capacity;
    a->used = 0;
    a->top = 0;
    a->high_water = 0;
    a->name = name;
    a->base = capacity ? be->alloc(be, capacity) : NULL;
    if (capacity && !a->base)
        return cnet_fail(err, CNET_ENOMEM, "arena '%s': cannot allocate %zu bytes on %s", name,
                         capacity, be->name);
    return 0;
}

void cnet_arena_free(cnet_arena *a) {
    if (a->base) a->be->free(a->be, a->base);
    a->base = NULL;
    a->capacity = a->used = a->top = 0;
}

void *cnet_arena_alloc(cnet_arena *a, size_t bytes, cnet_error *err) {
    size_t start = (a->used + CNET_ARENA_ALIGN - 1) & ~(size_t)(CNET_ARENA_ALIGN - 1);
    const size_t end = a->capacity - a->top;
    if (start > end || bytes > end - start) {
        cnet_fail(err, CNET_ENOMEM, "arena '%s' full: %zu bytes requested, %zu of %zu used",
                  a->name, bytes, a->used + a->top, a->capacity);
        return NULL;
    }
    a->used = start + bytes;
    if (a->used + a->top > a->high_water) a->high_water = a->used + a->top;
    return a->base + start;
}

void *cnet_arena_alloc_top(cnet_arena *a, size_t bytes, cnet_error *err) {
    const size_t end = a->capacity - a->top;
    const size_t start = bytes <= end ? (end - bytes) & ~(size_t)(CNET_ARENA_ALIGN - 1) : 0;
    if (bytes > end || start < a->used) {
        cnet_fail(err, CNET_ENOMEM, "arena '%s' full: %zu bytes requested, %zu of %zu used",
                  a->name, bytes, a->used + a->top, a->capacity);
        return NULL;
    }
    a->top = a->capacity - start;
    if (a->used + a->top > a->high_water) a->high_water = a->used + a->top;
    return a->base + start;
}

void cnet_arena_release_top(cnet_arena *a) { a->top = 0; }

void cnet_arena_reset(cnet_arena *a) { a->used = 0; }

size_t cnet_arena_mark(const cnet_arena *a) { return a->used; }

void cnet_arena_restore(cnet_arena *a, size_t mark) { a->used = mark; }
