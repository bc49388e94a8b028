/* Standard normal draws for the CPU backend: the Philox4x32-10 stream of
 * engine/core/philox.h (which defines the numbers bit for bit and parallelises
 * its own loop), written into host memory. Not a uniform or integer
 * generator: host-side draws call engine/core/philox.h directly. */
#include "engine/core/philox.h"
#include "kernels/cpu/cpu_ops.h"

void cpu_philox_normal(cnet_backend *be, float *out, long n, uint64_t seed, uint64_t offset) {
    (void)be;
    philox_normal_fill(out, n, seed, offset);
}
