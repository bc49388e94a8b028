/* Training batches; see train_batch.h. */
#include "engine/train/train_batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/philox.h"
#include "engine/train/train_step.h"

static float *dev(cnet_backend *be, size_t n, int *rc, cnet_error *err) {
    if (*rc) return NULL;
    float *p = be->alloc(be, (n ? n : 1) * sizeof(float));
    if (!p) *rc = cnet_fail(err, CNET_ENOMEM, "train: cannot allocate %zu floats", n);
    return p;
}

int train_batcher_init(train_batcher *tb, sd_base *base, dataset *ds, int B, int rank, int ranks,
                       int resolution, uint64_t seed, int cache_latents, int workers,
                       vae_model *vae, train_sdxl *sdxl, int crops_h, int crops_w,
                       const train_transforms *tf, cnet_error *err) {
    memset(tb, 0, sizeof *tb);
    cnet_backend *be = base->unet.params.be;
    if (!vae) vae = &base->vae;
    const int f = vae_factor(vae);
    if (resolution < 8 || resolution % 8 || resolution % f)
        return cnet_fail(err, CNET_EINVAL, "resolution %d must be a positive multiple of 8",
                         resolution);
    if (ranks < 1 || rank < 0 || rank >= ranks || B < 1 || (long)B * ranks > TRAIN_MAX_BATCH)
        return cnet_fail(err, CNET_EINVAL,
                         "train: batch size %d on each of %d ranks (supported: 1..%d samples in "
                         "all)",
                         B, ranks, TRAIN_MAX_BATCH);
    /* a rank's noise starts at a whole Philox block (4 normals) */
    if (ranks > 1 && vae->cfg.latent_channels % 4)
        return cnet_fail(err, CNET_EINVAL,
                         "train: several ranks need a multiple of 4 latent channels (the VAE has "
                         "%d)",
                         vae->cfg.latent_channels);
    tb->base = base, tb->B = B, tb->R = resolution, tb->seed = seed;
    tb->rank = rank, tb->ranks = ranks;
    tb->vae = vae, tb->sdxl = sdxl, tb->crops_h = crops_h, tb->crops_w = crops_w;
    tb->h = tb->w = resolution / f;
    tb->L = vae->cfg.latent_channels;
    tb->Nt = sdxl ? sdxl->L : tokenizer_max_length(base->tok);
    tb->D = sdxl ? sdxl->D : base->text_encoder.hidden;
    tb->cache_latents = cache_latents;
    const size_t img = (size_t)B * resolution * resolution * 3,
                 lat = (size_t)B * tb->h * tb->w * tb->L;
    int rc = 0;
    tb->pixels = dev(be, img, &rc, err);
    tb->cond = dev(be, img, &rc, err);
    tb->latents = dev(be, lat, &rc, err);
    tb->moments = dev(be, 2 * lat, &rc, err);
    tb->text = dev(be, (size_t)B * tb->Nt * tb->D, &rc, err);
    if (sdxl) tb->text_embeds = dev(be, (size_t)B * sdxl->P, &rc, err);
    if (rc || (rc = train_decode_init(&tb->decode, ds, base->tok, B * ranks, resolution, workers,
                                      tf, err)))
        goto fail;
    if (sdxl && !(tb->time_ids = malloc((size_t)B * CNET_TIME_IDS * sizeof(float)))) {
        rc = cnet_fail(err, CNET_ENOMEM, "train: out of memory for SDXL batches");
        goto fail;
    }
    tb->host_lat = malloc(4 * lat * sizeof(float));
    if (cache_latents) {
        tb->n_cache = ds->n_entries;
        tb->cache = calloc((size_t)(tb->n_cache ? tb->n_cache : 1), sizeof *tb->cache);
    }
    if (!tb->host_lat || (cache_latents && !tb->cache)) {
        rc = cnet_fail(err, CNET_ENOMEM, "train: out of memory for batches");
        goto fail;
    }
    size_t need = vae_scratch_bytes(vae, B, resolution, resolution);
    size_t text = sdxl ? train_sdxl_scratch_bytes(sdxl, B)
                       : clip_text_scratch_bytes(&base->text_encoder, B, tb->Nt);
    if ((rc = cnet_arena_init(&tb->scratch, be, need > text ? need : text, "batch scratch", err)))
        goto fail;
    return 0;
fail:
    train_batcher_free(tb);
    return rc;
}

void train_batcher_free(train_batcher *tb) {
    if (!tb->base) return;
    cnet_backend *be = tb->base->unet.params.be;
    float *bufs[] = {tb->pixels, tb->cond, tb->latents, tb->moments, tb->text, tb->text_embeds};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->free(be, bufs[i]);
    for (int64_t i = 0; tb->cache && i < tb->n_cache; i++) free(tb->cache[i]);
    free(tb->cache);
    free(tb->time_ids);
    free(tb->host_lat);
    train_decode_free(&tb->decode);
    cnet_arena_free(&tb->scratch);
    memset(tb, 0, sizeof *tb);
}

/* latents = (mean + std * noise) * scaling_factor, per sample from the cache
 * or from the VAE moments of this batch. */
