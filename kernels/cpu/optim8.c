/* AdamW with block-wise 8-bit moments (bitsandbytes' AdamW8bit) on the CPU;
 * the state format and what we follow from bitsandbytes are in
 * engine/core/adam8.h.
 *
 * Per block of CNET_ADAM8_BLOCK elements, as bnb's
 * kOptimizerStatic8bit2StateBlockwise: decode m and v with the block's old
 * absmax, update them and the parameters in float32, then re-encode m and v
 * with the new absmax of the updated block. The parameter update uses the
 * float32 moments of this step, so quantisation error enters through the
 * state carried to the next step only.
 *
 * Deviation from bnb: the float32 update is adamw_step's (kernels/cpu/
 * optim.c, torch.optim.AdamW's op order: weight decay before the moment
 * step); bnb decays after the step, p = (p + u)(1 - lr wd), which differs by
 * lr * wd * u. Keeping torch's order makes --use_8bit_adam differ from the
 * float32 optimiser by the quantisation alone. bnb also skips non-finite
 * gradients element by element; we, like adamw_step, do not.
 *
 * Blocks are independent and each is done by one thread, so the result does
 * not depend on the thread count. Sizes: n parameters, ceil(n/256) blocks. */
#include <math.h>

#include "engine/core/adam8.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/adamw_update.h"
#include "kernels/cpu/parallel.h"

void cpu_adamw8bit_step(cnet_backend *be, float *params, const cnet_adam8_state *s,
                        const float *grads, long n, float lr, float beta1, float beta2, float eps,
                        float weight_decay, int step, const float *grad_sumsq,
                        float max_grad_norm) {
    (void)be;
    const adamw_coefs c =
        adamw_coefs_make(lr, beta1, beta2, eps, weight_decay, step, grad_sumsq, max_grad_norm);
    const long nblocks = adam8_blocks(n);
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN_ELEMS)
    for (long b = 0; b < nblocks; b++) {
        const long i0 = b * CNET_ADAM8_BLOCK;
        const int len = (int)(n - i0 < CNET_ADAM8_BLOCK ? n - i0 : CNET_ADAM8_BLOCK);
        float m[CNET_ADAM8_BLOCK], v[CNET_ADAM8_BLOCK]; // this block's moments, decoded
        adam8_dequantize_block(m, s->m + i0, s->absmax_m[b], len, s->qmap_m);
        adam8_dequantize_block(v, s->v + i0, s->absmax_v[b], len, s->qmap_v);
        for (int j = 0; j < len; j++)
            params[i0 + j] = adamw_update(&c, params[i0 + j], grads[i0 + j], &m[j], &v[j]);
        adam8_quantize_block(s->m + i0, &s->absmax_m[b], m, len, s->qmap_m, 1);
        adam8_quantize_block(s->v + i0, &s->absmax_v[b], v, len, s->qmap_v, 0);
    }
}
