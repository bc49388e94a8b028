/* Scratch memory of the CPU backend: a few numbered buffers that grow to
 * their high-water mark on first use and are reused afterwards, so a step
 * that repeats allocates nothing. Call from outside parallel regions; for
 * per-thread space request nthreads * per_thread bytes and slice it.
 * Slots let one op hold two buffers at once (e.g. im2col columns + a GEMM
 * output); an op must not assume a slot survives another op's call. */
#ifndef CNET_CPU_SCRATCH_H
#define CNET_CPU_SCRATCH_H

#include <stddef.h>

#include "engine/core/backend.h"

enum { CPU_SCRATCH_SLOTS = 6 };
/* The slot of a 16-bit weight widened to float32 (weights16.c): the float32
 * products it then calls use slots 0..2 only. */
enum { CPU_SLOT_WEIGHT16 = 3 };
/* The packed operands of the bf16 products (gemm_bf16.c), which run inside
 * ops holding slots 0..3. */
enum { CPU_SLOT_BF16_A = 4, CPU_SLOT_BF16_B = 5 };

/* Returns at least `bytes` of 64-byte aligned memory in slot (0..CPU_SCRATCH_SLOTS-1), or NULL
 * when host memory ran out: the failure is recorded on the backend (its
 * status entry reports it), every later request returns NULL until the
 * backend recovers, and the op that asked returns without computing, as a
 * failed CUDA op is skipped (engine/core/backend.h, device failures). The
 * memory comes from be->alloc, so a test's failing alloc reaches it; a
 * zero-initialised backend (the op tests) uses plain aligned memory. */
void *cpu_scratch(cnet_backend *be, int slot, size_t bytes);
/* The backend table's status and recover entries of the CPU backend:
 * CNET_EBACKEND naming the scratch request that did not fit; recover
 * releases every slot and clears the failure (memory may be free again). */
int cpu_scratch_status(cnet_backend *be, cnet_error *err);
int cpu_scratch_recover(cnet_backend *be, cnet_error *err);
/* Creates the state up front (cnet_backend_cpu_init), so that even the
 * first failure has a place to be recorded; CNET_ENOMEM if it cannot. */
int cpu_scratch_init(cnet_backend *be, cnet_error *err);
void cpu_scratch_free(cnet_backend *be);

#endif
