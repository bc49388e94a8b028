/* DiagonalGaussian sample, KL and their gradient; see train_vae_loss.h. */
#include "engine/train/train_vae_loss.h"

#include <math.h>

static float clamp_logvar(float v) {
    return v < VAE_LOGVAR_CLAMP_MIN   ? VAE_LOGVAR_CLAMP_MIN
           : v > VAE_LOGVAR_CLAMP_MAX ? VAE_LOGVAR_CLAMP_MAX
                                      : v;
}

double vae_latent_sample(float *z, const float *moments, const float *eps, int B, long hw, int L) {
    double kl = 0;
    for (long p = 0; p < (long)B * hw; p++)
        for (int c = 0; c < L; c++) {
            const float mean = moments[p * 2 * L + c];
            const float lv = clamp_logvar(moments[p * 2 * L + L + c]);
            const float std = expf(0.5f * lv);
            z[p * L + c] = mean + std * eps[p * L + c];
            kl += 0.5 * ((double)mean * mean + (double)std * std - 1.0 - lv);
        }
    return kl / B;
}

void vae_latent_backward(float *dmoments, const float *moments, const float *eps, const float *dz,
                         double kl_weight, int B, long hw, int L) {
    const double k = kl_weight / B;
    for (long p = 0; p < (long)B * hw; p++)
        for (int c = 0; c < L; c++) {
            const float mean = moments[p * 2 * L + c], raw = moments[p * 2 * L + L + c];
            const float lv = clamp_logvar(raw), std = expf(0.5f * lv);
            const double g = dz[p * L + c];
            dmoments[p * 2 * L + c] = (float)(g + k * mean);
            /* d/dlv: z's 0.5 std eps, KL's 0.5 (exp(lv) - 1) */
            const double dlv = g * 0.5 * std * eps[p * L + c] + k * 0.5 * ((double)std * std - 1.0);
            const int inside = raw >= VAE_LOGVAR_CLAMP_MIN && raw <= VAE_LOGVAR_CLAMP_MAX;
            dmoments[p * 2 * L + L + c] = inside ? (float)dlv : 0.0f;
        }
}
