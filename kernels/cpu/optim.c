/* The training step's tail: weighted MSE loss and its gradient, the sum of
 * squares behind the global grad norm, and the AdamW update with gradient
 * clipping fused in.
 *
 * References:
 * - diffusers examples/controlnet/train_controlnet.py: loss = F.mse_loss
 *   (mean), or with snr_gamma the per-sample mean times mse_loss_weights,
 *   then the batch mean; both are (1/B) sum_b w_b mean_i (pred - target)^2.
 * - torch.nn.utils.clip_grad_norm_ (torch 1.13, as the goldens used):
 *   total = ||grads||_2, coef = max_norm / (total + 1e-6) in float32,
 *   clamped to at most 1, grads *= coef.
 * - torch.optim.AdamW, _single_tensor_adamw of torch 1.13, in its float32
 *   op order:
 *     param *= 1 - lr * wd
 *     m = m * beta1 + (1 - beta1) * g
 *     v = v * beta2 + ((1 - beta2) * g) * g
 *     denom = sqrt(v) / sqrt(1 - beta2^step) + eps
 *     param += (-(lr / (1 - beta1^step)) * m) / denom
 *   where scalars are Python doubles rounded to float32 at use.
 * Not AMSGrad, no maximize; 8-bit AdamW is optim8.c.
 *
 * Sizes: B samples of n elements (loss); n parameters (optimiser). */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/adamw_update.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/scratch.h"

/* Reductions add fixed-size chunks in parallel, then the chunk sums in
 * order, so results do not depend on the thread count. */
enum { REDUCE_CHUNK = 1 << 14 };

/* sum_i (a[i] - b[i])^2 (b NULL: sum a[i]^2) in double, deterministic. */
static double sum_sq_diff(cnet_backend *be, const float *a, const float *b, long n) {
    const long nchunk = (n + REDUCE_CHUNK - 1) / REDUCE_CHUNK;
    if (nchunk <= 1) {
        double s = 0;
        for (long i = 0; i < n; i++) {
            double d = b ? (double)a[i] - b[i] : a[i];
            s += d * d;
        }
        return s;
    }
    double *part = cpu_scratch(be, 0, (size_t)nchunk * sizeof(double)); // [nchunk]
    if (!part) return NAN; /* out of memory, recorded on the backend */
#pragma omp parallel for schedule(static)
    for (long ch = 0; ch < nchunk; ch++) {
        const long i1 = (ch + 1) * REDUCE_CHUNK < n ? (ch + 1) * REDUCE_CHUNK : n;
        double s = 0;
        for (long i = ch * REDUCE_CHUNK; i < i1; i++) {
            double d = b ? (double)a[i] - b[i] : a[i];
            s += d * d;
        }
        part[ch] = s;
    }
    double s = 0;
    for (long ch = 0; ch < nchunk; ch++) s += part[ch];
    return s;
}

void cpu_mse_forward(cnet_backend *be, float *loss, const float *pred, const float *target,
                     const float *weights, int B, long n) {
    double total = 0;
    for (int b = 0; b < B; b++) {
        double per = sum_sq_diff(be, pred + (long)b * n, target + (long)b * n, n) / (double)n;
        total += (weights ? weights[b] : 1.0) * per;
    }
    loss[0] = (float)(total / B);
}

/* d loss / d pred[b,i] = 2 w_b (pred - target) / (B n). */
void cpu_mse_backward(cnet_backend *be, float *dpred, const float *pred, const float *target,
                      const float *weights, int B, long n, float dloss_scale) {
    (void)be;
    for (int b = 0; b < B; b++) {
        const float k =
            (float)(2.0 * dloss_scale * (weights ? weights[b] : 1.0) / ((double)B * (double)n));
        const long o = (long)b * n;
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN_ELEMS)
        for (long i = 0; i < n; i++) dpred[o + i] = k * (pred[o + i] - target[o + i]);
    }
}

void cpu_sum_squares(cnet_backend *be, float *out, const float *inp, long n) {
    out[0] = (float)sum_sq_diff(be, inp, NULL, n);
}

void cpu_adamw_step(cnet_backend *be, float *params, float *m, float *v, const float *grads, long n,
                    float lr, float beta1, float beta2, float eps, float weight_decay, int step,
                    const float *grad_sumsq, float max_grad_norm) {
    (void)be;
    const adamw_coefs c =
        adamw_coefs_make(lr, beta1, beta2, eps, weight_decay, step, grad_sumsq, max_grad_norm);
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN_ELEMS)
    for (long i = 0; i < n; i++) params[i] = adamw_update(&c, params[i], grads[i], &m[i], &v[i]);
}
