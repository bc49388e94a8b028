/* img2img and inpainting set-up and blend; see pipeline_init.h. */
#include "engine/pipeline/pipeline_init.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/layout.h"
#include "engine/core/philox.h"
#include "engine/pipeline/pipeline_sdxl.h"

/* DiagonalGaussianDistribution's clamp of the log variance. */
#define VAE_LOGVAR_MIN -30.0f
#define VAE_LOGVAR_MAX 20.0f

int pipe_init_steps(int steps, double strength) {
    const int init_timestep = (int)(steps * strength);
    return init_timestep < steps ? init_timestep : steps;
}

int pipe_init_check(const pipe_models *m, const pipe_request *r, cnet_error *err) {
    const pipe_init *in = &r->init;
    const int in_ch = m->unet->enc.cfg.in_channels, L = m->vae->cfg.latent_channels;
    if (!in->image) {
        if (in->mask)
            return cnet_fail(err, CNET_EINVAL, "mask_image needs an init_image to repaint");
        if (in_ch != L)
            return cnet_fail(err, CNET_EINVAL,
                             "the UNet takes %d input channels (an inpainting UNet): give "
                             "init_image and mask_image",
                             in_ch);
        return 0;
    }
    if (pipeline_is_sdxl(m))
        return cnet_fail(err, CNET_EINVAL,
                         "init_image: img2img and inpainting are not implemented for SDXL yet");
    const int P = r->n_prompts > 0 ? r->n_prompts : 1;
    if (in->n_images < 1 || (in->n_images > 1 && in->n_images != P))
        return cnet_fail(err, CNET_EINVAL, "init_image: %d images for %d prompts (give 1 or %d)",
                         in->n_images, P, P);
    if (!(in->strength > 0 && in->strength <= 1))
        return cnet_fail(err, CNET_EINVAL, "strength must be in (0, 1] (got %g)", in->strength);
    if (pipe_init_steps(r->steps, in->strength) < 1)
        return cnet_fail(err, CNET_EINVAL,
                         "strength %g x %d steps = %g runs no denoising step; raise strength or "
                         "steps",
                         in->strength, r->steps, r->steps * in->strength);
    if (in->mask ? in_ch != L && in_ch != 2 * L + 1 : in_ch != L)
        return cnet_fail(err, CNET_EINVAL, "the UNet takes %d input channels; %s needs %d%s", in_ch,
                         in->mask ? "inpainting" : "img2img", L,
                         in->mask ? " or 2 x latent channels + 1" : " (give mask_image)");
    return 0;
}

/* Host [n, h, w, L] sample = (mean + std * eps) * scaling of VAE encode
 * call j of x [n, H, W, 3]; mean/std/eps are reported. */
static int encode_sample(pipe_init_state *st, const pipe_models *m, const pipe_request *r,
                         cnet_arena *scratch, const float *x, int j, float *sample,
                         uint64_t *offset, const pipe_observer *obs, cnet_error *err) {
    cnet_backend *be = m->unet->params.be;
    const int n = r->init.n_images, H = r->height, W = r->width, h = st->h, w = st->w, L = st->L;
    const size_t px = (size_t)n * H * W * 3, cnt = (size_t)n * h * w * L;
    float *host = malloc((2 * cnt + 3 * cnt) * sizeof(float));
    if (!host) return cnet_fail(err, CNET_ENOMEM, "out of memory for the VAE sample");
    float *moments = host, *mean = host + 2 * cnt, *std = mean + cnt, *eps = std + cnt;
    int rc = 0;
    float *d_x = be->alloc(be, px * sizeof(float)), *d_m = be->alloc(be, 2 * cnt * sizeof(float));
    if (!d_x || !d_m) rc = cnet_fail(err, CNET_ENOMEM, "cannot allocate the VAE encode buffers");
    if (!rc) {
        be->upload(be, d_x, x, px * sizeof(float));
        char note[128];
        const cnet_precision prec =
            m->vae_upcast ? cnet_backend_set_precision(be, CNET_PREC_F32, note, sizeof note)
                          : be->precision;
        rc = vae_encode(m->vae, scratch, d_m, d_x, n, H, W, err);
        if (m->vae_upcast) cnet_backend_set_precision(be, prec, note, sizeof note);
    }
    if (!rc) {
        be->download(be, moments, d_m, 2 * cnt * sizeof(float));
        rc = cnet_backend_status(be, err);
    }
    if (d_x) be->free(be, d_x);
    if (d_m) be->free(be, d_m);
    if (rc) {
        free(host);
        return rc;
    }
    if (r->init.vae_noise[j]) {
        layout_nchw_to_nhwc(eps, r->init.vae_noise[j], n, L, h, w);
    } else {
        philox_normal_fill(eps, (long)cnt, r->seed, *offset);
        *offset += (cnt + 3) / 4;
    }
    const float sf = m->vae->cfg.scaling_factor;
    for (size_t p = 0; p < cnt; p++) {
        const size_t pix = p / (size_t)L, c = p % (size_t)L;
        float logvar = moments[pix * 2 * L + L + c];
        logvar = logvar < VAE_LOGVAR_MIN   ? VAE_LOGVAR_MIN
                 : logvar > VAE_LOGVAR_MAX ? VAE_LOGVAR_MAX
                                           : logvar;
        mean[p] = moments[pix * 2 * L + c];
        std[p] = expf(0.5f * logvar);
        const float s = std[p] * eps[p];
        sample[p] = (mean[p] + s) * sf;
    }
    if (obs && obs->on_init) {
        char name[32];
        snprintf(name, sizeof name, "vae_mean.%d", j);
        obs->on_init(obs->user, name, mean, n, h, w, L);
        snprintf(name, sizeof name, "vae_std.%d", j);
        obs->on_init(obs->user, name, std, n, h, w, L);
        snprintf(name, sizeof name, "noise.vae_sample.%d", j);
        obs->on_init(obs->user, name, eps, n, h, w, L);
    }
    free(host);
    return 0;
}

