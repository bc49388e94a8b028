/* Arena implementation: a bump allocator over one backend allocation. */
#include "arena.h"

int cnet_arena_init(cnet_arena *a, cnet_backend *be, size_t capacity, const char *name,
                    cnet_error *err) {
    a->be = be;
    a->capacity = capacity;
    a->used = 0;
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
    a->capacity = a->used = 0;
}

void *cnet_arena_alloc(cnet_arena *a, size_t bytes, cnet_error *err) {
    size_t start = (a->used + CNET_ARENA_ALIGN - 1) & ~(size_t)(CNET_ARENA_ALIGN - 1);
    if (start > a->capacity || bytes > a->capacity - start) {
        cnet_fail(err, CNET_ENOMEM, "arena '%s' full: %zu bytes requested, %zu of %zu used",
                  a->name, bytes, a->used, a->capacity);
        return NULL;
    }
    a->used = start + bytes;
    if (a->used > a->high_water) a->high_water = a->used;
    return a->base + start;
}

void cnet_arena_reset(cnet_arena *a) { a->used = 0; }

size_t cnet_arena_mark(const cnet_arena *a) { return a->used; }

void cnet_arena_restore(cnet_arena *a, size_t mark) { a->used = mark; }
