/* Growable scratch buffers owned by the CPU backend (see scratch.h). The
 * state hangs off be->impl and is created on first use, so ops also work on
 * a zero-initialised cnet_backend in tests. */
#include "kernels/cpu/scratch.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct cpu_scratch_state {
    void *buf[CPU_SCRATCH_SLOTS];
    size_t cap[CPU_SCRATCH_SLOTS];
} cpu_scratch_state;

void *cpu_scratch(cnet_backend *be, int slot, size_t bytes) {
    cpu_scratch_state *st = be->impl;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st) goto oom;
        be->impl = st;
    }
    if (st->cap[slot] < bytes) {
        free(st->buf[slot]);
        st->buf[slot] = NULL;
        st->cap[slot] = 0;
        size_t rounded = (bytes + 63) & ~(size_t)63;
        if (posix_memalign(&st->buf[slot], 64, rounded) != 0) goto oom;
        st->cap[slot] = rounded;
    }
    return st->buf[slot];
oom:
    fprintf(stderr, "cnet: cpu backend: out of memory allocating %zu bytes of scratch\n", bytes);
    abort();
}

void cpu_scratch_free(cnet_backend *be) {
    cpu_scratch_state *st = be->impl;
    if (!st) return;
    for (int i = 0; i < CPU_SCRATCH_SLOTS; i++) free(st->buf[i]);
    free(st);
    be->impl = NULL;
}
