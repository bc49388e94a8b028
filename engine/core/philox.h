/* Philox4x32-10 counter-based RNG (Salmon et al., "Parallel random numbers:
 * as easy as 1, 2, 3", SC'11; the Random123 reference constants).
 *
 * The stream cnet uses everywhere (CPU and CUDA compute it identically):
 *   key     = { lo32(seed), hi32(seed) }
 *   block j = philox4x32_10({ lo32(j), hi32(j), 0, 0 }, key) -> x0..x3
 *   element i of a draw at `offset` comes from block offset + i/4, lane i%4.
 * Normals: Box-Muller in double precision, rounded to float, on lane pairs
 *   u1 = (x0 + 1) * 2^-32 in (0, 1],  u2 = x1 * 2^-32 in [0, 1)
 *   z0 = sqrt(-2 ln u1) cos(2 pi u2),  z1 = sqrt(-2 ln u1) sin(2 pi u2)
 *   (and likewise z2, z3 from x2, x3). Double precision keeps CPU and GPU
 *   results equal after rounding. */
#ifndef CNET_PHILOX_H
#define CNET_PHILOX_H

#include <stdint.h>

void philox4x32_10(uint32_t out[4], const uint32_t counter[4], const uint32_t key[2]);

/* The 4 normals of block j for seed. */
void philox_normal4(float out[4], uint64_t seed, uint64_t block);

/* n normals starting at block `offset` (host memory). */
void philox_normal_fill(float *out, long n, uint64_t seed, uint64_t offset);

/* A uniform 32-bit integer: lane 0 of block j (host-side draws such as
 * timesteps and dataset shuffles). */
uint32_t philox_u32(uint64_t seed, uint64_t block);

#endif
