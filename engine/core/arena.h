/* Arenas: one block of backend memory each, carved into named slices
 * (parameters, gradients, optimizer state, activations, scratch) before the
 * first step. Allocation is a pointer bump; nothing is freed individually.
 * The high-water mark is recorded so benchmarks and the pool can report
 * and size memory. */
#ifndef CNET_ARENA_H
#define CNET_ARENA_H

#include <stddef.h>

#include "engine/core/backend.h"
#include "engine/core/error.h"

#define CNET_ARENA_ALIGN 64

typedef struct cnet_arena {
    cnet_backend *be; /* borrowed; owns the block's memory kind */
    char *base;       /* owned; freed by cnet_arena_free */
    size_t capacity;
    size_t used;
    size_t top;        /* bytes held at the high end (cnet_arena_alloc_top) */
    size_t high_water; /* of used + top */
    const char *name;  /* for error messages, e.g. "activations" */
} cnet_arena;

int cnet_arena_init(cnet_arena *a, cnet_backend *be, size_t capacity, const char *name,
                    cnet_error *err);
void cnet_arena_free(cnet_arena *a);
/* Aligned slice of `bytes`; NULL (and err set) when the arena is full. */
void *cnet_arena_alloc(cnet_arena *a, size_t bytes, cnet_error *err);
/* Forgets every bottom-up slice (the memory stays); top slices and
 * high_water are kept. */
void cnet_arena_reset(cnet_arena *a);
/* Mark/restore for temporary slices inside a phase. */
size_t cnet_arena_mark(const cnet_arena *a);
void cnet_arena_restore(cnet_arena *a, size_t mark);
/* A slice at the high end, for a buffer that outlives several phases of
 * bottom-up slices (reset and restore leave it alone): the gradients when
 * they share the activations' memory (--set_grads_to_none). NULL (and err
 * set) when it would overlap the used part. */
void *cnet_arena_alloc_top(cnet_arena *a, size_t bytes, cnet_error *err);
/* Gives every top slice back. */
void cnet_arena_release_top(cnet_arena *a);

#endif