/* dst [rows, per] = src [n, per] tiled (row k takes src row k % n). */
static void tile_rows(float *dst, const float *src, int rows, int n, size_t per) {
    for (int k = 0; k < rows; k++)
        memcpy(dst + (size_t)k * per, src + (size_t)(k % n) * per, per * sizeof(float));
}

static float *upload_new(cnet_backend *be, const float *host, size_t n, int *rc, cnet_error *err) {
    if (*rc) return NULL;
    float *d = be->alloc(be, (n ? n : 1) * sizeof(float));
    if (!d) {
        *rc = cnet_fail(err, CNET_ENOMEM, "pipeline: cannot allocate %zu floats", n);
        return NULL;
    }
    if (host) be->upload(be, d, host, n * sizeof(float));
    return d;
}

/* The unmasked runs of mask [N, h, w] (0 = keep the image). */
static int make_runs(pipe_init_state *st, const float *mask, long n, cnet_error *err) {
    st->runs = malloc((size_t)(n / 2 + 1) * sizeof *st->runs);
    if (!st->runs) return cnet_fail(err, CNET_ENOMEM, "out of memory for the mask runs");
    st->n_runs = 0;
    for (long p = 0; p < n;) {
        if (mask[p] != 0.0f) {
            p++;
            continue;
        }
        long q = p;
        while (q < n && mask[q] == 0.0f) q++;
        st->runs[st->n_runs++] = (pipe_init_run){p, q - p};
        p = q;
    }
    return 0;
}

