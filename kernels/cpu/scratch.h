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

enum { CPU_SCRATCH_SLOTS = 4 };
/* The slot of a 16-bit weight widened to float32 (weights16.c): the float32
 * products it then calls use slots 0..2 only. */
enum { CPU_SLOT_WEIGHT16 = 3 };

/* Returns at least `bytes` of 64-byte aligned memory in slot (0..3). Running
 * out of host memory here is fatal (like a device fault): the process prints
 * the request and aborts, and the service's supervisor retries the job. */
void *cpu_scratch(cnet_backend *be, int slot, size_t bytes);
void cpu_scratch_free(cnet_backend *be);

#endif
