/* The 8-bit optimiser state format of --use_8bit_adam: bitsandbytes'
 * block-wise dynamic quantisation (Dettmers et al., "8-bit Optimizers via
 * Block-wise Quantization", ICLR 2022; bitsandbytes' AdamW8bit =
 * Optimizer2State with optim_bits=8, block_wise=True).
 *
 * A state tensor of n floats is cut into blocks of CNET_ADAM8_BLOCK (256,
 * the block size of bnb's 8-bit two-state optimisers). Each block keeps its
 * absolute maximum in float32 and each element a uint8 code: the index of
 * the entry of a 256-entry map nearest to x / absmax. The first moment uses
 * the signed dynamic map, the second (never negative) the unsigned one
 * (bnb's create_dynamic_map(signed=True/False)). Decoding is map[code] *
 * absmax. A tensor under ADAM8_MIN_SIZE elements keeps float32 state, as
 * bnb's min_8bit_size does.
 *
 * What we follow from bitsandbytes and where we differ:
 * - the maps: create_dynamic_map's formula (max_exponent_bits 7: decades
 *   1e-6 .. 1 with 2^e (signed) or 2^(e+1) (unsigned) means of
 *   linspace(0.1, 1) per decade, plus 0 and 1), evaluated in float32 with
 *   torch's scalar linspace rule; an entry may differ from bnb's table in
 *   the last bit where torch's vectorised linspace rounds otherwise. The
 *   checkpoint stores the maps it was written with (engine/train/adam_state.c);
 * - quantisation: round to the nearest entry; exactly at a midpoint the
 *   lower entry wins (bnb's binary search picks either, by path). Division
 *   is exact (bnb uses __fdividef). A block whose new absmax is 0 codes
 *   every element as 0. Like bnb, a first-moment code whose entry has the
 *   other sign than the value is moved one step towards the value's sign,
 *   so a small negative moment never decodes as +0;
 * - the step (decode, AdamW update, re-encode with the new absmax) is the
 *   backend op adamw8bit_step; its own deviations (torch's weight decay
 *   order, non-finite gradients not skipped) are in kernels/cpu/optim8.c.
 *
 * Only formats and helpers here; no allocation, no backend. */
#ifndef CNET_ADAM8_H
#define CNET_ADAM8_H

#include <math.h>
#include <stdint.h>

/* bnb's min_8bit_size: tensors with fewer elements keep float32 state. */
#define ADAM8_MIN_SIZE 4096
#define ADAM8_MAP_SIZE 256

#ifdef __CUDACC__
#define ADAM8_HD __host__ __device__
#else
#define ADAM8_HD
#endif

/* engine/ is C: its declarations keep C linkage in the .cu files. */
#ifdef __cplusplus
extern "C" {
#endif

#include "engine/core/backend.h"

/* Fills map[256] with bnb's dynamic map, sorted ascending: signed in
 * (-1, 1] with one 0 (index 127), unsigned in [0, 1]. */
void adam8_dynamic_map(float *map, int is_signed);

/* Blocks of a tensor of n elements. */
static inline long adam8_blocks(long n) { return (n + CNET_ADAM8_BLOCK - 1) / CNET_ADAM8_BLOCK; }

/* The code of x in a block with the given absmax: the nearest entry of the
 * sorted map to x / absmax (ties to the lower entry); keep_sign applies the
 * first moment's sign rule. Shared by the CPU and CUDA backends so both
 * pick the same code bit for bit. */
static inline ADAM8_HD uint8_t adam8_code(const float *map, float x, float absmax, int keep_sign) {
    const float xn = absmax > 0.0f ? x / absmax : 0.0f;
    /* lo: the last entry <= xn (0 when none), by a binary search without
     * branches (the codes of a block are as good as random to a predictor) */
    int lo = 0;
    for (int step = ADAM8_MAP_SIZE / 2; step > 0; step >>= 1) lo += map[lo + step] <= xn ? step : 0;
    int c = lo < ADAM8_MAP_SIZE - 1 && xn > (map[lo] + map[lo + 1]) * 0.5f ? lo + 1 : lo;
    if (keep_sign && !signbit(map[c]) != !signbit(x)) c += x > 0.0f ? 1 : -1;
    return (uint8_t)c;
}

/* Quantises one block of n <= CNET_ADAM8_BLOCK floats: *absmax = max |x|,
 * codes[i] = adam8_code(map, x[i], *absmax, keep_sign). */
void adam8_quantize_block(uint8_t *codes, float *absmax, const float *x, int n, const float *map,
                          int keep_sign);
/* x[i] = map[codes[i]] * absmax for one block. */
void adam8_dequantize_block(float *x, const uint8_t *codes, float absmax, int n, const float *map);

#ifdef __cplusplus
}
#endif

#endif
