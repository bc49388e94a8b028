/* Growable scratch buffers owned by the CPU backend (see scratch.h). The
 * state hangs off be->impl: cnet_backend_cpu_init creates it, and a
 * zero-initialised cnet_backend (the op tests) gets it on first use.
 *
 * Running out of host memory is an error the caller sees, not an abort: a
 * service must survive a request too large for the machine. The failure is
 * recorded like the CUDA backend's (the first one, named; later requests
 * refused until recover) and reported by the status entry after the step. */
#include "kernels/cpu/scratch.h"

#include <stdlib.h>

typedef struct cpu_scratch_state {
    void *buf[CPU_SCRATCH_SLOTS];
    size_t cap[CPU_SCRATCH_SLOTS];
    size_t failed_bytes; /* the request that did not fit; 0 while none failed */
    int failed_slot;
} cpu_scratch_state;

static cpu_scratch_state *state_of(cnet_backend *be) {
    if (!be->impl) be->impl = calloc(1, sizeof(cpu_scratch_state));
    return be->impl;
}

static void *scratch_alloc(cnet_backend *be, size_t bytes) {
    if (be->alloc) return be->alloc(be, bytes);
    void *p = NULL;
    return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
}

static void scratch_release(cnet_backend *be, void *p) {
    if (be->free)
        be->free(be, p);
    else
        free(p);
}

int cpu_scratch_init(cnet_backend *be, cnet_error *err) {
    if (!state_of(be))
        return cnet_fail(err, CNET_ENOMEM, "cpu backend: cannot allocate its scratch state");
    return 0;
}

void *cpu_scratch(cnet_backend *be, int slot, size_t bytes) {
    cpu_scratch_state *st = state_of(be);
    if (!st || st->failed_bytes) return NULL;
    /* NULL means "failed, skip the op": a zero-byte request on a slot never
     * grown must get a buffer, or its op would be skipped with nothing
     * recorded */
    if (bytes == 0) bytes = 1;
    if (st->cap[slot] < bytes) {
        if (st->buf[slot]) scratch_release(be, st->buf[slot]);
        st->buf[slot] = NULL;
        st->cap[slot] = 0;
        const size_t rounded = (bytes + 63) & ~(size_t)63;
        st->buf[slot] = scratch_alloc(be, rounded);
        if (!st->buf[slot]) {
            st->failed_bytes = bytes, st->failed_slot = slot;
            return NULL;
        }
        st->cap[slot] = rounded;
    }
    return st->buf[slot];
}

int cpu_scratch_status(cnet_backend *be, cnet_error *err) {
    const cpu_scratch_state *st = be->impl;
    if (!st || !st->failed_bytes) return 0;
    return cnet_fail(err, CNET_EBACKEND,
                     "cpu: out of host memory allocating %zu bytes of scratch (slot %d); that op "
                     "and every later one that needs scratch were skipped",
                     st->failed_bytes, st->failed_slot);
}

static void release_slots(cnet_backend *be, cpu_scratch_state *st) {
    for (int i = 0; i < CPU_SCRATCH_SLOTS; i++) {
        if (st->buf[i]) scratch_release(be, st->buf[i]);
        st->buf[i] = NULL, st->cap[i] = 0;
    }
}

int cpu_scratch_recover(cnet_backend *be, cnet_error *err) {
    (void)err;
    cpu_scratch_state *st = be->impl;
    if (!st || !st->failed_bytes) return 0;
    release_slots(be, st); /* the failed request may have grown them past what fits */
    st->failed_bytes = 0, st->failed_slot = 0;
    return 0;
}

void cpu_scratch_free(cnet_backend *be) {
    cpu_scratch_state *st = be->impl;
    if (!st) return;
    release_slots(be, st);
    free(st);
    be->impl = NULL;
}
