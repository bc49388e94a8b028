/* One train-vae gradient computation; see train_vae_step.h. */
#include "engine/train/train_vae_step.h"

#include <stdlib.h>
#include <string.h>

#include "engine/train/train_vae_loss.h"

int vae_step_init(vae_step *s, vae_model *vae, int B, int R, cnet_error *err) {
    memset(s, 0, sizeof *s);
    cnet_backend *be = vae->params.be;
    s->vae = vae, s->B = B, s->R = R, s->L = vae->cfg.latent_channels;
    s->h = R / vae_factor(vae);
    const size_t img = (size_t)B * R * R * vae->cfg.out_channels;
    const size_t lat = (size_t)B * s->h * s->h * s->L;
    float **dev[] = {&s->recon, &s->d_recon, &s->z, &s->dz, &s->moments, &s->dmom, &s->scalar};
    const size_t n[] = {img, img, lat, lat, 2 * lat, 2 * lat, 1};
    for (int i = 0; i < 7; i++)
        if (!(*dev[i] = be->alloc(be, n[i] * sizeof(float)))) {
            vae_step_free(s);
            return cnet_fail(err, CNET_ENOMEM, "train-vae: out of device memory");
        }
    s->h_mom = malloc(2 * lat * sizeof(float)), s->h_dmom = malloc(2 * lat * sizeof(float));
    s->h_z = malloc(lat * sizeof(float)), s->h_dz = malloc(lat * sizeof(float));
    int rc = !s->h_mom || !s->h_dmom || !s->h_z || !s->h_dz
                 ? cnet_fail(err, CNET_ENOMEM, "train-vae: out of memory")
                 : 0;
    if (!rc)
        rc = cnet_arena_init(&s->keep, be, vae_train_keep_bytes(vae, B, R, R),
                             "train-vae activations", err);
    if (!rc)
        rc = cnet_arena_init(&s->scratch, be, 2 * vae_scratch_bytes(vae, B, R, R),
                             "train-vae scratch", err);
    if (rc) vae_step_free(s);
    return rc;
}

void vae_step_free(vae_step *s) {
    if (!s->vae) return;
    cnet_backend *be = s->vae->params.be;
    float *dev[] = {s->recon, s->d_recon, s->z, s->dz, s->moments, s->dmom, s->scalar};
    for (int i = 0; i < 7; i++)
        if (dev[i]) be->free(be, dev[i]);
    free(s->h_mom), free(s->h_dmom), free(s->h_z), free(s->h_dz);
    cnet_arena_free(&s->keep);
    cnet_arena_free(&s->scratch);
    memset(s, 0, sizeof *s);
}

int vae_step_grads(vae_step *s, const cnet_params *g, const float *pixels, const float *eps, int n,
                   double kl_weight, float loss_scale, double *rec, double *kl, cnet_error *err) {
    cnet_backend *be = s->vae->params.be;
    const long hw = (long)s->h * s->h, img = (long)s->R * s->R * s->vae->cfg.out_channels;
    const size_t lat = (size_t)n * hw * s->L;
    vae_half_acts enc, dec;
    if (n < 1 || n > s->B)
        return cnet_fail(err, CNET_EINVAL, "train-vae: batch of %d images (room for 1..%d)", n,
                         s->B);
    cnet_arena_reset(&s->keep);
    int rc = vae_encode_train(s->vae, &s->scratch, s->moments, pixels, n, s->R, s->R, &s->keep,
                              &enc, err);
    if (rc) return rc;
    be->download(be, s->h_mom, s->moments, 2 * lat * sizeof(float));
    *kl = vae_latent_sample(s->h_z, s->h_mom, eps, n, hw, s->L);
    be->upload(be, s->z, s->h_z, lat * sizeof(float));
    if ((rc = vae_decode_train(s->vae, &s->scratch, s->recon, s->z, n, s->h, s->h, &s->keep, &dec,
                               err)))
        return rc;
    float mse;
    be->mse_forward(be, s->scalar, s->recon, pixels, NULL, n, img);
    be->download(be, &mse, s->scalar, sizeof mse);
    *rec = mse;
    be->mse_backward(be, s->d_recon, s->recon, pixels, NULL, n, img, loss_scale);
    if ((rc = vae_decoder_backward(s->vae, g, &s->scratch, s->dz, s->d_recon, &dec, n, s->h, s->h,
                                   err)))
        return rc;
    be->download(be, s->h_dz, s->dz, lat * sizeof(float));
    vae_latent_backward(s->h_dmom, s->h_mom, eps, s->h_dz, kl_weight * loss_scale, n, hw, s->L);
    be->upload(be, s->dmom, s->h_dmom, 2 * lat * sizeof(float));
    return vae_encoder_backward(s->vae, g, &s->scratch, s->dmom, &enc, n, s->R, s->R, err);
}