int pipe_init_begin(pipe_init_state *st, const pipe_models *m, const pipe_request *r,
                    cnet_arena *scratch, sched *sc, float *latents, int N, int rows, int h, int w,
                    uint64_t *offset, const pipe_observer *obs, cnet_error *err) {
    cnet_backend *be = m->unet->params.be;
    const pipe_init *in = &r->init;
    memset(st, 0, sizeof *st);
    st->on = 1, st->inpaint = in->mask != NULL;
    st->L = m->vae->cfg.latent_channels;
    st->nine = st->inpaint && m->unet->enc.cfg.in_channels != st->L;
    st->N = N, st->rows = rows, st->h = h, st->w = w;
    const int n = in->n_images, L = st->L, H = r->height, W = r->width, f = H / h;
    const size_t per = (size_t)h * w * L, lat = (size_t)N * per, per_img = (size_t)H * W * 3;
    const int init_timestep = pipe_init_steps(r->steps, in->strength);
    int rc = sched_set_begin_index(sc, r->steps - init_timestep, err);
    if (rc) return rc;
    const int strength_max = in->strength == 1.0;

    float *host = malloc((2 * (size_t)n * per + 4 * lat + (size_t)n * per_img) * sizeof(float));
    if (!host) return cnet_fail(err, CNET_ENOMEM, "out of memory for the init latents");
    float *sample = host, *tiled = sample + (size_t)n * per, *noise = tiled + lat,
          *work = noise + lat, *masked = work + 2 * lat;
    /* (0) the init image's latents */
    const int need_image = !st->nine || !strength_max;
    if (need_image) {
        if (!(rc = encode_sample(st, m, r, scratch, in->image, 0, sample, offset, obs, err))) {
            tile_rows(tiled, sample, N, n, per);
            st->image_latents = upload_new(be, tiled, lat, &rc, err);
            if (!rc && obs && obs->on_init)
                obs->on_init(obs->user, st->inpaint ? "image_latents" : "init_latents", tiled, N, h,
                             w, L);
        }
    }
    /* (1) prepare_latents' noise */
    if (!rc) {
        if (r->latents) {
            layout_nchw_to_nhwc(noise, r->latents, N, L, h, w);
        } else {
            philox_normal_fill(noise, (long)lat, r->seed, *offset);
            *offset += (lat + 3) / 4;
        }
        st->noise = upload_new(be, noise, lat, &rc, err);
        if (!rc && obs && obs->on_init) obs->on_init(obs->user, "noise.latents", noise, N, h, w, L);
    }
    if (!rc) {
        if (st->inpaint && strength_max)
            be->scale(be, latents, st->noise, sc->init_noise_sigma, (long)lat);
        else
            rc = sched_add_noise_step(sc, latents, st->image_latents, st->noise, 0, (long)lat, err);
    }
    if (!rc && obs && obs->on_init) {
        be->download(be, work, latents, lat * sizeof(float));
        if (!(rc = cnet_backend_status(be, err)))
            obs->on_init(obs->user, "latents_init", work, N, h, w, L);
    }
    if (rc || !st->inpaint) {
        free(host);
        return rc;
    }
    /* (2) the masked image's latents, and the mask at latent size */
    for (size_t p = 0; p < (size_t)n * H * W; p++)
        for (int c = 0; c < 3; c++)
            masked[p * 3 + c] = in->image[p * 3 + c] * (in->mask[p] < 0.5f ? 1.0f : 0.0f);
    if ((rc = encode_sample(st, m, r, scratch, masked, 1, sample, offset, obs, err))) {
        free(host);
        return rc;
    }
    tile_rows(tiled, sample, N, n, per);
    float *mask_lat = work; /* [N, h, w] */
    for (int k = 0; k < N; k++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                mask_lat[((size_t)k * h + y) * w + x] =
                    in->mask[((size_t)(k % n) * H + (size_t)y * f) * W + (size_t)x * f];
    if (obs && obs->on_init) {
        obs->on_init(obs->user, "masked_image_latents", tiled, N, h, w, L);
        obs->on_init(obs->user, "mask_latent", mask_lat, N, h, w, 1);
    }
    if (st->nine) { /* [mask | masked latents], doubled under CFG */
        const size_t px = (size_t)h * w, c9 = (size_t)1 + L;
        float *cond = malloc((size_t)rows * px * c9 * sizeof(float));
        if (!cond) rc = cnet_fail(err, CNET_ENOMEM, "out of memory for the inpainting input");
        for (int k = 0; k < rows && !rc; k++)
            for (size_t p = 0; p < px; p++) {
                float *d = cond + ((size_t)k * px + p) * c9;
                d[0] = mask_lat[(size_t)(k % N) * px + p];
                memcpy(d + 1, tiled + ((size_t)(k % N) * px + p) * L, (size_t)L * sizeof(float));
            }
        st->cond9 = upload_new(be, cond, (size_t)rows * px * c9, &rc, err);
        st->x9 = upload_new(be, NULL, (size_t)rows * px * (c9 + L), &rc, err);
        free(cond);
    } else {
        rc = make_runs(st, mask_lat, (long)N * h * w, err);
        st->proper = upload_new(be, NULL, lat, &rc, err);
    }
    free(host);
    return rc;
}

const float *pipe_init_unet_input(pipe_init_state *st, cnet_backend *be, const float *x) {
    if (!st->nine) return x;
    be->concat_channels(be, st->x9, x, st->cond9, st->rows * st->h * st->w, st->L, 1 + st->L);
    return st->x9;
}

int pipe_init_blend(pipe_init_state *st, sched *sc, float *latents, int i, int n,
                    const pipe_observer *obs, cnet_error *err) {
    if (!st->inpaint || st->nine) return 0;
    cnet_backend *be = sc->be;
    const long lat = (long)st->N * st->h * st->w * st->L;
    const float *proper = st->image_latents;
    if (i < n - 1) {
        int rc =
            sched_add_noise_step(sc, st->proper, st->image_latents, st->noise, i + 1, lat, err);
        if (rc) return rc;
        proper = st->proper;
    }
    if (obs && obs->on_blend)
        obs->on_blend(obs->user, i, latents, i < n - 1 ? proper : NULL, st->N, st->h, st->w, st->L);
    for (long k = 0; k < st->n_runs; k++) {
        const size_t off = (size_t)st->runs[k].start * st->L;
        be->copy(be, latents + off, proper + off, (size_t)st->runs[k].len * st->L * sizeof(float));
    }
    return 0;
}

void pipe_init_free(pipe_init_state *st, cnet_backend *be) {
    float *list[] = {st->image_latents, st->noise, st->proper, st->cond9, st->x9};
    for (size_t k = 0; k < sizeof list / sizeof list[0]; k++)
        if (list[k]) be->free(be, list[k]);
    free(st->runs);
    memset(st, 0, sizeof *st);
}