static int make_latents(train_batcher *tb, const int64_t *ids, int n, uint64_t rng_offset,
                        cnet_error *err) {
    cnet_backend *be = tb->base->unet.params.be;
    const size_t per = (size_t)tb->h * tb->w * tb->L, lat = (size_t)n * per;
    float *ms = tb->host_lat;            /* [n, per * 2]: mean | std */
    float *mom = tb->host_lat + 2 * lat; /* [n, hw, 2L] VAE moments */
    int need_vae = 0;
    for (int i = 0; i < n; i++) need_vae |= !(tb->cache && tb->cache[ids[i]]);
    if (need_vae) {
        /* train_controlnet_sdxl.py runs the base's SDXL VAE in float32
         * (force_upcast), whatever --mixed_precision */
        const int upcast = tb->sdxl && tb->vae == &tb->base->vae && tb->vae->cfg.force_upcast;
        const cnet_precision prev =
            upcast ? cnet_backend_set_precision(be, CNET_PREC_F32, NULL, 0) : be->precision;
        int rc = 0;
        if (tb->cache) {
            /* one sample at a time: the conv GEMMs' rounding depends on a
             * sample's place in its batch, and a cached latent must be the
             * sample's own whatever batch first meets it (a resumed run
             * meets it in another one) */
            const size_t img = (size_t)tb->R * tb->R * 3;
            for (int i = 0; !rc && i < n; i++) {
                if (tb->cache[ids[i]]) continue;
                rc = vae_encode(tb->vae, &tb->scratch, tb->moments, tb->pixels + i * img, 1, tb->R,
                                tb->R, err);
                if (!rc)
                    be->download(be, mom + (size_t)i * 2 * per, tb->moments,
                                 2 * per * sizeof(float));
            }
        } else if (!(rc = vae_encode(tb->vae, &tb->scratch, tb->moments, tb->pixels, n, tb->R,
                                     tb->R, err))) {
            be->download(be, mom, tb->moments, 2 * lat * sizeof(float));
        }
        if (upcast) cnet_backend_set_precision(be, prev, NULL, 0);
        if (rc) return rc;
    }
    for (int i = 0; i < n; i++) {
        float *dst = ms + (size_t)i * 2 * per;
        if (tb->cache && tb->cache[ids[i]]) {
            memcpy(dst, tb->cache[ids[i]], 2 * per * sizeof(float));
            continue;
        }
        for (size_t p = 0; p < per; p++) { /* DiagonalGaussianDistribution */
            size_t pix = p / (size_t)tb->L, c = p % (size_t)tb->L;
            const float *m = mom + ((size_t)i * tb->h * tb->w + pix) * 2 * tb->L;
            float logvar = m[tb->L + c];
            logvar = logvar < -30.0f ? -30.0f : logvar > 20.0f ? 20.0f : logvar;
            dst[p] = m[c];
            dst[per + p] = expf(0.5f * logvar);
        }
        if (tb->cache && (tb->cache[ids[i]] = malloc(2 * per * sizeof(float))))
            memcpy(tb->cache[ids[i]], dst, 2 * per * sizeof(float));
    }
    float *noise = mom, *out = mom + lat;
    philox_normal_fill(noise, (long)lat, tb->seed, rng_offset);
    const float sf = tb->vae->cfg.scaling_factor;
    for (int i = 0; i < n; i++)
        for (size_t p = 0; p < per; p++) {
            const float *src = ms + (size_t)i * 2 * per;
            out[i * per + p] = (src[p] + src[per + p] * noise[i * per + p]) * sf;
        }
    be->upload(be, tb->latents, out, lat * sizeof(float));
    return 0;
}

int train_batcher_next(train_batcher *tb, uint64_t rng_offset, int *n, int *n_all, int *epoch_end,
                       cnet_error *err) {
    cnet_backend *be = tb->base->unet.params.be;
    train_decode *d = &tb->decode;
    int rc = train_decode_take(d, err);
    const int s = tb->rank * tb->B; /* the slice's first sample in the global batch */
    *n_all = rc ? 0 : d->n, *epoch_end = rc ? 0 : d->epoch_end;
    *n = *n_all > s ? (*n_all - s < tb->B ? *n_all - s : tb->B) : 0;
    if (rc || *n == 0) {
        if (!rc) train_decode_release(d);
        return rc;
    }
    int64_t ids[TRAIN_MAX_BATCH];
    memcpy(ids, d->sample_id + s, (size_t)*n * sizeof ids[0]);
    const size_t img = (size_t)tb->R * tb->R * 3;
    be->upload(be, tb->pixels, d->img + (size_t)s * img, (size_t)*n * img * sizeof(float));
    be->upload(be, tb->cond, d->img + ((size_t)d->B + s) * img, (size_t)*n * img * sizeof(float));
    if (tb->sdxl) {
        const char *captions[TRAIN_MAX_BATCH];
        for (int i = 0; i < *n; i++) captions[i] = d->raw[s + i].caption;
        rc =
            train_sdxl_encode(tb->sdxl, &tb->scratch, captions, *n, tb->text, tb->text_embeds, err);
        train_sdxl_time_ids(tb->time_ids, *n, tb->R, tb->crops_h, tb->crops_w);
    } else {
        rc = clip_text_forward(&tb->base->text_encoder, &tb->scratch, tb->text, NULL,
                               d->tokens + (size_t)s * tb->Nt, *n, tb->Nt, 0, err);
    }
    /* the host batch is uploaded and encoded: the next one may be made now,
     * while the VAE and the step run */
    train_decode_release(d);
    /* the slice's VAE noise: blocks of 4 normals, per sample a whole
     * number of them (latent channels % 4 == 0 with ranks) */
    const uint64_t skip = (uint64_t)s * tb->h * tb->w * tb->L / 4;
    return rc ? rc : make_latents(tb, ids, *n, rng_offset + skip, err);
}
